/*
 * hsm/pkcs11_token.c: a PKCS#11 module driven through its function list.
 */
#include "hsm/pkcs11_token.h"

#include "hsm/pkcs11_config.h"

#include <dlfcn.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the module ---- */

/* Who opened a session handle (p11_open_session), so that a user never closes a handle that
 * died and was handed to another user (modules reuse handle numbers). */
struct p11_session_owner {
    CK_SESSION_HANDLE h;
    const p11_module *owner;
};

/* One entry per loaded library (dlopen handle), guarded by g_modules_mu. */
struct p11_shared {
    void *dl;
    unsigned users; /* p11_modules of this process that have it loaded */
    int ours;       /* one of them initialised it: the last unload finalizes it */
    struct p11_session_owner *sess;
    size_t nsess, capsess;
    struct p11_shared *next;
};

static pthread_mutex_t g_modules_mu = PTHREAD_MUTEX_INITIALIZER;
static struct p11_shared *g_modules;

static CK_RV initialize(CK_FUNCTION_LIST_PTR f)
{
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    return f->C_Initialize(&args);
}

int p11_module_load(p11_module *m, const char *path, char *why, size_t whylen)
{
    memset(m, 0, sizeof *m);
    dlerror();
    m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!m->dl) {
        const char *e = dlerror();
        snprintf(why, whylen, "cannot load the PKCS#11 module %s: %s", path, e ? e : "dlopen failed");
        return -1;
    }
    CK_C_GetFunctionList get = NULL;
    *(void **)&get = dlsym(m->dl, "C_GetFunctionList");
    if (!get) {
        snprintf(why, whylen, "%s is not a PKCS#11 module (no C_GetFunctionList)", path);
        p11_module_unload(m);
        return -1;
    }
    CK_RV rv = get(&m->f);
    if (rv != CKR_OK || !m->f) {
        snprintf(why, whylen, "%s: C_GetFunctionList failed: %s", path, p11_rv_name(rv));
        m->f = NULL;
        p11_module_unload(m);
        return -1;
    }
    pthread_mutex_lock(&g_modules_mu);
    struct p11_shared *sh = g_modules;
    while (sh && sh->dl != m->dl)
        sh = sh->next;
    if (sh) { /* already loaded and initialised in this process */
        sh->users++;
        m->shared = sh;
        pthread_mutex_unlock(&g_modules_mu);
        return 0;
    }
    if ((sh = calloc(1, sizeof *sh)) == NULL) {
        pthread_mutex_unlock(&g_modules_mu);
        snprintf(why, whylen, "%s: out of memory", path);
        m->f = NULL;
        p11_module_unload(m);
        return -1;
    }
    rv = initialize(m->f);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        pthread_mutex_unlock(&g_modules_mu);
        free(sh);
        snprintf(why, whylen, "%s: C_Initialize failed: %s", path, p11_rv_name(rv));
        m->f = NULL;
        p11_module_unload(m);
        return -1;
    }
    m->initialized = sh->ours = rv == CKR_OK;
    sh->dl = m->dl;
    sh->users = 1;
    sh->next = g_modules;
    g_modules = sh;
    m->shared = sh;
    pthread_mutex_unlock(&g_modules_mu);
    return 0;
}

int p11_module_reinit(p11_module *m, char *why, size_t whylen)
{
    if (!m->f || !m->shared) {
        snprintf(why, whylen, "the PKCS#11 module is not loaded");
        return -1;
    }
    pthread_mutex_lock(&g_modules_mu);
    struct p11_shared *sh = m->shared;
    if (sh->users > 1) { /* another user's calls may be in progress: leave the module be */
        pthread_mutex_unlock(&g_modules_mu);
        return 0;
    }
    if (sh->ours)
        m->f->C_Finalize(NULL); /* whatever it says: we start over */
    sh->nsess = 0;              /* every session is gone */
    CK_RV rv = initialize(m->f);
    sh->ours = m->initialized = rv == CKR_OK;
    pthread_mutex_unlock(&g_modules_mu);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        snprintf(why, whylen, "C_Initialize failed: %s", p11_rv_name(rv));
        return -1;
    }
    return 0;
}

