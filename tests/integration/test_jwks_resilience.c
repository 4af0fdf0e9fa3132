/*
 * tests/integration/test_jwks_resilience.c: how a real `fulcrum serve` gets, keeps and refuses
 * issuers' keys, against real dev issuer processes.
 *
 *   1. issuer down at start: the server starts and serves /healthz; signing requests get 500
 *      naming the issuer and the cause; once the issuer is up (background retries) they succeed
 *      without a restart.
 *   2. issuer down later: the cached keys keep issuing past the TTL; past --jwks-max-stale the
 *      answer is 500 naming the issuer; a restarted issuer is picked up again.
 *   3. slow issuer: while issuer A holds its JWKS for seconds, requests for issuer B keep their
 *      latency (no worker stalls); A's requests then complete; start-up does not wait for a slow
 *      discovery either.
 *   4. oversize JWKS and 5. redirects to another host (JWKS and discovery) are refused with clear
 *      messages; a same-host redirect is followed.
 *   6. the kid flood: 1000 tokens with random kids cause at most 3 JWKS fetches.
 *   7. key rotation without a restart: the new kid works, the old one is refused.
 *   8. an iss that matches no configured issuer makes no network request at all.
 *   9. TLS: an issuer behind a private CA works with CACert and fails with a TLS error without.
 *
 * Issuers A and B also serve tenants /t/<name> (own issuer URL each), configured as the
 * meta-issuers "http://127.0.0.1:<port>/t/" + "*", so every scenario gets a fresh key cache
 * entry.
 */
#include <curl/curl.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "integration/harness.h"
#include "unit/check.h"

#define MSG_TOKEN "There was an error processing the identity token: "
#define MSG_KEYS "could not fetch the keys of issuer "

static EVP_PKEY *g_client; /* the client key of every signing request */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
    usleep((useconds_t)(ms * 1000));
}

/* ---- requests ---------------------------------------------------------------------------- */

/* A v2 signing request for the dev issuer's default identity (email dev@fulcrum.test). */
static char *sign_body(const char *token)
{
    char *pem = h_key_spki_pem(g_client);
    size_t sig_len = 0;
    unsigned char *sig = h_sign_pop(g_client, "dev@fulcrum.test", &sig_len);
    char *b64 = sig ? h_b64(sig, sig_len, 0) : NULL;
    char *out = NULL;
    if (pem && b64 && token) {
        json_t *req = json_pack("{s:{s:s},s:{s:{s:s,s:s},s:s}}", "credentials",
                                "oidcIdentityToken", token, "publicKeyRequest", "publicKey",
                                "algorithm", "ECDSA", "content", pem, "proofOfPossession", b64);
        out = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
    }
    free(pem);
    free(sig);
    free(b64);
    return out;
}

/* POSTs a signing request with `token` to srv; fills r. */
static int sign(const h_server *srv, const char *token, h_response *r)
{
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", srv->url);
    char *body = sign_body(token);
    if (!body) {
        memset(r, 0, sizeof *r);
        return -1;
    }
    int rc = h_post_json(url, body, NULL, r);
    free(body);
    return rc;
}

/* The error message of a grpc-gateway error body ("" when there is none). Static buffer. */
static const char *err_msg(const h_response *r)
{
    static char buf[2048];
    buf[0] = 0;
    json_error_t e;
    json_t *j = json_loadb(r->body ? r->body : "", r->body_len, 0, &e);
    const char *m = json_string_value(json_object_get(j, "message"));
    snprintf(buf, sizeof buf, "%s", m ? m : "");
    json_decref(j);
    return buf;
}

/* The dev issuer's tenant `name` as an h_issuer of its own (same process, issuer URL
 * <url>/t/<name>), for h_issuer_token. */
static h_issuer tenant(const h_issuer *iss, const char *name)
{
    h_issuer t = *iss;
    snprintf(t.url, sizeof t.url, "%.40s/t/%.16s", iss->url, name);
    return t;
}

static char *token_of(const h_issuer *iss, const char *query)
{
    char *t = h_issuer_token(iss, query);
    CHECK(t != NULL, "token from %s", iss->url);
    return t;
}

/* POST /control on the dev issuer. */
static void control(const h_issuer *iss, const char *json)
{
    char url[128];
    snprintf(url, sizeof url, "%s/control", iss->url);
    h_response r;
    int rc = h_post_json(url, json, NULL, &r);
    CHECK(rc == 0 && r.status == 200, "control %s on %s: %ld %s", json, iss->url, r.status,
          r.body ? r.body : "");
    h_response_free(&r);
}

