/*
 * oidc/principal_uri.c: the issuer types whose SAN is built from `sub` or a nested claim:
 * uri, spiffe, username (otherName), kubernetes, chainguard-identity (fulcio-compat §3.4).
 *
 * Each follows Fulcio's pkg/identity/<type>/principal.go: the checks its PrincipalFromIDToken
 * makes are token errors, the URL parsing its Embed makes is a validation error. URI SANs are
 * Go's url.Parse(...).String() (or JoinPath) of the value, so they are escaped exactly as Fulcio
 * writes them.
 */
#include <stdlib.h>
#include <string.h>

#include "oidc/go_url.h"
#include "oidc/principal_internal.h"

/* ---- govalidator.IsEmail --------------------------------------------------------------------- */

/* Bytes >= 0x80 stand for the Unicode ranges govalidator accepts (an approximation: the claim is
 * valid UTF-8, and its non-ASCII letters are accepted there). */
static int u8(unsigned char c)
{
    return c >= 0x80;
}

static int alnum_u(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || u8(c);
}

static int alpha_u(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || u8(c);
}

static int atext(unsigned char c)
{
    return alnum_u(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static int domain_char(unsigned char c)
{
    return alnum_u(c) || c == '-' || c == '.' || c == '~';
}

/* dot-atom: atext+ ("." atext+)* */
static int local_dot_atom(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (s[i + 1] == '.')
                return 0;
        } else if (!atext((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* "quoted string": printable content, backslash escapes one character */
static int local_quoted(const char *s, size_t n)
{
    if (n < 2 || s[0] != '"' || s[n - 1] != '"')
        return 0;
    for (size_t i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') {
            if (i + 2 >= n)
                return 0;
            i++;
        } else if (c == '"' || c == '\r' || c == '\n') {
            return 0;
        }
    }
    return 1;
}

/* s[0..n): starts and ends with `ends`, every byte a domain character. */
static int domain_part(const char *s, size_t n, int (*ends)(unsigned char))
{
    if (n == 0 || !ends((unsigned char)s[0]) || !ends((unsigned char)s[n - 1]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!domain_char((unsigned char)s[i]))
            return 0;
    return 1;
}

/* ((label)\.)+ tld \.? -- some dot splits the domain into labels and a letter-bounded TLD. */
static int email_domain(const char *d, size_t n)
{
    if (n > 0 && d[n - 1] == '.')
        n--;
    for (size_t i = 1; i + 1 < n; i++)
        if (d[i] == '.' && domain_part(d, i, alnum_u) && domain_part(d + i + 1, n - i - 1, alpha_u))
            return 1;
    return 0;
}

static int looks_like_email(const char *s)
{
    const char *at = strrchr(s, '@');
    if (!at)
        return 0;
    size_t ln = (size_t)(at - s);
    if (!local_dot_atom(s, ln) && !local_quoted(s, ln))
        return 0;
    return email_domain(at + 1, strlen(at + 1));
}

/* ---- uri --------------------------------------------------------------------------------------
 */

enum principal_error principal_uri(const struct claims_ctx *c, principal *out, char *why,
                                   size_t whylen)
{
    if (looks_like_email(c->sub)) {
        pr_why(why, whylen, "uri subject should not be an email address");
        return PRINCIPAL_TOKEN_ERROR;
    }
    go_url subj, dom;
    if (go_url_parse(c->sub, &subj, why, whylen) != 0)
        return PRINCIPAL_TOKEN_ERROR;
    if (go_url_parse(c->ic->subject_domain ? c->ic->subject_domain : "", &dom, why, whylen) != 0) {
        go_url_clear(&subj);
        return PRINCIPAL_TOKEN_ERROR;
    }
    enum principal_error rc = PRINCIPAL_OK;
    char *h1 = NULL, *h2 = NULL;
    if (strcmp(subj.scheme, dom.scheme) != 0) {
        pr_why(why, whylen, "subject URI scheme (%s) must match expected domain URI scheme (%s)",
               subj.scheme, dom.scheme);
        rc = PRINCIPAL_TOKEN_ERROR;
    } else if (!(h1 = go_url_hostname(&subj)) || !(h2 = go_url_hostname(&dom))) {
        pr_why(why, whylen, "out of memory");
        rc = PRINCIPAL_VALIDATION_ERROR;
    } else if (strcmp(h1, h2) != 0) {
        pr_why(why, whylen, "subject hostname (%s) must match expected domain (%s)", h1, h2);
        rc = PRINCIPAL_TOKEN_ERROR;
    } else {
        out->san_kind = SAN_URI;
        rc = pr_take(&out->san_value, go_url_string(&subj), why, whylen);
    }
    free(h1);
    free(h2);
    go_url_clear(&subj);
    go_url_clear(&dom);
    return rc;
}

/* ---- spiffe (go-spiffe v2 spiffeid rules) ---------------------------------------------------- */

static int td_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

static int path_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

/* spiffeid.FromString: on success the trust domain is id[9 .. 9+*tdlen). NULL or a reason. */
static const char *spiffe_id_check(const char *id, size_t *tdlen)
{
    static const char prefix[] = "spiffe://";
    if (!*id)
        return "cannot be empty";
    if (strncmp(id, prefix, sizeof prefix - 1) != 0)
        return "scheme is missing or invalid";
    const char *rest = id + sizeof prefix - 1;
    size_t i = 0;
    for (; rest[i] && rest[i] != '/'; i++)
        if (!td_char(rest[i]))
            return "trust domain characters are limited to lowercase letters, numbers, dots, "
                   "dashes, and underscores";
    if (i == 0)
        return "trust domain is missing";
    *tdlen = i;
    const char *path = rest + i;
    if (!*path)
        return NULL;
    /* every segment: non-empty, not "." or "..", path characters only */
    const char *seg = path;
    for (const char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - seg); /* including the leading '/' */
            if (n == 1)
                return *p ? "path cannot contain empty segments"
                          : "path cannot have a trailing slash";
            if ((n == 2 && seg[1] == '.') || (n == 3 && seg[1] == '.' && seg[2] == '.'))
                return "path cannot contain dot segments";
            if (!*p)
                return NULL;
            seg = p;
        } else if (!path_char(*p)) {
            return "path segment characters are limited to letters, numbers, dots, dashes, and "
                   "underscores";
        }
    }
}

/* spiffeid.TrustDomainFromString: a bare name, or the trust domain of a SPIFFE ID. */
static const char *spiffe_td_parse(const char *s, const char **td, size_t *tdlen)
{
    if (!*s)
        return "trust domain is missing";
    if (strstr(s, ":/")) {
        const char *err = spiffe_id_check(s, tdlen);
        *td = s + 9;
        return err;
    }
    for (const char *p = s; *p; p++)
        if (!td_char(*p))
            return "trust domain characters are limited to lowercase letters, numbers, dots, "
                   "dashes, and underscores";
    *td = s;
    *tdlen = strlen(s);
    return NULL;
}

enum principal_error principal_spiffe(const struct claims_ctx *c, principal *out, char *why,
                                      size_t whylen)
{
    const char *cfg_td = c->ic->spiffe_trust_domain ? c->ic->spiffe_trust_domain : "";
    const char *td = NULL;
    size_t tdlen = 0, idtd = 0;
    const char *err = spiffe_td_parse(cfg_td, &td, &tdlen);
    if (err) {
        pr_why(why, whylen, "unable to parse trust domain from configuration %s: %s", cfg_td, err);
        return PRINCIPAL_TOKEN_ERROR;
    }
    if (spiffe_id_check(c->sub, &idtd) != NULL) {
        pr_why(why, whylen, "invalid spiffe ID provided: %s", c->sub);
        return PRINCIPAL_TOKEN_ERROR;
    }
    if (idtd != tdlen || memcmp(c->sub + 9, td, tdlen) != 0) {
        pr_why(why, whylen, "spiffe ID trust domain %.*s doesn't match configured trust domain %s",
               (int)idtd, c->sub + 9, cfg_td);
        return PRINCIPAL_TOKEN_ERROR;
    }
    go_url u;
    if (go_url_parse(c->sub, &u, why, whylen) != 0)
        return PRINCIPAL_VALIDATION_ERROR;
    out->san_kind = SAN_URI;
    enum principal_error rc = pr_take(&out->san_value, go_url_string(&u), why, whylen);
    go_url_clear(&u);
    return rc;
}

/* ---- username ---------------------------------------------------------------------------------
 */

enum principal_error principal_username(const struct claims_ctx *c, principal *out, char *why,
                                        size_t whylen)
{
    if (strchr(c->sub, '!')) {
        pr_why(why, whylen, "username cannot contain ! character");
        return PRINCIPAL_TOKEN_ERROR;
    }
    if (looks_like_email(c->sub)) {
        pr_why(why, whylen, "uri subject should not be an email address");
        return PRINCIPAL_TOKEN_ERROR;
    }
    const char *dom = c->ic->subject_domain ? c->ic->subject_domain : "";
    size_t n = strlen(c->sub) + 1 + strlen(dom) + 1;
    char *v = malloc(n);
    if (v) {
        strcpy(v, c->sub);
        strcat(v, "!");
        strcat(v, dom);
    }
    out->san_kind = SAN_OTHERNAME_USERNAME;
    return pr_take(&out->san_value, v, why, whylen);
}

/* ---- kubernetes -------------------------------------------------------------------------------
 */

/* obj[key] as a Go struct: absent or null = empty object; another type is a token error. */
static enum principal_error get_object(const json_t *obj, const char *key, const char *path,
                                       const json_t **out, char *why, size_t whylen)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    *out = NULL;
    if (!v || json_is_null(v))
        return PRINCIPAL_OK;
    if (!json_is_object(v)) {
        pr_type_error(v, path, "struct", why, whylen);
        return PRINCIPAL_TOKEN_ERROR;
    }
    *out = v;
    return PRINCIPAL_OK;
}

static enum principal_error get_string_opt(const json_t *obj, const char *key, const char *path,
                                           const char **out, char *why, size_t whylen)
{
    *out = "";
    return obj ? pr_get_string_at(obj, key, path, out, why, whylen) : PRINCIPAL_OK;
}

enum principal_error principal_kubernetes(const struct claims_ctx *c, principal *out, char *why,
                                          size_t whylen)
{
    const json_t *k8s, *sa, *pod;
    const char *ns, *sa_name, *unused;
    enum principal_error rc;
    if ((rc = get_object(c->claims, "kubernetes.io", "kubernetes.io", &k8s, why, whylen)) ||
        (rc = get_string_opt(k8s, "namespace", "kubernetes.io.namespace", &ns, why, whylen)) ||
        (rc =
             get_object(k8s, "serviceaccount", "kubernetes.io.serviceaccount", &sa, why, whylen)) ||
        (rc = get_string_opt(sa, "name", "kubernetes.io.serviceaccount.name", &sa_name, why,
                             whylen)) ||
        (rc =
             get_string_opt(sa, "uid", "kubernetes.io.serviceaccount.uid", &unused, why, whylen)) ||
        (rc = get_object(k8s, "pod", "kubernetes.io.pod", &pod, why, whylen)) ||
        (rc = get_string_opt(pod, "name", "kubernetes.io.pod.name", &unused, why, whylen)) ||
        (rc = get_string_opt(pod, "uid", "kubernetes.io.pod.uid", &unused, why, whylen)))
        return rc;
    static const char a[] = "https://kubernetes.io/namespaces/", b[] = "/serviceaccounts/";
    size_t n = sizeof a + strlen(ns) + sizeof b + strlen(sa_name);
    char *uri = malloc(n);
    if (!uri)
        return pr_take(&out->san_value, NULL, why, whylen);
    snprintf(uri, n, "%s%s%s%s", a, ns, b, sa_name);
    go_url u;
    int bad = go_url_parse(uri, &u, why, whylen);
    free(uri);
    if (bad)
        return PRINCIPAL_VALIDATION_ERROR;
    out->san_kind = SAN_URI;
    rc = pr_take(&out->san_value, go_url_string(&u), why, whylen);
    go_url_clear(&u);
    return rc;
}

/* ---- chainguard-identity ----------------------------------------------------------------------
 */

enum principal_error principal_chainguard(const struct claims_ctx *c, principal *out, char *why,
                                          size_t whylen)
{
    /* Fulcio decodes act (map[string]string) and internal.service-principal first. */
    const json_t *act, *internal, *v;
    const char *k, *unused;
    enum principal_error rc;
    if ((rc = get_object(c->claims, "act", "act", &act, why, whylen)) != PRINCIPAL_OK)
        return rc;
    json_object_foreach((json_t *)act, k, v)
    {
        if (!json_is_string(v) && !json_is_null(v)) {
            pr_type_error(v, "act", "string", why, whylen);
            return PRINCIPAL_TOKEN_ERROR;
        }
    }
    if ((rc = get_object(c->claims, "internal", "internal", &internal, why, whylen)) ||
        (rc = get_string_opt(internal, "service-principal", "internal.service-principal", &unused,
                             why, whylen)) ||
        (rc = principal_chainguard_challenge(c, out, why, whylen)))
        return rc;

    go_url base;
    if (go_url_parse(c->iss, &base, why, whylen) != 0)
        return PRINCIPAL_VALIDATION_ERROR;
    const char *elems[] = {c->sub};
    char *san = go_url_join_string(&base, elems, 1, why, whylen);
    go_url_clear(&base);
    if (!san)
        return PRINCIPAL_VALIDATION_ERROR;
    out->san_kind = SAN_URI;
    return pr_take(&out->san_value, san, why, whylen);
}
