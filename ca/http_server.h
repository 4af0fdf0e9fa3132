/*
 * ca/http_server.h: the HTTP front end: libevent evhttp, one event_base per worker thread, all
 * workers accepting on one listening socket; keep-alive; body and header caps; idle timeout;
 * SIGTERM/SIGINT stop accepting, let in-flight requests finish (bounded), then return.
 *
 * Handlers run on the worker thread that accepted the connection. A handler may answer later
 * (after an asynchronous step) from that same worker's event_base. Every request must be
 * answered exactly once through http_reply() (even if the client went away: libevent frees a
 * detached request when it is answered), which is how draining knows it is done.
 *
 * Socket activation (systemd's sd_listen_fds protocol, implemented here without libsystemd):
 * when $LISTEN_PID equals getpid() and $LISTEN_FDS = n > 0, descriptors 3 .. 3+n-1 are listening
 * sockets the service manager opened (a .socket unit's ListenStream= lines, in order;
 * $LISTEN_FDNAMES, optional, names them, colon-separated). The server then accepts on those (all
 * of them, on every worker) and binds nothing itself: --host/--port are ignored. Each must be a
 * listening (SO_ACCEPTCONN) SOCK_STREAM socket of family AF_INET, AF_INET6 or AF_UNIX; anything
 * else fails start-up with a message naming the descriptor, rather than falling back to binding.
 * The three variables are unset once read (so no child inherits them) and FD_CLOEXEC is set on
 * the descriptors. --port-file receives the port of the first TCP socket. The passed sockets
 * go to the first server created in the process (which closes them when freed); a later one
 * binds host:port.
 */
#ifndef FULCRUM_CA_HTTP_SERVER_H
#define FULCRUM_CA_HTTP_SERVER_H

#include <event2/event.h>
#include <event2/http.h>
#include <stddef.h>

typedef struct http_server_options {
    const char *host;          /* default "0.0.0.0" */
    int port;                  /* 0 = ephemeral */
    const char *port_file;     /* if set, the bound port is written there once listening */
    int workers;               /* <= 0: one per online core */
    size_t max_body_bytes;     /* default 4 MiB */
    size_t max_header_bytes;   /* default 96 KiB (a token may come in the Authorization header) */
    int idle_timeout_seconds;  /* read/write/idle timeout; default 30 */
    int read_header_timeout_seconds; /* a request's head (request line and headers) must
                                        arrive within this from its first byte, however it
                                        trickles (Go's ReadHeaderTimeout); default 10 */
    int read_body_timeout_seconds;   /* and its body within this from the end of the head;
                                        default 30. Past either deadline the connection is
                                        closed unanswered, counted in
                                        fulcrum_http_read_timeouts_total{phase} */
    int drain_timeout_seconds; /* how long SIGTERM waits for in-flight requests; default 30 */
    int max_connections;       /* open connections at most; further clients wait in the listen
                                  backlog until one closes (ca/conn_limit.h); 0 = no limit */
    int use_listen_fds;        /* HTTP_LISTEN_FDS_AUTO (0, default): the sockets systemd passed
                                  when the environment names this process, else bind host:port;
                                  HTTP_LISTEN_FDS_OFF: always bind host:port (passed sockets are
                                  left alone); HTTP_LISTEN_FDS_REQUIRE: fail without them */
} http_server_options;

enum { HTTP_LISTEN_FDS_AUTO = 0, HTTP_LISTEN_FDS_OFF = -1, HTTP_LISTEN_FDS_REQUIRE = 1 };

/* Most sockets accepted from the service manager; more fail start-up. */
#define HTTP_MAX_LISTEN_FDS 16

/* Reads and unsets $LISTEN_PID/$LISTEN_FDS/$LISTEN_FDNAMES once per process (later calls return
 * the first call's result) and sets FD_CLOEXEC on the passed descriptors. Returns how many
 * sockets were passed to this process (0 when none, or when $LISTEN_PID names another process),
 * or -1 when the variables are malformed or name more than HTTP_MAX_LISTEN_FDS sockets (`why`
 * says which). http_server_new() calls it; since unsetenv() is not thread-safe, a program that
 * starts threads reading the environment (libcurl does) before http_server_new() should call it
 * first thing in main(). Thread-safe (pthread_once). */
int http_listen_fds(char *why, size_t whylen);

/* Called for every request on the worker's thread. */
typedef void (*http_handler)(struct evhttp_request *req, struct event_base *base, void *arg);

typedef struct http_server http_server;

/* Binds and listens (so a bad --host/--port fails here, before start-up finishes). */
http_server *http_server_new(const http_server_options *opts, http_handler handler, void *arg,
                             char *why, size_t whylen);

/* Runs the workers until SIGTERM or SIGINT, then drains: stops accepting, answers what is in
 * flight or arrives on open connections with "Connection: close" (so keep-alive clients cannot
 * keep the drain going), and returns once nothing is in flight or drain_timeout_seconds passed.
 * Returns 0 on a clean stop. */
int http_server_run(http_server *srv);

void http_server_free(http_server *srv);

/* Called by http_reply on the worker's thread just before a response is sent (the request log,
 * ca/request_log.h: it may add headers). Set once, before any server runs. */
typedef void (*http_reply_observer)(struct evhttp_request *req, int status);
void http_set_reply_observer(http_reply_observer fn);

/* Sends the response and marks the request done. `body` is copied. */
void http_reply(struct evhttp_request *req, int status, const char *content_type,
                const char *body, size_t len);

/* Requests accepted and not yet answered, over all workers. */
long http_server_inflight(void);

/* Work sharing. A worker serves the connections it accepted, and a signing request costs about
 * half a millisecond of one core: with a few busy keep-alive connections on one worker, its
 * requests queue while another worker idles. A handler on a worker that has other events ready
 * may hand such work to an idle worker:
 *  - http_worker_claim_idle: on a worker's thread with other events ready, the event_base of
 *    another worker that runs no handler and has no event ready; that worker counts as busy
 *    until it calls http_worker_section_end, so the caller must hand it exactly one piece of
 *    work (an event on that base) which ends with that call, on that thread. NULL when there is
 *    none to claim, when nothing else waits on this worker, off a worker thread, or with one
 *    worker.
 *  - The request stays the accepting worker's: everything that touches it (http_reply, the
 *    request log) must go back to that worker's base.
 *  - http_worker_section_begin/_end bracket a handler's work that does not run from the request
 *    callback itself (an answer from another thread, say), so that the worker counts as busy
 *    meanwhile. Off a worker thread they do nothing.
 *  - Each claim counts in fulcrum_http_handoffs_total. */
struct event_base *http_worker_claim_idle(void);
/* Gives back a claim that no work will follow (on the claiming worker's thread). */
void http_worker_release(struct event_base *claimed);
void http_worker_section_begin(void);
void http_worker_section_end(void);

#endif
