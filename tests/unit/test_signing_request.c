/* Request JSON parsing with grpc-gateway's leniency, and the base64 it relies on. */
#include <stdlib.h>
#include <string.h>

#include "ca/signing_request.h"
#include "common/base64.h"
#include "common/flags.h"
#include "unit/check.h"

static int parse2(const char *json, signing_request *r, char *why)
{
    return signing_request_parse_v2(json, strlen(json), r, why, 256);
}

static void test_base64(void)
{
    size_t n;
    unsigned char *d;
    /* "hi?>" has bytes that differ between the alphabets: 0x3f 0x3e. */
    const char *forms[] = {"aGk/Pg==", "aGk/Pg", "aGk_Pg==", "aGk_Pg"};
    for (size_t i = 0; i < 4; i++) {
        d = b64_decode_any(forms[i], strlen(forms[i]), &n);
        CHECK(d && n == 4 && memcmp(d, "hi?>", 4) == 0, "decode %s", forms[i]);
        free(d);
    }
    CHECK(b64_decode_any("a", 1, &n) == NULL, "length 1 refused");
    CHECK(b64_decode_any("aGk*", 4, &n) == NULL, "bad character refused");
    CHECK(b64_decode_any("aG===", 5, &n) == NULL, "three pads refused");
    d = b64_decode_any("", 0, &n);
    CHECK(d && n == 0, "empty decodes to empty");
    free(d);
    CHECK(b64url_decode_nopad("aGk/Pg", 6, &n) == NULL, "strict url refuses /");
    CHECK(b64url_decode_nopad("aGk_Pg==", 8, &n) == NULL, "strict url refuses padding");
    d = b64url_decode_nopad("aGk_Pg", 6, &n);
    CHECK(d && n == 4 && memcmp(d, "hi?>", 4) == 0, "strict url decodes");
    free(d);
    char *e = b64_encode((const unsigned char *)"hi?>", 4);
    CHECK_STREQ(e, "aGk/Pg==", "encode std");
    free(e);
    e = b64url_encode((const unsigned char *)"hi?>", 4);
    CHECK_STREQ(e, "aGk_Pg", "encode url");
    free(e);
}

static void test_v2(void)
{
    signing_request r;
    char why[256];
    CHECK(parse2("{\"credentials\":{\"oidcIdentityToken\":\"t.o.k\"},"
                 "\"publicKeyRequest\":{\"publicKey\":{\"algorithm\":\"ECDSA\",\"content\":\"PEM\"},"
                 "\"proofOfPossession\":\"aGk_Pg\"},\"unknownField\":[1,2]}",
                 &r, why) == 0,
          "camelCase parses: %s", why);
    CHECK_STREQ(r.token, "t.o.k", "token");
    CHECK(r.public_key_len == 3 && memcmp(r.public_key, "PEM", 3) == 0, "content");
    CHECK(r.proof_len == 4 && memcmp(r.proof, "hi?>", 4) == 0, "proof decoded (url, unpadded)");
    CHECK(r.has_public_key_request == 1, "has pkr");
    signing_request_clear(&r);

    CHECK(parse2("{\"credentials\":{\"oidc_identity_token\":\"x\"},"
                 "\"public_key_request\":{\"public_key\":{\"algorithm\":2,\"content\":\"K\"},"
                 "\"proof_of_possession\":\"aGk/Pg==\"}}",
                 &r, why) == 0,
          "snake_case parses: %s", why);
    CHECK_STREQ(r.token, "x", "snake token");
    CHECK(r.proof_len == 4, "snake proof");
    signing_request_clear(&r);

    CHECK(parse2("{\"certificateSigningRequest\":\"aGk/Pg\",\"publicKeyRequest\":null}", &r,
                 why) == 0,
          "null is unset: %s", why);
    CHECK(r.csr_len == 4 && !r.has_public_key_request, "csr only");
    signing_request_clear(&r);

    CHECK(parse2("{\"certificateSigningRequest\":\"aGk/Pg\",\"publicKeyRequest\":{}}", &r,
                 why) == -1,
          "two oneof members refused");
    CHECK(strstr(why, "mutually exclusive") != NULL, "oneof reason: %s", why);
    CHECK(parse2("{\"certificateSigningRequest\":\"***\"}", &r, why) == -1, "bad base64");
    CHECK(strstr(why, "certificateSigningRequest") != NULL, "names the field: %s", why);
    CHECK(parse2("[1]", &r, why) == -1, "array refused");
    CHECK(parse2("{\"a\":", &r, why) == -1, "syntax error refused");
    CHECK(parse2("{\"publicKeyRequest\":{\"publicKey\":{\"content\":5}}}", &r, why) == -1,
          "content must be a string");
    CHECK(parse2("{\"publicKeyRequest\":{\"publicKey\":{\"algorithm\":{}}}}", &r, why) == -1,
          "enum must be name or number");
    CHECK(parse2("{}", &r, why) == 0, "empty object parses (checked later)");
    CHECK(r.token == NULL && r.public_key == NULL && r.csr == NULL, "empty");
    signing_request_clear(&r);
}

