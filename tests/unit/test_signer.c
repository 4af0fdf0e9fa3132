/* hsm/signer.h: the retrying verifying sign call, algorithms, ephemeralca and fileca. */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hsm/signer.h"
#include "unit/check.h"

#define PASSWORD "password123"

static char tmpdir[512];

/* ---- helpers ---- */

static const char *fixture(const char *name, const char *suffix)
{
    static char paths[4][1024];
    static int next;
    const char *dir = getenv("FULCRUM_FIXTURES_DIR");
    char *p = paths[next++ % 4];
    snprintf(p, 1024, "%s/fulcio-fileca/%s-%s.pem", dir ? dir : "tests/fixtures", name, suffix);
    return p;
}

static const char *tmpfile_path(const char *name)
{
    static char paths[4][1024];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 1024, "%s/%s", tmpdir, name);
    return p;
}

static int verify_with(EVP_PKEY *pub, int md_nid, const unsigned char *msg, size_t msglen,
                       const unsigned char *sig, size_t siglen)
{
    const EVP_MD *md = md_nid == NID_undef ? NULL : EVP_get_digestbynid(md_nid);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, md, NULL, pub) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, msg, msglen) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* Signs msg through s and checks the result against the issuing certificate's key. */
static int sign_and_check(signer *s, const char *msg, char *why, size_t whylen)
{
    unsigned char sig[1024];
    size_t siglen = s->max_sig_len;
    if (siglen > sizeof sig)
        return 0;
    if (signer_sign(s, (const unsigned char *)msg, strlen(msg), sig, &siglen, why, whylen) != 0)
        return 0;
    X509 *issuing = signer_issuing_cert(s);
    return issuing && siglen <= s->max_sig_len &&
           verify_with(X509_get0_pubkey(issuing), s->md_nid, (const unsigned char *)msg,
                       strlen(msg), sig, siglen) &&
           !verify_with(X509_get0_pubkey(issuing), s->md_nid, (const unsigned char *)"other", 5,
                        sig, siglen);
}

static int alg_der_is(const X509_ALGOR *alg, const char *hex)
{
    unsigned char *der = NULL;
    int len = i2d_X509_ALGOR(alg, &der);
    char buf[128] = "";
    for (int i = 0; i < len && i < 60; i++)
        snprintf(buf + 2 * i, 3, "%02x", der[i]);
    OPENSSL_free(der);
    if (strcmp(buf, hex) != 0)
        fprintf(stderr, "  sig_alg DER %s, want %s\n", buf, hex);
    return strcmp(buf, hex) == 0;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return 0;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    (void)n;
    fclose(f);
    return buf;
}

