#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level min_level = LOG_LVL_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_set_level(enum log_level lvl) { min_level = lvl; }

static const char *level_name(enum log_level lvl)
{
    switch (lvl) {
    case LOG_LVL_DEBUG: return "debug";
    case LOG_LVL_INFO: return "info";
    case LOG_LVL_WARN: return "warn";
    default: return "error";
    }
}

/* Writes s as the inside of a JSON string. */
static void put_json_escaped(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
}

void log_msg(enum log_level lvl, const char *component, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);

    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"component\":\"", when,
            ts.tv_nsec / 1000000, level_name(lvl));
    put_json_escaped(stderr, component);
    fputs("\",\"msg\":\"", stderr);
    put_json_escaped(stderr, msg);
    fputs("\"}\n", stderr);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}
