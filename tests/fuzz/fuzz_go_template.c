/*
 * fuzz_go_template: the Go text/template subset of oidc/go_template.h that ci-provider
 * extension and SAN templates use (config: ci-issuer-metadata), executed over token claims
 * as oidc/ci_template.h prepares them.
 *
 * Input: the template, a NUL byte, then a JSON object of claims (any values: they go through
 * ci_template_data, which stringifies them as Fulcio does, over fixed defaults). Without a NUL
 * the whole input is the template and the claims are fixed.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "oidc/ci_template.h"
#include "oidc/go_template.h"

static json_t *defaults, *fixed_claims;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_log_init();
    defaults = json_loads("{\"url\":\"https://github.com\",\"environment\":\"\"}", 0, NULL);
    fixed_claims = json_loads(
        "{\"repository\":\"acme/app\",\"ref\":\"refs/heads/main\",\"ref_type\":\"branch\","
        "\"run_id\":\"42\",\"n\":7,\"f\":1.5,\"b\":true,\"o\":{\"k\":\"v\"},\"a\":[1,\"x\"],"
        "\"oidc.circleci.com/project-id\":\"p\"}",
        0, NULL);
    if (!defaults || !fixed_claims)
        fz_die("JSON");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    char *tmpl = malloc(tlen + 1);
    FZ_ASSERT(tmpl, "malloc");
    memcpy(tmpl, data, tlen);
    tmpl[tlen] = '\0';
    json_t *claims = nul ? json_loadb((const char *)nul + 1, size - tlen - 1, 0, NULL) : NULL;
    if (!json_is_object(claims)) {
        json_decref(claims);
        claims = json_incref(fixed_claims);
    }
    json_t *td = ci_template_data(claims, defaults);
    FZ_ASSERT(td, "ci_template_data");
    char why[512] = "", *out = NULL;
    int checked = go_template_check(tmpl, why, sizeof why);
    FZ_ASSERT(checked == 0 || why[0], "template refused without a reason");
    why[0] = '\0';
    int rc = go_template_execute(tmpl, td, &out, why, sizeof why);
    fz_note("template: %s", rc == 0 ? out : why);
    if (rc == 0) {
        FZ_ASSERT(out, "executed without output");
        FZ_ASSERT(checked == 0, "executed a template go_template_check refuses");
        free(out);
    } else {
        FZ_ASSERT(why[0], "execution failed without a reason");
    }
    out = NULL;
    if (ci_template_apply(tmpl, td, "fuzz-ext", "https://issuer.fuzz.example", &out, why,
                          sizeof why) == 0)
        free(out);
    json_decref(td);
    json_decref(claims);
    free(tmpl);
    return 0;
}
