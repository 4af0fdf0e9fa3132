/*
 * fuzz_ct_add_chain_answer: an external CT log's answer to add-pre-chain (ct/add_chain_answer.h),
 * which ct/submit_http.c turns into the SCT it verifies and embeds.
 *
 * Input: the body of the log's HTTP 200 answer (AddChainResponse JSON), handed to
 * ct_add_chain_answer_parse as is. A refusal must say why. An SCT must be the answer's fields
 * in RFC 6962 layout: the harness reads the JSON itself (jansson) and checks version 0, the id,
 * the big-endian timestamp, the extensions and the signature bytes; OpenSSL's o2i_SCT must then
 * read the SCT back, to exactly out_len bytes with the same log id, timestamp and extensions,
 * whenever the DigitallySigned is one OpenSSL reads (SHA-256 with ECDSA or RSA, a signature
 * length within the bytes, the SCT at most 65535 bytes; the parser copies the DigitallySigned
 * as given and leaves it to the SCT verifier) and refuse it otherwise; when the signature
 * length also covers the rest exactly, ctlog_sct_parse must read it too, i2o_SCT must write the
 * same bytes back, and the log's own JSON for it (ctlog_sct_json) must parse to the same SCT.
 */
#include <jansson.h>
#include <openssl/ct.h>
#include <openssl/err.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "ct/add_chain_answer.h"
#include "ct/sct.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_log_init();
    return 0;
}

/* The field as the parser must have read it (absent extensions: no bytes). */
static unsigned char *field(json_t *doc, const char *name, size_t *len)
{
    json_t *v = json_object_get(doc, name);
    if (!v && strcmp(name, "extensions") == 0) {
        *len = 0;
        return calloc(1, 1);
    }
    FZ_ASSERT(json_is_string(v), "an SCT from an answer whose %s is not a string", name);
    unsigned char *d = b64_decode_any(json_string_value(v), json_string_length(v), len);
    FZ_ASSERT(d, "an SCT from an answer whose %s is not base64", name);
    return d;
}

/* OpenSSL's o2i_SCT_signature / SCT_get_signature_nid / MAX_SCT_SIZE rules. */
static int openssl_reads(const unsigned char *ds, size_t ds_len, size_t sct_len)
{
    if (sct_len > 65535 || ds_len <= 4)
        return 0;
    if (ds[0] != 4 || (ds[1] != 3 && ds[1] != 1))
        return 0;
    return (((size_t)ds[2] << 8) | ds[3]) <= ds_len - 4;
}