/* A counter from the dev issuer's /stats: the totals, or tenant `name`'s. -1 on failure. */
static long stat_of(const h_issuer *iss, const char *name, const char *counter)
{
    json_t *j = h_issuer_stats(iss);
    json_t *scope = name ? json_object_get(json_object_get(j, "tenants"), name) : j;
    json_t *v = json_object_get(scope, counter);
    long n = json_is_integer(v) ? (long)json_integer_value(v) : (name && j ? 0 : -1);
    json_decref(j);
    return n;
}

/* A token with this iss and kid in a well-formed JWT whose signature is junk: enough for every
 * check that happens before the signature (issuer selection, key lookup). */
static char *fake_token(const char *iss, const char *kid)
{
    char header[256], payload[512];
    snprintf(header, sizeof header, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    long now = (long)time(NULL);
    snprintf(payload, sizeof payload,
             "{\"iss\":\"%s\",\"sub\":\"x\",\"aud\":\"sigstore\",\"exp\":%ld,\"iat\":%ld,"
             "\"email\":\"dev@fulcrum.test\",\"email_verified\":true}",
             iss, now + 300, now);
    char *h = h_b64(header, strlen(header), 1), *p = h_b64(payload, strlen(payload), 1);
    char *out = NULL;
    if (h && p && (out = malloc(strlen(h) + strlen(p) + 16)))
        sprintf(out, "%s.%s.c2lnbmF0dXJl", h, p);
    free(h);
    free(p);
    return out;
}

/* `token` with its header replaced by {"alg":"RS256","typ":"JWT","kid":kid}. */
static char *with_kid(const char *token, const char *kid)
{
    const char *dot = strchr(token, '.');
    char header[128];
    snprintf(header, sizeof header, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    char *h = h_b64(header, strlen(header), 1);
    char *out = h && dot ? malloc(strlen(h) + strlen(dot) + 1) : NULL;
    if (out)
        sprintf(out, "%s%s", h, dot);
    free(h);
    return out;
}

/* The config of server-2: A and B exactly, and their tenants as meta-issuers. */
static char *config_two(const h_issuer *a, const h_issuer *b)
{
    json_t *oidc = json_object(), *meta = json_object();
    const h_issuer *iss[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        char pattern[128];
        json_object_set_new(oidc, iss[i]->url,
                            json_pack("{s:s,s:s,s:s}", "IssuerURL", iss[i]->url, "ClientID",
                                      "sigstore", "Type", "email"));
        snprintf(pattern, sizeof pattern, "%s/t/*", iss[i]->url);
        json_object_set_new(meta, pattern,
                            json_pack("{s:s,s:s}", "ClientID", "sigstore", "Type", "email"));
    }
    json_t *cfg = json_pack("{s:o,s:o}", "OIDCIssuers", oidc, "MetaIssuers", meta);
    char *text = json_dumps(cfg, JSON_INDENT(2));
    json_decref(cfg);
    return text;
}

/* ---- 1 and 2: an issuer down at start, then down later ----------------------------------- */

/* Signs with `token` every 200 ms until a 200 or `ms` pass; returns the last status. Every
 * non-200 answer must be the 500 naming the issuer. */
static long sign_until_ok(const h_server *srv, const char *token, const char *issuer_url,
                          long ms, long *took)
{
    long start = now_ms(), status = 0;
    char prefix[256];
    snprintf(prefix, sizeof prefix, MSG_KEYS "%s: ", issuer_url);
    while (now_ms() - start < ms) {
        h_response r;
        sign(srv, token, &r);
        status = r.status;
        if (status != 200 && !h_is_error(&r, 500, 13, prefix)) {
            CHECK(0, "while the issuer is down: only 500 naming it (%ld %s)", r.status,
                  r.body ? r.body : "");
            h_response_free(&r);
            break;
        }
        h_response_free(&r);
        if (status == 200)
            break;
        sleep_ms(200);
    }
    *took = now_ms() - start;
    return status;
}

static void test_down_at_start_then_later(void)
{
    int port = h_free_port();
    CHECK(port > 0, "a free port for the late issuer");
    char issuer_url[64], key_dir[4200], config[512];
    snprintf(issuer_url, sizeof issuer_url, "http://127.0.0.1:%d", port);
    snprintf(key_dir, sizeof key_dir, "%s/late-keys", h_tmpdir());
    snprintf(config, sizeof config,
             "{\"OIDCIssuers\":{\"%s\":{\"IssuerURL\":\"%s\",\"ClientID\":\"sigstore\","
             "\"Type\":\"email\"}}}",
             issuer_url, issuer_url);
    const char *args[] = {"--jwks-ttl", "1s", "--jwks-max-stale", "4s", NULL};
    h_server srv;
    h_server_opts so = {.config_json = config, .extra_args = args};
    long t0 = now_ms();
    if (h_server_start(&srv, &so) != 0) {
        CHECK(0, "server starts while its only issuer is down");
        return;
    }
    CHECK(now_ms() - t0 < 10000, "start-up did not wait for the issuer (%ld ms)", now_ms() - t0);
    char url[128];
    snprintf(url, sizeof url, "%s/healthz", srv.url);
    h_response r;
    CHECK(h_get(url, &r) == 0 && r.status == 200, "/healthz is 200 with the issuer down");
    h_response_free(&r);

    /* 1. Requests get 500 with the issuer and the cause. */
    char *fake = fake_token(issuer_url, "dev-rsa-1");
    char prefix[256];
    snprintf(prefix, sizeof prefix, MSG_KEYS "%s: discovery %s/.well-known/openid-configuration: ",
             issuer_url, issuer_url);
    sign(&srv, fake, &r);
    CHECK(h_is_error(&r, 500, 13, prefix) && strstr(err_msg(&r), "onnect"),
          "issuer down: 500 naming the issuer and the cause: %s", r.body);
    printf("issuer down: %s\n", err_msg(&r));
    h_response_free(&r);
    free(fake);

    /* The issuer comes up: background retries pick it up, no restart. */
    h_issuer late;
    h_issuer_opts io = {.name = "late", .port = port, .key_dir = key_dir};
    if (h_issuer_start_opts(&late, &io) != 0) {
        CHECK(0, "late issuer starts on port %d", port);
        h_proc_stop(&srv.proc, 5000);
        return;
    }
    char *tok = token_of(&late, NULL);
    long took = 0;
    long status = sign_until_ok(&srv, tok, issuer_url, 20000, &took);
    CHECK(status == 200, "issuer up: requests succeed without a restart (after %ld ms)", took);
    printf("issuer up after start: first certificate %ld ms after the issuer started\n", took);

    /* 2. Down later: the cached keys keep issuing past the TTL (1 s) up to max-stale (4 s). */
    CHECK(h_proc_stop(&late.proc, 5000) == 0, "late issuer stopped");
    long stopped = now_ms();
    sleep_ms(1500);
    sign(&srv, tok, &r);
    CHECK(r.status == 200, "issuer down, keys past the TTL but within max-stale: still issues "
                           "(%ld %s)", r.status, r.body);
    h_response_free(&r);
    long refused_at = -1;
    while (now_ms() - stopped < 12000) {
        sign(&srv, tok, &r);
        long st = r.status;
        if (st != 200) {
            snprintf(prefix, sizeof prefix, MSG_KEYS "%s: ", issuer_url);
            CHECK(h_is_error(&r, 500, 13, prefix) &&
                      strstr(err_msg(&r), "past the max-stale limit of 4 s"),
                  "past max-stale: 500 naming the issuer and the limit: %s", r.body);
            printf("past max-stale: %s\n", err_msg(&r));
            refused_at = now_ms() - stopped;
            h_response_free(&r);
            break;
        }
        h_response_free(&r);
        sleep_ms(250);
    }
    CHECK(refused_at >= 2500 && refused_at <= 6000,
          "refused once the keys are 4 s old (%ld ms after the issuer stopped)", refused_at);

    /* The issuer is back (same port, same keys): picked up again without a restart. */
    h_issuer late2;
    io.name = "late2";
    if (h_issuer_start_opts(&late2, &io) != 0) {
        CHECK(0, "late issuer restarts on port %d", port);
    } else {
        status = sign_until_ok(&srv, tok, issuer_url, 30000, &took);
        CHECK(status == 200, "issuer back: requests succeed again (after %ld ms)", took);
        h_proc_stop(&late2.proc, 5000);
    }
    free(tok);
    CHECK(h_proc_stop(&srv.proc, 5000) == 0, "server exits 0");
}

/* ---- 3: a slow issuer does not stall the others ------------------------------------------ */

struct slow_req {
    const h_server *srv;
    const char *token;
    pthread_t th;
    long status, ms;
    volatile int done;
};

static void *slow_main(void *arg)
{
    struct slow_req *s = arg;
    long t = now_ms();
    h_response r;
    sign(s->srv, s->token, &r);
    s->status = r.status;
    h_response_free(&r);
    s->ms = now_ms() - t;
    __atomic_store_n(&s->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_slow_issuer(const h_server *srv, const h_issuer *a, const h_issuer *b)
{
    h_issuer slow = tenant(a, "slow");
    char *tok_a = token_of(&slow, NULL), *tok_b = token_of(b, NULL);
    h_response r;
    sign(srv, tok_b, &r);
    CHECK(r.status == 200, "issuer B works (%ld %s)", r.status, r.body);
    h_response_free(&r);

    control(a, "{\"jwks_delay_ms\":4000}");
    enum { N_SLOW = 8 };
    struct slow_req reqs[N_SLOW];
    for (int i = 0; i < N_SLOW; i++) {
        reqs[i] = (struct slow_req){.srv = srv, .token = tok_a};
        pthread_create(&reqs[i].th, NULL, slow_main, &reqs[i]);
    }
    sleep_ms(300);
    long worst = 0;
    for (int i = 0; i < 10; i++) {
        long t = now_ms();
        sign(srv, tok_b, &r);
        long ms = now_ms() - t;
        CHECK(r.status == 200, "B request %d while A is slow: %ld", i, r.status);
        h_response_free(&r);
        if (ms > worst)
            worst = ms;
    }
    int pending = 0;
    for (int i = 0; i < N_SLOW; i++)
        pending += !__atomic_load_n(&reqs[i].done, __ATOMIC_SEQ_CST);
    CHECK(worst < 1000, "B's requests keep their latency while A is slow (worst %ld ms)", worst);
    CHECK(pending == N_SLOW, "A's requests were all still pending meanwhile (%d of %d)", pending,
          N_SLOW);
    printf("slow issuer: 10 requests for B took at most %ld ms while %d for A waited\n", worst,
           pending);
    long slowest = 0, fastest = 1L << 30;
    int ok = 0;
    for (int i = 0; i < N_SLOW; i++) {
        pthread_join(reqs[i].th, NULL);
        ok += reqs[i].status == 200;
        slowest = reqs[i].ms > slowest ? reqs[i].ms : slowest;
        fastest = reqs[i].ms < fastest ? reqs[i].ms : fastest;
    }
    CHECK(ok == N_SLOW && fastest >= 3000 && slowest < 9000,
          "A's requests completed once its JWKS came (%d ok, %ld..%ld ms)", ok, fastest, slowest);
    CHECK(stat_of(a, "slow", "jwks_fetches") == 1, "the %d waiting requests shared one fetch",
          N_SLOW);
    control(a, "{\"reset\":true}");
    free(tok_a);
    free(tok_b);
}

/* ---- 4, 5: oversize and redirects -------------------------------------------------------- */

/* Signs with a token of a's tenant `name` and checks the 500 message is exactly `want`. */
static void expect_refused(const h_server *srv, const h_issuer *a, const char *name,
                           const char *want, const char *what)
{
    h_issuer t = tenant(a, name);
    char *tok = token_of(&t, NULL);
    h_response r;
    sign(srv, tok, &r);
    CHECK(h_is_error(&r, 500, 13, NULL), "%s: 500 code 13 (%ld %s)", what, r.status, r.body);
    CHECK_STREQ(err_msg(&r), want, what);
    printf("%s: %s\n", what, err_msg(&r));
    h_response_free(&r);
    free(tok);
}

static void test_oversize_and_redirects(const h_server *srv, const h_issuer *a)
{
    char want[1024], knob[256];
    control(a, "{\"jwks_pad_bytes\":2000000}");
    snprintf(want, sizeof want,
             MSG_KEYS "%s/t/big: JWKS %s/t/big/jwks: response larger than 1048576 bytes", a->url,
             a->url);
    expect_refused(srv, a, "big", want, "oversize JWKS");
    control(a, "{\"reset\":true}");

    snprintf(knob, sizeof knob, "{\"jwks_redirect\":\"http://localhost:%d/t/xr/jwks\"}", a->port);
    control(a, knob);
    snprintf(want, sizeof want,
             MSG_KEYS "%s/t/xr: JWKS %s/t/xr/jwks: redirect to another host refused "
                      "(http://localhost:%d/t/xr/jwks)",
             a->url, a->url, a->port);
    expect_refused(srv, a, "xr", want, "JWKS redirect to another host");
    CHECK(stat_of(a, "xr", "jwks_fetches") == 1, "the redirect was not followed (%ld fetches)",
          stat_of(a, "xr", "jwks_fetches"));
    control(a, "{\"reset\":true}");

    snprintf(knob, sizeof knob,
             "{\"discovery_redirect\":\"http://localhost:%d/t/dxr/.well-known/openid-configuration\"}",
             a->port);
    control(a, knob);
    snprintf(want, sizeof want,
             MSG_KEYS "%s/t/dxr: discovery %s/t/dxr/.well-known/openid-configuration: redirect to "
                      "another host refused (http://localhost:%d/t/dxr/.well-known/"
                      "openid-configuration)",
             a->url, a->url, a->port);
    expect_refused(srv, a, "dxr", want, "discovery redirect to another host");
    CHECK(stat_of(a, "dxr", "discovery_fetches") == 1 && stat_of(a, "dxr", "jwks_fetches") == 0,
          "the discovery redirect was not followed");
    control(a, "{\"reset\":true}");

    /* Same host: followed ("?same" is never redirected again by the dev issuer). */
    snprintf(knob, sizeof knob, "{\"jwks_redirect\":\"%s/t/sr/jwks?same\"}", a->url);
    control(a, knob);
    h_issuer t = tenant(a, "sr");
    char *tok = token_of(&t, NULL);
    h_response r;
    sign(srv, tok, &r);
    CHECK(r.status == 200, "same-host JWKS redirect followed (%ld %s)", r.status, r.body);
    CHECK(stat_of(a, "sr", "jwks_fetches") == 2, "redirect + target fetched");
    h_response_free(&r);
    free(tok);
    control(a, "{\"reset\":true}");
}

/* ---- 6: the kid flood -------------------------------------------------------------------- */

struct flood_xfer {
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    char reply[512];
    size_t reply_len;
};

static size_t flood_write(char *p, size_t size, size_t n, void *arg)
{
    struct flood_xfer *x = arg;
    size_t len = size * n, room = sizeof x->reply - 1 - x->reply_len;
    size_t take = len < room ? len : room;
    memcpy(x->reply + x->reply_len, p, take);
    x->reply_len += take;
    x->reply[x->reply_len] = 0;
    return len;
}

/* POSTs every body to url, `parallel` at a time. statuses[i] gets each answer's status;
 * sample gets the first answer's body. */
static void post_many(const char *url, char **bodies, int n, int parallel, long *statuses,
                      char *sample, size_t sample_len)
{
    CURLM *m = curl_multi_init();
    struct flood_xfer *x = calloc((size_t)n, sizeof *x);
    int next = 0, running = 0;
    while (next < n || running > 0) {
        while (next < n && running < parallel) {
            struct flood_xfer *t = &x[next];
            t->easy = curl_easy_init();
            t->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
            curl_easy_setopt(t->easy, CURLOPT_URL, url);
            curl_easy_setopt(t->easy, CURLOPT_NOPROXY, "*");
            curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, 60000L);
            curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->hdrs);
            curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, bodies[next]);
            curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, flood_write);
            curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
            curl_easy_setopt(t->easy, CURLOPT_PRIVATE, (char *)t);
            curl_multi_add_handle(m, t->easy);
            next++;
            running++;
        }
        int still = 0;
        curl_multi_perform(m, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct flood_xfer *t = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
            long st = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &st);
            statuses[t - x] = st;
            if (t == x && sample)
                snprintf(sample, sample_len, "%s", t->reply);
            curl_multi_remove_handle(m, t->easy);
            curl_easy_cleanup(t->easy);
            curl_slist_free_all(t->hdrs);
            running--;
        }
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    free(x);
    curl_multi_cleanup(m);
}

