/*
 * Socket activation: `fulcrum serve` started as systemd starts a socket-activated service (the
 * listening socket as descriptor 3, LISTEN_FDS=1, LISTEN_PID=<its pid>) serves on that socket,
 * writes its port to --port-file, and binds nothing else (not the --host/--port it was given).
 * Sockets that are not listening stream sockets are refused at start-up with a clear message.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "integration/harness.h"
#include "unit/check.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A TCP socket on 127.0.0.1 with a kernel-chosen port; listening unless listen_too is 0. */
static int tcp_socket(int type, int listen_too, int *port)
{
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
        (listen_too && listen(fd, 64) != 0) ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(sin.sin_port);
    return fd;
}

static unsigned long inode_of(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (unsigned long)st.st_ino : 0;
}

/* Inodes of the sockets among /proc/<pid>/fd. Returns how many (at most max). */
static int socket_inodes(pid_t pid, unsigned long *out, int max)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%ld/fd", (long)pid);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        char path[320], target[128];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        unsigned long ino;
        if (sscanf(target, "socket:[%lu]", &ino) == 1)
            out[n++] = ino;
    }
    closedir(d);
    return n;
}

/* Counts the LISTEN-state TCP sockets (IPv4 and IPv6) of the process's network namespace whose
 * inode is one of `inodes`; *port receives the local port of the last one found. */
static int listening_sockets_of(pid_t pid, const unsigned long *inodes, int ninodes, int *port)
{
    int found = 0;
    const char *tables[] = {"tcp", "tcp6"};
    for (int t = 0; t < 2; t++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/net/%s", (long)pid, tables[t]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char line[512];
        if (!fgets(line, sizeof line, f)) { /* header */
            fclose(f);
            continue;
        }
        while (fgets(line, sizeof line, f)) {
            /* sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode */
            char local[64], remote[64];
            unsigned st;
            unsigned long ino;
            if (sscanf(line, "%*s %63s %63s %x %*s %*s %*s %*s %*s %lu", local, remote, &st,
                       &ino) != 4 || st != 0x0A)
                continue;
            for (int i = 0; i < ninodes; i++) {
                if (inodes[i] == ino) {
                    found++;
                    const char *colon = strrchr(local, ':');
                    if (colon)
                        *port = (int)strtol(colon + 1, NULL, 16);
                    break; /* the fd list holds dups of one socket: count the socket once */
                }
            }
        }
        fclose(f);
    }
    return found;
}

static int wait_port_file(const char *path, h_proc *p, int *port)
{
    for (int i = 0; i < 1000; i++) { /* ~20 s */
        char *text = h_read_file(path, NULL);
        if (text) {
            *port = atoi(text);
            free(text);
            if (*port > 0)
                return 0;
        }
        if (!h_proc_alive(p))
            return -1;
        sleep_ms(20);
    }
    return -1;
}

static void test_serves_on_passed_socket(const h_issuer *iss, const char *bin)
{
    char config[4200], port_file[4200], config_text[512];
    snprintf(config, sizeof config, "%s/sa-config.json", h_tmpdir());
    snprintf(port_file, sizeof port_file, "%s/sa.port", h_tmpdir());
    snprintf(config_text, sizeof config_text,
             "{\"OIDCIssuers\":{\"%s\":{\"IssuerURL\":\"%s\",\"ClientID\":\"sigstore\","
             "\"Type\":\"email\"}}}\n",
             iss->url, iss->url);
    CHECK(h_write_file(config, config_text) == 0, "config written");

    int port = 0;
    int fd = tcp_socket(SOCK_STREAM, 1, &port);
    CHECK(fd >= 0, "pre-bound listening socket: %s", strerror(errno));
    if (fd < 0)
        return;
    unsigned long ino = inode_of(fd);
    /* A port that is free: the server must NOT bind it, since systemd passed a socket. */
    int other = h_free_port();
    CHECK(other > 0 && other != port, "a second free port");
    char other_s[16];
    snprintf(other_s, sizeof other_s, "%d", other);
    char *argv[] = {(char *)bin, "serve", "--host", "127.0.0.1", "--port", other_s,
                    "--port-file", port_file, "--config-path", config, "--ca", "ephemeralca",
                    "--ct-log-url", "", "--workers", "2", NULL};
    h_proc p;
    int rc = h_proc_start_listen_fds(&p, "server-sa", argv, &fd, 1, "fulcrum.socket");
    CHECK(rc == 0, "started with LISTEN_FDS=1");
    close(fd); /* from now on only the server holds the socket */
    if (rc != 0)
        return;

    int written = 0;
    CHECK(wait_port_file(port_file, &p, &written) == 0, "port file written");
    CHECK(written == port, "--port-file holds the passed socket's port: %d, want %d", written,
          port);

    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", port);
    h_response r;
    int ok = 0;
    for (int i = 0; i < 500 && !ok; i++) {
        ok = h_get(url, &r) == 0 && r.status == 200;
        if (ok)
            CHECK_STREQ(r.body, "{\"status\":\"SERVING\"}", "/healthz body on the passed socket");
        h_response_free(&r);
        if (!ok)
            sleep_ms(20);
    }
    CHECK(ok, "/healthz answers 200 on the passed socket");

    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v2/trustBundle", port);
    CHECK(h_get(url, &r) == 0 && r.status == 200, "trustBundle on the passed socket: %ld",
          r.status);
    h_response_free(&r);

    /* Nothing listens on the --port it was given. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", other);
    CHECK(h_get(url, &r) != 0 && r.status == 0, "--port %d was not bound (status %ld)", other,
          r.status);
    h_response_free(&r);

    /* The only listening socket the process holds is the one it was given. */
    unsigned long inodes[256];
    int n = socket_inodes(p.pid, inodes, 256);
    CHECK(n >= 1, "the server holds sockets (%d)", n);
    int holds_passed = 0;
    for (int i = 0; i < n; i++)
        holds_passed |= inodes[i] == ino;
    CHECK(holds_passed, "the server holds the passed socket (inode %lu)", ino);
    int lport = 0;
    int listening = listening_sockets_of(p.pid, inodes, n > 0 ? n : 0, &lport);
    CHECK(listening == 1, "exactly one listening TCP socket in the server: %d", listening);
    CHECK(lport == port, "and it is on the passed port: %d, want %d", lport, port);

    char *log = h_read_file(p.stderr_path, NULL);
    CHECK(log && strstr(log, "listening on 1 socket passed by the service manager (LISTEN_FDS; "
                             "--host/--port not used): 127.0.0.1:") &&
              strstr(log, "(fd 3, fulcrum.socket)"),
          "the log says the socket came from the service manager");
    free(log);

    CHECK(h_proc_stop(&p, 10000) == 0, "clean stop on SIGTERM");
}

