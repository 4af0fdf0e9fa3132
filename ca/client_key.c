/*
 * ca/client_key.c: the key a client asks to certify (fulcio-compat.md §2): parsing, the v1.8.8
 * key policy (sigstore's cryptoutils.ValidatePubKey, which is boulder's goodkey), proof of
 * possession and the default --client-signing-algorithms list.
 *
 * The client's key is new on every request, so its parse is on the critical path
 * (stack-notes.md): OpenSSL 3.0's decoders (PEM_read_bio_PUBKEY ~280 µs, d2i_PUBKEY ~85 µs) cost
 * more than the signature check. Here the usual PEM PUBLIC KEY block is decoded directly (any
 * other PEM goes through PEM_read_bio, plain base64), the SubjectPublicKeyInfo is split with
 * d2i_ASN1_SEQUENCE_ANY, RSA and Ed25519 keys are built
 * directly (EVP_PKEY_fromdata, EVP_PKEY_new_raw_public_key_ex), and a P-256/P-384/P-521 point is
 * checked and kept as it is, without an OpenSSL key ("An EC client key is a bare point" below).
 * Any other shape goes through d2i_PUBKEY, so the result is always what OpenSSL itself would
 * decode and the policy check can name keys it refuses.
 *
 * Every function is safe to call from several threads at once (the EC keys that check points
 * are per thread).
 */
/* The EC_KEY and ECDSA_verify functions (deprecated in 3.0, still in every 3.x) check a bare point
 * without making a provider key: see "An EC client key is a bare point" below. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "ca/client_key.h"

#include <limits.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/evp_once.h"

/* Rounds of Fermat factorisation sigstore asks of goodkey (cryptoutils.ValidatePubKey). */
#define FERMAT_ROUNDS 100

/* Longest IEEE P1363 r||s accepted (sigstore's ECDSA verifier: 2 * 66 bytes for P-521). */
#define P1363_MAX_LEN 132

#define ALLOWED_KEYS "allowed: RSA 2048/3072/4096, ECDSA P-256/P-384/P-521, Ed25519"

__attribute__((format(printf, 3, 4))) static void set_why(char *why, size_t whylen,
                                                          const char *fmt, ...)
{
    if (!why || !whylen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* ---- key kinds and curves ------------------------------------------------------------------ */

enum key_kind { KIND_OTHER, KIND_RSA, KIND_EC, KIND_ED25519 };

static const struct ec_point_note *note_of(EVP_PKEY *key);

static enum key_kind key_kind(EVP_PKEY *key)
{
    if (note_of(key))
        return KIND_EC;
    if (EVP_PKEY_is_a(key, "RSA"))
        return KIND_RSA;
    if (EVP_PKEY_is_a(key, "EC"))
        return KIND_EC;
    if (EVP_PKEY_is_a(key, "ED25519"))
        return KIND_ED25519;
    return KIND_OTHER;
}

/* The curves of the key policy, with the proof-of-possession hash of each (§2.2). */
static const struct allowed_curve {
    int nid;
    const char *nist;
    size_t field_bytes;
    int md_nid;
    const char *hash;
} allowed_curves[] = {
    {NID_X9_62_prime256v1, "P-256", 32, NID_sha256, "SHA-256"},
    {NID_secp384r1, "P-384", 48, NID_sha384, "SHA-384"},
    {NID_secp521r1, "P-521", 66, NID_sha512, "SHA-512"},
};

static const struct allowed_curve *find_curve(int nid)
{
    for (size_t i = 0; i < sizeof allowed_curves / sizeof allowed_curves[0]; i++)
        if (allowed_curves[i].nid == nid)
            return &allowed_curves[i];
    return NULL;
}

/* The NID of an EC key's named curve (NID_undef for explicit parameters); its OpenSSL name in
 * `name` ("" when there is none). */
static int ec_curve_nid(EVP_PKEY *key, char *name, size_t namelen)
{
    size_t n = 0;
    name[0] = '\0';
    if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, namelen, &n)) {
        name[0] = '\0';
        return NID_undef;
    }
    int nid = OBJ_sn2nid(name);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(name);
    return nid;
}

/* An EC key client_key_parse made from an uncompressed point 04||X||Y: its curve and that point,
 * kept on an EVP_PKEY without type or material (ex_data; "An EC client key is a bare point"
 * below). OpenSSL accepted the point (coordinates below p, on the curve) before the note was
 * made. Copies made by EVP_PKEY_dup carry a copy. */
struct ec_point_note {
    const struct allowed_curve *curve;
    size_t len;
    unsigned char point[1 + 2 * 66];
};

static int g_note_index = -1;
static pthread_once_t g_note_once = PTHREAD_ONCE_INIT;

static void note_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

/* OpenSSL 3.0's EVP_PKEY_dup hands the copy whatever pointer this leaves in *from_d: a copy of
 * the note, since the note is the key (a copy without one would be no key at all). */
static int note_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d, int idx,
                    long argl, void *argp)
{
    (void)to, (void)from, (void)idx, (void)argl, (void)argp;
    if (*from_d) {
        struct ec_point_note *n = malloc(sizeof *n);
        if (!n)
            return 0;
        memcpy(n, *from_d, sizeof *n);
        *from_d = n;
    }
    return 1;
}

static void make_note_index(void)
{
    g_note_index =
        CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_EVP_PKEY, 0, NULL, NULL, note_dup, note_free);
}

