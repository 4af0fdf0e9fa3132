/*
 * tests/fuzz/fuzz_jws.h: the fixed signing keys of the jwt and jwks targets and a JWS signer
 * (header-only; used by fuzz_jwt.c, fuzz_jwks.c and gen_corpus.c).
 *
 * Keys (Fulcio's fileca fixtures): rsa4096 -> kid "rsa" (RS256) and "rsa512" (RS512),
 * intermediate-3 (P-256) -> kid "p256" (ES256), ecdsa (P-384) -> kid "p384" (ES384).
 */
#ifndef FULCRUM_TESTS_FUZZ_JWS_H
#define FULCRUM_TESTS_FUZZ_JWS_H

#include <jansson.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "common/base64.h"
#include "fuzz_common.h"
#include "unit/oidc_testkit.h"

struct fz_jws_key {
    const char *fixture, *kid, *alg;
    EVP_PKEY *key; /* private */
};

static struct fz_jws_key fz_jws_keys[] = {
    {"rsa4096", "rsa", "RS256", NULL},
    {"rsa4096", "rsa512", "RS512", NULL},
    {"intermediate-3", "p256", "ES256", NULL},
    {"ecdsa", "p384", "ES384", NULL},
};
#define FZ_JWS_NKEYS (sizeof fz_jws_keys / sizeof fz_jws_keys[0])

FZ_FN void fz_jws_load(void)
{
    for (size_t i = 0; i < FZ_JWS_NKEYS; i++)
        fz_jws_keys[i].key = fz_fixture_key(fz_jws_keys[i].fixture);
}

FZ_FN struct fz_jws_key *fz_jws_key_by_kid(const char *kid)
{
    for (size_t i = 0; i < FZ_JWS_NKEYS; i++)
        if (strcmp(fz_jws_keys[i].kid, kid) == 0)
            return &fz_jws_keys[i];
    return NULL;
}

/* {"keys":[...]} of every key (public parts, with kid, alg and use "sig"); malloc'd. */
FZ_FN char *fz_jws_jwks_text(void)
{
    json_t *doc = json_object(), *arr = json_array();
    for (size_t i = 0; i < FZ_JWS_NKEYS; i++)
        json_array_append_new(
            arr, tk_jwk(fz_jws_keys[i].key, fz_jws_keys[i].kid, fz_jws_keys[i].alg, "sig"));
    json_object_set_new(doc, "keys", arr);
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return s;
}

/* "<b64url(header)>.<b64url(payload)>.<b64url(sig)>" signed with k (header: alg, kid, typ);
 * ES* signatures as raw r||s. malloc'd, or NULL. */
FZ_FN char *fz_jws_sign(const struct fz_jws_key *k, const unsigned char *payload, size_t len)
{
    char header[128];
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", k->alg,
             k->kid);
    char *h = b64url_encode((const unsigned char *)header, strlen(header));
    char *p = b64url_encode(payload, len);
    char *out = NULL, *input = NULL, *s = NULL;
    unsigned char *sig = NULL, raw[132];
    size_t siglen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!h || !p || !ctx)
        goto done;
    size_t in_len = strlen(h) + 1 + strlen(p);
    input = malloc(in_len + 1);
    if (!input)
        goto done;
    snprintf(input, in_len + 1, "%s.%s", h, p);
    const EVP_MD *md = strstr(k->alg, "384") ? EVP_sha384()
                       : strstr(k->alg, "512") ? EVP_sha512()
                                               : EVP_sha256();
    if (EVP_DigestSignInit(ctx, NULL, md, NULL, k->key) != 1 ||
        EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)input, in_len) != 1 ||
        !(sig = malloc(siglen)) ||
        EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, in_len) != 1)
        goto done;
    const unsigned char *sigp = sig;
    size_t outlen = siglen;
    if (k->alg[0] == 'E') {
        size_t coord = strstr(k->alg, "384") ? 48 : 32;
        const unsigned char *q = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)siglen);
        if (!es)
            goto done;
        int ok = BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, (int)coord) == (int)coord &&
                 BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + coord, (int)coord) == (int)coord;
        ECDSA_SIG_free(es);
        if (!ok)
            goto done;
        sigp = raw;
        outlen = 2 * coord;
    }
    s = b64url_encode(sigp, outlen);
    if (!s)
        goto done;
    size_t n = in_len + 1 + strlen(s) + 1;
    out = malloc(n);
    if (out)
        snprintf(out, n, "%s.%s", input, s);
done:
    EVP_MD_CTX_free(ctx);
    free(h);
    free(p);
    free(input);
    free(sig);
    free(s);
    return out;
}

#endif
