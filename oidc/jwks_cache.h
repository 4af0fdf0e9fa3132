/*
 * oidc/jwks_cache.h: per-issuer discovery + JWKS, fetched with libcurl off the event loops.
 *
 * Design: one fetch thread owns a curl multi handle and does every discovery and JWKS request;
 * workers never block on the network. A worker asks for an issuer's key set; if the set is cached
 * and holds the kid it gets it at once; otherwise a fetch is started (or joined, if one is already
 * under way for that issuer) and the worker's callback runs later on the worker's own event_base
 * (via event_active from the fetch thread; libevent is set up with evthread_use_pthreads()).
 *
 * Policy: sets are fresh for `ttl_seconds`; after that a request still gets the cached set at once
 * and a refresh starts in the background (stale-while-revalidate). When refreshes fail the cached
 * set keeps serving until it is `max_stale_seconds` old (counted from the last successful fetch);
 * after that, or when no set was ever fetched, the answer is JWKS_UNAVAILABLE naming the issuer
 * and the cause. A failed fetch is retried by the fetch thread itself with exponential backoff
 * (retry_min_ms, doubling, capped at retry_max_ms) while the issuer is configured (prefetched), or
 * had keys once and was asked for recently; requests never start fetches during a backoff or
 * while a background retry is due (an issuer that never answered and is not configured is
 * fetched again by the first request after its backoff). An unknown
 * kid triggers a refetch at most once per `refetch_interval_seconds` per issuer. Discovery's
 * `issuer` must equal the configured URL; plain http only for loopback hosts; redirects only to
 * the same host; response size capped; connect/total timeouts; at most `max_issuers` issuers are
 * remembered (least recently used, idle, non-configured ones are forgotten first).
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
    int max_stale_seconds;        /* cached keys serve while refreshes fail, up to this age since
                                   * their fetch; default 86400; raised to ttl_seconds if lower */
    long retry_min_ms;            /* first retry delay after a failed fetch; default 1000 */
    long retry_max_ms;            /* retry delay cap; default 60000 */
    size_t max_issuers;           /* issuers remembered at once; default 1000 */
} jwks_cache_options;

enum jwks_result {
    JWKS_READY = 0,   /* *out holds a referenced set containing kid */
    JWKS_PENDING = 1, /* a fetch is under way: cb(arg) will run on `base`; then call again */
    JWKS_FAILED = -1, /* the client's fault: the issuer's current keys have no such kid (or the
                       * token has no kid and the issuer publishes several keys) */
    JWKS_UNAVAILABLE = -2, /* the server's side: no usable keys (issuer unreachable, bad
                            * discovery/JWKS, TLS failure, refused redirect, oversize answer,
                            * cached keys past max-stale, URL refused by policy). why is the
                            * whole message: "could not fetch the keys of issuer <url>: <cause>" */
};

/* opts may be NULL for defaults. Starts the fetch thread. */
jwks_cache *jwks_cache_new(const jwks_cache_options *opts);

/* Starts fetching every exact (non-meta) issuer of cfg in the background; never blocks. These
 * issuers are never forgotten and are retried in the background until their keys arrive. */
void jwks_cache_prefetch(jwks_cache *c, const struct fulcrum_config *cfg);

/* Looks up the key set of `issuer_url` (the token's iss, already matched to a configured issuer)
 * containing `kid` (NULL/"" when the token has none). ca_cert_pem may be "" (system roots).
 * When cb is NULL a fetch is never started: the call returns READY, FAILED or UNAVAILABLE.
 * The callback runs exactly once per PENDING answer, on base's thread. */
enum jwks_result jwks_cache_get(jwks_cache *c, const char *issuer_url, const char *ca_cert_pem,
                                const char *kid, struct event_base *base, void (*cb)(void *arg),
                                void *arg, oidc_jwk_set **out, char *why, size_t whylen);

/* Counters for tests and metrics. */
typedef struct jwks_cache_stats {
    unsigned long discovery_fetches;
    unsigned long jwks_fetches;
    unsigned long fetch_failures;
    unsigned long retries;   /* fetches started by the backoff timer */
    unsigned long evictions; /* issuers forgotten to stay within max_issuers */
} jwks_cache_stats;
void jwks_cache_get_stats(jwks_cache *c, jwks_cache_stats *out);

/* The delay before the retry that follows the n-th consecutive failed fetch (n >= 1):
 * min(retry_min_ms * 2^(n-1), retry_max_ms). opts may be NULL for defaults. */
long jwks_cache_retry_delay_ms(const jwks_cache_options *opts, unsigned n);

/* Stops the fetch thread; pending callbacks are not run. */
void jwks_cache_free(jwks_cache *c);

#endif
