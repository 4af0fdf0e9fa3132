/*
 * tests/dev_issuer/routes.c: the dev issuer's HTTP endpoints.
 *
 *   GET  /.well-known/openid-configuration   discovery document
 *   GET  /jwks                               the published keys
 *   GET  /token?...  POST /token             a freshly minted JWT (text/plain, no newline)
 *   GET  /stats                              request counters
 *   GET  /control    POST /control           fault injection: delays, statuses, key rotation
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

enum doc { DOC_DISCOVERY, DOC_JWKS };

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
    char *issuer_url;
    char *discovery; /* the discovery document (constant) */
    size_t discovery_len;
    unsigned long long discovery_fetches, jwks_fetches, tokens_minted;
    long delay_ms[2]; /* by enum doc */
    int status[2];
    struct pending *pending;
};

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
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

/* Discovery or JWKS, with whatever /control injected. */
static void serve_doc(dev_issuer *d, struct evhttp_request *req, enum doc which)
{
    if (which == DOC_DISCOVERY)
        d->discovery_fetches++;
    else
        d->jwks_fetches++;
    int status = d->status[which];
    if (status != 200) {
        char body[96];
        int n = snprintf(body, sizeof body, "{\"error\":\"status %d injected by /control\"}",
                         status);
        reply_doc(d, req, status, body, (size_t)n, d->delay_ms[which]);
    } else if (which == DOC_DISCOVERY) {
        reply_doc(d, req, 200, d->discovery, d->discovery_len, d->delay_ms[which]);
    } else {
        reply_doc(d, req, 200, d->keys->jwks, d->keys->jwks_len, d->delay_ms[which]);
    }
}

/* ---- /token ------------------------------------------------------------------------------ */

static void serve_token(dev_issuer *d, struct evhttp_request *req)
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
    char *token = jwt_mint(d->keys, d->issuer_url, params, &bad_request, why, sizeof why);
    json_decref(params);
    if (!token) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s\n", why);
        if (!bad_request)
            log_error(DEV_COMPONENT, "minting failed: %s", why);
        reply_text(req, bad_request ? 400 : 500, msg);
        return;
    }
    d->tokens_minted++;
    reply(req, 200, "text/plain; charset=utf-8", token, strlen(token));
    free(token);
}

/* ---- /stats, /control -------------------------------------------------------------------- */

static void serve_stats(dev_issuer *d, struct evhttp_request *req)
{
    reply_json(req, 200,
               json_pack("{s:I,s:I,s:I}", "discovery_fetches", (json_int_t)d->discovery_fetches,
                         "jwks_fetches", (json_int_t)d->jwks_fetches, "tokens_minted",
                         (json_int_t)d->tokens_minted));
}

static json_t *control_state(const dev_issuer *d)
{
    return json_pack("{s:I,s:I,s:i,s:i,s:[s,s]}", "jwks_delay_ms",
                     (json_int_t)d->delay_ms[DOC_JWKS], "discovery_delay_ms",
                     (json_int_t)d->delay_ms[DOC_DISCOVERY], "jwks_status", d->status[DOC_JWKS],
                     "discovery_status", d->status[DOC_DISCOVERY], "kids", d->keys->rsa.kid,
                     d->keys->ec.kid);
}

static void control_reset(dev_issuer *d)
{
    d->delay_ms[DOC_DISCOVERY] = d->delay_ms[DOC_JWKS] = 0;
    d->status[DOC_DISCOVERY] = d->status[DOC_JWKS] = 200;
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

static void serve_control(dev_issuer *d, struct evhttp_request *req)
{
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        reply_json(req, 200, control_state(d));
        return;
    }
    static const char *const known[] = {"jwks_delay_ms", "discovery_delay_ms", "jwks_status",
                                        "discovery_status", "rotate", "reset", NULL};
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
    int reset = 0, rotate = 0;
    if (!why[0] && control_bool(doc, "reset", &reset, why, sizeof why) == 0 && reset) {
        delays[DOC_DISCOVERY] = delays[DOC_JWKS] = 0;
        statuses[DOC_DISCOVERY] = statuses[DOC_JWKS] = 200;
    }
    if (!why[0] &&
        (control_int(doc, "jwks_delay_ms", 0, MAX_DELAY_MS, &delays[DOC_JWKS], why, sizeof why) ||
         control_int(doc, "discovery_delay_ms", 0, MAX_DELAY_MS, &delays[DOC_DISCOVERY], why,
                     sizeof why) ||
         control_int(doc, "jwks_status", 200, 599, &statuses[DOC_JWKS], why, sizeof why) ||
         control_int(doc, "discovery_status", 200, 599, &statuses[DOC_DISCOVERY], why,
                     sizeof why) ||
         control_bool(doc, "rotate", &rotate, why, sizeof why))) {
        /* why says what */
    }
    json_decref(doc);
    if (!why[0] && rotate && keys_rotate(d->keys, why, sizeof why) != 0) {
        char msg[260];
        snprintf(msg, sizeof msg, "%s\n", why);
        reply_text(req, 500, msg);
        return;
    }
    if (why[0]) {
        char msg[260];
        snprintf(msg, sizeof msg, "%s\n", why);
        reply_text(req, 400, msg);
        return;
    }
    for (int i = 0; i < 2; i++) {
        d->delay_ms[i] = delays[i];
        d->status[i] = (int)statuses[i];
    }
    log_info(DEV_COMPONENT,
             "control: discovery status %d delay %ld ms, jwks status %d delay %ld ms%s",
             d->status[DOC_DISCOVERY], d->delay_ms[DOC_DISCOVERY], d->status[DOC_JWKS],
             d->delay_ms[DOC_JWKS], rotate ? ", keys rotated" : "");
    reply_json(req, 200, control_state(d));
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static void method_not_allowed(struct evhttp_request *req, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    reply_text(req, 405, "method not allowed\n");
}

static void on_request(struct evhttp_request *req, void *arg)
{
    dev_issuer *d = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    int get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD, post = cmd == EVHTTP_REQ_POST;
    if (!path)
        path = "";

    if (strcmp(path, "/.well-known/openid-configuration") == 0) {
        if (get)
            serve_doc(d, req, DOC_DISCOVERY);
        else
            method_not_allowed(req, "GET, HEAD");
    } else if (strcmp(path, "/jwks") == 0) {
        if (get)
            serve_doc(d, req, DOC_JWKS);
        else
            method_not_allowed(req, "GET, HEAD");
    } else if (strcmp(path, "/token") == 0) {
        if (get || post)
            serve_token(d, req);
        else
            method_not_allowed(req, "GET, POST");
    } else if (strcmp(path, "/stats") == 0) {
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
                             "/jwks, /token, /stats and /control\n");
    }
}

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

dev_issuer *routes_new(struct event_base *base, struct evhttp *http, dev_keys *keys,
                       const char *issuer_url)
{
    dev_issuer *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->base = base;
    d->keys = keys;
    d->issuer_url = strdup(issuer_url);
    d->discovery = build_discovery(issuer_url, &d->discovery_len);
    if (!d->issuer_url || !d->discovery) {
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
    free(d->issuer_url);
    free(d->discovery);
    free(d);
}
