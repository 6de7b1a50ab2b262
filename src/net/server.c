/* server.c — listening sockets, worker threads, graceful shutdown (server.h).
 *
 * Workers. Each worker owns an rp_loop (one event_base) and runs it on its
 * own thread; its rp_rpc and rp_http watch the shared listening sockets.
 * The controlling thread never touches a worker's connections: it posts
 * small jobs into the worker's mailbox (stop accepting, start draining)
 * and reads back what the worker publishes in atomics (open connections,
 * requests in flight), refreshed every few milliseconds by a probe timer
 * that runs only during shutdown.
 *
 * Signals. The workers are created with SIGINT, SIGTERM, SIGHUP, SIGQUIT
 * and SIGPIPE blocked, so a signal meant for the process is handled on the
 * main thread (rapportd's own event loop), and a worker's system calls are
 * never interrupted by it.
 *
 * Limits: waits for the workers poll every 2 ms (shutdown only). A worker
 * that does not answer within its bound is reported, and its memory is
 * left allocated rather than freed while it might still run.
 */
#include "net/server.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "net/http.h"
#include "net/log.h"
#include "net/rpc.h"

#define SERVER_BACKLOG 1024
#define SERVER_PROBE_MS 5
#define SERVER_ACK_WAIT_MS 5000
#define SERVER_INFLIGHT_WAIT_MS 60000
#define SERVER_UNKNOWN UINT32_MAX

typedef struct rp_worker {
    struct rp_server *srv;
    unsigned index;
    rp_loop *loop;
    rp_rpc *rpc;
    rp_http *http;
    struct event *probe;
    pthread_t tid;
    bool running;
    rp_loop_item it_stop, it_drain;
    atomic_bool stop_acked;
    atomic_uint pub_conns;    /* open RPC connections (SERVER_UNKNOWN before the first probe) */
    atomic_uint pub_inflight; /* requests inside the api, both faces */
} rp_worker;

struct rp_server {
    rp_config cfg;
    rp_api *api;
    rp_net_stats stats;
    rp_rpc_group group;
    int rpc_fd, http_fd;
    int rpc_port, http_port;
    char rpc_addr[192], http_addr[192];
    unsigned nworkers;
    rp_worker *workers;
    bool accepting_stopped;
    bool drain_posted;
    bool leak_workers; /* a worker did not finish: never free under it */
};

/* --- addresses ---------------------------------------------------------------- */

/* Split "HOST:PORT" ("[v6]:PORT", ":PORT" = every interface). */
static rp_err split_hostport(const char *what, const char *hp, char *host, size_t hn, char *port,
                             size_t pn, rp_errbuf *eb) {
    const char *colon = strrchr(hp, ':');
    if (colon == NULL || colon[1] == '\0')
        return rp_errf(eb, RP_BAD_REQUEST, "%s: '%s' is not HOST:PORT", what, hp);
    const char *h = hp;
    size_t hl = (size_t)(colon - hp);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    } else if (memchr(h, ':', hl) != NULL) {
        return rp_errf(eb, RP_BAD_REQUEST, "%s: write an IPv6 address as [ADDR]:PORT", what);
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    if (hl >= hn || pl >= pn || pl > 5 || strspn(p, "0123456789") != pl)
        return rp_errf(eb, RP_BAD_REQUEST, "%s: '%s' is not HOST:PORT", what, hp);
    if (atoi(p) > 65535) return rp_errf(eb, RP_BAD_REQUEST, "%s: port %s is out of range", what, p);
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, p, pl + 1);
    return RP_OK;
}

/* Is this socket address a loopback one (127/8, ::1, v4-mapped 127/8)? */
static bool addr_loopback(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr)) return true;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) return a->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

/* Resolve hp for binding. *res is freed by the caller (freeaddrinfo). */
static rp_err resolve(const char *what, const char *hp, struct addrinfo **res, rp_errbuf *eb) {
    char host[160], port[8];
    rp_err rc = split_hostport(what, hp, host, sizeof host, port, sizeof port, eb);
    if (rc != RP_OK) return rc;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    int g = getaddrinfo(host[0] ? host : NULL, port, &hints, res);
    if (g != 0) return rp_errf(eb, RP_BAD_REQUEST, "%s: cannot resolve '%s': %s", what, hp, gai_strerror(g));
    return RP_OK;
}

