/* common/log.h from several threads at once: every line on stderr stays whole and is one JSON
 * object, both for short lines (written without the lock) and for lines over PIPE_BUF (written
 * under it), on a pipe and on a regular file. */
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

static void *writer(void *arg)
{
    int id = (int)(long)arg;
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

int main(void)
{
    int saved = dup(STDERR_FILENO);

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
