/*
 * hsm/file_signer.c: the fileca backend: a PEM certificate chain and a PEM private key, checked
 * at load in Fulcio's order (fulcio-compat.md §4.7, §6):
 *   1. the chain parses and is not empty;
 *   2. the key decrypts and parses;
 *   3. the chain verifies to its last certificate, every certificate allowing code signing;
 *   4. the issuing (first) certificate is a CA;
 *   5. with more than one certificate, the issuing certificate carries EKU codeSigning;
 *   6. the issuing certificate's public key is the private key's;
 *   7. the key passes the key policy (RSA 2048/3072/4096 e=65537, P-256/384/521, Ed25519).
 */
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "hsm/key_signer.h"
#include "hsm/signer.h"

#define MAX_PEM_FILE (1024 * 1024)

/* Reads a whole (small) file. Returns 0, or -1 with a reason naming `what` and the path. */
static int read_file(const char *what, const char *path, unsigned char **out, size_t *outlen,
                     char *why, size_t whylen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, whylen, "cannot read %s %s: %s", what, path, strerror(errno));
        return -1;
    }
    unsigned char *buf = malloc(MAX_PEM_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_PEM_FILE + 1, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (!buf || err || n > MAX_PEM_FILE) {
        if (buf)
            OPENSSL_cleanse(buf, n);
        free(buf);
        snprintf(why, whylen, "cannot read %s %s: %s", what, path,
                 !buf ? "out of memory" : err ? "read error" : "file larger than 1 MiB");
        return -1;
    }
    *out = buf;
    *outlen = n;
    return 0;
}

/* ---- 1. the certificate chain ---- */

static STACK_OF(X509) *parse_chain(const char *path, const unsigned char *pem, size_t len,
                                   char *why, size_t whylen)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    STACK_OF(X509) *chain = sk_X509_new_null();
    if (!bio || !chain)
        goto oom;
    for (;;) {
        char *name = NULL, *header = NULL;
        unsigned char *der = NULL;
        long derlen = 0;
        if (!PEM_read_bio(bio, &name, &header, &der, &derlen)) {
            unsigned long e = ERR_peek_last_error();
            ERR_clear_error();
            if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
                break; /* end of input */
            snprintf(why, whylen, "certificate file %s: PEM block %d is malformed", path,
                     sk_X509_num(chain) + 1);
            goto fail;
        }
        X509 *x = NULL;
        int is_cert = strcmp(name, PEM_STRING_X509) == 0;
        if (is_cert) {
            const unsigned char *p = der;
            x = d2i_X509(NULL, &p, derlen);
            if (x && p != der + derlen) {
                X509_free(x);
                x = NULL;
            }
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);
        if (!is_cert)
            continue; /* other PEM blocks are ignored */
        if (!x) {
            ERR_clear_error();
            snprintf(why, whylen, "certificate file %s: certificate %d does not parse", path,
                     sk_X509_num(chain) + 1);
            goto fail;
        }
        if (!sk_X509_push(chain, x)) {
            X509_free(x);
            goto oom;
        }
    }
    BIO_free(bio);
    if (sk_X509_num(chain) == 0) {
        sk_X509_free(chain);
        snprintf(why, whylen, "certificate file %s holds no PEM certificate", path);
        return NULL;
    }
    return chain;
oom:
    snprintf(why, whylen, "certificate file %s: out of memory", path);
fail:
    BIO_free(bio);
    sk_X509_pop_free(chain, X509_free);
    return NULL;
}

/* ---- 2. the private key ---- */

static int password_cb(char *buf, int size, int rwflag, void *u)
{
    const char *pw = u;
    size_t n = strlen(pw);
    if (size <= 0 || n > (size_t)size)
        return -1;
    memcpy(buf, pw, n);
    return (int)n;
}

/* Reads one DER header at *p (not past end): on success *p is at the contents, which are *len
 * bytes long, and the tag (universal class) is returned; -1 on any error or indefinite length. */
static int der_header(const unsigned char **p, const unsigned char *end, long *len)
{
    int tag, xclass;
    const unsigned char *q = *p;
    int ret = ASN1_get_object(&q, len, &tag, &xclass, end - *p);
    if ((ret & 0x80) || ret == 0x21 || xclass != V_ASN1_UNIVERSAL || *len > end - q)
        return -1;
    *p = q;
    return tag;
}

