/*
 * tests/integration/test_pkcs11ca.c: `fulcrum createca` and `fulcrum serve --ca pkcs11ca` on
 * SoftHSM2 tokens that live in this test's temp dir (a private SOFTHSM2_CONF; the system's token
 * directory is never touched).
 *
 * - createca for P-256, P-384, RSA-3072 and RSA-4096: the root is read back from the token with
 *   pkcs11-tool (an independent PKCS#11 client) and equals --out; the token's public-key object
 *   equals the root's key; the server issues certificates that verify against that root, signed
 *   with the algorithm the key implies.
 * - an intermediate whose key is on the token too, served with --hsm-chain-path.
 * - the PIN comes from a 0600 file: it is in no argv (/proc/<pid>/cmdline), no stderr, no error.
 * - start-up refusals: wrong PIN, unknown CKA_ID, unknown key label, a key that does not match
 *   the certificate, an ambiguous token selection, createca over an existing CA.
 * - stress: 2000 issuances over 16 concurrent connections with 4 workers; every certificate
 *   verifies; the server exits 0 (leak-free under ASan).
 *
 * Environment: FULCRUM_BIN, FULCRUM_DEV_ISSUER_BIN (ctest); FULCRUM_SOFTHSM2_MODULE overrides
 * the SoftHSM2 module CMake found; softhsm2-util and pkcs11-tool on PATH.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#include "integration/harness.h"
#include "unit/check.h"

#define PIN "Pq7-735911-zK"
#define WRONG_PIN "Wr0ng-48213-pin"

static h_issuer g_iss;
static char g_module[4096], g_util[4096], g_tool[4096], g_pin_file[4200], g_ident_cfg[4200];

static int find_tool(const char *name, char *out, size_t len)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    char *save = NULL;
    for (char *dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(out, len, "%s/%s", dir, name);
        if (access(out, X_OK) == 0)
            return 0;
    }
    fprintf(stderr, "%s is not on PATH\n", name);
    return -1;
}

static void tmp_path(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", h_tmpdir(), name);
}

/*
 * Runs argv to completion (at most timeout_ms, then SIGKILL), stdout and stderr into files of the
 * temp dir. The harness caps the children it tracks, so the many short tool runs of this test
 * go through here; servers and the issuer go through the harness. Returns the exit code (-1 if
 * it could not run or was killed); *out / *err (may be NULL) receive what it wrote (malloc'd).
 */
static int run_cmd(char *const argv[], int timeout_ms, char **out, char **err)
{
    static int seq;
    char out_path[4200], err_path[4200], name[64];
    snprintf(name, sizeof name, "cmd-%d.stdout", ++seq);
    tmp_path(out_path, sizeof out_path, name);
    snprintf(name, sizeof name, "cmd-%d.stderr", seq);
    tmp_path(err_path, sizeof err_path, name);
    if (out)
        *out = NULL;
    if (err)
        *err = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    int status = 0, waited = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            return -1;
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "%s still running after %d ms: killed\n", argv[0], timeout_ms);
            status = -1;
            break;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        waited += 10;
    }
    if (out)
        *out = h_read_file(out_path, NULL);
    if (err)
        *err = h_read_file(err_path, NULL);
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void check_no_pin(const char *what, const char *text)
{
    CHECK(!text || (!strstr(text, PIN) && !strstr(text, WRONG_PIN)),
          "%s: the PIN must not appear in it", what);
}

static int init_token(const char *label)
{
    char *err = NULL;
    char *argv[] = {g_util, "--init-token", "--free", "--label", (char *)label, "--pin", PIN,
                    "--so-pin", "5678-so", NULL};
    int rc = run_cmd(argv, 60000, NULL, &err);
    CHECK(rc == 0, "softhsm2-util --init-token %s (exit %d): %s", label, rc, err ? err : "");
    free(err);
    return rc == 0 ? 0 : -1;
}

