/*
 * ca/fulcio_oid.h: Fulcio's certificate extension OIDs, 1.3.6.1.4.1.57264.1.n
 * (fulcio-compat.md §4.3), made once and compared by their DER bytes, so that building and
 * checking a certificate neither parses nor prints dotted OID text.
 */
#ifndef FULCRUM_CA_FULCIO_OID_H
#define FULCRUM_CA_FULCIO_OID_H

#include <openssl/asn1.h>

#define FULCIO_OID_PREFIX "1.3.6.1.4.1.57264.1."

/* The OID 1.3.6.1.4.1.57264.1.n for 1 <= n <= 127, owned by this module (never free it); NULL
 * for any other n or when memory is short. Thread-safe. */
const ASN1_OBJECT *fulcio_oid(int n);

/* n when `o` is 1.3.6.1.4.1.57264.1.n with 1 <= n <= 127, else 0. */
int fulcio_oid_arc(const ASN1_OBJECT *o);

#endif
