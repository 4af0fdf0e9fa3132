/*
 * oidc/go_template_parse.c: the parser of the Go text/template subset (see go_template.h).
 *
 * Builds a tree of nodes that keep their byte offset (Go's error positions) and source text
 * (Go's error contexts). Messages follow Go's parse.Tree ("template: :<line>: ...").
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oidc/go_strconv.h"
#include "oidc/go_template_internal.h"

#define MAX_DEPTH 64

static int parse_fail(const char *src, size_t pos, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* "template: :<line>: <reason>" */
static int parse_fail(const char *src, size_t pos, char *why, size_t whylen, const char *fmt, ...)
{
    char reason[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (why && whylen)
        snprintf(why, whylen, "template: :%zu: %s", gt_line_of(src, pos), reason);
    return -1;
}

struct parser {
    const char *src;
    const struct token *toks;
    size_t i;
    char *why; /* NULL once the lexer's error was reported */
    size_t whylen;
    int depth;
    const char *lex_err; /* the message a TK_ERROR token stands for */
};

void gt_node_free(struct node *nd)
{
    if (!nd)
        return;
    for (size_t i = 0; i < nd->nkids; i++)
        gt_node_free(nd->kids[i]);
    free(nd->kids);
    free(nd->str);
    free(nd);
}

static struct node *node_new(struct parser *ps, enum node_kind k, size_t pos)
{
    struct node *nd = calloc(1, sizeof *nd);
    if (!nd)
        parse_fail(ps->src, pos, ps->why, ps->whylen, "out of memory");
    else
        nd->k = k, nd->pos = pos;
    return nd;
}

/* Appends kid (which may be NULL for an absent else branch). Frees kid on failure. */
static int node_add(struct parser *ps, struct node *nd, struct node *kid)
{
    if (nd->nkids == nd->cap) {
        size_t cap = nd->cap ? nd->cap * 2 : 4;
        struct node **k = realloc(nd->kids, cap * sizeof *k);
        if (!k) {
            gt_node_free(kid);
            return parse_fail(ps->src, nd->pos, ps->why, ps->whylen, "out of memory");
        }
        nd->kids = k;
        nd->cap = cap;
    }
    nd->kids[nd->nkids++] = kid;
    return 0;
}

/* Reaching a TK_ERROR reports the lexer's message; later parse errors are not written. */
static void check_lex_error(struct parser *ps, const struct token *t)
{
    if (t->k == TK_ERROR && ps->why) {
        snprintf(ps->why, ps->whylen, "%s", ps->lex_err);
        ps->why = NULL;
    }
}

static const struct token *peek(struct parser *ps)
{
    check_lex_error(ps, &ps->toks[ps->i]);
    return &ps->toks[ps->i];
}

static const struct token *next(struct parser *ps)
{
    const struct token *t = &ps->toks[ps->i];
    check_lex_error(ps, t);
    if (t->k != TK_EOF)
        ps->i++;
    return t;
}

/* How Go's item.String() shows a token in messages. */
static void tok_desc(const struct parser *ps, const struct token *t, char *buf, size_t len)
{
    switch (t->k) {
    case TK_EOF: snprintf(buf, len, "EOF"); return;
    case TK_RDELIM: snprintf(buf, len, "\"}}\""); return;
    case TK_LDELIM: snprintf(buf, len, "\"{{\""); return;
    case TK_KEYWORD:
    case TK_DOT:
    case TK_NIL: snprintf(buf, len, "<%.*s>", (int)t->len, ps->src + t->pos); return;
    default: {
        size_t n = t->len; /* Go's lexer yields .a.b / $.a as separate items: show the first */
        const char *dot = (t->k == TK_FIELD || t->k == TK_VAR) && n > 1
                              ? memchr(ps->src + t->pos + 1, '.', n - 1)
                              : NULL;
        if (dot)
            n = (size_t)(dot - (ps->src + t->pos));
        char *q = go_quote(ps->src + t->pos, n);
        snprintf(buf, len, "%s", q ? q : "?");
        free(q);
    }
    }
}

static int is_keyword(const struct parser *ps, const struct token *t, const char *kw)
{
    return t->k == TK_KEYWORD && t->len == strlen(kw) && memcmp(ps->src + t->pos, kw, t->len) == 0;
}

static const char *const functions[] = {"and", "eq", "index", "len", "ne", "not", "or"};

static int known_function(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++)
        if (strlen(functions[i]) == n && memcmp(functions[i], s, n) == 0)
            return 1;
    return 0;
}

