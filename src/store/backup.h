/* backup.h — a consistent online copy of a live store (rp_store_backup).
 *
 * The copy is LMDB's own compacting copy (mdb_env_copyfd2 with
 * MDB_CP_COMPACT, the fd form of mdb_env_copy2): it walks one read
 * transaction's snapshot, so the copy is the store exactly as it was when
 * that transaction began, and the writer keeps committing meanwhile (MVCC).
 * Free pages are left out, so the copy is usually smaller than data.mdb.
 *
 * Layout and crash safety. DIR must be an absolute path that does not exist
 * yet (it is created 0700; its parent must exist) or an empty directory. The
 * copy is written to DIR/data.mdb.partial (0600), fsynced, and only then
 * renamed to DIR/data.mdb without replacing anything (renameat2
 * RENAME_NOREPLACE, or link + unlink where the file system lacks it), and DIR
 * is fsynced. A crash mid-backup therefore leaves at most a data.mdb.partial
 * and never a data.mdb that looks valid. On any failure the partial file is
 * removed, and DIR too when this call created it.
 *
 * Restore: stop rapportd and start it with --data DIR (or data = DIR); the
 * lock file is created on first open.
 *
 * Cost and interaction with the server. The copy reads the whole live data
 * set once and writes the compacted copy (seconds per GiB). It holds one read
 * transaction (pinning the pages of its snapshot, so the file may grow while
 * writes go on) and the store's map lock for reading, because LMDB may not
 * remap the map under an open read transaction of this process: a write that
 * needs the map to grow waits until the backup ends, and, the map lock
 * preferring writers, so do the reads that begin after it. Size map_initial
 * so that the map does not have to grow during a backup.
 *
 * Thread safety: any thread, on a read-write or read-only store. Callers
 * that want one backup at a time serialize themselves (the api's `backup`
 * operation does).
 */
#ifndef RP_STORE_BACKUP_H
#define RP_STORE_BACKUP_H

#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "store/store.h"

/* The name of the file a backup writes before its rename to data.mdb. */
#define RP_BACKUP_PARTIAL "data.mdb.partial"

typedef struct rp_backup_info {
    char dir[RP_PATH_MAX];        /* DIR as used (trailing slashes removed) */
    char path[RP_PATH_MAX + 16];  /* DIR/data.mdb */
    uint64_t bytes;               /* size of the copy */
    uint64_t duration_ms;         /* from the call to the final fsync */
} rp_backup_info;

/* Copy the live store s into directory dir (NUL-terminated; the rules are
 * above). *out (may be NULL) is filled on success only.
 * Returns RP_OK, or:
 *   RP_BAD_REQUEST  dir is empty, not absolute, too long, or a component of
 *                   it is not a directory;
 *   RP_NOT_FOUND    the parent of dir does not exist;
 *   RP_CONFLICT     dir exists and is not an empty directory (it is never
 *                   written to), or a data.mdb appeared in it meanwhile;
 *   RP_FORBIDDEN    permission denied (or a read-only file system);
 *   RP_STORE_FULL   no space left (ENOSPC, EDQUOT) while writing the copy;
 *   RP_UNAVAILABLE  out of memory / file descriptors, reader table full;
 *   RP_INTERNAL     any other I/O or LMDB error.
 * eb names the path and the failing step. */
rp_err rp_store_backup(rp_store *s, const char *dir, rp_backup_info *out, rp_errbuf *eb);

#endif
