/*
 * common/sha256.h: the SHA-256 implementation, fetched from OpenSSL's provider once. With
 * EVP_sha256() or SHA256() OpenSSL 3.0 looks the implementation up again at every digest (a
 * locked method-store search); the log's hashes and the CA's checks run several per issuance.
 */
#ifndef FULCRUM_COMMON_SHA256_H
#define FULCRUM_COMMON_SHA256_H

#include <openssl/evp.h>

/* The fetched SHA-256 (owned by this module, never freed), or EVP_sha256() if the fetch failed.
 * Thread-safe. */
const EVP_MD *sha256_md(void);

#endif
