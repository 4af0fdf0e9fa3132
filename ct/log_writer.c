/*
 * ct/log_writer.c: the log's single writer thread.
 *
 * Submissions wait in a queue; whenever the writer is free it takes everything queued (at most
 * MAX_BATCH) and commits it in one transaction (entries, new subtree nodes): a classic group
 * commit, where the next batch gathers while the previous one is being made durable (see
 * writer_main). Only once COMMIT has returned (synchronous=FULL: on disk) are the submitters'
 * callbacks activated on their own event_base. A failed transaction is rolled back, the
 * in-memory frontier restored, and every submission of the batch answered with the error.
 *
 * A new STH is signed once entries exist past the published one and sth_interval_ms have
 * passed since the previous STH, so an entry is covered at most sth_interval_ms after its
 * commit (plus one commit). Under load it is stored in the transaction of the batch it covers;
 * when the log is idle, in one of its own. It is stored before it is published.
 */
#include <pthread.h>
#include <event2/event.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base64.h"
#include "common/cpu_load.h"
#include "common/log.h"
#include "common/metrics.h"
#include "ct/log_internal.h"

#define MAX_BATCH 4096
#define MAX_QUEUE 65536
/* A checkpoint holds up the next commit: 250 frames (SQLite checkpoints at 1000) keep each
 * short (about 4 ms against 9 on a virtual disk; p99 at half load 10 ms against 14) for the
 * same CPU. */
#define CHECKPOINT_FRAMES 250

struct ctlog_pending {
    struct ctlog_pending *next;
    unsigned char *leaf, *extra, *sct;
    size_t leaf_len, extra_len, sct_len;
    unsigned char leaf_hash[32], dedup[32];
    int index_dedup;
    char *audit; /* the certificate's audit line (ct_log_add_own_precert_audit), or NULL */
    size_t audit_len;
    uint64_t idx; /* the entry's index, once stored */
    /* the answer */
    unsigned char *result;
    size_t result_len;
    char err[256];
    int client_error;
    struct event *ev;
    ct_log_add_cb cb;
    void *arg;
};

uint64_t ctlog_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pending_free(struct ctlog_pending *p)
{
    if (!p)
        return;
    free(p->leaf);
    free(p->extra);
    free(p->sct);
    free(p->audit);
    if (p->result != p->sct)
        free(p->result);
    if (p->ev)
        event_free(p->ev);
    free(p);
}

/* Runs on the submitter's event_base. */
static void deliver(evutil_socket_t fd, short what, void *arg)
{
    struct ctlog_pending *p = arg;
    if (p->result)
        p->cb(p->arg, p->result, p->result_len, NULL, 0);
    else
        p->cb(p->arg, NULL, 0, p->err[0] ? p->err : "the log failed", p->client_error);
    pending_free(p);
}

static struct ctlog_pending *pending_new(struct event_base *base, ct_log_add_cb cb, void *arg)
{
    struct ctlog_pending *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cb = cb;
    p->arg = arg;
    p->ev = event_new(base, -1, 0, deliver, p);
    /* Top priority on a base with priorities (the HTTP workers'): the answer of a request under
     * way runs right after the callback in progress, before the base reads new requests (an
     * activation of a higher priority ends the pass over the lower queue). Else a worker with a
     * few dozen requests ready ran them all first: ~0.3 ms each, up to 5-7 ms of delay at p99
     * at half load. A base of one priority keeps it (0 is its only one). */
    if (p->ev)
        event_priority_set(p->ev, 0);
    if (!p->ev) {
        free(p);
        return NULL;
    }
    return p;
}

static void *dup_bytes(const void *src, size_t len)
{
    void *p = malloc(len ? len : 1);
    if (p && len)
        memcpy(p, src, len);
    return p;
}

int ctlog_answer_later(struct event_base *base, ct_log_add_cb cb, void *arg,
                       const unsigned char *sct, size_t sct_len, const char *err,
                       int client_error)
{
    struct ctlog_pending *p = pending_new(base, cb, arg);
    if (!p)
        return -1;
    if (sct) {
        p->result = dup_bytes(sct, sct_len);
        p->result_len = sct_len;
        if (!p->result) {
            pending_free(p);
            return -1;
        }
    } else {
        snprintf(p->err, sizeof p->err, "%s", err ? err : "the log failed");
        p->client_error = client_error;
    }
    event_active(p->ev, EV_TIMEOUT, 0);
    return 0;
}

