/*
 * tests/integration/harness.c: temp dir, child processes (dev issuer, fulcrum serve), clean-up.
 */
#include "integration/harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define H_MAX_CHILDREN 16
#define H_START_DEADLINE_MS 20000
#define H_POLL_MS 20

/* Every child ever started, for emergency kills (async-signal-safe) and log dumps. */
static struct {
    pid_t pid; /* 0 once reaped */
    char name[32];
    char stdout_path[4096];
    char stderr_path[4096];
    int valgrind;
} g_children[H_MAX_CHILDREN];
static volatile sig_atomic_t g_nchildren;
static int g_valgrind_errors; /* children under valgrind that exited with 99 */

static const int g_fatal_signals[] = {SIGINT,  SIGTERM, SIGHUP, SIGQUIT, SIGABRT,
                                      SIGSEGV, SIGBUS,  SIGFPE, SIGILL};
static char g_tmpdir[1024];
static int g_initialised, g_finished, g_server_seq;

static void harness_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void harness_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("harness: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* ---- valgrind, scale ------------------------------------------------------------------- */

int h_valgrind(void)
{
    const char *v = getenv("FULCRUM_VALGRIND");
    return v && strcmp(v, "1") == 0;
}

int h_slow(void)
{
    return h_valgrind() ? 10 : 1;
}

long h_scaled(long n, long min)
{
    const char *v = getenv("FULCRUM_TEST_SCALE");
    double f = v && *v ? strtod(v, NULL) : 1.0;
    if (!(f > 0))
        f = 1.0;
    long out = (long)(n * f + 0.5);
    return out < min ? min : out;
}

/* Under FULCRUM_VALGRIND=1, `FULCRUM_BIN serve ...` and `FULCRUM_BIN ctlog serve ...` become
 * `valgrind <options> FULCRUM_BIN ...`: a malloc'd argv (the strings are argv's or static)
 * returned in *out, or NULL in *out when argv runs as is. Returns -1 when valgrind is wanted
 * but missing. */
static int valgrind_argv(char *const argv[], char ***out)
{
    static char valgrind[4096], supp[4200];
    *out = NULL;
    const char *bin = getenv("FULCRUM_BIN");
    if (!h_valgrind() || !bin || strcmp(argv[0], bin) != 0 || !argv[1])
        return 0;
    int serve = strcmp(argv[1], "serve") == 0 ||
                (strcmp(argv[1], "ctlog") == 0 && argv[2] && strcmp(argv[2], "serve") == 0);
    if (!serve)
        return 0;
    if (!valgrind[0] && h_find_tool("valgrind", valgrind, sizeof valgrind) != 0)
        return -1;
    const char *src = getenv("FULCRUM_SOURCE_DIR");
    if (src && *src)
        snprintf(supp, sizeof supp, "--suppressions=%s/tests/valgrind.supp", src);
    static char *const opts[] = {"--error-exitcode=99", "--leak-check=full",
                                 "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
                                 "--track-fds=no", "--num-callers=30", "-q",
                                 /* the release binary's malloc may be jemalloc's (CMake
                                    FULCRUM_JEMALLOC): memcheck replaces it there too */
                                 "--soname-synonyms=somalloc=*jemalloc*"};
    size_t nopts = sizeof opts / sizeof opts[0], argc = 0;
    while (argv[argc])
        argc++;
    char **v = calloc(argc + nopts + 3, sizeof *v);
    if (!v)
        return -1;
    size_t k = 0;
    v[k++] = valgrind;
    for (size_t i = 0; i < nopts; i++)
        v[k++] = opts[i];
    if (supp[0] && access(supp + strlen("--suppressions="), R_OK) == 0)
        v[k++] = supp;
    for (size_t i = 0; i < argc; i++)
        v[k++] = argv[i];
    v[k] = NULL;
    *out = v;
    return 0;
}

/* ---- clean-up -------------------------------------------------------------------------- */

static void kill_all_children(void)
{
    for (int i = 0; i < g_nchildren; i++)
        if (g_children[i].pid > 0)
            kill(g_children[i].pid, SIGKILL);
}

/* Async-signal-safe: write(2) the last 32 KiB of a file to stderr. */
static void dump_file_raw(const char *label, const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    if (lseek(fd, -32768, SEEK_END) < 0)
        lseek(fd, 0, SEEK_SET);
    (void)!write(2, "----- ", 6);
    (void)!write(2, label, strlen(label));
    (void)!write(2, " -----\n", 7);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        (void)!write(2, buf, (size_t)n);
    (void)!write(2, "\n----- end -----\n", 17);
    close(fd);
}

/* The test is dying: kill and reap the children, show their logs, remove the temp dir (with
 * fork+exec of rm, as nothing else here is async-signal-safe), then die of the same signal. */
static void on_fatal_signal(int sig)
{
    kill_all_children();
    for (int i = 0; i < g_nchildren; i++)
        if (g_children[i].pid > 0)
            waitpid(g_children[i].pid, NULL, 0);
    for (int i = 0; i < g_nchildren; i++) {
        dump_file_raw(g_children[i].name, g_children[i].stderr_path);
        dump_file_raw(g_children[i].name, g_children[i].stdout_path);
    }
    if (g_tmpdir[0]) {
        pid_t rm = fork();
        if (rm == 0) {
            char *const argv[] = {"rm", "-rf", g_tmpdir, NULL};
            execv("/bin/rm", argv);
            _exit(127);
        }
        if (rm > 0)
            waitpid(rm, NULL, 0);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void dump_file(const char *label, const char *path)
{
    size_t len = 0;
    char *text = h_read_file(path, &len);
    if (!text)
        return;
    const size_t max = 32 * 1024;
    const char *start = text;
    if (len > max)
        start = text + (len - max);
    fprintf(stderr, "----- %s (%s%zu bytes) -----\n%s%s----- end %s -----\n", label,
            len > max ? "last 32 KiB of " : "", len, start,
            len && text[len - 1] != '\n' ? "\n" : "", label);
    free(text);
}

void h_dump_logs(void)
{
    char label[64];
    for (int i = 0; i < g_nchildren; i++) {
        snprintf(label, sizeof label, "%s stderr", g_children[i].name);
        dump_file(label, g_children[i].stderr_path);
        snprintf(label, sizeof label, "%s stdout", g_children[i].name);
        dump_file(label, g_children[i].stdout_path);
    }
}

void h_finish(int failed)
{
    if (!g_initialised || g_finished)
        return;
    g_finished = 1;
    for (int i = 0; i < g_nchildren; i++) {
        if (g_children[i].pid <= 0)
            continue;
        h_proc p;
        memset(&p, 0, sizeof p);
        p.pid = g_children[i].pid;
        p.valgrind = g_children[i].valgrind;
        snprintf(p.name, sizeof p.name, "%s", g_children[i].name);
        h_proc_stop(&p, 3000);
    }
    if (g_valgrind_errors)
        harness_err("%d process(es) under valgrind reported memcheck errors (exit code 99; "
                    "their stderr follows)", g_valgrind_errors);
    if (failed || g_valgrind_errors)
        h_dump_logs();
    if (g_tmpdir[0])
        nftw(g_tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    curl_global_cleanup();
    if (g_valgrind_errors) {
        fflush(NULL);
        _exit(1);
    }
}

static void at_exit(void)
{
    /* Reached without h_finish(): the test bailed out early, so show the logs. */
    h_finish(1);
}

int h_init(const char *test_name)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s/fulcrum-%s-XXXXXX", base, test_name);
    if (!mkdtemp(g_tmpdir)) {
        harness_err("mkdtemp %s: %s", g_tmpdir, strerror(errno));
        g_tmpdir[0] = 0;
        return -1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        harness_err("curl_global_init failed");
        return -1;
    }
    g_initialised = 1;
    atexit(at_exit);
    for (size_t i = 0; i < sizeof g_fatal_signals / sizeof g_fatal_signals[0]; i++)
        signal(g_fatal_signals[i], on_fatal_signal);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

const char *h_tmpdir(void)
{
    return g_tmpdir;
}

const char *h_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        harness_err("environment variable %s is not set (run through ctest)", name);
        return NULL;
    }
    return v;
}

char *h_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

int h_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        harness_err("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    int ok = fputs(text, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    return ok ? 0 : -1;
}

/* ---- child processes ------------------------------------------------------------------- */

/* Set by h_proc_start_listen_fds() for the one spawn() it makes: sockets to hand the child as
 * descriptors 3.. with the environment of systemd's socket activation. */
static struct {
    const int *fds;
    int nfds;
    char **envp; /* environ without LISTEN_*, plus LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID */
    char *pid_var; /* the "LISTEN_PID=" entry, completed in the child */
} g_spawn_listen;

/* In the child of spawn(): moves the sockets to 3.., sets LISTEN_PID to this process. Only
 * async-signal-safe calls. Returns 0 or -1. */
static int child_listen_fds(void)
{
    int moved[64];
    int n = g_spawn_listen.nfds;
    for (int i = 0; i < n; i++) /* first out of the way of 3..3+n-1 */
        if ((moved[i] = fcntl(g_spawn_listen.fds[i], F_DUPFD, 3 + n)) < 0)
            return -1;
    for (int i = 0; i < n; i++) {
        if (dup2(moved[i], 3 + i) < 0) /* dup2 leaves FD_CLOEXEC clear: inherited */
            return -1;
        close(moved[i]);
    }
    char digits[24];
    int nd = 0;
    for (unsigned long v = (unsigned long)getpid(); v || nd == 0; v /= 10)
        digits[nd++] = (char)('0' + v % 10);
    char *w = g_spawn_listen.pid_var + strlen("LISTEN_PID=");
    while (nd)
        *w++ = digits[--nd];
    *w = '\0';
    return 0;
}

static int spawn(h_proc *p, const char *name, char *const argv[])
{
    if (!g_initialised) {
        harness_err("h_init() was not called");
        return -1;
    }
    if (g_nchildren >= H_MAX_CHILDREN) {
        harness_err("too many children");
        return -1;
    }
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->stdout_path, sizeof p->stdout_path, "%s/%s.stdout", g_tmpdir, name);
    snprintf(p->stderr_path, sizeof p->stderr_path, "%s/%s.stderr", g_tmpdir, name);

    char **vg_argv = NULL;
    if (valgrind_argv(argv, &vg_argv) != 0) {
        harness_err("FULCRUM_VALGRIND=1 but valgrind is not on PATH");
        return -1;
    }
    if (vg_argv)
        argv = vg_argv;

    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        harness_err("fork: %s", strerror(errno));
        free(vg_argv);
        return -1;
    }
    if (pid == 0) {
        for (size_t i = 0; i < sizeof g_fatal_signals / sizeof g_fatal_signals[0]; i++)
            signal(g_fatal_signals[i], SIG_DFL); /* the parent's handlers are not for the child */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int in = open("/dev/null", O_RDONLY);
        int out = open(p->stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(p->stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        if (chdir(g_tmpdir) != 0)
            _exit(127);
        signal(SIGPIPE, SIG_DFL); /* ignored dispositions survive exec; caught ones do not */
        if (g_spawn_listen.envp) {
            if (child_listen_fds() != 0)
                _exit(127);
            execve(argv[0], argv, g_spawn_listen.envp);
        } else {
            execv(argv[0], argv);
        }
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    p->valgrind = vg_argv != NULL;
    free(vg_argv);
    p->pid = pid;
    int i = g_nchildren;
    g_children[i].pid = pid;
    g_children[i].valgrind = p->valgrind;
    snprintf(g_children[i].name, sizeof g_children[i].name, "%s", p->name);
    memcpy(g_children[i].stdout_path, p->stdout_path, sizeof p->stdout_path);
    memcpy(g_children[i].stderr_path, p->stderr_path, sizeof p->stderr_path);
    g_nchildren = i + 1;
    return 0;
}

static void forget_child(pid_t pid)
{
    for (int i = 0; i < g_nchildren; i++)
        if (g_children[i].pid == pid)
            g_children[i].pid = 0;
}

static int exit_code_of(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

/* A child was reaped: remember memcheck errors of one under valgrind. */
static void note_exit(const h_proc *p, int status)
{
    if (p->valgrind && WIFEXITED(status) && WEXITSTATUS(status) == 99) {
        g_valgrind_errors++;
        harness_err("%s: valgrind memcheck errors (exit code 99), see %s", p->name,
                    p->stderr_path[0] ? p->stderr_path : "its stderr");
    }
}

int h_proc_alive(h_proc *p)
{
    if (p->pid <= 0 || p->exited)
        return 0;
    int status;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == 0)
        return 1;
    if (r == p->pid) {
        p->exited = 1;
        p->wait_status = status;
        note_exit(p, status);
        forget_child(p->pid);
    }
    return 0;
}

int h_proc_stop(h_proc *p, int timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    if (p->exited)
        return exit_code_of(p->wait_status);
    kill(p->pid, SIGTERM);
    timeout_ms *= h_slow();
    long deadline = now_ms() + timeout_ms;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid)
            break;
        if (r < 0 && errno != EINTR) {
            harness_err("waitpid %s: %s", p->name, strerror(errno));
            forget_child(p->pid);
            return -1;
        }
        if (now_ms() > deadline) {
            harness_err("%s did not exit %d ms after SIGTERM; sending SIGKILL", p->name,
                        timeout_ms);
            kill(p->pid, SIGKILL);
            while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
            }
            break;
        }
        sleep_ms(H_POLL_MS);
    }
    p->exited = 1;
    p->wait_status = status;
    note_exit(p, status);
    forget_child(p->pid);
    return exit_code_of(status);
}

