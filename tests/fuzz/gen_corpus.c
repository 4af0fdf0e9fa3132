/*
 * tests/fuzz/gen_corpus.c: writes the seed corpora of the fuzz targets (run by hand; the files
 * are committed under tests/fuzz/corpus/<target>/):
 *
 *   build-fuzz/fulcrum-fuzz-gen-corpus tests/fuzz/corpus [TARGET...]
 *
 * (with TARGETs, only their directories are written).
 * Seeds are real inputs made with OpenSSL and the targets' fixed keys (the fixtures'
 * fulcio-fileca keys, see fuzz_jws.h and fuzz_common.h), plus a few broken ones. Keys made here
 * are fresh at every run, so regenerating changes the bytes of most seeds, not what they cover.
 * Existing files of the same names are overwritten; others are left alone.
 */
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/base64.h"
#include "config/config.h"
#include "config/config_internal.h"
#include "ct/sct.h"
#include "ct/sct_verify.h"
#include "ct/tbs_der.h"
#include "fuzz_common.h"
#include "fuzz_jws.h"
#include "unit/ct_testkit.h"

static const char *out_dir;
static int n_written;

/* ---- output ---- */

static char **only_targets; /* targets to write (NULL: all) */
static int n_only;

static void put(const char *target, const char *name, const void *data, size_t len)
{
    int wanted = !only_targets;
    for (int i = 0; i < n_only; i++)
        wanted |= strcmp(only_targets[i], target) == 0;
    if (!wanted)
        return;
    char path[4096];
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        fz_die("mkdir %s: %s", out_dir, strerror(errno));
    snprintf(path, sizeof path, "%s/%s", out_dir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        fz_die("mkdir %s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        fz_die("cannot write %s", path);
    n_written++;
}

static void put_str(const char *target, const char *name, const char *s)
{
    put(target, name, s, strlen(s));
}

/* printf into a malloc'd string */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    if (vasprintf(&s, f, ap) < 0)
        fz_die("vasprintf");
    va_end(ap);
    return s;
}

static char *b64(const unsigned char *d, size_t n)
{
    char *s = b64_encode(d, n);
    if (!s)
        fz_die("b64");
    return s;
}

static char *b64url(const unsigned char *d, size_t n)
{
    char *s = b64url_encode(d, n);
    if (!s)
        fz_die("b64url");
    return s;
}

static char *bio_text(BIO *b, size_t *len)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = malloc((size_t)n + 1);
    if (!s)
        fz_die("malloc");
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    if (len)
        *len = (size_t)n;
    BIO_free(b);
    return s;
}

/* ---- keys ---- */

static EVP_PKEY *key_ec(const char *curve) { return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve); }
static EVP_PKEY *key_rsa(size_t bits) { return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits); }
static EVP_PKEY *key_ed25519(void) { return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"); }

static EVP_PKEY *key_rsa_e3(size_t bits)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    BIGNUM *e = BN_new();
    EVP_PKEY *k = NULL;
    if (c && e && BN_set_word(e, 3) && EVP_PKEY_keygen_init(c) == 1 &&
        EVP_PKEY_CTX_set_rsa_keygen_bits(c, (int)bits) == 1 &&
        EVP_PKEY_CTX_set1_rsa_keygen_pubexp(c, e) == 1)
        EVP_PKEY_keygen(c, &k);
    BN_free(e);
    EVP_PKEY_CTX_free(c);
    if (!k)
        fz_die("RSA e=3");
    return k;
}

static char *pem_spki(EVP_PKEY *k, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, k);
    return bio_text(b, len);
}

/* "RSA PUBLIC KEY" (PKCS#1) */
static char *pem_pkcs1(EVP_PKEY *k, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    OSSL_ENCODER_CTX *c =
        OSSL_ENCODER_CTX_new_for_pkey(k, EVP_PKEY_PUBLIC_KEY, "PEM", "type-specific", NULL);
    if (!c || OSSL_ENCODER_to_bio(c, b) != 1)
        fz_die("PKCS#1 PEM");
    OSSL_ENCODER_CTX_free(c);
    return bio_text(b, len);
}

static unsigned char *der_spki(EVP_PKEY *k, size_t *len)
{
    unsigned char *d = NULL;
    int n = i2d_PUBKEY(k, &d);
    if (n <= 0)
        fz_die("i2d_PUBKEY");
    *len = (size_t)n;
    return d;
}

/* md NULL: pure (Ed25519) */
static unsigned char *sign(EVP_PKEY *k, const EVP_MD *md, const void *msg, size_t n,
                           size_t *siglen)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char *sig = NULL;
    if (!c || EVP_DigestSignInit(c, NULL, md, NULL, k) != 1 ||
        EVP_DigestSign(c, NULL, siglen, msg, n) != 1 || !(sig = malloc(*siglen)) ||
        EVP_DigestSign(c, sig, siglen, msg, n) != 1)
        fz_die("sign");
    EVP_MD_CTX_free(c);
    return sig;
}

/* DER ECDSA-Sig-Value -> r||s */
static unsigned char *der_to_p1363(const unsigned char *der, size_t n, size_t coord, size_t *len)
{
    const unsigned char *q = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)n);
    unsigned char *out = malloc(2 * coord);
    if (!es || !out || BN_bn2binpad(ECDSA_SIG_get0_r(es), out, (int)coord) != (int)coord ||
        BN_bn2binpad(ECDSA_SIG_get0_s(es), out + coord, (int)coord) != (int)coord)
        fz_die("P1363");
    ECDSA_SIG_free(es);
    *len = 2 * coord;
    return out;
}

/* ---- fuzz_public_key and fuzz_signing_request ---- */

#define POP_SUBJECT "fuzz@example.com"

/* 2-byte key length, key, proof */
static void put_key_seed(const char *name, const void *key, size_t keylen, const void *sig,
                         size_t siglen)
{
    unsigned char *b = malloc(2 + keylen + siglen);
    b[0] = (unsigned char)(keylen >> 8);
    b[1] = (unsigned char)keylen;
    memcpy(b + 2, key, keylen);
    if (siglen)
        memcpy(b + 2 + keylen, sig, siglen);
    put("fuzz_public_key", name, b, 2 + keylen + siglen);
    free(b);
}

static char *csr_pem(EVP_PKEY *k, const EVP_MD *md, int pss, int corrupt, const char *label);

