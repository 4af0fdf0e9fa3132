/* The client's public key: parsing, key policy, proof of possession, allowed algorithms
 * (fulcio-compat.md §2). Every key is generated here with OpenSSL. */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ca/client_key.h"
#include "unit/check.h"

#define ALLOWED "(allowed: RSA 2048/3072/4096, ECDSA P-256/P-384/P-521, Ed25519)"

static const unsigned char MSG[] = "repo:octo/hello:ref:refs/heads/main";
#define MSGLEN (sizeof MSG - 1)

/* ---- key material ------------------------------------------------------------------------- */

/* Is the key client_key_parse returned the same as OpenSSL's `ref`? (An EC key from a point is
 * the module's own; client_key_openssl gives OpenSSL's.) */
static int same_key(EVP_PKEY *parsed, EVP_PKEY *ref)
{
    EVP_PKEY *o = parsed ? client_key_openssl(parsed) : NULL;
    int eq = o && EVP_PKEY_eq(o, ref) == 1;
    EVP_PKEY_free(o);
    return eq;
}

static EVP_PKEY *gen_rsa_type(const char *type, unsigned bits, unsigned long e)
{
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    BIGNUM *be = BN_new();
    if (ctx && be && BN_set_word(be, e) && EVP_PKEY_keygen_init(ctx) == 1 &&
        EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits) == 1 &&
        EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, be) == 1)
        EVP_PKEY_keygen(ctx, &key);
    BN_free(be);
    EVP_PKEY_CTX_free(ctx);
    return key;
}

static EVP_PKEY *gen_rsa(unsigned bits, unsigned long e)
{
    return gen_rsa_type("RSA", bits, e);
}

static EVP_PKEY *gen_named(const char *type)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, type);
}

static EVP_PKEY *gen_dsa(void)
{
    EVP_PKEY *params = NULL, *key = NULL;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "DSA", NULL), *kctx = NULL;
    if (pctx && EVP_PKEY_paramgen_init(pctx) == 1 &&
        EVP_PKEY_CTX_set_dsa_paramgen_bits(pctx, 1024) == 1 &&
        EVP_PKEY_paramgen(pctx, &params) == 1 &&
        (kctx = EVP_PKEY_CTX_new_from_pkey(NULL, params, NULL)) &&
        EVP_PKEY_keygen_init(kctx) == 1)
        EVP_PKEY_keygen(kctx, &key);
    EVP_PKEY_CTX_free(kctx);
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(params);
    return key;
}

/* An RSA public key from a chosen modulus and 65537. */
static EVP_PKEY *rsa_from_n(const BIGNUM *n)
{
    EVP_PKEY *key = NULL;
    BIGNUM *e = BN_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (e && bld && ctx && BN_set_word(e, 65537) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) &&
        (params = OSSL_PARAM_BLD_to_param(bld)) && EVP_PKEY_fromdata_init(ctx) == 1)
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(e);
    return key;
}

static unsigned char *spki_der(EVP_PKEY *key, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    *len = n > 0 ? (size_t)n : 0;
    return n > 0 ? der : NULL;
}

static char *bio_text(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *out = malloc((size_t)n + 1);
    if (out) {
        memcpy(out, data, (size_t)n);
        out[n] = '\0';
    }
    BIO_free(bio);
    return out;
}

static char *pem_block(const char *type, const unsigned char *der, size_t len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio(bio, type, "", der, (long)len);
    return bio_text(bio);
}

static char *spki_pem(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key);
    return bio_text(bio);
}

/* "RSA PUBLIC KEY": PKCS#1 RSAPublicKey. */
static char *pkcs1_pem(EVP_PKEY *key)
{
    unsigned char *der = NULL;
    int n = i2d_PublicKey(key, &der);
    char *pem = n > 0 ? pem_block("RSA PUBLIC KEY", der, (size_t)n) : NULL;
    OPENSSL_free(der);
    return pem;
}

static EVP_PKEY *parse_str(const char *s, char *why)
{
    return client_key_parse((const unsigned char *)s, strlen(s), why, 256);
}

/* ---- signatures --------------------------------------------------------------------------- */

/* md NULL for Ed25519; pss selects RSA-PSS (salt = digest length). */
static unsigned char *sign(EVP_PKEY *key, const EVP_MD *md, int pss, const unsigned char *msg,
                           size_t msglen, size_t *siglen)
{
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *sig = NULL;
    *siglen = 0;
    if (!mctx || EVP_DigestSignInit(mctx, &pctx, md, NULL, key) != 1)
        goto done;
    if (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        goto done;
    if (EVP_DigestSign(mctx, NULL, siglen, msg, msglen) != 1 || !(sig = malloc(*siglen)))
        goto done;
    if (EVP_DigestSign(mctx, sig, siglen, msg, msglen) != 1) {
        free(sig);
        sig = NULL;
    }
done:
    EVP_MD_CTX_free(mctx);
    return sig;
}

/* DER ECDSA-Sig-Value -> IEEE P1363 r||s, each half `half` bytes. */
static unsigned char *der_to_p1363(const unsigned char *der, size_t len, size_t half)
{
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
    unsigned char *out = calloc(2, half);
    if (es && out) {
        BN_bn2binpad(ECDSA_SIG_get0_r(es), out, (int)half);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), out + half, (int)half);
    }
    ECDSA_SIG_free(es);
    return out;
}

