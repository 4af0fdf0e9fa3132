/*
 * oidc/jwks_cache.c: per-issuer OpenID discovery + JWKS, fetched by one background thread (the
 * discovery document's check and the URL policy are oidc/discovery.c).
 *
 * Why curl_multi_poll + curl_multi_wakeup and not curl_multi_socket_action on a libevent base:
 * the fetch thread does a handful of requests per issuer per TTL, never thousands at once, so the
 * event-driven socket API (socket/timer callbacks, an event per fd) buys nothing here; the poll
 * loop is short, handles curl's own timers, and curl_multi_wakeup is the one thread-safe way for
 * a worker to hand it a new fetch. Workers never wait on it: they get PENDING and a callback on
 * their own event_base (event_new(base, -1, ...) + event_active from this thread, which is safe
 * because the process runs evthread_use_pthreads()).
 *
 * Retries: a failed fetch arms a retry at now + backoff (jwks_cache_retry_delay_ms); the fetch
 * thread starts it itself when it is due (its poll timeout is the nearest due retry), so retries
 * cost no request anything and a flood of requests for a failing issuer causes no fetch at all.
 * Retries stay armed for configured (prefetched) issuers, and for other (meta-issuer) issuers
 * whose keys were fetched once and that were asked for in the last RETRY_IDLE_SECONDS. A
 * meta-issuer URL that never answered is not retried in the background (a token could name
 * any number of them): the next request after its backoff fetches it again.
 *
 * Redirects: libcurl does not follow them (CURLOPT_FOLLOWLOCATION 0). A 3xx answer is followed
 * here by hand, at most MAX_REDIRECTS times, and only to the same host with an allowed scheme
 * (Fulcio v1.8.8 refuses cross-host redirects during discovery/JWKS fetches).
 *
 * CACert: given to libcurl as CURLOPT_CAINFO_BLOB for every request of the issuer (discovery,
 * JWKS, redirects). It replaces libcurl's CA bundle file but not its CA path, which Debian's
 * libcurl sets to /etc/ssl/certs, so the system roots stay trusted too (Fulcio: "added to the
 * system roots"). libcurl only reuses a connection or TLS session whose CA blob matches.
 *
 * Locking: one mutex guards the entry list, every entry's shared fields (set, times, flags,
 * waiters), the start queue and the counters. `struct fetch` inside an entry belongs to the fetch
 * thread alone, and only while the entry is in flight. An entry is freed (evicted) only under the
 * mutex and only when it is not in flight and has no waiters; the fetch thread never touches an
 * entry outside the mutex once it has cleared in_flight.
 */
#include "oidc/jwks_cache.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/log.h"
#include "common/metrics.h"
#include "oidc/discovery.h"

#define COMPONENT "jwks"
#define MAX_REDIRECTS 3
#define ERR_MAX 512
#define RETRY_IDLE_SECONDS 600.0

enum stage { STAGE_DISCOVERY = 0, STAGE_JWKS = 1 };

/* A worker waiting for a fetch; its callback runs on `base`. */
struct waiter {
    struct event_base *base;
    void (*cb)(void *arg);
    void *arg;
    struct event *ev;
    struct waiter *next;
};

/* The request under way for an entry (fetch thread only). */
struct fetch {
    CURL *easy;
    enum stage stage;
    char *url;    /* current URL */
    char *ca_pem; /* copy taken when the fetch started */
    int redirects;
    char *buf;
    size_t len, cap, max;
    int too_big;
    char curl_err[CURL_ERROR_SIZE];
};

struct entry {
    struct entry *next;
    char *issuer_url;
    char *ca_pem;          /* latest seen (mutex) */
    oidc_jwk_set *set;     /* NULL until the first successful fetch */
    double fetched_at;     /* monotonic seconds of the last success */
    double last_attempt;   /* monotonic seconds when the last fetch started */
    double last_used;      /* monotonic seconds of the last jwks_cache_get */
    double next_retry;     /* no fetch starts before this (backoff); 0 after a success */
    unsigned failures;     /* consecutive failed fetches */
    int pinned;            /* configured issuer: never evicted, always retried */
    int in_flight;
    int retry_armed;       /* the fetch thread starts a fetch at next_retry */
    int last_failed;
    char last_error[ERR_MAX]; /* the cause of the last failure: "GET <url>: <reason>" */
    struct waiter *waiters;
    struct entry *next_start; /* start queue link */
    struct fetch f;
};

