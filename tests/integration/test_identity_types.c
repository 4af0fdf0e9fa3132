/*
 * tests/integration/test_identity_types.c: every issuer type of fulcio-compat §3.4 end to end.
 *
 * One `fulcrum serve --ca ephemeralca --ct-log-url ""` whose YAML config has one issuer per
 * type, each backed by its own dev issuer process (so each has its own URL, keys and logs):
 * email, email with IssuerClaim (Dex), spiffe, github-workflow, gitlab-pipeline, buildkite-job,
 * kubernetes, uri, username, codefresh-workflow, chainguard-identity, and ci-provider twice
 * (GitHub and GitLab metadata copied from tests/fixtures/fulcio-public-config.yaml).
 *
 * For each: tokens shaped like the real provider's, a P-256 key with a proof of possession over
 * the type's challenge (§2.1) and the same through a CSR; the issued leaf is checked field by
 * field: the SAN (type, criticality, exact DER, otherName for username), each Fulcio extension
 * 1.3.6.1.4.1.57264.1.1-.24 present exactly when expected with exact DER (.1-.6 raw bytes,
 * .8+ UTF8String), and the extension order. Negative cases: PoP over the wrong challenge, every
 * required claim missing, bad SPIFFE IDs, usernames and URIs, ci-provider templates that need a
 * missing claim. And GET /api/v2/configuration lists every issuer with its challenge claim.
 *
 * Loopback issuers: every type works with an http://127.0.0.1:<port> issuer. `uri` needs a
 * SubjectDomain with the issuer's scheme whose hostname equals the issuer's or shares its last
 * two labels: the issuer URL itself (hostname 127.0.0.1) is used, and subjects are
 * http://127.0.0.1:<port>/users/<name>. `username` needs a scheme-less SubjectDomain under the
 * same rule: "127.0.0.1" (a port would be part of the compared hostname and fail).
 */
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "integration/harness.h"
#include "unit/check.h"

#define MSG_TOKEN "There was an error processing the identity token"
#define MSG_SIG "The signature supplied in the request could not be verified"
#define OID_PREFIX "1.3.6.1.4.1.57264.1."

/* ---- the issuers ------------------------------------------------------------------------ */

enum {
    I_EMAIL,
    I_DEX,
    I_SPIFFE,
    I_GITHUB,
    I_GITLAB,
    I_BUILDKITE,
    I_K8S,
    I_URI,
    I_USERNAME,
    I_CODEFRESH,
    I_CHAINGUARD,
    I_CI_GITHUB,
    I_CI_GITLAB,
    N_ISSUERS
};

static const struct {
    const char *name;      /* dev issuer process name */
    const char *type;      /* Type in the config */
    const char *challenge; /* challengeClaim /api/v2/configuration must report */
} g_def[N_ISSUERS] = {
    [I_EMAIL] = {"iss-email", "email", "email"},
    [I_DEX] = {"iss-dex", "email", "email"},
    [I_SPIFFE] = {"iss-spiffe", "spiffe", "sub"},
    [I_GITHUB] = {"iss-github", "github-workflow", "sub"},
    [I_GITLAB] = {"iss-gitlab", "gitlab-pipeline", "sub"},
    [I_BUILDKITE] = {"iss-buildkite", "buildkite-job", "sub"},
    [I_K8S] = {"iss-k8s", "kubernetes", "sub"},
    [I_URI] = {"iss-uri", "uri", "sub"},
    [I_USERNAME] = {"iss-username", "username", "sub"},
    [I_CODEFRESH] = {"iss-codefresh", "codefresh-workflow", "sub"},
    [I_CHAINGUARD] = {"iss-chainguard", "chainguard-identity", "sub"},
    [I_CI_GITHUB] = {"iss-ci-github", "ci-provider", "sub"},
    [I_CI_GITLAB] = {"iss-ci-gitlab", "ci-provider", "sub"},
};

static h_issuer g_iss[N_ISSUERS];
static h_server g_srv;
static STACK_OF(X509) *g_bundle;
static X509 *g_root;

/* CIIssuerMetadata for github-workflow and gitlab-pipeline, as in
 * tests/fixtures/fulcio-public-config.yaml (comments dropped, templates byte for byte). */
static const char CI_METADATA_YAML[] =
    "ci-issuer-metadata:\n"
    "  github-workflow:\n"
    "    default-template-values:\n"
    "      url: \"https://github.com\"\n"
    "      environment: \"\"\n"
    "    extension-templates:\n"
    "      github-workflow-trigger: \"event_name\"\n"
    "      github-workflow-sha: \"sha\"\n"
    "      github-workflow-name: \"workflow\"\n"
    "      github-workflow-repository: \"repository\"\n"
    "      github-workflow-ref: \"ref\"\n"
    "      build-signer-uri: \"{{ .url }}/{{ .job_workflow_ref }}\"\n"
    "      build-signer-digest: \"job_workflow_sha\"\n"
    "      runner-environment: \"runner_environment\"\n"
    "      source-repository-uri: \"{{ .url }}/{{ .repository }}\"\n"
    "      source-repository-digest: \"sha\"\n"
    "      source-repository-ref: \"ref\"\n"
    "      source-repository-identifier: \"repository_id\"\n"
    "      source-repository-owner-uri: \"{{ .url }}/{{ .repository_owner }}\"\n"
    "      source-repository-owner-identifier: \"repository_owner_id\"\n"
    "      build-config-uri: \"{{ .url }}/{{ .workflow_ref }}\"\n"
    "      build-config-digest: \"workflow_sha\"\n"
    "      build-trigger: \"event_name\"\n"
    "      run-invocation-uri: \"{{ .url }}/{{ .repository }}/actions/runs/{{ .run_id }}/attempts/"
    "{{ .run_attempt }}\"\n"
    "      source-repository-visibility-at-signing: \"repository_visibility\"\n"
    "      deployment-environment: \"environment\"\n"
    "    subject-alternative-name-template: \"{{ .url }}/{{ .job_workflow_ref }}\"\n"
    "  gitlab-pipeline:\n"
    "    default-template-values:\n"
    "      url: \"https://gitlab.com\"\n"
    "      environment: \"\"\n"
    "    extension-templates:\n"
    "      build-signer-uri: \"https://{{ .ci_config_ref_uri }}\"\n"
    "      build-signer-digest: \"ci_config_sha\"\n"
    "      runner-environment: \"runner_environment\"\n"
    "      source-repository-uri: \"{{ .url }}/{{ .project_path }}\"\n"
    "      source-repository-digest: \"sha\"\n"
    "      source-repository-ref: refs/{{if eq .ref_type \"branch\"}}heads/{{ else }}tags/{{end}}"
    "{{ .ref }}\n"
    "      source-repository-identifier: \"project_id\"\n"
    "      source-repository-owner-uri: \"{{ .url }}/{{ .namespace_path }}\"\n"
    "      source-repository-owner-identifier: \"namespace_id\"\n"
    "      build-config-uri: \"https://{{ .ci_config_ref_uri }}\"\n"
    "      build-config-digest: \"ci_config_sha\"\n"
    "      build-trigger: \"pipeline_source\"\n"
    "      run-invocation-uri: \"{{ .url }}/{{ .project_path }}/-/jobs/{{ .job_id }}\"\n"
    "      source-repository-visibility-at-signing: \"project_visibility\"\n"
    "      deployment-environment: \"environment\"\n"
    "    subject-alternative-name-template: \"https://{{ .ci_config_ref_uri }}\"\n";

