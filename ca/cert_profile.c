/*
 * ca/cert_profile.c: builds the unsigned leaf certificate of fulcio-compat.md §4.1-4.3.
 *
 * Everything goes through OpenSSL's X509 API; the only hand-made encodings are the extension
 * values OpenSSL has no type for (the Fulcio OIDs, whose values are raw bytes or a DER
 * UTF8String). Extensions are appended in Go's x509 order so the DER matches Fulcio's.
 */
#include "ca/cert_profile.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ca/client_key.h"
#include "ca/fulcio_oid.h"
#include "common/digest_md.h"

#define SERIAL_BITS 159

static void set_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || !whylen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* Random bytes for serial numbers, drawn from OpenSSL's DRBG a page at a time per thread:
 * RAND_bytes costs ~4 us per call here (DRBG generate, fork check, locks) whatever the size, and
 * a serial needs 20 bytes. Serials are public once issued, so holding the next ones in memory
 * exposes nothing; a fork empties the forking thread's pool (the child must not repeat its
 * parent's serials). */
#define SERIAL_POOL_BYTES 4000 /* 200 serials */
static _Thread_local unsigned char serial_pool[SERIAL_POOL_BYTES];
static _Thread_local size_t serial_pool_left;
static pthread_once_t serial_pool_once = PTHREAD_ONCE_INIT;

static void serial_pool_forget(void) { serial_pool_left = 0; }
static void serial_pool_init(void) { pthread_atfork(NULL, NULL, serial_pool_forget); }

static int serial_random(unsigned char *out, size_t n)
{
    pthread_once(&serial_pool_once, serial_pool_init);
    if (serial_pool_left < n) {
        if (RAND_bytes(serial_pool, sizeof serial_pool) != 1)
            return 0;
        serial_pool_left = sizeof serial_pool;
    }
    unsigned char *p = serial_pool + sizeof serial_pool - serial_pool_left;
    memcpy(out, p, n);
    OPENSSL_cleanse(p, n);
    serial_pool_left -= n;
    return 1;
}

/* Uniform in [1, 2^159): 159 random bits (20 bytes, the top bit cleared), drawn again on 0. */
static int set_serial(X509 *x)
{
    unsigned char b[(SERIAL_BITS + 7) / 8];
    int zero;
    do {
        if (!serial_random(b, sizeof b))
            return 0;
        b[0] &= 0xff >> (8 * sizeof b - SERIAL_BITS);
        zero = 1;
        for (size_t i = 0; i < sizeof b; i++)
            zero &= b[i] == 0;
    } while (zero);
    BIGNUM *r = BN_bin2bn(b, (int)sizeof b, NULL);
    int ok = r && BN_to_ASN1_INTEGER(r, X509_get_serialNumber(x)) != NULL;
    BN_free(r);
    return ok;
}

/* notBefore = now, notAfter = now + 600 s; ASN1_TIME_set picks UTCTime up to 2049 as Go does. */
static int set_validity(X509 *x, time_t now)
{
    ASN1_TIME *nb = ASN1_TIME_set(NULL, now);
    ASN1_TIME *na = ASN1_TIME_set(NULL, now + CERT_VALIDITY_SECONDS);
    int ok = nb && na && X509_set1_notBefore(x, nb) && X509_set1_notAfter(x, na);
    ASN1_TIME_free(nb);
    ASN1_TIME_free(na);
    return ok;
}

/* The TBS signature algorithm and, so that the structure encodes, the outer one too (issue.c
 * sets the outer one again when it adds the signature). */
static int set_sig_alg(X509 *x, const X509_ALGOR *sig_alg)
{
    const X509_ALGOR *outer = NULL;
    X509_get0_signature(NULL, &outer, x);
    /* OpenSSL 3.0 has no setter for these: X509_get0_tbs_sigalg / X509_get0_signature return
     * pointers into the (non-const) certificate we own, so casting away const is safe here. */
    X509_ALGOR *tbs_alg = (X509_ALGOR *)X509_get0_tbs_sigalg(x);
    return X509_ALGOR_copy(tbs_alg, sig_alg) && X509_ALGOR_copy((X509_ALGOR *)outer, sig_alg);
}

