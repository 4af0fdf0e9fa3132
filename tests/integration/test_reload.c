/*
 * tests/integration/test_reload.c: SIGHUP reloads the identity config and the file CA without a
 * restart.
 *
 *   1. A good config that adds issuer B: B's tokens work afterwards (400 before), A's still work,
 *      /api/v2/configuration shows B, and a keep-alive connection opened before the reload keeps
 *      serving (libcurl reuses it: no new connection).
 *   2. A config that does not parse: refused with the reason in the log, the previous config
 *      (A and B) keeps working, on the same connection.
 *   3. A CA that does not load (mismatched key): refused, the old CA keeps signing.
 *   4. A new CA (another chain and key in the same files): the trust bundle and new certificates
 *      come from it.
 *   Metrics: fulcrum_config_reloads_total{result}, fulcrum_config_generation.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "integration/harness.h"
#include "integration/harness_ops.h"
#include "unit/check.h"

static h_issuer g_a, g_b;
static h_server g_srv;
static int g_mport;
static char g_config[4200], g_cert[4200], g_key[4200];
static EVP_PKEY *g_client;

/* ---- one keep-alive connection ---------------------------------------------------------- */

/* POSTs body on the kept connection; *new_conns = connections libcurl had to open for it. */
static long ka_post(CURL *h, const char *path, const char *body, long *new_conns, char **out)
{
    char url[160];
    snprintf(url, sizeof url, "%s%s", g_srv.url, path);
    h_sink s = {0};
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, h_curl_sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    long status = 0, conns = -1;
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &conns);
    }
    curl_slist_free_all(hdr);
    if (new_conns)
        *new_conns = conns;
    if (out)
        *out = s.p;
    else
        free(s.p);
    return status;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static void write_config(int with_b)
{
    char text[1024];
    if (with_b)
        snprintf(text, sizeof text,
                 "{\"OIDCIssuers\":{\"%s\":{\"IssuerURL\":\"%s\",\"ClientID\":\"sigstore\","
                 "\"Type\":\"email\"},\"%s\":{\"IssuerURL\":\"%s\",\"ClientID\":\"sigstore\","
                 "\"Type\":\"email\"}}}\n",
                 g_a.url, g_a.url, g_b.url, g_b.url);
    else
        snprintf(text, sizeof text,
                 "{\"OIDCIssuers\":{\"%s\":{\"IssuerURL\":\"%s\",\"ClientID\":\"sigstore\","
                 "\"Type\":\"email\"}}}\n",
                 g_a.url, g_a.url);
    h_write_file(g_config, text);
}

static int copy_fixture(const char *name, const char *to)
{
    char from[4200];
    snprintf(from, sizeof from, "%s/fulcio-fileca/%s", h_env("FULCRUM_FIXTURES_DIR"), name);
    char *text = h_read_file(from, NULL);
    int rc = text ? h_write_file(to, text) : -1;
    free(text);
    return rc;
}

static char *body_for(const h_issuer *iss)
{
    char *token = h_issuer_token(iss, NULL);
    char *body = hops_v2_body(token, g_client, "dev@fulcrum.test");
    free(token);
    return body;
}

/* SIGHUP, then waits for the n-th "reloaded" or "reload refused" line. */
static int hup_and_wait(const char *needle, int nth)
{
    kill(g_srv.proc.pid, SIGHUP);
    return hops_wait_log(&g_srv.proc, needle, nth, 15000);
}

static char *get_body(const char *path)
{
    char url[160];
    snprintf(url, sizeof url, "%s%s", g_srv.url, path);
    h_response r;
    h_get(url, &r);
    char *out = r.status == 200 ? r.body : NULL;
    if (out)
        r.body = NULL;
    h_response_free(&r);
    return out;
}

/* The issuer's subject of the leaf of a 200 v2 answer, as one line. */
static void leaf_issuer(const char *resp, char *out, size_t outlen)
{
    out[0] = '\0';
    X509 *leaf = hops_v2_leaf(resp);
    if (leaf)
        X509_NAME_oneline(X509_get_issuer_name(leaf), out, (int)outlen);
    X509_free(leaf);
}

