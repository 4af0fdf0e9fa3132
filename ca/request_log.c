#include "ca/request_log.h"

#include <ctype.h>
#include <event2/keyvalq_struct.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json_text.h"
#include "common/log.h"
#include "common/metrics.h"

#ifndef FULCRUM_VERSION
#define FULCRUM_VERSION "0.1.0"
#endif
#ifndef FULCRUM_REVISION
#define FULCRUM_REVISION "unknown"
#endif
#ifndef FULCRUM_BUILD_DATE
#define FULCRUM_BUILD_DATE "unknown"
#endif

struct reqinfo {
    struct evhttp_request *req;
    double start;
    const char *route;
    const char *reason;
    char id[130];
    char method[12];
    char peer[80];
    char issuer[301];
    char path[201];
};

/* ---- the worker thread's table: open addressing on the request pointer ------------------- */

struct table {
    struct reqinfo **slots;
    size_t cap, count;
};

static pthread_key_t g_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

static void table_free(void *p)
{
    struct table *t = p;
    if (!t)
        return;
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i]);
    free(t->slots);
    free(t);
}

static void make_key(void)
{
    pthread_key_create(&g_key, table_free);
}

static struct table *my_table(int create)
{
    pthread_once(&g_key_once, make_key);
    struct table *t = pthread_getspecific(g_key);
    if (!t && create) {
        t = calloc(1, sizeof *t);
        if (t && (t->slots = calloc(64, sizeof *t->slots)) != NULL) {
            t->cap = 64;
            pthread_setspecific(g_key, t);
        } else {
            free(t);
            t = NULL;
        }
    }
    return t;
}

static size_t slot_of(const struct table *t, const struct evhttp_request *req)
{
    uintptr_t h = (uintptr_t)req;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 7) & (t->cap - 1);
}

static struct reqinfo *table_find(struct table *t, const struct evhttp_request *req, size_t *at)
{
    if (!t)
        return NULL;
    for (size_t i = slot_of(t, req);; i = (i + 1) & (t->cap - 1)) {
        if (!t->slots[i])
            return NULL;
        if (t->slots[i]->req == req) {
            if (at)
                *at = i;
            return t->slots[i];
        }
    }
}

static int table_put(struct table *t, struct reqinfo *ri);

static int table_grow(struct table *t)
{
    struct table bigger = {calloc(t->cap * 2, sizeof *t->slots), t->cap * 2, 0};
    if (!bigger.slots)
        return -1;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i])
            table_put(&bigger, t->slots[i]);
    free(t->slots);
    *t = bigger;
    return 0;
}

static int table_put(struct table *t, struct reqinfo *ri)
{
    if ((t->count + 1) * 2 > t->cap && table_grow(t) != 0)
        return -1;
    size_t i = slot_of(t, ri->req);
    while (t->slots[i])
        i = (i + 1) & (t->cap - 1);
    t->slots[i] = ri;
    t->count++;
    return 0;
}

/* Removes slot i (backward-shift deletion keeps every probe chain intact). */
static void table_remove(struct table *t, size_t i)
{
    t->slots[i] = NULL;
    t->count--;
    for (size_t j = (i + 1) & (t->cap - 1); t->slots[j]; j = (j + 1) & (t->cap - 1)) {
        size_t home = slot_of(t, t->slots[j]->req);
        /* Move slots[j] into the hole unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t->slots[i] = t->slots[j];
            t->slots[j] = NULL;
            i = j;
        }
    }
}

/* ---- metrics ----------------------------------------------------------------------------- */

static metric_family *g_latency, *g_requests, *g_refused;
static pthread_once_t g_metrics_once = PTHREAD_ONCE_INIT;

static void init_metrics(void)
{
    const char *cm[] = {"code", "method", NULL};
    const char *reason[] = {"reason", NULL};
    g_requests = metrics_counter("http_requests_total", "Count all HTTP requests", cm);
    g_latency = metrics_histogram("fulcio_api_latency", "API Latency on calls", cm, NULL, 0);
    g_refused = metrics_counter("fulcrum_requests_refused_total",
                                "Requests answered with an error, by reason", reason);
    const char *bi[] = {"build_date", "goversion", "revision", "version", NULL};
    metric_family *build = metrics_gauge(
        "fulcio_build_info",
        "A metric with a constant '1' value labeled by version, revision, branch, and goversion "
        "from which fulcio was built.",
        bi);
    const char *values[] = {FULCRUM_BUILD_DATE, "none (C11; " __VERSION__ ")", FULCRUM_REVISION,
                            FULCRUM_VERSION};
    metric_set(metric_series_get(build, values), 1);
    /* The families every dashboard expects, present from the start. */
    metrics_counter("fulcio_new_certs", "The total number of certificates generated", NULL);
}

void request_log_init(void)
{
    pthread_once(&g_metrics_once, init_metrics);
}

/* ---- request ids ------------------------------------------------------------------------- */

static char g_prefix[9];
static _Atomic uint64_t g_counter;
static pthread_once_t g_prefix_once = PTHREAD_ONCE_INIT;

static void make_prefix(void)
{
    unsigned char r[4] = {0};
    if (RAND_bytes(r, sizeof r) != 1) {
        uintptr_t a = (uintptr_t)&r;
        memcpy(r, &a, sizeof r);
    }
    snprintf(g_prefix, sizeof g_prefix, "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
}

static int acceptable_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\' || n >= 128)
            return 0;
    }
    return n > 0;
}

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "OTHER";
    }
}

