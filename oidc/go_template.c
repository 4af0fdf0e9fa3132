/*
 * oidc/go_template.c: execution of the Go text/template subset (see go_template.h) over a
 * map of strings, with missingkey=error; go_template_execute ties lexer, parser and executor.
 *
 * Values are borrowed from the tree or the data: nothing but the output is allocated while
 * executing. Messages follow Go's exec.go ("template: :<line>:<col>: executing \"\" at <...>").
 */
#include "oidc/go_template.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oidc/go_strconv.h"
#include "oidc/go_template_internal.h"
#include "common/strbuf.h"

enum vkind { V_NONE, V_STR, V_BOOL, V_INT, V_MAP };

struct value {
    enum vkind k;
    const char *s;
    size_t n;
    long long i;
    int b;
    const json_t *m;
};

struct exec {
    const char *src;
    const json_t *data;
    struct strbuf out;
    char *why;
    size_t whylen;
};

/* Go's Node.String(), for error contexts. */
static void node_string(struct strbuf *b, const struct node *nd)
{
    switch (nd->k) {
    case ND_DOT: sb_putc(b, '.'); return;
    case ND_BOOL: sb_puts(b, nd->b ? "true" : "false"); return;
    case ND_NIL: sb_puts(b, "nil"); return;
    case ND_PIPE:
        for (size_t i = 0; i < nd->nkids; i++) {
            if (i)
                sb_puts(b, " | ");
            node_string(b, nd->kids[i]);
        }
        return;
    case ND_CMD:
        for (size_t i = 0; i < nd->nkids; i++) {
            if (i)
                sb_putc(b, ' ');
            if (nd->kids[i]->k == ND_PIPE)
                sb_putc(b, '(');
            node_string(b, nd->kids[i]);
            if (nd->kids[i]->k == ND_PIPE)
                sb_putc(b, ')');
        }
        return;
    default: sb_putn(b, nd->src ? nd->src : "", nd->src ? nd->srclen : 0);
    }
}

