/* The identity configuration: JSON and YAML decoding, validation messages, lookups, API JSON. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "config/config_internal.h"
#include "unit/check.h"

/* ---- helpers ---- */

static fulcrum_config *load(const char *text, const char *name, char *err, size_t errlen)
{
    err[0] = '\0';
    return config_load_buffer(text, strlen(text), name, err, errlen);
}

/* Runs the load with stderr sent to a temporary file; returns what was logged (malloc'd). */
static char *load_capturing(const char *text, const char *name, fulcrum_config **out, char *err,
                            size_t errlen)
{
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    if (saved < 0 || !tmp) {
        *out = NULL;
        return NULL;
    }
    dup2(fileno(tmp), 2);
    *out = load(text, name, err, errlen);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long n = ftell(tmp);
    char *buf = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
    rewind(tmp);
    if (buf && n > 0 && fread(buf, 1, (size_t)n, tmp) != (size_t)n)
        buf[0] = '\0';
    fclose(tmp);
    return buf;
}

/* A self-signed P-256 certificate as PEM (malloc'd). */
static char *make_cert_pem(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (key && x && bio) {
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                   (const unsigned char *)"Test IdP Root", -1, -1, 0);
        X509_set_issuer_name(x, X509_get_subject_name(x));
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, key);
        if (X509_sign(x, key, EVP_sha256()) && PEM_write_bio_X509(bio, x)) {
            char *data;
            long n = BIO_get_mem_data(bio, &data);
            out = strndup(data, (size_t)n);
        }
    }
    BIO_free(bio);
    X509_free(x);
    EVP_PKEY_free(key);
    return out;
}