void p11_module_unload(p11_module *m)
{
    if (!m)
        return;
    if (m->shared) {
        pthread_mutex_lock(&g_modules_mu);
        struct p11_shared *sh = m->shared;
        for (size_t i = sh->nsess; i-- > 0;) /* forget this user's sessions */
            if (sh->sess[i].owner == m)
                sh->sess[i] = sh->sess[--sh->nsess];
        if (--sh->users == 0) {
            if (sh->ours && m->f)
                m->f->C_Finalize(NULL);
            struct p11_shared **pp = &g_modules;
            while (*pp && *pp != sh)
                pp = &(*pp)->next;
            if (*pp)
                *pp = sh->next;
            free(sh->sess);
            free(sh);
        }
        pthread_mutex_unlock(&g_modules_mu);
    }
    if (m->dl)
        dlclose(m->dl);
    memset(m, 0, sizeof *m);
}

/* ---- sessions ---- */

CK_RV p11_open_session(p11_module *m, CK_SLOT_ID slot, CK_FLAGS flags, CK_SESSION_HANDLE *s)
{
    CK_RV rv = m->f->C_OpenSession(slot, flags, NULL, NULL, s);
    if (rv != CKR_OK || !m->shared)
        return rv;
    pthread_mutex_lock(&g_modules_mu);
    struct p11_shared *sh = m->shared;
    size_t i = 0;
    while (i < sh->nsess && sh->sess[i].h != *s)
        i++;
    if (i == sh->nsess && sh->nsess == sh->capsess) {
        size_t cap = sh->capsess ? sh->capsess * 2 : 32;
        struct p11_session_owner *bigger = realloc(sh->sess, cap * sizeof *bigger);
        if (!bigger) {
            pthread_mutex_unlock(&g_modules_mu);
            m->f->C_CloseSession(*s);
            return CKR_HOST_MEMORY;
        }
        sh->sess = bigger;
        sh->capsess = cap;
    }
    if (i == sh->nsess)
        sh->nsess++;
    sh->sess[i].h = *s; /* a reused handle now belongs to its new opener */
    sh->sess[i].owner = m;
    pthread_mutex_unlock(&g_modules_mu);
    return CKR_OK;
}

void p11_close_session(p11_module *m, CK_SESSION_HANDLE s)
{
    if (!m->f)
        return;
    int close_it = 1;
    if (m->shared) {
        pthread_mutex_lock(&g_modules_mu);
        struct p11_shared *sh = m->shared;
        for (size_t i = 0; i < sh->nsess; i++) {
            if (sh->sess[i].h == s) {
                close_it = sh->sess[i].owner == m;
                if (close_it)
                    sh->sess[i] = sh->sess[--sh->nsess];
                break;
            }
        }
        pthread_mutex_unlock(&g_modules_mu);
    }
    if (close_it)
        m->f->C_CloseSession(s); /* it may be gone already: whatever this says */
}

/* ---- tokens ---- */

/* A blank-padded PKCS#11 string as a C string (trailing blanks and NULs removed). */
static void padded(const unsigned char *field, size_t n, char *out, size_t outlen)
{
    while (n > 0 && (field[n - 1] == ' ' || field[n - 1] == '\0'))
        n--;
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, field, n);
    out[n] = '\0';
}

void p11_token_label(const CK_TOKEN_INFO *info, char *out, size_t outlen)
{
    padded(info->label, sizeof info->label, out, outlen);
}

