/*
 * oidc/ci_template.c: the ci-provider issuer type: claims -> template data, Fulcio's
 * applyTemplateOrReplace, and the principal built from CIIssuerMetadata (see ci_template.h).
 */
#include "oidc/ci_template.h"

#include <stdlib.h>
#include <string.h>

#include "oidc/go_strconv.h"
#include "oidc/go_template.h"
#include "oidc/go_url.h"
#include "oidc/principal_internal.h"
#include "common/strbuf.h"

/* ExtensionTemplates keys (Go field names of certificate.Extensions, in field order) and the
 * OID arc each fills. Issuer and Subject are not templated: always iss and sub. */
static const struct {
    const char *field;
    int oid;
} ext_fields[] = {
    {"GithubWorkflowTrigger", 2},
    {"GithubWorkflowSHA", 3},
    {"GithubWorkflowName", 4},
    {"GithubWorkflowRepository", 5},
    {"GithubWorkflowRef", 6},
    {"BuildSignerURI", 9},
    {"BuildSignerDigest", 10},
    {"RunnerEnvironment", 11},
    {"SourceRepositoryURI", 12},
    {"SourceRepositoryDigest", 13},
    {"SourceRepositoryRef", 14},
    {"SourceRepositoryIdentifier", 15},
    {"SourceRepositoryOwnerURI", 16},
    {"SourceRepositoryOwnerIdentifier", 17},
    {"BuildConfigURI", 18},
    {"BuildConfigDigest", 19},
    {"BuildTrigger", 20},
    {"RunInvocationURI", 21},
    {"SourceRepositoryVisibilityAtSigning", 22},
    {"DeploymentEnvironment", 23},
};

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* fmt's %v of a decoded JSON value (nested: numbers are float64 printed as %v). */
static void go_v(struct strbuf *b, const json_t *v)
{
    char *num;
    switch (json_typeof(v)) {
    case JSON_STRING: sb_putn(b, json_string_value(v), json_string_length(v)); return;
    case JSON_TRUE: sb_puts(b, "true"); return;
    case JSON_FALSE: sb_puts(b, "false"); return;
    case JSON_NULL: sb_puts(b, "<nil>"); return;
    case JSON_INTEGER:
    case JSON_REAL:
        num = go_format_float_v(json_number_value(v));
        if (!num)
            b->oom = 1;
        else
            sb_puts(b, num);
        free(num);
        return;
    case JSON_ARRAY:
        sb_putc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                sb_putc(b, ' ');
            go_v(b, json_array_get(v, i));
        }
        sb_putc(b, ']');
        return;
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        const char **keys = calloc(n ? n : 1, sizeof *keys);
        if (!keys) {
            b->oom = 1;
            return;
        }
        const char *k;
        const json_t *e;
        json_object_foreach((json_t *)v, k, e) keys[i++] = k;
        qsort(keys, n, sizeof *keys, cmp_keys);
        sb_puts(b, "map[");
        for (i = 0; i < n; i++) {
            if (i)
                sb_putc(b, ' ');
            sb_puts(b, keys[i]);
            sb_putc(b, ':');
            go_v(b, json_object_get(v, keys[i]));
        }
        sb_putc(b, ']');
        free(keys);
        return;
    }
    }
}

char *ci_claim_string(const json_t *v)
{
    if (json_is_number(v))
        return go_format_float_f(json_number_value(v));
    struct strbuf b = {0};
    go_v(&b, v);
    return sb_finish(&b);
}

json_t *ci_template_data(const json_t *claims, const json_t *defaults)
{
    json_t *data = json_object();
    if (!data)
        return NULL;
    const char *k;
    const json_t *v;
    if (json_is_object(defaults)) {
        /* copies: the configuration is shared by all threads and only ever read */
        json_object_foreach((json_t *)defaults, k, v)
        {
            if (json_is_string(v) &&
                json_object_set_new(
                    data, k, json_stringn_nocheck(json_string_value(v), json_string_length(v))) !=
                    0)
                goto oom;
        }
    }
    json_object_foreach((json_t *)claims, k, v)
    {
        char *s = ci_claim_string(v);
        if (!s || json_object_set_new_nocheck(data, k, json_string_nocheck(s)) != 0) {
            free(s);
            goto oom;
        }
        free(s);
    }
    return data;
oom:
    json_decref(data);
    return NULL;
}

