/*
 * hsm/key_signer.h (internal to hsm/): a signer over an in-process EVP_PKEY, shared by the
 * ephemeral and file backends.
 *
 * Thread safety: the key is only read after construction and every signature uses a fresh
 * EVP_MD_CTX, so the signer may sign from any number of threads at once.
 */
#ifndef FULCRUM_HSM_KEY_SIGNER_H
#define FULCRUM_HSM_KEY_SIGNER_H

#include "hsm/signer.h"

/* A signer of kind `kind` (a string with static lifetime, e.g. "fileca") over `key`, with
 * `chain` (issuing certificate first, root last; must not be empty, and its first certificate
 * must hold key's public half). Takes ownership of key and chain, also on failure. Fills
 * public_key (a public-only copy), md_nid, sig_alg and max_sig_len, and signs and verifies one
 * test message before returning. Returns NULL with a reason in why. */
signer *key_signer_new(const char *kind, EVP_PKEY *key, STACK_OF(X509) *chain, char *why,
                       size_t whylen);

#endif
