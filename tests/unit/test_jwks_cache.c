/*
 * JWKS cache against a small evhttp issuer on 127.0.0.1 (discovery + JWKS, with fetch counters):
 * READY / PENDING / FAILED / UNAVAILABLE flows, callbacks on the requesting base, refetch limits,
 * key rotation, stale-while-revalidate after the TTL, stale keys while the issuer is down up to
 * max-stale, background retries with exponential backoff (and none caused by requests), the
 * retry delay formula, eviction beyond max_issuers, discovery checks, URL policy, redirects, size
 * cap, and the exact messages.
 */
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "oidc/jwks_cache.h"
#include "unit/check.h"
#include "unit/oidc_testkit.h"

/* ---- the test issuer ---- */

struct srv {
    struct event_base *base;
    struct evhttp *http;
    pthread_t thread;
    int port;
    char url[64]; /* http://127.0.0.1:<port> */
    pthread_mutex_t mu;
    char *jwks;
    int status; /* answer status for everything; 200 = normal */
    int n_discovery, n_jwks;
    int hold; /* while set, requests wait before they are answered (at most 5 s) */
};

static struct srv S;

static void reply(struct evhttp_request *req, int code, const char *body)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, strlen(body));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", b);
    evbuffer_free(b);
}

static void reply_redirect(struct evhttp_request *req, const char *location)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", location);
    evhttp_send_reply(req, 302, "Found", NULL);
}

static void discovery(struct evhttp_request *req, const char *issuer, const char *jwks_path)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"issuer\":\"%s\",\"jwks_uri\":\"%s%s\","
             "\"id_token_signing_alg_values_supported\":[\"RS256\",\"ES256\"]}",
             issuer, S.url, jwks_path);
    reply(req, 200, body);
}

/* Issuers live under paths: /good, /mismatch (discovery names another issuer), /redir
 * (same-host redirect), /xhost (redirect to another host name), /big (oversized JWKS), /hang
 * (discovery never answered), and any /multi-<name> (like /good, with its own issuer URL). */
static void handle(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    char issuer[128], loc[160];
    pthread_mutex_lock(&S.mu);
    for (int i = 0; S.hold && i < 5000; i++) {
        pthread_mutex_unlock(&S.mu);
        usleep(1000);
        pthread_mutex_lock(&S.mu);
    }
    int status = S.status;
    if (strstr(path, "openid-configuration") || strstr(path, "discovery"))
        S.n_discovery++;
    else if (strstr(path, "jwks"))
        S.n_jwks++;
    char *jwks = strdup(S.jwks ? S.jwks : "{}");
    pthread_mutex_unlock(&S.mu);

    if (strcmp(path, "/hang/.well-known/openid-configuration") == 0) {
        /* never answered: evhttp frees the request when the client gives up */
    } else if (status != 200) {
        reply(req, status, "{\"error\":\"down\"}");
    } else if (strcmp(path, "/good/.well-known/openid-configuration") == 0) {
        snprintf(issuer, sizeof(issuer), "%s/good", S.url);
        discovery(req, issuer, "/good/jwks");
    } else if (strncmp(path, "/multi-", 7) == 0 && strstr(path, "/.well-known/openid-configuration")) {
        snprintf(issuer, sizeof(issuer), "%s%.*s", S.url,
                 (int)(strstr(path, "/.well-known/") - path), path);
        discovery(req, issuer, "/good/jwks");
    } else if (strcmp(path, "/good/jwks") == 0) {
        reply(req, 200, jwks);
    } else if (strcmp(path, "/mismatch/.well-known/openid-configuration") == 0) {
        snprintf(issuer, sizeof(issuer), "%s/other", S.url);
        discovery(req, issuer, "/good/jwks");
    } else if (strcmp(path, "/redir/.well-known/openid-configuration") == 0) {
        snprintf(loc, sizeof(loc), "%s/redir/discovery", S.url);
        reply_redirect(req, loc);
    } else if (strcmp(path, "/redir/discovery") == 0) {
        snprintf(issuer, sizeof(issuer), "%s/redir", S.url);
        discovery(req, issuer, "/good/jwks");
    } else if (strcmp(path, "/xhost/.well-known/openid-configuration") == 0) {
        snprintf(loc, sizeof(loc), "http://localhost:%d/good/.well-known/openid-configuration",
                 S.port);
        reply_redirect(req, loc);
    } else if (strcmp(path, "/big/.well-known/openid-configuration") == 0) {
        snprintf(issuer, sizeof(issuer), "%s/big", S.url);
        discovery(req, issuer, "/big/jwks");
    } else if (strcmp(path, "/big/jwks") == 0) {
        size_t n = 100 * 1024;
        char *body = malloc(n + 1);
        memset(body, ' ', n);
        body[n] = '\0';
        body[0] = '{', body[n - 1] = '}';
        reply(req, 200, body);
        free(body);
    } else {
        reply(req, 404, "{}");
    }
    free(jwks);
}

