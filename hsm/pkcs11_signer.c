/*
 * hsm/pkcs11_signer.c: the pkcs11ca backend (design and reasons: hsm/pkcs11_signer.h).
 */
#include "hsm/pkcs11_signer.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "hsm/pkcs11_chain.h"
#include "hsm/pkcs11_config.h"
#include "hsm/pkcs11_token.h"

#define DEFAULT_MAX_SESSIONS 64
#define MAX_KEY_CANDIDATES 16

static const unsigned char probe[] = "fulcrum pkcs11ca key check";

struct p11_impl {
    pthread_rwlock_t lock; /* shared: signing; exclusive: reconnect, destroy */

    /* Fixed after construction. */
    struct pkcs11_config cfg; /* token selection (its Pin is cleared right after reading) */
    char *pin;                /* kept to log in again; cleansed on destroy */
    const char *pin_source;
    char *key_label;
    int key_only;             /* signer_pkcs11_key_new: no certificate */
    EVP_PKEY *ca_pub;         /* the key signatures must verify with: the issuing certificate's,
                                 or (key-only) the token's public key */
    EVP_MD *md;
    CK_KEY_TYPE key_type;
    long long wait_ns;        /* PoolWaitTimeout */

    /* The connection: written only under the exclusive lock. */
    p11_module mod;
    int up;
    unsigned long generation; /* +1 at every reconnect attempt */
    int pin_rejected;
    CK_SLOT_ID slot;
    char token_label[64];
    CK_SESSION_HANDLE login_session;
    int has_login_session;
    CK_OBJECT_HANDLE key;
    char last_error[256];

    /* The signing sessions. */
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    CK_SESSION_HANDLE *idle;
    size_t nidle, open, max;
};

/* The generation this thread saw when its last signature failed (read by reconnect). */
static _Thread_local struct {
    const struct p11_impl *impl;
    unsigned long generation;
} tl_seen;

static int pin_refused(CK_RV rv)
{
    return rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED || rv == CKR_PIN_EXPIRED ||
           rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE;
}

/* ---- the session pool ---- */

enum take_result { TAKE_OK, TAKE_MODULE_ERROR, TAKE_TIMEOUT };

static enum take_result pool_take(struct p11_impl *p, CK_SESSION_HANDLE *s, CK_RV *rv)
{
    struct timespec deadline;
    if (p->wait_ns > 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        long long ns = deadline.tv_nsec + p->wait_ns % 1000000000LL;
        deadline.tv_sec += (time_t)(p->wait_ns / 1000000000LL + ns / 1000000000LL);
        deadline.tv_nsec = (long)(ns % 1000000000LL);
    }
    pthread_mutex_lock(&p->pool_mu);
    for (;;) {
        if (p->nidle > 0) {
            *s = p->idle[--p->nidle];
            pthread_mutex_unlock(&p->pool_mu);
            return TAKE_OK;
        }
        if (p->open < p->max) {
            p->open++;
            pthread_mutex_unlock(&p->pool_mu);
            *rv = p11_open_session(&p->mod, p->slot, CKF_SERIAL_SESSION, s);
            if (*rv == CKR_OK)
                return TAKE_OK;
            pthread_mutex_lock(&p->pool_mu);
            p->open--;
            pthread_cond_signal(&p->pool_cv);
            pthread_mutex_unlock(&p->pool_mu);
            return TAKE_MODULE_ERROR;
        }
        int rc = p->wait_ns > 0 ? pthread_cond_timedwait(&p->pool_cv, &p->pool_mu, &deadline)
                                : pthread_cond_wait(&p->pool_cv, &p->pool_mu);
        if (rc == ETIMEDOUT && p->nidle == 0) {
            pthread_mutex_unlock(&p->pool_mu);
            return TAKE_TIMEOUT;
        }
    }
}

static void pool_put(struct p11_impl *p, CK_SESSION_HANDLE s)
{
    pthread_mutex_lock(&p->pool_mu);
    p->idle[p->nidle++] = s;
    pthread_cond_signal(&p->pool_cv);
    pthread_mutex_unlock(&p->pool_mu);
}

