/*
 * oidc/go_strconv.c: Go's strconv.Quote, FormatFloat('f', -1) / %v, and encoding/json string
 * escaping, for messages and claim values that must match Fulcio's byte for byte.
 */
#include "oidc/go_strconv.h"

#include "common/strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decodes one UTF-8 sequence at s (n bytes available). Returns its length and the code point,
 * or 0 for an invalid sequence (overlong, surrogate, > U+10FFFF, truncated). */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned int *cp)
{
    unsigned char c = s[0];
    size_t len;
    unsigned int v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2, v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, v = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, v = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10ffff)) ||
        (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

/* unicode.IsPrint for the code points that matter in practice: controls, the non-ASCII
 * spaces, format characters and non-characters are not printable. */
static int go_is_print(unsigned int r)
{
    if (r < 0x20 || (r >= 0x7f && r <= 0x9f))
        return 0;
    if (r == 0xa0 || r == 0xad || r == 0x1680 || (r >= 0x2000 && r <= 0x200f) ||
        (r >= 0x2028 && r <= 0x202f) || (r >= 0x205f && r <= 0x206f) || r == 0x3000 ||
        r == 0xfeff || (r >= 0xfff9 && r <= 0xfffb) || (r & 0xfffe) == 0xfffe ||
        (r >= 0xe000 && r <= 0xf8ff) || r >= 0xf0000)
        return 0;
    return 1;
}

char *go_quote(const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    struct strbuf b = {0};
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    sb_putc(&b, '"');
    while (p < end) {
        unsigned int r;
        size_t n = utf8_decode(p, (size_t)(end - p), &r);
        char tmp[12];
        if (n == 0) {
            tmp[0] = '\\', tmp[1] = 'x', tmp[2] = hex[*p >> 4], tmp[3] = hex[*p & 15];
            sb_putn(&b, tmp, 4);
            p++;
            continue;
        }
        if (r == '"' || r == '\\') {
            tmp[0] = '\\', tmp[1] = (char)r;
            sb_putn(&b, tmp, 2);
        } else if (go_is_print(r)) {
            sb_putn(&b, (const char *)p, n);
        } else {
            const char *named = NULL;
            switch (r) {
            case '\a': named = "\\a"; break;
            case '\b': named = "\\b"; break;
            case '\f': named = "\\f"; break;
            case '\n': named = "\\n"; break;
            case '\r': named = "\\r"; break;
            case '\t': named = "\\t"; break;
            case '\v': named = "\\v"; break;
            default: break;
            }
            if (named)
                sb_puts(&b, named);
            else if (r < 0x20 || r == 0x7f)
                snprintf(tmp, sizeof tmp, "\\x%02x", r), sb_puts(&b, tmp);
            else if (r < 0x10000)
                snprintf(tmp, sizeof tmp, "\\u%04x", r), sb_puts(&b, tmp);
            else
                snprintf(tmp, sizeof tmp, "\\U%08x", r), sb_puts(&b, tmp);
        }
        p += n;
    }
    sb_putc(&b, '"');
    return sb_finish(&b);
}

/* Shortest decimal digits that read back as v (v finite, > 0): digits[0..*nd) and the
 * decimal point position *dp (value = 0.d1d2... x 10^dp). */
static void shortest_digits(double v, char *digits, int *nd, int *dp)
{
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
        if (strtod(buf, NULL) == v || prec == 17)
            break;
    }
    /* buf is "d.ddddde[+-]XX" or "de[+-]XX" */
    int n = 0;
    const char *q = buf;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9')
            digits[n++] = *q;
    int e = atoi(q + 1);
    while (n > 1 && digits[n - 1] == '0')
        n--;
    digits[n] = '\0';
    *nd = n;
    *dp = e + 1;
}

static int special_float(double v, struct strbuf *b)
{
    if (isnan(v)) {
        sb_puts(b, "NaN");
        return 1;
    }
    if (isinf(v)) {
        sb_puts(b, v > 0 ? "+Inf" : "-Inf");
        return 1;
    }
    if (v == 0) {
        sb_puts(b, signbit(v) ? "-0" : "0");
        return 1;
    }
    return 0;
}

/* %f layout of digits/dp with exactly the digits given. */
static void put_fixed(struct strbuf *b, const char *digits, int nd, int dp)
{
    if (dp <= 0) {
        sb_puts(b, "0.");
        for (int i = 0; i < -dp; i++)
            sb_putc(b, '0');
        sb_putn(b, digits, (size_t)nd);
    } else if (dp >= nd) {
        sb_putn(b, digits, (size_t)nd);
        for (int i = nd; i < dp; i++)
            sb_putc(b, '0');
    } else {
        sb_putn(b, digits, (size_t)dp);
        sb_putc(b, '.');
        sb_putn(b, digits + dp, (size_t)(nd - dp));
    }
}

char *go_format_float_f(double v)
{
    struct strbuf b = {0};
    if (!special_float(v, &b)) {
        char digits[40];
        int nd, dp;
        if (v < 0)
            sb_putc(&b, '-');
        shortest_digits(fabs(v), digits, &nd, &dp);
        put_fixed(&b, digits, nd, dp);
    }
    return sb_finish(&b);
}

char *go_format_float_v(double v)
{
    struct strbuf b = {0};
    if (!special_float(v, &b)) {
        char digits[40], tmp[16];
        int nd, dp;
        if (v < 0)
            sb_putc(&b, '-');
        shortest_digits(fabs(v), digits, &nd, &dp);
        int exp = dp - 1;
        if (exp < -4 || exp >= 6) {
            sb_putc(&b, digits[0]);
            if (nd > 1) {
                sb_putc(&b, '.');
                sb_putn(&b, digits + 1, (size_t)(nd - 1));
            }
            snprintf(tmp, sizeof tmp, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
            sb_puts(&b, tmp);
        } else {
            put_fixed(&b, digits, nd, dp);
        }
    }
    return sb_finish(&b);
}

char *go_json_quote(const char *s)
{
    static const char hex[] = "0123456789abcdef";
    struct strbuf b = {0};
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    sb_putc(&b, '"');
    while (p < end) {
        unsigned int r;
        size_t n = utf8_decode(p, (size_t)(end - p), &r);
        char tmp[8];
        if (n == 0) {
            sb_puts(&b, "\\ufffd");
            p++;
            continue;
        }
        switch (r) {
        case '"': sb_puts(&b, "\\\""); break;
        case '\\': sb_puts(&b, "\\\\"); break;
        case '\n': sb_puts(&b, "\\n"); break;
        case '\r': sb_puts(&b, "\\r"); break;
        case '\t': sb_puts(&b, "\\t"); break;
        case '\b': sb_puts(&b, "\\b"); break;
        case '\f': sb_puts(&b, "\\f"); break;
        default:
            if (r < 0x20 || r == '<' || r == '>' || r == '&') {
                tmp[0] = '\\', tmp[1] = 'u', tmp[2] = '0', tmp[3] = '0';
                tmp[4] = hex[r >> 4], tmp[5] = hex[r & 15];
                sb_putn(&b, tmp, 6);
            } else if (r == 0x2028 || r == 0x2029) {
                sb_puts(&b, r == 0x2028 ? "\\u2028" : "\\u2029");
            } else {
                sb_putn(&b, (const char *)p, n);
            }
        }
        p += n;
    }
    sb_putc(&b, '"');
    return sb_finish(&b);
}