static int pop(EVP_PKEY *key, const unsigned char *sig, size_t siglen, char *why)
{
    why[0] = '\0';
    return client_key_verify_pop(key, MSG, MSGLEN, sig, siglen, why, 256);
}

/* ---- the allowed key types ---------------------------------------------------------------- */

struct allowed {
    const char *label, *describe;
    EVP_PKEY *key, *other; /* other: a second key of the same type */
    const EVP_MD *md;      /* PoP hash, NULL for Ed25519 */
    int md_nid;
    size_t half;           /* P1363 half length, 0 if not ECDSA */
};

static void test_allowed_key(struct allowed *a)
{
    char why[256];
    size_t derlen = 0;
    unsigned char *der = spki_der(a->key, &derlen);
    char *pem = spki_pem(a->key);
    CHECK(der && pem, "%s: encodings", a->label);
    if (!der || !pem)
        goto done;

    /* PEM "PUBLIC KEY" and raw DER parse to the same key, which re-encodes to the same SPKI. */
    EVP_PKEY *k = parse_str(pem, why);
    CHECK(same_key(k, a->key), "%s: PEM parses: %s", a->label, why);
    size_t relen = 0;
    EVP_PKEY *ko = k ? client_key_openssl(k) : NULL;
    unsigned char *re = ko ? spki_der(ko, &relen) : NULL;
    EVP_PKEY_free(ko);
    CHECK(re && relen == derlen && memcmp(re, der, derlen) == 0, "%s: re-encodes identically",
          a->label);
    OPENSSL_free(re);
    EVP_PKEY *kd = client_key_parse(der, derlen, why, sizeof why);
    CHECK(same_key(kd, a->key), "%s: DER parses: %s", a->label, why);
    EVP_PKEY_free(kd);

    /* An EC key keeps the point it was made from (the certificate's SPKI takes it from there):
     * OpenSSL's own encoding of the key's point, its curve; other keys and copies carry none. */
    int nid = NID_undef;
    size_t plen = 0;
    const unsigned char *point = k ? client_key_ec_point(k, &nid, &plen) : NULL;
    if (EVP_PKEY_is_a(a->key, "EC")) {
        unsigned char enc[200];
        size_t enclen = 0;
        char group[32] = "";
        CHECK(EVP_PKEY_get_octet_string_param(a->key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, enc,
                                              sizeof enc, &enclen) == 1 &&
                  EVP_PKEY_get_utf8_string_param(a->key, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                                 sizeof group, NULL) == 1,
              "%s: OpenSSL's point", a->label);
        CHECK(point && plen == enclen && memcmp(point, enc, plen) == 0 && plen == 1 + 2 * a->half &&
                  point[0] == 0x04,
              "%s: client_key_ec_point is the uncompressed point", a->label);
        CHECK(nid == OBJ_sn2nid(group), "%s: client_key_ec_point's curve is %s", a->label, group);
        EVP_PKEY *copy = k ? EVP_PKEY_dup(k) : NULL;
        const unsigned char *cpoint = copy ? client_key_ec_point(copy, &nid, &plen) : NULL;
        CHECK(cpoint && cpoint != point && plen == enclen && memcmp(cpoint, enc, plen) == 0 &&
                  client_key_policy_check(copy, why, sizeof why) == 0 &&
                  client_key_default_md(copy) == a->md_nid && same_key(copy, a->key),
              "%s: a copy carries its own copy of the point", a->label);
        EVP_PKEY_free(copy);
        /* The parsed key holds no OpenSSL key material: OpenSSL refuses it cleanly. */
        unsigned char *der_out = NULL;
        CHECK(k && EVP_PKEY_eq(k, a->key) != 1 && i2d_PUBKEY(k, &der_out) < 0 &&
                  !EVP_PKEY_is_a(k, "EC"),
              "%s: OpenSSL refuses the material-less key without crashing", a->label);
        OPENSSL_free(der_out);
    } else {
        CHECK(point == NULL, "%s: no point kept for a non-EC key", a->label);
    }

    if (EVP_PKEY_is_a(a->key, "RSA")) {
        char *p1 = pkcs1_pem(a->key);
        CHECK(p1 && strstr(p1, "-----BEGIN RSA PUBLIC KEY-----"), "%s: PKCS#1 PEM", a->label);
        EVP_PKEY *kp = p1 ? parse_str(p1, why) : NULL;
        CHECK(same_key(kp, a->key), "%s: PKCS#1 parses: %s", a->label, why);
        EVP_PKEY_free(kp);
        free(p1);
    }
    if (!k)
        goto done;

    CHECK(client_key_policy_check(k, why, sizeof why) == 0, "%s: policy: %s", a->label, why);
    char desc[64];
    client_key_describe(k, desc, sizeof desc);
    CHECK_STREQ(desc, a->describe, "describe");
    CHECK(client_key_default_md(k) == a->md_nid, "%s: default md %d", a->label,
          client_key_default_md(k));
    CHECK(client_key_hash_allowed(k, a->md_nid, why, sizeof why) == 0, "%s: default pair allowed",
          a->label);

    /* Proof of possession: good, other message, other key, flipped byte. */
    size_t siglen;
    unsigned char *sig = sign(a->key, a->md, 0, MSG, MSGLEN, &siglen);
    CHECK(sig != NULL, "%s: sign", a->label);
    if (sig) {
        CHECK(pop(k, sig, siglen, why) == 0, "%s: PoP verifies: %s", a->label, why);
        CHECK(client_key_verify_pop(k, (const unsigned char *)"repo:octo/other", 15, sig, siglen,
                                    why, sizeof why) == -1,
              "%s: PoP over another message refused", a->label);
        size_t olen;
        unsigned char *oder = spki_der(a->other, &olen);
        EVP_PKEY *other = client_key_parse(oder, olen, why, sizeof why);
        OPENSSL_free(oder);
        CHECK(other && pop(other, sig, siglen, why) == -1, "%s: PoP under another key refused",
              a->label);
        EVP_PKEY_free(other);
        sig[siglen / 2] ^= 0x01;
        CHECK(pop(k, sig, siglen, why) == -1, "%s: tampered PoP refused", a->label);
        sig[siglen / 2] ^= 0x01;
    }
    if (sig && a->half) {
        unsigned char *p1363 = der_to_p1363(sig, siglen, a->half);
        CHECK(pop(k, p1363, 2 * a->half, why) == 0, "%s: P1363 verifies: %s", a->label, why);
        p1363[2 * a->half - 1] ^= 0x01;
        CHECK(pop(k, p1363, 2 * a->half, why) == -1, "%s: tampered P1363 refused", a->label);
        free(p1363);
    }
    free(sig);
    EVP_PKEY_free(k);
done:
    OPENSSL_free(der);
    free(pem);
}