static void pool_discard(struct p11_impl *p, CK_SESSION_HANDLE s)
{
    p11_close_session(&p->mod, s); /* it failed; whatever this says */
    pthread_mutex_lock(&p->pool_mu);
    p->open--;
    pthread_cond_signal(&p->pool_cv);
    pthread_mutex_unlock(&p->pool_mu);
}

/* ---- the connection (exclusive lock held, or in the constructor) ---- */

static int verifies(const struct p11_impl *p, const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, p->md, NULL, p->ca_pub) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, probe, sizeof probe - 1) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* Selects the token, opens the login session and logs in. */
static int open_and_login(struct p11_impl *p, char *why, size_t whylen)
{
    CK_TOKEN_INFO info;
    if (p11_select_token(&p->mod, &p->cfg, &p->slot, &info, why, whylen) != 0)
        return -1;
    p11_token_label(&info, p->token_label, sizeof p->token_label);
    CK_RV rv = p11_open_session(&p->mod, p->slot, CKF_SERIAL_SESSION, &p->login_session);
    if (rv != CKR_OK) {
        snprintf(why, whylen, "C_OpenSession on token \"%s\": %s", p->token_label, p11_rv_name(rv));
        return -1;
    }
    p->has_login_session = 1;
    if (p->cfg.login_not_supported)
        return 0;
    if (p->pin_rejected) {
        snprintf(why, whylen, "token \"%s\" rejected the PIN earlier; not trying it again",
                 p->token_label);
        return -1;
    }
    rv = p11_login(&p->mod, p->login_session, p->pin);
    if (rv != CKR_OK) {
        if (pin_refused(rv))
            p->pin_rejected = 1;
        snprintf(why, whylen, "C_Login on token \"%s\" (PIN from %s): %s", p->token_label,
                 p->pin_source ? p->pin_source : "nowhere", p11_rv_name(rv));
        return -1;
    }
    return 0;
}

/* Finds the private key labelled key_label whose signatures verify with the CA key. */
static int find_key(struct p11_impl *p, char *why, size_t whylen)
{
    CK_OBJECT_HANDLE cand[MAX_KEY_CANDIDATES];
    CK_ULONG n = 0;
    CK_RV rv = p11_find(&p->mod, p->login_session, CKO_PRIVATE_KEY, NULL, 0, p->key_label, cand,
                        MAX_KEY_CANDIDATES, &n);
    if (rv != CKR_OK) {
        snprintf(why, whylen, "searching token \"%s\" for the private key labelled \"%s\": %s",
                 p->token_label, p->key_label, p11_rv_name(rv));
        return -1;
    }
    if (n == 0) {
        snprintf(why, whylen, "no private key labelled \"%s\" on token \"%s\"%s", p->key_label,
                 p->token_label, p->cfg.login_not_supported ? " (LoginNotSupported is set)" : "");
        return -1;
    }
    char last[200] = "";
    for (CK_ULONG i = 0; i < n; i++) {
        CK_KEY_TYPE kt;
        if ((rv = p11_key_type(&p->mod, p->login_session, cand[i], &kt)) != CKR_OK) {
            snprintf(last, sizeof last, "CKA_KEY_TYPE: %s", p11_rv_name(rv));
            continue;
        }
        if (kt != p->key_type) {
            snprintf(last, sizeof last, "its key type (0x%lx) is not the %s", (unsigned long)kt,
                     p->key_only ? "public key's" : "certificate's");
            continue;
        }
        unsigned char sig[1024];
        size_t siglen = sizeof sig;
        char reason[160];
        if (p11_sign(&p->mod, p->login_session, cand[i], kt, p->md, probe, sizeof probe - 1, sig,
                     &siglen, &rv, reason, sizeof reason) != 0) {
            snprintf(last, sizeof last, "test signature: %s", reason);
            if (rv != CKR_OK && p11_rv_is_connection_loss(rv)) {
                snprintf(why, whylen, "token \"%s\", key \"%s\": %s", p->token_label,
                         p->key_label, last);
                return -1;
            }
            continue;
        }
        if (verifies(p, sig, siglen)) {
            p->key = cand[i];
            return 0;
        }
        snprintf(last, sizeof last, "its signature does not verify with the %s",
                 p->key_only ? "public key" : "CA certificate's key");
    }
    snprintf(why, whylen,
             "the private key labelled \"%s\" on token \"%s\" (%lu found) does not match the %s: "
             "%s",
             p->key_label, p->token_label, (unsigned long)n,
             p->key_only ? "public key read at start" : "CA certificate", last);
    return -1;
}

