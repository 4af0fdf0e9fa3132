/* oidc/discovery.h: the discovery document's check and the fetch URL policy. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "oidc/discovery.h"
#include "unit/check.h"

#define ISS "https://issuer.example.com"

static char *jwks(const char *doc, const char *issuer, char *why)
{
    why[0] = '\0';
    return oidc_discovery_jwks_uri(doc, strlen(doc), issuer, why, 512);
}

static void test_valid(void)
{
    char why[512];
    char *u = jwks("{\"issuer\":\"" ISS "\",\"jwks_uri\":\"" ISS "/keys\","
                   "\"token_endpoint\":\"x\",\"scopes_supported\":[\"openid\"]}",
                   ISS, why);
    CHECK_STREQ(u, ISS "/keys", "https jwks_uri");
    CHECK(why[0] == '\0', "no reason on success: %s", why);
    free(u);

    /* another host is fine for https; JSON escapes are decoded */
    u = jwks("{\"jwks_uri\":\"https:\\/\\/keys.example.net:8443\\/a?b=c\",\"issuer\":\"" ISS "\"}",
             ISS, why);
    CHECK_STREQ(u, "https://keys.example.net:8443/a?b=c", "escaped jwks_uri");
    free(u);

    /* plain http to loopback hosts */
    const char *loop[] = {"http://127.0.0.1:8080/jwks", "http://127.200.3.4/k",
                          "http://localhost/jwks", "http://LocalHost:1/k", "http://[::1]:9000/k"};
    for (size_t i = 0; i < sizeof loop / sizeof loop[0]; i++) {
        char doc[256];
        snprintf(doc, sizeof doc, "{\"issuer\":\"http://127.0.0.1:5556\",\"jwks_uri\":\"%s\"}",
                 loop[i]);
        u = jwks(doc, "http://127.0.0.1:5556", why);
        CHECK_STREQ(u, loop[i], "loopback jwks_uri");
        free(u);
    }

    /* the document is len bytes, not up to a NUL */
    const char *d = "{\"issuer\":\"" ISS "\",\"jwks_uri\":\"" ISS "/k\"}{\"more\":1}";
    why[0] = '\0';
    u = oidc_discovery_jwks_uri(d, strlen(d) - strlen("{\"more\":1}"), ISS, why, sizeof why);
    CHECK_STREQ(u, ISS "/k", "first len bytes");
    free(u);
}

struct refusal {
    const char *doc;
    const char *why;
};