/* The PEM text with each newline written as \n, for a JSON string. */
static char *json_escape_newlines(const char *s)
{
    char *out = malloc(strlen(s) * 2 + 1), *o = out;
    for (; out && *s; s++) {
        if (*s == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else {
            *o++ = *s;
        }
    }
    if (out)
        *o = '\0';
    return out;
}

/* The PEM text indented for a YAML literal block. */
static char *yaml_indent(const char *s, const char *indent)
{
    size_t il = strlen(indent);
    char *out = malloc(strlen(s) * (il + 1) + il + 1), *o = out;
    int bol = 1;
    for (; out && *s; s++) {
        if (bol) {
            memcpy(o, indent, il);
            o += il;
        }
        *o++ = *s;
        bol = *s == '\n';
    }
    if (out)
        *o = '\0';
    return out;
}

static int rules_equal(const issuer_config *a, const issuer_config *b)
{
    if (a->n_rules != b->n_rules)
        return 0;
    for (size_t i = 0; i < a->n_rules; i++) {
        const struct claim_rule *x = &a->rules[i], *y = &b->rules[i];
        if (strcmp(x->claim, y->claim) != 0 || x->op != y->op || x->n_path != y->n_path ||
            x->n_values != y->n_values)
            return 0;
        for (size_t k = 0; k < x->n_path; k++)
            if (strcmp(x->path[k], y->path[k]) != 0)
                return 0;
        for (size_t k = 0; k < x->n_values; k++)
            if (strcmp(x->values[k], y->values[k]) != 0)
                return 0;
    }
    return 1;
}

static int issuer_equal(const issuer_config *a, const issuer_config *b)
{
    const char *sa[] = {a->issuer_url, a->client_id, a->type_name, a->ci_provider,
                        a->issuer_claim, a->subject_domain, a->spiffe_trust_domain,
                        a->challenge_claim, a->description, a->contact, a->environment,
                        a->ca_cert_pem};
    const char *sb[] = {b->issuer_url, b->client_id, b->type_name, b->ci_provider,
                        b->issuer_claim, b->subject_domain, b->spiffe_trust_domain,
                        b->challenge_claim, b->description, b->contact, b->environment,
                        b->ca_cert_pem};
    for (size_t i = 0; i < sizeof sa / sizeof sa[0]; i++)
        if (!sa[i] || !sb[i] || strcmp(sa[i], sb[i]) != 0)
            return 0;
    return a->type == b->type && a->skip_email_verification == b->skip_email_verification &&
           a->is_meta == b->is_meta && rules_equal(a, b);
}

static int config_equal(const fulcrum_config *a, const fulcrum_config *b)
{
    if (a->n_issuers != b->n_issuers || a->n_meta != b->n_meta)
        return 0;
    for (size_t i = 0; i < a->n_issuers; i++)
        if (!issuer_equal(&a->issuers[i], &b->issuers[i]))
            return 0;
    for (size_t i = 0; i < a->n_meta; i++)
        if (!issuer_equal(&a->meta[i], &b->meta[i]))
            return 0;
    return json_equal(a->ci_issuer_metadata, b->ci_issuer_metadata);
}

static const char *ci_str(const fulcrum_config *cfg, const char *provider, const char *section,
                          const char *key)
{
    json_t *p = json_object_get(cfg->ci_issuer_metadata, provider);
    json_t *v = section ? json_object_get(json_object_get(p, section), key)
                        : json_object_get(p, key);
    return json_string_value(v);
}

/* ---- JSON and YAML give the same structures ---- */

static const char json_tmpl[] =
    "{\"OIDCIssuers\": {\n"
    "  \"https://accounts.example.com\": {\"IssuerURL\": \"https://accounts.example.com\",\n"
    "    \"ClientID\": \"sigstore\", \"Type\": \"email\",\n"
    "    \"IssuerClaim\": \"$.federated_claims.connector_id\", \"Description\": \"corp SSO\",\n"
    "    \"Contact\": \"sec@example.com\", \"Environment\": \"production\",\n"
    "    \"SkipEmailVerification\": true, \"CACert\": \"%s\"},\n"
    "  \"https://token.actions.githubusercontent.com\": {\n"
    "    \"IssuerURL\": \"https://token.actions.githubusercontent.com\", \"ClientID\": \"sigstore\",\n"
    "    \"Type\": \"ci-provider\", \"CIProvider\": \"github-workflow\"},\n"
    "  \"https://spiffe.example.com\": {\"IssuerURL\": \"https://spiffe.example.com\",\n"
    "    \"ClientID\": \"sigstore\", \"Type\": \"spiffe\", \"SPIFFETrustDomain\": \"example.com\"},\n"
    "  \"https://oidc.example.com\": {\"IssuerURL\": \"https://oidc.example.com\",\n"
    "    \"ClientID\": \"sigstore\", \"Type\": \"uri\", \"SubjectDomain\": \"https://users.example.com\"},\n"
    "  \"https://auth.example.org\": {\"IssuerURL\": \"https://auth.example.org\",\n"
    "    \"ClientID\": \"sigstore\", \"Type\": \"username\", \"SubjectDomain\": \"example.org\",\n"
    "    \"ChallengeClaim\": \"preferred_username\"},\n"
    "  \"http://127.0.0.1:8080\": {\"IssuerURL\": \"http://127.0.0.1:8080\",\n"
    "    \"ClientID\": \"dev\", \"Type\": \"email\"}\n"
    "},\n"
    "\"MetaIssuers\": {\n"
    "  \"https://oidc.eks.*.amazonaws.com/id/*\": {\"ClientID\": \"sigstore\", \"Type\": \"kubernetes\"},\n"
    "  \"https://token.actions.githubusercontent.com/*\": {\"ClientID\": \"sigstore\",\n"
    "    \"Type\": \"ci-provider\", \"CIProvider\": \"github-workflow\"}\n"
    "},\n"
    "\"CIIssuerMetadata\": {\"github-workflow\": {\n"
    "  \"DefaultTemplateValues\": {\"url\": \"https://github.com\", \"environment\": \"\"},\n"
    "  \"ExtensionTemplates\": {\"BuildSignerURI\": \"{{ .url }}/{{ .job_workflow_ref }}\",\n"
    "    \"RunnerEnvironment\": \"runner_environment\", \"DeploymentEnvironment\": \"environment\"},\n"
    "  \"SubjectAlternativeNameTemplate\": \"{{ .url }}/{{ .job_workflow_ref }}\"}}}\n";

/* The same, in YAML, with anchors, aliases (also as a key) and merge keys. */
static const char yaml_tmpl[] =
    "define:\n"
    "  - &gh github-workflow\n"
    "common: &common\n"
    "  client-id: sigstore\n"
    "  type: email\n"
    "ci: &ci\n"
    "  type: ci-provider\n"
    "  ci-provider: *gh\n"
    "oidc-issuers:\n"
    "  https://accounts.example.com:\n"
    "    <<: *common\n"
    "    issuer-url: https://accounts.example.com\n"
    "    issuer-claim: $.federated_claims.connector_id\n"
    "    description: corp SSO\n"
    "    contact: sec@example.com\n"
    "    environment: production\n"
    "    skip-email-verification: yes\n"
    "    ca-cert: |\n"
    "%s"
    "  https://token.actions.githubusercontent.com:\n"
    "    <<: [*ci, *common]\n"
    "    issuer-url: https://token.actions.githubusercontent.com\n"
    "  https://spiffe.example.com:\n"
    "    <<: *common\n"
    "    issuer-url: https://spiffe.example.com\n"
    "    type: spiffe\n"
    "    spiffe-trust-domain: example.com\n"
    "  https://oidc.example.com: {issuer-url: 'https://oidc.example.com', client-id: sigstore,\n"
    "    type: uri, subject-domain: \"https://users.example.com\"}\n"
    "  https://auth.example.org:\n"
    "    IssuerURL: https://auth.example.org\n"
    "    clientid: sigstore\n"
    "    type: username\n"
    "    subject-domain: example.org\n"
    "    challenge-claim: preferred_username\n"
    "  http://127.0.0.1:8080:\n"
    "    issuer-url: http://127.0.0.1:8080\n"
    "    client-id: dev\n"
    "    type: email\n"
    "    skip-email-verification: ~\n"
    "meta-issuers:\n"
    "  https://oidc.eks.*.amazonaws.com/id/*: {client-id: sigstore, type: kubernetes}\n"
    "  https://token.actions.githubusercontent.com/*:\n"
    "    <<: *ci\n"
    "    client-id: sigstore\n"
    "ci-issuer-metadata:\n"
    "  *gh :\n"
    "    default-template-values:\n"
    "      url: \"https://github.com\"\n"
    "      environment: \"\"\n"
    "    extension-templates:\n"
    "      build-signer-uri: \"{{ .url }}/{{ .job_workflow_ref }}\"\n"
    "      runner-environment: runner_environment\n"
    "      deployment-environment: environment\n"
    "    subject-alternative-name-template: \"{{ .url }}/{{ .job_workflow_ref }}\"\n";

static void test_json_yaml_same(void)
{
    char err[1024];
    char *pem = make_cert_pem();
    CHECK(pem != NULL, "test certificate made");
    if (!pem)
        return;
    char *pem_json = json_escape_newlines(pem), *pem_yaml = yaml_indent(pem, "      ");
    size_t jl = sizeof json_tmpl + strlen(pem_json), yl = sizeof yaml_tmpl + strlen(pem_yaml);
    char *jtext = malloc(jl), *ytext = malloc(yl);
    snprintf(jtext, jl, json_tmpl, pem_json);
    snprintf(ytext, yl, yaml_tmpl, pem_yaml);

    fulcrum_config *cj = load(jtext, "config.json", err, sizeof err);
    CHECK(cj != NULL, "JSON form loads: %s", err);
    fulcrum_config *cy = load(ytext, "config.yaml", err, sizeof err);
    CHECK(cy != NULL, "YAML form loads: %s", err);
    if (cj && cy) {
        CHECK(config_equal(cj, cy), "JSON and YAML forms decode to the same structures");
        CHECK(cj->n_issuers == 6 && cj->n_meta == 2, "6 issuers, 2 meta: %zu %zu",
              cj->n_issuers, cj->n_meta);
        /* sorted by URL */
        int sorted = 1;
        for (size_t i = 1; i < cj->n_issuers; i++)
            if (strcmp(cj->issuers[i - 1].issuer_url, cj->issuers[i].issuer_url) >= 0)
                sorted = 0;
        CHECK(sorted, "issuers sorted by URL");
        CHECK_STREQ(cj->issuers[0].issuer_url, "http://127.0.0.1:8080", "first issuer");
        const issuer_config *a = config_find_issuer(cy, "https://accounts.example.com");
        CHECK(a && a->type == ISSUER_TYPE_EMAIL && a->skip_email_verification == 1 && !a->is_meta,
              "email issuer fields");
        CHECK(a && strcmp(a->ca_cert_pem, pem) == 0, "ca-cert kept as PEM text");
        CHECK_STREQ(a ? a->issuer_claim : NULL, "$.federated_claims.connector_id", "issuer-claim");
        CHECK_STREQ(a ? a->environment : NULL, "production", "environment");
        const issuer_config *g = config_find_issuer(cy, "https://token.actions.githubusercontent.com");
        CHECK(g && g->type == ISSUER_TYPE_CI_PROVIDER, "merge list: earlier map wins (type)");
        CHECK_STREQ(g ? g->ci_provider : NULL, "github-workflow", "alias value");
        CHECK_STREQ(g ? g->client_id : NULL, "sigstore", "key from the second merge source");
        const issuer_config *s = config_find_issuer(cy, "https://spiffe.example.com");
        CHECK(s && s->type == ISSUER_TYPE_SPIFFE, "explicit key overrides a merged one");
        const issuer_config *u = config_find_issuer(cy, "https://auth.example.org");
        CHECK_STREQ(u ? u->client_id : NULL, "sigstore", "case-insensitive JSON name in YAML");
        CHECK_STREQ(u ? config_challenge_claim(u) : NULL, "preferred_username", "challenge");
        CHECK_STREQ(ci_str(cy, "github-workflow", "DefaultTemplateValues", "url"),
                    "https://github.com", "ci defaults, canonical key");
        CHECK_STREQ(ci_str(cy, "github-workflow", "ExtensionTemplates", "BuildSignerURI"),
                    "{{ .url }}/{{ .job_workflow_ref }}", "ci extension, canonical key");
        CHECK_STREQ(ci_str(cy, "github-workflow", NULL, "SubjectAlternativeNameTemplate"),
                    "{{ .url }}/{{ .job_workflow_ref }}", "ci SAN template");
    }
    config_free(cj);
    config_free(cy);
    free(jtext);
    free(ytext);
    free(pem_json);
    free(pem_yaml);
    free(pem);
}

/* ---- every bad value gives its message ---- */

struct bad_case {
    const char *name, *text, *want;
};

#define ISS(body) "{\"OIDCIssuers\":{\"https://x.example.com\":{" body "}}}"
#define GOOD "\"IssuerURL\":\"https://x.example.com\",\"ClientID\":\"sigstore\","
#define Y_ISS "oidc-issuers:\n  https://x.example.com:\n    issuer-url: https://x.example.com\n"

/* ClaimPolicy rules on a github-workflow issuer */
#define POL(rules) ISS(GOOD "\"Type\":\"github-workflow\",\"ClaimPolicy\":" rules)
#define P_PATH "config.json: OIDCIssuers[https://x.example.com].ClaimPolicy"
#define Y_POL Y_ISS "    client-id: sigstore\n    type: github-workflow\n    claim-policy:\n"
#define Y_PATH "config.yaml: oidc-issuers[https://x.example.com].claim-policy"
#define UNANCHORED                                                                         \
    "must be anchored: start with ^ and end with $ (each top-level | branch too, or write " \
    "^(a|b)$), so that it cannot match inside a longer value (GHSA-59jp-pj84-45mr)"

#define TOO_LARGE                                                                          \
    "is too large: with its repetitions expanded it holds more than 1000 characters or "   \
    "classes ({m,n} repeats what precedes it n times, and nested repetitions multiply)"

static const struct bad_case bad_cases[] = {
    /* ---- ClaimPolicy ---- */
    {"config.json", POL("{\"Claim\":\"sub\",\"Equals\":\"x\"}"),
     P_PATH ": must be a list of rules"},
    {"config.yaml", Y_ISS "    client-id: sigstore\n    type: email\n    claim-policy: x\n",
     Y_PATH ": must be a list of rules"},
    {"config.json", POL("[\"sub\"]"),
     P_PATH "[0]: must be a map with Claim and one of In, Equals, Prefix, Suffix, Match"},
    {"config.yaml", Y_POL "      - [sub, x]\n",
     Y_PATH "[0]: must be a map with claim and one of in, equals, prefix, suffix, match"},
    {"config.json", POL("[{\"Claim\":\"sub\",\"Contains\":\"x\"}]"),
     P_PATH "[0].Contains: unknown key (a rule has Claim and one of In, Equals, Prefix, Suffix, "
            "Match)"},
    {"config.yaml", Y_POL "      - {claim: sub, regex: '^x$'}\n",
     Y_PATH "[0].regex: unknown key (a rule has claim and one of in, equals, prefix, suffix, "
            "match)"},
    {"config.json", POL("[{\"Claim\":\"sub\",\"In\":[\"a\"],\"in\":[\"b\"]}]"),
     P_PATH "[0].in: same field as \"In\""},
    {"config.json", POL("[{\"Equals\":\"x\"}]"), P_PATH "[0].Claim: required"},
    {"config.yaml", Y_POL "      - equals: x\n", Y_PATH "[0].claim: required"},
    {"config.json", POL("[{\"Claim\":\"\",\"Equals\":\"x\"}]"), P_PATH "[0].Claim: required"},
    {"config.yaml", Y_POL "      - {claim: ~, equals: x}\n", Y_PATH "[0].claim: required"},
    {"config.json", POL("[{\"Claim\":7,\"Equals\":\"x\"}]"),
     P_PATH "[0].Claim: must be a string"},
    {"config.json", POL("[{\"Claim\":\"$\",\"Equals\":\"x\"}]"),
     P_PATH "[0].Claim: unsupported claim path \"$\": write a top-level claim name, or "
            "$.name.name, with $['name'] for a name containing dots"},
    {"config.json", POL("[{\"Claim\":\"$.groups[0]\",\"Equals\":\"x\"}]"),
     P_PATH "[0].Claim: unsupported claim path \"$.groups[0]\": write a top-level claim name, or "
            "$.name.name, with $['name'] for a name containing dots"},
    {"config.json", POL("[{\"Claim\":\"$..sub\",\"Equals\":\"x\"}]"),
     P_PATH "[0].Claim: unsupported claim path \"$..sub\": write a top-level claim name, or "
            "$.name.name, with $['name'] for a name containing dots"},
    {"config.yaml", Y_POL "      - {claim: \"$['kubernetes.io'\", equals: x}\n",
     Y_PATH "[0].claim: unsupported claim path \"$['kubernetes.io'\": write a top-level claim "
            "name, or $.name.name, with $['name'] for a name containing dots"},
    {"config.yaml", Y_POL "      - {claim: \"$.a.*\", equals: x}\n",
     Y_PATH "[0].claim: unsupported claim path \"$.a.*\": write a top-level claim name, or "
            "$.name.name, with $['name'] for a name containing dots"},
    {"config.yaml", Y_POL "      - {claim: \"$sub\", equals: x}\n",
     Y_PATH "[0].claim: unsupported claim path \"$sub\": write a top-level claim name, or "
            "$.name.name, with $['name'] for a name containing dots"},
    {"config.json", POL("[{\"Claim\":\"sub\"}]"),
     P_PATH "[0]: no operator: a rule needs one of In, Equals, Prefix, Suffix, Match"},
    {"config.yaml", Y_POL "      - claim: sub\n",
     Y_PATH "[0]: no operator: a rule needs one of in, equals, prefix, suffix, match"},
    {"config.json", POL("[{\"Claim\":\"sub\",\"Prefix\":\"a\",\"Suffix\":\"b\"}]"),
     P_PATH "[0]: both Prefix and Suffix: a rule takes exactly one operator (write two rules to "
            "require both)"},
    {"config.yaml", Y_POL "      - {claim: sub, match: '^a$', in: [a]}\n",
     Y_PATH "[0]: both in and match: a rule takes exactly one operator (write two rules to "
            "require both)"},
    {"config.json", POL("[{\"Claim\":\"sub\",\"In\":\"acme\"}]"),
     P_PATH "[0].In: must be a list of strings"},
    {"config.json", POL("[{\"Claim\":\"sub\",\"In\":[]}]"),
     P_PATH "[0].In: must not be an empty list (it would allow no value)"},
    {"config.yaml", Y_POL "      - {claim: sub, in: []}\n",
     Y_PATH "[0].in: must not be an empty list (it would allow no value)"},
    {"config.json", POL("[{\"Claim\":\"sub\",\"In\":[\"a\",5]}]"),
     P_PATH "[0].In[1]: must be a string"},
    {"config.yaml", Y_POL "      - {claim: sub, in: [a, ~]}\n", Y_PATH "[0].in[1]: must be a string"},
    {"config.json", POL("[{\"Claim\":\"run_attempt\",\"Equals\":1}]"),
     P_PATH "[0].Equals: must be a string"},
    {"config.json", POL("[{\"Claim\":\"sub\",\"Equals\":\"a\\u0000b\"}]"),
     P_PATH "[0].Equals: must not contain a NUL character"},
    {"config.json", POL("[{\"Claim\":\"sub\",\"Prefix\":\"\"}]"),
     P_PATH "[0].Prefix: must not be empty (it would allow every value)"},
    {"config.yaml", Y_POL "      - {claim: email, suffix: }\n",
     Y_PATH "[0].suffix: must not be empty (it would allow every value)"},
    {"config.json", POL("[{\"Claim\":\"sub\",\"Match\":null}]"),
     P_PATH "[0].Match: must be a string"},
    {"config.json", POL("[{\"Claim\":\"sub\",\"Match\":\"repo:acme/\"}]"),
     P_PATH "[0].Match: " UNANCHORED},
    {"config.json", POL("[{\"Claim\":\"sub\",\"Match\":\"^repo:acme/\"}]"),
     P_PATH "[0].Match: " UNANCHORED},
    {"config.json", POL("[{\"Claim\":\"sub\",\"Match\":\"repo:acme/.*$\"}]"),
     P_PATH "[0].Match: " UNANCHORED},
    {"config.json", POL("[{\"Claim\":\"sub\",\"Match\":\"^acme|labs$\"}]"),
     P_PATH "[0].Match: " UNANCHORED},
    {"config.json", POL("[{\"Claim\":\"sub\",\"Match\":\"^a$|b\"}]"),
     P_PATH "[0].Match: " UNANCHORED},
    {"config.json", POL("[{\"Claim\":\"sub\",\"Match\":\"^acme\\\\$\"}]"),
     P_PATH "[0].Match: " UNANCHORED},
    {"config.json", POL("[{\"Claim\":\"sub\",\"Match\":\"^acme[$]\"}]"),
     P_PATH "[0].Match: " UNANCHORED},
    {"config.json", POL("[{\"Claim\":\"sub\",\"Match\":\"^(acme$)\"}]"),
     P_PATH "[0].Match: " UNANCHORED},
    {"config.yaml", Y_POL "      - {claim: sub, match: 'x^acme$'}\n",
     Y_PATH "[0].match: " UNANCHORED},
    {"config.yaml", Y_POL "      - {claim: sub, match: ''}\n", Y_PATH "[0].match: " UNANCHORED},
    {"config.json", POL("[{\"Claim\":\"sub\",\"Match\":\"^(acme$\"}]"),
     P_PATH "[0].Match: does not compile: Unmatched ( or \\("},
    {"config.yaml", Y_POL "      - {claim: sub, match: '^x[ab$'}\n",
     Y_PATH "[0].match: does not compile: Unmatched [, [^, [:, [., or [="},
    /* repetitions that expand past 1000 atoms are refused before regcomp (the fuzzer found
     * nested ones taking glibc's regcomp past 2 GiB) */
    {"config.json", POL("[{\"Claim\":\"sub\",\"Match\":\"^((a{255}){255}){255}$\"}]"),
     P_PATH "[0].Match: " TOO_LARGE},
    {"config.yaml", Y_POL "      - {claim: sub, match: '^((a*)*\\2)*b$'}\n",
     Y_PATH "[0].match: must not use back-references (\\1 to \\9): matching them takes time "
            "exponential in the claim's length"},
    {"config.json", POL("[{\"Claim\":\"sub\",\"Match\":\"^(a)[b]\\\\1$\"}]"),
     P_PATH "[0].Match: must not use back-references (\\1 to \\9): matching them takes time "
            "exponential in the claim's length"},
    {"config.yaml", Y_POL "      - {claim: sub, match: '^[a-z]{1001}$'}\n",
     Y_PATH "[0].match: " TOO_LARGE},
    {"config.yaml", Y_POL "      - {claim: sub, match: '^[a-z]{2,1001}$'}\n",
     Y_PATH "[0].match: " TOO_LARGE},
    {"config.yaml", Y_POL "      - {claim: sub, match: '^(a{100}){,11}$'}\n",
     Y_PATH "[0].match: " TOO_LARGE},
    {"config.yaml", Y_POL "      - {claim: sub, match: '^x{1000,}$'}\n",
     Y_PATH "[0].match: " TOO_LARGE},
    {"config.yaml", Y_POL "      - {claim: sub, match: '^(ab){501}$'}\n",
     Y_PATH "[0].match: " TOO_LARGE},
    {"config.yaml", Y_POL "      - {claim: sub, match: '^((((((((((a+)+)+)+)+)+)+)+)+)+)$'}\n",
     Y_PATH "[0].match: " TOO_LARGE},
    {"config.yaml", Y_POL "      - {claim: sub, match: '^(a{10}){40}(b{10}){40}(c{10}){20}x$'}\n",
     Y_PATH "[0].match: " TOO_LARGE},
    {"config.yaml",
     Y_POL "      - {claim: repository_owner, in: [acme]}\n"
           "      - {claim: ref, prefix: refs/heads/}\n"
           "      - {claim: sub, equals: }\n",
     Y_PATH "[2].equals: must be a string"},
    {"config.json",
     "{\"MetaIssuers\":{\"https://*.example.com\":{\"ClientID\":\"sigstore\","
     "\"Type\":\"kubernetes\",\"ClaimPolicy\":[{\"Claim\":\"sub\",\"Match\":\"x\"}]}}}",
     "config.json: MetaIssuers[https://*.example.com].ClaimPolicy[0].Match: " UNANCHORED},
    /* ---- http:// meta-issuer patterns: loopback only, '*' only in the path ---- */
    {"config.yaml",
     "meta-issuers:\n  http://127.0.0.1:*/id/*:\n    client-id: sigstore\n    type: email\n",
     "config.yaml: meta-issuers[http://127.0.0.1:*/id/*]: not a valid issuer URL pattern: an "
     "http:// pattern may have '*' only in its path (its host must be localhost, 127.x.x.x or "
     "[::1], and its port literal)"},
    {"config.yaml",
     "meta-issuers:\n  http://*.localhost/id:\n    client-id: sigstore\n    type: email\n",
     "config.yaml: meta-issuers[http://*.localhost/id]: not a valid issuer URL pattern: an "
     "http:// pattern may have '*' only in its path (its host must be localhost, 127.x.x.x or "
     "[::1], and its port literal)"},
    {"config.yaml",
     "meta-issuers:\n  http://127.0.0.*:8080/id:\n    client-id: sigstore\n    type: email\n",
     "config.yaml: meta-issuers[http://127.0.0.*:8080/id]: not a valid issuer URL pattern: an "
     "http:// pattern may have '*' only in its path (its host must be localhost, 127.x.x.x or "
     "[::1], and its port literal)"},
    {"config.yaml",
     "meta-issuers:\n  http://*:8080/id:\n    client-id: sigstore\n    type: email\n",
     "config.yaml: meta-issuers[http://*:8080/id]: not a valid issuer URL pattern: an "
     "http:// pattern may have '*' only in its path (its host must be localhost, 127.x.x.x or "
     "[::1], and its port literal)"},
    {"config.yaml",
     "meta-issuers:\n  http://issuer.example.com/*:\n    client-id: sigstore\n    type: email\n",
     "config.yaml: meta-issuers[http://issuer.example.com/*]: not a valid issuer URL pattern: "
     "must start with https:// (http:// only for localhost, 127.x.x.x, [::1])"},
    {"config.yaml",
     "meta-issuers:\n  http://127.0.0.1.nip.io/*:\n    client-id: sigstore\n    type: email\n",
     "config.yaml: meta-issuers[http://127.0.0.1.nip.io/*]: not a valid issuer URL pattern: "
     "must start with https:// (http:// only for localhost, 127.x.x.x, [::1])"},
    {"config.yaml",
     "meta-issuers:\n  http://127.0.0.1:8080/*?x:\n    client-id: sigstore\n    type: email\n",
     "config.yaml: meta-issuers[http://127.0.0.1:8080/*?x]: not a valid issuer URL pattern: "
     "must not have a query (OIDC issuer identifiers have none)"},
    {"config.yaml", Y_ISS "    type: email\n",
     "config.yaml: oidc-issuers[https://x.example.com].client-id: required"},
    {"config.json", ISS("\"IssuerURL\":\"https://x.example.com\",\"Type\":\"email\""),
     "config.json: OIDCIssuers[https://x.example.com].ClientID: required"},
    {"config.json", ISS("\"IssuerURL\":\"https://x.example.com\",\"ClientID\":5,\"Type\":\"email\""),
     "config.json: OIDCIssuers[https://x.example.com].ClientID: must be a string"},
    {"config.json", ISS("\"ClientID\":\"sigstore\",\"Type\":\"email\""),
     "config.json: OIDCIssuers[https://x.example.com].IssuerURL: required"},
    {"config.json", ISS(GOOD "\"Type\":7"),
     "config.json: OIDCIssuers[https://x.example.com].Type: must be a string"},
    {"config.json", ISS(GOOD "\"Type\":\"email\",\"SkipEmailVerification\":\"yes\""),
     "config.json: OIDCIssuers[https://x.example.com].SkipEmailVerification: must be true or "
     "false"},
    {"config.yaml", Y_ISS "    client-id: sigstore\n    type: email\n"
                          "    skip-email-verification: maybe\n",
     "config.yaml: oidc-issuers[https://x.example.com].skip-email-verification: must be true or "
     "false"},
    {"config.json", "{\"OIDCIssuers\":{\"https://x.example.com\":\"sigstore\"}}",
     "config.json: OIDCIssuers[https://x.example.com]: must be a map"},
    {"config.json", "{\"OIDCIssuers\":[]}", "config.json: OIDCIssuers: must be a map"},
    {"config.json", "[1, 2]",
     "config.json: the document must be a map (OIDCIssuers, MetaIssuers, CIIssuerMetadata)"},
    {"config.json",
     "{\"OIDCIssuers\":{\"https://x.example.com\":{\"IssuerURL\":\"https://y.example.com\","
     "\"ClientID\":\"sigstore\",\"Type\":\"email\"}}}",
     "config.json: OIDCIssuers[https://x.example.com].IssuerURL: \"https://y.example.com\" "
     "differs from the map key"},
    {"config.json",
     "{\"OIDCIssuers\":{\"http://x.example.com\":{\"IssuerURL\":\"http://x.example.com\","
     "\"ClientID\":\"sigstore\",\"Type\":\"email\"}}}",
     "config.json: OIDCIssuers[http://x.example.com].IssuerURL: must start with https:// "
     "(http:// only for localhost, 127.x.x.x, [::1])"},
    {"config.json",
     "{\"OIDCIssuers\":{\"ftp://localhost\":{\"IssuerURL\":\"ftp://localhost\","
     "\"ClientID\":\"sigstore\",\"Type\":\"email\"}}}",
     "config.json: OIDCIssuers[ftp://localhost].IssuerURL: must start with https://"},
    {"config.json",
     "{\"OIDCIssuers\":{\"https://x.example.com?a=b\":{\"IssuerURL\":\"https://x.example.com?a=b\","
     "\"ClientID\":\"sigstore\",\"Type\":\"email\"}}}",
     "config.json: OIDCIssuers[https://x.example.com?a=b].IssuerURL: must not have a query "
     "(OIDC issuer identifiers have none)"},
    {"config.json",
     "{\"OIDCIssuers\":{\"https://\":{\"IssuerURL\":\"https://\",\"ClientID\":\"sigstore\","
     "\"Type\":\"email\"}}}",
     "config.json: OIDCIssuers[https://].IssuerURL: has no host"},
    {"config.json",
     "{\"OIDCIssuers\":{\"https://u@x.example.com\":{\"IssuerURL\":\"https://u@x.example.com\","
     "\"ClientID\":\"sigstore\",\"Type\":\"email\"}}}",
     "config.json: OIDCIssuers[https://u@x.example.com].IssuerURL: must not contain user info"},
    {"config.json", ISS(GOOD "\"Type\":\"magic\""),
     "config.json: OIDCIssuers[https://x.example.com].Type: unknown issuer type \"magic\" (and "
     "no ChallengeClaim)"},
    {"config.json", ISS(GOOD "\"Type\":\"\""),
     "config.json: OIDCIssuers[https://x.example.com].Type: required"},
    {"config.json", ISS(GOOD "\"Type\":\"kubernetes\",\"IssuerClaim\":\"$.a\""),
     "config.json: OIDCIssuers[https://x.example.com].IssuerClaim: only email issuers can use "
     "issuer claim mapping"},
    {"config.yaml", Y_ISS "    client-id: sigstore\n    type: spiffe\n",
     "config.yaml: oidc-issuers[https://x.example.com].spiffe-trust-domain: required for type "
     "spiffe"},
    {"config.json", ISS(GOOD "\"Type\":\"spiffe\",\"SPIFFETrustDomain\":\"Example.com\""),
     "config.json: OIDCIssuers[https://x.example.com].SPIFFETrustDomain: invalid trust domain: "
     "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and "
     "underscores"},
    {"config.json", ISS(GOOD "\"Type\":\"spiffe\",\"SPIFFETrustDomain\":\"spiffe://ex.com//a\""),
     "config.json: OIDCIssuers[https://x.example.com].SPIFFETrustDomain: invalid trust domain: "
     "path cannot contain empty segments"},
    {"config.yaml", Y_ISS "    client-id: sigstore\n    type: uri\n",
     "config.yaml: oidc-issuers[https://x.example.com].subject-domain: required for type uri"},
    {"config.json", ISS(GOOD "\"Type\":\"uri\",\"SubjectDomain\":\"example.com\""),
     "config.json: OIDCIssuers[https://x.example.com].SubjectDomain: must contain a scheme for "
     "type uri"},
    {"config.json", ISS(GOOD "\"Type\":\"uri\",\"SubjectDomain\":\"http://example.com\""),
     "config.json: OIDCIssuers[https://x.example.com].SubjectDomain: subject (http) and issuer "
     "(https) URI schemes do not match"},
    {"config.json", ISS(GOOD "\"Type\":\"uri\",\"SubjectDomain\":\"https://example.org\""),
     "config.json: OIDCIssuers[https://x.example.com].SubjectDomain: hostname top-level and "
     "second-level domains do not match: example.org, x.example.com"},
    {"config.yaml", Y_ISS "    client-id: sigstore\n    type: username\n",
     "config.yaml: oidc-issuers[https://x.example.com].subject-domain: required for type "
     "username"},
    {"config.json", ISS(GOOD "\"Type\":\"username\",\"SubjectDomain\":\"https://example.com\""),
     "config.json: OIDCIssuers[https://x.example.com].SubjectDomain: must not contain a scheme "
     "for type username"},
    {"config.json", ISS(GOOD "\"Type\":\"username\",\"SubjectDomain\":\"localhost\""),
     "config.json: OIDCIssuers[https://x.example.com].SubjectDomain: hostname too short: "
     "localhost"},
    {"config.yaml", Y_ISS "    client-id: sigstore\n    type: ci-provider\n",
     "config.yaml: oidc-issuers[https://x.example.com].ci-provider: required for type "
     "ci-provider"},
    {"config.yaml", Y_ISS "    client-id: sigstore\n    type: ci-provider\n"
                          "    ci-provider: jenkins\n",
     "config.yaml: oidc-issuers[https://x.example.com].ci-provider: \"jenkins\" is not a key of "
     "ci-issuer-metadata"},
    {"config.json", ISS(GOOD "\"Type\":\"email\",\"CACert\":\"not a certificate\""),
     "config.json: OIDCIssuers[https://x.example.com].CACert: no PEM certificate could be "
     "parsed"},
    {"config.json", ISS(GOOD "\"client-id\":\"other\",\"Type\":\"email\""),
     "config.json: OIDCIssuers[https://x.example.com].client-id: same field as \"ClientID\""},
    {"config.yaml",
     Y_ISS "    client-id: sigstore\n    type: email\n"
           "  https://x.example.com:\n    client-id: sigstore\n",
     "config.yaml: oidc-issuers[https://x.example.com]: duplicate key (line 6)"},
    {"config.json",
     "{\"OIDCIssuers\":{\"https://x.example.com\":{" GOOD "\"Type\":\"email\"},\n"
     "\"https://x.example.com\":{" GOOD "\"Type\":\"email\"}}}",
     "config.json: OIDCIssuers[https://x.example.com]: duplicate key (line 2)"},
    {"config.yaml",
     "meta-issuers:\n  oidc.eks.*.amazonaws.com/id/*:\n    client-id: sigstore\n"
     "    type: kubernetes\n",
     "config.yaml: meta-issuers[oidc.eks.*.amazonaws.com/id/*]: not a valid issuer URL pattern: "
     "must start with https://"},
    {"config.yaml",
     "meta-issuers:\n  https://*.com/id/*:\n    client-id: sigstore\n    type: kubernetes\n",
     "config.yaml: meta-issuers[https://*.com/id/*]: not a valid issuer URL pattern: has a '*' "
     "in the last two labels of its host (a token could then choose the host its keys are "
     "fetched from)"},
    {"config.yaml",
     "meta-issuers:\n  https://*/id:\n    client-id: sigstore\n    type: kubernetes\n",
     "config.yaml: meta-issuers[https://*/id]: not a valid issuer URL pattern: has a '*' in the "
     "last two labels of its host (a token could then choose the host its keys are fetched "
     "from)"},
    {"config.yaml",
     "meta-issuers:\n  https://x.example.com:*/id:\n    client-id: sigstore\n"
     "    type: kubernetes\n",
     "config.yaml: meta-issuers[https://x.example.com:*/id]: not a valid issuer URL pattern: "
     "has an invalid port"},
    {"config.yaml",
     "meta-issuers:\n  https://*.example.com/*#f:\n    client-id: sigstore\n"
     "    type: kubernetes\n",
     "config.yaml: meta-issuers[https://*.example.com/*#f]: not a valid issuer URL pattern: "
     "must not have a fragment (OIDC issuer identifiers have none)"},
    {"config.yaml",
     "meta-issuers:\n  https://*.example.com:\n    client-id: sigstore\n    type: spiffe\n"
     "    spiffe-trust-domain: example.com\n",
     "config.yaml: meta-issuers[https://*.example.com].type: spiffe meta-issuers are not "
     "supported"},
    {"config.yaml", "meta-issuers:\n  https://*.example.com:\n    type: kubernetes\n",
     "config.yaml: meta-issuers[https://*.example.com].client-id: required"},
    {"config.yaml",
     "ci-issuer-metadata:\n  gh:\n    extension-templates:\n"
     "      build-signer-uri: \"{{ .url }/x\"\n",
     "config.yaml: ci-issuer-metadata[gh].extension-templates.build-signer-uri: template: "
     "unclosed action"},
    {"config.yaml",
     "ci-issuer-metadata:\n  gh:\n    subject-alternative-name-template: '{{ index . \"a}} }}'\n",
     "config.yaml: ci-issuer-metadata[gh].subject-alternative-name-template: template: "
     "unterminated quoted string"},
    /* delimiters fine, but the template does not parse (Fulcio refuses it at start too) */
    {"config.yaml",
     "ci-issuer-metadata:\n  gh:\n    extension-templates:\n"
     "      build-signer-uri: \"{{ if .url }}x\"\n",
     "config.yaml: ci-issuer-metadata[gh].extension-templates.build-signer-uri: template: :1: "
     "unexpected EOF"},
    {"config.yaml",
     "ci-issuer-metadata:\n  gh:\n    subject-alternative-name-template: '{{ .a | nosuchfn }}'\n",
     "config.yaml: ci-issuer-metadata[gh].subject-alternative-name-template: template: :1: "
     "function \"nosuchfn\" not defined"},
    {"config.yaml", "ci-issuer-metadata:\n  gh: [1]\n",
     "config.yaml: ci-issuer-metadata[gh]: must be a map"},
    {"config.yaml", "ci-issuer-metadata:\n  gh:\n    default-template-values: [a]\n",
     "config.yaml: ci-issuer-metadata[gh].default-template-values: must be a map"},
    {"config.yaml", "oidc-issuers:\n  a: [\n", "config.yaml: line 3 column 1: did not find "
                                                "expected node content while parsing a flow node"},
    {"config.yaml", "x: *nope\n",
     "config.yaml: x: unknown anchor \"nope\" (undefined or recursive) (line 1)"},
    {"config.yaml", "x: &a [*a]\n",
     "config.yaml: x[0]: unknown anchor \"a\" (undefined or recursive) (line 1)"},
    {"config.yaml", "x: &a 1\ny:\n  <<: *a\n",
     "config.yaml: y[<<]: a merge value must be a map or a list of maps (line 3)"},
    {"config.yaml", "? [a]\n: b\n",
     "config.yaml: a map or list used as a key is not supported (line 1)"},
    {"config.json", "{\"OIDCIssuers\": {,}}",
     "config.json: not valid JSON: line 1 column 18: string or '}' expected near ','"},
};

static void test_bad_values(void)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        char err[1024];
        fulcrum_config *cfg = load(bad_cases[i].text, bad_cases[i].name, err, sizeof err);
        CHECK(cfg == NULL, "case %zu refused", i);
        CHECK_STREQ(err, bad_cases[i].want, "message");
        config_free(cfg);
    }
}

