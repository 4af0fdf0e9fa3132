/*
 * config/config.c: loading the identity configuration into a fulcrum_config, with validation.
 *
 * The text is decoded as JSON first (jansson, duplicate keys refused), else as YAML
 * (config_yaml.c); both give a jansson tree that one decoder walks. Keys are matched like Go's
 * encoding/json (exact, then case-insensitive) against the JSON names, and against Fulcio's
 * YAML tags as well.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "config/config.h"
#include "config/config_internal.h"

#define COMPONENT "config"
#define PATH_MAX_LEN 1024
#define CONFIG_MAX_FILE (16u << 20)

enum fkind { F_STR, F_BOOL, F_RULES };

struct field {
    const char *json, *yaml;
    enum fkind kind;
    size_t off;
};

#define STRF(j, y, m) {j, y, F_STR, offsetof(issuer_config, m)}
static const struct field issuer_fields[] = {
    STRF("IssuerURL", "issuer-url", issuer_url),
    STRF("ClientID", "client-id", client_id),
    STRF("Type", "type", type_name),
    STRF("CIProvider", "ci-provider", ci_provider),
    STRF("IssuerClaim", "issuer-claim", issuer_claim),
    STRF("SubjectDomain", "subject-domain", subject_domain),
    STRF("SPIFFETrustDomain", "spiffe-trust-domain", spiffe_trust_domain),
    STRF("ChallengeClaim", "challenge-claim", challenge_claim),
    STRF("Description", "description", description),
    STRF("Contact", "contact", contact),
    STRF("Environment", "environment", environment),
    STRF("CACert", "ca-cert", ca_cert_pem),
    {"SkipEmailVerification", "skip-email-verification", F_BOOL,
     offsetof(issuer_config, skip_email_verification)},
    /* Fulcrum's addition (claim_policy_parse.c); not part of Fulcio's format */
    {"ClaimPolicy", "claim-policy", F_RULES, offsetof(issuer_config, rules)},
};
#undef STRF
#define N_ISSUER_FIELDS (sizeof issuer_fields / sizeof issuer_fields[0])
enum {
    FI_ISSUER_URL, FI_CLIENT_ID, FI_TYPE, FI_CI_PROVIDER, FI_ISSUER_CLAIM, FI_SUBJECT_DOMAIN,
    FI_SPIFFE_TD, FI_CHALLENGE_CLAIM, FI_DESCRIPTION, FI_CONTACT, FI_ENVIRONMENT, FI_CA_CERT,
    FI_SKIP_EMAIL, FI_CLAIM_POLICY,
};

static const struct field top_fields[] = {
    {"OIDCIssuers", "oidc-issuers", F_STR, 0},
    {"MetaIssuers", "meta-issuers", F_STR, 0},
    {"CIIssuerMetadata", "ci-issuer-metadata", F_STR, 0},
};
enum { TOP_OIDC, TOP_META, TOP_CI };

static const struct field meta_fields[] = {
    {"DefaultTemplateValues", "default-template-values", F_STR, 0},
    {"ExtensionTemplates", "extension-templates", F_STR, 0},
    {"SubjectAlternativeNameTemplate", "subject-alternative-name-template", F_STR, 0},
};
enum { MF_DEFAULTS, MF_EXTENSIONS, MF_SAN };

/* certificate.Extensions: Go field names (JSON) and yaml tags ("issuer"/"subject" untagged). */
static const struct field ext_fields[] = {
    {"Issuer", "issuer", F_STR, 0},
    {"Subject", "subject", F_STR, 0},
    {"GithubWorkflowTrigger", "github-workflow-trigger", F_STR, 0},
    {"GithubWorkflowSHA", "github-workflow-sha", F_STR, 0},
    {"GithubWorkflowName", "github-workflow-name", F_STR, 0},
    {"GithubWorkflowRepository", "github-workflow-repository", F_STR, 0},
    {"GithubWorkflowRef", "github-workflow-ref", F_STR, 0},
    {"BuildSignerURI", "build-signer-uri", F_STR, 0},
    {"BuildSignerDigest", "build-signer-digest", F_STR, 0},
    {"RunnerEnvironment", "runner-environment", F_STR, 0},
    {"SourceRepositoryURI", "source-repository-uri", F_STR, 0},
    {"SourceRepositoryDigest", "source-repository-digest", F_STR, 0},
    {"SourceRepositoryRef", "source-repository-ref", F_STR, 0},
    {"SourceRepositoryIdentifier", "source-repository-identifier", F_STR, 0},
    {"SourceRepositoryOwnerURI", "source-repository-owner-uri", F_STR, 0},
    {"SourceRepositoryOwnerIdentifier", "source-repository-owner-identifier", F_STR, 0},
    {"BuildConfigURI", "build-config-uri", F_STR, 0},
    {"BuildConfigDigest", "build-config-digest", F_STR, 0},
    {"BuildTrigger", "build-trigger", F_STR, 0},
    {"RunInvocationURI", "run-invocation-uri", F_STR, 0},
    {"SourceRepositoryVisibilityAtSigning", "source-repository-visibility-at-signing", F_STR, 0},
    {"DeploymentEnvironment", "deployment-environment", F_STR, 0},
};
#define N_EXT_FIELDS (sizeof ext_fields / sizeof ext_fields[0])