static void gen_public_key_and_requests(void)
{
    struct {
        const char *name;
        EVP_PKEY *k;
        const EVP_MD *md;
        size_t coord;
    } keys[] = {
        {"p256", key_ec("P-256"), EVP_sha256(), 32}, {"p384", key_ec("P-384"), EVP_sha384(), 48},
        {"p521", key_ec("P-521"), EVP_sha512(), 66}, {"rsa2048", key_rsa(2048), EVP_sha256(), 0},
        {"ed25519", key_ed25519(), NULL, 0},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        size_t plen, dlen, slen;
        char *pem = pem_spki(keys[i].k, &plen);
        unsigned char *der = der_spki(keys[i].k, &dlen);
        unsigned char *sig = sign(keys[i].k, keys[i].md, POP_SUBJECT, strlen(POP_SUBJECT), &slen);
        char name[64];
        snprintf(name, sizeof name, "%s-pem", keys[i].name);
        put_key_seed(name, pem, plen, sig, slen);
        snprintf(name, sizeof name, "%s-der", keys[i].name);
        put_key_seed(name, der, dlen, sig, slen);
        if (keys[i].coord) {
            size_t rlen;
            unsigned char *raw = der_to_p1363(sig, slen, keys[i].coord, &rlen);
            snprintf(name, sizeof name, "%s-p1363", keys[i].name);
            put_key_seed(name, pem, plen, raw, rlen);
            free(raw);
        }
        if (strcmp(keys[i].name, "rsa2048") == 0) {
            size_t l1;
            char *p1 = pem_pkcs1(keys[i].k, &l1);
            put_key_seed("rsa2048-pkcs1", p1, l1, sig, slen);
            free(p1);
        }
        if (strcmp(keys[i].name, "p256") == 0) {
            /* signing requests around this key */
            char *pk = b64((unsigned char *)pem, plen), *proof = b64(sig, slen);
            char *proof_url = b64url(sig, slen);
            char *csr = csr_pem(keys[i].k, EVP_sha256(), 0, 0, NULL);
            char *csr64 = b64((unsigned char *)csr, strlen(csr));
            json_t *jstr = json_string(pem);
            char *jpem = json_dumps(jstr, JSON_ENCODE_ANY);
            json_decref(jstr);
            const char *tok = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL3gifQ.c2ln";
            char *s;
            s = fmt("{\"credentials\":{\"oidcIdentityToken\":\"%s\"},\"publicKeyRequest\":"
                    "{\"publicKey\":{\"algorithm\":\"ECDSA\",\"content\":%s},"
                    "\"proofOfPossession\":\"%s\"}}",
                    tok, jpem, proof);
            put_str("fuzz_signing_request", "v2-public-key.json", s);
            free(s);
            s = fmt("{\"credentials\":{\"oidc_identity_token\":\"%s\"},\"public_key_request\":"
                    "{\"public_key\":{\"algorithm\":2,\"content\":%s},"
                    "\"proof_of_possession\":\"%s\"},\"unknownField\":[1,{}]}",
                    tok, jpem, proof_url);
            put_str("fuzz_signing_request", "v2-snake-case-urlsafe.json", s);
            free(s);
            s = fmt("{\"credentials\":{\"oidcIdentityToken\":\"%s\"},"
                    "\"certificateSigningRequest\":\"%s\"}",
                    tok, csr64);
            put_str("fuzz_signing_request", "v2-csr.json", s);
            free(s);
            s = fmt("{\"publicKey\":{\"algorithm\":\"ecdsa\",\"content\":\"%s\"},"
                    "\"signedEmailAddress\":\"%s\"}",
                    pk, proof);
            put_str("fuzz_signing_request", "v1-public-key.json", s);
            free(s);
            s = fmt("{\"publicKey\":{\"content\":\"%s\"},\"certificate_signing_request\":\"%s\","
                    "\"signedEmailAddress\":null}",
                    pk, csr64);
            put_str("fuzz_signing_request", "v1-csr-and-key.json", s);
            free(s);
            s = fmt("{\"publicKeyRequest\":{\"publicKey\":{\"content\":\"x\"}},"
                    "\"certificateSigningRequest\":\"%s\"}",
                    csr64);
            put_str("fuzz_signing_request", "bad-both.json", s);
            free(s);
            free(pk);
            free(proof);
            free(proof_url);
            free(csr);
            free(csr64);
            free(jpem);
        }
        free(pem);
        OPENSSL_free(der);
        free(sig);
    }
    put_str("fuzz_signing_request", "bad-types.json",
            "{\"credentials\":{\"oidcIdentityToken\":7},\"publicKeyRequest\":[]}");
    put_str("fuzz_signing_request", "bad-duplicate.json",
            "{\"credentials\":{},\"credentials\":{}}");
    put_str("fuzz_signing_request", "bad-base64.json",
            "{\"publicKeyRequest\":{\"proofOfPossession\":\"a=b=\"},"
            "\"certificateSigningRequest\":\"%%%\"}");
    put_str("fuzz_signing_request", "nulls.json",
            "{\"credentials\":null,\"publicKeyRequest\":{\"publicKey\":null,"
            "\"proofOfPossession\":null},\"certificateSigningRequest\":null}");

    /* keys the policy refuses */
    struct {
        const char *name;
        EVP_PKEY *k;
    } bad[] = {{"bad-rsa1024", key_rsa(1024)},
               {"bad-secp224r1", key_ec("P-224")},
               {"bad-rsa2048-e3", key_rsa_e3(2048)},
               {"bad-secp256k1", key_ec("secp256k1")}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t plen;
        char *pem = pem_spki(bad[i].k, &plen);
        put_key_seed(bad[i].name, pem, plen, "sig", 3);
        free(pem);
        EVP_PKEY_free(bad[i].k);
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        EVP_PKEY_free(keys[i].k);
}

/* ---- fuzz_csr ---- */

static char *csr_pem(EVP_PKEY *k, const EVP_MD *md, int pss, int corrupt, const char *label)
{
    X509_REQ *r = X509_REQ_new();
    X509_NAME *n = X509_NAME_new();
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0);
    X509_REQ_set_subject_name(r, n);
    X509_NAME_free(n);
    X509_REQ_set_pubkey(r, k);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    if (EVP_DigestSignInit(c, &pc, md, NULL, k) != 1 ||
        (pss && (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) != 1 ||
                 EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, 32) != 1)) ||
        X509_REQ_sign_ctx(r, c) <= 0)
        fz_die("CSR sign");
    EVP_MD_CTX_free(c);
    if (corrupt) {
        const ASN1_BIT_STRING *sig = NULL;
        X509_REQ_get0_signature(r, &sig, NULL);
        ((ASN1_BIT_STRING *)sig)->data[sig->length / 2] ^= 0x01;
    }
    unsigned char *der = NULL;
    int dl = i2d_X509_REQ(r, &der);
    X509_REQ_free(r);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio(b, label ? label : "CERTIFICATE REQUEST", "", der, dl);
    OPENSSL_free(der);
    return bio_text(b, NULL);
}

static void gen_csr(void)
{
    EVP_PKEY *p256 = key_ec("P-256"), *p384 = key_ec("P-384"), *p521 = key_ec("P-521");
    EVP_PKEY *rsa = key_rsa(2048), *rsa3072 = key_rsa(3072), *ed = key_ed25519();
    EVP_PKEY *rsa1024 = key_rsa(1024);
    struct {
        const char *name;
        EVP_PKEY *k;
        const EVP_MD *md;
        int pss, corrupt;
        const char *label;
    } s[] = {
        {"p256-sha256.pem", p256, EVP_sha256(), 0, 0, NULL},
        {"p384-sha384.pem", p384, EVP_sha384(), 0, 0, NULL},
        {"p521-sha512.pem", p521, EVP_sha512(), 0, 0, NULL},
        {"p256-sha512.pem", p256, EVP_sha512(), 0, 0, NULL},
        {"rsa2048-sha256.pem", rsa, EVP_sha256(), 0, 0, NULL},
        {"rsa3072-sha384.pem", rsa3072, EVP_sha384(), 0, 0, NULL},
        {"ed25519.pem", ed, NULL, 0, 0, NULL},
        {"new-certificate-request.pem", p256, EVP_sha256(), 0, 0, "NEW CERTIFICATE REQUEST"},
        {"bad-sha1.pem", p256, EVP_sha1(), 0, 0, NULL},
        {"bad-rsa-pss.pem", rsa, EVP_sha256(), 1, 0, NULL},
        {"bad-signature.pem", p256, EVP_sha256(), 0, 1, NULL},
        {"bad-rsa1024.pem", rsa1024, EVP_sha256(), 0, 0, NULL},
        {"bad-label.pem", p256, EVP_sha256(), 0, 0, "CERTIFICATE"},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        char *pem = csr_pem(s[i].k, s[i].md, s[i].pss, s[i].corrupt, s[i].label);
        put_str("fuzz_csr", s[i].name, pem);
        if (strstr(s[i].name, "p256-sha256") || strstr(s[i].name, "rsa2048") ||
            strstr(s[i].name, "ed25519") || strstr(s[i].name, "rsa-pss")) {
            /* the target's DER form */
            BIO *b = BIO_new_mem_buf(pem, -1);
            char *nm = NULL, *hd = NULL;
            unsigned char *der = NULL;
            long dl = 0;
            if (!b || PEM_read_bio(b, &nm, &hd, &der, &dl) != 1)
                fz_die("CSR PEM");
            char name[64];
            snprintf(name, sizeof name, "%.*s.der", (int)(strlen(s[i].name) - 4), s[i].name);
            put("fuzz_csr", name, der, (size_t)dl);
            OPENSSL_free(nm);
            OPENSSL_free(hd);
            OPENSSL_free(der);
            BIO_free(b);
        }
        free(pem);
    }
    EVP_PKEY *keys[] = {p256, p384, p521, rsa, rsa3072, ed, rsa1024};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        EVP_PKEY_free(keys[i]);
}

