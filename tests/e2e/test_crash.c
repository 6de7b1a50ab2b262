/* test_crash.c — end-to-end crash safety of the real rapportd.
 *
 * The promise under test (DESIGN.md "Storage and durability"): with
 * `durability = sync` a write that was acknowledged is on disk, so no crash
 * of the server may lose it; with `durability = async` an acknowledged write
 * is committed and reaches the disk within async_flush_ms.
 *
 * test_kill9_loop_sync: start rapportd (tests/e2e/harness.h) and drive it
 * with NTHREADS client threads, each pipelining INFLIGHT writes through the
 * client library: new customers (customer.put, with an e-mail, so an index
 * is written too), events (event.append) and updates of one long-lived
 * customer per thread (customer.patch, whose version only grows). Every
 * write whose reply came back OK is recorded as acknowledged. After a random
 * 50..400 ms the server gets SIGKILL; it is restarted on the same data
 * directory, must answer ping and stats, and every acknowledged write must
 * be there (customer.get and lookup by e-mail for each new customer, the
 * history of each event stream, the patched customer's version). Then again,
 * RAPPORT_CRASH_ITERATIONS times (default 30). Finally everything from every
 * iteration is checked once more, so a later crash cannot have damaged an
 * earlier write either. The random delays come from a seed that is printed
 * (RAPPORT_CRASH_SEED replays a run). The summary line, parsed by
 * tools/crashloop, is
 *     crash-summary: mode=sync iterations=N acked=A lost=L seed=S
 * and L must be 0.
 *
 * test_sync_ack_is_on_disk and test_async_loss_window measure durability
 * from the outside with the kernel's page cache accounting (cachestat(2),
 * Linux 6.5+): the number of dirty pages of data.mdb, i.e. bytes a power
 * loss would lose. In sync mode there must be none whenever every write has
 * been acknowledged. In async mode a kill -9 loses nothing (the page cache
 * outlives the process, so an acknowledged write survives a process crash
 * in either mode), and the loss window against an OS crash is the time from
 * the last acknowledgement until data.mdb has no dirty pages: measured over
 * several rounds, it must stay within async_flush_ms plus a margin. Without
 * cachestat (older kernels) those measurements are not made and the tests
 * that make them are reported as skipped (cmocka skip(), ctest still passes);
 * the kill -9 parts still run and must pass.
 *
 * Limits: kill -9 simulates a process crash, not a power cut; the power-cut
 * promise rests on the fsync that the cachestat check observes (no dirty
 * page left behind an acknowledgement), not on pulling a plug.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "e2e/calls.h"
#include "net/client.h"

#define NTHREADS 6
#define INFLIGHT 8
#define DEFAULT_ITERATIONS 30
#define ASYNC_FLUSH_MS 1000
/* Scheduling and fsync time on top of the flush interval. An ASan build
 * runs the server several times slower, and CI runs it beside other
 * suites on two cores (1,570 ms was seen there with 500): twice the margin. */
#if defined(__SANITIZE_ADDRESS__)
#define WINDOW_MARGIN_MS 1000
#else
#define WINDOW_MARGIN_MS 500
#endif

/* --- small msgpack helpers ---------------------------------------------------------- */

static void pk_str(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static uint64_t mp_uint(const msgpack_object *o) {
    return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64 : 0;
}

/* Call method with params built by the caller in sb; require success. */
static msgpack_object must_call(rp_client *c, const char *method, const msgpack_sbuffer *sb) {
    msgpack_object res;
    rp_errbuf eb = {0};
    rp_err rc = rp_client_call(c, method, sb ? sb->data : NULL, sb ? sb->size : 0, &res, &eb);
    if (rc != RP_OK) fprintf(stderr, "%s -> %s: %s\n", method, rp_err_code(rc), eb.msg);
    assert_int_equal(rc, RP_OK);
    return res;
}

/* --- a seeded PRNG (xorshift64*) -------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

/* Uniform in lo..hi (inclusive); the modulo bias is irrelevant here. */
static int rng_range(int lo, int hi) { return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1)); }

