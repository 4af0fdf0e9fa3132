/*
 * ca/main.c: the `fulcrum` binary: one entry point, subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "ca/createca_cmd.h"
#include "ca/http_server.h"
#include "ca/serve_cmd.h"
#include "ca/trusted_root_cmd.h"
#include "ct/ctlog_cmd.h"

#ifndef FULCRUM_VERSION
#define FULCRUM_VERSION "0.1.0"
#endif

static void usage(FILE *out)
{
    fprintf(out, "Usage: fulcrum <command> [flags]\n\n"
                 "Commands:\n"
                 "  serve     run the certificate authority (Fulcio-compatible HTTP API)\n"
                 "  createca  create a CA (root, optionally an intermediate) inside a PKCS#11 token\n"
                 "  ctlog     run a Certificate Transparency log (ctlog serve)\n"
                 "  trusted-root  print a Sigstore trusted_root.json for this instance\n"
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
    /* Take systemd's sockets ($LISTEN_FDS) before any thread exists: it unsets the variables,
     * and unsetenv() is not thread-safe. A malformed protocol is reported by the server. */
    if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "ctlog") == 0)
        (void)http_listen_fds(NULL, 0);
    if (strcmp(cmd, "serve") == 0)
        return serve_main(argc - 2, argv + 2);
    if (strcmp(cmd, "createca") == 0)
        return createca_main(argc - 2, argv + 2);
    if (strcmp(cmd, "ctlog") == 0)
        return ctlog_main(argc - 2, argv + 2);
    if (strcmp(cmd, "trusted-root") == 0)
        return trusted_root_main(argc - 2, argv + 2);
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
