/*
 * Work sharing between workers (ca/http_server.h, http_worker_claim_idle): two workers; three
 * connections that the same worker (X) accepted. X is kept busy by one request while two more
 * arrive on its other connections; when X reads them together, the first finds the second
 * ready, claims the idle worker (Y) and hands its work there, and its answer comes back through
 * X onto its own connection. A request with nothing behind it stays where it was read. The
 * claim ends with the handed work: a second round hands work to Y again.
 *
 * The handler answers with the thread ids of the worker that read the request and of the one
 * that did its work. The server runs in a forked child (http_server_run returns on SIGTERM).
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ca/http_server.h"
#include "common/log.h"
#include "unit/check.h"

#define BUSY_MS 60
#define NCONN 12

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void spin_ms(double ms)
{
    double end = now_ms() + ms;
    volatile unsigned long spin = 0;
    while (now_ms() < end)
        spin++;
}

/* ---- the server (child) ---- */

struct job {
    struct evhttp_request *req;
    struct event_base *home;
    struct event *ev;
    int home_tid, work_tid;
    int wait_for; /* run_job starts once work_checked reaches it */
};

/* /work requests whose claim X has tried. The moved job holds the claim until X has tried the
 * second request's too: otherwise, with X preempted between the two (ASan on a loaded machine),
 * the answer the job sends home is an event ready on X when it reaches the second request, and
 * that one moves as well. */
static atomic_int work_checked;

static void reply_at_home(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    char body[64];
    int n = snprintf(body, sizeof body, "moved %d %d", j->home_tid, j->work_tid);
    http_reply(j->req, 200, "text/plain", body, (size_t)n);
    event_free(j->ev);
    free(j);
}

/* On the claimed worker: the work, then the answer goes home; the claim ends here. */
static void run_job(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    event_free(j->ev);
    for (double end = now_ms() + 2000; atomic_load(&work_checked) < j->wait_for && now_ms() < end;)
        usleep(200);
    spin_ms(5);
    j->work_tid = gettid();
    j->ev = event_new(j->home, -1, 0, reply_at_home, j);
    event_active(j->ev, EV_TIMEOUT, 0);
    http_worker_section_end();
}

static void handler(struct evhttp_request *req, struct event_base *base, void *arg)
{
    const char *uri = evhttp_request_get_uri(req);
    char body[64];
    int n;
    if (uri && strcmp(uri, "/busy") == 0) {
        spin_ms(BUSY_MS);
        n = snprintf(body, sizeof body, "busy %d", gettid());
    } else if (uri && strcmp(uri, "/work") == 0) {
        struct event_base *idle = http_worker_claim_idle();
        int checked = atomic_fetch_add(&work_checked, 1) + 1;
        if (idle) {
            struct job *j = calloc(1, sizeof *j);
            *j = (struct job){.req = req, .home = base, .home_tid = gettid(),
                              .wait_for = checked + 1};
            j->ev = event_new(idle, -1, 0, run_job, j);
            event_active(j->ev, EV_TIMEOUT, 0);
            return;
        }
        spin_ms(5);
        n = snprintf(body, sizeof body, "local %d %d", gettid(), gettid());
    } else {
        n = snprintf(body, sizeof body, "who %d", gettid());
    }
    http_reply(req, 200, "text/plain", body, (size_t)n);
}

static void serve(const char *port_file)
{
    evthread_use_pthreads();
    log_set_level(LOG_LVL_ERROR);
    http_server_options o = {.host = "127.0.0.1", .port = 0, .port_file = port_file,
                             .workers = 2, .use_listen_fds = HTTP_LISTEN_FDS_OFF};
    char why[256] = "";
    http_server *srv = http_server_new(&o, handler, NULL, why, sizeof why);
    if (!srv) {
        fprintf(stderr, "server: %s\n", why);
        _exit(2);
    }
    http_server_run(srv);
    http_server_free(srv);
    _exit(0);
}

