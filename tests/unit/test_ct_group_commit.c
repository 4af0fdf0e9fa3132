/* The CT log's writer and the embedded submitter's entry point: group commit without a timer
 * (what queues while a transaction waits goes into the next one; a lone submission is not held
 * back; batch_ms still adds a window when asked, and with announced submissions (ct_log_expect)
 * the window ends when none is outstanding), ct_log_add_own_precert (same entry bytes and
 * refusals as ct_log_add, checked by OpenSSL's SCT_validate and by deduplication across both),
 * and the WAL checkpoint moved out of COMMIT (ctlog_db_checkpoint_if). */
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/metrics.h"
#include "ct/ct_log.h"
#include "ct/log_store.h"
#include "ct/sct_verify.h"
#include "unit/check.h"
#include "unit/ct_testkit.h"

static char tmpdir[4096];

struct result {
    int done;
    unsigned char sct[512];
    size_t sct_len;
    char err[512];
};

static void on_added(void *arg, const unsigned char *sct, size_t sct_len, const char *err,
                     int client_error)
{
    struct result *r = arg;
    r->done++;
    if (sct && sct_len <= sizeof r->sct) {
        memcpy(r->sct, sct, sct_len);
        r->sct_len = sct_len;
    }
    if (err)
        snprintf(r->err, sizeof r->err, "%s", err);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int wait_results(struct event_base *base, struct result *r, int n, double limit)
{
    double deadline = now_s() + limit;
    for (;;) {
        int all = 1;
        for (int i = 0; i < n; i++)
            if (!r[i].done)
                all = 0;
        if (all)
            return 1;
        if (now_s() > deadline)
            return 0;
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(200);
    }
}

static STACK_OF(X509) *chain_of(X509 *a, X509 *b)
{
    STACK_OF(X509) *s = sk_X509_new_null();
    sk_X509_push(s, a);
    if (b)
        sk_X509_push(s, b);
    return s;
}

static ct_log *open_log(const char *name, X509 *root, int batch_ms)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    STACK_OF(X509) *roots = chain_of(root, NULL);
    ct_log_options o = {.state_dir = dir, .roots = roots, .batch_ms = batch_ms,
                        .sth_interval_ms = 100};
    char why[512] = "";
    ct_log *log = ct_log_open(&o, why, sizeof why);
    CHECK(log != NULL, "open log %s: %s", name, why);
    sk_X509_free(roots);
    return log;
}

/* own = 1: ct_log_add_own_precert; else ct_log_add(precert). -1 refused at once, -2 no answer. */
static int add(ct_log *log, struct event_base *base, int own, int precert, X509 *a, X509 *b,
               struct result *r)
{
    memset(r, 0, sizeof *r);
    STACK_OF(X509) *chain = chain_of(a, b);
    int rc = own ? ct_log_add_own_precert(log, chain, base, on_added, r, r->err, sizeof r->err)
                 : ct_log_add(log, precert, chain, base, on_added, r, r->err, sizeof r->err);
    sk_X509_free(chain);
    if (rc != 0)
        return -1;
    return wait_results(base, r, 1, 10) && r->sct_len ? 0 : -2;
}

static metric_series *batch_hist(void)
{
    static const double buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
    return metric_get0(metrics_histogram("fulcrum_ct_log_batch_entries",
                                         "Submissions committed per CT log transaction (group "
                                         "commit)", NULL,
                                         buckets, sizeof buckets / sizeof buckets[0]));
}

