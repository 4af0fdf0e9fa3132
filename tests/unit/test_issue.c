/* Issuance end to end: profile, pre-issuance check, signer, final verification. */
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "ca/issue.h"
#include "ca/preissuance_check.h"
#include "hsm/signer.h"
#include "unit/check.h"

#define ISSUER_URL "https://accounts.google.com"

static principal email_principal(void)
{
    principal p = {0};
    p.name = "alice@example.com";
    p.san_kind = SAN_EMAIL;
    p.san_value = "alice@example.com";
    p.ext[1] = ISSUER_URL;
    p.ext[8] = ISSUER_URL;
    p.ext[24] = "sub-123";
    return p;
}

/* Verifies leaf up to the last certificate of the signer's chain (the only trust anchor), then
 * the code-signing EKU on the leaf. OpenSSL 3.0 has no code-signing purpose for
 * X509_verify_cert, so the EKU is checked by hand; the CA side is plain path validation. */
static int verifies_to_root(X509 *leaf, const signer *s, char *why, size_t whylen)
{
    int n = sk_X509_num(s->chain);
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    int ok = 0;
    if (!store || !ctx || !untrusted || !X509_STORE_add_cert(store, sk_X509_value(s->chain, n - 1)))
        goto done;
    for (int i = 0; i < n - 1; i++)
        sk_X509_push(untrusted, sk_X509_value(s->chain, i));
    if (!X509_STORE_CTX_init(ctx, store, leaf, untrusted))
        goto done;
    X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx), X509_V_FLAG_X509_STRICT);
    ok = X509_verify_cert(ctx) == 1;
    if (!ok)
        snprintf(why, whylen, "%s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    else if (X509_get_extended_key_usage(leaf) != XKU_CODE_SIGN) {
        snprintf(why, whylen, "leaf EKU is not codeSigning only");
        ok = 0;
    }
done:
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

/* ---- a signer over an in-memory key, with ways to misbehave ---- */

enum mode { SIGN_OK, SIGN_CORRUPT, SIGN_FAIL };

struct test_impl {
    EVP_PKEY *key;
    int md_nid;
    enum mode mode;
    int calls;
};

static enum signer_status test_sign(void *impl, const unsigned char *tbs, size_t tbslen,
                                    unsigned char *sig, size_t *siglen, char *why, size_t whylen)
{
    struct test_impl *t = impl;
    t->calls++;
    if (t->mode == SIGN_FAIL) {
        snprintf(why, whylen, "test backend refuses");
        return SIGNER_FAIL;
    }
    const EVP_MD *md = t->md_nid == NID_undef ? NULL : EVP_get_digestbynid(t->md_nid);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, md, NULL, t->key) == 1 &&
             EVP_DigestSign(ctx, sig, siglen, tbs, tbslen) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        snprintf(why, whylen, "test backend cannot sign");
        return SIGNER_FAIL;
    }
    if (t->mode == SIGN_CORRUPT)
        sig[*siglen / 2] ^= 0x01;
    return SIGNER_OK;
}

static void test_destroy(void *impl)
{
    struct test_impl *t = impl;
    EVP_PKEY_free(t->key);
    free(t);
}

static const struct signer_ops test_ops = {test_sign, NULL, test_destroy, 0};

static EVP_PKEY *gen(const char *type, const char *curve, size_t bits)
{
    if (curve)
        return EVP_PKEY_Q_keygen(NULL, NULL, type, curve);
    if (bits)
        return EVP_PKEY_Q_keygen(NULL, NULL, type, bits);
    return EVP_PKEY_Q_keygen(NULL, NULL, type);
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

static X509 *make_root(EVP_PKEY *k)
{
    X509 *x = X509_new();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 77);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"fulcrum-test", -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"test root", -1,
                               -1, 0);
    X509_set_issuer_name(x, n);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
    X509_set_pubkey(x, k);
    add_conf_ext(x, NID_basic_constraints, "critical,CA:TRUE,pathlen:1");
    add_conf_ext(x, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_conf_ext(x, NID_subject_key_identifier, "hash");
    const EVP_MD *md = EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
    if (!X509_sign(x, k, md)) {
        fprintf(stderr, "cannot sign root\n");
        exit(2);
    }
    return x;
}

/* A signer whose chain is a self-signed root for `cert_key` and which signs with `sign_key`
 * (the same key unless testing a mismatch; public_key is sign_key's). Takes both keys. */
