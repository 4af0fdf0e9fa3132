/*
 * bench/ctlog_add.c: add-chain throughput and latency of `fulcrum ctlog serve` (group commit,
 * SQLite WAL with synchronous=FULL). Run by hand; not a test.
 *
 * It makes a root and N distinct leaves, starts `fulcrum ctlog serve` on a loopback port in a
 * fresh temporary state directory, keeps exactly C add-chain requests in flight over C
 * keep-alive connections (closed loop: no client-side queueing in the latencies), and prints
 * submissions/s and latency percentiles; then how long until the STH covers every entry.
 *
 * Build (no CMake target yet):
 *   cc -O2 -I tests -o build/ctlog-add-bench bench/ctlog_add.c \
 *      $(pkg-config --cflags --libs libcurl openssl jansson)
 * Run:
 *   build/ctlog-add-bench build/fulcrum [N=5000] [C=64] [WORKERS=0 (one per core)] [BATCH_MS=5]
 */
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "unit/ct_testkit.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *b64_cert(X509 *x)
{
    size_t n = 0;
    unsigned char *der = ctk_der(x, &n);
    char *out = malloc((n + 2) / 3 * 4 + 1);
    EVP_EncodeBlock((unsigned char *)out, der, (int)n);
    OPENSSL_free(der);
    return out;
}

struct xfer {
    CURL *h;
    char *body;
    double start, took;
    long status;
};

static size_t sink(char *p, size_t sz, size_t n, void *arg) { return sz * n; }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static long tree_size(const char *base)
{
    char url[256];
    snprintf(url, sizeof url, "%s/ct/v1/get-sth", base);
    CURL *h = curl_easy_init();
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, mem);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    fclose(mem);
    long size = -1;
    json_t *j = rc == CURLE_OK ? json_loads(buf, 0, NULL) : NULL;
    if (j)
        size = (long)json_integer_value(json_object_get(j, "tree_size"));
    json_decref(j);
    free(buf);
    return size;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FULCRUM_BIN [N] [C] [WORKERS] [BATCH_MS]\n", argv[0]);
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 5000, conns = argc > 3 ? atoi(argv[3]) : 64;
    const char *workers = argc > 4 ? argv[4] : "0", *batch = argc > 5 ? argv[5] : "5";
    char dir[] = "/tmp/ctlog-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);

    EVP_PKEY *root_key = ctk_key(), *leaf_key = ctk_key();
    X509 *root = ctk_cert("Bench Root", root_key, NULL, NULL, 1, CTK_NO_POISON, 0);
    char path[256], port_file[256], state[256];
    snprintf(path, sizeof path, "%s/roots.pem", dir);
    snprintf(port_file, sizeof port_file, "%s/port", dir);
    snprintf(state, sizeof state, "%s/state", dir);
    FILE *f = fopen(path, "w");
    PEM_write_X509(f, root);
    fclose(f);

    fprintf(stderr, "bench: making %d leaves...\n", n);
    struct xfer *xs = calloc((size_t)n, sizeof *xs);
    char *b_root = b64_cert(root);
    for (int i = 0; i < n; i++) {
        char cn[32];
        snprintf(cn, sizeof cn, "bench-%d", i);
        X509 *x = ctk_cert(cn, leaf_key, root, root_key, 0, CTK_NO_POISON, 0);
        char *b = b64_cert(x);
        xs[i].body = malloc(strlen(b) + strlen(b_root) + 32);
        sprintf(xs[i].body, "{\"chain\":[\"%s\",\"%s\"]}", b, b_root);
        free(b);
        X509_free(x);
    }

    pid_t pid = fork();
    if (pid == 0) {
        char log_path[300];
        snprintf(log_path, sizeof log_path, "%s/ctlog.stderr", dir);
        if (!freopen(log_path, "w", stderr))
            _exit(127);
        execl(argv[1], argv[1], "ctlog", "serve", "--host", "127.0.0.1", "--port", "0",
              "--port-file", port_file, "--state-dir", state, "--roots", path, "--workers",
              workers, "--batch-ms", batch, "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    char base[64] = "";
    for (int i = 0; i < 200 && !*base; i++) {
        usleep(50000);
        f = fopen(port_file, "r");
        int port = 0;
        if (f && fscanf(f, "%d", &port) == 1 && port > 0)
            snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
        if (f)
            fclose(f);
    }
    if (!*base || tree_size(base) < 0) {
        fprintf(stderr, "bench: the log did not start (see %s/ctlog.stderr)\n", dir);
        kill(pid, SIGKILL);
        return 1;
    }

    char url[128];
    snprintf(url, sizeof url, "%s/ct/v1/add-chain", base);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conns);
    int next = 0, done = 0, running = 0, failed = 0;
    double t0 = now_s();
    while (done < n) {
        while (running < conns && next < n) {
            struct xfer *x = &xs[next++];
            x->h = curl_easy_init();
            curl_easy_setopt(x->h, CURLOPT_URL, url);
            curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->body);
            curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, hdrs);
            curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, sink);
            curl_easy_setopt(x->h, CURLOPT_NOPROXY, "*");
            curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
            x->start = now_s();
            curl_multi_add_handle(m, x->h);
            running++;
        }
        int still = 0;
        curl_multi_perform(m, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct xfer *x = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            x->took = now_s() - x->start;
            curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
            if (msg->data.result != CURLE_OK || x->status != 200)
                failed++;
            curl_multi_remove_handle(m, x->h);
            curl_easy_cleanup(x->h);
            running--;
            done++;
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    double wall = now_s() - t0;
    double last = now_s();
    long size = 0;
    while ((size = tree_size(base)) < n && now_s() - last < 10)
        usleep(1000);
    double lag = now_s() - last;

    double *lat = malloc((size_t)n * sizeof *lat);
    for (int i = 0; i < n; i++)
        lat[i] = xs[i].took * 1000;
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    printf("add-chain: %d submissions, %d connections, workers=%s, batch_ms=%s\n", n, conns,
           workers, batch);
    printf("  throughput %.0f/s (%.3f s), failures %d\n", n / wall, wall, failed);
    printf("  latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", lat[n / 2],
           lat[(int)(n * 0.9)], lat[(int)(n * 0.99)], lat[n - 1]);
    printf("  STH covered all %ld entries %.3f s after the last SCT\n", size, lag);

    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    curl_multi_cleanup(m);
    curl_slist_free_all(hdrs);
    for (int i = 0; i < n; i++)
        free(xs[i].body);
    free(xs);
    free(lat);
    free(b_root);
    X509_free(root);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(leaf_key);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", dir);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
