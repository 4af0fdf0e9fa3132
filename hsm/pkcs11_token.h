/*
 * hsm/pkcs11_token.h (internal to hsm/, `fulcrum createca` and `fulcrum ctlog createkey`): a
 * PKCS#11 module called through its own function list, and the few token operations the CA and
 * the CT log need: select the token, log in, find objects, read a certificate or public key,
 * sign, generate a key pair, store a certificate.
 *
 * Why not libp11 here: see hsm/pkcs11_signer.h. Every function returns the module's CK_RV so that
 * callers can tell a lost session or device from a real refusal.
 *
 * One module, several users: a process may load the same module more than once (the CA's
 * signer and the embedded CT log's signer on the same HSM). dlopen hands back the same library,
 * whose PKCS#11 state (initialisation, login) is process-wide, so the loads are counted here:
 * only the first calls C_Initialize, only the last unload calls C_Finalize, and
 * p11_module_reinit does nothing while another user has the module loaded (a C_Finalize would
 * pull sessions from under that user's calls in progress); each user then recovers by closing
 * its own sessions and opening new ones. Session handles opened with p11_open_session are
 * remembered with their opener, so that p11_close_session never closes a dead handle whose
 * number the module has since given to another user.
 *
 * Thread safety: the module is initialised with CKF_OS_LOCKING_OK, so these functions may be
 * called from several threads at once as long as no session handle is used by two threads at the
 * same time (PKCS#11 §5.1.6) and p11_module_reinit does not run concurrently with anything else
 * on the same p11_module. p11_module_load/unload may run from any thread (the count is guarded).
 */
#ifndef FULCRUM_HSM_PKCS11_TOKEN_H
#define FULCRUM_HSM_PKCS11_TOKEN_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <p11-kit/pkcs11.h>
#include <stddef.h>

#include "hsm/pkcs11_config.h"

struct p11_shared; /* the per-library load count (pkcs11_token.c) */

typedef struct p11_module {
    void *dl;               /* dlopen handle */
    CK_FUNCTION_LIST_PTR f; /* the module's function list */
    int initialized;        /* 1 when this load's C_Initialize succeeded */
    struct p11_shared *shared; /* the library's load count, NULL until loaded */
} p11_module;

/* dlopen(path) + C_GetFunctionList + C_Initialize(CKF_OS_LOCKING_OK), the latter only when no
 * other p11_module of this process has the library loaded. A module that reports
 * CKR_CRYPTOKI_ALREADY_INITIALIZED (initialised by someone else in this process) is used but
 * never finalized. */
int p11_module_load(p11_module *m, const char *path, char *why, size_t whylen);

/* C_Finalize + C_Initialize: drops every session, the login and all object handles of the
 * module. Does nothing (returns 0) while another p11_module of this process has the library
 * loaded: the caller then only gets new sessions (see the top of this file). */
int p11_module_reinit(p11_module *m, char *why, size_t whylen);

/* dlclose, and C_Finalize when this was the library's last load and one of ours initialised
 * it. Safe on a zeroed or half-loaded struct. */
void p11_module_unload(p11_module *m);

/* C_OpenSession, remembering that this p11_module opened the handle. */
CK_RV p11_open_session(p11_module *m, CK_SLOT_ID slot, CK_FLAGS flags, CK_SESSION_HANDLE *s);

/* C_CloseSession, unless the handle is known to have been opened since by another p11_module of
 * this process (it died, e.g. closed behind this user's back, and the module handed its number
 * to someone else): then this user's claim is dropped and the other's session left alone. */
void p11_close_session(p11_module *m, CK_SESSION_HANDLE s);

/* The slot holding the token the config selects: TokenLabel (label as shown, trailing blanks
 * ignored), TokenSerial, or SlotNumber (the slot ID). Only slots with a token present count.
 * Fills *info with the token's info. Returns 0, or -1 with a reason. */
int p11_select_token(p11_module *m, const struct pkcs11_config *cfg, CK_SLOT_ID *slot,
                     CK_TOKEN_INFO *info, char *why, size_t whylen);

/* The token label as a C string (trailing blanks removed). */
void p11_token_label(const CK_TOKEN_INFO *info, char *out, size_t outlen);

/* C_Login as CKU_USER; CKR_USER_ALREADY_LOGGED_IN counts as success. */
CK_RV p11_login(p11_module *m, CK_SESSION_HANDLE s, const char *pin);

/* Finds up to max objects of class cls whose CKA_ID is id (when id is not NULL) and CKA_LABEL is
 * label (when not NULL). *count receives how many were found (at most max). */
CK_RV p11_find(p11_module *m, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const void *id,
               size_t idlen, const char *label, CK_OBJECT_HANDLE *out, CK_ULONG max,
               CK_ULONG *count);

/* One attribute's value, malloc'd (NUL-terminated for convenience, not counted in *len). */
CK_RV p11_get_attr(p11_module *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj,
                   CK_ATTRIBUTE_TYPE type, unsigned char **val, CK_ULONG *len);

