/*
 * bench/hsm_sign.c: signatures per second through the pkcs11ca signer on SoftHSM2, next to the
 * same key type signed in process (the fileca/ephemeralca path), with 1 and with N threads.
 * Every signature is verified by signer_sign(), as in the server. Run by hand:
 *
 *   build/fulcrum-bench-hsm [--seconds S] [--threads N] [--key p256|p384|rsa3072|rsa4096|all]
 *
 * It makes its own SoftHSM2 token in a temp dir (private SOFTHSM2_CONF) and removes it after.
 * $FULCRUM_SOFTHSM2_MODULE overrides the module CMake found.
 */
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ca/createca_cmd.h"
#include "common/log.h"
#include "hsm/key_signer.h"
#include "hsm/pkcs11_signer.h"
#include "hsm/pkcs11_token.h"
#include "hsm/signer.h"

#define PIN "bench-pin-1234"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct run {
    signer *s;
    double until;
    long count, failed;
};

static void *worker(void *arg)
{
    struct run *r = arg;
    unsigned char msg[300], sig[1024];
    memset(msg, 'x', sizeof msg);
    while (now_s() < r->until) {
        size_t siglen = sizeof sig;
        char why[256];
        msg[0]++;
        if (signer_sign(r->s, msg, sizeof msg, sig, &siglen, why, sizeof why) == 0)
            r->count++;
        else
            r->failed++;
    }
    return NULL;
}

static double measure(signer *s, int threads, double seconds, long *failed)
{
    pthread_t th[256];
    struct run runs[256];
    double start = now_s();
    for (int i = 0; i < threads; i++) {
        runs[i] = (struct run){.s = s, .until = start + seconds};
        pthread_create(&th[i], NULL, worker, &runs[i]);
    }
    long total = 0;
    *failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += runs[i].count;
        *failed += runs[i].failed;
    }
    return total / (now_s() - start);
}

/* A self-signed certificate for key, so that key_signer_new accepts it. */
static signer *in_process_signer(const char *type)
{
    EVP_PKEY *key = strcmp(type, "p256") == 0   ? EVP_EC_gen("P-256")
                    : strcmp(type, "p384") == 0 ? EVP_EC_gen("P-384")
                    : EVP_RSA_gen(strcmp(type, "rsa4096") == 0 ? 4096 : 3072);
    X509 *x = X509_new();
    STACK_OF(X509) *chain = sk_X509_new_null();
    char why[256];
    if (!key || !x || !chain || !X509_set_pubkey(x, key) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 3600) || !X509_sign(x, key, EVP_sha256()) ||
        !sk_X509_push(chain, x)) {
        fprintf(stderr, "cannot make the in-process key\n");
        return NULL;
    }
    signer *s = key_signer_new("in-process", key, chain, why, sizeof why);
    if (!s)
        fprintf(stderr, "in-process signer: %s\n", why);
    return s;
}

static int init_token(const char *module)
{
    p11_module m;
    char why[512];
    if (p11_module_load(&m, module, why, sizeof why) != 0) {
        fprintf(stderr, "%s\n", why);
        return -1;
    }
    CK_SLOT_ID slots[16], slot;
    CK_ULONG n = 16;
    unsigned char label[32];
    memset(label, ' ', sizeof label);
    memcpy(label, "bench", 5);
    const char *so = "bench-so-5678";
    CK_SESSION_HANDLE s;
    CK_TOKEN_INFO info;
    struct pkcs11_config cfg = {.token_label = "bench", .path = (char *)module};
    int ok = m.f->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK && n > 0 &&
             m.f->C_InitToken(slots[0], (CK_UTF8CHAR_PTR)so, strlen(so), label) == CKR_OK &&
             p11_select_token(&m, &cfg, &slot, &info, why, sizeof why) == 0 &&
             m.f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s) ==
                 CKR_OK &&
             m.f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)so, strlen(so)) == CKR_OK &&
             m.f->C_InitPIN(s, (CK_UTF8CHAR_PTR)PIN, strlen(PIN)) == CKR_OK;
    p11_module_unload(&m);
    if (!ok)
        fprintf(stderr, "cannot initialise the SoftHSM2 token\n");
    return ok ? 0 : -1;
}

