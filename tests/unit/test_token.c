/* OIDC ID tokens: shape check, signature verification against JWKs, claim checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oidc/jwk.h"
#include "oidc/token.h"
#include "unit/check.h"
#include "unit/oidc_testkit.h"

#define ISS "https://issuer.example.com"

static int parse(const char *raw, oidc_token *t, char *why)
{
    return oidc_token_parse(raw, strlen(raw), t, why, 256);
}

/* Parse must fail with a reason containing `want`. */
static void expect_parse_fail(const char *raw, size_t len, const char *want, const char *what)
{
    oidc_token t;
    char why[256] = "";
    int rc = oidc_token_parse(raw, len, &t, why, sizeof(why));
    CHECK(rc == -1 && strstr(why, want), "%s: rc %d why \"%s\" (want \"%s\")", what, rc, why,
          want);
    CHECK(t.header == NULL && t.claims == NULL && t.signature == NULL, "%s: nothing kept", what);
}

static void test_shape(void)
{
    char why[256];
    oidc_token t;
    const char *shape = "not three dot-separated parts";
    expect_parse_fail("abc.def", 7, shape, "one dot");
    expect_parse_fail("abcdef", 6, shape, "no dot");
    expect_parse_fail("a.b.c.d", 7, shape, "three dots");
    expect_parse_fail(".b.c", 4, "empty part", "empty header");
    expect_parse_fail("a..c", 4, "empty part", "empty payload");
    expect_parse_fail("a.b.", 4, "empty part", "empty signature");
    expect_parse_fail("", 0, "empty", "empty token");
    expect_parse_fail("a+b.c.d", 7, "base64url alphabet", "'+' refused");
    expect_parse_fail("ab=.cd.ef", 9, "base64url alphabet", "padding refused");
    expect_parse_fail("ab.c d.ef", 9, "base64url alphabet", "space refused");
    expect_parse_fail("ab.c\0d.ef", 9, "base64url alphabet", "NUL refused");

    /* GHSA-f83f-xpx7-ffpw: a long run of dots is refused at the third dot, whatever its size. */
    size_t n = OIDC_TOKEN_MAX_LEN;
    char *dots = malloc(n);
    memset(dots, '.', n);
    expect_parse_fail(dots, n, shape, "64 KiB of dots");
    free(dots);

    char *big = malloc(OIDC_TOKEN_MAX_LEN + 2);
    memset(big, 'a', OIDC_TOKEN_MAX_LEN + 1);
    big[10] = '.', big[20] = '.';
    expect_parse_fail(big, OIDC_TOKEN_MAX_LEN + 1, "longer than 65536 bytes", "oversize");
    free(big);

    unsigned char sig[4] = {1, 2, 3, 4};
    char *tok = tk_assemble("not json", "{\"iss\":\"" ISS "\"}", sig, 4);
    expect_parse_fail(tok, strlen(tok), "header is not a base64url JSON object", "non-JSON header");
    free(tok);
    tok = tk_assemble("[\"alg\"]", "{\"iss\":\"" ISS "\"}", sig, 4);
    expect_parse_fail(tok, strlen(tok), "header is not a base64url JSON object", "array header");
    free(tok);
    tok = tk_assemble("{\"alg\":\"RS256\"}", "\"iss\"", sig, 4);
    expect_parse_fail(tok, strlen(tok), "payload is not a base64url JSON object", "string payload");
    free(tok);
    tok = tk_assemble("{\"alg\":\"RS256\"}", "{\"sub\":\"x\"}", sig, 4);
    expect_parse_fail(tok, strlen(tok), "no issuer", "iss missing");
    free(tok);
    tok = tk_assemble("{\"alg\":\"RS256\"}", "{\"iss\":\"\"}", sig, 4);
    expect_parse_fail(tok, strlen(tok), "no issuer", "iss empty");
    free(tok);
    tok = tk_assemble("{\"alg\":\"RS256\"}", "{\"iss\":7}", sig, 4);
    expect_parse_fail(tok, strlen(tok), "no issuer", "iss not a string");
    free(tok);
    tok = tk_assemble("{\"kid\":\"k\"}", "{\"iss\":\"" ISS "\"}", sig, 4);
    expect_parse_fail(tok, strlen(tok), "no \"alg\"", "alg missing");
    free(tok);
    tok = tk_assemble("{\"alg\":\"RS256\",\"kid\":3}", "{\"iss\":\"" ISS "\"}", sig, 4);
    expect_parse_fail(tok, strlen(tok), "\"kid\" is not a string", "kid not a string");
    free(tok);
    tok = tk_assemble("{\"alg\":\"RS256\",\"alg\":\"none\"}", "{\"iss\":\"" ISS "\"}", sig, 4);
    expect_parse_fail(tok, strlen(tok), "header is not", "duplicate header member refused");
    free(tok);

    tok = tk_assemble("{\"alg\":\"ES256\",\"kid\":\"k1\"}", "{\"iss\":\"" ISS "\",\"n\":1}", sig, 4);
    int rc = parse(tok, &t, why);
    CHECK(rc == 0, "good shape parses: %s", why);
    if (rc == 0) {
        CHECK_STREQ(t.alg, "ES256", "alg");
        CHECK_STREQ(t.kid, "k1", "kid");
        CHECK_STREQ(t.iss, ISS, "iss");
        CHECK(t.signature_len == 4 && memcmp(t.signature, sig, 4) == 0, "signature bytes");
        CHECK(t.signing_input_len == (size_t)(strrchr(tok, '.') - tok) &&
                  memcmp(t.signing_input, tok, t.signing_input_len) == 0 &&
                  t.signing_input[t.signing_input_len] == '\0',
              "signing input is header.payload");
        oidc_token_clear(&t);
        CHECK(t.header == NULL && t.signing_input == NULL, "clear zeroes");
    }
    free(tok);
}

