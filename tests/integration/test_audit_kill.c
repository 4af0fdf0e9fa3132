/*
 * tests/integration/test_audit_kill.c: the audit log survives SIGKILL.
 *
 * 16 clients issue certificates as fast as they can; once some have been issued the server gets
 * SIGKILL in the middle of the load. Every certificate a client received must then be in the
 * audit log, exactly once, and every record must be a whole JSON line (a partial last line may
 * only belong to a certificate nobody received, and the next start removes it). A server started
 * again on the same file appends after the old records.
 */
#include <pthread.h>
#include <signal.h>
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

int main(void)
{
    h_issuer iss;
    if (h_init("audit_kill") != 0 || h_issuer_start(&iss) != 0)
        return 1;
    char audit[4200], mfile[4200];
    snprintf(audit, sizeof audit, "%s/audit.log", h_tmpdir());
    snprintf(mfile, sizeof mfile, "%s/m.port", h_tmpdir());
    const char *args[] = {"--audit-log", audit, "--metrics-port", "0", "--metrics-port-file",
                          mfile, "--workers", "4", NULL};
    h_server_opts o = {.issuer = &iss, .extra_args = args};
    h_server srv;
    if (h_server_start(&srv, &o) != 0)
        return 1;
    int mport = hops_port_file(mfile, 10000);

    EVP_PKEY *key = h_key_new("P-256");
    char *token = h_issuer_token(&iss, NULL);
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
    CHECK(issued >= 60, "load under way before the kill (%g issued)", issued);
    kill(srv.proc.pid, SIGKILL);
    pthread_join(t, NULL);
    for (int i = 0; i < 100 && h_proc_alive(&srv.proc); i++)
        usleep(10000);
    CHECK(srv.proc.exited && WIFSIGNALED(srv.proc.wait_status) &&
              WTERMSIG(srv.proc.wait_status) == SIGKILL,
          "the server died of SIGKILL");

    int received = 0, failed = 0;
    for (int i = 0; i < N; i++) {
        if (l.calls[i].status == 200)
            received++;
        else
            failed++;
    }
    printf("fact: %d certificates received, %d requests cut by the kill\n", received, failed);
    CHECK(received >= 20 && failed > 0, "the kill landed mid-load (%d received, %d cut)",
          received, failed);

    int torn = 0;
    json_t *recs = records_allow_torn_tail(audit, &torn);
    CHECK(recs != NULL, "every complete audit line is JSON");
    size_t nrec = recs ? json_array_size(recs) : 0;
    printf("fact: %zu audit records after the kill%s\n", nrec, torn ? " (+ a partial line)" : "");
    CHECK(nrec >= (size_t)received, "at least one record per received certificate (%zu >= %d)",
          nrec, received);
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
    CHECK(missing == 0, "every certificate a client received is in the audit log (%d missing)",
          missing);
    CHECK(dup == 0, "none is recorded twice (%d)", dup);

    /* Restart on the same file: a partial tail is removed, new records follow the old ones. */
    const char *args2[] = {"--audit-log", audit, NULL};
    h_server_opts o2 = {.issuer = &iss, .extra_args = args2};
    h_server srv2;
    CHECK(h_server_start(&srv2, &o2) == 0, "restarts on the same audit log");
    if (torn)
        CHECK(hops_wait_log(&srv2.proc, "ended with a partial record", 1, 5000),
              "the partial line is reported");
    h_response r;
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", srv2.url);
    h_post_json(url, body, NULL, &r);
    CHECK(r.status == 200, "issues after the restart");
    h_response_free(&r);
    json_t *after = hops_audit_records(audit);
    CHECK(after && json_array_size(after) == nrec + 1,
          "whole lines only, one more record (%zu, want %zu)", after ? json_array_size(after) : 0,
          nrec + 1);
    json_decref(after);
    h_proc_stop(&srv2.proc, 20000);

    json_decref(recs);
    hops_calls_free(l.calls, N);
    free(l.calls);
    free(body);
    free(token);
    EVP_PKEY_free(key);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