/* Closes this signer's sessions (exclusive lock held: every open signing session is idle). Not
 * C_CloseAllSessions: another signer of this process may use the same token. */
static void drop_connection(struct p11_impl *p)
{
    for (size_t i = 0; i < p->nidle; i++)
        p11_close_session(&p->mod, p->idle[i]);
    if (p->has_login_session)
        p11_close_session(&p->mod, p->login_session);
    p->has_login_session = 0;
    p->up = 0;
    pthread_mutex_lock(&p->pool_mu);
    p->nidle = 0;
    p->open = 0;
    pthread_mutex_unlock(&p->pool_mu);
}

/* ---- signer ops ---- */

static enum signer_status p11_sign_op(void *impl, const unsigned char *tbs, size_t tbslen,
                                      unsigned char *sig, size_t *siglen, char *why,
                                      size_t whylen)
{
    struct p11_impl *p = impl;
    enum signer_status st = SIGNER_FAIL;
    CK_SESSION_HANDLE s;
    CK_RV rv = CKR_OK;
    pthread_rwlock_rdlock(&p->lock);
    unsigned long gen = p->generation;
    if (!p->up) {
        snprintf(why, whylen, "HSM unavailable: %s", p->last_error);
        st = SIGNER_RETRY;
        goto out;
    }
    switch (pool_take(p, &s, &rv)) {
    case TAKE_OK: break;
    case TAKE_TIMEOUT:
        snprintf(why, whylen, "no PKCS#11 session became free within PoolWaitTimeout (%lld ms)",
                 p->wait_ns / 1000000);
        goto out;
    default:
        snprintf(why, whylen, "C_OpenSession: %s", p11_rv_name(rv));
        st = p11_rv_is_connection_loss(rv) ? SIGNER_RETRY : SIGNER_FAIL;
        goto out;
    }
    if (p11_sign(&p->mod, s, p->key, p->key_type, p->md, tbs, tbslen, sig, siglen, &rv, why,
                 whylen) == 0) {
        pool_put(p, s);
        st = SIGNER_OK;
    } else if (rv != CKR_OK && p11_rv_is_connection_loss(rv)) {
        pool_discard(p, s);
        st = SIGNER_RETRY;
    } else {
        pool_put(p, s);
    }
out:
    if (st != SIGNER_OK) {
        tl_seen.impl = p;
        tl_seen.generation = gen;
    }
    pthread_rwlock_unlock(&p->lock);
    return st;
}

static int p11_reconnect_op(void *impl, char *why, size_t whylen)
{
    struct p11_impl *p = impl;
    int rc = 0;
    pthread_rwlock_wrlock(&p->lock);
    if (tl_seen.impl == p && tl_seen.generation != p->generation) {
        /* Someone reconnected (or tried) after this thread failed: use that outcome. */
        if (!p->up) {
            snprintf(why, whylen, "HSM unavailable: %s", p->last_error);
            rc = -1;
        }
        pthread_rwlock_unlock(&p->lock);
        return rc;
    }
    drop_connection(p);
    char reason[sizeof p->last_error] = "";
    if (p->pin_rejected) {
        snprintf(reason, sizeof reason, "token \"%s\" rejected the PIN; restart with the right one",
                 p->token_label);
        rc = -1;
    } else if (p11_module_reinit(&p->mod, reason, sizeof reason) != 0 ||
               open_and_login(p, reason, sizeof reason) != 0 ||
               find_key(p, reason, sizeof reason) != 0) {
        rc = -1;
    }
    p->generation++;
    if (rc == 0) {
        p->up = 1;
        p->last_error[0] = '\0';
        log_warn("pkcs11", "reconnected to token \"%s\" (connection %lu)", p->token_label,
                 p->generation);
    } else {
        snprintf(p->last_error, sizeof p->last_error, "%s", reason);
        snprintf(why, whylen, "HSM unavailable: %s", reason);
        log_error("pkcs11", "reconnecting to the token failed: %s", reason);
    }
    pthread_rwlock_unlock(&p->lock);
    return rc;
}

