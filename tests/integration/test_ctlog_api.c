/*
 * tests/integration/test_ctlog_api.c: `fulcrum ctlog serve` as a real process, driven over
 * HTTP and checked by code independent of ct/ (tests/unit/ct_testkit.h and OpenSSL's CT
 * code): every RFC 6962 endpoint, its edge cases (ct-notes §1.1), the byte layout of entries,
 * STH signatures, proofs, deduplication, a concurrent burst of 500 submissions over 50
 * connections (all SCT'd, all in the tree within 1 s), a restart, and Debian's certspotter
 * (a real RFC 6962 monitor) verifying STHs and rebuilding the tree, before and after the burst.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <signal.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "integration/harness.h"
#include "unit/check.h"
#include "unit/ct_testkit.h"

#define BURST 500
#define MAX_GET_ENTRIES 64

static const char *g_bin;
static char g_url[64];
static EVP_PKEY *g_pub;
static unsigned char g_log_id[32];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static unsigned char *dec64(const char *s, size_t *len)
{
    size_t n = s ? strlen(s) : 0;
    if (!s || n % 4)
        return NULL;
    unsigned char *out = malloc(n / 4 * 3 + 1);
    int r = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    if (r < 0) {
        free(out);
        return NULL;
    }
    size_t pad = (n && s[n - 1] == '=') + (n > 1 && s[n - 2] == '=');
    *len = (size_t)r - pad;
    return out;
}

static char *enc64(const unsigned char *d, size_t n)
{
    char *out = malloc((n + 2) / 3 * 4 + 1);
    EVP_EncodeBlock((unsigned char *)out, d, (int)n);
    return out;
}

static char *cert_b64(X509 *x)
{
    size_t n = 0;
    unsigned char *der = ctk_der(x, &n);
    char *s = enc64(der, n);
    OPENSSL_free(der);
    return s;
}

/* ---- starting the log ---- */

static int start_log(h_proc *p, const char *name, const char *roots, const char *state)
{
    char port_file[4200], url[128];
    snprintf(port_file, sizeof port_file, "%s/%s.port", h_tmpdir(), name);
    unlink(port_file);
    char *argv[] = {(char *)g_bin, "ctlog", "serve", "--host", "127.0.0.1", "--port", "0",
                    "--port-file", port_file, "--state-dir", (char *)state, "--roots",
                    (char *)roots, "--workers", "4", "--sth-interval-ms", "100",
                    "--max-get-entries", "64", NULL};
    if (h_proc_start(p, name, argv) != 0)
        return -1;
    double deadline = now_s() + 20;
    while (now_s() < deadline) {
        if (!h_proc_alive(p))
            return -1;
        char *text = h_read_file(port_file, NULL);
        int port = text ? atoi(text) : 0;
        free(text);
        if (port > 0) {
            snprintf(g_url, sizeof g_url, "http://127.0.0.1:%d", port);
            snprintf(url, sizeof url, "%s/healthz", g_url);
            h_response r;
            int rc = h_get(url, &r);
            long st = r.status;
            h_response_free(&r);
            if (rc == 0 && st == 200)
                return 0;
        }
        sleep_ms(20);
    }
    return -1;
}

/* ---- HTTP helpers ---- */

static json_t *get_json(const char *pathq, long want, const char *what)
{
    char url[2048];
    snprintf(url, sizeof url, "%s/ct/v1/%s", g_url, pathq);
    h_response r;
    h_get(url, &r);
    json_t *j = NULL;
    if (r.status == want)
        j = h_json(&r);
    CHECK(j != NULL, "%s: GET %s -> %ld (want %ld) %s", what, pathq, r.status, want,
          r.body ? r.body : "");
    h_response_free(&r);
    return j;
}

static json_t *post_chain(const char *endpoint, X509 *const *certs, int n, long *status)
{
    char *body = malloc(64 + (size_t)n * 4096);
    strcpy(body, "{\"chain\":[");
    for (int i = 0; i < n; i++) {
        char *b = cert_b64(certs[i]);
        if (i)
            strcat(body, ",");
        strcat(body, "\"");
        strcat(body, b);
        strcat(body, "\"");
        free(b);
    }
    strcat(body, "]}");
    char url[256];
    snprintf(url, sizeof url, "%s/ct/v1/%s", g_url, endpoint);
    h_response r;
    h_post_json(url, body, NULL, &r);
    free(body);
    *status = r.status;
    json_t *j = r.status == 200 ? h_json(&r) : NULL;
    if (r.status != 200)
        fprintf(stderr, "POST %s -> %ld %s\n", endpoint, r.status, r.body ? r.body : "");
    h_response_free(&r);
    return j;
}

/* status, JSON content type, {"success":false,"error_message":"...needle..."}. */
static void expect_error(const char *method, const char *pathq, const char *body, long status,
                         const char *needle, const char *what)
{
    char url[2048];
    snprintf(url, sizeof url, "%s/ct/v1/%s", g_url, pathq);
    h_response r;
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    h_http(method, url, hdrs, body, body ? strlen(body) : 0, &r);
    char *ct = h_header(&r, "Content-Type");
    json_t *j = r.body ? json_loads(r.body, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "error_message"));
    CHECK(r.status == status && ct && strcmp(ct, "application/json") == 0 &&
              json_is_false(json_object_get(j, "success")) && msg &&
              (!needle || strstr(msg, needle)),
          "%s: %s %s -> %ld %s (want %ld with \"%s\")", what, method, pathq, r.status,
          r.body ? r.body : "", status, needle ? needle : "");
    json_decref(j);
    free(ct);
    h_response_free(&r);
}

