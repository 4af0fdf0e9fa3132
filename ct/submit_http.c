/*
 * ct/submit_http.c: submission to an external RFC 6962 log: POST <url>/ct/v1/add-pre-chain with
 * {"chain":[b64 DER, ...]} (ct-notes.md §1.1), on one fetch thread driving a libcurl multi handle
 * (the pattern of oidc/jwks_cache.c: curl_multi_poll, curl_multi_wakeup to hand it new work;
 * the multi handle's connection cache keeps connections to the log alive between submissions).
 *
 * Retries (certificate-transparency-go jsonclient, as Fulcio uses it, fulcio-compat.md §5):
 * transport errors and HTTP 408, 429 and 503 are retried after an exponential backoff
 * (BACKOFF_MIN_MS doubling up to BACKOFF_MAX_MS, plus up to JITTER_MS of jitter), or after the
 * answer's Retry-After (seconds or an HTTP date) when it has one. Every attempt has its own
 * timeout (attempt_timeout_ms, cut to what is left of the deadline) and the whole submission a
 * deadline (total_deadline_ms from ct_submit_precert); a retry that could not start before the
 * deadline is not made. Any other status fails at once, with the start of the log's answer in the
 * error (which the CA logs). A 200 answer is turned back into the TLS-serialised SCT (§1.4,
 * ct/add_chain_answer.c) and verified on the caller's worker (submit_common.c).
 *
 * Threads: workers only build the request body and queue it under the mutex; everything else
 * (easy handles, the waiting list) belongs to the fetch thread.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base64.h"
#include "common/log.h"
#include "ct/add_chain_answer.h"
#include "ct/submit_internal.h"

#define COMPONENT "ct"
#define MAX_ANSWER_BYTES (64 * 1024)
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define JITTER_MS 250
#define CONNECT_TIMEOUT_MS 10000
#define DEFAULT_ATTEMPT_MS 30000
#define DEFAULT_TOTAL_MS 60000

struct hsub {
    struct hsub *next;
    struct ct_submission *sub;
    char *body;
    size_t body_len;
    CURL *easy;            /* while an attempt runs */
    int attempts;
    int64_t deadline;      /* monotonic ms */
    int64_t next_at;       /* monotonic ms: the next attempt may start then */
    char *buf;
    size_t len, cap;
    int too_big;
    char curl_err[CURL_ERROR_SIZE];
    char last[CT_ERR_MAX / 2]; /* why the last attempt failed */
};

