#include "common/metrics.h"
#include "common/strbuf.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double metrics_default_buckets[11] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

struct metric_series {
    metric_family *fam;
    char *values[METRICS_MAX_LABELS];
    _Atomic uint64_t value;    /* counter: the count; gauge: the double's bits */
    _Atomic uint64_t count;    /* histogram */
    _Atomic uint64_t sum_bits; /* histogram: the double's bits */
    _Atomic uint64_t *buckets; /* histogram: per-bucket (not cumulative) counts, nbuckets + 1 */
};

struct metric_family {
    metric_family *next;
    enum metric_type type;
    char *name, *help;
    int nlabels;
    char *labels[METRICS_MAX_LABELS];
    double bounds[METRICS_MAX_BUCKETS];
    size_t nbounds;
    double (*fn)(void *); /* function gauge */
    void *fn_arg;
    pthread_mutex_t mu; /* creating series */
    _Atomic size_t nseries;
    metric_series *series[METRICS_MAX_SERIES]; /* [0, nseries) published */
};

struct metrics_registry {
    pthread_mutex_t mu;
    metric_family *first, *last;
};

double metrics_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

metrics_registry *metrics_registry_new(void)
{
    metrics_registry *r = calloc(1, sizeof *r);
    if (r)
        pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void series_free(metric_series *s)
{
    if (!s)
        return;
    for (int i = 0; i < METRICS_MAX_LABELS; i++)
        free(s->values[i]);
    free((void *)s->buckets);
    free(s);
}

static void family_free(metric_family *f)
{
    size_t n = atomic_load(&f->nseries);
    for (size_t i = 0; i < n; i++)
        series_free(f->series[i]);
    for (int i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void metrics_registry_free(metrics_registry *r)
{
    if (!r)
        return;
    metric_family *f = r->first;
    while (f) {
        metric_family *next = f->next;
        family_free(f);
        f = next;
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static metrics_registry *g_default;
static pthread_once_t g_default_once = PTHREAD_ONCE_INIT;

static void make_default(void)
{
    g_default = metrics_registry_new();
}

metrics_registry *metrics_default(void)
{
    pthread_once(&g_default_once, make_default);
    return g_default;
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* (label names: no ':'). */
static int valid_name(const char *s, int label)
{
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++) {
        int c = (unsigned char)*p;
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (!label && c == ':');
        if (!alpha && !(p > s && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

static int same_shape(const metric_family *f, enum metric_type type, const char *const *labels)
{
    if (f->type != type || f->fn)
        return 0;
    int n = 0;
    while (labels && labels[n])
        n++;
    if (n != f->nlabels)
        return 0;
    for (int i = 0; i < n; i++)
        if (strcmp(labels[i], f->labels[i]) != 0)
            return 0;
    return 1;
}

static metric_family *find_family(metrics_registry *r, const char *name)
{
    for (metric_family *f = r->first; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static metric_family *family_new(enum metric_type type, const char *name, const char *help,
                                 const char *const *labels, const double *buckets,
                                 size_t nbuckets)
{
    metric_family *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    pthread_mutex_init(&f->mu, NULL);
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    int ok = f->name && f->help;
    for (int i = 0; ok && labels && labels[i]; i++) {
        ok = i < METRICS_MAX_LABELS && valid_name(labels[i], 1) && strcmp(labels[i], "le") != 0 &&
             (f->labels[i] = strdup(labels[i])) != NULL;
        f->nlabels = ok ? i + 1 : f->nlabels;
    }
    if (ok && type == METRIC_HISTOGRAM) {
        if (!buckets) {
            buckets = metrics_default_buckets;
            nbuckets = sizeof metrics_default_buckets / sizeof metrics_default_buckets[0];
        }
        ok = nbuckets > 0 && nbuckets <= METRICS_MAX_BUCKETS;
        for (size_t i = 0; ok && i < nbuckets; i++) {
            ok = isfinite(buckets[i]) && (i == 0 || buckets[i] > buckets[i - 1]);
            f->bounds[i] = buckets[i];
        }
        f->nbounds = nbuckets;
    }
    if (!ok) {
        family_free(f);
        return NULL;
    }
    return f;
}

static void registry_append(metrics_registry *r, metric_family *f)
{
    if (r->last)
        r->last->next = f;
    else
        r->first = f;
    r->last = f;
}

metric_family *metrics_family(metrics_registry *r, enum metric_type type, const char *name,
                              const char *help, const char *const *labels,
                              const double *buckets, size_t nbuckets)
{
    if (!r || !valid_name(name, 0))
        return NULL;
    pthread_mutex_lock(&r->mu);
    metric_family *f = find_family(r, name);
    if (f) {
        if (!same_shape(f, type, labels))
            f = NULL;
    } else {
        f = family_new(type, name, help, labels, buckets, nbuckets);
        if (f)
            registry_append(r, f);
    }
    pthread_mutex_unlock(&r->mu);
    return f;
}

metric_family *metrics_counter(const char *name, const char *help, const char *const *labels)
{
    return metrics_family(metrics_default(), METRIC_COUNTER, name, help, labels, NULL, 0);
}

metric_family *metrics_gauge(const char *name, const char *help, const char *const *labels)
{
    return metrics_family(metrics_default(), METRIC_GAUGE, name, help, labels, NULL, 0);
}

metric_family *metrics_histogram(const char *name, const char *help, const char *const *labels,
                                 const double *buckets, size_t nbuckets)
{
    return metrics_family(metrics_default(), METRIC_HISTOGRAM, name, help, labels, buckets,
                          nbuckets);
}

static int series_matches(const metric_series *s, const char *const *values, int n)
{
    for (int i = 0; i < n; i++) {
        const char *v = values && values[i] ? values[i] : "";
        if (strcmp(s->values[i], v) != 0)
            return 0;
    }
    return 1;
}

static metric_series *scan(metric_family *f, const char *const *values, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (series_matches(f->series[i], values, f->nlabels))
            return f->series[i];
    return NULL;
}

static metric_series *series_new(metric_family *f, const char *const *values)
{
    metric_series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->fam = f;
    int ok = 1;
    for (int i = 0; ok && i < f->nlabels; i++)
        ok = (s->values[i] = strdup(values && values[i] ? values[i] : "")) != NULL;
    if (ok && f->type == METRIC_HISTOGRAM)
        ok = (s->buckets = calloc(f->nbounds + 1, sizeof *s->buckets)) != NULL;
    if (!ok) {
        series_free(s);
        return NULL;
    }
    return s;
}

metric_series *metric_series_get(metric_family *f, const char *const *values)
{
    if (!f)
        return NULL;
    size_t n = atomic_load_explicit(&f->nseries, memory_order_acquire);
    metric_series *s = scan(f, values, 0, n);
    if (s)
        return s;
    pthread_mutex_lock(&f->mu);
    size_t n2 = atomic_load_explicit(&f->nseries, memory_order_relaxed);
    s = scan(f, values, n, n2);
    if (!s && n2 == METRICS_MAX_SERIES - 1 && f->nlabels > 0) {
        /* The last slot counts every further combination. */
        const char *other[METRICS_MAX_LABELS] = {"_other", "_other", "_other", "_other"};
        s = series_new(f, other);
    } else if (!s && n2 == METRICS_MAX_SERIES) {
        s = f->series[METRICS_MAX_SERIES - 1];
        pthread_mutex_unlock(&f->mu);
        return s;
    } else if (!s) {
        s = series_new(f, values);
    } else {
        pthread_mutex_unlock(&f->mu);
        return s;
    }
    if (s) {
        f->series[n2] = s;
        atomic_store_explicit(&f->nseries, n2 + 1, memory_order_release);
    }
    pthread_mutex_unlock(&f->mu);
    return s;
}

metric_series *metric_get0(metric_family *f)
{
    return metric_series_get(f, NULL);
}

metric_series *metric_get1(metric_family *f, const char *v1)
{
    const char *v[1] = {v1};
    return metric_series_get(f, v);
}

metric_series *metric_get2(metric_family *f, const char *v1, const char *v2)
{
    const char *v[2] = {v1, v2};
    return metric_series_get(f, v);
}

static void atomic_add_double(_Atomic uint64_t *slot, double delta)
{
    uint64_t old = atomic_load_explicit(slot, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(slot, &old, dbits(bitsd(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void metric_add(metric_series *s, uint64_t n)
{
    if (!s)
        return;
    if (s->fam->type == METRIC_COUNTER)
        atomic_fetch_add_explicit(&s->value, n, memory_order_relaxed);
    else if (s->fam->type == METRIC_GAUGE)
        atomic_add_double(&s->value, (double)n);
}

void metric_inc(metric_series *s)
{
    metric_add(s, 1);
}

void metric_set(metric_series *s, double v)
{
    if (s && s->fam->type == METRIC_GAUGE)
        atomic_store_explicit(&s->value, dbits(v), memory_order_relaxed);
}

void metric_gauge_add(metric_series *s, double delta)
{
    if (s && s->fam->type == METRIC_GAUGE)
        atomic_add_double(&s->value, delta);
}

void metric_observe(metric_series *s, double v)
{
    if (!s || s->fam->type != METRIC_HISTOGRAM)
        return;
    const metric_family *f = s->fam;
    size_t i = 0;
    while (i < f->nbounds && v > f->bounds[i])
        i++;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    atomic_add_double(&s->sum_bits, v);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

double metric_value(const metric_series *s)
{
    if (!s)
        return 0;
    uint64_t v = atomic_load_explicit((_Atomic uint64_t *)&s->value, memory_order_relaxed);
    return s->fam->type == METRIC_COUNTER ? (double)v : bitsd(v);
}

uint64_t metric_hist_count(const metric_series *s)
{
    return s ? atomic_load_explicit((_Atomic uint64_t *)&s->count, memory_order_relaxed) : 0;
}

double metric_hist_sum(const metric_series *s)
{
    return s ? bitsd(atomic_load_explicit((_Atomic uint64_t *)&s->sum_bits,
                                          memory_order_relaxed))
             : 0;
}

int metrics_gauge_func(metrics_registry *r, const char *name, const char *help,
                       double (*fn)(void *arg), void *arg)
{
    if (!r || !fn || !valid_name(name, 0))
        return -1;
    pthread_mutex_lock(&r->mu);
    metric_family *f = find_family(r, name);
    int rc = 0;
    if (f && f->fn) {
        f->fn = fn;
        f->fn_arg = arg;
    } else if (f) {
        rc = -1; /* a regular family has that name */
    } else if ((f = family_new(METRIC_GAUGE, name, help, NULL, NULL, 0)) != NULL) {
        f->fn = fn;
        f->fn_arg = arg;
        registry_append(r, f);
    } else {
        rc = -1;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void metrics_gauge_func_remove(metrics_registry *r, const char *name)
{
    if (!r || !name)
        return;
    pthread_mutex_lock(&r->mu);
    metric_family *prev = NULL;
    for (metric_family *f = r->first; f; prev = f, f = f->next) {
        if (f->fn && strcmp(f->name, name) == 0) {
            if (prev)
                prev->next = f->next;
            else
                r->first = f->next;
            if (r->last == f)
                r->last = prev;
            family_free(f);
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- rendering --------------------------------------------------------------------------- */

/* HELP text: \ and newline escaped; label values also ". */
static void put_escaped(struct strbuf *b, const char *s, int quote)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\')
            sb_puts(b, "\\\\");
        else if (*p == '\n')
            sb_puts(b, "\\n");
        else if (quote && *p == '"')
            sb_puts(b, "\\\"");
        else
            sb_putn(b, p, 1);
    }
}

/* Go's strconv.FormatFloat(v, 'g', -1, 64) for the values Prometheus writes. */
static void put_float(struct strbuf *b, double v)
{
    char tmp[40];
    if (isnan(v)) {
        sb_puts(b, "NaN");
        return;
    }
    if (isinf(v)) {
        sb_puts(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* The fewest digits that read back as v; then %e when the exponent is < -4 or >= 6 (Go's
     * rule for the shortest form), else plain decimals. */
    int prec = 0;
    for (; prec < 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    const char *e = strchr(tmp, 'e');
    int exp = e ? atoi(e + 1) : 0;
    if (exp >= -4 && exp < 6)
        snprintf(tmp, sizeof tmp, "%.*f", prec - exp > 0 ? prec - exp : 0, v);
    sb_puts(b, tmp);
}

static void put_u64(struct strbuf *b, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    sb_puts(b, tmp);
}

/* {a="x",b="y"[,le="..."]} or nothing. */
static void put_labels(struct strbuf *b, const metric_family *f, const metric_series *s,
                       const char *le)
{
    if (f->nlabels == 0 && !le)
        return;
    sb_puts(b, "{");
    for (int i = 0; i < f->nlabels; i++) {
        if (i)
            sb_puts(b, ",");
        sb_puts(b, f->labels[i]);
        sb_puts(b, "=\"");
        put_escaped(b, s->values[i], 1);
        sb_puts(b, "\"");
    }
    if (le) {
        if (f->nlabels)
            sb_puts(b, ",");
        sb_puts(b, "le=\"");
        sb_puts(b, le);
        sb_puts(b, "\"");
    }
    sb_puts(b, "}");
}

static void render_series(struct strbuf *b, const metric_family *f, const metric_series *s)
{
    if (f->type != METRIC_HISTOGRAM) {
        sb_puts(b, f->name);
        put_labels(b, f, s, NULL);
        sb_puts(b, " ");
        if (f->type == METRIC_COUNTER)
            put_u64(b, (uint64_t)metric_value(s));
        else
            put_float(b, metric_value(s));
        sb_puts(b, "\n");
        return;
    }
    /* Read the count first: buckets and sum then cover at least that many observations. */
    uint64_t count = metric_hist_count(s);
    uint64_t cum = 0;
    for (size_t i = 0; i <= f->nbounds; i++) {
        cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        char le[40];
        if (i < f->nbounds) {
            struct strbuf t = {0};
            put_float(&t, f->bounds[i]);
            snprintf(le, sizeof le, "%s", t.p ? t.p : "0");
            free(t.p);
        } else {
            snprintf(le, sizeof le, "+Inf");
            if (cum < count)
                cum = count;
        }
        sb_puts(b, f->name);
        sb_puts(b, "_bucket");
        put_labels(b, f, s, le);
        sb_puts(b, " ");
        put_u64(b, cum);
        sb_puts(b, "\n");
    }
    sb_puts(b, f->name);
    sb_puts(b, "_sum");
    put_labels(b, f, s, NULL);
    sb_puts(b, " ");
    put_float(b, metric_hist_sum(s));
    sb_puts(b, "\n");
    sb_puts(b, f->name);
    sb_puts(b, "_count");
    put_labels(b, f, s, NULL);
    sb_puts(b, " ");
    put_u64(b, cum > count ? cum : count);
    sb_puts(b, "\n");
}

static const char *type_name(enum metric_type t)
{
    switch (t) {
    case METRIC_COUNTER: return "counter";
    case METRIC_GAUGE: return "gauge";
    default: return "histogram";
    }
}

char *metrics_render(metrics_registry *r, size_t *len)
{
    if (!r)
        return NULL;
    struct strbuf b = {0};
    pthread_mutex_lock(&r->mu);
    for (metric_family *f = r->first; f; f = f->next) {
        sb_puts(&b, "# HELP ");
        sb_puts(&b, f->name);
        sb_puts(&b, " ");
        put_escaped(&b, f->help, 0);
        sb_puts(&b, "\n# TYPE ");
        sb_puts(&b, f->name);
        sb_puts(&b, " ");
        sb_puts(&b, type_name(f->type));
        sb_puts(&b, "\n");
        if (f->fn) {
            sb_puts(&b, f->name);
            sb_puts(&b, " ");
            put_float(&b, f->fn(f->fn_arg));
            sb_puts(&b, "\n");
            continue;
        }
        if (f->nlabels == 0)
            metric_get0(f); /* a label-less family always shows its series */
        size_t n = atomic_load_explicit(&f->nseries, memory_order_acquire);
        for (size_t i = 0; i < n; i++)
            render_series(&b, f, f->series[i]);
    }
    pthread_mutex_unlock(&r->mu);
    size_t n = b.len;
    char *text = sb_finish(&b); /* NULL when memory ran short; "" when nothing was rendered */
    if (text && len)
        *len = n;
    return text;
}
