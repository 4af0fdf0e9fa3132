#include "ct/log_store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum stmt_id {
    S_BEGIN_READ, S_BEGIN_WRITE, S_COMMIT, S_ROLLBACK,
    S_LEAF_HASH, S_NODE, S_INSERT_NODE, S_SIZE, S_LATEST_STH, S_INSERT_STH,
    S_ENTRIES, S_FIND_LEAF, S_FIND_DEDUP, S_INSERT_ENTRY, S_META_GET, S_META_PUT,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN_READ] = "BEGIN",
    [S_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_LEAF_HASH] = "SELECT leaf_hash FROM entries WHERE idx = ?1",
    [S_NODE] = "SELECT hash FROM nodes WHERE level = ?1 AND idx = ?2",
    [S_INSERT_NODE] = "INSERT INTO nodes(level, idx, hash) VALUES(?1, ?2, ?3)",
    [S_SIZE] = "SELECT COALESCE(MAX(idx) + 1, 0) FROM entries",
    [S_LATEST_STH] = "SELECT tree_size, timestamp, root_hash, signature FROM sths "
                     "ORDER BY tree_size DESC LIMIT 1",
    [S_INSERT_STH] = "INSERT OR REPLACE INTO sths(tree_size, timestamp, root_hash, signature) "
                     "VALUES(?1, ?2, ?3, ?4)",
    [S_ENTRIES] = "SELECT idx, leaf_input, extra_data FROM entries WHERE idx BETWEEN ?1 AND ?2 "
                  "ORDER BY idx",
    [S_FIND_LEAF] = "SELECT MIN(idx) FROM entries WHERE leaf_hash = ?1 AND idx < ?2",
    [S_FIND_DEDUP] = "SELECT sct FROM entries WHERE dedup = ?1",
    [S_INSERT_ENTRY] = "INSERT INTO entries(idx, leaf_input, extra_data, leaf_hash, dedup, sct) "
                       "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(dedup) DO NOTHING",
    [S_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [S_META_PUT] = "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS entries("
    "  idx INTEGER PRIMARY KEY, leaf_input BLOB NOT NULL, extra_data BLOB NOT NULL,"
    "  leaf_hash BLOB NOT NULL, dedup BLOB NOT NULL UNIQUE, sct BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS entries_by_leaf_hash ON entries(leaf_hash);"
    "CREATE TABLE IF NOT EXISTS nodes("
    "  level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,"
    "  PRIMARY KEY(level, idx)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS sths("
    "  tree_size INTEGER PRIMARY KEY, timestamp INTEGER NOT NULL, root_hash BLOB NOT NULL,"
    "  signature BLOB NOT NULL);"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', x'01');";

struct ctlog_db {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    int wal_frames; /* writer: frames in the WAL after the last commit (wal_hook) */
};

/* Replaces SQLite's automatic checkpoint (which is itself a WAL hook): only counts. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    ((ctlog_db *)arg)->wal_frames = frames;
    return SQLITE_OK;
}

int ctlog_db_checkpoint_if(ctlog_db *d, int min_frames)
{
    if (d->wal_frames < min_frames)
        return 0;
    int log_frames = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(d->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                       &done);
    d->wal_frames = 0; /* the next commit's hook says how many remain */
    return rc == SQLITE_OK ? 1 : -1;
}

const char *ctlog_db_error(ctlog_db *db) { return db && db->db ? sqlite3_errmsg(db->db) : "?"; }

