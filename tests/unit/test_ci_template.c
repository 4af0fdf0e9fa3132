/* The ci-provider issuer type: the Go text/template subset, claims -> template data, Fulcio's
 * applyTemplateOrReplace, and the public-good configuration's real templates run on realistic
 * GitHub Actions, GitLab CI, Buildkite, Codefresh and CircleCI claim sets (fulcio-compat §3.6,
 * §4.4). Expected template outputs and error texts were produced by Go's text/template. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "oidc/ci_template.h"
#include "oidc/go_template.h"
#include "oidc/principal.h"
#include "unit/check.h"

#define GH_ISS "https://token.actions.githubusercontent.com"

/* ext[n] for every n in 0..24 must be exactly want[n] (NULL = not written). */
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

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fprintf(stderr, "bad test JSON (%s): %s\n", e.text, text);
    return j;
}

/* ---- the template engine ---- */

static void test_engine(void)
{
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "url", "https://github.com",
                  "job_workflow_ref", "o/r/.github/workflows/w.yml@refs/heads/main", "ref_type",
                  "branch", "ref", "main", "empty", "", "oidc.circleci.com/project-id", "pid",
                  "oidc.circleci.com/ssh-rerun", "true", "api_url", "https://circleci.com/api/v2",
                  "x<y", "a&b");
    static const struct {
        const char *t, *out, *err;
    } cases[] = {
        {"{{ .url }}/{{ .job_workflow_ref }}",
         "https://github.com/o/r/.github/workflows/w.yml@refs/heads/main", NULL},
        {"{{ .url }}/{{ .missing }}", NULL,
         "template: :1:14: executing \"\" at <.missing>: map has no entry for key \"missing\""},
        {"refs/{{if eq .ref_type \"branch\"}}heads/{{ else }}tags/{{end}}{{ .ref }}",
         "refs/heads/main", NULL},
        {"{{if eq .ref_type \"tag\"}}T{{else if eq .ref_type \"branch\"}}B{{else}}X{{end}}", "B",
         NULL},
        {"{{(index . \"oidc.circleci.com/project-id\")}}", "pid", NULL},
        {"{{index . \"nope\"}}|", "|", NULL},
        {"{{if eq (index . \"oidc.circleci.com/ssh-rerun\") \"true\"}}ssh-rerun{{ else "
         "}}\"\"{{end}}",
         "ssh-rerun", NULL},
        {"a  {{- .ref -}}  b", "amainb", NULL},
        {"a {{- .ref }} b", "amain b", NULL},
        {"a {{ .ref -}} b", "a mainb", NULL},
        {"{{/* c */}}x", "x", NULL},
        {"{{- /* c */ -}} x", "x", NULL},
        {"x{{.ref}}\n{{.nope}}", NULL,
         "template: :2:2: executing \"\" at <.nope>: map has no entry for key \"nope\""},
        {"line1\nline2 {{ .nope }}", NULL,
         "template: :2:9: executing \"\" at <.nope>: map has no entry for key \"nope\""},
        {"{{ .ref.x }}", NULL,
         "template: :1:7: executing \"\" at <.ref.x>: can't evaluate field x in type string"},
        {"{{ eq .ref }}", NULL,
         "template: :1:3: executing \"\" at <eq .ref>: error calling eq: missing argument for "
         "comparison"},
        {"{{ eq .ref 1 }}", NULL,
         "template: :1:3: executing \"\" at <eq .ref 1>: error calling eq: incompatible types "
         "for comparison"},
        {"{{ eq .missing \"x\" }}", NULL,
         "template: :1:6: executing \"\" at <.missing>: map has no entry for key \"missing\""},
        {"{{ nope .ref }}", NULL, "template: :1: function \"nope\" not defined"},
        {"{{ .ref", NULL, "template: :1: unclosed action"},
        {"{{ .url }}{{", NULL, "template: :1: unclosed action"},
        {"{{ if .ref }}x", NULL, "template: :1: unexpected EOF"},
        {"{{ end }}", NULL, "template: :1: unexpected {{end}}"},
        {"{{ else }}", NULL, "template: :1: unexpected {{else}}"},
        {"{{ }}", NULL, "template: :1: missing value for command"},
        {"{{if}}x{{end}}", NULL, "template: :1: missing value for if"},
        {"{{ .a-b }}", NULL, "template: :1: bad character U+002D '-'"},
        {"{{ \"unterminated }}", NULL, "template: :1: unterminated quoted string"},
        {"{{ $x }}", NULL, "template: :1: undefined variable \"$x\""},
        {"{{ \"a\\tb\" }}", "a\tb", NULL},
        {"{{ `raw\\n` }}", "raw\\n", NULL},
        {"{{ \"\\u00e9\\x41\\101\" }}",
         "\xc3\xa9"
         "AA",
         NULL},
        {"{{ not .empty }}", "true", NULL},
        {"{{ and .ref .empty }}|{{ or .empty .ref }}", "|main", NULL},
        {"{{ and .empty .nope }}", "", NULL},
        {"{{ or .ref .nope }}", "main", NULL},
        {"{{ len .ref }}", "4", NULL},
        {"{{ .ref | eq \"main\" }}", "true", NULL},
        {"{{ index . \"ref\" | len }}", "4", NULL},
        {"{{ ne .ref \"main\" }}", "false", NULL},
        {"{{ eq \"a\" \"b\" \"a\" }}", "true", NULL},
        {"{{ (eq .ref \"main\") }}", "true", NULL},
        {"{{ $.ref }}", "main", NULL},
        {"{{ . }}",
         "map[api_url:https://circleci.com/api/v2 empty: "
         "job_workflow_ref:o/r/.github/workflows/w.yml@refs/heads/main "
         "oidc.circleci.com/project-id:pid oidc.circleci.com/ssh-rerun:true ref:main "
         "ref_type:branch url:https://github.com x<y:a&b]",
         NULL},
        {"{{ 1 }}{{ -3 }}{{ true }}", "1-3true", NULL},
        {"{{ nil }}", NULL, "template: :1:3: executing \"\" at <nil>: nil is not a command"},
        {"{{ .ref 1 }}", NULL,
         "template: :1:3: executing \"\" at <.ref>: ref is not a method but has arguments"},
        {"{{ index .ref 0 }}", "109", NULL},
        {"{{ index . 1 }}", NULL,
         "template: :1:3: executing \"\" at <index . 1>: error calling index: value has type int; "
         "should be string"},
        {"{{ index }}", NULL,
         "template: :1:3: executing \"\" at <index>: wrong number of args for index: want at "
         "least 1 got 0"},
        {"{{ index . \"x<y\" }}", "a&b", NULL}, /* text/template: no HTML escaping */
        {"{{if .empty}}a{{end}}", "", NULL},
        {"x }} y", "x }} y", NULL},
        {"{{ range .ref }}{{end}}", NULL,
         "template: :1: {{range}} is not supported by this server"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = (char *)"unset", why[512] = "";
        int rc = go_template_execute(cases[i].t, data, &out, why, sizeof why);
        if (cases[i].out) {
            CHECK(rc == 0, "template %s: %s", cases[i].t, why);
            CHECK_STREQ(out, cases[i].out, cases[i].t);
        } else {
            CHECK(rc == -1 && out == NULL, "template %s must fail", cases[i].t);
            CHECK_STREQ(why, cases[i].err, cases[i].t);
        }
        if (rc == 0)
            free(out);
    }
    json_decref(data);
}

