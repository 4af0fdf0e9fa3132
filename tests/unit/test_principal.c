/* Claims -> principal (challenge, SAN, Fulcio extensions) for every issuer type but ci-provider
 * (tests/unit/test_ci_template.c), on realistic claim sets; every rejection with its message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oidc/principal.h"
#include "unit/check.h"

#define ISS "https://dex.example.com"

static issuer_config email_ic(void)
{
    issuer_config ic;
    memset(&ic, 0, sizeof(ic));
    ic.issuer_url = (char *)ISS;
    ic.client_id = (char *)"sigstore";
    ic.type_name = (char *)"email";
    ic.type = ISSUER_TYPE_EMAIL;
    ic.issuer_claim = (char *)"";
    return ic;
}

/* principal_from_claims on a JSON text; the caller clears the principal. */
static enum principal_error run(const issuer_config *ic, const char *json, principal *p, char *why)
{
    json_error_t err;
    json_t *claims = json_loads(json, 0, &err);
    if (!claims) {
        fprintf(stderr, "bad test JSON: %s\n", json);
        return 99;
    }
    why[0] = '\0';
    enum principal_error rc = principal_from_claims(NULL, ic, claims, p, why, 512);
    json_decref(claims);
    return rc;
}

static void test_email_happy(void)
{
    issuer_config ic = email_ic();
    principal p;
    char why[512];
    enum principal_error rc = run(&ic,
                                  "{\"iss\":\"" ISS "\",\"sub\":\"CgVhbGljZQ\","
                                  "\"email\":\"alice@example.com\",\"email_verified\":true}",
                                  &p, why);
    CHECK(rc == PRINCIPAL_OK, "email principal: %s", why);
    CHECK_STREQ(p.name, "alice@example.com", "challenge is the email");
    CHECK(p.san_kind == SAN_EMAIL, "SAN is an rfc822Name");
    CHECK_STREQ(p.san_value, "alice@example.com", "SAN value");
    CHECK_STREQ(p.ext[1], ISS, "ext 1 = iss");
    CHECK_STREQ(p.ext[8], ISS, "ext 8 = iss");
    CHECK_STREQ(p.ext[24], "CgVhbGljZQ", "ext 24 = sub");
    int others = 0;
    for (int i = 0; i <= FULCIO_EXT_MAX; i++)
        if (i != 1 && i != 8 && i != 24 && p.ext[i])
            others++;
    CHECK(others == 0, "no other extension set");
    principal_clear(&p);
    CHECK(p.name == NULL && p.san_value == NULL && p.ext[1] == NULL && p.san_kind == 0,
          "clear zeroes");

    rc = run(&ic, "{\"iss\":\"" ISS "\",\"sub\":\"\",\"email\":\"a@b\",\"email_verified\":true}",
             &p, why);
    CHECK(rc == PRINCIPAL_OK && p.ext[24] == NULL, "empty sub: no ext 24");
    principal_clear(&p);
    rc = run(&ic, "{\"iss\":\"" ISS "\",\"email\":\"a@b\",\"email_verified\":true}", &p, why);
    CHECK(rc == PRINCIPAL_OK && p.ext[24] == NULL, "no sub: no ext 24");
    principal_clear(&p);
}

static void test_email_verified_forms(void)
{
    issuer_config ic = email_ic();
    principal p;
    char why[512], json[256];
    static const struct {
        const char *v; /* JSON value, NULL = absent */
        int ok;
        const char *why;
    } cases[] = {
        {"true", 1, ""},
        {"\"true\"", 1, ""},
        {"\"True\"", 1, ""},
        {"false", 0, "email_verified is false"},
        {"\"false\"", 0, "email_verified is false"},
        {"\"False\"", 0, "email_verified is false"},
        {NULL, 0, "email_verified claim missing"},
        {"\"TRUE\"", 0, "neither a boolean"},
        {"\"yes\"", 0, "neither a boolean"},
        {"1", 0, "neither a boolean"},
        {"null", 0, "neither a boolean"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].v)
            snprintf(json, sizeof(json),
                     "{\"iss\":\"%s\",\"email\":\"a@b.c\",\"email_verified\":%s}", ISS, cases[i].v);
        else
            snprintf(json, sizeof(json), "{\"iss\":\"%s\",\"email\":\"a@b.c\"}", ISS);
        enum principal_error rc = run(&ic, json, &p, why);
        if (cases[i].ok)
            CHECK(rc == PRINCIPAL_OK, "email_verified %s accepted: %s", cases[i].v, why);
        else
            CHECK(rc == PRINCIPAL_TOKEN_ERROR && strstr(why, cases[i].why) && p.name == NULL,
                  "email_verified %s refused: rc %d \"%s\"", cases[i].v ? cases[i].v : "(absent)",
                  rc, why);
        principal_clear(&p);
    }
    ic.skip_email_verification = 1;
    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"email\":\"a@b.c\",\"email_verified\":false}", &p, why) ==
              PRINCIPAL_OK,
          "SkipEmailVerification: false accepted: %s", why);
    principal_clear(&p);
    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"email\":\"a@b.c\"}", &p, why) == PRINCIPAL_OK,
          "SkipEmailVerification: absent accepted: %s", why);
    principal_clear(&p);
}

static void test_email_invalid(void)
{
    issuer_config ic = email_ic();
    principal p;
    char why[512], json[256];
    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"email_verified\":true}", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR &&
              strcmp(why, "email claim missing") == 0,
          "missing email: %s", why);
    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"email\":7,\"email_verified\":true}", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR &&
              strstr(why, "not a string"),
          "email not a string: %s", why);
    const char *bad[] = {"",      "alice",   "@example.com", "alice@",    "a@b@c",
                         "a b@c", "a@b\\tc", "a@b\\u007fc",  "\\u0001a@b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json), "{\"iss\":\"%s\",\"email\":\"%s\",\"email_verified\":true}",
                 ISS, bad[i]);
        CHECK(run(&ic, json, &p, why) == PRINCIPAL_TOKEN_ERROR &&
                  strcmp(why, "email claim is not a valid email address") == 0,
              "invalid email \"%s\" refused: %s", bad[i], why);
        principal_clear(&p);
    }
}