static void *srv_main(void *arg)
{
    (void)arg;
    event_base_dispatch(S.base);
    return NULL;
}

static int srv_start(void)
{
    pthread_mutex_init(&S.mu, NULL);
    S.status = 200;
    S.base = event_base_new();
    S.http = evhttp_new(S.base);
    evhttp_set_gencb(S.http, handle, NULL);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(S.http, "127.0.0.1", 0);
    if (!bs)
        return -1;
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &sl);
    S.port = ntohs(sin.sin_port);
    snprintf(S.url, sizeof(S.url), "http://127.0.0.1:%d", S.port);
    return pthread_create(&S.thread, NULL, srv_main, NULL);
}

static void srv_stop(void)
{
    event_base_loopbreak(S.base);
    pthread_join(S.thread, NULL);
    evhttp_free(S.http);
    event_base_free(S.base);
    free(S.jwks);
    pthread_mutex_destroy(&S.mu);
}

static void srv_set(const char *jwks, int status)
{
    pthread_mutex_lock(&S.mu);
    if (jwks) {
        free(S.jwks);
        S.jwks = strdup(jwks);
    }
    S.status = status;
    pthread_mutex_unlock(&S.mu);
}

static void srv_counts(int *disc, int *jwks)
{
    pthread_mutex_lock(&S.mu);
    *disc = S.n_discovery;
    *jwks = S.n_jwks;
    pthread_mutex_unlock(&S.mu);
}

/* ---- the requesting worker: this thread's event_base ---- */

static struct event_base *MB;
static pthread_t MAIN_THREAD;

struct waitctx {
    int called;
    int on_main_thread;
};

static void on_ready(void *arg)
{
    struct waitctx *w = arg;
    w->called++;
    w->on_main_thread = pthread_equal(pthread_self(), MAIN_THREAD);
    event_base_loopbreak(MB);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    event_base_loopbreak(MB);
}

/* Runs this thread's base until a callback arrives or `ms` pass. */
static void run_base(int ms)
{
    struct event *t = evtimer_new(MB, on_timeout, NULL);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(t, &tv);
    event_base_dispatch(MB);
    event_free(t);
}

static char WHY[1024];

/* get; when PENDING, waits for the callback (checking it ran once, on this thread) and asks
 * again. Returns the final result. */
static enum jwks_result get_wait(jwks_cache *c, const char *iss, const char *kid,
                                 oidc_jwk_set **out)
{
    enum jwks_result r = JWKS_PENDING;
    for (int round = 0; round < 3 && r == JWKS_PENDING; round++) {
        struct waitctx w = {0, 0};
        WHY[0] = '\0';
        r = jwks_cache_get(c, iss, "", kid, MB, on_ready, &w, out, WHY, sizeof(WHY));
        if (r != JWKS_PENDING)
            break;
        run_base(5000);
        CHECK(w.called == 1, "callback ran (called %d)", w.called);
        CHECK(w.on_main_thread, "callback ran on the requesting base's thread");
        run_base(50);
        CHECK(w.called == 1, "callback ran exactly once (called %d)", w.called);
    }
    return r;
}

static void url_of(char *buf, size_t n, const char *issuer_path)
{
    snprintf(buf, n, "%s/%s", S.url, issuer_path);
}

/* ---- tests ---- */

static char *JWKS_K1, *JWKS_K2;

static void msleep(int ms)
{
    usleep((useconds_t)ms * 1000);
}

/* Asks without a callback (never starts a fetch) until READY or `ms` pass. */
static enum jwks_result poll_ready(jwks_cache *c, const char *iss, const char *kid, int ms,
                                   oidc_jwk_set **out)
{
    enum jwks_result r = JWKS_UNAVAILABLE;
    for (int waited = 0; waited <= ms; waited += 20) {
        r = jwks_cache_get(c, iss, "", kid, NULL, NULL, NULL, out, WHY, sizeof(WHY));
        if (r == JWKS_READY)
            break;
        msleep(20);
    }
    return r;
}

static void count_cb(void *arg)
{
    (*(int *)arg)++;
}