/* crypto11 JSON without the PIN (it comes from the PIN file). */
static void write_config(char *path, size_t len, const char *name, const char *label)
{
    tmp_path(path, len, name);
    json_t *j = json_pack("{s:s,s:s}", "Path", g_module, "TokenLabel", label);
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    CHECK(text && h_write_file(path, text) == 0, "write %s", name);
    free(text);
}

/* Runs `fulcrum createca` with the PIN file and these flags; returns the exit code. */
static int createca(const char *config, const char *const *flags, char **err)
{
    char *argv[40];
    int n = 0;
    argv[n++] = (char *)h_env("FULCRUM_BIN");
    argv[n++] = "createca";
    argv[n++] = "--pkcs11-config-path";
    argv[n++] = (char *)config;
    argv[n++] = "--pkcs11-pin-file";
    argv[n++] = g_pin_file;
    for (int i = 0; flags[i] && n < 39; i++)
        argv[n++] = (char *)flags[i];
    argv[n] = NULL;
    int rc = run_cmd(argv, 120000, NULL, err);
    check_no_pin("createca stderr", err ? *err : NULL);
    return rc;
}

static char *hex_of(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 1);
    for (size_t i = 0; out && i < n; i++)
        sprintf(out + 2 * i, "%02x", (unsigned char)s[i]);
    if (out)
        out[2 * n] = '\0';
    return out;
}

/* pkcs11-tool --read-object (public objects: no login). Returns the DER bytes (malloc'd). */
static unsigned char *tool_read(const char *label, const char *type, const char *id, size_t *len)
{
    char out[4200], name[64];
    snprintf(name, sizeof name, "read-%s-%s.der", type, id);
    tmp_path(out, sizeof out, name);
    char *idhex = hex_of(id);
    char *err = NULL;
    char *argv[] = {g_tool, "--module", g_module, "--token-label", (char *)label,
                    "--read-object", "--type", (char *)type, "--id", idhex, "-o", out, NULL};
    int rc = run_cmd(argv, 60000, NULL, &err);
    CHECK(rc == 0, "pkcs11-tool --read-object --type %s --id %s (exit %d): %s", type, idhex, rc,
          err ? err : "");
    free(err);
    free(idhex);
    return rc == 0 ? (unsigned char *)h_read_file(out, len) : NULL;
}

/* The "EC_POINT:" of the listed public key object whose ID is id (pkcs11-tool lists them all).
 * (GCC 12 reports a false -Wdangling-pointer on the strstr results here.) */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
static long ec_point_of(const char *listing, const char *id)
{
    char *idhex = hex_of(id), want[200];
    snprintf(want, sizeof want, "%s\n", idhex ? idhex : "?");
    free(idhex);
    const char *blk = strstr(listing, "Public Key Object");
    while (blk) {
        const char *next = strstr(blk + 1, "Public Key Object");
        const char *end = next ? next : blk + strlen(blk);
        const char *idline = strstr(blk, "ID:");
        const char *point = strstr(blk, "EC_POINT:");
        if (idline && idline < end && point && point < end) {
            idline += 3;
            while (*idline == ' ')
                idline++;
            if (strncmp(idline, want, strlen(want)) == 0)
                return (long)(point - listing);
        }
        blk = next;
    }
    return -1;
}
#pragma GCC diagnostic pop

/* pkcs11-tool --list-objects --type pubkey (public objects: no login). */
static char *tool_list_pubkey(const char *label, const char *id)
{
    char *idhex = hex_of(id);
    char *out = NULL, *err = NULL;
    char *argv[] = {g_tool, "--module", g_module, "--token-label", (char *)label,
                    "--list-objects", "--type", "pubkey", "--id", idhex, NULL};
    int rc = run_cmd(argv, 60000, &out, &err);
    CHECK(rc == 0, "pkcs11-tool --list-objects --type pubkey --id %s (exit %d): %s", idhex, rc,
          err ? err : "");
    free(err);
    free(idhex);
    return out;
}