/* Do all the addresses hp names lie on loopback? (empty host: no) */
static rp_err hostport_loopback(const char *what, const char *hp, bool *lo, rp_errbuf *eb) {
    struct addrinfo *res = NULL;
    rp_err rc = resolve(what, hp, &res, eb);
    if (rc != RP_OK) return rc;
    *lo = hp[0] != ':';
    for (struct addrinfo *ai = res; ai && *lo; ai = ai->ai_next) *lo = addr_loopback(ai->ai_addr);
    freeaddrinfo(res);
    return RP_OK;
}

rp_err rp_server_check_exposure(const rp_config *cfg, rp_errbuf *eb) {
    if (cfg->listen[0] == '\0') return rp_errf(eb, RP_BAD_REQUEST, "listen: an address is required");
    const char *what[2] = {"listen", "http"};
    const char *addr[2] = {cfg->listen, cfg->http};
    for (int i = 0; i < 2; i++) {
        if (addr[i][0] == '\0') continue;
        bool lo = false;
        rp_err rc = hostport_loopback(what[i], addr[i], &lo, eb);
        if (rc != RP_OK) return rc;
        if (!lo && cfg->ntokens == 0)
            return rp_errf(eb, RP_FORBIDDEN,
                           "refusing to listen on %s (%s is not a loopback address) with no "
                           "tokens configured: add 'token = ROLE:SECRET' lines",
                           addr[i], what[i]);
    }
    return RP_OK;
}

/* Format the bound address of fd as HOST:PORT and return its port. */
static int bound_name(int fd, char *out, size_t n) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(out, n, "?");
        return 0;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(out, n, "[%s]:%u", host, ntohs(a->sin6_port));
        return ntohs(a->sin6_port);
    }
    const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    snprintf(out, n, "%s:%u", host, ntohs(a->sin_port));
    return ntohs(a->sin_port);
}

/* Create the listening socket for hp: the first resolved address that
 * binds. *fd_out is a non-blocking, close-on-exec socket. */
static rp_err listen_on(const char *what, const char *hp, int *fd_out, int *port, char *shown,
                        size_t shown_n, rp_errbuf *eb) {
    struct addrinfo *res = NULL;
    rp_err rc = resolve(what, hp, &res, eb);
    if (rc != RP_OK) return rc;
    int fd = -1, e = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SERVER_BACKLOG) == 0) break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        rp_err code = e == EADDRINUSE ? RP_CONFLICT : e == EACCES ? RP_FORBIDDEN : rp_err_from_errno(e);
        return rp_errf(eb, code, "%s: cannot listen on %s: %s", what, hp, strerror(e));
    }
    *fd_out = fd;
    *port = bound_name(fd, shown, shown_n);
    return RP_OK;
}

/* --- workers --------------------------------------------------------------------- */

static void *worker_main(void *arg) {
    rp_worker *w = arg;
    rp_loop_run(w->loop);
    return NULL;
}

/* Worker side of step 1. */
static void worker_stop_accepting(void *arg) {
    rp_worker *w = arg;
    rp_rpc_stop_accepting(w->rpc);
    if (w->http) rp_http_stop_accepting(w->http);
    atomic_store(&w->stop_acked, true);
}

/* Publish the worker's counts for the controlling thread. */
static void worker_publish(rp_worker *w) {
    unsigned inflight = rp_rpc_in_flight(w->rpc) + (w->http ? rp_http_in_flight(w->http) : 0);
    atomic_store(&w->pub_inflight, inflight);
    atomic_store(&w->pub_conns, rp_rpc_connections(w->rpc));
}

static void worker_probe(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    worker_publish(arg);
}

/* Worker side of step 2: drain, then keep publishing. */
static void worker_drain(void *arg) {
    rp_worker *w = arg;
    rp_rpc_drain(w->rpc);
    worker_publish(w);
    struct timeval tv = {0, SERVER_PROBE_MS * 1000};
    if (w->probe) event_add(w->probe, &tv);
}