/* One key and the JWK set holding it (kid "k"). */
struct kp {
    EVP_PKEY *pkey;
    char *pem;
    oidc_jwk_set *set;
};

static void kp_make(struct kp *k, EVP_PKEY *pkey, const char *alg)
{
    char why[256] = "";
    k->pkey = pkey;
    k->pem = tk_pem_private(pkey);
    char *jwks = tk_jwks_text(tk_jwk(pkey, "k", alg, "sig"), NULL);
    k->set = jwk_set_parse(jwks, strlen(jwks), why, sizeof(why));
    CHECK(k->set != NULL, "JWKS for %s parses: %s", alg, why);
    free(jwks);
}

static void kp_free(struct kp *k)
{
    EVP_PKEY_free(k->pkey);
    free(k->pem);
    jwk_set_release(k->set);
}

/* Mints with libjwt, parses, verifies with `key`; returns verify's rc (-2 on earlier failure). */
static int mint_verify(jwt_alg_t alg, const char *secret, const oidc_jwk *key, char *why)
{
    char claims[256];
    snprintf(claims, sizeof(claims), "{\"iss\":\"%s\",\"aud\":\"sigstore\",\"exp\":%ld}", ISS,
             (long)time(NULL) + 600);
    char *tok = tk_mint(alg, secret, "k", claims);
    if (!tok) {
        snprintf(why, 256, "libjwt could not mint");
        return -2;
    }
    oidc_token t;
    int rc = parse(tok, &t, why);
    if (rc == 0) {
        rc = oidc_token_verify_signature(&t, key, why, 256);
        oidc_token_clear(&t);
    } else {
        rc = -2;
    }
    free(tok);
    return rc;
}

