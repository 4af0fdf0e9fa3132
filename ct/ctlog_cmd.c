#include "ct/ctlog_cmd.h"

#include <event2/http.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca/http_server.h"
#include "common/base64.h"
#include "common/flags.h"
#include "common/log.h"
#include "ct/ct_log.h"
#include "hsm/pkcs11_config.h"
#include "hsm/pkcs11_signer.h"
#include "hsm/pkcs11_token.h"

struct ctlog_flags {
    const char *host, *port_file, *state_dir, *roots, *log_level;
    const char *key_path, *key_passwd_file;                     /* a PEM key file */
    struct pkcs11_options p11;                                  /* a key in a PKCS#11 token */
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
                 "The log's key (ECDSA P-256), one of:\n"
                 "  --key-path FILE          a PEM private key (PKCS#8 or EC PRIVATE KEY, maybe\n"
                 "                           encrypted: --key-passwd-file); never generated\n"
                 "  --hsm-key-label LABEL    a key in a PKCS#11 token (--pkcs11-config-path,\n"
                 "                           --pkcs11-pin-file; make one with `fulcrum ctlog\n"
                 "                           createkey`); it never leaves the token\n"
                 "  neither                  <state-dir>/ctlog/private.pem, created on first run\n"
                 "The database remembers its key: a different key is refused.\n\n"
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

/* Which key: --key-path or --hsm-key-label (or neither), and the flags each one needs. */
static int check_key_flags(const struct ctlog_flags *f)
{
    int file = f->key_path && *f->key_path;
    int hsm = f->p11.key_label && *f->p11.key_label;
    if (file && hsm) {
        log_error("ctlog", "--key-path and --hsm-key-label both name the log's key: give one");
        return -1;
    }
    if (f->key_passwd_file && *f->key_passwd_file && !file) {
        log_error("ctlog", "--key-passwd-file needs --key-path");
        return -1;
    }
    if (!hsm && ((f->p11.config_path && *f->p11.config_path) ||
                 (f->p11.pin_file && *f->p11.pin_file))) {
        log_error("ctlog", "--pkcs11-config-path and --pkcs11-pin-file need --hsm-key-label "
                           "(the log key's CKA_LABEL in the token)");
        return -1;
    }
    if (file && access(f->key_path, R_OK) != 0) {
        log_error("ctlog", "--key-path %s: %s (a key given by --key-path is never generated; "
                           "without the flag the log uses <state-dir>/ctlog/private.pem)",
                  f->key_path, strerror(errno));
        return -1;
    }
    return 0;
}

static int serve(int argc, char **argv)
{
    struct ctlog_flags f = {
        .host = "0.0.0.0", .state_dir = "./fulcrum-state", .roots = "", .log_level = "info",
        .port = 6962, .batch_ms = 0, .sth_interval_ms = 250, .max_get_entries = 1000,
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
         "group-commit window under load in milliseconds: a batch that follows a commit within "
         "it gathers until this long after its first submission (an idle log commits at once; "
         "default 0: commit as soon as the writer is free)", 0},
        {"sth-interval-ms", NULL, FLAG_INT, &f.sth_interval_ms,
         "longest delay before a new STH covers new entries, in milliseconds (default 250)", 0},
        {"max-get-entries", NULL, FLAG_INT, &f.max_get_entries,
         "most entries one get-entries answer holds (default 1000)", 0},
        {"key-path", NULL, FLAG_STRING, &f.key_path,
         "the log's key: PEM EC P-256 private key file (PKCS#8 or SEC1), which must exist "
         "(default <state-dir>/ctlog/private.pem, created on first run)", 0},
        {"key-passwd-file", NULL, FLAG_STRING, &f.key_passwd_file,
         "file holding the password of an encrypted --key-path", 0},
        {"hsm-key-label", NULL, FLAG_STRING, &f.p11.key_label,
         "the log's key: CKA_LABEL of an EC P-256 key pair in the PKCS#11 token", 0},
        {"pkcs11-config-path", NULL, FLAG_STRING, &f.p11.config_path,
         "with --hsm-key-label: crypto11 JSON naming the module (Path), the token (TokenLabel, "
         "TokenSerial or SlotNumber) and maybe the Pin (default config/crypto11.conf)", 0},
        {"pkcs11-pin-file", NULL, FLAG_STRING, &f.p11.pin_file,
         "with --hsm-key-label: file holding the token's user PIN (else "
         "$CREDENTIALS_DIRECTORY/pkcs11-pin, else the config's Pin)", 0},
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
    if (log_set_level_name(f.log_level) != 0) {
        fprintf(stderr, "fulcrum ctlog serve: --log-level %s: use debug, info, warn or error\n", f.log_level);
        return 2;
    }
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
    if (check_key_flags(&f) != 0)
        return 2;
    /* Before any event_base: the log's writer wakes workers from its own thread. */
    evthread_use_pthreads();
    STACK_OF(X509) *roots = load_roots(f.roots);
    if (!roots)
        return 1;
    signer *key_signer = NULL;
    if (f.p11.key_label && *f.p11.key_label &&
        (key_signer = signer_pkcs11_key_new(&f.p11, why, sizeof why)) == NULL) {
        log_error("ctlog", "%s", why);
        sk_X509_pop_free(roots, X509_free);
        return 1;
    }
    ct_log_options o = {
        .state_dir = f.state_dir, .roots = roots, .key_signer = key_signer,
        .key_path = f.key_path, .key_passwd_file = f.key_passwd_file,
        .batch_ms = (int)f.batch_ms,
        .sth_interval_ms = (int)f.sth_interval_ms, .max_get_entries = (int)f.max_get_entries,
    };
    ct_log *log = ct_log_open(&o, why, sizeof why);
    sk_X509_pop_free(roots, X509_free);
    if (!log) {
        log_error("ctlog", "%s", why);
        signer_free(key_signer);
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
        signer_free(key_signer);
        return 1;
    }
    int rc = http_server_run(srv);
    /* The workers have stopped: close the log (committing what is queued) while their event
     * bases still exist, then free them. */
    ct_log_close(log);
    http_server_free(srv);
    signer_free(key_signer);
    return rc == 0 ? 0 : 1;
}

/* ---- createkey ---- */

static void createkey_usage(const struct flag *flags, size_t n, FILE *out)
{
    fprintf(out, "Usage: fulcrum ctlog createkey --hsm-key-label LABEL [flags]\n\n"
                 "Generates the CT log's ECDSA P-256 key pair inside a PKCS#11 token (private,\n"
                 "sensitive, never extractable, sign only; CKA_ID = the label's bytes) and\n"
                 "writes its public key (PEM) to --out or stdout. Serve the log with it:\n"
                 "`fulcrum ctlog serve --hsm-key-label LABEL`, or `fulcrum serve\n"
                 "--ct-log-hsm-key-label LABEL`. An existing key with that label is refused.\n\n"
                 "Flags:\n");
    flags_usage(flags, n, out);
}

static int createkey(int argc, char **argv)
{
    const char *config_path = PKCS11_DEFAULT_CONFIG_PATH, *pin_file = NULL, *label = "";
    const char *out = NULL;
    int help = 0;
    struct flag flags[] = {
        {"pkcs11-config-path", NULL, FLAG_STRING, &config_path,
         "crypto11 JSON naming the module, the token and maybe the Pin (default "
         "config/crypto11.conf)", 0},
        {"pkcs11-pin-file", NULL, FLAG_STRING, &pin_file,
         "file holding the user PIN (else $CREDENTIALS_DIRECTORY/pkcs11-pin, else the config's "
         "Pin)", 0},
        {"hsm-key-label", NULL, FLAG_STRING, &label,
         "CKA_LABEL of the new key pair (required)", 0},
        {"out", NULL, FLAG_STRING, &out, "write the public key PEM here (default stdout)", 0},
        {"help", "h", FLAG_BOOL, &help, "show this help", 0},
    };
    size_t nflags = sizeof flags / sizeof flags[0];
    char why[1024] = "";
    if (flags_parse(flags, nflags, argc, argv, why, sizeof why) != 0) {
        fprintf(stderr, "fulcrum ctlog createkey: %s\n", why);
        return 2;
    }
    if (help) {
        createkey_usage(flags, nflags, stdout);
        return 0;
    }
    if (!*label) {
        fprintf(stderr, "fulcrum ctlog createkey: --hsm-key-label is required\n");
        return 2;
    }
    /* Open the output first (a temp file renamed at the end): a bad path must not leave a new
     * key behind, and a failure must not touch an existing file. */
    char tmp[4200] = "";
    FILE *fp = stdout;
    if (out && *out) {
        snprintf(tmp, sizeof tmp, "%s.tmp", out);
        if ((fp = fopen(tmp, "w")) == NULL) {
            log_error("ctlog", "cannot write --out %s: %s", tmp, strerror(errno));
            return 1;
        }
    }
    p11_rw_session t;
    const char *source = NULL;
    CK_OBJECT_HANDLE priv;
    CK_KEY_TYPE kt;
    EVP_PKEY *pub = NULL;
    int generated = 0, rc = 1;
    if (p11_rw_session_open(&t, config_path, pin_file, &source, why, sizeof why) != 0 ||
        p11_key_pair_get(&t, label, label, strlen(label), P11_KEY_P256, 0, &priv, &kt, &pub,
                         &generated, why, sizeof why) != 0) {
        log_error("ctlog", "%s", why);
        goto done;
    }
    log_info("ctlog", "generated an EC P-256 key pair labelled \"%s\" in token \"%s\" (PIN from "
                      "%s)", label, t.token, source ? source : "nowhere");
    /* The new key signs, and the public key read back verifies it. */
    static const unsigned char probe[] = "fulcrum ctlog createkey check";
    unsigned char sig[160];
    size_t siglen = sizeof sig;
    CK_RV rv;
    EVP_MD_CTX *ctx = NULL;
    int ok = p11_sign(&t.mod, t.s, priv, kt, EVP_sha256(), probe, sizeof probe - 1, sig, &siglen,
                      &rv, why, sizeof why) == 0;
    if (ok) {
        ok = (ctx = EVP_MD_CTX_new()) != NULL &&
             EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, probe, sizeof probe - 1) == 1;
        EVP_MD_CTX_free(ctx);
        ERR_clear_error();
        if (!ok)
            snprintf(why, sizeof why, "its signature does not verify with its public key");
    }
    if (!ok) {
        log_error("ctlog", "the new key \"%s\" fails its check: %s", label, why);
        goto done;
    }
    if (PEM_write_PUBKEY(fp, pub) != 1 || fflush(fp) != 0) {
        log_error("ctlog", "cannot write the public key to %s", out && *out ? out : "stdout");
        goto done;
    }
    unsigned char *der = NULL, id[32];
    int n = i2d_PUBKEY(pub, &der);
    char *id64 = NULL;
    if (n > 0) {
        SHA256(der, (size_t)n, id);
        id64 = b64_encode(id, sizeof id);
    }
    OPENSSL_free(der);
    log_info("ctlog", "public key %s%s, log ID %s", out && *out ? "written to " : "on stdout",
             out && *out ? out : "", id64 ? id64 : "?");
    free(id64);
    rc = 0;
done:
    if (fp != stdout) {
        int closed = fclose(fp) == 0;
        if (rc == 0 && (!closed || rename(tmp, out) != 0)) {
            log_error("ctlog", "cannot write --out %s: %s", out, strerror(errno));
            rc = 1;
        }
        if (rc != 0)
            unlink(tmp);
    }
    EVP_PKEY_free(pub);
    p11_rw_session_close(&t);
    return rc;
}

int ctlog_main(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "serve") == 0)
        return serve(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "createkey") == 0)
        return createkey(argc - 1, argv + 1);
    FILE *out = argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
                              strcmp(argv[0], "help") == 0)
                    ? stdout
                    : stderr;
    fprintf(out, "Usage: fulcrum ctlog serve [flags]       run an RFC 6962 log\n"
                 "       fulcrum ctlog createkey [flags]   make its key in a PKCS#11 token\n\n"
                 "Run 'fulcrum ctlog serve --help' or 'fulcrum ctlog createkey --help' for the "
                 "flags.\n");
    return out == stdout ? 0 : 2;
}
