/*
 * ca/main.c: the `fulcrum` binary: one entry point, subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "ca/serve_cmd.h"

#ifndef FULCRUM_VERSION
#define FULCRUM_VERSION "0.1.0"
#endif

static void usage(FILE *out)
{
    fprintf(out, "Usage: fulcrum <command> [flags]\n\n"
                 "Commands:\n"
                 "  serve     run the certificate authority (Fulcio-compatible HTTP API)\n"
                 "  version   print the version\n\n"
                 "Run 'fulcrum <command> --help' for a command's flags.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return serve_main(argc - 2, argv + 2);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("fulcrum %s\n", FULCRUM_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "fulcrum: unknown command \"%s\"\n\n", cmd);
    usage(stderr);
    return 2;
}
