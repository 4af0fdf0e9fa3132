/* ct/tbs_der.h (a TBS without one extension, cut from the DER) against OpenSSL's own way
 * (X509_dup, X509_delete_ext, i2d_re_X509_tbs), its refusals, and the SCT verifier's fast way
 * that uses it (ct/sct_verify.c) against OpenSSL's SCT_validate on the same SCTs, including the
 * fallback for shapes the DER way refuses. SCTs are made here (RFC 6962 §3.2 input built with the
 * OpenSSL way), not by any Fulcrum log code. */
#include <openssl/ct.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ca/issue.h"
#include "ct/sct_verify.h"
#include "ct/tbs_der.h"
#include "hsm/signer.h"
#include "unit/check.h"
#include "unit/ct_testkit.h"

static char tmpdir[4096];

/* OpenSSL's way: the TBS of a copy with the extension deleted. */
static unsigned char *ref_without(X509 *cert, int nid, size_t *len)
{
    X509 *c = X509_dup(cert);
    int i = c ? X509_get_ext_by_NID(c, nid, -1) : -1;
    if (i < 0) {
        X509_free(c);
        return NULL;
    }
    X509_EXTENSION_free(X509_delete_ext(c, i));
    unsigned char *tbs = NULL;
    int n = i2d_re_X509_tbs(c, &tbs);
    X509_free(c);
    *len = n > 0 ? (size_t)n : 0;
    return n > 0 ? tbs : NULL;
}

static unsigned char *der_without(X509 *cert, int nid, size_t *len, char *why, size_t whylen)
{
    size_t tl = 0;
    unsigned char *tbs = ct_tbs_der(cert, &tl);
    unsigned char *out = tbs ? ct_tbs_der_without_ext(tbs, tl, nid, len, why, whylen) : NULL;
    free(tbs);
    return out;
}

/* Both ways give the same bytes. */
static int same_as_openssl(X509 *cert, int nid)
{
    size_t a = 0, b = 0;
    char why[256] = "";
    unsigned char *r = ref_without(cert, nid, &a), *d = der_without(cert, nid, &b, why, sizeof why);
    int ok = r && d && a == b && memcmp(r, d, a) == 0;
    if (!ok)
        fprintf(stderr, "  (reference %zu bytes, DER way %zu bytes: %s)\n", a, b, why);
    OPENSSL_free(r);
    free(d);
    return ok;
}

static X509 *reparsed(X509 *x)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    const unsigned char *p = der;
    X509 *c = n > 0 ? d2i_X509(NULL, &p, n) : NULL;
    OPENSSL_free(der);
    return c;
}

static void put(unsigned char *b, size_t *o, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        b[(*o)++] = (unsigned char)(v >> (8 * i));
}

static void spki_hash(EVP_PKEY *k, unsigned char out[32])
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);
    SHA256(der, (size_t)n, out);
    OPENSSL_free(der);
}

/* A v1 precert SCT over cert without `nid` (OpenSSL's way) and issuer's key, signed by log_key
 * (sig_alg 3 ecdsa or 1 rsa, with sha256). */
static unsigned char *make_sct(EVP_PKEY *log_key, int sig_alg, X509 *cert, int nid, X509 *issuer,
                               uint64_t ts, const unsigned char *ext, size_t extlen,
                               size_t *outlen)
{
    size_t tbslen = 0;
    unsigned char *tbs = ref_without(cert, nid, &tbslen);
    if (!tbs)
        return NULL;
    size_t o = 0;
    unsigned char *in = malloc(2 + 8 + 2 + 32 + 3 + tbslen + 2 + extlen);
    in[o++] = 0;
    in[o++] = 0;
    put(in, &o, ts, 8);
    put(in, &o, 1, 2);
    spki_hash(X509_get0_pubkey(issuer), in + o);
    o += 32;
    put(in, &o, tbslen, 3);
    memcpy(in + o, tbs, tbslen);
    o += tbslen;
    put(in, &o, extlen, 2);
    if (extlen)
        memcpy(in + o, ext, extlen);
    o += extlen;
    OPENSSL_free(tbs);
    unsigned char sig[1024];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, log_key);
    EVP_DigestSign(md, sig, &siglen, in, o);
    EVP_MD_CTX_free(md);
    free(in);
    unsigned char *sct = malloc(1 + 32 + 8 + 2 + extlen + 4 + siglen);
    o = 0;
    sct[o++] = 0;
    spki_hash(log_key, sct + o);
    o += 32;
    put(sct, &o, ts, 8);
    put(sct, &o, extlen, 2);
    if (extlen)
        memcpy(sct + o, ext, extlen);
    o += extlen;
    sct[o++] = 4;
    sct[o++] = (unsigned char)sig_alg;
    put(sct, &o, siglen, 2);
    memcpy(sct + o, sig, siglen);
    o += siglen;
    *outlen = o;
    return sct;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The verifier and OpenSSL's SCT_validate agree on this SCT; returns the verifier's answer
 * (0 valid) and leaves its reason in why. */
