/*
 * ct/log_http.c: the RFC 6962 §4 API (ct-notes §1.1) under /ct/v1/.
 *
 * Reads are answered inline on the worker from a pooled reader connection; proofs and entries
 * are served for tree sizes up to the published STH only. add-chain / add-pre-chain answer from
 * ct_log_add's callback on the same worker once the entry is durable.
 *
 * Errors: 400 for a request the client can fix, 404 for an unknown leaf hash, 405 for a wrong
 * method, 500 for the log's own failures; the body is
 * {"success":false,"error_message":"<what failed>"} (the shape of the RFC 6962 reference log).
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <sys/queue.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/http_server.h"
#include "common/base64.h"
#include "common/json_text.h"
#include "common/log.h"
#include "common/digest_md.h"
#include "ct/chain_check.h"
#include "ct/log_internal.h"
#include "ct/sct.h"

static void reply_json(struct evhttp_request *req, int status, const char *body, size_t len)
{
    http_reply(req, status, "application/json", body, len);
}

static void reply_error(struct evhttp_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(struct evhttp_request *req, int status, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_text_utf8_scrub(msg); /* a parser's message may quote the client's bytes */
    const char *uri = evhttp_request_get_uri(req);
    if (status >= 500)
        log_error("ctlog", "%s -> %d: %s", uri ? uri : "?", status, msg);
    else
        log_debug("ctlog", "%s -> %d: %s", uri ? uri : "?", status, msg);
    json_t *j = json_pack("{s:b,s:s}", "success", 0, "error_message", msg);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (s) {
        reply_json(req, status, s, strlen(s));
        free(s);
    } else {
        static const char fb[] = "{\"success\":false,\"error_message\":\"out of memory\"}";
        reply_json(req, 500, fb, sizeof fb - 1);
    }
}

static void reply_buf(struct evhttp_request *req, ctlog_buf *b)
{
    if (b->oom)
        reply_error(req, 500, "out of memory");
    else
        reply_json(req, 200, (const char *)b->p, b->len);
    ctlog_buf_free(b);
}

/* ---- query parameters ---- */

struct params {
    struct evkeyvalq q;
};

static int params_parse(struct evhttp_request *req, struct params *p)
{
    TAILQ_INIT(&p->q);
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *query = u ? evhttp_uri_get_query(u) : NULL;
    if (!query)
        return 0;
    return evhttp_parse_query_str(query, &p->q);
}

/* A decimal uint64 parameter: 0, or -1 with the reason answered. */
static int param_u64(struct evhttp_request *req, struct params *p, const char *name,
                     uint64_t *out)
{
    const char *v = evhttp_find_header(&p->q, name);
    if (!v || !*v) {
        reply_error(req, 400, "missing parameter %s", name);
        return -1;
    }
    uint64_t n = 0;
    for (const char *c = v; *c; c++) {
        if (*c < '0' || *c > '9' || n > UINT64_C(100000000000000000)) {
            reply_error(req, 400, "parameter %s is not a non-negative decimal integer: %.40s",
                        name, v);
            return -1;
        }
        n = n * 10 + (uint64_t)(*c - '0');
    }
    *out = n;
    return 0;
}

/* ---- helpers ---- */

static void put_str(ctlog_buf *b, const char *s) { ctlog_buf_put(b, s, strlen(s)); }

static void put_b64(ctlog_buf *b, const unsigned char *d, size_t n)
{
    char *s = b64_encode(d, n);
    if (!s) {
        b->oom = 1;
        return;
    }
    ctlog_buf_put(b, "\"", 1);
    put_str(b, s);
    ctlog_buf_put(b, "\"", 1);
    free(s);
}

static void put_hashes(ctlog_buf *b, unsigned char (*h)[32], int n)
{
    ctlog_buf_put(b, "[", 1);
    for (int i = 0; i < n; i++) {
        if (i)
            ctlog_buf_put(b, ",", 1);
        put_b64(b, h[i], 32);
    }
    ctlog_buf_put(b, "]", 1);
}

