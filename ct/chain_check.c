#include "ct/chain_check.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/digest_md.h"
#include "common/x509_der.h"
#include "ct/sct.h"
#include "ct/tbs_der.h"

#define OID_PRECERT_SIGNING "1.3.6.1.4.1.11129.2.4.4"

void ctlog_entry_clear(ctlog_entry *e)
{
    free(e->signed_entry);
    free(e->extra_data);
    memset(e, 0, sizeof *e);
}

/* Counts poison extensions; *loc receives the first one's position. */
static int poison_count(X509 *x, int *loc)
{
    int n = 0, pos = -1;
    while ((pos = X509_get_ext_by_NID(x, NID_ct_precert_poison, pos)) >= 0) {
        if (n++ == 0 && loc)
            *loc = pos;
    }
    return n;
}

/* Unhandled critical extensions are allowed only for the poison of the certificate at depth
 * 0, and only when every other critical extension there is one OpenSSL handles. */
static int verify_cb(int ok, X509_STORE_CTX *ctx)
{
    if (ok)
        return 1;
    if (X509_STORE_CTX_get_error(ctx) != X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION ||
        X509_STORE_CTX_get_error_depth(ctx) != 0)
        return 0;
    X509 *x = X509_STORE_CTX_get_current_cert(ctx);
    if (!x || poison_count(x, NULL) != 1)
        return 0;
    for (int i = 0; i < X509_get_ext_count(x); i++) {
        X509_EXTENSION *ex = X509_get_ext(x, i);
        if (!X509_EXTENSION_get_critical(ex))
            continue;
        if (OBJ_obj2nid(X509_EXTENSION_get_object(ex)) == NID_ct_precert_poison)
            continue;
        if (!X509_supported_extension(ex))
            return 0;
    }
    X509_STORE_CTX_set_error(ctx, X509_V_OK);
    return 1;
}

static int is_psc(X509 *issuer)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(issuer, NID_ext_key_usage, NULL, NULL);
    if (!eku)
        return 0;
    int found = 0; /* NID_ct_precert_signer is OID_PRECERT_SIGNING */
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku); i++)
        if (OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i)) == NID_ct_precert_signer)
            found = 1;
    EXTENDED_KEY_USAGE_free(eku);
    return found;
}

static void put_cert(ctlog_buf *b, X509 *x)
{
    size_t stored = 0;
    const unsigned char *own = x509_der_get(x, &stored); /* the CA's own precertificate */
    if (own) {
        ctlog_buf_opaque24(b, own, stored);
        return;
    }
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    if (n <= 0) {
        b->oom = 1;
        return;
    }
    ctlog_buf_opaque24(b, der, (size_t)n);
    OPENSSL_free(der);
}

/* ASN.1Cert certificate_chain<0..2^24-1> of chain[1..]. */
static void put_chain_list(ctlog_buf *b, STACK_OF(X509) *verified)
{
    ctlog_buf inner = {0};
    for (int i = 1; i < sk_X509_num(verified); i++)
        put_cert(&inner, sk_X509_value(verified, i));
    if (inner.oom)
        b->oom = 1;
    else
        ctlog_buf_opaque24(b, inner.p, inner.len);
    ctlog_buf_free(&inner);
}

static int verify_chain(X509_STORE *roots, STACK_OF(X509) *chain, STACK_OF(X509) **verified,
                        char *why, size_t whylen)
{
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok = 0;
    if (!untrusted || !ctx) {
        snprintf(why, whylen, "out of memory");
        goto done;
    }
    for (int i = 1; i < sk_X509_num(chain); i++)
        if (!sk_X509_push(untrusted, sk_X509_value(chain, i))) {
            snprintf(why, whylen, "out of memory");
            goto done;
        }
    if (!X509_STORE_CTX_init(ctx, roots, sk_X509_value(chain, 0), untrusted)) {
        snprintf(why, whylen, "out of memory");
        goto done;
    }
    X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
    X509_STORE_CTX_set_verify_cb(ctx, verify_cb);
    if (X509_verify_cert(ctx) != 1) {
        int err = X509_STORE_CTX_get_error(ctx);
        snprintf(why, whylen, "the chain does not verify to an accepted root: %s (at depth %d)",
                 X509_verify_cert_error_string(err), X509_STORE_CTX_get_error_depth(ctx));
        goto done;
    }
    *verified = X509_STORE_CTX_get1_chain(ctx);
    ok = *verified != NULL;
    if (!ok)
        snprintf(why, whylen, "out of memory");
done:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    return ok ? 0 : -1;
}

