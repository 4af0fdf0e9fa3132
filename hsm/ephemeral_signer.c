/*
 * hsm/ephemeral_signer.c: the ephemeralca backend: a new P-256 key and a self-signed root,
 * made as Fulcio's ephemeralca makes them (fulcio-compat.md §6). Testing only.
 */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hsm/key_signer.h"
#include "hsm/signer.h"

/* Go's pkix.Name order: C, ST, L, street, postalCode, O (all PrintableString). */
static int set_subject(X509 *x)
{
    static const struct {
        int nid;
        const char *value;
    } rdns[] = {
        {NID_countryName, "USA"},           {NID_stateOrProvinceName, "WA"},
        {NID_localityName, "Kirkland"},     {NID_streetAddress, "767 6th St S"},
        {NID_postalCode, "98033"},          {NID_organizationName, "sigstore"},
    };
    X509_NAME *name = X509_NAME_new();
    if (!name)
        return 0;
    for (size_t i = 0; i < sizeof rdns / sizeof rdns[0]; i++) {
        if (!X509_NAME_add_entry_by_NID(name, rdns[i].nid, V_ASN1_PRINTABLESTRING,
                                        (const unsigned char *)rdns[i].value, -1, -1, 0)) {
            X509_NAME_free(name);
            return 0;
        }
    }
    int ok = X509_set_subject_name(x, name) && X509_set_issuer_name(x, name);
    X509_NAME_free(name);
    return ok;
}

/* A random positive serial below 2^159, as sigstore's cryptoutils.GenerateSerialNumber. */
static int set_serial(X509 *x)
{
    unsigned char buf[20];
    BIGNUM *bn = NULL;
    int ok = 0;
    do {
        if (RAND_bytes(buf, sizeof buf) != 1)
            return 0;
        buf[0] &= 0x7f;
        BN_free(bn);
        bn = BN_bin2bn(buf, sizeof buf, NULL);
    } while (bn && BN_is_zero(bn));
    if (bn) {
        ASN1_INTEGER *serial = BN_to_ASN1_INTEGER(bn, NULL);
        ok = serial && X509_set_serialNumber(x, serial);
        ASN1_INTEGER_free(serial);
    }
    BN_free(bn);
    OPENSSL_cleanse(buf, sizeof buf);
    return ok;
}

/* notBefore now, notAfter ten calendar years later (Go's time.Now().AddDate(10, 0, 0)). */
static int set_validity(X509 *x)
{
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm))
        return 0;
    tm.tm_year += 10;
    time_t later = timegm(&tm);
    if (later == (time_t)-1)
        return 0;
    return ASN1_TIME_set(X509_getm_notBefore(x), now) != NULL &&
           ASN1_TIME_set(X509_getm_notAfter(x), later) != NULL;
}

/* Go's order for a CA template: keyUsage, basicConstraints, subjectKeyIdentifier. */
static int add_extensions(X509 *x)
{
    static const struct {
        int nid;
        const char *value;
    } exts[] = {
        {NID_key_usage, "critical,keyCertSign,cRLSign"},
        {NID_basic_constraints, "critical,CA:TRUE,pathlen:1"},
        {NID_subject_key_identifier, "hash"},
    };
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, exts[i].nid, exts[i].value);
        int ok = ext && X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        if (!ok)
            return 0;
    }
    return 1;
}

static X509 *make_root(EVP_PKEY *key)
{
    X509 *x = X509_new();
    if (x && X509_set_version(x, X509_VERSION_3) && set_serial(x) && set_subject(x) &&
        set_validity(x) && X509_set_pubkey(x, key) && add_extensions(x) &&
        X509_sign(x, key, EVP_sha256()) > 0)
        return x;
    X509_free(x);
    return NULL;
}

signer *signer_ephemeral_new(char *why, size_t whylen)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (!key) {
        ERR_clear_error();
        snprintf(why, whylen, "ephemeralca: cannot generate a P-256 key");
        return NULL;
    }
    X509 *root = make_root(key);
    STACK_OF(X509) *chain = root ? sk_X509_new_null() : NULL;
    if (!chain || !sk_X509_push(chain, root)) {
        ERR_clear_error();
        X509_free(root);
        sk_X509_free(chain);
        EVP_PKEY_free(key);
        snprintf(why, whylen, "ephemeralca: cannot create the self-signed root certificate");
        return NULL;
    }
    return key_signer_new("ephemeralca", key, chain, why, whylen);
}