/* The AddChainResponse as TLS bytes (what OpenSSL's o2i_SCT reads). */
static int sct_bytes(json_t *j, unsigned char *out, size_t *len, uint64_t *ts)
{
    size_t idl = 0, extl = 0, sigl = 0;
    unsigned char *id = dec64(json_string_value(json_object_get(j, "id")), &idl);
    unsigned char *ext = dec64(json_string_value(json_object_get(j, "extensions")), &extl);
    unsigned char *sig = dec64(json_string_value(json_object_get(j, "signature")), &sigl);
    json_t *t = json_object_get(j, "timestamp");
    int ok = id && ext && sig && idl == 32 && json_is_integer(t) &&
             json_integer_value(json_object_get(j, "sct_version")) == 0 &&
             json_is_integer(json_object_get(j, "sct_version")) && json_object_size(j) == 5 &&
             47 + extl + sigl <= 512;
    if (ok) {
        *ts = (uint64_t)json_integer_value(t);
        size_t o = 0;
        out[o++] = 0;
        memcpy(out + o, id, 32);
        o += 32;
        for (int i = 0; i < 8; i++)
            out[o++] = (unsigned char)(*ts >> (56 - 8 * i));
        out[o++] = (unsigned char)(extl >> 8);
        out[o++] = (unsigned char)extl;
        memcpy(out + o, ext, extl);
        o += extl;
        memcpy(out + o, sig, sigl);
        o += sigl;
        *len = o;
        ok = memcmp(id, g_log_id, 32) == 0 && extl == 0;
    }
    free(id);
    free(ext);
    free(sig);
    return ok;
}

/* MerkleTreeLeaf the test expects for an x509 entry. */
static unsigned char *x509_leaf(X509 *x, uint64_t ts, size_t *len)
{
    size_t n = 0;
    unsigned char *der = ctk_der(x, &n);
    unsigned char *l = malloc(n + 17);
    l[0] = 0;
    l[1] = 0;
    for (int i = 0; i < 8; i++)
        l[2 + i] = (unsigned char)(ts >> (56 - 8 * i));
    l[10] = 0;
    l[11] = 0;
    l[12] = (unsigned char)(n >> 16);
    l[13] = (unsigned char)(n >> 8);
    l[14] = (unsigned char)n;
    memcpy(l + 15, der, n);
    l[15 + n] = 0;
    l[16 + n] = 0;
    *len = n + 17;
    OPENSSL_free(der);
    return l;
}

struct sth {
    uint64_t size, ts;
    unsigned char root[32];
    int ok;
};

static struct sth get_sth(const char *what)
{
    struct sth s = {0};
    json_t *j = get_json("get-sth", 200, what);
    size_t rl = 0, sl = 0;
    unsigned char *root = dec64(json_string_value(json_object_get(j, "sha256_root_hash")), &rl);
    unsigned char *sig =
        dec64(json_string_value(json_object_get(j, "tree_head_signature")), &sl);
    if (j && root && rl == 32 && sig && json_object_size(j) == 4) {
        s.size = (uint64_t)json_integer_value(json_object_get(j, "tree_size"));
        s.ts = (uint64_t)json_integer_value(json_object_get(j, "timestamp"));
        memcpy(s.root, root, 32);
        s.ok = ctk_verify_sth(g_pub, s.ts, s.size, s.root, sig, sl);
    }
    CHECK(s.ok, "%s: get-sth has 4 fields and its signature verifies with public.pem", what);
    free(root);
    free(sig);
    json_decref(j);
    return s;
}

static struct sth wait_sth(uint64_t size, double limit, const char *what)
{
    double start = now_s();
    struct sth s;
    do {
        s = get_sth(what);
        if (s.size >= size)
            break;
        sleep_ms(10);
    } while (now_s() - start < 5);
    double took = now_s() - start;
    CHECK(s.size == size && took <= limit, "%s: STH size %llu after %.3f s (want %llu within %.1f s)",
          what, (unsigned long long)s.size, took, (unsigned long long)size, limit);
    return s;
}

/* All entries 0..size-1 through get-entries (following short reads). */
struct entries {
    size_t n;
    unsigned char **leaf, **extra;
    size_t *leaf_len, *extra_len;
    unsigned char (*hash)[32];
};

static void entries_free(struct entries *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->leaf[i]);
        free(e->extra[i]);
    }
    free(e->leaf);
    free(e->extra);
    free(e->leaf_len);
    free(e->extra_len);
    free(e->hash);
    memset(e, 0, sizeof *e);
}

static int fetch_entries(uint64_t size, struct entries *e, int *max_batch)
{
    memset(e, 0, sizeof *e);
    e->leaf = calloc(size + 1, sizeof *e->leaf);
    e->extra = calloc(size + 1, sizeof *e->extra);
    e->leaf_len = calloc(size + 1, sizeof *e->leaf_len);
    e->extra_len = calloc(size + 1, sizeof *e->extra_len);
    e->hash = calloc(size + 1, 32);
    *max_batch = 0;
    while (e->n < size) {
        char q[128];
        snprintf(q, sizeof q, "get-entries?start=%zu&end=%llu", e->n,
                 (unsigned long long)size + 1000);
        if (e->n + 1000 >= size) /* ask past the end only once the tree is nearly read */
            snprintf(q, sizeof q, "get-entries?start=%zu&end=%llu", e->n,
                     (unsigned long long)size - 1);
        json_t *j = get_json(q, 200, "get-entries");
        json_t *arr = json_object_get(j, "entries");
        size_t got = json_array_size(arr);
        if (!j || json_object_size(j) != 1 || got == 0) {
            json_decref(j);
            return -1;
        }
        if ((int)got > *max_batch)
            *max_batch = (int)got;
        for (size_t i = 0; i < got && e->n < size; i++) {
            json_t *it = json_array_get(arr, i);
            e->leaf[e->n] = dec64(json_string_value(json_object_get(it, "leaf_input")),
                                  &e->leaf_len[e->n]);
            e->extra[e->n] = dec64(json_string_value(json_object_get(it, "extra_data")),
                                   &e->extra_len[e->n]);
            if (!e->leaf[e->n] || !e->extra[e->n] || json_object_size(it) != 2) {
                json_decref(j);
                return -1;
            }
            ctk_leaf_hash(e->leaf[e->n], e->leaf_len[e->n], e->hash[e->n]);
            e->n++;
        }
        json_decref(j);
    }
    return 0;
}