static EVP_PKEY *gen_key(const char *type, const char *arg)
{
    if (strcmp(type, "EC") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", arg);
    if (strcmp(type, "RSA") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)atoi(arg));
    return EVP_PKEY_Q_keygen(NULL, NULL, type);
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = ext && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* A CA certificate for key, signed by issuer_key (self-signed when issuer is NULL). */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                       int ca, const char *eku)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1000 + (long)strlen(cn));
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509 *iss = issuer ? issuer : x;
    int ok = add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign") &&
             add_ext(x, iss, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE") &&
             (!eku || add_ext(x, iss, NID_ext_key_usage, eku));
    const EVP_MD *md = EVP_PKEY_get_base_id(issuer_key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
    ok = ok && X509_sign(x, issuer_key, md) > 0;
    X509_NAME_free(name);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int write_cert(const char *path, X509 *x, X509 *x2)
{
    BIO *b = BIO_new_file(path, "w");
    int ok = b && PEM_write_bio_X509(b, x) && (!x2 || PEM_write_bio_X509(b, x2));
    BIO_free(b);
    return ok;
}

/* kind: "pkcs8" plain, "pkcs8-enc" PBES2, "legacy-enc" traditional with DEK-Info. */
static int write_key(const char *path, EVP_PKEY *key, const char *kind, const char *pass)
{
    BIO *b = BIO_new_file(path, "w");
    int ok = 0;
    if (b && strcmp(kind, "pkcs8") == 0)
        ok = PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
    else if (b && strcmp(kind, "pkcs8-enc") == 0)
        ok = PEM_write_bio_PKCS8PrivateKey(b, key, EVP_aes_256_cbc(), pass, (int)strlen(pass),
                                           NULL, NULL);
    else if (b)
        ok = PEM_write_bio_PrivateKey_traditional(b, key, EVP_aes_256_cbc(),
                                                  (unsigned char *)pass, (int)strlen(pass), NULL,
                                                  NULL);
    BIO_free(b);
    return ok;
}

/* ---- signer_init_algorithm ---- */

static void test_init_algorithm(void)
{
    static const struct {
        const char *type, *arg;
        int md_nid;
        size_t max;
        const char *alg_hex;
    } cases[] = {
        {"EC", "P-256", NID_sha256, 72, "300a06082a8648ce3d040302"},
        {"EC", "P-384", NID_sha384, 104, "300a06082a8648ce3d040303"},
        {"EC", "P-521", NID_sha512, 139, "300a06082a8648ce3d040304"},
        {"RSA", "2048", NID_sha256, 256, "300d06092a864886f70d01010b0500"},
        {"ED25519", NULL, NID_undef, 64, "300506032b6570"},
    };
    char why[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        signer s = {0};
        s.public_key = gen_key(cases[i].type, cases[i].arg);
        CHECK(signer_init_algorithm(&s, why, sizeof why) == 0, "init %s %s: %s", cases[i].type,
              cases[i].arg ? cases[i].arg : "", why);
        CHECK(s.md_nid == cases[i].md_nid, "md_nid for %s %s", cases[i].type,
              cases[i].arg ? cases[i].arg : "");
        CHECK(s.max_sig_len == cases[i].max, "max_sig_len for %s: %zu", cases[i].type,
              s.max_sig_len);
        CHECK(s.sig_alg && alg_der_is(s.sig_alg, cases[i].alg_hex), "sig_alg for %s",
              cases[i].type);
        /* a second call replaces, not leaks, sig_alg */
        CHECK(signer_init_algorithm(&s, why, sizeof why) == 0, "init twice");
        X509_ALGOR_free(s.sig_alg);
        EVP_PKEY_free(s.public_key);
    }
    const char *bad[][2] = {{"EC", "secp256k1"}, {"EC", "secp224r1"}, {"X25519", NULL}, {"ED448", NULL}};
    for (size_t i = 0; i < 4; i++) {
        signer s = {0};
        s.public_key = gen_key(bad[i][0], bad[i][1]);
        CHECK(s.public_key && signer_init_algorithm(&s, why, sizeof why) == -1,
              "%s %s refused", bad[i][0], bad[i][1] ? bad[i][1] : "");
        CHECK(s.sig_alg == NULL, "no sig_alg on failure");
        EVP_PKEY_free(s.public_key);
    }
    signer none = {0};
    CHECK(signer_init_algorithm(&none, why, sizeof why) == -1, "no public key refused");
    signer_free(NULL);
    CHECK(signer_issuing_cert(NULL) == NULL, "issuing cert of NULL");
}

/* ---- ephemeralca ---- */

static void test_ephemeral(void)
{
    char why[256] = "";
    signer *s = signer_ephemeral_new(why, sizeof why);
    CHECK(s != NULL, "ephemeral signer: %s", why);
    if (!s)
        return;
    CHECK_STREQ(s->kind, "ephemeralca", "kind");
    CHECK(s->md_nid == NID_sha256, "md sha256");
    CHECK(alg_der_is(s->sig_alg, "300a06082a8648ce3d040302"), "ecdsa-with-SHA256, no params");
    CHECK(s->chain && sk_X509_num(s->chain) == 1, "chain is one certificate");
    X509 *root = signer_issuing_cert(s);
    CHECK(root == sk_X509_value(s->chain, 0), "issuing cert is chain[0]");

    /* key: P-256, equal to public_key, public_key holds no private half */
    EVP_PKEY *pub = X509_get0_pubkey(root);
    char group[32] = "";
    size_t glen;
    EVP_PKEY_get_group_name(pub, group, sizeof group, &glen);
    CHECK_STREQ(group, "prime256v1", "P-256 key");
    CHECK(EVP_PKEY_eq(pub, s->public_key) == 1, "public_key matches the root");
    BIGNUM *priv = NULL;
    CHECK(EVP_PKEY_get_bn_param(s->public_key, "priv", &priv) == 0, "public_key is public only");
    BN_free(priv);
    ERR_clear_error();

    /* subject = issuer, Go order, PrintableString, no CN */
    static const struct {
        int nid;
        const char *v;
    } want[] = {{NID_countryName, "USA"},      {NID_stateOrProvinceName, "WA"},
                {NID_localityName, "Kirkland"}, {NID_streetAddress, "767 6th St S"},
                {NID_postalCode, "98033"},      {NID_organizationName, "sigstore"}};
    X509_NAME *subj = X509_get_subject_name(root);
    CHECK(X509_NAME_entry_count(subj) == 6, "6 RDNs, got %d", X509_NAME_entry_count(subj));
    for (int i = 0; i < 6 && i < X509_NAME_entry_count(subj); i++) {
        X509_NAME_ENTRY *e = X509_NAME_get_entry(subj, i);
        ASN1_STRING *d = X509_NAME_ENTRY_get_data(e);
        CHECK(OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)) == want[i].nid, "RDN %d type", i);
        CHECK(ASN1_STRING_type(d) == V_ASN1_PRINTABLESTRING, "RDN %d PrintableString", i);
        CHECK(ASN1_STRING_length(d) == (int)strlen(want[i].v) &&
                  memcmp(ASN1_STRING_get0_data(d), want[i].v, strlen(want[i].v)) == 0,
              "RDN %d value %s", i, want[i].v);
    }
    CHECK(X509_NAME_get_index_by_NID(subj, NID_commonName, -1) < 0, "no CN");
    CHECK(X509_NAME_cmp(subj, X509_get_issuer_name(root)) == 0, "self-issued");
    CHECK(X509_get_version(root) == X509_VERSION_3, "v3");

    /* serial: positive, at most 160 bits, random */
    BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(root), NULL);
    CHECK(serial && !BN_is_negative(serial) && !BN_is_zero(serial) && BN_num_bits(serial) <= 159,
          "serial positive, < 2^159");
    CHECK(serial && BN_num_bits(serial) > 64, "serial is long (random 159 bits)");
    BN_free(serial);

    /* extensions: KU, BC, SKID in that order, nothing else */
    CHECK(X509_get_ext_count(root) == 3, "3 extensions, got %d", X509_get_ext_count(root));
    static const int order[] = {NID_key_usage, NID_basic_constraints, NID_subject_key_identifier};
    static const int critical[] = {1, 1, 0};
    for (int i = 0; i < 3 && i < X509_get_ext_count(root); i++) {
        X509_EXTENSION *e = X509_get_ext(root, i);
        CHECK(OBJ_obj2nid(X509_EXTENSION_get_object(e)) == order[i], "extension %d", i);
        CHECK(X509_EXTENSION_get_critical(e) == critical[i], "extension %d criticality", i);
    }
    CHECK(X509_get_key_usage(root) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN), "KU certSign+cRLSign");
    ASN1_BIT_STRING *ku = X509_get_ext_d2i(root, NID_key_usage, NULL, NULL);
    CHECK(ku && ASN1_STRING_length(ku) == 1 && ASN1_STRING_get0_data(ku)[0] == 0x06,
          "KU encoded as Go does (03 02 01 06)");
    ASN1_BIT_STRING_free(ku);
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(root, NID_basic_constraints, NULL, NULL);
    CHECK(bc && bc->ca && bc->pathlen && ASN1_INTEGER_get(bc->pathlen) == 1, "CA:TRUE pathlen 1");
    BASIC_CONSTRAINTS_free(bc);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    X509_pubkey_digest(root, EVP_sha1(), md, &mdlen);
    const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(root);
    CHECK(skid && ASN1_STRING_length(skid) == 20 &&
              memcmp(ASN1_STRING_get0_data(skid), md, 20) == 0,
          "SKID = SHA-1 of the public key");
    CHECK(X509_get0_authority_key_id(root) == NULL, "no AKID");
    CHECK(X509_get_extension_flags(root) & EXFLAG_SS, "self-signed flag");

    /* validity: now .. ten calendar years */
    int days = 0, secs = 0;
    CHECK(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(root), X509_get0_notAfter(root)) &&
              days >= 3652 && days <= 3653 && secs == 0,
          "10 years validity (%d days %d s)", days, secs);
    CHECK(X509_cmp_time(X509_get0_notBefore(root), NULL) < 0, "valid now");
    CHECK(ASN1_STRING_type(X509_get0_notAfter(root)) == V_ASN1_UTCTIME, "UTCTime");

    /* signature ecdsa-with-SHA256, self-signed, verifies as a trust anchor */
    CHECK(X509_get_signature_nid(root) == NID_ecdsa_with_SHA256, "root signed ecdsa-with-SHA256");
    CHECK(X509_verify(root, pub) == 1, "root self-signature verifies");
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, root);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, root, NULL);
    CHECK(X509_verify_cert(ctx) == 1, "root verifies: %s",
          X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);

    CHECK(sign_and_check(s, "hello, ephemeral", why, sizeof why), "sign+verify: %s", why);

    /* a buffer smaller than max_sig_len is refused, not overrun */
    unsigned char small[8];
    size_t smalllen = sizeof small;
    CHECK(signer_sign(s, (const unsigned char *)"x", 1, small, &smalllen, why, sizeof why) == -1,
          "small buffer refused");
    CHECK(smalllen == sizeof small, "siglen restored on failure");

    /* two ephemeral signers: different keys, different serials */
    signer *s2 = signer_ephemeral_new(why, sizeof why);
    CHECK(s2 && EVP_PKEY_eq(s->public_key, s2->public_key) != 1, "new key every time");
    CHECK(s2 && ASN1_INTEGER_cmp(X509_get0_serialNumber(root),
                                 X509_get0_serialNumber(signer_issuing_cert(s2))) != 0,
          "new serial every time");
    signer_free(s2);
    signer_free(s);
}