/* strconv.Unquote for a "..." literal. Returns 0 and a malloc'd value, or -1. */
static int unquote(const char *s, size_t n, char **out, size_t *outlen)
{
    char *o = malloc(n + 1);
    if (!o)
        return -1;
    size_t w = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c != '\\') {
            o[w++] = (char)c;
            continue;
        }
        i++;
        c = (unsigned char)s[i];
        unsigned long v = 0;
        size_t digits = 0;
        switch (c) {
        case 'a': o[w++] = '\a'; continue;
        case 'b': o[w++] = '\b'; continue;
        case 'f': o[w++] = '\f'; continue;
        case 'n': o[w++] = '\n'; continue;
        case 'r': o[w++] = '\r'; continue;
        case 't': o[w++] = '\t'; continue;
        case 'v': o[w++] = '\v'; continue;
        case '\\': o[w++] = '\\'; continue;
        case '"': o[w++] = '"'; continue;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (c >= '0' && c <= '7') {
                if (i + 2 >= n - 1)
                    goto bad;
                for (size_t k = 0; k < 3; k++) {
                    char d = s[i + k];
                    if (d < '0' || d > '7')
                        goto bad;
                    v = v * 8 + (unsigned long)(d - '0');
                }
                if (v > 255)
                    goto bad;
                o[w++] = (char)v;
                i += 2;
                continue;
            }
            goto bad;
        }
        if (i + digits >= n)
            goto bad;
        for (size_t k = 1; k <= digits; k++) {
            char d = s[i + k];
            int h = (d >= '0' && d <= '9')   ? d - '0'
                    : (d >= 'a' && d <= 'f') ? d - 'a' + 10
                    : (d >= 'A' && d <= 'F') ? d - 'A' + 10
                                             : -1;
            if (h < 0)
                goto bad;
            v = v * 16 + (unsigned long)h;
        }
        i += digits;
        if (c == 'x') {
            o[w++] = (char)v;
        } else {
            if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
                goto bad;
            if (v < 0x80) {
                o[w++] = (char)v;
            } else if (v < 0x800) {
                o[w++] = (char)(0xc0 | v >> 6);
                o[w++] = (char)(0x80 | (v & 0x3f));
            } else if (v < 0x10000) {
                o[w++] = (char)(0xe0 | v >> 12);
                o[w++] = (char)(0x80 | ((v >> 6) & 0x3f));
                o[w++] = (char)(0x80 | (v & 0x3f));
            } else {
                o[w++] = (char)(0xf0 | v >> 18);
                o[w++] = (char)(0x80 | ((v >> 12) & 0x3f));
                o[w++] = (char)(0x80 | ((v >> 6) & 0x3f));
                o[w++] = (char)(0x80 | (v & 0x3f));
            }
        }
    }
    o[w] = '\0';
    *out = o;
    *outlen = w;
    return 0;
bad:
    free(o);
    return -1;
}

static struct node *parse_pipeline(struct parser *ps, const char *context, enum tok_kind end);

