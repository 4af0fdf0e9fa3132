/*
 * ca/conn_limit.h: counts the API listener's open connections and caps them (--max-connections).
 *
 * Semantics (Go's netutil.LimitListener, nginx's worker_connections): while `max` connections
 * are open, the workers stop accepting; further clients wait in the kernel's listen backlog (their
 * connect succeeds, their request is read once a connection closes) instead of being refused. No
 * open connection is ever dropped to make room. Should several workers accept at the same instant
 * past the limit, the surplus connections are closed at once, unanswered (counted in
 * fulcrum_http_connections_over_limit_total), so no more than `max` are ever served.
 *
 * How (libevent 2.1 has no connection-count API): each worker's evhttp creates connections
 * through an evhttp_set_bevcb callback, which counts the connection and queues it; a top-priority
 * event (the worker's base gets 2 priorities; everything else keeps the default, 1) then runs
 * before any I/O of the new connection and attaches a close callback to its evhttp_connection
 * (found as the bufferevent's callback argument), which counts the close. Listeners are paused
 * and resumed on their own worker's thread.
 *
 * Balance: a worker holding more than one connection above the least loaded other worker stops
 * accepting until that is no longer so (libevent's accept loop would otherwise let whichever
 * worker woke first take every pending connection, and a client that opens its connections at
 * once, a load balancer or a benchmark, would load one core). The least loaded worker always
 * accepts.
 *
 * Metrics: fulcrum_http_connections_open (gauge), fulcrum_http_worker_connections{worker}
 * (gauge), fulcrum_http_connections_max (gauge, 0 = no
 * limit), fulcrum_http_connections_limit_reached_total (times accepting paused),
 * fulcrum_http_connections_over_limit_total.
 *
 * Threading: conn_limit_new/free on the main thread; the worker functions on their worker's
 * thread except conn_limit_worker_new (before the worker runs) and conn_limit_worker_free (after
 * its evhttp was freed).
 */
#ifndef FULCRUM_CA_CONN_LIMIT_H
#define FULCRUM_CA_CONN_LIMIT_H

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

typedef struct conn_limit conn_limit;
typedef struct conn_limit_worker conn_limit_worker;

/* max <= 0: no limit (connections are still counted). */
conn_limit *conn_limit_new(int max);

/* After conn_limit_shutdown no listener is paused or resumed any more (the server is stopping). */
void conn_limit_shutdown(conn_limit *cl);
void conn_limit_free(conn_limit *cl);

/* Connections open now, over all workers. */
long conn_limit_open(const conn_limit *cl);

/* For one worker, right after its event_base and evhttp were made and before any event is added
 * to the base (it calls event_base_priority_init(base, 2) and evhttp_set_bevcb). NULL on
 * failure. */
conn_limit_worker *conn_limit_worker_new(conn_limit *cl, struct event_base *base,
                                         struct evhttp *http);

/* A listening socket of this worker (evhttp_bound_socket_get_listener). */
int conn_limit_worker_add_listener(conn_limit_worker *w, struct evconnlistener *l);

/* On the worker's thread, before its listeners are removed: forget them. */
void conn_limit_worker_forget_listeners(conn_limit_worker *w);

/* Optional observer of this worker's connections (ca/http_server.c's read deadlines), called on
 * the worker's thread: `opened` once for each connection evhttp set up, before any of its I/O
 * (right after its close callback is attached), `closed` when it closes (from evhttp's close
 * callback, before the connection is freed); every `opened` is followed by one `closed`. Set it
 * before the worker runs. */
typedef void (*conn_limit_conn_fn)(struct evhttp_connection *evcon, void *arg);
void conn_limit_worker_set_observer(conn_limit_worker *w, conn_limit_conn_fn opened,
                                    conn_limit_conn_fn closed, void *arg);

/* After the worker's evhttp was freed (its connections' close callbacks have run) and before
 * its event_base is freed. */
void conn_limit_worker_free(conn_limit_worker *w);

#endif