struct ctx {
    const char *name; /* file path or buffer name, for messages */
    int yaml;         /* the text was YAML: scalars are text */
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int fail(struct ctx *c, const char *path,
                                                      const char *fmt, ...)
{
    char reason[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (path && *path)
        snprintf(c->err, c->errlen, "%s: %s: %s", c->name, path, reason);
    else
        snprintf(c->err, c->errlen, "%s: %s", c->name, reason);
    return -1;
}

static void join(char *out, const char *base, const char *key, int bracket)
{
    snprintf(out, PATH_MAX_LEN, "%s", base);
    config_path_append(out, PATH_MAX_LEN, key, bracket);
}

/* Go's encoding/json field matching (exact name, then ASCII case-insensitive), over the JSON
 * names and the YAML tags. Returns the field index, -1 if none. */
static int field_find(const struct field *f, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(key, f[i].json) == 0 || strcmp(key, f[i].yaml) == 0)
            return (int)i;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(key, f[i].json) == 0 || strcasecmp(key, f[i].yaml) == 0)
            return (int)i;
    return -1;
}

/* Naming style for fields absent from the file: that of the key naming the section. */
static int key_is_yaml_style(const char *key)
{
    return strchr(key, '-') != NULL;
}

static void warn_unknown(const struct ctx *c, const char *path)
{
    log_warn(COMPONENT, "%s: %s: unknown key, ignored", c->name, path);
}

/* A string value: a JSON string, null (= absent, *out stays NULL) or, from YAML, any scalar. */
static int get_string(struct ctx *c, const char *path, const json_t *v, const char **out)
{
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return fail(c, path, "must be a string");
    if (strlen(json_string_value(v)) != json_string_length(v))
        return fail(c, path, "must not contain a NUL character");
    *out = json_string_value(v);
    return 0;
}

/* A bool: JSON true/false; from YAML the plain forms Go's yaml.v3 takes for a bool field. */
static int get_bool(struct ctx *c, const char *path, const json_t *v, int *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "y", "Y", "yes", "Yes", "YES",
                                      "on", "On", "ON"};
    static const char *const no[] = {"false", "False", "FALSE", "n", "N", "no", "No", "NO",
                                     "off", "Off", "OFF"};
    *out = 0;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (c->yaml && json_is_string(v)) {
        const char *s = json_string_value(v);
        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
            if (strcmp(s, yes[i]) == 0) {
                *out = 1;
                return 0;
            }
            if (strcmp(s, no[i]) == 0)
                return 0;
        }
    }
    return fail(c, path, "must be true or false");
}

/* ---- CIIssuerMetadata ---- */

/* On failure *out is NULL. */
static int parse_string_map(struct ctx *c, const char *path, json_t *v, json_t **out)
{
    *out = NULL;
    if (v && !json_is_null(v) && !json_is_object(v))
        return fail(c, path, "must be a map");
    json_t *m = json_object();
    if (!m)
        return fail(c, path, "out of memory");
    const char *k;
    json_t *e;
    if (v && json_is_object(v)) {
        json_object_foreach(v, k, e) {
            char p[PATH_MAX_LEN];
            const char *s;
            join(p, path, k, 0);
            if (get_string(c, p, e, &s) != 0)
                goto bad;
            if (json_object_set_new(m, k, json_string(s ? s : "")) != 0) {
                fail(c, p, "out of memory");
                goto bad;
            }
        }
    }
    *out = m;
    return 0;
bad:
    json_decref(m);
    return -1;
}

