/*
 * tests/unit/test_audit_log.c: ca/audit_log.h: one line per record, callbacks only after the
 * record is in the file, concurrent appends (group commit), the window and its adaptive end
 * (audit_log_expect), callbacks on an event_base, torn-tail
 * repair, the lock against a second writer, write failures, and the record's JSON.
 */
#include <dirent.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ca/audit_log.h"
#include "unit/check.h"

static char g_dir[256];

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- basic: callbacks after the line is in the file ---- */

struct basic {
    const char *path;
    atomic_int done, ok, seen_in_file;
};

static void basic_cb(void *arg, int ok)
{
    struct basic *b = arg;
    char *text = slurp(b->path, NULL);
    if (text && strstr(text, "{\"n\":1}\n"))
        atomic_fetch_add(&b->seen_in_file, 1);
    free(text);
    atomic_fetch_add(&b->ok, ok);
    atomic_fetch_add(&b->done, 1);
}

static void wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 2000 && atomic_load(v) < want; i++)
        usleep(5000);
}

static void test_basic(void)
{
    char path[512], why[256] = "";
    snprintf(path, sizeof path, "%s/sub/audit.log", g_dir);
    audit_log *a = audit_log_open(path, why, sizeof why);
    CHECK(a != NULL, "open creates the directory and the file: %s", why);
    if (!a)
        return;
    struct basic b = {.path = path};
    CHECK(audit_log_append(a, "{\"n\":1}", NULL, basic_cb, &b, why, sizeof why) == 0, "append");
    wait_for(&b.done, 1);
    CHECK(atomic_load(&b.done) == 1 && atomic_load(&b.ok) == 1, "callback ran once, ok");
    CHECK(atomic_load(&b.seen_in_file) == 1, "the record was in the file when the callback ran");
    audit_log_stats st;
    audit_log_get_stats(a, &st);
    CHECK(st.records == 1 && st.batches == 1 && st.failed == 0, "stats 1/1/0");

    audit_log_close(a);
    char *text = slurp(path, NULL);
    CHECK_STREQ(text, "{\"n\":1}\n", "file content");
    free(text);

    /* Reopen appends after the existing record. */
    a = audit_log_open(path, why, sizeof why);
    struct basic b2 = {.path = path};
    audit_log_append(a, "{\"n\":2}", NULL, basic_cb, &b2, why, sizeof why);
    wait_for(&b2.done, 1);
    audit_log_close(a);
    text = slurp(path, NULL);
    CHECK_STREQ(text, "{\"n\":1}\n{\"n\":2}\n", "reopened log appends");
    free(text);
    char why3[256] = "";
    CHECK(audit_log_append(NULL, "x", NULL, basic_cb, &b2, why3, sizeof why3) == -1,
          "append on no log fails");
}

/* ---- group-commit window ---- */

static long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* A new audit log <g_dir>/name (its path in path) with a group-commit window; NULL (a failed
 * check) if it cannot be opened. */
static audit_log *open_windowed(const char *name, int window_ms, char *path, size_t pathlen)
{
    char why[256] = "";
    snprintf(path, pathlen, "%s/%s", g_dir, name);
    audit_log *a = audit_log_open(path, why, sizeof why);
    CHECK(a != NULL, "open %s: %s", name, why);
    if (a)
        audit_log_set_window(a, window_ms);
    return a;
}

/* audit_log_set_window: a record to an idle log is synced at once; records that follow a sync
 * within the window wait for it to close and share one sync. */
