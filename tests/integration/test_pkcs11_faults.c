/*
 * tests/integration/test_pkcs11_faults.c: a real `fulcrum serve --ca pkcs11ca` whose HSM fails.
 *
 * A SoftHSM2 token in the temp dir (private SOFTHSM2_CONF), a CA made on it with
 * `fulcrum createca` through the real module, then the server started through the fault-injecting
 * module (tests/pkcs11_fault, README.md there) and driven through: a session lost once (transient,
 * then really closed in the token) and three times in a row, the device failing until cleared
 * (500 code 13 and /readyz 503 while down, recovery without a restart after `clear`), the token
 * logged out (emulated, then really), log-in / open-session / key search failing during the
 * reconnect, the HSM unplugged under concurrent load, a slow HSM next to other requests, and
 * corrupted signatures. Every certificate the server ever returns is verified against the CA
 * key, the server's log must name the token's error and never the PIN; the measured recovery
 * facts are printed ("fact: ..." lines).
 *
 * Environment (set by ctest): FULCRUM_BIN, FULCRUM_DEV_ISSUER_BIN, FULCRUM_PKCS11_FAULT_MODULE,
 * FULCRUM_SOFTHSM2_MODULE; softhsm2-util on PATH.
 *
 * The concurrent requests call h_http() from several threads: it keeps no
 * state between calls (one curl easy handle per call, curl_global_init done by h_init()).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "integration/harness.h"
#include "unit/check.h"

#define TOKEN_LABEL "fulcrum-faults"
#define TOKEN_PIN "9k2-fault-PIN-57x" /* distinctive: the logs must never contain it */
#define CAROOT_ID "99"
#define MSG_CA_BACKEND "error communicating with CA backend"

static h_issuer g_iss;
static h_server g_srv;
static EVP_PKEY *g_ca_pub;      /* the CA key, from the trust bundle's root */
static X509 *g_root;
static STACK_OF(X509) *g_leaves; /* every leaf the server returned */
static int g_bad_leaves, g_seq;
static char g_control[4200], g_stats[4200];

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* ---- the fault module's files ------------------------------------------------------------ */

/* Replaces the control file by rename (a new inode: the module sees every change). */
static void control(const char *text)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", g_control);
    if (h_write_file(tmp, text) != 0 || rename(tmp, g_control) != 0) {
        fprintf(stderr, "cannot write the control file: %s\n", strerror(errno));
        exit(2);
    }
}

/* A counter of the server's fault module, -1 if absent. */
static long fstat_value(const char *name)
{
    char *text = h_read_file(g_stats, NULL);
    long v = -1;
    size_t n = strlen(name);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, name, n) == 0 && line[n] == '=')
            v = strtol(line + n + 1, NULL, 10);
        const char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return v;
}

/* ---- requests ---------------------------------------------------------------------------- */

/* A v2 key request for a fresh P-256 key and a fresh token (made on the calling thread). */
static char *new_request_body(void)
{
    char query[128], email[64];
    snprintf(email, sizeof email, "fault%d@example.com", ++g_seq);
    snprintf(query, sizeof query, "email=%s", email);
    char *token = h_issuer_token(&g_iss, query);
    EVP_PKEY *key = h_key_new("P-256");
    char *pem = key ? h_key_spki_pem(key) : NULL;
    size_t sig_len = 0;
    unsigned char *sig = key ? h_sign_pop(key, email, &sig_len) : NULL;
    char *b64 = sig ? h_b64(sig, sig_len, 0) : NULL;
    char *out = NULL;
    if (token && pem && b64) {
        json_t *req = json_pack("{s:{s:s},s:{s:{s:s,s:s},s:s}}", "credentials",
                                "oidcIdentityToken", token, "publicKeyRequest", "publicKey",
                                "algorithm", "ECDSA", "content", pem, "proofOfPossession", b64);
        out = json_dumps(req, JSON_COMPACT);
        json_decref(req);
    }
    free(token);
    EVP_PKEY_free(key);
    free(pem);
    free(sig);
    free(b64);
    return out;
}

/* Inspects a signing response: a 200 must carry a chain whose leaf verifies against the CA key
 * (kept for the final check); anything else must carry no certificate at all. */