static X509 *read_pem_cert(const char *path, int index)
{
    char *text = h_read_file(path, NULL);
    STACK_OF(X509) *chain = text ? h_chain_from_pem(text) : NULL;
    free(text);
    X509 *x = chain && index < sk_X509_num(chain) ? sk_X509_value(chain, index) : NULL;
    if (x)
        X509_up_ref(x);
    sk_X509_pop_free(chain, X509_free);
    return x;
}

/* The server's command line, NULs turned into spaces. */
static char *proc_cmdline(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    size_t len = 0;
    char *text = h_read_file(path, &len);
    for (size_t i = 0; text && i < len; i++)
        if (text[i] == '\0')
            text[i] = ' ';
    return text;
}

static int start_server(h_server *srv, const char *config, const char *id, const char *label,
                        const char *chain, const char *workers)
{
    const char *extra[16];
    int n = 0;
    extra[n++] = "--pkcs11-config-path";
    extra[n++] = config;
    extra[n++] = "--pkcs11-pin-file";
    extra[n++] = g_pin_file;
    extra[n++] = "--hsm-caroot-id";
    extra[n++] = id;
    if (label) {
        extra[n++] = "--hsm-key-label";
        extra[n++] = label;
    }
    if (chain) {
        extra[n++] = "--hsm-chain-path";
        extra[n++] = chain;
    }
    extra[n++] = "--workers";
    extra[n++] = workers ? workers : "2";
    extra[n] = NULL;
    h_server_opts o = {.ca = "pkcs11ca", .issuer = &g_iss, .extra_args = extra};
    int rc = h_server_start(srv, &o);
    CHECK(rc == 0, "pkcs11ca server starts (token cert \"%s\")", id);
    if (rc == 0) {
        char *cmd = proc_cmdline(srv->proc.pid);
        CHECK(cmd && strstr(cmd, "--pkcs11-pin-file"), "server command line is readable");
        check_no_pin("server /proc/<pid>/cmdline", cmd);
        free(cmd);
    }
    return rc;
}

/* Stops the server: it must exit 0 (under ASan: no leak) and never have logged the PIN. */
static void stop_server(h_server *srv, const char *what)
{
    int rc = h_proc_stop(&srv->proc, 20000);
    CHECK(rc == 0, "%s: server exits 0 on SIGTERM (got %d; under ASan non-zero means a leak)",
          what, rc);
    char *err = h_read_file(srv->proc.stderr_path, NULL);
    check_no_pin("server stderr", err);
    free(err);
}

/* A v2 request for a new client key; returns the body (malloc'd). */
static char *key_request(const char *token, EVP_PKEY *key, const char *email)
{
    char *pem = h_key_spki_pem(key);
    size_t sig_len = 0;
    unsigned char *sig = h_sign_pop(key, email, &sig_len);
    char *b64 = sig ? h_b64(sig, sig_len, 0) : NULL;
    json_t *j = json_pack("{s:{s:s},s:{s:{s:s,s:s},s:s}}", "credentials", "oidcIdentityToken",
                          token, "publicKeyRequest", "publicKey", "algorithm", "ECDSA", "content",
                          pem, "proofOfPossession", b64);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    free(pem);
    free(sig);
    free(b64);
    return body;
}

/* The leaf and chain of a 200 v2 response (NULL otherwise). */
static STACK_OF(X509) *issued_chain(const h_response *r)
{
    if (r->status != 200)
        return NULL;
    json_t *j = h_json(r);
    json_t *certs = json_object_get(
        json_object_get(json_object_get(j, "signedCertificateDetachedSct"), "chain"),
        "certificates");
    STACK_OF(X509) *chain = certs ? h_chain_from_json(certs) : NULL;
    json_decref(j);
    return chain;
}

