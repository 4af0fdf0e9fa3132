/*
 * oidc/go_strconv.h: the few Go formatting rules Fulcio's messages and values depend on.
 *
 * Fulcio builds error texts with %q (strconv.Quote) and turns numeric claims into strings with
 * strconv.FormatFloat / fmt's %v; these reproduce those outputs byte for byte so that the texts
 * returned to clients and the values written into certificates are the same.
 * All results are malloc'd NUL-terminated strings owned by the caller (NULL = out of memory).
 */
#ifndef FULCRUM_OIDC_GO_STRCONV_H
#define FULCRUM_OIDC_GO_STRCONV_H

#include <stddef.h>

/* strconv.Quote: "..." with \a \b \f \n \r \t \v \\ \" escapes, other ASCII control bytes and
 * invalid UTF-8 bytes as \xHH, U+007F..U+009F and U+FFFE/U+FFFF... as \u/\U; other valid UTF-8
 * is copied. `len` bytes of `s` are quoted (they may contain NUL). */
char *go_quote(const char *s, size_t len);

/* strconv.FormatFloat(v, 'f', -1, 64): shortest round-trip digits, never an exponent
 * ("1000000", "0.00001", "1.5"). NaN/Inf as Go: "NaN", "+Inf", "-Inf". */
char *go_format_float_f(double v);

/* fmt's %v for a float64 (strconv 'g', shortest digits): exponent form when the decimal
 * exponent is < -4 or >= 6, as Go prints it ("1e+06", "123456", "1.5e-05", "0.0001"). */
char *go_format_float_v(double v);

/* JSON string escaping as Go's encoding/json does it (HTML-safe: <, >, & as \u003c...; U+2028
 * and U+2029 escaped), with the surrounding quotes. */
char *go_json_quote(const char *s);

#endif
