/*
 * oidc/jwk.h: JSON Web Keys (RFC 7517) as published by an issuer's jwks_uri, parsed once into
 * OpenSSL keys.
 *
 * Supported: kty RSA (n, e) -> RS256/RS384/RS512; kty EC crv P-256 -> ES256, P-384 -> ES384.
 * A key's JWS algorithm comes from its "alg" member when present (and must be consistent with
 * kty/crv), else RS256 for RSA and ES256/ES384 by curve. Keys with "use" other than "sig",
 * unsupported kty/crv, or bad values are skipped (logged), not fatal to the set.
 */
#ifndef FULCRUM_OIDC_JWK_H
#define FULCRUM_OIDC_JWK_H

#include <openssl/evp.h>
#include <stddef.h>

typedef struct oidc_jwk {
    char *kid;      /* may be "" when the JWK has none */
    char *alg;      /* "RS256", "RS384", "RS512", "ES256", "ES384" */
    EVP_PKEY *pkey; /* owned */
    /* EVP_DigestVerifyInit done once for pkey and alg (digest, RSA PKCS#1 v1.5 padding): a
     * verification starts from a copy (EVP_MD_CTX_copy_ex), which skips the init's provider
     * lookups. Owned, read-only; NULL when it could not be made (verify then initialises). */
    EVP_MD_CTX *verify_tmpl;
} oidc_jwk;

/* An immutable, reference-counted key set. */
typedef struct oidc_jwk_set {
    oidc_jwk *keys;
    size_t n;
    int refs; /* atomic; use jwk_set_ref / jwk_set_release */
} oidc_jwk_set;

/* Parses {"keys":[...]}; returns a set with refs == 1, or NULL with a reason. A document with no
 * usable key is an error. */
oidc_jwk_set *jwk_set_parse(const char *json, size_t len, char *why, size_t whylen);

/* The key with this kid; when kid is NULL or "", the only key if the set has exactly one,
 * otherwise NULL. */
const oidc_jwk *jwk_set_find(const oidc_jwk_set *set, const char *kid);

oidc_jwk_set *jwk_set_ref(oidc_jwk_set *set);
void jwk_set_release(oidc_jwk_set *set);

#endif
