/*
 * hsm/pkcs11_chain.c: reading and checking the chain above an HSM-held issuing certificate.
 */
#include "hsm/pkcs11_chain.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

STACK_OF(X509) *pkcs11_chain_read_pem(const char *path, char *why, size_t whylen)
{
    BIO *bio = BIO_new_file(path, "r");
    if (!bio) {
        ERR_clear_error();
        snprintf(why, whylen, "cannot read certificate chain %s: %s", path,
                 errno ? strerror(errno) : "open failed");
        return NULL;
    }
    STACK_OF(X509) *chain = sk_X509_new_null();
    for (;;) {
        char *name = NULL, *header = NULL;
        unsigned char *der = NULL;
        long len = 0;
        if (!chain)
            break;
        if (!PEM_read_bio(bio, &name, &header, &der, &len)) {
            unsigned long e = ERR_peek_last_error();
            ERR_clear_error();
            if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
                break;
            snprintf(why, whylen, "certificate chain %s: PEM block %d is malformed", path,
                     sk_X509_num(chain) + 1);
            goto fail;
        }
        int is_cert = strcmp(name, PEM_STRING_X509) == 0;
        X509 *x = NULL;
        if (is_cert) {
            const unsigned char *p = der;
            x = d2i_X509(NULL, &p, len);
            if (x && p != der + len) {
                X509_free(x);
                x = NULL;
            }
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);
        if (!is_cert)
            continue;
        if (!x || !sk_X509_push(chain, x)) {
            X509_free(x);
            ERR_clear_error();
            snprintf(why, whylen, "certificate chain %s: certificate %d does not parse", path,
                     sk_X509_num(chain) + 1);
            goto fail;
        }
    }
    BIO_free(bio);
    if (!chain || sk_X509_num(chain) == 0) {
        sk_X509_free(chain);
        snprintf(why, whylen, "certificate chain %s holds no PEM certificate", path);
        return NULL;
    }
    return chain;
fail:
    BIO_free(bio);
    sk_X509_pop_free(chain, X509_free);
    return NULL;
}

static int allows_code_signing(X509 *x)
{
    if (!(X509_get_extension_flags(x) & EXFLAG_XKUSAGE))
        return 1;
    return (X509_get_extended_key_usage(x) & (XKU_CODE_SIGN | XKU_ANYEKU)) != 0;
}

static int verify(STACK_OF(X509) *chain, const char *origin, char *why, size_t whylen)
{
    int n = sk_X509_num(chain), ok = 0;
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (!store || !untrusted || !ctx || !X509_STORE_add_cert(store, sk_X509_value(chain, n - 1)))
        goto oom;
    for (int i = 1; i < n - 1; i++)
        if (!sk_X509_push(untrusted, sk_X509_value(chain, i)))
            goto oom;
    if (!X509_STORE_CTX_init(ctx, store, sk_X509_value(chain, 0), untrusted))
        goto oom;
    X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
    if (X509_verify_cert(ctx) != 1) {
        int err = X509_STORE_CTX_get_error(ctx);
        snprintf(why, whylen, "%s does not verify to its last certificate: %s (certificate %d)",
                 origin, X509_verify_cert_error_string(err),
                 X509_STORE_CTX_get_error_depth(ctx) + 1);
        goto done;
    }
    STACK_OF(X509) *built = X509_STORE_CTX_get0_chain(ctx);
    for (int i = 0; i < sk_X509_num(built); i++) {
        if (!allows_code_signing(sk_X509_value(built, i))) {
            char subject[256];
            X509_NAME_oneline(X509_get_subject_name(sk_X509_value(built, i)), subject,
                              sizeof subject);
            snprintf(why, whylen,
                     "%s does not verify for code signing: certificate %d (%s) has an extended "
                     "key usage without codeSigning",
                     origin, i + 1, subject);
            goto done;
        }
    }
    ok = 1;
    goto done;
oom:
    snprintf(why, whylen, "%s: out of memory", origin);
done:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    X509_STORE_free(store);
    return ok;
}

static int key_policy(EVP_PKEY *key, char *out, size_t outlen)
{
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
        int bits = EVP_PKEY_get_bits(key);
        BIGNUM *e = NULL;
        if (bits != 2048 && bits != 3072 && bits != 4096) {
            snprintf(out, outlen, "RSA key of %d bits (must be 2048, 3072 or 4096)", bits);
            return 0;
        }
        int e_ok = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) == 1 && BN_is_word(e, 65537);
        BN_free(e);
        if (!e_ok)
            snprintf(out, outlen, "RSA public exponent is not 65537");
        return e_ok;
    }
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        char group[64] = "";
        size_t glen = 0;
        EVP_PKEY_get_group_name(key, group, sizeof group, &glen);
        int nid = OBJ_sn2nid(group);
        if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1 && nid != NID_secp521r1) {
            snprintf(out, outlen, "EC curve %s (allowed: P-256, P-384, P-521)",
                     group[0] ? group : "(unnamed)");
            return 0;
        }
        return 1;
    }
    snprintf(out, outlen, "key type %s (allowed: RSA, ECDSA)",
             EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "(unknown)");
    return 0;
}

int pkcs11_chain_validate(STACK_OF(X509) *chain, const char *origin, char *why, size_t whylen)
{
    if (!chain || sk_X509_num(chain) < 1) {
        snprintf(why, whylen, "%s is empty", origin);
        return -1;
    }
    if (!verify(chain, origin, why, whylen))
        return -1;
    X509 *issuing = sk_X509_value(chain, 0);
    uint32_t flags = X509_get_extension_flags(issuing);
    if (!(flags & EXFLAG_BCONS) || !(flags & EXFLAG_CA)) {
        snprintf(why, whylen, "the issuing certificate of %s is not a CA (basicConstraints "
                              "CA:TRUE missing)", origin);
        return -1;
    }
    if (sk_X509_num(chain) > 1 &&
        (!(flags & EXFLAG_XKUSAGE) || !(X509_get_extended_key_usage(issuing) & XKU_CODE_SIGN))) {
        snprintf(why, whylen,
                 "the issuing certificate of %s lacks extended key usage codeSigning, required "
                 "when the chain has more than one certificate (EKU chaining)", origin);
        return -1;
    }
    char reason[160];
    EVP_PKEY *key = X509_get0_pubkey(issuing);
    if (!key || !key_policy(key, reason, sizeof reason)) {
        ERR_clear_error();
        snprintf(why, whylen, "the CA key of %s fails the key policy: %s", origin,
                 key ? reason : "no public key");
        return -1;
    }
    return 0;
}
