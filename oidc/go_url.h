/*
 * oidc/go_url.h: the part of Go's net/url that decides Fulcio's URI SANs and URL extensions.
 *
 * Fulcio never writes a claim into a URI SAN as is: it goes through url.Parse and URL.String()
 * (which re-escapes), or URL.JoinPath (which also cleans "." / ".." / "//" from the path).
 * These functions reproduce those results byte for byte for the URL shapes tokens carry, and
 * Go's error texts (`parse "x": invalid port ":y" after host`, ...).
 *
 * A go_url owns all its strings; go_url_clear frees them. Not thread-shared.
 */
#ifndef FULCRUM_OIDC_GO_URL_H
#define FULCRUM_OIDC_GO_URL_H

#include <stddef.h>

typedef struct go_url {
    char *scheme;    /* lower-cased; "" when none */
    char *opaque;    /* "scheme:opaque" form; "" otherwise */
    char *user;      /* decoded user name, NULL = no userinfo */
    char *password;  /* decoded password, NULL = none */
    char *host;      /* decoded host[:port]; "" when there is no authority */
    char *path;      /* the path as written (its %-escapes are valid); "" when none */
    char *raw_query; /* after '?', as written; "" when none */
    char *fragment;  /* after '#', as written; "" when none */
    int force_query; /* a lone trailing '?' */
    int omit_host;   /* "scheme:/path" (no "//") */
} go_url;

/* url.Parse. Returns 0, or -1 with Go's text (`parse "<url>": <reason>`) in err. */
int go_url_parse(const char *s, go_url *u, char *err, size_t errlen);

/* URL.String(). malloc'd; NULL on out of memory. */
char *go_url_string(const go_url *u);

/* URL.Hostname(): host without port and IPv6 brackets. malloc'd. */
char *go_url_hostname(const go_url *u);

/* URL.JoinPath(elems...).String(). The elements are path text (their %-escapes are decoded and
 * re-encoded as Go does). Go silently keeps the old path when the joined path has a bad
 * %-escape; this returns NULL with `invalid URL escape "%zz"` in err instead. */
char *go_url_join_string(const go_url *u, const char *const *elems, size_t n, char *err,
                         size_t errlen);

void go_url_clear(go_url *u);

#endif
