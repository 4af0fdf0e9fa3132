/*
 * oidc/go_template_lex.c: the lexer of the Go text/template subset (see go_template.h).
 *
 * Text is emitted already trimmed by the "{{- " / " -}}" markers and comments are dropped;
 * inside actions the tokens keep their byte offset and length in the source, which the parser
 * and executor use for Go's error positions and contexts.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oidc/go_template_internal.h"

size_t gt_line_of(const char *src, size_t pos)
{
    size_t line = 1;
    for (size_t i = 0; i < pos; i++)
        line += src[i] == '\n';
    return line;
}

static int lex_fail(struct lexer *l, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A lexing error: kept for gt_lex(), which reports it Go's way. */
static int lex_fail(struct lexer *l, size_t pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->reason, sizeof l->reason, fmt, ap);
    va_end(ap);
    l->err_pos = pos;
    return -1;
}

static int emit(struct lexer *l, enum tok_kind k, size_t pos, size_t len)
{
    if (l->ntoks == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        struct token *t = realloc(l->toks, cap * sizeof *t);
        if (!t) {
            l->oom = 1;
            return -1;
        }
        l->toks = t;
        l->cap = cap;
    }
    l->toks[l->ntoks++] = (struct token){k, pos, len};
    return 0;
}

int gt_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_alnum_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* At a right delimiter: 2 for "}}", 4 for " -}}" (with trim), 0 otherwise. */
static size_t at_right_delim(const struct lexer *l, size_t p, int *trim)
{
    if (p + 4 <= l->n && gt_is_space(l->src[p]) && l->src[p + 1] == '-' && l->src[p + 2] == '}' &&
        l->src[p + 3] == '}') {
        *trim = 1;
        return 4;
    }
    if (p + 2 <= l->n && l->src[p] == '}' && l->src[p + 1] == '}') {
        *trim = 0;
        return 2;
    }
    return 0;
}

/* Go's atTerminator: what may follow a field, variable or identifier. */
static int at_terminator(const struct lexer *l, size_t p)
{
    if (p >= l->n)
        return 1;
    char c = l->src[p];
    if (gt_is_space(c) || c == '.' || c == ',' || c == '|' || c == ':' || c == ')' || c == '(')
        return 1;
    int trim;
    return at_right_delim(l, p, &trim) != 0;
}

static int bad_char(struct lexer *l, size_t p, const char *what)
{
    unsigned char c = (unsigned char)l->src[p];
    if (c >= 0x20 && c < 0x7f)
        return lex_fail(l, p, "%s U+%04X '%c'", what, c, c);
    return lex_fail(l, p, "%s U+%04X", what, c);
}

/* One action, from just after "{{" (and its trim marker) to just after the right delimiter.
 * Returns the position after it, or (size_t)-1; *rtrim tells whether " -}}" closed it. */
static size_t lex_action(struct lexer *l, size_t p, int *rtrim)
{
    for (;;) {
        int trim;
        size_t d = at_right_delim(l, p, &trim);
        if (d) {
            if (emit(l, TK_RDELIM, p, d) != 0)
                return (size_t)-1;
            *rtrim = trim;
            return p + d;
        }
        if (p >= l->n) {
            lex_fail(l, p, "unclosed action");
            return (size_t)-1;
        }
        char c = l->src[p];
        size_t start = p;
        enum tok_kind k;
        if (gt_is_space(c)) {
            while (p < l->n && gt_is_space(l->src[p]) && !at_right_delim(l, p, &trim))
                p++;
            continue;
        } else if (c == '|') {
            k = TK_PIPE, p++;
        } else if (c == '(') {
            k = TK_LPAREN, p++;
        } else if (c == ')') {
            k = TK_RPAREN, p++;
        } else if (c == '"') {
            for (p++;; p++) {
                if (p >= l->n || l->src[p] == '\n') {
                    lex_fail(l, start, "unterminated quoted string");
                    return (size_t)-1;
                }
                if (l->src[p] == '\\' && p + 1 < l->n && l->src[p + 1] != '\n') {
                    p++;
                    continue;
                }
                if (l->src[p] == '"')
                    break;
            }
            k = TK_STRING, p++;
        } else if (c == '`') {
            const char *end = memchr(l->src + p + 1, '`', l->n - p - 1);
            if (!end) {
                lex_fail(l, start, "unterminated raw quoted string");
                return (size_t)-1;
            }
            k = TK_RAW, p = (size_t)(end - l->src) + 1;
        } else if (c == '.' && p + 1 < l->n && is_digit(l->src[p + 1])) {
            lex_fail(l, p, "floating-point numbers are not supported");
            return (size_t)-1;
        } else if (c == '.' || c == '$') {
            p++;
            if (c == '$')
                while (p < l->n && is_alnum_(l->src[p]))
                    p++;
            if (c == '.' && at_terminator(l, p) && !(p < l->n && l->src[p] == '.')) {
                k = TK_DOT;
            } else {
                if (c == '.')
                    while (p < l->n && is_alnum_(l->src[p]))
                        p++;
                /* chained fields: .a.b / $.a */
                while (p + 1 < l->n && l->src[p] == '.' && is_alnum_(l->src[p + 1]))
                    for (p++; p < l->n && is_alnum_(l->src[p]);)
                        p++;
                if (!at_terminator(l, p)) {
                    bad_char(l, p, "bad character");
                    return (size_t)-1;
                }
                k = c == '.' ? TK_FIELD : TK_VAR;
            }
        } else if (is_digit(c) ||
                   ((c == '-' || c == '+') && p + 1 < l->n && is_digit(l->src[p + 1]))) {
            for (p++; p < l->n && (is_alnum_(l->src[p]) || l->src[p] == '.'); p++)
                ;
            k = TK_NUMBER;
        } else if (is_alnum_(c)) {
            while (p < l->n && is_alnum_(l->src[p]))
                p++;
            if (!at_terminator(l, p)) {
                bad_char(l, p, "bad character");
                return (size_t)-1;
            }
            size_t n = p - start;
            const char *w = l->src + start;
            static const char *const keywords[] = {"if",    "else",     "end",    "range",
                                                   "with",  "template", "define", "block",
                                                   "break", "continue"};
            k = TK_IDENT;
            for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
                if (strlen(keywords[i]) == n && memcmp(w, keywords[i], n) == 0)
                    k = TK_KEYWORD;
            if ((n == 4 && memcmp(w, "true", 4) == 0) || (n == 5 && memcmp(w, "false", 5) == 0))
                k = TK_BOOL;
            else if (n == 3 && memcmp(w, "nil", 3) == 0)
                k = TK_NIL;
        } else if (c == ':' || c == '=') {
            lex_fail(l, p, "variable declarations are not supported");
            return (size_t)-1;
        } else if ((unsigned char)c > 0x20 && (unsigned char)c < 0x7f) {
            k = TK_CHAR, p++;
        } else {
            bad_char(l, p, "unrecognized character in action:");
            return (size_t)-1;
        }
        if (emit(l, k, start, p - start) != 0)
            return (size_t)-1;
    }
}