static void inspect(const char *what, const h_response *r)
{
    int has_pem = r->body && strstr(r->body, "BEGIN CERTIFICATE") != NULL;
    if (r->status != 200) {
        CHECK(!has_pem, "%s: a %ld response carries no certificate", what, r->status);
        return;
    }
    json_t *j = h_json(r);
    json_t *certs = json_object_get(
        json_object_get(json_object_get(j, "signedCertificateDetachedSct"), "chain"),
        "certificates");
    STACK_OF(X509) *chain = certs ? h_chain_from_json(certs) : NULL;
    json_decref(j);
    CHECK(chain && sk_X509_num(chain) >= 2, "%s: 200 carries a chain", what);
    if (!chain)
        return;
    X509 *leaf = sk_X509_value(chain, 0);
    int ok = X509_verify(leaf, g_ca_pub) == 1;
    CHECK(ok, "%s: the certificate's signature verifies against the CA key", what);
    if (!ok)
        g_bad_leaves++;
    CHECK(h_verify_chain(chain, g_root), "%s: the chain verifies to the root", what);
    X509_up_ref(leaf);
    sk_X509_push(g_leaves, leaf);
    sk_X509_pop_free(chain, X509_free);
}

/* One signing request; returns its status (0: no response) and how long it took. */
static long sign_once(const char *what, long *ms, h_response *keep)
{
    char *body = new_request_body();
    CHECK(body != NULL, "%s: request built", what);
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", g_srv.url);
    h_response r;
    long t0 = now_ms();
    if (body)
        h_post_json(url, body, NULL, &r);
    else
        memset(&r, 0, sizeof r);
    if (ms)
        *ms = now_ms() - t0;
    free(body);
    inspect(what, &r);
    long status = r.status;
    if (keep)
        *keep = r;
    else
        h_response_free(&r);
    return status;
}

static long healthz(long *ms)
{
    char url[128];
    snprintf(url, sizeof url, "%s/readyz", g_srv.url);
    h_response r;
    long t0 = now_ms();
    h_get(url, &r);
    if (ms)
        *ms = now_ms() - t0;
    long status = r.status;
    h_response_free(&r);
    return status;
}

/* Readiness (/readyz: /healthz is liveness and stays 200). Polls /readyz every 50 ms until it answers `want`; returns the ms it took, -1 on timeout. */
static long wait_healthz(long want, long timeout_ms)
{
    long t0 = now_ms();
    while (now_ms() - t0 <= timeout_ms) {
        if (healthz(NULL) == want)
            return now_ms() - t0;
        sleep_ms(50);
    }
    return -1;
}

/* ---- set-up ------------------------------------------------------------------------------ */

/* Absolute path of a program on PATH (h_run needs one). */
static int find_tool(const char *name, char *out, size_t len)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    char *save = NULL;
    for (char *dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(out, len, "%s/%s", dir, name);
        if (access(out, X_OK) == 0)
            return 0;
    }
    fprintf(stderr, "%s is not on PATH\n", name);
    return -1;
}

static int write_crypto11_config(const char *path, const char *module)
{
    json_t *j = json_pack("{s:s,s:s,s:s}", "Path", module, "TokenLabel", TOKEN_LABEL, "Pin",
                          TOKEN_PIN);
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    int rc = text ? h_write_file(path, text) : -1;
    free(text);
    return rc;
}

