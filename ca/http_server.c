#include "ca/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ca/conn_limit.h"
#include "common/log.h"
#include "common/metrics.h"

struct conn_state;

struct worker {
    http_server *srv;
    int id;
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound[HTTP_MAX_LISTEN_FDS]; /* one per listening socket */
    int fd; /* a dup of a listening socket not yet handed to evhttp (which then closes it) */
    conn_limit_worker *climit; /* counts and caps connections (ca/conn_limit.h) */
    struct conn_state **conns;  /* read deadlines: this worker's connections by descriptor */
    size_t nconns;              /* slots in conns */
    struct event *log_flush;    /* writes this thread's batched log lines (log_thread_batch) */
    /* Handlers under way on this worker (on_request, http_worker_section_begin) plus the work
     * another worker handed it (http_worker_claim_idle): 0 when it runs none. */
    _Atomic int sections;
};

/* The worker running on this thread (NULL on other threads). */
static _Thread_local struct worker *tl_worker;

struct http_server {
    http_server_options opts;
    http_handler handler;
    void *arg;
    int listen_fds[HTTP_MAX_LISTEN_FDS];
    int nlisten;
    int from_systemd; /* the listening sockets were passed by the service manager */
    int nworkers;
    struct worker *workers;
    conn_limit *climit; /* --max-connections over all workers */
    metric_series *m_header_timeouts, *m_body_timeouts;
    metric_series *m_handoffs; /* http_worker_claim_idle's claims */
};

static http_reply_observer g_reply_observer;

void http_set_reply_observer(http_reply_observer fn) { g_reply_observer = fn; }

static long inflight;

/* Set once SIGTERM/SIGINT started the drain: every answer then closes its connection, so a
 * client with a keep-alive connection cannot keep requests in flight (and the drain from
 * ending) by sending new ones on it, as Go's Server.Shutdown closes connections once idle. */
static int draining;
static long refused_draining; /* requests answered 503 because they came during the drain */

long http_server_inflight(void) { return __atomic_load_n(&inflight, __ATOMIC_SEQ_CST); }

/* An answer goes out before new work. evhttp only queues it (the connection's write event sends
 * it once the loop next polls), and a worker's connections share the base's lower priority: the
 * write then waited behind every request the worker had read meanwhile, ~0.3 ms of crypto each
 * (at half load, 11 ms of the 28 of the slowest 1 % of answers). From the answer to the end of
 * its write the connection's events take the top priority, as the CT log's and the audit log's
 * answers (ct/log_writer.c), from which signing requests are answered: the loop ends its pass
 * over those, polls, and writes before it reads on. An answer made in a request's own callback
 * (an error) goes out when the pass over the ready requests ends; ending the pass there too
 * (event_base_loopcontinue) cost 3 % more worker CPU per issuance at full speed. The connection
 * goes back to the base's default priority once the answer is written (on_complete): its next
 * request queues with the others. first = 0: back. */
static void reply_first(struct evhttp_request *req, int first)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (!bev)
        return;
    struct event_base *base = bufferevent_get_base(bev);
    /* Fails only while one of its events is active: it then just keeps its priority. */
    bufferevent_priority_set(bev, first ? 0 : event_base_get_npriorities(base) / 2);
}

void http_reply(struct evhttp_request *req, int status, const char *content_type,
                const char *body, size_t len)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    if (content_type)
        evhttp_add_header(out, "Content-Type", content_type);
    struct evbuffer *buf = evbuffer_new();
    /* An answer to HEAD has no body (RFC 9110 §9.3.2); libevent would send it anyway. */
    if (buf && len && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
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
    if (__atomic_load_n(&draining, __ATOMIC_SEQ_CST)) {
        evhttp_remove_header(out, "Connection");
        evhttp_add_header(out, "Connection", "close");
    }
    if (g_reply_observer)
        g_reply_observer(req, status);
    reply_first(req, 1);
    evhttp_send_reply(req, status, reason, buf);
    if (buf)
        evbuffer_free(buf);
    __atomic_sub_fetch(&inflight, 1, __ATOMIC_SEQ_CST);
}

