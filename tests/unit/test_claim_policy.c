/* Claim policies (ClaimPolicy / claim-policy) evaluated against token claims. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "oidc/claim_policy.h"
#include "unit/check.h"

#define GH "https://token.actions.githubusercontent.com"

/* A config with one issuer (GH) whose claim-policy is `rules` (YAML flow list). */
static fulcrum_config *load_policy(const char *rules)
{
    char text[4096], err[1024] = "";
    snprintf(text, sizeof text,
             "oidc-issuers:\n"
             "  " GH ":\n"
             "    issuer-url: " GH "\n"
             "    client-id: sigstore\n"
             "    type: github-workflow\n"
             "    claim-policy: %s\n",
             rules);
    fulcrum_config *cfg = config_load_buffer(text, strlen(text), "config.yaml", err, sizeof err);
    CHECK(cfg != NULL, "policy %s loads: %s", rules, err);
    return cfg;
}

/* Runs the policy of `cfg`'s first issuer on claims given as JSON text. Returns the result and
 * leaves the message in why ("" when it passed). */
static int run(const fulcrum_config *cfg, const char *claims_json, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *claims = json_loads(claims_json, JSON_ALLOW_NUL, &jerr);
    CHECK(claims != NULL, "claims parse: %s", jerr.text);
    why[0] = '\0';
    int rc = cfg && claims ? claim_policy_check(&cfg->issuers[0], claims, why, whylen) : -2;
    json_decref(claims);
    return rc;
}

/* One policy, a claims document, the expected message ("" = passes). */
struct eval_case {
    const char *rules, *claims, *want;
};

