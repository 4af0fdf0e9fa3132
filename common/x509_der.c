#include "common/x509_der.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct stored {
    size_t len;
    unsigned char der[];
};

static int g_index = -1;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void free_stored(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                        void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

static void make_index(void)
{
    g_index = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_X509, 0, NULL, NULL, NULL, free_stored);
}

static int index_ready(void)
{
    pthread_once(&g_once, make_index);
    return g_index >= 0;
}

int x509_der_set(X509 *x, const unsigned char *der, size_t len)
{
    if (!x || !der || !len || !index_ready())
        return -1;
    struct stored *s = malloc(sizeof *s + len);
    if (!s)
        return -1;
    s->len = len;
    memcpy(s->der, der, len);
    x509_der_clear(x);
    if (!X509_set_ex_data(x, g_index, s)) {
        free(s);
        return -1;
    }
    return 0;
}

void x509_der_clear(X509 *x)
{
    if (!x || !index_ready())
        return;
    struct stored *s = X509_get_ex_data(x, g_index);
    if (s) {
        X509_set_ex_data(x, g_index, NULL);
        free(s);
    }
}

const unsigned char *x509_der_get(X509 *x, size_t *len)
{
    struct stored *s = x && index_ready() ? X509_get_ex_data(x, g_index) : NULL;
    if (!s)
        return NULL;
    *len = s->len;
    return s->der;
}

int x509_der_i2d(X509 *x, unsigned char **out)
{
    size_t len = 0;
    const unsigned char *der = x509_der_get(x, &len);
    if (!der || len > INT32_MAX)
        return i2d_X509(x, out);
    unsigned char *copy = OPENSSL_malloc(len);
    if (!copy)
        return -1;
    memcpy(copy, der, len);
    *out = copy;
    return (int)len;
}