static const struct ec_point_note *note_of(EVP_PKEY *key)
{
    pthread_once(&g_note_once, make_note_index);
    return key && g_note_index >= 0 ? EVP_PKEY_get_ex_data(key, g_note_index) : NULL;
}

static int set_note(EVP_PKEY *key, const struct allowed_curve *c, const unsigned char *point,
                    size_t len)
{
    struct ec_point_note *n = len <= sizeof n->point ? malloc(sizeof *n) : NULL;
    pthread_once(&g_note_once, make_note_index);
    if (!n || g_note_index < 0) {
        free(n);
        return -1;
    }
    n->curve = c;
    n->len = len;
    memcpy(n->point, point, len);
    if (!EVP_PKEY_set_ex_data(key, g_note_index, n)) {
        free(n);
        return -1;
    }
    return 0;
}

const unsigned char *client_key_ec_point(EVP_PKEY *key, int *curve_nid, size_t *len)
{
    const struct ec_point_note *n = note_of(key);
    if (!n)
        return NULL;
    *curve_nid = n->curve->nid;
    *len = n->len;
    return n->point;
}

static const struct allowed_curve *key_curve(EVP_PKEY *key)
{
    const struct ec_point_note *n = note_of(key);
    if (n)
        return n->curve;
    char name[80];
    return find_curve(ec_curve_nid(key, name, sizeof name));
}

static const EVP_MD *md_of(int md_nid)
{
    switch (md_nid) {
    case NID_sha256: return EVP_sha256();
    case NID_sha384: return EVP_sha384();
    case NID_sha512: return EVP_sha512();
    default: return NULL;
    }
}

/* ---- parsing ------------------------------------------------------------------------------ */

/* An EC client key is a bare point: it is checked once against its curve's equation and then
 * only ever verified once (the proof of possession) and copied into the certificate (the note's
 * bytes). OpenSSL 3.0 makes a provider key for every EVP_PKEY that holds key material (an
 * EVP_PKEY_dup of a curve template with the point set is ~5 us and takes OpenSSL's global locks,
 * 3.5 % of a worker; EVP_DigestVerifyInit on it ~2 us more). So client_key_parse returns, for
 * P-256/P-384/P-521, an EVP_PKEY without type or key material whose note holds the curve and
 * the point, and this file checks the point and the proof with one EC_KEY per thread and curve
 * (below). Without a type, not even EC, OpenSSL functions given the key fail cleanly
 * (EVP_PKEY_eq -2, i2d_PUBKEY -1, EVP_PKEY_is_a 0, no parameters), where a typed EC key without
 * an EC_KEY makes some of them dereference NULL. Everything outside this file reads such a key
 * through client_key_ec_point, client_key_describe and the other functions of client_key.h, or
 * asks client_key_openssl for OpenSSL's own key. */
#define NCURVES (sizeof allowed_curves / sizeof allowed_curves[0])

struct thread_ec_keys {
    EC_KEY *key[NCURVES];
    /* the point each key holds now (len 0: none or unknown) */
    unsigned char point[NCURVES][1 + 2 * 66];
    size_t len[NCURVES];
};

static pthread_key_t g_thread_ec;
static int g_thread_ec_ok;
static pthread_once_t g_thread_ec_once = PTHREAD_ONCE_INIT;

static void thread_ec_free(void *ptr)
{
    struct thread_ec_keys *t = ptr;
    for (size_t i = 0; i < NCURVES; i++)
        EC_KEY_free(t->key[i]);
    free(t);
}

static void make_thread_ec(void)
{
    g_thread_ec_ok = pthread_key_create(&g_thread_ec, thread_ec_free) == 0;
}

/* This thread's EC_KEY for curve c holding `point` (04||X||Y), or NULL when OpenSSL refuses the
 * point (a coordinate not below p, or not on the curve) or memory runs out. */
static EC_KEY *thread_ec_key(const struct allowed_curve *c, const unsigned char *point, size_t len)
{
    size_t i = (size_t)(c - allowed_curves);
    if (i >= NCURVES || len > sizeof ((struct thread_ec_keys *)0)->point[0])
        return NULL;
    pthread_once(&g_thread_ec_once, make_thread_ec);
    if (!g_thread_ec_ok)
        return NULL;
    struct thread_ec_keys *t = pthread_getspecific(g_thread_ec);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t || pthread_setspecific(g_thread_ec, t) != 0) {
            free(t);
            return NULL;
        }
    }
    if (!t->key[i] && !(t->key[i] = EC_KEY_new_by_curve_name(c->nid)))
        return NULL;
    if (t->len[i] == len && memcmp(t->point[i], point, len) == 0)
        return t->key[i];
    t->len[i] = 0;
    if (EC_KEY_oct2key(t->key[i], point, len, NULL) != 1)
        return NULL;
    memcpy(t->point[i], point, len);
    t->len[i] = len;
    return t->key[i];
}

/* OpenSSL's own public key for a point of a named curve (client_key_openssl). */
static EVP_PKEY *ec_fromdata(int curve_nid, const unsigned char *point, size_t len)
{
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                         (char *)OBJ_nid2sn(curve_nid), 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)point, len),
        OSSL_PARAM_construct_end(),
    };
    if (ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
        key = NULL;
    EVP_PKEY_CTX_free(ctx);
    return key;
}

EVP_PKEY *client_key_openssl(EVP_PKEY *key)
{
    const struct ec_point_note *n = note_of(key);
    if (n)
        return ec_fromdata(n->curve->nid, n->point, n->len);
    return key && EVP_PKEY_up_ref(key) ? key : NULL;
}

