/*
 * ca/api_signing.c: POST /api/v2/signingCert and /api/v1/signingCert.
 *
 * Order of checks as Fulcio (fulcio-compat.md Appendix B): request syntax; (v1: a key or CSR
 * must be present); token shape, issuer, key set, signature, claims, principal; then the client
 * key: CSR (parse, policy, self-signature, algorithm) or public key (parse, policy, proof of
 * possession); allowed (key, hash); issue; answer.
 *
 * Two steps are asynchronous: fetching the issuer's keys (when they are not cached, the
 * request's context waits for the JWKS cache's callback on this worker's event_base), and, with
 * Certificate Transparency on, the log submission (fulcio-compat.md §5): precertificate ->
 * ct_submit_precert -> on_sct (on this worker, with the SCT already verified against the
 * precertificate) -> final certificate (its TBS correspondence checked before signing) ->
 * signedCertificateEmbeddedSct (v2) / 201 PEM chain (v1). A log failure answers 500 "Error
 * entering certificate in CTL" and no certificate exists (the precertificate is poisoned).
 * Every certificate's audit record is durable before the answer (ca/audit_log.h): with the
 * embedded log attached to the audit log (svc->audit_in_ct) it is stored in the transaction that
 * logs the precertificate (render_audit, ct_submit_precert_audit), so one fsync covers both;
 * with a log that answers early otherwise, it is written while the log commits (record_early);
 * else after the final certificate (deliver).
 * Everything else runs inline on the worker thread.
 *
 * Work sharing (ca/http_server.h): a request read by a worker that has other events ready is
 * handed, once its token is parsed, to an idle worker if there is one (hand_over); its work and
 * its asynchronous steps then run there (c->base), and its answer, with what the request log
 * must know, goes back to the worker that owns the connection (c->home, struct home_answer).
 */
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca/api.h"
#include "ca/client_key.h"
#include "ca/csr.h"
#include "ca/http_server.h"
#include "ca/issue.h"
#include "ca/rate_limit.h"
#include "ca/request_log.h"
#include "ca/service.h"
#include "ca/signing_request.h"
#include "common/json_text.h"
#include "common/log.h"
#include "common/metrics.h"
#include "oidc/claim_policy.h"
#include "oidc/jwks_cache.h"
#include "oidc/principal.h"
#include "oidc/token.h"

/* How many times a request may wait for a key-set fetch before it must be answered. */
#define MAX_KEY_WAITS 2

/* Fulcio's message for any CT failure (fulcio-compat.md §1.9 #11). */
#define MSG_CT_LOG "Error entering certificate in CTL"

struct sign_ctx {
    struct evhttp_request *req;
    struct event_base *base;
    service *svc;
    int version;
    int waits;
    signing_request body;
    char *token;          /* the token used (owned) */
    oidc_token tok;
    const issuer_config *issuer;
    principal p;          /* set once the claims are read (owned) */
    X509 *precert;        /* CT: the precertificate while the log has it (owned) */
    time_t issued_at;     /* CT: notBefore of the precertificate and the final certificate */
    service_snapshot *snap; /* config and signer of this request, from start to end (owned) */
    double ct_start;      /* CT: when the precertificate was handed to the log */
    const unsigned char *sct; /* CT: the SCT while on_sct runs (for the audit record) */
    size_t sct_len;
    /* Embedded CT with an audit log: the record is made durable while the log commits (the
     * embedded log signs the SCT before its commit), instead of after it. */
    enum { AUDIT_EARLY_NONE, AUDIT_EARLY_PENDING, AUDIT_EARLY_DURABLE, AUDIT_EARLY_FAILED }
        audit_early;
    unsigned char *early_sct; /* the SCT in that record (owned) */
    size_t early_sct_len;
    struct delivery *held;    /* an answer (or an error) waiting for that record (owned) */
    int answered;             /* an error went out while the record was pending */
    /* Announced to the CT log and the audit log (adaptive group commit), until withdrawn. */
    int expects_log, expects_audit;
    char request_id[136]; /* request_log_id's, copied: the request log is the home worker's */
    /* Handed to another worker (hand_over): the base that owns the connection, and the answer
     * made ready for it there; NULL when the request runs where it was read. */
    struct event_base *home;
    struct home_answer *ans;
    struct event *start_ev; /* on base: runs the request there */
    const char *reason;     /* set_reason's, until the answer takes it home */
    char retry_after[24];
};

/* An answer made on another worker than the one that owns the connection: everything that
 * touches the request is done on the owner's thread (on_home_answer). */
struct home_answer {
    struct evhttp_request *req;
    struct event *ev;      /* on the home base */
    int error;             /* 1: api_reply_error(code, msg, why); 0: http_reply(status, ...) */
    enum grpc_code code;
    char *msg, *why;
    int status;
    const char *type;      /* a string literal */
    char *body;
    size_t len;
    const char *reason;    /* for the request log (a string literal), or NULL */
    char retry_after[24];  /* a Retry-After header's value, or "" */
};

