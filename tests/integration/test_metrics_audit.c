/*
 * tests/integration/test_metrics_audit.c: what a real `fulcrum serve` reports while it serves.
 *
 *   1. /metrics (--metrics-port 0, --metrics-port-file): Prometheus text; Fulcio's families with
 *      their types; values that move exactly with what was served: fulcio_new_certs by the number
 *      of certificates, http_requests_total and fulcio_api_latency by code and method, refusals
 *      by reason, CA signatures per backend, JWKS fetches per issuer, audit records.
 *   2. The request log: one JSON line per request with the request id (the client's X-Request-ID
 *      honoured and echoed), route, status, latency, issuer, refusal reason; never the token.
 *   3. The audit log: exactly one record per certificate handed out (serial, SAN, issuer, key
 *      fingerprint, request id), sequentially and under 16 concurrent clients.
 *   4. With the embedded CT log: CT submission latency, tree size, STH age; SCT timestamps in the
 *      audit records; /readyz.
 *   5. Work sharing (ca/http_server.h): two workers under six keep-alive clients, half of them
 *      with a proof of possession that fails after the token checks. Requests move between
 *      workers (fulcrum_http_handoffs_total), and every answer, the request log, the metrics and
 *      the audit log stay exact: each certificate 200 with its SCT and one audit record, each
 *      refusal a 400 naming the failed check and counted under its reason.
 */
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "integration/harness.h"
#include "integration/harness_load.h"
#include "integration/harness_ops.h"
#include "unit/check.h"

static h_issuer g_iss;
static EVP_PKEY *g_key;

struct server {
    h_server srv;
    int mport;
    char audit[4200];
};

static int start(struct server *s, const char *name, const char *const *more)
{
    char mfile[4200];
    snprintf(mfile, sizeof mfile, "%s/%s.mport", h_tmpdir(), name);
    snprintf(s->audit, sizeof s->audit, "%s/%s-audit.log", h_tmpdir(), name);
    const char *args[24] = {"--metrics-port", "0", "--metrics-port-file", mfile,
                            "--audit-log", s->audit, "--workers", "4"};
    int n = 8;
    for (int i = 0; more && more[i] && n < 23; i++)
        args[n++] = more[i];
    args[n] = NULL;
    h_server_opts o = {.issuer = &g_iss, .extra_args = args};
    if (h_server_start(&s->srv, &o) != 0)
        return -1;
    s->mport = hops_port_file(mfile, 10000);
    return s->mport > 0 ? 0 : -1;
}

static char *sha256_spki_hex(EVP_PKEY *key)
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(key, &der);
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
    OPENSSL_free(der);
    char *out = malloc(65);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return out;
}

static double m(const char *text, const char *series)
{
    return hops_sample(text, series);
}

/* ---- 1-3: one server, sequential requests ------------------------------------------------ */

struct issued {
    char *serial;
    char *request_id;
};