/* The client's key for an uncompressed point of an allowed curve: checked, then kept as the
 * note of an EVP_PKEY without type or material (above). NULL if the point is not valid on the
 * curve. */
static EVP_PKEY *ec_from_point(const struct allowed_curve *c, const unsigned char *point,
                               size_t len)
{
    if (!thread_ec_key(c, point, len))
        return NULL;
    EVP_PKEY *key = EVP_PKEY_new();
    if (!key || set_note(key, c, point, len) != 0) {
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

static EVP_PKEY *rsa_from_integers(const ASN1_INTEGER *n_asn1, const ASN1_INTEGER *e_asn1)
{
    EVP_PKEY *key = NULL;
    BIGNUM *n = ASN1_INTEGER_to_BN(n_asn1, NULL);
    BIGNUM *e = ASN1_INTEGER_to_BN(e_asn1, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    if (n && e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) &&
        (params = OSSL_PARAM_BLD_to_param(bld)) &&
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
        key = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return key;
}

/* The SEQUENCE (or NULL) exactly filling der[0..len), in DER. OpenSSL's d2i also takes BER
 * (indefinite or non-minimal lengths, a primitive SEQUENCE tag 0x10, a constructed BIT STRING),
 * which Go's parser, and so Fulcio, refuses: the sequence must re-encode to the same bytes. Its
 * nested SEQUENCEs are kept as their bytes, and checked when they are read with this too. */
static ASN1_SEQUENCE_ANY *whole_sequence(const unsigned char *der, size_t len)
{
    if (len == 0 || len > INT_MAX)
        return NULL;
    const unsigned char *p = der;
    ASN1_SEQUENCE_ANY *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, (long)len);
    unsigned char *again = NULL;
    if (seq && (p != der + len || i2d_ASN1_SEQUENCE_ANY(seq, &again) != (int)len ||
                memcmp(again, der, len) != 0)) {
        sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
        seq = NULL;
    }
    OPENSSL_free(again);
    return seq;
}

/* PKCS#1 RSAPublicKey: SEQUENCE { modulus INTEGER, publicExponent INTEGER }, non-negative. */
static EVP_PKEY *rsa_from_pkcs1(const unsigned char *der, size_t len)
{
    EVP_PKEY *key = NULL;
    ASN1_SEQUENCE_ANY *seq = whole_sequence(der, len);
    if (seq && sk_ASN1_TYPE_num(seq) == 2) {
        const ASN1_TYPE *n = sk_ASN1_TYPE_value(seq, 0), *e = sk_ASN1_TYPE_value(seq, 1);
        if (n->type == V_ASN1_INTEGER && e->type == V_ASN1_INTEGER)
            key = rsa_from_integers(n->value.integer, e->value.integer);
    }
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
    return key;
}

static EVP_PKEY *spki_generic(const unsigned char *der, size_t len)
{
    const unsigned char *p = der;
    EVP_PKEY *key = d2i_PUBKEY(NULL, &p, (long)len);
    if (key && p != der + len) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    return key;
}

/* SubjectPublicKeyInfo ::= SEQUENCE { algorithm SEQUENCE { OID, params ANY OPTIONAL },
 * subjectPublicKey BIT STRING }, exactly filling der[0..len). The common keys are built
 * directly; anything else is left to d2i_PUBKEY. */
static EVP_PKEY *spki_to_key(const unsigned char *der, size_t len, char *why, size_t whylen)
{
    EVP_PKEY *key = NULL;
    ASN1_SEQUENCE_ANY *alg = NULL;
    ASN1_SEQUENCE_ANY *spki = whole_sequence(der, len);
    if (!spki || sk_ASN1_TYPE_num(spki) != 2 ||
        sk_ASN1_TYPE_value(spki, 0)->type != V_ASN1_SEQUENCE ||
        sk_ASN1_TYPE_value(spki, 1)->type != V_ASN1_BIT_STRING)
        goto done;
    const ASN1_STRING *alg_der = sk_ASN1_TYPE_value(spki, 0)->value.sequence;
    const ASN1_BIT_STRING *bits = sk_ASN1_TYPE_value(spki, 1)->value.bit_string;
    alg = whole_sequence(alg_der->data, (size_t)alg_der->length);
    int nalg = alg ? sk_ASN1_TYPE_num(alg) : 0;
    if (nalg < 1 || nalg > 2 || sk_ASN1_TYPE_value(alg, 0)->type != V_ASN1_OBJECT)
        goto done;
    int alg_nid = OBJ_obj2nid(sk_ASN1_TYPE_value(alg, 0)->value.object);
    const ASN1_TYPE *param = nalg == 2 ? sk_ASN1_TYPE_value(alg, 1) : NULL;
    int whole_bytes = !(bits->flags & ASN1_STRING_FLAG_BITS_LEFT) || (bits->flags & 0x07) == 0;

    if (alg_nid == NID_X9_62_id_ecPublicKey && (!param || param->type != V_ASN1_OBJECT)) {
        /* Go's x509 (and so Fulcio) only knows named curves. */
        set_why(why, whylen, "publicKey.content: EC keys without a named curve are not "
                             "supported");
        goto done;
    }
    const struct allowed_curve *curve =
        alg_nid == NID_X9_62_id_ecPublicKey ? find_curve(OBJ_obj2nid(param->value.object)) : NULL;
    if (whole_bytes && curve) {
        /* Go's elliptic.Unmarshal: uncompressed 04||x||y only, on the curve. */
        if (bits->length == (int)(1 + 2 * curve->field_bytes) && bits->data[0] == 0x04)
            key = ec_from_point(curve, bits->data, (size_t)bits->length);
        if (!key)
            set_why(why, whylen,
                    "publicKey.content: the EC point is not a valid uncompressed point of %s",
                    curve->nist);
    } else if (whole_bytes && alg_nid == NID_rsaEncryption && param &&
               param->type == V_ASN1_NULL) {
        key = rsa_from_pkcs1(bits->data, (size_t)bits->length);
    } else if (whole_bytes && alg_nid == NID_ED25519 && !param && bits->length == 32) {
        key = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, bits->data, 32);
    } else {
        key = spki_generic(der, len);
    }
done:
    sk_ASN1_TYPE_pop_free(alg, ASN1_TYPE_free);
    sk_ASN1_TYPE_pop_free(spki, ASN1_TYPE_free);
    return key;
}

/* The usual PEM PUBLIC KEY block decoded without a BIO (PEM_read_bio's BIO and line reader cost
 * ~0.8 % of a worker): the armour at the very start, lines of 1-76 standard base64 characters
 * each ending in "\n", '=' padding only at the end, the end line, at most one final "\n", and
 * nothing else. Anything else returns NULL and goes through PEM_read_bio, so the two never judge
 * the same input differently (fuzz_public_key compares this with PEM_read_bio). Returns the DER,
 * malloc'd, or NULL. */
static unsigned char *pem_public_key_fast(const unsigned char *in, size_t len, size_t *der_len)
{
    static const char head[] = "-----BEGIN PUBLIC KEY-----\n", tail[] = "-----END PUBLIC KEY-----";
    const size_t hl = sizeof head - 1, tl = sizeof tail - 1;
    size_t end = len && in[len - 1] == '\n' ? len - 1 : len;
    if (end < hl + tl || memcmp(in, head, hl) != 0 || memcmp(in + end - tl, tail, tl) != 0)
        return NULL;
    const unsigned char *p = in + hl, *stop = in + end - tl;
    unsigned char text[4096];
    size_t n = 0, pad = 0;
    while (p < stop) {
        const unsigned char *nl = memchr(p, '\n', (size_t)(stop - p));
        size_t line = nl ? (size_t)(nl - p) : 0;
        if (!nl || line == 0 || line > 76 || n + line > sizeof text)
            return NULL;
        for (size_t i = 0; i < line; i++) {
            unsigned char c = p[i];
            int b64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '+' || c == '/';
            if (c == '=')
                pad++;
            else if (!b64 || pad)
                return NULL; /* not base64, or data after padding */
            text[n++] = c;
        }
        p = nl + 1;
    }
    if (n == 0 || n % 4 != 0 || pad > 2)
        return NULL;
    unsigned char *der = malloc(n / 4 * 3 + 1);
    int got = der ? EVP_DecodeBlock(der, text, (int)n) : -1;
    if (got < 0 || (size_t)got < pad) {
        free(der);
        return NULL;
    }
    *der_len = (size_t)got - pad;
    return der;
}

/* The SPKI of a PEM PUBLIC KEY block: the key, or NULL with the reason in pem_why. */
static EVP_PKEY *pem_spki_to_key(const unsigned char *der, size_t len, char *pem_why,
                                 size_t pem_whylen)
{
    EVP_PKEY *key = spki_to_key(der, len, pem_why, pem_whylen);
    if (!key && !pem_why[0])
        snprintf(pem_why, pem_whylen, "publicKey.content: the PEM PUBLIC KEY block is not a valid "
                                      "SubjectPublicKeyInfo");
    return key;
}

EVP_PKEY *client_key_parse(const unsigned char *content, size_t len, char *why, size_t whylen)
{
    static const char begin[] = "-----BEGIN ";
    EVP_PKEY *key = NULL;
    char pem_why[200] = "";
    set_why(why, whylen, "%s", "");
    if (!content || len == 0) {
        set_why(why, whylen, "publicKey.content is empty");
        return NULL;
    }
    if (len > INT_MAX) {
        set_why(why, whylen, "publicKey.content is too large");
        return NULL;
    }
    ERR_set_mark();
    /* As Fulcio: the first PEM block, if there is one ("PUBLIC KEY" or "RSA PUBLIC KEY"), then
     * the whole content as DER. */
    int pem = memmem(content, len, begin, sizeof begin - 1) != NULL;
    size_t fast_len = 0;
    unsigned char *fast = pem ? pem_public_key_fast(content, len, &fast_len) : NULL;
    if (fast) {
        key = pem_spki_to_key(fast, fast_len, pem_why, sizeof pem_why);
        free(fast);
    } else if (pem) {
        BIO *bio = BIO_new_mem_buf(content, (int)len);
        char *name = NULL, *header = NULL;
        unsigned char *der = NULL;
        long derlen = 0;
        if (bio && PEM_read_bio(bio, &name, &header, &der, &derlen) == 1) {
            if (strcmp(name, "PUBLIC KEY") == 0) {
                key = pem_spki_to_key(der, (size_t)derlen, pem_why, sizeof pem_why);
            } else if (strcmp(name, "RSA PUBLIC KEY") == 0) {
                key = rsa_from_pkcs1(der, (size_t)derlen);
                if (!key)
                    snprintf(pem_why, sizeof pem_why, "publicKey.content: the PEM RSA PUBLIC KEY "
                                                      "block is not a valid PKCS#1 RSAPublicKey");
            } else {
                snprintf(pem_why, sizeof pem_why,
                         "publicKey.content: PEM type \"%.60s\" is not PUBLIC KEY or RSA PUBLIC KEY",
                         name);
            }
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);
        BIO_free(bio);
    }
    if (!key) {
        char der_why[200] = "";
        key = spki_to_key(content, len, der_why, sizeof der_why);
        if (!key) {
            if (pem_why[0])
                set_why(why, whylen, "%s", pem_why);
            else if (der_why[0])
                set_why(why, whylen, "%s", der_why);
            else
                set_why(why, whylen, "publicKey.content is not a PEM or DER public key");
        }
    }
    ERR_pop_to_mark();
    return key;
}

/* ---- key policy ----------------------------------------------------------------------------- */

/* The primes below 752 (boulder's smallPrimeInts). Elements 1..38 (3..167) are also the primes
 * of the ROCA fingerprint. */
static const unsigned short small_primes[] = {
    2,   3,   5,   7,   11,  13,  17,  19,  23,  29,  31,  37,  41,  43,  47,  53,  59,  61,  67,
    71,  73,  79,  83,  89,  97,  101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163,
    167, 173, 179, 181, 191, 193, 197, 199, 211, 223, 227, 229, 233, 239, 241, 251, 257, 263, 269,
    271, 277, 281, 283, 293, 307, 311, 313, 317, 331, 337, 347, 349, 353, 359, 367, 373, 379, 383,
    389, 397, 401, 409, 419, 421, 431, 433, 439, 443, 449, 457, 461, 463, 467, 479, 487, 491, 499,
    503, 509, 521, 523, 541, 547, 557, 563, 569, 571, 577, 587, 593, 599, 601, 607, 613, 617, 619,
    631, 641, 643, 647, 653, 659, 661, 673, 677, 683, 691, 701, 709, 719, 727, 733, 739, 743, 751,
};
#define N_SMALL_PRIMES (sizeof small_primes / sizeof small_primes[0])
#define ROCA_FIRST 1
#define ROCA_LAST 38

/* n modulo each small prime, with one BN_mod_word per group of primes whose product stays below
 * 2^32 (BN_mod_word's fast case). Returns 0, or -1 on error. */
static int small_residues(const BIGNUM *n, unsigned short res[N_SMALL_PRIMES])
{
    size_t i = 0;
    while (i < N_SMALL_PRIMES) {
        unsigned long long prod = small_primes[i];
        size_t j = i + 1;
        while (j < N_SMALL_PRIMES && prod * small_primes[j] <= 0xffffffffULL)
            prod *= small_primes[j++];
        BN_ULONG r = BN_mod_word(n, (BN_ULONG)prod);
        if (r == (BN_ULONG)-1)
            return -1;
        for (; i < j; i++)
            res[i] = (unsigned short)(r % small_primes[i]);
    }
    return 0;
}

/* ROCA (CVE-2017-15361, Infineon RSALib): such moduli are, modulo every prime p in 3..167, in
 * the subgroup generated by 65537 (the test of titanous/rocacheck, which boulder uses). */
static int roca_fingerprint(const unsigned short res[N_SMALL_PRIMES])
{
    for (size_t i = ROCA_FIRST; i <= ROCA_LAST; i++) {
        unsigned p = small_primes[i], g = 65537 % p, f = 1;
        int member = 0;
        do {
            member = f == res[i];
            f = f * g % p;
        } while (!member && f != 1);
        if (!member)
            return 0;
    }
    return 1;
}

/* floor(sqrt(x)) into r by Newton's method from a power of two above the root. */
static int bn_isqrt(BIGNUM *r, const BIGNUM *x, BN_CTX *ctx)
{
    if (BN_is_zero(x)) {
        BN_zero(r);
        return 1;
    }
    BN_CTX_start(ctx);
    BIGNUM *y = BN_CTX_get(ctx), *q = BN_CTX_get(ctx);
    int ok = y && q && BN_set_word(r, 0) && BN_set_bit(r, (BN_num_bits(x) + 1) / 2);
    while (ok) {
        /* y = (r + x / r) / 2; stop when it no longer decreases. */
        ok = BN_div(q, NULL, x, r, ctx) && BN_add(y, r, q) && BN_rshift1(y, y);
        if (!ok || BN_cmp(y, r) >= 0)
            break;
        ok = BN_copy(r, y) != NULL;
    }
    BN_CTX_end(ctx);
    return ok;
}

/* boulder's checkPrimeFactorsTooClose: for a = isqrt(n) + 1, +2, ... (`rounds` values), is
 * a^2 - n a square b^2, so that n = (a - b)(a + b)? a^2 - n is followed modulo
 * M = 64*63*65*11 in machine words; only values that are squares modulo all four factors
 * (about 1 in 160) are checked in full. Returns 1 when n factors, 0 if not, -1 on error. */
static int fermat_factors(const BIGNUM *n, int rounds, BN_CTX *ctx)
{
    static const unsigned mods[] = {64, 63, 65, 11};
    const unsigned long long M = 64ULL * 63 * 65 * 11;
    unsigned char square_mod[4][65] = {{0}};
    for (size_t i = 0; i < 4; i++)
        for (unsigned k = 0; k < mods[i]; k++)
            square_mod[i][k * k % mods[i]] = 1;

    BN_CTX_start(ctx);
    BIGNUM *a = BN_CTX_get(ctx), *t = BN_CTX_get(ctx), *b2 = BN_CTX_get(ctx),
           *b = BN_CTX_get(ctx);
    int rc = -1;
    if (!b || !bn_isqrt(a, n, ctx) || !BN_add_word(a, 1))
        goto done;
    BN_ULONG am = BN_mod_word(a, (BN_ULONG)M), nm = BN_mod_word(n, (BN_ULONG)M);
    if (am == (BN_ULONG)-1 || nm == (BN_ULONG)-1)
        goto done;
    unsigned long long a_m = am, b2_m = (a_m * a_m % M + M - nm) % M;
    for (int i = 0; i < rounds; i++) {
        int candidate = 1;
        for (size_t j = 0; j < 4 && candidate; j++)
            candidate = square_mod[j][b2_m % mods[j]];
        if (candidate) {
            if (!BN_copy(t, a) || !BN_add_word(t, (BN_ULONG)i) || !BN_sqr(b2, t, ctx) ||
                !BN_sub(b2, b2, n) || !bn_isqrt(b, b2, ctx) || !BN_sqr(t, b, ctx))
                goto done;
            if (BN_cmp(t, b2) == 0) {
                rc = 1;
                goto done;
            }
        }
        /* (a+1)^2 - n = (a^2 - n) + 2a + 1 */
        b2_m = (b2_m + 2 * a_m + 1) % M;
        a_m = (a_m + 1) % M;
    }
    rc = 0;
done:
    BN_CTX_end(ctx);
    return rc;
}

static int rsa_policy(EVP_PKEY *key, char *why, size_t whylen)
{
    int bits = EVP_PKEY_get_bits(key);
    if (bits != 2048 && bits != 3072 && bits != 4096) {
        set_why(why, whylen,
                "RSA key of %d bits is not allowed (RSA must be 2048, 3072 or 4096 bits)", bits);
        return -1;
    }
    BIGNUM *n = NULL, *e = NULL;
    BN_CTX *ctx = NULL;
    int rc = -1;
    if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) ||
        !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) || !(ctx = BN_CTX_new())) {
        set_why(why, whylen, "cannot read the RSA key's modulus and exponent");
        goto done;
    }
    if (!BN_is_word(e, 65537)) {
        char *dec = BN_num_bits(e) <= 64 ? BN_bn2dec(e) : NULL;
        if (dec)
            set_why(why, whylen, "RSA public exponent %s is not allowed (must be 65537)", dec);
        else
            set_why(why, whylen, "RSA public exponent of %d bits is not allowed (must be 65537)",
                    BN_num_bits(e));
        OPENSSL_free(dec);
        goto done;
    }
    unsigned short res[N_SMALL_PRIMES];
    if (small_residues(n, res) != 0) {
        set_why(why, whylen, "cannot run the RSA small prime check");
        goto done;
    }
    for (size_t i = 0; i < N_SMALL_PRIMES; i++)
        if (res[i] == 0) {
            set_why(why, whylen, "RSA modulus is divisible by the small prime %u",
                    (unsigned)small_primes[i]);
            goto done;
        }
    if (roca_fingerprint(res)) {
        set_why(why, whylen, "RSA key has the ROCA fingerprint (CVE-2017-15361, vulnerable "
                             "Infineon hardware)");
        goto done;
    }
    int f = fermat_factors(n, FERMAT_ROUNDS, ctx);
    if (f != 0) {
        set_why(why, whylen, f > 0 ? "RSA modulus factors by Fermat's method (its primes are "
                                     "too close together)"
                                   : "cannot run the RSA Fermat factorisation check");
        goto done;
    }
    rc = 0;
