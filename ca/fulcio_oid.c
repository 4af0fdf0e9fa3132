/*
 * ca/fulcio_oid.c: see ca/fulcio_oid.h. The objects are built once, on first use, from their DER
 * content bytes: the arc prefix 2b 06 01 04 01 83 bf 30 01, then n in one byte (n < 128).
 */
#include "ca/fulcio_oid.h"

#include <openssl/objects.h>
#include <pthread.h>
#include <string.h>

#define ARC_MAX 127

static const unsigned char PREFIX_DER[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf, 0x30, 0x01};

static ASN1_OBJECT *oids[ARC_MAX + 1];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void make_oids(void)
{
    unsigned char der[2 + sizeof PREFIX_DER + 1];
    der[0] = V_ASN1_OBJECT;
    der[1] = (unsigned char)(sizeof PREFIX_DER + 1);
    memcpy(der + 2, PREFIX_DER, sizeof PREFIX_DER);
    for (int n = 1; n <= ARC_MAX; n++) {
        der[sizeof der - 1] = (unsigned char)n;
        const unsigned char *p = der;
        oids[n] = d2i_ASN1_OBJECT(NULL, &p, (long)sizeof der);
    }
}

const ASN1_OBJECT *fulcio_oid(int n)
{
    if (n < 1 || n > ARC_MAX)
        return NULL;
    pthread_once(&once, make_oids);
    return oids[n];
}

int fulcio_oid_arc(const ASN1_OBJECT *o)
{
    const unsigned char *d = o ? OBJ_get0_data(o) : NULL;
    if (!d || OBJ_length(o) != sizeof PREFIX_DER + 1 ||
        memcmp(d, PREFIX_DER, sizeof PREFIX_DER) != 0)
        return 0;
    int n = d[sizeof PREFIX_DER];
    return n >= 1 && n <= ARC_MAX ? n : 0;
}
