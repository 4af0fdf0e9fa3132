/*
 * bench/loadgen.c: fulcrum-loadgen, the HTTP/1.1 load generator of bench/run.sh.
 *
 *   fulcrum-loadgen URL REQUESTS.jsonl --connections N (--rate R | --max) --duration S
 *                   [--warmup S] [--path /api/v2/signingCert] [--idle-connections K]
 *                   [--timeout S]
 *
 * Replays the JSON bodies of REQUESTS.jsonl (one per line, bench/gen_requests.c), in order and
 * round robin, as POSTs to URL's host and --path, over N keep-alive connections (one request in
 * flight per connection, no pipelining). One thread, one libevent loop, a minimal HTTP/1.1 client
 * on bufferevents: every request is formatted once at start and sent by reference.
 *
 * --rate R (open loop): request k is due at t0 + k/R. A due request goes out on the first idle
 * connection; when all are busy it waits, and its latency still counts from its intended send
 * time, so a stalled server shows in the percentiles (no coordinated omission).
 * --max (closed loop): every connection sends its next request as soon as it has an answer;
 * latency is from the actual send.
 *
 * Measured: the requests due (open loop) or sent (closed loop) after the warm-up and before its
 * end; after the end no new request is sent, the measured ones still queued or in flight are
 * finished (bounded by --timeout). issuances/s = the measured requests answered 200, divided by
 * the time from the window's start to the last answer among them. Latencies are those of the
 * 200 answers, in a log-linear histogram (1 µs exact below 256 µs, then 128 buckets per power of
 * two: under 0.8% error; fixed memory). Every non-200 answer, of the whole run, is an error
 * (status counts; the first 3 bodies are printed), as is a connection lost with a request in
 * flight, a request unanswered after --timeout, or a measured request never sent.
 *
 * --idle-connections K: before the run, K more connections each GET /healthz once and then stay
 * open and idle to the end (the server's memory with many keep-alive clients).
 *
 * Output: a human summary, the loadgen's own CPU time over the measured window, then as the last
 * line: RESULT rps=... p50_ms=... p99_ms=... p999_ms=... errors=... p90_ms=... max_ms=...
 * requests=... ok=... cpu_us_per_req=... (requests: measured; ok: those answered 200).
 * Exit status: 0 when the run completed (even with errors: the caller reads errors=), 1 when it
 * could not run, 2 on usage errors.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_HEAD 65536
#define SHOW_BODIES 3
#define SHOW_BODY_BYTES 300
#define IDLE_OPENING_AT_ONCE 64

/* ---- histogram: microseconds, log-linear ---- */

#define H_SUB_BITS 8
#define H_SUB (1u << H_SUB_BITS)       /* values below this are exact */
#define H_HALF (H_SUB / 2)             /* buckets per power of two above */
#define H_MAX_MSB 40                   /* 2^41 µs ~ 25 days: clamp above */
#define H_BUCKETS (H_SUB + (H_MAX_MSB - H_SUB_BITS + 1) * H_HALF)

struct hist {
    uint64_t count[H_BUCKETS];
    uint64_t n, max;
};

static size_t hist_index(uint64_t v)
{
    if (v < H_SUB)
        return (size_t)v;
    int msb = 63 - __builtin_clzll(v);
    if (msb > H_MAX_MSB)
        return H_BUCKETS - 1;
    int shift = msb - H_SUB_BITS + 1;
    uint64_t sub = v >> shift; /* in [H_HALF, H_SUB) */
    return H_SUB + (size_t)(shift - 1) * H_HALF + (size_t)(sub - H_HALF);
}

/* The largest value that falls in bucket i. */
static uint64_t hist_upper(size_t i)
{
    if (i < H_SUB)
        return i;
    size_t shift = (i - H_SUB) / H_HALF + 1;
    uint64_t sub = (i - H_SUB) % H_HALF + H_HALF;
    return ((sub + 1) << shift) - 1;
}

static void hist_add(struct hist *h, uint64_t us)
{
    h->count[hist_index(us)]++;
    h->n++;
    if (us > h->max)
        h->max = us;
}