int ctlog_writer_submit(ct_log *log, const unsigned char *leaf, size_t leaf_len,
                        const unsigned char *extra, size_t extra_len,
                        const unsigned char leaf_hash[32], const unsigned char dedup[32],
                        int index_dedup, const unsigned char *sct, size_t sct_len,
                        char *audit, size_t audit_len, struct event_base *base,
                        ct_log_add_cb cb, void *arg, char *why, size_t whylen)
{
    struct ctlog_pending *p = pending_new(base, cb, arg);
    if (!p) {
        free(audit);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    p->audit = audit;
    p->audit_len = audit_len;
    p->leaf = dup_bytes(leaf, leaf_len);
    p->extra = dup_bytes(extra, extra_len);
    p->sct = dup_bytes(sct, sct_len);
    p->leaf_len = leaf_len;
    p->extra_len = extra_len;
    p->sct_len = sct_len;
    memcpy(p->leaf_hash, leaf_hash, 32);
    memcpy(p->dedup, dedup, 32);
    p->index_dedup = index_dedup;
    if (!p->leaf || !p->extra || !p->sct) {
        pending_free(p);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    pthread_mutex_lock(&log->q_lock);
    if (log->stopping || !log->thread_started || log->q_len >= MAX_QUEUE) {
        int stopping = log->stopping || !log->thread_started;
        pthread_mutex_unlock(&log->q_lock);
        pending_free(p);
        snprintf(why, whylen, stopping ? "the log is shutting down"
                                       : "the log has too many pending submissions");
        return -1;
    }
    if (!log->q_head) {
        log->q_head = p;
        log->q_first_ms = ctlog_mono_ms();
    } else {
        log->q_tail->next = p;
    }
    log->q_tail = p;
    log->q_len++;
    /* The writer waits for a first submission, or for a window's end (writer_main): later ones
     * need not wake it, unless they fill a batch. Signalled once the lock is released, so that
     * the writer does not wake only to wait for it (a second wake-up). */
    int wake = log->q_len == 1 || log->q_len == MAX_BATCH;
    pthread_mutex_unlock(&log->q_lock);
    if (wake)
        pthread_cond_signal(&log->q_cond);
    return 0;
}

void ct_log_expect(ct_log *log)
{
    pthread_mutex_lock(&log->q_lock);
    log->expected++;
    log->expect_used = 1;
    pthread_mutex_unlock(&log->q_lock);
}

void ct_log_expect_done(ct_log *log)
{
    pthread_mutex_lock(&log->q_lock);
    /* A batch may be waiting for its window: wake the writer only if its deadline moves at
     * least WINDOW_WAKE_MIN_MS earlier (a wake-up costs a context switch on each side). */
    int wake = log->expected > 0 && --log->expected == 0 && log->q_head &&
               log->waiting_until_ms &&
               log->q_first_ms + (uint64_t)(log->batch_ms * cpu_load_window_share()) +
                       WINDOW_WAKE_MIN_MS <=
                   log->waiting_until_ms;
    pthread_mutex_unlock(&log->q_lock);
    if (wake) /* after the unlock, as in ctlog_writer_submit */
        pthread_cond_signal(&log->q_cond);
}

/* ---- STH ---- */

static char *sth_json(const ctlog_sth *s)
{
    char *root = b64_encode(s->root, 32);
    char *sig = b64_encode(s->sig, s->sig_len);
    char *out = NULL;
    if (root && sig) {
        size_t n = strlen(root) + strlen(sig) + 160;
        out = malloc(n);
        if (out)
            snprintf(out, n,
                     "{\"tree_size\":%" PRIu64 ",\"timestamp\":%" PRIu64
                     ",\"sha256_root_hash\":\"%s\",\"tree_head_signature\":\"%s\"}",
                     s->tree_size, s->timestamp, root, sig);
    }
    free(root);
    free(sig);
    return out;
}

/* The published STH's timestamp (ms), for fulcrum_ct_log_sth_age_seconds; 0 = none yet. One log
 * per process (embedded in serve, or ctlog serve). */
static _Atomic uint64_t g_sth_ms;

static double sth_age_seconds(void *arg)
{
    uint64_t ms = atomic_load(&g_sth_ms);
    if (!ms)
        return NAN;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000) - (double)ms) / 1000.0;
}

