/*
 * ct/sct_verify.c: SCT verification with OpenSSL's CT API (o2i_SCT, CTLOG_STORE,
 * CT_POLICY_EVAL_CTX, SCT_validate).
 *
 * OpenSSL 3.0 has no call that adds a CTLOG to a CTLOG_STORE: a store is only filled from a CONF
 * file ("enabled_logs = <name>" and a [<name>] section with "description" and "key" = base64 DER
 * SPKI). The verifier writes that text into an anonymous memory file (memfd; a temporary file
 * that is unlinked at once when memfd is unavailable) and loads it through /proc/self/fd. The
 * store is loaded once and only read afterwards.
 *
 * SCT_validate is the fallback, though: for the certificates this CA makes (DER, one poison or
 * one SCT list among other extensions) the verifier rebuilds the signed struct itself (RFC 6962
 * §3.2: the TBS without the poison or SCT list taken from the certificate's DER by ct/tbs_der.h,
 * the SHA-256 of the issuer's SubjectPublicKeyInfo, the SCT's own timestamp and extensions) and
 * checks it with the log key it decoded once. The unit test checks both ways against OpenSSL's
 * SCT_validate on the same SCTs.
 */
#include "ct/sct_verify.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/ct.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/evp_once.h"
#include "common/digest_md.h"
#include "ct/tbs_der.h"

struct ct_sct_verifier {
    EVP_PKEY *key;
    CTLOG_STORE *store;
    unsigned char log_id[32];
};

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

