/*
 * ca/trusted_root_cmd.c: `fulcrum trusted-root`: a Sigstore trusted_root.json for this instance.
 *
 * Field names are the protobuf JSON names of dev.sigstore.trustroot.v1.TrustedRoot
 * (sigstore/protobuf-specs protos/sigstore_trustroot.proto, as @sigstore/protobuf-specs 0.5
 * reads them): mediaType, tlogs, certificateAuthorities {subject {organization, commonName},
 * uri, certChain {certificates [{rawBytes}]}, validFor {start}}, ctlogs {baseUrl, hashAlgorithm,
 * publicKey {rawBytes, keyDetails, validFor {start}}, logId {keyId}}, timestampAuthorities.
 * bytes are standard base64, times RFC 3339 UTC.
 *
 * Where the pieces come from:
 *  - the CA chain (issuing certificate first, root last): --ca-cert-path (a PEM chain, the file
 *    given to `serve --fileca-cert`), or --server-url, which reads a running server's
 *    /api/v2/trustBundle (the only way for ephemeralca, whose root changes at every start);
 *  - the CT log: --ct-log-url embedded (default): the key is <--state-dir>/ctlog/public.pem,
 *    the log's base URL is the server's (--ca-url or --server-url); an http(s) URL: that log,
 *    with its key from --ct-log-public-key-path; "" = no ctlogs.
 *  - validFor.start: --valid-from, or the latest notBefore in the chain (when the whole chain
 *    became valid); the log gets the same start, since every SCT is on a certificate of this CA.
 */
#include "ca/trusted_root_cmd.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base64.h"
#include "common/flags.h"

#define MEDIA_TYPE "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
#define MAX_ANSWER (1 << 20)

struct tr_flags {
    const char *server_url, *ca_cert_path, *ca_url, *ct_log_url, *state_dir, *ct_key_path;
    const char *valid_from;
    int help;
};

static void usage(const struct flag *flags, size_t n, FILE *out)
{
    fprintf(out,
            "Usage: fulcrum trusted-root [flags] > trusted_root.json\n\n"
            "Prints a Sigstore trusted_root.json for this Fulcrum instance: its CA chain\n"
            "(certificateAuthorities) and its Certificate Transparency log (ctlogs), for\n"
            "verifiers such as cosign --trusted-root, sigstore-js, sigstore-go and\n"
            "sigstore-python.\n\n"
            "The CA chain comes from --ca-cert-path (fileca: the --fileca-cert file) or from a\n"
            "running server (--server-url; needed for ephemeralca, whose root changes at every\n"
            "start). The embedded log's key is read from --state-dir, as `serve` wrote it.\n\n"
            "Examples:\n"
            "  fulcrum trusted-root --server-url http://127.0.0.1:8080 \\\n"
            "      --state-dir ./fulcrum-state\n"
            "  fulcrum trusted-root --ca-cert-path chain.pem \\\n"
            "      --ca-url https://fulcio.example.com\n"
            "  fulcrum trusted-root --ca-cert-path chain.pem \\\n"
            "      --ct-log-url https://ct.example.com/log --ct-log-public-key-path ctfe.pub\n\n"
            "Flags:\n");
    flags_usage(flags, n, out);
}

/* ---- the CA chain ---- */

