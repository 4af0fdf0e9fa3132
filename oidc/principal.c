/*
 * oidc/principal.c: verified claims -> challenge, SAN and Fulcio extensions (fulcio-compat §3.4).
 *
 * One function per issuer type; principal_from_claims dispatches on ic->type. Every string put
 * into the principal is checked to be valid UTF-8 (it ends up in a DER UTF8String).
 */
#include "oidc/principal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || !whylen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF, no NUL. */
static int utf8_valid(const char *s, size_t len)
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

/* The claim `name` as a UTF-8 string without NUL, or NULL (absent / not a string / bad UTF-8:
 * *bad_utf8 tells the last apart). */
static const char *claim_str(const json_t *claims, const char *name, int *bad_utf8)
{
    const json_t *v = json_object_get(claims, name);
    *bad_utf8 = 0;
    if (!json_is_string(v))
        return NULL;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (strlen(s) != len || !utf8_valid(s, len)) {
        *bad_utf8 = 1;
        return NULL;
    }
    return s;
}

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
        set_why(why, whylen, "email_verified claim missing");
        return 0;
    }
    if (json_is_true(v))
        return 1;
    if (json_is_false(v)) {
        set_why(why, whylen, "email_verified is false");
        return 0;
    }
    const char *s = json_string_value(v);
    if (s && (strcmp(s, "true") == 0 || strcmp(s, "True") == 0))
        return 1;
    if (s && (strcmp(s, "false") == 0 || strcmp(s, "False") == 0)) {
        set_why(why, whylen, "email_verified is false");
        return 0;
    }
    set_why(why, whylen, "email_verified claim is neither a boolean nor \"true\"/\"false\"");
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

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Sets ext[1], ext[8] (issuer) and ext[24] (sub, when present and not empty). */
static enum principal_error common_exts(const json_t *claims, const char *issuer, principal *out,
                                        char *why, size_t whylen)
{
    int bad = 0;
    const char *sub = claim_str(claims, "sub", &bad);
    if (bad) {
        set_why(why, whylen, "sub claim is not valid UTF-8");
        return PRINCIPAL_VALIDATION_ERROR;
    }
    out->ext[1] = strdup(issuer);
    out->ext[8] = strdup(issuer);
    if (sub && *sub)
        out->ext[24] = strdup(sub);
    if (!out->ext[1] || !out->ext[8] || (sub && *sub && !out->ext[24])) {
        set_why(why, whylen, "out of memory");
        return PRINCIPAL_VALIDATION_ERROR;
    }
    return PRINCIPAL_OK;
}

static enum principal_error email_principal(const issuer_config *ic, const json_t *claims,
                                            principal *out, char *why, size_t whylen)
{
    int bad = 0;
    const json_t *ev = json_object_get(claims, "email");
    if (!ev) {
        set_why(why, whylen, "email claim missing");
        return PRINCIPAL_TOKEN_ERROR;
    }
    const char *email = claim_str(claims, "email", &bad);
    if (bad) {
        set_why(why, whylen, "email claim is not valid UTF-8");
        return PRINCIPAL_VALIDATION_ERROR;
    }
    if (!email) {
        set_why(why, whylen, "email claim is not a string");
        return PRINCIPAL_TOKEN_ERROR;
    }
    if (!email_syntax_ok(email)) {
        set_why(why, whylen, "email claim is not a valid email address");
        return PRINCIPAL_TOKEN_ERROR;
    }
    if (!ic->skip_email_verification && email_verified(claims, why, whylen) != 1)
        return PRINCIPAL_TOKEN_ERROR;

    const char *issuer;
    if (ic->issuer_claim && *ic->issuer_claim) {
        int unsupported = 0;
        const json_t *v = json_path_get(claims, ic->issuer_claim, &unsupported);
        if (unsupported) {
            set_why(why, whylen, "issuer claim path \"%s\" is not supported", ic->issuer_claim);
            return PRINCIPAL_TOKEN_ERROR;
        }
        if (!json_is_string(v) || json_string_length(v) == 0) {
            set_why(why, whylen, "issuer claim \"%s\" is missing or not a string",
                    ic->issuer_claim);
            return PRINCIPAL_TOKEN_ERROR;
        }
        issuer = json_string_value(v);
        if (strlen(issuer) != json_string_length(v) || !utf8_valid(issuer, strlen(issuer))) {
            set_why(why, whylen, "issuer claim \"%s\" is not valid UTF-8", ic->issuer_claim);
            return PRINCIPAL_VALIDATION_ERROR;
        }
    } else {
        issuer = claim_str(claims, "iss", &bad);
        if (bad) {
            set_why(why, whylen, "iss claim is not valid UTF-8");
            return PRINCIPAL_VALIDATION_ERROR;
        }
        if (!issuer || !*issuer) {
            set_why(why, whylen, "iss claim missing");
            return PRINCIPAL_TOKEN_ERROR;
        }
    }

    out->name = dup_or_null(email);
    out->san_kind = SAN_EMAIL;
    out->san_value = dup_or_null(email);
    if (!out->name || !out->san_value) {
        set_why(why, whylen, "out of memory");
        return PRINCIPAL_VALIDATION_ERROR;
    }
    return common_exts(claims, issuer, out, why, whylen);
}

enum principal_error principal_from_claims(const issuer_config *ic, const json_t *claims,
                                           principal *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    if (!ic || !json_is_object(claims)) {
        set_why(why, whylen, "token claims are not a JSON object");
        return PRINCIPAL_TOKEN_ERROR;
    }
    enum principal_error rc;
    switch (ic->type) {
    case ISSUER_TYPE_EMAIL:
        rc = email_principal(ic, claims, out, why, whylen);
        break;
    default:
        set_why(why, whylen, "issuer type %s is not supported yet",
                ic->type_name && *ic->type_name ? ic->type_name : "(unknown)");
        rc = PRINCIPAL_TOKEN_ERROR;
        break;
    }
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