static void p11_destroy_op(void *impl)
{
    struct p11_impl *p = impl;
    if (!p)
        return;
    drop_connection(p);         /* the module may stay loaded for another signer */
    p11_module_unload(&p->mod); /* C_Finalize when this was its last user */
    pkcs11_config_clear(&p->cfg);
    pkcs11_secret_free(p->pin);
    free(p->key_label);
    EVP_PKEY_free(p->ca_pub);
    EVP_MD_free(p->md);
    free(p->idle);
    pthread_cond_destroy(&p->pool_cv);
    pthread_mutex_destroy(&p->pool_mu);
    pthread_rwlock_destroy(&p->lock);
    free(p);
}

static const struct signer_ops p11_ops = {
    .sign = p11_sign_op,
    .reconnect = p11_reconnect_op,
    .destroy = p11_destroy_op,
};

/* ---- construction ---- */

static struct p11_impl *impl_new(void)
{
    struct p11_impl *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_rwlockattr_t ra;
    pthread_condattr_t ca;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&p->lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->pool_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->pool_mu, NULL);
    return p;
}

static void hex(const unsigned char *b, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 3 <= outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%02x", b[i]);
    if (outlen)
        out[o < outlen ? o : outlen - 1] = '\0';
}

/* The issuing certificate: by CKA_ID from the token, or from a PEM file. */
static X509 *issuing_cert(struct p11_impl *p, const struct pkcs11_options *o, char *why,
                          size_t whylen)
{
    if (o->ca_cert_path && *o->ca_cert_path) {
        STACK_OF(X509) *certs = pkcs11_chain_read_pem(o->ca_cert_path, why, whylen);
        X509 *x = certs ? sk_X509_shift(certs) : NULL;
        sk_X509_pop_free(certs, X509_free);
        return x;
    }
    const char *id = o->caroot_id;
    size_t idlen = strlen(id);
    char idhex[130];
    hex((const unsigned char *)id, idlen < 64 ? idlen : 64, idhex, sizeof idhex);
    CK_OBJECT_HANDLE obj;
    CK_ULONG n = 0;
    CK_RV rv = p11_find(&p->mod, p->login_session, CKO_CERTIFICATE, id, idlen, NULL, &obj, 1, &n);
    if (rv != CKR_OK) {
        snprintf(why, whylen, "searching token \"%s\" for the certificate with CKA_ID \"%s\": %s",
                 p->token_label, id, p11_rv_name(rv));
        return NULL;
    }
    if (n == 0) {
        snprintf(why, whylen,
                 "no certificate with CKA_ID \"%s\" (the flag's bytes, hex %s) on token \"%s\"",
                 id, idhex, p->token_label);
        return NULL;
    }
    char reason[200];
    X509 *x = p11_read_cert(&p->mod, p->login_session, obj, reason, sizeof reason);
    if (!x)
        snprintf(why, whylen, "certificate with CKA_ID \"%s\" on token \"%s\": %s", id,
                 p->token_label, reason);
    return x;
}

/* [issuing] + the certificates of chain_path above it. Takes issuing. */
static STACK_OF(X509) *build_chain(X509 *issuing, const char *chain_path, char *why, size_t whylen)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    if (!chain || !sk_X509_push(chain, issuing)) {
        sk_X509_free(chain);
        X509_free(issuing);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (!chain_path || !*chain_path)
        return chain;
    STACK_OF(X509) *above = pkcs11_chain_read_pem(chain_path, why, whylen);
    if (!above) {
        sk_X509_pop_free(chain, X509_free);
        return NULL;
    }
    if (X509_cmp(sk_X509_value(above, 0), issuing) == 0) /* a full chain file */
        X509_free(sk_X509_shift(above));
    while (sk_X509_num(above) > 0) {
        X509 *x = sk_X509_shift(above);
        if (!sk_X509_push(chain, x)) {
            X509_free(x);
            sk_X509_pop_free(above, X509_free);
            sk_X509_pop_free(chain, X509_free);
            snprintf(why, whylen, "out of memory");
            return NULL;
        }
    }
    sk_X509_free(above);
    return chain;
}

