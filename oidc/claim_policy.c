/*
 * oidc/claim_policy.c: evaluation of an issuer's claim rules against a token's claims.
 */
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "oidc/claim_policy.h"

#define SHOW_MAX 64

/* Writes s[0..n) quoted, with '"' and '\' escaped and bytes outside printable ASCII as \xNN,
 * cut after `max` bytes of s ("..." after the closing quote then). */
static void quote(char *out, size_t outlen, const char *s, size_t n, size_t max)
{
    size_t o = 0;
    if (outlen < 8) {
        if (outlen)
            out[0] = '\0';
        return;
    }
    out[o++] = '"';
    size_t i;
    for (i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[5];
        if (c == '"' || c == '\\')
            snprintf(esc, sizeof esc, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            snprintf(esc, sizeof esc, "\\x%02x", c);
        else
            snprintf(esc, sizeof esc, "%c", c);
        size_t el = strlen(esc);
        if (o + el + 5 > outlen) /* room for the quote, "..." and the NUL */
            break;
        memcpy(out + o, esc, el);
        o += el;
    }
    out[o++] = '"';
    if (i < n && o + 4 <= outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static const json_t *lookup(const json_t *claims, const struct claim_rule *r)
{
    const json_t *cur = claims;
    for (size_t i = 0; i < r->n_path; i++) {
        if (!json_is_object(cur))
            return NULL;
        cur = json_object_get(cur, r->path[i]);
    }
    return cur;
}

static const char *kind_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        return "null";
    case JSON_REAL:
        return "a real number";
    case JSON_ARRAY:
        return "an array";
    case JSON_OBJECT:
        return "an object";
    default:
        return "of an unexpected type";
    }
}

static int holds(const struct claim_rule *r, const char *s, size_t n)
{
    switch (r->op) {
    case CLAIM_RULE_IN:
        for (size_t i = 0; i < r->n_values; i++)
            if (strcmp(s, r->values[i]) == 0)
                return 1;
        return 0;
    case CLAIM_RULE_EQUALS:
        return strcmp(s, r->values[0]) == 0;
    case CLAIM_RULE_PREFIX: {
        size_t pl = strlen(r->values[0]);
        return n >= pl && memcmp(s, r->values[0], pl) == 0;
    }
    case CLAIM_RULE_SUFFIX: {
        size_t sl = strlen(r->values[0]);
        return n >= sl && memcmp(s + n - sl, r->values[0], sl) == 0;
    }
    case CLAIM_RULE_MATCH:
        return regexec(&r->re, s, 0, NULL, 0) == 0;
    }
    return 0; /* a rule without an operator never holds */
}

static const char *failure_text(enum claim_rule_op op)
{
    switch (op) {
    case CLAIM_RULE_IN:
        return "is not one of the allowed values";
    case CLAIM_RULE_EQUALS:
        return "is not the allowed value";
    case CLAIM_RULE_PREFIX:
        return "does not start with the required prefix";
    case CLAIM_RULE_SUFFIX:
        return "does not end with the required suffix";
    case CLAIM_RULE_MATCH:
        return "does not match the required pattern";
    }
    return "cannot be checked";
}

int claim_policy_check(const issuer_config *ic, const json_t *claims, char *why, size_t whylen)
{
    if (!ic || ic->n_rules == 0)
        return 0;
    if (!json_is_object(claims)) {
        snprintf(why, whylen, "the token's claims are not a JSON object");
        return -1;
    }
    for (size_t i = 0; i < ic->n_rules; i++) {
        const struct claim_rule *r = &ic->rules[i];
        char name[300], shown[SHOW_MAX * 4 + 8], num[32];
        quote(name, sizeof name, r->claim, strlen(r->claim), 200);
        const json_t *v = lookup(claims, r);
        const char *s = NULL;
        size_t n = 0;
        if (!v) {
            snprintf(why, whylen, "claim %s is missing (rule %zu of %s)", name, i + 1,
                     ic->issuer_url);
            return -1;
        }
        if (json_is_string(v)) {
            s = json_string_value(v);
            n = json_string_length(v);
            if (strlen(s) != n) {
                snprintf(why, whylen, "claim %s contains a NUL character (rule %zu of %s)", name,
                         i + 1, ic->issuer_url);
                return -1;
            }
            quote(shown, sizeof shown, s, n, SHOW_MAX);
        } else if (json_is_integer(v)) {
            snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            s = num;
            n = strlen(num);
            snprintf(shown, sizeof shown, "%s", num);
        } else if (json_is_boolean(v)) {
            s = json_is_true(v) ? "true" : "false";
            n = strlen(s);
            snprintf(shown, sizeof shown, "%s", s);
        } else {
            snprintf(why, whylen,
                     "claim %s is %s, not a string, integer or boolean (rule %zu of %s)", name,
                     kind_name(v), i + 1, ic->issuer_url);
            return -1;
        }
        if (!holds(r, s, n)) {
            snprintf(why, whylen, "claim %s = %s %s (rule %zu of %s)", name, shown,
                     failure_text(r->op), i + 1, ic->issuer_url);
            return -1;
        }
    }
    return 0;
}
