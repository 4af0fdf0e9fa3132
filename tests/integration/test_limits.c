/*
 * tests/integration/test_limits.c: the limits of a real `fulcrum serve`.
 *
 *   1. --rate-limit-identity 2/s: an identity's third quick request gets 429, gRPC code 8 in
 *      Fulcio's error shape, Retry-After: 1; another identity is not affected; a second later the
 *      identity may again. Refusals are counted by reason.
 *   2. --rate-limit-issuer 3/s: the fourth quick request from the issuer (any identity) gets 429,
 *      then it may again a second later.
 *   3. --max-connections 2 (2 workers): a third client connects but is not served while two
 *      connections are open; it is served as soon as one closes; the open-connection gauge.
 *   4. /healthz is liveness, /readyz readiness: with no issuer configured the server is live but
 *      not ready; after a reload that adds one it is ready.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "integration/harness.h"
#include "integration/harness_ops.h"
#include "unit/check.h"

static h_issuer g_iss;
static EVP_PKEY *g_client;

static int start(h_server *srv, const char *name, int *mport, const char *config_path,
                 const char *const *more)
{
    char mfile[4200];
    snprintf(mfile, sizeof mfile, "%s/%s.mport", h_tmpdir(), name);
    const char *args[20] = {"--metrics-port", "0", "--metrics-port-file", mfile};
    int n = 4;
    for (int i = 0; more && more[i] && n < 19; i++)
        args[n++] = more[i];
    args[n] = NULL;
    h_server_opts o = {.issuer = &g_iss, .config_path = config_path, .extra_args = args};
    if (h_server_start(srv, &o) != 0)
        return -1;
    *mport = hops_port_file(mfile, 10000);
    return *mport > 0 ? 0 : -1;
}

/* A v2 request for identity `email`; returns the status, *retry_after the header (or NULL). */
static long sign_as(const h_server *srv, const char *email, char **retry_after, h_response *out)
{
    char q[160];
    snprintf(q, sizeof q, "email=%s", email);
    char *token = h_issuer_token(&g_iss, q);
    char *body = hops_v2_body(token, g_client, email);
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", srv->url);
    h_response r;
    h_post_json(url, body, NULL, &r);
    long status = r.status;
    if (retry_after)
        *retry_after = h_header(&r, "Retry-After");
    if (out)
        *out = r;
    else
        h_response_free(&r);
    free(token);
    free(body);
    return status;
}

static void test_identity_limit(void)
{
    h_server srv;
    int mport;
    const char *more[] = {"--rate-limit-identity", "2/s", NULL};
    if (start(&srv, "rl-id", &mport, NULL, more) != 0) {
        CHECK(0, "server with --rate-limit-identity starts");
        return;
    }
    long st[6];
    int refused = 0, first_refused = -1;
    for (int i = 0; i < 6; i++) {
        char *ra = NULL;
        h_response r;
        st[i] = sign_as(&srv, "alice@example.com", &ra, &r);
        if (st[i] == 429) {
            refused++;
            if (first_refused < 0) {
                first_refused = i;
                CHECK(h_is_error(&r, 429, 8, "Too many certificate requests: identity "
                                             "\"alice@example.com\" of issuer "),
                      "429 in Fulcio's shape, code 8 (%s)", r.body ? r.body : "");
                CHECK(r.body && strstr(r.body, "is over its limit of 2/s (--rate-limit-identity); "
                                               "retry in 1 s"),
                      "the message names the limit and the wait");
                CHECK_STREQ(ra, "1", "Retry-After: 1");
            }
        }
        free(ra);
        h_response_free(&r);
    }
    CHECK(st[0] == 200 && st[1] == 200, "the first two are issued (%ld, %ld)", st[0], st[1]);
    CHECK(refused >= 1, "a quick third is refused (%d refused of 6)", refused);
    CHECK(sign_as(&srv, "bob@example.com", NULL, NULL) == 200, "another identity is not limited");
    usleep(1100000);
    CHECK(sign_as(&srv, "alice@example.com", NULL, NULL) == 200,
          "a second later alice may again");
    char *text = hops_scrape(mport, NULL);
    CHECK(hops_sample(text, "fulcrum_requests_refused_total{reason=\"rate_limited_identity\"}") ==
              refused,
          "refusals counted by reason (%g, want %d)",
          hops_sample(text, "fulcrum_requests_refused_total{reason=\"rate_limited_identity\"}"),
          refused);
    CHECK(hops_sample(text, "http_requests_total{code=\"429\",method=\"post\"}") == refused,
          "and by code");
    free(text);
    CHECK(hops_wait_log(&srv.proc, "\"status\":429,", refused, 5000) &&
              hops_log_count(&srv.proc, "\"reason\":\"rate_limited_identity\"") == refused,
          "request lines say why");
    h_proc_stop(&srv.proc, 20000);
}

