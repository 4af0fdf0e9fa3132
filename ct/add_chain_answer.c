/*
 * ct/add_chain_answer.c: AddChainResponse JSON -> TLS-serialised SCT (ct-notes.md §1.4):
 * 00 (v1) | id (32) | timestamp (8, big-endian) | extensions (2-byte length + bytes) |
 * the DigitallySigned exactly as the log gave it.
 */
#include "ct/add_chain_answer.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"

/* The base64 field `name` decoded (malloc'd), or NULL when it is not a base64 string. An absent
 * field that may be absent decodes to no bytes. */
static unsigned char *b64_field(json_t *o, const char *name, size_t *len, int may_be_absent)
{
    json_t *v = json_object_get(o, name);
    if (!v && may_be_absent) {
        *len = 0;
        return calloc(1, 1);
    }
    if (!json_is_string(v))
        return NULL;
    return b64_decode_any(json_string_value(v), json_string_length(v), len);
}

unsigned char *ct_add_chain_answer_parse(const char *text, size_t tlen, size_t *out_len,
                                         char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *j = json_loadb(text, tlen, 0, &jerr);
    unsigned char *id = NULL, *ext = NULL, *sig = NULL, *out = NULL;
    size_t idlen = 0, extlen = 0, siglen = 0;
    if (!json_is_object(j)) {
        snprintf(why, whylen, "the answer is not a JSON object");
        goto done;
    }
    json_t *ver = json_object_get(j, "sct_version"), *ts = json_object_get(j, "timestamp");
    if (!json_is_integer(ver) || json_integer_value(ver) != 0) {
        snprintf(why, whylen, "sct_version is not 0");
        goto done;
    }
    if (!json_is_integer(ts) || json_integer_value(ts) < 0) {
        snprintf(why, whylen, "timestamp is not a non-negative integer");
        goto done;
    }
    id = b64_field(j, "id", &idlen, 0);
    ext = b64_field(j, "extensions", &extlen, 1);
    sig = b64_field(j, "signature", &siglen, 0);
    if (!id || idlen != 32) {
        snprintf(why, whylen, "id is not the base64 of 32 bytes");
        goto done;
    }
    if (!ext || extlen > 0xffff) {
        snprintf(why, whylen, "extensions is not base64 of at most 65535 bytes");
        goto done;
    }
    if (!sig || siglen < 4) {
        snprintf(why, whylen, "signature is not the base64 of a DigitallySigned");
        goto done;
    }
    size_t n = 1 + 32 + 8 + 2 + extlen + siglen;
    out = malloc(n);
    if (!out) {
        snprintf(why, whylen, "out of memory");
        goto done;
    }
    uint64_t t = (uint64_t)json_integer_value(ts);
    size_t o = 0;
    out[o++] = 0; /* v1 */
    memcpy(out + o, id, 32);
    o += 32;
    for (int i = 7; i >= 0; i--)
        out[o++] = (unsigned char)(t >> (8 * i));
    out[o++] = (unsigned char)(extlen >> 8);
    out[o++] = (unsigned char)extlen;
    memcpy(out + o, ext, extlen);
    o += extlen;
    memcpy(out + o, sig, siglen);
    *out_len = n;
done:
    free(id);
    free(ext);
    free(sig);
    json_decref(j);
    return out;
}
