/*
 * ct/tbs_der.h: a certificate's TBSCertificate with one extension taken out (or replaced),
 * computed on the DER bytes (no parse, no re-encoding): the poison-free TBS of a
 * precertificate, or the SCT-list-free TBS of a final certificate (RFC 6962 §3.2, ct-notes.md
 * §1.7).
 *
 * Why: with OpenSSL 3.0 every certificate parse (X509_dup, d2i_X509) runs a public key decoder,
 * the largest cost of an issuance; the usual way (X509_dup, X509_delete_ext, i2d_re_X509_tbs)
 * parses once more per use. For DER input (what OpenSSL's i2d writes: every certificate this CA
 * makes) the result is byte for byte what that way gives: the other bytes are copied, the three
 * enclosing headers (extensions SEQUENCE, [3], TBSCertificate SEQUENCE) are rewritten with
 * their new lengths in DER's minimal form. Anything else (a header that is not minimal DER, an
 * indefinite length, the extension missing, present twice, or the only one) is refused with a
 * reason, and callers then take the usual way.
 *
 * Thread safety: pure functions.
 */
#ifndef FULCRUM_CT_TBS_DER_H
#define FULCRUM_CT_TBS_DER_H

#include <openssl/x509.h>
#include <stddef.h>

/* The DER TBSCertificate of cert as it is encoded (i2d_X509; for a parsed certificate these are
 * the bytes its signature covers). malloc'd, or NULL. */
unsigned char *ct_tbs_der(X509 *cert, size_t *len);

/* tbs (a DER TBSCertificate) without its one extension whose extnID is `nid`: malloc'd, or NULL
 * with a reason in why (see above). */
unsigned char *ct_tbs_der_without_ext(const unsigned char *tbs, size_t tbs_len, int nid,
                                      size_t *out_len, char *why, size_t whylen);

/* tbs with its one extension whose extnID is `nid` replaced, in place, by ext (the DER of an
 * Extension): malloc'd, or NULL with a reason. The final certificate's TBS is its
 * precertificate's with the poison replaced by the SCT list (RFC 6962 §3.1): made this way, it
 * is not encoded again from the certificate's fields. */
unsigned char *ct_tbs_der_replace_ext(const unsigned char *tbs, size_t tbs_len, int nid,
                                      const unsigned char *ext, size_t ext_len, size_t *out_len,
                                      char *why, size_t whylen);

#endif
