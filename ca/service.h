/*
 * ca/service.h: what every request handler shares: the identity config, the signer, the JWKS
 * cache, and the answers that never change between requests (trust bundle, configuration, root
 * PEM text), rendered once at start.
 *
 * Ownership: the service owns everything it points to. It is immutable after service_new
 * except through the thread-safe objects it holds (signer, jwks cache), so all worker threads
 * read it without locks.
 */
#ifndef FULCRUM_CA_SERVICE_H
#define FULCRUM_CA_SERVICE_H

#include <stddef.h>

#include "config/config.h"
#include "ct/ct_log.h"
#include "ct/ct_submit.h"
#include "hsm/signer.h"
#include "oidc/jwks_cache.h"

typedef struct service {
    fulcrum_config *cfg;
    signer *signer;
    jwks_cache *jwks;

    char **chain_pem;          /* each CA cert's PEM, trimmed (no trailing newline) */
    size_t chain_len;
    char *trust_bundle_json;   /* GET /api/v2/trustBundle body */
    char *configuration_json;  /* GET /api/v2/configuration body */
    char *root_cert_text;      /* GET /api/v1/rootCert body */
    char *ct_log_url;          /* "" = CT off, "embedded", or the external log's URL */
    ct_submitter *ct;          /* NULL = CT off: detached answer without SCT */
    ct_log *ctlog;             /* the embedded log (served under /ct/v1/), or NULL */
} service;

/* Takes ownership of cfg, sgn and jwks (also on failure). */
service *service_new(fulcrum_config *cfg, signer *sgn, jwks_cache *jwks, const char *ct_log_url,
                     char *why, size_t whylen);
void service_free(service *svc);

/* How `fulcrum serve` turns CT on (--ct-log-url and friends). */
typedef struct service_ct_options {
    const char *url;             /* "embedded" or an http(s) log prefix */
    const char *state_dir;       /* embedded: the log lives in <state_dir>/ctlog/ */
    const char *public_key_path; /* external: the log's PEM public key (required) */
    const char *tls_ca_file;     /* external: extra CA for https (may be NULL or "") */
    long timeout_ms;             /* external: deadline of one submission, retries included */
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
