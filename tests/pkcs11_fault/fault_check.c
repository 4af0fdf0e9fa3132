/*
 * tests/pkcs11_fault/fault_check.c: in-process checks of the fault module, run by
 * test_fault_module.sh after it has made a SoftHSM2 token with a P-256 key pair (CKA_ID 01).
 *
 * Usage: fulcrum-pkcs11-fault-check <fault module .so> <token label> <user pin>
 * with FULCRUM_PKCS11_FAULT_CONTROL and FULCRUM_PKCS11_FAULT_STATS set (the module reads them).
 *
 * What pkcs11-tool cannot show (one signature per process): counts, state kept across calls
 * (log-out until C_Login, rules replaced on reload, `clear`), the real operation being ended
 * after an injected failure, real session loss and real log-out, delays, corrupted signatures
 * caught by C_Verify, exact counters in the stats file, and counts consumed exactly once under
 * concurrent signing.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault_p11.h"
#include "unit/check.h"

static CK_FUNCTION_LIST_PTR p;
static const char *g_pin, *g_control, *g_stats;
static CK_SLOT_ID g_slot;
static unsigned char g_hash[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Replaces the control file by rename, so its inode always changes. */
static void control(const char *text)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", g_control);
    FILE *f = fopen(tmp, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, g_control) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", g_control, strerror(errno));
        exit(2);
    }
}

/* A counter from the stats file, -1 if absent. */
static long stat_value(const char *name)
{
    FILE *f = fopen(g_stats, "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(name);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, name, n) == 0 && line[n] == '=')
            v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

/* The key with CKA_ID `id` of class `cls`: 01 is the P-256 pair, 02 the RSA-2048 pair. */
static CK_OBJECT_HANDLE find_id(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, CK_BYTE id)
{
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, &id, 1}};
    CK_OBJECT_HANDLE h = 0;
    CK_ULONG n = 0;
    if (p->C_FindObjectsInit(s, tmpl, 2) != CKR_OK)
        return 0;
    if (p->C_FindObjects(s, &h, 1, &n) != CKR_OK)
        n = 0;
    p->C_FindObjectsFinal(s);
    return n == 1 ? h : 0;
}

static CK_OBJECT_HANDLE find_key(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls)
{
    return find_id(s, cls, 0x01);
}

static CK_SESSION_HANDLE open_session(void)
{
    CK_SESSION_HANDLE s = 0;
    CK_RV rv = p->C_OpenSession(g_slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    return rv == CKR_OK ? s : 0;
}

static CK_RV login(CK_SESSION_HANDLE s)
{
    return p->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)g_pin, (CK_ULONG)strlen(g_pin));
}

/* Single-part ECDSA over g_hash. */
static CK_RV sign1(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, unsigned char *sig, CK_ULONG *len)
{
    CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
    CK_RV rv = p->C_SignInit(s, &m, key);
    if (rv != CKR_OK)
        return rv;
    *len = 64;
    return p->C_Sign(s, g_hash, sizeof g_hash, sig, len);
}

/* Multi-part SHA256-RSA-PKCS over g_hash (two updates) with the RSA key (SoftHSM2 has no
 * multi-part ECDSA). sig must hold 256 bytes. */
static CK_RV sign_parts(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, unsigned char *sig,
                        CK_ULONG *len)
{
    CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_RV rv = p->C_SignInit(s, &m, key);
    if (rv == CKR_OK)
        rv = p->C_SignUpdate(s, g_hash, 16);
    if (rv == CKR_OK)
        rv = p->C_SignUpdate(s, g_hash + 16, 16);
    if (rv != CKR_OK)
        return rv;
    *len = 256;
    return p->C_SignFinal(s, sig, len);
}

static CK_RV verify1(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub, unsigned char *sig, CK_ULONG len)
{
    CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
    CK_RV rv = p->C_VerifyInit(s, &m, pub);
    return rv == CKR_OK ? p->C_Verify(s, g_hash, sizeof g_hash, sig, len) : rv;
}