int h_proc_start(h_proc *p, const char *name, char *const argv[])
{
    return spawn(p, name, argv);
}

int h_proc_start_listen_fds(h_proc *p, const char *name, char *const argv[], const int *fds,
                            int nfds, const char *fdnames)
{
    extern char **environ;
    if (nfds < 1 || nfds > 64) {
        harness_err("h_proc_start_listen_fds: %d sockets (1..64)", nfds);
        return -1;
    }
    size_t count = 0;
    while (environ[count])
        count++;
    char **envp = calloc(count + 4, sizeof *envp);
    char fds_var[32], pid_var[48], *names_var = NULL;
    if (!envp)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < count; i++)
        if (strncmp(environ[i], "LISTEN_", 7) != 0)
            envp[k++] = environ[i];
    snprintf(fds_var, sizeof fds_var, "LISTEN_FDS=%d", nfds);
    envp[k++] = fds_var;
    if (fdnames) {
        size_t len = strlen("LISTEN_FDNAMES=") + strlen(fdnames) + 1;
        names_var = malloc(len);
        if (!names_var) {
            free(envp);
            return -1;
        }
        snprintf(names_var, len, "LISTEN_FDNAMES=%s", fdnames);
        envp[k++] = names_var;
    }
    snprintf(pid_var, sizeof pid_var, "LISTEN_PID=");
    envp[k++] = pid_var;
    envp[k] = NULL;
    g_spawn_listen.fds = fds;
    g_spawn_listen.nfds = nfds;
    g_spawn_listen.envp = envp;
    g_spawn_listen.pid_var = pid_var;
    int rc = spawn(p, name, argv);
    memset(&g_spawn_listen, 0, sizeof g_spawn_listen);
    free(names_var);
    free(envp);
    return rc;
}