static size_t session_limit(const struct p11_impl *p)
{
    size_t max = p->cfg.max_sessions > 0 ? (size_t)p->cfg.max_sessions : DEFAULT_MAX_SESSIONS;
    CK_TOKEN_INFO info;
    if (p->mod.f->C_GetTokenInfo(p->slot, &info) == CKR_OK &&
        info.ulMaxSessionCount != CK_EFFECTIVELY_INFINITE &&
        info.ulMaxSessionCount != CK_UNAVAILABLE_INFORMATION && info.ulMaxSessionCount < max + 1)
        max = info.ulMaxSessionCount > 1 ? (size_t)info.ulMaxSessionCount - 1 : 1;
    return max;
}

static const char *key_description(EVP_PKEY *k, char *buf, size_t len)
{
    if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA) {
        snprintf(buf, len, "RSA-%d", EVP_PKEY_get_bits(k));
    } else {
        char group[64] = "?";
        size_t glen = 0;
        EVP_PKEY_get_group_name(k, group, sizeof group, &glen);
        snprintf(buf, len, "EC %s", group);
    }
    return buf;
}

/* Key-only mode: the public key of the key pair labelled key_label (see the header). */
static EVP_PKEY *token_public_key(struct p11_impl *p, char *why, size_t whylen)
{
    CK_OBJECT_HANDLE objs[2];
    CK_ULONG n = 0;
    char reason[256] = "";
    CK_RV rv = p11_find(&p->mod, p->login_session, CKO_PUBLIC_KEY, NULL, 0, p->key_label, objs,
                        2, &n);
    if (rv != CKR_OK) {
        snprintf(why, whylen, "searching token \"%s\" for the public key labelled \"%s\": %s",
                 p->token_label, p->key_label, p11_rv_name(rv));
        return NULL;
    }
    if (n > 1) {
        snprintf(why, whylen, "token \"%s\" holds several public keys labelled \"%s\"; remove the "
                              "extra ones or choose another label", p->token_label, p->key_label);
        return NULL;
    }
    if (n == 1) {
        EVP_PKEY *k = p11_read_public_key(&p->mod, p->login_session, objs[0], reason,
                                          sizeof reason);
        if (!k)
            snprintf(why, whylen, "public key labelled \"%s\" on token \"%s\": %s", p->key_label,
                     p->token_label, reason);
        return k;
    }
    /* No public key object: the private key's own public attributes. */
    rv = p11_find(&p->mod, p->login_session, CKO_PRIVATE_KEY, NULL, 0, p->key_label, objs, 2, &n);
    if (rv != CKR_OK || n != 1) {
        if (rv != CKR_OK)
            snprintf(why, whylen, "searching token \"%s\" for the private key labelled \"%s\": %s",
                     p->token_label, p->key_label, p11_rv_name(rv));
        else if (n == 0)
            snprintf(why, whylen, "no private key labelled \"%s\" on token \"%s\"%s", p->key_label,
                     p->token_label,
                     p->cfg.login_not_supported ? " (LoginNotSupported is set)" : "");
        else
            snprintf(why, whylen, "token \"%s\" holds several private keys labelled \"%s\" and no "
                                  "public key with that label", p->token_label, p->key_label);
        return NULL;
    }
    EVP_PKEY *k = p11_read_public_key(&p->mod, p->login_session, objs[0], reason, sizeof reason);
    if (k)
        return k;
    unsigned char *spki = NULL;
    CK_ULONG len = 0;
    if (p11_get_attr(&p->mod, p->login_session, objs[0], CKA_PUBLIC_KEY_INFO, &spki, &len) ==
            CKR_OK &&
        len > 0) {
        const unsigned char *q = spki;
        k = d2i_PUBKEY(NULL, &q, (long)len);
        if (k && q != spki + len) {
            EVP_PKEY_free(k);
            k = NULL;
        }
        ERR_clear_error();
    }
    free(spki);
    if (!k)
        snprintf(why, whylen,
                 "no public key labelled \"%s\" on token \"%s\", and its private key shows no "
                 "usable public half (CKA_EC_POINT: %s; CKA_PUBLIC_KEY_INFO: none)",
                 p->key_label, p->token_label, reason);
    return k;
}

