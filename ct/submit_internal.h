/*
 * ct/submit_internal.h: what the two submitters (submit_embedded.c, submit_http.c) share with
 * submit_common.c. Not part of the contract.
 */
#ifndef FULCRUM_CT_SUBMIT_INTERNAL_H
#define FULCRUM_CT_SUBMIT_INTERNAL_H

#include <event2/event.h>
#include <openssl/x509.h>
#include <stddef.h>

#include "ct/ct_submit.h"
#include "ct/sct_verify.h"

#define CT_ERR_MAX 768

/* One ct_submit_precert call, from submission to its one callback. */
struct ct_submission {
    ct_submitter *s;
    STACK_OF(X509) *chain;  /* [precert, issuing CA, ..., root], each up-referenced */
    struct event_base *base;
    ct_submit_cb cb;
    void *arg;
    /* The outcome, filled before delivery (submit_common.c). */
    unsigned char *sct;     /* malloc'd, or NULL */
    size_t sct_len;
    char err[CT_ERR_MAX];
    struct event *ev;
    /* Set by a backend whose SCT is known before the entry is durable (the embedded log):
     * malloc'd, handed to ct_submit_precert_early's caller right after submit returns. */
    unsigned char *early_sct;
    size_t early_sct_len;
    /* Set with early_sct when the log's key is in this process: that SCT and its entry's Merkle
     * leaf hash. Delivered with that same SCT, it is checked by ct_sct_verify_own. */
    int early_own;
    size_t early_own_len;
    unsigned char early_own_sct[256];
    unsigned char early_leaf_hash[32];
    /* ct_submit_precert_audit: the audit line's maker (the embedded log stores the line with
     * the entry), or NULL. */
    ct_audit_render render;
    void *render_arg;
};

struct ct_submitter_ops {
    /* Starts the submission: returns 0 (the backend will call ct_submission_finish or
     * ct_submission_finish_async exactly once) or -1 with why (the caller frees sub). */
    int (*submit)(void *impl, struct ct_submission *sub, char *why, size_t whylen);
    void (*destroy)(void *impl);
    /* Optional: ct_submitter_expect (delta +1) and ct_submitter_expect_done (-1). */
    void (*expect)(void *impl, int delta);
    /* The backend stores audit lines with its entries (ct_submit_precert_audit). */
    int carries_audit;
};

struct ct_submitter {
    const struct ct_submitter_ops *ops;
    void *impl;
    EVP_PKEY *log_key;          /* owned reference */
    ct_sct_verifier *verifier;
};

/* Wraps a backend. On failure destroys impl and returns NULL with why. */
ct_submitter *ct_submitter_wrap(const struct ct_submitter_ops *ops, void *impl, EVP_PKEY *log_key,
                                char *why, size_t whylen);

/* On sub->base's thread: verifies the SCT (when there is one), calls the callback once, frees
 * sub. sct is copied. */
void ct_submission_finish(struct ct_submission *sub, const unsigned char *sct, size_t sct_len,
                          const char *err);

/* From any thread: records the outcome (takes ownership of the malloc'd sct) and schedules
 * ct_submission_finish on sub->base. */
void ct_submission_finish_async(struct ct_submission *sub, unsigned char *sct, size_t sct_len,
                                const char *err);

/* Frees a submission whose callback will never run. */
void ct_submission_free(struct ct_submission *sub);

#endif