/* ---- claims -> strings, data map, apply ---- */

static void test_claim_strings(void)
{
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"\"s\"", "s"},
        {"true", "true"},
        {"false", "false"},
        {"null", "<nil>"},
        {"0", "0"},
        {"1000000", "1000000"}, /* plain integer (Fulcio main; v1.8.8 printed 1e+06) */
        {"1700000000", "1700000000"},
        {"1.5", "1.5"},
        {"0.1", "0.1"},
        {"1e21", "1000000000000000000000"},
        {"1e-7", "0.0000001"},
        {"123456789012345678", "123456789012345680"}, /* float64, as Go decodes it */
        {"9007199254740993", "9007199254740992"},
        {"123456.0", "123456"},
        {"-2.5", "-2.5"},
        {"[1,\"a\",true,null,1000000,1.5,1e-05]", "[1 a true <nil> 1e+06 1.5 1e-05]"},
        {"{\"b\":1,\"a\":\"x\",\"c\":[1000000.0]}", "map[a:x b:1 c:[1e+06]]"},
        {"[]", "[]"},
        {"{}", "map[]"},
        {"[[1,2],{\"k\":null}]", "[[1 2] map[k:<nil>]]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        char *s = ci_claim_string(v);
        CHECK_STREQ(s, cases[i].want, cases[i].json);
        free(s);
        json_decref(v);
    }
}

