/*
 * tests/integration/test_startup.c: `fulcrum serve` refuses to start on a bad command line, a bad
 * config file or a bad file CA, with an exit status other than 0 and a message that names the
 * file, the key and the reason; `--help` documents every flag.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "integration/harness.h"
#include "unit/check.h"

static const char *g_bin, *g_fixtures;

/* Runs `fulcrum serve <args...> --host 127.0.0.1 --port 0` and expects it to exit with a status
 * other than 0 (or exactly `want_code` when >= 0) and its stderr to contain each of `needles`. */
static void expect_refused(const char *what, const char *const *args, int want_code,
                           const char *const *needles, const char *secret)
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)g_bin;
    argv[n++] = "serve";
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = "0";
    for (const char *const *a = args; *a && n < 30; a++)
        argv[n++] = (char *)*a;
    argv[n] = NULL;

    char *err = NULL;
    int code = h_run("refused", argv, 20000, &err);
    if (want_code >= 0)
        CHECK(code == want_code, "%s: exit status %d, want %d", what, code, want_code);
    else
        CHECK(code > 0 && code < 128, "%s: exits with an error status, got %d", what, code);
    for (const char *const *s = needles; s && *s; s++)
        CHECK(err && strstr(err, *s), "%s: stderr names \"%s\":\n%s", what, *s, err ? err : "");
    if (secret)
        CHECK(err && !strstr(err, secret), "%s: stderr does not contain the secret", what);
    free(err);
}

static void path_of(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/fulcio-fileca/%s", g_fixtures, name);
}

static void test_fileca(const char *what, const char *cert_name, const char *key_name,
                        const char *passwd, const char *const *needles)
{
    char cert[4096], key[4096];
    path_of(cert, sizeof cert, cert_name);
    path_of(key, sizeof key, key_name);
    const char *args[] = {"--ca", "fileca", "--fileca-cert", cert, "--fileca-key", key,
                          "--fileca-key-passwd", passwd, "--ct-log-url", "", NULL};
    expect_refused(what, args, -1, needles, strlen(passwd) > 3 ? passwd : NULL);
}

static void test_help(void)
{
    char *argv[] = {(char *)g_bin, "serve", "--help", NULL};
    int code = h_run("help", argv, 20000, NULL);
    CHECK(code == 0, "serve --help exits 0, got %d", code);
    char path[4096];
    snprintf(path, sizeof path, "%s/help.stdout", h_tmpdir());
    char *out = h_read_file(path, NULL);
    static const char *flags[] = {"--host", "--port", "--config-path", "--ca ",
                                  "--fileca-cert", "--fileca-key ", "--fileca-key-passwd",
                                  "--ct-log-url", "--max-request-body-bytes", "--workers",
                                  "--port-file", "--idle-connection-timeout", "--log-level"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        CHECK(out && strstr(out, flags[i]), "serve --help documents %s", flags[i]);
    free(out);
}

int main(void)
{
    if (h_init("startup") != 0)
        return 1;
    g_bin = h_env("FULCRUM_BIN");
    g_fixtures = h_env("FULCRUM_FIXTURES_DIR");
    if (!g_bin || !g_fixtures) {
        h_finish(1);
        return 1;
    }

    test_help();

    /* --ct-log-url: until the CT log lands only "" is valid, and anything else is refused. */
    {
        const char *args[] = {"--ca", "ephemeralca", "--ct-log-url", "https://ct.example", NULL};
        const char *needles[] = {"--ct-log-url https://ct.example", NULL};
        expect_refused("--ct-log-url with a URL", args, 2, needles, NULL);
    }
    {
        const char *args[] = {"--ca", "nosuchca", "--ct-log-url", "", NULL};
        const char *needles[] = {"--ca nosuchca is not supported", NULL};
        expect_refused("unknown --ca", args, -1, needles, NULL);
    }
    {
        const char *args[] = {"--ca", "ephemeralca", "--ct-log-url", "", "--no-such-flag", NULL};
        const char *needles[] = {"no-such-flag", NULL};
        expect_refused("unknown flag", args, 2, needles, NULL);
    }

    {
        const char *args[] = {"--ca", "ephemeralca", "--ct-log-url", "", "--log-level", "verbose",
                              NULL};
        const char *needles[] = {"--log-level verbose", NULL};
        expect_refused("unknown --log-level", args, 2, needles, NULL);
    }

    /* Config files: the file, the key path and the reason. */
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s/bad-config.json", h_tmpdir());
    {
        h_write_file(cfg, "{\"OIDCIssuers\":{\"https://issuer.example\":"
                          "{\"IssuerURL\":\"https://issuer.example\",\"Type\":\"email\"}}}");
        const char *args[] = {"--ca", "ephemeralca", "--ct-log-url", "", "--config-path", cfg,
                              NULL};
        const char *needles[] = {"bad-config.json", "OIDCIssuers[https://issuer.example]",
                                 "ClientID", "required", NULL};
        expect_refused("config without ClientID", args, -1, needles, NULL);
    }
    {
        h_write_file(cfg, "{\"OIDCIssuers\": [unclosed");
        const char *args[] = {"--ca", "ephemeralca", "--ct-log-url", "", "--config-path", cfg,
                              NULL};
        const char *needles[] = {"bad-config.json", NULL};
        expect_refused("config that is neither JSON nor YAML", args, -1, needles, NULL);
    }
    {
        h_write_file(cfg, "{\"OIDCIssuers\":{\"http://issuer.example\":{\"IssuerURL\":"
                          "\"http://issuer.example\",\"ClientID\":\"sigstore\",\"Type\":"
                          "\"email\"}}}");
        const char *args[] = {"--ca", "ephemeralca", "--ct-log-url", "", "--config-path", cfg,
                              NULL};
        const char *needles[] = {"bad-config.json", "https", NULL};
        expect_refused("plain-http issuer that is not loopback", args, -1, needles, NULL);
    }
    {
        snprintf(cfg, sizeof cfg, "%s/does-not-exist.yaml", h_tmpdir());
        const char *args[] = {"--ca", "ephemeralca", "--ct-log-url", "", "--config-path", cfg,
                              NULL};
        const char *needles[] = {"does-not-exist.yaml", NULL};
        expect_refused("missing config file", args, -1, needles, NULL);
    }

    /* File CAs Fulcio refuses, and a wrong password (never echoed). */
    {
        const char *needles[] = {"notca-cert.pem", NULL};
        test_fileca("fileca notca", "notca-cert.pem", "notca-key.pem", "password123", needles);
    }
    {
        const char *needles[] = {"mismatch-cert.pem", NULL};
        test_fileca("fileca mismatch", "mismatch-cert.pem", "mismatch-key.pem", "password123",
                    needles);
    }
    {
        const char *needles[] = {"eku-chaining-violation-cert.pem", NULL};
        test_fileca("fileca eku-chaining-violation", "eku-chaining-violation-cert.pem",
                    "eku-chaining-violation-key.pem", "password123", needles);
    }
    {
        const char *needles[] = {"ecdsa-key.pem", "wrong password", NULL};
        test_fileca("fileca wrong password", "ecdsa-cert.pem", "ecdsa-key.pem",
                    "not-the-password-42", needles);
    }
    {
        const char *needles[] = {"--fileca-cert", NULL};
        const char *args[] = {"--ca", "fileca", "--ct-log-url", "", NULL};
        expect_refused("fileca without files", args, -1, needles, NULL);
    }

    h_finish(check_failed);
    CHECK_MAIN_END();
}
