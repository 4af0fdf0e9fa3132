/*
 * bench/floor.c: fulcrum-floor, the cost of the public-key operations one issuance cannot avoid,
 * measured with OpenSSL on this machine: what the server's throughput is compared with.
 *
 *   fulcrum-floor [--seconds S] [--threads T] [--token rs256|es256]
 *                 [--ca-key p256|rsa2048|rsa3072] [--ct embedded|off]
 *
 * Keys are made once (EVP_PKEY), SHA-256 is fetched once (EVP_MD); each operation is one
 * EVP_DigestSign/VerifyInit + EVP_DigestSign/Verify on a message of the size the server signs
 * or verifies, with a reused EVP_MD_CTX. Nothing else (no parsing, no DER, no HTTP) is counted.
 * One issuance with the embedded CT log is:
 *   token:  1 verify (RS256 = RSA-2048 PKCS#1 v1.5, or ES256 = P-256)
 *   client: 1 P-256 ECDSA verify (proof of possession)
 *   CA:     2 signs (precertificate, final certificate) with the CA key (P-256, RSA-2048/3072)
 *   CT:     1 P-256 sign (the log's SCT) + 1 P-256 verify (the CA checks the SCT)
 * (--ct off: 1 CA sign, no SCT.)
 *
 * Prints µs per operation (one thread, S seconds each), the floor in µs per issuance for the
 * chosen composition and its variants (sums of the single-thread costs), and the floor's
 * issuances/s with T threads (default: online cores) running whole issuances concurrently for S
 * seconds: measured, not extrapolated. Last line:
 *   FLOOR us_per_issuance=... issuances_per_s=... threads=... token=... ca_key=... ct=...
 */
#include <errno.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Message sizes: a JWT's signing input, an email address, a TBSCertificate, an SCT's input. */
#define TOKEN_MSG 800
#define POP_MSG 24
#define TBS_MSG 1000
#define SCT_MSG 1100

enum key_id { K_RSA2048, K_RSA3072, K_P256, KEYS };
static const char *const key_names[KEYS] = {"RSA-2048", "RSA-3072", "P-256"};

struct sig {
    unsigned char b[512];
    size_t len;
};