static uint64_t seed_from_env(void) {
    const char *s = getenv("RAPPORT_CRASH_SEED");
    if (s && *s) return strtoull(s, NULL, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

static int env_int(const char *name, int def, int lo, int hi) {
    const char *s = getenv(name);
    if (s == NULL || *s == '\0') return def;
    long v = strtol(s, NULL, 10);
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return (int)v;
}

/* --- page-cache probe: dirty pages of a file (cachestat, Linux 6.5+) -------------------- */

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* the same number on every architecture */
#endif

struct cs_range {
    uint64_t off, len;
};
struct cs_stat {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/* Pages of fd that are dirty or under writeback (not yet durable), or -1
 * when the kernel has no cachestat. */
static long dirty_pages(int fd) {
    struct cs_range r = {0, 0}; /* len 0: to the end of the file */
    struct cs_stat st;
    if (syscall(__NR_cachestat, fd, &r, &st, 0) != 0) return -1;
    return (long)(st.nr_dirty + st.nr_writeback);
}

static int open_data_file(const rp_h *h) {
    char p[400];
    snprintf(p, sizeof p, "%s/data.mdb", h->data);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

/* --- the write load --------------------------------------------------------------------- */

typedef enum { OP_PUT = 0, OP_EVENT = 1, OP_PATCH = 2 } op_kind;

/* One acknowledged write. */
typedef struct ack {
    int iter, thread, seq;
    op_kind kind;
    uint64_t version; /* OP_PATCH: the version the reply gave */
    long long ack_ms; /* monotonic time the reply arrived */
} ack;

typedef struct ack_list {
    ack *v;
    size_t n, cap;
    size_t puts, events; /* how many of v are OP_PUT, OP_EVENT */
} ack_list;

static void acks_add(ack_list *l, ack a) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        assert_non_null(l->v);
    }
    l->v[l->n++] = a;
    l->puts += a.kind == OP_PUT;
    l->events += a.kind == OP_EVENT;
}

typedef struct loader {
    const rp_h *h;
    int iter, thread;
    atomic_bool *go;    /* start sending */
    atomic_bool *stop;  /* stop sending, collect what is owed, return */
    atomic_int *ready;  /* threads connected and set up */
    atomic_long *acked; /* acknowledgements so far, all loaders */
    ack_list acks;
    long sent;
    int refused;        /* replies UNAVAILABLE (not acknowledged) */
    int errors;         /* other error replies: a bug in the test or the server */
    char first_error[RP_ERRMSG_MAX + 64];
    bool setup_failed;
} loader;

static void id_put(char *out, size_t n, int iter, int thread, int seq) {
    snprintf(out, n, "k%d-t%d-s%d", iter, thread, seq);
}
static void id_stream(char *out, size_t n, int iter, int thread) { snprintf(out, n, "e%d-t%d", iter, thread); }
static void id_patched(char *out, size_t n, int thread) { snprintf(out, n, "v-t%d", thread); }

/* Pack the params of write number seq of this loader into sb. */
static op_kind pack_write(const loader *L, long seq, msgpack_sbuffer *sb, long long now_s) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    char id[64], text[96];
    op_kind k = (op_kind)(seq % 3);
    switch (k) {
    case OP_PUT:
        id_put(id, sizeof id, L->iter, L->thread, (int)seq);
        msgpack_pack_map(&pk, 2);
        pk_str(&pk, "id");
        pk_str(&pk, id);
        pk_str(&pk, "customer");
        msgpack_pack_map(&pk, 2);
        pk_str(&pk, "name");
        snprintf(text, sizeof text, "Crash Test %s", id);
        pk_str(&pk, text);
        pk_str(&pk, "emails");
        msgpack_pack_array(&pk, 1);
        snprintf(text, sizeof text, "%s@crash.example.com", id);
        pk_str(&pk, text);
        break;
    case OP_EVENT:
        id_stream(id, sizeof id, L->iter, L->thread);
        msgpack_pack_map(&pk, 1);
        pk_str(&pk, "event");
        msgpack_pack_map(&pk, 5);
        pk_str(&pk, "customer_id");
        pk_str(&pk, id);
        pk_str(&pk, "ts");
        msgpack_pack_int64(&pk, now_s);
        pk_str(&pk, "channel");
        pk_str(&pk, "system");
        pk_str(&pk, "kind");
        pk_str(&pk, "load");
        pk_str(&pk, "summary");
        snprintf(text, sizeof text, "s%ld", seq);
        pk_str(&pk, text);
        break;
    case OP_PATCH:
        id_patched(id, sizeof id, L->thread);
        msgpack_pack_map(&pk, 2);
        pk_str(&pk, "id");
        pk_str(&pk, id);
        pk_str(&pk, "patch");
        msgpack_pack_map(&pk, 1);
        pk_str(&pk, "preferred_name");
        snprintf(text, sizeof text, "i%d-s%ld", L->iter, seq);
        pk_str(&pk, text);
        break;
    }
    return k;
}

static const char *const op_method[] = {"customer.put", "event.append", "customer.patch"};

/* Create this iteration's event stream customer (before the load). */
static bool loader_setup(loader *L, rp_client *c) {
    char id[64];
    id_stream(id, sizeof id, L->iter, L->thread);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pk_str(&pk, "id");
    pk_str(&pk, id);
    pk_str(&pk, "customer");
    msgpack_pack_map(&pk, 1);
    pk_str(&pk, "name");
    pk_str(&pk, "Event Stream");
    msgpack_object res;
    rp_errbuf eb = {0};
    rp_err rc = rp_client_call(c, "customer.put", sb.data, sb.size, &res, &eb);
    msgpack_sbuffer_destroy(&sb);
    if (rc != RP_OK) fprintf(stderr, "loader %d: setup: %s: %s\n", L->thread, rp_err_code(rc), eb.msg);
    return rc == RP_OK;
}

/* Keep INFLIGHT writes in flight until the server goes away (or stop is
 * set, then collect what is owed). Replies come in request order, so
 * reply number j answers write number j. */
static void *loader_main(void *p) {
    loader *L = p;
    rp_client *c = rp_h_connect(L->h);
    if (c == NULL || !loader_setup(L, c)) {
        L->setup_failed = true;
        atomic_fetch_add(L->ready, 1);
        rp_client_close(c);
        return NULL;
    }
    atomic_fetch_add(L->ready, 1);
    while (!atomic_load(L->go)) rp_h_sleep_ms(1);
    long long now_s = (long long)time(NULL);
    long answered = 0;
    for (;;) {
        while (!atomic_load(L->stop) && rp_client_pending(c) < INFLIGHT) {
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            op_kind k = pack_write(L, L->sent, &sb, now_s);
            rp_err rc = rp_client_send(c, op_method[k], sb.data, sb.size, NULL, NULL);
            msgpack_sbuffer_destroy(&sb);
            if (rc != RP_OK) goto out;
            L->sent++;
        }
        if (rp_client_pending(c) == 0) break;
        rp_client_reply r;
        if (rp_client_recv(c, &r, NULL) != RP_OK) break; /* the server is gone */
        long seq = answered++;
        op_kind k = (op_kind)(seq % 3);
        if (r.rc == RP_OK) {
            ack a = {.iter = L->iter, .thread = L->thread, .seq = (int)seq, .kind = k, .ack_ms = rp_h_now_ms()};
            if (k == OP_PATCH) a.version = mp_uint(mp_get(&r.result, "version"));
            acks_add(&L->acks, a);
            atomic_fetch_add(L->acked, 1);
        } else if (r.rc == RP_UNAVAILABLE) {
            L->refused++;
        } else {
            if (L->errors++ == 0)
                snprintf(L->first_error, sizeof L->first_error, "%s seq %ld: %s: %s", op_method[k], seq,
                         rp_err_code(r.rc), r.message);
        }
    }
out:
    rp_client_close(c);
    return NULL;
}

typedef struct load_run {
    loader L[NTHREADS];
    pthread_t th[NTHREADS];
    atomic_bool go, stop;
    atomic_int ready;
    atomic_long acked;
} load_run;

/* Start NTHREADS loaders for iteration iter; returns once they are all
 * connected and set up, and the load is running. */
static void load_start(load_run *run, const rp_h *h, int iter) {
    memset(run, 0, sizeof *run);
    atomic_init(&run->go, false);
    atomic_init(&run->stop, false);
    atomic_init(&run->ready, 0);
    atomic_init(&run->acked, 0);
    for (int t = 0; t < NTHREADS; t++) {
        run->L[t] = (loader){.h = h, .iter = iter, .thread = t, .go = &run->go, .stop = &run->stop,
                             .ready = &run->ready, .acked = &run->acked};
        assert_int_equal(pthread_create(&run->th[t], NULL, loader_main, &run->L[t]), 0);
    }
    long long deadline = rp_h_now_ms() + 20000;
    while (atomic_load(&run->ready) < NTHREADS && rp_h_now_ms() < deadline) rp_h_sleep_ms(1);
    assert_int_equal(atomic_load(&run->ready), NTHREADS);
    atomic_store(&run->go, true);
}

/* Join the loaders, move their acknowledgements into all; returns the
 * number of writes acknowledged in this run. */
static size_t load_join(load_run *run, ack_list *all) {
    size_t n = 0;
    bool failed = false;
    for (int t = 0; t < NTHREADS; t++) {
        pthread_join(run->th[t], NULL);
        loader *L = &run->L[t];
        if (L->setup_failed) failed = true;
        if (L->errors) {
            fprintf(stderr, "loader %d: %d error replies, first: %s\n", t, L->errors, L->first_error);
            failed = true;
        }
        for (size_t i = 0; i < L->acks.n; i++) acks_add(all, L->acks.v[i]);
        n += L->acks.n;
        free(L->acks.v);
        L->acks.v = NULL;
    }
    assert_false(failed);
    return n;
}

/* --- checking --------------------------------------------------------------------------- */

/* Create the long-lived patched customers (once per server). */
static void create_patched(const rp_h *h) {
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    for (int t = 0; t < NTHREADS; t++) {
        char id[64];
        id_patched(id, sizeof id, t);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        pk_str(&pk, "id");
        pk_str(&pk, id);
        pk_str(&pk, "customer");
        msgpack_pack_map(&pk, 1);
        pk_str(&pk, "name");
        pk_str(&pk, "Patched Often");
        must_call(c, "customer.put", &sb);
        msgpack_sbuffer_destroy(&sb);
    }
    rp_client_close(c);
}

/* The earliest acknowledgement time among the writes found lost by the
 * checks below since it was last reset to -1 (for the async loss age). */
static long long lost_oldest_ack_ms = -1;

static void note_lost(const ack *a) {
    if (lost_oldest_ack_ms < 0 || a->ack_ms < lost_oldest_ack_ms) lost_oldest_ack_ms = a->ack_ms;
}

/* Is every acknowledged new customer there, by id and by e-mail? Pipelined
 * in windows of 256 requests. Prints each missing one; returns the count. */
static size_t check_puts(rp_client *c, const ack_list *acks, size_t from) {
    size_t lost = 0;
    size_t idx[256];
    size_t i = from;
    while (i < acks->n) {
        size_t n = 0;
        for (; i < acks->n && n < 128; i++) {
            const ack *a = &acks->v[i];
            if (a->kind != OP_PUT) continue;
            char id[64], text[96];
            id_put(id, sizeof id, a->iter, a->thread, a->seq);
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_map(&pk, 1);
            pk_str(&pk, "id");
            pk_str(&pk, id);
            assert_int_equal(rp_client_send(c, "customer.get", sb.data, sb.size, NULL, NULL), RP_OK);
            msgpack_sbuffer_clear(&sb);
            msgpack_pack_map(&pk, 1);
            pk_str(&pk, "email");
            snprintf(text, sizeof text, "%s@crash.example.com", id);
            pk_str(&pk, text);
            assert_int_equal(rp_client_send(c, "lookup", sb.data, sb.size, NULL, NULL), RP_OK);
            msgpack_sbuffer_destroy(&sb);
            idx[n++] = i;
        }
        for (size_t j = 0; j < n; j++) {
            const ack *a = &acks->v[idx[j]];
            char id[64], name[96];
            id_put(id, sizeof id, a->iter, a->thread, a->seq);
            snprintf(name, sizeof name, "Crash Test %s", id);
            rp_client_reply r;
            assert_int_equal(rp_client_recv(c, &r, NULL), RP_OK);
            bool ok = r.rc == RP_OK && mp_is_str(mp_get(&r.result, "name"), name);
            assert_int_equal(rp_client_recv(c, &r, NULL), RP_OK);
            const msgpack_object *cands = mp_get(&r.result, "candidates");
            ok = ok && r.rc == RP_OK && cands && cands->type == MSGPACK_OBJECT_ARRAY && cands->via.array.size == 1 &&
                 mp_is_str(mp_get(&cands->via.array.ptr[0], "customer_id"), id);
            if (!ok) {
                fprintf(stderr, "LOST: acknowledged customer.put %s (acked at %lld ms)\n", id, a->ack_ms);
                note_lost(a);
                lost++;
            }
        }
    }
    return lost;
}

/* Is every acknowledged event of (iter, thread) in its stream's history? */
static size_t check_events(rp_client *c, const ack_list *acks, size_t from, int iter, int thread) {
    long max_seq = -1;
    for (size_t i = from; i < acks->n; i++) {
        const ack *a = &acks->v[i];
        if (a->kind == OP_EVENT && a->iter == iter && a->thread == thread && a->seq > max_seq) max_seq = a->seq;
    }
    if (max_seq < 0) return 0;
    char *seen = calloc((size_t)max_seq + 1, 1);
    assert_non_null(seen);
    char id[64], cursor[96] = "";
    id_stream(id, sizeof id, iter, thread);
    for (;;) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, cursor[0] ? 3 : 2);
        pk_str(&pk, "id");
        pk_str(&pk, id);
        pk_str(&pk, "limit");
        msgpack_pack_uint32(&pk, 200);
        if (cursor[0]) {
            pk_str(&pk, "before");
            pk_str(&pk, cursor);
        }
        msgpack_object r = must_call(c, "history.list", &sb);
        msgpack_sbuffer_destroy(&sb);
        const msgpack_object *evs = mp_get(&r, "events");
        assert_non_null(evs);
        assert_int_equal(evs->type, MSGPACK_OBJECT_ARRAY);
        for (uint32_t k = 0; k < evs->via.array.size; k++) {
            const msgpack_object *s = mp_get(&evs->via.array.ptr[k], "summary");
            assert_non_null(s);
            char tmp[32];
            snprintf(tmp, sizeof tmp, "%.*s", (int)s->via.str.size, s->via.str.ptr);
            long n = -1;
            assert_int_equal(sscanf(tmp, "s%ld", &n), 1);
            if (n >= 0 && n <= max_seq) seen[n] = 1;
        }
        const msgpack_object *next = mp_get(&r, "next");
        if (next == NULL || next->type != MSGPACK_OBJECT_STR) break;
        snprintf(cursor, sizeof cursor, "%.*s", (int)next->via.str.size, next->via.str.ptr);
    }
    size_t lost = 0;
    for (size_t i = from; i < acks->n; i++) {
        const ack *a = &acks->v[i];
        if (a->kind != OP_EVENT || a->iter != iter || a->thread != thread || seen[a->seq]) continue;
        fprintf(stderr, "LOST: acknowledged event.append %s s%d (acked at %lld ms)\n", id, a->seq, a->ack_ms);
        note_lost(a);
        lost++;
    }
    free(seen);
    return lost;
}

