/*
 * tests/unit/test_pkcs11_signer.c: the pkcs11ca pieces that need no server:
 *  - the crypto11 JSON config (hsm/pkcs11_config.h): fields, Go-style case-insensitive names,
 *    crypto11's token-selection rule and messages, type errors, no PIN in any message;
 *  - where the PIN comes from: --pkcs11-pin-file, $CREDENTIALS_DIRECTORY/pkcs11-pin, the
 *    config's Pin, in that order; trailing newline; refusals;
 *  - signer_healthy() and signer_sign()'s retry with a scripted backend;
 *  - CK_RV names and which ones count as a lost connection;
 *  - in process on a SoftHSM2 token in a temp dir (private SOFTHSM2_CONF): signer_pkcs11_new,
 *    8 threads signing at once, and recovery after every session of the application was closed
 *    behind the signer's back (the token then also forgets the login).
 */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/createca_cmd.h"
#include "hsm/pkcs11_config.h"
#include "hsm/pkcs11_signer.h"
#include "hsm/pkcs11_token.h"
#include "hsm/signer.h"
#include "unit/check.h"

#define SECRET "S3cret-774411"

static char g_dir[256];

static void path_in(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", g_dir, name);
}

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(text, 1, len, f);
        fclose(f);
    }
}

static int parse(const char *json, struct pkcs11_config *c, char *why, size_t whylen)
{
    memset(c, 0, sizeof *c);
    why[0] = '\0';
    return pkcs11_config_parse(json, strlen(json), "test.json", c, why, whylen);
}

static void expect_error(const char *json, const char *want)
{
    struct pkcs11_config c;
    char why[512];
    int rc = parse(json, &c, why, sizeof why);
    CHECK(rc == -1, "%s: rejected", json);
    CHECK(strcmp(why, want) == 0, "%s:\n  got  \"%s\"\n  want \"%s\"", json, why, want);
    CHECK(!strstr(why, SECRET), "%s: the message does not contain the PIN", json);
}

