/*
 * ca/serve_ops.h: the production side of `fulcrum serve`: the Prometheus listener, the request
 * log, the audit log, rate limits, the connection cap and reload on SIGHUP. serve_cmd.c adds these
 * flags to its table and calls the three functions below.
 *
 * Flags and defaults (README.md, docs/operators-guide.md):
 *   --metrics-port N        Prometheus text format on --host:N at any path (default 2112,
 *                           Fulcio's; 0 = any free port; -1 = off). When the default port is
 *                           taken the server warns and runs without metrics; a port given
 *                           explicitly that cannot be bound fails start-up. Under socket
 *                           activation ($LISTEN_FDS) only an explicit --metrics-port is bound.
 *   --metrics-port-file P   write the metrics port there once listening (tests).
 *   --audit-log PATH        the audit log (ca/audit_log.h; default <state-dir>/audit.log;
 *                           "" = off, with a warning).
 *   --rate-limit-identity L per identity (issuer + SAN), e.g. 10/m (default off)
 *   --rate-limit-issuer L   per issuer, e.g. 1000/s (default off): ca/rate_limit.h; refused
 *                           requests get 429, code 8, Retry-After.
 *   --max-connections N     open API connections at most (default 0 = no limit; see
 *                           ca/conn_limit.h: further clients wait in the backlog).
 *   --group-commit-ms N     group-commit window under load of the audit log and the embedded
 *                           CT log (ca/audit_log.h, ct/log_writer.c; default 6, 0 = none);
 *                           it ends early when no signing request is on its way to them and
 *                           the cores are not busy (adaptive, ct_log_expect).
 */
#ifndef FULCRUM_CA_SERVE_OPS_H
#define FULCRUM_CA_SERVE_OPS_H

#include "ca/reload.h"
#include "ca/service.h"
#include "common/flags.h"

typedef struct serve_ops_flags {
    long metrics_port;
    const char *metrics_port_file;
    const char *audit_log; /* NULL = <state-dir>/audit.log */
    const char *rate_limit_identity;
    const char *rate_limit_issuer;
    long max_connections;
    long group_commit_ms;
} serve_ops_flags;

#define SERVE_OPS_FLAGS_INIT                                                                    \
    {                                                                                          \
        .metrics_port = 2112, .metrics_port_file = NULL, .audit_log = NULL,                    \
        .rate_limit_identity = "off", .rate_limit_issuer = "off", .max_connections = 0,        \
        .group_commit_ms = 6,                                                                  \
    }

/* The flag table entries (common/flags.h) of serve_ops_flags `o`. */
#define SERVE_OPS_FLAGS(o)                                                                      \
    {"metrics-port", NULL, FLAG_INT, &(o).metrics_port,                                        \
     "Prometheus metrics on --host at this port, any path; 0 = any free port, -1 = off "       \
     "(default 2112)", 0},                                                                     \
    {"metrics-port-file", NULL, FLAG_STRING, &(o).metrics_port_file,                           \
     "write the metrics port to this file once listening", 0},                                \
    {"audit-log", NULL, FLAG_STRING, &(o).audit_log,                                           \
     "append-only JSON-lines record of every certificate issued, synced before the answer "    \
     "(default <state-dir>/audit.log; \"\" = off)", 0},                                        \
    {"rate-limit-identity", NULL, FLAG_STRING, &(o).rate_limit_identity,                       \
     "certificates per identity (issuer + SAN): N/s, N/m or N/h, e.g. 10/m; over it: 429 "     \
     "with Retry-After (default off)", 0},                                                     \
    {"rate-limit-issuer", NULL, FLAG_STRING, &(o).rate_limit_issuer,                           \
     "certificates per OIDC issuer: N/s, N/m or N/h, e.g. 1000/s (default off)", 0},           \
    {"max-connections", NULL, FLAG_INT, &(o).max_connections,                                  \
     "open API connections at most; more clients wait until one closes (default 0 = no "       \
     "limit)", 0},                                                                             \
    {"group-commit-ms", NULL, FLAG_INT, &(o).group_commit_ms,                                  \
     "under load, the audit log and the embedded CT log gather what arrives within this many " \
     "ms into one fdatasync (an idle log syncs at once; with cores to spare the wait ends when " \
     "no signing request is on its way); 0 = sync whatever queued (default 6)",                \
     0}

/* Checks the values (logged; start-up should exit 2 on failure). Returns 0 or -1. */
int serve_ops_check(const serve_ops_flags *f);

typedef struct serve_ops serve_ops;

/* After the service (and CT) are set up, before the HTTP server is made: request log, audit log,
 * rate limits (set on svc), metrics listener on host, reload thread (reload may be NULL: no
 * reload). metrics_port_given: the flag was on the command line. NULL (logged) on failure. */
serve_ops *serve_ops_start(const serve_ops_flags *f, service *svc, const char *host,
                           const char *state_dir, int metrics_port_given,
                           const reload_source *reload);

/* After the HTTP server has drained, before it and the service are freed. NULL-safe. */
void serve_ops_stop(serve_ops *ops);

#endif
