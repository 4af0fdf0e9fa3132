/*
 * tests/dev_issuer/keys.c: the dev issuer's signing keys and the JWKS that publishes them.
 */
#include "dev_issuer.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/log.h"

enum key_type { KEY_RSA, KEY_EC };

static const char *type_name(enum key_type t)
{
    return t == KEY_RSA ? "RSA-2048" : "EC P-256";
}

static EVP_PKEY *generate(enum key_type t)
{
    if (t == KEY_RSA)
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* 1 when pkey is exactly the type the dev issuer publishes for t. */
static int is_type(EVP_PKEY *pkey, enum key_type t)
{
    if (t == KEY_RSA)
        return EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_bits(pkey) == 2048;
    char group[64] = "";
    return EVP_PKEY_is_a(pkey, "EC") &&
           EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                          NULL) == 1 &&
           strcmp(group, "prime256v1") == 0;
}

/* Contents of a memory BIO as a malloc'd NUL-terminated string. */
static char *bio_text(BIO *b, size_t *len)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    if (n < 0 || !data)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    if (len)
        *len = (size_t)n;
    return s;
}

static char *public_pem(EVP_PKEY *pkey)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *s = NULL;
    if (b && PEM_write_bio_PUBKEY(b, pkey) == 1)
        s = bio_text(b, NULL);
    BIO_free(b);
    return s;
}

static EVP_PKEY *load_pem(const char *path, char *why, size_t whylen)
{
    BIO *b = BIO_new_file(path, "r");
    if (!b) {
        snprintf(why, whylen, "cannot open %s", path);
        return NULL;
    }
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!pkey)
        snprintf(why, whylen, "%s is not an unencrypted PEM private key", path);
    return pkey;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Stores pkey at path (mode 0600) unless another process stored one first: then *raced = 1 and
 * nothing is changed. Returns 0 or -1 with a reason. */
static int store_pem(const char *path, EVP_PKEY *pkey, int *raced, char *why, size_t whylen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    BIO *b = BIO_new(BIO_s_mem());
    size_t len = 0;
    char *pem = NULL;
    if (b && PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL) == 1)
        pem = bio_text(b, &len);
    BIO_free(b);
    if (!pem) {
        snprintf(why, whylen, "cannot encode the key as PEM");
        return -1;
    }
    int rc = -1;
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(why, whylen, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    int ok = write_all(fd, pem, len) == 0 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        snprintf(why, whylen, "cannot write %s: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    /* link() does not replace an existing file: of two issuers starting at once, one key wins. */
    if (link(tmp, path) == 0) {
        rc = 0;
    } else if (errno == EEXIST) {
        *raced = 1;
        rc = 0;
    } else if (rename(tmp, path) == 0) { /* filesystems without hard links */
        rc = 0;
    } else {
        snprintf(why, whylen, "cannot store %s: %s", path, strerror(errno));
    }
    unlink(tmp);
out:
    OPENSSL_cleanse(pem, len);
    free(pem);
    return rc;
}

/* The key of type t from key_dir/<file>, generated and stored there when absent. */
static EVP_PKEY *load_or_create(const char *key_dir, const char *file, enum key_type t,
                                char *why, size_t whylen)
{
    char path[4096];
    if (!key_dir)
        return generate(t);
    snprintf(path, sizeof path, "%s/%s", key_dir, file);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (access(path, F_OK) == 0) {
            EVP_PKEY *pkey = load_pem(path, why, whylen);
            if (pkey && !is_type(pkey, t)) {
                snprintf(why, whylen, "%s is not an %s key", path, type_name(t));
                EVP_PKEY_free(pkey);
                pkey = NULL;
            }
            if (pkey)
                log_info(DEV_COMPONENT, "reusing the %s key in %s", type_name(t), path);
            return pkey;
        }
        EVP_PKEY *pkey = generate(t);
        if (!pkey) {
            snprintf(why, whylen, "cannot generate an %s key", type_name(t));
            return NULL;
        }
        int raced = 0;
        if (store_pem(path, pkey, &raced, why, whylen) != 0) {
            EVP_PKEY_free(pkey);
            return NULL;
        }
        if (!raced) {
            log_info(DEV_COMPONENT, "generated an %s key and stored it in %s", type_name(t), path);
            return pkey;
        }
        EVP_PKEY_free(pkey); /* another process stored its key first: use that one */
    }
    snprintf(why, whylen, "cannot settle on a key in %s", path);
    return NULL;
}

static int key_set(dev_key *dk, EVP_PKEY *pkey, const char *prefix, int generation)
{
    char *pem = public_pem(pkey);
    if (!pem)
        return -1;
    dk->pkey = pkey;
    dk->pub_pem = pem;
    snprintf(dk->kid, sizeof dk->kid, "%s-%d", prefix, generation);
    return 0;
}

static void key_clear(dev_key *dk)
{
    EVP_PKEY_free(dk->pkey);
    free(dk->pub_pem);
    memset(dk, 0, sizeof *dk);
}

