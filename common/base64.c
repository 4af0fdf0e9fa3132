#include "common/base64.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* Maps url-safe characters to the standard alphabet; `allow_std`/`allow_url` select which alphabets
 * are valid. Returns the decoded buffer or NULL. */
static unsigned char *decode(const char *in, size_t len, size_t *out_len, int allow_std,
                             int allow_url, int allow_pad)
{
    /* Strip trailing padding, remember how much. */
    size_t n = len;
    size_t pad = 0;
    while (n > 0 && in[n - 1] == '=') {
        n--;
        pad++;
    }
    if (pad > 2 || (pad && !allow_pad))
        return NULL;
    if (n % 4 == 1)
        return NULL;
    if (pad && (n + pad) % 4 != 0)
        return NULL;
    if (n > ((size_t)-1) / 2)
        return NULL;

    size_t padded = (n + 3) / 4 * 4;
    char *tmp = malloc(padded + 1);
    if (!tmp)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            tmp[i] = c;
        } else if ((c == '+' || c == '/') && allow_std) {
            tmp[i] = c;
        } else if (c == '-' && allow_url) {
            tmp[i] = '+';
        } else if (c == '_' && allow_url) {
            tmp[i] = '/';
        } else {
            free(tmp);
            return NULL;
        }
    }
    for (size_t i = n; i < padded; i++)
        tmp[i] = '=';
    tmp[padded] = '\0';

    unsigned char *out = malloc(padded / 4 * 3 + 1);
    if (!out) {
        free(tmp);
        return NULL;
    }
    int r = padded ? EVP_DecodeBlock(out, (const unsigned char *)tmp, (int)padded) : 0;
    free(tmp);
    if (r < 0) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts padding bytes as output zeros: drop them. */
    size_t missing = padded - n;
    size_t got = (size_t)r - missing;
    out[got] = '\0';
    *out_len = got;
    return out;
}

unsigned char *b64_decode_any(const char *in, size_t len, size_t *out_len)
{
    return decode(in, len, out_len, 1, 1, 1);
}

unsigned char *b64url_decode_nopad(const char *in, size_t len, size_t *out_len)
{
    return decode(in, len, out_len, 0, 1, 0);
}

char *b64_encode(const unsigned char *in, size_t len)
{
    size_t cap = (len + 2) / 3 * 4 + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

char *b64url_encode(const unsigned char *in, size_t len)
{
    char *out = b64_encode(in, len);
    if (!out)
        return NULL;
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '=')
        out[--n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    return out;
}
