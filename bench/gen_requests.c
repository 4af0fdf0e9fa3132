/*
 * bench/gen_requests.c: writes N distinct signing requests, one JSON body per line, for the load
 * generator to replay. Each has its own token (minted by the dev issuer for user<i>@example.com)
 * and its own key with a proof of possession already computed, so no client crypto happens
 * on the clock.
 *
 *   fulcrum-bench-gen ISSUER_URL N OUT_FILE [p256|rsa2048|mixed] [RS256|ES256|mixed]
 *
 * The last argument is the tokens' algorithm (default mixed: RS256 and ES256 alternate).
 */
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"

struct buf {
    char *data;
    size_t len;
};

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
    struct buf *b = arg;
    char *d = realloc(b->data, b->len + sz * n + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, p, sz * n);
    b->data = d;
    b->len += sz * n;
    d[b->len] = '\0';
    return sz * n;
}

static char *mint_token(CURL *curl, const char *issuer, int i, const char *alg)
{
    char url[512];
    snprintf(url, sizeof url, "%s/token?email=user%d@example.com&alg=%s&exp_in=3600", issuer, i,
             alg);
    struct buf b = {0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    long code = 0;
    if (curl_easy_perform(curl) != CURLE_OK ||
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code != 200) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

static EVP_PKEY *make_key(const char *kind)
{
    if (strcmp(kind, "rsa2048") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s ISSUER_URL N OUT_FILE [p256|rsa2048|mixed] [RS256|ES256|mixed]\n",
                argv[0]);
        return 2;
    }
    const char *issuer = argv[1];
    int n = atoi(argv[2]);
    const char *mode = argc > 4 ? argv[4] : "p256";
    const char *algs = argc > 5 ? argv[5] : "mixed";
    if (strcmp(algs, "RS256") != 0 && strcmp(algs, "ES256") != 0 && strcmp(algs, "mixed") != 0) {
        fprintf(stderr, "token algorithm %s: RS256, ES256 or mixed\n", algs);
        return 2;
    }
    FILE *out = fopen(argv[3], "w");
    if (!out || n <= 0) {
        perror("output");
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *curl = curl_easy_init();
    for (int i = 0; i < n; i++) {
        const char *kind = strcmp(mode, "mixed") == 0 ? (i % 2 ? "rsa2048" : "p256") : mode;
        const char *alg = strcmp(algs, "mixed") != 0 ? algs : i % 2 ? "ES256" : "RS256";
        char *token = mint_token(curl, issuer, i, alg);
        EVP_PKEY *key = make_key(kind);
        if (!token || !key) {
            fprintf(stderr, "request %d: cannot mint the token or the key\n", i);
            return 1;
        }
        char email[64];
        int elen = snprintf(email, sizeof email, "user%d@example.com", i);
        unsigned char sig[512];
        size_t siglen = sizeof sig;
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
            EVP_DigestSign(md, sig, &siglen, (unsigned char *)email, (size_t)elen) != 1) {
            fprintf(stderr, "request %d: cannot sign\n", i);
            return 1;
        }
        EVP_MD_CTX_free(md);
        BIO *pem = BIO_new(BIO_s_mem());
        PEM_write_bio_PUBKEY(pem, key);
        char *pemdata;
        long pemlen = BIO_get_mem_data(pem, &pemdata);
        char *pemstr = strndup(pemdata, (size_t)pemlen);
        char *proof = b64_encode(sig, siglen);
        json_t *req = json_pack("{s:{s:s},s:{s:{s:s,s:s},s:s}}", "credentials",
                                "oidcIdentityToken", token, "publicKeyRequest", "publicKey",
                                "algorithm", strcmp(kind, "rsa2048") ? "ECDSA" : "RSA_PSS",
                                "content", pemstr, "proofOfPossession", proof);
        char *line = json_dumps(req, JSON_COMPACT);
        fprintf(out, "%s\n", line);
        free(line);
        json_decref(req);
        free(proof);
        free(pemstr);
        BIO_free(pem);
        EVP_PKEY_free(key);
        free(token);
    }
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    return fclose(out) == 0 ? 0 : 1;
}
