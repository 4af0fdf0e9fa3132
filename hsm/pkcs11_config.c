/*
 * hsm/pkcs11_config.c: the crypto11 JSON config and the PIN's sources.
 */
#include "hsm/pkcs11_config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

#define MAX_CONFIG_BYTES (64 * 1024)
#define MAX_PIN_BYTES 255

void pkcs11_secret_free(char *secret)
{
    if (!secret)
        return;
    OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
}

void pkcs11_config_clear(struct pkcs11_config *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->token_label);
    free(c->token_serial);
    pkcs11_secret_free(c->pin);
    memset(c, 0, sizeof *c);
}

/* Reads a whole small file into a NUL-terminated buffer. Returns 0, or -1 with errno-style
 * text in why ("what path: reason"). The buffer must be cleansed by the caller if secret. */
static int read_small_file(const char *what, const char *path, size_t max, char **out,
                           size_t *outlen, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "cannot read %s %s: %s", what, path, strerror(errno));
        return -1;
    }
    char *buf = malloc(max + 1);
    size_t n = 0;
    int err = 0;
    while (buf && n <= max) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = errno;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf || err || n > max) {
        if (buf)
            OPENSSL_cleanse(buf, n <= max ? n : max + 1);
        free(buf);
        if (!buf)
            snprintf(why, whylen, "cannot read %s %s: out of memory", what, path);
        else if (err)
            snprintf(why, whylen, "cannot read %s %s: %s", what, path, strerror(err));
        else
            snprintf(why, whylen, "cannot read %s %s: larger than %zu bytes", what, path, max);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *outlen = n;
    return 0;
}

/* ---- the JSON ---- */

enum field { F_PATH, F_TOKEN_LABEL, F_TOKEN_SERIAL, F_SLOT_NUMBER, F_PIN, F_MAX_SESSIONS,
             F_POOL_WAIT_TIMEOUT, F_LOGIN_NOT_SUPPORTED, F_OTHER };

static enum field field_of(const char *key)
{
    static const struct {
        const char *name;
        enum field f;
    } names[] = {
        {"Path", F_PATH},
        {"TokenLabel", F_TOKEN_LABEL},
        {"TokenSerial", F_TOKEN_SERIAL},
        {"SlotNumber", F_SLOT_NUMBER},
        {"Pin", F_PIN},
        {"MaxSessions", F_MAX_SESSIONS},
        {"PoolWaitTimeout", F_POOL_WAIT_TIMEOUT},
        {"LoginNotSupported", F_LOGIN_NOT_SUPPORTED},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(key, names[i].name) == 0) /* Go's encoding/json: case-insensitive */
            return names[i].f;
    return F_OTHER;
}

/* A string field: replaces *dst (NULL for JSON null). The PIN's old copy is cleansed. */
static int take_string(json_t *v, char **dst, int secret, const char *origin, const char *name,
                       char *why, size_t whylen)
{
    if (json_is_null(v)) {
        if (secret)
            pkcs11_secret_free(*dst);
        else
            free(*dst);
        *dst = NULL;
        return 0;
    }
    if (!json_is_string(v)) {
        snprintf(why, whylen, "pkcs11 config %s: %s must be a string", origin, name);
        return -1;
    }
    char *copy = strdup(json_string_value(v));
    if (!copy) {
        snprintf(why, whylen, "pkcs11 config %s: out of memory", origin);
        return -1;
    }
    if (secret)
        pkcs11_secret_free(*dst);
    else
        free(*dst);
    *dst = copy;
    return 0;
}

static int take_integer(json_t *v, long long lo, long long hi, long long *dst, int *present,
                        const char *origin, const char *name, char *why, size_t whylen)
{
    if (json_is_null(v)) {
        *dst = 0;
        if (present)
            *present = 0;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(why, whylen, "pkcs11 config %s: %s must be an integer from %lld to %lld",
                 origin, name, lo, hi);
        return -1;
    }
    *dst = json_integer_value(v);
    if (present)
        *present = 1;
    return 0;
}

/* crypto11's rule and messages: exactly one way to select a token. */
static int check_token_selection(const struct pkcs11_config *c, const char *origin, char *why,
                                 size_t whylen)
{
    const char *given[3];
    int n = 0;
    if (c->has_slot_number)
        given[n++] = "slot number";
    if (c->token_label && *c->token_label)
        given[n++] = "token label";
    if (c->token_serial && *c->token_serial)
        given[n++] = "token serial number";
    if (n == 1)
        return 0;
    char list[80] = "none";
    if (n > 1) {
        list[0] = '\0';
        for (int i = 0; i < n; i++) {
            strcat(list, given[i]);
            if (i + 1 < n)
                strcat(list, ", ");
        }
    }
    snprintf(why, whylen,
             "pkcs11 config %s: config must specify exactly one way to select a token: %s given",
             origin, list);
    return -1;
}

