/* The log's index database (ct/log_index.h) through the store's API: lookups and dedup (also
 * within one transaction), a clean close, and every repair at open: an index behind the
 * entries (the process died between the two commits), left unclean in another boot (the
 * machine stopped: rebuilt) or in this one (completed only), not a database, deleted, covering
 * more than exists, missing its last entry; the move of a schema 1 database; an unknown schema.
 * Damage is made with SQLite on the closed files, as a crash would leave them. */
#include <openssl/sha.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ct/log_index.h"
#include "common/metrics.h"
#include "ct/log_store.h"
#include "unit/check.h"

static char tmpdir[256], db_path[512], ix_path[512];

/* Entry i: leaf "leaf-i", leaf hash SHA-256("L"+i), dedup SHA-256("D"+i), SCT "sct-i". */
static void hash_of(char tag, unsigned i, unsigned char out[32])
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%c%u", tag, i);
    SHA256((const unsigned char *)buf, (size_t)n, out);
}

static int insert(ctlog_db *db, unsigned idx, unsigned key)
{
    char leaf[32], sct[32];
    unsigned char lh[32], dd[32];
    int ll = snprintf(leaf, sizeof leaf, "leaf-%u", idx);
    int sl = snprintf(sct, sizeof sct, "sct-%u", key);
    hash_of('L', idx, lh);
    hash_of('D', key, dd);
    return ctlog_db_insert_entry(db, idx, (unsigned char *)leaf, (size_t)ll,
                                 (const unsigned char *)"", 0, lh, dd, 1, (unsigned char *)sct,
                                 (size_t)sl);
}

static ctlog_db *open_writer(const char *what)
{
    char why[512] = "";
    ctlog_db *db = ctlog_db_open(db_path, 1, why, sizeof why);
    CHECK(db != NULL, "%s: the writer opens (%s)", what, why);
    return db;
}

/* Entry i is found by its leaf hash and its dedup key (SCT "sct-i"), on this connection. */
static int finds(ctlog_db *db, unsigned i)
{
    unsigned char lh[32], dd[32], *sct = NULL;
    size_t len = 0;
    uint64_t idx = 0;
    hash_of('L', i, lh);
    hash_of('D', i, dd);
    char want[32];
    snprintf(want, sizeof want, "sct-%u", i);
    int ok = ctlog_db_find_leaf(db, lh, UINT64_MAX >> 1, &idx) == 1 && idx == i &&
             ctlog_db_find_dedup(db, dd, &sct, &len) == 1 && len == strlen(want) &&
             memcmp(sct, want, len) == 0;
    free(sct);
    return ok;
}

static int finds_all(ctlog_db *db, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (!finds(db, i))
            return 0;
    return 1;
}

