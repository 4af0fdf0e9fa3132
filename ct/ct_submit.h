/*
 * ct/ct_submit.h: the CA's side of Certificate Transparency: hand a precertificate chain to a
 * log and get back a verified SCT, without blocking the worker's event loop.
 *
 * Two submitters behind one interface:
 *  - embedded: a direct call into a ct_log in the same process (no HTTP hop);
 *  - http: an external RFC 6962 log at a URL (another Fulcrum, Trillian's CTFE, ...), POSTing
 *    <url>/ct/v1/add-pre-chain with libcurl multi on a fetch thread; transport errors, 408, 429
 *    and 503 retried with exponential backoff honouring Retry-After, a per-attempt timeout, a
 *    total deadline; other statuses fail at once (fulcio-compat.md §5).
 * Every SCT is verified with the log's public key (OpenSSL's CT API: SCT_validate against a
 * CT_POLICY_EVAL_CTX built from the precert and issuer, ct/sct_verify.h) before it is handed to
 * the caller; the verification runs on the caller's event_base thread.
 *
 * Ownership: ct_submitter_embedded borrows the log (close it after ct_submitter_free);
 * ct_submitter_http copies what it needs from the options (the key is up-referenced).
 * ct_submit_precert up-references the chain's certificates until the callback has run.
 * ct_submitter_free must come after every callback has run (the server drains first); a
 * submission still under way then is dropped without its callback.
 *
 * Thread safety: any thread; the callback runs on the caller's event_base.
 */
#ifndef FULCRUM_CT_CT_SUBMIT_H
#define FULCRUM_CT_CT_SUBMIT_H

#include <event2/event.h>
#include <openssl/x509.h>
#include <stddef.h>

#include "ct/ct_log.h"

typedef struct ct_submitter ct_submitter;

typedef struct ct_http_options {
    const char *url;             /* log prefix; "/ct/v1/add-pre-chain" is appended */
    EVP_PKEY *log_key;           /* the log's public key (--ct-log-public-key-path), required */
    const char *tls_ca_file;     /* extra CA for https (may be NULL) */
    long attempt_timeout_ms;     /* default 30000 (<= 0 = default) */
    long total_deadline_ms;      /* default 60000 (<= 0 = default), from ct_submit_precert */
} ct_http_options;

ct_submitter *ct_submitter_embedded(ct_log *log, char *why, size_t whylen);
ct_submitter *ct_submitter_http(const ct_http_options *o, char *why, size_t whylen);
void ct_submitter_free(ct_submitter *s);

/* On success sct is the TLS-serialised SCT (verified); on failure sct == NULL and err says why
 * (for the server log; the client gets Fulcio's "Error entering certificate in CTL"). */
typedef void (*ct_submit_cb)(void *arg, const unsigned char *sct, size_t sct_len,
                             const char *err);

/* chain = [precert, issuing CA, ..., root]. Returns 0 (cb will run exactly once on base) or -1
 * with why (nothing will run). */
int ct_submit_precert(ct_submitter *s, STACK_OF(X509) *chain, struct event_base *base,
                      ct_submit_cb cb, void *arg, char *why, size_t whylen);

/* The same; on success *early_sct (malloc'd, the caller frees it) is the SCT the log has already
 * signed and will deliver once the entry is durable, when the log knows it that early (the
 * embedded log), else NULL. Unverified until cb delivers it; cb's SCT is the one to use (the
 * same: the embedded log does not deduplicate the CA's own precertificates). */
int ct_submit_precert_early(ct_submitter *s, STACK_OF(X509) *chain, struct event_base *base,
                            ct_submit_cb cb, void *arg, unsigned char **early_sct,
                            size_t *early_len, char *why, size_t whylen);

/* The embedded log only (ct_submitter_carries_audit): ct_submit_precert_early whose entry
 * carries the certificate's audit line, made by render from the SCT before the entry is queued
 * and stored in the entry's transaction (ct/ct_log.h, ct_log_add_own_precert_audit): cb's SCT
 * then means the line is durable too. -1 with why from a submitter that cannot. */
int ct_submit_precert_audit(ct_submitter *s, STACK_OF(X509) *chain, struct event_base *base,
                            ct_submit_cb cb, void *arg, ct_audit_render render,
                            void *render_arg, unsigned char **early_sct, size_t *early_len,
                            char *why, size_t whylen);
int ct_submitter_carries_audit(const ct_submitter *s);

/* Adaptive group commit (ct_log_expect): announces a precertificate on its way, and withdraws the
 * announcement once ct_submit_precert(_early) has returned, or when none will be submitted. Only
 * the embedded log uses it; a no-op for the others. NULL-safe. */
void ct_submitter_expect(ct_submitter *s);
void ct_submitter_expect_done(ct_submitter *s);

/* The log's public key (borrowed) and LogID (32 bytes). */
EVP_PKEY *ct_submitter_log_key(const ct_submitter *s);
const unsigned char *ct_submitter_log_id(const ct_submitter *s);

#endif