static void test_metrics_and_logs(void)
{
    struct server s;
    if (start(&s, "seq", NULL) != 0) {
        CHECK(0, "server with metrics starts");
        return;
    }
    char *ctype = NULL;
    char *before = hops_scrape(s.mport, &ctype);
    CHECK(before != NULL, "metrics scrape answers 200");
    CHECK_STREQ(ctype, "text/plain; version=0.0.4; charset=utf-8", "metrics Content-Type");
    free(ctype);
    CHECK(before && strstr(before, "# TYPE fulcio_new_certs counter\n") &&
              strstr(before, "# TYPE fulcio_api_latency histogram\n") &&
              strstr(before, "# TYPE http_requests_total counter\n") &&
              strstr(before, "# TYPE fulcio_build_info gauge\n"),
          "Fulcio's families with their types");
    CHECK(before && strstr(before, "\nfulcio_build_info{build_date=\"") &&
              strstr(before, ",version=\"0.1.0\"} 1\n"),
          "fulcio_build_info{build_date,goversion,revision,version} 1");
    CHECK(m(before, "fulcio_new_certs") == 0, "no certificate yet (%g)",
          m(before, "fulcio_new_certs"));
    double get200 = m(before, "http_requests_total{code=\"200\",method=\"get\"}");
    CHECK(get200 >= 1, "the harness's /healthz GETs are counted (%g)", get200);
    double sign0 = m(before, "fulcrum_hsm_sign_seconds_count{backend=\"ephemeralca\"}");
    if (sign0 < 0)
        sign0 = 0;

    /* 3 v2 certificates, each with its own request id. */
    char *token = h_issuer_token(&g_iss, NULL);
    char *body = hops_v2_body(token, g_key, "dev@fulcrum.test");
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", s.srv.url);
    struct issued got[4] = {{0}};
    int ngot = 0;
    for (int i = 0; i < 3; i++) {
        h_response r;
        char rid[64], hdr[96];
        snprintf(rid, sizeof rid, "client-req-%d", i);
        snprintf(hdr, sizeof hdr, "X-Request-ID: %s", rid);
        const char *headers[] = {"Content-Type: application/json", hdr, NULL};
        h_http("POST", url, headers, body, strlen(body), &r);
        CHECK(r.status == 200, "v2 #%d: 200 (%ld %.200s)", i, r.status, r.body ? r.body : "");
        char *echo = h_header(&r, "X-Request-ID");
        CHECK_STREQ(echo, rid, "the client's X-Request-ID is echoed");
        X509 *leaf = hops_v2_leaf(r.body);
        if (leaf && ngot < 4) {
            got[ngot].serial = hops_serial_hex(leaf);
            got[ngot].request_id = echo;
            echo = NULL;
            ngot++;
        }
        free(echo);
        X509_free(leaf);
        h_response_free(&r);
    }
    /* 1 v1 certificate (201); the generated request id is echoed. */
    {
        char *pem = h_key_spki_pem(g_key);
        size_t sl = 0;
        unsigned char *sig = h_sign_pop(g_key, "dev@fulcrum.test", &sl);
        char *pb = h_b64(pem, strlen(pem), 0), *sb = h_b64(sig, sl, 0);
        json_t *j = json_pack("{s:{s:s},s:s}", "publicKey", "content", pb, "signedEmailAddress", sb);
        char *v1 = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        snprintf(url, sizeof url, "%s/api/v1/signingCert", s.srv.url);
        h_response r;
        h_post_json(url, v1, token, &r);
        CHECK(r.status == 201, "v1: 201 (%ld)", r.status);
        char *rid = h_header(&r, "X-Request-ID");
        CHECK(rid && strlen(rid) == 25 && rid[8] == '-', "a generated request id (%s)",
              rid ? rid : "(none)");
        STACK_OF(X509) *chain = r.status == 201 ? h_chain_from_pem(r.body) : NULL;
        if (chain && ngot < 4) {
            got[ngot].serial = hops_serial_hex(sk_X509_value(chain, 0));
            got[ngot].request_id = rid;
            rid = NULL;
            ngot++;
        }
        free(rid);
        sk_X509_pop_free(chain, X509_free);
        h_response_free(&r);
        free(v1);
        free(pem);
        free(sig);
        free(pb);
        free(sb);
    }
    /* Refusals: a malformed token (400) and an unknown path (404). */
    snprintf(url, sizeof url, "%s/api/v2/signingCert", s.srv.url);
    char *bad = hops_v2_body("not.a-real.token", g_key, "dev@fulcrum.test");
    h_response r;
    h_post_json(url, bad, NULL, &r);
    CHECK(h_is_error(&r, 400, 3, "There was an error processing the identity token"),
          "bad token: 400");
    h_response_free(&r);
    free(bad);
    snprintf(url, sizeof url, "%s/no/such/path", s.srv.url);
    h_get(url, &r);
    CHECK(r.status == 404, "unknown path: 404");
    h_response_free(&r);

    char *after = hops_scrape(s.mport, NULL);
    CHECK(m(after, "fulcio_new_certs") == 4, "fulcio_new_certs = 4 (%g)",
          m(after, "fulcio_new_certs"));
    CHECK(m(after, "http_requests_total{code=\"200\",method=\"post\"}") == 3,
          "http_requests_total 200/post = 3 (%g)",
          m(after, "http_requests_total{code=\"200\",method=\"post\"}"));
    CHECK(m(after, "http_requests_total{code=\"201\",method=\"post\"}") == 1,
          "http_requests_total 201/post = 1");
    CHECK(m(after, "http_requests_total{code=\"400\",method=\"post\"}") == 1,
          "http_requests_total 400/post = 1");
    CHECK(m(after, "http_requests_total{code=\"404\",method=\"get\"}") == 1,
          "http_requests_total 404/get = 1");
    CHECK(m(after, "http_requests_total{code=\"200\",method=\"get\"}") == get200,
          "no GET was added by scraping (%g)",
          m(after, "http_requests_total{code=\"200\",method=\"get\"}"));
    /* Fulcio's smoke test: one 201/post latency sample after one v1 call. */
    CHECK(m(after, "fulcio_api_latency_count{code=\"201\",method=\"post\"}") == 1,
          "fulcio_api_latency_count 201/post = 1");
    CHECK(m(after, "fulcio_api_latency_bucket{code=\"201\",method=\"post\",le=\"+Inf\"}") == 1,
          "fulcio_api_latency +Inf bucket 201/post = 1");
    CHECK(m(after, "fulcio_api_latency_count{code=\"200\",method=\"post\"}") == 3,
          "fulcio_api_latency_count 200/post = 3");
    double sum = m(after, "fulcio_api_latency_sum{code=\"200\",method=\"post\"}");
    CHECK(sum > 0 && sum < 30, "latency sum plausible (%g s)", sum);
    CHECK(m(after, "fulcrum_requests_refused_total{reason=\"identity_token\"}") == 1,
          "refused: identity_token = 1");
    CHECK(m(after, "fulcrum_requests_refused_total{reason=\"not_found\"}") == 1,
          "refused: not_found = 1");
    CHECK(m(after, "fulcrum_hsm_sign_seconds_count{backend=\"ephemeralca\"}") - sign0 == 4,
          "4 CA signatures (%g)",
          m(after, "fulcrum_hsm_sign_seconds_count{backend=\"ephemeralca\"}") - sign0);
    CHECK(m(after, "fulcrum_hsm_sign_errors_total{backend=\"ephemeralca\"}") == 0,
          "no failed signature");
    char series[256];
    snprintf(series, sizeof series, "fulcrum_jwks_fetches_total{issuer=\"%s\"}", g_iss.url);
    CHECK(m(after, series) >= 1, "JWKS fetched for the issuer (%g)", m(after, series));
    snprintf(series, sizeof series, "fulcrum_jwks_fetch_failures_total{issuer=\"%s\"}",
             g_iss.url);
    CHECK(m(after, series) == 0, "no JWKS failure (%g)", m(after, series));
    CHECK(m(after, "fulcrum_audit_records_total") == 4, "4 audit records (%g)",
          m(after, "fulcrum_audit_records_total"));
    CHECK(m(after, "fulcrum_http_connections_open") >= 0, "open connections exported");
    free(before);
    free(after);

    /* The request log. Each worker writes its request lines in batches, within 10 ms of the
     * first (common/log.h, log_thread_batch): wait for them. */
    CHECK(hops_wait_log(&s.srv.proc,
                        "\"request_id\":\"client-req-0\",\"method\":\"POST\",\"route\":"
                        "\"/api/v2/signingCert\",\"status\":200,\"latency_ms\":",
                        1, 5000),
          "request line with id, method, route, status, latency");
    char needle[300];
    snprintf(needle, sizeof needle, "\"issuer\":\"%s\"}", g_iss.url);
    CHECK(hops_wait_log(&s.srv.proc, needle, 4, 5000), "request lines name the issuer");
    CHECK(hops_wait_log(&s.srv.proc, "\"reason\":\"identity_token\"", 1, 5000) &&
              hops_log_count(&s.srv.proc, "\"status\":400,") >= 1 &&
              hops_log_count(&s.srv.proc, "\"reason\":\"identity_token\"") == 1,
          "the refused request's line has its reason");
    CHECK(hops_wait_log(&s.srv.proc, "\"route\":\"(unmatched)\",\"status\":404", 1, 5000) &&
              hops_log_count(&s.srv.proc, "\"route\":\"(unmatched)\",\"status\":404") == 1 &&
              hops_log_count(&s.srv.proc, "\"path\":\"/no/such/path\"") == 1,
          "an unmatched path is logged as such");
    CHECK(hops_log_count(&s.srv.proc, token) == 0, "the token is never logged");

    /* The audit log: one record per certificate, in any order. */
    json_t *recs = hops_audit_records(s.audit);
    CHECK(recs && json_array_size(recs) == 4, "4 audit records (%zu)",
          recs ? json_array_size(recs) : 0);
    char *fp = sha256_spki_hex(g_key);
    for (int i = 0; i < ngot; i++) {
        int found = 0;
        size_t k;
        json_t *o;
        json_array_foreach(recs, k, o) {
            if (strcmp(json_string_value(json_object_get(o, "serial")), got[i].serial) != 0)
                continue;
            found++;
            CHECK_STREQ(json_string_value(json_object_get(o, "san")), "dev@fulcrum.test", "san");
            CHECK_STREQ(json_string_value(json_object_get(o, "san_type")), "email", "san_type");
            CHECK_STREQ(json_string_value(json_object_get(o, "issuer")), g_iss.url, "issuer");
            CHECK_STREQ(json_string_value(json_object_get(o, "key_sha256")), fp, "key_sha256");
            CHECK_STREQ(json_string_value(json_object_get(o, "request_id")), got[i].request_id,
                        "request id of the record");
            CHECK(json_is_null(json_object_get(o, "sct_timestamp")), "no SCT with CT off");
        }
        CHECK(found == 1, "certificate %s has exactly one record (%d)", got[i].serial, found);
    }
    CHECK(ngot == 4, "4 certificates received");
    char *audit_text = h_read_file(s.audit, NULL);
    CHECK(audit_text && !strstr(audit_text, token), "the token is not in the audit log");
    free(audit_text);
    json_decref(recs);
    free(fp);
    for (int i = 0; i < ngot; i++) {
        free(got[i].serial);
        free(got[i].request_id);
    }

    /* 16 concurrent clients, 200 certificates. */
    enum { N = 200 };
    hops_call *calls = calloc(N, sizeof *calls);
    for (int i = 0; i < N; i++)
        calls[i].body = body;
    snprintf(url, sizeof url, "%s/api/v2/signingCert", s.srv.url);
    hops_parallel_post(url, calls, N, 16);
    int ok = 0;
    char **serials = calloc(N, sizeof *serials);
    for (int i = 0; i < N; i++) {
        if (calls[i].status == 200) {
            X509 *leaf = hops_v2_leaf(calls[i].response);
            serials[ok++] = hops_serial_hex(leaf);
            X509_free(leaf);
        }
    }
    CHECK(ok == N, "all %d concurrent requests issued (%d)", N, ok);
    recs = hops_audit_records(s.audit);
    CHECK(recs && json_array_size(recs) == 4 + (size_t)ok, "audit records = 4 + %d (%zu)", ok,
          recs ? json_array_size(recs) : 0);
    int missing = 0, dup = 0;
    for (int i = 0; i < ok; i++) {
        int found = 0;
        size_t k;
        json_t *o;
        json_array_foreach(recs, k, o) found +=
            strcmp(json_string_value(json_object_get(o, "serial")), serials[i] ? serials[i] : "") ==
            0;
        missing += found == 0;
        dup += found > 1;
    }
    CHECK(missing == 0 && dup == 0, "each concurrent certificate recorded once (missing %d, "
          "duplicated %d)", missing, dup);
    char *text = hops_scrape(s.mport, NULL);
    CHECK(m(text, "fulcio_new_certs") == 4 + ok, "fulcio_new_certs = %d (%g)", 4 + ok,
          m(text, "fulcio_new_certs"));
    double batches = m(text, "fulcrum_audit_batch_records_count");
    printf("fact: %d audit records in %g fdatasync batches (group commit)\n", 4 + ok, batches);
    CHECK(batches >= 1 && batches <= 4 + ok, "batches counted (%g)", batches);
    free(text);
    json_decref(recs);
    for (int i = 0; i < N; i++)
        free(serials[i]);
    free(serials);
    hops_calls_free(calls, N);
    free(calls);
    free(body);
    free(token);
    CHECK(h_proc_stop(&s.srv.proc, 20000) == 0, "clean stop");
}

