/*
 * config/claim_policy_parse.c: an issuer's ClaimPolicy / claim-policy list, parsed into
 * struct claim_rule (config/config.h) with its Match patterns compiled once.
 *
 * A rule is a map with Claim and exactly one operator (In, Equals, Prefix, Suffix, Match); key
 * names are matched case-insensitively, so the YAML spelling is the lower-case one. Unknown
 * keys in a rule are errors (not warnings as elsewhere): a misspelt operator must not silently
 * widen the policy. Match patterns must be anchored at both ends (GHSA-59jp-pj84-45mr was an
 * unanchored pattern).
 */
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "config/config_internal.h"

#define PATH_LEN 1024

enum { K_CLAIM, K_IN, K_EQUALS, K_PREFIX, K_SUFFIX, K_MATCH, K_COUNT };

/* JSON names; the YAML names are the same in lower case. */
static const char *const key_names[K_COUNT] = {"Claim", "In", "Equals", "Prefix", "Suffix",
                                               "Match"};
static const enum claim_rule_op key_ops[K_COUNT] = {0, CLAIM_RULE_IN, CLAIM_RULE_EQUALS,
                                                    CLAIM_RULE_PREFIX, CLAIM_RULE_SUFFIX,
                                                    CLAIM_RULE_MATCH};

struct perr {
    char *epath;
    size_t epathlen;
    char *why;
    size_t whylen;
};

__attribute__((format(printf, 3, 4))) static int bad(struct perr *e, const char *path,
                                                     const char *fmt, ...)
{
    snprintf(e->epath, e->epathlen, "%s", path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->why, e->whylen, fmt, ap);
    va_end(ap);
    return -1;
}

static void join(char *out, const char *base, const char *key, int bracket)
{
    snprintf(out, PATH_LEN, "%s", base);
    config_path_append(out, PATH_LEN, key, bracket);
}

static void join_index(char *out, const char *base, size_t i)
{
    char idx[32];
    snprintf(idx, sizeof idx, "%zu", i);
    join(out, base, idx, 1);
}

static const char *style_name(int k, int yaml_style)
{
    static const char *const lower[K_COUNT] = {"claim", "in", "equals", "prefix", "suffix",
                                               "match"};
    return yaml_style ? lower[k] : key_names[k];
}

/* A string from the file: a JSON string without NUL (every YAML scalar is one). */
static int get_str(struct perr *e, const char *path, const json_t *v, const char **out)
{
    if (!json_is_string(v))
        return bad(e, path, "must be a string");
    if (strlen(json_string_value(v)) != json_string_length(v))
        return bad(e, path, "must not contain a NUL character");
    *out = json_string_value(v);
    return 0;
}

static int push_step(struct claim_rule *r, const char *s, size_t n)
{
    char **np = realloc(r->path, (r->n_path + 1) * sizeof *np);
    if (!np)
        return -1;
    r->path = np;
    if (!(np[r->n_path] = strndup(s, n)))
        return -1;
    r->n_path++;
    return 0;
}

/* A plain name is one step, taken literally. "$" starts a path of ".name" and ['name'] /
 * ["name"] steps (a name in brackets may contain dots; no escapes, indices or wildcards).
 * Returns 0, -1 (syntax; *oom = 0) or -1 with *oom = 1. */
static int parse_claim_path(struct claim_rule *r, const char *s, int *oom)
{
    *oom = 0;
    if (s[0] != '$') {
        if (push_step(r, s, strlen(s)) != 0)
            return *oom = 1, -1;
        return 0;
    }
    const char *p = s + 1;
    if (!*p)
        return -1;
    while (*p) {
        const char *name;
        size_t n;
        if (*p == '.') {
            name = p + 1;
            n = strcspn(name, ".[]'\"*");
            if (n == 0 || (name[n] != '\0' && name[n] != '.' && name[n] != '['))
                return -1;
            p = name + n;
        } else if (*p == '[' && (p[1] == '\'' || p[1] == '"')) {
            name = p + 2;
            const char *end = strchr(name, p[1]);
            if (!end || end == name || end[1] != ']')
                return -1;
            n = (size_t)(end - name);
            p = end + 2;
        } else {
            return -1;
        }
        if (push_step(r, name, n) != 0)
            return *oom = 1, -1;
    }
    return 0;
}

