/*
 * tests/integration/test_junk.c: a real `fulcrum serve` fed 100,000 requests of junk
 * (FULCRUM_TEST_SCALE scales the count) from 8 concurrent clients over raw sockets.
 *
 * Kinds of junk, each request built from a PRNG seeded by (seed, request number) so a run is
 * reproducible from the printed seed (FULCRUM_TEST_SEED=<n> picks another; the default is
 * fixed): random bytes; malformed request lines; malformed headers (no colon, bad names, NULs,
 * folded lines, bad and conflicting Content-Length, bad chunked encoding); huge headers (past
 * the 96 KiB cap) and a few huge bodies (past 4 MiB); random JSON and random valid-looking
 * Fulcio requests (v2 key + proof, v2 CSR, v1; mangled real tokens, wrong types, deep nesting)
 * to /api/v2/signingCert and /api/v1/signingCert; random paths and methods; truncated bodies;
 * wrong Content-Length; several requests and garbage pipelined in one write. Every request goes
 * on its own connection, which the client half-closes after sending, then reads every answer
 * until the server closes.
 *
 * Asserts: the server never dies; no answer is a 200 or any other 2xx/3xx; no answer is a 5xx,
 * except 501 for a method the server does not serve (Fulcio's {"code":12,"message":"Method Not
 * Allowed"} on a known path, or libevent's 501 for a method it does not parse), which HTTP
 * prescribes; every well-framed request (one that reaches the API) gets exactly Fulcio's error
 * shape {"code":N,"message":"...","details":[]} with a code matching its status; every
 * connection is closed by the server within a bound (nothing hangs); the server's RSS grows by
 * less than 16 MiB between the end of the warm-up (first 10%) and the end; a real signing
 * request still gets a certificate; the server exits 0 on SIGTERM (under ASan, LeakSanitizer
 * runs then: 0 = no leak).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "integration/harness.h"
#include "integration/harness_load.h"
#include "integration/harness_ops.h"
#include "unit/check.h"

#define THREADS 8
#define RSS_LIMIT_KIB (16 * 1024)

static h_issuer g_iss;
static int g_port;
static uint64_t g_seed;
static char *g_token; /* a real token of the dev issuer, mangled by the generator */

/* ---- PRNG: splitmix64 ---------------------------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t next64(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint32_t below(rng *r, uint32_t n)
{
    return n ? (uint32_t)(next64(r) % n) : 0;
}

/* ---- a growable byte buffer ---------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void printf_(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void printf_(buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void fill(buf *b, size_t n, char c)
{
    char chunk[4096];
    memset(chunk, c, sizeof chunk);
    while (n > 0) {
        size_t k = n < sizeof chunk ? n : sizeof chunk;
        put(b, chunk, k);
        n -= k;
    }
}

static void random_bytes(rng *r, buf *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = (char)below(r, 256);
        put(b, &c, 1);
    }
}

static void random_text(rng *r, buf *b, size_t n, const char *alphabet)
{
    size_t k = strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        put(b, &alphabet[below(r, (uint32_t)k)], 1);
}

#define ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_";
static const char PRINTABLE[] = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";

/* ---- JSON junk ------------------------------------------------------------------------------ */

static void json_string_junk(rng *r, buf *b)
{
    puts_(b, "\"");
    int n = (int)below(r, 40);
    for (int i = 0; i < n; i++) {
        switch (below(r, 8)) {
        case 0: printf_(b, "\\u%04x", below(r, 0x10000)); break; /* lone surrogates too */
        case 1: puts_(b, "\\\""); break;
        case 2: puts_(b, "\\n"); break;
        case 3: { char c = (char)(0x80 + below(r, 0x80)); put(b, &c, 1); } break; /* bad UTF-8 */
        default: random_text(r, b, 1, ALNUM);
        }
    }
    puts_(b, "\"");
}

static void json_value_junk(rng *r, buf *b, int depth)
{
    switch (depth > 4 ? below(r, 5) : below(r, 8)) {
    case 0: json_string_junk(r, b); break;
    case 1: printf_(b, "%" PRId64, (int64_t)next64(r)); break;
    case 2: printf_(b, "%g", (double)(int64_t)next64(r) / 1e5); break;
    case 3: puts_(b, below(r, 2) ? "true" : "null"); break;
    case 4: puts_(b, below(r, 2) ? "1e999" : "-0"); break;
    case 5:
    case 6: {
        puts_(b, "{");
        int n = (int)below(r, 5);
        for (int i = 0; i < n; i++) {
            if (i)
                puts_(b, ",");
            static const char *keys[] = {"credentials", "oidcIdentityToken", "publicKeyRequest",
                                         "publicKey", "algorithm", "content",
                                         "proofOfPossession", "certificateSigningRequest",
                                         "signedEmailAddress", "x"};
            if (below(r, 3))
                printf_(b, "\"%s\"", keys[below(r, 10)]);
            else
                json_string_junk(r, b);
            puts_(b, ":");
            json_value_junk(r, b, depth + 1);
        }
        puts_(b, "}");
    } break;
    default: {
        puts_(b, "[");
        int n = (int)below(r, 5);
        for (int i = 0; i < n; i++) {
            if (i)
                puts_(b, ",");
            json_value_junk(r, b, depth + 1);
        }
        puts_(b, "]");
    }
    }
}

