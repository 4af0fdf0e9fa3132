/*
 * hsm/signer.c: what every backend shares: the retrying, verifying sign call, the algorithm
 * a key implies, and freeing.
 */
#include "hsm/signer.h"

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/evp_once.h"
#include "common/metrics.h"

static const char *kind_of(const signer *s)
{
    return s->kind ? s->kind : "unknown";
}

/* Checks sig over tbs with the signer's public key and digest (NID_undef: pure Ed25519). */
static int verify_signature(const signer *s, const unsigned char *tbs, size_t tbslen,
                            const unsigned char *sig, size_t siglen)
{
    const EVP_MD *md = NULL;
    if (s->md_nid != NID_undef && (md = EVP_get_digestbynid(s->md_nid)) == NULL)
        return 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, md, NULL, s->public_key) == 1 &&
             evp_verify_once(ctx, sig, siglen, tbs, tbslen) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static int sign_once_more(signer *s, const unsigned char *tbs, size_t tbslen, unsigned char *sig,
                          size_t *siglen, char *why, size_t whylen);

int signer_healthy(const signer *s)
{
    return s && atomic_load_explicit((_Atomic int *)&s->sign_failed, memory_order_relaxed) == 0;
}

/* fulcrum_hsm_sign_seconds{backend} and fulcrum_hsm_sign_errors_total{backend}: every
 * signer_sign call (retry included), whatever the backend. */
static void observe(const signer *s, double seconds, int failed)
{
    static const double buckets[] = {.0001, .00025, .0005, .001, .0025, .005, .01,
                                     .025,  .05,    .1,    .25,  .5,    1,    2.5, 5};
    static const char *const labels[] = {"backend", NULL};
    static metric_family *_Atomic lat, *_Atomic err; /* registration is idempotent */
    metric_family *l = atomic_load(&lat), *e = atomic_load(&err);
    if (!l) {
        l = metrics_histogram("fulcrum_hsm_sign_seconds",
                              "Time of one CA signature (signer_sign, retry included)", labels,
                              buckets, sizeof buckets / sizeof buckets[0]);
        atomic_store(&lat, l);
    }
    if (!e) {
        e = metrics_counter("fulcrum_hsm_sign_errors_total",
                            "CA signatures that failed (after the retry)", labels);
        atomic_store(&err, e);
    }
    metric_observe(metric_get1(l, kind_of(s)), seconds);
    if (failed)
        metric_inc(metric_get1(e, kind_of(s)));
    else
        metric_get1(e, kind_of(s)); /* the backend's error series shows 0 */
}

int signer_sign(signer *s, const unsigned char *tbs, size_t tbslen, unsigned char *sig,
                size_t *siglen, char *why, size_t whylen)
{
    if (!s || !s->ops || !s->ops->sign || !s->public_key || !sig || !siglen || (!tbs && tbslen)) {
        snprintf(why, whylen, "signer_sign: invalid arguments");
        return -1;
    }
    double t0 = metrics_now();
    int rc = sign_once_more(s, tbs, tbslen, sig, siglen, why, whylen);
    observe(s, metrics_now() - t0, rc != 0);
    atomic_store_explicit(&s->sign_failed, rc != 0, memory_order_relaxed);
    return rc;
}

/* The sign call, its one retry after SIGNER_RETRY, and the verification. */
static int sign_once_more(signer *s, const unsigned char *tbs, size_t tbslen, unsigned char *sig,
                          size_t *siglen, char *why, size_t whylen)
{
    char reason[256] = "";
    const size_t cap = *siglen;
    enum signer_status st = s->ops->sign(s->impl, tbs, tbslen, sig, siglen, reason, sizeof reason);
    if (st == SIGNER_RETRY) {
        if (s->ops->reconnect && s->ops->reconnect(s->impl, reason, sizeof reason) != 0) {
            snprintf(why, whylen, "%s signer cannot reconnect: %s", kind_of(s), reason);
            *siglen = cap;
            return -1;
        }
        *siglen = cap;
        reason[0] = '\0';
        st = s->ops->sign(s->impl, tbs, tbslen, sig, siglen, reason, sizeof reason);
        if (st != SIGNER_OK) {
            snprintf(why, whylen, "%s signer failed after a retry: %s", kind_of(s), reason);
            *siglen = cap;
            return -1;
        }
    }
    if (st != SIGNER_OK) {
        snprintf(why, whylen, "%s signer failed: %s", kind_of(s), reason);
        *siglen = cap;
        return -1;
    }
    if (*siglen == 0 || *siglen > cap) {
        snprintf(why, whylen, "%s signer returned a signature of %zu bytes for a %zu-byte buffer",
                 kind_of(s), *siglen, cap);
        *siglen = cap;
        return -1;
    }
    if (!s->ops->in_process && !verify_signature(s, tbs, tbslen, sig, *siglen)) {
        ERR_clear_error();
        snprintf(why, whylen, "signature from %s signer does not verify", kind_of(s));
        return -1;
    }
    return 0;
}

