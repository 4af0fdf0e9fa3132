/*
 * tests/unit/test_cpu_load.c: common/cpu_load.h: the process's recent share of the cores reads
 * low while it sleeps and high while its threads spin, one value per 50 ms period.
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
    double busy = sample_for(300);
    atomic_store(&g_stop, 1);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    CHECK(started == n || started == MAX_THREADS, "spinning threads: %d", started);
    /* Other processes may share the cores (a parallel test run): half is still far from idle. */
    CHECK(busy > 0.5 && busy <= 1.0, "spinning on every core, the load is high: %.3f", busy);

    double after = sample_for(200);
    CHECK(after < 0.2, "idle again, the load is low again: %.3f", after);
    CHECK_MAIN_END();
}
