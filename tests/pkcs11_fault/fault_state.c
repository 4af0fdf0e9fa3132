/*
 * tests/pkcs11_fault/fault_state.c: control file, rules, emulated log-in state, sessions,
 * counters. All guarded by g_lock.
 */
#include "fault_state.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_CONTROL_BYTES 65536
#define MAX_SESSIONS 256
#define UNTIL_CLEARED (-1L)

/* Rules act on groups of calls; an error rule belongs to one group. */
enum group { G_SIGN, G_LOGIN, G_OPEN, G_FIND, G_COUNT };

#define BIT(c) (1u << (c))
#define SIGN_CALLS (BIT(FC_SIGN_INIT) | BIT(FC_SIGN) | BIT(FC_SIGN_UPDATE) | BIT(FC_SIGN_FINAL))
#define FIND_CALLS (BIT(FC_FIND_INIT) | BIT(FC_FIND) | BIT(FC_FIND_FINAL))
#define SIGNATURE_CALLS (BIT(FC_SIGN) | BIT(FC_SIGN_FINAL))

static const struct {
    const char *name; /* "<name>_error=" */
    unsigned calls;   /* calls of the group */
    unsigned dflt;    /* default at= */
} g_groups[G_COUNT] = {
    [G_SIGN] = {"sign", SIGN_CALLS, SIGNATURE_CALLS},
    [G_LOGIN] = {"login", BIT(FC_LOGIN), BIT(FC_LOGIN)},
    [G_OPEN] = {"open_session", BIT(FC_OPEN_SESSION), BIT(FC_OPEN_SESSION)},
    [G_FIND] = {"find", FIND_CALLS, BIT(FC_FIND_INIT)},
};

static const struct {
    const char *name;
    unsigned calls;
} g_at_names[] = {
    {"sign_init", BIT(FC_SIGN_INIT)},  {"init", BIT(FC_SIGN_INIT)},
    {"sign", BIT(FC_SIGN)},            {"sign_update", BIT(FC_SIGN_UPDATE)},
    {"update", BIT(FC_SIGN_UPDATE)},   {"sign_final", BIT(FC_SIGN_FINAL)},
    {"final", BIT(FC_SIGN_FINAL)},     {"signature", SIGNATURE_CALLS},
    {"any_sign", SIGN_CALLS},          {"login", BIT(FC_LOGIN)},
    {"open_session", BIT(FC_OPEN_SESSION)}, {"find_init", BIT(FC_FIND_INIT)},
    {"find", BIT(FC_FIND)},            {"find_final", BIT(FC_FIND_FINAL)},
    {"any_find", FIND_CALLS},
};

static const struct {
    const char *name;
    CK_RV rv;
} g_kinds[] = {
    {"session_lost", CKR_SESSION_HANDLE_INVALID},
    {"device_error", CKR_DEVICE_ERROR},
    {"not_logged_in", CKR_USER_NOT_LOGGED_IN},
    {"device_removed", CKR_DEVICE_REMOVED},
    {"token_not_present", CKR_TOKEN_NOT_PRESENT},
    {"general_error", CKR_GENERAL_ERROR},
    {"function_failed", CKR_FUNCTION_FAILED},
    {"session_closed", CKR_SESSION_CLOSED},
};

struct rule {
    int active;
    CK_RV rv;
    long remaining; /* UNTIL_CLEARED or > 0 */
    unsigned at;    /* BIT(call) mask */
    int close_session;
};

struct delay_rule {
    int active;
    unsigned ms;
    long remaining;
    unsigned at;
};

struct file_sig {
    int exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim, ctim;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_inited;
static char *g_control_path, *g_stats_path;
static struct file_sig g_seen;

static struct rule g_errors[G_COUNT];
static struct delay_rule g_delay;
static struct {
    int active;
    long remaining;
} g_corrupt;
static int g_logged_out, g_real_logout_pending;
static int g_injection_logs; /* since the last load */

static struct {
    int used;
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE h;
} g_sessions[MAX_SESSIONS];

static unsigned long g_stats[FS_COUNT];
static const char *const g_stat_names[FS_COUNT] = {
    [FS_SIGN_OK] = "signs_ok",
    [FS_SIGN_FAILED] = "signs_failed",
    [FS_SIGN_INJECTED] = "signs_injected",
    [FS_SIGN_CORRUPTED] = "signs_corrupted",
    [FS_DELAYED] = "delays",
    [FS_LOGIN_OK] = "logins_ok",
    [FS_LOGIN_FAILED] = "logins_failed",
    [FS_LOGOUT_CALLS] = "logouts",
    [FS_SESSIONS_OPENED] = "sessions_opened",
    [FS_SESSIONS_CLOSED] = "sessions_closed",
    [FS_FIND_INIT] = "find_inits",
    [FS_OTHER_INJECTED] = "other_injected",
    [FS_CONTROL_LOADS] = "control_loads",
};

/* ---- logging, names ---------------------------------------------------------------------- */

void fault_log(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "pkcs11-fault[%ld]: %s\n", (long)getpid(), line);
}

