/*
 * Socket activation (ca/http_server.h): the sd_listen_fds protocol read from the environment.
 * http_listen_fds() runs once per process, so every case runs in a forked child that sets up
 * descriptor 3 and the environment itself; the child reports its checks through its exit code.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ca/http_server.h"
#include "common/log.h"
#include "unit/check.h"

/* A listening TCP socket on 127.0.0.1 moved to descriptor `at`; returns its port or -1. */
static int listening_at(int at, int do_listen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
        (do_listen && listen(fd, 8) != 0) ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
        return -1;
    if (fd != at) {
        if (dup2(fd, at) < 0)
            return -1;
        close(fd);
    }
    return ntohs(sin.sin_port);
}

static void set_env(const char *pid, const char *fds, const char *names)
{
    char self[32];
    snprintf(self, sizeof self, "%ld", (long)getpid());
    setenv("LISTEN_PID", pid ? pid : self, 1);
    if (fds)
        setenv("LISTEN_FDS", fds, 1);
    if (names)
        setenv("LISTEN_FDNAMES", names, 1);
}

static int env_gone(void)
{
    return !getenv("LISTEN_PID") && !getenv("LISTEN_FDS") && !getenv("LISTEN_FDNAMES");
}

static void noop(struct evhttp_request *req, struct event_base *base, void *arg) {}

/* ---- cases (each runs in its own child) ------------------------------------------------ */

static void case_one_socket(void)
{
    CHECK(listening_at(3, 1) > 0, "socket at 3");
    CHECK((fcntl(3, F_GETFD) & FD_CLOEXEC) == 0, "inherited without FD_CLOEXEC");
    set_env(NULL, "1", "web");
    char why[256] = "";
    CHECK(http_listen_fds(why, sizeof why) == 1, "one socket: %s", why);
    CHECK(env_gone(), "LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES unset");
    CHECK((fcntl(3, F_GETFD) & FD_CLOEXEC) != 0, "FD_CLOEXEC set");
    set_env(NULL, "5", NULL);
    CHECK(http_listen_fds(why, sizeof why) == 1, "a second call returns the first result");
}

static void case_other_pid(void)
{
    CHECK(listening_at(3, 1) > 0, "socket at 3");
    char other[32];
    snprintf(other, sizeof other, "%ld", (long)getppid());
    set_env(other, "1", NULL);
    char why[256] = "";
    CHECK(http_listen_fds(why, sizeof why) == 0, "LISTEN_PID of another process: none for us");
    CHECK(env_gone(), "variables unset all the same");
    CHECK((fcntl(3, F_GETFD) & FD_CLOEXEC) == 0, "descriptor 3 left alone");
}

static void case_no_env(void)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    char why[256] = "";
    CHECK(http_listen_fds(why, sizeof why) == 0, "no variables: none");
}

static void case_bad(const char *pid, const char *fds, const char *want)
{
    char why[256] = "";
    set_env(pid, fds, NULL);
    CHECK(http_listen_fds(why, sizeof why) == -1, "LISTEN_PID=%s LISTEN_FDS=%s refused",
          pid ? pid : "self", fds);
    CHECK_STREQ(why, want, "message");
    CHECK(env_gone(), "variables unset");
}

static void case_bad_count(void) { case_bad(NULL, "3x", "socket activation: LISTEN_FDS=3x is not a count of descriptors"); }
static void case_bad_pid(void) { case_bad("abc", "1", "socket activation: LISTEN_PID=abc is not a process id"); }
static void case_too_many(void)
{
    case_bad(NULL, "17", "socket activation: LISTEN_FDS=17: at most 16 listening sockets are "
                         "supported");
}
static void case_not_open(void)
{
    close(3);
    close(4);
    CHECK(listening_at(3, 1) > 0, "socket at 3");
    case_bad(NULL, "2", "socket activation: LISTEN_FDS=2 but descriptor 4 is not open");
}

