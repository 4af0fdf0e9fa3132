/*
 * fuzz_signing_request: the JSON bodies of POST /api/v2/signingCert and /api/v1/signingCert
 * (ca/signing_request.h). Every input is parsed both ways; what a successful parse returns must
 * be consistent (lengths match the owned buffers, v1 drops the key when a CSR is present).
 */
#include <stdint.h>
#include <string.h>

#include "ca/signing_request.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_log_init();
    return 0;
}

static void check(const signing_request *r)
{
    FZ_ASSERT(!r->public_key_len || r->public_key, "public_key_len without public_key");
    FZ_ASSERT(!r->proof_len || r->proof, "proof_len without proof");
    FZ_ASSERT(!r->csr_len || r->csr, "csr_len without csr");
    /* Touch every byte so ASan sees a short buffer. */
    volatile unsigned sum = 0;
    for (size_t i = 0; i < r->public_key_len; i++)
        sum += r->public_key[i];
    for (size_t i = 0; i < r->proof_len; i++)
        sum += r->proof[i];
    for (size_t i = 0; i < r->csr_len; i++)
        sum += r->csr[i];
    if (r->token)
        sum += (unsigned)strlen(r->token);
    (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[512];
    signing_request r;
    int v2 = signing_request_parse_v2((const char *)data, size, &r, why, sizeof why);
    fz_note("v2: %s", v2 == 0 ? "ok" : why);
    if (v2 == 0) {
        check(&r);
        signing_request_clear(&r);
    } else {
        FZ_ASSERT(memchr(why, '\0', sizeof why) && why[0], "v2 refused without a reason");
        FZ_ASSERT(!r.token && !r.public_key && !r.proof && !r.csr, "v2 failure left data");
    }
    int v1 = signing_request_parse_v1((const char *)data, size, &r, why, sizeof why);
    fz_note("v1: %s", v1 == 0 ? "ok" : why);
    if (v1 == 0) {
        check(&r);
        FZ_ASSERT(!(r.csr_len && r.public_key), "v1 kept the key next to a CSR");
        signing_request_clear(&r);
    } else {
        FZ_ASSERT(why[0], "v1 refused without a reason");
        FZ_ASSERT(!r.token && !r.public_key && !r.proof && !r.csr, "v1 failure left data");
    }
    return 0;
}