void request_log_begin(struct evhttp_request *req, const char *route)
{
    request_log_init();
    struct table *t = my_table(1);
    if (!t || table_find(t, req, NULL))
        return;
    struct reqinfo *ri = calloc(1, sizeof *ri);
    if (!ri)
        return;
    ri->req = req;
    ri->start = metrics_now();
    ri->route = route;
    snprintf(ri->method, sizeof ri->method, "%s", method_name(evhttp_request_get_command(req)));
    const char *given =
        evhttp_find_header(evhttp_request_get_input_headers(req), "X-Request-ID");
    if (given && acceptable_id(given)) {
        snprintf(ri->id, sizeof ri->id, "%s", given);
    } else {
        pthread_once(&g_prefix_once, make_prefix);
        snprintf(ri->id, sizeof ri->id, "%s-%016llx", g_prefix,
                 (unsigned long long)atomic_fetch_add(&g_counter, 1) + 1);
    }
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (conn) {
        evhttp_connection_get_peer(conn, &addr, &port);
        snprintf(ri->peer, sizeof ri->peer, "%s:%u", addr ? addr : "?", (unsigned)port);
    }
    if (!route) {
        /* Printable ASCII only: the path is the client's. */
        const char *uri = evhttp_request_get_uri(req);
        size_t i = 0;
        for (; uri && uri[i] && i < sizeof ri->path - 1; i++) {
            unsigned char c = (unsigned char)uri[i];
            ri->path[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
        ri->path[i] = '\0';
    }
    if (table_put(t, ri) != 0) {
        free(ri);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Request-ID", ri->id);
}

const char *request_log_id(struct evhttp_request *req)
{
    struct reqinfo *ri = table_find(my_table(0), req, NULL);
    return ri ? ri->id : "";
}

void request_log_set_issuer(struct evhttp_request *req, const char *issuer)
{
    struct reqinfo *ri = table_find(my_table(0), req, NULL);
    if (ri && issuer)
        snprintf(ri->issuer, sizeof ri->issuer, "%s", issuer);
}

void request_log_set_reason(struct evhttp_request *req, const char *reason)
{
    struct reqinfo *ri = table_find(my_table(0), req, NULL);
    if (ri && reason && !ri->reason)
        ri->reason = reason;
}

void request_log_end(struct evhttp_request *req, int status)
{
    struct table *t = my_table(0);
    size_t at = 0;
    struct reqinfo *ri = table_find(t, req, &at);
    if (!ri)
        return;
    table_remove(t, at);
    double seconds = metrics_now() - ri->start;

    char code[16], lower[12], refused[24];
    snprintf(code, sizeof code, "%d", status);
    size_t i = 0;
    for (; ri->method[i] && i < sizeof lower - 1; i++)
        lower[i] = (char)tolower((unsigned char)ri->method[i]);
    lower[i] = '\0';
    metric_inc(metric_get2(g_requests, code, lower));
    metric_observe(metric_get2(g_latency, code, lower), seconds);
    const char *reason = ri->reason;
    if (status >= 400) {
        if (!reason) {
            snprintf(refused, sizeof refused, "http_%d", status);
            reason = refused;
        }
        metric_inc(metric_get1(g_refused, reason));
    }

    if (log_enabled(LOG_LVL_INFO)) {
        const char *route = ri->route ? ri->route : "(unmatched)";
        char msg[200];
        snprintf(msg, sizeof msg, "%s %s %d", ri->method, route, status);
        /* A member whose text is not UTF-8 (a client's path, say) is left out, not the line. */
        json_text_obj o;
        json_text_obj_init(&o);
        json_text_obj_str(&o, "request_id", ri->id);
        json_text_obj_str(&o, "method", ri->method);
        json_text_obj_str(&o, "route", route);
        json_text_obj_int(&o, "status", status);
        json_text_obj_real(&o, "latency_ms", (double)(long long)(seconds * 1e6) / 1e3, 6);
        if (ri->peer[0] && json_text_utf8_valid(ri->peer))
            json_text_obj_str(&o, "peer", ri->peer);
        if (ri->issuer[0] && json_text_utf8_valid(ri->issuer))
            json_text_obj_str(&o, "issuer", ri->issuer);
        if (reason && json_text_utf8_valid(reason))
            json_text_obj_str(&o, "reason", reason);
        if (!ri->route && json_text_utf8_valid(ri->path))
            json_text_obj_str(&o, "path", ri->path);
        char *members = json_text_obj_finish(&o);
        log_json(LOG_LVL_INFO, "request", msg, members);
        free(members);
    }
    free(ri);
}
