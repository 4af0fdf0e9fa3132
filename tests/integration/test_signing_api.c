/*
 * tests/integration/test_signing_api.c: the Fulcio HTTP API of a real `fulcrum serve`, fed with
 * tokens from a real dev issuer, once with --ca ephemeralca and once with --ca fileca (both with
 * CT off), then once more with ephemeralca and the embedded CT log (the answers are then
 * signedCertificateEmbeddedSct and every leaf ends with the SCT list extension; the SCT itself is
 * checked by test_ct_embedded).
 *
 * Covers: v2 and v1 issuance (token in body / bearer header, RS256 / ES256 tokens, P-256, P-384,
 * RSA-2048, Ed25519 keys, CSRs), the exact leaf profile (fulcio-compat §4), protojson leniency,
 * every kind of bad token, bad proofs, weak keys, bad CSRs, the read-only endpoints, 404/501,
 * the 4 MiB body limit, and a clean exit on SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/bn.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "integration/harness.h"
#include "unit/check.h"

#define MSG_TOKEN "There was an error processing the identity token: "
#define MSG_CSR "The certificate signing request could not be parsed: "
#define MSG_KEY_PARSE "The public key supplied in the request could not be parsed: "
#define MSG_KEY_INSECURE "The public key supplied in the request is insecure: "
#define MSG_SIG "The signature supplied in the request could not be verified: "

#define OID_ISSUER_V1 "1.3.6.1.4.1.57264.1.1"
#define OID_ISSUER_V2 "1.3.6.1.4.1.57264.1.8"
#define OID_TOKEN_SUB "1.3.6.1.4.1.57264.1.24"

static h_issuer g_iss;

/* One running server and what it publishes. */
typedef struct suite {
    const char *label;
    h_server srv;
    json_t *bundle_certs;    /* trustBundle chains[0].certificates (owned) */
    STACK_OF(X509) *bundle;  /* parsed bundle_certs */
    X509 *root;              /* last of bundle (borrowed from `bundle`) */
    int ct;                  /* the embedded CT log is on */
} suite;

/* ---- request building ------------------------------------------------------------------- */

static char *dump(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

/* {"credentials":{"oidcIdentityToken":token},"publicKeyRequest":{"publicKey":{"algorithm":"ECDSA",
 * "content":PEM},"proofOfPossession":b64(sig over challenge)}}; token NULL = no credentials. */
static char *v2_key_body(const char *token, EVP_PKEY *key, const char *challenge)
{
    char *pem = h_key_spki_pem(key);
    size_t sig_len = 0;
    unsigned char *sig = h_sign_pop(key, challenge, &sig_len);
    char *b64 = sig ? h_b64(sig, sig_len, 0) : NULL;
    char *out = NULL;
    if (pem && b64) {
        json_t *req = json_pack("{s:{s:{s:s,s:s},s:s}}", "publicKeyRequest", "publicKey",
                                "algorithm", "ECDSA", "content", pem, "proofOfPossession", b64);
        if (token)
            json_object_set_new(req, "credentials", json_pack("{s:s}", "oidcIdentityToken", token));
        out = dump(req);
    }
    free(pem);
    free(sig);
    free(b64);
    return out;
}

static char *v2_csr_body(const char *token, const char *csr_pem)
{
    char *b64 = h_b64(csr_pem, strlen(csr_pem), 0);
    json_t *req = json_pack("{s:{s:s},s:s}", "credentials", "oidcIdentityToken", token,
                            "certificateSigningRequest", b64);
    free(b64);
    return dump(req);
}

static char *token_q(const char *query)
{
    char *t = h_issuer_token(&g_iss, query);
    CHECK(t != NULL, "dev issuer gave a token for ?%s", query);
    return t;
}

static int post(const suite *s, const char *path, const char *body, const char *bearer,
                h_response *r)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", s->srv.url, path);
    if (!body) {
        memset(r, 0, sizeof *r);
        return -1;
    }
    return h_post_json(url, body, bearer, r);
}

static int get(const suite *s, const char *path, h_response *r)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", s->srv.url, path);
    return h_get(url, r);
}

/* ---- leaf profile ----------------------------------------------------------------------- */

static int bytes_eq(const unsigned char *got, size_t got_len, const unsigned char *want,
                    size_t want_len)
{
    return got && got_len == want_len && memcmp(got, want, want_len) == 0;
}

/* DER UTF8String of s (short form length; the values here are < 128 bytes). */
static size_t der_utf8(const char *s, unsigned char *out)
{
    size_t n = strlen(s);
    out[0] = 0x0c;
    out[1] = (unsigned char)n;
    memcpy(out + 2, s, n);
    return n + 2;
}

static int expected_sig_nid(EVP_PKEY *ca_key)
{
    if (EVP_PKEY_is_a(ca_key, "EC")) {
        int bits = EVP_PKEY_get_bits(ca_key);
        return bits == 384 ? NID_ecdsa_with_SHA384
               : bits == 521 ? NID_ecdsa_with_SHA512
                             : NID_ecdsa_with_SHA256;
    }
    if (EVP_PKEY_is_a(ca_key, "RSA"))
        return NID_sha256WithRSAEncryption;
    if (EVP_PKEY_is_a(ca_key, "ED25519"))
        return NID_ED25519;
    return NID_undef;
}

