/*
 * tests/integration/test_public_config.c: `fulcrum serve` with the public-good instance's own
 * issuer configuration (tests/fixtures/fulcio-public-config.yaml, unchanged).
 *
 * Checks: the server starts with it; GET /api/v2/configuration lists all its issuers (22
 * oidc-issuers and 9 meta-issuers, counted again from the file at run time) in Fulcio's shape
 * (fulcio-compat §1.5, every field emitted); tokens whose iss is not in it (a local dev issuer,
 * look-alike hosts, a meta pattern's near misses) are refused with 400 before anything is
 * fetched: the dev issuer's /stats show no discovery and no JWKS fetch.
 *
 * The configured issuers are public https hosts; the server may try to prefetch their keys in
 * the background (no network is needed for anything checked here).
 */
#include <stdlib.h>
#include <string.h>

#include "integration/harness.h"
#include "unit/check.h"

#define MSG_TOKEN "There was an error processing the identity token"

static const struct {
    const char *url;
    int wildcard;
    const char *type;
    const char *challenge;
} g_want[] = {
    {"https://accounts.google.com", 0, "email", "email"},
    {"https://agent.buildkite.com", 0, "ci-provider", "sub"},
    {"https://asia-oidc.buddyusercontent.com", 0, "ci-provider", "sub"},
    {"https://auth.eclipse.org/auth/realms/foundation-service-accounts", 0, "email", "email"},
    {"https://dev-oidc.buddyusercontent.com", 0, "ci-provider", "sub"},
    {"https://dev.gitlab.org", 0, "ci-provider", "sub"},
    {"https://eu-oidc.buddyusercontent.com", 0, "ci-provider", "sub"},
    {"https://gitlab.archlinux.org", 0, "ci-provider", "sub"},
    {"https://gitlab.com", 0, "ci-provider", "sub"},
    {"https://issuer.enforce.dev", 0, "chainguard-identity", "sub"},
    {"https://issuer.hello.coop", 0, "email", "email"},
    {"https://www.kaggle.com/api/v1/models/signing", 0, "email", "email"},
    {"https://oauth2.sigstage.dev/auth", 0, "email", "email"},
    {"https://oauth2.sigstore.dev/auth", 0, "email", "email"},
    {"https://oidc.buddyusercontent.com", 0, "ci-provider", "sub"},
    {"https://oidc.circleci.com", 0, "ci-provider", "sub"},
    {"https://oidc.codefresh.io", 0, "ci-provider", "sub"},
    {"https://ops.gitlab.net", 0, "ci-provider", "sub"},
    {"https://psd-oidc.buddyusercontent.com", 0, "ci-provider", "sub"},
    {"https://sigstore.verify.ibm.com/oauth2", 0, "email", "email"},
    {"https://stage-oidc.buddyusercontent.com", 0, "ci-provider", "sub"},
    {"https://token.actions.githubusercontent.com", 0, "ci-provider", "sub"},
    {"https://*.oic.prod-aks.azure.com/*/*", 1, "kubernetes", "sub"},
    {"https://*.oic.prod-aks.azure.com/*/*/", 1, "kubernetes", "sub"},
    {"https://container.googleapis.com/v1/projects/*/locations/*/clusters/*", 1, "kubernetes",
     "sub"},
    {"https://oidc.circleci.com/org/*", 1, "ci-provider", "sub"},
    {"https://oidc.eks.*.amazonaws.com/id/*", 1, "kubernetes", "sub"},
    {"https://oidc.prod-aks.azure.com/*", 1, "kubernetes", "sub"},
    {"https://oidc.prod-aks.azure.com/*/", 1, "kubernetes", "sub"},
    {"https://oidc.prod-aks.azure.com/*/*", 1, "kubernetes", "sub"},
    {"https://token.actions.githubusercontent.com/*", 1, "ci-provider", "sub"},
};
#define N_WANT (sizeof g_want / sizeof g_want[0])

/* Issuer keys in the file: lines "  https://...:" (two-space indent) under oidc-issuers and
 * meta-issuers. Returns {oidc, meta} counts. */
