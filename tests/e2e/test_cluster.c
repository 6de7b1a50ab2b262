/* test_cluster.c — end-to-end: cluster mode on a real 3-server NATS
 * cluster (tests/e2e/nats.h) with real rapportd nodes (harness.h).
 *
 * One NATS cluster serves the whole suite (group setup); each test uses a
 * stream of its own (cluster_stream), so tests do not see each other's
 * entries. Nothing waits by sleeping: every "until" polls a condition
 * (stats' cluster.applied_seq, /healthz) against a deadline.
 *
 *   - test_converge: two nodes; writes of every kind through both (puts,
 *     appends, an issue, a merge, a forget, a stale expect_version, an
 *     idempotency key sent to each node, the same key with other params);
 *     each node reads its own write at once (read-your-writes); a CONFLICT
 *     is decided at apply, the same on both; bad input never reaches the
 *     log (the applied sequence counts exactly the valid writes); once
 *     caught up both exports are byte-identical; /metrics passes
 *     `promtool check metrics`; a node's store started
 *     without cluster_urls is refused.
 *   - test_seed_and_refuse: a node started on a `backup` copy of another
 *     resumes from the copy's sequence, catches up and converges; a fresh
 *     node on a stream whose first entries are gone (retention by bytes)
 *     refuses to start and says how to re-seed, and so does a single
 *     node's store with data started on that (non-empty) stream.
 *   - test_fault_rounds: one writer thread per node puts new customers
 *     (an idempotency key each, retried with it until acknowledged, over a
 *     new connection when the node is gone) while a reader reads node a;
 *     rounds of kill -9: a nats-server each round (each in turn, so the
 *     stream leader and the one a node is connected to are among them)
 *     and rapportd b once, each restarted after the writers made progress
 *     (or 30 s); afterwards every acknowledged customer is on both nodes
 *     at version 1 (applied exactly once), the exports are identical, and
 *     the reader saw no error. RAPPORT_CLUSTER_ROUNDS sets the rounds
 *     (default 2; tools/cluster-faults runs more).
 *   - test_nats_down: every nats-server stopped: both nodes report
 *     disconnected (/healthz 503), reads go on, a write answers
 *     UNAVAILABLE after cluster_write_timeout_ms and is applied nowhere;
 *     the servers back: /healthz 200 again, writes resume, both converge.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "e2e/calls.h"
#include "e2e/harness.h"
#include "e2e/http.h"
#include "e2e/nats.h"
#include "e2e/run.h"
#include "e2e/serve.h"

#define WRITE_TIMEOUT_MS 1500 /* cluster_write_timeout_ms of the nodes */

static rp_nats g_nats;