/* ---- small string helpers --------------------------------------------------------------- */

typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p)
            return;
        b->s = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* t with every "{ISS}" replaced by `iss` and every ' by " (claims are written with single
 * quotes below for readability; no value contains one). NULL in, NULL out. malloc'd. */
static char *subst(const char *t, const char *iss)
{
    if (!t)
        return NULL;
    sbuf b = {0};
    sb_printf(&b, "%s", "");
    for (const char *p = t; *p;) {
        if (strncmp(p, "{ISS}", 5) == 0) {
            sb_printf(&b, "%s", iss);
            p += 5;
        } else {
            sb_printf(&b, "%c", *p == '\'' ? '"' : *p);
            p++;
        }
    }
    return b.s;
}

static char *dump(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* ---- DER -------------------------------------------------------------------------------- */

typedef struct dbuf {
    unsigned char b[2048];
    size_t n;
} dbuf;

/* Appends tag, DER length, content. */
static void der_put(dbuf *d, unsigned char tag, const void *content, size_t len)
{
    if (d->n + len + 6 > sizeof d->b)
        return;
    d->b[d->n++] = tag;
    if (len < 128) {
        d->b[d->n++] = (unsigned char)len;
    } else if (len < 256) {
        d->b[d->n++] = 0x81;
        d->b[d->n++] = (unsigned char)len;
    } else {
        d->b[d->n++] = 0x82;
        d->b[d->n++] = (unsigned char)(len >> 8);
        d->b[d->n++] = (unsigned char)len;
    }
    memcpy(d->b + d->n, content, len);
    d->n += len;
}

/* extnValue of subjectAltName with one name: rfc822Name [1], URI [6] (IA5String contents), or
 * otherName [0] {type-id 1.3.6.1.4.1.57264.1.7, [0] EXPLICIT UTF8String}. */
static void san_der(unsigned char tag, const char *value, dbuf *out)
{
    dbuf name = {0};
    if (tag == 0xa0) {
        static const unsigned char oid[] = {0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01,
                                            0x83, 0xbf, 0x30, 0x01, 0x07};
        dbuf utf8 = {0}, inner = {0};
        der_put(&utf8, 0x0c, value, strlen(value));
        memcpy(inner.b, oid, sizeof oid);
        inner.n = sizeof oid;
        der_put(&inner, 0xa0, utf8.b, utf8.n);
        der_put(&name, 0xa0, inner.b, inner.n);
    } else {
        der_put(&name, tag, value, strlen(value));
    }
    out->n = 0;
    der_put(out, 0x30, name.b, name.n);
}

static void hex(const unsigned char *p, size_t n, char *out, size_t outlen)
{
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && k + 3 < outlen; i++)
        k += (size_t)snprintf(out + k, outlen - k, "%02x", p[i]);
}

/* ---- the cases -------------------------------------------------------------------------- */

enum wrong_pop {
    W_ADD_EMAIL, /* token also carries a verified email; sign the email (clients' mistake) */
    W_SUB,       /* the challenge is an email: sign sub instead */
    W_SAN,       /* sign the SAN value instead of sub */
};

typedef struct tcase {
    const char *label;
    int iss;
    const char *sub;    /* {ISS} is replaced by the issuer URL */
    const char *email;  /* NULL: the token has no email / email_verified claims */
    const char *claims; /* JSON object ('-quoted) merged over the payload, or NULL */
    const char *patch;  /* JSON object merged over `claims`, or NULL */
    const char *drop;   /* comma list of claims removed from `claims`, or NULL */
    const char *aud;    /* JSON aud value, or NULL for "sigstore" */
    const char *alg;    /* NULL = RS256 */
    /* expectations */
    const char *challenge;  /* what the PoP signs */
    unsigned char san_tag;  /* 0x81 rfc822Name, 0x86 URI, 0xa0 otherName */
    const char *san;        /* {ISS} replaced */
    const char *issuer_ext; /* .1/.8 value; NULL = the issuer URL */
    const char *ext[25];    /* .2-.6 and .9-.23; .1, .8 and .24 (= sub) are added */
    enum wrong_pop wrong;
} tcase;

#define GH_SHA "e5b1f2b9c0e44d1a7f3e6c8b2a9d0f1e3c5b7a91"
#define GH_JOB_SHA "a9c8b7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0"
#define GH_WF_SHA "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
#define GH_JOB_REF "octo-org/octo-automation/.github/workflows/oidc.yml@refs/heads/main"
#define GH_WF_REF "octo-org/octo-repo/.github/workflows/example-workflow.yml@refs/heads/main"

/* A GitHub Actions ID token's claims (docs.github.com "About security hardening with OpenID
 * Connect"), all strings as GitHub sends them. */
#define GH_CLAIMS                                                                               \
    "{'jti':'example-id','ref':'refs/heads/main','sha':'" GH_SHA "',"                           \
    "'repository':'octo-org/octo-repo','repository_owner':'octo-org',"                         \
    "'repository_owner_id':'65','run_id':'9876543210','run_number':'10','run_attempt':'2',"    \
    "'repository_visibility':'private','repository_id':'74','actor_id':'12',"                  \
    "'actor':'octocat','workflow':'example-workflow','head_ref':'','base_ref':'',"             \
    "'event_name':'workflow_dispatch','ref_protected':'true','ref_type':'branch',"             \
    "'workflow_ref':'" GH_WF_REF "','workflow_sha':'" GH_WF_SHA "',"                            \
    "'job_workflow_ref':'" GH_JOB_REF "','job_workflow_sha':'" GH_JOB_SHA "',"                  \
    "'runner_environment':'github-hosted','enterprise':'octo-inc'}"

#define GH_EXTS                                                                                 \
    [2] = "workflow_dispatch", [3] = GH_SHA, [4] = "example-workflow",                          \
    [5] = "octo-org/octo-repo", [6] = "refs/heads/main",                                        \
    [9] = "https://github.com/" GH_JOB_REF, [10] = GH_JOB_SHA, [11] = "github-hosted",           \
    [12] = "https://github.com/octo-org/octo-repo", [13] = GH_SHA, [14] = "refs/heads/main",    \
    [15] = "74", [16] = "https://github.com/octo-org", [17] = "65",                             \
    [18] = "https://github.com/" GH_WF_REF, [19] = GH_WF_SHA, [20] = "workflow_dispatch",        \
    [21] = "https://github.com/octo-org/octo-repo/actions/runs/9876543210/attempts/2",          \
    [22] = "private"

