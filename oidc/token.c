/*
 * oidc/token.c: JWS compact tokens: shape check, decoding, signature and claim checks.
 *
 * The shape is checked in one pass over the bytes, with no allocation, before anything is
 * decoded (GHSA-f83f-xpx7-ffpw). The signature algorithm is the JWK's; the header may only
 * repeat it. Signatures are checked with EVP_DigestVerify against the key parsed at JWKS time;
 * the digests are fetched from the provider once per process.
 */
#include "oidc/token.h"

#include <math.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/evp_once.h"
#include "common/json_fast.h"

/* Longest claim value quoted in a reason. */
#define QUOTE_MAX 200

static void set_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || !whylen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* ---- digests, fetched once ---- */

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *md_sha256, *md_sha384, *md_sha512;

static void md_fetch(void)
{
    md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    md_sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
    md_sha512 = EVP_MD_fetch(NULL, "SHA512", NULL);
}

/* What a JWS alg means to OpenSSL. */
struct jws_alg {
    const char *name;
    int is_ec;
    int bits; /* digest size: 256, 384, 512 */
    size_t coord; /* EC: field element size in bytes */
};

static const struct jws_alg jws_algs[] = {
    {"RS256", 0, 256, 0}, {"RS384", 0, 384, 0}, {"RS512", 0, 512, 0},
    {"ES256", 1, 256, 32}, {"ES384", 1, 384, 48},
};

static const EVP_MD *alg_md(const struct jws_alg *a)
{
    pthread_once(&md_once, md_fetch);
    return a->bits == 256 ? md_sha256 : a->bits == 384 ? md_sha384 : md_sha512;
}

/* ---- parse ---- */

static int is_b64url(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/* Decodes one base64url segment into a JSON object. */
static json_t *decode_json_segment(const char *seg, size_t len)
{
    size_t n;
    unsigned char *raw = b64url_decode_nopad(seg, len, &n);
    if (!raw)
        return NULL;
    json_error_t err;
    json_t *j = json_fast_loadb((const char *)raw, n, &err);
    free(raw);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

int oidc_token_parse(const char *raw, size_t len, oidc_token *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    if (!raw || len == 0) {
        set_why(why, whylen, "token is empty");
        return -1;
    }
    if (len > OIDC_TOKEN_MAX_LEN) {
        set_why(why, whylen, "token is longer than %d bytes", OIDC_TOKEN_MAX_LEN);
        return -1;
    }
    /* One pass: positions of the two dots, alphabet of everything else. */
    size_t dot[2] = {0, 0};
    int ndots = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '.') {
            if (ndots == 2) {
                set_why(why, whylen, "token is not three dot-separated parts");
                return -1;
            }
            dot[ndots++] = i;
        } else if (!is_b64url(c)) {
            set_why(why, whylen, "token has a character outside the base64url alphabet");
            return -1;
        }
    }
    if (ndots != 2) {
        set_why(why, whylen, "token is not three dot-separated parts");
        return -1;
    }
    if (dot[0] == 0 || dot[1] == dot[0] + 1 || dot[1] == len - 1) {
        set_why(why, whylen, "token has an empty part");
        return -1;
    }

    out->header = decode_json_segment(raw, dot[0]);
    if (!out->header) {
        set_why(why, whylen, "token header is not a base64url JSON object");
        goto fail;
    }
    out->claims = decode_json_segment(raw + dot[0] + 1, dot[1] - dot[0] - 1);
    if (!out->claims) {
        set_why(why, whylen, "token payload is not a base64url JSON object");
        goto fail;
    }
    out->alg = json_string_value(json_object_get(out->header, "alg"));
    if (!out->alg || !*out->alg) {
        set_why(why, whylen, "token header has no \"alg\"");
        goto fail;
    }
    const json_t *kid = json_object_get(out->header, "kid");
    if (kid && !json_is_string(kid)) {
        set_why(why, whylen, "token header \"kid\" is not a string");
        goto fail;
    }
    out->kid = json_string_value(kid);
    if (json_object_get(out->header, "crit")) {
        set_why(why, whylen, "token header has critical extensions (\"crit\"), not supported");
        goto fail;
    }
    out->iss = json_string_value(json_object_get(out->claims, "iss"));
    if (!out->iss || !*out->iss) {
        set_why(why, whylen, "token has no issuer (\"iss\" claim missing or not a string)");
        goto fail;
    }
    out->signing_input_len = dot[1];
    out->signing_input = malloc(dot[1] + 1);
    if (!out->signing_input) {
        set_why(why, whylen, "out of memory");
        goto fail;
    }
    memcpy(out->signing_input, raw, dot[1]);
    out->signing_input[dot[1]] = '\0';
    out->signature = b64url_decode_nopad(raw + dot[1] + 1, len - dot[1] - 1, &out->signature_len);
    if (!out->signature) {
        set_why(why, whylen, "token signature is not base64url");
        goto fail;
    }
    return 0;
fail:
    oidc_token_clear(out);
    return -1;
}