/* A mangled real token, a JWT-looking random one, or something else. */
static void token_junk(rng *r, buf *b)
{
    size_t n = strlen(g_token);
    switch (below(r, 5)) {
    case 0: { /* flip a few characters of the real token */
        buf t = {0};
        put(&t, g_token, n);
        for (int i = 0, k = 1 + (int)below(r, 4); i < k; i++)
            t.p[below(r, (uint32_t)n)] = B64[below(r, 64)];
        put(b, t.p, t.len);
        free(t.p);
    } break;
    case 1: { /* the real header and payload, a random signature */
        const char *dot = strrchr(g_token, '.');
        put(b, g_token, dot ? (size_t)(dot - g_token + 1) : n);
        random_text(r, b, 20 + below(r, 400), B64);
    } break;
    case 2: /* truncated */
        put(b, g_token, below(r, (uint32_t)n));
        break;
    case 3: /* three random base64 parts */
        for (int i = 0; i < 3; i++) {
            if (i)
                puts_(b, ".");
            random_text(r, b, below(r, 200), B64);
        }
        break;
    default:
        random_text(r, b, below(r, 100), PRINTABLE + 3);
    }
}

static void json_escape_put(buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            put(b, "\\", 1);
        if ((unsigned char)s[i] < 0x20)
            printf_(b, "\\u%04x", (unsigned char)s[i]);
        else
            put(b, &s[i], 1);
    }
}

/* A body shaped like a real v2 (key or CSR) or v1 request, with junk in the values. */
static void fulcio_like_junk(rng *r, buf *b, int v1)
{
    buf tok = {0}, val = {0};
    token_junk(r, &tok);
    if (below(r, 2)) {
        puts_(&val, "-----BEGIN PUBLIC KEY-----\n");
        random_text(r, &val, below(r, 200), B64);
        puts_(&val, "\n-----END PUBLIC KEY-----\n");
    } else {
        random_text(r, &val, below(r, 300), B64);
    }
    static const char *algs[] = {"ECDSA", "RSA_PSS", "ED25519", "PKIX_ECDSA_P256_SHA_256", "", "x",
                                 "ecdsa"};
    const char *alg = algs[below(r, 7)];
    if (v1) {
        puts_(b, "{\"publicKey\":{\"content\":\"");
        json_escape_put(b, val.p ? val.p : "", val.len);
        printf_(b, "\",\"algorithm\":\"%s\"},\"signedEmailAddress\":\"", alg);
        random_text(r, b, below(r, 120), B64);
        puts_(b, "\"}");
    } else if (below(r, 3) == 0) {
        puts_(b, "{\"credentials\":{\"oidcIdentityToken\":\"");
        json_escape_put(b, tok.p ? tok.p : "", tok.len);
        puts_(b, "\"},\"certificateSigningRequest\":\"");
        random_text(r, b, below(r, 500), B64);
        puts_(b, "\"}");
    } else {
        puts_(b, "{\"credentials\":{\"oidcIdentityToken\":\"");
        json_escape_put(b, tok.p ? tok.p : "", tok.len);
        puts_(b, "\"},\"publicKeyRequest\":{\"publicKey\":{\"algorithm\":\"");
        puts_(b, alg);
        puts_(b, "\",\"content\":\"");
        json_escape_put(b, val.p ? val.p : "", val.len);
        puts_(b, "\"},\"proofOfPossession\":");
        if (below(r, 4))
            printf_(b, "\"%.*s\"", (int)below(r, 100), "MEUCIQDx8Lrj3k1qh5yC0YH6Nq0e0yT9r1i7lZQq"
                                                      "mK0b5bJwAiBq7gS0a3nS1b4c5d6e7f8g9h0i1j2k"
                                                      "3l4m5n6o7p8q9r0s1t2u3v4w5x6y7z8");
        else
            json_value_junk(r, b, 3);
        puts_(b, "}}");
    }
    free(tok.p);
    free(val.p);
}

/* ---- requests ------------------------------------------------------------------------------ */

