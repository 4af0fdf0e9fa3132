/*
 * JWKS cache against a small evhttp issuer on 127.0.0.1 (discovery + JWKS, with fetch counters):
 * READY / PENDING / FAILED flows, callbacks on the requesting base, refetch limits, key rotation,
 * stale keys when the issuer is down, discovery checks, URL policy, redirects, size cap.
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
 * (same-host redirect), /xhost (redirect to another host name), /big (oversized JWKS). */
static void handle(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    char issuer[128], loc[160];
    pthread_mutex_lock(&S.mu);
    int status = S.status;
    if (strstr(path, "openid-configuration") || strstr(path, "discovery"))
        S.n_discovery++;
    else if (strstr(path, "jwks"))
        S.n_jwks++;
    char *jwks = strdup(S.jwks ? S.jwks : "{}");
    pthread_mutex_unlock(&S.mu);

    if (status != 200) {
        reply(req, status, "{\"error\":\"down\"}");
    } else if (strcmp(path, "/good/.well-known/openid-configuration") == 0) {
        snprintf(issuer, sizeof(issuer), "%s/good", S.url);
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

static char WHY[512];

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

static void test_ready_pending(void)
{
    jwks_cache *c = jwks_cache_new(NULL);
    char iss[128];
    url_of(iss, sizeof(iss), "good");
    oidc_jwk_set *set = NULL;
    jwks_cache_stats st;
    int d0, j0, d1, j1;
    srv_set(JWKS_K1, 200);
    srv_counts(&d0, &j0);

    CHECK(jwks_cache_get(c, iss, "", "k1", NULL, NULL, NULL, &set, WHY, sizeof(WHY)) ==
                  JWKS_FAILED &&
              strstr(WHY, "have not been fetched yet") && !set,
          "cb NULL on an unknown issuer: FAILED, no fetch: %s", WHY);
    jwks_cache_get_stats(c, &st);
    CHECK(st.discovery_fetches == 0 && st.jwks_fetches == 0, "cb NULL started nothing");

    /* Two workers ask at once: one fetch, two callbacks. */
    struct waitctx w1 = {0, 0}, w2 = {0, 0};
    enum jwks_result r1 = jwks_cache_get(c, iss, "", "k1", MB, on_ready, &w1, &set, WHY, sizeof(WHY));
    enum jwks_result r2 = jwks_cache_get(c, iss, "", "k1", MB, on_ready, &w2, &set, WHY, sizeof(WHY));
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

    /* 50 unknown kids within a second: the refetch interval (5 s) holds them all back. */
    for (int i = 0; i < 50; i++) {
        char kid[32];
        snprintf(kid, sizeof(kid), "rnd-%d-%d", i, rand());
        set = NULL;
        enum jwks_result r = get_wait(c, iss, kid, &set);
        char want[256];
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
    usleep(1100 * 1000);
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

static void test_ttl_rotation_and_stale(void)
{
    jwks_cache_options o = {.ttl_seconds = 1, .refetch_interval_seconds = 30};
    jwks_cache *c = jwks_cache_new(&o);
    char iss[128];
    url_of(iss, sizeof(iss), "good");
    oidc_jwk_set *set = NULL, *first = NULL;
    jwks_cache_stats st;
    int d0, j0, d1, j1;
    srv_set(JWKS_K1, 200);
    srv_counts(&d0, &j0);
    CHECK(get_wait(c, iss, "k1", &first) == JWKS_READY, "initial fetch: %s", WHY);

    /* Rotation: after the TTL the set is fetched again although the refetch interval is 30 s. */
    srv_set(JWKS_K2, 200);
    usleep(1100 * 1000);
    CHECK(get_wait(c, iss, "k2", &set) == JWKS_READY && set && set != first &&
              jwk_set_find(set, "k2"),
          "after the TTL the rotated key is fetched: %s", WHY);
    jwk_set_release(set);
    set = NULL;
    srv_counts(&d1, &j1);
    CHECK(d1 - d0 == 2 && j1 - j0 == 2, "TTL refetch did discovery + JWKS again (%d, %d)",
          d1 - d0, j1 - j0);

    /* Issuer down after the TTL: the refresh fails, the old set is still served. */
    srv_set(NULL, 503);
    usleep(1100 * 1000);
    oidc_jwk_set *stale = NULL;
    CHECK(get_wait(c, iss, "k2", &stale) == JWKS_READY && stale && jwk_set_find(stale, "k2"),
          "issuer down after TTL: stale set served: %s", WHY);
    jwks_cache_get_stats(c, &st);
    CHECK(st.fetch_failures == 1, "the failed refresh is counted (%lu)", st.fetch_failures);
    srv_counts(&d0, &j0);
    CHECK(get_wait(c, iss, "k2", &set) == JWKS_READY && set == stale,
          "next ask within the interval: stale set without a fetch");
    srv_counts(&d1, &j1);
    CHECK(d1 == d0 && j1 == j0, "no new request to the down issuer");
    jwk_set_release(set);
    jwk_set_release(stale);
    /* The set handed out first is still valid after the cache replaced it. */
    CHECK(first && jwk_set_find(first, "k1") && first->refs == 1, "old reference still usable");
    jwk_set_release(first);
    srv_set(NULL, 200);
    jwks_cache_free(c);
}

static void test_failures(void)
{
    jwks_cache_options o = {.max_response_bytes = 64 * 1024};
    jwks_cache *c = jwks_cache_new(&o);
    oidc_jwk_set *set = NULL;
    char iss[128], want[256];
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
    snprintf(want, sizeof(want), "cannot fetch the OpenID configuration of %s: ", iss);
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_FAILED && strncmp(WHY, want, strlen(want)) == 0 &&
              strstr(WHY, "onnect"),
          "issuer unreachable: %s", WHY);
    CHECK(jwks_cache_get(c, iss, "", "k1", NULL, NULL, NULL, &set, WHY, sizeof(WHY)) ==
                  JWKS_FAILED &&
              strncmp(WHY, want, strlen(want)) == 0,
          "the failure is remembered: %s", WHY);

    srv_set(NULL, 500);
    url_of(iss, sizeof(iss), "good");
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_FAILED && strstr(WHY, "HTTP status 500"),
          "issuer answering 500: %s", WHY);
    srv_set(NULL, 200);

    url_of(iss, sizeof(iss), "mismatch");
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_FAILED && strstr(WHY, "names issuer") &&
              strstr(WHY, "/other"),
          "discovery issuer mismatch: %s", WHY);

    url_of(iss, sizeof(iss), "redir");
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_READY && set, "same-host redirect followed: %s", WHY);
    jwk_set_release(set);
    set = NULL;

    url_of(iss, sizeof(iss), "xhost");
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_FAILED && strstr(WHY, "another host"),
          "cross-host redirect refused: %s", WHY);

    url_of(iss, sizeof(iss), "big");
    CHECK(get_wait(c, iss, "k1", &set) == JWKS_FAILED && strstr(WHY, "larger than 65536 bytes"),
          "oversized JWKS refused: %s", WHY);

    /* URL policy: refused before any network I/O. */
    jwks_cache_stats before;
    jwks_cache_get_stats(c, &before);
    const char *refused[] = {"http://example.com", "http://10.0.0.1", "http://127.0.0.1.example.com",
                             "ftp://127.0.0.1", "file:///etc/passwd", "not a url"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct waitctx w = {0, 0};
        enum jwks_result r =
            jwks_cache_get(c, refused[i], "", "k1", MB, on_ready, &w, &set, WHY, sizeof(WHY));
        CHECK(r == JWKS_FAILED && w.called == 0, "%s refused at once: %s", refused[i], WHY);
    }
    CHECK(jwks_cache_get(c, "http://example.com", "", "k", MB, on_ready, &(struct waitctx){0, 0},
                         &set, WHY, sizeof(WHY)) == JWKS_FAILED &&
              strstr(WHY, "plain http to a non-loopback host"),
          "reason for plain http: %s", WHY);
    jwks_cache_get_stats(c, &st);
    CHECK(st.discovery_fetches == before.discovery_fetches, "no fetch for refused URLs");
    jwks_cache_free(c);
}

static void test_prefetch_and_free(void)
{
    jwks_cache *c = jwks_cache_new(NULL);
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
    srv_set(JWKS_K1, 200);
    jwks_cache_prefetch(c, &cfg);
    oidc_jwk_set *set = NULL;
    enum jwks_result r = JWKS_FAILED;
    for (int i = 0; i < 100 && r != JWKS_READY; i++) {
        usleep(20 * 1000);
        r = jwks_cache_get(c, good, "", "k1", NULL, NULL, NULL, &set, WHY, sizeof(WHY));
    }
    CHECK(r == JWKS_READY && set, "prefetched set is READY without a callback: %s", WHY);
    jwk_set_release(set);
    jwks_cache_stats st;
    jwks_cache_get_stats(c, &st);
    CHECK(st.discovery_fetches == 1, "only the allowed issuer was fetched (%lu)",
          st.discovery_fetches);
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

    test_ready_pending();
    test_unknown_kid_refetch();
    test_ttl_rotation_and_stale();
    test_failures();
    test_prefetch_and_free();

    free(JWKS_K1);
    free(JWKS_K2);
    srv_stop();
    event_base_free(MB);
    libevent_global_shutdown();
    CHECK_MAIN_END();
}