/* Issues one certificate and checks it against root (and the expected signature algorithm). */
static void issue_and_verify(const h_server *srv, X509 *root, int sig_nid, int chain_len,
                             const char *what)
{
    const char *email = "pkcs11@example.com";
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", srv->url);
    char *token = h_issuer_token(&g_iss, "email=pkcs11@example.com&sub=pkcs11-sub");
    EVP_PKEY *key = h_key_new("P-256");
    char *body = token && key ? key_request(token, key, email) : NULL;
    h_response r;
    int rc = body ? h_post_json(url, body, NULL, &r) : -1;
    CHECK(rc == 0 && r.status == 200, "%s: issuance answers 200 (got %ld: %.300s)", what,
          rc == 0 ? r.status : 0L, rc == 0 && r.body ? r.body : "");
    STACK_OF(X509) *chain = rc == 0 ? issued_chain(&r) : NULL;
    CHECK(chain && sk_X509_num(chain) == chain_len + 1, "%s: leaf + %d CA certificates", what,
          chain_len);
    if (chain) {
        X509 *leaf = sk_X509_value(chain, 0);
        CHECK(h_verify_chain(chain, root), "%s: the leaf verifies to the token's root", what);
        CHECK(X509_get_signature_nid(leaf) == sig_nid, "%s: leaf signed with %s (got %s)", what,
              OBJ_nid2sn(sig_nid), OBJ_nid2sn(X509_get_signature_nid(leaf)));
        CHECK(X509_cmp(sk_X509_value(chain, chain_len), root) == 0,
              "%s: the chain ends with the token's root", what);
    }
    sk_X509_pop_free(chain, X509_free);
    if (rc == 0)
        h_response_free(&r);
    free(body);
    free(token);
    EVP_PKEY_free(key);
}

/* The root is on the token, and the token's public key object is the root's key. */
static void check_token_objects(const char *label, const char *id, X509 *root)
{
    size_t len = 0;
    unsigned char *der = tool_read(label, "cert", id, &len);
    unsigned char *want = NULL;
    int wlen = i2d_X509(root, &want);
    CHECK(der && wlen > 0 && len == (size_t)wlen && memcmp(der, want, len) == 0,
          "token %s: the certificate with CKA_ID %s is the root createca wrote", label, id);
    free(der);
    OPENSSL_free(want);
    want = NULL;
    EVP_PKEY *pub = X509_get0_pubkey(root);
    if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA) {
        der = tool_read(label, "pubkey", id, &len);
        wlen = i2d_PUBKEY(pub, &want);
        CHECK(der && wlen > 0 && len == (size_t)wlen && memcmp(der, want, len) == 0,
              "token %s: the public key object %s is the root certificate's key", label, id);
        free(der);
        OPENSSL_free(want);
        return;
    }
    /* pkcs11-tool cannot export every curve: compare CKA_EC_POINT (a DER OCTET STRING holding
     * the uncompressed point) as it lists it. */
    char *listing = tool_list_pubkey(label, id);
    long at = listing ? ec_point_of(listing, id) : -1;
    const char *p = at >= 0 ? listing + at : NULL;
    unsigned char point[200];
    size_t plen = EVP_PKEY_get1_encoded_public_key(pub, &want);
    char expect[1024] = "";
    if (plen > 0 && plen + 2 < sizeof point && plen < 128) {
        point[0] = 0x04; /* OCTET STRING */
        point[1] = (unsigned char)plen;
        memcpy(point + 2, want, plen);
        for (size_t i = 0; i < plen + 2; i++)
            sprintf(expect + 2 * i, "%02x", point[i]);
    }
    if (p)
        p += strlen("EC_POINT:");
    while (p && *p == ' ')
        p++;
    CHECK(p && *expect && strncmp(p, expect, strlen(expect)) == 0 &&
              (p[strlen(expect)] == '\n' || p[strlen(expect)] == '\0'),
          "token %s: the public key object %s (CKA_EC_POINT) is the root certificate's key", label,
          id);
    free(listing);
    OPENSSL_free(want);
}