/* Skips a bracket expression starting at re[i] == '['; returns the index after its ']'. */
static size_t skip_bracket(const char *re, size_t i)
{
    i++;
    if (re[i] == '^')
        i++;
    if (re[i] == ']') /* a leading ']' is a member */
        i++;
    while (re[i] && re[i] != ']') {
        if (re[i] == '[' && (re[i + 1] == ':' || re[i + 1] == '.' || re[i + 1] == '=')) {
            char close = re[i + 1];
            i += 2;
            while (re[i] && !(re[i] == close && re[i + 1] == ']'))
                i++;
            if (re[i])
                i += 2;
            continue;
        }
        i++;
    }
    return re[i] ? i + 1 : i;
}

/* Every top-level branch of the ERE starts with '^' and ends with a '$' anchor (not escaped,
 * not in a bracket expression, not in a group). Called on a pattern that compiles. */
static int ere_anchored(const char *re)
{
    size_t depth = 0, i = 0;
    int branch_start = 1, last_is_dollar = 0;
    for (;;) {
        if (branch_start) {
            if (re[i] != '^')
                return 0;
            branch_start = 0;
        }
        char c = re[i];
        if (c == '\0' || (c == '|' && depth == 0)) {
            if (!last_is_dollar)
                return 0;
            if (c == '\0')
                return 1;
            branch_start = 1;
            last_is_dollar = 0;
            i++;
            continue;
        }
        last_is_dollar = 0;
        if (c == '\\') {
            i += re[i + 1] ? 2 : 1;
        } else if (c == '[') {
            i = skip_bracket(re, i);
        } else {
            if (c == '(')
                depth++;
            else if (c == ')' && depth > 0)
                depth--;
            else if (c == '$' && depth == 0)
                last_is_dollar = 1;
            i++;
        }
    }
}

/* A back-reference (\1 to \9, a glibc extension to POSIX EREs) outside a bracket expression:
 * matching one backtracks, exponentially in the value's length (a 200-character claim took
 * over 20 s against ^((a*)*\2)*b$), and claim values come from the token. */
static int ere_has_backref(const char *re)
{
    for (size_t i = 0; re[i];) {
        if (re[i] == '\\') {
            if (re[i + 1] >= '1' && re[i + 1] <= '9')
                return 1;
            i += re[i + 1] ? 2 : 1;
        } else {
            i = re[i] == '[' ? skip_bracket(re, i) : i + 1;
        }
    }
    return 0;
}

/* Largest expanded size of a Match pattern, in atoms (see ere_expanded_size). */
#define MATCH_MAX_EXPANDED 1000

/* Reads "{m}", "{m,}", "{m,n}" or glibc's "{,n}" at re[i] == '{'. Returns the index after '}'
 * and sets *copies to how many copies of the repeated item the compiled pattern holds (n, or
 * m + 1 when unbounded; at least 1), or returns i when it is not an interval (regcomp judges
 * it). */
static size_t read_interval(const char *re, size_t i, unsigned long *copies)
{
    size_t j = i + 1;
    unsigned long m = 0, n = 0;
    int has_n = 0, comma = 0;
    if ((re[j] < '0' || re[j] > '9') && re[j] != ',')
        return i;
    for (; re[j] >= '0' && re[j] <= '9'; j++)
        m = m < 100000 ? m * 10 + (unsigned long)(re[j] - '0') : m;
    if (re[j] == ',') {
        comma = 1;
        for (j++; re[j] >= '0' && re[j] <= '9'; j++, has_n = 1)
            n = n < 100000 ? n * 10 + (unsigned long)(re[j] - '0') : n;
    }
    if (re[j] != '}')
        return i;
    *copies = has_n ? (n > m ? n : m) : comma ? m + 1 : m;
    if (*copies == 0)
        *copies = 1;
    return j + 1;
}

/* How many atoms the compiled form of the ERE holds once its repetitions are expanded, capped
 * at limit + 1. glibc's regcomp copies what "{m,n}" repeats n times (and "+" twice), and nested
 * repetitions multiply, so "((a{255}){255}){255}" asks it for 16 million copies: gigabytes, and
 * matching time grows with the copies too. Counted before regcomp, so that such a pattern is
 * refused by name instead of exhausting memory. Each group's size is kept on a stack; "last" is
 * the size of the item a following repetition applies to. */