/* ---- details ------------------------------------------------------------------------------- */

static void test_pem_forms(EVP_PKEY *p256)
{
    char why[256], *pem = spki_pem(p256);
    char buf[2048];
    /* Leading text, CRLF line ends, no final newline, one long base64 line. */
    snprintf(buf, sizeof buf, "some preamble\n%s", pem);
    EVP_PKEY *k = parse_str(buf, why);
    CHECK(same_key(k, p256), "leading text tolerated: %s", why);
    EVP_PKEY_free(k);
    size_t o = 0;
    for (const char *s = pem; *s && o < sizeof buf - 2; s++) {
        if (*s == '\n')
            buf[o++] = '\r';
        buf[o++] = *s;
    }
    buf[o] = '\0';
    k = parse_str(buf, why);
    CHECK(same_key(k, p256), "CRLF tolerated: %s", why);
    EVP_PKEY_free(k);
    snprintf(buf, sizeof buf, "%s", pem);
    buf[strlen(buf) - 1] = '\0';
    k = parse_str(buf, why);
    CHECK(same_key(k, p256), "no final newline: %s", why);
    EVP_PKEY_free(k);
    const char *body = strchr(pem, '\n') + 1;
    o = (size_t)snprintf(buf, sizeof buf, "-----BEGIN PUBLIC KEY-----\n");
    for (const char *s = body; *s && *s != '-'; s++)
        if (*s != '\n')
            buf[o++] = *s;
    snprintf(buf + o, sizeof buf - o, "\n-----END PUBLIC KEY-----\n");
    k = parse_str(buf, why);
    CHECK(same_key(k, p256), "single base64 line: %s", why);
    EVP_PKEY_free(k);
    free(pem);
}