uint64_t ct_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void hex32(const unsigned char *b, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* An fd holding `text`, positioned anywhere (it is read through /proc/self/fd). */
static int text_fd(const char *text)
{
    int fd = memfd_create("fulcrum-ctlog-store", MFD_CLOEXEC);
    if (fd < 0) {
        const char *dir = getenv("TMPDIR");
        char path[4096];
        snprintf(path, sizeof path, "%s/fulcrum-ctlog-store-XXXXXX", dir && *dir ? dir : "/tmp");
        fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0)
            return -1;
        unlink(path);
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    return fd;
}

static CTLOG_STORE *store_for(EVP_PKEY *key, char *why, size_t whylen)
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(key, &der);
    if (len <= 0) {
        set_why(why, whylen, "the log's public key cannot be encoded");
        return NULL;
    }
    size_t b64cap = 4 * (((size_t)len + 2) / 3) + 1;
    char *b64 = malloc(b64cap);
    char *conf = b64 ? malloc(b64cap + 128) : NULL;
    CTLOG_STORE *store = NULL;
    int fd = -1;
    if (!conf) {
        set_why(why, whylen, "out of memory");
        goto done;
    }
    EVP_EncodeBlock((unsigned char *)b64, der, len);
    snprintf(conf, b64cap + 128,
             "enabled_logs = fulcrum\n[fulcrum]\ndescription = configured log\nkey = %s\n", b64);
    fd = text_fd(conf);
    if (fd < 0) {
        set_why(why, whylen, "cannot create the log store file: %s", strerror(errno));
        goto done;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    store = CTLOG_STORE_new();
    if (!store || CTLOG_STORE_load_file(store, path) != 1) {
        unsigned long e = ERR_peek_last_error();
        set_why(why, whylen, "OpenSSL cannot load the log's key into a CTLOG_STORE: %s",
                e ? ERR_reason_error_string(e) : "unknown error");
        ERR_clear_error();
        CTLOG_STORE_free(store);
        store = NULL;
    }
done:
    if (fd >= 0)
        close(fd);
    free(conf);
    free(b64);
    OPENSSL_free(der);
    return store;
}

ct_sct_verifier *ct_sct_verifier_new(EVP_PKEY *log_key, char *why, size_t whylen)
{
    if (!log_key) {
        set_why(why, whylen, "no log public key");
        return NULL;
    }
    ct_sct_verifier *v = calloc(1, sizeof *v);
    if (!v) {
        set_why(why, whylen, "out of memory");
        return NULL;
    }
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(log_key, &der);
    unsigned int mdlen = 0;
    if (len <= 0 || !EVP_Digest(der, (size_t)len, v->log_id, &mdlen, sha256_md(), NULL) ||
        mdlen != 32) {
        OPENSSL_free(der);
        free(v);
        set_why(why, whylen, "cannot compute the log ID");
        return NULL;
    }
    OPENSSL_free(der);
    v->store = store_for(log_key, why, whylen);
    if (!v->store) {
        free(v);
        return NULL;
    }
    /* The store must find the log under the ID we computed. */
    if (!CTLOG_STORE_get0_log_by_id(v->store, v->log_id, sizeof v->log_id)) {
        CTLOG_STORE_free(v->store);
        free(v);
        set_why(why, whylen, "OpenSSL's log store does not know the log under its ID");
        return NULL;
    }
    EVP_PKEY_up_ref(log_key);
    v->key = log_key;
    return v;
}

void ct_sct_verifier_free(ct_sct_verifier *v)
{
    if (!v)
        return;
    CTLOG_STORE_free(v->store);
    EVP_PKEY_free(v->key);
    free(v);
}

const unsigned char *ct_sct_verifier_log_id(const ct_sct_verifier *v)
{
    return v ? v->log_id : NULL;
}

/* The certificate's TBS without the poison or the SCT list, on its DER bytes (ct/tbs_der.h).
 * NULL when that way does not apply (then OpenSSL's SCT_validate rebuilds it). */
static unsigned char *entry_tbs(X509 *cert, int poisoned, size_t *len)
{
    size_t tlen = 0;
    unsigned char *tbs = ct_tbs_der(cert, &tlen);
    unsigned char *out = tbs ? ct_tbs_der_without_ext(tbs, tlen,
                                                      poisoned ? NID_ct_precert_poison
                                                               : NID_ct_precert_scts,
                                                      len, NULL, 0)
                             : NULL;
    free(tbs);
    return out;
}

/* RFC 6962 §3.2: the digitally-signed struct of a precert_entry SCT, checked with the log's key
 * (already decoded, kept by the verifier), or, with leaf_hash, compared with the bytes the log
 * signed (ct_sct_verify_own): 1 valid, 0 invalid, -1 out of memory. */
static int signature_valid(const ct_sct_verifier *v, const SCT *s, X509 *issuer,
                           const unsigned char *tbs, size_t tbs_len,
                           const unsigned char *leaf_hash)
{
    unsigned char ikh[32], *spki = NULL, *sig = NULL;
    unsigned int mdlen = 0;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(issuer), &spki);
    int ok = n > 0 && EVP_Digest(spki, (size_t)n, ikh, &mdlen, sha256_md(), NULL) && mdlen == 32;
    OPENSSL_free(spki);
    if (!ok)
        return 0;
    int nid = SCT_get_signature_nid(s);
    const char *type = nid == NID_ecdsa_with_SHA256 ? "EC"
                       : nid == NID_sha256WithRSAEncryption ? "RSA"
                                                            : NULL;
    size_t sig_len = SCT_get0_signature(s, &sig);
    if (!type || !EVP_PKEY_is_a(v->key, type) || !sig_len)
        return 0;
    unsigned char *ext = NULL;
    size_t ext_len = SCT_get0_extensions(s, &ext);
    if (tbs_len >= (1u << 24) || ext_len >= (1u << 16))
        return 0;
    size_t len = 1 + 1 + 8 + 2 + 32 + 3 + tbs_len + 2 + ext_len;
    /* One byte before the struct for the Merkle leaf prefix 0x00: the struct's first two bytes
     * (sct_version v1, certificate_timestamp) are the MerkleTreeLeaf's (v1, timestamped_entry),
     * so the log's leaf input and this signature input are the same bytes. */
    unsigned char *buf = malloc(1 + len), *m = buf + 1, *p = m;
    if (!buf)
        return -1;
    buf[0] = 0;
    uint64_t ts = SCT_get_timestamp(s);
    *p++ = 0; /* sct_version v1 */
    *p++ = 0; /* signature_type certificate_timestamp */
    for (int i = 7; i >= 0; i--)
        *p++ = (unsigned char)(ts >> (8 * i));
    *p++ = 0; /* entry_type precert_entry */
    *p++ = 1;
    memcpy(p, ikh, 32);
    p += 32;
    *p++ = (unsigned char)(tbs_len >> 16);
    *p++ = (unsigned char)(tbs_len >> 8);
    *p++ = (unsigned char)tbs_len;
    memcpy(p, tbs, tbs_len);
    p += tbs_len;
    *p++ = (unsigned char)(ext_len >> 8);
    *p++ = (unsigned char)ext_len;
    if (ext_len)
        memcpy(p, ext, ext_len);
    int r;
    if (leaf_hash) {
        unsigned char h[32];
        mdlen = 0;
        r = EVP_Digest(buf, 1 + len, h, &mdlen, sha256_md(), NULL) && mdlen == 32 &&
            CRYPTO_memcmp(h, leaf_hash, 32) == 0;
    } else {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        r = md && EVP_DigestVerifyInit(md, NULL, sha256_md(), NULL, v->key) == 1 &&
            evp_verify_once(md, sig, sig_len, m, len) == 1;
        EVP_MD_CTX_free(md);
    }
    free(buf);
    ERR_clear_error();
    return r ? 1 : 0;
}