/* fulcrum_ct_log_tree_size, fulcrum_ct_log_sth_timestamp_seconds, fulcrum_ct_log_sth_age_seconds */
static void export_sth(const ctlog_sth *s)
{
    atomic_store(&g_sth_ms, s->timestamp);
    metric_set(metric_get0(metrics_gauge("fulcrum_ct_log_tree_size",
                                         "Entries in the embedded CT log's latest STH", NULL)),
               (double)s->tree_size);
    metric_set(metric_get0(metrics_gauge("fulcrum_ct_log_sth_timestamp_seconds",
                                         "Timestamp of the embedded CT log's latest STH", NULL)),
               (double)s->timestamp / 1000.0);
    metrics_gauge_func(metrics_default(), "fulcrum_ct_log_sth_age_seconds",
                       "Seconds since the timestamp of the embedded CT log's latest STH (a new "
                       "STH is signed when entries were added)",
                       sth_age_seconds, NULL);
}

static int publish_sth(ct_log *log, const ctlog_sth *s)
{
    char *json = sth_json(s);
    if (!json)
        return -1;
    pthread_mutex_lock(&log->sth_lock);
    log->sth = *s;
    free(log->sth_json);
    log->sth_json = json;
    pthread_mutex_unlock(&log->sth_lock);
    export_sth(s);
    return 0;
}

/* Signs an STH over the writer's frontier (not stored, not published). */
static int make_sth(ct_log *log, ctlog_sth *s, char *why, size_t whylen)
{
    ctlog_sth prev;
    ctlog_current_sth(log, &prev);
    memset(s, 0, sizeof *s);
    s->tree_size = log->frontier.size;
    s->timestamp = ctlog_now_ms();
    if (s->timestamp <= prev.timestamp)
        s->timestamp = prev.timestamp + 1; /* never go back, even if the clock does */
    merkle_frontier_root(&log->frontier, s->root);
    unsigned char input[50];
    ctlog_sth_input(s->timestamp, s->tree_size, s->root, input);
    /* Not verified again here: an HSM-held log key's signatures are verified by signer_sign,
     * an in-process key's are OpenSSL's own (as for SCTs and the CA's signatures). */
    return ctlog_key_sign(log->key, input, sizeof input, 0, s->sig, &s->sig_len, why, whylen);
}

/* Signs, stores (in a transaction of its own) and publishes an STH over the writer's frontier:
 * used when no batch is under way to carry it. */
static int sign_sth(ct_log *log, char *why, size_t whylen)
{
    ctlog_sth s;
    if (make_sth(log, &s, why, whylen) != 0)
        return -1;
    if (ctlog_db_begin(log->wdb, 1) != 0 || ctlog_db_insert_sth(log->wdb, &s) != 0 ||
        ctlog_db_commit(log->wdb) != 0) {
        snprintf(why, whylen, "cannot store the STH: %s", ctlog_db_error(log->wdb));
        ctlog_db_rollback(log->wdb);
        return -1;
    }
    if (publish_sth(log, &s) != 0) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    log->next_sth_ms = ctlog_mono_ms() + (uint64_t)log->sth_interval_ms;
    return 0;
}

/* ---- batches ---- */

/* Entries per transaction and the time of one transaction (BEGIN .. durable COMMIT). */
static metric_series *batch_metric(void)
{
    static const double buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
    return metric_get0(metrics_histogram("fulcrum_ct_log_batch_entries",
                                         "Submissions committed per CT log transaction (group "
                                         "commit)", NULL,
                                         buckets, sizeof buckets / sizeof buckets[0]));
}

static metric_series *commit_metric(void)
{
    static const double buckets[] = {.0005, .001, .002, .005, .01, .025, .05, .1, .25, 1};
    return metric_get0(metrics_histogram("fulcrum_ct_log_commit_seconds",
                                         "Time of one CT log transaction, BEGIN to durable "
                                         "COMMIT", NULL,
                                         buckets, sizeof buckets / sizeof buckets[0]));
}

/* Stores the batch and, when one is due, an STH over the tree it makes, in one transaction.
 * *sth_made says whether *sth was stored (it may be published once COMMIT has returned). */
