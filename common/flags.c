#include "common/flags.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct flag *find(struct flag *flags, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
            return &flags[i];
        if (flags[i].alias && strlen(flags[i].alias) == len &&
            strncmp(flags[i].alias, name, len) == 0)
            return &flags[i];
    }
    return NULL;
}

static int parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, long *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    double mult = 1;
    if (!*end || strcmp(end, "s") == 0)
        mult = 1;
    else if (strcmp(end, "ms") == 0)
        mult = 0.001;
    else if (strcmp(end, "m") == 0)
        mult = 60;
    else if (strcmp(end, "h") == 0)
        mult = 3600;
    else
        return -1;
    double secs = v * mult;
    if (secs > (double)INT_MAX)
        return -1;
    long whole = (long)secs;
    if ((double)whole < secs)
        whole++;
    *out = whole;
    return 0;
}

static int set_value(struct flag *f, const char *val, char *why, size_t whylen)
{
    switch (f->kind) {
    case FLAG_STRING:
        *(const char **)f->value = val;
        return 0;
    case FLAG_INT:
        if (parse_long(val, (long *)f->value) == 0)
            return 0;
        snprintf(why, whylen, "flag --%s: \"%s\" is not a whole number", f->name, val);
        return -1;
    case FLAG_SECONDS:
        if (parse_seconds(val, (long *)f->value) == 0)
            return 0;
        snprintf(why, whylen, "flag --%s: \"%s\" is not a duration (e.g. 30s, 2m)", f->name, val);
        return -1;
    case FLAG_BOOL:
        if (strcmp(val, "true") == 0 || strcmp(val, "1") == 0) {
            *(int *)f->value = 1;
            return 0;
        }
        if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0) {
            *(int *)f->value = 0;
            return 0;
        }
        snprintf(why, whylen, "flag --%s: \"%s\" is not true or false", f->name, val);
        return -1;
    }
    return -1;
}

int flags_parse(struct flag *flags, size_t nflags, int argc, char **argv, char *why,
                size_t whylen)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || arg[1] == '\0') {
            snprintf(why, whylen, "unexpected argument \"%s\"", arg);
            return -1;
        }
        const char *name = arg + 1;
        if (*name == '-')
            name++;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        struct flag *f = find(flags, nflags, name, len);
        if (!f) {
            snprintf(why, whylen, "unknown flag --%.*s (see --help)", (int)len, name);
            return -1;
        }
        const char *val;
        if (eq) {
            val = eq + 1;
        } else if (f->kind == FLAG_BOOL) {
            val = "true";
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            snprintf(why, whylen, "flag --%s needs a value", f->name);
            return -1;
        }
        if (set_value(f, val, why, whylen) != 0)
            return -1;
        f->set = 1;
    }
    return 0;
}

void flags_usage(const struct flag *flags, size_t nflags, FILE *out)
{
    for (size_t i = 0; i < nflags; i++) {
        const struct flag *f = &flags[i];
        const char *kind = f->kind == FLAG_BOOL      ? ""
                           : f->kind == FLAG_INT     ? " int"
                           : f->kind == FLAG_SECONDS ? " duration"
                                                     : " string";
        char name[96];
        snprintf(name, sizeof name, "--%s%s", f->name, kind);
        fprintf(out, "  %-34s %s", name, f->help);
        if (f->alias)
            fprintf(out, " (alias --%s)", f->alias);
        fputc('\n', out);
    }
}