static int both(ct_sct_verifier *v, EVP_PKEY *log_pub, const unsigned char *sct, size_t len,
                X509 *cert, X509 *issuer, int *agree, char *why, size_t whylen)
{
    int mine = ct_sct_verify(v, sct, len, cert, issuer, now_ms(), why, whylen);
    int theirs = ctk_sct_valid(sct, len, 1, cert, issuer, log_pub, tmpdir);
    *agree = (mine == 0) == (theirs == 1);
    return mine;
}

static void der_refusals(EVP_PKEY *key, X509 *root, EVP_PKEY *root_key)
{
    char why[256];
    size_t len = 0;

    X509 *plain = ctk_cert("plain", key, root, root_key, 0, CTK_NO_POISON, 0);
    why[0] = '\0';
    CHECK(!der_without(plain, NID_ct_precert_poison, &len, why, sizeof why) &&
              strstr(why, "absent"),
          "no poison: refused: %s", why);

    /* Two poisons. */
    X509 *two = ctk_cert("two", key, root, root_key, 0, CTK_POISON, 0);
    static const unsigned char null_der[] = {0x05, 0x00};
    ctk_add_raw_ext(two, "1.3.6.1.4.1.11129.2.4.3", 1, null_der, 2);
    X509_sign(two, root_key, EVP_sha256());
    why[0] = '\0';
    CHECK(!der_without(two, NID_ct_precert_poison, &len, why, sizeof why) &&
              strstr(why, "more than once"),
          "two poisons: refused: %s", why);

    /* The poison as the only extension. */
    X509 *only = X509_new();
    X509_set_version(only, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(only), 7);
    X509_set_issuer_name(only, X509_get_subject_name(root));
    X509_set_subject_name(only, X509_get_subject_name(root));
    X509_gmtime_adj(X509_getm_notBefore(only), 0);
    X509_gmtime_adj(X509_getm_notAfter(only), 600);
    X509_set_pubkey(only, key);
    ctk_add_raw_ext(only, "1.3.6.1.4.1.11129.2.4.3", 1, null_der, 2);
    X509_sign(only, root_key, EVP_sha256());
    why[0] = '\0';
    CHECK(!der_without(only, NID_ct_precert_poison, &len, why, sizeof why) &&
              strstr(why, "only one"),
          "the poison as the only extension: refused: %s", why);

    /* Byte-level damage to a good TBS. */
    X509 *pre = ctk_cert("pre", key, root, root_key, 0, CTK_POISON, 0);
    size_t tl = 0;
    unsigned char *tbs = ct_tbs_der(pre, &tl);
    CHECK(tbs && tl > 300 && tbs[0] == 0x30 && tbs[1] == 0x82,
          "a TBS of more than 255 bytes starts 30 82");
    if (tbs && tl > 300) {
        unsigned char *out;
        out = ct_tbs_der_without_ext(tbs, tl - 1, NID_ct_precert_poison, &len, why, sizeof why);
        CHECK(!out, "truncated TBS refused: %s", why);
        unsigned char *longer = malloc(tl + 1);
        memcpy(longer, tbs, tl);
        longer[tl] = 0;
        out = ct_tbs_der_without_ext(longer, tl + 1, NID_ct_precert_poison, &len, why, sizeof why);
        CHECK(!out && strstr(why, "not one DER SEQUENCE"), "trailing byte refused: %s", why);
        /* The same length written in 3 bytes instead of 2: BER, not DER. */
        size_t body = tl - 4;
        unsigned char *ber = malloc(tl + 1);
        ber[0] = 0x30;
        ber[1] = 0x83;
        ber[2] = 0;
        ber[3] = (unsigned char)(body >> 8);
        ber[4] = (unsigned char)body;
        memcpy(ber + 5, tbs + 4, body);
        out = ct_tbs_der_without_ext(ber, tl + 1, NID_ct_precert_poison, &len, why, sizeof why);
        CHECK(!out && strstr(why, "not one DER SEQUENCE"), "non-minimal length refused: %s",
              why);
        free(longer);
        free(ber);
    }
    free(tbs);
    X509 *all[] = {plain, two, only, pre};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        X509_free(all[i]);
}

/* One signer's precertificate and final certificate (poison and SCT list last, as the CA makes
 * them), the testkit's precertificate (poison in the middle), parsed and unparsed. */
