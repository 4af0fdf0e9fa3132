/*
 * oidc/token.h: an OIDC ID token (JWS compact serialisation): shape check, decoding, signature
 * and claim checks.
 *
 * Why not libjwt's jwt_decode for verification: libjwt 1.10 takes the algorithm from the token
 * (HS256-with-the-PEM-as-secret passes), skips verification when given a NULL key, and re-parses
 * the PEM key on every call (~300 µs, more than the signature itself; ../shared/stack-notes.md).
 * So the algorithm is decided by the JWK (oidc/jwk.h), the header's `alg` must agree with it,
 * and the signature is checked with OpenSSL's EVP_DigestVerify against the EVP_PKEY parsed once
 * when the JWKS was fetched.
 */
#ifndef FULCRUM_OIDC_TOKEN_H
#define FULCRUM_OIDC_TOKEN_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "config/config.h"
#include "oidc/jwk.h"

/* Largest token accepted before any parsing (bytes). */
#define OIDC_TOKEN_MAX_LEN (64 * 1024)
/* Future nbf tolerated (seconds), as go-oidc. */
#define OIDC_NBF_LEEWAY 300

typedef struct oidc_token {
    json_t *header;           /* decoded JOSE header (owned) */
    json_t *claims;           /* decoded payload (owned) */
    const char *alg;          /* header "alg" (points into header), never NULL after parse */
    const char *kid;          /* header "kid" or NULL */
    const char *iss;          /* claims "iss" (points into claims), never NULL after parse */
    char *signing_input;      /* "<header>.<payload>" bytes (owned, NUL-terminated) */
    size_t signing_input_len;
    unsigned char *signature; /* decoded third segment (owned) */
    size_t signature_len;
} oidc_token;

/* Shape first (length cap, exactly two dots, base64url alphabet, no allocation per dot), then
 * decodes header and payload as JSON objects; `iss` must be a non-empty string.
 * Returns 0, or -1 with a reason such as "token is not three dot-separated parts". */
int oidc_token_parse(const char *raw, size_t len, oidc_token *out, char *why, size_t whylen);

/* Checks the signature with `key`. The algorithm is the key's (jwk->alg); the token header's
 * alg must be the same string, so "none", HS* and any mismatch are refused.
 * ES* signatures are raw r||s (converted to DER for OpenSSL). Returns 0 or -1 with a reason. */
int oidc_token_verify_signature(const oidc_token *tok, const oidc_jwk *key, char *why,
                                size_t whylen);

/* Claim checks: iss equals ic->issuer_url exactly (for a meta issuer: the token's own iss, which
 * already matched the pattern); aud (string or array) contains ic->client_id; exp present and
 * > now (no leeway); nbf, if present, <= now + OIDC_NBF_LEEWAY. Returns 0 or -1 with a reason
 * naming the claim ("token expired at 2026-11-25T10:00:00Z", "audience does not contain
 * \"sigstore\"", ...). */
int oidc_token_check_claims(const oidc_token *tok, const issuer_config *ic, time_t now,
                            char *why, size_t whylen);

void oidc_token_clear(oidc_token *tok);

#endif