/* ---- fuzz_jwt and fuzz_jwks ---- */

#define IAT "1767225000"
#define EXP "4102444800"

static void put_token(const char *name, const char *kid, const char *claims)
{
    struct fz_jws_key *k = fz_jws_key_by_kid(kid);
    char *t = fz_jws_sign(k, (const unsigned char *)claims, strlen(claims));
    if (!t)
        fz_die("token %s", name);
    put_str("fuzz_jwt", name, t);
    free(t);
}

static void gen_jwt(void)
{
    static const char gh[] =
        "{\"iss\":\"https://token.actions.githubusercontent.com\",\"jti\":\"4f3c6a5e\","
        "\"sub\":\"repo:sigstore/sigstore-js:ref:refs/heads/main\",\"aud\":\"sigstore\","
        "\"ref\":\"refs/heads/main\",\"ref_protected\":\"true\",\"ref_type\":\"branch\","
        "\"sha\":\"7c3f0e1a9b8d2c4e6f1a3b5c7d9e0f2a4b6c8d0e\",\"repository\":"
        "\"sigstore/sigstore-js\",\"repository_owner\":\"sigstore\",\"repository_owner_id\":"
        "\"71096353\",\"repository_visibility\":\"public\",\"repository_id\":\"495574555\","
        "\"run_id\":\"9876543210\",\"run_number\":\"1234\",\"run_attempt\":\"2\","
        "\"runner_environment\":\"github-hosted\",\"actor\":\"bdehamer\",\"workflow\":"
        "\"Release\",\"event_name\":\"push\",\"environment\":\"production\",\"workflow_ref\":"
        "\"sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main\","
        "\"workflow_sha\":\"7c3f0e1a9b8d2c4e6f1a3b5c7d9e0f2a4b6c8d0e\",\"job_workflow_ref\":"
        "\"slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@"
        "refs/tags/v2.0.0\",\"job_workflow_sha\":\"5a775b367a56d5bd118a224a811bba288150a563\","
        "\"iat\":" IAT ",\"nbf\":" IAT ",\"exp\":" EXP "}";
    static const char gl[] =
        "{\"namespace_id\":\"72\",\"namespace_path\":\"my-group\",\"project_id\":\"20\","
        "\"project_path\":\"my-group/my-project\",\"user_login\":\"sample-user\","
        "\"pipeline_id\":\"574\",\"pipeline_source\":\"push\",\"job_id\":\"302\",\"ref\":"
        "\"feature-branch-1\",\"ref_type\":\"branch\",\"ref_path\":\"refs/heads/feature-branch-1\","
        "\"environment\":\"test\",\"runner_id\":1,\"runner_environment\":\"self-hosted\","
        "\"sha\":\"714a629c0b401fdce83e847fc9589983fc6f46bc\",\"project_visibility\":\"public\","
        "\"ci_config_ref_uri\":\"gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main\","
        "\"ci_config_sha\":\"714a629c0b401fdce83e847fc9589983fc6f46bc\",\"iss\":"
        "\"https://gitlab.com\",\"iat\":" IAT ",\"exp\":" EXP ",\"sub\":"
        "\"project_path:my-group/my-project:ref_type:branch:ref:feature-branch-1\","
        "\"aud\":\"sigstore\"}";
    static const char email[] =
        "{\"iss\":\"https://oauth2.sigstore.dev/auth\",\"sub\":\"CgYxMjM0NTYSJmh0dHBzOi8v\","
        "\"aud\":\"sigstore\",\"email\":\"dev@example.com\",\"email_verified\":true,"
        "\"federated_claims\":{\"connector_id\":\"https://github.com/login/oauth\","
        "\"user_id\":\"123456\"},\"iat\":" IAT ",\"exp\":" EXP "}";
    static const char google[] =
        "{\"iss\":\"https://accounts.google.com\",\"azp\":\"sigstore\",\"aud\":[\"other\","
        "\"sigstore\"],\"sub\":\"110169484474386276334\",\"email\":\"dev@example.com\","
        "\"email_verified\":\"true\",\"iat\":" IAT ",\"nbf\":" IAT ",\"exp\":" EXP "}";
    static const char circle[] =
        "{\"iss\":\"https://oidc.circleci.com/org/01234567-89ab-cdef-0123-456789abcdef\","
        "\"aud\":\"sigstore\",\"sub\":\"org/0123/project/4567/user/89ab\","
        "\"oidc.circleci.com/project-id\":\"4567\",\"oidc.circleci.com/pipeline-id\":\"p-1\","
        "\"oidc.circleci.com/pipeline-definition-id\":\"pd-1\",\"oidc.circleci.com/workflow-id\":"
        "\"w-1\",\"oidc.circleci.com/job-id\":\"j-1\",\"oidc.circleci.com/ssh-rerun\":false,"
        "\"oidc.circleci.com/vcs-ref\":\"refs/heads/main\",\"oidc.circleci.com/vcs-origin\":"
        "\"github.com/acme/app\",\"iat\":" IAT ",\"exp\":" EXP "}";
    static const char buildkite[] =
        "{\"aud\":\"sigstore\",\"iss\":\"https://agent.buildkite.com\",\"sub\":"
        "\"organization:acme-inc:pipeline:super-duper-app:ref:refs/heads/main:commit:"
        "9f3182061f1e2cca4702c368cbc039b7dc9d4485:step:build\",\"iat\":" IAT ",\"exp\":" EXP ","
        "\"organization_slug\":\"acme-inc\",\"pipeline_slug\":\"super-duper-app\","
        "\"build_number\":1,\"build_branch\":\"main\",\"build_tag\":null,\"build_commit\":"
        "\"9f3182061f1e2cca4702c368cbc039b7dc9d4485\",\"build_source\":\"webhook\","
        "\"runner_environment\":\"buildkite-hosted\",\"job_id\":\"0184990a-477b\"}";
    static const char eks[] =
        "{\"aud\":[\"sigstore\"],\"exp\":" EXP ",\"iat\":" IAT ",\"iss\":"
        "\"https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE\","
        "\"kubernetes.io\":{\"namespace\":\"build-system\",\"pod\":{\"name\":\"signer-7d9f8\"},"
        "\"serviceaccount\":{\"name\":\"release-signer\"}},"
        "\"sub\":\"system:serviceaccount:build-system:release-signer\"}";
    static const char chainguard[] =
        "{\"iss\":\"https://issuer.enforce.dev\",\"aud\":\"sigstore\",\"sub\":"
        "\"3f4d0c2b9a/identity/9c1a\",\"iat\":" IAT ",\"exp\":" EXP "}";
    static const char codefresh[] =
        "{\"sub\":\"account:628a80b6:pipeline:65e5a53e:initiator:codefresh-user\","
        "\"account_id\":\"628a80b6\",\"account_name\":\"codefresh-account\",\"pipeline_id\":"
        "\"65e5a53e\",\"pipeline_name\":\"oidc-test/get-token\",\"workflow_id\":\"65e5c23d\","
        "\"scm_repo_url\":\"https://github.com/codefresh-io/fulcio-oidc\",\"scm_ref\":\"main\","
        "\"runner_environment\":\"hybrid\",\"aud\":\"sigstore\",\"exp\":" EXP ",\"iat\":" IAT ","
        "\"iss\":\"https://oidc.codefresh.io\",\"platform_url\":\"https://pre-prod.codefresh.io\"}";
    static const char spiffe[] =
        "{\"aud\":[\"sigstore\"],\"exp\":" EXP ",\"iat\":" IAT ",\"iss\":"
        "\"https://spiffe.fuzz.example\",\"sub\":\"spiffe://example.com/ns/prod/sa/builder\"}";
    static const char uri[] =
        "{\"aud\":\"sigstore\",\"exp\":" EXP ",\"iss\":\"https://uri.fuzz.example\",\"sub\":"
        "\"https://uri.fuzz.example/users/alice%20b?x=1#f\"}";
    static const char username[] =
        "{\"aud\":\"sigstore\",\"exp\":" EXP ",\"iss\":\"https://username.fuzz.example\","
        "\"sub\":\"alice\"}";
    static const char policy[] =
        "{\"aud\":\"sigstore\",\"exp\":" EXP ",\"iss\":\"https://email.fuzz.example\","
        "\"sub\":\"u1\",\"email\":\"dev@example.com\",\"email_verified\":true,"
        "\"federated_claims\":{\"connector_id\":\"https://accounts.google.com\"},"
        "\"groups.x\":{\"team\":\"core\"}}";
    static const char challenge[] =
        "{\"aud\":\"sigstore\",\"exp\":" EXP ",\"nbf\":1767225800,\"iss\":"
        "\"https://challenge.fuzz.example\",\"sub\":\"user-1\",\"preferred_email\":"
        "\"p@example.com\",\"email\":\"e@example.com\",\"email_verified\":true,"
        "\"a\":{\"b\":\"c\"}}";
    static const char meta[] =
        "{\"aud\":\"sigstore\",\"exp\":" EXP ",\"iss\":\"https://eu-1.meta.fuzz.example/tenant/"
        "t_9\",\"sub\":\"x\",\"email\":\"m@example.com\",\"email_verified\":true}";
    static const char legacy_gh[] =
        "{\"iss\":\"https://github.fuzz.example\",\"aud\":\"sigstore\",\"exp\":" EXP ","
        "\"sub\":\"repo:acme/app:ref:refs/heads/main\",\"job_workflow_ref\":"
        "\"acme/app/.github/workflows/release.yml@refs/heads/main\",\"sha\":\"abc\","
        "\"event_name\":\"push\",\"repository\":\"acme/app\",\"workflow\":\"Release\","
        "\"ref\":\"refs/heads/main\",\"job_workflow_sha\":\"def\",\"runner_environment\":"
        "\"github-hosted\",\"repository_id\":\"1\",\"repository_owner\":\"acme\","
        "\"repository_owner_id\":\"2\",\"repository_visibility\":\"private\",\"workflow_ref\":"
        "\"acme/app/.github/workflows/release.yml@refs/heads/main\",\"workflow_sha\":\"abc\","
        "\"run_id\":\"3\",\"run_attempt\":\"1\"}";

    put_token("github-ci-provider-rs256.jwt", "rsa", gh);
    put_token("gitlab-ci-provider-es384.jwt", "p384", gl);
    put_token("sigstore-dex-email-es256.jwt", "p256", email);
    put_token("google-email-rs512.jwt", "rsa512", google);
    put_token("circleci-meta.jwt", "p256", circle);
    put_token("eks-kubernetes-meta.jwt", "p256", eks);
    put_token("legacy-github.jwt", "p256", legacy_gh);
    put_str("fuzz_jwt", "claims-buildkite.json", buildkite);
    put_str("fuzz_jwt", "claims-chainguard.json", chainguard);
    put_str("fuzz_jwt", "claims-codefresh.json", codefresh);
    put_str("fuzz_jwt", "claims-spiffe.json", spiffe);
    put_str("fuzz_jwt", "claims-uri.json", uri);
    put_str("fuzz_jwt", "claims-username.json", username);
    put_str("fuzz_jwt", "claims-policy.json", policy);
    put_str("fuzz_jwt", "claims-challenge-nbf.json", challenge);
    put_str("fuzz_jwt", "claims-meta-email.json", meta);
    put_str("fuzz_jwt", "claims-gitlab.json", gl);

    /* broken */
    const char *none = "{\"alg\":\"none\"}", *hs = "{\"alg\":\"HS256\",\"kid\":\"p256\"}";
    char *h1 = b64url((const unsigned char *)none, strlen(none));
    char *h2 = b64url((const unsigned char *)hs, strlen(hs));
    char *p = b64url((const unsigned char *)email, strlen(email));
    char *t = fmt("%s.%s.c2lnbmF0dXJl", h1, p);
    put_str("fuzz_jwt", "bad-alg-none.jwt", t);
    free(t);
    t = fmt("%s.%s.c2lnbmF0dXJl", h2, p);
    put_str("fuzz_jwt", "bad-hs256.jwt", t);
    free(t);
    free(h1);
    free(h2);
    free(p);
    put_token("bad-expired.jwt", "p256",
              "{\"iss\":\"https://accounts.google.com\",\"aud\":\"sigstore\",\"exp\":1000,"
              "\"sub\":\"s\",\"email\":\"a@b.c\",\"email_verified\":true}");
}

