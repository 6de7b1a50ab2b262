/* rpc.h — the MessagePack-RPC face, one instance per worker loop.
 *
 * Every worker thread runs one rp_rpc on its own loop, accepting on the
 * listening socket that all workers share (the kernel wakes them; whoever
 * wins accept(2) owns the connection for its whole life, so connection
 * state needs no locks). Framing, authentication, ordering, limits and
 * time-outs are described in proto/PROTOCOL.md; in short:
 *
 *   - a frame is one MessagePack object, validated by rp_mpcheck (bounded:
 *     size, depth, counts, UTF-8) before msgpack-c unpacks it;
 *   - `[0, msgid, method, params]` is answered with `[1, msgid, error,
 *     result]`, `[2, method, params]` is run without an answer;
 *   - replies leave in request order, pipelined requests are processed in
 *     one pass and their replies written in one batch;
 *   - a frame that is not MessagePack, too large or too deep gets one error
 *     reply (msgid recovered when the frame starts like a request, else 0)
 *     and the connection is closed after it is written.
 *
 * Writes finish on the store's writer thread: the reply is encoded there
 * and posted back to this loop (rp_loop_post); a connection that closes
 * while writes are in flight stays allocated until their replies arrived.
 *
 * Every function except rp_rpc_create and rp_rpc_free must run on the
 * loop's thread; those two run while the loop is not running.
 */
#ifndef RP_RPC_H
#define RP_RPC_H

#include <event2/util.h>
#include <stdatomic.h>

#include "api/api.h"
#include "core/config.h"
#include "core/error.h"
#include "net/loop.h"

typedef struct rp_rpc rp_rpc;

/* Shared by the rp_rpc instances of one server (owned by the caller, zero-
 * initialized, outliving them): with it a worker that holds more than its
 * share of the connections leaves a new one to a sibling. Both are woken
 * by the shared listening socket, and without this the first to wake takes
 * bursts of connections; long-lived CRM pools would then load one core. */
typedef struct rp_rpc_group {
    atomic_uint conns;   /* open RPC connections, all members */
    atomic_uint members; /* rp_rpc instances accepting */
} rp_rpc_group;

/* Replies waiting in one connection's queue before it stops reading
 * (backpressure); reading resumes below RP_RPC_RESUME_PENDING. */
#define RP_RPC_MAX_PENDING 1024
#define RP_RPC_RESUME_PENDING 512

/* Serve MessagePack-RPC on loop, accepting on fd (bound, listening, non-
 * blocking; owned by the caller and shared by every worker).
 *   api, cfg, stats: shared, must outlive the rp_rpc.
 *   group:  the server's rp_rpc_group, or NULL (no balancing).
 * Returns RP_OK, or RP_UNAVAILABLE (out of memory / libevent failure).
 * *out is set only on success. */
rp_err rp_rpc_create(rp_loop *loop, evutil_socket_t fd, rp_api *api, const rp_config *cfg,
                     rp_net_stats *stats, rp_rpc_group *group, rp_rpc **out, rp_errbuf *eb);

/* Stop accepting new connections on this worker (the fd stays open: it is
 * the caller's). Idempotent. */
void rp_rpc_stop_accepting(rp_rpc *r);

/* Enter shutdown: requests that arrive from now on are answered
 * UNAVAILABLE, and each connection is closed as soon as every reply it is
 * owed has been written. Idempotent. */
void rp_rpc_drain(rp_rpc *r);

/* Requests handed to the api whose reply has not come back yet. */
unsigned rp_rpc_in_flight(const rp_rpc *r);

/* Connections open on this worker. */
unsigned rp_rpc_connections(const rp_rpc *r);

/* Close every connection and free r. Call after the loop stopped and with
 * rp_rpc_in_flight(r) == 0: with calls still in flight their connections
 * are left allocated (never freed under a reply that may still come).
 * NULL is ok. */
void rp_rpc_free(rp_rpc *r);

#endif
