/*
 * fuzz_config_yaml: Fulcio's identity configuration as YAML (oidc-issuers, meta-issuers,
 * ci-issuer-metadata, claim-policy; anchors, aliases); the YAML to JSON conversion runs alone
 * first (config/config_internal.h). See fuzz_config.h for what runs.
 */
#include "fuzz_config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_config_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_config_run(data, size, 1);
    return 0;
}