static void gen_jwks(void)
{
    char *fixed = fz_jws_jwks_text();
    put_str("fuzz_jwks", "fixed.json", fixed);
    free(fixed);
    /* no alg and no use (inferred), one key only, kid missing */
    json_t *one = json_object(), *arr = json_array();
    json_array_append_new(arr, tk_jwk(fz_jws_keys[2].key, NULL, NULL, NULL));
    json_object_set_new(one, "keys", arr);
    char *s = json_dumps(one, JSON_COMPACT);
    put_str("fuzz_jwks", "p256-no-kid-no-alg.json", s);
    free(s);
    json_decref(one);
    /* an issuer's typical set: RSA keys with x5c/x5t, plus keys to skip */
    json_t *doc = json_object();
    arr = json_array();
    json_t *rsa = tk_jwk(fz_jws_keys[0].key, "2024-rsa", "RS256", "sig");
    json_object_set_new(rsa, "x5t", json_string("dGh1bWJwcmludA"));
    json_object_set_new(rsa, "x5c", json_pack("[s]", "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"));
    json_array_append_new(arr, rsa);
    json_array_append_new(arr, tk_jwk(fz_jws_keys[3].key, "p384", "ES384", NULL));
    json_array_append_new(arr, tk_jwk(fz_jws_keys[2].key, "enc", "ES256", "enc"));
    json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s}", "kty", "OKP", "crv", "Ed25519",
                                         "x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                                         "kid", "ed"));
    json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "kty", "oct", "k", "c2VjcmV0",
                                         "kid", "hmac"));
    json_object_set_new(doc, "keys", arr);
    s = json_dumps(doc, JSON_INDENT(2));
    put_str("fuzz_jwks", "issuer-mixed.json", s);
    free(s);
    json_decref(doc);
    /* bad values */
    put_str("fuzz_jwks", "bad-ec-point.json",
            "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"x\",\"x\":"
            "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"y\":"
            "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}");
    put_str("fuzz_jwks", "bad-rsa-small.json",
            "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"s\",\"alg\":\"RS384\",\"n\":\"AQAB\","
            "\"e\":\"AQAB\"}]}");
    put_str("fuzz_jwks", "bad-alg-mismatch.json",
            "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"alg\":\"ES256\",\"x\":\"AA\","
            "\"y\":\"AA\"},{\"kty\":\"RSA\",\"alg\":\"PS256\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}");
    put_str("fuzz_jwks", "bad-shapes.json", "{\"keys\":{\"kty\":\"RSA\"},\"x\":[]}");
}

