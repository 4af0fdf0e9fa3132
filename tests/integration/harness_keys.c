/*
 * tests/integration/harness_keys.c: short tool runs, a private SoftHSM2 and OpenSSL's check of
 * embedded SCTs (declared in harness.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/ct.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "integration/harness.h"

extern char **environ;

static void kerr(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("harness: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int h_exec(char *const argv[], int timeout_ms, char **out, char **err)
{
    static int seq;
    char out_path[4200], err_path[4200];
    seq++;
    snprintf(out_path, sizeof out_path, "%s/exec-%d.stdout", h_tmpdir(), seq);
    snprintf(err_path, sizeof err_path, "%s/exec-%d.stderr", h_tmpdir(), seq);
    if (out)
        *out = NULL;
    if (err)
        *err = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        kerr("cannot run %s: %s", argv[0], strerror(rc));
        return -1;
    }
    int status = 0, waited = 0, killed = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            return -1;
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            kerr("%s still running after %d ms: killed", argv[0], timeout_ms);
            killed = 1;
            break;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        waited += 10;
    }
    if (out)
        *out = h_read_file(out_path, NULL);
    if (err)
        *err = h_read_file(err_path, NULL);
    return !killed && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int h_find_tool(const char *name, char *out, size_t len)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    char *save = NULL;
    for (char *dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(out, len, "%s/%s", dir, name);
        if (access(out, X_OK) == 0)
            return 0;
    }
    kerr("%s is not on PATH", name);
    return -1;
}

int h_softhsm_setup(h_softhsm *h, const char *compiled_default)
{
    memset(h, 0, sizeof *h);
    const char *m = getenv("FULCRUM_SOFTHSM2_MODULE");
    if (!m || !*m)
        m = compiled_default;
    if (!m || !*m || access(m, R_OK) != 0) {
        kerr("no SoftHSM2 module: set FULCRUM_SOFTHSM2_MODULE");
        return -1;
    }
    snprintf(h->module, sizeof h->module, "%s", m);
    if (h_find_tool("softhsm2-util", h->util, sizeof h->util) != 0 ||
        h_find_tool("pkcs11-tool", h->tool, sizeof h->tool) != 0)
        return -1;
    char tokens[4200], conf[4200], text[4400];
    snprintf(tokens, sizeof tokens, "%s/softhsm-tokens", h_tmpdir());
    snprintf(conf, sizeof conf, "%s/softhsm2.conf", h_tmpdir());
    snprintf(text, sizeof text,
             "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens);
    if ((mkdir(tokens, 0700) != 0 && errno != EEXIST) || h_write_file(conf, text) != 0) {
        kerr("cannot write the SoftHSM2 state in %s", h_tmpdir());
        return -1;
    }
    setenv("SOFTHSM2_CONF", conf, 1);
    return 0;
}

int h_softhsm_init_token(const h_softhsm *h, const char *label, const char *pin)
{
    char *err = NULL;
    char *argv[] = {(char *)h->util, "--init-token", "--free", "--label", (char *)label,
                    "--pin", (char *)pin, "--so-pin", "so-5678-pin", NULL};
    int rc = h_exec(argv, 60000, NULL, &err);
    if (rc != 0)
        kerr("softhsm2-util --init-token %s (exit %d): %s", label, rc, err ? err : "");
    free(err);
    return rc == 0 ? 0 : -1;
}

int h_softhsm_write_config(const h_softhsm *h, const char *path, const char *token_label)
{
    json_t *j = json_pack("{s:s,s:s}", "Path", h->module, "TokenLabel", token_label);
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    int rc = text ? h_write_file(path, text) : -1;
    free(text);
    return rc;
}

EVP_PKEY *h_read_pubkey(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *k = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    ERR_clear_error();
    if (!k)
        kerr("%s is not a PEM public key", path);
    return k;
}

int h_embedded_sct_valid(X509 *leaf, X509 *issuer, EVP_PKEY *log_key)
{
    unsigned char *der = NULL;
    int n = log_key ? i2d_PUBKEY(log_key, &der) : -1;
    if (n <= 0 || n > 300) {
        OPENSSL_free(der);
        kerr("the log key cannot be encoded");
        return 0;
    }
    char b64[512], conf_path[4200], conf[700];
    EVP_EncodeBlock((unsigned char *)b64, der, n);
    OPENSSL_free(der);
    snprintf(conf_path, sizeof conf_path, "%s/h-ctlogs.cnf", h_tmpdir());
    snprintf(conf, sizeof conf, "enabled_logs = l\n[l]\ndescription = log\nkey = %s\n", b64);
    h_write_file(conf_path, conf);
    CTLOG_STORE *store = CTLOG_STORE_new();
    CT_POLICY_EVAL_CTX *ctx = CT_POLICY_EVAL_CTX_new();
    STACK_OF(SCT) *scts = X509_get_ext_d2i(leaf, NID_ct_precert_scts, NULL, NULL);
    int ok = store && ctx && CTLOG_STORE_load_file(store, conf_path) == 1 && scts &&
             sk_SCT_num(scts) == 1 && CT_POLICY_EVAL_CTX_set1_cert(ctx, leaf) == 1 &&
             CT_POLICY_EVAL_CTX_set1_issuer(ctx, issuer) == 1;
    if (!ok) {
        kerr("no single embedded SCT to check (%d found)", scts ? sk_SCT_num(scts) : 0);
    } else {
        CT_POLICY_EVAL_CTX_set_shared_CTLOG_STORE(ctx, store);
        int r = SCT_LIST_validate(scts, ctx);
        SCT *s = sk_SCT_value(scts, 0);
        ok = r == 1 && SCT_get_validation_status(s) == SCT_VALIDATION_STATUS_VALID;
        if (!ok)
            kerr("SCT_LIST_validate: %d, status %s", r, SCT_validation_status_string(s));
    }
    SCT_LIST_free(scts);
    CT_POLICY_EVAL_CTX_free(ctx);
    CTLOG_STORE_free(store);
    ERR_clear_error();
    return ok;
}
