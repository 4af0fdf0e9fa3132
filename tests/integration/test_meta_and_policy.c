/*
 * tests/integration/test_meta_and_policy.c: meta-issuers end to end (a wildcard issuer URL whose
 * issuers are discovered on first use) and per-issuer claim policies (403, the rule named),
 * against a real `fulcrum serve` and a dev issuer with tenants (<base>/t/<name> is an issuer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "integration/harness.h"
#include "unit/check.h"

#define MSG_TOKEN "There was an error processing the identity token: "
#define MSG_POLICY "The identity token is not permitted by this server's claim policy: "

static h_issuer g_iss;
static h_server g_srv;

static char *tenant_token(const char *tenant, const char *query)
{
    char url[512];
    if (tenant)
        snprintf(url, sizeof url, "%s/t/%s/token?%s", g_iss.url, tenant, query);
    else
        snprintf(url, sizeof url, "%s/token?%s", g_iss.url, query);
    h_response r;
    h_get(url, &r);
    char *tok = NULL;
    if (r.status == 200 && r.body)
        tok = strdup(r.body);
    CHECK(tok != NULL, "dev issuer minted a token at %s (status %ld)", url, r.status);
    h_response_free(&r);
    return tok;
}

/* POST a v2 request for `email` with a fresh P-256 key; fills r. */
static void request_cert(const char *token, const char *email, h_response *r)
{
    EVP_PKEY *key = h_key_new("P-256");
    char *pem = h_key_spki_pem(key);
    size_t sig_len = 0;
    unsigned char *sig = h_sign_pop(key, email, &sig_len);
    char *b64 = h_b64(sig, sig_len, 0);
    json_t *req = json_pack("{s:{s:s},s:{s:{s:s,s:s},s:s}}", "credentials", "oidcIdentityToken",
                            token ? token : "", "publicKeyRequest", "publicKey", "algorithm",
                            "ECDSA", "content", pem, "proofOfPossession", b64);
    char *body = json_dumps(req, JSON_COMPACT);
    char url[256];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", g_srv.url);
    h_post_json(url, body, NULL, r);
    free(body);
    json_decref(req);
    free(b64);
    free(sig);
    free(pem);
    EVP_PKEY_free(key);
}

/* The issued leaf's 1.3.6.1.4.1.57264.1.1 value (raw bytes) equals `want`. */
static int leaf_issuer_is(const h_response *r, const char *want)
{
    json_t *j = h_json(r);
    json_t *chain = json_object_get(json_object_get(j, "signedCertificateDetachedSct"), "chain");
    json_t *certs = json_object_get(chain, "certificates");
    int ok = 0;
    X509 *leaf = json_is_array(certs) ? h_cert_from_pem(json_string_value(json_array_get(certs, 0)))
                                      : NULL;
    if (leaf) {
        size_t len = 0;
        const unsigned char *v = h_ext_value(leaf, "1.3.6.1.4.1.57264.1.1", &len, NULL);
        ok = v && len == strlen(want) && memcmp(v, want, len) == 0;
        X509_free(leaf);
    }
    json_decref(j);
    return ok;
}

static long discovery_fetches(const char *tenant)
{
    json_t *st = h_issuer_stats(&g_iss);
    json_t *node = tenant ? json_object_get(json_object_get(st, "tenants"), tenant) : st;
    long n = node ? (long)json_integer_value(json_object_get(node, "discovery_fetches")) : -1;
    json_decref(st);
    return n;
}

static void test_meta_issuer(void)
{
    char iss_url[256];
    snprintf(iss_url, sizeof iss_url, "%s/t/team-one", g_iss.url);

    char *tok = tenant_token("team-one", "email=ann@acme.test");
    h_response r;
    request_cert(tok, "ann@acme.test", &r);
    CHECK(r.status == 200, "meta-issuer tenant team-one: 200, got %ld %s", r.status,
          r.body ? r.body : "");
    CHECK(r.status != 200 || leaf_issuer_is(&r, iss_url),
          "the certificate names the token's iss (%s), not the pattern", iss_url);
    h_response_free(&r);
    free(tok);

    /* A second tenant under the same pattern is its own issuer. */
    tok = tenant_token("team_two", "email=bob@acme.test");
    request_cert(tok, "bob@acme.test", &r);
    CHECK(r.status == 200, "meta-issuer tenant team_two: 200, got %ld %s", r.status,
          r.body ? r.body : "");
    h_response_free(&r);
    free(tok);
    CHECK(discovery_fetches("team-one") == 1 && discovery_fetches("team_two") == 1,
          "one discovery per tenant (team-one %ld, team_two %ld)", discovery_fetches("team-one"),
          discovery_fetches("team_two"));

    /* iss values the pattern must not match: refused before any fetch. */
    long before = discovery_fetches(NULL);
    static const char *bad_iss_suffix[] = {"/t/a/b", "/t/", "/t/a.b", "/t/a?x=1", "/tt/a",
                                           "/t/a/"};
    for (size_t i = 0; i < sizeof bad_iss_suffix / sizeof bad_iss_suffix[0]; i++) {
        char q[512];
        snprintf(q, sizeof q, "email=ann@acme.test&iss=%s%s", g_iss.url, bad_iss_suffix[i]);
        tok = tenant_token(NULL, q);
        request_cert(tok, "ann@acme.test", &r);
        CHECK(h_is_error(&r, 400, 3, MSG_TOKEN) && strstr(r.body, "is not configured"),
              "iss %s%s does not match the meta-issuer: 400 not configured", g_iss.url,
              bad_iss_suffix[i]);
        h_response_free(&r);
        free(tok);
    }
    CHECK(discovery_fetches(NULL) == before,
          "no discovery for iss values outside the pattern (%ld before, %ld after)", before,
          discovery_fetches(NULL));
}

