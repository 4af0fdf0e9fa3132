/*
 * tests/integration/test_audit_kill.c: the audit log survives SIGKILL.
 *
 * 16 clients issue certificates as fast as they can; once some have been issued the server gets
 * SIGKILL in the middle of the load. Every certificate a client received must then be in the
 * audit log, exactly once, and every record must be a whole JSON line (a partial last line may
 * only belong to a certificate nobody received, and the next start removes it). A server started
 * again on the same file appends after the old records.
 *
 * Twice: without CT (each record synced to the file before its answer), and with the embedded
 * CT log, where a record is durable with its CT entry before the answer and reaches the file
 * right after: there every received certificate must be in the file once a server has started
 * again on the same state (it writes what the CT log kept), still exactly once.
 */
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "integration/harness.h"
#include "integration/harness_ops.h"
#include "unit/check.h"

enum { N = 600, THREADS = 16 };

struct load {
    char url[128];
    hops_call *calls;
};

static void *load_main(void *arg)
{
    struct load *l = arg;
    hops_parallel_post(l->url, l->calls, N, THREADS);
    return NULL;
}

/* Records of a file whose last line may be cut (read as is, before any repair). */
static json_t *records_allow_torn_tail(const char *path, int *torn)
{
    char *text = h_read_file(path, NULL);
    json_t *arr = json_array();
    *torn = 0;
    for (char *line = text, *nl; line && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) {
            *torn = 1;
            break;
        }
        *nl = '\0';
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o) {
            json_decref(arr);
            free(text);
            return NULL;
        }
        json_array_append_new(arr, o);
    }
    free(text);
    return arr;
}

/* Kills a loaded server, checks the audit log, restarts on the same file (and state). */
static void run(h_issuer *iss, const char *name, int embedded)
{
    char audit[4200], mfile[4200], state[4200];
    snprintf(audit, sizeof audit, "%s/%s-audit.log", h_tmpdir(), name);
    snprintf(mfile, sizeof mfile, "%s/%s-m.port", h_tmpdir(), name);
    snprintf(state, sizeof state, "%s/%s-state", h_tmpdir(), name);
    const char *args[] = {"--audit-log", audit, "--metrics-port", "0", "--metrics-port-file",
                          mfile, "--workers", "4",
                          embedded ? "--ct-log-url" : NULL, "embedded", "--state-dir", state,
                          NULL};
    h_server_opts o = {.issuer = iss, .extra_args = args};
    h_server srv;
    if (h_server_start(&srv, &o) != 0) {
        CHECK(0, "%s: the server starts", name);
        return;
    }
    int mport = hops_port_file(mfile, 10000);

    EVP_PKEY *key = h_key_new("P-256");
    char *token = h_issuer_token(iss, NULL);
    char *body = hops_v2_body(token, key, "dev@fulcrum.test");
    struct load l;
    snprintf(l.url, sizeof l.url, "%s/api/v2/signingCert", srv.url);
    l.calls = calloc(N, sizeof *l.calls);
    for (int i = 0; i < N; i++)
        l.calls[i].body = body;
    pthread_t t;
    pthread_create(&t, NULL, load_main, &l);

    /* Kill once at least 60 certificates went out, while the clients are still busy. */
    double issued = 0;
    for (int i = 0; i < 600 && issued < 60; i++) {
        usleep(10000);
        issued = hops_metric(mport, "fulcio_new_certs");
    }
    CHECK(issued >= 60, "%s: load under way before the kill (%g issued)", name, issued);
    kill(srv.proc.pid, SIGKILL);
    pthread_join(t, NULL);
    for (int i = 0; i < 100 && h_proc_alive(&srv.proc); i++)
        usleep(10000);
    CHECK(srv.proc.exited && WIFSIGNALED(srv.proc.wait_status) &&
              WTERMSIG(srv.proc.wait_status) == SIGKILL,
          "%s: the server died of SIGKILL", name);

    int received = 0, failed = 0;
    for (int i = 0; i < N; i++) {
        if (l.calls[i].status == 200)
            received++;
        else
            failed++;
    }
    printf("fact: %s: %d certificates received, %d requests cut by the kill\n", name, received,
           failed);
    CHECK(received >= 20 && failed > 0, "%s: the kill landed mid-load (%d received, %d cut)",
          name, received, failed);

    int torn = 0;
    json_t *recs = records_allow_torn_tail(audit, &torn);
    CHECK(recs != NULL, "%s: every complete audit line is JSON", name);
    size_t nrec = recs ? json_array_size(recs) : 0;
    printf("fact: %s: %zu audit records after the kill%s\n", name, nrec,
           torn ? " (+ a partial line)" : "");

    /* Restart on the same file: a partial tail is removed, records the CT log kept are written,
     * new records follow. */
    const char *args2[] = {"--audit-log", audit, embedded ? "--ct-log-url" : NULL, "embedded",
                           "--state-dir", state, NULL};
    h_server_opts o2 = {.issuer = iss, .extra_args = args2};
    h_server srv2;
    CHECK(h_server_start(&srv2, &o2) == 0, "%s: restarts on the same audit log", name);
    if (torn)
        CHECK(hops_wait_log(&srv2.proc, "ended with a partial record", 1, 5000),
              "%s: the partial line is reported", name);
    json_t *now = hops_audit_records(audit);
    if (embedded) {
        size_t restored = now && recs ? json_array_size(now) - nrec : 0;
        printf("fact: %s: %zu records written from the CT log at the restart\n", name,
               restored);
        json_decref(recs);
        recs = now;
        nrec = now ? json_array_size(now) : 0;
        now = NULL;
    }
    json_decref(now);
    CHECK(nrec >= (size_t)received, "%s: at least one record per received certificate (%zu >= %d)",
          name, nrec, received);
    int missing = 0, dup = 0;
    for (int i = 0; i < N; i++) {
        if (l.calls[i].status != 200)
            continue;
        X509 *leaf = hops_v2_leaf(l.calls[i].response);
        char *serial = hops_serial_hex(leaf);
        X509_free(leaf);
        int found = 0;
        size_t k;
        json_t *rec;
        json_array_foreach(recs, k, rec) found +=
            serial && strcmp(json_string_value(json_object_get(rec, "serial")), serial) == 0;
        missing += found == 0;
        dup += found > 1;
        free(serial);
    }
    CHECK(missing == 0, "%s: every certificate a client received is in the audit log (%d "
                        "missing)", name, missing);
    CHECK(dup == 0, "%s: none is recorded twice (%d)", name, dup);

    h_response r;
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", srv2.url);
    h_post_json(url, body, NULL, &r);
    CHECK(r.status == 200, "%s: issues after the restart", name);
    h_response_free(&r);
    h_proc_stop(&srv2.proc, 20000); /* a clean stop syncs the file */
    json_t *after = hops_audit_records(audit);
    CHECK(after && json_array_size(after) == nrec + 1,
          "%s: whole lines only, one more record (%zu, want %zu)", name,
          after ? json_array_size(after) : 0, nrec + 1);
    json_decref(after);

    json_decref(recs);
    hops_calls_free(l.calls, N);
    free(l.calls);
    free(body);
    free(token);
    EVP_PKEY_free(key);
}

