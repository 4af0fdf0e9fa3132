/*
 * tests/integration/test_slowloris.c: a real `fulcrum serve` under a slow-loris attack.
 *
 * 1,000 attacking connections (FULCRUM_TEST_SCALE scales them) are kept open against the server
 * for the whole measurement: half send a partial request head and then one more header byte every
 * 700 ms (so evhttp's idle timeout, which restarts at every byte, never fires), half send a whole
 * head announcing a 100,000-byte body and then trickle the body a byte every 700 ms. Whenever
 * the server closes one, the attacker opens another. Meanwhile 4 real clients issue
 * certificates back to back over keep-alive connections. The test
 *
 *   - measures the real clients' p99 latency without the attack, then under it, and requires
 *     every real request to succeed (200 and a certificate) and
 *     p99(attack) <= max(3 x p99(baseline), p99(baseline) + 50 ms);
 *   - requires every attacking connection to be closed by the server, a trickling head
 *     --read-header-timeout (2s here) after its first byte and a trickling body
 *     --read-body-timeout (3s here) after the end of its head (never earlier, at most 1.5 s
 *     later), including those left open when the attack stops;
 *   - requires fulcrum_http_read_timeouts_total{phase="header"|"body"} to count exactly the
 *     connections the attackers saw closed;
 *   - checks that the deadlines do not cut honest clients: a head sent in slow pieces that ends
 *     within the deadline is answered, and a keep-alive connection idle for longer than the
 *     header deadline between two requests is still served (the deadline starts at a request's
 *     first byte, not when the connection or the previous answer was made);
 *   - checks the flags: in --help, refused out of range (exit 2); and a clean exit (0) on
 *     SIGTERM at the end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "integration/harness.h"
#include "integration/harness_load.h"
#include "integration/harness_ops.h"
#include "unit/check.h"

#define HEADER_TIMEOUT_S 2
#define BODY_TIMEOUT_S 3
#define TRICKLE_MS 700

static h_issuer g_iss;

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- the attackers ------------------------------------------------------------------------ */

enum { KIND_HEAD, KIND_BODY };

struct loris {
    int fd;
    int kind;
    double started_ms; /* head: its first byte; body: the end of its head */
    double next_ms;    /* next trickled byte */
    double open_at_ms; /* when closed: when to open it again */
};

struct attack {
    int port;
    int n;
    struct loris *c;
    _Atomic int reconnect; /* open a new connection for each one closed */
    _Atomic int quit;
    /* results (written by the attacker thread, read after it quits or under mu) */
    pthread_mutex_t mu;
    long opened, cut[2], connect_failures, send_failures;
    double min_life[2], max_life[2]; /* ms from start to the server's close */
    int open_now;
};

