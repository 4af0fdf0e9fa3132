/*
 * ca/csr.c: a PEM PKCS#10 request as the alternative to publicKey + proof of possession
 * (fulcio-compat.md §2.3). Only the public key and the self-signature matter.
 *
 * Outcomes follow Fulcio v1.8.8 (cryptoutils.ParseCSR, ValidatePubKey, Go's
 * CertificateRequest.CheckSignature, then getHashFuncForSignatureAlgorithm):
 *   - algorithms Go's x509 does not know (sha224WithRSA, ecdsa-with-SHA224, RSA-PSS with other
 *     than its three parameter sets, ...) and MD2/MD5, which Go refuses as insecure, fail the
 *     signature check;
 *   - SHA-1 (RSA, ECDSA, DSA) and the three RSA-PSS sets verify, then are refused by name with
 *     "unrecognized signature algorithm: <Go name>", the message Fulcio sends to the client.
 */
#include "ca/csr.h"

#include <limits.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ca/client_key.h"

__attribute__((format(printf, 3, 4))) static void set_why(char *why, size_t whylen,
                                                          const char *fmt, ...)
{
    if (!why || !whylen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

enum alg_class {
    ALG_ACCEPTED, /* mapped to a hash */
    ALG_REFUSED,  /* verified, then "unrecognized signature algorithm" */
    ALG_INSECURE, /* refused by Go's signature check itself */
};

/* Go's x509.SignatureAlgorithm names for the algorithms it parses (RSA-PSS apart). */
static const struct sig_alg {
    int nid;
    const char *go_name;
    int md_nid;
    enum alg_class cls;
} sig_algs[] = {
    {NID_ecdsa_with_SHA256, "ECDSA-SHA256", NID_sha256, ALG_ACCEPTED},
    {NID_ecdsa_with_SHA384, "ECDSA-SHA384", NID_sha384, ALG_ACCEPTED},
    {NID_ecdsa_with_SHA512, "ECDSA-SHA512", NID_sha512, ALG_ACCEPTED},
    {NID_sha256WithRSAEncryption, "SHA256-RSA", NID_sha256, ALG_ACCEPTED},
    {NID_sha384WithRSAEncryption, "SHA384-RSA", NID_sha384, ALG_ACCEPTED},
    {NID_sha512WithRSAEncryption, "SHA512-RSA", NID_sha512, ALG_ACCEPTED},
    {NID_ED25519, "Ed25519", NID_undef, ALG_ACCEPTED},
    {NID_sha1WithRSAEncryption, "SHA1-RSA", NID_sha1, ALG_REFUSED},
    {NID_sha1WithRSA, "SHA1-RSA", NID_sha1, ALG_REFUSED},
    {NID_ecdsa_with_SHA1, "ECDSA-SHA1", NID_sha1, ALG_REFUSED},
    {NID_dsaWithSHA1, "DSA-SHA1", NID_sha1, ALG_REFUSED},
    {NID_dsa_with_SHA256, "DSA-SHA256", NID_sha256, ALG_REFUSED},
    {NID_md5WithRSAEncryption, "MD5-RSA", NID_md5, ALG_INSECURE},
    {NID_md2WithRSAEncryption, "MD2-RSA", NID_undef, ALG_INSECURE},
};

static int null_or_absent(const X509_ALGOR *alg)
{
    int ptype = V_ASN1_UNDEF;
    X509_ALGOR_get0(NULL, &ptype, NULL, alg);
    return ptype == V_ASN1_UNDEF || ptype == V_ASN1_NULL;
}

/* The Go name of an RSASSA-PSS AlgorithmIdentifier, or NULL when Go would not recognise its
 * parameters: hash SHA-256/384/512, MGF1 with the same hash, salt the hash length, trailer 1. */
static const char *pss_go_name(const X509_ALGOR *alg)
{
    int ptype = V_ASN1_UNDEF;
    const void *pval = NULL;
    X509_ALGOR_get0(NULL, &ptype, &pval, alg);
    if (ptype != V_ASN1_SEQUENCE)
        return NULL;
    RSA_PSS_PARAMS *pss = ASN1_item_unpack(pval, ASN1_ITEM_rptr(RSA_PSS_PARAMS));
    X509_ALGOR *mgf1_hash = NULL;
    const char *name = NULL;
    if (!pss || !pss->hashAlgorithm || !pss->maskGenAlgorithm || !pss->saltLength ||
        !null_or_absent(pss->hashAlgorithm) ||
        OBJ_obj2nid(pss->maskGenAlgorithm->algorithm) != NID_mgf1 ||
        (pss->trailerField && ASN1_INTEGER_get(pss->trailerField) != 1))
        goto done;
    /* MGF1's parameter is the AlgorithmIdentifier of its hash. */
    X509_ALGOR_get0(NULL, &ptype, &pval, pss->maskGenAlgorithm);
    if (ptype != V_ASN1_SEQUENCE ||
        !(mgf1_hash = ASN1_item_unpack(pval, ASN1_ITEM_rptr(X509_ALGOR))) ||
        !null_or_absent(mgf1_hash))
        goto done;
    int hash = OBJ_obj2nid(pss->hashAlgorithm->algorithm);
    if (OBJ_obj2nid(mgf1_hash->algorithm) != hash)
        goto done;
    long salt = ASN1_INTEGER_get(pss->saltLength);
    if (hash == NID_sha256 && salt == 32)
        name = "SHA256-RSAPSS";
    else if (hash == NID_sha384 && salt == 48)
        name = "SHA384-RSAPSS";
    else if (hash == NID_sha512 && salt == 64)
        name = "SHA512-RSAPSS";
done:
    X509_ALGOR_free(mgf1_hash);
    RSA_PSS_PARAMS_free(pss);
    return name;
}

/* Fulcio's ParseCSR: the first PEM block, typed "CERTIFICATE REQUEST" or "NEW CERTIFICATE
 * REQUEST", holding exactly one PKCS#10 structure. */
static enum csr_result parse_pem(const unsigned char *pem, size_t len, X509_REQ **out, char *why,
                                 size_t whylen)
{
    if (!pem || len == 0) {
        set_why(why, whylen, "the certificate signing request is empty");
        return CSR_UNPARSEABLE;
    }
    if (len > INT_MAX) {
        set_why(why, whylen, "the certificate signing request is too large");
        return CSR_UNPARSEABLE;
    }
    enum csr_result rc = CSR_UNPARSEABLE;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long derlen = 0;
    if (!bio || PEM_read_bio(bio, &name, &header, &der, &derlen) != 1) {
        set_why(why, whylen, "no PEM block found in the certificate signing request");
        goto done;
    }
    if (strcmp(name, "CERTIFICATE REQUEST") != 0 && strcmp(name, "NEW CERTIFICATE REQUEST") != 0) {
        set_why(why, whylen,
                "PEM type \"%.60s\" is not CERTIFICATE REQUEST or NEW CERTIFICATE REQUEST", name);
        goto done;
    }
    const unsigned char *p = der;
    *out = d2i_X509_REQ(NULL, &p, derlen);
    if (!*out) {
        set_why(why, whylen, "the PEM block is not a PKCS#10 certification request");
        goto done;
    }
    if (p != der + derlen) {
        X509_REQ_free(*out);
        *out = NULL;
        set_why(why, whylen, "trailing data after the PKCS#10 certification request");
        goto done;
    }
    rc = CSR_OK;
done:
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(bio);
    return rc;
}

/* A CSR whose key OpenSSL could not decode: a known algorithm with a broken key does not parse
 * (Go's ParseCertificateRequest fails); an unknown algorithm is an unsupported key. */
static enum csr_result undecodable_key(X509_REQ *req, char *why, size_t whylen)
{
    ASN1_OBJECT *alg = NULL;
    X509_PUBKEY *xpk = X509_REQ_get_X509_PUBKEY(req);
    char oid[100] = "(none)";
    if (xpk && X509_PUBKEY_get0_param(&alg, NULL, NULL, NULL, xpk) && alg)
        OBJ_obj2txt(oid, sizeof oid, alg, 0);
    int nid = alg ? OBJ_obj2nid(alg) : NID_undef;
    if (nid == NID_rsaEncryption || nid == NID_X9_62_id_ecPublicKey || nid == NID_ED25519) {
        set_why(why, whylen, "the CSR's %s public key does not decode", oid);
        return CSR_UNPARSEABLE;
    }
    set_why(why, whylen, "the CSR's public key algorithm %s is not supported", oid);
    return CSR_INSECURE_KEY;
}

static int uncompressed_point(X509_REQ *req)
{
    const unsigned char *pk = NULL;
    int pklen = 0;
    X509_PUBKEY *xpk = X509_REQ_get_X509_PUBKEY(req);
    return xpk && X509_PUBKEY_get0_param(NULL, &pk, &pklen, NULL, xpk) && pklen > 0 &&
           pk[0] == 0x04;
}

/* Key policy, then signature, then algorithm. */
static enum csr_result check(X509_REQ *req, EVP_PKEY **key_out, int *md_nid_out, char *why,
                             size_t whylen)
{
    EVP_PKEY *key = X509_REQ_get0_pubkey(req);
    if (!key)
        return undecodable_key(req, why, whylen);
    if (EVP_PKEY_is_a(key, "EC") && !uncompressed_point(req)) {
        /* Go's elliptic.Unmarshal, inside ParseCertificateRequest, takes no other form. */
        set_why(why, whylen, "the CSR's EC public key is not an uncompressed point");
        return CSR_UNPARSEABLE;
    }
    if (client_key_policy_check(key, why, whylen) != 0)
        return CSR_INSECURE_KEY;

    const ASN1_BIT_STRING *sig = NULL;
    const X509_ALGOR *alg = NULL;
    X509_REQ_get0_signature(req, &sig, &alg);
    int nid = X509_REQ_get_signature_nid(req);
    const struct sig_alg *a = NULL;
    for (size_t i = 0; i < sizeof sig_algs / sizeof sig_algs[0] && !a; i++)
        if (sig_algs[i].nid == nid)
            a = &sig_algs[i];
    struct sig_alg pss = {NID_rsassaPss, NULL, NID_undef, ALG_REFUSED};
    if (nid == NID_rsassaPss && (pss.go_name = pss_go_name(alg)) != NULL)
        a = &pss;

    if (!a && nid == NID_rsassaPss) {
        set_why(why, whylen, "the CSR's RSA-PSS parameters are not supported (SHA-256/384/512 "
                             "with MGF1 of the same hash and a salt of the hash length only)");
        return CSR_BAD_SIGNATURE;
    }
    if (!a) {
        char name[100] = "(none)";
        if (alg)
            OBJ_obj2txt(name, sizeof name, alg->algorithm, 0);
        set_why(why, whylen, "the CSR's signature algorithm %s is not supported", name);
        return CSR_BAD_SIGNATURE;
    }
    if (a->cls == ALG_INSECURE) {
        set_why(why, whylen, "the CSR is signed with the insecure algorithm %s", a->go_name);
        return CSR_BAD_SIGNATURE;
    }
    if (X509_REQ_verify(req, key) != 1) {
        set_why(why, whylen, "the CSR's self-signature (%s) does not verify", a->go_name);
        return CSR_BAD_SIGNATURE;
    }
    if (a->cls == ALG_REFUSED) {
        set_why(why, whylen, "unrecognized signature algorithm: %s", a->go_name);
        return CSR_BAD_ALGORITHM;
    }
    if (!EVP_PKEY_up_ref(key)) {
        set_why(why, whylen, "out of memory");
        return CSR_UNPARSEABLE;
    }
    *key_out = key;
    *md_nid_out = a->md_nid;
    return CSR_OK;
}

enum csr_result csr_parse_and_verify(const unsigned char *pem, size_t len, EVP_PKEY **key_out,
                                     int *md_nid_out, char *why, size_t whylen)
{
    X509_REQ *req = NULL;
    *key_out = NULL;
    *md_nid_out = NID_undef;
    set_why(why, whylen, "%s", "");
    ERR_set_mark();
    enum csr_result rc = parse_pem(pem, len, &req, why, whylen);
    if (rc == CSR_OK)
        rc = check(req, key_out, md_nid_out, why, whylen);
    X509_REQ_free(req);
    ERR_pop_to_mark();
    return rc;
}
