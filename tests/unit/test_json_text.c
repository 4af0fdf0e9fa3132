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

/* The object writer against jansson's json_dumps of the same members. */
static void object_same_as_jansson(void)
{
    const double reals[] = {0.0, 1.0, 3.512, 0.001234, 123456789.0, 1e-7, 2.5e21, -4.25, 1e100,
                            12.3456789};
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        json_t *j = json_object();
        json_object_set_new(j, "request_id", json_string("r-1"));
        json_object_set_new(j, "status", json_integer(-201));
        json_object_set_new(j, "big", json_integer(9007199254740993LL));
        json_object_set_new(j, "latency_ms", json_real(reals[i]));
        json_object_set_new(j, "none", json_null());
        json_object_set_new(j, "esc\"key", json_string("line\nbreak \xc3\xa9"));
        char *want = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        json_decref(j);

        json_text_obj o;
        json_text_obj_init(&o);
        json_text_obj_str(&o, "request_id", "r-1");
        json_text_obj_int(&o, "status", -201);
        json_text_obj_int(&o, "big", 9007199254740993LL);
        json_text_obj_real(&o, "latency_ms", reals[i], 6);
        json_text_obj_str(&o, "none", NULL);
        json_text_obj_str(&o, "esc\"key", "line\nbreak \xc3\xa9");
        char *got = json_text_obj_finish(&o);
        CHECK(want && got && strcmp(got, want) == 0, "object with %g: %s, jansson %s", reals[i],
              got ? got : "-", want ? want : "-");
        free(got);
        free(want);
    }
    json_text_obj o;
    json_text_obj_init(&o);
    char *empty = json_text_obj_finish(&o);
    CHECK_STREQ(empty, "{}", "an empty object");
    free(empty);
    json_text_obj_init(&o);
    json_text_obj_real(&o, "x", 1.0 / 0.0, 6);
    char *inf = json_text_obj_finish(&o);
    CHECK_STREQ(inf, "{\"x\":null}", "a value that is not finite is null");
    free(inf);
    const char *bad_utf8[] = {"\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff",
                              "a\x80"};
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        json_t *js = json_string(bad_utf8[i]);
        json_text_obj_init(&o);
        json_text_obj_str(&o, "k", bad_utf8[i]);
        char *t = json_text_obj_finish(&o);
        CHECK(t == NULL && js == NULL, "ill-formed UTF-8 #%zu fails the object, as json_string",
              i);
        free(t);
        json_decref(js);
    }
    json_text_obj_init(&o);
    json_text_obj_str(&o, "k", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x94\x91\xf4\x8f\xbf\xbf");
    char *ok = json_text_obj_finish(&o);
    CHECK(ok != NULL, "2-, 3- and 4-byte UTF-8 up to U+10FFFF pass");
    free(ok);
    /* Longer than the first buffer: it grows. */
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    json_text_obj_init(&o);
    json_text_obj_str(&o, "k", big);
    char *grown = json_text_obj_finish(&o);
    CHECK(grown && strlen(grown) == sizeof big - 1 + 8, "the buffer grows");
    free(grown);
}

/* Ill-formed bytes become '?', well-formed sequences stay; the result is valid UTF-8. */
static void scrub(void)
{
    const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},
        {"caf\xc3\xa9 \xf0\x9f\x94\x91", "caf\xc3\xa9 \xf0\x9f\x94\x91"},
        {"cut \xc3", "cut ?"},
        {"cut \xf0\x9f\x94", "cut ???"},
        {"overlong \xc0\xaf", "overlong ??"},
        {"surrogate \xed\xa0\x80", "surrogate ???"},
        {"\xe9near '\"x\\\xe9'", "?near '\"x\\?'"},
        {"\xff\xfe", "??"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", cases[i].in);
        json_text_utf8_scrub(buf);
        CHECK(strcmp(buf, cases[i].out) == 0 && json_text_utf8_valid(buf),
              "scrub #%zu: %s", i, buf);
    }
}

int main(void)
{
    scrub();
    object_same_as_jansson();
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