/* ---- read deadlines ----------------------------------------------------------------------
 *
 * evhttp's timeout (--idle-connection-timeout) restarts at every read, so a client trickling a
 * byte every few seconds would hold a connection for ever. Each connection therefore gets a
 * timer (conn_limit's observer tells when connections open and close): armed with
 * read_header_timeout at the first byte of a request, re-armed with read_body_timeout when the
 * blank line ending its head arrives (found by watching the bytes the socket adds to the input
 * buffer), disarmed when evhttp hands the whole request to on_request. Reading is off while a
 * request is answered, and the next request starts at the next byte after its answer went out
 * (so an idle keep-alive connection is still governed by the idle timeout only). When the timer
 * fires the request has not reached the handler, so nothing else holds the connection: it is
 * freed, unanswered. */

enum { PHASE_IDLE, PHASE_HEAD, PHASE_BODY, PHASE_HANDLING };

struct conn_state {
    struct worker *w;
    struct evhttp_connection *evcon;
    struct evbuffer *input;
    struct evbuffer_cb_entry *input_cb;
    struct event *timer;
    int fd;
    int phase;
    int scan; /* end-of-head scanner: 0, 1 = just after '\n', 2 = just after "\n\r" */
};

static struct conn_state *conn_lookup(struct worker *w, struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    int fd = bev ? (int)bufferevent_getfd(bev) : -1;
    if (fd < 0 || (size_t)fd >= w->nconns || !w->conns[fd] || w->conns[fd]->evcon != evcon)
        return NULL;
    return w->conns[fd];
}

static void arm(struct conn_state *st, int seconds)
{
    struct timeval tv = {seconds, 0};
    evtimer_add(st->timer, &tv);
}

/* Looks for the empty line that ends a request head in the n newest bytes of buf (bytes are
 * always appended). evhttp takes "\n" as well as "\r\n" as a line end. */
static int head_ends(struct conn_state *st, struct evbuffer *buf, size_t n)
{
    size_t len = evbuffer_get_length(buf);
    if (n > len)
        n = len;
    struct evbuffer_ptr pos;
    if (n == 0 || evbuffer_ptr_set(buf, &pos, len - n, EVBUFFER_PTR_SET) != 0)
        return 0;
    while (n > 0) {
        struct evbuffer_iovec v[8];
        int nv = evbuffer_peek(buf, (ev_ssize_t)n, &pos, v, 8);
        if (nv <= 0)
            return 0;
        for (int i = 0; i < nv && i < 8 && n > 0; i++) {
            size_t m = v[i].iov_len < n ? v[i].iov_len : n;
            const unsigned char *p = v[i].iov_base;
            for (size_t k = 0; k < m; k++) {
                if (p[k] == '\n') {
                    if (st->scan)
                        return 1;
                    st->scan = 1;
                } else {
                    st->scan = p[k] == '\r' && st->scan == 1 ? 2 : 0;
                }
            }
            n -= m;
            if (n > 0 && evbuffer_ptr_set(buf, &pos, m, EVBUFFER_PTR_ADD) != 0)
                return 0;
        }
    }
    return 0;
}

/* The socket added bytes to a connection's input buffer (before evhttp parses them). */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn_state *st = arg;
    if (info->n_added == 0 || st->phase == PHASE_HANDLING || st->phase == PHASE_BODY)
        return;
    const http_server_options *o = &st->w->srv->opts;
    if (st->phase == PHASE_IDLE) {
        st->phase = PHASE_HEAD;
        st->scan = 0;
        arm(st, o->read_header_timeout_seconds);
    }
    if (head_ends(st, buf, info->n_added)) {
        st->phase = PHASE_BODY;
        arm(st, o->read_body_timeout_seconds);
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct conn_state *st = arg;
    if (st->phase != PHASE_HEAD && st->phase != PHASE_BODY)
        return;
    int head = st->phase == PHASE_HEAD;
    metric_inc(head ? st->w->srv->m_header_timeouts : st->w->srv->m_body_timeouts);
    log_debug("http", "closing connection fd %d: request %s not received within %ds (%s)",
              st->fd, head ? "head" : "body",
              head ? st->w->srv->opts.read_header_timeout_seconds
                   : st->w->srv->opts.read_body_timeout_seconds,
              head ? "--read-header-timeout" : "--read-body-timeout");
    evhttp_connection_free(st->evcon); /* conn_closed frees st */
}