void oidc_token_clear(oidc_token *tok)
{
    if (!tok)
        return;
    json_decref(tok->header);
    json_decref(tok->claims);
    free(tok->signing_input);
    free(tok->signature);
    memset(tok, 0, sizeof(*tok));
}

/* ---- signature ---- */

/* Raw r||s (2*coord bytes) to a DER ECDSA-Sig-Value; malloc'd in *der. Returns its length or -1. */
static int ecdsa_raw_to_der(const unsigned char *sig, size_t coord, unsigned char **der)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)coord, NULL);
    BIGNUM *s = BN_bin2bn(sig + coord, (int)coord, NULL);
    int len = -1;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        *der = NULL;
        len = i2d_ECDSA_SIG(es, der);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return len;
}

int oidc_token_verify_signature(const oidc_token *tok, const oidc_jwk *key, char *why,
                                size_t whylen)
{
    if (!key || !key->alg || !key->pkey) {
        set_why(why, whylen, "no key to verify the token signature");
        return -1;
    }
    if (!tok || !tok->alg || !tok->signing_input || !tok->signature) {
        set_why(why, whylen, "token was not parsed");
        return -1;
    }
    if (strcmp(tok->alg, "none") == 0) {
        set_why(why, whylen, "unsigned tokens (alg \"none\") are not accepted");
        return -1;
    }
    if (strcmp(tok->alg, key->alg) != 0) {
        set_why(why, whylen, "token algorithm \"%.32s\" does not match the issuer key's \"%s\"",
                tok->alg, key->alg);
        return -1;
    }
    const struct jws_alg *a = NULL;
    for (size_t i = 0; i < sizeof(jws_algs) / sizeof(jws_algs[0]); i++)
        if (strcmp(jws_algs[i].name, key->alg) == 0)
            a = &jws_algs[i];
    if (!a) {
        set_why(why, whylen, "algorithm \"%s\" is not supported", key->alg);
        return -1;
    }
    int key_type = EVP_PKEY_get_base_id(key->pkey);
    if (key_type != (a->is_ec ? EVP_PKEY_EC : EVP_PKEY_RSA)) {
        set_why(why, whylen, "issuer key type does not fit algorithm \"%s\"", key->alg);
        return -1;
    }
    const EVP_MD *md = alg_md(a);
    if (!md) {
        set_why(why, whylen, "digest for \"%s\" is not available", key->alg);
        return -1;
    }

    const unsigned char *sig = tok->signature;
    size_t siglen = tok->signature_len;
    unsigned char *der = NULL;
    if (a->is_ec) {
        if (siglen != 2 * a->coord) {
            set_why(why, whylen, "%s signature must be %zu bytes, got %zu", key->alg,
                    2 * a->coord, siglen);
            return -1;
        }
        int dlen = ecdsa_raw_to_der(sig, a->coord, &der);
        if (dlen <= 0) {
            set_why(why, whylen, "out of memory");
            ERR_clear_error();
            return -1;
        }
        sig = der;
        siglen = (size_t)dlen;
    }

    int ok = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    /* From the key's prepared context when it has one (same digest: the alg matched above). */
    int ready = 0;
    if (ctx && key->verify_tmpl)
        ready = EVP_MD_CTX_copy_ex(ctx, key->verify_tmpl) == 1;
    else if (ctx)
        ready = EVP_DigestVerifyInit(ctx, &pctx, md, NULL, key->pkey) == 1 &&
                (a->is_ec || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1);
    if (ready)
        ok = evp_verify_once(ctx, sig, siglen, (const unsigned char *)tok->signing_input,
                             tok->signing_input_len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ERR_clear_error();
    if (!ok) {
        set_why(why, whylen, "token signature does not verify");
        return -1;
    }
    return 0;
}

/* ---- claims ---- */

/* `v` as compact JSON, cut at QUOTE_MAX characters ("..." appended). */
static void quote_json(const json_t *v, char *buf, size_t buflen)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) {
        snprintf(buf, buflen, "(unprintable)");
        return;
    }
    if (strlen(s) > QUOTE_MAX)
        snprintf(buf, buflen, "%.*s...", QUOTE_MAX, s);
    else
        snprintf(buf, buflen, "%s", s);
    free(s);
}