static void test_retry_delay(void)
{
    jwks_cache_options o = {.retry_min_ms = 100, .retry_max_ms = 400};
    long want[] = {100, 100, 200, 400, 400, 400};
    for (unsigned n = 0; n < 6; n++)
        CHECK(jwks_cache_retry_delay_ms(&o, n) == want[n], "delay after failure %u: %ld", n,
              jwks_cache_retry_delay_ms(&o, n));
    /* defaults: 1 s doubling, capped at 60 s; no overflow for huge n */
    long d[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
    for (unsigned n = 1; n <= 8; n++)
        CHECK(jwks_cache_retry_delay_ms(NULL, n) == d[n - 1], "default delay %u: %ld", n,
              jwks_cache_retry_delay_ms(NULL, n));
    CHECK(jwks_cache_retry_delay_ms(NULL, 1000000) == 60000, "huge n stays at the cap");
    jwks_cache_options odd = {.retry_min_ms = 700, .retry_max_ms = 100};
    CHECK(jwks_cache_retry_delay_ms(&odd, 3) == 700, "max below min: min wins");
}

static void test_ready_pending(void)
{
    jwks_cache *c = jwks_cache_new(NULL);
    char iss[128], want[256];
    url_of(iss, sizeof(iss), "good");
    oidc_jwk_set *set = NULL;
    jwks_cache_stats st;
    int d0, j0, d1, j1;
    srv_set(JWKS_K1, 200);
    srv_counts(&d0, &j0);

    snprintf(want, sizeof(want), "could not fetch the keys of issuer %s: no fetch has completed yet",
             iss);
    CHECK(jwks_cache_get(c, iss, "", "k1", NULL, NULL, NULL, &set, WHY, sizeof(WHY)) ==
                  JWKS_UNAVAILABLE && !set,
          "cb NULL on an unknown issuer: UNAVAILABLE, no fetch");
    CHECK_STREQ(WHY, want, "cb NULL on an unknown issuer: message");
    jwks_cache_get_stats(c, &st);
    CHECK(st.discovery_fetches == 0 && st.jwks_fetches == 0, "cb NULL started nothing");

    /* Two workers ask at once: one fetch, two callbacks. The server holds its answers until
     * both have asked (a fetch could otherwise complete in between on a loaded machine). */
    struct waitctx w1 = {0, 0}, w2 = {0, 0};
    pthread_mutex_lock(&S.mu);
    S.hold = 1;
    pthread_mutex_unlock(&S.mu);
    enum jwks_result r1 = jwks_cache_get(c, iss, "", "k1", MB, on_ready, &w1, &set, WHY, sizeof(WHY));
    enum jwks_result r2 = jwks_cache_get(c, iss, "", "k1", MB, on_ready, &w2, &set, WHY, sizeof(WHY));
    pthread_mutex_lock(&S.mu);
    S.hold = 0;
    pthread_mutex_unlock(&S.mu);
    CHECK(r1 == JWKS_PENDING && r2 == JWKS_PENDING, "first asks are PENDING (%d, %d)", r1, r2);
    for (int i = 0; i < 20 && (w1.called == 0 || w2.called == 0); i++)
        run_base(500);
    CHECK(w1.called == 1 && w2.called == 1 && w1.on_main_thread && w2.on_main_thread,
          "both callbacks ran once on this thread (%d, %d)", w1.called, w2.called);

    CHECK(get_wait(c, iss, "k1", &set) == JWKS_READY && set, "READY after the fetch: %s", WHY);
    const oidc_jwk *k = jwk_set_find(set, "k1");
    CHECK(k && strcmp(k->alg, "ES256") == 0, "set holds k1 (ES256)");
    jwk_set_release(set);
    set = NULL;
    CHECK(jwks_cache_get(c, iss, "", "k1", NULL, NULL, NULL, &set, WHY, sizeof(WHY)) == JWKS_READY &&
              set,
          "cb NULL on a cached issuer: READY");
    jwk_set_release(set);
    set = NULL;
    CHECK(jwks_cache_get(c, iss, "", NULL, NULL, NULL, NULL, &set, WHY, sizeof(WHY)) == JWKS_READY &&
              set,
          "no kid with a one-key set: READY");
    jwk_set_release(set);

    jwks_cache_get_stats(c, &st);
    srv_counts(&d1, &j1);
    CHECK(st.discovery_fetches == 1 && st.jwks_fetches == 1 && st.fetch_failures == 0,
          "one discovery + one JWKS fetch (stats %lu %lu %lu)", st.discovery_fetches,
          st.jwks_fetches, st.fetch_failures);
    CHECK(d1 - d0 == 1 && j1 - j0 == 1, "server saw one of each (%d, %d)", d1 - d0, j1 - j0);

    /* 50 unknown kids within a second: the refetch interval (5 s) holds them all back; each is
     * the client's fault (FAILED, not UNAVAILABLE). */
    for (int i = 0; i < 50; i++) {
        char kid[32];
        snprintf(kid, sizeof(kid), "rnd-%d-%d", i, rand());
        set = NULL;
        enum jwks_result r = get_wait(c, iss, kid, &set);
        snprintf(want, sizeof(want), "key id \"%s\" is not published by %s", kid, iss);
        if (r != JWKS_FAILED || strcmp(WHY, want) != 0) {
            CHECK(0, "unknown kid %s: r %d why \"%s\"", kid, r, WHY);
            jwk_set_release(set);
            break;
        }
    }
    srv_counts(&d1, &j1);
    CHECK(j1 - j0 <= 2 && j1 - j0 >= 1, "50 unknown kids: at most 2 JWKS fetches (%d)", j1 - j0);
    jwks_cache_free(c);
}

static void test_unknown_kid_refetch(void)
{
    jwks_cache_options o = {.refetch_interval_seconds = 1};
    jwks_cache *c = jwks_cache_new(&o);
    char iss[128];
    url_of(iss, sizeof(iss), "good");
    oidc_jwk_set *set = NULL;
    int d0, j0, d1, j1;
    srv_set(JWKS_K1, 200);
    srv_counts(&d0, &j0);
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_READY, "initial fetch: %s", WHY);
    jwk_set_release(set);
    set = NULL;

    /* The issuer adds k2: a token with k2 right away is refused (interval), later refetched. */
    srv_set(JWKS_K2, 200);
    CHECK(get_wait(c, iss, "k2", &set) == JWKS_FAILED && strstr(WHY, "\"k2\" is not published"),
          "unknown kid within the interval: FAILED without fetch: %s", WHY);
    msleep(1100);
    CHECK(get_wait(c, iss, "k2", &set) == JWKS_READY && set && jwk_set_find(set, "k2"),
          "unknown kid after the interval: refetched, READY: %s", WHY);
    jwk_set_release(set);
    set = NULL;
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_FAILED && strstr(WHY, "\"k1\" is not published"),
          "k1 gone after the rotation: %s", WHY);
    srv_counts(&d1, &j1);
    CHECK(j1 - j0 == 2, "two JWKS fetches (%d)", j1 - j0);
    jwks_cache_free(c);
}

