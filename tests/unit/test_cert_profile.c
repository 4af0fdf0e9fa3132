/* The leaf profile (fulcio-compat.md §4.1-4.3) and the pre-issuance check, without a signer. */
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ca/cert_profile.h"
#include "ca/client_key.h"
#include "ca/preissuance_check.h"
#include "unit/check.h"

#define NOW ((time_t)1700000000) /* 2023-11-14 22:13:20 UTC */
#define ISSUER_URL "https://accounts.google.com"
#define P(x) "pre-issuance check: " x

enum key_type { K_P256, K_P384, K_P521, K_RSA2048, K_ED25519, K_RSA1024 };
static const char *const key_names[] = {"P-256", "P-384", "P-521", "RSA 2048", "Ed25519",
                                        "RSA 1024"};
static EVP_PKEY *keys[6];

static EVP_PKEY *key_of(enum key_type t)
{
    if (keys[t])
        return keys[t];
    switch (t) {
    case K_P256: keys[t] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"); break;
    case K_P384: keys[t] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"); break;
    case K_P521: keys[t] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521"); break;
    case K_RSA2048: keys[t] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048); break;
    case K_ED25519: keys[t] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"); break;
    case K_RSA1024: keys[t] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024); break;
    }
    if (!keys[t]) {
        fprintf(stderr, "cannot generate %s key\n", key_names[t]);
        exit(2);
    }
    return keys[t];
}

/* The AlgorithmIdentifier a CA key of type t signs with, written by hand. */
static X509_ALGOR *alg_for(enum key_type t)
{
    X509_ALGOR *a = X509_ALGOR_new();
    switch (t) {
    case K_P256: X509_ALGOR_set0(a, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_UNDEF, NULL); break;
    case K_P384: X509_ALGOR_set0(a, OBJ_nid2obj(NID_ecdsa_with_SHA384), V_ASN1_UNDEF, NULL); break;
    case K_P521: X509_ALGOR_set0(a, OBJ_nid2obj(NID_ecdsa_with_SHA512), V_ASN1_UNDEF, NULL); break;
    case K_ED25519: X509_ALGOR_set0(a, OBJ_nid2obj(NID_ED25519), V_ASN1_UNDEF, NULL); break;
    default: X509_ALGOR_set0(a, OBJ_nid2obj(NID_sha256WithRSAEncryption), V_ASN1_NULL, NULL);
    }
    return a;
}

static const EVP_MD *md_for(enum key_type t)
{
    switch (t) {
    case K_P384: return EVP_sha384();
    case K_P521: return EVP_sha512();
    case K_ED25519: return NULL;
    default: return EVP_sha256();
    }
}

static void add_conf_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!e || !X509_add_ext(x, e, -1)) {
        fprintf(stderr, "cannot add CA extension\n");
        exit(2);
    }
    X509_EXTENSION_free(e);
}

/* A self-signed CA as certificate_maker makes them; `cn` varies the subject. */
static X509 *make_ca(enum key_type t, const char *cn, int with_skid)
{
    EVP_PKEY *k = key_of(t);
    X509 *x = X509_new();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"fulcrum-test", -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
    X509_set_pubkey(x, k);
    add_conf_ext(x, NID_basic_constraints, "critical,CA:TRUE");
    add_conf_ext(x, NID_key_usage, "critical,keyCertSign,cRLSign");
    if (with_skid)
        add_conf_ext(x, NID_subject_key_identifier, "hash");
    if (!X509_sign(x, k, md_for(t))) {
        fprintf(stderr, "cannot sign CA\n");
        exit(2);
    }
    return x;
}

static principal email_principal(void)
{
    principal p = {0};
    p.name = "alice@example.com";
    p.san_kind = SAN_EMAIL;
    p.san_value = "alice@example.com";
    p.ext[1] = ISSUER_URL;
    p.ext[2] = ""; /* empty: not written */
    p.ext[8] = ISSUER_URL;
    p.ext[24] = "sub-123";
    return p;
}

static X509 *reparse(X509 *x)
{
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    const unsigned char *q = der;
    X509 *c = len > 0 ? d2i_X509(NULL, &q, len) : NULL;
    OPENSSL_free(der);
    return c;
}

/* DER of a whole extension (OID, critical flag, extnValue) equals want[0..len). */
static int ext_der_is(X509 *c, int idx, const unsigned char *want, size_t len)
{
    unsigned char *der = NULL;
    int n = i2d_X509_EXTENSION(X509_get_ext(c, idx), &der);
    int ok = n == (int)len && memcmp(der, want, len) == 0;
    if (!ok) {
        fprintf(stderr, "  extension %d DER:", idx);
        for (int i = 0; i < n; i++)
            fprintf(stderr, " %02x", der[i]);
        fputc('\n', stderr);
    }
    OPENSSL_free(der);
    return ok;
}

static size_t cat(unsigned char *buf, const unsigned char *prefix, size_t plen, const char *s)
{
    memcpy(buf, prefix, plen);
    memcpy(buf + plen, s, strlen(s));
    return plen + strlen(s);
}

static int bytes_are(const unsigned char *got, size_t glen, const unsigned char *want, size_t wlen)
{
    return glen == wlen && memcmp(got, want, wlen) == 0;
}