struct jwks_cache {
    jwks_cache_options o;
    pthread_mutex_t mu;
    struct entry *entries;
    size_t n_entries;
    struct entry *start_q;
    int stop;
    jwks_cache_stats stats;
    CURLM *multi;
    pthread_t thread;
};

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void apply_defaults(jwks_cache_options *o)
{
    if (o->ttl_seconds <= 0)
        o->ttl_seconds = 600;
    if (o->refetch_interval_seconds <= 0)
        o->refetch_interval_seconds = 5;
    if (o->connect_timeout_ms <= 0)
        o->connect_timeout_ms = 5000;
    if (o->total_timeout_ms <= 0)
        o->total_timeout_ms = 10000;
    if (o->max_response_bytes == 0)
        o->max_response_bytes = 1024 * 1024;
    if (o->max_stale_seconds <= 0)
        o->max_stale_seconds = 86400;
    if (o->max_stale_seconds < o->ttl_seconds)
        o->max_stale_seconds = o->ttl_seconds;
    if (o->retry_min_ms <= 0)
        o->retry_min_ms = 1000;
    if (o->retry_max_ms <= 0)
        o->retry_max_ms = 60000;
    if (o->retry_max_ms < o->retry_min_ms)
        o->retry_max_ms = o->retry_min_ms;
    if (o->max_issuers == 0)
        o->max_issuers = 1000;
}

long jwks_cache_retry_delay_ms(const jwks_cache_options *opts, unsigned n)
{
    jwks_cache_options o;
    memset(&o, 0, sizeof o);
    if (opts)
        o = *opts;
    apply_defaults(&o);
    long d = o.retry_min_ms;
    for (unsigned i = 1; i < n && d < o.retry_max_ms; i++)
        d = d > o.retry_max_ms / 2 ? o.retry_max_ms : d * 2;
    return d < o.retry_max_ms ? d : o.retry_max_ms;
}

/* ---- waiters ---- */

static void waiter_trampoline(evutil_socket_t fd, short what, void *p)
{
    (void)fd;
    (void)what;
    struct waiter *w = p;
    void (*cb)(void *) = w->cb;
    void *arg = w->arg;
    event_free(w->ev);
    free(w);
    cb(arg);
}

/* Schedules every waiter's callback on its own base. Called without the mutex. */
static void notify_waiters(struct waiter *w)
{
    while (w) {
        struct waiter *next = w->next;
        w->ev = event_new(w->base, -1, 0, waiter_trampoline, w);
        if (w->ev) {
            /* top priority: requests under way before new ones (ct/log_writer.c, pending_new) */
            event_priority_set(w->ev, 0);
            event_active(w->ev, EV_TIMEOUT, 0);
        } else {
            log_error(COMPONENT, "cannot schedule a key-set callback: out of memory");
            free(w);
        }
        w = next;
    }
}

static void free_waiters(struct waiter *w)
{
    while (w) {
        struct waiter *next = w->next;
        free(w);
        w = next;
    }
}

/* ---- entries (mutex held) ---- */

static struct entry *entry_find(jwks_cache *c, const char *issuer_url)
{
    for (struct entry *e = c->entries; e; e = e->next)
        if (strcmp(e->issuer_url, issuer_url) == 0)
            return e;
    return NULL;
}

static void entry_free(struct entry *e)
{
    free_waiters(e->waiters);
    jwk_set_release(e->set);
    free(e->issuer_url);
    free(e->ca_pem);
    free(e);
}

/* Forgets the least recently used entry that is idle (not configured, not in flight, nobody
 * waiting). Returns 0, or -1 when every entry is busy or configured. */