/* Appends ext (NULL: fails) to x's extensions and hands it over to x; on failure ext is freed.
 * X509_add_ext would append a copy, made by encoding and decoding the extension: about 1.5 % of
 * a worker's time for a profile's five to ten extensions. Only the first extension goes through
 * it, because it creates x's list. X509_get0_extensions returns that list, the one x owns and
 * frees (OpenSSL 3.0 has no non-const getter); X509v3_add_ext pushes onto it the same way. */
static int add_owned_ext(X509 *x, X509_EXTENSION *ext)
{
    if (!ext)
        return 0;
    STACK_OF(X509_EXTENSION) *list = (STACK_OF(X509_EXTENSION) *)X509_get0_extensions(x);
    int ok = list ? sk_X509_EXTENSION_push(list, ext) > 0 : X509_add_ext(x, ext, -1);
    if (!ok || !list)
        X509_EXTENSION_free(ext);
    return ok;
}

static int add_key_usage(X509 *x)
{
    ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
    int ok = ku && ASN1_BIT_STRING_set_bit(ku, 0, 1) && /* digitalSignature */
             add_owned_ext(x, X509V3_EXT_i2d(NID_key_usage, 1, ku));
    ASN1_BIT_STRING_free(ku);
    return ok;
}

static int add_ext_key_usage(X509 *x)
{
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    ASN1_OBJECT *cs = OBJ_nid2obj(NID_code_sign);
    int ok = eku && cs && sk_ASN1_OBJECT_push(eku, cs) > 0 &&
             add_owned_ext(x, X509V3_EXT_i2d(NID_ext_key_usage, 0, eku));
    sk_ASN1_OBJECT_free(eku); /* OBJ_nid2obj objects are static */
    return ok;
}

/* RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING contents. */
static int add_subject_key_id(X509 *x)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!X509_pubkey_digest(x, sha1_md(), md, &mdlen))
        return 0;
    ASN1_OCTET_STRING *skid = ASN1_OCTET_STRING_new();
    int ok = skid && ASN1_OCTET_STRING_set(skid, md, (int)mdlen) &&
             add_owned_ext(x, X509V3_EXT_i2d(NID_subject_key_identifier, 0, skid));
    ASN1_OCTET_STRING_free(skid);
    return ok;
}

/* keyIdentifier only, = the CA's SKID; nothing when the CA has none. */
static int add_authority_key_id(X509 *x, X509 *issuing_ca)
{
    const ASN1_OCTET_STRING *ca_skid = X509_get0_subject_key_id(issuing_ca);
    if (!ca_skid)
        return 1;
    AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
    int ok = 0;
    if (!akid || !(akid->keyid = ASN1_OCTET_STRING_dup(ca_skid)))
        goto done;
    ok = add_owned_ext(x, X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid));
done:
    AUTHORITY_KEYID_free(akid);
    return ok;
}