/* ---- values that are accepted ---- */

static void test_accepted(void)
{
    char err[1024];
    static const char *const ok[] = {
        /* loopback http issuers */
        "{\"OIDCIssuers\":{\"http://localhost:5556/dex\":{\"IssuerURL\":\"http://localhost:5556/dex\","
        "\"ClientID\":\"s\",\"Type\":\"email\"}}}",
        "{\"OIDCIssuers\":{\"http://[::1]:9\":{\"IssuerURL\":\"http://[::1]:9\","
        "\"ClientID\":\"s\",\"Type\":\"email\"}}}",
        "{\"OIDCIssuers\":{\"http://127.0.0.2\":{\"IssuerURL\":\"http://127.0.0.2\","
        "\"ClientID\":\"s\",\"Type\":\"email\"}}}",
        /* Go's json matches field names case-insensitively */
        "{\"oidcissuers\":{\"https://x.example.com\":{\"issuerurl\":\"https://x.example.com\","
        "\"CLIENTID\":\"s\",\"type\":\"email\"}}}",
        /* the SPIFFE ID form of a trust domain, and the uri/username domain rules */
        ISS(GOOD "\"Type\":\"spiffe\",\"SPIFFETrustDomain\":\"spiffe://example.com/ns/a\""),
        ISS(GOOD "\"Type\":\"uri\",\"SubjectDomain\":\"https://users.example.com:8443/x\""),
        ISS(GOOD "\"Type\":\"username\",\"SubjectDomain\":\"example.com\""),
        ISS(GOOD "\"Type\":\"username\",\"SubjectDomain\":\"x.example.com\""),
        /* nulls are absent values; an empty document is an empty config */
        ISS(GOOD "\"Type\":\"email\",\"Description\":null,\"SkipEmailVerification\":null"),
        "",
        "# only a comment\n",
        "{}",
        /* only the first YAML document is read */
        "oidc-issuers: {}\n---\n: : bad [\n",
        /* '}}' inside a quoted string of a template action */
        "ci-issuer-metadata:\n  gh:\n    subject-alternative-name-template: "
        "'{{ index . \"a}}\" }}/{{/* c }} */}}'\n",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        fulcrum_config *cfg = load(ok[i], "ok.conf", err, sizeof err);
        CHECK(cfg != NULL, "accepted case %zu: %s", i, err);
        config_free(cfg);
    }
}

