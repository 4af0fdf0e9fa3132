/*
 * tests/unit/test_rate_limit.c: ca/rate_limit.h: flag syntax, bucket arithmetic with an explicit
 * clock, Retry-After, independent keys, the memory bound.
 */
#include <stdio.h>
#include <string.h>

#include "ca/rate_limit.h"
#include "unit/check.h"

static void test_parse(void)
{
    rate_limit_spec s;
    char why[200];
    CHECK(rate_limit_parse("10/m", &s, why, sizeof why) == 0, "10/m");
    CHECK(s.burst == 10 && s.per_second > 0.16666 && s.per_second < 0.16667, "10/m values");
    CHECK_STREQ(s.text, "10/m", "10/m text");
    CHECK(rate_limit_parse("1000/s", &s, why, sizeof why) == 0 && s.per_second == 1000 &&
              s.burst == 1000,
          "1000/s");
    CHECK(rate_limit_parse("5/hour", &s, why, sizeof why) == 0 && strcmp(s.text, "5/h") == 0,
          "5/hour normalised to 5/h");
    CHECK(rate_limit_parse("off", &s, why, sizeof why) == 0 && s.per_second == 0 &&
              strcmp(s.text, "off") == 0,
          "off");
    CHECK(rate_limit_parse("0", &s, why, sizeof why) == 0 && s.per_second == 0, "0 = off");
    CHECK(rate_limit_parse("", &s, why, sizeof why) == 0 && s.per_second == 0, "\"\" = off");
    const char *bad[] = {"10", "10/", "10/d", "-1/s", "0/s", "x/s", "10/ s", "1e3/s",
                         "2000000000/s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        CHECK(rate_limit_parse(bad[i], &s, why, sizeof why) == -1 && strstr(why, "rate limit"),
              "\"%s\" refused with a reason (%s)", bad[i], why);
    }
    rate_limit_parse("off", &s, why, sizeof why);
    CHECK(rate_limiter_new(&s, 0) == NULL, "no limiter for off");
    long ra = -5;
    CHECK(rate_limiter_take(NULL, "k", 0, &ra) == 1 && ra == -5, "NULL limiter allows");
}

static void test_bucket(void)
{
    rate_limit_spec s;
    char why[200];
    rate_limit_parse("3/m", &s, why, sizeof why); /* one token per 20 s */
    rate_limiter *rl = rate_limiter_new(&s, 0);
    long ra = 0;
    double t = 1000;
    CHECK(rate_limiter_take(rl, "alice", t, &ra) == 1, "1st allowed");
    CHECK(rate_limiter_take(rl, "alice", t, &ra) == 1, "2nd allowed");
    CHECK(rate_limiter_take(rl, "alice", t, &ra) == 1, "3rd allowed (burst 3)");
    CHECK(rate_limiter_take(rl, "alice", t, &ra) == 0 && ra == 20, "4th refused, retry 20 s (%ld)",
          ra);
    CHECK(rate_limiter_take(rl, "bob", t, &ra) == 1, "another key has its own bucket");
    CHECK(rate_limiter_take(rl, "alice", t + 5, &ra) == 0 && ra == 15,
          "5 s later: retry in 15 s (%ld)", ra);
    CHECK(rate_limiter_take(rl, "alice", t + 19.5, &ra) == 0 && ra == 1,
          "19.5 s later: retry in 1 s (rounded up, %ld)", ra);
    CHECK(rate_limiter_take(rl, "alice", t + 20, &ra) == 1, "20 s later: one token back");
    CHECK(rate_limiter_take(rl, "alice", t + 20, &ra) == 0, "and only one");
    CHECK(rate_limiter_take(rl, "alice", t + 200, &ra) == 1 &&
              rate_limiter_take(rl, "alice", t + 200, &ra) == 1 &&
              rate_limiter_take(rl, "alice", t + 200, &ra) == 1 &&
              rate_limiter_take(rl, "alice", t + 200, &ra) == 0,
          "refill stops at the burst");
    /* A clock going backwards never adds tokens. */
    CHECK(rate_limiter_take(rl, "alice", t + 100, &ra) == 0, "no tokens from a clock step back");
    rate_limiter_free(rl);

    rate_limit_parse("1000/s", &s, why, sizeof why);
    rl = rate_limiter_new(&s, 0);
    int allowed = 0;
    for (int i = 0; i < 1500; i++)
        allowed += rate_limiter_take(rl, "issuer", 50, &ra);
    CHECK(allowed == 1000, "1000/s: 1000 of 1500 at one instant (%d)", allowed);
    CHECK(rate_limiter_take(rl, "issuer", 50.002, &ra) == 1, "2 ms later one more");
    rate_limiter_free(rl);
}

static void test_bound(void)
{
    rate_limit_spec s;
    char why[200], key[32];
    rate_limit_parse("2/h", &s, why, sizeof why);
    rate_limiter *rl = rate_limiter_new(&s, 640); /* 10 per shard */
    long ra;
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "id-%d", i);
        rate_limiter_take(rl, key, 10, &ra);
    }
    size_t n = rate_limiter_size(rl);
    CHECK(n <= 640 && n > 0, "at most max_keys buckets (%zu)", n);
    /* A key that used its tokens stays refused while buckets of others refill and are evicted. */
    rate_limiter_take(rl, "hot", 20, &ra);
    rate_limiter_take(rl, "hot", 20, &ra);
    CHECK(rate_limiter_take(rl, "hot", 20, &ra) == 0, "hot key exhausted");
    for (int i = 0; i < 9; i++) {
        snprintf(key, sizeof key, "later-%d", i);
        rate_limiter_take(rl, key, 7300, &ra); /* > 1 h: every old bucket is full again */
    }
    CHECK(rate_limiter_take(rl, "hot", 7300, &ra) == 1, "after an hour the hot key may again");
    rate_limiter_free(rl);
}

int main(void)
{
    test_parse();
    test_bucket();
    test_bound();
    CHECK_MAIN_END();
}
