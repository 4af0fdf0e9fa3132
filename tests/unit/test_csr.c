/* PKCS#10 requests (fulcio-compat.md §2.3): parse, key policy, self-signature, algorithm, in
 * that order. Every request is built here with OpenSSL. */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "ca/client_key.h"
#include "ca/csr.h"
#include "unit/check.h"

enum tamper { NONE, FLIP_SIGNATURE, FLIP_SUBJECT, TRAILING_BYTE };

struct signing {
    const EVP_MD *md; /* NULL for Ed25519 */
    int pss_saltlen;  /* 0: PKCS#1 v1.5 (or the key's own scheme); else RSA-PSS with this salt */
};

static EVP_PKEY *gen_rsa(int bits)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

static char *pem_block(const char *type, const unsigned char *der, size_t len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio(bio, type, "", der, (long)len);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *out = malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(bio);
    return out;
}

/* A CSR for `pub` (the signer's own key when NULL), signed by `signer`, as PEM. */
static char *make_csr(EVP_PKEY *signer, EVP_PKEY *pub, struct signing s, enum tamper t,
                      const char *label)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    char *pem = NULL;
    unsigned char *der = NULL;
    int ok = req && name && mctx && X509_REQ_set_version(req, 0) &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                        (const unsigned char *)"fulcrum-test", -1, -1, 0) &&
             X509_REQ_set_subject_name(req, name) && X509_REQ_set_pubkey(req, pub ? pub : signer) &&
             EVP_DigestSignInit(mctx, &pctx, s.md, NULL, signer) == 1;
    if (ok && s.pss_saltlen)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, s.pss_saltlen) == 1;
    ok = ok && X509_REQ_sign_ctx(req, mctx) > 0;
    int len = ok ? i2d_X509_REQ(req, &der) : 0;
    if (len > 0) {
        unsigned char *buf = malloc((size_t)len + 1);
        memcpy(buf, der, (size_t)len);
        if (t == FLIP_SIGNATURE)
            buf[len - 1] ^= 0x01;
        if (t == FLIP_SUBJECT) {
            unsigned char *cn = memmem(buf, (size_t)len, "fulcrum-test", 12);
            if (cn)
                cn[0] = 'F';
        }
        if (t == TRAILING_BYTE)
            buf[len++] = 0;
        pem = pem_block(label, buf, (size_t)len);
        free(buf);
    }
    OPENSSL_free(der);
    EVP_MD_CTX_free(mctx);
    X509_NAME_free(name);
    X509_REQ_free(req);
    return pem;
}

static enum csr_result run(const char *pem, EVP_PKEY **key, int *md, char *why)
{
    why[0] = 'x';
    why[1] = '\0';
    return csr_parse_and_verify((const unsigned char *)pem, pem ? strlen(pem) : 0, key, md, why,
                                256);
}

/* Builds, checks the result and reason, frees. */
static void expect(EVP_PKEY *signer, EVP_PKEY *pub, struct signing s, enum tamper t,
                   const char *label, enum csr_result want, const char *want_why,
                   const char *what)
{
    char why[256];
    EVP_PKEY *key = (EVP_PKEY *)1;
    int md = -7;
    char *pem = make_csr(signer, pub, s, t, label);
    CHECK(pem != NULL, "%s: CSR built", what);
    enum csr_result r = run(pem, &key, &md, why);
    CHECK(r == want, "%s: result %d, want %d (%s)", what, r, want, why);
    CHECK_STREQ(why, want_why, what);
    CHECK(key == NULL && md == NID_undef, "%s: no key, no hash on failure", what);
    free(pem);
}

