/*
 * ct/ct_log.c: opening and closing a log, submissions (check, timestamp, sign, queue), reader
 * connections, and the accessors of ct/ct_log.h.
 */
#include "ct/ct_log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/base64.h"
#include "common/log.h"
#include "ct/chain_check.h"
#include "ct/log_internal.h"
#include "ct/sct.h"

#define LOG_ID_META "log_id"

static int mkdir_p(const char *path, char *why, size_t whylen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
            snprintf(why, whylen, "cannot create %s: %s", tmp, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
        snprintf(why, whylen, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    return 0;
}

static char *roots_json(STACK_OF(X509) *roots)
{
    ctlog_buf b = {0};
    ctlog_buf_put(&b, "{\"certificates\":[", 17);
    for (int i = 0; i < sk_X509_num(roots); i++) {
        unsigned char *der = NULL;
        int n = i2d_X509(sk_X509_value(roots, i), &der);
        char *s = n > 0 ? b64_encode(der, (size_t)n) : NULL;
        OPENSSL_free(der);
        if (!s) {
            ctlog_buf_free(&b);
            return NULL;
        }
        if (i)
            ctlog_buf_put(&b, ",", 1);
        ctlog_buf_put(&b, "\"", 1);
        ctlog_buf_put(&b, s, strlen(s));
        ctlog_buf_put(&b, "\"", 1);
        free(s);
    }
    ctlog_buf_put(&b, "]}", 3); /* with the NUL */
    if (b.oom) {
        ctlog_buf_free(&b);
        return NULL;
    }
    return (char *)b.p;
}

/* The database remembers the log ID it was created for; another key is refused. */
static int check_log_id(ct_log *log, char *why, size_t whylen)
{
    unsigned char *val = NULL;
    size_t len = 0;
    int r = ctlog_db_meta_get(log->wdb, LOG_ID_META, &val, &len);
    const unsigned char *id = ctlog_key_id(log->key);
    if (r < 0) {
        snprintf(why, whylen, "cannot read %s: %s", log->db_path, ctlog_db_error(log->wdb));
        return -1;
    }
    if (r == 1) {
        int same = len == 32 && memcmp(val, id, 32) == 0;
        char *want = b64_encode(val, len), *have = b64_encode(id, 32);
        if (!same)
            snprintf(why, whylen, "the log database %s belongs to log ID %s, but the log key has "
                                  "log ID %s", log->db_path, want ? want : "?",
                     have ? have : "?");
        free(want);
        free(have);
        free(val);
        return same ? 0 : -1;
    }
    if (ctlog_db_meta_put(log->wdb, LOG_ID_META, id, 32) != 0) {
        snprintf(why, whylen, "cannot write %s: %s", log->db_path, ctlog_db_error(log->wdb));
        return -1;
    }
    return 0;
}

ct_log *ct_log_open(const ct_log_options *o, char *why, size_t whylen)
{
    if (!o || !o->state_dir || !*o->state_dir) {
        snprintf(why, whylen, "the log needs a state directory");
        return NULL;
    }
    if (!o->roots || sk_X509_num(o->roots) == 0) {
        snprintf(why, whylen, "the log needs at least one accepted root");
        return NULL;
    }
    ct_log *log = calloc(1, sizeof *log);
    if (!log) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&log->pool_lock, NULL);
    pthread_mutex_init(&log->sth_lock, NULL);
    pthread_mutex_init(&log->cache_lock, NULL);
    pthread_mutex_init(&log->q_lock, NULL);
    pthread_mutex_init(&log->audit_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&log->q_cond, &ca);
    pthread_condattr_destroy(&ca);
    log->batch_ms = o->batch_ms > 0 ? o->batch_ms : 0; /* 0: no window (log_writer.c) */
    log->sth_interval_ms = o->sth_interval_ms > 0 ? o->sth_interval_ms : 250;
    log->max_get_entries = o->max_get_entries > 0 ? o->max_get_entries : 1000;

    int n = snprintf(log->dir, sizeof log->dir, "%s/ctlog", o->state_dir);
    if (n < 0 || (size_t)n >= sizeof log->dir) {
        snprintf(why, whylen, "the state directory path is too long");
        goto fail;
    }
    snprintf(log->db_path, sizeof log->db_path, "%s/log.db", log->dir);
    if (mkdir_p(log->dir, why, whylen) != 0)
        goto fail;
    log->key = ctlog_key_open(log->dir, o->key_signer, o->key_path, o->key_passwd_file, why,
                              whylen);
    if (!log->key)
        goto fail;

    log->roots = sk_X509_new_null();
    log->store = X509_STORE_new();
    if (!log->roots || !log->store) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < sk_X509_num(o->roots); i++) {
        X509 *r = sk_X509_value(o->roots, i);
        if (!X509_add_cert(log->roots, r, X509_ADD_FLAG_UP_REF) ||
            !X509_STORE_add_cert(log->store, r)) {
            snprintf(why, whylen, "cannot add accepted root %d", i + 1);
            goto fail;
        }
    }
    log->roots_json = roots_json(log->roots);
    if (!log->roots_json) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    log->wdb = ctlog_db_open(log->db_path, 1, why, whylen);
    if (!log->wdb || check_log_id(log, why, whylen) != 0 ||
        ctlog_key_write_public(log->key, log->dir, why, whylen) != 0)
        goto fail;
    if (ctlog_writer_start(log, why, whylen) != 0)
        goto fail;
    char *id = b64_encode(ctlog_key_id(log->key), 32);
    log_info("ctlog", "log %s open: log ID %s, tree size %llu, %d accepted root(s)",
             log->db_path, id ? id : "?", ct_log_tree_size(log), sk_X509_num(log->roots));
    free(id);
    return log;
fail:
    ct_log_close(log);
    return NULL;
}