static ctlog_db *reader(ct_log *log, struct evhttp_request *req)
{
    ctlog_db *db = ctlog_reader_get(log);
    if (!db) {
        reply_error(req, 500, "the log database is unavailable");
        return NULL;
    }
    if (ctlog_db_begin(db, 0) != 0) {
        reply_error(req, 500, "cannot read the log database: %s", ctlog_db_error(db));
        ctlog_reader_put(log, db);
        return NULL;
    }
    return db;
}

static void reader_done(ct_log *log, ctlog_db *db)
{
    ctlog_db_rollback(db);
    ctlog_reader_put(log, db);
}

/* ---- GET endpoints ---- */

static void get_sth(ct_log *log, struct evhttp_request *req)
{
    char *s = ctlog_current_sth_json(log);
    if (!s) {
        reply_error(req, 500, "no signed tree head yet");
        return;
    }
    reply_json(req, 200, s, strlen(s));
    free(s);
}

static void get_roots(ct_log *log, struct evhttp_request *req)
{
    reply_json(req, 200, log->roots_json, strlen(log->roots_json));
}

static void get_consistency(ct_log *log, struct evhttp_request *req, struct params *p)
{
    uint64_t first, second;
    if (param_u64(req, p, "first", &first) != 0 || param_u64(req, p, "second", &second) != 0)
        return;
    ctlog_sth sth;
    ctlog_current_sth(log, &sth);
    if (first > second) {
        reply_error(req, 400, "first (%" PRIu64 ") is larger than second (%" PRIu64 ")", first,
                    second);
        return;
    }
    if (second > sth.tree_size) {
        reply_error(req, 400, "second (%" PRIu64 ") is larger than the tree size %" PRIu64,
                    second, sth.tree_size);
        return;
    }
    ctlog_buf b = {0};
    put_str(&b, "{\"consistency\":");
    if (first == 0 || first == second) {
        put_str(&b, "[]}");
        reply_buf(req, &b);
        return;
    }
    ctlog_db *db = reader(log, req);
    if (!db) {
        ctlog_buf_free(&b);
        return;
    }
    unsigned char proof[MERKLE_MAX_PROOF][32];
    int n = merkle_consistency_proof(ctlog_db_node, db, first, second, proof, MERKLE_MAX_PROOF);
    if (n < 0) {
        reply_error(req, 500, "cannot build the consistency proof: %s", ctlog_db_error(db));
        reader_done(log, db);
        ctlog_buf_free(&b);
        return;
    }
    reader_done(log, db);
    put_hashes(&b, proof, n);
    put_str(&b, "}");
    reply_buf(req, &b);
}

/* The tree_size parameter: 1..published size. */
static int param_tree_size(ct_log *log, struct evhttp_request *req, struct params *p,
                           uint64_t *size)
{
    if (param_u64(req, p, "tree_size", size) != 0)
        return -1;
    ctlog_sth sth;
    ctlog_current_sth(log, &sth);
    if (*size == 0 || *size > sth.tree_size) {
        reply_error(req, 400, "tree_size %" PRIu64 " is not between 1 and the tree size %" PRIu64,
                    *size, sth.tree_size);
        return -1;
    }
    return 0;
}

