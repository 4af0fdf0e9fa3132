/*
 * ca/api.h: Fulcio's HTTP API (fulcio-compat.md §1) on top of ca/http_server.h.
 *
 * Routes: POST /api/v2/signingCert, POST /api/v1/signingCert, GET /api/v2/trustBundle,
 * GET /api/v2/configuration, GET /api/v1/rootCert, GET /healthz, GET /readyz. Unknown path: 404
 * code 5; known path with another method: 501 code 12 (grpc-gateway's mapping).
 *
 * /healthz is liveness (Fulcio's: 200 {"status":"SERVING"} whenever the process serves HTTP);
 * /readyz is readiness: 200 {"status":"READY","checks":{...}} when the CA signs (the last
 * signature did not fail: signer_healthy), the CT log is reachable (CT off, or the last
 * submission did not fail) and issuers are loaded (the config has at least one); otherwise 503
 * {"status":"NOT_READY","checks":{...}} with each check "ok" or why it fails.
 *
 * Every request goes through ca/request_log.h (request id, one log line, request metrics).
 */
#ifndef FULCRUM_CA_API_H
#define FULCRUM_CA_API_H

#include <event2/event.h>
#include <event2/http.h>

#include "ca/service.h"

/* An http_handler; arg is the service. */
void api_handle(struct evhttp_request *req, struct event_base *base, void *arg);

/* gRPC status codes used in error bodies. */
enum grpc_code {
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_NOT_FOUND = 5,
    GRPC_PERMISSION_DENIED = 7,
    GRPC_RESOURCE_EXHAUSTED = 8, /* 429: a rate limit (ca/rate_limit.h) */
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
};

/* Fulcio's fixed client messages (fulcio-compat.md §1.9). */
#define MSG_IDENTITY_TOKEN "There was an error processing the identity token"
/* Fulcrum's own (403): the token is valid but the issuer's ClaimPolicy refuses it. */
#define MSG_CLAIM_POLICY "The identity token is not permitted by this server's claim policy"
#define MSG_CSR_UNPARSEABLE "The certificate signing request could not be parsed"
#define MSG_KEY_UNPARSEABLE "The public key supplied in the request could not be parsed"
#define MSG_KEY_INSECURE "The public key supplied in the request is insecure"
#define MSG_SIGNATURE_INVALID "The signature supplied in the request could not be verified"
#define MSG_CA_BACKEND "error communicating with CA backend"
/* Fulcrum's own (429, code 8, with Retry-After): --rate-limit-identity / --rate-limit-issuer. */
#define MSG_RATE_LIMITED "Too many certificate requests"
#define MSG_MARSHAL_CERT "Error marshaling code signing certificate"

/* Answers {"code":code,"message":"<message>[: <detail>]","details":[]} with the HTTP status of
 * the gRPC code. detail may be NULL. Client faults are logged at warn, server faults at error.
 * Unless the handler set one, the refusal reason of the request log is derived from the message
 * (ca/request_log.h). */
void api_reply_error(struct evhttp_request *req, enum grpc_code code, const char *message,
                     const char *detail);

/* The signing endpoints (ca/api_signing.c). version is 1 or 2. */
void api_signing_cert(struct evhttp_request *req, struct event_base *base, service *svc,
                      int version);

#endif
