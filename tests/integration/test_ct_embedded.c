/*
 * tests/integration/test_ct_embedded.c: Certificate Transparency end to end, with a real
 * `fulcrum serve`, a real dev issuer, and real logs.
 *
 *  1. Embedded log (--ct-log-url embedded, ephemeralca): every certificate (v2 key + proof, v2
 *     CSR, v1) carries exactly one SCT that OpenSSL's SCT_LIST_validate accepts with the key in
 *     <state-dir>/ctlog/public.pem; the precertificate is in the log (get-entries), its TBS
 *     without the poison equals the certificate's TBS without the SCT list, and the entry's
 *     inclusion proof (get-proof-by-hash) verifies against a signed STH with this file's own
 *     RFC 6962 code; `fulcrum trusted-root` describes the instance.
 *  2. External log (`fulcrum ctlog serve`, fileca with a three-certificate chain): the same
 *     checks with the intermediate as issuer; the log stopped -> 500 "Error entering certificate
 *     in CTL" after the retries; restarted -> certificates again; a wrong log key -> 500.
 *  3. A flaky log in front of the real one (a small HTTP server in this process): 503 with
 *     Retry-After, 429, 408 are retried; 500 and a junk 200 are not.
 *  4. The drain: SIGTERM while a request waits for a stalled external log answers that request
 *     and refuses (503) a new one on an idle keep-alive connection; the exit status is 0.
 *  5. Start-up refusals of the CT flags, and the warning when CT is off.
 */
#include <dirent.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/ct.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "integration/harness.h"
#include "unit/check.h"

#define MSG_CTL "Error entering certificate in CTL"

static h_issuer g_iss;

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- bytes ------------------------------------------------------------------------------ */

static unsigned char *b64dec(const char *s, size_t *len)
{
    size_t n = s ? strlen(s) : 0;
    if (!s || n % 4)
        return NULL;
    unsigned char *out = malloc(n / 4 * 3 + 1);
    int r = out ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)n) : -1;
    if (r < 0) {
        free(out);
        return NULL;
    }
    size_t pad = (n && s[n - 1] == '=') + (n > 1 && s[n - 2] == '=');
    *len = (size_t)r - pad;
    return out;
}

static void sha256(const unsigned char *d, size_t n, unsigned char out[32])
{
    unsigned int l = 0;
    EVP_Digest(d, n, out, &l, EVP_sha256(), NULL);
}

static void node_hash(const unsigned char *l, const unsigned char *r, unsigned char out[32])
{
    unsigned char buf[65];
    buf[0] = 0x01;
    memcpy(buf + 1, l, 32);
    memcpy(buf + 33, r, 32);
    sha256(buf, sizeof buf, out);
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static void put_be(unsigned char *b, size_t *o, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--)
        b[(*o)++] = (unsigned char)(v >> (8 * i));
}

/* ---- certificates ----------------------------------------------------------------------- */

static EVP_PKEY *read_pubkey(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *k = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return k;
}

static unsigned char *tbs_minus(X509 *c, int nid, int *len)
{
    X509 *d = X509_dup(c);
    int i = d ? X509_get_ext_by_NID(d, nid, -1) : -1;
    unsigned char *tbs = NULL;
    *len = 0;
    if (i >= 0) {
        X509_EXTENSION_free(X509_delete_ext(d, i));
        *len = i2d_re_X509_tbs(d, &tbs);
    }
    X509_free(d);
    return tbs;
}

/* OpenSSL's own check of leaf's SCT list: exactly one SCT, valid for the log key in key_path
 * (a CONF log store written here), issued by `issuer`. */
static int openssl_sct_valid(X509 *leaf, X509 *issuer, const char *key_path, const char *what)
{
    EVP_PKEY *k = read_pubkey(key_path);
    unsigned char *der = NULL;
    int n = k ? i2d_PUBKEY(k, &der) : -1;
    EVP_PKEY_free(k);
    if (n <= 0) {
        CHECK(0, "%s: log key %s readable", what, key_path);
        return 0;
    }
    char b64[512], conf_path[4200], conf[700];
    EVP_EncodeBlock((unsigned char *)b64, der, n);
    OPENSSL_free(der);
    snprintf(conf_path, sizeof conf_path, "%s/ctlogs.cnf", h_tmpdir());
    snprintf(conf, sizeof conf, "enabled_logs = l\n[l]\ndescription = log\nkey = %s\n", b64);
    h_write_file(conf_path, conf);
    CTLOG_STORE *store = CTLOG_STORE_new();
    CT_POLICY_EVAL_CTX *ctx = CT_POLICY_EVAL_CTX_new();
    int crit = -1;
    STACK_OF(SCT) *scts = X509_get_ext_d2i(leaf, NID_ct_precert_scts, &crit, NULL);
    int ok = store && ctx && CTLOG_STORE_load_file(store, conf_path) == 1;
    CHECK(scts && sk_SCT_num(scts) == 1 && crit == 0,
          "%s: exactly one SCT in a non-critical SCT list extension", what);
    CHECK(X509_get_ext_by_NID(leaf, NID_ct_precert_poison, -1) < 0, "%s: no poison", what);
    ok = ok && scts && sk_SCT_num(scts) == 1 && CT_POLICY_EVAL_CTX_set1_cert(ctx, leaf) == 1 &&
         CT_POLICY_EVAL_CTX_set1_issuer(ctx, issuer) == 1;
    if (ok) {
        CT_POLICY_EVAL_CTX_set_shared_CTLOG_STORE(ctx, store);
        int r = SCT_LIST_validate(scts, ctx);
        SCT *s = sk_SCT_value(scts, 0);
        ok = r == 1 && SCT_get_validation_status(s) == SCT_VALIDATION_STATUS_VALID;
        CHECK(ok, "%s: OpenSSL SCT_LIST_validate: %d, status %s", what, r,
              SCT_validation_status_string(s));
        CHECK(SCT_get_version(s) == SCT_VERSION_V1 && SCT_get_timestamp(s) <=
                  (uint64_t)time(NULL) * 1000 + 1000,
              "%s: v1 SCT with a past timestamp", what);
    }
    SCT_LIST_free(scts);
    CT_POLICY_EVAL_CTX_free(ctx);
    CTLOG_STORE_free(store);
    return ok;
}

