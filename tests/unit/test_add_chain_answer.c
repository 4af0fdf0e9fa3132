/* ct/add_chain_answer.h: an external log's AddChainResponse -> the TLS-serialised SCT. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "ct/add_chain_answer.h"
#include "ct/sct.h"
#include "unit/check.h"

/* base64 of the bytes 00 01 .. 1f (standard, padded) */
#define ID32 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
/* DigitallySigned: SHA-256 (4), ECDSA (3), 2-byte length 2, signature aa bb */
#define DS6 "BAMAAqq7"

static unsigned char *parse(const char *json, size_t *n, char *why)
{
    why[0] = '\0';
    *n = 0;
    return ct_add_chain_answer_parse(json, strlen(json), n, why, 256);
}

/* The SCT the answer must give: v1, id 00..1f, timestamp, extensions, DigitallySigned. */
static size_t expected(unsigned char *out, uint64_t ts, const unsigned char *ext, size_t extlen,
                       const unsigned char *ds, size_t dslen)
{
    size_t o = 0;
    out[o++] = 0;
    for (int i = 0; i < 32; i++)
        out[o++] = (unsigned char)i;
    for (int i = 7; i >= 0; i--)
        out[o++] = (unsigned char)(ts >> (8 * i));
    out[o++] = (unsigned char)(extlen >> 8);
    out[o++] = (unsigned char)extlen;
    if (extlen)
        memcpy(out + o, ext, extlen);
    o += extlen;
    memcpy(out + o, ds, dslen);
    return o + dslen;
}

static void test_valid(void)
{
    static const unsigned char ext[] = {1, 2, 3}, ds[] = {4, 3, 0, 2, 0xaa, 0xbb};
    unsigned char want[128];
    char why[256];
    size_t n;

    unsigned char *s = parse("{\"sct_version\":0,\"id\":\"" ID32 "\",\"timestamp\":"
                             "72623859790382856,\"extensions\":\"AQID\",\"signature\":\"" DS6
                             "\"}",
                             &n, why);
    size_t wn = expected(want, UINT64_C(0x0102030405060708), ext, 3, ds, 6);
    CHECK(s != NULL, "valid answer refused: %s", why);
    CHECK(n == 1 + 32 + 8 + 2 + 3 + 6 && n == wn, "length %zu", n);
    CHECK(s && memcmp(s, want, wn) == 0, "bytes: v1, id, timestamp big-endian, ext, DS as given");
    CHECK(s && s[33] == 1 && s[40] == 8 && s[41] == 0 && s[42] == 3, "timestamp/ext length bytes");
    free(s);

    /* no extensions member, URL-safe unpadded id, extra members ignored, timestamp 0 */
    s = parse("{\"timestamp\":0,\"sct_version\":0,\"x\":[1],\"signature\":\"" DS6 "\","
              "\"id\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"}",
              &n, why);
    wn = expected(want, 0, NULL, 0, ds, 6);
    CHECK(s && n == wn && n == 49 && memcmp(s, want, wn) == 0, "absent extensions: %s", why);
    free(s);

    /* "extensions":"" and the largest timestamp; a 4-byte DigitallySigned is the minimum */
    static const unsigned char ds4[] = {4, 3, 0, 0};
    s = parse("{\"sct_version\":0,\"id\":\"" ID32 "\",\"timestamp\":9223372036854775807,"
              "\"extensions\":\"\",\"signature\":\"BAMAAA==\"}",
              &n, why);
    wn = expected(want, UINT64_C(0x7fffffffffffffff), NULL, 0, ds4, 4);
    CHECK(s && n == 47 && n == wn && memcmp(s, want, wn) == 0, "empty extensions: %s", why);
    free(s);

    /* 65535 bytes of extensions: the length field is ff ff */
    size_t big = 0xffff;
    unsigned char *bext = malloc(big);
    memset(bext, 0x5a, big);
    char *b = b64_encode(bext, big);
    size_t jl = strlen(b) + 256;
    char *json = malloc(jl);
    snprintf(json, jl,
             "{\"sct_version\":0,\"id\":\"" ID32 "\",\"timestamp\":1,\"extensions\":\"%s\","
             "\"signature\":\"" DS6 "\"}",
             b);
    s = parse(json, &n, why);
    CHECK(s && n == 43 + big + 6 && s[41] == 0xff && s[42] == 0xff &&
              memcmp(s + 43, bext, big) == 0 && memcmp(s + 43 + big, ds, 6) == 0,
          "65535 bytes of extensions: %s", why);
    free(s);
    /* one more byte is refused */
    free(b);
    free(json);
    unsigned char *bext2 = realloc(bext, big + 1);
    bext = bext2;
    bext[big] = 0x5a;
    b = b64_encode(bext, big + 1);
    jl = strlen(b) + 256;
    json = malloc(jl);
    snprintf(json, jl,
             "{\"sct_version\":0,\"id\":\"" ID32 "\",\"timestamp\":1,\"extensions\":\"%s\","
             "\"signature\":\"" DS6 "\"}",
             b);
    s = parse(json, &n, why);
    CHECK(s == NULL, "65536 bytes of extensions accepted");
    CHECK_STREQ(why, "extensions is not base64 of at most 65535 bytes", "65536 bytes");
    free(b);
    free(json);
    free(bext);
}

