/*
 * oidc/jwks_cache.c: per-issuer OpenID discovery + JWKS, fetched by one background thread.
 *
 * Why curl_multi_poll + curl_multi_wakeup and not curl_multi_socket_action on a libevent base:
 * the fetch thread does a handful of requests per issuer per TTL, never thousands at once, so the
 * event-driven socket API (socket/timer callbacks, an event per fd) buys nothing here; the poll
 * loop is a dozen lines, handles curl's own timers, and curl_multi_wakeup is the one thread-safe
 * way for a worker to hand it a new fetch. Workers never wait on it: they get PENDING and a
 * callback on their own event_base (event_new(base, -1, ...) + event_active from this thread,
 * which is safe because the process runs evthread_use_pthreads()).
 *
 * Redirects: libcurl does not follow them (CURLOPT_FOLLOWLOCATION 0). A 3xx answer is followed
 * here by hand, at most MAX_REDIRECTS times, and only to the same host with an allowed scheme
 * (Fulcio v1.8.8 refuses cross-host redirects during discovery/JWKS fetches).
 *
 * Locking: one mutex guards the entry list, every entry's shared fields (set, times, flags,
 * waiters), the start queue and the counters. `struct fetch` inside an entry belongs to the fetch
 * thread alone. Entries are only freed by jwks_cache_free, after the thread is joined.
 */
#include "oidc/jwks_cache.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/log.h"

#define COMPONENT "jwks"
#define MAX_REDIRECTS 3
#define ERR_MAX 384

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
};

struct entry {
    struct entry *next;
    char *issuer_url;
    char *ca_pem;          /* latest seen (mutex) */
    oidc_jwk_set *set;     /* NULL until the first successful fetch */
    double fetched_at;     /* monotonic seconds of the last success */
    double last_attempt;   /* monotonic seconds when the last fetch started */
    int attempted;
    int in_flight;
    int last_failed;
    char last_error[2 * ERR_MAX];
    struct waiter *waiters;
    struct entry *next_start; /* start queue link */
    struct fetch f;
};

struct jwks_cache {
    jwks_cache_options o;
    pthread_mutex_t mu;
    struct entry *entries;
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

/* ---- URL policy ---- */

static int host_is_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
        return 1;
    unsigned char a[4];
    return inet_pton(AF_INET, host, a) == 1 && a[0] == 127;
}

/* https anywhere, http only to a loopback host. On success returns 0 and, when host_out is not
 * NULL, the host (curl_free it). */
