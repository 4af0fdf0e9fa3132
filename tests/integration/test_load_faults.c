/*
 * tests/integration/test_load_faults.c: faults while a real `fulcrum serve` is under load.
 *
 * One server: --ca pkcs11ca on a SoftHSM2 token reached through the fault-injecting module,
 * an external CT log (`fulcrum ctlog serve`, --ct-log-timeout 3s), the audit log, and a dev
 * issuer A (its tenants "A/t/" + "*" as a meta-issuer). Four clients issue certificates back
 * to back (tokens of A, whose keys the server has cached) and a prober GETs /healthz,
 * /api/v2/trustBundle and /api/v2/configuration in a loop, for the whole run, while in turn:
 *
 *   1. A's discovery and JWKS are slow (1.5 s each): the load keeps its latency (cached keys);
 *      a tenant the server has not cached yet is served once its keys arrive;
 *   2. A's discovery and JWKS are down (503): the load keeps being served; a tenant not cached
 *      gets a 500 naming that issuer; the load is not affected;
 *   3. the CT log is slow (stopped with SIGSTOP for 1.5 s): every request still succeeds;
 *   4. the CT log is down (stopped), then restarted on its port and state: requests get 500
 *      "Error entering certificate in CTL" (code 13) and nothing else, then succeed again;
 *   5. the HSM fails (every sign, log-in and open-session call: device removed), then comes back:
 *      500 "error communicating with CA backend" (code 13) and nothing else, then success
 *      without a restart.
 * Throughout: the read-only endpoints answer 200, promptly in 1 to 4 (they never wait for the
 * issuer or the log; the HSM's calls run on the HTTP workers, see 5); no request fails any other
 * way (transport error, other status, other message). At the end, nothing was lost: every
 * certificate a client received verifies against the HSM's CA key, is in the audit log exactly
 * once (and the audit log holds nothing else), and its precertificate is in the CT log
 * (get-entries).
 *
 * The gap this fills: test_jwks_resilience, test_ct_embedded and test_pkcs11_faults inject the
 * same kinds of faults with one request at a time or one burst of 8, each on a server of its own;
 * none keeps a steady load running through a fault's onset and recovery, none checks the other
 * endpoints meanwhile, and none checks that the certificates handed out across faults all
 * reached both the CT log and the audit log.
 */
#include <openssl/bn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "integration/harness.h"
#include "integration/harness_load.h"
#include "integration/harness_ops.h"
#include "unit/check.h"

#define TOKEN_LABEL "fulcrum-load-faults"
#define TOKEN_PIN "7hq-load-PIN-31z"
#define CAROOT_ID "77"
#define MSG_CTL "Error entering certificate in CTL"
#define MSG_CA_BACKEND "error communicating with CA backend"
#define MSG_KEYS "could not fetch the keys of issuer "

static h_issuer g_iss;
static h_server g_srv;
static h_ctlog g_log;
static char g_root_pem[4200], g_log_state[4200], g_audit[4200], g_control[4200];
static EVP_PKEY *g_ca_pub;
static hload_answer *g_answers; /* every signing answer of the run */
static size_t g_nanswers;

/* ---- helpers ------------------------------------------------------------------------------ */

static void fault_control(const char *text)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", g_control);
    if (h_write_file(tmp, text) != 0 || rename(tmp, g_control) != 0)
        CHECK(0, "cannot write the fault control file");
}