static void get_proof_by_hash(ct_log *log, struct evhttp_request *req, struct params *p)
{
    const char *h = evhttp_find_header(&p->q, "hash");
    if (!h || !*h) {
        reply_error(req, 400, "missing parameter hash");
        return;
    }
    uint64_t size;
    if (param_tree_size(log, req, p, &size) != 0)
        return;
    /* An unescaped '+' arrives as a space after query decoding: put it back. */
    char fixed[128];
    size_t hl = strlen(h);
    if (hl >= sizeof fixed) {
        reply_error(req, 400, "hash is not the base64 of 32 bytes");
        return;
    }
    for (size_t i = 0; i <= hl; i++)
        fixed[i] = h[i] == ' ' ? '+' : h[i];
    size_t n = 0;
    unsigned char *hash = b64_decode_any(fixed, hl, &n);
    if (!hash || n != 32) {
        free(hash);
        reply_error(req, 400, "hash is not the base64 of 32 bytes");
        return;
    }
    ctlog_db *db = reader(log, req);
    if (!db) {
        free(hash);
        return;
    }
    uint64_t idx = 0;
    int r = ctlog_db_find_leaf(db, hash, size, &idx);
    free(hash);
    if (r <= 0) {
        if (r < 0)
            reply_error(req, 500, "cannot read the log database: %s", ctlog_db_error(db));
        else
            reply_error(req, 404, "no leaf with this hash in the tree of size %" PRIu64, size);
        reader_done(log, db);
        return;
    }
    unsigned char path[MERKLE_MAX_PROOF][32];
    int np = merkle_inclusion_path(ctlog_db_node, db, idx, size, path, MERKLE_MAX_PROOF);
    if (np < 0) {
        reply_error(req, 500, "cannot build the audit path: %s", ctlog_db_error(db));
        reader_done(log, db);
        return;
    }
    reader_done(log, db);
    ctlog_buf b = {0};
    char head[64];
    snprintf(head, sizeof head, "{\"leaf_index\":%" PRIu64 ",\"audit_path\":", idx);
    put_str(&b, head);
    put_hashes(&b, path, np);
    put_str(&b, "}");
    reply_buf(req, &b);
}

struct entries_out {
    ctlog_buf *b;
    uint64_t count;
};

static int put_entry(void *ctx, uint64_t idx, const unsigned char *leaf, size_t leaf_len,
                     const unsigned char *extra, size_t extra_len)
{
    struct entries_out *o = ctx;
    if (o->count++)
        ctlog_buf_put(o->b, ",", 1);
    put_str(o->b, "{\"leaf_input\":");
    put_b64(o->b, leaf, leaf_len);
    put_str(o->b, ",\"extra_data\":");
    put_b64(o->b, extra, extra_len);
    put_str(o->b, "}");
    return o->b->oom;
}

static void get_entries(ct_log *log, struct evhttp_request *req, struct params *p)
{
    uint64_t start, end;
    if (param_u64(req, p, "start", &start) != 0 || param_u64(req, p, "end", &end) != 0)
        return;
    ctlog_sth sth;
    ctlog_current_sth(log, &sth);
    if (end < start) {
        reply_error(req, 400, "end (%" PRIu64 ") is smaller than start (%" PRIu64 ")", end,
                    start);
        return;
    }
    if (start >= sth.tree_size) {
        reply_error(req, 400, "start (%" PRIu64 ") is not below the tree size %" PRIu64, start,
                    sth.tree_size);
        return;
    }
    if (end >= sth.tree_size)
        end = sth.tree_size - 1;
    if (end - start >= (uint64_t)log->max_get_entries)
        end = start + (uint64_t)log->max_get_entries - 1;
    ctlog_db *db = reader(log, req);
    if (!db)
        return;
    ctlog_buf b = {0};
    struct entries_out o = {&b, 0};
    put_str(&b, "{\"entries\":[");
    int r = ctlog_db_entries(db, start, end, put_entry, &o);
    if (r != 0 || o.count != end - start + 1) {
        reply_error(req, 500, "cannot read entries %" PRIu64 "..%" PRIu64 ": %s", start, end,
                    b.oom ? "out of memory" : "the log database is damaged or unreadable");
        reader_done(log, db);
        ctlog_buf_free(&b);
        return;
    }
    reader_done(log, db);
    put_str(&b, "]}");
    reply_buf(req, &b);
}

struct one_entry {
    ctlog_buf *b;
    int found;
};

static int put_one(void *ctx, uint64_t idx, const unsigned char *leaf, size_t leaf_len,
                   const unsigned char *extra, size_t extra_len)
{
    struct one_entry *o = ctx;
    put_str(o->b, "{\"leaf_input\":");
    put_b64(o->b, leaf, leaf_len);
    put_str(o->b, ",\"extra_data\":");
    put_b64(o->b, extra, extra_len);
    o->found = 1;
    return 1;
}