static void test_refusals(void)
{
#define not_object "the discovery document is not a JSON object"
#define no_jwks "the discovery document has no jwks_uri"
    static const struct refusal cases[] = {
        {"", not_object},
        {"<html>", not_object},
        {"[\"" ISS "\"]", not_object},
        {"null", not_object},
        {"{\"issuer\":\"" ISS "\"", not_object},
        {"{\"jwks_uri\":\"" ISS "/k\"}",
         "the discovery document names issuer \"\", expected \"" ISS "\""},
        {"{\"issuer\":7,\"jwks_uri\":\"" ISS "/k\"}",
         "the discovery document names issuer \"\", expected \"" ISS "\""},
        {"{\"issuer\":\"https://other.example.com\",\"jwks_uri\":\"" ISS "/k\"}",
         "the discovery document names issuer \"https://other.example.com\", expected \"" ISS
         "\""},
        /* exact match: no trailing-slash or case leniency */
        {"{\"issuer\":\"" ISS "/\",\"jwks_uri\":\"" ISS "/k\"}",
         "the discovery document names issuer \"" ISS "/\", expected \"" ISS "\""},
        {"{\"issuer\":\"https://Issuer.example.com\",\"jwks_uri\":\"" ISS "/k\"}",
         "the discovery document names issuer \"https://Issuer.example.com\", expected \"" ISS
         "\""},
        {"{\"issuer\":\"" ISS "\"}", no_jwks},
        {"{\"issuer\":\"" ISS "\",\"jwks_uri\":\"\"}", no_jwks},
        {"{\"issuer\":\"" ISS "\",\"jwks_uri\":null}", no_jwks},
        {"{\"issuer\":\"" ISS "\",\"jwks_uri\":[\"" ISS "/k\"]}", no_jwks},
        {"{\"issuer\":\"" ISS "\",\"jwks_uri\":\"http://keys.example.com/k\"}",
         "jwks_uri \"http://keys.example.com/k\" uses plain http to a non-loopback host"},
        {"{\"issuer\":\"" ISS "\",\"jwks_uri\":\"http://128.0.0.1/k\"}",
         "jwks_uri \"http://128.0.0.1/k\" uses plain http to a non-loopback host"},
        {"{\"issuer\":\"" ISS "\",\"jwks_uri\":\"http://[::2]/k\"}",
         "jwks_uri \"http://[::2]/k\" uses plain http to a non-loopback host"},
        {"{\"issuer\":\"" ISS "\",\"jwks_uri\":\"ftp://keys.example.com/k\"}",
         "jwks_uri \"ftp://keys.example.com/k\" is not an http(s) URL"},
        {"{\"issuer\":\"" ISS "\",\"jwks_uri\":\"file:///etc/passwd\"}",
         "jwks_uri \"file:///etc/passwd\" is not a valid URL"},
        {"{\"issuer\":\"" ISS "\",\"jwks_uri\":\"/keys\"}",
         "jwks_uri \"/keys\" is not a valid URL"},
        {"{\"issuer\":\"" ISS "\",\"jwks_uri\":\"https://\"}",
         "jwks_uri \"https://\" is not a valid URL"},
    };
#undef not_object
#undef no_jwks
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[512];
        char *u = jwks(cases[i].doc, ISS, why);
        CHECK(u == NULL, "accepted: %s", cases[i].doc);
        free(u);
        CHECK(strcmp(why, cases[i].why) == 0, "%s: got \"%s\", want \"%s\"", cases[i].doc, why,
              cases[i].why);
    }

    /* URLs and issuers are quoted up to 200 characters */
    char longu[300], doc[700], want[600], why[512];
    memcpy(longu, "http://keys.example.com/", 24);
    memset(longu + 24, 'p', 250 - 24);
    longu[250] = '\0';
    snprintf(doc, sizeof doc, "{\"issuer\":\"" ISS "\",\"jwks_uri\":\"%s\"}", longu);
    snprintf(want, sizeof want, "jwks_uri \"%.200s\" uses plain http to a non-loopback host",
             longu);
    char *u = jwks(doc, ISS, why);
    CHECK(u == NULL && strcmp(why, want) == 0, "long URL: %s", why);
    CHECK(strlen(why) == strlen("jwks_uri \"\" uses plain http to a non-loopback host") + 200,
          "the URL is cut to 200 characters");
    free(u);
    snprintf(doc, sizeof doc, "{\"issuer\":\"%s\",\"jwks_uri\":\"%s\"}", longu, longu);
    snprintf(want, sizeof want,
             "the discovery document names issuer \"%.200s\", expected \"%.200s\"", longu, ISS);
    u = jwks(doc, ISS, why);
    CHECK(u == NULL && strcmp(why, want) == 0, "long issuer: %s", why);
    free(u);
}

static void test_url_policy(void)
{
    char why[512] = "", *host = NULL;
    CHECK(oidc_url_allowed("https://keys.example.com:8443/a/b?c", &host, why, sizeof why) == 0,
          "https allowed: %s", why);
    CHECK_STREQ(host, "keys.example.com", "host of an https URL");
    curl_free(host);
    host = NULL;
    CHECK(oidc_url_allowed("http://[::1]:8080/", &host, why, sizeof why) == 0, "http to [::1]");
    CHECK_STREQ(host, "[::1]", "host of an IPv6 loopback URL");
    curl_free(host);
    host = NULL;
    CHECK(oidc_url_allowed("http://127.0.0.1/", NULL, why, sizeof why) == 0,
          "no host wanted: fine");

    host = (char *)"untouched";
    CHECK(oidc_url_allowed("http://example.com/", &host, why, sizeof why) == -1,
          "plain http to a public host refused");
    CHECK(strcmp(host, "untouched") == 0, "host_out untouched on refusal");
    CHECK_STREQ(why, "\"http://example.com/\" uses plain http to a non-loopback host",
                "http refusal");
    CHECK(oidc_url_allowed("gopher://example.com/", NULL, why, sizeof why) == -1, "gopher");
    CHECK_STREQ(why, "\"gopher://example.com/\" is not an http(s) URL", "scheme refusal");
    CHECK(oidc_url_allowed("", NULL, why, sizeof why) == -1, "empty URL");
    CHECK_STREQ(why, "\"\" is not a valid URL", "empty refusal");
    CHECK(oidc_url_allowed("https://a b/", NULL, why, sizeof why) == -1, "space in the host");
    CHECK_STREQ(why, "\"https://a b/\" is not a valid URL", "bad host refusal");
    /* 127.0.0.1 is loopback only as the whole host */
    CHECK(oidc_url_allowed("http://127.0.0.1.example.com/", NULL, why, sizeof why) == -1,
          "127.0.0.1.example.com is not loopback");
    CHECK(oidc_url_allowed("http://localhost.example.com/", NULL, why, sizeof why) == -1,
          "localhost.example.com is not loopback");
}

int main(void)
{
    test_valid();
    test_refusals();
    test_url_policy();
    CHECK_MAIN_END();
}