/* Parses ASN.1Cert certificate_chain<0..2^24-1>: returns the count, fills DER pointers. */
static int parse_chain_list(const unsigned char *p, size_t len, const unsigned char **der,
                            size_t *der_len, int max)
{
    if (len < 3 || ctk_be(p, 3) != len - 3)
        return -1;
    size_t o = 3;
    int n = 0;
    while (o < len) {
        if (len - o < 3 || n >= max)
            return -1;
        size_t l = ctk_be(p + o, 3);
        if (len - o - 3 < l)
            return -1;
        der[n] = p + o + 3;
        der_len[n] = l;
        n++;
        o += 3 + l;
    }
    return n;
}

static int der_is(const unsigned char *der, size_t len, X509 *x)
{
    size_t n = 0;
    unsigned char *d = ctk_der(x, &n);
    int same = n == len && memcmp(d, der, n) == 0;
    OPENSSL_free(d);
    return same;
}

static int proof_from_json(json_t *arr, unsigned char (*out)[32], size_t max)
{
    if (!json_is_array(arr) || json_array_size(arr) > max)
        return -1;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        size_t l = 0;
        unsigned char *h = dec64(json_string_value(json_array_get(arr, i)), &l);
        if (!h || l != 32) {
            free(h);
            return -1;
        }
        memcpy(out[i], h, 32);
        free(h);
    }
    return (int)json_array_size(arr);
}

static int check_inclusion(const unsigned char hash[32], uint64_t want_index, uint64_t size,
                           const unsigned char root[32])
{
    char *b = enc64(hash, 32);
    char *esc = curl_easy_escape(NULL, b, 0);
    char q[256];
    snprintf(q, sizeof q, "get-proof-by-hash?hash=%s&tree_size=%llu", esc,
             (unsigned long long)size);
    curl_free(esc);
    free(b);
    json_t *j = get_json(q, 200, "get-proof-by-hash");
    unsigned char path[130][32];
    int n = proof_from_json(json_object_get(j, "audit_path"), path, 130);
    json_t *li = json_object_get(j, "leaf_index");
    int ok = n >= 0 && json_is_integer(li) && (uint64_t)json_integer_value(li) == want_index &&
             json_object_size(j) == 2 &&
             ctk_verify_inclusion(hash, want_index, size, path, (size_t)n, root);
    json_decref(j);
    return ok;
}

static int check_consistency(uint64_t first, uint64_t second, const unsigned char r1[32],
                             const unsigned char r2[32])
{
    char q[128];
    snprintf(q, sizeof q, "get-sth-consistency?first=%llu&second=%llu",
             (unsigned long long)first, (unsigned long long)second);
    json_t *j = get_json(q, 200, "get-sth-consistency");
    unsigned char proof[130][32];
    int n = proof_from_json(json_object_get(j, "consistency"), proof, 130);
    int ok = n >= 0 && json_object_size(j) == 1 &&
             ctk_verify_consistency(first, second, r1, r2, proof, (size_t)n);
    json_decref(j);
    return ok;
}

/* ---- certspotter ---- */

static const char *certspotter_bin(void)
{
    const char *env = getenv("CERTSPOTTER_BIN");
    if (env && *env)
        return env;
    static const char *const paths[] = {"/usr/bin/certspotter", "/usr/local/bin/certspotter"};
    for (size_t i = 0; i < 2; i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

static char *file_in_log_state(const char *state, const char *leaf)
{
    char logs[4200];
    snprintf(logs, sizeof logs, "%s/logs", state);
    DIR *d = opendir(logs);
    if (!d)
        return NULL;
    struct dirent *de;
    char *out = NULL;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        out = malloc(strlen(logs) + strlen(de->d_name) + strlen(leaf) + 3);
        sprintf(out, "%s/%s/%s", logs, de->d_name, leaf);
        break;
    }
    closedir(d);
    return out;
}

static int dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return 1;
    struct dirent *de;
    int empty = 1;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            empty = 0;
    closedir(d);
    return empty;
}

/* Runs certspotter against the log until it has stored a verified STH of `size` with `root`
 * (it verifies the STH signature, downloads every entry, rebuilds the tree and, from a
 * previous run's state, checks consistency). Any error it reports fails the test. */
