/* cluster.h — cluster mode: every write is an entry of a replicated NATS
 * JetStream stream, and this node applies the stream in order to its store.
 *
 * The module owns the NATS connection (libnats), the stream (created when
 * missing, never deleted), a pool of publisher threads and one apply
 * thread. It knows nothing of the operations: the layer above (the api)
 * gives it a whole write as (op name, time, params) to publish, and an
 * apply function that runs one entry inside a write transaction. The
 * format, the ordering and the failure modes are in proto/CLUSTER.md.
 *
 *   publish  rp_cluster_publish packs the entry and queues it; a publisher
 *            thread sends it (Nats-Msg-Id: the caller's id or a fresh
 *            unique one; jsPubOptions.MaxWait always set) and retries with
 *            backoff until cluster_write_timeout_ms has passed;
 *   apply    the apply thread reads an ordered consumer from the stored
 *            sequence + 1, checks that every stream sequence is the last
 *            applied + 1 (a hole halts apply, loudly; it is never skipped)
 *            and runs batches through the store's writer: each entry in a
 *            nested transaction of its own, then the last sequence
 *            (store/applied.h), all in one commit;
 *   reply    after the commit, each entry this process published is handed
 *            to its waiter with the apply's result; a write whose publish
 *            failed up to the deadline gets RP_UNAVAILABLE instead.
 *
 * Threads: done callbacks run on the apply thread or a publisher thread and
 * must be quick. Every function is thread-safe unless it says otherwise.
 */
#ifndef RP_CLUSTER_H
#define RP_CLUSTER_H

#include <lmdb.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "model/record.h"
#include "store/store.h"
#include "store/writer.h"

typedef struct rp_cluster rp_cluster;

/* The outcome of one entry's apply, the same on every node. rc != RP_OK is
 * the write's answer (a CONFLICT, a NOT_FOUND...), with its sentence in eb;
 * on RP_OK reply holds the packed result map. canon: the canonical customer
 * id the write touched (for the originator's audit line), canon_n 0 when
 * none. */
typedef struct rp_cluster_result {
    rp_err rc;
    rp_errbuf eb;
    msgpack_sbuffer reply;
    char canon[RP_ID_MAX];
    size_t canon_n;
} rp_cluster_result;

/* Apply one entry inside txn (a nested transaction the module commits
 * when res->rc is RP_OK and aborts otherwise).
 *   ctx: rp_cluster_start's ctx; op: the entry's op name; now: the entry's
 *   time (unix seconds, the publishing node's clock: the only time apply
 *   may use); params: the entry's params (valid during the call).
 * res arrives cleared (reply empty, initialized); the function fills it.
 * Return RP_OK when res is the entry's deterministic outcome. Return an
 * error (RP_STORE_FULL, RP_UNAVAILABLE, RP_INTERNAL) for a failure of this
 * node (map full, out of memory, a corrupt record): the batch is rolled
 * back and retried, and apply stops there until it succeeds. May run more
 * than once for the same entry (the writer re-runs batches after growing
 * the map); it must have no effect outside txn and res. */
typedef rp_err (*rp_cluster_apply_fn)(void *ctx, MDB_txn *txn, rp_str op, int64_t now,
                                      const msgpack_object *params, rp_cluster_result *res,
                                      rp_errbuf *eb);

typedef struct rp_cluster_wait rp_cluster_wait;

/* Called exactly once per accepted rp_cluster_publish. res is the apply's
 * result (valid during the call only), or an RP_UNAVAILABLE result when
 * the entry could not be published by the deadline (eb says why).
 * An entry acknowledged but not applied here within cluster_write_timeout_ms
 * (apply halted, or the consumer is being re-created) is answered
 * RP_UNAVAILABLE too: it is in the log and will be applied.
 * duplicate: the stream already held an entry with this Nats-Msg-Id,
 * published by an earlier request (an idempotency key sent again within
 * the duplicates window); it is applied (this node's applied sequence
 * passed it) but its result went to that request: res is then RP_OK with
 * an empty reply, and the caller answers from what the first request left
 * in the store (its idempotency record). */
typedef void (*rp_cluster_done_fn)(rp_cluster_wait *wt, const rp_cluster_result *res, bool duplicate);

/* A write waiting for its entry, embedded by the caller in its request; it
 * must stay valid until done ran. Only `done` is the caller's to set. */
