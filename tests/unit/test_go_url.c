/* Go net/url Parse / String / Hostname / JoinPath and strconv.Quote, as Fulcio's URI SANs and
 * messages depend on them. Every expected value below was produced by Go's own net/url
 * (go1.19, whose JoinPath is the current one). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oidc/go_strconv.h"
#include "oidc/go_url.h"
#include "unit/check.h"

static void test_parse_string(void)
{
    static const struct {
        const char *in, *out, *scheme, *host, *err;
    } cases[] = {
        {"https://github.com/sigstore/fulcio/.github/workflows/x.yml@refs/heads/main",
         "https://github.com/sigstore/fulcio/.github/workflows/x.yml@refs/heads/main", "https",
         "github.com", NULL},
        {"HTTPS://Example.com/a b", "https://Example.com/a%20b", "https", "Example.com", NULL},
        {"https://x/\xc3\xa9", "https://x/%C3%A9", "https", "x", NULL},
        {"https://x/a%41", "https://x/a%41", "https", "x", NULL},
        {"https://x/a!b'(c)*", "https://x/a!b'(c)*", "https", "x", NULL},
        {"https://x/a?b c#frag x", "https://x/a?b c#frag%20x", "https", "x", NULL},
        {"https://[::1]:8443/x", "https://[::1]:8443/x", "https", "::1", NULL},
        {"https://Example.com:443", "https://Example.com:443", "https", "Example.com", NULL},
        {"gitlab.com/group/proj//.gitlab-ci.yml@refs/heads/main",
         "gitlab.com/group/proj//.gitlab-ci.yml@refs/heads/main", "", "", NULL},
        {"spiffe://example.org/ns/default/sa/x", "spiffe://example.org/ns/default/sa/x", "spiffe",
         "example.org", NULL},
        {"https://kubernetes.io/namespaces//serviceaccounts/",
         "https://kubernetes.io/namespaces//serviceaccounts/", "https", "kubernetes.io", NULL},
        {"https://user:p%40ss@host/p", "https://user:p%40ss@host/p", "https", "host", NULL},
        {"https://user@@host/", "https://user%40@host/", "https", "host", NULL},
        {"mailto:a@b.c", "mailto:a@b.c", "mailto", "", NULL},
        {"https:/path", "https:/path", "https", "", NULL},
        {"https://x/a#b c!*()", "https://x/a#b%20c!*()", "https", "x", NULL},
        {"", "", "", "", NULL},
        {"rel/path", "rel/path", "", "", NULL},
        {"https://x/?", "https://x/?", "https", "x", NULL},
        {"https://x/%2F%2f", "https://x/%2F%2f", "https", "x", NULL},
        {"https://h/\xc3\xbc?q=\xc3\xbc#\xc3\xbc", "https://h/%C3%BC?q=\xc3\xbc#%C3%BC", "https",
         "h", NULL},
        {"https://x/a\"b<c>", "https://x/a%22b%3Cc%3E", "https", "x", NULL},
        {"https://x/{a}|b^c`d", "https://x/%7Ba%7D%7Cb%5Ec%60d", "https", "x", NULL},
        {"https://x/a\\b", "https://x/a%5Cb", "https", "x", NULL},
        {"https://x#", "https://x", "https", "x", NULL},
        {"http://[fe80::1%25en0]:8080/", "http://[fe80::1%25en0]:8080/", "http", "fe80::1%en0",
         NULL},
        {"https://x%C3%A9/", "https://x%C3%A9/", "https", "x\xc3\xa9", NULL},
        {"https://x:abc/", NULL, NULL, NULL,
         "parse \"https://x:abc/\": invalid port \":abc\" after host"},
        {"://x", NULL, NULL, NULL, "parse \"://x\": missing protocol scheme"},
        {"1a:b", NULL, NULL, NULL,
         "parse \"1a:b\": first path segment in URL cannot contain colon"},
        {"https://x/%zz", NULL, NULL, NULL, "parse \"https://x/%zz\": invalid URL escape \"%zz\""},
        {"https://x/a%2", NULL, NULL, NULL, "parse \"https://x/a%2\": invalid URL escape \"%2\""},
        {"https://x y/", NULL, NULL, NULL,
         "parse \"https://x y/\": invalid character \" \" in host name"},
        {"https://x/\x01", NULL, NULL, NULL,
         "parse \"https://x/\\x01\": net/url: invalid control character in URL"},
        {"https://x/a#b%zz", NULL, NULL, NULL,
         "parse \"https://x/a#b%zz\": invalid URL escape \"%zz\""},
        {"https://[::1/x", NULL, NULL, NULL, "parse \"https://[::1/x\": missing ']' in host"},
        {"https://x%41/", NULL, NULL, NULL, "parse \"https://x%41/\": invalid URL escape \"%41\""},
        {"https://us er@host/", NULL, NULL, NULL,
         "parse \"https://us er@host/\": net/url: invalid userinfo"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        go_url u;
        char err[256] = "";
        int rc = go_url_parse(cases[i].in, &u, err, sizeof err);
        if (cases[i].err) {
            CHECK(rc == -1, "parse \"%s\" refused", cases[i].in);
            CHECK_STREQ(err, cases[i].err, "parse error text");
            continue;
        }
        CHECK(rc == 0, "parse \"%s\": %s", cases[i].in, err);
        if (rc != 0)
            continue;
        char *s = go_url_string(&u), *h = go_url_hostname(&u);
        CHECK_STREQ(s, cases[i].out, "String()");
        CHECK_STREQ(u.scheme, cases[i].scheme, "Scheme");
        CHECK_STREQ(h, cases[i].host, "Hostname()");
        free(s);
        free(h);
        go_url_clear(&u);
    }
}

static void test_join(void)
{
    static const struct {
        const char *base;
        const char *elems[5];
        size_t n;
        const char *out;
    } cases[] = {
        {"https://github.com/",
         {"octo-org/octo-repo/.github/workflows/w.yml@refs/heads/main"},
         1,
         "https://github.com/octo-org/octo-repo/.github/workflows/w.yml@refs/heads/main"},
        {"https://github.com/",
         {"octo-org/octo-repo", "actions/runs", "123", "attempts", "1"},
         5,
         "https://github.com/octo-org/octo-repo/actions/runs/123/attempts/1"},
        {"https://gitlab.com/",
         {"group/proj", "/-/jobs/", "42"},
         3,
         "https://gitlab.com/group/proj/-/jobs/42"},
        {"https://issuer.enforce.dev",
         {"720909c9f5279097d847ad02a2f24ba8f59de36a/a6cc1ac1c0be4e2b"},
         1,
         "https://issuer.enforce.dev/720909c9f5279097d847ad02a2f24ba8f59de36a/a6cc1ac1c0be4e2b"},
        {"https://x/base", {"a/../b"}, 1, "https://x/base/b"},
        {"https://x", {"a//b"}, 1, "https://x/a/b"},
        {"https://x", {"a/"}, 1, "https://x/a/"},
        {"https://x", {"a b"}, 1, "https://x/a%20b"},
        {"https://x", {"../../etc"}, 1, "https://x/etc"},
        {"https://x", {"\xc3\xa9"}, 1, "https://x/%C3%A9"},
        {"https://x", {"a%41", "b"}, 2, "https://x/a%41/b"},
        {"https://x", {"a?b"}, 1, "https://x/a%3Fb"},
        {"https://x", {"a#b"}, 1, "https://x/a%23b"},
        {"https://x/p?q=1#f", {"z"}, 1, "https://x/p/z?q=1#f"},
        {"https://x", {"", "a", ""}, 3, "https://x/a"},
        {"https://x", {"./a/./b/."}, 1, "https://x/a/b"},
        {"https://x", {"refs/heads/feat!x"}, 1, "https://x/refs/heads/feat!x"},
        {"https://x", {"a%2Fb"}, 1, "https://x/a%2Fb"},
        {"https://x", {"a:b"}, 1, "https://x/a:b"},
        {"https://github.com/", {""}, 1, "https://github.com/"},
        {"https://x", {NULL}, 0, "https://x/"},
        {"rel", {"b"}, 1, "rel/b"},
        {"", {NULL}, 0, "/"},
        {"g.codefresh.io", {"acct", "p:1/2"}, 2, "g.codefresh.io/acct/p:1/2"},
        {"https://g.codefresh.io",
         {"codefresh-account",
          "oidc-test/get-token:628a80b693a15c0f9c13ab75/65e5a53e52853dc51a5b0cc1"},
         2,
         "https://g.codefresh.io/codefresh-account/oidc-test/get-token:628a80b693a15c0f9c13ab75/"
         "65e5a53e52853dc51a5b0cc1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        go_url u;
        char err[256] = "";
        CHECK(go_url_parse(cases[i].base, &u, err, sizeof err) == 0, "base %s", cases[i].base);
        char *s = go_url_join_string(&u, cases[i].elems, cases[i].n, err, sizeof err);
        CHECK_STREQ(s, cases[i].out, "JoinPath");
        free(s);
        go_url_clear(&u);
    }
    /* Go keeps the old path when the joined path has a bad escape; we refuse instead */
    go_url u;
    char err[256] = "";
    CHECK(go_url_parse("https://x", &u, err, sizeof err) == 0, "base");
    const char *bad[] = {"a%zz"};
    CHECK(go_url_join_string(&u, bad, 1, err, sizeof err) == NULL, "bad escape refused");
    CHECK_STREQ(err, "invalid URL escape \"%zz\"", "bad escape message");
    go_url_clear(&u);
}

