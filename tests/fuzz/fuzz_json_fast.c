/*
 * fuzz_json_fast: common/json_fast.h against jansson. Whatever json_fast_try accepts, jansson
 * (json_loadb with JSON_REJECT_DUPLICATES) must accept and parse to an equal value; and
 * json_fast_loadb must give jansson's answer for every input (the same value, or a failure).
 */
#include <stdint.h>
#include <string.h>

#include "common/json_fast.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_log_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    json_error_t err;
    json_t *slow = json_loadb(buf, size, JSON_REJECT_DUPLICATES, &err);
    json_t *fast = json_fast_try(buf, size);
    fz_note("jansson: %s; fast path: %s", slow ? "ok" : err.text, fast ? "ok" : "declined");
    if (fast) {
        FZ_ASSERT(slow, "the fast path accepted what jansson refuses");
        FZ_ASSERT(json_equal(fast, slow), "the fast path parsed a different value");
    }
    json_t *both = json_fast_loadb(buf, size, &err);
    FZ_ASSERT(!both == !slow, "json_fast_loadb and jansson disagree");
    FZ_ASSERT(!both || json_equal(both, slow), "json_fast_loadb parsed a different value");
    json_decref(both);
    json_decref(fast);
    json_decref(slow);
    return 0;
}
