#include "ct/log_store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ct/log_index.h"
#include "ct/merkle.h"
#include "ct/wal_write_vfs.h"

enum stmt_id {
    S_BEGIN_READ, S_BEGIN_WRITE, S_COMMIT, S_ROLLBACK,
    S_LEAF_HASH, S_NODE, S_INSERT_NODE, S_SIZE, S_LATEST_STH, S_INSERT_STH,
    S_ENTRIES, S_FIND_LEAF, S_FIND_DEDUP, S_INSERT_ENTRY, S_INDEX_DEDUP, S_INDEX_LEAF,
    S_INDEX_COVERED, S_META_GET, S_META_PUT, S_AUDIT_INSERT, S_AUDIT_DELETE, S_AUDIT_PENDING,
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
    [S_FIND_LEAF] = "SELECT MIN(idx) FROM ix.leaf WHERE leaf_hash = ?1 AND idx < ?2",
    /* A reader's snapshot of the index may be newer than its snapshot of the entries (they are
     * two databases): a key whose entry it cannot see yet is not found. */
    [S_FIND_DEDUP] = "SELECT e.sct FROM ix.dedup d JOIN main.entries e ON e.idx = d.idx "
                     "WHERE d.key = ?1",
    [S_INSERT_ENTRY] = "INSERT INTO entries(idx, leaf_input, extra_data, leaf_hash, dedup, sct) "
                       "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [S_INDEX_DEDUP] = "INSERT INTO ix.dedup(key, idx) VALUES(?1, ?2) ON CONFLICT(key) DO NOTHING",
    [S_INDEX_LEAF] = "INSERT INTO ix.leaf(leaf_hash, idx) VALUES(?1, ?2)",
    [S_INDEX_COVERED] = "INSERT OR REPLACE INTO ix.state(k, v) VALUES('covered', ?1)",
    [S_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [S_META_PUT] = "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
    [S_AUDIT_INSERT] = "INSERT INTO audit_pending(idx, line) VALUES(?1, ?2)",
    [S_AUDIT_DELETE] = "DELETE FROM audit_pending WHERE idx <= ?1",
    [S_AUDIT_PENDING] = "SELECT idx, line FROM audit_pending ORDER BY idx",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS entries("
    "  idx INTEGER PRIMARY KEY, leaf_input BLOB NOT NULL, extra_data BLOB NOT NULL,"
    "  leaf_hash BLOB NOT NULL, dedup BLOB NOT NULL, sct BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS nodes("
    "  level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,"
    "  PRIMARY KEY(level, idx)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS sths("
    "  tree_size INTEGER PRIMARY KEY, timestamp INTEGER NOT NULL, root_hash BLOB NOT NULL,"
    "  signature BLOB NOT NULL);"
    /* Audit records of the CA's own precertificates, durable with their entries until the
     * audit file has them (ct/ct_log.h, ct_log_set_audit_sink). Older Fulcrums ignore it. */
    "CREATE TABLE IF NOT EXISTS audit_pending(idx INTEGER PRIMARY KEY, line BLOB NOT NULL);"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', x'02');";

/* Schema 1 kept its indexes in the log's database (dedup UNIQUE, an index on leaf_hash): the
 * entries move to a table without them; the index database is then built from them. */
static const char migrate_v1[] =
    "CREATE TABLE entries_v2("
    "  idx INTEGER PRIMARY KEY, leaf_input BLOB NOT NULL, extra_data BLOB NOT NULL,"
    "  leaf_hash BLOB NOT NULL, dedup BLOB NOT NULL, sct BLOB NOT NULL);"
    "INSERT INTO entries_v2 SELECT idx, leaf_input, extra_data, leaf_hash, dedup, sct FROM entries;"
    "DROP TABLE entries;"
    "ALTER TABLE entries_v2 RENAME TO entries;"
    "UPDATE meta SET value = x'02' WHERE key = 'schema_version';";

/* Which tree levels the nodes table holds (meta 'node_stride', one byte): the multiples of this.
 * A new log stores every fourth level (4, 8, ...); the levels between are hashed from their
 * children when read (ct/log_store.h). A log made before it (no such key) stores every level.
 * A new log is schema 3 (the tables of schema 2; nodes as its stride says), so that a Fulcrum
 * that expects every level refuses it instead of failing its proofs. */
#define NODE_STRIDE_NEW 4

struct ctlog_db {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    int writer;
    unsigned node_stride;
    /* writer: frames in each WAL after the last commit (wal_hook) */
    int wal_frames, ix_wal_frames;
};

/* Replaces SQLite's automatic checkpoint (which is itself a WAL hook): only counts. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    ctlog_db *d = arg;
    if (strcmp(name, "main") == 0)
        d->wal_frames = frames;
    else
        d->ix_wal_frames = frames;
    return SQLITE_OK;
}

int ctlog_db_checkpoint_if(ctlog_db *d, int min_frames)
{
    int ret = 0;
    /* The index is not synced: its checkpoint only copies pages, so it may wait longer. */
    if (d->ix_wal_frames >= 4 * min_frames) {
        int rc = sqlite3_wal_checkpoint_v2(d->db, "ix", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        d->ix_wal_frames = 0;
        if (rc != SQLITE_OK)
            return -1;
        ret = 1;
    }
    if (d->wal_frames < min_frames)
        return ret;
    int rc = sqlite3_wal_checkpoint_v2(d->db, "main", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    d->wal_frames = 0; /* the next commit's hook says how many remain */
    return rc == SQLITE_OK ? 1 : -1;
}

/* d->node_stride from meta 'node_stride'. Without the key: a writer gives a log without nodes
 * the new stride (and records it), any other log 1 (it was written storing every level); a
 * reader takes 1. 0, or -1 with why. */
static int set_node_stride(ctlog_db *d, int writer, char *why, size_t whylen)
{
    unsigned char *v = NULL;
    size_t vlen = 0;
    int r = ctlog_db_meta_get(d, "node_stride", &v, &vlen);
    unsigned stride = r == 1 && vlen == 1 ? v[0] : 0;
    free(v);
    if (r < 0 || (r == 1 && (stride < 1 || stride > 16))) {
        snprintf(why, whylen, "cannot read the node stride of the log database: %s",
                 r < 0 ? sqlite3_errmsg(d->db) : "not a number from 1 to 16");
        return -1;
    }
    if (r == 0 && writer) {
        sqlite3_stmt *st = NULL;
        int any = -1;
        if (sqlite3_prepare_v2(d->db, "SELECT EXISTS(SELECT 1 FROM nodes) OR "
                                      "EXISTS(SELECT 1 FROM entries)", -1, &st, NULL) ==
                SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            any = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        unsigned char b = any == 0 ? NODE_STRIDE_NEW : 1, v3 = 3;
        /* The version first: a log that stops in between is still empty, and gets both at
         * its next open. */
        if (any < 0 || (b != 1 && ctlog_db_meta_put(d, "schema_version", &v3, 1) != 0) ||
            ctlog_db_meta_put(d, "node_stride", &b, 1) != 0) {
            snprintf(why, whylen, "cannot record the node stride of the log database: %s",
                     sqlite3_errmsg(d->db));
            return -1;
        }
        stride = b;
    }
    d->node_stride = stride ? stride : 1;
    return 0;
}

/* The writer: schema, migration from schema 1, then the index database. */
static int setup_writer(ctlog_db *d, const char *path, char *why, size_t whylen)
{
    char *err = NULL;
    if (sqlite3_exec(d->db, schema, NULL, NULL, &err) != SQLITE_OK) {
        snprintf(why, whylen, "cannot set up the log database %s: %s", path,
                 err ? err : sqlite3_errmsg(d->db));
        sqlite3_free(err);
        return -1;
    }
    /* The meta statements first: the schema version decides the rest. */
    for (int i = S_META_GET; i <= S_META_PUT; i++)
        if (sqlite3_prepare_v3(d->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &d->st[i],
                               NULL) != SQLITE_OK) {
            snprintf(why, whylen, "cannot prepare a statement on %s: %s", path,
                     sqlite3_errmsg(d->db));
            return -1;
        }
    unsigned char *v = NULL;
    size_t vlen = 0;
    if (ctlog_db_meta_get(d, "schema_version", &v, &vlen) != 1) {
        snprintf(why, whylen, "cannot read the schema version of %s: %s", path,
                 sqlite3_errmsg(d->db));
        return -1;
    }
    int version = vlen == 1 ? v[0] : -1;
    free(v);
    if (version == 1) {
        if (sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(d->db, migrate_v1, NULL, NULL, &err) != SQLITE_OK ||
            sqlite3_exec(d->db, "COMMIT", NULL, NULL, &err) != SQLITE_OK) {
            snprintf(why, whylen, "cannot move %s to schema 2: %s", path,
                     err ? err : sqlite3_errmsg(d->db));
            sqlite3_free(err);
            sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        log_info("ctlog", "moved %s from schema 1 to 2 (its indexes go to their own database)",
                 path);
    } else if (version != 2 && version != 3) {
        snprintf(why, whylen, "%s has schema version %d, which this Fulcrum does not know", path,
                 version);
        return -1;
    }
    if (set_node_stride(d, 1, why, whylen) != 0)
        return -1;
    char ix[4400];
    if (ctlog_index_path(path, ix, sizeof ix) != 0) {
        snprintf(why, whylen, "the log database path is too long: %s", path);
        return -1;
    }
    return ctlog_index_open_writer(d->db, ix, why, whylen);
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
    /* The writer writes each commit's WAL frames in one system call (ct/wal_write_vfs.h). */
    const char *vfs = writer && wal_write_vfs_register() == 0 ? WAL_WRITE_VFS_NAME : NULL;
    if (sqlite3_open_v2(path, &d->db, flags, vfs) != SQLITE_OK) {
        snprintf(why, whylen, "cannot open the log database %s: %s", path,
                 d->db ? sqlite3_errmsg(d->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(d->db, 10000);
    const char *pragmas = writer ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                 : "PRAGMA synchronous=FULL; PRAGMA query_only=1;";
    char *err = NULL;
    if (sqlite3_exec(d->db, pragmas, NULL, NULL, &err) != SQLITE_OK) {
        snprintf(why, whylen, "cannot set up the log database %s: %s", path,
                 err ? err : sqlite3_errmsg(d->db));
        sqlite3_free(err);
        goto fail;
    }
    char ix[4400];
    if (writer) {
        if (setup_writer(d, path, why, whylen) != 0)
            goto fail;
        d->writer = 1;
        sqlite3_wal_hook(d->db, wal_hook, d);
    } else if (ctlog_index_path(path, ix, sizeof ix) != 0 ||
               ctlog_index_attach_reader(d->db, ix, why, whylen) != 0) {
        goto fail;
    }
    for (int i = 0; i < S_COUNT; i++) {
        if (d->st[i])
            continue;
        if (!writer && (i == S_INSERT_NODE || i == S_INSERT_STH || i == S_INSERT_ENTRY ||
                        i == S_INDEX_DEDUP || i == S_INDEX_LEAF || i == S_INDEX_COVERED ||
                        i == S_META_PUT || i == S_BEGIN_WRITE || i == S_AUDIT_INSERT ||
                        i == S_AUDIT_DELETE))
            continue;
        if (sqlite3_prepare_v3(d->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &d->st[i],
                               NULL) != SQLITE_OK) {
            snprintf(why, whylen, "cannot prepare a statement on %s: %s", path,
                     sqlite3_errmsg(d->db));
            goto fail;
        }
    }
    if (!writer && set_node_stride(d, 0, why, whylen) != 0)
        goto fail;
    return d;
fail:
    ctlog_db_close(d);
    return NULL;
}

void ctlog_db_close(ctlog_db *d)
{
    if (!d)
        return;
    if (d->writer && ctlog_index_close_writer(d->db) != 0)
        log_warn("ctlog", "cannot sync the log index at close (%s): it is checked again at the "
                          "next start", sqlite3_errmsg(d->db));
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
    if (level > 0 && level % d->node_stride != 0) {
        /* Not stored: the hash of its two children (at most stride - 1 levels down to a stored
         * level or to the leaves). */
        unsigned char l[32], r[32];
        if (index > (UINT64_MAX >> 1) || ctlog_db_node(d, level - 1, 2 * index, l) != 0 ||
            ctlog_db_node(d, level - 1, 2 * index + 1, r) != 0)
            return -1;
        merkle_node_hash(l, r, out);
        return 0;
    }
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
    if (level % d->node_stride != 0)
        return 0; /* hashed from its children when read */
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
                          int index_dedup, const unsigned char *sct, size_t sct_len)
{
    sqlite3_stmt *s;
    int rc;
    if (index_dedup) {
        /* The dedup key first: a key already there (in an earlier entry, or earlier in this
         * transaction) means nothing is inserted. */
        s = d->st[S_INDEX_DEDUP];
        sqlite3_bind_blob(s, 1, dedup, 32, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)idx);
        rc = sqlite3_step(s);
        int changed = sqlite3_changes(d->db);
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        if (rc != SQLITE_DONE)
            return -1;
        if (changed != 1)
            return 1;
    }
    s = d->st[S_INDEX_LEAF];
    sqlite3_bind_blob(s, 1, leaf_hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)idx);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return -1;
    s = d->st[S_INSERT_ENTRY];
    sqlite3_bind_int64(s, 1, (sqlite3_int64)idx);
    sqlite3_bind_blob(s, 2, leaf, (int)leaf_len, SQLITE_STATIC);
    sqlite3_bind_blob(s, 3, extra_len ? extra : (const void *)"", (int)extra_len, SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, leaf_hash, 32, SQLITE_STATIC);
    sqlite3_bind_blob(s, 5, dedup, 32, SQLITE_STATIC);
    sqlite3_bind_blob(s, 6, sct, (int)sct_len, SQLITE_STATIC);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

int ctlog_db_set_indexed(ctlog_db *d, uint64_t n)
{
    sqlite3_stmt *s = d->st[S_INDEX_COVERED];
    sqlite3_bind_int64(s, 1, (sqlite3_int64)n);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -1;
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

int ctlog_db_insert_audit(ctlog_db *d, uint64_t idx, const char *line, size_t len)
{
    sqlite3_stmt *s = d->st[S_AUDIT_INSERT];
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)idx);
    sqlite3_bind_blob(s, 2, line, (int)len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

int ctlog_db_delete_audit(ctlog_db *d, uint64_t upto)
{
    sqlite3_stmt *s = d->st[S_AUDIT_DELETE];
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)upto);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

int ctlog_db_audit_pending(ctlog_db *d, ctlog_audit_row_fn fn, void *ctx)
{
    sqlite3_stmt *s = d->st[S_AUDIT_PENDING];
    if (!s)
        return -1;
    int rc, stop = 0;
    while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW)
        stop = fn(ctx, (uint64_t)sqlite3_column_int64(s, 0), sqlite3_column_blob(s, 1),
                  (size_t)sqlite3_column_bytes(s, 1));
    sqlite3_reset(s);
    return stop || rc == SQLITE_DONE ? 0 : -1;
}