int p11_select_token(p11_module *m, const struct pkcs11_config *cfg, CK_SLOT_ID *slot,
                     CK_TOKEN_INFO *info, char *why, size_t whylen)
{
    CK_ULONG n = 0;
    CK_RV rv = m->f->C_GetSlotList(CK_TRUE, NULL, &n);
    if (rv != CKR_OK) {
        snprintf(why, whylen, "C_GetSlotList failed: %s", p11_rv_name(rv));
        return -1;
    }
    CK_SLOT_ID *ids = calloc(n ? n : 1, sizeof *ids);
    if (!ids) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    rv = m->f->C_GetSlotList(CK_TRUE, ids, &n);
    if (rv != CKR_OK) {
        free(ids);
        snprintf(why, whylen, "C_GetSlotList failed: %s", p11_rv_name(rv));
        return -1;
    }
    char seen[512] = "";
    size_t seen_len = 0;
    int found = 0;
    for (CK_ULONG i = 0; i < n && !found; i++) {
        CK_TOKEN_INFO ti;
        if (m->f->C_GetTokenInfo(ids[i], &ti) != CKR_OK)
            continue;
        char label[64], serial[32];
        padded(ti.label, sizeof ti.label, label, sizeof label);
        padded(ti.serialNumber, sizeof ti.serialNumber, serial, sizeof serial);
        if ((cfg->token_label && *cfg->token_label && strcmp(label, cfg->token_label) == 0) ||
            (cfg->token_serial && *cfg->token_serial && strcmp(serial, cfg->token_serial) == 0) ||
            (cfg->has_slot_number && ids[i] == cfg->slot_number)) {
            *slot = ids[i];
            *info = ti;
            found = 1;
        } else if (seen_len < sizeof seen - 1) {
            int w = snprintf(seen + seen_len, sizeof seen - seen_len, "%s\"%s\" (serial %s, slot %lu)",
                             seen_len ? ", " : "", label, serial, (unsigned long)ids[i]);
            if (w > 0)
                seen_len += (size_t)w;
        }
    }
    free(ids);
    if (found)
        return 0;
    char wanted[200];
    if (cfg->has_slot_number)
        snprintf(wanted, sizeof wanted, "in slot %lu", cfg->slot_number);
    else if (cfg->token_label && *cfg->token_label)
        snprintf(wanted, sizeof wanted, "labelled \"%s\"", cfg->token_label);
    else
        snprintf(wanted, sizeof wanted, "with serial number \"%s\"",
                 cfg->token_serial ? cfg->token_serial : "");
    snprintf(why, whylen, "no token %s in module %s (tokens present: %s)", wanted, cfg->path,
             seen_len ? seen : "none");
    return -1;
}

CK_RV p11_login(p11_module *m, CK_SESSION_HANDLE s, const char *pin)
{
    CK_RV rv = m->f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, pin ? strlen(pin) : 0);
    return rv == CKR_USER_ALREADY_LOGGED_IN ? CKR_OK : rv;
}

/* ---- objects ---- */

CK_RV p11_find(p11_module *m, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const void *id,
               size_t idlen, const char *label, CK_OBJECT_HANDLE *out, CK_ULONG max,
               CK_ULONG *count)
{
    CK_ATTRIBUTE tmpl[3];
    CK_ULONG n = 0;
    tmpl[n].type = CKA_CLASS;
    tmpl[n].pValue = &cls;
    tmpl[n++].ulValueLen = sizeof cls;
    if (id) {
        tmpl[n].type = CKA_ID;
        tmpl[n].pValue = (void *)id;
        tmpl[n++].ulValueLen = idlen;
    }
    if (label) {
        tmpl[n].type = CKA_LABEL;
        tmpl[n].pValue = (void *)label;
        tmpl[n++].ulValueLen = strlen(label);
    }
    *count = 0;
    CK_RV rv = m->f->C_FindObjectsInit(s, tmpl, n);
    if (rv != CKR_OK)
        return rv;
    rv = m->f->C_FindObjects(s, out, max, count);
    CK_RV fin = m->f->C_FindObjectsFinal(s);
    if (rv == CKR_OK)
        rv = fin;
    if (rv != CKR_OK)
        *count = 0;
    return rv;
}

CK_RV p11_get_attr(p11_module *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj,
                   CK_ATTRIBUTE_TYPE type, unsigned char **val, CK_ULONG *len)
{
    CK_ATTRIBUTE a = {type, NULL, 0};
    *val = NULL;
    *len = 0;
    CK_RV rv = m->f->C_GetAttributeValue(s, obj, &a, 1);
    if (rv != CKR_OK)
        return rv;
    if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > 1024 * 1024)
        return CKR_ATTRIBUTE_VALUE_INVALID;
    unsigned char *buf = malloc(a.ulValueLen + 1);
    if (!buf)
        return CKR_HOST_MEMORY;
    a.pValue = buf;
    rv = m->f->C_GetAttributeValue(s, obj, &a, 1);
    if (rv != CKR_OK) {
        free(buf);
        return rv;
    }
    buf[a.ulValueLen] = '\0';
    *val = buf;
    *len = a.ulValueLen;
    return CKR_OK;
}

