/*
 * tests/integration/test_ctlog_keys.c: the CT log's key from a PEM file or a PKCS#11 token.
 *
 * - `fulcrum ctlog serve --key-path` with an encrypted PKCS#8 key (--key-passwd-file): public.pem
 *   is that key's public half, SCTs (OpenSSL's CT code) and STHs verify with it, no private.pem
 *   is made; the same key as SEC1 "EC PRIVATE KEY" reopens the log; refusals: a missing file, an
 *   encrypted key without or with a wrong password, a P-384 key, another key for the same
 *   database (public.pem left alone), contradictory flags.
 * - SoftHSM2 (a private SOFTHSM2_CONF in the temp dir): `fulcrum ctlog createkey` makes a P-256
 *   pair whose private half pkcs11-tool (an independent client) shows as sensitive, never
 *   extractable, sign-only; `ctlog serve --hsm-key-label` signs SCTs and STHs
 *   that verify with the token's public key; refusals: the label taken, an unknown label, a P-384
 *   key, a key without public object, another key for the same database; the PIN appears in no
 *   output.
 * - embedded: `fulcrum serve --ca pkcs11ca --ct-log-hsm-key-label` with the CA key and the log
 *   key on the same token (one module, two signers), and `--ca ephemeralca --ct-log-key-path`:
 *   the issued certificates' SCTs verify (OpenSSL SCT_LIST_validate) with the chosen key, as do
 *   the STHs; refusals of the flags outside the embedded log.
 *
 * Environment: FULCRUM_BIN, FULCRUM_DEV_ISSUER_BIN (ctest); FULCRUM_SOFTHSM2_MODULE overrides
 * the SoftHSM2 module CMake found; softhsm2-util and pkcs11-tool on PATH.
 */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "integration/harness.h"
#include "unit/check.h"
#include "unit/ct_testkit.h"

#ifndef FULCRUM_SOFTHSM2_MODULE_DEFAULT
#define FULCRUM_SOFTHSM2_MODULE_DEFAULT NULL
#endif

#define PIN "Ct-6620-pin-x"
#define KEY_PASSWORD "log-key-pw-8812"

static const char *g_bin;
static X509 *g_root, *g_leaf;
static char g_roots[4200];

