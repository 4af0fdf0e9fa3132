/*
 * ca/issue.h: from a principal and a client key to a signed leaf certificate.
 *
 * Builds the profile of fulcio-compat.md §4.1-4.3 with OpenSSL's X509 API (ca/cert_profile.h),
 * runs the pre-issuance check (ca/preissuance_check.h) on the complete TBS, and only then signs
 * through the signer (hsm/signer.h). A certificate that fails the check is never signed.
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

/* On ISSUE_OK *out is the new certificate. */
enum issue_result ca_issue_certificate(signer *s, const principal *p, EVP_PKEY *client_key,
                                       time_t now, X509 **out, char *why, size_t whylen);

#endif
