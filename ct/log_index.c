#include "ct/log_index.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"

static const char ix_schema[] =
    "CREATE TABLE IF NOT EXISTS ix.leaf(leaf_hash BLOB NOT NULL, idx INTEGER NOT NULL,"
    "  PRIMARY KEY(leaf_hash, idx)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS ix.dedup(key BLOB NOT NULL PRIMARY KEY, idx INTEGER NOT NULL)"
    "  WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS ix.state(k TEXT PRIMARY KEY, v NOT NULL);";

int ctlog_index_path(const char *db_path, char *out, size_t outlen)
{
    size_t n = strlen(db_path);
    int w;
    if (n > 3 && strcmp(db_path + n - 3, ".db") == 0)
        w = snprintf(out, outlen, "%.*s-index.db", (int)(n - 3), db_path);
    else
        w = snprintf(out, outlen, "%s-index", db_path);
    return w > 0 && (size_t)w < outlen ? 0 : -1;
}

static int attach(sqlite3 *db, const char *path, char *why, size_t whylen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "ATTACH DATABASE ?1 AS ix", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_OK) {
        snprintf(why, whylen, "cannot attach the log index %s: %s", path, sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

int ctlog_index_attach_reader(sqlite3 *db, const char *ix_path, char *why, size_t whylen)
{
    return attach(db, ix_path, why, whylen);
}

/* This boot's identity (Linux); "" when unknown, which makes every unclean index suspect. */
static void boot_id(char out[64])
{
    out[0] = '\0';
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (!f)
        return;
    if (!fgets(out, 64, f))
        out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
}

static int exec(sqlite3 *db, const char *sql) { return sqlite3_exec(db, sql, NULL, NULL, NULL); }

/* Runs a one-row, one-column integer query with an optional int64 parameter: 1 row, 0 none,
 * -1 error. */
static int query_int(sqlite3 *db, const char *sql, int64_t param, int has_param, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (has_param)
        sqlite3_bind_int64(st, 1, param);
    int rc = sqlite3_step(st), ret = -1;
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        ret = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : 1;
    } else if (rc == SQLITE_DONE) {
        ret = 0;
    }
    sqlite3_finalize(st);
    return ret;
}

static int state_text(sqlite3 *db, const char *key, char *out, size_t outlen)
{
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    if (sqlite3_prepare_v2(db, "SELECT v FROM ix.state WHERE k = ?1", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), ret = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    if (ret == 1)
        snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return ret;
}

/* Checks an attached index against n entries. Returns the number of entries it covers (to be
 * completed from there), or -1 with the reason it must be rebuilt. */
static int64_t check(sqlite3 *db, int64_t n, const char *boot, char *reason, size_t rlen)
{
    if (exec(db, ix_schema) != SQLITE_OK) {
        snprintf(reason, rlen, "unreadable (%s)", sqlite3_errmsg(db));
        return -1;
    }
    int64_t covered = 0, clean = 0;
    int rc = query_int(db, "SELECT v FROM ix.state WHERE k = 'covered'", 0, 0, &covered);
    if (rc < 0) {
        snprintf(reason, rlen, "unreadable (%s)", sqlite3_errmsg(db));
        return -1;
    }
    if (rc == 0) {
        int64_t rows = 0;
        if (query_int(db, "SELECT EXISTS(SELECT 1 FROM ix.leaf) OR EXISTS(SELECT 1 FROM ix.dedup)",
                      0, 0, &rows) < 0 || rows) {
            snprintf(reason, rlen, "it has rows but no record of what it covers");
            return -1;
        }
        return 0; /* new */
    }
    char was_boot[64];
    if (query_int(db, "SELECT v FROM ix.state WHERE k = 'clean'", 0, 0, &clean) < 0 ||
        state_text(db, "boot", was_boot, sizeof was_boot) < 0) {
        snprintf(reason, rlen, "unreadable (%s)", sqlite3_errmsg(db));
        return -1;
    }
    if (!clean && (!boot[0] || strcmp(was_boot, boot) != 0)) {
        snprintf(reason, rlen, "it was in use when the machine stopped (boot %s, now %s)",
                 was_boot[0] ? was_boot : "?", boot[0] ? boot : "?");
        return -1;
    }
    if (covered < 0 || covered > n) {
        snprintf(reason, rlen, "it covers %" PRId64 " entries but the log has %" PRId64,
                 covered, n);
        return -1;
    }
    if (covered > 0) {
        int64_t ok = 0;
        /* By its leaf hash: every entry has one in the index, written in the same transaction
         * as its dedup key, if it has one there (the CA's own precertificates have none). */
        rc = query_int(db,
                       "SELECT EXISTS(SELECT 1 FROM main.entries e"
                       "  JOIN ix.leaf l ON l.leaf_hash = e.leaf_hash AND l.idx = e.idx"
                       "  WHERE e.idx = ?1)",
                       covered - 1, 1, &ok);
        if (rc < 0) {
            snprintf(reason, rlen, "unreadable (%s)", sqlite3_errmsg(db));
            return -1;
        }
        if (!ok) {
            snprintf(reason, rlen, "it lacks entry %" PRId64 ", the last it claims to cover",
                     covered - 1);
            return -1;
        }
    }
    return covered;
}

/* Detaches the index and deletes its files, then attaches a new one. */
static int recreate(sqlite3 *db, const char *path, char *why, size_t whylen)
{
    exec(db, "DETACH DATABASE ix");
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[4300];
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        if (unlink(p) != 0 && errno != ENOENT) {
            snprintf(why, whylen, "cannot delete the damaged log index %s: %s", p,
                     strerror(errno));
            return -1;
        }
    }
    if (attach(db, path, why, whylen) != 0)
        return -1;
    if (exec(db, "PRAGMA ix.journal_mode=WAL; PRAGMA ix.synchronous=FULL") != SQLITE_OK ||
        exec(db, ix_schema) != SQLITE_OK) {
        snprintf(why, whylen, "cannot create the log index %s: %s", path, sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

/* Indexes entries from..n-1 and marks the index in use in this boot, in one synced
 * transaction. */
static int complete(sqlite3 *db, int64_t from, int64_t n, const char *boot)
{
    sqlite3_stmt *st[4] = {NULL};
    static const char *const sql[4] = {
        /* In key order: a rebuild of a large log fills pages one after another. */
        "INSERT OR IGNORE INTO ix.leaf(leaf_hash, idx) SELECT leaf_hash, idx FROM main.entries"
        "  WHERE idx >= ?1 ORDER BY leaf_hash, idx",
        /* The first entry with a key wins, as when it was submitted. */
        "INSERT OR IGNORE INTO ix.dedup(key, idx) SELECT dedup, idx FROM main.entries"
        "  WHERE idx >= ?1 ORDER BY dedup, idx",
        "INSERT OR REPLACE INTO ix.state(k, v) VALUES('covered', ?1)",
        "INSERT OR REPLACE INTO ix.state(k, v) VALUES('clean', 0), ('boot', ?1)",
    };
    if (exec(db, "BEGIN IMMEDIATE") != SQLITE_OK)
        return -1;
    int ok = 1;
    for (int i = 0; i < 4 && ok; i++) {
        ok = sqlite3_prepare_v2(db, sql[i], -1, &st[i], NULL) == SQLITE_OK;
        if (!ok)
            break;
        if (i == 3)
            sqlite3_bind_text(st[i], 1, boot, -1, SQLITE_STATIC);
        else
            sqlite3_bind_int64(st[i], 1, i == 2 ? n : from);
        ok = sqlite3_step(st[i]) == SQLITE_DONE;
    }
    for (int i = 0; i < 4; i++)
        sqlite3_finalize(st[i]);
    if (!ok || exec(db, "COMMIT") != SQLITE_OK) {
        exec(db, "ROLLBACK");
        return -1;
    }
    return 0;
}

/* fulcrum_ct_log_index_repairs_total{kind}: "rebuilt" (from all entries) or "completed" (the
 * entries the index was missing after the process stopped between two commits). */
static void count_repair(const char *kind)
{
    static const char *const labels[] = {"kind", NULL};
    metric_inc(metric_get1(metrics_counter("fulcrum_ct_log_index_repairs_total",
                                           "Repairs of the CT log's index database at start",
                                           labels),
                           kind));
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int ctlog_index_open_writer(sqlite3 *db, const char *ix_path, char *why, size_t whylen)
{
    int64_t n = 0;
    if (query_int(db, "SELECT COALESCE(MAX(idx) + 1, 0) FROM main.entries", 0, 0, &n) < 0) {
        snprintf(why, whylen, "cannot count the log's entries: %s", sqlite3_errmsg(db));
        return -1;
    }
    char boot[64];
    boot_id(boot);
    char reason[512] = "";
    int64_t covered = -1;
    if (attach(db, ix_path, reason, sizeof reason) != 0)
        ; /* not a database: rebuilt */
    else if (exec(db, "PRAGMA ix.journal_mode=WAL; PRAGMA ix.synchronous=FULL") != SQLITE_OK)
        snprintf(reason, sizeof reason, "unreadable (%s)", sqlite3_errmsg(db));
    else
        covered = check(db, n, boot, reason, sizeof reason);
    double t0 = now_ms();
    if (covered < 0) {
        log_warn("ctlog", "rebuilding the log index %s from the %" PRId64 " entries: %s", ix_path,
                 n, reason);
        if (recreate(db, ix_path, why, whylen) != 0)
            return -1;
        count_repair("rebuilt");
        covered = 0;
    }
    if (complete(db, covered, n, boot) != 0) {
        snprintf(why, whylen, "cannot index the log's entries in %s: %s", ix_path,
                 sqlite3_errmsg(db));
        return -1;
    }
    if (covered > 0 && covered < n)
        count_repair("completed");
    if (covered < n)
        log_info("ctlog", "log index %s: indexed entries %" PRId64 "..%" PRId64 " in %.0f ms",
                 ix_path, covered, n - 1, now_ms() - t0);
    /* 16 MiB of the index's pages in memory (SQLite's default is 2 MiB): each entry looks up
     * and inserts at random places in both indexes, and every page missing from the cache is a
     * read (5.0 -> 1.6 preads per issuance in the bench). */
    if (exec(db, "PRAGMA ix.synchronous=OFF; PRAGMA ix.cache_size=-16384") != SQLITE_OK) {
        snprintf(why, whylen, "cannot set up the log index %s: %s", ix_path, sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

int ctlog_index_close_writer(sqlite3 *db)
{
    if (exec(db, "PRAGMA ix.synchronous=FULL") != SQLITE_OK)
        return -1;
    /* Everything into the index file and synced, then the clean mark (its commit synced). */
    int rc = sqlite3_wal_checkpoint_v2(db, "ix", SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) /* busy: a reader; the WAL is synced below */
        return -1;
    return exec(db, "INSERT OR REPLACE INTO ix.state(k, v) VALUES('clean', 1)") == SQLITE_OK
               ? 0
               : -1;
}
