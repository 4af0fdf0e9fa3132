/* common/json_text.c: see common/json_text.h. */
#include "common/json_text.h"

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

size_t json_text_quoted_len(const char *s)
{
    size_t n = 2;
    char u[7];
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *e = escape_of(*p, u);
        n += e ? (e == u ? 6 : 2) : 1;
    }
    return n;
}

char *json_text_put_quoted(char *dst, const char *s)
{
    char u[7];
    *dst++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *e = escape_of(*p, u);
        if (!e) {
            *dst++ = (char)*p;
            continue;
        }
        while (*e)
            *dst++ = *e++;
    }
    *dst++ = '"';
    return dst;
}