static void test_issuer_claim(void)
{
    issuer_config ic = email_ic();
    principal p;
    char why[512];
    ic.issuer_claim = (char *)"$.federated_claims.connector_id";
    const char *dex =
        "{\"iss\":\"" ISS "\",\"sub\":\"s\",\"email\":\"a@b.c\",\"email_verified\":true,"
        "\"federated_claims\":{\"connector_id\":\"https://github.com/login/oauth\","
        "\"user_id\":\"1\"}}";
    CHECK(run(&ic, dex, &p, why) == PRINCIPAL_OK, "issuer claim: %s", why);
    CHECK_STREQ(p.ext[1], "https://github.com/login/oauth", "ext 1 from issuer claim");
    CHECK_STREQ(p.ext[8], "https://github.com/login/oauth", "ext 8 from issuer claim");
    CHECK_STREQ(p.name, "a@b.c", "challenge still the email");
    principal_clear(&p);

    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"email\":\"a@b.c\",\"email_verified\":true}", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR &&
              strstr(why, "$.federated_claims.connector_id") && strstr(why, "missing"),
          "issuer claim missing: %s", why);
    CHECK(run(&ic,
              "{\"iss\":\"" ISS "\",\"email\":\"a@b.c\",\"email_verified\":true,"
              "\"federated_claims\":{\"connector_id\":5}}",
              &p, why) == PRINCIPAL_TOKEN_ERROR,
          "issuer claim not a string: %s", why);
    CHECK(run(&ic,
              "{\"iss\":\"" ISS "\",\"email\":\"a@b.c\",\"email_verified\":true,"
              "\"federated_claims\":\"x\"}",
              &p, why) == PRINCIPAL_TOKEN_ERROR,
          "issuer claim parent not an object: %s", why);
    ic.issuer_claim = (char *)"$.top";
    CHECK(run(&ic,
              "{\"iss\":\"" ISS "\",\"email\":\"a@b.c\",\"email_verified\":true,\"top\":\"T\"}", &p,
              why) == PRINCIPAL_OK &&
              strcmp(p.ext[1], "T") == 0,
          "one-level path: %s", why);
    principal_clear(&p);
    ic.issuer_claim = (char *)"$['a']";
    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"email\":\"a@b.c\",\"email_verified\":true}", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR &&
              strstr(why, "not supported"),
          "bracket path refused: %s", why);
}

static void test_utf8_and_types(void)
{
    issuer_config ic = email_ic();
    principal p;
    char why[512];
    /* jansson refuses invalid UTF-8 when parsing, so build such claims by hand. */
    json_t *c = json_pack("{s:s, s:b}", "iss", ISS, "email_verified", 1);
    json_object_set_new(c, "email", json_string_nocheck("al\xffice@example.com"));
    CHECK(principal_from_claims(NULL, &ic, c, &p, why, sizeof(why)) == PRINCIPAL_VALIDATION_ERROR &&
              strstr(why, "UTF-8"),
          "invalid UTF-8 email: %s", why);
    json_object_set_new(c, "email",
                        json_string("al\xc3\xaf"
                                    "ce@example.com"));
    CHECK(principal_from_claims(NULL, &ic, c, &p, why, sizeof(why)) == PRINCIPAL_OK &&
              strcmp(p.name, "al\xc3\xaf"
                             "ce@example.com") == 0,
          "UTF-8 email accepted: %s", why);
    principal_clear(&p);
    json_object_set_new(c, "email", json_string_nocheck("a\xc0\xafz@example.com"));
    CHECK(principal_from_claims(NULL, &ic, c, &p, why, sizeof(why)) == PRINCIPAL_VALIDATION_ERROR,
          "overlong UTF-8 refused: %s", why);
    json_object_set_new(c, "email", json_string_nocheck("a\xed\xa0\x80z@example.com"));
    CHECK(principal_from_claims(NULL, &ic, c, &p, why, sizeof(why)) == PRINCIPAL_VALIDATION_ERROR,
          "UTF-8 surrogate refused: %s", why);
    json_object_set_new(c, "email", json_string("a@b.c"));
    json_object_set_new(c, "sub", json_string_nocheck("s\xfe"));
    CHECK(principal_from_claims(NULL, &ic, c, &p, why, sizeof(why)) == PRINCIPAL_VALIDATION_ERROR &&
              p.name == NULL && p.ext[1] == NULL,
          "invalid UTF-8 sub refused, nothing kept: %s", why);
    json_object_set_new(c, "sub", json_string("s"));
    json_object_set_new(c, "iss", json_string_nocheck("https://x\x80"));
    CHECK(principal_from_claims(NULL, &ic, c, &p, why, sizeof(why)) == PRINCIPAL_VALIDATION_ERROR,
          "invalid UTF-8 iss refused: %s", why);
    json_decref(c);

    ic.type = ISSUER_TYPE_UNKNOWN;
    ic.type_name = (char *)"circleci-job";
    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"sub\":\"repo:x\"}", &p, why) == PRINCIPAL_TOKEN_ERROR &&
              strcmp(why, "issuer type circleci-job is not supported") == 0,
          "unknown type refused: %s", why);
    ic.type = ISSUER_TYPE_EMAIL;
    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"sub\":5,\"email\":\"a@b.c\",\"email_verified\":true}",
              &p, why) == PRINCIPAL_TOKEN_ERROR &&
              strcmp(why,
                     "json: cannot unmarshal number into Go struct field .sub of type string") == 0,
          "sub not a string refused: %s", why);
}

/* ---- the other issuer types ---------------------------------------------------------------- */

/* An issuer entry of `type` with every string set (the config loader never leaves one NULL). */
static issuer_config type_ic(enum issuer_type type, const char *type_name, const char *url)
{
    issuer_config ic = email_ic();
    ic.issuer_url = (char *)url;
    ic.type = type;
    ic.type_name = (char *)type_name;
    ic.ci_provider = (char *)"";
    ic.subject_domain = (char *)"";
    ic.spiffe_trust_domain = (char *)"";
    return ic;
}