/* The MerkleTreeLeaf (ct-notes §1.9) of a final certificate's embedded SCT, built here from the
 * certificate alone: timestamp and extensions from the SCT, issuer key hash, TBS minus SCTs. */
static unsigned char *leaf_input_for(X509 *leaf, X509 *issuer, size_t *len)
{
    STACK_OF(SCT) *scts = X509_get_ext_d2i(leaf, NID_ct_precert_scts, NULL, NULL);
    if (!scts || sk_SCT_num(scts) != 1) {
        SCT_LIST_free(scts);
        return NULL;
    }
    SCT *s = sk_SCT_value(scts, 0);
    unsigned char *ext = NULL;
    size_t extlen = SCT_get0_extensions(s, &ext);
    int tbslen = 0;
    unsigned char *tbs = tbs_minus(leaf, NID_ct_precert_scts, &tbslen);
    unsigned char *spki = NULL;
    int spkilen = i2d_PUBKEY(X509_get0_pubkey(issuer), &spki);
    unsigned char *out = tbs && spkilen > 0 ? malloc(2 + 8 + 2 + 32 + 3 + (size_t)tbslen + 2 +
                                                     extlen)
                                            : NULL;
    if (out) {
        size_t o = 0;
        out[o++] = 0; /* v1 */
        out[o++] = 0; /* timestamped_entry */
        put_be(out, &o, SCT_get_timestamp(s), 8);
        put_be(out, &o, 1, 2); /* precert_entry */
        sha256(spki, (size_t)spkilen, out + o);
        o += 32;
        put_be(out, &o, (uint64_t)tbslen, 3);
        memcpy(out + o, tbs, (size_t)tbslen);
        o += (size_t)tbslen;
        put_be(out, &o, extlen, 2);
        if (extlen)
            memcpy(out + o, ext, extlen);
        o += extlen;
        *len = o;
    }
    OPENSSL_free(spki);
    OPENSSL_free(tbs);
    SCT_LIST_free(scts);
    return out;
}

/* RFC 9162 §2.1.3.2 inclusion proof verification. */
static int inclusion_ok(uint64_t index, uint64_t size, const unsigned char leaf_hash[32],
                        json_t *path, const unsigned char root[32])
{
    if (index >= size)
        return 0;
    uint64_t fn = index, sn = size - 1;
    unsigned char r[32];
    memcpy(r, leaf_hash, 32);
    size_t i;
    json_t *p;
    json_array_foreach(path, i, p) {
        size_t plen = 0;
        unsigned char *node = b64dec(json_string_value(p), &plen);
        if (!node || plen != 32 || sn == 0) {
            free(node);
            return 0;
        }
        if ((fn & 1) || fn == sn) {
            node_hash(node, r, r);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            node_hash(r, node, r);
        }
        fn >>= 1;
        sn >>= 1;
        free(node);
    }
    return sn == 0 && memcmp(r, root, 32) == 0;
}

/* GET <url> as JSON (NULL unless 200). */
static json_t *get_json(const char *url)
{
    h_response r;
    json_t *j = NULL;
    if (h_get(url, &r) == 0 && r.status == 200)
        j = h_json(&r);
    h_response_free(&r);
    return j;
}

/* Checks the STH signature (TreeHeadSignature, ct-notes §1.10) with the log key. */
static int sth_ok(json_t *sth, EVP_PKEY *key, uint64_t *size, unsigned char root[32])
{
    size_t rlen = 0, slen = 0;
    unsigned char *rh = b64dec(json_string_value(json_object_get(sth, "sha256_root_hash")), &rlen);
    unsigned char *sig =
        b64dec(json_string_value(json_object_get(sth, "tree_head_signature")), &slen);
    json_int_t ts = json_integer_value(json_object_get(sth, "timestamp"));
    json_int_t n = json_integer_value(json_object_get(sth, "tree_size"));
    int ok = rh && rlen == 32 && sig && slen > 4 && sig[0] == 4 && sig[1] == 3 &&
             get_be(sig + 2, 2) == slen - 4;
    if (ok) {
        unsigned char in[50];
        size_t o = 0;
        in[o++] = 0;
        in[o++] = 1;
        put_be(in, &o, (uint64_t)ts, 8);
        put_be(in, &o, (uint64_t)n, 8);
        memcpy(in + o, rh, 32);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerify(md, sig + 4, slen - 4, in, sizeof in) == 1;
        EVP_MD_CTX_free(md);
        *size = (uint64_t)n;
        memcpy(root, rh, 32);
    }
    free(rh);
    free(sig);
    return ok;
}

/* The certificate's precertificate is in the log at `log_url`: inclusion proof against a signed
 * STH, get-entries gives the same leaf, and extra_data's precertificate corresponds. */