static const unsigned char KU_DER[] = {0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01,
                                       0x01, 0xff, 0x04, 0x04, 0x03, 0x02, 0x07, 0x80};
static const unsigned char EKU_DER[] = {0x30, 0x13, 0x06, 0x03, 0x55, 0x1d, 0x25, 0x04,
                                        0x0c, 0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01,
                                        0x05, 0x05, 0x07, 0x03, 0x03};

static int skid_is_sha1_of_key(X509 *c)
{
    const unsigned char *bits = NULL;
    int bitslen = 0;
    unsigned char md[20];
    if (!X509_PUBKEY_get0_param(NULL, &bits, &bitslen, NULL, X509_get_X509_PUBKEY(c)))
        return 0;
    EVP_Digest(bits, (size_t)bitslen, md, NULL, EVP_sha1(), NULL);
    int i = X509_get_ext_by_NID(c, NID_subject_key_identifier, -1);
    if (i < 0 || X509_EXTENSION_get_critical(X509_get_ext(c, i)))
        return 0;
    unsigned char want[22] = {0x04, 0x14};
    memcpy(want + 2, md, 20);
    const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(X509_get_ext(c, i));
    return bytes_are(ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v), want, 22);
}

static int akid_is_ca_skid(X509 *c, X509 *ca)
{
    const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(ca);
    int i = X509_get_ext_by_NID(c, NID_authority_key_identifier, -1);
    if (!skid || ASN1_STRING_length(skid) != 20 || i < 0 ||
        X509_EXTENSION_get_critical(X509_get_ext(c, i)))
        return 0;
    unsigned char want[24] = {0x30, 0x16, 0x80, 0x14};
    memcpy(want + 4, ASN1_STRING_get0_data(skid), 20);
    const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(X509_get_ext(c, i));
    return bytes_are(ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v), want, 24);
}

/* Every byte the profile fixes, for one email certificate. */
static void test_exact_bytes(void)
{
    char why[256] = "";
    X509 *ca = make_ca(K_P256, "ca", 1);
    X509_ALGOR *alg = alg_for(K_P256);
    principal p = email_principal();
    X509 *x = cert_profile_build(&p, key_of(K_P256), ca, alg, NOW, why, sizeof why);
    CHECK(x != NULL, "build: %s", why);
    if (!x)
        goto out;
    X509 *c = reparse(x);
    CHECK(c != NULL, "the built certificate encodes and parses");
    if (!c)
        goto out;
    CHECK(X509_get_version(c) == X509_VERSION_3, "v3");

    unsigned char *der = NULL;
    int n = i2d_X509_NAME(X509_get_subject_name(c), &der);
    CHECK(n == 2 && der[0] == 0x30 && der[1] == 0x00, "subject is 30 00");
    OPENSSL_free(der);

    const unsigned char *a = NULL, *b = NULL;
    size_t al = 0, bl = 0;
    X509_NAME_get0_der(X509_get_issuer_name(c), &a, &al);
    X509_NAME_get0_der(X509_get_subject_name(ca), &b, &bl);
    CHECK(bytes_are(a, al, b, bl), "issuer DER = CA subject DER");

    const ASN1_TIME *nb = X509_get0_notBefore(c), *na = X509_get0_notAfter(c);
    CHECK(ASN1_STRING_type(nb) == V_ASN1_UTCTIME && ASN1_STRING_type(na) == V_ASN1_UTCTIME,
          "validity is UTCTime");
    CHECK(bytes_are(ASN1_STRING_get0_data(nb), (size_t)ASN1_STRING_length(nb),
                    (const unsigned char *)"231114221320Z", 13),
          "notBefore = now");
    CHECK(bytes_are(ASN1_STRING_get0_data(na), (size_t)ASN1_STRING_length(na),
                    (const unsigned char *)"231114222320Z", 13),
          "notAfter = now + 600 s");

    der = NULL;
    n = i2d_X509_ALGOR(X509_get0_tbs_sigalg(c), &der);
    static const unsigned char ecdsa256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                             0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
    CHECK(bytes_are(der, (size_t)n, ecdsa256, sizeof ecdsa256), "TBS alg ecdsa-with-SHA256");
    OPENSSL_free(der);

    /* KU, EKU, SKID, AKID, SAN, .1, .8, .24 (.2 is empty, so absent). */
    CHECK(X509_get_ext_count(c) == 8, "8 extensions, got %d", X509_get_ext_count(c));
    CHECK(ext_der_is(c, 0, KU_DER, sizeof KU_DER), "1st: KU critical digitalSignature");
    CHECK(ext_der_is(c, 1, EKU_DER, sizeof EKU_DER), "2nd: EKU codeSigning, not critical");
    CHECK(OBJ_obj2nid(X509_EXTENSION_get_object(X509_get_ext(c, 2))) ==
                  NID_subject_key_identifier && skid_is_sha1_of_key(c),
          "3rd: SKID = SHA-1 of the key bits");
    CHECK(OBJ_obj2nid(X509_EXTENSION_get_object(X509_get_ext(c, 3))) ==
                  NID_authority_key_identifier && akid_is_ca_skid(c, ca),
          "4th: AKID = 30 16 80 14 <CA SKID>");

    unsigned char want[128];
    static const unsigned char san_pre[] = {0x30, 0x1f, 0x06, 0x03, 0x55, 0x1d, 0x11, 0x01,
                                            0x01, 0xff, 0x04, 0x15, 0x30, 0x13, 0x81, 0x11};
    size_t wl = cat(want, san_pre, sizeof san_pre, "alice@example.com");
    CHECK(ext_der_is(c, 4, want, wl), "5th: SAN critical, one rfc822Name");

    static const unsigned char e1_pre[] = {0x30, 0x29, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04,
                                           0x01, 0x83, 0xbf, 0x30, 0x01, 0x01, 0x04, 0x1b};
    wl = cat(want, e1_pre, sizeof e1_pre, ISSUER_URL);
    CHECK(ext_der_is(c, 5, want, wl), "6th: .1 = raw issuer bytes, not critical");

    static const unsigned char e8_pre[] = {0x30, 0x2b, 0x06, 0x0a, 0x2b, 0x06, 0x01,
                                           0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, 0x08,
                                           0x04, 0x1d, 0x0c, 0x1b};
    wl = cat(want, e8_pre, sizeof e8_pre, ISSUER_URL);
    CHECK(ext_der_is(c, 6, want, wl), "7th: .8 = UTF8String issuer, not critical");

    static const unsigned char e24_pre[] = {0x30, 0x17, 0x06, 0x0a, 0x2b, 0x06, 0x01,
                                            0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, 0x18,
                                            0x04, 0x09, 0x0c, 0x07};
    wl = cat(want, e24_pre, sizeof e24_pre, "sub-123");
    CHECK(ext_der_is(c, 7, want, wl), "8th: .24 = UTF8String sub");

    CHECK(preissuance_check(x, &p, ca, alg, NOW, why, sizeof why) == 0, "check passes: %s", why);
    X509_free(c);
out:
    X509_free(x);
    X509_free(ca);
    X509_ALGOR_free(alg);
}