/* SoftHSM2 token, CA made through the real module, server through the fault module. */
static int set_up(void)
{
    const char *fault = h_env("FULCRUM_PKCS11_FAULT_MODULE");
    const char *real = h_env("FULCRUM_SOFTHSM2_MODULE");
    const char *bin = h_env("FULCRUM_BIN");
    char util[4096];
    if (!fault || !real || !bin || find_tool("softhsm2-util", util, sizeof util) != 0)
        return -1;
    const char *tmp = h_tmpdir();
    char tokens[4200], conf[4200], text[4400], real_cfg[4200], fault_cfg[4200], root_pem[4200];
    snprintf(tokens, sizeof tokens, "%s/tokens", tmp);
    snprintf(conf, sizeof conf, "%s/softhsm2.conf", tmp);
    snprintf(real_cfg, sizeof real_cfg, "%s/crypto11-real.json", tmp);
    snprintf(fault_cfg, sizeof fault_cfg, "%s/crypto11-fault.json", tmp);
    snprintf(root_pem, sizeof root_pem, "%s/root.pem", tmp);
    snprintf(g_control, sizeof g_control, "%s/fault.control", tmp);
    snprintf(g_stats, sizeof g_stats, "%s/fault.stats", tmp);
    snprintf(text, sizeof text,
             "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens);
    if (mkdir(tokens, 0700) != 0 || h_write_file(conf, text) != 0 ||
        write_crypto11_config(real_cfg, real) != 0 || write_crypto11_config(fault_cfg, fault) != 0)
        return -1;
    /* Inherited by every child: softhsm2-util, createca, the server and its modules. */
    setenv("SOFTHSM2_CONF", conf, 1);
    setenv("FULCRUM_PKCS11_FAULT_TARGET", real, 1);
    setenv("FULCRUM_PKCS11_FAULT_CONTROL", g_control, 1);
    setenv("FULCRUM_PKCS11_FAULT_STATS", g_stats, 1);
    control("clear\n");

    char *err = NULL;
    char *init[] = {util, "--init-token", "--free", "--label", TOKEN_LABEL, "--pin", TOKEN_PIN,
                    "--so-pin", "5678", NULL};
    int rc = h_run("softhsm2-util", init, 30000, &err);
    CHECK(rc == 0, "softhsm2-util --init-token (exit %d): %s", rc, err ? err : "");
    free(err);
    if (rc != 0)
        return -1;

    char *createca[] = {(char *)bin, "createca", "--pkcs11-config-path", real_cfg,
                        "--hsm-caroot-id", CAROOT_ID, "--org", "Fulcrum Fault Test",
                        "--country", "US", "--province", "WA", "--locality", "Kirkland",
                        "--street-address", "767 6th St S", "--postal-code", "98033",
                        "--out", root_pem, NULL};
    long t0 = now_ms();
    rc = h_run("createca", createca, 60000, &err);
    CHECK(rc == 0, "fulcrum createca through SoftHSM2 (exit %d): %s", rc, err ? err : "");
    free(err);
    if (rc != 0)
        return -1;
    printf("fact: createca on SoftHSM2 took %ld ms\n", now_ms() - t0);

    if (h_issuer_start(&g_iss) != 0)
        return -1;
    const char *extra[] = {"--pkcs11-config-path", fault_cfg, "--hsm-caroot-id", CAROOT_ID,
                           "--workers", "4", NULL};
    h_server_opts o = {.ca = "pkcs11ca", .issuer = &g_iss, .extra_args = extra};
    t0 = now_ms();
    if (h_server_start(&g_srv, &o) != 0)
        return -1;
    printf("fact: pkcs11ca server ready (healthz 200) %ld ms after start\n", now_ms() - t0);

    char *pem = h_read_file(root_pem, NULL);
    g_root = pem ? h_cert_from_pem(pem) : NULL;
    free(pem);
    CHECK(g_root != NULL, "createca wrote the root certificate");
    if (!g_root)
        return -1;
    g_ca_pub = X509_get_pubkey(g_root);

    /* The server publishes the same root. */
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/trustBundle", g_srv.url);
    h_response r;
    h_get(url, &r);
    json_t *j = h_json(&r);
    json_t *chain0 = json_array_get(json_object_get(j, "chains"), 0);
    json_t *certs = json_object_get(chain0, "certificates");
    STACK_OF(X509) *bundle = certs ? h_chain_from_json(certs) : NULL;
    CHECK(bundle && sk_X509_num(bundle) == 1 && X509_cmp(sk_X509_value(bundle, 0), g_root) == 0,
          "trust bundle is the root createca made");
    sk_X509_pop_free(bundle, X509_free);
    json_decref(j);
    h_response_free(&r);
    g_leaves = sk_X509_new_null();
    return 0;
}

/* ---- the faults -------------------------------------------------------------------------- */

static void baseline(void)
{
    long ms;
    long st = sign_once("baseline", &ms, NULL);
    CHECK(st == 200, "baseline: signing works (status %ld)", st);
    CHECK(fstat_value("signs_ok") >= 1, "baseline: the server signs through the fault module");
    printf("fact: baseline request %ld ms\n", ms);
}

static void session_lost(int close_session)
{
    const char *what = close_session ? "session lost (closed in the token)" : "session lost once";
    long opened = fstat_value("sessions_opened"), logins = fstat_value("logins_ok");
    long injected = fstat_value("signs_injected");
    control(close_session ? "sign_error=session_lost count=1 close_session\n"
                          : "sign_error=session_lost count=1\n");
    long ms;
    long st = sign_once(what, &ms, NULL);
    CHECK(fstat_value("signs_injected") == injected + 1, "%s: the fault fired once", what);
    CHECK(st == 200, "%s: the request still succeeds (status %ld)", what, st);
    printf("fact: %s: status %ld in %ld ms; sessions opened +%ld, log-ins +%ld\n", what, st, ms,
           fstat_value("sessions_opened") - opened, fstat_value("logins_ok") - logins);
    st = sign_once(what, NULL, NULL);
    CHECK(st == 200, "%s: the next request succeeds too (status %ld)", what, st);
    control("clear\n");
}

static void device_error_until_cleared(void)
{
    const char *what = "device error until cleared";
    control("sign_error=device_error until_cleared\n");
    h_response r;
    long ms;
    long st = sign_once(what, &ms, &r);
    CHECK(h_is_error(&r, 500, 13, MSG_CA_BACKEND), "%s: 500 code 13 \"%s\" (status %ld)", what,
          MSG_CA_BACKEND, st);
    h_response_free(&r);
    printf("fact: %s: first request answered %ld in %ld ms\n", what, st, ms);
    long t = wait_healthz(503, 5000);
    CHECK(t >= 0, "%s: /readyz turns 503 while the HSM is down", what);
    printf("fact: %s: /healthz 503 %ld ms after the failed request\n", what, t);
    st = sign_once(what, &ms, &r);
    CHECK(h_is_error(&r, 500, 13, MSG_CA_BACKEND), "%s: still 500 while down (status %ld)", what,
          st);
    h_response_free(&r);
    CHECK(healthz(NULL) == 503, "%s: /readyz still 503", what);

    control("clear\n");
    long t0 = now_ms();
    st = sign_once(what, &ms, NULL);
    CHECK(st == 200, "%s: after clear the next request succeeds without a restart (status %ld)",
          what, st);
    t = wait_healthz(200, 10000);
    CHECK(t >= 0, "%s: /healthz is 200 again", what);
    printf("fact: %s: after clear the first request took %ld ms (status %ld); /healthz 200 "
           "%ld ms after clear\n",
           what, ms, st, t < 0 ? -1 : now_ms() - t0);
    CHECK(h_proc_alive(&g_srv.proc), "%s: the same server process is still running", what);
}

static void logged_out(int real)
{
    const char *what = real ? "logged out in the token" : "logged out";
    long logins = fstat_value("logins_ok");
    control(real ? "logout real\n" : "logout\n");
    long ms;
    long st = sign_once(what, &ms, NULL);
    CHECK(st == 200, "%s: re-login and success (status %ld)", what, st);
    CHECK(fstat_value("logins_ok") > logins, "%s: the server logged in again", what);
    CHECK(fstat_value("logged_out") == 0, "%s: the token is logged in afterwards", what);
    printf("fact: %s: status %ld in %ld ms; log-ins +%ld\n", what, st, ms,
           fstat_value("logins_ok") - logins);
    control("clear\n");
    st = sign_once(what, NULL, NULL);
    CHECK(st == 200, "%s: the next request succeeds (status %ld)", what, st);
}

/* ---- a slow HSM -------------------------------------------------------------------------- */

struct call {
    pthread_t t;
    const char *path; /* "/healthz" or "/api/v2/signingCert" */
    char *body;       /* POST body, or NULL for GET */
    long start_delay_ms;
    h_response r;
    long ms;
};

static void *call_main(void *arg)
{
    struct call *c = arg;
    sleep_ms(c->start_delay_ms);
    char url[128];
    snprintf(url, sizeof url, "%s%s", g_srv.url, c->path);
    long t0 = now_ms();
    if (c->body)
        h_post_json(url, c->body, NULL, &c->r);
    else
        h_get(url, &c->r);
    c->ms = now_ms() - t0;
    return NULL;
}

static void slow_hsm(void)
{
    const char *what = "slow HSM";
    /* One 2 s signature; while it is under way another signing request and /healthz. */
    struct call calls[3] = {
        {.path = "/api/v2/signingCert", .body = new_request_body()},
        {.path = "/api/v2/signingCert", .body = new_request_body(), .start_delay_ms = 300},
        {.path = "/healthz", .start_delay_ms = 400},
    };
    control("delay_ms=2000 count=1\n");
    for (int i = 0; i < 3; i++)
        pthread_create(&calls[i].t, NULL, call_main, &calls[i]);
    for (int i = 0; i < 3; i++)
        pthread_join(calls[i].t, NULL);
    CHECK(fstat_value("delays") >= 1, "%s: the delay fired", what);
    CHECK(calls[0].r.status == 200 || h_is_error(&calls[0].r, 500, 13, MSG_CA_BACKEND),
          "%s: the slow request answers 200 or 500 code 13 (status %ld)", what, calls[0].r.status);
    CHECK(calls[1].r.status == 200, "%s: the other signing request succeeds (status %ld)", what,
          calls[1].r.status);
    CHECK(calls[2].r.status == 200 || calls[2].r.status == 503,
          "%s: /healthz answers (status %ld)", what, calls[2].r.status);
    CHECK(calls[2].ms < 1500, "%s: /healthz is not stuck behind the slow signature (%ld ms)", what,
          calls[2].ms);
    inspect("slow HSM: slow request", &calls[0].r);
    inspect("slow HSM: concurrent request", &calls[1].r);
    printf("fact: %s: delayed request %ld in %ld ms; concurrent signing request %ld in %ld ms "
           "(started 300 ms later); /healthz %ld in %ld ms (started 400 ms later)\n",
           what, calls[0].r.status, calls[0].ms, calls[1].r.status, calls[1].ms,
           calls[2].r.status, calls[2].ms);
    for (int i = 0; i < 3; i++) {
        free(calls[i].body);
        h_response_free(&calls[i].r);
    }

    /* Every signature slow for a while: requests queue up but all complete; nothing crashes. */
    control("delay_ms=300\n");
    struct call many[6];
    memset(many, 0, sizeof many);
    for (int i = 0; i < 6; i++) {
        many[i].path = "/api/v2/signingCert";
        many[i].body = new_request_body();
    }
    long t0 = now_ms();
    for (int i = 0; i < 6; i++)
        pthread_create(&many[i].t, NULL, call_main, &many[i]);
    int ok = 0;
    long worst = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(many[i].t, NULL);
        ok += many[i].r.status == 200;
        worst = many[i].ms > worst ? many[i].ms : worst;
        inspect("slow HSM: 6 at once", &many[i].r);
        free(many[i].body);
        h_response_free(&many[i].r);
    }
    CHECK(ok == 6, "%s: 6 concurrent requests with 300 ms signatures all succeed (%d)", what, ok);
    printf("fact: %s: 6 concurrent requests with 300 ms signatures: %d ok, slowest %ld ms, "
           "all done in %ld ms\n",
           what, ok, worst, now_ms() - t0);
    control("clear\n");
    CHECK(h_proc_alive(&g_srv.proc), "%s: the server is still running", what);
}

