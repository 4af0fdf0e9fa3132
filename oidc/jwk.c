/*
 * oidc/jwk.c: a JWKS document ({"keys":[...]}) into OpenSSL public keys, parsed once per fetch.
 *
 * RSA keys are built from n and e, EC keys from the uncompressed point 04||x||y, both with
 * EVP_PKEY_fromdata (no PEM/DER decoder: see stack-notes.md). A key that cannot be used is
 * skipped with a log line saying why; the set is an error only when no key is usable.
 */
#include "oidc/jwk.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/log.h"

#define COMPONENT "jwk"

/* RSA moduli below this are refused (Go's crypto/rsa refuses < 1024 bits too). */
#define JWK_RSA_MIN_BITS 1024

static void set_why(char *why, size_t whylen, const char *msg)
{
    if (why && whylen)
        snprintf(why, whylen, "%s", msg);
}

/* The member `name` as a string, or NULL when absent or not a string. */
static const char *member_str(const json_t *obj, const char *name)
{
    return json_string_value(json_object_get(obj, name));
}

/* Decodes the base64url member `name`; NULL when absent, not a string, empty or not base64url. */
static unsigned char *member_b64(const json_t *obj, const char *name, size_t *out_len)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_string(v) || json_string_length(v) == 0)
        return NULL;
    unsigned char *d = b64url_decode_nopad(json_string_value(v), json_string_length(v), out_len);
    if (d && *out_len == 0) {
        free(d);
        return NULL;
    }
    return d;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1)
        (void)EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

/* RSA public key from n and e; NULL with a reason for the log. */
static EVP_PKEY *rsa_from_jwk(const json_t *k, const char **reason)
{
    size_t nlen = 0, elen = 0;
    unsigned char *n = member_b64(k, "n", &nlen);
    unsigned char *e = member_b64(k, "e", &elen);
    BIGNUM *bn_n = n ? BN_bin2bn(n, (int)nlen, NULL) : NULL;
    BIGNUM *bn_e = e ? BN_bin2bn(e, (int)elen, NULL) : NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;

    if (!n || !e) {
        *reason = "n or e missing or not base64url";
    } else if (!bn_n || !bn_e || !bld) {
        *reason = "out of memory";
    } else if (BN_num_bits(bn_n) < JWK_RSA_MIN_BITS) {
        *reason = "RSA modulus shorter than 1024 bits";
    } else if (!BN_is_odd(bn_e) || BN_is_one(bn_e)) {
        *reason = "bad RSA public exponent";
    } else if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
               OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1) {
        *reason = "out of memory";
    } else if (!(pkey = pkey_fromdata("RSA", bld))) {
        *reason = "OpenSSL refused the RSA key";
    }
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return pkey;
}

/* EC public key on `group` from x and y (each exactly `coord` bytes, RFC 7518 §6.2.1.2). */
static EVP_PKEY *ec_from_jwk(const json_t *k, const char *group, size_t coord,
                             const char **reason)
{
    size_t xlen = 0, ylen = 0;
    unsigned char *x = member_b64(k, "x", &xlen);
    unsigned char *y = member_b64(k, "y", &ylen);
    unsigned char point[1 + 2 * 66];
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;

    if (!x || !y) {
        *reason = "x or y missing or not base64url";
        goto out;
    }
    if (xlen != coord || ylen != coord) {
        *reason = "x or y has the wrong length for the curve";
        goto out;
    }
    point[0] = 0x04;
    memcpy(point + 1, x, coord);
    memcpy(point + 1 + coord, y, coord);
    bld = OSSL_PARAM_BLD_new();
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * coord) !=
            1) {
        *reason = "out of memory";
        goto out;
    }
    pkey = pkey_fromdata("EC", bld);
    if (!pkey) {
        *reason = "point is not on the curve";
        goto out;
    }
    /* fromdata already decodes the point with an on-curve check; be explicit about it. */
    EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = chk && EVP_PKEY_public_check(chk) == 1;
    EVP_PKEY_CTX_free(chk);
    if (!ok) {
        *reason = "point is not a valid public key on the curve";
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pkey;
}

/* The verification context oidc_jwk.verify_tmpl describes; NULL on any failure. */
static EVP_MD_CTX *verify_template(EVP_PKEY *pkey, const char *alg)
{
    const char *md_name = strstr(alg, "384") ? "SHA384" : strstr(alg, "512") ? "SHA512" : "SHA256";
    EVP_MD *md = EVP_MD_fetch(NULL, md_name, NULL);
    EVP_MD_CTX *ctx = md ? EVP_MD_CTX_new() : NULL;
    EVP_PKEY_CTX *pctx = NULL;
    int ok = ctx && EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pkey) == 1 &&
             (alg[0] != 'R' || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1);
    EVP_MD_free(md); /* the context holds its own reference */
    if (!ok) {
        EVP_MD_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    return ctx;
}

