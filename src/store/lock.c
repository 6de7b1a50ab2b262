/* lock.c — one writer per data directory (see lock.h). */
#include "store/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/config.h"

/* How much of the owner's command line a refusal quotes. */
#define LOCK_CMDLINE_MAX 96

/* The owner's pid as written in the lock file; 0 when unreadable. */
static long lock_read_pid(int fd) {
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *end = NULL;
    long pid = strtol(buf, &end, 10);
    return (end != buf && pid > 0) ? pid : 0;
}

/* The command line of pid, arguments joined by spaces, into out (""
 * when it cannot be read: another user's process, or gone meanwhile). */
static void lock_cmdline(long pid, char out[LOCK_CMDLINE_MAX + 1]) {
    char path[64];
    out[0] = '\0';
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, out, LOCK_CMDLINE_MAX);
    close(fd);
    if (n <= 0) return;
    out[n] = '\0';
    while (n > 0 && out[n - 1] == '\0') n--; /* the last argument's NUL */
    for (ssize_t i = 0; i < n; i++)
        if (out[i] == '\0') out[i] = ' ';
}

/* Fill eb with the refusal, naming the owner when the file tells it (the
 * pid and command line first: a long data path is what gets cut). */
static rp_err lock_refuse(int fd, const char *dir, rp_errbuf *eb) {
    long pid = lock_read_pid(fd);
    if (pid == 0)
        return rp_errf(eb, RP_CONFLICT,
                       "another rapport process is writing to data directory '%s'; stop it first "
                       "(read-only 'rapport --data' beside it is fine)", dir);
    char cmd[LOCK_CMDLINE_MAX + 1];
    lock_cmdline(pid, cmd);
    return rp_errf(eb, RP_CONFLICT,
                   "another rapport process (pid %ld%s%s) is writing to data directory '%s'; stop it "
                   "first (read-only 'rapport --data' beside it is fine)",
                   pid, cmd[0] ? ": " : "", cmd, dir);
}

/* Record our pid in the lock file (best effort: it only improves the
 * message another process prints). */
static void lock_write_pid(int fd) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)n, 0) != n) {
        /* nothing to do: the lock itself is held */
    }
}

rp_err rp_lock_acquire(const char *dir, int *fd_out, rp_errbuf *eb) {
    char path[RP_PATH_MAX + sizeof RP_LOCK_FILE + 1];
    int n = snprintf(path, sizeof path, "%s/%s", dir, RP_LOCK_FILE);
    if (n < 0 || (size_t)n >= sizeof path)
        return rp_errf(eb, RP_BAD_REQUEST, "data directory path is too long");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        return rp_errf(eb, rp_err_from_errno(e), "cannot open '%s': %s", path, strerror(e));
    }
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EINTR) continue;
        rp_err rc = e == EWOULDBLOCK ? lock_refuse(fd, dir, eb)
                                     : rp_errf(eb, rp_err_from_errno(e), "cannot lock '%s': %s", path,
                                               strerror(e));
        close(fd);
        return rc;
    }
    lock_write_pid(fd);
    *fd_out = fd;
    return RP_OK;
}

void rp_lock_release(int fd) {
    if (fd >= 0) close(fd); /* closing the only descriptor releases the flock */
}