/* An answer waiting for its audit record to be durable, or (error set) an error answer waiting
 * only for the early record's callback to have run. */
struct delivery {
    struct sign_ctx *c;
    int status;
    const char *type;
    char *body;
    size_t len;
    int error;
    enum grpc_code code;
    char *msg, *why;
};

/* Metrics of the signing endpoints (common/metrics.h). */
static metric_series *g_new_certs, *g_ct_errors;
static metric_series *g_ct_seconds;
static pthread_once_t g_metrics_once = PTHREAD_ONCE_INIT;

static void init_metrics(void)
{
    g_new_certs = metric_get0(
        metrics_counter("fulcio_new_certs", "The total number of certificates generated", NULL));
    g_ct_seconds = metric_get0(metrics_histogram(
        "fulcrum_ct_submit_seconds",
        "Time from handing a precertificate to the CT log to its verified SCT", NULL, NULL, 0));
    g_ct_errors = metric_get0(metrics_counter(
        "fulcrum_ct_submit_errors_total", "Precertificates the CT log did not accept", NULL));
}

/* Withdraws the announcements (ct_log_expect, audit_log_expect) that are still out. */
static void expect_log_done(struct sign_ctx *c)
{
    if (c->expects_log) {
        c->expects_log = 0;
        ct_submitter_expect_done(c->svc->ct);
    }
}

static void expect_audit_done(struct sign_ctx *c)
{
    if (c->expects_audit) {
        c->expects_audit = 0;
        audit_log_expect_done(c->svc->audit);
    }
}

static void ctx_free(struct sign_ctx *c)
{
    expect_log_done(c);
    expect_audit_done(c);
    signing_request_clear(&c->body);
    if (c->token) {
        OPENSSL_cleanse(c->token, strlen(c->token));
        free(c->token);
    }
    oidc_token_clear(&c->tok);
    principal_clear(&c->p);
    X509_free(c->precert);
    service_snapshot_release(c->snap);
    free(c->early_sct);
    if (c->ans) { /* never answered through it (cannot happen: every path answers) */
        event_free(c->ans->ev);
        free(c->ans);
    }
    if (c->held) {
        free(c->held->body);
        free(c->held->msg);
        free(c->held->why);
        free(c->held);
    }
    free(c);
}

/* Runs on the home worker: what the request log must know, then the answer. */
static void on_home_answer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct home_answer *a = arg;
    if (a->reason)
        request_log_set_reason(a->req, a->reason);
    if (a->retry_after[0])
        evhttp_add_header(evhttp_request_get_output_headers(a->req), "Retry-After",
                          a->retry_after);
    if (a->error)
        api_reply_error(a->req, a->code, a->msg ? a->msg : "out of memory", a->why);
    else
        http_reply(a->req, a->status, a->type, a->body, a->len);
    event_free(a->ev);
    free(a->msg);
    free(a->why);
    free(a->body);
    free(a);
}

/* Sends c's one answer home (hand_over made c->ans). An error without a message (out of memory
 * for a copy) goes out as a 500 "out of memory" (on_home_answer). */
static void answer_home(struct sign_ctx *c, struct home_answer *fill)
{
    struct home_answer *a = c->ans;
    c->ans = NULL;
    fill->req = a->req;
    fill->ev = a->ev;
    fill->reason = c->reason;
    snprintf(fill->retry_after, sizeof fill->retry_after, "%s", c->retry_after);
    *a = *fill;
    event_active(a->ev, EV_TIMEOUT, 0);
}

static void reply_error(struct sign_ctx *c, enum grpc_code code, const char *msg, const char *why)
{
    if (!c->home) {
        api_reply_error(c->req, code, msg, why);
        return;
    }
    struct home_answer f = {.error = 1, .code = code, .msg = msg ? strdup(msg) : NULL,
                            .why = why ? strdup(why) : NULL};
    answer_home(c, &f);
}

static void reply_body(struct sign_ctx *c, int status, const char *type, const char *body,
                       size_t len)
{
    if (!c->home) {
        http_reply(c->req, status, type, body, len);
        return;
    }
    struct home_answer f = {.status = status, .type = type, .body = malloc(len ? len : 1),
                            .len = len};
    if (f.body)
        memcpy(f.body, body, len);
    else
        f = (struct home_answer){.error = 1, .code = GRPC_INTERNAL}; /* "out of memory" */
    answer_home(c, &f);
}

/* Why the request is refused, for the request log (the first one set stays). */
static void set_reason(struct sign_ctx *c, const char *reason)
{
    if (!c->home)
        request_log_set_reason(c->req, reason);
    else if (!c->reason)
        c->reason = reason;
}

