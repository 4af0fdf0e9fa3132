/*
 * ct/ct_log.h: Fulcrum's own RFC 6962 (v1) Certificate Transparency log.
 *
 * One log = one SQLite database (WAL) + one ECDSA P-256 key + a set of accepted roots. The
 * database remembers its log ID: opening it with a different key is refused. It runs
 * inside `fulcrum serve` (embedded, the default: the CA submits by a direct call and the log's
 * API is served on the CA's listener under /ct/v1/) or alone (`fulcrum ctlog serve`).
 *
 * Durability: an entry is committed to the database before its SCT is handed out. Submissions
 * are committed in groups by the log's writer thread (group commit: what queues while one
 * transaction is being made durable goes into the next), so durability does not cost
 * throughput. Stored subtree hashes make inclusion and consistency
 * proofs a logarithmic number of reads. The writer signs a new STH covering every committed entry
 * at most sth_interval_ms after the entry (well within 1 s). A resubmitted chain (same leaf
 * certificate / precertificate TBS) is answered with the original SCT.
 *
 * Wire formats: ../shared/ct-notes.md §1 (SCT, MerkleTreeLeaf, STH, extra_data).
 *
 * Thread safety: every function may be called from any thread; callbacks run on the caller's
 * event_base (via event_active), never on the writer thread.
 */
#ifndef FULCRUM_CT_CT_LOG_H
#define FULCRUM_CT_CT_LOG_H

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "hsm/signer.h"

typedef struct ct_log ct_log;

typedef struct ct_log_options {
    const char *state_dir;       /* holds ctlog/log.db, ctlog/private.pem (created 0600 when
                                    absent and neither key_signer nor key_path is given),
                                    ctlog/public.pem (written once the database accepted the
                                    key) */
    signer *key_signer;          /* optional: sign SCTs and STHs through this signer (e.g. PKCS#11,
                                    must be EC P-256); borrowed, must outlive the log */
    const char *key_path;        /* optional, without key_signer: the log's PEM private key (EC
                                    P-256; PKCS#8 or SEC1, maybe encrypted) instead of
                                    ctlog/private.pem; the file must exist */
    const char *key_passwd_file; /* optional: file holding key_path's password */
    STACK_OF(X509) *roots;       /* accepted roots (copied) */
    int batch_ms;                /* group-commit window under load in ms (log_writer.c); default
                                    0 = none: the writer commits whatever queued while it was
                                    busy */
    int sth_interval_ms;         /* max delay before a new STH covers new entries; default 250 */
    int max_get_entries;         /* most entries one get-entries answers; default 1000 */
} ct_log_options;

ct_log *ct_log_open(const ct_log_options *o, char *why, size_t whylen);

/* Commits what is pending, stops the writer thread, closes the database. NULL-safe. */
void ct_log_close(ct_log *log);

/* The log's public key (borrowed) and LogID = SHA-256 of its DER SubjectPublicKeyInfo. */
EVP_PKEY *ct_log_public_key(const ct_log *log);
const unsigned char *ct_log_id(const ct_log *log); /* 32 bytes */

/* Result of a submission: the TLS-serialised SCT (ct-notes §1.4) on success; on failure
 * sct == NULL and err says why; client_error = 1 when the chain itself was refused (400),
 * 0 when the log failed (500). */
typedef void (*ct_log_add_cb)(void *arg, const unsigned char *sct, size_t sct_len,
                              const char *err, int client_error);

/* Submits chain[0] (leaf or, with precert = 1, a precertificate carrying the poison) with
 * chain[1..] up to an accepted root (the root may be omitted if chain[last] is issued by one).
 * Validation failures are reported at once: returns -1 with why (client's fault). Otherwise
 * returns 0 and cb runs exactly once on `base`'s thread when the entry is durable (or the
 * commit failed). */
int ct_log_add(ct_log *log, int precert, STACK_OF(X509) *chain, struct event_base *base,
               ct_log_add_cb cb, void *arg, char *why, size_t whylen);

/* ct_log_add(log, 1, ...) for the CA in the same process (ct/submit_embedded.c): chain[0] is a
 * precertificate this process has just made. Every check of ct_log_add runs; the poison-free TBS
 * is cut from the precertificate's DER instead of a re-parse, and there is no deduplication: a
 * new precertificate (fresh random serial) is never a resubmission, so it is neither looked up
 * nor entered in the dedup index (each entry there costs a random index page per commit, ~12 us
 * of the writer's CPU). Should someone later submit the same chain with add-pre-chain, it is
 * logged again with a new SCT, which RFC 6962 allows (§4.1: a log MAY return the earlier SCT);
 * after an index rebuild it would get the original one. */