CK_RV p11_key_type(p11_module *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, CK_KEY_TYPE *type)
{
    CK_ATTRIBUTE a = {CKA_KEY_TYPE, type, sizeof *type};
    return m->f->C_GetAttributeValue(s, obj, &a, 1);
}

X509 *p11_read_cert(p11_module *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, char *why,
                    size_t whylen)
{
    unsigned char *der = NULL;
    CK_ULONG len = 0;
    CK_RV rv = p11_get_attr(m, s, obj, CKA_VALUE, &der, &len);
    if (rv != CKR_OK) {
        snprintf(why, whylen, "cannot read the certificate's CKA_VALUE: %s", p11_rv_name(rv));
        return NULL;
    }
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x && p != der + len) {
        X509_free(x);
        x = NULL;
    }
    free(der);
    if (!x) {
        ERR_clear_error();
        snprintf(why, whylen, "the certificate object's CKA_VALUE is not a DER certificate");
    }
    return x;
}

/* CKA_EC_POINT is a DER OCTET STRING holding the point; some modules return the bare point. */
static EVP_PKEY *ec_public_key(const unsigned char *params, CK_ULONG plen,
                               const unsigned char *point, CK_ULONG ptlen, char *why,
                               size_t whylen)
{
    const unsigned char *p = params;
    ASN1_OBJECT *curve = d2i_ASN1_OBJECT(NULL, &p, (long)plen);
    int nid = curve ? OBJ_obj2nid(curve) : NID_undef;
    ASN1_OBJECT_free(curve);
    if (nid == NID_undef) {
        ERR_clear_error();
        snprintf(why, whylen, "the EC key's CKA_EC_PARAMS is not a named curve this CA knows");
        return NULL;
    }
    const unsigned char *raw = point;
    size_t rawlen = ptlen;
    p = point;
    ASN1_OCTET_STRING *os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)ptlen);
    if (os && p == point + ptlen) {
        raw = ASN1_STRING_get0_data(os);
        rawlen = (size_t)ASN1_STRING_length(os);
    }
    EVP_PKEY *pk = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *ps = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (bld && ctx &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, OBJ_nid2sn(nid), 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, raw, rawlen) &&
        (ps = OSSL_PARAM_BLD_to_param(bld)) != NULL && EVP_PKEY_fromdata_init(ctx) == 1)
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, ps);
    OSSL_PARAM_free(ps);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    ASN1_OCTET_STRING_free(os);
    if (!pk) {
        ERR_clear_error();
        snprintf(why, whylen, "the EC key's CKA_EC_POINT is not a point on %s", OBJ_nid2sn(nid));
    }
    return pk;
}

static EVP_PKEY *rsa_public_key(const unsigned char *n, CK_ULONG nlen, const unsigned char *e,
                                CK_ULONG elen, char *why, size_t whylen)
{
    BIGNUM *bn_n = BN_bin2bn(n, (int)nlen, NULL), *bn_e = BN_bin2bn(e, (int)elen, NULL);
    EVP_PKEY *pk = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *ps = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (bn_n && bn_e && bld && ctx && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) &&
        (ps = OSSL_PARAM_BLD_to_param(bld)) != NULL && EVP_PKEY_fromdata_init(ctx) == 1)
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, ps);
    OSSL_PARAM_free(ps);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_free(bn_n);
    BN_free(bn_e);
    if (!pk) {
        ERR_clear_error();
        snprintf(why, whylen, "the RSA key's modulus and exponent do not make a key");
    }
    return pk;
}

