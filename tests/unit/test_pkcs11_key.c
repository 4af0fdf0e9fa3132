/*
 * tests/unit/test_pkcs11_key.c: the PKCS#11 signer's key-only mode (the CT log's key), in
 * process on a SoftHSM2 token in a temp dir (private SOFTHSM2_CONF):
 *  - `fulcrum ctlog createkey` (ctlog_main): the private key's attributes as PKCS#11 reports
 *    them (sensitive, never extractable, sign only; CKA_VALUE refused), the public key written;
 *    a label in use is refused and the existing --out left alone;
 *  - signer_pkcs11_key_new: kind "pkcs11", empty chain, SHA-256, the token's public key;
 *    refusals: no label, an unknown label, a key without public-key object;
 *  - the CT log over it (ct_log_open with key_signer): public.pem is the token's key; a P-384
 *    token key is refused;
 *  - two users of one module: one never closes a session handle the other opened (a module may
 *    reuse a dead handle's number); the first user unloading does not finalize the module;
 *  - a CA signer and a key-only signer on the same module: 8 threads sign on both at once; after
 *    their sessions are closed behind their backs both reconnect without re-initialising the
 *    module (a session a third user opened survives).
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/createca_cmd.h"
#include "ct/ct_log.h"
#include "ct/ctlog_cmd.h"
#include "hsm/pkcs11_config.h"
#include "hsm/pkcs11_signer.h"
#include "hsm/pkcs11_token.h"
#include "hsm/signer.h"
#include "unit/check.h"
#include "unit/ct_testkit.h"

#define PIN "Key-only-5531"

static char g_dir[256], g_cfg[512], g_pin[512], g_module[1024];

static void path_in(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", g_dir, name);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static EVP_PKEY *read_pub(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *k = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    return k;
}

/* A token initialised through the module: C_InitToken, then the user PIN. */
static int init_token(const char *label)
{
    p11_module m;
    char why[512];
    if (p11_module_load(&m, g_module, why, sizeof why) != 0)
        return -1;
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    unsigned char lbl[32];
    memset(lbl, ' ', sizeof lbl);
    memcpy(lbl, label, strlen(label));
    const char *so = "so-pin-1234";
    int ok = m.f->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK && n > 0 &&
             m.f->C_InitToken(slots[0], (CK_UTF8CHAR_PTR)so, strlen(so), lbl) == CKR_OK;
    struct pkcs11_config cfg = {.token_label = (char *)label, .path = "module"};
    CK_SLOT_ID slot;
    CK_TOKEN_INFO info;
    CK_SESSION_HANDLE s;
    ok = ok && p11_select_token(&m, &cfg, &slot, &info, why, sizeof why) == 0 &&
         m.f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s) == CKR_OK;
    if (ok) {
        ok = m.f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)so, strlen(so)) == CKR_OK &&
             m.f->C_InitPIN(s, (CK_UTF8CHAR_PTR)PIN, strlen(PIN)) == CKR_OK;
        m.f->C_Logout(s);
        m.f->C_CloseSession(s);
    }
    p11_module_unload(&m);
    return ok ? 0 : -1;
}

static int createkey(const char *label, const char *out)
{
    char *argv[] = {"createkey", "--pkcs11-config-path", g_cfg, "--pkcs11-pin-file", g_pin,
                    "--hsm-key-label", (char *)label, "--out", (char *)out, NULL};
    return ctlog_main(9, argv);
}

static CK_BBOOL bool_attr(p11_rw_session *t, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type)
{
    CK_BBOOL v = 2;
    CK_ATTRIBUTE a = {type, &v, sizeof v};
    return t->mod.f->C_GetAttributeValue(t->s, o, &a, 1) == CKR_OK ? v : 2;
}

