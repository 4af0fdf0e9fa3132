/*
 * oidc/go_url.c: Go net/url's Parse, String, Hostname and JoinPath (see go_url.h).
 *
 * Go keeps a decoded Path plus the RawPath "hint"; String() writes RawPath when it is a valid
 * encoding of Path, else escape(Path). That is the same as: the text as written when every byte
 * of it may appear in an encoded path, else decode-then-encode. So only the written text is
 * stored and the escaped form is computed on output (escaped_form()). Fragments likewise.
 */
#include "oidc/go_url.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oidc/go_strconv.h"
#include "common/strbuf.h"

enum mode { M_PATH, M_HOST, M_USERPASS, M_FRAGMENT };

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int unhex(unsigned char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* net/url shouldEscape for the modes used here. */
static int should_escape(unsigned char c, enum mode m)
{
    if (is_alnum(c))
        return 0;
    if (m == M_HOST) {
        switch (c) {
        case '!':
        case '$':
        case '&':
        case '\'':
        case '(':
        case ')':
        case '*':
        case '+':
        case ',':
        case ';':
        case '=':
        case ':':
        case '[':
        case ']':
        case '<':
        case '>':
        case '"': return 0;
        default: break;
        }
    }
    switch (c) {
    case '-':
    case '_':
    case '.':
    case '~': return 0;
    case '$':
    case '&':
    case '+':
    case ',':
    case '/':
    case ':':
    case ';':
    case '=':
    case '?':
    case '@':
        switch (m) {
        case M_PATH: return c == '?';
        case M_USERPASS: return c == '@' || c == '/' || c == '?' || c == ':';
        case M_FRAGMENT: return 0;
        case M_HOST: return 1;
        }
        return 1;
    default: break;
    }
    if (m == M_FRAGMENT && (c == '!' || c == '(' || c == ')' || c == '*'))
        return 0;
    return 1;
}

/* net/url validEncoded: may `s` appear as is in an encoded path / fragment? */
static int valid_encoded(const char *s, enum mode m)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '!':
        case '$':
        case '&':
        case '\'':
        case '(':
        case ')':
        case '*':
        case '+':
        case ',':
        case ';':
        case '=':
        case ':':
        case '@':
        case '[':
        case ']':
        case '%': continue;
        default:
            if (should_escape(*p, m))
                return 0;
        }
    }
    return 1;
}

/* net/url unescape: n bytes of s, malloc'd result, or NULL with Go's error text in err
 * (err empty on out of memory). */
static char *unescape(const char *s, size_t n, enum mode m, char *err, size_t errlen)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n || !is_hex((unsigned char)s[i + 1]) ||
                !is_hex((unsigned char)s[i + 2])) {
                size_t k = n - i < 3 ? n - i : 3;
                char *q = go_quote(s + i, k);
                set_err(err, errlen, "invalid URL escape %s", q ? q : "");
                free(q);
                return NULL;
            }
            if (m == M_HOST && unhex((unsigned char)s[i + 1]) < 8 &&
                strncmp(s + i, "%25", 3) != 0) {
                char *q = go_quote(s + i, 3);
                set_err(err, errlen, "invalid URL escape %s", q ? q : "");
                free(q);
                return NULL;
            }
            i += 3;
        } else {
            if (m == M_HOST && c < 0x80 && should_escape(c, m)) {
                char *q = go_quote(s + i, 1);
                set_err(err, errlen, "invalid character %s in host name", q ? q : "");
                free(q);
                return NULL;
            }
            i++;
        }
    }
    char *out = malloc(n + 1);
    if (!out) {
        set_err(err, errlen, "%s", "");
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '%') {
            out[o++] = (char)(unhex((unsigned char)s[i + 1]) << 4 | unhex((unsigned char)s[i + 2]));
            i += 3;
        } else {
            out[o++] = s[i++];
        }
    }
    out[o] = '\0';
    return out;
}

static void escape_into(struct strbuf *b, const char *s, size_t n, enum mode m)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (should_escape(c, m)) {
            char t[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_putn(b, t, 3);
        } else {
            sb_putc(b, (char)c);
        }
    }
}