/* ---- ClaimPolicy: the same rules from JSON and YAML ---- */

static const char policy_json[] =
    "{\"OIDCIssuers\":{\"https://token.actions.githubusercontent.com\":{"
    "\"IssuerURL\":\"https://token.actions.githubusercontent.com\",\"ClientID\":\"sigstore\","
    "\"Type\":\"github-workflow\",\"ClaimPolicy\":["
    "{\"Claim\":\"repository_owner\",\"In\":[\"acme\",\"acme-labs\"]},"
    "{\"Claim\":\"email\",\"Suffix\":\"@acme.com\"},"
    "{\"Claim\":\"sub\",\"Match\":\"^repo:acme/[^:]+:ref:refs/heads/main$\"},"
    "{\"Claim\":\"event_name\",\"Equals\":\"push\"},"
    "{\"Claim\":\"ref\",\"Prefix\":\"refs/heads/\"},"
    "{\"Claim\":\"$['kubernetes.io'].namespace\",\"In\":[\"release\"]},"
    "{\"Claim\":\"$.federated_claims.connector_id\",\"Equals\":\"\"},"
    "{\"Claim\":\"oidc.circleci.com/project-id\",\"Match\":\"^a$|^(b|c)$\"}]}},"
    "\"MetaIssuers\":{\"https://*.example.com\":{\"ClientID\":\"sigstore\","
    "\"Type\":\"kubernetes\",\"ClaimPolicy\":[{\"Claim\":\"sub\",\"Prefix\":\"system:\"}]}}}";

