/*
 * common/strbuf.h: a growable NUL-terminated string (for the Go-compatible formatters
 * go_strconv, go_url, go_template and ci_template, and for common/json_text and
 * common/metrics).
 *
 * Usage: struct strbuf b = {0}; sb_puts(&b, ...); char *s = sb_finish(&b);
 * An allocation failure is sticky: later appends do nothing and sb_finish returns NULL (and
 * frees). sb_finish on an empty buffer returns "" (malloc'd). Not shared between threads.
 */
#ifndef FULCRUM_COMMON_STRBUF_H
#define FULCRUM_COMMON_STRBUF_H

#include <stddef.h>

struct strbuf {
    char *p;
    size_t len, cap;
    int oom;
};

void sb_putn(struct strbuf *b, const char *s, size_t n);
void sb_puts(struct strbuf *b, const char *s);
void sb_putc(struct strbuf *b, char c);
void sb_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the string (caller frees) and resets b; NULL when an allocation failed. */
char *sb_finish(struct strbuf *b);
/* Frees without returning anything. */
void sb_free(struct strbuf *b);

#endif