/* The value at quantile q (0..1]: the upper bound of its bucket, never above the maximum. */
static uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)h->n);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < H_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want) {
            uint64_t v = hist_upper(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

/* ---- state ---- */

struct lg;

enum conn_kind { POOL, IDLE };

struct conn {
    struct lg *g;
    enum conn_kind kind;
    struct bufferevent *bev;
    int connected, busy;
    int settled, good; /* idle connection: answered (or failed) its /healthz; answered 200 */
    double intended;              /* latency origin of the request in flight */
    int measured;
    /* response parser */
    int have_head, status, chunked, until_close, close_after, in_trailer;
    long content_left; /* Content-Length body bytes still to read */
    size_t chunk_left; /* chunk data bytes still to read (+2 for its CRLF when crlf_pending) */
    int crlf_pending;
    char body[SHOW_BODY_BYTES + 1];
    size_t body_len;
};

struct options {
    const char *url, *file, *path;
    int connections, idle, max;
    double rate, duration, warmup, timeout;
};

struct lg {
    struct options o;
    struct event_base *base;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char hostport[300];
    char **reqs; /* formatted requests */
    size_t *reqlen, nreqs;
    char *healthz;
    size_t healthz_len;

    struct conn *pool, *idle;
    struct conn **free_conns;
    int nfree, pool_connected, idle_next, idle_settled, idle_ok, idle_lost, started, finished;
    int ended; /* the end timer has fired (the clock may read a hair before t_end) */

    struct event *tick_ev, *window_ev, *end_ev, *deadline_ev, *idle_deadline_ev;
    double t0, t_ws, t_end, t_last;
    uint64_t next_seq, cap_seq, max_queue, sent_total;
    int in_flight, measured_in_flight;

    struct hist h;
    uint64_t measured_sent, measured_ok, status[600], transport_errors, unsent, reconnects;
    int shown;
    struct rusage ru_ws, ru_end;
    int fatal;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timeval tv_of(double s)
{
    if (s < 0)
        s = 0;
    struct timeval tv = {(time_t)s, (suseconds_t)((s - floor(s)) * 1e6)};
    return tv;
}

static double cpu_s(const struct rusage *r)
{
    return (double)r->ru_utime.tv_sec + (double)r->ru_utime.tv_usec / 1e6 +
           (double)r->ru_stime.tv_sec + (double)r->ru_stime.tv_usec / 1e6;
}

static void conn_open(struct conn *c);
static void open_more_idle(struct lg *g);
static void dispatch(struct lg *g);
static void check_done(struct lg *g);

/* ---- sending ---- */

static void send_request(struct lg *g, struct conn *c, uint64_t seq, double intended)
{
    size_t i = (size_t)(seq % g->nreqs);
    c->busy = 1;
    c->intended = intended;
    c->measured = intended >= g->t_ws && intended < g->t_end;
    g->in_flight++;
    g->sent_total++;
    if (c->measured) {
        g->measured_sent++;
        g->measured_in_flight++;
    }
    struct timeval to = tv_of(g->o.timeout);
    bufferevent_set_timeouts(c->bev, &to, NULL);
    /* Straight to the socket, which has room for a request: through the bufferevent, each
     * request would turn its write event on and off again (two epoll_ctl), and the load
     * generator shares the cores with the server it measures. What does not go out now (a full
     * socket buffer, an error) goes through the bufferevent, which reports any error. */
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t sent = 0;
    if (evbuffer_get_length(out) == 0) {
        ssize_t n = send((int)bufferevent_getfd(c->bev), g->reqs[i], g->reqlen[i], MSG_NOSIGNAL);
        sent = n > 0 ? (size_t)n : 0;
    }
    if (sent < g->reqlen[i])
        evbuffer_add_reference(out, g->reqs[i] + sent, g->reqlen[i] - sent, NULL, NULL);
}

static uint64_t due_seqs(const struct lg *g, double now)
{
    if (now < g->t0)
        return 0;
    double d = floor((now - g->t0) * g->o.rate) + 1;
    uint64_t due = d > (double)g->cap_seq ? g->cap_seq : (uint64_t)d;
    return due;
}

static void dispatch(struct lg *g)
{
    if (!g->started || g->finished)
        return;
    double now = now_s();
    if (g->o.max) {
        while (g->nfree > 0 && now < g->t_end && !g->ended)
            send_request(g, g->free_conns[--g->nfree], g->next_seq++, now);
    } else {
        uint64_t due = due_seqs(g, now);
        while (g->nfree > 0 && g->next_seq < due) {
            uint64_t k = g->next_seq++;
            send_request(g, g->free_conns[--g->nfree], k, g->t0 + (double)k / g->o.rate);
        }
        if (due > g->next_seq && due - g->next_seq > g->max_queue)
            g->max_queue = due - g->next_seq;
        if (g->nfree > 0 && g->next_seq < g->cap_seq) {
            struct timeval tv = tv_of(g->t0 + (double)g->next_seq / g->o.rate - now);
            evtimer_add(g->tick_ev, &tv);
        }
    }
    check_done(g);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    dispatch(arg);
}

/* ---- finishing ---- */

static void check_done(struct lg *g)
{
    if (!g->started || g->finished || (!g->ended && now_s() < g->t_end))
        return;
    int all_sent = g->o.max || g->next_seq >= g->cap_seq;
    if (all_sent && g->measured_in_flight == 0) {
        g->finished = 1;
        event_base_loopbreak(g->base);
    }
}

static void on_window(evutil_socket_t fd, short what, void *arg)
{
    struct lg *g = arg;
    getrusage(RUSAGE_SELF, &g->ru_ws);
}

static void on_end(evutil_socket_t fd, short what, void *arg)
{
    struct lg *g = arg;
    g->ended = 1;
    struct timeval tv = tv_of(g->o.timeout);
    evtimer_add(g->deadline_ev, &tv);
    check_done(g);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct lg *g = arg;
    if (!g->finished) {
        fprintf(stderr, "loadgen: --timeout %.0f s after the end: %d measured requests still "
                        "unanswered, %llu never sent\n",
                g->o.timeout, g->measured_in_flight,
                (unsigned long long)(g->o.max ? 0 : g->cap_seq - g->next_seq));
        g->transport_errors += (uint64_t)g->measured_in_flight;
        if (!g->o.max)
            g->unsent = g->cap_seq - g->next_seq;
        g->finished = 1;
        event_base_loopbreak(g->base);
    }
}

/* ---- responses ---- */

static void show_error(struct lg *g, int status, const char *body, size_t len)
{
    if (g->shown >= SHOW_BODIES)
        return;
    g->shown++;
    fprintf(stderr, "loadgen: non-200 answer %d: %.*s\n", status, (int)len, body);
}

static void parser_reset(struct conn *c)
{
    c->have_head = c->status = c->chunked = c->until_close = c->close_after = 0;
    c->in_trailer = c->crlf_pending = 0;
    c->content_left = 0;
    c->chunk_left = 0;
    c->body_len = 0;
}

/* The request in flight on c is over: status (0 = transport error, not counted in status[]). */
static void finish_request(struct conn *c, int status)
{
    struct lg *g = c->g;
    double now = now_s();
    c->busy = 0;
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    if (c->kind == IDLE) {
        c->settled = 1;
        g->idle_settled++;
        if (status == 200) {
            g->idle_ok++;
            c->good = 1;
        } else if (status > 0) {
            g->status[status]++;
            show_error(g, status, c->body, c->body_len);
        } else {
            g->transport_errors++;
        }
        open_more_idle(g);
        return;
    }
    g->in_flight--;
    if (status > 0 && status < 600)
        g->status[status]++;
    if (status == 0)
        g->transport_errors++;
    else if (status != 200)
        show_error(g, status, c->body, c->body_len);
    if (c->measured) {
        g->measured_in_flight--;
        if (status == 200) {
            g->measured_ok++;
            double lat = now - c->intended;
            hist_add(&g->h, lat > 0 ? (uint64_t)(lat * 1e6 + 0.5) : 0);
            if (now > g->t_last)
                g->t_last = now;
        }
    }
}

static void keep_body(struct conn *c, struct evbuffer *in, size_t n)
{
    if (c->status != 200 && c->body_len < SHOW_BODY_BYTES) {
        size_t take = n < SHOW_BODY_BYTES - c->body_len ? n : SHOW_BODY_BYTES - c->body_len;
        evbuffer_copyout(in, c->body + c->body_len, take);
        c->body_len += take;
    }
    evbuffer_drain(in, n);
}

/* Parses the status line and headers (head, hl bytes, ends with CRLFCRLF). 0 or -1. */
static int parse_head(struct conn *c, const char *head, size_t hl)
{
    int minor = 0;
    if (hl < 12 || sscanf(head, "HTTP/1.%d %3d", &minor, &c->status) != 2 || c->status < 100 ||
        c->status > 599)
        return -1;
    int keep_alive = minor >= 1, have_length = 0;
    const char *p = memchr(head, '\n', hl), *end = head + hl;
    while (p && ++p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon) {
            size_t nlen = (size_t)(colon - p);
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t vlen = (size_t)(eol - v);
            while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
                vlen--;
            if (nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
                c->content_left = strtol(v, NULL, 10);
                have_length = 1;
            } else if (nlen == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
                c->chunked = vlen >= 7 && strncasecmp(v + vlen - 7, "chunked", 7) == 0;
            } else if (nlen == 10 && strncasecmp(p, "Connection", 10) == 0) {
                if (vlen == 5 && strncasecmp(v, "close", 5) == 0)
                    keep_alive = 0;
                else if (vlen == 10 && strncasecmp(v, "keep-alive", 10) == 0)
                    keep_alive = 1;
            }
        }
        p = eol;
    }
    c->close_after = !keep_alive;
    if (!c->chunked && !have_length && c->status != 204 && c->status != 304 && c->status >= 200)
        c->until_close = 1;
    if (c->content_left < 0)
        return -1;
    return 0;
}

/* Reads a chunked body as far as the input goes: 1 complete, 0 need more, -1 malformed. */
static int read_chunked(struct conn *c, struct evbuffer *in)
{
    for (;;) {
        if (c->in_trailer) {
            size_t n = 0;
            char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
            if (!line)
                return 0;
            free(line);
            if (n == 0)
                return 1;
            continue;
        }
        if (c->chunk_left > 0) {
            size_t avail = evbuffer_get_length(in);
            size_t take = avail < c->chunk_left ? avail : c->chunk_left;
            keep_body(c, in, take);
            c->chunk_left -= take;
            if (c->chunk_left > 0)
                return 0;
            c->crlf_pending = 1;
        }
        if (c->crlf_pending) {
            if (evbuffer_get_length(in) < 2)
                return 0;
            evbuffer_drain(in, 2);
            c->crlf_pending = 0;
        }
        size_t n = 0;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
        if (!line)
            return 0;
        char *endp = NULL;
        unsigned long size = strtoul(line, &endp, 16);
        int bad = endp == line;
        free(line);
        if (bad)
            return -1;
        if (size == 0)
            c->in_trailer = 1;
        else
            c->chunk_left = size;
    }
}

static void conn_lost(struct conn *c, const char *why);

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (evbuffer_get_length(in) > 0) {
        if (!c->busy) {
            conn_lost(c, "data without a request");
            return;
        }
        if (!c->have_head) {
            struct evbuffer_ptr at = evbuffer_search(in, "\r\n\r\n", 4, NULL);
            if (at.pos < 0) {
                if (evbuffer_get_length(in) > MAX_HEAD)
                    conn_lost(c, "response head too large");
                return;
            }
            size_t hl = (size_t)at.pos + 4;
            const char *head = (const char *)evbuffer_pullup(in, (ev_ssize_t)hl);
            if (!head || parse_head(c, head, hl) != 0) {
                conn_lost(c, "malformed response head");
                return;
            }
            evbuffer_drain(in, hl);
            c->have_head = 1;
        }
        if (c->status < 200) { /* 1xx: another head follows */
            c->have_head = 0;
            continue;
        }
        if (c->until_close) {
            keep_body(c, in, evbuffer_get_length(in));
            return;
        }
        if (c->chunked) {
            int r = read_chunked(c, in);
            if (r < 0) {
                conn_lost(c, "malformed chunked body");
                return;
            }
            if (r == 0)
                return;
        } else {
            size_t avail = evbuffer_get_length(in);
            size_t take = avail < (size_t)c->content_left ? avail : (size_t)c->content_left;
            keep_body(c, in, take);
            c->content_left -= (long)take;
            if (c->content_left > 0)
                return;
        }
        int status = c->status, close_after = c->close_after;
        finish_request(c, status);
        parser_reset(c);
        if (close_after) {
            conn_lost(c, NULL);
            return;
        }
        if (c->kind == POOL) {
            c->g->free_conns[c->g->nfree++] = c;
            dispatch(c->g);
        }
    }
}

/* The connection closed or failed: the request in flight (if any) fails, unless the answer was
 * delimited by the close; a pool connection reconnects, an idle one is counted as lost. */
static void conn_lost(struct conn *c, const char *why)
{
    struct lg *g = c->g;
    if (c->busy && c->have_head && c->until_close && !why) {
        finish_request(c, c->status);
    } else if (c->busy) {
        if (why)
            fprintf(stderr, "loadgen: connection lost with a request in flight: %s\n", why);
        finish_request(c, 0);
    }
    parser_reset(c);
    int was_connected = c->connected;
    bufferevent_free(c->bev);
    c->bev = NULL;
    c->connected = 0;
    if (c->kind == IDLE) {
        if (c->good)
            g->idle_lost++;
        if (!c->settled) {
            c->settled = 1;
            g->idle_settled++;
            g->transport_errors++;
        }
        return;
    }
    if (was_connected) {
        /* drop it from the free list if it was there */
        for (int i = 0; i < g->nfree; i++) {
            if (g->free_conns[i] == c) {
                g->free_conns[i] = g->free_conns[--g->nfree];
                break;
            }
        }
    }
    if (!was_connected)
        fprintf(stderr, "loadgen: a connection could not reconnect: %s\n", why ? why : "closed");
    else if (!g->finished) {
        g->reconnects++;
        conn_open(c);
    }
    dispatch(g);
}

static void start_run(struct lg *g);

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    struct lg *g = c->g;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->connected = 1;
        if (c->kind == IDLE) {
            c->busy = 1;
            struct timeval to = tv_of(g->o.timeout);
            bufferevent_set_timeouts(c->bev, &to, NULL);
            evbuffer_add_reference(bufferevent_get_output(bev), g->healthz, g->healthz_len, NULL,
                                   NULL);
            return;
        }
        g->free_conns[g->nfree++] = c;
        if (!g->started && ++g->pool_connected == g->o.connections)
            open_more_idle(g);
        dispatch(g);
        return;
    }
    if (c->kind == POOL && !c->connected && !g->started) {
        fprintf(stderr, "loadgen: cannot connect to %s: %s\n", g->hostport,
                evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        g->fatal = 1;
        event_base_loopbreak(g->base);
        return;
    }
    const char *why = NULL;
    if (what & BEV_EVENT_TIMEOUT)
        why = "no answer within --timeout";
    else if (what & BEV_EVENT_ERROR)
        why = evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
    else if (c->busy && !(c->have_head && c->until_close)) /* else the close ends the body */
        why = "closed by the server";
    int was_idle_pending = c->kind == IDLE && !c->settled;
    conn_lost(c, why);
    if (was_idle_pending)
        open_more_idle(g);
}

