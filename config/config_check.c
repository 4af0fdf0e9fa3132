/*
 * config/config_check.c: checks of single config values (URLs, patterns, SPIFFE trust
 * domains, subject domains, PEM CA certificates, template delimiters).
 *
 * The uri/username/spiffe/CACert rules are Fulcio's (pkg/config validateConfig); the issuer URL
 * and meta-issuer pattern rules are Fulcrum's own, stricter checks.
 */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "oidc/go_template.h"
#include "config/config_internal.h"

__attribute__((format(printf, 3, 4))) static int bad(char *why, size_t whylen, const char *fmt,
                                                     ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int has_ctl_or_space(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return 1;
    return 0;
}

/* Go's getScheme: 1 scheme found (length in *n), 0 none, -1 "missing protocol scheme". */
static int go_scheme(const char *s, size_t *n)
{
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        if (is_alpha(c))
            continue;
        if (is_digit(c) || c == '+' || c == '-' || c == '.') {
            if (i == 0)
                return 0;
            continue;
        }
        if (c == ':') {
            if (i == 0)
                return -1;
            *n = i;
            return 1;
        }
        return 0;
    }
    return 0;
}

/* Go's validOptionalPort: "" or ":" followed by digits only. */
static int valid_optional_port(const char *p, size_t n)
{
    if (n == 0)
        return 1;
    if (p[0] != ':')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!is_digit(p[i]))
            return 0;
    return 1;
}

int config_url_split(const char *url, char *scheme, size_t schemelen, char *host, size_t hostlen)
{
    scheme[0] = host[0] = '\0';
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return -1; /* net/url: invalid control character in URL */
    size_t n = 0;
    int has = go_scheme(url, &n);
    if (has < 0)
        return -1;
    const char *rest = url;
    if (has) {
        snprintf(scheme, schemelen, "%.*s", (int)n, url);
        rest = url + n + 1;
    }
    if (strncmp(rest, "//", 2) != 0)
        return has; /* no authority: hostname "" */
    const char *auth = rest + 2;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (auth[i] == '@')
            at = auth + i;
    if (at) {
        alen -= (size_t)(at + 1 - auth);
        auth = at + 1;
    }
    /* Go's Hostname(): strip a valid optional port after the last ':', then the brackets */
    size_t hlen = alen;
    const char *colon = NULL;
    for (size_t i = 0; i < alen; i++)
        if (auth[i] == ':')
            colon = auth + i;
    if (colon && valid_optional_port(colon, (size_t)(auth + alen - colon)))
        hlen = (size_t)(colon - auth);
    if (hlen >= 2 && auth[0] == '[' && auth[hlen - 1] == ']') {
        auth++;
        hlen -= 2;
    }
    snprintf(host, hostlen, "%.*s", (int)hlen, auth);
    return has;
}

static int host_is_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
        return 1;
    unsigned char a[4];
    return inet_pton(AF_INET, host, a) == 1 && a[0] == 127;
}

static int host_chars_ok(const char *host, size_t n)
{
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        for (size_t i = 1; i + 1 < n; i++)
            if (!(is_digit(host[i]) || (host[i] >= 'a' && host[i] <= 'f') ||
                  (host[i] >= 'A' && host[i] <= 'F') || host[i] == ':' || host[i] == '.'))
                return 0;
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!(is_alpha((char)c) || is_digit((char)c) || c == '.' || c == '-' || c == '_' ||
              c >= 0x80))
            return 0;
    }
    return 1;
}

int config_check_issuer_url(const char *url, char *why, size_t whylen)
{
    if (has_ctl_or_space(url))
        return bad(why, whylen, "contains a space or control character");
    const char *auth;
    int is_http = 0;
    if (strncmp(url, "https://", 8) == 0) {
        auth = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        auth = url + 7;
        is_http = 1;
    } else {
        return bad(why, whylen, "must start with https://");
    }
    if (strchr(url, '?'))
        return bad(why, whylen, "must not have a query (OIDC issuer identifiers have none)");
    if (strchr(url, '#'))
        return bad(why, whylen, "must not have a fragment (OIDC issuer identifiers have none)");
    size_t alen = strcspn(auth, "/");
    if (memchr(auth, '@', alen))
        return bad(why, whylen, "must not contain user info");
    size_t hlen = alen;
    if (alen > 0 && auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (!close)
            return bad(why, whylen, "has an unclosed [ in its host");
        hlen = (size_t)(close - auth) + 1;
    } else {
        const char *colon = memchr(auth, ':', alen);
        if (colon)
            hlen = (size_t)(colon - auth);
    }
    if (hlen == 0)
        return bad(why, whylen, "has no host");
    if (!host_chars_ok(auth, hlen))
        return bad(why, whylen, "has an invalid character in its host");
    if (hlen < alen) {
        const char *port = auth + hlen;
        size_t plen = alen - hlen;
        if (port[0] != ':' || plen < 2 || plen > 6)
            return bad(why, whylen, "has an invalid port");
        for (size_t i = 1; i < plen; i++)
            if (!is_digit(port[i]))
                return bad(why, whylen, "has an invalid port");
    }
    if (is_http) {
        char host[300];
        snprintf(host, sizeof host, "%.*s", (int)(hlen < 299 ? hlen : 299), auth);
        if (!host_is_loopback(host))
            return bad(why, whylen,
                       "must start with https:// (http:// only for localhost, 127.x.x.x, [::1])");
    }
    return 0;
}