static void test_config(void)
{
    struct pkcs11_config c;
    char why[512];
    CHECK(parse("{\"Path\":\"/m.so\",\"TokenLabel\":\"fulcio\",\"Pin\":\"2324\"}", &c, why,
                sizeof why) == 0,
          "Fulcio's example parses: %s", why);
    CHECK_STREQ(c.path, "/m.so", "Path");
    CHECK_STREQ(c.token_label, "fulcio", "TokenLabel");
    CHECK_STREQ(c.pin, "2324", "Pin");
    CHECK(!c.token_serial && !c.has_slot_number && c.max_sessions == 0 &&
              c.pool_wait_timeout_ns == 0 && !c.login_not_supported,
          "unset fields are zero");
    pkcs11_config_clear(&c);
    CHECK(!c.path && !c.pin, "clear empties the struct");

    CHECK(parse("{\"path\":\"/m.so\",\"TOKENSERIAL\":\"a6ac8c46\",\"pIn\":\"1\",\"maxsessions\":8,"
                "\"PoolWaitTimeout\":2000000000,\"loginnotsupported\":true,\"UseGCMIVFromHSM\":"
                "true,\"Other\":[1,{}]}",
                &c, why, sizeof why) == 0,
          "field names match case-insensitively, unknown fields are ignored: %s", why);
    CHECK_STREQ(c.token_serial, "a6ac8c46", "TokenSerial");
    CHECK(c.max_sessions == 8 && c.pool_wait_timeout_ns == 2000000000LL && c.login_not_supported,
          "MaxSessions, PoolWaitTimeout (ns), LoginNotSupported");
    pkcs11_config_clear(&c);

    CHECK(parse("{\"Path\":\"/m.so\",\"SlotNumber\":1365009348,\"TokenLabel\":null}", &c, why,
                sizeof why) == 0,
          "SlotNumber alone (null TokenLabel is unset): %s", why);
    CHECK(c.has_slot_number && c.slot_number == 1365009348UL && !c.token_label, "SlotNumber");
    pkcs11_config_clear(&c);
    CHECK(parse("{\"Path\":\"/m.so\",\"SlotNumber\":0}", &c, why, sizeof why) == 0 &&
              c.has_slot_number && c.slot_number == 0,
          "SlotNumber 0 is a selection");
    pkcs11_config_clear(&c);

    /* crypto11's messages for the token selection. */
    expect_error("{\"Path\":\"/m.so\",\"TokenSerial\":\"s\",\"TokenLabel\":\"l\"}",
                 "pkcs11 config test.json: config must specify exactly one way to select a "
                 "token: token label, token serial number given");
    expect_error("{\"Path\":\"/m.so\",\"TokenSerial\":\"s\",\"SlotNumber\":1}",
                 "pkcs11 config test.json: config must specify exactly one way to select a "
                 "token: slot number, token serial number given");
    expect_error("{\"Path\":\"/m.so\",\"SlotNumber\":1,\"TokenLabel\":\"l\"}",
                 "pkcs11 config test.json: config must specify exactly one way to select a "
                 "token: slot number, token label given");
    expect_error("{\"Path\":\"/m.so\",\"Pin\":\"" SECRET "\"}",
                 "pkcs11 config test.json: config must specify exactly one way to select a "
                 "token: none given");
    expect_error("{\"Path\":\"/m.so\",\"SlotNumber\":1,\"TokenLabel\":\"l\",\"TokenSerial\":\"s\"}",
                 "pkcs11 config test.json: config must specify exactly one way to select a "
                 "token: slot number, token label, token serial number given");
    expect_error("{\"Path\":\"/m.so\",\"TokenLabel\":\"\"}",
                 "pkcs11 config test.json: config must specify exactly one way to select a "
                 "token: none given");
    /* Types and required fields. */
    expect_error("{\"TokenLabel\":\"l\",\"Pin\":\"" SECRET "\"}",
                 "pkcs11 config test.json: Path (the PKCS#11 module to load) is required");
    expect_error("{\"Path\":7,\"TokenLabel\":\"l\"}", "pkcs11 config test.json: Path must be a string");
    expect_error("{\"Path\":\"/m.so\",\"TokenLabel\":\"l\",\"Pin\":1234}",
                 "pkcs11 config test.json: Pin must be a string");
    expect_error("{\"Path\":\"/m.so\",\"SlotNumber\":\"1\"}",
                 "pkcs11 config test.json: SlotNumber must be an integer from 0 to "
                 "9223372036854775807");
    expect_error("{\"Path\":\"/m.so\",\"SlotNumber\":1.5}",
                 "pkcs11 config test.json: SlotNumber must be an integer from 0 to "
                 "9223372036854775807");
    expect_error("{\"Path\":\"/m.so\",\"SlotNumber\":-1}",
                 "pkcs11 config test.json: SlotNumber must be an integer from 0 to "
                 "9223372036854775807");
    expect_error("{\"Path\":\"/m.so\",\"TokenLabel\":\"l\",\"MaxSessions\":-2}",
                 "pkcs11 config test.json: MaxSessions must be an integer from 0 to 100000");
    expect_error("{\"Path\":\"/m.so\",\"TokenLabel\":\"l\",\"LoginNotSupported\":\"yes\"}",
                 "pkcs11 config test.json: LoginNotSupported must be true or false");
    expect_error("[\"Path\"]", "pkcs11 config test.json must be a JSON object");
    expect_error("{\"Pin\":\"" SECRET "\",",
                 "pkcs11 config test.json is not valid JSON (line 1, column 23)");

    char path[512];
    path_in(path, sizeof path, "missing.json");
    CHECK(pkcs11_config_load(path, &c, why, sizeof why) == -1 && strstr(why, path) &&
              strstr(why, "No such file or directory"),
          "a missing config file is named: %s", why);
    path_in(path, sizeof path, "crypto11.conf");
    const char *text = "{\"Path\":\"/m.so\",\"TokenLabel\":\"l\",\"Pin\":\"" SECRET "\"}\n";
    write_text(path, text, strlen(text));
    CHECK(pkcs11_config_load(path, &c, why, sizeof why) == 0 && c.pin &&
              strcmp(c.pin, SECRET) == 0,
          "config file loads");
    pkcs11_config_clear(&c);
}