done:
    BN_CTX_free(ctx);
    BN_free(n);
    BN_free(e);
    return rc;
}

static int ec_policy(EVP_PKEY *key, char *why, size_t whylen)
{
    if (note_of(key))
        return 0; /* an allowed curve; OpenSSL checked the point when it was set */
    char name[80];
    const struct allowed_curve *c = find_curve(ec_curve_nid(key, name, sizeof name));
    if (!c) {
        if (name[0])
            set_why(why, whylen, "EC curve %s is not allowed (allowed: P-256, P-384, P-521)",
                    name);
        else
            set_why(why, whylen, "EC key with explicit curve parameters is not allowed "
                                 "(allowed: P-256, P-384, P-521)");
        return -1;
    }
    /* Not the identity, coordinates in range, on the curve. The order check of the full
     * EVP_PKEY_public_check (nQ = O, ~10x the cost) adds nothing on these cofactor-1 curves. */
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    int ok = ctx && EVP_PKEY_public_check_quick(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        set_why(why, whylen, "EC public key is not a valid point of %s", c->nist);
        return -1;
    }
    return 0;
}

int client_key_policy_check(EVP_PKEY *key, char *why, size_t whylen)
{
    if (!key) {
        set_why(why, whylen, "no public key");
        return -1;
    }
    int rc;
    ERR_set_mark();
    switch (key_kind(key)) {
    case KIND_RSA: rc = rsa_policy(key, why, whylen); break;
    case KIND_EC: rc = ec_policy(key, why, whylen); break;
    case KIND_ED25519: rc = 0; break; /* any 32-byte key */
    default: {
        const char *type = EVP_PKEY_get0_type_name(key);
        set_why(why, whylen, "%s keys are not allowed (" ALLOWED_KEYS ")", type ? type : "unknown");
        rc = -1;
    }
    }
    ERR_pop_to_mark();
    return rc;
}