static void check_leaf(const suite *s, const char *what, STACK_OF(X509) *chain, EVP_PKEY *key,
                       const char *email, const char *sub)
{
    CHECK(chain && sk_X509_num(chain) >= 2, "%s/%s: chain of at least leaf+root", s->label, what);
    if (!chain || sk_X509_num(chain) < 2)
        return;
    X509 *leaf = sk_X509_value(chain, 0), *issuer = sk_X509_value(chain, 1);

    CHECK(h_verify_chain(chain, s->root), "%s/%s: leaf verifies to the trustBundle root",
          s->label, what);
    CHECK(X509_get_extended_key_usage(leaf) == XKU_CODE_SIGN, "%s/%s: EKU is codeSigning only",
          s->label, what);
    CHECK(X509_get_version(leaf) == 2, "%s/%s: v3", s->label, what);

    /* chain[1..] is the published bundle */
    int same = sk_X509_num(chain) - 1 == sk_X509_num(s->bundle);
    for (int i = 1; same && i < sk_X509_num(chain); i++)
        same = X509_cmp(sk_X509_value(chain, i), sk_X509_value(s->bundle, i - 1)) == 0;
    CHECK(same, "%s/%s: chain after the leaf equals the trust bundle", s->label, what);

    /* serial: positive, < 2^159 */
    BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
    CHECK(serial && !BN_is_negative(serial) && !BN_is_zero(serial) && BN_num_bits(serial) <= 159,
          "%s/%s: serial positive and < 2^159", s->label, what);
    BN_free(serial);

    /* empty subject, issuer = the CA's subject */
    unsigned char *der = NULL;
    int der_len = i2d_X509_NAME(X509_get_subject_name(leaf), &der);
    CHECK(der_len == 2 && der[0] == 0x30 && der[1] == 0x00, "%s/%s: subject is 30 00", s->label,
          what);
    OPENSSL_free(der);
    CHECK(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(issuer)) == 0,
          "%s/%s: issuer = CA subject", s->label, what);

    /* validity: exactly 600 s, UTCTime, starting now */
    CHECK(h_validity_seconds(leaf) == 600, "%s/%s: validity %ld s, want 600", s->label, what,
          h_validity_seconds(leaf));
    CHECK(ASN1_STRING_type(X509_get0_notBefore(leaf)) == V_ASN1_UTCTIME &&
              ASN1_STRING_type(X509_get0_notAfter(leaf)) == V_ASN1_UTCTIME,
          "%s/%s: UTCTime validity", s->label, what);
    ASN1_TIME *now = ASN1_TIME_set(NULL, time(NULL));
    int days = 0, secs = 0;
    ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf), now);
    CHECK(days == 0 && secs >= 0 && secs <= 60, "%s/%s: notBefore is now (%d s ago)", s->label,
          what, secs);
    ASN1_TIME_free(now);

    /* key = the submitted key; signature algorithm from the CA key */
    CHECK(EVP_PKEY_eq(X509_get0_pubkey(leaf), key) == 1, "%s/%s: certified key = submitted key",
          s->label, what);
    CHECK(X509_get_signature_nid(leaf) == expected_sig_nid(X509_get0_pubkey(issuer)),
          "%s/%s: signature algorithm %s follows the CA key", s->label, what,
          OBJ_nid2sn(X509_get_signature_nid(leaf)));

    /* extensions in Go's order */
    const ASN1_OCTET_STRING *ca_skid = X509_get0_subject_key_id(issuer);
    char want_oids[512];
    snprintf(want_oids, sizeof want_oids,
             "2.5.29.15,2.5.29.37,2.5.29.14,%s2.5.29.17,%s,%s%s%s%s",
             ca_skid ? "2.5.29.35," : "", OID_ISSUER_V1, OID_ISSUER_V2, sub ? "," : "",
             sub ? OID_TOKEN_SUB : "", s->ct ? ",1.3.6.1.4.1.11129.2.4.2" : "");
    char *oids = h_ext_oids(leaf);
    CHECK_STREQ(oids, want_oids, "extension OIDs in order");
    free(oids);

    size_t len = 0;
    int crit = -1;
    const unsigned char *v;
    static const unsigned char ku[] = {0x03, 0x02, 0x07, 0x80};
    v = h_ext_value(leaf, "2.5.29.15", &len, &crit);
    CHECK(bytes_eq(v, len, ku, sizeof ku) && crit == 1,
          "%s/%s: keyUsage critical digitalSignature only", s->label, what);
    static const unsigned char eku[] = {0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06,
                                        0x01, 0x05, 0x05, 0x07, 0x03, 0x03};
    v = h_ext_value(leaf, "2.5.29.37", &len, &crit);
    CHECK(bytes_eq(v, len, eku, sizeof eku) && crit == 0, "%s/%s: extKeyUsage codeSigning only",
          s->label, what);

    unsigned char want[300];
    const ASN1_BIT_STRING *bits = X509_get0_pubkey_bitstr(leaf);
    want[0] = 0x04;
    want[1] = SHA_DIGEST_LENGTH;
    SHA1(ASN1_STRING_get0_data(bits), (size_t)ASN1_STRING_length(bits), want + 2);
    v = h_ext_value(leaf, "2.5.29.14", &len, &crit);
    CHECK(bytes_eq(v, len, want, 2 + SHA_DIGEST_LENGTH) && crit == 0,
          "%s/%s: SKID = SHA-1 of the key bits", s->label, what);
    if (ca_skid && ASN1_STRING_length(ca_skid) < 100) {
        size_t n = (size_t)ASN1_STRING_length(ca_skid);
        unsigned char akid[110] = {0x30, (unsigned char)(n + 2), 0x80, (unsigned char)n};
        memcpy(akid + 4, ASN1_STRING_get0_data(ca_skid), n);
        v = h_ext_value(leaf, "2.5.29.35", &len, &crit);
        CHECK(bytes_eq(v, len, akid, n + 4) && crit == 0, "%s/%s: AKID keyIdentifier = CA SKID",
              s->label, what);
    }

    size_t elen = strlen(email);
    want[0] = 0x30;
    want[1] = (unsigned char)(elen + 2);
    want[2] = 0x81;
    want[3] = (unsigned char)elen;
    memcpy(want + 4, email, elen);
    v = h_ext_value(leaf, "2.5.29.17", &len, &crit);
    CHECK(bytes_eq(v, len, want, elen + 4) && crit == 1,
          "%s/%s: SAN critical, one rfc822Name %s", s->label, what, email);

    v = h_ext_value(leaf, OID_ISSUER_V1, &len, &crit);
    CHECK(bytes_eq(v, len, (const unsigned char *)g_iss.url, strlen(g_iss.url)) && crit == 0,
          "%s/%s: .1.1 = raw issuer URL", s->label, what);
    size_t n = der_utf8(g_iss.url, want);
    v = h_ext_value(leaf, OID_ISSUER_V2, &len, &crit);
    CHECK(bytes_eq(v, len, want, n) && crit == 0, "%s/%s: .1.8 = UTF8String issuer URL",
          s->label, what);
    if (sub) {
        n = der_utf8(sub, want);
        v = h_ext_value(leaf, OID_TOKEN_SUB, &len, &crit);
        CHECK(bytes_eq(v, len, want, n) && crit == 0, "%s/%s: .1.24 = UTF8String sub", s->label,
              what);
    }
}