/* Read-only once made; shared by every thread. */
struct world {
    const EVP_MD *sha256;
    EVP_PKEY *key[KEYS];
    unsigned char token_msg[TOKEN_MSG], pop_msg[POP_MSG], tbs_msg[TBS_MSG], sct_msg[SCT_MSG];
    struct sig token_sig[KEYS]; /* token_msg signed by each key */
    struct sig pop_sig, sct_sig;  /* P-256 */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int do_sign(EVP_MD_CTX *ctx, const EVP_MD *md, EVP_PKEY *k, const unsigned char *msg,
                   size_t len, struct sig *out)
{
    out->len = sizeof out->b;
    int ok = EVP_DigestSignInit(ctx, NULL, md, NULL, k) == 1 &&
             EVP_DigestSign(ctx, out->b, &out->len, msg, len) == 1;
    EVP_MD_CTX_reset(ctx);
    return ok ? 0 : -1;
}

static int do_verify(EVP_MD_CTX *ctx, const EVP_MD *md, EVP_PKEY *k, const unsigned char *msg,
                     size_t len, const struct sig *s)
{
    int ok = EVP_DigestVerifyInit(ctx, NULL, md, NULL, k) == 1 &&
             EVP_DigestVerify(ctx, s->b, s->len, msg, len) == 1;
    EVP_MD_CTX_reset(ctx);
    return ok ? 0 : -1;
}

/* ---- single operations ---- */

enum op_id { OP_RS256_VERIFY, OP_ES256_VERIFY, OP_P256_VERIFY, OP_P256_SIGN, OP_RSA2048_SIGN,
             OP_RSA3072_SIGN, OPS };
static const char *const op_names[OPS] = {
    "RS256 token verify (RSA-2048)", "ES256 token verify (P-256)",
    "P-256 ECDSA verify (proof, SCT)", "P-256 ECDSA sign (CA, SCT)", "RSA-2048 sign (CA)",
    "RSA-3072 sign (CA)"};

static int run_op(const struct world *w, EVP_MD_CTX *ctx, enum op_id op)
{
    struct sig out;
    switch (op) {
    case OP_RS256_VERIFY:
        return do_verify(ctx, w->sha256, w->key[K_RSA2048], w->token_msg, TOKEN_MSG,
                         &w->token_sig[K_RSA2048]);
    case OP_ES256_VERIFY:
        return do_verify(ctx, w->sha256, w->key[K_P256], w->token_msg, TOKEN_MSG,
                         &w->token_sig[K_P256]);
    case OP_P256_VERIFY:
        return do_verify(ctx, w->sha256, w->key[K_P256], w->pop_msg, POP_MSG, &w->pop_sig);
    case OP_P256_SIGN:
        return do_sign(ctx, w->sha256, w->key[K_P256], w->tbs_msg, TBS_MSG, &out);
    case OP_RSA2048_SIGN:
        return do_sign(ctx, w->sha256, w->key[K_RSA2048], w->tbs_msg, TBS_MSG, &out);
    case OP_RSA3072_SIGN:
        return do_sign(ctx, w->sha256, w->key[K_RSA3072], w->tbs_msg, TBS_MSG, &out);
    default:
        return -1;
    }
}

/* ---- one issuance ---- */

struct recipe {
    enum key_id token; /* K_RSA2048 (RS256) or K_P256 (ES256) */
    enum key_id ca;
    int ct; /* embedded log: precertificate + SCT */
};

static int run_issuance(const struct world *w, EVP_MD_CTX *ctx, const struct recipe *r)
{
    struct sig out;
    const EVP_MD *md = w->sha256;
    if (do_verify(ctx, md, w->key[r->token], w->token_msg, TOKEN_MSG, &w->token_sig[r->token]))
        return -1;
    if (do_verify(ctx, md, w->key[K_P256], w->pop_msg, POP_MSG, &w->pop_sig))
        return -1;
    if (do_sign(ctx, md, w->key[r->ca], w->tbs_msg, TBS_MSG, &out))
        return -1;
    if (!r->ct)
        return 0;
    if (do_sign(ctx, md, w->key[K_P256], w->sct_msg, SCT_MSG, &out) ||
        do_verify(ctx, md, w->key[K_P256], w->sct_msg, SCT_MSG, &w->sct_sig))
        return -1;
    return do_sign(ctx, md, w->key[r->ca], w->tbs_msg, TBS_MSG, &out);
}

static int listed_before(const struct recipe *v, size_t n, const struct recipe *r)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].token == r->token && v[i].ca == r->ca && v[i].ct == r->ct)
            return 1;
    return 0;
}

static enum op_id sign_op(enum key_id k)
{
    return k == K_RSA2048 ? OP_RSA2048_SIGN : k == K_RSA3072 ? OP_RSA3072_SIGN : OP_P256_SIGN;
}

/* The single-thread sum of the operations of recipe r. */
static double recipe_us(const double us[OPS], const struct recipe *r)
{
    double t = us[r->token == K_RSA2048 ? OP_RS256_VERIFY : OP_ES256_VERIFY] + us[OP_P256_VERIFY] +
               us[sign_op(r->ca)];
    if (r->ct)
        t += us[sign_op(r->ca)] + us[OP_P256_SIGN] + us[OP_P256_VERIFY];
    return t;
}

/* ---- timing ---- */

struct worker {
    const struct world *w;
    const struct recipe *r;
    int op; /* >= 0: this single operation; -1: whole issuances */
    double seconds;
    atomic_int *go;
    unsigned long long done;
    int failed;
};

static void *work(void *arg)
{
    struct worker *k = arg;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) {
        k->failed = 1;
        return NULL;
    }
    while (atomic_load(k->go) == 0)
        ;
    double end = now_s() + k->seconds;
    do {
        for (int i = 0; i < 8; i++) {
            int rc = k->op >= 0 ? run_op(k->w, ctx, (enum op_id)k->op)
                                : run_issuance(k->w, ctx, k->r);
            if (rc != 0) {
                k->failed = 1;
                EVP_MD_CTX_free(ctx);
                return NULL;
            }
            k->done++;
        }
    } while (now_s() < end);
    EVP_MD_CTX_free(ctx);
    return NULL;
}

