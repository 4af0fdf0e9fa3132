/*
 * fuzz_csr: the PKCS#10 alternative to publicKey + proof of possession (ca/csr.h):
 * PEM, DER, key policy, self-signature, signature algorithm. On CSR_OK the key passes the key
 * policy again and the (key, hash) pair goes through the algorithm allow-list, as
 * ca/api_signing.c does next.
 *
 * Input that starts like DER (a SEQUENCE, 0x30) is first wrapped as PEM "CERTIFICATE REQUEST",
 * so that mutations reach the DER; anything else goes in as it is (PEM text).
 */
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <string.h>

#include "ca/client_key.h"
#include "ca/csr.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_log_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *pem = NULL;
    if (size > 0 && data[0] == 0x30) {
        BIO *b = BIO_new(BIO_s_mem());
        char *text = NULL;
        long n = 0;
        FZ_ASSERT(b && PEM_write_bio(b, "CERTIFICATE REQUEST", "", data, (long)size) > 0 &&
                      (n = BIO_get_mem_data(b, &text)) > 0 && (pem = malloc((size_t)n)),
                  "PEM wrapping");
        memcpy(pem, text, (size_t)n);
        data = (const uint8_t *)pem;
        size = (size_t)n;
        BIO_free(b);
    }
    char why[512] = "";
    EVP_PKEY *key = NULL;
    int md = -1;
    enum csr_result r = csr_parse_and_verify(data, size, &key, &md, why, sizeof why);
    fz_note("csr: %d %s", (int)r, r == CSR_OK ? "ok" : why);
    if (r == CSR_OK) {
        FZ_ASSERT(key != NULL, "CSR_OK without a key");
        FZ_ASSERT(client_key_policy_check(key, why, sizeof why) == 0,
                  "CSR_OK with a key the policy refuses: %s", why);
        char desc[128];
        client_key_describe(key, desc, sizeof desc);
        (void)client_key_hash_allowed(key, md, why, sizeof why);
        EVP_PKEY_free(key);
    } else {
        FZ_ASSERT(why[0], "csr result %d without a reason", (int)r);
    }
    free(pem);
    return 0;
}
