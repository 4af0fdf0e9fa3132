/* The log's stored tree nodes (ct/log_store.h): a new log stores the levels that are multiples
 * of 4 and hashes the others from their children when read; a log made before the stride
 * existed (entries, no 'node_stride') keeps storing every level. Both give the roots, audit
 * paths and consistency proofs of a reference tree holding every node (ct/merkle.h), for every
 * tree size up to 300, on the writer's connection and on a reader's. A new log is schema 3. */
#include <openssl/sha.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct/log_store.h"
#include "ct/merkle.h"
#include "unit/check.h"

#define N 300
#define LEVELS 10 /* 2^9 > N */

static char tmpdir[256];

/* The reference: every node of the tree of N leaves. */
static unsigned char ref[LEVELS][N][32];
static unsigned char have[LEVELS][N];

static int ref_get(void *ctx, unsigned level, uint64_t index, unsigned char out[32])
{
    (void)ctx;
    if (level >= LEVELS || index >= N || !have[level][index])
        return -1;
    memcpy(out, ref[level][index], 32);
    return 0;
}

static int ref_put(void *ctx, unsigned level, uint64_t index, const unsigned char h[32])
{
    (void)ctx;
    if (level >= LEVELS || index >= N)
        return -1;
    memcpy(ref[level][index], h, 32);
    have[level][index] = 1;
    return 0;
}

static void leaf_hash_of(unsigned i, unsigned char out[32])
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "leaf %u", i);
    merkle_leaf_hash((const unsigned char *)buf, (size_t)n, out);
}

static void build_ref(void)
{
    merkle_frontier f;
    memset(&f, 0, sizeof f);
    for (unsigned i = 0; i < N; i++) {
        leaf_hash_of(i, ref[0][i]);
        have[0][i] = 1;
        merkle_frontier_append(&f, ref[0][i], ref_put, NULL);
    }
}

/* Appends leaves from..N-1 to the log at path through the writer's own path (entry, then the
 * frontier's new nodes), a few per transaction. */
static int append(ctlog_db *db, merkle_frontier *f, unsigned from)
{
    for (unsigned i = from; i < N;) {
        if (ctlog_db_begin(db, 1) != 0)
            return -1;
        for (unsigned k = 0; k < 7 && i < N; k++, i++) {
            unsigned char lh[32], dd[32];
            char leaf[32];
            int n = snprintf(leaf, sizeof leaf, "leaf %u", i);
            leaf_hash_of(i, lh);
            SHA256(lh, 32, dd);
            if (ctlog_db_insert_entry(db, i, (unsigned char *)leaf, (size_t)n,
                                      (const unsigned char *)"", 0, lh, dd, 1,
                                      (const unsigned char *)"sct", 3) != 0 ||
                merkle_frontier_append(f, lh, ctlog_db_insert_node, db) != 0)
                return -1;
        }
        if (ctlog_db_set_indexed(db, i) != 0 || ctlog_db_commit(db) != 0)
            return -1;
    }
    return 0;
}

/* Every root, and the audit paths and consistency proofs of a sample, equal the reference's. */
static void compare(ctlog_db *db, const char *what)
{
    int roots = 1, paths = 1, proofs = 1;
    for (uint64_t size = 1; size <= N; size++) {
        unsigned char a[32], b[32];
        if (merkle_root(ctlog_db_node, db, size, a) != 0 || merkle_root(ref_get, NULL, size, b) != 0 ||
            memcmp(a, b, 32) != 0)
            roots = 0;
        for (uint64_t m = 0; m < size; m += 1 + size / 9) {
            unsigned char pa[MERKLE_MAX_PROOF][32], pb[MERKLE_MAX_PROOF][32];
            int na = merkle_inclusion_path(ctlog_db_node, db, m, size, pa, MERKLE_MAX_PROOF);
            int nb = merkle_inclusion_path(ref_get, NULL, m, size, pb, MERKLE_MAX_PROOF);
            if (na < 0 || na != nb || memcmp(pa, pb, (size_t)na * 32) != 0)
                paths = 0;
            na = merkle_consistency_proof(ctlog_db_node, db, m + 1, size, pa, MERKLE_MAX_PROOF);
            nb = merkle_consistency_proof(ref_get, NULL, m + 1, size, pb, MERKLE_MAX_PROOF);
            if (na < 0 || na != nb || memcmp(pa, pb, (size_t)na * 32) != 0)
                proofs = 0;
        }
    }
    CHECK(roots, "%s: the root of every size 1..%d is the reference's", what, N);
    CHECK(paths, "%s: audit paths equal the reference's", what);
    CHECK(proofs, "%s: consistency proofs equal the reference's", what);
}

/* A one-byte meta value of the closed database (-1 if none). */
static int meta_byte(const char *path, const char *key)
{
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(s, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) ==
            SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 1)
            v = ((const unsigned char *)sqlite3_column_blob(st, 0))[0];
    }
    sqlite3_finalize(st);
    sqlite3_close(s);
    return v;
}

/* "level:count ..." of the nodes table, and its stride byte, read with SQLite. */
static void stored_levels(const char *path, char *out, size_t outlen, int *stride)
{
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    *stride = -1;
    if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        goto done;
    if (sqlite3_prepare_v2(s, "SELECT level, COUNT(*) FROM nodes GROUP BY level ORDER BY level",
                           -1, &st, NULL) == SQLITE_OK) {
        size_t used = 0;
        while (sqlite3_step(st) == SQLITE_ROW && used < outlen)
            used += (size_t)snprintf(out + used, outlen - used, "%s%d:%d", used ? " " : "",
                                     sqlite3_column_int(st, 0), sqlite3_column_int(st, 1));
    }
done:
    sqlite3_finalize(st);
    sqlite3_close(s);
    *stride = meta_byte(path, "node_stride");
}

