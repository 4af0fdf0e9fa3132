/* The CT log library: submissions (x509 and precert) checked by OpenSSL's CT code, stored
 * bytes, deduplication, STH timing and signature, durability across close/reopen, refusals,
 * a signer-backed log key. */
#include <event2/event.h>
#include <event2/thread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ct/chain_check.h"
#include "ct/ct_log.h"
#include "ct/log_store.h"
#include "hsm/signer.h"
#include "unit/check.h"
#include "unit/ct_testkit.h"

static char tmpdir[4096];

struct result {
    int done;
    unsigned char sct[512];
    size_t sct_len;
    char err[512];
    int client_error;
};

static void on_added(void *arg, const unsigned char *sct, size_t sct_len, const char *err,
                     int client_error)
{
    struct result *r = arg;
    r->done++;
    if (sct && sct_len <= sizeof r->sct) {
        memcpy(r->sct, sct, sct_len);
        r->sct_len = sct_len;
    }
    if (err)
        snprintf(r->err, sizeof r->err, "%s", err);
    r->client_error = client_error;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the base until all n results are done or 5 s pass. */
static int wait_results(struct event_base *base, struct result *r, int n)
{
    double deadline = now_s() + 5;
    for (;;) {
        int all = 1;
        for (int i = 0; i < n; i++)
            if (!r[i].done)
                all = 0;
        if (all)
            return 1;
        if (now_s() > deadline)
            return 0;
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(500);
    }
}

static STACK_OF(X509) *chain_of(X509 *a, X509 *b, X509 *c)
{
    STACK_OF(X509) *s = sk_X509_new_null();
    X509 *v[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (v[i])
            sk_X509_push(s, v[i]);
    return s;
}

/* Submits and waits; returns 0 when accepted (sct in r), -1 when refused at once (why in r). */
static int submit(ct_log *log, struct event_base *base, int precert, X509 *a, X509 *b, X509 *c,
                  struct result *r)
{
    memset(r, 0, sizeof *r);
    STACK_OF(X509) *chain = chain_of(a, b, c);
    int rc = ct_log_add(log, precert, chain, base, on_added, r, r->err, sizeof r->err);
    sk_X509_free(chain);
    if (rc != 0)
        return -1;
    if (!wait_results(base, r, 1) || r->done != 1 || !r->sct_len)
        return -2;
    return 0;
}

static uint64_t sct_timestamp(const struct result *r) { return ctk_be(r->sct + 33, 8); }

struct rows {
    int n;
    unsigned char leaf[8][2048];
    size_t leaf_len[8];
    unsigned char extra[8][4096];
    size_t extra_len[8];
};

static int collect(void *ctx, uint64_t idx, const unsigned char *leaf, size_t leaf_len,
                   const unsigned char *extra, size_t extra_len)
{
    struct rows *r = ctx;
    if (r->n >= 8 || leaf_len > 2048 || extra_len > 4096)
        return 1;
    memcpy(r->leaf[r->n], leaf, leaf_len);
    r->leaf_len[r->n] = leaf_len;
    memcpy(r->extra[r->n], extra, extra_len);
    r->extra_len[r->n] = extra_len;
    r->n++;
    return 0;
}

static void wait_tree_size(ct_log *log, unsigned long long want, double limit, const char *what)
{
    double start = now_s();
    while (ct_log_tree_size(log) < want && now_s() - start < 5)
        usleep(1000);
    double took = now_s() - start;
    CHECK(ct_log_tree_size(log) == want && took < limit,
          "%s: STH covers %llu entries after %.3f s (want %llu within %.1f s)", what,
          ct_log_tree_size(log), took, want, limit);
}

static ct_log *open_log(const char *dir, X509 *root, signer *sgn)
{
    STACK_OF(X509) *roots = chain_of(root, NULL, NULL);
    ct_log_options o = {.state_dir = dir, .roots = roots, .key_signer = sgn,
                        .sth_interval_ms = 100};
    char why[512] = "";
    ct_log *log = ct_log_open(&o, why, sizeof why);
    CHECK(log != NULL, "open log in %s: %s", dir, why);
    sk_X509_free(roots);
    return log;
}

int main(void)
{
    evthread_use_pthreads();
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/fulcrum-ctlog-unit-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    struct event_base *base = event_base_new();

    EVP_PKEY *root_key = ctk_key(), *leaf_key = ctk_key(), *other_key = ctk_key();
    X509 *root = ctk_cert("root", root_key, NULL, NULL, 1, CTK_NO_POISON, 0);
    X509 *leaf = ctk_cert("leaf", leaf_key, root, root_key, 0, CTK_NO_POISON, 0);
    X509 *leaf2 = ctk_cert("leaf2", leaf_key, root, root_key, 0, CTK_NO_POISON, 0);
    X509 *pre = ctk_cert("pre", leaf_key, root, root_key, 0, CTK_POISON, 0);
    X509 *pre_nc = ctk_cert("pre-nc", leaf_key, root, root_key, 0, CTK_POISON_NONCRITICAL, 0);
    X509 *pre_nn = ctk_cert("pre-nn", leaf_key, root, root_key, 0, CTK_POISON_NOT_NULL, 0);
    X509 *other_root = ctk_cert("other", other_key, NULL, NULL, 1, CTK_NO_POISON, 0);
    X509 *stranger = ctk_cert("stranger", leaf_key, other_root, other_key, 0, CTK_NO_POISON, 0);
    X509 *psc = ctk_cert("psc", other_key, root, root_key, 1, CTK_NO_POISON, 1);
    X509 *pre_psc = ctk_cert("pre-psc", leaf_key, psc, other_key, 0, CTK_POISON, 0);

    ct_log *log = open_log(tmpdir, root, NULL);
    if (!log)
        CHECK_MAIN_END();
    EVP_PKEY *pub = ct_log_public_key(log);
    unsigned char id[32];
    memcpy(id, ct_log_id(log), 32);
    CHECK(ct_log_tree_size(log) == 0, "a new log has an STH of size 0");

    /* The log ID is SHA-256 of the public key's SPKI, and public.pem holds that key. */
    unsigned char *spki = NULL, want_id[32];
    int spki_len = i2d_PUBKEY(pub, &spki);
    SHA256(spki, (size_t)spki_len, want_id);
    OPENSSL_free(spki);
    CHECK(memcmp(id, want_id, 32) == 0, "log ID = SHA-256(SPKI)");
    char path[4300];
    snprintf(path, sizeof path, "%s/ctlog/public.pem", tmpdir);
    FILE *f = fopen(path, "r");
    EVP_PKEY *pem_pub = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    CHECK(pem_pub && EVP_PKEY_eq(pem_pub, pub) == 1, "public.pem holds the log key");
    EVP_PKEY_free(pem_pub);
    struct stat st;
    snprintf(path, sizeof path, "%s/ctlog/private.pem", tmpdir);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "private.pem is 0600");

    /* x509 entry. */
    struct result r1, r2, rp, rd;
    CHECK(submit(log, base, 0, leaf, root, NULL, &r1) == 0, "add-chain accepted: %s", r1.err);
    double added = now_s();
    /* 47 bytes before the signature, then a DER ECDSA-Sig-Value of at most 72 bytes (fewer when
     * r or s starts with zero bytes, about 1 in 128 signatures). */
    CHECK(r1.sct_len >= 47 + 8 && r1.sct_len <= 119 &&
              r1.sct_len == 47 + ((size_t)r1.sct[45] << 8 | r1.sct[46]) && r1.sct[0] == 0 &&
              memcmp(r1.sct + 1, id, 32) == 0 && r1.sct[41] == 0 && r1.sct[42] == 0 &&
              r1.sct[43] == 4 && r1.sct[44] == 3,
          "SCT layout: v1, log ID, no extensions, ecdsa-sha256 (%zu bytes)", r1.sct_len);
    uint64_t ts = sct_timestamp(&r1), wall = (uint64_t)time(NULL) * 1000;
    CHECK(ts + 5000 > wall && ts < wall + 5000, "SCT timestamp in ms near now");
    CHECK(ctk_sct_valid(r1.sct, r1.sct_len, 0, leaf, root, pub, tmpdir),
          "OpenSSL SCT_validate: x509 SCT valid");
    CHECK(!ctk_sct_valid(r1.sct, r1.sct_len, 0, leaf2, root, pub, tmpdir),
          "OpenSSL SCT_validate: the SCT is not valid for another certificate");
    wait_tree_size(log, 1, 1.0, "first entry");
    (void)added;

    /* Duplicate: the same SCT, no new entry; also with a different (root-less) chain. */
    CHECK(submit(log, base, 0, leaf, root, NULL, &rd) == 0 && rd.sct_len == r1.sct_len &&
              memcmp(rd.sct, r1.sct, r1.sct_len) == 0,
          "resubmission answered with the original SCT");
    CHECK(submit(log, base, 0, leaf, NULL, NULL, &rd) == 0 && rd.sct_len == r1.sct_len &&
              memcmp(rd.sct, r1.sct, r1.sct_len) == 0,
          "resubmission without the root: original SCT");

    /* Precert entry (root omitted from the chain). */
    CHECK(submit(log, base, 1, pre, NULL, NULL, &rp) == 0, "add-pre-chain accepted: %s", rp.err);
    CHECK(ctk_sct_valid(rp.sct, rp.sct_len, 1, pre, root, pub, tmpdir),
          "OpenSSL SCT_validate: precert SCT valid (TBS without poison, issuer key hash)");
    CHECK(!ctk_sct_valid(rp.sct, rp.sct_len, 1, pre, other_root, pub, tmpdir),
          "precert SCT not valid with the wrong issuer");
    CHECK(!ctk_sct_valid(rp.sct, rp.sct_len, 0, pre, root, pub, tmpdir),
          "precert SCT not valid as an x509 entry");

    /* Two different leaves in one burst: one batch, both answered. */
    struct result burst[2];
    memset(burst, 0, sizeof burst);
    STACK_OF(X509) *c1 = chain_of(leaf2, root, NULL);
    STACK_OF(X509) *c2 = chain_of(leaf2, NULL, NULL);
    char why[512];
    CHECK(ct_log_add(log, 0, c1, base, on_added, &burst[0], why, sizeof why) == 0 &&
              ct_log_add(log, 0, c2, base, on_added, &burst[1], why, sizeof why) == 0,
          "two concurrent submissions of one leaf queued");
    sk_X509_free(c1);
    sk_X509_free(c2);
    CHECK(wait_results(base, burst, 2) && burst[0].sct_len && burst[0].sct_len == burst[1].sct_len &&
              memcmp(burst[0].sct, burst[1].sct, burst[0].sct_len) == 0,
          "concurrent duplicates get one SCT");
    wait_tree_size(log, 3, 1.0, "three entries");

    /* Refusals. */
    struct result rr;
    CHECK(submit(log, base, 0, stranger, other_root, NULL, &rr) == -1 &&
              strstr(rr.err, "does not verify to an accepted root"),
          "chain to another root refused: %s", rr.err);
    CHECK(submit(log, base, 0, pre, root, NULL, &rr) == -1 && strstr(rr.err, "add-pre-chain"),
          "precert to add-chain refused: %s", rr.err);
    CHECK(submit(log, base, 1, leaf, root, NULL, &rr) == -1 && strstr(rr.err, "is missing"),
          "certificate without poison to add-pre-chain refused: %s", rr.err);
    CHECK(submit(log, base, 1, pre_nc, root, NULL, &rr) == -1 && strstr(rr.err, "not critical"),
          "non-critical poison refused: %s", rr.err);
    CHECK(submit(log, base, 1, pre_nn, root, NULL, &rr) == -1 && strstr(rr.err, "NULL"),
          "poison with a non-NULL value refused: %s", rr.err);
    CHECK(submit(log, base, 1, pre_psc, psc, root, &rr) == -1 &&
              strstr(rr.err, "Precertificate Signing Certificate"),
          "precert issued by a PSC refused: %s", rr.err);
    CHECK(submit(log, base, 0, leaf, pre, root, &rr) == -1 && strstr(rr.err, "only the first"),
          "a precert inside the chain refused: %s", rr.err);
    STACK_OF(X509) *empty = sk_X509_new_null();
    CHECK(ct_log_add(log, 0, empty, base, on_added, &rr, why, sizeof why) == -1 &&
              strstr(why, "empty"),
          "empty chain refused: %s", why);
    sk_X509_free(empty);

    /* A bad signature on the leaf: refused by chain verification. */
    X509 *forged = X509_dup(leaf2);
    X509_sign(forged, other_key, EVP_sha256());
    CHECK(submit(log, base, 0, forged, root, NULL, &rr) == -1 &&
              strstr(rr.err, "does not verify"),
          "leaf signed by the wrong key refused: %s", rr.err);
    X509_free(forged);
    CHECK(ct_log_tree_size(log) == 3, "refusals add nothing");

    ct_log_close(log);

    /* Durability: reopen; entries, STH, key and dedup survive. */
    log = open_log(tmpdir, root, NULL);
    if (!log)
        CHECK_MAIN_END();
    pub = ct_log_public_key(log); /* the first log's key object went with it */
    CHECK(ct_log_tree_size(log) == 3, "after reopen the STH covers 3 entries");
    CHECK(memcmp(ct_log_id(log), id, 32) == 0, "after reopen the log ID is the same");
    CHECK(submit(log, base, 1, pre, root, NULL, &rd) == 0 && rd.sct_len == rp.sct_len &&
              memcmp(rd.sct, rp.sct, rp.sct_len) == 0,
          "after reopen a resubmitted precert gets its original SCT");

    /* Stored bytes, checked with a reader connection and the independent reference. */
    snprintf(path, sizeof path, "%s/ctlog/log.db", tmpdir);
    ctlog_db *db = ctlog_db_open(path, 0, why, sizeof why);
    CHECK(db != NULL, "reader connection: %s", why);
    struct rows *rows = calloc(1, sizeof *rows);
    ctlog_sth sth = {0};
    if (db) {
        CHECK(ctlog_db_entries(db, 0, 99, collect, rows) == 0 && rows->n == 3, "3 stored entries");
        CHECK(ctlog_db_latest_sth(db, &sth) == 1 && sth.tree_size == 3, "latest STH stored");
    }
    if (rows->n == 3) {
        size_t der_len = 0;
        unsigned char *der = ctk_der(leaf, &der_len);
        const unsigned char *l0 = rows->leaf[0];
        CHECK(rows->leaf_len[0] == 2 + 8 + 2 + 3 + der_len + 2 && l0[0] == 0 && l0[1] == 0 &&
                  ctk_be(l0 + 2, 8) == ts && ctk_be(l0 + 10, 2) == 0 &&
                  ctk_be(l0 + 12, 3) == der_len && memcmp(l0 + 15, der, der_len) == 0 &&
                  ctk_be(l0 + 15 + der_len, 2) == 0,
              "x509 MerkleTreeLeaf bytes: version, leaf type, SCT timestamp, DER, no extensions");
        size_t root_len = 0;
        unsigned char *root_der = ctk_der(root, &root_len);
        const unsigned char *e0 = rows->extra[0];
        CHECK(rows->extra_len[0] == 3 + 3 + root_len && ctk_be(e0, 3) == 3 + root_len &&
                  ctk_be(e0 + 3, 3) == root_len && memcmp(e0 + 6, root_der, root_len) == 0,
              "x509 extra_data: the chain without the leaf, ending at the root");
        size_t pre_len = 0;
        unsigned char *pre_der = ctk_der(pre, &pre_len);
        const unsigned char *e1 = rows->extra[1], *l1 = rows->leaf[1];
        CHECK(ctk_be(e1, 3) == pre_len && memcmp(e1 + 3, pre_der, pre_len) == 0 &&
                  ctk_be(e1 + 3 + pre_len, 3) == 3 + root_len &&
                  memcmp(e1 + 9 + pre_len, root_der, root_len) == 0 &&
                  rows->extra_len[1] == 9 + pre_len + root_len,
              "precert extra_data: the precert, then the chain (root added by the log)");
        unsigned char *rspki = NULL, ikh[32];
        int rl = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(root), &rspki);
        SHA256(rspki, (size_t)rl, ikh);
        OPENSSL_free(rspki);
        CHECK(ctk_be(l1 + 10, 2) == 1 && memcmp(l1 + 12, ikh, 32) == 0,
              "precert leaf: entry type 1, issuer_key_hash = SHA-256(issuer SPKI)");
        /* The TBS in the leaf has no poison and keeps the other extensions in order. */
        size_t tbs_len = ctk_be(l1 + 44, 3);
        const unsigned char *tp = l1 + 47;
        int poison_absent = tbs_len > 0 && !memmem(tp, tbs_len, "\x06\x0a\x2b\x06\x01\x04\x01"
                                                                "\xd6\x79\x02\x04\x03", 12);
        CHECK(poison_absent && memmem(tp, tbs_len, "\x2b\x06\x01\x04\x01\x83\xbf\x30\x01\x08", 10),
              "precert TBS: poison removed, the extension after it kept");
        OPENSSL_free(der);
        OPENSSL_free(root_der);
        OPENSSL_free(pre_der);

        unsigned char lh[3][32], mth[32];
        for (int i = 0; i < 3; i++)
            ctk_leaf_hash(rows->leaf[i], rows->leaf_len[i], lh[i]);
        ctk_mth(lh, 3, mth);
        CHECK(memcmp(mth, sth.root, 32) == 0, "STH root = reference MTH of the stored leaves");
        CHECK(ctk_verify_sth(pub, sth.timestamp, sth.tree_size, sth.root, sth.sig, sth.sig_len),
              "STH signature verifies with the log's public key");
    }
    free(rows);
    ctlog_db_close(db);

    /* Many distinct leaves in a burst all land in one or a few batches. */
    enum { BURST = 200 };
    struct result *many = calloc(BURST, sizeof *many);
    int queued = 0;
    for (int i = 0; i < BURST; i++) {
        char cn[32];
        snprintf(cn, sizeof cn, "burst-%d", i);
        X509 *x = ctk_cert(cn, leaf_key, root, root_key, 0, CTK_NO_POISON, 0);
        STACK_OF(X509) *c = chain_of(x, NULL, NULL);
        if (ct_log_add(log, 0, c, base, on_added, &many[i], why, sizeof why) == 0)
            queued++;
        sk_X509_free(c);
        X509_free(x);
    }
    CHECK(queued == BURST, "%d of %d burst submissions queued", queued, BURST);
    int got = wait_results(base, many, BURST), with_sct = 0;
    for (int i = 0; i < BURST; i++)
        with_sct += many[i].sct_len > 0;
    CHECK(got && with_sct == BURST, "burst: %d of %d got an SCT", with_sct, BURST);
    wait_tree_size(log, 3 + BURST, 1.0, "burst");
    free(many);
    ct_log_close(log);

    /* A log whose key is a signer (hsm/signer.h): SCTs verify with the signer's key. */
    char dir2[4200];
    snprintf(dir2, sizeof dir2, "%s/signer", tmpdir);
    signer *sgn = signer_ephemeral_new(why, sizeof why);
    CHECK(sgn != NULL, "ephemeral signer: %s", why);
    if (sgn) {
        ct_log *l2 = open_log(dir2, root, sgn);
        if (l2) {
            CHECK(EVP_PKEY_eq(ct_log_public_key(l2), sgn->public_key) == 1,
                  "signer-backed log uses the signer's key");
            CHECK(submit(l2, base, 0, leaf, root, NULL, &r2) == 0 &&
                      ctk_sct_valid(r2.sct, r2.sct_len, 0, leaf, root, sgn->public_key, tmpdir),
                  "signer-backed SCT valid");
            snprintf(path, sizeof path, "%s/ctlog/private.pem", dir2);
            CHECK(access(path, F_OK) != 0, "no private.pem with a signer");
            ct_log_close(l2);
        }
        /* The database remembers its log ID: opening it with another key fails. */
        STACK_OF(X509) *roots = chain_of(root, NULL, NULL);
        ct_log_options o = {.state_dir = dir2, .roots = roots};
        ct_log *l3 = ct_log_open(&o, why, sizeof why);
        CHECK(l3 == NULL && strstr(why, "log ID"), "a database refuses another key: %s", why);
        ct_log_close(l3);
        sk_X509_free(roots);
        signer_free(sgn);
    }

    X509 *all[] = {root, leaf, leaf2, pre, pre_nc, pre_nn, other_root, stranger, psc, pre_psc};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        X509_free(all[i]);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(leaf_key);
    EVP_PKEY_free(other_key);
    event_base_free(base);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    CHECK_MAIN_END();
}
