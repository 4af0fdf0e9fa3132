/*
 * fuzz_discovery: an OIDC issuer's discovery document (oidc/discovery.h), which
 * oidc/jwks_cache.c fetches from <issuer>/.well-known/openid-configuration, and the URL policy
 * (oidc_url_allowed) that every discovery, JWKS and redirect URL passes.
 *
 * Input: the document's body, checked by oidc_discovery_jwks_uri for a fixed configured issuer
 * (FZ_ISSUER; the seeds name it). A refusal must say why; a jwks_uri must equal the document's
 * and oidc_url_allowed must accept it. Whenever the document is an object naming the issuer
 * with a non-empty jwks_uri, the verdict must be oidc_url_allowed's on that URL, with its
 * reason after "jwks_uri ". oidc_url_allowed is also run, with host_out, on every string value
 * of the document: an accepted URL gives a non-empty host, a refused one a reason and no host.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "oidc/discovery.h"

#define FZ_ISSUER "https://oauth2.sigstore.dev/auth"
#define MAX_URLS 16

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_log_init();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        fz_die("curl_global_init");
    return 0;
}

/* oidc_url_allowed(url) with host_out; returns its verdict. */
static int check_url(const char *url, char *why, size_t whylen)
{
    char *host = NULL;
    why[0] = '\0';
    int rc = oidc_url_allowed(url, &host, why, whylen);
    FZ_ASSERT(rc == 0 || rc == -1, "oidc_url_allowed returned %d", rc);
    if (rc == 0) {
        FZ_ASSERT(host && *host, "URL allowed without a host: %s", url);
        fz_note("allowed: %s (host %s)", url, host);
    } else {
        FZ_ASSERT(host == NULL, "a host for a refused URL: %s", url);
        FZ_ASSERT(why[0], "URL refused without a reason: %s", url);
        fz_note("refused: %s", why);
    }
    curl_free(host);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[512] = "";
    char *uri = oidc_discovery_jwks_uri((const char *)data, size, FZ_ISSUER, why, sizeof why);
    fz_note("discovery: %s", uri ? uri : why);
    FZ_ASSERT(uri || why[0], "document refused without a reason");

    json_error_t err;
    json_t *doc = json_loadb((const char *)data, size, 0, &err);
    const char *iss = json_string_value(json_object_get(doc, "issuer"));
    const char *ju = json_string_value(json_object_get(doc, "jwks_uri"));
    int names_issuer = json_is_object(doc) && iss && strcmp(iss, FZ_ISSUER) == 0;
    char policy[512];
    if (uri) {
        FZ_ASSERT(names_issuer, "a jwks_uri from a document that does not name the issuer");
        FZ_ASSERT(ju && strcmp(uri, ju) == 0, "jwks_uri %s is not the document's", uri);
        FZ_ASSERT(check_url(uri, policy, sizeof policy) == 0,
                  "the returned jwks_uri is refused: %s", policy);
    } else if (names_issuer && ju && *ju) {
        FZ_ASSERT(check_url(ju, policy, sizeof policy) != 0,
                  "an allowed jwks_uri refused: %s", why);
        char want[600];
        snprintf(want, sizeof want, "jwks_uri %s", policy);
        FZ_ASSERT(strcmp(why, want) == 0, "reason \"%s\", want \"%s\"", why, want);
    }

    /* the policy on every string value (an issuer, a jwks_uri, any endpoint) */
    if (json_is_object(doc)) {
        const char *key;
        json_t *v;
        int n = 0;
        json_object_foreach(doc, key, v)
        {
            if (n == MAX_URLS)
                break;
            if (json_is_string(v)) {
                check_url(json_string_value(v), policy, sizeof policy);
                n++;
            }
        }
    }
    json_decref(doc);
    free(uri);
    return 0;
}