static int entry_evict_one(jwks_cache *c)
{
    struct entry **victim = NULL;
    for (struct entry **pp = &c->entries; *pp; pp = &(*pp)->next) {
        struct entry *e = *pp;
        if (e->pinned || e->in_flight || e->waiters)
            continue;
        if (!victim || e->last_used < (*victim)->last_used)
            victim = pp;
    }
    if (!victim)
        return -1;
    struct entry *e = *victim;
    *victim = e->next;
    c->n_entries--;
    c->stats.evictions++;
    log_debug(COMPONENT, "forgetting the keys of %s (more than %zu issuers)", e->issuer_url,
              c->o.max_issuers);
    entry_free(e);
    return 0;
}

static struct entry *entry_create(jwks_cache *c, const char *issuer_url, char *why, size_t whylen)
{
    if (c->n_entries >= c->o.max_issuers && entry_evict_one(c) != 0) {
        snprintf(why, whylen, "the cache already holds %zu issuers, all configured or busy",
                 c->o.max_issuers);
        return NULL;
    }
    struct entry *e = calloc(1, sizeof(*e));
    if (!e || !(e->issuer_url = strdup(issuer_url))) {
        free(e);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    e->next = c->entries;
    c->entries = e;
    c->n_entries++;
    return e;
}

/* Records the CA to use for the issuer's next fetch. */
static void entry_set_ca(struct entry *e, const char *ca_pem)
{
    if (!ca_pem || (e->ca_pem && strcmp(e->ca_pem, ca_pem) == 0))
        return;
    char *copy = strdup(ca_pem);
    if (copy) {
        free(e->ca_pem);
        e->ca_pem = copy;
    }
}

/* Queues a fetch for the fetch thread (wake it after unlocking unless called from it). */
static void entry_start_fetch(jwks_cache *c, struct entry *e, double now)
{
    e->in_flight = 1;
    e->retry_armed = 0;
    e->last_attempt = now;
    e->next_start = c->start_q;
    c->start_q = e;
}

/* ---- fetch thread ---- */

static size_t on_write(char *data, size_t size, size_t nmemb, void *p)
{
    struct fetch *f = p;
    size_t n = size * nmemb;
    if (n > f->max - f->len) {
        f->too_big = 1;
        return 0;
    }
    if (f->len + n + 1 > f->cap) {
        size_t cap = f->cap ? f->cap : 4096;
        while (cap < f->len + n + 1)
            cap *= 2;
        char *nb = realloc(f->buf, cap);
        if (!nb)
            return 0;
        f->buf = nb;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, data, n);
    f->len += n;
    f->buf[f->len] = '\0';
    return n;
}

static void fetch_reset(struct fetch *f, CURLM *multi)
{
    if (f->easy) {
        curl_multi_remove_handle(multi, f->easy);
        curl_easy_cleanup(f->easy);
    }
    free(f->url);
    free(f->ca_pem);
    free(f->buf);
    memset(f, 0, sizeof(*f));
}

/* Starts a GET of `url` (taken over) for stage `st`. Returns 0 or -1 with why. */
static int request_start(jwks_cache *c, struct entry *e, enum stage st, char *url, char *why,
                         size_t whylen)
{
    struct fetch *f = &e->f;
    if (f->easy) {
        curl_multi_remove_handle(c->multi, f->easy);
        curl_easy_cleanup(f->easy);
        f->easy = NULL;
    }
    free(f->url);
    f->url = url;
    f->stage = st;
    f->len = 0;
    f->too_big = 0;
    f->max = c->o.max_response_bytes;
    f->curl_err[0] = '\0';

    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->o.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->o.total_timeout_ms);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->o.max_response_bytes);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, f->curl_err);
    curl_easy_setopt(h, CURLOPT_PRIVATE, e);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "fulcrum");
    if (f->ca_pem && *f->ca_pem) {
        struct curl_blob blob = {f->ca_pem, strlen(f->ca_pem), CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (curl_multi_add_handle(c->multi, h) != CURLM_OK) {
        curl_easy_cleanup(h);
        snprintf(why, whylen, "cannot start a request");
        return -1;
    }
    f->easy = h;
    pthread_mutex_lock(&c->mu);
    if (st == STAGE_DISCOVERY)
        c->stats.discovery_fetches++;
    else
        c->stats.jwks_fetches++;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* Ends the fetch of `e`: installs `set` (taken over) or records `cause` and arms a retry; wakes
 * the waiters. After this the fetch thread no longer owns e. */
/* fulcrum_jwks_fetches_total{issuer} (every completed key-set fetch: discovery + JWKS) and
 * fulcrum_jwks_fetch_failures_total{issuer}. */
static void count_fetch(const char *issuer, int failed)
{
    static const char *const labels[] = {"issuer", NULL};
    metric_family *all = metrics_counter(
        "fulcrum_jwks_fetches_total", "Key-set fetches (discovery and JWKS) per issuer", labels);
    metric_family *bad = metrics_counter("fulcrum_jwks_fetch_failures_total",
                                         "Key-set fetches that failed, per issuer", labels);
    metric_inc(metric_get1(all, issuer));
    if (failed)
        metric_inc(metric_get1(bad, issuer));
    else
        metric_get1(bad, issuer); /* shows 0 */
}

static void fetch_finish(jwks_cache *c, struct entry *e, oidc_jwk_set *set, const char *cause)
{
    char msg[ERR_MAX + 400];
    char issuer[512];
    enum log_level level;
    fetch_reset(&e->f, c->multi);
    pthread_mutex_lock(&c->mu);
    snprintf(issuer, sizeof issuer, "%s", e->issuer_url);
    double now = now_mono();
    if (set) {
        jwk_set_release(e->set);
        e->set = set;
        e->fetched_at = now;
        e->failures = 0;
        e->next_retry = 0;
        e->retry_armed = 0;
        e->last_failed = 0;
        e->last_error[0] = '\0';
        snprintf(msg, sizeof msg, "fetched %zu keys of %s", set->n, e->issuer_url);
        level = LOG_LVL_INFO;
    } else {
        e->failures++;
        long delay = jwks_cache_retry_delay_ms(&c->o, e->failures);
        e->next_retry = now + (double)delay / 1000.0;
        e->retry_armed = e->pinned || (e->set && now - e->last_used < RETRY_IDLE_SECONDS);
        e->last_failed = 1;
        snprintf(e->last_error, sizeof(e->last_error), "%s", cause);
        c->stats.fetch_failures++;
        char kept[96] = "";
        if (e->set)
            snprintf(kept, sizeof kept, "; keeping the keys fetched %ld s ago",
                     (long)(now - e->fetched_at));
        char next[96] = "";
        if (e->retry_armed)
            snprintf(next, sizeof next, "; retry %u in %.1f s", e->failures, delay / 1000.0);
        snprintf(msg, sizeof msg, "could not fetch the keys of issuer %.300s: %s%s%s",
                 e->issuer_url, cause, kept, next);
        level = LOG_LVL_WARN;
    }
    e->in_flight = 0;
    struct waiter *w = e->waiters;
    e->waiters = NULL;
    pthread_mutex_unlock(&c->mu);

    count_fetch(issuer, set == NULL);
    log_msg(level, COMPONENT, "%s", msg);
    notify_waiters(w);
}

static char *discovery_url(const char *issuer)
{
    static const char suffix[] = "/.well-known/openid-configuration";
    size_t n = strlen(issuer);
    if (n && issuer[n - 1] == '/')
        n--;
    char *u = malloc(n + sizeof(suffix));
    if (u) {
        memcpy(u, issuer, n);
        memcpy(u + n, suffix, sizeof(suffix));
    }
    return u;
}

/* Starts the discovery request for a dequeued entry. */
static void fetch_begin(jwks_cache *c, struct entry *e)
{
    char why[ERR_MAX], cause[ERR_MAX];
    pthread_mutex_lock(&c->mu);
    char *ca = e->ca_pem ? strdup(e->ca_pem) : NULL;
    pthread_mutex_unlock(&c->mu);
    fetch_reset(&e->f, c->multi);
    e->f.ca_pem = ca;
    char *url = discovery_url(e->issuer_url);
    if (!url || request_start(c, e, STAGE_DISCOVERY, url, why, sizeof(why)) != 0) {
        if (!url)
            snprintf(why, sizeof(why), "out of memory");
        snprintf(cause, sizeof(cause), "cannot start the OpenID discovery request: %.400s", why);
        fetch_finish(c, e, NULL, cause);
    }
}

/* A 3xx answer: follows it when it stays on the same host. Returns 0 when a new request runs. */
static int follow_redirect(jwks_cache *c, struct entry *e, char *why, size_t whylen)
{
    struct fetch *f = &e->f;
    char *loc = NULL, *from = NULL, *to = NULL;
    int rc = -1;
    curl_easy_getinfo(f->easy, CURLINFO_REDIRECT_URL, &loc);
    if (!loc) {
        snprintf(why, whylen, "redirect without a location");
        return -1;
    }
    if (f->redirects >= MAX_REDIRECTS) {
        snprintf(why, whylen, "more than %d redirects", MAX_REDIRECTS);
        return -1;
    }
    if (oidc_url_allowed(f->url, &from, why, whylen) != 0 ||
        oidc_url_allowed(loc, &to, why, whylen) != 0)
        goto out;
    if (strcasecmp(from, to) != 0) {
        snprintf(why, whylen, "redirect to another host refused (%.200s)", loc);
        goto out;
    }
    char *next = strdup(loc);
    if (!next) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    f->redirects++;
    rc = request_start(c, e, f->stage, next, why, whylen);
out:
    curl_free(from);
    curl_free(to);
    return rc;
}

/* One finished transfer of `e`. */
static void on_done(jwks_cache *c, struct entry *e, CURLcode res)
{
    struct fetch *f = &e->f;
    char why[ERR_MAX] = "", cause[ERR_MAX];
    long status = 0;

    if (res != CURLE_OK) {
        if (f->too_big || res == CURLE_FILESIZE_EXCEEDED)
            snprintf(why, sizeof(why), "response larger than %zu bytes", f->max);
        else
            snprintf(why, sizeof(why), "%s", f->curl_err[0] ? f->curl_err : curl_easy_strerror(res));
        goto fail;
    }
    curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
        if (follow_redirect(c, e, why, sizeof(why)) == 0)
            return;
        goto fail;
    }
    if (status != 200) {
        snprintf(why, sizeof(why), "HTTP status %ld", status);
        goto fail;
    }
    if (f->stage == STAGE_DISCOVERY) {
        char *uri = oidc_discovery_jwks_uri(f->buf ? f->buf : "", f->len, e->issuer_url, why,
                                            sizeof(why));
        if (!uri)
            goto fail;
        f->redirects = 0;
        if (request_start(c, e, STAGE_JWKS, uri, why, sizeof(why)) != 0)
            goto fail;
        return;
    }
    oidc_jwk_set *set = jwk_set_parse(f->buf ? f->buf : "", f->len, why, sizeof(why));
    if (!set)
        goto fail;
    fetch_finish(c, e, set, NULL);
    return;
fail:
    snprintf(cause, sizeof(cause), "%s %.200s: %.290s",
             f->stage == STAGE_DISCOVERY ? "discovery" : "JWKS", f->url ? f->url : "", why);
    fetch_finish(c, e, NULL, cause);
}

/* Under the mutex: starts the retries that are due; returns the poll timeout (ms) until the
 * next one, at most 1000. */
static int arm_due_retries(jwks_cache *c)
{
    double now = now_mono();
    double wait = 1.0;
    for (struct entry *e = c->entries; e; e = e->next) {
        if (!e->retry_armed || e->in_flight)
            continue;
        if (now >= e->next_retry) {
            entry_start_fetch(c, e, now);
            c->stats.retries++;
        } else if (e->next_retry - now < wait) {
            wait = e->next_retry - now;
        }
    }
    return (int)(wait * 1000.0) + 1;
}

static void *fetch_main(void *arg)
{
    pthread_setname_np(pthread_self(), "jwks-fetch");
    jwks_cache *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        int stop = c->stop;
        int timeout_ms = arm_due_retries(c);
        struct entry *q = c->start_q;
        c->start_q = NULL;
        pthread_mutex_unlock(&c->mu);
        if (stop)
            break;
        while (q) {
            struct entry *next = q->next_start;
            q->next_start = NULL;
            fetch_begin(c, q);
            q = next;
        }
        int running = 0, finished = 0;
        curl_multi_perform(c->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct entry *e = NULL;
            CURLcode res = m->data.result;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&e);
            if (e) {
                on_done(c, e, res);
                finished = 1;
            }
        }
        if (finished)
            continue; /* a failure may have armed a retry: recompute the timeout first */
        curl_multi_poll(c->multi, NULL, 0, timeout_ms, NULL);
    }
    return NULL;
}