static void test_garbage(EVP_PKEY *p256, EVP_PKEY *rsa)
{
    char why[256];
    CHECK(client_key_parse((const unsigned char *)"", 0, why, sizeof why) == NULL, "empty");
    CHECK_STREQ(why, "publicKey.content is empty", "empty reason");
    CHECK(parse_str("hello, world", why) == NULL, "text");
    CHECK_STREQ(why, "publicKey.content is not a PEM or DER public key", "text reason");

    size_t derlen;
    unsigned char *der = spki_der(p256, &derlen);
    char *cert = pem_block("CERTIFICATE", der, derlen);
    CHECK(parse_str(cert, why) == NULL, "PEM CERTIFICATE refused");
    CHECK_STREQ(why, "publicKey.content: PEM type \"CERTIFICATE\" is not PUBLIC KEY or RSA PUBLIC KEY",
                "wrong PEM type reason");
    free(cert);

    char *junk = pem_block("PUBLIC KEY", (const unsigned char *)"hello world", 11);
    CHECK(parse_str(junk, why) == NULL, "PEM of junk refused");
    CHECK_STREQ(why, "publicKey.content: the PEM PUBLIC KEY block is not a valid SubjectPublicKeyInfo",
                "junk PEM reason");
    free(junk);
    char *spki_as_pkcs1 = pem_block("RSA PUBLIC KEY", der, derlen);
    CHECK(parse_str(spki_as_pkcs1, why) == NULL, "SPKI labelled RSA PUBLIC KEY refused");
    CHECK_STREQ(why, "publicKey.content: the PEM RSA PUBLIC KEY block is not a valid PKCS#1 "
                     "RSAPublicKey",
                "PKCS#1 reason");
    free(spki_as_pkcs1);
    CHECK(parse_str("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n", why) == NULL,
          "bad base64 refused");
    CHECK_STREQ(why, "publicKey.content is not a PEM or DER public key", "bad base64 reason");

    /* DER: truncated, trailing byte, off-curve point, compressed point. */
    CHECK(client_key_parse(der, derlen - 1, why, sizeof why) == NULL, "truncated DER refused");
    unsigned char longer[200];
    memcpy(longer, der, derlen);
    longer[derlen] = 0;
    CHECK(client_key_parse(longer, derlen + 1, why, sizeof why) == NULL, "trailing byte refused");
    memcpy(longer, der, derlen);
    longer[derlen - 1] ^= 0x01;
    CHECK(client_key_parse(longer, derlen, why, sizeof why) == NULL, "off-curve point refused");
    CHECK_STREQ(why, "publicKey.content: the EC point is not a valid uncompressed point of P-256",
                "off-curve reason");
    /* The other curves: their usual encoding parses to the same key, a point off the curve is
     * refused with the curve's name. */
    static const char *const more[] = {"P-384", "P-521"};
    static const size_t point_len[] = {97, 133};
    for (size_t i = 0; i < 2; i++) {
        EVP_PKEY *k = EVP_EC_gen(more[i]);
        size_t kl = 0;
        unsigned char *kd = k ? spki_der(k, &kl) : NULL;
        EVP_PKEY *back = kd ? client_key_parse(kd, kl, why, sizeof why) : NULL;
        CHECK(same_key(back, k), "%s DER SPKI parses to the same key", more[i]);
        char want[120];
        snprintf(want, sizeof want,
                 "publicKey.content: the EC point is not a valid uncompressed point of %s",
                 more[i]);
        if (kd)
            kd[kl - 1] ^= 0x01;
        CHECK(kd && client_key_parse(kd, kl, why, sizeof why) == NULL && strcmp(why, want) == 0,
              "%s off-curve point refused: %s", more[i], why);
        if (kd)
            kd[kl - point_len[i]] = 0x02; /* the point's first byte: not uncompressed */
        CHECK(kd && client_key_parse(kd, kl, why, sizeof why) == NULL, "%s point not 04 refused",
              more[i]);
        EVP_PKEY_free(back);
        OPENSSL_free(kd);
        EVP_PKEY_free(k);
    }
    /* The point at infinity: BIT STRING 00 (Go's elliptic.Unmarshal refuses it). */
    static const unsigned char infinity[] = {
        0x30, 0x19, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
        0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x02, 0x00, 0x00};
    CHECK(client_key_parse(infinity, sizeof infinity, why, sizeof why) == NULL,
          "point at infinity refused");
    CHECK_STREQ(why, "publicKey.content: the EC point is not a valid uncompressed point of P-256",
                "infinity reason");
    OPENSSL_free(der);

    EVP_PKEY *c = EVP_PKEY_dup(p256);
    CHECK(c && EVP_PKEY_set_utf8_string_param(c, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                              "compressed") == 1,
          "compressed form");
    der = spki_der(c, &derlen);
    CHECK(der && derlen == 59, "compressed SPKI is 59 bytes (%zu)", derlen);
    CHECK(client_key_parse(der, derlen, why, sizeof why) == NULL, "compressed point refused");
    OPENSSL_free(der);
    CHECK(EVP_PKEY_set_utf8_string_param(c, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                         "uncompressed") == 1 &&
              EVP_PKEY_set_utf8_string_param(c, OSSL_PKEY_PARAM_EC_ENCODING, "explicit") == 1,
          "explicit parameters");
    der = spki_der(c, &derlen);
    CHECK(der && client_key_parse(der, derlen, why, sizeof why) == NULL,
          "explicit curve parameters refused");
    CHECK_STREQ(why, "publicKey.content: EC keys without a named curve are not supported",
                "explicit reason");
    OPENSSL_free(der);
    EVP_PKEY_free(c);

    /* An RSA SPKI cut inside the modulus. */
    der = spki_der(rsa, &derlen);
    CHECK(client_key_parse(der, 100, why, sizeof why) == NULL, "cut RSA DER refused");
    CHECK_STREQ(why, "publicKey.content is not a PEM or DER public key", "cut RSA reason");
    OPENSSL_free(der);

    /* BER that OpenSSL's d2i reads but is not DER (Go's parser refuses it): an indefinite
     * length, a non-minimal length, a primitive SEQUENCE tag (0x10; the fuzzer's find), and
     * the same inside the algorithm SEQUENCE. The DER itself is a key. */
    der = spki_der(p256, &derlen);
    CHECK(der && derlen == 91 && der[0] == 0x30 && der[1] == 0x59 && der[2] == 0x30 &&
              der[3] == 0x13,
          "P-256 SPKI layout");
    if (der && derlen == 91) {
        unsigned char ber[100];
        EVP_PKEY *k = client_key_parse(der, derlen, why, sizeof why);
        CHECK(same_key(k, p256), "the DER is the key: %s", why);
        EVP_PKEY_free(k);
        ber[0] = 0x30, ber[1] = 0x80; /* indefinite length, end-of-contents 00 00 */
        memcpy(ber + 2, der + 2, 89);
        ber[91] = 0, ber[92] = 0;
        CHECK(client_key_parse(ber, 93, why, sizeof why) == NULL, "indefinite length refused");
        CHECK_STREQ(why, "publicKey.content is not a PEM or DER public key", "indefinite reason");
        ber[0] = 0x30, ber[1] = 0x81, ber[2] = 0x59; /* long form for 89 */
        memcpy(ber + 3, der + 2, 89);
        CHECK(client_key_parse(ber, 92, why, sizeof why) == NULL, "long-form length refused");
        memcpy(ber, der, 91);
        ber[0] = 0x10;
        CHECK(client_key_parse(ber, 91, why, sizeof why) == NULL, "primitive SEQUENCE refused");
        memcpy(ber, der, 91);
        ber[2] = 0x10;
        CHECK(client_key_parse(ber, 91, why, sizeof why) == NULL,
              "primitive algorithm SEQUENCE refused");
        /* the algorithm SEQUENCE with a long-form length, the outer one adjusted */
        ber[0] = 0x30, ber[1] = 0x5a, ber[2] = 0x30, ber[3] = 0x81, ber[4] = 0x13;
        memcpy(ber + 5, der + 4, 87);
        CHECK(client_key_parse(ber, 92, why, sizeof why) == NULL,
              "long-form algorithm length refused");
        char *pem = pem_block("PUBLIC KEY", ber, 92);
        CHECK(parse_str(pem, why) == NULL, "the same in a PEM block refused");
        free(pem);
    }
    OPENSSL_free(der);

    /* Failures leave nothing on OpenSSL's error queue. */
    ERR_clear_error();
    CHECK(parse_str("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", why) == NULL,
          "junk");
    CHECK(ERR_peek_error() == 0, "error queue left clean");
}