/* Two sockets (as two ListenStream= lines): both are served; the port file gets the first. */
static void test_two_sockets(const char *bin)
{
    int p1 = 0, p2 = 0;
    int fds[2] = {tcp_socket(SOCK_STREAM, 1, &p1), tcp_socket(SOCK_STREAM, 1, &p2)};
    CHECK(fds[0] >= 0 && fds[1] >= 0, "two listening sockets");
    if (fds[0] < 0 || fds[1] < 0)
        return;
    char config[4200], port_file[4200];
    snprintf(config, sizeof config, "%s/two.json", h_tmpdir());
    snprintf(port_file, sizeof port_file, "%s/two.port", h_tmpdir());
    CHECK(h_write_file(config, "{\"OIDCIssuers\":{}}\n") == 0, "two: config");
    char *argv[] = {(char *)bin, "serve", "--port-file", port_file, "--config-path", config,
                    "--ca", "ephemeralca", "--ct-log-url", "", "--workers", "2", NULL};
    h_proc p;
    int rc = h_proc_start_listen_fds(&p, "server-two", argv, fds, 2, "first:second");
    close(fds[0]);
    close(fds[1]);
    CHECK(rc == 0, "two: started with LISTEN_FDS=2");
    if (rc != 0)
        return;
    int written = 0;
    CHECK(wait_port_file(port_file, &p, &written) == 0 && written == p1,
          "two: port file holds the first socket's port (%d, want %d)", written, p1);
    int ports[2] = {p1, p2};
    for (int i = 0; i < 2; i++) {
        char url[128];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", ports[i]);
        h_response r;
        CHECK(h_get(url, &r) == 0 && r.status == 200, "two: /healthz on socket %d: %ld", i + 1,
              r.status);
        h_response_free(&r);
    }
    char *log = h_read_file(p.stderr_path, NULL);
    CHECK(log && strstr(log, "listening on 2 sockets passed by the service manager") &&
              strstr(log, "(fd 3, first)") && strstr(log, "(fd 4, second)"),
          "two: the log names both sockets");
    free(log);
    CHECK(h_proc_stop(&p, 10000) == 0, "two: clean stop");
}

/* A passed descriptor that is not a listening stream socket: start-up fails, naming it. */
static void test_refused(const char *bin, int type, int listen_too, const char *name,
                         const char *want)
{
    int port = 0;
    int fd = tcp_socket(type, listen_too, &port);
    CHECK(fd >= 0, "%s: socket", name);
    if (fd < 0)
        return;
    char config[4200];
    snprintf(config, sizeof config, "%s/%s.json", h_tmpdir(), name);
    CHECK(h_write_file(config, "{\"OIDCIssuers\":{}}\n") == 0, "%s: config", name);
    char *argv[] = {(char *)bin, "serve", "--host", "127.0.0.1", "--port", "0", "--ca",
                    "ephemeralca", "--ct-log-url", "", "--config-path", config, NULL};
    h_proc p;
    int rc = h_proc_start_listen_fds(&p, name, argv, &fd, 1, NULL);
    close(fd);
    CHECK(rc == 0, "%s: started", name);
    if (rc != 0)
        return;
    for (int i = 0; i < 1000 && h_proc_alive(&p); i++)
        sleep_ms(20);
    int code = h_proc_stop(&p, 5000);
    CHECK(code == 1, "%s: exit code %d, want 1", name, code);
    char *log = h_read_file(p.stderr_path, NULL);
    CHECK(log && strstr(log, want), "%s: the log names the problem (%s)", name, want);
    free(log);
}

int main(void)
{
    if (h_init("socket_activation") != 0)
        return 1;
    const char *bin = h_env("FULCRUM_BIN");
    h_issuer iss;
    if (!bin || h_issuer_start(&iss) != 0) {
        h_finish(1);
        return 1;
    }
    test_serves_on_passed_socket(&iss, bin);
    test_two_sockets(bin);
    test_refused(bin, SOCK_STREAM, 0, "not-listening",
                 "socket activation: descriptor 3 is not listening");
    test_refused(bin, SOCK_DGRAM, 0, "datagram",
                 "socket activation: descriptor 3 is not a stream socket");
    h_finish(check_failed);
    CHECK_MAIN_END();
}