static void fail(struct sign_ctx *c, enum grpc_code code, const char *msg, const char *why)
{
    expect_log_done(c);
    expect_audit_done(c);
    if (c->audit_early == AUDIT_EARLY_PENDING) {
        /* on_audit_early still holds c: it answers with this error when it runs. */
        struct delivery *d = c->held ? NULL : calloc(1, sizeof *d);
        if (d) {
            *d = (struct delivery){.c = c, .error = 1, .code = code,
                                   .msg = msg ? strdup(msg) : NULL,
                                   .why = why ? strdup(why) : NULL};
            c->held = d;
            return;
        }
        reply_error(c, code, msg, why); /* out of memory: answer now */
        c->answered = 1;
        return;
    }
    reply_error(c, code, msg, why);
    ctx_free(c);
}

/* The token: the body's credentials first; otherwise the Authorization header with the first
 * "Bearer " removed (what grpc-gateway forwards). v1 reads only the header. */
static char *pick_token(struct sign_ctx *c)
{
    if (c->version == 2 && c->body.token && *c->body.token)
        return strdup(c->body.token);
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(c->req),
                                          "Authorization");
    if (!auth)
        return NULL;
    const char *bearer = strstr(auth, "Bearer ");
    size_t alen = strlen(auth);
    char *out = malloc(alen + 1);
    if (!out)
        return NULL;
    if (bearer) {
        size_t pre = (size_t)(bearer - auth);
        memcpy(out, auth, pre);
        strcpy(out + pre, bearer + 7);
    } else {
        memcpy(out, auth, alen + 1);
    }
    if (!*out) {
        free(out);
        return NULL;
    }
    return out;
}

static void continue_with_keys(struct sign_ctx *c, oidc_jwk_set *keys);
static void lookup_keys(struct sign_ctx *c);
static void issue_with_ct(struct sign_ctx *c, EVP_PKEY *key);

static void on_keys_ready(void *arg)
{
    lookup_keys(arg);
}

/* The issuer's keys. A kid the issuer does not publish is the token's fault (400, Fulcio's
 * identity-token message); keys that cannot be had at all (issuer unreachable, TLS failure,
 * refused redirect, oversize answer, cached keys past max-stale) are this server's side: 500
 * code 13 with a message naming the issuer and the cause (the issuer URL is public), logged at
 * error by api_reply_error. */
static void lookup_keys(struct sign_ctx *c)
{
    char why[768] = "";
    oidc_jwk_set *keys = NULL;
    int may_wait = c->waits < MAX_KEY_WAITS;
    enum jwks_result r =
        jwks_cache_get(c->svc->jwks, c->tok.iss, c->issuer->ca_cert_pem, c->tok.kid, c->base,
                       may_wait ? on_keys_ready : NULL, c, &keys, why, sizeof why);
    switch (r) {
    case JWKS_READY:
        continue_with_keys(c, keys);
        jwk_set_release(keys);
        return;
    case JWKS_PENDING:
        c->waits++;
        return; /* on_keys_ready runs on this worker later */
    case JWKS_UNAVAILABLE:
        if (!*why)
            snprintf(why, sizeof why, "could not fetch the keys of issuer %.300s", c->tok.iss);
        fail(c, GRPC_INTERNAL, why, NULL);
        return;
    default:
        fail(c, GRPC_INVALID_ARGUMENT, MSG_IDENTITY_TOKEN,
             *why ? why : "the issuer's keys do not hold the token's key");
        return;
    }
}

/* The certificate goes out: counted, and the context freed. */
static void send_certificate(struct sign_ctx *c, int status, const char *type, const char *body,
                             size_t len)
{
    reply_body(c, status, type, body, len);
    metric_inc(g_new_certs);
    ctx_free(c);
}


static void fail_audit(struct sign_ctx *c);

static void on_audited(void *arg, int ok)
{
    struct delivery *d = arg;
    if (ok)
        send_certificate(d->c, d->status, d->type, d->body, d->len);
    else
        fail_audit(d->c);
    free(d->body);
    free(d);
}

static void fail_audit(struct sign_ctx *c)
{
    set_reason(c, "audit_log");
    fail(c, GRPC_INTERNAL, MSG_CA_BACKEND, "the certificate could not be recorded in the audit log");
}

/* The record made while the log committed covers this certificate: same precertificate, and the
 * SCT in the record is the one in the certificate. */
static int early_record_matches(const struct sign_ctx *c)
{
    return c->early_sct && c->sct && c->sct_len == c->early_sct_len &&
           memcmp(c->sct, c->early_sct, c->sct_len) == 0;
}

