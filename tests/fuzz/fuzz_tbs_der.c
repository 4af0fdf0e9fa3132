/*
 * fuzz_tbs_der: ct/tbs_der.h, the TBSCertificate with the CT poison or the SCT list cut out
 * (or replaced by another extension) on the DER bytes, against the way it replaces (X509_dup,
 * X509_delete_ext, X509_add_ext, i2d_re_X509_tbs).
 *
 * Input: a DER certificate. The raw input is also handed to ct_tbs_der_without_ext as if it
 * were a TBS. When the input parses and OpenSSL re-encodes its TBS to the same bytes (it is
 * DER as OpenSSL writes it), the cut must succeed whenever the extension is there exactly once
 * among others, and give exactly OpenSSL's bytes; otherwise it may only refuse, with a reason.
 */
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ct/tbs_der.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_log_init();
    return 0;
}

static const int nids[] = {NID_ct_precert_poison, NID_ct_precert_scts};

/* i2d_re_X509_tbs of a copy of x, with the extension at index idx deleted when idx >= 0, and
 * ins inserted in its place when given. */
static unsigned char *openssl_tbs_ins(X509 *x, int idx, X509_EXTENSION *ins, int *len)
{
    X509 *dup = X509_dup(x);
    if (!dup)
        return NULL;
    if (idx >= 0)
        X509_EXTENSION_free(X509_delete_ext(dup, idx));
    if (idx >= 0 && ins && !X509_add_ext(dup, ins, idx)) {
        X509_free(dup);
        return NULL;
    }
    unsigned char *der = NULL;
    *len = i2d_re_X509_tbs(dup, &der);
    X509_free(dup);
    if (*len <= 0) {
        OPENSSL_free(der);
        return NULL;
    }
    return der;
}

static unsigned char *openssl_tbs(X509 *x, int idx, int *len)
{
    return openssl_tbs_ins(x, idx, NULL, len);
}

/* An extension to put in the place of another (an SCT list's shape; its content is not
 * parsed by either side). */
static X509_EXTENSION *replacement(unsigned char **der, int *der_len)
{
    static const unsigned char body[] = {0x00, 0x05, 0x00, 0x03, 0x01, 0x02, 0x03};
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    X509_EXTENSION *e = NULL;
    if (os && ASN1_OCTET_STRING_set(os, body, sizeof body))
        e = X509_EXTENSION_create_by_NID(NULL, NID_ct_precert_scts, 0, os);
    ASN1_OCTET_STRING_free(os);
    *der = NULL;
    *der_len = e ? i2d_X509_EXTENSION(e, der) : -1;
    return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[512];
    size_t n = 0;
    for (size_t i = 0; i < sizeof nids / sizeof nids[0]; i++) {
        why[0] = '\0';
        unsigned char *cut = ct_tbs_der_without_ext(data, size, nids[i], &n, why, sizeof why);
        FZ_ASSERT(cut || why[0], "raw input refused without a reason");
        FZ_ASSERT(!cut || n < size, "the cut is not shorter than the input");
        free(cut);
    }

    const unsigned char *p = data;
    X509 *x = d2i_X509(NULL, &p, (long)size);
    if (!x) {
        ERR_clear_error();
        return 0;
    }
    size_t tlen = 0;
    unsigned char *tbs = ct_tbs_der(x, &tlen);
    int olen = 0;
    unsigned char *same = tbs ? openssl_tbs(x, -1, &olen) : NULL;
    int canonical = same && (size_t)olen == tlen && memcmp(same, tbs, tlen) == 0;
    OPENSSL_free(same);
    fz_note("certificate: %s, %d extensions",
            canonical ? "DER as OpenSSL writes it" : "not canonical", X509_get_ext_count(x));
    for (size_t i = 0; tbs && i < sizeof nids / sizeof nids[0]; i++) {
        why[0] = '\0';
        unsigned char *cut = ct_tbs_der_without_ext(tbs, tlen, nids[i], &n, why, sizeof why);
        FZ_ASSERT(cut || why[0], "refused without a reason");
        fz_note("without %s: %s", OBJ_nid2sn(nids[i]), cut ? "cut" : why);
        int idx = X509_get_ext_by_NID(x, nids[i], -1);
        int once = idx >= 0 && X509_get_ext_by_NID(x, nids[i], idx) < 0;
        int others = X509_get_ext_count(x) > 1;
        FZ_ASSERT(!cut || once, "cut extension %d, which is not there exactly once", nids[i]);
        if (!canonical || !once || !others) {
            free(cut);
            continue;
        }
        FZ_ASSERT(cut, "DER certificate, extension %d once among others, refused: %s", nids[i],
                  why);
        unsigned char *want = openssl_tbs(x, idx, &olen);
        FZ_ASSERT(want, "OpenSSL cannot re-encode the TBS");
        FZ_ASSERT((size_t)olen == n && memcmp(want, cut, n) == 0,
                  "the cut TBS (%zu bytes) differs from OpenSSL's (%d bytes)", n, olen);
        OPENSSL_free(want);
        free(cut);

        /* Replaced in place (what the final certificate's TBS is made with). */
        unsigned char *ext_der = NULL;
        int ext_len = 0;
        X509_EXTENSION *ext = replacement(&ext_der, &ext_len);
        FZ_ASSERT(ext && ext_len > 0, "cannot make the replacement extension");
        why[0] = '\0';
        unsigned char *rep = ct_tbs_der_replace_ext(tbs, tlen, nids[i], ext_der, (size_t)ext_len,
                                                    &n, why, sizeof why);
        FZ_ASSERT(rep, "DER certificate, extension %d once, not replaced: %s", nids[i], why);
        want = openssl_tbs_ins(x, idx, ext, &olen);
        FZ_ASSERT(want, "OpenSSL cannot re-encode the TBS with the replacement");
        FZ_ASSERT((size_t)olen == n && memcmp(want, rep, n) == 0,
                  "the replaced TBS (%zu bytes) differs from OpenSSL's (%d bytes)", n, olen);
        OPENSSL_free(want);
        free(rep);
        OPENSSL_free(ext_der);
        X509_EXTENSION_free(ext);
    }
    free(tbs);
    X509_free(x);
    /* d2i failures leave entries (and their allocations) on the thread's error queue: clear
     * them, so every input frees what it took and libFuzzer's leak check stays on. */
    ERR_clear_error();
    return 0;
}
