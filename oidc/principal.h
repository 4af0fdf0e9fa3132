/*
 * oidc/principal.h: from a verified token's claims to what goes into the certificate.
 *
 * The principal carries (i) the challenge: the bytes the proof of possession must sign,
 * (ii) the one SAN, (iii) the Fulcio extensions 1.3.6.1.4.1.57264.1.N as UTF-8 strings.
 * fulcio-compat.md §2.1, §3.4, §3.6, §4.3, §4.4. Every issuer type of §3.4 is implemented:
 * principal.c (dispatch, email), principal_uri.c, principal_legacy_ci.c, ci_template.c.
 */
#ifndef FULCRUM_OIDC_PRINCIPAL_H
#define FULCRUM_OIDC_PRINCIPAL_H

#include <jansson.h>
#include <stddef.h>

#include "config/config.h"

#define FULCIO_EXT_MAX 24

enum san_kind { SAN_EMAIL = 1, SAN_URI = 2, SAN_OTHERNAME_USERNAME = 3 };

typedef struct principal {
    char *name;            /* the challenge (email, or sub) */
    enum san_kind san_kind;
    char *san_value;       /* rfc822Name, URI, or "<sub>!<domain>" for the otherName */
    /* ext[n] = value of 1.3.6.1.4.1.57264.1.n, NULL = not written. ext[1] and ext[8] carry the
     * issuer (ext[1] is written as raw bytes, the others as DER UTF8String); ext[24] = sub;
     * ext[7] is unused (it is the otherName type-id). */
    char *ext[FULCIO_EXT_MAX + 1];
} principal;

enum principal_error {
    PRINCIPAL_OK = 0,
    PRINCIPAL_TOKEN_ERROR = 1,      /* a claim is missing/invalid: 400 identity-token message */
    PRINCIPAL_VALIDATION_ERROR = 2, /* cannot be embedded (bad UTF-8, template): 400 raw text */
};

/* Builds the principal for issuer type ic->type from `claims` (a JSON object; iss already
 * checked). `cfg` supplies CIIssuerMetadata for the ci-provider type (it may be NULL for the
 * other types). The challenge (name) is: the email for email; for chainguard-identity the
 * email if present (email_verified must be true) else sub; sub for every other type.
 * ext[1] = ext[8] = the token's iss (never a meta-issuer pattern; for email the
 * JSONPath(ic->issuer_claim) value when set); ext[24] = sub when not empty.
 * Email: `email` required and syntactically valid, `email_verified` true (JSON bool or
 * "true"/"True") unless ic->skip_email_verification. The other types follow Fulcio's
 * principals (fulcio-compat §3.4, §3.6). Every value must be valid UTF-8.
 * PRINCIPAL_TOKEN_ERROR: what Fulcio refuses while reading the token (missing or mistyped
 * claims, wrong trust domain or host, ...); PRINCIPAL_VALIDATION_ERROR: what Fulcio refuses while
 * embedding (URL parse errors, template errors, invalid UTF-8): `why` is then the text to
 * return to the client as is. On error *out is left cleared. */
enum principal_error principal_from_claims(const fulcrum_config *cfg, const issuer_config *ic,
                                           const json_t *claims, principal *out, char *why,
                                           size_t whylen);

void principal_clear(principal *p);

#endif