static void expect_refused(EVP_PKEY *key, const char *label, const char *want)
{
    char why[256] = "";
    CHECK(key != NULL, "%s: generated", label);
    if (!key)
        return;
    /* Through the parser where it can carry the key, as a client would send it. */
    size_t derlen;
    unsigned char *der = spki_der(key, &derlen);
    EVP_PKEY *k = der ? client_key_parse(der, derlen, why, sizeof why) : NULL;
    CHECK(k != NULL, "%s: parses: %s", label, why);
    CHECK(client_key_policy_check(k ? k : key, why, sizeof why) == -1, "%s: refused", label);
    CHECK_STREQ(why, want, label);
    EVP_PKEY_free(k);
    OPENSSL_free(der);
}

/* A 2048-bit modulus that is 1 modulo every ROCA prime (3..167) and has no factor below 752. */
static BIGNUM *roca_modulus(void)
{
    static const unsigned small[] = {173, 179, 181, 191, 193, 197, 199, 211, 223, 227, 229, 233,
                                     239, 241, 251, 257, 263, 269, 271, 277, 281, 283, 293, 307,
                                     311, 313, 317, 331, 337, 347, 349, 353, 359, 367, 373, 379,
                                     383, 389, 397, 401, 409, 419, 421, 431, 433, 439, 443, 449,
                                     457, 461, 463, 467, 479, 487, 491, 499, 503, 509, 521, 523,
                                     541, 547, 557, 563, 569, 571, 577, 587, 593, 599, 601, 607,
                                     613, 617, 619, 631, 641, 643, 647, 653, 659, 661, 673, 677,
                                     683, 691, 701, 709, 719, 727, 733, 739, 743, 751};
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *m = BN_new(), *k = BN_new(), *n = BN_new();
    BN_set_word(m, 1);
    for (unsigned p = 3; p <= 167; p += 2) {
        int prime = 1;
        for (unsigned d = 3; d * d <= p; d += 2)
            prime = prime && p % d;
        if (prime)
            BN_mul_word(m, p);
    }
    for (int tries = 0; tries < 1000; tries++) {
        /* n = k*M + 1 with k even, so n is odd; 2048 bits. */
        BN_rand(k, 2048 - BN_num_bits(m) + 1, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY);
        BN_clear_bit(k, 0);
        BN_mul(n, k, m, ctx);
        BN_add_word(n, 1);
        int ok = BN_num_bits(n) == 2048;
        for (size_t i = 0; ok && i < sizeof small / sizeof small[0]; i++)
            ok = BN_mod_word(n, small[i]) != 0;
        if (ok)
            break;
    }
    BN_free(m);
    BN_free(k);
    BN_CTX_free(ctx);
    return n;
}

/* p * q with q the next prime after p: Fermat's method factors it in the first round. */
static BIGNUM *close_primes_modulus(void)
{
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *p = BN_new(), *q = BN_new(), *n = BN_new();
    BN_generate_prime_ex(p, 1024, 0, NULL, NULL, NULL);
    BN_copy(q, p);
    do
        BN_add_word(q, 2);
    while (BN_check_prime(q, ctx, NULL) != 1);
    BN_mul(n, p, q, ctx);
    BN_free(p);
    BN_free(q);
    BN_CTX_free(ctx);
    return n;
}

