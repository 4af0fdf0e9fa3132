/*
 * ca/request_log.h: what the API knows about each request while it runs, and what is written
 * when it is answered: one JSON line on stderr (common/log.h) and the request metrics.
 *
 * request_log_begin (api_handle, first thing) records the start time, the route and the request
 * id: the client's X-Request-ID when it is 1..128 printable ASCII characters without quotes or
 * backslashes (as Fulcio's request-id middleware honours it), else a new one
 * ("<8 hex, random per process>-<16 hex counter>"); the id is echoed in the response's
 * X-Request-ID header. Handlers add the token's issuer and, when they refuse, the reason.
 * request_log_end (called by http_reply through the server's reply observer, just before the
 * response is sent) writes
 *   {"ts":...,"level":"info","component":"request","msg":"<METHOD> <route> <status>",
 *    "request_id":"...","method":"POST","route":"/api/v2/signingCert","status":200,
 *    "latency_ms":12.345,"peer":"127.0.0.1:40000","issuer":"..."?,"reason":"..."?,
 *    "path":"..."? (unmatched routes only, at most 200 bytes)}
 * and updates fulcio_api_latency{code,method}, http_requests_total{code,method} (method in
 * lower case, as Go's promhttp) and, for a status >= 400,
 * fulcrum_requests_refused_total{reason} (the reason set by the handler, else "http_<status>").
 *
 * The per-request state lives in a table of the worker thread (begin, the handlers and end all
 * run on the thread that accepted the connection: ca/http_server.h). A request answered without
 * begin (evhttp's own errors) is neither logged nor counted.
 *
 * Refusal reasons used by the API (fulcrum_requests_refused_total's label values):
 *   invalid_request, identity_token, claim_policy, csr_unparseable, key_unparseable,
 *   key_insecure, signature_invalid, validation, rate_limited_identity, rate_limited_issuer,
 *   jwks_unavailable, ca_backend, ct_log, marshal, audit_log, not_found, method_not_allowed,
 *   internal.
 */
#ifndef FULCRUM_CA_REQUEST_LOG_H
#define FULCRUM_CA_REQUEST_LOG_H

#include <event2/http.h>

/* Registers the request metrics (and fulcio_build_info) on metrics_default(). Idempotent. */
void request_log_init(void);

/* route: a static string (the matched route, or NULL for an unmatched path). */
void request_log_begin(struct evhttp_request *req, const char *route);

/* The request's id ("" when the request was not begun). */
const char *request_log_id(struct evhttp_request *req);

/* The token's issuer (copied; at most 300 bytes kept). */
void request_log_set_issuer(struct evhttp_request *req, const char *issuer);

/* Why the request is refused (a static string from the list above). The first one set stays. */
void request_log_set_reason(struct evhttp_request *req, const char *reason);

/* Logs the line, updates the metrics and forgets the request. */
void request_log_end(struct evhttp_request *req, int status);

#endif