static void test_pin_sources(void)
{
    struct pkcs11_config cfg = {0};
    cfg.pin = strdup("from-config");
    char file[512], creds[512], cred_file[600], why[512];
    char *pin = NULL;
    const char *src = NULL;
    path_in(file, sizeof file, "pin");
    path_in(creds, sizeof creds, "creds");
    mkdir(creds, 0700);
    snprintf(cred_file, sizeof cred_file, "%s/pkcs11-pin", creds);
    unsetenv("CREDENTIALS_DIRECTORY");

    write_text(file, SECRET "\n", strlen(SECRET) + 1);
    chmod(file, 0600);
    CHECK(pkcs11_pin_resolve(&cfg, file, &pin, &src, why, sizeof why) == 0 && pin &&
              strcmp(pin, SECRET) == 0,
          "PIN file, trailing newline removed");
    CHECK_STREQ(src, "--pkcs11-pin-file", "source of a PIN file");
    pkcs11_secret_free(pin);

    write_text(file, "1234\r\n", 6);
    CHECK(pkcs11_pin_resolve(&cfg, file, &pin, &src, why, sizeof why) == 0 && pin &&
              strcmp(pin, "1234") == 0,
          "CRLF removed");
    pkcs11_secret_free(pin);
    write_text(file, "12 34\n\n", 7);
    CHECK(pkcs11_pin_resolve(&cfg, file, &pin, &src, why, sizeof why) == 0 && pin &&
              strcmp(pin, "12 34\n") == 0,
          "only one trailing newline is removed");
    pkcs11_secret_free(pin);

    write_text(file, "", 0);
    CHECK(pkcs11_pin_resolve(&cfg, file, &pin, &src, why, sizeof why) == -1 && !pin,
          "an empty PIN file is refused");
    CHECK(strstr(why, "PIN file") && strstr(why, "is empty"), "message: %s", why);
    char big[300];
    memset(big, 'a', 256);
    write_text(file, big, 256);
    CHECK(pkcs11_pin_resolve(&cfg, file, &pin, &src, why, sizeof why) == -1 &&
              strstr(why, "more than 255 bytes"),
          "a 256-byte PIN is refused: %s", why);
    write_text(file, "12\0" "34", 5);
    CHECK(pkcs11_pin_resolve(&cfg, file, &pin, &src, why, sizeof why) == -1 &&
              strstr(why, "NUL byte"),
          "a NUL in the PIN is refused: %s", why);

    char missing[512];
    path_in(missing, sizeof missing, "no-such-pin");
    CHECK(pkcs11_pin_resolve(&cfg, missing, &pin, &src, why, sizeof why) == -1 && !pin &&
              strstr(why, missing),
          "a missing PIN file is an error, not a fall-back to the config: %s", why);

    /* systemd credential */
    write_text(cred_file, "cred-pin\n", 9);
    setenv("CREDENTIALS_DIRECTORY", creds, 1);
    CHECK(pkcs11_pin_resolve(&cfg, NULL, &pin, &src, why, sizeof why) == 0 && pin &&
              strcmp(pin, "cred-pin") == 0,
          "systemd credential pkcs11-pin");
    CHECK_STREQ(src, "systemd credential pkcs11-pin", "source of a credential");
    pkcs11_secret_free(pin);
    write_text(file, "file-pin", 8);
    CHECK(pkcs11_pin_resolve(&cfg, file, &pin, &src, why, sizeof why) == 0 && pin &&
              strcmp(pin, "file-pin") == 0,
          "--pkcs11-pin-file wins over the credential");
    pkcs11_secret_free(pin);
    unlink(cred_file);
    CHECK(pkcs11_pin_resolve(&cfg, "", &pin, &src, why, sizeof why) == 0 && pin &&
              strcmp(pin, "from-config") == 0,
          "no credential file: the config's Pin");
    CHECK_STREQ(src, "the pkcs11 config's Pin", "source of the config's Pin");
    pkcs11_secret_free(pin);
    unsetenv("CREDENTIALS_DIRECTORY");

    pkcs11_secret_free(cfg.pin);
    cfg.pin = NULL;
    CHECK(pkcs11_pin_resolve(&cfg, NULL, &pin, &src, why, sizeof why) == 1 && !pin && !src,
          "no source at all: 1");
    unlink(file);
    rmdir(creds);
}