static int commit_batch(ct_log *log, struct ctlog_pending *batch, ctlog_sth *sth, int *sth_made,
                        char *why, size_t whylen)
{
    ctlog_db *db = log->wdb;
    *sth_made = 0;
    if (ctlog_db_begin(db, 1) != 0) {
        snprintf(why, whylen, "cannot begin a transaction: %s", ctlog_db_error(db));
        return -1;
    }
    /* Audit lines the sink has made durable in the audit file leave the log. */
    uint64_t synced = 0;
    pthread_mutex_lock(&log->audit_lock);
    if (log->audit_synced)
        synced = log->audit_synced(log->audit_sink_arg);
    pthread_mutex_unlock(&log->audit_lock);
    if (synced > log->audit_deleted && ctlog_db_delete_audit(db, synced - 1) != 0) {
        snprintf(why, whylen, "cannot delete audit records: %s", ctlog_db_error(db));
        goto fail;
    }
    for (struct ctlog_pending *p = batch; p; p = p->next) {
        uint64_t idx = log->frontier.size;
        int r = ctlog_db_insert_entry(db, idx, p->leaf, p->leaf_len, p->extra, p->extra_len,
                                      p->leaf_hash, p->dedup, p->index_dedup, p->sct,
                                      p->sct_len);
        if (r == 0 && p->audit && ctlog_db_insert_audit(db, idx, p->audit, p->audit_len) != 0) {
            snprintf(why, whylen, "cannot store an audit record: %s", ctlog_db_error(db));
            goto fail;
        }
        if (r == 0) {
            p->idx = idx;
            if (merkle_frontier_append(&log->frontier, p->leaf_hash, ctlog_db_insert_node, db) !=
                0) {
                snprintf(why, whylen, "cannot store a tree node: %s", ctlog_db_error(db));
                goto fail;
            }
            p->result = p->sct;
            p->result_len = p->sct_len;
        } else if (r == 1) {
            if (ctlog_db_find_dedup(db, p->dedup, &p->result, &p->result_len) != 1) {
                snprintf(why, whylen, "cannot read a duplicate's SCT: %s", ctlog_db_error(db));
                goto fail;
            }
        } else {
            snprintf(why, whylen, "cannot store an entry: %s", ctlog_db_error(db));
            goto fail;
        }
    }
    if (ctlog_db_set_indexed(db, log->frontier.size) != 0) {
        snprintf(why, whylen, "cannot update the log index: %s", ctlog_db_error(db));
        goto fail;
    }
    /* An STH due now rides in this transaction instead of costing a commit of its own. It is
     * signed before the entries are durable but published only after COMMIT (and rolled back
     * with them), so no published STH ever covers an entry that is not on disk. A failed
     * signature only postpones the STH. */
    if (ctlog_mono_ms() >= log->next_sth_ms) {
        char r[512] = "";
        if (make_sth(log, sth, r, sizeof r) != 0) {
            log_error("ctlog", "cannot sign an STH: %s", r);
            log->next_sth_ms = ctlog_mono_ms() + (uint64_t)log->sth_interval_ms;
        } else if (ctlog_db_insert_sth(db, sth) != 0) {
            snprintf(why, whylen, "cannot store the STH: %s", ctlog_db_error(db));
            goto fail;
        } else {
            *sth_made = 1;
        }
    }
    if (ctlog_db_commit(db) != 0) {
        snprintf(why, whylen, "cannot commit: %s", ctlog_db_error(db));
        goto fail;
    }
    if (synced > log->audit_deleted)
        log->audit_deleted = synced;
    return 0;
fail:
    *sth_made = 0;
    ctlog_db_rollback(db);
    for (struct ctlog_pending *p = batch; p; p = p->next) {
        if (p->result && p->result != p->sct)
            free(p->result);
        p->result = NULL;
    }
    return -1;
}