int h_run(const char *name, char *const argv[], int timeout_ms, char **stderr_text)
{
    h_proc p;
    if (stderr_text)
        *stderr_text = NULL;
    if (spawn(&p, name, argv) != 0)
        return -1;
    timeout_ms *= h_slow();
    long deadline = now_ms() + timeout_ms;
    while (h_proc_alive(&p)) {
        if (now_ms() > deadline) {
            harness_err("%s still running after %d ms", name, timeout_ms);
            h_proc_stop(&p, 1000);
            return -1;
        }
        sleep_ms(H_POLL_MS);
    }
    if (stderr_text)
        *stderr_text = h_read_file(p.stderr_path, NULL);
    return exit_code_of(p.wait_status);
}

/* ---- dev issuer ------------------------------------------------------------------------ */

/* Looks for "ready http://127.0.0.1:<port>" in the child's stdout file. */
static int read_ready_line(const h_proc *p, int *port)
{
    char *text = h_read_file(p->stdout_path, NULL);
    if (!text)
        return 0;
    int found = 0;
    const char *line = strstr(text, "ready http://127.0.0.1:");
    if (line && strchr(line, '\n')) {
        long v = strtol(line + strlen("ready http://127.0.0.1:"), NULL, 10);
        if (v > 0 && v < 65536) {
            *port = (int)v;
            found = 1;
        }
    }
    free(text);
    return found;
}