#define GL_SHA "714a629c0b401fdce83e847fc9589983fc6f46bc"
#define GL_CFG_SHA "2f3e4d5c6b7a8998a7b6c5d4e3f2a1b0c9d8e7f6"
#define GL_CFG_MAIN "gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main"
#define GL_CFG_TAG "gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/tags/v1.2.0"

/* A GitLab CI id_token's claims (docs.gitlab.com "OpenID Connect (OIDC) Authentication Using ID
 * Tokens"): ids as strings, runner_id a number. */
#define GL_CLAIMS                                                                               \
    "{'namespace_id':'72','namespace_path':'my-group','project_id':'20',"                      \
    "'project_path':'my-group/my-project','user_id':'1','user_login':'sample-user',"           \
    "'user_email':'sample-user@example.com','user_access_level':'developer',"                  \
    "'pipeline_id':'574','pipeline_source':'push','job_id':'302','ref':'main',"                \
    "'ref_type':'branch','ref_path':'refs/heads/main','ref_protected':'true','runner_id':1,"   \
    "'runner_environment':'gitlab-hosted','sha':'" GL_SHA "','project_visibility':'public',"  \
    "'ci_config_ref_uri':'" GL_CFG_MAIN "','ci_config_sha':'" GL_CFG_SHA "',"                   \
    "'jti':'235b3a54-b797-45c7-ae9a-f72d7bc6ef5b'}"
#define GL_TAG_PATCH                                                                            \
    "{'ref':'v1.2.0','ref_type':'tag','ref_path':'refs/tags/v1.2.0',"                          \
    "'ci_config_ref_uri':'" GL_CFG_TAG "','environment':'production'}"
#define GL_SUB_MAIN "project_path:my-group/my-project:ref_type:branch:ref:main"
#define GL_SUB_TAG "project_path:my-group/my-project:ref_type:tag:ref:v1.2.0"

#define GL_EXTS_COMMON                                                                          \
    [10] = GL_CFG_SHA, [11] = "gitlab-hosted", [12] = "https://gitlab.com/my-group/my-project", \
    [13] = GL_SHA, [15] = "20", [16] = "https://gitlab.com/my-group", [17] = "72",              \
    [19] = GL_CFG_SHA, [20] = "push",                                                           \
    [21] = "https://gitlab.com/my-group/my-project/-/jobs/302", [22] = "public"

#define BK_SUB                                                                                  \
    "organization:acme-inc:pipeline:super-duper-app:ref:refs/heads/main:commit:"               \
    "9f3182061f1e2cca4702c368cbc039b7dc9d4485:step:build"
#define BK_CLAIMS                                                                               \
    "{'organization_slug':'acme-inc','pipeline_slug':'super-duper-app','build_number':1,"      \
    "'build_branch':'main','build_commit':'9f3182061f1e2cca4702c368cbc039b7dc9d4485',"         \
    "'build_source':'ui','step_key':'build','job_id':'0184990a-477b-4fa8-9968-496074483cee',"  \
    "'agent_id':'0184990a-4782-42b5-afc1-16715b10b8ff','runner_environment':'buildkite-hosted'}"

#define K8S_CLAIMS                                                                              \
    "{'kubernetes.io':{'namespace':'build-system','pod':{'name':'signer-7d9f8b6c5-x2x4z',"     \
    "'uid':'49ad3572-b3dd-43a6-8d77-5858d3660275'},'serviceaccount':{'name':'cosign-signer',"  \
    "'uid':'f5720c1d-e152-4356-a897-11b07aff165d'}}}"

#define CF_SUB                                                                                  \
    "account:628a80b693a15c0f9c13ab75:pipeline:65e5a53e52853dc51a5b0cc1:initiator:"            \
    "codefresh-user:scm_repo_url:https://github.com/codefresh-user/oidc-test:scm_user_name:"   \
    "codefresh-user:scm_ref:main:scm_pull_request_target_branch:"
#define CF_CLAIMS                                                                               \
    "{'account_id':'628a80b693a15c0f9c13ab75','account_name':'codefresh-account',"             \
    "'pipeline_id':'65e5a53e52853dc51a5b0cc1','pipeline_name':'oidc-test/get-token',"          \
    "'workflow_id':'65e6d5551e6b7f8f5a1c9f5d','initiator':'codefresh-user',"                   \
    "'scm_user_name':'codefresh-user','scm_repo_url':'https://github.com/codefresh-user/"      \
    "oidc-test','scm_ref':'main','runner_environment':'hybrid'}"
#define CF_BUILD "/build/65e6d5551e6b7f8f5a1c9f5d"
#define CF_PATH "/codefresh-account/oidc-test/get-token:628a80b693a15c0f9c13ab75/65e5a53e52853dc51a5b0cc1"

#define CG_GROUP "ce83e2de7d8e52bd89b4d6bbf8d6d7ad4e1c3e44"
#define CG_CLAIMS                                                                               \
    "{'act':{'aud':'https://issuer.enforce.dev','iss':'https://token.actions.githubusercontent.com'," \
    "'sub':'repo:chainguard-dev/mono:ref:refs/heads/main'}}"

enum {
    C_EMAIL,
    C_DEX,
    C_SPIFFE,
    C_GITHUB,
    C_GITLAB,
    C_GITLAB_TAG,
    C_BUILDKITE,
    C_K8S,
    C_K8S_NO_CLAIM,
    C_URI,
    C_USERNAME,
    C_CODEFRESH,
    C_CODEFRESH_ONPREM,
    C_CHAINGUARD,
    C_CHAINGUARD_EMAIL,
    C_CI_GITHUB,
    C_CI_GITHUB_NUMERIC,
    C_CI_GITLAB,
    C_CI_GITLAB_TAG,
    N_CASES
};

