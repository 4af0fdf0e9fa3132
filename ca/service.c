#include "ca/service.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/base64.h"
#include "common/log.h"

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

static EVP_PKEY *read_public_key(const char *path, char *why, size_t whylen)
{
    BIO *b = BIO_new_file(path, "r");
    if (!b) {
        snprintf(why, whylen, "cannot read the CT log public key %.300s: %s", path,
                 strerror(errno));
        return NULL;
    }
    EVP_PKEY *k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!k)
        snprintf(why, whylen, "%.300s is not a PEM public key (-----BEGIN PUBLIC KEY-----)", path);
    return k;
}

static int enable_embedded(service *svc, const service_ct_options *o, char *why, size_t whylen)
{
    const char *dir = o->state_dir && *o->state_dir ? o->state_dir : "./fulcrum-state";
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, whylen, "cannot create the state directory %.300s: %s", dir,
                 strerror(errno));
        return -1;
    }
    int n = sk_X509_num(svc->signer->chain);
    STACK_OF(X509) *roots = sk_X509_new_null();
    if (!roots || n < 1 || !sk_X509_push(roots, sk_X509_value(svc->signer->chain, n - 1))) {
        sk_X509_free(roots);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    ct_log_options lo = {.state_dir = dir, .roots = roots};
    char r[768] = "";
    ct_log *log = ct_log_open(&lo, r, sizeof r);
    sk_X509_free(roots); /* ct_log_open copies the roots */
    if (!log) {
        snprintf(why, whylen, "cannot open the embedded CT log in %.300s/ctlog: %s", dir, r);
        return -1;
    }
    ct_submitter *sub = ct_submitter_embedded(log, r, sizeof r);
    if (!sub) {
        ct_log_close(log);
        snprintf(why, whylen, "embedded CT log: %s", r);
        return -1;
    }
    char *id = b64_encode(ct_submitter_log_id(sub), 32);
    log_info("ct", "Certificate Transparency: embedded log in %s/ctlog (log ID %s, public key "
                   "%s/ctlog/public.pem), API served under /ct/v1/; every certificate carries "
                   "its SCT",
             dir, id ? id : "?", dir);
    free(id);
    service_set_ct(svc, sub, log);
    return 0;
}

static int enable_external(service *svc, const service_ct_options *o, char *why, size_t whylen)
{
    if (!o->public_key_path || !*o->public_key_path) {
        snprintf(why, whylen, "--ct-log-url %.300s needs --ct-log-public-key-path (the log's PEM "
                              "public key, to verify its SCTs)",
                 o->url);
        return -1;
    }
    EVP_PKEY *key = read_public_key(o->public_key_path, why, whylen);
    if (!key)
        return -1;
    ct_http_options ho = {
        .url = o->url, .log_key = key,
        .tls_ca_file = o->tls_ca_file && *o->tls_ca_file ? o->tls_ca_file : NULL,
        .total_deadline_ms = o->timeout_ms,
    };
    char r[768] = "";
    ct_submitter *sub = ct_submitter_http(&ho, r, sizeof r);
    EVP_PKEY_free(key);
    if (!sub) {
        snprintf(why, whylen, "CT log %.300s: %s", o->url, r);
        return -1;
    }
    char *id = b64_encode(ct_submitter_log_id(sub), 32);
    log_info("ct", "Certificate Transparency: precertificates go to %s/ct/v1/add-pre-chain "
                   "(log ID %s); every certificate carries its SCT",
             o->url, id ? id : "?");
    free(id);
    service_set_ct(svc, sub, NULL);
    return 0;
}

int service_enable_ct(service *svc, const service_ct_options *o, char *why, size_t whylen)
{
    if (!svc || !o || !o->url || !*o->url) {
        snprintf(why, whylen, "no CT log");
        return -1;
    }
    if (strcmp(o->url, "embedded") == 0)
        return enable_embedded(svc, o, why, whylen);
    return enable_external(svc, o, why, whylen);
}

void service_set_ct(service *svc, ct_submitter *ct, ct_log *log)
{
    ct_submitter_free(svc->ct);
    ct_log_close(svc->ctlog);
    svc->ct = ct;
    svc->ctlog = log;
}

void service_free(service *svc)
{
    if (!svc)
        return;
    ct_submitter_free(svc->ct);
    ct_log_close(svc->ctlog);
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