struct kind {
    const char *name;     /* key type flag */
    int sig_nid;          /* expected certificate signature */
    int key_base, bits;
};

static void test_key_type(const struct kind *k, h_server *keep)
{
    char label[64], id[64], config[4200], out[4200], what[96];
    snprintf(label, sizeof label, "fulcrum-%s", k->name);
    snprintf(id, sizeof id, "ca-%s", k->name);
    snprintf(what, sizeof what, "%s", k->name);
    if (init_token(label) != 0)
        return;
    char cfgname[64], outname[64];
    snprintf(cfgname, sizeof cfgname, "crypto11-%s.json", k->name);
    snprintf(outname, sizeof outname, "root-%s.pem", k->name);
    write_config(config, sizeof config, cfgname, label);
    tmp_path(out, sizeof out, outname);
    const char *flags[] = {"--hsm-caroot-id", id, "--key-type", k->name, "--org", "Fulcrum Test",
                           "--common-name", "Fulcrum Test Root", "--country", "US",
                           "--out", out, NULL};
    char *err = NULL;
    int rc = createca(config, flags, &err);
    CHECK(rc == 0, "%s: createca exits 0 (got %d): %s", what, rc, err ? err : "");
    free(err);
    X509 *root = read_pem_cert(out, 0);
    CHECK(root != NULL, "%s: --out holds the root", what);
    if (!root)
        return;
    EVP_PKEY *pub = X509_get0_pubkey(root);
    CHECK(EVP_PKEY_get_base_id(pub) == k->key_base && EVP_PKEY_get_bits(pub) == k->bits,
          "%s: root key is %s-%d", what, k->key_base == EVP_PKEY_EC ? "EC" : "RSA", k->bits);
    CHECK(X509_get_signature_nid(root) == k->sig_nid, "%s: root self-signed with %s", what,
          OBJ_nid2sn(k->sig_nid));
    CHECK(X509_verify(root, pub) == 1, "%s: root signature verifies", what);
    CHECK((X509_get_extension_flags(root) & EXFLAG_CA) && X509_get_pathlen(root) == 1 &&
              (X509_get_key_usage(root) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) &&
              !(X509_get_extension_flags(root) & EXFLAG_XKUSAGE) && X509_get0_subject_key_id(root),
          "%s: root profile (CA pathlen 1, KU certSign+cRLSign, no EKU, SKID)", what);
    check_token_objects(label, id, root);

    h_server srv;
    if (start_server(&srv, config, id, NULL, NULL, "4") == 0) {
        for (int i = 0; i < 3; i++)
            issue_and_verify(&srv, root, k->sig_nid, 1, what);
        if (keep) {
            *keep = srv; /* the caller stresses and stops it */
        } else {
            stop_server(&srv, what);
        }
    }
    X509_free(root);
}

