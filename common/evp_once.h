/*
 * common/evp_once.h: EVP_DigestSign and EVP_DigestVerify on a context that makes one signature
 * or checks one and is then freed.
 *
 * OpenSSL 3.0's ECDSA has no one-shot digest-sign: EVP_DigestSign is Update then Final, and Final
 * first copies the whole signature context so that more data could follow, unless the context
 * carries EVP_MD_CTX_FLAG_FINALISE. Every DigestSignInit/DigestVerifyInit (and a copy from a
 * template) clears that flag, so it is set here, right before the call.
 */
#ifndef FULCRUM_COMMON_EVP_ONCE_H
#define FULCRUM_COMMON_EVP_ONCE_H

#include <openssl/evp.h>

static inline int evp_sign_once(EVP_MD_CTX *c, unsigned char *sig, size_t *siglen,
                                const unsigned char *msg, size_t len)
{
    EVP_MD_CTX_set_flags(c, EVP_MD_CTX_FLAG_FINALISE);
    return EVP_DigestSign(c, sig, siglen, msg, len);
}

static inline int evp_verify_once(EVP_MD_CTX *c, const unsigned char *sig, size_t siglen,
                                  const unsigned char *msg, size_t len)
{
    EVP_MD_CTX_set_flags(c, EVP_MD_CTX_FLAG_FINALISE);
    return EVP_DigestVerify(c, sig, siglen, msg, len);
}

#endif
