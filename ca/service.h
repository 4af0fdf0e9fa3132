/*
 * ca/service.h: what every request handler shares: the JWKS cache, Certificate Transparency, the
 * audit log, the rate limits, and a snapshot of what a reload (SIGHUP, ca/reload.h) replaces: the
 * identity config, the CA signer and the answers rendered from them (trust bundle,
 * configuration, root PEM text).
 *
 * Snapshots: a request takes a reference to the current snapshot when it starts
 * (service_acquire) and releases it when it is answered, so it uses one config and one signer
 * from start to end (with CT, the precertificate and the final certificate come from the same
 * key) while a reload publishes a new snapshot for the requests that start later. The last
 * release frees a replaced snapshot (and its signer, unless the new snapshot shares it).
 *
 * Ownership: the service owns everything it points to, except `audit` and the rate limiters,
 * which belong to whoever set them (`fulcrum serve`, ca/serve_ops.h) and must outlive the
 * requests. Thread safety: service_acquire/service_snapshot_release/service_publish from any
 * thread; the other fields are set before serving and then only read (or atomic).
 */
#ifndef FULCRUM_CA_SERVICE_H
#define FULCRUM_CA_SERVICE_H

#include <pthread.h>
#include <stddef.h>

#include "ca/audit_log.h"
#include "ca/rate_limit.h"
#include "config/config.h"
#include "ct/ct_log.h"
#include "ct/ct_submit.h"
#include "hsm/signer.h"
#include "oidc/jwks_cache.h"

struct service_signer_ref; /* a signer shared by snapshots (service.c) */

typedef struct service_snapshot {
    fulcrum_config *cfg;
    signer *signer;
    char **chain_pem;          /* each CA cert's PEM, trimmed (no trailing newline) */
    size_t chain_len;
    char *trust_bundle_json;   /* GET /api/v2/trustBundle body */
    char *configuration_json;  /* GET /api/v2/configuration body */
    char *root_cert_text;      /* GET /api/v1/rootCert body */
    unsigned long generation;  /* 1 at start, +1 per reload */
    /* private */
    _Atomic long refs;
    struct service_signer_ref *sref;
} service_snapshot;

typedef struct service {
    jwks_cache *jwks;
    char *ct_log_url;          /* "" = CT off, "embedded", or the external log's URL */
    ct_submitter *ct;          /* NULL = CT off: detached answer without SCT */
    ct_log *ctlog;             /* the embedded log (served under /ct/v1/), or NULL */
    audit_log *audit;          /* NULL = no audit log (borrowed) */
    /* The embedded CT log carries the audit records (serve_ops attached it to `audit`): a
     * certificate's record is durable with its CT entry (ct_submit_precert_audit). */
    int audit_in_ct;
    rate_limiter *rl_identity; /* NULL = no limit (borrowed) */
    rate_limiter *rl_issuer;
    char rl_identity_text[32], rl_issuer_text[32]; /* "10/m", for messages */
    _Atomic int ct_failing;    /* 1 after a CT submission failed, 0 after one succeeded */
    pthread_mutex_t snap_lock; /* guards snap (the pointer and the reference taken from it) */
    service_snapshot *snap;
} service;

/* Takes ownership of cfg, sgn and jwks (also on failure). */
service *service_new(fulcrum_config *cfg, signer *sgn, jwks_cache *jwks, const char *ct_log_url,
                     char *why, size_t whylen);
void service_free(service *svc);

/* The current snapshot, referenced: release it with service_snapshot_release. */
service_snapshot *service_acquire(service *svc);
void service_snapshot_release(service_snapshot *s);

/* A new snapshot from cfg and sgn (ownership of both taken, also on failure); sgn NULL = share
 * the signer of `share` (which must then be given). NULL with why. */
service_snapshot *service_snapshot_new(fulcrum_config *cfg, signer *sgn,
                                       const service_snapshot *share, char *why, size_t whylen);

/* Makes `s` the current snapshot (generation = the previous one's + 1) and releases the
 * previous one. Requests already running keep theirs. */
void service_publish(service *svc, service_snapshot *s);

/* How `fulcrum serve` turns CT on (--ct-log-url and friends). */
typedef struct service_ct_options {
    const char *url;             /* "embedded" or an http(s) log prefix */
    const char *state_dir;       /* embedded: the log lives in <state_dir>/ctlog/ */
    const char *public_key_path; /* external: the log's PEM public key (required) */
    const char *tls_ca_file;     /* external: extra CA for https (may be NULL or "") */
    long timeout_ms;             /* external: deadline of one submission, retries included */
    signer *key_signer;          /* embedded: the log's key through this signer (EC P-256, e.g.
                                    PKCS#11), or NULL; borrowed, must outlive the service */
    const char *key_path;        /* embedded, without key_signer: the log's PEM private key file
                                    (NULL or "" = <state_dir>/ctlog/private.pem) */
    const char *key_passwd_file; /* embedded: file holding key_path's password, or NULL */
    int batch_ms;                /* embedded: group-commit window under load (ct_log_options) */
} service_ct_options;

/* Opens the embedded log (accepting the CA's root) or sets up the external log's submitter,
 * then service_set_ct. Returns 0 or -1 with why. */
int service_enable_ct(service *svc, const service_ct_options *o, char *why, size_t whylen);

/* Turns CT on: every certificate goes through a precertificate submitted with `ct`. `log` (may
 * be NULL) is the embedded log whose API is served under /ct/v1/. Takes ownership of both (also
 * on failure); service_free frees the submitter, then closes the log. Call before serving. */
void service_set_ct(service *svc, ct_submitter *ct, ct_log *log);

/* PEM of one certificate, trimmed of surrounding whitespace (malloc'd). */
char *service_cert_pem(X509 *cert);

#endif
