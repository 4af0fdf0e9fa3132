/*
 * tests/pkcs11_fault/fault_module.c: a PKCS#11 module that forwards every call to a real module
 * (FULCRUM_PKCS11_FAULT_TARGET, default: SoftHSM2 as found at build time) and injects the
 * faults the control file asks for into the sign, log-in, open-session and find calls.
 *
 * Only C_GetFunctionList is exported (no C_GetInterface: callers fall back to it, and the
 * function list is the v2.40 one SoftHSM2 implements). The list handed out is a copy of the real
 * module's with the intercepted entries replaced.
 *
 * When an error is injected into a call that follows C_SignInit (C_Sign, C_SignUpdate,
 * C_SignFinal) or C_FindObjectsInit, the real module's operation is ended first, as a real
 * failure would end it, so that the next C_SignInit does not see CKR_OPERATION_ACTIVE.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault_state.h"

#ifndef FULCRUM_FAULT_DEFAULT_TARGET
#define FULCRUM_FAULT_DEFAULT_TARGET "libsofthsm2.so"
#endif

#define EXPORT __attribute__((visibility("default")))

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CK_RV g_load_rv = CKR_GENERAL_ERROR;
static CK_FUNCTION_LIST_PTR g_real;
static CK_FUNCTION_LIST g_list;
static int g_trace; /* FULCRUM_PKCS11_FAULT_TRACE=1: log every intercepted call's result */

/* Logs fn's result when tracing; returns rv. */
static CK_RV traced(const char *fn, CK_ULONG handle, CK_RV rv)
{
    if (g_trace) {
        char buf[32];
        fault_log("trace: %s(%lu) -> %s", fn, (unsigned long)handle,
                  fault_ckr_name(rv, buf, sizeof buf));
    }
    return rv;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* A pending `logout real` command: log the real token out through one of its sessions. */
static void maybe_real_logout(void)
{
    CK_SESSION_HANDLE s;
    if (fault_take_real_logout(&s)) {
        CK_RV rv = g_real->C_Logout(s);
        char buf[32];
        fault_log("logout real: C_Logout(session %lu) -> %s", (unsigned long)s,
                  fault_ckr_name(rv, buf, sizeof buf));
    }
}

/* Entry of every intercepted call: pending real log-out, decision, delay. */
static void enter(enum fault_call call, int has_output, struct fault_decision *d)
{
    maybe_real_logout();
    fault_decide(call, has_output, d);
    if (d->delay_ms) {
        fault_count(FS_DELAYED);
        sleep_ms(d->delay_ms);
    }
}

/* An injected failure on `session`: close it for real when asked, log, count. */
static CK_RV injected(const char *fn, CK_SESSION_HANDLE session, const struct fault_decision *d,
                      enum fault_stat stat)
{
    char buf[32];
    if (d->close_session) {
        CK_RV rv = g_real->C_CloseSession(session);
        fault_session_closed(session);
        if (fault_may_log_injection())
            fault_log("%s(session %lu) -> %s (injected; session closed in the token: %s)", fn,
                      (unsigned long)session, fault_ckr_name(d->rv, buf, sizeof buf),
                      rv == CKR_OK ? "ok" : "failed");
    } else if (fault_may_log_injection()) {
        fault_log("%s(session %lu) -> %s (injected)", fn, (unsigned long)session,
                  fault_ckr_name(d->rv, buf, sizeof buf));
    }
    if (stat == FS_SIGN_INJECTED)
        fault_count(FS_SIGN_FAILED);
    fault_count(stat);
    return d->rv;
}

/* Ends the real sign operation on `s` (its result is thrown away). */
static void end_sign_operation(CK_SESSION_HANDLE s)
{
    unsigned char scratch[8192];
    CK_ULONG n = sizeof scratch;
    (void)g_real->C_SignFinal(s, scratch, &n);
}

/* After a real C_Sign / C_SignFinal. */
static CK_RV after_signature(CK_RV rv, CK_BYTE_PTR sig, CK_ULONG_PTR siglen)
{
    if (rv == CKR_OK && sig && siglen && *siglen > 0) {
        if (fault_take_corrupt()) {
            sig[*siglen - 1] ^= 0x01;
            if (fault_may_log_injection())
                fault_log("signature of %lu bytes returned with its last byte flipped (injected)",
                          (unsigned long)*siglen);
            fault_count(FS_SIGN_CORRUPTED);
        }
        fault_count(FS_SIGN_OK);
    } else if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL) {
        fault_count(FS_SIGN_FAILED);
    }
    return rv;
}

