/*
 * ct/sct.h: the RFC 6962 byte layouts a log writes (ct-notes §1.2-1.4, §1.9, §1.10), and a
 * small growable byte buffer for TLS-style encoding.
 *
 * Pure functions: thread-safe.
 */
#ifndef FULCRUM_CT_SCT_H
#define FULCRUM_CT_SCT_H

#include <stddef.h>
#include <stdint.h>

enum { CT_ENTRY_X509 = 0, CT_ENTRY_PRECERT = 1 };

/* Longest DigitallySigned an ECDSA P-256 key produces: 4 header bytes + 72-byte DER. */
#define CTLOG_DS_MAX 80

typedef struct ctlog_buf {
    unsigned char *p;
    size_t len, cap;
    int oom; /* set once an allocation failed; every later put is ignored */
} ctlog_buf;

void ctlog_buf_put(ctlog_buf *b, const void *data, size_t len);
void ctlog_buf_u8(ctlog_buf *b, unsigned v);
void ctlog_buf_u16(ctlog_buf *b, unsigned v);
void ctlog_buf_u24(ctlog_buf *b, size_t v);
void ctlog_buf_u64(ctlog_buf *b, uint64_t v);
/* 3-byte length + data. */
void ctlog_buf_opaque24(ctlog_buf *b, const unsigned char *data, size_t len);
void ctlog_buf_free(ctlog_buf *b);

/* MerkleTreeLeaf (§1.9) with empty extensions: 00 00 | timestamp | entry_type | signed_entry |
 * 00 00. signed_entry is x509: 3-byte length + leaf DER; precert: issuer_key_hash (32) +
 * 3-byte length + TBS. These are also, byte for byte, the SCT signature input (§1.3: version 0,
 * signature_type 0 take the places of version 0, leaf_type 0). Returns a malloc'd buffer or
 * NULL (out of memory). */
unsigned char *ctlog_leaf_input(uint64_t timestamp, int entry_type,
                                const unsigned char *signed_entry, size_t signed_len,
                                size_t *outlen);

/* SCT TLS serialisation (§1.4): 00 | log_id | timestamp | 00 00 | DigitallySigned. Returns a
 * malloc'd buffer or NULL. */
unsigned char *ctlog_sct_serialize(const unsigned char log_id[32], uint64_t timestamp,
                                   const unsigned char *ds, size_t dslen, size_t *outlen);

/* TreeHeadSignature input (§1.10): 50 bytes. */
void ctlog_sth_input(uint64_t timestamp, uint64_t tree_size, const unsigned char root[32],
                     unsigned char out[50]);

/* The fields of a serialised SCT (pointers into it). Returns 0, or -1 when malformed. */
typedef struct ctlog_sct_fields {
    int version;
    const unsigned char *log_id; /* 32 bytes */
    uint64_t timestamp;
    const unsigned char *ext;
    size_t ext_len;
    const unsigned char *ds; /* DigitallySigned: hash, sig, 2-byte length, signature */
    size_t ds_len;
} ctlog_sct_fields;
int ctlog_sct_parse(const unsigned char *sct, size_t len, ctlog_sct_fields *f);

/* The AddChainResponse JSON of a serialised SCT:
 * {"sct_version":0,"id":"<b64>","timestamp":N,"extensions":"","signature":"<b64>"}.
 * malloc'd, NULL when the SCT is malformed or out of memory. */
char *ctlog_sct_json(const unsigned char *sct, size_t len);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
uint64_t ctlog_now_ms(void);

#endif
