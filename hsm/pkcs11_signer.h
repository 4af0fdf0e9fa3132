/*
 * hsm/pkcs11_signer.h: the pkcs11ca backend: the CA key lives in a PKCS#11 token (an HSM, or
 * SoftHSM2 in development) and never leaves it; this process asks the token for signatures.
 * The same signer without a certificate (signer_pkcs11_key_new, "key-only") holds the CT log's
 * key.
 *
 * Fulcio's pkcs11ca (fulcio-compat.md §6), same flags and config file:
 *   --pkcs11-config-path  crypto11 JSON: Path (module), TokenLabel | TokenSerial | SlotNumber, Pin
 *                         (hsm/pkcs11_config.h)
 *   --hsm-caroot-id       CKA_ID of the CA certificate on the token: the flag string's bytes, as
 *                         Fulcio's []byte(params.RootID) ("99" is the two bytes 0x39 0x39; with
 *                         pkcs11-tool that is --id 3939)
 *   --hsm-key-label       CKA_LABEL of the private key (default PKCS11CA)
 * and, beyond Fulcio:
 *   --hsm-chain-path      PEM certificates ABOVE the issuing one (intermediates, root last), so an
 *                         HSM-held intermediate under an offline root works. When the file starts
 *                         with the issuing certificate itself (a full chain file, as `fulcrum
 *                         createca --intermediate --out` writes), that copy is skipped.
 *   --aws-hsm-root-ca-path (Fulcio's) the issuing certificate from a PEM file instead of the
 *                         token, for HSMs that cannot store certificates
 *   --pkcs11-pin-file     the PIN from a file; else $CREDENTIALS_DIRECTORY/pkcs11-pin (systemd
 *                         LoadCredential=); else the config's Pin. The PIN never appears in argv,
 *                         logs or messages; the copy kept for logging in again after a reconnect
 *                         is cleansed when the signer is freed, every other copy right after use.
 * The chain [issuing, ...above] is checked at start as fileca's (hsm/pkcs11_chain.h), and the
 * token's key must produce signatures that verify with the issuing certificate's key.
 * Keys: EC P-256 (ecdsa-with-SHA256), P-384 (ecdsa-with-SHA384), P-521, RSA 2048/3072/4096
 * (sha256WithRSAEncryption, PKCS#1 v1.5). The message is hashed in this process; the token signs
 * the digest (CKM_ECDSA, whose raw r||s is converted to DER; CKM_RSA_PKCS over the DigestInfo).
 *
 * ---- Why the module is called directly and not through libp11 ----
 * libp11 0.4.12 (Debian bookworm) was tried first and rejected for this path:
 *  - Its session pool (PKCS11_SLOT_private, max 16 sessions, mutex + condition variable) waits
 *    on its condition variable forever when C_OpenSession fails with anything but CKR_OK: a
 *    token that refuses a session (device error, uninitialised token) hangs the caller, here a
 *    worker thread holding the signer. Reproduced with SoftHSM2; fixed upstream only after 0.4.12.
 *  - It never drops a pooled session that went bad (C_GetSessionInfo checks came in 0.4.13), and
 *    from 0.4.13 on it wipes its key cache, freeing the PKCS11_KEY objects, when the last pooled
 *    session is found invalid, which other threads may be using at that moment.
 *  - PKCS11_login() returns at once when libp11 believes it is logged in, so a token that lost
 *    its login (CKR_USER_NOT_LOGGED_IN) can only be recovered by a new PKCS11_CTX.
 *  - The module's CK_RV is only reachable through the OpenSSL error queue (library code
 *    ERR_get_CKR_code(), reason = CK_RV), and PKCS11_ecdsa_sign is not exported by 0.4.12; EC key
 *    generation (needed by createca) has no API before 0.4.13.
 * So the module is dlopen'ed and driven through its CK_FUNCTION_LIST (hsm/pkcs11_token.h), with
 * p11-kit's standard pkcs11.h for the declarations: every call's CK_RV is seen, nothing waits
 * without bound, and the reconnect path below owns all state.
 *
 * ---- Concurrency ----
 * PKCS#11 allows calls from many threads once C_Initialize had CKF_OS_LOCKING_OK, except that one
 * session must not be used by two threads at once. The signer keeps:
 *  - one session held open for the whole connection, on which it logs in (the login belongs to
 *    the application and lasts while any session is open, so it never lapses when pool sessions
 *    are closed);
 *  - a pool of signing sessions (up to MaxSessions from the config, default 64, minus that one,
 *    and no more than the token's ulMaxSessionCount): a signature takes an idle session or opens
 *    a new one, uses it alone, and gives it back; when all are busy it waits (PoolWaitTimeout,
 *    0 = no limit). The pool's mutex is held only to push or pop a handle, never during a call
 *    into the module;
 *  - the private key's object handle, found once per connection and cached;
 *  - a read-write lock (writer-preferring): every signature holds it shared; reconnecting and
 *    freeing hold it exclusively, so no session or handle is in use while they replace them.
 *
 * ---- Failures and reconnecting ----
 * A CK_RV meaning the session, login, device or a handle was lost (p11_rv_is_connection_loss():
 * CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED,
 * CKR_TOKEN_NOT_PRESENT, CKR_TOKEN_NOT_RECOGNIZED, CKR_USER_NOT_LOGGED_IN,
 * CKR_CRYPTOKI_NOT_INITIALIZED, CKR_KEY/OBJECT_HANDLE_INVALID, CKR_OPERATION_ACTIVE,
 * CKR_GENERAL_ERROR, CKR_FUNCTION_FAILED, CKR_SLOT_ID_INVALID) makes the signature return
 * SIGNER_RETRY; the failing session is closed, not pooled. Any other CK_RV is SIGNER_FAIL.
 * signer_sign() then calls reconnect, which, under the exclusive lock:
 *  - returns at once if another thread already reconnected (or tried to) since this thread's
 *    failure (a connection generation counter, compared with the one this thread saw: many
 *    workers failing together cause one reconnect, not one each);
 *  - otherwise calls C_Finalize + C_Initialize (dropping every session, login and handle), finds
 *    the token again (by label/serial/slot), opens the login session, logs in, finds the key by
 *    label again and signs a probe that must verify with the issuing certificate's key (so a
 *    different token or key that shows up under the same label is never used).
 * signer_sign() retries the signature once after a successful reconnect and then gives up.
 * While the token is unreachable every request costs one reconnect attempt (no timer). A PIN the
 * token rejects (CKR_PIN_INCORRECT, _LOCKED, _EXPIRED, _INVALID, _LEN_RANGE) is never tried
 * again, so a wrong PIN cannot lock the token; only a restart with the right PIN helps then.
 *
 * Another signer of this process on the same module (the embedded CT log's key next to the CA's):
 * the module's initialisation is shared (hsm/pkcs11_token.h), so reconnecting then does not
 * C_Finalize; it closes this signer's own sessions (never C_CloseAllSessions, which would close
 * the other signer's too), opens new ones and logs in again.
 *
 * ---- Key-only mode (signer_pkcs11_key_new) ----
 * No certificate: the key is the private key labelled --hsm-key-label, and its public half comes
 * from the token's public-key object with the same CKA_LABEL, or, when there is none, from the
 * private key object itself (CKA_EC_PARAMS + CKA_EC_POINT, else CKA_PUBLIC_KEY_INFO). Kind
 * "pkcs11", empty chain; connection, session pool, reconnect and retry exactly as above, the
 * probe signature checked with that public key (so a different key under the same label is never
 * used after a reconnect).
 *
 * ---- For tests: a different module ----
 * The module is whatever the config's Path names; a test points it at a fault-injecting module
 * (tests/pkcs11_fault) by writing {"Path": "<that .so>", "TokenLabel": ..., "Pin": ...}.
 */
