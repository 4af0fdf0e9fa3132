/*
 * tests/pkcs11_fault/fault_state.h: the fault module's shared state: the rules read from the
 * control file, the emulated log-in state, the open sessions, and the counters written to the
 * stats file. The command syntax is documented in README.md next to this file.
 *
 * Thread safety: every function takes the one internal mutex; none calls into the real module.
 */
#ifndef FULCRUM_FAULT_STATE_H
#define FULCRUM_FAULT_STATE_H

#include <stddef.h>

#include "fault_p11.h"

/* The intercepted calls a rule can act on. */
enum fault_call {
    FC_SIGN_INIT,
    FC_SIGN,
    FC_SIGN_UPDATE,
    FC_SIGN_FINAL,
    FC_LOGIN,
    FC_OPEN_SESSION,
    FC_FIND_INIT,
    FC_FIND,
    FC_FIND_FINAL,
    FC_COUNT
};

/* What the module does with one call. */
struct fault_decision {
    CK_RV rv;           /* CKR_OK: no injected error; otherwise the call fails with rv */
    unsigned delay_ms;  /* sleep this long (outside any lock) before the call */
    int close_session;  /* close the session in the real module: the loss becomes real */
};

enum fault_stat {
    FS_SIGN_OK,        /* C_Sign / C_SignFinal that returned a signature */
    FS_SIGN_FAILED,    /* sign-family calls that failed (injected or real) */
    FS_SIGN_INJECTED,  /* of those, failures injected here */
    FS_SIGN_CORRUPTED, /* signatures returned with a flipped byte */
    FS_DELAYED,        /* calls delayed */
    FS_LOGIN_OK,
    FS_LOGIN_FAILED,
    FS_LOGOUT_CALLS,   /* C_Logout called by the application */
    FS_SESSIONS_OPENED,
    FS_SESSIONS_CLOSED,
    FS_FIND_INIT,      /* C_FindObjectsInit calls */
    FS_OTHER_INJECTED, /* injected failures of login / open / find calls */
    FS_CONTROL_LOADS,  /* times the control file was (re)read */
    FS_COUNT
};

/* Reads FULCRUM_PKCS11_FAULT_CONTROL and FULCRUM_PKCS11_FAULT_STATS once. Idempotent. */
void fault_state_init(void);

/* Re-reads the control file if it changed (one stat(2)), then decides what `call` does and
 * consumes the count of the rules that fire. `has_output` is 0 for a length query of
 * C_Sign / C_SignFinal (nothing is injected into those). */
void fault_decide(enum fault_call call, int has_output, struct fault_decision *d);

/* After a real C_Sign / C_SignFinal returned a signature: 1 if a `corrupt_signature` command
 * wants this one corrupted (consumes its count). */
int fault_take_corrupt(void);

/* 1 while the token is logged out by a `logout` command and C_Login has not been called. */
int fault_logged_out(void);

/* After the real C_Login returned rv: clears the emulated log-out when rv is CKR_OK or
 * CKR_USER_ALREADY_LOGGED_IN, and returns the rv the application sees (CKR_OK for the
 * latter while the emulated log-out was on). Counts the log-in. */
CK_RV fault_after_login(CK_RV rv);

/* A `logout real` command is pending: returns 1 and a session to call the real C_Logout on
 * (and forgets the command), else 0. */
int fault_take_real_logout(CK_SESSION_HANDLE *session);

/* Open-session bookkeeping. */
void fault_session_opened(CK_SLOT_ID slot, CK_SESSION_HANDLE h);
void fault_session_closed(CK_SESSION_HANDLE h);
void fault_all_sessions_closed(CK_SLOT_ID slot);

/* Adds to a counter and rewrites the stats file (when configured). */
void fault_count(enum fault_stat which);

/* Prints one line "pkcs11-fault: ..." to stderr. */
void fault_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 1 if one more injection may be logged: at most 20 lines per control file load (a note says
 * when the rest are suppressed). */
int fault_may_log_injection(void);

/* "CKR_DEVICE_ERROR" etc. for the values this module uses, else "CKR_0x..." in buf. */
const char *fault_ckr_name(CK_RV rv, char *buf, size_t len);

#endif