static void test_window(void)
{
    enum { WINDOW_MS = 500 };
    char path[512], why[256] = "";
    audit_log *a = open_windowed("window.log", WINDOW_MS, path, sizeof path);
    if (!a)
        return;
    struct basic b1 = {.path = path}, b2 = {.path = path}, b3 = {.path = path},
                 b4 = {.path = path};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    audit_log_append(a, "{\"w\":1}", NULL, basic_cb, &b1, why, sizeof why);
    wait_for(&b1.done, 1);
    long idle_ms = ms_since(&t0);
    CHECK(atomic_load(&b1.ok) == 1 && idle_ms < WINDOW_MS - 100,
          "a record to an idle log is synced at once (%ld ms, window %d ms)", idle_ms, WINDOW_MS);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    audit_log_append(a, "{\"w\":2}", NULL, basic_cb, &b2, why, sizeof why);
    usleep(50000);
    CHECK(atomic_load(&b2.done) == 0, "a record right after a sync waits for the window");
    audit_log_append(a, "{\"w\":3}", NULL, basic_cb, &b3, why, sizeof why);
    wait_for(&b2.done, 1);
    wait_for(&b3.done, 1);
    long busy_ms = ms_since(&t0);
    audit_log_stats st;
    audit_log_get_stats(a, &st);
    CHECK(atomic_load(&b2.ok) == 1 && atomic_load(&b3.ok) == 1 && busy_ms >= WINDOW_MS - 60,
          "both synced once the window closed (%ld ms)", busy_ms);
    CHECK(st.records == 3 && st.batches == 2, "the two shared one sync: %lu records in %lu",
          st.records, st.batches);
    usleep((WINDOW_MS + 200) * 1000);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    audit_log_append(a, "{\"w\":4}", NULL, basic_cb, &b4, why, sizeof why);
    wait_for(&b4.done, 1);
    idle_ms = ms_since(&t0);
    audit_log_get_stats(a, &st);
    CHECK(atomic_load(&b4.ok) == 1 && idle_ms < WINDOW_MS - 100 && st.batches == 3,
          "idle again: synced at once (%ld ms)", idle_ms);
    audit_log_close(a);
    char *text = slurp(path, NULL);
    CHECK_STREQ(text, "{\"w\":1}\n{\"w\":2}\n{\"w\":3}\n{\"w\":4}\n", "file content");
    free(text);
}

/* audit_log_expect: once records are announced, a batch under load waits only while an
 * announced record is outstanding (never past the window); with none outstanding it is synced at
 * once. */
static void test_window_adaptive(void)
{
    enum { WINDOW_MS = 1000 };
    char path[512], why[256] = "";
    audit_log *a = open_windowed("adaptive.log", WINDOW_MS, path, sizeof path);
    if (!a)
        return;
    struct basic b[5];
    for (int i = 0; i < 5; i++)
        b[i] = (struct basic){.path = path};
    struct timespec t0;
    audit_log_expect(a);
    audit_log_append(a, "{\"a\":1}", NULL, basic_cb, &b[0], why, sizeof why);
    audit_log_expect_done(a);
    wait_for(&b[0].done, 1);

    /* Under load, two more announced; the first arrives, the batch waits for the second. */
    audit_log_expect(a);
    audit_log_expect(a);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    audit_log_append(a, "{\"a\":2}", NULL, basic_cb, &b[1], why, sizeof why);
    audit_log_expect_done(a);
    usleep(150000);
    CHECK(atomic_load(&b[1].done) == 0, "a batch waits while a record is still announced");
    audit_log_append(a, "{\"a\":3}", NULL, basic_cb, &b[2], why, sizeof why);
    audit_log_expect_done(a);
    wait_for(&b[1].done, 1);
    wait_for(&b[2].done, 1);
    long ms = ms_since(&t0);
    audit_log_stats st;
    audit_log_get_stats(a, &st);
    CHECK(atomic_load(&b[2].ok) == 1 && ms >= 140 && ms < WINDOW_MS - 300 && st.batches == 2,
          "synced together once the last announced record came, before the window closed "
          "(%ld ms, %lu syncs)", ms, st.batches);

    /* Under load, nothing announced: at once. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    audit_log_append(a, "{\"a\":4}", NULL, basic_cb, &b[3], why, sizeof why);
    wait_for(&b[3].done, 1);
    ms = ms_since(&t0);
    CHECK(atomic_load(&b[3].ok) == 1 && ms < WINDOW_MS - 300,
          "nothing announced: synced at once (%ld ms)", ms);

    /* An announcement never withdrawn: the window still ends the wait. */
    audit_log_expect(a);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    audit_log_append(a, "{\"a\":5}", NULL, basic_cb, &b[4], why, sizeof why);
    wait_for(&b[4].done, 1);
    ms = ms_since(&t0);
    CHECK(atomic_load(&b[4].ok) == 1 && ms >= WINDOW_MS - 60 && ms < 3 * WINDOW_MS,
          "an outstanding announcement holds the batch for the window, no longer (%ld ms)", ms);
    audit_log_expect_done(a);
    audit_log_close(a);
    char *text = slurp(path, NULL);
    CHECK_STREQ(text, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}\n{\"a\":5}\n", "file content");
    free(text);
}

/* ---- concurrency ---- */