/* TTL 1 s, max-stale 3 s, first retry after 4 s (so retries stay out of the way until the end). */
static void test_ttl_stale_and_max_stale(void)
{
    jwks_cache_options o = {.ttl_seconds = 1, .refetch_interval_seconds = 30,
                            .max_stale_seconds = 3, .retry_min_ms = 4000};
    jwks_cache *c = jwks_cache_new(&o);
    char iss[128];
    url_of(iss, sizeof(iss), "good");
    oidc_jwk_set *set = NULL, *first = NULL;
    jwks_cache_stats st;
    int d0, j0, d1, j1;
    srv_set(JWKS_K1, 200);
    srv_counts(&d0, &j0);
    CHECK(get_wait(c, iss, "k1", &first) == JWKS_READY, "initial fetch: %s", WHY);

    /* Past the TTL: the cached set answers at once and a refresh runs in the background. */
    msleep(1100);
    struct waitctx w = {0, 0};
    CHECK(jwks_cache_get(c, iss, "", "k1", MB, on_ready, &w, &set, WHY, sizeof(WHY)) ==
                  JWKS_READY && set == first,
          "past the TTL: READY at once with the cached set");
    jwk_set_release(set);
    set = NULL;
    for (int i = 0; i < 100; i++) {
        srv_counts(&d1, &j1);
        if (j1 - j0 == 2)
            break;
        msleep(20);
    }
    CHECK(d1 - d0 == 2 && j1 - j0 == 2, "background refresh did discovery + JWKS (%d, %d)",
          d1 - d0, j1 - j0);
    /* The server has answered; the fetch thread may still be installing the new set. */
    enum jwks_result r = JWKS_UNAVAILABLE;
    for (int waited = 0; waited <= 2000; waited += 20) {
        r = poll_ready(c, iss, "k1", 1000, &set);
        if (r != JWKS_READY || set != first)
            break;
        jwk_set_release(set);
        set = NULL;
        msleep(20);
    }
    CHECK(r == JWKS_READY && set && set != first, "the refreshed set replaced the first");
    jwk_set_release(set);
    set = NULL;
    CHECK(w.called == 0, "no callback for a READY answer");

    /* Rotation seen after the TTL although the refetch interval is 30 s. */
    srv_set(JWKS_K2, 200);
    msleep(1100);
    CHECK(get_wait(c, iss, "k2", &set) == JWKS_READY && set && jwk_set_find(set, "k2"),
          "after the TTL an unknown kid refetches: %s", WHY);
    jwk_set_release(set);
    set = NULL;

    /* Issuer down: the stale set still serves; the failed refresh is counted. */
    srv_set(NULL, 503);
    msleep(1100);
    CHECK(get_wait(c, iss, "k2", &set) == JWKS_READY && set && jwk_set_find(set, "k2"),
          "issuer down after the TTL: stale set served: %s", WHY);
    jwk_set_release(set);
    set = NULL;
    for (int i = 0; i < 100; i++) {
        jwks_cache_get_stats(c, &st);
        if (st.fetch_failures == 1)
            break;
        msleep(20);
    }
    CHECK(st.fetch_failures == 1, "the failed refresh is counted (%lu)", st.fetch_failures);
    srv_counts(&d0, &j0);
    CHECK(get_wait(c, iss, "k2", &set) == JWKS_READY && set, "next ask: stale set, no fetch");
    jwk_set_release(set);
    set = NULL;
    /* An unknown kid while the issuer fails: we cannot tell, so it is the server's side. */
    CHECK(get_wait(c, iss, "k9", &set) == JWKS_UNAVAILABLE && !set &&
              strstr(WHY, "HTTP status 503") && strstr(WHY, "have no key id \"k9\""),
          "unknown kid while the issuer fails: UNAVAILABLE: %s", WHY);
    srv_counts(&d1, &j1);
    CHECK(d1 == d0 && j1 == j0, "no request to the down issuer during the backoff (%d)", d1 - d0);

    /* Past max-stale (3 s after the last success): refused, naming issuer, cause and limit. */
    msleep(2100);
    char want[1024];
    snprintf(want, sizeof(want),
             "could not fetch the keys of issuer %s: discovery %s/.well-known/openid-configuration: "
             "HTTP status 503 (the keys fetched 3 s ago are past the max-stale limit of 3 s)",
             iss, iss);
    CHECK(get_wait(c, iss, "k2", &set) == JWKS_UNAVAILABLE && !set, "past max-stale: UNAVAILABLE");
    CHECK_STREQ(WHY, want, "past max-stale: message");

    /* The issuer comes back: the background retry (due 4 s after the failure) reloads the keys
     * without any request asking for them. */
    srv_set(NULL, 200);
    CHECK(poll_ready(c, iss, "k2", 5000, &set) == JWKS_READY && set,
          "keys back after the issuer recovered, no restart: %s", WHY);
    jwk_set_release(set);
    jwks_cache_get_stats(c, &st);
    CHECK(st.retries >= 1, "a background retry did it (%lu)", st.retries);
    /* The set handed out first is still valid after the cache replaced it. */
    CHECK(first && jwk_set_find(first, "k1") && first->refs == 1, "old reference still usable");
    jwk_set_release(first);
    jwks_cache_free(c);
}

