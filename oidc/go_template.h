/*
 * oidc/go_template.h: the subset of Go's text/template that Fulcio's ci-provider templates use.
 *
 * Fulcio runs template.New("").Option("missingkey=error").Parse(t).Execute(&buf, data) with
 * data a map[string]string. Supported: text; actions {{ pipeline }} with the trim markers
 * "{{- " and " -}}"; comments (an action holding only a slash-star comment);
 * {{if}} / {{else if}} / {{else}} / {{end}};
 * operands .name, .a.b, ., $, $.name, "quoted" and `raw` strings, integers, true, false,
 * ( pipelines ); pipes a | f; the functions index, eq, ne, not, and, or, len.
 * Not supported (parse error): range, with, define, template, block, break, continue,
 * variable declarations, other functions.
 *
 * Errors carry Go's wording: parse errors `template: :<line>: <reason>`, execution errors
 * `template: :<line>:<col>: executing "" at <<node>>: <reason>`, e.g.
 * `template: :1:14: executing "" at <.job_workflow_ref>: map has no entry for key
 * "job_workflow_ref"`. `index` on a missing key yields "" (Go's zero value), as in Go.
 *
 * Thread-safe (no shared state).
 */
#ifndef FULCRUM_OIDC_GO_TEMPLATE_H
#define FULCRUM_OIDC_GO_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

/* Parses and executes `tmpl` over `data` (a JSON object whose values are strings). On success
 * returns 0 and *out (malloc'd, caller frees); on failure returns -1, *out = NULL and the Go
 * error text in why. */
int go_template_execute(const char *tmpl, const json_t *data, char **out, char *why, size_t whylen);

/* Parses `tmpl` only (what Fulcio checks when it loads its config). Returns 0, or -1 with Go's
 * parse error text in why. */
int go_template_check(const char *tmpl, char *why, size_t whylen);

#endif