/* Parses one JWK into *out. Returns 0, or -1 with a reason to log (the key is skipped). */
static int parse_one(const json_t *k, oidc_jwk *out, const char **reason)
{
    if (!json_is_object(k)) {
        *reason = "not a JSON object";
        return -1;
    }
    const json_t *use = json_object_get(k, "use");
    if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0)) {
        *reason = "use is not \"sig\"";
        return -1;
    }
    const json_t *kidv = json_object_get(k, "kid");
    if (kidv && !json_is_string(kidv)) {
        *reason = "kid is not a string";
        return -1;
    }
    const json_t *algv = json_object_get(k, "alg");
    if (algv && !json_is_string(algv)) {
        *reason = "alg is not a string";
        return -1;
    }
    const char *kty = member_str(k, "kty");
    const char *alg = json_string_value(algv);
    const char *want_alg;
    EVP_PKEY *pkey;

    if (!kty) {
        *reason = "kty missing";
        return -1;
    }
    if (strcmp(kty, "RSA") == 0) {
        if (alg && strcmp(alg, "RS256") != 0 && strcmp(alg, "RS384") != 0 &&
            strcmp(alg, "RS512") != 0) {
            *reason = "alg is not RS256, RS384 or RS512 for an RSA key";
            return -1;
        }
        want_alg = alg ? alg : "RS256";
        pkey = rsa_from_jwk(k, reason);
    } else if (strcmp(kty, "EC") == 0) {
        const char *crv = member_str(k, "crv");
        const char *group;
        size_t coord;
        if (crv && strcmp(crv, "P-256") == 0) {
            want_alg = "ES256", group = "prime256v1", coord = 32;
        } else if (crv && strcmp(crv, "P-384") == 0) {
            want_alg = "ES384", group = "secp384r1", coord = 48;
        } else {
            *reason = "EC curve missing or not supported (P-256, P-384)";
            return -1;
        }
        if (alg && strcmp(alg, want_alg) != 0) {
            *reason = "alg does not match the EC curve";
            return -1;
        }
        pkey = ec_from_jwk(k, group, coord, reason);
    } else {
        *reason = "kty not supported (RSA, EC)";
        return -1;
    }
    if (!pkey)
        return -1;
    out->kid = strdup(kidv ? json_string_value(kidv) : "");
    out->alg = strdup(want_alg);
    out->pkey = pkey;
    out->verify_tmpl = verify_template(pkey, want_alg);
    if (!out->kid || !out->alg) {
        free(out->kid);
        free(out->alg);
        EVP_PKEY_free(pkey);
        EVP_MD_CTX_free(out->verify_tmpl);
        memset(out, 0, sizeof(*out));
        *reason = "out of memory";
        return -1;
    }
    return 0;
}

static void set_free(oidc_jwk_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        free(set->keys[i].kid);
        free(set->keys[i].alg);
        EVP_PKEY_free(set->keys[i].pkey);
        EVP_MD_CTX_free(set->keys[i].verify_tmpl);
    }
    free(set->keys);
    free(set);
}

oidc_jwk_set *jwk_set_parse(const char *json, size_t len, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        set_why(why, whylen, "JWKS is not valid JSON");
        return NULL;
    }
    const json_t *keys = json_object_get(doc, "keys");
    if (!json_is_object(doc) || !json_is_array(keys)) {
        set_why(why, whylen, "JWKS has no \"keys\" array");
        json_decref(doc);
        return NULL;
    }
    oidc_jwk_set *set = calloc(1, sizeof(*set));
    size_t cap = json_array_size(keys);
    if (set && cap)
        set->keys = calloc(cap, sizeof(*set->keys));
    if (!set || (cap && !set->keys)) {
        set_why(why, whylen, "out of memory");
        free(set);
        json_decref(doc);
        return NULL;
    }
    for (size_t i = 0; i < cap; i++) {
        const json_t *k = json_array_get(keys, i);
        const char *reason = "invalid";
        if (parse_one(k, &set->keys[set->n], &reason) == 0) {
            set->n++;
        } else {
            const char *kid = json_is_object(k) ? member_str(k, "kid") : NULL;
            log_warn(COMPONENT, "JWKS key %zu (kid \"%.64s\") skipped: %s", i, kid ? kid : "",
                     reason);
            ERR_clear_error();
        }
    }
    json_decref(doc);
    if (set->n == 0) {
        set_why(why, whylen, "JWKS has no usable signing key");
        set_free(set);
        return NULL;
    }
    set->refs = 1;
    return set;
}

const oidc_jwk *jwk_set_find(const oidc_jwk_set *set, const char *kid)
{
    if (!set)
        return NULL;
    if (!kid || !*kid)
        return set->n == 1 ? &set->keys[0] : NULL;
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->keys[i].kid, kid) == 0)
            return &set->keys[i];
    return NULL;
}

oidc_jwk_set *jwk_set_ref(oidc_jwk_set *set)
{
    if (set)
        __atomic_add_fetch(&set->refs, 1, __ATOMIC_RELAXED);
    return set;
}

void jwk_set_release(oidc_jwk_set *set)
{
    if (set && __atomic_sub_fetch(&set->refs, 1, __ATOMIC_ACQ_REL) == 0)
        set_free(set);
}
