#include "ca/serve_cmd.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/thread.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca/api.h"
#include "ca/credentials.h"
#include "ca/http_server.h"
#include "ca/reload.h"
#include "ca/serve_ops.h"
#include "ca/service.h"
#include "common/flags.h"
#include "common/log.h"
#include "config/config.h"
#include "hsm/pkcs11_signer.h"
#include "hsm/signer.h"
#include "oidc/jwks_cache.h"

#define DEFAULT_CONFIG_YAML "/etc/fulcio-config/config.yaml"
#define DEFAULT_CONFIG_JSON "/etc/fulcio-config/config.json"

/* Fulcio's built-in configuration, used when no config file exists (fulcio-compat.md §3.1). */
static const char builtin_config[] =
    "{\"OIDCIssuers\":{"
    "\"https://oauth2.sigstore.dev/auth\":{\"IssuerURL\":\"https://oauth2.sigstore.dev/auth\","
    "\"ClientID\":\"sigstore\",\"Type\":\"email\","
    "\"IssuerClaim\":\"$.federated_claims.connector_id\"},"
    "\"https://accounts.google.com\":{\"IssuerURL\":\"https://accounts.google.com\","
    "\"ClientID\":\"sigstore\",\"Type\":\"email\"},"
    "\"https://token.actions.githubusercontent.com\":{"
    "\"IssuerURL\":\"https://token.actions.githubusercontent.com\","
    "\"ClientID\":\"sigstore\",\"Type\":\"github-workflow\"}}}";

struct serve_flags {
    struct pkcs11_options p11; /* --ca pkcs11ca */
    const char *host, *config_path, *ca, *fileca_cert, *fileca_key, *fileca_key_passwd;
    const char *ct_log_url, *port_file, *log_level;
    const char *state_dir, *ct_log_public_key_path, *ct_log_tls_ca_cert;
    const char *ct_log_key_path, *ct_log_key_passwd_file, *ct_log_hsm_key_label; /* embedded */
    long ct_log_timeout; /* seconds */
    long port, workers, max_body, idle_timeout;
    long read_header_timeout, read_body_timeout; /* seconds */
    int fileca_watch, help;
    long jwks_ttl, jwks_max_stale; /* seconds */
};

static void usage(const struct flag *flags, size_t n, FILE *out)
{
    fprintf(out, "Usage: fulcrum serve [flags]\n\n"
                 "Serves Fulcio's HTTP API (POST /api/v2/signingCert, /api/v1/signingCert, GET\n"
                 "/api/v2/trustBundle, /api/v2/configuration, /api/v1/rootCert, /healthz).\n\n"
                 "Flags:\n");
    flags_usage(flags, n, out);
}

/* The flag called `name` (it must exist: the table is static). */
static struct flag *flag_named(struct flag *flags, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(flags[i].name, name) == 0)
            return &flags[i];
    abort();
}

static fulcrum_config *config_from(const char *path, int path_given, char *err, size_t errlen);

static fulcrum_config *load_config(const char *path, int path_given)
{
    char err[1024];
    fulcrum_config *cfg = config_from(path, path_given, err, sizeof err);
    if (!cfg)
        log_error("config", "%s", err);
    return cfg;
}

/* What SIGHUP re-reads (ca/reload.h): the config as at start, and the file CA. */
struct reload_ctx {
    const struct serve_flags *f;
    int config_given;
};

static fulcrum_config *reload_config(void *arg, char *why, size_t whylen)
{
    const struct reload_ctx *r = arg;
    return config_from(r->f->config_path, r->config_given, why, whylen);
}

static signer *reload_signer(void *arg, int *keep, char *why, size_t whylen)
{
    const struct reload_ctx *r = arg;
    *keep = strcmp(r->f->ca, "fileca") != 0;
    if (*keep)
        return NULL;
    return signer_file_new(r->f->fileca_cert, r->f->fileca_key, r->f->fileca_key_passwd, why,
                           whylen);
}

