/*
 * hsm/pkcs11_chain.h (internal to hsm/): the certificate chain of an HSM-held CA key, checked at
 * start-up as fileca checks its chain (fulcio-compat.md §4.7):
 *   1. the chain verifies to its last certificate (the trust anchor, taken as trusted), the
 *      middle ones as intermediates, every certificate allowing code signing (Go's EKU chaining);
 *   2. the issuing (first) certificate is a CA (basicConstraints CA:TRUE);
 *   3. with more than one certificate, the issuing certificate carries EKU codeSigning;
 *   4. the issuing certificate's key passes the key policy (RSA 2048/3072/4096 with e=65537,
 *      EC P-256/P-384/P-521).
 * (That the HSM's private key matches the issuing certificate is checked by signing.)
 */
#ifndef FULCRUM_HSM_PKCS11_CHAIN_H
#define FULCRUM_HSM_PKCS11_CHAIN_H

#include <openssl/x509.h>
#include <stddef.h>

/* Every PEM CERTIFICATE block of the file, in order (other blocks are ignored). NULL with a
 * reason when the file cannot be read, a block does not parse, or it holds no certificate. */
STACK_OF(X509) *pkcs11_chain_read_pem(const char *path, char *why, size_t whylen);

/* Runs checks 1-4 on chain (issuing first). `origin` names where it came from in messages.
 * Returns 0, or -1 with a reason. */
int pkcs11_chain_validate(STACK_OF(X509) *chain, const char *origin, char *why, size_t whylen);

#endif