/* ---- 4: embedded CT ---------------------------------------------------------------------- */

static void test_ct_metrics(void)
{
    char state[4200];
    snprintf(state, sizeof state, "%s/ct-state", h_tmpdir());
    const char *more[] = {"--ct-log-url", "embedded", "--state-dir", state, NULL};
    struct server s;
    if (start(&s, "ct", more) != 0) {
        CHECK(0, "server with the embedded CT log starts");
        return;
    }
    char *token = h_issuer_token(&g_iss, NULL);
    char *body = hops_v2_body(token, g_key, "dev@fulcrum.test");
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", s.srv.url);
    double sign0 = hops_metric(s.mport, "fulcrum_hsm_sign_seconds_count{backend=\"ephemeralca\"}");
    if (sign0 < 0)
        sign0 = 0; /* no signature yet */
    time_t t0 = time(NULL);
    for (int i = 0; i < 2; i++) {
        h_response r;
        h_post_json(url, body, NULL, &r);
        CHECK(r.status == 200 && strstr(r.body, "signedCertificateEmbeddedSct"),
              "CT #%d: 200 with embedded SCT (%ld)", i, r.status);
        h_response_free(&r);
    }
    double size = -1;
    for (int i = 0; i < 100 && size != 2; i++) {
        size = hops_metric(s.mport, "fulcrum_ct_log_tree_size");
        if (size != 2)
            usleep(50000);
    }
    CHECK(size == 2, "fulcrum_ct_log_tree_size reaches 2 (%g)", size);
    char *text = hops_scrape(s.mport, NULL);
    CHECK(m(text, "fulcrum_ct_submit_seconds_count") == 2, "2 CT submissions timed (%g)",
          m(text, "fulcrum_ct_submit_seconds_count"));
    CHECK(m(text, "fulcrum_ct_submit_errors_total") == 0, "no CT error");
    double age = m(text, "fulcrum_ct_log_sth_age_seconds");
    CHECK(age >= 0 && age < 60, "STH age %g s", age);
    CHECK(m(text, "fulcrum_hsm_sign_seconds_count{backend=\"ephemeralca\"}") - sign0 == 4,
          "precertificate + final certificate: 4 signatures (%g)",
          m(text, "fulcrum_hsm_sign_seconds_count{backend=\"ephemeralca\"}") - sign0);
    free(text);

    json_t *recs = hops_audit_records(s.audit);
    CHECK(recs && json_array_size(recs) == 2, "2 audit records");
    size_t k;
    json_t *o;
    json_array_foreach(recs, k, o) {
        json_int_t ts = json_integer_value(json_object_get(o, "sct_timestamp"));
        CHECK(ts / 1000 >= t0 - 5 && ts / 1000 <= time(NULL) + 5,
              "the record carries the SCT timestamp (%lld)", (long long)ts);
    }
    json_decref(recs);

    snprintf(url, sizeof url, "%s/readyz", s.srv.url);
    h_response r;
    h_get(url, &r);
    CHECK(r.status == 200 && r.body &&
              strcmp(r.body, "{\"status\":\"READY\",\"checks\":{\"signer\":\"ok\",\"ct_log\":"
                             "\"ok\",\"issuers\":\"ok\"}}") == 0,
          "/readyz READY with CT (%ld %s)", r.status, r.body ? r.body : "");
    h_response_free(&r);
    free(body);
    free(token);
    CHECK(h_proc_stop(&s.srv.proc, 20000) == 0, "clean stop");
}