/* ext[n] for every n must be exactly want[n] (NULL = not written). */
static void expect_exts(const principal *p, const char *const want[FULCIO_EXT_MAX + 1],
                        const char *what)
{
    for (int n = 0; n <= FULCIO_EXT_MAX; n++) {
        if (want[n])
            CHECK(p->ext[n] && strcmp(p->ext[n], want[n]) == 0,
                  "%s: ext 1.3.6.1.4.1.57264.1.%d: got \"%s\", want \"%s\"", what, n,
                  p->ext[n] ? p->ext[n] : "(none)", want[n]);
        else
            CHECK(p->ext[n] == NULL, "%s: ext .%d must not be written, got \"%s\"", what, n,
                  p->ext[n]);
    }
}

/* Runs `json` with member `drop` removed (and, when set_key, set_key = set_json). */
static enum principal_error run_edited(const issuer_config *ic, const char *json, const char *drop,
                                       const char *set_key, const char *set_json, principal *p,
                                       char *why)
{
    json_t *claims = json_loads(json, 0, NULL);
    if (drop)
        json_object_del(claims, drop);
    if (set_key)
        json_object_set_new(claims, set_key, json_loads(set_json, JSON_DECODE_ANY, NULL));
    why[0] = '\0';
    enum principal_error rc = principal_from_claims(NULL, ic, claims, p, why, 512);
    json_decref(claims);
    return rc;
}

#define GH_ISS "https://token.actions.githubusercontent.com"
static const char GH_TOKEN[] =
    "{\"iss\":\"" GH_ISS "\",\"jti\":\"4f3c6a5e-8d2b-4c1e-9a7f-3b2d1c0e9f8a\","
    "\"sub\":\"repo:sigstore/sigstore-js:ref:refs/heads/main\",\"aud\":\"sigstore\","
    "\"ref\":\"refs/heads/main\",\"ref_protected\":\"true\",\"ref_type\":\"branch\","
    "\"sha\":\"7c3f0e1a9b8d2c4e6f1a3b5c7d9e0f2a4b6c8d0e\",\"repository\":\"sigstore/sigstore-js\","
    "\"repository_owner\":\"sigstore\",\"repository_owner_id\":\"71096353\","
    "\"repository_visibility\":\"public\",\"repository_id\":\"495574555\","
    "\"run_id\":\"9876543210\",\"run_number\":\"1234\",\"run_attempt\":\"2\","
    "\"runner_environment\":\"github-hosted\",\"actor_id\":\"398027\",\"actor\":\"bdehamer\","
    "\"workflow\":\"Release\",\"head_ref\":\"\",\"base_ref\":\"\",\"event_name\":\"push\","
    "\"environment\":\"production\","
    "\"workflow_ref\":\"sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main\","
    "\"workflow_sha\":\"7c3f0e1a9b8d2c4e6f1a3b5c7d9e0f2a4b6c8d0e\",\"job_workflow_ref\":"
    "\"slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@"
    "refs/tags/v2.0.0\",\"job_workflow_sha\":\"5a775b367a56d5bd118a224a811bba288150a563\","
    "\"iat\":1717171717,\"nbf\":1717171417,\"exp\":1717172017}";