/* A v2 success: 200 JSON {"signedCertificateDetachedSct":{"chain":{"certificates":[...]},
 * "signedCertificateTimestamp":""}} (CT is off). Returns the parsed chain or NULL. */
static STACK_OF(X509) *v2_success(const suite *s, const char *what, const h_response *r)
{
    CHECK(r->status == 200, "%s/%s: status %ld, want 200 (%.300s)", s->label, what, r->status,
          r->body ? r->body : "");
    if (r->status != 200)
        return NULL;
    char *ct = h_header(r, "Content-Type");
    CHECK(ct && strncmp(ct, "application/json", 16) == 0, "%s/%s: Content-Type %s", s->label,
          what, ct ? ct : "(none)");
    free(ct);
    json_t *j = h_json(r);
    json_t *d = json_object_get(j, s->ct ? "signedCertificateEmbeddedSct"
                                         : "signedCertificateDetachedSct");
    json_t *certs = json_object_get(json_object_get(d, "chain"), "certificates");
    json_t *sct = json_object_get(d, "signedCertificateTimestamp");
    CHECK(json_object_size(j) == 1 && json_object_size(d) == (s->ct ? 1u : 2u) &&
              json_is_array(certs),
          "%s/%s: %s response shape: %.300s", s->label, what, s->ct ? "embedded" : "detached",
          r->body);
    if (!s->ct)
        CHECK(json_is_string(sct) && strcmp(json_string_value(sct), "") == 0,
              "%s/%s: signedCertificateTimestamp is \"\" with CT off", s->label, what);
    int trimmed = json_is_array(certs) && json_array_size(certs) > 0;
    size_t i;
    json_t *pem;
    json_array_foreach(certs, i, pem) {
        const char *p = json_string_value(pem);
        size_t n = p ? strlen(p) : 0;
        trimmed = trimmed && n > 0 && p[n - 1] == '-' && p[0] == '-';
    }
    CHECK(trimmed, "%s/%s: each chain PEM is trimmed (no trailing newline)", s->label, what);
    STACK_OF(X509) *chain = h_chain_from_json(certs);
    CHECK(chain != NULL, "%s/%s: chain parses", s->label, what);
    json_decref(j);
    return chain;
}

/* Issues via v2 and checks the whole profile. */
static void expect_issued(const suite *s, const char *what, const char *body, const char *bearer,
                          EVP_PKEY *key, const char *email, const char *sub)
{
    h_response r;
    post(s, "/api/v2/signingCert", body, bearer, &r);
    STACK_OF(X509) *chain = v2_success(s, what, &r);
    if (chain)
        check_leaf(s, what, chain, key, email, sub);
    sk_X509_pop_free(chain, X509_free);
    h_response_free(&r);
}

/* 400 code 3 whose message starts with `prefix` and, when `reason` is not NULL, names the failed
 * check (contains `reason`). */
static void expect_error_why(const suite *s, const char *what, const char *path, const char *body,
                             const char *bearer, const char *prefix, const char *reason)
{
    h_response r;
    CHECK(body != NULL, "%s/%s: request body built", s->label, what);
    post(s, path, body, bearer, &r);
    CHECK(h_is_error(&r, 400, 3, prefix), "%s/%s: 400 code 3 \"%s...\"", s->label, what, prefix);
    if (reason)
        CHECK(r.body && strstr(r.body, reason), "%s/%s: message names the check (\"%s\"): %s",
              s->label, what, reason, r.body ? r.body : "(none)");
    CHECK(!r.body || !strstr(r.body, "BEGIN CERTIFICATE"), "%s/%s: no certificate", s->label,
          what);
    h_response_free(&r);
}