/* ---- 5: work sharing under load ------------------------------------------------------------ */

#define MSG_POP "The signature supplied in the request could not be verified: proof of possession"

static void test_work_sharing(void)
{
    char state[4200];
    snprintf(state, sizeof state, "%s/share-state", h_tmpdir());
    const char *more[] = {"--ct-log-url", "embedded", "--state-dir", state, "--workers", "2",
                          NULL};
    struct server s;
    if (start(&s, "share", more) != 0) {
        CHECK(0, "server with two workers starts");
        return;
    }
    char *token = h_issuer_token(&g_iss, NULL);
    char *bodies[2] = {hops_v2_body(token, g_key, "dev@fulcrum.test"),
                       hops_v2_body(token, g_key, "someone-else@fulcrum.test")};
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", s.srv.url);
    hload_opts lo = {.url = url, .bodies = (const char *const *)bodies, .nbodies = 2,
                     .threads = 6, .keep_bodies = 1};
    hload *l = hload_start(&lo);
    CHECK(l != NULL, "six clients start");
    if (!l) {
        free(bodies[0]);
        free(bodies[1]);
        free(token);
        return;
    }
    usleep(3000000);
    hload_window w;
    hload_stop(l, &w);
    long good = 0, refused = 0, other = 0;
    for (size_t i = 0; i < w.nanswers; i++) {
        const hload_answer *a = &w.answers[i];
        json_error_t jerr;
        json_t *j = a->body ? json_loads(a->body, 0, &jerr) : NULL;
        const char *msg = json_string_value(json_object_get(j, "message"));
        if (a->status == 200 && json_object_get(j, "signedCertificateEmbeddedSct"))
            good++;
        else if (a->status == 400 && json_integer_value(json_object_get(j, "code")) == 3 && msg &&
                 strncmp(msg, MSG_POP, strlen(MSG_POP)) == 0)
            refused++;
        else if (other++ < 3)
            CHECK(0, "an unexpected answer: %ld %.300s", a->status, a->body ? a->body : "");
        json_decref(j);
    }
    CHECK(good > 0 && refused > 0 && other == 0,
          "every answer is a certificate or the proof-of-possession refusal (%ld, %ld, %ld "
          "other)",
          good, refused, other);
    char *text = hops_scrape(s.mport, NULL);
    double moved = m(text, "fulcrum_http_handoffs_total");
    printf("fact: %g of %zu requests moved between the two workers\n", moved, w.nanswers);
    CHECK(moved > 0, "requests moved between the workers (fulcrum_http_handoffs_total %g of "
                     "%zu)",
          moved, w.nanswers);
    CHECK(m(text, "fulcio_new_certs") == good, "fulcio_new_certs = %ld (%g)", good,
          m(text, "fulcio_new_certs"));
    CHECK(m(text, "http_requests_total{code=\"200\",method=\"post\"}") == good,
          "http_requests_total 200/post = %ld", good);
    CHECK(m(text, "http_requests_total{code=\"400\",method=\"post\"}") == refused,
          "http_requests_total 400/post = %ld", refused);
    CHECK(m(text, "fulcrum_requests_refused_total{reason=\"signature_invalid\"}") == refused,
          "refusals counted under signature_invalid (%g, want %ld)",
          m(text, "fulcrum_requests_refused_total{reason=\"signature_invalid\"}"), refused);
    free(text);
    CHECK(h_proc_stop(&s.srv.proc, 20000) == 0, "clean stop");
    json_t *recs = hops_audit_records(s.audit);
    CHECK(recs && (long)json_array_size(recs) == good, "one audit record per certificate (%zu, "
                                                       "want %ld)",
          recs ? json_array_size(recs) : 0, good);
    json_decref(recs);
    /* The request log: one line per answer, with its status and the token's issuer. */
    CHECK(hops_log_count(&s.srv.proc, "\"msg\":\"POST /api/v2/signingCert 200\"") == good,
          "a request log line per certificate");
    CHECK(hops_log_count(&s.srv.proc, "\"reason\":\"signature_invalid\"") == refused,
          "a request log line with its reason per refusal");
    hload_window_free(&w);
    free(bodies[0]);
    free(bodies[1]);
    free(token);
}

int main(void)
{
    if (h_init("metrics_audit") != 0 || h_issuer_start(&g_iss) != 0)
        return 1;
    g_key = h_key_new("P-256");
    test_metrics_and_logs();
    test_ct_metrics();
    test_work_sharing();
    EVP_PKEY_free(g_key);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
