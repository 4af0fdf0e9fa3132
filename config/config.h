/*
 * config/config.h: Fulcio's identity configuration file (JSON or YAML), loaded and validated.
 *
 * Format (fulcio-compat.md §3.1): top-level OIDCIssuers / oidc-issuers, MetaIssuers / meta-issuers,
 * CIIssuerMetadata / ci-issuer-metadata. Keys are matched the way Go's JSON decoder and Fulcio's
 * YAML tags do: case-insensitively, and the YAML dashed names as well as the JSON CamelCase names.
 * JSON is tried first, then YAML (with anchors and aliases). An unknown key is a warning (logged),
 * a bad value stops loading with "<file>: <key path>: <reason>".
 *
 * Ownership: a fulcrum_config and everything in it is owned by the config; it is immutable once
 * loaded and may be shared read-only by all threads. config_free releases it.
 */
#ifndef FULCRUM_CONFIG_CONFIG_H
#define FULCRUM_CONFIG_CONFIG_H

#include <jansson.h>
#include <regex.h>
#include <stddef.h>

enum issuer_type {
    ISSUER_TYPE_UNKNOWN = 0, /* unknown type string: loaded, reported, never served */
    ISSUER_TYPE_EMAIL,
    ISSUER_TYPE_SPIFFE,
    ISSUER_TYPE_GITHUB_WORKFLOW,
    ISSUER_TYPE_GITLAB_PIPELINE,
    ISSUER_TYPE_BUILDKITE_JOB,
    ISSUER_TYPE_KUBERNETES,
    ISSUER_TYPE_URI,
    ISSUER_TYPE_USERNAME,
    ISSUER_TYPE_CODEFRESH_WORKFLOW,
    ISSUER_TYPE_CHAINGUARD_IDENTITY,
    ISSUER_TYPE_CI_PROVIDER,
};

/*
 * ClaimPolicy / claim-policy (Fulcrum's addition, Fulcio issue #1989): optional allow rules over a
 * verified token's claims, per issuer entry; every rule must hold. Evaluated by
 * oidc/claim_policy.h; never reported by /api/v2/configuration. Syntax (JSON / YAML):
 *   "ClaimPolicy": [{"Claim": "repository_owner", "In": ["acme", "acme-labs"]},
 *                   {"Claim": "sub", "Match": "^repo:acme/[^:]+:ref:refs/heads/main$"}]
 *   claim-policy: [{claim: repository_owner, in: [acme, acme-labs]}, ...]
 * Claim: a top-level claim name taken literally (dots included: "oidc.circleci.com/project-id"),
 * or a path "$.a.b" / "$['kubernetes.io'].namespace" through nested objects.
 * Exactly one operator per rule: In (non-empty list), Equals, Prefix, Suffix (non-empty), Match
 * (POSIX ERE anchored with ^...$, each top-level | branch too). Rule keys match
 * case-insensitively (YAML: claim, in, equals, ...); an unknown key in a rule stops loading.
 */
enum claim_rule_op {
    CLAIM_RULE_IN = 1, /* the value is one of values[0..n_values) */
    CLAIM_RULE_EQUALS, /* the value is values[0] */
    CLAIM_RULE_PREFIX, /* the value starts with values[0] */
    CLAIM_RULE_SUFFIX, /* the value ends with values[0] */
    CLAIM_RULE_MATCH,  /* the value matches re, compiled from values[0] */
};

struct claim_rule {
    char *claim;       /* as written in the file, for messages */
    char **path;       /* object member names leading to the value (one for a plain name) */
    size_t n_path;
    enum claim_rule_op op;
    char **values;     /* In: the list; the other operators: one string */
    size_t n_values;
    regex_t re;        /* CLAIM_RULE_MATCH only: REG_EXTENDED | REG_NOSUB */
};

/* One issuer entry. Strings are NUL-terminated, never NULL: absent values are "". */
typedef struct issuer_config {
    char *issuer_url;          /* OIDCIssuers: the expected iss; MetaIssuers: the wildcard pattern */
    char *client_id;           /* required audience */
    char *type_name;           /* the type string as written in the file */
    enum issuer_type type;
    char *ci_provider;         /* key into CIIssuerMetadata */
    char *issuer_claim;        /* JSONPath, email only, e.g. "$.federated_claims.connector_id" */
    char *subject_domain;
    char *spiffe_trust_domain;
    char *challenge_claim;     /* as configured ("" if not); see config_challenge_claim() */
    char *description;
    char *contact;
    char *environment;
    char *ca_cert_pem;         /* CACert: PEM text of a private TLS root for this issuer */
    int skip_email_verification;
    int is_meta;               /* 1 for a MetaIssuers entry */
    struct claim_rule *rules;  /* ClaimPolicy, in file order (NULL when n_rules is 0) */
    size_t n_rules;
} issuer_config;

typedef struct fulcrum_config {
    issuer_config *issuers;    /* OIDCIssuers, sorted by issuer_url */
    size_t n_issuers;
    issuer_config *meta;       /* MetaIssuers, in file order */
    size_t n_meta;
    json_t *ci_issuer_metadata; /* CIIssuerMetadata as a JSON object with canonical keys
                                   (DefaultTemplateValues, ExtensionTemplates,
                                   SubjectAlternativeNameTemplate); kept for the ci-provider
                                   type. Never NULL (empty object). */
} fulcrum_config;

/* Loads and validates the file at `path`. On failure returns NULL and writes
 * "<path>: <key>: <reason>" into err. */
fulcrum_config *config_load_file(const char *path, char *err, size_t errlen);

/* The same from memory; `name` is used in messages in place of a path. */
fulcrum_config *config_load_buffer(const char *data, size_t len, const char *name, char *err,
                                   size_t errlen);

/* A config with no issuers (what `serve` uses when no file is given and none exists: see main). */
fulcrum_config *config_new_empty(void);

void config_free(fulcrum_config *cfg);

/* Issuer for a token's iss: exact match in OIDCIssuers first, then MetaIssuers whose pattern
 * matches the whole of iss (each '*' matches [-_a-zA-Z0-9]+, everything else literally).
 * Returns NULL when none matches. The pointer lives as long as cfg. */
const issuer_config *config_find_issuer(const fulcrum_config *cfg, const char *iss);

/* Whole-string wildcard match as above (exported for tests). 1 = match. */
int config_meta_match(const char *pattern, const char *url);

/* The challenge claim /api/v2/configuration reports: ChallengeClaim, else "email" for email
 * issuers, else "sub". */
const char *config_challenge_claim(const issuer_config *ic);

/* {"issuers":[...]} exactly as Fulcio's GetConfiguration answers (fulcio-compat.md §1.5),
 * every field emitted. Caller owns the result. */
json_t *config_to_api_json(const fulcrum_config *cfg);

/* "email" -> ISSUER_TYPE_EMAIL, ...; unknown -> ISSUER_TYPE_UNKNOWN. */
enum issuer_type issuer_type_from_name(const char *name);

#endif