static void test_data_and_apply(void)
{
    json_t *claims = parse("{\"url\":\"https://ghe.example.com\",\"run_id\":42,\"ok\":true,"
                           "\"aud\":[\"sigstore\",\"other\"]}");
    json_t *defaults = parse("{\"url\":\"https://github.com\",\"environment\":\"\"}");
    json_t *data = ci_template_data(claims, defaults);
    CHECK_STREQ(json_string_value(json_object_get(data, "url")), "https://ghe.example.com",
                "a claim wins over a default");
    CHECK_STREQ(json_string_value(json_object_get(data, "environment")), "",
                "a default fills a missing claim");
    CHECK_STREQ(json_string_value(json_object_get(data, "run_id")), "42", "number as string");
    CHECK_STREQ(json_string_value(json_object_get(data, "ok")), "true", "bool as string");
    CHECK_STREQ(json_string_value(json_object_get(data, "aud")), "[sigstore other]", "array %v");
    CHECK(json_object_size(data) == 5, "claims + defaults, nothing else");

    char *out = NULL, why[512];
    CHECK(ci_template_apply("run_id", data, "BuildTrigger", GH_ISS, &out, why, sizeof why) == 0,
          "a claim name is copied: %s", why);
    CHECK_STREQ(out, "42", "copied value");
    free(out);
    CHECK(ci_template_apply("environment", data, "DeploymentEnvironment", GH_ISS, &out, why,
                            sizeof why) == 0 &&
              out && *out == '\0',
          "empty default copied as empty");
    free(out);
    CHECK(ci_template_apply("{{ .url }}/x", data, "BuildSignerURI", GH_ISS, &out, why,
                            sizeof why) == 0,
          "template applied: %s", why);
    CHECK_STREQ(out, "https://ghe.example.com/x", "template output");
    free(out);
    CHECK(ci_template_apply("job_workflow_sha", data, "BuildSignerDigest", GH_ISS, &out, why,
                            sizeof why) == -1 &&
              out == NULL,
          "a missing claim name fails");
    CHECK_STREQ(why,
                "value <job_workflow_sha> not present in either claims or defaults. {\n"
                "\t\"ExtensionName\": \"BuildSignerDigest\",\n"
                "\t\"Issuer\": \"https://token.actions.githubusercontent.com\"\n}",
                "Fulcio's missing-value message");
    json_decref(data);
    json_decref(claims);
    json_decref(defaults);
}

/* ---- the public-good configuration's templates ---- */

static fulcrum_config *public_config(void)
{
    const char *dir = getenv("FULCRUM_FIXTURES_DIR");
    CHECK(dir != NULL, "FULCRUM_FIXTURES_DIR set");
    if (!dir)
        return NULL;
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/fulcio-public-config.yaml", dir);
    fulcrum_config *cfg = config_load_file(path, err, sizeof err);
    CHECK(cfg != NULL, "public config loads: %s", err);
    return cfg;
}

/* principal_from_claims for a token of `iss`, the issuer looked up in cfg as the server does. */
static enum principal_error run(const fulcrum_config *cfg, const char *claims_json, principal *p,
                                char *why, size_t whylen)
{
    json_t *claims = parse(claims_json);
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    const issuer_config *ic = config_find_issuer(cfg, iss ? iss : "");
    CHECK(ic != NULL, "issuer %s configured", iss ? iss : "(none)");
    enum principal_error rc = PRINCIPAL_TOKEN_ERROR;
    why[0] = '\0';
    if (ic)
        rc = principal_from_claims(cfg, ic, claims, p, why, whylen);
    json_decref(claims);
    return rc;
}

/* A GitHub Actions token from a job that calls a reusable workflow (so job_workflow_ref differs
 * from workflow_ref), as token.actions.githubusercontent.com issues it. */
#define GH_CLAIMS_BODY                                                                             \
    "\"jti\":\"4f3c6a5e-8d2b-4c1e-9a7f-3b2d1c0e9f8a\",\"sub\":\"repo:sigstore/sigstore-js:ref:"    \
    "refs/heads/main\",\"aud\":\"sigstore\",\"ref\":\"refs/heads/main\",\"ref_protected\":"        \
    "\"true\",\"ref_type\":\"branch\",\"sha\":\"7c3f0e1a9b8d2c4e6f1a3b5c7d9e0f2a4b6c8d0e\","       \
    "\"repository\":\"sigstore/sigstore-js\",\"repository_owner\":\"sigstore\","                   \
    "\"repository_owner_id\":\"71096353\",\"repository_visibility\":\"public\","                   \
    "\"repository_id\":\"495574555\",\"run_id\":\"9876543210\",\"run_number\":\"1234\","           \
    "\"run_attempt\":\"2\",\"runner_environment\":\"github-hosted\",\"actor_id\":\"398027\","      \
    "\"actor\":\"bdehamer\",\"triggering_actor\":\"bdehamer\",\"workflow\":\"Release\","           \
    "\"head_ref\":\"\",\"base_ref\":\"\",\"event_name\":\"push\","                                 \
    "\"workflow_ref\":\"sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main\","     \
    "\"workflow_sha\":\"7c3f0e1a9b8d2c4e6f1a3b5c7d9e0f2a4b6c8d0e\",\"job_workflow_ref\":"          \
    "\"slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@"        \
    "refs/tags/v2.0.0\",\"job_workflow_sha\":\"5a775b367a56d5bd118a224a811bba288150a563\","        \
    "\"iat\":1717171717,\"nbf\":1717171417,\"exp\":1717172017"

static const char *const GH_SAN =
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_generic_slsa3.yml@refs/tags/v2.0.0";