static void test_accepted(void)
{
    static const struct {
        const char *what, *keytype;
        int bits;
        const char *curve;
        const EVP_MD *(*md)(void);
        int md_nid;
        int allowed; /* in the default --client-signing-algorithms */
    } cases[] = {
        {"RSA 2048 SHA-256", "RSA", 2048, NULL, EVP_sha256, NID_sha256, 1},
        {"RSA 3072 SHA-384", "RSA", 3072, NULL, EVP_sha384, NID_sha384, 0},
        {"RSA 2048 SHA-512", "RSA", 2048, NULL, EVP_sha512, NID_sha512, 0},
        {"P-256 SHA-256", "EC", 0, "P-256", EVP_sha256, NID_sha256, 1},
        {"P-256 SHA-512", "EC", 0, "P-256", EVP_sha512, NID_sha512, 0},
        {"P-384 SHA-384", "EC", 0, "P-384", EVP_sha384, NID_sha384, 1},
        {"P-521 SHA-512", "EC", 0, "P-521", EVP_sha512, NID_sha512, 1},
        {"Ed25519", "ED25519", 0, NULL, NULL, NID_undef, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        EVP_PKEY *k = cases[i].bits    ? gen_rsa(cases[i].bits)
                      : cases[i].curve ? EVP_EC_gen(cases[i].curve)
                                       : EVP_PKEY_Q_keygen(NULL, NULL, cases[i].keytype);
        struct signing s = {cases[i].md ? cases[i].md() : NULL, 0};
        const char *labels[] = {"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"};
        for (size_t l = 0; l < 2; l++) {
            char why[256];
            EVP_PKEY *key = NULL;
            int md = -7;
            char *pem = make_csr(k, NULL, s, NONE, labels[l]);
            enum csr_result r = run(pem, &key, &md, why);
            CHECK(r == CSR_OK, "%s (%s): %d %s", cases[i].what, labels[l], r, why);
            CHECK_STREQ(why, "", "no reason on success");
            CHECK(key && EVP_PKEY_eq(key, k) == 1, "%s: the CSR's key", cases[i].what);
            CHECK(md == cases[i].md_nid, "%s: hash %d", cases[i].what, md);
            if (key)
                CHECK((client_key_hash_allowed(key, md, why, sizeof why) == 0) == cases[i].allowed,
                      "%s: allowed-list verdict (%s)", cases[i].what, why);
            EVP_PKEY_free(key);
            free(pem);
        }
        EVP_PKEY_free(k);
    }
    /* What the allowed-list check then says about a P-256 key signed with SHA-512. */
    EVP_PKEY *k = EVP_EC_gen("P-256"), *key = NULL;
    int md;
    char why[256];
    struct signing s512 = {EVP_sha512(), 0};
    char *pem = make_csr(k, NULL, s512, NONE, "CERTIFICATE REQUEST");
    CHECK(run(pem, &key, &md, why) == CSR_OK, "P-256/SHA-512 parses");
    client_key_hash_allowed(key, md, why, sizeof why);
    CHECK_STREQ(why, "signing algorithm not permitted: *ecdsa.PublicKey, SHA-512",
                "P-256/SHA-512 then refused by the list");
    EVP_PKEY_free(key);
    EVP_PKEY_free(k);
    free(pem);
}

static void test_unparseable(EVP_PKEY *p256)
{
    struct signing s256 = {EVP_sha256(), 0};
    char why[256];
    EVP_PKEY *key = NULL;
    int md;
    CHECK(run("", &key, &md, why) == CSR_UNPARSEABLE, "empty");
    CHECK_STREQ(why, "the certificate signing request is empty", "empty reason");
    CHECK(run("hello", &key, &md, why) == CSR_UNPARSEABLE, "not PEM");
    CHECK_STREQ(why, "no PEM block found in the certificate signing request", "not PEM reason");
    expect(p256, NULL, s256, NONE, "CERTIFICATE", CSR_UNPARSEABLE,
           "PEM type \"CERTIFICATE\" is not CERTIFICATE REQUEST or NEW CERTIFICATE REQUEST",
           "wrong PEM label");
    char *junk = pem_block("CERTIFICATE REQUEST", (const unsigned char *)"\x30\x03\x02\x01\x00", 5);
    CHECK(run(junk, &key, &md, why) == CSR_UNPARSEABLE, "bad DER");
    CHECK_STREQ(why, "the PEM block is not a PKCS#10 certification request", "bad DER reason");
    free(junk);
    expect(p256, NULL, s256, TRAILING_BYTE, "CERTIFICATE REQUEST", CSR_UNPARSEABLE,
           "trailing data after the PKCS#10 certification request", "trailing byte");

    /* Go's ParseCertificateRequest takes only uncompressed EC points. */
    EVP_PKEY *c = EVP_PKEY_dup(p256);
    CHECK(c && EVP_PKEY_set_utf8_string_param(c, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                              "compressed") == 1,
          "compressed form");
    expect(c, NULL, s256, NONE, "CERTIFICATE REQUEST", CSR_UNPARSEABLE,
           "the CSR's EC public key is not an uncompressed point", "compressed point");
    EVP_PKEY_free(c);
}

static void test_refused(EVP_PKEY *p256, EVP_PKEY *rsa)
{
    struct signing s256 = {EVP_sha256(), 0}, s1 = {EVP_sha1(), 0};
    const char *L = "CERTIFICATE REQUEST";

    /* Key policy comes before the signature: a weak key with a broken signature is "insecure". */
    EVP_PKEY *weak = gen_rsa(1024);
    const char *weak_why =
        "RSA key of 1024 bits is not allowed (RSA must be 2048, 3072 or 4096 bits)";
    expect(weak, NULL, s256, NONE, L, CSR_INSECURE_KEY, weak_why, "RSA 1024");
    expect(weak, NULL, s256, FLIP_SIGNATURE, L, CSR_INSECURE_KEY, weak_why, "RSA 1024 tampered");
    expect(weak, NULL, s1, NONE, L, CSR_INSECURE_KEY, weak_why, "RSA 1024 SHA-1");
    EVP_PKEY_free(weak);
    EVP_PKEY *p224 = EVP_EC_gen("P-224");
    expect(p224, NULL, s256, NONE, L, CSR_INSECURE_KEY,
           "EC curve secp224r1 is not allowed (allowed: P-256, P-384, P-521)", "P-224");
    EVP_PKEY_free(p224);
    /* An X25519 key cannot sign; the policy refuses it before the signature is looked at. */
    EVP_PKEY *x = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    expect(p256, x, s256, NONE, L, CSR_INSECURE_KEY,
           "X25519 keys are not allowed (allowed: RSA 2048/3072/4096, ECDSA P-256/P-384/P-521, "
           "Ed25519)",
           "X25519 key");
    EVP_PKEY_free(x);

    /* Signature. */
    expect(p256, NULL, s256, FLIP_SIGNATURE, L, CSR_BAD_SIGNATURE,
           "the CSR's self-signature (ECDSA-SHA256) does not verify", "tampered signature");
    expect(p256, NULL, s256, FLIP_SUBJECT, L, CSR_BAD_SIGNATURE,
           "the CSR's self-signature (ECDSA-SHA256) does not verify", "tampered subject");
    expect(rsa, NULL, s256, FLIP_SIGNATURE, L, CSR_BAD_SIGNATURE,
           "the CSR's self-signature (SHA256-RSA) does not verify", "tampered RSA signature");
    EVP_PKEY *other = EVP_EC_gen("P-256");
    expect(other, p256, s256, NONE, L, CSR_BAD_SIGNATURE,
           "the CSR's self-signature (ECDSA-SHA256) does not verify", "signed by another key");
    EVP_PKEY_free(other);

    /* Algorithms Go's x509 verifies and Fulcio then refuses by name. */
    expect(rsa, NULL, s1, NONE, L, CSR_BAD_ALGORITHM, "unrecognized signature algorithm: SHA1-RSA",
           "SHA-1 RSA");
    expect(p256, NULL, s1, NONE, L, CSR_BAD_ALGORITHM,
           "unrecognized signature algorithm: ECDSA-SHA1", "SHA-1 ECDSA");
    expect(p256, NULL, s1, FLIP_SIGNATURE, L, CSR_BAD_SIGNATURE,
           "the CSR's self-signature (ECDSA-SHA1) does not verify",
           "SHA-1 with a bad signature fails on the signature first");
    struct signing pss256 = {EVP_sha256(), RSA_PSS_SALTLEN_DIGEST};
    struct signing pss384 = {EVP_sha384(), RSA_PSS_SALTLEN_DIGEST};
    expect(rsa, NULL, pss256, NONE, L, CSR_BAD_ALGORITHM,
           "unrecognized signature algorithm: SHA256-RSAPSS", "RSA-PSS SHA-256");
    expect(rsa, NULL, pss384, NONE, L, CSR_BAD_ALGORITHM,
           "unrecognized signature algorithm: SHA384-RSAPSS", "RSA-PSS SHA-384");
    expect(rsa, NULL, pss256, FLIP_SIGNATURE, L, CSR_BAD_SIGNATURE,
           "the CSR's self-signature (SHA256-RSAPSS) does not verify", "RSA-PSS tampered");

    /* Algorithms Go's signature check itself refuses. */
    struct signing pss_salt20 = {EVP_sha256(), 20};
    expect(rsa, NULL, pss_salt20, NONE, L, CSR_BAD_SIGNATURE,
           "the CSR's RSA-PSS parameters are not supported (SHA-256/384/512 with MGF1 of the same "
           "hash and a salt of the hash length only)",
           "RSA-PSS with a 20-byte salt");
    struct signing md5 = {EVP_md5(), 0};
    expect(rsa, NULL, md5, NONE, L, CSR_BAD_SIGNATURE,
           "the CSR is signed with the insecure algorithm MD5-RSA", "MD5 RSA");
    struct signing s224 = {EVP_sha224(), 0};
    expect(p256, NULL, s224, NONE, L, CSR_BAD_SIGNATURE,
           "the CSR's signature algorithm ecdsa-with-SHA224 is not supported", "ECDSA SHA-224");
    expect(rsa, NULL, s224, NONE, L, CSR_BAD_SIGNATURE,
           "the CSR's signature algorithm sha224WithRSAEncryption is not supported", "RSA SHA-224");
}

int main(void)
{
    EVP_PKEY *p256 = EVP_EC_gen("P-256"), *rsa = gen_rsa(2048);
    CHECK(p256 && rsa, "keys");
    if (!p256 || !rsa)
        CHECK_MAIN_END();
    test_accepted();
    test_unparseable(p256);
    test_refused(p256, rsa);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(rsa);
    CHECK_MAIN_END();
}