static void issuer_control(const h_issuer *iss, const char *json)
{
    char url[128];
    snprintf(url, sizeof url, "%s/control", iss->url);
    h_response r;
    int rc = h_post_json(url, json, NULL, &r);
    CHECK(rc == 0 && r.status == 200, "issuer control %s: %ld", json, r.status);
    h_response_free(&r);
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

static char *config_json(const h_issuer *a)
{
    char pattern[128];
    snprintf(pattern, sizeof pattern, "%s/t/*", a->url);
    json_t *cfg = json_pack(
        "{s:{s:{s:s,s:s,s:s}},s:{s:{s:s,s:s}}}", "OIDCIssuers", a->url, "IssuerURL", a->url,
        "ClientID", "sigstore", "Type", "email", "MetaIssuers", pattern, "ClientID", "sigstore",
        "Type", "email");
    char *text = json_dumps(cfg, JSON_INDENT(2));
    json_decref(cfg);
    return text;
}

/* A v2 body for a token of issuer URL `iss_url` (the root issuer or a tenant). */
static char *body_for(const char *iss_url, const char *email, EVP_PKEY *key)
{
    h_issuer t = g_iss;
    snprintf(t.url, sizeof t.url, "%s", iss_url);
    char q[128];
    snprintf(q, sizeof q, "email=%s", email);
    char *token = h_issuer_token(&t, q);
    char *body = token ? hops_v2_body(token, key, email) : NULL;
    free(token);
    return body;
}

/* One signing request (outside the load); its answer joins the run's answers. */
static long sign_once(const char *body, h_response *out, long *ms)
{
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", g_srv.url);
    double t0 = hload_now_ms();
    h_response r;
    h_post_json(url, body, NULL, &r);
    if (ms)
        *ms = (long)(hload_now_ms() - t0);
    hload_answer *a = realloc(g_answers, (g_nanswers + 1) * sizeof *a);
    if (a) {
        g_answers = a;
        g_answers[g_nanswers].status = r.status;
        g_answers[g_nanswers].body = strdup(r.body ? r.body : "");
        g_nanswers++;
    }
    long st = r.status;
    if (out)
        *out = r;
    else
        h_response_free(&r);
    return st;
}

/* ---- the prober of the read-only endpoints ------------------------------------------------ */

struct prober {
    pthread_t thread;
    _Atomic int stop;
    pthread_mutex_t mu;
    long probes, failures;
    double max_ms;
    char last_failure[320];
};

static void *prober_main(void *arg)
{
    struct prober *p = arg;
    static const char *paths[] = {"/healthz", "/api/v2/trustBundle", "/api/v2/configuration"};
    for (int i = 0; !atomic_load(&p->stop); i++) {
        char url[160];
        snprintf(url, sizeof url, "%s%s", g_srv.url, paths[i % 3]);
        double t0 = hload_now_ms();
        h_response r;
        int rc = h_get(url, &r);
        double ms = hload_now_ms() - t0;
        pthread_mutex_lock(&p->mu);
        p->probes++;
        if (ms > p->max_ms)
            p->max_ms = ms;
        if (rc != 0 || r.status != 200) {
            p->failures++;
            snprintf(p->last_failure, sizeof p->last_failure, "%s: %ld %.200s", paths[i % 3],
                     r.status, r.curl_error);
        }
        pthread_mutex_unlock(&p->mu);
        h_response_free(&r);
        usleep(20000);
    }
    return NULL;
}

/* Reads and resets the prober's counts. */
static void probe_take(struct prober *p, long *probes, long *failures, double *max_ms)
{
    pthread_mutex_lock(&p->mu);
    *probes = p->probes;
    *failures = p->failures;
    *max_ms = p->max_ms;
    p->probes = p->failures = 0;
    p->max_ms = 0;
    pthread_mutex_unlock(&p->mu);
}

/* ---- windows of the load -------------------------------------------------------------------- */

static hload *g_load;
static struct prober g_probe;

/* Keeps a window's answers for the final checks (takes them over). */
static void keep(hload_window *w)
{
    hload_answer *a = realloc(g_answers, (g_nanswers + w->nanswers + 1) * sizeof *a);
    if (!a)
        return;
    g_answers = a;
    for (size_t i = 0; i < w->nanswers; i++)
        g_answers[g_nanswers++] = w->answers[i];
    free(w->answers);
    w->answers = NULL;
    w->nanswers = 0;
}

/* The load's answers since the last window: how many were 200, how many the expected error
 * (500, code 13, message `err`; NULL = none expected), how many anything else (the first is
 * printed). Also checks the prober over the same time. */
static int g_prompt = 1; /* check that the read-only endpoints stay prompt */

static void window(const char *what, double ms, const char *err, long *ok, long *errs,
                   hload_window *out)
{
    if (ms > 0)
        usleep((useconds_t)(ms * 1000));
    hload_window w;
    hload_take(g_load, &w);
    long n_ok = 0, n_err = 0, other = 0;
    for (size_t i = 0; i < w.nanswers; i++) {
        hload_answer *a = &w.answers[i];
        if (a->status == 200) {
            n_ok++;
            continue;
        }
        h_response r = {.status = a->status, .body = a->body, .body_len = strlen(a->body),
                        .headers = "Content-Type: application/json\r\n"};
        if (err && a->status == 500 && strstr(a->body, err) &&
            h_is_error(&r, 500, 13, err)) {
            n_err++;
            continue;
        }
        if (other++ == 0)
            fprintf(stderr, "%s: unexpected answer %ld: %.300s\n", what, a->status, a->body);
    }
    long probes, pfail;
    double pmax;
    probe_take(&g_probe, &probes, &pfail, &pmax);
    printf("fact: %s: %zu answers (%ld x 200, %ld x 500 \"%s\", %ld other), p50 %.1f ms, "
           "p99 %.1f ms; read-only endpoints: %ld probes, slowest %.1f ms\n",
           what, w.nanswers, n_ok, n_err, err ? err : "-", other, w.p50_ms, w.p99_ms, probes,
           pmax);
    CHECK(other == 0, "%s: no answer but 200%s%s (%ld others)", what, err ? " or 500 " : "",
          err ? err : "", other);
    CHECK(pfail == 0, "%s: the read-only endpoints answered 200 (%ld failed: %s)", what, pfail,
          g_probe.last_failure);
    CHECK(!g_prompt || (probes > 0 && pmax < 1000.0 * h_slow()),
          "%s: the read-only endpoints stayed prompt (slowest %.1f ms of %ld)", what, pmax,
          probes);
    if (ok)
        *ok = n_ok;
    if (errs)
        *errs = n_err;
    if (out)
        *out = w;
    else {
        keep(&w);
        hload_window_free(&w);
    }
}

/* ---- set-up ----------------------------------------------------------------------------- */

static int set_up(void)
{
    const char *fault = h_env("FULCRUM_PKCS11_FAULT_MODULE");
    const char *bin = h_env("FULCRUM_BIN");
    h_softhsm hs;
    if (!fault || !bin || h_softhsm_setup(&hs, NULL) != 0 ||
        h_softhsm_init_token(&hs, TOKEN_LABEL, TOKEN_PIN) != 0)
        return -1;
    const char *tmp = h_tmpdir();
    char real_cfg[4200], fault_cfg[4200];
    snprintf(real_cfg, sizeof real_cfg, "%s/crypto11-real.json", tmp);
    snprintf(fault_cfg, sizeof fault_cfg, "%s/crypto11-fault.json", tmp);
    snprintf(g_root_pem, sizeof g_root_pem, "%s/root.pem", tmp);
    snprintf(g_control, sizeof g_control, "%s/fault.control", tmp);
    snprintf(g_log_state, sizeof g_log_state, "%s/ctlog-state", tmp);
    snprintf(g_audit, sizeof g_audit, "%s/audit.log", tmp);
    if (write_crypto11_config(real_cfg, hs.module) != 0 ||
        write_crypto11_config(fault_cfg, fault) != 0 || mkdir(g_log_state, 0700) != 0)
        return -1;
    setenv("FULCRUM_PKCS11_FAULT_TARGET", hs.module, 1);
    setenv("FULCRUM_PKCS11_FAULT_CONTROL", g_control, 1);
    fault_control("clear\n");

    char *err = NULL;
    char *createca[] = {(char *)bin, "createca", "--pkcs11-config-path", real_cfg,
                        "--hsm-caroot-id", CAROOT_ID, "--org", "Fulcrum Load Faults",
                        "--country", "US", "--province", "WA", "--locality", "Kirkland",
                        "--street-address", "767 6th St S", "--postal-code", "98033",
                        "--out", g_root_pem, NULL};
    int rc = h_exec(createca, 120000, NULL, &err);
    CHECK(rc == 0, "fulcrum createca through SoftHSM2 (exit %d): %s", rc, err ? err : "");
    free(err);
    if (rc != 0)
        return -1;
    char *pem = h_read_file(g_root_pem, NULL);
    X509 *root = pem ? h_cert_from_pem(pem) : NULL;
    free(pem);
    if (!root)
        return -1;
    g_ca_pub = X509_get_pubkey(root);
    X509_free(root);

    if (h_issuer_start(&g_iss) != 0 ||
        h_ctlog_start(&g_log, "ctlog-1", g_root_pem, g_log_state, 0) != 0)
        return -1;
    char *config = config_json(&g_iss);
    const char *extra[] = {"--pkcs11-config-path", fault_cfg, "--hsm-caroot-id", CAROOT_ID,
                           "--ct-log-url", g_log.url, "--ct-log-public-key-path",
                           g_log.public_key_path, "--ct-log-timeout", "3s", "--audit-log",
                           g_audit, "--workers", "4", "--metrics-port", "-1", NULL};
    h_server_opts o = {.ca = "pkcs11ca", .config_json = config, .extra_args = extra};
    rc = h_server_start(&g_srv, &o);
    free(config);
    return rc;
}

/* ---- the final check: nothing lost ----------------------------------------------------------- */

/* Lower-case hex serial of the TBSCertificate in a precert MerkleTreeLeaf, or NULL. */
static char *leaf_serial(const unsigned char *in, size_t len)
{
    /* version, leaf type, timestamp(8), entry type(2) = precert (1), issuer key hash(32),
     * tbs length(3), tbs */
    if (len < 47 || in[0] != 0 || in[1] != 0 || in[10] != 0 || in[11] != 1)
        return NULL;
    size_t tlen = ((size_t)in[44] << 16) | ((size_t)in[45] << 8) | in[46];
    if (47 + tlen > len)
        return NULL;
    const unsigned char *p = in + 47;
    long l;
    int tag, cls;
    if (ASN1_get_object(&p, &l, &tag, &cls, (long)tlen) & 0x80 || tag != V_ASN1_SEQUENCE)
        return NULL;
    const unsigned char *end = p + l;
    if (p < end && *p == 0xa0) { /* [0] version */
        const unsigned char *q = p;
        if (ASN1_get_object(&q, &l, &tag, &cls, end - p) & 0x80)
            return NULL;
        p = q + l;
    }
    ASN1_INTEGER *serial = d2i_ASN1_INTEGER(NULL, &p, end - p);
    BIGNUM *bn = serial ? ASN1_INTEGER_to_BN(serial, NULL) : NULL;
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    char *out = hex ? strdup(hex) : NULL;
    for (char *c = out; c && *c; c++)
        if (*c >= 'A' && *c <= 'F')
            *c = (char)(*c - 'A' + 'a');
    OPENSSL_free(hex);
    BN_free(bn);
    ASN1_INTEGER_free(serial);
    return out;
}

static unsigned char *b64dec(const char *s, size_t *len)
{
    size_t n = s ? strlen(s) : 0;
    unsigned char *out = malloc(n + 4);
    int got = out ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)n) : -1;
    if (got < 0) {
        free(out);
        return NULL;
    }
    while (n > 0 && s[n - 1] == '=') {
        got--;
        n--;
    }
    *len = (size_t)got;
    return out;
}