/* ---- fileca: Fulcio's fixtures ---- */

static void test_fileca_fixtures(void)
{
    static const struct {
        const char *name;
        int chain_len, md_nid, sig_nid, key_type;
    } good[] = {
        {"ecdsa", 1, NID_sha384, NID_ecdsa_with_SHA384, EVP_PKEY_EC},
        {"ed25519", 1, NID_undef, NID_ED25519, EVP_PKEY_ED25519},
        {"rsa4096", 1, NID_sha256, NID_sha256WithRSAEncryption, EVP_PKEY_RSA},
        {"openssl", 1, NID_undef, NID_ED25519, EVP_PKEY_ED25519},
        {"intermediate-2", 2, NID_undef, NID_ED25519, EVP_PKEY_ED25519},
        {"intermediate-3", 3, NID_sha256, NID_ecdsa_with_SHA256, EVP_PKEY_EC},
    };
    char why[512];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        why[0] = '\0';
        signer *s = signer_file_new(fixture(good[i].name, "cert"), fixture(good[i].name, "key"),
                                    PASSWORD, why, sizeof why);
        CHECK(s != NULL, "fileca %s loads: %s", good[i].name, why);
        if (!s)
            continue;
        CHECK_STREQ(s->kind, "fileca", "kind");
        CHECK(sk_X509_num(s->chain) == good[i].chain_len, "%s chain length %d", good[i].name,
              sk_X509_num(s->chain));
        CHECK(s->md_nid == good[i].md_nid, "%s md_nid", good[i].name);
        CHECK(OBJ_obj2nid(s->sig_alg->algorithm) == good[i].sig_nid, "%s sig alg", good[i].name);
        CHECK(EVP_PKEY_get_base_id(s->public_key) == good[i].key_type, "%s key type", good[i].name);
        CHECK(sign_and_check(s, good[i].name, why, sizeof why), "%s sign+verify: %s",
              good[i].name, why);
        signer_free(s);
    }

    static const struct {
        const char *name, *before, *after;
    } bad[] = {
        /* notca (KU digitalSignature, EKU serverAuth+clientAuth, CA:FALSE) fails, as in Go,
         * at the code-signing verification, before the CA check */
        {"notca", "certificate chain in ",
         " does not verify for code signing: certificate 1 (/CN=notca) has an extended key "
         "usage without codeSigning"},
        {"mismatch", "public key of the issuing certificate in ",
         " does not match the private key in "},
        {"eku-chaining-violation", "issuing certificate in ",
         " lacks extended key usage codeSigning, required when the chain has more than one "
         "certificate (EKU chaining)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[512];
        const char *cert = fixture(bad[i].name, "cert");
        snprintf(want, sizeof want, "%s%s%s", bad[i].before, cert, bad[i].after);
        why[0] = '\0';
        signer *s = signer_file_new(cert, fixture(bad[i].name, "key"), PASSWORD, why, sizeof why);
        CHECK(s == NULL, "fileca %s refused", bad[i].name);
        CHECK(strncmp(why, want, strlen(want)) == 0, "%s reason: got \"%s\", want \"%s\"",
              bad[i].name, why, want);
        signer_free(s);
    }

    /* wrong password: PBES2 with the step-cli PRF (ed25519), plain PBES2 (openssl), legacy
     * DEK-Info (ecdsa, rsa4096); the password never appears in the message */
    const char *wrong[] = {"ed25519", "openssl", "ecdsa", "rsa4096"};
    for (size_t i = 0; i < 4; i++) {
        char want[512];
        const char *key = fixture(wrong[i], "key");
        snprintf(want, sizeof want,
                 "cannot decrypt key file %s: wrong password or unsupported format", key);
        signer *s = signer_file_new(fixture(wrong[i], "cert"), key, "hunter2-wrong", why, sizeof why);
        CHECK(s == NULL, "%s: wrong password refused", wrong[i]);
        CHECK_STREQ(why, want, "wrong password reason");
        CHECK(strstr(why, "hunter2") == NULL, "no password in the message");
        signer_free(s);
        s = signer_file_new(fixture(wrong[i], "cert"), key, "", why, sizeof why);
        CHECK(s == NULL, "%s: empty password refused", wrong[i]);
        CHECK_STREQ(why, want, "empty password reason");
        signer_free(s);
    }

    /* missing files */
    char want[512];
    const char *missing = tmpfile_path("does-not-exist.pem");
    snprintf(want, sizeof want, "cannot read certificate file %s: No such file or directory", missing);
    CHECK(signer_file_new(missing, fixture("ecdsa", "key"), PASSWORD, why, sizeof why) == NULL,
          "missing cert refused");
    CHECK_STREQ(why, want, "missing cert reason");
    snprintf(want, sizeof want, "cannot read key file %s: No such file or directory", missing);
    CHECK(signer_file_new(fixture("ecdsa", "cert"), missing, PASSWORD, why, sizeof why) == NULL,
          "missing key refused");
    CHECK_STREQ(why, want, "missing key reason");

    /* a key file given as the certificate file: no certificate in it */
    const char *keyfile = fixture("ecdsa", "key");
    snprintf(want, sizeof want, "certificate file %s holds no PEM certificate", keyfile);
    CHECK(signer_file_new(keyfile, keyfile, PASSWORD, why, sizeof why) == NULL, "no cert refused");
    CHECK_STREQ(why, want, "no cert reason");

    /* a certificate file given as the key file */
    const char *certfile = fixture("ecdsa", "cert");
    snprintf(want, sizeof want, "cannot read key file %s: no PEM private key it can parse", certfile);
    CHECK(signer_file_new(certfile, certfile, PASSWORD, why, sizeof why) == NULL, "no key refused");
    CHECK_STREQ(why, want, "no key reason");

    /* intermediate-2's chain in the wrong order (root first) does not verify */
    char *text = read_text(fixture("intermediate-2", "cert"));
    const char *split = text ? strstr(text + 1, "-----BEGIN CERTIFICATE-----") : NULL;
    if (split) {
        const char *path = tmpfile_path("reversed.pem");
        FILE *f = fopen(path, "w");
        if (f) {
            fputs(split, f);
            fwrite(text, 1, (size_t)(split - text), f);
            fclose(f);
        }
        snprintf(want, sizeof want, "certificate chain in %s does not verify to its last certificate",
                 path);
        CHECK(signer_file_new(path, fixture("intermediate-2", "key"), PASSWORD, why, sizeof why) ==
                  NULL,
              "reversed chain refused");
        CHECK(strncmp(why, want, strlen(want)) == 0, "reversed chain reason: %s", why);
    }
    CHECK(split != NULL, "intermediate-2 holds two certificates");
    free(text);

    /* a root that is not the issuer of the intermediate (ed25519's root) does not verify */
    const char *wrong_root = tmpfile_path("wrong-root.pem");
    char *inter2 = read_text(fixture("intermediate-2", "cert"));
    char *end = inter2 ? strstr(inter2, "-----END CERTIFICATE-----") : NULL;
    if (end) {
        end[strlen("-----END CERTIFICATE-----")] = '\0';
        char *root = read_text(fixture("ed25519", "cert"));
        FILE *f = fopen(wrong_root, "w");
        if (f && root) {
            fprintf(f, "%s\n%s", inter2, root);
        }
        if (f)
            fclose(f);
        free(root);
        CHECK(signer_file_new(wrong_root, fixture("intermediate-2", "key"), PASSWORD, why,
                              sizeof why) == NULL,
              "wrong root refused");
        CHECK(strstr(why, "does not verify to its last certificate") != NULL, "wrong root reason: %s",
              why);
    }
    free(inter2);
}

