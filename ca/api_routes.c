#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/api.h"
#include "ca/http_server.h"
#include "common/log.h"

static int grpc_http_status(enum grpc_code code)
{
    switch (code) {
    case GRPC_INVALID_ARGUMENT: return 400;
    case GRPC_NOT_FOUND: return 404;
    case GRPC_PERMISSION_DENIED: return 403;
    case GRPC_UNIMPLEMENTED: return 501;
    default: return 500;
    }
}

void api_reply_error(struct evhttp_request *req, enum grpc_code code, const char *message,
                     const char *detail)
{
    char text[1024];
    if (detail && *detail)
        snprintf(text, sizeof text, "%s: %s", message, detail);
    else
        snprintf(text, sizeof text, "%s", message);
    int status = grpc_http_status(code);
    const char *uri = evhttp_request_get_uri(req);
    if (status >= 500)
        log_error("api", "%s -> %d: %s", uri ? uri : "?", status, text);
    else if (code == GRPC_INVALID_ARGUMENT || code == GRPC_PERMISSION_DENIED)
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
                R_HEALTHZ };

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
};

void api_handle(struct evhttp_request *req, struct event_base *base, void *arg)
{
    service *svc = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !*path)
        path = "/";

    /* The embedded CT log's RFC 6962 API (ct/ct_log.h), on the CA's listener. */
    static const char ct_prefix[] = "/ct/v1/";
    if (svc->ctlog && strncmp(path, ct_prefix, sizeof ct_prefix - 1) == 0) {
        if (!ct_log_http_handle(svc->ctlog, req, base, path + sizeof ct_prefix - 1))
            api_reply_error(req, GRPC_NOT_FOUND, "Not Found", NULL);
        return;
    }

    const struct route *match = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(routes[i].path, path) == 0) {
            match = &routes[i];
            break;
        }
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
    case R_TRUST_BUNDLE: reply_text(req, "application/json", svc->trust_bundle_json); return;
    case R_CONFIGURATION: reply_text(req, "application/json", svc->configuration_json); return;
    case R_ROOT_CERT:
        reply_text(req, "application/pem-certificate-chain", svc->root_cert_text);
        return;
    case R_HEALTHZ:
        /* NOT_SERVING while the last signature failed (an HSM that cannot be reached). */
        if (signer_healthy(svc->signer)) {
            reply_text(req, "application/json", "{\"status\":\"SERVING\"}");
        } else {
            static const char down[] = "{\"status\":\"NOT_SERVING\"}";
            http_reply(req, 503, "application/json", down, sizeof down - 1);
        }
        return;
    default: api_reply_error(req, GRPC_NOT_FOUND, "Not Found", NULL); return;
    }
}
