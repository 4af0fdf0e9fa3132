/*
 * tests/integration/harness_load.c: client threads under steady load (harness_load.h).
 */
#include "integration/harness_load.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "integration/harness.h"

#define HLOAD_MAX_THREADS 64

struct hload {
    hload_opts o;
    pthread_t threads[HLOAD_MAX_THREADS];
    int started;
    _Atomic int stop;
    pthread_mutex_t mu; /* everything below */
    double *ms;
    size_t nms, capms;
    hload_answer *answers;
    size_t nanswers, capanswers;
    long requests, ok, transport, by_class[6];
};

struct client {
    hload *l;
    int index;
};

double hload_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

long hload_raise_nofile(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    rlim_t target = (rlim_t)want;
    if (rl.rlim_max != RLIM_INFINITY && target > rl.rlim_max)
        target = rl.rlim_max;
    if (rl.rlim_cur < target) {
        rl.rlim_cur = target;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}

static void record(hload *l, long status, double ms, char *body)
{
    pthread_mutex_lock(&l->mu);
    l->requests++;
    if (status == 200)
        l->ok++;
    if (status == 0)
        l->transport++;
    else if (status / 100 >= 1 && status / 100 <= 5)
        l->by_class[status / 100]++;
    if (l->nms == l->capms) {
        size_t cap = l->capms ? l->capms * 2 : 1024;
        double *p = realloc(l->ms, cap * sizeof *p);
        if (p) {
            l->ms = p;
            l->capms = cap;
        }
    }
    if (l->nms < l->capms)
        l->ms[l->nms++] = ms;
    if (l->o.keep_bodies) {
        if (l->nanswers == l->capanswers) {
            size_t cap = l->capanswers ? l->capanswers * 2 : 256;
            hload_answer *p = realloc(l->answers, cap * sizeof *p);
            if (p) {
                l->answers = p;
                l->capanswers = cap;
            }
        }
        if (l->nanswers < l->capanswers) {
            l->answers[l->nanswers].status = status;
            l->answers[l->nanswers].body = body ? body : strdup("");
            l->nanswers++;
            body = NULL;
        }
    }
    pthread_mutex_unlock(&l->mu);
    free(body);
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    hload *l = c->l;
    const char *body = l->o.bodies[c->index % l->o.nbodies];
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    while (h && !atomic_load(&l->stop)) {
        h_sink s = {0};
        curl_easy_setopt(h, CURLOPT_URL, l->o.url);
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, h_curl_sink);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 120000L * h_slow());
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        double t0 = hload_now_ms();
        long status = 0;
        if (curl_easy_perform(h) == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        record(l, status, hload_now_ms() - t0, s.p);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    free(c);
    return NULL;
}

hload *hload_start(const hload_opts *opts)
{
    if (!opts->url || !opts->bodies || opts->nbodies < 1 || opts->threads < 1 ||
        opts->threads > HLOAD_MAX_THREADS) {
        fprintf(stderr, "harness: hload_start: bad options\n");
        return NULL;
    }
    hload *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->o = *opts;
    pthread_mutex_init(&l->mu, NULL);
    for (; l->started < opts->threads; l->started++) {
        struct client *c = malloc(sizeof *c);
        if (!c)
            break;
        c->l = l;
        c->index = l->started;
        if (pthread_create(&l->threads[l->started], NULL, client_main, c) != 0) {
            free(c);
            break;
        }
    }
    if (l->started < opts->threads) {
        fprintf(stderr, "harness: hload_start: only %d of %d clients started\n", l->started,
                opts->threads);
        hload_stop(l, NULL);
        return NULL;
    }
    return l;
}

void hload_take(hload *l, hload_window *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_lock(&l->mu);
    double *ms = l->ms;
    size_t nms = l->nms;
    w->requests = l->requests;
    w->ok = l->ok;
    w->transport = l->transport;
    memcpy(w->by_class, l->by_class, sizeof w->by_class);
    w->answers = l->answers;
    w->nanswers = l->nanswers;
    l->ms = NULL;
    l->nms = l->capms = 0;
    l->answers = NULL;
    l->nanswers = l->capanswers = 0;
    l->requests = l->ok = l->transport = 0;
    memset(l->by_class, 0, sizeof l->by_class);
    pthread_mutex_unlock(&l->mu);
    w->p50_ms = hload_quantile(ms, nms, 0.50);
    w->p99_ms = hload_quantile(ms, nms, 0.99);
    w->max_ms = hload_quantile(ms, nms, 1.0);
    free(ms);
}

void hload_stop(hload *l, hload_window *last)
{
    if (!l)
        return;
    atomic_store(&l->stop, 1);
    for (int i = 0; i < l->started; i++)
        pthread_join(l->threads[i], NULL);
    hload_window w;
    hload_take(l, &w);
    if (last)
        *last = w;
    else
        hload_window_free(&w);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

void hload_window_free(hload_window *w)
{
    for (size_t i = 0; w->answers && i < w->nanswers; i++)
        free(w->answers[i].body);
    free(w->answers);
    w->answers = NULL;
    w->nanswers = 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double hload_quantile(double *ms, size_t n, double p)
{
    if (!ms || n == 0)
        return 0;
    qsort(ms, n, sizeof *ms, cmp_double);
    size_t k = (size_t)(p * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return ms[k - 1];
}