void ct_log_close(ct_log *log)
{
    if (!log)
        return;
    ctlog_writer_stop(log);
    ctlog_db_close(log->wdb);
    for (size_t i = 0; i < log->npool; i++)
        ctlog_db_close(log->pool[i]);
    free(log->pool);
    free(log->sth_json);
    free(log->roots_json);
    X509_STORE_free(log->store);
    sk_X509_pop_free(log->roots, X509_free);
    ctlog_key_free(log->key);
    pthread_cond_destroy(&log->q_cond);
    pthread_mutex_destroy(&log->q_lock);
    pthread_mutex_destroy(&log->audit_lock);
    for (size_t i = 0; i < sizeof log->cache / sizeof log->cache[0]; i++)
        X509_free(log->cache[i].cert);
    pthread_mutex_destroy(&log->cache_lock);
    pthread_mutex_destroy(&log->sth_lock);
    pthread_mutex_destroy(&log->pool_lock);
    free(log);
}

EVP_PKEY *ct_log_public_key(const ct_log *log) { return ctlog_key_public(log->key); }

const unsigned char *ct_log_id(const ct_log *log) { return ctlog_key_id(log->key); }

unsigned long long ct_log_tree_size(const ct_log *log)
{
    ctlog_sth s;
    ctlog_current_sth((ct_log *)log, &s);
    return (unsigned long long)s.tree_size;
}

void ctlog_current_sth(ct_log *log, ctlog_sth *out)
{
    pthread_mutex_lock(&log->sth_lock);
    *out = log->sth;
    pthread_mutex_unlock(&log->sth_lock);
}

char *ctlog_current_sth_json(ct_log *log)
{
    pthread_mutex_lock(&log->sth_lock);
    char *s = log->sth_json ? strdup(log->sth_json) : NULL;
    pthread_mutex_unlock(&log->sth_lock);
    return s;
}

ctlog_db *ctlog_reader_get(ct_log *log)
{
    ctlog_db *db = NULL;
    pthread_mutex_lock(&log->pool_lock);
    if (log->npool)
        db = log->pool[--log->npool];
    pthread_mutex_unlock(&log->pool_lock);
    if (db)
        return db;
    char why[512];
    db = ctlog_db_open(log->db_path, 0, why, sizeof why);
    if (!db)
        log_error("ctlog", "%s", why);
    return db;
}