/* ---- proof of possession -------------------------------------------------------------------- */

int client_key_default_md(EVP_PKEY *key)
{
    if (!key)
        return NID_undef;
    switch (key_kind(key)) {
    case KIND_RSA: return NID_sha256;
    case KIND_EC: {
        const struct allowed_curve *c = key_curve(key);
        return c ? c->md_nid : NID_undef;
    }
    default: return NID_undef;
    }
}

/* 1 when sig verifies over msg, 0 when not, -1 when verification cannot be set up. md NULL for
 * Ed25519. RSA keys use their default padding, PKCS#1 v1.5. */
static int digest_verify(EVP_PKEY *key, const EVP_MD *md, const unsigned char *msg, size_t msglen,
                         const unsigned char *sig, size_t siglen)
{
    static const unsigned char empty[1];
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    int rc = -1;
    if (mctx && EVP_DigestVerifyInit(mctx, NULL, md, NULL, key) == 1)
        rc = evp_verify_once(mctx, sig, siglen, msg ? msg : empty, msglen) == 1;
    EVP_MD_CTX_free(mctx);
    return rc;
}

/* IEEE P1363 r||s (two equal halves) as an ECDSA_SIG; NULL on failure. */
static ECDSA_SIG *p1363_sig(const unsigned char *sig, size_t siglen)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)(siglen / 2), NULL);
    BIGNUM *s = BN_bin2bn(sig + siglen / 2, (int)(siglen / 2), NULL);
    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return NULL;
    }
    return es;
}

