/* api.h — the one table of operations, shared by both network faces.
 *
 * The MessagePack-RPC face and the HTTP/JSON face both turn a request into
 * {operation, params as a msgpack map, role} and call rp_api_call(). Every
 * operation is written once, here: the faces differ only in framing. Nothing
 * below this layer knows about roles; nothing in it knows about sockets or
 * JSON.
 *
 * Reads run on the caller's thread, in one LMDB read transaction, and reply
 * before rp_api_call returns. Writes are validated on the caller's thread
 * (a bad request replies at once), then copied into a heap request and
 * handed to the group-committing writer; their reply comes later, on the
 * writer thread, after the commit — the network layer must hand it back to
 * the connection's own thread.
 *
 * Results and errors are msgpack bytes passed to the reply callback; they are
 * valid only during the callback (copy them).
 */
#ifndef RP_API_H
#define RP_API_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "core/tokens.h"
#include "cluster/cluster.h"
#include "store/store.h"

typedef struct rp_api rp_api;

/* Role bits for rp_api_op.roles. */
#define RP_ROLEBIT(r) (1u << (r))
#define RP_ROLES_READ (RP_ROLEBIT(RP_ROLE_AGENT) | RP_ROLEBIT(RP_ROLE_ADMIN))
#define RP_ROLES_WRITE (RP_ROLEBIT(RP_ROLE_INGEST) | RP_ROLEBIT(RP_ROLE_ADMIN))
#define RP_ROLES_ADMIN RP_ROLEBIT(RP_ROLE_ADMIN)
#define RP_ROLES_ALL 0x1Eu

typedef struct rp_api_op {
    const char *name;  /* "context.get" */
    unsigned roles;    /* RP_ROLEBIT set of roles allowed */
    bool write;        /* goes through the writer */
    int index;         /* position in the table (for metrics) */
    bool audit;        /* a reply that shows or erases a customer writes an audit line */
} rp_api_op;

/* Reply: rc == RP_OK -> result points to one msgpack object (len bytes);
 * otherwise result is NULL and msg is the error sentence. Called exactly
 * once per rp_api_call; for writes possibly on the writer thread. */
typedef void (*rp_api_reply_fn)(void *arg, rp_err rc, const char *msg, const char *result, size_t len);

/* Create the API over an open store (not owned; must outlive the api).
 * Opens the store's cfg->audit_log (append, created 0600) when set.
 * Returns RP_OK, RP_UNAVAILABLE (out of memory), or the errno-mapped code
 * of an audit log that cannot be opened (eb names it). */
rp_err rp_api_create(rp_store *store, rp_api **out, rp_errbuf *eb);
/* Free the api (NULL is ok). Waits first for a backup still running (its
 * copy reads the store and its reply uses the api), however long it takes. */
void rp_api_destroy(rp_api *api);

/* Cluster mode: from now on every write of the api (rp_api_write_run) is
 * published to cl's log instead of submitted to the store's writer, and cl
 * applies each entry through the api's own write ops (ops_write.c); then
 * start cl (rp_cluster_start). cl is not owned: stop it (rp_cluster_stop)
 * before rp_api_destroy. Call once, before serving. Returns RP_OK or the
 * error of rp_cluster_start. */
rp_err rp_api_cluster_start(rp_api *api, rp_cluster *cl, rp_errbuf *eb);

/* The cluster of the api, or NULL on a single node. */
rp_cluster *rp_api_cluster(const rp_api *api);

/* The live token table the network faces authenticate against (owned by
 * the api; rp_tokens_swap on it changes the tokens of a running server). */
rp_tokens_box *rp_api_tokens(rp_api *api);

/* Point the audit log at path ("" = stderr), as after logrotate moved the
 * old file: the new file is opened (O_APPEND, created 0600) and put in
 * place of the old one atomically, so a line being written by a worker
 * goes whole to one file or the other. Call from one thread at a time.
 * Returns RP_OK, or an errno-mapped code with eb (the old file stays). */
rp_err rp_api_reopen_audit(rp_api *api, const char *path, rp_errbuf *eb);

/* Look an operation up by name. NULL when unknown. O(ops). */
const rp_api_op *rp_api_find(const char *name, size_t len);

/* The whole table, for metrics and docs. */
const rp_api_op *rp_api_ops(size_t *count);

/* Is role allowed to run op? (tokens disabled -> the net layer passes
 * RP_ROLE_ADMIN for loopback-only servers.) */
bool rp_api_allowed(const rp_api_op *op, rp_role role);

/* Run op with params (a msgpack map; nil or absent = empty map).
 *   role:   the caller's role, already authenticated by the net layer;
 *           rp_api_call checks it (RP_FORBIDDEN); the reply of an op whose
 *           table row has `audit` writes the audit line (proto/METHODS.md).
 *   reqid:  the request id for logs and audit (NUL-terminated, may be "").
 *   params: valid during this call only; write ops copy what they keep.
 * reply is called exactly once. Never blocks on fsync. */
void rp_api_call(rp_api *api, const rp_api_op *op, rp_role role, const char *reqid,
                 const msgpack_object *params, rp_api_reply_fn reply, void *arg);

/* Append Prometheus text lines for the api's own metrics (requests by
 * method and code, latency histograms, store counts and map sizes, the
 * writer's commit and flush duration histograms) to sb. Every metric is
 * listed in proto/METRICS.md. No errors: when the store statistics cannot
 * be read, a comment line says so and the store's metrics are left out. */
void rp_api_metrics(rp_api *api, msgpack_sbuffer *sb);

#endif