/* ---- public API ---- */

jwks_cache *jwks_cache_new(const jwks_cache_options *opts)
{
    jwks_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (opts)
        c->o = *opts;
    apply_defaults(&c->o);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->multi = curl_multi_init();
    if (!c->multi || pthread_create(&c->thread, NULL, fetch_main, c) != 0) {
        if (c->multi)
            curl_multi_cleanup(c->multi);
        pthread_mutex_destroy(&c->mu);
        curl_global_cleanup();
        free(c);
        return NULL;
    }
    return c;
}

void jwks_cache_prefetch(jwks_cache *c, const struct fulcrum_config *cfg)
{
    if (!c || !cfg)
        return;
    int started = 0;
    for (size_t i = 0; i < cfg->n_issuers; i++) {
        const issuer_config *ic = &cfg->issuers[i];
        char why[ERR_MAX];
        if (ic->is_meta || !ic->issuer_url || !*ic->issuer_url)
            continue;
        if (oidc_url_allowed(ic->issuer_url, NULL, why, sizeof(why)) != 0) {
            log_warn(COMPONENT, "not prefetching keys of %s: %s", ic->issuer_url, why);
            continue;
        }
        pthread_mutex_lock(&c->mu);
        struct entry *e = entry_find(c, ic->issuer_url);
        if (!e)
            e = entry_create(c, ic->issuer_url, why, sizeof(why));
        if (e) {
            e->pinned = 1;
            entry_set_ca(e, ic->ca_cert_pem);
            if (!e->in_flight && !e->set) {
                entry_start_fetch(c, e, now_mono());
                started = 1;
            }
        } else {
            log_warn(COMPONENT, "not prefetching keys of %s: %s", ic->issuer_url, why);
        }
        pthread_mutex_unlock(&c->mu);
    }
    if (started)
        curl_multi_wakeup(c->multi);
}

