/*
 * common/digest_md.h: the digests the hot path uses, fetched from OpenSSL's provider once. With
 * EVP_sha256(), EVP_sha1() or SHA256() OpenSSL 3.0 looks the implementation up again at every
 * digest (a locked method-store search): the log's hashes, the CA's checks and each
 * certificate's subject key identifier run several per issuance.
 */
#ifndef FULCRUM_COMMON_DIGEST_MD_H
#define FULCRUM_COMMON_DIGEST_MD_H

#include <openssl/evp.h>

/* The fetched SHA-256 (owned by this module, never freed), or EVP_sha256() if the fetch failed.
 * Thread-safe. */
const EVP_MD *sha256_md(void);

/* The same for SHA-1 (RFC 5280 key identifiers only). */
const EVP_MD *sha1_md(void);

#endif