#ifndef FULCRUM_HSM_PKCS11_SIGNER_H
#define FULCRUM_HSM_PKCS11_SIGNER_H

#include <stddef.h>

#include "hsm/signer.h"

#define PKCS11_DEFAULT_KEY_LABEL "PKCS11CA"

struct pkcs11_options {
    const char *config_path;  /* crypto11 JSON; NULL or "" = config/crypto11.conf */
    const char *pin_file;     /* --pkcs11-pin-file, or NULL */
    const char *caroot_id;    /* --hsm-caroot-id (required unless ca_cert_path is set) */
    const char *key_label;    /* --hsm-key-label; NULL or "" = PKCS11CA */
    const char *chain_path;   /* --hsm-chain-path, or NULL */
    const char *ca_cert_path; /* --aws-hsm-root-ca-path, or NULL */
};

/* Connects, logs in, loads and checks the chain, finds the key and signs a self-test. Returns a
 * signer of kind "pkcs11ca", or NULL with a reason (never containing the PIN). Logs (info) the
 * module, token, key type and where the PIN came from. */
signer *signer_pkcs11_new(const struct pkcs11_options *o, char *why, size_t whylen);

/* Key-only mode (above): uses o->config_path, o->pin_file and o->key_label (required here: no
 * default), ignores the certificate options. Returns a signer of kind "pkcs11" with an empty
 * chain, or NULL with a reason (never containing the PIN). Logs (info) like signer_pkcs11_new. */
signer *signer_pkcs11_key_new(const struct pkcs11_options *o, char *why, size_t whylen);

#endif