static const char policy_yaml[] =
    "oidc-issuers:\n"
    "  https://token.actions.githubusercontent.com:\n"
    "    issuer-url: https://token.actions.githubusercontent.com\n"
    "    client-id: sigstore\n"
    "    type: github-workflow\n"
    "    claim-policy:\n"
    "      - {claim: repository_owner, in: [acme, acme-labs]}\n"
    "      - claim: email\n"
    "        suffix: \"@acme.com\"\n"
    "      - {claim: sub, match: '^repo:acme/[^:]+:ref:refs/heads/main$'}\n"
    "      - {Claim: event_name, EQUALS: push}\n"
    "      - {claim: ref, prefix: refs/heads/}\n"
    "      - claim: \"$['kubernetes.io'].namespace\"\n"
    "        in:\n"
    "          - release\n"
    "      - {claim: $.federated_claims.connector_id, equals: ''}\n"
    "      - {claim: oidc.circleci.com/project-id, match: '^a$|^(b|c)$'}\n"
    "meta-issuers:\n"
    "  https://*.example.com:\n"
    "    client-id: sigstore\n"
    "    type: kubernetes\n"
    "    claim-policy: [{claim: sub, prefix: 'system:'}]\n";

static void test_claim_policy_parse(void)
{
    char err[1024];
    fulcrum_config *cj = load(policy_json, "config.json", err, sizeof err);
    CHECK(cj != NULL, "JSON policy loads: %s", err);
    fulcrum_config *cy = load(policy_yaml, "config.yaml", err, sizeof err);
    CHECK(cy != NULL, "YAML policy loads: %s", err);
    if (cj && cy) {
        CHECK(config_equal(cj, cy), "JSON and YAML policies decode to the same rules");
        const issuer_config *ic = &cj->issuers[0];
        CHECK(ic->n_rules == 8, "8 rules: %zu", ic->n_rules);
        if (ic->n_rules == 8) {
            const struct claim_rule *r = ic->rules;
            CHECK(r[0].op == CLAIM_RULE_IN && r[0].n_values == 2 && r[0].n_path == 1,
                  "rule 0: In, 2 values, 1 step");
            CHECK_STREQ(r[0].claim, "repository_owner", "rule 0 claim");
            CHECK_STREQ(r[0].path[0], "repository_owner", "rule 0 path");
            CHECK_STREQ(r[0].values[1], "acme-labs", "rule 0 second value");
            CHECK(r[1].op == CLAIM_RULE_SUFFIX && r[1].n_values == 1, "rule 1: Suffix");
            CHECK_STREQ(r[1].values[0], "@acme.com", "rule 1 value");
            CHECK(r[2].op == CLAIM_RULE_MATCH, "rule 2: Match");
            CHECK_STREQ(r[2].values[0], "^repo:acme/[^:]+:ref:refs/heads/main$",
                        "rule 2 pattern text kept");
            CHECK(r[3].op == CLAIM_RULE_EQUALS, "rule 3: Equals (key case-insensitive)");
            CHECK(r[4].op == CLAIM_RULE_PREFIX, "rule 4: Prefix");
            CHECK(r[5].n_path == 2, "rule 5: a path of 2 steps");
            if (r[5].n_path == 2) {
                CHECK_STREQ(r[5].path[0], "kubernetes.io", "bracketed step keeps its dots");
                CHECK_STREQ(r[5].path[1], "namespace", "second step");
            }
            CHECK_STREQ(r[5].claim, "$['kubernetes.io'].namespace", "claim as written");
            CHECK(r[6].n_path == 2 && r[6].op == CLAIM_RULE_EQUALS &&
                      strcmp(r[6].values[0], "") == 0,
                  "rule 6: $.a.b path, Equals \"\"");
            CHECK(r[7].n_path == 1 && strcmp(r[7].path[0], "oidc.circleci.com/project-id") == 0,
                  "rule 7: a plain name with dots is one top-level claim");
        }
        CHECK(cj->meta[0].n_rules == 1 && cj->meta[0].rules[0].op == CLAIM_RULE_PREFIX,
              "meta issuer rule");

        /* /api/v2/configuration does not show the policy */
        fulcrum_config *plain =
            load("{\"OIDCIssuers\":{\"https://token.actions.githubusercontent.com\":{"
                 "\"IssuerURL\":\"https://token.actions.githubusercontent.com\","
                 "\"ClientID\":\"sigstore\",\"Type\":\"github-workflow\"}},"
                 "\"MetaIssuers\":{\"https://*.example.com\":{\"ClientID\":\"sigstore\","
                 "\"Type\":\"kubernetes\"}}}",
                 "plain.json", err, sizeof err);
        json_t *a = config_to_api_json(cj), *b = plain ? config_to_api_json(plain) : NULL;
        char *sa = a ? json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        char *sb = b ? json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        CHECK_STREQ(sa, sb, "API JSON with a policy is the API JSON without one");
        CHECK(sa && !strstr(sa, "acme") && !strstr(sa, "olicy"), "no policy text in the API");
        free(sa);
        free(sb);
        json_decref(a);
        json_decref(b);
        config_free(plain);
    }
    config_free(cj);
    config_free(cy);

    /* accepted forms: null and [] are no policy; anchored patterns of several shapes */
    static const char *const ok[] = {
        POL("null"),
        POL("[]"),
        Y_ISS "    client-id: sigstore\n    type: email\n    claim-policy:\n",
        POL("[{\"claim\":\"sub\",\"MATCH\":\"^$\"}]"),
        POL("[{\"Claim\":\"sub\",\"Match\":\"^a\\\\|b$\"}]"),
        POL("[{\"Claim\":\"sub\",\"Match\":\"^[|]x$\"}]"),
        POL("[{\"Claim\":\"sub\",\"Match\":\"^[]|]x$\"}]"),
        POL("[{\"Claim\":\"sub\",\"Match\":\"^[[:alpha:]|]+$\"}]"),
        POL("[{\"Claim\":\"sub\",\"Match\":\"^a$|^b$|^(c|d)$\"}]"),
        POL("[{\"Claim\":\"sub\",\"Match\":\"^a\\\\\\\\$\"}]"),
        POL("[{\"Claim\":\"$[\\\"a.b\\\"]['c d']\",\"Equals\":\"x\"}]"),
        /* up to 1000 characters or classes once repetitions are expanded (anchors not counted) */
        POL("[{\"Claim\":\"sub\",\"Match\":\"^[a-z]{1000}$\"}]"),
        POL("[{\"Claim\":\"sub\",\"Match\":\"^(a{10}){40}(b{10}){40}(c{10}){20}$\"}]"),
        POL("[{\"Claim\":\"sub\",\"Match\":\"^[0-9a-f]{40}(x{1,100}|[[:alpha:]{]{5,})$\"}]"),
        POL("[{\"Claim\":\"sub\",\"Match\":\"^a\\\\{999999}$\"}]"),
        /* a digit after an escaped backslash, or in a bracket, is no back-reference */
        POL("[{\"Claim\":\"sub\",\"Match\":\"^(a)\\\\\\\\1[\\\\1]$\"}]"),
    };
    size_t want_rules[] = {0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        fulcrum_config *cfg = load(ok[i], "ok.conf", err, sizeof err);
        CHECK(cfg != NULL, "accepted policy %zu: %s", i, err);
        CHECK(cfg && cfg->n_issuers == 1 && cfg->issuers[0].n_rules == want_rules[i],
              "accepted policy %zu: %zu rules", i, want_rules[i]);
        config_free(cfg);
    }
}

