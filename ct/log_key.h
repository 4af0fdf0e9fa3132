/*
 * ct/log_key.h: the log's ECDSA P-256 key: a file key (<dir>/private.pem, PKCS#8, created 0600
 * on first use) or a signer from hsm/signer.h; the public key is always written to
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
 * SHA-256. Returns NULL with a reason. */
ctlog_key *ctlog_key_open(const char *dir, signer *ext, char *why, size_t whylen);
void ctlog_key_free(ctlog_key *k);

EVP_PKEY *ctlog_key_public(const ctlog_key *k);
const unsigned char *ctlog_key_id(const ctlog_key *k); /* SHA-256 of the DER SPKI */

/* Writes DigitallySigned(sha256, ecdsa, ECDSA-Sig-Value over msg) to out (CTLOG_DS_MAX bytes).
 * verify = 1 also checks the signature with the public key. Returns 0 or -1 with a reason. */
int ctlog_key_sign(ctlog_key *k, const unsigned char *msg, size_t len, int verify,
                   unsigned char *out, size_t *outlen, char *why, size_t whylen);

/* Verifies a DigitallySigned over msg with `pub` (sha256/ecdsa only). 1 = valid. */
int ctlog_ds_verify(EVP_PKEY *pub, const unsigned char *msg, size_t len,
                    const unsigned char *ds, size_t dslen);

#endif
