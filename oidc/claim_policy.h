/*
 * oidc/claim_policy.h: an issuer's ClaimPolicy (config/config.h, struct claim_rule) applied to a
 * verified token's claims. Fulcrum's addition for Fulcio issue #1989 (restricting who may get
 * certificates, e.g. only some GitHub organisations); Fulcio has no equivalent.
 *
 * Semantics: every rule must hold (AND). A rule reads one value: a top-level claim, or a nested
 * member for a "$.a.b" / "$['a.b'].c" path. The value is compared as text:
 *   - a JSON string as is (a string containing a NUL character fails);
 *   - a JSON integer in decimal ("42", "-7"); true / false as "true" / "false";
 *   - anything else (missing, null, a real number, an array, an object) fails the rule.
 * Comparisons are exact and case-sensitive, byte for byte: In (one of the listed strings),
 * Equals, Prefix, Suffix, Match (POSIX extended regex, anchored ^...$, compiled at load time;
 * '$' matches only at the very end, so a trailing newline in a claim does not match).
 *
 * Thread-safe: reads the immutable config and the claims only.
 */
#ifndef FULCRUM_OIDC_CLAIM_POLICY_H
#define FULCRUM_OIDC_CLAIM_POLICY_H

#include <jansson.h>
#include <stddef.h>

#include "config/config.h"

/* 0 when ic has no rules or every rule holds. -1 otherwise, with a message naming the claim,
 * the failure and the rule (1-based, in file order) of the issuer entry, e.g.
 *   claim "repository_owner" = "evil" is not one of the allowed values (rule 1 of
 *   https://token.actions.githubusercontent.com)
 * The token's value is quoted with non-printable and non-ASCII bytes as \xNN and cut after 64
 * bytes; the allowed values are not revealed. The caller answers 403 (PERMISSION_DENIED). */
int claim_policy_check(const issuer_config *ic, const json_t *claims, char *why, size_t whylen);

#endif