/* ---- the client (parent) ---- */

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_get(int fd, const char *path)
{
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    return send(fd, req, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

/* The body of the answer on fd (one segment: the answers are small), or "" after timeout_ms. */
static void read_answer(int fd, char *out, size_t outlen, int timeout_ms)
{
    out[0] = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1)
        return;
    char buf[2048];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return;
    buf[n] = 0;
    const char *body = strstr(buf, "\r\n\r\n");
    snprintf(out, outlen, "%s", body ? body + 4 : "");
}

/* One round on X's connections a, b, c: a keeps X busy, b and c ask for work meanwhile. Returns
 * how many of b and c were moved to the other worker (their answers checked). */
static int round_of(const int *fd, int x_tid, int round)
{
    char ans[3][128];
    CHECK(send_get(fd[0], "/busy") == 0, "round %d: busy sent", round);
    usleep(15000); /* X is in the busy handler */
    CHECK(send_get(fd[1], "/work") == 0 && send_get(fd[2], "/work") == 0,
          "round %d: work sent", round);
    for (int i = 0; i < 3; i++)
        read_answer(fd[i], ans[i], sizeof ans[i], 10000);
    int moved = 0;
    for (int i = 1; i < 3; i++) {
        int home = 0, work = 0;
        char kind[16] = "";
        CHECK(sscanf(ans[i], "%15s %d %d", kind, &home, &work) == 3,
              "round %d: connection %d answered (\"%s\")", round, i, ans[i]);
        CHECK(home == x_tid, "round %d: connection %d's request was read by X (%d, X %d)", round,
              i, home, x_tid);
        if (strcmp(kind, "moved") == 0) {
            CHECK(work != x_tid, "round %d: moved work ran on the other worker", round);
            moved++;
        } else {
            CHECK(strcmp(kind, "local") == 0 && work == x_tid, "round %d: local work on X (%s)",
                  round, ans[i]);
        }
    }
    return moved;
}

int main(void)
{
    char dir[512];
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fulcrum-work-sharing-XXXXXX", t && *t ? t : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "temp dir");
    char port_file[600];
    snprintf(port_file, sizeof port_file, "%s/port", dir);
    pid_t pid = fork();
    if (pid == 0)
        serve(port_file);
    int port = 0;
    for (int i = 0; i < 200 && port <= 0; i++) {
        FILE *f = fopen(port_file, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (port <= 0)
            usleep(20000);
    }
    CHECK(port > 0, "the server listens");

    /* Which worker accepted each connection: twelve over two workers, so one has three. */
    int fds[NCONN], tids[NCONN];
    for (int i = 0; i < NCONN; i++) {
        char ans[128];
        fds[i] = port > 0 ? connect_to(port) : -1;
        tids[i] = 0;
        if (fds[i] >= 0 && send_get(fds[i], "/who") == 0) {
            read_answer(fds[i], ans, sizeof ans, 5000);
            sscanf(ans, "who %d", &tids[i]);
        }
        CHECK(tids[i] > 0, "connection %d: its worker", i);
    }
    int x = -1, mine[3], k = 0;
    for (int i = 0; i < NCONN && k < 3; i++) {
        if (x < 0 || tids[i] == tids[x]) {
            int same = 0;
            for (int j = 0; j < NCONN; j++)
                same += tids[j] == tids[i];
            if (same < 3)
                continue;
            x = i;
            mine[k++] = fds[i];
        }
    }
    CHECK(k == 3, "three connections of one worker");
    if (k == 3) {
        /* Nothing behind it: the work stays on X. */
        char ans[128];
        CHECK(send_get(mine[1], "/work") == 0, "a lone request");
        read_answer(mine[1], ans, sizeof ans, 5000);
        CHECK(strncmp(ans, "local ", 6) == 0, "a lone request stays where it was read (%s)", ans);
        /* Two rounds: each moves one request (the first of the two read together). */
        for (int r = 1; r <= 2; r++) {
            int moved = round_of(mine, tids[x], r);
            CHECK(moved == 1, "round %d: one of the two requests moved to the idle worker (%d)",
                  r, moved);
        }
    }

    for (int i = 0; i < NCONN; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the server stopped cleanly (status %d)", st);
    unlink(port_file);
    rmdir(dir);
    CHECK_MAIN_END();
}
