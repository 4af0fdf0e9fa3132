#include "ca/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

struct worker {
    http_server *srv;
    int id;
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    int fd; /* this worker's dup of the listening socket; evhttp closes it */
};

struct http_server {
    http_server_options opts;
    http_handler handler;
    void *arg;
    int listen_fd;
    int nworkers;
    struct worker *workers;
};

static long inflight;

long http_server_inflight(void) { return __atomic_load_n(&inflight, __ATOMIC_SEQ_CST); }

void http_reply(struct evhttp_request *req, int status, const char *content_type,
                const char *body, size_t len)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    if (content_type)
        evhttp_add_header(out, "Content-Type", content_type);
    struct evbuffer *buf = evbuffer_new();
    if (buf && len)
        evbuffer_add(buf, body, len);
    const char *reason = NULL;
    switch (status) {
    case 200: reason = "OK"; break;
    case 201: reason = "Created"; break;
    case 400: reason = "Bad Request"; break;
    case 404: reason = "Not Found"; break;
    case 413: reason = "Payload Too Large"; break;
    case 429: reason = "Too Many Requests"; break;
    case 500: reason = "Internal Server Error"; break;
    case 501: reason = "Not Implemented"; break;
    case 503: reason = "Service Unavailable"; break;
    default: reason = "";
    }
    evhttp_send_reply(req, status, reason, buf);
    if (buf)
        evbuffer_free(buf);
    __atomic_sub_fetch(&inflight, 1, __ATOMIC_SEQ_CST);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct worker *w = arg;
    __atomic_add_fetch(&inflight, 1, __ATOMIC_SEQ_CST);
    w->srv->handler(req, w->base, w->srv->arg);
}

