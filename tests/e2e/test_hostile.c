/* test_hostile.c — end-to-end: hostile clients against the real rapportd.
 *
 * tests/e2e/test_rpc.c already covers the basic hostile frames (a str32
 * length lie as params, an array32 lie, a nesting bomb, truncation, 0xc1,
 * invalid UTF-8 in the method name, a frame over max_request_bytes, a
 * started request that never finishes, an idle connection, the RPC
 * connection cap, roles over RPC). This file covers what it does not, each
 * against a server of its own (tests/e2e/harness.h):
 *
 *   - str32 / bin32 / array32 / map32 lengths of 0xFFFFFFFF in every
 *     position of a request, many connections at once;
 *   - slowloris, one byte per second, on both faces (slow_timeout_ms short);
 *   - a client that pipelines requests and never reads the replies, on both
 *     faces;
 *   - the connection cap shared by both faces, and a flood past it;
 *   - oversized HTTP request lines, headers and bodies, lying lengths;
 *   - invalid UTF-8 in JSON bodies, query strings and MessagePack strings;
 *   - bad phone numbers (a clear BAD_REQUEST naming the field);
 *   - another role's operations over both faces: FORBIDDEN / 403 before the
 *     params are looked at, with no effect and no audit line.
 *
 * Every test runs a witness: a thread with its own well-behaved client that
 * pings over MessagePack-RPC (and GET /healthz over HTTP) every few
 * milliseconds during the attack and a few times after it; every answer
 * must come, be correct, and take under 3 s. The
 * server's memory is read from /proc/<pid>/status (VmRSS, VmHWM) before and
 * after each attack: the peak must stay under RSS_LIMIT_KB, and the
 * largest peak over all tests is printed at the end
 *     hostile-summary: peak VmHWM ... kB
 * (the figure the README's guarantees quote).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "e2e/serve.h"
#include "e2e/calls.h"
#include "model/ident.h"
#include "net/client.h"
#include "net/json.h"

/* AddressSanitizer (RAPPORT_SANITIZE builds the server with it too) adds
 * shadow memory and keeps freed blocks in quarantine: memory bounds are
 * looser there. */
#if defined(__SANITIZE_ADDRESS__)
#define MEM_FACTOR 8
#else
#define MEM_FACTOR 1
#endif
#define RSS_LIMIT_KB (200L * 1024 * MEM_FACTOR)
#define TOK_ROUTE "route-hostile-0123456789"
#define TOK_AGENT "agent-hostile-0123456789"
#define TOK_INGEST "ingest-hostile-0123456789"
#define TOK_ADMIN "admin-hostile-0123456789"

static long peak_hwm_kb; /* over every server of this file */
static char peak_test[64];

/* --- msgpack and JSON helpers ------------------------------------------------------ */

static void expect_has(const char *hay, const char *needle) {
    if (hay == NULL || strstr(hay, needle) == NULL) fail_msg("expected '%s' in '%s'", needle, hay ? hay : "(null)");
}

/* A message for people: printable (no control bytes echoed) and UTF-8. */
static void expect_clean_message(const char *m) {
    for (const unsigned char *p = (const unsigned char *)m; *p; p++)
        if (*p < 0x20 || *p == 0x7f) fail_msg("message has a control byte 0x%02x: %s", *p, m);
    assert_true(rp_utf8_valid(m, strlen(m)));
}

/* --- memory of the server ------------------------------------------------------------ */

/* A "Vm...:" figure of /proc/<pid>/status in kB, or -1. */
static long proc_kb(pid_t pid, const char *field) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    long v = -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            v = strtol(line + fl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

typedef struct memwatch {
    long rss_before, rss_after, hwm;
} memwatch;

static void mem_begin(const rp_h *h, memwatch *m) {
    m->rss_before = proc_kb(h->pid, "VmRSS");
    assert_true(m->rss_before > 0);
}

/* Read the figures after an attack, print them, check the bound, and keep
 * the largest peak for the summary. */
static void mem_end(const rp_h *h, memwatch *m, const char *what) {
    m->rss_after = proc_kb(h->pid, "VmRSS");
    m->hwm = proc_kb(h->pid, "VmHWM");
    assert_true(m->rss_after > 0 && m->hwm > 0);
    fprintf(stderr, "  memory %-34s VmRSS %6ld -> %6ld kB, peak VmHWM %6ld kB\n", what, m->rss_before, m->rss_after,
            m->hwm);
    if (m->hwm > peak_hwm_kb) {
        peak_hwm_kb = m->hwm;
        snprintf(peak_test, sizeof peak_test, "%s", what);
    }
    assert_true(m->hwm < RSS_LIMIT_KB);
}

/* --- the witness: a well-behaved client served during the attack ---------------------- */

typedef struct witness {
    const rp_h *h;
    bool http;          /* also GET /healthz (a fresh connection each time) */
    pthread_t th;
    atomic_bool stop;
    long rpc_ok, http_ok;
    long failures;
    long long worst_ms;
    char first_failure[RP_ERRMSG_MAX + 64];
    bool *running;      /* the test state's flag, for its teardown */
} witness;

/* The per-test state: the server and its witness, so that the teardown
 * stops the witness even when an assertion jumped out of the test. */
typedef struct fx {
    rp_h h; /* first: tests use *state as an rp_h */
    witness w;
    bool w_running;
} fx;

static int fx_setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    *state = f;
    return f ? 0 : -1;
}

static int fx_teardown(void **state) {
    fx *f = *state;
    if (f && f->w_running) {
        atomic_store(&f->w.stop, true);
        pthread_join(f->w.th, NULL);
    }
    if (f) rp_h_cleanup(&f->h);
    free(f);
    *state = NULL;
    return 0;
}

/* The witness of the test whose state is h. */
static witness *fx_witness(rp_h *h) { return &((fx *)h)->w; }

static int tcp_connect(int port, int timeout_s) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_all(int fd, const void *p, size_t n) {
    const char *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        b += w;
        n -= (size_t)w;
    }
}

/* Read until EOF, error, time-out or cap bytes; returns the bytes read. */
static size_t recv_all(int fd, char *buf, size_t cap) {
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0) break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

/* One HTTP request on its own connection ("Connection: close" is the
 * caller's to add). Returns the status (0: no response, closed), the
 * response (headers and body) in out. */
static int http_raw(const rp_h *h, const void *req, size_t len, char *out, size_t cap) {
    int fd = tcp_connect(h->http_port, 10);
    if (fd < 0) return -1;
    send_all(fd, req, len);
    size_t n = recv_all(fd, out, cap);
    close(fd);
    int status = 0;
    if (n >= 12 && sscanf(out, "HTTP/1.%*d %d", &status) != 1) status = 0;
    return status;
}

static int http_get(const rp_h *h, const char *path, const char *headers, char *out, size_t cap) {
    char *req = NULL;
    int n = asprintf(&req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n", path,
                     headers ? headers : "");
    assert_true(n > 0);
    int st = http_raw(h, req, (size_t)n, out, cap);
    free(req);
    return st;
}

static int http_send_body(const rp_h *h, const char *method, const char *path, const char *headers, const void *body,
                          size_t blen, char *out, size_t cap) {
    char head[4096];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     "%sContent-Length: %zu\r\n\r\n",
                     method, path, headers ? headers : "", blen);
    assert_true(n > 0 && (size_t)n < sizeof head);
    char *req = malloc((size_t)n + blen);
    assert_non_null(req);
    memcpy(req, head, (size_t)n);
    memcpy(req + n, body, blen);
    int st = http_raw(h, req, (size_t)n + blen, out, cap);
    free(req);
    return st;
}

static void witness_fail(witness *w, const char *what) {
    if (w->failures++ == 0) snprintf(w->first_failure, sizeof w->first_failure, "%s", what);
}