int ct_log_add_own_precert(ct_log *log, STACK_OF(X509) *chain, struct event_base *base,
                           ct_log_add_cb cb, void *arg, char *why, size_t whylen);

/* The same, and on success *sct (malloc'd, the caller frees it) is the SCT the log has signed and
 * will answer with once the entry is durable: known before the commit, so that the CA can make
 * its own records durable at the same time. leaf_hash receives the Merkle leaf hash of
 * that entry, SHA-256(0x00 || the bytes the SCT signs), for ct_sct_verify_own. */
int ct_log_add_own_precert_sct(ct_log *log, STACK_OF(X509) *chain, struct event_base *base,
                               ct_log_add_cb cb, void *arg, unsigned char **sct, size_t *sct_len,
                               unsigned char leaf_hash[32], char *why, size_t whylen);

/* Audit records carried by the log's transactions, for the CA's audit log (ca/audit_log.h): one
 * durable write for the entry and the record of its certificate.
 *
 * ct_log_add_own_precert_audit is ct_log_add_own_precert_sct whose entry carries an audit line:
 * render (on the caller's thread, after the SCT is signed and before the entry is queued) makes
 * the line from the SCT, malloc'd, *len its length; the log takes it. A NULL line fails the
 * submission (out of memory). The line is stored in the entry's transaction (table
 * audit_pending, keyed by the entry's index), so cb's success means both are durable.
 *
 * After each commit the writer hands the batch's lines to the sink set with
 * ct_log_set_audit_sink, on the writer's thread, in index order, the lines valid during the call
 * only. synced(arg) says up to where the sink has made them durable elsewhere (the audit file
 * synced): 1 + that index, 0 for none; the writer asks it at each transaction and deletes those
 * rows. Set the sink before any submission; ct_log_set_audit_sink(log, NULL, NULL, NULL)
 * detaches it (it returns once no call to them is running), before the sink's owner goes away.
 * What is left (a crash between the commit and the file's sync, or lines committed after the
 * sink was detached) ct_log_audit_pending reads back, in index order, at the next start; fn
 * returns non-zero to stop. 0 or -1. */
typedef char *(*ct_audit_render)(void *arg, const unsigned char *sct, size_t sct_len,
                                 size_t *len);
int ct_log_add_own_precert_audit(ct_log *log, STACK_OF(X509) *chain, struct event_base *base,
                                 ct_log_add_cb cb, void *arg, ct_audit_render render,
                                 void *render_arg, unsigned char **sct, size_t *sct_len,
                                 unsigned char leaf_hash[32], char *why, size_t whylen);
typedef struct ct_audit_line {
    uint64_t idx;
    const char *line;
    size_t len;
} ct_audit_line;
typedef void (*ct_audit_sink)(void *arg, const ct_audit_line *lines, size_t n);
typedef uint64_t (*ct_audit_synced)(void *arg);
void ct_log_set_audit_sink(ct_log *log, ct_audit_sink sink, ct_audit_synced synced, void *arg);
int ct_log_audit_pending(ct_log *log,
                         int (*fn)(void *ctx, uint64_t idx, const char *line, size_t len),
                         void *ctx);

/* Adaptive group commit for a submitter in this process (the CA). ct_log_expect announces a
 * submission on its way (a signing request under way); ct_log_expect_done withdraws it, after the
 * submission was made or when it will not be. Once anything was announced, a batch waiting for
 * its window (batch_ms) waits, once no announced submission is outstanding, only the share of the
 * window the process's load asks for (cpu_load_window_share, common/cpu_load.h): under light load
 * it waits only for the issuances already being signed, under heavy load it gathers for the
 * whole window, never longer. A log nobody announces to keeps the fixed window.
 * Thread-safe. */
void ct_log_expect(ct_log *log);
void ct_log_expect_done(ct_log *log);

/* 1 when the log's key is held in this process (a key file OpenSSL signs with), 0 for a key in
 * an HSM: an SCT signed in process need not be verified against the log's own public key. */
int ct_log_key_in_process(const ct_log *log);

/* Serves the RFC 6962 API: `subpath` is what follows "/ct/v1/" (e.g. "get-sth", without the
 * query). Answers the request (exactly once, possibly later from `base`) and returns 1, or
 * returns 0 when subpath is not an RFC 6962 endpoint. */
int ct_log_http_handle(ct_log *log, struct evhttp_request *req, struct event_base *base,
                       const char *subpath);

/* Current signed tree size (for metrics and tests). */
unsigned long long ct_log_tree_size(const ct_log *log);

#endif