/* n signing requests at once; returns how many answered 200, and sets *n500 to how many answered
 * 500 code 13 and *slowest to the longest one. Every response is inspected. */
static int batch(const char *what, int n, int *n500, long *slowest)
{
    struct call calls[16];
    memset(calls, 0, sizeof calls);
    for (int i = 0; i < n && i < 16; i++) {
        calls[i].path = "/api/v2/signingCert";
        calls[i].body = new_request_body();
    }
    for (int i = 0; i < n && i < 16; i++)
        pthread_create(&calls[i].t, NULL, call_main, &calls[i]);
    int ok = 0;
    *n500 = 0;
    *slowest = 0;
    for (int i = 0; i < n && i < 16; i++) {
        pthread_join(calls[i].t, NULL);
        ok += calls[i].r.status == 200;
        if (calls[i].r.status == 500)
            *n500 += h_is_error(&calls[i].r, 500, 13, MSG_CA_BACKEND);
        *slowest = calls[i].ms > *slowest ? calls[i].ms : *slowest;
        inspect(what, &calls[i].r);
        free(calls[i].body);
        h_response_free(&calls[i].r);
    }
    return ok;
}

/* Occurrences of `needle` in the server's log. */
static int log_count(const char *needle)
{
    char *text = h_read_file(g_srv.proc.stderr_path, NULL);
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(text);
    return n;
}