static void test_signatures(void)
{
    char why[256];
    struct kp rsa, rsa2, rsa384, p256, p384;
    kp_make(&rsa, tk_rsa(2048), "RS256");
    kp_make(&rsa384, EVP_PKEY_dup(rsa.pkey), "RS384");
    kp_make(&rsa2, tk_rsa(2048), "RS256");
    kp_make(&p256, tk_ec("P-256"), "ES256");
    kp_make(&p384, tk_ec("P-384"), NULL); /* alg from the curve */
    if (!rsa.set || !rsa384.set || !rsa2.set || !p256.set || !p384.set)
        goto out;
    const oidc_jwk *k_rsa = jwk_set_find(rsa.set, "k"), *k_rsa384 = jwk_set_find(rsa384.set, "k");
    const oidc_jwk *k_rsa2 = jwk_set_find(rsa2.set, "k"), *k_p256 = jwk_set_find(p256.set, "k");
    const oidc_jwk *k_p384 = jwk_set_find(p384.set, "k");
    CHECK_STREQ(k_p384->alg, "ES384", "P-384 key alg by curve");

    CHECK(mint_verify(JWT_ALG_RS256, rsa.pem, k_rsa, why) == 0, "RS256 verifies: %s", why);
    CHECK(mint_verify(JWT_ALG_RS384, rsa.pem, k_rsa384, why) == 0, "RS384 verifies: %s", why);
    CHECK(mint_verify(JWT_ALG_ES256, p256.pem, k_p256, why) == 0, "ES256 verifies: %s", why);
    CHECK(mint_verify(JWT_ALG_ES384, p384.pem, k_p384, why) == 0, "ES384 verifies: %s", why);

    /* The algorithm is the key's: a header that says otherwise is refused before any crypto. */
    CHECK(mint_verify(JWT_ALG_RS384, rsa.pem, k_rsa, why) == -1 &&
              strstr(why, "token algorithm \"RS384\" does not match the issuer key's \"RS256\""),
          "RS384 header vs RS256 key refused: %s", why);
    CHECK(mint_verify(JWT_ALG_ES256, p256.pem, k_p384, why) == -1 && strstr(why, "does not match"),
          "ES256 token vs ES384 key refused: %s", why);
    /* Algorithm confusion: HS256 keyed with the issuer's public PEM (libjwt accepts this). */
    char *pub = tk_pem_public(rsa.pkey);
    CHECK(mint_verify(JWT_ALG_HS256, pub, k_rsa, why) == -1 &&
              strstr(why, "\"HS256\" does not match"),
          "HS256 with the PEM as secret refused: %s", why);
    free(pub);
    /* Wrong key of the right type. */
    CHECK(mint_verify(JWT_ALG_RS256, rsa2.pem, k_rsa, why) == -1 &&
              strcmp(why, "token signature does not verify") == 0,
          "RS256 by another key refused: %s", why);
    struct kp p256b;
    kp_make(&p256b, tk_ec("P-256"), "ES256");
    CHECK(mint_verify(JWT_ALG_ES256, p256b.pem, k_p256, why) == -1 &&
              strcmp(why, "token signature does not verify") == 0,
          "ES256 by another key refused: %s", why);
    kp_free(&p256b);
    (void)k_rsa2;

    /* alg none: libjwt's token has an empty signature (shape refuses it); a hand-made one
     * with a signature part is refused by verify. */
    char *none = tk_mint(JWT_ALG_NONE, NULL, "k", "{\"iss\":\"" ISS "\"}");
    oidc_token t;
    CHECK(none && parse(none, &t, why) == -1 && strstr(why, "empty part"),
          "libjwt alg none refused by shape: %s", why);
    free(none);
    unsigned char junk[256] = {0};
    none = tk_assemble("{\"alg\":\"none\",\"kid\":\"k\"}", "{\"iss\":\"" ISS "\"}", junk, 256);
    CHECK(parse(none, &t, why) == 0, "hand-made alg none parses");
    CHECK(oidc_token_verify_signature(&t, k_rsa, why, sizeof(why)) == -1 &&
              strstr(why, "alg \"none\""),
          "alg none refused: %s", why);
    oidc_token_clear(&t);
    free(none);

    /* Tampered payload: the same header and signature over other claims. */
    char *good = tk_mint(JWT_ALG_ES256, p256.pem, "k", "{\"iss\":\"" ISS "\",\"email\":\"a@b.c\"}");
    char *evil_payload = b64url_encode((const unsigned char *)"{\"iss\":\"" ISS "\",\"email\":\"x@b.c\"}",
                                       strlen("{\"iss\":\"" ISS "\",\"email\":\"x@b.c\"}"));
    char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
    size_t n = (size_t)(d1 - good) + 1 + strlen(evil_payload) + strlen(d2) + 1;
    char *evil = malloc(n);
    snprintf(evil, n, "%.*s.%s%s", (int)(d1 - good), good, evil_payload, d2);
    CHECK(parse(good, &t, why) == 0 && oidc_token_verify_signature(&t, k_p256, why, 256) == 0,
          "untampered ES256 verifies: %s", why);
    oidc_token_clear(&t);
    CHECK(parse(evil, &t, why) == 0, "tampered token parses");
    CHECK(oidc_token_verify_signature(&t, k_p256, why, sizeof(why)) == -1 &&
              strcmp(why, "token signature does not verify") == 0,
          "tampered payload refused: %s", why);
    oidc_token_clear(&t);
    free(evil);
    free(evil_payload);

    /* ES256 signatures must be raw r||s of 64 bytes (a DER signature is refused). */
    CHECK(parse(good, &t, why) == 0, "reparse");
    unsigned char *saved = t.signature;
    unsigned char der[72] = {0x30};
    t.signature = der;
    t.signature_len = 70;
    CHECK(oidc_token_verify_signature(&t, k_p256, why, sizeof(why)) == -1 &&
              strstr(why, "must be 64 bytes, got 70"),
          "wrong ECDSA signature size refused: %s", why);
    t.signature = saved;
    oidc_token_clear(&t);
    free(good);
    CHECK(oidc_token_verify_signature(&t, NULL, why, sizeof(why)) == -1, "NULL key refused");
out:
    kp_free(&rsa);
    kp_free(&rsa384);
    kp_free(&rsa2);
    kp_free(&p256);
    kp_free(&p384);
}