/* ---- http:// meta-issuer patterns on loopback (test issuers) ---- */

static void test_loopback_meta(void)
{
    char err[1024];
    fulcrum_config *cfg = load("meta-issuers:\n"
                               "  http://127.0.0.1:8080/*:\n"
                               "    client-id: sigstore\n    type: email\n"
                               "  http://localhost:9000/tenants/*/oidc:\n"
                               "    client-id: sigstore\n    type: email\n"
                               "  http://[::1]:7000/*/*:\n"
                               "    client-id: sigstore\n    type: email\n"
                               "  http://127.0.0.2/x:\n"
                               "    client-id: sigstore\n    type: email\n",
                               "config.yaml", err, sizeof err);
    CHECK(cfg != NULL, "loopback http meta patterns load: %s", err);
    if (!cfg)
        return;
    CHECK(cfg->n_meta == 4, "4 meta patterns");
    const issuer_config *ic = config_find_issuer(cfg, "http://127.0.0.1:8080/issuer-1");
    CHECK_STREQ(ic ? ic->issuer_url : NULL, "http://127.0.0.1:8080/*", "127.0.0.1 pattern");
    ic = config_find_issuer(cfg, "http://localhost:9000/tenants/t_2/oidc");
    CHECK_STREQ(ic ? ic->issuer_url : NULL, "http://localhost:9000/tenants/*/oidc",
                "localhost pattern");
    ic = config_find_issuer(cfg, "http://[::1]:7000/a/b");
    CHECK_STREQ(ic ? ic->issuer_url : NULL, "http://[::1]:7000/*/*", "[::1] pattern");
    CHECK(config_find_issuer(cfg, "http://127.0.0.1:8081/issuer-1") == NULL, "other port");
    CHECK(config_find_issuer(cfg, "http://127.0.0.1:8080/a/b") == NULL, "'*' spans no '/'");
    CHECK(config_find_issuer(cfg, "https://127.0.0.1:8080/issuer-1") == NULL, "other scheme");
    CHECK(config_find_issuer(cfg, "http://127.0.0.1:8080/") == NULL, "empty segment");
    CHECK(config_find_issuer(cfg, "http://127.0.0.2/x") != NULL, "no '*' at all");
    config_free(cfg);

    char why[300];
    CHECK(config_check_meta_pattern("http://localhost/*", why, sizeof why) == 0,
          "localhost without a port");
    CHECK(config_check_meta_pattern("https://127.0.0.1:8443/*", why, sizeof why) == 0,
          "https on loopback");
    CHECK(config_check_meta_pattern("http://LOCALHOST:1/*", why, sizeof why) == 0,
          "LOCALHOST (host names are case-insensitive)");
    CHECK(config_check_meta_pattern("http://localhost:*/x", why, sizeof why) == -1,
          "'*' in an http port");
    CHECK(config_check_meta_pattern("http://[::*]:1/x", why, sizeof why) == -1,
          "'*' in an http IPv6 host");
    CHECK(config_check_meta_pattern("http://[::2]:1/*", why, sizeof why) == -1,
          "[::2] is not loopback");
    CHECK(config_check_meta_pattern("http://128.0.0.1/*", why, sizeof why) == -1,
          "128.0.0.1 is not loopback");
    CHECK(config_check_meta_pattern("http://127.0.0.1@evil.com/*", why, sizeof why) == -1,
          "user info refused");
}

/* ---- unknown keys and types only warn ---- */

static void test_warnings(void)
{
    char err[1024];
    fulcrum_config *cfg;
    char *log = load_capturing("colour: blue\n"
                               "oidc-issuers:\n"
                               "  https://x.example.com:\n"
                               "    issuer-url: https://x.example.com\n"
                               "    client-id: sigstore\n"
                               "    type: magic\n"
                               "    challenge-claim: sub\n"
                               "    flavour: vanilla\n"
                               "    \"<<\": {a: 1}\n"
                               "ci-issuer-metadata:\n"
                               "  gh:\n"
                               "    extension-templates:\n"
                               "      build-colour: x\n",
                               "config.yaml", &cfg, err, sizeof err);
    CHECK(cfg != NULL, "unknown keys and an unknown type with challenge-claim load: %s", err);
    CHECK(log && strstr(log, "config.yaml: colour: unknown key, ignored"), "top-level warned");
    CHECK(log && strstr(log, "config.yaml: oidc-issuers[https://x.example.com].flavour: unknown "
                             "key, ignored"),
          "issuer key warned");
    CHECK(log && strstr(log, "oidc-issuers[https://x.example.com][<<]: unknown key"),
          "a quoted << is a plain key");
    CHECK(log && strstr(log, "ci-issuer-metadata[gh].extension-templates.build-colour: unknown "
                             "key"),
          "extension key warned");
    CHECK(log && strstr(log, "oidc-issuers[https://x.example.com].type: unknown issuer type "
                             "\\\"magic\\\": loaded, never served"),
          "unknown type warned: %s", log ? log : "");
    CHECK(log && strstr(log, "\"level\":\"warn\""), "at warn level");
    if (cfg) {
        CHECK(cfg->n_issuers == 1 && cfg->issuers[0].type == ISSUER_TYPE_UNKNOWN,
              "unknown type loaded as ISSUER_TYPE_UNKNOWN");
        CHECK_STREQ(cfg->issuers[0].type_name, "magic", "type name kept");
        CHECK(json_object_size(json_object_get(
                  json_object_get(cfg->ci_issuer_metadata, "gh"), "ExtensionTemplates")) == 0,
              "unknown extension key dropped");
    }
    free(log);
    config_free(cfg);
}

/* ---- meta-issuer matching ---- */

static void test_meta_match(void)
{
    const char *eks = "https://oidc.eks.*.amazonaws.com/id/*";
    CHECK(config_meta_match(eks, "https://oidc.eks.us-west-2.amazonaws.com/id/B02C93B6A2D3"),
          "EKS issuer matches");
    CHECK(config_meta_match(eks, "https://oidc.eks.a_b.amazonaws.com/id/x"), "_ in the class");
    CHECK(!config_meta_match(eks, "https://oidc.eks.us-west-2.amazonaws.com/id/B02/extra"),
          "extra path refused");
    CHECK(!config_meta_match(eks, "https://oidc.eks.us-west-2.amazonaws.com/id/B02/"),
          "trailing slash refused");
    CHECK(!config_meta_match(eks, "https://oidc.eks.us-west-2.evil.com/id/B02"),
          "other host refused");
    CHECK(!config_meta_match(eks, "https://oidc.eks.us.west.amazonaws.com/id/x"),
          "'*' does not span a dot");
    CHECK(!config_meta_match(eks, "https://oidc.eks.a/b.amazonaws.com/id/x"),
          "'*' does not span a slash");
    CHECK(!config_meta_match(eks, "https://oidc.eks.a:1.amazonaws.com/id/x"),
          "'*' does not span a colon");
    CHECK(!config_meta_match(eks, "xhttps://oidc.eks.r.amazonaws.com/id/x"), "prefix refused");
    CHECK(!config_meta_match(eks, "http://attacker/?https://oidc.eks.x.amazonaws.com/id/y"),
          "GHSA-59jp-pj84-45mr: pattern inside a query refused");
    CHECK(!config_meta_match(eks, "https://oidc.eks.r.amazonaws.com/id/x?y"), "suffix refused");
    CHECK(!config_meta_match(eks, "https://oidc.eks.r.amazonaws.com/id/x.evil.com"),
          "suffix with a dot refused");
    CHECK(!config_meta_match(eks, "https://oidc.eks..amazonaws.com/id/x"), "empty segment");
    CHECK(!config_meta_match(eks, "https://oidc.eks.r.amazonaws.com/id/"), "empty last segment");
    CHECK(!config_meta_match(eks, "https://oidc.eks.r.amazonaws.com/id"), "missing segment");
    CHECK(!config_meta_match(eks, ""), "empty url");
    CHECK(!config_meta_match(eks, "https://oidc.eks.\xc3\xa9.amazonaws.com/id/x"),
          "'*' is ASCII only");

    const char *meta = "https://a.example.com/x+y/(z)|[q]^$\\d/*";
    CHECK(config_meta_match(meta, "https://a.example.com/x+y/(z)|[q]^$\\d/abc"),
          "regex metacharacters match themselves");
    CHECK(!config_meta_match(meta, "https://a.example.com/xxy/(z)|[q]^$\\d/abc"),
          "'+' is literal");
    CHECK(!config_meta_match(meta, "https://aXexample.com/x+y/(z)|[q]^$\\d/abc"),
          "'.' is literal");
    CHECK(!config_meta_match(meta, "https://a.example.com/x+y/z/abc"), "'(' is literal");
    CHECK(config_meta_match("https://h.example.com/a.b", "https://h.example.com/a.b"),
          "no wildcard: exact");
    CHECK(!config_meta_match("https://h.example.com/a.b", "https://h.example.com/aXb"),
          "no wildcard: dot literal");

    CHECK(config_meta_match("https://*-x.example.com", "https://a-b-x.example.com"),
          "'*' backtracks over '-'");
    CHECK(!config_meta_match("https://*-x.example.com", "https://-x.example.com"),
          "'*' needs one character");
    CHECK(config_meta_match("https://**.example.com", "https://ab.example.com"), "'**'");
    CHECK(!config_meta_match("https://**.example.com", "https://a.example.com"),
          "'**' needs two characters");
    CHECK(config_meta_match("https://*.example.com/*", "https://a.example.com/b"), "two stars");

    /* linear time on a long url */
    size_t n = 1 << 20;
    char *big = malloc(n + 32);
    if (big) {
        strcpy(big, "https://");
        memset(big + 8, 'a', n);
        strcpy(big + 8 + n, ".example.com");
        clock_t t0 = clock();
        int m1 = config_meta_match("https://*a*a*a*a*a*a*a*a.example.com", big);
        big[8 + n] = '!';
        int m2 = config_meta_match("https://*a*a*a*a*a*a*a*a.example.com", big);
        double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
        CHECK(m1 == 1 && m2 == 0, "long url: match %d, no match %d", m1, m2);
        CHECK(secs < 5.0, "long url matched in linear time (%.2fs)", secs);
        free(big);
    }
}