static struct node *parse_operand(struct parser *ps)
{
    const struct token *t = next(ps);
    struct node *nd = NULL;
    char desc[64];
    switch (t->k) {
    case TK_FIELD: nd = node_new(ps, ND_FIELD, t->pos); break;
    case TK_DOT: nd = node_new(ps, ND_DOT, t->pos); break;
    case TK_NIL: nd = node_new(ps, ND_NIL, t->pos); break;
    case TK_VAR:
        if (t->len > 1 && ps->src[t->pos + 1] != '.') {
            size_t n = strcspn(ps->src + t->pos, ".");
            if (n > t->len)
                n = t->len;
            parse_fail(ps->src, t->pos, ps->why, ps->whylen, "undefined variable \"%.*s\"", (int)n,
                       ps->src + t->pos);
            return NULL;
        }
        nd = node_new(ps, ND_VAR, t->pos);
        break;
    case TK_BOOL:
        nd = node_new(ps, ND_BOOL, t->pos);
        if (nd)
            nd->b = ps->src[t->pos] == 't';
        break;
    case TK_NUMBER: {
        char buf[32];
        char *endp;
        if (t->len >= sizeof buf) {
            parse_fail(ps->src, t->pos, ps->why, ps->whylen, "bad number syntax: \"%.*s\"",
                       (int)t->len, ps->src + t->pos);
            return NULL;
        }
        memcpy(buf, ps->src + t->pos, t->len);
        buf[t->len] = '\0';
        long long v = strtoll(buf, &endp, 10);
        if (*endp) {
            parse_fail(ps->src, t->pos, ps->why, ps->whylen,
                       "only decimal integers are supported: \"%s\"", buf);
            return NULL;
        }
        nd = node_new(ps, ND_NUMBER, t->pos);
        if (nd)
            nd->num = v;
        break;
    }
    case TK_STRING:
    case TK_RAW:
        nd = node_new(ps, ND_STRING, t->pos);
        if (!nd)
            return NULL;
        if (t->k == TK_RAW) {
            nd->strlen_ = t->len - 2;
            nd->str = malloc(t->len - 1);
            if (nd->str) {
                memcpy(nd->str, ps->src + t->pos + 1, t->len - 2);
                nd->str[t->len - 2] = '\0';
            }
        } else if (unquote(ps->src + t->pos, t->len, &nd->str, &nd->strlen_) != 0) {
            gt_node_free(nd);
            parse_fail(ps->src, t->pos, ps->why, ps->whylen, "invalid syntax");
            return NULL;
        }
        if (!nd->str) {
            gt_node_free(nd);
            parse_fail(ps->src, t->pos, ps->why, ps->whylen, "out of memory");
            return NULL;
        }
        break;
    case TK_IDENT:
        if (!known_function(ps->src + t->pos, t->len)) {
            parse_fail(ps->src, t->pos, ps->why, ps->whylen, "function \"%.*s\" not defined",
                       (int)t->len, ps->src + t->pos);
            return NULL;
        }
        nd = node_new(ps, ND_IDENT, t->pos);
        break;
    case TK_LPAREN:
        if (++ps->depth > MAX_DEPTH) {
            parse_fail(ps->src, t->pos, ps->why, ps->whylen, "parentheses nested too deeply");
            return NULL;
        }
        nd = parse_pipeline(ps, "parenthesized pipeline", TK_RPAREN);
        ps->depth--;
        if (!nd)
            return NULL;
        if (peek(ps)->k != TK_RPAREN) {
            gt_node_free(nd);
            parse_fail(ps->src, peek(ps)->pos, ps->why, ps->whylen, "unclosed left paren");
            return NULL;
        }
        next(ps);
        return nd;
    default:
        tok_desc(ps, t, desc, sizeof desc);
        parse_fail(ps->src, t->pos, ps->why, ps->whylen, "unexpected %s in operand", desc);
        return NULL;
    }
    if (nd) {
        nd->src = ps->src + t->pos;
        nd->srclen = t->len;
        /* Go builds .a.b (and $.a) from a chain whose position is that of the second token */
        const char *dot = t->len > 1 ? memchr(nd->src + 1, '.', t->len - 1) : NULL;
        if (dot && (nd->k == ND_FIELD || nd->k == ND_VAR))
            nd->pos = (size_t)(dot - ps->src);
    }
    return nd;
}

static struct node *parse_command(struct parser *ps)
{
    struct node *cmd = node_new(ps, ND_CMD, peek(ps)->pos);
    if (!cmd)
        return NULL;
    for (;;) {
        enum tok_kind k = peek(ps)->k;
        if (k == TK_RDELIM || k == TK_RPAREN || k == TK_PIPE || k == TK_EOF)
            break;
        struct node *op = parse_operand(ps);
        if (!op || node_add(ps, cmd, op) != 0) {
            gt_node_free(cmd);
            return NULL;
        }
        /* Go: operands are separated by spaces; a field right after a constant is an error */
        const struct token *t = peek(ps);
        if (t->k == TK_RDELIM || t->k == TK_RPAREN || t->k == TK_PIPE || t->k == TK_EOF ||
            gt_is_space(ps->src[t->pos - 1]))
            continue;
        if (t->k == TK_FIELD && (op->k == ND_STRING || op->k == ND_BOOL || op->k == ND_NUMBER ||
                                 op->k == ND_NIL || op->k == ND_DOT)) {
            char *q = op->k == ND_DOT ? go_quote(".", 1) : go_quote(op->src, op->srclen);
            parse_fail(ps->src, t->pos, ps->why, ps->whylen, "unexpected . after term %s",
                       q ? q : "");
            free(q);
        } else {
            char desc[64];
            tok_desc(ps, t, desc, sizeof desc);
            parse_fail(ps->src, t->pos, ps->why, ps->whylen, "unexpected %s in operand", desc);
        }
        gt_node_free(cmd);
        return NULL;
    }
    if (cmd->nkids == 0) {
        gt_node_free(cmd);
        parse_fail(ps->src, peek(ps)->pos, ps->why, ps->whylen, "missing value for command");
        return NULL;
    }
    return cmd;
}

