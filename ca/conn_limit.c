#include "ca/conn_limit.h"

#include <event2/bufferevent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"

#define MAX_LISTENERS 16

struct conn_limit {
    int max;
    _Atomic long open;
    _Atomic int paused;   /* a pause was broadcast and not yet lifted */
    _Atomic int shutdown;
    pthread_mutex_t mu;   /* workers */
    conn_limit_worker **workers;
    size_t nworkers, cap;
    metric_series *m_reached, *m_over;
};

struct pending {
    struct bufferevent *bev;
    int drop;
};

struct conn_limit_worker {
    conn_limit *cl;
    struct event_base *base;
    struct event *finalize_ev;
    struct pending *pending;
    size_t npending, cap;
    struct evconnlistener *listeners[MAX_LISTENERS];
    int nlisteners;
    int paused;
    int forgotten;
    _Atomic long mine;      /* this worker's open connections (balance) */
    _Atomic int balanced_out; /* paused for balance: poke when another worker accepts */
    metric_series *m_mine;  /* fulcrum_http_worker_connections{worker} */
    conn_limit_conn_fn opened, closed; /* conn_limit_worker_set_observer */
    void *observer_arg;
};

static double open_gauge(void *arg)
{
    return (double)conn_limit_open(arg);
}

conn_limit *conn_limit_new(int max)
{
    conn_limit *cl = calloc(1, sizeof *cl);
    if (!cl)
        return NULL;
    cl->max = max > 0 ? max : 0;
    pthread_mutex_init(&cl->mu, NULL);
    metrics_registry *r = metrics_default();
    metrics_gauge_func(r, "fulcrum_http_connections_open",
                       "Connections open on the API listener", open_gauge, cl);
    metric_set(metric_get0(metrics_gauge("fulcrum_http_connections_max",
                                         "--max-connections (0 = no limit)", NULL)),
               cl->max);
    cl->m_reached = metric_get0(metrics_counter(
        "fulcrum_http_connections_limit_reached_total",
        "Times the API listener stopped accepting because --max-connections were open", NULL));
    cl->m_over = metric_get0(metrics_counter(
        "fulcrum_http_connections_over_limit_total",
        "Connections accepted past --max-connections by concurrent workers and closed at once",
        NULL));
    return cl;
}

void conn_limit_shutdown(conn_limit *cl)
{
    if (cl)
        atomic_store(&cl->shutdown, 1);
}

void conn_limit_free(conn_limit *cl)
{
    if (!cl)
        return;
    metrics_gauge_func_remove(metrics_default(), "fulcrum_http_connections_open");
    free(cl->workers);
    pthread_mutex_destroy(&cl->mu);
    free(cl);
}

long conn_limit_open(const conn_limit *cl)
{
    return cl ? atomic_load((_Atomic long *)&cl->open) : 0;
}

/* On w's thread: pause or resume its listeners to match the count. */
/* Balance: a worker with more than BALANCE_SLACK connections above the least loaded other
 * worker stops accepting, so the connections of a client that opens many at once (a load
 * balancer, a benchmark) spread over the cores instead of all landing on whichever worker woke
 * first (libevent's accept loop takes every pending connection). The least loaded worker never
 * pauses for balance, so someone always accepts. */
#define BALANCE_SLACK 1

static int over_balance(conn_limit_worker *w)
{
    conn_limit *cl = w->cl;
    long mine = atomic_load(&w->mine), least = -1;
    pthread_mutex_lock(&cl->mu);
    for (size_t i = 0; i < cl->nworkers; i++) {
        conn_limit_worker *o = cl->workers[i];
        if (o == w)
            continue;
        long n = atomic_load(&o->mine);
        if (least < 0 || n < least)
            least = n;
    }
    pthread_mutex_unlock(&cl->mu);
    return least >= 0 && mine > least + BALANCE_SLACK;
}

static void on_sync(evutil_socket_t fd, short what, void *arg);

/* After a worker accepted: the workers paused for balance look again (on their own thread). */
static void poke_balanced_out(conn_limit_worker *w)
{
    conn_limit *cl = w->cl;
    static const struct timeval now = {0, 0};
    pthread_mutex_lock(&cl->mu);
    for (size_t i = 0; i < cl->nworkers; i++) {
        conn_limit_worker *o = cl->workers[i];
        if (o != w && atomic_exchange(&o->balanced_out, 0))
            event_base_once(o->base, -1, EV_TIMEOUT, on_sync, o, &now);
    }
    pthread_mutex_unlock(&cl->mu);
}

static void sync_listeners(conn_limit_worker *w)
{
    conn_limit *cl = w->cl;
    if (w->forgotten || atomic_load(&cl->shutdown))
        return;
    int full = cl->max > 0 && atomic_load(&cl->open) >= cl->max;
    int balance = !full && over_balance(w);
    atomic_store(&w->balanced_out, balance);
    int want = full || balance;
    if (want == w->paused)
        return;
    for (int i = 0; i < w->nlisteners; i++) {
        if (want)
            evconnlistener_disable(w->listeners[i]);
        else
            evconnlistener_enable(w->listeners[i]);
    }
    w->paused = want;
}

static void on_sync(evutil_socket_t fd, short what, void *arg)
{
    sync_listeners(arg);
}

/* Asks every worker to re-check (on its own thread). */
static void broadcast(conn_limit *cl)
{
    if (atomic_load(&cl->shutdown))
        return;
    static const struct timeval now = {0, 0};
    pthread_mutex_lock(&cl->mu);
    for (size_t i = 0; i < cl->nworkers; i++)
        event_base_once(cl->workers[i]->base, -1, EV_TIMEOUT, on_sync, cl->workers[i], &now);
    pthread_mutex_unlock(&cl->mu);
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    conn_limit_worker *w = arg;
    conn_limit *cl = w->cl;
    if (w->closed)
        w->closed(evcon, w->observer_arg);
    long n = atomic_fetch_sub(&cl->open, 1) - 1;
    metric_set(w->m_mine, (double)(atomic_fetch_sub(&w->mine, 1) - 1));
    if (cl->max > 0 && n < cl->max && atomic_exchange(&cl->paused, 0))
        broadcast(cl);
    else if (w->paused)
        sync_listeners(w);
}

