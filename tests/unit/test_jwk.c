/* JWKS parsing: RSA and EC keys from generated keys, skip rules, lookup by kid, refcount. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oidc/jwk.h"
#include "unit/check.h"
#include "unit/oidc_testkit.h"

static oidc_jwk_set *parse_text(const char *s, char *why)
{
    return jwk_set_parse(s, strlen(s), why, 256);
}

/* Parses a JWKS made of the given JWKs (taken over). */
static oidc_jwk_set *parse_keys(char *why, json_t *first, ...)
{
    json_t *doc = json_object(), *arr = json_array();
    va_list ap;
    va_start(ap, first);
    for (json_t *k = first; k; k = va_arg(ap, json_t *))
        json_array_append_new(arr, k);
    va_end(ap);
    json_object_set_new(doc, "keys", arr);
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    oidc_jwk_set *set = parse_text(s, why);
    free(s);
    return set;
}

/* A JWK of `k` with member `name` replaced by `value` (a string) or removed (NULL). */
static json_t *jwk_with(EVP_PKEY *k, const char *kid, const char *name, const char *value)
{
    json_t *j = tk_jwk(k, kid, NULL, NULL);
    if (value)
        json_object_set_new(j, name, json_string(value));
    else
        json_object_del(j, name);
    return j;
}

static void test_rsa_and_ec(EVP_PKEY *rsa, EVP_PKEY *p256, EVP_PKEY *p384)
{
    char why[256] = "";
    oidc_jwk_set *set = parse_keys(why, tk_jwk(rsa, "r1", NULL, "sig"),
                                   tk_jwk(rsa, "r5", "RS512", NULL), tk_jwk(p256, "e1", NULL, "sig"),
                                   tk_jwk(p384, "e3", "ES384", "sig"), NULL);
    CHECK(set && set->n == 4 && set->refs == 1, "four keys parsed: %s", why);
    if (!set)
        return;
    const oidc_jwk *k = jwk_set_find(set, "r1");
    CHECK(k && strcmp(k->alg, "RS256") == 0 && EVP_PKEY_eq(k->pkey, rsa) == 1,
          "RSA key equals the generated one, alg RS256 by default");
    k = jwk_set_find(set, "r5");
    CHECK(k && strcmp(k->alg, "RS512") == 0 && EVP_PKEY_eq(k->pkey, rsa) == 1, "RS512 from alg");
    k = jwk_set_find(set, "e1");
    CHECK(k && strcmp(k->alg, "ES256") == 0 && EVP_PKEY_eq(k->pkey, p256) == 1,
          "P-256 key equals the generated one, alg ES256");
    k = jwk_set_find(set, "e3");
    CHECK(k && strcmp(k->alg, "ES384") == 0 && EVP_PKEY_eq(k->pkey, p384) == 1,
          "P-384 key equals the generated one, alg ES384");
    static const struct { const char *kid; int md_size; } tmpl[] = {
        {"r1", 32}, {"r5", 64}, {"e1", 32}, {"e3", 48}};
    for (size_t i = 0; i < sizeof tmpl / sizeof tmpl[0]; i++) {
        k = jwk_set_find(set, tmpl[i].kid);
        const EVP_MD *md = k && k->verify_tmpl ? EVP_MD_CTX_get0_md(k->verify_tmpl) : NULL;
        CHECK(md && EVP_MD_get_size(md) == tmpl[i].md_size,
              "key %s: prepared verification context with a %d-byte digest", tmpl[i].kid,
              tmpl[i].md_size);
    }
    CHECK(jwk_set_find(set, "nope") == NULL, "unknown kid");
    CHECK(jwk_set_find(set, NULL) == NULL && jwk_set_find(set, "") == NULL,
          "no kid with several keys finds nothing");

    CHECK(jwk_set_ref(set) == set && set->refs == 2, "ref");
    jwk_set_release(set);
    CHECK(set->refs == 1, "release");
    jwk_set_release(set);

    set = parse_keys(why, tk_jwk(p256, NULL, NULL, NULL), NULL);
    CHECK(set && set->n == 1 && strcmp(set->keys[0].kid, "") == 0, "key without kid: kid \"\"");
    CHECK(set && jwk_set_find(set, NULL) == &set->keys[0] && jwk_set_find(set, "") == &set->keys[0],
          "no kid with exactly one key finds it");
    CHECK(set && jwk_set_find(set, "x") == NULL, "a kid does not match a kid-less key");
    jwk_set_release(set);
}

