/*
 * ca/reload.h: reloading without a restart (SIGHUP).
 *
 * A reload reads the identity config again (issuers, claim policies) and, for --ca fileca, the CA
 * chain and key again (other CA kinds keep their signer), builds a new service snapshot (rendered
 * trust bundle, configuration and root answers) and publishes it (ca/service.h): requests that
 * start afterwards use it, requests under way finish with the old one, no connection is touched.
 * Anything wrong refuses the whole reload, logged at error with the reason, and the old snapshot
 * keeps serving: a config or CA that does not load, or (with the embedded CT log, whose accepted
 * root is fixed when it opens) a CA chain ending in another root. The new config's issuers are
 * prefetched by the JWKS cache (issuers removed from the config stay cached).
 *
 * SIGHUP is taken by a thread of its own with sigwait(): reload_block_signals() must run in the
 * main thread before any other thread starts, so that every thread inherits the blocked mask.
 *
 * Metrics: fulcrum_config_reloads_total{result="success|failure"},
 * fulcrum_config_generation (1 at start, +1 per successful reload),
 * fulcrum_config_last_reload_success_timestamp_seconds.
 */
#ifndef FULCRUM_CA_RELOAD_H
#define FULCRUM_CA_RELOAD_H

#include <stddef.h>

#include "ca/service.h"

typedef struct reload_source {
    /* A freshly loaded identity config, or NULL with why. */
    fulcrum_config *(*load_config)(void *arg, char *why, size_t whylen);
    /* A freshly loaded signer; or NULL with *keep = 1 to keep the current one; or NULL with
     * *keep = 0 and why on failure. */
    signer *(*load_signer)(void *arg, int *keep, char *why, size_t whylen);
    void *arg;
} reload_source;

/* Blocks SIGHUP in the calling thread (and the threads it starts later). */
void reload_block_signals(void);

/* One reload now (what SIGHUP does). Returns 0, or -1 with why (the old snapshot stays). */
int reload_apply(service *svc, const reload_source *src, char *why, size_t whylen);

typedef struct reloader reloader;

/* Starts the thread that runs reload_apply at every SIGHUP. src is copied. */
reloader *reloader_start(service *svc, const reload_source *src, char *why, size_t whylen);

/* Stops and joins the thread. NULL-safe. */
void reloader_stop(reloader *r);

#endif