static void check_in_log(const char *log_url, const char *key_path, X509 *leaf, X509 *issuer,
                         const char *what)
{
    EVP_PKEY *key = read_pubkey(key_path);
    size_t llen = 0;
    unsigned char *leaf_input = leaf_input_for(leaf, issuer, &llen);
    CHECK(key && leaf_input, "%s: log key and leaf input", what);
    if (!key || !leaf_input) {
        EVP_PKEY_free(key);
        free(leaf_input);
        return;
    }
    unsigned char lh[32], root[32];
    unsigned char *pre = malloc(llen + 1);
    pre[0] = 0x00;
    memcpy(pre + 1, leaf_input, llen);
    sha256(pre, llen + 1, lh);
    free(pre);
    char *hb64 = h_b64(lh, 32, 0);
    char *esc = curl_easy_escape(NULL, hb64, 0);

    /* The STH covers a new entry within sth_interval (250 ms): poll up to 5 s. */
    json_t *proof = NULL;
    uint64_t size = 0;
    int sth_good = 0;
    long deadline = mono_ms() + 5000;
    while (!proof && mono_ms() < deadline) {
        char url[512];
        snprintf(url, sizeof url, "%s/ct/v1/get-sth", log_url);
        json_t *sth = get_json(url);
        sth_good = sth && sth_ok(sth, key, &size, root);
        json_decref(sth);
        if (sth_good && size > 0) {
            snprintf(url, sizeof url, "%s/ct/v1/get-proof-by-hash?hash=%s&tree_size=%llu",
                     log_url, esc, (unsigned long long)size);
            proof = get_json(url);
        }
        if (!proof)
            sleep_ms(50);
    }
    CHECK(sth_good, "%s: get-sth is signed by the log key", what);
    CHECK(proof != NULL, "%s: get-proof-by-hash finds the leaf built from the certificate", what);
    if (proof) {
        json_int_t idx = json_integer_value(json_object_get(proof, "leaf_index"));
        CHECK(inclusion_ok((uint64_t)idx, size, lh, json_object_get(proof, "audit_path"), root),
              "%s: inclusion proof of leaf %lld in tree %llu verifies (RFC 9162 code here)", what,
              (long long)idx, (unsigned long long)size);
        char url[512];
        snprintf(url, sizeof url, "%s/ct/v1/get-entries?start=%lld&end=%lld", log_url,
                 (long long)idx, (long long)idx);
        json_t *ents = get_json(url);
        json_t *e = json_array_get(json_object_get(ents, "entries"), 0);
        size_t got_len = 0, xlen = 0;
        unsigned char *got = b64dec(json_string_value(json_object_get(e, "leaf_input")), &got_len);
        unsigned char *extra = b64dec(json_string_value(json_object_get(e, "extra_data")), &xlen);
        CHECK(got && got_len == llen && memcmp(got, leaf_input, llen) == 0,
              "%s: get-entries leaf_input = the leaf rebuilt from the final certificate", what);
        /* extra_data = PrecertChainEntry: u24 precert DER, u24 chain of u24 certs. */
        X509 *pc = NULL;
        if (extra && xlen > 3 && get_be(extra, 3) + 3 <= xlen) {
            const unsigned char *q = extra + 3;
            pc = d2i_X509(NULL, &q, (long)get_be(extra, 3));
        }
        CHECK(pc != NULL, "%s: extra_data starts with the precertificate", what);
        if (pc) {
            int i = X509_get_ext_by_NID(pc, NID_ct_precert_poison, -1);
            CHECK(i == X509_get_ext_count(pc) - 1 &&
                      X509_EXTENSION_get_critical(X509_get_ext(pc, i)),
                  "%s: the precertificate's last extension is the critical poison", what);
            CHECK(X509_verify(pc, X509_get0_pubkey(issuer)) == 1,
                  "%s: the precertificate is signed by the issuing CA", what);
            CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(pc), X509_get0_serialNumber(leaf)) == 0,
                  "%s: precertificate and certificate share the serial", what);
            int a = 0, b = 0;
            unsigned char *ta = tbs_minus(pc, NID_ct_precert_poison, &a);
            unsigned char *tb = tbs_minus(leaf, NID_ct_precert_scts, &b);
            CHECK(a > 0 && a == b && memcmp(ta, tb, (size_t)a) == 0,
                  "%s: certificate TBS minus SCT list == precertificate TBS minus poison", what);
            OPENSSL_free(ta);
            OPENSSL_free(tb);
        }
        X509_free(pc);
        free(got);
        free(extra);
        json_decref(ents);
    }
    json_decref(proof);
    curl_free(esc);
    free(hb64);
    free(leaf_input);
    EVP_PKEY_free(key);
}

/* ---- requests --------------------------------------------------------------------------- */

static char *dump(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static char *v2_key_body(const char *token, EVP_PKEY *key, const char *challenge)
{
    char *pem = h_key_spki_pem(key);
    size_t sig_len = 0;
    unsigned char *sig = h_sign_pop(key, challenge, &sig_len);
    char *b64 = sig ? h_b64(sig, sig_len, 0) : NULL;
    char *out = NULL;
    if (pem && b64)
        out = dump(json_pack("{s:{s:s},s:{s:{s:s,s:s},s:s}}", "credentials", "oidcIdentityToken",
                             token, "publicKeyRequest", "publicKey", "algorithm", "ECDSA",
                             "content", pem, "proofOfPossession", b64));
    free(pem);
    free(sig);
    free(b64);
    return out;
}

/* POSTs one v2 request for `email` (key + proof, or a CSR) to srv_url; fills r. */
static void request_v2(const char *srv_url, const char *email, int csr, h_response *r,
                       EVP_PKEY **key_out)
{
    char q[200], url[256];
    snprintf(q, sizeof q, "email=%s", email);
    snprintf(url, sizeof url, "%s/api/v2/signingCert", srv_url);
    char *tok = h_issuer_token(&g_iss, q);
    EVP_PKEY *key = h_key_new("P-256");
    char *body = NULL;
    if (tok && key && csr) {
        char *pem = h_csr_pem(key, key, NULL);
        char *b64 = pem ? h_b64(pem, strlen(pem), 0) : NULL;
        body = b64 ? dump(json_pack("{s:{s:s},s:s}", "credentials", "oidcIdentityToken", tok,
                                    "certificateSigningRequest", b64))
                   : NULL;
        free(pem);
        free(b64);
    } else if (tok && key) {
        body = v2_key_body(tok, key, email);
    }
    memset(r, 0, sizeof *r);
    if (body)
        h_post_json(url, body, NULL, r);
    free(body);
    free(tok);
    if (key_out)
        *key_out = key;
    else
        EVP_PKEY_free(key);
}

/* A v2 embedded-SCT answer: exactly {"signedCertificateEmbeddedSct":{"chain":{"certificates":
 * [leaf, ..., root]}}}. Returns the chain or NULL. */
static STACK_OF(X509) *embedded_chain(const h_response *r, size_t want_len, const char *what)
{
    CHECK(r->status == 200, "%s: status %ld, want 200 (%.300s)", what, r->status,
          r->body ? r->body : r->curl_error);
    if (r->status != 200)
        return NULL;
    json_t *j = h_json(r);
    json_t *e = json_object_get(j, "signedCertificateEmbeddedSct");
    json_t *chain = json_object_get(e, "chain");
    json_t *certs = json_object_get(chain, "certificates");
    CHECK(json_object_size(j) == 1 && json_object_size(e) == 1 && json_object_size(chain) == 1 &&
              json_array_size(certs) == want_len,
          "%s: answer is exactly signedCertificateEmbeddedSct.chain.certificates[%zu]: %.300s",
          what, want_len, r->body);
    STACK_OF(X509) *out = h_chain_from_json(certs);
    json_decref(j);
    return out;
}

/* One certificate through every check: chain, SCT (OpenSSL), log contents. */
static void check_issued(STACK_OF(X509) *chain, const char *log_url, const char *key_path,
                         EVP_PKEY *key, const char *what)
{
    if (!chain)
        return;
    X509 *leaf = sk_X509_value(chain, 0), *issuer = sk_X509_value(chain, 1);
    X509 *root = sk_X509_value(chain, sk_X509_num(chain) - 1);
    CHECK(h_verify_chain(chain, root), "%s: chain verifies to the root", what);
    if (key)
        CHECK(EVP_PKEY_eq(X509_get0_pubkey(leaf), key) == 1, "%s: certified key", what);
    if (openssl_sct_valid(leaf, issuer, key_path, what))
        check_in_log(log_url, key_path, leaf, issuer, what);
}

/* ---- a flaky log: a tiny HTTP server in this process ------------------------------------- */

enum fake_mode { FAKE_PROXY, FAKE_503_ONCE, FAKE_429_ONCE, FAKE_408, FAKE_500, FAKE_JUNK };

static struct fake {
    int fd, port;
    pthread_t th;
    atomic_int mode, requests, stop;
    char upstream[128];
} g_fake;

struct buf {
    char *p;
    size_t len;
};

static size_t buf_write(char *d, size_t s, size_t n, void *arg)
{
    struct buf *b = arg;
    char *p = realloc(b->p, b->len + s * n + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, d, s * n);
    b->p = p;
    b->len += s * n;
    b->p[b->len] = '\0';
    return s * n;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void fake_answer(int fd, int status, const char *extra_header, const char *body)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n%s\r\n",
                     status, strlen(body), extra_header ? extra_header : "");
    send_all(fd, head, (size_t)n);
    send_all(fd, body, strlen(body));
}