static void test_intermediate(void)
{
    const char *label = "fulcrum-inter";
    char config[4200], out[4200];
    if (init_token(label) != 0)
        return;
    write_config(config, sizeof config, "crypto11-inter.json", label);
    tmp_path(out, sizeof out, "chain-inter.pem");
    const char *flags[] = {"--hsm-caroot-id", "root-1", "--key-type", "p384", "--org",
                           "Fulcrum Test", "--intermediate", "--intermediate-id", "int-1",
                           "--out", out, NULL};
    char *err = NULL;
    int rc = createca(config, flags, &err);
    CHECK(rc == 0, "intermediate: createca exits 0 (got %d): %s", rc, err ? err : "");
    free(err);
    X509 *inter = read_pem_cert(out, 0), *root = read_pem_cert(out, 1);
    CHECK(inter && root, "intermediate: --out holds intermediate then root");
    if (!inter || !root)
        goto done;
    CHECK(X509_check_issued(root, inter) == X509_V_OK &&
              X509_verify(inter, X509_get0_pubkey(root)) == 1,
          "intermediate: signed by the root");
    CHECK((X509_get_extension_flags(inter) & EXFLAG_CA) && X509_get_pathlen(inter) == 0 &&
              (X509_get_extended_key_usage(inter) & XKU_CODE_SIGN) &&
              X509_get0_authority_key_id(inter) && X509_get0_subject_key_id(root) &&
              ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(inter),
                                    X509_get0_subject_key_id(root)) == 0,
          "intermediate: CA pathlen 0, EKU codeSigning, AKID = root SKID");
    CHECK(EVP_PKEY_eq(X509_get0_pubkey(inter), X509_get0_pubkey(root)) != 1,
          "intermediate: its own key, not the root's");
    check_token_objects(label, "int-1", inter);
    check_token_objects(label, "root-1", root);

    h_server srv;
    if (start_server(&srv, config, "int-1", "PKCS11CA-intermediate", out, NULL) == 0) {
        issue_and_verify(&srv, root, NID_ecdsa_with_SHA384, 2, "intermediate");
        stop_server(&srv, "intermediate");
    }
    /* The intermediate's certificate with the root's key label: the key does not match. */
    char *argv[] = {(char *)h_env("FULCRUM_BIN"), "serve", "--host", "127.0.0.1", "--port", "0",
                    "--config-path", g_ident_cfg, "--ct-log-url", "", "--ca", "pkcs11ca",
                    "--pkcs11-config-path", config, "--pkcs11-pin-file", g_pin_file,
                    "--hsm-caroot-id", "int-1", "--hsm-chain-path", out, NULL};
    rc = run_cmd(argv, 30000, NULL, &err);
    CHECK(rc != 0 && err && strstr(err, "does not match the CA certificate"),
          "a key that does not match the certificate is refused (exit %d): %s", rc,
          err ? err : "");
    check_no_pin("serve-mismatch stderr", err);
    free(err);
done:
    X509_free(inter);
    X509_free(root);
}

/* serve must refuse to start; its stderr must contain `want` and no PIN. */
static void expect_refusal(const char *what, const char *config, const char *pin_file,
                           const char *id, const char *label, const char *want)
{
    char *argv[24];
    int n = 0;
    argv[n++] = (char *)h_env("FULCRUM_BIN");
    argv[n++] = "serve";
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--config-path";
    argv[n++] = g_ident_cfg;
    argv[n++] = "--ct-log-url";
    argv[n++] = "";
    argv[n++] = "--ca";
    argv[n++] = "pkcs11ca";
    argv[n++] = "--pkcs11-config-path";
    argv[n++] = (char *)config;
    argv[n++] = "--pkcs11-pin-file";
    argv[n++] = (char *)pin_file;
    argv[n++] = "--hsm-caroot-id";
    argv[n++] = (char *)id;
    if (label) {
        argv[n++] = "--hsm-key-label";
        argv[n++] = (char *)label;
    }
    argv[n] = NULL;
    char *err = NULL;
    int rc = run_cmd(argv, 30000, NULL, &err);
    CHECK(rc != 0 && err && strstr(err, want), "%s: refused (exit %d) naming \"%s\": %s", what,
          rc, want, err ? err : "");
    check_no_pin(what, err);
    free(err);
}