static void cert_subject(const char *path, char *out, size_t outlen)
{
    out[0] = '\0';
    char *pem = h_read_file(path, NULL);
    X509 *x = pem ? h_cert_from_pem(pem) : NULL; /* the first certificate of the chain file */
    if (!x && pem) {
        STACK_OF(X509) *chain = h_chain_from_pem(pem);
        if (chain)
            x = X509_dup(sk_X509_value(chain, 0));
        sk_X509_pop_free(chain, X509_free);
    }
    if (x)
        X509_NAME_oneline(X509_get_subject_name(x), out, (int)outlen);
    X509_free(x);
    free(pem);
}

int main(void)
{
    if (h_init("reload") != 0 || h_issuer_start_named(&g_a, "iss-a") != 0 ||
        h_issuer_start_named(&g_b, "iss-b") != 0)
        return 1;
    g_client = h_key_new("P-256");
    snprintf(g_config, sizeof g_config, "%s/identity.json", h_tmpdir());
    snprintf(g_cert, sizeof g_cert, "%s/ca-cert.pem", h_tmpdir());
    snprintf(g_key, sizeof g_key, "%s/ca-key.pem", h_tmpdir());
    write_config(0);
    if (copy_fixture("ecdsa-cert.pem", g_cert) != 0 || copy_fixture("ecdsa-key.pem", g_key) != 0)
        return 1;
    char mfile[4200], audit[4200];
    snprintf(mfile, sizeof mfile, "%s/m.port", h_tmpdir());
    snprintf(audit, sizeof audit, "%s/audit.log", h_tmpdir());
    const char *args[] = {"--metrics-port", "0", "--metrics-port-file", mfile, "--audit-log",
                          audit, NULL};
    h_server_opts o = {.ca = "fileca", .fileca_cert = g_cert, .fileca_key = g_key,
                       .fileca_passwd = "password123", .config_path = g_config,
                       .extra_args = args};
    if (h_server_start(&g_srv, &o) != 0)
        return 1;
    g_mport = hops_port_file(mfile, 10000);
    CHECK(hops_metric(g_mport, "fulcrum_config_generation") == 1, "generation 1 at start");

    char *body_a = body_for(&g_a), *body_b = body_for(&g_b);
    CURL *ka = curl_easy_init();
    long conns = -1;
    char *resp = NULL;
    CHECK(ka_post(ka, "/api/v2/signingCert", body_a, &conns, NULL) == 200 && conns == 1,
          "A issues on a new keep-alive connection (conns %ld)", conns);
    CHECK(ka_post(ka, "/api/v2/signingCert", body_b, &conns, &resp) == 400 && conns == 0 &&
              resp && strstr(resp, "is not configured on this server"),
          "B is not configured yet (%s)", resp ? resp : "");
    free(resp);
    char ecdsa_subject[512], issued_by[512];
    cert_subject(g_cert, ecdsa_subject, sizeof ecdsa_subject);

    /* 1. A good config adding B. */
    write_config(1);
    CHECK(hup_and_wait("reloaded (generation 2)", 1), "SIGHUP: reloaded, generation 2");
    resp = NULL;
    CHECK(ka_post(ka, "/api/v2/signingCert", body_b, &conns, &resp) == 200,
          "B issues after the reload");
    CHECK(conns == 0, "on the keep-alive connection opened before the reload (conns %ld)", conns);
    leaf_issuer(resp, issued_by, sizeof issued_by);
    CHECK(strcmp(issued_by, ecdsa_subject) == 0, "by the same CA (%s)", issued_by);
    free(resp);
    CHECK(ka_post(ka, "/api/v2/signingCert", body_a, &conns, NULL) == 200 && conns == 0,
          "A still issues, same connection");
    char *conf = get_body("/api/v2/configuration");
    CHECK(conf && strstr(conf, g_b.url), "/api/v2/configuration lists B");
    free(conf);
    CHECK(hops_metric(g_mport, "fulcrum_config_reloads_total{result=\"success\"}") == 1,
          "reloads success = 1");
    CHECK(hops_metric(g_mport, "fulcrum_config_generation") == 2, "generation 2");

    /* 2. A config that does not parse. */
    h_write_file(g_config, "{\"OIDCIssuers\": {not json");
    CHECK(hup_and_wait("reload refused, still serving generation 2: the identity config does "
                       "not load: ",
                       1),
          "a broken config is refused, with the reason");
    CHECK(ka_post(ka, "/api/v2/signingCert", body_b, &conns, NULL) == 200 && conns == 0,
          "B (from generation 2) still issues on the same connection");
    CHECK(ka_post(ka, "/api/v2/signingCert", body_a, &conns, NULL) == 200, "A still issues");
    CHECK(hops_metric(g_mport, "fulcrum_config_reloads_total{result=\"failure\"}") == 1,
          "reloads failure = 1");
    CHECK(hops_metric(g_mport, "fulcrum_config_generation") == 2, "still generation 2");

    /* 3. A CA that does not load. */
    write_config(1);
    copy_fixture("mismatch-cert.pem", g_cert);
    copy_fixture("mismatch-key.pem", g_key);
    CHECK(hup_and_wait("the CA does not load: ", 1), "a CA that does not load is refused");
    resp = NULL;
    CHECK(ka_post(ka, "/api/v2/signingCert", body_a, &conns, &resp) == 200,
          "A issues with the old CA");
    leaf_issuer(resp, issued_by, sizeof issued_by);
    CHECK(strcmp(issued_by, ecdsa_subject) == 0, "signed by the old CA (%s)", issued_by);
    free(resp);

    /* 4. A new CA in the same files. */
    copy_fixture("rsa4096-cert.pem", g_cert);
    copy_fixture("rsa4096-key.pem", g_key);
    char rsa_subject[512];
    cert_subject(g_cert, rsa_subject, sizeof rsa_subject);
    CHECK(hup_and_wait("reloaded (generation 3)", 1), "the new CA is loaded: generation 3");
    CHECK(hops_log_count(&g_srv.proc, "CA fileca re-read") >= 2, "the log says the CA was re-read");
    resp = NULL;
    CHECK(ka_post(ka, "/api/v2/signingCert", body_b, &conns, &resp) == 200 && conns == 0,
          "B issues with the new CA on the same connection");
    leaf_issuer(resp, issued_by, sizeof issued_by);
    CHECK(strcmp(issued_by, rsa_subject) == 0 && strcmp(rsa_subject, ecdsa_subject) != 0,
          "signed by the new CA (%s, want %s)", issued_by, rsa_subject);
    free(resp);
    char *bundle = get_body("/api/v2/trustBundle");
    char *pem = h_read_file(g_cert, NULL);
    STACK_OF(X509) *want = pem ? h_chain_from_pem(pem) : NULL;
    json_error_t err;
    json_t *j = bundle ? json_loads(bundle, 0, &err) : NULL;
    STACK_OF(X509) *got = h_chain_from_json(
        json_object_get(json_array_get(json_object_get(j, "chains"), 0), "certificates"));
    int same = want && got && sk_X509_num(want) == sk_X509_num(got);
    for (int i = 0; same && i < sk_X509_num(want); i++)
        same = X509_cmp(sk_X509_value(want, i), sk_X509_value(got, i)) == 0;
    CHECK(same, "the trust bundle is the new chain");
    sk_X509_pop_free(want, X509_free);
    sk_X509_pop_free(got, X509_free);
    json_decref(j);
    free(bundle);
    free(pem);
    CHECK(hops_metric(g_mport, "fulcrum_config_reloads_total{result=\"success\"}") == 2 &&
              hops_metric(g_mport, "fulcrum_config_reloads_total{result=\"failure\"}") == 2,
          "reloads: 2 success, 2 failure");

    curl_easy_cleanup(ka);
    CHECK(h_proc_stop(&g_srv.proc, 20000) == 0, "clean stop after reloads");
    free(body_a);
    free(body_b);
    EVP_PKEY_free(g_client);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
