/* Claims -> principal for email issuers; other types are refused for now. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oidc/principal.h"
#include "unit/check.h"

#define ISS "https://dex.example.com"

static issuer_config email_ic(void)
{
    issuer_config ic;
    memset(&ic, 0, sizeof(ic));
    ic.issuer_url = (char *)ISS;
    ic.client_id = (char *)"sigstore";
    ic.type_name = (char *)"email";
    ic.type = ISSUER_TYPE_EMAIL;
    ic.issuer_claim = (char *)"";
    return ic;
}

/* principal_from_claims on a JSON text; the caller clears the principal. */
static enum principal_error run(const issuer_config *ic, const char *json, principal *p,
                                char *why)
{
    json_error_t err;
    json_t *claims = json_loads(json, 0, &err);
    if (!claims) {
        fprintf(stderr, "bad test JSON: %s\n", json);
        return 99;
    }
    why[0] = '\0';
    enum principal_error rc = principal_from_claims(ic, claims, p, why, 256);
    json_decref(claims);
    return rc;
}

static void test_email_happy(void)
{
    issuer_config ic = email_ic();
    principal p;
    char why[256];
    enum principal_error rc = run(&ic,
                                  "{\"iss\":\"" ISS "\",\"sub\":\"CgVhbGljZQ\","
                                  "\"email\":\"alice@example.com\",\"email_verified\":true}",
                                  &p, why);
    CHECK(rc == PRINCIPAL_OK, "email principal: %s", why);
    CHECK_STREQ(p.name, "alice@example.com", "challenge is the email");
    CHECK(p.san_kind == SAN_EMAIL, "SAN is an rfc822Name");
    CHECK_STREQ(p.san_value, "alice@example.com", "SAN value");
    CHECK_STREQ(p.ext[1], ISS, "ext 1 = iss");
    CHECK_STREQ(p.ext[8], ISS, "ext 8 = iss");
    CHECK_STREQ(p.ext[24], "CgVhbGljZQ", "ext 24 = sub");
    int others = 0;
    for (int i = 0; i <= FULCIO_EXT_MAX; i++)
        if (i != 1 && i != 8 && i != 24 && p.ext[i])
            others++;
    CHECK(others == 0, "no other extension set");
    principal_clear(&p);
    CHECK(p.name == NULL && p.san_value == NULL && p.ext[1] == NULL && p.san_kind == 0,
          "clear zeroes");

    rc = run(&ic, "{\"iss\":\"" ISS "\",\"sub\":\"\",\"email\":\"a@b\",\"email_verified\":true}",
             &p, why);
    CHECK(rc == PRINCIPAL_OK && p.ext[24] == NULL, "empty sub: no ext 24");
    principal_clear(&p);
    rc = run(&ic, "{\"iss\":\"" ISS "\",\"email\":\"a@b\",\"email_verified\":true}", &p, why);
    CHECK(rc == PRINCIPAL_OK && p.ext[24] == NULL, "no sub: no ext 24");
    principal_clear(&p);
}

static void test_email_verified_forms(void)
{
    issuer_config ic = email_ic();
    principal p;
    char why[256], json[256];
    static const struct {
        const char *v; /* JSON value, NULL = absent */
        int ok;
        const char *why;
    } cases[] = {
        {"true", 1, ""},
        {"\"true\"", 1, ""},
        {"\"True\"", 1, ""},
        {"false", 0, "email_verified is false"},
        {"\"false\"", 0, "email_verified is false"},
        {"\"False\"", 0, "email_verified is false"},
        {NULL, 0, "email_verified claim missing"},
        {"\"TRUE\"", 0, "neither a boolean"},
        {"\"yes\"", 0, "neither a boolean"},
        {"1", 0, "neither a boolean"},
        {"null", 0, "neither a boolean"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].v)
            snprintf(json, sizeof(json), "{\"iss\":\"%s\",\"email\":\"a@b.c\",\"email_verified\":%s}",
                     ISS, cases[i].v);
        else
            snprintf(json, sizeof(json), "{\"iss\":\"%s\",\"email\":\"a@b.c\"}", ISS);
        enum principal_error rc = run(&ic, json, &p, why);
        if (cases[i].ok)
            CHECK(rc == PRINCIPAL_OK, "email_verified %s accepted: %s", cases[i].v, why);
        else
            CHECK(rc == PRINCIPAL_TOKEN_ERROR && strstr(why, cases[i].why) && p.name == NULL,
                  "email_verified %s refused: rc %d \"%s\"", cases[i].v ? cases[i].v : "(absent)",
                  rc, why);
        principal_clear(&p);
    }
    ic.skip_email_verification = 1;
    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"email\":\"a@b.c\",\"email_verified\":false}", &p, why) ==
              PRINCIPAL_OK,
          "SkipEmailVerification: false accepted: %s", why);
    principal_clear(&p);
    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"email\":\"a@b.c\"}", &p, why) == PRINCIPAL_OK,
          "SkipEmailVerification: absent accepted: %s", why);
    principal_clear(&p);
}

static void test_email_invalid(void)
{
    issuer_config ic = email_ic();
    principal p;
    char why[256], json[256];
    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"email_verified\":true}", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR &&
              strcmp(why, "email claim missing") == 0,
          "missing email: %s", why);
    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"email\":7,\"email_verified\":true}", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR &&
              strstr(why, "not a string"),
          "email not a string: %s", why);
    const char *bad[] = {"", "alice", "@example.com", "alice@", "a@b@c", "a b@c", "a@b\\tc",
                         "a@b\\u007fc", "\\u0001a@b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json), "{\"iss\":\"%s\",\"email\":\"%s\",\"email_verified\":true}",
                 ISS, bad[i]);
        CHECK(run(&ic, json, &p, why) == PRINCIPAL_TOKEN_ERROR &&
                  strcmp(why, "email claim is not a valid email address") == 0,
              "invalid email \"%s\" refused: %s", bad[i], why);
        principal_clear(&p);
    }
}

