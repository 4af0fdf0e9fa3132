/*
 * ca/issue.c: principal + client key -> signed leaf certificate.
 *
 * validate the principal (client fault: ISSUE_VALIDATION_ERROR) -> build the profile ->
 * pre-issuance check -> sign the TBS through the signer -> add the signature -> encode, parse back
 * and verify against the issuing certificate's key. Anything failing after validation is the
 * CA's fault (ISSUE_CA_ERROR); its reason is for the log, not for the client.
 */
#include "ca/issue.h"

#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/cert_profile.h"
#include "ca/preissuance_check.h"

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

/* Encodes x, parses it back and verifies it with the issuer's key. Returns the parsed copy. */
static X509 *reencode_and_verify(X509 *x, X509 *issuing, char *why, size_t whylen)
{
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    if (len <= 0) {
        set_why(why, whylen, "the signed certificate cannot be encoded");
        return NULL;
    }
    const unsigned char *q = der;
    X509 *final = d2i_X509(NULL, &q, len);
    OPENSSL_free(der);
    if (!final) {
        set_why(why, whylen, "the signed certificate does not parse back");
        return NULL;
    }
    EVP_PKEY *ca_key = X509_get0_pubkey(issuing);
    if (!ca_key || X509_verify(final, ca_key) != 1) {
        set_why(why, whylen,
                "the signed certificate does not verify with the issuing certificate's key");
        X509_free(final);
        return NULL;
    }
    return final;
}

enum issue_result ca_issue_certificate(signer *s, const principal *p, EVP_PKEY *client_key,
                                       time_t now, X509 **out, char *why, size_t whylen)
{
    char r[512] = "";
    X509 *x = NULL;
    unsigned char *tbs = NULL, *sig = NULL;
    enum issue_result res = ISSUE_CA_ERROR;

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

    x = cert_profile_build(p, client_key, issuing, s->sig_alg, now, r, sizeof r);
    if (!x) {
        set_why(why, whylen, "building the certificate: %s", r);
        goto done;
    }
    if (preissuance_check(x, p, issuing, s->sig_alg, now, why, whylen) != 0)
        goto done;

    int tbslen = i2d_re_X509_tbs(x, &tbs);
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
    *out = reencode_and_verify(x, issuing, why, whylen);
    if (*out)
        res = ISSUE_OK;
done:
    OPENSSL_free(tbs);
    free(sig);
    X509_free(x);
    return res;
}