enum kind {
    K_RANDOM_BYTES,
    K_BAD_REQUEST_LINE,
    K_BAD_HEADERS,
    K_HUGE_HEADERS,
    K_HUGE_BODY,
    K_RANDOM_JSON,
    K_FULCIO_LIKE,
    K_PATHS_METHODS,
    K_TRUNCATED_BODY,
    K_WRONG_LENGTH,
    K_PIPELINED,
    K_COUNT
};

static const char *kind_names[K_COUNT] = {
    "random bytes", "bad request line", "bad headers", "huge headers", "huge body",
    "random JSON",  "Fulcio-like JSON", "paths+methods", "truncated body", "wrong length",
    "pipelined"};

typedef struct job {
    enum kind kind;
    buf out;
    int wellformed;  /* exactly one complete request the API must answer (Fulcio's shape) */
    int odd_method;  /* a method the server does not serve: 501 allowed */
    unsigned head_mask; /* bit k: the k-th answer is to a HEAD (no body, whatever the head says) */
    int requests;    /* requests it counts as */
} job;

static const char *api_path(rng *r)
{
    return below(r, 3) ? "/api/v2/signingCert" : "/api/v1/signingCert";
}

/* POST path with the body, well framed. */
static void post(buf *o, const char *path, const char *body, size_t n, const char *extra)
{
    printf_(o, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               "Content-Length: %zu\r\n%s\r\n",
            path, n, extra ? extra : "");
    put(o, body, n);
}

/* One junk request that reaches the API (never a valid one). Returns 0 when libevent may
 * refuse it first (a path with a bad %-escape). *is_head: it is a HEAD. */
static int wellformed_junk(rng *r, buf *o, int *odd_method, int *is_head)
{
    int framed = 1;
    *is_head = 0;
    buf body = {0};
    switch (below(r, 3)) {
    case 0:
        json_value_junk(r, &body, 0);
        post(o, api_path(r), body.p, body.len, NULL);
        break;
    case 1: {
        int v1 = below(r, 3) == 0;
        fulcio_like_junk(r, &body, v1);
        char extra[64] = "";
        if (v1 || below(r, 4) == 0) {
            buf t = {0};
            token_junk(r, &t);
            buf h = {0};
            puts_(&h, "Authorization: Bearer ");
            for (size_t i = 0; i < t.len; i++)
                if ((unsigned char)t.p[i] >= 0x20 && t.p[i] != 0x7f)
                    put(&h, &t.p[i], 1);
            puts_(&h, "\r\n");
            post(o, v1 ? "/api/v1/signingCert" : "/api/v2/signingCert", body.p, body.len, h.p);
            free(t.p);
            free(h.p);
        } else {
            post(o, "/api/v2/signingCert", body.p, body.len, extra);
        }
    } break;
    default: {
        static const char *methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
                                        "HEAD"};
        static const char *paths[] = {"/", "/api", "/api/v2", "/api/v2/signingCert",
                                      "/api/v1/signingCert", "/api/v2/trustBundle",
                                      "/api/v2/configuration", "/api/v1/rootCert", "/healthz",
                                      "/readyz", "/ct/v1/get-sth", "/metrics", "/api/v3/x",
                                      "/api/v2/signingCert/", "//api/v2/signingCert",
                                      "/api/v2/../v2/trustBundle", "/%00", "/%zz", "/a?b=c"};
        const char *m = methods[below(r, 7)];
        buf path = {0};
        if (below(r, 2)) {
            puts_(&path, paths[below(r, 19)]);
        } else {
            puts_(&path, "/");
            random_text(r, &path, below(r, 60), ALNUM "/._-~%?=&");
        }
        /* A GET of a page the API serves would rightly be a 200: make those POSTs. */
        int readable = strcmp(path.p, "/api/v2/trustBundle") == 0 ||
                       strcmp(path.p, "/api/v2/configuration") == 0 ||
                       strcmp(path.p, "/api/v1/rootCert") == 0 ||
                       strcmp(path.p, "/healthz") == 0 || strcmp(path.p, "/readyz") == 0 ||
                       strncmp(path.p, "/healthz?", 9) == 0 || strncmp(path.p, "/readyz?", 8) == 0;
        if (readable && strcmp(m, "GET") == 0)
            m = "POST";
        *odd_method = strcmp(m, "GET") != 0 && strcmp(m, "POST") != 0;
        framed = strchr(path.p, '%') == NULL;
        if (strcmp(m, "HEAD") == 0) { /* a HEAD has no body (libevent reads none) */
            *is_head = 1;
            printf_(o, "HEAD %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path.p);
        } else {
            json_value_junk(r, &body, 2);
            printf_(o, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n\r\n", m,
                    path.p, body.len);
            put(o, body.p, body.len);
        }
        free(path.p);
    }
    }
    free(body.p);
    return framed;
}

