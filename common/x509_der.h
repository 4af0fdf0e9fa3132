/*
 * common/x509_der.h: a certificate's DER kept on its X509 object.
 *
 * OpenSSL re-encodes a certificate built in memory at every i2d_X509 (only a parsed one keeps its
 * encoding), and an issuance needs the bytes of the precertificate and of the certificate several
 * times (the log's leaf and chain, the SCT check, the PEM answer). ca/issue.c stores the DER it
 * has just checked against the signed TBS; the users below take it from there.
 *
 * Contract: whoever changes a certificate that may carry a stored DER clears it first
 * (x509_der_clear; ca/issue.c is the only place that changes certificates after signing). The
 * stored bytes are freed with the X509 object; copies made by X509_dup carry none.
 *
 * Thread safety: the functions are safe from any thread; one X509 object must not be changed
 * (set, clear) while another thread reads it, as for any X509.
 */
#ifndef FULCRUM_COMMON_X509_DER_H
#define FULCRUM_COMMON_X509_DER_H

#include <openssl/x509.h>
#include <stddef.h>

/* Stores a copy of der (which must be x's encoding). 0 or -1 (out of memory: nothing stored). */
int x509_der_set(X509 *x, const unsigned char *der, size_t len);

/* Forgets the stored DER (if any). */
void x509_der_clear(X509 *x);

/* The stored DER (owned by x; valid until x is changed or freed), or NULL. */
const unsigned char *x509_der_get(X509 *x, size_t *len);

/* As i2d_X509(x, &out) with out == NULL: *out is OPENSSL_malloc'd; the length, or <= 0. Copies
 * the stored DER when there is one. */
int x509_der_i2d(X509 *x, unsigned char **out);

#endif
