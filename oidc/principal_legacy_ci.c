/*
 * oidc/principal_legacy_ci.c: Fulcio's dedicated CI issuer types (the public instance now uses
 * ci-provider for them, private instances still configure these): github-workflow,
 * gitlab-pipeline, buildkite-job, codefresh-workflow (fulcio-compat §3.4, §4.4).
 *
 * Each follows pkg/identity/{github,gitlabcom,buildkite,codefresh}/principal.go: all claims are
 * first decoded as Go would (a claim of the wrong JSON type is a token error), then the required
 * ones are checked in Fulcio's order ("missing <claim> claim in ID token"); the SAN and URL
 * extensions are Go's URL.JoinPath / url.Parse results. The challenge is `sub` and the issuer
 * the token's `iss` (set by principal_from_claims).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oidc/go_strconv.h"
#include "oidc/go_url.h"
#include "oidc/principal_internal.h"

#define MAX_CLAIMS 16

/* Reads names[0..n) as Go string fields into vals (type and UTF-8 errors first, as
 * json.Unmarshal would), then checks that each of the names listed in `required` (same order
 * as Fulcio's checks) is not empty: "missing <name> claim in ID token", or with short_msg
 * (codefresh's wording) "missing <name> in token". */
static enum principal_error read_claims(const json_t *claims, const char *const *names, size_t n,
                                        const char **vals, const char *const *required, size_t nreq,
                                        int short_msg, char *why, size_t whylen)
{
    for (size_t i = 0; i < n; i++) {
        enum principal_error rc = pr_get_string(claims, names[i], &vals[i], why, whylen);
        if (rc != PRINCIPAL_OK)
            return rc;
    }
    for (size_t r = 0; r < nreq; r++)
        for (size_t i = 0; i < n; i++)
            if (strcmp(names[i], required[r]) == 0 && !*vals[i]) {
                pr_why(why, whylen,
                       short_msg ? "missing %s in token" : "missing %s claim in ID token",
                       names[i]);
                return PRINCIPAL_TOKEN_ERROR;
            }
    return PRINCIPAL_OK;
}

static const char *val(const char *const *names, const char **vals, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return vals[i];
    return "";
}

/* ext[n] = v when v is not empty (Fulcio omits empty extensions). */
static enum principal_error set_ext(principal *out, int n, const char *v, char *why, size_t whylen)
{
    return *v ? pr_set(&out->ext[n], v, why, whylen) : PRINCIPAL_OK;
}

/* ext[n] = base.JoinPath(elems...).String(); VALIDATION_ERROR with Go's text on failure. */
static enum principal_error set_join(principal *out, int n, const go_url *base,
                                     const char *const *elems, size_t nelems, char *why,
                                     size_t whylen)
{
    char *s = go_url_join_string(base, elems, nelems, why, whylen);
    if (!s)
        return PRINCIPAL_VALIDATION_ERROR;
    if (n == 0) {
        out->san_kind = SAN_URI;
        return pr_take(&out->san_value, s, why, whylen);
    }
    return pr_take(&out->ext[n], s, why, whylen);
}

/* ---- github-workflow ------------------------------------------------------------------------- */

