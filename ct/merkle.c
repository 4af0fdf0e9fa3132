#include "ct/merkle.h"

#include <openssl/evp.h>
#include <string.h>

#include "common/digest_md.h"

int merkle_leaf_hash(const unsigned char *data, size_t len, unsigned char out[32])
{
    unsigned char prefix = 0x00;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = c && EVP_DigestInit_ex(c, sha256_md(), NULL) && EVP_DigestUpdate(c, &prefix, 1) &&
             EVP_DigestUpdate(c, data, len) && EVP_DigestFinal_ex(c, out, &n);
    EVP_MD_CTX_free(c);
    return ok ? 0 : -1;
}

void merkle_node_hash(const unsigned char left[32], const unsigned char right[32],
                      unsigned char out[32])
{
    unsigned char buf[1 + 64];
    buf[0] = 0x01;
    memcpy(buf + 1, left, 32);
    memcpy(buf + 33, right, 32);
    EVP_Digest(buf, sizeof buf, out, NULL, sha256_md(), NULL);
}

void merkle_empty_root(unsigned char out[32]) { EVP_Digest("", 0, out, NULL, sha256_md(), NULL); }

uint64_t merkle_split(uint64_t n)
{
    uint64_t k = 1;
    while (k << 1 < n)
        k <<= 1;
    return k;
}

static int is_pow2(uint64_t n) { return n && (n & (n - 1)) == 0; }

/* MTH(D[a:b]) for a range the RFC recursion produces (b > a). */
static int mth(merkle_node_fn get, void *ctx, uint64_t a, uint64_t b, unsigned char out[32])
{
    uint64_t n = b - a;
    if (is_pow2(n) && (a & (n - 1)) == 0) {
        unsigned level = (unsigned)__builtin_ctzll(n);
        return get(ctx, level, a >> level, out);
    }
    uint64_t k = merkle_split(n);
    unsigned char l[32], r[32];
    if (mth(get, ctx, a, a + k, l) != 0 || mth(get, ctx, a + k, b, r) != 0)
        return -1;
    merkle_node_hash(l, r, out);
    return 0;
}

int merkle_root(merkle_node_fn get, void *ctx, uint64_t size, unsigned char out[32])
{
    if (size == 0) {
        merkle_empty_root(out);
        return 0;
    }
    return mth(get, ctx, 0, size, out);
}

struct proof_out {
    unsigned char (*h)[32];
    size_t n, max;
};

static int put_mth(merkle_node_fn get, void *ctx, uint64_t a, uint64_t b, struct proof_out *o)
{
    if (o->n >= o->max)
        return -1;
    if (mth(get, ctx, a, b, o->h[o->n]) != 0)
        return -1;
    o->n++;
    return 0;
}

/* PATH(m, D[a:b]) with m an absolute leaf index. */
static int path(merkle_node_fn get, void *ctx, uint64_t m, uint64_t a, uint64_t b,
                struct proof_out *o)
{
    uint64_t n = b - a;
    if (n == 1)
        return 0;
    uint64_t k = merkle_split(n);
    if (m < a + k)
        return path(get, ctx, m, a, a + k, o) == 0 ? put_mth(get, ctx, a + k, b, o) : -1;
    return path(get, ctx, m, a + k, b, o) == 0 ? put_mth(get, ctx, a, a + k, o) : -1;
}

int merkle_inclusion_path(merkle_node_fn get, void *ctx, uint64_t index, uint64_t size,
                          unsigned char out[][32], size_t max)
{
    if (index >= size)
        return -1;
    struct proof_out o = {out, 0, max};
    return path(get, ctx, index, 0, size, &o) == 0 ? (int)o.n : -1;
}

/* SUBPROOF(m, D[a:b], flag) with m counted from a. */
static int subproof(merkle_node_fn get, void *ctx, uint64_t m, uint64_t a, uint64_t b, int flag,
                    struct proof_out *o)
{
    uint64_t n = b - a;
    if (m == n)
        return flag ? 0 : put_mth(get, ctx, a, b, o);
    uint64_t k = merkle_split(n);
    if (m <= k)
        return subproof(get, ctx, m, a, a + k, flag, o) == 0 ? put_mth(get, ctx, a + k, b, o)
                                                             : -1;
    return subproof(get, ctx, m - k, a + k, b, 0, o) == 0 ? put_mth(get, ctx, a, a + k, o) : -1;
}

int merkle_consistency_proof(merkle_node_fn get, void *ctx, uint64_t first, uint64_t second,
                             unsigned char out[][32], size_t max)
{
    if (first > second)
        return -1;
    if (first == 0 || first == second)
        return 0;
    struct proof_out o = {out, 0, max};
    return subproof(get, ctx, first, 0, second, 1, &o) == 0 ? (int)o.n : -1;
}

int merkle_frontier_append(merkle_frontier *f, const unsigned char leaf_hash[32],
                           merkle_emit_fn emit, void *ctx)
{
    uint64_t s = f->size;
    unsigned char carry[32];
    memcpy(carry, leaf_hash, 32);
    unsigned level = 0;
    while (level < 63 && ((s >> level) & 1)) {
        merkle_node_hash(f->hash[level], carry, carry);
        if (emit && emit(ctx, level + 1, s >> (level + 1), carry) != 0)
            return -1;
        level++;
    }
    memcpy(f->hash[level], carry, 32);
    f->size = s + 1;
    return 0;
}

void merkle_frontier_root(const merkle_frontier *f, unsigned char out[32])
{
    if (f->size == 0) {
        merkle_empty_root(out);
        return;
    }
    int have = 0;
    unsigned char r[32];
    for (unsigned k = 0; k < 64; k++) {
        if (!((f->size >> k) & 1))
            continue;
        if (!have) {
            memcpy(r, f->hash[k], 32);
            have = 1;
        } else {
            merkle_node_hash(f->hash[k], r, r);
        }
    }
    memcpy(out, r, 32);
}

int merkle_frontier_load(merkle_frontier *f, uint64_t size, merkle_node_fn get, void *ctx)
{
    memset(f, 0, sizeof *f);
    for (unsigned k = 0; k < 64; k++) {
        if (!((size >> k) & 1))
            continue;
        uint64_t start = k == 63 ? 0 : size & ~((((uint64_t)1) << (k + 1)) - 1);
        if (get(ctx, k, start >> k, f->hash[k]) != 0)
            return -1;
    }
    f->size = size;
    return 0;
}