/* Is the OBJECT at p (header included, of total length len) the object nid? */
static int der_is_oid(const unsigned char *p, long len, int nid)
{
    ASN1_OBJECT *obj = d2i_ASN1_OBJECT(NULL, &p, len);
    int ok = obj && OBJ_obj2nid(obj) == nid;
    ASN1_OBJECT_free(obj);
    return ok;
}

static int der_oid_nid(const unsigned char *p, long len)
{
    ASN1_OBJECT *obj = d2i_ASN1_OBJECT(NULL, &p, len);
    int nid = obj ? OBJ_obj2nid(obj) : NID_undef;
    ASN1_OBJECT_free(obj);
    return nid;
}

static int is_hmac_prf(int nid)
{
    return nid == NID_hmacWithSHA1 || nid == NID_hmacWithSHA224 || nid == NID_hmacWithSHA256 ||
           nid == NID_hmacWithSHA384 || nid == NID_hmacWithSHA512 ||
           nid == NID_hmacWithSHA512_224 || nid == NID_hmacWithSHA512_256;
}

/*
 * Some tools (Smallstep's step-cli) write the PBKDF2 PRF AlgorithmIdentifier of a PKCS#8
 * EncryptedPrivateKeyInfo as { hmacWithSHA*, 00 00 }: an end-of-contents element where DER
 * wants NULL (05 00). OpenSSL 3.0 refuses it; Go accepts it. This walks exactly
 *   EncryptedPrivateKeyInfo { AlgorithmIdentifier { PBES2, PBES2-params {
 *     keyDerivationFunc { PBKDF2, PBKDF2-params { salt, iterations, [keyLength], prf { OID, 00 00 } } },
 *     encryptionScheme } }, encryptedData }
 * and, if the PRF parameter is that 00 00, rewrites it to 05 00 in place (same length).
 * Returns 1 when it patched, 0 when the structure is not that one.
 */
static int pbes2_fix_prf_eoc(unsigned char *der, long derlen)
{
    const unsigned char *p = der, *end = der + derlen, *q;
    long len;
    if (der_header(&p, end, &len) != V_ASN1_SEQUENCE) /* EncryptedPrivateKeyInfo */
        return 0;
    end = p + len;
    if (der_header(&p, end, &len) != V_ASN1_SEQUENCE) /* encryptionAlgorithm */
        return 0;
    end = p + len;
    q = p;
    if (der_header(&p, end, &len) != V_ASN1_OBJECT || !der_is_oid(q, p + len - q, NID_pbes2))
        return 0;
    p += len;
    if (der_header(&p, end, &len) != V_ASN1_SEQUENCE) /* PBES2-params */
        return 0;
    end = p + len;
    if (der_header(&p, end, &len) != V_ASN1_SEQUENCE) /* keyDerivationFunc */
        return 0;
    end = p + len;
    q = p;
    if (der_header(&p, end, &len) != V_ASN1_OBJECT || !der_is_oid(q, p + len - q, NID_id_pbkdf2))
        return 0;
    p += len;
    if (der_header(&p, end, &len) != V_ASN1_SEQUENCE) /* PBKDF2-params */
        return 0;
    end = p + len;
    if (der_header(&p, end, &len) != V_ASN1_OCTET_STRING) /* salt (specified) */
        return 0;
    p += len;
    if (der_header(&p, end, &len) != V_ASN1_INTEGER) /* iterationCount */
        return 0;
    p += len;
    int tag = der_header(&p, end, &len);
    if (tag == V_ASN1_INTEGER) { /* keyLength */
        p += len;
        tag = der_header(&p, end, &len);
    }
    if (tag != V_ASN1_SEQUENCE || p + len != end) /* prf, the last element */
        return 0;
    end = p + len;
    q = p;
    if (der_header(&p, end, &len) != V_ASN1_OBJECT || !is_hmac_prf(der_oid_nid(q, p + len - q)))
        return 0;
    p += len;
    if (end - p != 2 || p[0] != 0x00 || p[1] != 0x00)
        return 0;
    der[p - der] = V_ASN1_NULL;
    return 1;
}