enum principal_error principal_github(const struct claims_ctx *c, principal *out, char *why,
                                      size_t whylen)
{
    static const char *const names[] = {"job_workflow_ref",
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
    enum { N = sizeof names / sizeof names[0] };
    const char *v[N];
    enum principal_error rc = read_claims(c->claims, names, N, v, names, N, 0, why, whylen);
    if (rc != PRINCIPAL_OK)
        return rc;
#define G(name) val(names, v, N, name)
    go_url base;
    if (go_url_parse("https://github.com/", &base, why, whylen) != 0)
        return PRINCIPAL_VALIDATION_ERROR;
    const char *jwr[] = {G("job_workflow_ref")};
    const char *repo[] = {G("repository")};
    const char *owner[] = {G("repository_owner")};
    const char *wr[] = {G("workflow_ref")};
    const char *run[] = {G("repository"), "actions/runs", G("run_id"), "attempts",
                         G("run_attempt")};
    if ((rc = set_join(out, 0, &base, jwr, 1, why, whylen)) ||
        (rc = set_ext(out, 2, G("event_name"), why, whylen)) ||
        (rc = set_ext(out, 3, G("sha"), why, whylen)) ||
        (rc = set_ext(out, 4, G("workflow"), why, whylen)) ||
        (rc = set_ext(out, 5, G("repository"), why, whylen)) ||
        (rc = set_ext(out, 6, G("ref"), why, whylen)) ||
        (rc = set_join(out, 9, &base, jwr, 1, why, whylen)) ||
        (rc = set_ext(out, 10, G("job_workflow_sha"), why, whylen)) ||
        (rc = set_ext(out, 11, G("runner_environment"), why, whylen)) ||
        (rc = set_join(out, 12, &base, repo, 1, why, whylen)) ||
        (rc = set_ext(out, 13, G("sha"), why, whylen)) ||
        (rc = set_ext(out, 14, G("ref"), why, whylen)) ||
        (rc = set_ext(out, 15, G("repository_id"), why, whylen)) ||
        (rc = set_join(out, 16, &base, owner, 1, why, whylen)) ||
        (rc = set_ext(out, 17, G("repository_owner_id"), why, whylen)) ||
        (rc = set_join(out, 18, &base, wr, 1, why, whylen)) ||
        (rc = set_ext(out, 19, G("workflow_sha"), why, whylen)) ||
        (rc = set_ext(out, 20, G("event_name"), why, whylen)) ||
        (rc = set_join(out, 21, &base, run, 5, why, whylen)) ||
        (rc = set_ext(out, 22, G("repository_visibility"), why, whylen))) {
        /* the first failure stops the chain; rc and why tell which */
    }
#undef G
    go_url_clear(&base);
    return rc;
}

/* ---- gitlab-pipeline ------------------------------------------------------------------------- */

/* runner_id is an int64 field: absent/null = 0; a non-integer is a type error. */
static enum principal_error runner_id(const json_t *claims, long long *out, char *why,
                                      size_t whylen)
{
    const json_t *v = json_object_get(claims, "runner_id");
    *out = 0;
    if (!v || json_is_null(v))
        return PRINCIPAL_OK;
    if (json_is_integer(v)) {
        *out = (long long)json_integer_value(v);
        return PRINCIPAL_OK;
    }
    if (json_is_real(v)) {
        char *num = go_format_float_f(json_real_value(v));
        pr_why(why, whylen,
               "json: cannot unmarshal number %s into Go struct field .runner_id of type int64",
               num ? num : "");
        free(num);
        return PRINCIPAL_TOKEN_ERROR;
    }
    pr_type_error(v, "runner_id", "int64", why, whylen);
    return PRINCIPAL_TOKEN_ERROR;
}

enum principal_error principal_gitlab(const struct claims_ctx *c, principal *out, char *why,
                                      size_t whylen)
{
    static const char *const names[] = {"project_path",
                                        "project_id",
                                        "pipeline_source",
                                        "pipeline_id",
                                        "ci_config_ref_uri",
                                        "ci_config_sha",
                                        "namespace_path",
                                        "namespace_id",
                                        "job_id",
                                        "ref",
                                        "ref_type",
                                        "sha",
                                        "runner_environment",
                                        "project_visibility"};
    static const char *const required[] = {
        "project_path", "pipeline_source",   "pipeline_id",    "ci_config_ref_uri", "job_id",
        "ref",          "ref_type",          "namespace_path", "namespace_id",      "project_id",
        "sha",          "runner_environment"};
    enum { N = sizeof names / sizeof names[0], NR = sizeof required / sizeof required[0] };
    const char *v[N];
    long long rid = 0;
    enum principal_error rc = runner_id(c->claims, &rid, why, whylen);
    if (rc == PRINCIPAL_OK)
        rc = read_claims(c->claims, names, N, v, required, NR, 0, why, whylen);
    if (rc != PRINCIPAL_OK)
        return rc;
    if (rid == 0) {
        pr_why(why, whylen, "missing runner_id claim in ID token");
        return PRINCIPAL_TOKEN_ERROR;
    }
#define G(name) val(names, v, N, name)
    const char *ref_type = G("ref_type"), *prefix;
    if (strcmp(ref_type, "branch") == 0) {
        prefix = "refs/heads/";
    } else if (strcmp(ref_type, "tag") == 0) {
        prefix = "refs/tags/";
    } else {
        pr_why(why, whylen, "unexpected ref_type: %s", ref_type);
        return PRINCIPAL_TOKEN_ERROR;
    }

    go_url base, cfgref;
    if (go_url_parse("https://gitlab.com/", &base, why, whylen) != 0)
        return PRINCIPAL_VALIDATION_ERROR;
    if (go_url_parse(G("ci_config_ref_uri"), &cfgref, why, whylen) != 0) {
        go_url_clear(&base);
        return PRINCIPAL_VALIDATION_ERROR;
    }
    /* ci_config_ref_uri has no scheme: https, or the base URL's when on the same host */
    free(cfgref.scheme);
    cfgref.scheme = strdup(strcmp(base.host, cfgref.host) == 0 ? base.scheme : "https");
    char *cfg_uri = cfgref.scheme ? go_url_string(&cfgref) : NULL;
    size_t reflen = strlen(prefix) + strlen(G("ref")) + 1;
    char *ref = malloc(reflen);
    if (ref)
        snprintf(ref, reflen, "%s%s", prefix, G("ref"));
    const char *repo[] = {G("project_path")};
    const char *owner[] = {G("namespace_path")};
    const char *job[] = {G("project_path"), "/-/jobs/", G("job_id")};
    if (!cfg_uri || !ref) {
        rc = pr_take(&out->san_value, NULL, why, whylen);
    } else if ((rc = pr_set(&out->san_value, cfg_uri, why, whylen)) ||
               (rc = set_ext(out, 9, cfg_uri, why, whylen)) ||
               (rc = set_ext(out, 10, G("ci_config_sha"), why, whylen)) ||
               (rc = set_ext(out, 11, G("runner_environment"), why, whylen)) ||
               (rc = set_join(out, 12, &base, repo, 1, why, whylen)) ||
               (rc = set_ext(out, 13, G("sha"), why, whylen)) ||
               (rc = set_ext(out, 14, ref, why, whylen)) ||
               (rc = set_ext(out, 15, G("project_id"), why, whylen)) ||
               (rc = set_join(out, 16, &base, owner, 1, why, whylen)) ||
               (rc = set_ext(out, 17, G("namespace_id"), why, whylen)) ||
               (rc = set_ext(out, 18, cfg_uri, why, whylen)) ||
               (rc = set_ext(out, 19, G("ci_config_sha"), why, whylen)) ||
               (rc = set_ext(out, 20, G("pipeline_source"), why, whylen)) ||
               (rc = set_join(out, 21, &base, job, 3, why, whylen)) ||
               (rc = set_ext(out, 22, G("project_visibility"), why, whylen))) {
        /* the first failure stops the chain; rc and why tell which */
    }
#undef G
    out->san_kind = SAN_URI;
    free(cfg_uri);
    free(ref);
    go_url_clear(&base);
    go_url_clear(&cfgref);
    return rc;
}

/* ---- buildkite-job --------------------------------------------------------------------------- */

enum principal_error principal_buildkite(const struct claims_ctx *c, principal *out, char *why,
                                         size_t whylen)
{
    static const char *const names[] = {"organization_slug", "pipeline_slug"};
    const char *v[2];
    enum principal_error rc = read_claims(c->claims, names, 2, v, names, 2, 0, why, whylen);
    if (rc != PRINCIPAL_OK)
        return rc;
    size_t n = strlen("https://buildkite.com//") + strlen(v[0]) + strlen(v[1]) + 1;
    char *s = malloc(n);
    if (!s)
        return pr_take(&out->san_value, NULL, why, whylen);
    snprintf(s, n, "https://buildkite.com/%s/%s", v[0], v[1]);
    go_url u;
    int bad = go_url_parse(s, &u, why, whylen);
    free(s);
    if (bad)
        return PRINCIPAL_VALIDATION_ERROR;
    out->san_kind = SAN_URI;
    rc = pr_take(&out->san_value, go_url_string(&u), why, whylen);
    go_url_clear(&u);
    return rc;
}

/* ---- codefresh-workflow ---------------------------------------------------------------------- */

enum principal_error principal_codefresh(const struct claims_ctx *c, principal *out, char *why,
                                         size_t whylen)
{
    static const char *const names[] = {"account_id",
                                        "account_name",
                                        "pipeline_id",
                                        "pipeline_name",
                                        "workflow_id",
                                        "initiator",
                                        "scm_repo_url",
                                        "scm_user_name",
                                        "scm_ref",
                                        "scm_pull_request_target_branch",
                                        "runner_environment",
                                        "platform_url"};
    static const char *const required[] = {"account_id", "pipeline_id", "workflow_id"};
    enum { N = sizeof names / sizeof names[0] };
    const char *v[N];
    enum principal_error rc = read_claims(c->claims, names, N, v, required, 3, 1, why, whylen);
    if (rc != PRINCIPAL_OK)
        return rc;
#define G(name) val(names, v, N, name)
    const char *platform = *G("platform_url") ? G("platform_url") : "https://g.codefresh.io";
    go_url base;
    if (go_url_parse(platform, &base, why, whylen) != 0)
        return PRINCIPAL_VALIDATION_ERROR;
    size_t n = strlen(G("pipeline_name")) + strlen(G("account_id")) + strlen(G("pipeline_id")) + 3;
    char *tail = malloc(n);
    if (!tail) {
        go_url_clear(&base);
        return pr_take(&out->san_value, NULL, why, whylen);
    }
    snprintf(tail, n, "%s:%s/%s", G("pipeline_name"), G("account_id"), G("pipeline_id"));
    const char *san[] = {G("account_name"), tail};
    const char *build[] = {"build", G("workflow_id")};
    if ((rc = set_join(out, 0, &base, san, 2, why, whylen)) ||
        (rc = set_join(out, 9, &base, build, 2, why, whylen)) ||
        (rc = set_ext(out, 11, G("runner_environment"), why, whylen)) ||
        (rc = set_ext(out, 12, G("scm_repo_url"), why, whylen)) ||
        (rc = set_ext(out, 14, G("scm_ref"), why, whylen)) ||
        (rc = set_ext(out, 18, out->ext[9], why, whylen)) ||
        (rc = set_ext(out, 21, out->ext[9], why, whylen))) {
        /* the first failure stops the chain; rc and why tell which */
    }
#undef G
    free(tail);
    go_url_clear(&base);
    return rc;
}
