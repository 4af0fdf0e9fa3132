/*
 * common/cpu_load.c: the process's recent share of the cores (common/cpu_load.h).
 */
#include "common/cpu_load.h"

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define PERIOD_NS 50000000LL /* one sample per 50 ms at most */

static _Atomic int64_t g_wall_ns;   /* start of the current period (monotonic), 0 = none yet */
static _Atomic int64_t g_cpu_ns;    /* process CPU time at that start */
static _Atomic uint32_t g_load_ppm; /* the last complete period's load, in millionths */
static atomic_flag g_sampling = ATOMIC_FLAG_INIT;

static int64_t ns_of(clockid_t id)
{
    struct timespec t;
    if (clock_gettime(id, &t) != 0)
        return -1;
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long cores(void)
{
    static _Atomic long n;
    long v = atomic_load_explicit(&n, memory_order_relaxed);
    if (v <= 0) {
        v = sysconf(_SC_NPROCESSORS_ONLN);
        if (v <= 0)
            v = 1;
        atomic_store_explicit(&n, v, memory_order_relaxed);
    }
    return v;
}

double cpu_load_recent(void)
{
    int64_t now = ns_of(CLOCK_MONOTONIC);
    int64_t start = atomic_load_explicit(&g_wall_ns, memory_order_acquire);
    if (now > 0 && (start == 0 || now - start >= PERIOD_NS) &&
        !atomic_flag_test_and_set_explicit(&g_sampling, memory_order_acquire)) {
        /* One caller samples; the others use the stored value meanwhile. */
        start = atomic_load_explicit(&g_wall_ns, memory_order_acquire);
        if (start == 0 || now - start >= PERIOD_NS) {
            int64_t cpu = ns_of(CLOCK_PROCESS_CPUTIME_ID);
            if (cpu >= 0) {
                if (start != 0) {
                    double load = (double)(cpu - atomic_load(&g_cpu_ns)) /
                                  ((double)(now - start) * (double)cores());
                    if (load < 0)
                        load = 0;
                    if (load > 1)
                        load = 1;
                    atomic_store(&g_load_ppm, (uint32_t)(load * 1e6));
                }
                atomic_store(&g_cpu_ns, cpu);
                atomic_store_explicit(&g_wall_ns, now, memory_order_release);
            }
        }
        atomic_flag_clear_explicit(&g_sampling, memory_order_release);
    }
    return atomic_load(&g_load_ppm) / 1e6;
}

double cpu_load_window_share_at(double load)
{
    if (load <= CPU_LOAD_LOW)
        return 0;
    if (load >= CPU_LOAD_FULL)
        return 1;
    return (load - CPU_LOAD_LOW) / (CPU_LOAD_FULL - CPU_LOAD_LOW);
}

double cpu_load_window_share(void) { return cpu_load_window_share_at(cpu_load_recent()); }