static void conn_open(struct conn *c)
{
    struct lg *g = c->g;
    c->bev = bufferevent_socket_new(g->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        fprintf(stderr, "loadgen: out of memory\n");
        g->fatal = 1;
        event_base_loopbreak(g->base);
        return;
    }
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&g->addr, (int)g->addrlen) != 0) {
        /* the event callback has run (or will run) with BEV_EVENT_ERROR */
        return;
    }
}

/* ---- idle connections, then the run ---- */

static void open_more_idle(struct lg *g)
{
    if (g->started)
        return;
    int opening = g->idle_next - g->idle_settled;
    while (g->idle_next < g->o.idle && opening < IDLE_OPENING_AT_ONCE) {
        conn_open(&g->idle[g->idle_next++]);
        opening++;
    }
    if (g->idle_settled == g->o.idle && g->pool_connected == g->o.connections)
        start_run(g);
}

static void on_idle_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct lg *g = arg;
    if (!g->started) {
        fprintf(stderr, "loadgen: only %d of %d idle connections answered /healthz in time; "
                        "going on\n",
                g->idle_settled, g->o.idle);
        start_run(g);
    }
}

static void start_run(struct lg *g)
{
    if (g->started)
        return;
    g->started = 1;
    evtimer_del(g->idle_deadline_ev);
    g->t0 = now_s();
    g->t_ws = g->t0 + g->o.warmup;
    g->t_end = g->t_ws + g->o.duration;
    g->t_last = g->t_ws;
    if (!g->o.max)
        g->cap_seq = (uint64_t)ceil((g->o.warmup + g->o.duration) * g->o.rate);
    if (g->o.warmup > 0) {
        struct timeval w = tv_of(g->o.warmup);
        evtimer_add(g->window_ev, &w);
    } else {
        getrusage(RUSAGE_SELF, &g->ru_ws);
    }
    struct timeval e = tv_of(g->o.warmup + g->o.duration);
    evtimer_add(g->end_ev, &e);
    dispatch(g);
}

