/*
 * ct/log_index.h: the log's two lookup indexes, kept in a database of their own beside the log's
 * ("<dir>/log-index.db"), attached to every connection of the log as schema "ix":
 *
 *   ix.leaf(leaf_hash, idx)  every entry by its Merkle leaf hash (get-proof-by-hash)
 *   ix.dedup(key, idx)       submitted entries by their dedup key (a resubmission gets its first
 *                            SCT); the CA's own precertificates are not entered as they are
 *                            logged (each is new; a rebuild enters them too)
 *   ix.state(k, v)           'covered' (entries indexed), 'clean', 'boot'
 *
 * Why apart: each new entry lands on one random page of each index. Synced with every commit
 * (the log's synchronous=FULL) those pages were about 60 % of the bytes the log wrote per entry.
 * The index database is written in the same transactions as the entries but is not synced while
 * the log runs (synchronous=OFF): it can always be rebuilt from the entries, which carry both
 * hashes, and nothing is answered from it that the entries do not hold.
 *
 * Recovery, when the writer opens the log (ctlog_index_open_writer):
 *  - 'covered' is written in the transaction that indexes the entries. SQLite commits a
 *    transaction's main database before the attached one, so after the process dies the index
 *    can only be behind the entries: what it lacks is indexed again.
 *  - An unsynced database can be damaged when the machine stops (power loss, kernel crash). The
 *    index records, durably, the boot in which it was opened, and is synced and marked clean
 *    when the log closes: an index left unclean in an earlier boot is rebuilt.
 *  - Any other inconsistency (not a database, covering more entries than exist, the last covered
 *    entry missing from it) rebuilds it too. Each repair is logged with its reason.
 */
#ifndef FULCRUM_CT_LOG_INDEX_H
#define FULCRUM_CT_LOG_INDEX_H

#include <sqlite3.h>
#include <stddef.h>

/* "<dir>/log.db" -> "<dir>/log-index.db" (any other name: "<name>-index"). 0, or -1 if it does
 * not fit. */
int ctlog_index_path(const char *db_path, char *out, size_t outlen);

/* On the writer's connection (its main database has the entries table): attaches the index,
 * checks it, rebuilds or completes it, marks it in use in this boot (synced), then stops syncing
 * it. Returns 0, or -1 with a reason. */
int ctlog_index_open_writer(sqlite3 *db, const char *ix_path, char *why, size_t whylen);

/* Writer, before closing: checkpoints and syncs the index, then marks it clean (synced). 0 or
 * -1 (the index is then rebuilt at the next open if the machine stops first). */
int ctlog_index_close_writer(sqlite3 *db);

/* On a reader's connection: attaches the index (which the writer has set up). 0 or -1. */
int ctlog_index_attach_reader(sqlite3 *db, const char *ix_path, char *why, size_t whylen);

#endif
