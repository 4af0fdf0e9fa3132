/*
 * fuzz_public_key: publicKey.content and the proof of possession (ca/client_key.h): PEM
 * "PUBLIC KEY" / "RSA PUBLIC KEY", raw DER SPKI, the key policy, the default hash, the
 * algorithm allow-list, and the proof verified over the fixed subject FZ_POP_SUBJECT.
 *
 * Input: a 2-byte big-endian key length n, n bytes of key, the rest is the proof. When the
 * length does not fit, the whole input is the key and the proof is empty.
 */
#include <limits.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <string.h>

#include "ca/client_key.h"
#include "fuzz_common.h"

#define FZ_POP_SUBJECT "fuzz@example.com"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_log_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *key = data, *sig = NULL;
    size_t keylen = size, siglen = 0;
    if (size >= 2) {
        size_t n = ((size_t)data[0] << 8) | data[1];
        if (n <= size - 2) {
            key = data + 2;
            keylen = n;
            sig = data + 2 + n;
            siglen = size - 2 - n;
        }
    }
    char why[512] = "";
    EVP_PKEY *k = client_key_parse(key, keylen, why, sizeof why);
    fz_note("key: %s", k ? "parsed" : why);
    /* PEM: client_key_parse decodes the usual PUBLIC KEY block itself. It must read the key
     * PEM_read_bio reads, and nothing PEM_read_bio refuses. */
    int pem_ok = 0;
    if (keylen <= INT_MAX && memmem(key, keylen, "-----BEGIN ", 11)) {
        BIO *b = BIO_new_mem_buf(key, (int)keylen);
        char *name = NULL, *header = NULL;
        unsigned char *der = NULL;
        long derlen = 0;
        pem_ok = b && PEM_read_bio(b, &name, &header, &der, &derlen) == 1;
        /* (an input that starts as DER, 0x30, is read whole as DER when its PEM block fails) */
        if (pem_ok && strcmp(name, "PUBLIC KEY") == 0 && derlen > 0 && key[0] != 0x30 &&
            !memmem(der, (size_t)derlen, "-----BEGIN ", 11)) {
            /* the same key as PEM_read_bio's DER read as DER */
            char why2[512];
            EVP_PKEY *k2 = client_key_parse(der, (size_t)derlen, why2, sizeof why2);
            EVP_PKEY *o = k ? client_key_openssl(k) : NULL;
            EVP_PKEY *o2 = k2 ? client_key_openssl(k2) : NULL;
            FZ_ASSERT(!k == !k2, "the PEM block is %s but its DER as PEM_read_bio decodes it is %s",
                      k ? "a key" : "refused", k2 ? "a key" : "refused");
            FZ_ASSERT(!k || (o && o2 && EVP_PKEY_eq(o, o2) == 1),
                      "the PEM block's key differs from its DER's as PEM_read_bio decodes it");
            EVP_PKEY_free(o);
            EVP_PKEY_free(o2);
            EVP_PKEY_free(k2);
        } else if (!pem_ok && k) {
            /* then the key came from the whole input as DER, which cannot start with armour */
            static const char armour[] = "-----BEGIN PUBLIC KEY-----";
            FZ_ASSERT(keylen < sizeof armour - 1 || memcmp(key, armour, sizeof armour - 1) != 0,
                      "a PEM block that PEM_read_bio refuses was read as a key");
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);
        BIO_free(b);
        ERR_clear_error();
    }
    if (!k) {
        FZ_ASSERT(why[0], "key refused without a reason");
        return 0;
    }
    /* Raw DER: when OpenSSL's own decoder reads the same bytes, it must be the same key
     * (client_key_parse builds the common keys itself, EC ones without OpenSSL's key). Not when
     * the input holds a PEM block: as in Fulcio, the first block's key comes first. */
    EVP_PKEY *ko = client_key_openssl(k);
    FZ_ASSERT(ko, "no OpenSSL key for a parsed key");
    const unsigned char *p = key;
    EVP_PKEY *ref = keylen <= LONG_MAX && !pem_ok ? d2i_PUBKEY(NULL, &p, (long)keylen) : NULL;
    if (ref && p == key + keylen)
        FZ_ASSERT(EVP_PKEY_eq(ko, ref) == 1, "client_key_parse and d2i_PUBKEY disagree");
    EVP_PKEY_free(ref);
    ERR_clear_error();
    char desc[128];
    client_key_describe(k, desc, sizeof desc);
    fz_note("%s", desc);
    if (client_key_policy_check(k, why, sizeof why) != 0) {
        fz_note("policy: %s", why);
        FZ_ASSERT(why[0], "policy refusal without a reason");
        EVP_PKEY_free(ko);
        EVP_PKEY_free(k);
        return 0;
    }
    int md = client_key_default_md(k);
    static const int mds[] = {NID_undef, NID_sha256, NID_sha384, NID_sha512, NID_sha1};
    for (size_t i = 0; i < sizeof mds / sizeof mds[0]; i++)
        (void)client_key_hash_allowed(k, mds[i], why, sizeof why);
    FZ_ASSERT(client_key_hash_allowed(k, md, why, sizeof why) == 0,
              "the default hash of %s is not allowed: %s", desc, why);
    /* ca/api_signing.c refuses an empty proof before it gets here. */
    why[0] = '\0';
    if (siglen > 0) {
        int v = client_key_verify_pop(k, (const unsigned char *)FZ_POP_SUBJECT,
                                      sizeof FZ_POP_SUBJECT - 1, sig, siglen, why, sizeof why);
        if (v != 0)
            FZ_ASSERT(why[0], "proof refused without a reason");
        /* The EC points' own verification (EC_KEY) and OpenSSL's EVP_DigestVerify agree. */
        char why2[512] = "";
        FZ_ASSERT(client_key_verify_pop(ko, (const unsigned char *)FZ_POP_SUBJECT,
                                        sizeof FZ_POP_SUBJECT - 1, sig, siglen, why2,
                                        sizeof why2) == v &&
                      strcmp(why, why2) == 0,
                  "the proof is judged differently on OpenSSL's key: %s / %s", why, why2);
    }
    fz_note("proof: %s", siglen == 0 ? "none" : why[0] ? why : "valid");
    EVP_PKEY_free(ko);
    EVP_PKEY_free(k);
    return 0;
}