/* base64url of a BIGNUM parameter, left-padded with zeros to pad bytes (0 = minimal). */
static json_t *bn_param_b64(EVP_PKEY *pkey, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    json_t *out = NULL;
    if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1)
        return NULL;
    int n = pad ? pad : BN_num_bytes(bn);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && BN_bn2binpad(bn, buf, n) == n) {
        char *s = b64url_encode(buf, (size_t)n);
        if (s)
            out = json_string(s);
        free(s);
    }
    free(buf);
    BN_free(bn);
    return out;
}

static json_t *jwk_rsa(const dev_key *dk)
{
    json_t *n = bn_param_b64(dk->pkey, OSSL_PKEY_PARAM_RSA_N, 0);
    json_t *e = bn_param_b64(dk->pkey, OSSL_PKEY_PARAM_RSA_E, 0);
    if (!n || !e) {
        json_decref(n);
        json_decref(e);
        return NULL;
    }
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o}", "kty", "RSA", "kid", dk->kid, "use", "sig",
                     "alg", "RS256", "n", n, "e", e);
}

static json_t *jwk_ec(const dev_key *dk)
{
    json_t *x = bn_param_b64(dk->pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32);
    json_t *y = bn_param_b64(dk->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    if (!x || !y) {
        json_decref(x);
        json_decref(y);
        return NULL;
    }
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o}", "kty", "EC", "kid", dk->kid, "use", "sig",
                     "alg", "ES256", "crv", "P-256", "x", x, "y", y);
}

/* Rebuilds k->jwks from k->rsa and k->ec. */
static int build_jwks(dev_keys *k)
{
    json_t *rsa = jwk_rsa(&k->rsa), *ec = jwk_ec(&k->ec);
    if (!rsa || !ec) {
        json_decref(rsa);
        json_decref(ec);
        return -1;
    }
    json_t *doc = json_pack("{s:[o,o]}", "keys", rsa, ec);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return -1;
    free(k->jwks);
    k->jwks = text;
    k->jwks_len = strlen(text);
    return 0;
}

int keys_init(dev_keys *k, const char *key_dir, char *why, size_t whylen)
{
    memset(k, 0, sizeof *k);
    k->generation = 1;
    if (key_dir && mkdir(key_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, whylen, "cannot create the key directory %s: %s", key_dir, strerror(errno));
        return -1;
    }
    EVP_PKEY *rsa = load_or_create(key_dir, "rsa.pem", KEY_RSA, why, whylen);
    if (!rsa)
        return -1;
    if (key_set(&k->rsa, rsa, "dev-rsa", 1) != 0) {
        EVP_PKEY_free(rsa);
        snprintf(why, whylen, "cannot encode the RSA public key");
        return -1;
    }
    EVP_PKEY *ec = load_or_create(key_dir, "ec.pem", KEY_EC, why, whylen);
    if (!ec) {
        keys_free(k);
        return -1;
    }
    if (key_set(&k->ec, ec, "dev-ec", 1) != 0) {
        EVP_PKEY_free(ec);
        keys_free(k);
        snprintf(why, whylen, "cannot encode the EC public key");
        return -1;
    }
    if (build_jwks(k) != 0) {
        keys_free(k);
        snprintf(why, whylen, "cannot build the JWKS");
        return -1;
    }
    return 0;
}

int keys_rotate(dev_keys *k, char *why, size_t whylen)
{
    dev_keys next;
    memset(&next, 0, sizeof next);
    int gen = k->generation + 1;
    EVP_PKEY *rsa = generate(KEY_RSA), *ec = generate(KEY_EC);
    if (!rsa || !ec || key_set(&next.rsa, rsa, "dev-rsa", gen) != 0) {
        EVP_PKEY_free(rsa);
        EVP_PKEY_free(ec);
        snprintf(why, whylen, "cannot generate the new keys");
        return -1;
    }
    if (key_set(&next.ec, ec, "dev-ec", gen) != 0 || build_jwks(&next) != 0) {
        if (!next.ec.pkey)
            EVP_PKEY_free(ec);
        keys_free(&next);
        snprintf(why, whylen, "cannot encode the new keys");
        return -1;
    }
    key_clear(&k->rsa);
    key_clear(&k->ec);
    free(k->jwks);
    k->rsa = next.rsa;
    k->ec = next.ec;
    k->jwks = next.jwks;
    k->jwks_len = next.jwks_len;
    k->generation = gen;
    log_info(DEV_COMPONENT, "rotated the keys: now %s and %s", k->rsa.kid, k->ec.kid);
    return 0;
}

EVP_PKEY *keys_other(dev_keys *k, const dev_key *published)
{
    int rsa = published == &k->rsa;
    EVP_PKEY **slot = rsa ? &k->other_rsa : &k->other_ec;
    if (!*slot)
        *slot = generate(rsa ? KEY_RSA : KEY_EC);
    return *slot;
}

void keys_free(dev_keys *k)
{
    key_clear(&k->rsa);
    key_clear(&k->ec);
    EVP_PKEY_free(k->other_rsa);
    EVP_PKEY_free(k->other_ec);
    free(k->jwks);
    memset(k, 0, sizeof *k);
}