static STACK_OF(X509) *chain_from_file(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    if (!b) {
        fprintf(stderr, "fulcrum trusted-root: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509 *x;
    while (chain && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(chain, x)) {
            X509_free(x);
            break;
        }
    }
    BIO_free(b);
    if (!chain || sk_X509_num(chain) == 0) {
        fprintf(stderr, "fulcrum trusted-root: %s holds no PEM certificate\n", path);
        sk_X509_pop_free(chain, X509_free);
        return NULL;
    }
    return chain;
}

struct buf {
    char *p;
    size_t len;
    int too_big;
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t n = size * nmemb;
    if (b->len + n > MAX_ANSWER) {
        b->too_big = 1;
        return 0;
    }
    char *p = realloc(b->p, b->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, data, n);
    b->p = p;
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

static STACK_OF(X509) *chain_from_server(const char *server)
{
    size_t slen = strlen(server);
    while (slen > 0 && server[slen - 1] == '/')
        slen--;
    char url[2048];
    snprintf(url, sizeof url, "%.*s/api/v2/trustBundle", (int)slen, server);
    struct buf b = {0};
    long status = 0;
    CURL *h = curl_easy_init();
    CURLcode rc = CURLE_FAILED_INIT;
    char err[CURL_ERROR_SIZE] = "";
    if (h) {
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "fulcrum");
        rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
    }
    STACK_OF(X509) *chain = NULL;
    if (rc != CURLE_OK || status != 200) {
        fprintf(stderr, "fulcrum trusted-root: GET %s: %s\n", url,
                rc != CURLE_OK ? (err[0] ? err : curl_easy_strerror(rc)) : "not HTTP 200");
        goto done;
    }
    json_t *j = json_loadb(b.p ? b.p : "", b.len, 0, NULL);
    json_t *certs = json_object_get(json_array_get(json_object_get(j, "chains"), 0),
                                    "certificates");
    size_t n = json_array_size(certs);
    chain = n ? sk_X509_new_null() : NULL;
    for (size_t i = 0; chain && i < n; i++) {
        const char *pem = json_string_value(json_array_get(certs, i));
        BIO *mb = pem ? BIO_new_mem_buf(pem, -1) : NULL;
        X509 *x = mb ? PEM_read_bio_X509(mb, NULL, NULL, NULL) : NULL;
        BIO_free(mb);
        if (!x || !sk_X509_push(chain, x)) {
            X509_free(x);
            sk_X509_pop_free(chain, X509_free);
            chain = NULL;
        }
    }
    json_decref(j);
    if (!chain)
        fprintf(stderr, "fulcrum trusted-root: GET %s: not {\"chains\":[{\"certificates\":"
                        "[PEM, ...]}]}\n", url);
done:
    free(b.p);
    return chain;
}

/* ---- fields ---- */

static char *der_b64_cert(X509 *x)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    char *out = n > 0 ? b64_encode(der, (size_t)n) : NULL;
    OPENSSL_free(der);
    return out;
}

static int rfc3339(time_t t, char *out, size_t len)
{
    struct tm tm;
    return gmtime_r(&t, &tm) && strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0;
}

static int parse_rfc3339(const char *s, time_t *out)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || strcmp(end, "Z") != 0)
        return -1;
    *out = timegm(&tm);
    return 0;
}

/* The latest notBefore of the chain. */
static time_t chain_start(STACK_OF(X509) *chain)
{
    time_t best = 0;
    for (int i = 0; i < sk_X509_num(chain); i++) {
        struct tm tm;
        if (ASN1_TIME_to_tm(X509_get0_notBefore(sk_X509_value(chain, i)), &tm) != 1)
            continue;
        time_t t = timegm(&tm);
        if (t > best)
            best = t;
    }
    return best;
}

static json_t *name_field(X509 *x, int nid)
{
    X509_NAME *n = X509_get_subject_name(x);
    int i = X509_NAME_get_index_by_NID(n, nid, -1);
    unsigned char *utf8 = NULL;
    if (i < 0 ||
        ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i))) < 0)
        return json_string("");
    json_t *s = json_string((const char *)utf8);
    OPENSSL_free(utf8);
    return s ? s : json_string("");
}

/* keyDetails (sigstore_common.proto PublicKeyDetails) of a log key, or NULL if not one a
 * trusted root can name. */