/* Reads one request (head and Content-Length body) and answers it per g_fake.mode. */
static void fake_serve(int fd)
{
    char *req = malloc(1 << 20);
    size_t len = 0;
    long clen = -1;
    char *body = NULL;
    while (len < (1 << 20) - 1) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 5000) <= 0)
            break;
        ssize_t r = recv(fd, req + len, (1 << 20) - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
        req[len] = '\0';
        char *end = strstr(req, "\r\n\r\n");
        if (end && clen < 0) {
            char *cl = strcasestr(req, "Content-Length:");
            clen = cl && cl < end ? strtol(cl + 15, NULL, 10) : 0;
            body = end + 4;
        }
        if (body && (long)(len - (size_t)(body - req)) >= clen)
            break;
    }
    int n = atomic_fetch_add(&g_fake.requests, 1);
    switch (atomic_load(&g_fake.mode)) {
    case FAKE_503_ONCE:
        if (n == 0) {
            fake_answer(fd, 503, "Retry-After: 1\r\n", "{\"error\":\"busy\"}");
            goto done;
        }
        break;
    case FAKE_429_ONCE:
        if (n == 0) {
            fake_answer(fd, 429, NULL, "{\"error\":\"slow down\"}");
            goto done;
        }
        break;
    case FAKE_408: fake_answer(fd, 408, NULL, "{\"error\":\"timeout\"}"); goto done;
    case FAKE_500: fake_answer(fd, 500, NULL, "fake log says no: disk on fire"); goto done;
    case FAKE_JUNK: fake_answer(fd, 200, NULL, "{\"sct_version\":0}"); goto done;
    default: break;
    }
    /* Relay to the real log. */
    {
        struct buf out = {0};
        char url[256];
        snprintf(url, sizeof url, "%s/ct/v1/add-pre-chain", g_fake.upstream);
        CURL *h = curl_easy_init();
        struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
        long status = 502;
        if (h && body) {
            curl_easy_setopt(h, CURLOPT_URL, url);
            curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, clen);
            curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write);
            curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
            curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
            if (curl_easy_perform(h) == CURLE_OK)
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        }
        fake_answer(fd, (int)status, NULL, out.p ? out.p : "");
        free(out.p);
        curl_slist_free_all(hd);
        curl_easy_cleanup(h);
    }
done:
    free(req);
}

static void *fake_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_fake.stop)) {
        struct pollfd pfd = {g_fake.fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        int c = accept(g_fake.fd, NULL, NULL);
        if (c < 0)
            continue;
        fake_serve(c);
        close(c);
    }
    return NULL;
}

static int fake_start(const char *upstream)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    g_fake.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (g_fake.fd < 0 || bind(g_fake.fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(g_fake.fd, 16) != 0 || getsockname(g_fake.fd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    g_fake.port = ntohs(a.sin_port);
    snprintf(g_fake.upstream, sizeof g_fake.upstream, "%s", upstream);
    return pthread_create(&g_fake.th, NULL, fake_main, NULL) == 0 ? 0 : -1;
}

static void fake_stop(void)
{
    atomic_store(&g_fake.stop, 1);
    pthread_join(g_fake.th, NULL);
    close(g_fake.fd);
}

static void fake_mode(enum fake_mode m)
{
    atomic_store(&g_fake.mode, (int)m);
    atomic_store(&g_fake.requests, 0);
}

/* ---- the cases -------------------------------------------------------------------------- */

static int stderr_has(const h_proc *p, const char *needle)
{
    char *text = h_read_file(p->stderr_path, NULL);
    int found = text && strstr(text, needle);
    free(text);
    return found;
}

/* Whether process pid has a thread named name (/proc/<pid>/task/<tid>/comm). */
static int thread_named(pid_t pid, const char *name)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[600], comm[32] = "";
        snprintf(path, sizeof path, "%s/%s/comm", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fgets(comm, sizeof comm, f))
                comm[strcspn(comm, "\n")] = '\0';
            fclose(f);
        }
        found = strcmp(comm, name) == 0;
    }
    closedir(d);
    return found;
}

