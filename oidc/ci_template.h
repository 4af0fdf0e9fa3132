/*
 * oidc/ci_template.h: the ci-provider issuer type (fulcio-compat §3.6, §4.4, §4.5).
 *
 * Fulcio's pkg/identity/ciprovider: the token's claims become a map of strings laid over the
 * provider's DefaultTemplateValues (claims win); the SubjectAlternativeNameTemplate and every
 * ExtensionTemplates entry is either a Go text/template (when it contains "{{", executed with
 * missingkey=error by oidc/go_template.h) or the name of a map entry whose value is copied.
 * Issuer (.1/.8) and Subject (.24) are always the token's iss and sub; the challenge is sub.
 *
 * Thread-safe: everything works on the caller's data and the read-only config.
 */
#ifndef FULCRUM_OIDC_CI_TEMPLATE_H
#define FULCRUM_OIDC_CI_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

#include "config/config.h"
#include "oidc/principal.h"

/* One claim as a template value (Fulcio's mapValuesToString): strings unchanged; true/false;
 * numbers as strconv.FormatFloat(v, 'f', -1, 64) (whole numbers as plain integers: 1700000000,
 * 1000000; fractions in shortest form: 0.5); null as "<nil>"; arrays "[a b]" and objects
 * "map[k1:v1 k2:v2]" in Go's %v form (keys sorted, nested numbers as %v: 1e+06).
 * malloc'd; NULL on out of memory. */
char *ci_claim_string(const json_t *v);

/* The template data: `defaults` (a JSON object of strings, or NULL) overlaid with every claim
 * converted by ci_claim_string. New reference; NULL on out of memory. */
json_t *ci_template_data(const json_t *claims, const json_t *defaults);

/* Fulcio's applyTemplateOrReplace. `tmpl` containing "{{" is executed over `data`; otherwise it
 * names a data entry whose value is copied, and a missing entry is the error
 *   value <tmpl> not present in either claims or defaults. {
 *   	"ExtensionName": "<ext_name>",
 *   	"Issuer": "<issuer>"
 *   }
 * Returns 0 and *out (malloc'd), or -1 with the error text (Go's wording) in why. */
int ci_template_apply(const char *tmpl, const json_t *data, const char *ext_name,
                      const char *issuer, char **out, char *why, size_t whylen);

/* The ci-provider principal for a token of issuer `ic` (iss/sub already read from `claims`).
 * TOKEN_ERROR: no CIIssuerMetadata entry for ic->ci_provider ("metadata not found for ci
 * provider <name>, issuer: <iss>"). VALIDATION_ERROR (text for the client): empty SAN
 * template, template errors, a SAN that does not parse as a URL, or (stricter than Fulcio,
 * whose url.Parse accepts relative references) a SAN without scheme or host.
 * Fills san (URI, Go's URL.String() of the result) and ext 1, 2-6, 8-23; empty results are
 * omitted. */
enum principal_error ci_provider_principal(const fulcrum_config *cfg, const issuer_config *ic,
                                           const json_t *claims, const char *iss, const char *sub,
                                           principal *out, char *why, size_t whylen);

#endif