/* CTLOG_CHECK_OWN: each certificate names the next as its issuer and the last is an accepted
 * root (byte for byte). Nothing here caches extensions in the precertificate, whose object the
 * CA goes on to turn into the final certificate. */
static int own_chain(X509_STORE *roots, STACK_OF(X509) *chain, STACK_OF(X509) **verified,
                     char *why, size_t whylen)
{
    int n = sk_X509_num(chain);
    if (n < 2) {
        snprintf(why, whylen, "the chain has no issuer");
        return -1;
    }
    for (int i = 0; i + 1 < n; i++)
        if (X509_NAME_cmp(X509_get_issuer_name(sk_X509_value(chain, i)),
                          X509_get_subject_name(sk_X509_value(chain, i + 1))) != 0) {
            snprintf(why, whylen, "certificate %d of the chain is not issued by certificate %d",
                     i, i + 1);
            return -1;
        }
    X509 *last = sk_X509_value(chain, n - 1);
    int found = 0;
    if (!X509_STORE_lock(roots)) {
        snprintf(why, whylen, "cannot read the accepted roots");
        return -1;
    }
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(roots);
    for (int i = 0; !found && i < sk_X509_OBJECT_num(objs); i++) {
        X509 *r = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        found = r && X509_cmp(r, last) == 0;
    }
    X509_STORE_unlock(roots);
    if (!found) {
        snprintf(why, whylen, "the chain does not verify to an accepted root: its last "
                              "certificate is not one of this log's roots");
        return -1;
    }
    *verified = X509_chain_up_ref(chain);
    if (!*verified) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    return 0;
}

/* The precert's TBSCertificate without the poison, other extensions in their order. */
static unsigned char *tbs_without_poison(X509 *precert, int loc, size_t *len)
{
    X509 *dup = X509_dup(precert);
    if (!dup)
        return NULL;
    X509_EXTENSION_free(X509_delete_ext(dup, loc));
    unsigned char *der = NULL;
    int n = i2d_re_X509_tbs(dup, &der);
    X509_free(dup);
    if (n <= 0)
        return NULL;
    unsigned char *out = malloc((size_t)n);
    if (out)
        memcpy(out, der, (size_t)n);
    OPENSSL_free(der);
    *len = (size_t)n;
    return out;
}

static int spki_hash(X509 *x, unsigned char out[32])
{
    unsigned char *der = NULL;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    if (n <= 0)
        return -1;
    int ok = EVP_Digest(der, (size_t)n, out, NULL, sha256_md(), NULL) == 1;
    OPENSSL_free(der);
    return ok ? 0 : -1;
}

int ctlog_chain_check(X509_STORE *roots, int precert, STACK_OF(X509) *chain, ctlog_entry *e,
                      char *why, size_t whylen)
{
    return ctlog_chain_check_ex(roots, precert ? CTLOG_CHECK_PRECERT : 0, chain, e, why, whylen);
}

