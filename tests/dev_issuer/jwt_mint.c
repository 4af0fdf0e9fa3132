/*
 * tests/dev_issuer/jwt_mint.c: a JWT from the /token parameters, good or deliberately bad.
 *
 * RS256 is RSASSA-PKCS1-v1_5 with SHA-256; ES256 is ECDSA P-256 SHA-256 in JWS form (r||s, 32
 * bytes each); "none" carries the RS256 signature of the published RSA key, so that alg is its
 * only flaw (sig=empty gives RFC 7519's unsecured form, "<header>.<payload>."); "HS256-PEM" is
 * HMAC-SHA256 keyed with the text of the RSA public key's PEM (the algorithm-confusion attack),
 * with header alg "HS256".
 */
#include "dev_issuer.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base64.h"

#define DEFAULT_EMAIL "dev@fulcrum.test"
#define DEFAULT_SUB "dev-subject"
#define DEFAULT_AUD "sigstore"
#define DEFAULT_EXP_IN 300

enum alg { ALG_RS256, ALG_ES256, ALG_NONE, ALG_HS256_PEM };

/* What the parameters ask for. Pointers borrow from the params object. */
struct mint_req {
    const char *email;
    json_t *email_verified; /* new reference; NULL = no claim */
    const char *sub;
    json_t *aud;            /* new reference */
    const char *iss;        /* NULL = the issuer URL */
    json_int_t exp_in;
    int has_nbf;
    json_int_t nbf_in;
    enum alg alg;
    const char *kid;        /* NULL = the key's kid */
    int kid_absent;
    int other_key;
    int tamper;
    int empty_sig;
    json_t *claims, *header, *omit; /* borrowed; may be NULL */
};

static const char *const known_params[] = {
    "email", "email_verified", "sub", "aud", "iss", "exp_in", "nbf_in", "alg",
    "kid",   "key",            "tamper", "sig",    "claims", "header", "omit", NULL,
};

static int bad(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

/* A string parameter (NULL when absent). -1 when present but not a string. */
static int get_str(const json_t *params, const char *name, const char **out, char *why,
                   size_t whylen)
{
    json_t *v = json_object_get(params, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return bad(why, whylen, "parameter %s must be a string", name);
    *out = json_string_value(v);
    return 0;
}

/* An integer parameter: a JSON integer or a decimal string. *present = 0 when absent. */
static int get_int(const json_t *params, const char *name, json_int_t *out, int *present,
                   char *why, size_t whylen)
{
    json_t *v = json_object_get(params, name);
    *present = 0;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end = NULL;
        errno = 0;
        long long n = strtoll(s, &end, 10);
        if (!*s || *end || errno || isspace((unsigned char)*s))
            return bad(why, whylen, "parameter %s must be an integer number of seconds", name);
        *out = (json_int_t)n;
    } else {
        return bad(why, whylen, "parameter %s must be an integer number of seconds", name);
    }
    /* keep now + n far from overflowing json_int_t */
    if (*out > 100LL * 365 * 86400 || *out < -100LL * 365 * 86400)
        return bad(why, whylen, "parameter %s is out of range (at most 100 years)", name);
    *present = 1;
    return 0;
}

static json_t *split_aud(const char *s)
{
    if (!strchr(s, ','))
        return json_string(s);
    json_t *arr = json_array();
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (json_array_append_new(arr, json_stringn(p, n)) != 0) {
            json_decref(arr);
            return NULL;
        }
        if (!comma)
            return arr;
        p = comma + 1;
    }
}

static int parse_email_verified(const json_t *params, struct mint_req *m, char *why,
                                size_t whylen)
{
    json_t *v = json_object_get(params, "email_verified");
    if (!v) {
        m->email_verified = json_true();
        return 0;
    }
    if (json_is_null(v))
        return 0;
    if (json_is_boolean(v)) {
        m->email_verified = json_incref(v);
        return 0;
    }
    if (!json_is_string(v))
        return bad(why, whylen, "parameter %s must be true, false, absent or a string",
                   "email_verified");
    const char *s = json_string_value(v);
    if (strcmp(s, "true") == 0)
        m->email_verified = json_true();
    else if (strcmp(s, "false") == 0)
        m->email_verified = json_false();
    else if (strcmp(s, "absent") != 0)
        m->email_verified = json_string(s); /* "True", "yes", ...: sent as a JSON string */
    return 0;
}

static int parse_flag(const json_t *params, const char *name, int *out, char *why, size_t whylen)
{
    json_t *v = json_object_get(params, name);
    *out = 0;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
        *out = (int)json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (s && (strcmp(s, "1") == 0 || strcmp(s, "true") == 0)) {
        *out = 1;
        return 0;
    }
    if (s && (strcmp(s, "0") == 0 || strcmp(s, "false") == 0))
        return 0;
    return bad(why, whylen, "parameter %s must be 1, 0, true or false", name);
}