static void get_entry_and_proof(ct_log *log, struct evhttp_request *req, struct params *p)
{
    uint64_t idx, size;
    if (param_u64(req, p, "leaf_index", &idx) != 0 ||
        param_tree_size(log, req, p, &size) != 0)
        return;
    if (idx >= size) {
        reply_error(req, 400, "leaf_index %" PRIu64 " is not below tree_size %" PRIu64, idx,
                    size);
        return;
    }
    ctlog_db *db = reader(log, req);
    if (!db)
        return;
    ctlog_buf b = {0};
    struct one_entry o = {&b, 0};
    unsigned char path[MERKLE_MAX_PROOF][32];
    int np = -1;
    if (ctlog_db_entries(db, idx, idx, put_one, &o) == 0 && o.found)
        np = merkle_inclusion_path(ctlog_db_node, db, idx, size, path, MERKLE_MAX_PROOF);
    if (np < 0) {
        reply_error(req, 500, "cannot read entry %" PRIu64 " and its audit path: %s", idx,
                    ctlog_db_error(db));
        reader_done(log, db);
        ctlog_buf_free(&b);
        return;
    }
    reader_done(log, db);
    put_str(&b, ",\"audit_path\":");
    put_hashes(&b, path, np);
    put_str(&b, "}");
    reply_buf(req, &b);
}

/* ---- add-chain / add-pre-chain ---- */

static void on_added(void *arg, const unsigned char *sct, size_t sct_len, const char *err,
                     int client_error)
{
    struct evhttp_request *req = arg;
    if (!sct) {
        reply_error(req, client_error ? 400 : 500, "%s", err ? err : "the log failed");
        return;
    }
    char *json = ctlog_sct_json(sct, sct_len);
    if (!json) {
        reply_error(req, 500, "cannot encode the SCT");
        return;
    }
    reply_json(req, 200, json, strlen(json));
    free(json);
}

/* d2i_X509 of the whole buffer (NULL when it does not parse or has trailing bytes). Issuer
 * certificates (index >= 1) go through the log's small cache. */
static X509 *parse_cert(ct_log *log, const unsigned char *der, size_t n, int cacheable)
{
    unsigned char h[32];
    const size_t slots = sizeof log->cache / sizeof log->cache[0];
    if (cacheable && EVP_Digest(der, n, h, NULL, sha256_md(), NULL) != 1)
        cacheable = 0;
    if (cacheable) {
        pthread_mutex_lock(&log->cache_lock);
        for (size_t i = 0; i < slots; i++) {
            X509 *c = log->cache[i].cert;
            if (c && memcmp(log->cache[i].hash, h, 32) == 0 && X509_up_ref(c)) {
                pthread_mutex_unlock(&log->cache_lock);
                return c;
            }
        }
        pthread_mutex_unlock(&log->cache_lock);
    }
    const unsigned char *p = der;
    X509 *x = n ? d2i_X509(NULL, &p, (long)n) : NULL;
    if (x && p != der + n) {
        X509_free(x);
        x = NULL;
    }
    if (x && cacheable && X509_up_ref(x)) {
        pthread_mutex_lock(&log->cache_lock);
        struct ctlog_cached_cert *slot = &log->cache[log->cache_next++ % slots];
        X509_free(slot->cert);
        memcpy(slot->hash, h, 32);
        slot->cert = x;
        pthread_mutex_unlock(&log->cache_lock);
    }
    return x;
}