static fulcrum_config *config_from(const char *path, int path_given, char *err, size_t errlen)
{
    fulcrum_config *cfg = NULL;
    if (path_given) {
        cfg = config_load_file(path, err, errlen);
    } else if (access(DEFAULT_CONFIG_YAML, F_OK) == 0) {
        cfg = config_load_file(DEFAULT_CONFIG_YAML, err, errlen);
    } else if (access(DEFAULT_CONFIG_JSON, F_OK) == 0) {
        cfg = config_load_file(DEFAULT_CONFIG_JSON, err, errlen);
    } else {
        log_warn("config", "no config file at %s or %s: using the built-in issuers",
                 DEFAULT_CONFIG_YAML, DEFAULT_CONFIG_JSON);
        cfg = config_load_buffer(builtin_config, sizeof builtin_config - 1, "built-in config",
                                 err, errlen);
    }
    return cfg;
}

static signer *make_signer(const struct serve_flags *f, const struct flag *passwd_flag)
{
    char why[1024] = "";
    signer *s = NULL;
    if (strcmp(f->ca, "ephemeralca") == 0) {
        log_warn("ca", "ephemeralca: a new in-memory CA key and root are created at every start; "
                       "for testing only");
        s = signer_ephemeral_new(why, sizeof why);
    } else if (strcmp(f->ca, "fileca") == 0) {
        if (!*f->fileca_cert || !*f->fileca_key || !passwd_flag->set) {
            log_error("ca", "--ca fileca needs --fileca-cert, --fileca-key and "
                            "--fileca-key-passwd (which may be empty)");
            return NULL;
        }
        s = signer_file_new(f->fileca_cert, f->fileca_key, f->fileca_key_passwd, why, sizeof why);
    } else if (strcmp(f->ca, "pkcs11ca") == 0) {
        if ((!f->p11.caroot_id || !*f->p11.caroot_id) &&
            (!f->p11.ca_cert_path || !*f->p11.ca_cert_path)) {
            log_error("ca", "--ca pkcs11ca needs --hsm-caroot-id (the CKA_ID of the CA "
                            "certificate on the token)");
            return NULL;
        }
        s = signer_pkcs11_new(&f->p11, why, sizeof why);
    } else if (!*f->ca) {
        log_error("ca", "--ca is required: ephemeralca, fileca or pkcs11ca");
        return NULL;
    } else {
        log_error("ca", "--ca %s is not supported (supported: ephemeralca, fileca, pkcs11ca)",
                  f->ca);
        return NULL;
    }
    if (!s)
        log_error("ca", "%s: %s", f->ca, why);
    return s;
}

/* --ct-log-key-path / --ct-log-hsm-key-label: one of them, for the embedded log only. */
static int check_ct_key_flags(const struct serve_flags *f)
{
    int file = *f->ct_log_key_path, hsm = *f->ct_log_hsm_key_label;
    if ((file || hsm || *f->ct_log_key_passwd_file) && strcmp(f->ct_log_url, "embedded") != 0) {
        log_error("ct", "--ct-log-key-path, --ct-log-key-passwd-file and --ct-log-hsm-key-label "
                        "are for the embedded log (--ct-log-url embedded)");
        return -1;
    }
    if (file && hsm) {
        log_error("ct", "--ct-log-key-path and --ct-log-hsm-key-label both name the CT log's "
                        "key: give one");
        return -1;
    }
    if (*f->ct_log_key_passwd_file && !file) {
        log_error("ct", "--ct-log-key-passwd-file needs --ct-log-key-path");
        return -1;
    }
    if (file && access(f->ct_log_key_path, R_OK) != 0) {
        log_error("ct", "--ct-log-key-path %s: %s (a key given by --ct-log-key-path is never "
                        "generated)", f->ct_log_key_path, strerror(errno));
        return -1;
    }
    return 0;
}