static void count_in_file(const char *text, int *oidc, int *meta)
{
    *oidc = *meta = 0;
    int section = 0; /* 1 oidc-issuers, 2 meta-issuers */
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t n = eol ? (size_t)(eol - line) : strlen(line);
        if (n > 0 && line[0] != ' ' && line[0] != '#')
            section = strncmp(line, "oidc-issuers:", 13) == 0   ? 1
                      : strncmp(line, "meta-issuers:", 13) == 0 ? 2
                                                                : 0;
        else if (section && n > 11 && strncmp(line, "  https://", 10) == 0 && line[n - 1] == ':')
            (section == 1 ? (*oidc)++ : (*meta)++);
        line = eol ? eol + 1 : NULL;
    }
}

static void check_configuration(const h_server *srv, const char *yaml)
{
    int oidc = 0, meta = 0;
    count_in_file(yaml, &oidc, &meta);
    CHECK(oidc == 22 && meta == 9 && (size_t)(oidc + meta) == N_WANT,
          "fixture has 22 oidc-issuers and 9 meta-issuers (counted %d and %d)", oidc, meta);

    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/configuration", srv->url);
    h_response r;
    h_get(url, &r);
    CHECK(r.status == 200, "configuration: 200 (got %ld)", r.status);
    char *ct = h_header(&r, "Content-Type");
    CHECK(ct && strncmp(ct, "application/json", 16) == 0, "configuration: JSON (got %s)",
          ct ? ct : "(none)");
    free(ct);
    json_t *j = h_json(&r);
    json_t *issuers = json_object_get(j, "issuers");
    CHECK(json_object_size(j) == 1 && json_array_size(issuers) == N_WANT,
          "configuration: {issuers:[%zu entries]}, got %zu", N_WANT, json_array_size(issuers));

    int *seen = calloc(N_WANT, sizeof *seen);
    size_t k;
    json_t *e;
    json_array_foreach(issuers, k, e) {
        const char *u = json_string_value(json_object_get(e, "issuerUrl"));
        const char *w = json_string_value(json_object_get(e, "wildcardIssuerUrl"));
        size_t i;
        for (i = 0; i < N_WANT; i++)
            if ((u && !g_want[i].wildcard && strcmp(u, g_want[i].url) == 0) ||
                (w && g_want[i].wildcard && strcmp(w, g_want[i].url) == 0))
                break;
        char *got = json_dumps(e, JSON_COMPACT);
        CHECK(i < N_WANT, "configuration: unexpected entry %s", got ? got : "");
        if (i < N_WANT && seen) {
            seen[i]++;
            json_t *want = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b}",
                                     g_want[i].wildcard ? "wildcardIssuerUrl" : "issuerUrl",
                                     g_want[i].url, "audience", "sigstore", "challengeClaim",
                                     g_want[i].challenge, "spiffeTrustDomain", "", "issuerType",
                                     g_want[i].type, "subjectDomain", "", "skipEmailVerification",
                                     0);
            char *w2 = json_dumps(want, JSON_COMPACT);
            CHECK(json_equal(e, want), "configuration entry\n   got  %s\n   want %s", got,
                  w2 ? w2 : "");
            free(w2);
            json_decref(want);
        }
        free(got);
    }
    for (size_t i = 0; seen && i < N_WANT; i++)
        CHECK(seen[i] == 1, "configuration lists %s once (seen %d times)", g_want[i].url, seen[i]);
    free(seen);
    json_decref(j);
    h_response_free(&r);
}

