/*
 * oidc/go_template_internal.h: what the three parts of the Go text/template subset share
 * (go_template_lex.c -> tokens, go_template_parse.c -> tree, go_template.c -> execution).
 * Not a public contract: see go_template.h.
 */
#ifndef FULCRUM_OIDC_GO_TEMPLATE_INTERNAL_H
#define FULCRUM_OIDC_GO_TEMPLATE_INTERNAL_H

#include <stddef.h>

/* Token kinds (Go's lexer items, fields and variables with their chained .names). */
enum tok_kind {
    TK_EOF,
    TK_TEXT,
    TK_LDELIM,
    TK_RDELIM,
    TK_IDENT,
    TK_KEYWORD,
    TK_FIELD, /* .a or .a.b */
    TK_DOT,
    TK_VAR,    /* $ or $.a.b (or $name: refused by the parser) */
    TK_STRING, /* "..." */
    TK_RAW,    /* `...` */
    TK_NUMBER,
    TK_BOOL,
    TK_NIL,
    TK_LPAREN,
    TK_RPAREN,
    TK_PIPE,
    TK_CHAR,  /* another printable ASCII character (Go's itemChar): always a syntax error */
    TK_ERROR, /* the lexer stopped here; its message is struct lexer.errmsg */
};

/* One token: its kind and its bytes in the source. */
struct token {
    enum tok_kind k;
    size_t pos, len; /* slice of the source */
};

/* The lexer's state and result. */
struct lexer {
    const char *src;
    size_t n;
    struct token *toks;
    size_t ntoks, cap;
    int oom;
    char errmsg[512];    /* the final "template: :L: ..." text of a lexing error */
    char reason[400];    /* the lexing error itself */
    size_t err_pos;      /* where it happened */
    size_t action_start; /* the "{{" of the action being lexed, (size_t)-1 outside */
};

/* Tokens for src (l->src, l->n set, the rest zeroed). A syntax error becomes a TK_ERROR token
 * whose Go-style text is l->errmsg. l->toks is malloc'd (caller frees). -1 = out of memory. */
int gt_lex(struct lexer *l);

/* 1-based line of byte offset pos. */
size_t gt_line_of(const char *src, size_t pos);

/* Go's lexer spaces: ' ', '\t', '\r', '\n'. */
int gt_is_space(char c);

/* Tree nodes. Each keeps its byte offset (pos) and source text (src) for Go's messages. */
enum node_kind {
    ND_LIST,
    ND_TEXT,
    ND_ACTION, /* kids[0] = pipe */
    ND_IF,     /* kids[0] = pipe, kids[1] = list, kids[2] = else list or NULL */
    ND_PIPE,   /* kids = commands */
    ND_CMD,    /* kids = operands */
    ND_FIELD,
    ND_DOT,
    ND_VAR,
    ND_STRING,
    ND_NUMBER,
    ND_BOOL,
    ND_NIL,
    ND_IDENT,
};

struct node {
    enum node_kind k;
    size_t pos;
    const char *src; /* source text of the node (fields, strings, numbers, identifiers, text) */
    size_t srclen;
    char *str; /* decoded string literal */
    size_t strlen_;
    long long num;
    int b;
    struct node **kids;
    size_t nkids, cap;
};

/* The tree of a lexed template (an ND_LIST), or NULL with Go's parse error text in why. */
struct node *gt_parse(const char *src, const struct token *toks, const char *lex_err, char *why,
                      size_t whylen);

void gt_node_free(struct node *nd);

#endif