/* Extension order with many Fulcio extensions set at once; .7 is never written. */
static void test_extension_order(void)
{
    char why[256] = "";
    X509 *ca = make_ca(K_P256, "ca", 1);
    X509_ALGOR *alg = alg_for(K_P256);
    principal p = email_principal();
    static char vals[FULCIO_EXT_MAX + 1][8];
    for (int i = 1; i <= FULCIO_EXT_MAX; i++) {
        snprintf(vals[i], sizeof vals[i], "v%d", i);
        p.ext[i] = vals[i];
    }
    p.ext[13] = NULL;
    X509 *x = cert_profile_build(&p, key_of(K_P256), ca, alg, NOW, why, sizeof why);
    X509 *c = x ? reparse(x) : NULL;
    CHECK(c != NULL, "build: %s", why);
    if (c) {
        /* 5 standard + 22 Fulcio (1..24 without 7 and 13). */
        CHECK(X509_get_ext_count(c) == 27, "27 extensions, got %d", X509_get_ext_count(c));
        int expect[] = {1,  2,  3,  4,  5,  6,  8,  9,  10, 11, 12,
                        14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24};
        for (int i = 0; i < 22; i++) {
            X509_EXTENSION *e = X509_get_ext(c, 5 + i);
            char oid[64], want[64];
            OBJ_obj2txt(oid, sizeof oid, X509_EXTENSION_get_object(e), 1);
            snprintf(want, sizeof want, "1.3.6.1.4.1.57264.1.%d", expect[i]);
            CHECK_STREQ(oid, want, "Fulcio extension order");
            CHECK(!X509_EXTENSION_get_critical(e), "%s not critical", want);
            const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(e);
            unsigned char w[16];
            size_t wl;
            if (expect[i] <= 6) {
                wl = strlen(vals[expect[i]]);
                memcpy(w, vals[expect[i]], wl);
            } else {
                w[0] = 0x0c;
                w[1] = (unsigned char)strlen(vals[expect[i]]);
                memcpy(w + 2, vals[expect[i]], w[1]);
                wl = 2 + w[1];
            }
            CHECK(bytes_are(ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v), w, wl),
                  "%s value bytes", want);
        }
        CHECK(preissuance_check(x, &p, ca, alg, NOW, why, sizeof why) == 0, "check: %s", why);
    }
    X509_free(c);
    X509_free(x);
    X509_free(ca);
    X509_ALGOR_free(alg);
}