static void test_issuer_limit(void)
{
    h_server srv;
    int mport;
    const char *more[] = {"--rate-limit-issuer", "3/s", NULL};
    if (start(&srv, "rl-iss", &mport, NULL, more) != 0) {
        CHECK(0, "server with --rate-limit-issuer starts");
        return;
    }
    long st[7];
    int refused = 0;
    for (int i = 0; i < 7; i++) {
        char email[64];
        snprintf(email, sizeof email, "user%d@example.com", i);
        h_response r;
        st[i] = sign_as(&srv, email, NULL, &r);
        if (st[i] == 429 && refused++ == 0)
            CHECK(h_is_error(&r, 429, 8, "Too many certificate requests: issuer ") &&
                      strstr(r.body, "is over its limit of 3/s (--rate-limit-issuer)"),
                  "issuer 429 (%s)", r.body ? r.body : "");
        h_response_free(&r);
    }
    CHECK(st[0] == 200 && st[1] == 200 && st[2] == 200, "three identities issued");
    CHECK(refused >= 1, "the issuer's quick fourth and later are refused (%d)", refused);
    usleep(1100000);
    CHECK(sign_as(&srv, "late@example.com", NULL, NULL) == 200, "a second later it may again");
    CHECK(hops_metric(mport, "fulcrum_requests_refused_total{reason=\"rate_limited_issuer\"}") ==
              refused,
          "issuer refusals counted");
    h_proc_stop(&srv.proc, 20000);
}

/* ---- connections ------------------------------------------------------------------------- */

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Sends GET /healthz (keep-alive) and waits up to timeout_ms for a whole 200 answer. */
static int send_get(int fd)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    return send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1) ? 0 : -1;
}

static int wait_answer(int fd, int timeout_ms)
{
    char buf[2048];
    size_t len = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            return 0;
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0)
            return 0;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "HTTP/1.1 200") && strstr(buf, "{\"status\":\"SERVING\"}"))
            return 1;
    }
}

static double wait_open(int mport, double want, int timeout_ms)
{
    double v = -1;
    for (int i = 0; i < timeout_ms / 20; i++) {
        v = hops_metric(mport, "fulcrum_http_connections_open");
        if (v == want)
            break;
        usleep(20000);
    }
    return v;
}

static void test_max_connections(void)
{
    h_server srv;
    int mport;
    const char *more[] = {"--max-connections", "2", "--workers", "2", NULL};
    if (start(&srv, "maxconn", &mport, NULL, more) != 0) {
        CHECK(0, "server with --max-connections starts");
        return;
    }
    CHECK(hops_metric(mport, "fulcrum_http_connections_max") == 2, "max exported");
    CHECK(wait_open(mport, 0, 3000) == 0, "no connection open before the test");
    int c1 = connect_to(srv.port), c2 = connect_to(srv.port);
    CHECK(c1 >= 0 && c2 >= 0, "two connections");
    CHECK(send_get(c1) == 0 && wait_answer(c1, 5000), "first served");
    CHECK(send_get(c2) == 0 && wait_answer(c2, 5000), "second served");
    CHECK(wait_open(mport, 2, 3000) == 2, "2 connections open");
    int c3 = connect_to(srv.port);
    CHECK(c3 >= 0, "a third client connects (the listen backlog)");
    CHECK(send_get(c3) == 0 && !wait_answer(c3, 800), "but is not served while two are open");
    CHECK(hops_metric(mport, "fulcrum_http_connections_open") == 2, "still 2 open");
    CHECK(hops_metric(mport, "fulcrum_http_connections_limit_reached_total") >= 1,
          "limit reached counted");
    close(c1);
    CHECK(wait_answer(c3, 5000), "the third is served once one closes");
    CHECK(send_get(c2) == 0 && wait_answer(c2, 5000), "the second keeps working");
    int c4 = connect_to(srv.port);
    CHECK(c4 >= 0 && send_get(c4) == 0 && !wait_answer(c4, 800), "a fourth waits");
    close(c2);
    CHECK(wait_answer(c4, 5000), "and is served when the second closes");
    close(c3);
    close(c4);
    CHECK(wait_open(mport, 0, 5000) == 0, "0 open after closing all");
    CHECK(hops_metric(mport, "fulcrum_http_connections_over_limit_total") == 0,
          "no connection accepted past the limit");
    CHECK(h_proc_stop(&srv.proc, 20000) == 0, "clean stop");
}

/* Connections opened all at once are spread over the workers (ca/conn_limit.h, balance), not
 * all taken by whichever worker woke first; each is served. */
