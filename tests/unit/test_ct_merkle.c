/* RFC 6962 Merkle tree: the published test vectors, and every inclusion and consistency proof
 * for trees of 1..64 leaves checked by the independent RFC 9162 verifiers of ct_testkit.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ct/merkle.h"
#include "unit/check.h"
#include "unit/ct_testkit.h"

#define MAXN 64

/* An in-memory node store filled only by frontier appends: level 0 = the leaf hashes, levels
 * >= 1 = what merkle_frontier_append emitted. Asking for a node that was never emitted fails,
 * so the proof code can only use complete subtrees. */
struct store {
    unsigned char node[8][MAXN][32];
    int have[8][MAXN];
    int bad_emit; /* an emitted node was wrong or emitted twice */
    long reads;
};

static int get_node(void *ctx, unsigned level, uint64_t index, unsigned char out[32])
{
    struct store *s = ctx;
    s->reads++;
    if (level >= 8 || index >= MAXN || !s->have[level][index])
        return -1;
    memcpy(out, s->node[level][index], 32);
    return 0;
}

static int emit_node(void *ctx, unsigned level, uint64_t index, const unsigned char h[32])
{
    struct store *s = ctx;
    if (level >= 8 || index >= MAXN || s->have[level][index]) {
        s->bad_emit = 1;
        return -1;
    }
    memcpy(s->node[level][index], h, 32);
    s->have[level][index] = 1;
    return 0;
}

static int hex2bin(const char *hex, unsigned char *out)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    return (int)n;
}

