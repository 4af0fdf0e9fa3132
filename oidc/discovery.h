/*
 * oidc/discovery.h: the OpenID discovery document of an issuer (OpenID Connect Discovery 1.0
 * §4) as oidc/jwks_cache.c fetches it, and the URL policy for every URL fetched there.
 *
 * The document must be a JSON object whose "issuer" equals the configured issuer URL exactly
 * (Fulcio does the same) and whose "jwks_uri" is a URL the policy allows. Pure functions:
 * thread-safe.
 */
#ifndef FULCRUM_OIDC_DISCOVERY_H
#define FULCRUM_OIDC_DISCOVERY_H

#include <stddef.h>

/* An OpenID discovery document (JSON text, len bytes) for the issuer issuer_url: its
 * jwks_uri (malloc'd), or NULL with the failed check in why. */
char *oidc_discovery_jwks_uri(const char *doc, size_t len, const char *issuer_url,
                              char *why, size_t whylen);

/* https anywhere, http only to a loopback host. On success returns 0 and, when host_out is not
 * NULL, the host (curl_free it). */
int oidc_url_allowed(const char *url, char **host_out, char *why, size_t whylen);

#endif