/* The brief's `sign_error=session_lost count=3`: more losses in a row than one retry covers.
 * Requests may fail (500, never a bad certificate) until the losses are used up, then succeed. */
static void session_lost_repeatedly(void)
{
    const char *what = "session lost 3 times";
    control("sign_error=session_lost count=3\n");
    char seen[128] = "";
    long st = 0;
    int tries = 0;
    for (; tries < 4 && st != 200; tries++) {
        h_response r;
        st = sign_once(what, NULL, &r);
        CHECK(st == 200 || h_is_error(&r, 500, 13, MSG_CA_BACKEND),
              "%s: each answer is 200 or 500 code 13 (status %ld)", what, st);
        h_response_free(&r);
        snprintf(seen + strlen(seen), sizeof seen - strlen(seen), "%s%ld", tries ? "," : "", st);
    }
    CHECK(st == 200, "%s: a request succeeds once the losses are used up (%s)", what, seen);
    CHECK(sign_once(what, NULL, NULL) == 200, "%s: and the next one too", what);
    printf("fact: %s: statuses of consecutive requests: %s\n", what, seen);
    control("clear\n");
}

/* One step of the reconnect itself fails once (after a device error): that request fails, the
 * next one reconnects and succeeds, without a restart. */
static void reconnect_step_fails(const char *rule, const char *what)
{
    char text[256];
    snprintf(text, sizeof text, "sign_error=device_error count=1\n%s\n", rule);
    control(text);
    long injected = fstat_value("other_injected");
    h_response r;
    long st = sign_once(what, NULL, &r);
    CHECK(h_is_error(&r, 500, 13, MSG_CA_BACKEND), "%s: the request during the failed reconnect "
          "gets 500 code 13 (status %ld)", what, st);
    h_response_free(&r);
    CHECK(fstat_value("other_injected") == injected + 1, "%s: the reconnect hit the fault", what);
    CHECK(healthz(NULL) == 503, "%s: /readyz 503 after the failed reconnect", what);
    long ms;
    st = sign_once(what, &ms, NULL);
    CHECK(st == 200, "%s: the next request reconnects and succeeds (status %ld)", what, st);
    CHECK(healthz(NULL) == 200, "%s: /healthz 200 again", what);
    printf("fact: %s: first request 500, next one %ld in %ld ms\n", what, st, ms);
    control("clear\n");
}