#define THREADS 8
#define PER_THREAD 250

struct conc {
    audit_log *a;
    int id;
    atomic_int *done, *ok;
};

static void conc_cb(void *arg, int ok)
{
    struct conc *c = arg;
    atomic_fetch_add(c->ok, ok);
    atomic_fetch_add(c->done, 1);
}

static void *conc_main(void *arg)
{
    struct conc *c = arg;
    char line[64], why[128];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(line, sizeof line, "{\"t\":%d,\"i\":%d}", c->id, i);
        if (audit_log_append(c->a, line, NULL, conc_cb, c, why, sizeof why) != 0)
            atomic_fetch_add(c->done, 1);
    }
    return NULL;
}

/* Threads append through two handles on one file (as two servers would). */
static void test_concurrent(void)
{
    char path[512], why[256] = "";
    snprintf(path, sizeof path, "%s/conc.log", g_dir);
    audit_log *a = audit_log_open(path, why, sizeof why);
    audit_log *a2 = audit_log_open(path, why, sizeof why);
    CHECK(a != NULL && a2 != NULL, "open twice: %s", why);
    if (!a || !a2)
        return;
    atomic_int done = 0, ok = 0;
    struct conc c[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        c[i] = (struct conc){.a = i % 2 ? a2 : a, .id = i, .done = &done, .ok = &ok};
        pthread_create(&t[i], NULL, conc_main, &c[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    wait_for(&done, THREADS * PER_THREAD);
    CHECK(atomic_load(&ok) == THREADS * PER_THREAD, "every record ok (%d)", atomic_load(&ok));
    audit_log_stats st, st2;
    audit_log_get_stats(a, &st);
    audit_log_get_stats(a2, &st2);
    audit_log_close(a);
    audit_log_close(a2);
    st.records += st2.records;
    st.batches += st2.batches;
    CHECK(st.records == THREADS * PER_THREAD, "stats.records %lu", st.records);
    printf("fact: %d concurrent records in %lu fdatasync batches\n", THREADS * PER_THREAD,
           st.batches);
    CHECK(st.batches >= 1 && st.batches <= st.records, "batches %lu", st.batches);

    char *text = slurp(path, NULL);
    CHECK(count_lines(text) == THREADS * PER_THREAD, "one line per record (%zu)",
          count_lines(text));
    /* Every record exactly once, each line whole. */
    static unsigned char seen[THREADS][PER_THREAD];
    int dup = 0, bad = 0;
    for (char *line = text, *nl; line && (nl = strchr(line, '\n')); line = nl + 1) {
        int tt = -1, ii = -1;
        if (sscanf(line, "{\"t\":%d,\"i\":%d}", &tt, &ii) != 2 || tt < 0 || tt >= THREADS ||
            ii < 0 || ii >= PER_THREAD) {
            bad++;
            continue;
        }
        dup += seen[tt][ii]++ > 0;
    }
    CHECK(bad == 0 && dup == 0, "no torn or duplicated lines (bad %d, dup %d)", bad, dup);
    free(text);
}

/* ---- callbacks on an event_base ---- */

struct on_base {
    pthread_t want;
    int calls, on_right_thread;
    struct event_base *base;
};

static void base_cb(void *arg, int ok)
{
    struct on_base *o = arg;
    o->calls++;
    o->on_right_thread += pthread_equal(pthread_self(), o->want) && ok;
    if (o->calls == 3)
        event_base_loopbreak(o->base);
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

static void test_event_base(void)
{
    char path[512], why[256] = "";
    snprintf(path, sizeof path, "%s/base.log", g_dir);
    audit_log *a = audit_log_open(path, why, sizeof why);
    struct event_base *base = event_base_new();
    struct on_base o = {.want = pthread_self(), .base = base};
    for (int i = 0; i < 3; i++)
        audit_log_append(a, "{\"x\":true}", base, base_cb, &o, why, sizeof why);
    struct event *guard = evtimer_new(base, on_guard, base);
    struct timeval tv = {10, 0};
    evtimer_add(guard, &tv);
    event_base_dispatch(base);
    CHECK(o.calls == 3 && o.on_right_thread == 3, "3 callbacks on the base's thread (%d, %d)",
          o.calls, o.on_right_thread);
    event_free(guard);
    audit_log_close(a);
    event_base_free(base);
}

/* An audit answer comes before work the worker has not started (as the CT log's, see
 * test_ct_group_commit's answer_first): on a base with two priorities, the first of 40 ready
 * callbacks appends a record and returns once the writer has activated its answer, which must
 * run next. */
struct order_ctx {
    audit_log *a;
    struct event_base *base;
    int ran, answered_after, ok;
};

static void order_done(void *arg, int ok)
{
    struct order_ctx *o = arg;
    o->answered_after = o->ran;
    o->ok = ok;
}

static void order_work(evutil_socket_t fd, short what, void *arg)
{
    struct order_ctx *o = arg;
    if (o->ran++ == 0) {
        char why[256] = "";
        int before = event_base_get_num_events(o->base, EVENT_BASE_COUNT_ACTIVE);
        if (audit_log_append(o->a, "{\"order\":1}", o->base, order_done, o, why, sizeof why) ==
            0) {
            struct timespec t0, t;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            do {
                usleep(1000);
                clock_gettime(CLOCK_MONOTONIC, &t);
            } while (event_base_get_num_events(o->base, EVENT_BASE_COUNT_ACTIVE) <= before &&
                     t.tv_sec - t0.tv_sec < 10);
        }
    }
    usleep(1000);
}

static void test_answer_first(void)
{
    char path[512], why[256] = "";
    snprintf(path, sizeof path, "%s/order.log", g_dir);
    audit_log *a = audit_log_open(path, why, sizeof why);
    struct event_base *base = event_base_new();
    CHECK(a && base && event_base_priority_init(base, 2) == 0,
          "order: a log and a base with two priorities (%s)", why);
    if (!a || !base) {
        audit_log_close(a);
        event_base_free(base);
        return;
    }
    struct order_ctx o = {.a = a, .base = base, .answered_after = -1};
    struct event *work[40];
    for (int i = 0; i < 40; i++) {
        work[i] = event_new(base, -1, 0, order_work, &o); /* default priority: 1 */
        event_active(work[i], EV_TIMEOUT, 0);
    }
    event_base_loop(base, EVLOOP_NONBLOCK);
    CHECK(o.ok && o.answered_after == 1,
          "order: the answer ran right after the callback that appended (after %d of 40, ok %d)",
          o.answered_after, o.ok);
    for (int i = 0; i < 40; i++)
        event_free(work[i]);
    audit_log_close(a);
    event_base_free(base);
}

/* ---- torn tail ---- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static void test_torn_tail(void)
{
    char path[512], why[256] = "";
    snprintf(path, sizeof path, "%s/torn.log", g_dir);
    write_text(path, "{\"a\":1}\n{\"b\":2}\n{\"c\":");
    audit_log *a = audit_log_open(path, why, sizeof why);
    CHECK(a != NULL, "open repairs: %s", why);
    audit_log_close(a);
    char *text = slurp(path, NULL);
    CHECK_STREQ(text, "{\"a\":1}\n{\"b\":2}\n", "partial last line removed");
    free(text);

    write_text(path, "no newline at all");
    a = audit_log_open(path, why, sizeof why);
    audit_log_close(a);
    size_t len = 99;
    text = slurp(path, &len);
    CHECK(text && len == 0, "a single partial line is removed (len %zu)", len);
    free(text);

    /* A long file whose tail spans more than one 4 KiB block. */
    char *big = malloc(20000);
    memset(big, 'x', 19998);
    big[0] = '{';
    big[9000] = '\n';
    big[19998] = '\0';
    write_text(path, big);
    a = audit_log_open(path, why, sizeof why);
    audit_log_close(a);
    text = slurp(path, &len);
    CHECK(len == 9001 && text[9000] == '\n', "tail across blocks cut at the last newline (%zu)",
          len);
    free(text);
    free(big);
}

/* ---- records durable elsewhere (the embedded CT log), and their restore at start ---- */

static void test_logged(void)
{
    char path[512], why[256] = "";
    snprintf(path, sizeof path, "%s/logged.log", g_dir);
    audit_log *a = audit_log_open(path, why, sizeof why);
    CHECK(a != NULL, "open: %s", why);
    if (!a)
        return;
    CHECK(audit_log_logged_synced(a) == 0, "nothing synced yet");
    CHECK(audit_log_append_logged(a, "{\"k\":10}", 8, 10) == 0 &&
              audit_log_append_logged(a, "{\"k\":11}", 8, 11) == 0 &&
              audit_log_append_logged(a, "{\"k\":12}", 8, 12) == 0,
          "three logged records queued");
    /* Synced at most 100 ms after the first write: allow a loaded machine 5 s. */
    for (int i = 0; i < 500 && audit_log_logged_synced(a) != 13; i++)
        usleep(10000);
    CHECK(audit_log_logged_synced(a) == 13, "synced up to key 12 (1 + key: %llu)",
          (unsigned long long)audit_log_logged_synced(a));
    char *text = slurp(path, NULL);
    CHECK_STREQ(text, "{\"k\":10}\n{\"k\":11}\n{\"k\":12}\n", "in the file, in order");
    free(text);
    audit_log_stats st;
    audit_log_get_stats(a, &st);
    CHECK(st.records == 3, "counted once synced (%lu)", st.records);
    /* Closing syncs what was written since. */
    CHECK(audit_log_append_logged(a, "{\"k\":13}", 8, 13) == 0, "one more");
    audit_log_close(a);
    text = slurp(path, NULL);
    CHECK(count_lines(text) == 4, "written by the close (%zu lines)", count_lines(text));
    free(text);

    /* Restore: lines already in the file (whole lines only) are skipped, the others appended
     * in order, then synced; the last key becomes the synced one. */
    a = audit_log_open(path, why, sizeof why);
    audit_restore *r = a ? audit_log_restore_begin(a, why, sizeof why) : NULL;
    CHECK(r != NULL, "restore begins: %s", why);
    if (r) {
        CHECK(audit_log_restore_line(r, "{\"k\":12}", 8, 12) == 0, "a line in the file: skipped");
        CHECK(audit_log_restore_line(r, "{\"k\":13}", 8, 13) == 0, "the last line: skipped");
        CHECK(audit_log_restore_line(r, "{\"k\":1", 6, 14) == 1,
              "a prefix of a line in the file is not that line: appended");
        CHECK(audit_log_restore_line(r, "\"k\":11}", 7, 15) == 1,
              "a suffix of a line in the file is not that line: appended");
        CHECK(audit_log_restore_line(r, "{\"k\":16}", 8, 16) == 1, "a new line: appended");
        CHECK(audit_log_restore_end(r, why, sizeof why) == 3, "three appended: %s", why);
        CHECK(audit_log_logged_synced(a) == 17, "synced up to the last key (%llu)",
              (unsigned long long)audit_log_logged_synced(a));
    }
    audit_log_close(a);
    text = slurp(path, NULL);
    CHECK_STREQ(text,
                "{\"k\":10}\n{\"k\":11}\n{\"k\":12}\n{\"k\":13}\n{\"k\":1\n\"k\":11}\n{\"k\":16}\n",
                "the file after the restore");
    free(text);
}

/* The voluntary context switches of this process's thread named `name` (-1: none such). */
static long thread_switches(const char *name)
{
    char path[512], comm[64], line[256];
    long found = -1;
    snprintf(path, sizeof path, "/proc/%d/task", (int)getpid());
    DIR *dir = opendir(path);
    struct dirent *e;
    while (dir && found < 0 && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%s/comm", (int)getpid(), e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        int same = fgets(comm, sizeof comm, f) && strncmp(comm, name, strlen(name)) == 0 &&
                   comm[strlen(name)] == '\n';
        fclose(f);
        if (!same)
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%s/status", (int)getpid(), e->d_name);
        f = fopen(path, "r");
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &found) == 1)
                break;
        if (f)
            fclose(f);
    }
    if (dir)
        closedir(dir);
    return found;
}

/* Logged records do not wake the writer one by one: eight appended 5 ms apart are written and
 * synced together. The writer blocks a few times (after the first append's wake-up until the
 * deadline, up to three times in the fdatasync for the disk, then idle), not once per record. */
static void test_logged_gathered(void)
{
    char path[512], why[256] = "";
    snprintf(path, sizeof path, "%s/gathered.log", g_dir);
    audit_log *a = audit_log_open(path, why, sizeof why);
    CHECK(a != NULL, "open: %s", why);
    if (!a)
        return;
    long before = -1;
    for (int i = 0; i < 100 && before < 0; i++) { /* the thread names itself as it starts */
        usleep(1000);
        before = thread_switches("audit-writer");
    }
    CHECK(before >= 0, "the writer thread is found");
    for (int k = 0; k < 8; k++) {
        char line[32];
        int n = snprintf(line, sizeof line, "{\"k\":%d}", k);
        CHECK(audit_log_append_logged(a, line, (size_t)n, (uint64_t)k) == 0, "key %d queued", k);
        usleep(5000);
    }
    for (int i = 0; i < 500 && audit_log_logged_synced(a) != 8; i++)
        usleep(10000);
    CHECK(audit_log_logged_synced(a) == 8, "all eight synced (%llu)",
          (unsigned long long)audit_log_logged_synced(a));
    usleep(20000); /* the writer back in its wait */
    long woke = thread_switches("audit-writer") - before;
    CHECK(woke >= 1 && woke <= 6, "the writer blocked %ld times for eight records (want 1-6)",
          woke);
    audit_log_stats st;
    audit_log_get_stats(a, &st);
    CHECK(st.records == 8 && st.batches == 1, "one batch of eight (%lu records, %lu batches)",
          st.records, st.batches);
    audit_log_close(a);
}

/* A logged record whose write failed is never reported synced, nor is anything after it, even
 * once later ones are written and synced: the CT log keeps them all for the next start. The
 * failure: a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored: write fails with EFBIG). */
static void test_logged_failure(void)
{
    char path[512], why[256] = "";
    snprintf(path, sizeof path, "%s/logged-fail.log", g_dir);
    audit_log *a = audit_log_open(path, why, sizeof why);
    CHECK(a != NULL, "open: %s", why);
    if (!a)
        return;
    struct rlimit old, small = {.rlim_cur = 20, .rlim_max = RLIM_INFINITY};
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0, "a 20-byte file size limit");
    CHECK(audit_log_append_logged(a, "{\"k\":1}", 7, 1) == 0, "key 1 queued");
    for (int i = 0; i < 500 && audit_log_logged_synced(a) != 2; i++)
        usleep(10000);
    CHECK(audit_log_logged_synced(a) == 2, "key 1 synced (%llu)",
          (unsigned long long)audit_log_logged_synced(a));
    static const char long_line[] = "{\"k\":2,\"pad\":\"xxxxxxxxxxxxxxx\"}";
    CHECK(audit_log_append_logged(a, long_line, strlen(long_line), 2) == 0,
          "key 2 queued (too long for the limit)");
    audit_log_stats st = {0};
    for (int i = 0; i < 500 && st.failed == 0; i++) {
        usleep(10000);
        audit_log_get_stats(a, &st);
    }
    CHECK(st.failed == 1, "key 2's write failed (%lu)", st.failed);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(audit_log_append_logged(a, "{\"k\":3}", 7, 3) == 0, "key 3 queued");
    for (int i = 0; i < 500 && st.records < 2; i++) {
        usleep(10000);
        audit_log_get_stats(a, &st);
    }
    CHECK(st.records == 2, "key 3 written and synced (%lu records)", st.records);
    CHECK(audit_log_logged_synced(a) == 2,
          "reported synced stops before the failed key 2 (%llu, want 2)",
          (unsigned long long)audit_log_logged_synced(a));
    audit_log_close(a);
    char *text = slurp(path, NULL);
    CHECK_STREQ(text, "{\"k\":1}\n{\"k\":3}\n", "the failed write left nothing behind");
    free(text);
    signal(SIGXFSZ, SIG_DFL);
}

