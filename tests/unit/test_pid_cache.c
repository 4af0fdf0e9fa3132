/* common/pid_cache.h: getpid() is this program's, answers the kernel's pid, follows fork(), and
 * OpenSSL's fork check still works through it (a child's random bytes differ from its
 * parent's). */
#include <dlfcn.h>
#include <openssl/rand.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/pid_cache.h"
#include "unit/check.h"

int main(void)
{
    CHECK(getpid() == pid_cache_kernel_pid() && getpid() == getpid(), "getpid is the kernel's pid");
    void *sym = dlsym(RTLD_DEFAULT, "getpid");
    CHECK(sym == (void *)getpid, "the program's getpid is the one libraries bind to");

    /* The parent's DRBG is seeded and used before the fork. */
    unsigned char before[16], parent[16], child[16];
    CHECK(RAND_bytes(before, sizeof before) == 1, "random bytes before the fork");
    pid_t self = getpid();
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    pid_t kid = fork();
    if (kid == 0) {
        unsigned char b[16];
        int ok = getpid() == pid_cache_kernel_pid() && getpid() != self &&
                 RAND_bytes(b, sizeof b) == 1;
        if (write(p[1], b, sizeof b) != (ssize_t)sizeof b)
            ok = 0;
        _exit(ok ? 0 : 1);
    }
    CHECK(kid > 0, "fork");
    close(p[1]);
    int status = -1;
    ssize_t got = read(p[0], child, sizeof child);
    waitpid(kid, &status, 0);
    close(p[0]);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "in the child getpid is the child's own pid (status %d)", status);
    CHECK(getpid() == self && getpid() == pid_cache_kernel_pid(), "the parent's pid is unchanged");
    CHECK(RAND_bytes(parent, sizeof parent) == 1, "random bytes in the parent after the fork");
    CHECK(got == (ssize_t)sizeof child && memcmp(child, parent, sizeof child) != 0,
          "OpenSSL noticed the fork: the child's random bytes are not the parent's");
    CHECK_MAIN_END();
}