static const tcase g_cases[N_CASES] = {
    [C_EMAIL] = {.label = "email (Google-shaped)",
                 .iss = I_EMAIL,
                 .sub = "110169484474386276334",
                 .email = "alice@example.com",
                 .claims = "{'azp':'sigstore','at_hash':'ZqWgRpsmIW3hv2yXUR1ywA'}",
                 .challenge = "alice@example.com",
                 .san_tag = 0x81,
                 .san = "alice@example.com",
                 .wrong = W_SUB},
    [C_DEX] = {.label = "email with IssuerClaim (Dex-shaped)",
               .iss = I_DEX,
               .sub = "CgYxMjM0NTYSJmh0dHBzOi8vZ2l0aHViLmNvbS9sb2dpbi9vYXV0aA",
               .email = "octocat@example.com",
               .claims = "{'federated_claims':{'connector_id':'https://github.com/login/oauth',"
                         "'user_id':'123456'},'at_hash':'0C0gA4Pa6xMFv5pKqVvPGg'}",
               .challenge = "octocat@example.com",
               .san_tag = 0x81,
               .san = "octocat@example.com",
               .issuer_ext = "https://github.com/login/oauth",
               .wrong = W_SUB},
    [C_SPIFFE] = {.label = "spiffe (JWT-SVID)",
                  .iss = I_SPIFFE,
                  .sub = "spiffe://example.org/ns/prod/sa/builder",
                  .alg = "ES256",
                  .challenge = "spiffe://example.org/ns/prod/sa/builder",
                  .san_tag = 0x86,
                  .san = "spiffe://example.org/ns/prod/sa/builder",
                  .wrong = W_ADD_EMAIL},
    [C_GITHUB] = {.label = "github-workflow (legacy)",
                  .iss = I_GITHUB,
                  .sub = "repo:octo-org/octo-repo:ref:refs/heads/main",
                  .claims = GH_CLAIMS,
                  .challenge = "repo:octo-org/octo-repo:ref:refs/heads/main",
                  .san_tag = 0x86,
                  .san = "https://github.com/" GH_JOB_REF,
                  .ext = {GH_EXTS},
                  .wrong = W_ADD_EMAIL},
    [C_GITLAB] = {.label = "gitlab-pipeline (legacy)",
                  .iss = I_GITLAB,
                  .sub = GL_SUB_MAIN,
                  .claims = GL_CLAIMS,
                  .challenge = GL_SUB_MAIN,
                  .san_tag = 0x86,
                  .san = "https://" GL_CFG_MAIN,
                  .ext = {GL_EXTS_COMMON, [9] = "https://" GL_CFG_MAIN,
                          [14] = "refs/heads/main", [18] = "https://" GL_CFG_MAIN},
                  .wrong = W_ADD_EMAIL},
    [C_GITLAB_TAG] = {.label = "gitlab-pipeline (legacy), tag pipeline",
                      .iss = I_GITLAB,
                      .sub = GL_SUB_TAG,
                      .claims = GL_CLAIMS,
                      .patch = GL_TAG_PATCH,
                      .challenge = GL_SUB_TAG,
                      .san_tag = 0x86,
                      .san = "https://" GL_CFG_TAG,
                      .ext = {GL_EXTS_COMMON, [9] = "https://" GL_CFG_TAG,
                              [14] = "refs/tags/v1.2.0", [18] = "https://" GL_CFG_TAG},
                      .wrong = W_ADD_EMAIL},
    [C_BUILDKITE] = {.label = "buildkite-job (legacy)",
                     .iss = I_BUILDKITE,
                     .sub = BK_SUB,
                     .claims = BK_CLAIMS,
                     .challenge = BK_SUB,
                     .san_tag = 0x86,
                     .san = "https://buildkite.com/acme-inc/super-duper-app",
                     .wrong = W_ADD_EMAIL},
    [C_K8S] = {.label = "kubernetes (service account token)",
               .iss = I_K8S,
               .sub = "system:serviceaccount:build-system:cosign-signer",
               .claims = K8S_CLAIMS,
               .aud = "['sigstore']",
               .challenge = "system:serviceaccount:build-system:cosign-signer",
               .san_tag = 0x86,
               .san = "https://kubernetes.io/namespaces/build-system/serviceaccounts/cosign-signer",
               .wrong = W_ADD_EMAIL},
    [C_K8S_NO_CLAIM] = {.label = "kubernetes without kubernetes.io (empty parts kept, §3.4)",
                        .iss = I_K8S,
                        .sub = "system:serviceaccount:build-system:cosign-signer",
                        .aud = "['sigstore']",
                        .challenge = "system:serviceaccount:build-system:cosign-signer",
                        .san_tag = 0x86,
                        .san = "https://kubernetes.io/namespaces//serviceaccounts/",
                        .wrong = W_ADD_EMAIL},
    [C_URI] = {.label = "uri",
               .iss = I_URI,
               .sub = "{ISS}/users/alice",
               .challenge = "{ISS}/users/alice",
               .san_tag = 0x86,
               .san = "{ISS}/users/alice",
               .wrong = W_ADD_EMAIL},
    [C_USERNAME] = {.label = "username",
                    .iss = I_USERNAME,
                    .sub = "alice",
                    .challenge = "alice",
                    .san_tag = 0xa0,
                    .san = "alice!127.0.0.1",
                    .wrong = W_ADD_EMAIL},
    [C_CODEFRESH] = {.label = "codefresh-workflow (legacy)",
                     .iss = I_CODEFRESH,
                     .sub = CF_SUB,
                     .claims = CF_CLAIMS,
                     .challenge = CF_SUB,
                     .san_tag = 0x86,
                     .san = "https://g.codefresh.io" CF_PATH,
                     .ext = {[9] = "https://g.codefresh.io" CF_BUILD, [11] = "hybrid",
                             [12] = "https://github.com/codefresh-user/oidc-test",
                             [14] = "main", [18] = "https://g.codefresh.io" CF_BUILD,
                             [21] = "https://g.codefresh.io" CF_BUILD},
                     .wrong = W_ADD_EMAIL},
    [C_CODEFRESH_ONPREM] = {.label = "codefresh-workflow, platform_url, manual trigger",
                            .iss = I_CODEFRESH,
                            .sub = "account:628a80b693a15c0f9c13ab75:pipeline:"
                                   "65e5a53e52853dc51a5b0cc1:initiator:codefresh-user",
                            .claims = CF_CLAIMS,
                            .patch = "{'platform_url':'https://codefresh.example.com'}",
                            .drop = "scm_user_name,scm_repo_url,scm_ref,runner_environment",
                            .challenge = "account:628a80b693a15c0f9c13ab75:pipeline:"
                                         "65e5a53e52853dc51a5b0cc1:initiator:codefresh-user",
                            .san_tag = 0x86,
                            .san = "https://codefresh.example.com" CF_PATH,
                            .ext = {[9] = "https://codefresh.example.com" CF_BUILD,
                                    [18] = "https://codefresh.example.com" CF_BUILD,
                                    [21] = "https://codefresh.example.com" CF_BUILD},
                            .wrong = W_ADD_EMAIL},
    [C_CHAINGUARD] = {.label = "chainguard-identity (workload)",
                      .iss = I_CHAINGUARD,
                      .sub = CG_GROUP "/5b4b4c3c4e9c6f87",
                      .claims = CG_CLAIMS,
                      .alg = "ES256",
                      .challenge = CG_GROUP "/5b4b4c3c4e9c6f87",
                      .san_tag = 0x86,
                      .san = "{ISS}/" CG_GROUP "/5b4b4c3c4e9c6f87",
                      .wrong = W_SAN},
    [C_CHAINGUARD_EMAIL] = {.label = "chainguard-identity (human, verified email)",
                            .iss = I_CHAINGUARD,
                            .sub = CG_GROUP "/0f1e2d3c4b5a6978",
                            .email = "dev@chainguard.example",
                            .challenge = "dev@chainguard.example",
                            .san_tag = 0x86,
                            .san = "{ISS}/" CG_GROUP "/0f1e2d3c4b5a6978",
                            .wrong = W_SUB},
    [C_CI_GITHUB] = {.label = "ci-provider github-workflow",
                     .iss = I_CI_GITHUB,
                     .sub = "repo:octo-org/octo-repo:environment:prod",
                     .claims = GH_CLAIMS,
                     .patch = "{'environment':'prod'}",
                     .challenge = "repo:octo-org/octo-repo:environment:prod",
                     .san_tag = 0x86,
                     .san = "https://github.com/" GH_JOB_REF,
                     .ext = {GH_EXTS, [23] = "prod"},
                     .wrong = W_ADD_EMAIL},
    [C_CI_GITHUB_NUMERIC] = {.label = "ci-provider github-workflow, no environment, numeric "
                                      "run_id",
                             .iss = I_CI_GITHUB,
                             .sub = "repo:octo-org/octo-repo:ref:refs/heads/main",
                             .claims = GH_CLAIMS,
                             .patch = "{'run_id':9876543210}",
                             .challenge = "repo:octo-org/octo-repo:ref:refs/heads/main",
                             .san_tag = 0x86,
                             .san = "https://github.com/" GH_JOB_REF,
                             .ext = {GH_EXTS},
                             .wrong = W_ADD_EMAIL},
    [C_CI_GITLAB] = {.label = "ci-provider gitlab-pipeline",
                     .iss = I_CI_GITLAB,
                     .sub = GL_SUB_MAIN,
                     .claims = GL_CLAIMS,
                     .challenge = GL_SUB_MAIN,
                     .san_tag = 0x86,
                     .san = "https://" GL_CFG_MAIN,
                     .ext = {GL_EXTS_COMMON, [9] = "https://" GL_CFG_MAIN,
                             [14] = "refs/heads/main", [18] = "https://" GL_CFG_MAIN},
                     .wrong = W_ADD_EMAIL},
    [C_CI_GITLAB_TAG] = {.label = "ci-provider gitlab-pipeline, tag, environment",
                         .iss = I_CI_GITLAB,
                         .sub = GL_SUB_TAG,
                         .claims = GL_CLAIMS,
                         .patch = GL_TAG_PATCH,
                         .challenge = GL_SUB_TAG,
                         .san_tag = 0x86,
                         .san = "https://" GL_CFG_TAG,
                         .ext = {GL_EXTS_COMMON, [9] = "https://" GL_CFG_TAG,
                                 [14] = "refs/tags/v1.2.0", [18] = "https://" GL_CFG_TAG,
                                 [23] = "production"},
                         .wrong = W_ADD_EMAIL},
};