static void *witness_main(void *p) {
    witness *w = p;
    rp_client *c = rp_h_connect(w->h);
    if (c == NULL) {
        witness_fail(w, "cannot connect");
        return NULL;
    }
    int round = 0;
    while (!atomic_load(&w->stop)) {
        long long t0 = rp_h_now_ms();
        msgpack_object res;
        rp_errbuf eb = {0};
        rp_err rc = rp_client_call(c, "ping", NULL, 0, &res, &eb);
        if (rc == RP_OK && mp_is_true(mp_get(&res, "pong"))) w->rpc_ok++;
        else {
            char m[RP_ERRMSG_MAX + 64];
            snprintf(m, sizeof m, "rpc ping: %s: %s", rp_err_code(rc), eb.msg);
            witness_fail(w, m);
            if (rp_client_broken(c)) {
                rp_client_close(c);
                c = rp_h_connect(w->h);
                if (c == NULL) break;
            }
        }
        if (w->http && round % 4 == 0) {
            char out[2048];
            int st = http_get(w->h, "/healthz", NULL, out, sizeof out);
            if (st == 200 && strstr(out, "{\"status\":\"ok\"}")) w->http_ok++;
            else {
                char m[256];
                snprintf(m, sizeof m, "GET /healthz: status %d", st);
                witness_fail(w, m);
            }
        }
        long long dt = rp_h_now_ms() - t0;
        if (dt > w->worst_ms) w->worst_ms = dt;
        round++;
        rp_h_sleep_ms(10);
    }
    rp_client_close(c);
    return NULL;
}

static void witness_start(witness *w, rp_h *h, bool http) {
    assert_ptr_equal(w, fx_witness(h));
    memset(w, 0, sizeof *w);
    w->h = h;
    w->http = http;
    atomic_init(&w->stop, false);
    assert_int_equal(pthread_create(&w->th, NULL, witness_main, w), 0);
    w->running = &((fx *)h)->w_running;
    *w->running = true;
    /* first answers before the attack starts */
    long long deadline = rp_h_now_ms() + 5000;
    while (w->rpc_ok == 0 && w->failures == 0 && rp_h_now_ms() < deadline) rp_h_sleep_ms(5);
    assert_true(w->rpc_ok > 0);
}

/* Stop the witness once it has been served a few more times after the
 * attack: every ping answered, within seconds. */
static void witness_stop(witness *w, const char *what) {
    long want = w->rpc_ok + 3, want_http = w->http_ok + 1;
    long long deadline = rp_h_now_ms() + 10000;
    while ((w->rpc_ok < want || (w->http && w->http_ok < want_http)) && w->failures == 0 &&
           rp_h_now_ms() < deadline)
        rp_h_sleep_ms(5);
    atomic_store(&w->stop, true);
    pthread_join(w->th, NULL);
    *w->running = false;
    fprintf(stderr, "  witness %-33s %ld rpc pings, %ld http, %ld failed, slowest %lld ms\n", what, w->rpc_ok,
            w->http_ok, w->failures, w->worst_ms);
    if (w->failures) fail_msg("witness during %s: %s", what, w->first_failure);
    assert_true(w->rpc_ok >= want);
    if (w->http) assert_true(w->http_ok >= want_http);
    assert_true(w->worst_ms < 3000);
}

/* --- raw RPC helpers ------------------------------------------------------------------ */

/* A buffered reader of reply frames on a raw socket. */
typedef struct rawconn {
    int fd;
    char buf[1 << 16];
    size_t n;
} rawconn;

/* Read one reply [1, msgid, err, result]: 0 and msgid/code/message, or -1
 * at EOF / error / time-out. The reply passes the client's rp_mpcheck, so
 * a message that is not valid UTF-8 would fail here. */
static int raw_reply(rawconn *rc, uint32_t *msgid, rp_err *code, char *msg, size_t msgcap) {
    rp_mpcheck_limits lim = rp_client_default_limits();
    for (;;) {
        msgpack_zone z;
        msgpack_zone_init(&z, 1024);
        msgpack_object o;
        size_t len = 0;
        rp_mpcheck_result r = rp_mpcheck_unpack(rc->buf, rc->n, &lim, &z, &o, &len, NULL, 0);
        if (r == RP_MPC_OK) {
            int ok = o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == 4 ? 0 : -1;
            if (ok == 0) {
                *msgid = (uint32_t)o.via.array.ptr[1].via.u64;
                const msgpack_object *e = &o.via.array.ptr[2];
                *code = RP_OK;
                if (msg) msg[0] = '\0';
                const msgpack_object *cs = mp_get(e, "code");
                if (cs) *code = rp_err_parse(cs->via.str.ptr, cs->via.str.size);
                const msgpack_object *ms = mp_get(e, "message");
                if (ms && msg) snprintf(msg, msgcap, "%.*s", (int)ms->via.str.size, ms->via.str.ptr);
            }
            msgpack_zone_destroy(&z);
            memmove(rc->buf, rc->buf + len, rc->n - len);
            rc->n -= len;
            return ok;
        }
        msgpack_zone_destroy(&z);
        if (r != RP_MPC_INCOMPLETE || rc->n == sizeof rc->buf) return -1;
        ssize_t got = recv(rc->fd, rc->buf + rc->n, sizeof rc->buf - rc->n, 0);
        if (got <= 0) return -1;
        rc->n += (size_t)got;
    }
}

/* Is the peer's side closed (EOF or reset) within the socket's time-out? */
static bool raw_closed(int fd) {
    char b[4096];
    for (;;) {
        ssize_t got = recv(fd, b, sizeof b, 0);
        if (got == 0) return true;
        if (got < 0) return errno == ECONNRESET || errno == EPIPE;
    }
}

/* Send bytes on a fresh connection; expect one error reply (want_id,
 * want_code) whose message contains want_msg (if given), then the close. */
static void rpc_hostile(const rp_h *h, const void *bytes, size_t n, uint32_t want_id, rp_err want_code,
                        const char *want_msg) {
    rawconn *rc = calloc(1, sizeof *rc);
    assert_non_null(rc);
    rc->fd = rp_h_raw_connect(h);
    assert_true(rc->fd >= 0);
    send_all(rc->fd, bytes, n);
    uint32_t id = 99;
    rp_err code = RP_OK;
    char msg[512];
    assert_int_equal(raw_reply(rc, &id, &code, msg, sizeof msg), 0);
    if (id != want_id || code != want_code)
        fprintf(stderr, "hostile reply: msgid %u code %s (%s)\n", id, rp_err_code(code), msg);
    assert_int_equal(id, want_id);
    assert_int_equal(code, want_code);
    expect_clean_message(msg);
    if (want_msg) expect_has(msg, want_msg);
    assert_true(raw_closed(rc->fd));
    close(rc->fd);
    free(rc);
}

/* [0, msgid, method, ...]: the first bytes of a request. */
static size_t req_head(unsigned char *b, uint8_t msgid, const char *method) {
    size_t ml = strlen(method), o = 0;
    b[o++] = 0x94;
    b[o++] = 0x00;
    b[o++] = msgid;
    b[o++] = (unsigned char)(0xa0 | ml);
    memcpy(b + o, method, ml);
    return o + ml;
}

static void stop_clean(rp_h *h) {
    int st = rp_h_stop(h);
    if (st != 0) rp_h_dump_log(h);
    assert_int_equal(st, 0);
}

/* --- tests ------------------------------------------------------------------------------ */

/* Lengths of 0xFFFFFFFF in every position: params, a value, a key, the
 * method, an array and a map inside params; each costs its header, not
 * 4 GiB — checked with 32 connections lying at once. */
