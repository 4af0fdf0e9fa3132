/*
 * tests/unit/ct_testkit.h: helpers shared by the CT log tests (unit and integration), written
 * independently of ct/: certificates built with OpenSSL (roots, leaves, precertificates with
 * the poison in the middle of the extensions, PSCs), SCT validation by OpenSSL's own CT code
 * (o2i_SCT, CTLOG_STORE, CT_POLICY_EVAL_CTX, SCT_validate), and an RFC 6962 Merkle reference:
 * the naive recursive MTH and the RFC 9162 §2.1.3.2 / §2.1.4.2 proof verifiers.
 */
#ifndef FULCRUM_TESTS_CT_TESTKIT_H
#define FULCRUM_TESTS_CT_TESTKIT_H

#include <openssl/bn.h>
#include <openssl/ct.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CTK_FN static __attribute__((unused))

enum ctk_poison { CTK_NO_POISON, CTK_POISON, CTK_POISON_NONCRITICAL, CTK_POISON_NOT_NULL };

CTK_FN EVP_PKEY *ctk_key(void) { return EVP_EC_gen("P-256"); }

CTK_FN void ctk_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ex)
        X509_add_ext(x, ex, -1);
    X509_EXTENSION_free(ex);
}

CTK_FN void ctk_add_raw_ext(X509 *x, const char *oid, int critical, const unsigned char *val,
                            int len)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(os, val, len);
    X509_EXTENSION *ex = X509_EXTENSION_create_by_OBJ(NULL, obj, critical, os);
    X509_add_ext(x, ex, -1);
    X509_EXTENSION_free(ex);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
}

/* A certificate for `key` named CN=cn, signed by issuer_key (self-signed when issuer is NULL).
 * ca: CA certificate; psc: carries the CT precertificate-signing EKU. Leaves get a SAN, EKU
 * codeSigning, then (per poison) the poison, then one more extension, so the poison sits in
 * the middle of the list. */
CTK_FN X509 *ctk_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, int ca,
                      enum ctk_poison poison, int psc)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    unsigned char serial[16];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), ca ? 86400 : 600);
    X509_NAME *name = X509_NAME_new();
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_NAME_free(name);
    X509_set_pubkey(x, key);
    if (ca) {
        ctk_add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
        ctk_add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
        ctk_add_ext(x, issuer, NID_subject_key_identifier, "hash");
        if (psc)
            ctk_add_ext(x, issuer, NID_ext_key_usage, "1.3.6.1.4.1.11129.2.4.4");
    } else {
        ctk_add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
        ctk_add_ext(x, issuer, NID_ext_key_usage, "codeSigning");
        ctk_add_ext(x, issuer, NID_subject_alt_name, "email:someone@example.com");
        static const unsigned char null_der[] = {0x05, 0x00}, not_null[] = {0x04, 0x00};
        if (poison == CTK_POISON)
            ctk_add_raw_ext(x, "1.3.6.1.4.1.11129.2.4.3", 1, null_der, 2);
        else if (poison == CTK_POISON_NONCRITICAL)
            ctk_add_raw_ext(x, "1.3.6.1.4.1.11129.2.4.3", 0, null_der, 2);
        else if (poison == CTK_POISON_NOT_NULL)
            ctk_add_raw_ext(x, "1.3.6.1.4.1.11129.2.4.3", 1, not_null, 2);
        static const unsigned char utf8[] = {0x0c, 0x03, 'f', 'o', 'o'};
        ctk_add_raw_ext(x, "1.3.6.1.4.1.57264.1.8", 0, utf8, sizeof utf8);
    }
    if (X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) <= 0) {
        X509_free(x);
        return NULL;
    }
    return x;
}

CTK_FN unsigned char *ctk_der(X509 *x, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    if (n <= 0)
        return NULL;
    *len = (size_t)n;
    return der; /* OPENSSL_free */
}

/* 1 if OpenSSL's CT code says the TLS-serialised SCT is valid for cert (a leaf, or a
 * precertificate with its poison) issued by issuer, from the log with public key log_pub. */
CTK_FN int ctk_sct_valid(const unsigned char *sct_bytes, size_t sct_len, int precert, X509 *cert,
                         X509 *issuer, EVP_PKEY *log_pub, const char *tmpdir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/ctk_ctlogs.cnf", tmpdir);
    unsigned char *spki = NULL;
    int n = i2d_PUBKEY(log_pub, &spki);
    unsigned char b64[512];
    EVP_EncodeBlock(b64, spki, n);
    OPENSSL_free(spki);
    FILE *f = fopen(path, "w");
    if (!f)
        return 0;
    fprintf(f, "enabled_logs = fulcrum\n\n[fulcrum]\ndescription = fulcrum\nkey = %s\n", b64);
    fclose(f);
    CTLOG_STORE *store = CTLOG_STORE_new();
    CT_POLICY_EVAL_CTX *ctx = CT_POLICY_EVAL_CTX_new();
    const unsigned char *p = sct_bytes;
    SCT *sct = o2i_SCT(NULL, &p, sct_len);
    int ok = store && ctx && sct && p == sct_bytes + sct_len &&
             CTLOG_STORE_load_file(store, path) == 1 &&
             SCT_set_log_entry_type(sct, precert ? CT_LOG_ENTRY_TYPE_PRECERT
                                                 : CT_LOG_ENTRY_TYPE_X509) == 1 &&
             SCT_set_source(sct, precert ? SCT_SOURCE_X509V3_EXTENSION
                                         : SCT_SOURCE_TLS_EXTENSION) == 1 &&
             CT_POLICY_EVAL_CTX_set1_cert(ctx, cert) == 1 &&
             CT_POLICY_EVAL_CTX_set1_issuer(ctx, issuer) == 1;
    if (ok) {
        CT_POLICY_EVAL_CTX_set_shared_CTLOG_STORE(ctx, store);
        ok = SCT_validate(sct, ctx) == 1 &&
             SCT_get_validation_status(sct) == SCT_VALIDATION_STATUS_VALID;
    }
    SCT_free(sct);
    CT_POLICY_EVAL_CTX_free(ctx);
    CTLOG_STORE_free(store);
    ERR_clear_error();
    return ok;
}