/* Common to both constructors: config, PIN, module, token, log-in. */
static int connect_first(struct p11_impl *p, const char *config_path, const char *pin_file,
                         char *reason, size_t rlen)
{
    if (pkcs11_config_load(config_path, &p->cfg, reason, rlen) != 0)
        return -1;
    int prc = pkcs11_pin_resolve(&p->cfg, pin_file, &p->pin, &p->pin_source, reason, rlen);
    /* One copy of the PIN is enough: drop the config's. */
    pkcs11_secret_free(p->cfg.pin);
    p->cfg.pin = NULL;
    if (prc < 0)
        return -1;
    if (prc == 1 && !p->cfg.login_not_supported) {
        snprintf(reason, rlen,
                 "no PIN: give --pkcs11-pin-file, a systemd credential \"%s\", or Pin in %s (or "
                 "set LoginNotSupported there)",
                 PKCS11_PIN_CREDENTIAL, config_path);
        return -1;
    }
    p->wait_ns = p->cfg.pool_wait_timeout_ns;
    if (p11_module_load(&p->mod, p->cfg.path, reason, rlen) != 0 ||
        open_and_login(p, reason, rlen) != 0)
        return -1;
    return 0;
}

/* Common to both constructors, once s->public_key is set: algorithm, key, pool, self-test. */
static int finish(signer *s, struct p11_impl *p, char *reason, size_t rlen)
{
    if (signer_init_algorithm(s, reason, rlen) != 0)
        return -1;
    if ((p->ca_pub = EVP_PKEY_dup(s->public_key)) == NULL ||
        (p->md = EVP_MD_fetch(NULL, OBJ_nid2sn(s->md_nid), NULL)) == NULL) {
        snprintf(reason, rlen, "digest %s is not available", OBJ_nid2sn(s->md_nid));
        return -1;
    }
    switch (EVP_PKEY_get_base_id(p->ca_pub)) {
    case EVP_PKEY_EC: p->key_type = CKK_EC; break;
    case EVP_PKEY_RSA: p->key_type = CKK_RSA; break;
    default:
        snprintf(reason, rlen, "key type %s cannot be used through PKCS#11 here",
                 EVP_PKEY_get0_type_name(p->ca_pub));
        return -1;
    }
    if (find_key(p, reason, rlen) != 0)
        return -1;
    p->max = session_limit(p);
    if ((p->idle = calloc(p->max, sizeof *p->idle)) == NULL) {
        snprintf(reason, rlen, "out of memory");
        return -1;
    }
    p->up = 1;
    p->generation = 1;

    unsigned char *sig = malloc(s->max_sig_len);
    size_t siglen = s->max_sig_len;
    char r2[256] = "out of memory";
    int rc = sig ? signer_sign(s, probe, sizeof probe - 1, sig, &siglen, r2, sizeof r2) : -1;
    free(sig);
    if (rc != 0) {
        snprintf(reason, rlen, "self-test signature failed: %s", r2);
        return -1;
    }
    return 0;
}

static signer *signer_alloc(const char *kind, struct p11_impl **pp)
{
    signer *s = calloc(1, sizeof *s);
    struct p11_impl *p = impl_new();
    if (!s || !p) {
        free(s);
        if (p)
            p11_destroy_op(p);
        return NULL;
    }
    s->ops = &p11_ops;
    s->impl = p;
    s->kind = kind;
    *pp = p;
    return s;
}