static void test_v1(void)
{
    signing_request r;
    char why[256];
    const char *j = "{\"publicKey\":{\"content\":\"UEVN\",\"algorithm\":\"ecdsa\"},"
                    "\"signedEmailAddress\":\"aGk/Pg==\",\"certificateSigningRequest\":null}";
    CHECK(signing_request_parse_v1(j, strlen(j), &r, why, sizeof why) == 0, "v1 parses: %s", why);
    CHECK(r.public_key_len == 3 && memcmp(r.public_key, "PEM", 3) == 0, "v1 content is bytes");
    CHECK(r.proof_len == 4, "v1 signedEmailAddress");
    signing_request_clear(&r);
    j = "{\"publicKey\":{\"content\":\"UEVN\"},\"certificateSigningRequest\":\"aGk/Pg==\"}";
    CHECK(signing_request_parse_v1(j, strlen(j), &r, why, sizeof why) == 0, "v1 csr: %s", why);
    CHECK(r.csr_len == 4 && r.public_key == NULL, "v1: CSR wins");
    signing_request_clear(&r);
}

static void test_flags(void)
{
    const char *host = "0.0.0.0";
    long port = 8080, timeout = 30;
    int watch = 1;
    struct flag f[] = {
        {"host", "http-host", FLAG_STRING, &host, "", 0},
        {"port", NULL, FLAG_INT, &port, "", 0},
        {"idle", NULL, FLAG_SECONDS, &timeout, "", 0},
        {"watch", NULL, FLAG_BOOL, &watch, "", 0},
    };
    char *argv[] = {"--http-host", "127.0.0.1", "-port=0", "--idle", "2m", "--watch=false"};
    char why[256];
    CHECK(flags_parse(f, 4, 6, argv, why, sizeof why) == 0, "flags parse: %s", why);
    CHECK_STREQ(host, "127.0.0.1", "alias");
    CHECK(port == 0 && timeout == 120 && watch == 0, "values %ld %ld %d", port, timeout, watch);
    char *bad[] = {"--nope"};
    CHECK(flags_parse(f, 4, 1, bad, why, sizeof why) == -1 && strstr(why, "--nope"),
          "unknown flag named: %s", why);
    char *bad2[] = {"--port", "x"};
    CHECK(flags_parse(f, 4, 2, bad2, why, sizeof why) == -1, "bad int");
    char *bad3[] = {"--port"};
    CHECK(flags_parse(f, 4, 1, bad3, why, sizeof why) == -1 && strstr(why, "needs a value"),
          "missing value: %s", why);
}

int main(void)
{
    test_base64();
    test_v2();
    test_v1();
    test_flags();
    CHECK_MAIN_END();
}
