#include "ct/log_key.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "ct/sct.h"

struct ctlog_key {
    EVP_PKEY *priv;  /* file key, or NULL with ext */
    signer *ext;     /* borrowed */
    EVP_PKEY *pub;   /* owned */
    unsigned char id[32];
};

static int is_p256(EVP_PKEY *k)
{
    if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC)
        return 0;
    char curve[64] = "";
    size_t n = 0;
    if (!EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof curve, &n))
        return 0;
    return strcmp(curve, "prime256v1") == 0 || strcmp(curve, "P-256") == 0;
}

static EVP_PKEY *load_key(const char *path, char *why, size_t whylen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, whylen, "cannot read the log key %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        log_warn("ctlog", "the log key %s is readable by group or others (mode %03o)", path,
                 (unsigned)(st.st_mode & 0777));
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
    fclose(f);
    ERR_clear_error();
    if (!k)
        snprintf(why, whylen, "the log key %s is not a PEM private key", path);
    return k;
}

static EVP_PKEY *create_key(const char *path, char *why, size_t whylen)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (!k) {
        snprintf(why, whylen, "cannot generate a P-256 log key");
        return NULL;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        snprintf(why, whylen, "cannot create the log key %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        EVP_PKEY_free(k);
        return NULL;
    }
    int ok = PEM_write_PKCS8PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        snprintf(why, whylen, "cannot write the log key %s", path);
        unlink(path);
        EVP_PKEY_free(k);
        return NULL;
    }
    log_info("ctlog", "created a new P-256 log key in %s", path);
    return k;
}

static int write_public(const char *dir, EVP_PKEY *pub, char *why, size_t whylen)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/public.pem", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(why, whylen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    int ok = PEM_write_PUBKEY(f, pub) == 1;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(why, whylen, "cannot write %s", path);
        unlink(tmp);
        return -1;
    }
    return 0;
}

static EVP_PKEY *public_copy(EVP_PKEY *k)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);
    if (n <= 0)
        return NULL;
    const unsigned char *p = der;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, n);
    OPENSSL_free(der);
    return pub;
}

ctlog_key *ctlog_key_open(const char *dir, signer *ext, char *why, size_t whylen)
{
    ctlog_key *k = calloc(1, sizeof *k);
    if (!k) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (ext) {
        if (!ext->public_key || !is_p256(ext->public_key) || ext->md_nid != NID_sha256) {
            snprintf(why, whylen, "the log's signer must hold an EC P-256 key used with SHA-256");
            goto fail;
        }
        k->ext = ext;
        k->pub = public_copy(ext->public_key);
    } else {
        char path[4096];
        snprintf(path, sizeof path, "%s/private.pem", dir);
        k->priv = access(path, F_OK) == 0 ? load_key(path, why, whylen)
                                          : create_key(path, why, whylen);
        if (!k->priv)
            goto fail;
        if (!is_p256(k->priv)) {
            snprintf(why, whylen, "the log key %s is not an EC P-256 key", path);
            goto fail;
        }
        k->pub = public_copy(k->priv);
    }
    if (!k->pub) {
        snprintf(why, whylen, "cannot encode the log's public key");
        goto fail;
    }
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k->pub, &der);
    if (n <= 0) {
        snprintf(why, whylen, "cannot encode the log's public key");
        goto fail;
    }
    SHA256(der, (size_t)n, k->id);
    OPENSSL_free(der);
    if (write_public(dir, k->pub, why, whylen) != 0)
        goto fail;
    return k;
fail:
    ctlog_key_free(k);
    return NULL;
}

void ctlog_key_free(ctlog_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->priv);
    EVP_PKEY_free(k->pub);
    free(k);
}

EVP_PKEY *ctlog_key_public(const ctlog_key *k) { return k->pub; }

const unsigned char *ctlog_key_id(const ctlog_key *k) { return k->id; }

int ctlog_ds_verify(EVP_PKEY *pub, const unsigned char *msg, size_t len,
                    const unsigned char *ds, size_t dslen)
{
    if (dslen < 4 || ds[0] != 4 || ds[1] != 3)
        return 0;
    size_t sl = ((size_t)ds[2] << 8) | ds[3];
    if (sl != dslen - 4)
        return 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, pub) == 1 &&
             EVP_DigestVerify(c, ds + 4, sl, msg, len) == 1;
    EVP_MD_CTX_free(c);
    ERR_clear_error();
    return ok;
}

int ctlog_key_sign(ctlog_key *k, const unsigned char *msg, size_t len, int verify,
                   unsigned char *out, size_t *outlen, char *why, size_t whylen)
{
    size_t sl = CTLOG_DS_MAX - 4;
    if (k->ext) {
        if (signer_sign(k->ext, msg, len, out + 4, &sl, why, whylen) != 0)
            return -1;
    } else {
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        int ok = c && EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, k->priv) == 1 &&
                 EVP_DigestSign(c, out + 4, &sl, msg, len) == 1;
        EVP_MD_CTX_free(c);
        if (!ok) {
            ERR_clear_error();
            snprintf(why, whylen, "ECDSA signing with the log key failed");
            return -1;
        }
    }
    out[0] = 4; /* sha256 */
    out[1] = 3; /* ecdsa */
    out[2] = (unsigned char)(sl >> 8);
    out[3] = (unsigned char)sl;
    *outlen = sl + 4;
    if (verify && !ctlog_ds_verify(k->pub, msg, len, out, *outlen)) {
        snprintf(why, whylen, "the log key's signature does not verify with its public key");
        return -1;
    }
    return 0;
}
