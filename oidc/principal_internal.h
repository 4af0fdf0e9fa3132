/*
 * oidc/principal_internal.h: what the principal_*.c files share. Not a public contract.
 *
 * Each issuer type is one function that fills the SAN, the type's extensions and, when the
 * challenge is not `sub`, the name. principal_from_claims (principal.c) does the rest for all
 * types: name defaults to sub, ext[1]/ext[8] default to the token's iss, ext[24] = sub, and a
 * final UTF-8 check of every value.
 *
 * Error kinds follow Fulcio's split: what its *PrincipalFromIDToken functions refuse is
 * PRINCIPAL_TOKEN_ERROR (400, generic identity-token message); what its Embed() refuses (URL
 * parsing, templates, values that cannot be encoded) is PRINCIPAL_VALIDATION_ERROR (400 with
 * the raw text).
 */
#ifndef FULCRUM_OIDC_PRINCIPAL_INTERNAL_H
#define FULCRUM_OIDC_PRINCIPAL_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "config/config.h"
#include "oidc/principal.h"

struct claims_ctx {
    const fulcrum_config *cfg; /* may be NULL (then ci-provider metadata is missing) */
    const issuer_config *ic;
    const json_t *claims;
    const char *iss; /* the token's iss: valid UTF-8, not empty */
    const char *sub; /* the token's sub, "" when absent */
};

void pr_why(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Strict UTF-8 (RFC 3629) without NUL. */
int pr_utf8_valid(const char *s, size_t len);

/* Member `name` of `obj` read the way Go's encoding/json fills a string field: absent or null
 * gives "", a string is checked to be valid UTF-8 without NUL (else VALIDATION_ERROR "<name>
 * claim is not valid UTF-8"), any other JSON type is a TOKEN_ERROR ("json: cannot unmarshal
 * number into Go struct field .<name> of type string"). */
enum principal_error pr_get_string(const json_t *obj, const char *name, const char **out, char *why,
                                   size_t whylen);

/* pr_get_string for obj[key] where messages name the claim `path` (e.g. a nested member
 * "kubernetes.io.namespace"). */
enum principal_error pr_get_string_at(const json_t *obj, const char *key, const char *path,
                                      const char **out, char *why, size_t whylen);

/* pr_get_string, and "" is a TOKEN_ERROR "missing <name> claim in ID token". */
enum principal_error pr_require(const json_t *obj, const char *name, const char **out, char *why,
                                size_t whylen);

/* Go's json type-mismatch message for `v` (named `name`) decoded into Go type `gotype`. */
void pr_type_error(const json_t *v, const char *name, const char *gotype, char *why, size_t whylen);

/* *dst = strdup(v) (v may be NULL: nothing set). VALIDATION_ERROR "out of memory" on failure. */
enum principal_error pr_set(char **dst, const char *v, char *why, size_t whylen);

/* *dst = v, taking ownership of the malloc'd v; v == NULL is out of memory. */
enum principal_error pr_take(char **dst, char *v, char *why, size_t whylen);

/* ---- the types (principal_uri.c) ---- */
enum principal_error principal_uri(const struct claims_ctx *c, principal *out, char *why,
                                   size_t whylen);
enum principal_error principal_spiffe(const struct claims_ctx *c, principal *out, char *why,
                                      size_t whylen);
enum principal_error principal_username(const struct claims_ctx *c, principal *out, char *why,
                                        size_t whylen);
enum principal_error principal_kubernetes(const struct claims_ctx *c, principal *out, char *why,
                                          size_t whylen);
enum principal_error principal_chainguard(const struct claims_ctx *c, principal *out, char *why,
                                          size_t whylen);

/* ---- principal_legacy_ci.c ---- */
enum principal_error principal_github(const struct claims_ctx *c, principal *out, char *why,
                                      size_t whylen);
enum principal_error principal_gitlab(const struct claims_ctx *c, principal *out, char *why,
                                      size_t whylen);
enum principal_error principal_buildkite(const struct claims_ctx *c, principal *out, char *why,
                                         size_t whylen);
enum principal_error principal_codefresh(const struct claims_ctx *c, principal *out, char *why,
                                         size_t whylen);

/* ---- principal.c ---- */
/* chainguard-identity's challenge (sigstore's SubjectFromToken): the email when the token has a
 * non-empty one (email_verified must then be JSON true), else sub (which must not be empty).
 * Sets out->name. */
enum principal_error principal_chainguard_challenge(const struct claims_ctx *c, principal *out,
                                                    char *why, size_t whylen);

#endif