static void conn_opened(struct evhttp_connection *evcon, void *arg)
{
    struct worker *w = arg;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    int fd = bev ? (int)bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return;
    if ((size_t)fd >= w->nconns) {
        size_t n = w->nconns ? w->nconns : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct conn_state **c = realloc(w->conns, n * sizeof *c);
        if (!c) {
            log_warn("http", "out of memory: no read deadline for connection fd %d", fd);
            return;
        }
        memset(c + w->nconns, 0, (n - w->nconns) * sizeof *c);
        w->conns = c;
        w->nconns = n;
    }
    if (w->conns[fd]) { /* a connection that closed without its close callback: forget it */
        event_free(w->conns[fd]->timer);
        free(w->conns[fd]);
        w->conns[fd] = NULL;
    }
    struct conn_state *st = calloc(1, sizeof *st);
    if (st) {
        st->w = w;
        st->evcon = evcon;
        st->fd = fd;
        st->input = bufferevent_get_input(bev);
        st->timer = evtimer_new(w->base, on_deadline, st);
        st->input_cb = st->timer ? evbuffer_add_cb(st->input, on_input, st) : NULL;
    }
    if (!st || !st->input_cb) {
        if (st && st->timer)
            event_free(st->timer);
        free(st);
        log_warn("http", "out of memory: no read deadline for connection fd %d", fd);
        return;
    }
    w->conns[fd] = st;
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    struct worker *w = arg;
    struct conn_state *st = conn_lookup(w, evcon);
    if (!st)
        return;
    w->conns[st->fd] = NULL;
    evbuffer_remove_cb_entry(st->input, st->input_cb);
    event_free(st->timer);
    free(st);
}

/* The answer went out: the connection waits for its next request. */
static void on_complete(struct evhttp_request *req, void *arg)
{
    reply_first(req, 0);
    struct conn_state *st = conn_lookup(arg, evhttp_request_get_connection(req));
    if (st)
        st->phase = PHASE_IDLE;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct worker *w = arg;
    struct conn_state *st = conn_lookup(w, evhttp_request_get_connection(req));
    if (st) {
        st->phase = PHASE_HANDLING;
        evtimer_del(st->timer);
    }
    evhttp_request_set_on_complete_cb(req, on_complete, w);
    /* In flight first, then the drain flag: a request that finds no drain is counted before
     * the drain can see zero requests in flight and stop the workers (both sequentially
     * consistent). One arriving during the drain (on a connection that was idle) is refused at
     * once: its work (a CT submission, say) could otherwise start after the workers stopped and
     * never be answered. */
    __atomic_add_fetch(&inflight, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&draining, __ATOMIC_SEQ_CST)) {
        __atomic_add_fetch(&refused_draining, 1, __ATOMIC_SEQ_CST);
        static const char body[] = "{\"code\":14,\"message\":\"the server is shutting down\"}";
        http_reply(req, 503, "application/json", body, sizeof body - 1);
        return;
    }
    atomic_fetch_add(&w->sections, 1);
    w->srv->handler(req, w->base, w->srv->arg);
    atomic_fetch_sub(&w->sections, 1);
}

void http_worker_section_begin(void)
{
    if (tl_worker)
        atomic_fetch_add(&tl_worker->sections, 1);
}

void http_worker_section_end(void)
{
    if (tl_worker)
        atomic_fetch_sub(&tl_worker->sections, 1);
}

void http_worker_release(struct event_base *claimed)
{
    struct worker *me = tl_worker;
    for (int i = 0; me && i < me->srv->nworkers; i++)
        if (me->srv->workers[i].base == claimed)
            atomic_fetch_sub(&me->srv->workers[i].sections, 1);
}

