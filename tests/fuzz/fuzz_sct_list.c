/*
 * fuzz_sct_list: Signed Certificate Timestamps as a CT log hands them back (ct/sct.h,
 * ct/sct_verify.h, ct/tbs_der.h).
 *
 * Input: a SignedCertificateTimestampList (TLS: 2-byte total length, then 2-byte-length SCTs),
 * as an X.509 SCT-list extension carries it; input that is not such a list is taken as one SCT.
 * Each SCT is parsed (ctlog_sct_parse), turned into add-chain JSON (ctlog_sct_json) and
 * verified against a fixed precertificate (fuzz_common.h) with the fixed log key. The final
 * certificate is then built with the input as its SCT-list extension and each SCT verified
 * against it as well: since the final certificate's TBS without the list is the
 * precertificate's TBS without the poison, both verdicts must agree, and ct/tbs_der.h must cut
 * both to the same bytes. The seed SCT (tests/fuzz/gen_corpus.c) is valid, so the signature
 * check's success path runs.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "ct/sct.h"
#include "ct/sct_verify.h"
#include "ct/tbs_der.h"
#include "fuzz_common.h"

#define MAX_SCTS 8

static X509 *issuer, *precert;
static EVP_PKEY *issuer_key, *subject_key;
static ct_sct_verifier *verifier;
static unsigned char *precert_cut;
static size_t precert_cut_len;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_log_init();
    issuer = fz_fixture_cert(FZ_SCT_ISSUER);
    issuer_key = fz_fixture_key(FZ_SCT_ISSUER);
    X509 *subject = fz_fixture_cert(FZ_SCT_SUBJECT);
    subject_key = X509_get_pubkey(subject);
    X509_free(subject);
    EVP_PKEY *log_key = fz_fixture_key(FZ_SCT_LOG);
    char why[512];
    verifier = ct_sct_verifier_new(log_key, why, sizeof why);
    EVP_PKEY_free(log_key);
    if (!verifier || !subject_key)
        fz_die("ct_sct_verifier_new: %s", why);
    precert = fz_sct_cert(issuer, issuer_key, subject_key, NULL, 0);
    size_t n = 0;
    unsigned char *tbs = ct_tbs_der(precert, &n);
    precert_cut = tbs ? ct_tbs_der_without_ext(tbs, n, NID_ct_precert_poison, &precert_cut_len,
                                               why, sizeof why)
                      : NULL;
    free(tbs);
    if (!precert_cut)
        fz_die("the precertificate's TBS: %s", why);
    return 0;
}

static unsigned get16(const uint8_t *p) { return ((unsigned)p[0] << 8) | p[1]; }

/* The SCTs of a well-formed list, or 0 when data is not one. */
static size_t split_list(const uint8_t *data, size_t size, const uint8_t **sct, size_t *len)
{
    if (size < 2 || get16(data) != size - 2)
        return 0;
    size_t n = 0, off = 2;
    while (off < size) {
        if (size - off < 2 || n == MAX_SCTS)
            return 0;
        size_t l = get16(data + off);
        off += 2;
        if (l == 0 || l > size - off)
            return 0;
        sct[n] = data + off;
        len[n++] = l;
        off += l;
    }
    return n;
}

static void check_one(const uint8_t *sct, size_t len, int *verdict)
{
    ctlog_sct_fields f;
    if (ctlog_sct_parse(sct, len, &f) == 0) {
        FZ_ASSERT(f.log_id >= sct && f.log_id + 32 <= sct + len, "log_id out of the SCT");
        FZ_ASSERT(f.ext_len == 0 || (f.ext >= sct && f.ext + f.ext_len <= sct + len),
                  "extensions out of the SCT");
        FZ_ASSERT(f.ds >= sct && f.ds + f.ds_len <= sct + len, "signature out of the SCT");
        char *j = ctlog_sct_json(sct, len);
        FZ_ASSERT(j, "ctlog_sct_json refused a parsed SCT");
        /* (a timestamp of 2^63 ms or more is valid JSON, beyond jansson's json_int_t) */
        json_error_t err;
        json_t *doc = json_loads(j, JSON_DECODE_INT_AS_REAL, &err);
        FZ_ASSERT(doc && json_is_object(doc), "ctlog_sct_json wrote bad JSON: %s", j);
        json_t *id = json_object_get(doc, "id");
        size_t idlen = 0;
        unsigned char *raw =
            json_is_string(id) ? b64_decode_any(json_string_value(id), json_string_length(id),
                                                &idlen)
                               : NULL;
        FZ_ASSERT(raw && idlen == 32 && memcmp(raw, f.log_id, 32) == 0,
                  "the JSON id is not the SCT's log id: %s", j);
        free(raw);
        json_decref(doc);
        free(j);
    } else {
        FZ_ASSERT(ctlog_sct_json(sct, len) == NULL, "JSON for an SCT that does not parse");
    }
    char why[512] = "";
    *verdict = ct_sct_verify(verifier, sct, len, precert, issuer, FZ_NOW_MS, why, sizeof why);
    fz_note("SCT of %zu bytes: %s", len, *verdict ? why : "valid");
    FZ_ASSERT(*verdict == 0 || why[0], "SCT refused without a reason");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sct[MAX_SCTS];
    size_t len[MAX_SCTS];
    size_t n = split_list(data, size, sct, len);
    if (n == 0) {
        if (size == 0)
            return 0;
        sct[0] = data;
        len[0] = size;
        n = 1;
    }
    int pre[MAX_SCTS];
    for (size_t i = 0; i < n; i++)
        check_one(sct[i], len[i], &pre[i]);

    X509 *final = fz_sct_cert(issuer, issuer_key, subject_key, data, size);
    char why[512] = "";
    for (size_t i = 0; i < n; i++) {
        int r = ct_sct_verify(verifier, sct[i], len[i], final, issuer, FZ_NOW_MS, why,
                              sizeof why);
        FZ_ASSERT((r == 0) == (pre[i] == 0),
                  "SCT %zu: %s for the precertificate, %s for the final certificate (%s)", i,
                  pre[i] == 0 ? "valid" : "invalid", r == 0 ? "valid" : "invalid", why);
    }
    size_t tlen = 0, cut_len = 0;
    unsigned char *tbs = ct_tbs_der(final, &tlen);
    FZ_ASSERT(tbs, "ct_tbs_der");
    unsigned char *cut =
        ct_tbs_der_without_ext(tbs, tlen, NID_ct_precert_scts, &cut_len, why, sizeof why);
    FZ_ASSERT(cut, "the SCT list cannot be cut from the final certificate: %s", why);
    FZ_ASSERT(cut_len == precert_cut_len && memcmp(cut, precert_cut, cut_len) == 0,
              "final TBS without the SCT list != precertificate TBS without the poison");
    free(cut);
    free(tbs);
    X509_free(final);
    return 0;
}
