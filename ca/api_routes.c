#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/api.h"
#include "ca/http_server.h"
#include "ca/request_log.h"
#include "common/json_text.h"
#include "common/log.h"

static int grpc_http_status(enum grpc_code code)
{
    switch (code) {
    case GRPC_INVALID_ARGUMENT: return 400;
    case GRPC_NOT_FOUND: return 404;
    case GRPC_PERMISSION_DENIED: return 403;
    case GRPC_RESOURCE_EXHAUSTED: return 429;
    case GRPC_UNIMPLEMENTED: return 501;
    default: return 500;
    }
}

/* The refusal reason of the request log and fulcrum_requests_refused_total (ca/request_log.h). */
static const char *reason_of(enum grpc_code code, const char *message)
{
    static const struct {
        const char *prefix, *reason;
    } map[] = {
        {MSG_IDENTITY_TOKEN, "identity_token"},
        {MSG_CLAIM_POLICY, "claim_policy"},
        {MSG_CSR_UNPARSEABLE, "csr_unparseable"},
        {MSG_KEY_UNPARSEABLE, "key_unparseable"},
        {MSG_KEY_INSECURE, "key_insecure"},
        {MSG_SIGNATURE_INVALID, "signature_invalid"},
        {MSG_CA_BACKEND, "ca_backend"},
        {MSG_MARSHAL_CERT, "marshal"},
        {"Error entering certificate in CTL", "ct_log"},
        {"invalid request body", "invalid_request"},
        {"could not fetch the keys of issuer", "jwks_unavailable"},
        {"Not Found", "not_found"},
        {"Method Not Allowed", "method_not_allowed"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strncmp(message, map[i].prefix, strlen(map[i].prefix)) == 0)
            return map[i].reason;
    return code == GRPC_INVALID_ARGUMENT ? "validation" : "internal";
}

void api_reply_error(struct evhttp_request *req, enum grpc_code code, const char *message,
                     const char *detail)
{
    request_log_set_reason(req, reason_of(code, message));
    char text[1024];
    if (detail && *detail)
        snprintf(text, sizeof text, "%s: %s", message, detail);
    else
        snprintf(text, sizeof text, "%s", message);
    json_text_utf8_scrub(text); /* a parser's message may quote the client's bytes */
    int status = grpc_http_status(code);
    const char *uri = evhttp_request_get_uri(req);
    if (status >= 500)
        log_error("api", "%s -> %d: %s", uri ? uri : "?", status, text);
    else if (code == GRPC_INVALID_ARGUMENT || code == GRPC_PERMISSION_DENIED ||
             code == GRPC_RESOURCE_EXHAUSTED)
        log_warn("api", "%s -> %d: %s", uri ? uri : "?", status, text);

    json_t *body = json_pack("{s:i,s:s,s:[]}", "code", (int)code, "message", text, "details");
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (s) {
        http_reply(req, status, "application/json", s, strlen(s));
        free(s);
    } else {
        static const char fallback[] = "{\"code\":13,\"message\":\"internal error\",\"details\":[]}";
        http_reply(req, 500, "application/json", fallback, sizeof fallback - 1);
    }
}

static void reply_text(struct evhttp_request *req, const char *type, const char *text)
{
    http_reply(req, 200, type, text, strlen(text));
}

enum route_id { R_NONE, R_SIGN_V2, R_SIGN_V1, R_TRUST_BUNDLE, R_CONFIGURATION, R_ROOT_CERT,
                R_HEALTHZ, R_READYZ };

static const struct route {
    const char *path;
    enum evhttp_cmd_type method;
    enum route_id id;
} routes[] = {
    {"/api/v2/signingCert", EVHTTP_REQ_POST, R_SIGN_V2},
    {"/api/v1/signingCert", EVHTTP_REQ_POST, R_SIGN_V1},
    {"/api/v2/trustBundle", EVHTTP_REQ_GET, R_TRUST_BUNDLE},
    {"/api/v2/configuration", EVHTTP_REQ_GET, R_CONFIGURATION},
    {"/api/v1/rootCert", EVHTTP_REQ_GET, R_ROOT_CERT},
    {"/healthz", EVHTTP_REQ_GET, R_HEALTHZ},
    {"/readyz", EVHTTP_REQ_GET, R_READYZ},
};

/* GET /readyz (ca/api.h). */
static void readyz(struct evhttp_request *req, service *svc)
{
    service_snapshot *snap = service_acquire(svc);
    char signer_state[160], ct_state[64], issuers[64];
    int ready = 1;
    if (signer_healthy(snap->signer)) {
        snprintf(signer_state, sizeof signer_state, "ok");
    } else {
        snprintf(signer_state, sizeof signer_state, "the last signature of the %s signer failed",
                 snap->signer->kind ? snap->signer->kind : "CA");
        ready = 0;
    }
    if (!svc->ct) {
        snprintf(ct_state, sizeof ct_state, "off");
    } else if (atomic_load(&svc->ct_failing)) {
        snprintf(ct_state, sizeof ct_state, "the last submission failed");
        ready = 0;
    } else {
        snprintf(ct_state, sizeof ct_state, "ok");
    }
    size_t n = snap->cfg->n_issuers + snap->cfg->n_meta;
    if (n > 0) {
        snprintf(issuers, sizeof issuers, "ok");
    } else {
        snprintf(issuers, sizeof issuers, "no issuers configured");
        ready = 0;
    }
    service_snapshot_release(snap);
    json_t *body = json_pack("{s:s,s:{s:s,s:s,s:s}}", "status", ready ? "READY" : "NOT_READY",
                             "checks", "signer", signer_state, "ct_log", ct_state, "issuers",
                             issuers);
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (!text) {
        api_reply_error(req, GRPC_INTERNAL, "out of memory", NULL);
        return;
    }
    http_reply(req, ready ? 200 : 503, "application/json", text, strlen(text));
    free(text);
}

/* GET of one of the snapshot's pre-rendered answers. */
static void reply_rendered(struct evhttp_request *req, service *svc, enum route_id id)
{
    service_snapshot *snap = service_acquire(svc);
    if (id == R_TRUST_BUNDLE)
        reply_text(req, "application/json", snap->trust_bundle_json);
    else if (id == R_CONFIGURATION)
        reply_text(req, "application/json", snap->configuration_json);
    else
        reply_text(req, "application/pem-certificate-chain", snap->root_cert_text);
    service_snapshot_release(snap);
}

void api_handle(struct evhttp_request *req, struct event_base *base, void *arg)
{
    service *svc = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !*path)
        path = "/";

    /* The embedded CT log's RFC 6962 API (ct/ct_log.h), on the CA's listener. */
    static const char ct_prefix[] = "/ct/v1/";
    const struct route *match = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(routes[i].path, path) == 0) {
            match = &routes[i];
            break;
        }
    }
    int ct = svc->ctlog && strncmp(path, ct_prefix, sizeof ct_prefix - 1) == 0;
    request_log_begin(req, match ? match->path : ct ? "/ct/v1/" : NULL);
    if (ct) {
        if (!ct_log_http_handle(svc->ctlog, req, base, path + sizeof ct_prefix - 1))
            api_reply_error(req, GRPC_NOT_FOUND, "Not Found", NULL);
        return;
    }

    if (!match) {
        api_reply_error(req, GRPC_NOT_FOUND, "Not Found", NULL);
        return;
    }
    if (evhttp_request_get_command(req) != match->method) {
        api_reply_error(req, GRPC_UNIMPLEMENTED, "Method Not Allowed", NULL);
        return;
    }
    switch (match->id) {
    case R_SIGN_V2: api_signing_cert(req, base, svc, 2); return;
    case R_SIGN_V1: api_signing_cert(req, base, svc, 1); return;
    case R_TRUST_BUNDLE:
    case R_CONFIGURATION:
    case R_ROOT_CERT: reply_rendered(req, svc, match->id); return;
    case R_HEALTHZ:
        /* Liveness, as Fulcio's: the process serves. Whether it can issue is /readyz. */
        reply_text(req, "application/json", "{\"status\":\"SERVING\"}");
        return;
    case R_READYZ: readyz(req, svc); return;
    default: api_reply_error(req, GRPC_NOT_FOUND, "Not Found", NULL); return;
    }
}
