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
    char *ct_log_url;          /* "" = CT off */
} service;

/* Takes ownership of cfg, sgn and jwks (also on failure). */
service *service_new(fulcrum_config *cfg, signer *sgn, jwks_cache *jwks, const char *ct_log_url,
                     char *why, size_t whylen);
void service_free(service *svc);

/* PEM of one certificate, trimmed of surrounding whitespace (malloc'd). */
char *service_cert_pem(X509 *cert);

#endif