/* ExtensionTemplates with canonical keys. On failure *out is NULL. */
static int parse_templates(struct ctx *c, const char *path, json_t *v, json_t **out)
{
    *out = NULL;
    if (v && !json_is_null(v) && !json_is_object(v))
        return fail(c, path, "must be a map");
    const char *seen[N_EXT_FIELDS] = {0};
    const char *vals[N_EXT_FIELDS] = {0};
    const char *k;
    json_t *e;
    if (v && json_is_object(v)) {
        json_object_foreach(v, k, e) {
            char p[PATH_MAX_LEN], why[200];
            join(p, path, k, 0);
            int fi = field_find(ext_fields, N_EXT_FIELDS, k);
            if (fi < 0) {
                warn_unknown(c, p);
                continue;
            }
            if (seen[fi])
                return fail(c, p, "same field as \"%.200s\"", seen[fi]);
            seen[fi] = k;
            if (get_string(c, p, e, &vals[fi]) != 0)
                return -1;
            if (vals[fi] && config_check_template(vals[fi], why, sizeof why) != 0)
                return fail(c, p, "%s", why);
        }
    }
    json_t *m = json_object();
    if (!m)
        return fail(c, path, "out of memory");
    for (size_t i = 0; i < N_EXT_FIELDS; i++) {
        if (seen[i] &&
            json_object_set_new(m, ext_fields[i].json, json_string(vals[i] ? vals[i] : "")) != 0) {
            json_decref(m);
            return fail(c, path, "out of memory");
        }
    }
    *out = m;
    return 0;
}

/* One CIIssuerMetadata entry, as {"DefaultTemplateValues":{..},"ExtensionTemplates":{..},
 * "SubjectAlternativeNameTemplate":".."}. */
static int parse_ci_entry(struct ctx *c, const char *path, json_t *v, json_t **out)
{
    *out = NULL;
    if (!json_is_object(v))
        return fail(c, path, "must be a map");
    int yaml_style = 0;
    const char *seen[3] = {0};
    json_t *vals[3] = {0};
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e) {
        char p[PATH_MAX_LEN];
        join(p, path, k, 0);
        int fi = field_find(meta_fields, 3, k);
        if (fi < 0) {
            warn_unknown(c, p);
            continue;
        }
        if (seen[fi])
            return fail(c, p, "same field as \"%.200s\"", seen[fi]);
        seen[fi] = k;
        vals[fi] = e;
        yaml_style |= key_is_yaml_style(k);
    }
    char p[PATH_MAX_LEN], why[200];
    json_t *defaults, *templates;
    const char *san = NULL;
    join(p, path, seen[MF_DEFAULTS] ? seen[MF_DEFAULTS] : meta_fields[MF_DEFAULTS].json, 0);
    if (parse_string_map(c, p, vals[MF_DEFAULTS], &defaults) != 0)
        return -1;
    join(p, path, seen[MF_EXTENSIONS] ? seen[MF_EXTENSIONS] : meta_fields[MF_EXTENSIONS].json, 0);
    if (parse_templates(c, p, vals[MF_EXTENSIONS], &templates) != 0) {
        json_decref(defaults);
        return -1;
    }
    json_t *entry = json_object();
    /* json_object_set_new consumes the value even when it fails */
    int oom = !entry;
    oom |= json_object_set_new(entry, "DefaultTemplateValues", defaults) != 0;
    oom |= json_object_set_new(entry, "ExtensionTemplates", templates) != 0;
    if (oom) {
        json_decref(entry);
        return fail(c, path, "out of memory");
    }
    join(p, path,
         seen[MF_SAN] ? seen[MF_SAN] : yaml_style ? meta_fields[MF_SAN].yaml
                                                  : meta_fields[MF_SAN].json,
         0);
    if (get_string(c, p, vals[MF_SAN], &san) != 0 ||
        (san && config_check_template(san, why, sizeof why) != 0 && fail(c, p, "%s", why))) {
        json_decref(entry);
        return -1;
    }
    if (json_object_set_new(entry, "SubjectAlternativeNameTemplate", json_string(san ? san : ""))) {
        json_decref(entry);
        return fail(c, path, "out of memory");
    }
    *out = entry;
    return 0;
}