EVP_PKEY *p11_read_public_key(p11_module *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj,
                              char *why, size_t whylen)
{
    CK_KEY_TYPE kt;
    CK_RV rv = p11_key_type(m, s, obj, &kt);
    if (rv != CKR_OK) {
        snprintf(why, whylen, "cannot read the key's CKA_KEY_TYPE: %s", p11_rv_name(rv));
        return NULL;
    }
    CK_ATTRIBUTE_TYPE t1, t2;
    if (kt == CKK_EC) {
        t1 = CKA_EC_PARAMS;
        t2 = CKA_EC_POINT;
    } else if (kt == CKK_RSA) {
        t1 = CKA_MODULUS;
        t2 = CKA_PUBLIC_EXPONENT;
    } else {
        snprintf(why, whylen, "key type 0x%lx is not supported (EC or RSA)", (unsigned long)kt);
        return NULL;
    }
    unsigned char *a = NULL, *b = NULL;
    CK_ULONG alen = 0, blen = 0;
    EVP_PKEY *pk = NULL;
    if ((rv = p11_get_attr(m, s, obj, t1, &a, &alen)) != CKR_OK ||
        (rv = p11_get_attr(m, s, obj, t2, &b, &blen)) != CKR_OK)
        snprintf(why, whylen, "cannot read the public key's attributes: %s", p11_rv_name(rv));
    else if (kt == CKK_EC)
        pk = ec_public_key(a, alen, b, blen, why, whylen);
    else
        pk = rsa_public_key(a, alen, b, blen, why, whylen);
    free(a);
    free(b);
    return pk;
}

/* ---- signing ---- */

/* DER DigestInfo { AlgorithmIdentifier(md, NULL), OCTET STRING digest } (PKCS#1 v1.5). */
static int digest_info(const EVP_MD *md, const unsigned char *dg, unsigned int dglen,
                       unsigned char **out)
{
    X509_SIG *di = X509_SIG_new();
    X509_ALGOR *alg = NULL;
    ASN1_OCTET_STRING *os = NULL;
    int len = -1;
    if (di) {
        X509_SIG_getm(di, &alg, &os);
        if (X509_ALGOR_set0(alg, OBJ_nid2obj(EVP_MD_get_type(md)), V_ASN1_NULL, NULL) &&
            ASN1_OCTET_STRING_set(os, dg, (int)dglen))
            len = i2d_X509_SIG(di, out);
    }
    X509_SIG_free(di);
    return len;
}

/* Raw r||s (two big-endian halves of equal length) to a DER ECDSA-Sig-Value. */
static int ecdsa_raw_to_der(const unsigned char *raw, size_t rawlen, unsigned char *out,
                            size_t *outlen)
{
    if (rawlen == 0 || rawlen % 2 != 0)
        return 0;
    size_t half = rawlen / 2;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)half, NULL), *s = BN_bin2bn(raw + half, (int)half, NULL);
    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return 0;
    }
    int len = i2d_ECDSA_SIG(es, NULL);
    int ok = len > 0 && (size_t)len <= *outlen;
    if (ok) {
        unsigned char *p = out;
        ok = i2d_ECDSA_SIG(es, &p) == len;
        *outlen = (size_t)len;
    }
    ECDSA_SIG_free(es);
    return ok;
}

int p11_sign(p11_module *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_KEY_TYPE key_type,
             const EVP_MD *md, const unsigned char *tbs, size_t tbslen, unsigned char *sig,
             size_t *siglen, CK_RV *rv, char *why, size_t whylen)
{
    unsigned char dg[EVP_MAX_MD_SIZE];
    unsigned int dglen = 0;
    unsigned char *input = NULL;
    CK_ULONG inlen = 0;
    *rv = CKR_OK;
    if (!md || EVP_Digest(tbs, tbslen, dg, &dglen, md, NULL) != 1) {
        ERR_clear_error();
        snprintf(why, whylen, "cannot hash the message");
        return -1;
    }
    CK_MECHANISM mech = {key_type == CKK_EC ? CKM_ECDSA : CKM_RSA_PKCS, NULL, 0};
    if (key_type == CKK_EC) {
        input = dg;
        inlen = dglen;
    } else if (key_type == CKK_RSA) {
        int n = digest_info(md, dg, dglen, &input);
        if (n <= 0) {
            ERR_clear_error();
            snprintf(why, whylen, "cannot encode the DigestInfo");
            return -1;
        }
        inlen = (CK_ULONG)n;
    } else {
        snprintf(why, whylen, "key type 0x%lx cannot sign here", (unsigned long)key_type);
        return -1;
    }

    unsigned char raw[2 * 66 + 8]; /* ECDSA r||s up to P-521 */
    unsigned char *outbuf = key_type == CKK_EC ? raw : sig;
    CK_ULONG outlen = key_type == CKK_EC ? sizeof raw : (CK_ULONG)*siglen;
    int ret = -1;
    *rv = m->f->C_SignInit(s, &mech, key);
    if (*rv != CKR_OK) {
        snprintf(why, whylen, "C_SignInit: %s", p11_rv_name(*rv));
        goto done;
    }
    *rv = m->f->C_Sign(s, input, inlen, outbuf, &outlen);
    if (*rv != CKR_OK) {
        snprintf(why, whylen, "C_Sign: %s", p11_rv_name(*rv));
        goto done;
    }
    if (key_type == CKK_EC) {
        if (!ecdsa_raw_to_der(raw, outlen, sig, siglen)) {
            ERR_clear_error();
            snprintf(why, whylen, "the token's ECDSA signature (%lu bytes) is not r||s",
                     (unsigned long)outlen);
            goto done;
        }
    } else {
        *siglen = outlen;
    }
    ret = 0;
done:
    if (key_type == CKK_RSA)
        OPENSSL_free(input);
    OPENSSL_cleanse(dg, sizeof dg);
    return ret;
}