/* Top priority, right after the accept callback: every new connection gets its close callback
 * before any of its I/O can run. */
static void on_finalize(evutil_socket_t fd, short what, void *arg)
{
    conn_limit_worker *w = arg;
    size_t n = w->npending;
    w->npending = 0;
    for (size_t i = 0; i < n; i++) {
        void *cbarg = NULL;
        bufferevent_getcb(w->pending[i].bev, NULL, NULL, NULL, &cbarg);
        struct evhttp_connection *evcon = cbarg;
        if (!evcon) { /* never set up by evhttp: not counted as open any more */
            atomic_fetch_sub(&w->cl->open, 1);
            metric_set(w->m_mine, (double)(atomic_fetch_sub(&w->mine, 1) - 1));
            continue;
        }
        evhttp_connection_set_closecb(evcon, on_close, w);
        if (w->opened)
            w->opened(evcon, w->observer_arg);
        if (w->pending[i].drop) {
            metric_inc(w->cl->m_over);
            evhttp_connection_free(evcon); /* runs on_close */
        }
    }
}

static struct bufferevent *on_new_connection(struct event_base *base, void *arg)
{
    conn_limit_worker *w = arg;
    conn_limit *cl = w->cl;
    /* What evhttp makes itself when there is no callback. */
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
    if (!bev)
        return NULL;
    if (w->npending == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        struct pending *p = realloc(w->pending, cap * sizeof *p);
        if (!p)
            return bev; /* not counted: no close callback either */
        w->pending = p;
        w->cap = cap;
    }
    long n = atomic_fetch_add(&cl->open, 1) + 1;
    metric_set(w->m_mine, (double)(atomic_fetch_add(&w->mine, 1) + 1));
    w->pending[w->npending].bev = bev;
    w->pending[w->npending].drop = cl->max > 0 && n > cl->max;
    w->npending++;
    event_active(w->finalize_ev, EV_TIMEOUT, 1);
    if (cl->max > 0 && n >= cl->max) {
        sync_listeners(w); /* stops this worker's accept loop at once */
        if (!atomic_exchange(&cl->paused, 1)) {
            metric_inc(cl->m_reached);
            log_warn("http", "%d connections open (--max-connections): accepting paused until "
                             "one closes",
                     cl->max);
            broadcast(cl);
        }
    } else if (over_balance(w)) {
        sync_listeners(w); /* stops this worker's accept loop at once */
    }
    poke_balanced_out(w);
    return bev;
}

conn_limit_worker *conn_limit_worker_new(conn_limit *cl, struct event_base *base,
                                         struct evhttp *http)
{
    if (!cl || !base || !http)
        return NULL;
    conn_limit_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->cl = cl;
    w->base = base;
    if (event_base_priority_init(base, 2) != 0 ||
        !(w->finalize_ev = event_new(base, -1, 0, on_finalize, w)) ||
        event_priority_set(w->finalize_ev, 0) != 0) {
        conn_limit_worker_free(w);
        return NULL;
    }
    pthread_mutex_lock(&cl->mu);
    if (cl->nworkers == cl->cap) {
        size_t cap = cl->cap ? cl->cap * 2 : 8;
        conn_limit_worker **ws = realloc(cl->workers, cap * sizeof *ws);
        if (!ws) {
            pthread_mutex_unlock(&cl->mu);
            conn_limit_worker_free(w);
            return NULL;
        }
        cl->workers = ws;
        cl->cap = cap;
    }
    char id[24];
    snprintf(id, sizeof id, "%zu", cl->nworkers);
    cl->workers[cl->nworkers++] = w;
    pthread_mutex_unlock(&cl->mu);
    static const char *const labels[] = {"worker", NULL};
    w->m_mine = metric_get1(metrics_gauge("fulcrum_http_worker_connections",
                                          "Connections open on each HTTP worker thread (accepting "
                                          "keeps them within one of each other)",
                                          labels),
                            id);
    metric_set(w->m_mine, 0);
    evhttp_set_bevcb(http, on_new_connection, w);
    return w;
}

int conn_limit_worker_add_listener(conn_limit_worker *w, struct evconnlistener *l)
{
    if (!w || !l || w->nlisteners == MAX_LISTENERS)
        return -1;
    w->listeners[w->nlisteners++] = l;
    return 0;
}

void conn_limit_worker_set_observer(conn_limit_worker *w, conn_limit_conn_fn opened,
                                    conn_limit_conn_fn closed, void *arg)
{
    if (!w)
        return;
    w->opened = opened;
    w->closed = closed;
    w->observer_arg = arg;
}

void conn_limit_worker_forget_listeners(conn_limit_worker *w)
{
    if (!w)
        return;
    w->forgotten = 1;
    w->nlisteners = 0;
}

void conn_limit_worker_free(conn_limit_worker *w)
{
    if (!w)
        return;
    conn_limit *cl = w->cl;
    pthread_mutex_lock(&cl->mu);
    for (size_t i = 0; i < cl->nworkers; i++) {
        if (cl->workers[i] == w) {
            cl->workers[i] = cl->workers[--cl->nworkers];
            break;
        }
    }
    pthread_mutex_unlock(&cl->mu);
    if (w->finalize_ev)
        event_free(w->finalize_ev);
    free(w->pending);
    free(w);
}