static void test_balance(void)
{
    enum { N = 16 };
    h_server srv;
    int mport;
    const char *more[] = {"--workers", "2", NULL};
    if (start(&srv, "balance", &mport, NULL, more) != 0) {
        CHECK(0, "server with 2 workers starts");
        return;
    }
    int fds[N], ok = 1;
    for (int i = 0; i < N; i++)
        ok &= (fds[i] = connect_to(srv.port)) >= 0;
    CHECK(ok, "%d connections opened at once", N);
    int served = 0;
    for (int i = 0; i < N; i++)
        served += fds[i] >= 0 && send_get(fds[i]) == 0 && wait_answer(fds[i], 5000);
    CHECK(served == N, "each is served (%d of %d)", served, N);
    CHECK(wait_open(mport, N, 3000) == N, "%d open", N);
    double w0 = hops_metric(mport, "fulcrum_http_worker_connections{worker=\"0\"}");
    double w1 = hops_metric(mport, "fulcrum_http_worker_connections{worker=\"1\"}");
    CHECK(w0 + w1 == N && w0 >= N / 2 - 1 && w1 >= N / 2 - 1,
          "spread over both workers within one of each other: %.0f and %.0f", w0, w1);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    CHECK(wait_open(mport, 0, 5000) == 0, "0 open after closing all");
    CHECK(hops_metric(mport, "fulcrum_http_worker_connections{worker=\"0\"}") == 0 &&
              hops_metric(mport, "fulcrum_http_worker_connections{worker=\"1\"}") == 0,
          "each worker's gauge back to 0");
    /* Both accept again: a second wave spreads too. */
    for (int i = 0; i < N; i++)
        fds[i] = connect_to(srv.port);
    served = 0;
    for (int i = 0; i < N; i++)
        served += fds[i] >= 0 && send_get(fds[i]) == 0 && wait_answer(fds[i], 5000);
    w0 = hops_metric(mport, "fulcrum_http_worker_connections{worker=\"0\"}");
    w1 = hops_metric(mport, "fulcrum_http_worker_connections{worker=\"1\"}");
    CHECK(served == N && w0 + w1 == N && w0 >= N / 2 - 1 && w1 >= N / 2 - 1,
          "a second wave is served and spread too: %.0f and %.0f", w0, w1);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    CHECK(h_proc_stop(&srv.proc, 20000) == 0, "clean stop");
}

/* ---- readiness --------------------------------------------------------------------------- */

static void test_readyz(void)
{
    char config[4200];
    snprintf(config, sizeof config, "%s/empty.json", h_tmpdir());
    h_write_file(config, "{\"OIDCIssuers\":{}}\n");
    h_server srv;
    int mport;
    if (start(&srv, "ready", &mport, config, NULL) != 0) {
        CHECK(0, "server without issuers starts");
        return;
    }
    char url[128];
    h_response r;
    snprintf(url, sizeof url, "%s/healthz", srv.url);
    h_get(url, &r);
    CHECK(r.status == 200 && r.body && strcmp(r.body, "{\"status\":\"SERVING\"}") == 0,
          "/healthz: live");
    h_response_free(&r);
    snprintf(url, sizeof url, "%s/readyz", srv.url);
    h_get(url, &r);
    CHECK(r.status == 503 && r.body &&
              strcmp(r.body, "{\"status\":\"NOT_READY\",\"checks\":{\"signer\":\"ok\","
                             "\"ct_log\":\"off\",\"issuers\":\"no issuers configured\"}}") == 0,
          "/readyz: not ready without issuers (%ld %s)", r.status, r.body ? r.body : "");
    h_response_free(&r);
    char text[512];
    snprintf(text, sizeof text,
             "{\"OIDCIssuers\":{\"%s\":{\"IssuerURL\":\"%s\",\"ClientID\":\"sigstore\","
             "\"Type\":\"email\"}}}\n",
             g_iss.url, g_iss.url);
    h_write_file(config, text);
    kill(srv.proc.pid, SIGHUP);
    CHECK(hops_wait_log(&srv.proc, "reloaded (generation 2)", 1, 10000), "reloaded");
    h_get(url, &r);
    CHECK(r.status == 200 && r.body &&
              strcmp(r.body, "{\"status\":\"READY\",\"checks\":{\"signer\":\"ok\","
                             "\"ct_log\":\"off\",\"issuers\":\"ok\"}}") == 0,
          "/readyz: ready once an issuer is configured (%ld %s)", r.status, r.body ? r.body : "");
    h_response_free(&r);
    h_proc_stop(&srv.proc, 20000);
}

int main(void)
{
    if (h_init("limits") != 0 || h_issuer_start(&g_iss) != 0)
        return 1;
    g_client = h_key_new("P-256");
    test_identity_limit();
    test_issuer_limit();
    test_max_connections();
    test_balance();
    test_readyz();
    EVP_PKEY_free(g_client);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