/* createca in process, its PEM on stdout sent to /dev/null. */
static int create_ca(const char *cfg, const char *pin_file, const char *type, const char *id)
{
    char *argv[] = {"--pkcs11-config-path", (char *)cfg, "--pkcs11-pin-file", (char *)pin_file,
                    "--hsm-caroot-id", (char *)id, "--hsm-key-label", (char *)id,
                    "--key-type", (char *)type, NULL};
    fflush(stdout);
    int saved = dup(1), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    int rc = createca_main(10, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(devnull);
    return rc;
}

int main(int argc, char **argv)
{
    double seconds = 3;
    int threads = 8;
    const char *which = "all";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--key") == 0)
            which = argv[i + 1];
    }
    if (threads < 1 || threads > 256 || seconds <= 0) {
        fprintf(stderr, "usage: %s [--seconds S] [--threads 1..256] [--key TYPE|all]\n", argv[0]);
        return 2;
    }
    const char *module = getenv("FULCRUM_SOFTHSM2_MODULE");
#ifdef FULCRUM_SOFTHSM2_MODULE_DEFAULT
    if (!module || !*module)
        module = FULCRUM_SOFTHSM2_MODULE_DEFAULT;
#endif
    if (!module || access(module, R_OK) != 0) {
        fprintf(stderr, "no SoftHSM2 module: set FULCRUM_SOFTHSM2_MODULE\n");
        return 1;
    }
    log_set_level(LOG_LVL_WARN);
    const char *tmp = getenv("TMPDIR");
    char dir[256], path[512], text[1024], cfg[512], pin_file[512];
    snprintf(dir, sizeof dir, "%s/fulcrum-bench-hsm-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/tokens", dir);
    mkdir(path, 0700);
    snprintf(text, sizeof text,
             "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", path);
    snprintf(path, sizeof path, "%s/softhsm2.conf", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    setenv("SOFTHSM2_CONF", path, 1);
    snprintf(cfg, sizeof cfg, "%s/crypto11.json", dir);
    f = fopen(cfg, "w");
    fprintf(f, "{\"Path\":\"%s\",\"TokenLabel\":\"bench\"}\n", module);
    fclose(f);
    snprintf(pin_file, sizeof pin_file, "%s/pin", dir);
    f = fopen(pin_file, "w");
    fputs(PIN, f);
    fclose(f);
    chmod(pin_file, 0600);

    int rc = init_token(module);
    const char *types[] = {"p256", "p384", "rsa3072", "rsa4096"};
    printf("%-8s %-11s %12s %12s\n", "key", "signer", "1 thread/s",
           threads == 1 ? "" : "N threads/s");
    for (size_t i = 0; rc == 0 && i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(which, "all") != 0 && strcmp(which, types[i]) != 0)
            continue;
        char id[32];
        snprintf(id, sizeof id, "bench-%s", types[i]);
        if (create_ca(cfg, pin_file, types[i], id) != 0) {
            rc = 1;
            break;
        }
        char why[768];
        struct pkcs11_options o = {.config_path = cfg, .pin_file = pin_file, .caroot_id = id,
                                   .key_label = id};
        signer *hsm = signer_pkcs11_new(&o, why, sizeof why);
        signer *local = in_process_signer(types[i]);
        if (!hsm || !local) {
            fprintf(stderr, "%s\n", hsm ? "in-process signer failed" : why);
            signer_free(hsm);
            signer_free(local);
            rc = 1;
            break;
        }
        signer *both[2] = {hsm, local};
        const char *names[2] = {"SoftHSM2", "in-process"};
        for (int k = 0; k < 2; k++) {
            long f1 = 0, fn = 0;
            double one = measure(both[k], 1, seconds, &f1);
            double many = threads > 1 ? measure(both[k], threads, seconds, &fn) : 0;
            printf("%-8s %-11s %12.0f %12.0f  (%d threads)%s\n", types[i], names[k], one, many,
                   threads, f1 + fn ? "  FAILURES" : "");
            fflush(stdout);
        }
        signer_free(hsm);
        signer_free(local);
    }
    snprintf(text, sizeof text, "rm -rf '%s'", dir);
    if (system(text) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    ERR_clear_error();
    return rc;
}