struct event_base *http_worker_claim_idle(void)
{
    struct worker *me = tl_worker;
    if (!me || me->srv->nworkers < 2 ||
        event_base_get_num_events(me->base, EVENT_BASE_COUNT_ACTIVE) == 0)
        return NULL; /* nothing else is ready here: no one waits behind this request */
    int n = me->srv->nworkers;
    for (int k = 1; k < n; k++) { /* the next ones first, so that claims spread */
        struct worker *w = &me->srv->workers[(me->id + k) % n];
        int none = 0;
        if (!atomic_compare_exchange_strong(&w->sections, &none, 1))
            continue; /* running a handler, or claimed already */
        if (event_base_get_num_events(w->base, EVENT_BASE_COUNT_ACTIVE) == 0) {
            metric_inc(me->srv->m_handoffs);
            return w->base; /* idle: counted busy until its http_worker_section_end */
        }
        atomic_fetch_sub(&w->sections, 1); /* it has work of its own ready */
    }
    return NULL;
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


/* ---- socket activation (sd_listen_fds protocol) ------------------------------------------ */

#define LISTEN_FDS_START 3

static struct {
    int n;       /* sockets passed to this process, or -1 on a malformed environment */
    char why[256];
    char note[160]; /* why variables that were present were not used (logged by the server) */
    char names[HTTP_MAX_LISTEN_FDS][64];
} g_lfd;
static pthread_once_t g_lfd_once = PTHREAD_ONCE_INIT;
static int g_lfd_taken; /* a server took the passed sockets (atomic) */

static int parse_long(const char *s, long *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0)
        return -1;
    *out = v;
    return 0;
}

static void collect_listen_fds(void)
{
    char pid_s[32] = "", fds_s[32] = "", names_s[1024] = "";
    const char *e;
    int have_pid = (e = getenv("LISTEN_PID")) != NULL;
    if (have_pid)
        snprintf(pid_s, sizeof pid_s, "%s", e);
    int have_fds = (e = getenv("LISTEN_FDS")) != NULL;
    if (have_fds)
        snprintf(fds_s, sizeof fds_s, "%s", e);
    int have_names = (e = getenv("LISTEN_FDNAMES")) != NULL;
    if (have_names)
        snprintf(names_s, sizeof names_s, "%s", e);
    /* Unset whatever happens, as sd_listen_fds(1) does: no child is to inherit them. */
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");

    g_lfd.n = 0;
    if (!have_pid && !have_fds)
        return;
    long pid = 0, n = 0;
    if (!have_pid || !have_fds) {
        snprintf(g_lfd.note, sizeof g_lfd.note, "ignoring $%s without $%s",
                 have_pid ? "LISTEN_PID" : "LISTEN_FDS", have_pid ? "LISTEN_FDS" : "LISTEN_PID");
        return;
    }
    if (parse_long(pid_s, &pid) != 0 || pid == 0) {
        g_lfd.n = -1;
        snprintf(g_lfd.why, sizeof g_lfd.why, "socket activation: LISTEN_PID=%.20s is not a "
                 "process id", pid_s);
        return;
    }
    if ((pid_t)pid != getpid()) {
        snprintf(g_lfd.note, sizeof g_lfd.note,
                 "ignoring $LISTEN_FDS: $LISTEN_PID=%ld is not this process (%ld)", pid,
                 (long)getpid());
        return;
    }
    if (parse_long(fds_s, &n) != 0) {
        g_lfd.n = -1;
        snprintf(g_lfd.why, sizeof g_lfd.why, "socket activation: LISTEN_FDS=%.20s is not a "
                 "count of descriptors", fds_s);
        return;
    }
    if (n > HTTP_MAX_LISTEN_FDS) {
        g_lfd.n = -1;
        snprintf(g_lfd.why, sizeof g_lfd.why, "socket activation: LISTEN_FDS=%ld: at most %d "
                 "listening sockets are supported", n, HTTP_MAX_LISTEN_FDS);
        return;
    }
    for (int i = 0; i < (int)n; i++) {
        int fd = LISTEN_FDS_START + i;
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0) {
            g_lfd.n = -1;
            snprintf(g_lfd.why, sizeof g_lfd.why, "socket activation: LISTEN_FDS=%ld but "
                     "descriptor %d is not open", n, fd);
            return;
        }
        if (!(fl & FD_CLOEXEC))
            fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
    }
    /* LISTEN_FDNAMES: colon-separated, one per descriptor; optional, and only used in logs. */
    char *save = NULL, *tok = have_names ? strtok_r(names_s, ":", &save) : NULL;
    for (int i = 0; i < (int)n && tok; i++, tok = strtok_r(NULL, ":", &save))
        snprintf(g_lfd.names[i], sizeof g_lfd.names[i], "%s", tok);
    g_lfd.n = (int)n;
}

int http_listen_fds(char *why, size_t whylen)
{
    pthread_once(&g_lfd_once, collect_listen_fds);
    if (g_lfd.n < 0 && why && whylen)
        snprintf(why, whylen, "%s", g_lfd.why);
    return g_lfd.n;
}