static const struct eval_case cases[] = {
    /* In */
    {"[{claim: repository_owner, in: [acme, acme-labs]}]", "{\"repository_owner\":\"acme-labs\"}",
     ""},
    {"[{claim: repository_owner, in: [acme, acme-labs]}]", "{\"repository_owner\":\"evil\"}",
     "claim \"repository_owner\" = \"evil\" is not one of the allowed values (rule 1 of " GH ")"},
    {"[{claim: repository_owner, in: [acme]}]", "{\"repository_owner\":\"Acme\"}",
     "claim \"repository_owner\" = \"Acme\" is not one of the allowed values (rule 1 of " GH ")"},
    {"[{claim: repository_owner, in: [acme]}]", "{\"repository_owner\":\"acme \"}",
     "claim \"repository_owner\" = \"acme \" is not one of the allowed values (rule 1 of " GH ")"},
    /* Equals */
    {"[{claim: event_name, equals: push}]", "{\"event_name\":\"push\"}", ""},
    {"[{claim: event_name, equals: push}]", "{\"event_name\":\"pull_request_target\"}",
     "claim \"event_name\" = \"pull_request_target\" is not the allowed value (rule 1 of " GH ")"},
    {"[{claim: environment, equals: ''}]", "{\"environment\":\"\"}", ""},
    /* Prefix */
    {"[{claim: sub, prefix: 'repo:acme/'}]", "{\"sub\":\"repo:acme/app:ref:refs/heads/main\"}", ""},
    {"[{claim: sub, prefix: 'repo:acme/'}]", "{\"sub\":\"repo:acme/\"}", ""},
    {"[{claim: sub, prefix: 'repo:acme/'}]", "{\"sub\":\"repo:acme-evil/x\"}",
     "claim \"sub\" = \"repo:acme-evil/x\" does not start with the required prefix (rule 1 of " GH
     ")"},
    {"[{claim: sub, prefix: 'repo:acme/'}]", "{\"sub\":\"repo:\"}",
     "claim \"sub\" = \"repo:\" does not start with the required prefix (rule 1 of " GH ")"},
    /* Suffix */
    {"[{claim: email, suffix: '@acme.com'}]", "{\"email\":\"bob@acme.com\"}", ""},
    {"[{claim: email, suffix: '@acme.com'}]", "{\"email\":\"bob@evilacme.com\"}",
     "claim \"email\" = \"bob@evilacme.com\" does not end with the required suffix (rule 1 of " GH
     ")"},
    {"[{claim: email, suffix: '@acme.com'}]", "{\"email\":\"bob@acme.com.evil.org\"}",
     "claim \"email\" = \"bob@acme.com.evil.org\" does not end with the required suffix (rule 1 "
     "of " GH ")"},
    {"[{claim: email, suffix: '@acme.com'}]", "{\"email\":\"acme.com\"}",
     "claim \"email\" = \"acme.com\" does not end with the required suffix (rule 1 of " GH ")"},
    /* Match */
    {"[{claim: sub, match: '^repo:acme/[^:]+:ref:refs/heads/main$'}]",
     "{\"sub\":\"repo:acme/app:ref:refs/heads/main\"}", ""},
    {"[{claim: sub, match: '^repo:acme/[^:]+:ref:refs/heads/main$'}]",
     "{\"sub\":\"repo:acme/app:ref:refs/heads/main-evil\"}",
     "claim \"sub\" = \"repo:acme/app:ref:refs/heads/main-evil\" does not match the required "
     "pattern (rule 1 of " GH ")"},
    {"[{claim: sub, match: '^repo:acme/[^:]+:ref:refs/heads/main$'}]",
     "{\"sub\":\"x repo:acme/app:ref:refs/heads/main\"}",
     "claim \"sub\" = \"x repo:acme/app:ref:refs/heads/main\" does not match the required pattern "
     "(rule 1 of " GH ")"},
    {"[{claim: ref, match: '^refs/heads/main$'}]", "{\"ref\":\"refs/heads/main\\n\"}",
     "claim \"ref\" = \"refs/heads/main\\x0a\" does not match the required pattern (rule 1 of " GH
     ")"},
    {"[{claim: owner, match: '^acme$|^acme-labs$'}]", "{\"owner\":\"acme-labs\"}", ""},
    {"[{claim: owner, match: '^acme$|^acme-labs$'}]", "{\"owner\":\"acme-labsx\"}",
     "claim \"owner\" = \"acme-labsx\" does not match the required pattern (rule 1 of " GH ")"},
    {"[{claim: owner, match: '^(acme|labs)$'}]", "{\"owner\":\"labs\"}", ""},
    {"[{claim: owner, match: '^(acme|labs)$'}]", "{\"owner\":\"acmelabs\"}",
     "claim \"owner\" = \"acmelabs\" does not match the required pattern (rule 1 of " GH ")"},
    /* missing, and values that are not compared */
    {"[{claim: repository_owner, in: [acme]}]", "{\"sub\":\"acme\"}",
     "claim \"repository_owner\" is missing (rule 1 of " GH ")"},
    {"[{claim: groups, equals: admins}]", "{\"groups\":[\"admins\"]}",
     "claim \"groups\" is an array, not a string, integer or boolean (rule 1 of " GH ")"},
    {"[{claim: org, equals: acme}]", "{\"org\":{\"name\":\"acme\"}}",
     "claim \"org\" is an object, not a string, integer or boolean (rule 1 of " GH ")"},
    {"[{claim: org, equals: acme}]", "{\"org\":null}",
     "claim \"org\" is null, not a string, integer or boolean (rule 1 of " GH ")"},
    {"[{claim: run_attempt, equals: '1'}]", "{\"run_attempt\":1.0}",
     "claim \"run_attempt\" is a real number, not a string, integer or boolean (rule 1 of " GH
     ")"},
    {"[{claim: sub, equals: acme}]", "{\"sub\":\"acme\\u0000evil\"}",
     "claim \"sub\" contains a NUL character (rule 1 of " GH ")"},
    {"[{claim: sub, match: '^acme$'}]", "{\"sub\":\"acme\\u0000evil\"}",
     "claim \"sub\" contains a NUL character (rule 1 of " GH ")"},
    /* integers and booleans: their JSON text */
    {"[{claim: run_attempt, in: ['1', '2']}]", "{\"run_attempt\":2}", ""},
    {"[{claim: run_attempt, in: ['1', '2']}]", "{\"run_attempt\":3}",
     "claim \"run_attempt\" = 3 is not one of the allowed values (rule 1 of " GH ")"},
    {"[{claim: delta, equals: '-7'}]", "{\"delta\":-7}", ""},
    {"[{claim: repository_id, prefix: '12'}]", "{\"repository_id\":123456}", ""},
    {"[{claim: email_verified, equals: 'true'}]", "{\"email_verified\":true}", ""},
    {"[{claim: email_verified, equals: 'true'}]", "{\"email_verified\":\"true\"}", ""},
    {"[{claim: email_verified, equals: 'true'}]", "{\"email_verified\":false}",
     "claim \"email_verified\" = false is not the allowed value (rule 1 of " GH ")"},
    {"[{claim: email_verified, equals: 'True'}]", "{\"email_verified\":true}",
     "claim \"email_verified\" = true is not the allowed value (rule 1 of " GH ")"},
    /* nested claims */
    {"[{claim: \"$['kubernetes.io'].namespace\", in: [release]}]",
     "{\"kubernetes.io\":{\"namespace\":\"release\"}}", ""},
    {"[{claim: \"$['kubernetes.io'].namespace\", in: [release]}]",
     "{\"kubernetes.io\":{\"namespace\":\"default\"}}",
     "claim \"$['kubernetes.io'].namespace\" = \"default\" is not one of the allowed values (rule "
     "1 of " GH ")"},
    {"[{claim: \"$['kubernetes.io'].namespace\", in: [release]}]",
     "{\"kubernetes.io.namespace\":\"release\"}",
     "claim \"$['kubernetes.io'].namespace\" is missing (rule 1 of " GH ")"},
    {"[{claim: \"$['kubernetes.io'].namespace\", in: [release]}]", "{\"kubernetes.io\":\"x\"}",
     "claim \"$['kubernetes.io'].namespace\" is missing (rule 1 of " GH ")"},
    {"[{claim: \"$[\\\"kubernetes.io\\\"]['serviceaccount'].name\", equals: signer}]",
     "{\"kubernetes.io\":{\"serviceaccount\":{\"name\":\"signer\",\"uid\":\"u\"}}}", ""},
    {"[{claim: $.federated_claims.connector_id, equals: github}]",
     "{\"federated_claims\":{\"connector_id\":\"github\"}}", ""},
    {"[{claim: $.federated_claims.connector_id, equals: github}]",
     "{\"federated_claims\":{\"connector_id\":\"google\"}}",
     "claim \"$.federated_claims.connector_id\" = \"google\" is not the allowed value (rule 1 of "
     GH ")"},
    {"[{claim: $.sub, equals: x}]", "{\"sub\":\"x\"}", ""},
    /* a plain name is one top-level claim, dots and slashes included */
    {"[{claim: oidc.circleci.com/project-id, equals: p1}]",
     "{\"oidc.circleci.com/project-id\":\"p1\"}", ""},
    {"[{claim: kubernetes.io.namespace, equals: release}]",
     "{\"kubernetes.io\":{\"namespace\":\"release\"}}",
     "claim \"kubernetes.io.namespace\" is missing (rule 1 of " GH ")"},
    /* every rule must hold; the message names the first that fails */
    {"[{claim: repository_owner, in: [acme]}, {claim: ref, equals: refs/heads/main},"
     " {claim: sub, prefix: 'repo:acme/'}]",
     "{\"repository_owner\":\"acme\",\"ref\":\"refs/heads/main\",\"sub\":\"repo:acme/x\"}", ""},
    {"[{claim: repository_owner, in: [acme]}, {claim: ref, equals: refs/heads/main},"
     " {claim: sub, prefix: 'repo:acme/'}]",
     "{\"repository_owner\":\"acme\",\"ref\":\"refs/heads/dev\",\"sub\":\"repo:acme/x\"}",
     "claim \"ref\" = \"refs/heads/dev\" is not the allowed value (rule 2 of " GH ")"},
    {"[{claim: repository_owner, in: [acme]}, {claim: ref, equals: refs/heads/main},"
     " {claim: sub, prefix: 'repo:acme/'}]",
     "{\"repository_owner\":\"acme\",\"ref\":\"refs/heads/main\",\"sub\":\"repo:evil/x\"}",
     "claim \"sub\" = \"repo:evil/x\" does not start with the required prefix (rule 3 of " GH ")"},
    {"[{claim: repository_owner, in: [acme]}, {claim: ref, equals: refs/heads/main}]",
     "{\"repository_owner\":\"evil\"}",
     "claim \"repository_owner\" = \"evil\" is not one of the allowed values (rule 1 of " GH ")"},
    /* two rules on one claim */
    {"[{claim: email, prefix: 'ci-'}, {claim: email, suffix: '@acme.com'}]",
     "{\"email\":\"ci-bot@acme.com\"}", ""},
    {"[{claim: email, prefix: 'ci-'}, {claim: email, suffix: '@acme.com'}]",
     "{\"email\":\"ci-bot@evil.com\"}",
     "claim \"email\" = \"ci-bot@evil.com\" does not end with the required suffix (rule 2 of " GH
     ")"},
    /* the token's value is shown escaped and cut */
    {"[{claim: sub, equals: x}]", "{\"sub\":\"a\\\"b\\\\c\\t\\u00e9\"}",
     "claim \"sub\" = \"a\\\"b\\\\c\\x09\\xc3\\xa9\" is not the allowed value (rule 1 of " GH ")"},
    {"[{claim: sub, equals: x}]",
     "{\"sub\":\"0123456789012345678901234567890123456789012345678901234567890123456789\"}",
     "claim \"sub\" = \"0123456789012345678901234567890123456789012345678901234567890123\"... "
     "is not the allowed value (rule 1 of " GH ")"},
};