/* The serials of every precertificate in the log (a JSON object used as a set). */
static json_t *log_serials(long *tree_size)
{
    char url[256];
    snprintf(url, sizeof url, "%s/ct/v1/get-sth", g_log.url);
    h_response r;
    h_get(url, &r);
    json_t *sth = h_json(&r);
    h_response_free(&r);
    long size = (long)json_integer_value(json_object_get(sth, "tree_size"));
    json_decref(sth);
    *tree_size = size;
    json_t *set = json_object();
    for (long start = 0; start < size;) {
        snprintf(url, sizeof url, "%s/ct/v1/get-entries?start=%ld&end=%ld", g_log.url, start,
                 size - 1);
        h_get(url, &r);
        json_t *j = h_json(&r);
        h_response_free(&r);
        json_t *entries = json_object_get(j, "entries");
        size_t n = json_array_size(entries);
        for (size_t i = 0; i < n; i++) {
            size_t len = 0;
            unsigned char *leaf = b64dec(
                json_string_value(json_object_get(json_array_get(entries, i), "leaf_input")),
                &len);
            char *serial = leaf ? leaf_serial(leaf, len) : NULL;
            if (serial)
                json_object_set_new(set, serial, json_true());
            free(serial);
            free(leaf);
        }
        json_decref(j);
        if (n == 0)
            break;
        start += (long)n;
    }
    return set;
}