/* The HSM unplugged under load: every call into it fails; concurrent requests all get 500 code
 * 13 promptly, /healthz says 503; when it is back, concurrent requests all succeed. */
static void unplugged_under_load(void)
{
    const char *what = "HSM unplugged under load";
    int fails_before = log_count("reconnecting to the token failed");
    control("sign_error=device_removed until_cleared\nopen_session_error=device_removed "
            "until_cleared\nlogin_error=device_removed until_cleared\n");
    int n500;
    long slowest;
    int ok = batch(what, 8, &n500, &slowest);
    CHECK(ok == 0 && n500 == 8, "%s: 8 concurrent requests all get 500 code 13 (%d ok, %d 500)",
          what, ok, n500);
    CHECK(slowest < 10000, "%s: answered promptly (slowest %ld ms)", what, slowest);
    printf("fact: %s: 8 concurrent requests while down: %d x 500, slowest %ld ms; "
           "%d failed reconnects logged\n",
           what, n500, slowest, log_count("reconnecting to the token failed") - fails_before);
    CHECK(healthz(NULL) == 503, "%s: /readyz 503 while down", what);
    char url[128];
    snprintf(url, sizeof url, "%s/readyz", g_srv.url);
    h_response r;
    h_get(url, &r);
    CHECK(r.body && strstr(r.body, "{\"status\":\"NOT_READY\",\"checks\":{\"signer\":\"the last "
                                   "signature of the pkcs11ca signer failed\""),
          "%s: /readyz body says NOT_READY because of the signer (%s)", what, r.body ? r.body : "");
    h_response_free(&r);

    control("clear\n");
    int reconnects_before = log_count("reconnected to token");
    long t0 = now_ms();
    ok = batch(what, 8, &n500, &slowest);
    CHECK(ok == 8, "%s: back: 8 concurrent requests all succeed (%d)", what, ok);
    CHECK(healthz(NULL) == 200, "%s: /healthz 200 once back", what);
    printf("fact: %s: back: 8 concurrent requests ok in %ld ms (slowest %ld ms); "
           "%d reconnect(s) logged for them\n",
           what, now_ms() - t0, slowest, log_count("reconnected to token") - reconnects_before);
    CHECK(h_proc_alive(&g_srv.proc), "%s: the server is still running", what);
}