/* ---- token minting and requests ---------------------------------------------------------- */

/* Mints the case's token, with optional changes: extra_drop (comma list) removed from the
 * claims, extra_patch (JSON, '-quoted) merged over them, sub_override in place of the sub,
 * add_email: a verified email claim is added. */
static char *mint(const tcase *c, const char *extra_drop, const char *extra_patch,
                  const char *sub_override, const char *add_email)
{
    const char *url = g_iss[c->iss].url;
    json_t *claims = json_object();
    const char *texts[2] = {c->claims, c->patch};
    for (int i = 0; i < 2; i++) {
        char *t = subst(texts[i], url);
        if (!t)
            continue;
        json_error_t err;
        json_t *j = json_loads(t, 0, &err);
        CHECK(j != NULL, "%s: claims JSON parses (%s): %s", c->label, err.text, t);
        json_object_update(claims, j);
        json_decref(j);
        free(t);
    }
    char *p = extra_patch ? subst(extra_patch, url) : NULL;
    if (p) {
        json_t *j = json_loads(p, 0, NULL);
        CHECK(j != NULL, "%s: patch JSON parses: %s", c->label, p);
        json_object_update(claims, j);
        json_decref(j);
        free(p);
    }
    const char *drops[2] = {c->drop, extra_drop};
    for (int i = 0; i < 2; i++) {
        if (!drops[i])
            continue;
        char *list = strdup(drops[i]), *save = NULL;
        for (char *k = strtok_r(list, ",", &save); k; k = strtok_r(NULL, ",", &save))
            json_object_del(claims, k);
        free(list);
    }
    char *sub = subst(sub_override ? sub_override : c->sub, url);
    json_t *req = json_pack("{s:s,s:o}", "sub", sub, "claims", claims);
    const char *email = add_email ? add_email : c->email;
    /* dropped claims are also omitted from the standard payload (email, sub, ...) */
    sbuf omit = {0};
    sb_printf(&omit, "%s%s%s%s%s", email ? "" : "email,email_verified,", c->drop ? c->drop : "",
              c->drop ? "," : "", extra_drop ? extra_drop : "", extra_drop ? "," : "");
    if (omit.s && omit.len > 0)
        omit.s[omit.len - 1] = '\0'; /* the trailing comma */
    if (email)
        json_object_set_new(req, "email", json_string(email));
    if (omit.s && *omit.s)
        json_object_set_new(req, "omit", json_string(omit.s));
    free(omit.s);
    if (c->aud) {
        char *a = subst(c->aud, url);
        json_object_set_new(req, "aud", json_loads(a, 0, NULL));
        free(a);
    }
    if (c->alg)
        json_object_set_new(req, "alg", json_string(c->alg));
    char *body = dump(req);
    char *tok = body ? h_issuer_token_json(&g_iss[c->iss], body) : NULL;
    CHECK(tok != NULL, "%s: dev issuer %s minted a token", c->label, g_def[c->iss].name);
    free(body);
    free(sub);
    return tok;
}

static char *key_body(const char *token, EVP_PKEY *key, const char *challenge)
{
    char *pem = h_key_spki_pem(key);
    size_t sig_len = 0;
    unsigned char *sig = h_sign_pop(key, challenge, &sig_len);
    char *b64 = sig ? h_b64(sig, sig_len, 0) : NULL;
    char *out = NULL;
    if (pem && b64)
        out = dump(json_pack("{s:{s:s},s:{s:{s:s,s:s},s:s}}", "credentials",
                             "oidcIdentityToken", token, "publicKeyRequest", "publicKey",
                             "algorithm", "ECDSA", "content", pem, "proofOfPossession", b64));
    free(pem);
    free(sig);
    free(b64);
    return out;
}

static char *csr_body(const char *token, EVP_PKEY *key)
{
    char *csr = h_csr_pem(key, key, NULL);
    char *b64 = csr ? h_b64(csr, strlen(csr), 0) : NULL;
    char *out = b64 ? dump(json_pack("{s:{s:s},s:s}", "credentials", "oidcIdentityToken", token,
                                     "certificateSigningRequest", b64))
                    : NULL;
    free(csr);
    free(b64);
    return out;
}

