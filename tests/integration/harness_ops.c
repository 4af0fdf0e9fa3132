#include "integration/harness_ops.h"

#include <curl/curl.h>
#include <openssl/bn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

char *hops_scrape(int port, char **content_type)
{
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    h_response r;
    char *out = NULL;
    if (h_get(url, &r) == 0 && r.status == 200) {
        out = r.body;
        r.body = NULL;
        if (content_type)
            *content_type = h_header(&r, "Content-Type");
    }
    h_response_free(&r);
    return out;
}

double hops_sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
        const char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

double hops_metric(int port, const char *series)
{
    char *text = hops_scrape(port, NULL);
    double v = text ? hops_sample(text, series) : -1;
    free(text);
    return v;
}

int hops_port_file(const char *path, int timeout_ms)
{
    long end = ms_now() + timeout_ms;
    do {
        char *t = h_read_file(path, NULL);
        int port = t ? atoi(t) : 0;
        free(t);
        if (port > 0)
            return port;
        usleep(20000);
    } while (ms_now() < end);
    return -1;
}

char *hops_v2_body(const char *token, EVP_PKEY *key, const char *challenge)
{
    char *pem = h_key_spki_pem(key);
    size_t sig_len = 0;
    unsigned char *sig = h_sign_pop(key, challenge, &sig_len);
    char *b64 = sig ? h_b64(sig, sig_len, 0) : NULL;
    char *out = NULL;
    if (pem && b64 && token) {
        json_t *req = json_pack("{s:{s:s},s:{s:{s:s,s:s},s:s}}", "credentials",
                                "oidcIdentityToken", token, "publicKeyRequest", "publicKey",
                                "algorithm", "ECDSA", "content", pem, "proofOfPossession", b64);
        out = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
    }
    free(pem);
    free(sig);
    free(b64);
    return out;
}

X509 *hops_v2_leaf(const char *body)
{
    json_error_t err;
    json_t *j = body ? json_loads(body, 0, &err) : NULL;
    json_t *w = json_object_get(j, "signedCertificateDetachedSct");
    if (!w)
        w = json_object_get(j, "signedCertificateEmbeddedSct");
    json_t *certs = json_object_get(json_object_get(w, "chain"), "certificates");
    const char *pem = json_string_value(json_array_get(certs, 0));
    X509 *x = pem ? h_cert_from_pem(pem) : NULL;
    json_decref(j);
    return x;
}

char *hops_serial_hex(X509 *cert)
{
    BIGNUM *bn = cert ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL) : NULL;
    char *h = bn ? BN_bn2hex(bn) : NULL;
    BN_free(bn);
    char *out = h ? strdup(h) : NULL;
    OPENSSL_free(h);
    for (char *p = out; p && *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    return out;
}

int hops_log_count(const h_proc *p, const char *needle)
{
    char *text = h_read_file(p->stderr_path, NULL);
    int n = 0;
    for (const char *s = text; s && (s = strstr(s, needle)) != NULL; s += strlen(needle))
        n++;
    free(text);
    return n;
}

int hops_wait_log(const h_proc *p, const char *needle, int count, int timeout_ms)
{
    long end = ms_now() + timeout_ms;
    do {
        if (hops_log_count(p, needle) >= count)
            return 1;
        usleep(20000);
    } while (ms_now() < end);
    return 0;
}

json_t *hops_audit_records(const char *path)
{
    char *text = h_read_file(path, NULL);
    if (!text)
        return NULL;
    json_t *arr = json_array();
    int bad = 0;
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) {
            bad = 1; /* a line without its newline */
            break;
        }
        *nl = '\0';
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!json_is_object(o)) {
            json_decref(o);
            bad = 1;
            break;
        }
        json_array_append_new(arr, o);
    }
    free(text);
    if (bad) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* ---- parallel POSTs -------------------------------------------------------------------- */

struct run {
    const char *url;
    hops_call *calls;
    int n;
    _Atomic int next;
};

static void *run_main(void *arg)
{
    struct run *r = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    for (int i; (i = atomic_fetch_add(&r->next, 1)) < r->n;) {
        h_sink s = {0};
        curl_easy_setopt(h, CURLOPT_URL, r->url);
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->calls[i].body);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, h_curl_sink);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        long status = 0;
        if (curl_easy_perform(h) == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        r->calls[i].status = status;
        r->calls[i].response = s.p;
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return NULL;
}

void hops_parallel_post(const char *url, hops_call *calls, int n, int threads)
{
    struct run r = {.url = url, .calls = calls, .n = n};
    pthread_t t[64];
    if (threads > 64)
        threads = 64;
    int started = 0;
    for (; started < threads; started++)
        if (pthread_create(&t[started], NULL, run_main, &r) != 0)
            break;
    if (started == 0)
        run_main(&r);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
}

void hops_calls_free(hops_call *calls, int n)
{
    for (int i = 0; calls && i < n; i++)
        free(calls[i].response);
}
