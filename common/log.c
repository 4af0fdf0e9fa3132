#include "common/log.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_LVL_INFO;
/* Shared by lines up to PIPE_BUF bytes (each one write(2), atomic on its own), exclusive for
 * longer ones (several writes on a pipe that fills); writers preferred, so a long line waits
 * for the short lines under way only. */
static pthread_rwlock_t log_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

void log_set_level(enum log_level lvl) { min_level = lvl; }

int log_set_level_name(const char *name)
{
    static const struct { const char *name; enum log_level lvl; } levels[] = {
        {"debug", LOG_LVL_DEBUG}, {"info", LOG_LVL_INFO}, {"warn", LOG_LVL_WARN},
        {"error", LOG_LVL_ERROR}};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (name && strcmp(name, levels[i].name) == 0) {
            log_set_level(levels[i].lvl);
            return 0;
        }
    return -1;
}

static const char *level_name(enum log_level lvl)
{
    switch (lvl) {
    case LOG_LVL_DEBUG: return "debug";
    case LOG_LVL_INFO: return "info";
    case LOG_LVL_WARN: return "warn";
    default: return "error";
    }
}

/* A line being built; written with one write(2) so lines from threads never interleave. */
struct line {
    char stack[4096];
    char *p;
    size_t len, cap;
};

static void line_put(struct line *l, const char *s, size_t n)
{
    if (l->len + n + 1 > l->cap) {
        size_t cap = l->cap * 2;
        while (cap < l->len + n + 1)
            cap *= 2;
        char *np = l->p == l->stack ? malloc(cap) : realloc(l->p, cap);
        if (!np)
            return; /* truncated rather than lost */
        if (l->p == l->stack)
            memcpy(np, l->stack, l->len);
        l->p = np;
        l->cap = cap;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void line_puts(struct line *l, const char *s) { line_put(l, s, strlen(s)); }

/* Writes s as the inside of a JSON string. */
static void put_json_escaped(struct line *l, const char *s)
{
    const unsigned char *p = (const unsigned char *)s, *run = p;
    for (; *p; p++) {
        const char *esc = NULL;
        char u[8];
        switch (*p) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (*p < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", *p);
                esc = u;
            }
        }
        if (esc) {
            line_put(l, (const char *)run, (size_t)(p - run));
            line_puts(l, esc);
            run = p + 1;
        }
    }
    line_put(l, (const char *)run, (size_t)(p - run));
}

int log_enabled(enum log_level lvl) { return lvl >= min_level; }

static void write_line(enum log_level lvl, const char *component, const char *msg,
                       const char *members);

void log_msg(enum log_level lvl, const char *component, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    write_line(lvl, component, msg, NULL);
}

void log_json(enum log_level lvl, const char *component, const char *msg, const char *members)
{
    if (lvl < min_level)
        return;
    write_line(lvl, component, msg ? msg : "", members);
}

/* This thread's batch (log_thread_batch): whole lines, at most PIPE_BUF bytes, so one write(2)
 * of it is as atomic as one line's. */
static _Thread_local struct {
    int on;
    void (*arm)(void *);
    void *arg;
    size_t len;
    char buf[PIPE_BUF];
} batch;

static void write_out(const char *p, size_t len)
{
    /* A write up to PIPE_BUF bytes goes out in one write(2) under the shared lock: atomic on a
     * pipe (POSIX), and Linux serializes writes to one file or socket, so lines never
     * interleave and the HTTP workers do not wait for each other's write. A longer line takes
     * the lock alone (a pipe takes it in pieces). */
    int shared = len <= PIPE_BUF;
    if (shared)
        pthread_rwlock_rdlock(&log_lock);
    else
        pthread_rwlock_wrlock(&log_lock);
    for (size_t off = 0; off < len;) {
        ssize_t n = write(STDERR_FILENO, p + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    pthread_rwlock_unlock(&log_lock);
}

void log_thread_batch(void (*arm)(void *), void *arg)
{
    log_thread_flush();
    batch.on = arm != NULL;
    batch.arm = arm;
    batch.arg = arg;
}

void log_thread_flush(void)
{
    if (batch.len) {
        write_out(batch.buf, batch.len);
        batch.len = 0;
    }
}

static void write_line(enum log_level lvl, const char *component, const char *msg,
                       const char *members)
{
    /* The object's members without its braces. */
    size_t mlen = 0;
    if (members) {
        while (*members == ' ' || *members == '\n')
            members++;
        if (*members == '{')
            members++;
        mlen = strlen(members);
        while (mlen && (members[mlen - 1] == ' ' || members[mlen - 1] == '\n'))
            mlen--;
        if (mlen && members[mlen - 1] == '}')
            mlen--;
        while (mlen && (*members == ' ' || *members == '\n')) {
            members++;
            mlen--;
        }
    }

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);

    struct line l = {.p = NULL, .len = 0, .cap = sizeof l.stack};
    l.p = l.stack;
    char head[96];
    snprintf(head, sizeof head, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"component\":\"", when,
             ts.tv_nsec / 1000000, level_name(lvl));
    line_puts(&l, head);
    put_json_escaped(&l, component);
    line_puts(&l, "\",\"msg\":\"");
    put_json_escaped(&l, msg);
    line_puts(&l, "\"");
    if (mlen) {
        line_puts(&l, ",");
        line_put(&l, members, mlen);
    }
    line_puts(&l, "}\n");

    if (batch.on && lvl <= LOG_LVL_INFO && l.len <= sizeof batch.buf) {
        if (batch.len + l.len > sizeof batch.buf)
            log_thread_flush();
        int was_empty = batch.len == 0;
        memcpy(batch.buf + batch.len, l.p, l.len);
        batch.len += l.len;
        if (was_empty)
            batch.arm(batch.arg);
    } else {
        log_thread_flush(); /* this thread's lines stay in order */
        write_out(l.p, l.len);
    }
    if (l.p != l.stack)
        free(l.p);
}
