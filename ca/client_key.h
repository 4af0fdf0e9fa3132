/*
 * ca/client_key.h: the public key a client asks to certify: parsing, key policy, proof of
 * possession and the allowed (key, hash) list. fulcio-compat.md §2.
 */
#ifndef FULCRUM_CA_CLIENT_KEY_H
#define FULCRUM_CA_CLIENT_KEY_H

#include <openssl/evp.h>
#include <stddef.h>

/* `content` as sent in publicKey.content: PEM "PUBLIC KEY" (SPKI) or "RSA PUBLIC KEY" (PKCS#1)
 * first, then raw DER SPKI. Returns a new key or NULL with a reason.
 * A P-256/P-384/P-521 key (an uncompressed point, checked to be on its curve) comes back as an
 * EVP_PKEY without type or key material that holds the curve and the point for the functions of
 * this header: making OpenSSL 3.0's provider key costs more than the rest of the parse. OpenSSL
 * functions given it fail cleanly (EVP_PKEY_eq, i2d_PUBKEY, EVP_DigestVerifyInit); use
 * client_key_ec_point, or client_key_openssl for OpenSSL's own key. EVP_PKEY_dup and
 * EVP_PKEY_free work on it. Other keys are OpenSSL's. */
EVP_PKEY *client_key_parse(const unsigned char *content, size_t len, char *why, size_t whylen);

/* OpenSSL's own key for a key of client_key_parse (a new reference; for an EC point a key made
 * from it, ~20 us), for callers that need OpenSSL operations on it. NULL on failure. */
EVP_PKEY *client_key_openssl(EVP_PKEY *key);

/* Key policy: RSA 2048/3072/4096 with e = 65537; ECDSA P-256/P-384/P-521 with a valid point;
 * Ed25519. Returns 0, or -1 with a message naming the key and the rule, e.g.
 * "RSA key of 1024 bits is not allowed (RSA must be 2048, 3072 or 4096 bits)" or
 * "EC curve secp224r1 is not allowed (allowed: P-256, P-384, P-521)". */
int client_key_policy_check(EVP_PKEY *key, char *why, size_t whylen);

/* The hash the raw-key proof of possession uses: P-256 SHA-256, P-384 SHA-384,
 * P-521 SHA-512, RSA SHA-256 (PKCS#1 v1.5), Ed25519 NID_undef (pure). */
int client_key_default_md(EVP_PKEY *key);

/* Verifies a proof-of-possession signature over `msg`. ECDSA accepts DER, then IEEE P1363 r||s;
 * RSA PKCS#1 v1.5 SHA-256; pure Ed25519. Returns 0 or -1 with a reason. */
int client_key_verify_pop(EVP_PKEY *key, const unsigned char *msg, size_t msglen,
                          const unsigned char *sig, size_t siglen, char *why, size_t whylen);

/* Is (key, md) in the default --client-signing-algorithms list (fulcio-compat.md §2.5)?
 * Returns 0, or -1 with "signing algorithm not permitted: <key type>, <hash>". */
int client_key_hash_allowed(EVP_PKEY *key, int md_nid, char *why, size_t whylen);

/* For an EC key client_key_parse made from an uncompressed point: that point (04||X||Y, owned by
 * the key), its length and its curve's NID. NULL for any other key, which OpenSSL holds (then ask
 * OpenSSL: EVP_PKEY_get_octet_string_param). */
const unsigned char *client_key_ec_point(EVP_PKEY *key, int *curve_nid, size_t *len);

/* A short description, e.g. "ECDSA P-256", "RSA 2048", "Ed25519". */
void client_key_describe(EVP_PKEY *key, char *out, size_t outlen);

#endif