static void test_new_log(void)
{
    char path[512], why[512] = "", levels[256];
    int stride = 0;
    snprintf(path, sizeof path, "%s/new.db", tmpdir);
    ctlog_db *db = ctlog_db_open(path, 1, why, sizeof why);
    CHECK(db != NULL, "new log: the writer opens (%s)", why);
    if (!db)
        return;
    merkle_frontier f;
    memset(&f, 0, sizeof f);
    CHECK(append(db, &f, 0) == 0, "new log: %d entries appended (%s)", N, ctlog_db_error(db));
    compare(db, "new log, writer");
    ctlog_db_close(db);

    stored_levels(path, levels, sizeof levels, &stride);
    /* 300 leaves: 18 complete subtrees of 16 leaves, 1 of 256 */
    CHECK(stride == 4 && strcmp(levels, "4:18 8:1") == 0,
          "new log: stride 4, only levels 4 and 8 stored (stride %d, %s)", stride, levels);
    CHECK(meta_byte(path, "schema_version") == 3, "new log: schema 3 (%d)",
          meta_byte(path, "schema_version"));

    ctlog_db *rd = ctlog_db_open(path, 0, why, sizeof why);
    CHECK(rd != NULL, "new log: a reader opens (%s)", why);
    if (rd) {
        compare(rd, "new log, reader");
        ctlog_db_close(rd);
    }

    /* A stored node that is missing is an error, not hashed again from below. */
    sqlite3 *s = NULL;
    CHECK(sqlite3_open(path, &s) == SQLITE_OK &&
              sqlite3_exec(s, "DELETE FROM nodes WHERE level = 4 AND idx = 2", NULL, NULL, NULL) ==
                  SQLITE_OK,
          "new log: delete stored node (4, 2)");
    sqlite3_close(s);
    rd = ctlog_db_open(path, 0, why, sizeof why);
    unsigned char h[32];
    CHECK(rd && ctlog_db_node(rd, 4, 2, h) == -1 && ctlog_db_node(rd, 5, 1, h) == -1 &&
              ctlog_db_node(rd, 4, 3, h) == 0,
          "new log: a missing stored node fails, and so does its parent; its sibling is read");
    ctlog_db_close(rd);
}

/* A log written before the stride: entry 0 already there, no 'node_stride'. */
static void test_old_log(void)
{
    char path[512], why[512] = "", levels[256];
    int stride = 0;
    snprintf(path, sizeof path, "%s/old.db", tmpdir);
    ctlog_db *db = ctlog_db_open(path, 1, why, sizeof why);
    CHECK(db != NULL, "old log: created (%s)", why);
    if (!db)
        return;
    merkle_frontier f;
    memset(&f, 0, sizeof f);
    unsigned char lh[32], dd[32];
    leaf_hash_of(0, lh);
    SHA256(lh, 32, dd);
    CHECK(ctlog_db_begin(db, 1) == 0 &&
              ctlog_db_insert_entry(db, 0, (const unsigned char *)"leaf 0", 6,
                                    (const unsigned char *)"", 0, lh, dd, 1,
                                    (const unsigned char *)"sct", 3) == 0 &&
              merkle_frontier_append(&f, lh, ctlog_db_insert_node, db) == 0 &&
              ctlog_db_set_indexed(db, 1) == 0 && ctlog_db_commit(db) == 0,
          "old log: entry 0");
    ctlog_db_close(db);
    sqlite3 *s = NULL;
    CHECK(sqlite3_open(path, &s) == SQLITE_OK &&
              sqlite3_exec(s,
                           "DELETE FROM meta WHERE key = 'node_stride'; UPDATE meta SET value = "
                           "x'02' WHERE key = 'schema_version'",
                           NULL, NULL, NULL) == SQLITE_OK,
          "old log: its stride forgotten, as a log made before it");
    sqlite3_close(s);

    db = ctlog_db_open(path, 1, why, sizeof why);
    CHECK(db != NULL, "old log: reopened (%s)", why);
    if (!db)
        return;
    CHECK(append(db, &f, 1) == 0, "old log: entries 1..%d appended (%s)", N - 1,
          ctlog_db_error(db));
    compare(db, "old log, writer");
    ctlog_db_close(db);
    stored_levels(path, levels, sizeof levels, &stride);
    CHECK(stride == 1 && strcmp(levels, "1:150 2:75 3:37 4:18 5:9 6:4 7:2 8:1") == 0,
          "old log: stride 1 recorded, every level stored (stride %d, %s)", stride, levels);
    CHECK(meta_byte(path, "schema_version") == 2, "old log: still schema 2 (%d)",
          meta_byte(path, "schema_version"));
    ctlog_db *rd = ctlog_db_open(path, 0, why, sizeof why);
    CHECK(rd != NULL, "old log: a reader opens (%s)", why);
    if (rd) {
        compare(rd, "old log, reader");
        ctlog_db_close(rd);
    }
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/fulcrum-log-nodes-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    build_ref();
    test_new_log();
    test_old_log();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    CHECK_MAIN_END();
}