/* Answers with `body` (taken over) once the certificate's audit record is durable
 * (ca/audit_log.h); a certificate that cannot be recorded is not handed out. Consumes c. */
static void deliver(struct sign_ctx *c, X509 *cert, int status, const char *type, char *body,
                    size_t len)
{
    audit_log *audit = c->svc->audit;
    if (c->audit_early != AUDIT_EARLY_NONE) {
        if (!early_record_matches(c)) {
            /* Cannot happen with a new precertificate; never hand out an unrecorded one. */
            log_error("audit", "the embedded log answered with another SCT than the one recorded");
            free(body);
            fail_audit(c);
            return;
        }
        if (c->audit_early == AUDIT_EARLY_DURABLE) {
            send_certificate(c, status, type, body, len);
            free(body);
            return;
        }
        if (c->audit_early == AUDIT_EARLY_FAILED) {
            free(body);
            fail_audit(c);
            return;
        }
        struct delivery *d = c->held ? NULL : calloc(1, sizeof *d);
        if (!d) {
            free(body);
            fail_audit(c);
            return;
        }
        *d = (struct delivery){.c = c, .status = status, .type = type, .body = body, .len = len};
        c->held = d; /* on_audit_early answers */
        return;
    }
    if (!audit) {
        send_certificate(c, status, type, body, len);
        free(body);
        return;
    }
    char why[256] = "";
    json_t *sub = json_object_get(c->tok.claims, "sub");
    audit_entry e = {
        .cert = cert, .p = &c->p, .oidc_issuer = c->tok.iss, .subject = json_string_value(sub),
        .sct = c->sct, .sct_len = c->sct_len, .request_id = c->request_id,
    };
    char *line = audit_record_json(&e);
    struct delivery *d = line ? calloc(1, sizeof *d) : NULL;
    if (d) {
        *d = (struct delivery){.c = c, .status = status, .type = type, .body = body, .len = len};
        if (audit_log_append(audit, line, c->base, on_audited, d, why, sizeof why) == 0) {
            free(line);
            expect_audit_done(c); /* on_audited runs later, on this thread */
            return; /* on_audited answers */
        }
    }
    log_error("audit", "cannot queue the audit record of a certificate: %s",
              line ? why : "cannot render the record");
    free(line);
    free(d);
    free(body);
    fail_audit(c);
}

/* The early record's callback (see issue_with_ct): answers what on_sct left held, or leaves the
 * outcome for on_sct when it has not run yet. */
static void on_audit_early(void *arg, int ok)
{
    struct sign_ctx *c = arg;
    c->audit_early = ok ? AUDIT_EARLY_DURABLE : AUDIT_EARLY_FAILED;
    if (c->answered) {
        ctx_free(c);
        return;
    }
    struct delivery *d = c->held;
    if (!d)
        return; /* on_sct has not run yet: it sees the outcome */
    c->held = NULL;
    if (d->error)
        fail(c, d->code, d->msg, d->why);
    else if (ok)
        send_certificate(c, d->status, d->type, d->body, d->len);
    else
        fail_audit(c);
    free(d->body);
    free(d->msg);
    free(d->why);
    free(d);
}

/* v2 answer: signedCertificateEmbeddedSct {chain} when the SCT is in the certificate,
 * signedCertificateDetachedSct {chain, signedCertificateTimestamp: ""} when CT is off. Written
 * directly rather than through a jansson tree: the shape is fixed and only the PEMs vary. */
static void answer_v2(struct sign_ctx *c, X509 *cert, int embedded)
{
    const char *head =
        embedded ? "{\"signedCertificateEmbeddedSct\":{\"chain\":{\"certificates\":["
                 : "{\"signedCertificateDetachedSct\":{\"chain\":{\"certificates\":[";
    const char *tail = embedded ? "]}}}" : "]},\"signedCertificateTimestamp\":\"\"}}";
    size_t head_len = strlen(head), tail_len = strlen(tail);
    char *leaf = service_cert_pem(cert);
    if (!leaf) {
        fail(c, GRPC_INTERNAL, MSG_MARSHAL_CERT, NULL);
        return;
    }
    size_t total = head_len + json_text_quoted_len(leaf) + tail_len + 1;
    for (size_t i = 0; i < c->snap->chain_len; i++)
        total += 1 + json_text_quoted_len(c->snap->chain_pem[i]);
    char *text = malloc(total);
    if (!text) {
        free(leaf);
        fail(c, GRPC_INTERNAL, MSG_MARSHAL_CERT, NULL);
        return;
    }
    char *p = text;
    memcpy(p, head, head_len);
    p += head_len;
    p = json_text_put_quoted(p, leaf);
    for (size_t i = 0; i < c->snap->chain_len; i++) {
        *p++ = ',';
        p = json_text_put_quoted(p, c->snap->chain_pem[i]);
    }
    memcpy(p, tail, tail_len);
    p += tail_len;
    *p = '\0';
    free(leaf);
    deliver(c, cert, 200, "application/json", text, (size_t)(p - text));
}