/* ---- signer_sign's retry and signer_healthy, with a scripted backend ---- */

struct script {
    EVP_PKEY *key;
    enum signer_status steps[4];
    int nsteps, calls, reconnects, reconnect_fails;
};

static enum signer_status scripted_sign(void *impl, const unsigned char *tbs, size_t tbslen,
                                        unsigned char *sig, size_t *siglen, char *why,
                                        size_t whylen)
{
    struct script *sc = impl;
    enum signer_status st = sc->calls < sc->nsteps ? sc->steps[sc->calls] : SIGNER_OK;
    sc->calls++;
    if (st != SIGNER_OK) {
        snprintf(why, whylen, "scripted %s", st == SIGNER_RETRY ? "retry" : "failure");
        return st;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, sc->key) == 1 &&
             EVP_DigestSign(ctx, sig, siglen, tbs, tbslen) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? SIGNER_OK : SIGNER_FAIL;
}

static int scripted_reconnect(void *impl, char *why, size_t whylen)
{
    struct script *sc = impl;
    sc->reconnects++;
    if (sc->reconnect_fails) {
        snprintf(why, whylen, "scripted reconnect failure");
        return -1;
    }
    return 0;
}

static const struct signer_ops scripted_ops = {scripted_sign, scripted_reconnect, NULL, 0};

static void run_script(signer *s, struct script *sc, const enum signer_status *steps, int n,
                       int reconnect_fails, int want_rc, int want_calls, int want_reconnects,
                       int want_healthy, const char *what)
{
    unsigned char sig[128];
    size_t siglen = sizeof sig;
    char why[256] = "";
    memcpy(sc->steps, steps, (size_t)n * sizeof *steps);
    sc->nsteps = n;
    sc->calls = sc->reconnects = 0;
    sc->reconnect_fails = reconnect_fails;
    int rc = signer_sign(s, (const unsigned char *)"tbs", 3, sig, &siglen, why, sizeof why);
    CHECK(rc == want_rc && sc->calls == want_calls && sc->reconnects == want_reconnects,
          "%s: rc %d calls %d reconnects %d (%s)", what, rc, sc->calls, sc->reconnects, why);
    CHECK(signer_healthy(s) == want_healthy, "%s: healthy %d", what, want_healthy);
}

static void test_health(void)
{
    struct script sc = {.key = EVP_EC_gen("P-256")};
    signer s = {0};
    s.ops = &scripted_ops;
    s.impl = &sc;
    s.kind = "scripted";
    s.public_key = sc.key;
    char why[256];
    CHECK(signer_init_algorithm(&s, why, sizeof why) == 0, "algorithm");
    CHECK(signer_healthy(&s) == 1, "a new signer is healthy");
    CHECK(signer_healthy(NULL) == 0, "NULL is not healthy");
    const enum signer_status ok[] = {SIGNER_OK}, fail[] = {SIGNER_FAIL},
                             retry_ok[] = {SIGNER_RETRY, SIGNER_OK},
                             retry_retry[] = {SIGNER_RETRY, SIGNER_RETRY},
                             retry_fail[] = {SIGNER_RETRY, SIGNER_FAIL};
    run_script(&s, &sc, ok, 1, 0, 0, 1, 0, 1, "plain success");
    run_script(&s, &sc, fail, 1, 0, -1, 1, 0, 0, "a refusal is not retried");
    run_script(&s, &sc, retry_ok, 2, 0, 0, 2, 1, 1, "retry after reconnect, then success");
    run_script(&s, &sc, retry_retry, 2, 0, -1, 2, 1, 0, "only one retry");
    run_script(&s, &sc, ok, 1, 0, 0, 1, 0, 1, "healthy again after a success");
    run_script(&s, &sc, retry_fail, 2, 1, -1, 1, 1, 0, "reconnect fails: no second attempt");
    X509_ALGOR_free(s.sig_alg);
    EVP_PKEY_free(sc.key);
}

