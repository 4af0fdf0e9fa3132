#include "ca/serve_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/audit_log.h"
#include "ca/http_server.h"
#include "ca/metrics_http.h"
#include "ca/rate_limit.h"
#include "ca/request_log.h"
#include "common/allocator.h"
#include "common/log.h"
#include "common/metrics.h"

struct serve_ops {
    service *svc;
    audit_log *audit;
    rate_limiter *rl_identity, *rl_issuer;
    metrics_server *metrics;
    reloader *reload;
};

int serve_ops_check(const serve_ops_flags *f)
{
    char why[256];
    rate_limit_spec s;
    if (f->metrics_port < -1 || f->metrics_port > 65535) {
        log_error("serve", "--metrics-port %ld: need 0..65535, or -1 for no metrics listener",
                  f->metrics_port);
        return -1;
    }
    if (f->max_connections < 0 || f->max_connections > 1000000) {
        log_error("serve", "--max-connections %ld: need 0 (no limit) .. 1000000",
                  f->max_connections);
        return -1;
    }
    if (f->group_commit_ms < 0 || f->group_commit_ms > 100) {
        log_error("serve", "--group-commit-ms %ld: need 0 (none) .. 100", f->group_commit_ms);
        return -1;
    }
    if (rate_limit_parse(f->rate_limit_identity, &s, why, sizeof why) != 0) {
        log_error("serve", "--rate-limit-identity: %s", why);
        return -1;
    }
    if (rate_limit_parse(f->rate_limit_issuer, &s, why, sizeof why) != 0) {
        log_error("serve", "--rate-limit-issuer: %s", why);
        return -1;
    }
    return 0;
}

/* ---- the audit records carried by the embedded CT log (ct/ct_log.h) ---- */

static void audit_sink(void *arg, const ct_audit_line *lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (audit_log_append_logged(arg, lines[i].line, lines[i].len, lines[i].idx) != 0)
            log_error("audit", "cannot queue the audit record of CT entry %llu: it stays in the "
                               "CT log and reaches the audit log at the next start",
                      (unsigned long long)lines[i].idx);
}

static uint64_t audit_synced(void *arg) { return audit_log_logged_synced(arg); }

struct restoring {
    audit_restore *r;
    int failed;
};

static int restore_row(void *arg, uint64_t idx, const char *line, size_t len)
{
    struct restoring *st = arg;
    if (audit_log_restore_line(st->r, line, len, idx) < 0) {
        st->failed = 1;
        return 1;
    }
    return 0;
}

/* With the embedded CT log, each certificate's record is stored in its CT entry's transaction
 * and written to the file after it (within 100 ms): records that a stop kept from the
 * file are restored first, then the log hands over each commit's records. */
static int attach_ct(serve_ops *ops, const char *path)
{
    char why[768] = "", end_why[768] = "";
    struct restoring st = {audit_log_restore_begin(ops->audit, why, sizeof why), 0};
    if (!st.r) {
        log_error("audit", "%s", why);
        return -1;
    }
    int rc = ct_log_audit_pending(ops->svc->ctlog, restore_row, &st);
    long n = audit_log_restore_end(st.r, end_why, sizeof end_why);
    if (rc != 0 || st.failed || n < 0) {
        log_error("audit", "%s: cannot %s the records the CT log holds for it%s%s", path,
                  rc != 0 ? "read" : st.failed ? "write" : "sync", n < 0 ? ": " : "",
                  n < 0 ? end_why : "");
        return -1;
    }
    if (n > 0)
        log_warn("audit", "audit log %s: %ld record%s kept in the CT log (from a stop before the "
                          "file was synced) written now",
                 path, n, n == 1 ? "" : "s");
    ct_log_set_audit_sink(ops->svc->ctlog, audit_sink, audit_synced, ops->audit);
    ops->svc->audit_in_ct = 1;
    log_info("audit", "audit log: %s (one JSON line per certificate, made durable with its CT "
                      "log entry before the answer, then written to the file with the others of 100 ms at most)",
             path);
    return 0;
}

