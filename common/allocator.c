#include "common/allocator.h"

#include <dlfcn.h>
#include <stdio.h>

/* jemalloc's control interface, looked up rather than linked: the code does not depend on it. */
typedef int (*mallctl_fn)(const char *name, void *oldp, size_t *oldlenp, void *newp,
                          size_t newlen);

const char *allocator_describe(char *buf, size_t len)
{
    if (!buf || !len)
        return buf;
    mallctl_fn mallctl = (mallctl_fn)dlsym(RTLD_DEFAULT, "mallctl");
    const char *version = NULL;
    size_t vlen = sizeof version;
    if (mallctl && mallctl("version", &version, &vlen, NULL, 0) == 0 && version)
        snprintf(buf, len, "jemalloc %s", version);
    else
        snprintf(buf, len, "glibc malloc");
    return buf;
}