/* ---- key generation and certificate storage ---- */

CK_RV p11_generate_key_pair(p11_module *m, CK_SESSION_HANDLE s, enum p11_keygen type,
                            const char *label, const void *id, size_t idlen,
                            CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG bits = type == P11_KEY_RSA4096 ? 4096 : 3072;
    CK_BYTE exponent[] = {0x01, 0x00, 0x01};
    unsigned char *ec_params = NULL;
    int ec_len = 0;
    int is_ec = type == P11_KEY_P256 || type == P11_KEY_P384;
    if (is_ec) {
        ASN1_OBJECT *curve =
            OBJ_nid2obj(type == P11_KEY_P256 ? NID_X9_62_prime256v1 : NID_secp384r1);
        ec_len = curve ? i2d_ASN1_OBJECT(curve, &ec_params) : -1;
        if (ec_len <= 0)
            return CKR_HOST_MEMORY;
    }
    CK_ATTRIBUTE pub_t[10] = {
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &no, sizeof no},
        {CKA_VERIFY, &yes, sizeof yes},
        {CKA_ENCRYPT, &no, sizeof no}, /* the pair only signs */
        {CKA_WRAP, &no, sizeof no},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, (void *)id, idlen},
    };
    CK_ULONG npub = 7;
    if (is_ec) {
        pub_t[npub++] = (CK_ATTRIBUTE){CKA_EC_PARAMS, ec_params, (CK_ULONG)ec_len};
    } else {
        pub_t[npub++] = (CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof bits};
        pub_t[npub++] = (CK_ATTRIBUTE){CKA_PUBLIC_EXPONENT, exponent, sizeof exponent};
    }
    CK_ATTRIBUTE priv_t[] = {
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},
        {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_SIGN, &yes, sizeof yes},
        {CKA_DECRYPT, &no, sizeof no},
        {CKA_UNWRAP, &no, sizeof no},
        {CKA_DERIVE, &no, sizeof no},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, (void *)id, idlen},
    };
    CK_MECHANISM mech = {is_ec ? CKM_EC_KEY_PAIR_GEN : CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_RV rv = m->f->C_GenerateKeyPair(s, &mech, pub_t, npub, priv_t,
                                       sizeof priv_t / sizeof priv_t[0], pub, priv);
    OPENSSL_free(ec_params);
    return rv;
}