static void test_public_github(const fulcrum_config *cfg)
{
    principal p;
    char why[512];
    enum principal_error rc =
        run(cfg, "{\"iss\":\"" GH_ISS "\"," GH_CLAIMS_BODY ",\"environment\":\"production\"}", &p,
            why, sizeof why);
    CHECK(rc == PRINCIPAL_OK, "GitHub ci-provider principal: %s", why);
    CHECK_STREQ(p.name, "repo:sigstore/sigstore-js:ref:refs/heads/main", "challenge = sub");
    CHECK(p.san_kind == SAN_URI, "URI SAN");
    CHECK_STREQ(p.san_value, GH_SAN, "SAN = {url}/{job_workflow_ref}");
    const char *want[FULCIO_EXT_MAX + 1] = {
        [1] = GH_ISS,
        [2] = "push",
        [3] = "7c3f0e1a9b8d2c4e6f1a3b5c7d9e0f2a4b6c8d0e",
        [4] = "Release",
        [5] = "sigstore/sigstore-js",
        [6] = "refs/heads/main",
        [8] = GH_ISS,
        [9] = GH_SAN,
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
        [22] = "public",
        [23] = "production",
        [24] = "repo:sigstore/sigstore-js:ref:refs/heads/main",
    };
    expect_exts(&p, want, "GitHub");
    principal_clear(&p);

    /* no environment claim: the "" default, and the extension is omitted */
    rc = run(cfg, "{\"iss\":\"" GH_ISS "\"," GH_CLAIMS_BODY "}", &p, why, sizeof why);
    CHECK(rc == PRINCIPAL_OK && p.ext[23] == NULL && p.ext[22] != NULL,
          "no environment: .23 omitted: %s", why);
    principal_clear(&p);

    /* GitHub Enterprise Cloud with a unique issuer: meta issuer, the token's own iss written */
    rc = run(cfg,
             "{\"iss\":\"" GH_ISS "/octo-enterprise\"," GH_CLAIMS_BODY
             ",\"enterprise\":\"octo-enterprise\"}",
             &p, why, sizeof why);
    CHECK(rc == PRINCIPAL_OK, "enterprise issuer: %s", why);
    CHECK_STREQ(p.ext[1], GH_ISS "/octo-enterprise", "ext 1 = the token's iss, not the pattern");
    CHECK_STREQ(p.ext[8], GH_ISS "/octo-enterprise", "ext 8 = the token's iss");
    CHECK_STREQ(p.san_value, GH_SAN, "enterprise SAN");
    principal_clear(&p);

    /* a claim overriding a default: url */
    rc = run(cfg, "{\"iss\":\"" GH_ISS "\"," GH_CLAIMS_BODY ",\"url\":\"https://ghe.example.com\"}",
             &p, why, sizeof why);
    CHECK(rc == PRINCIPAL_OK, "url claim: %s", why);
    CHECK_STREQ(p.ext[12], "https://ghe.example.com/sigstore/sigstore-js",
                "claims win over defaults");
    principal_clear(&p);
}

/* The public config's GitHub templates and the legacy github-workflow type agree on every
 * value but .23 (the legacy type has no deployment environment). */
static void test_github_legacy_same(const fulcrum_config *cfg)
{
    json_t *claims = parse("{\"iss\":\"" GH_ISS "\"," GH_CLAIMS_BODY ",\"environment\":\"prod\"}");
    const issuer_config *ci = config_find_issuer(cfg, GH_ISS);
    issuer_config legacy = *ci;
    legacy.type = ISSUER_TYPE_GITHUB_WORKFLOW;
    legacy.type_name = (char *)"github-workflow";
    principal a, b;
    char why[512];
    CHECK(principal_from_claims(cfg, ci, claims, &a, why, sizeof why) == PRINCIPAL_OK, "ci: %s",
          why);
    CHECK(principal_from_claims(cfg, &legacy, claims, &b, why, sizeof why) == PRINCIPAL_OK,
          "legacy: %s", why);
    CHECK_STREQ(a.name, b.name, "same challenge");
    CHECK_STREQ(a.san_value, b.san_value, "same SAN");
    for (int n = 0; n <= FULCIO_EXT_MAX; n++) {
        if (n == 23)
            continue;
        CHECK((!a.ext[n] && !b.ext[n]) || (a.ext[n] && b.ext[n] && !strcmp(a.ext[n], b.ext[n])),
              "ext .%d: ci-provider \"%s\", github-workflow \"%s\"", n, a.ext[n], b.ext[n]);
    }
    CHECK(a.ext[23] && !b.ext[23], ".23 only from the template");
    principal_clear(&a);
    principal_clear(&b);
    json_decref(claims);
}

