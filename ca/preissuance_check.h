/*
 * ca/preissuance_check.h: asserts the profile on a complete TBS before anything signs it (in the
 * spirit of Let's Encrypt's linting before signing). It reads the built certificate's fields, not
 * the inputs it was built from, so a bug in the builder is caught. The key policy is checked on the
 * SPKI's algorithm and bits (EC, Ed25519) or on the decoded key (others).
 */
#ifndef FULCRUM_CA_PREISSUANCE_CHECK_H
#define FULCRUM_CA_PREISSUANCE_CHECK_H

#include <openssl/x509.h>
#include <stddef.h>
#include <time.h>

#include "oidc/principal.h"

/* Checks: v3; serial positive and < 2^159; empty subject; issuer == CA subject; validity exactly
 * now..now+600 s; KU critical digitalSignature only; EKU codeSigning only; SAN present, critical,
 * exactly one name equal to the principal's; no basicConstraints CA; key passes the client key
 * policy; AKID matches the CA SKID; the TBS signature algorithm is the signer's; no extension
 * twice. Returns 0 or -1 with the failed check in why. */
int preissuance_check(X509 *cert, const principal *p, X509 *issuing_ca,
                      const X509_ALGOR *sig_alg, time_t now, char *why, size_t whylen);

#endif
