/*
 * ct/log_key.h: the log's ECDSA P-256 key, one of:
 *  - a signer from hsm/signer.h (e.g. a key in a PKCS#11 token);
 *  - a given PEM private key file (PKCS#8 or SEC1 "EC PRIVATE KEY", maybe encrypted);
 *  - the default file key <dir>/private.pem (PKCS#8, created 0600 on first use).
 * Anything but EC P-256 is refused. ctlog_key_write_public writes the public key to
 * <dir>/public.pem. Signs TLS DigitallySigned structures (ct-notes §1.2).
 *
 * Thread safety: ctlog_key_sign may be called from any number of threads at once.
 */
#ifndef FULCRUM_CT_LOG_KEY_H
#define FULCRUM_CT_LOG_KEY_H

#include <openssl/evp.h>
#include <stddef.h>

#include "hsm/signer.h"

typedef struct ctlog_key ctlog_key;

/* dir must exist. ext (borrowed, may be NULL) replaces the file key; it must be EC P-256 with
 * SHA-256. Otherwise key_path (may be NULL or "") names the key file, which must exist; its
 * password, when it is encrypted, is the content of passwd_file (one trailing newline removed;
 * NULL or "" = none). Without either, <dir>/private.pem is used or created. Returns NULL with a
 * reason (never the password). */
ctlog_key *ctlog_key_open(const char *dir, signer *ext, const char *key_path,
                          const char *passwd_file, char *why, size_t whylen);

/* Writes the public key to <dir>/public.pem (atomically: temp file + rename). 0 or -1. */
int ctlog_key_write_public(const ctlog_key *k, const char *dir, char *why, size_t whylen);
void ctlog_key_free(ctlog_key *k);

EVP_PKEY *ctlog_key_public(const ctlog_key *k);
const unsigned char *ctlog_key_id(const ctlog_key *k); /* SHA-256 of the DER SPKI */
/* 1: the private key is in this process (a key file, or an in-process signer); 0: an HSM. */
int ctlog_key_in_process(const ctlog_key *k);

/* Writes DigitallySigned(sha256, ecdsa, ECDSA-Sig-Value over msg) to out (CTLOG_DS_MAX bytes).
 * verify = 1 also checks the signature with the public key. Returns 0 or -1 with a reason. */
int ctlog_key_sign(ctlog_key *k, const unsigned char *msg, size_t len, int verify,
                   unsigned char *out, size_t *outlen, char *why, size_t whylen);

/* Verifies a DigitallySigned over msg with `pub` (sha256/ecdsa only). 1 = valid. */
int ctlog_ds_verify(EVP_PKEY *pub, const unsigned char *msg, size_t len,
                    const unsigned char *ds, size_t dslen);

#endif
