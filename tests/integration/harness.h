/*
 * tests/integration/harness.h: what an integration test needs to drive real processes.
 *
 * - A per-test temporary directory (mkdtemp under $TMPDIR or /tmp), removed at exit.
 * - Child processes: build/fulcrum-dev-issuer and `build/fulcrum serve`, started in that
 *   directory with stdout/stderr captured to files there, waited for with a deadline (short polls,
 *   no fixed sleeps), stopped with SIGTERM (SIGKILL after a deadline). Children also get
 *   PR_SET_PDEATHSIG=SIGKILL, and an atexit hook plus fatal-signal handlers kill whatever is left,
 *   so no child outlives the test, whatever way it ends.
 * - HTTP helpers over libcurl (127.0.0.1 only; proxies from the environment are ignored).
 * - Crypto helpers over OpenSSL: client keys, PoP signatures, CSRs, PEM chains, profile bits.
 *
 * Environment: FULCRUM_BIN, FULCRUM_DEV_ISSUER_BIN (paths of the two programs),
 * FULCRUM_FIXTURES_DIR (tests/fixtures), FULCRUM_SOURCE_DIR.
 *
 * FULCRUM_VALGRIND=1 (`make test-valgrind`): every `fulcrum serve` and `fulcrum ctlog serve` the
 * harness starts (h_server_start, h_ctlog_start*, h_proc_start*, h_run) runs under valgrind
 * memcheck (`valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
 * --track-fds=no -q`, plus tests/valgrind.supp), so a memcheck error or a definite leak makes its
 * exit code after SIGTERM 99 instead of 0. Start-up and stop deadlines, and h_http's timeout, are
 * then multiplied by h_slow(). FULCRUM_TEST_SCALE (default 1) scales heavy tests' request counts
 * (h_scaled).
 *
 * Ownership: every function returning a pointer returns memory the caller frees with the named
 * function (free(), h_response_free(), EVP_PKEY_free(), X509_free(), sk_X509_pop_free()).
 * Errors: functions return NULL / -1 and print the reason to stderr prefixed with "harness: ".
 * Single-threaded use only.
 */
#ifndef FULCRUM_TESTS_INTEGRATION_HARNESS_H
#define FULCRUM_TESTS_INTEGRATION_HARNESS_H

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <sys/types.h>

/* ---- set-up ---------------------------------------------------------------------------- */

/* Creates the temp dir ("fulcrum-<test_name>-XXXXXX"), initialises libcurl, installs the atexit
 * hook and signal handlers. Call first. Returns 0 or -1. */
int h_init(const char *test_name);

/* The per-test temp dir (valid after h_init). */
const char *h_tmpdir(void);

/* Prints every captured child log (stderr and stdout files) to stderr. Called automatically by
 * h_finish() when failed != 0 and on fatal signals; call it yourself for extra context. */
void h_dump_logs(void);

/* Stops all children, prints their logs if failed != 0, removes the temp dir. Idempotent; also
 * runs from atexit. */
void h_finish(int failed);

/* Value of an environment variable that must be set; prints a message and returns NULL when
 * it is not. */
const char *h_env(const char *name);

/* 1 when FULCRUM_VALGRIND=1: the server and the CT log run under valgrind memcheck. */
int h_valgrind(void);

/* Factor for deadlines that a process under valgrind needs: 1, or 10 under valgrind. */
int h_slow(void);

/* n scaled by $FULCRUM_TEST_SCALE (a positive number, default 1), at least `min`. */
long h_scaled(long n, long min);

/* ---- child processes ------------------------------------------------------------------- */

typedef struct h_proc {
    pid_t pid;              /* 0 when not running */
    char name[32];          /* "issuer", "server-1", ... (log file prefix) */
    char stdout_path[4096]; /* <tmpdir>/<name>.stdout */
    char stderr_path[4096]; /* <tmpdir>/<name>.stderr */
    int exited;             /* 1 once reaped */
    int wait_status;        /* raw waitpid status once reaped */
    int valgrind;           /* runs under valgrind (FULCRUM_VALGRIND=1): exit code 99 = memcheck
                               errors, which make h_finish() fail the test */
} h_proc;

/* Sends SIGTERM and waits up to timeout_ms (then SIGKILL). Returns the exit code (0..255), or
 * 128+signal if killed by a signal, or -1 if it was not running. */