/* The step-cli workaround: decode the ENCRYPTED PRIVATE KEY block, patch, decrypt. */
static EVP_PKEY *read_patched_pkcs8(const char *path, const unsigned char *pem, size_t len,
                                    const char *passwd)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    char *name = NULL;
    unsigned char *der = NULL;
    long derlen = 0;
    EVP_PKEY *key = NULL;
    if (bio && PEM_bytes_read_bio(&der, &derlen, &name, PEM_STRING_PKCS8, bio, NULL, NULL) &&
        pbes2_fix_prf_eoc(der, derlen)) {
        BIO *mem = BIO_new_mem_buf(der, (int)derlen);
        key = mem ? d2i_PKCS8PrivateKey_bio(mem, NULL, password_cb, (void *)passwd) : NULL;
        BIO_free(mem);
        if (key)
            log_warn("fileca",
                     "key file %s: PBES2 PRF parameters were an end-of-contents element, read "
                     "as NULL; re-encoding the key with openssl pkcs8 avoids this",
                     path);
    }
    OPENSSL_free(name);
    OPENSSL_clear_free(der, derlen > 0 ? (size_t)derlen : 0);
    BIO_free(bio);
    return key;
}

static int contains(const unsigned char *buf, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n <= len && i <= len - n; i++)
        if (memcmp(buf + i, needle, n) == 0)
            return 1;
    return 0;
}

static EVP_PKEY *parse_key(const char *path, const unsigned char *pem, size_t len,
                           const char *passwd, char *why, size_t whylen)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, password_cb, (void *)passwd) : NULL;
    BIO_free(bio);
    ERR_clear_error();
    if (!key && contains(pem, len, "-----BEGIN " PEM_STRING_PKCS8 "-----"))
        key = read_patched_pkcs8(path, pem, len, passwd);
    ERR_clear_error();
    if (key)
        return key;
    if (contains(pem, len, "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----") ||
        contains(pem, len, "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----"))
        snprintf(why, whylen,
                 "cannot read key file %s: sigstore/cosign encrypted keys (scrypt + secretbox) "
                 "are not supported; convert the key to PKCS#8",
                 path);
    else if (contains(pem, len, "ENCRYPTED"))
        snprintf(why, whylen, "cannot decrypt key file %s: wrong password or unsupported format",
                 path);
    else
        snprintf(why, whylen, "cannot read key file %s: no PEM private key it can parse", path);
    return NULL;
}

/* ---- 3-5. the chain ---- */

/* Go's EKU chaining: a certificate with an EKU extension must allow codeSigning (or any). */
static int allows_code_signing(X509 *x)
{
    if (!(X509_get_extension_flags(x) & EXFLAG_XKUSAGE))
        return 1;
    return (X509_get_extended_key_usage(x) & (XKU_CODE_SIGN | XKU_ANYEKU)) != 0;
}

static void describe(X509 *x, char *out, size_t outlen)
{
    X509_NAME_oneline(X509_get_subject_name(x), out, (int)outlen);
}

/* The chain verifies to its last element (the trust anchor, self-signed or not) for code
 * signing, the middle elements serving as intermediates, as Go's x509.Verify in Fulcio. */
static int verify_chain(const char *path, STACK_OF(X509) *chain, char *why, size_t whylen)
{
    int n = sk_X509_num(chain);
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok = 0;
    char subject[256];
    if (!store || !untrusted || !ctx || !X509_STORE_add_cert(store, sk_X509_value(chain, n - 1))) {
        snprintf(why, whylen, "certificate chain in %s: out of memory", path);
        goto done;
    }
    for (int i = 1; i < n - 1; i++) {
        if (!sk_X509_push(untrusted, sk_X509_value(chain, i))) {
            snprintf(why, whylen, "certificate chain in %s: out of memory", path);
            goto done;
        }
    }
    if (!X509_STORE_CTX_init(ctx, store, sk_X509_value(chain, 0), untrusted)) {
        snprintf(why, whylen, "certificate chain in %s: out of memory", path);
        goto done;
    }
    X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
    if (X509_verify_cert(ctx) != 1) {
        int err = X509_STORE_CTX_get_error(ctx);
        snprintf(why, whylen,
                 "certificate chain in %s does not verify to its last certificate: %s "
                 "(certificate %d)",
                 path, X509_verify_cert_error_string(err), X509_STORE_CTX_get_error_depth(ctx) + 1);
        goto done;
    }
    STACK_OF(X509) *built = X509_STORE_CTX_get0_chain(ctx);
    for (int i = 0; i < sk_X509_num(built); i++) {
        X509 *x = sk_X509_value(built, i);
        if (!allows_code_signing(x)) {
            describe(x, subject, sizeof subject);
            snprintf(why, whylen,
                     "certificate chain in %s does not verify for code signing: certificate %d "
                     "(%s) has an extended key usage without codeSigning",
                     path, i + 1, subject);
            goto done;
        }
    }
    ok = 1;
done:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    X509_STORE_free(store);
    return ok;
}

/* ---- 7. key policy (sigstore cryptoutils.ValidatePubKey, fulcio-compat.md §2.4) ---- */

