/*
 * tests/integration/harness_crypto.c: client keys, proofs of possession, CSRs, PEM chains and
 * certificate inspection with OpenSSL.
 */
#include "integration/harness.h"

#include <limits.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"

static void openssl_err(const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    fprintf(stderr, "harness: %s failed %s\n", what, buf);
    ERR_clear_error();
}

EVP_PKEY *h_key_new(const char *kind)
{
    EVP_PKEY *k = NULL;
    if (strcmp(kind, "P-224") == 0)
        k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-224");
    else if (strcmp(kind, "P-256") == 0)
        k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    else if (strcmp(kind, "P-384") == 0)
        k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    else if (strcmp(kind, "P-521") == 0)
        k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    else if (strcmp(kind, "RSA-1024") == 0)
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    else if (strcmp(kind, "RSA-2048") == 0)
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    else if (strcmp(kind, "RSA-3072") == 0)
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
    else if (strcmp(kind, "Ed25519") == 0)
        k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    else {
        fprintf(stderr, "harness: unknown key kind %s\n", kind);
        return NULL;
    }
    if (!k)
        openssl_err(kind);
    return k;
}

char *h_key_spki_pem(EVP_PKEY *key)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (b && PEM_write_bio_PUBKEY(b, key)) {
        char *p;
        long n = BIO_get_mem_data(b, &p);
        out = strndup(p, (size_t)n);
    } else {
        openssl_err("PEM_write_bio_PUBKEY");
    }
    BIO_free(b);
    return out;
}

/* The digest Fulcio pairs with a key (fulcio-compat §2.2); NULL for Ed25519. */
static const EVP_MD *default_md(EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "ED25519"))
        return NULL;
    if (EVP_PKEY_is_a(key, "EC")) {
        int bits = EVP_PKEY_get_bits(key);
        if (bits == 384)
            return EVP_sha384();
        if (bits == 521)
            return EVP_sha512();
    }
    return EVP_sha256();
}

unsigned char *h_sign_pop(EVP_PKEY *key, const char *msg, size_t *sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *sig = NULL;
    size_t n = 0;
    if (!ctx || EVP_DigestSignInit(ctx, NULL, default_md(key), NULL, key) != 1 ||
        EVP_DigestSign(ctx, NULL, &n, (const unsigned char *)msg, strlen(msg)) != 1 ||
        !(sig = malloc(n)) ||
        EVP_DigestSign(ctx, sig, &n, (const unsigned char *)msg, strlen(msg)) != 1) {
        openssl_err("EVP_DigestSign");
        free(sig);
        sig = NULL;
    } else {
        *sig_len = n;
    }
    EVP_MD_CTX_free(ctx);
    return sig;
}

char *h_b64(const void *data, size_t len, int url)
{
    return url ? b64url_encode(data, len) : b64_encode(data, len);
}

char *h_csr_pem(EVP_PKEY *key, EVP_PKEY *signer, const EVP_MD *md)
{
    X509_REQ *req = X509_REQ_new();
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (!md)
        md = default_md(signer);
    X509_NAME *name = req ? X509_REQ_get_subject_name(req) : NULL;
    if (!req || !b || !name ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                    (const unsigned char *)"ignored by the CA", -1, -1, 0) ||
        !X509_REQ_set_pubkey(req, key) || !X509_REQ_sign(req, signer, md) ||
        !PEM_write_bio_X509_REQ(b, req)) {
        openssl_err("CSR");
    } else {
        char *p;
        long n = BIO_get_mem_data(b, &p);
        out = strndup(p, (size_t)n);
    }
    BIO_free(b);
    X509_REQ_free(req);
    return out;
}

X509 *h_cert_from_pem(const char *pem)
{
    STACK_OF(X509) *sk = h_chain_from_pem(pem);
    X509 *c = NULL;
    if (sk && sk_X509_num(sk) == 1)
        c = sk_X509_shift(sk);
    else if (sk)
        fprintf(stderr, "harness: expected one certificate, got %d\n", sk_X509_num(sk));
    sk_X509_pop_free(sk, X509_free);
    return c;
}

