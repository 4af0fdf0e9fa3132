/*
 * An answer goes out before new work (ca/http_server.c, reply_first): one worker, requests that
 * keep it busy, and one answered later from a top-priority event (as the CT log's and the audit
 * log's answers are). The answer must be written before the worker reads on through the requests
 * that were ready meanwhile; once written, the connection's next request queues with the others.
 * Asserted on when the answers reach the client's socket (kernel timestamps) and when the
 * server's handlers started (in the answers), with a margin of half a busy request (20 ms).
 *
 * The server runs in a forked child (http_server_run returns on SIGTERM).
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
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

#define BUSY_MS 40
#define NSOCK 6

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The clock of SO_TIMESTAMPNS. */
static double real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- the server (child) ---- */

static void answer_now(evutil_socket_t fd, short what, void *arg)
{
    http_reply(arg, 200, "text/plain", "later", 5);
}

static void handler(struct evhttp_request *req, struct event_base *base, void *arg)
{
    const char *uri = evhttp_request_get_uri(req);
    if (uri && strncmp(uri, "/busy", 5) == 0) {
        char started[64];
        int n = snprintf(started, sizeof started, "%.3f", real_ms());
        double end = now_ms() + BUSY_MS;
        volatile unsigned long spin = 0;
        while (now_ms() < end)
            spin++;
        http_reply(req, 200, "text/plain", started, (size_t)n);
        return;
    }
    /* /later: answered from a top-priority event, after this callback */
    struct event *ev = event_new(base, -1, 0, answer_now, req);
    event_priority_set(ev, 0);
    event_active(ev, EV_TIMEOUT, 0);
    /* freed with the base when the child exits */
}

static void serve(const char *port_file)
{
    evthread_use_pthreads();
    log_set_level(LOG_LVL_ERROR);
    http_server_options o = {.host = "127.0.0.1", .port = 0, .port_file = port_file,
                             .workers = 1, .use_listen_fds = HTTP_LISTEN_FDS_OFF};
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
    int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
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

/* Waits until each socket in idx[0..n) has an answer (answers are small: one segment) and puts
 * in at[k] the time the kernel received it (SO_TIMESTAMPNS, in ms; the client's own scheduling
 * does not blur it) and in started[k] when its handler started (a busy answer's body; else -1).
 * Returns how many answered within timeout_ms. */
static int answer_times(const int *fds, const int *idx, int n, double *at, double *started,
                        int timeout_ms)
{
    int done[NSOCK] = {0}, got = 0;
    double end = now_ms() + timeout_ms;
    while (got < n && now_ms() < end) {
        struct pollfd p[NSOCK];
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd){.fd = done[i] ? -1 : fds[idx[i]], .events = POLLIN};
        if (poll(p, (nfds_t)n, 50) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (done[i] || !(p[i].revents & POLLIN))
                continue;
            char buf[4096], ctl[256];
            struct iovec iov = {buf, sizeof buf};
            struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                               .msg_controllen = sizeof ctl};
            at[i] = started[i] = -1;
            ssize_t got_bytes = recvmsg(fds[idx[i]], &m, 0);
            if (got_bytes > 0) {
                buf[got_bytes < (ssize_t)sizeof buf ? got_bytes : (ssize_t)sizeof buf - 1] = 0;
                const char *body = strstr(buf, "\r\n\r\n");
                if (body && body[4] >= '0' && body[4] <= '9')
                    started[i] = strtod(body + 4, NULL);
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
                    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                        struct timespec ts;
                        memcpy(&ts, CMSG_DATA(c), sizeof ts);
                        at[i] = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
                    }
                }
            }
            if (getenv("ORDER_DEBUG"))
                fprintf(stderr, "answer on %d at %.1f ms, started %.1f\n", idx[i], at[i],
                        started[i]);
            done[i] = 1;
            got++;
        }
    }
    return got;
}

int main(void)
{
    char dir[512];
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fulcrum-reply-order-XXXXXX", t && *t ? t : "/tmp");
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
    int fds[NSOCK + 1];
    for (int i = 0; i < NSOCK; i++) {
        fds[i] = port > 0 ? connect_to(port) : -1;
        CHECK(fds[i] >= 0, "connection %d", i);
    }
    /* Each socket must be the worker's before the busy phase starts: one quick request each. */
    double at[NSOCK], started[NSOCK];
    for (int i = 0; i < NSOCK; i++) {
        int one[1] = {i};
        CHECK(send_get(fds[i], "/later") == 0 && answer_times(fds, one, 1, at, started, 5000) == 1,
              "warm-up answer on connection %d", i);
    }

    /* 1. Socket 0 keeps the worker busy; meanwhile socket 1 asks for an answer made by a
     *    top-priority event and sockets 2..5 for more busy work (BUSY_MS each). Socket 1's answer
     *    must be written as soon as it is made, before the worker runs socket 2's request;
     *    without reply_first it went out after all four (160 ms later). */
    CHECK(send_get(fds[0], "/busy") == 0, "send busy 0");
    usleep(10000); /* the worker is in socket 0's handler */
    CHECK(send_get(fds[1], "/later") == 0, "send later 1");
    usleep(1000);
    for (int i = 2; i < NSOCK; i++)
        CHECK(send_get(fds[i], "/busy") == 0, "send busy %d", i);
    int all[NSOCK] = {0, 1, 2, 3, 4, 5};
    int got = answer_times(fds, all, NSOCK, at, started, 10000);
    CHECK(got == NSOCK, "all answered (%d)", got);
    if (got == NSOCK)
        CHECK(started[2] > 0 && at[1] < started[2] + BUSY_MS / 2,
              "the later answer went out before the next busy request ran (%.1f ms after it "
              "started)",
              at[1] - started[2]);

    /* 2. Once written, the connection is back at the base's default priority: a new request on
     *    socket 1 (answered before), sent just after one on a new connection F (never answered),
     *    runs after it. Left at the top priority, socket 1's would jump the queue. */
    fds[NSOCK] = port > 0 ? connect_to(port) : -1;
    CHECK(fds[NSOCK] >= 0, "connection F");
    usleep(50000); /* accepted */
    CHECK(send_get(fds[0], "/busy") == 0, "send busy 0 again");
    usleep(10000);
    CHECK(send_get(fds[NSOCK], "/busy") == 0, "send busy F");
    usleep(1000);
    CHECK(send_get(fds[1], "/busy") == 0, "send busy 1 again");
    int three[3] = {0, NSOCK, 1};
    got = answer_times(fds, three, 3, at, started, 10000);
    CHECK(got == 3, "all three answered (%d)", got);
    if (got == 3)
        CHECK(started[1] > 0 && started[2] > 0 && started[1] < started[2],
              "the connection's next request ran after the one read before it (socket 1 "
              "started %.1f ms after F)",
              started[2] - started[1]);

    for (int i = 0; i <= NSOCK; i++)
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