/* What a log writes (ctlog_sct_json) reads back to the same SCT. */
static void test_round_trip(void)
{
    unsigned char id[32], ds[CTLOG_DS_MAX];
    for (int i = 0; i < 32; i++)
        id[i] = (unsigned char)(0xe0 ^ i);
    ds[0] = 4, ds[1] = 3, ds[2] = 0, ds[3] = 70;
    for (int i = 0; i < 70; i++)
        ds[4 + i] = (unsigned char)(i * 7);
    size_t sn = 0, n = 0;
    unsigned char *sct = ctlog_sct_serialize(id, UINT64_C(1767225600123), ds, 74, &sn);
    char *json = sct ? ctlog_sct_json(sct, sn) : NULL;
    char why[256] = "";
    unsigned char *back = json ? ct_add_chain_answer_parse(json, strlen(json), &n, why, 256)
                               : NULL;
    CHECK(back && n == sn && memcmp(back, sct, sn) == 0, "round trip through the JSON: %s", why);
    free(back);
    free(json);
    free(sct);
}

struct refusal {
    const char *json;
    const char *why;
};

static void test_refusals(void)
{
#define not_object "the answer is not a JSON object"
#define version "sct_version is not 0"
#define timestamp "timestamp is not a non-negative integer"
#define idmsg "id is not the base64 of 32 bytes"
#define extmsg "extensions is not base64 of at most 65535 bytes"
#define sigmsg "signature is not the base64 of a DigitallySigned"
#define OK_ID "\"id\":\"" ID32 "\""
#define OK_SIG "\"signature\":\"" DS6 "\""
    static const struct refusal cases[] = {
        {"", not_object},
        {"not json", not_object},
        {"[0]", not_object},
        {"\"sct\"", not_object},
        {"{\"sct_version\":0,", not_object},
        {"{\"sct_version\":0} trailing", not_object},
        {"{\"timestamp\":1," OK_ID "," OK_SIG "}", version},
        {"{\"sct_version\":1,\"timestamp\":1," OK_ID "," OK_SIG "}", version},
        {"{\"sct_version\":\"0\",\"timestamp\":1," OK_ID "," OK_SIG "}", version},
        {"{\"sct_version\":0.0,\"timestamp\":1," OK_ID "," OK_SIG "}", version},
        {"{\"sct_version\":null,\"timestamp\":1," OK_ID "," OK_SIG "}", version},
        {"{\"sct_version\":0," OK_ID "," OK_SIG "}", timestamp},
        {"{\"sct_version\":0,\"timestamp\":-1," OK_ID "," OK_SIG "}", timestamp},
        {"{\"sct_version\":0,\"timestamp\":1.5," OK_ID "," OK_SIG "}", timestamp},
        {"{\"sct_version\":0,\"timestamp\":\"1\"," OK_ID "," OK_SIG "}", timestamp},
        {"{\"sct_version\":0,\"timestamp\":1," OK_SIG "}", idmsg},
        {"{\"sct_version\":0,\"timestamp\":1,\"id\":32," OK_SIG "}", idmsg},
        {"{\"sct_version\":0,\"timestamp\":1,\"id\":\"@@@@\"," OK_SIG "}", idmsg},
        {"{\"sct_version\":0,\"timestamp\":1,"
         "\"id\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\"," OK_SIG "}", idmsg},
        {"{\"sct_version\":0,\"timestamp\":1,"
         "\"id\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\"," OK_SIG "}", idmsg},
        /* the id is checked first, the extensions before the signature */
        {"{\"sct_version\":0,\"timestamp\":1,\"id\":\"\",\"extensions\":1,\"signature\":1}",
         idmsg},
        {"{\"sct_version\":0,\"timestamp\":1," OK_ID ",\"extensions\":null," OK_SIG "}", extmsg},
        {"{\"sct_version\":0,\"timestamp\":1," OK_ID ",\"extensions\":7,\"signature\":7}",
         extmsg},
        {"{\"sct_version\":0,\"timestamp\":1," OK_ID ",\"extensions\":\"A\"," OK_SIG "}", extmsg},
        {"{\"sct_version\":0,\"timestamp\":1," OK_ID "}", sigmsg},
        {"{\"sct_version\":0,\"timestamp\":1," OK_ID ",\"signature\":\"BAMA\"}", sigmsg},
        {"{\"sct_version\":0,\"timestamp\":1," OK_ID ",\"signature\":\"\"}", sigmsg},
        {"{\"sct_version\":0,\"timestamp\":1," OK_ID ",\"signature\":\"BAMAAqq7*\"}", sigmsg},
        {"{\"sct_version\":0,\"timestamp\":1," OK_ID ",\"signature\":[\"" DS6 "\"]}", sigmsg},
    };
#undef OK_ID
#undef OK_SIG
#undef version
#undef timestamp
#undef idmsg
#undef extmsg
#undef sigmsg
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[256];
        size_t n;
        unsigned char *s = parse(cases[i].json, &n, why);
        CHECK(s == NULL, "accepted: %s", cases[i].json);
        free(s);
        CHECK(strcmp(why, cases[i].why) == 0, "%s: got \"%s\", want \"%s\"", cases[i].json, why,
              cases[i].why);
    }

    /* the JSON is read as len bytes, not up to a NUL */
    const char *two = "{\"sct_version\":0,\"timestamp\":1,\"id\":\"" ID32 "\",\"signature\":\""
                      DS6 "\"}garbage";
    char why[256] = "";
    size_t n = 0, cut = strlen(two) - strlen("garbage");
    unsigned char *s = ct_add_chain_answer_parse(two, cut, &n, why, sizeof why);
    CHECK(s && n == 49, "the first len bytes only: %s", why);
    free(s);
    s = ct_add_chain_answer_parse(two, cut - 1, &n, why, sizeof why);
    CHECK(s == NULL, "a cut document refused");
    CHECK_STREQ(why, not_object, "cut document");
    free(s);

    /* a short why buffer is cut, NUL-terminated */
    char small[8];
    s = ct_add_chain_answer_parse("[]", 2, &n, small, sizeof small);
    CHECK(s == NULL, "[] refused");
    CHECK_STREQ(small, "the ans", "why cut to its buffer");
#undef not_object
}

int main(void)
{
    test_valid();
    test_round_trip();
    test_refusals();
    CHECK_MAIN_END();
}
