/*
 * ct/chain_check.h: what a log checks in a submitted chain (RFC 6962 §4.1/§4.2, ct-notes §1.6,
 * §1.7, §5) and what it turns it into.
 *
 * x509 (add-chain): the leaf carries no poison; the chain verifies to an accepted root.
 * precert (add-pre-chain): the leaf carries exactly one poison extension, critical, value DER
 * NULL; only the leaf may carry it; the issuer (the verified chain's second certificate) must
 * not be a Precertificate Signing Certificate (not supported); issuer_key_hash = SHA-256 of the
 * issuer's DER SubjectPublicKeyInfo; the TBS is the precert's with the poison removed, the other
 * extensions in their order (OpenSSL: X509_dup, X509_delete_ext, i2d_re_X509_tbs).
 * Both: the outer signatureAlgorithm equals the TBS signature field; the chain is verified with
 * the submitted certificates as untrusted intermediates (validity dates are not checked, as
 * Trillian's CTFE), and the stored chain is the verified path, ending at the accepted root
 * (which the submitter may leave out).
 *
 * Thread safety: any thread (the X509_STORE is only read).
 */
#ifndef FULCRUM_CT_CHAIN_CHECK_H
#define FULCRUM_CT_CHAIN_CHECK_H

#include <openssl/x509.h>
#include <stddef.h>

#define CTLOG_MAX_CHAIN 16

typedef struct ctlog_entry {
    int entry_type;               /* CT_ENTRY_X509 or CT_ENTRY_PRECERT */
    unsigned char *signed_entry;  /* x509: 3-byte len + leaf DER; precert: issuer_key_hash +
                                     3-byte len + poison-free TBS (malloc'd) */
    size_t signed_len;
    unsigned char *extra_data;    /* x509: ASN.1Cert chain list; precert: PrecertChainEntry */
    size_t extra_len;
    unsigned char dedup[32];      /* SHA-256(entry_type (2 bytes) || signed_entry) */
} ctlog_entry;

/* Returns 0 and fills e, or -1 with the refused check in why. */
int ctlog_chain_check(X509_STORE *roots, int precert, STACK_OF(X509) *chain, ctlog_entry *e,
                      char *why, size_t whylen);

/* The same with flags: CTLOG_CHECK_PRECERT = precert; CTLOG_CHECK_OWN = chain[0] was made by
 * this process's CA (the embedded submitter): every check still runs, only the poison-free TBS
 * is cut from the DER bytes (ct/tbs_der.h) instead of a re-parse, when that way applies. */
#define CTLOG_CHECK_PRECERT 1u
#define CTLOG_CHECK_OWN 2u
int ctlog_chain_check_ex(X509_STORE *roots, unsigned flags, STACK_OF(X509) *chain,
                         ctlog_entry *e, char *why, size_t whylen);

void ctlog_entry_clear(ctlog_entry *e);

#endif