static void answer_v1(struct sign_ctx *c, X509 *cert)
{
    char *leaf = service_cert_pem(cert);
    if (!leaf) {
        fail(c, GRPC_INTERNAL, MSG_MARSHAL_CERT, NULL);
        return;
    }
    size_t total = strlen(leaf) + 1;
    for (size_t i = 0; i < c->snap->chain_len; i++)
        total += strlen(c->snap->chain_pem[i]) + 1;
    char *body = malloc(total);
    if (!body) {
        free(leaf);
        fail(c, GRPC_INTERNAL, MSG_MARSHAL_CERT, NULL);
        return;
    }
    size_t off = (size_t)sprintf(body, "%s", leaf);
    for (size_t i = 0; i < c->snap->chain_len; i++)
        off += (size_t)sprintf(body + off, "\n%s", c->snap->chain_pem[i]);
    free(leaf);
    deliver(c, cert, 201, "application/pem-certificate-chain", body, off);
}

/* From the client's key material to a signed certificate; consumes c. */
static void issue_for(struct sign_ctx *c, const principal *p)
{
    char why[512] = "";
    EVP_PKEY *key = NULL;
    int md = NID_undef;

    if (c->body.csr_len > 0) {
        switch (csr_parse_and_verify(c->body.csr, c->body.csr_len, &key, &md, why, sizeof why)) {
        case CSR_OK: break;
        case CSR_UNPARSEABLE: fail(c, GRPC_INVALID_ARGUMENT, MSG_CSR_UNPARSEABLE, why); return;
        case CSR_INSECURE_KEY: fail(c, GRPC_INVALID_ARGUMENT, MSG_KEY_INSECURE, why); return;
        case CSR_BAD_SIGNATURE: fail(c, GRPC_INVALID_ARGUMENT, MSG_SIGNATURE_INVALID, why); return;
        default: fail(c, GRPC_INVALID_ARGUMENT, why, NULL); return;
        }
    } else {
        if (!c->body.public_key || c->body.public_key_len == 0) {
            fail(c, GRPC_INVALID_ARGUMENT, MSG_KEY_UNPARSEABLE,
                 "the request has neither publicKeyRequest.publicKey.content nor "
                 "certificateSigningRequest");
            return;
        }
        key = client_key_parse(c->body.public_key, c->body.public_key_len, why, sizeof why);
        if (!key) {
            fail(c, GRPC_INVALID_ARGUMENT, MSG_KEY_UNPARSEABLE, why);
            return;
        }
        if (client_key_policy_check(key, why, sizeof why) != 0) {
            EVP_PKEY_free(key);
            fail(c, GRPC_INVALID_ARGUMENT, MSG_KEY_INSECURE, why);
            return;
        }
        if (!c->body.proof || c->body.proof_len == 0) {
            EVP_PKEY_free(key);
            fail(c, GRPC_INVALID_ARGUMENT, MSG_SIGNATURE_INVALID,
                 "the request has no proofOfPossession");
            return;
        }
        if (client_key_verify_pop(key, (const unsigned char *)p->name, strlen(p->name),
                                  c->body.proof, c->body.proof_len, why, sizeof why) != 0) {
            EVP_PKEY_free(key);
            char detail[700];
            snprintf(detail, sizeof detail, "proof of possession over \"%s\" does not verify: %s",
                     p->name, why);
            fail(c, GRPC_INVALID_ARGUMENT, MSG_SIGNATURE_INVALID, detail);
            return;
        }
        md = client_key_default_md(key);
    }
    if (client_key_hash_allowed(key, md, why, sizeof why) != 0) {
        EVP_PKEY_free(key);
        fail(c, GRPC_INVALID_ARGUMENT, why, NULL);
        return;
    }

    if (c->svc->ct) {
        issue_with_ct(c, key);
        EVP_PKEY_free(key);
        return;
    }
    X509 *cert = NULL;
    enum issue_result ir =
        ca_issue_certificate_built(c->snap->signer, p, key, time(NULL), &cert, why, sizeof why);
    EVP_PKEY_free(key);
    if (ir == ISSUE_VALIDATION_ERROR) {
        fail(c, GRPC_INVALID_ARGUMENT, why, NULL);
        return;
    }
    if (ir != ISSUE_OK) {
        log_error("ca", "issuance failed: %s", why);
        fail(c, GRPC_INTERNAL, MSG_CA_BACKEND,
             signer_healthy(c->snap->signer) ? NULL : "HSM unavailable");
        return;
    }
    if (c->version == 2)
        answer_v2(c, cert, 0);
    else
        answer_v1(c, cert);
    X509_free(cert);
}