/* ---- setup ---- */

static void usage(FILE *to)
{
    fputs("usage: fulcrum-loadgen URL REQUESTS.jsonl --connections N (--rate R | --max) "
          "--duration S\n"
          "                       [--warmup S] [--path /api/v2/signingCert] "
          "[--idle-connections K] [--timeout S]\n",
          to);
}

static int parse_num(const char *flag, const char *v, double lo, double *out)
{
    char *end = NULL;
    errno = 0;
    double d = strtod(v, &end);
    if (!*v || *end || errno || !(d >= lo) || !isfinite(d)) {
        fprintf(stderr, "fulcrum-loadgen: %s %s: not a number >= %g\n", flag, v, lo);
        return -1;
    }
    *out = d;
    return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    int npos = 0;
    double d;
    *o = (struct options){.path = NULL, .connections = 0, .rate = 0, .duration = -1,
                          .warmup = 0, .timeout = 30};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--max") == 0) {
            o->max = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (npos == 0)
                o->url = a;
            else if (npos == 1)
                o->file = a;
            else
                return -1;
            npos++;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fulcrum-loadgen: %s: unknown option or missing value\n", a);
            return -1;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--connections") == 0 || strcmp(a, "--idle-connections") == 0) {
            if (parse_num(a, v, 0, &d) != 0 || d > 1000000 || d != floor(d))
                return -1;
            *(a[2] == 'c' ? &o->connections : &o->idle) = (int)d;
        } else if (strcmp(a, "--rate") == 0) {
            if (parse_num(a, v, 0, &o->rate) != 0)
                return -1;
        } else if (strcmp(a, "--duration") == 0) {
            if (parse_num(a, v, 0, &o->duration) != 0)
                return -1;
        } else if (strcmp(a, "--warmup") == 0) {
            if (parse_num(a, v, 0, &o->warmup) != 0)
                return -1;
        } else if (strcmp(a, "--timeout") == 0) {
            if (parse_num(a, v, 0.001, &o->timeout) != 0)
                return -1;
        } else if (strcmp(a, "--path") == 0) {
            if (v[0] != '/') {
                fprintf(stderr, "fulcrum-loadgen: --path must start with /\n");
                return -1;
            }
            o->path = v;
        } else {
            fprintf(stderr, "fulcrum-loadgen: %s: unknown option\n", a);
            return -1;
        }
    }
    if (npos != 2 || o->connections < 1 || o->duration <= 0 || (o->max == (o->rate > 0))) {
        fprintf(stderr, "fulcrum-loadgen: need URL, REQUESTS.jsonl, --connections >= 1, "
                        "--duration > 0 and exactly one of --rate R (> 0) or --max\n");
        return -1;
    }
    return 0;
}