static void test_createkey(void)
{
    char out[512];
    path_in(out, sizeof out, "log-pub.pem");
    CHECK(createkey("log-key", out) == 0, "ctlog createkey log-key");
    EVP_PKEY *pub = read_pub(out);
    CHECK(pub && EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC && EVP_PKEY_get_bits(pub) == 256,
          "--out holds an EC P-256 public key");

    p11_rw_session t;
    char why[512] = "";
    CHECK(p11_rw_session_open(&t, g_cfg, g_pin, NULL, why, sizeof why) == 0, "rw session: %s",
          why);
    CK_OBJECT_HANDLE priv[2], pubobj;
    CK_ULONG n = 0, np = 0;
    p11_find(&t.mod, t.s, CKO_PRIVATE_KEY, NULL, 0, "log-key", priv, 2, &n);
    p11_find(&t.mod, t.s, CKO_PUBLIC_KEY, "log-key", 7, "log-key", &pubobj, 1, &np);
    CHECK(n == 1 && np == 1, "one private and one public key labelled log-key, CKA_ID = label");
    if (n == 1) {
        CHECK(bool_attr(&t, priv[0], CKA_TOKEN) == CK_TRUE &&
                  bool_attr(&t, priv[0], CKA_PRIVATE) == CK_TRUE &&
                  bool_attr(&t, priv[0], CKA_SENSITIVE) == CK_TRUE &&
                  bool_attr(&t, priv[0], CKA_ALWAYS_SENSITIVE) == CK_TRUE &&
                  bool_attr(&t, priv[0], CKA_EXTRACTABLE) == CK_FALSE &&
                  bool_attr(&t, priv[0], CKA_NEVER_EXTRACTABLE) == CK_TRUE,
              "private key: token, private, (always) sensitive, (never) extractable");
        CHECK(bool_attr(&t, priv[0], CKA_SIGN) == CK_TRUE &&
                  bool_attr(&t, priv[0], CKA_DECRYPT) == CK_FALSE &&
                  bool_attr(&t, priv[0], CKA_UNWRAP) == CK_FALSE &&
                  bool_attr(&t, priv[0], CKA_DERIVE) == CK_FALSE,
              "private key: sign only");
        unsigned char *val = NULL;
        CK_ULONG vl = 0;
        CK_RV rv = p11_get_attr(&t.mod, t.s, priv[0], CKA_VALUE, &val, &vl);
        CHECK(rv == CKR_ATTRIBUTE_SENSITIVE && !val,
              "the private value cannot be read (%s)", p11_rv_name(rv));
        free(val);
        CK_KEY_TYPE kt = 0;
        CHECK(p11_key_type(&t.mod, t.s, priv[0], &kt) == CKR_OK && kt == CKK_EC, "CKK_EC");
    }
    if (np == 1) {
        EVP_PKEY *tp = p11_read_public_key(&t.mod, t.s, pubobj, why, sizeof why);
        CHECK(tp && pub && EVP_PKEY_eq(tp, pub) == 1, "the token's public key is --out's");
        CHECK(bool_attr(&t, pubobj, CKA_VERIFY) == CK_TRUE &&
                  bool_attr(&t, pubobj, CKA_ENCRYPT) == CK_FALSE &&
                  bool_attr(&t, pubobj, CKA_WRAP) == CK_FALSE,
              "public key: verify only");
        EVP_PKEY_free(tp);
    }
    p11_rw_session_close(&t);

    CHECK(createkey("log-key", out) != 0, "createkey refuses a label in use");
    EVP_PKEY *again = read_pub(out);
    CHECK(again && pub && EVP_PKEY_eq(again, pub) == 1, "... and leaves --out alone");
    EVP_PKEY_free(again);
    EVP_PKEY_free(pub);
}

/* Two users of one module: a handle that died behind A's back and was handed to B is B's. */
static void test_session_owners(void)
{
    p11_module a, b;
    char why[512] = "";
    CHECK(p11_module_load(&a, g_module, why, sizeof why) == 0 &&
              p11_module_load(&b, g_module, why, sizeof why) == 0 && a.initialized &&
              !b.initialized,
          "two users of the module, one C_Initialize: %s", why);
    struct pkcs11_config c = {.token_label = "unit", .path = g_module};
    CK_SLOT_ID slot;
    CK_TOKEN_INFO info;
    CK_SESSION_HANDLE ha = 0, hb = 0;
    CK_SESSION_INFO si;
    if (p11_select_token(&a, &c, &slot, &info, why, sizeof why) == 0 &&
        p11_open_session(&a, slot, CKF_SERIAL_SESSION, &ha) == CKR_OK) {
        a.f->C_CloseSession(ha); /* behind A's back */
        CHECK(p11_open_session(&b, slot, CKF_SERIAL_SESSION, &hb) == CKR_OK, "a session for B");
        /* SoftHSM2 numbers sessions without reuse, other modules reuse numbers: either way, a
         * handle B opened is never closed by A (what A would do with its dead handle after a
         * module handed that number to B). */
        p11_close_session(&a, hb);
        CHECK(b.f->C_GetSessionInfo(hb, &si) == CKR_OK,
              "A closing a handle B opened leaves B's session open");
        p11_close_session(&a, ha); /* its own dead one: harmless */
        p11_close_session(&b, hb);
        CHECK(b.f->C_GetSessionInfo(hb, &si) == CKR_SESSION_HANDLE_INVALID, "B closes its own");
    } else {
        CHECK(0, "a session for A: %s", why);
    }
    p11_module_unload(&a);
    CK_SESSION_HANDLE hc = 0;
    CHECK(p11_open_session(&b, slot, CKF_SERIAL_SESSION, &hc) == CKR_OK,
          "A unloading did not finalize the module B still uses");
    p11_close_session(&b, hc);
    p11_module_unload(&b);
}

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