static void test_cases(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fulcrum_config *cfg = load_policy(cases[i].rules);
        char why[1024];
        int rc = run(cfg, cases[i].claims, why, sizeof why);
        if (!*cases[i].want) {
            CHECK(rc == 0, "case %zu passes: %s", i, why);
        } else {
            CHECK(rc == -1, "case %zu refused (%d)", i, rc);
            CHECK_STREQ(why, cases[i].want, "case message");
        }
        config_free(cfg);
    }
}

static void test_no_policy_and_edges(void)
{
    char err[1024] = "", why[512];
    const char *text =
        "{\"OIDCIssuers\":{\"" GH "\":{\"IssuerURL\":\"" GH "\",\"ClientID\":\"sigstore\","
        "\"Type\":\"github-workflow\"}},"
        "\"MetaIssuers\":{\"https://*.example.com/*\":{\"ClientID\":\"sigstore\","
        "\"Type\":\"kubernetes\",\"ClaimPolicy\":[{\"Claim\":\"sub\","
        "\"Prefix\":\"system:serviceaccount:release:\"}]}}}";
    fulcrum_config *cfg = config_load_buffer(text, strlen(text), "config.json", err, sizeof err);
    CHECK(cfg != NULL, "config loads: %s", err);
    if (!cfg)
        return;
    CHECK(cfg->issuers[0].n_rules == 0 && cfg->issuers[0].rules == NULL, "no policy: no rules");
    json_t *claims = json_pack("{s:s}", "sub", "anything");
    CHECK(claim_policy_check(&cfg->issuers[0], claims, why, sizeof why) == 0,
          "no rules: everything passes");
    CHECK(claim_policy_check(&cfg->issuers[0], NULL, why, sizeof why) == 0,
          "no rules: even without claims");
    CHECK(claim_policy_check(NULL, claims, why, sizeof why) == 0, "no issuer config: no rules");

    const issuer_config *meta = config_find_issuer(cfg, "https://a.example.com/b");
    CHECK(meta && meta->is_meta && meta->n_rules == 1, "meta issuer has its rule");
    if (meta) {
        CHECK(claim_policy_check(meta, claims, why, sizeof why) == -1, "meta rule refuses");
        CHECK_STREQ(why,
                    "claim \"sub\" = \"anything\" does not start with the required prefix (rule 1 "
                    "of https://*.example.com/*)",
                    "meta message names the pattern");
        json_t *ok = json_pack("{s:s}", "sub", "system:serviceaccount:release:signer");
        CHECK(claim_policy_check(meta, ok, why, sizeof why) == 0, "meta rule passes");
        json_decref(ok);
        json_t *arr = json_pack("[s]", "sub");
        CHECK(claim_policy_check(meta, arr, why, sizeof why) == -1, "claims not an object");
        CHECK_STREQ(why, "the token's claims are not a JSON object", "not-an-object message");
        CHECK(claim_policy_check(meta, NULL, why, sizeof why) == -1, "NULL claims refused");
        json_decref(arr);
        /* a short why buffer is truncated safely */
        char small[16];
        CHECK(claim_policy_check(meta, claims, small, sizeof small) == -1 &&
                  strcmp(small, "claim \"sub\" = \"") == 0,
              "short buffer: %s", small);
    }
    json_decref(claims);
    config_free(cfg);
}