struct http_impl {
    char *url;             /* <prefix>/ct/v1/add-pre-chain */
    char *tls_ca;
    long attempt_ms, total_ms;
    struct curl_slist *headers;
    pthread_mutex_t mu;
    struct hsub *incoming; /* queued by workers (mutex) */
    struct hsub **incoming_tail;
    int stop;              /* mutex */
    CURLM *multi;
    pthread_t thread;
    struct hsub *subs;     /* fetch thread only: every accepted submission not yet finished */
    uint64_t rng;          /* fetch thread only */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hsub_free(struct hsub *h)
{
    free(h->body);
    free(h->buf);
    free(h);
}

/* ---- the answer ---- */

static size_t on_write(char *data, size_t size, size_t nmemb, void *p)
{
    struct hsub *h = p;
    size_t n = size * nmemb;
    if (h->len + n > MAX_ANSWER_BYTES) {
        h->too_big = 1;
        return 0;
    }
    if (h->len + n + 1 > h->cap) {
        size_t cap = h->cap ? h->cap : 1024;
        while (cap < h->len + n + 1)
            cap *= 2;
        char *b = realloc(h->buf, cap);
        if (!b)
            return 0;
        h->buf = b;
        h->cap = cap;
    }
    memcpy(h->buf + h->len, data, n);
    h->len += n;
    h->buf[h->len] = '\0';
    return n;
}

/* Up to 300 characters of the answer, control characters replaced, for the error text. */
static void answer_excerpt(const struct hsub *h, char *out, size_t outlen)
{
    size_t n = 0;
    for (size_t i = 0; i < h->len && n + 1 < outlen && i < 300; i++) {
        unsigned char c = (unsigned char)h->buf[i];
        out[n++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[n] = '\0';
}

/* Retry-After in ms (delta-seconds or an HTTP date), or -1 when absent or unreadable. */
static long retry_after_ms(CURL *easy)
{
    struct curl_header *hd = NULL;
    if (curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1, &hd) != CURLHE_OK || !hd ||
        !hd->value)
        return -1;
    const char *v = hd->value;
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v >= '0' && *v <= '9') {
        char *end = NULL;
        errno = 0;
        unsigned long s = strtoul(v, &end, 10);
        while (end && (*end == ' ' || *end == '\t'))
            end++;
        if (errno || !end || *end || s > 86400)
            return -1;
        return (long)s * 1000;
    }
    time_t at = curl_getdate(v, NULL);
    if (at < 0)
        return -1;
    time_t now = time(NULL);
    return at <= now ? 0 : (long)(at - now) * 1000;
}

/* ---- the fetch thread ---- */

static void finish(struct http_impl *impl, struct hsub *h, unsigned char *sct, size_t sct_len,
                   const char *err)
{
    struct hsub **pp = &impl->subs;
    while (*pp && *pp != h)
        pp = &(*pp)->next;
    if (*pp)
        *pp = h->next;
    if (h->easy) {
        curl_multi_remove_handle(impl->multi, h->easy);
        curl_easy_cleanup(h->easy);
        h->easy = NULL;
    }
    ct_submission_finish_async(h->sub, sct, sct_len, err);
    hsub_free(h);
}

static long backoff_ms(struct http_impl *impl, int attempts)
{
    long d = BACKOFF_MIN_MS;
    for (int i = 1; i < attempts && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    impl->rng ^= impl->rng << 13;
    impl->rng ^= impl->rng >> 7;
    impl->rng ^= impl->rng << 17;
    return d + (long)(impl->rng % (JITTER_MS + 1));
}

/* A failure that may be retried: schedule the next attempt, or give up at the deadline. */
static void retry_or_fail(struct http_impl *impl, struct hsub *h, long after_ms)
{
    int64_t now = mono_ms();
    long delay = after_ms >= 0 ? after_ms : backoff_ms(impl, h->attempts);
    if (now + delay >= h->deadline) {
        char why[CT_ERR_MAX];
        snprintf(why, sizeof why, "POST %.200s: gave up after %d attempt%s within %ld ms: %s",
                 impl->url, h->attempts, h->attempts == 1 ? "" : "s", impl->total_ms, h->last);
        finish(impl, h, NULL, 0, why);
        return;
    }
    log_warn(COMPONENT, "POST %s attempt %d failed (%s); retrying in %ld ms", impl->url,
             h->attempts, h->last, delay);
    if (h->easy) {
        curl_multi_remove_handle(impl->multi, h->easy);
        curl_easy_cleanup(h->easy);
        h->easy = NULL;
    }
    h->next_at = now + delay;
}

static void on_done(struct http_impl *impl, struct hsub *h, CURLcode res)
{
    long status = 0;
    char excerpt[320];
    if (res != CURLE_OK) {
        snprintf(h->last, sizeof h->last, "%s",
                 h->too_big ? "the answer is larger than 64 KiB"
                 : h->curl_err[0] ? h->curl_err : curl_easy_strerror(res));
        if (h->too_big) {
            char why[CT_ERR_MAX];
            snprintf(why, sizeof why, "POST %.200s: %s", impl->url, h->last);
            finish(impl, h, NULL, 0, why);
            return;
        }
        retry_or_fail(impl, h, -1);
        return;
    }
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    answer_excerpt(h, excerpt, sizeof excerpt);
    if (status == 200) {
        char why[CT_ERR_MAX / 2] = "";
        size_t n = 0;
        unsigned char *sct =
            ct_add_chain_answer_parse(h->buf ? h->buf : "", h->len, &n, why, sizeof why);
        if (!sct) {
            char err[CT_ERR_MAX];
            snprintf(err, sizeof err, "POST %.200s: HTTP 200 but not an SCT (%.100s): %.300s",
                     impl->url, why, excerpt);
            finish(impl, h, NULL, 0, err);
            return;
        }
        finish(impl, h, sct, n, NULL);
        return;
    }
    snprintf(h->last, sizeof h->last, "HTTP %ld: %.300s", status, excerpt);
    if (status == 408 || status == 429 || status == 503) {
        retry_or_fail(impl, h, retry_after_ms(h->easy));
        return;
    }
    char why[CT_ERR_MAX];
    snprintf(why, sizeof why, "POST %.200s answered %s", impl->url, h->last);
    finish(impl, h, NULL, 0, why);
}

static int start_attempt(struct http_impl *impl, struct hsub *h, int64_t now)
{
    long left = (long)(h->deadline - now);
    if (left <= 0) {
        if (!h->last[0])
            snprintf(h->last, sizeof h->last, "the deadline passed before the first attempt");
        return -1;
    }
    long t = impl->attempt_ms < left ? impl->attempt_ms : left;
    CURL *e = curl_easy_init();
    if (!e) {
        snprintf(h->last, sizeof h->last, "out of memory");
        return -1;
    }
    h->len = 0;
    h->too_big = 0;
    h->curl_err[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, impl->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, impl->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, t < CONNECT_TIMEOUT_MS ? t : CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->curl_err);
    curl_easy_setopt(e, CURLOPT_PRIVATE, h);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "fulcrum");
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (impl->tls_ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, impl->tls_ca);
    if (curl_multi_add_handle(impl->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        snprintf(h->last, sizeof h->last, "cannot start the request");
        return -1;
    }
    h->easy = e;
    h->attempts++;
    return 0;
}

/* Starts every due attempt; returns how long the poll may sleep (ms). */
static int start_due(struct http_impl *impl)
{
    int64_t now = mono_ms();
    int timeout = 1000;
    struct hsub *h = impl->subs;
    while (h) {
        struct hsub *next = h->next;
        if (!h->easy) {
            if (h->next_at <= now) {
                if (start_attempt(impl, h, now) != 0) {
                    char why[CT_ERR_MAX];
                    snprintf(why, sizeof why, "POST %.200s: %s", impl->url, h->last);
                    finish(impl, h, NULL, 0, why);
                }
            } else if (h->next_at - now < timeout) {
                timeout = (int)(h->next_at - now);
            }
        }
        h = next;
    }
    return timeout < 1 ? 1 : timeout;
}

static void *fetch_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ct-submit");
    struct http_impl *impl = arg;
    for (;;) {
        pthread_mutex_lock(&impl->mu);
        int stop = impl->stop;
        struct hsub *q = impl->incoming;
        impl->incoming = NULL;
        impl->incoming_tail = &impl->incoming;
        pthread_mutex_unlock(&impl->mu);
        if (stop)
            break;
        if (q) { /* append in submission order */
            struct hsub **pp = &impl->subs;
            while (*pp)
                pp = &(*pp)->next;
            *pp = q;
        }
        int timeout = start_due(impl);
        int running = 0, finished = 0;
        curl_multi_perform(impl->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(impl->multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct hsub *h = NULL;
            CURLcode res = m->data.result;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&h);
            if (h) {
                on_done(impl, h, res);
                finished = 1;
            }
        }
        if (finished)
            continue; /* a retry may be due at once (Retry-After: 0) */
        curl_multi_poll(impl->multi, NULL, 0, timeout, NULL);
    }
    return NULL;
}

/* ---- the submitter ---- */

static char *request_body(STACK_OF(X509) *chain, size_t *len)
{
    size_t cap = 32, n = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    n = (size_t)snprintf(out, cap, "{\"chain\":[");
    for (int i = 0; i < sk_X509_num(chain); i++) {
        unsigned char *der = NULL;
        int dlen = i2d_X509(sk_X509_value(chain, i), &der);
        char *b64 = dlen > 0 ? b64_encode(der, (size_t)dlen) : NULL;
        OPENSSL_free(der);
        if (!b64) {
            free(out);
            return NULL;
        }
        size_t blen = strlen(b64);
        if (n + blen + 8 > cap) {
            while (n + blen + 8 > cap)
                cap *= 2;
            char *o = realloc(out, cap);
            if (!o) {
                free(b64);
                free(out);
                return NULL;
            }
            out = o;
        }
        n += (size_t)snprintf(out + n, cap - n, "%s\"%s\"", i ? "," : "", b64);
        free(b64);
    }
    n += (size_t)snprintf(out + n, cap - n, "]}");
    *len = n;
    return out;
}

static int http_submit(void *p, struct ct_submission *sub, char *why, size_t whylen)
{
    struct http_impl *impl = p;
    struct hsub *h = calloc(1, sizeof *h);
    if (!h || !(h->body = request_body(sub->chain, &h->body_len))) {
        free(h);
        snprintf(why, whylen, "CT submission: out of memory");
        return -1;
    }
    h->sub = sub;
    h->deadline = mono_ms() + impl->total_ms;
    pthread_mutex_lock(&impl->mu);
    *impl->incoming_tail = h;
    impl->incoming_tail = &h->next;
    pthread_mutex_unlock(&impl->mu);
    curl_multi_wakeup(impl->multi);
    return 0;
}

static void http_destroy(void *p)
{
    struct http_impl *impl = p;
    if (!impl)
        return;
    pthread_mutex_lock(&impl->mu);
    impl->stop = 1;
    pthread_mutex_unlock(&impl->mu);
    curl_multi_wakeup(impl->multi);
    pthread_join(impl->thread, NULL);
    /* Whatever is left never gets its callback: the server has stopped waiting for it. */
    struct hsub *lists[2] = {impl->subs, impl->incoming};
    for (int i = 0; i < 2; i++) {
        for (struct hsub *h = lists[i]; h;) {
            struct hsub *next = h->next;
            if (h->easy) {
                curl_multi_remove_handle(impl->multi, h->easy);
                curl_easy_cleanup(h->easy);
            }
            ct_submission_free(h->sub);
            hsub_free(h);
            h = next;
        }
    }
    curl_multi_cleanup(impl->multi);
    curl_slist_free_all(impl->headers);
    pthread_mutex_destroy(&impl->mu);
    free(impl->url);
    free(impl->tls_ca);
    free(impl);
    curl_global_cleanup();
}

static const struct ct_submitter_ops http_ops = {
    .submit = http_submit,
    .destroy = http_destroy,
};

static int url_ok(const char *url, char *why, size_t whylen)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    int ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
             (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
    if (!ok)
        snprintf(why, whylen, "\"%.200s\" is not an http(s) URL", url);
    curl_free(scheme);
    curl_url_cleanup(u);
    return ok;
}

ct_submitter *ct_submitter_http(const ct_http_options *o, char *why, size_t whylen)
{
    if (!o || !o->url || !*o->url) {
        snprintf(why, whylen, "no CT log URL");
        return NULL;
    }
    if (!o->log_key) {
        snprintf(why, whylen, "the log's public key is required to verify its SCTs");
        return NULL;
    }
    if (!url_ok(o->url, why, whylen))
        return NULL;
    if (o->tls_ca_file) {
        FILE *f = fopen(o->tls_ca_file, "r");
        if (!f) {
            snprintf(why, whylen, "cannot read the log's TLS CA file %.300s: %s", o->tls_ca_file,
                     strerror(errno));
            return NULL;
        }
        fclose(f);
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(why, whylen, "cannot initialise libcurl");
        return NULL;
    }
    struct http_impl *impl = calloc(1, sizeof *impl);
    if (!impl) {
        curl_global_cleanup();
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    impl->attempt_ms = o->attempt_timeout_ms > 0 ? o->attempt_timeout_ms : DEFAULT_ATTEMPT_MS;
    impl->total_ms = o->total_deadline_ms > 0 ? o->total_deadline_ms : DEFAULT_TOTAL_MS;
    size_t ulen = strlen(o->url);
    while (ulen > 0 && o->url[ulen - 1] == '/')
        ulen--;
    static const char suffix[] = "/ct/v1/add-pre-chain";
    impl->url = malloc(ulen + sizeof suffix);
    if (impl->url) {
        memcpy(impl->url, o->url, ulen);
        memcpy(impl->url + ulen, suffix, sizeof suffix);
    }
    impl->tls_ca = o->tls_ca_file ? strdup(o->tls_ca_file) : NULL;
    impl->headers = curl_slist_append(NULL, "Content-Type: application/json");
    impl->incoming_tail = &impl->incoming;
    impl->rng = (uint64_t)mono_ms() * 0x9e3779b97f4a7c15ULL | 1;
    pthread_mutex_init(&impl->mu, NULL);
    impl->multi = curl_multi_init();
    if (impl->multi)
        curl_multi_setopt(impl->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    if (!impl->url || (o->tls_ca_file && !impl->tls_ca) || !impl->headers || !impl->multi ||
        pthread_create(&impl->thread, NULL, fetch_main, impl) != 0) {
        if (impl->multi)
            curl_multi_cleanup(impl->multi);
        curl_slist_free_all(impl->headers);
        pthread_mutex_destroy(&impl->mu);
        free(impl->url);
        free(impl->tls_ca);
        free(impl);
        curl_global_cleanup();
        snprintf(why, whylen, "cannot start the CT submission thread");
        return NULL;
    }
    return ct_submitter_wrap(&http_ops, impl, o->log_key, why, whylen);
}
