/*
 * ct/merkle.h: RFC 6962 §2.1 Merkle tree hashing over stored subtree hashes.
 *
 * Hashes come from a callback that returns the hash of a complete, aligned subtree: leaves
 * [index << level, (index + 1) << level). Level 0 is a leaf hash. With such nodes stored, the
 * hash of any tree head, an audit path or a consistency proof costs O(log n) callback calls.
 *
 * A frontier (compact range) holds, for a tree of `size` leaves, the hashes of the complete
 * subtrees that the set bits of `size` stand for; appending a leaf yields the new complete
 * nodes to store and the root comes from folding the frontier.
 *
 * Pure functions, no global state: thread-safe.
 */
#ifndef FULCRUM_CT_MERKLE_H
#define FULCRUM_CT_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define MERKLE_HASH_LEN 32
/* Upper bound for the hashes in an audit path or a consistency proof (2 * 64 is plenty). */
#define MERKLE_MAX_PROOF 130

/* SHA-256(0x00 || data). Returns 0, or -1 when OpenSSL fails (out of memory). */
int merkle_leaf_hash(const unsigned char *data, size_t len, unsigned char out[32]);
/* SHA-256(0x01 || left || right). */
void merkle_node_hash(const unsigned char left[32], const unsigned char right[32],
                      unsigned char out[32]);
/* SHA-256 of the empty string: the root of the empty tree. */
void merkle_empty_root(unsigned char out[32]);
/* The largest power of two strictly less than n (n >= 2). */
uint64_t merkle_split(uint64_t n);

/* Writes the hash of the complete subtree (level, index) to out. Returns 0, or -1 when it
 * cannot be had (storage error). */
typedef int (*merkle_node_fn)(void *ctx, unsigned level, uint64_t index, unsigned char out[32]);

/* MTH(D[0:size]) (size 0 gives the empty root). Returns 0 or -1. */
int merkle_root(merkle_node_fn get, void *ctx, uint64_t size, unsigned char out[32]);

/* PATH(index, D[0:size]) (RFC 6962 §2.1.1), leaf side first. Requires index < size. Returns
 * the number of hashes written to path (at most max), or -1. */
int merkle_inclusion_path(merkle_node_fn get, void *ctx, uint64_t index, uint64_t size,
                          unsigned char path[][32], size_t max);

/* PROOF(first, D[0:second]) (RFC 6962 §2.1.2). first == 0 or first == second give an empty
 * proof. Requires first <= second. Returns the number of hashes written, or -1. */
int merkle_consistency_proof(merkle_node_fn get, void *ctx, uint64_t first, uint64_t second,
                             unsigned char proof[][32], size_t max);

typedef struct merkle_frontier {
    uint64_t size;
    unsigned char hash[64][32]; /* hash[k] is valid when bit k of size is set */
} merkle_frontier;

/* Called for every complete node (level >= 1) an append creates. Returns 0 or -1. */
typedef int (*merkle_emit_fn)(void *ctx, unsigned level, uint64_t index,
                              const unsigned char hash[32]);

/* Appends a leaf hash; emit (may be NULL) receives the new complete nodes. On -1 (emit
 * failed) the frontier is unchanged. */
int merkle_frontier_append(merkle_frontier *f, const unsigned char leaf_hash[32],
                           merkle_emit_fn emit, void *ctx);

/* The root of the frontier's tree. */
void merkle_frontier_root(const merkle_frontier *f, unsigned char out[32]);

/* Fills f for a tree of `size` leaves from stored nodes. Returns 0 or -1. */
int merkle_frontier_load(merkle_frontier *f, uint64_t size, merkle_node_fn get, void *ctx);

#endif