static void test_issuer_claim(void)
{
    issuer_config ic = email_ic();
    principal p;
    char why[256];
    ic.issuer_claim = (char *)"$.federated_claims.connector_id";
    const char *dex = "{\"iss\":\"" ISS "\",\"sub\":\"s\",\"email\":\"a@b.c\",\"email_verified\":true,"
                      "\"federated_claims\":{\"connector_id\":\"https://github.com/login/oauth\","
                      "\"user_id\":\"1\"}}";
    CHECK(run(&ic, dex, &p, why) == PRINCIPAL_OK, "issuer claim: %s", why);
    CHECK_STREQ(p.ext[1], "https://github.com/login/oauth", "ext 1 from issuer claim");
    CHECK_STREQ(p.ext[8], "https://github.com/login/oauth", "ext 8 from issuer claim");
    CHECK_STREQ(p.name, "a@b.c", "challenge still the email");
    principal_clear(&p);

    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"email\":\"a@b.c\",\"email_verified\":true}", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR &&
              strstr(why, "$.federated_claims.connector_id") && strstr(why, "missing"),
          "issuer claim missing: %s", why);
    CHECK(run(&ic,
              "{\"iss\":\"" ISS "\",\"email\":\"a@b.c\",\"email_verified\":true,"
              "\"federated_claims\":{\"connector_id\":5}}",
              &p, why) == PRINCIPAL_TOKEN_ERROR,
          "issuer claim not a string: %s", why);
    CHECK(run(&ic,
              "{\"iss\":\"" ISS "\",\"email\":\"a@b.c\",\"email_verified\":true,"
              "\"federated_claims\":\"x\"}",
              &p, why) == PRINCIPAL_TOKEN_ERROR,
          "issuer claim parent not an object: %s", why);
    ic.issuer_claim = (char *)"$.top";
    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"email\":\"a@b.c\",\"email_verified\":true,\"top\":\"T\"}",
              &p, why) == PRINCIPAL_OK &&
              strcmp(p.ext[1], "T") == 0,
          "one-level path: %s", why);
    principal_clear(&p);
    ic.issuer_claim = (char *)"$['a']";
    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"email\":\"a@b.c\",\"email_verified\":true}", &p, why) ==
                  PRINCIPAL_TOKEN_ERROR &&
              strstr(why, "not supported"),
          "bracket path refused: %s", why);
}

static void test_utf8_and_types(void)
{
    issuer_config ic = email_ic();
    principal p;
    char why[256];
    /* jansson refuses invalid UTF-8 when parsing, so build such claims by hand. */
    json_t *c = json_pack("{s:s, s:b}", "iss", ISS, "email_verified", 1);
    json_object_set_new(c, "email", json_string_nocheck("al\xffice@example.com"));
    CHECK(principal_from_claims(&ic, c, &p, why, sizeof(why)) == PRINCIPAL_VALIDATION_ERROR &&
              strstr(why, "UTF-8"),
          "invalid UTF-8 email: %s", why);
    json_object_set_new(c, "email", json_string("al\xc3\xaf" "ce@example.com"));
    CHECK(principal_from_claims(&ic, c, &p, why, sizeof(why)) == PRINCIPAL_OK &&
              strcmp(p.name, "al\xc3\xaf" "ce@example.com") == 0,
          "UTF-8 email accepted: %s", why);
    principal_clear(&p);
    json_object_set_new(c, "email", json_string_nocheck("a\xc0\xafz@example.com"));
    CHECK(principal_from_claims(&ic, c, &p, why, sizeof(why)) == PRINCIPAL_VALIDATION_ERROR,
          "overlong UTF-8 refused: %s", why);
    json_object_set_new(c, "email", json_string_nocheck("a\xed\xa0\x80z@example.com"));
    CHECK(principal_from_claims(&ic, c, &p, why, sizeof(why)) == PRINCIPAL_VALIDATION_ERROR,
          "UTF-8 surrogate refused: %s", why);
    json_object_set_new(c, "email", json_string("a@b.c"));
    json_object_set_new(c, "sub", json_string_nocheck("s\xfe"));
    CHECK(principal_from_claims(&ic, c, &p, why, sizeof(why)) == PRINCIPAL_VALIDATION_ERROR &&
              p.name == NULL && p.ext[1] == NULL,
          "invalid UTF-8 sub refused, nothing kept: %s", why);
    json_object_set_new(c, "sub", json_string("s"));
    json_object_set_new(c, "iss", json_string_nocheck("https://x\x80"));
    CHECK(principal_from_claims(&ic, c, &p, why, sizeof(why)) == PRINCIPAL_VALIDATION_ERROR,
          "invalid UTF-8 iss refused: %s", why);
    json_decref(c);

    ic.type = ISSUER_TYPE_GITHUB_WORKFLOW;
    ic.type_name = (char *)"github-workflow";
    CHECK(run(&ic, "{\"iss\":\"" ISS "\",\"sub\":\"repo:x\"}", &p, why) == PRINCIPAL_TOKEN_ERROR &&
              strcmp(why, "issuer type github-workflow is not supported yet") == 0,
          "other types not supported yet: %s", why);
}

int main(void)
{
    test_email_happy();
    test_email_verified_forms();
    test_email_invalid();
    test_issuer_claim();
    test_utf8_and_types();
    CHECK_MAIN_END();
}
