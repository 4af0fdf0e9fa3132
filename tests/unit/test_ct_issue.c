/* CT issuance: precertificate, final certificate with the embedded SCT, SCT verification.
 *
 * The SCTs here are made by the test itself (RFC 6962 §3.2 signature input built by hand with a
 * P-256 "log" key), so the CA side and the verifier are checked against an SCT that no Fulcrum
 * log code produced. The final check of each certificate uses OpenSSL's SCT_LIST_validate with a
 * log store loaded from a CONF file written here, independent of ct/sct_verify.c. */
#include <openssl/ct.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ca/issue.h"
#include "ca/service.h"
#include "common/x509_der.h"
#include "ct/tbs_der.h"
#include "ct/sct_verify.h"
#include "hsm/signer.h"
#include "unit/check.h"

#define ISSUER_URL "https://accounts.google.com"
#define PASSWORD "password123"

static const unsigned char POISON_DER[] = {0x30, 0x13, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04,
                                           0x01, 0xd6, 0x79, 0x02, 0x04, 0x03, 0x01, 0x01,
                                           0xff, 0x04, 0x02, 0x05, 0x00};
/* OID 1.3.6.1.4.1.11129.2.4.2 */
static const unsigned char SCT_OID_DER[] = {0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04,
                                            0x01, 0xd6, 0x79, 0x02, 0x04, 0x02};

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

static EVP_PKEY *p256(void)
{
    return EVP_EC_gen("P-256");
}

static void sha256(const unsigned char *d, size_t n, unsigned char out[32])
{
    unsigned int l = 0;
    EVP_Digest(d, n, out, &l, EVP_sha256(), NULL);
}

static void spki_hash(EVP_PKEY *k, unsigned char out[32])
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);
    sha256(der, (size_t)n, out);
    OPENSSL_free(der);
}

/* TBS of cert with the extension `nid` removed, by the test's own path (X509_dup). */
static unsigned char *tbs_minus(X509 *cert, int nid, int *len)
{
    X509 *c = X509_dup(cert);
    int i = X509_get_ext_by_NID(c, nid, -1);
    if (i >= 0)
        X509_EXTENSION_free(X509_delete_ext(c, i));
    unsigned char *tbs = NULL;
    *len = i2d_re_X509_tbs(c, &tbs);
    X509_free(c);
    return tbs;
}

static void put(unsigned char *b, size_t *o, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        b[(*o)++] = (unsigned char)(v >> (8 * i));
}

/* An RFC 6962 v1 precert SCT over `precert` (poison removed) and `issuer`'s key, signed by
 * log_key; ext/extlen are the SCT extensions. Returns malloc'd TLS bytes. */
static unsigned char *make_sct(EVP_PKEY *log_key, X509 *precert, X509 *issuer, uint64_t ts,
                               const unsigned char *ext, size_t extlen, size_t *outlen)
{
    int tbslen = 0;
    unsigned char *tbs = tbs_minus(precert, NID_ct_precert_poison, &tbslen);
    size_t inlen = 2 + 8 + 2 + 32 + 3 + (size_t)tbslen + 2 + extlen, o = 0;
    unsigned char *in = malloc(inlen);
    in[o++] = 0; /* v1 */
    in[o++] = 0; /* certificate_timestamp */
    put(in, &o, ts, 8);
    put(in, &o, 1, 2); /* precert_entry */
    spki_hash(X509_get0_pubkey(issuer), in + o);
    o += 32;
    put(in, &o, (uint64_t)tbslen, 3);
    memcpy(in + o, tbs, (size_t)tbslen);
    o += (size_t)tbslen;
    put(in, &o, extlen, 2);
    if (extlen)
        memcpy(in + o, ext, extlen);
    o += extlen;
    OPENSSL_free(tbs);

    unsigned char sig[128];
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
    sct[o++] = 4; /* sha256 */
    sct[o++] = 3; /* ecdsa */
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

/* OpenSSL's own validation of the SCT list in `final`, with a CONF-file log store. */
static int openssl_validates(X509 *final, X509 *issuer, EVP_PKEY *log_key)
{
    char path[] = "/tmp/fulcrum-test-ctlogs-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(log_key, &der);
    char b64[256];
    EVP_EncodeBlock((unsigned char *)b64, der, n);
    OPENSSL_free(der);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "enabled_logs = t\n[t]\ndescription = test log\nkey = %s\n", b64);
    fclose(f);
    CTLOG_STORE *store = CTLOG_STORE_new();
    int ok = CTLOG_STORE_load_file(store, path) == 1;
    unlink(path);
    STACK_OF(SCT) *scts = X509_get_ext_d2i(final, NID_ct_precert_scts, NULL, NULL);
    CT_POLICY_EVAL_CTX *ctx = CT_POLICY_EVAL_CTX_new();
    ok = ok && scts && sk_SCT_num(scts) == 1 && ctx &&
         CT_POLICY_EVAL_CTX_set1_cert(ctx, final) == 1 &&
         CT_POLICY_EVAL_CTX_set1_issuer(ctx, issuer) == 1;
    if (ok) {
        CT_POLICY_EVAL_CTX_set_shared_CTLOG_STORE(ctx, store);
        ok = SCT_LIST_validate(scts, ctx) == 1 &&
             SCT_get_validation_status(sk_SCT_value(scts, 0)) == SCT_VALIDATION_STATUS_VALID;
    }
    CT_POLICY_EVAL_CTX_free(ctx);
    SCT_LIST_free(scts);
    CTLOG_STORE_free(store);
    return ok;
}