static void run_batch(ct_log *log, struct ctlog_pending *batch, size_t n)
{
    merkle_frontier saved = log->frontier;
    char why[512] = "";
    ctlog_sth sth;
    int sth_made = 0;
    double t0 = metrics_now();
    int committed = commit_batch(log, batch, &sth, &sth_made, why, sizeof why) == 0;
    if (!committed) {
        log->frontier = saved;
        log_error("ctlog", "a batch of submissions failed: %s", why);
        for (struct ctlog_pending *p = batch; p; p = p->next)
            snprintf(p->err, sizeof p->err, "the log could not store the entry");
    }
    double took = metrics_now() - t0;
    /* The batch's audit lines go to the sink after the answers: taken out of the submissions,
     * which belong to their bases once answered. */
    ct_audit_line *lines = NULL; /* each line is the submission's, now owned here */
    size_t nlines = 0;
    if (committed) {
        for (struct ctlog_pending *p = batch; p; p = p->next)
            nlines += p->audit != NULL;
        lines = nlines ? malloc(nlines * sizeof *lines) : NULL;
        if (nlines && !lines) {
            /* They stay in the log (audit_pending) and reach the file at the next start. */
            log_error("ctlog", "out of memory: %zu audit record(s) wait in the log for the "
                               "next start", nlines);
            nlines = 0;
        }
        size_t k = 0;
        for (struct ctlog_pending *p = batch; p && lines; p = p->next) {
            if (!p->audit)
                continue;
            lines[k++] = (ct_audit_line){.idx = p->idx, .line = p->audit, .len = p->audit_len};
            p->audit = NULL;
        }
    }
    /* Durable: answer first, then publish the STH (it only matters to readers). */
    while (batch) {
        struct ctlog_pending *p = batch;
        batch = p->next;
        p->next = NULL;
        event_active(p->ev, EV_TIMEOUT, 0); /* p belongs to its base from here on */
    }
    if (nlines) {
        /* No sink (detached at shutdown): the lines wait in the log for the next start. */
        pthread_mutex_lock(&log->audit_lock);
        if (log->audit_sink)
            log->audit_sink(log->audit_sink_arg, lines, nlines);
        pthread_mutex_unlock(&log->audit_lock);
        for (size_t k = 0; k < nlines; k++)
            free((char *)lines[k].line);
    }
    free(lines);
    if (sth_made) {
        if (publish_sth(log, &sth) != 0)
            log_error("ctlog", "cannot publish an STH: out of memory");
        log->next_sth_ms = ctlog_mono_ms() + (uint64_t)log->sth_interval_ms;
    }
    metric_observe(batch_metric(), (double)n);
    metric_observe(commit_metric(), took);
    log_debug("ctlog", "committed %zu submission(s) in %.2f ms%s", n, took * 1000.0,
              sth_made ? " with an STH" : "");
    /* The checkpoint SQLite would have run inside that COMMIT, now that it is answered (the
     * next batch gathers meanwhile). */
    double c0 = metrics_now();
    int ck = ctlog_db_checkpoint_if(log->wdb, CHECKPOINT_FRAMES);
    if (ck < 0)
        log_error("ctlog", "WAL checkpoint failed: %s", ctlog_db_error(log->wdb));
    else if (ck > 0)
        log_debug("ctlog", "WAL checkpoint in %.2f ms", (metrics_now() - c0) * 1000.0);
}