int h_proc_stop(h_proc *p, int timeout_ms);

/* 1 if the process is still running (reaps it if it has exited). */
int h_proc_alive(h_proc *p);

/* Starts argv (argv[0] a path) in the temp dir as a child like the others (stdout/stderr in
 * <tmp>/<name>.stdout/.stderr, killed at exit, stopped with h_proc_stop). Returns 0 or -1. */
int h_proc_start(h_proc *p, const char *name, char *const argv[]);

/* h_proc_start() with systemd's socket activation: after fork, before exec, the child gets the
 * sockets fds[0..nfds-1] (the caller's descriptors, left open in the caller) as descriptors
 * 3..3+nfds-1, and LISTEN_FDS=<nfds>, LISTEN_PID=<the child's pid> and, when fdnames is not NULL,
 * LISTEN_FDNAMES=<fdnames> in its environment (any other LISTEN_* variable removed). */
int h_proc_start_listen_fds(h_proc *p, const char *name, char *const argv[], const int *fds,
                            int nfds, const char *fdnames);

/* Runs argv (argv[0] a path) to completion in the temp dir, waiting at most timeout_ms (then
 * kills it and returns -1). Returns the exit code as h_proc_stop does; *stderr_text (may be NULL)
 * receives what it wrote on stderr (malloc'd). */
int h_run(const char *name, char *const argv[], int timeout_ms, char **stderr_text);

typedef struct h_issuer {
    h_proc proc;
    int port;
    char url[64]; /* "http://127.0.0.1:<port>" = the issuer URL */
} h_issuer;

/* Starts FULCRUM_DEV_ISSUER_BIN --host 127.0.0.1 --port 0 --port-file <tmp> --key-dir <tmp>, waits
 * (deadline ~20 s) for its "ready http://127.0.0.1:<port>" line. Returns 0 or -1. */
int h_issuer_start(h_issuer *iss);

/* The same, for tests that run several dev issuers: `name` (letters, digits, '-', at most 31
 * characters) names the log files, the port file (<tmp>/<name>.port) and the key directory
 * (<tmp>/<name>-keys), so each issuer has its own keys and logs. */
int h_issuer_start_named(h_issuer *iss, const char *name);

/* GET <issuer>/stats as JSON ({"discovery_fetches":N,"jwks_fetches":N,"tokens_minted":N}), or
 * NULL with a message. Caller json_decref()s it. */
json_t *h_issuer_stats(const h_issuer *iss);

/* Options of h_issuer_start_opts; zeroed fields take the defaults. */
typedef struct h_issuer_opts {
    const char *name;     /* as for h_issuer_start_named; NULL = "issuer" */
    int port;             /* 0 = any free port (see h_free_port to pick one in advance) */
    const char *key_dir;  /* NULL = <tmp>/<name>-keys; the same dir = the same keys */
    const char *tls_cert; /* --tls-cert/--tls-key: serve https (iss->url is then https://...) */
    const char *tls_key;
} h_issuer_opts;

/* Starts a dev issuer with these options and waits for its ready line (http or https). */
int h_issuer_start_opts(h_issuer *iss, const h_issuer_opts *opts);

/* A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and closed), for a process
 * that is to listen there later. Returns the port or -1. */
int h_free_port(void);

/* GET <issuer>/token?<query> (query may be NULL or ""). Returns the JWT (malloc'd) or NULL. */
char *h_issuer_token(const h_issuer *iss, const char *query);

/* POST <issuer>/token with a JSON body (the same names plus "claims"/"header"). */
char *h_issuer_token_json(const h_issuer *iss, const char *json_body);

typedef struct h_server_opts {
    const char *ca;            /* "ephemeralca" (default) or "fileca" */
    const char *fileca_cert;   /* fileca only */
    const char *fileca_key;
    const char *fileca_passwd;
    const char *config_json;   /* full config file text; NULL = one email issuer for `issuer` */
    const h_issuer *issuer;    /* used when config_json is NULL */
    const char *const *extra_args; /* NULL-terminated, appended to the command line */
    const char *config_path;   /* an existing config file passed to --config-path as is
                                  (config_json and issuer are then ignored) */
} h_server_opts;

typedef struct h_server {
    h_proc proc;
    int port;
    char url[64]; /* "http://127.0.0.1:<port>" */
    char config_path[4096];
} h_server;