/* "127.0.0.1:8080", "[::]:8080", "unix:/run/x.sock"; *port = the TCP port or -1. */
static void describe_socket(int fd, char *out, size_t outlen, int *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    *port = -1;
    memset(&ss, 0, sizeof ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        snprintf(out, outlen, "fd %d", fd);
        return;
    }
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        *port = ntohs(sin->sin_port);
        snprintf(out, outlen, "%s:%d", host, *port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        *port = ntohs(sin6->sin6_port);
        snprintf(out, outlen, "[%s]:%d", host, *port);
    } else if (ss.ss_family == AF_UNIX) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
        size_t plen = len > offsetof(struct sockaddr_un, sun_path)
                          ? len - offsetof(struct sockaddr_un, sun_path)
                          : 0;
        if (plen > 0 && sun->sun_path[0] == '\0') /* abstract */
            snprintf(out, outlen, "unix:@%.*s", (int)(plen - 1), sun->sun_path + 1);
        else
            snprintf(out, outlen, "unix:%.*s", (int)strnlen(sun->sun_path, plen), sun->sun_path);
    } else {
        snprintf(out, outlen, "fd %d (family %d)", fd, (int)ss.ss_family);
    }
}

/* A passed descriptor must be a listening stream socket of a family evhttp can serve. */
static int check_passed_socket(int fd, char *why, size_t whylen)
{
    int val = 0;
    socklen_t len = sizeof val;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &val, &len) != 0) {
        snprintf(why, whylen, "socket activation: descriptor %d is not a socket (%s)", fd,
                 strerror(errno));
        return -1;
    }
    if (val != SOCK_STREAM) {
        snprintf(why, whylen, "socket activation: descriptor %d is not a stream socket (type %d; "
                 "use ListenStream=)", fd, val);
        return -1;
    }
    val = 0;
    len = sizeof val;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &val, &len) != 0 ||
        (val != AF_INET && val != AF_INET6 && val != AF_UNIX)) {
        snprintf(why, whylen, "socket activation: descriptor %d is not an AF_INET, AF_INET6 or "
                 "AF_UNIX socket", fd);
        return -1;
    }
    val = 0;
    len = sizeof val;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &val, &len) != 0 || !val) {
        snprintf(why, whylen, "socket activation: descriptor %d is not listening (Accept=yes "
                 "is not supported: use Accept=no)", fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)) {
        snprintf(why, whylen, "socket activation: cannot make descriptor %d non-blocking: %s",
                 fd, strerror(errno));
        return -1;
    }
    return 0;
}

/* Fills srv->listen_fds: the passed sockets, or one bound to host:port. Returns 0 or -1. */
static int open_listeners(http_server *srv, char *why, size_t whylen)
{
    int mode = srv->opts.use_listen_fds;
    int n = 0;
    if (mode != HTTP_LISTEN_FDS_OFF) {
        n = http_listen_fds(why, whylen);
        if (n < 0)
            return -1;
        if (g_lfd.note[0])
            log_warn("http", "socket activation: %s", g_lfd.note);
        /* The passed sockets belong to one server: the first that takes them closes them. */
        if (n > 0 && __atomic_exchange_n(&g_lfd_taken, 1, __ATOMIC_SEQ_CST)) {
            log_warn("http", "socket activation: the passed sockets are already used by another "
                             "server in this process; binding --host/--port");
            n = 0;
        }
    }
    if (n == 0 && mode == HTTP_LISTEN_FDS_REQUIRE) {
        snprintf(why, whylen, "socket activation required but no sockets were passed "
                 "($LISTEN_FDS/$LISTEN_PID unset or naming another process)");
        return -1;
    }
    if (n == 0) {
        srv->listen_fds[0] = open_listener(srv->opts.host, srv->opts.port, why, whylen);
        if (srv->listen_fds[0] < 0)
            return -1;
        srv->nlisten = 1;
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (check_passed_socket(LISTEN_FDS_START + i, why, whylen) != 0)
            return -1;
    }
    for (int i = 0; i < n; i++)
        srv->listen_fds[i] = LISTEN_FDS_START + i;
    srv->nlisten = n;
    srv->from_systemd = 1;
    return 0;
}