/* An issuer whose refresh fails is retried in the background at 100, 200, 400, 400... ms;
 * requests meanwhile are answered from the cache (or UNAVAILABLE for an unknown kid) at once and
 * start no fetch of their own. */
static void test_backoff(void)
{
    jwks_cache_options o = {.ttl_seconds = 1, .retry_min_ms = 100, .retry_max_ms = 400};
    jwks_cache *c = jwks_cache_new(&o);
    char iss[128];
    url_of(iss, sizeof(iss), "good");
    oidc_jwk_set *set = NULL;
    jwks_cache_stats st0, st1;
    int d0, j0, d1, j1;
    srv_set(JWKS_K1, 200);
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_READY, "first fetch: %s", WHY);
    jwk_set_release(set);
    set = NULL;
    srv_set(NULL, 503);
    msleep(1100);
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_READY, "past the TTL: cached set, refresh starts");
    jwk_set_release(set);
    set = NULL;
    for (int i = 0; i < 100; i++) {
        jwks_cache_get_stats(c, &st0);
        if (st0.fetch_failures == 1)
            break;
        msleep(10);
    }
    CHECK(st0.fetch_failures == 1, "the refresh failed");
    srv_counts(&d0, &j0);

    /* 1.5 s of requests every 5 ms (~300), known and unknown kids: only the timer fetches. */
    int asked = 0, ready = 0, unavailable = 0, pending = 0, callbacks = 0;
    for (int t = 0; t < 1500; t += 5, asked++) {
        char kid[32];
        snprintf(kid, sizeof(kid), "%s", asked % 2 ? "k1" : "unknown");
        enum jwks_result r =
            jwks_cache_get(c, iss, "", kid, MB, count_cb, &callbacks, &set, WHY, sizeof(WHY));
        ready += r == JWKS_READY;
        unavailable += r == JWKS_UNAVAILABLE;
        pending += r == JWKS_PENDING; /* an unknown kid joined a retry in flight */
        jwk_set_release(set);
        set = NULL;
        event_base_loop(MB, EVLOOP_NONBLOCK);
        msleep(5);
    }
    run_base(100);
    event_base_loop(MB, EVLOOP_NONBLOCK);
    srv_counts(&d1, &j1);
    jwks_cache_get_stats(c, &st1);
    int fetches = d1 - d0;
    /* retries due at about 0.1, 0.3, 0.7, 1.1, 1.5 s after the failed refresh */
    CHECK(fetches >= 3 && fetches <= 6, "%d requests in 1.5 s: %d discovery fetches", asked,
          fetches);
    CHECK(st1.retries >= 3 && st1.discovery_fetches == 2 + st1.retries,
          "every fetch after the refresh was a background retry (%lu retries, %lu fetches)",
          st1.retries, st1.discovery_fetches);
    CHECK(ready == asked / 2 + asked % 2, "known kid: served from the cache (%d of %d)", ready,
          asked / 2 + asked % 2);
    CHECK(unavailable + pending == asked / 2 && unavailable > asked / 4,
          "unknown kid: UNAVAILABLE at once (%d) or joined a retry (%d)", unavailable, pending);
    CHECK(callbacks == pending, "every joined request got its callback (%d of %d)", callbacks,
          pending);

    /* The issuer recovers: a retry (<= 0.4 s) fetches again; nobody asks. */
    srv_set(NULL, 200);
    for (int i = 0; i < 100; i++) {
        jwks_cache_get_stats(c, &st1);
        if (st1.jwks_fetches == 2)
            break;
        msleep(20);
    }
    CHECK(st1.jwks_fetches == 2, "keys reloaded by a background retry");
    srv_counts(&d0, &j0);
    msleep(600);
    srv_counts(&d1, &j1);
    CHECK(d1 == d0, "no more retries after a success (%d)", d1 - d0);
    jwks_cache_free(c);

    /* A (meta) issuer that never answered is not retried in the background: the first request
     * after its backoff fetches again. */
    c = jwks_cache_new(&o);
    url_of(iss, sizeof(iss), "multi-never");
    srv_set(NULL, 503);
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_UNAVAILABLE, "never answered: UNAVAILABLE");
    srv_counts(&d0, &j0);
    msleep(500);
    srv_counts(&d1, &j1);
    CHECK(d1 == d0, "no background retry for an issuer that never answered (%d)", d1 - d0);
    struct waitctx w = {0, 0};
    CHECK(jwks_cache_get(c, iss, "", "k1", MB, on_ready, &w, &set, WHY, sizeof(WHY)) ==
              JWKS_PENDING,
          "after the backoff a request fetches again");
    run_base(3000);
    CHECK(w.called == 1, "its callback ran");
    srv_set(NULL, 200);
    jwks_cache_free(c);
}

