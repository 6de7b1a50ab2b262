/* bench_writer.c — throughput and latency of the group-committing writer.
 *
 *   bench_writer [--threads N] [--seconds S] [--async] [--dir D] [--value-size V]
 *
 * Opens a fresh LMDB environment in a new temporary directory under D
 * (default $TMPDIR or /tmp), starts the writer (sync durability unless
 * --async, which opens the environment MDB_NOSYNC and flushes every 1000 ms),
 * and runs N threads that each call rp_writer_exec with one put of a V-byte
 * value (default 200) under a unique 16-byte key, back to back, for S
 * seconds. Prints writes/s, commits/s, the average batch size and the
 * p50/p99/max latency of rp_writer_exec, then removes the directory.
 *
 * Latencies go into a per-thread log-linear histogram (32 buckets per power
 * of two, so a percentile is exact to about 3%), merged at the end: no
 * allocation or locking on the measured path besides the writer's own.
 */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "store/writer.h"

#define SUB_BITS 5
#define SUB (1 << SUB_BITS)
#define NBUCKETS (64 * SUB)

typedef struct hist {
    uint64_t count[NBUCKETS];
    uint64_t n, max;
} hist;

/* Bucket of a value: exact below 32, then 32 linear steps per power of two. */
static int hist_bucket(uint64_t v) {
    if (v < SUB) return (int)v;
    int e = 63 - __builtin_clzll(v);
    int shift = e - SUB_BITS;
    return (shift + 1) * SUB + (int)((v >> shift) & (SUB - 1));
}

/* Smallest value of bucket b, and its width. */
static uint64_t hist_low(int b, uint64_t *width) {
    if (b < SUB) {
        *width = 1;
        return (uint64_t)b;
    }
    int shift = b / SUB - 1;
    *width = (uint64_t)1 << shift;
    return ((uint64_t)SUB + (uint64_t)(b % SUB)) << shift;
}

static void hist_add(hist *h, uint64_t v) {
    h->count[hist_bucket(v)]++;
    h->n++;
    if (v > h->max) h->max = v;
}

static void hist_merge(hist *into, const hist *h) {
    for (int i = 0; i < NBUCKETS; i++) into->count[i] += h->count[i];
    into->n += h->n;
    if (h->max > into->max) into->max = h->max;
}

/* The value at quantile q (0..1): the middle of the bucket that holds it. */
static uint64_t hist_quantile(const hist *h, double q) {
    if (h->n == 0) return 0;
    uint64_t rank = (uint64_t)(q * (double)(h->n - 1)) + 1, seen = 0;
    for (int i = 0; i < NBUCKETS; i++) {
        seen += h->count[i];
        if (seen >= rank) {
            uint64_t w, lo = hist_low(i, &w);
            return lo + w / 2;
        }
    }
    return h->max;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- the workload ---------------------------------------------------------- */

static MDB_dbi g_dbi;
static size_t g_vsize = 200;
static unsigned char g_value[65536];
static atomic_int g_stop;

typedef struct worker {
    pthread_t th;
    rp_writer *w;
    uint32_t id;
    uint64_t ok, failed;
    rp_err last_err;
    char last_msg[RP_ERRMSG_MAX];
    hist h;
} worker;

typedef struct put_arg {
    unsigned char key[16];
} put_arg;

/* One put of g_vsize bytes under the 16-byte key. */
static rp_err put_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    put_arg *p = arg;
    MDB_val k = {sizeof p->key, p->key}, v = {g_vsize, g_value};
    int rc = mdb_put(txn, g_dbi, &k, &v, 0);
    if (rc != 0) return rp_errf(eb, rp_err_from_mdb(rc), "put: %s", mdb_strerror(rc));
    return RP_OK;
}

/* Big-endian u64 into 8 bytes (keys sort by thread, then sequence). */
static void be64(unsigned char *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

static void *worker_main(void *p) {
    worker *wk = p;
    put_arg a;
    be64(a.key, wk->id);
    for (uint64_t seq = 0; !atomic_load_explicit(&g_stop, memory_order_relaxed); seq++) {
        be64(a.key + 8, seq);
        rp_errbuf eb;
        uint64_t t0 = now_ns();
        rp_err rc = rp_writer_exec(wk->w, put_fn, &a, &eb);
        uint64_t t1 = now_ns();
        hist_add(&wk->h, t1 - t0);
        if (rc == RP_OK) {
            wk->ok++;
        } else {
            wk->failed++;
            wk->last_err = rc;
            snprintf(wk->last_msg, sizeof wk->last_msg, "%s", rp_errbuf_msg(&eb));
        }
    }
    return NULL;
}

/* --- setup ----------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr, "usage: bench_writer [--threads N] [--seconds S] [--async] [--dir D] "
                    "[--value-size V]\n");
    exit(2);
}

/* Parse a positive integer option value no larger than max, or exit. */
static long parse_pos(const char *name, const char *s, long max) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > max) {
        fprintf(stderr, "bench_writer: %s must be an integer from 1 to %ld\n", name, max);
        exit(2);
    }
    return v;
}

