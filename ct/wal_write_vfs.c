#include "ct/wal_write_vfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* One open file: ours, then the wrapped VFS's own file object right after it. */
struct wal_file {
    sqlite3_file base;
    sqlite3_file *real;
    struct wal_file *peer; /* a database file and its open WAL, both opened through this VFS */
    int is_wal;
    unsigned char *buf; /* gathered writes of a WAL: len bytes at file offset off */
    size_t len, cap;
    sqlite3_int64 off;
};

static sqlite3_vfs g_vfs;
static sqlite3_vfs *g_real;
static atomic_ulong g_writes;
static const sqlite3_io_methods g_methods;

static int flush(struct wal_file *f)
{
    if (f->len == 0)
        return SQLITE_OK;
    atomic_fetch_add(&g_writes, 1);
    int rc = f->real->pMethods->xWrite(f->real, f->buf, (int)f->len, f->off);
    f->len = 0;
    return rc;
}

static int x_close(sqlite3_file *p)
{
    struct wal_file *f = (struct wal_file *)p;
    int rc = flush(f);
    if (f->peer)
        f->peer->peer = NULL;
    free(f->buf);
    f->buf = NULL;
    int rc2 = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
    return rc != SQLITE_OK ? rc : rc2;
}

static int x_read(sqlite3_file *p, void *out, int amt, sqlite3_int64 off)
{
    struct wal_file *f = (struct wal_file *)p;
    int rc = f->is_wal ? flush(f) : SQLITE_OK;
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, out, amt, off);
}

/* Room for need bytes in f's buffer (need <= WAL_WRITE_VFS_MAX): 0, or -1 out of memory. */
static int reserve(struct wal_file *f, size_t need)
{
    if (need <= f->cap)
        return 0;
    size_t cap = f->cap ? f->cap : 64 * 1024;
    while (cap < need)
        cap *= 2;
    cap = cap > WAL_WRITE_VFS_MAX ? WAL_WRITE_VFS_MAX : cap;
    unsigned char *b = realloc(f->buf, cap);
    if (!b)
        return -1;
    f->buf = b;
    f->cap = cap;
    return 0;
}

/* A WAL write that continues the gathered ones joins them; any other flushes them first. */
static int x_write(sqlite3_file *p, const void *data, int amt, sqlite3_int64 off)
{
    struct wal_file *f = (struct wal_file *)p;
    if (!f->is_wal)
        return f->real->pMethods->xWrite(f->real, data, amt, off);
    size_t n = (size_t)amt;
    int joins = f->len && off == f->off + (sqlite3_int64)f->len;
    if (!joins || f->len + n > WAL_WRITE_VFS_MAX || reserve(f, f->len + n) != 0) {
        int rc = flush(f);
        if (rc != SQLITE_OK)
            return rc;
        if (n > WAL_WRITE_VFS_MAX || reserve(f, n) != 0) {
            atomic_fetch_add(&g_writes, 1);
            return f->real->pMethods->xWrite(f->real, data, amt, off);
        }
        f->off = off;
    }
    memcpy(f->buf + f->len, data, n);
    f->len += n;
    return SQLITE_OK;
}