/* CKA_KEY_TYPE of a key object (CKK_EC, CKK_RSA, ...). */
CK_RV p11_key_type(p11_module *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, CK_KEY_TYPE *type);

/* The X.509 certificate in a certificate object's CKA_VALUE. NULL with a reason. */
X509 *p11_read_cert(p11_module *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, char *why,
                    size_t whylen);

/* The public key of a public-key object (EC: CKA_EC_PARAMS + CKA_EC_POINT, RSA: CKA_MODULUS +
 * CKA_PUBLIC_EXPONENT). NULL with a reason. */
EVP_PKEY *p11_read_public_key(p11_module *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj,
                              char *why, size_t whylen);

/*
 * Signs tbs with the private key `key` of type key_type (CKK_EC or CKK_RSA): hashes tbs with md
 * in this process, then C_SignInit + C_Sign with CKM_ECDSA over the digest (the raw r||s result
 * is converted to a DER ECDSA-Sig-Value) or CKM_RSA_PKCS over the DigestInfo (PKCS#1 v1.5).
 * On success writes at most *siglen bytes and returns 0. On failure returns -1 with a reason and
 * *rv set to the module's CK_RV, or CKR_OK when the failure happened in this process.
 */
int p11_sign(p11_module *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_KEY_TYPE key_type,
             const EVP_MD *md, const unsigned char *tbs, size_t tbslen, unsigned char *sig,
             size_t *siglen, CK_RV *rv, char *why, size_t whylen);

/* Key types `fulcrum createca` makes. */
enum p11_keygen { P11_KEY_P256, P11_KEY_P384, P11_KEY_RSA3072, P11_KEY_RSA4096 };

/* Generates a key pair on the token (C_GenerateKeyPair): both halves are token objects with the
 * given CKA_LABEL and CKA_ID; the private key is private, sensitive, never extractable and may
 * only sign; the public key may only verify. Needs a read/write session, logged in. */
CK_RV p11_generate_key_pair(p11_module *m, CK_SESSION_HANDLE s, enum p11_keygen type,
                            const char *label, const void *id, size_t idlen,
                            CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv);

/* Stores x as a token certificate object (CKC_X_509) with CKA_LABEL, CKA_ID, CKA_SUBJECT,
 * CKA_ISSUER, CKA_SERIAL_NUMBER and CKA_VALUE. Needs a read/write session. */
CK_RV p11_store_cert(p11_module *m, CK_SESSION_HANDLE s, X509 *x, const char *label,
                     const void *id, size_t idlen);

/* ---- one-shot commands: `fulcrum createca`, `fulcrum ctlog createkey` ---- */

/* A read/write session on the token a crypto11 config selects, logged in. */
typedef struct p11_rw_session {
    p11_module mod;
    CK_SESSION_HANDLE s;
    int open;       /* s is open */
    char token[64]; /* the token's label */
} p11_rw_session;

/* Loads the module config_path names, selects its token, opens a read/write session and logs in
 * with the PIN pkcs11_pin_resolve finds (pin_file, systemd credential, the config's Pin; none is
 * needed with LoginNotSupported). *pin_source (may be NULL) receives where the PIN came from
 * (static text; NULL when there was no log-in). Returns 0, or -1 with a reason that never holds
 * the PIN; call p11_rw_session_close in both cases. */
int p11_rw_session_open(p11_rw_session *t, const char *config_path, const char *pin_file,
                        const char **pin_source, char *why, size_t whylen);

/* Closes the session and unloads the module. Safe on a zeroed struct. */
void p11_rw_session_close(p11_rw_session *t);

/*
 * The key pair labelled `label` on t's token:
 *  - none yet: generates one of `type` (p11_generate_key_pair: private, sensitive, never
 *    extractable, sign only) with CKA_ID id, and sets *generated = 1;
 *  - one, and reuse = 1: uses it (its public key object must carry the same label), *generated
 *    = 0; with reuse = 0 this is refused (-1 naming the label);
 *  - several private keys with that label: refused.
 * Fills *priv, *key_type and *pub (the public half, freed by the caller). Returns 0, or -1 with
 * a reason.
 */
int p11_key_pair_get(p11_rw_session *t, const char *label, const void *id, size_t idlen,
                     enum p11_keygen type, int reuse, CK_OBJECT_HANDLE *priv,
                     CK_KEY_TYPE *key_type, EVP_PKEY **pub, int *generated, char *why,
                     size_t whylen);

/* "CKR_DEVICE_ERROR" etc., or "CKR_0x..." for unknown values (static or thread-local text). */
const char *p11_rv_name(CK_RV rv);

/* 1 when rv says the session, the login, the device or an object handle was lost, so that
 * re-initialising the module and logging in again may help; 0 when it is a real refusal. */
int p11_rv_is_connection_loss(CK_RV rv);

#endif