void ctlog_reader_put(ct_log *log, ctlog_db *db)
{
    if (!db)
        return;
    pthread_mutex_lock(&log->pool_lock);
    if (log->npool == log->pool_cap) {
        size_t cap = log->pool_cap ? log->pool_cap * 2 : 8;
        ctlog_db **p = realloc(log->pool, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&log->pool_lock);
            ctlog_db_close(db);
            return;
        }
        log->pool = p;
        log->pool_cap = cap;
    }
    log->pool[log->npool++] = db;
    pthread_mutex_unlock(&log->pool_lock);
}

/* A resubmission already in the database: its original SCT (1), none (0), error (-1). */
static int find_existing(ct_log *log, const unsigned char dedup[32], unsigned char **sct,
                         size_t *len)
{
    ctlog_db *db = ctlog_reader_get(log);
    if (!db)
        return -1;
    int r = ctlog_db_find_dedup(db, dedup, sct, len);
    ctlog_reader_put(log, db);
    return r;
}

static int add(ct_log *log, unsigned flags, STACK_OF(X509) *chain, struct event_base *base,
               ct_log_add_cb cb, void *arg, unsigned char **early, size_t *early_len,
               unsigned char *early_hash, ct_audit_render render, void *render_arg, char *why,
               size_t whylen)
{
    ctlog_entry e;
    if (ctlog_chain_check_ex(log->store, flags, chain, &e, why, whylen) != 0)
        return -1;

    char err[512] = "";
    unsigned char *old = NULL, *leaf = NULL, *sct = NULL;
    size_t old_len = 0, leaf_len = 0, sct_len = 0;
    int rc = -1;
    /* A resubmission is answered from the database without signing. Not for the CA's own
     * precertificates: each is new (fresh serial), and the read would run on the submitting
     * worker's event loop for nothing; nor are they entered in the dedup index (the writer
     * deduplicates everything else, found < 0 too). */
    int own = (flags & CTLOG_CHECK_OWN) != 0;
    int found = own ? 0 : find_existing(log, e.dedup, &old, &old_len);
    if (found == 1) {
        rc = ctlog_answer_later(base, cb, arg, old, old_len, NULL, 0);
        goto done;
    }
    uint64_t ts = ctlog_now_ms();
    leaf = ctlog_leaf_input(ts, e.entry_type, e.signed_entry, e.signed_len, &leaf_len);
    unsigned char ds[CTLOG_DS_MAX], leaf_hash[32];
    size_t ds_len = 0;
    if (!leaf || merkle_leaf_hash(leaf, leaf_len, leaf_hash) != 0) {
        snprintf(err, sizeof err, "out of memory");
    } else if (ctlog_key_sign(log->key, leaf, leaf_len, 0, ds, &ds_len, err, sizeof err) == 0) {
        /* leaf_input and the SCT signature input are the same bytes (ct/sct.h) */
        sct = ctlog_sct_serialize(ctlog_key_id(log->key), ts, ds, ds_len, &sct_len);
        if (!sct)
            snprintf(err, sizeof err, "out of memory");
    }
    unsigned char *copy = sct && early ? malloc(sct_len) : NULL;
    if (copy)
        memcpy(copy, sct, sct_len);
    /* The certificate's audit line, made from the SCT: stored with the entry. */
    size_t audit_len = 0;
    char *audit = sct && render ? render(render_arg, sct, sct_len, &audit_len) : NULL;
    if (sct && render && !audit) {
        snprintf(err, sizeof err, "cannot make the certificate's audit record");
        free(sct);
        sct = NULL;
    }
    int queued = 0;
    if (sct && (!early || copy)) {
        queued = ctlog_writer_submit(log, leaf, leaf_len, e.extra_data, e.extra_len, leaf_hash,
                                     e.dedup, !own, sct, sct_len, audit, audit_len, base, cb,
                                     arg, err, sizeof err) == 0;
        audit = NULL; /* taken, queued or not */
    }
    free(audit);
    if (queued) {
        if (early) {
            *early = copy;
            *early_len = sct_len;
            memcpy(early_hash, leaf_hash, 32);
        }
        rc = 0;
        goto done;
    }
    free(copy);
    if (sct && early && !copy)
        snprintf(err, sizeof err, "out of memory");
    log_error("ctlog", "submission failed: %s", err);
    rc = ctlog_answer_later(base, cb, arg, NULL, 0, err, 0);
done:
    if (rc != 0)
        snprintf(why, whylen, "out of memory");
    free(old);
    free(leaf);
    free(sct);
    ctlog_entry_clear(&e);
    return rc;
}