static void test_policy_refusals(EVP_PKEY *rsa2048)
{
    EVP_PKEY *k;
    k = gen_rsa(1024, 65537);
    expect_refused(k, "RSA 1024",
                   "RSA key of 1024 bits is not allowed (RSA must be 2048, 3072 or 4096 bits)");
    EVP_PKEY_free(k);
    k = gen_rsa(2048, 3);
    expect_refused(k, "RSA e=3", "RSA public exponent 3 is not allowed (must be 65537)");
    EVP_PKEY_free(k);
    k = EVP_EC_gen("P-224");
    expect_refused(k, "P-224", "EC curve secp224r1 is not allowed (allowed: P-256, P-384, P-521)");
    EVP_PKEY_free(k);
    k = EVP_EC_gen("secp256k1");
    expect_refused(k, "secp256k1",
                   "EC curve secp256k1 is not allowed (allowed: P-256, P-384, P-521)");
    EVP_PKEY_free(k);
    k = EVP_EC_gen("brainpoolP256r1");
    expect_refused(k, "brainpool",
                   "EC curve brainpoolP256r1 is not allowed (allowed: P-256, P-384, P-521)");
    EVP_PKEY_free(k);
    k = gen_named("X25519");
    expect_refused(k, "X25519", "X25519 keys are not allowed " ALLOWED);
    EVP_PKEY_free(k);
    k = gen_named("ED448");
    expect_refused(k, "Ed448", "ED448 keys are not allowed " ALLOWED);
    EVP_PKEY_free(k);
    k = gen_rsa_type("RSA-PSS", 2048, 65537);
    expect_refused(k, "RSA-PSS", "RSA-PSS keys are not allowed " ALLOWED);
    EVP_PKEY_free(k);
    k = gen_dsa();
    expect_refused(k, "DSA", "DSA keys are not allowed " ALLOWED);
    EVP_PKEY_free(k);

    /* boulder's modulus checks, on constructed moduli. */
    BIGNUM *n = NULL;
    EVP_PKEY_get_bn_param(rsa2048, OSSL_PKEY_PARAM_RSA_N, &n);
    k = rsa_from_n(n); /* a real modulus passes ... */
    char why[256];
    CHECK(k && client_key_policy_check(k, why, sizeof why) == 0, "real modulus: %s", why);
    EVP_PKEY_free(k);
    /* ... moved to a multiple of 3, or made even, it does not. */
    BN_sub_word(n, BN_mod_word(n, 3));
    if (!BN_is_odd(n))
        BN_sub_word(n, 3);
    k = rsa_from_n(n);
    expect_refused(k, "small prime", "RSA modulus is divisible by the small prime 3");
    EVP_PKEY_free(k);
    BN_clear_bit(n, 0);
    k = rsa_from_n(n);
    expect_refused(k, "even modulus", "RSA modulus is divisible by the small prime 2");
    EVP_PKEY_free(k);
    BN_free(n);
    n = roca_modulus();
    k = rsa_from_n(n);
    expect_refused(k, "ROCA",
                   "RSA key has the ROCA fingerprint (CVE-2017-15361, vulnerable Infineon hardware)");
    EVP_PKEY_free(k);
    BN_free(n);
    n = close_primes_modulus();
    CHECK(BN_num_bits(n) == 2048, "close primes modulus is 2048 bits");
    k = rsa_from_n(n);
    expect_refused(k, "Fermat",
                   "RSA modulus factors by Fermat's method (its primes are too close together)");
    EVP_PKEY_free(k);
    BN_free(n);

    /* The point at infinity, built directly (the parser refuses it earlier). */
    unsigned char zero = 0;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, &zero, 1),
        OSSL_PARAM_construct_end()};
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    k = NULL;
    if (ctx && EVP_PKEY_fromdata_init(ctx) == 1)
        EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(ctx);
    if (k) { /* OpenSSL 3.0 accepts it in fromdata */
        CHECK(client_key_policy_check(k, why, sizeof why) == -1, "infinity refused by policy");
        CHECK_STREQ(why, "EC public key is not a valid point of P-256", "infinity policy reason");
        EVP_PKEY_free(k);
    }
    CHECK(client_key_policy_check(NULL, why, sizeof why) == -1, "NULL key refused");
}

