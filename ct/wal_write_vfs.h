/*
 * ct/wal_write_vfs.h: a SQLite VFS that writes a WAL file in one system call per commit.
 *
 * SQLite writes each WAL frame with two write(2) calls (its 24-byte header, then the page), and
 * on this kind of virtual machine a system call costs about a microsecond before any work: a
 * batch of thirty log entries dirties ~70 pages, so ~140 calls. This VFS wraps the default one
 * and, for WAL files only, gathers writes that continue the previous one in memory, then hands
 * them to the file in one write when SQLite next needs the file to hold them:
 *   - it syncs, reads, truncates, sizes or closes the WAL, or passes it a file control;
 *   - it publishes a commit to other connections: xShmBarrier on the WAL's database file, which
 *     SQLite calls between writing the two copies of the wal-index header that make new frames
 *     visible (walIndexWriteHdr), so no reader can be told of a frame still in memory;
 *   - a write does not continue the gathered ones, or they would exceed WAL_WRITE_VFS_MAX bytes
 *     (120 KiB: about thirty frames per call).
 * Durability is unchanged (the frames reach the file before any sync of it), and a crash loses
 * only frames that no commit had published. Other files (the databases, their wal-index) pass
 * through untouched.
 */
#ifndef FULCRUM_CT_WAL_WRITE_VFS_H
#define FULCRUM_CT_WAL_WRITE_VFS_H

#define WAL_WRITE_VFS_NAME "fulcrum-wal-write"
/* SQLite's unix VFS writes at most 128 KiB - 1 bytes per call (seekAndWriteFd). */
#define WAL_WRITE_VFS_MAX (120 * 1024)

/* Registers the VFS (not as the default) once per process; 0, or -1 if SQLite refused it. */
int wal_write_vfs_register(void);

/* write(2) calls this VFS made to WAL files since the process started (for tests). */
unsigned long wal_write_vfs_writes(void);

#endif