static int key_policy(EVP_PKEY *key, char *out, size_t outlen)
{
    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA: {
        int bits = EVP_PKEY_get_bits(key);
        BIGNUM *e = NULL;
        if (bits != 2048 && bits != 3072 && bits != 4096) {
            snprintf(out, outlen, "RSA key of %d bits is not allowed (RSA must be 2048, 3072 or 4096 bits)",
                     bits);
            return 0;
        }
        int e_ok = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) == 1 && BN_is_word(e, 65537);
        BN_free(e);
        if (!e_ok) {
            snprintf(out, outlen, "RSA public exponent is not allowed (must be 65537)");
            return 0;
        }
        return 1;
    }
    case EVP_PKEY_EC: {
        char group[64] = "";
        size_t glen = 0;
        EVP_PKEY_get_group_name(key, group, sizeof group, &glen);
        int nid = OBJ_sn2nid(group);
        if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1 && nid != NID_secp521r1) {
            snprintf(out, outlen, "EC curve %s is not allowed (allowed: P-256, P-384, P-521)",
                     group[0] ? group : "(unnamed)");
            return 0;
        }
        EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
        int valid = pctx && EVP_PKEY_public_check(pctx) == 1;
        EVP_PKEY_CTX_free(pctx);
        if (!valid) {
            snprintf(out, outlen, "EC public point is not valid");
            return 0;
        }
        return 1;
    }
    case EVP_PKEY_ED25519:
        return 1;
    default:
        snprintf(out, outlen, "key type %s is not allowed (allowed: RSA, ECDSA, Ed25519)",
                 EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "(unknown)");
        return 0;
    }
}

/* ---- the backend ---- */

static int validate(const char *cert_path, const char *key_path, STACK_OF(X509) *chain,
                    EVP_PKEY *key, char *why, size_t whylen)
{
    X509 *issuing = sk_X509_value(chain, 0);
    uint32_t flags;
    char reason[200];
    if (!verify_chain(cert_path, chain, why, whylen))
        return 0;
    flags = X509_get_extension_flags(issuing);
    if (!(flags & EXFLAG_BCONS) || !(flags & EXFLAG_CA)) {
        snprintf(why, whylen,
                 "issuing certificate in %s is not a CA (basicConstraints CA:TRUE missing)",
                 cert_path);
        return 0;
    }
    if (sk_X509_num(chain) > 1 &&
        (!(flags & EXFLAG_XKUSAGE) || !(X509_get_extended_key_usage(issuing) & XKU_CODE_SIGN))) {
        snprintf(why, whylen,
                 "issuing certificate in %s lacks extended key usage codeSigning, required when "
                 "the chain has more than one certificate (EKU chaining)",
                 cert_path);
        return 0;
    }
    if (EVP_PKEY_eq(X509_get0_pubkey(issuing), key) != 1) {
        ERR_clear_error();
        snprintf(why, whylen,
                 "public key of the issuing certificate in %s does not match the private key in %s",
                 cert_path, key_path);
        return 0;
    }
    if (!key_policy(key, reason, sizeof reason)) {
        ERR_clear_error();
        snprintf(why, whylen, "CA key in %s fails the key policy: %s", key_path, reason);
        return 0;
    }
    return 1;
}

signer *signer_file_new(const char *cert_path, const char *key_path, const char *passwd,
                        char *why, size_t whylen)
{
    unsigned char *cert_pem = NULL, *key_pem = NULL;
    size_t cert_len = 0, key_len = 0;
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = NULL;
    signer *s = NULL;

    if (!cert_path || !key_path) {
        snprintf(why, whylen, "fileca needs a certificate file and a key file");
        return NULL;
    }
    if (read_file("certificate file", cert_path, &cert_pem, &cert_len, why, whylen) != 0)
        goto done;
    if ((chain = parse_chain(cert_path, cert_pem, cert_len, why, whylen)) == NULL)
        goto done;
    if (read_file("key file", key_path, &key_pem, &key_len, why, whylen) != 0)
        goto done;
    if ((key = parse_key(key_path, key_pem, key_len, passwd ? passwd : "", why, whylen)) == NULL)
        goto done;
    if (!validate(cert_path, key_path, chain, key, why, whylen))
        goto done;
    s = key_signer_new("fileca", key, chain, why, whylen);
    key = NULL;
    chain = NULL;
done:
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    free(cert_pem);
    if (key_pem)
        OPENSSL_cleanse(key_pem, key_len);
    free(key_pem);
    return s;
}