static issuer_config ic_make(const char *url, const char *client_id, int is_meta)
{
    issuer_config ic;
    memset(&ic, 0, sizeof(ic));
    ic.issuer_url = (char *)url;
    ic.client_id = (char *)client_id;
    ic.type_name = (char *)"email";
    ic.type = ISSUER_TYPE_EMAIL;
    ic.is_meta = is_meta;
    return ic;
}

/* check_claims on a token with these claims; returns rc, why filled. */
static int claims_rc(const char *claims, const issuer_config *ic, time_t now, char *why)
{
    unsigned char sig[8] = {0};
    char *tok = tk_assemble("{\"alg\":\"RS256\"}", claims, sig, sizeof(sig));
    oidc_token t;
    int rc = parse(tok, &t, why);
    free(tok);
    if (rc != 0)
        return -2;
    why[0] = '\0';
    rc = oidc_token_check_claims(&t, ic, now, why, 256);
    oidc_token_clear(&t);
    return rc;
}

static void test_claims(void)
{
    char why[256], c[512], want[256];
    time_t now = 1795600000; /* 2026-11-25T09:46:40Z */
    issuer_config ic = ic_make(ISS, "sigstore", 0);

    snprintf(c, sizeof(c), "{\"iss\":\"%s\",\"aud\":\"sigstore\",\"exp\":%ld}", ISS, (long)now + 60);
    CHECK(claims_rc(c, &ic, now, why) == 0, "valid claims: %s", why);

    /* exp */
    snprintf(c, sizeof(c), "{\"iss\":\"%s\",\"aud\":\"sigstore\",\"exp\":%ld}", ISS, (long)now - 1);
    struct tm tm;
    time_t e = now - 1;
    gmtime_r(&e, &tm);
    strftime(want, sizeof(want), "token expired at %Y-%m-%dT%H:%M:%SZ", &tm);
    CHECK(claims_rc(c, &ic, now, why) == -1 && strcmp(why, want) == 0,
          "expired by 1 s: \"%s\" want \"%s\"", why, want);
    snprintf(c, sizeof(c), "{\"iss\":\"%s\",\"aud\":\"sigstore\",\"exp\":%ld}", ISS, (long)now);
    CHECK(claims_rc(c, &ic, now, why) == -1 && strstr(why, "token expired at"),
          "exp == now refused (no leeway): %s", why);
    snprintf(c, sizeof(c), "{\"iss\":\"%s\",\"aud\":\"sigstore\",\"exp\":%ld.5}", ISS, (long)now);
    CHECK(claims_rc(c, &ic, now, why) == 0, "real exp now+0.5 accepted: %s", why);
    snprintf(c, sizeof(c), "{\"iss\":\"%s\",\"aud\":\"sigstore\"}", ISS);
    CHECK(claims_rc(c, &ic, now, why) == -1 && strstr(why, "\"exp\" claim missing"),
          "exp missing refused: %s", why);
    snprintf(c, sizeof(c), "{\"iss\":\"%s\",\"aud\":\"sigstore\",\"exp\":\"%ld\"}", ISS,
             (long)now + 60);
    CHECK(claims_rc(c, &ic, now, why) == -1 && strstr(why, "not a number"),
          "exp as string refused: %s", why);
    snprintf(c, sizeof(c), "{\"iss\":\"%s\",\"aud\":\"sigstore\",\"exp\":1795596400}", ISS);
    CHECK(claims_rc(c, &ic, now, why) == -1 && strcmp(why, "token expired at 2026-11-25T08:46:40Z") == 0,
          "expiry time formatted in UTC: %s", why);

    /* nbf: 5 minutes of leeway */
    snprintf(c, sizeof(c), "{\"iss\":\"%s\",\"aud\":\"sigstore\",\"exp\":%ld,\"nbf\":%ld}", ISS,
             (long)now + 3600, (long)now + 360);
    CHECK(claims_rc(c, &ic, now, why) == -1 && strstr(why, "token not valid before"),
          "nbf in 6 min refused: %s", why);
    snprintf(c, sizeof(c), "{\"iss\":\"%s\",\"aud\":\"sigstore\",\"exp\":%ld,\"nbf\":%ld}", ISS,
             (long)now + 3600, (long)now + 240);
    CHECK(claims_rc(c, &ic, now, why) == 0, "nbf in 4 min accepted: %s", why);
    snprintf(c, sizeof(c), "{\"iss\":\"%s\",\"aud\":\"sigstore\",\"exp\":%ld,\"nbf\":%ld}", ISS,
             (long)now + 3600, (long)now + 300);
    CHECK(claims_rc(c, &ic, now, why) == 0, "nbf at exactly 5 min accepted: %s", why);

    /* aud */
    snprintf(c, sizeof(c), "{\"iss\":\"%s\",\"aud\":[\"x\",\"sigstore\"],\"exp\":%ld}", ISS,
             (long)now + 60);
    CHECK(claims_rc(c, &ic, now, why) == 0, "aud array containing client id: %s", why);
    snprintf(c, sizeof(c), "{\"iss\":\"%s\",\"aud\":[\"x\",\"y\"],\"exp\":%ld}", ISS, (long)now + 60);
    CHECK(claims_rc(c, &ic, now, why) == -1 &&
              strcmp(why, "audience [\"x\",\"y\"] does not contain \"sigstore\"") == 0,
          "aud array without client id: %s", why);
    snprintf(c, sizeof(c), "{\"iss\":\"%s\",\"aud\":\"other\",\"exp\":%ld}", ISS, (long)now + 60);
    CHECK(claims_rc(c, &ic, now, why) == -1 &&
              strcmp(why, "audience \"other\" does not contain \"sigstore\"") == 0,
          "aud string mismatch: %s", why);
    snprintf(c, sizeof(c), "{\"iss\":\"%s\",\"exp\":%ld}", ISS, (long)now + 60);
    CHECK(claims_rc(c, &ic, now, why) == -1 && strstr(why, "\"aud\" claim missing"),
          "aud missing: %s", why);
    snprintf(c, sizeof(c), "{\"iss\":\"%s\",\"aud\":7,\"exp\":%ld}", ISS, (long)now + 60);
    CHECK(claims_rc(c, &ic, now, why) == -1 && strstr(why, "neither a string nor an array"),
          "aud number: %s", why);

    /* iss */
    snprintf(c, sizeof(c), "{\"iss\":\"%s/\",\"aud\":\"sigstore\",\"exp\":%ld}", ISS, (long)now + 60);
    CHECK(claims_rc(c, &ic, now, why) == -1 &&
              strcmp(why, "issuer \"" ISS "/\" does not match \"" ISS "\"") == 0,
          "iss mismatch: %s", why);
    issuer_config meta = ic_make("https://*.example.com", "sigstore", 1);
    CHECK(claims_rc(c, &meta, now, why) == 0, "meta issuer: iss already matched: %s", why);
}

int main(void)
{
    test_shape();
    test_signatures();
    test_claims();
    CHECK_MAIN_END();
}