int h_issuer_start(h_issuer *iss)
{
    return h_issuer_start_named(iss, "issuer");
}

int h_issuer_start_named(h_issuer *iss, const char *name)
{
    memset(iss, 0, sizeof *iss);
    const char *bin = h_env("FULCRUM_DEV_ISSUER_BIN");
    if (!bin)
        return -1;
    if (!name || !*name || strlen(name) > 31 || strspn(name, "abcdefghijklmnopqrstuvwxyz"
                                                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                             "0123456789-") != strlen(name)) {
        harness_err("h_issuer_start_named: bad name \"%s\"", name ? name : "(null)");
        return -1;
    }
    char port_file[4200], key_dir[4200];
    snprintf(port_file, sizeof port_file, "%s/%s.port", g_tmpdir, name);
    snprintf(key_dir, sizeof key_dir, "%s/%s-keys", g_tmpdir, name);
    if (mkdir(key_dir, 0700) != 0 && errno != EEXIST) {
        harness_err("mkdir %s: %s", key_dir, strerror(errno));
        return -1;
    }
    char *argv[] = {(char *)bin,   "--host",   "127.0.0.1", "--port", "0", "--port-file",
                    port_file,     "--key-dir", key_dir,     NULL};
    if (spawn(&iss->proc, name, argv) != 0)
        return -1;
    long deadline = now_ms() + (long)H_START_DEADLINE_MS * h_slow();
    while (!read_ready_line(&iss->proc, &iss->port)) {
        if (!h_proc_alive(&iss->proc)) {
            harness_err("dev issuer exited before it was ready (status %d)",
                        exit_code_of(iss->proc.wait_status));
            h_dump_logs();
            return -1;
        }
        if (now_ms() > deadline) {
            harness_err("dev issuer not ready after %d ms", H_START_DEADLINE_MS);
            h_dump_logs();
            return -1;
        }
        sleep_ms(H_POLL_MS);
    }
    snprintf(iss->url, sizeof iss->url, "http://127.0.0.1:%d", iss->port);
    return 0;
}

