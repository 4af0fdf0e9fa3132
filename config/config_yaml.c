/*
 * config/config_yaml.c: YAML text -> jansson tree (libyaml event API).
 *
 * Aliases share the anchored jansson value (json_incref), so a "billion laughs" document costs
 * no memory; its expanded size is still counted and capped, because later walks of the tree
 * see every shared copy. An alias can only name an anchor whose node is complete, so cycles
 * cannot be built.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/config_internal.h"

#define YAML_MAX_DEPTH 256
#define YAML_MAX_NODES 1000000 /* after alias expansion */

struct frame {
    json_t *val;      /* array or object being built */
    int is_map;
    char *anchor;
    size_t weight;    /* nodes in this subtree, aliases expanded */
    char *key;        /* map: the key whose value comes next (NULL: a key comes next) */
    int key_is_merge; /* that key is a merge key `<<` */
    size_t key_line;
    json_t *merges;   /* map: the values of its merge keys, in order */
    size_t merge_line;
};

struct anchor {
    char *name;
    json_t *val;
    size_t weight;
};

struct builder {
    struct frame *st;
    size_t n, cap;
    struct anchor *an;
    size_t nan, capan;
    json_t *root;
    int have_root;
    char *err;
    size_t errlen;
};

void config_path_append(char *path, size_t pathlen, const char *key, int bracket)
{
    size_t used = strlen(path);
    if (used + 1 >= pathlen)
        return;
    int plain = !bracket && *key;
    for (const char *p = key; plain && *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            plain = 0;
    }
    if (plain)
        snprintf(path + used, pathlen - used, "%s%.300s", used ? "." : "", key);
    else
        snprintf(path + used, pathlen - used, "[%.300s]", key);
}

/* The key path of the value being built at the top of the stack (then `key` if not NULL). */
static void stack_path(const struct builder *b, const char *key, char *path, size_t pathlen)
{
    path[0] = '\0';
    for (size_t i = 0; i < b->n; i++) {
        const struct frame *f = &b->st[i];
        if (f->is_map) {
            if (f->key)
                config_path_append(path, pathlen, f->key, 0);
        } else {
            char idx[32];
            snprintf(idx, sizeof idx, "%zu", json_array_size(f->val));
            config_path_append(path, pathlen, idx, 1);
        }
    }
    if (key)
        config_path_append(path, pathlen, key, 0);
}

__attribute__((format(printf, 4, 5))) static int fail_at(struct builder *b, const char *key,
                                                         size_t line, const char *fmt, ...)
{
    char path[1024], reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    stack_path(b, key, path, sizeof path);
    size_t pl = strlen(path);
    if (pl > 240) { /* keep both ends of a very deep path */
        memcpy(path + 100, "...", 3);
        memmove(path + 103, path + pl - 137, 138); /* the last 137 bytes and the NUL */
    }
    if (*path)
        snprintf(b->err, b->errlen, "%s: %s (line %zu)", path, reason, line);
    else
        snprintf(b->err, b->errlen, "%s (line %zu)", reason, line);
    return -1;
}

static void frame_clear(struct frame *f)
{
    json_decref(f->val);
    json_decref(f->merges);
    free(f->anchor);
    free(f->key);
    memset(f, 0, sizeof *f);
}

static void builder_free(struct builder *b)
{
    for (size_t i = 0; i < b->n; i++)
        frame_clear(&b->st[i]);
    free(b->st);
    for (size_t i = 0; i < b->nan; i++) {
        free(b->an[i].name);
        json_decref(b->an[i].val);
    }
    free(b->an);
    json_decref(b->root);
}