static void test_kid_flood(const h_server *srv, const h_issuer *b)
{
    enum { N = 1000 };
    char *tok = token_of(b, NULL);
    char **bodies = calloc(N, sizeof *bodies);
    long *statuses = calloc(N, sizeof *statuses);
    srand((unsigned)time(NULL));
    for (int i = 0; i < N && tok; i++) {
        char kid[48];
        snprintf(kid, sizeof kid, "flood-%d-%08x", i, (unsigned)rand());
        char *t = with_kid(tok, kid);
        bodies[i] = sign_body(t);
        free(t);
    }
    long before = stat_of(b, NULL, "jwks_fetches");
    char url[128], sample[512] = "";
    snprintf(url, sizeof url, "%s/api/v2/signingCert", srv->url);
    long t0 = now_ms();
    post_many(url, bodies, N, 50, statuses, sample, sizeof sample);
    long ms = now_ms() - t0;
    long after = stat_of(b, NULL, "jwks_fetches");
    int refused = 0;
    for (int i = 0; i < N; i++)
        refused += statuses[i] == 400;
    CHECK(refused == N, "every flood token refused with 400 (%d of %d)", refused, N);
    CHECK(strstr(sample, "is not published by") != NULL, "flood answer names the kid: %s", sample);
    CHECK(before >= 0 && after - before <= 3, "kid flood: at most 3 JWKS fetches (%ld)",
          after - before);
    printf("kid flood: %d tokens -> %ld jwks fetches (%ld ms)\n", N, after - before, ms);
    for (int i = 0; i < N; i++)
        free(bodies[i]);
    free(bodies);
    free(statuses);
    free(tok);
}