/* ---- configs ---- */

static void copy_fixture(const char *target, const char *name, const char *rel)
{
    size_t n = 0;
    char *t = fz_fixture_text(rel, &n);
    put(target, name, t, n);
    free(t);
}

static void gen_configs(const char *src_dir)
{
    copy_fixture("fuzz_config_yaml", "fulcio-public-config.yaml", "fulcio-public-config.yaml");
    /* the same as JSON */
    size_t n = 0;
    char *yaml = fz_fixture_text("fulcio-public-config.yaml", &n);
    json_t *j = NULL;
    char err[512];
    if (config_yaml_to_json(yaml, n, &j, err, sizeof err) != 0)
        fz_die("%s", err);
    json_object_del(j, "define");
    char *s = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    put_str("fuzz_config_json", "fulcio-public-config.json", s);
    free(s);
    json_decref(j);
    free(yaml);
    char path[4096];
    const char *ex[] = {"config.json", "config.yaml"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/config/examples/%s", src_dir, ex[i]);
        char *t = fz_read_file(path, &n);
        if (!t)
            fz_die("cannot read %s", path);
        put(i ? "fuzz_config_yaml" : "fuzz_config_json", i ? "example.yaml" : "example.json", t,
            n);
        free(t);
    }
    put_str("fuzz_config_json", "types.json",
            "{\"OIDCIssuers\":{"
            "\"https://spiffe.example.com\":{\"IssuerURL\":\"https://spiffe.example.com\","
            "\"ClientID\":\"sigstore\",\"Type\":\"spiffe\",\"SPIFFETrustDomain\":"
            "\"spiffe://example.com\"},"
            "\"https://uri.example.com\":{\"IssuerURL\":\"https://uri.example.com\",\"ClientID\":"
            "\"sigstore\",\"Type\":\"uri\",\"SubjectDomain\":\"https://example.com\"},"
            "\"http://localhost:8080/dex\":{\"IssuerURL\":\"http://localhost:8080/dex\","
            "\"ClientID\":\"sigstore\",\"Type\":\"username\",\"SubjectDomain\":\"localhost\"},"
            "\"https://email.example.com\":{\"IssuerURL\":\"https://email.example.com\","
            "\"ClientID\":\"sigstore\",\"Type\":\"email\",\"IssuerClaim\":\"$.fc.cid\","
            "\"ChallengeClaim\":\"email\",\"SkipEmailVerification\":true,\"ClaimPolicy\":["
            "{\"Claim\":\"$['kubernetes.io'].namespace\",\"Equals\":\"build\"},"
            "{\"Claim\":\"sub\",\"Match\":\"^repo:acme/[^:]+:ref:refs/heads/main$|^x$\"},"
            "{\"Claim\":\"a.b\",\"Prefix\":\"p\"},{\"Claim\":\"email\",\"Suffix\":\".com\"}]}},"
            "\"MetaIssuers\":{\"https://*.ci.example.com/org/*\":{\"ClientID\":\"sigstore\","
            "\"Type\":\"ci-provider\",\"CIProvider\":\"acme-ci\"}},"
            "\"CIIssuerMetadata\":{\"acme-ci\":{\"DefaultTemplateValues\":{\"url\":"
            "\"https://ci.example.com\"},\"ExtensionTemplates\":{\"BuildSignerURI\":"
            "\"{{ .url }}/{{ .job }}\",\"SourceRepositoryRef\":\"{{if eq .t \\\"b\\\"}}heads/"
            "{{else}}tags/{{end}}{{ .ref }}\",\"RunnerEnvironment\":\"runner\"},"
            "\"SubjectAlternativeNameTemplate\":\"{{ .url }}/{{ index . \\\"a/b\\\" }}\"}}}");
    put_str("fuzz_config_json", "bad-meta-pattern.json",
            "{\"MetaIssuers\":{\"https://*.example.com*\":{\"ClientID\":\"s\",\"Type\":\"email\"}},"
            "\"OIDCIssuers\":{\"ftp://x\":{\"IssuerURL\":\"ftp://x\",\"Type\":\"nope\"}}}");
    put_str("fuzz_config_json", "bad-template.json",
            "{\"CIIssuerMetadata\":{\"x\":{\"ExtensionTemplates\":{\"BuildSignerURI\":"
            "\"{{ .url \"}}},\"OIDCIssuers\":{\"https://a.example\":{\"IssuerURL\":"
            "\"https://a.example\",\"ClientID\":\"s\",\"Type\":\"ci-provider\",\"CIProvider\":"
            "\"x\",\"ClaimPolicy\":[{\"Claim\":\"sub\",\"Match\":\"(\"}]}}}");
    put_str("fuzz_config_yaml", "anchors.yaml",
            "define:\n  - &t email\n  - &base {client-id: sigstore, type: *t}\n"
            "oidc-issuers:\n  https://a.example.com:\n    <<: *base\n"
            "    issuer-url: https://a.example.com\n"
            "    claim-policy:\n      - {claim: email, suffix: '@example.com'}\n"
            "      - claim: $.groups\n        in: [a, b]\n"
            "  https://b.example.com: {issuer-url: \"https://b.example.com\", client-id: x, "
            "type: kubernetes}\n"
            "meta-issuers:\n  'https://*.oidc.example.com/*':\n    client-id: sigstore\n"
            "    type: github-workflow\n"
            "ci-issuer-metadata:\n  acme:\n    default-template-values: {url: 'https://x'}\n"
            "    extension-templates:\n      build-signer-uri: \"{{ .url }}/{{ .job }}\"\n"
            "    subject-alternative-name-template: |\n      {{ .url }}\n");
    put_str("fuzz_config_yaml", "laughs.yaml",
            "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n");
    put_str("fuzz_config_yaml", "bad-alias.yaml",
            "oidc-issuers: *missing\n--- \nsecond: doc\n");
    put_str("fuzz_config_yaml", "scalars.yaml",
            "oidc-issuers:\n  ? https://c.example.com\n"
            "  : issuer-url: !!str https://c.example.com\n"
            "    client-id: 'sig''store'\n    type: \"email\"\n    skip-email-verification: yes\n"
            "    description: >-\n      folded\n      text\n    contact: ~\n");
}

/* ---- fuzz_ct_add_chain ---- */

static char *chain_body(X509 **certs, int n)
{
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        size_t len;
        unsigned char *der = ctk_der(certs[i], &len);
        char *s = b64(der, len);
        json_array_append_new(arr, json_string(s));
        free(s);
        OPENSSL_free(der);
    }
    json_t *doc = json_pack("{s:o}", "chain", arr);
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return s;
}

static void put_chain(const char *name, X509 **certs, int n)
{
    char *s = chain_body(certs, n);
    put_str("fuzz_ct_add_chain", name, s);
    free(s);
}

/* The target's DER form: the certificates one after the other. */
static void put_chain_der(const char *name, X509 **certs, int n)
{
    unsigned char *all = NULL;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t len;
        unsigned char *der = ctk_der(certs[i], &len);
        unsigned char *grown = realloc(all, total + len);
        if (!grown)
            fz_die("realloc");
        all = grown;
        memcpy(all + total, der, len);
        total += len;
        OPENSSL_free(der);
    }
    put("fuzz_ct_add_chain", name, all, total);
    free(all);
}