static int anchor_set(struct builder *b, const char *name, json_t *val, size_t weight, size_t line)
{
    if (b->nan == b->capan) {
        size_t cap = b->capan ? b->capan * 2 : 16;
        struct anchor *a = realloc(b->an, cap * sizeof *a);
        if (!a)
            return fail_at(b, NULL, line, "out of memory");
        b->an = a;
        b->capan = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return fail_at(b, NULL, line, "out of memory");
    b->an[b->nan].name = copy;
    b->an[b->nan].val = json_incref(val);
    b->an[b->nan].weight = weight;
    b->nan++;
    return 0;
}

/* The latest definition wins: YAML allows an anchor name to be reused. */
static const struct anchor *anchor_get(const struct builder *b, const char *name)
{
    for (size_t i = b->nan; i > 0; i--)
        if (strcmp(b->an[i - 1].name, name) == 0)
            return &b->an[i - 1];
    return NULL;
}

/* Adds a finished value (reference stolen) to the top frame or makes it the root. */
static int add_value(struct builder *b, json_t *v, size_t weight, size_t line)
{
    if (!v)
        return fail_at(b, NULL, line, "out of memory");
    if (b->n == 0) {
        b->root = v;
        b->have_root = 1;
        return 0;
    }
    struct frame *f = &b->st[b->n - 1];
    f->weight += weight;
    if (f->weight > YAML_MAX_NODES) {
        json_decref(v);
        return fail_at(b, NULL, line, "more than %d nodes once aliases are expanded",
                       YAML_MAX_NODES);
    }
    if (!f->is_map) {
        if (json_array_append_new(f->val, v) != 0)
            return fail_at(b, NULL, line, "out of memory");
        return 0;
    }
    int rc = 0;
    if (f->key_is_merge) {
        if (!f->merges) {
            f->merges = json_array();
            f->merge_line = f->key_line;
        }
        if (!f->merges || json_array_append_new(f->merges, v) != 0)
            rc = fail_at(b, NULL, line, "out of memory");
    } else if (json_object_get(f->val, f->key)) {
        json_decref(v);
        /* report the path of the map itself plus the repeated key */
        char *key = f->key;
        f->key = NULL;
        rc = fail_at(b, key, f->key_line, "duplicate key");
        free(key);
        return rc;
    } else if (json_object_set_new(f->val, f->key, v) != 0) {
        rc = fail_at(b, NULL, line, "out of memory");
    }
    free(f->key);
    f->key = NULL;
    f->key_is_merge = 0;
    return rc;
}

/* Takes a scalar's text as the next key of the top frame (a map expecting a key). */
static int set_key(struct builder *b, const char *text, size_t textlen, int is_merge, size_t line)
{
    struct frame *f = &b->st[b->n - 1];
    if (memchr(text, '\0', textlen))
        return fail_at(b, NULL, line, "a key contains a NUL character");
    f->key = strndup(text, textlen);
    if (!f->key)
        return fail_at(b, NULL, line, "out of memory");
    f->key_is_merge = is_merge;
    f->key_line = line;
    return 0;
}

static int expecting_key(const struct builder *b)
{
    return b->n > 0 && b->st[b->n - 1].is_map && b->st[b->n - 1].key == NULL;
}

static json_t *scalar_value(const yaml_event_t *ev)
{
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    if (tag && strcmp(tag, "!") != 0) {
        if (strcmp(tag, YAML_NULL_TAG) == 0)
            return json_null();
        return json_stringn(text, len);
    }
    if (!tag && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
        for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
            if (len == strlen(nulls[i]) && memcmp(text, nulls[i], len) == 0)
                return json_null();
    }
    return json_stringn(text, len);
}

static int on_scalar(struct builder *b, const yaml_event_t *ev, size_t line)
{
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    const char *anchor = (const char *)ev->data.scalar.anchor;
    if (expecting_key(b)) {
        int merge = (tag && strcmp(tag, "tag:yaml.org,2002:merge") == 0) ||
                    (!tag && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && len == 2 &&
                     memcmp(text, "<<", 2) == 0);
        if (anchor) {
            json_t *k = json_stringn(text, len);
            int rc = k ? anchor_set(b, anchor, k, 1, line) : fail_at(b, NULL, line, "bad text");
            json_decref(k);
            if (rc)
                return rc;
        }
        return set_key(b, text, len, merge, line);
    }
    json_t *v = scalar_value(ev);
    if (!v)
        return fail_at(b, NULL, line, "a value is not valid UTF-8 or is too large");
    if (anchor && anchor_set(b, anchor, v, 1, line) != 0) {
        json_decref(v);
        return -1;
    }
    return add_value(b, v, 1, line);
}

static int on_alias(struct builder *b, const yaml_event_t *ev, size_t line)
{
    const char *name = (const char *)ev->data.alias.anchor;
    const struct anchor *a = anchor_get(b, name);
    if (!a)
        return fail_at(b, NULL, line, "unknown anchor \"%.100s\" (undefined or recursive)", name);
    if (expecting_key(b)) {
        if (!json_is_string(a->val))
            return fail_at(b, NULL, line, "alias \"%.100s\" used as a key is not a scalar", name);
        return set_key(b, json_string_value(a->val), json_string_length(a->val), 0, line);
    }
    return add_value(b, json_incref(a->val), a->weight, line);
}

static int on_start(struct builder *b, int is_map, const char *anchor, size_t line)
{
    if (expecting_key(b))
        return fail_at(b, NULL, line, "a map or list used as a key is not supported");
    if (b->n >= YAML_MAX_DEPTH)
        return fail_at(b, NULL, line, "nested more than %d levels deep", YAML_MAX_DEPTH);
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct frame *st = realloc(b->st, cap * sizeof *st);
        if (!st)
            return fail_at(b, NULL, line, "out of memory");
        b->st = st;
        b->cap = cap;
    }
    struct frame *f = &b->st[b->n];
    memset(f, 0, sizeof *f);
    f->is_map = is_map;
    f->weight = 1;
    f->val = is_map ? json_object() : json_array();
    f->anchor = anchor ? strdup(anchor) : NULL;
    b->n++;
    if (!f->val || (anchor && !f->anchor))
        return fail_at(b, NULL, line, "out of memory");
    return 0;
}