CK_RV p11_store_cert(p11_module *m, CK_SESSION_HANDLE s, X509 *x, const char *label,
                     const void *id, size_t idlen)
{
    unsigned char *value = NULL, *subject = NULL, *issuer = NULL, *serial = NULL;
    int vlen = i2d_X509(x, &value);
    int slen = i2d_X509_NAME(X509_get_subject_name(x), &subject);
    int ilen = i2d_X509_NAME(X509_get_issuer_name(x), &issuer);
    int nlen = i2d_ASN1_INTEGER(X509_get_serialNumber(x), &serial);
    CK_RV rv = CKR_HOST_MEMORY;
    if (vlen > 0 && slen > 0 && ilen > 0 && nlen > 0) {
        CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
        CK_CERTIFICATE_TYPE ct = CKC_X_509;
        CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
        CK_ATTRIBUTE t[] = {
            {CKA_CLASS, &cls, sizeof cls},
            {CKA_CERTIFICATE_TYPE, &ct, sizeof ct},
            {CKA_TOKEN, &yes, sizeof yes},
            {CKA_PRIVATE, &no, sizeof no},
            {CKA_LABEL, (void *)label, strlen(label)},
            {CKA_ID, (void *)id, idlen},
            {CKA_SUBJECT, subject, (CK_ULONG)slen},
            {CKA_ISSUER, issuer, (CK_ULONG)ilen},
            {CKA_SERIAL_NUMBER, serial, (CK_ULONG)nlen},
            {CKA_VALUE, value, (CK_ULONG)vlen},
        };
        CK_OBJECT_HANDLE obj;
        rv = m->f->C_CreateObject(s, t, sizeof t / sizeof t[0], &obj);
    }
    ERR_clear_error();
    OPENSSL_free(value);
    OPENSSL_free(subject);
    OPENSSL_free(issuer);
    OPENSSL_free(serial);
    return rv;
}

/* ---- return values ---- */