/* ---- RFC 6962 Merkle reference ---- */

CTK_FN void ctk_leaf_hash(const unsigned char *d, size_t n, unsigned char out[32])
{
    unsigned char *buf = malloc(n + 1);
    buf[0] = 0;
    if (n)
        memcpy(buf + 1, d, n);
    SHA256(buf, n + 1, out);
    free(buf);
}

CTK_FN void ctk_node(const unsigned char l[32], const unsigned char r[32], unsigned char out[32])
{
    unsigned char buf[65];
    buf[0] = 1;
    memcpy(buf + 1, l, 32);
    memcpy(buf + 33, r, 32);
    SHA256(buf, 65, out);
}

/* MTH over n leaf hashes, straight from RFC 6962 §2.1. */
CTK_FN void ctk_mth(unsigned char (*leaves)[32], uint64_t n, unsigned char out[32])
{
    if (n == 0) {
        SHA256((const unsigned char *)"", 0, out);
        return;
    }
    if (n == 1) {
        memcpy(out, leaves[0], 32);
        return;
    }
    uint64_t k = 1;
    while (k * 2 < n)
        k *= 2;
    unsigned char l[32], r[32];
    ctk_mth(leaves, k, l);
    ctk_mth(leaves + k, n - k, r);
    ctk_node(l, r, out);
}

/* RFC 9162 §2.1.3.2. */
CTK_FN int ctk_verify_inclusion(const unsigned char leaf[32], uint64_t index, uint64_t size,
                                unsigned char (*path)[32], size_t n, const unsigned char root[32])
{
    if (index >= size)
        return 0;
    uint64_t fn = index, sn = size - 1;
    unsigned char r[32];
    memcpy(r, leaf, 32);
    for (size_t i = 0; i < n; i++) {
        if (sn == 0)
            return 0;
        if ((fn & 1) || fn == sn) {
            ctk_node(path[i], r, r);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            ctk_node(r, path[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && memcmp(r, root, 32) == 0;
}

/* RFC 9162 §2.1.4.2 (first == 0 and first == second: an empty proof). */
CTK_FN int ctk_verify_consistency(uint64_t first, uint64_t second, const unsigned char r1[32],
                                  const unsigned char r2[32], unsigned char (*proof)[32],
                                  size_t n)
{
    if (first > second)
        return 0;
    if (first == second)
        return n == 0 && memcmp(r1, r2, 32) == 0;
    if (first == 0)
        return n == 0;
    if (n == 0)
        return 0;
    unsigned char (*p)[32] = malloc((n + 1) * 32);
    size_t np = 0;
    if ((first & (first - 1)) == 0)
        memcpy(p[np++], r1, 32);
    memcpy(p + np, proof, n * 32);
    np += n;
    uint64_t fn = first - 1, sn = second - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    unsigned char fr[32], sr[32];
    memcpy(fr, p[0], 32);
    memcpy(sr, p[0], 32);
    int ok = 1;
    for (size_t i = 1; i < np && ok; i++) {
        if (sn == 0) {
            ok = 0;
            break;
        }
        if ((fn & 1) || fn == sn) {
            ctk_node(p[i], fr, fr);
            ctk_node(p[i], sr, sr);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            ctk_node(sr, p[i], sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    free(p);
    return ok && sn == 0 && memcmp(fr, r1, 32) == 0 && memcmp(sr, r2, 32) == 0;
}

/* Verifies a TreeHeadSignature (DigitallySigned, ECDSA SHA-256) built here from its fields. */
CTK_FN int ctk_verify_sth(EVP_PKEY *pub, uint64_t ts, uint64_t size, const unsigned char root[32],
                          const unsigned char *ds, size_t dslen)
{
    unsigned char in[50] = {0, 1};
    for (int i = 0; i < 8; i++) {
        in[2 + i] = (unsigned char)(ts >> (56 - 8 * i));
        in[10 + i] = (unsigned char)(size >> (56 - 8 * i));
    }
    memcpy(in + 18, root, 32);
    if (dslen < 4 || ds[0] != 4 || ds[1] != 3 || (size_t)((ds[2] << 8) | ds[3]) != dslen - 4)
        return 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, pub) == 1 &&
             EVP_DigestVerify(c, ds + 4, dslen - 4, in, sizeof in) == 1;
    EVP_MD_CTX_free(c);
    ERR_clear_error();
    return ok;
}

/* Reads a big-endian integer of n bytes. */
CTK_FN uint64_t ctk_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

#endif