static void expect_error(const suite *s, const char *what, const char *path, const char *body,
                         const char *bearer, const char *prefix)
{
    expect_error_why(s, what, path, body, bearer, prefix, NULL);
}

/* ---- the cases -------------------------------------------------------------------------- */

static void test_read_only_endpoints(suite *s, const char *fileca_cert_path)
{
    h_response r;
    get(s, "/api/v2/trustBundle", &r);
    CHECK(r.status == 200, "%s: trustBundle 200 (got %ld)", s->label, r.status);
    char *ct = h_header(&r, "Content-Type");
    CHECK(ct && strncmp(ct, "application/json", 16) == 0, "%s: trustBundle JSON", s->label);
    free(ct);
    json_t *j = h_json(&r);
    json_t *chains = json_object_get(j, "chains");
    json_t *certs = json_object_get(json_array_get(chains, 0), "certificates");
    CHECK(json_object_size(j) == 1 && json_array_size(chains) == 1 &&
              json_object_size(json_array_get(chains, 0)) == 1 && json_array_size(certs) >= 1,
          "%s: trustBundle shape {chains:[{certificates:[...]}]}: %.300s", s->label, r.body);
    int newline = json_array_size(certs) > 0;
    size_t i;
    json_t *pem;
    json_array_foreach(certs, i, pem) {
        const char *p = json_string_value(pem);
        newline = newline && p && strlen(p) > 1 && p[strlen(p) - 1] == '\n';
    }
    CHECK(newline, "%s: trustBundle PEMs keep their trailing newline", s->label);
    s->bundle_certs = json_incref(certs);
    s->bundle = h_chain_from_json(certs);
    CHECK(s->bundle != NULL, "%s: trustBundle certificates parse", s->label);
    if (s->bundle) {
        s->root = sk_X509_value(s->bundle, sk_X509_num(s->bundle) - 1);
        CHECK(X509_check_issued(s->root, s->root) == X509_V_OK, "%s: last bundle cert is a root",
              s->label);
    }
    if (fileca_cert_path && s->bundle) {
        char *text = h_read_file(fileca_cert_path, NULL);
        STACK_OF(X509) *want = text ? h_chain_from_pem(text) : NULL;
        int same = want && sk_X509_num(want) == sk_X509_num(s->bundle);
        for (int k = 0; same && k < sk_X509_num(want); k++)
            same = X509_cmp(sk_X509_value(want, k), sk_X509_value(s->bundle, k)) == 0;
        CHECK(same, "%s: trustBundle = the --fileca-cert chain", s->label);
        sk_X509_pop_free(want, X509_free);
        free(text);
    }
    json_decref(j);
    h_response_free(&r);

    /* v1 rootCert: bundle PEMs joined with "\n", trimmed */
    get(s, "/api/v1/rootCert", &r);
    CHECK(r.status == 200, "%s: rootCert 200 (got %ld)", s->label, r.status);
    ct = h_header(&r, "Content-Type");
    CHECK_STREQ(ct, "application/pem-certificate-chain", "rootCert Content-Type");
    free(ct);
    size_t cap = 65536, len = 0;
    char *want = calloc(1, cap);
    json_array_foreach(s->bundle_certs, i, pem) {
        const char *p = json_string_value(pem);
        size_t n = strlen(p);
        while (n && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' '))
            n--;
        if (want && len + n + 2 < cap)
            len += (size_t)snprintf(want + len, cap - len, "%s%.*s", i ? "\n" : "", (int)n, p);
    }
    CHECK(want && r.body && strcmp(r.body, want) == 0,
          "%s: rootCert body = bundle joined by \\n, trimmed:\n%s\n--- want ---\n%s", s->label,
          r.body ? r.body : "", want ? want : "");
    free(want);
    h_response_free(&r);

    /* configuration */
    get(s, "/api/v2/configuration", &r);
    CHECK(r.status == 200, "%s: configuration 200 (got %ld)", s->label, r.status);
    j = h_json(&r);
    json_t *exp = json_pack("{s:[{s:s,s:s,s:s,s:s,s:s,s:s,s:b}]}", "issuers", "issuerUrl",
                            g_iss.url, "audience", "sigstore", "challengeClaim", "email",
                            "spiffeTrustDomain", "", "issuerType", "email", "subjectDomain", "",
                            "skipEmailVerification", 0);
    CHECK(j && json_equal(j, exp), "%s: configuration body exactly %s, got %s", s->label,
          "the one email issuer with every field", r.body);
    json_decref(exp);
    json_decref(j);
    h_response_free(&r);

    /* healthz */
    get(s, "/healthz", &r);
    j = h_json(&r);
    exp = json_pack("{s:s}", "status", "SERVING");
    CHECK(r.status == 200 && j && json_equal(j, exp), "%s: /healthz {\"status\":\"SERVING\"}",
          s->label);
    json_decref(exp);
    json_decref(j);
    h_response_free(&r);

    /* 404 and 501 */
    get(s, "/api/v2/doesNotExist", &r);
    CHECK(h_is_error(&r, 404, 5, NULL) && strstr(r.body, "\"Not Found\""),
          "%s: unknown path 404 {code:5,message:Not Found}", s->label);
    h_response_free(&r);
    get(s, "/api/v2/signingCert", &r);
    CHECK(h_is_error(&r, 501, 12, NULL) && strstr(r.body, "\"Method Not Allowed\""),
          "%s: GET signingCert 501 {code:12,message:Method Not Allowed}", s->label);
    h_response_free(&r);
    post(s, "/api/v2/trustBundle", "{}", NULL, &r);
    CHECK(h_is_error(&r, 501, 12, NULL), "%s: POST trustBundle 501", s->label);
    h_response_free(&r);
}