static void gen_add_chain(void)
{
    X509 *ecdsa = fz_fixture_cert("ecdsa"), *rsa = fz_fixture_cert("rsa4096");
    EVP_PKEY *ecdsa_key = fz_fixture_key("ecdsa"), *rsa_key = fz_fixture_key("rsa4096");
    STACK_OF(X509) *i3 = fz_fixture_chain("intermediate-3");
    EVP_PKEY *i3_key = fz_fixture_key("intermediate-3");
    EVP_PKEY *leaf_key = ctk_key();

    X509 *leaf = ctk_cert("leaf", leaf_key, ecdsa, ecdsa_key, 0, CTK_NO_POISON, 0);
    X509 *pre = ctk_cert("pre", leaf_key, ecdsa, ecdsa_key, 0, CTK_POISON, 0);
    X509 *v[6];
    v[0] = leaf, v[1] = ecdsa;
    put_chain("x509-ecdsa-root.json", v, 2);
    put_chain_der("x509-ecdsa-root.der", v, 2);
    put_chain("x509-root-omitted.json", v, 1);
    v[0] = pre;
    put_chain("precert-ecdsa-root.json", v, 2);
    put_chain_der("precert-ecdsa-root.der", v, 2);

    X509 *i3leaf = ctk_cert("leaf3", leaf_key, sk_X509_value(i3, 0), i3_key, 0, CTK_NO_POISON, 0);
    X509 *i3pre = ctk_cert("pre3", leaf_key, sk_X509_value(i3, 0), i3_key, 0, CTK_POISON, 0);
    v[0] = i3leaf;
    for (int i = 0; i < sk_X509_num(i3); i++)
        v[1 + i] = sk_X509_value(i3, i);
    put_chain("x509-three-intermediates.json", v, 1 + sk_X509_num(i3));
    v[0] = i3pre;
    put_chain("precert-three-intermediates.json", v, 1 + sk_X509_num(i3));
    put_chain_der("precert-three-intermediates.der", v, 1 + sk_X509_num(i3));

    X509 *rleaf = ctk_cert("rleaf", leaf_key, rsa, rsa_key, 0, CTK_NO_POISON, 0);
    v[0] = rleaf, v[1] = rsa;
    put_chain("x509-rsa4096-root.json", v, 2);
    put_chain_der("x509-rsa4096-root.der", v, 2);

    /* refused: a precertificate issued by a Precertificate Signing Certificate, a poison that
     * is not critical, a chain to no accepted root */
    EVP_PKEY *psc_key = ctk_key(), *other_key = ctk_key();
    X509 *psc = ctk_cert("psc", psc_key, ecdsa, ecdsa_key, 1, CTK_NO_POISON, 1);
    X509 *psc_pre = ctk_cert("pre-psc", leaf_key, psc, psc_key, 0, CTK_POISON, 0);
    v[0] = psc_pre, v[1] = psc, v[2] = ecdsa;
    put_chain("bad-precert-psc.json", v, 3);
    put_chain_der("bad-precert-psc.der", v, 3);
    X509 *noncrit = ctk_cert("pre-nc", leaf_key, ecdsa, ecdsa_key, 0, CTK_POISON_NONCRITICAL, 0);
    v[0] = noncrit, v[1] = ecdsa;
    put_chain("bad-poison-noncritical.json", v, 2);
    X509 *other_root = ctk_cert("other", other_key, NULL, NULL, 1, CTK_NO_POISON, 0);
    X509 *oleaf = ctk_cert("oleaf", leaf_key, other_root, other_key, 0, CTK_NO_POISON, 0);
    v[0] = oleaf, v[1] = other_root;
    put_chain("bad-unknown-root.json", v, 2);
    put_str("fuzz_ct_add_chain", "bad-not-base64.json", "{\"chain\":[\"@@@\", 7]}");
    put_str("fuzz_ct_add_chain", "bad-empty.json", "{\"chain\":[]}");
    put_str("fuzz_ct_add_chain", "bad-not-object.json", "[\"chain\"]");

    X509 *all[] = {leaf, pre, i3leaf, i3pre, rleaf, psc, psc_pre, noncrit, other_root, oleaf,
                   ecdsa, rsa};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        X509_free(all[i]);
    sk_X509_pop_free(i3, X509_free);
    EVP_PKEY *keys[] = {ecdsa_key, rsa_key, i3_key, leaf_key, psc_key, other_key};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        EVP_PKEY_free(keys[i]);
}

/* ---- fuzz_ct_add_chain_answer ---- */

/* The AddChainResponse of an SCT as a log writes it, with `extensions` replaced by ext_json
 * (a JSON value, or NULL to leave the member out). */
static void put_answer(const char *name, const unsigned char *log_id, uint64_t ts,
                       const char *ext_json, const unsigned char *ds, size_t ds_len)
{
    char *id = b64(log_id, 32), *sig = b64(ds, ds_len);
    char *ext = ext_json ? fmt(",\"extensions\":%s", ext_json) : fmt("%s", "");
    char *s = fmt("{\"sct_version\":0,\"id\":\"%s\",\"timestamp\":%llu%s,\"signature\":\"%s\"}",
                  id, (unsigned long long)ts, ext, sig);
    put_str("fuzz_ct_add_chain_answer", name, s);
    free(s);
    free(ext);
    free(sig);
    free(id);
}

/* sct: a real SCT (fuzz_sct_list's seed), whose JSON is what a log answers. */
static void gen_add_chain_answer(const unsigned char *sct, size_t sct_len)
{
    const char *t = "fuzz_ct_add_chain_answer";
    char *real = ctlog_sct_json(sct, sct_len);
    if (!real)
        fz_die("ctlog_sct_json");
    put_str(t, "valid-log-answer.json", real);
    free(real);
    ctlog_sct_fields f;
    if (ctlog_sct_parse(sct, sct_len, &f) != 0)
        fz_die("ctlog_sct_parse");
    put_answer("valid-extensions.json", f.log_id, f.timestamp, "\"AQID\"", f.ds, f.ds_len);
    put_answer("valid-no-extensions-member.json", f.log_id, f.timestamp, NULL, f.ds, f.ds_len);
    put_answer("valid-largest-timestamp.json", f.log_id, UINT64_C(9223372036854775807), "\"\"",
               f.ds, f.ds_len);
    static const unsigned char rsa_ds[] = {4, 1, 0, 3, 0xaa, 0xbb, 0xcc};
    static const unsigned char trailing_ds[] = {4, 3, 0, 1, 0xaa, 0xbb, 0xcc};
    static const unsigned char unknown_ds[] = {5, 3, 0, 2, 0xaa, 0xbb};
    static const unsigned char minimal_ds[] = {4, 3, 0, 0};
    put_answer("valid-rsa-ds.json", f.log_id, 1, "\"\"", rsa_ds, sizeof rsa_ds);
    put_answer("valid-ds-trailing-bytes.json", f.log_id, 1, "\"\"", trailing_ds,
               sizeof trailing_ds);
    put_answer("valid-ds-unknown-hash.json", f.log_id, 1, "\"\"", unknown_ds, sizeof unknown_ds);
    put_answer("valid-ds-minimal.json", f.log_id, 0, "\"\"", minimal_ds, sizeof minimal_ds);
    /* URL-safe, unpadded id, members in another order, one unknown */
    char *id = b64url(f.log_id, 32), *sig = b64(f.ds, f.ds_len);
    char *s = fmt("{\"signature\":\"%s\",\"x\":[null],\"timestamp\":7,\"id\":\"%s\","
                  "\"sct_version\":0}",
                  sig, id);
    put_str(t, "valid-url-safe-id.json", s);
    free(s);

    put_str(t, "bad-not-json.html", "<html><body>502 Bad Gateway</body></html>");
    put_str(t, "bad-array.json", "[{\"sct_version\":0}]");
    s = fmt("{\"sct_version\":1,\"id\":\"%s\",\"timestamp\":1,\"signature\":\"%s\"}", id, sig);
    put_str(t, "bad-version.json", s);
    free(s);
    s = fmt("{\"sct_version\":0,\"id\":\"%s\",\"timestamp\":-1,\"signature\":\"%s\"}", id, sig);
    put_str(t, "bad-timestamp-negative.json", s);
    free(s);
    s = fmt("{\"sct_version\":0,\"id\":\"%s\",\"timestamp\":1.5,\"signature\":\"%s\"}", id, sig);
    put_str(t, "bad-timestamp-real.json", s);
    free(s);
    char *short_id = b64(f.log_id, 31);
    s = fmt("{\"sct_version\":0,\"id\":\"%s\",\"timestamp\":1,\"signature\":\"%s\"}", short_id,
            sig);
    put_str(t, "bad-id-31-bytes.json", s);
    free(s);
    free(short_id);
    s = fmt("{\"sct_version\":0,\"id\":\"%s\",\"timestamp\":1,\"extensions\":7,"
            "\"signature\":\"%s\"}",
            id, sig);
    put_str(t, "bad-extensions.json", s);
    free(s);
    s = fmt("{\"sct_version\":0,\"id\":\"%s\",\"timestamp\":1,\"signature\":\"BAMA\"}", id);
    put_str(t, "bad-signature-short.json", s);
    free(s);
    free(id);
    free(sig);
}