static void test_find_issuer(void)
{
    char err[1024];
    fulcrum_config *cfg = load(
        "oidc-issuers:\n"
        "  https://token.actions.githubusercontent.com:\n"
        "    issuer-url: https://token.actions.githubusercontent.com\n"
        "    client-id: sigstore\n"
        "    type: github-workflow\n"
        "  https://b.example.com:\n"
        "    issuer-url: https://b.example.com\n"
        "    client-id: sigstore\n"
        "    type: email\n"
        "  https://a.example.com:\n"
        "    issuer-url: https://a.example.com\n"
        "    client-id: sigstore\n"
        "    type: email\n"
        "meta-issuers:\n"
        "  https://token.actions.githubusercontent.com/*:\n"
        "    client-id: enterprise\n"
        "    type: github-workflow\n"
        "  https://*.example.com:\n"
        "    client-id: wild\n"
        "    type: kubernetes\n",
        "config.yaml", err, sizeof err);
    CHECK(cfg != NULL, "lookup config loads: %s", err);
    if (!cfg)
        return;
    const issuer_config *ic = config_find_issuer(cfg, "https://token.actions.githubusercontent.com");
    CHECK(ic && !ic->is_meta && strcmp(ic->client_id, "sigstore") == 0, "exact match");
    ic = config_find_issuer(cfg, "https://token.actions.githubusercontent.com/acme");
    CHECK(ic && ic->is_meta && strcmp(ic->client_id, "enterprise") == 0, "meta match");
    CHECK_STREQ(ic ? ic->issuer_url : NULL, "https://token.actions.githubusercontent.com/*",
                "meta issuer_url is the pattern");
    ic = config_find_issuer(cfg, "https://a.example.com");
    CHECK(ic && !ic->is_meta && strcmp(ic->issuer_url, "https://a.example.com") == 0,
          "exact match wins over a matching meta pattern");
    ic = config_find_issuer(cfg, "https://c.example.com");
    CHECK(ic && ic->is_meta && strcmp(ic->client_id, "wild") == 0, "second meta pattern");
    CHECK(config_find_issuer(cfg, "https://a.example.com/") == NULL, "no partial match");
    CHECK(config_find_issuer(cfg, "https://b.example.co") == NULL, "no prefix match");
    CHECK(config_find_issuer(cfg, "https://0.example.com.evil") == NULL, "no match");
    CHECK(config_find_issuer(cfg, NULL) == NULL, "NULL iss");
    config_free(cfg);

    fulcrum_config *empty = config_new_empty();
    CHECK(empty && empty->n_issuers == 0 && json_is_object(empty->ci_issuer_metadata),
          "empty config");
    CHECK(config_find_issuer(empty, "https://a.example.com") == NULL, "empty config finds none");
    config_free(empty);
}

/* ---- GET /api/v2/configuration ---- */

static void test_api_json(void)
{
    char err[1024];
    fulcrum_config *cfg = load(
        "{\"OIDCIssuers\":{"
        "\"https://b.example.com\":{\"IssuerURL\":\"https://b.example.com\",\"ClientID\":\"sigstore\","
        "\"Type\":\"email\",\"SkipEmailVerification\":true},"
        "\"https://a.example.com\":{\"IssuerURL\":\"https://a.example.com\",\"ClientID\":\"aud-a\","
        "\"Type\":\"spiffe\",\"SPIFFETrustDomain\":\"a.example.com\"},"
        "\"https://c.example.com\":{\"IssuerURL\":\"https://c.example.com\",\"ClientID\":\"sigstore\","
        "\"Type\":\"username\",\"SubjectDomain\":\"example.com\","
        "\"ChallengeClaim\":\"preferred_username\"}},"
        "\"MetaIssuers\":{\"https://*.k8s.example.com/id/*\":{\"ClientID\":\"sigstore\","
        "\"Type\":\"kubernetes\"},"
        "\"https://ci.example.com/*\":{\"ClientID\":\"sigstore\",\"Type\":\"email\"}}}",
        "config.json", err, sizeof err);
    CHECK(cfg != NULL, "API config loads: %s", err);
    if (cfg) {
        json_t *j = config_to_api_json(cfg);
        char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        CHECK_STREQ(s,
                    "{\"issuers\":["
                    "{\"issuerUrl\":\"https://a.example.com\",\"audience\":\"aud-a\","
                    "\"challengeClaim\":\"sub\",\"spiffeTrustDomain\":\"a.example.com\","
                    "\"issuerType\":\"spiffe\",\"subjectDomain\":\"\","
                    "\"skipEmailVerification\":false},"
                    "{\"issuerUrl\":\"https://b.example.com\",\"audience\":\"sigstore\","
                    "\"challengeClaim\":\"email\",\"spiffeTrustDomain\":\"\","
                    "\"issuerType\":\"email\",\"subjectDomain\":\"\","
                    "\"skipEmailVerification\":true},"
                    "{\"issuerUrl\":\"https://c.example.com\",\"audience\":\"sigstore\","
                    "\"challengeClaim\":\"preferred_username\",\"spiffeTrustDomain\":\"\","
                    "\"issuerType\":\"username\",\"subjectDomain\":\"example.com\","
                    "\"skipEmailVerification\":false},"
                    "{\"wildcardIssuerUrl\":\"https://*.k8s.example.com/id/*\","
                    "\"audience\":\"sigstore\",\"challengeClaim\":\"sub\","
                    "\"spiffeTrustDomain\":\"\",\"issuerType\":\"kubernetes\","
                    "\"subjectDomain\":\"\",\"skipEmailVerification\":false},"
                    "{\"wildcardIssuerUrl\":\"https://ci.example.com/*\","
                    "\"audience\":\"sigstore\",\"challengeClaim\":\"email\","
                    "\"spiffeTrustDomain\":\"\",\"issuerType\":\"email\","
                    "\"subjectDomain\":\"\",\"skipEmailVerification\":false}]}",
                    "API JSON");
        free(s);
        json_decref(j);
    }
    config_free(cfg);

    fulcrum_config *empty = config_new_empty();
    json_t *j = empty ? config_to_api_json(empty) : NULL;
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    CHECK_STREQ(s, "{\"issuers\":[]}", "API JSON of an empty config");
    free(s);
    json_decref(j);
    config_free(empty);

    issuer_config ic;
    memset(&ic, 0, sizeof ic);
    ic.challenge_claim = "";
    ic.type = ISSUER_TYPE_EMAIL;
    CHECK_STREQ(config_challenge_claim(&ic), "email", "email -> email");
    ic.type = ISSUER_TYPE_CI_PROVIDER;
    CHECK_STREQ(config_challenge_claim(&ic), "sub", "others -> sub");
    ic.challenge_claim = "login";
    CHECK_STREQ(config_challenge_claim(&ic), "login", "configured claim wins");
    CHECK(issuer_type_from_name("chainguard-identity") == ISSUER_TYPE_CHAINGUARD_IDENTITY &&
              issuer_type_from_name("codefresh-workflow") == ISSUER_TYPE_CODEFRESH_WORKFLOW &&
              issuer_type_from_name("Email") == ISSUER_TYPE_UNKNOWN &&
              issuer_type_from_name(NULL) == ISSUER_TYPE_UNKNOWN,
          "type names");
}

/* ---- Fulcio's public-good configuration ---- */