/* Does each patched customer have at least the newest acknowledged version? */
static size_t check_patches(rp_client *c, const ack_list *acks, size_t from) {
    size_t lost = 0;
    for (int t = 0; t < NTHREADS; t++) {
        uint64_t want = 0;
        for (size_t i = from; i < acks->n; i++)
            if (acks->v[i].kind == OP_PATCH && acks->v[i].thread == t && acks->v[i].version > want)
                want = acks->v[i].version;
        if (want == 0) continue;
        char id[64];
        id_patched(id, sizeof id, t);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        pk_str(&pk, "id");
        pk_str(&pk, id);
        msgpack_object r = must_call(c, "customer.get", &sb);
        msgpack_sbuffer_destroy(&sb);
        uint64_t have = mp_uint(mp_get(&r, "version"));
        if (have < want) {
            fprintf(stderr, "LOST: %s has version %" PRIu64 ", version %" PRIu64 " was acknowledged\n", id, have,
                    want);
            /* the oldest lost patch is the first one after the version kept */
            for (size_t i = from; i < acks->n; i++)
                if (acks->v[i].kind == OP_PATCH && acks->v[i].thread == t && acks->v[i].version > have) {
                    note_lost(&acks->v[i]);
                    break;
                }
            lost++;
        }
    }
    return lost;
}