/* Looks for "ready http[s]://127.0.0.1:<port>" in the child's stdout file; fills url. */
static int read_ready_url(const h_proc *p, char *url, size_t urllen, int *port)
{
    char *text = h_read_file(p->stdout_path, NULL);
    if (!text)
        return 0;
    int found = 0;
    const char *line = strstr(text, "ready http");
    if (line && strchr(line, '\n')) {
        const char *u = line + strlen("ready ");
        const char *host = strstr(u, "://127.0.0.1:");
        size_t n = strcspn(u, "\n");
        if (host && host < u + n && n < urllen) {
            long v = strtol(host + strlen("://127.0.0.1:"), NULL, 10);
            if (v > 0 && v < 65536) {
                *port = (int)v;
                memcpy(url, u, n);
                url[n] = 0;
                found = 1;
            }
        }
    }
    free(text);
    return found;
}

int h_issuer_start_opts(h_issuer *iss, const h_issuer_opts *o)
{
    memset(iss, 0, sizeof *iss);
    const char *bin = h_env("FULCRUM_DEV_ISSUER_BIN");
    if (!bin)
        return -1;
    const char *name = o && o->name ? o->name : "issuer";
    char port_file[4200], key_dir[4200], port[16];
    snprintf(port_file, sizeof port_file, "%s/%s.port", g_tmpdir, name);
    if (o && o->key_dir)
        snprintf(key_dir, sizeof key_dir, "%s", o->key_dir);
    else
        snprintf(key_dir, sizeof key_dir, "%s/%s-keys", g_tmpdir, name);
    snprintf(port, sizeof port, "%d", o ? o->port : 0);
    if (mkdir(key_dir, 0700) != 0 && errno != EEXIST) {
        harness_err("mkdir %s: %s", key_dir, strerror(errno));
        return -1;
    }
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)bin;
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--port-file";
    argv[n++] = port_file;
    argv[n++] = "--key-dir";
    argv[n++] = key_dir;
    if (o && o->tls_cert) {
        argv[n++] = "--tls-cert";
        argv[n++] = (char *)o->tls_cert;
        argv[n++] = "--tls-key";
        argv[n++] = (char *)(o->tls_key ? o->tls_key : "");
    }
    argv[n] = NULL;
    if (spawn(&iss->proc, name, argv) != 0)
        return -1;
    long deadline = now_ms() + (long)H_START_DEADLINE_MS * h_slow();
    while (!read_ready_url(&iss->proc, iss->url, sizeof iss->url, &iss->port)) {
        if (!h_proc_alive(&iss->proc)) {
            harness_err("dev issuer %s exited before it was ready (status %d)", name,
                        exit_code_of(iss->proc.wait_status));
            h_dump_logs();
            return -1;
        }
        if (now_ms() > deadline) {
            harness_err("dev issuer %s not ready after %d ms", name, H_START_DEADLINE_MS);
            h_dump_logs();
            return -1;
        }
        sleep_ms(H_POLL_MS);
    }
    return 0;
}