static void test_length_lies(void **state) {
    rp_h *h = *state;
    rp_h_start_ok(h, "");
    witness *wp = fx_witness(h);
    memwatch m;
    witness_start(wp, h, true);
    mem_begin(h, &m);
    static const unsigned char lies[][5] = {
        {0xdb, 0xff, 0xff, 0xff, 0xff}, /* str32 */
        {0xc6, 0xff, 0xff, 0xff, 0xff}, /* bin32 */
        {0xdd, 0xff, 0xff, 0xff, 0xff}, /* array32 */
        {0xdf, 0xff, 0xff, 0xff, 0xff}, /* map32 */
    };
    for (int li = 0; li < 4; li++) {
        unsigned char b[64];
        size_t o;
        /* as params: [0, 21, "customer.put", LIE] */
        o = req_head(b, 21, "customer.put");
        memcpy(b + o, lies[li], 5);
        rpc_hostile(h, b, o + 5, 21, RP_TOO_LARGE, NULL);
        /* as a value: [0, 22, "customer.get", {"id": LIE}] */
        o = req_head(b, 22, "customer.get");
        b[o++] = 0x81;
        b[o++] = 0xa2;
        b[o++] = 'i';
        b[o++] = 'd';
        memcpy(b + o, lies[li], 5);
        rpc_hostile(h, b, o + 5, 22, RP_TOO_LARGE, NULL);
        /* inside an array inside the customer: phones: [LIE] */
        o = req_head(b, 23, "customer.put");
        static const unsigned char put[] = {0x82, 0xa2, 'i', 'd', 0xa1, 'x', 0xa8, 'c', 'u', 's', 't', 'o', 'm',
                                            'e',  'r',  0x81, 0xa6, 'p', 'h', 'o', 'n', 'e', 's', 0x91};
        memcpy(b + o, put, sizeof put);
        o += sizeof put;
        memcpy(b + o, lies[li], 5);
        rpc_hostile(h, b, o + 5, 23, RP_TOO_LARGE, NULL);
    }
    /* a str32 / bin32 lie as a map key (a bin key is refused as such) */
    {
        unsigned char b[64];
        size_t o = req_head(b, 24, "customer.get");
        b[o++] = 0x81;
        memcpy(b + o, lies[0], 5);
        rpc_hostile(h, b, o + 5, 24, RP_TOO_LARGE, NULL);
        o = req_head(b, 25, "customer.get");
        b[o++] = 0x81;
        memcpy(b + o, lies[1], 5);
        rpc_hostile(h, b, o + 5, 25, RP_BAD_REQUEST, NULL);
    }
    /* the method itself: [0, 26, str32 LIE ...] */
    {
        static const unsigned char b[] = {0x94, 0x00, 26, 0xdb, 0xff, 0xff, 0xff, 0xff, 'p', 'i', 'n', 'g'};
        rpc_hostile(h, b, sizeof b, 26, RP_TOO_LARGE, NULL);
    }
    /* a notification with a bin32 lie: no msgid to answer, so msgid 0 */
    {
        static const unsigned char b[] = {0x93, 0x02, 0xa4, 'p', 'i', 'n', 'g', 0xc6, 0xff, 0xff, 0xff, 0xff};
        rpc_hostile(h, b, sizeof b, 0, RP_TOO_LARGE, NULL);
    }
    /* 32 connections, each announcing 4 GiB, all open at once */
    {
        enum { N = 32 };
        rawconn *rc = calloc(N, sizeof *rc);
        assert_non_null(rc);
        for (int i = 0; i < N; i++) {
            rc[i].fd = rp_h_raw_connect(h);
            assert_true(rc[i].fd >= 0);
            unsigned char b[64];
            size_t o = req_head(b, (uint8_t)(90 + i), "import");
            memcpy(b + o, lies[i % 4], 5);
            send_all(rc[i].fd, b, o + 5);
        }
        for (int i = 0; i < N; i++) {
            uint32_t id;
            rp_err code;
            char msg[512];
            assert_int_equal(raw_reply(&rc[i], &id, &code, msg, sizeof msg), 0);
            assert_int_equal(id, (uint32_t)(90 + i));
            assert_int_equal(code, RP_TOO_LARGE);
            assert_true(raw_closed(rc[i].fd));
            close(rc[i].fd);
        }
        free(rc);
    }
    mem_end(h, &m, "length lies");
    assert_true(m.hwm - m.rss_before < 64 * 1024 * MEM_FACTOR); /* nothing near the 4 GiB announced */
    witness_stop(wp, "length lies");
    stop_clean(h);
}

/* Slowloris on the RPC face: 8 connections each send a valid request one
 * byte per second; with slow_timeout_ms = 1500 each is cut off within
 * about 1.5 s of its first byte, long before the request is complete. */
static void test_slowloris_rpc(void **state) {
    rp_h *h = *state;
    rp_h_start_ok(h, "http =\nslow_timeout_ms = 1500\n");
    witness *wp = fx_witness(h);
    memwatch m;
    witness_start(wp, h, false);
    mem_begin(h, &m);
    enum { N = 8 };
    static const unsigned char ping[] = {0x94, 0x00, 0x01, 0xa4, 'p', 'i', 'n', 'g', 0x90};
    int fds[N];
    long long closed_at[N];
    int sent_bytes[N];
    for (int i = 0; i < N; i++) {
        fds[i] = rp_h_raw_connect(h);
        assert_true(fds[i] >= 0);
        closed_at[i] = -1;
        sent_bytes[i] = 0;
    }
    long long t0 = rp_h_now_ms();
    for (int sec = 0; sec < (int)sizeof ping; sec++) {
        bool any = false;
        for (int i = 0; i < N; i++) {
            if (closed_at[i] >= 0) continue;
            if (send(fds[i], ping + sec, 1, MSG_NOSIGNAL) == 1) sent_bytes[i]++;
            any = true;
        }
        if (!any) break;
        /* a second, watching for the server closing each connection */
        long long until = rp_h_now_ms() + 1000;
        while (rp_h_now_ms() < until) {
            struct pollfd p[N];
            for (int i = 0; i < N; i++) p[i] = (struct pollfd){.fd = closed_at[i] < 0 ? fds[i] : -1, .events = POLLIN};
            int left = (int)(until - rp_h_now_ms());
            if (poll(p, N, left > 0 ? left : 0) <= 0) continue;
            for (int i = 0; i < N; i++) {
                if (p[i].fd < 0 || p[i].revents == 0) continue;
                char b[64];
                ssize_t r = recv(fds[i], b, sizeof b, MSG_DONTWAIT);
                assert_true(r <= 0); /* no reply: the request never completed */
                if (r == 0 || (r < 0 && errno != EAGAIN)) closed_at[i] = rp_h_now_ms() - t0;
            }
        }
    }
    for (int i = 0; i < N; i++) {
        close(fds[i]);
        if (closed_at[i] < 0) fail_msg("slowloris connection %d was not cut off (%d bytes sent)", i, sent_bytes[i]);
        fprintf(stderr, "  slowloris rpc %d: cut off after %lld ms, %d of %zu bytes sent\n", i, closed_at[i],
                sent_bytes[i], sizeof ping);
        assert_true(closed_at[i] >= 1400 && closed_at[i] < 4000);
        assert_true(sent_bytes[i] < (int)sizeof ping);
    }
    mem_end(h, &m, "slowloris rpc");
    witness_stop(wp, "slowloris rpc");
    stop_clean(h);
}

/* Slowloris on the HTTP face: a request (line and headers) sent one byte
 * per second must also be cut off once slow_timeout_ms has passed since
 * its first byte (proto/PROTOCOL.md: "a message whose first byte arrived
 * must be complete within this time"). */
static void test_slowloris_http(void **state) {
    rp_h *h = *state;
    rp_h_start_ok(h, "slow_timeout_ms = 1500\n");
    witness *wp = fx_witness(h);
    memwatch m;
    witness_start(wp, h, false);
    mem_begin(h, &m);
    enum { N = 4 };
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n\r\n";
    int fds[N], sent[N];
    long long closed_at[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect(h->http_port, 10);
        assert_true(fds[i] >= 0);
        closed_at[i] = -1;
        sent[i] = 0;
    }
    long long t0 = rp_h_now_ms();
    /* at most 6 s: four times slow_timeout_ms */
    for (int sec = 0; sec < 6; sec++) {
        bool any = false;
        for (int i = 0; i < N; i++) {
            if (closed_at[i] >= 0) continue;
            if (send(fds[i], req + sent[i], 1, MSG_NOSIGNAL) == 1) sent[i]++;
            any = true;
        }
        if (!any) break;
        long long until = rp_h_now_ms() + 1000;
        while (rp_h_now_ms() < until) {
            struct pollfd p[N];
            for (int i = 0; i < N; i++) p[i] = (struct pollfd){.fd = closed_at[i] < 0 ? fds[i] : -1, .events = POLLIN};
            int left = (int)(until - rp_h_now_ms());
            if (poll(p, N, left > 0 ? left : 0) <= 0) continue;
            for (int i = 0; i < N; i++) {
                if (p[i].fd < 0 || p[i].revents == 0) continue;
                char b[512];
                ssize_t r = recv(fds[i], b, sizeof b, MSG_DONTWAIT);
                /* a 408 or a plain close are both a cut-off; a 200 is not */
                if (r > 0 && strncmp(b, "HTTP/1.1 200", 12) == 0) fail_msg("slow HTTP request was served");
                if (r >= 0 || errno != EAGAIN) closed_at[i] = rp_h_now_ms() - t0;
            }
        }
    }
    for (int i = 0; i < N; i++) {
        close(fds[i]);
        fprintf(stderr, "  slowloris http %d: %s after %lld ms, %d bytes sent\n", i,
                closed_at[i] >= 0 ? "cut off" : "STILL OPEN", closed_at[i] >= 0 ? closed_at[i] : rp_h_now_ms() - t0,
                sent[i]);
    }
    for (int i = 0; i < N; i++) {
        if (closed_at[i] < 0)
            fail_msg("HTTP slowloris: a request trickling one byte a second was not cut off after %d s "
                     "(slow_timeout_ms = 1500)",
                     6);
        assert_true(closed_at[i] >= 1400 && closed_at[i] < 4000);
    }
    mem_end(h, &m, "slowloris http");
    witness_stop(wp, "slowloris http");
    stop_clean(h);
}