static int is_ia5(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

static GENERAL_NAME *make_name(const principal *p, char *why, size_t whylen)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    if (!gn)
        goto oom;
    if (p->san_kind == SAN_EMAIL || p->san_kind == SAN_URI) {
        if (!is_ia5(p->san_value)) {
            set_why(why, whylen, "the SAN value \"%s\" cannot be encoded as an IA5String",
                    p->san_value);
            GENERAL_NAME_free(gn);
            return NULL;
        }
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        if (!s || !ASN1_STRING_set(s, p->san_value, (int)strlen(p->san_value))) {
            ASN1_IA5STRING_free(s);
            goto oom;
        }
        GENERAL_NAME_set0_value(gn, p->san_kind == SAN_EMAIL ? GEN_EMAIL : GEN_URI, s);
        return gn;
    }
    if (p->san_kind == SAN_OTHERNAME_USERNAME) {
        ASN1_OBJECT *oid = OBJ_dup(fulcio_oid(7));
        ASN1_UTF8STRING *u = ASN1_UTF8STRING_new();
        ASN1_TYPE *val = ASN1_TYPE_new();
        if (!oid || !u || !val || !ASN1_STRING_set(u, p->san_value, (int)strlen(p->san_value))) {
            ASN1_OBJECT_free(oid);
            ASN1_UTF8STRING_free(u);
            ASN1_TYPE_free(val);
            goto oom;
        }
        ASN1_TYPE_set(val, V_ASN1_UTF8STRING, u); /* the OTHERNAME template adds [0] EXPLICIT */
        if (!GENERAL_NAME_set0_othername(gn, oid, val)) {
            ASN1_OBJECT_free(oid);
            ASN1_TYPE_free(val);
            goto oom;
        }
        return gn;
    }
    set_why(why, whylen, "unknown SAN kind %d", (int)p->san_kind);
    GENERAL_NAME_free(gn);
    return NULL;
oom:
    GENERAL_NAME_free(gn);
    set_why(why, whylen, "out of memory building the SAN");
    return NULL;
}

/* Critical (the subject is empty), exactly one name. */
static int add_san(X509 *x, const principal *p, char *why, size_t whylen)
{
    GENERAL_NAME *gn = make_name(p, why, whylen);
    if (!gn)
        return 0;
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    if (!names || sk_GENERAL_NAME_push(names, gn) <= 0) {
        GENERAL_NAME_free(gn);
        sk_GENERAL_NAME_free(names);
        set_why(why, whylen, "out of memory building the SAN");
        return 0;
    }
    int ok = add_owned_ext(x, X509V3_EXT_i2d(NID_subject_alt_name, 1, names));
    GENERAL_NAMES_free(names);
    if (!ok)
        set_why(why, whylen, "cannot add the SAN extension");
    return ok;
}

/* 1.3.6.1.4.1.57264.1.n, non-critical; extnValue = `value` as is. */
static int add_raw_ext(X509 *x, int n, const unsigned char *value, int len)
{
    const ASN1_OBJECT *oid = fulcio_oid(n);
    X509_EXTENSION *ext = oid ? X509_EXTENSION_new() : NULL;
    if (!ext)
        return 0;
    if (!X509_EXTENSION_set_object(ext, oid) ||
        !ASN1_OCTET_STRING_set(X509_EXTENSION_get_data(ext), value, len)) {
        X509_EXTENSION_free(ext);
        return 0;
    }
    return add_owned_ext(x, ext);
}

/* .1-.6 raw bytes (Fulcio's deprecated encoding), .8-.24 DER UTF8String; empty = not written. */
static int add_fulcio_exts(X509 *x, const principal *p, char *why, size_t whylen)
{
    for (int n = 1; n <= FULCIO_EXT_MAX; n++) {
        const char *v = p->ext[n];
        if (n == 7 || !v || !*v)
            continue;
        int len = (int)strlen(v), ok;
        if (n <= 6) {
            ok = add_raw_ext(x, n, (const unsigned char *)v, len);
        } else {
            ASN1_UTF8STRING *u = ASN1_UTF8STRING_new();
            unsigned char *der = NULL;
            int derlen = -1;
            if (u && ASN1_STRING_set(u, v, len))
                derlen = i2d_ASN1_UTF8STRING(u, &der);
            ok = derlen > 0 && add_raw_ext(x, n, der, derlen);
            OPENSSL_free(der);
            ASN1_UTF8STRING_free(u);
        }
        if (!ok) {
            set_why(why, whylen, "cannot add extension " FULCIO_OID_PREFIX "%d", n);
            return 0;
        }
    }
    return 1;
}

