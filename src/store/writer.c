/* writer.c — the single LMDB writer thread with group commit.
 *
 * One thread owns every write transaction of the environment. Callers link
 * their rp_write_req into a FIFO queue (an intrusive singly linked list under
 * one mutex, bounded by queue_max) and signal a condition variable. The
 * thread wakes, detaches up to batch_max requests, and — without holding the
 * queue mutex — opens one top-level transaction, runs every request's fn in
 * it, commits once, and then calls every request's done. That is the
 * optimistic pass: when a fn fails, the whole transaction is aborted and the
 * batch runs again with each request in its own nested transaction
 * (committed into the parent if fn returned RP_OK, aborted otherwise), so
 * one failing request does not spoil the others. Nested transactions are
 * not free (LMDB allocates a dirty list per child and merges it into the
 * parent on commit), so batches that succeed whole, the common case, skip
 * them: the price is running every fn of a batch with a failure twice.
 * While it works, new requests pile up behind it and form the next batch: N
 * concurrent writers pay for one commit (one fsync in sync durability).
 *
 * Map full. A request's fn returning RP_STORE_FULL, or MDB_MAP_FULL from a
 * nested or the top-level commit, aborts the whole batch (a nested transaction
 * that ran out of pages may leave its parent unusable, and the map can only
 * be resized with no transaction open). The thread then takes the map lock
 * for writing, so that no reader of this process is inside a read
 * transaction, doubles the map (capped at map_max) and runs the batch again:
 * fn may run more than once. When the map is already at map_max, each request
 * of the batch is run alone in its own top-level transaction; those that
 * still do not fit fail with RP_STORE_FULL and the rest commit.
 *
 * Other failures of a nested transaction (MDB_TXN_FULL, ENOMEM, ...) cannot
 * be pinned on one request inside the batch, so the batch is likewise rerun
 * one request per transaction, where each error belongs to its request. A
 * failure of the top-level begin or commit fails every request of the batch
 * with the mapped LMDB error.
 *
 * Async durability: the caller opened the environment with MDB_NOSYNC; a
 * second thread, the flusher, is told of the first commit since the last
 * flush and calls mdb_env_sync(force) no later than flush_ms after it (a
 * timed wait on a CLOCK_MONOTONIC condition variable); the writer thread
 * flushes once more on stop. The flush runs beside the writer, not on it, so
 * writes do not pause while the disk flushes (LMDB allows mdb_env_sync
 * from any thread). A failed flush is retried flush_ms later; the header
 * gives no way to report it.
 *
 * Timing: every top-level mdb_txn_commit (which fsyncs in sync durability)
 * and every flush of async durability is timed on the monotonic clock into
 * a fixed-bucket histogram of the statistics (rp_writer_hist), for
 * /metrics; one extra lock of the stats mutex per commit and per flush.
 *
 * Limits: rerunning one request per transaction after a nested failure gives up group
 * commit for that batch; fn and done must never wait for the writer (an
 * rp_writer_exec from the writer thread is refused with RP_INTERNAL).
 * Nothing here allocates per request.
 */
#include "store/writer.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rp_writer {
    MDB_env *env;
    rp_writer_opts opts;
    pthread_t thread;

    /* Guarded by mu: the queue, the stop flag and the statistics. */
    pthread_mutex_t mu;
    pthread_cond_t wake;      /* signalled by submit and stop */
    rp_write_req *head, *tail;
    uint32_t depth;
    bool stopping;
    rp_writer_stats stats;    /* queue_depth is filled from depth on read */
    /* ... and the flusher's state (async durability only) */
    pthread_cond_t fwake;     /* signalled on the first commit after a flush, and on stop */
    bool dirty;               /* commits since the last flush */
    struct timespec flush_at; /* flush no later than this */
    bool flusher_stop;
    pthread_t flusher;
    bool flusher_started;

    /* Writer thread only. */
    uint64_t map_size;        /* current map size in bytes */
};