static int sign_both(signer *a, signer *b)
{
    pthread_t th[8];
    struct worker w[8];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 8; i++) {
        w[i].s = i % 2 ? a : b;
        pthread_create(&th[i], NULL, sign_many, &w[i]);
    }
    int total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += w[i].ok;
    }
    return total;
}

static int sign_once(signer *s)
{
    unsigned char sig[512];
    size_t siglen = sizeof sig;
    char why[256];
    int rc = signer_sign(s, (const unsigned char *)"x", 1, sig, &siglen, why, sizeof why);
    if (rc != 0)
        fprintf(stderr, "sign: %s\n", why);
    return rc;
}

static void test_key_signer(void)
{
    char why[768] = "", out[512];
    path_in(out, sizeof out, "log-pub.pem");
    EVP_PKEY *want = read_pub(out);
    struct pkcs11_options o = {.config_path = g_cfg, .pin_file = g_pin, .key_label = "log-key"};
    signer *k = signer_pkcs11_key_new(&o, why, sizeof why);
    CHECK(k != NULL, "signer_pkcs11_key_new: %s", why);
    if (!k) {
        EVP_PKEY_free(want);
        return;
    }
    CHECK(strcmp(k->kind, "pkcs11") == 0 && k->chain && sk_X509_num(k->chain) == 0 &&
              signer_issuing_cert(k) == NULL && k->md_nid == NID_sha256 &&
              want && EVP_PKEY_eq(k->public_key, want) == 1,
          "kind pkcs11, empty chain, SHA-256, the token's public key");

    /* The CT log over it. */
    EVP_PKEY *rk = ctk_key();
    X509 *root = ctk_cert("Unit Root", rk, NULL, NULL, 1, CTK_NO_POISON, 0);
    STACK_OF(X509) *roots = sk_X509_new_null();
    sk_X509_push(roots, root);
    char state[512], pub[600];
    path_in(state, sizeof state, "log-state");
    snprintf(pub, sizeof pub, "%s/ctlog/public.pem", state);
    ct_log_options lo = {.state_dir = state, .roots = roots, .key_signer = k};
    ct_log *log = ct_log_open(&lo, why, sizeof why);
    CHECK(log != NULL, "ct_log_open with the token key: %s", why);
    EVP_PKEY *written = read_pub(pub);
    CHECK(log && written && EVP_PKEY_eq(ct_log_public_key(log), want) == 1 &&
              EVP_PKEY_eq(written, want) == 1,
          "the log's key and public.pem are the token's");
    EVP_PKEY_free(written);
    ct_log_close(log);

    /* A P-384 key on the token: the signer takes it, the log does not. */
    p11_rw_session t;
    CK_OBJECT_HANDLE pubh, privh;
    int rc = p11_rw_session_open(&t, g_cfg, g_pin, NULL, why, sizeof why);
    CHECK(rc == 0 && p11_generate_key_pair(&t.mod, t.s, P11_KEY_P384, "p384", "p384", 4, &pubh,
                                           &privh) == CKR_OK,
          "a P-384 key pair");
    /* And a key whose public object is gone. */
    CHECK(rc == 0 && p11_generate_key_pair(&t.mod, t.s, P11_KEY_P256, "nopub", "nopub", 5, &pubh,
                                           &privh) == CKR_OK &&
              t.mod.f->C_DestroyObject(t.s, pubh) == CKR_OK,
          "a P-256 key pair without its public object");
    p11_rw_session_close(&t);
    struct pkcs11_options o384 = {.config_path = g_cfg, .pin_file = g_pin, .key_label = "p384"};
    signer *k384 = signer_pkcs11_key_new(&o384, why, sizeof why);
    CHECK(k384 && k384->md_nid == NID_sha384, "key-only P-384 signer (SHA-384): %s", why);
    char state2[512];
    path_in(state2, sizeof state2, "log-state-384");
    lo.state_dir = state2;
    lo.key_signer = k384;
    log = k384 ? ct_log_open(&lo, why, sizeof why) : NULL;
    CHECK(k384 && !log && strstr(why, "must be EC P-256") && strstr(why, "secp384r1"),
          "the log refuses a P-384 key: %s", why);
    ct_log_close(log);
    signer_free(k384);

    struct pkcs11_options bad = {.config_path = g_cfg, .pin_file = g_pin, .key_label = ""};
    signer *x = signer_pkcs11_key_new(&bad, why, sizeof why);
    CHECK(!x && strstr(why, "required"), "no label: %s", why);
    bad.key_label = "unknown";
    x = signer_pkcs11_key_new(&bad, why, sizeof why);
    CHECK(!x && strstr(why, "no private key labelled \"unknown\""), "unknown label: %s", why);
    bad.key_label = "nopub";
    x = signer_pkcs11_key_new(&bad, why, sizeof why);
    CHECK(!x && strstr(why, "no public key labelled \"nopub\"") && !strstr(why, PIN),
          "no public object and no EC point on the private key: %s", why);

    /* A CA signer on the same module. */
    char *argv[] = {"--pkcs11-config-path", g_cfg, "--pkcs11-pin-file", g_pin, "--hsm-caroot-id",
                    "unit-ca", "--org", "Unit", NULL};
    CHECK(createca_main(8, argv) == 0, "createca in process");
    struct pkcs11_options co = {.config_path = g_cfg, .pin_file = g_pin, .caroot_id = "unit-ca"};
    signer *ca = signer_pkcs11_new(&co, why, sizeof why);
    CHECK(ca != NULL, "signer_pkcs11_new next to the key-only signer: %s", why);
    if (ca) {
        CHECK(sign_both(ca, k) == 1600, "8 threads on two signers of one module, all verified");

        p11_module m;
        CHECK(p11_module_load(&m, g_module, why, sizeof why) == 0 && !m.initialized,
              "a third user of the initialised module");
        struct pkcs11_config c = {.token_label = "unit", .path = g_module};
        CK_SLOT_ID slot;
        CK_TOKEN_INFO info;
        CK_SESSION_HANDLE mine = 0;
        CHECK(p11_select_token(&m, &c, &slot, &info, why, sizeof why) == 0 &&
                  m.f->C_CloseAllSessions(slot) == CKR_OK,
              "close every session");
        CHECK(sign_once(ca) == 0 && sign_once(k) == 0 && signer_healthy(ca) &&
                  signer_healthy(k),
              "both signers reconnect and sign");
        /* Now close the signers' sessions but one of ours: reconnecting must not C_Finalize. */
        CHECK(m.f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &mine) == CKR_OK,
              "a session of the third user");
        for (CK_SESSION_HANDLE h = 1; h < mine + 512; h++)
            if (h != mine)
                m.f->C_CloseSession(h);
        CHECK(sign_both(ca, k) == 1600, "after losing their sessions both sign again");
        CK_SESSION_INFO si;
        CHECK(m.f->C_GetSessionInfo(mine, &si) == CKR_OK,
              "the third user's session survived both reconnects (no C_Finalize)");
        m.f->C_CloseSession(mine);
        p11_module_unload(&m);
        signer_free(ca);
    }
    signer_free(k);
    sk_X509_pop_free(roots, X509_free);
    EVP_PKEY_free(rk);
    EVP_PKEY_free(want);
}