int ct_log_add(ct_log *log, int precert, STACK_OF(X509) *chain, struct event_base *base,
               ct_log_add_cb cb, void *arg, char *why, size_t whylen)
{
    return add(log, precert ? CTLOG_CHECK_PRECERT : 0, chain, base, cb, arg, NULL, NULL, NULL,
               NULL, NULL, why, whylen);
}

int ct_log_add_own_precert(ct_log *log, STACK_OF(X509) *chain, struct event_base *base,
                           ct_log_add_cb cb, void *arg, char *why, size_t whylen)
{
    return add(log, CTLOG_CHECK_PRECERT | CTLOG_CHECK_OWN, chain, base, cb, arg, NULL, NULL, NULL,
               NULL, NULL, why, whylen);
}

int ct_log_add_own_precert_sct(ct_log *log, STACK_OF(X509) *chain, struct event_base *base,
                               ct_log_add_cb cb, void *arg, unsigned char **sct, size_t *sct_len,
                               unsigned char leaf_hash[32], char *why, size_t whylen)
{
    *sct = NULL;
    *sct_len = 0;
    return add(log, CTLOG_CHECK_PRECERT | CTLOG_CHECK_OWN, chain, base, cb, arg, sct, sct_len,
               leaf_hash, NULL, NULL, why, whylen);
}

int ct_log_add_own_precert_audit(ct_log *log, STACK_OF(X509) *chain, struct event_base *base,
                                 ct_log_add_cb cb, void *arg, ct_audit_render render,
                                 void *render_arg, unsigned char **sct, size_t *sct_len,
                                 unsigned char leaf_hash[32], char *why, size_t whylen)
{
    *sct = NULL;
    *sct_len = 0;
    return add(log, CTLOG_CHECK_PRECERT | CTLOG_CHECK_OWN, chain, base, cb, arg, sct, sct_len,
               leaf_hash, render, render_arg, why, whylen);
}

void ct_log_set_audit_sink(ct_log *log, ct_audit_sink sink, ct_audit_synced synced, void *arg)
{
    pthread_mutex_lock(&log->audit_lock);
    log->audit_sink = sink;
    log->audit_synced = synced;
    log->audit_sink_arg = arg;
    pthread_mutex_unlock(&log->audit_lock);
}

struct pending_ctx {
    int (*fn)(void *ctx, uint64_t idx, const char *line, size_t len);
    void *ctx;
};

static int pending_row(void *arg, uint64_t idx, const void *line, size_t len)
{
    struct pending_ctx *p = arg;
    return p->fn(p->ctx, idx, line, len);
}

int ct_log_audit_pending(ct_log *log,
                         int (*fn)(void *ctx, uint64_t idx, const char *line, size_t len),
                         void *ctx)
{
    ctlog_db *db = ctlog_reader_get(log);
    if (!db)
        return -1;
    struct pending_ctx p = {fn, ctx};
    int rc = ctlog_db_audit_pending(db, pending_row, &p);
    ctlog_reader_put(log, db);
    return rc;
}

int ct_log_key_in_process(const ct_log *log)
{
    return log && ctlog_key_in_process(log->key);
}