static void test_embedded(void)
{
    char state[4200], key_path[4300];
    snprintf(state, sizeof state, "%s/ca-state", h_tmpdir());
    snprintf(key_path, sizeof key_path, "%s/ctlog/public.pem", state);
    const char *extra[] = {"--ct-log-url", "embedded", "--state-dir", state, NULL};
    h_server srv;
    h_server_opts o = {.ca = "ephemeralca", .issuer = &g_iss, .extra_args = extra};
    if (h_server_start(&srv, &o) != 0) {
        CHECK(0, "embedded: server starts");
        return;
    }
    CHECK(!stderr_has(&srv.proc, "Certificate Transparency is OFF"),
          "embedded: no CT-off warning");
    if (!srv.proc.valgrind) {
        const char *want[] = {"http-worker-0", "ctlog-writer", "audit-writer", "jwks-fetch"};
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            CHECK(thread_named(srv.proc.pid, want[i]),
                  "embedded: a thread is named %s (top -H, perf)", want[i]);
    }
    for (int i = 0; i < 3; i++) {
        char email[64], what[64];
        snprintf(email, sizeof email, "ct-%d@example.com", i);
        snprintf(what, sizeof what, "embedded v2 %s #%d", i == 1 ? "CSR" : "key", i);
        h_response r;
        EVP_PKEY *key = NULL;
        request_v2(srv.url, email, i == 1, &r, &key);
        STACK_OF(X509) *chain = embedded_chain(&r, 2, what);
        check_issued(chain, srv.url, key_path, key, what);
        sk_X509_pop_free(chain, X509_free);
        EVP_PKEY_free(key);
        h_response_free(&r);
    }

    /* v1: 201, PEM chain, no SCT header, the SCT inside. */
    {
        char *tok = h_issuer_token(&g_iss, "email=ct-v1@example.com");
        EVP_PKEY *key = h_key_new("P-256");
        char *pem = h_key_spki_pem(key);
        size_t sl = 0;
        unsigned char *sig = h_sign_pop(key, "ct-v1@example.com", &sl);
        char *pem64 = h_b64(pem, strlen(pem), 0), *sig64 = h_b64(sig, sl, 0);
        char *body = dump(json_pack("{s:{s:s},s:s}", "publicKey", "content", pem64,
                                    "signedEmailAddress", sig64));
        char url[256];
        snprintf(url, sizeof url, "%s/api/v1/signingCert", srv.url);
        h_response r;
        h_post_json(url, body, tok, &r);
        CHECK(r.status == 201, "embedded v1: status %ld, want 201 (%.200s)", r.status,
              r.body ? r.body : "");
        char *sct_hdr = h_header(&r, "SCT");
        CHECK(sct_hdr == NULL, "embedded v1: no SCT header (the SCT is embedded)");
        free(sct_hdr);
        STACK_OF(X509) *chain = r.status == 201 ? h_chain_from_pem(r.body) : NULL;
        CHECK(chain && sk_X509_num(chain) == 2, "embedded v1: leaf + root");
        check_issued(chain, srv.url, key_path, key, "embedded v1");
        sk_X509_pop_free(chain, X509_free);
        h_response_free(&r);
        free(body);
        free(pem64);
        free(sig64);
        free(sig);
        free(pem);
        free(tok);
        EVP_PKEY_free(key);
    }

    /* The log API is on the CA's listener; unknown CT endpoints are 404. */
    {
        char url[256];
        snprintf(url, sizeof url, "%s/ct/v1/get-roots", srv.url);
        json_t *roots = get_json(url);
        CHECK(json_array_size(json_object_get(roots, "certificates")) == 1,
              "embedded: get-roots lists the CA root");
        json_decref(roots);
        snprintf(url, sizeof url, "%s/ct/v1/no-such-endpoint", srv.url);
        h_response r;
        h_get(url, &r);
        CHECK(r.status == 404, "embedded: unknown /ct/v1/ endpoint is 404 (got %ld)", r.status);
        h_response_free(&r);
    }

    /* fulcrum trusted-root for this instance. */
    {
        const char *bin = h_env("FULCRUM_BIN");
        char *argv[] = {(char *)bin, "trusted-root", "--server-url", srv.url, "--state-dir",
                        state, NULL};
        char *err = NULL;
        int rc = h_run("trusted-root", argv, 20000, &err);
        CHECK(rc == 0, "trusted-root exits 0 (%s)", err ? err : "");
        free(err);
        char out_path[4200];
        snprintf(out_path, sizeof out_path, "%s/trusted-root.stdout", h_tmpdir());
        char *text = h_read_file(out_path, NULL);
        json_t *tr = text ? json_loads(text, 0, NULL) : NULL;
        free(text);
        json_t *log = json_array_get(json_object_get(tr, "ctlogs"), 0);
        EVP_PKEY *k = read_pubkey(key_path);
        unsigned char *der = NULL, id[32];
        int n = k ? i2d_PUBKEY(k, &der) : 0;
        sha256(der, (size_t)(n > 0 ? n : 0), id);
        char *raw = h_b64(der, (size_t)(n > 0 ? n : 0), 0), *kid = h_b64(id, 32, 0);
        CHECK_STREQ(json_string_value(json_object_get(tr, "mediaType")),
                    "application/vnd.dev.sigstore.trustedroot+json;version=0.1", "mediaType");
        CHECK_STREQ(json_string_value(json_object_get(log, "baseUrl")), srv.url, "ctlog baseUrl");
        CHECK_STREQ(json_string_value(json_object_get(log, "hashAlgorithm")), "SHA2_256",
                    "ctlog hashAlgorithm");
        json_t *pk = json_object_get(log, "publicKey");
        CHECK_STREQ(json_string_value(json_object_get(pk, "rawBytes")), raw, "ctlog rawBytes");
        CHECK_STREQ(json_string_value(json_object_get(pk, "keyDetails")),
                    "PKIX_ECDSA_P256_SHA_256", "ctlog keyDetails");
        CHECK_STREQ(json_string_value(json_object_get(json_object_get(log, "logId"), "keyId")),
                    kid, "ctlog logId.keyId = base64 SHA-256 of the SPKI");
        json_t *ca = json_array_get(json_object_get(tr, "certificateAuthorities"), 0);
        json_t *certs = json_object_get(json_object_get(ca, "certChain"), "certificates");
        CHECK(json_array_size(certs) == 1 &&
                  json_is_string(json_object_get(json_array_get(certs, 0), "rawBytes")),
              "trusted-root: the CA chain (ephemeralca: the root)");
        CHECK(json_is_string(json_object_get(json_object_get(ca, "validFor"), "start")),
              "trusted-root: validFor.start");
        free(raw);
        free(kid);
        OPENSSL_free(der);
        EVP_PKEY_free(k);
        json_decref(tr);
    }
    int code = h_proc_stop(&srv.proc, 10000);
    CHECK(code == 0, "embedded: exit status %d after SIGTERM, want 0", code);
}