/* What one attempt at running a batch in a single transaction came to. */
typedef enum batch_result {
    BATCH_DONE,  /* every request has its final rc (committed or failed) */
    BATCH_FULL,  /* the map is full: nothing committed, grow and retry */
    BATCH_SPLIT, /* a nested transaction failed: nothing committed, rerun alone */
    BATCH_NEST   /* optimistic pass: a fn failed: nothing committed, rerun nested */
} batch_result;

const uint64_t rp_writer_bucket_ns[RP_WRITER_NBUCKETS] = {
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000, 100000000,
    250000000, 1000000000,
};

/* --- small helpers ------------------------------------------------------- */

/* Now on the monotonic clock (never jumps with the wall clock). */
static struct timespec mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts;
}

/* ts + ms, normalized. */
static struct timespec ts_add_ms(struct timespec ts, uint32_t ms) {
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Nanoseconds from a to now (monotonic). */
static uint64_t ns_since(struct timespec a) {
    struct timespec b = mono_now();
    int64_t ns = (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec);
    return ns > 0 ? (uint64_t)ns : 0;
}

/* Add one duration to h (w->mu held). */
static void hist_add(rp_writer_hist *h, uint64_t ns) {
    size_t b = 0;
    while (b < RP_WRITER_NBUCKETS && ns > rp_writer_bucket_ns[b]) b++;
    h->buckets[b]++;
    h->count++;
    h->sum_ns += ns;
}

/* True when a is at or after b. */
static bool ts_reached(struct timespec a, struct timespec b) {
    return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec >= b.tv_nsec);
}

/* Clear a request's error buffer before (re)running its fn. */
static void req_reset(rp_write_req *req) {
    req->rc = RP_OK;
    req->eb.code = RP_OK;
    req->eb.msg[0] = '\0';
}

/* Record fn's verdict e, keeping eb.code equal to rc so that done always sees
 * a consistent pair; a message fn left behind on success is dropped. */
static void req_set(rp_write_req *req, rp_err e) {
    req->rc = e;
    req->eb.code = e;
    if (e == RP_OK) req->eb.msg[0] = '\0';
}

/* Fail every request of the list with the LMDB error rc, prefixed by what. */
static void fail_all(rp_write_req *batch, int rc, const char *what) {
    rp_err e = rp_err_from_mdb(rc);
    assert(e != RP_OK);
    for (rp_write_req *r = batch; r != NULL; r = r->next)
        r->rc = rp_errf(&r->eb, e, "%s: %s", what, mdb_strerror(rc));
}

/* The current map size as LMDB sees it. */
static uint64_t env_map_size(MDB_env *env) {
    MDB_envinfo info;
    if (mdb_env_info(env, &info) != MDB_SUCCESS) return 0;
    return (uint64_t)info.me_mapsize;
}

/* Resize the map to size (0: adopt the size another process set) with the
 * map lock held for writing, so no read transaction of this process is open;
 * refresh map_size. Must run with no write transaction open. Returns the
 * LMDB code. */