/* Go's EscapedPath / EscapedFragment for a component stored as written (escapes valid). */
static void escaped_form_into(struct strbuf *b, const char *raw, enum mode m)
{
    if (valid_encoded(raw, m)) {
        sb_puts(b, raw);
        return;
    }
    size_t n = strlen(raw);
    char *dec = unescape(raw, n, m, NULL, 0);
    if (!dec) { /* cannot happen for a parsed component; out of memory */
        b->oom = 1;
        return;
    }
    escape_into(b, dec, strlen(dec), m);
    free(dec);
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void go_url_clear(go_url *u)
{
    if (!u)
        return;
    free(u->scheme);
    free(u->opaque);
    free(u->user);
    free(u->password);
    free(u->host);
    free(u->path);
    free(u->raw_query);
    free(u->fragment);
    memset(u, 0, sizeof *u);
}

/* The ":port" after a host: empty, or ':' and digits only. */
static int valid_optional_port(const char *p, size_t n)
{
    if (n == 0)
        return 1;
    if (p[0] != ':')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

static int valid_userinfo(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_alnum(c) || strchr("-._:~!$&'()*+,;=%@", c))
            continue;
        return 0;
    }
    return 1;
}

/* parseHost: returns the decoded host or NULL with a reason. */
static char *parse_host(const char *h, size_t n, char *err, size_t errlen)
{
    if (n > 0 && h[0] == '[') {
        const char *rb = NULL;
        for (size_t i = n; i > 0; i--)
            if (h[i - 1] == ']') {
                rb = h + i - 1;
                break;
            }
        if (!rb) {
            set_err(err, errlen, "missing ']' in host");
            return NULL;
        }
        size_t plen = n - (size_t)(rb + 1 - h);
        if (!valid_optional_port(rb + 1, plen)) {
            char *q = go_quote(rb + 1, plen);
            set_err(err, errlen, "invalid port %s after host", q ? q : "");
            free(q);
            return NULL;
        }
    } else {
        const char *colon = NULL;
        for (size_t i = n; i > 0; i--)
            if (h[i - 1] == ':') {
                colon = h + i - 1;
                break;
            }
        if (colon) {
            size_t plen = n - (size_t)(colon - h);
            if (!valid_optional_port(colon, plen)) {
                char *q = go_quote(colon, plen);
                set_err(err, errlen, "invalid port %s after host", q ? q : "");
                free(q);
                return NULL;
            }
        }
    }
    return unescape(h, n, M_HOST, err, errlen);
}

static int parse_authority(go_url *u, const char *a, size_t n, char *err, size_t errlen)
{
    const char *at = NULL;
    for (size_t i = n; i > 0; i--)
        if (a[i - 1] == '@') {
            at = a + i - 1;
            break;
        }
    const char *h = at ? at + 1 : a;
    u->host = parse_host(h, n - (size_t)(h - a), err, errlen);
    if (!u->host)
        return -1;
    if (!at)
        return 0;
    size_t ulen = (size_t)(at - a);
    if (!valid_userinfo(a, ulen)) {
        set_err(err, errlen, "net/url: invalid userinfo");
        return -1;
    }
    const char *colon = memchr(a, ':', ulen);
    size_t nlen = colon ? (size_t)(colon - a) : ulen;
    u->user = unescape(a, nlen, M_USERPASS, err, errlen);
    if (!u->user)
        return -1;
    if (colon) {
        u->password = unescape(colon + 1, ulen - nlen - 1, M_USERPASS, err, errlen);
        if (!u->password)
            return -1;
    }
    return 0;
}

