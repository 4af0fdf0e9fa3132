/*
 * config/config_match.c: issuer lookup by a token's iss, meta-issuer wildcard matching, issuer
 * type names and the reported challenge claim.
 */
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static const struct {
    const char *name;
    enum issuer_type type;
} type_names[] = {
    {"email", ISSUER_TYPE_EMAIL},
    {"spiffe", ISSUER_TYPE_SPIFFE},
    {"github-workflow", ISSUER_TYPE_GITHUB_WORKFLOW},
    {"gitlab-pipeline", ISSUER_TYPE_GITLAB_PIPELINE},
    {"buildkite-job", ISSUER_TYPE_BUILDKITE_JOB},
    {"kubernetes", ISSUER_TYPE_KUBERNETES},
    {"uri", ISSUER_TYPE_URI},
    {"username", ISSUER_TYPE_USERNAME},
    {"codefresh-workflow", ISSUER_TYPE_CODEFRESH_WORKFLOW},
    {"chainguard-identity", ISSUER_TYPE_CHAINGUARD_IDENTITY},
    {"ci-provider", ISSUER_TYPE_CI_PROVIDER},
};

enum issuer_type issuer_type_from_name(const char *name)
{
    if (!name)
        return ISSUER_TYPE_UNKNOWN;
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (strcmp(name, type_names[i].name) == 0) /* Go compares the strings exactly */
            return type_names[i].type;
    return ISSUER_TYPE_UNKNOWN;
}

const char *config_challenge_claim(const issuer_config *ic)
{
    if (ic->challenge_claim && *ic->challenge_claim)
        return ic->challenge_claim;
    return ic->type == ISSUER_TYPE_EMAIL ? "email" : "sub";
}

static int wild_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/*
 * Fulcio's anchored regex ^QuoteMeta(pattern with '*' -> [-_a-zA-Z0-9]+)$, run as an NFA over
 * the pattern positions so that the time is linear in the length of url whatever the pattern.
 * State i: pattern[0..i) matched. Loop state i: inside the '*' at pattern[i], at least one
 * character consumed.
 */
int config_meta_match(const char *pattern, const char *url)
{
    if (!pattern || !url)
        return 0;
    size_t m = strlen(pattern);
    /* cur/next hold 2(m+1) flags: [0..m] positions, [m+1..2m+1] loop states */
    unsigned char *buf = calloc(4 * (m + 1), 1);
    size_t *list = malloc(4 * (m + 1) * sizeof *list);
    if (!buf || !list) {
        free(buf);
        free(list);
        return 0;
    }
    unsigned char *cur = buf, *next = buf + 2 * (m + 1);
    size_t *cl = list, *nl = list + 2 * (m + 1), cn = 0, nn = 0;
    cur[0] = 1;
    cl[cn++] = 0;
    for (const unsigned char *s = (const unsigned char *)url; *s && cn > 0; s++) {
        nn = 0;
        for (size_t k = 0; k < cn; k++) {
            size_t st = cl[k];
            size_t i = st <= m ? st : st - (m + 1); /* pattern index of this state */
            int loop = st > m;
            size_t to[2];
            size_t nto = 0;
            if (loop) {
                if (wild_char(*s)) {
                    to[nto++] = st;    /* stay in the '*' */
                    to[nto++] = i + 1; /* or leave it */
                }
            } else if (i < m) {
                if (pattern[i] == '*') {
                    if (wild_char(*s)) {
                        to[nto++] = (m + 1) + i;
                        to[nto++] = i + 1;
                    }
                } else if ((unsigned char)pattern[i] == *s) {
                    to[nto++] = i + 1;
                }
            }
            for (size_t t = 0; t < nto; t++) {
                if (!next[to[t]]) {
                    next[to[t]] = 1;
                    nl[nn++] = to[t];
                }
            }
        }
        for (size_t k = 0; k < cn; k++)
            cur[cl[k]] = 0;
        unsigned char *tb = cur;
        cur = next;
        next = tb;
        size_t *tl = cl;
        cl = nl;
        nl = tl;
        cn = nn;
    }
    int ok = 0; /* states left means all of url was consumed */
    for (size_t k = 0; k < cn; k++)
        if (cl[k] == m)
            ok = 1;
    free(buf);
    free(list);
    return ok;
}

const issuer_config *config_find_issuer(const fulcrum_config *cfg, const char *iss)
{
    if (!cfg || !iss)
        return NULL;
    size_t lo = 0, hi = cfg->n_issuers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(iss, cfg->issuers[mid].issuer_url);
        if (c == 0)
            return &cfg->issuers[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    for (size_t i = 0; i < cfg->n_meta; i++)
        if (config_meta_match(cfg->meta[i].issuer_url, iss))
            return &cfg->meta[i];
    return NULL;
}
