/* common/sha256.c: see common/sha256.h. */
#include "common/sha256.h"

#include <pthread.h>

static EVP_MD *g_md;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void fetch(void) { g_md = EVP_MD_fetch(NULL, "SHA256", NULL); }

const EVP_MD *sha256_md(void)
{
    pthread_once(&g_once, fetch);
    return g_md ? g_md : EVP_sha256();
}
