#include "ct/tbs_der.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/x509_der.h"

/* One DER element: where it starts, where its content starts and ends. */
struct elem {
    const unsigned char *start, *content, *end;
    int tag, cls, constructed;
};

/* Reads the element at *p (within end) and moves *p past it. Refuses indefinite lengths and
 * headers that are not in DER's minimal form (the rewrite below writes minimal ones). */
static int next_elem(const unsigned char **p, const unsigned char *end, struct elem *e)
{
    if (*p >= end)
        return -1;
    const unsigned char *q = *p;
    long len = 0;
    int tag = 0, cls = 0;
    int r = ASN1_get_object(&q, &len, &tag, &cls, (long)(end - *p));
    if (r & 0x80) {
        ERR_clear_error();
        return -1;
    }
    if (r & 1) /* indefinite length */
        return -1;
    int constructed = (r & V_ASN1_CONSTRUCTED) ? 1 : 0;
    if (ASN1_object_size(constructed, len, tag) != (int)(q - *p) + len || len > end - q)
        return -1;
    e->start = *p;
    e->content = q;
    e->end = q + len;
    e->tag = tag;
    e->cls = cls;
    e->constructed = constructed;
    *p = e->end;
    return 0;
}

static int is(const struct elem *e, int cls, int tag, int constructed)
{
    return e->cls == cls && e->tag == tag && e->constructed == constructed;
}

unsigned char *ct_tbs_der(X509 *cert, size_t *len)
{
    unsigned char *der = NULL;
    int n = cert ? x509_der_i2d(cert, &der) : -1; /* the stored DER when there is one */
    if (n <= 0)
        return NULL;
    const unsigned char *p = der, *end = der + n;
    struct elem outer, tbs;
    unsigned char *out = NULL;
    if (next_elem(&p, end, &outer) == 0 && p == end &&
        is(&outer, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, 1)) {
        p = outer.content;
        if (next_elem(&p, outer.end, &tbs) == 0 &&
            is(&tbs, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, 1)) {
            size_t l = (size_t)(tbs.end - tbs.start);
            out = malloc(l);
            if (out) {
                memcpy(out, tbs.start, l);
                *len = l;
            }
        }
    }
    OPENSSL_free(der);
    return out;
}

static unsigned char *refuse(char *why, size_t whylen, const char *what)
{
    if (why && whylen)
        snprintf(why, whylen, "TBS: %s", what);
    return NULL;
}