static void test_claim_policy(void)
{
    /* The root issuer: email must end in @acme.test. */
    char *tok = tenant_token(NULL, "email=carol@acme.test");
    h_response r;
    request_cert(tok, "carol@acme.test", &r);
    CHECK(r.status == 200, "policy: allowed email gets a certificate (got %ld %s)", r.status,
          r.body ? r.body : "");
    h_response_free(&r);
    free(tok);

    tok = tenant_token(NULL, "email=mallory@evil.test");
    request_cert(tok, "mallory@evil.test", &r);
    CHECK(h_is_error(&r, 403, 7, MSG_POLICY), "policy: other domain -> 403 code 7");
    CHECK(r.body && strstr(r.body, "\\\"email\\\"") && strstr(r.body, "rule 1 of"),
          "policy: the message names the claim and the rule: %s", r.body ? r.body : "");
    CHECK(r.body && !strstr(r.body, "BEGIN CERTIFICATE"), "policy: no certificate");
    h_response_free(&r);
    free(tok);

    /* The second rule: sub must match ^user-[0-9]+$. */
    tok = tenant_token(NULL, "email=dave@acme.test&sub=admin");
    request_cert(tok, "dave@acme.test", &r);
    CHECK(h_is_error(&r, 403, 7, MSG_POLICY) && strstr(r.body, "rule 2 of"),
          "policy: sub outside the pattern -> 403 naming rule 2: %s", r.body ? r.body : "");
    h_response_free(&r);
    free(tok);

    /* A bad token is still a 400, whatever the policy says. */
    tok = tenant_token(NULL, "email=mallory@evil.test&exp_in=-60");
    request_cert(tok, "mallory@evil.test", &r);
    CHECK(h_is_error(&r, 400, 3, MSG_TOKEN), "policy: an expired token is 400, not 403");
    h_response_free(&r);
    free(tok);

    /* The configuration endpoint stays Fulcio-shaped: no policy in it. */
    char url[256];
    snprintf(url, sizeof url, "%s/api/v2/configuration", g_srv.url);
    h_get(url, &r);
    CHECK(r.status == 200 && r.body && !strstr(r.body, "acme.test") &&
              !strstr(r.body, "olicy"),
          "configuration does not reveal the policy: %s", r.body ? r.body : "");
    h_response_free(&r);
}

int main(void)
{
    if (h_init("meta-and-policy") != 0)
        return 1;
    if (h_issuer_start(&g_iss) != 0) {
        CHECK(0, "dev issuer starts");
        h_finish(1);
        CHECK_MAIN_END();
    }
    char config[2048];
    snprintf(config, sizeof config,
             "{\"OIDCIssuers\":{\"%s\":{\"IssuerURL\":\"%s\",\"ClientID\":\"sigstore\","
             "\"Type\":\"email\",\"ClaimPolicy\":["
             "{\"Claim\":\"email\",\"Suffix\":\"@acme.test\"},"
             "{\"Claim\":\"sub\",\"Match\":\"^(user-[0-9]+|dev-subject)$\"}]}},"
             "\"MetaIssuers\":{\"%s/t/*\":{\"ClientID\":\"sigstore\",\"Type\":\"email\"}}}",
             g_iss.url, g_iss.url, g_iss.url);
    h_server_opts opts = {.ca = "ephemeralca", .config_json = config};
    if (h_server_start(&g_srv, &opts) != 0) {
        CHECK(0, "server starts");
        h_finish(1);
        CHECK_MAIN_END();
    }
    test_meta_issuer();
    test_claim_policy();
    CHECK(h_proc_stop(&g_srv.proc, 10000) == 0, "server exits 0 on SIGTERM");
    h_proc_stop(&g_iss.proc, 5000);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
