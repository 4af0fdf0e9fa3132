/*
 * tests/dev_issuer/routes.c: the dev issuer's HTTP endpoints.
 *
 *   GET  /.well-known/openid-configuration   discovery document
 *   GET  /jwks                               the published keys
 *   GET  /token?...  POST /token             a freshly minted JWT (text/plain, no newline)
 *   GET  /t/<name>/...                       the three above for tenant <name>: its own issuer
 *                                            URL <base>/t/<name>, the same keys
 *   GET  /stats                              request counters, in total and per tenant
 *   GET  /control    POST /control           fault injection: delays, statuses, padding,
 *                                            redirects, key rotation
 *
 * An injected delay parks the request on a libevent timer, so other requests keep being served.
 */
#include "dev_issuer.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define MAX_DELAY_MS 600000L
#define MAX_PAD_BYTES (64L * 1024 * 1024)
#define MAX_TENANTS 1000
#define MAX_TENANT_NAME 64
#define MAX_REDIRECT_URL 2048

enum doc { DOC_DISCOVERY, DOC_JWKS };

/* One issuer served here: the root (<base>) or a tenant (<base>/t/<name>). */
struct scope {
    struct scope *next;      /* tenants list */
    char name[MAX_TENANT_NAME + 1]; /* "" for the root */
    char *issuer_url;
    char *discovery;         /* the discovery document (constant) */
    size_t discovery_len;
    unsigned long long discovery_fetches, jwks_fetches, tokens_minted;
};

/* A response held back by an injected delay. */
struct pending {
    struct pending *prev, *next;
    dev_issuer *d;
    struct evhttp_request *req;
    struct event *timer;
    int status;
    char *body; /* owned */
    size_t len;
};

struct dev_issuer {
    struct event_base *base;
    dev_keys *keys;
    struct scope root;
    struct scope *tenants; /* in order of first use */
    struct scope **tenants_tail;
    size_t n_tenants;
    long delay_ms[2]; /* by enum doc */
    int status[2];
    char *redirect[2]; /* by enum doc: answer 302 to this URL (NULL = off) */
    long pad_bytes;    /* JWKS answers padded with spaces up to this size (0 = off) */
    struct pending *pending;
};

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Injected Status";
    }
}

static void reply(struct evhttp_request *req, int status, const char *ctype, const char *body,
                  size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
    evhttp_send_reply(req, status, reason(status), NULL);
}

static void reply_text(struct evhttp_request *req, int status, const char *text)
{
    reply(req, status, "text/plain; charset=utf-8", text, strlen(text));
}

static void reply_json(struct evhttp_request *req, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        reply_text(req, 500, "out of memory\n");
        return;
    }
    reply(req, status, "application/json", text, strlen(text));
    free(text);
}

/* ---- delays ------------------------------------------------------------------------------ */

static void pending_unlink(struct pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        p->d->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

static void pending_finish(struct pending *p)
{
    pending_unlink(p);
    reply(p->req, p->status, "application/json", p->body, p->len);
    event_free(p->timer);
    free(p->body);
    free(p);
}

static void on_delay_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pending_finish(arg);
}

/* Sends body now, or after delay_ms from a timer. */
static void reply_doc(dev_issuer *d, struct evhttp_request *req, int status, const char *body,
                      size_t len, long delay_ms)
{
    if (delay_ms <= 0) {
        reply(req, status, "application/json", body, len);
        return;
    }
    struct pending *p = calloc(1, sizeof *p);
    char *copy = p ? malloc(len + 1) : NULL;
    struct event *timer = copy ? evtimer_new(d->base, on_delay_done, p) : NULL;
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
    if (!timer || evtimer_add(timer, &tv) != 0) {
        if (timer)
            event_free(timer);
        free(copy);
        free(p);
        reply(req, status, "application/json", body, len); /* cannot delay: answer now */
        return;
    }
    memcpy(copy, body, len);
    p->d = d;
    p->req = req;
    p->timer = timer;
    p->status = status;
    p->body = copy;
    p->len = len;
    p->next = d->pending;
    if (d->pending)
        d->pending->prev = p;
    d->pending = p;
}

/* ---- discovery, JWKS --------------------------------------------------------------------- */

/* The JWKS text padded with spaces before its closing brace to exactly `size` bytes (still the
 * same JSON). NULL when out of memory. */
