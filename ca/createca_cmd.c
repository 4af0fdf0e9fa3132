/*
 * ca/createca_cmd.c: `fulcrum createca` (what it makes: ca/createca_cmd.h).
 */
#include "ca/createca_cmd.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/flags.h"
#include "common/log.h"
#include "hsm/pkcs11_chain.h"
#include "hsm/pkcs11_config.h"
#include "hsm/pkcs11_signer.h"
#include "hsm/pkcs11_token.h"
#include "hsm/signer.h"

struct createca_flags {
    const char *config_path, *pin_file, *caroot_id, *key_label, *org, *country, *province;
    const char *locality, *street, *postal, *out, *key_type, *common_name;
    const char *int_id, *int_label, *int_common_name;
    int intermediate, help;
};

/* A key in the token: its private object, type and public half. */
struct token_key {
    CK_OBJECT_HANDLE priv;
    CK_KEY_TYPE type;
    EVP_PKEY *pub;
};

static void usage(const struct flag *flags, size_t n, FILE *out)
{
    fprintf(out, "Usage: fulcrum createca [flags]\n\n"
                 "Creates a CA inside a PKCS#11 token (a root, and with --intermediate an\n"
                 "intermediate under it), for `fulcrum serve --ca pkcs11ca`.\n\nFlags:\n");
    flags_usage(flags, n, out);
}

static int parse_key_type(const char *s, enum p11_keygen *out)
{
    static const struct {
        const char *name;
        enum p11_keygen type;
    } types[] = {{"p256", P11_KEY_P256},
                 {"p384", P11_KEY_P384},
                 {"rsa3072", P11_KEY_RSA3072},
                 {"rsa4096", P11_KEY_RSA4096}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(s, types[i].name) == 0) {
            *out = types[i].type;
            return 0;
        }
    }
    return -1;
}

/* ---- the token ---- */

static int open_token(p11_rw_session *t, const char *config_path, const char *pin_file)
{
    char why[768] = "";
    const char *source = NULL;
    if (p11_rw_session_open(t, config_path, pin_file, &source, why, sizeof why) != 0) {
        log_error("createca", "%s", why);
        return -1;
    }
    log_info("createca", "token \"%s\" (PIN from %s)", t->token, source ? source : "nowhere");
    return 0;
}

static int cert_exists(p11_rw_session *t, const char *id)
{
    CK_OBJECT_HANDLE obj;
    CK_ULONG n = 0;
    CK_RV rv = p11_find(&t->mod, t->s, CKO_CERTIFICATE, id, strlen(id), NULL, &obj, 1, &n);
    if (rv != CKR_OK) {
        log_error("createca", "searching token \"%s\" for certificates: %s", t->token,
                  p11_rv_name(rv));
        return -1;
    }
    if (n > 0) {
        log_error("createca", "a certificate with CKA_ID \"%s\" already exists on token \"%s\"",
                  id, t->token);
        return -1;
    }
    return 0;
}

/* The key pair labelled `label`: the existing one, or a new one of `type` with CKA_ID id. */
static int get_key(p11_rw_session *t, const char *label, const char *id, enum p11_keygen type,
                   const char *type_name, struct token_key *k)
{
    char why[512] = "";
    int generated = 0;
    if (p11_key_pair_get(t, label, id, strlen(id), type, 1, &k->priv, &k->type, &k->pub,
                         &generated, why, sizeof why) != 0) {
        log_error("createca", "%s", why);
        return -1;
    }
    if (generated)
        log_info("createca", "generated a %s key pair labelled \"%s\" in token \"%s\"",
                 type_name, label, t->token);
    else
        log_info("createca", "using the existing key pair labelled \"%s\"", label);
    return 0;
}

/* ---- certificates ---- */

static int printable(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(" '()+,-./:=?", c)))
            return 0;
    }
    return 1;
}

/* Go's pkix.Name order: C, ST, L, street, postalCode, O, CN; empty values are left out. */
static X509_NAME *make_name(const struct createca_flags *f, const char *cn)
{
    const struct {
        int nid;
        const char *value;
    } rdns[] = {
        {NID_countryName, f->country},      {NID_stateOrProvinceName, f->province},
        {NID_localityName, f->locality},    {NID_streetAddress, f->street},
        {NID_postalCode, f->postal},        {NID_organizationName, f->org},
        {NID_commonName, cn},
    };
    X509_NAME *name = X509_NAME_new();
    for (size_t i = 0; name && i < sizeof rdns / sizeof rdns[0]; i++) {
        if (!rdns[i].value || !*rdns[i].value)
            continue;
        int type = printable(rdns[i].value) ? V_ASN1_PRINTABLESTRING : V_ASN1_UTF8STRING;
        if (!X509_NAME_add_entry_by_NID(name, rdns[i].nid, type,
                                        (const unsigned char *)rdns[i].value, -1, -1, 0)) {
            X509_NAME_free(name);
            return NULL;
        }
    }
    return name;
}