static void post_sign(const char *body, h_response *r)
{
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", g_srv.url);
    if (!body) {
        memset(r, 0, sizeof *r);
        return;
    }
    h_post_json(url, body, NULL, r);
}

/* ---- the leaf ---------------------------------------------------------------------------- */

static STACK_OF(X509) *chain_of(const char *what, const h_response *r)
{
    CHECK(r->status == 200, "%s: status %ld, want 200 (%.400s)", what, r->status,
          r->body ? r->body : "");
    if (r->status != 200)
        return NULL;
    json_t *j = h_json(r);
    json_t *certs = json_object_get(
        json_object_get(json_object_get(j, "signedCertificateDetachedSct"), "chain"),
        "certificates");
    STACK_OF(X509) *chain = h_chain_from_json(certs);
    CHECK(chain && sk_X509_num(chain) >= 2, "%s: detached chain of leaf + CA", what);
    json_decref(j);
    return chain;
}

static void check_leaf(const tcase *c, const char *what, STACK_OF(X509) *chain, EVP_PKEY *key)
{
    const char *url = g_iss[c->iss].url;
    X509 *leaf = sk_X509_value(chain, 0), *ca = sk_X509_value(chain, 1);
    CHECK(h_verify_chain(chain, g_root), "%s: leaf verifies to the trustBundle root", what);
    CHECK(EVP_PKEY_eq(X509_get0_pubkey(leaf), key) == 1, "%s: certified key = submitted key",
          what);
    CHECK(X509_get_extended_key_usage(leaf) == XKU_CODE_SIGN, "%s: EKU codeSigning", what);
    CHECK(X509_NAME_entry_count(X509_get_subject_name(leaf)) == 0, "%s: empty subject", what);

    /* expected Fulcio extensions */
    char *want[25] = {0};
    char *sub = subst(c->sub, url);
    for (int n = 2; n <= 23; n++)
        want[n] = subst(c->ext[n], url);
    want[1] = strdup(c->issuer_ext ? c->issuer_ext : url);
    want[8] = strdup(c->issuer_ext ? c->issuer_ext : url);
    want[24] = strdup(sub);

    /* order: KU, EKU, SKID, [AKID], SAN, then the Fulcio OIDs ascending */
    sbuf oids = {0};
    sb_printf(&oids, "2.5.29.15,2.5.29.37,2.5.29.14%s,2.5.29.17",
              X509_get0_subject_key_id(ca) ? ",2.5.29.35" : "");
    for (int n = 1; n <= 24; n++)
        if (want[n])
            sb_printf(&oids, "," OID_PREFIX "%d", n);
    char *got_oids = h_ext_oids(leaf);
    CHECK(got_oids && oids.s && strcmp(got_oids, oids.s) == 0,
          "%s: extensions in order\n   got  %s\n   want %s", what, got_oids ? got_oids : "",
          oids.s ? oids.s : "");
    free(got_oids);
    free(oids.s);

    /* SAN */
    char *san = subst(c->san, url);
    dbuf sd = {0};
    san_der(c->san_tag, san, &sd);
    size_t len = 0;
    int crit = -1;
    const unsigned char *v = h_ext_value(leaf, "2.5.29.17", &len, &crit);
    char gh[1024], wh[1024];
    hex(v, v ? len : 0, gh, sizeof gh);
    hex(sd.b, sd.n, wh, sizeof wh);
    CHECK(v && len == sd.n && memcmp(v, sd.b, len) == 0 && crit == 1,
          "%s: SAN critical=%d, one %s \"%s\"\n   got  %s\n   want %s", what, crit,
          c->san_tag == 0x81 ? "rfc822Name" : c->san_tag == 0x86 ? "URI" : "otherName", san, gh,
          wh);
    free(san);

    /* every Fulcio extension: present exactly when expected, exact DER, non-critical */
    for (int n = 1; n <= 24; n++) {
        char oid[64];
        snprintf(oid, sizeof oid, OID_PREFIX "%d", n);
        crit = -1;
        v = h_ext_value(leaf, oid, &len, &crit);
        if (!want[n]) {
            hex(v, v ? len : 0, gh, sizeof gh);
            CHECK(v == NULL, "%s: no extension .%d (got %s)", what, n, gh);
            continue;
        }
        dbuf e = {0};
        if (n <= 6) {
            size_t wl = strlen(want[n]);
            memcpy(e.b, want[n], wl < sizeof e.b ? wl : 0);
            e.n = wl < sizeof e.b ? wl : 0;
        } else {
            der_put(&e, 0x0c, want[n], strlen(want[n]));
        }
        hex(v, v ? len : 0, gh, sizeof gh);
        CHECK(v && len == e.n && memcmp(v, e.b, len) == 0 && crit == 0,
              "%s: extension .%d = %s\"%s\" (got %s%s)", what, n,
              n <= 6 ? "raw " : "UTF8String ", want[n], v ? "" : "nothing", v ? gh : "");
    }
    for (int n = 0; n <= 24; n++)
        free(want[n]);
    free(sub);
}

static void run_positive(const tcase *c, EVP_PKEY *key)
{
    char *tok = mint(c, NULL, NULL, NULL, NULL);
    if (!tok)
        return;
    char *challenge = subst(c->challenge, g_iss[c->iss].url);
    char what[256];
    for (int path = 0; path < 2; path++) {
        snprintf(what, sizeof what, "%s [%s]", c->label, path ? "CSR" : "PoP");
        char *body = path ? csr_body(tok, key) : key_body(tok, key, challenge);
        h_response r;
        post_sign(body, &r);
        STACK_OF(X509) *chain = chain_of(what, &r);
        if (chain)
            check_leaf(c, what, chain, key);
        sk_X509_pop_free(chain, X509_free);
        h_response_free(&r);
        free(body);
    }
    free(challenge);
    free(tok);
}

/* The message of a 400 {code:3} error, malloc'd, or NULL (with a failed check). */
static char *error_message(const char *what, const h_response *r)
{
    CHECK(h_is_error(r, 400, 3, NULL), "%s: 400 {code:3,message,details:[]} (got %ld %.300s)",
          what, r->status, r->body ? r->body : "");
    json_t *j = json_loadb(r->body ? r->body : "", r->body_len, 0, NULL);
    const char *m = json_string_value(json_object_get(j, "message"));
    char *out = m ? strdup(m) : NULL;
    json_decref(j);
    return out;
}

static void run_wrong_pop(const tcase *c, EVP_PKEY *key)
{
    const char *url = g_iss[c->iss].url;
    char *tok = mint(c, NULL, NULL, NULL, c->wrong == W_ADD_EMAIL ? "builder@example.com" : NULL);
    char *signed_text = c->wrong == W_ADD_EMAIL ? strdup("builder@example.com")
                        : c->wrong == W_SUB     ? subst(c->sub, url)
                                                : subst(c->san, url);
    char what[256];
    snprintf(what, sizeof what, "%s: PoP over \"%s\" instead of the challenge", c->label,
             signed_text);
    char *body = tok ? key_body(tok, key, signed_text) : NULL;
    h_response r;
    post_sign(body, &r);
    char *m = error_message(what, &r);
    CHECK(m && strncmp(m, MSG_SIG, strlen(MSG_SIG)) == 0, "%s: message \"%s\"", what,
          m ? m : "(none)");
    free(m);
    h_response_free(&r);
    free(body);
    free(signed_text);
    free(tok);
}

