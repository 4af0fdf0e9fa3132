/*
 * ca/metrics_http.h: the Prometheus listener of `fulcrum serve` (--metrics-port, default 2112,
 * Fulcio's; on --host). Like Fulcio's metrics server it answers every GET path with the text
 * exposition of a registry (Content-Type text/plain; version=0.0.4; charset=utf-8), on its own
 * thread and event loop, apart from the API's workers. Other methods get 405.
 */
#ifndef FULCRUM_CA_METRICS_HTTP_H
#define FULCRUM_CA_METRICS_HTTP_H

#include <stddef.h>

#include "common/metrics.h"

typedef struct metrics_server metrics_server;

/* Binds host:port (port 0 = any free port) and starts serving r. port_file (may be NULL)
 * receives the bound port once listening. NULL with why on failure. */
metrics_server *metrics_server_start(const char *host, int port, const char *port_file,
                                     metrics_registry *r, char *why, size_t whylen);

/* The bound port. */
int metrics_server_port(const metrics_server *m);

/* Stops the thread and closes the listener. NULL-safe. */
void metrics_server_stop(metrics_server *m);

#endif
