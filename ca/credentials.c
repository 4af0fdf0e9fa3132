#include "ca/credentials.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int valid_name(const char *name)
{
    return name && *name && !strchr(name, '/') && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

int credential_read(const char *name, size_t max_bytes, char **value, char *why, size_t whylen)
{
    *value = NULL;
    if (!max_bytes)
        max_bytes = CREDENTIAL_MAX_BYTES;
    if (!valid_name(name)) {
        snprintf(why, whylen, "credential name \"%s\" is not a plain file name",
                 name ? name : "(null)");
        return -1;
    }
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (!dir || !*dir)
        return 0;
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        snprintf(why, whylen, "credential %s: $CREDENTIALS_DIRECTORY is too long", name);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(why, whylen, "credential %s: cannot open %s: %s", name, path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "credential %s: %s is not a regular file", name, path);
        close(fd);
        return -1;
    }
    /* One byte more than allowed plus room for "\r\n", to see an oversized file. */
    size_t cap = max_bytes + 3, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(why, whylen, "credential %s: cannot read %s: %s", name, path,
                     strerror(errno));
            close(fd);
            OPENSSL_cleanse(buf, cap);
            free(buf);
            return -1;
        }
        if (r == 0 || (len += (size_t)r) == cap - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    if (len > 0 && buf[len - 1] == '\n') {
        buf[--len] = '\0';
        if (len > 0 && buf[len - 1] == '\r')
            buf[--len] = '\0';
    }
    const char *problem = NULL;
    if (len > max_bytes)
        problem = "is too large";
    else if (memchr(buf, '\0', len))
        problem = "holds a NUL byte";
    if (problem) {
        snprintf(why, whylen, "credential %s: %s %s (at most %zu bytes of text)", name, path,
                 problem, max_bytes);
        OPENSSL_cleanse(buf, cap);
        free(buf);
        return -1;
    }
    *value = buf;
    return 1;
}

void credential_free(char *value)
{
    if (!value)
        return;
    OPENSSL_cleanse(value, strlen(value));
    free(value);
}