static void test_public_github_errors(const fulcrum_config *cfg)
{
    principal p;
    char why[512];
    /* each claim removed from the body in turn */
    static const struct {
        const char *drop, *err;
    } cases[] = {
        {"job_workflow_ref",
         "template: :1:14: executing \"\" at <.job_workflow_ref>: map has no entry for key "
         "\"job_workflow_ref\""},
        {"event_name",
         "value <event_name> not present in either claims or defaults. {\n\t\"ExtensionName\": "
         "\"GithubWorkflowTrigger\",\n\t\"Issuer\": \"" GH_ISS "\"\n}"},
        {"job_workflow_sha",
         "value <job_workflow_sha> not present in either claims or defaults. {\n\t"
         "\"ExtensionName\": \"BuildSignerDigest\",\n\t\"Issuer\": \"" GH_ISS "\"\n}"},
        {"repository_owner",
         "template: :1:14: executing \"\" at <.repository_owner>: map has no entry for key "
         "\"repository_owner\""},
        {"run_attempt",
         "template: :1:68: executing \"\" at <.run_attempt>: map has no entry for key "
         "\"run_attempt\""},
        {"repository_visibility",
         "value <repository_visibility> not present in either claims or defaults. {\n\t"
         "\"ExtensionName\": \"SourceRepositoryVisibilityAtSigning\",\n\t\"Issuer\": \"" GH_ISS
         "\"\n}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *claims = parse("{\"iss\":\"" GH_ISS "\"," GH_CLAIMS_BODY "}");
        json_object_del(claims, cases[i].drop);
        char *text = json_dumps(claims, 0);
        enum principal_error rc = run(cfg, text, &p, why, sizeof why);
        CHECK(rc == PRINCIPAL_VALIDATION_ERROR && p.name == NULL && p.san_value == NULL,
              "without %s: refused as a validation error (rc %d)", cases[i].drop, rc);
        CHECK_STREQ(why, cases[i].err, cases[i].drop);
        free(text);
        json_decref(claims);
    }
}

static void test_public_gitlab(const fulcrum_config *cfg)
{
    principal p;
    char why[512];
    static const char body[] =
        "\"namespace_id\":\"72\",\"namespace_path\":\"my-group\",\"project_id\":\"20\","
        "\"project_path\":\"my-group/my-project\",\"user_id\":\"1\",\"user_login\":\"sample-user\","
        "\"user_email\":\"sample-user@example.com\",\"user_access_level\":\"developer\","
        "\"pipeline_id\":\"574\",\"pipeline_source\":\"push\",\"job_id\":\"302\","
        "\"ref_path\":\"refs/heads/feature-branch-1\",\"ref_protected\":\"false\","
        "\"environment\":\"test-environment2\",\"environment_protected\":\"false\","
        "\"deployment_tier\":\"testing\",\"runner_id\":1,\"runner_environment\":\"self-hosted\","
        "\"sha\":\"714a629c0b401fdce83e847fc9589983fc6f46bc\",\"project_visibility\":\"public\","
        "\"ci_config_ref_uri\":\"gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main\","
        "\"ci_config_sha\":\"714a629c0b401fdce83e847fc9589983fc6f46bc\","
        "\"jti\":\"235b3a54-b797-45c7-ae9a-f72d7bc6ef5b\","
        "\"iat\":1681395193,\"nbf\":1681395188,\"exp\":1681398793,\"aud\":\"sigstore\"";
    char json[2048];
    snprintf(json, sizeof json,
             "{%s,\"iss\":\"https://gitlab.com\",\"ref\":\"feature-branch-1\",\"ref_type\":"
             "\"branch\",\"sub\":\"project_path:my-group/my-project:ref_type:branch:ref:"
             "feature-branch-1\"}",
             body);
    CHECK(run(cfg, json, &p, why, sizeof why) == PRINCIPAL_OK, "GitLab principal: %s", why);
    const char *cfg_uri = "https://gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main";
    CHECK_STREQ(p.name, "project_path:my-group/my-project:ref_type:branch:ref:feature-branch-1",
                "challenge = sub");
    CHECK(p.san_kind == SAN_URI, "URI SAN");
    CHECK_STREQ(p.san_value, cfg_uri, "SAN = https://{ci_config_ref_uri}");
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
        [23] = "test-environment2",
        [24] = "project_path:my-group/my-project:ref_type:branch:ref:feature-branch-1",
    };
    expect_exts(&p, want, "GitLab branch");
    principal_clear(&p);

    snprintf(json, sizeof json,
             "{%s,\"iss\":\"https://gitlab.com\",\"ref\":\"v1.2.0\",\"ref_type\":\"tag\","
             "\"sub\":\"project_path:my-group/my-project:ref_type:tag:ref:v1.2.0\"}",
             body);
    CHECK(run(cfg, json, &p, why, sizeof why) == PRINCIPAL_OK, "GitLab tag: %s", why);
    CHECK_STREQ(p.ext[14], "refs/tags/v1.2.0", "tag ref");
    principal_clear(&p);

    /* another GitLab instance of the same provider: its own iss; the SAN comes from
     * ci_config_ref_uri, the repository URLs from the "url" default (gitlab.com) */
    snprintf(json, sizeof json,
             "{%s,\"iss\":\"https://ops.gitlab.net\",\"ref\":\"main\",\"ref_type\":\"branch\","
             "\"sub\":\"project_path:my-group/my-project:ref_type:branch:ref:main\"}",
             body);
    CHECK(run(cfg, json, &p, why, sizeof why) == PRINCIPAL_OK, "ops.gitlab.net: %s", why);
    CHECK_STREQ(p.ext[1], "https://ops.gitlab.net", "ext 1 = that instance");
    CHECK_STREQ(p.ext[8], "https://ops.gitlab.net", "ext 8 = that instance");
    CHECK_STREQ(p.ext[14], "refs/heads/main", "branch ref");
    principal_clear(&p);

    /* ref_type missing: the {{if eq .ref_type ...}} fails on the missing key */
    snprintf(json, sizeof json,
             "{%s,\"iss\":\"https://gitlab.com\",\"ref\":\"main\",\"sub\":\"x\"}", body);
    CHECK(run(cfg, json, &p, why, sizeof why) == PRINCIPAL_VALIDATION_ERROR,
          "GitLab without ref_type refused");
    CHECK_STREQ(why,
                "template: :1:13: executing \"\" at <.ref_type>: map has no entry for key "
                "\"ref_type\"",
                "GitLab ref_type message");
}