/* ---- 7: rotation ------------------------------------------------------------------------- */

static void test_rotation(const h_server *srv, const h_issuer *b)
{
    char *old_tok = token_of(b, NULL);
    h_response r;
    sign(srv, old_tok, &r);
    CHECK(r.status == 200, "before rotation: %ld %s", r.status, r.body);
    h_response_free(&r);

    control(b, "{\"rotate\":true}");
    char *new_tok = token_of(b, NULL);
    long start = now_ms(), status = 0;
    char want[256];
    snprintf(want, sizeof want, MSG_TOKEN "key id \"dev-rsa-2\" is not published by %s", b->url);
    while (now_ms() - start < 15000) {
        sign(srv, new_tok, &r);
        status = r.status;
        if (status != 200)
            CHECK(h_is_error(&r, 400, 3, want), "new kid before the refetch: 400 (%s)", r.body);
        h_response_free(&r);
        if (status == 200)
            break;
        sleep_ms(500);
    }
    CHECK(status == 200, "after rotation the new kid works without a restart (%ld ms)",
          now_ms() - start);
    sign(srv, old_tok, &r);
    snprintf(want, sizeof want, MSG_TOKEN "key id \"dev-rsa-1\" is not published by %s", b->url);
    CHECK(h_is_error(&r, 400, 3, want), "after rotation the old kid is refused (%s)", r.body);
    h_response_free(&r);
    free(old_tok);
    free(new_tok);
}

