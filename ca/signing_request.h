/*
 * ca/signing_request.h: the JSON bodies of POST /api/v2/signingCert and /api/v1/signingCert,
 * parsed with grpc-gateway/protojson's leniency (fulcio-compat.md §1.2, §1.3, §1.6):
 * lowerCamelCase or proto snake_case names, unknown fields ignored, null = unset, `bytes` fields
 * in standard or URL-safe base64, padded or not, enums by name or number.
 */
#ifndef FULCRUM_CA_SIGNING_REQUEST_H
#define FULCRUM_CA_SIGNING_REQUEST_H

#include <stddef.h>

typedef struct signing_request {
    char *token;                 /* credentials.oidcIdentityToken, or NULL */
    unsigned char *public_key;   /* publicKey.content (v2: the string; v1: decoded bytes) */
    size_t public_key_len;
    unsigned char *proof;        /* proofOfPossession / signedEmailAddress, decoded */
    size_t proof_len;
    unsigned char *csr;          /* certificateSigningRequest, decoded (PEM text) */
    size_t csr_len;
    int has_public_key_request;  /* the publicKeyRequest member was present (v2) */
} signing_request;

/* Returns 0, or -1 with a protojson-style reason (syntax error, wrong type, bad base64, two
 * members of the key oneof). All strings are owned by the request. */
int signing_request_parse_v2(const char *body, size_t len, signing_request *out, char *why,
                             size_t whylen);
int signing_request_parse_v1(const char *body, size_t len, signing_request *out, char *why,
                             size_t whylen);

void signing_request_clear(signing_request *r);

#endif
