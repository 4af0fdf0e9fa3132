/*
 * common/metrics.h: Prometheus metrics (counters, gauges, histograms with labels) and their text
 * exposition format 0.0.4, as Go's client_golang writes it (fulcio-compat.md §7.3).
 *
 * A registry holds families (one name, one type, fixed label names); a family holds series (one
 * per combination of label values), created at first use. Updating a series is lock-free (atomic
 * adds); finding one scans the family's published series without a lock; only creating a series
 * or a family takes a mutex. A family keeps at most METRICS_MAX_SERIES series: label values beyond
 * that are counted in one series whose every label is "_other" (a bound on memory when label
 * values come from outside, e.g. issuer URLs of meta-issuers).
 *
 * Rendering (metrics_render): families in registration order, series in creation order;
 * "# HELP" and "# TYPE" lines; label values escaped (\\, \", \n); counters as integers, gauges and
 * sums in Go's shortest float form; histogram buckets cumulative with le="+Inf" last, then _sum
 * and _count. A family with labels and no series yet renders only its HELP and TYPE lines; a
 * family without labels always renders its one series (0 until updated).
 *
 * Process-wide: metrics_default() is the registry `fulcrum serve` exposes; modules register their
 * families there (registration is idempotent: the same name, type and labels return the same
 * family). Tests may make private registries.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef FULCRUM_COMMON_METRICS_H
#define FULCRUM_COMMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_SERIES 256
#define METRICS_MAX_LABELS 4
#define METRICS_MAX_BUCKETS 24

typedef struct metrics_registry metrics_registry;
typedef struct metric_family metric_family;
typedef struct metric_series metric_series;

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

/* Prometheus' default buckets (client_golang DefBuckets): .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10. */
extern const double metrics_default_buckets[11];

metrics_registry *metrics_registry_new(void);
/* Frees the registry and every family and series (no update may run concurrently). */
void metrics_registry_free(metrics_registry *r);

/* The process-wide registry (created on first use, never freed). */
metrics_registry *metrics_default(void);

/* Registers a family, or returns the one already registered under `name` when its type and label
 * names are the same (NULL when they differ, or on a bad name or out of memory). `labels` is a
 * NULL-terminated list of at most METRICS_MAX_LABELS names (NULL = none). `buckets` (histograms
 * only; NULL = metrics_default_buckets) are strictly increasing upper bounds, at most
 * METRICS_MAX_BUCKETS, +Inf implied. */
metric_family *metrics_family(metrics_registry *r, enum metric_type type, const char *name,
                              const char *help, const char *const *labels,
                              const double *buckets, size_t nbuckets);

/* Shorthands on metrics_default(). */
metric_family *metrics_counter(const char *name, const char *help, const char *const *labels);
metric_family *metrics_gauge(const char *name, const char *help, const char *const *labels);
metric_family *metrics_histogram(const char *name, const char *help, const char *const *labels,
                                 const double *buckets, size_t nbuckets);

/* The series of these label values (one per label name; NULL counts as ""), created at first use.
 * NULL only when f is NULL or out of memory; the update functions accept NULL and do nothing. */
metric_series *metric_series_get(metric_family *f, const char *const *values);
metric_series *metric_get0(metric_family *f);
metric_series *metric_get1(metric_family *f, const char *v1);
metric_series *metric_get2(metric_family *f, const char *v1, const char *v2);

/* Counters (and gauges): add 1 / n. */
void metric_inc(metric_series *s);
void metric_add(metric_series *s, uint64_t n);
/* Gauges. */
void metric_set(metric_series *s, double v);
void metric_gauge_add(metric_series *s, double delta);
/* Histograms: one observation (seconds, for latencies). */
void metric_observe(metric_series *s, double v);

/* Current values (tests, /readyz): counter or gauge value; a histogram's count and sum. */
double metric_value(const metric_series *s);
uint64_t metric_hist_count(const metric_series *s);
double metric_hist_sum(const metric_series *s);

/* A label-less gauge computed when rendered: its value is fn(arg), called (under the registry's
 * lock) by every metrics_render. Registering the name again replaces fn and arg.
 * metrics_gauge_func_remove must run before arg goes away. Returns 0 or -1. */
int metrics_gauge_func(metrics_registry *r, const char *name, const char *help,
                       double (*fn)(void *arg), void *arg);
void metrics_gauge_func_remove(metrics_registry *r, const char *name);

/* The exposition text (malloc'd, NUL-terminated; *len without the NUL), or NULL. */
char *metrics_render(metrics_registry *r, size_t *len);

/* Monotonic clock in seconds (for latencies). */
double metrics_now(void);

#endif