static void test_rv(void)
{
    CHECK_STREQ(p11_rv_name(CKR_DEVICE_ERROR), "CKR_DEVICE_ERROR", "rv name");
    CHECK_STREQ(p11_rv_name(CKR_USER_NOT_LOGGED_IN), "CKR_USER_NOT_LOGGED_IN", "rv name");
    CHECK_STREQ(p11_rv_name(0x80001234UL), "CKR_0x80001234", "vendor rv");
    const CK_RV lost[] = {CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_DEVICE_ERROR,
                          CKR_DEVICE_REMOVED,         CKR_TOKEN_NOT_PRESENT, CKR_USER_NOT_LOGGED_IN,
                          CKR_OBJECT_HANDLE_INVALID,  CKR_KEY_HANDLE_INVALID,
                          CKR_CRYPTOKI_NOT_INITIALIZED, CKR_GENERAL_ERROR};
    for (size_t i = 0; i < sizeof lost / sizeof lost[0]; i++)
        CHECK(p11_rv_is_connection_loss(lost[i]), "%s means reconnect", p11_rv_name(lost[i]));
    const CK_RV refused[] = {CKR_OK, CKR_PIN_INCORRECT, CKR_PIN_LOCKED, CKR_DATA_LEN_RANGE,
                             CKR_MECHANISM_INVALID, CKR_KEY_FUNCTION_NOT_PERMITTED,
                             CKR_BUFFER_TOO_SMALL};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        CHECK(!p11_rv_is_connection_loss(refused[i]), "%s is final", p11_rv_name(refused[i]));
}

/* ---- in process, on SoftHSM2 ---- */

struct worker {
    signer *s;
    int ok;
};

static void *sign_many(void *arg)
{
    struct worker *w = arg;
    unsigned char sig[512];
    for (int i = 0; i < 200; i++) {
        char msg[64], why[256];
        size_t siglen = sizeof sig;
        int n = snprintf(msg, sizeof msg, "message %d from %p", i, arg);
        if (signer_sign(w->s, (unsigned char *)msg, (size_t)n, sig, &siglen, why, sizeof why) == 0)
            w->ok++;
        else
            fprintf(stderr, "sign: %s\n", why);
    }
    return NULL;
}

/* A token initialised through the module itself: C_InitToken, then the user PIN. */
static int init_token(p11_module *m, const char *label, const char *pin)
{
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    if (m->f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK || n == 0)
        return -1;
    unsigned char lbl[32];
    memset(lbl, ' ', sizeof lbl);
    memcpy(lbl, label, strlen(label));
    const char *so = "so-pin-5678";
    if (m->f->C_InitToken(slots[0], (CK_UTF8CHAR_PTR)so, strlen(so), lbl) != CKR_OK)
        return -1;
    /* The slot list changes after initialising (SoftHSM2 renumbers). */
    struct pkcs11_config cfg = {.token_label = (char *)label, .path = "module"};
    CK_SLOT_ID slot;
    CK_TOKEN_INFO info;
    char why[256];
    CK_SESSION_HANDLE s;
    if (p11_select_token(m, &cfg, &slot, &info, why, sizeof why) != 0 ||
        m->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s) != CKR_OK)
        return -1;
    int ok = m->f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)so, strlen(so)) == CKR_OK &&
             m->f->C_InitPIN(s, (CK_UTF8CHAR_PTR)pin, strlen(pin)) == CKR_OK;
    m->f->C_Logout(s);
    m->f->C_CloseSession(s);
    return ok ? 0 : -1;
}

