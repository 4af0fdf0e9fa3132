/*
 * common/flags.h: Go-style command-line flags, as Fulcio's cobra/pflag accepts them:
 * "--name value", "--name=value", "-name value"; booleans as "--name", "--name=true|false".
 * An unknown flag or a missing value is an error naming the flag.
 */
#ifndef FULCRUM_COMMON_FLAGS_H
#define FULCRUM_COMMON_FLAGS_H

#include <stddef.h>
#include <stdio.h>

enum flag_kind { FLAG_STRING, FLAG_INT, FLAG_BOOL, FLAG_SECONDS };

struct flag {
    const char *name;   /* without dashes */
    const char *alias;  /* another accepted name, or NULL */
    enum flag_kind kind;
    void *value;        /* const char ** | long * | int * | long * (seconds) */
    const char *help;
    int set;            /* filled by flags_parse: the flag appeared */
};

/* Parses argv[0..argc). Positional arguments are an error. Returns 0, or -1 with a message.
 * FLAG_SECONDS accepts Go durations ("30s", "2m", "1h", "500ms" rounds up to 1) or a number of
 * seconds. */
int flags_parse(struct flag *flags, size_t nflags, int argc, char **argv, char *why,
                size_t whylen);

/* Writes "  --name value   help (default ...)" lines. */
void flags_usage(const struct flag *flags, size_t nflags, FILE *out);

#endif
