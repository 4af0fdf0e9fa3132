/*
 * common/pid_cache.h: getpid() without a system call.
 *
 * OpenSSL 3.0 calls getpid() before every random generate, to notice a fork (its DRBG's fork
 * check): once per ECDSA signature, three per issuance. glibc stopped caching the pid in 2.25,
 * so each call is a system call, about 1.2 us on a virtual machine (1.6 % of an HTTP worker,
 * measured with perf). common/pid_cache.c defines getpid() in this program, which the dynamic
 * linker gives to OpenSSL and every other library in place of glibc's: the pid is asked of the
 * kernel once and again in the child after each fork() (pthread_atfork). A child made with
 * clone() or vfork() that calls getpid() before exec would see its parent's pid; this program
 * makes none.
 */
#ifndef FULCRUM_COMMON_PID_CACHE_H
#define FULCRUM_COMMON_PID_CACHE_H

#include <sys/types.h>

/* The pid from the kernel (SYS_getpid), bypassing the cache: for tests and checks. */
pid_t pid_cache_kernel_pid(void);

#endif
