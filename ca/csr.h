/*
 * ca/csr.h: the PKCS#10 alternative to publicKey + proof of possession (fulcio-compat.md §2.3).
 */
#ifndef FULCRUM_CA_CSR_H
#define FULCRUM_CA_CSR_H

#include <openssl/evp.h>
#include <stddef.h>

enum csr_result {
    CSR_OK = 0,
    CSR_UNPARSEABLE,      /* not PEM "CERTIFICATE REQUEST"/"NEW CERTIFICATE REQUEST", bad DER */
    CSR_INSECURE_KEY,     /* key policy failed */
    CSR_BAD_SIGNATURE,    /* self-signature does not verify */
    CSR_BAD_ALGORITHM,    /* signature algorithm not accepted (RSA-PSS, SHA-1, MD5, ...) */
};

/* Parses the PEM text, checks key policy, then the self-signature, then maps the signature
 * algorithm to a hash (ecdsa-with-SHA256/384/512, sha256/384/512WithRSAEncryption, Ed25519
 * -> NID_undef). On CSR_OK *key_out is the CSR's public key (new reference) and *md_nid_out the
 * hash. Otherwise why names the failed check. Order as Fulcio: parse, key policy, signature,
 * algorithm. */
enum csr_result csr_parse_and_verify(const unsigned char *pem, size_t len, EVP_PKEY **key_out,
                                     int *md_nid_out, char *why, size_t whylen);

#endif