static int url_allowed(const char *url, char **host_out, char *why, size_t whylen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int rc = -1;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(why, whylen, "\"%.200s\" is not a valid URL", url);
    } else if (strcmp(scheme, "https") == 0) {
        rc = 0;
    } else if (strcmp(scheme, "http") == 0) {
        if (host_is_loopback(host))
            rc = 0;
        else
            snprintf(why, whylen, "\"%.200s\" uses plain http to a non-loopback host", url);
    } else {
        snprintf(why, whylen, "\"%.200s\" is not an http(s) URL", url);
    }
    if (rc == 0 && host_out) {
        *host_out = host;
        host = NULL;
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
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

/* Ends the fetch of `e`: installs `set` (taken over) or records `error`, wakes the waiters. */
static void fetch_finish(jwks_cache *c, struct entry *e, oidc_jwk_set *set, const char *error)
{
    fetch_reset(&e->f, c->multi);
    pthread_mutex_lock(&c->mu);
    int had_set = e->set != NULL;
    if (set) {
        jwk_set_release(e->set);
        e->set = set;
        e->fetched_at = now_mono();
        e->last_failed = 0;
        e->last_error[0] = '\0';
    } else {
        e->last_failed = 1;
        snprintf(e->last_error, sizeof(e->last_error), "%s", error);
        c->stats.fetch_failures++;
    }
    e->in_flight = 0;
    struct waiter *w = e->waiters;
    e->waiters = NULL;
    size_t nkeys = set ? set->n : 0;
    pthread_mutex_unlock(&c->mu);

    if (set)
        log_info(COMPONENT, "fetched %zu keys of %s", nkeys, e->issuer_url);
    else if (had_set)
        log_warn(COMPONENT, "%s; keeping the keys fetched before", error);
    else
        log_warn(COMPONENT, "%s", error);
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
    char why[ERR_MAX], err[2 * ERR_MAX];
    pthread_mutex_lock(&c->mu);
    char *ca = e->ca_pem ? strdup(e->ca_pem) : NULL;
    pthread_mutex_unlock(&c->mu);
    fetch_reset(&e->f, c->multi);
    e->f.ca_pem = ca;
    char *url = discovery_url(e->issuer_url);
    if (!url || request_start(c, e, STAGE_DISCOVERY, url, why, sizeof(why)) != 0) {
        if (!url)
            snprintf(why, sizeof(why), "out of memory");
        snprintf(err, sizeof(err), "cannot fetch the OpenID configuration of %s: %s",
                 e->issuer_url, why);
        fetch_finish(c, e, NULL, err);
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
    if (url_allowed(f->url, &from, why, whylen) != 0 || url_allowed(loc, &to, why, whylen) != 0)
        goto out;
    if (strcasecmp(from, to) != 0) {
        snprintf(why, whylen, "redirect to another host refused");
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

/* The discovery document: issuer must equal the configured URL; returns jwks_uri (malloc'd). */
static char *discovery_jwks_uri(const struct entry *e, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *doc = json_loadb(e->f.buf ? e->f.buf : "", e->f.len, 0, &jerr);
    char *uri = NULL;
    if (!json_is_object(doc)) {
        snprintf(why, whylen, "discovery document is not a JSON object");
        goto out;
    }
    const char *iss = json_string_value(json_object_get(doc, "issuer"));
    if (!iss || strcmp(iss, e->issuer_url) != 0) {
        snprintf(why, whylen, "discovery document names issuer \"%.200s\", expected \"%s\"",
                 iss ? iss : "", e->issuer_url);
        goto out;
    }
    const char *ju = json_string_value(json_object_get(doc, "jwks_uri"));
    if (!ju || !*ju) {
        snprintf(why, whylen, "discovery document has no jwks_uri");
        goto out;
    }
    if (url_allowed(ju, NULL, why, whylen) != 0)
        goto out;
    uri = strdup(ju);
    if (!uri)
        snprintf(why, whylen, "out of memory");
out:
    json_decref(doc);
    return uri;
}

/* One finished transfer of `e`. */
static void on_done(jwks_cache *c, struct entry *e, CURLcode res)
{
    struct fetch *f = &e->f;
    char why[ERR_MAX] = "", err[2 * ERR_MAX];
    const char *what = f->stage == STAGE_DISCOVERY ? "the OpenID configuration" : "the keys";
    long status = 0;

    if (res != CURLE_OK) {
        if (f->too_big || res == CURLE_FILESIZE_EXCEEDED)
            snprintf(why, sizeof(why), "response larger than %zu bytes", f->max);
        else
            snprintf(why, sizeof(why), "%s", curl_easy_strerror(res));
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
        char *uri = discovery_jwks_uri(e, why, sizeof(why));
        if (!uri)
            goto fail;
        f->redirects = 0;
        if (request_start(c, e, STAGE_JWKS, uri, why, sizeof(why)) != 0) {
            what = "the keys";
            goto fail;
        }
        return;
    }
    oidc_jwk_set *set = jwk_set_parse(f->buf ? f->buf : "", f->len, why, sizeof(why));
    if (!set)
        goto fail;
    fetch_finish(c, e, set, NULL);
    return;
fail:
    snprintf(err, sizeof(err), "cannot fetch %s of %s: %s", what, e->issuer_url, why);
    fetch_finish(c, e, NULL, err);
}

static void *fetch_main(void *arg)
{
    jwks_cache *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        int stop = c->stop;
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
        int running = 0;
        curl_multi_perform(c->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct entry *e = NULL;
            CURLcode res = m->data.result;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&e);
            if (e)
                on_done(c, e, res);
        }
        curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
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
    if (c->o.ttl_seconds <= 0)
        c->o.ttl_seconds = 600;
    if (c->o.refetch_interval_seconds <= 0)
        c->o.refetch_interval_seconds = 5;
    if (c->o.connect_timeout_ms <= 0)
        c->o.connect_timeout_ms = 5000;
    if (c->o.total_timeout_ms <= 0)
        c->o.total_timeout_ms = 10000;
    if (c->o.max_response_bytes == 0)
        c->o.max_response_bytes = 1024 * 1024;
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

static struct entry *entry_find(jwks_cache *c, const char *issuer_url)
{
    for (struct entry *e = c->entries; e; e = e->next)
        if (strcmp(e->issuer_url, issuer_url) == 0)
            return e;
    return NULL;
}

static struct entry *entry_create(jwks_cache *c, const char *issuer_url)
{
    struct entry *e = calloc(1, sizeof(*e));
    if (!e || !(e->issuer_url = strdup(issuer_url))) {
        free(e);
        return NULL;
    }
    e->next = c->entries;
    c->entries = e;
    return e;
}

/* Records the CA to use for the issuer's next fetch (mutex held). */
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

/* Queues a fetch for the fetch thread (mutex held; wake it after unlocking). */
static void entry_start_fetch(jwks_cache *c, struct entry *e, double now)
{
    e->in_flight = 1;
    e->attempted = 1;
    e->last_attempt = now;
    e->next_start = c->start_q;
    c->start_q = e;
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
        if (url_allowed(ic->issuer_url, NULL, why, sizeof(why)) != 0) {
            log_warn(COMPONENT, "not prefetching keys of %s: %s", ic->issuer_url, why);
            continue;
        }
        pthread_mutex_lock(&c->mu);
        struct entry *e = entry_find(c, ic->issuer_url);
        if (!e)
            e = entry_create(c, ic->issuer_url);
        if (e) {
            entry_set_ca(e, ic->ca_cert_pem);
            if (!e->in_flight && !e->set) {
                entry_start_fetch(c, e, now_mono());
                started = 1;
            }
        }
        pthread_mutex_unlock(&c->mu);
    }
    if (started)
        curl_multi_wakeup(c->multi);
}

enum jwks_result jwks_cache_get(jwks_cache *c, const char *issuer_url, const char *ca_cert_pem,
                                const char *kid, struct event_base *base, void (*cb)(void *arg),
                                void *arg, oidc_jwk_set **out, char *why, size_t whylen)
{
    *out = NULL;
    if (!c || !issuer_url || !*issuer_url) {
        snprintf(why, whylen, "no issuer");
        return JWKS_FAILED;
    }
    if (cb && !base) {
        snprintf(why, whylen, "no event base for the callback");
        return JWKS_FAILED;
    }
    const char *k = kid ? kid : "";
    double now = now_mono();
    enum jwks_result r;
    int wake = 0;

    pthread_mutex_lock(&c->mu);
    struct entry *e = entry_find(c, issuer_url);
    if (!e) {
        if (!cb) {
            snprintf(why, whylen, "the keys of %s have not been fetched yet", issuer_url);
            r = JWKS_FAILED;
            goto out;
        }
        if (url_allowed(issuer_url, NULL, why, whylen) != 0) {
            r = JWKS_FAILED;
            goto out;
        }
        e = entry_create(c, issuer_url);
        if (!e) {
            snprintf(why, whylen, "out of memory");
            r = JWKS_FAILED;
            goto out;
        }
    }
    entry_set_ca(e, ca_cert_pem);

    const oidc_jwk *key = jwk_set_find(e->set, k);
    int fresh = e->set && now - e->fetched_at < (double)c->o.ttl_seconds;
    if (key && fresh) {
        *out = jwk_set_ref(e->set);
        r = JWKS_READY;
        goto out;
    }

    /* No set, a stale one, or an unknown kid: wait for a fetch when one may run. A fetch may
     * start when none was tried yet, when the last one began refetch_interval ago, or when the
     * set's TTL ran out and no refresh has failed since. */
    int may_fetch = !e->attempted ||
                    now - e->last_attempt >= (double)c->o.refetch_interval_seconds ||
                    (e->set && !fresh && !e->last_failed);
    if (cb && (e->in_flight || may_fetch)) {
        struct waiter *w = calloc(1, sizeof(*w));
        if (!w) {
            snprintf(why, whylen, "out of memory");
            r = JWKS_FAILED;
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

    /* Answer from what we have: a stale set still serves when its refresh failed. */
    if (key) {
        *out = jwk_set_ref(e->set);
        r = JWKS_READY;
    } else if (e->set) {
        if (*k)
            snprintf(why, whylen, "key id \"%.64s\" is not published by %s", k, issuer_url);
        else
            snprintf(why, whylen, "token has no key id and %s publishes %zu keys", issuer_url,
                     e->set->n);
        r = JWKS_FAILED;
    } else if (e->last_failed) {
        snprintf(why, whylen, "%s", e->last_error);
        r = JWKS_FAILED;
    } else {
        snprintf(why, whylen, "the keys of %s have not been fetched yet", issuer_url);
        r = JWKS_FAILED;
    }
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
        free_waiters(e->waiters);
        jwk_set_release(e->set);
        free(e->issuer_url);
        free(e->ca_pem);
        free(e);
        e = next;
    }
    curl_multi_cleanup(c->multi);
    pthread_mutex_destroy(&c->mu);
    curl_global_cleanup();
    free(c);
}