static void test_public_others(const fulcrum_config *cfg)
{
    principal p;
    char why[512];
    /* Buildkite agent token (agent.buildkite.com) */
    CHECK(
        run(cfg,
            "{\"aud\":\"sigstore\",\"iss\":\"https://agent.buildkite.com\",\"sub\":"
            "\"organization:acme-inc:pipeline:super-duper-app:ref:refs/heads/main:commit:"
            "9f3182061f1e2cca4702c368cbc039b7dc9d4485:step:build\",\"iat\":1669014898,"
            "\"nbf\":1669014898,\"exp\":1669015198,\"organization_slug\":\"acme-inc\","
            "\"pipeline_slug\":\"super-duper-app\",\"build_number\":1,\"build_branch\":\"main\","
            "\"build_tag\":null,\"build_commit\":\"9f3182061f1e2cca4702c368cbc039b7dc9d4485\","
            "\"build_source\":\"ui\",\"step_key\":\"build\",\"job_id\":"
            "\"0184990a-477b-4fa8-9968-496074483cee\",\"agent_id\":"
            "\"0184990a-4782-42b5-afc1-16715b10b8ff\",\"runner_environment\":\"buildkite-hosted\"}",
            &p, why, sizeof why) == PRINCIPAL_OK,
        "Buildkite: %s", why);
    const char *bk[FULCIO_EXT_MAX + 1] = {
        [1] = "https://agent.buildkite.com",
        [8] = "https://agent.buildkite.com",
        [11] = "buildkite-hosted",
        [13] = "9f3182061f1e2cca4702c368cbc039b7dc9d4485",
        [20] = "ui",
        [21] = "https://buildkite.com/acme-inc/super-duper-app/builds/1#"
               "0184990a-477b-4fa8-9968-496074483cee",
        [24] = "organization:acme-inc:pipeline:super-duper-app:ref:refs/heads/main:commit:"
               "9f3182061f1e2cca4702c368cbc039b7dc9d4485:step:build",
    };
    CHECK_STREQ(p.san_value, "https://buildkite.com/acme-inc/super-duper-app", "Buildkite SAN");
    expect_exts(&p, bk, "Buildkite");
    principal_clear(&p);

    /* Codefresh (no platform_url: the default) */
    CHECK(run(cfg,
              "{\"sub\":\"account:628a80b693a15c0f9c13ab75:pipeline:65e5a53e52853dc51a5b0cc1:"
              "initiator:codefresh-user:scm_repo_url:https://github.com/codefresh-user/fulcio:"
              "scm_user_name:git-user-name:scm_ref:main\",\"account_id\":"
              "\"628a80b693a15c0f9c13ab75\",\"account_name\":\"codefresh-account\","
              "\"pipeline_id\":\"65e5a53e52853dc51a5b0cc1\",\"pipeline_name\":"
              "\"oidc-test/get-token\",\"workflow_id\":\"65e6bcf7c2af1f228fa97f80\","
              "\"initiator\":\"codefresh-user\",\"scm_user_name\":\"git-user-name\","
              "\"scm_repo_url\":\"https://github.com/codefresh-io/fulcio-oidc\",\"scm_ref\":"
              "\"main\",\"runner_environment\":\"hybrid\",\"aud\":\"sigstore\",\"exp\":1709620814,"
              "\"iat\":1709620514,\"iss\":\"https://oidc.codefresh.io\"}",
              &p, why, sizeof why) == PRINCIPAL_OK,
          "Codefresh: %s", why);
    CHECK_STREQ(p.san_value,
                "https://g.codefresh.io/codefresh-account/oidc-test/get-token:"
                "628a80b693a15c0f9c13ab75/65e5a53e52853dc51a5b0cc1",
                "Codefresh SAN");
    const char *cf[FULCIO_EXT_MAX + 1] = {
        [1] = "https://oidc.codefresh.io",
        [8] = "https://oidc.codefresh.io",
        [9] = "https://g.codefresh.io/build/65e6bcf7c2af1f228fa97f80",
        [11] = "hybrid",
        [12] = "https://github.com/codefresh-io/fulcio-oidc",
        [14] = "main",
        [18] = "https://g.codefresh.io/api/pipelines/65e5a53e52853dc51a5b0cc1",
        [21] = "https://g.codefresh.io/build/65e6bcf7c2af1f228fa97f80",
        [24] = "account:628a80b693a15c0f9c13ab75:pipeline:65e5a53e52853dc51a5b0cc1:initiator:"
               "codefresh-user:scm_repo_url:https://github.com/codefresh-user/fulcio:"
               "scm_user_name:git-user-name:scm_ref:main",
    };
    expect_exts(&p, cf, "Codefresh");
    principal_clear(&p);

    /* CircleCI, organisation issuer (meta issuer https://oidc.circleci.com/org/ *): claim names
     * with dots and slashes go through index; ssh-rerun is a JSON boolean */
    CHECK(
        run(cfg,
            "{\"iss\":\"https://oidc.circleci.com/org/0d8e4b6a-53a2-4c1d-8f0e-4b7e2c9d1a35\","
            "\"sub\":\"org/0d8e4b6a-53a2-4c1d-8f0e-4b7e2c9d1a35/project/"
            "5f4b3c2a-1d0e-4f9a-8b7c-6d5e4f3a2b1c/user/9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d\","
            "\"aud\":\"sigstore\",\"iat\":1700000000,\"exp\":1700003600,"
            "\"oidc.circleci.com/project-id\":\"5f4b3c2a-1d0e-4f9a-8b7c-6d5e4f3a2b1c\","
            "\"oidc.circleci.com/pipeline-definition-id\":\"1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f\","
            "\"oidc.circleci.com/pipeline-id\":\"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d\","
            "\"oidc.circleci.com/workflow-id\":\"b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e\","
            "\"oidc.circleci.com/job-id\":\"c3d4e5f6-a7b8-4c9d-0e1f-2a3b4c5d6e7f\","
            "\"oidc.circleci.com/context-ids\":[\"d4e5f6a7-b8c9-4d0e-1f2a-3b4c5d6e7f8a\"],"
            "\"oidc.circleci.com/vcs-origin\":\"github.com/acme/widget\","
            "\"oidc.circleci.com/vcs-ref\":\"refs/heads/main\","
            "\"oidc.circleci.com/ssh-rerun\":false}",
            &p, why, sizeof why) == PRINCIPAL_OK,
        "CircleCI: %s", why);
    const char *cc_san = "https://circleci.com/api/v2/projects/5f4b3c2a-1d0e-4f9a-8b7c-6d5e4f3a2b1c"
                         "/pipeline-definitions/1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
    CHECK_STREQ(p.san_value, cc_san, "CircleCI SAN");
    const char *cc[FULCIO_EXT_MAX + 1] = {
        [1] = "https://oidc.circleci.com/org/0d8e4b6a-53a2-4c1d-8f0e-4b7e2c9d1a35",
        [8] = "https://oidc.circleci.com/org/0d8e4b6a-53a2-4c1d-8f0e-4b7e2c9d1a35",
        [9] = cc_san,
        [11] = "\"\"", /* the template's literal else branch, as Fulcio writes it */
        [12] = "github.com/acme/widget",
        [14] = "refs/heads/main",
        [18] = "https://circleci.com/api/v2/pipeline/a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d/config",
        [21] = "https://app.circleci.com//workflow/b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e/job/"
               "c3d4e5f6-a7b8-4c9d-0e1f-2a3b4c5d6e7f",
        [24] = "org/0d8e4b6a-53a2-4c1d-8f0e-4b7e2c9d1a35/project/"
               "5f4b3c2a-1d0e-4f9a-8b7c-6d5e4f3a2b1c/user/9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
    };
    expect_exts(&p, cc, "CircleCI");
    principal_clear(&p);
}

