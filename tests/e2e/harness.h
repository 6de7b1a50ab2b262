/* harness.h — run the real rapportd for end-to-end tests.
 *
 * A test gets a private server: a fresh directory from mkdtemp (data store,
 * config file, log), free loopback ports for MessagePack-RPC and HTTP, and
 * the build's rapportd binary (RP_BINARY_DIR/rapportd) spawned on them.
 * rp_h_start returns once the server answers ping; rp_h_stop sends SIGTERM
 * and returns the exit status; rp_h_kill9 simulates a crash; rp_h_restart
 * starts the same server again on the same data and ports.
 *
 *     static void test_x(void **state) {
 *         rp_h *h = *state;                                  // from rp_h_setup
 *         assert_int_equal(rp_h_start(h, "durability = sync\n"), 0);
 *         rp_client *c = rp_h_connect(h);
 *         ...
 *         rp_client_close(c);
 *         assert_int_equal(rp_h_stop(h), 0);                 // SIGTERM: exit 0
 *     }                                 // rp_h_teardown removes the directory
 *     ...
 *     cmocka_unit_test_setup_teardown(test_x, rp_h_setup, rp_h_teardown),
 *
 * Ports are picked by binding port 0 and closing; another process could
 * take one in between, so a start that fails with "address in use" is
 * retried with new ports (three times). The server's stderr goes to
 * <dir>/rapportd.log; rp_h_dump_log prints it (call it when a test fails).
 *
 * A server never outlives its test process (PR_SET_PDEATHSIG; it fires when
 * the *thread* that spawned it ends, so spawn from the main thread). A cmocka
 * assertion jumps out of the test function, so give each test an rp_h from
 * a setup function and call rp_h_cleanup in the teardown (rp_h_setup and
 * rp_h_teardown below do that): the server is then killed and the
 * directory removed even when the test fails.
 *
 * Header-only (static inline) so that every e2e test file can include it;
 * it needs the client library (net/client.h), which e2e tests link.
 */
#ifndef RP_E2E_HARNESS_H
#define RP_E2E_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/client.h"

#ifndef RP_BINARY_DIR
#error "RP_BINARY_DIR must be defined (the CMake build does it)"
/* cmocka setup/teardown: *state is a zeroed rp_h, cleaned up afterwards
 * whatever the test did (use with cmocka_unit_test_setup_teardown). */
static inline int rp_h_setup(void **state) {
    rp_h *h = calloc(1, sizeof *h);
    *state = h;
    return h ? 0 : -1;
}

static inline int rp_h_teardown(void **state) {
    rp_h *h = *state;
    if (h) rp_h_cleanup(h);
    free(h);
    *state = NULL;
    return 0;
}

#endif

typedef struct rp_h {
    char dir[256];      /* the test's private directory */
    char data[320];     /* dir/data: the store */
    char conf[320];     /* dir/rapportd.conf */
    char log[320];      /* dir/rapportd.log: the server's stderr */
    char addr[64];      /* "127.0.0.1:PORT" of MessagePack-RPC */
    char http_addr[64]; /* "127.0.0.1:PORT" of HTTP */
    int port, http_port;
    pid_t pid;          /* 0 when not running */
    char extra[8192];   /* config lines added after the harness's own */
} rp_h;

/* Milliseconds on the monotonic clock. */
static inline long long rp_h_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void rp_h_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A loopback port that was free a moment ago; 0 on failure. */
static inline int rp_h_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Write the config file: the harness's settings, then h->extra (later
 * lines win, so extra may override anything). Returns 0 or -1. */
static inline int rp_h_write_config(rp_h *h) {
    FILE *f = fopen(h->conf, "w");
    if (f == NULL) return -1;
    fprintf(f,
            "# written by tests/e2e/harness.h\n"
            "data = %s\n"
            "listen = %s\n"
            "http = %s\n"
            "threads = 2\n"
            "map_initial = 8388608\n"
            "%s\n",
            h->data, h->addr, h->http_addr, h->extra);
    return fclose(f) == 0 ? 0 : -1;
}