/* 1 if `word` occurs in m as a whole claim name (not inside a longer [a-z0-9_] name); a needle
 * with other characters only has to occur. */
static int names_word(const char *m, const char *word)
{
    size_t n = strlen(word);
    if (strspn(word, "abcdefghijklmnopqrstuvwxyz0123456789_") != n)
        return m && strstr(m, word);
    for (const char *p = m ? strstr(m, word) : NULL; p; p = strstr(p + 1, word)) {
        int before = p > m && (strchr("abcdefghijklmnopqrstuvwxyz0123456789_", p[-1]) != NULL);
        int after = p[n] && strchr("abcdefghijklmnopqrstuvwxyz0123456789_", p[n]) != NULL;
        if (!before && !after)
            return 1;
    }
    return 0;
}

/* A refused token: 400 code 3; token=1: the identity-token message, naming `needle`;
 * token=0: the raw validation text (§1.9 #9), naming `needle`. */
static void expect_refused(const tcase *c, const char *what, const char *tok, EVP_PKEY *key,
                           const char *challenge, int token, const char *needle)
{
    char *body = tok ? key_body(tok, key, challenge) : NULL;
    h_response r;
    post_sign(body, &r);
    char *m = error_message(what, &r);
    if (token)
        CHECK(m && strncmp(m, MSG_TOKEN, strlen(MSG_TOKEN)) == 0,
              "%s: identity-token message, got \"%s\"", what, m ? m : "(none)");
    else
        CHECK(m && strncmp(m, MSG_TOKEN, strlen(MSG_TOKEN)) != 0 &&
                  strncmp(m, MSG_SIG, strlen(MSG_SIG)) != 0,
              "%s: raw validation text (not a fixed message), got \"%s\"", what,
              m ? m : "(none)");
    if (needle)
        CHECK(m && names_word(m, needle), "%s: message names \"%s\": \"%s\"", what, needle,
              m ? m : "(none)");
    CHECK(!r.body || !strstr(r.body, "BEGIN CERTIFICATE"), "%s: no certificate", what);
    (void)c;
    free(m);
    h_response_free(&r);
    free(body);
}

/* Removes `claim` from case c's token and expects a refusal naming it. */
static void missing_claim(int ci, const char *claim, int token, EVP_PKEY *key)
{
    const tcase *c = &g_cases[ci];
    char what[256];
    snprintf(what, sizeof what, "%s: without %s", c->label, claim);
    char *tok = mint(c, claim, NULL, NULL, NULL);
    char *challenge = subst(c->challenge, g_iss[c->iss].url);
    expect_refused(c, what, tok, key, challenge, token, claim);
    free(challenge);
    free(tok);
}

/* Case c's token with a patch and/or another sub; PoP over that sub (or the case's challenge). */
static void bad_variant(int ci, const char *what_suffix, const char *patch, const char *sub,
                        const char *email, int token, const char *needle, EVP_PKEY *key)
{
    const tcase *c = &g_cases[ci];
    const char *url = g_iss[c->iss].url;
    char what[300];
    snprintf(what, sizeof what, "%s: %s", c->label, what_suffix);
    char *tok = mint(c, NULL, patch, sub, email);
    char *challenge = email ? strdup(email) : subst(sub ? sub : c->challenge, url);
    expect_refused(c, what, tok, key, challenge, token, needle);
    free(challenge);
    free(tok);
}

static void run_negatives(EVP_PKEY *key)
{
    /* required claims (§3.4, Fulcio's principals) */
    missing_claim(C_EMAIL, "email", 1, key);
    missing_claim(C_DEX, "federated_claims", 1, key);
    static const char *gh_required[] = {
        "job_workflow_ref", "sha",           "event_name",          "repository",
        "workflow",         "ref",           "job_workflow_sha",    "runner_environment",
        "repository_id",    "repository_owner", "repository_owner_id", "repository_visibility",
        "workflow_ref",     "workflow_sha",  "run_id",              "run_attempt"};
    for (size_t i = 0; i < sizeof gh_required / sizeof gh_required[0]; i++)
        missing_claim(C_GITHUB, gh_required[i], 1, key);
    static const char *gl_required[] = {
        "project_path", "pipeline_source", "pipeline_id",    "ci_config_ref_uri", "job_id",
        "ref",          "ref_type",        "namespace_path", "namespace_id",      "project_id",
        "sha",          "runner_environment", "runner_id"};
    for (size_t i = 0; i < sizeof gl_required / sizeof gl_required[0]; i++)
        missing_claim(C_GITLAB, gl_required[i], 1, key);
    missing_claim(C_BUILDKITE, "organization_slug", 1, key);
    missing_claim(C_BUILDKITE, "pipeline_slug", 1, key);
    missing_claim(C_CODEFRESH, "account_id", 1, key);
    missing_claim(C_CODEFRESH, "pipeline_id", 1, key);
    missing_claim(C_CODEFRESH, "workflow_id", 1, key);

    /* other claim rules */
    bad_variant(C_GITLAB, "runner_id 0", "{'runner_id':0}", NULL, NULL, 1, "runner_id", key);
    bad_variant(C_GITLAB, "ref_type merge_request", "{'ref_type':'merge_request'}", NULL, NULL, 1,
                "ref_type", key);
    bad_variant(C_SPIFFE, "SPIFFE ID of another trust domain", NULL,
                "spiffe://other.org/ns/prod/sa/builder", NULL, 1, "trust domain", key);
    bad_variant(C_SPIFFE, "sub that is not a SPIFFE ID", NULL, "https://example.org/ns/prod", NULL,
                1, NULL, key);
    bad_variant(C_SPIFFE, "trust domain only as a suffix", NULL,
                "spiffe://evil-example.org/ns/prod/sa/builder", NULL, 1, "trust domain", key);
    bad_variant(C_USERNAME, "username with '!'", NULL, "alice!evil.example", NULL, 1, "!", key);
    bad_variant(C_USERNAME, "username that is an email", NULL, "alice@example.com", NULL, 1, NULL,
                key);
    bad_variant(C_URI, "uri host mismatch", NULL, "http://127.0.0.2:8080/users/alice", NULL, 1,
                NULL, key);
    {
        /* same host and port, other scheme */
        const char *u = g_iss[I_URI].url; /* http://127.0.0.1:<port> */
        char s[128];
        snprintf(s, sizeof s, "https%.60s/users/alice", u + 4);
        bad_variant(C_URI, "uri scheme mismatch", NULL, s, NULL, 1, NULL, key);
        snprintf(s, sizeof s, "http://127.0.0.1.evil.example:%d/users/alice", g_iss[I_URI].port);
        bad_variant(C_URI, "uri host with the domain as a prefix", NULL, s, NULL, 1, NULL, key);
    }
    bad_variant(C_URI, "uri sub that is an email", NULL, "alice@example.com", NULL, 1, NULL, key);
    {
        /* chainguard: an email that is not verified refuses the token */
        char *tok = NULL;
        const tcase *c = &g_cases[C_CHAINGUARD_EMAIL];
        json_t *req = json_pack("{s:s,s:s,s:b}", "sub", CG_GROUP "/0f1e2d3c4b5a6978", "email",
                                "dev@chainguard.example", "email_verified", 0);
        char *body = dump(req);
        tok = body ? h_issuer_token_json(&g_iss[I_CHAINGUARD], body) : NULL;
        free(body);
        expect_refused(c, "chainguard-identity: email_verified false", tok, key,
                       "dev@chainguard.example", 1, NULL);
        free(tok);
    }

    /* ci-provider: a template needing a claim the token lacks is a 400 with the raw error
     * (§3.6, §1.9 #9) naming the claim */
    missing_claim(C_CI_GITHUB, "job_workflow_ref", 0, key); /* SAN template */
    missing_claim(C_CI_GITHUB, "sha", 0, key);              /* plain claim-name template */
    missing_claim(C_CI_GITHUB, "run_attempt", 0, key);      /* run-invocation-uri template */
    missing_claim(C_CI_GITLAB, "ref_type", 0, key);         /* {{if eq .ref_type "branch"}} */
    missing_claim(C_CI_GITLAB, "ci_config_ref_uri", 0, key);
}

