/*
 * ct/add_chain_answer.h: an external CT log's answer to add-pre-chain (RFC 6962 §4.1
 * AddChainResponse, ct-notes.md §1.4) turned back into the TLS-serialised SCT that
 * ct/sct_verify.h checks and ca/issue.c embeds.
 *
 * The answer's fields are only checked for form here (sct_version 0, a non-negative integer
 * timestamp, a 32-byte id, at most 65535 bytes of extensions, a signature of at least the 4
 * DigitallySigned header bytes); the DigitallySigned itself is copied as given and judged by
 * the SCT verifier. Pure function: thread-safe.
 */
#ifndef FULCRUM_CT_ADD_CHAIN_ANSWER_H
#define FULCRUM_CT_ADD_CHAIN_ANSWER_H

#include <stddef.h>

/* An RFC 6962 AddChainResponse (JSON text, len bytes) -> the TLS-serialised SCT (malloc'd,
 * *out_len bytes), or NULL with the failed check in why. */
unsigned char *ct_add_chain_answer_parse(const char *text, size_t len, size_t *out_len,
                                         char *why, size_t whylen);

#endif