/* Runs SQL on the closed index file. */
static void ix_sql(const char *sql)
{
    sqlite3 *db = NULL;
    char *err = NULL;
    int rc = sqlite3_open(ix_path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    CHECK(rc == SQLITE_OK, "damage the index: %s (%s)", sql, err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
}

/* A value of ix.state read from the closed index file ("" if none). */
static void ix_state(const char *k, char *out, size_t outlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    if (sqlite3_open(ix_path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT v FROM state WHERE k = ?1", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A key only a rebuild removes: present after the open means the index was kept. */
static const char plant[] = "INSERT INTO dedup(key, idx) VALUES(x'00', 0)";

static int planted_kept(void)
{
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;
    int kept = 0;
    /* a second connection, read-only, while the writer holds the log open */
    if (sqlite3_open_v2(ix_path, &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(s, "SELECT COUNT(*) FROM dedup WHERE key = x'00'", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        kept = sqlite3_column_int(st, 0) == 1;
    sqlite3_finalize(st);
    sqlite3_close(s);
    return kept;
}

static void populate(void)
{
    ctlog_db *db = open_writer("new log");
    if (!db)
        return;
    CHECK(ctlog_db_begin(db, 1) == 0, "begin");
    int r0 = insert(db, 0, 0), r1 = insert(db, 1, 1), r2 = insert(db, 2, 2);
    CHECK(r0 == 0 && r1 == 0 && r2 == 0, "three entries inserted (%d %d %d)", r0, r1, r2);
    CHECK(insert(db, 3, 1) == 1, "a second entry with entry 1's dedup key, in the same "
                                 "transaction, is a duplicate");
    CHECK(insert(db, 3, 3) == 0 && insert(db, 4, 4) == 0, "entries 3 and 4 inserted");
    CHECK(ctlog_db_set_indexed(db, 5) == 0 && ctlog_db_commit(db) == 0, "commit");
    uint64_t n = 0;
    CHECK(ctlog_db_size(db, &n) == 0 && n == 5, "5 entries (%llu)", (unsigned long long)n);
    CHECK(finds_all(db, 5), "the writer finds all 5 by leaf hash and by dedup key");
    CHECK(ctlog_db_begin(db, 1) == 0 && insert(db, 5, 2) == 1, "a later duplicate is refused");
    ctlog_db_rollback(db);
    unsigned char lh[32];
    uint64_t idx = 0;
    hash_of('L', 4, lh);
    CHECK(ctlog_db_find_leaf(db, lh, 4, &idx) == 0, "find_leaf honours its bound");
    ctlog_db_close(db);

    char v[64];
    ix_state("clean", v, sizeof v);
    CHECK(strcmp(v, "1") == 0, "a closed index is marked clean (%s)", v);
    ix_state("covered", v, sizeof v);
    CHECK(strcmp(v, "5") == 0, "and covers 5 entries (%s)", v);

    char why[512] = "";
    ctlog_db *rd = ctlog_db_open(db_path, 0, why, sizeof why);
    CHECK(rd && finds_all(rd, 5), "a reader connection finds them too (%s)", why);
    ctlog_db_close(rd);
}

/* Reopens after some damage; checks what the open did. */
static void reopen(const char *what, int expect_kept)
{
    ctlog_db *db = open_writer(what);
    if (!db)
        return;
    CHECK(finds_all(db, 5), "%s: all 5 entries found after the open", what);
    CHECK(planted_kept() == expect_kept, "%s: the index was %s", what,
          expect_kept ? "kept (completed only)" : "rebuilt");
    char v[64];
    ix_state("covered", v, sizeof v);
    CHECK(strcmp(v, "5") == 0, "%s: covers 5 entries (%s)", what, v);
    ix_state("clean", v, sizeof v);
    CHECK(strcmp(v, "0") == 0, "%s: marked in use while open (%s)", what, v);
    ctlog_db_close(db);
}

static void boot_of_this_machine(char out[64])
{
    out[0] = '\0';
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(out, 64, f))
            out[0] = '\0';
        fclose(f);
    }
    out[strcspn(out, "\r\n")] = '\0';
}

static double repairs(const char *kind)
{
    static const char *const labels[] = {"kind", NULL};
    return metric_value(metric_get1(
        metrics_counter("fulcrum_ct_log_index_repairs_total",
                        "Repairs of the CT log's index database at start", labels),
        kind));
}

static void test_repairs(void)
{
    char sql[512], boot[64];
    boot_of_this_machine(boot);

    ix_sql(plant);
    reopen("clean close", 1);

    /* The process died after the entries' commit, before the index's. */
    snprintf(sql, sizeof sql,
             "DELETE FROM leaf WHERE idx >= 3; DELETE FROM dedup WHERE idx >= 3;"
             "UPDATE state SET v = 3 WHERE k = 'covered'; UPDATE state SET v = 0 WHERE k = "
             "'clean'; UPDATE state SET v = '%s' WHERE k = 'boot'",
             boot);
    ix_sql(sql);
    double c0 = repairs("completed"), r0 = repairs("rebuilt");
    reopen("index behind the entries, same boot", 1);
    CHECK(repairs("completed") == c0 + 1 && repairs("rebuilt") == r0,
          "the completion is counted (fulcrum_ct_log_index_repairs_total{kind=\"completed\"})");

    ix_sql("UPDATE state SET v = 0 WHERE k = 'clean'; UPDATE state SET v = 'an-earlier-boot' "
           "WHERE k = 'boot'");
    r0 = repairs("rebuilt");
    reopen("unclean in an earlier boot", 0);
    CHECK(repairs("rebuilt") == r0 + 1,
          "the rebuild is counted (fulcrum_ct_log_index_repairs_total{kind=\"rebuilt\"})");

    ix_sql(plant);
    ix_sql("UPDATE state SET v = 99 WHERE k = 'covered'");
    reopen("covering more entries than exist", 0);

    ix_sql(plant);
    ix_sql("DELETE FROM leaf WHERE idx = 4");
    reopen("missing the last entry it covers", 0);

    ix_sql(plant);
    ix_sql("DELETE FROM state WHERE k = 'covered'");
    reopen("rows but no record of what it covers", 0);

    FILE *f = fopen(ix_path, "w");
    if (f) {
        for (int i = 0; i < 1000; i++)
            fputs("not a database ", f);
        fclose(f);
    }
    reopen("not a database", 0);

    unlink(ix_path);
    reopen("deleted", 0);
}

static const char v1_schema[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);"
    "CREATE TABLE entries("
    "  idx INTEGER PRIMARY KEY, leaf_input BLOB NOT NULL, extra_data BLOB NOT NULL,"
    "  leaf_hash BLOB NOT NULL, dedup BLOB NOT NULL UNIQUE, sct BLOB NOT NULL);"
    "CREATE INDEX entries_by_leaf_hash ON entries(leaf_hash);"
    "CREATE TABLE nodes(level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,"
    "  PRIMARY KEY(level, idx)) WITHOUT ROWID;"
    "CREATE TABLE sths(tree_size INTEGER PRIMARY KEY, timestamp INTEGER NOT NULL,"
    "  root_hash BLOB NOT NULL, signature BLOB NOT NULL);"
    "INSERT INTO meta(key, value) VALUES('schema_version', x'01');";

static void test_schema_1(void)
{
    snprintf(db_path, sizeof db_path, "%s/v1.db", tmpdir);
    ctlog_index_path(db_path, ix_path, sizeof ix_path);
    sqlite3 *s = NULL;
    CHECK(sqlite3_open(db_path, &s) == SQLITE_OK &&
              sqlite3_exec(s, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) == SQLITE_OK &&
              sqlite3_exec(s, v1_schema, NULL, NULL, NULL) == SQLITE_OK,
          "a schema 1 database");
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(s,
                       "INSERT INTO entries(idx, leaf_input, extra_data, leaf_hash, dedup, sct) "
                       "VALUES(?1, 'leaf', x'', ?2, ?3, ?4)",
                       -1, &st, NULL);
    for (unsigned i = 0; i < 5; i++) {
        unsigned char lh[32], dd[32];
        char sct[32];
        hash_of('L', i, lh);
        hash_of('D', i, dd);
        snprintf(sct, sizeof sct, "sct-%u", i);
        sqlite3_bind_int(st, 1, (int)i);
        sqlite3_bind_blob(st, 2, lh, 32, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 3, dd, 32, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 4, sct, (int)strlen(sct), SQLITE_TRANSIENT);
        CHECK(sqlite3_step(st) == SQLITE_DONE, "schema 1 entry %u", i);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close(s);

    ctlog_db *db = open_writer("schema 1");
    if (!db)
        return;
    unsigned char *v = NULL;
    size_t vlen = 0;
    CHECK(ctlog_db_meta_get(db, "schema_version", &v, &vlen) == 1 && vlen == 1 && v[0] == 2,
          "moved to schema 2");
    free(v);
    CHECK(finds_all(db, 5), "its entries are found through the new index");
    CHECK(ctlog_db_begin(db, 1) == 0 && insert(db, 5, 3) == 1,
          "a resubmission of one of its entries is still a duplicate");
    CHECK(insert(db, 5, 5) == 0 && ctlog_db_set_indexed(db, 6) == 0 && ctlog_db_commit(db) == 0,
          "a new entry is added");
    ctlog_db_close(db);

    int left = -1;
    if (sqlite3_open(db_path, &s) == SQLITE_OK &&
        sqlite3_prepare_v2(s,
                           "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND "
                           "tbl_name = 'entries'",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        left = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    CHECK(left == 0, "no index left on the entries table (%d)", left);
    CHECK(sqlite3_exec(s, "UPDATE meta SET value = x'07' WHERE key = 'schema_version'", NULL, NULL,
                       NULL) == SQLITE_OK,
          "set an unknown schema version");
    sqlite3_close(s);
    char why[512] = "";
    db = ctlog_db_open(db_path, 1, why, sizeof why);
    CHECK(!db && strstr(why, "schema version 7, which this Fulcrum does not know"),
          "an unknown schema version is refused (%s)", why);
    ctlog_db_close(db);
}

/* Entries inserted with index_dedup 0 (the CA's own precertificates): found by leaf hash, not by
 * dedup key, never refused as duplicates; an index whose last covered entry is one of them is
 * kept at the next open; a rebuild enters their keys too. In a log of its own. */
static void test_own_entries(void)
{
    snprintf(db_path, sizeof db_path, "%s/own.db", tmpdir);
    CHECK(ctlog_index_path(db_path, ix_path, sizeof ix_path) == 0, "own: index path");
    ctlog_db *db = open_writer("own entries");
    if (!db)
        return;
    char leaf[] = "own-leaf";
    unsigned char lh[32], dd[32], *sct = NULL;
    size_t len = 0;
    uint64_t idx = 0;
    CHECK(ctlog_db_begin(db, 1) == 0 && insert(db, 0, 0) == 0, "own: a submitted entry 0");
    hash_of('L', 1, lh);
    hash_of('D', 0, dd); /* entry 0's key: not looked up, so not a duplicate */
    int r1 = ctlog_db_insert_entry(db, 1, (unsigned char *)leaf, strlen(leaf),
                                   (const unsigned char *)"", 0, lh, dd, 0,
                                   (unsigned char *)"sct-own", 7);
    hash_of('L', 2, lh);
    hash_of('D', 2, dd);
    int r2 = ctlog_db_insert_entry(db, 2, (unsigned char *)leaf, strlen(leaf),
                                   (const unsigned char *)"", 0, lh, dd, 0,
                                   (unsigned char *)"sct-own", 7);
    CHECK(r1 == 0 && r2 == 0, "own: entries 1 and 2 inserted without the dedup index (%d %d)", r1,
          r2);
    CHECK(ctlog_db_set_indexed(db, 3) == 0 && ctlog_db_commit(db) == 0, "own: commit");
    CHECK(ctlog_db_find_leaf(db, lh, 3, &idx) == 1 && idx == 2, "own: entry 2 found by leaf hash");
    CHECK(ctlog_db_find_dedup(db, dd, &sct, &len) == 0, "own: entry 2 not found by dedup key");
    free(sct);
    sct = NULL;
    ctlog_db_close(db);

    double rebuilt = repairs("rebuilt"), completed = repairs("completed");
    ix_sql(plant);
    db = open_writer("own entries, reopened");
    if (!db)
        return;
    CHECK(planted_kept() && repairs("rebuilt") == rebuilt && repairs("completed") == completed,
          "own: an index whose last entry has no dedup key is kept as it is");
    CHECK(ctlog_db_find_dedup(db, dd, &sct, &len) == 0, "own: still not found by dedup key");
    free(sct);
    sct = NULL;
    ctlog_db_close(db);

    unlink(ix_path); /* indexed again from the entries at the next open */
    db = open_writer("own entries, index deleted");
    if (!db)
        return;
    CHECK(ctlog_db_find_dedup(db, dd, &sct, &len) == 1 && len == 7 &&
              memcmp(sct, "sct-own", 7) == 0,
          "own: indexed again from the entries, entry 2 is found by its dedup key");
    free(sct);
    ctlog_db_close(db);
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/fulcrum-log-index-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(db_path, sizeof db_path, "%s/log.db", tmpdir);
    CHECK(ctlog_index_path(db_path, ix_path, sizeof ix_path) == 0 &&
              strcmp(ix_path + strlen(tmpdir), "/log-index.db") == 0,
          "the index lives beside the log (%s)", ix_path);
    populate();
    test_repairs();
    test_schema_1();
    test_own_entries();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    CHECK_MAIN_END();
}
