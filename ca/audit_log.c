/*
 * ca/audit_log.c: the audit log's file and its group-committing writer thread (ca/audit_log.h).
 */
#include "ca/audit_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/cpu_load.h"
#include "common/log.h"
#include "common/metrics.h"

/* Records durable elsewhere (audit_log_append_logged) are gathered in memory and reach the
 * file's disk together, this long after the first of them was queued at most (plus the time of
 * the write and the sync) ... */
#define LOGGED_SYNC_MS 100
/* ... or once this many are queued. */
#define LOGGED_BATCH_MAX 1024
/* How much of the file's end audit_log_restore_begin searches for lines already there. */
#define RESTORE_WINDOW (16u << 20)

struct pending {
    struct pending *next;
    char *line; /* with its newline */
    size_t len;
    int logged;   /* durable elsewhere: no callback, no sync of its own */
    uint64_t key; /* its key (audit_log_append_logged) */
    struct event *ev; /* on the caller's base; NULL = call on the writer thread */
    audit_done_cb cb;
    void *arg;
    int ok;
};

struct audit_log {
    int fd;
    char path[4096];
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct pending *head, *tail;
    int stopping;
    int window_ms;                /* audit_log_set_window */
    long expected;                /* announced records not yet appended (audit_log_expect) */
    int expect_used;              /* audit_log_expect was called */
    struct timespec first_at;     /* monotonic: when head was queued */
    int waiting;                  /* the writer waits for its batch's deadline ... */
    struct timespec waiting_until; /* ... which is this */
    struct timespec last_sync_at; /* monotonic: when the last batch was synced */
    audit_log_stats stats;
    metric_series *m_records, *m_failures, *m_sync, *m_batch;
    /* Queued records with a caller waiting (audit_log_append), and queued logged ones: only
     * the first of the former wakes the writer; the latter wait for LOGGED_SYNC_MS, or for
     * LOGGED_BATCH_MAX of them, or for the former. */
    unsigned long queued_waited, queued_logged;
    int idle; /* the writer waits with nothing queued (and no deadline) */
    _Atomic uint64_t logged_synced; /* 1 + the last logged key synced; 0: none */
    /* The first logged key whose write failed (UINT64_MAX: none): what is reported synced never
     * passes it, so the CT log keeps that record (and those after) for the next start. */
    _Atomic uint64_t logged_cap;
};

static void register_metrics(audit_log *a)
{
    static const double sync_buckets[] = {.0001, .00025, .0005, .001, .0025, .005,
                                          .01,   .025,   .05,   .1,   .25,   1};
    static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    a->m_records = metric_get0(metrics_counter(
        "fulcrum_audit_records_total", "Certificates recorded durably in the audit log", NULL));
    a->m_failures = metric_get0(metrics_counter(
        "fulcrum_audit_failures_total",
        "Audit records that could not be written or synced (their certificates were withheld, "
        "or, with the embedded CT log, the records wait there for the next start)",
        NULL));
    a->m_sync = metric_get0(metrics_histogram(
        "fulcrum_audit_sync_seconds", "Time of one audit log batch write and fdatasync", NULL,
        sync_buckets, sizeof sync_buckets / sizeof sync_buckets[0]));
    a->m_batch = metric_get0(metrics_histogram(
        "fulcrum_audit_batch_records", "Records per audit log fdatasync (group commit)", NULL,
        batch_buckets, sizeof batch_buckets / sizeof batch_buckets[0]));
}