/* ---- write failure ---- */

static void test_failure(void)
{
    char why[256] = "";
    if (access("/dev/full", W_OK) != 0) {
        printf("skip: no /dev/full\n");
        return;
    }
    audit_log *a = audit_log_open("/dev/full", why, sizeof why);
    CHECK(a != NULL, "open /dev/full: %s", why);
    if (!a)
        return;
    struct basic b = {.path = "/dev/null"};
    audit_log_append(a, "{\"n\":1}", NULL, basic_cb, &b, why, sizeof why);
    wait_for(&b.done, 1);
    CHECK(atomic_load(&b.done) == 1 && atomic_load(&b.ok) == 0,
          "a failed write reports ok = 0");
    audit_log_stats st;
    audit_log_get_stats(a, &st);
    CHECK(st.failed == 1 && st.records == 0, "stats count the failure");
    audit_log_close(a);
}

/* ---- the record ---- */

static X509 *make_cert(EVP_PKEY **key_out)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), 0xAB01020304ULL);
    ASN1_TIME_set(X509_getm_notBefore(x), 1764150000);
    ASN1_TIME_set(X509_getm_notAfter(x), 1764150600);
    X509_set_pubkey(x, key);
    X509_sign(x, key, EVP_sha256());
    *key_out = key;
    return x;
}

