/*
 * Audit records carried by the CT log's transactions (ct/ct_log.h,
 * ct_log_add_own_precert_audit): the line made from the SCT is stored with its entry, handed to
 * the sink after the commit in index order, kept until the sink says the audit file has it
 * (its synced function), read back after a reopen (ct_log_audit_pending), lines committed after
 * the sink was detached wait in the log, and a line that cannot be made fails the submission.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ct/ct_log.h"
#include "unit/check.h"
#include "unit/ct_testkit.h"

static char tmpdir[4096];

struct result {
    int done;
    size_t sct_len;
    char err[512];
};

static void on_added(void *arg, const unsigned char *sct, size_t sct_len, const char *err,
                     int client_error)
{
    struct result *r = arg;
    r->done++;
    r->sct_len = sct ? sct_len : 0;
    if (err)
        snprintf(r->err, sizeof r->err, "%s", err);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int wait_results(struct event_base *base, struct result *r, int n, double limit)
{
    double deadline = now_s() + limit;
    for (;;) {
        int all = 1;
        for (int i = 0; i < n; i++)
            if (!r[i].done)
                all = 0;
        if (all)
            return 1;
        if (now_s() > deadline)
            return 0;
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(200);
    }
}

/* The line: "rec-<n>-<first byte of the SCT's signature... >" made from the SCT it is given, so
 * the test sees that render ran with the entry's own SCT. */
struct render_ctx {
    int n;
    int fail;
    unsigned char sct[512];
    size_t sct_len;
};

static char *render(void *arg, const unsigned char *sct, size_t sct_len, size_t *len)
{
    struct render_ctx *c = arg;
    if (c->fail)
        return NULL;
    if (sct_len <= sizeof c->sct) {
        memcpy(c->sct, sct, sct_len);
        c->sct_len = sct_len;
    }
    char *line = malloc(64);
    if (!line)
        return NULL;
    *len = (size_t)snprintf(line, 64, "{\"rec\":%d,\"sct_len\":%zu}", c->n, sct_len);
    return line;
}

#define MAX_SEEN 64
static struct {
    uint64_t idx[MAX_SEEN];
    char line[MAX_SEEN][64];
    int n, calls;
} seen;

static void sink(void *arg, const ct_audit_line *lines, size_t n)
{
    seen.calls++;
    for (size_t i = 0; i < n && seen.n < MAX_SEEN; i++) {
        seen.idx[seen.n] = lines[i].idx;
        snprintf(seen.line[seen.n], sizeof seen.line[0], "%.*s", (int)lines[i].len,
                 lines[i].line);
        seen.n++;
    }
}

static struct {
    uint64_t idx[MAX_SEEN];
    char line[MAX_SEEN][64];
    int n;
} left;

/* What the sink says it has synced: 1 + index, 0 none. */
static uint64_t synced_mark;
static uint64_t synced(void *arg) { return synced_mark; }

static int collect(void *ctx, uint64_t idx, const char *line, size_t len)
{
    if (left.n < MAX_SEEN) {
        left.idx[left.n] = idx;
        snprintf(left.line[left.n], sizeof left.line[0], "%.*s", (int)len, line);
        left.n++;
    }
    return 0;
}

static int pending(ct_log *log)
{
    memset(&left, 0, sizeof left);
    return ct_log_audit_pending(log, collect, NULL) == 0 ? left.n : -1;
}

static ct_log *open_log(X509 *root)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/log", tmpdir);
    STACK_OF(X509) *roots = sk_X509_new_null();
    sk_X509_push(roots, root);
    ct_log_options o = {.state_dir = dir, .roots = roots, .sth_interval_ms = 100};
    char why[512] = "";
    ct_log *log = ct_log_open(&o, why, sizeof why);
    CHECK(log != NULL, "open the log: %s", why);
    sk_X509_free(roots);
    return log;
}

/* Submits n precertificates (at once, so that they may share commits) with lines numbered from
 * first; returns how many were answered with an SCT. */
