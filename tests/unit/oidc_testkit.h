/*
 * tests/unit/oidc_testkit.h: keys, JWKs and tokens for the OIDC unit tests (header-only).
 *
 * Keys are generated with OpenSSL at test time; tokens are minted with libjwt from the PEM
 * private key (the way an issuer would), or assembled by hand when a test needs a token libjwt
 * refuses to make.
 */
#ifndef FULCRUM_TESTS_OIDC_TESTKIT_H
#define FULCRUM_TESTS_OIDC_TESTKIT_H

#include <jansson.h>
#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"

static inline EVP_PKEY *tk_rsa(unsigned bits)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

/* curve: "P-256" or "P-384" */
static inline EVP_PKEY *tk_ec(const char *curve)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

static inline char *tk_bio_text(BIO *b)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = malloc((size_t)n + 1);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static inline char *tk_pem_private(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    return tk_bio_text(b);
}

static inline char *tk_pem_public(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, k);
    return tk_bio_text(b);
}

/* Big-endian bytes of a BIGNUM parameter, left-padded to `pad` bytes (0 = minimal), base64url. */
static inline char *tk_bn_b64(EVP_PKEY *k, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    EVP_PKEY_get_bn_param(k, param, &bn);
    int n = pad ? pad : BN_num_bytes(bn);
    unsigned char *buf = malloc((size_t)n);
    BN_bn2binpad(bn, buf, n);
    char *s = b64url_encode(buf, (size_t)n);
    free(buf);
    BN_free(bn);
    return s;
}

/* The public JWK of k: {"kty":..,"kid":kid,...}; alg and use added when not NULL. */
static inline json_t *tk_jwk(EVP_PKEY *k, const char *kid, const char *alg, const char *use)
{
    json_t *j = json_object();
    if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA) {
        char *n = tk_bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0);
        char *e = tk_bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0);
        json_object_set_new(j, "kty", json_string("RSA"));
        json_object_set_new(j, "n", json_string(n));
        json_object_set_new(j, "e", json_string(e));
        free(n);
        free(e);
    } else {
        int bits = EVP_PKEY_get_bits(k);
        int coord = (bits + 7) / 8;
        char *x = tk_bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, coord);
        char *y = tk_bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, coord);
        json_object_set_new(j, "kty", json_string("EC"));
        json_object_set_new(j, "crv", json_string(bits == 256 ? "P-256" : "P-384"));
        json_object_set_new(j, "x", json_string(x));
        json_object_set_new(j, "y", json_string(y));
        free(x);
        free(y);
    }
    if (kid)
        json_object_set_new(j, "kid", json_string(kid));
    if (alg)
        json_object_set_new(j, "alg", json_string(alg));
    if (use)
        json_object_set_new(j, "use", json_string(use));
    return j;
}

/* {"keys":[jwk...]} as text (caller frees); takes over the JWKs (NULL-terminated list). */
static inline char *tk_jwks_text(json_t *first, ...)
{
    json_t *doc = json_object(), *arr = json_array();
    va_list ap;
    va_start(ap, first);
    for (json_t *k = first; k; k = va_arg(ap, json_t *))
        json_array_append_new(arr, k);
    va_end(ap);
    json_object_set_new(doc, "keys", arr);
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return s;
}

/* A token signed by libjwt with `key` (PEM private key, or the HMAC secret for HS*). */
static inline char *tk_mint(jwt_alg_t alg, const char *key, const char *kid, const char *claims_json)
{
    jwt_t *jwt = NULL;
    char *out = NULL;
    if (jwt_new(&jwt) != 0)
        return NULL;
    if (jwt_add_grants_json(jwt, claims_json) == 0 &&
        jwt_set_alg(jwt, alg, (const unsigned char *)key, key ? (int)strlen(key) : 0) == 0 &&
        (!kid || jwt_add_header(jwt, "kid", kid) == 0)) {
        char *s = jwt_encode_str(jwt);
        if (s) {
            out = strdup(s);
            free(s);
        }
    }
    jwt_free(jwt);
    return out;
}

/* "<b64url(header)>.<b64url(payload)>.<b64url(sig)>" assembled by hand. */
static inline char *tk_assemble(const char *header, const char *payload, const unsigned char *sig,
                         size_t siglen)
{
    char *h = b64url_encode((const unsigned char *)header, strlen(header));
    char *p = b64url_encode((const unsigned char *)payload, strlen(payload));
    char *s = b64url_encode(sig, siglen);
    size_t n = strlen(h) + strlen(p) + strlen(s) + 3;
    char *t = malloc(n);
    snprintf(t, n, "%s.%s.%s", h, p, s);
    free(h);
    free(p);
    free(s);
    return t;
}

#endif
