/*
 * fuzz_config_json: Fulcio's identity configuration as JSON (OIDCIssuers, MetaIssuers,
 * CIIssuerMetadata, ClaimPolicy). See fuzz_config.h for what runs.
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
    fz_config_run(data, size, 0);
    return 0;
}
