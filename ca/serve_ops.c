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