static unsigned long ere_expanded_size(const char *re, unsigned long limit)
{
    size_t groups = 1;
    for (const char *c = re; *c; c++)
        groups += *c == '(';
    struct frame {
        unsigned long total, last;
    } *f = calloc(groups, sizeof *f);
    if (!f)
        return limit + 1;
    size_t depth = 0, i = 0, next;
    int over = 0;
    while (re[i] && !over) {
        char c = re[i];
        unsigned long add = 0, copies = 0;
        if (c == '(') {
            f[++depth] = (struct frame){0, 0};
            i++;
            continue;
        }
        if (c == ')' && depth > 0) {
            add = f[depth].total ? f[depth].total : 1;
            depth--;
            i++;
        } else if (c == '|') {
            f[depth].last = 0;
            i++;
            continue;
        } else if (c == '*' || c == '?') {
            i++;
            continue;
        } else if (c == '+') {
            copies = 2;
            i++;
        } else if (c == '{' && (next = read_interval(re, i, &copies)) != i) {
            i = next;
        } else if (c == '^' || c == '$') { /* anchors: not characters */
            i++;
        } else {
            add = 1;
            i = c == '\\' ? i + (re[i + 1] ? 2 : 1) : c == '[' ? skip_bracket(re, i) : i + 1;
        }
        struct frame *t = &f[depth];
        if (copies) { /* the last item now appears `copies` times */
            unsigned long extra = t->last * (copies - 1);
            t->total += extra;
            t->last = t->last * copies;
        } else {
            t->total += add;
            t->last = add;
        }
        if (t->total > limit || t->last > limit)
            over = 1;
    }
    unsigned long size = over ? limit + 1 : f[0].total;
    free(f);
    return size;
}

static void rule_clear(struct claim_rule *r)
{
    free(r->claim);
    for (size_t i = 0; i < r->n_path; i++)
        free(r->path[i]);
    free(r->path);
    for (size_t i = 0; i < r->n_values; i++)
        free(r->values[i]);
    free(r->values);
    if (r->op == CLAIM_RULE_MATCH)
        regfree(&r->re);
    memset(r, 0, sizeof *r);
}

void config_claim_rules_free(struct claim_rule *rules, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rule_clear(&rules[i]);
    free(rules);
}

static int set_values(struct perr *e, const char *path, struct claim_rule *r, const char *const *v,
                      size_t n)
{
    r->values = calloc(n, sizeof *r->values);
    if (!r->values)
        return bad(e, path, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!(r->values[i] = strdup(v[i])))
            return bad(e, path, "out of memory");
        r->n_values++;
    }
    return 0;
}

static int parse_operator(struct perr *e, const char *path, int k, const json_t *v,
                          struct claim_rule *r)
{
    const char *s = NULL;
    if (k == K_IN) {
        if (!json_is_array(v))
            return bad(e, path, "must be a list of strings");
        size_t n = json_array_size(v);
        if (n == 0)
            return bad(e, path, "must not be an empty list (it would allow no value)");
        const char **list = calloc(n, sizeof *list);
        if (!list)
            return bad(e, path, "out of memory");
        for (size_t i = 0; i < n; i++) {
            char p[PATH_LEN];
            join_index(p, path, i);
            if (get_str(e, p, json_array_get(v, i), &list[i]) != 0) {
                free(list);
                return -1;
            }
        }
        r->op = CLAIM_RULE_IN;
        int rc = set_values(e, path, r, list, n);
        free(list);
        return rc;
    }
    if ((k == K_PREFIX || k == K_SUFFIX) && json_is_null(v)) /* YAML "prefix:" */
        return bad(e, path, "must not be empty (it would allow every value)");
    if (get_str(e, path, v, &s) != 0)
        return -1;
    if ((k == K_PREFIX || k == K_SUFFIX) && !*s)
        return bad(e, path, "must not be empty (it would allow every value)");
    if (k == K_MATCH) {
        if (ere_has_backref(s))
            return bad(e, path,
                       "must not use back-references (\\1 to \\9): matching them takes time "
                       "exponential in the claim's length");
        if (ere_expanded_size(s, MATCH_MAX_EXPANDED) > MATCH_MAX_EXPANDED)
            return bad(e, path,
                       "is too large: with its repetitions expanded it holds more than %d "
                       "characters or classes ({m,n} repeats what precedes it n times, and "
                       "nested repetitions multiply)",
                       MATCH_MAX_EXPANDED);
        int rc = regcomp(&r->re, s, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[200];
            regerror(rc, &r->re, msg, sizeof msg);
            return bad(e, path, "does not compile: %s", msg);
        }
        r->op = CLAIM_RULE_MATCH; /* from here rule_clear calls regfree */
        if (!ere_anchored(s))
            return bad(e, path,
                       "must be anchored: start with ^ and end with $ (each top-level | branch "
                       "too, or write ^(a|b)$), so that it cannot match inside a longer value "
                       "(GHSA-59jp-pj84-45mr)");
        return set_values(e, path, r, &s, 1);
    }
    r->op = key_ops[k];
    return set_values(e, path, r, &s, 1);
}