static int find_slot(const char *label)
{
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    if (p->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        return -1;
    char want[32];
    memset(want, ' ', sizeof want);
    memcpy(want, label, strlen(label) < 32 ? strlen(label) : 32);
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO info;
        if (p->C_GetTokenInfo(slots[i], &info) == CKR_OK && memcmp(info.label, want, 32) == 0) {
            g_slot = slots[i];
            return 0;
        }
    }
    return -1;
}

/* ---- concurrent signing ------------------------------------------------------------------ */

#define THREADS 4
#define SIGNS_PER_THREAD 100

struct worker {
    pthread_t t;
    int ok, failed, other;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    CK_SESSION_HANDLE s = open_session();
    CK_OBJECT_HANDLE key = s ? find_key(s, CKO_PRIVATE_KEY) : 0;
    for (int i = 0; i < SIGNS_PER_THREAD; i++) {
        unsigned char sig[256];
        CK_ULONG len;
        CK_RV rv = key ? sign1(s, key, sig, &len) : CKR_GENERAL_ERROR;
        if (rv == CKR_OK)
            w->ok++;
        else if (rv == CKR_DEVICE_ERROR)
            w->failed++;
        else
            w->other++;
    }
    if (s)
        p->C_CloseSession(s);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s <fault module> <token label> <pin>\n", argv[0]);
        return 2;
    }
    g_pin = argv[3];
    g_control = getenv("FULCRUM_PKCS11_FAULT_CONTROL");
    g_stats = getenv("FULCRUM_PKCS11_FAULT_STATS");
    if (!g_control || !g_stats) {
        fprintf(stderr, "FULCRUM_PKCS11_FAULT_CONTROL and _STATS must be set\n");
        return 2;
    }
    control("clear\n");
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR) = NULL;
    if (h)
        *(void **)&get_list = dlsym(h, "C_GetFunctionList");
    CHECK(get_list && get_list(&p) == CKR_OK && p, "module loads and gives its function list");
    if (!p)
        CHECK_MAIN_END();
    CK_C_INITIALIZE_ARGS init;
    memset(&init, 0, sizeof init);
    init.flags = CKF_OS_LOCKING_OK; /* several threads sign below */
    CHECK(p->C_Initialize(&init) == CKR_OK, "C_Initialize through the module");
    CHECK(find_slot(argv[2]) == 0, "token '%s' found", argv[2]);

    CK_SESSION_HANDLE s = open_session();
    CHECK(s != 0, "session opened");
    CHECK(login(s) == CKR_OK, "log-in");
    CK_OBJECT_HANDLE key = find_key(s, CKO_PRIVATE_KEY), pub = find_key(s, CKO_PUBLIC_KEY);
    CK_OBJECT_HANDLE rsa = find_id(s, CKO_PRIVATE_KEY, 0x02);
    CHECK(key && pub && rsa, "key pairs with CKA_ID 01 and 02 found");
    unsigned char sig[256];
    CK_ULONG len = 0;
    CK_RV rv;

    /* baseline */
    CHECK(sign1(s, key, sig, &len) == CKR_OK && len == 64, "baseline single-part sign");
    CHECK(verify1(s, pub, sig, len) == CKR_OK, "baseline signature verifies");
    CHECK(sign_parts(s, rsa, sig, &len) == CKR_OK, "baseline multi-part sign");
    CHECK(stat_value("signs_ok") == 2 && stat_value("logins_ok") == 1 &&
              stat_value("sessions_opened") == 1,
          "stats after baseline: signs_ok=%ld logins_ok=%ld sessions_opened=%ld",
          stat_value("signs_ok"), stat_value("logins_ok"), stat_value("sessions_opened"));

    /* session lost, counted: exactly two failures at C_Sign, then the operation still starts */
    control("sign_error=session_lost count=2\n");
    CHECK(sign1(s, key, sig, &len) == CKR_SESSION_HANDLE_INVALID, "session_lost #1 at C_Sign");
    CHECK(sign1(s, key, sig, &len) == CKR_SESSION_HANDLE_INVALID, "session_lost #2 at C_Sign");
    rv = sign1(s, key, sig, &len);
    CHECK(rv == CKR_OK, "count=2 used up: third sign works (rv 0x%lx; real operation ended)",
          (unsigned long)rv);
    CHECK(stat_value("signs_injected") == 2, "stats: signs_injected=2 (got %ld)",
          stat_value("signs_injected"));

    /* at= selects the call; the real multi-part operation is ended by the injected failure */
    control("sign_error=device_error count=1 at=update\n");
    CHECK(sign_parts(s, rsa, sig, &len) == CKR_DEVICE_ERROR, "device_error at C_SignUpdate");
    CHECK(sign_parts(s, rsa, sig, &len) == CKR_OK, "then multi-part sign works");
    control("sign_error=device_error count=1 at=final\n");
    CHECK(sign_parts(s, rsa, sig, &len) == CKR_DEVICE_ERROR, "device_error at C_SignFinal");
    CHECK(sign_parts(s, rsa, sig, &len) == CKR_OK, "then multi-part sign works");
    control("sign_error=0x1234 count=1 at=init\n");
    CHECK(sign1(s, key, sig, &len) == 0x1234, "numeric CKR at C_SignInit");

    /* until cleared: every attempt fails until `clear` */
    control("sign_error=device_error until_cleared\n");
    int fails = 0;
    for (int i = 0; i < 5; i++)
        fails += sign1(s, key, sig, &len) == CKR_DEVICE_ERROR;
    CHECK(fails == 5, "device_error until_cleared: %d/5 failed", fails);
    control("clear\n");
    CHECK(sign1(s, key, sig, &len) == CKR_OK, "after clear: sign works");

    /* emulated log-out: fails until C_Login, survives a reload without `clear` */
    control("logout\n");
    CHECK(sign1(s, key, sig, &len) == CKR_USER_NOT_LOGGED_IN, "logout: C_SignInit refused");
    CK_SESSION_INFO info;
    CHECK(p->C_GetSessionInfo(s, &info) == CKR_OK && info.state == CKS_RW_PUBLIC_SESSION,
          "logout: session reports a public state (%lu)", (unsigned long)info.state);
    control("delay_ms=1 count=1\n");
    CHECK(sign1(s, key, sig, &len) == CKR_USER_NOT_LOGGED_IN,
          "logout survives a control file without it");
    CHECK(sign1(s, key, sig, &len) == CKR_USER_NOT_LOGGED_IN, "and keeps failing");
    CHECK(stat_value("logged_out") == 1, "stats: logged_out=1");
    CHECK(login(s) == CKR_OK, "C_Login after logout returns CKR_OK");
    CHECK(p->C_GetSessionInfo(s, &info) == CKR_OK && info.state == CKS_RW_USER_FUNCTIONS,
          "after log-in: user state");
    CHECK(sign1(s, key, sig, &len) == CKR_OK, "after log-in: sign works");
    CHECK(login(s) == CKR_USER_ALREADY_LOGGED_IN, "a second C_Login is the token's own answer");

    /* real log-out: the token forgets the log-in and the private key's handle */
    control("logout real\n");
    rv = sign1(s, key, sig, &len);
    CHECK(rv != CKR_OK, "logout real: sign fails with the token's own error");
    printf("fact: after a real log-out SoftHSM2 answers C_SignInit with 0x%lx\n",
           (unsigned long)rv);
    CHECK(login(s) == CKR_OK, "logout real: C_Login works again");
    key = find_key(s, CKO_PRIVATE_KEY);
    CHECK(key && sign1(s, key, sig, &len) == CKR_OK, "after log-in and a new find: sign works");

    /* delay: the one delayed call is slow, the next is not */
    control("delay_ms=300 count=1\n");
    long t0 = now_ms();
    rv = sign1(s, key, sig, &len);
    long t1 = now_ms();
    rv = rv == CKR_OK ? sign1(s, key, sig, &len) : rv;
    long t2 = now_ms();
    CHECK(rv == CKR_OK && t1 - t0 >= 300 && t2 - t1 < 250,
          "delay_ms=300 count=1: %ld ms then %ld ms", t1 - t0, t2 - t1);

    /* corrupted signature: returned as success, caught by verification, once */
    control("corrupt_signature count=1\n");
    CHECK(sign1(s, key, sig, &len) == CKR_OK && len == 64, "corrupt: C_Sign still succeeds");
    CHECK(verify1(s, pub, sig, len) == CKR_SIGNATURE_INVALID, "corrupt: signature does not verify");
    CHECK(sign1(s, key, sig, &len) == CKR_OK && verify1(s, pub, sig, len) == CKR_OK,
          "count=1 used up: next signature verifies");
    CHECK(stat_value("signs_corrupted") == 1, "stats: signs_corrupted=1");

    /* log-in / open-session / find faults */
    control("login_error=device_error count=1\nopen_session_error=session_lost count=1\n"
            "find_error=device_error count=1 at=find\n");
    CHECK(login(s) == CKR_DEVICE_ERROR, "login_error at C_Login");
    CK_SESSION_HANDLE s2 = 0;
    CHECK(p->C_OpenSession(g_slot, CKF_SERIAL_SESSION, NULL, NULL, &s2) ==
              CKR_SESSION_HANDLE_INVALID,
          "open_session_error at C_OpenSession");
    CHECK(find_key(s, CKO_PRIVATE_KEY) == 0, "find_error at C_FindObjects");
    CHECK(find_key(s, CKO_PRIVATE_KEY) == key, "next find works (search was ended)");
    CHECK(stat_value("other_injected") == 3, "stats: other_injected=3 (got %ld)",
          stat_value("other_injected"));

    /* a session really lost: the token itself rejects the handle afterwards */
    s2 = open_session(); /* keeps the application logged in when s goes */
    control("sign_error=session_lost count=1 close_session\n");
    CHECK(sign1(s, key, sig, &len) == CKR_SESSION_HANDLE_INVALID, "close_session: injected");
    CHECK(sign1(s, key, sig, &len) == CKR_SESSION_HANDLE_INVALID,
          "close_session: the token now rejects the old handle itself");
    CHECK(s2 && sign1(s2, key, sig, &len) == CKR_OK, "another session still signs");
    s = s2;

    /* counts are consumed exactly once under concurrent signing */
    control("sign_error=device_error count=37\n");
    long injected_before = stat_value("signs_injected");
    struct worker w[THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&w[i].t, NULL, worker_main, &w[i]);
    int ok = 0, failed = 0, other = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(w[i].t, NULL);
        ok += w[i].ok;
        failed += w[i].failed;
        other += w[i].other;
    }
    CHECK(failed == 37 && ok == THREADS * SIGNS_PER_THREAD - 37 && other == 0,
          "concurrent: %d ok, %d injected (want 37), %d other", ok, failed, other);
    CHECK(stat_value("signs_injected") - injected_before == 37, "stats agree: +%ld injected",
          stat_value("signs_injected") - injected_before);

    /* unloading and reloading the module (as PKCS11_CTX_unload + _load do) keeps the state */
    control("sign_error=device_error count=1\n");
    CHECK(sign1(s, key, sig, &len) == CKR_DEVICE_ERROR, "reload: count=1 fires");
    p->C_CloseSession(s);
    p->C_Finalize(NULL);
    dlclose(h);
    p = NULL;
    h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    get_list = NULL;
    if (h)
        *(void **)&get_list = dlsym(h, "C_GetFunctionList");
    CHECK(get_list && get_list(&p) == CKR_OK && p, "reload: module loads again");
    if (!p)
        CHECK_MAIN_END();
    CHECK(p->C_Initialize(&init) == CKR_OK, "reload: C_Initialize");
    s = open_session();
    CHECK(s && login(s) == CKR_OK, "reload: session and log-in");
    key = s ? find_key(s, CKO_PRIVATE_KEY) : 0;
    CHECK(key && sign1(s, key, sig, &len) == CKR_OK,
          "reload: the used-up count stays used up, signing works");

    control("clear\n");
    p->C_CloseSession(s);
    p->C_Finalize(NULL);
    CHECK_MAIN_END();
}
