/*
 * ct/submit_embedded.c: submission to a ct_log in the same process by a direct call (no HTTP,
 * no serialisation of the chain). The log calls back on the submitting worker's event_base once
 * the entry is durable; the SCT is then checked there like any other (submit_common.c), so a
 * log bug cannot put a bad SCT into a certificate. With the log's key in this process, the check
 * rebuilds the signed bytes from the precertificate and compares them with what the log
 * signed (ct_sct_verify_own) instead of verifying the signature arithmetic again.
 *
 * The submitter borrows the log: the caller keeps it open for the submitter's lifetime and closes
 * it after ct_submitter_free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct/submit_internal.h"

struct embedded {
    ct_log *log;
};

static void on_added(void *arg, const unsigned char *sct, size_t sct_len, const char *err,
                     int client_error)
{
    struct ct_submission *sub = arg;
    char why[CT_ERR_MAX];
    if (!sct) {
        snprintf(why, sizeof why, "the embedded log %s: %.600s",
                 client_error ? "refused the precertificate chain" : "failed",
                 err && *err ? err : "no reason given");
        ct_submission_finish(sub, NULL, 0, why);
        return;
    }
    ct_submission_finish(sub, sct, sct_len, NULL);
}

static int embedded_submit(void *impl, struct ct_submission *sub, char *why, size_t whylen)
{
    struct embedded *e = impl;
    char r[CT_ERR_MAX - 64] = "";
    int rc = sub->render
                 ? ct_log_add_own_precert_audit(e->log, sub->chain, sub->base, on_added, sub,
                                                sub->render, sub->render_arg, &sub->early_sct,
                                                &sub->early_sct_len, sub->early_leaf_hash, r,
                                                sizeof r)
                 : ct_log_add_own_precert_sct(e->log, sub->chain, sub->base, on_added, sub,
                                              &sub->early_sct, &sub->early_sct_len,
                                              sub->early_leaf_hash, r, sizeof r);
    if (rc != 0) {
        snprintf(why, whylen, "the embedded log refused the precertificate chain: %s",
                 *r ? r : "no reason given");
        return -1;
    }
    /* The log answers through an event, so sub is still being set up here. */
    if (sub->early_sct && ct_log_key_in_process(e->log) &&
        sub->early_sct_len <= sizeof sub->early_own_sct) {
        memcpy(sub->early_own_sct, sub->early_sct, sub->early_sct_len);
        sub->early_own_len = sub->early_sct_len;
        sub->early_own = 1;
    }
    return 0;
}

static void embedded_destroy(void *impl)
{
    free(impl);
}

static void embedded_expect(void *impl, int delta)
{
    struct embedded *e = impl;
    if (delta > 0)
        ct_log_expect(e->log);
    else
        ct_log_expect_done(e->log);
}

static const struct ct_submitter_ops embedded_ops = {
    .submit = embedded_submit,
    .destroy = embedded_destroy,
    .expect = embedded_expect,
    .carries_audit = 1,
};

ct_submitter *ct_submitter_embedded(ct_log *log, char *why, size_t whylen)
{
    if (!log) {
        snprintf(why, whylen, "no log");
        return NULL;
    }
    EVP_PKEY *key = ct_log_public_key(log);
    if (!key) {
        snprintf(why, whylen, "the embedded log has no public key");
        return NULL;
    }
    struct embedded *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    e->log = log;
    return ct_submitter_wrap(&embedded_ops, e, key, why, whylen);
}
