/*
 * common/log.h: one JSON line per event on stderr (journald picks it up).
 *
 * Never pass tokens, PINs or key material to these functions.
 */
#ifndef FULCRUM_COMMON_LOG_H
#define FULCRUM_COMMON_LOG_H

enum log_level { LOG_LVL_DEBUG = 0, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* Minimum level written; default LOG_LVL_INFO. */
void log_set_level(enum log_level lvl);

/* Sets the level from its name ("debug", "info", "warn", "error", as --log-level takes it).
 * Returns 0, or -1 (level unchanged) for any other name. */
int log_set_level_name(const char *name);

/* Writes {"ts":"...","level":"...","component":"<component>","msg":"<formatted>"}. Thread-safe. */
void log_msg(enum log_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* log_msg with more members after "msg": `members` is the text of a JSON object ("{...}", e.g.
 * from json_dumps) whose members are appended as they are; NULL or "{}" adds none. One line,
 * written at once (request logs: ca/request_log.h). */
void log_json(enum log_level lvl, const char *component, const char *msg, const char *members);

/* Batching for the calling thread (the HTTP workers' request logs): from now on its debug and
 * info lines gather in a buffer of PIPE_BUF bytes, written with one write(2) when the next line
 * would not fit, before any warning or error of this thread (its lines stay in order), and at
 * log_thread_flush. arm(arg) is called, on this thread, whenever a line enters the empty
 * buffer: the caller then arranges a log_thread_flush soon (an event loop timer). Lines still
 * in the buffer when the process dies are lost. arm NULL: flush and stop batching. */
void log_thread_batch(void (*arm)(void *), void *arg);

/* Writes this thread's batched lines now. */
void log_thread_flush(void);

/* 1 when a message of this level would be written. */
int log_enabled(enum log_level lvl);

#define log_debug(comp, ...) log_msg(LOG_LVL_DEBUG, comp, __VA_ARGS__)
#define log_info(comp, ...) log_msg(LOG_LVL_INFO, comp, __VA_ARGS__)
#define log_warn(comp, ...) log_msg(LOG_LVL_WARN, comp, __VA_ARGS__)
#define log_error(comp, ...) log_msg(LOG_LVL_ERROR, comp, __VA_ARGS__)

#endif