static void der_same_as_openssl(signer *s, EVP_PKEY *key, X509 *root, EVP_PKEY *root_key,
                                EVP_PKEY *log_key)
{
    char why[768] = "";
    principal p = {0};
    p.name = "alice@example.com";
    p.san_kind = SAN_EMAIL;
    p.san_value = "alice@example.com";
    p.ext[1] = "https://accounts.example.com";
    p.ext[8] = "https://accounts.example.com";
    time_t now = time(NULL);
    X509 *pre = NULL, *fin = NULL;
    CHECK(ca_issue_precertificate(s, &p, key, now, &pre, why, sizeof why) == ISSUE_OK,
          "precertificate: %s", why);
    if (!pre)
        return;
    X509 *issuing = signer_issuing_cert(s);
    size_t sl = 0;
    unsigned char *sct = make_sct(log_key, 3, pre, NID_ct_precert_poison, issuing, now_ms(), NULL,
                                  0, &sl);
    CHECK(ca_issue_final_certificate(s, &p, pre, now, sct, sl, &fin, why, sizeof why) ==
              ISSUE_OK,
          "final certificate: %s", why);
    CHECK(same_as_openssl(pre, NID_ct_precert_poison),
          "CA precertificate: DER way == OpenSSL way (poison last)");
    CHECK(fin && same_as_openssl(fin, NID_ct_precert_scts),
          "final certificate: DER way == OpenSSL way (SCT list last)");
    size_t a = 0, b = 0;
    unsigned char *x = der_without(pre, NID_ct_precert_poison, &a, why, sizeof why);
    unsigned char *y = fin ? der_without(fin, NID_ct_precert_scts, &b, why, sizeof why) : NULL;
    CHECK(x && y && a == b && memcmp(x, y, a) == 0,
          "precert minus poison == final minus SCT list, the DER way");
    free(x);
    free(y);

    /* ct_tbs_der of a parsed certificate: the bytes its signature covers. */
    size_t tl = 0;
    unsigned char *tbs = ct_tbs_der(pre, &tl);
    const ASN1_BIT_STRING *sig = NULL;
    X509_get0_signature(&sig, NULL, pre);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    CHECK(tbs && sig && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
                                             X509_get0_pubkey(issuing)) == 1 &&
              EVP_DigestVerify(md, ASN1_STRING_get0_data(sig), (size_t)ASN1_STRING_length(sig),
                               tbs, tl) == 1,
          "ct_tbs_der: the signed bytes of the precertificate");
    EVP_MD_CTX_free(md);
    free(tbs);

    X509 *mid = ctk_cert("mid", key, root, root_key, 0, CTK_POISON, 0);
    X509 *mid_parsed = reparsed(mid);
    CHECK(same_as_openssl(mid, NID_ct_precert_poison),
          "testkit precertificate (poison in the middle), in memory: same bytes");
    CHECK(mid_parsed && same_as_openssl(mid_parsed, NID_ct_precert_poison),
          "testkit precertificate, parsed: same bytes");
    X509_free(mid);
    X509_free(mid_parsed);
    free(sct);
    X509_free(pre);
    X509_free(fin);
}