int h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
        port = ntohs(sin.sin_port);
    close(fd);
    return port;
}

static char *token_from(h_response *r, int rc, const char *what)
{
    char *tok = NULL;
    if (rc != 0 || r->status != 200) {
        harness_err("dev issuer %s: status %ld %s %s", what, r->status, r->curl_error,
                    r->body ? r->body : "");
    } else {
        size_t n = r->body_len;
        while (n > 0 && (r->body[n - 1] == '\n' || r->body[n - 1] == '\r' || r->body[n - 1] == ' '))
            n--;
        tok = strndup(r->body, n);
    }
    h_response_free(r);
    return tok;
}

json_t *h_issuer_stats(const h_issuer *iss)
{
    char url[128];
    snprintf(url, sizeof url, "%s/stats", iss->url);
    h_response r;
    json_t *j = NULL;
    if (h_get(url, &r) != 0 || r.status != 200)
        harness_err("dev issuer GET /stats: status %ld %s", r.status, r.curl_error);
    else
        j = h_json(&r);
    h_response_free(&r);
    return j;
}

char *h_issuer_token(const h_issuer *iss, const char *query)
{
    char url[8192];
    snprintf(url, sizeof url, "%s/token%s%s", iss->url, query && *query ? "?" : "",
             query ? query : "");
    h_response r;
    int rc = h_get(url, &r);
    return token_from(&r, rc, url);
}

char *h_issuer_token_json(const h_issuer *iss, const char *json_body)
{
    char url[128];
    snprintf(url, sizeof url, "%s/token", iss->url);
    h_response r;
    int rc = h_post_json(url, json_body, NULL, &r);
    return token_from(&r, rc, "POST /token");
}

/* ---- server ---------------------------------------------------------------------------- */

static int read_port_file(const char *path, int *port)
{
    char *text = h_read_file(path, NULL);
    if (!text)
        return 0;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    int ok = end != text && v > 0 && v < 65536;
    if (ok)
        *port = (int)v;
    free(text);
    return ok;
}

int h_server_start(h_server *srv, const h_server_opts *opts)
{
    memset(srv, 0, sizeof *srv);
    const char *bin = h_env("FULCRUM_BIN");
    if (!bin)
        return -1;
    int seq = ++g_server_seq;
    char name[32], port_file[4200];
    snprintf(name, sizeof name, "server-%d", seq);
    snprintf(port_file, sizeof port_file, "%s/%s.port", g_tmpdir, name);
    snprintf(srv->config_path, sizeof srv->config_path, "%s/%s.config.json", g_tmpdir, name);

    char config[1024];
    const char *config_text = opts->config_json;
    if (opts->config_path) {
        snprintf(srv->config_path, sizeof srv->config_path, "%s", opts->config_path);
        config_text = NULL;
    } else if (!config_text) {
        if (!opts->issuer) {
            harness_err("h_server_start: neither config_json nor issuer given");
            return -1;
        }
        snprintf(config, sizeof config,
                 "{\"OIDCIssuers\":{\"%s\":{\"IssuerURL\":\"%s\",\"ClientID\":\"sigstore\","
                 "\"Type\":\"email\"}}}\n",
                 opts->issuer->url, opts->issuer->url);
        config_text = config;
    }
    if (config_text && h_write_file(srv->config_path, config_text) != 0)
        return -1;

    const char *ca = opts->ca ? opts->ca : "ephemeralca";
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)bin;
    argv[n++] = "serve";
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--port-file";
    argv[n++] = port_file;
    argv[n++] = "--config-path";
    argv[n++] = srv->config_path;
    argv[n++] = "--ca";
    argv[n++] = (char *)ca;
    if (opts->fileca_cert) {
        argv[n++] = "--fileca-cert";
        argv[n++] = (char *)opts->fileca_cert;
    }
    if (opts->fileca_key) {
        argv[n++] = "--fileca-key";
        argv[n++] = (char *)opts->fileca_key;
    }
    if (opts->fileca_passwd) {
        argv[n++] = "--fileca-key-passwd";
        argv[n++] = (char *)opts->fileca_passwd;
    }
    argv[n++] = "--ct-log-url";
    argv[n++] = "";
    for (int i = 0; opts->extra_args && opts->extra_args[i] && n < 63; i++)
        argv[n++] = (char *)opts->extra_args[i];
    argv[n] = NULL;

    if (spawn(&srv->proc, name, argv) != 0)
        return -1;
    long deadline = now_ms() + (long)H_START_DEADLINE_MS * h_slow();
    int listening = 0;
    for (;;) {
        if (!h_proc_alive(&srv->proc)) {
            harness_err("%s exited before it was ready (status %d)", name,
                        exit_code_of(srv->proc.wait_status));
            h_dump_logs();
            return -1;
        }
        if (!listening && read_port_file(port_file, &srv->port)) {
            listening = 1;
            snprintf(srv->url, sizeof srv->url, "http://127.0.0.1:%d", srv->port);
        }
        if (listening) {
            char url[128];
            snprintf(url, sizeof url, "%s/healthz", srv->url);
            h_response r;
            int rc = h_get(url, &r);
            long status = r.status;
            h_response_free(&r);
            if (rc == 0 && status == 200)
                return 0;
        }
        if (now_ms() > deadline) {
            harness_err("%s not ready after %d ms (%s)", name, H_START_DEADLINE_MS * h_slow(),
                        listening ? "no 200 from /healthz" : "no port file");
            h_dump_logs();
            return -1;
        }
        sleep_ms(H_POLL_MS);
    }
}