/* The proof-of-possession hashes of the allowed curves, fetched once (EVP_sha256() and the like
 * are fetched again by every EVP_Digest). */
static EVP_MD *g_curve_md[NCURVES];
static pthread_once_t g_curve_md_once = PTHREAD_ONCE_INIT;

static void fetch_curve_mds(void)
{
    for (size_t i = 0; i < NCURVES; i++)
        g_curve_md[i] = EVP_MD_fetch(NULL, OBJ_nid2sn(allowed_curves[i].md_nid), NULL);
}

/* The proof of possession for a key client_key_parse made from a point (its note n): 1 when
 * `der` (a DER ECDSA-Sig-Value, held to DER's one encoding as EVP_DigestVerify does), or else
 * `es`, verifies over msg with the curve's hash; 0 when not; -1 when it cannot be checked. */
static int point_verify(const struct ec_point_note *n, const unsigned char *msg, size_t msglen,
                        const unsigned char *der, size_t derlen, const ECDSA_SIG *es)
{
    static const unsigned char empty[1];
    unsigned char dgst[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    pthread_once(&g_curve_md_once, fetch_curve_mds);
    const EVP_MD *md = g_curve_md[n->curve - allowed_curves];
    EC_KEY *k = thread_ec_key(n->curve, n->point, n->len);
    if (!md || !k || derlen > INT_MAX ||
        EVP_Digest(msg ? msg : empty, msglen, dgst, &dlen, md, NULL) != 1)
        return -1;
    int v = der ? ECDSA_verify(0, dgst, (int)dlen, der, (int)derlen, k)
                : ECDSA_do_verify(dgst, (int)dlen, es, k);
    return v == 1;
}

/* As sigstore's ECDSAVerifier: a signature that parses as ASN.1 is checked as DER only;
 * otherwise it must be an IEEE P1363 r||s of even length up to 132 bytes. */
static int verify_ecdsa(EVP_PKEY *key, const struct allowed_curve *c, const unsigned char *msg,
                        size_t msglen, const unsigned char *sig, size_t siglen, char *why,
                        size_t whylen)
{
    const char *hash = c->hash;
    const struct ec_point_note *n = note_of(key);
    const unsigned char *p = sig;
    ECDSA_SIG *parsed = siglen <= LONG_MAX ? d2i_ECDSA_SIG(NULL, &p, (long)siglen) : NULL;
    int v;
    if (parsed) {
        ECDSA_SIG_free(parsed);
        v = n ? point_verify(n, msg, msglen, sig, siglen, NULL)
              : digest_verify(key, md_of(c->md_nid), msg, msglen, sig, siglen);
        if (v == 1)
            return 0;
        set_why(why, whylen, "ECDSA %s %s signature (ASN.1 DER) does not verify", c->nist, hash);
        return -1;
    }
    if (siglen == 0 || siglen > P1363_MAX_LEN || siglen % 2) {
        set_why(why, whylen,
                "ECDSA signature of %zu bytes is neither ASN.1 DER nor IEEE P1363 r||s", siglen);
        return -1;
    }
    ECDSA_SIG *es = p1363_sig(sig, siglen);
    unsigned char *der = NULL;
    int derlen = 0;
    if (!es)
        v = -1;
    else if (n)
        v = point_verify(n, msg, msglen, NULL, 0, es);
    else if ((derlen = i2d_ECDSA_SIG(es, &der)) > 0)
        v = digest_verify(key, md_of(c->md_nid), msg, msglen, der, (size_t)derlen);
    else
        v = -1;
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    if (v == 1)
        return 0;
    set_why(why, whylen, "ECDSA %s %s signature (IEEE P1363 r||s) does not verify", c->nist, hash);
    return -1;
}

static int verify_rsa(EVP_PKEY *key, const unsigned char *msg, size_t msglen,
                      const unsigned char *sig, size_t siglen, char *why, size_t whylen)
{
    int size = EVP_PKEY_get_size(key);
    if (size <= 0 || siglen != (size_t)size) {
        set_why(why, whylen,
                "RSA PKCS#1 v1.5 SHA-256 signature of %zu bytes does not verify (RSA %d "
                "signatures are %d bytes)",
                siglen, EVP_PKEY_get_bits(key), size);
        return -1;
    }
    if (digest_verify(key, EVP_sha256(), msg, msglen, sig, siglen) == 1)
        return 0;
    set_why(why, whylen, "RSA PKCS#1 v1.5 SHA-256 signature does not verify");
    return -1;
}

static int verify_ed25519(EVP_PKEY *key, const unsigned char *msg, size_t msglen,
                          const unsigned char *sig, size_t siglen, char *why, size_t whylen)
{
    if (siglen != 64) {
        set_why(why, whylen, "Ed25519 signature of %zu bytes does not verify (must be 64 bytes)",
                siglen);
        return -1;
    }
    if (digest_verify(key, NULL, msg, msglen, sig, siglen) == 1)
        return 0;
    set_why(why, whylen, "Ed25519 signature does not verify");
    return -1;
}

int client_key_verify_pop(EVP_PKEY *key, const unsigned char *msg, size_t msglen,
                          const unsigned char *sig, size_t siglen, char *why, size_t whylen)
{
    if (!key || !sig || siglen == 0) {
        set_why(why, whylen, "no proof-of-possession signature");
        return -1;
    }
    int rc = -1;
    set_why(why, whylen, "%s", "");
    ERR_set_mark();
    switch (key_kind(key)) {
    case KIND_RSA: rc = verify_rsa(key, msg, msglen, sig, siglen, why, whylen); break;
    case KIND_ED25519: rc = verify_ed25519(key, msg, msglen, sig, siglen, why, whylen); break;
    case KIND_EC: {
        const struct allowed_curve *c = key_curve(key);
        if (c)
            rc = verify_ecdsa(key, c, msg, msglen, sig, siglen, why, whylen);
        break;
    }
    default: break;
    }
    if (rc != 0 && why && whylen && !why[0]) {
        char desc[64];
        client_key_describe(key, desc, sizeof desc);
        set_why(why, whylen, "no proof-of-possession scheme for %s keys", desc);
    }
    ERR_pop_to_mark();
    return rc;
}

/* ---- allowed algorithms --------------------------------------------------------------------- */

/* Go's crypto.Hash.String(), as Fulcio prints it. */
static const char *go_hash_name(int md_nid)
{
    switch (md_nid) {
    case NID_undef: return "unknown hash value 0";
    case NID_md5: return "MD5";
    case NID_sha1: return "SHA-1";
    case NID_sha224: return "SHA-224";
    case NID_sha256: return "SHA-256";
    case NID_sha384: return "SHA-384";
    case NID_sha512: return "SHA-512";
    default: {
        const char *sn = OBJ_nid2sn(md_nid);
        return sn ? sn : "unknown hash";
    }
    }
}

/* Go's %T of the parsed key, as Fulcio prints it. */
static const char *go_key_type(EVP_PKEY *key)
{
    switch (key_kind(key)) {
    case KIND_RSA: return "*rsa.PublicKey";
    case KIND_EC: return "*ecdsa.PublicKey";
    case KIND_ED25519: return "ed25519.PublicKey";
    default: {
        const char *t = EVP_PKEY_get0_type_name(key);
        return t ? t : "unknown";
    }
    }
}

/* The default list: ecdsa-sha2-256-nistp256, ecdsa-sha2-384-nistp384, ecdsa-sha2-512-nistp521,
 * rsa-sign-pkcs1-{2048,3072,4096}-sha256, ed25519. Only key type/size/curve and hash count. */
int client_key_hash_allowed(EVP_PKEY *key, int md_nid, char *why, size_t whylen)
{
    if (!key) {
        set_why(why, whylen, "no public key");
        return -1;
    }
    int ok = 0;
    switch (key_kind(key)) {
    case KIND_RSA: {
        int bits = EVP_PKEY_get_bits(key);
        ok = (bits == 2048 || bits == 3072 || bits == 4096) && md_nid == NID_sha256;
        break;
    }
    case KIND_EC: {
        const struct allowed_curve *c = key_curve(key);
        ok = c && c->md_nid == md_nid;
        break;
    }
    case KIND_ED25519: ok = md_nid == NID_undef; break;
    default: break;
    }
    if (ok)
        return 0;
    set_why(why, whylen, "signing algorithm not permitted: %s, %s", go_key_type(key),
            go_hash_name(md_nid));
    return -1;
}

void client_key_describe(EVP_PKEY *key, char *out, size_t outlen)
{
    if (!out || !outlen)
        return;
    if (!key) {
        snprintf(out, outlen, "no key");
        return;
    }
    switch (key_kind(key)) {
    case KIND_RSA: snprintf(out, outlen, "RSA %d", EVP_PKEY_get_bits(key)); break;
    case KIND_ED25519: snprintf(out, outlen, "Ed25519"); break;
    case KIND_EC: {
        char name[80] = "";
        const struct ec_point_note *n = note_of(key);
        const struct allowed_curve *c =
            n ? n->curve : find_curve(ec_curve_nid(key, name, sizeof name));
        if (c)
            snprintf(out, outlen, "ECDSA %s", c->nist);
        else if (name[0])
            snprintf(out, outlen, "ECDSA %s", name);
        else
            snprintf(out, outlen, "ECDSA (explicit curve parameters)");
        break;
    }
    default: {
        const char *t = EVP_PKEY_get0_type_name(key);
        snprintf(out, outlen, "%s", t ? t : "unknown key type");
    }
    }
}
