#include "common/json_fast.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32
#define MAX_INT_DIGITS 18 /* always fits a json_int_t (long long) */

typedef struct {
    const char *p, *end;
    char *tmp; /* decoded strings with escapes */
    size_t tmp_cap;
} parser;

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

/* After a literal or a number: the next byte must end the token as jansson's lexer sees it. */
static int at_delimiter(const parser *ps)
{
    if (ps->p == ps->end)
        return 1;
    char c = *ps->p;
    return c == ',' || c == '}' || c == ']' || c == ':' || c == ' ' || c == '\n' || c == '\r' ||
           c == '\t';
}

/* A string at ps->p (the opening quote): *out points at its bytes (in the input, or in ps->tmp
 * when it had escapes), *outlen its length. 0, or -1 to decline. */
static int string_at(parser *ps, const char **out, size_t *outlen)
{
    const char *s = ++ps->p, *q = s;
    while (q < ps->end && *q != '"' && *q != '\\') {
        unsigned char c = (unsigned char)*q;
        if (c < 0x20 || c >= 0x80)
            return -1;
        q++;
    }
    if (q == ps->end)
        return -1;
    if (*q == '"') {
        *out = s;
        *outlen = (size_t)(q - s);
        ps->p = q + 1;
        return 0;
    }
    /* Escapes: decode into tmp (never longer than the input). */
    size_t need = (size_t)(ps->end - s);
    if (need > ps->tmp_cap) {
        char *t = realloc(ps->tmp, need);
        if (!t)
            return -1;
        ps->tmp = t;
        ps->tmp_cap = need;
    }
    size_t n = (size_t)(q - s);
    memcpy(ps->tmp, s, n);
    for (;;) {
        if (q == ps->end)
            return -1;
        unsigned char c = (unsigned char)*q;
        if (c == '"')
            break;
        if (c == '\\') {
            if (++q == ps->end)
                return -1;
            switch (*q) {
            case '"': c = '"'; break;
            case '\\': c = '\\'; break;
            case '/': c = '/'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            default: return -1; /* \u and invalid escapes: jansson's */
            }
        } else if (c < 0x20 || c >= 0x80) {
            return -1;
        }
        ps->tmp[n++] = (char)c;
        q++;
    }
    *out = ps->tmp;
    *outlen = n;
    ps->p = q + 1;
    return 0;
}

static json_t *value_at(parser *ps, int depth);

static json_t *object_at(parser *ps, int depth)
{
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    ps->p++; /* '{' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return obj;
    }
    for (;;) {
        if (ps->p == ps->end || *ps->p != '"')
            goto decline;
        const char *k;
        size_t klen;
        if (string_at(ps, &k, &klen) != 0)
            goto decline;
        /* The key may live in tmp, which the value can reuse: keep a copy when it does. */
        char kbuf[256], *kcopy = NULL;
        if (k == ps->tmp) {
            if (klen >= sizeof kbuf)
                goto decline;
            memcpy(kbuf, k, klen);
            kcopy = kbuf;
        }
        const char *key = kcopy ? kcopy : k;
        if (json_object_getn(obj, key, klen)) /* a duplicate: jansson's error */
            goto decline;
        skip_ws(ps);
        if (ps->p == ps->end || *ps->p != ':')
            goto decline;
        ps->p++;
        skip_ws(ps);
        json_t *v = value_at(ps, depth + 1);
        if (!v || json_object_setn_new_nocheck(obj, key, klen, v) != 0)
            goto decline;
        skip_ws(ps);
        if (ps->p == ps->end)
            goto decline;
        if (*ps->p == '}') {
            ps->p++;
            return obj;
        }
        if (*ps->p != ',')
            goto decline;
        ps->p++;
        skip_ws(ps);
    }
decline:
    json_decref(obj);
    return NULL;
}

static json_t *array_at(parser *ps, int depth)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    ps->p++; /* '[' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return arr;
    }
    for (;;) {
        json_t *v = value_at(ps, depth + 1);
        if (!v || json_array_append_new(arr, v) != 0)
            goto decline;
        skip_ws(ps);
        if (ps->p == ps->end)
            goto decline;
        if (*ps->p == ']') {
            ps->p++;
            return arr;
        }
        if (*ps->p != ',')
            goto decline;
        ps->p++;
        skip_ws(ps);
    }
decline:
    json_decref(arr);
    return NULL;
}

static json_t *integer_at(parser *ps)
{
    const char *q = ps->p;
    int neg = 0;
    if (*q == '-') {
        neg = 1;
        q++;
    }
    const char *digits = q;
    while (q < ps->end && *q >= '0' && *q <= '9')
        q++;
    size_t nd = (size_t)(q - digits);
    if (nd == 0 || nd > MAX_INT_DIGITS || (nd > 1 && *digits == '0'))
        return NULL;
    json_int_t v = 0;
    for (const char *d = digits; d < q; d++)
        v = v * 10 + (*d - '0');
    ps->p = q;
    if (!at_delimiter(ps)) /* fractions, exponents, junk: jansson's */
        return NULL;
    return json_integer(neg ? -v : v);
}

static int literal(parser *ps, const char *word, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return 0;
    ps->p += n;
    return at_delimiter(ps);
}

static json_t *value_at(parser *ps, int depth)
{
    if (ps->p == ps->end || depth > MAX_DEPTH)
        return NULL;
    switch (*ps->p) {
    case '{':
        return object_at(ps, depth);
    case '[':
        return array_at(ps, depth);
    case '"': {
        const char *s;
        size_t n;
        if (string_at(ps, &s, &n) != 0)
            return NULL;
        return json_stringn_nocheck(s, n);
    }
    case 't':
        return literal(ps, "true", 4) ? json_true() : NULL;
    case 'f':
        return literal(ps, "false", 5) ? json_false() : NULL;
    case 'n':
        return literal(ps, "null", 4) ? json_null() : NULL;
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            return integer_at(ps);
        return NULL;
    }
}

json_t *json_fast_try(const char *buf, size_t len)
{
    parser ps = {.p = buf, .end = buf + len};
    skip_ws(&ps);
    json_t *v = NULL;
    if (ps.p < ps.end && (*ps.p == '{' || *ps.p == '['))
        v = value_at(&ps, 0);
    if (v) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            json_decref(v);
            v = NULL;
        }
    }
    free(ps.tmp);
    return v;
}

json_t *json_fast_loadb(const char *buf, size_t len, json_error_t *err)
{
    json_t *v = json_fast_try(buf, len);
    return v ? v : json_loadb(buf, len, JSON_REJECT_DUPLICATES, err);
}
