/*
 * tests/dev_issuer/params.c: the parameters of a /token request as one JSON object.
 */
#include "dev_issuer.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes in[0..len) into out (room for len bytes); returns the decoded length or -1. */
static long decode(const char *in, size_t len, int plus_is_space, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return -1;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        } else if (c == '\0') {
            return -1;
        }
        out[o++] = c;
    }
    return (long)o;
}

int params_add_urlencoded(json_t *obj, const char *text, size_t len, int plus_is_space,
                          char *why, size_t whylen)
{
    char *buf = malloc(len + 1);
    if (!buf) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    int rc = 0;
    size_t start = 0;
    while (start < len && rc == 0) {
        size_t end = start;
        while (end < len && text[end] != '&')
            end++;
        if (end > start) {
            size_t eq = start;
            while (eq < end && text[eq] != '=')
                eq++;
            long nlen = decode(text + start, eq - start, plus_is_space, buf);
            char *name = nlen >= 0 ? strndup(buf, (size_t)nlen) : NULL;
            long vlen = -1;
            if (name && *name)
                vlen = eq < end ? decode(text + eq + 1, end - eq - 1, plus_is_space, buf) : 0;
            json_t *v = vlen >= 0 ? json_stringn(buf, (size_t)vlen) : NULL;
            if (!name || !*name || !v || json_object_set_new(obj, name, v) != 0) {
                if (!v && name && *name && vlen >= 0)
                    snprintf(why, whylen, "parameter \"%.64s\" is not valid UTF-8", name);
                else
                    snprintf(why, whylen, "malformed parameter %.*s",
                             (int)(end - start < 64 ? end - start : 64), text + start);
                rc = -1;
            }
            free(name);
        }
        start = end + 1;
    }
    free(buf);
    return rc;
}

static int is_json_body(struct evhttp_request *req, const char *body, size_t len)
{
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    if (ct)
        return strncasecmp(ct, "application/json", 16) == 0;
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    return i < len && body[i] == '{';
}

json_t *params_from_request(struct evhttp_request *req, char *why, size_t whylen)
{
    json_t *obj = json_object();
    if (!obj) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (query && params_add_urlencoded(obj, query, strlen(query), 0, why, whylen) != 0)
        goto fail;

    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = in ? evbuffer_get_length(in) : 0;
    if (len == 0)
        return obj;
    const char *body = (const char *)evbuffer_pullup(in, -1);
    if (!body) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    if (is_json_body(req, body, len)) {
        json_error_t jerr;
        json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(doc)) {
            snprintf(why, whylen, "body is not a JSON object (%.100s)",
                     doc ? "another JSON value" : jerr.text);
            json_decref(doc);
            goto fail;
        }
        json_object_update(obj, doc);
        json_decref(doc);
    } else if (params_add_urlencoded(obj, body, len, 1, why, whylen) != 0) {
        goto fail;
    }
    return obj;
fail:
    json_decref(obj);
    return NULL;
}