int pkcs11_config_parse(const char *text, size_t len, const char *origin,
                        struct pkcs11_config *out, char *why, size_t whylen)
{
    struct pkcs11_config c = {0};
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (!root) {
        /* jansson's message quotes no input text; the position is enough to find the error. */
        snprintf(why, whylen, "pkcs11 config %s is not valid JSON (line %d, column %d)", origin,
                 jerr.line, jerr.column);
        return -1;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        snprintf(why, whylen, "pkcs11 config %s must be a JSON object", origin);
        return -1;
    }
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(root, key, v) {
        long long n = 0;
        switch (field_of(key)) {
        case F_PATH: rc = take_string(v, &c.path, 0, origin, "Path", why, whylen); break;
        case F_TOKEN_LABEL:
            rc = take_string(v, &c.token_label, 0, origin, "TokenLabel", why, whylen);
            break;
        case F_TOKEN_SERIAL:
            rc = take_string(v, &c.token_serial, 0, origin, "TokenSerial", why, whylen);
            break;
        case F_PIN:
            rc = take_string(v, &c.pin, 1, origin, "Pin", why, whylen);
            /* Scrub jansson's copy of the PIN too before the tree is freed. */
            if (json_is_string(v))
                OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
            break;
        case F_SLOT_NUMBER:
            rc = take_integer(v, 0, (long long)LONG_MAX, &n, &c.has_slot_number, origin,
                              "SlotNumber", why, whylen);
            c.slot_number = (unsigned long)n;
            break;
        case F_MAX_SESSIONS:
            rc = take_integer(v, 0, 100000, &n, NULL, origin, "MaxSessions", why, whylen);
            c.max_sessions = (long)n;
            break;
        case F_POOL_WAIT_TIMEOUT:
            rc = take_integer(v, 0, LLONG_MAX, &n, NULL, origin, "PoolWaitTimeout", why, whylen);
            c.pool_wait_timeout_ns = n;
            break;
        case F_LOGIN_NOT_SUPPORTED:
            if (json_is_boolean(v) || json_is_null(v)) {
                c.login_not_supported = json_is_true(v);
            } else {
                snprintf(why, whylen, "pkcs11 config %s: LoginNotSupported must be true or false",
                         origin);
                rc = -1;
            }
            break;
        default: break; /* other crypto11 fields (UseGCMIVFromHSM, ...) do not apply */
        }
        if (rc != 0)
            break;
    }
    json_decref(root);
    if (rc == 0 && (!c.path || !*c.path)) {
        snprintf(why, whylen, "pkcs11 config %s: Path (the PKCS#11 module to load) is required",
                 origin);
        rc = -1;
    }
    if (rc == 0)
        rc = check_token_selection(&c, origin, why, whylen);
    if (rc != 0) {
        pkcs11_config_clear(&c);
        return -1;
    }
    *out = c;
    return 0;
}

int pkcs11_config_load(const char *path, struct pkcs11_config *out, char *why, size_t whylen)
{
    char *text = NULL;
    size_t len = 0;
    if (!path || !*path) {
        snprintf(why, whylen, "no pkcs11 config path given");
        return -1;
    }
    if (read_small_file("pkcs11 config", path, MAX_CONFIG_BYTES, &text, &len, why, whylen) != 0)
        return -1;
    int rc = pkcs11_config_parse(text, len, path, out, why, whylen);
    OPENSSL_cleanse(text, len); /* it may hold the PIN */
    free(text);
    return rc;
}

/* ---- the PIN ---- */

static int read_pin_file(const char *what, const char *path, char **pin, char *why,
                         size_t whylen)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    if (read_small_file(what, path, MAX_PIN_BYTES + 2, &buf, &len, why, whylen) != 0)
        return -1;
    if (len > 0 && buf[len - 1] == '\n')
        buf[--len] = '\0';
    if (len > 0 && buf[len - 1] == '\r')
        buf[--len] = '\0';
    const char *problem = NULL;
    if (len == 0)
        problem = "is empty";
    else if (len > MAX_PIN_BYTES)
        problem = "holds more than 255 bytes";
    else if (memchr(buf, '\0', len))
        problem = "holds a NUL byte";
    if (problem) {
        OPENSSL_cleanse(buf, len);
        free(buf);
        snprintf(why, whylen, "%s %s %s", what, path, problem);
        return -1;
    }
    if (stat(path, &st) == 0 && (st.st_mode & 0077))
        log_warn("pkcs11", "%s %s can be read by group or others (mode %03o); chmod 600 it",
                 what, path, (unsigned)(st.st_mode & 0777));
    *pin = buf;
    return 0;
}

int pkcs11_pin_resolve(const struct pkcs11_config *cfg, const char *pin_file, char **pin,
                       const char **source, char *why, size_t whylen)
{
    *pin = NULL;
    *source = NULL;
    if (pin_file && *pin_file) {
        if (read_pin_file("PIN file", pin_file, pin, why, whylen) != 0)
            return -1;
        *source = "--pkcs11-pin-file";
        return 0;
    }
    const char *creds = getenv("CREDENTIALS_DIRECTORY");
    if (creds && *creds) {
        char path[4096];
        int n = snprintf(path, sizeof path, "%s/%s", creds, PKCS11_PIN_CREDENTIAL);
        if (n > 0 && (size_t)n < sizeof path && access(path, F_OK) == 0) {
            if (read_pin_file("systemd credential", path, pin, why, whylen) != 0)
                return -1;
            *source = "systemd credential " PKCS11_PIN_CREDENTIAL;
            return 0;
        }
    }
    if (cfg && cfg->pin && *cfg->pin) {
        if ((*pin = strdup(cfg->pin)) == NULL) {
            snprintf(why, whylen, "out of memory");
            return -1;
        }
        *source = "the pkcs11 config's Pin";
        return 0;
    }
    return 1;
}