static int submit(ct_log *log, struct event_base *base, X509 *root, EVP_PKEY *root_key,
                  EVP_PKEY *key, int first, int n, int fail_render)
{
    struct result r[16];
    struct render_ctx rc[16];
    X509 *pre[16];
    int ok = 0;
    memset(r, 0, sizeof r);
    for (int i = 0; i < n; i++) {
        pre[i] = ctk_cert("pre", key, root, root_key, 0, CTK_POISON, 0);
        rc[i] = (struct render_ctx){.n = first + i, .fail = fail_render};
        STACK_OF(X509) *chain = sk_X509_new_null();
        sk_X509_push(chain, pre[i]);
        sk_X509_push(chain, root);
        unsigned char *early = NULL, leaf_hash[32];
        size_t early_len = 0;
        int rv = ct_log_add_own_precert_audit(log, chain, base, on_added, &r[i], render, &rc[i],
                                              &early, &early_len, leaf_hash, r[i].err,
                                              sizeof r[i].err);
        sk_X509_free(chain);
        CHECK(rv == 0, "submission %d queued: %s", first + i, r[i].err);
        if (!fail_render)
            CHECK(early && early_len == rc[i].sct_len && memcmp(early, rc[i].sct, early_len) == 0,
                  "line %d was made from the entry's own SCT", first + i);
        free(early);
    }
    CHECK(wait_results(base, r, n, 10), "all %d answered", n);
    for (int i = 0; i < n; i++) {
        ok += r[i].sct_len > 0;
        X509_free(pre[i]);
    }
    return ok;
}

int main(void)
{
    evthread_use_pthreads();
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/fulcrum-ct-audit-unit-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    struct event_base *base = event_base_new();
    EVP_PKEY *root_key = ctk_key(), *key = ctk_key();
    X509 *root = ctk_cert("root", root_key, NULL, NULL, 1, CTK_NO_POISON, 0);

    ct_log *log = open_log(root);
    if (log) {
        ct_log_set_audit_sink(log, sink, synced, NULL);
        /* 1. Five lines: durable with their entries, then at the sink in index order. */
        CHECK(submit(log, base, root, root_key, key, 0, 5, 0) == 5, "five SCTs");
        CHECK(seen.n == 5, "the sink got the five lines (%d)", seen.n);
        int ordered = 1, numbered = 1;
        for (int i = 0; i < seen.n; i++) {
            if (i > 0 && seen.idx[i] <= seen.idx[i - 1])
                ordered = 0;
            char want[64];
            snprintf(want, sizeof want, "{\"rec\":%d,", i);
            if (strncmp(seen.line[i], want, strlen(want)) != 0)
                numbered = 0;
        }
        CHECK(ordered, "lines in index order");
        CHECK(numbered, "each line is the one made for its submission, in submission order");
        CHECK(pending(log) == 5, "all five pending until the sink says they are synced (%d)",
              left.n);

        /* 2. Synced up to the third: deleted by the next transaction, the rest kept. */
        synced_mark = seen.idx[2] + 1;
        CHECK(submit(log, base, root, root_key, key, 5, 1, 0) == 1, "one more SCT");
        CHECK(pending(log) == 3 && left.idx[0] == seen.idx[3] && left.idx[1] == seen.idx[4] &&
                  left.idx[2] == seen.idx[5],
              "after the next commit, the three lines past the mark are pending (%d)", left.n);
        CHECK(strcmp(left.line[2], seen.line[5]) == 0, "pending lines read back as stored");

        /* 3. A line that cannot be made: the submission fails, nothing stored. */
        int before = seen.n;
        CHECK(submit(log, base, root, root_key, key, 6, 1, 1) == 0,
              "no SCT for a certificate without its audit line");
        CHECK(seen.n == before && pending(log) == 3, "nothing stored for it");

        /* Detached (as at shutdown): a line committed now is not handed out but kept. */
        ct_log_set_audit_sink(log, NULL, NULL, NULL);
        CHECK(submit(log, base, root, root_key, key, 6, 1, 0) == 1, "an SCT with no sink");
        CHECK(seen.n == before && pending(log) == 4, "its line waits in the log (%d)", left.n);
        ct_log_close(log);
    }

    /* 4. After a reopen (a crash between the commit and the audit file's sync looks the same),
     *    the lines not confirmed are still there. */
    log = open_log(root);
    if (log) {
        CHECK(pending(log) == 4 && left.idx[0] == seen.idx[3], "pending lines survive a reopen");
        synced_mark = seen.idx[5] + 1;
        ct_log_set_audit_sink(log, sink, synced, NULL);
        CHECK(submit(log, base, root, root_key, key, 7, 1, 0) == 1, "an SCT after the reopen");
        CHECK(pending(log) == 2 && left.idx[0] > seen.idx[5] &&
                  left.idx[1] == seen.idx[seen.n - 1],
              "once synced up to the sixth, the detached line and the newest are pending (%d)",
              left.n);
        ct_log_close(log);
    }

    X509_free(root);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(key);
    event_base_free(base);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    CHECK_MAIN_END();
}
