/*
 * hsm/signer.h: the one interface through which the CA signs.
 *
 * A signer holds (or reaches) one private key and knows the certificate chain that goes with it.
 * Backends: ephemeral (a new P-256 root in memory), file (PEM chain + PKCS#8 key), and PKCS#11
 * (hsm/pkcs11_signer.h). The key may live outside the process, so signing works on bytes and can fail:
 * a backend reports SIGNER_RETRY when a second attempt may succeed (a lost HSM session);
 * signer_sign() retries such a failure once before giving up.
 *
 * Every signature returned by signer_sign() from a key outside this process (PKCS#11) has been
 * verified with the signer's public key: a token that returns a corrupt signature is caught before
 * the certificate leaves. In-process keys (ephemeral, file) are signed by OpenSSL in this process
 * and are not verified again (OpenSSL already checks its RSA-CRT results against fault attacks;
 * an ECDSA verification would cost three times the signature on every certificate).
 *
 * Thread safety: signer_sign() may be called from any number of threads at once.
 */
#ifndef FULCRUM_HSM_SIGNER_H
#define FULCRUM_HSM_SIGNER_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>

enum signer_status { SIGNER_OK = 0, SIGNER_FAIL = -1, SIGNER_RETRY = -2 };

/* What a backend implements. */
struct signer_ops {
    /* Signs `tbs` (the message, not a digest) with the backend's key using the signer's
     * algorithm (md_nid, or pure Ed25519). On success writes at most *siglen bytes to sig and
     * updates *siglen. On failure writes a reason (no secrets) to why. */
    enum signer_status (*sign)(void *impl, const unsigned char *tbs, size_t tbslen,
                               unsigned char *sig, size_t *siglen, char *why, size_t whylen);
    /* Called once when the backend should re-establish itself after SIGNER_RETRY (may be NULL). */
    int (*reconnect)(void *impl, char *why, size_t whylen);
    void (*destroy)(void *impl);
    /* 1: the key is in this process and OpenSSL computes the signature; signer_sign() does not
     * verify it. 0 (the default): every signature is verified before it is returned. */
    int in_process;
};

typedef struct signer {
    const struct signer_ops *ops;
    void *impl;
    const char *kind;          /* "ephemeralca", "fileca", "pkcs11ca"; "pkcs11" = a key only (CT log) */
    EVP_PKEY *public_key;      /* the CA key's public half (owned) */
    int md_nid;                /* digest used with the key: NID_sha256/384/512, NID_undef for Ed25519 */
    X509_ALGOR *sig_alg;       /* AlgorithmIdentifier for certificates this key signs (owned) */
    size_t max_sig_len;        /* upper bound for a signature's length */
    STACK_OF(X509) *chain;     /* issuing certificate first, root last (owned); empty for a key-only signer */
    _Atomic int sign_failed;   /* 1 after signer_sign() finally failed, 0 after it succeeded */
} signer;

/* Signs and verifies. Retries once after SIGNER_RETRY (calling ops->reconnect first).
 * Returns 0 or -1 with a reason in why. */
int signer_sign(signer *s, const unsigned char *tbs, size_t tbslen, unsigned char *sig,
                size_t *siglen, char *why, size_t whylen);

/* Readiness: 0 when the last signer_sign() call failed (after its retry), 1 when it succeeded
 * or none has run yet. Any thread may call it at any time. */
int signer_healthy(const signer *s);

/* The issuing certificate (first of the chain). */
X509 *signer_issuing_cert(const signer *s);

/* Fills md_nid, sig_alg and max_sig_len from public_key (for backends' constructors).
 * Supports EC P-256/384/521 (ecdsa-with-SHA256/384/512), RSA (sha256WithRSAEncryption),
 * Ed25519. Returns 0 or -1. */
int signer_init_algorithm(signer *s, char *why, size_t whylen);

/* A new P-256 key and self-signed root as Fulcio's ephemeralca makes it (fulcio-compat.md §6). */
signer *signer_ephemeral_new(char *why, size_t whylen);

/* fileca: cert_path holds the chain (issuing first, root last), key_path a PEM private key
 * (PKCS#8 encrypted or plain, EC/RSA legacy PEM), passwd may be "". Validates as Fulcio does
 * (fulcio-compat.md §4.7): the chain verifies to its last element for code signing, the first
 * cert is a CA, carries EKU codeSigning when the chain has more than one cert, and its public key
 * matches the private key, which must itself pass the key policy. */
signer *signer_file_new(const char *cert_path, const char *key_path, const char *passwd,
                        char *why, size_t whylen);

void signer_free(signer *s);

#endif