static void own_precert(struct event_base *base, X509 *root, EVP_PKEY *root_key, EVP_PKEY *key)
{
    ct_log *log = open_log("own", root, 0);
    if (!log)
        return;
    EVP_PKEY *pub = ct_log_public_key(log);
    X509 *pre = ctk_cert("pre", key, root, root_key, 0, CTK_POISON, 0);
    X509 *pre2 = ctk_cert("pre2", key, root, root_key, 0, CTK_POISON, 0);
    X509 *leaf = ctk_cert("leaf", key, root, root_key, 0, CTK_NO_POISON, 0);
    EVP_PKEY *other_key = ctk_key();
    X509 *other_root = ctk_cert("other", other_key, NULL, NULL, 1, CTK_NO_POISON, 0);
    X509 *stranger = ctk_cert("stranger", key, other_root, other_key, 0, CTK_POISON, 0);
    struct result r, d;

    CHECK(add(log, base, 1, 1, pre, root, &r) == 0, "own precert accepted: %s", r.err);
    CHECK(ctk_sct_valid(r.sct, r.sct_len, 1, pre, root, pub, tmpdir),
          "own precert: OpenSSL SCT_validate says the SCT is valid");

    /* ct_log_add_own_precert_sct: the SCT is handed out before the commit, and it is the one
     * the log delivers once the entry is durable. */
    {
        X509 *pre3 = ctk_cert("pre3", key, root, root_key, 0, CTK_POISON, 0);
        STACK_OF(X509) *chain = chain_of(pre3, root);
        struct result e;
        memset(&e, 0, sizeof e);
        unsigned char *early = NULL, leaf_hash[32];
        size_t early_len = 0;
        int rc = ct_log_add_own_precert_sct(log, chain, base, on_added, &e, &early, &early_len,
                                            leaf_hash, e.err, sizeof e.err);
        CHECK(rc == 0 && early && early_len > 0, "early SCT: given at submission: %s", e.err);
        CHECK(e.sct_len == 0, "early SCT: the entry is not answered before its commit");
        CHECK(wait_results(base, &e, 1, 10) && e.sct_len == early_len &&
                  memcmp(e.sct, early, early_len) == 0,
              "early SCT: the SCT delivered after the commit is the same");
        CHECK(ctk_sct_valid(early, early_len, 1, pre3, root, pub, tmpdir),
              "early SCT: OpenSSL SCT_validate says it is valid");
        /* The leaf hash handed out with it: what ct_sct_verify_own compares the rebuilt signed
         * bytes with (the log's key is a file key here, so in process). */
        char why[768] = "";
        ct_sct_verifier *v = ct_sct_verifier_new(pub, why, sizeof why);
        CHECK(ct_log_key_in_process(log) == 1, "a file key is in process");
        CHECK(v && ct_sct_verify_own(v, early, early_len, pre3, root, ct_now_ms(), leaf_hash, why,
                                     sizeof why) == 0,
              "early SCT: the leaf hash matches the bytes rebuilt from the precert: %s", why);
        leaf_hash[7] ^= 1;
        CHECK(v && ct_sct_verify_own(v, early, early_len, pre3, root, ct_now_ms(), leaf_hash, why,
                                     sizeof why) != 0 &&
                  strstr(why, "the log signed other bytes"),
              "early SCT: another leaf hash is refused: %s", why);
        leaf_hash[7] ^= 1;
        CHECK(v && ct_sct_verify_own(v, early, early_len, pre2, root, ct_now_ms(), leaf_hash, why,
                                     sizeof why) != 0 &&
                  strstr(why, "the log signed other bytes"),
              "early SCT: another precertificate is refused: %s", why);
        ct_sct_verifier_free(v);
        free(early);
        sk_X509_free(chain);
        X509_free(pre3);
    }
    /* The CA's own precertificates are not deduplicated (ct/ct_log.h): the same chain submitted
     * again, by either path, is a new entry with an SCT of its own. Submitted chains still are. */
    CHECK(add(log, base, 0, 1, pre, root, &d) == 0 && d.sct_len > 0 &&
              (d.sct_len != r.sct_len || memcmp(d.sct, r.sct, r.sct_len) != 0) &&
              ctk_sct_valid(d.sct, d.sct_len, 1, pre, root, pub, tmpdir),
          "an own precert again through ct_log_add: logged again, a new valid SCT");
    CHECK(add(log, base, 0, 1, pre, root, &r) == 0 && d.sct_len == r.sct_len &&
              memcmp(d.sct, r.sct, r.sct_len) == 0,
          "and once more through ct_log_add: now the SCT of that submission");
    CHECK(add(log, base, 0, 1, pre2, NULL, &r) == 0 &&
              add(log, base, 1, 1, pre2, root, &d) == 0 && d.sct_len > 0 &&
              (d.sct_len != r.sct_len || memcmp(d.sct, r.sct, r.sct_len) != 0) &&
              ctk_sct_valid(d.sct, d.sct_len, 1, pre2, root, pub, tmpdir),
          "ct_log_add first, then the own path: not looked up, a new valid SCT");
    /* pre and pre3 (own), pre again, pre2 twice: five entries (the second ct_log_add of pre
     * made none). */
    double start = now_s();
    while (ct_log_tree_size(log) < 5 && now_s() - start < 5)
        usleep(1000);
    usleep(300 * 1000); /* an STH every 100 ms: one more entry would be covered by now */
    CHECK(ct_log_tree_size(log) == 5, "five entries in the tree (%llu)", ct_log_tree_size(log));
    CHECK(add(log, base, 1, 1, stranger, other_root, &r) == -1 &&
              strstr(r.err, "does not verify to an accepted root"),
          "own path: a chain to another root is refused: %s", r.err);
    CHECK(add(log, base, 1, 1, leaf, root, &r) == -1 && strstr(r.err, "is missing"),
          "own path: a certificate without the poison is refused: %s", r.err);
    /* The own path trusts the CA's signature (made in this process a moment before) but not
     * the chain's shape: a precertificate that does not name the root as its issuer is refused. */
    X509 *forged = X509_dup(pre2);
    X509_NAME *elsewhere = X509_NAME_new();
    X509_NAME_add_entry_by_txt(elsewhere, "CN", MBSTRING_ASC, (const unsigned char *)"elsewhere",
                               -1, -1, 0);
    X509_set_issuer_name(forged, elsewhere);
    X509_NAME_free(elsewhere);
    X509_sign(forged, other_key, EVP_sha256());
    CHECK(add(log, base, 1, 1, forged, root, &r) == -1 &&
              strstr(r.err, "is not issued by certificate 1"),
          "own path: a precert naming another issuer is refused: %s", r.err);
    X509_free(forged);
    ct_log_close(log);
    X509 *all[] = {pre, pre2, leaf, other_root, stranger};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        X509_free(all[i]);
    EVP_PKEY_free(other_key);
}

