#include "ca/rate_limit.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64

struct bucket {
    struct bucket *next;
    uint64_t hash;
    double tokens;
    double last; /* when tokens was computed */
    char key[];
};

struct shard {
    pthread_mutex_t mu;
    struct bucket **table;
    size_t nslots, count, max;
};

struct rate_limiter {
    rate_limit_spec spec;
    struct shard shards[SHARDS];
};

int rate_limit_parse(const char *text, rate_limit_spec *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    if (!text || !*text || strcmp(text, "off") == 0 || strcmp(text, "0") == 0) {
        snprintf(out->text, sizeof out->text, "off");
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (errno || end == text || *end != '/' || n < 1 || n > 1000000000LL) {
        snprintf(why, whylen, "rate limit \"%.40s\": use N/s, N/m or N/h with N a whole number "
                              "from 1 to 1000000000, or off",
                 text);
        return -1;
    }
    const char *unit = end + 1;
    double seconds;
    char u;
    if (strcmp(unit, "s") == 0 || strcmp(unit, "second") == 0) {
        seconds = 1;
        u = 's';
    } else if (strcmp(unit, "m") == 0 || strcmp(unit, "minute") == 0) {
        seconds = 60;
        u = 'm';
    } else if (strcmp(unit, "h") == 0 || strcmp(unit, "hour") == 0) {
        seconds = 3600;
        u = 'h';
    } else {
        snprintf(why, whylen, "rate limit \"%.40s\": the unit must be s, m or h", text);
        return -1;
    }
    out->burst = (double)n;
    out->per_second = (double)n / seconds;
    snprintf(out->text, sizeof out->text, "%lld/%c", n, u);
    return 0;
}

rate_limiter *rate_limiter_new(const rate_limit_spec *spec, size_t max_keys)
{
    if (!spec || spec->per_second <= 0 || spec->burst < 1)
        return NULL;
    rate_limiter *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    rl->spec = *spec;
    if (!max_keys)
        max_keys = 100000;
    size_t per = max_keys / SHARDS ? max_keys / SHARDS : 1;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &rl->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->max = per;
        s->nslots = 64;
        s->table = calloc(s->nslots, sizeof *s->table);
        if (!s->table) {
            rate_limiter_free(rl);
            return NULL;
        }
    }
    return rl;
}

void rate_limiter_free(rate_limiter *rl)
{
    if (!rl)
        return;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &rl->shards[i];
        for (size_t j = 0; s->table && j < s->nslots; j++) {
            struct bucket *b = s->table[j];
            while (b) {
                struct bucket *next = b->next;
                free(b);
                b = next;
            }
        }
        free(s->table);
        pthread_mutex_destroy(&s->mu);
    }
    free(rl);
}

/* FNV-1a, 64 bits. */
static uint64_t hash_key(const char *k)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)k; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

static double refill(const rate_limiter *rl, const struct bucket *b, double now)
{
    double t = b->tokens + (now > b->last ? now - b->last : 0) * rl->spec.per_second;
    return t > rl->spec.burst ? rl->spec.burst : t;
}

static void grow(struct shard *s)
{
    size_t n = s->nslots * 2;
    struct bucket **t = calloc(n, sizeof *t);
    if (!t)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < s->nslots; i++) {
        struct bucket *b = s->table[i];
        while (b) {
            struct bucket *next = b->next;
            b->next = t[b->hash & (n - 1)];
            t[b->hash & (n - 1)] = b;
            b = next;
        }
    }
    free(s->table);
    s->table = t;
    s->nslots = n;
}

/* Makes room for one more bucket: drops full ones, else the least recently used one. */
static void evict(const rate_limiter *rl, struct shard *s, double now)
{
    struct bucket **oldest = NULL;
    for (size_t i = 0; i < s->nslots; i++) {
        for (struct bucket **pp = &s->table[i]; *pp;) {
            struct bucket *b = *pp;
            if (refill(rl, b, now) >= rl->spec.burst) {
                *pp = b->next;
                free(b);
                s->count--;
                continue;
            }
            if (!oldest || b->last < (*oldest)->last)
                oldest = pp;
            pp = &b->next;
        }
    }
    if (s->count >= s->max && oldest) {
        struct bucket *b = *oldest;
        *oldest = b->next;
        free(b);
        s->count--;
    }
}

int rate_limiter_take(rate_limiter *rl, const char *key, double now, long *retry_after)
{
    if (!rl)
        return 1;
    if (!key)
        key = "";
    uint64_t h = hash_key(key);
    struct shard *s = &rl->shards[(h >> 58) % SHARDS];
    pthread_mutex_lock(&s->mu);
    struct bucket *b = s->table[h & (s->nslots - 1)];
    while (b && !(b->hash == h && strcmp(b->key, key) == 0))
        b = b->next;
    if (!b) {
        if (s->count >= s->max)
            evict(rl, s, now);
        size_t klen = strlen(key);
        b = malloc(sizeof *b + klen + 1);
        if (!b) {
            pthread_mutex_unlock(&s->mu);
            return 1; /* out of memory: do not refuse */
        }
        memcpy(b->key, key, klen + 1);
        b->hash = h;
        b->tokens = rl->spec.burst;
        b->last = now;
        b->next = s->table[h & (s->nslots - 1)];
        s->table[h & (s->nslots - 1)] = b;
        if (++s->count > s->nslots)
            grow(s);
    }
    double tokens = refill(rl, b, now);
    b->last = now > b->last ? now : b->last;
    int allowed = tokens >= 1;
    b->tokens = allowed ? tokens - 1 : tokens;
    pthread_mutex_unlock(&s->mu);
    if (!allowed && retry_after) {
        double wait = (1 - tokens) / rl->spec.per_second;
        long secs = (long)ceil(wait - 1e-9);
        *retry_after = secs < 1 ? 1 : secs;
    }
    return allowed;
}

size_t rate_limiter_size(rate_limiter *rl)
{
    size_t n = 0;
    for (int i = 0; rl && i < SHARDS; i++) {
        pthread_mutex_lock(&rl->shards[i].mu);
        n += rl->shards[i].count;
        pthread_mutex_unlock(&rl->shards[i].mu);
    }
    return n;
}