static void check_nothing_lost(void)
{
    /* The CT log integrates entries within a second (group commit); wait for the STH. */
    long tree = 0, prev = -1;
    json_t *in_log = NULL;
    for (int i = 0; i < 20 * h_slow(); i++) {
        json_decref(in_log);
        in_log = log_serials(&tree);
        if (tree == prev)
            break;
        prev = tree;
        usleep(500000);
    }
    json_t *audit = hops_audit_records(g_audit);
    json_t *audit_serials = json_object();
    size_t dup = 0;
    for (size_t i = 0; i < json_array_size(audit); i++) {
        const char *s = json_string_value(json_object_get(json_array_get(audit, i), "serial"));
        if (s && json_object_get(audit_serials, s))
            dup++;
        else if (s)
            json_object_set_new(audit_serials, s, json_true());
    }
    long received = 0, bad_sig = 0, not_audited = 0, not_logged = 0, cert_in_error = 0;
    for (size_t i = 0; i < g_nanswers; i++) {
        hload_answer *a = &g_answers[i];
        if (a->status != 200) {
            cert_in_error += strstr(a->body, "BEGIN CERTIFICATE") != NULL;
            continue;
        }
        X509 *leaf = hops_v2_leaf(a->body);
        received++;
        if (!leaf || X509_verify(leaf, g_ca_pub) != 1) {
            bad_sig++;
            X509_free(leaf);
            continue;
        }
        char *serial = hops_serial_hex(leaf);
        if (!serial || !json_object_get(audit_serials, serial))
            not_audited++;
        if (!serial || !json_object_get(in_log, serial))
            not_logged++;
        free(serial);
        X509_free(leaf);
    }
    printf("fact: %ld certificates received; audit log %zu records; CT log %ld entries\n",
           received, json_array_size(audit), tree);
    CHECK(audit != NULL, "the audit log reads as whole JSON lines");
    CHECK(received > 0 && bad_sig == 0,
          "every certificate received verifies against the HSM's CA key (%ld of %ld do not)",
          bad_sig, received);
    CHECK(cert_in_error == 0, "no error answer carries a certificate (%ld do)", cert_in_error);
    CHECK(not_audited == 0, "every certificate received is in the audit log (%ld are not)",
          not_audited);
    CHECK(dup == 0 && (long)json_array_size(audit) == received,
          "the audit log holds each of them once and nothing else (%zu records, %zu repeated, "
          "%ld received)",
          json_array_size(audit), dup, received);
    CHECK(not_logged == 0, "every certificate received has its precertificate in the CT log "
                           "(%ld have not)",
          not_logged);
    json_decref(in_log);
    json_decref(audit);
    json_decref(audit_serials);
}