static void test_skips(EVP_PKEY *rsa, EVP_PKEY *p256, EVP_PKEY *p384)
{
    char why[256] = "";
    /* Every key below is unusable; one good key keeps the set alive. */
    json_t *oct = json_pack("{s:s, s:s, s:s}", "kty", "oct", "kid", "oct", "k", "c2VjcmV0");
    json_t *okp = json_pack("{s:s, s:s, s:s, s:s}", "kty", "OKP", "crv", "Ed25519", "kid", "okp",
                            "x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
    json_t *p521 = jwk_with(p256, "p521", "crv", "P-521");
    json_t *enc = tk_jwk(rsa, "enc", NULL, "enc");
    json_t *rsa_es = tk_jwk(rsa, "rsa-es", "ES256", NULL);
    json_t *rsa_ps = tk_jwk(rsa, "rsa-ps", "PS256", NULL);
    json_t *p256_es384 = tk_jwk(p256, "p256-es384", "ES384", NULL);
    json_t *p384_es256 = tk_jwk(p384, "p384-es256", "ES256", NULL);
    json_t *no_n = jwk_with(rsa, "no-n", "n", NULL);
    json_t *bad_e = jwk_with(rsa, "bad-e", "e", "AAAA+A");
    json_t *no_kty = jwk_with(rsa, "no-kty", "kty", NULL);
    /* y of another P-256 key: (x, y') is not on the curve. */
    EVP_PKEY *other = tk_ec("P-256");
    json_t *o = tk_jwk(other, NULL, NULL, NULL);
    json_t *off_curve = jwk_with(p256, "off-curve", "y", json_string_value(json_object_get(o, "y")));
    json_decref(o);
    EVP_PKEY_free(other);
    json_t *short_x = jwk_with(p256, "short-x", "x", "AQID");
    EVP_PKEY *small = tk_rsa(512);
    json_t *rsa512 = tk_jwk(small, "rsa512", NULL, NULL);
    EVP_PKEY_free(small);
    json_t *kid_num = tk_jwk(p256, NULL, NULL, NULL);
    json_object_set_new(kid_num, "kid", json_integer(3));

    oidc_jwk_set *set = parse_keys(why, oct, okp, p521, enc, rsa_es, rsa_ps, p256_es384,
                                   p384_es256, no_n, bad_e, no_kty, off_curve, short_x, rsa512,
                                   kid_num, json_string("not an object"),
                                   tk_jwk(p256, "good", NULL, "sig"), NULL);
    CHECK(set && set->n == 1, "only the good key is kept (got %zu): %s", set ? set->n : 0, why);
    CHECK(set && jwk_set_find(set, "good") && jwk_set_find(set, "oct") == NULL &&
              jwk_set_find(set, "off-curve") == NULL && jwk_set_find(set, "rsa-es") == NULL,
          "skipped keys are not found");
    jwk_set_release(set);

    set = parse_keys(why, tk_jwk(rsa, "enc", NULL, "enc"), NULL);
    CHECK(!set && strcmp(why, "JWKS has no usable signing key") == 0,
          "a set with no usable key is an error: %s", why);
    CHECK(!parse_text("{\"keys\":[]}", why) && strstr(why, "no usable"), "empty keys: %s", why);
    CHECK(!parse_text("{\"keys\":{}}", why) && strstr(why, "no \"keys\" array"), "keys object");
    CHECK(!parse_text("[]", why) && strstr(why, "no \"keys\" array"), "array document");
    CHECK(!parse_text("{\"keys\":[", why) && strstr(why, "not valid JSON"), "truncated JSON");
}

int main(void)
{
    EVP_PKEY *rsa = tk_rsa(2048), *p256 = tk_ec("P-256"), *p384 = tk_ec("P-384");
    CHECK(rsa && p256 && p384, "keys generated");
    test_rsa_and_ec(rsa, p256, p384);
    test_skips(rsa, p256, p384);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
    CHECK_MAIN_END();
}