static int parse_ci_metadata(struct ctx *c, const char *sec, json_t *v, json_t *out)
{
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return fail(c, sec, "must be a map");
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e) {
        char p[PATH_MAX_LEN];
        json_t *entry;
        join(p, sec, k, 1);
        if (parse_ci_entry(c, p, e, &entry) != 0)
            return -1;
        if (json_object_set_new(out, k, entry) != 0)
            return fail(c, p, "out of memory");
    }
    return 0;
}

/* ---- issuers ---- */

static void issuer_clear(issuer_config *ic)
{
    for (size_t i = 0; i < N_ISSUER_FIELDS; i++)
        if (issuer_fields[i].kind == F_STR)
            free(*(char **)((char *)ic + issuer_fields[i].off));
    config_claim_rules_free(ic->rules, ic->n_rules);
    memset(ic, 0, sizeof *ic);
}

static const char *fname(const char *const *seen, size_t fi, int yaml_style)
{
    if (seen[fi])
        return seen[fi];
    return yaml_style ? issuer_fields[fi].yaml : issuer_fields[fi].json;
}

/* The rules that need the whole entry. `base` is the entry's path. */
static int validate_issuer(struct ctx *c, const char *base, const char *key, int meta,
                           const char *const *seen, int ys, const issuer_config *ic,
                           const json_t *ci_meta)
{
    char p[PATH_MAX_LEN], why[300];
#define FP(fi) (join(p, base, fname(seen, fi, ys), 0), p)
    if (meta) {
        if (config_check_meta_pattern(key, why, sizeof why) != 0)
            return fail(c, base, "not a valid issuer URL pattern: %s", why);
    } else {
        if (!*ic->issuer_url)
            return fail(c, FP(FI_ISSUER_URL), "required");
        if (strcmp(ic->issuer_url, key) != 0)
            return fail(c, FP(FI_ISSUER_URL), "\"%.300s\" differs from the map key",
                        ic->issuer_url);
        if (config_check_issuer_url(ic->issuer_url, why, sizeof why) != 0)
            return fail(c, FP(FI_ISSUER_URL), "%s", why);
    }
    if (!*ic->client_id)
        return fail(c, FP(FI_CLIENT_ID), "required");
    if (!*ic->type_name)
        return fail(c, FP(FI_TYPE), "required");
    if (ic->type == ISSUER_TYPE_UNKNOWN) {
        if (!*ic->challenge_claim) /* Fulcio: "issuer missing challenge claim" */
            return fail(c, FP(FI_TYPE), "unknown issuer type \"%.100s\" (and no %s)",
                        ic->type_name, fname(seen, FI_CHALLENGE_CLAIM, ys));
        log_warn(COMPONENT, "%s: %s: unknown issuer type \"%.100s\": loaded, never served",
                 c->name, FP(FI_TYPE), ic->type_name);
    }
    if (*ic->issuer_claim && ic->type != ISSUER_TYPE_EMAIL)
        return fail(c, FP(FI_ISSUER_CLAIM), "only email issuers can use issuer claim mapping");
    switch (ic->type) {
    case ISSUER_TYPE_SPIFFE:
        if (meta)
            return fail(c, FP(FI_TYPE), "spiffe meta-issuers are not supported");
        if (!*ic->spiffe_trust_domain)
            return fail(c, FP(FI_SPIFFE_TD), "required for type spiffe");
        if (config_check_spiffe_trust_domain(ic->spiffe_trust_domain, why, sizeof why) != 0)
            return fail(c, FP(FI_SPIFFE_TD), "invalid trust domain: %s", why);
        break;
    case ISSUER_TYPE_URI:
    case ISSUER_TYPE_USERNAME: {
        int uri = ic->type == ISSUER_TYPE_URI;
        if (!*ic->subject_domain)
            return fail(c, FP(FI_SUBJECT_DOMAIN), "required for type %s", ic->type_name);
        char sch[64], host[512];
        int has = config_url_split(ic->subject_domain, sch, sizeof sch, host, sizeof host);
        if (meta && has < 0)
            return fail(c, FP(FI_SUBJECT_DOMAIN), "is not a valid URL");
        if (meta && uri && !has)
            return fail(c, FP(FI_SUBJECT_DOMAIN), "must contain a scheme for type uri");
        if (meta && !uri && has)
            return fail(c, FP(FI_SUBJECT_DOMAIN), "must not contain a scheme for type username");
        if (!meta &&
            (uri ? config_check_uri_subject_domain(ic->subject_domain, ic->issuer_url, why,
                                                   sizeof why)
                 : config_check_username_subject_domain(ic->subject_domain, ic->issuer_url, why,
                                                        sizeof why)) != 0)
            return fail(c, FP(FI_SUBJECT_DOMAIN), "%s", why);
        break;
    }
    case ISSUER_TYPE_CI_PROVIDER:
        if (!*ic->ci_provider)
            return fail(c, FP(FI_CI_PROVIDER), "required for type ci-provider");
        if (!json_object_get(ci_meta, ic->ci_provider))
            return fail(c, FP(FI_CI_PROVIDER), "\"%.200s\" is not a key of %s", ic->ci_provider,
                        ys ? "ci-issuer-metadata" : "CIIssuerMetadata");
        break;
    default:
        break;
    }
    if (*ic->ca_cert_pem && config_check_ca_pem(ic->ca_cert_pem, why, sizeof why) != 0)
        return fail(c, FP(FI_CA_CERT), "%s", why);
#undef FP
    return 0;
}