static void test_pop_details(EVP_PKEY *rsa, EVP_PKEY *p256, EVP_PKEY *p384, EVP_PKEY *p521,
                             EVP_PKEY *ed)
{
    char why[256];
    size_t n;
    unsigned char *sig;

    /* RSA: PKCS#1 v1.5 with SHA-256 only. */
    sig = sign(rsa, EVP_sha256(), 1, MSG, MSGLEN, &n);
    CHECK(sig && pop(rsa, sig, n, why) == -1, "RSA-PSS PoP refused");
    CHECK_STREQ(why, "RSA PKCS#1 v1.5 SHA-256 signature does not verify", "PSS reason");
    free(sig);
    sig = sign(rsa, EVP_sha384(), 0, MSG, MSGLEN, &n);
    CHECK(sig && pop(rsa, sig, n, why) == -1, "RSA SHA-384 PoP refused");
    CHECK(sig && pop(rsa, sig, n - 1, why) == -1, "short RSA signature refused");
    CHECK_STREQ(why, "RSA PKCS#1 v1.5 SHA-256 signature of 255 bytes does not verify (RSA 2048 "
                     "signatures are 256 bytes)",
                "length reason");
    free(sig);

    /* ECDSA: the hash follows the curve. */
    sig = sign(p384, EVP_sha256(), 0, MSG, MSGLEN, &n);
    CHECK(sig && pop(p384, sig, n, why) == -1, "P-384 with SHA-256 refused");
    CHECK_STREQ(why, "ECDSA P-384 SHA-384 signature (ASN.1 DER) does not verify", "P-384 reason");
    free(sig);
    sig = sign(p521, EVP_sha384(), 0, MSG, MSGLEN, &n);
    CHECK(sig && pop(p521, sig, n, why) == -1, "P-521 with SHA-384 refused");
    free(sig);
    sig = sign(p256, EVP_sha256(), 0, MSG, MSGLEN, &n);
    unsigned char buf[200];
    memcpy(buf, sig, n);
    buf[n] = 0;
    CHECK(pop(p256, buf, n + 1, why) == -1, "DER with a trailing byte refused");
    unsigned char *p1363 = der_to_p1363(sig, n, 66);
    CHECK(pop(p256, p1363, 132, why) == 0, "P1363 with zero-padded halves (132 bytes) verifies: %s",
          why);
    free(p1363);
    p1363 = der_to_p1363(sig, n, 32);
    CHECK(pop(p256, p1363, 63, why) == -1, "odd-length signature refused");
    CHECK_STREQ(why, "ECDSA signature of 63 bytes is neither ASN.1 DER nor IEEE P1363 r||s",
                "odd length reason");
    memcpy(buf, p1363 + 32, 32);
    memcpy(buf + 32, p1363, 32);
    CHECK(pop(p256, buf, 64, why) == -1, "P1363 with r and s swapped refused");
    CHECK_STREQ(why, "ECDSA P-256 SHA-256 signature (IEEE P1363 r||s) does not verify",
                "P1363 reason");
    free(p1363);
    memset(buf, 0x11, 134);
    CHECK(pop(p256, buf, 134, why) == -1, "134 bytes refused");
    CHECK_STREQ(why, "ECDSA signature of 134 bytes is neither ASN.1 DER nor IEEE P1363 r||s",
                "too long reason");
    CHECK(client_key_verify_pop(p256, MSG, MSGLEN, sig, 0, why, sizeof why) == -1,
          "empty signature refused");
    free(sig);

    /* Ed25519: pure, 64 bytes; an empty message works too. */
    sig = sign(ed, NULL, 0, MSG, MSGLEN, &n);
    CHECK(sig && n == 64 && pop(ed, sig, 63, why) == -1, "63-byte Ed25519 refused");
    CHECK_STREQ(why, "Ed25519 signature of 63 bytes does not verify (must be 64 bytes)",
                "Ed25519 length reason");
    free(sig);
    sig = sign(ed, NULL, 0, (const unsigned char *)"", 0, &n);
    CHECK(sig && client_key_verify_pop(ed, NULL, 0, sig, n, why, sizeof why) == 0,
          "Ed25519 over the empty message: %s", why);
    free(sig);

    /* Keys with no scheme. */
    EVP_PKEY *x = gen_named("X25519");
    unsigned char junk[64] = {0};
    CHECK(x && client_key_verify_pop(x, MSG, MSGLEN, junk, 64, why, sizeof why) == -1, "X25519");
    CHECK_STREQ(why, "no proof-of-possession scheme for X25519 keys", "X25519 reason");
    EVP_PKEY_free(x);
    EVP_PKEY *p224 = EVP_EC_gen("P-224");
    CHECK(client_key_verify_pop(p224, MSG, MSGLEN, junk, 64, why, sizeof why) == -1, "P-224");
    CHECK_STREQ(why, "no proof-of-possession scheme for ECDSA secp224r1 keys", "P-224 reason");
    CHECK(client_key_default_md(p224) == NID_undef, "no default md for P-224");
    char desc[64];
    client_key_describe(p224, desc, sizeof desc);
    CHECK_STREQ(desc, "ECDSA secp224r1", "describe P-224");
    EVP_PKEY_free(p224);
}

/* The default --client-signing-algorithms, pair by pair (fulcio-compat.md §2.5). */
static void test_hash_matrix(struct allowed *keys, size_t nkeys)
{
    static const int mds[] = {NID_undef, NID_sha1, NID_sha256, NID_sha384, NID_sha512};
    char why[256];
    for (size_t i = 0; i < nkeys; i++)
        for (size_t j = 0; j < sizeof mds / sizeof mds[0]; j++) {
            int want = mds[j] == keys[i].md_nid ? 0 : -1;
            CHECK(client_key_hash_allowed(keys[i].key, mds[j], why, sizeof why) == want,
                  "%s with md %d: want %d (%s)", keys[i].label, mds[j], want, why);
        }
    client_key_hash_allowed(keys[3].key, NID_sha384, why, sizeof why);
    CHECK_STREQ(why, "signing algorithm not permitted: *ecdsa.PublicKey, SHA-384", "P-256/384");
    client_key_hash_allowed(keys[3].key, NID_undef, why, sizeof why);
    CHECK_STREQ(why, "signing algorithm not permitted: *ecdsa.PublicKey, unknown hash value 0",
                "P-256/none");
    client_key_hash_allowed(keys[0].key, NID_sha1, why, sizeof why);
    CHECK_STREQ(why, "signing algorithm not permitted: *rsa.PublicKey, SHA-1", "RSA/SHA-1");
    client_key_hash_allowed(keys[2].key, NID_sha512, why, sizeof why);
    CHECK_STREQ(why, "signing algorithm not permitted: *rsa.PublicKey, SHA-512", "RSA4096/512");
    client_key_hash_allowed(keys[6].key, NID_sha512, why, sizeof why);
    CHECK_STREQ(why, "signing algorithm not permitted: ed25519.PublicKey, SHA-512",
                "Ed25519ph is not in the default list");
    EVP_PKEY *small = gen_rsa(1024, 65537);
    CHECK(client_key_hash_allowed(small, NID_sha256, why, sizeof why) == -1,
          "RSA 1024 has no entry");
    EVP_PKEY_free(small);
}