static const char head_partial[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Loris: ";
static const char body_head[] = "POST /api/v2/signingCert HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{";

static int loris_open(struct attack *a, struct loris *c, int kind)
{
    c->kind = kind;
    c->fd = connect_to(a->port);
    if (c->fd < 0) {
        a->connect_failures++;
        return -1;
    }
    const char *first = kind == KIND_HEAD ? head_partial : body_head;
    size_t n = kind == KIND_HEAD ? sizeof head_partial - 1 : sizeof body_head - 1;
    c->started_ms = hload_now_ms();
    if (send_all(c->fd, first, n) != 0) {
        close(c->fd);
        c->fd = -1;
        a->send_failures++;
        return -1;
    }
    c->next_ms = c->started_ms + TRICKLE_MS;
    a->opened++;
    return 0;
}

/* The server closed c (or reset it): record how long it lived. */
static void loris_cut(struct attack *a, struct loris *c)
{
    double life = hload_now_ms() - c->started_ms;
    pthread_mutex_lock(&a->mu);
    int k = c->kind;
    if (a->cut[k] == 0 || life < a->min_life[k])
        a->min_life[k] = life;
    if (life > a->max_life[k])
        a->max_life[k] = life;
    a->cut[k]++;
    pthread_mutex_unlock(&a->mu);
    close(c->fd);
    c->fd = -1;
    c->open_at_ms = 0; /* again at once */
}

static void *attack_main(void *arg)
{
    struct attack *a = arg;
    struct pollfd *p = calloc((size_t)a->n, sizeof *p);
    /* The first connections are spread over 1.5 s, so the deadlines (and the reconnections
     * right after them) do not all fall at the same instant. */
    double t0 = hload_now_ms();
    for (int i = 0; i < a->n; i++) {
        a->c[i].fd = -1;
        a->c[i].kind = i % 2 ? KIND_BODY : KIND_HEAD;
        a->c[i].open_at_ms = t0 + 1500.0 * i / a->n;
    }
    while (!atomic_load(&a->quit) && p) {
        double now = hload_now_ms(), next = now + 200;
        int open = 0;
        for (int i = 0; i < a->n; i++) {
            struct loris *c = &a->c[i];
            if (c->fd < 0 && atomic_load(&a->reconnect) && now >= c->open_at_ms)
                loris_open(a, c, c->kind);
            if (c->fd < 0 && atomic_load(&a->reconnect) && c->open_at_ms < next)
                next = c->open_at_ms;
            if (c->fd < 0) {
                p[i].fd = -1;
                continue;
            }
            open++;
            if (now >= c->next_ms) {
                char byte = c->kind == KIND_HEAD ? 'a' : ' ';
                if (send(c->fd, &byte, 1, MSG_NOSIGNAL) != 1) {
                    loris_cut(a, c); /* EPIPE / ECONNRESET: closed by the server */
                    p[i].fd = -1;
                    open--;
                    continue;
                }
                c->next_ms = now + TRICKLE_MS;
            }
            if (c->next_ms < next)
                next = c->next_ms;
            p[i].fd = c->fd;
            p[i].events = POLLIN;
            p[i].revents = 0;
        }
        pthread_mutex_lock(&a->mu);
        a->open_now = open;
        pthread_mutex_unlock(&a->mu);
        int wait = (int)(next - hload_now_ms());
        if (wait < 20)
            wait = 20; /* batches the trickled bytes: a few ms late is fine */
        if (poll(p, (nfds_t)a->n, wait) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < a->n; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            char buf[512];
            ssize_t r = recv(p[i].fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
                loris_cut(a, &a->c[i]);
        }
    }
    free(p);
    return NULL;
}

static int attack_open_now(struct attack *a)
{
    pthread_mutex_lock(&a->mu);
    int n = a->open_now;
    pthread_mutex_unlock(&a->mu);
    return n;
}

/* ---- honest slow clients ------------------------------------------------------------------ */

/* Reads one HTTP answer (head + Content-Length body) within timeout_ms; returns its status or 0. */
static int read_answer(int fd, int timeout_ms)
{
    char buf[8192];
    size_t len = 0;
    double end = hload_now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(end - hload_now_ms());
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, left) <= 0)
            return 0;
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0)
            return 0;
        len += (size_t)n;
        buf[len] = '\0';
        char *eoh = strstr(buf, "\r\n\r\n");
        if (!eoh || strncmp(buf, "HTTP/1.1 ", 9) != 0)
            continue;
        const char *cl = strstr(buf, "Content-Length: ");
        size_t want = cl && cl < eoh ? strtoul(cl + 16, NULL, 10) : 0;
        if (len - (size_t)(eoh + 4 - buf) >= want)
            return atoi(buf + 9);
    }
}