/* The PRF repair is exact: the same file with a non-HMAC PRF OID is not repaired. */
static void test_prf_patch_is_precise(void)
{
    char why[512];
    BIO *in = BIO_new_file(fixture("ed25519", "key"), "r");
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long len = 0;
    int ok = in && PEM_read_bio(in, &name, &header, &der, &len);
    BIO_free(in);
    CHECK(ok, "ed25519 key decodes");
    if (!ok)
        return;
    /* hmacWithSHA256 OID followed by the EOC element */
    static const unsigned char pattern[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                            0x0d, 0x02, 0x09, 0x00, 0x00};
    long at = -1;
    for (long i = 0; i + (long)sizeof pattern <= len; i++)
        if (memcmp(der + i, pattern, sizeof pattern) == 0)
            at = i;
    CHECK(at > 0, "the fixture has the step-cli PRF encoding");
    if (at > 0) {
        const char *path = tmpfile_path("prf.pem");
        /* control: the same bytes re-armoured load */
        BIO *out = BIO_new_file(path, "w");
        PEM_write_bio(out, name, header, der, len);
        BIO_free(out);
        signer *s = signer_file_new(fixture("ed25519", "cert"), path, PASSWORD, why, sizeof why);
        CHECK(s != NULL, "re-armoured key loads: %s", why);
        signer_free(s);
        /* hmacWithSHA256 -> md5 (1.2.840.113549.2.5), same length: not a PRF, no repair */
        der[at + 9] = 0x05;
        out = BIO_new_file(path, "w");
        PEM_write_bio(out, name, header, der, len);
        BIO_free(out);
        s = signer_file_new(fixture("ed25519", "cert"), path, PASSWORD, why, sizeof why);
        CHECK(s == NULL, "non-HMAC PRF not repaired");
        CHECK(strstr(why, "cannot decrypt key file") != NULL, "reason: %s", why);
        signer_free(s);
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
}

/* ---- fileca: generated chains and key formats ---- */

static void test_fileca_generated(void)
{
    char why[512], want[512];
    const char *cert = tmpfile_path("gen-cert.pem");
    const char *key = tmpfile_path("gen-key.pem");

    /* P-256 root: plain PKCS#8 with an empty password, legacy encrypted, PBES2 */
    EVP_PKEY *k = gen_key("EC", "P-256");
    X509 *x = make_cert("gen-root", k, NULL, k, 1, NULL);
    CHECK(write_cert(cert, x, NULL), "write cert");
    const char *kinds[] = {"pkcs8", "legacy-enc", "pkcs8-enc"};
    const char *passes[] = {"", "s3cret", "s3cret"};
    for (int i = 0; i < 3; i++) {
        CHECK(write_key(key, k, kinds[i], passes[i]), "write key %s", kinds[i]);
        signer *s = signer_file_new(cert, key, passes[i], why, sizeof why);
        CHECK(s != NULL, "%s key loads: %s", kinds[i], why);
        CHECK(s && sign_and_check(s, kinds[i], why, sizeof why), "%s sign+verify: %s", kinds[i], why);
        signer_free(s);
    }
    /* plain key with a password given: the password is ignored */
    CHECK(write_key(key, k, "pkcs8", ""), "write plain key");
    signer *s = signer_file_new(cert, key, "unused", why, sizeof why);
    CHECK(s != NULL, "plain key with a password loads: %s", why);
    signer_free(s);
    X509_free(x);

    /* a self-signed certificate that is not a CA */
    x = make_cert("gen-leaf", k, NULL, k, 0, NULL);
    write_cert(cert, x, NULL);
    snprintf(want, sizeof want, "issuing certificate in %s is not a CA (basicConstraints CA:TRUE missing)",
             cert);
    CHECK(signer_file_new(cert, key, "", why, sizeof why) == NULL, "non-CA refused");
    CHECK_STREQ(why, want, "non-CA reason");
    X509_free(x);

    /* a root with an EKU that excludes code signing fails the code-signing verification */
    x = make_cert("gen-root", k, NULL, k, 1, "serverAuth");
    write_cert(cert, x, NULL);
    snprintf(want, sizeof want,
             "certificate chain in %s does not verify for code signing: certificate 1 (/CN=gen-root) "
             "has an extended key usage without codeSigning",
             cert);
    CHECK(signer_file_new(cert, key, "", why, sizeof why) == NULL, "serverAuth root refused");
    CHECK_STREQ(why, want, "serverAuth root reason");
    X509_free(x);

    /* intermediate with codeSigning under a root limited to serverAuth: EKU chaining fails at
     * the root (certificate 2) */
    EVP_PKEY *rk = gen_key("EC", "P-384");
    X509 *root = make_cert("gen-root2", rk, NULL, rk, 1, "serverAuth");
    X509 *inter = make_cert("gen-inter", k, root, rk, 1, "codeSigning");
    write_cert(cert, inter, root);
    CHECK(signer_file_new(cert, key, "", why, sizeof why) == NULL, "serverAuth root over inter");
    CHECK(strstr(why, "certificate 2 (/CN=gen-root2) has an extended key usage without codeSigning"),
          "reason: %s", why);
    X509_free(root);
    X509_free(inter);

    /* a good two-level chain, root without EKU: loads, issuing cert is the intermediate */
    root = make_cert("gen-root2", rk, NULL, rk, 1, NULL);
    inter = make_cert("gen-inter", k, root, rk, 1, "codeSigning");
    write_cert(cert, inter, root);
    s = signer_file_new(cert, key, "", why, sizeof why);
    CHECK(s != NULL, "generated two-level chain loads: %s", why);
    CHECK(s && X509_cmp(signer_issuing_cert(s), inter) == 0, "issuing cert is the intermediate");
    signer_free(s);
    X509_free(root);
    X509_free(inter);
    EVP_PKEY_free(rk);
    EVP_PKEY_free(k);

    /* key policy: RSA 1024, P-224 */
    const char *weak[][3] = {
        {"RSA", "1024", "RSA key of 1024 bits is not allowed (RSA must be 2048, 3072 or 4096 bits)"},
        {"EC", "P-224", "EC curve secp224r1 is not allowed (allowed: P-256, P-384, P-521)"},
    };
    for (int i = 0; i < 2; i++) {
        k = gen_key(weak[i][0], weak[i][1]);
        x = make_cert("weak", k, NULL, k, 1, NULL);
        write_cert(cert, x, NULL);
        write_key(key, k, "pkcs8", "");
        snprintf(want, sizeof want, "CA key in %s fails the key policy: %s", key, weak[i][2]);
        CHECK(signer_file_new(cert, key, "", why, sizeof why) == NULL, "%s %s refused", weak[i][0],
              weak[i][1]);
        CHECK_STREQ(why, want, "key policy reason");
        X509_free(x);
        EVP_PKEY_free(k);
    }

    /* sigstore/cosign scrypt keys are named in the refusal */
    write_text(key, "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n"
                    "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n");
    k = gen_key("EC", "P-256");
    x = make_cert("gen-root", k, NULL, k, 1, NULL);
    write_cert(cert, x, NULL);
    CHECK(signer_file_new(cert, key, "x", why, sizeof why) == NULL, "sigstore key refused");
    CHECK(strstr(why, "sigstore/cosign encrypted keys (scrypt + secretbox) are not supported"),
          "sigstore key reason: %s", why);
    X509_free(x);
    EVP_PKEY_free(k);
    unlink(cert);
    unlink(key);
}

/* ---- signer_sign: retry and verification, with fake backends ---- */

enum fake_mode { FAKE_RETRY_ONCE, FAKE_ALWAYS_RETRY, FAKE_CORRUPT, FAKE_FAIL, FAKE_RECONNECT_FAILS };

struct fake {
    EVP_PKEY *key;
    enum fake_mode mode;
    int sign_calls, reconnect_calls, destroyed;
};

static enum signer_status fake_sign(void *impl, const unsigned char *tbs, size_t tbslen,
                                    unsigned char *sig, size_t *siglen, char *why, size_t whylen)
{
    struct fake *f = impl;
    f->sign_calls++;
    if (f->mode == FAKE_FAIL) {
        snprintf(why, whylen, "token removed");
        return SIGNER_FAIL;
    }
    if (f->mode == FAKE_ALWAYS_RETRY || f->mode == FAKE_RECONNECT_FAILS ||
        (f->mode == FAKE_RETRY_ONCE && f->sign_calls == 1)) {
        snprintf(why, whylen, "session lost");
        *siglen = 0;
        return SIGNER_RETRY;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, f->key) == 1 &&
             EVP_DigestSign(ctx, sig, siglen, tbs, tbslen) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return SIGNER_FAIL;
    if (f->mode == FAKE_CORRUPT)
        sig[*siglen / 2] ^= 0x01;
    return SIGNER_OK;
}

static int fake_reconnect(void *impl, char *why, size_t whylen)
{
    struct fake *f = impl;
    f->reconnect_calls++;
    if (f->mode == FAKE_RECONNECT_FAILS) {
        snprintf(why, whylen, "slot gone");
        return -1;
    }
    return 0;
}

static void fake_destroy(void *impl)
{
    struct fake *f = impl;
    f->destroyed++;
}

static const struct signer_ops fake_ops = {fake_sign, fake_reconnect, fake_destroy, 0};
static const struct signer_ops fake_ops_no_reconnect = {fake_sign, NULL, fake_destroy, 0};

static int run_fake(struct fake *f, const struct signer_ops *ops, char *why, size_t whylen)
{
    signer *s = calloc(1, sizeof *s);
    s->ops = ops;
    s->impl = f;
    s->kind = "pkcs11ca";
    EVP_PKEY_up_ref(f->key);
    s->public_key = f->key;
    char w[256];
    if (signer_init_algorithm(s, w, sizeof w) != 0) {
        signer_free(s);
        return -2;
    }
    unsigned char sig[64];
    size_t siglen = sizeof sig;
    const char *msg = "to be signed";
    int rc = signer_sign(s, (const unsigned char *)msg, strlen(msg), sig, &siglen, why, whylen);
    if (rc == 0 && !verify_with(f->key, NID_undef, (const unsigned char *)msg, strlen(msg), sig,
                                siglen))
        rc = -3;
    signer_free(s);
    return rc;
}

static void test_retry(void)
{
    char why[256];
    EVP_PKEY *key = gen_key("ED25519", NULL);

    struct fake f = {key, FAKE_RETRY_ONCE, 0, 0, 0};
    CHECK(run_fake(&f, &fake_ops, why, sizeof why) == 0, "retry once then OK: %s", why);
    CHECK(f.sign_calls == 2 && f.reconnect_calls == 1, "2 attempts (%d), 1 reconnect (%d)",
          f.sign_calls, f.reconnect_calls);
    CHECK(f.destroyed == 1, "destroy called by signer_free");

    f = (struct fake){key, FAKE_RETRY_ONCE, 0, 0, 0};
    CHECK(run_fake(&f, &fake_ops_no_reconnect, why, sizeof why) == 0, "retry without reconnect op");
    CHECK(f.sign_calls == 2, "2 attempts without reconnect op");

    f = (struct fake){key, FAKE_ALWAYS_RETRY, 0, 0, 0};
    CHECK(run_fake(&f, &fake_ops, why, sizeof why) == -1, "always retry fails");
    CHECK(f.sign_calls == 2 && f.reconnect_calls == 1, "exactly 2 attempts (%d), 1 reconnect (%d)",
          f.sign_calls, f.reconnect_calls);
    CHECK_STREQ(why, "pkcs11ca signer failed after a retry: session lost", "always retry reason");

    f = (struct fake){key, FAKE_RECONNECT_FAILS, 0, 0, 0};
    CHECK(run_fake(&f, &fake_ops, why, sizeof why) == -1, "reconnect failure fails");
    CHECK(f.sign_calls == 1 && f.reconnect_calls == 1, "no second attempt after failed reconnect");
    CHECK_STREQ(why, "pkcs11ca signer cannot reconnect: slot gone", "reconnect failure reason");

    f = (struct fake){key, FAKE_FAIL, 0, 0, 0};
    CHECK(run_fake(&f, &fake_ops, why, sizeof why) == -1, "hard failure fails");
    CHECK(f.sign_calls == 1 && f.reconnect_calls == 0, "hard failure is not retried");
    CHECK_STREQ(why, "pkcs11ca signer failed: token removed", "hard failure reason");

    f = (struct fake){key, FAKE_CORRUPT, 0, 0, 0};
    CHECK(run_fake(&f, &fake_ops, why, sizeof why) == -1, "corrupt signature refused");
    CHECK(f.sign_calls == 1, "corrupt signature: one attempt");
    CHECK_STREQ(why, "signature from pkcs11ca signer does not verify", "corrupt signature reason");

    EVP_PKEY_free(key);
}

/* ---- concurrency ---- */

#define THREADS 4
#define PER_THREAD 200

struct worker {
    signer *s;
    int id, ok;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    EVP_PKEY *pub = X509_get0_pubkey(signer_issuing_cert(w->s));
    for (int i = 0; i < PER_THREAD; i++) {
        char msg[64], why[256];
        unsigned char sig[256];
        size_t siglen = sizeof sig;
        int n = snprintf(msg, sizeof msg, "thread %d message %d", w->id, i);
        if (signer_sign(w->s, (unsigned char *)msg, (size_t)n, sig, &siglen, why, sizeof why) == 0 &&
            verify_with(pub, w->s->md_nid, (unsigned char *)msg, (size_t)n, sig, siglen))
            w->ok++;
    }
    return NULL;
}

static void concurrent(signer *s, const char *what)
{
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){s, i, 0};
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        total += w[i].ok;
    }
    CHECK(total == THREADS * PER_THREAD, "%s: %d of %d concurrent signatures verify", what, total,
          THREADS * PER_THREAD);
}

static void test_concurrency(void)
{
    char why[512];
    signer *s = signer_ephemeral_new(why, sizeof why);
    CHECK(s != NULL, "ephemeral: %s", why);
    if (s)
        concurrent(s, "ephemeralca P-256");
    signer_free(s);
    s = signer_file_new(fixture("intermediate-2", "cert"), fixture("intermediate-2", "key"),
                        PASSWORD, why, sizeof why);
    CHECK(s != NULL, "fileca: %s", why);
    if (s)
        concurrent(s, "fileca Ed25519");
    signer_free(s);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_signer.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_init_algorithm();
    test_ephemeral();
    test_fileca_fixtures();
    test_prf_patch_is_precise();
    test_fileca_generated();
    test_retry();
    test_concurrency();
    unlink(tmpfile_path("reversed.pem"));
    unlink(tmpfile_path("wrong-root.pem"));
    unlink(tmpfile_path("prf.pem"));
    rmdir(tmpdir);
    CHECK_MAIN_END();
}
