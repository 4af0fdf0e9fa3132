#include "ca/reload.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/metrics.h"

struct reloader {
    service *svc;
    reload_source src;
    pthread_t thread;
    _Atomic int stopping;
};

void reload_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void count(int ok, unsigned long generation)
{
    static const char *const labels[] = {"result", NULL};
    metric_family *reloads = metrics_counter(
        "fulcrum_config_reloads_total", "Reloads (SIGHUP) by result", labels);
    metric_inc(metric_get1(reloads, ok ? "success" : "failure"));
    metric_get1(reloads, ok ? "failure" : "success"); /* both series shown */
    if (!ok)
        return;
    metric_set(metric_get0(metrics_gauge("fulcrum_config_generation",
                                         "Configuration generation: 1 at start, +1 per reload",
                                         NULL)),
               (double)generation);
    metric_set(metric_get0(metrics_gauge("fulcrum_config_last_reload_success_timestamp_seconds",
                                         "When the configuration was last reloaded", NULL)),
               (double)time(NULL));
}

/* The series at 0 and the generation, before any reload. */
static void init_metrics(service *svc)
{
    static const char *const labels[] = {"result", NULL};
    metric_family *reloads = metrics_counter(
        "fulcrum_config_reloads_total", "Reloads (SIGHUP) by result", labels);
    metric_get1(reloads, "success");
    metric_get1(reloads, "failure");
    service_snapshot *s = service_acquire(svc);
    metric_set(metric_get0(metrics_gauge("fulcrum_config_generation",
                                         "Configuration generation: 1 at start, +1 per reload",
                                         NULL)),
               (double)s->generation);
    service_snapshot_release(s);
}

/* The last certificate of the chain (the root). */
static X509 *chain_root(const signer *s)
{
    int n = sk_X509_num(s->chain);
    return n > 0 ? sk_X509_value(s->chain, n - 1) : NULL;
}

static void subject_of(X509 *cert, char *out, size_t outlen)
{
    out[0] = '\0';
    if (cert)
        X509_NAME_oneline(X509_get_subject_name(cert), out, (int)outlen);
}

int reload_apply(service *svc, const reload_source *src, char *why, size_t whylen)
{
    char r[768] = "";
    service_snapshot *cur = service_acquire(svc);
    fulcrum_config *cfg = src->load_config(src->arg, r, sizeof r);
    if (!cfg) {
        snprintf(why, whylen, "the identity config does not load: %s", r);
        goto refuse;
    }
    int keep = 0;
    r[0] = '\0';
    signer *sgn = src->load_signer ? src->load_signer(src->arg, &keep, r, sizeof r) : NULL;
    if (!src->load_signer)
        keep = 1;
    if (!sgn && !keep) {
        config_free(cfg);
        snprintf(why, whylen, "the CA does not load: %s", r);
        goto refuse;
    }
    if (sgn && svc->ctlog && X509_cmp(chain_root(sgn), chain_root(cur->signer)) != 0) {
        char have[256], got[256];
        subject_of(chain_root(cur->signer), have, sizeof have);
        subject_of(chain_root(sgn), got, sizeof got);
        snprintf(why, whylen, "the new CA chain ends in root %s, but the embedded CT log accepts "
                              "only %s (its roots are fixed when it opens): restart to change the "
                              "root",
                 got, have);
        config_free(cfg);
        signer_free(sgn);
        goto refuse;
    }
    service_snapshot *next = service_snapshot_new(cfg, sgn, keep ? cur : NULL, r, sizeof r);
    if (!next) {
        snprintf(why, whylen, "%s", r);
        goto refuse;
    }
    int ca_reloaded = sgn != NULL;
    service_publish(svc, next);
    jwks_cache_prefetch(svc->jwks, next->cfg);
    char issuing[256];
    subject_of(signer_issuing_cert(next->signer), issuing, sizeof issuing);
    log_info("reload", "reloaded (generation %lu): %zu issuers, %zu meta-issuers; CA %s %s "
                       "(issuing certificate %s)",
             next->generation, next->cfg->n_issuers, next->cfg->n_meta,
             next->signer->kind ? next->signer->kind : "?",
             ca_reloaded ? "re-read" : "kept", issuing);
    count(1, next->generation);
    service_snapshot_release(cur);
    return 0;
refuse:
    log_error("reload", "reload refused, still serving generation %lu: %s", cur->generation,
              why);
    count(0, 0);
    service_snapshot_release(cur);
    return -1;
}

static void *reloader_main(void *arg)
{
    pthread_setname_np(pthread_self(), "config-reload");
    reloader *rl = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (atomic_load(&rl->stopping))
            break;
        log_info("reload", "SIGHUP: reloading the identity config%s",
                 rl->src.load_signer ? " and the CA" : "");
        char why[1024];
        reload_apply(rl->svc, &rl->src, why, sizeof why);
    }
    return NULL;
}

reloader *reloader_start(service *svc, const reload_source *src, char *why, size_t whylen)
{
    reloader *rl = calloc(1, sizeof *rl);
    if (!rl) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    rl->svc = svc;
    rl->src = *src;
    init_metrics(svc);
    if (pthread_create(&rl->thread, NULL, reloader_main, rl) != 0) {
        snprintf(why, whylen, "cannot start the reload thread");
        free(rl);
        return NULL;
    }
    return rl;
}

void reloader_stop(reloader *r)
{
    if (!r)
        return;
    atomic_store(&r->stopping, 1);
    pthread_kill(r->thread, SIGHUP);
    pthread_join(r->thread, NULL);
    free(r);
}
