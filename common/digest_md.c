/* common/digest_md.c: see common/digest_md.h. */
#include "common/digest_md.h"

#include <pthread.h>

static EVP_MD *g_sha256, *g_sha1;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void fetch(void)
{
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    g_sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
}

const EVP_MD *sha256_md(void)
{
    pthread_once(&g_once, fetch);
    return g_sha256 ? g_sha256 : EVP_sha256();
}

const EVP_MD *sha1_md(void)
{
    pthread_once(&g_once, fetch);
    return g_sha1 ? g_sha1 : EVP_sha1();
}
