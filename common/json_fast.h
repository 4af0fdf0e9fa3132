/*
 * common/json_fast.h: a fast path for parsing the JSON that requests carry.
 *
 * jansson's reader goes through its input one character at a time behind a stream
 * abstraction: about 150,000 instructions for a 2 KB signing request, more than the whole
 * certificate profile. Requests and token segments are plain: objects, arrays, ASCII strings
 * with a few escapes, small integers, true/false/null. json_fast_try parses exactly that and
 * declines everything else (invalid or merely unusual: \u escapes, bytes >= 0x80, fractions,
 * exponents, long integers, duplicate keys, deep nesting), so that jansson decides those.
 *
 * The contract, checked by the fuzz target fuzz_json_fast: whatever json_fast_try accepts,
 * jansson accepts too (with JSON_REJECT_DUPLICATES) and parses to an equal value.
 */
#ifndef FULCRUM_COMMON_JSON_FAST_H
#define FULCRUM_COMMON_JSON_FAST_H

#include <jansson.h>
#include <stddef.h>

/* The fast path alone: the value (a new reference; the top level must be an object or an
 * array, as jansson requires), or NULL when it declines. */
json_t *json_fast_try(const char *buf, size_t len);

/* Same result as json_loadb(buf, len, JSON_REJECT_DUPLICATES, err), errors included: the fast
 * path, then jansson for what it declines. */
json_t *json_fast_loadb(const char *buf, size_t len, json_error_t *err);

#endif