/* ---- 8: unconfigured issuers ------------------------------------------------------------- */

static void test_unconfigured(const h_server *srv, const h_issuer *b)
{
    char iss[4][200];
    snprintf(iss[0], sizeof iss[0], "%s/unconfigured", b->url);
    snprintf(iss[1], sizeof iss[1], "%s/t/a/b", b->url);      /* '*' never matches '/' */
    snprintf(iss[2], sizeof iss[2], "%s/t/a.b", b->url);      /* ... nor '.' */
    snprintf(iss[3], sizeof iss[3], "http://attacker.example/?%s/t/x", b->url); /* anchored */
    long d0 = stat_of(b, NULL, "discovery_fetches"), j0 = stat_of(b, NULL, "jwks_fetches");
    for (int i = 0; i < 4; i++) {
        char q[1024], want[1200];
        snprintf(q, sizeof q, "iss=%s", iss[i]);
        char *tok = token_of(b, q);
        snprintf(want, sizeof want, MSG_TOKEN "issuer \"%s\" is not configured on this server",
                 iss[i]);
        h_response r;
        sign(srv, tok, &r);
        CHECK(h_is_error(&r, 400, 3, want), "iss %s refused (%s)", iss[i], r.body);
        h_response_free(&r);
        free(tok);
    }
    long d1 = stat_of(b, NULL, "discovery_fetches"), j1 = stat_of(b, NULL, "jwks_fetches");
    CHECK(d1 == d0 && j1 == j0 && d0 >= 0, "unconfigured iss: zero discovery/JWKS fetches (%ld, %ld)",
          d1 - d0, j1 - j0);
}

