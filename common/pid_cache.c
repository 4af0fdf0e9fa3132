/*
 * common/pid_cache.c: getpid() without a system call (common/pid_cache.h).
 */
#include "common/pid_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Atomic pid_t g_pid; /* 0: ask the kernel */

pid_t pid_cache_kernel_pid(void) { return (pid_t)syscall(SYS_getpid); }

static void forget_pid(void) { atomic_store_explicit(&g_pid, 0, memory_order_relaxed); }

__attribute__((constructor)) static void watch_forks(void)
{
    pthread_atfork(NULL, NULL, forget_pid);
}

pid_t getpid(void)
{
    pid_t p = atomic_load_explicit(&g_pid, memory_order_relaxed);
    if (p == 0) {
        p = pid_cache_kernel_pid();
        atomic_store_explicit(&g_pid, p, memory_order_relaxed);
    }
    return p;
}