static void test_strconv(void)
{
    static const struct {
        const char *in, *out;
    } q[] = {
        {"abc", "\"abc\""},
        {"a\"b\\c", "\"a\\\"b\\\\c\""},
        {"tab\there\n", "\"tab\\there\\n\""},
        {"\x01\x7f", "\"\\x01\\x7f\""},
        {"\xc3\xa9\xe6\x97\xa5", "\"\xc3\xa9\xe6\x97\xa5\""},
        {"\xc2\xa0\xe2\x80\x8b\xef\xbb\xbf", "\"\\u00a0\\u200b\\ufeff\""},
        {"\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""},
        {"x\xe2\x80\xa8y", "\"x\\u2028y\""},
        {"bad\xff", "\"bad\\xff\""},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        char *s = go_quote(q[i].in, strlen(q[i].in));
        CHECK_STREQ(s, q[i].out, "strconv.Quote");
        free(s);
    }
    static const struct {
        double v;
        const char *f, *vv;
    } nums[] = {
        {1, "1", "1"},
        {1000000, "1000000", "1e+06"},
        {1700000000, "1700000000", "1.7e+09"},
        {1.5, "1.5", "1.5"},
        {0.1, "0.1", "0.1"},
        {1e21, "1000000000000000000000", "1e+21"},
        {1e-7, "0.0000001", "1e-07"},
        {0.00001, "0.00001", "1e-05"},
        {0.000123, "0.000123", "0.000123"},
        {123456, "123456", "123456"},
        {1234567, "1234567", "1.234567e+06"},
        {-2.5, "-2.5", "-2.5"},
        {9007199254740993.0, "9007199254740992", "9.007199254740992e+15"},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        char *f = go_format_float_f(nums[i].v), *v = go_format_float_v(nums[i].v);
        CHECK_STREQ(f, nums[i].f, "FormatFloat 'f' -1");
        CHECK_STREQ(v, nums[i].vv, "%v");
        free(f);
        free(v);
    }
    char *j = go_json_quote("a<b>&\"c\"\n\x01\xe2\x80\xa8");
    CHECK_STREQ(j, "\"a\\u003cb\\u003e\\u0026\\\"c\\\"\\n\\u0001\\u2028\"", "json string");
    free(j);
}

int main(void)
{
    test_parse_string();
    test_join();
    test_strconv();
    CHECK_MAIN_END();
}
