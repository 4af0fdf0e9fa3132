/*
 * ca/rate_limit.h: token buckets per key (--rate-limit-identity, --rate-limit-issuer).
 *
 * A limit "N/unit" (unit s, m or h) is a bucket of N tokens refilled continuously at N per unit:
 * a key may take N at once, then one every unit/N. Each key (an identity: issuer + SAN; or an
 * issuer URL) has its own bucket, created full at first use. A refused take says how long until
 * the next token: the 429 answer's Retry-After, in whole seconds (at least 1).
 *
 * Memory is bounded: at most max_keys buckets. When a shard is full, buckets that have refilled
 * completely are dropped first (forgetting them changes nothing); if none has, the least recently
 * used bucket is dropped, and its key starts again with a full bucket (leniency under a flood of
 * distinct keys, never a wrong refusal).
 *
 * Thread safety: rate_limiter_take may be called from any thread (sharded locks).
 */
#ifndef FULCRUM_CA_RATE_LIMIT_H
#define FULCRUM_CA_RATE_LIMIT_H

#include <stddef.h>

typedef struct rate_limit_spec {
    double per_second; /* refill rate; 0 = no limit */
    double burst;      /* bucket size */
    char text[32];     /* as given, normalised: "10/m", or "off" */
} rate_limit_spec;

/* Parses "N/s", "N/m", "N/h" (N a whole number, 1..1000000000; also "N/second", "/minute",
 * "/hour"), or "off" / "0" / "" (no limit). Returns 0 or -1 with why. */
int rate_limit_parse(const char *text, rate_limit_spec *out, char *why, size_t whylen);

typedef struct rate_limiter rate_limiter;

/* NULL when spec has no limit (every take is then allowed by rate_limiter_take(NULL, ...)).
 * max_keys 0 = 100000. */
rate_limiter *rate_limiter_new(const rate_limit_spec *spec, size_t max_keys);
void rate_limiter_free(rate_limiter *rl);

/* Takes one token of `key` at time `now` (seconds, monotonic). Returns 1 when allowed, 0 when
 * refused with *retry_after = whole seconds until a token is available (>= 1). rl NULL: 1. */
int rate_limiter_take(rate_limiter *rl, const char *key, double now, long *retry_after);

/* Buckets currently held (tests). */
size_t rate_limiter_size(rate_limiter *rl);

#endif