/* A worker's event loop. With epoll's change list, the changes a loop iteration makes to a
 * descriptor reach the kernel as one epoll_ctl when the loop next waits: evhttp enables reading
 * and writing separately for every answer (two calls without it), then turns writing off and
 * reading back on after it. One epoll_ctl (about 2 us in a VM) fewer per request. The change
 * list's caveat, descriptors duplicated with dup() on one loop, does not arise: every socket
 * here is accepted once. */
/* The request log's lines of a worker go out in batches: one write(2) for up to PIPE_BUF bytes
 * (~14 request lines) instead of one per request, at most LOG_FLUSH_US after the first. */
#define LOG_FLUSH_US 10000

static void log_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    log_thread_flush();
}

static void arm_log_flush(void *arg)
{
    struct worker *w = arg;
    static const struct timeval soon = {0, LOG_FLUSH_US};
    if (!evtimer_pending(w->log_flush, NULL))
        evtimer_add(w->log_flush, &soon);
}

static struct event_base *worker_base_new(void)
{
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
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
    if (srv->opts.read_header_timeout_seconds <= 0)
        srv->opts.read_header_timeout_seconds = 10;
    if (srv->opts.read_body_timeout_seconds <= 0)
        srv->opts.read_body_timeout_seconds = 30;
    metric_family *timeouts = metrics_counter(
        "fulcrum_http_read_timeouts_total",
        "Connections closed because a request's head (--read-header-timeout) or body "
        "(--read-body-timeout) did not arrive in time",
        (const char *const[]){"phase", NULL});
    srv->m_header_timeouts = metric_get1(timeouts, "header");
    srv->m_body_timeouts = metric_get1(timeouts, "body");
    srv->m_handoffs = metric_get0(metrics_counter(
        "fulcrum_http_handoffs_total",
        "Requests whose work a busy worker handed to an idle one (ca/http_server.h)", NULL));
    srv->handler = handler;
    srv->arg = arg;
    for (int i = 0; i < HTTP_MAX_LISTEN_FDS; i++)
        srv->listen_fds[i] = -1;