static void test_good_v2(const suite *s)
{
    EVP_PKEY *p256 = h_key_new("P-256"), *p384 = h_key_new("P-384"),
             *rsa = h_key_new("RSA-2048"), *ed = h_key_new("Ed25519"), *p521 = h_key_new("P-521");
    char *rs = token_q("email=alice@example.com&sub=alice-sub");
    char *es = token_q("email=bob@example.com&sub=bob-sub&alg=ES256");
    if (!p256 || !p384 || !rsa || !ed || !p521 || !rs || !es)
        goto out;

    char *body = v2_key_body(rs, p256, "alice@example.com");
    expect_issued(s, "P-256 RS256 token in body", body, NULL, p256, "alice@example.com",
                  "alice-sub");
    free(body);

    body = v2_key_body(NULL, p256, "alice@example.com");
    expect_issued(s, "P-256 bearer header", body, rs, p256, "alice@example.com", "alice-sub");
    free(body);

    body = v2_key_body(es, p384, "bob@example.com");
    expect_issued(s, "P-384 ES256 token", body, NULL, p384, "bob@example.com", "bob-sub");
    free(body);

    body = v2_key_body(NULL, p521, "bob@example.com");
    expect_issued(s, "P-521 ES256 token bearer", body, es, p521, "bob@example.com", "bob-sub");
    free(body);

    body = v2_key_body(rs, rsa, "alice@example.com");
    expect_issued(s, "RSA-2048", body, NULL, rsa, "alice@example.com", "alice-sub");
    free(body);

    body = v2_key_body(NULL, ed, "alice@example.com");
    expect_issued(s, "Ed25519 bearer", body, rs, ed, "alice@example.com", "alice-sub");
    free(body);

    /* body token wins over the header (fulcio-compat §10.1) */
    body = v2_key_body(rs, p256, "alice@example.com");
    expect_issued(s, "body token wins over a bad bearer", body, "not.a.token", p256,
                  "alice@example.com", "alice-sub");
    free(body);

    /* CSR path */
    char *csr = h_csr_pem(p256, p256, NULL);
    body = csr ? v2_csr_body(rs, csr) : NULL;
    expect_issued(s, "CSR P-256", body, NULL, p256, "alice@example.com", "alice-sub");
    free(body);
    free(csr);
    csr = h_csr_pem(p384, p384, NULL);
    body = csr ? v2_csr_body(es, csr) : NULL;
    expect_issued(s, "CSR P-384 SHA-384", body, NULL, p384, "bob@example.com", "bob-sub");
    free(body);
    free(csr);

    /* snake_case names, unknown fields, enum as number, URL-safe unpadded PoP */
    char *pem = h_key_spki_pem(p256);
    char *std = NULL, *url = NULL;
    for (int tries = 0; tries < 50; tries++) { /* want a signature whose two encodings differ */
        size_t sig_len = 0;
        unsigned char *sig = h_sign_pop(p256, "alice@example.com", &sig_len);
        free(std);
        free(url);
        std = sig ? h_b64(sig, sig_len, 0) : NULL;
        url = sig ? h_b64(sig, sig_len, 1) : NULL;
        free(sig);
        if (std && url && strpbrk(std, "+/="))
            break;
    }
    CHECK(std && url && strcmp(std, url) != 0, "%s: base64 and base64url PoP differ", s->label);
    json_t *j = json_pack("{s:{s:s},s:{s:{s:s,s:s},s:s}}", "credentials", "oidc_identity_token",
                          rs, "public_key_request", "public_key", "algorithm", "ECDSA", "content",
                          pem, "proof_of_possession", std);
    body = dump(j);
    expect_issued(s, "snake_case names", body, NULL, p256, "alice@example.com", "alice-sub");
    free(body);

    j = json_pack("{s:{s:s,s:i},s:{s:{s:i,s:s,s:s},s:s,s:[i]},s:s,s:n}", "credentials",
                  "oidcIdentityToken", rs, "futureField", 7, "publicKeyRequest", "publicKey",
                  "algorithm", 2, "content", pem, "extra", "x", "proofOfPossession", std,
                  "unknownArray", 1, "someNewTopLevelField", "ignored",
                  "certificateSigningRequest");
    body = dump(j);
    expect_issued(s, "unknown fields ignored, enum number, null CSR", body, NULL, p256,
                  "alice@example.com", "alice-sub");
    free(body);

    j = json_pack("{s:{s:s},s:{s:{s:s,s:s},s:s}}", "credentials", "oidcIdentityToken", rs,
                  "publicKeyRequest", "publicKey", "algorithm", "ECDSA", "content", pem,
                  "proofOfPossession", url);
    body = dump(j);
    expect_issued(s, "base64url unpadded PoP", body, NULL, p256, "alice@example.com",
                  "alice-sub");
    free(body);

    /* email_verified given as the string "True" is accepted (fulcio-compat §3.4) */
    char *tv = token_q("email=carol@example.com&sub=carol-sub&email_verified=True");
    body = tv ? v2_key_body(tv, p256, "carol@example.com") : NULL;
    expect_issued(s, "email_verified \"True\"", body, NULL, p256, "carol@example.com",
                  "carol-sub");
    free(body);
    free(tv);

    free(pem);
    free(std);
    free(url);
out:
    free(rs);
    free(es);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(p521);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ed);
}