static void test_record(void)
{
    EVP_PKEY *key = NULL;
    X509 *cert = make_cert(&key);
    principal p = {.name = "dev@fulcrum.test", .san_kind = SAN_EMAIL,
                   .san_value = "dev@fulcrum.test"};
    unsigned char sct[60] = {0};
    const unsigned long long ts = 1764150000123ULL;
    for (int i = 0; i < 8; i++)
        sct[33 + i] = (unsigned char)(ts >> (56 - 8 * i));
    audit_entry e = {.cert = cert, .p = &p, .oidc_issuer = "http://127.0.0.1:5556",
                     .subject = "sub-1", .sct = sct, .sct_len = sizeof sct,
                     .request_id = "req-1"};
    char *text = audit_record_json(&e);
    json_error_t err;
    json_t *o = text ? json_loads(text, 0, &err) : NULL;
    CHECK(o != NULL, "record is JSON: %s", text ? text : "(null)");
    if (o) {
        CHECK_STREQ(json_string_value(json_object_get(o, "serial")), "ab01020304", "serial");
        CHECK_STREQ(json_string_value(json_object_get(o, "san_type")), "email", "san_type");
        CHECK_STREQ(json_string_value(json_object_get(o, "san")), "dev@fulcrum.test", "san");
        CHECK_STREQ(json_string_value(json_object_get(o, "issuer")), "http://127.0.0.1:5556",
                    "issuer");
        CHECK_STREQ(json_string_value(json_object_get(o, "subject")), "sub-1", "subject");
        CHECK_STREQ(json_string_value(json_object_get(o, "not_before")), "2025-11-26T09:40:00Z",
                    "not_before");
        CHECK_STREQ(json_string_value(json_object_get(o, "not_after")), "2025-11-26T09:50:00Z",
                    "not_after");
        CHECK(json_integer_value(json_object_get(o, "sct_timestamp")) == (json_int_t)ts,
              "sct_timestamp from the SCT");
        CHECK_STREQ(json_string_value(json_object_get(o, "request_id")), "req-1", "request_id");
        /* Key fingerprint: SHA-256 of the DER SPKI. */
        unsigned char *der = NULL;
        int len = i2d_PUBKEY(key, &der);
        unsigned char md[32];
        unsigned int mdlen;
        EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
        OPENSSL_free(der);
        char want[65];
        for (int i = 0; i < 32; i++)
            snprintf(want + 2 * i, 3, "%02x", md[i]);
        CHECK_STREQ(json_string_value(json_object_get(o, "key_sha256")), want, "key_sha256");
        CHECK(json_object_size(o) == 11, "exactly the documented members (%zu)",
              json_object_size(o));
        const char *t = json_string_value(json_object_get(o, "time"));
        CHECK(t && strlen(t) == 24 && t[23] == 'Z', "time is RFC 3339 with ms: %s", t);
    }
    json_decref(o);
    free(text);

    e.sct = NULL;
    e.subject = NULL;
    e.request_id = NULL;
    p.san_kind = SAN_URI;
    p.san_value = "https://github.com/o/r/.github/workflows/w.yml@refs/heads/main";
    text = audit_record_json(&e);
    o = text ? json_loads(text, 0, &err) : NULL;
    CHECK(o && json_is_null(json_object_get(o, "sct_timestamp")) &&
              json_is_null(json_object_get(o, "subject")) &&
              json_is_null(json_object_get(o, "request_id")),
          "absent SCT, subject and request id are null");
    CHECK(o && strcmp(json_string_value(json_object_get(o, "san_type")), "uri") == 0, "uri");
    json_decref(o);
    free(text);
    e.cert = NULL;
    CHECK(audit_record_json(&e) == NULL, "no certificate, no record");
    X509_free(cert);
    EVP_PKEY_free(key);
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

int main(void)
{
    evthread_use_pthreads();
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/fulcrum-audit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_basic();
    test_window();
    test_window_adaptive();
    test_concurrent();
    test_event_base();
    test_answer_first();
    test_torn_tail();
    test_failure();
    test_logged();
    test_logged_gathered();
    test_logged_failure();
    test_record();
    rm_rf(g_dir);
    CHECK_MAIN_END();
}
