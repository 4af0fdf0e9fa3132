/*
 * tests/fuzz/fuzz_config.h: the body of the config_json and config_yaml targets (config/):
 * Fulcio's identity configuration loaded from memory (JSON first, then YAML with anchors and
 * aliases), its validation (issuer URLs, meta-issuer patterns, SPIFFE trust domains, subject
 * domains, CA PEM, ci-provider templates, claim policies), then what the server does with a
 * loaded config: the /api/v2/configuration answer, issuer lookup (every issuer finds itself;
 * every meta-issuer pattern matches a URL made from it) and the claim policy of each issuer
 * over a fixed claims object.
 */
#ifndef FULCRUM_TESTS_FUZZ_CONFIG_H
#define FULCRUM_TESTS_FUZZ_CONFIG_H

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/config_internal.h"
#include "fuzz_common.h"
#include "oidc/claim_policy.h"

static json_t *fz_claims;

FZ_FN void fz_config_init(void)
{
    fz_log_init();
    fz_claims = json_loads(
        "{\"iss\":\"https://oidc.eks.us-west-2.amazonaws.com/id/ABC\",\"sub\":"
        "\"repo:acme/app:ref:refs/heads/main\",\"aud\":\"sigstore\",\"email\":"
        "\"dev@example.com\",\"email_verified\":true,\"repository_owner\":\"acme\",\"ref\":"
        "\"refs/heads/main\",\"a\":{\"b\":\"c\",\"n\":7},\"kubernetes.io\":{\"namespace\":"
        "\"build\"},\"oidc.circleci.com/project-id\":\"p1\",\"groups\":[\"x\",\"y\"]}",
        0, NULL);
    if (!fz_claims)
        fz_die("claims");
}

/* pattern with every '*' replaced by "ab1"; malloc'd. */
FZ_FN char *fz_meta_url(const char *pattern)
{
    size_t n = strlen(pattern), stars = 0;
    for (size_t i = 0; i < n; i++)
        stars += pattern[i] == '*';
    char *u = malloc(n + 2 * stars + 1), *o = u;
    if (!u)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (pattern[i] == '*') {
            memcpy(o, "ab1", 3);
            o += 3;
        } else {
            *o++ = pattern[i];
        }
    }
    *o = '\0';
    return u;
}

FZ_FN void fz_config_check_issuer(const issuer_config *ic)
{
    FZ_ASSERT(ic->issuer_url && ic->client_id && ic->type_name && ic->ci_provider &&
                  ic->issuer_claim && ic->subject_domain && ic->spiffe_trust_domain &&
                  ic->challenge_claim && ic->description && ic->contact && ic->environment &&
                  ic->ca_cert_pem,
              "an issuer string is NULL");
    FZ_ASSERT(config_challenge_claim(ic) != NULL, "no challenge claim");
    FZ_ASSERT(ic->n_rules == 0 || ic->rules, "rules missing");
    char why[512];
    (void)claim_policy_check(ic, fz_claims, why, sizeof why);
}

FZ_FN void fz_config_run(const uint8_t *data, size_t size, int yaml)
{
    char err[1024] = "";
    if (yaml) {
        json_t *j = NULL;
        if (config_yaml_to_json((const char *)data, size, &j, err, sizeof err) == 0)
            json_decref(j);
        else
            FZ_ASSERT(err[0], "YAML refused without a reason");
    }
    err[0] = '\0';
    fulcrum_config *cfg = config_load_buffer((const char *)data, size, "fuzz", err, sizeof err);
    fz_note("config: %s", cfg ? "loaded" : err);
    if (!cfg) {
        FZ_ASSERT(err[0], "config refused without a reason");
        return;
    }
    FZ_ASSERT(cfg->ci_issuer_metadata && json_is_object(cfg->ci_issuer_metadata),
              "ci_issuer_metadata is not an object");
    json_t *api = config_to_api_json(cfg);
    FZ_ASSERT(api, "config_to_api_json");
    char *s = json_dumps(api, JSON_COMPACT);
    FZ_ASSERT(s, "json_dumps");
    free(s);
    json_decref(api);
    for (size_t i = 0; i < cfg->n_issuers; i++) {
        const issuer_config *ic = &cfg->issuers[i];
        fz_config_check_issuer(ic);
        const issuer_config *f = config_find_issuer(cfg, ic->issuer_url);
        FZ_ASSERT(f && strcmp(f->issuer_url, ic->issuer_url) == 0, "issuer %s not found",
                  ic->issuer_url);
    }
    for (size_t i = 0; i < cfg->n_meta; i++) {
        const issuer_config *ic = &cfg->meta[i];
        fz_config_check_issuer(ic);
        FZ_ASSERT(ic->is_meta, "meta issuer without is_meta");
        char *url = fz_meta_url(ic->issuer_url);
        FZ_ASSERT(url, "out of memory");
        FZ_ASSERT(config_meta_match(ic->issuer_url, url) == 1, "pattern %s does not match %s",
                  ic->issuer_url, url);
        FZ_ASSERT(config_find_issuer(cfg, url) != NULL, "%s finds no issuer", url);
        free(url);
    }
    (void)config_find_issuer(cfg, json_string_value(json_object_get(fz_claims, "iss")));
    config_free(cfg);
}

#endif
