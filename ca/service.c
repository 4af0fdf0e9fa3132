#include "ca/service.h"

#include <errno.h>
#include <stdatomic.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/base64.h"
#include "common/x509_der.h"
#include "common/log.h"

/* PEM_write_bio's layout for a certificate's DER, without a BIO: the BEGIN line, base64 in lines
 * of 64 characters (EVP_EncodeBlock on 48-byte blocks), the END line; no trailing newline. */
static char *pem_of_der(const unsigned char *der, size_t len)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----\n";
    static const char end[] = "-----END CERTIFICATE-----";
    size_t lines = (len + 47) / 48;
    char *out = malloc(sizeof begin - 1 + lines * 65 + sizeof end);
    if (!out)
        return NULL;
    char *p = out;
    memcpy(p, begin, sizeof begin - 1);
    p += sizeof begin - 1;
    for (size_t at = 0; at < len; at += 48) {
        size_t n = len - at < 48 ? len - at : 48;
        p += EVP_EncodeBlock((unsigned char *)p, der + at, (int)n);
        *p++ = '\n';
    }
    memcpy(p, end, sizeof end);
    return out;
}

char *service_cert_pem(X509 *cert)
{
    size_t len = 0;
    const unsigned char *der = x509_der_get(cert, &len); /* an issued certificate's bytes */
    if (der && len > 0)
        return pem_of_der(der, len);
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return NULL;
    char *out = NULL;
    if (PEM_write_bio_X509(b, cert) > 0) {
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

struct service_signer_ref {
    signer *s;
    _Atomic long refs;
};

static void signer_ref_put(struct service_signer_ref *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
        signer_free(r->s);
        free(r);
    }
}

static void snapshot_free(service_snapshot *s)
{
    if (!s)
        return;
    config_free(s->cfg);
    signer_ref_put(s->sref);
    for (size_t i = 0; i < s->chain_len; i++)
        free(s->chain_pem[i]);
    free(s->chain_pem);
    free(s->trust_bundle_json);
    free(s->configuration_json);
    free(s->root_cert_text);
    free(s);
}

service_snapshot *service_snapshot_new(fulcrum_config *cfg, signer *sgn,
                                       const service_snapshot *share, char *why, size_t whylen)
{
    service_snapshot *s = calloc(1, sizeof *s);
    if (!s || (!sgn && (!share || !share->sref))) {
        config_free(cfg);
        signer_free(sgn);
        free(s);
        snprintf(why, whylen, s ? "no signer for the snapshot" : "out of memory");
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->cfg = cfg;
    if (sgn) {
        s->sref = calloc(1, sizeof *s->sref);
        if (!s->sref) {
            signer_free(sgn);
            goto oom;
        }
        s->sref->s = sgn;
        atomic_init(&s->sref->refs, 1);
    } else {
        s->sref = share->sref;
        atomic_fetch_add(&s->sref->refs, 1);
    }
    s->signer = s->sref->s;

    int n = sk_X509_num(s->signer->chain);
    s->chain_pem = calloc((size_t)n + 1, sizeof *s->chain_pem);
    if (!s->chain_pem)
        goto oom;
    for (int i = 0; i < n; i++) {
        s->chain_pem[i] = service_cert_pem(sk_X509_value(s->signer->chain, i));
        if (!s->chain_pem[i])
            goto oom;
        s->chain_len++;
    }
    s->trust_bundle_json = render_trust_bundle(s->chain_pem, s->chain_len);
    s->root_cert_text = join_lines(s->chain_pem, s->chain_len);
    json_t *conf = config_to_api_json(cfg);
    s->configuration_json = conf ? json_dumps(conf, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(conf);
    if (!s->trust_bundle_json || !s->root_cert_text || !s->configuration_json)
        goto oom;
    return s;
oom:
    snprintf(why, whylen, "out of memory rendering the CA chain");
    snapshot_free(s);
    return NULL;
}

service_snapshot *service_acquire(service *svc)
{
    pthread_mutex_lock(&svc->snap_lock);
    service_snapshot *s = svc->snap;
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&svc->snap_lock);
    return s;
}

void service_snapshot_release(service_snapshot *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        snapshot_free(s);
}

void service_publish(service *svc, service_snapshot *s)
{
    pthread_mutex_lock(&svc->snap_lock);
    service_snapshot *old = svc->snap;
    s->generation = old ? old->generation + 1 : 1;
    svc->snap = s;
    pthread_mutex_unlock(&svc->snap_lock);
    service_snapshot_release(old);
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
    pthread_mutex_init(&svc->snap_lock, NULL);
    svc->jwks = jwks;
    snprintf(svc->rl_identity_text, sizeof svc->rl_identity_text, "off");
    snprintf(svc->rl_issuer_text, sizeof svc->rl_issuer_text, "off");
    svc->ct_log_url = strdup(ct_log_url ? ct_log_url : "");
    service_snapshot *snap = service_snapshot_new(cfg, sgn, NULL, why, whylen);
    if (!snap || !svc->ct_log_url) {
        if (snap && !svc->ct_log_url)
            snprintf(why, whylen, "out of memory");
        service_snapshot_release(snap);
        service_free(svc);
        return NULL;
    }
    service_publish(svc, snap);
    return svc;
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
    const signer *sgn = svc->snap->signer;
    int n = sk_X509_num(sgn->chain);
    STACK_OF(X509) *roots = sk_X509_new_null();
    if (!roots || n < 1 || !sk_X509_push(roots, sk_X509_value(sgn->chain, n - 1))) {
        sk_X509_free(roots);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    ct_log_options lo = {.state_dir = dir, .roots = roots, .key_signer = o->key_signer,
                         .key_path = o->key_path, .key_passwd_file = o->key_passwd_file,
                         .batch_ms = o->batch_ms};
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
    service_snapshot_release(svc->snap);
    free(svc->ct_log_url);
    pthread_mutex_destroy(&svc->snap_lock);
    free(svc);
}