/* Create worker i (loop, faces), without starting its thread. */
static rp_err worker_init(rp_server *s, unsigned i, rp_errbuf *eb) {
    rp_worker *w = &s->workers[i];
    w->srv = s;
    w->index = i;
    atomic_init(&w->stop_acked, false);
    atomic_init(&w->pub_conns, SERVER_UNKNOWN);
    atomic_init(&w->pub_inflight, SERVER_UNKNOWN);
    rp_err rc = rp_loop_create(&w->loop, eb);
    if (rc != RP_OK) return rc;
    w->probe = event_new(rp_loop_base(w->loop), -1, EV_PERSIST, worker_probe, w);
    if (w->probe == NULL) return rp_errf(eb, RP_UNAVAILABLE, "libevent: cannot create a timer");
    rc = rp_rpc_create(w->loop, s->rpc_fd, s->api, &s->cfg, &s->stats, &s->group, &w->rpc, eb);
    if (rc != RP_OK) return rc;
    if (s->http_fd >= 0) {
        rc = rp_http_create(w->loop, s->http_fd, s->api, &s->cfg, &s->stats, &w->http, eb);
        if (rc != RP_OK) return rc;
    }
    return RP_OK;
}

/* Start worker threads with the process signals blocked in them. */
static rp_err workers_start(rp_server *s, rp_errbuf *eb) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGQUIT);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rp_err rc = RP_OK;
    for (unsigned i = 0; i < s->nworkers; i++) {
        int e = pthread_create(&s->workers[i].tid, NULL, worker_main, &s->workers[i]);
        if (e != 0) {
            rc = rp_errf(eb, RP_UNAVAILABLE, "cannot start worker thread %u: %s", i, strerror(e));
            break;
        }
        s->workers[i].running = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Sum of a published count over the running workers; SERVER_UNKNOWN while
 * any worker has not published yet. */
static unsigned workers_sum(rp_server *s, bool inflight) {
    unsigned sum = 0;
    for (unsigned i = 0; i < s->nworkers; i++) {
        if (!s->workers[i].running) continue;
        unsigned v = atomic_load(inflight ? &s->workers[i].pub_inflight : &s->workers[i].pub_conns);
        if (v == SERVER_UNKNOWN) return SERVER_UNKNOWN;
        sum += v;
    }
    return sum;
}

/* Stop and join the running workers, then free everything they own
 * (unless a worker could not be shown to be idle: then leak it). */
static void workers_free(rp_server *s) {
    for (unsigned i = 0; i < s->nworkers; i++) {
        rp_worker *w = &s->workers[i];
        if (!w->running) continue;
        rp_loop_stop(w->loop);
        pthread_join(w->tid, NULL);
        w->running = false;
    }
    if (s->leak_workers) return;
    for (unsigned i = 0; i < s->nworkers; i++) {
        rp_worker *w = &s->workers[i];
        rp_rpc_free(w->rpc);
        if (w->http) rp_http_free(w->http);
        if (w->probe) event_free(w->probe);
        rp_loop_free(w->loop);
    }
    free(s->workers);
    s->workers = NULL;
}

static void server_close_fds(rp_server *s) {
    if (s->rpc_fd >= 0) close(s->rpc_fd);
    if (s->http_fd >= 0) close(s->http_fd);
    s->rpc_fd = s->http_fd = -1;
}

/* --- public ----------------------------------------------------------------------- */

rp_err rp_server_start(const rp_config *cfg, rp_api *api, rp_server **out, rp_errbuf *eb) {
    assert(cfg && api && out);
    rp_err rc = rp_server_check_exposure(cfg, eb);
    if (rc != RP_OK) return rc;
    if (cfg->threads == 0) return rp_errf(eb, RP_BAD_REQUEST, "threads: at least 1");
    rp_server *s = calloc(1, sizeof *s);
    if (s == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory creating the server");
    s->cfg = *cfg;
    s->api = api;
    s->rpc_fd = s->http_fd = -1;
    atomic_init(&s->stats.conns_open, 0);
    atomic_init(&s->stats.conns_total, 0);
    atomic_init(&s->stats.conns_rejected, 0);
    atomic_init(&s->stats.conns_timed_out, 0);
    atomic_init(&s->stats.bad_frames, 0);
    for (int f = 0; f < RP_FACE__COUNT; f++)
        for (int r = 0; r < RP_REFUSED__COUNT; r++) atomic_init(&s->stats.refused[f][r], 0);
    atomic_init(&s->group.conns, 0);
    atomic_init(&s->group.members, 0);
    rc = listen_on("listen", cfg->listen, &s->rpc_fd, &s->rpc_port, s->rpc_addr, sizeof s->rpc_addr, eb);
    if (rc != RP_OK) goto fail;
    if (cfg->http[0] != '\0') {
        rc = listen_on("http", cfg->http, &s->http_fd, &s->http_port, s->http_addr, sizeof s->http_addr, eb);
        if (rc != RP_OK) goto fail;
    }
    s->nworkers = cfg->threads;
    s->workers = calloc(s->nworkers, sizeof *s->workers);
    if (s->workers == NULL) {
        rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory creating %u workers", s->nworkers);
        goto fail;
    }
    for (unsigned i = 0; i < s->nworkers; i++) {
        rc = worker_init(s, i, eb);
        if (rc != RP_OK) goto fail;
    }
    rc = workers_start(s, eb);
    if (rc != RP_OK) goto fail;
    *out = s;
    return RP_OK;
fail:
    /* Nothing was accepted yet (or only by workers now being stopped):
     * stopping is immediate. */
    rp_server_stop(s);
    return rc;
}

int rp_server_rpc_port(const rp_server *s) { return s->rpc_port; }
int rp_server_http_port(const rp_server *s) { return s->http_port; }
const char *rp_server_rpc_addr(const rp_server *s) { return s->rpc_addr; }
const char *rp_server_http_addr(const rp_server *s) { return s->http_addr; }
rp_net_stats *rp_server_stats(rp_server *s) { return &s->stats; }

void rp_server_stop_accepting(rp_server *s) {
    if (s->accepting_stopped) return;
    s->accepting_stopped = true;
    for (unsigned i = 0; i < s->nworkers; i++)
        if (s->workers[i].running)
            rp_loop_post(s->workers[i].loop, &s->workers[i].it_stop, worker_stop_accepting, &s->workers[i]);
    uint64_t deadline = now_ms() + SERVER_ACK_WAIT_MS;
    for (unsigned i = 0; i < s->nworkers; i++) {
        rp_worker *w = &s->workers[i];
        if (!w->running) continue;
        while (!atomic_load(&w->stop_acked) && now_ms() < deadline) sleep_ms(1);
        if (!atomic_load(&w->stop_acked)) {
            rp_log(RP_LOG_ERROR, "worker_stuck", "worker=%u step=stop_accepting", i);
            s->leak_workers = true;
        }
    }
    /* A worker that did not acknowledge may still watch the sockets. */
    if (!s->leak_workers) server_close_fds(s);
}

bool rp_server_drain(rp_server *s, uint32_t timeout_ms) {
    rp_server_stop_accepting(s);
    if (!s->drain_posted) {
        s->drain_posted = true;
        for (unsigned i = 0; i < s->nworkers; i++)
            if (s->workers[i].running)
                rp_loop_post(s->workers[i].loop, &s->workers[i].it_drain, worker_drain, &s->workers[i]);
    }
    uint64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        if (workers_sum(s, false) == 0 && workers_sum(s, true) == 0) return true;
        if (now_ms() >= deadline) return false;
        sleep_ms(2);
    }
}

void rp_server_stop(rp_server *s) {
    if (s == NULL) return;
    if (s->workers != NULL) {
        if (!rp_server_drain(s, 0)) {
            /* Requests inside the api (queued store writes) must answer
             * before the loops they answer to are freed. */
            uint64_t start = now_ms(), next_log = start;
            unsigned left;
            while ((left = workers_sum(s, true)) != 0) {
                uint64_t t = now_ms();
                if (t >= start + SERVER_INFLIGHT_WAIT_MS) {
                    rp_log(RP_LOG_ERROR, "shutdown_stuck", "in_flight=%u action=leak_workers", left);
                    s->leak_workers = true;
                    break;
                }
                if (t >= next_log) {
                    if (left != SERVER_UNKNOWN)
                        rp_log(RP_LOG_INFO, "shutdown_waiting", "in_flight=%u", left);
                    next_log = t + 5000;
                }
                sleep_ms(2);
            }
        }
        workers_free(s);
    }
    if (!s->leak_workers) server_close_fds(s);
    free(s);
}