/* The client's SPKI. For EC keys on the allowed curves and Ed25519 the AlgorithmIdentifier and the
 * key bits are set directly (X509_PUBKEY_set0_param), the same bytes OpenSSL's encoder writes:
 * X509_set_pubkey runs OpenSSL 3.0's encoder framework, which costs more than an ECDSA signature.
 * Other keys (RSA) go through X509_set_pubkey. */
static int set_public_key(X509 *x, EVP_PKEY *key)
{
    int curve = NID_undef, ed25519 = 0, ok;
    unsigned char buf[160];
    size_t len = sizeof buf;
    const unsigned char *point = client_key_ec_point(key, &curve, &len);
    if (point) {
        if (len > sizeof buf)
            return 0;
        memcpy(buf, point, len);
        ok = 1;
    } else {
        char group[32];
        if (EVP_PKEY_is_a(key, "EC") &&
            EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                           NULL) == 1)
            curve = OBJ_sn2nid(group) != NID_undef ? OBJ_sn2nid(group) : EC_curve_nist2nid(group);
        ed25519 = EVP_PKEY_is_a(key, "ED25519");
        if (curve != NID_X9_62_prime256v1 && curve != NID_secp384r1 && curve != NID_secp521r1 &&
            !ed25519)
            return X509_set_pubkey(x, key);
        ok = ed25519 ? EVP_PKEY_get_raw_public_key(key, buf, &len) == 1
                     : EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                                       buf, sizeof buf, &len) == 1;
    }
    if (!ok || len == 0 || len > sizeof buf)
        return 0;
    unsigned char *bits = OPENSSL_memdup(buf, len);
    if (!bits)
        return 0;
    X509_PUBKEY *pub = X509_get_X509_PUBKEY(x);
    if (ed25519)
        ok = X509_PUBKEY_set0_param(pub, OBJ_nid2obj(NID_ED25519), V_ASN1_UNDEF, NULL, bits,
                                    (int)len);
    else
        ok = X509_PUBKEY_set0_param(pub, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
                                    OBJ_nid2obj(curve), bits, (int)len);
    if (!ok)
        OPENSSL_free(bits);
    return ok;
}

X509 *cert_profile_build(const principal *p, EVP_PKEY *client_key, X509 *issuing_ca,
                         const X509_ALGOR *sig_alg, time_t now, char *why, size_t whylen)
{
    if (!p || !client_key || !issuing_ca || !sig_alg) {
        set_why(why, whylen, "certificate profile: missing input");
        return NULL;
    }
    if (!p->san_value || !*p->san_value) {
        set_why(why, whylen, "the principal has no SAN value");
        return NULL;
    }
    X509 *x = X509_new();
    if (!x) {
        set_why(why, whylen, "out of memory");
        return NULL;
    }
    const char *step;
    step = "version";
    if (!X509_set_version(x, X509_VERSION_3))
        goto fail;
    step = "serial number";
    if (!set_serial(x))
        goto fail;
    step = "signature algorithm";
    if (!set_sig_alg(x, sig_alg))
        goto fail;
    step = "issuer";
    if (!X509_set_issuer_name(x, X509_get_subject_name(issuing_ca)))
        goto fail;
    /* The subject stays the empty X509_NAME that X509_new made. */
    step = "validity";
    if (!set_validity(x, now))
        goto fail;
    step = "public key";
    if (!set_public_key(x, client_key))
        goto fail;
    step = "keyUsage";
    if (!add_key_usage(x))
        goto fail;
    step = "extKeyUsage";
    if (!add_ext_key_usage(x))
        goto fail;
    step = "subjectKeyIdentifier";
    if (!add_subject_key_id(x))
        goto fail;
    step = "authorityKeyIdentifier";
    if (!add_authority_key_id(x, issuing_ca))
        goto fail;
    if (!add_san(x, p, why, whylen) || !add_fulcio_exts(x, p, why, whylen)) {
        X509_free(x);
        return NULL;
    }
    return x;
fail:
    set_why(why, whylen, "certificate profile: cannot set the %s", step);
    X509_free(x);
    return NULL;
}
