/*
 * config/config_internal.h: helpers shared by the config/ files. Not a public contract.
 */
#ifndef FULCRUM_CONFIG_CONFIG_INTERNAL_H
#define FULCRUM_CONFIG_CONFIG_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

/* ---- config_yaml.c ---- */

/* Converts the first document of a YAML text into a jansson tree. Anchors and aliases are
 * resolved and merge keys (`<<`, a map or a list of maps) are applied; a repeated key in one
 * map is an error. Every scalar becomes a JSON string holding its text (what Go's YAML decoder
 * gives a string field), except the plain null forms (empty, ~, null, Null, NULL) and !!null,
 * which become JSON null. Keys are the scalars' text. An empty stream gives JSON null
 * (*out = NULL is never returned on success: json_null() then).
 * On failure returns -1 and writes "line L column C: <problem>" or "<key path>: <reason>
 * (line L)" into err. */
int config_yaml_to_json(const char *data, size_t len, json_t **out, char *err, size_t errlen);

/* Appends one step to a key path: ".key" when key is [A-Za-z0-9_-]+ (no dot for the first
 * step), "[key]" otherwise or when `bracket` is set. Truncates safely. */
void config_path_append(char *path, size_t pathlen, const char *key, int bracket);

/* ---- config_check.c: value checks; each returns 0 or -1 with a reason in why ---- */

/* An issuer URL: https://host[:port][/path], or http:// when host is localhost, 127.x.x.x
 * or [::1]; no user info, query, fragment, space or control character. */
int config_check_issuer_url(const char *url, char *why, size_t whylen);

/* A MetaIssuers key: with each '*' read as a label it is an issuer URL as above; no '*' in the
 * scheme or the port, and none in the last two labels of the host. An http:// pattern (loopback
 * host only, as above) has '*' only in its path: its host and port are literal. */
int config_check_meta_pattern(const char *pattern, char *why, size_t whylen);

/* go-spiffe's TrustDomainFromString: "example.org" or "spiffe://example.org[/path]". */
int config_check_spiffe_trust_domain(const char *td, char *why, size_t whylen);

/* Fulcio's uri rule: SubjectDomain has a scheme equal to the issuer's, and the hostnames are
 * equal or share their last two labels. */
int config_check_uri_subject_domain(const char *subject_domain, const char *issuer_url,
                                    char *why, size_t whylen);

/* Fulcio's username rule: SubjectDomain has no scheme and equals the issuer's hostname or
 * shares its last two labels. */
int config_check_username_subject_domain(const char *subject_domain, const char *issuer_url,
                                         char *why, size_t whylen);

/* Go's x509.CertPool.AppendCertsFromPEM succeeds: at least one CERTIFICATE block parses. */
int config_check_ca_pem(const char *pem, char *why, size_t whylen);

/* The part of Go's text/template parsing that can be checked without the template engine:
 * every "{{" action (and quoted string in it) is closed. */
int config_check_template(const char *tmpl, char *why, size_t whylen);

/* 1 when `url` has a scheme (Go's url.Parse rules); fills scheme/host (host without port and
 * brackets, "" when there is no authority). Returns -1 on a URL Go's parser refuses. */
int config_url_split(const char *url, char *scheme, size_t schemelen, char *host, size_t hostlen);

/* ---- claim_policy_parse.c ---- */

struct claim_rule;

/* Parses an issuer's ClaimPolicy value `v` (a list of rule maps; absent or null = no rules)
 * found at key path `path`; `yaml_style` picks the key names used in messages for keys that are
 * absent (claim, in, ... instead of Claim, In, ...). Match patterns are compiled and must be
 * anchored. On success *rules is a calloc'd array of *n rules (NULL, 0 when there are none).
 * On failure returns -1 with nothing allocated, the key path of the bad value in epath and the
 * reason in why. */
int config_claim_policy_parse(const json_t *v, const char *path, int yaml_style,
                              struct claim_rule **rules, size_t *n, char *epath, size_t epathlen,
                              char *why, size_t whylen);

/* Frees n rules (their strings and compiled patterns) and the array. */
void config_claim_rules_free(struct claim_rule *rules, size_t n);

#endif