/* The directory of path, made durable after the file was created. */
static void sync_parent_dir(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

/* Creates the parent directory (0700) when it is missing; one level only. */
static int make_parent_dir(const char *path, char *why, size_t whylen)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, whylen, "cannot create the audit log's directory %.300s: %s", dir,
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* Drops a partial last line (a batch cut short by a crash: never answered). */
static int repair_tail(audit_log *a, char *why, size_t whylen)
{
    struct stat st;
    if (fstat(a->fd, &st) != 0) {
        snprintf(why, whylen, "cannot stat the audit log %.300s: %s", a->path, strerror(errno));
        return -1;
    }
    off_t size = st.st_size, end = size;
    char buf[4096];
    while (end > 0) {
        size_t n = end >= (off_t)sizeof buf ? sizeof buf : (size_t)end;
        ssize_t got = pread(a->fd, buf, n, end - (off_t)n);
        if (got != (ssize_t)n) {
            snprintf(why, whylen, "cannot read the audit log %.300s: %s", a->path,
                     got < 0 ? strerror(errno) : "short read");
            return -1;
        }
        ssize_t i = (ssize_t)n - 1;
        while (i >= 0 && buf[i] != '\n')
            i--;
        if (i >= 0) {
            end = end - (off_t)n + i + 1;
            break;
        }
        end -= (off_t)n;
    }
    if (end == size)
        return 0;
    if (ftruncate(a->fd, end) != 0 || fdatasync(a->fd) != 0) {
        snprintf(why, whylen, "cannot remove the partial last record of %.300s: %s", a->path,
                 strerror(errno));
        return -1;
    }
    log_warn("audit", "audit log %s ended with a partial record (%lld bytes, from a crash before "
                      "that certificate was handed out): removed",
             a->path, (long long)(size - end));
    return 0;
}

static void on_done_event(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    event_free(p->ev);
    p->cb(p->arg, p->ok);
    free(p->line);
    free(p);
}

static void finish(struct pending *p, int ok)
{
    if (p->logged) { /* nobody waits for it */
        free(p->line);
        free(p);
        return;
    }
    p->ok = ok;
    if (p->ev) {
        event_active(p->ev, EV_TIMEOUT, 1);
        return;
    }
    p->cb(p->arg, ok);
    free(p->line);
    free(p);
}

/* Writes all of the batch; 0 or -1 with errno. */
static int write_batch(int fd, struct pending *batch)
{
    struct iovec iov[IOV_MAX > 1024 ? 1024 : IOV_MAX];
    const int cap = (int)(sizeof iov / sizeof iov[0]);
    struct pending *p = batch;
    while (p) {
        int n = 0;
        for (; p && n < cap; p = p->next, n++) {
            iov[n].iov_base = p->line;
            iov[n].iov_len = p->len;
        }
        int i = 0;
        while (i < n) {
            ssize_t w = writev(fd, iov + i, n - i);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return -1;
            if (w == 0) {
                errno = EIO;
                return -1;
            }
            size_t left = (size_t)w;
            while (i < n && left >= iov[i].iov_len)
                left -= iov[i++].iov_len;
            if (i < n && left) {
                iov[i].iov_base = (char *)iov[i].iov_base + left;
                iov[i].iov_len -= left;
            }
        }
    }
    return 0;
}

static struct timespec ts_add_ms(struct timespec t, int ms)
{
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static int ts_before(struct timespec a, struct timespec b)
{
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

void audit_log_set_window(audit_log *a, int window_ms)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->window_ms = window_ms > 0 ? window_ms : 0;
    pthread_mutex_unlock(&a->mu);
}

void audit_log_expect(audit_log *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->expected++;
    a->expect_used = 1;
    pthread_mutex_unlock(&a->mu);
}

/* Until when the queued batch waits for company: the whole window while records are announced
 * (or none ever were); once none is outstanding, the share of it the process's load asks for
 * (cpu_load_window_share: none with cores idle, all of it when they are busy, as requests still
 * unread in their sockets are never announced). */
static struct timespec batch_deadline(const audit_log *a)
{
    int ms = a->window_ms;
    if (a->expect_used && a->expected == 0)
        ms = (int)(a->window_ms * cpu_load_window_share());
    return ts_add_ms(a->first_at, ms);
}

void audit_log_expect_done(audit_log *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    /* A batch may be waiting for its window: wake the writer only if its deadline moves at
     * least WINDOW_WAKE_MIN_MS earlier (a wake-up costs a context switch on each side). */
    int wake = a->expected > 0 && --a->expected == 0 && a->head && a->waiting &&
               ts_before(ts_add_ms(batch_deadline(a), WINDOW_WAKE_MIN_MS), a->waiting_until);
    pthread_mutex_unlock(&a->mu);
    if (wake) /* after the unlock, as in audit_log_append */
        pthread_cond_signal(&a->cond);
}

static void *writer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "audit-writer");
    audit_log *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        /* Wait for a record with a caller waiting, or for the logged ones' deadline (their
         * appends do not wake this thread, but for the first into an idle one and the
         * LOGGED_BATCH_MAX-th), or for the close (then everything queued is written). */
        while (!a->stopping && !a->queued_waited && a->queued_logged < LOGGED_BATCH_MAX) {
            if (!a->head) {
                a->idle = 1;
                pthread_cond_wait(&a->cond, &a->mu);
                a->idle = 0;
                continue;
            }
            struct timespec due = ts_add_ms(a->first_at, LOGGED_SYNC_MS), now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (!ts_before(now, due))
                break;
            pthread_cond_timedwait(&a->cond, &a->mu, &due);
        }
        if (!a->head) {
            if (a->stopping)
                break;
            continue;
        }
        /* Under load (the first record came within the window after the last sync), gather
         * until batch_deadline; appends after the first do not wake this thread, the last
         * withdrawn announcement does when the deadline moves earlier. */
        if (a->queued_waited && a->window_ms > 0 &&
            ts_before(a->first_at, ts_add_ms(a->last_sync_at, a->window_ms))) {
            for (;;) {
                struct timespec until = batch_deadline(a), now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (a->stopping || !ts_before(now, until))
                    break;
                a->waiting = 1;
                a->waiting_until = until;
                int rc = pthread_cond_timedwait(&a->cond, &a->mu, &until);
                a->waiting = 0;
                if (rc != 0)
                    break;
            }
        }
        struct pending *batch = a->head;
        a->head = a->tail = NULL;
        a->queued_waited = a->queued_logged = 0;
        pthread_mutex_unlock(&a->mu);

        unsigned long n = 0, n_logged = 0;
        uint64_t first_key = 0, last_key = 0;
        for (struct pending *p = batch; p; p = p->next) {
            n++;
            if (p->logged) {
                if (!n_logged++)
                    first_key = p->key;
                last_key = p->key;
            }
        }
        double t0 = metrics_now();
        /* Another process may append to the same file (an overlapping restart): each batch is
         * written under an exclusive flock, so batches never interleave. */
        int locked = flock(a->fd, LOCK_EX) == 0;
        off_t start = lseek(a->fd, 0, SEEK_END);
        int ok = locked && start >= 0 && write_batch(a->fd, batch) == 0 && fdatasync(a->fd) == 0;
        int err = errno;
        if (!ok && locked && start >= 0 && ftruncate(a->fd, start) == 0)
            fdatasync(a->fd);
        if (locked)
            flock(a->fd, LOCK_UN);
        if (!ok && n_logged == n) {
            log_error("audit", "cannot write %lu record%s to the audit log %s: %s; they are "
                               "kept in the CT log and written at the next start",
                      n, n == 1 ? "" : "s", a->path, strerror(err));
        } else if (!ok) {
            log_error("audit", "cannot write %lu record%s to the audit log %s: %s; their "
                               "certificates are withheld (500)",
                      n - n_logged, n - n_logged == 1 ? "" : "s", a->path, strerror(err));
        }
        metric_observe(a->m_sync, metrics_now() - t0);
        if (ok) {
            metric_observe(a->m_batch, (double)n);
            metric_add(a->m_records, n);
        } else {
            metric_add(a->m_failures, n);
        }

        pthread_mutex_lock(&a->mu);
        clock_gettime(CLOCK_MONOTONIC, &a->last_sync_at);
        if (ok) {
            a->stats.records += n;
            a->stats.batches++;
            if (n_logged)
                atomic_store(&a->logged_synced, last_key + 1);
        } else {
            a->stats.failed += n;
            if (n_logged && first_key < atomic_load(&a->logged_cap))
                atomic_store(&a->logged_cap, first_key);
        }
        pthread_mutex_unlock(&a->mu);
        while (batch) {
            struct pending *next = batch->next;
            finish(batch, ok);
            batch = next;
        }
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

audit_log *audit_log_open(const char *path, char *why, size_t whylen)
{
    if (!path || !*path) {
        snprintf(why, whylen, "no audit log path");
        return NULL;
    }
    if (strlen(path) >= sizeof ((audit_log *)0)->path) {
        snprintf(why, whylen, "audit log path too long");
        return NULL;
    }
    if (make_parent_dir(path, why, whylen) != 0)
        return NULL;
    audit_log *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    snprintf(a->path, sizeof a->path, "%s", path);
    atomic_store(&a->logged_cap, UINT64_MAX);
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cond, &ca);
    pthread_condattr_destroy(&ca);
    struct stat st;
    int existed = stat(path, &st) == 0;
    a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (a->fd < 0) {
        snprintf(why, whylen, "cannot open the audit log %.300s: %s", path, strerror(errno));
        audit_log_close(a);
        return NULL;
    }
    if (!existed)
        sync_parent_dir(path);
    /* pread needs a readable descriptor: repair through a second one, under the lock writers
     * hold while they append (so only a crash's partial line is ever seen). */
    int wfd = a->fd;
    if (flock(wfd, LOCK_EX) != 0) {
        snprintf(why, whylen, "cannot lock the audit log %.300s: %s", path, strerror(errno));
        audit_log_close(a);
        return NULL;
    }
    a->fd = open(path, O_RDWR | O_CLOEXEC);
    int rc = a->fd >= 0 ? repair_tail(a, why, whylen) : -1;
    if (a->fd < 0)
        snprintf(why, whylen, "cannot open the audit log %.300s: %s", path, strerror(errno));
    if (a->fd >= 0)
        close(a->fd);
    a->fd = wfd;
    flock(wfd, LOCK_UN);
    if (rc != 0) {
        audit_log_close(a);
        return NULL;
    }
    register_metrics(a);
    if (pthread_create(&a->thread, NULL, writer_main, a) != 0) {
        snprintf(why, whylen, "cannot start the audit log writer thread");
        audit_log_close(a);
        return NULL;
    }
    a->started = 1;
    return a;
}

