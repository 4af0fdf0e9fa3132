/*
 * tests/unit/test_cpu_load.c: common/cpu_load.h: the process's recent share of the cores reads
 * low while it sleeps and high while its threads spin, one value per 50 ms period; the
 * group-commit window's share graded by load.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "common/cpu_load.h"
#include "unit/check.h"

static atomic_int g_stop;

static void *spin(void *arg)
{
    (void)arg;
    volatile unsigned long x = 0;
    while (!atomic_load(&g_stop))
        x++;
    return NULL;
}

/* Calls cpu_load_recent every 5 ms for ms milliseconds; returns the last value. */
static double sample_for(int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        (void)cpu_load_recent();
        usleep(5000);
    }
    return cpu_load_recent();
}

int main(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    double idle = sample_for(200);
    CHECK(idle >= 0 && idle < 0.2, "sleeping, the load is low: %.3f", idle);

    /* As many spinning threads as cores: every core this process can get is busy. */
    enum { MAX_THREADS = 64 };
    pthread_t t[MAX_THREADS];
    int started = 0;
    for (long i = 0; i < n && i < MAX_THREADS; i++)
        if (pthread_create(&t[started], NULL, spin, NULL) == 0)
            started++;
    /* The process's own share over the spin's last 150 ms, measured here independently: other
     * processes (a parallel test run) may take part of the cores, so that is what to expect. */
    (void)sample_for(150);
    struct timespec c0, w0, c1, w1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    clock_gettime(CLOCK_MONOTONIC, &w0);
    double busy = sample_for(150);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    atomic_store(&g_stop, 1);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    double cpu = (c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) / 1e9;
    double wall = (w1.tv_sec - w0.tv_sec) + (w1.tv_nsec - w0.tv_nsec) / 1e9;
    double expected = cpu / (wall * (double)n);
    CHECK(started == n || started == MAX_THREADS, "spinning threads: %d", started);
    CHECK(busy > 0.2 && busy <= 1.0 && busy > idle + 0.15,
          "spinning, the load reads high: %.3f (idle %.3f)", busy, idle);
    CHECK(busy > expected - 0.25 && busy < expected + 0.25,
          "the load is the process's share of the cores: %.3f, measured %.3f", busy, expected);

    double after = sample_for(200);
    CHECK(after < 0.2, "idle again, the load is low again: %.3f", after);

    /* The group-commit window's share: none up to CPU_LOAD_LOW, all from CPU_LOAD_FULL, linear
     * and rising between. */
    CHECK(cpu_load_window_share_at(0) == 0 && cpu_load_window_share_at(CPU_LOAD_LOW) == 0,
          "no wait for company with cores idle");
    CHECK(cpu_load_window_share_at(CPU_LOAD_FULL) == 1 && cpu_load_window_share_at(1) == 1,
          "the whole window with the cores busy");
    double mid = cpu_load_window_share_at((CPU_LOAD_LOW + CPU_LOAD_FULL) / 2);
    CHECK(mid > 0.49 && mid < 0.51, "half the window half way: %.3f", mid);
    double prev = 0;
    int rising = 1;
    for (double l = CPU_LOAD_LOW; l <= CPU_LOAD_FULL; l += 0.01) {
        double v = cpu_load_window_share_at(l);
        rising &= v >= prev && v >= 0 && v <= 1;
        prev = v;
    }
    CHECK(rising, "the share rises with the load");
    CHECK(cpu_load_window_share() == cpu_load_window_share_at(cpu_load_recent()),
          "cpu_load_window_share is the share of the recent load");
    CHECK_MAIN_END();
}