/* http://host[:port][/path] -> g->addr, g->hostport; the URL's path becomes the default --path. */
static int resolve(struct lg *g, const char **url_path)
{
    const char *u = g->o.url;
    if (strncmp(u, "http://", 7) != 0) {
        fprintf(stderr, "fulcrum-loadgen: %s: only http:// URLs\n", u);
        return -1;
    }
    u += 7;
    size_t hplen = strcspn(u, "/");
    if (hplen == 0 || hplen >= sizeof g->hostport) {
        fprintf(stderr, "fulcrum-loadgen: %s: no host\n", g->o.url);
        return -1;
    }
    memcpy(g->hostport, u, hplen);
    g->hostport[hplen] = '\0';
    *url_path = u[hplen] ? u + hplen : NULL;
    char host[300], port[16] = "80";
    const char *colon = strrchr(g->hostport, ':');
    const char *hstart = g->hostport, *hend = colon ? colon : g->hostport + hplen;
    if (g->hostport[0] == '[') { /* [v6]:port */
        const char *rb = strchr(g->hostport, ']');
        if (!rb) {
            fprintf(stderr, "fulcrum-loadgen: %s: bad host\n", g->o.url);
            return -1;
        }
        hstart = g->hostport + 1;
        hend = rb;
        colon = rb[1] == ':' ? rb + 1 : NULL;
    }
    snprintf(host, sizeof host, "%.*s", (int)(hend - hstart), hstart);
    if (colon)
        snprintf(port, sizeof port, "%s", colon + 1);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0 || !ai) {
        fprintf(stderr, "fulcrum-loadgen: %s: %s\n", g->hostport, gai_strerror(rc));
        return -1;
    }
    memcpy(&g->addr, ai->ai_addr, ai->ai_addrlen);
    g->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static char *format_request(const struct lg *g, const char *method, const char *path,
                            const char *body, size_t blen, size_t *outlen)
{
    size_t cap = strlen(path) + strlen(g->hostport) + blen + 200;
    char *r = malloc(cap);
    if (!r)
        return NULL;
    int n = body ? snprintf(r, cap,
                            "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\n\r\n",
                            method, path, g->hostport, blen)
                 : snprintf(r, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", method, path,
                            g->hostport);
    if (body)
        memcpy(r + n, body, blen);
    *outlen = (size_t)n + (body ? blen : 0);
    return r;
}