static void check_sct(const uint8_t *data, size_t size, const unsigned char *sct, size_t n)
{
    json_error_t err;
    json_t *doc = json_loadb((const char *)data, size, 0, &err);
    FZ_ASSERT(json_is_object(doc), "an SCT from an answer that is not a JSON object");
    json_t *ts = json_object_get(doc, "timestamp");
    FZ_ASSERT(json_is_integer(json_object_get(doc, "sct_version")) &&
                  json_integer_value(json_object_get(doc, "sct_version")) == 0,
              "an SCT from an answer whose sct_version is not 0");
    FZ_ASSERT(json_is_integer(ts) && json_integer_value(ts) >= 0,
              "an SCT from an answer whose timestamp is not a non-negative integer");
    uint64_t t = (uint64_t)json_integer_value(ts);
    size_t idlen, extlen, siglen;
    unsigned char *id = field(doc, "id", &idlen), *ext = field(doc, "extensions", &extlen),
                  *sig = field(doc, "signature", &siglen);
    FZ_ASSERT(idlen == 32 && extlen <= 0xffff && siglen >= 4,
              "an SCT from id %zu, extensions %zu, signature %zu bytes", idlen, extlen, siglen);

    /* the layout, byte for byte */
    FZ_ASSERT(n == 43 + extlen + siglen, "SCT of %zu bytes, want %zu", n, 43 + extlen + siglen);
    FZ_ASSERT(sct[0] == 0, "version byte %u", sct[0]);
    FZ_ASSERT(memcmp(sct + 1, id, 32) == 0, "the log id is not the answer's id");
    uint64_t got = 0;
    for (int i = 0; i < 8; i++)
        got = (got << 8) | sct[33 + i];
    FZ_ASSERT(got == t, "timestamp %llu, the answer has %llu", (unsigned long long)got,
              (unsigned long long)t);
    FZ_ASSERT((((size_t)sct[41] << 8) | sct[42]) == extlen, "extensions length field");
    FZ_ASSERT(memcmp(sct + 43, ext, extlen) == 0, "extensions differ");
    FZ_ASSERT(memcmp(sct + 43 + extlen, sig, siglen) == 0, "DigitallySigned not as given");

    /* OpenSSL reads it back */
    const unsigned char *ds = sct + 43 + extlen;
    int want = openssl_reads(ds, siglen, n);
    const unsigned char *p = sct;
    SCT *o = o2i_SCT(NULL, &p, n);
    fz_note("SCT of %zu bytes, %zu of extensions, %zu of DigitallySigned: o2i_SCT %s", n, extlen,
            siglen, o ? "reads it" : "refuses it");
    FZ_ASSERT((o != NULL) == want, "o2i_SCT %s an SCT whose DigitallySigned it should %s",
              o ? "reads" : "refuses", want ? "read" : "refuse");
    int exact = siglen - 4 == (((size_t)ds[2] << 8) | ds[3]);
    if (o) {
        FZ_ASSERT(p == sct + n, "o2i_SCT read %td of %zu bytes", p - sct, n);
        FZ_ASSERT(SCT_get_version(o) == SCT_VERSION_V1, "o2i_SCT: not v1");
        FZ_ASSERT(SCT_get_timestamp(o) == t, "o2i_SCT: another timestamp");
        unsigned char *oid = NULL, *oext = NULL;
        FZ_ASSERT(SCT_get0_log_id(o, &oid) == 32 && memcmp(oid, id, 32) == 0,
                  "o2i_SCT: another log id");
        FZ_ASSERT(SCT_get0_extensions(o, &oext) == extlen &&
                      (extlen == 0 || memcmp(oext, ext, extlen) == 0),
                  "o2i_SCT: other extensions");
        if (exact && siglen > 4) {
            unsigned char *re = NULL;
            int rn = i2o_SCT(o, &re);
            FZ_ASSERT(rn >= 0 && (size_t)rn == n && memcmp(re, sct, n) == 0,
                      "i2o_SCT writes other bytes (%d, want %zu)", rn, n);
            OPENSSL_free(re);
        }
        SCT_free(o);
    }
    ERR_clear_error();

    /* the project's own reader, and the log's JSON of it */
    ctlog_sct_fields f;
    int parsed = ctlog_sct_parse(sct, n, &f) == 0;
    FZ_ASSERT(parsed == exact, "ctlog_sct_parse %s an SCT whose signature length %s the rest",
              parsed ? "reads" : "refuses", exact ? "covers" : "does not cover");
    if (parsed) {
        FZ_ASSERT(f.timestamp == t && f.ext_len == extlen && f.ds_len == siglen &&
                      memcmp(f.log_id, id, 32) == 0,
                  "ctlog_sct_parse reads other fields");
        char *j = ctlog_sct_json(sct, n);
        FZ_ASSERT(j, "ctlog_sct_json refused a parsed SCT");
        char why[256] = "";
        size_t n2 = 0;
        unsigned char *again = ct_add_chain_answer_parse(j, strlen(j), &n2, why, sizeof why);
        FZ_ASSERT(again && n2 == n && memcmp(again, sct, n) == 0,
                  "the log's JSON of the SCT does not parse back to it: %s", why);
        free(again);
        free(j);
    }
    free(id);
    free(ext);
    free(sig);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256] = "";
    size_t n = 0;
    unsigned char *sct =
        ct_add_chain_answer_parse((const char *)data, size, &n, why, sizeof why);
    if (!sct) {
        fz_note("refused: %s", why);
        FZ_ASSERT(why[0], "answer refused without a reason");
        return 0;
    }
    check_sct(data, size, sct, n);
    free(sct);
    return 0;
}
