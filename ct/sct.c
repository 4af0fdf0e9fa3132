#include "ct/sct.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base64.h"

void ctlog_buf_put(ctlog_buf *b, const void *data, size_t len)
{
    if (b->oom || len == 0)
        return;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

void ctlog_buf_u8(ctlog_buf *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    ctlog_buf_put(b, &c, 1);
}

void ctlog_buf_u16(ctlog_buf *b, unsigned v)
{
    unsigned char c[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    ctlog_buf_put(b, c, 2);
}

void ctlog_buf_u24(ctlog_buf *b, size_t v)
{
    unsigned char c[3] = {(unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    ctlog_buf_put(b, c, 3);
}

void ctlog_buf_u64(ctlog_buf *b, uint64_t v)
{
    unsigned char c[8];
    for (int i = 0; i < 8; i++)
        c[i] = (unsigned char)(v >> (56 - 8 * i));
    ctlog_buf_put(b, c, 8);
}

void ctlog_buf_opaque24(ctlog_buf *b, const unsigned char *data, size_t len)
{
    ctlog_buf_u24(b, len);
    ctlog_buf_put(b, data, len);
}

void ctlog_buf_free(ctlog_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static unsigned char *buf_take(ctlog_buf *b, size_t *outlen)
{
    if (b->oom) {
        ctlog_buf_free(b);
        return NULL;
    }
    *outlen = b->len;
    return b->p;
}

unsigned char *ctlog_leaf_input(uint64_t timestamp, int entry_type,
                                const unsigned char *signed_entry, size_t signed_len,
                                size_t *outlen)
{
    ctlog_buf b = {0};
    ctlog_buf_u8(&b, 0); /* version v1 (SCT: sct_version v1) */
    ctlog_buf_u8(&b, 0); /* leaf_type timestamped_entry (SCT: certificate_timestamp) */
    ctlog_buf_u64(&b, timestamp);
    ctlog_buf_u16(&b, (unsigned)entry_type);
    ctlog_buf_put(&b, signed_entry, signed_len);
    ctlog_buf_u16(&b, 0); /* extensions */
    return buf_take(&b, outlen);
}

unsigned char *ctlog_sct_serialize(const unsigned char log_id[32], uint64_t timestamp,
                                   const unsigned char *ds, size_t dslen, size_t *outlen)
{
    ctlog_buf b = {0};
    ctlog_buf_u8(&b, 0);
    ctlog_buf_put(&b, log_id, 32);
    ctlog_buf_u64(&b, timestamp);
    ctlog_buf_u16(&b, 0);
    ctlog_buf_put(&b, ds, dslen);
    return buf_take(&b, outlen);
}

void ctlog_sth_input(uint64_t timestamp, uint64_t tree_size, const unsigned char root[32],
                     unsigned char out[50])
{
    out[0] = 0; /* version v1 */
    out[1] = 1; /* signature_type tree_hash */
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (unsigned char)(timestamp >> (56 - 8 * i));
        out[10 + i] = (unsigned char)(tree_size >> (56 - 8 * i));
    }
    memcpy(out + 18, root, 32);
}

int ctlog_sct_parse(const unsigned char *p, size_t len, ctlog_sct_fields *f)
{
    if (len < 1 + 32 + 8 + 2)
        return -1;
    f->version = p[0];
    f->log_id = p + 1;
    f->timestamp = 0;
    for (int i = 0; i < 8; i++)
        f->timestamp = (f->timestamp << 8) | p[33 + i];
    size_t ext_len = ((size_t)p[41] << 8) | p[42];
    size_t off = 43;
    if (len - off < ext_len)
        return -1;
    f->ext = p + off;
    f->ext_len = ext_len;
    off += ext_len;
    if (len - off < 4)
        return -1;
    size_t sig_len = ((size_t)p[off + 2] << 8) | p[off + 3];
    if (len - off - 4 != sig_len)
        return -1;
    f->ds = p + off;
    f->ds_len = len - off;
    return 0;
}

char *ctlog_sct_json(const unsigned char *sct, size_t len)
{
    ctlog_sct_fields f;
    if (ctlog_sct_parse(sct, len, &f) != 0)
        return NULL;
    char *id = b64_encode(f.log_id, 32);
    char *ext = b64_encode(f.ext, f.ext_len);
    char *sig = b64_encode(f.ds, f.ds_len);
    char *out = NULL;
    if (id && ext && sig) {
        size_t n = strlen(id) + strlen(ext) + strlen(sig) + 128;
        out = malloc(n);
        if (out)
            snprintf(out, n,
                     "{\"sct_version\":%d,\"id\":\"%s\",\"timestamp\":%" PRIu64
                     ",\"extensions\":\"%s\",\"signature\":\"%s\"}",
                     f.version, id, f.timestamp, ext, sig);
    }
    free(id);
    free(ext);
    free(sig);
    return out;
}

uint64_t ctlog_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