STACK_OF(X509) *h_chain_from_pem(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    STACK_OF(X509) *sk = sk_X509_new_null();
    if (!b || !sk)
        goto fail;
    for (;;) {
        X509 *c = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (!c)
            break;
        if (!sk_X509_push(sk, c)) {
            X509_free(c);
            goto fail;
        }
    }
    unsigned long e = ERR_peek_last_error();
    /* Ending with "no start line" just means end of input. */
    if (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
        openssl_err("PEM_read_bio_X509");
        goto fail;
    }
    ERR_clear_error();
    if (sk_X509_num(sk) == 0)
        goto fail;
    BIO_free(b);
    return sk;
fail:
    BIO_free(b);
    sk_X509_pop_free(sk, X509_free);
    return NULL;
}

STACK_OF(X509) *h_chain_from_json(const json_t *array)
{
    if (!json_is_array(array) || json_array_size(array) == 0)
        return NULL;
    STACK_OF(X509) *sk = sk_X509_new_null();
    size_t i;
    json_t *v;
    json_array_foreach(array, i, v) {
        X509 *c = json_is_string(v) ? h_cert_from_pem(json_string_value(v)) : NULL;
        if (!c || !sk_X509_push(sk, c)) {
            X509_free(c);
            sk_X509_pop_free(sk, X509_free);
            return NULL;
        }
    }
    return sk;
}

int h_verify_chain(STACK_OF(X509) *chain, X509 *root)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_dup(chain);
    int ok = 0;
    if (!store || !ctx || !untrusted || sk_X509_num(chain) < 1 || !X509_STORE_add_cert(store, root))
        goto out;
    X509 *leaf = sk_X509_shift(untrusted);
    if (!X509_STORE_CTX_init(ctx, store, leaf, untrusted))
        goto out;
#ifdef X509_PURPOSE_CODE_SIGN
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_CODE_SIGN);
#endif
    ok = X509_verify_cert(ctx) == 1;
    if (!ok)
        fprintf(stderr, "harness: X509_verify_cert: %s (depth %d)\n",
                X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)),
                X509_STORE_CTX_get_error_depth(ctx));
out:
    ERR_clear_error();
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

const unsigned char *h_ext_value(const X509 *cert, const char *oid, size_t *len, int *critical)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    if (!obj)
        return NULL;
    int idx = X509_get_ext_by_OBJ(cert, obj, -1);
    ASN1_OBJECT_free(obj);
    if (idx < 0)
        return NULL;
    X509_EXTENSION *ext = X509_get_ext(cert, idx);
    ASN1_OCTET_STRING *os = X509_EXTENSION_get_data(ext);
    if (critical)
        *critical = X509_EXTENSION_get_critical(ext);
    *len = (size_t)ASN1_STRING_length(os);
    return ASN1_STRING_get0_data(os);
}

char *h_ext_oids(const X509 *cert)
{
    size_t cap = 1024, len = 0;
    char *out = calloc(1, cap);
    if (!out)
        return NULL;
    for (int i = 0; i < X509_get_ext_count(cert); i++) {
        char oid[128];
        OBJ_obj2txt(oid, sizeof oid, X509_EXTENSION_get_object(X509_get_ext(cert, i)), 1);
        size_t need = strlen(oid) + 2;
        if (len + need >= cap) {
            char *bigger = realloc(out, cap * 2 + need);
            if (!bigger) {
                free(out);
                return NULL;
            }
            out = bigger;
            cap = cap * 2 + need;
        }
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "," : "", oid);
    }
    return out;
}

long h_validity_seconds(const X509 *cert)
{
    int days = 0, secs = 0;
    if (!ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert), X509_get0_notAfter(cert)))
        return LONG_MIN;
    return days * 86400L + secs;
}