ctlog_db *ctlog_db_open(const char *path, int writer, char *why, size_t whylen)
{
    ctlog_db *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &d->db, flags, NULL) != SQLITE_OK) {
        snprintf(why, whylen, "cannot open the log database %s: %s", path,
                 d->db ? sqlite3_errmsg(d->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(d->db, 10000);
    const char *pragmas = writer ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                 : "PRAGMA synchronous=FULL; PRAGMA query_only=1;";
    char *err = NULL;
    if (sqlite3_exec(d->db, pragmas, NULL, NULL, &err) != SQLITE_OK ||
        (writer && sqlite3_exec(d->db, schema, NULL, NULL, &err) != SQLITE_OK)) {
        snprintf(why, whylen, "cannot set up the log database %s: %s", path,
                 err ? err : sqlite3_errmsg(d->db));
        sqlite3_free(err);
        goto fail;
    }
    if (writer)
        sqlite3_wal_hook(d->db, wal_hook, d);
    for (int i = 0; i < S_COUNT; i++) {
        if (!writer && (i == S_INSERT_NODE || i == S_INSERT_STH || i == S_INSERT_ENTRY ||
                        i == S_META_PUT || i == S_BEGIN_WRITE))
            continue;
        if (sqlite3_prepare_v3(d->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &d->st[i],
                               NULL) != SQLITE_OK) {
            snprintf(why, whylen, "cannot prepare a statement on %s: %s", path,
                     sqlite3_errmsg(d->db));
            goto fail;
        }
    }
    return d;
fail:
    ctlog_db_close(d);
    return NULL;
}

void ctlog_db_close(ctlog_db *d)
{
    if (!d)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(d->st[i]);
    sqlite3_close(d->db);
    free(d);
}

/* Runs a statement without results. */
static int exec_stmt(ctlog_db *d, enum stmt_id id)
{
    sqlite3_stmt *s = d->st[id];
    if (!s)
        return -1;
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

int ctlog_db_begin(ctlog_db *d, int write)
{
    return exec_stmt(d, write ? S_BEGIN_WRITE : S_BEGIN_READ);
}

int ctlog_db_commit(ctlog_db *d) { return exec_stmt(d, S_COMMIT); }

void ctlog_db_rollback(ctlog_db *d)
{
    if (!sqlite3_get_autocommit(d->db))
        exec_stmt(d, S_ROLLBACK);
}

/* Steps s expecting one row with a 32-byte blob in column col: 0, or -1. */
static int one_hash(sqlite3_stmt *s, int col, unsigned char out[32])
{
    int rc = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_bytes(s, col) == 32 ? 0 : -1;
    if (rc == 0)
        memcpy(out, sqlite3_column_blob(s, col), 32);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc;
}

int ctlog_db_node(void *ctx, unsigned level, uint64_t index, unsigned char out[32])
{
    ctlog_db *d = ctx;
    sqlite3_stmt *s;
    if (level == 0) {
        s = d->st[S_LEAF_HASH];
        sqlite3_bind_int64(s, 1, (sqlite3_int64)index);
    } else {
        s = d->st[S_NODE];
        sqlite3_bind_int(s, 1, (int)level);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)index);
    }
    return one_hash(s, 0, out);
}

int ctlog_db_insert_node(void *ctx, unsigned level, uint64_t index, const unsigned char h[32])
{
    ctlog_db *d = ctx;
    sqlite3_stmt *s = d->st[S_INSERT_NODE];
    sqlite3_bind_int(s, 1, (int)level);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)index);
    sqlite3_bind_blob(s, 3, h, 32, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

int ctlog_db_size(ctlog_db *d, uint64_t *n)
{
    sqlite3_stmt *s = d->st[S_SIZE];
    int rc = sqlite3_step(s) == SQLITE_ROW ? 0 : -1;
    if (rc == 0)
        *n = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return rc;
}

int ctlog_db_latest_sth(ctlog_db *d, ctlog_sth *out)
{
    sqlite3_stmt *s = d->st[S_LATEST_STH];
    int rc = sqlite3_step(s);
    int ret;
    if (rc == SQLITE_DONE) {
        ret = 0;
    } else if (rc == SQLITE_ROW && sqlite3_column_bytes(s, 2) == 32 &&
               sqlite3_column_bytes(s, 3) > 0 &&
               (size_t)sqlite3_column_bytes(s, 3) <= sizeof out->sig) {
        memset(out, 0, sizeof *out);
        out->tree_size = (uint64_t)sqlite3_column_int64(s, 0);
        out->timestamp = (uint64_t)sqlite3_column_int64(s, 1);
        memcpy(out->root, sqlite3_column_blob(s, 2), 32);
        out->sig_len = (size_t)sqlite3_column_bytes(s, 3);
        memcpy(out->sig, sqlite3_column_blob(s, 3), out->sig_len);
        ret = 1;
    } else {
        ret = -1;
    }
    sqlite3_reset(s);
    return ret;
}

int ctlog_db_insert_sth(ctlog_db *d, const ctlog_sth *sth)
{
    sqlite3_stmt *s = d->st[S_INSERT_STH];
    sqlite3_bind_int64(s, 1, (sqlite3_int64)sth->tree_size);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)sth->timestamp);
    sqlite3_bind_blob(s, 3, sth->root, 32, SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, sth->sig, (int)sth->sig_len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

int ctlog_db_entries(ctlog_db *d, uint64_t start, uint64_t end, ctlog_row_fn fn, void *ctx)
{
    sqlite3_stmt *s = d->st[S_ENTRIES];
    sqlite3_bind_int64(s, 1, (sqlite3_int64)start);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)end);
    int rc;
    uint64_t expect = start;
    int ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t idx = (uint64_t)sqlite3_column_int64(s, 0);
        if (idx != expect) { /* a hole: the store is damaged */
            ret = -1;
            break;
        }
        expect++;
        const unsigned char *leaf = sqlite3_column_blob(s, 1);
        size_t leaf_len = (size_t)sqlite3_column_bytes(s, 1);
        const unsigned char *extra = sqlite3_column_blob(s, 2);
        size_t extra_len = (size_t)sqlite3_column_bytes(s, 2);
        if (fn(ctx, idx, leaf, leaf_len, extra ? extra : (const unsigned char *)"", extra_len))
            break;
    }
    if (ret == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = -1;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return ret;
}

