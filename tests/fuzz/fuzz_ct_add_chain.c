/*
 * fuzz_ct_add_chain: the body of POST /ct/v1/add-chain and /ct/v1/add-pre-chain through the
 * log's own HTTP handler (ct_log_http_handle, ct/log_http.c): the JSON {"chain":[...]}, base64,
 * DER certificates (with the issuer cache), then the chain checks of ct/chain_check.h (poison,
 * signature algorithms, path to an accepted root, precert issuer rules) and, for a chain that
 * passes, the log's submission (SCT signed, entry committed by the writer thread, duplicate
 * answered with the first SCT).
 *
 * The log is real: a SQLite database in a temporary directory under $TMPDIR (removed at exit),
 * an ephemeral log key, and as accepted roots the Fulcio fixture roots CN=ecdsa (P-384),
 * CN=rsa4096 and CN=root (of the intermediate-3 chain). Each input is posted to both endpoints
 * on a request object with no connection (libevent frees it when it is answered); the target
 * waits on its event_base for the answer, which must be 200 or 400.
 *
 * Input starting with '{' is the body as it is. Anything else is read as DER certificates one
 * after the other (each element's extent taken from its header; what does not parse is the
 * last one), which the target base64-encodes into {"chain":[...]}, so mutations reach the DER.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/thread.h>
#include <ftw.h>
#include <jansson.h>
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca/http_server.h"
#include "common/base64.h"
#include "ct/chain_check.h"
#include "ct/ct_log.h"
#include "fuzz_common.h"

static struct event_base *base;
static struct event *keepalive;
static ct_log *ctlog;
static char state_dir[4096];
static int answered_status;

static void on_reply(struct evhttp_request *req, int status)
{
    (void)req;
    answered_status = status;
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    ct_log_close(ctlog);
    ctlog = NULL;
    if (keepalive)
        event_free(keepalive);
    if (base)
        event_base_free(base);
    if (state_dir[0])
        nftw(state_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_log_init();
    evthread_use_pthreads();
    base = event_base_new();
    keepalive = base ? event_new(base, -1, EV_PERSIST, on_keepalive, NULL) : NULL;
    struct timeval hour = {3600, 0};
    if (!keepalive || event_add(keepalive, &hour) != 0)
        fz_die("event_base");

    const char *tmp = getenv("TMPDIR");
    snprintf(state_dir, sizeof state_dir, "%s/fulcrum-fuzz-ctlog-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(state_dir))
        fz_die("mkdtemp %s", state_dir);

    STACK_OF(X509) *roots = sk_X509_new_null();
    STACK_OF(X509) *i3 = fz_fixture_chain("intermediate-3");
    X509 *root = sk_X509_pop(i3); /* the chain's last certificate: CN=root */
    sk_X509_pop_free(i3, X509_free);
    if (!roots || !sk_X509_push(roots, fz_fixture_cert("ecdsa")) ||
        !sk_X509_push(roots, fz_fixture_cert("rsa4096")) || !sk_X509_push(roots, root))
        fz_die("roots");
    ct_log_options o = {.state_dir = state_dir, .roots = roots};
    char why[512];
    ctlog = ct_log_open(&o, why, sizeof why);
    sk_X509_pop_free(roots, X509_free);
    if (!ctlog)
        fz_die("ct_log_open: %s", why);
    http_set_reply_observer(on_reply);
    atexit(cleanup);
    return 0;
}

static void post(const char *endpoint, const uint8_t *data, size_t size)
{
    struct evhttp_request *req = evhttp_request_new(NULL, NULL);
    FZ_ASSERT(req, "evhttp_request_new");
    req->type = EVHTTP_REQ_POST;
    FZ_ASSERT(evbuffer_add(evhttp_request_get_input_buffer(req), data, size) == 0,
              "evbuffer_add");
    answered_status = 0;
    FZ_ASSERT(ct_log_http_handle(ctlog, req, base, endpoint) == 1, "%s not handled", endpoint);
    /* req is freed once answered: from here on only the status is looked at. */
    while (!answered_status)
        event_base_loop(base, EVLOOP_ONCE);
    fz_note("%s: %d", endpoint, answered_status);
    FZ_ASSERT(answered_status == 200 || answered_status == 400, "%s answered %d", endpoint,
              answered_status);
}

/* {"chain":[<b64 of each DER element of data>]}; malloc'd. */
static char *body_from_der(const uint8_t *data, size_t size)
{
    json_t *arr = json_array();
    const unsigned char *p = data, *end = data + size;
    while (arr && p < end && json_array_size(arr) <= CTLOG_MAX_CHAIN) {
        const unsigned char *q = p;
        long len = 0;
        int tag, cls;
        int r = ASN1_get_object(&q, &len, &tag, &cls, (long)(end - p));
        size_t n = (r & 0x80) || (r & 1) ? (size_t)(end - p) : (size_t)(q - p) + (size_t)len;
        ERR_clear_error();
        char *s = b64_encode(p, n);
        FZ_ASSERT(s, "b64_encode");
        json_array_append_new(arr, json_string(s));
        free(s);
        p += n;
    }
    json_t *doc = json_pack("{s:o}", "chain", arr);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    FZ_ASSERT(text, "the chain body");
    json_decref(doc);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = NULL;
    if (size > 0 && data[0] != '{') {
        body = body_from_der(data, size);
        data = (const uint8_t *)body;
        size = strlen(body);
    }
    post("add-chain", data, size);
    post("add-pre-chain", data, size);
    free(body);
    /* d2i failures leave entries (and their allocations) on the thread's error queue */
    ERR_clear_error();
    return 0;
}