/* Go's parse(rawURL, viaRequest=false) on the part before '#'. Returns 0 or -1 (reason). */
static int parse_main(go_url *u, const char *s, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            set_err(err, errlen, "net/url: invalid control character in URL");
            return -1;
        }
    if (n == 1 && s[0] == '*') {
        u->path = strdup("*");
        return u->path ? 0 : -1;
    }
    /* getScheme */
    size_t i = 0, scheme_len = 0;
    const char *rest = s;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            continue;
        if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.') {
            if (i == 0)
                break;
            continue;
        }
        if (c == ':') {
            if (i == 0) {
                set_err(err, errlen, "missing protocol scheme");
                return -1;
            }
            scheme_len = i;
            rest = s + i + 1;
        }
        break;
    }
    u->scheme = dupn(s, scheme_len);
    if (!u->scheme)
        return -1;
    for (char *p = u->scheme; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    size_t rlen = n - (size_t)(rest - s);

    /* query */
    const char *q = memchr(rest, '?', rlen);
    size_t qcount = 0;
    for (size_t k = 0; k < rlen; k++)
        qcount += rest[k] == '?';
    if (rlen > 0 && rest[rlen - 1] == '?' && qcount == 1) {
        u->force_query = 1;
        rlen--;
        u->raw_query = strdup("");
    } else if (q) {
        u->raw_query = dupn(q + 1, rlen - (size_t)(q + 1 - rest));
        rlen = (size_t)(q - rest);
    } else {
        u->raw_query = strdup("");
    }
    if (!u->raw_query)
        return -1;

    if (rlen == 0 || rest[0] != '/') {
        if (scheme_len) {
            u->opaque = dupn(rest, rlen);
            return u->opaque ? 0 : -1;
        }
        const char *slash = memchr(rest, '/', rlen);
        size_t seg = slash ? (size_t)(slash - rest) : rlen;
        if (memchr(rest, ':', seg)) {
            set_err(err, errlen, "first path segment in URL cannot contain colon");
            return -1;
        }
    }
    int dbl = rlen >= 2 && rest[0] == '/' && rest[1] == '/';
    int triple = rlen >= 3 && dbl && rest[2] == '/';
    if ((scheme_len || !triple) && dbl) {
        const char *a = rest + 2;
        size_t alen = rlen - 2;
        const char *slash = memchr(a, '/', alen);
        size_t auth_len = slash ? (size_t)(slash - a) : alen;
        if (parse_authority(u, a, auth_len, err, errlen) != 0)
            return -1;
        rest = a + auth_len;
        rlen = alen - auth_len;
    } else if (scheme_len && rlen > 0 && rest[0] == '/') {
        u->omit_host = 1;
    }
    /* setPath: the escapes must decode */
    char *dec = unescape(rest, rlen, M_PATH, err, errlen);
    if (!dec)
        return -1;
    free(dec);
    u->path = dupn(rest, rlen);
    return u->path ? 0 : -1;
}

static int fill_defaults(go_url *u)
{
    char **f[] = {&u->scheme, &u->opaque, &u->host, &u->path, &u->raw_query, &u->fragment};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (!*f[i] && !(*f[i] = strdup("")))
            return -1;
    return 0;
}

int go_url_parse(const char *s, go_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    char reason[256] = "";
    const char *hash = strchr(s, '#');
    size_t n = hash ? (size_t)(hash - s) : strlen(s);
    int rc = parse_main(u, s, n, reason, sizeof reason);
    const char *quoted_part = s;
    size_t quoted_len = n;
    if (rc == 0 && hash && hash[1]) {
        char *dec = unescape(hash + 1, strlen(hash + 1), M_FRAGMENT, reason, sizeof reason);
        if (!dec) {
            rc = -1;
            quoted_len = strlen(s);
        } else {
            free(dec);
            u->fragment = strdup(hash + 1);
            if (!u->fragment)
                rc = -1, reason[0] = '\0';
        }
    }
    if (rc == 0 && fill_defaults(u) != 0)
        rc = -1, reason[0] = '\0';
    if (rc != 0) {
        char *q = go_quote(quoted_part, quoted_len);
        if (reason[0])
            set_err(err, errlen, "parse %s: %s", q ? q : "", reason);
        else
            set_err(err, errlen, "out of memory");
        free(q);
        go_url_clear(u);
        return -1;
    }
    return 0;
}

static void put_userinfo(struct strbuf *b, const go_url *u)
{
    escape_into(b, u->user, strlen(u->user), M_USERPASS);
    if (u->password) {
        sb_putc(b, ':');
        escape_into(b, u->password, strlen(u->password), M_USERPASS);
    }
}

