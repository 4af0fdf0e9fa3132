/*
 * tests/dev_issuer/main.c: fulcrum-dev-issuer, the development/test OIDC issuer.
 *
 *   fulcrum-dev-issuer [--host 127.0.0.1] [--port 0] [--port-file PATH] [--key-dir DIR]
 *                      [--tls-cert FILE --tls-key FILE]
 *
 * NEVER for production: it mints signed tokens for anyone who asks. It refuses to listen on
 * anything but loopback. Prints "ready http://127.0.0.1:<port>" (its issuer URL; https:// with
 * --tls-cert) once listening; exits 0 on SIGTERM or SIGINT.
 *
 * TLS: every accepted connection gets a bufferevent_openssl over one SSL_CTX holding the given
 * certificate chain (PEM, leaf first) and key, so tests can play an issuer behind a private CA.
 */
#include "dev_issuer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

#define MAX_BODY (8 * 1024 * 1024)

struct options {
    const char *host;
    long port;
    const char *port_file;
    const char *key_dir;
    const char *tls_cert;
    const char *tls_key;
};

static void usage(FILE *to)
{
    fputs("usage: fulcrum-dev-issuer [--host 127.0.0.1] [--port 0] [--port-file PATH] "
          "[--key-dir DIR] [--tls-cert FILE --tls-key FILE]\n"
          "A development/test OIDC issuer that mints tokens for anyone: loopback only, never for "
          "production.\n",
          to);
}

static int parse_args(int argc, char **argv, struct options *o)
{
    o->host = "127.0.0.1";
    o->port = 0;
    o->port_file = NULL;
    o->key_dir = NULL;
    o->tls_cert = NULL;
    o->tls_key = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fulcrum-dev-issuer: %s: unknown option or missing value\n", a);
            return -1;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--host") == 0) {
            o->host = v;
        } else if (strcmp(a, "--port") == 0) {
            char *end = NULL;
            errno = 0;
            o->port = strtol(v, &end, 10);
            if (!*v || *end || errno || o->port < 0 || o->port > 65535) {
                fprintf(stderr, "fulcrum-dev-issuer: --port %s: not a port number\n", v);
                return -1;
            }
        } else if (strcmp(a, "--port-file") == 0) {
            o->port_file = v;
        } else if (strcmp(a, "--key-dir") == 0) {
            o->key_dir = v;
        } else if (strcmp(a, "--tls-cert") == 0) {
            o->tls_cert = v;
        } else if (strcmp(a, "--tls-key") == 0) {
            o->tls_key = v;
        } else {
            fprintf(stderr, "fulcrum-dev-issuer: unknown option %s\n", a);
            return -1;
        }
    }
    if (!o->tls_cert != !o->tls_key) {
        fprintf(stderr, "fulcrum-dev-issuer: --tls-cert and --tls-key go together\n");
        return -1;
    }
    return 0;
}

/* The server's TLS context from a PEM chain and key, or NULL with the reason logged. */
static SSL_CTX *tls_context(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx && SSL_CTX_use_certificate_chain_file(ctx, cert) == 1 &&
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 &&
        SSL_CTX_check_private_key(ctx) == 1)
        return ctx;
    char err[256] = "out of memory";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, err, sizeof err);
    log_error(DEV_COMPONENT, "TLS certificate %s / key %s: %s", cert, key, err);
    SSL_CTX_free(ctx);
    return NULL;
}

/* evhttp's bufferevent factory: one TLS server bufferevent per accepted connection. */
static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
    SSL *ssl = SSL_new(arg);
    if (!ssl)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(base, -1, ssl,
                                                             BUFFEREVENT_SSL_ACCEPTING,
                                                             BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* The address to bind for host, or NULL when host is not a loopback address. *v6 = 1 for ::1. */
static const char *loopback_addr(const char *host, int *v6)
{
    struct in_addr a4;
    struct in6_addr a6;
    *v6 = 0;
    if (strcmp(host, "localhost") == 0)
        return "127.0.0.1";
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127 ? host : NULL;
    if (inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6)) {
        *v6 = 1;
        return host;
    }
    return NULL;
}

static int write_port_file(const char *path, int port)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        log_error(DEV_COMPONENT, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    int ok = fprintf(f, "%d\n", port) > 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        log_error(DEV_COMPONENT, "cannot write the port file %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info(DEV_COMPONENT, "signal %d: stopping", (int)sig);
    event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    int v6 = 0;
    const char *bind_addr = loopback_addr(o.host, &v6);
    if (!bind_addr) {
        fprintf(stderr,
                "fulcrum-dev-issuer: refusing to listen on %s: the dev issuer mints tokens for "
                "anyone, so it listens on loopback only (127.0.0.0/8, ::1, localhost)\n",
                o.host);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    char why[512] = "";
    dev_keys keys;
    struct event_base *base = NULL;
    struct evhttp *http = NULL;
    dev_issuer *routes = NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    SSL_CTX *tls = NULL;
    if (keys_init(&keys, o.key_dir, why, sizeof why) != 0) {
        log_error(DEV_COMPONENT, "keys: %s", why);
        return 1;
    }
    base = event_base_new();
    http = base ? evhttp_new(base) : NULL;
    if (!http) {
        log_error(DEV_COMPONENT, "cannot set up libevent");
        goto out;
    }
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                         EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                         EVHTTP_REQ_OPTIONS);
    evhttp_set_max_body_size(http, MAX_BODY);
    evhttp_set_max_headers_size(http, 64 * 1024);
    evhttp_set_timeout(http, 60);
    if (o.tls_cert) {
        if (!(tls = tls_context(o.tls_cert, o.tls_key)))
            goto out;
        evhttp_set_bevcb(http, tls_bev, tls);
    }

    struct evhttp_bound_socket *bound =
        evhttp_bind_socket_with_handle(http, bind_addr, (ev_uint16_t)o.port);
    if (!bound) {
        log_error(DEV_COMPONENT, "cannot listen on %s port %ld: %s", bind_addr, o.port,
                  strerror(errno));
        goto out;
    }
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sslen) != 0) {
        log_error(DEV_COMPONENT, "getsockname: %s", strerror(errno));
        goto out;
    }
    int port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    char url[128];
    snprintf(url, sizeof url, v6 ? "%s://[%s]:%d" : "%s://%s:%d", tls ? "https" : "http",
             bind_addr, port);

    routes = routes_new(base, http, &keys, url);
    sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    sigint = evsignal_new(base, SIGINT, on_signal, base);
    if (!routes || !sigterm || !sigint || evsignal_add(sigterm, NULL) != 0 ||
        evsignal_add(sigint, NULL) != 0) {
        log_error(DEV_COMPONENT, "cannot set up the endpoints or signal handlers");
        goto out;
    }
    if (o.port_file && write_port_file(o.port_file, port) != 0)
        goto out;
    log_info(DEV_COMPONENT, "issuer %s (keys %s, %s): development and tests only", url,
             keys.rsa.kid, keys.ec.kid);
    printf("ready %s\n", url);
    fflush(stdout);

    rc = event_base_dispatch(base) < 0 ? 1 : 0;
out:
    routes_free(routes);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (http)
        evhttp_free(http);
    if (base)
        event_base_free(base);
    SSL_CTX_free(tls);
    keys_free(&keys);
    libevent_global_shutdown();
    return rc;
}