const char *p11_rv_name(CK_RV rv)
{
    static const struct {
        CK_RV rv;
        const char *name;
    } names[] = {
        {CKR_OK, "CKR_OK"},
        {CKR_CANCEL, "CKR_CANCEL"},
        {CKR_HOST_MEMORY, "CKR_HOST_MEMORY"},
        {CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID"},
        {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
        {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
        {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
        {CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE"},
        {CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID"},
        {CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID"},
        {CKR_DATA_INVALID, "CKR_DATA_INVALID"},
        {CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE"},
        {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
        {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"},
        {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"},
        {CKR_FUNCTION_CANCELED, "CKR_FUNCTION_CANCELED"},
        {CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED"},
        {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"},
        {CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE"},
        {CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT"},
        {CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
        {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"},
        {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"},
        {CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID"},
        {CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
        {CKR_OPERATION_NOT_INITIALIZED, "CKR_OPERATION_NOT_INITIALIZED"},
        {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
        {CKR_PIN_INVALID, "CKR_PIN_INVALID"},
        {CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE"},
        {CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED"},
        {CKR_PIN_LOCKED, "CKR_PIN_LOCKED"},
        {CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED"},
        {CKR_SESSION_COUNT, "CKR_SESSION_COUNT"},
        {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
        {CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY"},
        {CKR_SESSION_EXISTS, "CKR_SESSION_EXISTS"},
        {CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE"},
        {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
        {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
        {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"},
        {CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED"},
        {CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN"},
        {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
        {CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED"},
        {CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID"},
        {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
        {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
        {CKR_CRYPTOKI_ALREADY_INITIALIZED, "CKR_CRYPTOKI_ALREADY_INITIALIZED"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].rv == rv)
            return names[i].name;
    static _Thread_local char unknown[32];
    snprintf(unknown, sizeof unknown, "CKR_0x%lx", (unsigned long)rv);
    return unknown;
}

int p11_rv_is_connection_loss(CK_RV rv)
{
    switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_KEY_HANDLE_INVALID:    /* handles die with the login/session state on some tokens */
    case CKR_OBJECT_HANDLE_INVALID: /* SoftHSM2 after a logout */
    case CKR_OPERATION_ACTIVE:      /* a session left mid-operation */
    case CKR_GENERAL_ERROR:         /* "unrecoverable" in the module: re-initialise it */
    case CKR_FUNCTION_FAILED:
    case CKR_SLOT_ID_INVALID:
        return 1;
    default:
        return 0;
    }
}

/* ---- one-shot commands ---- */

int p11_rw_session_open(p11_rw_session *t, const char *config_path, const char *pin_file,
                        const char **pin_source, char *why, size_t whylen)
{
    struct pkcs11_config cfg = {0};
    char *pin = NULL;
    const char *source = NULL;
    int rc = -1;
    memset(t, 0, sizeof *t);
    if (pin_source)
        *pin_source = NULL;
    if (pkcs11_config_load(config_path, &cfg, why, whylen) != 0)
        goto done;
    int prc = pkcs11_pin_resolve(&cfg, pin_file, &pin, &source, why, whylen);
    if (prc < 0)
        goto done;
    if (prc == 1 && !cfg.login_not_supported) {
        snprintf(why, whylen, "no PIN: give --pkcs11-pin-file, a systemd credential \"%s\", "
                              "or Pin in %s", PKCS11_PIN_CREDENTIAL, config_path);
        goto done;
    }
    CK_SLOT_ID slot;
    CK_TOKEN_INFO info;
    if (p11_module_load(&t->mod, cfg.path, why, whylen) != 0 ||
        p11_select_token(&t->mod, &cfg, &slot, &info, why, whylen) != 0)
        goto done;
    p11_token_label(&info, t->token, sizeof t->token);
    CK_RV rv = p11_open_session(&t->mod, slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, &t->s);
    if (rv != CKR_OK) {
        snprintf(why, whylen, "C_OpenSession (read/write) on token \"%s\": %s", t->token,
                 p11_rv_name(rv));
        goto done;
    }
    t->open = 1;
    if (!cfg.login_not_supported && (rv = p11_login(&t->mod, t->s, pin)) != CKR_OK) {
        snprintf(why, whylen, "C_Login on token \"%s\" (PIN from %s): %s", t->token, source,
                 p11_rv_name(rv));
        goto done;
    }
    if (pin_source)
        *pin_source = cfg.login_not_supported ? NULL : source;
    rc = 0;
done:
    pkcs11_secret_free(pin);
    pkcs11_config_clear(&cfg);
    return rc;
}

void p11_rw_session_close(p11_rw_session *t)
{
    if (!t)
        return;
    if (t->open)
        p11_close_session(&t->mod, t->s);
    t->open = 0;
    p11_module_unload(&t->mod);
}

int p11_key_pair_get(p11_rw_session *t, const char *label, const void *id, size_t idlen,
                     enum p11_keygen type, int reuse, CK_OBJECT_HANDLE *priv,
                     CK_KEY_TYPE *key_type, EVP_PKEY **pub, int *generated, char *why,
                     size_t whylen)
{
    CK_OBJECT_HANDLE privs[2], pubobj;
    CK_ULONG n = 0, npub = 0;
    char reason[256] = "";
    *pub = NULL;
    *generated = 0;
    CK_RV rv = p11_find(&t->mod, t->s, CKO_PRIVATE_KEY, NULL, 0, label, privs, 2, &n);
    if (rv != CKR_OK) {
        snprintf(why, whylen, "searching token \"%s\" for keys: %s", t->token, p11_rv_name(rv));
        return -1;
    }
    if (n > 1) {
        snprintf(why, whylen, "token \"%s\" holds several private keys labelled \"%s\"; remove "
                              "the extra ones or choose another label", t->token, label);
        return -1;
    }
    if (n == 1 && !reuse) {
        snprintf(why, whylen, "token \"%s\" already holds a private key labelled \"%s\"; "
                              "choose another label", t->token, label);
        return -1;
    }
    if (n == 1) {
        *priv = privs[0];
        rv = p11_find(&t->mod, t->s, CKO_PUBLIC_KEY, NULL, 0, label, &pubobj, 1, &npub);
        if (rv != CKR_OK || npub == 0) {
            snprintf(why, whylen, "token \"%s\" has a private key labelled \"%s\" but no public "
                                  "key with that label", t->token, label);
            return -1;
        }
    } else {
        rv = p11_generate_key_pair(&t->mod, t->s, type, label, id, idlen, &pubobj, priv);
        if (rv != CKR_OK) {
            snprintf(why, whylen, "C_GenerateKeyPair on token \"%s\": %s", t->token,
                     p11_rv_name(rv));
            return -1;
        }
        *generated = 1;
    }
    if ((rv = p11_key_type(&t->mod, t->s, *priv, key_type)) != CKR_OK) {
        snprintf(why, whylen, "reading the key type of \"%s\": %s", label, p11_rv_name(rv));
        return -1;
    }
    if ((*pub = p11_read_public_key(&t->mod, t->s, pubobj, reason, sizeof reason)) == NULL) {
        snprintf(why, whylen, "public key labelled \"%s\": %s", label, reason);
        return -1;
    }
    return 0;
}
