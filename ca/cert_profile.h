/*
 * ca/cert_profile.h: the leaf certificate's contents (fulcio-compat.md §4.1-4.3), unsigned.
 *
 * Version 3; serial uniform random in [1, 2^159); issuer = the issuing CA's subject; empty
 * subject; notBefore = now, notAfter = now + 600 s (UTCTime); the client's SPKI; extensions in
 * Go's order: KU digitalSignature (critical), EKU codeSigning, SKID (SHA-1 of the key bits),
 * AKID (keyIdentifier = CA's SKID, omitted if the CA has none), SAN (critical, exactly one name),
 * then 1.3.6.1.4.1.57264.1.{1..6,8..24} each only if set (.1-.6 raw bytes, the rest DER
 * UTF8String). The TBS signature algorithm is set from the signer.
 */
#ifndef FULCRUM_CA_CERT_PROFILE_H
#define FULCRUM_CA_CERT_PROFILE_H

#include <openssl/x509.h>
#include <stddef.h>
#include <time.h>

#include "oidc/principal.h"

#define CERT_VALIDITY_SECONDS 600

/* Returns a new, unsigned X509 or NULL with a reason. `sig_alg` goes into the TBS. */
X509 *cert_profile_build(const principal *p, EVP_PKEY *client_key, X509 *issuing_ca,
                         const X509_ALGOR *sig_alg, time_t now, char *why, size_t whylen);

#endif