/* CT, last step (on this worker): the log's SCT, already verified against the precertificate by
 * the submitter (OpenSSL's SCT_validate) -> the final certificate, whose TBS without the SCT list
 * is checked to be the precertificate's TBS without the poison, i.e. the very bytes the SCT
 * signs (so it verifies for the final certificate as clients check it) -> the answer. */
static void on_sct_work(struct sign_ctx *c, const unsigned char *sct, size_t sct_len,
                        const char *err);

/* The worker counts as busy while it makes the final certificate (http_worker_claim_idle). */
static void on_sct(void *arg, const unsigned char *sct, size_t sct_len, const char *err)
{
    http_worker_section_begin();
    on_sct_work(arg, sct, sct_len, err);
    http_worker_section_end();
}

static void on_sct_work(struct sign_ctx *c, const unsigned char *sct, size_t sct_len,
                        const char *err)
{
    char why[768] = "";
    metric_observe(g_ct_seconds, metrics_now() - c->ct_start);
    atomic_store(&c->svc->ct_failing, sct == NULL);
    if (!sct) {
        metric_inc(g_ct_errors);
        log_error("ct", "CT log submission failed: %s", err ? err : "no reason given");
        fail(c, GRPC_INTERNAL, MSG_CT_LOG, NULL);
        return;
    }
    X509 *cert = NULL;
    /* The precertificate's object becomes the final certificate (no copy, no parse). */
    enum issue_result ir = ca_issue_final_certificate_from(c->snap->signer, &c->p, &c->precert,
                                                           c->issued_at, sct, sct_len, &cert,
                                                           why, sizeof why);
    if (ir != ISSUE_OK) {
        log_error("ca", "final certificate failed: %s", why);
        fail(c, GRPC_INTERNAL, MSG_CA_BACKEND, NULL);
        return;
    }
    c->sct = sct; /* valid until this callback returns: for the audit record */
    c->sct_len = sct_len;
    if (c->version == 2)
        answer_v2(c, cert, 1);
    else
        answer_v1(c, cert);
    X509_free(cert);
}

/* The embedded log has signed the SCT before committing: the audit record (the precertificate's
 * serial, names, key and validity are the final certificate's; the SCT is the one it will carry)
 * is made durable while the log commits, and the answer waits for both (on_sct, on_audit_early).
 * If the record cannot be queued, the usual record after the final certificate is made instead.
 * A record whose certificate then fails (the log's commit, the final signature) stands for a
 * logged precertificate, which CT treats as issued already. */
static void record_early(struct sign_ctx *c)
{
    char why[256] = "";
    json_t *sub = json_object_get(c->tok.claims, "sub");
    audit_entry e = {
        .cert = c->precert, .p = &c->p, .oidc_issuer = c->tok.iss,
        .subject = json_string_value(sub), .sct = c->early_sct, .sct_len = c->early_sct_len,
        .request_id = c->request_id,
    };
    char *line = audit_record_json(&e);
    if (line && audit_log_append(c->svc->audit, line, c->base, on_audit_early, c, why,
                                 sizeof why) == 0) {
        c->audit_early = AUDIT_EARLY_PENDING;
        expect_audit_done(c);
    } else
        log_warn("audit", "cannot queue the audit record early (%s): it follows the certificate",
                 line ? why : "cannot render the record");
    free(line);
}

/* The audit record made from the SCT the embedded log has just signed, stored with the CT entry
 * (ct_submit_precert_audit): the precertificate's serial, names, key and validity are the final
 * certificate's, and the SCT is the one it will carry. */
static char *render_audit(void *arg, const unsigned char *sct, size_t sct_len, size_t *len)
{
    struct sign_ctx *c = arg;
    json_t *sub = json_object_get(c->tok.claims, "sub");
    audit_entry e = {
        .cert = c->precert, .p = &c->p, .oidc_issuer = c->tok.iss,
        .subject = json_string_value(sub), .sct = sct, .sct_len = sct_len,
        .request_id = c->request_id,
    };
    char *line = audit_record_json(&e);
    if (line)
        *len = strlen(line);
    return line;
}