int serve_main(int argc, char **argv)
{
    serve_ops_flags ops = SERVE_OPS_FLAGS_INIT;
    struct serve_flags f = {
        .host = "0.0.0.0", .config_path = DEFAULT_CONFIG_YAML, .ca = "", .fileca_cert = "",
        .fileca_key = "", .fileca_key_passwd = "", .ct_log_url = "embedded", .port_file = NULL,
        .state_dir = "./fulcrum-state", .ct_log_public_key_path = "", .ct_log_tls_ca_cert = "",
        .ct_log_timeout = 60,
        .ct_log_key_path = "", .ct_log_key_passwd_file = "", .ct_log_hsm_key_label = "",
        .log_level = "info", .port = 8080, .workers = 0, .max_body = 4 << 20,
        .idle_timeout = 30, .read_header_timeout = 10, .read_body_timeout = 30,
        .fileca_watch = 1,
        .jwks_ttl = 600, .jwks_max_stale = 86400,
    };
    struct flag flags[] = {
        {"host", "http-host", FLAG_STRING, &f.host, "address to listen on (default 0.0.0.0)", 0},
        {"port", "http-port", FLAG_INT, &f.port, "port to listen on; 0 = any free port (default 8080)", 0},
        {"config-path", NULL, FLAG_STRING, &f.config_path,
         "identity config, Fulcio's JSON or YAML (default /etc/fulcio-config/config.yaml, then "
         ".json, then the built-in issuers)", 0},
        {"ca", NULL, FLAG_STRING, &f.ca, "CA backend: ephemeralca | fileca | pkcs11ca (required)", 0},
        {"fileca-cert", NULL, FLAG_STRING, &f.fileca_cert,
         "fileca: PEM chain, issuing certificate first, root last", 0},
        {"fileca-key", NULL, FLAG_STRING, &f.fileca_key,
         "fileca: PEM private key (PKCS#8, encrypted or not)", 0},
        {"fileca-key-passwd", NULL, FLAG_STRING, &f.fileca_key_passwd,
         "fileca: password of the key (must be given, may be empty; also $FULCRUM_FILECA_KEY_PASSWD or the systemd credential fileca-key-passwd)", 0},
        {"fileca-watch", NULL, FLAG_BOOL, &f.fileca_watch,
         "fileca: accepted for compatibility; send SIGHUP to re-read the CA files", 0},
        {"ct-log-url", NULL, FLAG_STRING, &f.ct_log_url,
         "Certificate Transparency log: \"embedded\" = Fulcrum's own log in this process (its "
         "RFC 6962 API served under /ct/v1/ on this listener, state in --state-dir); an http(s) "
         "URL = an external RFC 6962 log (needs --ct-log-public-key-path); \"\" = CT off, "
         "certificates carry no SCT (default embedded)", 0},
        {"state-dir", NULL, FLAG_STRING, &f.state_dir,
         "embedded CT log: its database and key go to <dir>/ctlog/ (default ./fulcrum-state)", 0},
        {"ct-log-key-path", NULL, FLAG_STRING, &f.ct_log_key_path,
         "embedded CT log: its key, a PEM EC P-256 private key file (PKCS#8 or SEC1) that must "
         "exist (default <state-dir>/ctlog/private.pem, created on first run)", 0},
        {"ct-log-key-passwd-file", NULL, FLAG_STRING, &f.ct_log_key_passwd_file,
         "embedded CT log: file holding the password of an encrypted --ct-log-key-path", 0},
        {"ct-log-hsm-key-label", NULL, FLAG_STRING, &f.ct_log_hsm_key_label,
         "embedded CT log: its key is the EC P-256 key pair with this CKA_LABEL in the PKCS#11 "
         "token that --pkcs11-config-path and --pkcs11-pin-file name (the same settings as "
         "pkcs11ca, with any --ca; make it with `fulcrum ctlog createkey`)", 0},
        {"ct-log-public-key-path", NULL, FLAG_STRING, &f.ct_log_public_key_path,
         "external CT log: its PEM public key; every SCT it returns is verified with it", 0},
        {"ct-log.tls-ca-cert", NULL, FLAG_STRING, &f.ct_log_tls_ca_cert,
         "external CT log: PEM CA certificate(s) trusted for its https URL (besides the system "
         "roots)", 0},
        {"ct-log-timeout", NULL, FLAG_SECONDS, &f.ct_log_timeout,
         "external CT log: how long one submission may take, retries of transport errors, "
         "408, 429 and 503 included (default 60s)", 0},
        {"port-file", NULL, FLAG_STRING, &f.port_file,
         "write the bound port to this file once listening", 0},
        {"workers", NULL, FLAG_INT, &f.workers, "HTTP worker threads (default: one per core)", 0},
        {"max-request-body-bytes", NULL, FLAG_INT, &f.max_body,
         "largest request body accepted (default 4194304)", 0},
        {"idle-connection-timeout", NULL, FLAG_SECONDS, &f.idle_timeout,
         "read, write and keep-alive idle timeout (default 30s)", 0},
        {"read-header-timeout", NULL, FLAG_SECONDS, &f.read_header_timeout,
         "a request's line and headers must arrive within this from its first byte, however "
         "slowly they trickle; else the connection is closed (default 10s)", 0},
        {"read-body-timeout", NULL, FLAG_SECONDS, &f.read_body_timeout,
         "a request's body must arrive within this from the end of its headers; else the "
         "connection is closed (default 30s)", 0},
        {"log-level", NULL, FLAG_STRING, &f.log_level, "debug | info | warn | error (default info)", 0},
        {"jwks-ttl", NULL, FLAG_SECONDS, &f.jwks_ttl,
         "how long an issuer's fetched keys are fresh; older keys still serve while a refresh runs "
         "in the background (default 10m)", 0},
        {"jwks-max-stale", NULL, FLAG_SECONDS, &f.jwks_max_stale,
         "how old an issuer's keys may get while refreshes fail before its tokens are refused "
         "with 500; at least --jwks-ttl (default 24h)", 0},
        {"pkcs11-config-path", NULL, FLAG_STRING, &f.p11.config_path,
         "pkcs11ca, --ct-log-hsm-key-label: crypto11 JSON naming the module (Path), the token "
         "(TokenLabel, TokenSerial "
         "or SlotNumber) and maybe the Pin (default config/crypto11.conf)", 0},
        {"pkcs11-pin-file", NULL, FLAG_STRING, &f.p11.pin_file,
         "pkcs11ca, --ct-log-hsm-key-label: file holding the token's user PIN (else "
         "$CREDENTIALS_DIRECTORY/pkcs11-pin, "
         "else the config's Pin)", 0},
        {"hsm-caroot-id", NULL, FLAG_STRING, &f.p11.caroot_id,
         "pkcs11ca: CKA_ID of the CA certificate on the token, as the flag's bytes (\"99\" = "
         "hex 3939)", 0},
        {"hsm-key-label", NULL, FLAG_STRING, &f.p11.key_label,
         "pkcs11ca: CKA_LABEL of the CA private key (default PKCS11CA)", 0},
        {"hsm-chain-path", NULL, FLAG_STRING, &f.p11.chain_path,
         "pkcs11ca: PEM certificates above the token's certificate (intermediates, root last)", 0},
        {"aws-hsm-root-ca-path", NULL, FLAG_STRING, &f.p11.ca_cert_path,
         "pkcs11ca: the CA certificate from this PEM file instead of the token", 0},
        SERVE_OPS_FLAGS(ops),
        {"help", "h", FLAG_BOOL, &f.help, "show this help", 0},
    };
    size_t nflags = sizeof flags / sizeof flags[0];
    char why[1024];
    if (flags_parse(flags, nflags, argc, argv, why, sizeof why) != 0) {
        fprintf(stderr, "fulcrum serve: %s\n", why);
        return 2;
    }
    if (f.help) {
        usage(flags, nflags, stdout);
        return 0;
    }
    if (log_set_level_name(f.log_level) != 0) {
        fprintf(stderr, "fulcrum serve: --log-level %s: use debug, info, warn or error\n", f.log_level);
        return 2;
    }

    struct flag *passwd_flag = flag_named(flags, nflags, "fileca-key-passwd");
    const char *env_pw = getenv("FULCRUM_FILECA_KEY_PASSWD");
    if (!passwd_flag->set && env_pw) {
        f.fileca_key_passwd = env_pw;
        passwd_flag->set = 1;
    }
    if (*f.ct_log_url && strcmp(f.ct_log_url, "embedded") != 0 &&
        strncmp(f.ct_log_url, "http://", 7) != 0 && strncmp(f.ct_log_url, "https://", 8) != 0) {
        log_error("ct", "--ct-log-url %s: use \"embedded\", an http(s) URL, or \"\" (CT off)",
                  f.ct_log_url);
        return 2;
    }
    if (*f.ct_log_url && strcmp(f.ct_log_url, "embedded") != 0 && !*f.ct_log_public_key_path) {
        log_error("ct", "--ct-log-url %s needs --ct-log-public-key-path (the log's PEM public "
                        "key, used to verify every SCT it returns)", f.ct_log_url);
        return 2;
    }
    if (check_ct_key_flags(&f) != 0)
        return 2;
    if (f.ct_log_timeout < 1 || f.ct_log_timeout > 600) {
        log_error("ct", "--ct-log-timeout %lds: need 1s..10m", f.ct_log_timeout);
        return 2;
    }
    if (!*f.ct_log_url)
        log_warn("ct", "WARNING: Certificate Transparency is OFF (--ct-log-url \"\"): "
                       "certificates are NOT logged, carry NO SCT, and clients that require SCTs "
                       "(cosign, sigstore-go, sigstore-python, sigstore-js by default) will "
                       "reject them");
    if (f.port < 0 || f.port > 65535 || f.max_body <= 0 || f.workers < 0 || f.workers > 256) {
        log_error("serve", "invalid --port, --workers or --max-request-body-bytes");
        return 2;
    }
    if (f.read_header_timeout < 1 || f.read_header_timeout > 3600 || f.read_body_timeout < 1 ||
        f.read_body_timeout > 3600) {
        log_error("serve", "invalid --read-header-timeout %lds or --read-body-timeout %lds: need "
                           "1s..1h",
                  f.read_header_timeout, f.read_body_timeout);
        return 2;
    }
    if (f.jwks_ttl < 1 || f.jwks_ttl > 7 * 86400 || f.jwks_max_stale < f.jwks_ttl ||
        f.jwks_max_stale > 365L * 86400) {
        log_error("serve", "invalid --jwks-ttl %lds or --jwks-max-stale %lds: need 1s <= ttl <= "
                           "7 days and ttl <= max-stale <= 365 days",
                  f.jwks_ttl, f.jwks_max_stale);
        return 2;
    }

    if (serve_ops_check(&ops) != 0)
        return 2;

    /* Before any thread or event_base: SIGHUP goes to the reload thread only (ca/reload.h),
     * libevent locking (the JWKS fetcher wakes workers from its own thread) and libcurl global
     * state. */
    reload_block_signals();
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);

    fulcrum_config *cfg = load_config(f.config_path, flag_named(flags, nflags, "config-path")->set);
    if (!cfg)
        return 1;
    /* The key password may also come from the systemd credential fileca-key-passwd. */
    char *cred_pw = NULL;
    if (!passwd_flag->set && strcmp(f.ca, "fileca") == 0) {
        char cwhy[512];
        int r = credential_read(FILECA_KEY_PASSWD_CREDENTIAL, 0, &cred_pw, cwhy, sizeof cwhy);
        if (r < 0) {
            log_error("ca", "%s", cwhy);
            config_free(cfg);
            return 1;
        }
        if (r == 1) {
            f.fileca_key_passwd = cred_pw;
            passwd_flag->set = 1;
        }
    }
    signer *sgn = make_signer(&f, passwd_flag);
    if (!sgn) {
        config_free(cfg);
        credential_free(cred_pw);
        return 1;
    }
    jwks_cache_options jwks_opts = {.ttl_seconds = (int)f.jwks_ttl,
                                     .max_stale_seconds = (int)f.jwks_max_stale};
    jwks_cache *jwks = jwks_cache_new(&jwks_opts);
    if (!jwks) {
        log_error("oidc", "cannot start the JWKS fetcher");
        signer_free(sgn);
        config_free(cfg);
        credential_free(cred_pw);
        return 1;
    }
    service *svc = service_new(cfg, sgn, jwks, f.ct_log_url, why, sizeof why);
    if (!svc) {
        log_error("serve", "%s", why);
        credential_free(cred_pw);
        return 1;
    }
    signer *ct_key = NULL; /* the embedded log's key in a token; freed after the service */
    if (*f.ct_log_url) {
        if (*f.ct_log_hsm_key_label) {
            struct pkcs11_options ko = f.p11;
            ko.key_label = f.ct_log_hsm_key_label;
            if ((ct_key = signer_pkcs11_key_new(&ko, why, sizeof why)) == NULL) {
                log_error("ct", "--ct-log-hsm-key-label: %s", why);
                service_free(svc);
                credential_free(cred_pw);
                return 1;
            }
        }
        service_ct_options cto = {
            .url = f.ct_log_url, .state_dir = f.state_dir,
            .public_key_path = f.ct_log_public_key_path, .tls_ca_file = f.ct_log_tls_ca_cert,
            .timeout_ms = f.ct_log_timeout * 1000, .key_signer = ct_key,
            .key_path = f.ct_log_key_path, .key_passwd_file = f.ct_log_key_passwd_file,
            .batch_ms = (int)ops.group_commit_ms,
        };
        if (service_enable_ct(svc, &cto, why, sizeof why) != 0) {
            log_error("ct", "%s", why);
            service_free(svc);
            signer_free(ct_key);
            credential_free(cred_pw);
            return 1;
        }
    }

    struct reload_ctx rctx = {.f = &f, .config_given = flag_named(flags, nflags, "config-path")->set};
    reload_source rsrc = {.load_config = reload_config, .load_signer = reload_signer, .arg = &rctx};
    serve_ops *so = serve_ops_start(&ops, svc, f.host, f.state_dir,
                                    flag_named(flags, nflags, "metrics-port")->set, &rsrc);
    if (!so) {
        service_free(svc);
        signer_free(ct_key);
        credential_free(cred_pw);
        return 1;
    }
    http_server_options opts = {
        .host = f.host, .port = (int)f.port, .port_file = f.port_file, .workers = (int)f.workers,
        .max_body_bytes = (size_t)f.max_body, .idle_timeout_seconds = (int)f.idle_timeout,
        .read_header_timeout_seconds = (int)f.read_header_timeout,
        .read_body_timeout_seconds = (int)f.read_body_timeout,
        .max_connections = (int)ops.max_connections,
    };
    http_server *srv = http_server_new(&opts, api_handle, svc, why, sizeof why);
    if (!srv) {
        log_error("serve", "%s", why);
        serve_ops_stop(so);
        service_free(svc);
        signer_free(ct_key);
        credential_free(cred_pw);
        return 1;
    }
    service_snapshot *snap = service_acquire(svc);
    jwks_cache_prefetch(svc->jwks, snap->cfg);
    service_snapshot_release(snap);
    int rc = http_server_run(srv);
    serve_ops_stop(so); /* drained: no request runs any more */
    http_server_free(srv);
    service_free(svc);
    signer_free(ct_key);
    curl_global_cleanup();
    credential_free(cred_pw);
    return rc == 0 ? 0 : 1;
}