static void test_san_kinds(void)
{
    char why[256] = "";
    X509 *ca = make_ca(K_P256, "ca", 1);
    X509_ALGOR *alg = alg_for(K_P256);

    principal p = email_principal();
    p.san_kind = SAN_URI;
    p.san_value = "https://github.com/o/r/.github/workflows/w.yml@refs/heads/main";
    X509 *x = cert_profile_build(&p, key_of(K_P256), ca, alg, NOW, why, sizeof why);
    X509 *c = x ? reparse(x) : NULL;
    CHECK(c != NULL, "URI build: %s", why);
    if (c) {
        unsigned char want[128];
        size_t ul = strlen(p.san_value); /* 62 */
        const unsigned char pre[] = {0x30, (unsigned char)(ul + 14), 0x06, 0x03, 0x55, 0x1d,
                                     0x11, 0x01, 0x01, 0xff, 0x04, (unsigned char)(ul + 4),
                                     0x30, (unsigned char)(ul + 2), 0x86, (unsigned char)ul};
        size_t wl = cat(want, pre, sizeof pre, p.san_value);
        CHECK(ul == 62 && ext_der_is(c, 4, want, wl), "SAN: one uniformResourceIdentifier [6]");
        CHECK(preissuance_check(x, &p, ca, alg, NOW, why, sizeof why) == 0, "URI check: %s", why);
    }
    X509_free(c);
    X509_free(x);

    p = email_principal();
    p.san_kind = SAN_OTHERNAME_USERNAME;
    p.san_value = "alice!example.com";
    p.ext[7] = "ignored";
    x = cert_profile_build(&p, key_of(K_P256), ca, alg, NOW, why, sizeof why);
    c = x ? reparse(x) : NULL;
    CHECK(c != NULL, "otherName build: %s", why);
    if (c) {
        /* fulcio-compat.md §4.3's example, byte for byte. */
        static const unsigned char want[] = {
            0x30, 0x23, 0xa0, 0x21, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf,
            0x30, 0x01, 0x07, 0xa0, 0x13, 0x0c, 0x11, 0x61, 0x6c, 0x69, 0x63, 0x65, 0x21,
            0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d};
        int i = X509_get_ext_by_NID(c, NID_subject_alt_name, -1);
        CHECK(i == 4 && X509_EXTENSION_get_critical(X509_get_ext(c, i)), "SAN 5th and critical");
        const ASN1_OCTET_STRING *v = i >= 0 ? X509_EXTENSION_get_data(X509_get_ext(c, i)) : NULL;
        CHECK(v && bytes_are(ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v), want,
                             sizeof want),
              "otherName SAN value bytes");
        ASN1_OBJECT *o7 = OBJ_txt2obj("1.3.6.1.4.1.57264.1.7", 1);
        CHECK(X509_get_ext_by_OBJ(c, o7, -1) < 0, ".7 is not written as an extension");
        ASN1_OBJECT_free(o7);
        CHECK(preissuance_check(x, &p, ca, alg, NOW, why, sizeof why) == 0, "otherName check: %s",
              why);
    }
    X509_free(c);
    X509_free(x);

    /* Not embeddable. */
    p = email_principal();
    p.san_value = "";
    why[0] = '\0';
    CHECK(cert_profile_build(&p, key_of(K_P256), ca, alg, NOW, why, sizeof why) == NULL &&
              why[0],
          "empty SAN value refused");
    p.san_value = NULL;
    CHECK(cert_profile_build(&p, key_of(K_P256), ca, alg, NOW, why, sizeof why) == NULL,
          "no SAN value refused");
    p.san_value = "al\xc3\xaf" "ce@example.com";
    why[0] = '\0';
    CHECK(cert_profile_build(&p, key_of(K_P256), ca, alg, NOW, why, sizeof why) == NULL &&
              strstr(why, "IA5String"),
          "non-ASCII email refused: %s", why);
    X509_free(ca);
    X509_ALGOR_free(alg);
}

static const unsigned char *alg_der_for(enum key_type t, size_t *len)
{
    static const unsigned char e256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                         0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
    static const unsigned char e384[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                         0x48, 0xce, 0x3d, 0x04, 0x03, 0x03};
    static const unsigned char rsa[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                        0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00};
    static const unsigned char ed[] = {0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70};
    switch (t) {
    case K_P256: *len = sizeof e256; return e256;
    case K_P384: *len = sizeof e384; return e384;
    case K_ED25519: *len = sizeof ed; return ed;
    default: *len = sizeof rsa; return rsa;
    }
}

/* Every CA key type x every client key type; the built TBS is also signed by the CA key to show
 * it is a complete certificate that verifies. */
