/*
 * ct/log_store.h: the log's SQLite database (WAL, synchronous=FULL: a COMMIT is on disk when
 * it returns).
 *
 * Tables (schema 2 and 3): entries (idx, leaf_input, extra_data, leaf_hash, dedup, sct), nodes
 * (level, idx, hash: complete subtree hashes of the levels that are multiples of the log's node
 * stride, meta 'node_stride': 4 in a new log, which is schema 3; 1, every level >= 1, in a
 * schema 2 log; level 0 is entries.leaf_hash), sths
 * (tree_size, timestamp, root_hash, signature: every STH signed), meta (key, value: schema
 * version, log ID). The lookups by leaf hash and by dedup key go through the index database
 * beside it (ct/log_index.h), written in the same transactions but not synced; a schema 1
 * database (which held those indexes itself) is moved to schema 2 when the writer opens it.
 *
 * One connection = one ctlog_db with its prepared statements; a connection is used by one
 * thread at a time (the writer owns one, readers take one from the log's pool).
 */
#ifndef FULCRUM_CT_LOG_STORE_H
#define FULCRUM_CT_LOG_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ct/sct.h"

typedef struct ctlog_db ctlog_db;

typedef struct ctlog_sth {
    uint64_t tree_size;
    uint64_t timestamp;
    unsigned char root[32];
    unsigned char sig[CTLOG_DS_MAX]; /* DigitallySigned */
    size_t sig_len;
} ctlog_sth;

/* writer = 1 creates the schema and sets WAL. Returns NULL with a reason. */
ctlog_db *ctlog_db_open(const char *path, int writer, char *why, size_t whylen);
void ctlog_db_close(ctlog_db *db);
/* The last SQLite error message of this connection. */
const char *ctlog_db_error(ctlog_db *db);

/* A writer connection does not checkpoint inside COMMIT (SQLite's automatic checkpoint would
 * copy the WAL into the database and fsync it before COMMIT returns, delaying every answer of
 * that batch): the log's writer calls this after it has answered a batch. It runs a PASSIVE
 * checkpoint when the WAL holds at least min_frames frames (SQLite's default is 1000) and
 * returns 1, else 0; -1 on error. */
int ctlog_db_checkpoint_if(ctlog_db *db, int min_frames);

/* Transactions: write = 1 takes the write lock at once (BEGIN IMMEDIATE). 0 or -1. */
int ctlog_db_begin(ctlog_db *db, int write);
int ctlog_db_commit(ctlog_db *db);
void ctlog_db_rollback(ctlog_db *db);

/* A merkle_node_fn over this connection (ctx = the ctlog_db). A node of a level that is not
 * stored is hashed from its children: with stride 4 a node costs at most 8 reads (a level-3 node
 * from its 8 leaf hashes), an audit path about 4 times the reads of a fully stored tree, while
 * each entry adds 1/15 of a stored node instead of 1 (about 9 us of the writer's CPU per entry,
 * most of it the index pages of five or so levels dirtied by every commit). */
int ctlog_db_node(void *db, unsigned level, uint64_t index, unsigned char out[32]);
/* A merkle_emit_fn storing a node (ctx = the ctlog_db); nodes of levels not stored are
 * skipped. */
int ctlog_db_insert_node(void *db, unsigned level, uint64_t index, const unsigned char h[32]);

/* Number of entries (max idx + 1). 0 or -1. */
int ctlog_db_size(ctlog_db *db, uint64_t *n);

/* Latest STH (largest tree_size): 1 found, 0 none, -1 error. */
int ctlog_db_latest_sth(ctlog_db *db, ctlog_sth *out);
int ctlog_db_insert_sth(ctlog_db *db, const ctlog_sth *sth);

/* Calls fn for entries start..end (inclusive) in order; stops early if fn returns non-zero.
 * Returns 0 or -1. */
typedef int (*ctlog_row_fn)(void *ctx, uint64_t idx, const unsigned char *leaf, size_t leaf_len,
                            const unsigned char *extra, size_t extra_len);
int ctlog_db_entries(ctlog_db *db, uint64_t start, uint64_t end, ctlog_row_fn fn, void *ctx);

/* Smallest index < below whose leaf hash is `hash`: 1 found, 0 none, -1 error. */
int ctlog_db_find_leaf(ctlog_db *db, const unsigned char hash[32], uint64_t below,
                       uint64_t *idx);

/* The SCT stored for a dedup key (malloc'd copy): 1 found, 0 none, -1 error. */
int ctlog_db_find_dedup(ctlog_db *db, const unsigned char key[32], unsigned char **sct,
                        size_t *len);

/* Inserts an entry and indexes it: 0 inserted, 1 the dedup key is already there (in an earlier
 * entry or earlier in this transaction; nothing inserted), -1 error. With index_dedup 0 the
 * entry still stores its dedup key but is neither looked up nor entered in the dedup index
 * (the CA's own precertificates: each is new, and the index's random page per entry is the
 * largest cost of a commit); it is indexed like any other if the index is ever rebuilt. */
int ctlog_db_insert_entry(ctlog_db *db, uint64_t idx, const unsigned char *leaf, size_t leaf_len,
                          const unsigned char *extra, size_t extra_len,
                          const unsigned char leaf_hash[32], const unsigned char dedup[32],
                          int index_dedup, const unsigned char *sct, size_t sct_len);

/* Records in the index that it covers the first n entries (the writer, in each transaction
 * that adds entries). 0 or -1. */
int ctlog_db_set_indexed(ctlog_db *db, uint64_t n);

/* meta: 1 found (value malloc'd), 0 none, -1 error; put: 0 or -1. */
int ctlog_db_meta_get(ctlog_db *db, const char *key, unsigned char **val, size_t *len);
int ctlog_db_meta_put(ctlog_db *db, const char *key, const unsigned char *val, size_t len);

/* Audit records carried by the log's transactions (ct_log_set_audit_sink): insert one with its
 * entry, delete those up to an index once the audit file has them, and read what is left (in
 * index order; fn returns non-zero to stop). 0 or -1. */
int ctlog_db_insert_audit(ctlog_db *db, uint64_t idx, const char *line, size_t len);
int ctlog_db_delete_audit(ctlog_db *db, uint64_t upto);
typedef int (*ctlog_audit_row_fn)(void *ctx, uint64_t idx, const void *line, size_t len);
int ctlog_db_audit_pending(ctlog_db *db, ctlog_audit_row_fn fn, void *ctx);

#endif