const char *fault_ckr_name(CK_RV rv, char *buf, size_t len)
{
    switch (rv) {
    case CKR_OK: return "CKR_OK";
    case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    case CKR_USER_ALREADY_LOGGED_IN: return "CKR_USER_ALREADY_LOGGED_IN";
    case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
    case CKR_FUNCTION_FAILED: return "CKR_FUNCTION_FAILED";
    case CKR_SESSION_CLOSED: return "CKR_SESSION_CLOSED";
    default: snprintf(buf, len, "CKR_0x%lX", (unsigned long)rv); return buf;
    }
}

/* ---- stats ------------------------------------------------------------------------------- */

/* Rewrites the stats file atomically (temp file + rename). Caller holds g_lock. */
static void write_stats(void)
{
    if (!g_stats_path)
        return;
    char tmp[4096 + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", g_stats_path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "pid=%ld\n", (long)getpid());
    for (int i = 0; i < FS_COUNT; i++)
        fprintf(f, "%s=%lu\n", g_stat_names[i], g_stats[i]);
    fprintf(f, "logged_out=%d\n", g_logged_out);
    if (fclose(f) != 0 || rename(tmp, g_stats_path) != 0)
        unlink(tmp);
}

static void count_locked(enum fault_stat which)
{
    g_stats[which]++;
    write_stats();
}

void fault_count(enum fault_stat which)
{
    pthread_mutex_lock(&g_lock);
    count_locked(which);
    pthread_mutex_unlock(&g_lock);
}

/* ---- control file ------------------------------------------------------------------------ */

static void clear_rules(void)
{
    memset(g_errors, 0, sizeof g_errors);
    memset(&g_delay, 0, sizeof g_delay);
    memset(&g_corrupt, 0, sizeof g_corrupt);
}

static int parse_count(const char *v, long *out)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 1)
        return -1;
    *out = n;
    return 0;
}

static int parse_at(const char *v, unsigned *out)
{
    unsigned mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t i;
        for (i = 0; i < sizeof g_at_names / sizeof g_at_names[0]; i++)
            if (strcmp(tok, g_at_names[i].name) == 0)
                break;
        if (i == sizeof g_at_names / sizeof g_at_names[0])
            return -1;
        mask |= g_at_names[i].calls;
    }
    if (!mask)
        return -1;
    *out = mask;
    return 0;
}

static int parse_kind(const char *v, CK_RV *rv)
{
    for (size_t i = 0; i < sizeof g_kinds / sizeof g_kinds[0]; i++)
        if (strcmp(v, g_kinds[i].name) == 0) {
            *rv = g_kinds[i].rv;
            return 0;
        }
    if (strncmp(v, "0x", 2) == 0 || strncmp(v, "0X", 2) == 0) {
        char *end = NULL;
        errno = 0;
        unsigned long n = strtoul(v + 2, &end, 16);
        if (!errno && end != v + 2 && !*end && n != CKR_OK) {
            *rv = (CK_RV)n;
            return 0;
        }
    }
    return -1;
}

/* Options shared by every rule: count=N, until_cleared, at=..., close_session, real. */
struct options {
    long remaining;
    unsigned at;
    int close_session, real;
};

static int parse_options(char **toks, int ntoks, struct options *o, unsigned dflt_at,
                         char *why, size_t whylen)
{
    o->remaining = UNTIL_CLEARED;
    o->at = dflt_at;
    o->close_session = o->real = 0;
    for (int i = 1; i < ntoks; i++) {
        const char *t = toks[i];
        if (strncmp(t, "count=", 6) == 0) {
            if (parse_count(t + 6, &o->remaining) != 0) {
                snprintf(why, whylen, "bad count in '%s' (want a positive integer)", t);
                return -1;
            }
        } else if (strcmp(t, "until_cleared") == 0) {
            o->remaining = UNTIL_CLEARED;
        } else if (strncmp(t, "at=", 3) == 0) {
            if (parse_at(t + 3, &o->at) != 0) {
                snprintf(why, whylen, "bad call list in '%s'", t);
                return -1;
            }
        } else if (strcmp(t, "close_session") == 0) {
            o->close_session = 1;
        } else if (strcmp(t, "real") == 0) {
            o->real = 1;
        } else {
            snprintf(why, whylen, "unknown option '%s'", t);
            return -1;
        }
    }
    return 0;
}