static int parse_rule(struct perr *e, const char *path, const json_t *v, int yaml_style,
                      struct claim_rule *r)
{
    if (!json_is_object(v))
        return bad(e, path, "must be a map with %s and one of %s, %s, %s, %s, %s",
                   style_name(K_CLAIM, yaml_style), style_name(K_IN, yaml_style),
                   style_name(K_EQUALS, yaml_style), style_name(K_PREFIX, yaml_style),
                   style_name(K_SUFFIX, yaml_style), style_name(K_MATCH, yaml_style));
    const char *seen[K_COUNT] = {0};
    const json_t *vals[K_COUNT] = {0};
    const char *key;
    json_t *e_v;
    char p[PATH_LEN];
    json_object_foreach((json_t *)v, key, e_v) {
        join(p, path, key, 0);
        int k = -1;
        for (int i = 0; i < K_COUNT && k < 0; i++)
            if (strcasecmp(key, key_names[i]) == 0)
                k = i;
        if (k < 0)
            return bad(e, p, "unknown key (a rule has %s and one of %s, %s, %s, %s, %s)",
                       style_name(K_CLAIM, yaml_style), style_name(K_IN, yaml_style),
                       style_name(K_EQUALS, yaml_style), style_name(K_PREFIX, yaml_style),
                       style_name(K_SUFFIX, yaml_style), style_name(K_MATCH, yaml_style));
        if (seen[k])
            return bad(e, p, "same field as \"%.200s\"", seen[k]);
        seen[k] = key;
        vals[k] = e_v;
    }

    const char *claim = NULL;
    join(p, path, seen[K_CLAIM] ? seen[K_CLAIM] : style_name(K_CLAIM, yaml_style), 0);
    if (!seen[K_CLAIM] || json_is_null(vals[K_CLAIM]))
        return bad(e, p, "required");
    if (get_str(e, p, vals[K_CLAIM], &claim) != 0)
        return -1;
    if (!*claim)
        return bad(e, p, "required");
    if (!(r->claim = strdup(claim)))
        return bad(e, p, "out of memory");
    int oom;
    if (parse_claim_path(r, claim, &oom) != 0)
        return oom ? bad(e, p, "out of memory")
                   : bad(e, p,
                         "unsupported claim path \"%.200s\": write a top-level claim name, or "
                         "$.name.name, with $['name'] for a name containing dots",
                         claim);

    int op = -1;
    for (int k = K_IN; k < K_COUNT; k++) {
        if (!seen[k])
            continue;
        if (op >= 0)
            return bad(e, path,
                       "both %.100s and %.100s: a rule takes exactly one operator (write two "
                       "rules to require both)",
                       seen[op], seen[k]);
        op = k;
    }
    if (op < 0)
        return bad(e, path, "no operator: a rule needs one of %s, %s, %s, %s, %s",
                   style_name(K_IN, yaml_style), style_name(K_EQUALS, yaml_style),
                   style_name(K_PREFIX, yaml_style), style_name(K_SUFFIX, yaml_style),
                   style_name(K_MATCH, yaml_style));
    join(p, path, seen[op], 0);
    return parse_operator(e, p, op, vals[op], r);
}

int config_claim_policy_parse(const json_t *v, const char *path, int yaml_style,
                              struct claim_rule **rules, size_t *n, char *epath, size_t epathlen,
                              char *why, size_t whylen)
{
    struct perr e = {epath, epathlen, why, whylen};
    *rules = NULL;
    *n = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return bad(&e, path, "must be a list of rules");
    size_t count = json_array_size(v);
    if (count == 0)
        return 0;
    /* allocated once: a compiled regex_t is never moved */
    struct claim_rule *out = calloc(count, sizeof *out);
    if (!out)
        return bad(&e, path, "out of memory");
    for (size_t i = 0; i < count; i++) {
        char p[PATH_LEN];
        join_index(p, path, i);
        if (parse_rule(&e, p, json_array_get(v, i), yaml_style, &out[i]) != 0) {
            config_claim_rules_free(out, i + 1);
            return -1;
        }
    }
    *rules = out;
    *n = count;
    return 0;
}
