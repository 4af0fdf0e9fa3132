/*
 * config/config_api_json.c: the body of GET /api/v2/configuration.
 *
 * protojson with EmitUnpopulated, fields in proto order (fulcio.proto OIDCIssuer): the set
 * member of the oneof issuer (issuer_url = 1 | wildcard_issuer_url = 2), audience = 3,
 * challenge_claim = 4, spiffe_trust_domain = 5, issuer_type = 6, subject_domain = 7,
 * skip_email_verification = 8. Fulcio's ToIssuers() fills them from every OIDCIssuers and
 * MetaIssuers entry (Go map order; here: OIDCIssuers sorted by URL, then MetaIssuers in file
 * order).
 */
#include "config/config.h"

static json_t *issuer_json(const issuer_config *ic)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = 0;
    bad |= json_object_set_new(o, ic->is_meta ? "wildcardIssuerUrl" : "issuerUrl",
                               json_string(ic->issuer_url));
    bad |= json_object_set_new(o, "audience", json_string(ic->client_id));
    bad |= json_object_set_new(o, "challengeClaim", json_string(config_challenge_claim(ic)));
    bad |= json_object_set_new(o, "spiffeTrustDomain", json_string(ic->spiffe_trust_domain));
    bad |= json_object_set_new(o, "issuerType", json_string(ic->type_name));
    bad |= json_object_set_new(o, "subjectDomain", json_string(ic->subject_domain));
    bad |= json_object_set_new(o, "skipEmailVerification",
                               json_boolean(ic->skip_email_verification));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *config_to_api_json(const fulcrum_config *cfg)
{
    json_t *arr = json_array();
    json_t *out = json_object();
    if (!arr || !out)
        goto fail;
    for (size_t pass = 0; pass < 2; pass++) {
        const issuer_config *list = pass == 0 ? cfg->issuers : cfg->meta;
        size_t n = pass == 0 ? cfg->n_issuers : cfg->n_meta;
        for (size_t i = 0; i < n; i++)
            if (json_array_append_new(arr, issuer_json(&list[i])) != 0)
                goto fail;
    }
    if (json_object_set_new(out, "issuers", arr) != 0) {
        arr = NULL;
        goto fail;
    }
    return out;
fail:
    json_decref(arr);
    json_decref(out);
    return NULL;
}
