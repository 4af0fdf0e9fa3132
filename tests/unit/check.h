/*
 * tests/unit/check.h: a minimal assertion harness for unit tests.
 *
 * CHECK(cond, "what") records a pass or a failure (with file:line) and goes on.
 * CHECK_MAIN_END() prints "N passed, N failed" and returns non-zero on any failure.
 */
#ifndef FULCRUM_TESTS_CHECK_H
#define FULCRUM_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (cond) {                                                                        \
            check_passed++;                                                                \
        } else {                                                                           \
            check_failed++;                                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                          \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

#define CHECK_STREQ(a, b, what)                                                            \
    do {                                                                                   \
        const char *check_a_ = (a), *check_b_ = (b);                                       \
        CHECK(check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0,                     \
              "%s: got \"%s\", want \"%s\"", what, check_a_ ? check_a_ : "(null)",         \
              check_b_ ? check_b_ : "(null)");                                             \
    } while (0)

#define CHECK_MAIN_END()                                                                   \
    do {                                                                                   \
        printf("%d passed, %d failed\n", check_passed, check_failed);                      \
        return check_failed ? 1 : 0;                                                       \
    } while (0)

#endif