/* ---- CT log (fulcrum ctlog serve) -------------------------------------------------------- */

int h_ctlog_start(h_ctlog *log, const char *name, const char *roots_pem_path,
                  const char *state_dir, int port)
{
    return h_ctlog_start_args(log, name, roots_pem_path, state_dir, port, NULL);
}

int h_ctlog_start_args(h_ctlog *log, const char *name, const char *roots_pem_path,
                       const char *state_dir, int port, const char *const *extra_args)
{
    memset(log, 0, sizeof *log);
    const char *bin = h_env("FULCRUM_BIN");
    if (!bin)
        return -1;
    char port_file[4200], port_text[16];
    snprintf(port_file, sizeof port_file, "%s/%s.port", g_tmpdir, name);
    unlink(port_file);
    snprintf(port_text, sizeof port_text, "%d", port);
    snprintf(log->state_dir, sizeof log->state_dir, "%s", state_dir);
    snprintf(log->public_key_path, sizeof log->public_key_path, "%s/ctlog/public.pem", state_dir);
    char *argv[64] = {(char *)bin, "ctlog", "serve", "--host", "127.0.0.1", "--port", port_text,
                      "--port-file", port_file, "--state-dir", (char *)state_dir, "--roots",
                      (char *)roots_pem_path, NULL};
    int argc = 13;
    for (size_t i = 0; extra_args && extra_args[i] && argc < 63; i++)
        argv[argc++] = (char *)extra_args[i];
    argv[argc] = NULL;
    if (spawn(&log->proc, name, argv) != 0)
        return -1;
    long deadline = now_ms() + (long)H_START_DEADLINE_MS * h_slow();
    for (;;) {
        if (!h_proc_alive(&log->proc)) {
            harness_err("%s exited before it was ready (status %d)", name,
                        exit_code_of(log->proc.wait_status));
            h_dump_logs();
            return -1;
        }
        if (!log->port && read_port_file(port_file, &log->port))
            snprintf(log->url, sizeof log->url, "http://127.0.0.1:%d", log->port);
        if (log->port) {
            char url[128];
            snprintf(url, sizeof url, "%s/healthz", log->url);
            h_response r;
            int rc = h_get(url, &r);
            long status = r.status;
            h_response_free(&r);
            if (rc == 0 && status == 200)
                return 0;
        }
        if (now_ms() > deadline) {
            harness_err("%s not ready after %d ms", name, H_START_DEADLINE_MS * h_slow());
            h_dump_logs();
            return -1;
        }
        sleep_ms(H_POLL_MS);
    }
}