/* After a restart: the store answers stats with at least the counts
 * acknowledged so far, and every acknowledged write from index `from` of
 * acks is present. Returns the number lost. */
static size_t check_all(const rp_h *h, const ack_list *acks, size_t from, int iter_lo, int iter_hi) {
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    msgpack_object st = must_call(c, "stats", NULL);
    size_t puts = acks->puts, events = acks->events;
    uint64_t have_c = mp_uint(mp_get(&st, "customers")), have_e = mp_uint(mp_get(&st, "events"));
    if (have_c < puts || have_e < events)
        fprintf(stderr, "stats: %" PRIu64 " customers / %" PRIu64 " events, acknowledged %zu / %zu\n", have_c,
                have_e, puts, events);
    assert_true(have_c >= puts);
    assert_true(have_e >= events);
    size_t lost = check_puts(c, acks, from);
    for (int it = iter_lo; it <= iter_hi; it++)
        for (int t = 0; t < NTHREADS; t++) lost += check_events(c, acks, from, it, t);
    lost += check_patches(c, acks, from);
    rp_client_close(c);
    return lost;
}

/* --- tests ------------------------------------------------------------------------------ */

/* The kill -9 loop in sync durability (see the top of the file). */
static void test_kill9_loop_sync(void **state) {
    rp_h *h = *state;
    int iterations = env_int("RAPPORT_CRASH_ITERATIONS", DEFAULT_ITERATIONS, 1, 1000000);
    uint64_t seed = seed_from_env();
    rng_state = seed ? seed : 1;
    fprintf(stderr, "crash: sync kill -9 loop: %d iterations, seed=%" PRIu64 " (RAPPORT_CRASH_SEED replays)\n",
            iterations, seed);
    assert_int_equal(rp_h_start(h, "http =\ndurability = sync\nretention_max_events = 1000000\n"), 0);
    create_patched(h);
    ack_list acks = {0};
    size_t lost = 0;
    long long t0 = rp_h_now_ms();
    int done = 0;
    for (int it = 0; it < iterations; it++) {
        int delay = rng_range(50, 400);
        size_t from = acks.n;
        load_run *run = calloc(1, sizeof *run);
        assert_non_null(run);
        load_start(run, h, it);
        rp_h_sleep_ms(delay);
        /* a loaded machine may take longer for the first commit: the kill
         * comes at the drawn moment or, if later, once writes are flowing */
        long long wait_until = rp_h_now_ms() + 10000;
        while (atomic_load(&run->acked) == 0 && rp_h_now_ms() < wait_until) rp_h_sleep_ms(1);
        rp_h_kill9(h);
        size_t n = load_join(run, &acks);
        free(run);
        if (rp_h_restart(h) != 0) fail_msg("iteration %d: rapportd did not restart after kill -9", it);
        size_t l = check_all(h, &acks, from, it, it);
        lost += l;
        done++;
        if (l || it < 3 || (it + 1) % 10 == 0 || it + 1 == iterations)
            fprintf(stderr, "  iteration %d: kill -9 after %d ms, %zu writes acknowledged, %zu lost\n", it, delay, n,
                    l);
        if (n == 0) fail_msg("iteration %d: no write was acknowledged in 10 s: the load did not run", it);
    }
    /* Once more, everything from every iteration, after all those crashes. */
    size_t relost = check_all(h, &acks, 0, 0, iterations - 1);
    fprintf(stderr, "crash: %d iterations in %.1f s; final re-check of all %zu acknowledged writes: %zu lost\n",
            done, (double)(rp_h_now_ms() - t0) / 1000.0, acks.n, relost);
    fprintf(stderr, "crash-summary: mode=sync iterations=%d acked=%zu lost=%zu seed=%" PRIu64 "\n", done, acks.n,
            lost + relost, seed);
    free(acks.v);
    if (lost + relost) rp_h_dump_log(h);
    assert_int_equal(lost + relost, 0);
    int st = rp_h_stop(h);
    assert_int_equal(st, 0);
}