/* ---- the run ---------------------------------------------------------------------------- */

int main(void)
{
    if (h_init("load_faults") != 0)
        return 1;
    if (set_up() != 0) {
        CHECK(0, "set-up: SoftHSM2 token, CA, CT log, issuer, server");
        h_finish(1);
        CHECK_MAIN_END();
    }
    char *bodies[4];
    EVP_PKEY *keys[4];
    for (int i = 0; i < 4; i++) {
        char email[64];
        snprintf(email, sizeof email, "load%d@example.com", i);
        keys[i] = h_key_new("P-256");
        bodies[i] = body_for(g_iss.url, email, keys[i]);
    }
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", g_srv.url);
    hload_opts lo = {.url = url, .bodies = (const char *const *)bodies, .nbodies = 4,
                     .threads = 4, .keep_bodies = 1};
    pthread_mutex_init(&g_probe.mu, NULL);
    g_load = hload_start(&lo);
    int probing = pthread_create(&g_probe.thread, NULL, prober_main, &g_probe) == 0;
    CHECK(g_load && probing, "load and prober start");
    if (!g_load || !probing) {
        h_finish(1);
        CHECK_MAIN_END();
    }
    long ok, errs;
    hload_window base;
    window("warm-up", 1000, NULL, NULL, NULL, NULL);
    window("baseline", 2000, NULL, &ok, NULL, &base);
    double base_p99 = base.p99_ms;
    keep(&base);
    hload_window_free(&base);
    CHECK(ok > 0, "baseline: certificates issued (%ld)", ok);
    double p99_limit = base_p99 * 3 > base_p99 + 50.0 * h_slow() ? base_p99 * 3
                                                                  : base_p99 + 50.0 * h_slow();

    /* 1. The issuer slow: cached keys serve the load; a new tenant waits for its keys. */
    issuer_control(&g_iss, "{\"discovery_delay_ms\":1500,\"jwks_delay_ms\":1500}");
    EVP_PKEY *tkey = h_key_new("P-256");
    char tenant[128];
    snprintf(tenant, sizeof tenant, "%s/t/slow1", g_iss.url);
    char *tbody = body_for(tenant, "tenant@example.com", tkey);
    long ms = 0;
    long st = sign_once(tbody, NULL, &ms);
    free(tbody);
    CHECK(st == 200 && ms >= 2900, "issuer slow: a tenant not cached yet is served once its keys "
                                   "arrive (%ld after %ld ms)",
          st, ms);
    hload_window w;
    window("issuer slow", 1000, NULL, &ok, NULL, &w);
    CHECK(ok > 0 && w.p99_ms <= p99_limit,
          "issuer slow: the load keeps its latency (p99 %.1f ms <= %.1f ms)", w.p99_ms,
          p99_limit);
    keep(&w);
    hload_window_free(&w);

    /* 2. The issuer down: cached keys serve; a tenant not cached gets a 500 naming it. */
    issuer_control(&g_iss, "{\"reset\":true}");
    snprintf(tenant, sizeof tenant, "%s/t/down1", g_iss.url);
    tbody = body_for(tenant, "tenant@example.com", tkey); /* minted while A still answers */
    issuer_control(&g_iss, "{\"discovery_status\":503,\"jwks_status\":503}");
    h_response r;
    sign_once(tbody, &r, NULL);
    free(tbody);
    char prefix[256];
    snprintf(prefix, sizeof prefix, MSG_KEYS "%s", tenant);
    CHECK(h_is_error(&r, 500, 13, prefix),
          "issuer down: a tenant not cached gets 500 naming it (%ld %.200s)", r.status,
          r.body ? r.body : "");
    h_response_free(&r);
    window("issuer down", 2000, NULL, &ok, NULL, &w);
    CHECK(ok > 0 && w.p99_ms <= p99_limit,
          "issuer down: the load is served from the cached keys, latency kept (p99 %.1f ms <= "
          "%.1f ms)",
          w.p99_ms, p99_limit);
    keep(&w);
    hload_window_free(&w);
    issuer_control(&g_iss, "{\"reset\":true}");

    /* 3. The CT log slow: stalled for 1.5 s (under the 3 s --ct-log-timeout). */
    window("before CT slow", 500, NULL, NULL, NULL, NULL);
    kill(g_log.proc.pid, SIGSTOP);
    usleep(1500000);
    kill(g_log.proc.pid, SIGCONT);
    window("CT log slow", 1500, NULL, &ok, NULL, NULL);
    CHECK(ok > 0, "CT log slow: certificates issued (%ld)", ok);

    /* 4. The CT log down, then back on its port and state. */
    CHECK(h_proc_stop(&g_log.proc, 20000) == 0, "CT log stops cleanly");
    window("CT log down", 4000, MSG_CTL, &ok, &errs, NULL);
    CHECK(errs > 0, "CT log down: requests get 500 \"%s\" (%ld)", MSG_CTL, errs);
    int log_port = g_log.port;
    CHECK(h_ctlog_start(&g_log, "ctlog-2", g_root_pem, g_log_state, log_port) == 0,
          "CT log restarts on port %d", log_port);
    window("CT log back (settling)", 3500, MSG_CTL, NULL, NULL, NULL);
    window("CT log back", 2000, NULL, &ok, NULL, NULL);
    CHECK(ok > 0, "CT log back: certificates issued again (%ld)", ok);

    /* 5. The HSM fails, then comes back. Signatures run on the HTTP workers, so while a
     * reconnect to the token holds them all, even /healthz waits (seen once under ASan: 3 s):
     * promptness is not asserted here, only reported. */
    g_prompt = 0;
    fault_control("sign_error=device_removed until_cleared\nopen_session_error=device_removed "
                  "until_cleared\nlogin_error=device_removed until_cleared\n");
    window("HSM failing", 2500, MSG_CA_BACKEND, &ok, &errs, NULL);
    CHECK(errs > 0, "HSM failing: requests get 500 \"%s\" (%ld)", MSG_CA_BACKEND, errs);
    fault_control("clear\n");
    window("HSM back (settling)", 1500, MSG_CA_BACKEND, NULL, NULL, NULL);
    window("HSM back", 2000, NULL, &ok, NULL, NULL);
    CHECK(ok > 0, "HSM back: certificates issued again without a restart (%ld)", ok);

    hload_window last;
    hload_stop(g_load, &last);
    keep(&last);
    hload_window_free(&last);
    atomic_store(&g_probe.stop, 1);
    pthread_join(g_probe.thread, NULL);

    check_nothing_lost();
    CHECK(h_proc_alive(&g_srv.proc), "the server survived every fault");
    CHECK(h_proc_stop(&g_srv.proc, 20000) == 0, "server exits 0 on SIGTERM");
    CHECK(h_proc_stop(&g_log.proc, 20000) == 0, "CT log exits 0 on SIGTERM");

    for (size_t i = 0; i < g_nanswers; i++)
        free(g_answers[i].body);
    free(g_answers);
    for (int i = 0; i < 4; i++) {
        free(bodies[i]);
        EVP_PKEY_free(keys[i]);
    }
    EVP_PKEY_free(tkey);
    EVP_PKEY_free(g_ca_pub);
    pthread_mutex_destroy(&g_probe.mu);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
