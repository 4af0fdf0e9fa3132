/*
 * tests/integration/harness_load.h: steady load for the load and fault tests (test_slowloris,
 * test_junk, test_load_faults): client threads that POST request bodies back to back over
 * keep-alive connections until stopped, recording every answer's status and latency, read out
 * in windows (the requests finished since the previous window).
 *
 * Thread safety: hload_* may be called from the test's main thread while the clients run; the
 * clients use libcurl easy handles of their own (curl_global_init was done by h_init()).
 */
#ifndef FULCRUM_TESTS_INTEGRATION_HARNESS_LOAD_H
#define FULCRUM_TESTS_INTEGRATION_HARNESS_LOAD_H

#include <stddef.h>

/* Raises this process's RLIMIT_NOFILE soft limit to `want` (at most the hard limit); children
 * started later inherit it. Returns the soft limit now in force. */
long hload_raise_nofile(long want);

typedef struct hload_opts {
    const char *url;            /* POSTed to, with Content-Type: application/json */
    const char *const *bodies;  /* client i sends bodies[i % nbodies] */
    int nbodies;
    int threads;
    int keep_bodies;            /* keep every answer's body (hload_window's `answers`) */
} hload_opts;

/* One answer kept by keep_bodies. */
typedef struct hload_answer {
    long status; /* 0 = transport failure */
    char *body;  /* malloc'd, NUL-terminated */
} hload_answer;

typedef struct hload_window {
    long requests;        /* finished in the window */
    long ok;              /* 200 */
    long transport;       /* no HTTP answer */
    long by_class[6];     /* [2] = 2xx ... [5] = 5xx */
    double p50_ms, p99_ms, max_ms;
    hload_answer *answers; /* keep_bodies: every answer of the window, in completion order */
    size_t nanswers;
} hload_window;

typedef struct hload hload;

/* Starts the clients. NULL with a message on failure. */
hload *hload_start(const hload_opts *opts);

/* The requests finished since the last call (or the start); the caller frees the window with
 * hload_window_free. */
void hload_take(hload *l, hload_window *w);

/* Stops the clients (each finishes its request in flight) and frees l; *last (may be NULL)
 * receives the requests finished since the last hload_take. */
void hload_stop(hload *l, hload_window *last);

void hload_window_free(hload_window *w);

/* p (0..1) quantile of n latencies (sorts them in place); 0 when n == 0. */
double hload_quantile(double *ms, size_t n, double p);

/* Monotonic milliseconds. */
double hload_now_ms(void);

#endif