static int group_setup(void **state) {
    (void)state;
    if (rp_nats_start(&g_nats, 3) != 0) {
        fprintf(stderr, "test_cluster: could not start 3 nats-servers (tools/setup installs nats-server)\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    rp_nats_cleanup(&g_nats);
    return 0;
}

/* Two nodes of one test. */
#define NODES_MAX 4

/* The nodes of one test, each allocated on its own. */
typedef struct nodes {
    rp_h *h[NODES_MAX];
} nodes;

static int nodes_setup(void **state) {
    nodes *n = calloc(1, sizeof *n);
    *state = n;
    if (n == NULL) return -1;
    for (int i = 0; i < NODES_MAX; i++)
        if ((n->h[i] = calloc(1, sizeof(rp_h))) == NULL) return -1;
    return 0;
}

static int nodes_teardown(void **state) {
    nodes *n = *state;
    if (n)
        for (int i = 0; i < NODES_MAX; i++) {
            if (n->h[i]) rp_h_cleanup(n->h[i]);
            free(n->h[i]);
        }
    free(n);
    return 0;
}

/* The config lines of a node of stream `stream`. */
static void node_config(char *out, size_t n, const char *stream, const char *node, const char *more) {
    snprintf(out, n,
             "cluster_urls = %s\ncluster_stream = %s\nnode_id = %s\ncluster_write_timeout_ms = %d\n"
             "durability = async\n%s",
             g_nats.urls, stream, node, WRITE_TIMEOUT_MS, more ? more : "");
}

static void node_start(rp_h *h, const char *stream, const char *node, const char *more) {
    char cfg[1024];
    node_config(cfg, sizeof cfg, stream, node, more);
    if (rp_h_start(h, cfg) != 0) fail_msg("node %s did not start", node);
}

/* The cluster map of stats. */
typedef struct cstats {
    uint64_t applied_seq, stream_seq, lag;
    bool connected, healthy;
} cstats;

static cstats node_stats(rp_client *c) {
    msgpack_object res = ok_call(c, "stats", NULL);
    const msgpack_object *cl = mp_get(&res, "cluster");
    assert_non_null(cl);
    cstats s = {mp_u64(mp_get(cl, "applied_seq")), mp_u64(mp_get(cl, "stream_seq")),
                mp_u64(mp_get(cl, "lag")), mp_is_true(mp_get(cl, "connected")),
                mp_is_true(mp_get(cl, "healthy"))};
    return s;
}

/* Poll until every node applied at least `seq` (and all the same); returns
 * the sequence they share. Fails after 30 s. */
static uint64_t wait_caught_up(rp_client **c, int n, uint64_t seq) {
    long long deadline = rp_h_now_ms() + 30000;
    for (;;) {
        uint64_t first = 0;
        bool same = true;
        for (int i = 0; i < n; i++) {
            cstats s = node_stats(c[i]);
            if (i == 0) first = s.applied_seq;
            if (s.applied_seq != first || s.applied_seq < seq || s.lag != 0) same = false;
        }
        if (same) return first;
        if (rp_h_now_ms() > deadline) fail_msg("nodes did not catch up to %llu", (unsigned long long)seq);
        rp_h_sleep_ms(20);
    }
}

/* GET /v1/export of h: the body (malloc'd). */
static char *export_of(const rp_h *h) {
    rp_http_resp r = rp_http(h, "GET", "/v1/export", NULL, NULL);
    assert_int_equal(r.status, 200);
    char *body = strdup(r.body);
    free(r.text);
    return body;
}

static void expect_same_export(const rp_h *a, const rp_h *b, size_t min_len) {
    char *ea = export_of(a), *eb = export_of(b);
    if (strcmp(ea, eb) != 0) {
        fprintf(stderr, "export A (%zu bytes):\n%.2000s\nexport B (%zu bytes):\n%.2000s\n", strlen(ea), ea,
                strlen(eb), eb);
        fail_msg("exports differ");
    }
    assert_true(strlen(ea) >= min_len);
    free(ea);
    free(eb);
}

/* SIGTERM: exit 0 required (the log is printed otherwise). */
static void node_stop(rp_h *h) {
    int st = rp_h_stop(h);
    if (st != 0) rp_h_dump_log(h);
    assert_int_equal(st, 0);
}

/* /healthz status of h. */
static int healthz(const rp_h *h) {
    rp_http_resp r = rp_http(h, "GET", "/healthz", NULL, NULL);
    int st = r.status;
    free(r.text);
    return st;
}

static void test_converge(void **state) {
    nodes *n = *state;
    rp_h *a = n->h[0], *b = n->h[1];
    node_start(a, "CONV", "a", NULL);
    node_start(b, "CONV", "b", NULL);
    rp_client *c[2] = {rp_h_connect(a), rp_h_connect(b)};
    assert_non_null(c[0]);
    assert_non_null(c[1]);
    uint64_t entries = 0; /* valid writes sent: each is one log entry */
    long long ts = (long long)time(NULL) - 3600;
    char js[512];

    /* bad input is refused before the log */
    err_call(c[0], "event.append", "{\"event\":{\"customer_id\":\"x\"}}", RP_BAD_REQUEST);
    err_call(c[1], "customer.put", "{\"id\":\"x\",\"customer\":{\"phones\":[\"12\"]}}", RP_BAD_REQUEST);

    for (int i = 0; i < 40; i++) {
        rp_client *mine = c[i % 2], *other = c[(i + 1) % 2];
        snprintf(js, sizeof js, "{\"id\":\"c%02d\",\"customer\":{\"name\":\"Cust %d\",\"emails\":[\"c%d@example.com\"]}}",
                 i, i, i);
        msgpack_object r = ok_call(mine, "customer.put", js);
        assert_int_equal(mp_u64(mp_get(&r, "version")), 1);
        entries++;
        /* read-your-writes on the node written to, with no wait */
        snprintf(js, sizeof js, "{\"id\":\"c%02d\"}", i);
        ok_call(mine, "customer.get", js);
        snprintf(js, sizeof js,
                 "{\"event\":{\"customer_id\":\"c%02d\",\"ts\":%lld,\"channel\":\"phone\",\"kind\":\"contact\","
                 "\"topic\":\"billing\",\"summary\":\"call %d\"}}",
                 i, ts + i, i);
        ok_call(other, "event.append", js);
        entries++;
    }
    ok_call(c[0], "issue.put", "{\"issue\":{\"customer_id\":\"c00\",\"issue_id\":\"INC-1\",\"topic\":\"delivery\","
                               "\"status\":\"open\"}}");
    entries++;
    /* a stale version: CONFLICT, decided at apply */
    const char *msg = err_call(c[1], "customer.patch", "{\"id\":\"c01\",\"patch\":{\"name\":\"X\"},\"expect_version\":7}",
                               RP_CONFLICT);
    assert_non_null(strstr(msg, "version"));
    entries++;
    ok_call(c[1], "customer.merge", "{\"from\":\"c03\",\"into\":\"c02\"}");
    entries++;
    msgpack_object fr = ok_call(c[0], "customer.forget", "{\"id\":\"c05\"}");
    assert_true(mp_is_true(mp_get(&fr, "forgotten")));
    entries++;

    /* an idempotency key: once in the log; the other node answers the same */
    const char *keyed = "{\"idempotency_key\":\"K-1\",\"id\":\"c10\",\"patch\":{\"name\":\"Keyed\"}}";
    msgpack_object k1 = ok_call(c[0], "customer.patch", keyed);
    uint64_t v1 = mp_u64(mp_get(&k1, "version"));
    entries++;
    msgpack_object k2 = ok_call(c[1], "customer.patch", keyed);
    assert_int_equal(mp_u64(mp_get(&k2, "version")), v1);
    msgpack_object k3 = ok_call(c[0], "customer.patch", keyed);
    assert_int_equal(mp_u64(mp_get(&k3, "version")), v1);
    /* the same key with other params: CONFLICT (another entry, refused at apply) */
    err_call(c[1], "customer.patch", "{\"idempotency_key\":\"K-1\",\"id\":\"c10\",\"patch\":{\"name\":\"Other\"}}",
             RP_CONFLICT);
    entries++;

    /* an entry bigger than NATS' max_payload (1 MiB): TOO_LARGE at once */
    size_t cap = 2u << 20;
    char *big = malloc(cap);
    assert_non_null(big);
    int off = snprintf(big, cap, "{\"records\":[");
    for (int i = 0; i < 5000; i++)
        off += snprintf(big + off, cap - (size_t)off, "%s{\"type\":\"customer\",\"id\":\"L%04d\",\"name\":\"%0200d\"}",
                        i ? "," : "", i, i);
    snprintf(big + off, cap - (size_t)off, "]}");
    msg = err_call(c[0], "import", big, RP_TOO_LARGE);
    assert_non_null(strstr(msg, "max_payload"));
    free(big);

    uint64_t seq = wait_caught_up(c, 2, entries);
    assert_int_equal(seq, entries); /* nothing refused reached the log, nothing twice */
    expect_same_export(a, b, 40 * 100);
    assert_int_equal(healthz(a), 200);
    assert_int_equal(healthz(b), 200);

    /* the metrics a dashboard needs, and they pass promtool's lint */
    rp_http_resp m = rp_http(a, "GET", "/metrics", NULL, NULL);
    assert_int_equal(m.status, 200);
    assert_non_null(strstr(m.body, "rapport_cluster_applied_seq "));
    assert_non_null(strstr(m.body, "rapport_cluster_apply_lag_seconds_bucket"));
    char path[400];
    snprintf(path, sizeof path, "%s/metrics.txt", a->dir);
    rp_write_file(path, m.body);
    int pst = 0;
    char *out = rp_sh(&pst, "promtool check metrics < '%s' 2>&1", path);
    if (pst != 0 || out[0] != '\0') fail_msg("promtool check metrics: exit %d: %s", pst, out);
    free(out);
    free(m.text);

    rp_client_close(c[0]);
    rp_client_close(c[1]);
    node_stop(a);
    node_stop(b);

    /* a node's store started without its cluster: refused (local writes
     * would diverge from the other nodes) */
    snprintf(a->extra, sizeof a->extra, "durability = async\n");
    assert_int_equal(rp_h_write_config(a), 0);
    assert_int_equal(rp_h_spawn(a), 0);
    int st = rp_h_wait_exit(a, 30000);
    if (st != 1) rp_h_dump_log(a);
    assert_int_equal(st, 1);
    assert_true(rp_h_log_has(a, "is a cluster node's"));
}

static void test_seed_and_refuse(void **state) {
    nodes *n = *state;
    rp_h *a = n->h[0], *b = n->h[1], *z = n->h[2];
    /* 1 MiB of stream at most: the first entries go once it is full */
    const char *small = "cluster_max_bytes = 1048576\n";
    node_start(a, "SEED", "a", small);
    rp_client *ca = rp_h_connect(a);
    assert_non_null(ca);
    char js[512];
    for (int i = 0; i < 20; i++) {
        snprintf(js, sizeof js, "{\"id\":\"s%02d\",\"customer\":{\"name\":\"Seed %d\"}}", i, i);
        ok_call(ca, "customer.put", js);
    }
    /* the backup: a copy of the store with its applied sequence (20) */
    char bdir[400];
    snprintf(bdir, sizeof bdir, "%s/backup", a->dir);
    snprintf(js, sizeof js, "{\"dir\":\"%s\"}", bdir);
    ok_call(ca, "backup", js);
    for (int i = 20; i < 40; i++) {
        snprintf(js, sizeof js, "{\"id\":\"s%02d\",\"customer\":{\"name\":\"Seed %d\"}}", i, i);
        ok_call(ca, "customer.put", js);
    }

    /* b starts on the copy: resumes after 20, catches up to 40 */
    char cfg[1024];
    node_config(cfg, sizeof cfg, "SEED", "b", small);
    assert_int_equal(rp_h_init(b, cfg), 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/data.mdb' '%s/'", b->data, bdir, b->data);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(rp_h_launch(b), 0);
    assert_true(rp_h_log_has(b, "applied=20"));
    rp_client *cb = rp_h_connect(b);
    assert_non_null(cb);
    rp_client *both[2] = {ca, cb};
    assert_int_equal(wait_caught_up(both, 2, 40), 40);
    expect_same_export(a, b, 40 * 20);

    /* push the stream past 1 MiB so that its first entries are dropped */
    char *big = malloc(300000);
    assert_non_null(big);
    for (int round = 0; round < 14; round++) {
        int off = snprintf(big, 300000, "{\"records\":[");
        for (int i = 0; i < 400; i++)
            off += snprintf(big + off, 300000 - (size_t)off,
                            "%s{\"type\":\"customer\",\"id\":\"big%d-%03d\",\"name\":\"%0200d\"}", i ? "," : "",
                            round, i, i);
        snprintf(big + off, 300000 - (size_t)off, "]}");
        ok_call(ca, "import", big);
    }
    free(big);
    assert_int_equal(wait_caught_up(both, 2, 54), 54);
    expect_same_export(a, b, 54 * 20);

    /* z: an empty store on a stream that no longer starts at 1: refused */
    node_config(cfg, sizeof cfg, "SEED", "z", small);
    assert_int_equal(rp_h_init(z, cfg), 0);
    assert_int_equal(rp_h_spawn(z), 0);
    int st = rp_h_wait_exit(z, 30000);
    if (st == 0 || st == -1) rp_h_dump_log(z);
    assert_true(st > 0 && st < 128);
    assert_true(rp_h_log_has(z, "re-seed"));

    /* s: a single node's store with data, then in cluster mode on this
     * stream: refused (it would replay the stream over its own data) */
    rp_h *s1 = n->h[3];
    rp_h_start_ok(s1, "durability = async\n");
    rp_client *cs = rp_h_connect(s1);
    assert_non_null(cs);
    ok_call(cs, "customer.put", "{\"id\":\"solo\",\"customer\":{\"name\":\"Solo\"}}");
    rp_client_close(cs);
    node_stop(s1);
    node_config(s1->extra, sizeof s1->extra, "SEED", "s", NULL);
    assert_int_equal(rp_h_write_config(s1), 0);
    assert_int_equal(rp_h_spawn(s1), 0);
    st = rp_h_wait_exit(s1, 30000);
    if (st != 1) rp_h_dump_log(s1);
    assert_int_equal(st, 1);
    assert_true(rp_h_log_has(s1, "never applied stream SEED"));

    rp_client_close(ca);
    rp_client_close(cb);
    node_stop(a);
    node_stop(b);
}


/* --- fault rounds ------------------------------------------------------------------- */

#define FAULT_MAX_ACKS 200000

typedef struct writer_arg {
    const rp_h *h;
    int id;
    atomic_int *stop;
    atomic_int acked;       /* customers acknowledged: w<id>-0 .. w<id>-(acked-1) */
    atomic_llong last_ack;  /* rp_h_now_ms of the last acknowledgement */
    atomic_llong max_gap;   /* longest time between two acknowledgements (ms; reset by the test) */
    char err[512];          /* the first unexpected error */
} writer_arg;

/* Put w<id>-<n> for n = 0, 1, ...: each retried with its key until
 * acknowledged (a node gone: reconnect to the same address). */
static void *writer_main(void *p) {
    writer_arg *w = p;
    rp_client *c = NULL;
    char js[256];
    for (int n = 0; n < FAULT_MAX_ACKS && !atomic_load(w->stop);) {
        if (c == NULL) {
            rp_errbuf eb = {0};
            if (rp_client_connect(w->h->addr, 10000, &c, &eb) != RP_OK) {
                c = NULL;
                rp_h_sleep_ms(50); /* the node is restarting: back off */
                continue;
            }
        }
        snprintf(js, sizeof js, "{\"idempotency_key\":\"fault-%d-%d\",\"id\":\"w%d-%d\",\"customer\":{\"name\":\"W %d\"}}",
                 w->id, n, w->id, n, n);
        rp_errbuf eb = {0};
        msgpack_object res;
        rp_err rc = jcall(c, "customer.put", js, &res, &eb);
        if (rc == RP_OK) {
            if (mp_u64(mp_get(&res, "version")) != 1 && w->err[0] == '\0')
                snprintf(w->err, sizeof w->err, "w%d-%d: version %llu", w->id, n,
                         (unsigned long long)mp_u64(mp_get(&res, "version")));
            n++;
            long long now = rp_h_now_ms(), prev = atomic_load(&w->last_ack);
            if (prev > 0 && now - prev > atomic_load(&w->max_gap)) atomic_store(&w->max_gap, now - prev);
            atomic_store(&w->acked, n);
            atomic_store(&w->last_ack, now);
        } else if (rc != RP_UNAVAILABLE) {
            if (w->err[0] == '\0') snprintf(w->err, sizeof w->err, "w%d-%d: %s: %s", w->id, n, rp_err_code(rc), eb.msg);
            break;
        }
        if (c && rp_client_broken(c)) {
            rp_client_close(c);
            c = NULL;
        }
    }
    if (c) rp_client_close(c);
    return NULL;
}

typedef struct reader_arg {
    const rp_h *h;
    atomic_int *stop;
    atomic_long reads, errors;
} reader_arg;

static void *reader_main(void *p) {
    reader_arg *r = p;
    rp_client *c = rp_h_connect(r->h);
    while (c && !atomic_load(r->stop)) {
        rp_errbuf eb = {0};
        rp_err rc = jcall(c, "customer.get", "{\"id\":\"base\"}", NULL, &eb);
        atomic_fetch_add(rc == RP_OK ? &r->reads : &r->errors, 1);
    }
    if (c == NULL) atomic_fetch_add(&r->errors, 1);
    if (c) rp_client_close(c);
    return NULL;
}

/* Wait until both writers acknowledged `more` writes after now (progress
 * through the fault), or timeout_ms. Returns ms until the first writer's
 * first acknowledgement after `since` (the write unavailability). */
static long long wait_progress(writer_arg *w, int nw, int more, long long since, int timeout_ms) {
    int base[4];
    for (int i = 0; i < nw; i++) base[i] = atomic_load(&w[i].acked);
    long long deadline = rp_h_now_ms() + timeout_ms, first = -1;
    for (;;) {
        bool all = true;
        for (int i = 0; i < nw; i++) {
            if (atomic_load(&w[i].acked) < base[i] + more) all = false;
            long long la = atomic_load(&w[i].last_ack);
            if (la > since && (first < 0 || la < first)) first = la;
        }
        if (all || rp_h_now_ms() > deadline) return first < 0 ? -1 : first - since;
        rp_h_sleep_ms(10);
    }
}

static void test_fault_rounds(void **state) {
    nodes *n = *state;
    rp_h *a = n->h[0], *b = n->h[1];
    node_start(a, "FAULT", "a", NULL);
    node_start(b, "FAULT", "b", NULL);
    rp_client *c[2] = {rp_h_connect(a), rp_h_connect(b)};
    assert_non_null(c[0]);
    assert_non_null(c[1]);
    ok_call(c[0], "customer.put", "{\"id\":\"base\",\"customer\":{\"name\":\"Base\"}}");
    assert_int_equal(wait_caught_up(c, 2, 1), 1);
    rp_client_close(c[1]);
    c[1] = NULL;

    const char *env = getenv("RAPPORT_CLUSTER_ROUNDS");
    int rounds = env && atoi(env) > 0 ? atoi(env) : 2;
    atomic_int stop = 0;
    writer_arg w[2] = {{.h = a, .id = 0, .stop = &stop}, {.h = b, .id = 1, .stop = &stop}};
    reader_arg r = {.h = a, .stop = &stop};
    pthread_t tw[2], tr;
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&tw[i], NULL, writer_main, &w[i]), 0);
    assert_int_equal(pthread_create(&tr, NULL, reader_main, &r), 0);
    wait_progress(w, 2, 50, rp_h_now_ms(), 30000);

    for (int round = 0; round < rounds; round++) {
        int victim = round % g_nats.n;
        long long t0 = rp_h_now_ms();
        for (int i = 0; i < 2; i++) atomic_store(&w[i].max_gap, 0);
        rp_nats_kill9(&g_nats, victim);
        wait_progress(w, 2, 50, t0, 30000);
        assert_int_equal(rp_nats_restart(&g_nats, victim), 0);
        fprintf(stderr, "test_cluster: round %d: kill -9 nats-server n%d: longest wait between acknowledged writes "
                "a %lld ms, b %lld ms\n", round, victim + 1, (long long)atomic_load(&w[0].max_gap),
                (long long)atomic_load(&w[1].max_gap));
        long long unavail;
        if (round == 0) { /* and a rapportd */
            t0 = rp_h_now_ms();
            rp_h_kill9(b);
            wait_progress(w, 1, 50, t0, 30000); /* a's writer goes on */
            assert_int_equal(rp_h_restart(b), 0);
            unavail = wait_progress(&w[1], 1, 20, t0, 30000);
            fprintf(stderr, "test_cluster: round %d: kill -9 rapportd b: its writer acknowledged again %lld ms after\n",
                    round, unavail);
        }
        wait_progress(w, 2, 20, rp_h_now_ms(), 30000);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(tw[i], NULL);
    pthread_join(tr, NULL);
    for (int i = 0; i < 2; i++) {
        if (w[i].err[0]) fail_msg("writer %d: %s", i, w[i].err);
        assert_true(atomic_load(&w[i].acked) > 50);
    }
    fprintf(stderr, "test_cluster: fault rounds: %d + %d writes acknowledged, %ld reads on a, %ld read errors\n",
            atomic_load(&w[0].acked), atomic_load(&w[1].acked), (long)atomic_load(&r.reads),
            (long)atomic_load(&r.errors));
    assert_int_equal(atomic_load(&r.errors), 0);
    assert_true(atomic_load(&r.reads) > 0);

    c[1] = rp_h_connect(b);
    assert_non_null(c[1]);
    wait_caught_up(c, 2, 1);
    char js[64];
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < atomic_load(&w[i].acked); k++)
            for (int node = 0; node < 2; node++) {
                snprintf(js, sizeof js, "{\"id\":\"w%d-%d\"}", i, k);
                msgpack_object res = ok_call(c[node], "customer.get", js);
                assert_int_equal(mp_u64(mp_get(&res, "version")), 1); /* applied exactly once */
            }
    expect_same_export(a, b, 100);
    rp_client_close(c[0]);
    rp_client_close(c[1]);
    node_stop(a);
    node_stop(b);
}

static void test_nats_down(void **state) {
    nodes *n = *state;
    rp_h *a = n->h[0], *b = n->h[1];
    node_start(a, "DOWN", "a", NULL);
    node_start(b, "DOWN", "b", NULL);
    rp_client *c[2] = {rp_h_connect(a), rp_h_connect(b)};
    assert_non_null(c[0]);
    assert_non_null(c[1]);
    ok_call(c[0], "customer.put", "{\"id\":\"d1\",\"customer\":{\"name\":\"Before\"}}");
    assert_int_equal(wait_caught_up(c, 2, 1), 1);

    for (int i = 0; i < g_nats.n; i++) rp_nats_kill9(&g_nats, i);
    long long deadline = rp_h_now_ms() + 20000;
    while (node_stats(c[0]).connected || node_stats(c[1]).connected) {
        if (rp_h_now_ms() > deadline) fail_msg("nodes did not notice NATS going away");
        rp_h_sleep_ms(20);
    }
    assert_int_equal(healthz(a), 503);
    assert_int_equal(healthz(b), 503);
    /* reads go on */
    ok_call(c[0], "customer.get", "{\"id\":\"d1\"}");
    ok_call(c[1], "customer.get", "{\"id\":\"d1\"}");
    /* a write: UNAVAILABLE after the deadline, applied nowhere */
    long long t0 = rp_h_now_ms();
    const char *msg = err_call(c[1], "customer.put", "{\"id\":\"d2\",\"customer\":{\"name\":\"During\"}}",
                               RP_UNAVAILABLE);
    long long took = rp_h_now_ms() - t0;
    fprintf(stderr, "test_cluster: write with NATS down: UNAVAILABLE after %lld ms (%s)\n", took, msg);
    assert_true(took >= WRITE_TIMEOUT_MS - 50 && took < WRITE_TIMEOUT_MS + 5000);
    err_call(c[0], "customer.get", "{\"id\":\"d2\"}", RP_NOT_FOUND);
    err_call(c[1], "customer.get", "{\"id\":\"d2\"}", RP_NOT_FOUND);

    /* NATS back: healthy again, writes resume (retried with a key while
     * the stream elects its leader) */
    for (int i = 0; i < g_nats.n; i++) assert_int_equal(rp_nats_spawn(&g_nats, i), 0);
    assert_int_equal(rp_nats_wait_ready(&g_nats, 30000), 0);
    t0 = rp_h_now_ms();
    deadline = t0 + 60000;
    rp_err rc;
    rp_errbuf eb = {0};
    do {
        memset(&eb, 0, sizeof eb);
        rc = jcall(c[0], "customer.put", "{\"idempotency_key\":\"after-1\",\"id\":\"d3\",\"customer\":{\"name\":\"After\"}}",
                   NULL, &eb);
        if (rc != RP_OK && rc != RP_UNAVAILABLE) fail_msg("write after NATS came back: %s", eb.msg);
    } while (rc != RP_OK && rp_h_now_ms() < deadline);
    if (rc != RP_OK) {
        fprintf(stderr, "last error: %s\n", eb.msg);
        rp_h_dump_log(a);
        rp_nats_dump(&g_nats);
    }
    assert_int_equal(rc, RP_OK);
    fprintf(stderr, "test_cluster: writes resumed %lld ms after the servers were ready\n", rp_h_now_ms() - t0);
    uint64_t seq = wait_caught_up(c, 2, 2);
    assert_int_equal(seq, 2); /* d1 and d3: d2 never reached the log */
    err_call(c[0], "customer.get", "{\"id\":\"d2\"}", RP_NOT_FOUND);
    expect_same_export(a, b, 2 * 20);
    deadline = rp_h_now_ms() + 20000;
    while (healthz(a) != 200 || healthz(b) != 200) {
        if (rp_h_now_ms() > deadline) fail_msg("/healthz did not come back to 200");
        rp_h_sleep_ms(20);
    }
    rp_client_close(c[0]);
    rp_client_close(c[1]);
    node_stop(a);
    node_stop(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_converge, nodes_setup, nodes_teardown),
        cmocka_unit_test_setup_teardown(test_seed_and_refuse, nodes_setup, nodes_teardown),
        cmocka_unit_test_setup_teardown(test_fault_rounds, nodes_setup, nodes_teardown),
        cmocka_unit_test_setup_teardown(test_nats_down, nodes_setup, nodes_teardown), /* last: stops NATS */
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