static int parse_issuer(struct ctx *c, const char *sec, const char *key, json_t *v, int meta,
                        const json_t *ci_meta, issuer_config *ic)
{
    char base[PATH_MAX_LEN];
    join(base, sec, key, 1);
    memset(ic, 0, sizeof *ic);
    ic->is_meta = meta;
    if (!json_is_object(v))
        return fail(c, base, "must be a map");
    const char *seen[N_ISSUER_FIELDS] = {0};
    const char *vals[N_ISSUER_FIELDS] = {0};
    const json_t *policy = NULL;
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e) {
        char p[PATH_MAX_LEN];
        join(p, base, k, 0);
        int fi = field_find(issuer_fields, N_ISSUER_FIELDS, k);
        if (fi < 0) {
            warn_unknown(c, p);
            continue;
        }
        if (seen[fi])
            return fail(c, p, "same field as \"%.200s\"", seen[fi]);
        seen[fi] = k;
        if (issuer_fields[fi].kind == F_RULES) {
            policy = e;
        } else if (issuer_fields[fi].kind == F_BOOL) {
            if (get_bool(c, p, e, (int *)((char *)ic + issuer_fields[fi].off)) != 0)
                return -1;
        } else if (get_string(c, p, e, &vals[fi]) != 0) {
            return -1;
        }
    }
    if (meta && vals[FI_ISSUER_URL]) /* Fulcio ignores it: the map key is the pattern */
        vals[FI_ISSUER_URL] = NULL;
    for (size_t i = 0; i < N_ISSUER_FIELDS; i++) {
        if (issuer_fields[i].kind != F_STR)
            continue;
        char **slot = (char **)((char *)ic + issuer_fields[i].off);
        *slot = strdup(i == FI_ISSUER_URL && meta ? key : vals[i] ? vals[i] : "");
        if (!*slot)
            return fail(c, base, "out of memory");
    }
    ic->type = issuer_type_from_name(ic->type_name);
    int ys = key_is_yaml_style(sec);
    if (validate_issuer(c, base, key, meta, seen, ys, ic, ci_meta) != 0)
        return -1;
    if (policy) {
        char p[PATH_MAX_LEN], epath[PATH_MAX_LEN], why[600];
        join(p, base, seen[FI_CLAIM_POLICY], 0);
        if (config_claim_policy_parse(policy, p, ys || key_is_yaml_style(seen[FI_CLAIM_POLICY]),
                                      &ic->rules, &ic->n_rules, epath, sizeof epath, why,
                                      sizeof why) != 0)
            return fail(c, epath, "%s", why);
    }
    return 0;
}

static int cmp_issuer(const void *a, const void *b)
{
    return strcmp(((const issuer_config *)a)->issuer_url, ((const issuer_config *)b)->issuer_url);
}

static int parse_issuers(struct ctx *c, const char *sec, json_t *v, int meta,
                         const json_t *ci_meta, issuer_config **out, size_t *n)
{
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return fail(c, sec, "must be a map");
    size_t cap = json_object_size(v);
    if (cap == 0)
        return 0;
    *out = calloc(cap, sizeof **out);
    if (!*out)
        return fail(c, sec, "out of memory");
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e) {
        int rc = parse_issuer(c, sec, k, e, meta, ci_meta, &(*out)[*n]);
        (*n)++; /* counted even on failure so that config_free releases it */
        if (rc != 0)
            return -1;
    }
    if (!meta)
        qsort(*out, *n, sizeof **out, cmp_issuer);
    return 0;
}

