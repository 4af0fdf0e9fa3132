#include "ct/ctlog_cmd.h"

#include <event2/http.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/http_server.h"
#include "common/base64.h"
#include "common/flags.h"
#include "common/log.h"
#include "ct/ct_log.h"

struct ctlog_flags {
    const char *host, *port_file, *state_dir, *roots, *log_level;
    long port, workers, batch_ms, sth_interval_ms, max_get_entries;
    int help;
};

static void usage(const struct flag *flags, size_t n, FILE *out)
{
    fprintf(out, "Usage: fulcrum ctlog serve [flags]\n\n"
                 "Runs a Certificate Transparency log (RFC 6962): POST /ct/v1/add-chain,\n"
                 "/ct/v1/add-pre-chain; GET /ct/v1/get-sth, get-sth-consistency,\n"
                 "get-proof-by-hash, get-entries, get-roots, get-entry-and-proof; /healthz.\n"
                 "State (SQLite database, key) lives in <state-dir>/ctlog/; the public key is\n"
                 "written to <state-dir>/ctlog/public.pem.\n\n"
                 "Flags:\n");
    flags_usage(flags, n, out);
}

static STACK_OF(X509) *load_roots(const char *path)
{
    BIO *bio = BIO_new_file(path, "r");
    if (!bio) {
        log_error("ctlog", "cannot read --roots %s", path);
        ERR_clear_error();
        return NULL;
    }
    STACK_OF(X509) *roots = sk_X509_new_null();
    X509 *x;
    while (roots && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        if (!sk_X509_push(roots, x))
            X509_free(x);
    unsigned long e = ERR_peek_last_error();
    int clean_end = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
    ERR_clear_error();
    BIO_free(bio);
    if (!roots || sk_X509_num(roots) == 0 || !clean_end) {
        log_error("ctlog", "--roots %s: %s", path,
                  roots && sk_X509_num(roots) && !clean_end ? "a PEM certificate is malformed"
                                                            : "no PEM certificate found");
        sk_X509_pop_free(roots, X509_free);
        return NULL;
    }
    return roots;
}

static void handle(struct evhttp_request *req, struct event_base *base, void *arg)
{
    ct_log *log = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path)
        path = "/";
    static const char prefix[] = "/ct/v1/";
    if (strncmp(path, prefix, sizeof prefix - 1) == 0 &&
        ct_log_http_handle(log, req, base, path + sizeof prefix - 1))
        return;
    if (strcmp(path, "/healthz") == 0) {
        static const char ok[] = "{\"status\":\"SERVING\"}";
        http_reply(req, 200, "application/json", ok, sizeof ok - 1);
        return;
    }
    static const char nf[] = "{\"success\":false,\"error_message\":\"not found\"}";
    http_reply(req, 404, "application/json", nf, sizeof nf - 1);
}

static int serve(int argc, char **argv)
{
    struct ctlog_flags f = {
        .host = "0.0.0.0", .state_dir = "./fulcrum-state", .roots = "", .log_level = "info",
        .port = 6962, .batch_ms = 5, .sth_interval_ms = 250, .max_get_entries = 1000,
    };
    struct flag flags[] = {
        {"host", NULL, FLAG_STRING, &f.host, "address to listen on (default 0.0.0.0)", 0},
        {"port", NULL, FLAG_INT, &f.port, "port to listen on; 0 = any free port (default 6962)", 0},
        {"port-file", NULL, FLAG_STRING, &f.port_file,
         "write the bound port to this file once listening", 0},
        {"state-dir", NULL, FLAG_STRING, &f.state_dir,
         "directory for ctlog/log.db and the key (default ./fulcrum-state)", 0},
        {"roots", NULL, FLAG_STRING, &f.roots,
         "PEM file of the accepted roots (required)", 0},
        {"workers", NULL, FLAG_INT, &f.workers, "HTTP worker threads (default: one per core)", 0},
        {"batch-ms", NULL, FLAG_INT, &f.batch_ms,
         "group-commit window in milliseconds (default 5)", 0},
        {"sth-interval-ms", NULL, FLAG_INT, &f.sth_interval_ms,
         "longest delay before a new STH covers new entries, in milliseconds (default 250)", 0},
        {"max-get-entries", NULL, FLAG_INT, &f.max_get_entries,
         "most entries one get-entries answer holds (default 1000)", 0},
        {"log-level", NULL, FLAG_STRING, &f.log_level, "debug | info | warn | error (default info)", 0},
        {"help", "h", FLAG_BOOL, &f.help, "show this help", 0},
    };
    size_t nflags = sizeof flags / sizeof flags[0];
    char why[1024];
    if (flags_parse(flags, nflags, argc, argv, why, sizeof why) != 0) {
        fprintf(stderr, "fulcrum ctlog serve: %s\n", why);
        return 2;
    }
    if (f.help) {
        usage(flags, nflags, stdout);
        return 0;
    }
    if (strcmp(f.log_level, "debug") == 0)
        log_set_level(LOG_LVL_DEBUG);
    else if (strcmp(f.log_level, "warn") == 0)
        log_set_level(LOG_LVL_WARN);
    else if (strcmp(f.log_level, "error") == 0)
        log_set_level(LOG_LVL_ERROR);
    if (!*f.roots) {
        log_error("ctlog", "--roots is required: a PEM file of the roots the log accepts");
        return 2;
    }
    if (f.port < 0 || f.port > 65535 || f.workers < 0 || f.workers > 256 || f.batch_ms < 0 ||
        f.batch_ms > 10000 || f.sth_interval_ms < 1 || f.sth_interval_ms > 3600000 ||
        f.max_get_entries < 1 || f.max_get_entries > 100000) {
        log_error("ctlog", "invalid --port, --workers, --batch-ms (0..10000), --sth-interval-ms "
                           "(1..3600000) or --max-get-entries (1..100000)");
        return 2;
    }
    /* Before any event_base: the log's writer wakes workers from its own thread. */
    evthread_use_pthreads();
    STACK_OF(X509) *roots = load_roots(f.roots);
    if (!roots)
        return 1;
    ct_log_options o = {
        .state_dir = f.state_dir, .roots = roots,
        .batch_ms = f.batch_ms == 0 ? 1 : (int)f.batch_ms,
        .sth_interval_ms = (int)f.sth_interval_ms, .max_get_entries = (int)f.max_get_entries,
    };
    ct_log *log = ct_log_open(&o, why, sizeof why);
    sk_X509_pop_free(roots, X509_free);
    if (!log) {
        log_error("ctlog", "%s", why);
        return 1;
    }
    http_server_options opts = {
        .host = f.host, .port = (int)f.port, .port_file = f.port_file, .workers = (int)f.workers,
        .max_body_bytes = 1u << 20,
    };
    http_server *srv = http_server_new(&opts, handle, log, why, sizeof why);
    if (!srv) {
        log_error("ctlog", "%s", why);
        ct_log_close(log);
        return 1;
    }
    int rc = http_server_run(srv);
    /* The workers have stopped: close the log (committing what is queued) while their event
     * bases still exist, then free them. */
    ct_log_close(log);
    http_server_free(srv);
    return rc == 0 ? 0 : 1;
}

int ctlog_main(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "serve") == 0)
        return serve(argc - 1, argv + 1);
    FILE *out = argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
                              strcmp(argv[0], "help") == 0)
                    ? stdout
                    : stderr;
    fprintf(out, "Usage: fulcrum ctlog serve [flags]\n\n"
                 "Run 'fulcrum ctlog serve --help' for the flags.\n");
    return out == stdout ? 0 : 2;
}
