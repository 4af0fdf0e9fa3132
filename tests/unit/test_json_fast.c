/* common/json_fast.h: the fast path takes the plain JSON requests and tokens carry (so it is
 * really used) with jansson's values, and declines everything else so that jansson decides
 * (fuzz_json_fast checks the equality on any input). */
#include <stdio.h>
#include <string.h>

#include "common/json_fast.h"
#include "unit/check.h"

static void accepts(const char *text, const char *what)
{
    json_error_t err;
    json_t *fast = json_fast_try(text, strlen(text));
    json_t *slow = json_loadb(text, strlen(text), JSON_REJECT_DUPLICATES, &err);
    CHECK(fast && slow && json_equal(fast, slow), "fast path takes %s, as jansson parses it",
          what);
    json_decref(fast);
    json_decref(slow);
}

static void declines(const char *text, size_t len, const char *what)
{
    json_error_t err;
    json_t *fast = json_fast_try(text, len);
    CHECK(!fast, "fast path declines %s", what);
    json_decref(fast);
    json_t *a = json_fast_loadb(text, len, &err);
    char fast_err[160];
    snprintf(fast_err, sizeof fast_err, "%s", a ? "" : err.text);
    json_t *b = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    CHECK(!a == !b && (!a || json_equal(a, b)) && (a || strcmp(fast_err, err.text) == 0),
          "json_fast_loadb answers %s as jansson does (%s / %s)", what, fast_err,
          b ? "ok" : err.text);
    json_decref(a);
    json_decref(b);
}

int main(void)
{
    accepts("{\"credentials\":{\"oidcIdentityToken\":\"eyJ.eyJ.c2ln\"},\"publicKeyRequest\":"
            "{\"publicKey\":{\"algorithm\":\"ECDSA\",\"content\":\"-----BEGIN PUBLIC KEY-----\\n"
            "MFkw\\n-----END PUBLIC KEY-----\\n\"},\"proofOfPossession\":\"MEUCIQ==\"}}",
            "a v2 signing request");
    accepts("{\"iss\":\"https://a.example\",\"aud\":[\"sigstore\"],\"exp\":1764000000,\"iat\":-5,"
            "\"email_verified\":true,\"n\":null,\"f\":false,\"o\":{}}",
            "token claims");
    accepts(" [ \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\", 0, -0, 123456789012345678, [] ] \n",
            "escapes, integers, whitespace");

    json_t *v = json_fast_try("{\"k\":\"a\\nb\\\"c\"}", 15);
    const char *s = json_string_value(json_object_get(v, "k"));
    CHECK(s && json_string_length(json_object_get(v, "k")) == 5 && memcmp(s, "a\nb\"c", 5) == 0,
          "escapes decoded");
    json_decref(v);

    declines("{\"a\":1,\"a\":2}", 13, "a duplicate key (jansson's error)");
    declines("{\"a\":\"\\u00e9\"}", 14, "a \\u escape");
    declines("{\"a\":\"\xc3\xa9\"}", 10, "UTF-8 bytes");
    declines("{\"a\":1.5}", 9, "a fraction");
    declines("{\"a\":1e3}", 9, "an exponent");
    declines("{\"a\":1234567890123456789}", 25, "a 19-digit integer");
    declines("{\"a\":01}", 8, "a leading zero (invalid)");
    declines("{\"a\":tru}", 9, "a cut literal (invalid)");
    declines("{\"a\":\"x\ty\"}", 11, "a raw tab in a string (invalid)");
    declines("{\"a\":\"\\x\"}", 10, "an invalid escape");
    declines("{} x", 4, "trailing bytes (invalid)");
    declines("{}\0", 3, "a trailing NUL (invalid)");
    declines("\"top\"", 5, "a top-level string (jansson wants an object or array)");
    declines("{\"a\":", 5, "a cut object (invalid)");
    declines("", 0, "nothing (invalid)");
    char deep[80];
    memset(deep, '[', 40);
    memset(deep + 40, ']', 40);
    declines(deep, 80, "nesting deeper than 32");
    CHECK_MAIN_END();
}