static signer *test_signer(EVP_PKEY *cert_key, EVP_PKEY *sign_key, enum mode mode)
{
    char why[256];
    signer *s = calloc(1, sizeof *s);
    struct test_impl *t = calloc(1, sizeof *t);
    s->ops = &test_ops;
    s->impl = t;
    s->kind = "test";
    s->chain = sk_X509_new_null();
    sk_X509_push(s->chain, make_root(cert_key));
    if (cert_key != sign_key)
        EVP_PKEY_free(cert_key);
    t->key = sign_key;
    t->mode = mode;
    EVP_PKEY_up_ref(sign_key);
    s->public_key = sign_key;
    if (signer_init_algorithm(s, why, sizeof why) != 0) {
        fprintf(stderr, "signer_init_algorithm: %s\n", why);
        exit(2);
    }
    t->md_nid = s->md_nid;
    return s;
}

static int calls(const signer *s)
{
    return ((const struct test_impl *)s->impl)->calls;
}

static void test_ephemeral(void)
{
    char why[512] = "";
    signer *s = signer_ephemeral_new(why, sizeof why);
    CHECK(s != NULL, "ephemeral signer: %s", why);
    if (!s)
        return;
    const char *types[][2] = {{"EC", "P-256"}, {"EC", "P-384"}, {"EC", "P-521"},
                              {"RSA", NULL}, {"ED25519", NULL}};
    for (size_t i = 0; i < 5; i++) {
        EVP_PKEY *k = gen(types[i][0], types[i][1], strcmp(types[i][0], "RSA") == 0 ? 2048 : 0);
        principal p = email_principal();
        X509 *cert = NULL;
        time_t now = time(NULL);
        why[0] = '\0';
        enum issue_result r = ca_issue_certificate(s, &p, k, now, &cert, why, sizeof why);
        CHECK(r == ISSUE_OK && cert, "ephemeral, client %s: issue: %s", types[i][0], why);
        if (cert) {
            CHECK(verifies_to_root(cert, s, why, sizeof why), "ephemeral: verifies to root: %s",
                  why);
            CHECK(X509_verify(cert, X509_get0_pubkey(signer_issuing_cert(s))) == 1,
                  "ephemeral: signature");
            CHECK(X509_ALGOR_cmp(X509_get0_tbs_sigalg(cert), s->sig_alg) == 0,
                  "TBS alg is the signer's");
            const X509_ALGOR *outer = NULL;
            X509_get0_signature(NULL, &outer, cert);
            CHECK(X509_ALGOR_cmp(outer, s->sig_alg) == 0, "outer alg is the signer's");
            CHECK(EVP_PKEY_eq(X509_get0_pubkey(cert), k) == 1, "certified key is the client's");
            CHECK(preissuance_check(cert, &p, signer_issuing_cert(s), s->sig_alg, now, why,
                                    sizeof why) == 0,
                  "the final certificate still passes the check: %s", why);
        }
        X509_free(cert);
        EVP_PKEY_free(k);
    }
    signer_free(s);
}

/* Each CA key type through a test signer. */
static void test_ca_key_types(void)
{
    const char *types[][2] = {{"EC", "P-256"}, {"EC", "P-384"}, {"RSA", NULL}, {"ED25519", NULL}};
    EVP_PKEY *client = gen("EC", "P-256", 0);
    for (size_t i = 0; i < 4; i++) {
        char why[512] = "";
        EVP_PKEY *k = gen(types[i][0], types[i][1], strcmp(types[i][0], "RSA") == 0 ? 2048 : 0);
        signer *s = test_signer(k, k, SIGN_OK);
        principal p = email_principal();
        X509 *cert = NULL;
        enum issue_result r =
            ca_issue_certificate(s, &p, client, time(NULL), &cert, why, sizeof why);
        CHECK(r == ISSUE_OK && cert, "CA %s: issue: %s", types[i][0], why);
        CHECK(calls(s) == 1, "CA %s: one signature", types[i][0]);
        if (cert)
            CHECK(verifies_to_root(cert, s, why, sizeof why), "CA %s %s: verifies: %s",
                  types[i][0], types[i][1] ? types[i][1] : "", why);
        X509_free(cert);
        signer_free(s);
    }
    EVP_PKEY_free(client);
}