static int x_truncate(sqlite3_file *p, sqlite3_int64 size)
{
    struct wal_file *f = (struct wal_file *)p;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int x_sync(sqlite3_file *p, int flags)
{
    struct wal_file *f = (struct wal_file *)p;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int x_file_size(sqlite3_file *p, sqlite3_int64 *size)
{
    struct wal_file *f = (struct wal_file *)p;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int x_lock(sqlite3_file *p, int lock)
{
    sqlite3_file *r = ((struct wal_file *)p)->real;
    return r->pMethods->xLock(r, lock);
}

static int x_unlock(sqlite3_file *p, int lock)
{
    sqlite3_file *r = ((struct wal_file *)p)->real;
    return r->pMethods->xUnlock(r, lock);
}

static int x_check_reserved_lock(sqlite3_file *p, int *out)
{
    sqlite3_file *r = ((struct wal_file *)p)->real;
    return r->pMethods->xCheckReservedLock(r, out);
}

static int x_file_control(sqlite3_file *p, int op, void *arg)
{
    struct wal_file *f = (struct wal_file *)p;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int x_sector_size(sqlite3_file *p)
{
    sqlite3_file *r = ((struct wal_file *)p)->real;
    return r->pMethods->xSectorSize(r);
}

static int x_device_characteristics(sqlite3_file *p)
{
    sqlite3_file *r = ((struct wal_file *)p)->real;
    return r->pMethods->xDeviceCharacteristics(r);
}

static int x_shm_map(sqlite3_file *p, int page, int size, int extend, void volatile **out)
{
    sqlite3_file *r = ((struct wal_file *)p)->real;
    if (r->pMethods->iVersion < 2 || !r->pMethods->xShmMap)
        return SQLITE_IOERR_SHMMAP;
    return r->pMethods->xShmMap(r, page, size, extend, out);
}

static int x_shm_lock(sqlite3_file *p, int offset, int n, int flags)
{
    sqlite3_file *r = ((struct wal_file *)p)->real;
    return r->pMethods->xShmLock(r, offset, n, flags);
}

/* SQLite calls this between the two copies of the wal-index header that publish a commit: the
 * commit's frames must be in the WAL file before any reader can learn of them. A synced WAL
 * (synchronous=FULL) was flushed by its sync already; an unsynced one (the log's index) is
 * flushed here, where a failure cannot be reported to SQLite: the process stops rather than let
 * readers see frames that are not in the file (the index is rebuilt at the next start). */
static void x_shm_barrier(sqlite3_file *p)
{
    struct wal_file *f = (struct wal_file *)p;
    int rc;
    if (f->peer && f->peer->is_wal && (rc = flush(f->peer)) != SQLITE_OK) {
        log_error("ctlog", "cannot write a committed WAL batch to its file (%s): stopping",
                  sqlite3_errstr(rc));
        abort();
    }
    f->real->pMethods->xShmBarrier(f->real);
}

static int x_shm_unmap(sqlite3_file *p, int delete_flag)
{
    sqlite3_file *r = ((struct wal_file *)p)->real;
    return r->pMethods->xShmUnmap(r, delete_flag);
}

static int x_fetch(sqlite3_file *p, sqlite3_int64 off, int amt, void **out)
{
    sqlite3_file *r = ((struct wal_file *)p)->real;
    if (r->pMethods->iVersion < 3 || !r->pMethods->xFetch) {
        *out = NULL;
        return SQLITE_OK;
    }
    return r->pMethods->xFetch(r, off, amt, out);
}

static int x_unfetch(sqlite3_file *p, sqlite3_int64 off, void *ptr)
{
    sqlite3_file *r = ((struct wal_file *)p)->real;
    if (r->pMethods->iVersion < 3 || !r->pMethods->xUnfetch)
        return SQLITE_OK;
    return r->pMethods->xUnfetch(r, off, ptr);
}

static const sqlite3_io_methods g_methods = {
    3,           x_close,        x_read,      x_write,      x_truncate,
    x_sync,      x_file_size,    x_lock,      x_unlock,     x_check_reserved_lock,
    x_file_control, x_sector_size, x_device_characteristics, x_shm_map, x_shm_lock,
    x_shm_barrier, x_shm_unmap,  x_fetch,     x_unfetch,
};

static int x_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
                  int *out_flags)
{
    (void)vfs;
    struct wal_file *f = (struct wal_file *)file;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    memset(f->real, 0, (size_t)g_real->szOsFile);
    int rc = g_real->xOpen(g_real, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (f->real->pMethods)
            f->real->pMethods->xClose(f->real);
        f->base.pMethods = NULL;
        return rc;
    }
    f->base.pMethods = &g_methods;
    if ((flags & SQLITE_OPEN_WAL) && name) {
        f->is_wal = 1;
        struct wal_file *db = (struct wal_file *)sqlite3_database_file_object(name);
        if (db && db->base.pMethods == &g_methods) {
            db->peer = f;
            f->peer = db;
        }
    }
    return SQLITE_OK;
}

/* The rest is the wrapped VFS's. */
static int x_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    (void)v;
    return g_real->xDelete(g_real, name, sync_dir);
}

static int x_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    (void)v;
    return g_real->xAccess(g_real, name, flags, out);
}

static int x_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
    (void)v;
    return g_real->xFullPathname(g_real, name, n, out);
}

static void *x_dl_open(sqlite3_vfs *v, const char *name)
{
    (void)v;
    return g_real->xDlOpen(g_real, name);
}

static void x_dl_error(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    g_real->xDlError(g_real, n, out);
}

static void (*x_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    (void)v;
    return g_real->xDlSym(g_real, h, sym);
}

static void x_dl_close(sqlite3_vfs *v, void *h)
{
    (void)v;
    g_real->xDlClose(g_real, h);
}

static int x_randomness(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return g_real->xRandomness(g_real, n, out);
}

static int x_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return g_real->xSleep(g_real, us);
}

static int x_current_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return g_real->xCurrentTime(g_real, out);
}

static int x_get_last_error(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return g_real->xGetLastError ? g_real->xGetLastError(g_real, n, out) : 0;
}

static int x_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    if (g_real->iVersion >= 2 && g_real->xCurrentTimeInt64)
        return g_real->xCurrentTimeInt64(g_real, out);
    double d = 0;
    int rc = g_real->xCurrentTime(g_real, &d);
    *out = (sqlite3_int64)(d * 86400000.0);
    return rc;
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_registered = -1;

static void do_register(void)
{
    if (sqlite3_initialize() != SQLITE_OK || !(g_real = sqlite3_vfs_find(NULL)))
        return;
    g_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(struct wal_file) + g_real->szOsFile,
        .mxPathname = g_real->mxPathname,
        .zName = WAL_WRITE_VFS_NAME,
        .xOpen = x_open,
        .xDelete = x_delete,
        .xAccess = x_access,
        .xFullPathname = x_full_pathname,
        .xDlOpen = x_dl_open,
        .xDlError = x_dl_error,
        .xDlSym = x_dl_sym,
        .xDlClose = x_dl_close,
        .xRandomness = x_randomness,
        .xSleep = x_sleep,
        .xCurrentTime = x_current_time,
        .xGetLastError = x_get_last_error,
        .xCurrentTimeInt64 = x_current_time_int64,
    };
    g_registered = sqlite3_vfs_register(&g_vfs, 0) == SQLITE_OK ? 0 : -1;
}

int wal_write_vfs_register(void)
{
    pthread_once(&g_once, do_register);
    return g_registered;
}

unsigned long wal_write_vfs_writes(void) { return atomic_load(&g_writes); }