/* One control line, split into whitespace-separated tokens. Caller holds g_lock. */
static int apply_line(char **toks, int ntoks, char *why, size_t whylen)
{
    const char *cmd = toks[0];
    struct options o;
    if (strcmp(cmd, "clear") == 0) {
        if (ntoks != 1) {
            snprintf(why, whylen, "'clear' takes no options");
            return -1;
        }
        clear_rules();
        g_logged_out = 0;
        g_real_logout_pending = 0;
        return 0;
    }
    if (strcmp(cmd, "logout") == 0) {
        if (parse_options(toks, ntoks, &o, 0, why, whylen) != 0)
            return -1;
        if (o.real)
            g_real_logout_pending = 1;
        else
            g_logged_out = 1;
        return 0;
    }
    if (strncmp(cmd, "delay_ms=", 9) == 0) {
        long ms;
        if (parse_count(cmd + 9, &ms) != 0 || ms > 600000) {
            snprintf(why, whylen, "bad delay in '%s' (want 1..600000)", cmd);
            return -1;
        }
        if (parse_options(toks, ntoks, &o, SIGNATURE_CALLS, why, whylen) != 0)
            return -1;
        g_delay = (struct delay_rule){1, (unsigned)ms, o.remaining, o.at};
        return 0;
    }
    if (strcmp(cmd, "corrupt_signature") == 0) {
        if (parse_options(toks, ntoks, &o, SIGNATURE_CALLS, why, whylen) != 0)
            return -1;
        g_corrupt.active = 1;
        g_corrupt.remaining = o.remaining;
        return 0;
    }
    for (int g = 0; g < G_COUNT; g++) {
        size_t n = strlen(g_groups[g].name);
        if (strncmp(cmd, g_groups[g].name, n) != 0 || strncmp(cmd + n, "_error=", 7) != 0)
            continue;
        CK_RV rv;
        if (parse_kind(cmd + n + 7, &rv) != 0) {
            snprintf(why, whylen, "unknown error kind in '%s'", cmd);
            return -1;
        }
        if (parse_options(toks, ntoks, &o, g_groups[g].dflt, why, whylen) != 0)
            return -1;
        if (o.at & ~g_groups[g].calls) {
            snprintf(why, whylen, "at= names calls outside %s_error", g_groups[g].name);
            return -1;
        }
        g_errors[g] = (struct rule){1, rv, o.remaining, o.at, o.close_session};
        return 0;
    }
    snprintf(why, whylen, "unknown command '%s'", cmd);
    return -1;
}

/* Replaces the rules with the file's (the emulated log-out state survives). */
static void load_control(const char *text)
{
    clear_rules();
    char *copy = strdup(text ? text : "");
    if (!copy)
        return;
    int lineno = 0, nrules = 0;
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *toks[16];
        int ntoks = 0;
        char *tsave = NULL;
        for (char *t = strtok_r(line, " \t\r", &tsave); t && ntoks < 16;
             t = strtok_r(NULL, " \t\r", &tsave))
            toks[ntoks++] = t;
        if (ntoks == 0)
            continue;
        char why[256];
        if (apply_line(toks, ntoks, why, sizeof why) != 0)
            fault_log("control file line %d ignored: %s", lineno, why);
        else
            nrules++;
    }
    free(copy);
    g_stats[FS_CONTROL_LOADS]++;
    g_injection_logs = 0;
    fault_log("control file loaded: %d command(s)%s", nrules,
              g_logged_out ? ", token logged out" : "");
    write_stats();
}

static char *read_small_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(MAX_CONTROL_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MAX_CONTROL_BYTES, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = 0;
    return buf;
}

static int same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* One stat(2); reloads when the file appeared, vanished or changed. Caller holds g_lock. */
static void reload_if_changed(void)
{
    if (!g_control_path)
        return;
    struct stat st;
    struct file_sig now;
    memset(&now, 0, sizeof now);
    if (stat(g_control_path, &st) == 0) {
        now.exists = 1;
        now.dev = st.st_dev;
        now.ino = st.st_ino;
        now.size = st.st_size;
        now.mtim = st.st_mtim;
        now.ctim = st.st_ctim;
    }
    if (now.exists == g_seen.exists && now.dev == g_seen.dev && now.ino == g_seen.ino &&
        now.size == g_seen.size && same_time(now.mtim, g_seen.mtim) &&
        same_time(now.ctim, g_seen.ctim))
        return;
    g_seen = now;
    char *text = now.exists ? read_small_file(g_control_path) : NULL;
    load_control(text);
    free(text);
}

void fault_state_init(void)
{
    pthread_mutex_lock(&g_lock);
    if (!g_inited) {
        g_inited = 1;
        const char *c = getenv("FULCRUM_PKCS11_FAULT_CONTROL");
        const char *s = getenv("FULCRUM_PKCS11_FAULT_STATS");
        g_control_path = c && *c ? strdup(c) : NULL;
        g_stats_path = s && *s ? strdup(s) : NULL;
        write_stats();
    }
    pthread_mutex_unlock(&g_lock);
}