/* Read one unlabelled metric (a gauge or counter) from GET /metrics
 * (-1: no answer, or no such line). */
static long metric_value(const rp_h *h, const char *name) {
    size_t cap = 1 << 20;
    char *out = malloc(cap);
    assert_non_null(out);
    char key[128];
    int kn = snprintf(key, sizeof key, "\n%s ", name);
    assert_true(kn > 0 && (size_t)kn < sizeof key);
    long v = -1;
    if (http_get(h, "/metrics", NULL, out, cap) == 200) {
        const char *p = strstr(out, key);
        if (p) v = strtol(p + kn, NULL, 10);
    }
    free(out);
    return v;
}

/* The rapport_connections_open gauge (-1: no answer). */
static long open_connections(const rp_h *h) { return metric_value(h, "rapport_connections_open"); }

/* Put a send-only socket in non-blocking mode and write n-byte chunks of
 * data until the kernel has taken nothing for stall_ms. Returns bytes sent. */
static size_t send_until_stalled(int fd, const char *data, size_t n, size_t max_total, int stall_ms) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    size_t total = 0, off = 0;
    long long last = rp_h_now_ms();
    while (total < max_total && rp_h_now_ms() - last < stall_ms) {
        ssize_t w = send(fd, data + off, n - off, MSG_NOSIGNAL);
        if (w > 0) {
            total += (size_t)w;
            off = (off + (size_t)w) % n;
            last = rp_h_now_ms();
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            break;
        } else {
            rp_h_sleep_ms(2);
        }
    }
    return total;
}

/* Has the server dropped fd (reset or FIN), seen without reading data? */
static bool dropped_within(int fd, int ms) {
    long long deadline = rp_h_now_ms() + ms;
    while (rp_h_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLRDHUP};
        if (poll(&p, 1, 50) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) return true;
        /* a reset also shows as a failing send */
        if (send(fd, "", 0, MSG_NOSIGNAL) < 0 && (errno == ECONNRESET || errno == EPIPE)) return true;
    }
    return false;
}

/* A customer whose record is ~1.3 KB, so every customer.get reply is. */
static void put_big_customer(const rp_h *h) {
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    char notes[1400] = "{\"id\":\"big\",\"customer\":{\"name\":\"Never Read\",\"rapport_notes\":[";
    for (int i = 0; i < 5; i++) {
        strcat(notes, i ? ",\"" : "\"");
        size_t l = strlen(notes);
        memset(notes + l, 'n' + i, 200);
        notes[l + 200] = '\0';
        strcat(notes, "\"");
    }
    strcat(notes, "]}}");
    ok_call(c, "customer.put", notes);
    rp_client_close(c);
}

/* Wait until only `want` connections are open (the metrics request's own
 * included): the server really closed the others. */
static void wait_open_connections(const rp_h *h, long want) {
    long long deadline = rp_h_now_ms() + 5000;
    for (;;) {
        long open = open_connections(h);
        assert_true(open >= 1);
        if (open <= want) break;
        if (rp_h_now_ms() > deadline) fail_msg("%ld connections still open, expected %ld", open, want);
        rp_h_sleep_ms(50);
    }
}

/* RPC clients that pipeline and never read: 4 connections each push
 * customer.get requests (replies ~1.3 KB each) until the kernel takes no
 * more. The server must stop reading them (backpressure: its memory stays
 * bounded by max_output_bytes and max_request_bytes per connection, not by
 * what the clients send) and drop them once their replies could not be
 * written for idle_timeout_ms. */
static void test_pipeline_never_reads_rpc(void **state) {
    rp_h *h = *state;
    rp_h_start_ok(h, "max_output_bytes = 1048576\nidle_timeout_ms = 2000\n");
    put_big_customer(h);
    witness *wp = fx_witness(h);
    memwatch m;
    witness_start(wp, h, true);
    mem_begin(h, &m);
    /* one request frame, repeated: [0, 7, "customer.get", {"id": "big"}] */
    static const unsigned char get[] = {0x94, 0x00, 0x07, 0xac, 'c', 'u', 's', 't', 'o', 'm', 'e', 'r', '.',
                                        'g',  'e',  't',  0x81, 0xa2, 'i', 'd',  0xa3, 'b', 'i', 'g'};
    enum { CHUNK_REQS = 4096, NRPC = 4 };
    size_t chunk = sizeof get * CHUNK_REQS;
    char *buf = malloc(chunk);
    assert_non_null(buf);
    for (int i = 0; i < CHUNK_REQS; i++) memcpy(buf + i * sizeof get, get, sizeof get);
    int fds[NRPC];
    size_t sent[NRPC];
    long long t0 = rp_h_now_ms();
    for (int i = 0; i < NRPC; i++) {
        fds[i] = rp_h_raw_connect(h);
        assert_true(fds[i] >= 0);
        int small = 65536; /* keep the kernel's share small: the server must hold the line */
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        sent[i] = send_until_stalled(fds[i], buf, chunk, (size_t)256 << 20, 400);
        fprintf(stderr, "  never-reading rpc client %d: server took %zu KB (%zu requests) before backpressure\n", i,
                sent[i] / 1024, sent[i] / sizeof get);
    }
    free(buf);
    fprintf(stderr, "  VmRSS while the clients were stalled: %ld kB\n", proc_kb(h->pid, "VmRSS"));
    /* the server holds the line: far less than the 256 MB each would send */
    for (int i = 0; i < NRPC; i++) assert_true(sent[i] < (size_t)32 << 20);
    /* ... and drops them: idle_timeout_ms (2 s) of unwritable replies */
    for (int i = 0; i < NRPC; i++) {
        bool gone = dropped_within(fds[i], 8000);
        fprintf(stderr, "  never-reading rpc client %d: %s %lld ms after it started\n", i,
                gone ? "dropped" : "NOT dropped", rp_h_now_ms() - t0);
        assert_true(gone);
        close(fds[i]);
    }
    mem_end(h, &m, "pipeline, never read (rpc)");
    /* bounded: 4 x (max_output_bytes + max_request_bytes) and change */
    assert_true(m.hwm - m.rss_before < 48 * 1024 * MEM_FACTOR);
    witness_stop(wp, "pipeline, never read (rpc)");
    wait_open_connections(h, 1);
    stop_clean(h);
}

/* The same on the HTTP face: keep-alive requests pipelined and never
 * read. evhttp answers one request at a time, so the replies are bounded;
 * what the server buffers of the requests must be bounded too, and the
 * connection dropped after slow_timeout_ms of unwritable output. */