/* Pick ports and fill the addresses. */
static inline int rp_h_pick_ports(rp_h *h) {
    h->port = rp_h_free_port();
    h->http_port = rp_h_free_port();
    if (h->port == 0 || h->http_port == 0 || h->port == h->http_port) return -1;
    snprintf(h->addr, sizeof h->addr, "127.0.0.1:%d", h->port);
    snprintf(h->http_addr, sizeof h->http_addr, "127.0.0.1:%d", h->http_port);
    return 0;
}

/* Create the directory and config (does not start the server). */
static inline int rp_h_init(rp_h *h, const char *extra_config) {
    memset(h, 0, sizeof *h);
    const char *tmp = getenv("TMPDIR");
    snprintf(h->dir, sizeof h->dir, "%s/rp-e2e-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(h->dir) == NULL) return -1;
    snprintf(h->data, sizeof h->data, "%s/data", h->dir);
    snprintf(h->conf, sizeof h->conf, "%s/rapportd.conf", h->dir);
    snprintf(h->log, sizeof h->log, "%s/rapportd.log", h->dir);
    if (extra_config) snprintf(h->extra, sizeof h->extra, "%s", extra_config);
    if (rp_h_pick_ports(h) != 0) return -1;
    return rp_h_write_config(h);
}

/* fork + exec argv (argv[0] a path, or a name looked up in PATH), stdin
 * from /dev/null, stderr — and stdout too when out_to_log, else
 * /dev/null — appended to log. The child dies with the test (a test that
 * fails an assertion and exits takes its servers with it). Returns the
 * child's pid, or -1. */
static inline pid_t rp_h_fork_exec(const char *log, const char *const *argv, bool out_to_log) {
    int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            if (!out_to_log) dup2(devnull, 1);
        }
        if (out_to_log) dup2(logfd, 1);
        dup2(logfd, 2);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(logfd);
    return pid;
}

/* fork + exec rapportd --config conf [args...], stderr appended to the log.
 * args: NULL-terminated extra arguments, or NULL. */
static inline int rp_h_spawn_args(rp_h *h, const char *const *args) {
    char bin[512];
    snprintf(bin, sizeof bin, "%s/rapportd", RP_BINARY_DIR);
    const char *argv[32] = {bin, "--config", h->conf};
    int n = 3;
    for (int i = 0; args && args[i] && n < 31; i++) argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = rp_h_fork_exec(h->log, argv, false);
    if (pid < 0) return -1;
    h->pid = pid;
    return 0;
}

static inline int rp_h_spawn(rp_h *h) { return rp_h_spawn_args(h, NULL); }

/* Exit status of a waitpid status word: the code, or 128 + signal. */
static inline int rp_h_status(int st) {
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

/* Wait until the server answers ping (0), or died / timed out (-1). */
static inline int rp_h_wait_ready(rp_h *h, int timeout_ms) {
    long long deadline = rp_h_now_ms() + timeout_ms;
    while (rp_h_now_ms() < deadline) {
        int st;
        if (waitpid(h->pid, &st, WNOHANG) == h->pid) {
            h->pid = 0;
            return -1;
        }
        rp_client *c = NULL;
        rp_errbuf eb = {0};
        if (rp_client_connect(h->addr, 1000, &c, &eb) == RP_OK) {
            msgpack_object res;
            rp_err rc = rp_client_call(c, "ping", NULL, 0, &res, &eb);
            rp_client_close(c);
            if (rc == RP_OK) return 0;
        }
        rp_h_sleep_ms(20);
    }
    return -1;
}

/* Print the server's log to stderr (for a failing test). */
static inline void rp_h_dump_log(const rp_h *h) {
    FILE *f = fopen(h->log, "r");
    if (f == NULL) return;
    fprintf(stderr, "---- %s ----\n", h->log);
    char line[2048];
    while (fgets(line, sizeof line, f)) fputs(line, stderr);
    fprintf(stderr, "---- end of log ----\n");
    fclose(f);
}

/* Does the log mention s? */
static inline int rp_h_log_has(const rp_h *h, const char *s) {
    FILE *f = fopen(h->log, "r");
    if (f == NULL) return 0;
    char line[2048];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, s) != NULL;
    fclose(f);
    return found;
}

