/* ca/fulcio_oid.h: the OIDs 1.3.6.1.4.1.57264.1.n, and recognising them by their bytes. */
#include <openssl/objects.h>
#include <stdio.h>

#include "ca/fulcio_oid.h"
#include "unit/check.h"

static int arc_of_text(const char *txt)
{
    ASN1_OBJECT *o = OBJ_txt2obj(txt, 1);
    int n = o ? fulcio_oid_arc(o) : -1;
    ASN1_OBJECT_free(o);
    return n;
}

int main(void)
{
    for (int n = 1; n <= 127; n++) {
        const ASN1_OBJECT *o = fulcio_oid(n);
        char want[48], got[80] = "";
        snprintf(want, sizeof want, FULCIO_OID_PREFIX "%d", n);
        if (o)
            OBJ_obj2txt(got, sizeof got, o, 1);
        CHECK(o && strcmp(got, want) == 0, "fulcio_oid(%d) is %s (got %s)", n, want, got);
        CHECK(fulcio_oid(n) == o, "fulcio_oid(%d) is made once", n);
        CHECK(arc_of_text(want) == n, "%s is arc %d", want, n);
    }
    CHECK(fulcio_oid(0) == NULL && fulcio_oid(128) == NULL && fulcio_oid(-1) == NULL,
          "no OID outside 1..127");
    const char *others[] = {"1.3.6.1.4.1.57264.1.0", "1.3.6.1.4.1.57264.1.128",
                            "1.3.6.1.4.1.57264.1.8.1", "1.3.6.1.4.1.57264.2.1",
                            "1.3.6.1.4.1.57264.1", "1.3.6.1.4.1.11129.2.4.3", "2.5.29.17"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        CHECK(arc_of_text(others[i]) == 0, "%s is not a Fulcio extension OID", others[i]);
    CHECK(fulcio_oid_arc(NULL) == 0, "NULL is none");
    CHECK_MAIN_END();
}