static void test_public_config(void)
{
    const char *dir = getenv("FULCRUM_FIXTURES_DIR");
    CHECK(dir != NULL, "FULCRUM_FIXTURES_DIR set");
    if (!dir)
        return;
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/fulcio-public-config.yaml", dir);
    fulcrum_config *cfg = config_load_file(path, err, sizeof err);
    CHECK(cfg != NULL, "public config loads: %s", err);
    if (!cfg)
        return;
    CHECK(cfg->n_issuers == 22 && cfg->n_meta == 9, "22 issuers, 9 meta: %zu %zu",
          cfg->n_issuers, cfg->n_meta);
    CHECK(json_object_size(cfg->ci_issuer_metadata) == 6, "6 CI providers");

    const issuer_config *ic = config_find_issuer(cfg, "https://oauth2.sigstore.dev/auth");
    CHECK(ic && ic->type == ISSUER_TYPE_EMAIL, "dex is email");
    CHECK_STREQ(ic ? ic->issuer_claim : NULL, "$.federated_claims.connector_id", "dex claim");
    CHECK_STREQ(ic ? ic->environment : NULL, "production", "dex environment");
    CHECK_STREQ(ic ? ic->client_id : NULL, "sigstore", "dex client id");
    ic = config_find_issuer(cfg, "https://accounts.google.com");
    CHECK_STREQ(ic ? ic->description : NULL, "Google OIDC auth", "google description");
    CHECK_STREQ(ic ? ic->contact : NULL, "tac@sigstore.dev", "google contact");
    ic = config_find_issuer(cfg, "https://www.kaggle.com/api/v1/models/signing");
    CHECK(ic && ic->type == ISSUER_TYPE_EMAIL, "kaggle (a path in the URL)");
    ic = config_find_issuer(cfg, "https://issuer.enforce.dev");
    CHECK(ic && ic->type == ISSUER_TYPE_CHAINGUARD_IDENTITY, "chainguard");
    ic = config_find_issuer(cfg, "https://token.actions.githubusercontent.com");
    CHECK(ic && ic->type == ISSUER_TYPE_CI_PROVIDER && !ic->is_meta, "github ci-provider");
    CHECK_STREQ(ic ? ic->ci_provider : NULL, "github-workflow", "github provider (alias)");
    ic = config_find_issuer(cfg, "https://gitlab.com");
    CHECK_STREQ(ic ? ic->ci_provider : NULL, "gitlab-pipeline", "gitlab provider");
    ic = config_find_issuer(cfg, "https://dev-oidc.buddyusercontent.com");
    CHECK_STREQ(ic ? ic->environment : NULL, "staging", "buddy dev environment");

    ic = config_find_issuer(cfg, "https://oidc.eks.us-west-2.amazonaws.com/id/B02C93B6A2D30341AD");
    CHECK(ic && ic->is_meta && ic->type == ISSUER_TYPE_KUBERNETES, "EKS meta");
    ic = config_find_issuer(cfg, "https://container.googleapis.com/v1/projects/mattmoor-credit/"
                                 "locations/us-west1-b/clusters/tenant-cluster");
    CHECK(ic && ic->is_meta && ic->type == ISSUER_TYPE_KUBERNETES, "GKE meta");
    ic = config_find_issuer(cfg, "https://token.actions.githubusercontent.com/acme");
    CHECK(ic && ic->is_meta && ic->type == ISSUER_TYPE_CI_PROVIDER &&
              strcmp(ic->ci_provider, "github-workflow") == 0,
          "GitHub enterprise meta");
    ic = config_find_issuer(cfg, "https://oidc.circleci.com/org/0f4b2c9a-1e1b");
    CHECK_STREQ(ic ? ic->ci_provider : NULL, "circleci-job", "CircleCI org meta");
    ic = config_find_issuer(cfg, "https://eastus.oic.prod-aks.azure.com/tenant/guid/");
    CHECK_STREQ(ic ? ic->issuer_url : NULL, "https://*.oic.prod-aks.azure.com/*/*/", "AKS meta");
    CHECK(config_find_issuer(cfg, "http://attacker/?https://oidc.eks.x.amazonaws.com/id/y") ==
              NULL,
          "SSRF iss refused");
    CHECK(config_find_issuer(cfg, "https://oidc.eks.x.amazonaws.com.evil.com/id/y") == NULL,
          "look-alike host refused");

    CHECK_STREQ(ci_str(cfg, "github-workflow", "DefaultTemplateValues", "url"),
                "https://github.com", "github default url");
    CHECK_STREQ(ci_str(cfg, "github-workflow", "DefaultTemplateValues", "environment"), "",
                "github default environment");
    CHECK_STREQ(ci_str(cfg, "github-workflow", "ExtensionTemplates", "GithubWorkflowTrigger"),
                "event_name", "github trigger template");
    CHECK_STREQ(ci_str(cfg, "github-workflow", "ExtensionTemplates", "RunInvocationURI"),
                "{{ .url }}/{{ .repository }}/actions/runs/{{ .run_id }}/attempts/{{ .run_attempt }}",
                "github run invocation template");
    CHECK_STREQ(ci_str(cfg, "github-workflow", "ExtensionTemplates", "DeploymentEnvironment"),
                "environment", "github deployment environment");
    CHECK(json_object_size(json_object_get(json_object_get(cfg->ci_issuer_metadata,
                                                           "github-workflow"),
                                           "ExtensionTemplates")) == 20,
          "github: 20 extension templates");
    CHECK_STREQ(ci_str(cfg, "github-workflow", NULL, "SubjectAlternativeNameTemplate"),
                "{{ .url }}/{{ .job_workflow_ref }}", "github SAN");
    CHECK_STREQ(ci_str(cfg, "gitlab-pipeline", "ExtensionTemplates", "SourceRepositoryRef"),
                "refs/{{if eq .ref_type \"branch\"}}heads/{{ else }}tags/{{end}}{{ .ref }}",
                "gitlab ref template (plain scalar with quotes)");
    CHECK_STREQ(ci_str(cfg, "circleci-job", "ExtensionTemplates", "BuildConfigURI"),
                "{{.api_url}}/pipeline/{{(index . \"oidc.circleci.com/pipeline-id\")}}/config",
                "circleci template (single-quoted)");
    CHECK_STREQ(ci_str(cfg, "codefresh-workflow", "DefaultTemplateValues", "platform_url"),
                "https://g.codefresh.io", "codefresh default");
    CHECK_STREQ(ci_str(cfg, "buildkite-job", NULL, "SubjectAlternativeNameTemplate"),
                "{{.url}}/{{.organization_slug}}/{{.pipeline_slug}}",
                "buildkite SAN (trailing comment dropped)");
    CHECK_STREQ(ci_str(cfg, "buddy-pipeline", "DefaultTemplateValues", "base_url"),
                "https://app.buddy.works", "buddy default");

    json_t *api = config_to_api_json(cfg);
    json_t *arr = json_object_get(api, "issuers");
    CHECK(json_array_size(arr) == 31, "API lists 31 issuers");
    json_t *first = json_array_get(arr, 0);
    CHECK_STREQ(json_string_value(json_object_get(first, "issuerUrl")),
                "https://accounts.google.com", "API first issuer");
    CHECK_STREQ(json_string_value(json_object_get(first, "challengeClaim")), "email",
                "API first challenge claim");
    json_t *last = json_array_get(arr, 30);
    CHECK_STREQ(json_string_value(json_object_get(last, "wildcardIssuerUrl")),
                "https://token.actions.githubusercontent.com/*", "API last: meta, file order");
    json_decref(api);
    config_free(cfg);
}

/* ---- ca/serve_cmd.c's built-in config and the example files ---- */

static void test_builtin_and_examples(void)
{
    /* copied from ca/serve_cmd.c (builtin_config) */
    static const char builtin_config[] =
        "{\"OIDCIssuers\":{"
        "\"https://oauth2.sigstore.dev/auth\":{\"IssuerURL\":\"https://oauth2.sigstore.dev/auth\","
        "\"ClientID\":\"sigstore\",\"Type\":\"email\","
        "\"IssuerClaim\":\"$.federated_claims.connector_id\"},"
        "\"https://accounts.google.com\":{\"IssuerURL\":\"https://accounts.google.com\","
        "\"ClientID\":\"sigstore\",\"Type\":\"email\"},"
        "\"https://token.actions.githubusercontent.com\":{"
        "\"IssuerURL\":\"https://token.actions.githubusercontent.com\","
        "\"ClientID\":\"sigstore\",\"Type\":\"github-workflow\"}}}";
    char err[1024];
    fulcrum_config *cfg = config_load_buffer(builtin_config, sizeof builtin_config - 1,
                                             "built-in config", err, sizeof err);
    CHECK(cfg != NULL, "built-in config loads: %s", err);
    if (cfg) {
        CHECK(cfg->n_issuers == 3 && cfg->n_meta == 0, "built-in: 3 issuers");
        const issuer_config *ic = config_find_issuer(cfg, "https://token.actions.githubusercontent.com");
        CHECK(ic && ic->type == ISSUER_TYPE_GITHUB_WORKFLOW, "built-in github-workflow");
        ic = config_find_issuer(cfg, "https://oauth2.sigstore.dev/auth");
        CHECK_STREQ(ic ? ic->issuer_claim : NULL, "$.federated_claims.connector_id",
                    "built-in dex claim");
    }
    config_free(cfg);

    const char *src = getenv("FULCRUM_SOURCE_DIR");
    CHECK(src != NULL, "FULCRUM_SOURCE_DIR set");
    if (!src)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/config/examples/config.json", src);
    fulcrum_config *cj = config_load_file(path, err, sizeof err);
    CHECK(cj != NULL, "example config.json loads: %s", err);
    snprintf(path, sizeof path, "%s/config/examples/config.yaml", src);
    fulcrum_config *cy = config_load_file(path, err, sizeof err);
    CHECK(cy != NULL, "example config.yaml loads: %s", err);
    if (cj && cy) {
        CHECK(config_equal(cj, cy), "the two examples are the same configuration");
        CHECK(cj->n_issuers == 2 && cj->n_meta == 1, "examples: 2 issuers, 1 meta");
        const issuer_config *gh = config_find_issuer(cy, "https://token.actions.githubusercontent.com");
        CHECK(gh && gh->n_rules == 2 && gh->rules[0].op == CLAIM_RULE_IN &&
                  gh->rules[1].op == CLAIM_RULE_MATCH,
              "example GitHub claim policy: In, Match");
        const issuer_config *sso = config_find_issuer(cy, "https://sso.example.com/realms/engineering");
        CHECK(sso && sso->n_rules == 1 && sso->rules[0].op == CLAIM_RULE_SUFFIX,
              "example SSO claim policy: Suffix");
    }
    config_free(cj);
    config_free(cy);

    cfg = config_load_file("no/such/config.yaml", err, sizeof err);
    CHECK(cfg == NULL && strcmp(err, "no/such/config.yaml: cannot open: No such file or "
                                     "directory") == 0,
          "missing file: %s", err);
}

/* ---- the YAML reader itself ---- */

static void test_yaml_reader(void)
{
    json_t *j = NULL;
    char err[512];
    const char *doc = "a: &x {k: 1, n: ~, q: '~', t: true, e: }\n"
                      "b: *x\n"
                      "c:\n  <<: [{p: 1, k: 2}, {p: 2, z: 3}]\n  k: 9\n"
                      "d: !!str null\n"
                      "e: !!null x\n"
                      "f: \"\\u00e9\"\n";
    CHECK(config_yaml_to_json(doc, strlen(doc), &j, err, sizeof err) == 0, "reads: %s", err);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    CHECK_STREQ(s,
                "{\"a\":{\"e\":null,\"k\":\"1\",\"n\":null,\"q\":\"~\",\"t\":\"true\"},"
                "\"b\":{\"e\":null,\"k\":\"1\",\"n\":null,\"q\":\"~\",\"t\":\"true\"},"
                "\"c\":{\"k\":\"9\",\"p\":\"1\",\"z\":\"3\"},"
                "\"d\":\"null\",\"e\":null,\"f\":\"\xc3\xa9\"}",
                "YAML -> JSON");
    free(s);
    json_decref(j);

    /* a billion laughs: shared, counted, refused */
    char lol[2048] = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
    for (char c = 'b'; c <= 'i'; c++) {
        char line[128];
        snprintf(line, sizeof line, "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n",
                 c, c, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
        strcat(lol, line);
    }
    j = NULL;
    CHECK(config_yaml_to_json(lol, strlen(lol), &j, err, sizeof err) != 0 && j == NULL,
          "billion laughs refused");
    CHECK(strstr(err, "more than 1000000 nodes once aliases are expanded") != NULL,
          "billion laughs message: %s", err);

    char deep[2000];
    memset(deep, '[', 600);
    deep[600] = '\0';
    CHECK(config_yaml_to_json(deep, strlen(deep), &j, err, sizeof err) != 0 &&
              strstr(err, "nested more than 256 levels deep"),
          "deep nesting refused: %s", err);
}

int main(void)
{
    test_json_yaml_same();
    test_bad_values();
    test_accepted();
    test_claim_policy_parse();
    test_loopback_meta();
    test_warnings();
    test_meta_match();
    test_find_issuer();
    test_api_json();
    test_public_config();
    test_builtin_and_examples();
    test_yaml_reader();
    CHECK_MAIN_END();
}
