/*
 * ct/submit_common.c: the part of ct/ct_submit.h both submitters share: taking a submission,
 * delivering its outcome on the caller's event_base, and verifying every SCT there (on the
 * worker thread, so verification is spread over the workers, not serialised on a fetch thread).
 *
 * Each submission carries its own struct event (event_assign into the submission's memory, done
 * on the caller's thread). A backend finishing on another thread only calls event_active on it.
 * A submission that never finishes (the submitter freed while it was still under way, i.e. after
 * the server gave up draining) is freed without touching its event_base, which may already be
 * gone: an event that was assigned but never added or activated holds nothing in the base.
 */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct/submit_internal.h"

#define EV_OFFSET ((sizeof(struct ct_submission) + 15) & ~(size_t)15)

ct_submitter *ct_submitter_wrap(const struct ct_submitter_ops *ops, void *impl, EVP_PKEY *log_key,
                                char *why, size_t whylen)
{
    ct_submitter *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(why, whylen, "out of memory");
        ops->destroy(impl);
        return NULL;
    }
    s->ops = ops;
    s->impl = impl;
    s->verifier = ct_sct_verifier_new(log_key, why, whylen);
    if (!s->verifier) {
        ops->destroy(impl);
        free(s);
        return NULL;
    }
    EVP_PKEY_up_ref(log_key);
    s->log_key = log_key;
    return s;
}

void ct_submitter_free(ct_submitter *s)
{
    if (!s)
        return;
    s->ops->destroy(s->impl);
    ct_sct_verifier_free(s->verifier);
    EVP_PKEY_free(s->log_key);
    free(s);
}

EVP_PKEY *ct_submitter_log_key(const ct_submitter *s)
{
    return s ? s->log_key : NULL;
}

const unsigned char *ct_submitter_log_id(const ct_submitter *s)
{
    return s ? ct_sct_verifier_log_id(s->verifier) : NULL;
}

void ct_submission_free(struct ct_submission *sub)
{
    if (!sub)
        return;
    sk_X509_pop_free(sub->chain, X509_free);
    free(sub->sct);
    free(sub->early_sct);
    free(sub); /* the event lives in the same block */
}

void ct_submission_finish(struct ct_submission *sub, const unsigned char *sct, size_t sct_len,
                          const char *err)
{
    char why[CT_ERR_MAX];
    const char *fail = err && *err ? err : NULL;
    if (!fail && (!sct || !sct_len))
        fail = "the log returned no SCT";
    if (!fail) {
        X509 *cert = sk_X509_value(sub->chain, 0), *issuer = sk_X509_value(sub->chain, 1);
        char r[CT_ERR_MAX - 64] = "";
        /* The log's own early SCT, signed in process: rebuilt and compared, not re-verified. */
        int own = sub->early_own && sub->early_own_len == sct_len &&
                  memcmp(sub->early_own_sct, sct, sct_len) == 0;
        if ((own ? ct_sct_verify_own(sub->s->verifier, sct, sct_len, cert, issuer, ct_now_ms(),
                                     sub->early_leaf_hash, r, sizeof r)
                 : ct_sct_verify(sub->s->verifier, sct, sct_len, cert, issuer, ct_now_ms(), r,
                                 sizeof r)) != 0) {
            snprintf(why, sizeof why, "the log's SCT does not verify: %s", r);
            fail = why;
        }
    }
    if (fail)
        sub->cb(sub->arg, NULL, 0, fail);
    else
        sub->cb(sub->arg, sct, sct_len, NULL);
    ct_submission_free(sub);
}

static void deliver(evutil_socket_t fd, short what, void *p)
{
    (void)fd;
    (void)what;
    struct ct_submission *sub = p;
    unsigned char *sct = sub->sct;
    sub->sct = NULL;
    ct_submission_finish(sub, sct, sct ? sub->sct_len : 0, sct ? NULL : sub->err);
    free(sct);
}

void ct_submission_finish_async(struct ct_submission *sub, unsigned char *sct, size_t sct_len,
                                const char *err)
{
    free(sub->sct);
    sub->sct = sct;
    sub->sct_len = sct_len;
    snprintf(sub->err, sizeof sub->err, "%s", err && *err ? err : "the log returned no SCT");
    event_active(sub->ev, EV_TIMEOUT, 0);
}