/* Write one customer and wait for the reply. */
static void put_one(rp_client *c, const char *id) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pk_str(&pk, "id");
    pk_str(&pk, id);
    pk_str(&pk, "customer");
    msgpack_pack_map(&pk, 1);
    pk_str(&pk, "name");
    pk_str(&pk, "On Disk");
    must_call(c, "customer.put", &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* Sync: once a write is acknowledged (and nothing else is in flight), no
 * page of data.mdb is dirty — the acknowledgement came after the fsync.
 * Async, as a control that the probe sees what it should: right after an
 * acknowledgement there are dirty pages, and they are gone within
 * async_flush_ms. */
static void test_sync_ack_is_on_disk(void **state) {
    rp_h *h = *state;
    assert_int_equal(rp_h_start(h, "http =\ndurability = sync\n"), 0);
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    put_one(c, "warm-up");
    int fd = open_data_file(h);
    if (dirty_pages(fd) < 0) {
        fprintf(stderr, "crash: cachestat(2) not available (Linux < 6.5): on-disk check skipped\n");
        close(fd);
        rp_client_close(c);
        assert_int_equal(rp_h_stop(h), 0);
        skip(); /* reported as skipped, not passed (does not return) */
    }
    long worst = 0;
    for (int i = 0; i < 200; i++) {
        char id[32];
        snprintf(id, sizeof id, "disk-%d", i);
        put_one(c, id);
        long d = dirty_pages(fd);
        if (d > worst) worst = d;
    }
    close(fd);
    rp_client_close(c);
    fprintf(stderr, "crash: sync: 200 acknowledged writes, dirty pages of data.mdb after an ack: at most %ld\n",
            worst);
    assert_int_equal(worst, 0);
    assert_int_equal(rp_h_stop(h), 0);
    rp_h_cleanup(h);

    /* the control: async leaves dirty pages behind an acknowledgement */
    assert_int_equal(rp_h_start(h, "http =\ndurability = async\nasync_flush_ms = 1000\n"), 0);
    c = rp_h_connect(h);
    assert_non_null(c);
    put_one(c, "warm-up");
    rp_h_sleep_ms(1200); /* the warm-up's flush is over */
    fd = open_data_file(h);
    put_one(c, "async-1");
    long long t_ack = rp_h_now_ms();
    long d0 = dirty_pages(fd);
    long long t_clean = -1;
    while (rp_h_now_ms() - t_ack < 5000) {
        if (dirty_pages(fd) == 0) {
            t_clean = rp_h_now_ms();
            break;
        }
        rp_h_sleep_ms(2);
    }
    close(fd);
    rp_client_close(c);
    fprintf(stderr, "crash: async control: %ld dirty pages right after the ack, clean %lld ms later\n", d0,
            t_clean < 0 ? -1 : t_clean - t_ack);
    assert_true(d0 > 0);
    assert_true(t_clean >= 0 && t_clean - t_ack <= ASYNC_FLUSH_MS + WINDOW_MARGIN_MS);
    assert_int_equal(rp_h_stop(h), 0);
}

/* Async durability: what kill -9 loses (nothing: the page cache survives a
 * process crash) and the loss window against an OS crash (from the last
 * acknowledgement to no dirty page in data.mdb), each over a few rounds. */
static void test_async_loss_window(void **state) {
    rp_h *h = *state;
    char conf[256];
    snprintf(conf, sizeof conf, "http =\ndurability = async\nasync_flush_ms = %d\nretention_max_events = 1000000\n",
             ASYNC_FLUSH_MS);
    uint64_t seed = seed_from_env() ^ 0x5a5a5a5aULL;
    rng_state = seed ? seed : 1;
    assert_int_equal(rp_h_start(h, conf), 0);
    create_patched(h);
    ack_list acks = {0};

    /* 1) kill -9 under load: count acknowledged writes that are missing and
     *    how long before the kill the oldest of them was acknowledged. */
    enum { KILL_ROUNDS = 2, WINDOW_ROUNDS = 4 };
    size_t lost = 0, acked = 0;
    long long oldest_lost_age = 0;
    int iter = 0;
    for (int round = 0; round < KILL_ROUNDS; round++, iter++) {
        int delay = rng_range(300, 1500);
        size_t from = acks.n;
        load_run *run = calloc(1, sizeof *run);
        assert_non_null(run);
        load_start(run, h, iter);
        rp_h_sleep_ms(delay);
        long long t_kill = rp_h_now_ms();
        rp_h_kill9(h);
        acked += load_join(run, &acks);
        free(run);
        assert_int_equal(rp_h_restart(h), 0);
        lost_oldest_ack_ms = -1;
        size_t l = check_all(h, &acks, from, iter, iter);
        lost += l;
        if (l && t_kill - lost_oldest_ack_ms > oldest_lost_age) oldest_lost_age = t_kill - lost_oldest_ack_ms;
        fprintf(stderr, "  async round %d: kill -9 after %d ms, %zu acknowledged so far, %zu lost\n", round, delay,
                acks.n, lost);
    }

    /* 2) the loss window against an OS crash, measured with cachestat. */
    int fd = open_data_file(h);
    long long worst_window = -1;
    bool saw_dirty = false;
    if (dirty_pages(fd) >= 0) {
        for (int round = 0; round < WINDOW_ROUNDS; round++, iter++) {
            int run_ms = rng_range(150, 1300);
            load_run *run = calloc(1, sizeof *run);
            assert_non_null(run);
            load_start(run, h, iter);
            rp_h_sleep_ms(run_ms);
            atomic_store(&run->stop, true);
            size_t from = acks.n;
            acked += load_join(run, &acks);
            free(run);
            long long last_ack = 0;
            for (size_t i = from; i < acks.n; i++)
                if (acks.v[i].ack_ms > last_ack) last_ack = acks.v[i].ack_ms;
            assert_true(last_ack > 0);
            long long t_clean = -1;
            while (rp_h_now_ms() - last_ack < 10000) {
                long d = dirty_pages(fd);
                if (d > 0) saw_dirty = true;
                if (d == 0) {
                    t_clean = rp_h_now_ms();
                    break;
                }
                rp_h_sleep_ms(2);
            }
            assert_true(t_clean >= 0);
            long long w = t_clean - last_ack;
            if (w > worst_window) worst_window = w;
            fprintf(stderr, "  async window round %d: load %d ms, last ack -> no dirty page: %lld ms\n", round,
                    run_ms, w);
        }
    } else {
        fprintf(stderr, "crash: cachestat(2) not available (Linux < 6.5): window measurement skipped\n");
    }
    close(fd);
    /* Everything acknowledged is still there after all this. */
    size_t relost = check_all(h, &acks, 0, 0, iter - 1);
    fprintf(stderr,
            "crash-summary: mode=async kill9_rounds=%d acked=%zu lost_on_kill9=%zu oldest_lost_age_ms=%lld "
            "window_rounds=%d worst_window_ms=%lld async_flush_ms=%d seed=%" PRIu64 "\n",
            KILL_ROUNDS, acked, lost, oldest_lost_age, worst_window >= 0 ? WINDOW_ROUNDS : 0, worst_window,
            ASYNC_FLUSH_MS, seed);
    free(acks.v);
    /* A process crash loses no committed write; the OS-crash window stays
     * within the flush interval (plus scheduling and fsync time). */
    assert_true(oldest_lost_age <= ASYNC_FLUSH_MS + WINDOW_MARGIN_MS);
    assert_int_equal(relost, 0);
    if (worst_window >= 0) {
        assert_true(saw_dirty);
        assert_true(worst_window <= ASYNC_FLUSH_MS + WINDOW_MARGIN_MS);
    }
    assert_int_equal(rp_h_stop(h), 0);
    /* Without cachestat the kill -9 part ran and passed above, but the window
     * was not measured: report the test as skipped, not passed. */
    if (worst_window < 0) skip();
}

int main(void) {
    const char *only = getenv("RAPPORT_CRASH_ONLY"); /* "sync": just the kill -9 loop (tools/crashloop) */
    const struct CMUnitTest all[] = {
        cmocka_unit_test_setup_teardown(test_kill9_loop_sync, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_sync_ack_is_on_disk, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_async_loss_window, rp_h_setup, rp_h_teardown),
    };
    if (only && strcmp(only, "sync") == 0) {
        const struct CMUnitTest sync_only[] = {all[0]};
        return cmocka_run_group_tests(sync_only, NULL, NULL);
    }
    return cmocka_run_group_tests(all, NULL, NULL);
}
