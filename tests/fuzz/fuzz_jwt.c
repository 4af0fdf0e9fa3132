/*
 * fuzz_jwt: an OIDC identity token from shape check to principal, as ca/api_signing.c runs it:
 * oidc_token_parse (oidc/token.h), the key by kid from a fixed JWKS, the signature, the issuer
 * lookup (exact, then meta-issuer patterns), the claim checks at a fixed time, the claim policy
 * (oidc/claim_policy.h) and the principal of the issuer's type (oidc/principal.h: email, spiffe,
 * uri, username, kubernetes, the legacy CI types, ci-provider templates over the claims).
 *
 * Configuration: Fulcio's public-good config (tests/fixtures) plus FUZZ_CONFIG below for the
 * types it does not use. The claim steps run whether or not the signature verified, so mutated
 * claims reach them.
 *
 * Two input forms:
 *  - a raw token (anything not starting with '{');
 *  - a claims object ('{' ...): the target signs it (ES256, kid "p256") so the token is valid
 *    and the signature path succeeds for mutated claims too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "fuzz_common.h"
#include "fuzz_jws.h"
#include "oidc/claim_policy.h"
#include "oidc/jwk.h"
#include "oidc/principal.h"
#include "oidc/token.h"

static const char FUZZ_CONFIG[] =
    "{\"OIDCIssuers\":{"
    "\"https://email.fuzz.example\":{\"IssuerURL\":\"https://email.fuzz.example\","
    "\"ClientID\":\"sigstore\",\"Type\":\"email\","
    "\"IssuerClaim\":\"$.federated_claims.connector_id\","
    "\"ClaimPolicy\":[{\"Claim\":\"email\",\"Suffix\":\"@example.com\"},"
    "{\"Claim\":\"$.federated_claims.connector_id\",\"In\":[\"https://github.com/login/oauth\","
    "\"https://accounts.google.com\"]},{\"Claim\":\"$['groups.x'].team\",\"Match\":"
    "\"^(core|release)$\"}]},"
    "\"https://spiffe.fuzz.example\":{\"IssuerURL\":\"https://spiffe.fuzz.example\","
    "\"ClientID\":\"sigstore\",\"Type\":\"spiffe\",\"SPIFFETrustDomain\":\"example.com\"},"
    "\"https://uri.fuzz.example\":{\"IssuerURL\":\"https://uri.fuzz.example\","
    "\"ClientID\":\"sigstore\",\"Type\":\"uri\",\"SubjectDomain\":\"https://uri.fuzz.example\"},"
    "\"https://username.fuzz.example\":{\"IssuerURL\":\"https://username.fuzz.example\","
    "\"ClientID\":\"sigstore\",\"Type\":\"username\",\"SubjectDomain\":\"username.fuzz.example\"},"
    "\"https://github.fuzz.example\":{\"IssuerURL\":\"https://github.fuzz.example\","
    "\"ClientID\":\"sigstore\",\"Type\":\"github-workflow\",\"ClaimPolicy\":["
    "{\"Claim\":\"repository_owner\",\"In\":[\"sigstore\",\"acme\"]},"
    "{\"Claim\":\"ref\",\"Match\":\"^refs/(heads/main|tags/v[0-9][^/]*)$\"}]},"
    "\"https://gitlab.fuzz.example\":{\"IssuerURL\":\"https://gitlab.fuzz.example\","
    "\"ClientID\":\"sigstore\",\"Type\":\"gitlab-pipeline\"},"
    "\"https://buildkite.fuzz.example\":{\"IssuerURL\":\"https://buildkite.fuzz.example\","
    "\"ClientID\":\"sigstore\",\"Type\":\"buildkite-job\"},"
    "\"https://codefresh.fuzz.example\":{\"IssuerURL\":\"https://codefresh.fuzz.example\","
    "\"ClientID\":\"sigstore\",\"Type\":\"codefresh-workflow\"},"
    "\"https://challenge.fuzz.example\":{\"IssuerURL\":\"https://challenge.fuzz.example\","
    "\"ClientID\":\"sigstore\",\"Type\":\"email\",\"ChallengeClaim\":\"preferred_email\","
    "\"ClaimPolicy\":[{\"Claim\":\"$.a.b\",\"Equals\":\"c\"},{\"Claim\":\"sub\",\"Prefix\":"
    "\"user-\"}]}},"
    "\"MetaIssuers\":{\"https://*.meta.fuzz.example/tenant/*\":{\"ClientID\":\"sigstore\","
    "\"Type\":\"email\"}}}";

static fulcrum_config *cfg_public, *cfg_fuzz;
static oidc_jwk_set *jwks;
static struct fz_jws_key *sign_key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_log_init();
    char err[1024];
    char path[4096];
    snprintf(path, sizeof path, "%s/fulcio-public-config.yaml", fz_fixtures_dir());
    cfg_public = config_load_file(path, err, sizeof err);
    if (!cfg_public)
        fz_die("%s", err);
    cfg_fuzz = config_load_buffer(FUZZ_CONFIG, sizeof FUZZ_CONFIG - 1, "fuzz-config", err,
                                  sizeof err);
    if (!cfg_fuzz)
        fz_die("%s", err);
    fz_jws_load();
    char *text = fz_jws_jwks_text();
    jwks = text ? jwk_set_parse(text, strlen(text), err, sizeof err) : NULL;
    free(text);
    if (!jwks || jwks->n != FZ_JWS_NKEYS)
        fz_die("the fixed JWKS does not parse: %s", err);
    sign_key = fz_jws_key_by_kid("p256");
    return 0;
}

static void run_token(const char *tok_text, size_t len, int must_verify)
{
    char why[1024] = "";
    oidc_token tok;
    if (oidc_token_parse(tok_text, len, &tok, why, sizeof why) != 0) {
        fz_note("parse: %s", why);
        FZ_ASSERT(why[0], "token refused without a reason");
        FZ_ASSERT(!tok.header && !tok.claims && !tok.signature, "failed parse left data");
        return;
    }
    FZ_ASSERT(tok.alg && tok.iss && tok.header && tok.claims, "parsed token is incomplete");

    /* The key the server would pick, then every key (alg mismatches are refused early). */
    const oidc_jwk *k = jwk_set_find(jwks, tok.kid);
    int verified = k && oidc_token_verify_signature(&tok, k, why, sizeof why) == 0;
    fz_note("signature (kid %s): %s", tok.kid ? tok.kid : "-", verified ? "valid" : why);
    if (must_verify)
        FZ_ASSERT(verified, "a token signed by the target does not verify: %s", why);
    for (size_t i = 0; i < jwks->n; i++)
        if (&jwks->keys[i] != k)
            FZ_ASSERT(oidc_token_verify_signature(&tok, &jwks->keys[i], why, sizeof why) != 0 ||
                          strcmp(jwks->keys[i].alg, tok.alg) == 0,
                      "verified with a key of another alg");

    const fulcrum_config *cfg = cfg_public;
    const issuer_config *ic = config_find_issuer(cfg, tok.iss);
    if (!ic) {
        cfg = cfg_fuzz;
        ic = config_find_issuer(cfg, tok.iss);
    }
    if (!ic)
        fz_note("issuer %s is not configured", tok.iss);
    if (ic && ic->type != ISSUER_TYPE_UNKNOWN) {
        int rc = oidc_token_check_claims(&tok, ic, FZ_NOW, why, sizeof why);
        fz_note("claims (%s, %s): %s", ic->issuer_url, ic->type_name, rc ? why : "ok");
        rc = claim_policy_check(ic, tok.claims, why, sizeof why);
        fz_note("claim policy: %s", rc ? why : "ok");
        principal p;
        why[0] = '\0';
        enum principal_error pe = principal_from_claims(cfg, ic, tok.claims, &p, why, sizeof why);
        fz_note("principal: %s", pe == PRINCIPAL_OK ? p.san_value : why);
        if (pe == PRINCIPAL_OK) {
            FZ_ASSERT(p.name && p.san_value, "principal without name or SAN");
            FZ_ASSERT(p.san_kind == SAN_EMAIL || p.san_kind == SAN_URI ||
                          p.san_kind == SAN_OTHERNAME_USERNAME,
                      "bad SAN kind %d", (int)p.san_kind);
            principal_clear(&p);
        } else {
            FZ_ASSERT(why[0], "principal refused (%d) without a reason", (int)pe);
        }
    }
    oidc_token_clear(&tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && data[0] == '{') {
        char *tok = fz_jws_sign(sign_key, data, size);
        FZ_ASSERT(tok, "cannot sign the claims");
        size_t n = strlen(tok);
        /* Whenever this token parses, its signature must verify. */
        run_token(tok, n, 1);
        free(tok);
        return 0;
    }
    run_token((const char *)data, size, 0);
    return 0;
}