/* The intermediate-3 fixture chain: intermediate2 (issuing), intermediate1, root. */
/* The fixture CA (intermediate-3: cert, key) and a roots file with its chain's root, for an
 * external log. */
static void external_ca_files(const char *fixtures, char cert[4096], char keyf[4096],
                              char roots[4200])
{
    snprintf(cert, 4096, "%s/fulcio-fileca/intermediate-3-cert.pem", fixtures);
    snprintf(keyf, 4096, "%s/fulcio-fileca/intermediate-3-key.pem", fixtures);
    snprintf(roots, 4200, "%s/roots.pem", h_tmpdir());
    char *chain_text = h_read_file(cert, NULL);
    const char *last = chain_text ? strstr(chain_text, "-----BEGIN CERTIFICATE-----") : NULL;
    for (const char *p = last; p && (p = strstr(p + 1, "-----BEGIN CERTIFICATE-----"));)
        last = p;
    CHECK(last && h_write_file(roots, last) == 0, "external: roots file (the chain's root)");
    free(chain_text);
}

/* An external log (fulcrum ctlog serve on `port`, 0 = any, state in <tmp>/<state>, roots: the
 * fixture CA's root) and a fileca server with the fixture CA using it (--ct-log-timeout
 * `timeout`). roots and lstate receive the log's files. 0, or -1 with nothing left running. */
static int external_start(const char *fixtures, const char *what, const char *state,
                          const char *log_name, int port, const char *timeout, char roots[4200],
                          char lstate[4200], h_ctlog *log, h_server *srv)
{
    char cert[4096], keyf[4096];
    external_ca_files(fixtures, cert, keyf, roots);
    snprintf(lstate, 4200, "%s/%s", h_tmpdir(), state);
    if (port < 0 || h_ctlog_start(log, log_name, roots, lstate, port) != 0) {
        CHECK(0, "%s: fulcrum ctlog serve starts", what);
        return -1;
    }
    const char *extra[] = {"--ct-log-url", log->url, "--ct-log-public-key-path",
                           log->public_key_path, "--ct-log-timeout", timeout, NULL};
    h_server_opts o = {.ca = "fileca", .issuer = &g_iss, .fileca_cert = cert,
                       .fileca_key = keyf, .fileca_passwd = "password123", .extra_args = extra};
    if (h_server_start(srv, &o) != 0) {
        CHECK(0, "%s: server starts", what);
        h_proc_stop(&log->proc, 5000);
        return -1;
    }
    return 0;
}