static int load_requests(struct lg *g, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "fulcrum-loadgen: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, n = 0, alloc = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        if (n == alloc) {
            alloc = alloc ? alloc * 2 : 1024;
            char **r = realloc(g->reqs, alloc * sizeof *r);
            size_t *l = r ? realloc(g->reqlen, alloc * sizeof *l) : NULL;
            if (r)
                g->reqs = r;
            if (l)
                g->reqlen = l;
            if (!r || !l) {
                rc = -1;
                break;
            }
        }
        g->reqs[n] = format_request(g, "POST", g->o.path, line, (size_t)len, &g->reqlen[n]);
        if (!g->reqs[n]) {
            rc = -1;
            break;
        }
        g->nreqs = ++n;
    }
    free(line);
    fclose(f);
    if (rc != 0)
        fprintf(stderr, "fulcrum-loadgen: out of memory reading %s\n", path);
    else if (n == 0)
        fprintf(stderr, "fulcrum-loadgen: %s holds no request\n", path), rc = -1;
    return rc;
}

static void raise_nofile(int want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)want)
        fprintf(stderr, "loadgen: RLIMIT_NOFILE %llu is below the %d descriptors needed\n",
                (unsigned long long)rl.rlim_cur, want);
}

static void report(struct lg *g)
{
    const struct options *o = &g->o;
    double window = g->t_last - g->t_ws;
    if (window < o->duration)
        window = o->duration;
    double rps = (double)g->measured_ok / window;
    uint64_t errors = g->transport_errors + g->unsent;
    for (int s = 0; s < 600; s++)
        if (s != 200)
            errors += g->status[s];
    double cpu = cpu_s(&g->ru_end) - cpu_s(&g->ru_ws);
    uint64_t done = g->measured_sent ? g->measured_sent : 1;

    if (o->max)
        printf("loadgen: %s%s, %zu distinct requests, %d connections, closed loop (--max), "
               "warm-up %g s, measured %g s\n",
               g->hostport, o->path, g->nreqs, o->connections, o->warmup, o->duration);
    else
        printf("loadgen: %s%s, %zu distinct requests, %d connections, open loop at %g/s, "
               "warm-up %g s, measured %g s; most requests waiting for a connection: %llu\n",
               g->hostport, o->path, g->nreqs, o->connections, o->rate, o->warmup, o->duration,
               (unsigned long long)g->max_queue);
    if (o->idle)
        printf("loadgen: idle keep-alive connections: %d asked, %d answered /healthz 200, "
               "%d still open at the end\n",
               o->idle, g->idle_ok, g->idle_ok - g->idle_lost);
    printf("loadgen: answers over the whole run:");
    for (int s = 0; s < 600; s++)
        if (g->status[s])
            printf(" %d=%llu", s, (unsigned long long)g->status[s]);
    if (g->transport_errors)
        printf(" transport-errors=%llu", (unsigned long long)g->transport_errors);
    if (g->unsent)
        printf(" never-sent=%llu", (unsigned long long)g->unsent);
    if (g->reconnects)
        printf(" (reconnects: %llu)", (unsigned long long)g->reconnects);
    printf("\n");
    printf("loadgen: measured: %llu requests, %llu answered 200 in %.2f s\n",
           (unsigned long long)g->measured_sent, (unsigned long long)g->measured_ok, window);
    printf("issuances/s: %.1f\n", rps);
    printf("latency ms (%s): p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
           o->max ? "from send" : "from intended send time",
           (double)hist_quantile(&g->h, 0.50) / 1e3, (double)hist_quantile(&g->h, 0.90) / 1e3,
           (double)hist_quantile(&g->h, 0.99) / 1e3, (double)hist_quantile(&g->h, 0.999) / 1e3,
           (double)g->h.max / 1e3);
    struct rusage d = g->ru_end;
    d.ru_utime.tv_sec -= g->ru_ws.ru_utime.tv_sec;
    d.ru_utime.tv_usec -= g->ru_ws.ru_utime.tv_usec;
    printf("loadgen CPU: %.2f s over the measured window (user %.2f s; the rest is the kernel, "
           "loopback TCP included), %.1f us per request\n",
           cpu, (double)d.ru_utime.tv_sec + (double)d.ru_utime.tv_usec / 1e6,
           cpu * 1e6 / (double)done);
    printf("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f errors=%llu p90_ms=%.3f "
           "max_ms=%.3f requests=%llu ok=%llu cpu_us_per_req=%.1f\n",
           rps, (double)hist_quantile(&g->h, 0.50) / 1e3, (double)hist_quantile(&g->h, 0.99) / 1e3,
           (double)hist_quantile(&g->h, 0.999) / 1e3, (unsigned long long)errors,
           (double)hist_quantile(&g->h, 0.90) / 1e3, (double)g->h.max / 1e3,
           (unsigned long long)g->measured_sent, (unsigned long long)g->measured_ok,
           cpu * 1e6 / (double)done);
    fflush(stdout);
}

