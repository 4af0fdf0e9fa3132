/*
 * oidc/discovery.c: the discovery document check and the fetch URL policy (oidc/discovery.h).
 *
 * URLs are read by libcurl's URL API (curl_url), so the policy sees the scheme and host exactly
 * as the transfer will use them.
 */
#include "oidc/discovery.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int host_is_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
        return 1;
    unsigned char a[4];
    return inet_pton(AF_INET, host, a) == 1 && a[0] == 127;
}

int oidc_url_allowed(const char *url, char **host_out, char *why, size_t whylen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int rc = -1;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(why, whylen, "\"%.200s\" is not a valid URL", url);
    } else if (strcmp(scheme, "https") == 0) {
        rc = 0;
    } else if (strcmp(scheme, "http") == 0) {
        if (host_is_loopback(host))
            rc = 0;
        else
            snprintf(why, whylen, "\"%.200s\" uses plain http to a non-loopback host", url);
    } else {
        snprintf(why, whylen, "\"%.200s\" is not an http(s) URL", url);
    }
    if (rc == 0 && host_out) {
        *host_out = host;
        host = NULL;
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

char *oidc_discovery_jwks_uri(const char *text, size_t len, const char *issuer_url, char *why,
                              size_t whylen)
{
    json_error_t jerr;
    json_t *doc = json_loadb(text ? text : "", text ? len : 0, 0, &jerr);
    char *uri = NULL;
    if (!json_is_object(doc)) {
        snprintf(why, whylen, "the discovery document is not a JSON object");
        goto out;
    }
    const char *iss = json_string_value(json_object_get(doc, "issuer"));
    if (!iss || strcmp(iss, issuer_url) != 0) {
        snprintf(why, whylen, "the discovery document names issuer \"%.200s\", expected \"%.200s\"",
                 iss ? iss : "", issuer_url);
        goto out;
    }
    const char *ju = json_string_value(json_object_get(doc, "jwks_uri"));
    if (!ju || !*ju) {
        snprintf(why, whylen, "the discovery document has no jwks_uri");
        goto out;
    }
    char policy[300];
    if (oidc_url_allowed(ju, NULL, policy, sizeof(policy)) != 0) {
        snprintf(why, whylen, "jwks_uri %s", policy);
        goto out;
    }
    uri = strdup(ju);
    if (!uri)
        snprintf(why, whylen, "out of memory");
out:
    json_decref(doc);
    return uri;
}