static void tmp_path(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", h_tmpdir(), name);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void check_no_secret(const char *what, const char *text)
{
    CHECK(!text || (!strstr(text, PIN) && !strstr(text, KEY_PASSWORD)),
          "%s: no PIN or key password in it", what);
}

static unsigned char *dec64(const char *s, size_t *len)
{
    size_t n = s ? strlen(s) : 0;
    if (!s || n % 4)
        return NULL;
    unsigned char *out = malloc(n / 4 * 3 + 1);
    int r = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    if (r < 0) {
        free(out);
        return NULL;
    }
    *len = (size_t)r - ((n && s[n - 1] == '=') + (n > 1 && s[n - 2] == '='));
    return out;
}

static int pubkey_file_is(const char *path, EVP_PKEY *want)
{
    EVP_PKEY *k = h_read_pubkey(path);
    int same = k && want && EVP_PKEY_eq(k, want) == 1;
    EVP_PKEY_free(k);
    return same;
}

/* Runs `fulcrum <args...>` to completion; returns the exit code, *err its stderr. */
static int run_fulcrum(const char *const *args, char **err)
{
    char *argv[48];
    int n = 0;
    argv[n++] = (char *)g_bin;
    for (int i = 0; args[i] && n < 47; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    char *e = NULL;
    int rc = h_exec(argv, 60000, NULL, &e);
    check_no_secret("fulcrum stderr", e);
    if (err)
        *err = e;
    else
        free(e);
    return rc;
}

/* `fulcrum ctlog serve` with these extra flags must exit `code` with `want` in its stderr. */
static void expect_serve_refused(const char *state, const char *const *extra, int code,
                                 const char *want, const char *what)
{
    const char *args[32] = {"ctlog", "serve", "--host", "127.0.0.1", "--port", "0",
                            "--state-dir", state, "--roots", g_roots};
    int n = 10;
    for (int i = 0; extra[i] && n < 31; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    char *err = NULL;
    int rc = run_fulcrum(args, &err);
    CHECK(rc == code && err && strstr(err, want),
          "%s: ctlog serve exits %d naming the problem (got %d: %.400s)", what, code, rc,
          err ? err : "");
    free(err);
}

/* add-chain [leaf, root] to the log at url; the SCT must verify with log_key (OpenSSL). */
static void check_sct(const char *url, EVP_PKEY *log_key, const char *what)
{
    unsigned char *d1 = NULL, *d2 = NULL;
    int n1 = i2d_X509(g_leaf, &d1), n2 = i2d_X509(g_root, &d2);
    char *b1 = malloc((size_t)n1 * 2 + 4), *b2 = malloc((size_t)n2 * 2 + 4);
    EVP_EncodeBlock((unsigned char *)b1, d1, n1);
    EVP_EncodeBlock((unsigned char *)b2, d2, n2);
    json_t *body = json_pack("{s:[s,s]}", "chain", b1, b2);
    char *text = json_dumps(body, JSON_COMPACT);
    char u[256];
    snprintf(u, sizeof u, "%s/ct/v1/add-chain", url);
    h_response r;
    h_post_json(u, text, NULL, &r);
    json_t *j = r.status == 200 ? h_json(&r) : NULL;
    CHECK(j != NULL, "%s: add-chain 200 (got %ld %.200s)", what, r.status, r.body ? r.body : "");
    size_t idl = 0, sigl = 0;
    unsigned char *id = dec64(json_string_value(json_object_get(j, "id")), &idl);
    unsigned char *sig = dec64(json_string_value(json_object_get(j, "signature")), &sigl);
    unsigned char spki_id[32], *spki = NULL;
    int sl = i2d_PUBKEY(log_key, &spki);
    SHA256(spki, (size_t)sl, spki_id);
    OPENSSL_free(spki);
    int ok = id && idl == 32 && sig && sigl > 4 && sigl < 200 && memcmp(id, spki_id, 32) == 0;
    CHECK(ok, "%s: the SCT's log ID is SHA-256 of the expected key", what);
    if (ok) {
        unsigned char tls[300];
        size_t o = 0;
        uint64_t ts = (uint64_t)json_integer_value(json_object_get(j, "timestamp"));
        tls[o++] = 0;
        memcpy(tls + o, id, 32);
        o += 32;
        for (int i = 0; i < 8; i++)
            tls[o++] = (unsigned char)(ts >> (56 - 8 * i));
        tls[o++] = 0; /* no extensions */
        tls[o++] = 0;
        memcpy(tls + o, sig, sigl);
        o += sigl;
        CHECK(ctk_sct_valid(tls, o, 0, g_leaf, g_root, log_key, h_tmpdir()),
              "%s: OpenSSL validates the SCT with the expected key", what);
    }
    free(id);
    free(sig);
    json_decref(j);
    h_response_free(&r);
    free(text);
    json_decref(body);
    free(b1);
    free(b2);
    OPENSSL_free(d1);
    OPENSSL_free(d2);
}

/* get-sth at url (waiting up to 5 s for tree_size >= min_size): signed with log_key. */
static void check_sth(const char *url, EVP_PKEY *log_key, uint64_t min_size, const char *what)
{
    char u[256];
    snprintf(u, sizeof u, "%s/ct/v1/get-sth", url);
    int ok = 0;
    uint64_t size = 0;
    for (int tries = 0; tries < 100 && !ok; tries++) {
        h_response r;
        h_get(u, &r);
        json_t *j = r.status == 200 ? h_json(&r) : NULL;
        size_t rl = 0, sl = 0;
        unsigned char *root =
            dec64(json_string_value(json_object_get(j, "sha256_root_hash")), &rl);
        unsigned char *sig =
            dec64(json_string_value(json_object_get(j, "tree_head_signature")), &sl);
        size = (uint64_t)json_integer_value(json_object_get(j, "tree_size"));
        uint64_t ts = (uint64_t)json_integer_value(json_object_get(j, "timestamp"));
        ok = root && rl == 32 && sig && size >= min_size &&
             ctk_verify_sth(log_key, ts, size, root, sig, sl);
        free(root);
        free(sig);
        json_decref(j);
        h_response_free(&r);
        if (!ok)
            sleep_ms(50);
    }
    CHECK(ok, "%s: get-sth (tree size %llu, at least %llu) verifies with the expected key", what,
          (unsigned long long)size, (unsigned long long)min_size);
}

static void stop(h_proc *p, const char *what)
{
    int rc = h_proc_stop(p, 20000);
    CHECK(rc == 0, "%s: exits 0 on SIGTERM (got %d; under ASan non-zero means a leak)", what, rc);
    char *err = h_read_file(p->stderr_path, NULL);
    check_no_secret(what, err);
    free(err);
}

static int write_key(const char *path, EVP_PKEY *k, const char *passwd, int sec1)
{
    BIO *b = BIO_new_file(path, "w");
    if (!b)
        return -1;
    int ok = sec1 ? PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0, NULL, NULL) == 1
             : passwd ? PEM_write_bio_PKCS8PrivateKey(b, k, EVP_aes_256_cbc(), NULL, 0, NULL,
                                                      (void *)passwd) == 1
                      : PEM_write_bio_PKCS8PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1;
    ok = BIO_free(b) == 1 && ok;
    chmod(path, 0600);
    return ok ? 0 : -1;
}

/* ---- a key file ----------------------------------------------------------------------- */

static EVP_PKEY *g_file_key;
static char g_enc_key[4200], g_pw_file[4200];

static void test_file_key(void)
{
    char state[4200], sec1[4200], p384[4200], priv[4300], pub[4300], wrong_pw[4200];
    tmp_path(state, sizeof state, "file-state");
    tmp_path(g_enc_key, sizeof g_enc_key, "log-key.enc.pem");
    tmp_path(sec1, sizeof sec1, "log-key.sec1.pem");
    tmp_path(p384, sizeof p384, "p384.pem");
    tmp_path(g_pw_file, sizeof g_pw_file, "log-key.pw");
    tmp_path(wrong_pw, sizeof wrong_pw, "wrong.pw");
    snprintf(priv, sizeof priv, "%s/ctlog/private.pem", state);
    snprintf(pub, sizeof pub, "%s/ctlog/public.pem", state);
    g_file_key = h_key_new("P-256");
    EVP_PKEY *k384 = h_key_new("P-384");
    CHECK(write_key(g_enc_key, g_file_key, KEY_PASSWORD, 0) == 0 &&
              write_key(sec1, g_file_key, NULL, 1) == 0 && write_key(p384, k384, NULL, 0) == 0 &&
              h_write_file(g_pw_file, KEY_PASSWORD "\n") == 0 &&
              h_write_file(wrong_pw, "not-the-password\n") == 0,
          "write the key files");
    char *text = h_read_file(g_enc_key, NULL);
    CHECK(text && strstr(text, "BEGIN ENCRYPTED PRIVATE KEY"), "the key file is encrypted PKCS#8");
    free(text);
    text = h_read_file(sec1, NULL);
    CHECK(text && strstr(text, "BEGIN EC PRIVATE KEY"), "the other file is SEC1");
    free(text);

    h_ctlog log;
    const char *extra[] = {"--key-path", g_enc_key, "--key-passwd-file", g_pw_file, NULL};
    if (h_ctlog_start_args(&log, "log-file", g_roots, state, 0, extra) != 0) {
        CHECK(0, "ctlog serve --key-path starts");
        return;
    }
    CHECK(pubkey_file_is(pub, g_file_key), "--key-path: public.pem is the key file's public half");
    CHECK(access(priv, F_OK) != 0, "--key-path: no ctlog/private.pem is generated");
    check_sct(log.url, g_file_key, "--key-path");
    check_sth(log.url, g_file_key, 1, "--key-path");
    stop(&log.proc, "--key-path log");

    /* The same key as SEC1 opens the same database. */
    const char *extra2[] = {"--key-path", sec1, NULL};
    if (h_ctlog_start_args(&log, "log-file-sec1", g_roots, state, 0, extra2) == 0) {
        check_sth(log.url, g_file_key, 1, "SEC1 copy of the key, same database");
        stop(&log.proc, "SEC1 log");
    } else {
        CHECK(0, "the same key as SEC1 reopens the log");
    }

    char missing[4200];
    tmp_path(missing, sizeof missing, "no-such-key.pem");
    const char *e1[] = {"--key-path", missing, NULL};
    expect_serve_refused(state, e1, 2, "never generated", "missing --key-path file");
    CHECK(access(missing, F_OK) != 0, "a missing --key-path is not created");
    const char *e2[] = {"--key-path", g_enc_key, NULL};
    expect_serve_refused(state, e2, 1, "is encrypted and no password file was given",
                         "encrypted key, no password");
    const char *e3[] = {"--key-path", g_enc_key, "--key-passwd-file", wrong_pw, NULL};
    expect_serve_refused(state, e3, 1, "wrong password", "encrypted key, wrong password");
    const char *e4[] = {"--key-path", p384, NULL};
    expect_serve_refused(state, e4, 1, "is EC secp384r1; the log's key must be EC P-256",
                         "P-384 key file");
    const char *e5[] = {"--key-passwd-file", g_pw_file, NULL};
    expect_serve_refused(state, e5, 2, "--key-passwd-file needs --key-path",
                         "--key-passwd-file alone");
    const char *e6[] = {"--key-path", sec1, "--hsm-key-label", "x", NULL};
    expect_serve_refused(state, e6, 2, "give one", "--key-path and --hsm-key-label");
    const char *e7[] = {"--pkcs11-config-path", "x.json", NULL};
    expect_serve_refused(state, e7, 2, "need --hsm-key-label", "--pkcs11-config-path alone");
    /* Without --key-path the default key is generated: a different key, refused. */
    const char *e8[] = {NULL};
    expect_serve_refused(state, e8, 1, "belongs to log ID", "another key, same database");
    CHECK(pubkey_file_is(pub, g_file_key), "after the refusal public.pem is still the log's key");
    EVP_PKEY_free(k384);
}

/* ---- a key in a token ------------------------------------------------------------------ */

static h_softhsm g_hsm;
static char g_p11_cfg[4200], g_pin_file[4200], g_tok_pub_path[4200];
static EVP_PKEY *g_tok_pub;

static char *tool(const char *const *args, int *rc)
{
    char *argv[32];
    int n = 0;
    argv[n++] = g_hsm.tool;
    argv[n++] = "--module";
    argv[n++] = g_hsm.module;
    argv[n++] = "--token-label";
    argv[n++] = "ctlog-token";
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    char *out = NULL, *err = NULL;
    *rc = h_exec(argv, 60000, &out, &err);
    if (*rc != 0 && err)
        fprintf(stderr, "pkcs11-tool: %s\n", err);
    free(err);
    return out;
}

/* The "Private Key Object" block of pkcs11-tool's listing for `label` (malloc'd). */
static char *object_block(const char *listing, const char *kind, const char *label)
{
    char want[200];
    snprintf(want, sizeof want, "label:      %s\n", label);
    const char *p = listing ? strstr(listing, kind) : NULL;
    while (p) {
        const char *next = strstr(p + 1, kind);
        size_t len = next ? (size_t)(next - p) : strlen(p);
        char *blk = strndup(p, len);
        if (blk && strstr(blk, want))
            return blk;
        free(blk);
        p = next;
    }
    return NULL;
}

static void test_token_key(void)
{
    tmp_path(g_p11_cfg, sizeof g_p11_cfg, "crypto11.json");
    tmp_path(g_pin_file, sizeof g_pin_file, "user.pin");
    tmp_path(g_tok_pub_path, sizeof g_tok_pub_path, "token-log-key.pem");
    CHECK(h_softhsm_init_token(&g_hsm, "ctlog-token", PIN) == 0 &&
              h_softhsm_write_config(&g_hsm, g_p11_cfg, "ctlog-token") == 0 &&
              h_write_file(g_pin_file, PIN "\n") == 0 && chmod(g_pin_file, 0600) == 0,
          "token, crypto11 config and PIN file");

    const char *create[] = {"ctlog", "createkey", "--pkcs11-config-path", g_p11_cfg,
                            "--pkcs11-pin-file", g_pin_file, "--hsm-key-label", "ctlog-key",
                            "--out", g_tok_pub_path, NULL};
    char *err = NULL;
    int rc = run_fulcrum(create, &err);
    CHECK(rc == 0, "ctlog createkey exits 0 (got %d: %.400s)", rc, err ? err : "");
    free(err);
    g_tok_pub = h_read_pubkey(g_tok_pub_path);
    char group[64] = "";
    size_t gl = 0;
    CHECK(g_tok_pub && EVP_PKEY_get_base_id(g_tok_pub) == EVP_PKEY_EC &&
              EVP_PKEY_get_group_name(g_tok_pub, group, sizeof group, &gl) &&
              strcmp(group, "prime256v1") == 0,
          "createkey --out holds an EC P-256 public key (%s)", group);
    if (!g_tok_pub)
        return;

    /* What an independent PKCS#11 client sees. */
    const char *list[] = {"--login", "--pin", PIN, "--list-objects", NULL};
    char *listing = tool(list, &rc);
    char *privblk = object_block(listing, "Private Key Object", "ctlog-key");
    char *pubblk = object_block(listing, "Public Key Object", "ctlog-key");
    CHECK(rc == 0 && privblk && strstr(privblk, "Private Key Object; EC") &&
              strstr(privblk, "Usage:      sign\n") &&
              strstr(privblk, "Access:     sensitive, always sensitive, never extractable"),
          "pkcs11-tool: the private key is EC, sign-only, sensitive, never extractable:\n%s",
          privblk ? privblk : listing ? listing : "(nothing)");
    CHECK(pubblk && strstr(pubblk, "Usage:      verify\n"),
          "pkcs11-tool: the public key only verifies:\n%s", pubblk ? pubblk : "(none)");
    unsigned char *der = NULL;
    int dl = i2d_PUBKEY(g_tok_pub, &der);
    char pointhex[200] = "";
    /* The SPKI's last 65 bytes are the uncompressed point; pkcs11-tool prints 0441 || point. */
    for (int i = 0; dl == 91 && i < 65; i++)
        sprintf(pointhex + 2 * i, "%02x", der[26 + i]);
    OPENSSL_free(der);
    CHECK(pubblk && *pointhex && strstr(pubblk, pointhex),
          "pkcs11-tool: the token's public key object holds the --out key");
    free(privblk);
    free(pubblk);
    free(listing);
    err = NULL;
    rc = run_fulcrum(create, &err);
    CHECK(rc == 1 && err && strstr(err, "already holds a private key labelled \\\"ctlog-key"),
          "createkey refuses a label in use (got %d: %.300s)", rc, err ? err : "");
    free(err);
    EVP_PKEY *again = h_read_pubkey(g_tok_pub_path);
    CHECK(again && EVP_PKEY_eq(again, g_tok_pub) == 1,
          "the refused createkey left the existing --out file alone");
    EVP_PKEY_free(again);
    const char *nolabel[] = {"ctlog", "createkey", "--pkcs11-config-path", g_p11_cfg, NULL};
    rc = run_fulcrum(nolabel, &err);
    CHECK(rc == 2 && err && strstr(err, "--hsm-key-label is required"),
          "createkey without a label exits 2 (got %d)", rc);
    free(err);

    /* The log with the token's key. */
    char state[4200], pub[4300], priv[4300];
    tmp_path(state, sizeof state, "token-state");
    snprintf(pub, sizeof pub, "%s/ctlog/public.pem", state);
    snprintf(priv, sizeof priv, "%s/ctlog/private.pem", state);
    const char *extra[] = {"--pkcs11-config-path", g_p11_cfg, "--pkcs11-pin-file", g_pin_file,
                           "--hsm-key-label", "ctlog-key", NULL};
    h_ctlog log;
    if (h_ctlog_start_args(&log, "log-token", g_roots, state, 0, extra) != 0) {
        CHECK(0, "ctlog serve --hsm-key-label starts");
        return;
    }
    char *a = h_read_file(pub, NULL), *b = h_read_file(g_tok_pub_path, NULL);
    CHECK(a && b && strcmp(a, b) == 0, "--hsm-key-label: public.pem is createkey's output");
    free(a);
    free(b);
    CHECK(access(priv, F_OK) != 0, "--hsm-key-label: no ctlog/private.pem");
    check_sct(log.url, g_tok_pub, "--hsm-key-label");
    check_sth(log.url, g_tok_pub, 1, "--hsm-key-label");
    for (int i = 0; i < 3; i++) /* resubmissions: the same SCT, signed by the token again */
        check_sct(log.url, g_tok_pub, "--hsm-key-label, again");
    stop(&log.proc, "--hsm-key-label log");

    /* Refusals. */
    const char *e1[] = {"--key-path", g_enc_key, "--key-passwd-file", g_pw_file, NULL};
    expect_serve_refused(state, e1, 1, "belongs to log ID", "the file key on the token's log");
    a = h_read_file(pub, NULL);
    b = h_read_file(g_tok_pub_path, NULL);
    CHECK(a && b && strcmp(a, b) == 0, "after the refusal public.pem is still the token's key");
    free(a);
    free(b);
    char other[4200];
    tmp_path(other, sizeof other, "token-state-2");
    const char *e2[] = {"--pkcs11-config-path", g_p11_cfg, "--pkcs11-pin-file", g_pin_file,
                        "--hsm-key-label", "no-such-key", NULL};
    expect_serve_refused(other, e2, 1, "no private key labelled \\\"no-such-key", "unknown label");
    const char *gen384[] = {"--login", "--pin", PIN, "--keypairgen", "--key-type",
                            "EC:secp384r1", "--label", "p384-key", "--id", "3834", NULL};
    char *out384 = tool(gen384, &rc);
    free(out384);
    CHECK(rc == 0, "pkcs11-tool makes a P-384 key pair");
    const char *e3[] = {"--pkcs11-config-path", g_p11_cfg, "--pkcs11-pin-file", g_pin_file,
                        "--hsm-key-label", "p384-key", NULL};
    expect_serve_refused(other, e3, 1, "must be EC P-256 (ECDSA with SHA-256); the pkcs11 "
                                       "signer's key is EC secp384r1", "P-384 token key");
    const char *create2[] = {"ctlog", "createkey", "--pkcs11-config-path", g_p11_cfg,
                             "--pkcs11-pin-file", g_pin_file, "--hsm-key-label", "no-pub", NULL};
    char *pemout = NULL;
    char *argv[12];
    argv[0] = (char *)g_bin;
    for (int i = 0; create2[i]; i++)
        argv[i + 1] = (char *)create2[i];
    argv[9] = NULL;
    rc = h_exec(argv, 60000, &pemout, NULL);
    CHECK(rc == 0 && pemout && strstr(pemout, "-----BEGIN PUBLIC KEY-----"),
          "createkey without --out prints the public key (exit %d)", rc);
    free(pemout);
    const char *del[] = {"--login", "--pin", PIN, "--delete-object", "--type", "pubkey",
                         "--label", "no-pub", NULL};
    char *d = tool(del, &rc);
    free(d);
    CHECK(rc == 0, "pkcs11-tool deletes the public key object");
    const char *e4[] = {"--pkcs11-config-path", g_p11_cfg, "--pkcs11-pin-file", g_pin_file,
                        "--hsm-key-label", "no-pub", NULL};
    expect_serve_refused(other, e4, 1, "no public key labelled \\\"no-pub",
                         "private key without public object (SoftHSM2 shows no EC point)");
}

/* ---- embedded in `fulcrum serve` -------------------------------------------------------- */

static void issue_and_check(const h_server *srv, const h_issuer *iss, EVP_PKEY *log_key,
                            const char *state, const char *what)
{
    char *tok = h_issuer_token(iss, "email=ct-key@example.com");
    EVP_PKEY *key = h_key_new("P-256");
    char *pem = h_key_spki_pem(key);
    size_t sl = 0;
    unsigned char *sig = h_sign_pop(key, "ct-key@example.com", &sl);
    char *b64 = h_b64(sig, sl, 0);
    json_t *j = json_pack("{s:{s:s},s:{s:{s:s,s:s},s:s}}", "credentials", "oidcIdentityToken",
                          tok, "publicKeyRequest", "publicKey", "algorithm", "ECDSA", "content",
                          pem, "proofOfPossession", b64);
    char *body = json_dumps(j, JSON_COMPACT);
    char url[256];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", srv->url);
    h_response r;
    h_post_json(url, body, NULL, &r);
    json_t *resp = r.status == 200 ? h_json(&r) : NULL;
    json_t *certs = json_object_get(
        json_object_get(json_object_get(resp, "signedCertificateEmbeddedSct"), "chain"),
        "certificates");
    STACK_OF(X509) *chain = certs ? h_chain_from_json(certs) : NULL;
    CHECK(chain && sk_X509_num(chain) >= 2, "%s: 200 with an embedded-SCT chain (%ld %.200s)",
          what, r.status, r.body ? r.body : "");
    if (chain && sk_X509_num(chain) >= 2) {
        X509 *leaf = sk_X509_value(chain, 0), *issuer = sk_X509_value(chain, 1);
        CHECK(h_verify_chain(chain, sk_X509_value(chain, sk_X509_num(chain) - 1)),
              "%s: the chain verifies", what);
        CHECK(h_embedded_sct_valid(leaf, issuer, log_key),
              "%s: OpenSSL's SCT_LIST_validate accepts the SCT with the chosen log key", what);
    }
    char pub[4300];
    snprintf(pub, sizeof pub, "%s/ctlog/public.pem", state);
    CHECK(pubkey_file_is(pub, log_key), "%s: <state-dir>/ctlog/public.pem is the chosen key",
          what);
    check_sth(srv->url, log_key, 1, what);
    sk_X509_pop_free(chain, X509_free);
    json_decref(resp);
    h_response_free(&r);
    free(body);
    json_decref(j);
    free(b64);
    free(sig);
    free(pem);
    free(tok);
    EVP_PKEY_free(key);
}

static void test_embedded(void)
{
    h_issuer iss;
    if (h_issuer_start(&iss) != 0) {
        CHECK(0, "dev issuer starts");
        return;
    }
    /* The CA key on the same token as the log key. */
    char root_pem[4200];
    tmp_path(root_pem, sizeof root_pem, "ca-root.pem");
    const char *createca[] = {"createca", "--pkcs11-config-path", g_p11_cfg, "--pkcs11-pin-file",
                              g_pin_file, "--hsm-caroot-id", "ca-1", "--out", root_pem, NULL};
    char *err = NULL;
    int rc = run_fulcrum(createca, &err);
    CHECK(rc == 0, "createca on the log's token (got %d: %.300s)", rc, err ? err : "");
    free(err);

    char state[4200];
    tmp_path(state, sizeof state, "serve-token-state");
    const char *extra[] = {"--pkcs11-config-path", g_p11_cfg, "--pkcs11-pin-file", g_pin_file,
                           "--hsm-caroot-id", "ca-1", "--ct-log-url", "embedded",
                           "--state-dir", state, "--ct-log-hsm-key-label", "ctlog-key",
                           "--workers", "4", NULL};
    h_server srv;
    h_server_opts o = {.ca = "pkcs11ca", .issuer = &iss, .extra_args = extra};
    if (g_tok_pub && h_server_start(&srv, &o) == 0) {
        for (int i = 0; i < 3; i++)
            issue_and_check(&srv, &iss, g_tok_pub, state, "serve --ct-log-hsm-key-label");
        stop(&srv.proc, "serve with the CA and log keys on one token");
    } else {
        CHECK(0, "serve --ca pkcs11ca --ct-log-hsm-key-label starts");
    }

    char state2[4200];
    tmp_path(state2, sizeof state2, "serve-file-state");
    const char *extra2[] = {"--ct-log-url", "embedded", "--state-dir", state2,
                            "--ct-log-key-path", g_enc_key, "--ct-log-key-passwd-file",
                            g_pw_file, NULL};
    h_server_opts o2 = {.ca = "ephemeralca", .issuer = &iss, .extra_args = extra2};
    if (h_server_start(&srv, &o2) == 0) {
        issue_and_check(&srv, &iss, g_file_key, state2, "serve --ct-log-key-path");
        stop(&srv.proc, "serve with a log key file");
    } else {
        CHECK(0, "serve --ct-log-key-path starts");
    }

    /* Refusals (exit 2 before anything starts). */
    struct {
        const char *args[12];
        const char *want;
    } bad[] = {
        {{"--ct-log-url", "", "--ct-log-hsm-key-label", "ctlog-key", NULL},
         "are for the embedded log"},
        {{"--ct-log-url", "embedded", "--ct-log-key-path", g_enc_key, "--ct-log-hsm-key-label",
          "ctlog-key", NULL},
         "give one"},
        {{"--ct-log-url", "embedded", "--ct-log-key-path", "no-such.pem", NULL},
         "is never generated"},
        {{"--ct-log-url", "embedded", "--ct-log-key-passwd-file", g_pw_file, NULL},
         "--ct-log-key-passwd-file needs --ct-log-key-path"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[20] = {"serve", "--ca", "ephemeralca", "--port", "0", "--state-dir",
                                state2};
        int n = 7;
        for (int k = 0; bad[i].args[k]; k++)
            args[n++] = bad[i].args[k];
        args[n] = NULL;
        rc = run_fulcrum(args, &err);
        CHECK(rc == 2 && err && strstr(err, bad[i].want),
              "serve refusal %zu: exit 2 naming it (got %d: %.300s)", i, rc, err ? err : "");
        free(err);
    }
    const char *bad_label[] = {"serve", "--ca", "ephemeralca", "--port", "0", "--state-dir",
                               state2, "--pkcs11-config-path", g_p11_cfg, "--pkcs11-pin-file",
                               g_pin_file, "--ct-log-hsm-key-label", "no-such-key", NULL};
    rc = run_fulcrum(bad_label, &err);
    CHECK(rc == 1 && err && strstr(err, "no private key labelled \\\"no-such-key"),
          "serve --ct-log-hsm-key-label with an unknown label exits 1 (got %d)", rc);
    free(err);
    h_proc_stop(&iss.proc, 5000);
}

int main(void)
{
    if (h_init("ctlog_keys") != 0)
        return 1;
    g_bin = h_env("FULCRUM_BIN");
    if (!g_bin) {
        h_finish(1);
        return 1;
    }
    EVP_PKEY *root_key = ctk_key(), *leaf_key = ctk_key();
    g_root = ctk_cert("Keys Test Root", root_key, NULL, NULL, 1, CTK_NO_POISON, 0);
    g_leaf = ctk_cert("leaf", leaf_key, g_root, root_key, 0, CTK_NO_POISON, 0);
    tmp_path(g_roots, sizeof g_roots, "roots.pem");
    FILE *f = fopen(g_roots, "w");
    CHECK(f && PEM_write_X509(f, g_root) == 1 && fclose(f) == 0, "write roots.pem");

    test_file_key();
    if (h_softhsm_setup(&g_hsm, FULCRUM_SOFTHSM2_MODULE_DEFAULT) != 0) {
        CHECK(0, "SoftHSM2 module, softhsm2-util and pkcs11-tool");
    } else {
        test_token_key();
        test_embedded();
    }

    EVP_PKEY_free(g_tok_pub);
    EVP_PKEY_free(g_file_key);
    X509_free(g_root);
    X509_free(g_leaf);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(leaf_key);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