/* "could not fetch the keys of issuer <url>: <cause>" */
static void unavailable(char *why, size_t whylen, const char *issuer_url, const char *cause)
{
    snprintf(why, whylen, "could not fetch the keys of issuer %.300s: %s", issuer_url, cause);
}

/* The answer when the cached keys cannot serve this kid and no fetch will be waited for. */
static enum jwks_result answer_without_key(jwks_cache *c, struct entry *e, const char *kid,
                                           double now, int usable, char *why, size_t whylen)
{
    char cause[ERR_MAX + 200];
    long age = (long)(now - e->fetched_at); /* whole seconds, truncated */
    if (usable && !e->last_failed) {
        /* The issuer answered recently and does not publish this key: the token's fault. */
        if (*kid)
            snprintf(why, whylen, "key id \"%.64s\" is not published by %.300s", kid,
                     e->issuer_url);
        else
            snprintf(why, whylen, "token has no key id and %.300s publishes %zu keys",
                     e->issuer_url, e->set->n);
        return JWKS_FAILED;
    }
    if (usable) /* the key may be new, but the issuer cannot be asked */
        snprintf(cause, sizeof cause, "%s (the keys fetched %ld s ago have no key id \"%.64s\")",
                 e->last_error, age, kid);
    else if (e->set && e->last_failed)
        snprintf(cause, sizeof cause,
                 "%s (the keys fetched %ld s ago are past the max-stale limit of %d s)",
                 e->last_error, age, c->o.max_stale_seconds);
    else if (e->set)
        snprintf(cause, sizeof cause,
                 "the keys fetched %ld s ago are past the max-stale limit of %d s and have not "
                 "been refreshed yet",
                 age, c->o.max_stale_seconds);
    else if (e->last_failed)
        snprintf(cause, sizeof cause, "%s", e->last_error);
    else
        snprintf(cause, sizeof cause, "no fetch has completed yet");
    unavailable(why, whylen, e->issuer_url, cause);
    return JWKS_UNAVAILABLE;
}

