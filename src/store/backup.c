/* backup.c — a consistent online copy of a live store (backup.h).
 *
 * Steps, each with its own error sentence: check DIR (absolute, not too
 * long), create it 0700 or check that it is an empty directory, open
 * DIR/data.mdb.partial with O_EXCL, copy (mdb_env_copyfd2, MDB_CP_COMPACT)
 * under a read transaction of the store (rp_store_rbegin: it holds the map
 * lock, so the writer cannot remap the map under the copy, and it adopts a
 * map another process grew), fsync the file, rename it to data.mdb without
 * replacing anything, fsync DIR (and DIR's parent when DIR was created
 * here). Everything undone on failure goes through the one `fail` label.
 *
 * Only store.h's API is used, plus rp_store_env() for the copy itself.
 */
#include "store/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BK_FINAL "data.mdb"
#define BK_RESIZE_RETRIES 4 /* the map grown by another process during the copy */

/* CLOCK_MONOTONIC in milliseconds. */
static uint64_t bk_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* errno e as an rp_err: the core mapping, plus the cases a backup meets
 * that it does not name. */
static rp_err bk_code(int e) {
    switch (e) {
    case EROFS: return RP_FORBIDDEN;
    case ENOTDIR:
    case ENAMETOOLONG:
    case ELOOP: return RP_BAD_REQUEST;
    default: break;
    }
    rp_err rc = rp_err_from_errno(e);
    return rc == RP_OK ? RP_INTERNAL : rc;
}

/* "<what> '<path>': <strerror>" with e's code; ENOSPC says so plainly. */
static rp_err bk_errno(rp_errbuf *eb, int e, const char *what, const char *path) {
    if (e == ENOSPC || e == EDQUOT)
        return rp_errf(eb, RP_STORE_FULL, "no space left %s '%s' (%s)", what, path, strerror(e));
    return rp_errf(eb, bk_code(e), "%s '%s': %s", what, path, strerror(e));
}

/* fsync the directory at path (its entries: a rename, a mkdir). */
static int bk_fsync_path(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

/* Is the directory open at dirfd empty (nothing but . and ..)? *first gets
 * the first entry found. Returns 1 empty, 0 not, -1 error (errno). */
static int bk_dir_empty(int dirfd, char *first, size_t cap) {
    int fd = dup(dirfd);
    if (fd < 0) return -1;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int empty = 1;
    errno = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL; errno = 0) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        snprintf(first, cap, "%s", de->d_name);
        empty = 0;
        break;
    }
    int e = errno;
    closedir(d);
    if (empty && e != 0) {
        errno = e;
        return -1;
    }
    return empty;
}