static void test_failures(void)
{
    char why[512];
    EVP_PKEY *client = gen("EC", "P-256", 0);
    principal p = email_principal();
    X509 *cert;

    /* The backend returns a corrupted signature: signer_sign's own verification refuses it. */
    EVP_PKEY *k = gen("EC", "P-256", 0);
    signer *s = test_signer(k, k, SIGN_CORRUPT);
    cert = (X509 *)1;
    why[0] = '\0';
    CHECK(ca_issue_certificate(s, &p, client, time(NULL), &cert, why, sizeof why) ==
              ISSUE_CA_ERROR,
          "corrupt signature: CA error");
    CHECK(cert == NULL, "corrupt signature: no certificate");
    CHECK(strncmp(why, "signing the certificate: ", 25) == 0, "corrupt signature: %s", why);
    signer_free(s);

    /* (A backend whose key is not the issuing certificate's is refused when the signer is made:
     * hsm/ checks the pair at start, test_signer and test_pkcs11_signer.) */

    /* The backend fails. */
    k = gen("EC", "P-256", 0);
    s = test_signer(k, k, SIGN_FAIL);
    why[0] = '\0';
    CHECK(ca_issue_certificate(s, &p, client, time(NULL), &cert, why, sizeof why) ==
              ISSUE_CA_ERROR,
          "failing backend: CA error");
    CHECK(strstr(why, "test backend refuses") != NULL, "failing backend: %s", why);

    /* The pre-issuance check fails (weak key): nothing is signed. */
    int before = calls(s);
    ((struct test_impl *)s->impl)->mode = SIGN_OK;
    EVP_PKEY *weak = gen("RSA", NULL, 1024);
    why[0] = '\0';
    CHECK(ca_issue_certificate(s, &p, weak, time(NULL), &cert, why, sizeof why) == ISSUE_CA_ERROR,
          "weak key: CA error");
    CHECK(strncmp(why, "pre-issuance check: client key: ", 32) == 0 && strstr(why, "1024"),
          "weak key: %s", why);
    CHECK(calls(s) == before, "weak key: the signer was not called");
    EVP_PKEY_free(weak);

    /* Principals that cannot be embedded: 400, nothing signed. */
    struct {
        enum san_kind kind;
        const char *san;
        int ext;
        const char *ext_value;
        const char *want;
    } bad[] = {
        {SAN_EMAIL, "", 0, NULL, "the identity has no value for the subject alternative name"},
        {SAN_EMAIL, NULL, 0, NULL, "the identity has no value for the subject alternative name"},
        {SAN_EMAIL, "al\xc3\xaf" "ce@example.com", 0, NULL,
         "x509: \"al\xc3\xaf" "ce@example.com\" cannot be encoded as an IA5String"},
        {SAN_URI, "https://example.com/\xe2\x82\xac", 0, NULL,
         "x509: \"https://example.com/\xe2\x82\xac\" cannot be encoded as an IA5String"},
        {SAN_OTHERNAME_USERNAME, "alice!\xff", 0, NULL,
         "the subject alternative name is not valid UTF-8"},
        {SAN_EMAIL, "alice@example.com", 9, "bad \xc0\xaf",
         "the value of extension 1.3.6.1.4.1.57264.1.9 is not valid UTF-8"},
        {(enum san_kind)9, "x", 0, NULL, "unsupported subject alternative name type"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        principal q = email_principal();
        q.san_kind = bad[i].kind;
        q.san_value = (char *)bad[i].san;
        if (bad[i].ext)
            q.ext[bad[i].ext] = (char *)bad[i].ext_value;
        before = calls(s);
        cert = (X509 *)1;
        why[0] = '\0';
        CHECK(ca_issue_certificate(s, &q, client, time(NULL), &cert, why, sizeof why) ==
                  ISSUE_VALIDATION_ERROR,
              "bad principal %zu: validation error", i);
        CHECK(cert == NULL && calls(s) == before, "bad principal %zu: nothing signed", i);
        CHECK_STREQ(why, bad[i].want, "bad principal reason");
    }

    /* And the same signer issues for a good principal (URI and otherName). */
    principal u = email_principal();
    u.san_kind = SAN_URI;
    u.san_value = "https://github.com/o/r/.github/workflows/w.yml@refs/heads/main";
    cert = NULL;
    CHECK(ca_issue_certificate(s, &u, client, time(NULL), &cert, why, sizeof why) == ISSUE_OK,
          "URI principal: %s", why);
    if (cert)
        CHECK(verifies_to_root(cert, s, why, sizeof why), "URI: verifies: %s", why);
    X509_free(cert);
    u.san_kind = SAN_OTHERNAME_USERNAME;
    u.san_value = "alice!example.com";
    cert = NULL;
    CHECK(ca_issue_certificate(s, &u, client, time(NULL), &cert, why, sizeof why) == ISSUE_OK,
          "otherName principal: %s", why);
    X509_free(cert);
    signer_free(s);
    EVP_PKEY_free(client);
}

int main(void)
{
    test_ephemeral();
    test_ca_key_types();
    test_failures();
    CHECK_MAIN_END();
}