static char *padded_jwks(const dev_keys *k, size_t size)
{
    char *out = malloc(size);
    if (!out)
        return NULL;
    memcpy(out, k->jwks, k->jwks_len - 1); /* all but the final '}' */
    memset(out + k->jwks_len - 1, ' ', size - k->jwks_len);
    out[size - 1] = '}';
    return out;
}

/* Discovery or JWKS, with whatever /control injected. A request with a query string is never
 * redirected, so "<same URL>?x" is a same-host redirect target that answers. */
static void serve_doc(dev_issuer *d, struct scope *s, struct evhttp_request *req, enum doc which)
{
    if (which == DOC_DISCOVERY)
        s->discovery_fetches++;
    else
        s->jwks_fetches++;
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (d->redirect[which] && !query) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location", d->redirect[which]);
        reply_text(req, 302, "redirected by /control\n");
        return;
    }
    int status = d->status[which];
    if (status != 200) {
        char body[96];
        int n = snprintf(body, sizeof body, "{\"error\":\"status %d injected by /control\"}",
                         status);
        reply_doc(d, req, status, body, (size_t)n, d->delay_ms[which]);
    } else if (which == DOC_DISCOVERY) {
        reply_doc(d, req, 200, s->discovery, s->discovery_len, d->delay_ms[which]);
    } else if (d->pad_bytes > 0 && (size_t)d->pad_bytes > d->keys->jwks_len) {
        char *body = padded_jwks(d->keys, (size_t)d->pad_bytes);
        if (!body) {
            reply_text(req, 500, "out of memory\n");
            return;
        }
        reply_doc(d, req, 200, body, (size_t)d->pad_bytes, d->delay_ms[which]);
        free(body);
    } else {
        reply_doc(d, req, 200, d->keys->jwks, d->keys->jwks_len, d->delay_ms[which]);
    }
}

/* ---- /token ------------------------------------------------------------------------------ */

static void serve_token(dev_issuer *d, struct scope *s, struct evhttp_request *req)
{
    char why[256] = "";
    json_t *params = params_from_request(req, why, sizeof why);
    if (!params) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s\n", why);
        reply_text(req, 400, msg);
        return;
    }
    int bad_request = 0;
    char *token = jwt_mint(d->keys, s->issuer_url, params, &bad_request, why, sizeof why);
    json_decref(params);
    if (!token) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s\n", why);
        if (!bad_request)
            log_error(DEV_COMPONENT, "minting failed: %s", why);
        reply_text(req, bad_request ? 400 : 500, msg);
        return;
    }
    s->tokens_minted++;
    reply(req, 200, "text/plain; charset=utf-8", token, strlen(token));
    free(token);
}

/* ---- /stats, /control -------------------------------------------------------------------- */

static json_t *scope_stats(const struct scope *s)
{
    return json_pack("{s:I,s:I,s:I}", "discovery_fetches", (json_int_t)s->discovery_fetches,
                     "jwks_fetches", (json_int_t)s->jwks_fetches, "tokens_minted",
                     (json_int_t)s->tokens_minted);
}

/* Totals over the root and every tenant, plus "tenants": {name: counters}. */
static void serve_stats(dev_issuer *d, struct evhttp_request *req)
{
    struct scope total = d->root;
    json_t *tenants = json_object();
    for (const struct scope *t = d->tenants; t; t = t->next) {
        total.discovery_fetches += t->discovery_fetches;
        total.jwks_fetches += t->jwks_fetches;
        total.tokens_minted += t->tokens_minted;
        json_object_set_new(tenants, t->name, scope_stats(t));
    }
    json_t *doc = scope_stats(&total);
    if (doc)
        json_object_set_new(doc, "tenants", tenants);
    else
        json_decref(tenants);
    reply_json(req, 200, doc);
}

static json_t *control_state(const dev_issuer *d)
{
    return json_pack("{s:I,s:I,s:i,s:i,s:I,s:s,s:s,s:[s,s]}", "jwks_delay_ms",
                     (json_int_t)d->delay_ms[DOC_JWKS], "discovery_delay_ms",
                     (json_int_t)d->delay_ms[DOC_DISCOVERY], "jwks_status", d->status[DOC_JWKS],
                     "discovery_status", d->status[DOC_DISCOVERY], "jwks_pad_bytes",
                     (json_int_t)d->pad_bytes, "jwks_redirect",
                     d->redirect[DOC_JWKS] ? d->redirect[DOC_JWKS] : "", "discovery_redirect",
                     d->redirect[DOC_DISCOVERY] ? d->redirect[DOC_DISCOVERY] : "", "kids",
                     d->keys->rsa.kid, d->keys->ec.kid);
}