static int open_listener(const char *host, int port, char *why, size_t whylen)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        snprintf(why, whylen, "cannot resolve --host %s: %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        snprintf(why, whylen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

http_server *http_server_new(const http_server_options *opts, http_handler handler, void *arg,
                             char *why, size_t whylen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, (void (*)(void))evthread_use_pthreads);

    http_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    srv->opts = *opts;
    if (!srv->opts.host || !*srv->opts.host)
        srv->opts.host = "0.0.0.0";
    if (srv->opts.workers <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        srv->opts.workers = n > 0 ? (int)n : 1;
    }
    if (!srv->opts.max_body_bytes)
        srv->opts.max_body_bytes = 4u << 20;
    if (!srv->opts.max_header_bytes)
        srv->opts.max_header_bytes = 96u << 10;
    if (srv->opts.idle_timeout_seconds <= 0)
        srv->opts.idle_timeout_seconds = 30;
    if (srv->opts.drain_timeout_seconds <= 0)
        srv->opts.drain_timeout_seconds = 30;
    srv->handler = handler;
    srv->arg = arg;

    srv->listen_fd = open_listener(srv->opts.host, srv->opts.port, why, whylen);
    if (srv->listen_fd < 0) {
        free(srv);
        return NULL;
    }
    int port = bound_port(srv->listen_fd);
    if (srv->opts.port_file && write_port_file(srv->opts.port_file, port) != 0) {
        snprintf(why, whylen, "cannot write --port-file %s: %s", srv->opts.port_file,
                 strerror(errno));
        close(srv->listen_fd);
        free(srv);
        return NULL;
    }
    srv->nworkers = srv->opts.workers;
    srv->workers = calloc((size_t)srv->nworkers, sizeof *srv->workers);
    if (!srv->workers) {
        close(srv->listen_fd);
        free(srv);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    for (int i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        w->srv = srv;
        w->id = i;
        w->fd = -1;
        w->base = event_base_new();
        w->http = w->base ? evhttp_new(w->base) : NULL;
        if (!w->http) {
            snprintf(why, whylen, "cannot create the event loop of worker %d", i);
            http_server_free(srv);
            return NULL;
        }
        evhttp_set_max_body_size(w->http, (ev_ssize_t)srv->opts.max_body_bytes);
        evhttp_set_max_headers_size(w->http, (ev_ssize_t)srv->opts.max_header_bytes);
        evhttp_set_timeout(w->http, srv->opts.idle_timeout_seconds);
        evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                                EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                                EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
        evhttp_set_gencb(w->http, on_request, w);
        w->fd = dup(srv->listen_fd);
        if (w->fd < 0 ||
            !(w->bound = evhttp_accept_socket_with_handle(w->http, w->fd))) {
            snprintf(why, whylen, "cannot accept on the listening socket in worker %d", i);
            http_server_free(srv);
            return NULL;
        }
        w->fd = -1; /* owned by the bound socket now */
    }
    log_info("http", "listening on %s port %d with %d workers", srv->opts.host, port,
             srv->nworkers);
    return srv;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

/* Runs on a worker's thread: stop accepting new connections. */
static void stop_accepting(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    if (w->bound) {
        evhttp_del_accept_socket(w->http, w->bound);
        w->bound = NULL;
    }
}

struct stop_state {
    http_server *srv;
    struct event_base *main_base;
    struct event *poll;
    int signalled;
    struct timespec deadline;
};

static void drain_poll(evutil_socket_t fd, short what, void *arg)
{
    struct stop_state *st = arg;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long left = http_server_inflight();
    if (left <= 0 || now.tv_sec >= st->deadline.tv_sec) {
        if (left > 0)
            log_warn("http", "drain deadline reached with %ld requests in flight", left);
        event_base_loopexit(st->main_base, NULL);
        return;
    }
    struct timeval tv = {0, 20000};
    evtimer_add(st->poll, &tv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct stop_state *st = arg;
    if (st->signalled++) {
        log_warn("http", "second signal: stopping now");
        event_base_loopexit(st->main_base, NULL);
        return;
    }
    log_info("http", "signal %d: no longer accepting, draining %ld in-flight requests", (int)sig,
             http_server_inflight());
    for (int i = 0; i < st->srv->nworkers; i++) {
        struct worker *w = &st->srv->workers[i];
        event_base_once(w->base, -1, EV_TIMEOUT, stop_accepting, w, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &st->deadline);
    st->deadline.tv_sec += st->srv->opts.drain_timeout_seconds;
    struct timeval tv = {0, 20000};
    evtimer_add(st->poll, &tv);
}

int http_server_run(http_server *srv)
{
    signal(SIGPIPE, SIG_IGN);
    struct event_base *main_base = event_base_new();
    if (!main_base)
        return -1;
    struct stop_state st = {.srv = srv, .main_base = main_base};
    st.poll = evtimer_new(main_base, drain_poll, &st);
    struct event *sigterm = evsignal_new(main_base, SIGTERM, on_signal, &st);
    struct event *sigint = evsignal_new(main_base, SIGINT, on_signal, &st);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);

    int started = 0;
    for (; started < srv->nworkers; started++) {
        if (pthread_create(&srv->workers[started].thread, NULL, worker_main,
                           &srv->workers[started]) != 0) {
            log_error("http", "cannot start worker thread %d", started);
            break;
        }
    }
    int rc = started == srv->nworkers ? 0 : -1;
    if (rc == 0)
        event_base_dispatch(main_base);

    for (int i = 0; i < started; i++)
        event_base_loopexit(srv->workers[i].base, NULL);
    for (int i = 0; i < started; i++)
        pthread_join(srv->workers[i].thread, NULL);

    event_free(sigterm);
    event_free(sigint);
    event_free(st.poll);
    event_base_free(main_base);
    log_info("http", "stopped");
    return rc;
}

void http_server_free(http_server *srv)
{
    if (!srv)
        return;
    for (int i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        if (w->http)
            evhttp_free(w->http);
        if (w->base)
            event_base_free(w->base);
        if (w->fd >= 0)
            close(w->fd);
    }
    free(srv->workers);
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    free(srv);
}