/* Queues p for the writer; -1 when the log is closing (p is still the caller's). */
static int enqueue(audit_log *a, struct pending *p)
{
    pthread_mutex_lock(&a->mu);
    if (a->stopping || !a->started) {
        pthread_mutex_unlock(&a->mu);
        return -1;
    }
    /* The writer waits for the first record with a caller waiting; logged records wait for
     * their deadline (writer_main) and wake it only when it has none or when they fill a batch. */
    int wake;
    if (p->logged) {
        wake = ++a->queued_logged == LOGGED_BATCH_MAX || a->idle;
        a->idle = 0; /* one wake-up is enough */
    } else {
        wake = a->queued_waited++ == 0;
    }
    if (a->tail) {
        a->tail->next = p;
    } else {
        a->head = p;
        clock_gettime(CLOCK_MONOTONIC, &a->first_at);
    }
    a->tail = p;
    pthread_mutex_unlock(&a->mu);
    /* Signalled once the lock is released, so that the writer does not wake only to wait for
     * it (a second wake-up, ~10 us of a worker's time on a virtual machine). */
    if (wake)
        pthread_cond_signal(&a->cond);
    return 0;
}

int audit_log_append(audit_log *a, const char *line, struct event_base *base, audit_done_cb cb,
                     void *arg, char *why, size_t whylen)
{
    if (!a || !line || !cb) {
        snprintf(why, whylen, "audit_log_append: invalid arguments");
        return -1;
    }
    struct pending *p = calloc(1, sizeof *p);
    size_t n = strlen(line);
    if (p)
        p->line = malloc(n + 1);
    if (p && p->line && base) {
        p->ev = event_new(base, -1, 0, on_done_event, p);
        if (p->ev) /* top priority: as the CT log's answers (ct/log_writer.c, pending_new) */
            event_priority_set(p->ev, 0);
    }
    if (!p || !p->line || (base && !p->ev)) {
        if (p)
            free(p->line);
        free(p);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    memcpy(p->line, line, n);
    p->line[n] = '\n';
    p->len = n + 1;
    p->cb = cb;
    p->arg = arg;
    if (enqueue(a, p) != 0) {
        if (p->ev)
            event_free(p->ev);
        free(p->line);
        free(p);
        snprintf(why, whylen, "the audit log is closing");
        return -1;
    }
    return 0;
}

int audit_log_append_logged(audit_log *a, const char *line, size_t len, uint64_t key)
{
    struct pending *p = a ? calloc(1, sizeof *p) : NULL;
    if (p)
        p->line = malloc(len + 1);
    if (!p || !p->line) {
        if (p)
            free(p->line);
        free(p);
        return -1;
    }
    memcpy(p->line, line, len);
    p->line[len] = '\n';
    p->len = len + 1;
    p->logged = 1;
    p->key = key;
    if (enqueue(a, p) != 0) {
        free(p->line);
        free(p);
        return -1;
    }
    return 0;
}

uint64_t audit_log_logged_synced(audit_log *a)
{
    if (!a)
        return 0;
    uint64_t synced = atomic_load(&a->logged_synced), cap = atomic_load(&a->logged_cap);
    return synced < cap ? synced : cap;
}

struct audit_restore {
    audit_log *a;
    char *tail;       /* the file's last bytes (up to RESTORE_WINDOW) */
    size_t tail_len;
    int whole;        /* tail is the whole file */
    uint64_t last_key;
    int any;
    unsigned long appended;
};

audit_restore *audit_log_restore_begin(audit_log *a, char *why, size_t whylen)
{
    audit_restore *r = calloc(1, sizeof *r);
    int fd = r ? open(a->path, O_RDONLY | O_CLOEXEC) : -1;
    struct stat st;
    if (!r || fd < 0 || fstat(fd, &st) != 0) {
        snprintf(why, whylen, "cannot read the audit log %.300s: %s", a->path,
                 r ? strerror(errno) : "out of memory");
        if (fd >= 0)
            close(fd);
        free(r);
        return NULL;
    }
    r->a = a;
    off_t size = st.st_size;
    size_t want = size > (off_t)RESTORE_WINDOW ? RESTORE_WINDOW : (size_t)size;
    r->whole = (off_t)want == size;
    r->tail = malloc(want + 1);
    ssize_t got = r->tail ? pread(fd, r->tail, want, size - (off_t)want) : -1;
    close(fd);
    if (got != (ssize_t)want) {
        snprintf(why, whylen, "cannot read the audit log %.300s: %s", a->path,
                 got < 0 ? strerror(errno) : "short read");
        free(r->tail);
        free(r);
        return NULL;
    }
    r->tail_len = want;
    return r;
}

/* line (no newline) is a whole line of the tail. */
static int tail_has(const audit_restore *r, const char *line, size_t len)
{
    const char *t = r->tail, *end = r->tail + r->tail_len;
    while (t < end) {
        const char *hit = memmem(t, (size_t)(end - t), line, len);
        if (!hit)
            return 0;
        int starts = hit == r->tail ? r->whole : hit[-1] == '\n';
        if (starts && hit + len < end && hit[len] == '\n')
            return 1;
        t = hit + 1;
    }
    return 0;
}

int audit_log_restore_line(audit_restore *r, const char *line, size_t len, uint64_t key)
{
    r->last_key = key;
    r->any = 1;
    if (tail_has(r, line, len))
        return 0;
    struct pending p = {.line = (char *)line, .len = len};
    char nl = '\n';
    struct pending q = {.line = &nl, .len = 1};
    p.next = &q;
    audit_log *a = r->a;
    int locked = flock(a->fd, LOCK_EX) == 0;
    int ok = locked && write_batch(a->fd, &p) == 0;
    if (locked)
        flock(a->fd, LOCK_UN);
    if (!ok)
        return -1;
    r->appended++;
    return 1;
}

long audit_log_restore_end(audit_restore *r, char *why, size_t whylen)
{
    audit_log *a = r->a;
    long n = (long)r->appended;
    if (n > 0 && fdatasync(a->fd) != 0) {
        snprintf(why, whylen, "cannot sync the audit log %.300s: %s", a->path, strerror(errno));
        n = -1;
    }
    if (n >= 0 && r->any)
        atomic_store(&a->logged_synced, r->last_key + 1);
    free(r->tail);
    free(r);
    return n;
}

void audit_log_get_stats(audit_log *a, audit_log_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    *out = a->stats;
    pthread_mutex_unlock(&a->mu);
}

void audit_log_close(audit_log *a)
{
    if (!a)
        return;
    if (a->started) {
        pthread_mutex_lock(&a->mu);
        a->stopping = 1;
        pthread_cond_signal(&a->cond);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thread, NULL);
    }
    if (a->fd >= 0)
        close(a->fd);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