/* ---- intercepted functions --------------------------------------------------------------- */

static CK_RV f_SignInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
    struct fault_decision d;
    enter(FC_SIGN_INIT, 1, &d);
    if (d.rv != CKR_OK)
        return traced("C_SignInit", s, injected("C_SignInit", s, &d, FS_SIGN_INJECTED));
    CK_RV rv = g_real->C_SignInit(s, mech, key);
    if (rv != CKR_OK)
        fault_count(FS_SIGN_FAILED);
    return traced("C_SignInit", s, rv);
}

static CK_RV f_Sign(CK_SESSION_HANDLE s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
                    CK_ULONG_PTR siglen)
{
    struct fault_decision d;
    enter(FC_SIGN, sig != NULL, &d);
    if (d.rv != CKR_OK) {
        unsigned char scratch[8192];
        CK_ULONG n = sizeof scratch;
        (void)g_real->C_Sign(s, data, len, scratch, &n); /* ends the operation */
        return traced("C_Sign", s, injected("C_Sign", s, &d, FS_SIGN_INJECTED));
    }
    CK_RV rv = after_signature(g_real->C_Sign(s, data, len, sig, siglen), sig, siglen);
    return traced("C_Sign", s, rv);
}

static CK_RV f_SignUpdate(CK_SESSION_HANDLE s, CK_BYTE_PTR part, CK_ULONG len)
{
    struct fault_decision d;
    enter(FC_SIGN_UPDATE, 1, &d);
    if (d.rv != CKR_OK) {
        end_sign_operation(s);
        return traced("C_SignUpdate", s,
                      injected("C_SignUpdate", s, &d, FS_SIGN_INJECTED));
    }
    CK_RV rv = g_real->C_SignUpdate(s, part, len);
    if (rv != CKR_OK)
        fault_count(FS_SIGN_FAILED);
    return traced("C_SignUpdate", s, rv);
}

static CK_RV f_SignFinal(CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG_PTR siglen)
{
    struct fault_decision d;
    enter(FC_SIGN_FINAL, sig != NULL, &d);
    if (d.rv != CKR_OK) {
        end_sign_operation(s);
        return traced("C_SignFinal", s, injected("C_SignFinal", s, &d, FS_SIGN_INJECTED));
    }
    CK_RV rv = after_signature(g_real->C_SignFinal(s, sig, siglen), sig, siglen);
    return traced("C_SignFinal", s, rv);
}

static CK_RV f_Login(CK_SESSION_HANDLE s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
    struct fault_decision d;
    enter(FC_LOGIN, 1, &d);
    if (d.rv != CKR_OK) {
        fault_count(FS_LOGIN_FAILED);
        return traced("C_Login", s, injected("C_Login", s, &d, FS_OTHER_INJECTED));
    }
    return traced("C_Login", s, fault_after_login(g_real->C_Login(s, user, pin, len)));
}

static CK_RV f_Logout(CK_SESSION_HANDLE s)
{
    fault_count(FS_LOGOUT_CALLS);
    return traced("C_Logout", s, g_real->C_Logout(s));
}

static CK_RV f_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
                           CK_SESSION_HANDLE_PTR ph)
{
    struct fault_decision d;
    enter(FC_OPEN_SESSION, 1, &d);
    if (d.rv != CKR_OK) {
        d.close_session = 0; /* there is no session yet */
        return traced("C_OpenSession", 0, injected("C_OpenSession", 0, &d, FS_OTHER_INJECTED));
    }
    CK_RV rv = g_real->C_OpenSession(slot, flags, app, notify, ph);
    if (rv == CKR_OK && ph)
        fault_session_opened(slot, *ph);
    return traced("C_OpenSession", rv == CKR_OK && ph ? *ph : 0, rv);
}

static CK_RV f_CloseSession(CK_SESSION_HANDLE s)
{
    CK_RV rv = g_real->C_CloseSession(s);
    fault_session_closed(s);
    return traced("C_CloseSession", s, rv);
}

static CK_RV f_CloseAllSessions(CK_SLOT_ID slot)
{
    CK_RV rv = g_real->C_CloseAllSessions(slot);
    fault_all_sessions_closed(slot);
    return traced("C_CloseAllSessions", slot, rv);
}