static void test_eviction(void)
{
    jwks_cache_options o = {.max_issuers = 2};
    jwks_cache *c = jwks_cache_new(&o);
    char a[128], b[128], x[128], want[256];
    oidc_jwk_set *set = NULL;
    jwks_cache_stats st;
    url_of(a, sizeof(a), "multi-a");
    url_of(b, sizeof(b), "multi-b");
    url_of(x, sizeof(x), "multi-c");
    srv_set(JWKS_K1, 200);
    CHECK(get_wait(c, a, "k1", &set) == JWKS_READY, "multi-a: %s", WHY);
    jwk_set_release(set);
    CHECK(get_wait(c, b, "k1", &set) == JWKS_READY, "multi-b: %s", WHY);
    jwk_set_release(set);
    CHECK(get_wait(c, x, "k1", &set) == JWKS_READY, "multi-c: %s", WHY);
    jwk_set_release(set);
    jwks_cache_get_stats(c, &st);
    CHECK(st.evictions == 1, "one issuer forgotten (%lu)", st.evictions);
    CHECK(jwks_cache_get(c, a, "", "k1", NULL, NULL, NULL, &set, WHY, sizeof(WHY)) ==
              JWKS_UNAVAILABLE,
          "the least recently used (multi-a) was forgotten");
    CHECK(jwks_cache_get(c, b, "", "k1", NULL, NULL, NULL, &set, WHY, sizeof(WHY)) == JWKS_READY,
          "multi-b is still cached");
    jwk_set_release(set);
    jwks_cache_free(c);

    /* Configured issuers are never forgotten: with max_issuers 1 a second issuer is refused. */
    o.max_issuers = 1;
    c = jwks_cache_new(&o);
    issuer_config ic;
    memset(&ic, 0, sizeof(ic));
    ic.issuer_url = a;
    ic.client_id = ic.ca_cert_pem = ic.issuer_claim = (char *)"";
    ic.type = ISSUER_TYPE_EMAIL;
    fulcrum_config cfg = {.issuers = &ic, .n_issuers = 1};
    jwks_cache_prefetch(c, &cfg);
    CHECK(poll_ready(c, a, "k1", 3000, &set) == JWKS_READY, "configured issuer prefetched");
    jwk_set_release(set);
    struct waitctx w = {0, 0};
    CHECK(jwks_cache_get(c, b, "", "k1", MB, on_ready, &w, &set, WHY, sizeof(WHY)) ==
              JWKS_UNAVAILABLE && w.called == 0,
          "no room next to a configured issuer: UNAVAILABLE at once");
    snprintf(want, sizeof(want),
             "could not fetch the keys of issuer %s: the cache already holds 1 issuers, all "
             "configured or busy",
             b);
    CHECK_STREQ(WHY, want, "no room: message");
    CHECK(jwks_cache_get(c, a, "", "k1", NULL, NULL, NULL, &set, WHY, sizeof(WHY)) == JWKS_READY,
          "the configured issuer is still cached");
    jwk_set_release(set);
    jwks_cache_free(c);
}