static void control_reset(dev_issuer *d)
{
    d->delay_ms[DOC_DISCOVERY] = d->delay_ms[DOC_JWKS] = 0;
    d->status[DOC_DISCOVERY] = d->status[DOC_JWKS] = 200;
    d->pad_bytes = 0;
    for (int i = 0; i < 2; i++) {
        free(d->redirect[i]);
        d->redirect[i] = NULL;
    }
}

/* Reads an integer member in [lo, hi] into *out (unchanged when absent). */
static int control_int(json_t *doc, const char *name, long lo, long hi, long *out, char *why,
                       size_t whylen)
{
    json_t *v = json_object_get(doc, name);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(why, whylen, "%s must be an integer from %ld to %ld", name, lo, hi);
        return -1;
    }
    *out = (long)json_integer_value(v);
    return 0;
}

static int control_bool(json_t *doc, const char *name, int *out, char *why, size_t whylen)
{
    json_t *v = json_object_get(doc, name);
    *out = 0;
    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        snprintf(why, whylen, "%s must be true or false", name);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/* A redirect target: absent = unchanged (*set 0); "" or null = off; else an http(s) URL without
 * control characters (it goes into a Location header). */
static int control_url(json_t *doc, const char *name, int *set, const char **out, char *why,
                       size_t whylen)
{
    json_t *v = json_object_get(doc, name);
    *set = v != NULL;
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    const char *s = json_string_value(v);
    int ok = s != NULL && strlen(s) <= MAX_REDIRECT_URL;
    if (ok && *s) {
        ok = strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
        for (const char *p = s; ok && *p; p++)
            ok = (unsigned char)*p > 0x20 && *p != 0x7f;
    }
    if (!ok) {
        snprintf(why, whylen, "%s must be \"\", null or an http(s) URL without spaces", name);
        return -1;
    }
    *out = *s ? s : NULL;
    return 0;
}

static void serve_control(dev_issuer *d, struct evhttp_request *req)
{
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        reply_json(req, 200, control_state(d));
        return;
    }
    static const char *const known[] = {
        "jwks_delay_ms",  "discovery_delay_ms", "jwks_status",        "discovery_status",
        "jwks_pad_bytes", "jwks_redirect",      "discovery_redirect", "rotate",
        "reset",          NULL};
    char why[200] = "";
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    json_error_t jerr;
    json_t *doc = json_loadb(body ? body : "", len, 0, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        reply_text(req, 400, "body must be a JSON object\n");
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) {
        int ok = 0;
        for (int i = 0; known[i]; i++)
            ok |= strcmp(key, known[i]) == 0;
        if (!ok) {
            snprintf(why, sizeof why, "unknown control \"%.64s\"", key);
            break;
        }
    }
    long delays[2] = {d->delay_ms[0], d->delay_ms[1]}, statuses[2] = {d->status[0], d->status[1]};
    long pad = d->pad_bytes;
    int reset = 0, rotate = 0, redir_set[2] = {0, 0};
    const char *redir[2] = {NULL, NULL};
    if (!why[0] && control_bool(doc, "reset", &reset, why, sizeof why) == 0 && reset) {
        delays[DOC_DISCOVERY] = delays[DOC_JWKS] = 0;
        statuses[DOC_DISCOVERY] = statuses[DOC_JWKS] = 200;
        pad = 0;
        redir_set[DOC_DISCOVERY] = redir_set[DOC_JWKS] = 1;
    }
    if (!why[0] &&
        (control_int(doc, "jwks_delay_ms", 0, MAX_DELAY_MS, &delays[DOC_JWKS], why, sizeof why) ||
         control_int(doc, "discovery_delay_ms", 0, MAX_DELAY_MS, &delays[DOC_DISCOVERY], why,
                     sizeof why) ||
         control_int(doc, "jwks_status", 200, 599, &statuses[DOC_JWKS], why, sizeof why) ||
         control_int(doc, "discovery_status", 200, 599, &statuses[DOC_DISCOVERY], why,
                     sizeof why) ||
         control_int(doc, "jwks_pad_bytes", 0, MAX_PAD_BYTES, &pad, why, sizeof why) ||
         control_bool(doc, "rotate", &rotate, why, sizeof why))) {
        /* why says what */
    }
    int set = 0;
    if (!why[0] && control_url(doc, "jwks_redirect", &set, &redir[DOC_JWKS], why, sizeof why) == 0)
        redir_set[DOC_JWKS] |= set;
    if (!why[0] && control_url(doc, "discovery_redirect", &set, &redir[DOC_DISCOVERY], why,
                               sizeof why) == 0)
        redir_set[DOC_DISCOVERY] |= set;
    char *redir_copy[2] = {NULL, NULL};
    for (int i = 0; i < 2 && !why[0]; i++)
        if (redir[i] && !(redir_copy[i] = strdup(redir[i])))
            snprintf(why, sizeof why, "out of memory");
    json_decref(doc); /* redir[] pointed into doc: only the copies are used below */
    if (!why[0] && rotate && keys_rotate(d->keys, why, sizeof why) != 0) {
        char msg[260];
        snprintf(msg, sizeof msg, "%s\n", why);
        free(redir_copy[0]);
        free(redir_copy[1]);
        reply_text(req, 500, msg);
        return;
    }
    if (why[0]) {
        char msg[260];
        snprintf(msg, sizeof msg, "%s\n", why);
        free(redir_copy[0]);
        free(redir_copy[1]);
        reply_text(req, 400, msg);
        return;
    }
    for (int i = 0; i < 2; i++) {
        d->delay_ms[i] = delays[i];
        d->status[i] = (int)statuses[i];
        if (redir_set[i]) {
            free(d->redirect[i]);
            d->redirect[i] = redir_copy[i];
        } else {
            free(redir_copy[i]);
        }
    }
    d->pad_bytes = pad;
    log_info(DEV_COMPONENT,
             "control: discovery status %d delay %ld ms redirect %s, jwks status %d delay %ld ms "
             "redirect %s pad %ld bytes%s",
             d->status[DOC_DISCOVERY], d->delay_ms[DOC_DISCOVERY],
             d->redirect[DOC_DISCOVERY] ? d->redirect[DOC_DISCOVERY] : "off",
             d->status[DOC_JWKS], d->delay_ms[DOC_JWKS],
             d->redirect[DOC_JWKS] ? d->redirect[DOC_JWKS] : "off", d->pad_bytes,
             rotate ? ", keys rotated" : "");
    reply_json(req, 200, control_state(d));
}