    if (open_listeners(srv, why, whylen) != 0) {
        http_server_free(srv);
        return NULL;
    }
    /* What is listening, for the log; the port file gets the first TCP port. */
    char where[1024] = "";
    size_t used = 0;
    int port = -1;
    for (int i = 0; i < srv->nlisten; i++) {
        char one[160];
        int p = -1;
        describe_socket(srv->listen_fds[i], one, sizeof one, &p);
        if (port < 0)
            port = p;
        if (srv->from_systemd && g_lfd.names[i][0] && used < sizeof where)
            used += (size_t)snprintf(where + used, sizeof where - used, "%s%s (fd %d, %s)",
                                     i ? ", " : "", one, srv->listen_fds[i], g_lfd.names[i]);
        else if (srv->from_systemd && used < sizeof where)
            used += (size_t)snprintf(where + used, sizeof where - used, "%s%s (fd %d)",
                                     i ? ", " : "", one, srv->listen_fds[i]);
        else if (used < sizeof where)
            used += (size_t)snprintf(where + used, sizeof where - used, "%s%s", i ? ", " : "",
                                     one);
    }
    if (srv->opts.port_file) {
        if (port < 0) {
            snprintf(why, whylen, "cannot write --port-file %s: no TCP socket among the "
                     "listening ones (%s)", srv->opts.port_file, where);
            http_server_free(srv);
            return NULL;
        }
        if (write_port_file(srv->opts.port_file, port) != 0) {
            snprintf(why, whylen, "cannot write --port-file %s: %s", srv->opts.port_file,
                     strerror(errno));
            http_server_free(srv);
            return NULL;
        }
    }
    srv->workers = calloc((size_t)srv->opts.workers, sizeof *srv->workers);
    if (!srv->workers) {
        http_server_free(srv);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    srv->nworkers = srv->opts.workers;
    for (int i = 0; i < srv->nworkers; i++)
        srv->workers[i].fd = -1;
    for (int i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        w->srv = srv;
        w->id = i;
        w->base = worker_base_new();
        w->http = w->base ? evhttp_new(w->base) : NULL;
        w->log_flush = w->base ? evtimer_new(w->base, log_flush_cb, w) : NULL;
        if (w->http && !srv->climit)
            srv->climit = conn_limit_new(srv->opts.max_connections);
        if (w->http && srv->climit)
            w->climit = conn_limit_worker_new(srv->climit, w->base, w->http);
        if (!w->http || !w->climit || !w->log_flush) {
            snprintf(why, whylen, "cannot create the event loop of worker %d", i);
            http_server_free(srv);
            return NULL;
        }
        conn_limit_worker_set_observer(w->climit, conn_opened, conn_closed, w);
        evhttp_set_max_body_size(w->http, (ev_ssize_t)srv->opts.max_body_bytes);
        /* A body declared over the limit is read and discarded before the 413 goes out:
         * closing with the client's bytes unread makes the kernel reset the connection,
         * and the client then sees "broken pipe" instead of the answer. */
        evhttp_set_flags(w->http, EVHTTP_SERVER_LINGERING_CLOSE);
        evhttp_set_max_headers_size(w->http, (ev_ssize_t)srv->opts.max_header_bytes);
        evhttp_set_timeout(w->http, srv->opts.idle_timeout_seconds);
        evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                                EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                                EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
        evhttp_set_gencb(w->http, on_request, w);
        for (int j = 0; j < srv->nlisten; j++) {
            w->fd = fcntl(srv->listen_fds[j], F_DUPFD_CLOEXEC, LISTEN_FDS_START);
            if (w->fd < 0 ||
                !(w->bound[j] = evhttp_accept_socket_with_handle(w->http, w->fd))) {
                snprintf(why, whylen, "cannot accept on listening socket %d in worker %d", j, i);
                http_server_free(srv);
                return NULL;
            }
            w->fd = -1; /* owned by the bound socket now */
            conn_limit_worker_add_listener(w->climit,
                                           evhttp_bound_socket_get_listener(w->bound[j]));
        }
    }
    if (srv->from_systemd)
        log_info("http", "listening on %d socket%s passed by the service manager (LISTEN_FDS; "
                 "--host/--port not used): %s; %d workers", srv->nlisten,
                 srv->nlisten == 1 ? "" : "s", where, srv->nworkers);
    else
        log_info("http", "listening on %s port %d (bound by this process) with %d workers",
                 srv->opts.host, port, srv->nworkers);
    return srv;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];
    snprintf(name, sizeof name, "http-worker-%d", w->id);
    pthread_setname_np(pthread_self(), name);
    tl_worker = w;
    if (w->log_flush)
        log_thread_batch(arm_log_flush, w);
    /* Until http_server_run says so: once the drain removed the listeners, a worker whose
     * requests all wait for an answer from another thread (the CT log's writer, a JWKS fetch)
     * has no event of its own left, and a plain dispatch would return and strand them. */
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    log_thread_batch(NULL, NULL);
    return NULL;
}

/* Runs on a worker's thread: stop accepting new connections. */
static void stop_accepting(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    conn_limit_worker_forget_listeners(w->climit);
    for (int j = 0; j < HTTP_MAX_LISTEN_FDS; j++) {
        if (w->bound[j]) {
            evhttp_del_accept_socket(w->http, w->bound[j]);
            w->bound[j] = NULL;
        }
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
    __atomic_store_n(&draining, 1, __ATOMIC_SEQ_CST);
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
    __atomic_store_n(&draining, 0, __ATOMIC_SEQ_CST);
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
    long refused = __atomic_exchange_n(&refused_draining, 0, __ATOMIC_SEQ_CST);
    if (refused > 0)
        log_info("http", "%ld request(s) refused during the drain (503)", refused);
    log_info("http", "stopped");
    return rc;
}

void http_server_free(http_server *srv)
{
    if (!srv)
        return;
    conn_limit_shutdown(srv->climit);
    for (int i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        if (w->http)
            evhttp_free(w->http); /* closes the connections: conn_closed frees their state */
        conn_limit_worker_free(w->climit);
        free(w->conns);
        if (w->log_flush)
            event_free(w->log_flush);
        if (w->base)
            event_base_free(w->base);
        if (w->fd >= 0)
            close(w->fd);
    }
    free(srv->workers);
    for (int i = 0; i < srv->nlisten; i++)
        if (srv->listen_fds[i] >= 0)
            close(srv->listen_fds[i]);
    conn_limit_free(srv->climit);
    free(srv);
}
