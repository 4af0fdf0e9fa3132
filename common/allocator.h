/*
 * common/allocator.h: which malloc the running process has.
 *
 * The fulcrum binary is linked with jemalloc by default (CMake FULCRUM_JEMALLOC; README
 * "Performance"): OpenSSL allocates and frees a few hundred small objects per certificate, and
 * jemalloc's thread caches measured 4-6 % more issuances per second than glibc's malloc on the
 * bench. Nothing in the code calls jemalloc: it only replaces malloc, so the same sources build
 * and run with either (the sanitizer and fuzz builds use their own allocator).
 */
#ifndef FULCRUM_COMMON_ALLOCATOR_H
#define FULCRUM_COMMON_ALLOCATOR_H

#include <stddef.h>

/* "jemalloc <version>" when the process's malloc is jemalloc's, else "glibc malloc". Writes into
 * buf (NUL-terminated) and returns it. */
const char *allocator_describe(char *buf, size_t len);

#endif
