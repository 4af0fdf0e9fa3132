/*
 * ca/preissuance_check.c: asserts the leaf profile (fulcio-compat.md §4.1-4.3) on the complete
 * TBS before it is signed.
 *
 * Every check reads the built certificate's fields through OpenSSL's getters, not the inputs the
 * builder worked from, so a bug in the builder is caught; ca/issue.c then encodes the TBS these
 * fields give, signs those bytes and builds the certificate's DER around them. (An earlier
 * version encoded and parsed the certificate back first: with OpenSSL 3.0 that parse runs the key
 * decoder and cost more than the CA signature.) Checks run in a fixed order and the first failure is reported as
 * "pre-issuance check: <what>".
 */
#include "ca/preissuance_check.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ca/cert_profile.h"
#include "ca/client_key.h"
#include "ca/fulcio_oid.h"
#include "common/digest_md.h"

#define SERIAL_BITS 159
#define PREFIX "pre-issuance check: "

/* extnValue of KU digitalSignature and of EKU codeSigning (fulcio-compat.md §4.2). */
static const unsigned char KU_VALUE[] = {0x03, 0x02, 0x07, 0x80};
static const unsigned char EKU_VALUE[] = {0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06,
                                          0x01, 0x05, 0x05, 0x07, 0x03, 0x03};