static void wait_until(ct_log *log, uint64_t deadline_ms)
{
    struct timespec ts = {(time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000L};
    pthread_cond_timedwait(&log->q_cond, &log->q_lock, &ts);
}

/* Group commit: whenever the writer is free and submissions are queued, it takes all of them (at
 * most MAX_BATCH) and commits them in one transaction. While that transaction is made durable
 * (the fsync), new submissions queue up and form the next batch, so batches grow with the load.
 * batch_ms > 0 adds a window under load: a batch whose first submission came less than batch_ms
 * after the previous commit ended (or during it) waits until batch_ms after that submission, so
 * more submissions share one fsync (each costs about as much CPU as a signature on a virtual
 * disk). A submission to an idle log is committed at once. With announced submissions
 * (ct_log_expect), once none is outstanding the batch waits only the share of the window that
 * the process's load asks for (cpu_load_window_share): none while cores are idle (an fsync more
 * costs nothing then, and the batch's requests are answered sooner), all of it when they are
 * busy (requests still unread in their sockets are never announced), graded between. */
static void *writer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ctlog-writer");
    ct_log *log = arg;
    ctlog_sth cur;
    pthread_mutex_lock(&log->q_lock);
    for (;;) {
        if (log->q_head) {
            if (log->batch_ms > 0 && !log->stopping && log->q_len < MAX_BATCH &&
                log->q_first_ms < log->last_commit_ms + (uint64_t)log->batch_ms) {
                uint64_t wait_ms = (uint64_t)log->batch_ms;
                if (log->expect_used && log->expected == 0)
                    wait_ms = (uint64_t)(log->batch_ms * cpu_load_window_share());
                uint64_t deadline = log->q_first_ms + wait_ms;
                if (ctlog_mono_ms() < deadline) {
                    log->waiting_until_ms = deadline;
                    wait_until(log, deadline);
                    log->waiting_until_ms = 0;
                    continue;
                }
            }
            struct ctlog_pending *batch = log->q_head, *last = batch;
            size_t n = 1;
            while (last->next && n < MAX_BATCH) {
                last = last->next;
                n++;
            }
            log->q_head = last->next;
            last->next = NULL;
            if (!log->q_head)
                log->q_tail = NULL;
            else
                log->q_first_ms = ctlog_mono_ms();
            log->q_len -= n;
            pthread_mutex_unlock(&log->q_lock);
            run_batch(log, batch, n);
            pthread_mutex_lock(&log->q_lock);
            log->last_commit_ms = ctlog_mono_ms();
            continue;
        }
        /* Nothing queued: an STH covering what was committed since the last one, when due. */
        ctlog_current_sth(log, &cur);
        int behind = log->frontier.size > cur.tree_size;
        if (behind && (ctlog_mono_ms() >= log->next_sth_ms || log->stopping)) {
            pthread_mutex_unlock(&log->q_lock);
            char why[512] = "";
            if (sign_sth(log, why, sizeof why) != 0) {
                log_error("ctlog", "cannot sign an STH: %s", why);
                log->next_sth_ms = ctlog_mono_ms() + (uint64_t)log->sth_interval_ms;
                pthread_mutex_lock(&log->q_lock);
                if (log->stopping && !log->q_head)
                    break;
            } else {
                pthread_mutex_lock(&log->q_lock);
            }
            continue;
        }
        if (log->stopping)
            break;
        if (behind)
            wait_until(log, log->next_sth_ms);
        else
            pthread_cond_wait(&log->q_cond, &log->q_lock);
    }
    pthread_mutex_unlock(&log->q_lock);
    return NULL;
}

int ctlog_writer_start(ct_log *log, char *why, size_t whylen)
{
    uint64_t size = 0;
    if (ctlog_db_size(log->wdb, &size) != 0 ||
        merkle_frontier_load(&log->frontier, size, ctlog_db_node, log->wdb) != 0) {
        snprintf(why, whylen, "cannot load the tree from %s: %s", log->db_path,
                 ctlog_db_error(log->wdb));
        return -1;
    }
    ctlog_sth sth;
    int have = ctlog_db_latest_sth(log->wdb, &sth);
    if (have < 0) {
        snprintf(why, whylen, "cannot read the latest STH: %s", ctlog_db_error(log->wdb));
        return -1;
    }
    if (have) {
        unsigned char root[32], input[50];
        if (sth.tree_size > size ||
            merkle_root(ctlog_db_node, log->wdb, sth.tree_size, root) != 0 ||
            memcmp(root, sth.root, 32) != 0) {
            snprintf(why, whylen, "the stored tree does not match the latest STH (size %" PRIu64
                                  "): the log database is damaged",
                     sth.tree_size);
            return -1;
        }
        ctlog_sth_input(sth.timestamp, sth.tree_size, sth.root, input);
        if (!ctlog_ds_verify(ctlog_key_public(log->key), input, sizeof input, sth.sig,
                             sth.sig_len)) {
            snprintf(why, whylen, "the latest STH's signature does not verify with the log key");
            return -1;
        }
        if (publish_sth(log, &sth) != 0) {
            snprintf(why, whylen, "out of memory");
            return -1;
        }
    }
    if (!have || sth.tree_size < size) {
        if (sign_sth(log, why, whylen) != 0)
            return -1;
    }
    log->next_sth_ms = 0;
    if (pthread_create(&log->thread, NULL, writer_main, log) != 0) {
        snprintf(why, whylen, "cannot start the log's writer thread");
        return -1;
    }
    pthread_mutex_lock(&log->q_lock);
    log->thread_started = 1;
    pthread_mutex_unlock(&log->q_lock);
    return 0;
}

void ctlog_writer_stop(ct_log *log)
{
    pthread_mutex_lock(&log->q_lock);
    int started = log->thread_started;
    log->stopping = 1;
    pthread_cond_signal(&log->q_cond);
    pthread_mutex_unlock(&log->q_lock);
    if (started)
        pthread_join(log->thread, NULL);
}