static int open_audit(serve_ops *ops, const serve_ops_flags *f, const char *state_dir)
{
    char path[4200], why[768];
    if (f->audit_log && !*f->audit_log) {
        log_warn("audit", "WARNING: the audit log is OFF (--audit-log \"\"): issued certificates "
                          "are recorded nowhere but the CT log");
        return 0;
    }
    if (f->audit_log)
        snprintf(path, sizeof path, "%s", f->audit_log);
    else
        snprintf(path, sizeof path, "%s/audit.log",
                 state_dir && *state_dir ? state_dir : "./fulcrum-state");
    ops->audit = audit_log_open(path, why, sizeof why);
    if (!ops->audit) {
        log_error("audit", "%s", why);
        return -1;
    }
    audit_log_set_window(ops->audit, (int)f->group_commit_ms);
    ops->svc->audit = ops->audit;
    if (ops->svc->ctlog)
        return attach_ct(ops, path);
    log_info("audit", "audit log: %s (one JSON line per certificate, synced before the answer)",
             path);
    return 0;
}

static void set_rate_limits(serve_ops *ops, const serve_ops_flags *f)
{
    char why[256];
    rate_limit_spec id, iss;
    rate_limit_parse(f->rate_limit_identity, &id, why, sizeof why); /* checked before */
    rate_limit_parse(f->rate_limit_issuer, &iss, why, sizeof why);
    ops->rl_identity = rate_limiter_new(&id, 0);
    ops->rl_issuer = rate_limiter_new(&iss, 0);
    service *svc = ops->svc;
    svc->rl_identity = ops->rl_identity;
    svc->rl_issuer = ops->rl_issuer;
    snprintf(svc->rl_identity_text, sizeof svc->rl_identity_text, "%s", id.text);
    snprintf(svc->rl_issuer_text, sizeof svc->rl_issuer_text, "%s", iss.text);
    if (ops->rl_identity || ops->rl_issuer)
        log_info("serve", "rate limits: %s per identity, %s per issuer (429 with Retry-After "
                          "beyond)",
                 id.text, iss.text);
}

serve_ops *serve_ops_start(const serve_ops_flags *f, service *svc, const char *host,
                           const char *state_dir, int metrics_port_given,
                           const reload_source *reload)
{
    serve_ops *ops = calloc(1, sizeof *ops);
    if (!ops) {
        log_error("serve", "out of memory");
        return NULL;
    }
    ops->svc = svc;
    char alloc[128];
    log_info("serve", "memory allocator: %s", allocator_describe(alloc, sizeof alloc));
    request_log_init();
    http_set_reply_observer(request_log_end);
    set_rate_limits(ops, f);
    if (open_audit(ops, f, state_dir) != 0) {
        serve_ops_stop(ops);
        return NULL;
    }
    char why[768];
    /* Under socket activation the service manager owns the listening sockets and the unit says
     * the service binds nothing itself: the default port is then not bound, an explicit
     * --metrics-port is. */
    int activated = http_listen_fds(NULL, 0) > 0;
    if (f->metrics_port >= 0 && activated && !metrics_port_given) {
        log_info("metrics", "no metrics listener: the API socket comes from the service manager "
                            "(socket activation), and --metrics-port was not given");
    } else if (f->metrics_port >= 0) {
        ops->metrics = metrics_server_start(host, (int)f->metrics_port, f->metrics_port_file,
                                            metrics_default(), why, sizeof why);
        if (!ops->metrics && metrics_port_given) {
            log_error("metrics", "%s", why);
            serve_ops_stop(ops);
            return NULL;
        }
        if (!ops->metrics)
            log_warn("metrics", "%s; running WITHOUT a metrics listener (give --metrics-port to "
                                "choose a port, -1 for none)",
                     why);
    }
    if (reload) {
        ops->reload = reloader_start(svc, reload, why, sizeof why);
        if (!ops->reload) {
            log_error("reload", "%s", why);
            serve_ops_stop(ops);
            return NULL;
        }
    }
    return ops;
}

void serve_ops_stop(serve_ops *ops)
{
    if (!ops)
        return;
    reloader_stop(ops->reload);
    metrics_server_stop(ops->metrics);
    if (ops->svc && ops->svc->audit_in_ct) {
        /* Records committed from now on wait in the CT log for the next start. */
        ct_log_set_audit_sink(ops->svc->ctlog, NULL, NULL, NULL);
        ops->svc->audit_in_ct = 0;
    }
    if (ops->svc) {
        ops->svc->audit = NULL;
        ops->svc->rl_identity = NULL;
        ops->svc->rl_issuer = NULL;
    }
    audit_log_close(ops->audit);
    rate_limiter_free(ops->rl_identity);
    rate_limiter_free(ops->rl_issuer);
    free(ops);
}