static int merge_one(struct builder *b, json_t *obj, json_t *src, size_t line)
{
    if (!json_is_object(src))
        return fail_at(b, "<<", line, "a merge value must be a map or a list of maps");
    if (json_object_update_missing(obj, src) != 0)
        return fail_at(b, NULL, line, "out of memory");
    return 0;
}

/* Applies merge keys: explicit keys win, then earlier merge sources over later ones. */
static int apply_merges(struct builder *b, struct frame *f, size_t line)
{
    size_t i, j;
    json_t *m, *e;
    json_array_foreach(f->merges, i, m) {
        if (json_is_array(m)) {
            json_array_foreach(m, j, e) {
                if (merge_one(b, f->val, e, line) != 0)
                    return -1;
            }
        } else if (merge_one(b, f->val, m, line) != 0) {
            return -1;
        }
    }
    return 0;
}

static int on_end(struct builder *b, size_t line)
{
    struct frame *f = &b->st[b->n - 1];
    if (f->is_map && f->key)
        return fail_at(b, NULL, line, "a key without a value");
    if (f->merges && apply_merges(b, f, f->merge_line) != 0)
        return -1;
    json_t *v = f->val;
    size_t weight = f->weight;
    char *anchor = f->anchor;
    f->val = NULL;
    f->anchor = NULL;
    frame_clear(f);
    b->n--;
    int rc = 0;
    if (anchor)
        rc = anchor_set(b, anchor, v, weight, line);
    free(anchor);
    if (rc) {
        json_decref(v);
        return rc;
    }
    return add_value(b, v, weight, line);
}

static void syntax_error(struct builder *b, const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "YAML syntax error";
    if (p->context)
        snprintf(b->err, b->errlen, "line %zu column %zu: %s %s", p->problem_mark.line + 1,
                 p->problem_mark.column + 1, problem, p->context);
    else
        snprintf(b->err, b->errlen, "line %zu column %zu: %s", p->problem_mark.line + 1,
                 p->problem_mark.column + 1, problem);
}

int config_yaml_to_json(const char *data, size_t len, json_t **out, char *err, size_t errlen)
{
    struct builder b;
    memset(&b, 0, sizeof b);
    b.err = err;
    b.errlen = errlen;
    *out = NULL;

    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
    int rc = 0, done = 0;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            syntax_error(&b, &p);
            rc = -1;
            break;
        }
        size_t line = ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_SCALAR_EVENT:
            rc = on_scalar(&b, &ev, line);
            break;
        case YAML_ALIAS_EVENT:
            rc = on_alias(&b, &ev, line);
            break;
        case YAML_SEQUENCE_START_EVENT:
            rc = on_start(&b, 0, (const char *)ev.data.sequence_start.anchor, line);
            break;
        case YAML_MAPPING_START_EVENT:
            rc = on_start(&b, 1, (const char *)ev.data.mapping_start.anchor, line);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            rc = on_end(&b, line);
            break;
        case YAML_DOCUMENT_END_EVENT: /* like Go's yaml.Unmarshal: the first document only */
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (rc == 0) {
        *out = b.have_root ? b.root : json_null();
        b.root = NULL;
    }
    builder_free(&b);
    return rc;
}