static void test_external(const char *fixtures)
{
    char roots[4200], lstate[4200];
    int port = h_free_port();
    h_ctlog log;
    h_server srv;
    if (external_start(fixtures, "external", "ext-log-state", "ctlog-1", port > 0 ? port : -1,
                       "3s", roots, lstate, &log, &srv) != 0)
        return;
    h_response r;
    EVP_PKEY *key = NULL;
    request_v2(srv.url, "ext-1@example.com", 0, &r, &key);
    STACK_OF(X509) *chain = embedded_chain(&r, 4, "external v2");
    check_issued(chain, log.url, log.public_key_path, key, "external v2");
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    h_response_free(&r);
    {
        char url[256];
        snprintf(url, sizeof url, "%s/ct/v1/get-sth", srv.url);
        h_get(url, &r);
        CHECK(r.status == 404, "external: the CA serves no log API (got %ld)", r.status);
        h_response_free(&r);
    }

    /* The log goes away: transport errors are retried until --ct-log-timeout, then 500. */
    CHECK(h_proc_stop(&log.proc, 10000) == 0, "external: log stops cleanly");
    long t0 = mono_ms();
    request_v2(srv.url, "ext-down@example.com", 0, &r, NULL);
    long took = mono_ms() - t0;
    CHECK(h_is_error(&r, 500, 13, MSG_CTL), "external: log down -> 500 %s", MSG_CTL);
    json_t *j = h_json(&r);
    CHECK_STREQ(json_string_value(json_object_get(j, "message")), MSG_CTL,
                "external: the message is exactly Fulcio's");
    json_decref(j);
    CHECK(r.body && !strstr(r.body, "CERTIFICATE"), "external: no certificate in the answer");
    /* Attempts at 0, ~0.5-0.75 s, ~1.5-2 s; the next (~3.5 s) would pass the 3 s deadline, so
     * the CA gives up without waiting for it. */
    CHECK(took >= 1400 && took < 3000, "external: retried within the 3 s deadline (took %ld ms)",
          took);
    CHECK(stderr_has(&srv.proc, "gave up after 3 attempts within 3000 ms"),
          "external: the server log says it gave up after 3 attempts");
    h_response_free(&r);

    /* The log comes back (same port, same state): issuance works again. */
    h_ctlog log2;
    if (h_ctlog_start(&log2, "ctlog-2", roots, lstate, port) == 0) {
        request_v2(srv.url, "ext-2@example.com", 1, &r, NULL);
        chain = embedded_chain(&r, 4, "external after restart");
        check_issued(chain, log2.url, log2.public_key_path, NULL, "external after restart");
        sk_X509_pop_free(chain, X509_free);
        h_response_free(&r);
    } else {
        CHECK(0, "external: log restarts");
    }
    int code = h_proc_stop(&srv.proc, 10000);
    CHECK(code == 0, "external: CA exit status %d, want 0", code);

    /* A CA configured with the wrong log key refuses the log's SCTs. */
    char wrong[4200];
    snprintf(wrong, sizeof wrong, "%s/wrong-log.pem", h_tmpdir());
    EVP_PKEY *wk = h_key_new("P-256");
    char *wpem = h_key_spki_pem(wk);
    h_write_file(wrong, wpem);
    free(wpem);
    EVP_PKEY_free(wk);
    const char *extra2[] = {"--ct-log-url", log2.url, "--ct-log-public-key-path", wrong, NULL};
    char cert[4096], keyf[4096];
    external_ca_files(fixtures, cert, keyf, roots);
    h_server_opts o = {.ca = "fileca", .issuer = &g_iss, .fileca_cert = cert,
                       .fileca_key = keyf, .fileca_passwd = "password123", .extra_args = extra2};
    if (log2.proc.pid && h_server_start(&srv, &o) == 0) {
        request_v2(srv.url, "ext-wrongkey@example.com", 0, &r, NULL);
        CHECK(h_is_error(&r, 500, 13, MSG_CTL), "wrong log key -> 500 %s", MSG_CTL);
        CHECK(stderr_has(&srv.proc, "is not the configured log's"),
              "wrong log key: the server log names the log ID mismatch");
        h_response_free(&r);
        h_proc_stop(&srv.proc, 10000);
    } else {
        CHECK(0, "wrong-key server starts");
    }

    /* A flaky log in front of the real one. */
    if (log2.proc.pid && fake_start(log2.url) == 0) {
        char fake_url[64];
        snprintf(fake_url, sizeof fake_url, "http://127.0.0.1:%d", g_fake.port);
        const char *extra3[] = {"--ct-log-url", fake_url, "--ct-log-public-key-path",
                                log2.public_key_path, "--ct-log-timeout", "2s", NULL};
        o.extra_args = extra3;
        if (h_server_start(&srv, &o) == 0) {
            fake_mode(FAKE_PROXY);
            request_v2(srv.url, "flaky-0@example.com", 0, &r, NULL);
            chain = embedded_chain(&r, 4, "through the relay");
            check_issued(chain, log2.url, log2.public_key_path, NULL, "through the relay");
            sk_X509_pop_free(chain, X509_free);
            h_response_free(&r);

            fake_mode(FAKE_503_ONCE);
            t0 = mono_ms();
            request_v2(srv.url, "flaky-503@example.com", 0, &r, NULL);
            took = mono_ms() - t0;
            chain = embedded_chain(&r, 4, "503 + Retry-After: 1, then OK");
            CHECK(atomic_load(&g_fake.requests) == 2 && took >= 950 && took < 3000,
                  "503: retried once after Retry-After (%d requests, %ld ms)",
                  atomic_load(&g_fake.requests), took);
            check_issued(chain, log2.url, log2.public_key_path, NULL, "after a 503");
            sk_X509_pop_free(chain, X509_free);
            h_response_free(&r);

            fake_mode(FAKE_429_ONCE);
            t0 = mono_ms();
            request_v2(srv.url, "flaky-429@example.com", 0, &r, NULL);
            took = mono_ms() - t0;
            chain = embedded_chain(&r, 4, "429 without Retry-After, then OK");
            CHECK(atomic_load(&g_fake.requests) == 2 && took >= 450,
                  "429: retried after the backoff (%d requests, %ld ms)",
                  atomic_load(&g_fake.requests), took);
            sk_X509_pop_free(chain, X509_free);
            h_response_free(&r);

            fake_mode(FAKE_408);
            t0 = mono_ms();
            request_v2(srv.url, "flaky-408@example.com", 0, &r, NULL);
            took = mono_ms() - t0;
            CHECK(h_is_error(&r, 500, 13, MSG_CTL) && atomic_load(&g_fake.requests) >= 2 &&
                      took < 4000,
                  "408 forever: retried within the 2 s deadline, then 500 (%d requests, %ld ms)",
                  atomic_load(&g_fake.requests), took);
            h_response_free(&r);

            fake_mode(FAKE_500);
            t0 = mono_ms();
            request_v2(srv.url, "flaky-500@example.com", 0, &r, NULL);
            took = mono_ms() - t0;
            CHECK(h_is_error(&r, 500, 13, MSG_CTL) && atomic_load(&g_fake.requests) == 1 &&
                      took < 3000,
                  "500: not retried (%d requests, %ld ms)", atomic_load(&g_fake.requests), took);
            CHECK(stderr_has(&srv.proc, "fake log says no: disk on fire"),
                  "500: the log's answer is in the server log");
            h_response_free(&r);

            fake_mode(FAKE_JUNK);
            request_v2(srv.url, "flaky-junk@example.com", 0, &r, NULL);
            CHECK(h_is_error(&r, 500, 13, MSG_CTL) && atomic_load(&g_fake.requests) == 1,
                  "a 200 that is not an SCT: 500, not retried");
            h_response_free(&r);
            h_proc_stop(&srv.proc, 10000);
        } else {
            CHECK(0, "flaky-log server starts");
        }
        fake_stop();
    } else {
        CHECK(0, "the flaky log starts");
    }
    if (log2.proc.pid)
        CHECK(h_proc_stop(&log2.proc, 10000) == 0, "external: log exits cleanly");
}