static void test_refusals(void)
{
    char config[4200], wrong[4200], ambiguous[4200];
    write_config(config, sizeof config, "crypto11-p256.json", "fulcrum-p256");
    tmp_path(wrong, sizeof wrong, "wrong.pin");
    CHECK(h_write_file(wrong, WRONG_PIN "\n") == 0, "write wrong PIN file");
    expect_refusal("wrong PIN", config, wrong, "ca-p256", NULL, "CKR_PIN_INCORRECT");
    expect_refusal("unknown CKA_ID", config, g_pin_file, "nope", NULL,
                   "no certificate with CKA_ID \\\"nope\\\"");
    expect_refusal("unknown key label", config, g_pin_file, "ca-p256", "other",
                   "no private key labelled \\\"other\\\"");
    tmp_path(ambiguous, sizeof ambiguous, "crypto11-ambiguous.json");
    json_t *j = json_pack("{s:s,s:s,s:i}", "Path", g_module, "TokenLabel", "fulcrum-p256",
                          "SlotNumber", 1);
    char *text = json_dumps(j, 0);
    json_decref(j);
    h_write_file(ambiguous, text);
    free(text);
    expect_refusal("two token selectors", ambiguous, g_pin_file, "ca-p256", NULL,
                   "config must specify exactly one way to select a token: slot number, token "
                   "label given");
    const char *flags[] = {"--hsm-caroot-id", "ca-p256", NULL};
    char *err = NULL;
    int rc = createca(config, flags, &err);
    CHECK(rc != 0 && err && strstr(err, "a certificate with CKA_ID \\\"ca-p256\\\" already exists"),
          "createca refuses an existing CA (exit %d): %s", rc, err ? err : "");
    free(err);
}

/* ---- stress ---- */

#define STRESS_THREADS 16
#define STRESS_PER_THREAD 125

struct stress {
    const h_server *srv;
    X509 *root;
    int ok, failed, bad;
    char first_error[300];
};

static void *stress_thread(void *arg)
{
    struct stress *st = arg;
    char url[128], query[128], email[64];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", st->srv->url);
    snprintf(email, sizeof email, "stress-%p@example.com", arg);
    snprintf(query, sizeof query, "email=%s&sub=stress", email);
    char *token = h_issuer_token(&g_iss, query);
    EVP_PKEY *key = h_key_new("P-256");
    char *body = token && key ? key_request(token, key, email) : NULL;
    EVP_PKEY *ca = X509_get0_pubkey(st->root);
    for (int i = 0; i < STRESS_PER_THREAD; i++) {
        h_response r;
        int rc = body ? h_http("POST", url, (const char *const[]){"Content-Type: application/json",
                                                                    NULL},
                               body, strlen(body), &r)
                      : -1;
        STACK_OF(X509) *chain = rc == 0 ? issued_chain(&r) : NULL;
        if (chain && X509_verify(sk_X509_value(chain, 0), ca) == 1) {
            st->ok++;
        } else {
            st->failed++;
            if (chain)
                st->bad++;
            if (!st->first_error[0])
                snprintf(st->first_error, sizeof st->first_error, "status %ld: %.200s",
                         rc == 0 ? r.status : 0L, rc == 0 && r.body ? r.body : r.curl_error);
        }
        sk_X509_pop_free(chain, X509_free);
        if (rc == 0)
            h_response_free(&r);
    }
    ERR_clear_error();
    free(body);
    free(token);
    EVP_PKEY_free(key);
    return NULL;
}

static void test_stress(h_server *srv, X509 *root)
{
    pthread_t th[STRESS_THREADS];
    struct stress st[STRESS_THREADS];
    memset(st, 0, sizeof st);
    for (int i = 0; i < STRESS_THREADS; i++) {
        st[i].srv = srv;
        st[i].root = root;
        pthread_create(&th[i], NULL, stress_thread, &st[i]);
    }
    int ok = 0, failed = 0, bad = 0;
    const char *first = NULL;
    for (int i = 0; i < STRESS_THREADS; i++) {
        pthread_join(th[i], NULL);
        ok += st[i].ok;
        failed += st[i].failed;
        bad += st[i].bad;
        if (!first && st[i].first_error[0])
            first = st[i].first_error;
    }
    CHECK(ok == STRESS_THREADS * STRESS_PER_THREAD && failed == 0,
          "stress: %d of %d issuances over %d connections succeeded and verify (%d failed, %d "
          "with a bad signature; first: %s)",
          ok, STRESS_THREADS * STRESS_PER_THREAD, STRESS_THREADS, failed, bad,
          first ? first : "-");
    h_response r;
    char url[128];
    snprintf(url, sizeof url, "%s/healthz", srv->url);
    CHECK(h_get(url, &r) == 0 && r.status == 200 && r.body &&
              strcmp(r.body, "{\"status\":\"SERVING\"}") == 0,
          "stress: /healthz still SERVING");
    h_response_free(&r);
    printf("stress: %d issuances through SoftHSM2 over %d connections\n", ok, STRESS_THREADS);
}