int config_check_meta_pattern(const char *pattern, char *why, size_t whylen)
{
    const char *sep = strstr(pattern, "://");
    if (!sep)
        return bad(why, whylen, "must start with https://");
    if (memchr(pattern, '*', (size_t)(sep - pattern)))
        return bad(why, whylen, "has a '*' in its scheme");
    /* http:// is for test issuers on a loopback address: host and port are then literal (the
     * loopback check below sees them as written), '*' may only stand in the path */
    if (strncmp(pattern, "http://", 7) == 0 && memchr(sep + 3, '*', strcspn(sep + 3, "/")))
        return bad(why, whylen,
                   "an http:// pattern may have '*' only in its path (its host must be "
                   "localhost, 127.x.x.x or [::1], and its port literal)");
    char *probe = strdup(pattern);
    if (!probe)
        return bad(why, whylen, "out of memory");
    for (char *p = probe; *p; p++)
        if (*p == '*')
            *p = 'x';
    int rc = config_check_issuer_url(probe, why, whylen);
    free(probe);
    if (rc)
        return -1;
    /* authority of the pattern itself: no '*' in the port or in the last two host labels */
    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/");
    size_t hlen = alen;
    if (auth[0] != '[') {
        const char *colon = memchr(auth, ':', alen);
        if (colon) {
            hlen = (size_t)(colon - auth);
            if (memchr(colon, '*', alen - hlen))
                return bad(why, whylen, "has a '*' in its port");
        }
    }
    size_t end = hlen, labels = 0;
    while (end > 0 && labels < 2) {
        size_t start = end;
        while (start > 0 && auth[start - 1] != '.')
            start--;
        if (memchr(auth + start, '*', end - start))
            return bad(why, whylen,
                       "has a '*' in the last two labels of its host (a token could then choose "
                       "the host its keys are fetched from)");
        labels++;
        end = start > 0 ? start - 1 : 0;
    }
    return 0;
}

static int td_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '.' || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