/* CT, first steps: precertificate, then hand it to the log; consumes c (now or in on_sct). */
static void issue_with_ct(struct sign_ctx *c, EVP_PKEY *key)
{
    char why[768] = "";
    c->issued_at = time(NULL);
    enum issue_result ir = ca_issue_precertificate_built(c->snap->signer, &c->p, key, c->issued_at,
                                                   &c->precert, why, sizeof why);
    if (ir == ISSUE_VALIDATION_ERROR) {
        fail(c, GRPC_INVALID_ARGUMENT, why, NULL);
        return;
    }
    if (ir != ISSUE_OK) {
        log_error("ca", "precertificate failed: %s", why);
        fail(c, GRPC_INTERNAL, MSG_CA_BACKEND, NULL);
        return;
    }
    STACK_OF(X509) *chain = sk_X509_new_null();
    int ok = chain && sk_X509_push(chain, c->precert);
    for (int i = 0; ok && i < sk_X509_num(c->snap->signer->chain); i++)
        ok = sk_X509_push(chain, sk_X509_value(c->snap->signer->chain, i)) > 0;
    /* The stack borrows the certificates; the submitter takes its own references. */
    c->ct_start = metrics_now();
    unsigned char **early = c->svc->audit ? &c->early_sct : NULL;
    int carried = c->svc->audit && c->svc->audit_in_ct;
    int rc = !ok ? (snprintf(why, sizeof why, "out of memory"), -1)
             : carried ? ct_submit_precert_audit(c->svc->ct, chain, c->base, on_sct, c,
                                                 render_audit, c, early, &c->early_sct_len, why,
                                                 sizeof why)
                       : ct_submit_precert_early(c->svc->ct, chain, c->base, on_sct, c, early,
                                                 &c->early_sct_len, why, sizeof why);
    sk_X509_free(chain);
    expect_log_done(c); /* submitted, or it never will be */
    if (rc != 0) {
        metric_inc(g_ct_errors);
        atomic_store(&c->svc->ct_failing, 1);
        log_error("ct", "CT log submission failed: %s", why);
        fail(c, GRPC_INTERNAL, MSG_CT_LOG, NULL);
        return;
    }
    if (carried)
        c->audit_early = AUDIT_EARLY_DURABLE; /* with the entry: on_sct's SCT says so */
    else if (c->early_sct)
        record_early(c);
}

/* The rate limits (ca/rate_limit.h), charged only for verified tokens so that nobody can spend
 * another identity's or issuer's tokens: per identity (issuer + SAN) first, then per issuer.
 * Refused: 429, gRPC code 8, with Retry-After. Returns 1 when the request may go on. */
static int within_rate_limits(struct sign_ctx *c)
{
    service *svc = c->svc;
    if (!svc->rl_identity && !svc->rl_issuer)
        return 1;
    double now = metrics_now();
    long retry = 0;
    const char *which = NULL, *limit = NULL, *reason = NULL;
    char key[1400];
    snprintf(key, sizeof key, "%.600s\n%.780s", c->tok.iss, c->p.san_value);
    if (!rate_limiter_take(svc->rl_identity, key, now, &retry)) {
        which = "identity";
        limit = svc->rl_identity_text;
        reason = "rate_limited_identity";
    } else if (!rate_limiter_take(svc->rl_issuer, c->tok.iss, now, &retry)) {
        which = "issuer";
        limit = svc->rl_issuer_text;
        reason = "rate_limited_issuer";
    } else {
        return 1;
    }
    char detail[1200], secs[24];
    if (strcmp(which, "identity") == 0)
        snprintf(detail, sizeof detail,
                 "identity \"%.400s\" of issuer %.300s is over its limit of %s "
                 "(--rate-limit-identity); retry in %ld s",
                 c->p.san_value, c->tok.iss, limit, retry);
    else
        snprintf(detail, sizeof detail,
                 "issuer %.300s is over its limit of %s (--rate-limit-issuer); retry in %ld s",
                 c->tok.iss, limit, retry);
    snprintf(secs, sizeof secs, "%ld", retry);
    if (c->home)
        snprintf(c->retry_after, sizeof c->retry_after, "%s", secs);
    else
        evhttp_add_header(evhttp_request_get_output_headers(c->req), "Retry-After", secs);
    set_reason(c, reason);
    fail(c, GRPC_RESOURCE_EXHAUSTED, MSG_RATE_LIMITED, detail);
    return 0;
}

static void continue_with_keys(struct sign_ctx *c, oidc_jwk_set *keys)
{
    char why[512] = "";
    const oidc_jwk *jwk = jwk_set_find(keys, c->tok.kid);
    if (!jwk) {
        snprintf(why, sizeof why, "key id \"%s\" is not published by %s",
                 c->tok.kid ? c->tok.kid : "", c->tok.iss);
        fail(c, GRPC_INVALID_ARGUMENT, MSG_IDENTITY_TOKEN, why);
        return;
    }
    if (oidc_token_verify_signature(&c->tok, jwk, why, sizeof why) != 0 ||
        oidc_token_check_claims(&c->tok, c->issuer, time(NULL), why, sizeof why) != 0) {
        fail(c, GRPC_INVALID_ARGUMENT, MSG_IDENTITY_TOKEN, why);
        return;
    }
    if (claim_policy_check(c->issuer, c->tok.claims, why, sizeof why) != 0) {
        fail(c, GRPC_PERMISSION_DENIED, MSG_CLAIM_POLICY, why);
        return;
    }
    /* The context owns the principal: with CT the final certificate is made after the log
     * answers. */
    switch (principal_from_claims(c->snap->cfg, c->issuer, c->tok.claims, &c->p, why,
                                  sizeof why)) {
    case PRINCIPAL_OK: break;
    case PRINCIPAL_VALIDATION_ERROR:
        fail(c, GRPC_INVALID_ARGUMENT, why, NULL);
        return;
    default:
        fail(c, GRPC_INVALID_ARGUMENT, MSG_IDENTITY_TOKEN, why);
        return;
    }
    if (!within_rate_limits(c))
        return;
    issue_for(c, &c->p);
}