static const char *key_details(EVP_PKEY *k)
{
    switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_EC: {
        char curve[64] = "";
        size_t len = 0;
        if (!EVP_PKEY_get_utf8_string_param(k, "group", curve, sizeof curve, &len))
            return NULL;
        if (strcmp(curve, "prime256v1") == 0)
            return "PKIX_ECDSA_P256_SHA_256";
        if (strcmp(curve, "secp384r1") == 0)
            return "PKIX_ECDSA_P384_SHA_384";
        if (strcmp(curve, "secp521r1") == 0)
            return "PKIX_ECDSA_P521_SHA_512";
        return NULL;
    }
    case EVP_PKEY_ED25519: return "PKIX_ED25519";
    case EVP_PKEY_RSA:
        switch (EVP_PKEY_get_bits(k)) {
        case 2048: return "PKIX_RSA_PKCS1V15_2048_SHA256";
        case 3072: return "PKIX_RSA_PKCS1V15_3072_SHA256";
        case 4096: return "PKIX_RSA_PKCS1V15_4096_SHA256";
        default: return NULL;
        }
    default: return NULL;
    }
}

static json_t *ctlog_entry(const char *base_url, const char *key_path, const char *start)
{
    BIO *b = BIO_new_file(key_path, "r");
    if (!b) {
        fprintf(stderr, "fulcrum trusted-root: cannot read the CT log key %s: %s\n", key_path,
                strerror(errno));
        return NULL;
    }
    EVP_PKEY *k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!k) {
        fprintf(stderr, "fulcrum trusted-root: %s is not a PEM public key\n", key_path);
        return NULL;
    }
    const char *details = key_details(k);
    unsigned char *der = NULL, id[32];
    unsigned int idlen = 0;
    int n = i2d_PUBKEY(k, &der);
    EVP_PKEY_free(k);
    json_t *out = NULL;
    if (!details) {
        fprintf(stderr, "fulcrum trusted-root: %s: unsupported CT log key type\n", key_path);
    } else if (n > 0 && EVP_Digest(der, (size_t)n, id, &idlen, EVP_sha256(), NULL)) {
        char *raw = b64_encode(der, (size_t)n), *kid = b64_encode(id, idlen);
        if (raw && kid)
            out = json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s}},s:{s:s}}", "baseUrl", base_url,
                            "hashAlgorithm", "SHA2_256", "publicKey", "rawBytes", raw,
                            "keyDetails", details, "validFor", "start", start, "logId", "keyId",
                            kid);
        free(raw);
        free(kid);
    }
    OPENSSL_free(der);
    return out;
}

static char *trim_slash(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        n--;
    return strndup(s, n);
}