static void make_job(uint64_t seq, job *j)
{
    rng r = {g_seed ^ (seq * 0x9e3779b97f4a7c15ULL)};
    next64(&r);
    memset(j, 0, sizeof *j);
    j->requests = 1;
    uint32_t roll = below(&r, 1000);
    /* weights (per mille) */
    j->kind = roll < 60    ? K_RANDOM_BYTES
              : roll < 160 ? K_BAD_REQUEST_LINE
              : roll < 270 ? K_BAD_HEADERS
              : roll < 280 ? K_HUGE_HEADERS
              : roll < 281 ? K_HUGE_BODY
              : roll < 460 ? K_RANDOM_JSON
              : roll < 640 ? K_FULCIO_LIKE
              : roll < 790 ? K_PATHS_METHODS
              : roll < 850 ? K_TRUNCATED_BODY
              : roll < 910 ? K_WRONG_LENGTH
                           : K_PIPELINED;
    buf *o = &j->out;
    /* A junk first word is an unknown method to libevent: 501 is then right. */
    j->odd_method = j->kind == K_RANDOM_BYTES || j->kind == K_BAD_REQUEST_LINE;
    switch (j->kind) {
    case K_RANDOM_BYTES:
        random_bytes(&r, o, 1 + below(&r, 2048));
        break;
    case K_BAD_REQUEST_LINE: {
        static const char *lines[] = {
            "GET\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "GET  HTTP/1.1\r\n\r\n",
            "G@T / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1 extra\r\n\r\n", "POST / HTTP/1\r\n\r\n",
            " / HTTP/1.1\r\n\r\n", "GET /\x01\x02 HTTP/1.1\r\n\r\n", "\r\n\r\n",
            "GET / HTTP/1.1\r\r\n\r\n", "GET http://evil.example/ HTTP/1.1\r\n\r\n",
            "GET / FTP/1.1\r\n\r\n", "GET /%%%% HTTP/1.1\r\n\r\n"};
        if (below(&r, 3)) {
            puts_(o, lines[below(&r, 13)]);
        } else {
            random_text(&r, o, 1 + below(&r, 30), PRINTABLE);
            puts_(o, " /");
            random_text(&r, o, below(&r, below(&r, 10) ? 100 : 20000), PRINTABLE);
            puts_(o, below(&r, 2) ? " HTTP/1.1\r\n\r\n" : "\r\n\r\n");
        }
    } break;
    case K_BAD_HEADERS: {
        printf_(o, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n", api_path(&r));
        static const char *hdrs[] = {
            "NoColonHere\r\n", "Bad Name: x\r\n", ": empty name\r\n", "X-Nul: a\0b\r\n",
            " folded: continuation\r\n", "Content-Length: abc\r\n", "Content-Length: -5\r\n",
            "Content-Length: 99999999999999999999999\r\n",
            "Content-Length: 3\r\nContent-Length: 7\r\n", "Transfer-Encoding: chunked\r\n",
            "Transfer-Encoding: gzip, chunked\r\nContent-Length: 4\r\n",
            "Expect: 100-continue\r\n", "Content-Type: \x80\xff\r\n", "X:\r\n"};
        int k = (int)below(&r, 14);
        size_t n = strlen(hdrs[k]);
        if (k == 3)
            n = 12; /* the NUL is part of it */
        put(o, hdrs[k], n);
        int extra = (int)below(&r, 4);
        for (int i = 0; i < extra; i++) {
            random_text(&r, o, 1 + below(&r, 20), ALNUM "-");
            puts_(o, ": ");
            random_text(&r, o, below(&r, 60), PRINTABLE);
            puts_(o, "\r\n");
        }
        puts_(o, "\r\n");
        if (k == 9) { /* bad chunked body */
            static const char *chunks[] = {"zz\r\nabc\r\n0\r\n\r\n", "5\r\nab\r\n",
                                           "ffffffffffffffffff\r\n", "3\r\n{}}\r\n0\r\n\r\n",
                                           "-1\r\n\r\n"};
            puts_(o, chunks[below(&r, 5)]);
        } else {
            random_text(&r, o, below(&r, 10), PRINTABLE);
        }
    } break;
    case K_HUGE_HEADERS:
        printf_(o, "GET /api/v2/trustBundle HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: ");
        fill(o, 100 * 1024 + below(&r, 64 * 1024), 'h');
        puts_(o, "\r\n\r\n");
        break;
    case K_HUGE_BODY: {
        size_t n = (4u << 20) + 1 + below(&r, 1000);
        printf_(o, "POST /api/v2/signingCert HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                n);
        fill(o, n, 'x');
    } break;
    case K_RANDOM_JSON: {
        buf body = {0};
        if (below(&r, 50) == 0) { /* deep nesting */
            int depth = 100 + (int)below(&r, 5000);
            for (int i = 0; i < depth; i++)
                puts_(&body, "[");
            for (int i = 0; i < depth; i++)
                puts_(&body, "]");
        } else {
            json_value_junk(&r, &body, 0);
        }
        post(o, api_path(&r), body.p, body.len, NULL);
        free(body.p);
        j->wellformed = 1;
    } break;
    case K_FULCIO_LIKE: {
        buf body = {0};
        int v1 = below(&r, 4) == 0;
        fulcio_like_junk(&r, &body, v1);
        post(o, v1 ? "/api/v1/signingCert" : "/api/v2/signingCert", body.p, body.len, NULL);
        free(body.p);
        j->wellformed = 1;
    } break;
    case K_PATHS_METHODS: {
        if (below(&r, 5) == 0) { /* a method libevent does not know or serve */
            static const char *m[] = {"TRACE", "CONNECT", "FOO", "get", "PROPFIND", "P0ST"};
            printf_(o, "%s /api/v2/signingCert HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                    m[below(&r, 6)]);
            j->odd_method = 1;
        } else {
            int head = 0;
            j->wellformed = wellformed_junk(&r, o, &j->odd_method, &head);
            j->head_mask = (unsigned)head;
        }
    } break;
    case K_TRUNCATED_BODY: {
        buf body = {0};
        fulcio_like_junk(&r, &body, 0);
        size_t cut = body.len ? below(&r, (uint32_t)body.len) : 0;
        printf_(o, "POST /api/v2/signingCert HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                body.len);
        put(o, body.p, cut);
        free(body.p);
    } break;
    case K_WRONG_LENGTH: {
        buf body = {0};
        fulcio_like_junk(&r, &body, 0);
        size_t claimed = below(&r, 2) ? body.len / 2 : body.len + 1 + below(&r, 100);
        printf_(o, "POST /api/v2/signingCert HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                claimed);
        put(o, body.p, body.len);
        free(body.p);
    } break;
    default: { /* pipelined: several well-framed junk requests, maybe garbage at the end */
        int n = 2 + (int)below(&r, 4);
        int odd = 0;
        for (int i = 0; i < n; i++) {
            int o2 = 0, head = 0;
            wellformed_junk(&r, o, &o2, &head);
            odd |= o2;
            j->head_mask |= (unsigned)head << i;
        }
        if (below(&r, 2))
            random_bytes(&r, o, 1 + below(&r, 200));
        j->odd_method = odd;
        j->wellformed = 0; /* checked per answer below, not as one */
        j->requests = n;
    }
    }
}

/* ---- sending and reading ------------------------------------------------------------------- */

typedef struct stats {
    long jobs, requests, answers, by_kind[K_COUNT];
    long by_class[6];
    long fulcio_shape, evhttp_pages, s501;
    long fail_2xx3xx, fail_5xx, fail_shape, fail_unanswered, fail_hang, fail_connect;
    char failures[5][512]; /* the first ones */
    int nfailures;
} stats;

static void fail(stats *s, long *counter, const job *j, uint64_t n, const char *what,
                 const char *resp)
{
    (*counter)++;
    if (s->nfailures < 5)
        snprintf(s->failures[s->nfailures++], sizeof s->failures[0],
                 "request %" PRIu64 " (%s): %s: %.300s", n, kind_names[j->kind], what,
                 resp ? resp : "");
}

/* Fulcio's error shape with a code that matches the status. */
static int fulcio_shape(long status, const char *body, size_t len)
{
    json_error_t e;
    json_t *o = json_loadb(body, len, 0, &e);
    json_t *c = json_object_get(o, "code"), *m = json_object_get(o, "message"),
           *d = json_object_get(o, "details");
    int ok = json_is_object(o) && json_object_size(o) == 3 && json_is_integer(c) &&
             json_is_string(m) && json_is_array(d) && json_array_size(d) == 0;
    if (ok) {
        long code = (long)json_integer_value(c);
        ok = (status == 400 && (code == 3 || code == 9 || code == 11)) ||
             (status == 401 && code == 16) || (status == 403 && code == 7) ||
             (status == 404 && code == 5) || (status == 413 && code == 3) ||
             (status == 429 && code == 8) || (status == 501 && code == 12);
    }
    json_decref(o);
    return ok;
}

/* Checks every answer in what the server sent. */
static void check_answers(stats *s, const job *j, uint64_t n, const char *in, size_t len)
{
    size_t off = 0;
    int answers = 0;
    while (off < len) {
        const char *p = in + off;
        size_t left = len - off;
        if (left < 12 || strncmp(p, "HTTP/1.", 7) != 0) {
            fail(s, &s->fail_shape, j, n, "bytes that are not an HTTP answer", p);
            return;
        }
        long status = strtol(p + 9, NULL, 10);
        const char *eoh = memmem(p, left, "\r\n\r\n", 4);
        if (!eoh) {
            fail(s, &s->fail_shape, j, n, "answer without the end of its head", p);
            return;
        }
        size_t hlen = (size_t)(eoh + 4 - p);
        size_t blen = left - hlen;
        int to_head = status != 100 && answers < 32 && (j->head_mask >> answers) & 1;
        int closes = strcasestr(p, "\r\nConnection: close") &&
                     strcasestr(p, "\r\nConnection: close") < eoh;
        const char *cl = NULL;
        for (const char *q = p; q && q < eoh; q = memchr(q, '\n', (size_t)(eoh - q))) {
            if (*q == '\n')
                q++;
            if (strncasecmp(q, "Content-Length:", 15) == 0) {
                cl = q + 15;
                break;
            }
        }
        if (to_head) {
            blen = 0; /* whatever the head says */
        } else if (cl) {
            size_t want = strtoul(cl, NULL, 10);
            if (want > blen) {
                fail(s, &s->fail_shape, j, n, "answer shorter than its Content-Length", p);
                return;
            }
            blen = want;
        }
        const char *body = p + hlen;
        int is_json = strcasestr(p, "\r\nContent-Type: application/json") &&
                      strcasestr(p, "\r\nContent-Type: application/json") < eoh;
        off += hlen + blen;
        if (closes)
            off = len; /* nothing may follow (libevent's error page to a HEAD has a body) */
        if (status == 100)
            continue;
        answers++;
        s->answers++;
        if (status / 100 >= 1 && status / 100 <= 5)
            s->by_class[status / 100]++;
        if (status < 400) {
            fail(s, &s->fail_2xx3xx, j, n, "answered below 400", p);
            continue;
        }
        /* 501 is HTTP's answer to a method the server does not serve: Fulcio's
         * {"code":12,"message":"Method Not Allowed"} for a known path, libevent's page for a
         * method it does not serve at all. Any other 5xx is the server's fault. */
        int ok501 = 0;
        if (status == 501 && to_head)
            ok501 = 1;
        else if (status == 501 && is_json)
            ok501 = fulcio_shape(status, body, blen) &&
                    memmem(body, blen, "\"Method Not Allowed\"", 20) != NULL;
        else if (status == 501)
            ok501 = j->odd_method;
        if (status >= 500 && !ok501) {
            fail(s, &s->fail_5xx, j, n, "answered 5xx", p);
            continue;
        }
        if (status == 501)
            s->s501++;
        if (to_head) { /* no body to check; the API answers a HEAD 404 or 501 */
            if (status != 404 && status != 501 && status != 400)
                fail(s, &s->fail_shape, j, n, "a HEAD answered neither 404 nor 501", p);
            continue;
        }
        if (is_json) {
            if (!fulcio_shape(status, body, blen)) {
                fail(s, &s->fail_shape, j, n, "JSON answer not in Fulcio's error shape", p);
                continue;
            }
            s->fulcio_shape++;
        } else {
            s->evhttp_pages++;
            if (j->wellformed)
                fail(s, &s->fail_shape, j, n, "a well-framed request not answered by the API",
                     p);
        }
    }
    if (j->wellformed && answers != 1)
        fail(s, &s->fail_unanswered, j, n, "a well-framed request not answered exactly once",
             in);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int tries = 0; fd >= 0 && tries < 50; tries++) {
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
            return fd;
        if (errno != EADDRNOTAVAIL && errno != ECONNREFUSED && errno != EAGAIN)
            break;
        usleep(20000);
    }
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Sends everything (the server may close early: then stop), half-closes, reads until the
 * server closes. 0, or -1 when the server kept the connection open past timeout_ms. */
static int exchange(int fd, const buf *out, buf *in, int timeout_ms)
{
    size_t sent = 0;
    int can_send = 1;
    double end = hload_now_ms() + timeout_ms;
    while (sent < out->len && can_send) {
        struct pollfd p = {.fd = fd, .events = POLLOUT | POLLIN};
        int left = (int)(end - hload_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            return -1;
        if (p.revents & POLLIN) { /* an early answer: keep it, and keep sending */
            char tmp[16384];
            ssize_t r = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
            if (r > 0)
                put(in, tmp, (size_t)r);
            else if (r == 0)
                return 0;
        }
        if (p.revents & (POLLERR | POLLHUP)) {
            can_send = 0;
            break;
        }
        if (p.revents & POLLOUT) {
            ssize_t w = send(fd, out->p + sent, out->len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                can_send = 0;
            else if (w > 0)
                sent += (size_t)w;
        }
    }
    shutdown(fd, SHUT_WR);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(end - hload_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            return -1;
        char tmp[16384];
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r > 0)
            put(in, tmp, (size_t)r);
        else
            return 0; /* closed (or reset) by the server */
    }
}

struct run {
    _Atomic uint64_t next;
    uint64_t total;
    pthread_mutex_t mu;
    stats s;
};

static void *client_main(void *arg)
{
    struct run *run = arg;
    stats s;
    memset(&s, 0, sizeof s);
    for (;;) {
        uint64_t n = atomic_fetch_add(&run->next, 1);
        if (n >= run->total)
            break;
        job j;
        make_job(n, &j);
        s.jobs++;
        s.requests += j.requests;
        s.by_kind[j.kind]++;
        int fd = connect_to(g_port);
        if (fd < 0) {
            fail(&s, &s.fail_connect, &j, n, "cannot connect", strerror(errno));
            free(j.out.p);
            continue;
        }
        buf in = {0};
        int rc = exchange(fd, &j.out, &in, 15000 * h_slow());
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg); /* no TIME_WAIT pile-up */
        close(fd);
        if (rc != 0)
            fail(&s, &s.fail_hang, &j, n, "the server kept the connection open", in.p);
        else
            check_answers(&s, &j, n, in.p ? in.p : "", in.len);
        free(in.p);
        free(j.out.p);
    }
    pthread_mutex_lock(&run->mu);
    stats *t = &run->s;
    t->jobs += s.jobs;
    t->requests += s.requests;
    t->answers += s.answers;
    for (int k = 0; k < K_COUNT; k++)
        t->by_kind[k] += s.by_kind[k];
    for (int k = 0; k < 6; k++)
        t->by_class[k] += s.by_class[k];
    t->fulcio_shape += s.fulcio_shape;
    t->evhttp_pages += s.evhttp_pages;
    t->s501 += s.s501;
    t->fail_2xx3xx += s.fail_2xx3xx;
    t->fail_5xx += s.fail_5xx;
    t->fail_shape += s.fail_shape;
    t->fail_unanswered += s.fail_unanswered;
    t->fail_hang += s.fail_hang;
    t->fail_connect += s.fail_connect;
    for (int i = 0; i < s.nfailures && t->nfailures < 5; i++)
        memcpy(t->failures[t->nfailures++], s.failures[i], sizeof s.failures[i]);
    pthread_mutex_unlock(&run->mu);
    return NULL;
}

static void run_jobs(struct run *run, uint64_t from, uint64_t to)
{
    atomic_store(&run->next, from);
    run->total = to;
    pthread_t t[THREADS];
    int started = 0;
    for (; started < THREADS; started++)
        if (pthread_create(&t[started], NULL, client_main, run) != 0)
            break;
    if (started == 0)
        client_main(run);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
}

static long rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *text = h_read_file(path, NULL);
    const char *v = text ? strstr(text, "VmRSS:") : NULL;
    long kib = v ? strtol(v + 6, NULL, 10) : -1;
    free(text);
    return kib;
}

int main(void)
{
    if (h_init("junk") != 0 || h_issuer_start(&g_iss) != 0)
        return 1;
    const char *seed_env = getenv("FULCRUM_TEST_SEED");
    g_seed = seed_env && *seed_env ? strtoull(seed_env, NULL, 0) : 20261126ULL;
    uint64_t total = (uint64_t)h_scaled(100000, 200);
    printf("junk: seed %" PRIu64 " (FULCRUM_TEST_SEED=%" PRIu64 " repeats this run), %" PRIu64
           " requests\n",
           g_seed, g_seed, total);
    fflush(stdout);
    hload_raise_nofile(4096);

    const char *args[] = {"--metrics-port", "-1", "--log-level", "error", NULL};
    h_server srv;
    h_server_opts so = {.issuer = &g_iss, .extra_args = args};
    if (h_server_start(&srv, &so) != 0) {
        CHECK(0, "server starts");
        h_finish(1);
        return 1;
    }
    g_port = srv.port;
    g_token = h_issuer_token(&g_iss, "email=junk@example.com");
    CHECK(g_token != NULL, "a real token");
    if (!g_token) {
        h_finish(1);
        return 1;
    }
    const char *show = getenv("FULCRUM_JUNK_SHOW"); /* print request n as C text, exit */
    if (show && *show) {
        job j;
        make_job(strtoull(show, NULL, 0), &j);
        printf("kind %s, well-framed %d, odd method %d:\n\"", kind_names[j.kind], j.wellformed,
               j.odd_method);
        for (size_t i = 0; i < j.out.len && i < 4096; i++) {
            unsigned char c = (unsigned char)j.out.p[i];
            if (c == '\n')
                printf("\\n\"\n\"");
            else if (c == '\r')
                printf("\\r");
            else if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
                printf("\\x%02x\"\"", c);
            else
                putchar(c);
        }
        printf("\"\n");
        int fd = connect_to(g_port);
        buf in = {0};
        int rc = fd >= 0 ? exchange(fd, &j.out, &in, 15000) : -1;
        printf("answer (exchange %d, %zu bytes):\n%.*s\n", rc, in.len, (int)in.len,
               in.p ? in.p : "");
        if (fd >= 0)
            close(fd);
        free(in.p);
        free(j.out.p);
        free(g_token);
        h_finish(0);
        return 0;
    }

    struct run run;
    memset(&run, 0, sizeof run);
    pthread_mutex_init(&run.mu, NULL);
    double t0 = hload_now_ms();
    uint64_t warm = total / 10;
    run_jobs(&run, 0, warm);
    long rss_warm = rss_kib(srv.proc.pid);
    run_jobs(&run, warm, total);
    long rss_end = rss_kib(srv.proc.pid);
    double secs = (hload_now_ms() - t0) / 1000;
    stats *s = &run.s;
    printf("fact: %ld connections, %ld requests in %.1f s (%.0f/s); %ld answers: 4xx %ld, 501 %ld "
           "(methods not served), Fulcio-shaped %ld, libevent pages %ld\n",
           s->jobs, s->requests, secs, s->requests / (secs > 0 ? secs : 1), s->answers,
           s->by_class[4], s->s501, s->fulcio_shape, s->evhttp_pages);
    printf("fact: by kind:");
    for (int k = 0; k < K_COUNT; k++)
        printf(" %s %ld%s", kind_names[k], s->by_kind[k], k + 1 < K_COUNT ? "," : "\n");
    printf("fact: server RSS %ld KiB after warm-up (%" PRIu64 " requests), %ld KiB at the end "
           "(%+ld KiB)\n",
           rss_warm, warm, rss_end, rss_end - rss_warm);
    for (int i = 0; i < s->nfailures; i++)
        printf("failure: %s\n", s->failures[i]);

    CHECK(h_proc_alive(&srv.proc), "the server is still running");
    CHECK(s->requests >= (long)total, "%ld requests sent", s->requests);
    CHECK(s->fail_connect == 0, "every connection accepted (%ld not)", s->fail_connect);
    CHECK(s->fail_2xx3xx == 0, "no junk answered 2xx/3xx (%ld were)", s->fail_2xx3xx);
    CHECK(s->fail_5xx == 0, "no junk answered 5xx but 501 for unserved methods (%ld were)",
          s->fail_5xx);
    CHECK(s->fail_shape == 0, "every answer well formed; the API's in Fulcio's shape (%ld not)",
          s->fail_shape);
    CHECK(s->fail_unanswered == 0, "every well-framed request answered once (%ld not)",
          s->fail_unanswered);
    CHECK(s->fail_hang == 0, "the server closed every connection in time (%ld not)",
          s->fail_hang);
    CHECK(s->fulcio_shape > (long)total / 4, "a good share reached the API (%ld)",
          s->fulcio_shape);
    /* Under valgrind or the sanitizers, RSS measures their allocators, not the server's. */
    long rss_limit = RSS_LIMIT_KIB;
#if defined(__SANITIZE_ADDRESS__)
    rss_limit = 320 * 1024; /* ASan's quarantine alone holds up to 256 MiB of freed memory */
#endif
    if (h_valgrind())
        rss_limit = 320 * 1024;
    CHECK(rss_warm > 0 && rss_end - rss_warm < rss_limit,
          "RSS growth after warm-up %ld KiB < %ld KiB", rss_end - rss_warm, rss_limit);

    /* A real request still works. */
    EVP_PKEY *key = h_key_new("P-256");
    char *body = hops_v2_body(g_token, key, "junk@example.com");
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/signingCert", srv.url);
    h_response r;
    h_post_json(url, body, NULL, &r);
    X509 *leaf = r.status == 200 ? hops_v2_leaf(r.body) : NULL;
    CHECK(leaf != NULL, "a real request still gets a certificate (%ld %.200s)", r.status,
          r.body ? r.body : "");
    X509_free(leaf);
    h_response_free(&r);
    free(body);
    EVP_PKEY_free(key);

    CHECK(h_proc_stop(&srv.proc, 30000) == 0, "exit 0 on SIGTERM (no leak under ASan)");
    free(g_token);
    pthread_mutex_destroy(&run.mu);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
