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

#include "common/evp_once.h"
#include "common/log.h"
#include "ct/sct.h"

struct ctlog_key {
    EVP_PKEY *priv;  /* file key, or NULL with ext */
    EVP_MD_CTX *tmpl; /* with priv: EVP_DigestSignInit done once; each signature copies it */
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

/* "EC secp384r1", "RSA-2048", "ED25519": for messages. */
static const char *describe(EVP_PKEY *k, char *buf, size_t len)
{
    char group[64] = "";
    size_t n = 0;
    if (!k)
        snprintf(buf, len, "no key");
    else if (EVP_PKEY_get_base_id(k) == EVP_PKEY_EC &&
             EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &n))
        snprintf(buf, len, "EC %s", group);
    else if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA)
        snprintf(buf, len, "RSA-%d", EVP_PKEY_get_bits(k));
    else
        snprintf(buf, len, "%s", EVP_PKEY_get0_type_name(k) ? EVP_PKEY_get0_type_name(k) : "?");
    ERR_clear_error();
    return buf;
}

#define MAX_PASSWD 1024

/* The password in path, one trailing "\n" or "\r\n" removed; malloc'd (cleanse it). */
static char *read_passwd(const char *path, char *why, size_t whylen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, whylen, "cannot read the log key's password file %s: %s", path,
                 strerror(errno));
        return NULL;
    }
    char *buf = calloc(1, MAX_PASSWD + 2);
    size_t n = buf ? fread(buf, 1, MAX_PASSWD + 1, f) : 0;
    fclose(f);
    if (!buf) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    if (n > 0 && buf[n - 1] == '\r')
        buf[--n] = '\0';
    const char *problem = n == 0 ? "is empty"
                          : n > MAX_PASSWD ? "holds more than 1024 bytes"
                          : memchr(buf, '\0', n) ? "holds a NUL byte"
                                                 : NULL;
    if (problem) {
        OPENSSL_cleanse(buf, MAX_PASSWD + 2);
        free(buf);
        snprintf(why, whylen, "the log key's password file %s %s", path, problem);
        return NULL;
    }
    return buf;
}

struct passwd_arg {
    const char *passwd; /* NULL: none given */
    int asked;          /* the key is encrypted */
};

static int passwd_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    struct passwd_arg *a = u;
    a->asked = 1;
    if (!a->passwd)
        return -1;
    size_t n = strlen(a->passwd);
    if (n > (size_t)size)
        return -1;
    memcpy(buf, a->passwd, n);
    return (int)n;
}

/* A PEM private key (PKCS#8, encrypted or not, or SEC1/PKCS#1 with PEM encryption). */
static EVP_PKEY *load_key(const char *path, const char *passwd, char *why, size_t whylen)
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
    struct passwd_arg arg = {passwd, 0};
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, passwd_cb, &arg);
    fclose(f);
    ERR_clear_error();
    if (!k && arg.asked && !passwd)
        snprintf(why, whylen, "the log key %s is encrypted and no password file was given", path);
    else if (!k && arg.asked)
        snprintf(why, whylen, "cannot decrypt the log key %s: wrong password?", path);
    else if (!k)
        snprintf(why, whylen, "the log key %s is not a PEM private key (PKCS#8 \"PRIVATE KEY\" "
                              "or \"EC PRIVATE KEY\")", path);
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

ctlog_key *ctlog_key_open(const char *dir, signer *ext, const char *key_path,
                          const char *passwd_file, char *why, size_t whylen)
{
    char desc[64];
    ctlog_key *k = calloc(1, sizeof *k);
    if (!k) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (ext) {
        if (!ext->public_key || !is_p256(ext->public_key) || ext->md_nid != NID_sha256) {
            snprintf(why, whylen,
                     "the log's key must be EC P-256 (ECDSA with SHA-256); the %s signer's key "
                     "is %s",
                     ext->kind ? ext->kind : "given", describe(ext->public_key, desc, sizeof desc));
            goto fail;
        }
        k->ext = ext;
        k->pub = public_copy(ext->public_key);
    } else {
        char path[4096];
        if (key_path && *key_path) {
            snprintf(path, sizeof path, "%s", key_path);
            char *passwd = NULL;
            if (passwd_file && *passwd_file &&
                (passwd = read_passwd(passwd_file, why, whylen)) == NULL)
                goto fail;
            k->priv = load_key(path, passwd, why, whylen);
            if (passwd) {
                OPENSSL_cleanse(passwd, strlen(passwd));
                free(passwd);
            }
        } else {
            snprintf(path, sizeof path, "%s/private.pem", dir);
            k->priv = access(path, F_OK) == 0 ? load_key(path, NULL, why, whylen)
                                              : create_key(path, why, whylen);
        }
        if (!k->priv)
            goto fail;
        if (!is_p256(k->priv)) {
            snprintf(why, whylen, "the log key %s is %s; the log's key must be EC P-256", path,
                     describe(k->priv, desc, sizeof desc));
            goto fail;
        }
        k->pub = public_copy(k->priv);
        if (!(k->tmpl = EVP_MD_CTX_new()) ||
            EVP_DigestSignInit(k->tmpl, NULL, EVP_sha256(), NULL, k->priv) != 1) {
            EVP_MD_CTX_free(k->tmpl); /* signing then initialises each time */
            k->tmpl = NULL;
            ERR_clear_error();
        }
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
    return k;
fail:
    ctlog_key_free(k);
    return NULL;
}

int ctlog_key_write_public(const ctlog_key *k, const char *dir, char *why, size_t whylen)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/public.pem", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(why, whylen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    int ok = PEM_write_PUBKEY(f, k->pub) == 1;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(why, whylen, "cannot write %s", path);
        unlink(tmp);
        return -1;
    }
    return 0;
}

void ctlog_key_free(ctlog_key *k)
{
    if (!k)
        return;
    EVP_MD_CTX_free(k->tmpl);
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

int ctlog_key_in_process(const ctlog_key *k)
{
    return k && (!k->ext || k->ext->ops->in_process);
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
        int ready = c && k->tmpl && EVP_MD_CTX_copy_ex(c, k->tmpl) == 1;
        int ok = c && (ready || EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, k->priv) == 1) &&
                 evp_sign_once(c, out + 4, &sl, msg, len) == 1;
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