/* Spawn and wait for ping; on "address in use" pick new ports and retry.
 * Returns 0, or -1 (log dumped). */
static inline int rp_h_launch(rp_h *h) {
    for (int attempt = 0; attempt < 3; attempt++) {
        if (rp_h_spawn(h) != 0) return -1;
        if (rp_h_wait_ready(h, 30000) == 0) return 0;
        if (h->pid != 0) { /* alive but silent: give up */
            kill(h->pid, SIGKILL);
            waitpid(h->pid, NULL, 0);
            h->pid = 0;
            break;
        }
        if (!rp_h_log_has(h, "CONFLICT")) break; /* not a port race */
        if (rp_h_pick_ports(h) != 0 || rp_h_write_config(h) != 0) break;
    }
    rp_h_dump_log(h);
    return -1;
}

/* rp_h_init + launch. Returns 0 or -1. */
static inline int rp_h_start(rp_h *h, const char *extra_config) {
    if (rp_h_init(h, extra_config) != 0) return -1;
    return rp_h_launch(h);
}

/* Wait for the server to exit, at most timeout_ms (then SIGKILL).
 * Returns its exit status (128+signal when killed by one), -1 on timeout. */
static inline int rp_h_wait_exit(rp_h *h, int timeout_ms) {
    if (h->pid == 0) return -1;
    long long deadline = rp_h_now_ms() + timeout_ms;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(h->pid, &st, WNOHANG);
        if (r == h->pid) break;
        if (r < 0 && errno != EINTR) {
            h->pid = 0;
            return -1;
        }
        if (rp_h_now_ms() >= deadline) {
            kill(h->pid, SIGKILL);
            waitpid(h->pid, NULL, 0);
            h->pid = 0;
            return -1;
        }
        rp_h_sleep_ms(5);
    }
    h->pid = 0;
    return rp_h_status(st);
}

/* SIGTERM, then wait (30 s). Returns the exit status (0 = clean). */
static inline int rp_h_stop(rp_h *h) {
    if (h->pid == 0) return -1;
    kill(h->pid, SIGTERM);
    return rp_h_wait_exit(h, 30000);
}

/* Crash it: SIGKILL and reap. */
static inline void rp_h_kill9(rp_h *h) {
    if (h->pid == 0) return;
    kill(h->pid, SIGKILL);
    waitpid(h->pid, NULL, 0);
    h->pid = 0;
}

/* Start the same server again (same data, config and ports). */
static inline int rp_h_restart(rp_h *h) {
    if (h->pid != 0) return -1;
    return rp_h_launch(h);
}

/* Connect a client to the RPC port (NULL on failure). */
static inline rp_client *rp_h_connect(const rp_h *h) {
    rp_client *c = NULL;
    rp_errbuf eb = {0};
    if (rp_client_connect(h->addr, 10000, &c, &eb) != RP_OK) {
        fprintf(stderr, "harness: connect %s: %s\n", h->addr, eb.msg);
        return NULL;
    }
    return c;
}

/* A raw TCP socket to the RPC port (blocking, with a 10 s receive time-out),
 * for tests that send bytes no client would. -1 on failure. */
static inline int rp_h_raw_connect(const rp_h *h) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline int rp_h_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Kill the server if it still runs and remove the directory. */
static inline void rp_h_cleanup(rp_h *h) {
    rp_h_kill9(h);
    if (h->dir[0]) nftw(h->dir, rp_h_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    h->dir[0] = '\0';
}

/* cmocka setup/teardown: *state is a zeroed rp_h, cleaned up afterwards
 * whatever the test did (use with cmocka_unit_test_setup_teardown). */
static inline int rp_h_setup(void **state) {
    rp_h *h = calloc(1, sizeof *h);
    *state = h;
    return h ? 0 : -1;
}

static inline int rp_h_teardown(void **state) {
    rp_h *h = *state;
    if (h) rp_h_cleanup(h);
    free(h);
    *state = NULL;
    return 0;
}

#endif