/* While the database is locked by another connection, submissions pile up in the queue; once
 * it is free they go in at most two transactions (the one the writer had started, the rest). */
static void grouping(struct event_base *base, X509 *root, EVP_PKEY *root_key, EVP_PKEY *key)
{
    enum { N = 100 };
    ct_log *log = open_log("group", root, 0);
    if (!log)
        return;
    char path[4300], why[512] = "";
    snprintf(path, sizeof path, "%s/group/ctlog/log.db", tmpdir);
    ctlog_db *blocker = ctlog_db_open(path, 1, why, sizeof why);
    CHECK(blocker && ctlog_db_begin(blocker, 1) == 0, "another connection holds the write lock");
    metric_series *h = batch_hist();
    uint64_t count0 = metric_hist_count(h);
    double sum0 = metric_hist_sum(h);
    struct result *r = calloc(N, sizeof *r);
    int queued = 0;
    for (int i = 0; i < N; i++) {
        char cn[32];
        snprintf(cn, sizeof cn, "group-%d", i);
        X509 *x = ctk_cert(cn, key, root, root_key, 0, CTK_NO_POISON, 0);
        STACK_OF(X509) *c = chain_of(x, NULL);
        queued += ct_log_add(log, 0, c, base, on_added, &r[i], why, sizeof why) == 0;
        sk_X509_free(c);
        X509_free(x);
    }
    CHECK(queued == N, "%d of %d queued", queued, N);
    event_base_loop(base, EVLOOP_NONBLOCK);
    int early = 0;
    for (int i = 0; i < N; i++)
        early += r[i].done;
    CHECK(early == 0, "nothing is answered before it is committed (%d answers)", early);
    ctlog_db_rollback(blocker);
    ctlog_db_close(blocker);
    int got = wait_results(base, r, N, 15), with_sct = 0;
    for (int i = 0; i < N; i++)
        with_sct += r[i].sct_len > 0;
    CHECK(got && with_sct == N, "%d of %d answered with an SCT", with_sct, N);
    uint64_t batches = metric_hist_count(h) - count0;
    double entries = metric_hist_sum(h) - sum0;
    CHECK(entries == N && batches >= 1 && batches <= 2,
          "%d submissions committed in %llu transaction(s) (want 1 or 2; %.0f entries counted)",
          N, (unsigned long long)batches, entries);
    double start = now_s();
    while (ct_log_tree_size(log) < N && now_s() - start < 5)
        usleep(1000);
    CHECK(ct_log_tree_size(log) == N, "an STH covers the %d entries", N);
    free(r);
    ct_log_close(log);
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

/* A lone submission on an idle log is committed at once; batch_ms = 400 holds back one that
 * follows a commit within the window (log_writer.c: the window applies under load). */
/* An answer comes before work the worker has not started: on a base with two priorities (as
 * the HTTP workers'), the first of 40 ready callbacks (each ~1 ms, as a request's crypto)
 * submits a precertificate and returns once the writer has committed it; the answer must run
 * next, not after the other 39. */
struct order_ctx {
    ct_log *log;
    X509 *pre, *root;
    struct event_base *base;
    struct result r;
    int ran, answered_after;
};

static void order_answer(void *arg, const unsigned char *sct, size_t sct_len, const char *err,
                         int client_error)
{
    struct order_ctx *o = arg;
    o->answered_after = o->ran;
    on_added(&o->r, sct, sct_len, err, client_error);
}

static void order_work(evutil_socket_t fd, short what, void *arg)
{
    struct order_ctx *o = arg;
    if (o->ran++ == 0) {
        STACK_OF(X509) *chain = chain_of(o->pre, o->root);
        int before = event_base_get_num_events(o->base, EVENT_BASE_COUNT_ACTIVE);
        if (ct_log_add_own_precert(o->log, chain, o->base, order_answer, o, o->r.err,
                                   sizeof o->r.err) == 0) {
            /* until the writer has activated the answer on this base */
            double deadline = now_s() + 10;
            while (event_base_get_num_events(o->base, EVENT_BASE_COUNT_ACTIVE) <= before &&
                   now_s() < deadline)
                usleep(1000);
        }
        sk_X509_free(chain);
    }
    usleep(1000);
}

static void answer_first(X509 *root, EVP_PKEY *root_key, EVP_PKEY *key)
{
    struct event_base *base = event_base_new();
    ct_log *log = open_log("order", root, 0);
    if (!base || !log || event_base_priority_init(base, 2) != 0) {
        CHECK(0, "order: a base with two priorities and a log");
        ct_log_close(log);
        event_base_free(base);
        return;
    }
    struct order_ctx o = {.log = log, .root = root, .base = base, .answered_after = -1};
    o.pre = ctk_cert("order", key, root, root_key, 0, CTK_POISON, 0);
    struct event *work[40];
    for (int i = 0; i < 40; i++) {
        work[i] = event_new(base, -1, 0, order_work, &o); /* default priority: 1 */
        event_active(work[i], EV_TIMEOUT, 0);
    }
    event_base_loop(base, EVLOOP_NONBLOCK);
    wait_results(base, &o.r, 1, 10);
    CHECK(o.r.done && o.r.sct_len > 0, "order: the precertificate is logged (%s)", o.r.err);
    CHECK(o.answered_after == 1,
          "order: the answer ran right after the callback that submitted it (after %d of 40)",
          o.answered_after);
    for (int i = 0; i < 40; i++)
        event_free(work[i]);
    X509_free(o.pre);
    ct_log_close(log);
    event_base_free(base);
}

static void no_timer(struct event_base *base, X509 *root, EVP_PKEY *root_key, EVP_PKEY *key)
{
    enum { RUNS = 5 };
    const int windows[2] = {0, 400};
    double took[2][RUNS];
    for (int w = 0; w < 2; w++) {
        char name[32];
        snprintf(name, sizeof name, "window-%d", windows[w]);
        ct_log *log = open_log(name, root, windows[w]);
        if (!log)
            return;
        for (int i = 0; i < RUNS; i++) {
            char cn[32];
            snprintf(cn, sizeof cn, "lone-%d-%d", w, i);
            X509 *x = ctk_cert(cn, key, root, root_key, 0, CTK_NO_POISON, 0);
            struct result r;
            usleep(20000); /* the writer is idle */
            double t0 = now_s();
            CHECK(add(log, base, 0, 0, x, root, &r) == 0, "lone submission: %s", r.err);
            took[w][i] = now_s() - t0;
            X509_free(x);
        }
        ct_log_close(log);
    }
    /* took[1][0] came to a fresh log; the others 20 ms after the previous commit (under
     * load, for a 400 ms window). */
    double min_window = took[1][1];
    for (int i = 2; i < RUNS; i++)
        if (took[1][i] < min_window)
            min_window = took[1][i];
    double m0 = median(took[0], RUNS);
    CHECK(m0 < 0.25, "default: a lone submission is answered after one commit, no window "
                     "(median %.1f ms)", m0 * 1000);
    CHECK(took[1][0] < 0.25, "batch_ms = 400: the first submission to an idle log is committed "
                             "at once (%.1f ms)", took[1][0] * 1000);
    CHECK(min_window >= 0.39, "batch_ms = 400: a submission that follows a commit within the "
                              "window waits for it (fastest %.1f ms)", min_window * 1000);
    /* Idle for longer than the window: at once again. */
    ct_log *log = open_log("window-idle", root, 400);
    if (!log)
        return;
    double idle[2];
    for (int i = 0; i < 2; i++) {
        char cn[32];
        snprintf(cn, sizeof cn, "idle-%d", i);
        X509 *x = ctk_cert(cn, key, root, root_key, 0, CTK_NO_POISON, 0);
        struct result r;
        usleep(600000);
        double t0 = now_s();
        CHECK(add(log, base, 0, 0, x, root, &r) == 0, "idle submission: %s", r.err);
        idle[i] = now_s() - t0;
        X509_free(x);
    }
    ct_log_close(log);
    CHECK(idle[1] < 0.25, "batch_ms = 400: a submission 600 ms after the last commit is "
                          "committed at once (%.1f ms)", idle[1] * 1000);
}

struct withdraw {
    ct_log *log;
    int n, delay_ms; /* ct_log_expect_done n times, delay_ms apart */
};

static void *withdraw_later(void *arg)
{
    struct withdraw *w = arg;
    for (int i = 0; i < w->n; i++) {
        usleep((useconds_t)w->delay_ms * 1000);
        ct_log_expect_done(w->log);
    }
    return NULL;
}

/* Adaptive group commit: with batch_ms = 1000 and submissions announced, a batch under load waits
 * while any announced submission is outstanding and is committed once the last is withdrawn,
 * not at the window's end; with nothing announced it is committed at once; the window still caps
 * the wait when an announcement is never withdrawn. */
static void adaptive(struct event_base *base, X509 *root, EVP_PKEY *root_key, EVP_PKEY *key)
{
    ct_log *log = open_log("adaptive", root, 1000);
    if (!log)
        return;
    struct result r;
    X509 *x[4];
    for (int i = 0; i < 4; i++) {
        char cn[32];
        snprintf(cn, sizeof cn, "adaptive-%d", i);
        x[i] = ctk_cert(cn, key, root, root_key, 0, CTK_NO_POISON, 0);
    }
    ct_log_expect(log); /* this log now ends windows early */
    ct_log_expect_done(log);
    CHECK(add(log, base, 0, 0, x[0], root, &r) == 0, "first submission: %s", r.err);

    /* Under load, two more announced: the batch waits for both withdrawals (150 ms apart). */
    ct_log_expect(log);
    ct_log_expect(log);
    struct withdraw w = {log, 2, 150};
    pthread_t t;
    double t0 = now_s();
    int started = pthread_create(&t, NULL, withdraw_later, &w) == 0;
    CHECK(started, "withdrawal thread");
    CHECK(add(log, base, 0, 0, x[1], root, &r) == 0, "announced batch: %s", r.err);
    double waited = now_s() - t0;
    if (started)
        pthread_join(t, NULL);
    CHECK(waited >= 0.29 && waited < 0.8,
          "a batch waits while announced submissions are outstanding and is committed when the "
          "last is withdrawn, before its 1000 ms window ends (%.1f ms)", waited * 1000);

    /* Under load, nothing announced: committed at once. */
    t0 = now_s();
    CHECK(add(log, base, 0, 0, x[2], root, &r) == 0, "unannounced batch: %s", r.err);
    double at_once = now_s() - t0;
    CHECK(at_once < 0.25, "with nothing announced a batch under load is committed at once "
                          "(%.1f ms)", at_once * 1000);

    /* An announcement never withdrawn: the window still ends the wait. */
    ct_log_expect(log);
    t0 = now_s();
    CHECK(add(log, base, 0, 0, x[3], root, &r) == 0, "capped batch: %s", r.err);
    double capped = now_s() - t0;
    CHECK(capped >= 0.99 && capped < 3.0, "an outstanding announcement holds a batch for the "
                                          "window, no longer (%.1f ms)", capped * 1000);
    ct_log_expect_done(log);
    ct_log_close(log);
    for (int i = 0; i < 4; i++)
        X509_free(x[i]);
}

/* The checkpoint is the writer's call, not COMMIT's. */
static void checkpoint(void)
{
    char path[4300], why[512] = "";
    snprintf(path, sizeof path, "%s/ckpt.db", tmpdir);
    ctlog_db *db = ctlog_db_open(path, 1, why, sizeof why);
    CHECK(db != NULL, "writer connection: %s", why);
    if (!db)
        return;
    unsigned char leaf[64], extra[8] = {0}, h[32], dedup[32], sct[40];
    memset(leaf, 7, sizeof leaf);
    memset(sct, 1, sizeof sct);
    int ok = 1;
    for (int i = 0; i < 20 && ok; i++) {
        memset(h, i, sizeof h);
        memset(dedup, 100 + i, sizeof dedup);
        ok = ctlog_db_begin(db, 1) == 0 &&
             ctlog_db_insert_entry(db, (uint64_t)i, leaf, sizeof leaf, extra, sizeof extra, h,
                                   dedup, 1, sct, sizeof sct) == 0 &&
             ctlog_db_commit(db) == 0;
    }
    CHECK(ok, "20 transactions committed");
    struct stat before, after;
    CHECK(stat(path, &before) == 0, "database file exists");
    CHECK(ctlog_db_checkpoint_if(db, 1000) == 0, "below the threshold: no checkpoint");
    CHECK(ctlog_db_checkpoint_if(db, 1) == 1, "at the threshold: a checkpoint");
    CHECK(stat(path, &after) == 0 && after.st_size > before.st_size,
          "the checkpoint copied the WAL into the database (%lld -> %lld bytes)",
          (long long)before.st_size, (long long)after.st_size);
    CHECK(ctlog_db_checkpoint_if(db, 1) == 0, "nothing new: no second checkpoint");
    ctlog_db_close(db);
}

int main(void)
{
    evthread_use_pthreads();
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/fulcrum-groupcommit-unit-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    struct event_base *base = event_base_new();
    EVP_PKEY *root_key = ctk_key(), *key = ctk_key();
    X509 *root = ctk_cert("root", root_key, NULL, NULL, 1, CTK_NO_POISON, 0);

    own_precert(base, root, root_key, key);
    grouping(base, root, root_key, key);
    no_timer(base, root, root_key, key);
    adaptive(base, root, root_key, key);
    checkpoint();
    answer_first(root, root_key, key);

    X509_free(root);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(key);
    event_base_free(base);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    CHECK_MAIN_END();
}