/* ---- top level ---- */

static fulcrum_config *decode(struct ctx *c, json_t *root)
{
    fulcrum_config *cfg = config_new_empty();
    if (!cfg) {
        fail(c, NULL, "out of memory");
        return NULL;
    }
    if (json_is_null(root)) {
        log_warn(COMPONENT, "%s: empty configuration: no issuers", c->name);
        return cfg;
    }
    if (!json_is_object(root)) {
        fail(c, NULL, "the document must be a map (OIDCIssuers, MetaIssuers, CIIssuerMetadata)");
        config_free(cfg);
        return NULL;
    }
    const char *seen[3] = {0};
    json_t *vals[3] = {0};
    const char *k;
    json_t *e;
    json_object_foreach(root, k, e) {
        int fi = field_find(top_fields, 3, k);
        if (fi < 0) {
            char p[PATH_MAX_LEN] = "";
            config_path_append(p, sizeof p, k, 0);
            warn_unknown(c, p);
            continue;
        }
        if (seen[fi]) {
            fail(c, k, "same field as \"%.200s\"", seen[fi]);
            config_free(cfg);
            return NULL;
        }
        seen[fi] = k;
        vals[fi] = e;
    }
    if (parse_ci_metadata(c, seen[TOP_CI], vals[TOP_CI], cfg->ci_issuer_metadata) != 0 ||
        parse_issuers(c, seen[TOP_OIDC], vals[TOP_OIDC], 0, cfg->ci_issuer_metadata,
                      &cfg->issuers, &cfg->n_issuers) != 0 ||
        parse_issuers(c, seen[TOP_META], vals[TOP_META], 1, cfg->ci_issuer_metadata, &cfg->meta,
                      &cfg->n_meta) != 0) {
        config_free(cfg);
        return NULL;
    }
    if (cfg->n_issuers + cfg->n_meta == 0)
        log_warn(COMPONENT, "%s: no issuers configured: every signing request will be refused",
                 c->name);
    return cfg;
}

static int first_char_is_brace(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n')
            continue;
        return data[i] == '{';
    }
    return 0;
}

fulcrum_config *config_load_buffer(const char *data, size_t len, const char *name, char *err,
                                   size_t errlen)
{
    struct ctx c = {name ? name : "config", 0, err, errlen};
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* Fulcio: JSON first, then YAML. A duplicate key in JSON text is reported by the YAML
         * reader with its key path. */
        char yerr[512];
        if (config_yaml_to_json(data, len, &root, yerr, sizeof yerr) != 0) {
            int dup = json_error_code(&jerr) == json_error_duplicate_key;
            if (first_char_is_brace(data, len) && !(dup && strstr(yerr, "duplicate key")))
                fail(&c, NULL, "not valid JSON: line %d column %d: %s", jerr.line, jerr.column,
                     jerr.text);
            else
                fail(&c, NULL, "%s", yerr);
            return NULL;
        }
        c.yaml = 1;
    }
    fulcrum_config *cfg = decode(&c, root);
    json_decref(root);
    return cfg;
}

fulcrum_config *config_load_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
        if (len == cap) {
            if (cap >= CONFIG_MAX_FILE) {
                snprintf(err, errlen, "%s: larger than %u bytes", path, CONFIG_MAX_FILE);
                free(buf);
                fclose(f);
                return NULL;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int rerr = ferror(f);
    fclose(f);
    if (!buf || rerr) {
        snprintf(err, errlen, "%s: cannot read: %s", path, buf ? "I/O error" : "out of memory");
        free(buf);
        return NULL;
    }
    fulcrum_config *cfg = config_load_buffer(buf, len, path, err, errlen);
    free(buf);
    return cfg;
}

fulcrum_config *config_new_empty(void)
{
    fulcrum_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return NULL;
    cfg->ci_issuer_metadata = json_object();
    if (!cfg->ci_issuer_metadata) {
        free(cfg);
        return NULL;
    }
    return cfg;
}

void config_free(fulcrum_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_issuers; i++)
        issuer_clear(&cfg->issuers[i]);
    for (size_t i = 0; i < cfg->n_meta; i++)
        issuer_clear(&cfg->meta[i]);
    free(cfg->issuers);
    free(cfg->meta);
    json_decref(cfg->ci_issuer_metadata);
    free(cfg);
}
