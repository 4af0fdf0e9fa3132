/*
 * tests/integration/harness_http.c: HTTP requests over libcurl and checks of Fulcio's error shape.
 */
#include "integration/harness.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct growbuf {
    char *data;
    size_t len, cap;
    int oom;
} growbuf;

static int growbuf_append(growbuf *b, const char *p, size_t n)
{
    if (b->oom)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *bigger = realloc(b->data, cap);
        if (!bigger) {
            b->oom = 1;
            return -1;
        }
        b->data = bigger;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

static char g_cainfo[4096]; /* "" = libcurl's default CA store */

void h_http_set_cainfo(const char *pem_path)
{
    snprintf(g_cainfo, sizeof g_cainfo, "%s", pem_path ? pem_path : "");
}

size_t h_curl_sink(char *data, size_t size, size_t nmemb, void *arg)
{
    h_sink *s = arg;
    size_t n = size * nmemb;
    char *p = realloc(s->p, s->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + s->len, data, n);
    s->len += n;
    p[s->len] = '\0';
    s->p = p;
    return n;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    return growbuf_append(arg, p, size * nmemb) == 0 ? size * nmemb : 0;
}

/* Keeps only the last response's headers (a 100 Continue comes before the real one). */
static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    growbuf *b = arg;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0)
        b->len = 0;
    return growbuf_append(b, p, n) == 0 ? n : 0;
}

int h_http(const char *method, const char *url, const char *const *headers, const void *body,
           size_t body_len, h_response *resp)
{
    memset(resp, 0, sizeof *resp);
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(resp->curl_error, sizeof resp->curl_error, "curl_easy_init failed");
        return -1;
    }
    growbuf b = {0}, h = {0};
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L * h_slow());
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L * h_slow());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, resp->curl_error);
    if (g_cainfo[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, g_cainfo);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    if (list)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    else if (strcmp(method, "GET") == 0 && !body)
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);

    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    if (rc != CURLE_OK && !resp->curl_error[0])
        snprintf(resp->curl_error, sizeof resp->curl_error, "%s", curl_easy_strerror(rc));
    curl_slist_free_all(list);
    curl_easy_cleanup(c);

    if (b.oom || h.oom)
        snprintf(resp->curl_error, sizeof resp->curl_error, "out of memory");
    resp->body = b.data ? b.data : strdup("");
    resp->body_len = b.data ? b.len : 0;
    resp->headers = h.data ? h.data : strdup("");
    if (b.oom || h.oom)
        return -1;
    /* A response may have arrived although the transfer then failed (e.g. the server answered
     * 413 and closed while the body was still being sent): report it; curl_error says the rest. */
    return resp->status ? 0 : -1;
}

int h_get(const char *url, h_response *resp)
{
    return h_http("GET", url, NULL, NULL, 0, resp);
}

int h_post_json(const char *url, const char *json, const char *bearer, h_response *resp)
{
    char *auth = NULL;
    const char *headers[3] = {"Content-Type: application/json", NULL, NULL};
    if (bearer) {
        size_t n = strlen(bearer) + 32;
        auth = malloc(n);
        if (!auth) {
            memset(resp, 0, sizeof *resp);
            return -1;
        }
        snprintf(auth, n, "Authorization: Bearer %s", bearer);
        headers[1] = auth;
    }
    int rc = h_http("POST", url, headers, json, strlen(json), resp);
    free(auth);
    return rc;
}

char *h_header(const h_response *resp, const char *name)
{
    size_t nlen = strlen(name);
    const char *line = resp->headers;
    while (line && *line) {
        const char *eol = strstr(line, "\r\n");
        if (!eol)
            eol = line + strlen(line);
        if ((size_t)(eol - line) > nlen && strncasecmp(line, name, nlen) == 0 &&
            line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (v < eol && isspace((unsigned char)*v))
                v++;
            const char *e = eol;
            while (e > v && isspace((unsigned char)e[-1]))
                e--;
            return strndup(v, (size_t)(e - v));
        }
        line = *eol ? eol + 2 : eol;
    }
    return NULL;
}

json_t *h_json(const h_response *resp)
{
    json_error_t err;
    json_t *j = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, &err);
    if (!j)
        fprintf(stderr, "harness: response is not JSON (%s): %.300s\n", err.text,
                resp->body ? resp->body : "");
    return j;
}

int h_is_error(const h_response *resp, long status, int code, const char *prefix)
{
    int ok = 1;
    if (resp->status != status) {
        fprintf(stderr, "harness: status %ld, want %ld (body %.300s)\n", resp->status, status,
                resp->body ? resp->body : "");
        ok = 0;
    }
    char *ct = h_header(resp, "Content-Type");
    if (!ct || strncmp(ct, "application/json", 16) != 0) {
        fprintf(stderr, "harness: error Content-Type %s, want application/json\n",
                ct ? ct : "(none)");
        ok = 0;
    }
    free(ct);
    json_error_t jerr;
    json_t *j = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, &jerr);
    json_t *jc = json_object_get(j, "code"), *jm = json_object_get(j, "message"),
           *jd = json_object_get(j, "details");
    if (!json_is_object(j) || json_object_size(j) != 3 || !json_is_integer(jc) ||
        !json_is_string(jm) || !json_is_array(jd) || json_array_size(jd) != 0) {
        fprintf(stderr, "harness: error body is not {code,message,details:[]}: %.300s\n",
                resp->body ? resp->body : "");
        ok = 0;
    } else {
        if (json_integer_value(jc) != code) {
            fprintf(stderr, "harness: error code %lld, want %d\n",
                    (long long)json_integer_value(jc), code);
            ok = 0;
        }
        if (prefix && strncmp(json_string_value(jm), prefix, strlen(prefix)) != 0) {
            fprintf(stderr, "harness: error message \"%s\" does not start with \"%s\"\n",
                    json_string_value(jm), prefix);
            ok = 0;
        }
    }
    json_decref(j);
    return ok;
}

void h_response_free(h_response *resp)
{
    free(resp->body);
    free(resp->headers);
    resp->body = resp->headers = NULL;
    resp->body_len = 0;
}