static void run_certspotter(const char *run, const char *state, uint64_t size,
                            const unsigned char root[32])
{
    const char *bin = certspotter_bin();
    CHECK(bin != NULL, "certspotter is installed (scripts/install-deps installs it)");
    if (!bin)
        return;
    char list[4200], watch[4200];
    snprintf(list, sizeof list, "%s/loglist.json", h_tmpdir());
    snprintf(watch, sizeof watch, "%s/watchlist", h_tmpdir());
    unsigned char *spki = NULL;
    int sl = i2d_PUBKEY(g_pub, &spki);
    char *key = enc64(spki, (size_t)sl), *id = enc64(g_log_id, 32);
    OPENSSL_free(spki);
    char text[2048];
    snprintf(text, sizeof text,
             "{\"version\":\"1.0\",\"log_list_timestamp\":\"2026-01-01T00:00:00Z\","
             "\"operators\":[{\"name\":\"fulcrum\",\"email\":[\"ct@example.com\"],\"logs\":[{"
             "\"description\":\"fulcrum test log\",\"log_id\":\"%s\",\"key\":\"%s\","
             "\"url\":\"%s/\",\"mmd\":86400,"
             "\"state\":{\"usable\":{\"timestamp\":\"2020-01-01T00:00:00Z\"}}}]}]}\n",
             id, key, g_url);
    free(key);
    free(id);
    h_write_file(list, text);
    h_write_file(watch, "example.org\n");
    char *argv[] = {(char *)bin, "-logs", list, "-state_dir", (char *)state, "-watchlist", watch,
                    "-stdout", "-no_save", "-verbose", NULL};
    h_proc p;
    if (h_proc_start(&p, run, argv) != 0) {
        CHECK(0, "%s: certspotter starts", run);
        return;
    }
    double start = now_s();
    int verified = 0;
    char *root_b64 = enc64(root, 32);
    while (now_s() - start < 30 && h_proc_alive(&p)) {
        char *sf = file_in_log_state(state, "state.json");
        char *txt = sf ? h_read_file(sf, NULL) : NULL;
        json_t *j = txt ? json_loads(txt, 0, NULL) : NULL;
        json_t *v = json_object_get(j, "verified_sth");
        if (v && (uint64_t)json_integer_value(json_object_get(v, "tree_size")) == size &&
            (uint64_t)json_integer_value(json_object_get(json_object_get(j, "verified_position"),
                                                          "size")) == size) {
            verified = 1;
            CHECK_STREQ(json_string_value(json_object_get(v, "sha256_root_hash")), root_b64,
                        "certspotter's verified root hash");
        }
        json_decref(j);
        free(txt);
        free(sf);
        if (verified)
            break;
        sleep_ms(50);
    }
    free(root_b64);
    double took = now_s() - start;
    int code = h_proc_stop(&p, 5000);
    CHECK(verified, "%s: certspotter verified the STH of size %llu and rebuilt the tree "
                    "(%.2f s)", run, (unsigned long long)size, took);
    CHECK(code == 0, "%s: certspotter exits 0 on SIGTERM (got %d)", run, code);
    /* Anything it reports on stdout (notifications, errors), or an error line on stderr other
     * than its own shutdown, is a failure. */
    char *out = h_read_file(p.stdout_path, NULL), *err = h_read_file(p.stderr_path, NULL);
    CHECK(out && out[0] == '\0', "%s: certspotter reported nothing on stdout: %s", run,
          out ? out : "(unreadable)");
    int bad = 0;
    for (char *line = err ? strtok(err, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        int error_line = strstr(line, "rror") || strstr(line, "mismatch") ||
                         strstr(line, "does not match") || strstr(line, "failed") ||
                         strstr(line, "invalid");
        if (error_line && !strstr(line, "context canceled")) {
            fprintf(stderr, "certspotter: %s\n", line);
            bad++;
        }
    }
    CHECK(err && bad == 0, "%s: certspotter logged %d problem line(s)", run, bad);
    free(out);
    free(err);
    char *malformed = file_in_log_state(state, "malformed_entries");
    CHECK(malformed && dir_is_empty(malformed), "%s: certspotter found no malformed entries", run);
    free(malformed);
}

/* ---- burst ---- */

struct xfer {
    CURL *h;
    char *body;
    char *resp;
    size_t resp_len;
    long status;
};

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
    struct xfer *x = arg;
    char *r = realloc(x->resp, x->resp_len + sz * n + 1);
    if (!r)
        return 0;
    memcpy(r + x->resp_len, p, sz * n);
    x->resp_len += sz * n;
    r[x->resp_len] = '\0';
    x->resp = r;
    return sz * n;
}