static void test_pipeline_never_reads_http(void **state) {
    rp_h *h = *state;
    rp_h_start_ok(h, "slow_timeout_ms = 2000\n");
    put_big_customer(h);
    witness *wp = fx_witness(h);
    memwatch m;
    witness_start(wp, h, true);
    mem_begin(h, &m);
    long timed_out0 = metric_value(h, "rapport_connections_timed_out_total");
    assert_true(timed_out0 >= 0);
    char hreq[160];
    int hl = snprintf(hreq, sizeof hreq, "GET /v1/customers/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    size_t n = (size_t)hl * 4096;
    char *hbuf = malloc(n);
    assert_non_null(hbuf);
    for (int i = 0; i < 4096; i++) memcpy(hbuf + (size_t)i * (size_t)hl, hreq, (size_t)hl);
    int fd = tcp_connect(h->http_port, 10);
    assert_true(fd >= 0);
    int small = 65536;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    size_t sent = send_until_stalled(fd, hbuf, n, (size_t)64 << 20, 400);
    free(hbuf);
    long rss = proc_kb(h->pid, "VmRSS");
    fprintf(stderr, "  never-reading http client: server took %zu KB of requests; VmRSS %ld kB\n", sent / 1024, rss);
    /* After slow_timeout_ms of unwritable replies the server shuts the
     * connection down and counts it as timed out: wait for that count (a
     * fixed sleep raced the server's sweeper on a loaded machine, and once
     * this client reads, the replies become writable again). Its FIN waits
     * behind the replies we did not read, so then look by reading: what it
     * had written, then EOF — not an endless stream of replies to the rest
     * of the pipeline. */
    long long wait0 = rp_h_now_ms();
    long timed_out = timed_out0;
    while (timed_out <= timed_out0 && rp_h_now_ms() - wait0 < 30000) {
        rp_h_sleep_ms(20); /* polling interval, not synchronisation */
        timed_out = metric_value(h, "rapport_connections_timed_out_total");
    }
    fprintf(stderr, "  never-reading http client: timed out by the server after %lld ms of waiting\n",
            rp_h_now_ms() - wait0);
    if (timed_out <= timed_out0)
        fail_msg("the HTTP face did not time out a client that never reads within 30 s (slow_timeout_ms = 2000)");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t got = 0;
    bool gone = false;
    long long t0 = rp_h_now_ms();
    char rb[65536];
    while (rp_h_now_ms() - t0 < 10000) {
        ssize_t r = recv(fd, rb, sizeof rb, 0);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        gone = r == 0 || errno == ECONNRESET;
        break;
    }
    fprintf(stderr, "  never-reading http client: %s; %zu KB of replies were still queued\n",
            gone ? "dropped" : "NOT dropped", got / 1024);
    close(fd);
    mem_end(h, &m, "pipeline, never read (http)");
    /* the server holds the line: far less than the 64 MB offered */
    if (sent >= (size_t)16 << 20)
        fail_msg("the HTTP face buffered %zu MB of pipelined requests from one client that does not read "
                 "(VmRSS %ld kB): unbounded input",
                 sent >> 20, rss);
    assert_true(gone);
    witness_stop(wp, "pipeline, never read (http)");
    wait_open_connections(h, 1);
    stop_clean(h);
}

/* Connect an RPC client and ping; NULL when refused. */
static rp_client *rpc_try(const rp_h *h, rp_err *why) {
    rp_client *c = rp_h_connect(h);
    if (c == NULL) return NULL;
    msgpack_object res;
    rp_errbuf eb = {0};
    rp_err rc = rp_client_call(c, "ping", NULL, 0, &res, &eb);
    if (why) *why = rc;
    if (rc != RP_OK) {
        rp_client_close(c);
        return NULL;
    }
    return c;
}

/* Connect and ping, retrying while the server is still closing the
 * connections just given up (their count drops asynchronously). */
static rp_client *rpc_must(const rp_h *h) {
    long long deadline = rp_h_now_ms() + 3000;
    for (;;) {
        rp_err why = RP_OK;
        rp_client *c = rpc_try(h, &why);
        if (c != NULL) return c;
        if (why != RP_UNAVAILABLE || rp_h_now_ms() > deadline) fail_msg("cannot connect: %s", rp_err_code(why));
        rp_h_sleep_ms(20);
    }
}

/* max_connections counts both faces together: RPC connections fill the
 * cap and HTTP gets 503; keep-alive HTTP connections fill it and RPC gets
 * UNAVAILABLE. A flood of 300 connections past the cap is refused one by
 * one, and afterwards the count is back where it was (nothing leaked), so
 * the cap is available again in full. */
static void test_connection_cap_both_faces(void **state) {
    rp_h *h = *state;
    rp_h_start_ok(h, "max_connections = 6\n");
    witness *wp = fx_witness(h);
    memwatch m;
    witness_start(wp, h, false); /* 1 RPC connection */
    mem_begin(h, &m);
    rp_client *cs[5] = {0};
    for (int i = 0; i < 4; i++) {
        cs[i] = rpc_try(h, NULL);
        assert_non_null(cs[i]);
    }
    /* 5 of 6 in use: an HTTP request is the 6th, served */
    char out[16384];
    assert_int_equal(http_get(h, "/healthz", NULL, out, sizeof out), 200);
    cs[4] = rpc_must(h); /* once that HTTP connection is closed */
    /* 6 of 6: HTTP is refused with 503 UNAVAILABLE and Connection: close */
    int st = http_get(h, "/healthz", NULL, out, sizeof out);
    if (st != 503) fprintf(stderr, "over the cap, HTTP answered %d: %s\n", st, out);
    assert_int_equal(st, 503);
    expect_has(out, "UNAVAILABLE");
    /* and RPC: one UNAVAILABLE reply with msgid 0, then the close */
    rp_err why = RP_OK;
    assert_null(rpc_try(h, &why));
    assert_int_equal(why, RP_UNAVAILABLE);
    /* swap: 3 RPC out, 3 keep-alive HTTP connections in */
    for (int i = 0; i < 3; i++) {
        rp_client_close(cs[i]);
        cs[i] = NULL;
    }
    /* wait for the server to see them go: witness + 2 + the metrics request */
    long long deadline = rp_h_now_ms() + 3000;
    for (long o = open_connections(h); o < 0 || o > 4; o = open_connections(h)) {
        if (rp_h_now_ms() > deadline) fail_msg("closed connections still counted: %ld open", o);
        rp_h_sleep_ms(20);
    }
    int ka[3];
    for (int i = 0; i < 3; i++) {
        ka[i] = tcp_connect(h->http_port, 10);
        assert_true(ka[i] >= 0);
        static const char r[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        send_all(ka[i], r, sizeof r - 1);
        char b[1024];
        ssize_t n = recv(ka[i], b, sizeof b - 1, 0);
        assert_true(n > 12);
        b[n] = '\0';
        assert_true(strncmp(b, "HTTP/1.1 200", 12) == 0);
    }
    assert_null(rpc_try(h, &why));
    assert_int_equal(why, RP_UNAVAILABLE);
    /* a flood: 300 connections past the cap, 200 RPC and 100 HTTP */
    long long t0 = rp_h_now_ms();
    int refused_rpc = 0, refused_http = 0;
    for (int i = 0; i < 200; i++) {
        rp_client *x = rpc_try(h, &why);
        if (x == NULL && why == RP_UNAVAILABLE) refused_rpc++;
        rp_client_close(x);
    }
    for (int i = 0; i < 100; i++)
        if (http_get(h, "/healthz", NULL, out, sizeof out) == 503) refused_http++;
    fprintf(stderr, "  flood: %d/200 rpc and %d/100 http refused in %lld ms\n", refused_rpc, refused_http,
            rp_h_now_ms() - t0);
    assert_int_equal(refused_rpc, 200);
    assert_int_equal(refused_http, 100);
    /* everyone but the witness leaves: the count returns to 1 (+ the
     * metrics request itself), so the whole cap is usable again */
    for (int i = 0; i < 3; i++) close(ka[i]);
    for (int i = 3; i < 5; i++) rp_client_close(cs[i]);
    long open = -1;
    for (int i = 0; i < 100; i++) {
        rp_h_sleep_ms(20);
        open = open_connections(h);
        if (open == 2) break;
    }
    assert_int_equal(open, 2);
    rp_client *again[5];
    for (int i = 0; i < 5; i++) again[i] = rpc_must(h);
    for (int i = 0; i < 5; i++) rp_client_close(again[i]);
    mem_end(h, &m, "connection cap and flood");
    witness_stop(wp, "connection cap and flood");
    stop_clean(h);
}

/* True for an answer a refusing server may give to oversized input: a 4xx
 * error, or a close with no answer at all. Never a 2xx or a 5xx. */
static bool refused(int status) { return status == 0 || (status >= 400 && status < 500); }

/* Oversized HTTP input: request line, header line, header count, lying and
 * overflowing Content-Length, bodies over max_request_bytes (plain and
 * chunked), a chunk size of 2^64-1. Each is refused (4xx or closed), at
 * once or within slow_timeout_ms, and the server is fine. */
static void test_http_oversized(void **state) {
    rp_h *h = *state;
    rp_h_start_ok(h, "max_request_bytes = 65536\nslow_timeout_ms = 1500\n");
    witness *wp = fx_witness(h);
    memwatch m;
    witness_start(wp, h, true);
    mem_begin(h, &m);
    size_t cap = 1 << 20;
    char *out = malloc(cap);
    char *big = malloc(4 << 20);
    assert_non_null(out);
    assert_non_null(big);
    struct {
        const char *what;
        size_t pad;        /* bytes of filler */
        const char *pre, *post;
        int want;          /* exact status wanted, or -1: refused() */
    } cases[] = {
        {"100 KB header line", 100000, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", "\r\n\r\n", -1},
        {"100 KB request line", 100000, "GET /v1/customers/", " HTTP/1.1\r\nHost: x\r\n\r\n", -1},
        {"1 MB request line, no CRLF", 1 << 20, "GET /", "", -1},
        {"body of 1 MB (limit 64 KB)", 1 << 20,
         "PUT /v1/customers/big HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n", "", 413},
        {"Content-Length of 100 GB, 1 byte sent", 0,
         "PUT /v1/customers/big HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{", "", -1},
        {"Content-Length past 2^64", 0,
         "PUT /v1/customers/big HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n{", "", -1},
        {"negative Content-Length", 0, "PUT /v1/customers/big HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{",
         "", -1},
        {"chunk size 2^64-1", 0,
         "PUT /v1/customers/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\naaaa", "",
         -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t o = 0, pl = strlen(cases[i].pre), ql = strlen(cases[i].post);
        memcpy(big, cases[i].pre, pl);
        o = pl;
        memset(big + o, 'a', cases[i].pad);
        o += cases[i].pad;
        memcpy(big + o, cases[i].post, ql);
        o += ql;
        long long t0 = rp_h_now_ms();
        int st = http_raw(h, big, o, out, cap);
        long long dt = rp_h_now_ms() - t0;
        fprintf(stderr, "  %-38s -> %d in %lld ms\n", cases[i].what, st, dt);
        if (cases[i].want > 0) assert_int_equal(st, cases[i].want);
        else assert_true(refused(st));
        assert_true(dt < 5000);
    }
    /* 5,000 small headers */
    {
        size_t o = (size_t)sprintf(big, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
        for (int i = 0; i < 5000; i++) o += (size_t)sprintf(big + o, "X-H%d: v\r\n", i);
        o += (size_t)sprintf(big + o, "\r\n");
        int st = http_raw(h, big, o, out, cap);
        fprintf(stderr, "  %-38s -> %d\n", "5,000 headers", st);
        assert_true(refused(st));
    }
    /* chunked body past the limit: 80 chunks of 64 KiB */
    {
        size_t o = (size_t)sprintf(big, "PUT /v1/customers/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (int i = 0; i < 40; i++) {
            o += (size_t)sprintf(big + o, "10000\r\n");
            memset(big + o, 'a', 0x10000);
            o += 0x10000;
            o += (size_t)sprintf(big + o, "\r\n");
        }
        o += (size_t)sprintf(big + o, "0\r\n\r\n");
        int st = http_raw(h, big, o, out, cap);
        fprintf(stderr, "  %-38s -> %d\n", "chunked body of 2.5 MB", st);
        assert_true(st == 413 || st == 0);
    }
    /* 16 clients at once sending 4 MB bodies */
    {
        enum { N = 16 };
        int fds[N];
        size_t blen = 4 << 20;
        size_t o = (size_t)sprintf(big, "PUT /v1/customers/big HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", blen);
        memset(big + o, 'a', (4 << 20) - o);
        for (int i = 0; i < N; i++) {
            fds[i] = tcp_connect(h->http_port, 10);
            assert_true(fds[i] >= 0);
            fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
            ssize_t wr = send(fds[i], big, 4 << 20, MSG_NOSIGNAL);
            (void)wr;
        }
        int got413 = 0;
        for (int i = 0; i < N; i++) {
            fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) & ~O_NONBLOCK);
            char b[256];
            ssize_t n = recv(fds[i], b, sizeof b - 1, 0);
            if (n > 12 && strncmp(b, "HTTP/1.1 413", 12) == 0) got413++;
            close(fds[i]);
        }
        fprintf(stderr, "  %-38s -> %d of %d got 413\n", "16 x 4 MB bodies at once", got413, N);
        (void)got413; /* a 413 or a close (a reset may discard the 413): both refuse */
    }
    free(big);
    /* still healthy, and the limit is a limit, not a lock-out */
    assert_int_equal(http_send_body(h, "PUT", "/v1/customers/fine", NULL, "{\"name\":\"Fine\"}", 15, out, cap), 200);
    mem_end(h, &m, "oversized HTTP");
    free(out);
    witness_stop(wp, "oversized HTTP");
    stop_clean(h);
}

/* Invalid UTF-8: in MessagePack strings (a value, a key, inside an array)
 * it is a connection error answered with the request's msgid; in a JSON
 * body, a query value or a path segment it is a 400. Valid non-ASCII text
 * is stored and returned unchanged; valid UTF-8 with control characters is
 * a plain BAD_REQUEST that leaves the connection open. */
static void test_invalid_utf8(void **state) {
    rp_h *h = *state;
    rp_h_start_ok(h, "");
    witness *wp = fx_witness(h);
    memwatch m;
    witness_start(wp, h, true);
    mem_begin(h, &m);
    static const struct {
        const char *what;
        const char *bytes;
        size_t n;
    } bad[] = {
        {"lone continuation", "\x80", 1},
        {"truncated sequence", "caf\xc3", 4},
        {"bad continuation", "\xc3\x28", 2},
        {"overlong slash", "\xc0\xaf", 2},
        {"overlong NUL", "\xc0\x80", 2},
        {"UTF-16 surrogate", "\xed\xa0\x80", 3},
        {"past U+10FFFF", "\xf4\x90\x80\x80", 4},
        {"5-byte form", "\xf8\x88\x80\x80\x80", 5},
        {"0xFF byte", "ab\xff", 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* customer.put {"id":"u", "customer":{"name": BAD}} */
        unsigned char b[128];
        size_t o = req_head(b, (uint8_t)(40 + i), "customer.put");
        static const unsigned char mid[] = {0x82, 0xa2, 'i', 'd', 0xa1, 'u', 0xa8, 'c', 'u', 's', 't', 'o', 'm',
                                            'e',  'r',  0x81, 0xa4, 'n', 'a', 'm', 'e'};
        memcpy(b + o, mid, sizeof mid);
        o += sizeof mid;
        b[o++] = (unsigned char)(0xa0 | bad[i].n);
        memcpy(b + o, bad[i].bytes, bad[i].n);
        o += bad[i].n;
        rpc_hostile(h, b, o, (uint32_t)(40 + i), RP_BAD_REQUEST, "UTF-8");
        /* the same bytes as a map key: context.get {BAD: "x"} */
        o = req_head(b, (uint8_t)(60 + i), "context.get");
        b[o++] = 0x81;
        b[o++] = (unsigned char)(0xa0 | bad[i].n);
        memcpy(b + o, bad[i].bytes, bad[i].n);
        o += bad[i].n;
        b[o++] = 0xa1;
        b[o++] = 'x';
        rpc_hostile(h, b, o, (uint32_t)(60 + i), RP_BAD_REQUEST, "UTF-8");
        /* inside an array: import {"records": [{"type": "customer", "id": BAD}]} */
        o = req_head(b, (uint8_t)(80 + i), "import");
        static const unsigned char imp[] = {0x81, 0xa7, 'r', 'e', 'c', 'o', 'r', 'd', 's', 0x91, 0x82, 0xa4, 't',
                                            'y',  'p',  'e', 0xa8, 'c', 'u', 's', 't', 'o', 'm', 'e', 'r',  0xa2,
                                            'i',  'd'};
        memcpy(b + o, imp, sizeof imp);
        o += sizeof imp;
        b[o++] = (unsigned char)(0xa0 | bad[i].n);
        memcpy(b + o, bad[i].bytes, bad[i].n);
        o += bad[i].n;
        rpc_hostile(h, b, o, (uint32_t)(80 + i), RP_BAD_REQUEST, "UTF-8");
        /* HTTP: the same bytes in a JSON body */
        char body[64], out[4096];
        int bl = snprintf(body, sizeof body, "{\"name\":\"%.*s\"}", (int)bad[i].n, bad[i].bytes);
        int st = http_send_body(h, "PUT", "/v1/customers/u", NULL, body, (size_t)bl, out, sizeof out);
        if (st != 400) fprintf(stderr, "JSON with %s -> %d: %s\n", bad[i].what, st, out);
        assert_int_equal(st, 400);
        expect_has(out, "\"code\":\"BAD_REQUEST\"");
        expect_has(out, "invalid JSON body");
        char *jb = strstr(out, "\r\n\r\n");
        assert_non_null(jb);
        assert_true(rp_utf8_valid(jb, strlen(jb)));
        /* ... and percent-encoded in a query value and a path segment */
        char path[128], enc[64] = "";
        for (size_t k = 0; k < bad[i].n; k++)
            snprintf(enc + strlen(enc), sizeof enc - strlen(enc), "%%%02X", (unsigned char)bad[i].bytes[k]);
        snprintf(path, sizeof path, "/v1/lookup?email=a%s@example.com", enc);
        st = http_get(h, path, NULL, out, sizeof out);
        if (st != 400) fprintf(stderr, "query with %s -> %d: %s\n", bad[i].what, st, out);
        assert_int_equal(st, 400);
        expect_has(out, "UTF-8");
        snprintf(path, sizeof path, "/v1/customers/a%s", enc);
        st = http_get(h, path, NULL, out, sizeof out);
        assert_int_equal(st, 400);
    }
    /* JSON escapes that decode to no valid text: a lone surrogate, NUL */
    {
        char out[4096];
        static const char *const esc[] = {"{\"name\":\"\\ud800\"}", "{\"name\":\"\\udc00x\"}",
                                          "{\"name\":\"a\\u0000b\"}"};
        for (size_t i = 0; i < 3; i++) {
            int st = http_send_body(h, "PUT", "/v1/customers/u", NULL, esc[i], strlen(esc[i]), out, sizeof out);
            assert_int_equal(st, 400);
        }
    }
    /* Valid UTF-8 with a control character: BAD_REQUEST, connection stays */
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    const char *msg = err_call(c, "customer.put", "{\"id\":\"u\",\"customer\":{\"name\":\"bell\\u0007\"}}",
                               RP_BAD_REQUEST);
    expect_has(msg, "control character");
    expect_clean_message(msg);
    err_call(c, "customer.put", "{\"id\":\"u\",\"customer\":{\"name\":\"c1\\u0085\"}}", RP_BAD_REQUEST);
    /* nothing above was stored */
    err_call(c, "customer.get", "{\"id\":\"u\"}", RP_NOT_FOUND);
    /* valid non-ASCII round-trips byte for byte */
    ok_call(c, "customer.put",
            "{\"id\":\"u\",\"customer\":{\"name\":\"Zo\\u00eb \\u5f20\\u4f1f \\ud83d\\ude00\",\"tier\":\"\\u00e9\"}}");
    msgpack_object r = ok_call(c, "customer.get", "{\"id\":\"u\"}");
    assert_true(mp_is_str(mp_get(&r, "name"), "Zo\xc3\xab \xe5\xbc\xa0\xe4\xbc\x9f \xf0\x9f\x98\x80"));
    rp_client_close(c);
    mem_end(h, &m, "invalid UTF-8");
    witness_stop(wp, "invalid UTF-8");
    stop_clean(h);
}

/* Bad phone numbers: a BAD_REQUEST naming the field and what is wrong, on
 * both faces; nothing stored; control bytes never echoed. route.get treats
 * an unparsable number as an unknown caller (found: false), by design. */
static void test_bad_phones(void **state) {
    rp_h *h = *state;
    rp_h_start_ok(h, "");
    witness *wp = fx_witness(h);
    memwatch m;
    witness_start(wp, h, true);
    mem_begin(h, &m);
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    ok_call(c, "customer.put", "{\"id\":\"p0\",\"customer\":{\"name\":\"Good\",\"phones\":[\"+1 415 555 0100\"]}}");
    static const struct {
        const char *json;  /* a JSON string literal, quotes included */
        const char *want;  /* in the message, after "customer: phones[1]: " */
    } bad[] = {
        {"\"abc\"", "contains letters ('abc')"},
        {"\"1-800-FLOWERS\"", "contains letters ('FLOWERS')"},
        {"\"\"", "is empty"},
        {"\"+\"", "has no digits"},
        {"\"()\"", "has no digits"},
        {"\"tel:\"", "has no digits"},
        {"\"++14155550100\"", "more than one '+'"},
        {"\"+1 (415 555 0100\"", "unbalanced parentheses"},
        {"\"+1 415) 555 0100\"", "unbalanced parentheses"},
        {"\"+44 (0)20 7946 0958 (0)\"", "more than one '(0)'"},
        {"\"+1 (415) 555-12\"", "10 digits after the country code, not 8"},
        {"\"+999 1234 5678\"", "unknown country calling code +999"},
        {"\"0044\"", "no digits after the country code +44"},
        {"\"555\"", "too short"},
        {"\"+1 415 555 0100 0100 0100 0100\"", "too long"},
        {"\"12345678901234567890123456789012345678901234567890\"", "too long"},
        {"\"+1 415 555 \\u0001\\u007f 0100\"", "unexpected byte 0x01"},
        {"\"+1 415 555 0100 ext\"", "extension"},
        {"\"\\u0660\\u0661\\u0662\\u0663\\u0664\\u0665\\u0666\\u0667\"", "unexpected byte"},
        {"\"\\uff11\\uff14\\uff11\\uff15\\uff15\\uff15\\uff15\\uff10\"", "unexpected byte"},
    };
    char js[512], out[4096];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* as the second phone of a put: named phones[1] */
        snprintf(js, sizeof js, "{\"id\":\"p1\",\"customer\":{\"phones\":[\"+14155550101\",%s]}}", bad[i].json);
        const char *msg = err_call(c, "customer.put", js, RP_BAD_REQUEST);
        if (strstr(msg, "phones[1]") == NULL || strstr(msg, bad[i].want) == NULL)
            fail_msg("phone %s: message '%s' should name phones[1] and say '%s'", bad[i].json, msg, bad[i].want);
        expect_clean_message(msg);
        /* as a lookup key: context.get and lookup say what is wrong */
        snprintf(js, sizeof js, "{\"phone\":%s}", bad[i].json);
        msg = err_call(c, "context.get", js, RP_BAD_REQUEST);
        expect_has(msg, "phone");
        expect_clean_message(msg);
        err_call(c, "lookup", js, RP_BAD_REQUEST);
        /* route.get: an unknown caller, not an error (the IVR must route) */
        msgpack_object r = ok_call(c, "route.get", js);
        assert_false(mp_is_true(mp_get(&r, "found")));
    }
    err_call(c, "customer.get", "{\"id\":\"p1\"}", RP_NOT_FOUND);
    /* a patch with a bad phone leaves the customer as it was */
    const char *msg = err_call(c, "customer.patch", "{\"id\":\"p0\",\"patch\":{\"phones\":[\"555\"]}}", RP_BAD_REQUEST);
    expect_has(msg, "phones[0]");
    msgpack_object r = ok_call(c, "customer.get", "{\"id\":\"p0\"}");
    assert_true(mp_is_str(mp_get(&r, "phones")->via.array.ptr, "+14155550100"));
    /* a 60 KB phone number (under max_string): refused, not a crash */
    {
        size_t n = 60000;
        char *big = malloc(n + 64);
        assert_non_null(big);
        strcpy(big, "{\"phone\":\"+1");
        memset(big + strlen(big), '5', n);
        strcpy(big + 12 + n, "\"}");
        rp_errbuf eb = {0};
        rp_err rc = jcall(c, "context.get", big, NULL, &eb);
        assert_true(rc == RP_BAD_REQUEST || rc == RP_TOO_LARGE);
        assert_false(rp_client_broken(c));
        free(big);
    }
    rp_client_close(c);
    /* HTTP: the same sentences, as 400 */
    static const char callme[] = "{\"phones\":[\"call me maybe\"]}";
    int st = http_send_body(h, "PUT", "/v1/customers/p2", NULL, callme, strlen(callme), out, sizeof out);
    assert_int_equal(st, 400);
    expect_has(out, "\"code\":\"BAD_REQUEST\"");
    expect_has(out, "phones[0]");
    expect_has(out, "letters");
    st = http_get(h, "/v1/context?phone=%2B1%20(415%20555%200100", NULL, out, sizeof out);
    assert_int_equal(st, 400);
    expect_has(out, "parenthes");
    st = http_get(h, "/v1/lookup?phone=%01%02%7F", NULL, out, sizeof out);
    assert_int_equal(st, 400);
    char *jb = strstr(out, "\r\n\r\n");
    assert_non_null(jb);
    expect_clean_message(jb + 4);
    st = http_get(h, "/v1/route?phone=not-a-number", NULL, out, sizeof out);
    assert_int_equal(st, 200);
    expect_has(out, "\"found\":false");
    st = http_get(h, "/v1/customers/p2", NULL, out, sizeof out);
    assert_int_equal(st, 404);
    mem_end(h, &m, "bad phones");
    witness_stop(wp, "bad phones");
    stop_clean(h);
}

/* Count the audit lines in the server's log. */
static int audit_lines(const rp_h *h) {
    FILE *f = fopen(h->log, "r");
    if (f == NULL) return 0;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f)) n += strstr(line, "event=audit") != NULL;
    fclose(f);
    return n;
}

static rp_client *as_role(const rp_h *h, const char *tok, rp_role want) {
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    rp_role got = RP_ROLE_NONE;
    rp_errbuf eb = {0};
    assert_int_equal(rp_client_auth(c, tok, &got, &eb), RP_OK);
    assert_int_equal(got, want);
    return c;
}

/* Another role's operations, on both faces: FORBIDDEN / 403 before the
 * params are looked at (garbage params still get FORBIDDEN, not a
 * BAD_REQUEST that would reveal the schema), with no effect on the data,
 * and no audit line (no card went out). A thousand forbidden requests in
 * a pipeline leave the connection and the server as they were. */
static void test_roles_both_faces(void **state) {
    rp_h *h = *state;
    rp_h_start_ok(h, "token = route:" TOK_ROUTE "\ntoken = agent:" TOK_AGENT "\ntoken = ingest:" TOK_INGEST
             "\ntoken = admin:" TOK_ADMIN "\n");
    witness *wp = fx_witness(h);
    memwatch m;
    witness_start(wp, h, true); /* ping and /healthz need no token */
    mem_begin(h, &m);
    rp_client *ing = as_role(h, TOK_INGEST, RP_ROLE_INGEST);
    ok_call(ing, "customer.put", "{\"id\":\"r1\",\"customer\":{\"name\":\"Rosa\",\"phones\":[\"+14155550142\"]}}");
    rp_client_close(ing);
    int audits = audit_lines(h);

    /* route asks for the full card: FORBIDDEN, even with garbage params */
    rp_client *rt = as_role(h, TOK_ROUTE, RP_ROLE_ROUTE);
    const char *msg = err_call(rt, "context.get", "{\"phone\":\"+14155550142\"}", RP_FORBIDDEN);
    expect_has(msg, "route");
    err_call(rt, "context.get", "{\"no_such_param\":[1,2,3]}", RP_FORBIDDEN);
    err_call(rt, "customer.forget", "{\"id\":\"r1\"}", RP_FORBIDDEN);
    err_call(rt, "export", "{\"limit\":\"garbage\"}", RP_FORBIDDEN);
    /* a pipeline of 1,000 forbidden requests: all answered, in order */
    {
        msgpack_sbuffer sb;
        json_params("{\"id\":\"r1\"}", &sb);
        uint32_t first = 0, id;
        for (int i = 0; i < 1000; i++) {
            assert_int_equal(rp_client_send(rt, i % 2 ? "customer.get" : "context.get", sb.data, sb.size, &id, NULL),
                             RP_OK);
            if (i == 0) first = id;
        }
        msgpack_sbuffer_destroy(&sb);
        for (int i = 0; i < 1000; i++) {
            rp_client_reply r;
            assert_int_equal(rp_client_recv(rt, &r, NULL), RP_OK);
            assert_int_equal(r.msgid, first + (uint32_t)i);
            assert_int_equal(r.rc, RP_FORBIDDEN);
        }
    }
    msgpack_object r = ok_call(rt, "route.get", "{\"phone\":\"+14155550142\"}"); /* its own op still works */
    assert_true(mp_is_str(mp_get(&r, "customer_id"), "r1"));
    rp_client_close(rt);

    /* agent asks to forget: FORBIDDEN, and the customer is still there */
    rp_client *ag = as_role(h, TOK_AGENT, RP_ROLE_AGENT);
    msg = err_call(ag, "customer.forget", "{\"id\":\"r1\"}", RP_FORBIDDEN);
    expect_has(msg, "agent");
    err_call(ag, "customer.forget", "{\"id\":[\"not\",\"an\",\"id\"]}", RP_FORBIDDEN);
    err_call(ag, "customer.put", "{\"id\":\"r1\",\"customer\":{\"name\":\"Hijacked\"}}", RP_FORBIDDEN);
    r = ok_call(ag, "customer.get", "{\"id\":\"r1\"}");
    assert_true(mp_is_str(mp_get(&r, "name"), "Rosa"));
    audits++; /* that read showed Rosa: its one audit line */
    /* a huge and a binary token: refused, the connection stays usable */
    {
        char *tok = malloc(60001);
        assert_non_null(tok);
        memset(tok, 't', 60000);
        tok[60000] = '\0';
        rp_errbuf eb = {0};
        assert_int_equal(rp_client_auth(ag, tok, NULL, &eb), RP_UNAUTHORIZED);
        free(tok);
        err_call(ag, "customer.get", "{\"id\":\"r1\"}", RP_UNAUTHORIZED); /* the role was dropped */
        err_call(ag, "auth", "{\"token\":7}", RP_BAD_REQUEST);
    }
    rp_client_close(ag);
    /* the refused route and agent attempts above wrote no audit line */
    assert_int_equal(audit_lines(h), audits);

    /* HTTP: the same refusals */
    char out[16384];
    const char *route_h = "Authorization: Bearer " TOK_ROUTE "\r\n";
    const char *agent_h = "Authorization: Bearer " TOK_AGENT "\r\n";
    const char *ingest_h = "Authorization: Bearer " TOK_INGEST "\r\n";
    assert_int_equal(http_get(h, "/v1/context?phone=%2B14155550142", route_h, out, sizeof out), 403);
    expect_has(out, "\"code\":\"FORBIDDEN\"");
    assert_int_equal(http_get(h, "/v1/context?bogus=1", route_h, out, sizeof out), 403);
    assert_int_equal(http_get(h, "/v1/customers/r1", route_h, out, sizeof out), 403);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "DELETE /v1/customers/r1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n", agent_h);
    assert_int_equal(http_raw(h, req, (size_t)n, out, sizeof out), 403);
    expect_has(out, "FORBIDDEN");
    assert_int_equal(http_send_body(h, "PUT", "/v1/customers/r1", agent_h, "{\"name\":\"X\"}", 12, out, sizeof out),
                     403);
    assert_int_equal(http_get(h, "/v1/export", ingest_h, out, sizeof out), 403);
    assert_true(strstr(out, "Rosa") == NULL); /* nothing leaked into the refusal */
    assert_int_equal(http_get(h, "/v1/customers/r1", ingest_h, out, sizeof out), 403);
    /* a token in the query string is not a credential */
    int st = http_get(h, "/v1/customers/r1?token=" TOK_ADMIN, NULL, out, sizeof out);
    assert_true(st == 401 || st == 400);
    /* a 12 KB bearer token: 401, not a crash */
    {
        char *hdr = malloc(12100);
        assert_non_null(hdr);
        strcpy(hdr, "Authorization: Bearer ");
        memset(hdr + strlen(hdr), 'z', 12000);
        strcpy(hdr + 22 + 12000, "\r\n");
        st = http_get(h, "/v1/customers/r1", hdr, out, sizeof out);
        free(hdr);
        assert_true(st == 401 || st == 400 || st == 0);
    }
    assert_int_equal(audit_lines(h), audits);
    /* the data is untouched: an agent still sees Rosa */
    assert_int_equal(http_get(h, "/v1/customers/r1", agent_h, out, sizeof out), 200);
    expect_has(out, "\"name\":\"Rosa\"");
    mem_end(h, &m, "roles");
    witness_stop(wp, "roles");
    stop_clean(h);
}

int main(void) {
    const char *filter = getenv("RAPPORT_TEST_FILTER"); /* e.g. "*slowloris*" */
    if (filter && *filter) cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_length_lies, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_slowloris_rpc, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_slowloris_http, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_never_reads_rpc, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_never_reads_http, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_connection_cap_both_faces, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_http_oversized, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_phones, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_roles_both_faces, fx_setup, fx_teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    fprintf(stderr, "hostile-summary: peak VmHWM %ld kB (%.1f MB) of rapportd over the hostile tests (in: %s); "
                    "limit %ld kB\n",
            peak_hwm_kb, (double)peak_hwm_kb / 1024.0, peak_test, RSS_LIMIT_KB);
    return failed;
}
