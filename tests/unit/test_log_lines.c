/* common/log.h from several threads at once: every line on stderr stays whole and is one JSON
 * object, both for short lines (written without the lock) and for lines over PIPE_BUF (written
 * under it), on a pipe and on a regular file, with half the threads batching their lines
 * (log_thread_batch). Then a batching thread's lines: held until a flush, kept in order with its
 * warnings, never more than PIPE_BUF bytes at once. */
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "unit/check.h"

#define THREADS 4
#define LINES 400

static void count_arm(void *arg) { ++*(int *)arg; }

static void *writer(void *arg)
{
    int id = (int)(long)arg;
    int arms = 0;
    if (id % 2)
        log_thread_batch(count_arm, &arms);
    char big[PIPE_BUF + 600];
    int k = snprintf(big, sizeof big, "{\"pad\":\"");
    memset(big + k, 'a' + id, sizeof big - (size_t)k - 3);
    memcpy(big + sizeof big - 3, "\"}", 3);
    for (int i = 0; i < LINES; i++) {
        char msg[64];
        snprintf(msg, sizeof msg, "thread %d line %d", id, i);
        if (i % 10 == 0)
            log_json(LOG_LVL_INFO, "test", msg, big); /* a line over PIPE_BUF */
        else
            log_info("test", "%s", msg);
    }
    log_thread_batch(NULL, NULL);
    return NULL;
}

static void *drain(void *arg)
{
    int fd = *(int *)arg;
    FILE *out = tmpfile();
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        fwrite(buf, 1, (size_t)n, out);
    rewind(out);
    return out;
}

/* Runs the writers with stderr on fd; checks what read_back gives. */
static void check_lines(FILE *in, const char *what)
{
    char *line = NULL;
    size_t cap = 0;
    int whole = 0, broken = 0, big = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, in)) > 0) {
        json_error_t err;
        json_t *j = json_loadb(line, (size_t)n, 0, &err);
        const char *msg = json_string_value(json_object_get(j, "msg"));
        int id = -1, i = -1;
        if (msg && sscanf(msg, "thread %d line %d", &id, &i) == 2 && id >= 0 && id < THREADS) {
            whole++;
            if ((size_t)n > PIPE_BUF && json_string_length(json_object_get(j, "pad")) > PIPE_BUF)
                big++;
        } else {
            broken++;
        }
        json_decref(j);
    }
    free(line);
    CHECK(broken == 0 && whole == THREADS * LINES && big == THREADS * LINES / 10,
          "%s: %d whole lines (%d over PIPE_BUF), %d broken", what, whole, big, broken);
}

static void run_writers(void)
{
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, writer, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
}

static long file_size(FILE *f)
{
    fflush(f);
    long n = lseek(fileno(f), 0, SEEK_END);
    return n;
}

/* The lines of f, in order, as their "msg" members joined by '|'. */
static void msgs_of(FILE *f, char *out, size_t outlen)
{
    out[0] = '\0';
    rewind(f);
    char *line = NULL;
    size_t cap = 0, o = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        const char *m = json_string_value(json_object_get(j, "msg"));
        o += (size_t)snprintf(out + o, o < outlen ? outlen - o : 0, "%s%s", o ? "|" : "",
                              m ? m : "?");
        json_decref(j);
    }
    free(line);
}

static void test_batch_semantics(int saved)
{
    FILE *f = tmpfile();
    static char got[65536];
    int arms = 0;
    /* The log goes to descriptor 2, now f; CHECK's messages to the terminal's copy. */
    FILE *keep = stderr, *term = fdopen(dup(saved), "w");
    if (term) {
        setvbuf(term, NULL, _IONBF, 0);
        stderr = term;
    }
    dup2(fileno(f), STDERR_FILENO);
    log_thread_batch(count_arm, &arms);
    log_info("test", "a");
    log_info("test", "b");
    log_debug("test", "hidden"); /* below the level: neither written nor batched */
    CHECK(file_size(f) == 0 && arms == 1, "two info lines held, one arm (size %ld, arms %d)",
          file_size(f), arms);
    log_warn("test", "w");
    msgs_of(f, got, sizeof got);
    CHECK_STREQ(got, "a|b|w", "a warning goes out at once, after the held lines");
    log_info("test", "c");
    CHECK(arms == 2, "the emptied batch arms again (%d)", arms);
    log_thread_flush();
    msgs_of(f, got, sizeof got);
    CHECK_STREQ(got, "a|b|w|c", "log_thread_flush writes the held line");

    /* Lines past PIPE_BUF: the batch goes out whole lines at a time, at most PIPE_BUF bytes. */
    long before = file_size(f), last = before;
    int writes = 0, over = 0, torn = 0;
    for (int i = 0; i < 60; i++) {
        log_info("test", "line %d of a batch that outgrows one pipe buffer", i);
        long now = file_size(f);
        if (now != last) {
            writes++;
            over += now - last > PIPE_BUF;
            fseek(f, now - 1, SEEK_SET);
            torn += fgetc(f) != '\n';
            last = now;
        }
    }
    CHECK(writes >= 1 && over == 0 && torn == 0,
          "a full batch is written in whole lines of at most PIPE_BUF bytes (%d writes, %d over, "
          "%d torn)", writes, over, torn);
    char big[PIPE_BUF + 100];
    int k = snprintf(big, sizeof big, "{\"pad\":\"");
    memset(big + k, 'x', sizeof big - (size_t)k - 3);
    memcpy(big + sizeof big - 3, "\"}", 3);
    log_json(LOG_LVL_INFO, "test", "big", big);
    msgs_of(f, got, sizeof got);
    size_t gl = strlen(got);
    CHECK(gl > 4 && strcmp(got + gl - 4, "|big") == 0 &&
              strstr(got, "line 59 of a batch that outgrows one pipe buffer|big"),
          "a line over PIPE_BUF goes out at once, after the held lines");
    log_info("test", "z");
    log_thread_batch(NULL, NULL);
    msgs_of(f, got, sizeof got);
    gl = strlen(got);
    CHECK(gl >= 2 && strcmp(got + gl - 2, "|z") == 0, "stopping the batch flushes it");
    log_info("test", "direct");
    msgs_of(f, got, sizeof got);
    gl = strlen(got);
    CHECK(gl >= 7 && strcmp(got + gl - 7, "|direct") == 0, "after it, lines go out at once");
    dup2(saved, STDERR_FILENO);
    fclose(f);
    stderr = keep;
    if (term)
        fclose(term);
}

int main(void)
{
    int saved = dup(STDERR_FILENO);
    test_batch_semantics(saved);

    int p[2];
    if (pipe(p) != 0)
        return 1;
    pthread_t d;
    pthread_create(&d, NULL, drain, &p[0]);
    dup2(p[1], STDERR_FILENO);
    close(p[1]);
    run_writers();
    dup2(saved, STDERR_FILENO); /* closes the pipe's last write end */
    void *res = NULL;
    pthread_join(d, &res);
    close(p[0]);
    check_lines(res, "pipe");
    fclose(res);

    FILE *f = tmpfile();
    dup2(fileno(f), STDERR_FILENO);
    run_writers();
    dup2(saved, STDERR_FILENO);
    rewind(f);
    check_lines(f, "regular file");
    fclose(f);
    close(saved);
    CHECK_MAIN_END();
}