static void remove_dir(const char *dir) {
    char p[4096 + 32]; /* dir is at most 4095 bytes */
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
}

int main(int argc, char **argv) {
    long nthreads = 50, seconds = 5;
    int async = 0;
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--async") == 0) async = 1;
        else if (i + 1 >= argc) usage();
        else if (strcmp(a, "--threads") == 0) nthreads = parse_pos(a, argv[++i], 4096);
        else if (strcmp(a, "--seconds") == 0) seconds = parse_pos(a, argv[++i], 86400);
        else if (strcmp(a, "--dir") == 0) base = argv[++i];
        else if (strcmp(a, "--value-size") == 0)
            g_vsize = (size_t)parse_pos(a, argv[++i], (long)sizeof g_value);
        else usage();
    }
    for (size_t i = 0; i < sizeof g_value; i++) g_value[i] = (unsigned char)(i * 131u + 7u);

    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s/bench_writer.XXXXXX", base) >= (int)sizeof dir) {
        fprintf(stderr, "bench_writer: --dir is too long\n");
        return 1;
    }
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "bench_writer: mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }

    int status = 1;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    rp_writer *w = NULL;
    worker *wk = NULL;
    hist *all = NULL;
    rp_errbuf eb = {RP_OK, ""};
    int rc;
    if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_mapsize(env, (size_t)256 << 20)) != 0 ||
        (rc = mdb_env_open(env, dir, async ? MDB_NOSYNC : 0, 0600)) != 0 ||
        (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0) {
        fprintf(stderr, "bench_writer: lmdb setup in %s: %s\n", dir, mdb_strerror(rc));
        goto fail;
    }
    rc = mdb_dbi_open(txn, NULL, 0, &g_dbi);
    if (rc == 0) rc = mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
    if (rc != 0) {
        fprintf(stderr, "bench_writer: lmdb setup in %s: %s\n", dir, mdb_strerror(rc));
        goto fail;
    }
    rp_writer_opts o = {.queue_max = 65536, .batch_max = 1024, .async = async, .flush_ms = 1000,
                        .map_max = (uint64_t)64 << 30, .map_lock = NULL};
    if (rp_writer_start(env, &o, &w, &eb) != RP_OK) {
        fprintf(stderr, "bench_writer: %s\n", rp_errbuf_msg(&eb));
        goto fail;
    }
    wk = calloc((size_t)nthreads, sizeof *wk);
    all = calloc(1, sizeof *all);
    if (wk == NULL || all == NULL) {
        fprintf(stderr, "bench_writer: out of memory\n");
        goto fail;
    }

    printf("bench_writer: threads=%ld seconds=%ld durability=%s value=%zu dir=%s\n", nthreads, seconds,
           async ? "async" : "sync", g_vsize, dir);
    uint64_t t0 = now_ns();
    long started = 0;
    for (; started < nthreads; started++) {
        wk[started].w = w;
        wk[started].id = (uint32_t)started;
        if ((rc = pthread_create(&wk[started].th, NULL, worker_main, &wk[started])) != 0) {
            fprintf(stderr, "bench_writer: pthread_create: %s\n", strerror(rc));
            break;
        }
    }
    if (started == nthreads) {
        struct timespec ts = {seconds, 0};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    }
    atomic_store(&g_stop, 1);
    for (long i = 0; i < started; i++) pthread_join(wk[i].th, NULL);
    double elapsed = (double)(now_ns() - t0) / 1e9;
    if (started != nthreads) goto fail;

    rp_writer_stats st;
    rp_writer_get_stats(w, &st);
    uint64_t ok = 0, failed = 0;
    for (long i = 0; i < nthreads; i++) {
        ok += wk[i].ok;
        failed += wk[i].failed;
        hist_merge(all, &wk[i].h);
        if (wk[i].failed)
            fprintf(stderr, "bench_writer: thread %ld: %llu failures, last %s: %s\n", i,
                    (unsigned long long)wk[i].failed, rp_err_code(wk[i].last_err), wk[i].last_msg);
    }
    printf("elapsed      %.2f s\n", elapsed);
    printf("writes       %llu ok, %llu failed  (%.0f writes/s)\n", (unsigned long long)ok,
           (unsigned long long)failed, (double)ok / elapsed);
    printf("commits      %llu  (%.0f commits/s)\n", (unsigned long long)st.commits,
           (double)st.commits / elapsed);
    printf("avg batch    %.1f writes/commit\n",
           st.commits ? (double)st.writes_ok / (double)st.commits : 0.0);
    printf("latency      p50 %.1f us  p99 %.1f us  max %.1f us\n", hist_quantile(all, 0.50) / 1e3,
           hist_quantile(all, 0.99) / 1e3, (double)all->max / 1e3);
    printf("map          %llu MiB, %llu grows\n", (unsigned long long)(st.map_size >> 20),
           (unsigned long long)st.map_grows);
    status = failed ? 1 : 0;

fail:
    rp_writer_stop(w);
    if (env) mdb_env_close(env);
    free(wk);
    free(all);
    remove_dir(dir);
    return status;
}