static void test_v1(const suite *s)
{
    EVP_PKEY *key = h_key_new("P-256");
    char *tok = token_q("email=dave@example.com&sub=dave-sub");
    char *pem = key ? h_key_spki_pem(key) : NULL;
    size_t sig_len = 0;
    unsigned char *sig = key ? h_sign_pop(key, "dave@example.com", &sig_len) : NULL;
    if (!tok || !pem || !sig)
        goto out;
    char *pem_b64 = h_b64(pem, strlen(pem), 0), *sig_b64 = h_b64(sig, sig_len, 0);
    json_t *j = json_pack("{s:{s:s},s:s,s:n}", "publicKey", "content", pem_b64,
                          "signedEmailAddress", sig_b64, "certificateSigningRequest");
    char *body = dump(j);

    h_response r;
    post(s, "/api/v1/signingCert", body, tok, &r);
    CHECK(r.status == 201, "%s: v1 status %ld, want 201 (%.300s)", s->label, r.status,
          r.body ? r.body : "");
    char *ct = h_header(&r, "Content-Type");
    CHECK_STREQ(ct, "application/pem-certificate-chain", "v1 Content-Type");
    free(ct);
    char *sct = h_header(&r, "SCT");
    CHECK(sct == NULL, "%s: v1 without CT has no SCT header (got %s)", s->label, sct);
    free(sct);
    if (r.status == 201) {
        CHECK(r.body_len > 0 && r.body[r.body_len - 1] != '\n', "%s: v1 body has no trailing newline",
              s->label);
        STACK_OF(X509) *chain = h_chain_from_pem(r.body);
        check_leaf(s, "v1", chain, key, "dave@example.com", "dave-sub");
        /* exact text: the leaf's PEM, then the bundle's, joined by "\n" */
        const char *end = strstr(r.body, "-----END CERTIFICATE-----");
        size_t leaf_len = end ? (size_t)(end - r.body) + strlen("-----END CERTIFICATE-----") : 0;
        size_t cap = r.body_len + 64, len = leaf_len;
        char *want = calloc(1, cap);
        if (want && leaf_len)
            memcpy(want, r.body, leaf_len);
        size_t i;
        json_t *p;
        json_array_foreach(s->bundle_certs, i, p) {
            const char *t = json_string_value(p);
            size_t n = strlen(t);
            while (n && (t[n - 1] == '\n' || t[n - 1] == '\r'))
                n--;
            if (want && len + n + 2 < cap)
                len += (size_t)snprintf(want + len, cap - len, "\n%.*s", (int)n, t);
        }
        CHECK(want && strcmp(want, r.body) == 0,
              "%s: v1 body = leaf + chain PEMs joined by \\n, trimmed", s->label);
        free(want);
        sk_X509_pop_free(chain, X509_free);
    }
    h_response_free(&r);

    /* v1 reads the token only from the header */
    post(s, "/api/v1/signingCert", body, NULL, &r);
    CHECK(h_is_error(&r, 400, 3, MSG_TOKEN), "%s: v1 without Authorization -> 400 token",
          s->label);
    h_response_free(&r);
    free(body);

    /* v1 with neither key nor CSR */
    post(s, "/api/v1/signingCert", "{}", tok, &r);
    CHECK(h_is_error(&r, 400, 3, MSG_KEY_PARSE), "%s: v1 without a key -> 400 key parse",
          s->label);
    h_response_free(&r);
    free(pem_b64);
    free(sig_b64);
out:
    free(tok);
    free(pem);
    free(sig);
    EVP_PKEY_free(key);
}