int config_check_spiffe_trust_domain(const char *td, char *why, size_t whylen)
{
    if (!strstr(td, ":/")) {
        if (!*td)
            return bad(why, whylen, "trust domain is missing");
        if (!td_name_ok(td, strlen(td)))
            return bad(why, whylen, "trust domain characters are limited to lowercase letters, "
                                    "numbers, dots, dashes, and underscores");
        return 0;
    }
    if (strncmp(td, "spiffe://", 9) != 0)
        return bad(why, whylen, "scheme is missing or invalid");
    const char *name = td + 9;
    size_t n = strcspn(name, "/");
    if (n == 0)
        return bad(why, whylen, "trust domain is missing");
    if (!td_name_ok(name, n))
        return bad(why, whylen, "trust domain characters are limited to lowercase letters, "
                                "numbers, dots, dashes, and underscores");
    const char *path = name + n;
    while (*path) { /* path = ("/" segment)*, segment = [A-Za-z0-9._-]+, not "." or ".." */
        const char *seg = path + 1;
        size_t sl = strcspn(seg, "/");
        if (sl == 0)
            return bad(why, whylen, "path cannot contain empty segments");
        if ((sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.'))
            return bad(why, whylen, "path cannot contain dot segments");
        for (size_t i = 0; i < sl; i++) {
            char c = seg[i];
            if (!(is_alpha(c) || is_digit(c) || c == '.' || c == '-' || c == '_'))
                return bad(why, whylen, "path segment characters are limited to letters, "
                                        "numbers, dots, dashes, and underscores");
        }
        path = seg + sl;
    }
    return 0;
}

/* Fulcio's validateAllowedDomain. */
static int allowed_domain(const char *subject_host, const char *issuer_host, char *why,
                          size_t whylen)
{
    if (strcmp(subject_host, issuer_host) == 0)
        return 0;
    const char *s1, *s2, *i1, *i2; /* last and second-to-last labels */
    const char *hosts[2] = {subject_host, issuer_host};
    const char **last[2] = {&s1, &i1}, **second[2] = {&s2, &i2};
    size_t lastlen[2], secondlen[2];
    for (int h = 0; h < 2; h++) {
        const char *s = hosts[h];
        const char *dot = strrchr(s, '.');
        if (!dot)
            return bad(why, whylen, "hostname too short: %.200s", s);
        *last[h] = dot + 1;
        lastlen[h] = strlen(dot + 1);
        const char *prev = dot;
        while (prev > s && prev[-1] != '.')
            prev--;
        *second[h] = prev;
        secondlen[h] = (size_t)(dot - prev);
    }
    if (lastlen[0] == lastlen[1] && memcmp(s1, i1, lastlen[0]) == 0 &&
        secondlen[0] == secondlen[1] && memcmp(s2, i2, secondlen[0]) == 0)
        return 0;
    return bad(why, whylen,
               "hostname top-level and second-level domains do not match: %.200s, %.200s",
               subject_host, issuer_host);
}

int config_check_uri_subject_domain(const char *subject_domain, const char *issuer_url,
                                    char *why, size_t whylen)
{
    char ss[64], sh[512], is[64], ih[512];
    int s = config_url_split(subject_domain, ss, sizeof ss, sh, sizeof sh);
    if (s < 0)
        return bad(why, whylen, "is not a valid URL");
    if (s == 0)
        return bad(why, whylen, "must contain a scheme for type uri");
    int i = config_url_split(issuer_url, is, sizeof is, ih, sizeof ih);
    if (i <= 0)
        return bad(why, whylen, "issuer URL must contain a scheme for type uri");
    if (strcmp(ss, is) != 0)
        return bad(why, whylen, "subject (%s) and issuer (%s) URI schemes do not match", ss, is);
    return allowed_domain(sh, ih, why, whylen);
}

int config_check_username_subject_domain(const char *subject_domain, const char *issuer_url,
                                         char *why, size_t whylen)
{
    char ss[64], sh[512], is[64], ih[512];
    int s = config_url_split(subject_domain, ss, sizeof ss, sh, sizeof sh);
    if (s < 0)
        return bad(why, whylen, "is not a valid URL");
    if (s > 0)
        return bad(why, whylen, "must not contain a scheme for type username");
    int i = config_url_split(issuer_url, is, sizeof is, ih, sizeof ih);
    if (i <= 0)
        return bad(why, whylen, "issuer URL must contain a scheme for type username");
    return allowed_domain(subject_domain, ih, why, whylen);
}

int config_check_ca_pem(const char *pem, char *why, size_t whylen)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio)
        return bad(why, whylen, "out of memory");
    int found = 0;
    for (;;) {
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        long len = 0;
        if (!PEM_read_bio(bio, &name, &header, &data, &len))
            break;
        if (strcmp(name, "CERTIFICATE") == 0 && header[0] == '\0') {
            const unsigned char *p = data;
            X509 *x = d2i_X509(NULL, &p, len);
            if (x)
                found++;
            X509_free(x);
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
    }
    ERR_clear_error();
    BIO_free(bio);
    if (!found)
        return bad(why, whylen, "no PEM certificate could be parsed");
    return 0;
}

int config_check_template(const char *t, char *why, size_t whylen)
{
    const char *p = t;
    while ((p = strstr(p, "{{")) != NULL) {
        p += 2;
        if (p[0] == '-' && (p[1] == ' ' || p[1] == '\t' || p[1] == '\n' || p[1] == '\r'))
            p += 2;
        if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            if (!end)
                return bad(why, whylen, "template: unclosed comment");
            p = end + 2;
        }
        for (;;) {
            if (!*p)
                return bad(why, whylen, "template: unclosed action");
            if (p[0] == '}' && p[1] == '}') {
                p += 2;
                break;
            }
            if (*p == '"' || *p == '`' || *p == '\'') {
                char q = *p++;
                while (*p && *p != q) {
                    if (q != '`' && *p == '\\' && p[1])
                        p++;
                    else if (q != '`' && *p == '\n')
                        break;
                    p++;
                }
                if (*p != q)
                    return bad(why, whylen, "template: unterminated %s",
                               q == '`' ? "raw quoted string" : q == '"' ? "quoted string"
                                                                         : "character constant");
            }
            p++;
        }
    }
    /* Delimiters are sound: now the whole template must parse, as Fulcio checks at start. */
    return go_template_check(t, why, whylen);
}