static void test_github_workflow(void)
{
    issuer_config ic = type_ic(ISSUER_TYPE_GITHUB_WORKFLOW, "github-workflow", GH_ISS);
    principal p;
    char why[512];
    CHECK(run(&ic, GH_TOKEN, &p, why) == PRINCIPAL_OK, "github-workflow: %s", why);
    const char *san = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
                      "generator_generic_slsa3.yml@refs/tags/v2.0.0";
    CHECK_STREQ(p.name, "repo:sigstore/sigstore-js:ref:refs/heads/main", "challenge = sub");
    CHECK(p.san_kind == SAN_URI, "URI SAN");
    CHECK_STREQ(p.san_value, san, "SAN = https://github.com/ + job_workflow_ref");
    const char *want[FULCIO_EXT_MAX + 1] = {
        [1] = GH_ISS,
        [2] = "push",
        [3] = "7c3f0e1a9b8d2c4e6f1a3b5c7d9e0f2a4b6c8d0e",
        [4] = "Release",
        [5] = "sigstore/sigstore-js",
        [6] = "refs/heads/main",
        [8] = GH_ISS,
        [9] = san,
        [10] = "5a775b367a56d5bd118a224a811bba288150a563",
        [11] = "github-hosted",
        [12] = "https://github.com/sigstore/sigstore-js",
        [13] = "7c3f0e1a9b8d2c4e6f1a3b5c7d9e0f2a4b6c8d0e",
        [14] = "refs/heads/main",
        [15] = "495574555",
        [16] = "https://github.com/sigstore",
        [17] = "71096353",
        [18] =
            "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main",
        [19] = "7c3f0e1a9b8d2c4e6f1a3b5c7d9e0f2a4b6c8d0e",
        [20] = "push",
        [21] = "https://github.com/sigstore/sigstore-js/actions/runs/9876543210/attempts/2",
        [22] = "public", /* no .23: the legacy principal has no deployment environment */
        [24] = "repo:sigstore/sigstore-js:ref:refs/heads/main",
    };
    expect_exts(&p, want, "github-workflow");
    principal_clear(&p);

    static const char *const required[] = {"job_workflow_ref",
                                           "sha",
                                           "event_name",
                                           "repository",
                                           "workflow",
                                           "ref",
                                           "job_workflow_sha",
                                           "runner_environment",
                                           "repository_id",
                                           "repository_owner",
                                           "repository_owner_id",
                                           "repository_visibility",
                                           "workflow_ref",
                                           "workflow_sha",
                                           "run_id",
                                           "run_attempt"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        char want_msg[128];
        snprintf(want_msg, sizeof want_msg, "missing %s claim in ID token", required[i]);
        CHECK(run_edited(&ic, GH_TOKEN, required[i], NULL, NULL, &p, why) ==
                      PRINCIPAL_TOKEN_ERROR &&
                  p.name == NULL,
              "without %s: refused", required[i]);
        CHECK_STREQ(why, want_msg, required[i]);
        CHECK(run_edited(&ic, GH_TOKEN, NULL, required[i], "\"\"", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR,
              "empty %s refused", required[i]);
        CHECK(run_edited(&ic, GH_TOKEN, NULL, required[i], "null", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR,
              "null %s refused", required[i]);
    }
    CHECK(run_edited(&ic, GH_TOKEN, NULL, "run_id", "9876543210", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR &&
              strcmp(why, "json: cannot unmarshal number into Go struct field .run_id of type "
                          "string") == 0,
          "numeric run_id refused as Go does: %s", why);
    /* Go's JoinPath cleans the path */
    CHECK(run_edited(&ic, GH_TOKEN, NULL, "job_workflow_ref",
                     "\"octo/repo/.github/workflows/../workflows/b.yml@refs/heads/a b\"", &p,
                     why) == PRINCIPAL_OK,
          "odd job_workflow_ref: %s", why);
    CHECK_STREQ(p.san_value,
                "https://github.com/octo/repo/.github/workflows/b.yml@refs/heads/a%20b",
                "SAN cleaned and escaped as Go's JoinPath");
    principal_clear(&p);
    /* a bad %-escape: Go would silently write https://github.com/; refused here */
    CHECK(run_edited(&ic, GH_TOKEN, NULL, "job_workflow_ref", "\"o/r/w.yml@refs/heads/%zz\"", &p,
                     why) == PRINCIPAL_VALIDATION_ERROR &&
              strcmp(why, "invalid URL escape \"%zz\"") == 0,
          "bad escape refused: %s", why);
    /* invalid UTF-8 in a claim */
    json_t *c = json_loads(GH_TOKEN, 0, NULL);
    json_object_set_new(c, "workflow",
                        json_string_nocheck("Rel\xff"
                                            "ease"));
    CHECK(principal_from_claims(NULL, &ic, c, &p, why, sizeof why) == PRINCIPAL_VALIDATION_ERROR &&
              strcmp(why, "workflow claim is not valid UTF-8") == 0 && p.name == NULL,
          "invalid UTF-8 claim refused: %s", why);
    json_decref(c);
}

static const char GL_TOKEN[] =
    "{\"namespace_id\":\"72\",\"namespace_path\":\"my-group\",\"project_id\":\"20\","
    "\"project_path\":\"my-group/my-project\",\"user_id\":\"1\",\"user_login\":\"sample-user\","
    "\"user_email\":\"sample-user@example.com\",\"pipeline_id\":\"574\",\"pipeline_source\":"
    "\"push\",\"job_id\":\"302\",\"ref\":\"feature-branch-1\",\"ref_type\":\"branch\","
    "\"ref_path\":\"refs/heads/feature-branch-1\",\"ref_protected\":\"false\","
    "\"environment\":\"test-environment2\",\"environment_protected\":\"false\","
    "\"deployment_tier\":\"testing\",\"runner_id\":1,\"runner_environment\":\"self-hosted\","
    "\"sha\":\"714a629c0b401fdce83e847fc9589983fc6f46bc\",\"project_visibility\":\"public\","
    "\"ci_config_ref_uri\":\"gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main\","
    "\"ci_config_sha\":\"714a629c0b401fdce83e847fc9589983fc6f46bc\","
    "\"jti\":\"235b3a54-b797-45c7-ae9a-f72d7bc6ef5b\",\"iss\":\"https://gitlab.com\","
    "\"iat\":1681395193,\"nbf\":1681395188,\"exp\":1681398793,"
    "\"sub\":\"project_path:my-group/my-project:ref_type:branch:ref:feature-branch-1\","
    "\"aud\":\"sigstore\"}";

static void test_gitlab_pipeline(void)
{
    issuer_config ic =
        type_ic(ISSUER_TYPE_GITLAB_PIPELINE, "gitlab-pipeline", "https://gitlab.com");
    principal p;
    char why[512];
    CHECK(run(&ic, GL_TOKEN, &p, why) == PRINCIPAL_OK, "gitlab-pipeline: %s", why);
    const char *cfg_uri = "https://gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main";
    CHECK_STREQ(p.name, "project_path:my-group/my-project:ref_type:branch:ref:feature-branch-1",
                "challenge = sub");
    CHECK_STREQ(p.san_value, cfg_uri, "SAN = ci_config_ref_uri with https");
    const char *want[FULCIO_EXT_MAX + 1] = {
        [1] = "https://gitlab.com",
        [8] = "https://gitlab.com",
        [9] = cfg_uri,
        [10] = "714a629c0b401fdce83e847fc9589983fc6f46bc",
        [11] = "self-hosted",
        [12] = "https://gitlab.com/my-group/my-project",
        [13] = "714a629c0b401fdce83e847fc9589983fc6f46bc",
        [14] = "refs/heads/feature-branch-1",
        [15] = "20",
        [16] = "https://gitlab.com/my-group",
        [17] = "72",
        [18] = cfg_uri,
        [19] = "714a629c0b401fdce83e847fc9589983fc6f46bc",
        [20] = "push",
        [21] = "https://gitlab.com/my-group/my-project/-/jobs/302",
        [22] = "public",
        [24] = "project_path:my-group/my-project:ref_type:branch:ref:feature-branch-1",
    };
    expect_exts(&p, want, "gitlab-pipeline");
    principal_clear(&p);

    CHECK(run_edited(&ic, GL_TOKEN, NULL, "ref_type", "\"tag\"", &p, why) == PRINCIPAL_OK &&
              strcmp(p.ext[14], "refs/tags/feature-branch-1") == 0,
          "tag ref: %s", why);
    principal_clear(&p);
    /* optional claims: absent = extension omitted */
    CHECK(run_edited(&ic, GL_TOKEN, "ci_config_sha", NULL, NULL, &p, why) == PRINCIPAL_OK &&
              p.ext[10] == NULL && p.ext[19] == NULL,
          "no ci_config_sha: .10/.19 omitted: %s", why);
    principal_clear(&p);
    CHECK(run_edited(&ic, GL_TOKEN, "project_visibility", NULL, NULL, &p, why) == PRINCIPAL_OK &&
              p.ext[22] == NULL,
          "no project_visibility: .22 omitted: %s", why);
    principal_clear(&p);

    static const char *const required[] = {
        "project_path", "pipeline_source",   "pipeline_id",    "ci_config_ref_uri", "job_id",
        "ref",          "ref_type",          "namespace_path", "namespace_id",      "project_id",
        "sha",          "runner_environment"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        char want_msg[128];
        snprintf(want_msg, sizeof want_msg, "missing %s claim in ID token", required[i]);
        CHECK(run_edited(&ic, GL_TOKEN, required[i], NULL, NULL, &p, why) == PRINCIPAL_TOKEN_ERROR,
              "without %s refused", required[i]);
        CHECK_STREQ(why, want_msg, required[i]);
    }
    static const struct {
        const char *json, *msg;
    } runner[] = {
        {NULL, "missing runner_id claim in ID token"},
        {"0", "missing runner_id claim in ID token"},
        {"\"1\"", "json: cannot unmarshal string into Go struct field .runner_id of type int64"},
        {"1.5", "json: cannot unmarshal number 1.5 into Go struct field .runner_id of type int64"},
    };
    for (size_t i = 0; i < sizeof runner / sizeof runner[0]; i++) {
        CHECK(run_edited(&ic, GL_TOKEN, runner[i].json ? NULL : "runner_id",
                         runner[i].json ? "runner_id" : NULL, runner[i].json, &p,
                         why) == PRINCIPAL_TOKEN_ERROR,
              "runner_id %s refused", runner[i].json ? runner[i].json : "(absent)");
        CHECK_STREQ(why, runner[i].msg, "runner_id message");
    }
    CHECK(run_edited(&ic, GL_TOKEN, NULL, "ref_type", "\"merge_request\"", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR &&
              strcmp(why, "unexpected ref_type: merge_request") == 0,
          "other ref_type refused: %s", why);
    CHECK(run_edited(&ic, GL_TOKEN, NULL, "ci_config_ref_uri", "\"gitlab.com/x/%zz\"", &p, why) ==
                  PRINCIPAL_VALIDATION_ERROR &&
              strcmp(why, "parse \"gitlab.com/x/%zz\": invalid URL escape \"%zz\"") == 0,
          "unparsable ci_config_ref_uri refused with Go's text: %s", why);
}

static void test_buildkite_job(void)
{
    issuer_config ic =
        type_ic(ISSUER_TYPE_BUILDKITE_JOB, "buildkite-job", "https://agent.buildkite.com");
    static const char token[] =
        "{\"aud\":\"sigstore\",\"iss\":\"https://agent.buildkite.com\",\"sub\":"
        "\"organization:acme-inc:pipeline:super-duper-app:ref:refs/heads/main:commit:"
        "9f3182061f1e2cca4702c368cbc039b7dc9d4485:step:build\",\"iat\":1669014898,\"nbf\":"
        "1669014898,\"exp\":1669015198,\"organization_slug\":\"acme-inc\",\"pipeline_slug\":"
        "\"super-duper-app\",\"build_number\":1,\"build_branch\":\"main\",\"build_tag\":null,"
        "\"build_commit\":\"9f3182061f1e2cca4702c368cbc039b7dc9d4485\",\"step_key\":\"build\","
        "\"job_id\":\"0184990a-477b-4fa8-9968-496074483cee\",\"agent_id\":"
        "\"0184990a-4782-42b5-afc1-16715b10b8ff\"}";
    principal p;
    char why[512];
    CHECK(run(&ic, token, &p, why) == PRINCIPAL_OK, "buildkite-job: %s", why);
    const char *sub = "organization:acme-inc:pipeline:super-duper-app:ref:refs/heads/main:commit:"
                      "9f3182061f1e2cca4702c368cbc039b7dc9d4485:step:build";
    CHECK_STREQ(p.name, sub, "challenge = sub");
    CHECK(p.san_kind == SAN_URI, "URI SAN");
    CHECK_STREQ(p.san_value, "https://buildkite.com/acme-inc/super-duper-app", "pipeline URL");
    const char *want[FULCIO_EXT_MAX + 1] = {
        [1] = "https://agent.buildkite.com", [8] = "https://agent.buildkite.com", [24] = sub};
    expect_exts(&p, want, "buildkite-job");
    principal_clear(&p);
    CHECK(run_edited(&ic, token, "organization_slug", NULL, NULL, &p, why) ==
                  PRINCIPAL_TOKEN_ERROR &&
              strcmp(why, "missing organization_slug claim in ID token") == 0,
          "no organization_slug: %s", why);
    CHECK(run_edited(&ic, token, "pipeline_slug", NULL, NULL, &p, why) == PRINCIPAL_TOKEN_ERROR &&
              strcmp(why, "missing pipeline_slug claim in ID token") == 0,
          "no pipeline_slug: %s", why);
}

static void test_codefresh_workflow(void)
{
    issuer_config ic =
        type_ic(ISSUER_TYPE_CODEFRESH_WORKFLOW, "codefresh-workflow", "https://oidc.codefresh.io");
    /* manual trigger on another Codefresh platform (platform_url claim) */
    static const char manual[] =
        "{\"sub\":\"account:628a80b693a15c0f9c13ab75:pipeline:65e5a53e52853dc51a5b0cc1:"
        "initiator:codefresh-user\",\"account_id\":\"628a80b693a15c0f9c13ab75\","
        "\"account_name\":\"codefresh-account\",\"pipeline_id\":\"65e5a53e52853dc51a5b0cc1\","
        "\"pipeline_name\":\"oidc-test/get-token\",\"workflow_id\":\"65e5c23d706f166c4e8985ed\","
        "\"initiator\":\"codefresh-user\",\"runner_environment\":\"hybrid\",\"aud\":\"sigstore\","
        "\"exp\":1709556619,\"iat\":1709556319,\"iss\":\"https://oidc.codefresh.io\","
        "\"platform_url\":\"https://pre-prod.codefresh.io\"}";
    principal p;
    char why[512];
    CHECK(run(&ic, manual, &p, why) == PRINCIPAL_OK, "codefresh manual: %s", why);
    CHECK_STREQ(p.san_value,
                "https://pre-prod.codefresh.io/codefresh-account/oidc-test/get-token:"
                "628a80b693a15c0f9c13ab75/65e5a53e52853dc51a5b0cc1",
                "SAN on the token's platform");
    const char *build = "https://pre-prod.codefresh.io/build/65e5c23d706f166c4e8985ed";
    const char *want[FULCIO_EXT_MAX + 1] = {
        [1] = "https://oidc.codefresh.io",
        [8] = "https://oidc.codefresh.io",
        [9] = build,
        [11] = "hybrid",
        [18] = build,
        [21] = build,
        [24] = "account:628a80b693a15c0f9c13ab75:pipeline:65e5a53e52853dc51a5b0cc1:initiator:"
               "codefresh-user",
    };
    expect_exts(&p, want, "codefresh manual trigger");
    principal_clear(&p);

    /* git push trigger, default platform */
    static const char push[] =
        "{\"sub\":\"account:628a80b693a15c0f9c13ab75:pipeline:65e5a53e52853dc51a5b0cc1:"
        "initiator:codefresh-user:scm_repo_url:https://github.com/codefresh-user/fulcio:"
        "scm_user_name:git-user-name:scm_ref:main\",\"account_id\":\"628a80b693a15c0f9c13ab75\","
        "\"account_name\":\"codefresh-account\",\"pipeline_id\":\"65e5a53e52853dc51a5b0cc1\","
        "\"pipeline_name\":\"oidc-test/get-token\",\"workflow_id\":\"65e6bcf7c2af1f228fa97f80\","
        "\"initiator\":\"codefresh-user\",\"scm_user_name\":\"git-user-name\",\"scm_repo_url\":"
        "\"https://github.com/codefresh-io/fulcio-oidc\",\"scm_ref\":\"main\","
        "\"runner_environment\":\"hybrid\",\"aud\":\"sigstore\",\"exp\":1709620814,\"iat\":"
        "1709620514,\"iss\":\"https://oidc.codefresh.io\"}";
    CHECK(run(&ic, push, &p, why) == PRINCIPAL_OK, "codefresh push: %s", why);
    CHECK_STREQ(p.san_value,
                "https://g.codefresh.io/codefresh-account/oidc-test/get-token:"
                "628a80b693a15c0f9c13ab75/65e5a53e52853dc51a5b0cc1",
                "SAN on the default platform");
    CHECK_STREQ(p.ext[9], "https://g.codefresh.io/build/65e6bcf7c2af1f228fa97f80", "build URL");
    CHECK_STREQ(p.ext[12], "https://github.com/codefresh-io/fulcio-oidc", "scm_repo_url");
    CHECK_STREQ(p.ext[14], "main", "scm_ref");
    principal_clear(&p);

    static const char *const required[] = {"account_id", "pipeline_id", "workflow_id"};
    for (size_t i = 0; i < 3; i++) {
        char want_msg[64];
        snprintf(want_msg, sizeof want_msg, "missing %s in token", required[i]);
        CHECK(run_edited(&ic, push, required[i], NULL, NULL, &p, why) == PRINCIPAL_TOKEN_ERROR,
              "without %s refused", required[i]);
        CHECK_STREQ(why, want_msg, required[i]);
    }
    CHECK(run_edited(&ic, push, NULL, "platform_url", "\"https://cf.example.com:x\"", &p, why) ==
                  PRINCIPAL_VALIDATION_ERROR &&
              strcmp(why, "parse \"https://cf.example.com:x\": invalid port \":x\" after host") ==
                  0,
          "bad platform_url refused with Go's text: %s", why);
}

static void test_kubernetes(void)
{
    /* EKS: a meta issuer; the certificate carries the token's iss, never the pattern */
    issuer_config ic =
        type_ic(ISSUER_TYPE_KUBERNETES, "kubernetes", "https://oidc.eks.*.amazonaws.com/id/*");
    ic.is_meta = 1;
    static const char token[] =
        "{\"aud\":[\"sigstore\"],\"exp\":1700003600,\"iat\":1700000000,\"nbf\":1700000000,"
        "\"iss\":\"https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE\","
        "\"kubernetes.io\":{\"namespace\":\"build-system\",\"pod\":{\"name\":\"signer-7d9f8\","
        "\"uid\":\"49ad3572-b3dd-43a6-8d77-5858d3660275\"},\"serviceaccount\":{\"name\":"
        "\"release-signer\",\"uid\":\"f5720c1d-e152-4356-a897-11b07aff165d\"}},"
        "\"sub\":\"system:serviceaccount:build-system:release-signer\"}";
    principal p;
    char why[512];
    CHECK(run(&ic, token, &p, why) == PRINCIPAL_OK, "kubernetes: %s", why);
    CHECK_STREQ(p.name, "system:serviceaccount:build-system:release-signer", "challenge = sub");
    CHECK(p.san_kind == SAN_URI, "URI SAN");
    CHECK_STREQ(p.san_value,
                "https://kubernetes.io/namespaces/build-system/serviceaccounts/release-signer",
                "service account URI");
    const char *iss =
        "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
    const char *want[FULCIO_EXT_MAX + 1] = {
        [1] = iss, [8] = iss, [24] = "system:serviceaccount:build-system:release-signer"};
    expect_exts(&p, want, "kubernetes");
    principal_clear(&p);

    CHECK(run_edited(&ic, token, "kubernetes.io", NULL, NULL, &p, why) == PRINCIPAL_OK,
          "no kubernetes.io claim: not refused (Fulcio): %s", why);
    CHECK_STREQ(p.san_value, "https://kubernetes.io/namespaces//serviceaccounts/", "empty parts");
    principal_clear(&p);
    CHECK(run_edited(&ic, token, NULL, "kubernetes.io", "\"default\"", &p, why) ==
              PRINCIPAL_TOKEN_ERROR,
          "kubernetes.io not an object refused");
    CHECK(run_edited(&ic, token, NULL, "kubernetes.io", "{\"namespace\":7}", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR &&
              strcmp(why, "json: cannot unmarshal number into Go struct field "
                          ".kubernetes.io.namespace of type string") == 0,
          "namespace not a string refused: %s", why);
}

static void test_spiffe(void)
{
    issuer_config ic = type_ic(ISSUER_TYPE_SPIFFE, "spiffe", "https://spire.example.com");
    ic.spiffe_trust_domain = (char *)"example.com";
    static const char token[] =
        "{\"aud\":[\"sigstore\"],\"exp\":1700000300,\"iat\":1700000000,\"iss\":"
        "\"https://spire.example.com\",\"sub\":\"spiffe://example.com/ns/prod/sa/builder\"}";
    principal p;
    char why[512];
    CHECK(run(&ic, token, &p, why) == PRINCIPAL_OK, "spiffe: %s", why);
    CHECK_STREQ(p.name, "spiffe://example.com/ns/prod/sa/builder", "challenge = sub");
    CHECK(p.san_kind == SAN_URI, "URI SAN");
    CHECK_STREQ(p.san_value, "spiffe://example.com/ns/prod/sa/builder", "SAN = the SPIFFE ID");
    const char *want[FULCIO_EXT_MAX + 1] = {[1] = "https://spire.example.com",
                                            [8] = "https://spire.example.com",
                                            [24] = "spiffe://example.com/ns/prod/sa/builder"};
    expect_exts(&p, want, "spiffe");
    principal_clear(&p);
    ic.spiffe_trust_domain = (char *)"spiffe://example.com";
    CHECK(run(&ic, token, &p, why) == PRINCIPAL_OK, "trust domain written as an ID: %s", why);
    principal_clear(&p);
    CHECK(run_edited(&ic, token, NULL, "sub", "\"spiffe://example.com\"", &p, why) == PRINCIPAL_OK,
          "ID without a path: %s", why);
    principal_clear(&p);

    ic.spiffe_trust_domain = (char *)"example.com";
    CHECK(run_edited(&ic, token, NULL, "sub", "\"spiffe://other.org/ns/prod/sa/builder\"", &p,
                     why) == PRINCIPAL_TOKEN_ERROR &&
              strcmp(why, "spiffe ID trust domain other.org doesn't match configured trust "
                          "domain example.com") == 0,
          "wrong trust domain: %s", why);
    CHECK(run_edited(&ic, token, NULL, "sub", "\"spiffe://example.com.evil.org/x\"", &p, why) ==
              PRINCIPAL_TOKEN_ERROR,
          "trust domain suffix trick refused");
    static const char *const bad[] = {"https://example.com/ns/prod",
                                      "spiffe://Example.com/x",
                                      "spiffe://example.com/a//b",
                                      "spiffe://example.com/x/",
                                      "spiffe://example.com/../x",
                                      "spiffe://example.com/a/./b",
                                      "spiffe:///x",
                                      "spiffe://example.com/a b",
                                      "spiffe://example.com/x?y=1",
                                      ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char v[128], want_msg[160];
        snprintf(v, sizeof v, "\"%s\"", bad[i]);
        snprintf(want_msg, sizeof want_msg, "invalid spiffe ID provided: %s", bad[i]);
        CHECK(run_edited(&ic, token, NULL, "sub", v, &p, why) == PRINCIPAL_TOKEN_ERROR,
              "invalid SPIFFE ID %s refused", bad[i]);
        CHECK_STREQ(why, want_msg, bad[i]);
    }
}

static void test_uri(void)
{
    issuer_config ic = type_ic(ISSUER_TYPE_URI, "uri", "https://auth.example.com");
    ic.subject_domain = (char *)"https://example.com";
    static const char token[] =
        "{\"aud\":\"sigstore\",\"exp\":1700000300,\"iat\":1700000000,\"iss\":"
        "\"https://auth.example.com\",\"sub\":\"https://example.com/users/alice\"}";
    principal p;
    char why[512];
    CHECK(run(&ic, token, &p, why) == PRINCIPAL_OK, "uri: %s", why);
    CHECK_STREQ(p.name, "https://example.com/users/alice", "challenge = sub");
    CHECK(p.san_kind == SAN_URI, "URI SAN");
    CHECK_STREQ(p.san_value, "https://example.com/users/alice", "SAN = sub");
    const char *want[FULCIO_EXT_MAX + 1] = {[1] = "https://auth.example.com",
                                            [8] = "https://auth.example.com",
                                            [24] = "https://example.com/users/alice"};
    expect_exts(&p, want, "uri");
    principal_clear(&p);
    CHECK(run_edited(&ic, token, NULL, "sub", "\"HTTPS://example.com:8443/a b\"", &p, why) ==
              PRINCIPAL_OK,
          "scheme case and port: %s", why);
    CHECK_STREQ(p.name, "HTTPS://example.com:8443/a b", "challenge is the raw sub");
    CHECK_STREQ(p.san_value, "https://example.com:8443/a%20b", "SAN is Go's URL.String()");
    principal_clear(&p);

    static const struct {
        const char *sub, *msg;
    } bad[] = {
        {"https://evil.com/users/alice",
         "subject hostname (evil.com) must match expected domain (example.com)"},
        {"https://sub.example.com/x",
         "subject hostname (sub.example.com) must match expected domain (example.com)"},
        {"https://Example.com/x",
         "subject hostname (Example.com) must match expected domain (example.com)"},
        {"http://example.com/x",
         "subject URI scheme (http) must match expected domain URI scheme (https)"},
        {"example.com/x", "subject URI scheme () must match expected domain URI scheme (https)"},
        {"alice@example.com", "uri subject should not be an email address"},
        {"https://example.com:x/",
         "parse \"https://example.com:x/\": invalid port \":x\" after host"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char v[128];
        snprintf(v, sizeof v, "\"%s\"", bad[i].sub);
        CHECK(run_edited(&ic, token, NULL, "sub", v, &p, why) == PRINCIPAL_TOKEN_ERROR,
              "uri sub %s refused", bad[i].sub);
        CHECK_STREQ(why, bad[i].msg, bad[i].sub);
    }
}

static void test_username(void)
{
    issuer_config ic = type_ic(ISSUER_TYPE_USERNAME, "username", "https://accounts.example.com");
    ic.subject_domain = (char *)"example.com";
    static const char token[] =
        "{\"aud\":\"sigstore\",\"exp\":1700000300,\"iat\":1700000000,\"iss\":"
        "\"https://accounts.example.com\",\"sub\":\"alice\"}";
    principal p;
    char why[512];
    CHECK(run(&ic, token, &p, why) == PRINCIPAL_OK, "username: %s", why);
    CHECK_STREQ(p.name, "alice", "challenge = sub");
    CHECK(p.san_kind == SAN_OTHERNAME_USERNAME, "otherName SAN");
    CHECK_STREQ(p.san_value, "alice!example.com", "sub!SubjectDomain");
    const char *want[FULCIO_EXT_MAX + 1] = {
        [1] = "https://accounts.example.com", [8] = "https://accounts.example.com", [24] = "alice"};
    expect_exts(&p, want, "username");
    principal_clear(&p);
    /* not an email for govalidator: no dot-separated top-level domain */
    CHECK(run_edited(&ic, token, NULL, "sub", "\"alice@localhost\"", &p, why) == PRINCIPAL_OK,
          "alice@localhost is a username: %s", why);
    CHECK_STREQ(p.san_value, "alice@localhost!example.com", "username with @");
    principal_clear(&p);

    static const struct {
        const char *sub, *msg;
    } bad[] = {
        {"al!ce", "username cannot contain ! character"},
        {"alice!example.com", "username cannot contain ! character"},
        {"alice@example.com", "uri subject should not be an email address"},
        {"first.last+tag@mail.example.org.", "uri subject should not be an email address"},
        {"\\\"quoted local\\\"@example.com", "uri subject should not be an email address"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char v[128];
        snprintf(v, sizeof v, "\"%s\"", bad[i].sub);
        CHECK(run_edited(&ic, token, NULL, "sub", v, &p, why) == PRINCIPAL_TOKEN_ERROR,
              "username %s refused", bad[i].sub);
        CHECK_STREQ(why, bad[i].msg, bad[i].sub);
    }
}

static void test_chainguard(void)
{
    issuer_config ic = type_ic(ISSUER_TYPE_CHAINGUARD_IDENTITY, "chainguard-identity",
                               "https://issuer.enforce.dev");
    /* a service principal assumed by the catalog syncer: no email, challenge = sub */
    static const char svc[] =
        "{\"iss\":\"https://issuer.enforce.dev\",\"sub\":"
        "\"720909c9f5279097d847ad02a2f24ba8f59de36a/a6cc1ac1c0be4e2b\",\"aud\":\"sigstore\","
        "\"exp\":1700003600,\"iat\":1700000000,\"act\":{\"iss\":\"https://iss.example.com/\","
        "\"sub\":\"catalog-syncer:720909c9f5279097d847ad02a2f24ba8f59de36a\",\"aud\":"
        "\"chainguard\"},\"internal\":{\"service-principal\":\"CATALOG_SYNCER\"}}";
    principal p;
    char why[512];
    CHECK(run(&ic, svc, &p, why) == PRINCIPAL_OK, "chainguard service principal: %s", why);
    const char *sub = "720909c9f5279097d847ad02a2f24ba8f59de36a/a6cc1ac1c0be4e2b";
    CHECK_STREQ(p.name, sub, "challenge = sub");
    CHECK(p.san_kind == SAN_URI, "URI SAN");
    CHECK_STREQ(p.san_value,
                "https://issuer.enforce.dev/720909c9f5279097d847ad02a2f24ba8f59de36a/"
                "a6cc1ac1c0be4e2b",
                "SAN = issuer joined with sub");
    const char *want[FULCIO_EXT_MAX + 1] = {
        [1] = "https://issuer.enforce.dev", [8] = "https://issuer.enforce.dev", [24] = sub};
    expect_exts(&p, want, "chainguard");
    principal_clear(&p);

    /* a human signed in with SSO: the email is the challenge */
    static const char human[] =
        "{\"iss\":\"https://"
        "issuer.enforce.dev\",\"sub\":\"720909c9f5279097d847ad02a2f24ba8f59de36a\","
        "\"aud\":\"sigstore\",\"exp\":1700003600,\"iat\":1700000000,\"email\":"
        "\"jdoe@chainguard.dev\",\"email_verified\":true,\"act\":{\"iss\":"
        "\"https://auth.chainguard.dev/\",\"sub\":\"google-oauth2|1234567890\",\"aud\":"
        "\"fdsaldfkjhasldf\"}}";
    CHECK(run(&ic, human, &p, why) == PRINCIPAL_OK, "chainguard human: %s", why);
    CHECK_STREQ(p.name, "jdoe@chainguard.dev", "challenge = verified email");
    CHECK_STREQ(p.san_value, "https://issuer.enforce.dev/720909c9f5279097d847ad02a2f24ba8f59de36a",
                "SAN still from sub");
    CHECK_STREQ(p.ext[24], "720909c9f5279097d847ad02a2f24ba8f59de36a", "ext 24 = sub");
    principal_clear(&p);

    CHECK(run_edited(&ic, human, NULL, "email_verified", "false", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR &&
              strcmp(why, "not verified by identity provider") == 0,
          "unverified email refused: %s", why);
    CHECK(run_edited(&ic, human, "email_verified", NULL, NULL, &p, why) == PRINCIPAL_TOKEN_ERROR &&
              strcmp(why, "not verified by identity provider") == 0,
          "email without email_verified refused: %s", why);
    CHECK(run_edited(&ic, human, NULL, "email_verified", "\"true\"", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR &&
              strcmp(why, "json: cannot unmarshal string into Go struct field .email_verified "
                          "of type bool") == 0,
          "string email_verified refused as Go does: %s", why);
    CHECK(run_edited(&ic, human, NULL, "email", "\"\"", &p, why) == PRINCIPAL_OK &&
              strcmp(p.name, "720909c9f5279097d847ad02a2f24ba8f59de36a") == 0,
          "empty email: sub: %s", why);
    principal_clear(&p);
    CHECK(run_edited(&ic, svc, "sub", NULL, NULL, &p, why) == PRINCIPAL_TOKEN_ERROR &&
              strcmp(why, "no subject found in claims") == 0,
          "neither email nor sub refused: %s", why);
    CHECK(run_edited(&ic, svc, NULL, "act", "{\"iss\":\"x\",\"n\":1}", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR &&
              strcmp(why, "json: cannot unmarshal number into Go struct field .act of type "
                          "string") == 0,
          "act with a non-string value refused: %s", why);
}

static void test_types(void)
{
    test_github_workflow();
    test_gitlab_pipeline();
    test_buildkite_job();
    test_codefresh_workflow();
    test_kubernetes();
    test_spiffe();
    test_uri();
    test_username();
    test_chainguard();
}

int main(void)
{
    test_email_happy();
    test_email_verified_forms();
    test_email_invalid();
    test_issuer_claim();
    test_utf8_and_types();
    test_types();
    CHECK_MAIN_END();
}