static int parse_req(const json_t *params, struct mint_req *m, char *why, size_t whylen)
{
    memset(m, 0, sizeof *m);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)params, key, v) {
        int known = 0;
        for (int i = 0; known_params[i]; i++)
            known |= strcmp(key, known_params[i]) == 0;
        if (!known)
            return bad(why, whylen, "unknown parameter \"%.64s\"", key);
    }
    const char *alg = NULL, *keysel = NULL, *aud = NULL, *sig = NULL;
    int present = 0;
    if (get_str(params, "email", &m->email, why, whylen) || get_str(params, "sub", &m->sub, why, whylen) ||
        get_str(params, "iss", &m->iss, why, whylen) || get_str(params, "alg", &alg, why, whylen) ||
        get_str(params, "kid", &m->kid, why, whylen) || get_str(params, "key", &keysel, why, whylen) ||
        get_str(params, "sig", &sig, why, whylen) ||
        get_int(params, "exp_in", &m->exp_in, &present, why, whylen) ||
        get_int(params, "nbf_in", &m->nbf_in, &m->has_nbf, why, whylen) ||
        parse_flag(params, "tamper", &m->tamper, why, whylen) ||
        parse_email_verified(params, m, why, whylen))
        return -1;
    if (!present)
        m->exp_in = DEFAULT_EXP_IN;
    if (!m->email)
        m->email = DEFAULT_EMAIL;
    if (!m->sub)
        m->sub = DEFAULT_SUB;
    if (sig && strcmp(sig, "empty") != 0)
        return bad(why, whylen, "sig \"%.32s\": the only value is \"empty\"", sig);
    m->empty_sig = sig != NULL;
    if (m->kid && strcmp(m->kid, "absent") == 0) {
        m->kid = NULL;
        m->kid_absent = 1;
    }

    if (!alg || strcmp(alg, "RS256") == 0)
        m->alg = ALG_RS256;
    else if (strcmp(alg, "ES256") == 0)
        m->alg = ALG_ES256;
    else if (strcmp(alg, "none") == 0)
        m->alg = ALG_NONE;
    else if (strcmp(alg, "HS256-PEM") == 0)
        m->alg = ALG_HS256_PEM;
    else
        return bad(why, whylen, "alg \"%.32s\" is not RS256, ES256, none or HS256-PEM", alg);

    if (keysel && strcmp(keysel, "other") == 0)
        m->other_key = 1;
    else if (keysel && strcmp(keysel, "published") != 0)
        return bad(why, whylen, "key \"%.32s\" is not published or other", keysel);
    if (m->other_key && m->alg != ALG_RS256 && m->alg != ALG_ES256)
        return bad(why, whylen, "%s", "key=other needs alg RS256 or ES256");

    v = json_object_get(params, "aud");
    if (v && json_is_array(v)) {
        m->aud = json_incref(v);
    } else {
        if (get_str(params, "aud", &aud, why, whylen))
            return -1;
        m->aud = split_aud(aud ? aud : DEFAULT_AUD);
    }

    m->claims = json_object_get(params, "claims");
    m->header = json_object_get(params, "header");
    if (m->claims && !json_is_object(m->claims))
        return bad(why, whylen, "parameter %s must be a JSON object", "claims");
    if (m->header && !json_is_object(m->header))
        return bad(why, whylen, "parameter %s must be a JSON object", "header");
    v = json_object_get(params, "omit");
    if (v && json_is_string(v))
        m->omit = split_aud(json_string_value(v)); /* same comma splitting */
    else if (v && json_is_array(v))
        m->omit = json_incref(v);
    else if (v)
        return bad(why, whylen, "parameter %s must be a comma list or an array", "omit");
    return m->aud ? 0 : bad(why, whylen, "%s", "out of memory");
}

static void req_clear(struct mint_req *m)
{
    json_decref(m->email_verified);
    json_decref(m->aud);
    json_decref(m->omit);
}

static void omit_claims(json_t *payload, json_t *omit)
{
    if (json_is_string(omit)) {
        json_object_del(payload, json_string_value(omit));
        return;
    }
    size_t i;
    json_t *name;
    json_array_foreach(omit, i, name) {
        if (json_is_string(name))
            json_object_del(payload, json_string_value(name));
    }
}

static char *b64url_json(const json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    char *out = text ? b64url_encode((const unsigned char *)text, strlen(text)) : NULL;
    free(text);
    return out;
}

/* Signs input with pkey (RS256 or ES256 in JWS form); returns base64url of the signature. */
static char *sign_asym(EVP_PKEY *pkey, int ecdsa, const char *input, size_t len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *sig = NULL, raw[64];
    size_t siglen = 0;
    char *out = NULL;
    if (!ctx || EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey, NULL) != 1 ||
        EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)input, len) != 1 ||
        !(sig = malloc(siglen)) ||
        EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, len) != 1)
        goto out;
    if (!ecdsa) {
        out = b64url_encode(sig, siglen);
        goto out;
    }
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
    if (es && BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32) == 32 &&
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32) == 32)
        out = b64url_encode(raw, sizeof raw);
    ECDSA_SIG_free(es);
out:
    free(sig);
    EVP_MD_CTX_free(ctx);
    return out;
}