/* Go's pipeline(): the tokens that may start a command. */
static int starts_command(enum tok_kind k)
{
    switch (k) {
    case TK_BOOL:
    case TK_DOT:
    case TK_FIELD:
    case TK_IDENT:
    case TK_NUMBER:
    case TK_NIL:
    case TK_RAW:
    case TK_STRING:
    case TK_VAR:
    case TK_LPAREN: return 1;
    default: return 0;
    }
}

/* Commands separated by '|', up to (not consuming) `end`. As Go: a trailing '|' is accepted,
 * and only the first command may start with a constant or dot. */
static struct node *parse_pipeline(struct parser *ps, const char *context, enum tok_kind end)
{
    struct node *pipe = node_new(ps, ND_PIPE, peek(ps)->pos);
    if (!pipe)
        return NULL;
    for (;;) {
        const struct token *t = peek(ps);
        if (t->k == end)
            break;
        if (!starts_command(t->k)) {
            char desc[64];
            tok_desc(ps, t, desc, sizeof desc);
            gt_node_free(pipe);
            parse_fail(ps->src, t->pos, ps->why, ps->whylen, "unexpected %s in %s", desc, context);
            return NULL;
        }
        struct node *cmd = parse_command(ps);
        if (!cmd || node_add(ps, pipe, cmd) != 0) {
            gt_node_free(pipe);
            return NULL;
        }
        t = peek(ps);
        if (t->k == TK_PIPE)
            next(ps);
        else if (t->k != end)
            continue; /* reported above on the next turn */
    }
    if (pipe->nkids == 0) {
        gt_node_free(pipe);
        parse_fail(ps->src, peek(ps)->pos, ps->why, ps->whylen, "missing value for %s", context);
        return NULL;
    }
    for (size_t i = 1; i < pipe->nkids; i++) {
        enum node_kind k = pipe->kids[i]->kids[0]->k;
        if (k == ND_BOOL || k == ND_DOT || k == ND_NIL || k == ND_NUMBER || k == ND_STRING) {
            gt_node_free(pipe);
            parse_fail(ps->src, peek(ps)->pos, ps->why, ps->whylen,
                       "non executable command in pipeline stage %zu", i + 1);
            return NULL;
        }
    }
    return pipe;
}

enum list_end { END_EOF, END_END, END_ELSE };

static struct node *parse_list(struct parser *ps, enum list_end *how);

static int expect_rdelim(struct parser *ps, const char *context)
{
    const struct token *t = next(ps);
    if (t->k == TK_RDELIM)
        return 0;
    char desc[64];
    tok_desc(ps, t, desc, sizeof desc);
    return parse_fail(ps->src, t->pos, ps->why, ps->whylen, "unexpected %s in %s", desc, context);
}