char *go_url_string(const go_url *u)
{
    struct strbuf b = {0};
    if (*u->scheme) {
        sb_puts(&b, u->scheme);
        sb_putc(&b, ':');
    }
    if (*u->opaque) {
        sb_puts(&b, u->opaque);
    } else {
        if (*u->scheme || *u->host || u->user) {
            if (!(u->omit_host && !*u->host && !u->user)) {
                if (*u->host || *u->path || u->user)
                    sb_puts(&b, "//");
                if (u->user) {
                    put_userinfo(&b, u);
                    sb_putc(&b, '@');
                }
                if (*u->host)
                    escape_into(&b, u->host, strlen(u->host), M_HOST);
            }
        }
        struct strbuf pb = {0};
        if (strcmp(u->path, "*") == 0)
            sb_puts(&pb, "*");
        else
            escaped_form_into(&pb, u->path, M_PATH);
        char *ep = sb_finish(&pb);
        if (!ep) {
            sb_free(&b);
            return NULL;
        }
        if (*ep && ep[0] != '/' && *u->host)
            sb_putc(&b, '/');
        if (b.len == 0) {
            size_t seg = strcspn(ep, "/");
            if (memchr(ep, ':', seg))
                sb_puts(&b, "./");
        }
        sb_puts(&b, ep);
        free(ep);
    }
    if (u->force_query || *u->raw_query) {
        sb_putc(&b, '?');
        sb_puts(&b, u->raw_query);
    }
    if (*u->fragment) {
        sb_putc(&b, '#');
        escaped_form_into(&b, u->fragment, M_FRAGMENT);
    }
    return sb_finish(&b);
}

char *go_url_hostname(const go_url *u)
{
    const char *h = u->host;
    size_t n = strlen(h);
    const char *colon = strrchr(h, ':');
    if (colon && valid_optional_port(colon, strlen(colon)))
        n = (size_t)(colon - h);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']')
        return dupn(h + 1, n - 2);
    return dupn(h, n);
}

/* Go's path.Clean on s (which is not empty), into b. */
static void path_clean(struct strbuf *b, const char *path)
{
    size_t n = strlen(path);
    int rooted = path[0] == '/';
    char *out = malloc(n + 2);
    if (!out) {
        b->oom = 1;
        return;
    }
    size_t w = 0, r = 0, dotdot = 0;
    if (rooted) {
        out[w++] = '/';
        r = dotdot = 1;
    }
    while (r < n) {
        if (path[r] == '/') {
            r++;
        } else if (path[r] == '.' && (r + 1 == n || path[r + 1] == '/')) {
            r++;
        } else if (path[r] == '.' && path[r + 1] == '.' && (r + 2 == n || path[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--;
                while (w > dotdot && out[w] != '/')
                    w--;
            } else if (!rooted) {
                if (w > 0)
                    out[w++] = '/';
                out[w++] = '.';
                out[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0))
                out[w++] = '/';
            for (; r < n && path[r] != '/'; r++)
                out[w++] = path[r];
        }
    }
    if (w == 0)
        sb_putc(b, '.');
    else
        sb_putn(b, out, w);
    free(out);
}

char *go_url_join_string(const go_url *u, const char *const *elems, size_t n, char *err,
                         size_t errlen)
{
    struct strbuf ep = {0};
    if (strcmp(u->path, "*") == 0)
        sb_puts(&ep, "*");
    else
        escaped_form_into(&ep, u->path, M_PATH);
    char *first = sb_finish(&ep);
    if (!first) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    int relative = first[0] != '/';
    /* path.Join("/"+first or first, elems...) */
    struct strbuf j = {0};
    if (relative)
        sb_putc(&j, '/');
    sb_puts(&j, first);
    for (size_t i = 0; i < n; i++) {
        if (j.len > 0 || *elems[i]) {
            if (j.len > 0)
                sb_putc(&j, '/');
            sb_puts(&j, elems[i]);
        }
    }
    char *joined = sb_finish(&j);
    /* Go checks the last element as passed to path.Join ("/"+first when relative) */
    const char *last = n ? elems[n - 1] : first;
    size_t last_len = strlen(last);
    int keep_slash = last_len ? last[last_len - 1] == '/' : (n == 0 && relative);
    free(first);
    if (!joined) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    struct strbuf c = {0};
    path_clean(&c, joined);
    free(joined);
    char *cleaned = sb_finish(&c);
    if (!cleaned) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    struct strbuf pb = {0};
    sb_puts(&pb, relative ? cleaned + 1 : cleaned);
    free(cleaned);
    if (keep_slash && (pb.len == 0 || pb.p[pb.len - 1] != '/'))
        sb_putc(&pb, '/');
    char *p = sb_finish(&pb);
    if (!p) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    char *dec = unescape(p, strlen(p), M_PATH, err, errlen);
    if (!dec) {
        free(p);
        return NULL;
    }
    free(dec);
    go_url copy = *u;
    copy.path = p;
    char *s = go_url_string(&copy);
    free(p);
    if (!s)
        set_err(err, errlen, "out of memory");
    return s;
}