X509 *signer_issuing_cert(const signer *s)
{
    if (!s || !s->chain || sk_X509_num(s->chain) < 1)
        return NULL;
    return sk_X509_value(s->chain, 0);
}

static const char *type_name(EVP_PKEY *pk)
{
    const char *name = EVP_PKEY_get0_type_name(pk);
    return name ? name : "(unknown)";
}

/* EC curve -> (digest, signature algorithm); 0 when the curve is not supported. */
static int ec_algorithm(EVP_PKEY *pk, int *md_nid, int *sig_nid)
{
    char group[64];
    size_t len = 0;
    if (EVP_PKEY_get_group_name(pk, group, sizeof group, &len) != 1)
        return 0;
    int curve = OBJ_sn2nid(group);
    if (curve == NID_undef)
        curve = EC_curve_nist2nid(group);
    switch (curve) {
    case NID_X9_62_prime256v1:
        *md_nid = NID_sha256;
        *sig_nid = NID_ecdsa_with_SHA256;
        return 1;
    case NID_secp384r1:
        *md_nid = NID_sha384;
        *sig_nid = NID_ecdsa_with_SHA384;
        return 1;
    case NID_secp521r1:
        *md_nid = NID_sha512;
        *sig_nid = NID_ecdsa_with_SHA512;
        return 1;
    default:
        return 0;
    }
}

int signer_init_algorithm(signer *s, char *why, size_t whylen)
{
    if (!s || !s->public_key) {
        snprintf(why, whylen, "signer has no public key");
        return -1;
    }
    int md_nid, sig_nid, param_type;
    switch (EVP_PKEY_get_base_id(s->public_key)) {
    case EVP_PKEY_EC:
        if (!ec_algorithm(s->public_key, &md_nid, &sig_nid)) {
            ERR_clear_error();
            snprintf(why, whylen, "CA key: EC curve is not supported (supported: P-256, P-384, P-521)");
            return -1;
        }
        param_type = V_ASN1_UNDEF; /* RFC 5758: parameters absent */
        break;
    case EVP_PKEY_RSA:
        md_nid = NID_sha256;
        sig_nid = NID_sha256WithRSAEncryption;
        param_type = V_ASN1_NULL; /* RFC 4055: parameters NULL */
        break;
    case EVP_PKEY_ED25519:
        md_nid = NID_undef;
        sig_nid = NID_ED25519;
        param_type = V_ASN1_UNDEF; /* RFC 8410: parameters absent */
        break;
    default:
        snprintf(why, whylen, "CA key type %s is not supported (supported: EC, RSA, Ed25519)",
                 type_name(s->public_key));
        return -1;
    }
    int size = EVP_PKEY_get_size(s->public_key);
    X509_ALGOR *alg = X509_ALGOR_new();
    if (size <= 0 || !alg || !X509_ALGOR_set0(alg, OBJ_nid2obj(sig_nid), param_type, NULL)) {
        X509_ALGOR_free(alg);
        ERR_clear_error();
        snprintf(why, whylen, "cannot set up the CA signature algorithm");
        return -1;
    }
    X509_ALGOR_free(s->sig_alg);
    s->sig_alg = alg;
    s->md_nid = md_nid;
    s->max_sig_len = (size_t)size;
    return 0;
}

void signer_free(signer *s)
{
    if (!s)
        return;
    if (s->ops && s->ops->destroy)
        s->ops->destroy(s->impl);
    EVP_PKEY_free(s->public_key);
    X509_ALGOR_free(s->sig_alg);
    sk_X509_pop_free(s->chain, X509_free);
    free(s);
}
