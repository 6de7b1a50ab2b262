/* nats.h — a real NATS cluster (nats-server with JetStream) for the
 * cluster-mode e2e suites.
 *
 *     rp_nats ns;
 *     assert_int_equal(rp_nats_start(&ns, 3), 0);   // 3 servers, one cluster, ready
 *     ... "cluster_urls = <ns.urls>" in each rapportd's config ...
 *     rp_nats_kill9(&ns, 1);                         // crash one
 *     rp_nats_restart(&ns, 1);                       // same ports and store
 *     rp_nats_cleanup(&ns);                          // kill all, remove the directory
 *
 * Each server gets its own JetStream store under a mkdtemp directory and
 * three free loopback ports (clients, routes, monitoring); a port taken in
 * between picking and binding makes that server exit, and the whole start
 * is retried with new ports (three times). Readiness is polled, never
 * slept for: a server is ready when its monitoring endpoint answers
 * GET /healthz with 200 (nats-server 2.9: JetStream enabled and current).
 * The servers die with the test process (PR_SET_PDEATHSIG). Their output
 * goes to <dir>/nats<i>.log; rp_nats_dump prints it.
 *
 * Header-only; needs harness.h (rp_h_free_port, rp_h_now_ms, rp_h_sleep_ms).
 */
#ifndef RP_E2E_NATS_H
#define RP_E2E_NATS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e/harness.h"

#define RP_NATS_MAX 5
#define RP_NATS_BIN "nats-server"

typedef struct rp_nats {
    char dir[256];
    int n;
    int port[RP_NATS_MAX], cport[RP_NATS_MAX], mport[RP_NATS_MAX];
    pid_t pid[RP_NATS_MAX];
    char urls[512]; /* nats://127.0.0.1:P1,nats://127.0.0.1:P2,... */
} rp_nats;

/* GET /healthz on the monitoring port: the HTTP status, or -1. */
static inline int rp_nats_health(const rp_nats *ns, int i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ns->mport[i])};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int status = -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        const char *req = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        char buf[256] = {0};
        if (send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req)) {
            ssize_t r = recv(fd, buf, sizeof buf - 1, 0);
            if (r > 12 && strncmp(buf, "HTTP/1.", 7) == 0) status = atoi(buf + 9);
        }
    }
    close(fd);
    return status;
}

/* Spawn server i (its ports already picked). Returns 0 or -1. */
static inline int rp_nats_spawn(rp_nats *ns, int i) {
    char port[16], mport[16], cluster[64], name[16], sd[300], log[300], routes[400] = "";
    snprintf(port, sizeof port, "%d", ns->port[i]);
    snprintf(mport, sizeof mport, "%d", ns->mport[i]);
    snprintf(cluster, sizeof cluster, "nats://127.0.0.1:%d", ns->cport[i]);
    snprintf(name, sizeof name, "n%d", i + 1);
    snprintf(sd, sizeof sd, "%s/js%d", ns->dir, i + 1);
    snprintf(log, sizeof log, "%s/nats%d.log", ns->dir, i + 1);
    for (int k = 0, off = 0; k < ns->n; k++)
        off += snprintf(routes + off, sizeof routes - (size_t)off, "%snats://127.0.0.1:%d", k ? "," : "",
                        ns->cport[k]);
    const char *const argv[] = {RP_NATS_BIN, "-a", "127.0.0.1", "-p", port, "-n", name, "-js", "-sd", sd,
                                "-m", mport, "--cluster", cluster, "--cluster_name", "rptest", "--routes",
                                routes, NULL};
    pid_t pid = rp_h_fork_exec(log, argv, true);
    if (pid < 0) return -1;
    ns->pid[i] = pid;
    return 0;
}

/* Wait until every running server answers /healthz 200 (0), or one died
 * or timeout_ms passed (-1). */
static inline int rp_nats_wait_ready(rp_nats *ns, int timeout_ms) {
    long long deadline = rp_h_now_ms() + timeout_ms;
    for (;;) {
        int ready = 0, running = 0;
        for (int i = 0; i < ns->n; i++) {
            if (ns->pid[i] == 0) continue;
            running++;
            int st;
            if (waitpid(ns->pid[i], &st, WNOHANG) == ns->pid[i]) {
                ns->pid[i] = 0;
                return -1;
            }
            if (rp_nats_health(ns, i) == 200) ready++;
        }
        if (ready == running) return 0;
        if (rp_h_now_ms() > deadline) return -1;
        rp_h_sleep_ms(50);
    }
}

/* Print the servers' logs (for a failing test). */
static inline void rp_nats_dump(const rp_nats *ns) {
    for (int i = 0; i < ns->n; i++) {
        char p[300], line[1024];
        snprintf(p, sizeof p, "%s/nats%d.log", ns->dir, i + 1);
        FILE *f = fopen(p, "r");
        if (f == NULL) continue;
        fprintf(stderr, "---- %s ----\n", p);
        while (fgets(line, sizeof line, f)) fputs(line, stderr);
        fclose(f);
    }
}

/* SIGKILL server i and reap it. */
static inline void rp_nats_kill9(rp_nats *ns, int i) {
    if (ns->pid[i] == 0) return;
    kill(ns->pid[i], SIGKILL);
    waitpid(ns->pid[i], NULL, 0);
    ns->pid[i] = 0;
}

/* Start server i again (same ports and store) and wait for it. */
static inline int rp_nats_restart(rp_nats *ns, int i) {
    if (ns->pid[i] != 0) return -1;
    if (rp_nats_spawn(ns, i) != 0) return -1;
    return rp_nats_wait_ready(ns, 30000);
}

/* Kill every server; remove the directory. */
static inline void rp_nats_cleanup(rp_nats *ns) {
    for (int i = 0; i < ns->n; i++) rp_nats_kill9(ns, i);
    if (ns->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", ns->dir);
        if (system(cmd) != 0) fprintf(stderr, "nats.h: could not remove %s\n", ns->dir);
        ns->dir[0] = '\0';
    }
}

/* Start n servers as one cluster and wait until all are ready. Returns 0,
 * or -1 (logs dumped, everything cleaned up). */
static inline int rp_nats_start(rp_nats *ns, int n) {
    memset(ns, 0, sizeof *ns);
    if (n < 1 || n > RP_NATS_MAX) return -1;
    ns->n = n;
    const char *tmp = getenv("TMPDIR");
    snprintf(ns->dir, sizeof ns->dir, "%s/rp-nats-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(ns->dir) == NULL) return -1;
    for (int attempt = 0; attempt < 3; attempt++) {
        int off = 0;
        for (int i = 0; i < n; i++) {
            ns->port[i] = rp_h_free_port();
            ns->cport[i] = rp_h_free_port();
            ns->mport[i] = rp_h_free_port();
            off += snprintf(ns->urls + off, sizeof ns->urls - (size_t)off, "%snats://127.0.0.1:%d",
                            i ? "," : "", ns->port[i]);
        }
        int ok = 1;
        for (int i = 0; i < n && ok; i++) ok = rp_nats_spawn(ns, i) == 0;
        if (ok && rp_nats_wait_ready(ns, 30000) == 0) return 0;
        for (int i = 0; i < n; i++) rp_nats_kill9(ns, i);
    }
    rp_nats_dump(ns);
    rp_nats_cleanup(ns);
    return -1;
}

#endif