static void test_matrix(void)
{
    const enum key_type cas[] = {K_P256, K_P384, K_RSA2048, K_ED25519};
    const enum key_type clients[] = {K_P256, K_P384, K_P521, K_RSA2048, K_ED25519};
    principal p = email_principal();
    for (size_t i = 0; i < 4; i++) {
        X509 *ca = make_ca(cas[i], "matrix", 1);
        X509_ALGOR *alg = alg_for(cas[i]);
        size_t alen;
        const unsigned char *awant = alg_der_for(cas[i], &alen);
        for (size_t j = 0; j < 5; j++) {
            char why[256] = "";
            const char *cn = key_names[cas[i]], *kn = key_names[clients[j]];
            X509 *x = cert_profile_build(&p, key_of(clients[j]), ca, alg, NOW, why, sizeof why);
            X509 *c = x ? reparse(x) : NULL;
            CHECK(c != NULL, "CA %s, client %s: build: %s", cn, kn, why);
            if (!c) {
                X509_free(x);
                continue;
            }
            CHECK(preissuance_check(x, &p, ca, alg, NOW, why, sizeof why) == 0,
                  "CA %s, client %s: check: %s", cn, kn, why);
            unsigned char *d1 = NULL, *d2 = NULL;
            int l1 = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c), &d1);
            int l2 = i2d_PUBKEY(key_of(clients[j]), &d2);
            CHECK(l1 > 0 && bytes_are(d1, (size_t)l1, d2, (size_t)l2), "CA %s, client %s: SPKI",
                  cn, kn);
            OPENSSL_free(d1);
            OPENSSL_free(d2);
            CHECK(skid_is_sha1_of_key(c), "CA %s, client %s: SKID", cn, kn);
            CHECK(akid_is_ca_skid(c, ca), "CA %s, client %s: AKID", cn, kn);
            int day = -1, sec = -1;
            ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(c), X509_get0_notAfter(c));
            CHECK(day == 0 && sec == 600, "CA %s, client %s: 600 s", cn, kn);
            CHECK(X509_get_ext_count(c) == 8 && ext_der_is(c, 0, KU_DER, sizeof KU_DER) &&
                      ext_der_is(c, 1, EKU_DER, sizeof EKU_DER),
                  "CA %s, client %s: extensions", cn, kn);
            d1 = NULL;
            l1 = i2d_X509_ALGOR(X509_get0_tbs_sigalg(c), &d1);
            CHECK(bytes_are(d1, (size_t)l1, awant, alen), "CA %s, client %s: TBS alg", cn, kn);
            OPENSSL_free(d1);
            /* OpenSSL signing it picks the same AlgorithmIdentifier and the result verifies. */
            CHECK(X509_sign(c, key_of(cas[i]), md_for(cas[i])) > 0 &&
                      X509_verify(c, X509_get0_pubkey(ca)) == 1,
                  "CA %s, client %s: signs and verifies", cn, kn);
            d1 = NULL;
            l1 = i2d_X509_ALGOR(X509_get0_tbs_sigalg(c), &d1);
            CHECK(bytes_are(d1, (size_t)l1, awant, alen), "CA %s, client %s: OpenSSL agrees on alg",
                  cn, kn);
            OPENSSL_free(d1);
            X509_free(c);
            X509_free(x);
        }
        X509_free(ca);
        X509_ALGOR_free(alg);
    }

    /* A CA without SKID: no AKID, and the check agrees. */
    char why[256] = "";
    X509 *ca = make_ca(K_P256, "no-skid", 0);
    X509_ALGOR *alg = alg_for(K_P256);
    X509 *x = cert_profile_build(&p, key_of(K_P256), ca, alg, NOW, why, sizeof why);
    X509 *c = x ? reparse(x) : NULL;
    CHECK(c && X509_get_ext_by_NID(c, NID_authority_key_identifier, -1) < 0 &&
              X509_get_ext_count(c) == 7,
          "CA without SKID: no AKID");
    CHECK(x && preissuance_check(x, &p, ca, alg, NOW, why, sizeof why) == 0,
          "CA without SKID: check: %s", why);
    X509_free(c);
    X509_free(x);
    X509_free(ca);
    X509_ALGOR_free(alg);
}

static int bn_cmp_qsort(const void *a, const void *b)
{
    return BN_cmp(*(BIGNUM *const *)a, *(BIGNUM *const *)b);
}

static void test_serials(void)
{
    enum { N = 1000 };
    X509 *ca = make_ca(K_P256, "ca", 1);
    X509_ALGOR *alg = alg_for(K_P256);
    principal p = email_principal();
    BIGNUM *s[N] = {0};
    int ok = 1, top = 0, built = 0;
    for (int i = 0; i < N; i++) {
        char why[256];
        X509 *x = cert_profile_build(&p, key_of(K_P256), ca, alg, NOW, why, sizeof why);
        X509 *c = x ? reparse(x) : NULL;
        if (!c) {
            ok = 0;
            X509_free(x);
            continue;
        }
        built++;
        s[i] = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), NULL);
        if (!s[i] || BN_is_negative(s[i]) || BN_is_zero(s[i]) || BN_num_bits(s[i]) > 159)
            ok = 0;
        else if (BN_num_bits(s[i]) == 159)
            top++;
        /* DER INTEGER content: at most 20 octets. */
        if (ASN1_STRING_length(X509_get0_serialNumber(c)) > 20)
            ok = 0;
        X509_free(c);
        X509_free(x);
    }
    CHECK(built == N && ok, "%d builds: every serial in [1, 2^159), <= 20 octets", N);
    /* Uniform: about half have bit 158 set (mean 500, sd ~16). */
    CHECK(top > 400 && top < 600, "serial high bit set in %d of %d", top, N);
    int dup = 0;
    if (built == N) {
        qsort(s, N, sizeof s[0], bn_cmp_qsort);
        for (int i = 1; i < N; i++)
            dup += BN_cmp(s[i - 1], s[i]) == 0;
    }
    CHECK(built == N && dup == 0, "serials distinct (%d duplicates)", dup);
    for (int i = 0; i < N; i++)
        BN_free(s[i]);
    X509_free(ca);
    X509_ALGOR_free(alg);
}

/* The serial's random bytes come from a per-thread pool: a child made by fork() after the parent
 * drew from it must not hand out the parent's next serials. */