/* On the worker c was handed to: the request's work from the key lookup on; that worker
 * counted as busy from its claim until here. */
static void on_start(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct sign_ctx *c = arg;
    event_free(c->start_ev);
    c->start_ev = NULL;
    lookup_keys(c);
    http_worker_section_end();
}

/* Moves c's work to the claimed worker `to` (http_worker_claim_idle); its answer comes back
 * here. 0, or -1 (out of memory: the claim is released and c stays here). */
static int hand_over(struct sign_ctx *c, struct event_base *to)
{
    struct home_answer *a = calloc(1, sizeof *a);
    if (a)
        a->ev = event_new(c->base, -1, 0, on_home_answer, a);
    if (a && a->ev) /* top priority, as the CT log's answers (ct/log_writer.c, pending_new) */
        event_priority_set(a->ev, 0);
    c->start_ev = a && a->ev ? event_new(to, -1, 0, on_start, c) : NULL;
    if (!c->start_ev) {
        if (a && a->ev)
            event_free(a->ev);
        free(a);
        http_worker_release(to);
        return -1;
    }
    event_priority_set(c->start_ev, 0);
    a->req = c->req;
    c->ans = a;
    c->home = c->base;
    c->base = to;
    event_active(c->start_ev, EV_TIMEOUT, 0);
    return 0;
}

void api_signing_cert(struct evhttp_request *req, struct event_base *base, service *svc,
                      int version)
{
    struct sign_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        api_reply_error(req, GRPC_INTERNAL, "out of memory", NULL);
        return;
    }
    c->req = req;
    c->base = base;
    c->svc = svc;
    snprintf(c->request_id, sizeof c->request_id, "%s", request_log_id(req));
    c->snap = service_acquire(svc);
    c->version = version;
    pthread_once(&g_metrics_once, init_metrics);
    /* Announced at once, so that the logs' group commits wait for this request while it is
     * being checked and signed (ct_log_expect): withdrawn when it reaches them or fails. */
    if (svc->ct) {
        ct_submitter_expect(svc->ct);
        c->expects_log = 1;
    }
    if (svc->audit && !svc->audit_in_ct) {
        audit_log_expect(svc->audit);
        c->expects_audit = 1;
    }

    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    char why[512] = "";
    int rc = version == 2 ? signing_request_parse_v2(body, len, &c->body, why, sizeof why)
                          : signing_request_parse_v1(body, len, &c->body, why, sizeof why);
    if (rc != 0) {
        fail(c, GRPC_INVALID_ARGUMENT, "invalid request body", why);
        return;
    }
    if (version == 1 && !c->body.csr_len && !c->body.public_key_len) {
        fail(c, GRPC_INVALID_ARGUMENT, MSG_KEY_UNPARSEABLE,
             "the request has neither publicKey nor certificateSigningRequest");
        return;
    }
    c->token = pick_token(c);
    if (!c->token) {
        fail(c, GRPC_INVALID_ARGUMENT, MSG_IDENTITY_TOKEN,
             version == 2 ? "no token: send credentials.oidcIdentityToken or an "
                            "Authorization: Bearer header"
                          : "no token: send an Authorization: Bearer header");
        return;
    }
    if (oidc_token_parse(c->token, strlen(c->token), &c->tok, why, sizeof why) != 0) {
        fail(c, GRPC_INVALID_ARGUMENT, MSG_IDENTITY_TOKEN, why);
        return;
    }
    request_log_set_issuer(req, c->tok.iss);
    c->issuer = config_find_issuer(c->snap->cfg, c->tok.iss);
    if (!c->issuer || c->issuer->type == ISSUER_TYPE_UNKNOWN) {
        char detail[600];
        snprintf(detail, sizeof detail, "issuer \"%.400s\" is not configured on this server",
                 c->tok.iss);
        fail(c, GRPC_INVALID_ARGUMENT, MSG_IDENTITY_TOKEN, detail);
        return;
    }
    struct event_base *idle = http_worker_claim_idle();
    if (idle && hand_over(c, idle) == 0)
        return;
    lookup_keys(c);
}