signer *signer_pkcs11_new(const struct pkcs11_options *o, char *why, size_t whylen)
{
    char reason[768] = "";
    struct p11_impl *p = NULL;
    signer *s = signer_alloc("pkcs11ca", &p);
    if (!s) {
        snprintf(why, whylen, "pkcs11ca: out of memory");
        return NULL;
    }

    const char *config_path =
        o->config_path && *o->config_path ? o->config_path : PKCS11_DEFAULT_CONFIG_PATH;
    const char *label = o->key_label && *o->key_label ? o->key_label : PKCS11_DEFAULT_KEY_LABEL;
    int from_file = o->ca_cert_path && *o->ca_cert_path;
    if (!from_file && (!o->caroot_id || !*o->caroot_id)) {
        snprintf(reason, sizeof reason, "--hsm-caroot-id is required");
        goto fail;
    }
    if ((p->key_label = strdup(label)) == NULL) {
        snprintf(reason, sizeof reason, "out of memory");
        goto fail;
    }
    if (connect_first(p, config_path, o->pin_file, reason, sizeof reason) != 0)
        goto fail;

    X509 *issuing = issuing_cert(p, o, reason, sizeof reason);
    if (!issuing)
        goto fail;
    if ((s->chain = build_chain(issuing, o->chain_path, reason, sizeof reason)) == NULL)
        goto fail;
    char origin[600];
    if (from_file)
        snprintf(origin, sizeof origin, "the chain of %s%s%s", o->ca_cert_path,
                 o->chain_path && *o->chain_path ? " and " : "",
                 o->chain_path && *o->chain_path ? o->chain_path : "");
    else
        snprintf(origin, sizeof origin, "the chain of token certificate \"%s\"%s%s", o->caroot_id,
                 o->chain_path && *o->chain_path ? " and " : "",
                 o->chain_path && *o->chain_path ? o->chain_path : "");
    if (pkcs11_chain_validate(s->chain, origin, reason, sizeof reason) != 0)
        goto fail;

    s->public_key = X509_get_pubkey(sk_X509_value(s->chain, 0));
    if (!s->public_key) {
        snprintf(reason, sizeof reason, "the issuing certificate has no usable public key");
        goto fail;
    }
    if (finish(s, p, reason, sizeof reason) != 0)
        goto fail;
    char kd[64];
    log_info("pkcs11",
             "pkcs11ca: module %s, token \"%s\" (slot %lu), key \"%s\" (%s), chain of %d, PIN from "
             "%s, up to %zu signing sessions",
             p->cfg.path, p->token_label, (unsigned long)p->slot, p->key_label,
             key_description(p->ca_pub, kd, sizeof kd), sk_X509_num(s->chain),
             p->pin_source ? p->pin_source : "nowhere (LoginNotSupported)", p->max);
    return s;

fail:
    ERR_clear_error();
    snprintf(why, whylen, "pkcs11ca: %s", reason);
    signer_free(s);
    return NULL;
}

signer *signer_pkcs11_key_new(const struct pkcs11_options *o, char *why, size_t whylen)
{
    char reason[768] = "";
    struct p11_impl *p = NULL;
    if (!o->key_label || !*o->key_label) {
        snprintf(why, whylen, "pkcs11: the key's label (--hsm-key-label) is required");
        return NULL;
    }
    signer *s = signer_alloc("pkcs11", &p);
    if (!s) {
        snprintf(why, whylen, "pkcs11: out of memory");
        return NULL;
    }
    const char *config_path =
        o->config_path && *o->config_path ? o->config_path : PKCS11_DEFAULT_CONFIG_PATH;
    p->key_only = 1;
    if ((p->key_label = strdup(o->key_label)) == NULL ||
        (s->chain = sk_X509_new_null()) == NULL) {
        snprintf(reason, sizeof reason, "out of memory");
        goto fail;
    }
    if (connect_first(p, config_path, o->pin_file, reason, sizeof reason) != 0)
        goto fail;
    if ((s->public_key = token_public_key(p, reason, sizeof reason)) == NULL)
        goto fail;
    if (finish(s, p, reason, sizeof reason) != 0)
        goto fail;
    char kd[64];
    log_info("pkcs11",
             "pkcs11: module %s, token \"%s\" (slot %lu), key \"%s\" (%s, no certificate), PIN "
             "from %s, up to %zu signing sessions",
             p->cfg.path, p->token_label, (unsigned long)p->slot, p->key_label,
             key_description(p->ca_pub, kd, sizeof kd),
             p->pin_source ? p->pin_source : "nowhere (LoginNotSupported)", p->max);
    return s;

fail:
    ERR_clear_error();
    snprintf(why, whylen, "pkcs11 key \"%s\": %s", o->key_label, reason);
    signer_free(s);
    return NULL;
}