/* Writes the config file, starts FULCRUM_BIN serve ... --ct-log-url "", waits (deadline ~20 s) for
 * the port file and a 200 from /healthz. Returns 0 or -1 (printing the server's stderr). */
int h_server_start(h_server *srv, const h_server_opts *opts);

/* ---- CT log ---------------------------------------------------------------------------- */

typedef struct h_ctlog {
    h_proc proc;
    int port;
    char url[64];                /* "http://127.0.0.1:<port>" = the log prefix */
    char state_dir[4096];
    char public_key_path[4200];  /* <state_dir>/ctlog/public.pem */
} h_ctlog;

/* Starts FULCRUM_BIN ctlog serve --host 127.0.0.1 --port <port> (0 = any free port) with
 * --state-dir state_dir and --roots roots_pem_path, logging to <tmp>/<name>.std{out,err} (use a
 * new name for every start), and waits (~20 s) for a 200 from /healthz. The same state_dir and
 * port restart the same log. Returns 0 or -1. Stop it with h_proc_stop(&log->proc, ...). */
int h_ctlog_start(h_ctlog *log, const char *name, const char *roots_pem_path,
                  const char *state_dir, int port);

/* h_ctlog_start with more flags (NULL-terminated extra_args, e.g. "--key-path", path). */
int h_ctlog_start_args(h_ctlog *log, const char *name, const char *roots_pem_path,
                       const char *state_dir, int port, const char *const *extra_args);

/* ---- HTTP ------------------------------------------------------------------------------ */

typedef struct h_response {
    long status;       /* 0 if the transfer failed */
    char *body;        /* NUL-terminated (NUL not counted) */
    size_t body_len;
    char *headers;     /* raw header block of the final response */
    char curl_error[256];
} h_response;

/* One request. `headers` is a NULL-terminated list of "Name: value" lines (may be NULL).
 * Returns 0 when a response was received (any status), -1 on transport failure (resp->curl_error
 * says why). resp is always initialised; free it with h_response_free(). */
int h_http(const char *method, const char *url, const char *const *headers, const void *body,
           size_t body_len, h_response *resp);

/* Trust this PEM CA file (besides nothing else) for https requests made by h_http from now on;
 * NULL restores libcurl's default CA store. */
/* A libcurl CURLOPT_WRITEFUNCTION appending to an h_sink (CURLOPT_WRITEDATA): p stays
 * NUL-terminated; the caller frees p. */
typedef struct h_sink {
    char *p;
    size_t len;
} h_sink;
size_t h_curl_sink(char *data, size_t size, size_t nmemb, void *arg);

void h_http_set_cainfo(const char *pem_path);

/* Convenience wrappers. */
int h_get(const char *url, h_response *resp);
/* POST a JSON body; bearer (may be NULL) goes into "Authorization: Bearer <bearer>". */
int h_post_json(const char *url, const char *json, const char *bearer, h_response *resp);

/* Value of the first header called `name` (case-insensitive), malloc'd, trimmed; NULL if none. */
char *h_header(const h_response *resp, const char *name);

/* Parses resp->body as JSON (NULL and a message if it is not). */
json_t *h_json(const h_response *resp);

/* 1 if resp is a grpc-gateway error: the given HTTP status, Content-Type application/json,
 * body exactly {"code":code,"message":<string>,"details":[]} and message starting with `prefix`
 * (NULL = any). Prints what differs when it is not. */
int h_is_error(const h_response *resp, long status, int code, const char *prefix);

void h_response_free(h_response *resp);

/* ---- crypto ---------------------------------------------------------------------------- */

/* kind: "P-224", "P-256", "P-384", "P-521", "RSA-1024", "RSA-2048", "RSA-3072", "Ed25519". */
EVP_PKEY *h_key_new(const char *kind);

/* SubjectPublicKeyInfo PEM (malloc'd, with trailing newline). */
char *h_key_spki_pem(EVP_PKEY *key);

/* The proof of possession Fulcio verifies (fulcio-compat §2.2): ECDSA with the curve's hash
 * (P-256 SHA-256, P-384 SHA-384, P-521 SHA-512, others SHA-256) DER-encoded, RSA PKCS#1 v1.5
 * SHA-256, pure Ed25519. Returns malloc'd signature bytes. */
unsigned char *h_sign_pop(EVP_PKEY *key, const char *msg, size_t *sig_len);