int main(void)
{
    const char *module = getenv("FULCRUM_SOFTHSM2_MODULE");
#ifdef FULCRUM_SOFTHSM2_MODULE_DEFAULT
    if (!module || !*module)
        module = FULCRUM_SOFTHSM2_MODULE_DEFAULT;
#endif
    if (!module || access(module, R_OK) != 0) {
        CHECK(0, "SoftHSM2 module (FULCRUM_SOFTHSM2_MODULE)");
        CHECK_MAIN_END();
    }
    snprintf(g_module, sizeof g_module, "%s", module);
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/fulcrum-unit-p11key-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    char tokens[512], conf[512], text[2048];
    path_in(tokens, sizeof tokens, "tokens");
    path_in(conf, sizeof conf, "softhsm2.conf");
    path_in(g_cfg, sizeof g_cfg, "crypto11.json");
    path_in(g_pin, sizeof g_pin, "user.pin");
    mkdir(tokens, 0700);
    snprintf(text, sizeof text,
             "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens);
    write_text(conf, text);
    setenv("SOFTHSM2_CONF", conf, 1);
    snprintf(text, sizeof text, "{\"Path\":\"%s\",\"TokenLabel\":\"unit\"}", module);
    write_text(g_cfg, text);
    write_text(g_pin, PIN "\n");
    chmod(g_pin, 0600);

    CHECK(init_token("unit") == 0, "initialise a token through the module");
    test_createkey();
    test_session_owners();
    test_key_signer();

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", g_dir);
    CHECK_MAIN_END();
}