static int resize_map(rp_writer *w, uint64_t size) {
    if (w->opts.map_lock) pthread_rwlock_wrlock(w->opts.map_lock);
    int rc = mdb_env_set_mapsize(w->env, (size_t)size);
    if (w->opts.map_lock) pthread_rwlock_unlock(w->opts.map_lock);
    uint64_t now = env_map_size(w->env);
    if (now != 0) w->map_size = now;
    pthread_mutex_lock(&w->mu);
    w->stats.map_size = w->map_size;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* Double the map, capped at map_max. Returns RP_OK when it grew,
 * RP_STORE_FULL (eb untouched) when it is already at map_max, or the mapped
 * error (message in eb) when LMDB refused the new size — after which the
 * environment is probably unusable. */
static rp_err grow_map(rp_writer *w, rp_errbuf *eb) {
    uint64_t cur = w->map_size, max = w->opts.map_max;
    if (max <= cur) return RP_STORE_FULL;
    uint64_t next = cur > max / 2 ? max : cur * 2;
    if (next <= cur) return RP_STORE_FULL; /* cur was 0: nothing to double */
    int rc = resize_map(w, next);
    if (rc != MDB_SUCCESS)
        return rp_errf(eb, rp_err_from_mdb(rc), "cannot resize the map to %llu bytes: %s",
                       (unsigned long long)next, mdb_strerror(rc));
    if (w->map_size <= cur) return RP_STORE_FULL; /* LMDB kept the old size */
    pthread_mutex_lock(&w->mu);
    w->stats.map_grows++;
    pthread_mutex_unlock(&w->mu);
    return RP_OK;
}

/* Begin a top-level write transaction. If another process grew the map
 * (MDB_MAP_RESIZED), adopt its size and try once more. Returns the LMDB code. */
static int begin_top(rp_writer *w, MDB_txn **txn) {
    int rc = mdb_txn_begin(w->env, NULL, 0, txn);
    if (rc == MDB_MAP_RESIZED) {
        rc = resize_map(w, 0);
        if (rc == MDB_SUCCESS) rc = mdb_txn_begin(w->env, NULL, 0, txn);
    }
    return rc;
}

/* mdb_txn_commit of a top-level transaction, timed into the commit
 * histogram (whatever its outcome). Returns the LMDB code. */
static int commit_top(rp_writer *w, MDB_txn *txn) {
    struct timespec t0 = mono_now();
    int rc = mdb_txn_commit(txn);
    uint64_t ns = ns_since(t0);
    pthread_mutex_lock(&w->mu);
    hist_add(&w->stats.commit, ns);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* mdb_env_sync(force) timed into the flush histogram. Called without w->mu. */
static int flush_env(rp_writer *w) {
    struct timespec t0 = mono_now();
    int rc = mdb_env_sync(w->env, 1);
    uint64_t ns = ns_since(t0);
    pthread_mutex_lock(&w->mu);
    hist_add(&w->stats.flush, ns);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* --- running requests ---------------------------------------------------- */

/* Try the whole batch in one transaction. nested: each request in a nested
 * transaction (a failing one is rolled back alone); optimistic (!nested):
 * every fn straight in the batch transaction, and the first failure aborts
 * everything (BATCH_NEST: run again nested). If no request succeeded the
 * transaction is aborted instead of committed. Counts a successful commit
 * in *commits. On BATCH_FULL, BATCH_SPLIT and BATCH_NEST no transaction is
 * left open and the requests' rc are meaningless. O(batch) LMDB calls plus
 * the fns. */
static batch_result run_batch_once(rp_writer *w, rp_write_req *batch, bool nested, uint64_t *commits) {
    MDB_txn *txn = NULL;
    bool any_ok = false;
    int rc = begin_top(w, &txn);
    if (rc != MDB_SUCCESS) {
        fail_all(batch, rc, "cannot begin a write transaction");
        return BATCH_DONE;
    }
    for (rp_write_req *r = batch; r != NULL; r = r->next) {
        MDB_txn *child = NULL;
        req_reset(r);
        if (!nested) {
            rp_err e = r->fn(txn, r->arg, &r->eb);
            if (e != RP_OK) {
                mdb_txn_abort(txn);
                return e == RP_STORE_FULL ? BATCH_FULL : BATCH_NEST;
            }
            req_set(r, e);
            any_ok = true;
            continue;
        }
        rc = mdb_txn_begin(w->env, txn, 0, &child);
        if (rc != MDB_SUCCESS) goto abort;
        rp_err e = r->fn(child, r->arg, &r->eb);
        if (e == RP_OK) {
            rc = mdb_txn_commit(child); /* frees child even when it fails */
            if (rc != MDB_SUCCESS) goto abort;
        } else {
            mdb_txn_abort(child);
            if (e == RP_STORE_FULL) {
                rc = MDB_MAP_FULL;
                goto abort;
            }
        }
        req_set(r, e);
        any_ok |= (e == RP_OK);
    }
    if (!any_ok) { /* every request failed: nothing to commit */
        mdb_txn_abort(txn);
        return BATCH_DONE;
    }
    rc = commit_top(w, txn);
    if (rc == MDB_MAP_FULL) return BATCH_FULL;
    if (rc != MDB_SUCCESS) {
        fail_all(batch, rc, "commit failed");
        return BATCH_DONE;
    }
    (*commits)++;
    return BATCH_DONE;
abort:
    mdb_txn_abort(txn);
    return rc == MDB_MAP_FULL ? BATCH_FULL : BATCH_SPLIT;
}

/* Run one request alone in its own top-level transaction, growing the map
 * while it does not fit; at map_max it fails with RP_STORE_FULL. Sets
 * req->rc and req->eb; counts a commit in *commits. */
static void run_alone(rp_writer *w, rp_write_req *req, uint64_t *commits) {
    for (;;) {
        MDB_txn *txn = NULL;
        req_reset(req);
        int rc = begin_top(w, &txn);
        if (rc != MDB_SUCCESS) {
            req->rc = rp_errf(&req->eb, rp_err_from_mdb(rc), "cannot begin a write transaction: %s",
                              mdb_strerror(rc));
            return;
        }
        rp_err e = req->fn(txn, req->arg, &req->eb);
        if (e != RP_OK) {
            mdb_txn_abort(txn);
            if (e != RP_STORE_FULL) {
                req_set(req, e);
                return;
            }
        } else {
            rc = commit_top(w, txn);
            if (rc == MDB_SUCCESS) {
                (*commits)++;
                req_set(req, RP_OK);
                return;
            }
            if (rc != MDB_MAP_FULL) {
                req->rc = rp_errf(&req->eb, rp_err_from_mdb(rc), "commit failed: %s", mdb_strerror(rc));
                return;
            }
        }
        /* The map is full for this request alone. */
        rp_err g = grow_map(w, &req->eb);
        if (g == RP_OK) continue;
        if (g == RP_STORE_FULL)
            rp_errf(&req->eb, RP_STORE_FULL, "store is full (map_max %llu bytes)",
                    (unsigned long long)w->opts.map_max);
        req->rc = g;
        return;
    }
}

/* Run a detached batch to its final outcome: whole, after growing the map as
 * often as needed, or one request per transaction at map_max or after a
 * nested failure. Then count the results and call every done — in FIFO
 * order, reading next before done because done may free the request. */
static void process_batch(rp_writer *w, rp_write_req *batch) {
    uint64_t commits = 0, ok = 0, failed = 0;
    bool nested = false;
    for (;;) {
        batch_result br = run_batch_once(w, batch, nested, &commits);
        if (br == BATCH_DONE) break;
        if (br == BATCH_NEST) {
            nested = true;
            continue;
        }
        if (br == BATCH_FULL) {
            rp_errbuf geb = {RP_OK, ""};
            rp_err g = grow_map(w, &geb);
            if (g == RP_OK) continue;
            if (g != RP_STORE_FULL) {
                for (rp_write_req *r = batch; r != NULL; r = r->next) {
                    r->rc = g;
                    r->eb = geb;
                }
                break;
            }
        }
        for (rp_write_req *r = batch; r != NULL; r = r->next) run_alone(w, r, &commits);
        break;
    }
    for (rp_write_req *r = batch; r != NULL; r = r->next) {
        if (r->rc == RP_OK) ok++;
        else failed++;
    }
    pthread_mutex_lock(&w->mu);
    w->stats.commits += commits;
    w->stats.writes_ok += ok;
    w->stats.writes_failed += failed;
    if (w->opts.async && commits > 0 && !w->dirty) {
        w->dirty = true;
        w->flush_at = ts_add_ms(mono_now(), w->opts.flush_ms);
        pthread_cond_signal(&w->fwake);
    }
    pthread_mutex_unlock(&w->mu);
    for (rp_write_req *r = batch, *next; r != NULL; r = next) {
        next = r->next;
        r->next = NULL;
        r->done(r->arg, r->rc, &r->eb);
    }
}

/* The flusher thread (async durability): sleep until the first commit
 * since the last flush, wait until flush_ms after it, force the environment
 * to disk outside the mutex, repeat. A failed flush is retried flush_ms
 * later. Exits when told to stop (the writer makes the final flush). */
static void *flusher_main(void *arg) {
    rp_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->flusher_stop) {
        if (!w->dirty) {
            pthread_cond_wait(&w->fwake, &w->mu);
            continue;
        }
        if (!ts_reached(mono_now(), w->flush_at)) {
            pthread_cond_timedwait(&w->fwake, &w->mu, &w->flush_at);
            continue; /* re-check: stop, or the deadline */
        }
        w->dirty = false;
        pthread_mutex_unlock(&w->mu);
        int rc = flush_env(w);
        pthread_mutex_lock(&w->mu);
        if (rc != MDB_SUCCESS && !w->dirty) {
            w->dirty = true;
            w->flush_at = ts_add_ms(mono_now(), w->opts.flush_ms);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Detach up to batch_max requests from the head of the queue (mu held).
 * Returns the list (NULL-terminated) or NULL when the queue is empty. */
static rp_write_req *take_batch(rp_writer *w) {
    rp_write_req *first = w->head, *last = NULL;
    uint32_t n = 0;
    for (rp_write_req *r = first; r != NULL && n < w->opts.batch_max; r = r->next) {
        last = r;
        n++;
    }
    if (last == NULL) return NULL;
    w->head = last->next;
    if (w->head == NULL) w->tail = NULL;
    last->next = NULL;
    w->depth -= n;
    return first;
}

/* The writer thread: wait for requests or the flush deadline, run batches,
 * flush when due; on stop, drain the queue, flush and return. */
static void *writer_main(void *arg) {
    rp_writer *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (w->head == NULL && !w->stopping) pthread_cond_wait(&w->wake, &w->mu);
        rp_write_req *batch = take_batch(w);
        bool last = w->stopping && batch == NULL;
        pthread_mutex_unlock(&w->mu);

        if (batch != NULL) process_batch(w, batch);
        if (last) break;
    }
    /* Final flush; nobody is left to hear about a failure (stop returns void).
     * Timed only in async durability, where flushes are what it measures. */
    if (w->opts.async) (void)flush_env(w);
    else (void)mdb_env_sync(w->env, 1);
    return NULL;
}

/* --- public API ---------------------------------------------------------- */

rp_err rp_writer_start(MDB_env *env, const rp_writer_opts *opts, rp_writer **out, rp_errbuf *eb) {
    rp_writer *w = NULL;
    pthread_condattr_t ca;
    bool mu_ok = false, cond_ok = false, fcond_ok = false;
    rp_err e;
    int rc;

    if (env == NULL || opts == NULL || out == NULL)
        return rp_errf(eb, RP_BAD_REQUEST, "writer: env, opts and out are required");
    if (opts->queue_max == 0 || opts->batch_max == 0)
        return rp_errf(eb, RP_BAD_REQUEST, "writer: queue_max and batch_max must be at least 1");
    if (opts->async && opts->flush_ms == 0)
        return rp_errf(eb, RP_BAD_REQUEST, "writer: async durability needs flush_ms of at least 1");

    w = calloc(1, sizeof *w);
    if (w == NULL) return rp_errf(eb, RP_UNAVAILABLE, "writer: out of memory");
    w->env = env;
    w->opts = *opts;
    w->map_size = env_map_size(env);
    w->stats.map_size = w->map_size;

    if ((rc = pthread_mutex_init(&w->mu, NULL)) != 0) goto fail_errno;
    mu_ok = true;
    if ((rc = pthread_condattr_init(&ca)) != 0) goto fail_errno;
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0) rc = pthread_cond_init(&w->wake, &ca);
    if (rc == 0) {
        cond_ok = true;
        rc = pthread_cond_init(&w->fwake, &ca);
        fcond_ok = rc == 0;
    }
    pthread_condattr_destroy(&ca);
    if (rc != 0) goto fail_errno;
    if (opts->async) {
        if ((rc = pthread_create(&w->flusher, NULL, flusher_main, w)) != 0) goto fail_errno;
        w->flusher_started = true;
    }
    if ((rc = pthread_create(&w->thread, NULL, writer_main, w)) != 0) goto fail_errno;
    *out = w;
    return RP_OK;

fail_errno:
    e = rp_err_from_errno(rc);
    if (e != RP_UNAVAILABLE) e = RP_INTERNAL;
    rp_errf(eb, e, "writer: cannot start the writer thread: %s", strerror(rc));
    if (w->flusher_started) {
        pthread_mutex_lock(&w->mu);
        w->flusher_stop = true;
        pthread_cond_signal(&w->fwake);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->flusher, NULL);
    }
    if (fcond_ok) pthread_cond_destroy(&w->fwake);
    if (cond_ok) pthread_cond_destroy(&w->wake);
    if (mu_ok) pthread_mutex_destroy(&w->mu);
    free(w);
    return e;
}

rp_err rp_writer_submit(rp_writer *w, rp_write_req *req) {
    assert(w != NULL && req != NULL && req->fn != NULL && req->done != NULL);
    req->next = NULL;
    req_reset(req);
    pthread_mutex_lock(&w->mu);
    if (w->stopping || w->depth >= w->opts.queue_max) {
        pthread_mutex_unlock(&w->mu);
        return RP_UNAVAILABLE;
    }
    if (w->tail) w->tail->next = req;
    else w->head = req;
    w->tail = req;
    w->depth++;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    return RP_OK;
}

/* One rp_writer_exec call: the caller's fn and arg, and a private
 * mutex/condvar on which the caller waits for done. Lives on its stack. */
typedef struct exec_call {
    rp_write_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool finished;
    rp_err rc;
    rp_errbuf eb;
} exec_call;

/* fn trampoline: run the caller's fn with the caller's arg. */
static rp_err exec_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    exec_call *c = arg;
    return c->fn(txn, c->arg, eb);
}

/* done trampoline: copy the outcome and wake the caller. The signal is sent
 * with c->mu held, so the caller cannot destroy c before we let go of it. */
static void exec_done(void *arg, rp_err rc, const rp_errbuf *eb) {
    exec_call *c = arg;
    pthread_mutex_lock(&c->mu);
    c->rc = rc;
    c->eb = *eb;
    c->finished = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

rp_err rp_writer_exec(rp_writer *w, rp_write_fn fn, void *arg, rp_errbuf *eb) {
    assert(w != NULL && fn != NULL);
    if (pthread_equal(pthread_self(), w->thread))
        return rp_errf(eb, RP_INTERNAL, "writer: rp_writer_exec called on the writer thread");
    exec_call c = {.fn = fn, .arg = arg, .finished = false, .rc = RP_OK};
    rp_write_req req = {.fn = exec_fn, .done = exec_done, .arg = &c};
    if (pthread_mutex_init(&c.mu, NULL) != 0)
        return rp_errf(eb, RP_UNAVAILABLE, "writer: cannot create a wait lock");
    if (pthread_cond_init(&c.cv, NULL) != 0) {
        pthread_mutex_destroy(&c.mu);
        return rp_errf(eb, RP_UNAVAILABLE, "writer: cannot create a wait condition");
    }
    rp_err rc = rp_writer_submit(w, &req);
    if (rc != RP_OK) {
        rp_errf(eb, rc, "writer: the write queue is full or shutting down");
    } else {
        pthread_mutex_lock(&c.mu);
        while (!c.finished) pthread_cond_wait(&c.cv, &c.mu);
        pthread_mutex_unlock(&c.mu);
        rc = c.rc;
        if (eb) *eb = c.eb;
    }
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
    return rc;
}

void rp_writer_get_stats(rp_writer *w, rp_writer_stats *out) {
    assert(w != NULL && out != NULL);
    pthread_mutex_lock(&w->mu);
    *out = w->stats;
    out->queue_depth = w->depth;
    pthread_mutex_unlock(&w->mu);
}

void rp_writer_stop(rp_writer *w) {
    if (w == NULL) return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL); /* it drained the queue and flushed */
    assert(w->head == NULL && w->depth == 0);
    if (w->flusher_started) {
        pthread_mutex_lock(&w->mu);
        w->flusher_stop = true;
        pthread_cond_signal(&w->fwake);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->flusher, NULL);
    }
    pthread_cond_destroy(&w->fwake);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
