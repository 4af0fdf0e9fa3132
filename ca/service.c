#include "ca/service.h"

#include <jansson.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *service_cert_pem(X509 *cert)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return NULL;
    char *out = NULL;
    if (PEM_write_bio_X509(b, cert)) {
        char *data;
        long n = BIO_get_mem_data(b, &data);
        while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r' || data[n - 1] == ' '))
            n--;
        out = malloc((size_t)n + 1);
        if (out) {
            memcpy(out, data, (size_t)n);
            out[n] = '\0';
        }
    }
    BIO_free(b);
    return out;
}

/* {"chains":[{"certificates":["<pem>\n", ...]}]}: here each PEM keeps its trailing newline. */
static char *render_trust_bundle(char **pem, size_t n)
{
    json_t *certs = json_array();
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(pem[i]);
        char *with_nl = malloc(len + 2);
        if (!with_nl)
            break;
        memcpy(with_nl, pem[i], len);
        with_nl[len] = '\n';
        with_nl[len + 1] = '\0';
        json_array_append_new(certs, json_string(with_nl));
        free(with_nl);
    }
    json_t *root = json_pack("{s:[{s:o}]}", "chains", "certificates", certs);
    char *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return out;
}

static char *join_lines(char **pem, size_t n)
{
    size_t total = 1;
    for (size_t i = 0; i < n; i++)
        total += strlen(pem[i]) + 1;
    char *out = malloc(total);
    if (!out)
        return NULL;
    out[0] = '\0';
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(pem[i]);
        if (i)
            out[off++] = '\n';
        memcpy(out + off, pem[i], len);
        off += len;
    }
    out[off] = '\0';
    return out;
}

service *service_new(fulcrum_config *cfg, signer *sgn, jwks_cache *jwks, const char *ct_log_url,
                     char *why, size_t whylen)
{
    service *svc = calloc(1, sizeof *svc);
    if (!svc) {
        config_free(cfg);
        signer_free(sgn);
        jwks_cache_free(jwks);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    svc->cfg = cfg;
    svc->signer = sgn;
    svc->jwks = jwks;
    svc->ct_log_url = strdup(ct_log_url ? ct_log_url : "");

    int n = sk_X509_num(sgn->chain);
    svc->chain_pem = calloc((size_t)n + 1, sizeof *svc->chain_pem);
    if (!svc->chain_pem)
        goto oom;
    for (int i = 0; i < n; i++) {
        svc->chain_pem[i] = service_cert_pem(sk_X509_value(sgn->chain, i));
        if (!svc->chain_pem[i])
            goto oom;
        svc->chain_len++;
    }
    svc->trust_bundle_json = render_trust_bundle(svc->chain_pem, svc->chain_len);
    svc->root_cert_text = join_lines(svc->chain_pem, svc->chain_len);
    json_t *conf = config_to_api_json(cfg);
    svc->configuration_json = conf ? json_dumps(conf, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(conf);
    if (!svc->trust_bundle_json || !svc->root_cert_text || !svc->configuration_json ||
        !svc->ct_log_url)
        goto oom;
    return svc;
oom:
    snprintf(why, whylen, "out of memory rendering the CA chain");
    service_free(svc);
    return NULL;
}

void service_free(service *svc)
{
    if (!svc)
        return;
    jwks_cache_free(svc->jwks);
    signer_free(svc->signer);
    config_free(svc->cfg);
    for (size_t i = 0; i < svc->chain_len; i++)
        free(svc->chain_pem[i]);
    free(svc->chain_pem);
    free(svc->trust_bundle_json);
    free(svc->configuration_json);
    free(svc->root_cert_text);
    free(svc->ct_log_url);
    free(svc);
}