/* ---- configuration ---------------------------------------------------------------------- */

static void check_configuration(void)
{
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/configuration", g_srv.url);
    h_response r;
    h_get(url, &r);
    CHECK(r.status == 200, "configuration: 200 (got %ld)", r.status);
    json_t *j = h_json(&r);
    json_t *issuers = json_object_get(j, "issuers");
    CHECK(json_object_size(j) == 1 && json_array_size(issuers) == N_ISSUERS,
          "configuration: {issuers:[%d entries]}, got %.300s", N_ISSUERS, r.body);
    for (int i = 0; i < N_ISSUERS; i++) {
        json_t *found = NULL, *e;
        size_t k;
        json_array_foreach(issuers, k, e) {
            const char *u = json_string_value(json_object_get(e, "issuerUrl"));
            if (u && strcmp(u, g_iss[i].url) == 0)
                found = e;
        }
        const char *sd = i == I_URI ? g_iss[I_URI].url : i == I_USERNAME ? "127.0.0.1" : "";
        json_t *want = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b}", "issuerUrl", g_iss[i].url,
                                 "audience", "sigstore", "challengeClaim", g_def[i].challenge,
                                 "spiffeTrustDomain", i == I_SPIFFE ? "example.org" : "",
                                 "issuerType", g_def[i].type, "subjectDomain", sd,
                                 "skipEmailVerification", 0);
        char *got = found ? json_dumps(found, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
        CHECK(found && json_equal(found, want), "configuration: %s entry\n   got  %s\n   want %s",
              g_def[i].name, got ? got : "(missing)", w ? w : "");
        free(got);
        free(w);
        json_decref(want);
    }
    json_decref(j);
    h_response_free(&r);
}

/* ---- set-up ------------------------------------------------------------------------------ */

static char *config_yaml(void)
{
    sbuf b = {0};
    sb_printf(&b, "oidc-issuers:\n");
    for (int i = 0; i < N_ISSUERS; i++) {
        const char *u = g_iss[i].url;
        sb_printf(&b, "  \"%s\":\n    issuer-url: \"%s\"\n    client-id: sigstore\n    type: %s\n",
                  u, u, g_def[i].type);
        if (i == I_DEX)
            sb_printf(&b, "    issuer-claim: $.federated_claims.connector_id\n");
        if (i == I_SPIFFE)
            sb_printf(&b, "    spiffe-trust-domain: example.org\n");
        if (i == I_URI)
            sb_printf(&b, "    subject-domain: \"%s\"\n", u);
        if (i == I_USERNAME)
            sb_printf(&b, "    subject-domain: 127.0.0.1\n");
        if (i == I_CI_GITHUB)
            sb_printf(&b, "    ci-provider: github-workflow\n");
        if (i == I_CI_GITLAB)
            sb_printf(&b, "    ci-provider: gitlab-pipeline\n");
    }
    sb_printf(&b, "%s", CI_METADATA_YAML);
    return b.s;
}

static int fetch_bundle(void)
{
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/trustBundle", g_srv.url);
    h_response r;
    h_get(url, &r);
    json_t *j = h_json(&r);
    g_bundle = h_chain_from_json(
        json_object_get(json_array_get(json_object_get(j, "chains"), 0), "certificates"));
    json_decref(j);
    h_response_free(&r);
    CHECK(g_bundle != NULL, "trustBundle parses");
    if (!g_bundle)
        return -1;
    g_root = sk_X509_value(g_bundle, sk_X509_num(g_bundle) - 1);
    return 0;
}

int main(void)
{
    if (h_init("identity-types") != 0)
        return 1;
    for (int i = 0; i < N_ISSUERS; i++) {
        if (h_issuer_start_named(&g_iss[i], g_def[i].name) != 0) {
            CHECK(0, "dev issuer %s starts", g_def[i].name);
            h_finish(1);
            CHECK_MAIN_END();
        }
    }
    char *yaml = config_yaml();
    h_server_opts opts = {.ca = "ephemeralca", .config_json = yaml};
    if (!yaml || h_server_start(&g_srv, &opts) != 0) {
        CHECK(0, "fulcrum serve starts with one issuer per type:\n%s", yaml ? yaml : "");
        free(yaml);
        h_finish(1);
        CHECK_MAIN_END();
    }
    free(yaml);

    check_configuration();
    EVP_PKEY *key = h_key_new("P-256");
    if (key && fetch_bundle() == 0) {
        for (int i = 0; i < N_CASES; i++)
            run_positive(&g_cases[i], key);
        for (int i = 0; i < N_CASES; i++)
            run_wrong_pop(&g_cases[i], key);
        run_negatives(key);
    }
    EVP_PKEY_free(key);
    sk_X509_pop_free(g_bundle, X509_free);

    int code = h_proc_stop(&g_srv.proc, 10000);
    CHECK(code == 0, "server exit status %d after SIGTERM, want 0", code);
    for (int i = 0; i < N_ISSUERS; i++) {
        code = h_proc_stop(&g_iss[i].proc, 5000);
        CHECK(code == 0, "dev issuer %s exit status %d, want 0", g_def[i].name, code);
    }
    h_finish(check_failed);
    CHECK_MAIN_END();
}