/* ---- fuzz_discovery ---- */

/* The configured issuer of fuzz_discovery.c. */
#define DISCOVERY_ISSUER "https://oauth2.sigstore.dev/auth"

static void put_discovery(const char *name, const char *issuer, const char *jwks_member)
{
    char *s = fmt("{\"issuer\":\"%s\",%s\"authorization_endpoint\":\"%s/auth\","
                  "\"token_endpoint\":\"%s/token\",\"response_types_supported\":[\"code\"],"
                  "\"id_token_signing_alg_values_supported\":[\"RS256\"]}",
                  issuer, jwks_member, issuer, issuer);
    put_str("fuzz_discovery", name, s);
    free(s);
}

static void gen_discovery(void)
{
    const char *t = "fuzz_discovery";
    put_discovery("valid-sigstore.json", DISCOVERY_ISSUER,
                  "\"jwks_uri\":\"" DISCOVERY_ISSUER "/keys\",");
    put_discovery("valid-other-host-port.json", DISCOVERY_ISSUER,
                  "\"jwks_uri\":\"https://keys.example.net:8443/a/b?c=d#e\",");
    put_discovery("valid-loopback-v4.json", DISCOVERY_ISSUER,
                  "\"jwks_uri\":\"http://127.0.0.1:5556/keys\",");
    put_discovery("valid-loopback-v6.json", DISCOVERY_ISSUER,
                  "\"jwks_uri\":\"http://[::1]:8080/keys\",");
    put_discovery("valid-localhost.json", DISCOVERY_ISSUER,
                  "\"jwks_uri\":\"http://LocalHost/keys\",");
    put_str(t, "valid-escaped.json",
            "{\"jwks_uri\":\"https:\\/\\/oauth2.sigstore.dev\\/auth\\/k\\u00e9ys\","
            "\"issuer\":\"https:\\/\\/oauth2.sigstore.dev\\/auth\"}");
    put_str(t, "bad-not-json.html", "<html><body>404 Not Found</body></html>");
    put_str(t, "bad-array.json", "[\"" DISCOVERY_ISSUER "\"]");
    put_discovery("bad-issuer-other.json", "https://accounts.example.com",
                  "\"jwks_uri\":\"https://accounts.example.com/keys\",");
    put_discovery("bad-issuer-trailing-slash.json", DISCOVERY_ISSUER "/",
                  "\"jwks_uri\":\"" DISCOVERY_ISSUER "/keys\",");
    put_str(t, "bad-issuer-missing.json", "{\"jwks_uri\":\"" DISCOVERY_ISSUER "/keys\"}");
    put_discovery("bad-no-jwks-uri.json", DISCOVERY_ISSUER, "");
    put_discovery("bad-jwks-uri-empty.json", DISCOVERY_ISSUER, "\"jwks_uri\":\"\",");
    put_discovery("bad-jwks-uri-http.json", DISCOVERY_ISSUER,
                  "\"jwks_uri\":\"http://keys.example.com/keys\",");
    put_discovery("bad-jwks-uri-127-prefix.json", DISCOVERY_ISSUER,
                  "\"jwks_uri\":\"http://127.0.0.1.example.com/keys\",");
    put_discovery("bad-jwks-uri-ftp.json", DISCOVERY_ISSUER,
                  "\"jwks_uri\":\"ftp://keys.example.com/keys\",");
    put_discovery("bad-jwks-uri-relative.json", DISCOVERY_ISSUER, "\"jwks_uri\":\"/keys\",");
}

/* ---- fuzz_sct_list and fuzz_tbs_der ---- */

static void put_der(const char *target, const char *name, X509 *x)
{
    size_t n;
    unsigned char *der = ctk_der(x, &n);
    put(target, name, der, n);
    OPENSSL_free(der);
}

/* An SCT by the log key for the precertificate (RFC 6962 §3.2 over the poison-free TBS). */
static unsigned char *make_sct(X509 *precert, X509 *issuer, EVP_PKEY *log_key, uint64_t ts,
                               size_t *sct_len)
{
    char why[256];
    size_t tlen, cut_len, spki_len, ilen;
    unsigned char *tbs = ct_tbs_der(precert, &tlen);
    unsigned char *cut =
        tbs ? ct_tbs_der_without_ext(tbs, tlen, NID_ct_precert_poison, &cut_len, why, sizeof why)
            : NULL;
    if (!cut)
        fz_die("TBS: %s", why);
    EVP_PKEY *ipub = X509_get0_pubkey(issuer);
    unsigned char *ispki = der_spki(ipub, &ilen);
    unsigned char *signed_entry = malloc(32 + 3 + cut_len);
    SHA256(ispki, ilen, signed_entry);
    signed_entry[32] = (unsigned char)(cut_len >> 16);
    signed_entry[33] = (unsigned char)(cut_len >> 8);
    signed_entry[34] = (unsigned char)cut_len;
    memcpy(signed_entry + 35, cut, cut_len);
    size_t leaf_len;
    unsigned char *leaf =
        ctlog_leaf_input(ts, CT_ENTRY_PRECERT, signed_entry, 35 + cut_len, &leaf_len);
    size_t siglen;
    unsigned char *sig = sign(log_key, EVP_sha256(), leaf, leaf_len, &siglen);
    unsigned char ds[CTLOG_DS_MAX] = {4, 3, (unsigned char)(siglen >> 8), (unsigned char)siglen};
    memcpy(ds + 4, sig, siglen);
    unsigned char *spki = der_spki(log_key, &spki_len), log_id[32];
    SHA256(spki, spki_len, log_id);
    unsigned char *sct = ctlog_sct_serialize(log_id, ts, ds, 4 + siglen, sct_len);
    free(tbs);
    free(cut);
    OPENSSL_free(ispki);
    free(signed_entry);
    free(leaf);
    free(sig);
    OPENSSL_free(spki);
    return sct;
}

static unsigned char *sct_list(const unsigned char *const *scts, const size_t *lens, size_t n,
                               size_t *out_len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += 2 + lens[i];
    unsigned char *b = malloc(2 + total), *o = b;
    *o++ = (unsigned char)(total >> 8);
    *o++ = (unsigned char)total;
    for (size_t i = 0; i < n; i++) {
        *o++ = (unsigned char)(lens[i] >> 8);
        *o++ = (unsigned char)lens[i];
        memcpy(o, scts[i], lens[i]);
        o += lens[i];
    }
    *out_len = 2 + total;
    return b;
}