/* While logged out by a `logout` command the session reports a public state. */
static CK_RV f_GetSessionInfo(CK_SESSION_HANDLE s, CK_SESSION_INFO_PTR info)
{
    CK_RV rv = g_real->C_GetSessionInfo(s, info);
    if (rv == CKR_OK && info && fault_logged_out()) {
        if (info->state == CKS_RO_USER_FUNCTIONS)
            info->state = CKS_RO_PUBLIC_SESSION;
        else if (info->state == CKS_RW_USER_FUNCTIONS)
            info->state = CKS_RW_PUBLIC_SESSION;
    }
    return traced("C_GetSessionInfo", s, rv);
}

static CK_RV f_FindObjectsInit(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count)
{
    struct fault_decision d;
    enter(FC_FIND_INIT, 1, &d);
    fault_count(FS_FIND_INIT);
    if (d.rv != CKR_OK)
        return traced("C_FindObjectsInit", s,
                      injected("C_FindObjectsInit", s, &d, FS_OTHER_INJECTED));
    return traced("C_FindObjectsInit", s, g_real->C_FindObjectsInit(s, tmpl, count));
}

static CK_RV f_FindObjects(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE_PTR objs, CK_ULONG max,
                           CK_ULONG_PTR count)
{
    struct fault_decision d;
    enter(FC_FIND, 1, &d);
    if (d.rv != CKR_OK) {
        (void)g_real->C_FindObjectsFinal(s); /* ends the search */
        return traced("C_FindObjects", s,
                      injected("C_FindObjects", s, &d, FS_OTHER_INJECTED));
    }
    return traced("C_FindObjects", s, g_real->C_FindObjects(s, objs, max, count));
}

static CK_RV f_FindObjectsFinal(CK_SESSION_HANDLE s)
{
    struct fault_decision d;
    enter(FC_FIND_FINAL, 1, &d);
    CK_RV rv = g_real->C_FindObjectsFinal(s);
    if (d.rv != CKR_OK)
        return traced("C_FindObjectsFinal", s,
                      injected("C_FindObjectsFinal", s, &d, FS_OTHER_INJECTED));
    return traced("C_FindObjectsFinal", s, rv);
}

/* ---- loading ----------------------------------------------------------------------------- */

static void load_target(void)
{
    fault_state_init();
    const char *trace = getenv("FULCRUM_PKCS11_FAULT_TRACE");
    g_trace = trace && strcmp(trace, "1") == 0;
    const char *path = getenv("FULCRUM_PKCS11_FAULT_TARGET");
    if (!path || !*path)
        path = FULCRUM_FAULT_DEFAULT_TARGET;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fault_log("cannot load the real module %s: %s", path, dlerror());
        return;
    }
    CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR) = NULL;
    *(void **)&get_list = dlsym(h, "C_GetFunctionList");
    if (!get_list) {
        fault_log("%s has no C_GetFunctionList", path);
        return; /* the handle stays open: nothing else to do with it */
    }
    CK_FUNCTION_LIST_PTR real = NULL;
    CK_RV rv = get_list(&real);
    if (rv != CKR_OK || !real) {
        char buf[32];
        fault_log("%s: C_GetFunctionList -> %s", path, fault_ckr_name(rv, buf, sizeof buf));
        return;
    }
    g_real = real;
    g_list = *real;
    g_list.C_GetFunctionList = C_GetFunctionList;
    g_list.C_SignInit = f_SignInit;
    g_list.C_Sign = f_Sign;
    g_list.C_SignUpdate = f_SignUpdate;
    g_list.C_SignFinal = f_SignFinal;
    g_list.C_Login = f_Login;
    g_list.C_Logout = f_Logout;
    g_list.C_OpenSession = f_OpenSession;
    g_list.C_CloseSession = f_CloseSession;
    g_list.C_CloseAllSessions = f_CloseAllSessions;
    g_list.C_GetSessionInfo = f_GetSessionInfo;
    g_list.C_FindObjectsInit = f_FindObjectsInit;
    g_list.C_FindObjects = f_FindObjects;
    g_list.C_FindObjectsFinal = f_FindObjectsFinal;
    g_load_rv = CKR_OK;
    fault_log("forwarding to %s", path);
}

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    if (!list)
        return CKR_ARGUMENTS_BAD;
    pthread_once(&g_once, load_target);
    if (g_load_rv != CKR_OK)
        return g_load_rv;
    *list = &g_list;
    return CKR_OK;
}