static void test_bad_tokens(const suite *s)
{
    EVP_PKEY *key = h_key_new("P-256");
    if (!key)
        return;
    static const struct {
        const char *what, *query, *reason;
    } bad[] = {
        {"expired", "exp_in=-60", "token expired at"},
        {"nbf 10 min ahead", "nbf_in=600", "token not valid before"},
        {"wrong aud", "aud=not-sigstore", "does not contain"},
        {"iss not configured", "iss=http://127.0.0.1:1", "is not configured"},
        {"unknown kid", "kid=no-such-kid", "no-such-kid"},
        {"signed by an unpublished key", "key=other", "signature does not verify"},
        {"alg none", "alg=none", "alg \\\"none\\\""},
        {"HS256 keyed with the public PEM", "alg=HS256-PEM", "HS256"},
        {"tampered payload", "tamper=1", "token"},
        {"email_verified false", "email_verified=false", "email_verified is false"},
        {"email_verified absent", "email_verified=absent", "email_verified claim missing"},
        {"email_verified odd string", "email_verified=yes", "email_verified claim is neither"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *tok = token_q(bad[i].query);
        char *body = tok ? v2_key_body(tok, key, "dev@example.com") : NULL;
        expect_error_why(s, bad[i].what, "/api/v2/signingCert", body, NULL, MSG_TOKEN,
                         bad[i].reason);
        free(body);
        /* same token through the header */
        body = tok ? v2_key_body(NULL, key, "dev@example.com") : NULL;
        expect_error_why(s, bad[i].what, "/api/v2/signingCert", body, tok, MSG_TOKEN,
                         bad[i].reason);
        free(body);
        free(tok);
    }

    static const char *malformed[] = {"abc", "a.b", "a.b.c.d.e.f", "..", "a.b.c"};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        char *body = v2_key_body(malformed[i], key, "dev@example.com");
        char what[64];
        snprintf(what, sizeof what, "malformed token \"%s\"", malformed[i]);
        expect_error(s, what, "/api/v2/signingCert", body, NULL, MSG_TOKEN);
        free(body);
    }

    /* a correctly signed token of over 100 KiB */
    size_t pad_len = 100 * 1024;
    char *pad = malloc(pad_len + 1);
    if (pad) {
        memset(pad, 'x', pad_len);
        pad[pad_len] = 0;
        char *req = dump(json_pack("{s:{s:s}}", "claims", "padding", pad));
        char *big = req ? h_issuer_token_json(&g_iss, req) : NULL;
        CHECK(big && strlen(big) > pad_len, "%s: dev issuer minted a >100 KiB token", s->label);
        char *body = big ? v2_key_body(big, key, "dev@example.com") : NULL;
        expect_error(s, "oversize token", "/api/v2/signingCert", body, NULL, MSG_TOKEN);
        free(body);
        free(big);
        free(req);
        free(pad);
    }

    /* no token at all */
    char *body = v2_key_body(NULL, key, "dev@example.com");
    expect_error(s, "no token", "/api/v2/signingCert", body, NULL, MSG_TOKEN);
    free(body);
    EVP_PKEY_free(key);

    /* "\é" is an invalid escape, and jansson's message quotes the token up to the first byte of
     * the é only: the bad byte is shown as '?' and the answer is still a 400 naming the check
     * (it was a 500 "internal error": the message was not valid UTF-8, so not JSON). */
    expect_error_why(s, "an invalid escape before a UTF-8 character", "/api/v2/signingCert",
                     "{\"credentials\\\xc3\xa9\":1}", NULL,
                     "invalid request body: invalid JSON at line 1", "invalid escape near");
}

