/*
 * tests/unit/test_metrics.c: common/metrics.h: families, series, exact exposition text, the
 * series cap, function gauges, concurrent updates.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"
#include "unit/check.h"

static int contains(const char *text, const char *line)
{
    return text && strstr(text, line) != NULL;
}

static void test_counter_and_text(void)
{
    metrics_registry *r = metrics_registry_new();
    metric_family *c = metrics_family(r, METRIC_COUNTER, "fulcio_new_certs",
                                      "The total number of certificates generated", NULL, NULL, 0);
    CHECK(c != NULL, "counter registered");
    char *t = metrics_render(r, NULL);
    CHECK_STREQ(t,
                "# HELP fulcio_new_certs The total number of certificates generated\n"
                "# TYPE fulcio_new_certs counter\n"
                "fulcio_new_certs 0\n",
                "a label-less counter renders 0 before any update");
    free(t);
    metric_inc(metric_get0(c));
    metric_add(metric_get0(c), 41);
    CHECK(metric_value(metric_get0(c)) == 42, "counter value 42");
    t = metrics_render(r, NULL);
    CHECK(contains(t, "\nfulcio_new_certs 42\n"), "counter renders 42: %s", t);
    free(t);

    /* Same name, same shape: the same family; another shape: refused. */
    CHECK(metrics_family(r, METRIC_COUNTER, "fulcio_new_certs", "x", NULL, NULL, 0) == c,
          "re-registration returns the family");
    const char *lbl[] = {"code", NULL};
    CHECK(metrics_family(r, METRIC_COUNTER, "fulcio_new_certs", "x", lbl, NULL, 0) == NULL,
          "other labels under the same name refused");
    CHECK(metrics_family(r, METRIC_GAUGE, "fulcio_new_certs", "x", NULL, NULL, 0) == NULL,
          "other type under the same name refused");
    CHECK(metrics_family(r, METRIC_COUNTER, "bad-name", "x", NULL, NULL, 0) == NULL,
          "invalid metric name refused");
    const char *le[] = {"le", NULL};
    CHECK(metrics_family(r, METRIC_HISTOGRAM, "h_le", "x", le, NULL, 0) == NULL,
          "label name le refused");
    metrics_registry_free(r);
}

static void test_labels_and_escaping(void)
{
    metrics_registry *r = metrics_registry_new();
    const char *lbl[] = {"code", "method", NULL};
    metric_family *c = metrics_family(r, METRIC_COUNTER, "http_requests_total",
                                      "Count all HTTP requests", lbl, NULL, 0);
    char *t = metrics_render(r, NULL);
    CHECK_STREQ(t,
                "# HELP http_requests_total Count all HTTP requests\n"
                "# TYPE http_requests_total counter\n",
                "a labelled family without series renders only HELP and TYPE");
    free(t);
    metric_inc(metric_get2(c, "200", "get"));
    metric_inc(metric_get2(c, "200", "get"));
    metric_inc(metric_get2(c, "429", "post"));
    CHECK(metric_get2(c, "200", "get") == metric_get2(c, "200", "get"), "same series");
    CHECK(metric_value(metric_get2(c, "200", "get")) == 2, "200/get = 2");

    const char *il[] = {"issuer", NULL};
    metric_family *g = metrics_family(r, METRIC_GAUGE, "odd", "line1\nback\\slash", il, NULL, 0);
    metric_set(metric_get1(g, "a\"b\\c\nd"), 0.25);
    t = metrics_render(r, NULL);
    CHECK_STREQ(t,
                "# HELP http_requests_total Count all HTTP requests\n"
                "# TYPE http_requests_total counter\n"
                "http_requests_total{code=\"200\",method=\"get\"} 2\n"
                "http_requests_total{code=\"429\",method=\"post\"} 1\n"
                "# HELP odd line1\\nback\\\\slash\n"
                "# TYPE odd gauge\n"
                "odd{issuer=\"a\\\"b\\\\c\\nd\"} 0.25\n",
                "labelled series and escaping");
    free(t);
    metrics_registry_free(r);
}