static char *serial_hex(X509 *ca, X509_ALGOR *alg)
{
    principal p = email_principal();
    char why[256];
    X509 *x = cert_profile_build(&p, key_of(K_P256), ca, alg, NOW, why, sizeof why);
    BIGNUM *bn = x ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL) : NULL;
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    BN_free(bn);
    X509_free(x);
    return hex;
}

static void test_serials_after_fork(void)
{
    X509 *ca = make_ca(K_P256, "ca", 1);
    X509_ALGOR *alg = alg_for(K_P256);
    char *first = serial_hex(ca, alg); /* fills this thread's pool */
    int fds[2];
    char child[128] = "", *parent = NULL;
    if (first && pipe(fds) == 0) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            char *h = serial_hex(ca, alg);
            if (h && write(fds[1], h, strlen(h)) < 0)
                _exit(2);
            _exit(h ? 0 : 1);
        }
        close(fds[1]);
        parent = serial_hex(ca, alg);
        ssize_t n = pid > 0 ? read(fds[0], child, sizeof child - 1) : -1;
        child[n > 0 ? n : 0] = '\0';
        close(fds[0]);
        int st = 0;
        if (pid > 0)
            waitpid(pid, &st, 0);
    }
    CHECK(first && parent && child[0] && strcmp(parent, child) != 0 && strcmp(first, child) != 0,
          "after fork, parent and child draw different serials (parent %s, child %s)",
          parent ? parent : "?", child[0] ? child : "?");
    OPENSSL_free(first);
    OPENSSL_free(parent);
    X509_free(ca);
    X509_ALGOR_free(alg);
}

/* ---- pre-issuance check: break one thing at a time ---- */

static X509 *g_ca, *g_ca_noskid, *g_other_ca;
static X509_ALGOR *g_alg;

static X509 *good_cert(const principal *p, EVP_PKEY *key, X509 *ca)
{
    char why[256];
    X509 *x = cert_profile_build(p, key, ca, g_alg, NOW, why, sizeof why);
    if (!x) {
        fprintf(stderr, "build failed: %s\n", why);
        exit(2);
    }
    return x;
}

static void expect_fail(X509 *x, const principal *p, X509 *ca, const X509_ALGOR *alg,
                        const char *want, const char *what)
{
    char why[256] = "";
    int rc = preissuance_check(x, p, ca, alg, NOW, why, sizeof why);
    CHECK(rc == -1, "%s: check must fail", what);
    CHECK_STREQ(why, want, what);
}

static void replace_ext(X509 *x, int nid, void *value, int crit)
{
    int i = X509_get_ext_by_NID(x, nid, -1);
    X509_EXTENSION *e = X509V3_EXT_i2d(nid, crit, value);
    X509_EXTENSION_free(X509_delete_ext(x, i));
    X509_add_ext(x, e, i);
    X509_EXTENSION_free(e);
}

static void set_serial(X509 *x, const char *hex)
{
    BIGNUM *bn = NULL;
    BN_hex2bn(&bn, hex);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
}