/* ---- provider metadata errors (hand-built configuration) ---- */

static void test_metadata_errors(void)
{
    fulcrum_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.ci_issuer_metadata =
        parse("{\"relative\":{\"DefaultTemplateValues\":{},\"ExtensionTemplates\":{},"
              "\"SubjectAlternativeNameTemplate\":\"{{ .project }}/{{ .job }}\"},"
              "\"badport\":{\"ExtensionTemplates\":{},"
              "\"SubjectAlternativeNameTemplate\":\"https://ci.example.com:{{ .project }}/x\"},"
              "\"empty\":{\"ExtensionTemplates\":{\"BuildTrigger\":\"event\"},"
              "\"SubjectAlternativeNameTemplate\":\"  \"},"
              "\"good\":{\"DefaultTemplateValues\":{\"base\":\"https://ci.example.com\"},"
              "\"ExtensionTemplates\":{\"BuildTrigger\":\"event\",\"RunInvocationURI\":"
              "\"{{ .base }}/{{ .project }}/runs/{{ .run }}\",\"Issuer\":\"project\","
              "\"Subject\":\"project\",\"DeploymentEnvironment\":\"  \"},"
              "\"SubjectAlternativeNameTemplate\":\"{{ .base }}/{{ .project }}/{{ .job }} x\"}}");
    issuer_config ic;
    memset(&ic, 0, sizeof ic);
    ic.issuer_url = (char *)"https://ci.example.com";
    ic.client_id = (char *)"sigstore";
    ic.type_name = (char *)"ci-provider";
    ic.type = ISSUER_TYPE_CI_PROVIDER;
    ic.issuer_claim = (char *)"";
    ic.subject_domain = (char *)"";
    ic.spiffe_trust_domain = (char *)"";
    json_t *claims = parse("{\"iss\":\"https://ci.example.com\",\"sub\":\"project:acme:job:7\","
                           "\"project\":\"acme\",\"job\":\"7\",\"event\":\"tag\",\"run\":99}");
    principal p;
    char why[512];

    ic.ci_provider = (char *)"good";
    CHECK(principal_from_claims(&cfg, &ic, claims, &p, why, sizeof why) == PRINCIPAL_OK,
          "custom provider: %s", why);
    CHECK_STREQ(p.san_value, "https://ci.example.com/acme/7%20x", "SAN is Go's URL.String()");
    CHECK_STREQ(p.ext[20], "tag", "claim copied");
    CHECK_STREQ(p.ext[21], "https://ci.example.com/acme/runs/99", "number claim in a template");
    CHECK_STREQ(p.ext[1], "https://ci.example.com", "Issuer template ignored: iss");
    CHECK_STREQ(p.ext[24], "project:acme:job:7", "Subject template ignored: sub");
    CHECK(p.ext[23] == NULL, "blank template skipped");
    principal_clear(&p);

    ic.ci_provider = (char *)"relative";
    CHECK(principal_from_claims(&cfg, &ic, claims, &p, why, sizeof why) ==
              PRINCIPAL_VALIDATION_ERROR,
          "relative SAN refused");
    CHECK_STREQ(why, "subject alternative name \"acme/7\" is not an absolute URL with a host",
                "relative SAN message");

    ic.ci_provider = (char *)"badport";
    CHECK(principal_from_claims(&cfg, &ic, claims, &p, why, sizeof why) ==
              PRINCIPAL_VALIDATION_ERROR,
          "unparsable SAN refused");
    CHECK_STREQ(why, "parse \"https://ci.example.com:acme/x\": invalid port \":acme\" after host",
                "Go's url.Parse message");

    ic.ci_provider = (char *)"empty";
    CHECK(principal_from_claims(&cfg, &ic, claims, &p, why, sizeof why) ==
              PRINCIPAL_VALIDATION_ERROR,
          "blank SAN template refused");
    CHECK_STREQ(
        why, "SubjectAlternativeNameTemplate should not be empty. Issuer: https://ci.example.com",
        "blank SAN message");

    ic.ci_provider = (char *)"nope";
    CHECK(principal_from_claims(&cfg, &ic, claims, &p, why, sizeof why) == PRINCIPAL_TOKEN_ERROR,
          "unknown provider refused");
    CHECK_STREQ(why, "metadata not found for ci provider nope, issuer: https://ci.example.com",
                "missing metadata message");
    CHECK(principal_from_claims(NULL, &ic, claims, &p, why, sizeof why) == PRINCIPAL_TOKEN_ERROR,
          "no config: refused");
    CHECK(p.name == NULL && p.san_value == NULL && p.ext[1] == NULL, "nothing kept on failure");

    /* invalid UTF-8 from a claim into an extension */
    ic.ci_provider = (char *)"good";
    json_object_set_new(claims, "event", json_string_nocheck("t\xffg"));
    CHECK(principal_from_claims(&cfg, &ic, claims, &p, why, sizeof why) ==
              PRINCIPAL_VALIDATION_ERROR,
          "invalid UTF-8 value refused");
    CHECK_STREQ(why, "extension 1.3.6.1.4.1.57264.1.20 value is not valid UTF-8", "UTF-8 message");
    json_decref(claims);
    json_decref(cfg.ci_issuer_metadata);
}

int main(void)
{
    test_engine();
    test_claim_strings();
    test_data_and_apply();
    fulcrum_config *cfg = public_config();
    if (cfg) {
        test_public_github(cfg);
        test_github_legacy_same(cfg);
        test_public_github_errors(cfg);
        test_public_gitlab(cfg);
        test_public_others(cfg);
        config_free(cfg);
    }
    test_metadata_errors();
    CHECK_MAIN_END();
}
