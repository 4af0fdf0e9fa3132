#include "ca/metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"

struct metrics_server {
    metrics_registry *reg;
    struct event_base *base;
    struct evhttp *http;
    pthread_t thread;
    int started;
    int port;
};

static void on_request(struct evhttp_request *req, void *arg)
{
    metrics_server *m = arg;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(out, "Allow", "GET");
        evhttp_send_reply(req, 405, "Method Not Allowed", NULL);
        return;
    }
    size_t len = 0;
    char *text = metrics_render(m->reg, &len);
    if (!text) {
        evhttp_send_reply(req, 500, "Internal Server Error", NULL);
        return;
    }
    struct evbuffer *buf = evbuffer_new();
    if (buf)
        evbuffer_add(buf, text, len);
    free(text);
    evhttp_add_header(out, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", buf);
    if (buf)
        evbuffer_free(buf);
}

static void *serve_main(void *arg)
{
    pthread_setname_np(pthread_self(), "metrics-http");
    metrics_server *m = arg;
    event_base_dispatch(m->base);
    return NULL;
}

static int write_port_file(const char *path, int port)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

metrics_server *metrics_server_start(const char *host, int port, const char *port_file,
                                     metrics_registry *r, char *why, size_t whylen)
{
    metrics_server *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    m->reg = r;
    if (!host || !*host)
        host = "0.0.0.0";
    m->base = event_base_new();
    m->http = m->base ? evhttp_new(m->base) : NULL;
    if (!m->http) {
        snprintf(why, whylen, "cannot create the metrics server's event loop");
        metrics_server_stop(m);
        return NULL;
    }
    evhttp_set_timeout(m->http, 10); /* Fulcio: --read-header-timeout 10s on this server */
    evhttp_set_max_body_size(m->http, 4096);
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(m->http, on_request, m);
    struct evhttp_bound_socket *bound =
        evhttp_bind_socket_with_handle(m->http, host, (ev_uint16_t)port);
    if (!bound) {
        snprintf(why, whylen, "cannot listen on %s:%d for metrics (--metrics-port): %s", host,
                 port, strerror(errno));
        metrics_server_stop(m);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sl) == 0)
        m->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (port_file && *port_file && write_port_file(port_file, m->port) != 0) {
        snprintf(why, whylen, "cannot write --metrics-port-file %.300s: %s", port_file,
                 strerror(errno));
        metrics_server_stop(m);
        return NULL;
    }
    if (pthread_create(&m->thread, NULL, serve_main, m) != 0) {
        snprintf(why, whylen, "cannot start the metrics server thread");
        metrics_server_stop(m);
        return NULL;
    }
    m->started = 1;
    log_info("metrics", "Prometheus metrics on http://%s:%d/metrics", host, m->port);
    return m;
}

int metrics_server_port(const metrics_server *m)
{
    return m ? m->port : -1;
}

void metrics_server_stop(metrics_server *m)
{
    if (!m)
        return;
    if (m->started) {
        event_base_loopexit(m->base, NULL);
        pthread_join(m->thread, NULL);
    }
    if (m->http)
        evhttp_free(m->http);
    if (m->base)
        event_base_free(m->base);
    free(m);
}
