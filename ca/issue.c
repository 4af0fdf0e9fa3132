/*
 * ca/issue.c: principal + client key -> signed leaf certificate.
 *
 * validate the principal (client fault: ISSUE_VALIDATION_ERROR) -> build the profile ->
 * pre-issuance check -> sign the TBS through the signer (which verifies signatures from keys
 * outside the process) -> add the signature -> check that the certificate's encoding carries
 * exactly the signed TBS. Anything failing after validation is the CA's fault (ISSUE_CA_ERROR);
 * its reason is for the log, not for the client.
 *
 * CT: the precertificate is the same profile with the poison appended (its encoding checked byte
 * for byte); the final certificate is the precertificate's own X509 object with the poison
 * deleted and the SCT list added last (OpenSSL's i2d_SCT_LIST method, which writes the TLS list
 * inside an OCTET STRING, itself inside extnValue), and the TBS correspondence is checked on the
 * bytes about to be signed before they are signed. Nothing is parsed back: with OpenSSL 3.0 every
 * certificate parse runs the key decoder, which cost more than the CA signature.
 */
#include "ca/issue.h"

#include <openssl/crypto.h>
#include <openssl/ct.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/cert_profile.h"
#include "ca/preissuance_check.h"
#include "common/x509_der.h"
#include "ct/tbs_der.h"

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

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    while (p < end) {
        unsigned char c = *p;
        size_t n;
        unsigned int cp;
        if (c < 0x80) {
            p++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, cp = c & 0x07;
        } else {
            return 0;
        }
        if ((size_t)(end - p) <= n)
            return 0;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* Can the principal be put into the certificate at all? (The client's fault if not.) */
static int embeddable(const principal *p, char *why, size_t whylen)
{
    if (p->san_kind != SAN_EMAIL && p->san_kind != SAN_URI &&
        p->san_kind != SAN_OTHERNAME_USERNAME) {
        set_why(why, whylen, "unsupported subject alternative name type");
        return 0;
    }
    if (!p->san_value || !*p->san_value) {
        set_why(why, whylen, "the identity has no value for the subject alternative name");
        return 0;
    }
    if (p->san_kind == SAN_OTHERNAME_USERNAME) {
        if (!utf8_valid(p->san_value)) {
            set_why(why, whylen, "the subject alternative name is not valid UTF-8");
            return 0;
        }
    } else {
        for (const unsigned char *c = (const unsigned char *)p->san_value; *c; c++) {
            if (*c >= 0x80) {
                set_why(why, whylen, "x509: \"%s\" cannot be encoded as an IA5String",
                        p->san_value);
                return 0;
            }
        }
    }
    for (int n = 8; n <= FULCIO_EXT_MAX; n++) {
        if (p->ext[n] && !utf8_valid(p->ext[n])) {
            set_why(why, whylen,
                    "the value of extension 1.3.6.1.4.1.57264.1.%d is not valid UTF-8", n);
            return 0;
        }
    }
    return 1;
}

/* Puts the signature and the outer AlgorithmIdentifier into x. */
static int attach_signature(X509 *x, const X509_ALGOR *alg, const unsigned char *sig,
                            size_t siglen)
{
    const ASN1_BIT_STRING *psig = NULL;
    const X509_ALGOR *palg = NULL;
    X509_get0_signature(&psig, &palg, x);
    /* OpenSSL 3.0 has no setter: these point into the certificate we own, so casting away const
     * is safe. */
    ASN1_BIT_STRING *bits = (ASN1_BIT_STRING *)psig;
    if (!X509_ALGOR_copy((X509_ALGOR *)palg, alg) ||
        !ASN1_BIT_STRING_set(bits, (unsigned char *)sig, (int)siglen))
        return 0;
    bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07); /* no unused bits */
    bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
    return 1;
}

/* Writes a DER length (below 2^32) at p (when p is not NULL); returns its size. */
static size_t der_len(unsigned char *p, size_t len)
{
    size_t n = len < 0x80 ? 0 : len <= 0xff ? 1 : len <= 0xffff ? 2 : len <= 0xffffff ? 3 : 4;
    if (p) {
        if (n == 0) {
            p[0] = (unsigned char)len;
        } else {
            p[0] = (unsigned char)(0x80 | n);
            for (size_t i = 0; i < n; i++)
                p[1 + i] = (unsigned char)(len >> (8 * (n - 1 - i)));
        }
    }
    return 1 + n;
}

/* Stores on x (common/x509_der.h) its encoding Certificate ::= SEQUENCE { tbs,
 * signatureAlgorithm, BIT STRING signature } (RFC 5280 §4.1) made from exactly the signed TBS
 * bytes. OpenSSL would re-encode the whole TBS from x's fields for it (only a parsed certificate
 * keeps its encoding); tests/unit/test_ct_issue checks both encodings are the same bytes. Out of
 * memory stores nothing (users then call i2d_X509); only an unencodable algorithm fails. */
static int store_signed_der(X509 *x, const unsigned char *tbs, size_t tbslen,
                            const unsigned char *sig, size_t siglen)
{
    const X509_ALGOR *alg = NULL;
    X509_get0_signature(NULL, &alg, x);
    unsigned char *alg_der = NULL;
    int alglen = alg ? i2d_X509_ALGOR(alg, &alg_der) : -1;
    if (alglen <= 0)
        return 0;
    if (tbslen > 0x7fffffff || siglen > 0xffff) {
        OPENSSL_free(alg_der);
        return 1; /* stores nothing: users call i2d_X509 */
    }
    size_t bits = 1 + siglen; /* the unused-bits byte, then the signature */
    size_t body = tbslen + (size_t)alglen + 1 + der_len(NULL, bits) + bits;
    size_t total = 1 + der_len(NULL, body) + body;
    unsigned char *der = malloc(total);
    if (der) {
        unsigned char *p = der;
        *p++ = 0x30;
        p += der_len(p, body);
        memcpy(p, tbs, tbslen);
        p += tbslen;
        memcpy(p, alg_der, (size_t)alglen);
        p += alglen;
        *p++ = 0x03;
        p += der_len(p, bits);
        *p++ = 0x00;
        memcpy(p, sig, siglen);
        x509_der_set(x, der, total);
        free(der);
    }
    OPENSSL_free(alg_der);
    return 1;
}

/* Signs x's TBS through the signer and attaches the signature; x is then the certificate. tbs:
 * x's TBS as i2d_re_X509_tbs encodes it, when the caller has it already (else NULL). */
static enum issue_result sign_into(signer *s, X509 *x, const unsigned char *given,
                                   size_t given_len, char *why, size_t whylen)
{
    char r[512] = "";
    unsigned char *tbs = NULL, *sig = NULL;
    enum issue_result res = ISSUE_CA_ERROR;

    x509_der_clear(x); /* x changes from here on */
    int tbslen = -1;
    if (given && given_len && given_len <= INT32_MAX && (tbs = OPENSSL_malloc(given_len))) {
        memcpy(tbs, given, given_len);
        tbslen = (int)given_len;
    } else {
        tbslen = i2d_re_X509_tbs(x, &tbs);
    }
    if (tbslen <= 0) {
        set_why(why, whylen, "issuance: the TBS cannot be encoded");
        goto done;
    }
    size_t siglen = s->max_sig_len;
    sig = malloc(siglen);
    if (!sig) {
        set_why(why, whylen, "issuance: out of memory");
        goto done;
    }
    if (signer_sign(s, tbs, (size_t)tbslen, sig, &siglen, r, sizeof r) != 0) {
        set_why(why, whylen, "signing the certificate: %s", r);
        goto done;
    }
    if (!attach_signature(x, s->sig_alg, sig, siglen)) {
        set_why(why, whylen, "issuance: cannot attach the signature");
        goto done;
    }
    if (!store_signed_der(x, tbs, (size_t)tbslen, sig, siglen)) {
        set_why(why, whylen, "issuance: the signature algorithm cannot be encoded");
        goto done;
    }
    res = ISSUE_OK;
done:
    OPENSSL_free(tbs);
    free(sig);
    return res;
}

/* The DER of the poison extension (ct-notes.md §1.6): critical, extnValue = DER NULL. */
static const unsigned char POISON_DER[] = {0x30, 0x13, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04,
                                           0x01, 0xd6, 0x79, 0x02, 0x04, 0x03, 0x01, 0x01,
                                           0xff, 0x04, 0x02, 0x05, 0x00};

/* Appends the poison extension to x and checks its encoding byte for byte. */
static int add_poison(X509 *x, char *why, size_t whylen)
{
    ASN1_NULL *null = ASN1_NULL_new();
    int ok = null && X509_add1_ext_i2d(x, NID_ct_precert_poison, null, 1, X509V3_ADD_DEFAULT) == 1;
    ASN1_NULL_free(null);
    if (!ok) {
        set_why(why, whylen, "precertificate: cannot add the poison extension");
        return 0;
    }
    int n = X509_get_ext_count(x);
    unsigned char *der = NULL;
    int len = n > 0 ? i2d_X509_EXTENSION(X509_get_ext(x, n - 1), &der) : -1;
    ok = len == (int)sizeof POISON_DER && memcmp(der, POISON_DER, sizeof POISON_DER) == 0 &&
         X509_get_ext_by_NID(x, NID_ct_precert_poison, -1) == n - 1;
    OPENSSL_free(der);
    if (!ok)
        set_why(why, whylen, "precertificate: the poison extension is not the last one or is "
                             "not encoded as 30 13 06 0a 2b 06 01 04 01 d6 79 02 04 03 01 01 ff "
                             "04 02 05 00");
    return ok;
}

static X509 *reparse(X509 *x);

static enum issue_result issue_profile(signer *s, const principal *p, EVP_PKEY *client_key,
                                       time_t now, int poison, int parsed, X509 **out,
                                       char *why, size_t whylen)
{
    char r[512] = "";

    if (out)
        *out = NULL;
    if (!s || !p || !client_key || !out) {
        set_why(why, whylen, "issuance: missing input");
        return ISSUE_CA_ERROR;
    }
    if (!embeddable(p, why, whylen))
        return ISSUE_VALIDATION_ERROR;
    X509 *issuing = signer_issuing_cert(s);
    if (!issuing || !s->sig_alg || s->max_sig_len == 0) {
        set_why(why, whylen, "issuance: the signer has no issuing certificate or algorithm");
        return ISSUE_CA_ERROR;
    }
    X509 *x = cert_profile_build(p, client_key, issuing, s->sig_alg, now, r, sizeof r);
    if (!x) {
        set_why(why, whylen, "building the certificate: %s", r);
        return ISSUE_CA_ERROR;
    }
    enum issue_result res = ISSUE_CA_ERROR;
    if ((!poison || add_poison(x, why, whylen)) &&
        preissuance_check(x, p, issuing, s->sig_alg, now, why, whylen) == 0)
        res = sign_into(s, x, NULL, 0, why, whylen);
    if (res == ISSUE_OK && parsed) {
        *out = reparse(x);
        if (!*out) {
            set_why(why, whylen, "issuance: the signed certificate does not parse back");
            res = ISSUE_CA_ERROR;
        }
    } else if (res == ISSUE_OK) {
        *out = x;
        x = NULL;
    }
    X509_free(x);
    return res;
}

enum issue_result ca_issue_certificate(signer *s, const principal *p, EVP_PKEY *client_key,
                                       time_t now, X509 **out, char *why, size_t whylen)
{
    return issue_profile(s, p, client_key, now, 0, 1, out, why, whylen);
}

enum issue_result ca_issue_precertificate(signer *s, const principal *p, EVP_PKEY *client_key,
                                          time_t now, X509 **out, char *why, size_t whylen)
{
    return issue_profile(s, p, client_key, now, 1, 1, out, why, whylen);
}

enum issue_result ca_issue_certificate_built(signer *s, const principal *p,
                                             EVP_PKEY *client_key, time_t now, X509 **out,
                                             char *why, size_t whylen)
{
    return issue_profile(s, p, client_key, now, 0, 0, out, why, whylen);
}

enum issue_result ca_issue_precertificate_built(signer *s, const principal *p,
                                                EVP_PKEY *client_key, time_t now, X509 **out,
                                                char *why, size_t whylen)
{
    return issue_profile(s, p, client_key, now, 1, 0, out, why, whylen);
}

/* A fresh parse of x's encoding (so what follows reads bytes, not x's in-memory state). */
static X509 *reparse(X509 *x)
{
    unsigned char *der = NULL;
    int len = x509_der_i2d(x, &der);
    if (len <= 0)
        return NULL;
    const unsigned char *q = der;
    X509 *c = d2i_X509(NULL, &q, len);
    if (c && q != der + len) {
        X509_free(c);
        c = NULL;
    }
    OPENSSL_free(der);
    return c;
}

unsigned char *ca_tbs_without_ext(X509 *cert, int nid, size_t *len)
{
    X509 *c = cert ? reparse(cert) : NULL;
    unsigned char *tbs = NULL;
    int removed = 0, i;
    if (!c)
        return NULL;
    while ((i = X509_get_ext_by_NID(c, nid, -1)) >= 0) {
        X509_EXTENSION_free(X509_delete_ext(c, i));
        removed++;
    }
    int n = removed ? i2d_re_X509_tbs(c, &tbs) : -1;
    X509_free(c);
    if (n <= 0) {
        OPENSSL_free(tbs);
        return NULL;
    }
    if (len)
        *len = (size_t)n;
    return tbs;
}

/* The SCT list extension of x holds exactly the one SCT `sct`. */
static int sct_list_holds(X509 *x, const unsigned char *sct, size_t sct_len)
{
    int crit = -1;
    STACK_OF(SCT) *list = X509_get_ext_d2i(x, NID_ct_precert_scts, &crit, NULL);
    unsigned char *enc = NULL;
    int ok = list && crit == 0 && sk_SCT_num(list) == 1;
    if (ok) {
        int n = i2o_SCT(sk_SCT_value(list, 0), &enc);
        ok = n > 0 && (size_t)n == sct_len && memcmp(enc, sct, sct_len) == 0;
    }
    OPENSSL_free(enc);
    SCT_LIST_free(list);
    return ok;
}

/* The DER TBS of x with every `nid` extension cut out of the bytes (ct/tbs_der.h); NULL if x
 * has none or on error. The caller free()s it. With enc, *enc (OPENSSL_free) and *enc_len are
 * the whole TBS as i2d_re_X509_tbs encodes it, what sign_into signs. */
static unsigned char *tbs_cut(X509 *x, int nid, size_t *len, unsigned char **enc_out,
                              size_t *enc_len)
{
    unsigned char *enc = NULL;
    int elen = i2d_re_X509_tbs(x, &enc);
    unsigned char *cut =
        elen > 0 ? ct_tbs_der_without_ext(enc, (size_t)elen, nid, len, NULL, 0) : NULL;
    if (cut && enc_out) {
        *enc_out = enc;
        *enc_len = (size_t)elen;
        return cut;
    }
    OPENSSL_free(enc);
    return cut;
}

/* The signed certificate's TBS without `nid`, from its stored DER (common/x509_der.h) when it
 * has one, else as tbs_cut. */
static unsigned char *signed_tbs_cut(X509 *x, int nid, size_t *len)
{
    size_t tlen = 0;
    unsigned char *tbs = x509_der_get(x, &tlen) ? ct_tbs_der(x, &tlen) : NULL;
    unsigned char *cut = tbs ? ct_tbs_der_without_ext(tbs, tlen, nid, len, NULL, 0) : NULL;
    free(tbs);
    return cut ? cut : tbs_cut(x, nid, len, NULL, NULL);
}

enum issue_result ca_issue_final_certificate_from(signer *s, const principal *p,
                                                  X509 **precert, time_t now,
                                                  const unsigned char *sct, size_t sct_len,
                                                  X509 **out, char *why, size_t whylen)
{
    X509 *x = precert ? *precert : NULL;
    STACK_OF(SCT) *list = NULL;
    SCT *one = NULL;
    unsigned char *pre_full = NULL, *pre_tbs = NULL, *fin_tbs = NULL, *fin_enc = NULL;
    size_t pre_full_len = 0, pre_len = 0, fin_len = 0, fin_enc_len = 0;
    enum issue_result res = ISSUE_CA_ERROR;

    if (precert)
        *precert = NULL;
    if (out)
        *out = NULL;
    if (!s || !p || !x || !sct || !sct_len || !out) {
        set_why(why, whylen, "final certificate: missing input");
        goto done;
    }
    if (!signer_issuing_cert(s) || !s->sig_alg || s->max_sig_len == 0) {
        set_why(why, whylen, "issuance: the signer has no issuing certificate or algorithm");
        goto done;
    }
    /* Issued at `now` (the precertificate's notBefore, kept by the caller). */
    if (X509_cmp_time(X509_get0_notBefore(x), &(time_t){now - 1}) <= 0 ||
        X509_cmp_time(X509_get0_notBefore(x), &(time_t){now}) != -1) {
        set_why(why, whylen, "final certificate: the precertificate's notBefore is not the "
                             "issuance time given");
        goto done;
    }
    /* Exactly one poison, the last extension, critical. */
    int n = X509_get_ext_count(x), pi = X509_get_ext_by_NID(x, NID_ct_precert_poison, -1);
    if (pi < 0 || pi != n - 1 || X509_get_ext_by_NID(x, NID_ct_precert_poison, pi) >= 0 ||
        !X509_EXTENSION_get_critical(X509_get_ext(x, pi))) {
        set_why(why, whylen, "final certificate: the precertificate does not end with exactly "
                             "one critical poison extension");
        goto done;
    }
    if (X509_get_ext_by_NID(x, NID_ct_precert_scts, -1) >= 0) {
        set_why(why, whylen, "final certificate: the precertificate already has an SCT list");
        goto done;
    }
    /* The precertificate's TBS without the poison, as logs and OpenSSL rebuild it: the poison
     * cut out of the signed bytes. */
    size_t stored_len = 0;
    if (x509_der_get(x, &stored_len))
        pre_full = ct_tbs_der(x, &pre_full_len);
    pre_tbs = pre_full ? ct_tbs_der_without_ext(pre_full, pre_full_len, NID_ct_precert_poison,
                                                &pre_len, NULL, 0)
                       : NULL;
    if (!pre_tbs)
        pre_tbs = signed_tbs_cut(x, NID_ct_precert_poison, &pre_len);
    if (!pre_tbs) {
        set_why(why, whylen, "final certificate: the precertificate TBS cannot be encoded");
        goto done;
    }
    x509_der_clear(x); /* the precertificate's bytes: x becomes the certificate */
    X509_EXTENSION_free(X509_delete_ext(x, pi));

    const unsigned char *q = sct;
    one = o2i_SCT(NULL, &q, sct_len);
    if (!one || q != sct + sct_len) {
        set_why(why, whylen, "final certificate: the SCT (%zu bytes) does not parse", sct_len);
        goto done;
    }
    list = sk_SCT_new_null();
    if (!list || !sk_SCT_push(list, one)) {
        set_why(why, whylen, "final certificate: out of memory");
        goto done;
    }
    one = NULL; /* owned by list */
    if (X509_add1_ext_i2d(x, NID_ct_precert_scts, list, 0, X509V3_ADD_DEFAULT) != 1) {
        set_why(why, whylen, "final certificate: cannot add the SCT list extension");
        goto done;
    }
    if (X509_get_ext_by_NID(x, NID_ct_precert_scts, -1) != X509_get_ext_count(x) - 1 ||
        !sct_list_holds(x, sct, sct_len)) {
        set_why(why, whylen, "final certificate: the SCT list extension is not the last one or "
                             "does not hold exactly the SCT");
        goto done;
    }

    /* The correspondence every log and verifier relies on (ct-notes.md §1.7, §5), on the very
     * bytes sign_into will sign (i2d_re_X509_tbs), the SCT list cut out of them as DER. The SCT
     * was verified over the precertificate's TBS without the poison, so it verifies for the
     * final certificate exactly when this holds. The precertificate passed the pre-issuance
     * check, so the final certificate, equal to it but for the poison and the SCT list, does. */
    /* The TBS to sign: the precertificate's signed bytes with the poison replaced by the SCT
     * list extension as OpenSSL encodes it (ct_tbs_der_replace_ext), instead of encoding all of
     * x's fields again; else OpenSSL's encoding. The check below cuts the SCT list out of
     * these bytes with separate code, so a wrong splice is refused, not signed. */
    unsigned char *ext_der = NULL;
    int ext_len = pre_full ? i2d_X509_EXTENSION(X509_get_ext(x, X509_get_ext_count(x) - 1),
                                                &ext_der)
                           : -1;
    if (ext_len > 0)
        fin_enc = ct_tbs_der_replace_ext(pre_full, pre_full_len, NID_ct_precert_poison, ext_der,
                                         (size_t)ext_len, &fin_enc_len, NULL, 0);
    OPENSSL_free(ext_der);
    if (fin_enc) {
        fin_tbs = ct_tbs_der_without_ext(fin_enc, fin_enc_len, NID_ct_precert_scts, &fin_len,
                                         NULL, 0);
    } else {
        unsigned char *enc = NULL;
        fin_tbs = tbs_cut(x, NID_ct_precert_scts, &fin_len, &enc, &fin_enc_len);
        fin_enc = enc ? malloc(fin_enc_len) : NULL;
        if (fin_enc)
            memcpy(fin_enc, enc, fin_enc_len);
        OPENSSL_free(enc);
    }
    if (!fin_tbs || !fin_enc) {
        set_why(why, whylen, "final certificate: cannot encode the TBS for the correspondence "
                             "check");
        goto done;
    }
    if (pre_len != fin_len || memcmp(pre_tbs, fin_tbs, pre_len) != 0) {
        set_why(why, whylen, "final certificate: its TBS without the SCT list (%zu bytes) differs "
                             "from the precertificate's TBS without the poison (%zu bytes)",
                fin_len, pre_len);
        goto done;
    }
    res = sign_into(s, x, fin_enc, fin_enc_len, why, whylen);
    if (res == ISSUE_OK) {
        *out = x;
        x = NULL;
    }
done:
    free(pre_full);
    free(pre_tbs);
    free(fin_tbs);
    free(fin_enc);
    SCT_free(one);
    SCT_LIST_free(list);
    X509_free(x);
    return res;
}

enum issue_result ca_issue_final_certificate(signer *s, const principal *p, X509 *precert,
                                             time_t now, const unsigned char *sct,
                                             size_t sct_len, X509 **out, char *why,
                                             size_t whylen)
{
    if (out)
        *out = NULL;
    X509 *copy = precert ? reparse(precert) : NULL;
    if (precert && !copy) {
        set_why(why, whylen, "final certificate: the precertificate does not parse back");
        return ISSUE_CA_ERROR;
    }
    X509 *built = NULL;
    enum issue_result res =
        ca_issue_final_certificate_from(s, p, &copy, now, sct, sct_len, &built, why, whylen);
    if (res == ISSUE_OK) {
        *out = reparse(built);
        if (!*out) {
            set_why(why, whylen, "final certificate: the signed certificate does not parse back");
            res = ISSUE_CA_ERROR;
        }
    }
    X509_free(built);
    return res;
}