#define MAX_INJECTION_LOGS 20

int fault_may_log_injection(void)
{
    pthread_mutex_lock(&g_lock);
    int n = ++g_injection_logs;
    pthread_mutex_unlock(&g_lock);
    if (n == MAX_INJECTION_LOGS + 1)
        fault_log("further injections are not logged until the control file changes");
    return n <= MAX_INJECTION_LOGS;
}

/* ---- decisions --------------------------------------------------------------------------- */

static enum group group_of(enum fault_call call)
{
    switch (call) {
    case FC_LOGIN: return G_LOGIN;
    case FC_OPEN_SESSION: return G_OPEN;
    case FC_FIND_INIT:
    case FC_FIND:
    case FC_FIND_FINAL: return G_FIND;
    default: return G_SIGN;
    }
}

/* Uses one firing of a counted rule. */
static void consume(int *active, long *remaining)
{
    if (*remaining != UNTIL_CLEARED && --*remaining <= 0)
        *active = 0;
}

void fault_decide(enum fault_call call, int has_output, struct fault_decision *d)
{
    memset(d, 0, sizeof *d);
    d->rv = CKR_OK;
    pthread_mutex_lock(&g_lock);
    reload_if_changed();
    if (has_output) {
        const unsigned bit = BIT(call);
        enum group g = group_of(call);
        struct rule *r = &g_errors[g];
        if (r->active && (r->at & bit)) {
            d->rv = r->rv;
            d->close_session = r->close_session;
            consume(&r->active, &r->remaining);
        } else if (g == G_SIGN && g_logged_out) {
            d->rv = CKR_USER_NOT_LOGGED_IN;
        }
        if (g_delay.active && (g_delay.at & bit)) {
            d->delay_ms = g_delay.ms;
            consume(&g_delay.active, &g_delay.remaining);
        }
    }
    pthread_mutex_unlock(&g_lock);
}

int fault_take_corrupt(void)
{
    pthread_mutex_lock(&g_lock);
    int yes = g_corrupt.active;
    if (yes)
        consume(&g_corrupt.active, &g_corrupt.remaining);
    pthread_mutex_unlock(&g_lock);
    return yes;
}

int fault_logged_out(void)
{
    pthread_mutex_lock(&g_lock);
    reload_if_changed();
    int v = g_logged_out;
    pthread_mutex_unlock(&g_lock);
    return v;
}

CK_RV fault_after_login(CK_RV rv)
{
    pthread_mutex_lock(&g_lock);
    if (rv == CKR_USER_ALREADY_LOGGED_IN && g_logged_out)
        rv = CKR_OK; /* the real token never left the logged-in state */
    if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN)
        g_logged_out = 0;
    count_locked(rv == CKR_OK ? FS_LOGIN_OK : FS_LOGIN_FAILED);
    pthread_mutex_unlock(&g_lock);
    return rv;
}

int fault_take_real_logout(CK_SESSION_HANDLE *session)
{
    int found = 0;
    pthread_mutex_lock(&g_lock);
    reload_if_changed();
    if (g_real_logout_pending) {
        for (int i = 0; i < MAX_SESSIONS && !found; i++)
            if (g_sessions[i].used) {
                *session = g_sessions[i].h;
                found = 1;
            }
        if (found)
            g_real_logout_pending = 0;
    }
    pthread_mutex_unlock(&g_lock);
    return found;
}

/* ---- sessions ---------------------------------------------------------------------------- */

void fault_session_opened(CK_SLOT_ID slot, CK_SESSION_HANDLE h)
{
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < MAX_SESSIONS; i++)
        if (!g_sessions[i].used) {
            g_sessions[i].used = 1;
            g_sessions[i].slot = slot;
            g_sessions[i].h = h;
            break;
        }
    count_locked(FS_SESSIONS_OPENED);
    pthread_mutex_unlock(&g_lock);
}

void fault_session_closed(CK_SESSION_HANDLE h)
{
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < MAX_SESSIONS; i++)
        if (g_sessions[i].used && g_sessions[i].h == h) {
            g_sessions[i].used = 0;
            count_locked(FS_SESSIONS_CLOSED);
            break;
        }
    pthread_mutex_unlock(&g_lock);
}

void fault_all_sessions_closed(CK_SLOT_ID slot)
{
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < MAX_SESSIONS; i++)
        if (g_sessions[i].used && g_sessions[i].slot == slot) {
            g_sessions[i].used = 0;
            g_stats[FS_SESSIONS_CLOSED]++;
        }
    write_stats();
    pthread_mutex_unlock(&g_lock);
}