static int verify(const ct_sct_verifier *v, const unsigned char *sct, size_t sct_len, X509 *cert,
                  X509 *issuer, uint64_t now_ms, const unsigned char *leaf_hash, char *why,
                  size_t whylen)
{
    if (!v || !sct || !sct_len || !cert || !issuer) {
        set_why(why, whylen, "SCT check: missing input");
        return -1;
    }
    const unsigned char *q = sct;
    SCT *s = o2i_SCT(NULL, &q, sct_len);
    if (!s || q != sct + sct_len) {
        SCT_free(s);
        ERR_clear_error();
        set_why(why, whylen, "SCT check: the SCT (%zu bytes) is not one TLS-encoded SCT",
                sct_len);
        return -1;
    }
    int rc = -1;
    CT_POLICY_EVAL_CTX *ctx = NULL;
    unsigned char *id = NULL, *tbs = NULL;
    size_t tbs_len = 0;
    char got[65], want[65];
    if (SCT_get_version(s) != SCT_VERSION_V1) {
        set_why(why, whylen, "SCT check: version %d is not v1", (int)SCT_get_version(s));
        goto done;
    }
    size_t idlen = SCT_get0_log_id(s, &id);
    if (idlen != 32 || memcmp(id, v->log_id, 32) != 0) {
        hex32(id, idlen == 32 ? 32 : 0, got);
        hex32(v->log_id, 32, want);
        set_why(why, whylen, "SCT check: log ID %s is not the configured log's %s", got, want);
        goto done;
    }
    uint64_t ts = SCT_get_timestamp(s);
    if (ts > now_ms + CT_SCT_FUTURE_TOLERANCE_MS) {
        set_why(why, whylen, "SCT check: timestamp %llu ms is more than %llu ms in the future",
                (unsigned long long)ts, (unsigned long long)CT_SCT_FUTURE_TOLERANCE_MS);
        goto done;
    }
    int poisoned = X509_get_ext_by_NID(cert, NID_ct_precert_poison, -1) >= 0;
    int listed = X509_get_ext_by_NID(cert, NID_ct_precert_scts, -1) >= 0;
    if (!poisoned && !listed) {
        set_why(why, whylen, "SCT check: the certificate has neither the poison nor an SCT list");
        goto done;
    }
    /* Fast way: the signed struct rebuilt here from the certificate's DER and checked with the
     * verifier's decoded key. OpenSSL 3.0's SCT_validate costs five times as much (it re-encodes
     * and re-decodes the log's and the issuer's keys and parses the certificate again at every
     * call) and is only the fallback, for shapes the DER way refuses. */
    if (!(poisoned && listed) && (tbs = entry_tbs(cert, poisoned, &tbs_len)) != NULL) {
        int r = signature_valid(v, s, issuer, tbs, tbs_len, leaf_hash);
        if (r == 1)
            rc = 0;
        else if (r == 0 && leaf_hash)
            set_why(why, whylen, "SCT check: the SCT is invalid: the log signed other bytes than "
                                 "this certificate and issuer make");
        else if (r == 0)
            set_why(why, whylen, "SCT check: the SCT is invalid: its signature does not verify "
                                 "with the log's key over this certificate and issuer");
        else
            set_why(why, whylen, "SCT check: out of memory");
        goto done;
    }
    if (SCT_set_log_entry_type(s, CT_LOG_ENTRY_TYPE_PRECERT) != 1 ||
        !(ctx = CT_POLICY_EVAL_CTX_new()) || CT_POLICY_EVAL_CTX_set1_cert(ctx, cert) != 1 ||
        CT_POLICY_EVAL_CTX_set1_issuer(ctx, issuer) != 1) {
        set_why(why, whylen, "SCT check: cannot set up OpenSSL's evaluation context");
        goto done;
    }
    CT_POLICY_EVAL_CTX_set_shared_CTLOG_STORE(ctx, v->store);
    CT_POLICY_EVAL_CTX_set_time(ctx, now_ms + CT_SCT_FUTURE_TOLERANCE_MS);
    int r = SCT_validate(s, ctx);
    if (r == 1 && SCT_get_validation_status(s) == SCT_VALIDATION_STATUS_VALID) {
        rc = 0;
    } else {
        unsigned long e = ERR_peek_last_error();
        set_why(why, whylen, "SCT check: OpenSSL says the SCT is %s%s%s",
                SCT_validation_status_string(s), e ? ": " : "",
                e ? ERR_reason_error_string(e) : "");
    }
done:
    ERR_clear_error();
    free(tbs);
    CT_POLICY_EVAL_CTX_free(ctx);
    SCT_free(s);
    return rc;
}

int ct_sct_verify(const ct_sct_verifier *v, const unsigned char *sct, size_t sct_len, X509 *cert,
                  X509 *issuer, uint64_t now_ms, char *why, size_t whylen)
{
    return verify(v, sct, sct_len, cert, issuer, now_ms, NULL, why, whylen);
}

int ct_sct_verify_own(const ct_sct_verifier *v, const unsigned char *sct, size_t sct_len,
                      X509 *cert, X509 *issuer, uint64_t now_ms, const unsigned char leaf_hash[32],
                      char *why, size_t whylen)
{
    if (!leaf_hash) {
        set_why(why, whylen, "SCT check: missing input");
        return -1;
    }
    return verify(v, sct, sct_len, cert, issuer, now_ms, leaf_hash, why, whylen);
}