static int fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t whylen, const char *fmt, ...)
{
    if (why && whylen) {
        int n = snprintf(why, whylen, PREFIX);
        if (n > 0 && (size_t)n < whylen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(why + n, whylen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static void oid_text(const ASN1_OBJECT *o, char *buf, size_t len)
{
    if (OBJ_obj2txt(buf, (int)len, o, 1) <= 0)
        snprintf(buf, len, "(unprintable OID)");
}

/* Position of an extension in the profile's order, or -1 if the profile has no such extension.
 * 0 KU, 1 EKU, 2 SKID, 3 AKID, 4 SAN, 10+n Fulcio .n, 40 CT poison, 41 SCT list. */
static int profile_rank(const ASN1_OBJECT *o)
{
    switch (OBJ_obj2nid(o)) {
    case NID_key_usage: return 0;
    case NID_ext_key_usage: return 1;
    case NID_subject_key_identifier: return 2;
    case NID_authority_key_identifier: return 3;
    case NID_subject_alt_name: return 4;
    /* CT extensions a precertificate / final certificate may carry after the Fulcio ones. */
    case NID_ct_precert_poison: return 40;
    case NID_ct_precert_scts: return 41;
    default: break;
    }
    int n = fulcio_oid_arc(o);
    return (n >= 1 && n <= FULCIO_EXT_MAX && n != 7) ? 10 + n : -1;
}

static const char *time_type(const ASN1_TIME *t)
{
    return ASN1_STRING_type(t) == V_ASN1_UTCTIME ? "UTCTime" : "GeneralizedTime";
}

/* Same encoding (UTCTime/GeneralizedTime by RFC 5280's rule, as the builder) and same instant. */
static int time_is(const ASN1_TIME *t, time_t want)
{
    ASN1_TIME *w = ASN1_TIME_set(NULL, want);
    int ok = w && ASN1_STRING_type(t) == ASN1_STRING_type(w) && ASN1_STRING_cmp(t, w) == 0;
    ASN1_TIME_free(w);
    return ok;
}

static int name_der_equal(const X509_NAME *a, const X509_NAME *b)
{
    const unsigned char *da = NULL, *db = NULL;
    size_t la = 0, lb = 0;
    if (!X509_NAME_get0_der(a, &da, &la) || !X509_NAME_get0_der(b, &db, &lb))
        return 0;
    return la == lb && memcmp(da, db, la) == 0;
}

static const ASN1_OCTET_STRING *ext_value(X509 *c, int idx)
{
    return X509_EXTENSION_get_data(X509_get_ext(c, idx));
}

static int value_is(const ASN1_OCTET_STRING *v, const unsigned char *want, size_t len)
{
    return v && (size_t)ASN1_STRING_length(v) == len &&
           memcmp(ASN1_STRING_get0_data(v), want, len) == 0;
}

static int check_serial(X509 *c, char *why, size_t whylen)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), NULL);
    if (!bn)
        return fail(why, whylen, "serial number cannot be read");
    int rc = 0;
    if (BN_is_negative(bn) || BN_is_zero(bn))
        rc = fail(why, whylen, "serial number is not positive");
    else if (BN_num_bits(bn) > SERIAL_BITS)
        rc = fail(why, whylen, "serial number is not below 2^159");
    BN_free(bn);
    return rc;
}

static int check_validity(X509 *c, time_t now, char *why, size_t whylen)
{
    const ASN1_TIME *nb = X509_get0_notBefore(c), *na = X509_get0_notAfter(c);
    if (!time_is(nb, now))
        return fail(why, whylen, "notBefore (%s %.*s) is not the issuance time", time_type(nb),
                    ASN1_STRING_length(nb), (const char *)ASN1_STRING_get0_data(nb));
    if (!time_is(na, now + CERT_VALIDITY_SECONDS))
        return fail(why, whylen, "notAfter (%s %.*s) is not notBefore + %d s", time_type(na),
                    ASN1_STRING_length(na), (const char *)ASN1_STRING_get0_data(na),
                    CERT_VALIDITY_SECONDS);
    return 0;
}

/* Every extension known to the profile, at most once, in the profile's order. */
static int check_extension_set(X509 *c, char *why, size_t whylen)
{
    int n = X509_get_ext_count(c), last = -1;
    char txt[80];
    for (int i = 0; i < n; i++) {
        const ASN1_OBJECT *o = X509_EXTENSION_get_object(X509_get_ext(c, i));
        for (int j = 0; j < i; j++) {
            if (OBJ_cmp(o, X509_EXTENSION_get_object(X509_get_ext(c, j))) == 0) {
                oid_text(o, txt, sizeof txt);
                return fail(why, whylen, "extension %s appears more than once", txt);
            }
        }
    }
    if (X509_get_ext_by_NID(c, NID_basic_constraints, -1) >= 0) {
        BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(c, NID_basic_constraints, NULL, NULL);
        int ca = bc && bc->ca;
        BASIC_CONSTRAINTS_free(bc);
        return fail(why, whylen, ca ? "basicConstraints CA:TRUE is present"
                                    : "basicConstraints is present (the profile has none)");
    }
    for (int i = 0; i < n; i++) {
        const ASN1_OBJECT *o = X509_EXTENSION_get_object(X509_get_ext(c, i));
        int rank = profile_rank(o);
        if (rank < 0 || rank < last)
            oid_text(o, txt, sizeof txt);
        if (rank < 0)
            return fail(why, whylen, "extension %s is not part of the profile", txt);
        if (rank < last)
            return fail(why, whylen, "extension %s is out of order", txt);
        last = rank;
    }
    return 0;
}

static int check_usages(X509 *c, char *why, size_t whylen)
{
    int i = X509_get_ext_by_NID(c, NID_key_usage, -1);
    if (i < 0)
        return fail(why, whylen, "keyUsage extension is missing");
    if (!X509_EXTENSION_get_critical(X509_get_ext(c, i)))
        return fail(why, whylen, "keyUsage extension is not critical");
    if (!value_is(ext_value(c, i), KU_VALUE, sizeof KU_VALUE))
        return fail(why, whylen, "keyUsage is not digitalSignature only");
    i = X509_get_ext_by_NID(c, NID_ext_key_usage, -1);
    if (i < 0)
        return fail(why, whylen, "extKeyUsage extension is missing");
    if (X509_EXTENSION_get_critical(X509_get_ext(c, i)))
        return fail(why, whylen, "extKeyUsage extension is critical");
    if (!value_is(ext_value(c, i), EKU_VALUE, sizeof EKU_VALUE))
        return fail(why, whylen, "extKeyUsage is not codeSigning only");
    return 0;
}

static int check_key_ids(X509 *c, X509 *issuing_ca, char *why, size_t whylen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int i = X509_get_ext_by_NID(c, NID_subject_key_identifier, -1);
    if (i < 0)
        return fail(why, whylen, "subjectKeyIdentifier extension is missing");
    if (X509_EXTENSION_get_critical(X509_get_ext(c, i)))
        return fail(why, whylen, "subjectKeyIdentifier extension is critical");
    ASN1_OCTET_STRING *skid = X509_get_ext_d2i(c, NID_subject_key_identifier, NULL, NULL);
    int skid_ok = skid && X509_pubkey_digest(c, sha1_md(), md, &mdlen) &&
                  value_is(skid, md, mdlen);
    ASN1_OCTET_STRING_free(skid);
    if (!skid_ok)
        return fail(why, whylen, "subjectKeyIdentifier is not the SHA-1 of the public key");

    const ASN1_OCTET_STRING *ca_skid = X509_get0_subject_key_id(issuing_ca);
    i = X509_get_ext_by_NID(c, NID_authority_key_identifier, -1);
    if (!ca_skid) {
        if (i >= 0)
            return fail(why, whylen,
                        "authorityKeyIdentifier is present but the CA has no subjectKeyIdentifier");
        return 0;
    }
    if (i < 0)
        return fail(why, whylen, "authorityKeyIdentifier extension is missing");
    if (X509_EXTENSION_get_critical(X509_get_ext(c, i)))
        return fail(why, whylen, "authorityKeyIdentifier extension is critical");
    AUTHORITY_KEYID *akid = X509_get_ext_d2i(c, NID_authority_key_identifier, NULL, NULL);
    int akid_ok = akid && akid->keyid && !akid->issuer && !akid->serial &&
                  ASN1_OCTET_STRING_cmp(akid->keyid, ca_skid) == 0;
    AUTHORITY_KEYID_free(akid);
    if (!akid_ok)
        return fail(why, whylen,
                    "authorityKeyIdentifier is not exactly the CA's subjectKeyIdentifier");
    return 0;
}

static int str_is(const ASN1_STRING *s, const char *want)
{
    return ASN1_STRING_length(s) == (int)strlen(want) &&
           memcmp(ASN1_STRING_get0_data(s), want, strlen(want)) == 0;
}

static int name_matches(const GENERAL_NAME *gn, const principal *p)
{
    int type;
    void *val = GENERAL_NAME_get0_value(gn, &type);
    if (!p->san_value)
        return 0;
    switch (p->san_kind) {
    case SAN_EMAIL: return type == GEN_EMAIL && str_is(val, p->san_value);
    case SAN_URI: return type == GEN_URI && str_is(val, p->san_value);
    case SAN_OTHERNAME_USERNAME: {
        ASN1_OBJECT *oid = NULL;
        ASN1_TYPE *v = NULL;
        if (!GENERAL_NAME_get0_otherName(gn, &oid, &v) || !v || v->type != V_ASN1_UTF8STRING)
            return 0;
        return fulcio_oid_arc(oid) == 7 && str_is(v->value.utf8string, p->san_value);
    }
    }
    return 0;
}

static int check_san(X509 *c, const principal *p, char *why, size_t whylen)
{
    int i = X509_get_ext_by_NID(c, NID_subject_alt_name, -1);
    if (i < 0)
        return fail(why, whylen, "SAN extension is missing");
    if (!X509_EXTENSION_get_critical(X509_get_ext(c, i)))
        return fail(why, whylen, "SAN extension is not critical");
    GENERAL_NAMES *names = X509_get_ext_d2i(c, NID_subject_alt_name, NULL, NULL);
    if (!names)
        return fail(why, whylen, "SAN extension cannot be decoded");
    int count = sk_GENERAL_NAME_num(names), rc = 0;
    if (count != 1)
        rc = fail(why, whylen, "SAN has %d names, not exactly one", count);
    else if (!name_matches(sk_GENERAL_NAME_value(names, 0), p))
        rc = fail(why, whylen, "SAN name is not the principal's");
    GENERAL_NAMES_free(names);
    return rc;
}

/* Each .n present exactly when the principal sets it, non-critical, with the exact value. */
static int check_fulcio_exts(X509 *c, const principal *p, char *why, size_t whylen)
{
    for (int n = 1; n <= FULCIO_EXT_MAX; n++) {
        if (n == 7)
            continue;
        const ASN1_OBJECT *oid = fulcio_oid(n);
        if (!oid)
            return fail(why, whylen, "out of memory");
        int i = X509_get_ext_by_OBJ(c, oid, -1);
        const char *v = p->ext[n];
        int want = v && *v;
        if (!want) {
            if (i >= 0)
                return fail(why, whylen, "extension " FULCIO_OID_PREFIX "%d is present but not set",
                            n);
            continue;
        }
        if (i < 0)
            return fail(why, whylen, "extension " FULCIO_OID_PREFIX "%d is missing", n);
        if (X509_EXTENSION_get_critical(X509_get_ext(c, i)))
            return fail(why, whylen, "extension " FULCIO_OID_PREFIX "%d is critical", n);
        const ASN1_OCTET_STRING *got = ext_value(c, i);
        size_t len = strlen(v);
        int ok;
        if (n <= 6) {
            ok = value_is(got, (const unsigned char *)v, len);
        } else {
            /* DER UTF8String: 0c, definite length, bytes. */
            const unsigned char *d = ASN1_STRING_get0_data(got);
            long dlen = ASN1_STRING_length(got), clen = 0;
            int tag = 0, cls = 0;
            const unsigned char *q = d;
            int r = ASN1_get_object(&q, &clen, &tag, &cls, dlen);
            /* r == 0: no error, primitive, definite length */
            ok = r == 0 && tag == V_ASN1_UTF8STRING &&
                 cls == V_ASN1_UNIVERSAL && (size_t)clen == len && q + clen == d + dlen &&
                 memcmp(q, v, len) == 0;
        }
        if (!ok)
            return fail(why, whylen,
                        "extension " FULCIO_OID_PREFIX "%d does not hold the principal's value", n);
    }
    return 0;
}

/* The SPKI passes the client key policy. EC keys (the allowed curves, a well-formed point) and
 * Ed25519 keys are checked on the AlgorithmIdentifier and the key bits, without decoding them into
 * an EVP_PKEY (ca/cert_profile.c sets them that way); anything else is decoded and checked by
 * client_key_policy_check. */
static int check_public_key(X509 *c, char *why, size_t whylen)
{
    X509_PUBKEY *xpk = X509_get_X509_PUBKEY(c);
    ASN1_OBJECT *alg = NULL;
    const unsigned char *bits = NULL;
    int nbits = 0, ptype = V_ASN1_UNDEF;
    X509_ALGOR *a = NULL;
    const void *pval = NULL;
    if (!xpk || !X509_PUBKEY_get0_param(&alg, &bits, &nbits, &a, xpk) || !alg || !a) {
        snprintf(why, whylen, "public key cannot be read");
        return -1;
    }
    X509_ALGOR_get0(NULL, &ptype, &pval, a);
    int nid = OBJ_obj2nid(alg);
    if (nid == NID_ED25519) {
        if (ptype != V_ASN1_UNDEF || nbits != 32) {
            snprintf(why, whylen, "Ed25519 key: parameters present or %d bytes instead of 32",
                     nbits);
            return -1;
        }
        return 0;
    }
    if (nid == NID_X9_62_id_ecPublicKey) {
        int curve = ptype == V_ASN1_OBJECT ? OBJ_obj2nid(pval) : NID_undef;
        int field = curve == NID_X9_62_prime256v1 ? 32
                    : curve == NID_secp384r1      ? 48
                    : curve == NID_secp521r1      ? 66
                                                  : 0;
        if (!field) {
            snprintf(why, whylen, "EC curve %s is not allowed (allowed: P-256, P-384, P-521)",
                     curve != NID_undef ? OBJ_nid2sn(curve) : "(not a named curve)");
            return -1;
        }
        int ok = nbits > 0 && ((bits[0] == 0x04 && nbits == 1 + 2 * field) ||
                               ((bits[0] == 0x02 || bits[0] == 0x03) && nbits == 1 + field));
        if (!ok) {
            snprintf(why, whylen, "EC point of %d bytes is not a point on %s", nbits,
                     OBJ_nid2sn(curve));
            return -1;
        }
        return 0;
    }
    EVP_PKEY *key = X509_get0_pubkey(c);
    if (!key) {
        snprintf(why, whylen, "public key cannot be read");
        return -1;
    }
    return client_key_policy_check(key, why, whylen);
}

static int check_parsed(X509 *c, const principal *p, X509 *issuing_ca,
                        const X509_ALGOR *sig_alg, time_t now, char *why, size_t whylen)
{
    char kwhy[256] = "";
    if (X509_get_version(c) != X509_VERSION_3)
        return fail(why, whylen, "version is not v3");
    if (check_serial(c, why, whylen) != 0)
        return -1;
    const unsigned char *subj = NULL;
    size_t subjlen = 0;
    if (X509_NAME_entry_count(X509_get_subject_name(c)) != 0 ||
        !X509_NAME_get0_der(X509_get_subject_name(c), &subj, &subjlen) || subjlen != 2)
        return fail(why, whylen, "subject is not empty");
    if (!name_der_equal(X509_get_issuer_name(c), X509_get_subject_name(issuing_ca)))
        return fail(why, whylen, "issuer is not the issuing CA's subject");
    if (check_validity(c, now, why, whylen) != 0)
        return -1;
    if (X509_ALGOR_cmp(X509_get0_tbs_sigalg(c), sig_alg) != 0)
        return fail(why, whylen, "TBS signature algorithm is not the signer's");
    if (check_public_key(c, kwhy, sizeof kwhy) != 0)
        return fail(why, whylen, "client key: %s", kwhy);
    if (check_extension_set(c, why, whylen) != 0 || check_usages(c, why, whylen) != 0 ||
        check_key_ids(c, issuing_ca, why, whylen) != 0 || check_san(c, p, why, whylen) != 0 ||
        check_fulcio_exts(c, p, why, whylen) != 0)
        return -1;
    return 0;
}

int preissuance_check(X509 *cert, const principal *p, X509 *issuing_ca,
                      const X509_ALGOR *sig_alg, time_t now, char *why, size_t whylen)
{
    if (!cert || !p || !issuing_ca || !sig_alg)
        return fail(why, whylen, "missing input");
    return check_parsed(cert, p, issuing_ca, sig_alg, now, why, whylen);
}