static void test_failures(void)
{
    jwks_cache_options o = {.max_response_bytes = 64 * 1024, .total_timeout_ms = 700};
    jwks_cache *c = jwks_cache_new(&o);
    oidc_jwk_set *set = NULL;
    char iss[128], want[1024];
    jwks_cache_stats st;
    srv_set(JWKS_K1, 200);

    /* Nothing listens on this port. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sin);
    bind(fd, (struct sockaddr *)&sin, sizeof(sin));
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    close(fd);
    snprintf(iss, sizeof(iss), "http://127.0.0.1:%d", ntohs(sin.sin_port));
    snprintf(want, sizeof(want),
             "could not fetch the keys of issuer %s: discovery %s/.well-known/openid-configuration: ",
             iss, iss);
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_UNAVAILABLE &&
              strncmp(WHY, want, strlen(want)) == 0 && strstr(WHY, "onnect"),
          "issuer unreachable: %s", WHY);
    CHECK(jwks_cache_get(c, iss, "", "k1", NULL, NULL, NULL, &set, WHY, sizeof(WHY)) ==
                  JWKS_UNAVAILABLE &&
              strncmp(WHY, want, strlen(want)) == 0,
          "the failure is remembered: %s", WHY);

    srv_set(NULL, 500);
    url_of(iss, sizeof(iss), "good");
    snprintf(want, sizeof(want),
             "could not fetch the keys of issuer %s: discovery %s/.well-known/openid-configuration: "
             "HTTP status 500",
             iss, iss);
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_UNAVAILABLE, "issuer answering 500");
    CHECK_STREQ(WHY, want, "issuer answering 500: message");
    srv_set(NULL, 200);

    url_of(iss, sizeof(iss), "mismatch");
    snprintf(want, sizeof(want),
             "could not fetch the keys of issuer %s: discovery %s/.well-known/openid-configuration: "
             "the discovery document names issuer \"%s/other\", expected \"%s\"",
             iss, iss, S.url, iss);
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_UNAVAILABLE, "discovery issuer mismatch");
    CHECK_STREQ(WHY, want, "discovery issuer mismatch: message");

    url_of(iss, sizeof(iss), "redir");
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_READY && set, "same-host redirect followed: %s", WHY);
    jwk_set_release(set);
    set = NULL;

    url_of(iss, sizeof(iss), "xhost");
    snprintf(want, sizeof(want),
             "could not fetch the keys of issuer %s: discovery %s/.well-known/openid-configuration: "
             "redirect to another host refused "
             "(http://localhost:%d/good/.well-known/openid-configuration)",
             iss, iss, S.port);
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_UNAVAILABLE, "cross-host redirect refused");
    CHECK_STREQ(WHY, want, "cross-host redirect: message");

    url_of(iss, sizeof(iss), "big");
    snprintf(want, sizeof(want),
             "could not fetch the keys of issuer %s: JWKS %s/jwks: response larger than 65536 bytes",
             iss, iss);
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_UNAVAILABLE, "oversized JWKS refused");
    CHECK_STREQ(WHY, want, "oversized JWKS: message");

    url_of(iss, sizeof(iss), "hang");
    snprintf(want, sizeof(want),
             "could not fetch the keys of issuer %s: discovery %s/.well-known/openid-configuration: "
             "Operation timed out after ",
             iss, iss);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_UNAVAILABLE && strncmp(WHY, want, strlen(want)) == 0,
          "issuer that never answers: total timeout: %s", WHY);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    CHECK(ms >= 650 && ms < 3000, "gave up after the 700 ms total timeout (%ld ms)", ms);

    /* URL policy: refused before any network I/O. */
    jwks_cache_stats before;
    jwks_cache_get_stats(c, &before);
    const char *refused[] = {"http://example.com", "http://10.0.0.1", "http://127.0.0.1.example.com",
                             "ftp://127.0.0.1", "file:///etc/passwd", "not a url"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct waitctx w = {0, 0};
        enum jwks_result r =
            jwks_cache_get(c, refused[i], "", "k1", MB, on_ready, &w, &set, WHY, sizeof(WHY));
        CHECK(r == JWKS_UNAVAILABLE && w.called == 0, "%s refused at once: %s", refused[i], WHY);
    }
    CHECK(jwks_cache_get(c, "http://example.com", "", "k", MB, on_ready, &(struct waitctx){0, 0},
                         &set, WHY, sizeof(WHY)) == JWKS_UNAVAILABLE,
          "plain http to a non-loopback host");
    CHECK_STREQ(WHY,
                "could not fetch the keys of issuer http://example.com: \"http://example.com\" "
                "uses plain http to a non-loopback host",
                "reason for plain http");
    jwks_cache_get_stats(c, &st);
    CHECK(st.discovery_fetches == before.discovery_fetches, "no fetch for refused URLs");
    jwks_cache_free(c);
}

