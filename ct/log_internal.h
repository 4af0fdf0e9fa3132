/*
 * ct/log_internal.h: the ct_log structure shared by ct_log.c (open, close, add), log_writer.c
 * (group commit, STH signing) and log_http.c (the RFC 6962 endpoints). Not a public contract.
 */
#ifndef FULCRUM_CT_LOG_INTERNAL_H
#define FULCRUM_CT_LOG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "ct/ct_log.h"
#include "ct/log_key.h"
#include "ct/log_store.h"
#include "ct/merkle.h"

struct ctlog_pending; /* a queued submission (log_writer.c) */

struct ct_log {
    char dir[4096];     /* <state_dir>/ctlog */
    char db_path[4200]; /* <dir>/log.db */
    ctlog_key *key;
    STACK_OF(X509) *roots;
    X509_STORE *store;
    char *roots_json;   /* get-roots answer */
    int batch_ms, sth_interval_ms, max_get_entries;

    /* Reader connections, one per concurrent reader. */
    pthread_mutex_t pool_lock;
    ctlog_db **pool;
    size_t npool, pool_cap;

    /* Parsed issuer certificates of recent add-chain bodies (chain[1..] repeats on every
     * request; OpenSSL 3.0's d2i_X509 costs ~100 us), keyed by SHA-256 of the DER. */
    pthread_mutex_t cache_lock;
    struct ctlog_cached_cert {
        unsigned char hash[32];
        X509 *cert;
    } cache[16];
    unsigned cache_next;

    /* The latest published STH. */
    pthread_mutex_t sth_lock;
    ctlog_sth sth;
    char *sth_json;

    /* Writer (log_writer.c). The queue is guarded by q_lock; the rest is the writer's. */
    ctlog_db *wdb;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t q_lock;
    pthread_cond_t q_cond;
    struct ctlog_pending *q_head, *q_tail;
    size_t q_len;
    uint64_t q_first_ms; /* monotonic ms when the queue last became non-empty */
    uint64_t last_commit_ms; /* monotonic ms when the writer last finished a batch */
    long expected;           /* announced submissions not yet made (ct_log_expect) */
    int expect_used;         /* ct_log_expect was called: windows end when expected is 0 */
    uint64_t waiting_until_ms; /* the writer waits for a window until then (0: it does not) */
    int stopping;
    merkle_frontier frontier;
    uint64_t next_sth_ms; /* monotonic ms before which no new STH is signed */

    /* Audit records carried by the log (ct_log_set_audit_sink), guarded by audit_lock (the
     * writer holds it while it calls them); audit_deleted is the writer's: 1 + the last index
     * deleted from audit_pending. */
    pthread_mutex_t audit_lock;
    ct_audit_sink audit_sink;
    ct_audit_synced audit_synced;
    void *audit_sink_arg;
    uint64_t audit_deleted;
};

/* Reader connections (ct_log.c). get returns NULL when none can be opened. */
ctlog_db *ctlog_reader_get(ct_log *log);
void ctlog_reader_put(ct_log *log, ctlog_db *db);

/* The published STH (copied under the lock) and its get-sth JSON (malloc'd copy). */
void ctlog_current_sth(ct_log *log, ctlog_sth *out);
char *ctlog_current_sth_json(ct_log *log);

/* log_writer.c. start: loads the frontier from wdb, checks the latest STH against the stored
 * tree, signs one when none covers the stored entries, starts the thread. */
int ctlog_writer_start(ct_log *log, char *why, size_t whylen);
/* Commits what is queued, signs a last STH, joins the thread. */
void ctlog_writer_stop(ct_log *log);

/* Queues an entry (copies everything). cb runs once on base. Returns 0, or -1 (out of
 * memory, or the log is stopping) with a reason; nothing then runs. index_dedup: as
 * ctlog_db_insert_entry's (0 for the CA's own precertificates). */
int ctlog_writer_submit(ct_log *log, const unsigned char *leaf, size_t leaf_len,
                        const unsigned char *extra, size_t extra_len,
                        const unsigned char leaf_hash[32], const unsigned char dedup[32],
                        int index_dedup, const unsigned char *sct, size_t sct_len,
                        char *audit, size_t audit_len, struct event_base *base,
                        ct_log_add_cb cb, void *arg, char *why, size_t whylen);

/* Answers cb on base later (never inline) with this SCT (err NULL) or this error. Returns 0 or
 * -1 (out of memory). */
int ctlog_answer_later(struct event_base *base, ct_log_add_cb cb, void *arg,
                       const unsigned char *sct, size_t sct_len, const char *err,
                       int client_error);

/* Monotonic milliseconds. */
uint64_t ctlog_mono_ms(void);

#endif
