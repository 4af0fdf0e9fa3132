/* ct/wal_write_vfs.h with real SQLite files: a commit's WAL frames reach the file in a few
 * writes instead of two per frame; a second connection (default VFS) sees every commit at once,
 * with the WAL synced (synchronous=FULL) or not (OFF, as the log's index); a transaction larger
 * than the page cache (frames spilled, read back and rewritten) and a savepoint rolled back keep
 * the database intact; checkpoints and WAL restarts in between; the data survives a reopen. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ct/wal_write_vfs.h"
#include "unit/check.h"

static char dir[256], path[512];

static int exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fprintf(stderr, "sql: %s: %s\n", sql, err ? err : "?");
    sqlite3_free(err);
    return rc;
}

static long long scalar(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int integrity_ok(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int ok = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
             sqlite3_step(st) == SQLITE_ROW &&
             strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    sqlite3_finalize(st);
    return ok;
}

/* n rows of 1000 random bytes, ids from first, in one transaction. */
static int insert_rows(sqlite3 *db, int first, int n)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE c(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM c WHERE i < %d) "
             "INSERT INTO t(id, v) SELECT i, randomblob(1000) FROM c",
             first, first + n - 1);
    return exec(db, sql);
}

static void run(const char *sync)
{
    char sql[128];
    unlink(path);
    sqlite3 *w = NULL, *r = NULL;
    CHECK(sqlite3_open_v2(path, &w, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                          WAL_WRITE_VFS_NAME) == SQLITE_OK,
          "open through the VFS");
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s", sync);
    CHECK(exec(w, sql) == SQLITE_OK, "WAL mode");
    CHECK(exec(w, "PRAGMA wal_autocheckpoint=0; "
                  "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)") == SQLITE_OK,
          "schema");
    CHECK(sqlite3_open_v2(path, &r, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK,
          "a reader through the default VFS");

    /* 300 rows of 1000 bytes: ~80 pages, two writes per frame without the VFS. */
    unsigned long w0 = wal_write_vfs_writes();
    CHECK(exec(w, "BEGIN") == SQLITE_OK && insert_rows(w, 1, 300) == SQLITE_OK &&
              exec(w, "COMMIT") == SQLITE_OK,
          "commit 300 rows (synchronous=%s)", sync);
    unsigned long writes = wal_write_vfs_writes() - w0;
    CHECK(writes >= 1 && writes <= 6, "the commit's ~80 frames took %lu writes (synchronous=%s)",
          writes, sync);
    CHECK(scalar(r, "SELECT count(*) FROM t") == 300, "the reader sees the commit at once (%s)",
          sync);

    /* Small commits, each visible at once; checkpoints restart the WAL in between. */
    for (int i = 0; i < 20; i++) {
        CHECK(insert_rows(w, 1000 + i * 3, 3) == SQLITE_OK, "small commit %d", i);
        CHECK(scalar(r, "SELECT count(*) FROM t") == 303 + 3 * i, "the reader sees commit %d", i);
        if (i % 5 == 4)
            CHECK(exec(w, "PRAGMA wal_checkpoint(TRUNCATE)") == SQLITE_OK, "checkpoint");
    }

    /* Larger than the page cache: frames spill mid-transaction and are read back. A savepoint
     * rolled back in the middle. */
    CHECK(exec(w, "PRAGMA cache_size=8; BEGIN") == SQLITE_OK, "small cache");
    CHECK(insert_rows(w, 5000, 400) == SQLITE_OK, "big insert");
    CHECK(exec(w, "SAVEPOINT s; UPDATE t SET v = randomblob(900) WHERE id < 5200; "
                  "ROLLBACK TO s; RELEASE s") == SQLITE_OK,
          "savepoint rolled back");
    CHECK(exec(w, "UPDATE t SET v = zeroblob(1000) WHERE id % 7 = 0; COMMIT") == SQLITE_OK,
          "update and commit");
    CHECK(scalar(r, "SELECT count(*) FROM t") == 760, "the reader sees the big commit");
    CHECK(scalar(r, "SELECT count(*) FROM t WHERE id % 7 = 0 AND v = zeroblob(1000)") ==
              scalar(r, "SELECT count(*) FROM t WHERE id % 7 = 0"),
          "the reader sees the update");
    CHECK(integrity_ok(r), "integrity (reader, synchronous=%s)", sync);
    CHECK(integrity_ok(w), "integrity (writer, synchronous=%s)", sync);
    sqlite3_close(r);
    sqlite3_close(w);

    /* Reopened (the last close checkpointed and removed the WAL): everything is there. */
    CHECK(sqlite3_open_v2(path, &r, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "reopen");
    CHECK(scalar(r, "SELECT count(*) FROM t") == 760 && integrity_ok(r),
          "after reopening: 760 rows, intact (%s)", sync);
    sqlite3_close(r);
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fulcrum-walvfs-XXXXXX", t && *t ? t : "/tmp"); /* mkdtemp */
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/t.db", dir);
    CHECK(wal_write_vfs_register() == 0, "the VFS registers");
    CHECK(wal_write_vfs_register() == 0, "registering again is harmless");
    CHECK(sqlite3_vfs_find(NULL) != sqlite3_vfs_find(WAL_WRITE_VFS_NAME),
          "it is not the default VFS");
    run("FULL");
    run("OFF");
    char p[600];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
    CHECK_MAIN_END();
}