static void test_prefetch_and_free(void)
{
    jwks_cache_options o = {.retry_min_ms = 100, .retry_max_ms = 100};
    jwks_cache *c = jwks_cache_new(&o);
    char good[128], bad[] = "http://example.com";
    url_of(good, sizeof(good), "good");
    issuer_config ics[2];
    memset(ics, 0, sizeof(ics));
    ics[0].issuer_url = good;
    ics[1].issuer_url = bad;
    for (int i = 0; i < 2; i++) {
        ics[i].client_id = ics[i].ca_cert_pem = ics[i].issuer_claim = (char *)"";
        ics[i].type = ISSUER_TYPE_EMAIL;
    }
    fulcrum_config cfg = {.issuers = ics, .n_issuers = 2};
    /* The configured issuer is down at start: it is retried in the background (nobody asks),
     * and its keys arrive once it is up. */
    int d0, j0, d1, j1;
    srv_set(JWKS_K1, 503);
    srv_counts(&d0, &j0);
    jwks_cache_prefetch(c, &cfg);
    msleep(600);
    srv_counts(&d1, &j1);
    CHECK(d1 - d0 >= 3, "configured issuer down: retried in the background (%d fetches)", d1 - d0);
    srv_set(NULL, 200);
    oidc_jwk_set *set = NULL;
    enum jwks_result r = poll_ready(c, good, "k1", 2000, &set);
    CHECK(r == JWKS_READY && set, "prefetched set is READY without a callback: %s", WHY);
    jwk_set_release(set);
    jwks_cache_stats st;
    jwks_cache_get_stats(c, &st);
    CHECK(st.retries + 1 == st.discovery_fetches, "one prefetch, the rest retries (%lu, %lu)",
          st.retries, st.discovery_fetches);
    jwks_cache_free(c);

    /* Freed while a fetch and its waiter are pending: no callback, nothing leaked. */
    c = jwks_cache_new(NULL);
    struct waitctx w = {0, 0};
    r = jwks_cache_get(c, good, "", "k1", MB, on_ready, &w, &set, WHY, sizeof(WHY));
    CHECK(r == JWKS_PENDING, "pending before free");
    jwks_cache_free(c);
    /* A callback activated just before the free may still run; ASan checks the rest. */
    run_base(100);
}

int main(void)
{
    setenv("no_proxy", "*", 1);
    evthread_use_pthreads();
    MAIN_THREAD = pthread_self();
    MB = event_base_new();
    if (srv_start() != 0) {
        fprintf(stderr, "cannot start the test issuer\n");
        return 1;
    }
    EVP_PKEY *k1 = tk_ec("P-256"), *k2 = tk_ec("P-256");
    JWKS_K1 = tk_jwks_text(tk_jwk(k1, "k1", "ES256", "sig"), NULL);
    JWKS_K2 = tk_jwks_text(tk_jwk(k1, "k1-old-format", NULL, NULL), tk_jwk(k2, "k2", NULL, "sig"),
                           NULL);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);

    test_retry_delay();
    test_ready_pending();
    test_unknown_kid_refetch();
    test_ttl_stale_and_max_stale();
    test_backoff();
    test_eviction();
    test_failures();
    test_prefetch_and_free();

    free(JWKS_K1);
    free(JWKS_K2);
    srv_stop();
    event_base_free(MB);
    libevent_global_shutdown();
    CHECK_MAIN_END();
}
