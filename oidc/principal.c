/*
 * oidc/principal.c: verified claims -> challenge, SAN and Fulcio extensions (fulcio-compat §3.4).
 *
 * This file: the dispatch on the issuer type, what every type shares (iss/sub, ext 1/8/24, the
 * final UTF-8 check), the claim getters, the email type and the chainguard-identity challenge
 * rule. The other types live in principal_uri.c (uri, spiffe, username, kubernetes,
 * chainguard-identity), principal_legacy_ci.c (github-workflow, gitlab-pipeline,
 * buildkite-job, codefresh-workflow) and ci_template.c (ci-provider).
 */
#include "oidc/principal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oidc/ci_template.h"
#include "oidc/principal_internal.h"

void pr_why(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || !whylen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

int pr_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned char c = *p;
        size_t n;
        unsigned int cp;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            p++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, cp = c & 0x07;
        } else {
            return 0;
        }
        if ((size_t)(end - p) <= n)
            return 0;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += n + 1;
    }
    return 1;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    default: return "null";
    }
}

void pr_type_error(const json_t *v, const char *name, const char *gotype, char *why, size_t whylen)
{
    pr_why(why, whylen, "json: cannot unmarshal %s into Go struct field .%s of type %s",
           json_kind(v), name, gotype);
}

enum principal_error pr_get_string(const json_t *obj, const char *name, const char **out, char *why,
                                   size_t whylen)
{
    return pr_get_string_at(obj, name, name, out, why, whylen);
}