/* ---- 9: TLS with a private CA ------------------------------------------------------------ */

static int add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = ext && X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* A certificate for key, signed by signer_key / issuer (NULL = self-signed): a CA, or a TLS
 * server certificate for 127.0.0.1 (IP SAN). */
static X509 *make_cert(EVP_PKEY *key, EVP_PKEY *signer_key, X509 *issuer, const char *cn, int ca)
{
    X509 *x = X509_new();
    if (!x)
        return NULL;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    int ok = add_ext(x, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE") &&
             add_ext(x, &ctx, NID_key_usage,
                     ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature") &&
             add_ext(x, &ctx, NID_subject_key_identifier, "hash") &&
             (ca || (add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") &&
                     add_ext(x, &ctx, NID_subject_alt_name, "IP:127.0.0.1") &&
                     add_ext(x, &ctx, NID_ext_key_usage, "serverAuth")));
    if (!ok || X509_sign(x, signer_key, EVP_sha256()) == 0) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static char *cert_pem(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL, *data;
    if (b && PEM_write_bio_X509(b, x)) {
        long n = BIO_get_mem_data(b, &data);
        out = strndup(data, (size_t)n);
    }
    BIO_free(b);
    return out;
}

static int write_key(const char *path, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    int ok = f && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (f)
        fclose(f);
    return ok ? 0 : -1;
}

static void test_tls(void)
{
    char ca_path[4200], cert_path[4200], key_path[4200];
    snprintf(ca_path, sizeof ca_path, "%s/tls-ca.pem", h_tmpdir());
    snprintf(cert_path, sizeof cert_path, "%s/tls-server.pem", h_tmpdir());
    snprintf(key_path, sizeof key_path, "%s/tls-server.key", h_tmpdir());
    EVP_PKEY *ca_key = h_key_new("P-256"), *srv_key = h_key_new("P-256");
    X509 *ca = ca_key ? make_cert(ca_key, ca_key, NULL, "fulcrum test private CA", 1) : NULL;
    X509 *leaf = ca && srv_key ? make_cert(srv_key, ca_key, ca, "127.0.0.1", 0) : NULL;
    char *ca_pem = ca ? cert_pem(ca) : NULL, *leaf_pem = leaf ? cert_pem(leaf) : NULL;
    int ok = ca_pem && leaf_pem && h_write_file(ca_path, ca_pem) == 0 &&
             h_write_file(cert_path, leaf_pem) == 0 && write_key(key_path, srv_key) == 0;
    CHECK(ok, "private CA and a server certificate for 127.0.0.1");
    h_issuer tls;
    h_issuer_opts io = {.name = "tls", .tls_cert = cert_path, .tls_key = key_path};
    if (!ok || h_issuer_start_opts(&tls, &io) != 0) {
        CHECK(0, "TLS dev issuer starts");
        goto out;
    }
    CHECK(strncmp(tls.url, "https://127.0.0.1:", 18) == 0, "TLS issuer URL %s", tls.url);

    /* One server, two issuers on the TLS dev issuer: /t/withca has CACert, /t/noca has not. */
    char with[128], without[128];
    snprintf(with, sizeof with, "%s/t/withca", tls.url);
    snprintf(without, sizeof without, "%s/t/noca", tls.url);
    json_t *cfg = json_pack("{s:{s:{s:s,s:s,s:s,s:s},s:{s:s,s:s,s:s}}}", "OIDCIssuers", with,
                            "IssuerURL", with, "ClientID", "sigstore", "Type", "email", "CACert",
                            ca_pem, without, "IssuerURL", without, "ClientID", "sigstore", "Type",
                            "email");
    char *config = json_dumps(cfg, JSON_INDENT(2));
    json_decref(cfg);
    h_server srv;
    h_server_opts so = {.config_json = config};
    int started = h_server_start(&srv, &so) == 0;
    free(config);
    CHECK(started, "server with a CACert issuer starts");
    if (!started)
        goto stop_issuer;

    h_http_set_cainfo(ca_path); /* for minting tokens from the https dev issuer */
    h_issuer t_with = tenant(&tls, "withca"), t_without = tenant(&tls, "noca");
    char *tok_with = token_of(&t_with, NULL), *tok_without = token_of(&t_without, NULL);
    h_http_set_cainfo(NULL);
    h_response r;
    sign(&srv, tok_with, &r);
    CHECK(r.status == 200, "with CACert: discovery and JWKS over TLS, certificate issued (%ld %s)",
          r.status, r.body);
    h_response_free(&r);
    sign(&srv, tok_without, &r);
    char prefix[512];
    snprintf(prefix, sizeof prefix,
             MSG_KEYS "%s: discovery %s/.well-known/openid-configuration: SSL certificate problem",
             without, without);
    /* Under valgrind the server's handshake (loading the system CA store) may outlast its
     * connect timeout before the certificate is even checked. */
    char vg_prefix[512];
    snprintf(vg_prefix, sizeof vg_prefix,
             MSG_KEYS "%s: discovery %s/.well-known/openid-configuration: SSL connection timeout",
             without, without);
    CHECK(h_is_error(&r, 500, 13, prefix) ||
              (h_valgrind() && h_is_error(&r, 500, 13, vg_prefix)),
          "without CACert: 500 with the TLS error (%s)", r.body);
    printf("TLS without CACert: %s\n", err_msg(&r));
    h_response_free(&r);
    h_http_set_cainfo(ca_path);
    CHECK(stat_of(&tls, "withca", "jwks_fetches") == 1 &&
              stat_of(&tls, "noca", "discovery_fetches") == 0,
          "the TLS issuer saw withca's fetches and no request from noca's failed handshakes");
    h_http_set_cainfo(NULL);
    free(tok_with);
    free(tok_without);
    CHECK(h_proc_stop(&srv.proc, 5000) == 0, "TLS server exits 0");
stop_issuer:
    h_proc_stop(&tls.proc, 5000);
out:
    free(ca_pem);
    free(leaf_pem);
    X509_free(ca);
    X509_free(leaf);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(srv_key);
}

/* ---- flags ------------------------------------------------------------------------------- */

static void test_flags(void)
{
    const char *bin = h_env("FULCRUM_BIN");
    if (!bin)
        return;
    char *err = NULL;
    char *const bad[][12] = {
        {(char *)bin, "serve", "--ca", "ephemeralca", "--port", "0", "--jwks-ttl", "10s",
         "--jwks-max-stale", "5s", NULL},
        {(char *)bin, "serve", "--ca", "ephemeralca", "--port", "0", "--jwks-ttl", "0s", NULL},
    };
    for (int i = 0; i < 2; i++) {
        int rc = h_run("bad-jwks-flags", bad[i], 10000, &err);
        CHECK(rc == 2 && err && strstr(err, "--jwks-max-stale"),
              "bad --jwks-ttl/--jwks-max-stale refused (exit %d): %s", rc, err ? err : "");
        free(err);
        err = NULL;
    }
    char *const help[] = {(char *)bin, "serve", "--help", NULL};
    int rc = h_run("serve-help", help, 10000, NULL);
    char path[4200];
    snprintf(path, sizeof path, "%s/serve-help.stdout", h_tmpdir());
    char *text = h_read_file(path, NULL);
    CHECK(rc == 0 && text && strstr(text, "--jwks-ttl") && strstr(text, "--jwks-max-stale"),
          "serve --help lists the JWKS flags");
    free(text);
}

/* ---- main -------------------------------------------------------------------------------- */

int main(void)
{
    if (h_init("jwks_resilience") != 0)
        return 1;
    g_client = h_key_new("P-256");

    test_flags();
    test_down_at_start_then_later();

    h_issuer a, b;
    if (h_issuer_start_named(&a, "issuer-a") != 0 || h_issuer_start_named(&b, "issuer-b") != 0) {
        CHECK(0, "issuers A and B start");
        h_finish(1);
        return 1;
    }
    /* Start-up does not wait for a slow discovery: A holds it for 3 s. */
    control(&a, "{\"discovery_delay_ms\":3000}");
    char *config = config_two(&a, &b);
    h_server srv;
    h_server_opts so = {.config_json = config};
    long t0 = now_ms();
    int started = h_server_start(&srv, &so) == 0;
    long start_ms = now_ms() - t0;
    free(config);
    /* Under valgrind the start-up alone can take longer than the 3 s: nothing to compare. */
    CHECK(started && (start_ms < 2500 || h_valgrind()),
          "server up in %ld ms although A's discovery takes 3 s", start_ms);
    if (started) {
        sleep_ms(3200);
        control(&a, "{\"reset\":true}");
        test_slow_issuer(&srv, &a, &b);
        test_oversize_and_redirects(&srv, &a);
        test_unconfigured(&srv, &b);
        test_kid_flood(&srv, &b);
        test_rotation(&srv, &b);
        CHECK(h_proc_stop(&srv.proc, 5000) == 0, "server-2 exits 0");
    }
    h_proc_stop(&a.proc, 5000);
    h_proc_stop(&b.proc, 5000);

    test_tls();

    EVP_PKEY_free(g_client);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