static int lex_tokens(struct lexer *l)
{
    size_t p = 0;
    int ltrim_next = 0; /* the previous action ended with " -}}" */
    for (;;) {
        const char *open = NULL;
        for (size_t i = p; i + 1 < l->n; i++)
            if (l->src[i] == '{' && l->src[i + 1] == '{') {
                open = l->src + i;
                break;
            }
        size_t end = open ? (size_t)(open - l->src) : l->n;
        size_t ts = p, te = end;
        int ltrim =
            open && end + 3 < l->n && l->src[end + 2] == '-' && gt_is_space(l->src[end + 3]);
        if (ltrim_next)
            while (ts < te && gt_is_space(l->src[ts]))
                ts++;
        if (ltrim)
            while (te > ts && gt_is_space(l->src[te - 1]))
                te--;
        if (te > ts && emit(l, TK_TEXT, ts, te - ts) != 0)
            return -1;
        if (!open)
            return emit(l, TK_EOF, l->n, 0);
        size_t q = end + 2 + (ltrim ? 2 : 0);
        int rtrim = 0;
        if (q + 1 < l->n && l->src[q] == '/' && l->src[q + 1] == '*') {
            const char *close = NULL;
            for (size_t i = q + 2; i + 1 < l->n; i++)
                if (l->src[i] == '*' && l->src[i + 1] == '/') {
                    close = l->src + i;
                    break;
                }
            if (!close)
                return lex_fail(l, end, "unclosed comment");
            size_t after = (size_t)(close - l->src) + 2;
            size_t d = at_right_delim(l, after, &rtrim);
            if (!d)
                return lex_fail(l, end, "comment ends before closing delimiter");
            p = after + d;
        } else {
            if (emit(l, TK_LDELIM, end, 2) != 0)
                return -1;
            l->action_start = end;
            p = lex_action(l, q, &rtrim);
            if (p == (size_t)-1)
                return -1;
            l->action_start = (size_t)-1;
        }
        ltrim_next = rtrim;
    }
}

/* Go's lexer runs lazily ahead of the parser, so a syntax error the parser meets first is the
 * one reported. Likewise here a lexing error becomes a TK_ERROR token (then EOF) where it
 * happened, and the parser reports errmsg only if it gets that far. -1 = out of memory. */
int gt_lex(struct lexer *l)
{
    l->action_start = (size_t)-1;
    if (lex_tokens(l) == 0)
        return 0;
    if (l->oom)
        return -1;
    /* Go: "template: :L: <error>", and when the action began on an earlier line
     * " in action started at :S" (" started at :S" after "... action") */
    size_t line = gt_line_of(l->src, l->err_pos);
    char extra[64] = "";
    if (l->action_start != (size_t)-1) {
        size_t start = gt_line_of(l->src, l->action_start);
        size_t rl = strlen(l->reason);
        int ends_action = rl >= 7 && strcmp(l->reason + rl - 7, " action") == 0;
        if (start != line)
            snprintf(extra, sizeof extra, "%s started at :%zu", ends_action ? "" : " in action",
                     start);
    }
    snprintf(l->errmsg, sizeof l->errmsg, "template: :%zu: %s%s", line, l->reason, extra);
    size_t pos = l->ntoks ? l->toks[l->ntoks - 1].pos : 0;
    if (emit(l, TK_ERROR, pos, 0) != 0 || emit(l, TK_EOF, l->n, 0) != 0)
        return -1;
    return 0;
}