/* regexec on the shared compiled pattern from several threads at once. */
struct worker {
    const issuer_config *ic;
    int errors;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    json_t *good = json_pack("{s:s,s:s}", "repository_owner", "acme", "sub",
                             "repo:acme/app:ref:refs/heads/main");
    json_t *bad = json_pack("{s:s,s:s}", "repository_owner", "acme", "sub",
                            "repo:acme/app:ref:refs/heads/dev");
    char why[256];
    for (int i = 0; i < 20000; i++) {
        if (claim_policy_check(w->ic, good, why, sizeof why) != 0)
            w->errors++;
        if (claim_policy_check(w->ic, bad, why, sizeof why) != -1 ||
            strstr(why, "(rule 2 of ") == NULL)
            w->errors++;
    }
    json_decref(good);
    json_decref(bad);
    return NULL;
}

static void test_threads(void)
{
    fulcrum_config *cfg = load_policy(
        "[{claim: repository_owner, in: [acme]}, {claim: sub, match: '^repo:acme/[^:]+:ref:refs/"
        "heads/main$'}]");
    if (!cfg)
        return;
    struct worker w[4];
    pthread_t t[4];
    int started = 0;
    for (int i = 0; i < 4; i++) {
        w[i].ic = &cfg->issuers[0];
        w[i].errors = 0;
        if (pthread_create(&t[i], NULL, work, &w[i]) == 0)
            started++;
    }
    CHECK(started == 4, "4 threads started");
    int errors = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
        errors += w[i].errors;
    }
    CHECK(errors == 0, "concurrent checks all right (%d wrong)", errors);
    config_free(cfg);
}

int main(void)
{
    test_cases();
    test_no_policy_and_edges();
    test_threads();
    CHECK_MAIN_END();
}