static void free_all(struct lg *g)
{
    if (g->pool)
        for (int i = 0; i < g->o.connections; i++)
            if (g->pool[i].bev)
                bufferevent_free(g->pool[i].bev);
    if (g->idle)
        for (int i = 0; i < g->o.idle; i++)
            if (g->idle[i].bev)
                bufferevent_free(g->idle[i].bev);
    struct event *evs[] = {g->tick_ev, g->window_ev, g->end_ev, g->deadline_ev,
                           g->idle_deadline_ev};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    if (g->base)
        event_base_free(g->base);
    for (size_t i = 0; i < g->nreqs; i++)
        free(g->reqs[i]);
    free(g->reqs);
    free(g->reqlen);
    free(g->healthz);
    free(g->pool);
    free(g->idle);
    free(g->free_conns);
}

int main(int argc, char **argv)
{
    static struct lg g; /* large (histogram): not on the stack */
    if (parse_args(argc, argv, &g.o) != 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    const char *url_path = NULL;
    if (resolve(&g, &url_path) != 0)
        return 1;
    if (!g.o.path)
        g.o.path = url_path && strcmp(url_path, "/") != 0 ? url_path : "/api/v2/signingCert";
    raise_nofile(g.o.connections + g.o.idle + 64);
    int rc = 1;
    if (load_requests(&g, g.o.file) != 0)
        goto out;
    g.healthz = format_request(&g, "GET", "/healthz", NULL, 0, &g.healthz_len);
    struct event_config *cfg = event_config_new();
    if (cfg)
        event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    g.base = cfg ? event_base_new_with_config(cfg) : NULL;
    if (cfg)
        event_config_free(cfg);
    g.pool = calloc((size_t)g.o.connections, sizeof *g.pool);
    g.idle = calloc((size_t)g.o.idle + 1, sizeof *g.idle);
    g.free_conns = calloc((size_t)g.o.connections, sizeof *g.free_conns);
    if (!g.base || !g.healthz || !g.pool || !g.idle || !g.free_conns) {
        fprintf(stderr, "fulcrum-loadgen: cannot set up the event loop\n");
        goto out;
    }
    g.tick_ev = evtimer_new(g.base, on_tick, &g);
    g.window_ev = evtimer_new(g.base, on_window, &g);
    g.end_ev = evtimer_new(g.base, on_end, &g);
    g.deadline_ev = evtimer_new(g.base, on_deadline, &g);
    g.idle_deadline_ev = evtimer_new(g.base, on_idle_deadline, &g);
    if (!g.tick_ev || !g.window_ev || !g.end_ev || !g.deadline_ev || !g.idle_deadline_ev)
        goto out;
    for (int i = 0; i < g.o.connections; i++) {
        g.pool[i] = (struct conn){.g = &g, .kind = POOL};
        conn_open(&g.pool[i]);
    }
    for (int i = 0; i < g.o.idle; i++)
        g.idle[i] = (struct conn){.g = &g, .kind = IDLE};
    struct timeval idl = tv_of(g.o.timeout);
    evtimer_add(g.idle_deadline_ev, &idl);
    event_base_dispatch(g.base);
    if (g.fatal || !g.started)
        goto out;
    getrusage(RUSAGE_SELF, &g.ru_end);
    report(&g);
    rc = 0;
out:
    free_all(&g);
    return rc;
}
