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

/* Bytes of s as a JSON string literal, the two quotes included. */
size_t json_text_quoted_len(const char *s);

/* Writes s as a JSON string literal (with its quotes, no NUL) at dst, which has room for
 * json_text_quoted_len(s) bytes; returns the end of what it wrote. */
char *json_text_put_quoted(char *dst, const char *s);

#endif