/* tbs with its one `nid` extension replaced by the bytes ins (none: removed). */
static unsigned char *splice(const unsigned char *tbs, size_t tbs_len, int nid,
                             const unsigned char *ins, size_t ins_len, size_t *out_len,
                             char *why, size_t whylen)
{
    unsigned char oid[64];
    unsigned char *op = oid;
    const ASN1_OBJECT *obj = OBJ_nid2obj(nid);
    int oid_len = obj ? i2d_ASN1_OBJECT(obj, NULL) : -1;
    if (oid_len <= 0 || oid_len > (int)sizeof oid || i2d_ASN1_OBJECT(obj, &op) != oid_len)
        return refuse(why, whylen, "unknown extension");

    const unsigned char *p = tbs, *end = tbs + tbs_len;
    struct elem top, field, wrap, exts, ext, id;
    if (!tbs || next_elem(&p, end, &top) != 0 || p != end ||
        !is(&top, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, 1))
        return refuse(why, whylen, "not one DER SEQUENCE");
    /* The fields up to [3] extensions, which is the last one. */
    p = top.content;
    int have_exts = 0;
    while (p < top.end) {
        if (next_elem(&p, top.end, &field) != 0)
            return refuse(why, whylen, "a field is not DER");
        if (is(&field, V_ASN1_CONTEXT_SPECIFIC, 3, 1)) {
            have_exts = 1;
            break;
        }
    }
    if (!have_exts || p != top.end)
        return refuse(why, whylen, "no extensions as the last field");
    wrap = field;
    p = wrap.content;
    if (next_elem(&p, wrap.end, &exts) != 0 || p != wrap.end ||
        !is(&exts, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, 1))
        return refuse(why, whylen, "the extensions are not one DER SEQUENCE");
    /* Find the one extension with this extnID. */
    const unsigned char *cut = NULL, *cut_end = NULL;
    int count = 0, matches = 0;
    p = exts.content;
    while (p < exts.end) {
        if (next_elem(&p, exts.end, &ext) != 0 || !is(&ext, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, 1))
            return refuse(why, whylen, "an extension is not a DER SEQUENCE");
        const unsigned char *q = ext.content;
        if (next_elem(&q, ext.end, &id) != 0 || !is(&id, V_ASN1_UNIVERSAL, V_ASN1_OBJECT, 0))
            return refuse(why, whylen, "an extension does not start with its OID");
        count++;
        if (id.end - id.start == oid_len && memcmp(id.start, oid, (size_t)oid_len) == 0) {
            matches++;
            cut = ext.start;
            cut_end = ext.end;
        }
    }
    if (matches != 1)
        return refuse(why, whylen, matches ? "the extension is present more than once"
                                           : "the extension is absent");
    if (count < 2 && !ins_len)
        return refuse(why, whylen, "the extension is the only one");
    if (ins_len > 0xffff)
        return refuse(why, whylen, "the new extension is too long");

    /* New lengths, innermost first; the bytes outside the three headers are copied. */
    long cut_len = (long)(cut_end - cut);
    long exts_len = (long)(exts.end - exts.content) - cut_len + (long)ins_len;
    long exts_size = ASN1_object_size(1, exts_len, V_ASN1_SEQUENCE);
    long wrap_size = ASN1_object_size(1, exts_size, 3);
    long top_len = (long)(wrap.start - top.content) + wrap_size;
    long top_size = ASN1_object_size(1, top_len, V_ASN1_SEQUENCE);
    if (exts_size < 0 || wrap_size < 0 || top_size < 0)
        return refuse(why, whylen, "too long");
    unsigned char *out = malloc((size_t)top_size), *o = out;
    if (!out)
        return refuse(why, whylen, "out of memory");
    ASN1_put_object(&o, 1, top_len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    memcpy(o, top.content, (size_t)(wrap.start - top.content));
    o += wrap.start - top.content;
    ASN1_put_object(&o, 1, exts_size, 3, V_ASN1_CONTEXT_SPECIFIC);
    ASN1_put_object(&o, 1, exts_len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    memcpy(o, exts.content, (size_t)(cut - exts.content));
    o += cut - exts.content;
    if (ins_len)
        memcpy(o, ins, ins_len);
    o += ins_len;
    memcpy(o, cut_end, (size_t)(exts.end - cut_end));
    o += exts.end - cut_end;
    if (o - out != top_size) {
        free(out);
        return refuse(why, whylen, "internal length mismatch");
    }
    *out_len = (size_t)top_size;
    return out;
}

unsigned char *ct_tbs_der_without_ext(const unsigned char *tbs, size_t tbs_len, int nid,
                                      size_t *out_len, char *why, size_t whylen)
{
    return splice(tbs, tbs_len, nid, NULL, 0, out_len, why, whylen);
}

unsigned char *ct_tbs_der_replace_ext(const unsigned char *tbs, size_t tbs_len, int nid,
                                      const unsigned char *ext, size_t ext_len, size_t *out_len,
                                      char *why, size_t whylen)
{
    const unsigned char *p = ext;
    struct elem e;
    if (!ext || next_elem(&p, ext + ext_len, &e) != 0 || p != ext + ext_len ||
        !is(&e, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, 1))
        return refuse(why, whylen, "the new extension is not one DER SEQUENCE");
    return splice(tbs, tbs_len, nid, ext, ext_len, out_len, why, whylen);
}
