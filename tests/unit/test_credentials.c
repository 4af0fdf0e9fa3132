/* systemd credentials ($CREDENTIALS_DIRECTORY/<name>): ca/credentials.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/credentials.h"
#include "unit/check.h"

static char dir[1024];

static void put(const char *name, const char *bytes, size_t len)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(bytes, 1, len, f) == len && fclose(f) == 0, "write %s", name);
}

static void want_value(const char *name, const char *want)
{
    char *v = NULL, why[512] = "";
    CHECK(credential_read(name, 0, &v, why, sizeof why) == 1, "%s read: %s", name, why);
    CHECK_STREQ(v, want, name);
    credential_free(v);
}

static void want_error(const char *name, size_t max, const char *want_prefix,
                       const char *secret)
{
    char *v = (char *)"x", why[2048] = "";
    CHECK(credential_read(name, max, &v, why, sizeof why) == -1, "%s refused", name);
    CHECK(v == NULL, "%s: no value", name);
    CHECK(strncmp(why, want_prefix, strlen(want_prefix)) == 0, "%s: message \"%s\", want "
          "prefix \"%s\"", name, why, want_prefix);
    CHECK(!secret || !strstr(why, secret), "%s: message does not show the contents", name);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fulcrum-creds-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "temp dir");

    char *v = (char *)"x", why[2048] = "";
    unsetenv("CREDENTIALS_DIRECTORY");
    CHECK(credential_read("fileca-key-passwd", 0, &v, why, sizeof why) == 0 && v == NULL,
          "no $CREDENTIALS_DIRECTORY: not found");
    setenv("CREDENTIALS_DIRECTORY", "", 1);
    CHECK(credential_read("fileca-key-passwd", 0, &v, why, sizeof why) == 0 && v == NULL,
          "empty $CREDENTIALS_DIRECTORY: not found");
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    CHECK(credential_read(FILECA_KEY_PASSWD_CREDENTIAL, 0, &v, why, sizeof why) == 0 &&
              v == NULL,
          "no such file: not found");
    CHECK_STREQ(FILECA_KEY_PASSWD_CREDENTIAL, "fileca-key-passwd", "the credential's name");

    put("plain", "s3cret", 6);
    want_value("plain", "s3cret");
    put("nl", "s3cret\n", 7);
    want_value("nl", "s3cret");
    put("crlf", "s3cret\r\n", 8);
    want_value("crlf", "s3cret");
    put("two-nl", "s3cret\n\n", 8);
    want_value("two-nl", "s3cret\n"); /* only one newline is removed */
    put("spaces", " pass word ", 11);
    want_value("spaces", " pass word ");
    put("empty", "", 0);
    want_value("empty", ""); /* an empty password is a value (fileca allows it) */

    char big[5000];
    memset(big, 'a', sizeof big);
    put("exact", big, 4096);
    char *e = NULL;
    CHECK(credential_read("exact", 0, &e, why, sizeof why) == 1 && e && strlen(e) == 4096,
          "4096 bytes accepted");
    credential_free(e);
    put("big", big, 4097);
    want_error("big", 0, "credential big: ", NULL);
    put("small-max", "12345678", 8);
    want_error("small-max", 4, "credential small-max: ", "12345678");
    CHECK(credential_read("small-max", 8, &e, why, sizeof why) == 1, "max 8 takes 8 bytes");
    credential_free(e);

    put("nul", "ab\0cd-secret", 12);
    want_error("nul", 0, "credential nul: ", "cd-secret");
    char path[1200];
    snprintf(path, sizeof path, "%s/adir", dir);
    CHECK(mkdir(path, 0700) == 0, "mkdir");
    want_error("adir", 0, "credential adir: ", NULL);
    want_error("../plain", 0, "credential name \"../plain\" is not a plain file name", NULL);
    want_error("..", 0, "credential name \"..\" is not a plain file name", NULL);
    want_error("", 0, "credential name \"\" is not a plain file name", NULL);

    /* The message for an oversized file says what is wrong, exactly. */
    CHECK(credential_read("big", 0, &e, why, sizeof why) == -1, "big again");
    char want[1400];
    snprintf(want, sizeof want, "credential big: %s/big is too large (at most 4096 bytes of text)",
             dir);
    CHECK_STREQ(why, want, "oversized message");
    CHECK(credential_read("nul", 0, &e, why, sizeof why) == -1, "nul again");
    snprintf(want, sizeof want, "credential nul: %s/nul holds a NUL byte (at most 4096 bytes of "
             "text)", dir);
    CHECK_STREQ(why, want, "NUL message");

    const char *names[] = {"plain", "nl", "crlf", "two-nl", "spaces", "empty", "exact", "big",
                           "small-max", "nul"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/adir", dir);
    rmdir(path);
    rmdir(dir);
    credential_free(NULL);
    CHECK_MAIN_END();
}
