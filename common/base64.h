/*
 * common/base64.h: base64 as grpc-gateway/protojson accepts it.
 *
 * Decoding accepts the standard and the URL-safe alphabet, padded or not (protojson's
 * leniency for `bytes` fields). Encoding writes standard, padded base64.
 * The decoding itself is OpenSSL's EVP_DecodeBlock; this file only normalises alphabet and padding.
 */
#ifndef FULCRUM_COMMON_BASE64_H
#define FULCRUM_COMMON_BASE64_H

#include <stddef.h>

/* Decodes `in` (len bytes) into a new malloc'd buffer (NUL-terminated for convenience, the NUL not
 * counted in *out_len). Returns NULL on bad input (characters outside the alphabets, impossible
 * length, mixed alphabets are accepted). */
unsigned char *b64_decode_any(const char *in, size_t len, size_t *out_len);

/* Strict base64url without padding (JWT segments): NULL on '+', '/', '=' or other bad input. */
unsigned char *b64url_decode_nopad(const char *in, size_t len, size_t *out_len);

/* Standard padded base64 of `in`, malloc'd and NUL-terminated. */
char *b64_encode(const unsigned char *in, size_t len);

/* base64url without padding, malloc'd and NUL-terminated. */
char *b64url_encode(const unsigned char *in, size_t len);

#endif