int main(void)
{
    if (h_init("pkcs11ca") != 0)
        return 1;
    const char *m = getenv("FULCRUM_SOFTHSM2_MODULE");
#ifdef FULCRUM_SOFTHSM2_MODULE_DEFAULT
    if (!m || !*m)
        m = FULCRUM_SOFTHSM2_MODULE_DEFAULT;
#endif
    if (!m || !*m || access(m, R_OK) != 0) {
        fprintf(stderr, "no SoftHSM2 module: set FULCRUM_SOFTHSM2_MODULE\n");
        CHECK(0, "SoftHSM2 module found");
        h_finish(1);
        CHECK_MAIN_END();
    }
    snprintf(g_module, sizeof g_module, "%s", m);
    if (find_tool("softhsm2-util", g_util, sizeof g_util) != 0 ||
        find_tool("pkcs11-tool", g_tool, sizeof g_tool) != 0) {
        CHECK(0, "softhsm2-util and pkcs11-tool on PATH");
        h_finish(1);
        CHECK_MAIN_END();
    }
    /* Private SoftHSM2 state, inherited by every child. */
    char tokens[4200], conf[4200], text[4400];
    tmp_path(tokens, sizeof tokens, "tokens");
    tmp_path(conf, sizeof conf, "softhsm2.conf");
    snprintf(text, sizeof text,
             "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens);
    if (mkdir(tokens, 0700) != 0 || h_write_file(conf, text) != 0) {
        CHECK(0, "SoftHSM2 state in the temp dir");
        h_finish(1);
        CHECK_MAIN_END();
    }
    setenv("SOFTHSM2_CONF", conf, 1);
    tmp_path(g_pin_file, sizeof g_pin_file, "user.pin");
    CHECK(h_write_file(g_pin_file, PIN "\n") == 0 && chmod(g_pin_file, 0600) == 0,
          "write the PIN file");
    tmp_path(g_ident_cfg, sizeof g_ident_cfg, "identity.json");

    if (h_issuer_start(&g_iss) != 0) {
        CHECK(0, "dev issuer starts");
        h_finish(1);
        CHECK_MAIN_END();
    }
    snprintf(text, sizeof text,
             "{\"OIDCIssuers\":{\"%s\":{\"IssuerURL\":\"%s\",\"ClientID\":\"sigstore\","
             "\"Type\":\"email\"}}}\n", g_iss.url, g_iss.url);
    h_write_file(g_ident_cfg, text);

    static const struct kind kinds[] = {
        {"p256", NID_ecdsa_with_SHA256, EVP_PKEY_EC, 256},
        {"p384", NID_ecdsa_with_SHA384, EVP_PKEY_EC, 384},
        {"rsa3072", NID_sha256WithRSAEncryption, EVP_PKEY_RSA, 3072},
        {"rsa4096", NID_sha256WithRSAEncryption, EVP_PKEY_RSA, 4096},
    };
    h_server stress_srv = {0};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        test_key_type(&kinds[i], i == 0 ? &stress_srv : NULL);
    if (stress_srv.proc.pid > 0) {
        char out[4200];
        tmp_path(out, sizeof out, "root-p256.pem");
        X509 *root = read_pem_cert(out, 0);
        if (root)
            test_stress(&stress_srv, root);
        X509_free(root);
        stop_server(&stress_srv, "stress");
    }
    test_intermediate();
    test_refusals();

    h_finish(check_failed);
    CHECK_MAIN_END();
}