/* certificate-transparency-go / Trillian RFC 6962 test vectors (testonly/constants.go). */
static const char *const leaf_inputs[8] = {
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
};
static const char *const roots_hex[9] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static void test_vectors(void)
{
    struct store *s = calloc(1, sizeof *s);
    merkle_frontier f = {0};
    unsigned char want[32], got[32];

    merkle_empty_root(got);
    hex2bin(roots_hex[0], want);
    CHECK(memcmp(got, want, 32) == 0, "empty root");
    CHECK(merkle_root(get_node, s, 0, got) == 0 && memcmp(got, want, 32) == 0,
          "merkle_root(0) is the empty root");
    merkle_frontier_root(&f, got);
    CHECK(memcmp(got, want, 32) == 0, "empty frontier root");

    for (int i = 0; i < 8; i++) {
        unsigned char in[16];
        int n = hex2bin(leaf_inputs[i], in);
        CHECK(merkle_leaf_hash(in, (size_t)n, s->node[0][i]) == 0, "leaf hash %d", i);
        s->have[0][i] = 1;
        CHECK(merkle_frontier_append(&f, s->node[0][i], emit_node, s) == 0, "append %d", i);
        hex2bin(roots_hex[i + 1], want);
        merkle_frontier_root(&f, got);
        CHECK(memcmp(got, want, 32) == 0, "frontier root of %d leaves (RFC 6962 vector)", i + 1);
        CHECK(merkle_root(get_node, s, (uint64_t)i + 1, got) == 0 && memcmp(got, want, 32) == 0,
              "stored-node root of %d leaves (RFC 6962 vector)", i + 1);
    }
    CHECK(!s->bad_emit, "each complete node emitted once");
    CHECK(s->have[3][0] && !s->have[3][1], "8 leaves: one level-3 node");

    /* Published proofs (Trillian log_verifier_test / ct-go). */
    struct {
        uint64_t index, size;
        const char *path[3];
    } inc[] = {
        {0, 8, {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
        {5, 8, {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    };
    for (size_t t = 0; t < 2; t++) {
        unsigned char path[MERKLE_MAX_PROOF][32], w[32];
        int n = merkle_inclusion_path(get_node, s, inc[t].index, inc[t].size, path,
                                      MERKLE_MAX_PROOF);
        CHECK(n == 3, "inclusion %d/%d has 3 hashes (got %d)", (int)inc[t].index,
              (int)inc[t].size, n);
        for (int i = 0; i < 3 && n == 3; i++) {
            hex2bin(inc[t].path[i], w);
            CHECK(memcmp(path[i], w, 32) == 0, "inclusion %d/%d hash %d", (int)inc[t].index,
                  (int)inc[t].size, i);
        }
    }
    struct {
        uint64_t first, second;
        int n;
        const char *proof[3];
    } cons[] = {
        {2, 8, 2, {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                   "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
        {6, 8, 3, {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                   "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                   "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
        {2, 5, 2, {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                   "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
    };
    for (size_t t = 0; t < 3; t++) {
        unsigned char proof[MERKLE_MAX_PROOF][32], w[32];
        int n = merkle_consistency_proof(get_node, s, cons[t].first, cons[t].second, proof,
                                         MERKLE_MAX_PROOF);
        CHECK(n == cons[t].n, "consistency %d->%d has %d hashes (got %d)", (int)cons[t].first,
              (int)cons[t].second, cons[t].n, n);
        for (int i = 0; i < cons[t].n && n == cons[t].n; i++) {
            hex2bin(cons[t].proof[i], w);
            CHECK(memcmp(proof[i], w, 32) == 0, "consistency %d->%d hash %d",
                  (int)cons[t].first, (int)cons[t].second, i);
        }
    }
    free(s);
}

static void test_all_sizes(void)
{
    struct store *s = calloc(1, sizeof *s);
    unsigned char leaves[MAXN][32], roots[MAXN + 1][32];
    merkle_frontier f = {0};
    for (int i = 0; i < MAXN; i++) {
        unsigned char in[2] = {(unsigned char)i, (unsigned char)(i * 7)};
        ctk_leaf_hash(in, 2, leaves[i]);
        memcpy(s->node[0][i], leaves[i], 32);
        s->have[0][i] = 1;
        merkle_frontier_append(&f, leaves[i], emit_node, s);
    }
    CHECK(!s->bad_emit, "64 appends emit each node once");
    int roots_ok = 1, inc_ok = 0, inc_total = 0, cons_ok = 0, cons_total = 0, neg_ok = 1;
    long max_reads = 0;
    for (uint64_t n = 0; n <= MAXN; n++) {
        unsigned char got[32];
        ctk_mth(leaves, n, roots[n]);
        if (merkle_root(get_node, s, n, got) != 0 || memcmp(got, roots[n], 32) != 0)
            roots_ok = 0;
        merkle_frontier ff;
        if (merkle_frontier_load(&ff, n, get_node, s) != 0)
            roots_ok = 0;
        merkle_frontier_root(&ff, got);
        if (memcmp(got, roots[n], 32) != 0)
            roots_ok = 0;
    }
    CHECK(roots_ok, "roots of 0..64 leaves equal the reference MTH (stored nodes and frontier)");

    for (uint64_t n = 1; n <= MAXN; n++) {
        for (uint64_t i = 0; i < n; i++) {
            unsigned char path[MERKLE_MAX_PROOF][32];
            s->reads = 0;
            int np = merkle_inclusion_path(get_node, s, i, n, path, MERKLE_MAX_PROOF);
            if (s->reads > max_reads)
                max_reads = s->reads;
            inc_total++;
            if (np >= 0 && ctk_verify_inclusion(leaves[i], i, n, path, (size_t)np, roots[n]))
                inc_ok++;
            /* A wrong index, a flipped hash and a truncated path must not verify. */
            if (np > 0) {
                if (ctk_verify_inclusion(leaves[i], i ^ 1, n, path, (size_t)np, roots[n]) &&
                    (i ^ 1) < n)
                    neg_ok = 0;
                path[np - 1][5] ^= 1;
                if (ctk_verify_inclusion(leaves[i], i, n, path, (size_t)np, roots[n]))
                    neg_ok = 0;
                path[np - 1][5] ^= 1;
                if (ctk_verify_inclusion(leaves[i], i, n, path, (size_t)np - 1, roots[n]))
                    neg_ok = 0;
            }
        }
    }
    CHECK(inc_ok == inc_total && inc_total == 64 * 65 / 2, "inclusion proofs: %d of %d verify",
          inc_ok, inc_total);
    CHECK(max_reads <= 2 * 7, "an audit path costs O(log n) node reads (max %ld)", max_reads);

    for (uint64_t n = 1; n <= MAXN; n++) {
        for (uint64_t m = 0; m <= n; m++) {
            unsigned char proof[MERKLE_MAX_PROOF][32];
            int np = merkle_consistency_proof(get_node, s, m, n, proof, MERKLE_MAX_PROOF);
            cons_total++;
            if (np >= 0 &&
                ctk_verify_consistency(m, n, roots[m], roots[n], proof, (size_t)np))
                cons_ok++;
            if ((m == 0 || m == n) && np != 0)
                neg_ok = 0;
            if (np > 0) {
                proof[0][3] ^= 0x80;
                if (ctk_verify_consistency(m, n, roots[m], roots[n], proof, (size_t)np))
                    neg_ok = 0;
                proof[0][3] ^= 0x80;
                if (m + 1 < n &&
                    ctk_verify_consistency(m, n, roots[m + 1], roots[n], proof, (size_t)np))
                    neg_ok = 0;
            }
        }
    }
    CHECK(cons_ok == cons_total, "consistency proofs: %d of %d pairs verify", cons_ok,
          cons_total);
    CHECK(neg_ok, "tampered proofs, wrong indexes and wrong roots are rejected");

    unsigned char path[MERKLE_MAX_PROOF][32];
    CHECK(merkle_inclusion_path(get_node, s, 5, 5, path, MERKLE_MAX_PROOF) == -1,
          "index == size is refused");
    CHECK(merkle_consistency_proof(get_node, s, 6, 5, path, MERKLE_MAX_PROOF) == -1,
          "first > second is refused");
    CHECK(merkle_inclusion_path(get_node, s, 3, 64, path, 2) == -1,
          "a path longer than the buffer is refused");
    free(s);
}

static void test_split_and_frontier_failure(void)
{
    CHECK(merkle_split(2) == 1 && merkle_split(3) == 2 && merkle_split(4) == 2 &&
              merkle_split(5) == 4 && merkle_split(9) == 8 && merkle_split(1000) == 512,
          "split is the largest power of two below n");
    struct store *s = calloc(1, sizeof *s);
    merkle_frontier f = {0};
    unsigned char h[32] = {1};
    merkle_frontier_append(&f, h, emit_node, s);
    s->have[1][0] = 1; /* the next append's node "already exists": emit fails */
    merkle_frontier before = f;
    CHECK(merkle_frontier_append(&f, h, emit_node, s) == -1, "failed emit reported");
    CHECK(memcmp(&before, &f, sizeof f) == 0, "failed append leaves the frontier unchanged");
    free(s);
}

int main(void)
{
    test_vectors();
    test_all_sizes();
    test_split_and_frontier_failure();
    CHECK_MAIN_END();
}
