/*
 * tests/dev_issuer/dev_issuer.h: the pieces of fulcrum-dev-issuer, a development/test OIDC issuer.
 *
 * NEVER for production: it mints a signed token for anyone who asks. It listens on loopback only.
 *
 *   main.c      command line, loopback check, listening socket (TLS with --tls-cert), signals,
 *               ready line, port file
 *   keys.c      the signing keys: generation, PEM persistence in --key-dir, JWKS text, rotation
 *   params.c    request parameters: query strings, form bodies and JSON bodies into one JSON object
 *   jwt_mint.c  interpretation of those parameters and the JWT itself (RS256, ES256, none, HS256-PEM)
 *   routes.c    the HTTP endpoints, tenants (/t/<name>), counters, fault injection (/control):
 *               non-blocking delays, statuses, JWKS padding, redirects, rotation
 *
 * Single-threaded: everything runs on one libevent loop, so no locking anywhere.
 */
#ifndef FULCRUM_DEV_ISSUER_H
#define FULCRUM_DEV_ISSUER_H

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>

#define DEV_COMPONENT "dev-issuer"

/* ---- keys.c ------------------------------------------------------------------------------ */

typedef struct dev_key {
    EVP_PKEY *pkey;  /* private key (owned) */
    char kid[32];    /* "dev-rsa-1", "dev-ec-2", ... */
    char *pub_pem;   /* SubjectPublicKeyInfo PEM text (owned): the HS256-PEM secret */
} dev_key;

typedef struct dev_keys {
    dev_key rsa;        /* published RS256 key, RSA-2048 */
    dev_key ec;         /* published ES256 key, P-256 */
    EVP_PKEY *other_rsa; /* unpublished keys for key=other, made on first use (owned) */
    EVP_PKEY *other_ec;
    int generation;     /* 1 at start, +1 per rotation; the kids' suffix */
    char *jwks;         /* {"keys":[...]} text for the current keys (owned) */
    size_t jwks_len;
} dev_keys;

/* Loads the keys from key_dir (rsa.pem, ec.pem: PKCS#8 PEM) or generates and stores them there
 * (mode 0600, written to a temp file then renamed); key_dir NULL = generate in memory only.
 * Returns 0, or -1 with a reason in why. */
int keys_init(dev_keys *k, const char *key_dir, char *why, size_t whylen);

/* New RSA and EC keys with the next generation's kids; the old ones leave the JWKS. In memory
 * only: --key-dir keeps the first keys. Returns 0, or -1 (keys unchanged) with a reason. */
int keys_rotate(dev_keys *k, char *why, size_t whylen);

/* The unpublished key of the same type as `published` (made on first use). NULL on failure. */
EVP_PKEY *keys_other(dev_keys *k, const dev_key *published);

void keys_free(dev_keys *k);

/* ---- params.c ---------------------------------------------------------------------------- */

/* Adds the name=value pairs of an application/x-www-form-urlencoded text to obj as JSON
 * strings (a later duplicate replaces an earlier one). In a query string '+' stays a literal
 * '+' (so ?email=a+b@x works unencoded); in a form body (plus_is_space=1) it means a space.
 * Returns 0, or -1 with a reason (bad %-escape, NUL byte, invalid UTF-8). */
int params_add_urlencoded(json_t *obj, const char *text, size_t len, int plus_is_space,
                          char *why, size_t whylen);

/* The parameters of a /token request: the query string, then the body (JSON object when
 * Content-Type is application/json or the body starts with '{', else form-encoded) overriding
 * it. Returns a new object, or NULL with a reason. */
json_t *params_from_request(struct evhttp_request *req, char *why, size_t whylen);

/* ---- jwt_mint.c -------------------------------------------------------------------------- */

/* Mints a token from the parameters (see README.md for the names) for issuer `issuer_url`.
 * Returns the malloc'd compact JWT, or NULL with a reason (bad parameter or crypto failure);
 * *bad_request is set to 1 when the caller's parameters were at fault. */
char *jwt_mint(dev_keys *k, const char *issuer_url, const json_t *params, int *bad_request,
               char *why, size_t whylen);

/* ---- routes.c ---------------------------------------------------------------------------- */

typedef struct dev_issuer dev_issuer;

/* Creates the endpoint state and installs the request handler on http. keys stays owned by the
 * caller and must outlive the issuer. Returns NULL on failure. */
dev_issuer *routes_new(struct event_base *base, struct evhttp *http, dev_keys *keys,
                       const char *issuer_url);

/* Answers at once the requests an injected delay still holds, and frees everything. Call before
 * evhttp_free(). */
void routes_free(dev_issuer *d);

#endif