/* ---- corrupted signatures ---------------------------------------------------------------- */

static void corrupted(void)
{
    const char *what = "corrupted signature";
    long corrupted_before = fstat_value("signs_corrupted");
    control("corrupt_signature count=1\n");
    h_response r;
    long st = sign_once(what, NULL, &r);
    CHECK(fstat_value("signs_corrupted") == corrupted_before + 1, "%s: one signature corrupted",
          what);
    CHECK(h_is_error(&r, 500, 13, MSG_CA_BACKEND), "%s: 500 code 13 (status %ld)", what, st);
    h_response_free(&r);
    st = sign_once(what, NULL, NULL);
    CHECK(st == 200, "%s: the next request succeeds (status %ld)", what, st);

    control("corrupt_signature until_cleared\n");
    int refused = 0;
    for (int i = 0; i < 5; i++) {
        st = sign_once("corrupted signatures until cleared", NULL, &r);
        refused += h_is_error(&r, 500, 13, MSG_CA_BACKEND);
        h_response_free(&r);
    }
    CHECK(refused == 5, "%s: 5 of 5 requests refused while every signature is bad (%d)", what,
          refused);
    printf("fact: %s: %ld signatures corrupted in all, every one refused with 500\n", what,
           fstat_value("signs_corrupted") - corrupted_before);
    control("clear\n");
    st = sign_once(what, NULL, NULL);
    CHECK(st == 200, "%s: after clear signing works (status %ld)", what, st);
}

int main(void)
{
    if (h_init("pkcs11_faults") != 0)
        return 1;
    if (set_up() != 0) {
        CHECK(0, "set-up");
        h_finish(1);
        CHECK_MAIN_END();
    }
    baseline();
    session_lost(0);
    session_lost(1);
    session_lost_repeatedly();
    device_error_until_cleared();
    logged_out(0);
    logged_out(1);
    reconnect_step_fails("login_error=device_error count=1", "log-in fails during the reconnect");
    reconnect_step_fails("open_session_error=device_error count=1",
                         "open-session fails during the reconnect");
    reconnect_step_fails("find_error=device_error count=1",
                         "key search fails during the reconnect");
    unplugged_under_load();
    slow_hsm();
    corrupted();

    /* Every certificate ever returned, verified once more against the CA key. */
    int n = sk_X509_num(g_leaves), good = 0;
    for (int i = 0; i < n; i++)
        good += X509_verify(sk_X509_value(g_leaves, i), g_ca_pub) == 1;
    CHECK(n > 0 && good == n && g_bad_leaves == 0,
          "every certificate returned verifies against the CA key (%d of %d)", good, n);
    printf("fact: %d certificates returned, %d verify against the CA key; fault module counted "
           "%ld signatures, %ld failed sign calls, %ld log-ins, %ld sessions opened\n",
           n, good, fstat_value("signs_ok"), fstat_value("signs_failed"),
           fstat_value("logins_ok"), fstat_value("sessions_opened"));
    CHECK(h_proc_alive(&g_srv.proc), "the server survived every fault");
    CHECK(log_count("CKR_DEVICE_ERROR") > 0, "the server's log names the token's error");
    CHECK(log_count(TOKEN_PIN) == 0, "the server's log never contains the PIN");
    int code = h_proc_stop(&g_srv.proc, 10000);
    CHECK(code == 0, "clean exit on SIGTERM (status %d)", code);

    sk_X509_pop_free(g_leaves, X509_free);
    EVP_PKEY_free(g_ca_pub);
    X509_free(g_root);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
