/* common/json_text.c: see common/json_text.h. */
#include "common/json_text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The escape of byte c, or NULL when c stands for itself. */
static const char *escape_of(unsigned char c, char u[7])
{
    static const char hex[] = "0123456789ABCDEF"; /* as jansson */
    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: break;
    }
    if (c >= 0x20)
        return NULL;
    u[0] = '\\';
    u[1] = 'u';
    u[2] = '0';
    u[3] = '0';
    u[4] = hex[c >> 4];
    u[5] = hex[c & 0x0f];
    u[6] = '\0';
    return u;
}

/* Bytes that stand for themselves (the common case: checked before escape_of). */
static inline int plain(unsigned char c) { return c >= 0x20 && c != '"' && c != '\\'; }

size_t json_text_quoted_len(const char *s)
{
    size_t n = 2;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (plain(*p)) {
            n++;
            continue;
        }
        char u[7];
        const char *e = escape_of(*p, u);
        n += e == u ? 6 : 2;
    }
    return n;
}

char *json_text_put_quoted(char *dst, const char *s)
{
    *dst++ = '"';
    const unsigned char *p = (const unsigned char *)s;
    for (;;) {
        const unsigned char *run = p;
        while (plain(*p))
            p++;
        memcpy(dst, run, (size_t)(p - run));
        dst += p - run;
        if (!*p)
            break;
        char u[7];
        for (const char *e = escape_of(*p++, u); *e; e++)
            *dst++ = *e;
    }
    *dst++ = '"';
    return dst;
}

/* s as a JSON string literal, appended. */
static void put_quoted(struct strbuf *sb, const char *s)
{
    char u[7];
    const unsigned char *p = (const unsigned char *)s, *run = p;
    sb_putc(sb, '"');
    for (; *p; p++) {
        if (plain(*p))
            continue;
        const char *e = escape_of(*p, u);
        if (e) {
            sb_putn(sb, (const char *)run, (size_t)(p - run));
            sb_puts(sb, e);
            run = p + 1;
        }
    }
    sb_putn(sb, (const char *)run, (size_t)(p - run));
    sb_putc(sb, '"');
}

/* `,"key":` (no comma before the first member) */
static void put_key(json_text_obj *o, const char *key)
{
    if (o->members++)
        sb_putc(&o->sb, ',');
    put_quoted(&o->sb, key);
    sb_putc(&o->sb, ':');
}

void json_text_obj_init(json_text_obj *o)
{
    *o = (json_text_obj){0};
    sb_putc(&o->sb, '{');
}

/* The length (1-4) of the well-formed UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, at most U+10FFFF), or 0. *s is not NUL. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned c = *s;
    size_t n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2
                           : (c & 0xf8) == 0xf0 ? 3 : 4;
    if (n == 4 || (n == 1 && c < 0xc2))
        return 0;
    unsigned cp = n == 0 ? c : c & (0x3f >> n);
    for (size_t i = 1; i <= n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n + 1;
}

int json_text_utf8_valid(const char *text)
{
    for (const unsigned char *s = (const unsigned char *)text; *s;) {
        size_t n = utf8_seq(s);
        if (!n)
            return 0;
        s += n;
    }
    return 1;
}

void json_text_utf8_scrub(char *text)
{
    for (unsigned char *s = (unsigned char *)text; *s;) {
        size_t n = utf8_seq(s);
        if (n) {
            s += n;
        } else {
            *s++ = '?';
        }
    }
}

void json_text_obj_str(json_text_obj *o, const char *key, const char *value)
{
    if (value && !json_text_utf8_valid(value)) {
        o->failed = 1; /* json_string would refuse it too */
        return;
    }
    put_key(o, key);
    if (value)
        put_quoted(&o->sb, value);
    else
        sb_puts(&o->sb, "null");
}

void json_text_obj_int(json_text_obj *o, const char *key, long long value)
{
    put_key(o, key);
    sb_printf(&o->sb, "%lld", value);
}

void json_text_obj_real(json_text_obj *o, const char *key, double value, int precision)
{
    put_key(o, key);
    char num[64];
    int n = isfinite(value) ? snprintf(num, sizeof num, "%.*g", precision, value) : -1;
    if (n <= 0 || (size_t)n >= sizeof num - 3) {
        sb_puts(&o->sb, "null");
        return;
    }
    size_t len = (size_t)n;
    if (!strchr(num, '.') && !strchr(num, 'e')) {
        memcpy(num + len, ".0", 3);
        len += 2;
    }
    char *e = strchr(num, 'e');
    if (e) {
        char *start = e + 1, *end = e + 2;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, len + 1 - (size_t)(end - num));
            len -= (size_t)(end - start);
        }
    }
    sb_putn(&o->sb, num, len);
}

char *json_text_obj_finish(json_text_obj *o)
{
    sb_putc(&o->sb, '}');
    char *text = NULL;
    if (o->failed)
        sb_free(&o->sb);
    else
        text = sb_finish(&o->sb);
    *o = (json_text_obj){0};
    return text;
}