static void gen_sct_and_tbs(void)
{
    X509 *issuer = fz_fixture_cert(FZ_SCT_ISSUER), *subject = fz_fixture_cert(FZ_SCT_SUBJECT);
    EVP_PKEY *issuer_key = fz_fixture_key(FZ_SCT_ISSUER), *log_key = fz_fixture_key(FZ_SCT_LOG);
    EVP_PKEY *subject_key = X509_get_pubkey(subject);
    X509 *precert = fz_sct_cert(issuer, issuer_key, subject_key, NULL, 0);
    size_t l1, l2;
    uint64_t ts = FZ_NOW_MS - 3600 * 1000;
    unsigned char *sct = make_sct(precert, issuer, log_key, ts, &l1);
    unsigned char *sct2 = make_sct(precert, issuer, log_key, ts + 1, &l2);

    /* the seed must verify, or the target's success path never runs */
    char why[256];
    ct_sct_verifier *v = ct_sct_verifier_new(log_key, why, sizeof why);
    if (!v || ct_sct_verify(v, sct, l1, precert, issuer, FZ_NOW_MS, why, sizeof why) != 0)
        fz_die("the seed SCT does not verify: %s", why);
    ct_sct_verifier_free(v);

    const unsigned char *one[] = {sct}, *two[] = {sct, sct2};
    size_t one_len[] = {l1}, two_len[] = {l1, l2}, n;
    unsigned char *list = sct_list(one, one_len, 1, &n);
    put("fuzz_sct_list", "list-one-valid.bin", list, n);
    X509 *final = fz_sct_cert(issuer, issuer_key, subject_key, list, n);
    put_der("fuzz_tbs_der", "final-cert-sct-list.der", final);
    X509_free(final);
    free(list);
    list = sct_list(two, two_len, 2, &n);
    put("fuzz_sct_list", "list-two-valid.bin", list, n);
    free(list);
    put("fuzz_sct_list", "sct-bare.bin", sct, l1);
    gen_add_chain_answer(sct, l1);
    /* the same SCT with 100 bytes of extensions (signature then invalid), and a list whose
     * length crosses DER's one-byte length form in the certificate */
    unsigned char *ext = malloc(l1 + 100);
    memcpy(ext, sct, 41);
    ext[41] = 0, ext[42] = 100;
    memset(ext + 43, 0xab, 100);
    memcpy(ext + 143, sct + 43, l1 - 43);
    const unsigned char *e1[] = {ext};
    size_t e1_len[] = {l1 + 100};
    list = sct_list(e1, e1_len, 1, &n);
    put("fuzz_sct_list", "list-sct-with-extensions.bin", list, n);
    free(list);
    free(ext);
    unsigned char v2[] = {0x01, 0x00};
    put("fuzz_sct_list", "bad-version.bin", v2, sizeof v2);
    put_der("fuzz_tbs_der", "precert-poison-last.der", precert);

    /* tbs_der: the poison in the middle, the only extension, twice; fixture certificates */
    EVP_PKEY *k = ctk_key();
    X509 *mid = ctk_cert("mid", k, issuer, issuer_key, 0, CTK_POISON, 0);
    put_der("fuzz_tbs_der", "precert-poison-middle.der", mid);
    X509 *only = X509_new();
    X509_set_version(only, 2);
    X509_set_issuer_name(only, X509_get_subject_name(issuer));
    X509_set_pubkey(only, k);
    ASN1_TIME_set(X509_getm_notBefore(only), FZ_NOW);
    ASN1_TIME_set(X509_getm_notAfter(only), FZ_NOW + 600);
    static const unsigned char null_der[] = {0x05, 0x00};
    fz_add_ext_raw(only, NID_ct_precert_poison, 1, null_der, 2);
    X509_sign(only, issuer_key, EVP_sha256());
    put_der("fuzz_tbs_der", "precert-poison-only.der", only);
    fz_add_ext_raw(only, NID_ct_precert_poison, 1, null_der, 2);
    X509_sign(only, issuer_key, EVP_sha256());
    put_der("fuzz_tbs_der", "precert-poison-twice.der", only);
    X509 *rsa = fz_fixture_cert("rsa4096");
    put_der("fuzz_tbs_der", "fixture-rsa4096.der", rsa);
    X509_free(rsa);

    X509_free(mid);
    X509_free(only);
    EVP_PKEY_free(k);
    free(sct);
    free(sct2);
    X509_free(precert);
    X509_free(issuer);
    X509_free(subject);
    EVP_PKEY_free(issuer_key);
    EVP_PKEY_free(log_key);
    EVP_PKEY_free(subject_key);
}

/* ---- fuzz_go_template ---- */

static void put_tmpl(const char *name, const char *tmpl, const char *claims)
{
    size_t a = strlen(tmpl), b = claims ? strlen(claims) : 0;
    char *buf = malloc(a + 1 + b);
    memcpy(buf, tmpl, a);
    buf[a] = '\0';
    if (claims)
        memcpy(buf + a + 1, claims, b);
    put("fuzz_go_template", name, buf, claims ? a + 1 + b : a);
    free(buf);
}

static void gen_go_template(void)
{
    put_tmpl("github-run.tmpl",
             "{{ .url }}/{{ .repository }}/actions/runs/{{ .run_id }}/attempts/{{ .run_attempt }}",
             "{\"repository\":\"acme/app\",\"run_id\":\"9\",\"run_attempt\":\"1\"}");
    put_tmpl("gitlab-ref.tmpl", "refs/{{if eq .ref_type \"branch\"}}heads/{{ else }}tags/{{end}}"
                                "{{ .ref }}",
             "{\"ref_type\":\"tag\",\"ref\":\"v1.0\"}");
    put_tmpl("circleci-index.tmpl",
             "{{.api_url}}/projects/{{(index . \"oidc.circleci.com/project-id\")}}/x",
             "{\"api_url\":\"https://circleci.com/api/v2\",\"oidc.circleci.com/project-id\":7}");
    put_tmpl("circleci-if.tmpl",
             "{{if eq (index . \"oidc.circleci.com/ssh-rerun\") \"true\"}}ssh-rerun{{ else }}\"\""
             "{{end}}",
             "{\"oidc.circleci.com/ssh-rerun\":true}");
    put_tmpl("values.tmpl", "{{ .n }} {{ .f }} {{ .b }} {{ .o }} {{ .a }} {{- \" trim \" -}}",
             NULL);
    put_tmpl("plain-claim-name", "repository", NULL);
    put_tmpl("functions.tmpl",
             "{{/* c */}}{{ .ref | len }} {{ if and (ne .ref_type \"tag\") (not false) }}"
             "{{ $.url }}{{ else if eq .a \"b\" }}x{{ else }}y{{ end }} "
             "{{ (index . \"oidc.circleci.com/project-id\") | len }} {{ `raw` }} "
             "{{ or \"\" \"z\" }}",
             NULL);
    put_tmpl("bad-range.tmpl", "{{ range .a }}{{ end }}{{ printf \"%s\" .x }}", NULL);
    put_tmpl("bad-unclosed.tmpl", "{{ .url ", NULL);
    put_tmpl("bad-missing-key.tmpl", "{{ .nope }}", "{\"a\":null}");
    put_tmpl("bad-index.tmpl", "{{ index . 1 2 }}{{ eq }}{{ end }}", NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <tests/fuzz/corpus> [target...]\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    if (argc > 2) {
        only_targets = argv + 2;
        n_only = argc - 2;
    }
    /* the repository: two levels above tests/fuzz/corpus */
    char src[4096];
    snprintf(src, sizeof src, "%s/../../..", out_dir);
    fz_log_init();
    fz_jws_load();
    gen_public_key_and_requests();
    gen_csr();
    gen_jwt();
    gen_jwks();
    gen_configs(src);
    gen_add_chain();
    gen_sct_and_tbs();
    gen_go_template();
    gen_discovery();
    for (size_t i = 0; i < FZ_JWS_NKEYS; i++)
        EVP_PKEY_free(fz_jws_keys[i].key);
    printf("%d seed files written under %s\n", n_written, out_dir);
    return 0;
}