static int exec_fail(struct exec *ex, const struct node *nd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* template: :<line>:<col>: executing "" at <<context>>: <reason> */
static int exec_fail(struct exec *ex, const struct node *nd, const char *fmt, ...)
{
    char reason[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    size_t line = 1, linestart = 0;
    for (size_t i = 0; i < nd->pos; i++)
        if (ex->src[i] == '\n')
            line++, linestart = i + 1;
    size_t col = line == 1 ? nd->pos : nd->pos - linestart;
    struct strbuf b = {0};
    node_string(&b, nd);
    char *ctx = sb_finish(&b); /* whole: current Go no longer cuts it to 20 characters */
    if (ex->why && ex->whylen)
        snprintf(ex->why, ex->whylen, "template: :%zu:%zu: executing \"\" at <%s>: %s", line, col,
                 ctx ? ctx : "", reason);
    free(ctx);
    return -1;
}

static const char *type_name(const struct value *v)
{
    switch (v->k) {
    case V_STR: return "string";
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_MAP: return "map[string]string";
    default: return "<nil>";
    }
}

static struct value str_value(const char *s, size_t n)
{
    struct value v = {0};
    v.k = V_STR, v.s = s, v.n = n;
    return v;
}

static struct value json_str_value(const json_t *j)
{
    if (json_is_string(j))
        return str_value(json_string_value(j), json_string_length(j));
    return str_value("", 0);
}

/* Go's isTrue; -1 for a value with no truth (no value). */
static int truth(const struct value *v)
{
    switch (v->k) {
    case V_STR: return v->n > 0;
    case V_BOOL: return v->b;
    case V_INT: return v->i != 0;
    case V_MAP: return json_object_size(v->m) > 0;
    default: return -1;
    }
}

static int map_lookup(const json_t *m, const char *key, size_t keylen, struct value *out)
{
    const json_t *j = json_object_getn(m, key, keylen);
    if (!j)
        return 0;
    *out = json_str_value(j);
    return 1;
}

/* .a.b (or $.a.b): a chain of map lookups from the data. */
static int eval_field(struct exec *ex, const struct node *nd, struct value *out)
{
    struct value cur = {0};
    cur.k = V_MAP, cur.m = ex->data;
    const char *p = nd->src, *end = nd->src + nd->srclen;
    if (*p == '$')
        p++;
    while (p < end) {
        p++; /* '.' */
        const char *name = p;
        while (p < end && *p != '.')
            p++;
        size_t n = (size_t)(p - name);
        if (cur.k != V_MAP)
            return exec_fail(ex, nd, "can't evaluate field %.*s in type %s", (int)n, name,
                             type_name(&cur));
        struct value nv;
        if (!map_lookup(cur.m, name, n, &nv)) {
            char *q = go_quote(name, n);
            exec_fail(ex, nd, "map has no entry for key %s", q ? q : "");
            free(q);
            return -1;
        }
        cur = nv;
    }
    *out = cur;
    return 0;
}

static int eval_pipe(struct exec *ex, const struct node *pipe, struct value *out);
static int call_function(struct exec *ex, const struct node *at, const struct node *ident,
                         struct node *const *args, size_t nargs, const struct value *final,
                         struct value *out);

static int eval_arg(struct exec *ex, const struct node *nd, struct value *out)
{
    memset(out, 0, sizeof *out);
    switch (nd->k) {
    case ND_FIELD: return eval_field(ex, nd, out);
    case ND_VAR:
        if (nd->srclen > 1)
            return eval_field(ex, nd, out);
        out->k = V_MAP, out->m = ex->data; /* $ is the data */
        return 0;
    case ND_DOT: out->k = V_MAP, out->m = ex->data; return 0;
    case ND_STRING: *out = str_value(nd->str, nd->strlen_); return 0;
    case ND_NUMBER: out->k = V_INT, out->i = nd->num; return 0;
    case ND_BOOL: out->k = V_BOOL, out->b = nd->b; return 0;
    case ND_NIL: return exec_fail(ex, nd, "nil is not a command");
    case ND_PIPE: return eval_pipe(ex, nd, out);
    case ND_IDENT: return call_function(ex, nd, nd, NULL, 0, NULL, out);
    default: return exec_fail(ex, nd, "cannot evaluate this node");
    }
}

static int eval_cmd(struct exec *ex, const struct node *cmd, const struct value *final,
                    struct value *out)
{
    const struct node *first = cmd->kids[0];
    if (first->k == ND_IDENT)
        return call_function(ex, cmd, first, cmd->kids + 1, cmd->nkids - 1, final, out);
    if ((cmd->nkids > 1 || final) && (first->k == ND_FIELD || first->k == ND_VAR)) {
        const char *last = memrchr(first->src, '.', first->srclen);
        size_t n = last ? first->srclen - (size_t)(last + 1 - first->src) : 0;
        return exec_fail(ex, first, "%.*s is not a method but has arguments", (int)n,
                         last ? last + 1 : "");
    }
    if (cmd->nkids > 1 || final) {
        struct strbuf b = {0};
        node_string(&b, first);
        char *s = sb_finish(&b);
        exec_fail(ex, first, "can't give argument to non-function %s", s ? s : "");
        free(s);
        return -1;
    }
    return eval_arg(ex, first, out);
}

static int eval_pipe(struct exec *ex, const struct node *pipe, struct value *out)
{
    struct value v = {0};
    for (size_t i = 0; i < pipe->nkids; i++) {
        struct value prev = v;
        if (eval_cmd(ex, pipe->kids[i], i ? &prev : NULL, &v) != 0)
            return -1;
    }
    *out = v;
    return 0;
}

/* eq for two values: 1 equal, 0 not, -1 with *err. */
static int values_equal(const struct value *a, const struct value *b, const char **err)
{
    if (a->k != b->k) {
        *err = "incompatible types for comparison";
        return -1;
    }
    switch (a->k) {
    case V_STR: return a->n == b->n && memcmp(a->s, b->s, a->n) == 0;
    case V_BOOL: return !a->b == !b->b;
    case V_INT: return a->i == b->i;
    default: *err = "invalid type for comparison"; return -1;
    }
}

/* Go checks the number of arguments before evaluating any (error at the identifier). */
static int check_arity(struct exec *ex, const struct node *ident, const char *fname, size_t nargs,
                       size_t total)
{
    static const struct {
        const char *name;
        size_t n;
        int variadic;
    } sig[] = {{"and", 1, 1}, {"or", 1, 1},  {"eq", 1, 1}, {"index", 1, 1},
               {"ne", 2, 0},  {"not", 1, 0}, {"len", 1, 0}};
    for (size_t i = 0; i < sizeof sig / sizeof sig[0]; i++) {
        if (strcmp(sig[i].name, fname) != 0)
            continue;
        if (sig[i].variadic && total < sig[i].n)
            return exec_fail(ex, ident, "wrong number of args for %s: want at least %zu got %zu",
                             fname, sig[i].n, nargs);
        if (!sig[i].variadic && total != sig[i].n)
            return exec_fail(ex, ident, "wrong number of args for %s: want %zu got %zu", fname,
                             sig[i].n, total);
    }
    return 0;
}

/* `at` is the command (Go's context for "error calling"), `ident` the function's name node. */
static int call_function(struct exec *ex, const struct node *at, const struct node *ident,
                         struct node *const *args, size_t nargs, const struct value *final,
                         struct value *out)
{
    char fname[16];
    snprintf(fname, sizeof fname, "%.*s", (int)ident->srclen, ident->src);
    size_t total = nargs + (final ? 1 : 0);
    memset(out, 0, sizeof *out);
    if (check_arity(ex, ident, fname, nargs, total) != 0)
        return -1;

    /* and / or evaluate lazily, left to right (Go 1.18+) */
    if (!strcmp(fname, "and") || !strcmp(fname, "or")) {
        int want = !strcmp(fname, "or");
        for (size_t i = 0; i < total; i++) {
            if (i < nargs) {
                if (eval_arg(ex, args[i], out) != 0)
                    return -1;
            } else {
                *out = *final;
            }
            int t = truth(out);
            if (t == want || i + 1 == total)
                return 0;
        }
        return 0;
    }

    struct value vals[16];
    if (total > sizeof vals / sizeof vals[0])
        return exec_fail(ex, at, "too many arguments for %s", fname);
    for (size_t i = 0; i < nargs; i++)
        if (eval_arg(ex, args[i], &vals[i]) != 0)
            return -1;
    if (final)
        vals[nargs] = *final;

    if (!strcmp(fname, "eq")) {
        if (total == 1)
            return exec_fail(ex, at, "error calling eq: missing argument for comparison");
        out->k = V_BOOL;
        for (size_t i = 1; i < total; i++) {
            const char *err = NULL;
            int r = values_equal(&vals[0], &vals[i], &err);
            if (r < 0)
                return exec_fail(ex, at, "error calling eq: %s", err);
            if (r) {
                out->b = 1;
                return 0;
            }
        }
        return 0;
    }
    if (!strcmp(fname, "ne")) {
        const char *err = NULL;
        int r = values_equal(&vals[0], &vals[1], &err);
        if (r < 0)
            return exec_fail(ex, at, "error calling ne: %s", err);
        out->k = V_BOOL, out->b = !r;
        return 0;
    }
    if (!strcmp(fname, "not")) {
        out->k = V_BOOL, out->b = truth(&vals[0]) <= 0;
        return 0;
    }
    if (!strcmp(fname, "len")) {
        if (vals[0].k == V_STR)
            out->i = (long long)vals[0].n;
        else if (vals[0].k == V_MAP)
            out->i = (long long)json_object_size(vals[0].m);
        else
            return exec_fail(ex, at, "error calling len: len of type %s", type_name(&vals[0]));
        out->k = V_INT;
        return 0;
    }
    /* index */
    struct value item = vals[0];
    for (size_t i = 1; i < total; i++) {
        const struct value *ix = &vals[i];
        if (item.k == V_MAP) {
            if (ix->k != V_STR)
                return exec_fail(ex, at, "error calling index: value has type %s; should be string",
                                 type_name(ix));
            struct value nv;
            item = map_lookup(item.m, ix->s, ix->n, &nv) ? nv : str_value("", 0);
        } else if (item.k == V_STR) {
            if (ix->k != V_INT)
                return exec_fail(ex, at,
                                 "error calling index: cannot index slice/array with type %s",
                                 type_name(ix));
            if (ix->i < 0 || (size_t)ix->i >= item.n)
                return exec_fail(ex, at, "error calling index: index out of range: %lld", ix->i);
            struct value bv = {0};
            bv.k = V_INT, bv.i = (unsigned char)item.s[ix->i];
            item = bv;
        } else {
            return exec_fail(ex, at, "error calling index: can't index item of type %s",
                             type_name(&item));
        }
    }
    *out = item;
    return 0;
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* fmt.Fprint of a value. */
static int print_value(struct exec *ex, const struct value *v)
{
    switch (v->k) {
    case V_STR: sb_putn(&ex->out, v->s, v->n); break;
    case V_BOOL: sb_puts(&ex->out, v->b ? "true" : "false"); break;
    case V_INT: sb_printf(&ex->out, "%lld", v->i); break;
    case V_MAP: {
        size_t n = json_object_size(v->m), i = 0;
        const char **keys = calloc(n ? n : 1, sizeof *keys);
        if (!keys) {
            ex->out.oom = 1;
            break;
        }
        const char *k;
        const json_t *val;
        json_object_foreach((json_t *)v->m, k, val) keys[i++] = k;
        qsort(keys, n, sizeof *keys, cmp_keys);
        sb_puts(&ex->out, "map[");
        for (i = 0; i < n; i++) {
            struct value sv = json_str_value(json_object_get(v->m, keys[i]));
            if (i)
                sb_putc(&ex->out, ' ');
            sb_puts(&ex->out, keys[i]);
            sb_putc(&ex->out, ':');
            sb_putn(&ex->out, sv.s, sv.n);
        }
        sb_putc(&ex->out, ']');
        free(keys);
        break;
    }
    default: sb_puts(&ex->out, "<no value>"); break;
    }
    return 0;
}

static int walk(struct exec *ex, const struct node *list)
{
    for (size_t i = 0; i < list->nkids; i++) {
        const struct node *nd = list->kids[i];
        struct value v;
        switch (nd->k) {
        case ND_TEXT: sb_putn(&ex->out, nd->src, nd->srclen); break;
        case ND_ACTION:
            if (eval_pipe(ex, nd->kids[0], &v) != 0)
                return -1;
            print_value(ex, &v);
            break;
        case ND_IF: {
            if (eval_pipe(ex, nd->kids[0], &v) != 0)
                return -1;
            int t = truth(&v);
            if (t < 0)
                return exec_fail(ex, nd->kids[0], "if/with can't use <no value>");
            const struct node *branch = t ? nd->kids[1] : nd->kids[2];
            if (branch && walk(ex, branch) != 0)
                return -1;
            break;
        }
        default: break;
        }
    }
    return 0;
}

/* Lexes and parses tmpl; returns the tree or NULL with the Go error text in why. */
static struct node *parse_template(const char *tmpl, char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    struct lexer l;
    memset(&l, 0, sizeof l);
    l.src = tmpl;
    l.n = strlen(tmpl);
    if (gt_lex(&l) != 0) {
        free(l.toks);
        if (why && whylen)
            snprintf(why, whylen, "out of memory");
        return NULL;
    }
    struct node *root = gt_parse(tmpl, l.toks, l.errmsg, why, whylen);
    free(l.toks);
    return root;
}

int go_template_check(const char *tmpl, char *why, size_t whylen)
{
    struct node *root = parse_template(tmpl, why, whylen);
    if (!root)
        return -1;
    gt_node_free(root);
    return 0;
}

int go_template_execute(const char *tmpl, const json_t *data, char **out, char *why, size_t whylen)
{
    *out = NULL;
    struct node *root = parse_template(tmpl, why, whylen);
    if (!root)
        return -1;
    struct exec ex = {tmpl, data, {0}, why, whylen};
    int rc = walk(&ex, root);
    gt_node_free(root);
    if (rc != 0) {
        sb_free(&ex.out);
        return -1;
    }
    *out = sb_finish(&ex.out);
    if (!*out) {
        if (why && whylen)
            snprintf(why, whylen, "out of memory");
        return -1;
    }
    return 0;
}