static void quote_str(const char *s, char *buf, size_t buflen)
{
    json_t *j = json_string(s);
    if (!j) {
        snprintf(buf, buflen, "(not UTF-8)");
        return;
    }
    quote_json(j, buf, buflen);
    json_decref(j);
}

/* A NumericDate as RFC 3339 UTC, or the number itself when out of range. */
static void format_time(double t, char *buf, size_t buflen)
{
    struct tm tm;
    if (t > -62135596800.0 && t < 253402300800.0) { /* years 1..9999 */
        time_t tt = (time_t)floor(t);
        if (gmtime_r(&tt, &tm) && strftime(buf, buflen, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
            return;
    }
    snprintf(buf, buflen, "%.0f", t);
}

static int aud_contains(const json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    const json_t *v;
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return 1;
    }
    return 0;
}

int oidc_token_check_claims(const oidc_token *tok, const issuer_config *ic, time_t now,
                            char *why, size_t whylen)
{
    char q1[QUOTE_MAX + 8], q2[QUOTE_MAX + 8], ts[64];
    const json_t *claims = tok ? tok->claims : NULL;
    if (!claims || !tok->iss || !ic) {
        set_why(why, whylen, "token was not parsed");
        return -1;
    }

    /* iss: a meta issuer's pattern was matched against iss already. */
    if (!ic->is_meta && strcmp(tok->iss, ic->issuer_url) != 0) {
        quote_str(tok->iss, q1, sizeof(q1));
        quote_str(ic->issuer_url, q2, sizeof(q2));
        set_why(why, whylen, "issuer %s does not match %s", q1, q2);
        return -1;
    }

    const json_t *aud = json_object_get(claims, "aud");
    if (!aud) {
        set_why(why, whylen, "token has no audience (\"aud\" claim missing)");
        return -1;
    }
    if (!json_is_string(aud) && !json_is_array(aud)) {
        set_why(why, whylen, "audience claim is neither a string nor an array");
        return -1;
    }
    if (!aud_contains(aud, ic->client_id)) {
        quote_json(aud, q1, sizeof(q1));
        quote_str(ic->client_id, q2, sizeof(q2));
        set_why(why, whylen, "audience %s does not contain %s", q1, q2);
        return -1;
    }

    const json_t *exp = json_object_get(claims, "exp");
    if (!exp) {
        set_why(why, whylen, "token has no expiry (\"exp\" claim missing)");
        return -1;
    }
    if (!json_is_number(exp)) {
        set_why(why, whylen, "\"exp\" claim is not a number");
        return -1;
    }
    double e = json_number_value(exp);
    if (!(e > (double)now)) {
        format_time(e, ts, sizeof(ts));
        set_why(why, whylen, "token expired at %s", ts);
        return -1;
    }

    const json_t *nbf = json_object_get(claims, "nbf");
    if (nbf) {
        if (!json_is_number(nbf)) {
            set_why(why, whylen, "\"nbf\" claim is not a number");
            return -1;
        }
        double nb = json_number_value(nbf);
        if (nb > (double)now + OIDC_NBF_LEEWAY) {
            format_time(nb, ts, sizeof(ts));
            set_why(why, whylen, "token not valid before %s", ts);
            return -1;
        }
    }
    return 0;
}
