/*
 * fuzz_jwks: an issuer's JWKS document (oidc/jwk.h): {"keys":[...]} with RSA (n, e) and EC
 * (P-256, P-384) keys turned into OpenSSL keys, skipped keys, kid lookup. Every key parsed is
 * then used on fixed tokens (one per algorithm, signed at start-up with the fixture keys), as
 * ca/api_signing.c would: a key parsed from the document must verify exactly the token of its
 * own key material and algorithm, or refuse it cleanly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_jws.h"
#include "oidc/jwk.h"
#include "oidc/token.h"

static oidc_token toks[FZ_JWS_NKEYS];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_log_init();
    fz_jws_load();
    static const char claims[] = "{\"iss\":\"https://jwks.fuzz.example\",\"sub\":\"x\"}";
    for (size_t i = 0; i < FZ_JWS_NKEYS; i++) {
        char *t = fz_jws_sign(&fz_jws_keys[i], (const unsigned char *)claims, sizeof claims - 1);
        char why[256];
        if (!t || oidc_token_parse(t, strlen(t), &toks[i], why, sizeof why) != 0)
            fz_die("cannot make the %s token", fz_jws_keys[i].kid);
        free(t);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[512] = "";
    oidc_jwk_set *set = jwk_set_parse((const char *)data, size, why, sizeof why);
    fz_note("jwks: %s", set ? "parsed" : why);
    if (!set) {
        FZ_ASSERT(why[0], "JWKS refused without a reason");
        return 0;
    }
    fz_note("%zu keys", set->n);
    FZ_ASSERT(set->n > 0 && set->refs == 1, "a set with %zu keys, %d refs", set->n, set->refs);
    oidc_jwk_set *again = jwk_set_ref(set);
    FZ_ASSERT(again == set && set->refs == 2, "jwk_set_ref");
    jwk_set_release(again);
    for (size_t i = 0; i < set->n; i++) {
        const oidc_jwk *k = &set->keys[i];
        FZ_ASSERT(k->kid && k->alg && k->pkey, "key %zu incomplete", i);
        /* kid "" asks for the only key, which there may not be (oidc/jwk.h) */
        const oidc_jwk *found = jwk_set_find(set, k->kid);
        FZ_ASSERT(!k->kid[0] || (found && strcmp(found->kid, k->kid) == 0),
                  "kid \"%s\" not found", k->kid);
        for (size_t t = 0; t < FZ_JWS_NKEYS; t++) {
            if (oidc_token_verify_signature(&toks[t], k, why, sizeof why) != 0)
                continue;
            FZ_ASSERT(strcmp(k->alg, fz_jws_keys[t].alg) == 0,
                      "a %s key verified a %s token", k->alg, fz_jws_keys[t].alg);
            FZ_ASSERT(EVP_PKEY_eq(k->pkey, fz_jws_keys[t].key) == 1,
                      "a key other than %s verified its token", fz_jws_keys[t].kid);
        }
    }
    if (set->n == 1)
        FZ_ASSERT(jwk_set_find(set, NULL) == &set->keys[0], "the only key without kid");
    jwk_set_release(set);
    return 0;
}