/* ---- scopes ------------------------------------------------------------------------------ */

static char *build_discovery(const char *issuer_url, size_t *len)
{
    char jwks_uri[512], token_ep[512];
    snprintf(jwks_uri, sizeof jwks_uri, "%s/jwks", issuer_url);
    snprintf(token_ep, sizeof token_ep, "%s/token", issuer_url);
    json_t *doc = json_pack(
        "{s:s,s:s,s:s,s:[s],s:[s],s:[s,s],s:[s,s],s:[s,s,s,s,s,s,s,s]}", "issuer", issuer_url,
        "jwks_uri", jwks_uri, "token_endpoint", token_ep, "response_types_supported", "id_token",
        "subject_types_supported", "public", "id_token_signing_alg_values_supported", "RS256",
        "ES256", "scopes_supported", "openid", "email", "claims_supported", "iss", "sub", "aud",
        "exp", "iat", "nbf", "email", "email_verified");
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text)
        *len = strlen(text);
    return text;
}

static int scope_init(struct scope *s, const char *issuer_url)
{
    s->issuer_url = strdup(issuer_url);
    s->discovery = s->issuer_url ? build_discovery(issuer_url, &s->discovery_len) : NULL;
    return s->discovery ? 0 : -1;
}

static void scope_clear(struct scope *s)
{
    free(s->issuer_url);
    free(s->discovery);
}