int ctlog_chain_check_ex(X509_STORE *roots, unsigned flags, STACK_OF(X509) *chain,
                         ctlog_entry *e, char *why, size_t whylen)
{
    int precert = (flags & CTLOG_CHECK_PRECERT) != 0;
    memset(e, 0, sizeof *e);
    int n = chain ? sk_X509_num(chain) : 0;
    if (n < 1) {
        snprintf(why, whylen, "the chain is empty");
        return -1;
    }
    if (n > CTLOG_MAX_CHAIN) {
        snprintf(why, whylen, "the chain has %d certificates (at most %d)", n, CTLOG_MAX_CHAIN);
        return -1;
    }
    X509 *leaf = sk_X509_value(chain, 0);
    int loc = -1, poisons = poison_count(leaf, &loc);
    if (!precert && poisons) {
        snprintf(why, whylen, "the certificate is a precertificate (it carries the CT poison "
                              "extension): submit it to add-pre-chain");
        return -1;
    }
    if (precert) {
        if (poisons == 0) {
            snprintf(why, whylen, "not a precertificate: the CT poison extension "
                                  "(1.3.6.1.4.1.11129.2.4.3) is missing");
            return -1;
        }
        if (poisons > 1) {
            snprintf(why, whylen, "the precertificate carries %d poison extensions (exactly one "
                                  "is allowed)", poisons);
            return -1;
        }
        X509_EXTENSION *ex = X509_get_ext(leaf, loc);
        if (!X509_EXTENSION_get_critical(ex)) {
            snprintf(why, whylen, "the precertificate's poison extension is not critical");
            return -1;
        }
        const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ex);
        if (ASN1_STRING_length(v) != 2 || ASN1_STRING_get0_data(v)[0] != 0x05 ||
            ASN1_STRING_get0_data(v)[1] != 0x00) {
            snprintf(why, whylen, "the precertificate's poison extension value is not ASN.1 NULL");
            return -1;
        }
    }
    for (int i = 1; i < n; i++)
        if (poison_count(sk_X509_value(chain, i), NULL)) {
            snprintf(why, whylen, "certificate %d of the chain is a precertificate (only the "
                                  "first may be)", i);
            return -1;
        }
    const X509_ALGOR *outer = NULL;
    X509_get0_signature(NULL, &outer, leaf);
    if (!outer || X509_ALGOR_cmp(outer, X509_get0_tbs_sigalg(leaf)) != 0) {
        snprintf(why, whylen, "the certificate's signatureAlgorithm differs from its TBS "
                              "signature field");
        return -1;
    }

    /* The CA's own precertificates (CTLOG_CHECK_OWN), handed over in this process by ca/, are
     * not verified again: their chain is the CA's, validated when the CA was loaded, and the
     * precertificate passed the pre-issuance check and was signed a moment ago. What is checked
     * is what ties them to this log: names chain up and the last certificate is one of the
     * log's accepted roots (a CA reload can leave the log behind). Everyone else's chain is
     * verified in full (X509_verify_cert: signatures, basic and name constraints, unknown
     * critical extensions). */
    STACK_OF(X509) *verified = NULL;
    if ((flags & CTLOG_CHECK_OWN) ? own_chain(roots, chain, &verified, why, whylen) != 0
                                  : verify_chain(roots, chain, &verified, why, whylen) != 0)
        return -1;

    ctlog_buf se = {0}, extra = {0};
    int rc = -1;
    if (precert) {
        if (sk_X509_num(verified) < 2) {
            snprintf(why, whylen, "the precertificate has no issuer in the chain");
            goto done;
        }
        X509 *issuer = sk_X509_value(verified, 1);
        if (is_psc(issuer)) {
            snprintf(why, whylen, "the precertificate is issued by a Precertificate Signing "
                                  "Certificate (EKU 1.3.6.1.4.1.11129.2.4.4), which this log "
                                  "does not support: sign precertificates with the issuing CA");
            goto done;
        }
        unsigned char ikh[32];
        size_t tbs_len = 0;
        unsigned char *tbs = NULL;
        if (flags & CTLOG_CHECK_OWN) {
            /* This process's own precertificate, DER written by OpenSSL: the poison comes out
             * of its bytes without parsing it again (ct/tbs_der.h; same bytes as below). */
            size_t der_len = 0;
            unsigned char *der = ct_tbs_der(leaf, &der_len);
            if (der)
                tbs = ct_tbs_der_without_ext(der, der_len, NID_ct_precert_poison, &tbs_len, NULL,
                                             0);
            free(der);
        }
        if (!tbs)
            tbs = tbs_without_poison(leaf, loc, &tbs_len);
        if (!tbs || spki_hash(issuer, ikh) != 0) {
            free(tbs);
            snprintf(why, whylen, "cannot re-encode the precertificate's TBS");
            goto done;
        }
        ctlog_buf_put(&se, ikh, 32);
        ctlog_buf_opaque24(&se, tbs, tbs_len);
        free(tbs);
        put_cert(&extra, leaf);
        put_chain_list(&extra, verified);
        e->entry_type = CT_ENTRY_PRECERT;
    } else {
        put_cert(&se, leaf);
        put_chain_list(&extra, verified);
        e->entry_type = CT_ENTRY_X509;
    }
    if (se.oom || extra.oom) {
        snprintf(why, whylen, "out of memory");
        goto done;
    }
    unsigned char type[2] = {0, (unsigned char)e->entry_type};
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int mdlen = 0;
    int ok = md && EVP_DigestInit_ex(md, sha256_md(), NULL) && EVP_DigestUpdate(md, type, 2) &&
             EVP_DigestUpdate(md, se.p, se.len) && EVP_DigestFinal_ex(md, e->dedup, &mdlen);
    EVP_MD_CTX_free(md);
    if (!ok) {
        snprintf(why, whylen, "out of memory");
        goto done;
    }
    e->signed_entry = se.p;
    e->signed_len = se.len;
    e->extra_data = extra.p;
    e->extra_len = extra.len;
    se.p = extra.p = NULL;
    rc = 0;
done:
    ctlog_buf_free(&se);
    ctlog_buf_free(&extra);
    sk_X509_pop_free(verified, X509_free);
    if (rc != 0)
        ctlog_entry_clear(e);
    return rc;
}