/* POSTs every body at once over at most `conns` connections. Returns the wall time. */
static double post_all(struct xfer *xs, int n, int conns)
{
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conns);
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conns);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    char url[256];
    snprintf(url, sizeof url, "%s/ct/v1/add-chain", g_url);
    for (int i = 0; i < n; i++) {
        xs[i].h = curl_easy_init();
        curl_easy_setopt(xs[i].h, CURLOPT_URL, url);
        curl_easy_setopt(xs[i].h, CURLOPT_POSTFIELDS, xs[i].body);
        curl_easy_setopt(xs[i].h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(xs[i].h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(xs[i].h, CURLOPT_WRITEDATA, &xs[i]);
        curl_easy_setopt(xs[i].h, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(xs[i].h, CURLOPT_TIMEOUT, 60L);
        curl_multi_add_handle(m, xs[i].h);
    }
    double start = now_s();
    int running = 1;
    while (running) {
        curl_multi_perform(m, &running);
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    double took = now_s() - start;
    for (int i = 0; i < n; i++) {
        curl_easy_getinfo(xs[i].h, CURLINFO_RESPONSE_CODE, &xs[i].status);
        curl_multi_remove_handle(m, xs[i].h);
        curl_easy_cleanup(xs[i].h);
    }
    curl_slist_free_all(hdrs);
    curl_multi_cleanup(m);
    return took;
}

/* ---- the test ---- */

static void write_pem(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");
    if (f) {
        PEM_write_X509(f, x);
        fclose(f);
    }
}

int main(void)
{
    if (h_init("ctlog_api") != 0)
        return 1;
    g_bin = h_env("FULCRUM_BIN");
    if (!g_bin) {
        h_finish(1);
        return 1;
    }
    EVP_PKEY *root_key = ctk_key(), *inter_key = ctk_key(), *leaf_key = ctk_key(),
             *other_key = ctk_key();
    X509 *root = ctk_cert("Test Root", root_key, NULL, NULL, 1, CTK_NO_POISON, 0);
    X509 *inter = ctk_cert("Test Intermediate", inter_key, root, root_key, 1, CTK_NO_POISON, 0);
    X509 *leaf_a = ctk_cert("leaf-a", leaf_key, inter, inter_key, 0, CTK_NO_POISON, 0);
    X509 *leaf_b = ctk_cert("leaf-b", leaf_key, inter, inter_key, 0, CTK_NO_POISON, 0);
    X509 *pre = ctk_cert("pre", leaf_key, inter, inter_key, 0, CTK_POISON, 0);
    X509 *pre_nc = ctk_cert("pre-nc", leaf_key, inter, inter_key, 0, CTK_POISON_NONCRITICAL, 0);
    X509 *other = ctk_cert("Other Root", other_key, NULL, NULL, 1, CTK_NO_POISON, 0);
    X509 *stranger = ctk_cert("stranger", leaf_key, other, other_key, 0, CTK_NO_POISON, 0);

    char roots_path[4200], state[4200], cs_state[4200];
    snprintf(roots_path, sizeof roots_path, "%s/roots.pem", h_tmpdir());
    snprintf(state, sizeof state, "%s/state", h_tmpdir());
    snprintf(cs_state, sizeof cs_state, "%s/certspotter", h_tmpdir());
    write_pem(roots_path, root);

    /* Start-up refusals. */
    {
        char *err = NULL;
        char *argv[] = {(char *)g_bin, "ctlog", "serve", "--host", "127.0.0.1", "--port", "0",
                        NULL};
        int code = h_run("no-roots", argv, 10000, &err);
        CHECK(code == 2 && err && strstr(err, "--roots is required"),
              "ctlog serve without --roots exits 2 naming the flag (got %d)", code);
        free(err);
        char bad[4200];
        snprintf(bad, sizeof bad, "%s/bad-roots.pem", h_tmpdir());
        h_write_file(bad, "not a certificate\n");
        char *argv2[] = {(char *)g_bin, "ctlog", "serve", "--host", "127.0.0.1", "--port", "0",
                         "--roots", bad, "--state-dir", state, NULL};
        code = h_run("bad-roots", argv2, 10000, &err);
        CHECK(code == 1 && err && strstr(err, "no PEM certificate"),
              "ctlog serve with a roots file without certificates exits 1 (got %d)", code);
        free(err);
    }

    h_proc log;
    if (start_log(&log, "ctlog-1", roots_path, state) != 0) {
        CHECK(0, "fulcrum ctlog serve starts");
        h_finish(1);
        return 1;
    }
    char pub_path[4300];
    snprintf(pub_path, sizeof pub_path, "%s/ctlog/public.pem", state);
    FILE *f = fopen(pub_path, "r");
    g_pub = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    CHECK(g_pub != NULL, "public.pem written");
    unsigned char *spki = NULL;
    int spki_len = i2d_PUBKEY(g_pub, &spki);
    SHA256(spki, (size_t)spki_len, g_log_id);
    OPENSSL_free(spki);

    /* get-roots */
    json_t *j = get_json("get-roots", 200, "get-roots");
    char *root_b64 = cert_b64(root);
    json_t *certs = json_object_get(j, "certificates");
    CHECK(json_array_size(certs) == 1 &&
              strcmp(json_string_value(json_array_get(certs, 0)), root_b64) == 0,
          "get-roots lists the accepted root");
    json_decref(j);
    free(root_b64);

    /* The empty tree. */
    struct sth s0 = get_sth("empty log");
    unsigned char empty[32];
    SHA256((const unsigned char *)"", 0, empty);
    CHECK(s0.size == 0 && memcmp(s0.root, empty, 32) == 0, "empty tree: size 0, SHA-256(\"\")");

    /* Submissions. */
    long st;
    unsigned char sct[512];
    size_t sct_len = 0;
    uint64_t ts_a = 0, ts_b = 0, ts_p = 0;
    X509 *chain_a[] = {leaf_a, inter, root};
    json_t *ra = post_chain("add-chain", chain_a, 3, &st);
    CHECK(st == 200 && sct_bytes(ra, sct, &sct_len, &ts_a) &&
              ctk_sct_valid(sct, sct_len, 0, leaf_a, inter, g_pub, h_tmpdir()),
          "add-chain: AddChainResponse with an SCT OpenSSL validates");
    X509 *chain_b[] = {leaf_b, inter};
    json_t *rb = post_chain("add-chain", chain_b, 2, &st);
    CHECK(st == 200 && sct_bytes(rb, sct, &sct_len, &ts_b) &&
              ctk_sct_valid(sct, sct_len, 0, leaf_b, inter, g_pub, h_tmpdir()),
          "add-chain without the root: SCT valid");
    X509 *chain_p[] = {pre, inter, root};
    json_t *rp = post_chain("add-pre-chain", chain_p, 3, &st);
    CHECK(st == 200 && sct_bytes(rp, sct, &sct_len, &ts_p) &&
              ctk_sct_valid(sct, sct_len, 1, pre, inter, g_pub, h_tmpdir()),
          "add-pre-chain: precert SCT valid (OpenSSL rebuilds TBS and issuer key hash)");
    json_t *rd = post_chain("add-chain", chain_a, 3, &st);
    CHECK(st == 200 && json_equal(rd, ra), "duplicate add-chain: the original SCT");
    json_decref(rd);
    struct sth s3 = wait_sth(3, 1.0, "three entries");

    /* Refusals (400 with a JSON reason). */
    char body[8192];
    char *b_pre = cert_b64(pre), *b_inter = cert_b64(inter), *b_a = cert_b64(leaf_a),
         *b_str = cert_b64(stranger), *b_other = cert_b64(other), *b_nc = cert_b64(pre_nc);
    snprintf(body, sizeof body, "{\"chain\":[\"%s\",\"%s\"]}", b_pre, b_inter);
    expect_error("POST", "add-chain", body, 400, "add-pre-chain", "precert to add-chain");
    snprintf(body, sizeof body, "{\"chain\":[\"%s\",\"%s\"]}", b_a, b_inter);
    expect_error("POST", "add-pre-chain", body, 400, "poison", "certificate to add-pre-chain");
    snprintf(body, sizeof body, "{\"chain\":[\"%s\",\"%s\"]}", b_nc, b_inter);
    expect_error("POST", "add-pre-chain", body, 400, "not critical", "non-critical poison");
    snprintf(body, sizeof body, "{\"chain\":[\"%s\",\"%s\"]}", b_str, b_other);
    expect_error("POST", "add-chain", body, 400, "accepted root", "unknown root");
    expect_error("POST", "add-chain", "{", 400, "JSON", "malformed JSON");
    expect_error("POST", "add-chain", "{}", 400, "chain", "no chain");
    expect_error("POST", "add-chain", "{\"chain\":[]}", 400, "chain", "empty chain");
    expect_error("POST", "add-chain", "{\"chain\":[\"!!!\"]}", 400, "chain[0]", "bad base64");
    expect_error("POST", "add-chain", "{\"chain\":[\"AAAA\"]}", 400, "chain[0]", "not DER");
    expect_error("POST", "add-chain", "{\"chain\":[42]}", 400, "chain[0]", "not a string");
    expect_error("GET", "add-chain", NULL, 405, "POST", "GET add-chain");
    expect_error("POST", "get-sth", "{}", 405, "GET", "POST get-sth");
    expect_error("GET", "get-nothing", NULL, 404, NULL, "unknown endpoint");
    free(b_pre);
    free(b_inter);
    free(b_a);
    free(b_str);
    free(b_other);
    free(b_nc);

    /* get-entries: layout of each entry. */
    struct entries e;
    int max_batch = 0;
    CHECK(fetch_entries(3, &e, &max_batch) == 0 && e.n == 3, "get-entries returns 3 entries");
    if (e.n == 3) {
        size_t ll = 0;
        unsigned char *want = x509_leaf(leaf_a, ts_a, &ll);
        CHECK(e.leaf_len[0] == ll && memcmp(e.leaf[0], want, ll) == 0,
              "entry 0 leaf_input: x509 MerkleTreeLeaf with the SCT's timestamp");
        free(want);
        want = x509_leaf(leaf_b, ts_b, &ll);
        CHECK(e.leaf_len[1] == ll && memcmp(e.leaf[1], want, ll) == 0,
              "entry 1 leaf_input: x509 MerkleTreeLeaf");
        free(want);
        const unsigned char *der[8];
        size_t dl[8];
        int n = parse_chain_list(e.extra[0], e.extra_len[0], der, dl, 8);
        CHECK(n == 2 && der_is(der[0], dl[0], inter) && der_is(der[1], dl[1], root),
              "entry 0 extra_data: [intermediate, root]");
        n = parse_chain_list(e.extra[1], e.extra_len[1], der, dl, 8);
        CHECK(n == 2 && der_is(der[0], dl[0], inter) && der_is(der[1], dl[1], root),
              "entry 1 extra_data: the root the submitter left out is added");
        const unsigned char *l2 = e.leaf[2];
        unsigned char *ispki = NULL, ikh[32];
        int il = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(inter), &ispki);
        SHA256(ispki, (size_t)il, ikh);
        OPENSSL_free(ispki);
        CHECK(e.leaf_len[2] > 49 && l2[0] == 0 && l2[1] == 0 && ctk_be(l2 + 2, 8) == ts_p &&
                  ctk_be(l2 + 10, 2) == 1 && memcmp(l2 + 12, ikh, 32) == 0 &&
                  ctk_be(l2 + 44, 3) == e.leaf_len[2] - 49,
              "entry 2 leaf_input: precert entry, issuer_key_hash of the intermediate");
        size_t pl = ctk_be(e.extra[2], 3);
        int pre_ok = e.extra_len[2] > 3 + pl && der_is(e.extra[2] + 3, pl, pre);
        n = pre_ok ? parse_chain_list(e.extra[2] + 3 + pl, e.extra_len[2] - 3 - pl, der, dl, 8)
                   : -1;
        CHECK(pre_ok && n == 2 && der_is(der[0], dl[0], inter) && der_is(der[1], dl[1], root),
              "entry 2 extra_data: PrecertChainEntry (precert, [intermediate, root])");
        unsigned char mth[32];
        ctk_mth(e.hash, 3, mth);
        CHECK(memcmp(mth, s3.root, 32) == 0, "STH root = MTH of the leaf hashes of get-entries");
        for (int i = 0; i < 3; i++)
            CHECK(check_inclusion(e.hash[i], (uint64_t)i, 3, s3.root),
                  "get-proof-by-hash for entry %d verifies", i);
        j = get_json("get-entry-and-proof?leaf_index=1&tree_size=3", 200, "get-entry-and-proof");
        size_t gl = 0;
        unsigned char *gleaf = dec64(json_string_value(json_object_get(j, "leaf_input")), &gl);
        unsigned char path[130][32], gh[32];
        int np = proof_from_json(json_object_get(j, "audit_path"), path, 130);
        if (gleaf)
            ctk_leaf_hash(gleaf, gl, gh);
        CHECK(gleaf && gl == e.leaf_len[1] && memcmp(gleaf, e.leaf[1], gl) == 0 && np >= 0 &&
                  json_object_size(j) == 3 && json_is_string(json_object_get(j, "extra_data")) &&
                  ctk_verify_inclusion(gh, 1, 3, path, (size_t)np, s3.root),
              "get-entry-and-proof: entry 1 and a verifying audit path");
        free(gleaf);
        json_decref(j);
    }

    /* Edge cases of the read endpoints. */
    j = get_json("get-sth-consistency?first=0&second=3", 200, "first=0");
    CHECK(json_array_size(json_object_get(j, "consistency")) == 0 &&
              json_is_array(json_object_get(j, "consistency")),
          "get-sth-consistency first=0: empty proof");
    json_decref(j);
    j = get_json("get-sth-consistency?first=3&second=3", 200, "first=second");
    CHECK(json_is_array(json_object_get(j, "consistency")) &&
              json_array_size(json_object_get(j, "consistency")) == 0,
          "get-sth-consistency first=second: empty proof");
    json_decref(j);
    expect_error("GET", "get-sth-consistency?first=1&second=4", NULL, 400, "tree size",
                 "second beyond the tree");
    expect_error("GET", "get-sth-consistency?first=3&second=2", NULL, 400, "larger",
                 "first > second");
    expect_error("GET", "get-sth-consistency?first=1", NULL, 400, "second", "second missing");
    expect_error("GET", "get-sth-consistency?first=-1&second=2", NULL, 400, "first",
                 "negative first");
    expect_error("GET", "get-sth-consistency?first=a&second=2", NULL, 400, "first",
                 "non-numeric first");
    expect_error("GET", "get-entries?start=2&end=1", NULL, 400, "smaller", "end < start");
    expect_error("GET", "get-entries?start=3&end=5", NULL, 400, "tree size", "start beyond");
    expect_error("GET", "get-entries?end=5", NULL, 400, "start", "start missing");
    expect_error("GET", "get-proof-by-hash?tree_size=3", NULL, 400, "hash", "hash missing");
    expect_error("GET", "get-proof-by-hash?hash=AAAA&tree_size=3", NULL, 400, "32 bytes",
                 "short hash");
    expect_error("GET",
                 "get-proof-by-hash?hash=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D"
                 "&tree_size=3",
                 NULL, 404, "no leaf", "unknown hash");
    expect_error("GET", "get-proof-by-hash?hash=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D"
                        "&tree_size=0",
                 NULL, 400, "tree_size", "tree_size 0");
    expect_error("GET", "get-proof-by-hash?hash=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D"
                        "&tree_size=4",
                 NULL, 400, "tree_size", "tree_size beyond the STH");
    expect_error("GET", "get-entry-and-proof?leaf_index=3&tree_size=3", NULL, 400, "leaf_index",
                 "leaf_index == tree_size");
    entries_free(&e);

    /* certspotter, first pass: 3 entries. */
    run_certspotter("certspotter-1", cs_state, 3, s3.root);

    /* A concurrent burst: 500 distinct leaves over 50 connections. */
    struct xfer *xs = calloc(BURST, sizeof *xs);
    X509 **bl = calloc(BURST, sizeof *bl);
    char *b_i = cert_b64(inter);
    for (int i = 0; i < BURST; i++) {
        char cn[32];
        snprintf(cn, sizeof cn, "burst-%d", i);
        bl[i] = ctk_cert(cn, leaf_key, inter, inter_key, 0, CTK_NO_POISON, 0);
        char *b = cert_b64(bl[i]);
        xs[i].body = malloc(strlen(b) + strlen(b_i) + 32);
        sprintf(xs[i].body, "{\"chain\":[\"%s\",\"%s\"]}", b, b_i);
        free(b);
    }
    free(b_i);
    double took = post_all(xs, BURST, 50);
    double answered = now_s();
    int ok200 = 0, valid = 0, checked = 0;
    unsigned char (*bh)[32] = calloc(BURST, 32);
    for (int i = 0; i < BURST; i++) {
        json_t *r = xs[i].status == 200 && xs[i].resp ? json_loads(xs[i].resp, 0, NULL) : NULL;
        uint64_t ts = 0;
        if (r && sct_bytes(r, sct, &sct_len, &ts)) {
            ok200++;
            size_t ll = 0;
            unsigned char *l = x509_leaf(bl[i], ts, &ll);
            ctk_leaf_hash(l, ll, bh[i]);
            free(l);
            if (i % 50 == 0) {
                checked++;
                valid += ctk_sct_valid(sct, sct_len, 0, bl[i], inter, g_pub, h_tmpdir());
            }
        }
        json_decref(r);
    }
    CHECK(ok200 == BURST, "burst: %d of %d submissions answered 200 with an SCT (%.2f s, %.0f/s)",
          ok200, BURST, took, BURST / took);
    CHECK(valid == checked && checked == BURST / 50, "burst: sampled SCTs valid (%d of %d)",
          valid, checked);
    fprintf(stderr, "burst: %d add-chain over 50 connections in %.3f s (%.0f/s)\n", BURST, took,
            BURST / took);
    struct sth sb = get_sth("after the burst");
    while (sb.size < 3 + BURST && now_s() - answered < 5) {
        sleep_ms(10);
        sb = get_sth("after the burst");
    }
    double lag = now_s() - answered;
    CHECK(sb.size == 3 + BURST && lag <= 1.0,
          "burst: every entry in the tree %.3f s after the last SCT (size %llu)", lag,
          (unsigned long long)sb.size);

    /* The whole tree through get-entries, in short reads. */
    CHECK(fetch_entries(sb.size, &e, &max_batch) == 0 && e.n == sb.size,
          "get-entries pages through all %llu entries", (unsigned long long)sb.size);
    CHECK(max_batch == MAX_GET_ENTRIES, "get-entries answers at most %d entries (got %d)",
          MAX_GET_ENTRIES, max_batch);
    if (e.n == sb.size) {
        unsigned char mth[32], m3[32];
        ctk_mth(e.hash, e.n, mth);
        CHECK(memcmp(mth, sb.root, 32) == 0, "STH root after the burst = MTH of all entries");
        ctk_mth(e.hash, 3, m3);
        CHECK(memcmp(m3, s3.root, 32) == 0, "the first 3 entries are unchanged");
        int found = 0;
        for (int i = 0; i < BURST; i++)
            for (size_t k = 3; k < e.n; k++)
                if (memcmp(bh[i], e.hash[k], 32) == 0) {
                    found++;
                    break;
                }
        CHECK(found == BURST, "every burst SCT's leaf is in the tree (%d of %d)", found, BURST);
        int inc = 0, inc_total = 0;
        for (int i = 0; i < BURST; i += 25) {
            uint64_t idx = 0;
            for (size_t k = 0; k < e.n; k++)
                if (memcmp(bh[i], e.hash[k], 32) == 0)
                    idx = k;
            inc_total++;
            inc += check_inclusion(bh[i], idx, sb.size, sb.root);
        }
        CHECK(inc == inc_total, "get-proof-by-hash after the burst: %d of %d verify", inc,
              inc_total);
        CHECK(check_inclusion(e.hash[1], 1, 3, s3.root),
              "an audit path against the older STH size 3 verifies");
        uint64_t firsts[] = {1, 2, 3, 7, 64, 100, 255, 256, 257, 400, sb.size - 1};
        int cons = 0;
        for (size_t i = 0; i < sizeof firsts / sizeof firsts[0]; i++) {
            unsigned char r1[32];
            ctk_mth(e.hash, firsts[i], r1);
            cons += check_consistency(firsts[i], sb.size, r1, sb.root);
        }
        CHECK(cons == (int)(sizeof firsts / sizeof firsts[0]),
              "get-sth-consistency from 11 earlier sizes to %llu: %d verify",
              (unsigned long long)sb.size, cons);
    }
    entries_free(&e);

    /* certspotter, second pass: continues from its verified STH of size 3. */
    run_certspotter("certspotter-2", cs_state, sb.size, sb.root);

    /* Restart: same tree, same key, duplicates still answered with the original SCT. */
    CHECK(h_proc_stop(&log, 10000) == 0, "ctlog serve exits 0 on SIGTERM");
    if (start_log(&log, "ctlog-2", roots_path, state) != 0) {
        CHECK(0, "ctlog serve restarts on the same state");
    } else {
        struct sth sr = get_sth("after restart");
        CHECK(sr.size == sb.size && memcmp(sr.root, sb.root, 32) == 0,
              "after restart: the same tree size and root");
        rd = post_chain("add-chain", chain_a, 3, &st);
        CHECK(st == 200 && json_equal(rd, ra), "after restart: duplicate gets the original SCT");
        json_decref(rd);
        rd = post_chain("add-pre-chain", chain_p, 3, &st);
        CHECK(st == 200 && json_equal(rd, rp),
              "after restart: duplicate precert gets the original SCT");
        json_decref(rd);
        /* Durability: an SCT handed out survives a SIGKILL straight after it. */
        X509 *crash = ctk_cert("crash", leaf_key, inter, inter_key, 0, CTK_NO_POISON, 0);
        X509 *chain_c[] = {crash, inter};
        json_t *rc = post_chain("add-chain", chain_c, 2, &st);
        kill(log.pid, SIGKILL);
        h_proc_stop(&log, 5000);
        CHECK(st == 200 && rc, "add-chain answered before the crash");
        if (start_log(&log, "ctlog-3", roots_path, state) != 0) {
            CHECK(0, "ctlog serve restarts after SIGKILL");
        } else {
            struct sth sk = wait_sth(sb.size + 1, 1.0, "after SIGKILL");
            CHECK(sk.size == sb.size + 1, "after SIGKILL: the entry is in the tree");
            rd = post_chain("add-chain", chain_c, 2, &st);
            CHECK(st == 200 && rc && json_equal(rd, rc),
                  "after SIGKILL: resubmission gets the SCT handed out before the crash");
            json_decref(rd);
            CHECK(h_proc_stop(&log, 10000) == 0, "restarted log exits 0");
        }
        json_decref(rc);
        X509_free(crash);
    }

    for (int i = 0; i < BURST; i++) {
        free(xs[i].body);
        free(xs[i].resp);
        X509_free(bl[i]);
    }
    free(xs);
    free(bl);
    free(bh);
    json_decref(ra);
    json_decref(rb);
    json_decref(rp);
    X509 *all[] = {root, inter, leaf_a, leaf_b, pre, pre_nc, other, stranger};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        X509_free(all[i]);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(inter_key);
    EVP_PKEY_free(leaf_key);
    EVP_PKEY_free(other_key);
    EVP_PKEY_free(g_pub);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