/* Runs `threads` workers at once; returns operations (or issuances) per second, -1 on failure. */
static double measure(const struct world *w, const struct recipe *r, int op, int threads,
                      double seconds)
{
    struct worker *ks = calloc((size_t)threads, sizeof *ks);
    pthread_t *ts = calloc((size_t)threads, sizeof *ts);
    atomic_int go = 0;
    int started = 0, failed = 0;
    if (!ks || !ts) {
        free(ks);
        free(ts);
        return -1;
    }
    for (int i = 0; i < threads; i++) {
        ks[i] = (struct worker){.w = w, .r = r, .op = op, .seconds = seconds, .go = &go};
        if (pthread_create(&ts[i], NULL, work, &ks[i]) != 0) {
            failed = 1;
            break;
        }
        started++;
    }
    double t0 = now_s();
    atomic_store(&go, 1);
    unsigned long long total = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(ts[i], NULL);
        total += ks[i].done;
        failed |= ks[i].failed;
    }
    double elapsed = now_s() - t0;
    free(ks);
    free(ts);
    return failed || elapsed <= 0 ? -1 : (double)total / elapsed;
}

/* ---- setup ---- */

static int make_world(struct world *w)
{
    memset(w, 0, sizeof *w);
    w->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    w->key[K_RSA2048] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    w->key[K_RSA3072] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
    w->key[K_P256] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!w->sha256 || !w->key[K_RSA2048] || !w->key[K_RSA3072] || !w->key[K_P256])
        return -1;
    for (size_t i = 0; i < TOKEN_MSG; i++)
        w->token_msg[i] = (unsigned char)('A' + i % 26);
    memcpy(w->pop_msg, "user1234@example.com", 20);
    for (size_t i = 0; i < TBS_MSG; i++)
        w->tbs_msg[i] = (unsigned char)(i * 7);
    for (size_t i = 0; i < SCT_MSG; i++)
        w->sct_msg[i] = (unsigned char)(i * 13);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = ctx ? 0 : -1;
    for (int k = 0; k < KEYS && rc == 0; k++)
        rc = do_sign(ctx, w->sha256, w->key[k], w->token_msg, TOKEN_MSG, &w->token_sig[k]);
    if (rc == 0)
        rc = do_sign(ctx, w->sha256, w->key[K_P256], w->pop_msg, POP_MSG, &w->pop_sig);
    if (rc == 0)
        rc = do_sign(ctx, w->sha256, w->key[K_P256], w->sct_msg, SCT_MSG, &w->sct_sig);
    EVP_MD_CTX_free(ctx);
    return rc;
}

static void free_world(struct world *w)
{
    for (int k = 0; k < KEYS; k++)
        EVP_PKEY_free(w->key[k]);
    EVP_MD_free((EVP_MD *)w->sha256);
}

static void usage(FILE *to)
{
    fputs("usage: fulcrum-floor [--seconds S] [--threads T] [--token rs256|es256] "
          "[--ca-key p256|rsa2048|rsa3072] [--ct embedded|off]\n",
          to);
}

static int parse_args(int argc, char **argv, double *seconds, int *threads, struct recipe *r)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fulcrum-floor: %s: unknown option or missing value\n", a);
            return -1;
        }
        const char *v = argv[++i];
        char *end = NULL;
        errno = 0;
        if (strcmp(a, "--seconds") == 0) {
            *seconds = strtod(v, &end);
            if (!*v || *end || errno || !(*seconds > 0) || !isfinite(*seconds)) {
                fprintf(stderr, "fulcrum-floor: --seconds %s: not a positive number\n", v);
                return -1;
            }
        } else if (strcmp(a, "--threads") == 0) {
            long t = strtol(v, &end, 10);
            if (!*v || *end || errno || t < 1 || t > 4096) {
                fprintf(stderr, "fulcrum-floor: --threads %s: not 1..4096\n", v);
                return -1;
            }
            *threads = (int)t;
        } else if (strcmp(a, "--token") == 0) {
            if (strcmp(v, "rs256") == 0)
                r->token = K_RSA2048;
            else if (strcmp(v, "es256") == 0)
                r->token = K_P256;
            else {
                fprintf(stderr, "fulcrum-floor: --token %s: rs256 or es256\n", v);
                return -1;
            }
        } else if (strcmp(a, "--ca-key") == 0) {
            if (strcmp(v, "p256") == 0)
                r->ca = K_P256;
            else if (strcmp(v, "rsa2048") == 0)
                r->ca = K_RSA2048;
            else if (strcmp(v, "rsa3072") == 0)
                r->ca = K_RSA3072;
            else {
                fprintf(stderr, "fulcrum-floor: --ca-key %s: p256, rsa2048 or rsa3072\n", v);
                return -1;
            }
        } else if (strcmp(a, "--ct") == 0) {
            if (strcmp(v, "embedded") == 0)
                r->ct = 1;
            else if (strcmp(v, "off") == 0)
                r->ct = 0;
            else {
                fprintf(stderr, "fulcrum-floor: --ct %s: embedded or off\n", v);
                return -1;
            }
        } else {
            fprintf(stderr, "fulcrum-floor: %s: unknown option\n", a);
            return -1;
        }
    }
    return 0;
}

