/*
 * ca/audit_log.h: the durable record of every certificate issued (--audit-log PATH, default
 * <state-dir>/audit.log).
 *
 * One JSON object per line, appended (O_APPEND, mode 0600) and made durable (fdatasync) BEFORE the
 * certificate is handed to the client: the signing handlers answer from the append's callback, so
 * every certificate a client ever received is in the log, even after a crash or SIGKILL. With
 * the embedded CT log the record is made durable in the CT entry's transaction instead, and
 * reaches this file afterwards (audit_log_append_logged, audit_log_restore_*): there the file is
 * complete once a server has started again on the same state. A record
 * holds no token, PIN or key material: only what the certificate itself shows plus the request id
 * (audit_record_json).
 *
 * Group commit: one writer thread takes everything queued, writes it with one writev and syncs
 * once; records queued meanwhile go into the next batch. Concurrent issuances therefore share
 * fsyncs instead of queueing behind one another, and a record's callback never runs before the
 * sync that covers it has returned successfully.
 *
 * Crash safety: a batch cut short by a crash can leave a partial last line, which belongs to a
 * certificate that was never handed out; audit_log_open removes such a tail (up to the last
 * newline) and logs how many bytes it dropped. A failed write or sync fails every record of its
 * batch (their requests get 500 and no certificate) and the file is truncated back to where the
 * batch began. Each batch is written under an exclusive flock, so several servers (an
 * overlapping restart, servers sharing a state directory) may append to one file: lines never
 * interleave, and the tail repair at open never cuts another server's batch.
 *
 * Metrics (common/metrics.h): fulcrum_audit_records_total, fulcrum_audit_failures_total,
 * fulcrum_audit_sync_seconds (one observation per batch), fulcrum_audit_batch_records.
 *
 * Thread safety: audit_log_append may be called from any thread.
 */
#ifndef FULCRUM_CA_AUDIT_LOG_H
#define FULCRUM_CA_AUDIT_LOG_H

#include <event2/event.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "oidc/principal.h"

typedef struct audit_log audit_log;

/* Opens (creating it 0600, and its directory 0700 when missing) the log, repairs a torn tail,
 * starts the writer thread. NULL with why on failure. */
audit_log *audit_log_open(const char *path, char *why, size_t whylen);

/* Group commit window under load, in ms (0, the default, = none): a batch whose first record came
 * less than window_ms after the previous sync ended (or during it) waits until window_ms after
 * that record, so more records share one fdatasync; a record to an idle log is synced at once.
 * Call before the first append. */
void audit_log_set_window(audit_log *a, int window_ms);

/* Adaptive group commit: audit_log_expect announces a record on its way (a signing request under
 * way), audit_log_expect_done withdraws it after audit_log_append (or when no record will come).
 * Once anything was announced, a batch waiting for its window waits, once no announced record is
 * outstanding, only the share of the window the process's load asks for (cpu_load_window_share,
 * common/cpu_load.h): light load waits only for the certificates being made, heavy load for the
 * whole window, never longer.
 * NULL-safe; any thread. */
void audit_log_expect(audit_log *a);
void audit_log_expect_done(audit_log *a);

/* Runs once per record: ok = 1 when the record is durable, 0 when it could not be written. */
typedef void (*audit_done_cb)(void *arg, int ok);

/* Queues `line` (one JSON object, no newline; copied). cb runs exactly once, on base's thread
 * (through an event made here; libevent must use pthreads locking), after the batch holding the
 * record was synced or failed. base NULL: cb runs on the writer thread. Returns 0, or -1 with why
 * (the log is closing, or out of memory): nothing then runs. */
int audit_log_append(audit_log *a, const char *line, struct event_base *base, audit_done_cb cb,
                     void *arg, char *why, size_t whylen);

/* Writes what is queued, stops the writer, unlocks and closes. Call after the server drained: a
 * callback whose base no longer dispatches never runs. NULL-safe. */
void audit_log_close(audit_log *a);

/* Records made durable elsewhere already: with the embedded CT log, a certificate's record is
 * stored in its entry's transaction (ct/ct_log.h, ct_log_add_own_precert_audit), and the log
 * hands the records to this file after each commit. audit_log_append_logged queues one (line
 * without its newline, copied; key: the CT entry's index, increasing), with no callback. Such
 * records do not wake the writer thread one by one: they gather in memory and are written, in
 * order, and synced together at most 100 ms after the first of them was queued (sooner once
 * 1024 wait, or with a record appended meanwhile by audit_log_append), and when the log closes.
 * audit_log_logged_synced: 1 + the key of the last logged record synced (0: none), for the CT
 * log to drop what the file now holds. A write that fails is logged and counted, and what is
 * reported synced stops before its first record for good: the records from there on stay in the
 * CT log and reach the file at the next start (audit_log_restore_*; those already in the file
 * are skipped). 0, or -1 (closing, out of memory). Any thread. */
int audit_log_append_logged(audit_log *a, const char *line, size_t len, uint64_t key);
uint64_t audit_log_logged_synced(audit_log *a);

/* At start, before any record is appended: the records the CT log still holds (a crash came
 * between its commit and this file's sync) are appended unless the file's last 16 MiB already
 * hold the very line, then synced. begin reads that tail (NULL with why); line returns 1
 * (appended), 0 (already there) or -1 (cannot write); end syncs, makes the last key the synced
 * one, frees, and returns how many were appended (-1 with why when the sync failed). */
typedef struct audit_restore audit_restore;
audit_restore *audit_log_restore_begin(audit_log *a, char *why, size_t whylen);
int audit_log_restore_line(audit_restore *r, const char *line, size_t len, uint64_t key);
long audit_log_restore_end(audit_restore *r, char *why, size_t whylen);

typedef struct audit_log_stats {
    unsigned long records; /* records made durable */
    unsigned long batches; /* successful write+sync rounds */
    unsigned long failed;  /* records whose batch failed */
} audit_log_stats;
void audit_log_get_stats(audit_log *a, audit_log_stats *out);

/* What one record says about an issued certificate. */
typedef struct audit_entry {
    X509 *cert;                /* the certificate handed out (required) */
    const principal *p;        /* its SAN (required) */
    const char *oidc_issuer;   /* the token's iss */
    const char *subject;       /* the token's sub (NULL = absent) */
    const unsigned char *sct;  /* the TLS-serialised SCT in the certificate, or NULL */
    size_t sct_len;
    const char *request_id;    /* NULL = absent */
} audit_entry;

/* The record (malloc'd JSON text, members in this order): {"time":"<RFC 3339 UTC, ms>",
 * "serial":"<hex, lower case>","san_type":"email|uri|username","san":"...","issuer":"...",
 * "subject":"..."|null,"key_sha256":"<hex of SHA-256 over the certificate's DER
 * SubjectPublicKeyInfo>","not_before":"...","not_after":"...","sct_timestamp":<ms>|null,
 * "request_id":"..."|null}. NULL on error. */
char *audit_record_json(const audit_entry *e);

#endif