struct rp_cluster_wait {
    rp_cluster_done_fn done;
    /* private to the module */
    uint64_t ticket;
    uint64_t seq;             /* the entry's sequence once acknowledged, else 0 */
    int64_t apply_deadline_ns; /* once acknowledged: answer UNAVAILABLE if not applied by then */
    rp_cluster_wait *next;
};

/* A snapshot for stats, /metrics and /healthz. */
typedef struct rp_cluster_stats {
    bool connected;         /* to a NATS server now */
    bool halted;            /* apply stopped on a hole or a persistent failure */
    bool healthy;           /* connected, not halted and lag <= max_lag */
    uint64_t applied_seq;   /* last stream sequence applied here */
    uint64_t stream_seq;    /* last stream sequence known (acks, consumer, stream info) */
    uint64_t lag;           /* stream_seq - applied_seq (0 when not behind) */
    uint64_t published;     /* entries acknowledged by JetStream (this node's) */
    uint64_t publish_retries;
    uint64_t publish_failed; /* writes answered UNAVAILABLE after the deadline */
    uint64_t applied;       /* entries applied since start */
    uint64_t reconnects;
    rp_writer_hist publish; /* publish -> JetStream ack */
    rp_writer_hist apply;   /* JetStream's store time -> committed here (replication lag) */
    char node_id[64];
    char stream[64];
} rp_cluster_stats;

/* Connect to cfg->cluster_urls (non-empty), create the stream cfg->
 * cluster_stream when missing (file storage, cfg->cluster_replicas, the
 * duplicates window and retention of the settings; an existing stream is
 * used as it is, never deleted or re-created), and check that the stream
 * still holds the store's applied sequence + 1 (or is exactly at it).
 * Nothing is applied yet: rp_cluster_start does that. One cluster per
 * process: rp_cluster_stop (and a failed open) ends libnats for good.
 *   cfg: copied; store: not owned, must outlive the cluster.
 * Returns RP_OK and *out (free with rp_cluster_stop), RP_UNAVAILABLE (NATS
 * unreachable within cluster_write_timeout_ms, or the stream cannot be
 * read or created), RP_CONFLICT (the store's sequence is not in the stream:
 * eb says how to re-seed), RP_BAD_REQUEST (a bad setting), RP_INTERNAL. */
rp_err rp_cluster_open(const rp_config *cfg, rp_store *store, rp_cluster **out, rp_errbuf *eb);

/* Start the apply thread and the publishers: apply(ctx, ...) runs each
 * entry. Call once. Returns RP_OK or RP_UNAVAILABLE (a thread or the
 * consumer could not start). */
rp_err rp_cluster_start(rp_cluster *cl, rp_cluster_apply_fn apply, void *ctx, rp_errbuf *eb);

/* Publish one write: pack the entry {op, now, params} and queue it.
 *   wt: the caller's waiter (wt->done set), called exactly once on RP_OK;
 *   op: the op name; now: the time the write is decided at (unix seconds);
 *   params: packed as they are (the caller validated them);
 *   msgid: the Nats-Msg-Id (1..200 printable bytes), or NULL for a fresh
 *   unique one.
 * Returns RP_OK, or RP_UNAVAILABLE (queue full, stopping, out of memory),
 * RP_TOO_LARGE (the entry exceeds the NATS servers' max_payload, 1 MiB by
 * default) or RP_BAD_REQUEST (a bad msgid): then done is never called. */
rp_err rp_cluster_publish(rp_cluster *cl, rp_cluster_wait *wt, const char *op, int64_t now,
                          const msgpack_object *params, const char *msgid, rp_errbuf *eb);

/* Statistics snapshot. */
void rp_cluster_get_stats(rp_cluster *cl, rp_cluster_stats *out);

/* Wait until this node applied seq (or timeout_ms passed). Returns true
 * when applied_seq >= seq. */
bool rp_cluster_wait_applied(rp_cluster *cl, uint64_t seq, uint32_t timeout_ms);

/* Stop: stop publishing (queued writes get RP_UNAVAILABLE), stop the apply
 * thread after its current batch, close the connection, free cl. Writes
 * still waiting for apply get RP_UNAVAILABLE. NULL is fine. */
void rp_cluster_stop(rp_cluster *cl);

#endif