int trusted_root_main(int argc, char **argv)
{
    struct tr_flags f = {.server_url = "", .ca_cert_path = "", .ca_url = "",
                         .ct_log_url = "embedded", .state_dir = "./fulcrum-state",
                         .ct_key_path = "", .valid_from = ""};
    struct flag flags[] = {
        {"server-url", NULL, FLAG_STRING, &f.server_url,
         "a running Fulcrum: the CA chain is read from its /api/v2/trustBundle", 0},
        {"ca-cert-path", "fileca-cert", FLAG_STRING, &f.ca_cert_path,
         "the CA chain as PEM, issuing certificate first, root last (what serve --fileca-cert "
         "reads)", 0},
        {"ca-url", NULL, FLAG_STRING, &f.ca_url,
         "the instance's public URL: certificateAuthorities[].uri and, for the embedded log, "
         "ctlogs[].baseUrl (default: --server-url)", 0},
        {"ct-log-url", NULL, FLAG_STRING, &f.ct_log_url,
         "as for serve: embedded (default), the external log's URL, or \"\" (no ctlogs)", 0},
        {"state-dir", NULL, FLAG_STRING, &f.state_dir,
         "embedded log: serve's --state-dir; its key is <dir>/ctlog/public.pem (default "
         "./fulcrum-state)", 0},
        {"ct-log-public-key-path", NULL, FLAG_STRING, &f.ct_key_path,
         "the CT log's PEM public key (required for an external log; overrides --state-dir)", 0},
        {"valid-from", NULL, FLAG_STRING, &f.valid_from,
         "validFor.start, RFC 3339 UTC (e.g. 2026-01-01T00:00:00Z; default: the latest notBefore "
         "in the CA chain)", 0},
        {"help", "h", FLAG_BOOL, &f.help, "show this help", 0},
    };
    size_t nflags = sizeof flags / sizeof flags[0];
    char why[1024];
    if (flags_parse(flags, nflags, argc, argv, why, sizeof why) != 0) {
        fprintf(stderr, "fulcrum trusted-root: %s\n", why);
        return 2;
    }
    if (f.help) {
        usage(flags, nflags, stdout);
        return 0;
    }
    if (!!*f.server_url == !!*f.ca_cert_path) {
        fprintf(stderr, "fulcrum trusted-root: give exactly one of --server-url and "
                        "--ca-cert-path\n");
        return 2;
    }
    int embedded = strcmp(f.ct_log_url, "embedded") == 0;
    if (*f.ct_log_url && !embedded && !*f.ct_key_path) {
        fprintf(stderr, "fulcrum trusted-root: --ct-log-url %s needs --ct-log-public-key-path\n",
                f.ct_log_url);
        return 2;
    }
    time_t start = 0;
    if (*f.valid_from && parse_rfc3339(f.valid_from, &start) != 0) {
        fprintf(stderr, "fulcrum trusted-root: --valid-from %s is not YYYY-MM-DDTHH:MM:SSZ\n",
                f.valid_from);
        return 2;
    }

    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = 1;
    json_t *root = NULL;
    char *ca_url = trim_slash(*f.ca_url ? f.ca_url : f.server_url);
    STACK_OF(X509) *chain =
        *f.server_url ? chain_from_server(f.server_url) : chain_from_file(f.ca_cert_path);
    if (!chain || !ca_url)
        goto done;
    if (!*f.valid_from)
        start = chain_start(chain);
    char start_text[32];
    if (!rfc3339(start, start_text, sizeof start_text))
        goto done;

    json_t *certs = json_array();
    for (int i = 0; i < sk_X509_num(chain); i++) {
        char *b64 = der_b64_cert(sk_X509_value(chain, i));
        if (!b64) {
            json_decref(certs);
            goto done;
        }
        json_array_append_new(certs, json_pack("{s:s}", "rawBytes", b64));
        free(b64);
    }
    X509 *top = sk_X509_value(chain, sk_X509_num(chain) - 1);
    json_t *ca = json_pack("{s:{s:o,s:o},s:s,s:{s:o},s:{s:s}}", "subject", "organization",
                           name_field(top, NID_organizationName), "commonName",
                           name_field(top, NID_commonName), "uri", ca_url, "certChain",
                           "certificates", certs, "validFor", "start", start_text);
    json_t *ctlogs = json_array();
    if (*f.ct_log_url) {
        char key_path[4096];
        if (*f.ct_key_path)
            snprintf(key_path, sizeof key_path, "%s", f.ct_key_path);
        else
            snprintf(key_path, sizeof key_path, "%s/ctlog/public.pem", f.state_dir);
        char *log_url = embedded ? strdup(ca_url) : trim_slash(f.ct_log_url);
        if (embedded && !*ca_url)
            fprintf(stderr, "fulcrum trusted-root: warning: no --ca-url or --server-url, so the "
                            "embedded log's baseUrl is empty\n");
        json_t *entry = log_url ? ctlog_entry(log_url, key_path, start_text) : NULL;
        free(log_url);
        if (!entry) {
            json_decref(ca);
            json_decref(ctlogs);
            goto done;
        }
        json_array_append_new(ctlogs, entry);
    }
    root = json_pack("{s:s,s:[],s:[o],s:o,s:[]}", "mediaType", MEDIA_TYPE, "tlogs",
                     "certificateAuthorities", ca, "ctlogs", ctlogs, "timestampAuthorities");
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (text) {
        printf("%s\n", text);
        free(text);
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
done:
    json_decref(root);
    sk_X509_pop_free(chain, X509_free);
    free(ca_url);
    curl_global_cleanup();
    return rc;
}