/* A record the CT log still holds when a server starts (as after a crash between its commit and
 * the file's sync) is written to the audit log before the server serves, and not again at the
 * next start. */
static void restore_at_start(h_issuer *iss)
{
    char audit[4200], state[4200], db[4300];
    snprintf(audit, sizeof audit, "%s/embedded-ct-audit.log", h_tmpdir());
    snprintf(state, sizeof state, "%s/embedded-ct-state", h_tmpdir());
    snprintf(db, sizeof db, "%s/ctlog/log.db", state);
    sqlite3 *d = NULL;
    static const char line[] = "{\"restored\":\"from the CT log\"}";
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO audit_pending(idx, line) VALUES(1000000, '%s')", line);
    CHECK(sqlite3_open(db, &d) == SQLITE_OK && sqlite3_exec(d, sql, NULL, NULL, NULL) == SQLITE_OK,
          "a record planted in the CT log: %s", d ? sqlite3_errmsg(d) : "?");
    sqlite3_close(d);
    for (int round = 0; round < 2; round++) {
        const char *args[] = {"--audit-log", audit, "--ct-log-url", "embedded", "--state-dir",
                              state, NULL};
        h_server_opts o = {.issuer = iss, .extra_args = args};
        h_server srv;
        CHECK(h_server_start(&srv, &o) == 0, "start %d on the same state", round + 1);
        if (round == 0)
            CHECK(hops_wait_log(&srv.proc, "1 record kept in the CT log", 1, 5000),
                  "the restore is reported");
        h_proc_stop(&srv.proc, 20000);
        json_t *recs = hops_audit_records(audit);
        size_t n = recs ? json_array_size(recs) : 0, found = 0;
        for (size_t k = 0; k < n; k++)
            found += json_object_get(json_array_get(recs, k), "restored") != NULL;
        CHECK(found == 1, "after start %d the planted record is in the audit log once (%zu)",
              round + 1, found);
        json_decref(recs);
    }
}

int main(void)
{
    h_issuer iss;
    if (h_init("audit_kill") != 0 || h_issuer_start(&iss) != 0)
        return 1;
    run(&iss, "no-ct", 0);
    run(&iss, "embedded-ct", 1);
    restore_at_start(&iss);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