static int set_serial(X509 *x)
{
    unsigned char buf[20];
    BIGNUM *bn = NULL;
    int ok = 0;
    do {
        if (RAND_bytes(buf, sizeof buf) != 1)
            return 0;
        buf[0] &= 0x7f; /* positive, below 2^159 */
        BN_free(bn);
        bn = BN_bin2bn(buf, sizeof buf, NULL);
    } while (bn && BN_is_zero(bn));
    ASN1_INTEGER *serial = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    ok = serial && X509_set_serialNumber(x, serial);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    return ok;
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

/* Puts the signature algorithm in the TBS and the outer certificate. */
static int set_sig_alg(X509 *x, const X509_ALGOR *alg)
{
    const ASN1_BIT_STRING *sig = NULL;
    const X509_ALGOR *outer = NULL;
    X509_get0_signature(&sig, &outer, x);
    /* OpenSSL 3.0 has no setters; both point into x, which we own. */
    return X509_ALGOR_copy((X509_ALGOR *)X509_get0_tbs_sigalg(x), alg) &&
           X509_ALGOR_copy((X509_ALGOR *)outer, alg);
}

/* Signs x's TBS with the issuer's key in the token, then checks the result with issuer_pub. */
static X509 *sign_in_token(p11_rw_session *t, X509 *x, const struct token_key *issuer)
{
    signer alg = {0}; /* only to compute the algorithm the key implies */
    char why[256] = "";
    unsigned char *tbs = NULL, sig[1024];
    size_t siglen = sizeof sig;
    X509 *out = NULL;
    CK_RV rv = CKR_OK;
    alg.public_key = issuer->pub;
    if (signer_init_algorithm(&alg, why, sizeof why) != 0 || !set_sig_alg(x, alg.sig_alg)) {
        log_error("createca", "signature algorithm: %s", *why ? why : "cannot set it");
        goto done;
    }
    const EVP_MD *md = EVP_get_digestbynid(alg.md_nid);
    int tbslen = i2d_re_X509_tbs(x, &tbs);
    if (!md || tbslen <= 0) {
        log_error("createca", "cannot encode the certificate to sign");
        goto done;
    }
    if (p11_sign(&t->mod, t->s, issuer->priv, issuer->type, md, tbs, (size_t)tbslen, sig, &siglen,
                 &rv, why, sizeof why) != 0) {
        log_error("createca", "signing in token \"%s\": %s", t->token, why);
        goto done;
    }
    const ASN1_BIT_STRING *psig = NULL;
    const X509_ALGOR *palg = NULL;
    X509_get0_signature(&psig, &palg, x);
    ASN1_BIT_STRING *bits = (ASN1_BIT_STRING *)psig;
    if (!ASN1_BIT_STRING_set(bits, sig, (int)siglen))
        goto done;
    bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
    bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    const unsigned char *p = der;
    out = len > 0 ? d2i_X509(NULL, &p, len) : NULL;
    OPENSSL_free(der);
    if (!out || X509_verify(out, issuer->pub) != 1) {
        log_error("createca", "the token's signature on the certificate does not verify");
        X509_free(out);
        out = NULL;
    }
done:
    ERR_clear_error();
    X509_ALGOR_free(alg.sig_alg);
    OPENSSL_free(tbs);
    return out;
}

/* A CA certificate for subject_key, issued by issuer (NULL: self-signed). */
static X509 *make_ca(p11_rw_session *t, const struct createca_flags *f, const char *cn,
                     const struct token_key *subject_key, X509 *issuer_cert,
                     const struct token_key *issuer_key)
{
    X509 *x = X509_new();
    X509_NAME *name = make_name(f, cn);
    int ok = x && name && X509_set_version(x, X509_VERSION_3) && set_serial(x) &&
             X509_set_subject_name(x, name) &&
             X509_set_issuer_name(x, issuer_cert ? X509_get_subject_name(issuer_cert) : name) &&
             X509_set_pubkey(x, subject_key->pub);
    X509_NAME_free(name);
    if (ok && !issuer_cert) {
        time_t now = time(NULL);
        struct tm tm;
        ok = gmtime_r(&now, &tm) != NULL;
        tm.tm_year += 10; /* Go's AddDate(10, 0, 0) */
        time_t later = ok ? timegm(&tm) : (time_t)-1;
        ok = later != (time_t)-1 && ASN1_TIME_set(X509_getm_notBefore(x), now) &&
             ASN1_TIME_set(X509_getm_notAfter(x), later);
    } else if (ok) {
        ok = X509_set1_notBefore(x, X509_get0_notBefore(issuer_cert)) &&
             X509_set1_notAfter(x, X509_get0_notAfter(issuer_cert));
    }
    X509 *issuer_for_ext = issuer_cert ? issuer_cert : x;
    if (ok)
        ok = add_ext(x, issuer_for_ext, NID_key_usage, "critical,keyCertSign,cRLSign") &&
             (!issuer_cert || add_ext(x, issuer_for_ext, NID_ext_key_usage, "codeSigning")) &&
             add_ext(x, issuer_for_ext, NID_basic_constraints,
                     issuer_cert ? "critical,CA:TRUE,pathlen:0" : "critical,CA:TRUE,pathlen:1") &&
             add_ext(x, issuer_for_ext, NID_subject_key_identifier, "hash") &&
             (!issuer_cert ||
              add_ext(x, issuer_for_ext, NID_authority_key_identifier, "keyid:always"));
    if (!ok) {
        ERR_clear_error();
        X509_free(x);
        log_error("createca", "cannot build the certificate");
        return NULL;
    }
    X509 *signed_cert = sign_in_token(t, x, issuer_key ? issuer_key : subject_key);
    X509_free(x);
    return signed_cert;
}

static int store(p11_rw_session *t, X509 *x, const char *label, const char *id)
{
    CK_RV rv = p11_store_cert(&t->mod, t->s, x, label, id, strlen(id));
    if (rv != CKR_OK) {
        log_error("createca", "storing the certificate (CKA_ID \"%s\") on token \"%s\": %s", id,
                  t->token, p11_rv_name(rv));
        return -1;
    }
    log_info("createca", "certificate stored on token \"%s\" with CKA_ID \"%s\", label \"%s\"",
             t->token, id, label);
    return 0;
}

static int write_pem(const char *path, STACK_OF(X509) *chain)
{
    FILE *fp = path ? fopen(path, "w") : stdout;
    if (!fp) {
        log_error("createca", "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    int ok = 1;
    for (int i = 0; i < sk_X509_num(chain) && ok; i++)
        ok = PEM_write_X509(fp, sk_X509_value(chain, i)) == 1;
    if (path)
        ok = fclose(fp) == 0 && ok;
    else
        ok = fflush(fp) == 0 && ok;
    if (!ok)
        log_error("createca", "cannot write %s", path ? path : "the PEM to stdout");
    return ok ? 0 : -1;
}

int createca_main(int argc, char **argv)
{
    struct createca_flags f = {
        .config_path = PKCS11_DEFAULT_CONFIG_PATH, .key_label = PKCS11_DEFAULT_KEY_LABEL,
        .org = "Fulcio Root CA", .key_type = "p256", .caroot_id = "",
    };
    struct flag flags[] = {
        {"pkcs11-config-path", NULL, FLAG_STRING, &f.config_path,
         "crypto11 JSON naming the module, the token and maybe the Pin (default "
         "config/crypto11.conf)", 0},
        {"pkcs11-pin-file", NULL, FLAG_STRING, &f.pin_file,
         "file holding the user PIN (else $CREDENTIALS_DIRECTORY/pkcs11-pin, else the config's "
         "Pin)", 0},
        {"hsm-caroot-id", NULL, FLAG_STRING, &f.caroot_id,
         "CKA_ID for the root certificate and its key: the flag's bytes (required)", 0},
        {"hsm-key-label", NULL, FLAG_STRING, &f.key_label,
         "CKA_LABEL of the root key pair (default PKCS11CA)", 0},
        {"key-type", NULL, FLAG_STRING, &f.key_type,
         "p256 | p384 | rsa3072 | rsa4096, for keys generated here (default p256)", 0},
        {"common-name", NULL, FLAG_STRING, &f.common_name,
         "root subject CN (default: the --org value)", 0},
        {"org", NULL, FLAG_STRING, &f.org, "subject O (default \"Fulcio Root CA\")", 0},
        {"country", NULL, FLAG_STRING, &f.country, "subject C", 0},
        {"province", NULL, FLAG_STRING, &f.province, "subject ST", 0},
        {"locality", NULL, FLAG_STRING, &f.locality, "subject L", 0},
        {"street-address", NULL, FLAG_STRING, &f.street, "subject street", 0},
        {"postal-code", NULL, FLAG_STRING, &f.postal, "subject postalCode", 0},
        {"out", NULL, FLAG_STRING, &f.out,
         "write the PEM here too: the root, or with --intermediate the chain (intermediate "
         "first)", 0},
        {"intermediate", NULL, FLAG_BOOL, &f.intermediate,
         "also create an intermediate (key in the token too) signed by the root", 0},
        {"intermediate-id", NULL, FLAG_STRING, &f.int_id,
         "CKA_ID for the intermediate certificate and its key (required with --intermediate)", 0},
        {"intermediate-key-label", NULL, FLAG_STRING, &f.int_label,
         "CKA_LABEL of the intermediate key pair (default <hsm-key-label>-intermediate)", 0},
        {"intermediate-common-name", NULL, FLAG_STRING, &f.int_common_name,
         "intermediate subject CN (default \"<common-name> Intermediate\")", 0},
        {"help", "h", FLAG_BOOL, &f.help, "show this help", 0},
    };
    size_t nflags = sizeof flags / sizeof flags[0];
    char why[512];
    if (flags_parse(flags, nflags, argc, argv, why, sizeof why) != 0) {
        fprintf(stderr, "fulcrum createca: %s\n", why);
        return 2;
    }
    if (f.help) {
        usage(flags, nflags, stdout);
        return 0;
    }
    enum p11_keygen type;
    if (!*f.caroot_id) {
        fprintf(stderr, "fulcrum createca: --hsm-caroot-id is required\n");
        return 2;
    }
    if (parse_key_type(f.key_type, &type) != 0) {
        fprintf(stderr, "fulcrum createca: --key-type %s: use p256, p384, rsa3072 or rsa4096\n",
                f.key_type);
        return 2;
    }
    if (!*f.key_label) {
        fprintf(stderr, "fulcrum createca: --hsm-key-label must not be empty\n");
        return 2;
    }
    char int_label[256], int_cn[256];
    const char *cn = f.common_name && *f.common_name ? f.common_name : f.org;
    if (f.intermediate) {
        if (!f.int_id || !*f.int_id || strcmp(f.int_id, f.caroot_id) == 0) {
            fprintf(stderr, "fulcrum createca: --intermediate needs --intermediate-id, "
                            "different from --hsm-caroot-id\n");
            return 2;
        }
        snprintf(int_label, sizeof int_label, "%s",
                 f.int_label && *f.int_label ? f.int_label : "");
        if (!*int_label)
            snprintf(int_label, sizeof int_label, "%s-intermediate", f.key_label);
        if (strcmp(int_label, f.key_label) == 0) {
            fprintf(stderr, "fulcrum createca: the intermediate key label must differ from "
                            "--hsm-key-label\n");
            return 2;
        }
        snprintf(int_cn, sizeof int_cn, "%s",
                 f.int_common_name && *f.int_common_name ? f.int_common_name : "");
        if (!*int_cn)
            snprintf(int_cn, sizeof int_cn, "%s Intermediate", cn);
    } else if (f.int_id || f.int_label || f.int_common_name) {
        fprintf(stderr, "fulcrum createca: --intermediate-* flags need --intermediate\n");
        return 2;
    }

    p11_rw_session t = {0};
    struct token_key root_key = {0}, int_key = {0};
    X509 *root = NULL, *inter = NULL;
    STACK_OF(X509) *chain = sk_X509_new_null();
    int rc = 1;
    if (!chain || open_token(&t, f.config_path, f.pin_file) != 0)
        goto done;
    if (cert_exists(&t, f.caroot_id) != 0 || (f.intermediate && cert_exists(&t, f.int_id) != 0))
        goto done;
    if (get_key(&t, f.key_label, f.caroot_id, type, f.key_type, &root_key) != 0)
        goto done;
    if ((root = make_ca(&t, &f, cn, &root_key, NULL, NULL)) == NULL)
        goto done;
    if (f.intermediate) {
        if (get_key(&t, int_label, f.int_id, type, f.key_type, &int_key) != 0 ||
            (inter = make_ca(&t, &f, int_cn, &int_key, root, &root_key)) == NULL)
            goto done;
        if (!sk_X509_push(chain, inter))
            goto done;
        X509_up_ref(inter);
    }
    if (!sk_X509_push(chain, root))
        goto done;
    X509_up_ref(root);
    if (pkcs11_chain_validate(chain, "the new CA", why, sizeof why) != 0) {
        log_error("createca", "%s", why);
        goto done;
    }
    if (store(&t, root, f.key_label, f.caroot_id) != 0 ||
        (inter && store(&t, inter, int_label, f.int_id) != 0))
        goto done;
    if (write_pem(NULL, chain) != 0 || (f.out && *f.out && write_pem(f.out, chain) != 0))
        goto done;
    if (f.out && *f.out)
        log_info("createca", "%s written to %s", inter ? "chain" : "root CA", f.out);
    rc = 0;
done:
    sk_X509_pop_free(chain, X509_free);
    X509_free(root);
    X509_free(inter);
    EVP_PKEY_free(root_key.pub);
    EVP_PKEY_free(int_key.pub);
    p11_rw_session_close(&t);
    return rc;
}
