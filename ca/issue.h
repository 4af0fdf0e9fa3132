/*
 * ca/issue.h: from a principal and a client key to a signed leaf certificate.
 *
 * Builds the profile of fulcio-compat.md §4.1-4.3 with OpenSSL's X509 API (ca/cert_profile.h),
 * runs the pre-issuance check (ca/preissuance_check.h) on the complete TBS, and only then signs
 * through the signer (hsm/signer.h). A certificate that fails the check is never signed.
 *
 * With Certificate Transparency (fulcio-compat.md §5, ct-notes.md §1.5-1.7) issuance has two
 * steps around the log submission:
 *  1. ca_issue_precertificate: the same profile plus the critical poison extension
 *     (1.3.6.1.4.1.11129.2.4.3, value NULL) last, checked, signed directly by the CA key (no
 *     precertificate signing certificate).
 *  2. ca_issue_final_certificate(_from): from the precertificate, the same TBS with the poison
 *     removed and the SCT list extension (1.3.6.1.4.1.11129.2.4.2) appended last; before signing,
 *     the final TBS minus the SCT list must equal the precertificate TBS minus the poison byte for
 *     byte (every log and verifier rebuilds exactly that).
 */
#ifndef FULCRUM_CA_ISSUE_H
#define FULCRUM_CA_ISSUE_H

#include <openssl/x509.h>
#include <time.h>

#include "hsm/signer.h"
#include "oidc/principal.h"

enum issue_result {
    ISSUE_OK = 0,
    ISSUE_VALIDATION_ERROR, /* the principal cannot be embedded: 400 with why */
    ISSUE_CA_ERROR,         /* profile check failed or the signer failed: 500 */
};

/* On ISSUE_OK *out is the new certificate, parsed from its DER (a complete X509 object). */
enum issue_result ca_issue_certificate(signer *s, const principal *p, EVP_PKEY *client_key,
                                       time_t now, X509 **out, char *why, size_t whylen);

/* Step 1 of CT issuance: like ca_issue_certificate, plus the poison extension last. `now` must
 * be kept and passed to ca_issue_final_certificate. On ISSUE_OK *out is the precertificate. */
enum issue_result ca_issue_precertificate(signer *s, const principal *p, EVP_PKEY *client_key,
                                          time_t now, X509 **out, char *why, size_t whylen);

/* Step 2: the final certificate for `precert` (from ca_issue_precertificate with the same p and
 * now) carrying the one TLS-serialised SCT `sct` (ct-notes.md §1.4) in its SCT list extension.
 * Checks the TBS correspondence before signing and the signature after. Every failure is the CA's
 * (ISSUE_CA_ERROR). On ISSUE_OK *out is the final certificate, parsed from its DER. */
enum issue_result ca_issue_final_certificate(signer *s, const principal *p, X509 *precert,
                                             time_t now, const unsigned char *sct,
                                             size_t sct_len, X509 **out, char *why,
                                             size_t whylen);

/* The server's path: the same as ca_issue_certificate / ca_issue_precertificate, but *out is the
 * built object itself, not a parse of its DER. It is complete as DER (i2d_X509, PEM) and its
 * fields can be read, but an EC or Ed25519 public key is never decoded (X509_get0_pubkey
 * returns NULL): with
 * OpenSSL 3.0 decoding a key costs more than the CA's signature. Parse the DER to verify it. */
enum issue_result ca_issue_certificate_built(signer *s, const principal *p,
                                             EVP_PKEY *client_key, time_t now, X509 **out,
                                             char *why, size_t whylen);
enum issue_result ca_issue_precertificate_built(signer *s, const principal *p,
                                                EVP_PKEY *client_key, time_t now, X509 **out,
                                                char *why, size_t whylen);

/* ca_issue_final_certificate from the precertificate's own object, without a copy: takes
 * *precert (sets it to NULL) and turns it into the final certificate, returned in *out on
 * ISSUE_OK (freed on any failure). The object must be the one ca_issue_precertificate(_built) returned, unmodified;
 * *out is built like ca_issue_precertificate_built's. */
enum issue_result ca_issue_final_certificate_from(signer *s, const principal *p,
                                                  X509 **precert, time_t now,
                                                  const unsigned char *sct, size_t sct_len,
                                                  X509 **out, char *why, size_t whylen);

/* The DER TBSCertificate of `cert` with every extension of OID `nid` removed (re-encoded), for
 * the correspondence check; NULL if the certificate has no such extension or on error. The caller
 * OPENSSL_free()s the result. */
unsigned char *ca_tbs_without_ext(X509 *cert, int nid, size_t *len);

#endif