static int has_text(const char *s)
{
    for (; *s; s++)
        if (!strchr(" \t\n\v\f\r", *s))
            return 1;
    return 0;
}

int ci_template_apply(const char *tmpl, const json_t *data, const char *ext_name,
                      const char *issuer, char **out, char *why, size_t whylen)
{
    *out = NULL;
    if (strstr(tmpl, "{{"))
        return go_template_execute(tmpl, data, out, why, whylen);
    const json_t *v = json_object_get(data, tmpl);
    if (json_is_string(v)) {
        *out = strdup(json_string_value(v));
        if (!*out)
            pr_why(why, whylen, "out of memory");
        return *out ? 0 : -1;
    }
    /* Go: json.Marshal (keys sorted) then json.Indent(.., "", "\t") */
    char *n = go_json_quote(ext_name), *i = go_json_quote(issuer);
    pr_why(why, whylen,
           "value <%s> not present in either claims or defaults. {\n\t\"ExtensionName\": %s,\n"
           "\t\"Issuer\": %s\n}",
           tmpl, n ? n : "\"\"", i ? i : "\"\"");
    free(n);
    free(i);
    return -1;
}

/* The SAN: the template's result parsed as a URL (absolute, with a host). */
static enum principal_error fill_san(const json_t *meta, const json_t *data, const char *iss,
                                     principal *out, char *why, size_t whylen)
{
    const char *t = json_string_value(json_object_get(meta, "SubjectAlternativeNameTemplate"));
    if (!t || !has_text(t)) {
        pr_why(why, whylen, "SubjectAlternativeNameTemplate should not be empty. Issuer: %s", iss);
        return PRINCIPAL_VALIDATION_ERROR;
    }
    char *san = NULL;
    if (ci_template_apply(t, data, "SubjectAlternativeName", iss, &san, why, whylen) != 0)
        return PRINCIPAL_VALIDATION_ERROR;
    go_url u;
    if (go_url_parse(san, &u, why, whylen) != 0) {
        free(san);
        return PRINCIPAL_VALIDATION_ERROR;
    }
    enum principal_error rc;
    if (!*u.scheme || !*u.host) {
        pr_why(why, whylen, "subject alternative name \"%s\" is not an absolute URL with a host",
               san);
        rc = PRINCIPAL_VALIDATION_ERROR;
    } else {
        out->san_kind = SAN_URI;
        rc = pr_take(&out->san_value, go_url_string(&u), why, whylen);
    }
    go_url_clear(&u);
    free(san);
    return rc;
}

enum principal_error ci_provider_principal(const fulcrum_config *cfg, const issuer_config *ic,
                                           const json_t *claims, const char *iss, const char *sub,
                                           principal *out, char *why, size_t whylen)
{
    const char *provider = ic->ci_provider ? ic->ci_provider : "";
    const json_t *meta = cfg ? json_object_get(cfg->ci_issuer_metadata, provider) : NULL;
    if (!json_is_object(meta)) {
        pr_why(why, whylen, "metadata not found for ci provider %s, issuer: %s", provider, iss);
        return PRINCIPAL_TOKEN_ERROR;
    }
    json_t *data = ci_template_data(claims, json_object_get(meta, "DefaultTemplateValues"));
    if (!data) {
        pr_why(why, whylen, "out of memory");
        return PRINCIPAL_VALIDATION_ERROR;
    }
    enum principal_error rc = fill_san(meta, data, iss, out, why, whylen);
    const json_t *templates = json_object_get(meta, "ExtensionTemplates");
    for (size_t i = 0; rc == PRINCIPAL_OK && i < sizeof ext_fields / sizeof ext_fields[0]; i++) {
        const char *t = json_string_value(json_object_get(templates, ext_fields[i].field));
        if (!t || !has_text(t))
            continue;
        char *v = NULL;
        if (ci_template_apply(t, data, ext_fields[i].field, iss, &v, why, whylen) != 0) {
            rc = PRINCIPAL_VALIDATION_ERROR;
            break;
        }
        if (*v)
            rc = pr_take(&out->ext[ext_fields[i].oid], v, why, whylen);
        else
            free(v);
    }
    json_decref(data);
    if (rc == PRINCIPAL_OK && (rc = pr_set(&out->ext[1], iss, why, whylen)) == PRINCIPAL_OK)
        rc = pr_set(&out->ext[8], iss, why, whylen);
    (void)sub; /* challenge and .24 are sub: set by principal_from_claims */
    return rc;
}
