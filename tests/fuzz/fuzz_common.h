/*
 * tests/fuzz/fuzz_common.h: what the libFuzzer targets share (header-only): the fixtures
 * (Fulcio's fileca test chains and keys, password "password123"), file reading, a fixed clock,
 * and the precertificate whose SCT the sct_list seeds carry.
 *
 * The fixtures directory is $FULCRUM_FIXTURES_DIR, else the one CMake compiled in
 * (FULCRUM_FUZZ_FIXTURES_DIR). Everything is loaded once, in LLVMFuzzerInitialize.
 */
#ifndef FULCRUM_TESTS_FUZZ_COMMON_H
#define FULCRUM_TESTS_FUZZ_COMMON_H

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define FZ_FN static __attribute__((unused))

/* The clock every target uses: 2026-01-01T00:00:00Z. Seed tokens are issued before it and
 * expire in 2100; seed SCTs carry timestamps before it. */
#define FZ_NOW ((time_t)1767225600)
#define FZ_NOW_MS ((uint64_t)FZ_NOW * 1000u)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

FZ_FN void fz_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
FZ_FN void fz_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz setup: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* A harness invariant: a failure is a finding (abort, so libFuzzer saves the input). */
#define FZ_ASSERT(cond, ...)                                                                 \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz invariant failed at %s:%d: ", __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* With FULCRUM_FUZZ_VERBOSE set, what became of each input, on stderr (for replaying seeds:
 * which check refused a seed). */
FZ_FN void fz_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
FZ_FN void fz_note(const char *fmt, ...)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("FULCRUM_FUZZ_VERBOSE") != NULL;
    if (!verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Errors only, or everything with FULCRUM_FUZZ_VERBOSE (the log says why a request was
 * refused). */
FZ_FN void fz_log_init(void)
{
    log_set_level(getenv("FULCRUM_FUZZ_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
}

FZ_FN const char *fz_fixtures_dir(void)
{
    const char *d = getenv("FULCRUM_FIXTURES_DIR");
#ifdef FULCRUM_FUZZ_FIXTURES_DIR
    if (!d || !*d)
        d = FULCRUM_FUZZ_FIXTURES_DIR;
#endif
    if (!d || !*d)
        fz_die("set FULCRUM_FIXTURES_DIR to tests/fixtures");
    return d;
}

/* The whole file, NUL-terminated, or NULL. */
FZ_FN char *fz_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            break;
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = n;
    }
    return buf;
}

/* <fixtures>/<rel>, read whole; dies when missing. */
FZ_FN char *fz_fixture_text(const char *rel, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fz_fixtures_dir(), rel);
    char *t = fz_read_file(path, len);
    if (!t)
        fz_die("cannot read %s", path);
    return t;
}

/* Every certificate of fulcio-fileca/<name>-cert.pem (issuing certificate first). */
FZ_FN STACK_OF(X509) *fz_fixture_chain(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "fulcio-fileca/%s-cert.pem", name);
    size_t n = 0;
    char *pem = fz_fixture_text(rel, &n);
    BIO *b = BIO_new_mem_buf(pem, (int)n);
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x;
    while (b && sk && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        if (!sk_X509_push(sk, x))
            X509_free(x);
    BIO_free(b);
    free(pem);
    if (!sk || sk_X509_num(sk) == 0)
        fz_die("no certificate in %s", rel);
    return sk;
}

/* The first certificate of fulcio-fileca/<name>-cert.pem. */
FZ_FN X509 *fz_fixture_cert(const char *name)
{
    STACK_OF(X509) *sk = fz_fixture_chain(name);
    X509 *x = sk_X509_shift(sk);
    sk_X509_pop_free(sk, X509_free);
    return x;
}

/* fulcio-fileca/<name>-key.pem (encrypted with "password123"). */
FZ_FN EVP_PKEY *fz_fixture_key(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "fulcio-fileca/%s-key.pem", name);
    size_t n = 0;
    char *pem = fz_fixture_text(rel, &n);
    BIO *b = BIO_new_mem_buf(pem, (int)n);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"password123") : NULL;
    BIO_free(b);
    free(pem);
    if (!k)
        fz_die("cannot read the key %s", rel);
    return k;
}

