/*
 * common/json_text.h: JSON string literals written straight into a buffer, for answers whose
 * shape is fixed (ca/api_signing.c) and would otherwise be built as a jansson tree only to be
 * dumped. The escaping is jansson's json_dumps without flags: '"', '\\' and the control
 * characters (as \b \f \n \r \t or \u00XX, upper-case hex); every other byte, '/' and UTF-8
 * included, as is.
 * The caller supplies valid UTF-8.
 */
#ifndef FULCRUM_COMMON_JSON_TEXT_H
#define FULCRUM_COMMON_JSON_TEXT_H

#include <stddef.h>

#include "common/strbuf.h"

/* Bytes of s as a JSON string literal, the two quotes included. */
size_t json_text_quoted_len(const char *s);

/* Writes s as a JSON string literal (with its quotes, no NUL) at dst, which has room for
 * json_text_quoted_len(s) bytes; returns the end of what it wrote. */
char *json_text_put_quoted(char *dst, const char *s);

/* 1 when s is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF),
 * as jansson's json_string requires; else 0. */
int json_text_utf8_valid(const char *s);

/* Replaces, in place, every byte of s that is not part of a well-formed UTF-8 sequence with '?',
 * so that the text can go into a JSON string (an error message quoting a client's bytes, or cut
 * inside a character by snprintf). */
void json_text_utf8_scrub(char *s);

/* A flat JSON object, members in call order, byte for byte as json_dumps with JSON_COMPACT |
 * JSON_PRESERVE_ORDER writes the same jansson object: {"k":"v","n":1,"r":0.5,"z":null}. The
 * buffer grows as needed; a failed allocation is remembered and makes json_text_obj_finish
 * return NULL. */
typedef struct json_text_obj {
    struct strbuf sb;
    int members, failed;
} json_text_obj;

void json_text_obj_init(json_text_obj *o);
/* value NULL: null. A value that is not well-formed UTF-8 fails the object (json_string refuses
 * it too). */
void json_text_obj_str(json_text_obj *o, const char *key, const char *value);
void json_text_obj_int(json_text_obj *o, const char *key, long long value);
/* As json_real with JSON_REAL_PRECISION(precision): "%.*g", then ".0" when the text has neither
 * '.' nor 'e', and no '+' or leading zeros in the exponent. Not finite: null (jansson would
 * refuse the value). */
void json_text_obj_real(json_text_obj *o, const char *key, double value, int precision);
/* The text (NUL-terminated, the caller frees it), or NULL when memory ran short. */
char *json_text_obj_finish(json_text_obj *o);

#endif