int ctlog_db_find_leaf(ctlog_db *d, const unsigned char hash[32], uint64_t below, uint64_t *idx)
{
    sqlite3_stmt *s = d->st[S_FIND_LEAF];
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)below);
    int rc = sqlite3_step(s), ret = -1;
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type(s, 0) == SQLITE_NULL) {
            ret = 0;
        } else {
            *idx = (uint64_t)sqlite3_column_int64(s, 0);
            ret = 1;
        }
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return ret;
}

static int blob_copy(sqlite3_stmt *s, int col, unsigned char **out, size_t *len)
{
    size_t n = (size_t)sqlite3_column_bytes(s, col);
    const void *p = sqlite3_column_blob(s, col);
    *out = malloc(n ? n : 1);
    if (!*out)
        return -1;
    if (n)
        memcpy(*out, p, n);
    *len = n;
    return 0;
}

int ctlog_db_find_dedup(ctlog_db *d, const unsigned char key[32], unsigned char **sct,
                        size_t *len)
{
    sqlite3_stmt *s = d->st[S_FIND_DEDUP];
    sqlite3_bind_blob(s, 1, key, 32, SQLITE_STATIC);
    int rc = sqlite3_step(s), ret;
    if (rc == SQLITE_ROW)
        ret = blob_copy(s, 0, sct, len) == 0 ? 1 : -1;
    else
        ret = rc == SQLITE_DONE ? 0 : -1;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return ret;
}

int ctlog_db_insert_entry(ctlog_db *d, uint64_t idx, const unsigned char *leaf, size_t leaf_len,
                          const unsigned char *extra, size_t extra_len,
                          const unsigned char leaf_hash[32], const unsigned char dedup[32],
                          const unsigned char *sct, size_t sct_len)
{
    sqlite3_stmt *s = d->st[S_INSERT_ENTRY];
    sqlite3_bind_int64(s, 1, (sqlite3_int64)idx);
    sqlite3_bind_blob(s, 2, leaf, (int)leaf_len, SQLITE_STATIC);
    sqlite3_bind_blob(s, 3, extra_len ? extra : (const void *)"", (int)extra_len, SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, leaf_hash, 32, SQLITE_STATIC);
    sqlite3_bind_blob(s, 5, dedup, 32, SQLITE_STATIC);
    sqlite3_bind_blob(s, 6, sct, (int)sct_len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int ret = rc == SQLITE_DONE ? (sqlite3_changes(d->db) == 1 ? 0 : 1) : -1;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return ret;
}

int ctlog_db_meta_get(ctlog_db *d, const char *key, unsigned char **val, size_t *len)
{
    sqlite3_stmt *s = d->st[S_META_GET];
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s), ret;
    if (rc == SQLITE_ROW)
        ret = blob_copy(s, 0, val, len) == 0 ? 1 : -1;
    else
        ret = rc == SQLITE_DONE ? 0 : -1;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return ret;
}

int ctlog_db_meta_put(ctlog_db *d, const char *key, const unsigned char *val, size_t len)
{
    sqlite3_stmt *s = d->st[S_META_PUT];
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, val, (int)len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : -1;
}
