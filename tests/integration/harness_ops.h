/*
 * tests/integration/harness_ops.h: helpers of the operations tests (metrics, audit log, reload,
 * limits): scraping and reading Prometheus samples, signing bodies, certificates' serials,
 * waiting for log lines, audit log records, and issuing from several threads at once.
 *
 * Everything but hops_parallel_post is single-threaded like harness.h.
 */
#ifndef FULCRUM_TESTS_INTEGRATION_HARNESS_OPS_H
#define FULCRUM_TESTS_INTEGRATION_HARNESS_OPS_H

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "integration/harness.h"

/* GET http://127.0.0.1:<port>/metrics: the body (malloc'd) or NULL. *content_type (may be NULL)
 * receives the Content-Type (malloc'd). */
char *hops_scrape(int port, char **content_type);

/* The value of the sample `series` (the exact text before the space, e.g.
 * `fulcio_new_certs` or `http_requests_total{code="200",method="post"}`), or -1 when absent. */
double hops_sample(const char *text, const char *series);

/* Scrapes and returns one sample (-1 when absent or the scrape fails). */
double hops_metric(int port, const char *series);

/* The port in a port file, waiting up to timeout_ms for it; -1 on timeout. */
int hops_port_file(const char *path, int timeout_ms);

/* A v2 signing body for `token` with a proof of possession by `key` over `challenge`
 * (malloc'd). */
char *hops_v2_body(const char *token, EVP_PKEY *key, const char *challenge);

/* The leaf of a 200 v2 answer (detached or embedded SCT form), or NULL. */
X509 *hops_v2_leaf(const char *body);

/* Lower-case hex of a certificate's serial number (malloc'd), as the audit log writes it. */
char *hops_serial_hex(X509 *cert);

/* Waits until the process's stderr holds `needle` at least `count` times; 1 when it did. */
int hops_wait_log(const h_proc *p, const char *needle, int count, int timeout_ms);

/* How often `needle` occurs in the process's stderr so far. */
int hops_log_count(const h_proc *p, const char *needle);

/* The audit log's records (one JSON object per line; a line that is not JSON makes it NULL). */
json_t *hops_audit_records(const char *path);

/* One POST of a parallel run. */
typedef struct hops_call {
    const char *body;  /* in */
    long status;       /* out: 0 = transport failure */
    char *response;    /* out (malloc'd) */
} hops_call;

/* POSTs every calls[i].body to url from `threads` threads (own libcurl handles, keep-alive).
 * Returns when all are done. */
void hops_parallel_post(const char *url, hops_call *calls, int n, int threads);

void hops_calls_free(hops_call *calls, int n);

#endif