enum jwks_result jwks_cache_get(jwks_cache *c, const char *issuer_url, const char *ca_cert_pem,
                                const char *kid, struct event_base *base, void (*cb)(void *arg),
                                void *arg, oidc_jwk_set **out, char *why, size_t whylen)
{
    *out = NULL;
    if (!c || !issuer_url || !*issuer_url) {
        snprintf(why, whylen, "no issuer");
        return JWKS_UNAVAILABLE;
    }
    if (cb && !base) {
        unavailable(why, whylen, issuer_url, "no event base for the callback");
        return JWKS_UNAVAILABLE;
    }
    const char *k = kid ? kid : "";
    double now = now_mono();
    enum jwks_result r;
    int wake = 0;
    char cause[ERR_MAX];

    pthread_mutex_lock(&c->mu);
    struct entry *e = entry_find(c, issuer_url);
    if (!e) {
        if (!cb) {
            unavailable(why, whylen, issuer_url, "no fetch has completed yet");
            r = JWKS_UNAVAILABLE;
            goto out;
        }
        if (oidc_url_allowed(issuer_url, NULL, cause, sizeof(cause)) != 0 ||
            !(e = entry_create(c, issuer_url, cause, sizeof(cause)))) {
            unavailable(why, whylen, issuer_url, cause);
            r = JWKS_UNAVAILABLE;
            goto out;
        }
    }
    e->last_used = now;
    entry_set_ca(e, ca_cert_pem);

    double age = now - e->fetched_at;
    int usable = e->set && age < (double)c->o.max_stale_seconds;
    /* A request may start a fetch unless one runs, a backoff is on, or the fetch thread owns the
     * next attempt (an armed retry): then only the timer fetches, however many requests come. */
    int may_start = cb && !e->in_flight && !e->retry_armed && now >= e->next_retry;
    const oidc_jwk *key = usable ? jwk_set_find(e->set, k) : NULL;
    if (key) {
        *out = jwk_set_ref(e->set);
        r = JWKS_READY;
        if (may_start && age >= (double)c->o.ttl_seconds) {
            entry_start_fetch(c, e, now); /* refresh in the background; nobody waits */
            wake = 1;
        }
        goto out;
    }

    /* No usable set, or no such kid in it: wait for a fetch when one runs or may start. An
     * unknown kid refetches at most once per refetch interval (or when the set is past its TTL
     * anyway); a backoff blocks every start. */
    int want_fetch = may_start && (!usable || age >= (double)c->o.ttl_seconds ||
                                   now - e->last_attempt >= (double)c->o.refetch_interval_seconds);
    if (cb && (e->in_flight || want_fetch)) {
        struct waiter *w = calloc(1, sizeof(*w));
        if (!w) {
            unavailable(why, whylen, issuer_url, "out of memory");
            r = JWKS_UNAVAILABLE;
            goto out;
        }
        w->base = base;
        w->cb = cb;
        w->arg = arg;
        w->next = e->waiters;
        e->waiters = w;
        if (!e->in_flight) {
            entry_start_fetch(c, e, now);
            wake = 1;
        }
        r = JWKS_PENDING;
        goto out;
    }
    r = answer_without_key(c, e, k, now, usable, why, whylen);
out:
    pthread_mutex_unlock(&c->mu);
    if (wake)
        curl_multi_wakeup(c->multi);
    return r;
}

void jwks_cache_get_stats(jwks_cache *c, jwks_cache_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->mu);
}

void jwks_cache_free(jwks_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_mutex_unlock(&c->mu);
    curl_multi_wakeup(c->multi);
    pthread_join(c->thread, NULL);

    struct entry *e = c->entries;
    while (e) {
        struct entry *next = e->next;
        fetch_reset(&e->f, c->multi);
        entry_free(e);
        e = next;
    }
    curl_multi_cleanup(c->multi);
    pthread_mutex_destroy(&c->mu);
    curl_global_cleanup();
    free(c);
}