static void test_bad_keys_and_proofs(const suite *s)
{
    EVP_PKEY *p256 = h_key_new("P-256"), *other = h_key_new("P-256"),
             *rsa1024 = h_key_new("RSA-1024"), *p224 = h_key_new("P-224");
    char *tok = token_q("email=erin@example.com");
    if (!p256 || !other || !rsa1024 || !p224 || !tok)
        goto out;

    char *body = v2_key_body(tok, p256, "mallory@example.com");
    expect_error(s, "PoP over another email", "/api/v2/signingCert", body, NULL, MSG_SIG);
    free(body);

    body = v2_key_body(tok, rsa1024, "erin@example.com");
    expect_error(s, "RSA-1024", "/api/v2/signingCert", body, NULL, MSG_KEY_INSECURE);
    free(body);

    body = v2_key_body(tok, p224, "erin@example.com");
    h_response r;
    post(s, "/api/v2/signingCert", body, NULL, &r);
    CHECK(h_is_error(&r, 400, 3, MSG_KEY_INSECURE) || h_is_error(&r, 400, 3, MSG_KEY_PARSE),
          "%s: P-224 -> 400 insecure or could not be parsed", s->label);
    h_response_free(&r);
    free(body);

    char *csr = h_csr_pem(rsa1024, rsa1024, NULL);
    body = csr ? v2_csr_body(tok, csr) : NULL;
    expect_error(s, "CSR with RSA-1024", "/api/v2/signingCert", body, NULL, MSG_KEY_INSECURE);
    free(body);
    free(csr);

    body = dump(json_pack("{s:{s:s},s:{s:{s:s,s:s},s:s}}", "credentials", "oidcIdentityToken",
                          tok, "publicKeyRequest", "publicKey", "algorithm", "ECDSA", "content",
                          "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                          "proofOfPossession", "AAAA"));
    expect_error(s, "garbage public key", "/api/v2/signingCert", body, NULL, MSG_KEY_PARSE);
    free(body);

    body = dump(json_pack("{s:{s:s}}", "credentials", "oidcIdentityToken", tok));
    expect_error(s, "neither key nor CSR", "/api/v2/signingCert", body, NULL, MSG_KEY_PARSE);
    free(body);

    body = v2_csr_body(tok, "this is not a CSR");
    expect_error(s, "garbage CSR", "/api/v2/signingCert", body, NULL, MSG_CSR);
    free(body);

    csr = h_csr_pem(p256, other, NULL); /* self-signature by a different key */
    body = csr ? v2_csr_body(tok, csr) : NULL;
    expect_error(s, "CSR with a bad self-signature", "/api/v2/signingCert", body, NULL, MSG_SIG);
    free(body);
    free(csr);
out:
    free(tok);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(other);
    EVP_PKEY_free(rsa1024);
    EVP_PKEY_free(p224);
}

/* A client that declares a body over the limit and sends it without waiting for
 * 100-continue must still read the 413: the server reads and discards the declared bytes
 * before it answers. The client here pauses after the headers, so a server that answered
 * and closed at once would have reset the connection before the body went out (EPIPE or
 * ECONNRESET on the sends, or no answer to read). */
static void test_body_limit_raw(const suite *s)
{
    size_t n = (4u << 20) + 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->srv.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        CHECK(0, "%s: raw connection for the oversize body", s->label);
        if (fd >= 0)
            close(fd);
        return;
    }
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "POST /api/v2/signingCert HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      n);
    int ok = send(fd, head, (size_t)hl, MSG_NOSIGNAL) == hl;
    usleep(300 * 1000);
    static char chunk[65536];
    memset(chunk, 'x', sizeof chunk);
    size_t sent = 0;
    int send_errno = 0;
    while (ok && sent < n) {
        size_t k = n - sent < sizeof chunk ? n - sent : sizeof chunk;
        ssize_t w = send(fd, chunk, k, MSG_NOSIGNAL);
        if (w <= 0) {
            send_errno = errno;
            ok = 0;
            break;
        }
        sent += (size_t)w;
    }
    CHECK(ok, "%s: all %zu declared body bytes could be sent (stopped at %zu: %s)", s->label, n,
          sent, send_errno ? strerror(send_errno) : "-");
    char buf[1024];
    size_t len = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (len < sizeof buf - 1 && poll(&p, 1, 10000) > 0) {
        ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    CHECK(strncmp(buf, "HTTP/1.1 413", 12) == 0,
          "%s: a body declared over 4 MiB and sent whole is answered 413 (got \"%.40s\")",
          s->label, buf);
    close(fd);
}

static void test_body_limit(const suite *s)
{
    test_body_limit_raw(s);
    size_t n = (4u << 20) + 4096;
    char *big = malloc(n + 1);
    if (!big)
        return;
    memset(big, ' ', n);
    memcpy(big, "{\"pad\":\"", 8);
    memset(big + 8, 'x', n - 16);
    memcpy(big + n - 8, "\"}      ", 8);
    big[n] = 0;
    static const char *expect_variants[] = {NULL, "Expect:"};
    for (int v = 0; v < 2; v++) {
        char url[256];
        snprintf(url, sizeof url, "%s/api/v2/signingCert", s->srv.url);
        const char *headers[] = {"Content-Type: application/json", expect_variants[v], NULL};
        h_response r;
        h_http("POST", url, headers, big, n, &r);
        CHECK(r.status == 413 || r.status == 400,
              "%s: body over 4 MiB (%s) rejected with 413/400, got %ld (%s)", s->label,
              v ? "no Expect" : "Expect: 100-continue", r.status, r.curl_error);
        h_response_free(&r);
        get(s, "/healthz", &r);
        CHECK(r.status == 200, "%s: server still serves after an oversize body", s->label);
        h_response_free(&r);
    }
    free(big);
}

/* The server names its malloc at start, and it is the one the build links (CMake
 * FULCRUM_JEMALLOC: FULCRUM_BIN_ALLOCATOR). Under valgrind, valgrind's malloc replaces both. */
static void test_allocator(const suite *s)
{
    const char *want = getenv("FULCRUM_BIN_ALLOCATOR");
    if (h_valgrind() || !want || !*want)
        return;
    char *log = h_read_file(s->srv.proc.stderr_path, NULL);
    const char *line = log ? strstr(log, "memory allocator: ") : NULL;
    CHECK(line, "%s: the server logs its memory allocator", s->label);
    if (line) {
        line += strlen("memory allocator: ");
        CHECK(strncmp(line, want, strlen(want)) == 0, "%s: the server's malloc is %s, got: %.40s",
              s->label, want, line);
    }
    free(log);
}

static void run_suite(suite *s, const h_server_opts *opts, const char *fileca_cert)
{
    if (h_server_start(&s->srv, opts) != 0) {
        CHECK(0, "%s: server starts", s->label);
        return;
    }
    test_allocator(s);
    test_read_only_endpoints(s, fileca_cert);
    if (s->bundle) {
        test_good_v2(s);
        test_v1(s);
        test_bad_tokens(s);
        test_bad_keys_and_proofs(s);
    }
    test_body_limit(s);
    int code = h_proc_stop(&s->srv.proc, 10000);
    CHECK(code == 0, "%s: exit status %d after SIGTERM, want 0", s->label, code);
    json_decref(s->bundle_certs);
    sk_X509_pop_free(s->bundle, X509_free);
}

int main(void)
{
    if (h_init("signing-api") != 0)
        return 1;
    const char *fixtures = h_env("FULCRUM_FIXTURES_DIR");
    if (!fixtures || h_issuer_start(&g_iss) != 0) {
        CHECK(0, "dev issuer starts");
        h_finish(1);
        CHECK_MAIN_END();
    }

    suite eph = {.label = "ephemeralca"};
    h_server_opts eopts = {.ca = "ephemeralca", .issuer = &g_iss};
    run_suite(&eph, &eopts, NULL);

    char cert[4096], key[4096];
    snprintf(cert, sizeof cert, "%s/fulcio-fileca/ecdsa-cert.pem", fixtures);
    snprintf(key, sizeof key, "%s/fulcio-fileca/ecdsa-key.pem", fixtures);
    suite file = {.label = "fileca"};
    h_server_opts fopts = {.ca = "fileca",
                           .issuer = &g_iss,
                           .fileca_cert = cert,
                           .fileca_key = key,
                           .fileca_passwd = "password123"};
    run_suite(&file, &fopts, cert);

    char state[4200];
    snprintf(state, sizeof state, "%s/ct-state", h_tmpdir());
    const char *ct_args[] = {"--ct-log-url", "embedded", "--state-dir", state, NULL};
    suite ct = {.label = "ephemeralca+ct", .ct = 1};
    h_server_opts copts = {.ca = "ephemeralca", .issuer = &g_iss, .extra_args = ct_args};
    run_suite(&ct, &copts, NULL);

    int code = h_proc_stop(&g_iss.proc, 5000);
    CHECK(code == 0, "dev issuer exit status %d after SIGTERM, want 0", code);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