/* 1 when name (n bytes) is a tenant name: [-_a-zA-Z0-9]{1,64}, what a meta-issuer '*' matches. */
static int tenant_name_ok(const char *name, size_t n)
{
    if (n == 0 || n > MAX_TENANT_NAME)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* The tenant called name (n bytes), made on first use. NULL when there are too many or out of
 * memory. */
static struct scope *tenant_get(dev_issuer *d, const char *name, size_t n)
{
    for (struct scope *t = d->tenants; t; t = t->next)
        if (strlen(t->name) == n && memcmp(t->name, name, n) == 0)
            return t;
    if (d->n_tenants >= MAX_TENANTS)
        return NULL;
    struct scope *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    memcpy(t->name, name, n);
    char url[600];
    snprintf(url, sizeof url, "%s/t/%s", d->root.issuer_url, t->name);
    if (scope_init(t, url) != 0) {
        scope_clear(t);
        free(t);
        return NULL;
    }
    *d->tenants_tail = t;
    d->tenants_tail = &t->next;
    d->n_tenants++;
    return t;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static void method_not_allowed(struct evhttp_request *req, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    reply_text(req, 405, "method not allowed\n");
}

/* The issuer endpoints of scope s; `rest` is the path below the scope. Returns 0 when rest
 * named one of them. */
static int serve_issuer_path(dev_issuer *d, struct scope *s, struct evhttp_request *req,
                             const char *rest, int get, int post)
{
    if (strcmp(rest, "/.well-known/openid-configuration") == 0) {
        if (get)
            serve_doc(d, s, req, DOC_DISCOVERY);
        else
            method_not_allowed(req, "GET, HEAD");
    } else if (strcmp(rest, "/jwks") == 0) {
        if (get)
            serve_doc(d, s, req, DOC_JWKS);
        else
            method_not_allowed(req, "GET, HEAD");
    } else if (strcmp(rest, "/token") == 0) {
        if (get || post)
            serve_token(d, s, req);
        else
            method_not_allowed(req, "GET, POST");
    } else {
        return -1;
    }
    return 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    dev_issuer *d = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    int get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD, post = cmd == EVHTTP_REQ_POST;
    if (!path)
        path = "";

    if (strncmp(path, "/t/", 3) == 0) {
        const char *name = path + 3;
        size_t n = strcspn(name, "/");
        const char *rest = name + n;
        int known = strcmp(rest, "/.well-known/openid-configuration") == 0 ||
                    strcmp(rest, "/jwks") == 0 || strcmp(rest, "/token") == 0;
        if (!tenant_name_ok(name, n) || !known) {
            reply_text(req, 404, "not found: a tenant is /t/<[-_a-zA-Z0-9]{1,64}> with "
                                 "/.well-known/openid-configuration, /jwks and /token\n");
            return;
        }
        struct scope *t = tenant_get(d, name, n);
        if (!t) {
            reply_text(req, 503, "too many tenants\n");
            return;
        }
        serve_issuer_path(d, t, req, rest, get, post);
        return;
    }
    if (serve_issuer_path(d, &d->root, req, path, get, post) == 0)
        return;
    if (strcmp(path, "/stats") == 0) {
        if (get)
            serve_stats(d, req);
        else
            method_not_allowed(req, "GET, HEAD");
    } else if (strcmp(path, "/control") == 0) {
        if (get || post)
            serve_control(d, req);
        else
            method_not_allowed(req, "GET, POST");
    } else {
        reply_text(req, 404, "not found: the dev issuer serves /.well-known/openid-configuration, "
                             "/jwks, /token, /t/<tenant>/..., /stats and /control\n");
    }
}

dev_issuer *routes_new(struct event_base *base, struct evhttp *http, dev_keys *keys,
                       const char *issuer_url)
{
    dev_issuer *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->base = base;
    d->keys = keys;
    d->tenants_tail = &d->tenants;
    if (scope_init(&d->root, issuer_url) != 0) {
        routes_free(d);
        return NULL;
    }
    control_reset(d);
    evhttp_set_gencb(http, on_request, d);
    return d;
}

void routes_free(dev_issuer *d)
{
    if (!d)
        return;
    while (d->pending) /* answer what an injected delay still holds */
        pending_finish(d->pending);
    while (d->tenants) {
        struct scope *t = d->tenants;
        d->tenants = t->next;
        scope_clear(t);
        free(t);
    }
    scope_clear(&d->root);
    control_reset(d);
    free(d);
}