/* A token for `iss` signed by the dev issuer is refused as not configured. */
static void expect_unconfigured(const h_server *srv, const h_issuer *dev, const char *iss,
                                EVP_PKEY *key)
{
    json_t *req = json_pack("{s:s,s:s,s:s}", "email", "alice@example.com", "sub", "alice-sub",
                            "iss", iss);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char *tok = body ? h_issuer_token_json(dev, body) : NULL;
    free(body);
    CHECK(tok != NULL, "dev issuer minted a token with iss %s", iss);
    if (!tok)
        return;
    char *pem = h_key_spki_pem(key);
    size_t sig_len = 0;
    unsigned char *sig = h_sign_pop(key, "alice@example.com", &sig_len);
    char *b64 = sig ? h_b64(sig, sig_len, 0) : NULL;
    req = json_pack("{s:{s:s},s:{s:{s:s,s:s},s:s}}", "credentials", "oidcIdentityToken", tok,
                    "publicKeyRequest", "publicKey", "algorithm", "ECDSA", "content",
                    pem ? pem : "", "proofOfPossession", b64 ? b64 : "");
    body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", srv->url);
    h_response r;
    h_post_json(url, body, NULL, &r);
    CHECK(h_is_error(&r, 400, 3, MSG_TOKEN), "iss %s: 400 identity-token message", iss);
    CHECK(r.body && strstr(r.body, "is not configured"), "iss %s: says it is not configured: %s",
          iss, r.body ? r.body : "");
    h_response_free(&r);
    free(body);
    free(pem);
    free(sig);
    free(b64);
    free(tok);
}

int main(void)
{
    if (h_init("public-config") != 0)
        return 1;
    const char *fixtures = h_env("FULCRUM_FIXTURES_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/fulcio-public-config.yaml", fixtures ? fixtures : ".");
    char *yaml = fixtures ? h_read_file(path, NULL) : NULL;
    h_issuer dev;
    if (!yaml || h_issuer_start(&dev) != 0) {
        CHECK(0, "fixture %s readable and dev issuer starts", path);
        free(yaml);
        h_finish(1);
        CHECK_MAIN_END();
    }

    h_server srv;
    h_server_opts opts = {.ca = "ephemeralca", .config_path = path};
    if (h_server_start(&srv, &opts) != 0) {
        CHECK(0, "fulcrum serve starts with --config-path %s", path);
        free(yaml);
        h_finish(1);
        CHECK_MAIN_END();
    }
    check_configuration(&srv, yaml);
    free(yaml);

    EVP_PKEY *key = h_key_new("P-256");
    if (key) {
        expect_unconfigured(&srv, &dev, dev.url, key);
        /* look-alikes of configured issuers and near misses of the meta patterns */
        expect_unconfigured(&srv, &dev, "https://accounts.google.com.evil.example", key);
        expect_unconfigured(&srv, &dev, "https://accounts.google.com/", key);
        expect_unconfigured(&srv, &dev, "http://accounts.google.com", key);
        expect_unconfigured(&srv, &dev, "https://token.actions.githubusercontent.com/a/b", key);
        expect_unconfigured(&srv, &dev, "https://oidc.eks.us-east-1.amazonaws.com/id/AB.CD", key);
        expect_unconfigured(&srv, &dev, "https://oidc.eks.evil.example/x.amazonaws.com/id/AB", key);
    }
    EVP_PKEY_free(key);

    json_t *stats = h_issuer_stats(&dev);
    json_t *d = json_object_get(stats, "discovery_fetches"),
           *k = json_object_get(stats, "jwks_fetches"),
           *t = json_object_get(stats, "tokens_minted");
    CHECK(json_is_integer(d) && json_integer_value(d) == 0,
          "the dev issuer saw no discovery fetch (%lld)", (long long)json_integer_value(d));
    CHECK(json_is_integer(k) && json_integer_value(k) == 0,
          "the dev issuer saw no JWKS fetch (%lld)", (long long)json_integer_value(k));
    CHECK(json_is_integer(t) && json_integer_value(t) == 7, "the dev issuer minted 7 tokens (%lld)",
          (long long)json_integer_value(t));
    json_decref(stats);

    char url[128];
    snprintf(url, sizeof url, "%s/healthz", srv.url);
    h_response r;
    h_get(url, &r);
    CHECK(r.status == 200, "still healthy (%ld)", r.status);
    h_response_free(&r);

    int code = h_proc_stop(&srv.proc, 10000);
    CHECK(code == 0, "server exit status %d after SIGTERM, want 0", code);
    code = h_proc_stop(&dev.proc, 5000);
    CHECK(code == 0, "dev issuer exit status %d, want 0", code);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
