/*
 * ca/audit_record.c: one audit record's JSON text from an issued certificate (ca/audit_log.h).
 */
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca/audit_log.h"
#include "common/json_text.h"
#include "common/digest_md.h"

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static char *serial_hex(X509 *cert)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *h = bn ? BN_bn2hex(bn) : NULL;
    BN_free(bn);
    if (!h)
        return NULL;
    char *out = strdup(h);
    OPENSSL_free(h);
    for (char *p = out; p && *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    return out;
}

/* SHA-256 over the DER SubjectPublicKeyInfo, as hex. */
static int key_sha256(X509 *cert, char out[65])
{
    unsigned char *der = NULL;
    int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    unsigned char md[32];
    unsigned int mdlen = 0;
    int ok = len > 0 && EVP_Digest(der, (size_t)len, md, &mdlen, sha256_md(), NULL) == 1 &&
             mdlen == 32;
    OPENSSL_free(der);
    if (ok)
        hex(md, 32, out);
    return ok ? 0 : -1;
}

static int asn1_time_rfc3339(const ASN1_TIME *t, char *out, size_t outlen)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return 0;
}

static void now_rfc3339(char *out, size_t outlen)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%.20s.%03dZ", base, (int)(ts.tv_nsec / 1000000));
}

static const char *san_type(enum san_kind k)
{
    switch (k) {
    case SAN_EMAIL: return "email";
    case SAN_URI: return "uri";
    case SAN_OTHERNAME_USERNAME: return "username";
    default: return "unknown";
    }
}

char *audit_record_json(const audit_entry *e)
{
    if (!e || !e->cert || !e->p || !e->p->san_value)
        return NULL;
    char when[48], nb[32], na[32], fp[65];
    now_rfc3339(when, sizeof when);
    if (asn1_time_rfc3339(X509_get0_notBefore(e->cert), nb, sizeof nb) != 0 ||
        asn1_time_rfc3339(X509_get0_notAfter(e->cert), na, sizeof na) != 0 ||
        key_sha256(e->cert, fp) != 0)
        return NULL;
    char *serial = serial_hex(e->cert);
    if (!serial)
        return NULL;
    json_text_obj o;
    json_text_obj_init(&o);
    json_text_obj_str(&o, "time", when);
    json_text_obj_str(&o, "serial", serial);
    json_text_obj_str(&o, "san_type", san_type(e->p->san_kind));
    json_text_obj_str(&o, "san", e->p->san_value);
    json_text_obj_str(&o, "issuer", e->oidc_issuer);
    json_text_obj_str(&o, "subject", e->subject);
    json_text_obj_str(&o, "key_sha256", fp);
    json_text_obj_str(&o, "not_before", nb);
    json_text_obj_str(&o, "not_after", na);
    /* SCT (RFC 6962 §3.2, TLS form): version (1), log id (32), timestamp (8, ms). */
    if (e->sct && e->sct_len >= 41) {
        unsigned long long ms = 0;
        for (int i = 0; i < 8; i++)
            ms = (ms << 8) | e->sct[33 + i];
        json_text_obj_int(&o, "sct_timestamp", (long long)ms);
    } else {
        json_text_obj_str(&o, "sct_timestamp", NULL);
    }
    json_text_obj_str(&o, "request_id", e->request_id);
    char *out = json_text_obj_finish(&o);
    free(serial);
    return out;
}