/* After "{{if" (or "{{else if"): pipeline "}}" list [else ...] "{{end}}". */
static struct node *parse_if(struct parser *ps, size_t pos)
{
    if (++ps->depth > MAX_DEPTH) {
        parse_fail(ps->src, pos, ps->why, ps->whylen, "if nested too deeply");
        return NULL;
    }
    struct node *nd = node_new(ps, ND_IF, pos);
    struct node *pipe = nd ? parse_pipeline(ps, "if", TK_RDELIM) : NULL;
    enum list_end how = END_EOF;
    struct node *list = NULL;
    if (!pipe || node_add(ps, nd, pipe) != 0 || expect_rdelim(ps, "if") != 0 ||
        !(list = parse_list(ps, &how)) || node_add(ps, nd, list) != 0)
        goto fail;
    if (how == END_EOF) {
        parse_fail(ps->src, peek(ps)->pos, ps->why, ps->whylen, "unexpected EOF");
        goto fail;
    }
    if (how == END_END) {
        if (node_add(ps, nd, NULL) != 0)
            goto fail;
        ps->depth--;
        return nd;
    }
    /* {{else ... */
    struct node *alt;
    const struct token *t = peek(ps);
    if (is_keyword(ps, t, "if")) {
        next(ps);
        struct node *inner = parse_if(ps, t->pos);
        alt = inner ? node_new(ps, ND_LIST, t->pos) : NULL;
        if (!alt || node_add(ps, alt, inner) != 0) {
            if (!alt)
                gt_node_free(inner);
            gt_node_free(alt);
            goto fail;
        }
    } else {
        enum list_end how2 = END_EOF;
        if (!(alt = parse_list(ps, &how2)))
            goto fail;
        if (how2 != END_END) {
            gt_node_free(alt);
            parse_fail(ps->src, peek(ps)->pos, ps->why, ps->whylen,
                       how2 == END_ELSE ? "expected end; found {{else}}" : "unexpected EOF");
            goto fail;
        }
    }
    if (node_add(ps, nd, alt) != 0)
        goto fail;
    ps->depth--;
    return nd;
fail:
    gt_node_free(nd);
    return NULL;
}

/* Nodes up to EOF, "{{end}}" (consumed) or "{{else" (consumed; the caller reads on). */
static struct node *parse_list(struct parser *ps, enum list_end *how)
{
    struct node *list = node_new(ps, ND_LIST, peek(ps)->pos);
    if (!list)
        return NULL;
    for (;;) {
        const struct token *t = next(ps);
        if (t->k == TK_EOF) {
            *how = END_EOF;
            return list;
        }
        struct node *item = NULL;
        if (t->k == TK_ERROR)
            goto fail;
        if (t->k == TK_TEXT) {
            item = node_new(ps, ND_TEXT, t->pos);
            if (item)
                item->src = ps->src + t->pos, item->srclen = t->len;
        } else { /* TK_LDELIM */
            const struct token *kw = peek(ps);
            if (is_keyword(ps, kw, "end")) {
                next(ps);
                if (expect_rdelim(ps, "end") != 0)
                    goto fail;
                *how = END_END;
                return list;
            }
            if (is_keyword(ps, kw, "else")) {
                next(ps);
                /* "{{else}}" is checked whole, "{{else if" is left to the caller */
                if (!is_keyword(ps, peek(ps), "if") && expect_rdelim(ps, "else") != 0)
                    goto fail;
                *how = END_ELSE;
                return list;
            }
            if (is_keyword(ps, kw, "if")) {
                next(ps);
                item = parse_if(ps, kw->pos);
            } else if (kw->k == TK_KEYWORD) {
                parse_fail(ps->src, kw->pos, ps->why, ps->whylen,
                           "{{%.*s}} is not supported by this server", (int)kw->len,
                           ps->src + kw->pos);
                goto fail;
            } else {
                item = node_new(ps, ND_ACTION, t->pos);
                struct node *pipe = item ? parse_pipeline(ps, "command", TK_RDELIM) : NULL;
                if (!pipe || node_add(ps, item, pipe) != 0 || expect_rdelim(ps, "command") != 0) {
                    gt_node_free(item);
                    goto fail;
                }
            }
        }
        if (!item || node_add(ps, list, item) != 0)
            goto fail;
    }
fail:
    gt_node_free(list);
    return NULL;
}

struct node *gt_parse(const char *src, const struct token *toks, const char *lex_err, char *why,
                      size_t whylen)
{
    struct parser ps = {src, toks, 0, why, whylen, 0, lex_err};
    enum list_end how = END_EOF;
    struct node *root = parse_list(&ps, &how);
    if (root && how != END_EOF) {
        parse_fail(src, toks[ps.i ? ps.i - 1 : 0].pos, ps.why, whylen, "unexpected {{%s}}",
                   how == END_END ? "end" : "else");
        gt_node_free(root);
        root = NULL;
    }
    return root;
}