static const char *token_name(enum key_id k)
{
    return k == K_RSA2048 ? "rs256" : "es256";
}

static const char *ca_name(enum key_id k)
{
    return k == K_RSA2048 ? "rsa2048" : k == K_RSA3072 ? "rsa3072" : "p256";
}

int main(int argc, char **argv)
{
    double seconds = 1;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = cores > 0 ? (int)cores : 1;
    struct recipe chosen = {.token = K_RSA2048, .ca = K_P256, .ct = 1};
    if (parse_args(argc, argv, &seconds, &threads, &chosen) != 0) {
        usage(stderr);
        return 2;
    }
    static struct world w;
    if (make_world(&w) != 0) {
        fprintf(stderr, "fulcrum-floor: cannot make the keys or the test signatures\n");
        free_world(&w);
        return 1;
    }
    printf("floor: %s, %g s per measurement, %ld online cores\n", OpenSSL_version(OPENSSL_VERSION),
           seconds, cores);
    double us[OPS];
    for (int op = 0; op < OPS; op++) {
        double rate = measure(&w, NULL, op, 1, seconds);
        if (rate <= 0) {
            fprintf(stderr, "fulcrum-floor: %s failed\n", op_names[op]);
            free_world(&w);
            return 1;
        }
        us[op] = 1e6 / rate;
        printf("  %-34s %9.1f us/op\n", op_names[op], us[op]);
    }
    printf("floor per issuance (one thread, sum of its operations):\n");
    const struct recipe variants[] = {
        {K_RSA2048, K_P256, 1}, {K_P256, K_P256, 1}, {K_RSA2048, K_RSA2048, 1},
        {K_RSA2048, K_RSA3072, 1}, {K_RSA2048, K_P256, 0}, chosen,
    };
    size_t nvariants = sizeof variants / sizeof variants[0];
    for (size_t i = 0; i < nvariants; i++) {
        const struct recipe *v = &variants[i];
        int is_chosen = v->token == chosen.token && v->ca == chosen.ca && v->ct == chosen.ct;
        if (i == nvariants - 1 && listed_before(variants, i, &chosen))
            break; /* the chosen recipe is already in the list */
        printf("  %s token, %-8s CA, CT %-8s %9.1f us%s\n",
               v->token == K_RSA2048 ? "RS256" : "ES256", key_names[v->ca],
               v->ct ? "embedded" : "off", recipe_us(us, v),
               is_chosen ? "  <- measured on threads below" : "");
    }
    double floor_us = recipe_us(us, &chosen);
    double ips = measure(&w, &chosen, -1, threads, seconds);
    if (ips <= 0) {
        fprintf(stderr, "fulcrum-floor: the concurrent issuance run failed\n");
        free_world(&w);
        return 1;
    }
    printf("floor issuances/s on %d threads at once: %.0f (one thread alone: %.0f)\n", threads,
           ips, 1e6 / floor_us);
    printf("FLOOR us_per_issuance=%.1f issuances_per_s=%.0f threads=%d token=%s ca_key=%s ct=%s\n",
           floor_us, ips, threads, token_name(chosen.token), ca_name(chosen.ca),
           chosen.ct ? "embedded" : "off");
    free_world(&w);
    return 0;
}
