/* common/json_text.h: string literals byte for byte as jansson's json_dumps writes them. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/json_text.h"
#include "unit/check.h"

/* What json_dumps gives for the one-string array [s], without the brackets. */
static char *jansson_quoted(const char *s)
{
    json_t *a = json_pack("[s]", s);
    char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    if (!text)
        return NULL;
    size_t n = strlen(text);
    memmove(text, text + 1, n - 2);
    text[n - 2] = '\0';
    return text;
}

static void same_as_jansson(const char *s, const char *what)
{
    char *want = jansson_quoted(s);
    size_t len = json_text_quoted_len(s);
    char *got = malloc(len + 1);
    char *end = got ? json_text_put_quoted(got, s) : NULL;
    if (end)
        *end = '\0';
    CHECK(end && (size_t)(end - got) == len, "%s: the length is what was written", what);
    CHECK(want && end && strcmp(got, want) == 0, "%s: %s, jansson %s", what, got ? got : "-",
          want ? want : "-");
    free(got);
    free(want);
}

int main(void)
{
    same_as_jansson("", "empty");
    same_as_jansson("plain text", "plain");
    same_as_jansson("-----BEGIN CERTIFICATE-----\nMIIB+z/A==\n-----END CERTIFICATE-----",
                    "a PEM: newlines escaped, '/' and '+' as they are");
    same_as_jansson("quote \" backslash \\ tab \t cr \r bs \b ff \f", "the short escapes");
    char ctl[40];
    size_t n = 0;
    for (int c = 1; c < 0x20; c++)
        ctl[n++] = (char)c;
    ctl[n++] = 0x7f;
    ctl[n] = '\0';
    same_as_jansson(ctl, "every control character and DEL");
    same_as_jansson("caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x94\x91", "UTF-8 as is (U+2028 too)");

    char *got = malloc(64);
    char *end = got ? json_text_put_quoted(got, "a\nb") : NULL;
    CHECK(end && end - got == 6 && memcmp(got, "\"a\\nb\"", 6) == 0,
          "writes the quotes and no NUL");
    free(got);
    CHECK_MAIN_END();
}