/* Rename DIR/data.mdb.partial to DIR/data.mdb, never replacing a file. */
static int bk_rename_noreplace(int dirfd) {
#ifdef RENAME_NOREPLACE
    if (renameat2(dirfd, RP_BACKUP_PARTIAL, dirfd, BK_FINAL, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
#endif
    /* no RENAME_NOREPLACE here: link() refuses an existing name too */
    if (linkat(dirfd, RP_BACKUP_PARTIAL, dirfd, BK_FINAL, 0) != 0) return -1;
    return unlinkat(dirfd, RP_BACKUP_PARTIAL, 0);
}

/* Write the compacted copy to fd under a read transaction of s. */
static rp_err bk_copy(rp_store *s, int fd, const char *path, rp_errbuf *eb) {
    for (int attempt = 0; attempt < BK_RESIZE_RETRIES; attempt++) {
        MDB_txn *txn = NULL;
        rp_err rc = rp_store_rbegin(s, &txn, eb);
        if (rc != RP_OK) return rc;
        /* The copy runs its own read transaction; ours holds the map lock
         * so that no resize unmaps the map under it. */
        int mrc = mdb_env_copyfd2(rp_store_env(s), fd, MDB_CP_COMPACT);
        rp_store_rend(s, txn);
        if (mrc == 0) return RP_OK;
        if (mrc == MDB_MAP_RESIZED && ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0)
            continue; /* the next rbegin adopts the new size */
        if (mrc > 0) return bk_errno(eb, mrc, "writing the copy to", path);
        return rp_errf(eb, rp_err_from_mdb(mrc) == RP_OK ? RP_INTERNAL : rp_err_from_mdb(mrc),
                       "copying the store to '%s': %s", path, mdb_strerror(mrc));
    }
    return rp_errf(eb, RP_UNAVAILABLE, "the map kept being resized during the backup; retry");
}

rp_err rp_store_backup(rp_store *s, const char *dir, rp_backup_info *out, rp_errbuf *eb) {
    uint64_t t0 = bk_now_ms();
    if (s == NULL) return rp_errf(eb, RP_INTERNAL, "backup: no store");
    if (dir == NULL || dir[0] == '\0') return rp_errf(eb, RP_BAD_REQUEST, "backup directory is empty");
    size_t n = strlen(dir);
    if (n >= RP_PATH_MAX)
        return rp_errf(eb, RP_BAD_REQUEST, "backup directory is longer than %d bytes", RP_PATH_MAX - 1);
    if (dir[0] != '/')
        return rp_errf(eb, RP_BAD_REQUEST, "backup directory must be an absolute path (got '%s')", dir);

    rp_backup_info info;
    memset(&info, 0, sizeof info);
    memcpy(info.dir, dir, n + 1);
    while (n > 1 && info.dir[n - 1] == '/') info.dir[--n] = '\0';
    snprintf(info.path, sizeof info.path, "%s%s" BK_FINAL, info.dir, n > 1 ? "/" : "");
    char partial[RP_PATH_MAX + 32];
    snprintf(partial, sizeof partial, "%s%s" RP_BACKUP_PARTIAL, info.dir, n > 1 ? "/" : "");

    rp_err rc = RP_OK;
    bool created = false, have_partial = false, have_final = false;
    int dirfd = -1, fd = -1;

    /* DIR: create it, or accept an empty directory */
    if (mkdir(info.dir, 0700) == 0) {
        created = true;
    } else if (errno == ENOENT) {
        return rp_errf(eb, RP_NOT_FOUND, "the parent directory of '%s' does not exist", info.dir);
    } else if (errno != EEXIST) {
        return bk_errno(eb, errno, "cannot create the backup directory", info.dir);
    }
    dirfd = open(info.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        int e = errno;
        if (e == ENOTDIR)
            rc = rp_errf(eb, RP_CONFLICT, "'%s' exists and is not a directory", info.dir);
        else
            rc = bk_errno(eb, e, "cannot open the backup directory", info.dir);
        goto fail;
    }
    if (!created) {
        char first[256] = "";
        int empty = bk_dir_empty(dirfd, first, sizeof first);
        if (empty < 0) {
            rc = bk_errno(eb, errno, "cannot list the backup directory", info.dir);
            goto fail;
        }
        if (!empty) {
            rc = rp_errf(eb, RP_CONFLICT,
                         "'%s' is not empty (it holds '%s'); a backup never overwrites: name a new "
                         "or empty directory", info.dir, first);
            goto fail;
        }
    }

    /* the copy, under its temporary name */
    fd = openat(dirfd, RP_BACKUP_PARTIAL, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = bk_errno(eb, errno, "cannot create", partial);
        goto fail;
    }
    have_partial = true;
    rc = bk_copy(s, fd, partial, eb);
    if (rc != RP_OK) goto fail;
    if (fsync(fd) != 0) {
        rc = bk_errno(eb, errno, "cannot flush", partial);
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = bk_errno(eb, errno, "cannot stat", partial);
        goto fail;
    }
    info.bytes = (uint64_t)st.st_size;
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) {
        rc = bk_errno(eb, errno, "cannot close", partial);
        goto fail;
    }

    /* complete and on disk: give it its real name */
    if (bk_rename_noreplace(dirfd) != 0) {
        int e = errno;
        if (e == EEXIST)
            rc = rp_errf(eb, RP_CONFLICT, "'%s' appeared during the backup; left it alone", info.path);
        else
            rc = bk_errno(eb, e, "cannot rename the copy to", info.path);
        goto fail;
    }
    have_partial = false;
    have_final = true;
    if (fsync(dirfd) != 0) {
        rc = bk_errno(eb, errno, "cannot flush the directory", info.dir);
        goto fail;
    }
    if (created) {
        char parent[RP_PATH_MAX];
        snprintf(parent, sizeof parent, "%s", info.dir);
        char *slash = strrchr(parent, '/');
        if (slash == parent) slash[1] = '\0';
        else if (slash) *slash = '\0';
        if (bk_fsync_path(parent) != 0) {
            rc = bk_errno(eb, errno, "cannot flush the directory", parent);
            goto fail;
        }
    }
    close(dirfd);
    info.duration_ms = bk_now_ms() - t0;
    if (out) *out = info;
    return RP_OK;

fail:
    /* a data.mdb whose name may not be durable is not left behind: the
     * caller was told the backup failed */
    if (have_final) unlinkat(dirfd, BK_FINAL, 0);
    if (fd >= 0) close(fd);
    if (have_partial) unlinkat(dirfd, RP_BACKUP_PARTIAL, 0);
    if (dirfd >= 0) close(dirfd);
    if (created) rmdir(info.dir);
    return rc;
}