static int verifies_to_root(X509 *leaf, const signer *s)
{
    int n = sk_X509_num(s->chain);
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    int ok = 0;
    if (store && ctx && untrusted && X509_STORE_add_cert(store, sk_X509_value(s->chain, n - 1))) {
        for (int i = 0; i < n - 1; i++)
            sk_X509_push(untrusted, sk_X509_value(s->chain, i));
        ok = X509_STORE_CTX_init(ctx, store, leaf, untrusted) && X509_verify_cert(ctx) == 1;
    }
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

static int last_ext_is(X509 *x, int nid)
{
    return X509_get_ext_by_NID(x, nid, -1) == X509_get_ext_count(x) - 1;
}

static void one_signer(const char *label, signer *s)
{
    char why[768] = "";
    principal p = email_principal();
    EVP_PKEY *client = p256(), *log_key = p256(), *other_log = p256();
    X509 *issuing = signer_issuing_cert(s);
    time_t now = time(NULL);

    /* Step 1: the precertificate. */
    X509 *pre = NULL;
    CHECK(ca_issue_precertificate(s, &p, client, now, &pre, why, sizeof why) == ISSUE_OK,
          "%s: precertificate: %s", label, why);
    if (!pre)
        goto out;
    int n = X509_get_ext_count(pre);
    unsigned char *der = NULL;
    int len = i2d_X509_EXTENSION(X509_get_ext(pre, n - 1), &der);
    CHECK(len == (int)sizeof POISON_DER && memcmp(der, POISON_DER, sizeof POISON_DER) == 0,
          "%s: the last extension is the poison, 30 13 ... 01 01 ff 04 02 05 00", label);
    OPENSSL_free(der);
    CHECK(X509_verify(pre, X509_get0_pubkey(issuing)) == 1, "%s: precert signed by the CA",
          label);
    X509 *plain = NULL;
    CHECK(ca_issue_certificate(s, &p, client, now, &plain, why, sizeof why) == ISSUE_OK,
          "%s: plain certificate", label);
    CHECK(plain && X509_get_ext_count(plain) == n - 1,
          "%s: precert = the profile's extensions + the poison", label);

    /* The verifier, on an SCT made here. */
    ct_sct_verifier *v = ct_sct_verifier_new(log_key, why, sizeof why);
    CHECK(v != NULL, "%s: verifier: %s", label, why);
    unsigned char want_id[32];
    spki_hash(log_key, want_id);
    CHECK(v && memcmp(ct_sct_verifier_log_id(v), want_id, 32) == 0,
          "%s: log ID = SHA-256 of the DER SPKI", label);
    uint64_t ts = now_ms();
    size_t sct_len = 0;
    unsigned char *sct = make_sct(log_key, pre, issuing, ts, NULL, 0, &sct_len);
    /* 47 bytes before the signature, then a DER ECDSA-Sig-Value of at most 72 bytes (fewer when
     * r or s starts with zero bytes, about 1 in 128 signatures). */
    CHECK(sct_len >= 47 + 8 && sct_len <= 119 && sct_len == 47 + ((size_t)sct[45] << 8 | sct[46]),
          "%s: ECDSA SCT is 47 bytes + a signature of at most 72 (%zu)", label, sct_len);
    CHECK(ct_sct_verify(v, sct, sct_len, pre, issuing, now_ms(), why, sizeof why) == 0,
          "%s: SCT verifies against the precertificate: %s", label, why);

    /* Wrong issuer: another key in the issuer_key_hash. */
    if (sk_X509_num(s->chain) > 1) {
        X509 *root = sk_X509_value(s->chain, sk_X509_num(s->chain) - 1);
        CHECK(ct_sct_verify(v, sct, sct_len, pre, root, now_ms(), why, sizeof why) != 0 &&
                  strstr(why, "invalid"),
              "%s: the SCT does not verify with the root as issuer: %s", label, why);
    }
    /* Tampered signature. */
    unsigned char *bad = malloc(sct_len);
    memcpy(bad, sct, sct_len);
    bad[sct_len - 5] ^= 0x01;
    CHECK(ct_sct_verify(v, bad, sct_len, pre, issuing, now_ms(), why, sizeof why) != 0 &&
              strstr(why, "invalid"),
          "%s: a flipped signature bit is refused: %s", label, why);
    /* Trailing byte. */
    memcpy(bad, sct, sct_len);
    CHECK(ct_sct_verify(v, bad, sct_len - 1, pre, issuing, now_ms(), why, sizeof why) != 0,
          "%s: a truncated SCT is refused", label);
    free(bad);
    /* Another log. */
    size_t olen = 0;
    unsigned char *osct = make_sct(other_log, pre, issuing, ts, NULL, 0, &olen);
    CHECK(ct_sct_verify(v, osct, olen, pre, issuing, now_ms(), why, sizeof why) != 0 &&
              strstr(why, "is not the configured log's"),
          "%s: an SCT from another log is refused: %s", label, why);
    free(osct);
    /* From the future (more than 5 minutes). */
    size_t flen = 0;
    unsigned char *fsct = make_sct(log_key, pre, issuing, ts + 600000, NULL, 0, &flen);
    CHECK(ct_sct_verify(v, fsct, flen, pre, issuing, now_ms(), why, sizeof why) != 0 &&
              strstr(why, "in the future"),
          "%s: an SCT 10 minutes ahead is refused: %s", label, why);
    free(fsct);
    /* Against a certificate that is neither precert nor carries SCTs. */
    CHECK(ct_sct_verify(v, sct, sct_len, plain, issuing, now_ms(), why, sizeof why) != 0 &&
              strstr(why, "neither the poison"),
          "%s: a plain certificate is refused: %s", label, why);

    /* Step 2: the final certificate. */
    X509 *fin = NULL;
    CHECK(ca_issue_final_certificate(s, &p, pre, now, sct, sct_len, &fin, why, sizeof why) ==
              ISSUE_OK,
          "%s: final certificate: %s", label, why);
    if (fin) {
        CHECK(X509_get_ext_by_NID(fin, NID_ct_precert_poison, -1) < 0, "%s: no poison", label);
        CHECK(last_ext_is(fin, NID_ct_precert_scts), "%s: SCT list is the last extension",
              label);
        /* Exact bytes: 30 L 06 0a <oid> 04 L1 04 L2 <u16 list len> <u16 sct len> <sct>. */
        der = NULL;
        len = i2d_X509_EXTENSION(X509_get_ext(fin, X509_get_ext_count(fin) - 1), &der);
        size_t L2 = 2 + 2 + sct_len, L1 = 2 + (L2 >= 128 ? 1 : 0) + L2;
        unsigned char want[512];
        size_t o = 0;
        size_t body = sizeof SCT_OID_DER + 2 + (L1 >= 128 ? 1 : 0) + L1;
        want[o++] = 0x30;
        if (body >= 128)
            want[o++] = 0x81;
        want[o++] = (unsigned char)body;
        memcpy(want + o, SCT_OID_DER, sizeof SCT_OID_DER);
        o += sizeof SCT_OID_DER;
        want[o++] = 0x04;
        if (L1 >= 128)
            want[o++] = 0x81;
        want[o++] = (unsigned char)L1;
        want[o++] = 0x04;
        if (L2 >= 128)
            want[o++] = 0x81;
        want[o++] = (unsigned char)L2;
        put(want, &o, sct_len + 2, 2);
        put(want, &o, sct_len, 2);
        memcpy(want + o, sct, sct_len);
        o += sct_len;
        CHECK(len == (int)o && memcmp(der, want, o) == 0,
              "%s: SCT list extension is non-critical, double OCTET STRING, 2-byte lengths "
              "(%d bytes, want %zu)", label, len, o);
        OPENSSL_free(der);

        int a = 0, b = 0;
        unsigned char *ta = tbs_minus(pre, NID_ct_precert_poison, &a);
        unsigned char *tb = tbs_minus(fin, NID_ct_precert_scts, &b);
        CHECK(a > 0 && a == b && memcmp(ta, tb, (size_t)a) == 0,
              "%s: final TBS minus SCT list == precert TBS minus poison", label);
        OPENSSL_free(ta);
        OPENSSL_free(tb);
        size_t la = 0, lb = 0;
        ta = ca_tbs_without_ext(pre, NID_ct_precert_poison, &la);
        tb = ca_tbs_without_ext(fin, NID_ct_precert_scts, &lb);
        CHECK(ta && tb && la == lb && memcmp(ta, tb, la) == 0,
              "%s: ca_tbs_without_ext agrees", label);
        OPENSSL_free(ta);
        OPENSSL_free(tb);
        CHECK(ca_tbs_without_ext(plain, NID_ct_precert_scts, &la) == NULL,
              "%s: ca_tbs_without_ext: NULL when the extension is absent", label);
        CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(pre), X509_get0_serialNumber(fin)) == 0,
              "%s: same serial", label);
        CHECK(X509_verify(fin, X509_get0_pubkey(issuing)) == 1, "%s: final signed by the CA",
              label);
        CHECK(verifies_to_root(fin, s), "%s: final verifies to the root", label);
        CHECK(ct_sct_verify(v, sct, sct_len, fin, issuing, now_ms(), why, sizeof why) == 0,
              "%s: the embedded SCT verifies against the final certificate: %s", label, why);
        CHECK(openssl_validates(fin, issuing, log_key),
              "%s: OpenSSL SCT_LIST_validate says valid", label);
        CHECK(!openssl_validates(fin, issuing, other_log),
              "%s: and not for another log's key", label);
    }
    X509_free(fin);
    fin = NULL;

    /* An SCT carrying extensions (static-ct leaf_index: 00 00 05 + 5 bytes). */
    static const unsigned char leaf_index[] = {0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x2c};
    size_t xlen = 0;
    unsigned char *xsct = make_sct(log_key, pre, issuing, ts, leaf_index, sizeof leaf_index,
                                   &xlen);
    CHECK(ca_issue_final_certificate(s, &p, pre, now, xsct, xlen, &fin, why, sizeof why) ==
                  ISSUE_OK &&
              openssl_validates(fin, issuing, log_key),
          "%s: an SCT with extensions is embedded and validates: %s", label, why);
    X509_free(fin);
    fin = NULL;
    free(xsct);

    /* Failures. */
    static const unsigned char junk[] = {0x00, 0x01, 0x02};
    CHECK(ca_issue_final_certificate(s, &p, pre, now, junk, sizeof junk, &fin, why,
                                     sizeof why) == ISSUE_CA_ERROR &&
              !fin && strstr(why, "does not parse"),
          "%s: a junk SCT is refused: %s", label, why);
    CHECK(ca_issue_final_certificate(s, &p, plain, now, sct, sct_len, &fin, why, sizeof why) ==
                  ISSUE_CA_ERROR &&
              !fin && strstr(why, "poison"),
          "%s: a certificate without poison is refused: %s", label, why);
    CHECK(ca_issue_final_certificate(s, &p, pre, now + 1, sct, sct_len, &fin, why, sizeof why) ==
                  ISSUE_CA_ERROR &&
              !fin && strstr(why, "notBefore"),
          "%s: the final certificate is checked against the precert's issuance time: %s", label,
          why);

    free(sct);
    ct_sct_verifier_free(v);
    X509_free(plain);
    X509_free(pre);