enum principal_error pr_get_string_at(const json_t *obj, const char *key, const char *name,
                                      const char **out, char *why, size_t whylen)
{
    const json_t *v = json_object_get(obj, key);
    *out = "";
    if (!v || json_is_null(v))
        return PRINCIPAL_OK;
    if (!json_is_string(v)) {
        pr_type_error(v, name, "string", why, whylen);
        return PRINCIPAL_TOKEN_ERROR;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (!pr_utf8_valid(s, len)) {
        pr_why(why, whylen, "%s claim is not valid UTF-8", name);
        return PRINCIPAL_VALIDATION_ERROR;
    }
    *out = s;
    return PRINCIPAL_OK;
}

enum principal_error pr_require(const json_t *obj, const char *name, const char **out, char *why,
                                size_t whylen)
{
    enum principal_error rc = pr_get_string(obj, name, out, why, whylen);
    if (rc == PRINCIPAL_OK && !**out) {
        pr_why(why, whylen, "missing %s claim in ID token", name);
        rc = PRINCIPAL_TOKEN_ERROR;
    }
    return rc;
}

enum principal_error pr_set(char **dst, const char *v, char *why, size_t whylen)
{
    if (!v)
        return PRINCIPAL_OK;
    free(*dst);
    *dst = strdup(v);
    if (!*dst) {
        pr_why(why, whylen, "out of memory");
        return PRINCIPAL_VALIDATION_ERROR;
    }
    return PRINCIPAL_OK;
}

enum principal_error pr_take(char **dst, char *v, char *why, size_t whylen)
{
    if (!v) {
        pr_why(why, whylen, "out of memory");
        return PRINCIPAL_VALIDATION_ERROR;
    }
    free(*dst);
    *dst = v;
    return PRINCIPAL_OK;
}

/* ---- email ---------------------------------------------------------------------------------- */

/* local@domain: exactly one '@', both sides non-empty, no spaces or control characters. */
static int email_syntax_ok(const char *e)
{
    const char *at = strchr(e, '@');
    if (!at || at == e || at[1] == '\0' || strchr(at + 1, '@'))
        return 0;
    for (const unsigned char *p = (const unsigned char *)e; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

/* email_verified: JSON true or "true"/"True" -> 1; false/"false"/"False"/absent -> 0, with why;
 * anything else -> -1. */
static int email_verified(const json_t *claims, char *why, size_t whylen)
{
    const json_t *v = json_object_get(claims, "email_verified");
    if (!v) {
        pr_why(why, whylen, "email_verified claim missing");
        return 0;
    }
    if (json_is_true(v))
        return 1;
    if (json_is_false(v)) {
        pr_why(why, whylen, "email_verified is false");
        return 0;
    }
    const char *s = json_string_value(v);
    if (s && (strcmp(s, "true") == 0 || strcmp(s, "True") == 0))
        return 1;
    if (s && (strcmp(s, "false") == 0 || strcmp(s, "False") == 0)) {
        pr_why(why, whylen, "email_verified is false");
        return 0;
    }
    pr_why(why, whylen, "email_verified claim is neither a boolean nor \"true\"/\"false\"");
    return -1;
}

/* Follows a "$.a.b.c" path (dot-separated member names only) through objects. Returns the
 * value or NULL; *unsupported is set when the path is not of that form. */
static const json_t *json_path_get(const json_t *root, const char *path, int *unsupported)
{
    *unsupported = 0;
    if (strncmp(path, "$.", 2) != 0) {
        *unsupported = 1;
        return NULL;
    }
    const json_t *cur = root;
    const char *p = path + 2;
    while (1) {
        size_t n = strcspn(p, ".");
        if (n == 0 || strpbrk(p, "[]*") != NULL) {
            *unsupported = 1;
            return NULL;
        }
        if (!json_is_object(cur))
            return NULL;
        cur = json_object_getn(cur, p, n);
        if (!cur)
            return NULL;
        if (p[n] == '\0')
            return cur;
        p += n + 1;
    }
}

static enum principal_error email_principal(const struct claims_ctx *c, principal *out, char *why,
                                            size_t whylen)
{
    const issuer_config *ic = c->ic;
    const json_t *ev = json_object_get(c->claims, "email");
    if (!ev) {
        pr_why(why, whylen, "email claim missing");
        return PRINCIPAL_TOKEN_ERROR;
    }
    if (!json_is_string(ev)) {
        pr_why(why, whylen, "email claim is not a string");
        return PRINCIPAL_TOKEN_ERROR;
    }
    const char *email;
    enum principal_error rc = pr_get_string(c->claims, "email", &email, why, whylen);
    if (rc != PRINCIPAL_OK)
        return rc;
    if (!email_syntax_ok(email)) {
        pr_why(why, whylen, "email claim is not a valid email address");
        return PRINCIPAL_TOKEN_ERROR;
    }
    if (!ic->skip_email_verification && email_verified(c->claims, why, whylen) != 1)
        return PRINCIPAL_TOKEN_ERROR;

    const char *issuer = c->iss;
    if (ic->issuer_claim && *ic->issuer_claim) {
        int unsupported = 0;
        const json_t *v = json_path_get(c->claims, ic->issuer_claim, &unsupported);
        if (unsupported) {
            pr_why(why, whylen, "issuer claim path \"%s\" is not supported", ic->issuer_claim);
            return PRINCIPAL_TOKEN_ERROR;
        }
        if (!json_is_string(v) || json_string_length(v) == 0) {
            pr_why(why, whylen, "issuer claim \"%s\" is missing or not a string", ic->issuer_claim);
            return PRINCIPAL_TOKEN_ERROR;
        }
        issuer = json_string_value(v);
        if (!pr_utf8_valid(issuer, json_string_length(v))) {
            pr_why(why, whylen, "issuer claim \"%s\" is not valid UTF-8", ic->issuer_claim);
            return PRINCIPAL_VALIDATION_ERROR;
        }
    }
    out->san_kind = SAN_EMAIL;
    if ((rc = pr_set(&out->name, email, why, whylen)) != PRINCIPAL_OK ||
        (rc = pr_set(&out->san_value, email, why, whylen)) != PRINCIPAL_OK ||
        (rc = pr_set(&out->ext[1], issuer, why, whylen)) != PRINCIPAL_OK)
        return rc;
    return pr_set(&out->ext[8], issuer, why, whylen);
}

/* ---- chainguard-identity challenge ---------------------------------------------------------- */

enum principal_error principal_chainguard_challenge(const struct claims_ctx *c, principal *out,
                                                    char *why, size_t whylen)
{
    const char *email;
    enum principal_error rc = pr_get_string(c->claims, "email", &email, why, whylen);
    if (rc != PRINCIPAL_OK)
        return rc;
    if (*email) {
        const json_t *v = json_object_get(c->claims, "email_verified");
        if (v && !json_is_null(v) && !json_is_boolean(v)) {
            pr_type_error(v, "email_verified", "bool", why, whylen);
            return PRINCIPAL_TOKEN_ERROR;
        }
        if (!json_is_true(v)) {
            pr_why(why, whylen, "not verified by identity provider");
            return PRINCIPAL_TOKEN_ERROR;
        }
        return pr_set(&out->name, email, why, whylen);
    }
    if (!*c->sub) {
        pr_why(why, whylen, "no subject found in claims");
        return PRINCIPAL_TOKEN_ERROR;
    }
    return pr_set(&out->name, c->sub, why, whylen);
}

/* ---- dispatch ------------------------------------------------------------------------------- */

/* Everything that goes into the certificate must be valid UTF-8 (DER UTF8String). */
static enum principal_error check_utf8(const principal *p, char *why, size_t whylen)
{
    if (p->name && !pr_utf8_valid(p->name, strlen(p->name))) {
        pr_why(why, whylen, "the challenge is not valid UTF-8");
        return PRINCIPAL_VALIDATION_ERROR;
    }
    if (p->san_value && !pr_utf8_valid(p->san_value, strlen(p->san_value))) {
        pr_why(why, whylen, "the subject alternative name is not valid UTF-8");
        return PRINCIPAL_VALIDATION_ERROR;
    }
    for (int i = 0; i <= FULCIO_EXT_MAX; i++)
        if (p->ext[i] && !pr_utf8_valid(p->ext[i], strlen(p->ext[i]))) {
            pr_why(why, whylen, "extension 1.3.6.1.4.1.57264.1.%d value is not valid UTF-8", i);
            return PRINCIPAL_VALIDATION_ERROR;
        }
    return PRINCIPAL_OK;
}

static enum principal_error by_type(const struct claims_ctx *c, principal *out, char *why,
                                    size_t whylen)
{
    switch (c->ic->type) {
    case ISSUER_TYPE_EMAIL: return email_principal(c, out, why, whylen);
    case ISSUER_TYPE_SPIFFE: return principal_spiffe(c, out, why, whylen);
    case ISSUER_TYPE_GITHUB_WORKFLOW: return principal_github(c, out, why, whylen);
    case ISSUER_TYPE_GITLAB_PIPELINE: return principal_gitlab(c, out, why, whylen);
    case ISSUER_TYPE_BUILDKITE_JOB: return principal_buildkite(c, out, why, whylen);
    case ISSUER_TYPE_KUBERNETES: return principal_kubernetes(c, out, why, whylen);
    case ISSUER_TYPE_URI: return principal_uri(c, out, why, whylen);
    case ISSUER_TYPE_USERNAME: return principal_username(c, out, why, whylen);
    case ISSUER_TYPE_CODEFRESH_WORKFLOW: return principal_codefresh(c, out, why, whylen);
    case ISSUER_TYPE_CHAINGUARD_IDENTITY: return principal_chainguard(c, out, why, whylen);
    case ISSUER_TYPE_CI_PROVIDER:
        return ci_provider_principal(c->cfg, c->ic, c->claims, c->iss, c->sub, out, why, whylen);
    default:
        pr_why(why, whylen, "issuer type %s is not supported",
               c->ic->type_name && *c->ic->type_name ? c->ic->type_name : "(unknown)");
        return PRINCIPAL_TOKEN_ERROR;
    }
}

enum principal_error principal_from_claims(const fulcrum_config *cfg, const issuer_config *ic,
                                           const json_t *claims, principal *out, char *why,
                                           size_t whylen)
{
    memset(out, 0, sizeof(*out));
    if (!ic || !json_is_object(claims)) {
        pr_why(why, whylen, "token claims are not a JSON object");
        return PRINCIPAL_TOKEN_ERROR;
    }
    struct claims_ctx c = {cfg, ic, claims, NULL, NULL};
    enum principal_error rc = pr_get_string(claims, "iss", &c.iss, why, whylen);
    if (rc == PRINCIPAL_OK && !*c.iss) {
        pr_why(why, whylen, "iss claim missing");
        rc = PRINCIPAL_TOKEN_ERROR;
    }
    if (rc == PRINCIPAL_OK)
        rc = pr_get_string(claims, "sub", &c.sub, why, whylen);
    if (rc == PRINCIPAL_OK)
        rc = by_type(&c, out, why, whylen);
    /* What every type shares: challenge = sub unless the type chose, issuer = the token's iss
     * (never a meta-issuer pattern) unless the type chose, .24 = sub. */
    if (rc == PRINCIPAL_OK && !out->name)
        rc = pr_set(&out->name, c.sub, why, whylen);
    if (rc == PRINCIPAL_OK && !out->ext[1])
        rc = pr_set(&out->ext[1], c.iss, why, whylen);
    if (rc == PRINCIPAL_OK && !out->ext[8])
        rc = pr_set(&out->ext[8], out->ext[1], why, whylen);
    if (rc == PRINCIPAL_OK && *c.sub)
        rc = pr_set(&out->ext[24], c.sub, why, whylen);
    if (rc == PRINCIPAL_OK)
        rc = check_utf8(out, why, whylen);
    if (rc != PRINCIPAL_OK)
        principal_clear(out);
    return rc;
}

void principal_clear(principal *p)
{
    if (!p)
        return;
    free(p->name);
    free(p->san_value);
    for (size_t i = 0; i <= FULCIO_EXT_MAX; i++)
        free(p->ext[i]);
    memset(p, 0, sizeof(*p));
}