static void test_histogram(void)
{
    metrics_registry *r = metrics_registry_new();
    const char *lbl[] = {"code", "method", NULL};
    metric_family *h =
        metrics_family(r, METRIC_HISTOGRAM, "fulcio_api_latency", "API Latency on calls", lbl,
                       NULL, 0);
    metric_series *s = metric_get2(h, "201", "post");
    metric_observe(s, 0.003);  /* le 0.005 */
    metric_observe(s, 0.005);  /* le 0.005 (upper bound inclusive) */
    metric_observe(s, 0.2);    /* le 0.25 */
    metric_observe(s, 30);     /* +Inf only */
    CHECK(metric_hist_count(s) == 4, "4 observations");
    char *t = metrics_render(r, NULL);
    CHECK_STREQ(t,
                "# HELP fulcio_api_latency API Latency on calls\n"
                "# TYPE fulcio_api_latency histogram\n"
                "fulcio_api_latency_bucket{code=\"201\",method=\"post\",le=\"0.005\"} 2\n"
                "fulcio_api_latency_bucket{code=\"201\",method=\"post\",le=\"0.01\"} 2\n"
                "fulcio_api_latency_bucket{code=\"201\",method=\"post\",le=\"0.025\"} 2\n"
                "fulcio_api_latency_bucket{code=\"201\",method=\"post\",le=\"0.05\"} 2\n"
                "fulcio_api_latency_bucket{code=\"201\",method=\"post\",le=\"0.1\"} 2\n"
                "fulcio_api_latency_bucket{code=\"201\",method=\"post\",le=\"0.25\"} 3\n"
                "fulcio_api_latency_bucket{code=\"201\",method=\"post\",le=\"0.5\"} 3\n"
                "fulcio_api_latency_bucket{code=\"201\",method=\"post\",le=\"1\"} 3\n"
                "fulcio_api_latency_bucket{code=\"201\",method=\"post\",le=\"2.5\"} 3\n"
                "fulcio_api_latency_bucket{code=\"201\",method=\"post\",le=\"5\"} 3\n"
                "fulcio_api_latency_bucket{code=\"201\",method=\"post\",le=\"10\"} 3\n"
                "fulcio_api_latency_bucket{code=\"201\",method=\"post\",le=\"+Inf\"} 4\n"
                "fulcio_api_latency_sum{code=\"201\",method=\"post\"} 30.208\n"
                "fulcio_api_latency_count{code=\"201\",method=\"post\"} 4\n",
                "histogram exposition with Prometheus' default buckets");
    free(t);

    const double b[] = {1, 2};
    metric_family *h2 = metrics_family(r, METRIC_HISTOGRAM, "plain", "p", NULL, b, 2);
    metric_observe(metric_get0(h2), 1.5);
    t = metrics_render(r, NULL);
    CHECK(contains(t, "plain_bucket{le=\"1\"} 0\nplain_bucket{le=\"2\"} 1\n"
                      "plain_bucket{le=\"+Inf\"} 1\nplain_sum 1.5\nplain_count 1\n"),
          "label-less histogram: %s", t);
    free(t);
    const double bad[] = {2, 1};
    CHECK(metrics_family(r, METRIC_HISTOGRAM, "badb", "x", NULL, bad, 2) == NULL,
          "decreasing buckets refused");
    metrics_registry_free(r);
}

static void test_gauges(void)
{
    metrics_registry *r = metrics_registry_new();
    metric_family *g = metrics_family(r, METRIC_GAUGE, "open", "o", NULL, NULL, 0);
    metric_gauge_add(metric_get0(g), 3);
    metric_gauge_add(metric_get0(g), -1);
    metric_inc(metric_get0(g));
    CHECK(metric_value(metric_get0(g)) == 3, "gauge 3 - 1 + 1 = 3");
    metric_set(metric_get0(g), 1e6);
    char *t = metrics_render(r, NULL);
    CHECK(contains(t, "\nopen 1e+06\n"), "Go's float form 1e+06: %s", t);
    free(t);

    CHECK(metrics_gauge_func(r, "fn_gauge", "computed", NULL, NULL) == -1,
          "function gauge needs a function");
    metrics_registry_free(r);
}