/* The server takes the passed socket, writes its port, and ignores host/port. */
static void case_server_uses_socket(void)
{
    int port = listening_at(3, 1);
    CHECK(port > 0, "socket at 3");
    set_env(NULL, "1", NULL);
    char pf[1024], why[256] = "";
    const char *tmp = getenv("TMPDIR");
    snprintf(pf, sizeof pf, "%s/fulcrum-listen-fds-%ld.port", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    http_server_options o = {.host = "203.0.113.1", .port = 1, .port_file = pf, .workers = 2};
    http_server *srv = http_server_new(&o, noop, NULL, why, sizeof why);
    CHECK(srv != NULL, "server on the passed socket (host/port unused): %s", why);
    FILE *f = fopen(pf, "r");
    int got = 0;
    CHECK(f && fscanf(f, "%d", &got) == 1 && got == port, "port file %d, want %d", got, port);
    if (f)
        fclose(f);
    unlink(pf);
    /* A second server in the same process does not reuse the first one's sockets. */
    http_server_options o2 = {.host = "127.0.0.1", .port = 0, .workers = 1};
    http_server *srv2 = http_server_new(&o2, noop, NULL, why, sizeof why);
    CHECK(srv2 != NULL, "a second server binds its own socket: %s", why);
    http_server_free(srv2);
    CHECK(fcntl(3, F_GETFD) >= 0, "the second server left descriptor 3 alone");
    http_server_free(srv);
    CHECK(fcntl(3, F_GETFD) < 0, "the server closed the passed socket when freed");
}

/* HTTP_LISTEN_FDS_OFF: binds host:port even with sockets passed. */
static void case_off(void)
{
    CHECK(listening_at(3, 1) > 0, "socket at 3");
    set_env(NULL, "1", NULL);
    char why[256] = "";
    http_server_options o = {.host = "127.0.0.1", .port = 0, .workers = 1,
                             .use_listen_fds = HTTP_LISTEN_FDS_OFF};
    http_server *srv = http_server_new(&o, noop, NULL, why, sizeof why);
    CHECK(srv != NULL, "OFF binds its own socket: %s", why);
    http_server_free(srv);
    CHECK(fcntl(3, F_GETFD) >= 0, "the passed socket left open");
}

static void case_require(void)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    char why[256] = "";
    http_server_options o = {.host = "127.0.0.1", .port = 0, .workers = 1,
                             .use_listen_fds = HTTP_LISTEN_FDS_REQUIRE};
    CHECK(http_server_new(&o, noop, NULL, why, sizeof why) == NULL, "REQUIRE without sockets");
    CHECK_STREQ(why, "socket activation required but no sockets were passed "
                     "($LISTEN_FDS/$LISTEN_PID unset or naming another process)", "message");
}

static void case_not_listening(void)
{
    CHECK(listening_at(3, 0) > 0, "bound, not listening, at 3");
    set_env(NULL, "1", NULL);
    char why[256] = "";
    http_server_options o = {.host = "127.0.0.1", .port = 0, .workers = 1};
    CHECK(http_server_new(&o, noop, NULL, why, sizeof why) == NULL, "refused");
    CHECK_STREQ(why, "socket activation: descriptor 3 is not listening (Accept=yes is not "
                     "supported: use Accept=no)", "message");
}

static void case_not_socket(void)
{
    int fd = open("/dev/null", O_RDONLY);
    CHECK(fd >= 0 && dup2(fd, 3) == 3, "a file at 3");
    if (fd != 3)
        close(fd);
    set_env(NULL, "1", NULL);
    char why[256] = "";
    http_server_options o = {.host = "127.0.0.1", .port = 0, .workers = 1};
    CHECK(http_server_new(&o, noop, NULL, why, sizeof why) == NULL, "refused");
    CHECK(strncmp(why, "socket activation: descriptor 3 is not a socket (", 49) == 0,
          "message: %s", why);
}

static void run(const char *name, void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        fflush(NULL);
        _exit(check_failed ? 1 : 0);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0,
          "case %s", name);
}

int main(void)
{
    log_set_level(LOG_LVL_ERROR);
    run("one socket", case_one_socket);
    run("other pid", case_other_pid);
    run("no env", case_no_env);
    run("bad count", case_bad_count);
    run("bad pid", case_bad_pid);
    run("too many", case_too_many);
    run("not open", case_not_open);
    run("server uses socket", case_server_uses_socket);
    run("off", case_off);
    run("require", case_require);
    run("not listening", case_not_listening);
    run("not a socket", case_not_socket);
    CHECK_MAIN_END();
}
