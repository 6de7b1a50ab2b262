/* lock.h — one writer per data directory.
 *
 * LMDB lets several processes open one environment for writing; two
 * rapportd (or a rapportd and a `rapport --data DIR import`) on the same
 * directory would then both accept writes, each with its own writer queue
 * and idempotency state. The store refuses that at open: a writable open
 * takes an exclusive lock on the file `rapport.lock` in the data directory
 * (flock(2), so it is released by the kernel when the process dies, even
 * by kill -9) and writes the owner's pid into it, so that the refusal can
 * name the other process. Read-only opens take no lock.
 *
 * Not a public header: used by the store's lifecycle (store.c) only.
 */
#ifndef RP_STORE_LOCK_H
#define RP_STORE_LOCK_H

#include "core/error.h"

/* The lock file's name inside the data directory. */
#define RP_LOCK_FILE "rapport.lock"

/* Take the directory's writer lock.
 *   dir:    the data directory (must exist).
 *   fd_out: receives the lock's descriptor on success; the lock is held
 *           until rp_lock_release(*fd_out) or the process exits.
 * Returns RP_OK; RP_CONFLICT when another process (or another open in this
 * process) holds it — eb names the data directory and, when it can be
 * read, the owner's pid and command line; or the errno-mapped code when
 * the lock file cannot be opened (eb names the path). */
rp_err rp_lock_acquire(const char *dir, int *fd_out, rp_errbuf *eb);

/* Release a lock taken by rp_lock_acquire (closes fd). fd < 0 is a no-op.
 * The file stays (removing it would race with a new owner). */
void rp_lock_release(int fd);

#endif
