#include "ca/signing_request.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/json_fast.h"

/* Member of `obj` under its lowerCamelCase or its proto (snake_case) name. JSON null counts as
 * absent. */
static json_t *member(json_t *obj, const char *camel, const char *snake)
{
    json_t *v = json_object_get(obj, camel);
    if (!v && snake)
        v = json_object_get(obj, snake);
    if (v && json_is_null(v))
        return NULL;
    return v;
}

/* A protojson `string` field. */
static int get_string(json_t *v, const char *name, char **out, char *why, size_t whylen)
{
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        snprintf(why, whylen, "field %s: expected a string", name);
        return -1;
    }
    *out = strdup(json_string_value(v));
    return *out ? 0 : -1;
}

/* A protojson `bytes` field: base64 in either alphabet, padding optional. */
static int get_bytes(json_t *v, const char *name, unsigned char **out, size_t *outlen, char *why,
                     size_t whylen)
{
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        snprintf(why, whylen, "field %s: expected a base64 string", name);
        return -1;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    unsigned char *d = b64_decode_any(s, n, outlen);
    if (!d) {
        snprintf(why, whylen, "field %s: invalid base64", name);
        return -1;
    }
    *out = d;
    return 0;
}

static int require_object(json_t *v, const char *name, char *why, size_t whylen)
{
    if (v && !json_is_object(v)) {
        snprintf(why, whylen, "field %s: expected an object", name);
        return -1;
    }
    return 0;
}

/* An enum field: a known name string or a number; unknown names are ignored as protojson does
 * with DiscardUnknown. Only the type is checked: the server infers the algorithm from the key. */
static int check_enum(json_t *v, const char *name, char *why, size_t whylen)
{
    if (!v || json_is_string(v) || json_is_integer(v))
        return 0;
    snprintf(why, whylen, "field %s: expected an enum name or number", name);
    return -1;
}

static json_t *load_object(const char *body, size_t len, char *why, size_t whylen)
{
    json_error_t err;
    json_t *root = json_fast_loadb(body, len, &err);
    if (!root) {
        snprintf(why, whylen, "invalid JSON at line %d column %d: %s", err.line, err.column,
                 err.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        snprintf(why, whylen, "request body must be a JSON object");
        json_decref(root);
        return NULL;
    }
    return root;
}

int signing_request_parse_v2(const char *body, size_t len, signing_request *out, char *why,
                             size_t whylen)
{
    memset(out, 0, sizeof *out);
    json_t *root = load_object(body, len, why, whylen);
    if (!root)
        return -1;

    int rc = -1;
    json_t *cred = member(root, "credentials", NULL);
    json_t *pkr = member(root, "publicKeyRequest", "public_key_request");
    json_t *csr = member(root, "certificateSigningRequest", "certificate_signing_request");

    if (require_object(cred, "credentials", why, whylen) ||
        require_object(pkr, "publicKeyRequest", why, whylen))
        goto done;
    if (pkr && csr) {
        snprintf(why, whylen,
                 "publicKeyRequest and certificateSigningRequest are mutually exclusive");
        goto done;
    }
    if (cred &&
        get_string(member(cred, "oidcIdentityToken", "oidc_identity_token"),
                   "credentials.oidcIdentityToken", &out->token, why, whylen))
        goto done;
    if (pkr) {
        out->has_public_key_request = 1;
        json_t *pk = member(pkr, "publicKey", "public_key");
        if (require_object(pk, "publicKeyRequest.publicKey", why, whylen))
            goto done;
        if (pk) {
            if (check_enum(member(pk, "algorithm", NULL), "publicKey.algorithm", why, whylen))
                goto done;
            char *content = NULL;
            if (get_string(member(pk, "content", NULL), "publicKey.content", &content, why,
                           whylen))
                goto done;
            if (content) {
                out->public_key = (unsigned char *)content;
                out->public_key_len = strlen(content);
            }
        }
        if (get_bytes(member(pkr, "proofOfPossession", "proof_of_possession"),
                      "publicKeyRequest.proofOfPossession", &out->proof, &out->proof_len, why,
                      whylen))
            goto done;
    }
    if (get_bytes(csr, "certificateSigningRequest", &out->csr, &out->csr_len, why, whylen))
        goto done;
    rc = 0;
done:
    json_decref(root);
    if (rc)
        signing_request_clear(out);
    return rc;
}

int signing_request_parse_v1(const char *body, size_t len, signing_request *out, char *why,
                             size_t whylen)
{
    memset(out, 0, sizeof *out);
    json_t *root = load_object(body, len, why, whylen);
    if (!root)
        return -1;

    int rc = -1;
    json_t *pk = member(root, "publicKey", "public_key");
    if (require_object(pk, "publicKey", why, whylen))
        goto done;
    if (pk) {
        json_t *alg = member(pk, "algorithm", NULL);
        if (alg && !json_is_string(alg)) {
            snprintf(why, whylen, "field publicKey.algorithm: expected a string");
            goto done;
        }
        if (get_bytes(member(pk, "content", NULL), "publicKey.content", &out->public_key,
                      &out->public_key_len, why, whylen))
            goto done;
        out->has_public_key_request = out->public_key != NULL;
    }
    if (get_bytes(member(root, "signedEmailAddress", "signed_email_address"),
                  "signedEmailAddress", &out->proof, &out->proof_len, why, whylen))
        goto done;
    if (get_bytes(member(root, "certificateSigningRequest", "certificate_signing_request"),
                  "certificateSigningRequest", &out->csr, &out->csr_len, why, whylen))
        goto done;
    /* v1: a non-empty CSR wins over the public key. */
    if (out->csr_len > 0) {
        free(out->public_key);
        out->public_key = NULL;
        out->public_key_len = 0;
        out->has_public_key_request = 0;
    }
    rc = 0;
done:
    json_decref(root);
    if (rc)
        signing_request_clear(out);
    return rc;
}

void signing_request_clear(signing_request *r)
{
    free(r->token);
    free(r->public_key);
    free(r->proof);
    free(r->csr);
    memset(r, 0, sizeof *r);
}
