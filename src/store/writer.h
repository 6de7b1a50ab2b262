/* writer.h — the single LMDB writer with group commit.
 *
 * LMDB allows one write transaction at a time; rapport funnels every write
 * through one thread that owns it. Callers enqueue requests; the thread takes
 * everything queued (up to batch_max), runs each request in its own nested
 * transaction (so one failing request does not spoil the others), commits
 * once, and only then tells each caller its result. In sync durability the
 * commit is fsynced, so "acknowledged" means "on disk"; in async durability
 * the environment is MDB_NOSYNC and the thread flushes at least every
 * flush_ms. Throughput grows with concurrency: N waiting writers cost one
 * fsync, not N.
 *
 * Map growth: when a batch hits MDB_MAP_FULL the writer aborts it, takes the
 * map lock for writing (readers hold it for reading while a read transaction
 * is open — see rp_store_rbegin), doubles the map up to map_max and runs the
 * batch again. At map_max each request is retried alone, and those that still
 * do not fit fail with RP_STORE_FULL while reads go on.
 *
 * Request memory is the caller's: an rp_write_req is embedded in whatever
 * context the caller has, and must stay valid until `done` ran (async) or
 * rp_writer_exec returned (sync). The writer never allocates per request.
 */
#ifndef RP_WRITER_H
#define RP_WRITER_H

#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>

#include "core/error.h"

/* The work of one write: apply changes inside txn (a nested transaction of
 * the batch). Return RP_OK to keep them, anything else to have them rolled
 * back; write a sentence into eb. May run more than once (on map growth):
 * it must not have effects outside txn other than on its own arg. */
typedef rp_err (*rp_write_fn)(MDB_txn *txn, void *arg, rp_errbuf *eb);

/* Called on the writer thread once the outcome is final (after the commit,
 * or after the failure). Must be quick and must not block on the writer. */
typedef void (*rp_write_done)(void *arg, rp_err rc, const rp_errbuf *eb);

typedef struct rp_write_req {
    rp_write_fn fn;
    rp_write_done done;
    void *arg;
    /* private to the writer */
    rp_err rc;
    rp_errbuf eb;
    struct rp_write_req *next;
} rp_write_req;

typedef struct rp_writer_opts {
    uint32_t queue_max;  /* queued requests beyond this get RP_UNAVAILABLE */
    uint32_t batch_max;  /* requests per commit at most */
    int async;           /* 1: env opened MDB_NOSYNC; flush every flush_ms */
    uint32_t flush_ms;
    uint64_t map_max;    /* bytes: growth stops here */
    pthread_rwlock_t *map_lock; /* readers hold it (read) during read txns */
} rp_writer_opts;

/* Upper bounds (nanoseconds, Prometheus `le`) of the duration histograms
 * below: 100 us .. 1 s, for a commit that may include an fsync. */
#define RP_WRITER_NBUCKETS 12
extern const uint64_t rp_writer_bucket_ns[RP_WRITER_NBUCKETS];

/* A fixed-bucket duration histogram: buckets[i] counts durations up to
 * rp_writer_bucket_ns[i] (not cumulative), buckets[RP_WRITER_NBUCKETS]
 * the rest (+Inf); count is their total, sum_ns the durations added. */
typedef struct rp_writer_hist {
    uint64_t buckets[RP_WRITER_NBUCKETS + 1];
    uint64_t count;
    uint64_t sum_ns;
} rp_writer_hist;

typedef struct rp_writer_stats {
    uint64_t commits;      /* transactions committed */
    uint64_t writes_ok;    /* requests acknowledged with RP_OK */
    uint64_t writes_failed;
    uint64_t map_grows;
    uint64_t queue_depth;  /* now */
    uint64_t map_size;     /* bytes, now */
    rp_writer_hist commit; /* each top-level mdb_txn_commit (with its fsync in sync durability) */
    rp_writer_hist flush;  /* each mdb_env_sync of async durability (the flusher's and the last) */
} rp_writer_stats;

typedef struct rp_writer rp_writer;

/* Start the writer thread on env (opened by the caller, which keeps
 * ownership and must stop the writer before closing env).
 * Returns RP_OK, RP_BAD_REQUEST (queue_max or batch_max 0, or async with
 * flush_ms 0), or RP_UNAVAILABLE/RP_INTERNAL if the thread cannot start. */
rp_err rp_writer_start(MDB_env *env, const rp_writer_opts *opts, rp_writer **out, rp_errbuf *eb);

/* Enqueue req (fn, done, arg set by the caller). done will be called exactly
 * once, on the writer thread — unless this returns an error, in which case
 * it is never called: RP_UNAVAILABLE (queue full, or stopping). */
rp_err rp_writer_submit(rp_writer *w, rp_write_req *req);

/* Run fn through the queue and wait for its commit. Returns fn's result, or
 * a commit error (RP_STORE_FULL, RP_INTERNAL, ...), or RP_UNAVAILABLE;
 * RP_INTERNAL when called from the writer thread itself (it would deadlock). */
rp_err rp_writer_exec(rp_writer *w, rp_write_fn fn, void *arg, rp_errbuf *eb);

/* Statistics snapshot (thread-safe). */
void rp_writer_get_stats(rp_writer *w, rp_writer_stats *out);

/* Stop: refuse new requests, finish everything queued (each gets its done),
 * flush, join the thread, free w. Safe to call once. */
void rp_writer_stop(rp_writer *w);

#endif