int ct_submit_precert(ct_submitter *s, STACK_OF(X509) *chain, struct event_base *base,
                      ct_submit_cb cb, void *arg, char *why, size_t whylen)
{
    return ct_submit_precert_early(s, chain, base, cb, arg, NULL, NULL, why, whylen);
}

void ct_submitter_expect(ct_submitter *s)
{
    if (s && s->ops->expect)
        s->ops->expect(s->impl, 1);
}

void ct_submitter_expect_done(ct_submitter *s)
{
    if (s && s->ops->expect)
        s->ops->expect(s->impl, -1);
}

static int submit(ct_submitter *s, STACK_OF(X509) *chain, struct event_base *base,
                  ct_submit_cb cb, void *arg, ct_audit_render render, void *render_arg,
                  unsigned char **early_sct, size_t *early_len, char *why, size_t whylen);

int ct_submit_precert_early(ct_submitter *s, STACK_OF(X509) *chain, struct event_base *base,
                            ct_submit_cb cb, void *arg, unsigned char **early_sct,
                            size_t *early_len, char *why, size_t whylen)
{
    return submit(s, chain, base, cb, arg, NULL, NULL, early_sct, early_len, why, whylen);
}

int ct_submitter_carries_audit(const ct_submitter *s)
{
    return s && s->ops->carries_audit;
}

int ct_submit_precert_audit(ct_submitter *s, STACK_OF(X509) *chain, struct event_base *base,
                            ct_submit_cb cb, void *arg, ct_audit_render render,
                            void *render_arg, unsigned char **early_sct, size_t *early_len,
                            char *why, size_t whylen)
{
    if (!ct_submitter_carries_audit(s) || !render) {
        if (early_sct) {
            *early_sct = NULL;
            *early_len = 0;
        }
        snprintf(why, whylen, "CT submission: this log cannot carry audit records");
        return -1;
    }
    return submit(s, chain, base, cb, arg, render, render_arg, early_sct, early_len, why,
                  whylen);
}

static int submit(ct_submitter *s, STACK_OF(X509) *chain, struct event_base *base,
                  ct_submit_cb cb, void *arg, ct_audit_render render, void *render_arg,
                  unsigned char **early_sct, size_t *early_len, char *why, size_t whylen)
{
    if (early_sct) {
        *early_sct = NULL;
        *early_len = 0;
    }
    if (!s || !chain || !base || !cb) {
        snprintf(why, whylen, "CT submission: missing input");
        return -1;
    }
    if (sk_X509_num(chain) < 2) {
        snprintf(why, whylen, "CT submission: the chain needs the precertificate and its issuer");
        return -1;
    }
    X509 *pre = sk_X509_value(chain, 0);
    if (X509_get_ext_by_NID(pre, NID_ct_precert_poison, -1) < 0) {
        snprintf(why, whylen, "CT submission: chain[0] is not a precertificate (no poison)");
        return -1;
    }
    struct ct_submission *sub = calloc(1, EV_OFFSET + event_get_struct_event_size());
    if (!sub) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    sub->s = s;
    sub->base = base;
    sub->cb = cb;
    sub->arg = arg;
    sub->render = render;
    sub->render_arg = render_arg;
    sub->ev = (struct event *)((char *)sub + EV_OFFSET);
    sub->chain = X509_chain_up_ref(chain);
    if (!sub->chain || event_assign(sub->ev, base, -1, 0, deliver, sub) != 0) {
        snprintf(why, whylen, "CT submission: out of memory");
        ct_submission_free(sub);
        return -1;
    }
    if (s->ops->submit(s->impl, sub, why, whylen) != 0) {
        ct_submission_free(sub);
        return -1;
    }
    /* The backend answers through an event on base, so sub is still ours here. */
    if (early_sct && sub->early_sct) {
        *early_sct = sub->early_sct;
        *early_len = sub->early_sct_len;
        sub->early_sct = NULL;
    }
    return 0;
}
