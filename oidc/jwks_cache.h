/*
 * oidc/jwks_cache.h: per-issuer discovery + JWKS, fetched with libcurl off the event loops.
 *
 * Design: one fetch thread owns a curl multi handle and does every discovery and JWKS request;
 * workers never block on the network. A worker asks for an issuer's key set; if the set is cached
 * and holds the kid it gets it at once; otherwise a fetch is started (or joined, if one is already
 * under way for that issuer) and the worker's callback runs later on the worker's own event_base
 * (via event_active from the fetch thread; libevent is set up with evthread_use_pthreads()).
 *
 * Policy: sets are cached for `ttl_seconds`; an unknown kid triggers a refetch at most once per
 * `refetch_interval_seconds` per issuer; discovery's `issuer` must equal the configured URL;
 * plain http only for loopback hosts; response size capped; connect/total timeouts.
 *
 * Thread safety: all functions may be called from any thread.
 */
#ifndef FULCRUM_OIDC_JWKS_CACHE_H
#define FULCRUM_OIDC_JWKS_CACHE_H

#include <event2/event.h>
#include <stddef.h>

#include "config/config.h"
#include "oidc/jwk.h"

typedef struct jwks_cache jwks_cache;

typedef struct jwks_cache_options {
    int ttl_seconds;              /* default 600 */
    int refetch_interval_seconds; /* min gap between refetches for an unknown kid; default 5 */
    long connect_timeout_ms;      /* default 5000 */
    long total_timeout_ms;        /* default 10000 (Fulcio: 10 s discovery) */
    size_t max_response_bytes;    /* default 1 MiB */
} jwks_cache_options;

enum jwks_result {
    JWKS_READY = 0,   /* *out holds a referenced set containing kid */
    JWKS_PENDING = 1, /* a fetch is under way: cb(arg) will run on `base`; then call again */
    JWKS_FAILED = -1, /* why says: issuer unreachable / bad discovery / kid not published */
};

/* opts may be NULL for defaults. Starts the fetch thread. */
jwks_cache *jwks_cache_new(const jwks_cache_options *opts);

/* Starts fetching every exact (non-meta) issuer of cfg in the background; never blocks. */
void jwks_cache_prefetch(jwks_cache *c, const struct fulcrum_config *cfg);

/* Looks up the key set of `issuer_url` (the token's iss, already matched to a configured issuer)
 * containing `kid` (NULL/"" when the token has none). ca_cert_pem may be "" (system roots).
 * When cb is NULL a fetch is never started: the call returns READY or FAILED only.
 * The callback runs exactly once per PENDING answer, on base's thread. */
enum jwks_result jwks_cache_get(jwks_cache *c, const char *issuer_url, const char *ca_cert_pem,
                                const char *kid, struct event_base *base, void (*cb)(void *arg),
                                void *arg, oidc_jwk_set **out, char *why, size_t whylen);

/* Counters for tests and metrics. */
typedef struct jwks_cache_stats {
    unsigned long discovery_fetches;
    unsigned long jwks_fetches;
    unsigned long fetch_failures;
} jwks_cache_stats;
void jwks_cache_get_stats(jwks_cache *c, jwks_cache_stats *out);

/* Stops the fetch thread; pending callbacks are not run. */
void jwks_cache_free(jwks_cache *c);

#endif