static void test_honest_slow_clients(const h_server *srv)
{
    /* A head in three pieces over ~1.2 s (< 2 s): answered. */
    int fd = connect_to(srv->port);
    CHECK(fd >= 0, "connect");
    if (fd >= 0) {
        const char *pieces[] = {"GET /healthz HTTP/1.1\r\n", "Host: 127.0.0.1\r\nX-Slow: 1\r\n",
                                "\r\n"};
        int ok = 1;
        for (int i = 0; i < 3; i++) {
            ok = ok && send_all(fd, pieces[i], strlen(pieces[i])) == 0;
            if (i < 2)
                usleep(600000);
        }
        CHECK(ok && read_answer(fd, 5000 * h_slow()) == 200,
              "a head trickled in 1.2 s, under the 2 s deadline, is answered");
        /* The same keep-alive connection idle for 2.5 s (> the header deadline), then used. */
        usleep(2500000);
        static const char get[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        CHECK(send_all(fd, get, sizeof get - 1) == 0 && read_answer(fd, 5000 * h_slow()) == 200,
              "a keep-alive connection idle longer than the header deadline still serves its "
              "next request");
        close(fd);
    }
}

/* ---- flags -------------------------------------------------------------------------------- */

static void test_flags(void)
{
    const char *bin = h_env("FULCRUM_BIN");
    if (!bin)
        return;
    char *out = NULL;
    char *const help[] = {(char *)bin, "serve", "--help", NULL};
    char *const bad[] = {(char *)bin,   "serve", "--ca", "ephemeralca", "--ct-log-url", "",
                         "--port",      "0",     "--metrics-port", "-1",
                         "--read-header-timeout", "0s", NULL};
    char *const bad2[] = {(char *)bin,   "serve", "--ca", "ephemeralca", "--ct-log-url", "",
                          "--port",      "0",     "--metrics-port", "-1",
                          "--read-body-timeout", "2h", NULL};
    int rc = h_exec(help, 20000 * h_slow(), &out, NULL);
    CHECK(rc == 0 && out && strstr(out, "--read-header-timeout") &&
              strstr(out, "--read-body-timeout") && strstr(out, "(default 10s)") &&
              strstr(out, "(default 30s)"),
          "--help lists --read-header-timeout and --read-body-timeout with their defaults");
    free(out);
    char *err = NULL;
    rc = h_exec(bad, 20000 * h_slow(), NULL, &err);
    CHECK(rc == 2 && err && strstr(err, "--read-header-timeout 0s"),
          "--read-header-timeout 0s refused, exit 2 (%d, %s)", rc, err ? err : "");
    free(err);
    err = NULL;
    rc = h_exec(bad2, 20000 * h_slow(), NULL, &err);
    CHECK(rc == 2 && err && strstr(err, "--read-body-timeout 7200s"),
          "--read-body-timeout 2h refused, exit 2 (%d, %s)", rc, err ? err : "");
    free(err);
}

/* ---- the attack and the measurements ------------------------------------------------------ */

static void run_window(hload *load, double ms, hload_window *w)
{
    hload_window skip;
    hload_take(load, &skip);
    hload_window_free(&skip);
    usleep((useconds_t)(ms * 1000));
    hload_take(load, w);
}

int main(void)
{
    if (h_init("slowloris") != 0 || h_issuer_start(&g_iss) != 0)
        return 1;
    int nloris = (int)h_scaled(1000, 20);
    long nofile = hload_raise_nofile(4 * nloris + 512);
    CHECK(nofile >= 2 * nloris + 256, "RLIMIT_NOFILE %ld is enough for %d connections", nofile,
          nloris);
    test_flags();

    char mfile[4200];
    snprintf(mfile, sizeof mfile, "%s/metrics.port", h_tmpdir());
    const char *args[] = {"--metrics-port", "0", "--metrics-port-file", mfile,
                          "--read-header-timeout", "2s", "--read-body-timeout", "3s",
                          "--audit-log", "", NULL};
    h_server srv;
    h_server_opts so = {.issuer = &g_iss, .extra_args = args};
    if (h_server_start(&srv, &so) != 0) {
        CHECK(0, "server starts");
        h_finish(1);
        return 1;
    }
    int mport = hops_port_file(mfile, 10000 * h_slow());
    CHECK(mport > 0, "metrics port");

    test_honest_slow_clients(&srv);

    /* 4 real clients, each with its own identity and key. */
    char *bodies[4];
    EVP_PKEY *keys[4];
    for (int i = 0; i < 4; i++) {
        char q[64], email[48];
        snprintf(email, sizeof email, "client%d@example.com", i);
        snprintf(q, sizeof q, "email=%s", email);
        char *token = h_issuer_token(&g_iss, q);
        keys[i] = h_key_new("P-256");
        bodies[i] = hops_v2_body(token, keys[i], email);
        free(token);
    }
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", srv.url);
    hload_opts lo = {.url = url, .bodies = (const char *const *)bodies, .nbodies = 4,
                     .threads = 4, .keep_bodies = 1};
    hload *load = hload_start(&lo);
    CHECK(load != NULL, "real clients start");
    if (!load) {
        h_finish(1);
        return 1;
    }
    hload_window base, warm, under;
    run_window(load, 1000, &warm); /* warm-up: connections, first allocations */
    hload_window_free(&warm);
    run_window(load, 4000, &base);

    struct attack a = {.port = srv.port, .n = nloris};
    a.c = calloc((size_t)nloris, sizeof *a.c);
    pthread_mutex_init(&a.mu, NULL);
    atomic_store(&a.reconnect, 1);
    pthread_t attacker;
    int attacking = a.c && pthread_create(&attacker, NULL, attack_main, &a) == 0;
    CHECK(attacking, "attacker starts");
    /* Wait until the attack is at full strength. */
    for (int i = 0; attacking && i < 200 * h_slow() && attack_open_now(&a) < nloris * 9 / 10; i++)
        usleep(50000);
    int open_at_start = attack_open_now(&a);
    CHECK(open_at_start >= nloris * 9 / 10, "%d of %d attacking connections open", open_at_start,
          nloris);
    run_window(load, 8000, &under); /* spans several cut-and-reconnect cycles */
    int open_during = attack_open_now(&a);
    atomic_store(&a.reconnect, 0);

    /* Everything left open must be cut within the longest deadline (+ slack). */
    double wait_until = hload_now_ms() + (BODY_TIMEOUT_S * 1000 + 3000) * h_slow();
    while (attacking && attack_open_now(&a) > 0 && hload_now_ms() < wait_until)
        usleep(50000);
    int left_open = attacking ? attack_open_now(&a) : -1;
    atomic_store(&a.quit, 1);
    if (attacking)
        pthread_join(attacker, NULL);

    hload_window after;
    hload_stop(load, &after);

    /* The real clients. */
    long bad = 0, no_cert = 0;
    hload_window *ws[] = {&base, &under, &after};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < ws[k]->nanswers; i++) {
            if (ws[k]->answers[i].status != 200) {
                if (bad++ < 3)
                    fprintf(stderr, "real request answered %ld: %.300s\n",
                            ws[k]->answers[i].status, ws[k]->answers[i].body);
                continue;
            }
            X509 *leaf = hops_v2_leaf(ws[k]->answers[i].body);
            if (!leaf)
                no_cert++;
            X509_free(leaf);
        }
    }
    printf("fact: baseline: %ld requests, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", base.requests,
           base.p50_ms, base.p99_ms, base.max_ms);
    printf("fact: under %d slow-loris connections (%d open at the end): %ld requests, p50 %.1f ms, "
           "p99 %.1f ms, max %.1f ms\n",
           nloris, open_during, under.requests, under.p50_ms, under.p99_ms, under.max_ms);
    printf("fact: attack: %ld connections opened, %ld heads and %ld bodies cut by the server; "
           "head lifetimes %.0f..%.0f ms, body lifetimes %.0f..%.0f ms\n",
           a.opened, a.cut[KIND_HEAD], a.cut[KIND_BODY], a.min_life[KIND_HEAD],
           a.max_life[KIND_HEAD], a.min_life[KIND_BODY], a.max_life[KIND_BODY]);
    CHECK(base.requests >= 20 && under.requests >= 20, "enough real requests (%ld, %ld)",
          base.requests, under.requests);
    CHECK(bad == 0, "every real request answered 200 (%ld were not)", bad);
    CHECK(no_cert == 0, "every 200 carries a certificate (%ld did not)", no_cert);
    double limit = base.p99_ms * 3;
    if (limit < base.p99_ms + 50.0 * h_slow())
        limit = base.p99_ms + 50.0 * h_slow();
    CHECK(under.p99_ms <= limit, "p99 under attack %.1f ms <= %.1f ms (baseline p99 %.1f ms)",
          under.p99_ms, limit, base.p99_ms);
    CHECK(open_during >= nloris * 8 / 10, "the attack held its connections open (%d of %d)",
          open_during, nloris);

    /* The attackers. */
    CHECK(a.connect_failures == 0 && a.send_failures == 0,
          "every attacking connection could connect and send its first bytes (%ld, %ld failed)",
          a.connect_failures, a.send_failures);
    CHECK(left_open == 0, "every attacking connection was closed by the server (%d left open)",
          left_open);
    CHECK(a.cut[KIND_HEAD] + a.cut[KIND_BODY] == a.opened,
          "all %ld attacking connections were cut (%ld + %ld)", a.opened, a.cut[KIND_HEAD],
          a.cut[KIND_BODY]);
    CHECK(a.cut[KIND_HEAD] > nloris / 2 && a.cut[KIND_BODY] > nloris / 2,
          "both kinds were cut, several rounds (%ld heads, %ld bodies)", a.cut[KIND_HEAD],
          a.cut[KIND_BODY]);
    double slack = 1500.0 * h_slow();
    CHECK(a.min_life[KIND_HEAD] >= HEADER_TIMEOUT_S * 1000 - 100 &&
              a.max_life[KIND_HEAD] <= HEADER_TIMEOUT_S * 1000 + slack,
          "trickled heads cut %d s after their first byte (%.0f..%.0f ms)", HEADER_TIMEOUT_S,
          a.min_life[KIND_HEAD], a.max_life[KIND_HEAD]);
    CHECK(a.min_life[KIND_BODY] >= BODY_TIMEOUT_S * 1000 - 100 &&
              a.max_life[KIND_BODY] <= BODY_TIMEOUT_S * 1000 + slack,
          "trickled bodies cut %d s after the end of their head (%.0f..%.0f ms)", BODY_TIMEOUT_S,
          a.min_life[KIND_BODY], a.max_life[KIND_BODY]);
    char *text = hops_scrape(mport, NULL);
    double mh = text ? hops_sample(text, "fulcrum_http_read_timeouts_total{phase=\"header\"}") : -1;
    double mb = text ? hops_sample(text, "fulcrum_http_read_timeouts_total{phase=\"body\"}") : -1;
    free(text);
    CHECK(mh == (double)a.cut[KIND_HEAD] && mb == (double)a.cut[KIND_BODY],
          "fulcrum_http_read_timeouts_total counts them (header %g, want %ld; body %g, want %ld)",
          mh, a.cut[KIND_HEAD], mb, a.cut[KIND_BODY]);

    /* Still healthy, and a clean stop. */
    char hz[160];
    snprintf(hz, sizeof hz, "%s/healthz", srv.url);
    h_response r;
    CHECK(h_get(hz, &r) == 0 && r.status == 200, "healthy after the attack");
    h_response_free(&r);
    CHECK(h_proc_stop(&srv.proc, 20000) == 0, "exit 0 on SIGTERM");

    hload_window_free(&base);
    hload_window_free(&under);
    hload_window_free(&after);
    for (int i = 0; i < 4; i++) {
        free(bodies[i]);
        EVP_PKEY_free(keys[i]);
    }
    free(a.c);
    pthread_mutex_destroy(&a.mu);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