static double read_double(void *arg)
{
    return *(double *)arg;
}

static void test_function_gauge(void)
{
    metrics_registry *r = metrics_registry_new();
    double v = 7.5;
    CHECK(metrics_gauge_func(r, "fn_gauge", "computed", read_double, &v) == 0, "registered");
    char *t = metrics_render(r, NULL);
    CHECK_STREQ(t, "# HELP fn_gauge computed\n# TYPE fn_gauge gauge\nfn_gauge 7.5\n",
                "function gauge rendered");
    free(t);
    v = -2;
    t = metrics_render(r, NULL);
    CHECK(contains(t, "\nfn_gauge -2\n"), "function gauge re-evaluated: %s", t);
    free(t);
    metric_family *c = metrics_family(r, METRIC_COUNTER, "plain_c", "c", NULL, NULL, 0);
    CHECK(metrics_gauge_func(r, "plain_c", "x", read_double, &v) == -1,
          "a regular family's name cannot become a function gauge");
    (void)c;
    metrics_gauge_func_remove(r, "fn_gauge");
    t = metrics_render(r, NULL);
    CHECK(!contains(t, "fn_gauge"), "removed function gauge gone: %s", t);
    free(t);
    metrics_registry_free(r);
}

static void test_series_cap(void)
{
    metrics_registry *r = metrics_registry_new();
    const char *lbl[] = {"issuer", NULL};
    metric_family *c = metrics_family(r, METRIC_COUNTER, "per_issuer", "x", lbl, NULL, 0);
    char v[32];
    for (int i = 0; i < METRICS_MAX_SERIES + 50; i++) {
        snprintf(v, sizeof v, "https://i%d.example", i);
        metric_inc(metric_get1(c, v));
    }
    metric_series *other = metric_get1(c, "https://new.example");
    CHECK(other == metric_get1(c, "_other"), "overflow goes to the _other series");
    CHECK(metric_value(other) == 51, "_other counted the 51 values past the cap (got %g)",
          metric_value(other));
    snprintf(v, sizeof v, "https://i%d.example", 3);
    CHECK(metric_value(metric_get1(c, v)) == 1, "an early series keeps its own count");
    metrics_registry_free(r);
}

struct worker_arg {
    metric_family *c, *h;
};

static void *hammer(void *p)
{
    struct worker_arg *a = p;
    for (int i = 0; i < 20000; i++) {
        metric_inc(metric_get2(a->c, i % 2 ? "200" : "500", "post"));
        metric_observe(metric_get0(a->h), 0.001);
    }
    return NULL;
}

static void test_concurrency(void)
{
    metrics_registry *r = metrics_registry_new();
    const char *lbl[] = {"code", "method", NULL};
    struct worker_arg a = {
        .c = metrics_family(r, METRIC_COUNTER, "cc", "x", lbl, NULL, 0),
        .h = metrics_family(r, METRIC_HISTOGRAM, "hh", "x", NULL, NULL, 0),
    };
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, hammer, &a);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    CHECK(metric_value(metric_get2(a.c, "200", "post")) == 80000, "200 counted exactly");
    CHECK(metric_value(metric_get2(a.c, "500", "post")) == 80000, "500 counted exactly");
    CHECK(metric_hist_count(metric_get0(a.h)) == 160000, "histogram count exact");
    double sum = metric_hist_sum(metric_get0(a.h));
    CHECK(sum > 159.99 && sum < 160.01, "histogram sum %g", sum);
    metrics_registry_free(r);
}

int main(void)
{
    test_counter_and_text();
    test_labels_and_escaping();
    test_histogram();
    test_gauges();
    test_function_gauge();
    test_series_cap();
    test_concurrency();
    CHECK(metrics_default() == metrics_default(), "one default registry");
    CHECK_MAIN_END();
}