static void test_check_breaks(void)
{
    principal p = email_principal();
    EVP_PKEY *k = key_of(K_P256);
    char why[256] = "";
    X509 *x;

    x = good_cert(&p, k, g_ca);
    CHECK(preissuance_check(x, &p, g_ca, g_alg, NOW, why, sizeof why) == 0, "good: %s", why);
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    X509_EXTENSION_set_critical(X509_get_ext(x, X509_get_ext_by_NID(x, NID_subject_alt_name, -1)),
                                0);
    expect_fail(x, &p, g_ca, g_alg, P("SAN extension is not critical"), "SAN not critical");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    {
        GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
        const char *v[] = {"alice@example.com", "mallory@example.com"};
        for (int i = 0; i < 2; i++) {
            GENERAL_NAME *gn = GENERAL_NAME_new();
            ASN1_IA5STRING *s = ASN1_IA5STRING_new();
            ASN1_STRING_set(s, v[i], -1);
            GENERAL_NAME_set0_value(gn, GEN_EMAIL, s);
            sk_GENERAL_NAME_push(names, gn);
        }
        replace_ext(x, NID_subject_alt_name, names, 1);
        GENERAL_NAMES_free(names);
    }
    expect_fail(x, &p, g_ca, g_alg, P("SAN has 2 names, not exactly one"), "two SAN names");
    X509_free(x);

    principal q = email_principal();
    q.san_value = "mallory@example.com";
    x = good_cert(&p, k, g_ca);
    expect_fail(x, &q, g_ca, g_alg, P("SAN name is not the principal's"), "other SAN value");
    X509_free(x);
    q = email_principal();
    q.san_kind = SAN_URI;
    x = good_cert(&p, k, g_ca);
    expect_fail(x, &q, g_ca, g_alg, P("SAN name is not the principal's"), "other SAN type");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    X509_time_adj_ex(X509_getm_notAfter(x), 0, 601, &(time_t){NOW});
    expect_fail(x, &p, g_ca, g_alg,
                P("notAfter (UTCTime 231114222321Z) is not notBefore + 600 s"), "601 s validity");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    X509_time_adj_ex(X509_getm_notBefore(x), 0, -1, &(time_t){NOW});
    expect_fail(x, &p, g_ca, g_alg,
                P("notBefore (UTCTime 231114221319Z) is not the issuance time"), "backdated");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    {
        ASN1_GENERALIZEDTIME *g = ASN1_GENERALIZEDTIME_set(NULL, NOW);
        X509_set1_notBefore(x, g);
        ASN1_GENERALIZEDTIME_free(g);
    }
    expect_fail(x, &p, g_ca, g_alg,
                P("notBefore (GeneralizedTime 20231114221320Z) is not the issuance time"),
                "GeneralizedTime before 2050");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    {
        BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
        bc->ca = 0xff;
        X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_APPEND);
        BASIC_CONSTRAINTS_free(bc);
    }
    expect_fail(x, &p, g_ca, g_alg, P("basicConstraints CA:TRUE is present"), "CA:TRUE");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    X509_EXTENSION_free(X509_delete_ext(x, X509_get_ext_by_NID(x, NID_ext_key_usage, -1)));
    expect_fail(x, &p, g_ca, g_alg, P("extKeyUsage extension is missing"), "no EKU");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    {
        EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
        sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_code_sign));
        sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth));
        replace_ext(x, NID_ext_key_usage, eku, 0);
        sk_ASN1_OBJECT_free(eku);
    }
    expect_fail(x, &p, g_ca, g_alg, P("extKeyUsage is not codeSigning only"), "EKU + serverAuth");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    X509_EXTENSION_free(X509_delete_ext(x, X509_get_ext_by_NID(x, NID_key_usage, -1)));
    expect_fail(x, &p, g_ca, g_alg, P("keyUsage extension is missing"), "no KU");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    {
        ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
        ASN1_BIT_STRING_set_bit(ku, 0, 1);
        ASN1_BIT_STRING_set_bit(ku, 2, 1);
        replace_ext(x, NID_key_usage, ku, 1);
        ASN1_BIT_STRING_free(ku);
    }
    expect_fail(x, &p, g_ca, g_alg, P("keyUsage is not digitalSignature only"), "KU + keyEnc");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    X509_EXTENSION_set_critical(X509_get_ext(x, X509_get_ext_by_NID(x, NID_key_usage, -1)), 0);
    expect_fail(x, &p, g_ca, g_alg, P("keyUsage extension is not critical"), "KU not critical");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"alice", -1, -1, 0);
    expect_fail(x, &p, g_ca, g_alg, P("subject is not empty"), "subject CN");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    X509_set_issuer_name(x, X509_get_subject_name(g_other_ca));
    expect_fail(x, &p, g_ca, g_alg, P("issuer is not the issuing CA's subject"), "wrong issuer");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    {
        X509_ALGOR *a384 = alg_for(K_P384);
        expect_fail(x, &p, g_ca, a384, P("TBS signature algorithm is not the signer's"),
                    "sig alg mismatch");
        X509_ALGOR_free(a384);
    }
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    {
        ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
        ASN1_BIT_STRING_set_bit(ku, 0, 1);
        X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_APPEND); /* APPEND allows twice */
        ASN1_BIT_STRING_free(ku);
    }
    expect_fail(x, &p, g_ca, g_alg, P("extension 2.5.29.15 appears more than once"),
                "duplicate KU");
    X509_free(x);

    {
        char kwhy[256] = "", want[300];
        CHECK(client_key_policy_check(key_of(K_RSA1024), kwhy, sizeof kwhy) != 0,
              "RSA 1024 fails the key policy");
        snprintf(want, sizeof want, P("client key: %s"), kwhy);
        x = good_cert(&p, key_of(K_RSA1024), g_ca);
        expect_fail(x, &p, g_ca, g_alg, want, "weak client key");
        CHECK(strstr(kwhy, "1024") != NULL, "key policy names the size: %s", kwhy);
        X509_free(x);
    }

    x = good_cert(&p, k, g_ca);
    set_serial(x, "0");
    expect_fail(x, &p, g_ca, g_alg, P("serial number is not positive"), "serial 0");
    X509_free(x);
    x = good_cert(&p, k, g_ca);
    set_serial(x, "-1");
    expect_fail(x, &p, g_ca, g_alg, P("serial number is not positive"), "serial -1");
    X509_free(x);
    x = good_cert(&p, k, g_ca);
    set_serial(x, "8000000000000000000000000000000000000000"); /* 2^159 */
    expect_fail(x, &p, g_ca, g_alg, P("serial number is not below 2^159"), "serial 2^159");
    X509_free(x);
    x = good_cert(&p, k, g_ca);
    set_serial(x, "7fffffffffffffffffffffffffffffffffffffff"); /* 2^159 - 1 */
    CHECK(preissuance_check(x, &p, g_ca, g_alg, NOW, why, sizeof why) == 0,
          "serial 2^159-1 accepted: %s", why);
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    X509_set_version(x, X509_VERSION_1);
    expect_fail(x, &p, g_ca, g_alg, P("version is not v3"), "v1");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    {
        ASN1_OCTET_STRING *skid = ASN1_OCTET_STRING_new();
        ASN1_OCTET_STRING_set(skid, (const unsigned char *)"01234567890123456789", 20);
        replace_ext(x, NID_subject_key_identifier, skid, 0);
        ASN1_OCTET_STRING_free(skid);
    }
    expect_fail(x, &p, g_ca, g_alg, P("subjectKeyIdentifier is not the SHA-1 of the public key"),
                "wrong SKID");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    {
        AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
        akid->keyid = ASN1_OCTET_STRING_new();
        ASN1_OCTET_STRING_set(akid->keyid, (const unsigned char *)"01234567890123456789", 20);
        replace_ext(x, NID_authority_key_identifier, akid, 0);
        AUTHORITY_KEYID_free(akid);
    }
    expect_fail(x, &p, g_ca, g_alg,
                P("authorityKeyIdentifier is not exactly the CA's subjectKeyIdentifier"),
                "wrong AKID");
    X509_free(x);

    /* g_ca_noskid has the same subject as g_ca. */
    x = good_cert(&p, k, g_ca);
    expect_fail(x, &p, g_ca_noskid, g_alg,
                P("authorityKeyIdentifier is present but the CA has no subjectKeyIdentifier"),
                "AKID without CA SKID");
    X509_free(x);
    x = good_cert(&p, k, g_ca_noskid);
    expect_fail(x, &p, g_ca, g_alg, P("authorityKeyIdentifier extension is missing"),
                "AKID missing");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    {
        ASN1_OBJECT *o = OBJ_txt2obj("1.2.3.4", 1);
        ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
        ASN1_OCTET_STRING_set(os, (const unsigned char *)"\x05\x00", 2);
        X509_EXTENSION *e = X509_EXTENSION_create_by_OBJ(NULL, o, 0, os);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
        ASN1_OCTET_STRING_free(os);
        ASN1_OBJECT_free(o);
    }
    expect_fail(x, &p, g_ca, g_alg, P("extension 1.2.3.4 is not part of the profile"),
                "unknown extension");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    {
        int i = X509_get_ext_by_NID(x, NID_ext_key_usage, -1);
        X509_EXTENSION *e = X509_delete_ext(x, i);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    expect_fail(x, &p, g_ca, g_alg, P("extension 2.5.29.37 is out of order"), "EKU moved last");
    X509_free(x);

    x = good_cert(&p, k, g_ca);
    {
        ASN1_OBJECT *o = OBJ_txt2obj("1.3.6.1.4.1.57264.1.1", 1);
        X509_EXTENSION_set_critical(X509_get_ext(x, X509_get_ext_by_OBJ(x, o, -1)), 1);
        ASN1_OBJECT_free(o);
    }
    expect_fail(x, &p, g_ca, g_alg, P("extension 1.3.6.1.4.1.57264.1.1 is critical"),
                ".1 critical");
    X509_free(x);

    q = email_principal();
    q.ext[1] = "https://accounts.google.co";
    x = good_cert(&p, k, g_ca);
    expect_fail(x, &q, g_ca, g_alg,
                P("extension 1.3.6.1.4.1.57264.1.1 does not hold the principal's value"),
                ".1 value differs");
    X509_free(x);
    q = email_principal();
    q.ext[8] = "https://accounts.google.co";
    x = good_cert(&p, k, g_ca);
    expect_fail(x, &q, g_ca, g_alg,
                P("extension 1.3.6.1.4.1.57264.1.8 does not hold the principal's value"),
                ".8 value differs");
    X509_free(x);
    q = email_principal();
    q.ext[9] = "https://build.example";
    x = good_cert(&p, k, g_ca);
    expect_fail(x, &q, g_ca, g_alg, P("extension 1.3.6.1.4.1.57264.1.9 is missing"),
                ".9 missing");
    X509_free(x);
    q = email_principal();
    q.ext[24] = NULL;
    x = good_cert(&p, k, g_ca);
    expect_fail(x, &q, g_ca, g_alg, P("extension 1.3.6.1.4.1.57264.1.24 is present but not set"),
                ".24 not asked for");
    X509_free(x);

    /* .8 written as raw bytes (the .1 encoding) instead of a UTF8String. */
    x = good_cert(&p, k, g_ca);
    {
        ASN1_OBJECT *o = OBJ_txt2obj("1.3.6.1.4.1.57264.1.8", 1);
        X509_EXTENSION *e = X509_get_ext(x, X509_get_ext_by_OBJ(x, o, -1));
        ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(e);
        ASN1_OCTET_STRING_set(v, (const unsigned char *)ISSUER_URL, (int)strlen(ISSUER_URL));
        ASN1_OBJECT_free(o);
    }
    expect_fail(x, &p, g_ca, g_alg,
                P("extension 1.3.6.1.4.1.57264.1.8 does not hold the principal's value"),
                ".8 not DER");
    X509_free(x);
}

int main(void)
{
    test_exact_bytes();
    test_extension_order();
    test_san_kinds();
    test_matrix();
    test_serials();
    test_serials_after_fork();

    g_ca = make_ca(K_P256, "ca", 1);
    g_ca_noskid = make_ca(K_P256, "ca", 0);
    g_other_ca = make_ca(K_P256, "other", 1);
    g_alg = alg_for(K_P256);
    test_check_breaks();
    X509_free(g_ca);
    X509_free(g_ca_noskid);
    X509_free(g_other_ca);
    X509_ALGOR_free(g_alg);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        EVP_PKEY_free(keys[i]);
    CHECK_MAIN_END();
}