static char *sign_hs256(const char *secret, const char *input, size_t len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)input, len, mac,
              &maclen))
        return NULL;
    return b64url_encode(mac, maclen);
}

static char flip_char(char c)
{
    if (isalpha((unsigned char)c))
        return (char)(c ^ 0x20);
    return c == '9' ? '0' : (char)(c + 1);
}

/* base64url of payload_text with one character of a claim value changed (so it stays JSON):
 * the first of "sub", else of any string claim; else one base64 character is changed. */
static char *tampered_segment(const char *payload_text, const char *payload_b64)
{
    char *copy = strdup(payload_text);
    if (!copy)
        return NULL;
    char *at = strstr(copy, "\"sub\":\"");
    at = at ? at + 7 : NULL;
    if (!at || !isalnum((unsigned char)*at)) {
        at = NULL;
        for (char *p = strstr(copy, "\":\""); p; p = strstr(p + 1, "\":\""))
            if (isalnum((unsigned char)p[3])) {
                at = p + 3;
                break;
            }
    }
    char *out;
    if (at) {
        *at = flip_char(*at);
        out = b64url_encode((const unsigned char *)copy, strlen(copy));
    } else {
        out = strdup(payload_b64);
        if (out && out[0])
            out[strlen(out) / 2] = out[strlen(out) / 2] == 'A' ? 'B' : 'A';
    }
    free(copy);
    return out;
}

char *jwt_mint(dev_keys *k, const char *issuer_url, const json_t *params, int *bad_request,
               char *why, size_t whylen)
{
    struct mint_req m;
    *bad_request = 0;
    if (parse_req(params, &m, why, whylen) != 0) {
        req_clear(&m);
        *bad_request = 1;
        return NULL;
    }
    const dev_key *pub = m.alg == ALG_ES256 ? &k->ec : &k->rsa;
    static const char *const alg_names[] = {"RS256", "ES256", "none", "HS256"};
    json_int_t now = (json_int_t)time(NULL);

    json_t *header = json_pack("{s:s,s:s}", "alg", alg_names[m.alg], "typ", "JWT");
    if (header && !m.kid_absent)
        json_object_set_new(header, "kid", json_string(m.kid ? m.kid : pub->kid));
    if (header && m.header)
        json_object_update(header, m.header);

    json_t *payload = json_pack("{s:s,s:s,s:O,s:I,s:I}", "iss", m.iss ? m.iss : issuer_url,
                                "sub", m.sub, "aud", m.aud, "exp", now + m.exp_in, "iat", now);
    if (payload && m.has_nbf)
        json_object_set_new(payload, "nbf", json_integer(now + m.nbf_in));
    if (payload)
        json_object_set_new(payload, "email", json_string(m.email));
    if (payload && m.email_verified)
        json_object_set(payload, "email_verified", m.email_verified);
    if (payload && m.claims)
        json_object_update(payload, m.claims);
    if (payload && m.omit)
        omit_claims(payload, m.omit);

    char *h64 = header ? b64url_json(header) : NULL;
    char *payload_text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
    char *p64 = payload_text ? b64url_encode((const unsigned char *)payload_text,
                                             strlen(payload_text))
                             : NULL;
    char *input = NULL, *s64 = NULL, *token = NULL;
    size_t ilen = 0;
    if (h64 && p64) {
        ilen = strlen(h64) + 1 + strlen(p64);
        input = malloc(ilen + 1);
        if (input)
            snprintf(input, ilen + 1, "%s.%s", h64, p64);
    }
    if (!input) {
        snprintf(why, whylen, "out of memory building the token");
        goto out;
    }
    switch (m.alg) {
    case ALG_RS256:
    case ALG_ES256: {
        EVP_PKEY *pkey = m.other_key ? keys_other(k, pub) : pub->pkey;
        s64 = pkey ? sign_asym(pkey, m.alg == ALG_ES256, input, ilen) : NULL;
        break;
    }
    case ALG_NONE: /* a good RS256 signature: only the alg is wrong */
        s64 = sign_asym(k->rsa.pkey, 0, input, ilen);
        break;
    case ALG_HS256_PEM:
        s64 = sign_hs256(k->rsa.pub_pem, input, ilen);
        break;
    }
    if (!s64) {
        snprintf(why, whylen, "cannot sign the token (%s)", alg_names[m.alg]);
        goto out;
    }
    if (m.empty_sig)
        s64[0] = '\0';
    if (m.tamper) {
        char *t64 = tampered_segment(payload_text, p64);
        if (!t64) {
            snprintf(why, whylen, "out of memory tampering with the token");
            goto out;
        }
        free(p64);
        p64 = t64;
    }
    size_t tlen = strlen(h64) + strlen(p64) + strlen(s64) + 3;
    token = malloc(tlen);
    if (token)
        snprintf(token, tlen, "%s.%s.%s", h64, p64, s64);
    else
        snprintf(why, whylen, "out of memory building the token");
out:
    free(h64);
    free(p64);
    free(s64);
    free(input);
    free(payload_text);
    json_decref(header);
    json_decref(payload);
    req_clear(&m);
    return token;
}
