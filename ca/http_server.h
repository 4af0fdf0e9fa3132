/*
 * ca/http_server.h: the HTTP front end: libevent evhttp, one event_base per worker thread, all
 * workers accepting on one listening socket; keep-alive; body and header caps; idle timeout;
 * SIGTERM/SIGINT stop accepting, let in-flight requests finish (bounded), then return.
 *
 * Handlers run on the worker thread that accepted the connection. A handler may answer later
 * (after an asynchronous step) from that same worker's event_base. Every request must be
 * answered exactly once through http_reply() (even if the client went away: libevent frees a
 * detached request when it is answered), which is how draining knows it is done.
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
    int drain_timeout_seconds; /* how long SIGTERM waits for in-flight requests; default 30 */
} http_server_options;

/* Called for every request on the worker's thread. */
typedef void (*http_handler)(struct evhttp_request *req, struct event_base *base, void *arg);

typedef struct http_server http_server;

/* Binds and listens (so a bad --host/--port fails here, before start-up finishes). */
http_server *http_server_new(const http_server_options *opts, http_handler handler, void *arg,
                             char *why, size_t whylen);

/* Runs the workers until SIGTERM or SIGINT, then drains. Returns 0 on a clean stop. */
int http_server_run(http_server *srv);

void http_server_free(http_server *srv);

/* Sends the response and marks the request done. `body` is copied. */
void http_reply(struct evhttp_request *req, int status, const char *content_type,
                const char *body, size_t len);

/* Requests accepted and not yet answered, over all workers. */
long http_server_inflight(void);

#endif