/* Base64 of bytes: url=0 standard padded, url=1 URL-safe unpadded. malloc'd. */
char *h_b64(const void *data, size_t len, int url);

/* PEM CSR (malloc'd) for `key`, self-signed with `signer` (pass `key` for a good CSR, another key
 * for a bad self-signature). md NULL = the hash §2.3 expects for the key (NULL for Ed25519). */
char *h_csr_pem(EVP_PKEY *key, EVP_PKEY *signer, const EVP_MD *md);

/* One certificate from PEM text (NULL if it does not parse as exactly one PEM certificate). */
X509 *h_cert_from_pem(const char *pem);

/* All certificates of a concatenated PEM text, in order (NULL if none or any fails). */
STACK_OF(X509) *h_chain_from_pem(const char *pem);

/* Certificates of a JSON array of PEM strings (NULL if not an array or any fails). */
STACK_OF(X509) *h_chain_from_json(const json_t *array);

/* Verifies chain[0] against trusted root `root` with chain[1..] as untrusted intermediates
 * (X509_verify_cert at the current time; code-signing purpose when OpenSSL has it, otherwise the
 * leaf EKU is checked separately by the caller). Returns 1 if it verifies, else 0 and prints why. */
int h_verify_chain(STACK_OF(X509) *chain, X509 *root);

/* The DER contents of the extnValue OCTET STRING of the extension with dotted OID `oid`.
 * Returns a pointer into the certificate (not to be freed) and its length, or NULL.
 * *critical receives the critical flag when not NULL. */
const unsigned char *h_ext_value(const X509 *cert, const char *oid, size_t *len, int *critical);

/* Dotted OIDs of all extensions, in certificate order, joined by ",". malloc'd. */
char *h_ext_oids(const X509 *cert);

/* notAfter - notBefore in seconds (LONG_MIN on error). */
long h_validity_seconds(const X509 *cert);

/* Writes text to path (truncating). Returns 0 or -1. */
int h_write_file(const char *path, const char *text);

/* Reads a whole file (malloc'd, NUL-terminated) or NULL. */
char *h_read_file(const char *path, size_t *len);

/* ---- tools, SoftHSM2, SCTs (harness_keys.c) --------------------------------------------- */

/* Runs argv (argv[0] a path) to completion outside the harness's child table (which has a
 * fixed size), stdin /dev/null, stdout and stderr into files of the temp dir, killing it after
 * timeout_ms. Returns its exit code (-1 if it could not run, was killed or died of a signal);
 * *out / *err (may be NULL) receive what it wrote (malloc'd). */
int h_exec(char *const argv[], int timeout_ms, char **out, char **err);

/* The full path of `name` found on $PATH (out), or -1 with a message. */
int h_find_tool(const char *name, char *out, size_t len);

/* A SoftHSM2 set-up private to this test. */
typedef struct h_softhsm {
    char module[4096]; /* libsofthsm2.so */
    char util[4096];   /* softhsm2-util */
    char tool[4096];   /* pkcs11-tool (OpenSC) */
} h_softhsm;

/* Writes <tmp>/softhsm2.conf with the token directory <tmp>/softhsm-tokens and sets
 * SOFTHSM2_CONF to it (for this process and every child started later); the module is
 * $FULCRUM_SOFTHSM2_MODULE or compiled_default (may be NULL); softhsm2-util and pkcs11-tool
 * must be on PATH. Returns 0 or -1 with a message. */
int h_softhsm_setup(h_softhsm *h, const char *compiled_default);

/* softhsm2-util --init-token --free --label label --pin pin --so-pin <fixed>. 0 or -1. */
int h_softhsm_init_token(const h_softhsm *h, const char *label, const char *pin);

/* Writes a crypto11 JSON config {"Path": <module>, "TokenLabel": token_label} (no Pin). */
int h_softhsm_write_config(const h_softhsm *h, const char *path, const char *token_label);

/* OpenSSL's own check (SCT_LIST_validate) of the SCT list embedded in `leaf`, issued by
 * `issuer`: 1 when it holds exactly one SCT, valid for the log whose public key is log_key;
 * else 0 with a message. */
int h_embedded_sct_valid(X509 *leaf, X509 *issuer, EVP_PKEY *log_key);

/* The PEM public key in path (NULL with a message). */
EVP_PKEY *h_read_pubkey(const char *path);

#endif