out:
    EVP_PKEY_free(client);
    EVP_PKEY_free(log_key);
    EVP_PKEY_free(other_log);
}

static char *fixture(const char *name, const char *kind)
{
    static char buf[2][4096];
    static int i;
    const char *dir = getenv("FULCRUM_FIXTURES_DIR");
    i ^= 1;
    snprintf(buf[i], sizeof buf[i], "%s/fulcio-fileca/%s-%s.pem", dir ? dir : "tests/fixtures",
             name, kind);
    return buf[i];
}

/* The DER stored on an issued certificate (common/x509_der.h) is its encoding, and what the
 * users of stored DER give is what they would give from the encoding. */
static int stored_is_encoding(X509 *x)
{
    size_t len = 0;
    const unsigned char *stored = x509_der_get(x, &len);
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    int ok = stored && n > 0 && (size_t)n == len && memcmp(stored, der, len) == 0;
    OPENSSL_free(der);
    return ok;
}

static char *pem_of(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL, *out = NULL;
    if (b && PEM_write_bio_X509(b, x)) {
        long n = BIO_get_mem_data(b, &data);
        while (n > 0 && data[n - 1] == '\n')
            n--;
        out = strndup(data, (size_t)n);
    }
    BIO_free(b);
    return out;
}

static void stored_der(signer *s)
{
    char why[768] = "";
    principal p = email_principal();
    EVP_PKEY *client = p256(), *log_key = p256();
    time_t now = time(NULL);
    X509 *pre = NULL, *fin = NULL;
    CHECK(ca_issue_precertificate_built(s, &p, client, now, &pre, why, sizeof why) == ISSUE_OK,
          "stored DER: precertificate: %s", why);
    CHECK(pre && stored_is_encoding(pre), "stored DER: the precertificate carries its encoding");
    size_t tl = 0, sl = 0;
    unsigned char *tbs = pre ? ct_tbs_der(pre, &tl) : NULL;
    unsigned char *enc = NULL;
    int el = pre ? i2d_re_X509_tbs(pre, &enc) : -1;
    CHECK(tbs && el > 0 && (size_t)el == tl && memcmp(tbs, enc, tl) == 0,
          "stored DER: ct_tbs_der from it is the signed TBS");
    free(tbs);
    OPENSSL_free(enc);
    unsigned char *sct = pre ? make_sct(log_key, pre, signer_issuing_cert(s), now_ms(), NULL, 0,
                                        &sl)
                             : NULL;
    const unsigned char *pre_stored = pre ? x509_der_get(pre, &tl) : NULL;
    unsigned char *pre_copy = pre_stored ? malloc(tl) : NULL;
    if (pre_copy)
        memcpy(pre_copy, pre_stored, tl);
    CHECK(sct && ca_issue_final_certificate_from(s, &p, &pre, now, sct, sl, &fin, why,
                                                 sizeof why) == ISSUE_OK,
          "stored DER: final certificate: %s", why);
    size_t fl = 0;
    const unsigned char *fin_stored = fin ? x509_der_get(fin, &fl) : NULL;
    CHECK(fin && stored_is_encoding(fin),
          "stored DER: the final certificate carries its own encoding");
    CHECK(fin_stored && pre_copy && (fl != tl || memcmp(fin_stored, pre_copy, fl) != 0),
          "stored DER: not the precertificate's any more");
    CHECK(fin && X509_verify(fin, X509_get0_pubkey(signer_issuing_cert(s))) == 1,
          "stored DER: the final certificate is signed by the CA");
    char *want = fin ? pem_of(fin) : NULL, *got = fin ? service_cert_pem(fin) : NULL;
    CHECK(want && got && strcmp(want, got) == 0,
          "stored DER: service_cert_pem from it is PEM_write_bio_X509's");
    X509 *copy = fin ? X509_dup(fin) : NULL;
    CHECK(copy && x509_der_get(copy, &fl) == NULL, "stored DER: a copy carries none");
    x509_der_clear(fin);
    CHECK(fin && x509_der_get(fin, &fl) == NULL, "stored DER: cleared");
    free(want);
    free(got);
    free(pre_copy);
    free(sct);
    X509_free(copy);
    X509_free(pre);
    X509_free(fin);
    EVP_PKEY_free(client);
    EVP_PKEY_free(log_key);
}

int main(void)
{
    char why[512] = "";
    signer *s = signer_ephemeral_new(why, sizeof why);
    CHECK(s != NULL, "ephemeral signer: %s", why);
    if (s) {
        one_signer("ephemeralca", s);
        stored_der(s);
    }
    signer_free(s);

    const char *files[] = {"intermediate-3", "rsa4096"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        s = signer_file_new(fixture(files[i], "cert"), fixture(files[i], "key"), PASSWORD, why,
                            sizeof why);
        CHECK(s != NULL, "fileca %s: %s", files[i], why);
        if (s) {
            one_signer(files[i], s);
            stored_der(s); /* RSA-4096: a 513-byte BIT STRING, a NULL parameter */
        }
        signer_free(s);
    }

    CHECK(ct_sct_verifier_new(NULL, why, sizeof why) == NULL, "a verifier needs a key");
    CHECK_MAIN_END();
}