/* ---- the precertificate of the sct_list target ----
 *
 * Issuer: fixture intermediate-3 (CN=intermediate2, P-256); subject key: fixture openssl
 * (Ed25519); log key: fixture eku-chaining-violation (P-256). Every TBS field is fixed, so the
 * TBS is the same bytes in every process (only the issuer's ECDSA signature over it varies) and
 * an SCT made once (tests/fuzz/gen_corpus.c) verifies in every run. The poison is the last
 * extension, where ca/issue.c puts the SCT list in the final certificate. */
#define FZ_SCT_ISSUER "intermediate-3"
#define FZ_SCT_SUBJECT "openssl"
#define FZ_SCT_LOG "eku-chaining-violation"

FZ_FN void fz_add_ext_raw(X509 *x, int nid, int critical, const unsigned char *der, int len)
{
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ex = NULL;
    if (os && ASN1_OCTET_STRING_set(os, der, len))
        ex = X509_EXTENSION_create_by_NID(NULL, nid, critical, os);
    if (!ex || !X509_add_ext(x, ex, -1))
        fz_die("cannot add extension %d", nid);
    X509_EXTENSION_free(ex);
    ASN1_OCTET_STRING_free(os);
}

/* sct_list: NULL for the precertificate (poison last), else the final certificate carrying
 * this SignedCertificateTimestampList (TLS bytes, wrapped in an OCTET STRING) last. */
FZ_FN X509 *fz_sct_cert(X509 *issuer, EVP_PKEY *issuer_key, EVP_PKEY *subject_key,
                        const unsigned char *sct_list, size_t sct_list_len)
{
    X509 *x = X509_new();
    if (!x || !X509_set_version(x, 2))
        fz_die("X509_new");
    ASN1_INTEGER_set_int64(X509_get_serialNumber(x), INT64_C(0x0123456789abcdef));
    ASN1_TIME_set(X509_getm_notBefore(x), FZ_NOW - 60);
    ASN1_TIME_set(X509_getm_notAfter(x), FZ_NOW + 540);
    X509_NAME *empty = X509_NAME_new();
    X509_set_subject_name(x, empty);
    X509_NAME_free(empty);
    X509_set_issuer_name(x, X509_get_subject_name(issuer));
    X509_set_pubkey(x, subject_key);
    static const unsigned char ku[] = {0x03, 0x02, 0x07, 0x80};            /* digitalSignature */
    static const unsigned char eku[] = {0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01,
                                        0x05, 0x05, 0x07, 0x03, 0x03};     /* codeSigning */
    static const unsigned char san[] = {0x30, 0x12, 0x81, 0x10, 'f', 'u', 'z', 'z', '@', 'e',
                                        'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm'};
    fz_add_ext_raw(x, NID_key_usage, 1, ku, sizeof ku);
    fz_add_ext_raw(x, NID_ext_key_usage, 0, eku, sizeof eku);
    fz_add_ext_raw(x, NID_subject_alt_name, 1, san, sizeof san);
    if (!sct_list) {
        static const unsigned char null_der[] = {0x05, 0x00};
        fz_add_ext_raw(x, NID_ct_precert_poison, 1, null_der, sizeof null_der);
    } else {
        /* extnValue = OCTET STRING { the TLS list } */
        ASN1_OCTET_STRING *inner = ASN1_OCTET_STRING_new();
        unsigned char *der = NULL;
        int n = -1;
        if (inner && sct_list_len <= INT32_MAX &&
            ASN1_OCTET_STRING_set(inner, sct_list, (int)sct_list_len))
            n = i2d_ASN1_OCTET_STRING(inner, &der);
        ASN1_OCTET_STRING_free(inner);
        if (n < 0)
            fz_die("cannot encode the SCT list");
        fz_add_ext_raw(x, NID_ct_precert_scts, 0, der, n);
        OPENSSL_free(der);
    }
    if (X509_sign(x, issuer_key, EVP_sha256()) <= 0)
        fz_die("X509_sign");
    return x;
}

#endif