/* Several threads parse keys and check proofs at once: each thread checks EC points with its own
 * EC_KEYs, which hold whichever point came last. Two P-256 keys and a P-384 one alternate in every
 * thread; a proof must verify under its own key only, every time. */
struct pop_thread {
    unsigned char *der[3], *sig[3];
    size_t der_len[3], sig_len[3];
    int wrong; /* outcomes that differ from the expected */
};

static void *pop_thread_main(void *arg)
{
    struct pop_thread *t = arg;
    char why[256];
    for (int round = 0; round < 150; round++)
        for (size_t k = 0; k < 3; k++) {
            EVP_PKEY *key = client_key_parse(t->der[k], t->der_len[k], why, sizeof why);
            size_t other = (k + 1) % 3;
            if (!key || pop(key, t->sig[k], t->sig_len[k], why) != 0 ||
                pop(key, t->sig[other], t->sig_len[other], why) != -1)
                t->wrong++;
            EVP_PKEY_free(key);
        }
    return NULL;
}

static void test_pop_threads(void)
{
    enum { NTHREADS = 4 };
    struct pop_thread th[NTHREADS];
    pthread_t tid[NTHREADS];
    EVP_PKEY *keys[3] = {EVP_EC_gen("P-256"), EVP_EC_gen("P-256"), EVP_EC_gen("P-384")};
    const EVP_MD *mds[3] = {EVP_sha256(), EVP_sha256(), EVP_sha384()};
    memset(th, 0, sizeof th);
    for (size_t k = 0; k < 3; k++) {
        th[0].der[k] = keys[k] ? spki_der(keys[k], &th[0].der_len[k]) : NULL;
        th[0].sig[k] = keys[k] ? sign(keys[k], mds[k], 0, MSG, MSGLEN, &th[0].sig_len[k]) : NULL;
        CHECK(th[0].der[k] && th[0].sig[k], "threads: key %zu made", k);
        if (!th[0].der[k] || !th[0].sig[k])
            goto done;
    }
    for (int i = 1; i < NTHREADS; i++)
        th[i] = th[0];
    int started = 0;
    for (; started < NTHREADS; started++)
        if (pthread_create(&tid[started], NULL, pop_thread_main, &th[started]) != 0)
            break;
    CHECK(started == NTHREADS, "threads: %d of %d started", started, NTHREADS);
    for (int i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
        CHECK(th[i].wrong == 0, "thread %d: %d of 450 keys parsed or proofs judged wrongly", i,
              th[i].wrong);
    }
done:
    for (size_t k = 0; k < 3; k++) {
        OPENSSL_free(th[0].der[k]);
        free(th[0].sig[k]);
        EVP_PKEY_free(keys[k]);
    }
}

int main(void)
{
    struct allowed keys[] = {
        {"RSA 2048", "RSA 2048", gen_rsa(2048, 65537), gen_rsa(2048, 65537), EVP_sha256(),
         NID_sha256, 0},
        {"RSA 3072", "RSA 3072", gen_rsa(3072, 65537), NULL, EVP_sha256(), NID_sha256, 0},
        {"RSA 4096", "RSA 4096", gen_rsa(4096, 65537), NULL, EVP_sha256(), NID_sha256, 0},
        {"P-256", "ECDSA P-256", EVP_EC_gen("P-256"), EVP_EC_gen("P-256"), EVP_sha256(),
         NID_sha256, 32},
        {"P-384", "ECDSA P-384", EVP_EC_gen("P-384"), EVP_EC_gen("P-384"), EVP_sha384(),
         NID_sha384, 48},
        {"P-521", "ECDSA P-521", EVP_EC_gen("P-521"), EVP_EC_gen("P-521"), EVP_sha512(),
         NID_sha512, 66},
        {"Ed25519", "Ed25519", gen_named("ED25519"), gen_named("ED25519"), NULL, NID_undef, 0},
    };
    size_t nkeys = sizeof keys / sizeof keys[0];
    /* "Another key" for RSA 3072/4096 is an RSA 2048 key: generating two of each is slow. */
    keys[1].other = EVP_PKEY_dup(keys[0].other);
    keys[2].other = EVP_PKEY_dup(keys[0].other);
    for (size_t i = 0; i < nkeys; i++) {
        CHECK(keys[i].key && keys[i].other, "%s: generated", keys[i].label);
        if (!keys[i].key || !keys[i].other)
            CHECK_MAIN_END();
    }
    for (size_t i = 0; i < nkeys; i++)
        test_allowed_key(&keys[i]);
    test_pem_forms(keys[3].key);
    test_garbage(keys[3].key, keys[0].key);
    test_policy_refusals(keys[0].key);
    test_pop_details(keys[0].key, keys[3].key, keys[4].key, keys[5].key, keys[6].key);
    test_hash_matrix(keys, nkeys);
    test_pop_threads();
    for (size_t i = 0; i < nkeys; i++) {
        EVP_PKEY_free(keys[i].key);
        EVP_PKEY_free(keys[i].other);
    }
    CHECK_MAIN_END();
}