static void test_softhsm(void)
{
    const char *module = getenv("FULCRUM_SOFTHSM2_MODULE");
#ifdef FULCRUM_SOFTHSM2_MODULE_DEFAULT
    if (!module || !*module)
        module = FULCRUM_SOFTHSM2_MODULE_DEFAULT;
#endif
    CHECK(module && access(module, R_OK) == 0, "SoftHSM2 module (FULCRUM_SOFTHSM2_MODULE)");
    if (!module || access(module, R_OK) != 0)
        return;
    char tokens[512], conf[512], text[1024], cfg[512], pinfile[512];
    path_in(tokens, sizeof tokens, "tokens");
    path_in(conf, sizeof conf, "softhsm2.conf");
    path_in(cfg, sizeof cfg, "crypto11.json");
    path_in(pinfile, sizeof pinfile, "user.pin");
    mkdir(tokens, 0700);
    int n = snprintf(text, sizeof text,
                     "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n",
                     tokens);
    write_text(conf, text, (size_t)n);
    setenv("SOFTHSM2_CONF", conf, 1);
    n = snprintf(text, sizeof text, "{\"Path\":\"%s\",\"TokenLabel\":\"unit\"}", module);
    write_text(cfg, text, (size_t)n);
    write_text(pinfile, SECRET, strlen(SECRET));
    chmod(pinfile, 0600);

    p11_module m;
    char why[768] = "";
    CHECK(p11_module_load(&m, module, why, sizeof why) == 0, "load SoftHSM2: %s", why);
    CHECK(init_token(&m, "unit", SECRET) == 0, "initialise a token through the module");
    p11_module_unload(&m);

    /* createca in process (it prints the root on stdout). */
    char *argv[] = {"--pkcs11-config-path", cfg, "--pkcs11-pin-file", pinfile,
                    "--hsm-caroot-id", "unit-root", "--key-type", "p384", "--org", "Unit",
                    NULL};
    CHECK(createca_main(10, argv) == 0, "createca in process");

    struct pkcs11_options o = {.config_path = cfg, .pin_file = pinfile, .caroot_id = "unit-root"};
    signer *s = signer_pkcs11_new(&o, why, sizeof why);
    CHECK(s != NULL, "signer_pkcs11_new: %s", why);
    if (!s)
        return;
    CHECK(strcmp(s->kind, "pkcs11ca") == 0 && s->md_nid == NID_sha384 &&
              sk_X509_num(s->chain) == 1 && signer_healthy(s),
          "kind, SHA-384 for P-384, chain of one, healthy");

    pthread_t th[8];
    struct worker w[8];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 8; i++) {
        w[i].s = s;
        pthread_create(&th[i], NULL, sign_many, &w[i]);
    }
    int total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += w[i].ok;
    }
    CHECK(total == 1600, "8 threads x 200 signatures, all verified (%d)", total);

    /* Close every session of this application behind the signer's back (the same module,
     * already initialised: the function list is shared). The token forgets the login too. */
    CHECK(p11_module_load(&m, module, why, sizeof why) == 0 && !m.initialized,
          "a second handle on the initialised module");
    struct pkcs11_config c = {.token_label = "unit", .path = (char *)module};
    CK_SLOT_ID slot;
    CK_TOKEN_INFO info;
    CHECK(p11_select_token(&m, &c, &slot, &info, why, sizeof why) == 0 &&
              m.f->C_CloseAllSessions(slot) == CKR_OK,
          "close all sessions");
    unsigned char sig[512];
    size_t siglen = sizeof sig;
    int rc = signer_sign(s, (const unsigned char *)"after", 5, sig, &siglen, why, sizeof why);
    CHECK(rc == 0 && signer_healthy(s), "the signer reconnects and signs: %s", why);
    total = 0;
    for (int i = 0; i < 4; i++) {
        w[i].ok = 0;
        pthread_create(&th[i], NULL, sign_many, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += w[i].ok;
    }
    CHECK(total == 800, "after the reconnect, 4 threads sign again (%d)", total);
    p11_module_unload(&m); /* not ours to finalize: only dlclose */
    signer_free(s);

    o.pin_file = NULL;
    s = signer_pkcs11_new(&o, why, sizeof why);
    CHECK(!s && strstr(why, "no PIN"), "no PIN anywhere is refused: %s", why);
    signer_free(s);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/fulcrum-unit-pkcs11-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_config();
    test_pin_sources();
    test_health();
    test_rv();
    test_softhsm();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", g_dir);
    CHECK_MAIN_END();
}