static void verifier_agrees(EVP_PKEY *key, X509 *root, EVP_PKEY *root_key, EVP_PKEY *log_key)
{
    char why[768] = "";
    int agree = 0;
    ct_sct_verifier *v = ct_sct_verifier_new(log_key, why, sizeof why);
    CHECK(v != NULL, "verifier: %s", why);
    if (!v)
        return;
    X509 *pre = ctk_cert("pre", key, root, root_key, 0, CTK_POISON, 0);
    X509 *other_key_root = ctk_cert("other-root", key, NULL, NULL, 1, CTK_NO_POISON, 0);
    uint64_t ts = now_ms();
    size_t sl = 0;
    unsigned char *sct = make_sct(log_key, 3, pre, NID_ct_precert_poison, root, ts, NULL, 0, &sl);
    CHECK(both(v, log_key, sct, sl, pre, root, &agree, why, sizeof why) == 0 && agree,
          "a good SCT: valid for both: %s", why);
    CHECK(both(v, log_key, sct, sl, pre, other_key_root, &agree, why, sizeof why) != 0 && agree &&
              strstr(why, "invalid: its signature does not verify"),
          "another issuer key: invalid for both (the fast way): %s", why);
    unsigned char *bad = malloc(sl);
    memcpy(bad, sct, sl);
    bad[sl - 3] ^= 0x40;
    CHECK(both(v, log_key, bad, sl, pre, root, &agree, why, sizeof why) != 0 && agree &&
              strstr(why, "invalid: its signature does not verify"),
          "a flipped signature bit: invalid for both (the fast way): %s", why);
    memcpy(bad, sct, sl);
    bad[40] ^= 0x01; /* timestamp */
    CHECK(both(v, log_key, bad, sl, pre, root, &agree, why, sizeof why) != 0 && agree,
          "another timestamp: invalid for both: %s", why);
    free(bad);
    X509 *pre2 = ctk_cert("pre", key, root, root_key, 0, CTK_POISON, 0);
    CHECK(both(v, log_key, sct, sl, pre2, root, &agree, why, sizeof why) != 0 && agree,
          "another precertificate: invalid for both: %s", why);
    static const unsigned char ext[] = {0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x2a};
    size_t xl = 0;
    unsigned char *xsct = make_sct(log_key, 3, pre, NID_ct_precert_poison, root, ts, ext,
                                   sizeof ext, &xl);
    CHECK(both(v, log_key, xsct, xl, pre, root, &agree, why, sizeof why) == 0 && agree,
          "an SCT with extensions: valid for both: %s", why);
    free(xsct);

    /* The fallback: the poison as the only extension (the DER way refuses, SCT_validate runs). */
    X509 *only = X509_new();
    X509_set_version(only, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(only), 9);
    X509_set_issuer_name(only, X509_get_subject_name(root));
    X509_set_subject_name(only, X509_get_subject_name(root));
    X509_gmtime_adj(X509_getm_notBefore(only), 0);
    X509_gmtime_adj(X509_getm_notAfter(only), 600);
    X509_set_pubkey(only, key);
    static const unsigned char null_der[] = {0x05, 0x00};
    ctk_add_raw_ext(only, "1.3.6.1.4.1.11129.2.4.3", 1, null_der, 2);
    X509_sign(only, root_key, EVP_sha256());
    size_t ol = 0;
    unsigned char *osct = make_sct(log_key, 3, only, NID_ct_precert_poison, root, ts, NULL, 0,
                                   &ol);
    CHECK(osct && both(v, log_key, osct, ol, only, root, &agree, why, sizeof why) == 0 && agree,
          "fallback (poison the only extension): valid for both: %s", why);
    CHECK(osct && both(v, log_key, osct, ol, only, other_key_root, &agree, why, sizeof why) != 0 &&
              agree && strstr(why, "OpenSSL says the SCT is invalid"),
          "fallback, wrong issuer: OpenSSL's answer: %s", why);
    free(osct);

    /* Both the poison and an SCT list: refused. */
    X509 *mixed = ctk_cert("mixed", key, root, root_key, 0, CTK_POISON, 0);
    static const unsigned char list[] = {0x04, 0x02, 0x00, 0x00};
    ctk_add_raw_ext(mixed, "1.3.6.1.4.1.11129.2.4.2", 0, list, sizeof list);
    X509_sign(mixed, root_key, EVP_sha256());
    CHECK(ct_sct_verify(v, sct, sl, mixed, root, now_ms(), why, sizeof why) != 0,
          "a certificate with the poison and an SCT list is refused: %s", why);
    X509_free(mixed);

    /* A log with an RSA key: rsa signatures verify the fast way, and an SCT claiming ecdsa with
     * that key does not (stricter than SCT_validate, which ignores the algorithm byte). */
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    ct_sct_verifier *rv = ct_sct_verifier_new(rsa, why, sizeof why);
    CHECK(rv != NULL, "RSA log verifier: %s", why);
    size_t rl = 0;
    unsigned char *rsct = make_sct(rsa, 1, pre, NID_ct_precert_poison, root, ts, NULL, 0, &rl);
    CHECK(rv && both(rv, rsa, rsct, rl, pre, root, &agree, why, sizeof why) == 0 && agree,
          "RSA log SCT: valid for both: %s", why);
    rsct[rl - 2 - 256 - 1] = 3; /* signature algorithm byte: ecdsa */
    CHECK(rv && ct_sct_verify(rv, rsct, rl, pre, root, now_ms(), why, sizeof why) != 0 &&
              strstr(why, "invalid"),
          "RSA log SCT claiming ecdsa: invalid: %s", why);
    free(rsct);
    ct_sct_verifier_free(rv);
    EVP_PKEY_free(rsa);

    free(sct);
    X509_free(only);
    X509_free(pre);
    X509_free(pre2);
    X509_free(other_key_root);
    ct_sct_verifier_free(v);
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/fulcrum-tbsder-unit-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    EVP_PKEY *root_key = ctk_key(), *key = ctk_key(), *log_key = ctk_key();
    X509 *root = ctk_cert("root", root_key, NULL, NULL, 1, CTK_NO_POISON, 0);

    der_refusals(key, root, root_key);
    char why[512] = "";
    signer *s = signer_ephemeral_new(why, sizeof why);
    CHECK(s != NULL, "ephemeral signer: %s", why);
    if (s)
        der_same_as_openssl(s, key, root, root_key, log_key);
    signer_free(s);
    verifier_agrees(key, root, root_key, log_key);

    X509_free(root);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(key);
    EVP_PKEY_free(log_key);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    CHECK_MAIN_END();
}
