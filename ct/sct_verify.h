/*
 * ct/sct_verify.h: verify a TLS-serialised SCT (ct-notes.md §1.4) for a precertificate entry
 * against one log's public key.
 *
 * The certificate may be the precertificate itself (carrying the poison) or the final certificate
 * (carrying the SCT list): whichever of the two it carries is removed and the poison-free TBS and
 * the issuer key hash rebuilt, so verifying against the final certificate is exactly what clients
 * do (sigstore-go, sigstore-js, cosign). For DER certificates (all this CA makes) the verifier
 * rebuilds the signed struct itself from the certificate's bytes (ct/tbs_der.h) and checks it
 * with the log key decoded once; otherwise OpenSSL's CT API (SCT_validate) does, which costs
 * about five times as much with OpenSSL 3.0 (it re-decodes both keys and re-parses the
 * certificate at every call).
 *
 * Thread safety: a verifier is immutable after ct_sct_verifier_new; ct_sct_verify may run on any
 * number of threads at once.
 */
#ifndef FULCRUM_CT_SCT_VERIFY_H
#define FULCRUM_CT_SCT_VERIFY_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

/* How far in the future (relative to now) an SCT timestamp may be: OpenSSL's own tolerance
 * (SCT_CLOCK_DRIFT_TOLERANCE). */
#define CT_SCT_FUTURE_TOLERANCE_MS 300000ULL

typedef struct ct_sct_verifier ct_sct_verifier;

/* A verifier for the log with this public key (up-referenced). NULL with why on failure. */
ct_sct_verifier *ct_sct_verifier_new(EVP_PKEY *log_key, char *why, size_t whylen);
void ct_sct_verifier_free(ct_sct_verifier *v);

/* The log's ID: SHA-256 of its DER SubjectPublicKeyInfo (32 bytes). */
const unsigned char *ct_sct_verifier_log_id(const ct_sct_verifier *v);

/* Verifies `sct` (one SCT, TLS serialisation, nothing after it) as a precert_entry SCT for
 * `cert` issued by `issuer`, with the evaluation time now_ms (ms since the epoch; an SCT later
 * than now_ms + CT_SCT_FUTURE_TOLERANCE_MS is refused). Returns 0, or -1 with the failed check
 * in why (version, log id, timestamp, signature). */
int ct_sct_verify(const ct_sct_verifier *v, const unsigned char *sct, size_t sct_len, X509 *cert,
                  X509 *issuer, uint64_t now_ms, char *why, size_t whylen);

/* ct_sct_verify for an SCT that this process's own log signed with a key held in this process
 * (ct_log_key_in_process): every check but the signature arithmetic, which gives way to comparing
 * the signed bytes rebuilt here from cert and issuer with what the log signed, by its Merkle leaf
 * hash (leaf_hash = SHA-256(0x00 || the signed bytes), from ct_log_add_own_precert_sct). A
 * signature made in process by OpenSSL is not checked again (as hsm/signer.h's in_process); what
 * the check is for, that this certificate and issuer are what was logged and signed, still is. */
int ct_sct_verify_own(const ct_sct_verifier *v, const unsigned char *sct, size_t sct_len,
                      X509 *cert, X509 *issuer, uint64_t now_ms, const unsigned char leaf_hash[32],
                      char *why, size_t whylen);

/* Milliseconds since the Unix epoch (wall clock). */
uint64_t ct_now_ms(void);

#endif