/* Parses {"chain":["<b64 DER>", ...]}; NULL with the reason answered. */
static STACK_OF(X509) *parse_chain_body(ct_log *log, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    json_t *arr = root ? json_object_get(root, "chain") : NULL;
    if (!root || !json_is_object(root)) {
        reply_error(req, 400, "the body is not a JSON object: %s", root ? "" : jerr.text);
        json_decref(root);
        return NULL;
    }
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        reply_error(req, 400, "the body has no \"chain\" array of certificates");
        json_decref(root);
        return NULL;
    }
    if (json_array_size(arr) > CTLOG_MAX_CHAIN) {
        reply_error(req, 400, "the chain has %zu certificates (at most %d)", json_array_size(arr),
                    CTLOG_MAX_CHAIN);
        json_decref(root);
        return NULL;
    }
    STACK_OF(X509) *chain = sk_X509_new_null();
    if (!chain) {
        reply_error(req, 500, "out of memory");
        json_decref(root);
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i);
        size_t n = 0;
        unsigned char *der =
            json_is_string(v) ? b64_decode_any(json_string_value(v), json_string_length(v), &n)
                              : NULL;
        X509 *x = der ? parse_cert(log, der, n, i > 0) : NULL;
        free(der);
        if (!x || !sk_X509_push(chain, x)) {
            X509_free(x);
            reply_error(req, 400, "chain[%zu] is not a base64 DER certificate", i);
            sk_X509_pop_free(chain, X509_free);
            json_decref(root);
            return NULL;
        }
    }
    json_decref(root);
    return chain;
}

static void add_chain(ct_log *log, struct evhttp_request *req, struct event_base *base,
                      int precert)
{
    STACK_OF(X509) *chain = parse_chain_body(log, req);
    if (!chain)
        return;
    char why[768] = "";
    int rc = ct_log_add(log, precert, chain, base, on_added, req, why, sizeof why);
    sk_X509_pop_free(chain, X509_free);
    if (rc != 0)
        reply_error(req, 400, "%s", why);
}

/* ---- dispatch ---- */

enum ep { EP_ADD_CHAIN, EP_ADD_PRE_CHAIN, EP_STH, EP_CONSISTENCY, EP_PROOF, EP_ENTRIES,
          EP_ROOTS, EP_ENTRY_AND_PROOF };

static const struct {
    const char *name;
    enum ep id;
    int post;
} endpoints[] = {
    {"add-chain", EP_ADD_CHAIN, 1},
    {"add-pre-chain", EP_ADD_PRE_CHAIN, 1},
    {"get-sth", EP_STH, 0},
    {"get-sth-consistency", EP_CONSISTENCY, 0},
    {"get-proof-by-hash", EP_PROOF, 0},
    {"get-entries", EP_ENTRIES, 0},
    {"get-roots", EP_ROOTS, 0},
    {"get-entry-and-proof", EP_ENTRY_AND_PROOF, 0},
};

int ct_log_http_handle(ct_log *log, struct evhttp_request *req, struct event_base *base,
                       const char *subpath)
{
    int found = -1;
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
        if (strcmp(subpath, endpoints[i].name) == 0)
            found = (int)i;
    if (found < 0)
        return 0;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method != (endpoints[found].post ? EVHTTP_REQ_POST : EVHTTP_REQ_GET)) {
        reply_error(req, 405, "%s takes %s", endpoints[found].name,
                    endpoints[found].post ? "POST" : "GET");
        return 1;
    }
    struct params p;
    if (params_parse(req, &p) != 0) {
        evhttp_clear_headers(&p.q);
        reply_error(req, 400, "the query string is malformed");
        return 1;
    }
    switch (endpoints[found].id) {
    case EP_ADD_CHAIN: add_chain(log, req, base, 0); break;
    case EP_ADD_PRE_CHAIN: add_chain(log, req, base, 1); break;
    case EP_STH: get_sth(log, req); break;
    case EP_CONSISTENCY: get_consistency(log, req, &p); break;
    case EP_PROOF: get_proof_by_hash(log, req, &p); break;
    case EP_ENTRIES: get_entries(log, req, &p); break;
    case EP_ROOTS: get_roots(log, req); break;
    case EP_ENTRY_AND_PROOF: get_entry_and_proof(log, req, &p); break;
    }
    evhttp_clear_headers(&p.q);
    return 1;
}