static void test_flags(void)
{
    const char *bin = h_env("FULCRUM_BIN");
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/flags-config.json", h_tmpdir());
    h_write_file(cfg, "{\"OIDCIssuers\":{}}\n");
    struct {
        const char *url, *key, *want;
        int code;
    } cases[] = {
        {"http://127.0.0.1:9", NULL, "needs --ct-log-public-key-path", 2},
        {"ftp://127.0.0.1:9", NULL, "use \\\"embedded\\\", an http(s) URL", 2},
        {"http://127.0.0.1:9", "/nonexistent/key.pem", "cannot read the CT log public key", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[16];
        int n = 0;
        argv[n++] = (char *)bin;
        argv[n++] = "serve";
        argv[n++] = "--port";
        argv[n++] = "0";
        argv[n++] = "--host";
        argv[n++] = "127.0.0.1";
        argv[n++] = "--ca";
        argv[n++] = "ephemeralca";
        argv[n++] = "--config-path";
        argv[n++] = cfg;
        argv[n++] = "--ct-log-url";
        argv[n++] = (char *)cases[i].url;
        if (cases[i].key) {
            argv[n++] = "--ct-log-public-key-path";
            argv[n++] = (char *)cases[i].key;
        }
        argv[n] = NULL;
        char *err = NULL;
        int rc = h_run("flags", argv, 20000, &err);
        CHECK(rc == cases[i].code && err && strstr(err, cases[i].want),
              "serve --ct-log-url %s: exit %d (want %d), stderr has \"%s\": %.300s",
              cases[i].url, rc, cases[i].code, cases[i].want, err ? err : "");
        free(err);
    }
    char *argv[] = {(char *)bin, "serve", "--help", NULL};
    char out_path[4200];
    CHECK(h_run("serve-help", argv, 10000, NULL) == 0, "serve --help exits 0");
    snprintf(out_path, sizeof out_path, "%s/serve-help.stdout", h_tmpdir());
    char *help = h_read_file(out_path, NULL);
    CHECK(help && strstr(help, "--ct-log-url") && strstr(help, "(default embedded)") &&
              strstr(help, "--ct-log-public-key-path") && strstr(help, "--state-dir") &&
              strstr(help, "--ct-log.tls-ca-cert"),
          "serve --help documents the CT flags");
    free(help);

    /* CT off: loud warning, detached answer without SCT (the rest is test_signing_api's). */
    h_server srv;
    h_server_opts o = {.ca = "ephemeralca", .issuer = &g_iss};
    if (h_server_start(&srv, &o) == 0) {
        CHECK(stderr_has(&srv.proc, "WARNING: Certificate Transparency is OFF"),
              "--ct-log-url \"\": the start-up warning");
        h_response r;
        request_v2(srv.url, "off@example.com", 0, &r, NULL);
        json_t *j = h_json(&r);
        json_t *d = json_object_get(j, "signedCertificateDetachedSct");
        CHECK(r.status == 200 && d &&
                  strcmp(json_string_value(json_object_get(d, "signedCertificateTimestamp")),
                         "") == 0,
              "CT off: detached answer with an empty SCT");
        json_decref(j);
        h_response_free(&r);
        h_proc_stop(&srv.proc, 10000);
    }
}

/* ---- the drain -------------------------------------------------------------------------- */

/* One HTTP/1.1 request on an open connection; the answer's head and body (up to 4 KiB) in out. */
static int raw_exchange(int fd, const char *request, char *out, size_t outlen)
{
    if (send(fd, request, strlen(request), MSG_NOSIGNAL) != (ssize_t)strlen(request))
        return -1;
    size_t got = 0;
    long deadline = mono_ms() + 10000;
    out[0] = '\0';
    while (got + 1 < outlen && mono_ms() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        ssize_t n = recv(fd, out + got, outlen - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        out[got] = '\0';
        const char *end = strstr(out, "\r\n\r\n"), *cl = strcasestr(out, "content-length:");
        if (end && cl && cl < end && got >= (size_t)(end + 4 - out) + (size_t)atol(cl + 15))
            break;
    }
    return got ? 0 : -1;
}

struct pending_request {
    const char *url;
    h_response r;
};

static void *request_thread(void *arg)
{
    struct pending_request *p = arg;
    request_v2(p->url, "drain@example.com", 0, &p->r, NULL);
    return NULL;
}

/* SIGTERM while a certificate request waits for its (stalled) log: that request is answered and
 * the process exits 0; a new request on an idle keep-alive connection is refused at once with
 * 503 and the connection closed, so no work can start that the stopped workers would strand. */
static void test_drain(const char *fixtures)
{
    char roots[4200], lstate[4200];
    h_ctlog log;
    h_server srv;
    if (external_start(fixtures, "drain", "drain-log-state", "ctlog-drain", 0, "20s", roots,
                       lstate, &log, &srv) != 0)
        return;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char answer[4096];
    static const char get[] = "GET /api/v2/configuration HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              raw_exchange(fd, get, answer, sizeof answer) == 0 &&
              strncmp(answer, "HTTP/1.1 200", 12) == 0,
          "drain: a keep-alive connection served before the signal (%.40s)", answer);

    kill(log.proc.pid, SIGSTOP);
    struct pending_request pr = {.url = srv.url};
    pthread_t t;
    int started = pthread_create(&t, NULL, request_thread, &pr) == 0;
    usleep(h_scaled(500, 500) * 1000); /* the request now waits for the log */
    kill(srv.proc.pid, SIGTERM);
    usleep(300000);
    CHECK(raw_exchange(fd, get, answer, sizeof answer) == 0 &&
              strncmp(answer, "HTTP/1.1 503", 12) == 0 && strcasestr(answer, "connection: close") &&
              strstr(answer, "{\"code\":14,\"message\":\"the server is shutting down\"}"),
          "drain: a new request on the idle connection gets 503 \"the server is shutting down\" "
          "and Connection: close (%.300s)",
          answer);
    kill(log.proc.pid, SIGCONT);
    if (started)
        pthread_join(t, NULL);
    CHECK(started && pr.r.status == 200 && pr.r.body &&
              strstr(pr.r.body, "signedCertificateEmbeddedSct"),
          "drain: the request in flight at the signal gets its certificate (%ld %.200s)",
          pr.r.status, pr.r.body ? pr.r.body : "");
    h_response_free(&pr.r);
    if (fd >= 0)
        close(fd);
    /* It exits on its own (a second SIGTERM could come after its signal handlers are gone). */
    long deadline = mono_ms() + 20000L * h_slow();
    while (h_proc_alive(&srv.proc) && mono_ms() < deadline)
        usleep(20000);
    int code = h_proc_stop(&srv.proc, 5000); /* the exit status; SIGTERM only if still running */
    CHECK(code == 0, "drain: exits by itself with status 0 after the answer (status %d)", code);
    CHECK(stderr_has(&srv.proc, "1 request(s) refused during the drain"),
          "drain: the refusal is logged");
    CHECK(h_proc_stop(&log.proc, 10000) == 0, "drain: the log stops cleanly");
}

int main(void)
{
    if (h_init("ct-embedded") != 0)
        return 1;
    const char *fixtures = h_env("FULCRUM_FIXTURES_DIR");
    if (!fixtures || h_issuer_start(&g_iss) != 0) {
        CHECK(0, "dev issuer starts");
        h_finish(1);
        CHECK_MAIN_END();
    }
    test_embedded();
    test_external(fixtures);
    test_drain(fixtures);
    test_flags();
    int code = h_proc_stop(&g_iss.proc, 5000);
    CHECK(code == 0, "dev issuer exit status %d after SIGTERM, want 0", code);
    h_finish(check_failed);
    CHECK_MAIN_END();
}
