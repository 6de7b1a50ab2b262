/* conn.h — the connection lifecycle both network faces share.
 *
 * The MessagePack-RPC face (rpc.c, its own bufferevents) and the HTTP face
 * (http.c, connections owned by evhttp) run different parsers over one
 * lifecycle, the way Redis runs both of its protocol parsers over one
 * client in networking.c. This module owns the parts that must not differ
 * between them; each face plugs in its own close and write:
 *
 *   - admission and accounting: every accepted connection is counted
 *     against cfg->max_connections in the server-wide rp_net_stats
 *     (rp_conn_admit / rp_conn_release), time-outs and protocol violations
 *     are counted the same way (rp_conn_count_*);
 *   - deadlines: the slow-request, idle and lingering-close time-outs as
 *     libevent timevals and monotonic deadlines, from one place
 *     (rp_conn_deadlines);
 *   - api calls in flight and the hand-back of their replies: a call is
 *     begun on the loop thread (rp_conn_call_begin); its reply arrives
 *     either inline, inside rp_api_call on the same thread
 *     (rp_conn_call_inline tells), or on the store's writer thread, which
 *     posts it back to the owning loop (rp_conn_call_post); the call ends
 *     on the loop thread (rp_conn_call_end). rp_conn_in_flight is what
 *     shutdown waits on.
 *
 * What a face does when a deadline passes (RPC: close the bufferevent;
 * HTTP: shut the socket down so that evhttp frees the connection) and how
 * a reply is written stay in the face.
 *
 * Thread safety: everything runs on the owning loop's thread except
 * rp_conn_call_post (the writer thread), rp_conn_in_flight (any thread)
 * and the rp_net_stats counters (atomic, shared by every worker).
 */
#ifndef RP_CONN_H
#define RP_CONN_H

#include <event2/util.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "net/loop.h"

/* --- admission and accounting ---------------------------------------------------- */

/* Count a connection just accepted: conns_open + 1. Returns true when it is
 * within cfg->max_connections (conns_total + 1); false when it is over
 * (conns_rejected + 1). Either way it stays counted in conns_open until
 * rp_conn_release: a face that refuses at once releases at once; one that
 * must answer first (HTTP: 503 to its first request) releases when the
 * connection is gone. Thread-safe. */
bool rp_conn_admit(rp_net_stats *st, const rp_config *cfg);

/* The connection admitted (or refused) by rp_conn_admit is gone. */
void rp_conn_release(rp_net_stats *st);

/* A connection closed for idleness or a slow request. */
void rp_conn_count_timeout(rp_net_stats *st);

/* A protocol violation (a bad frame). */
void rp_conn_count_bad_frame(rp_net_stats *st);

/* A request refused by face before its operation ran, with the code it
 * was answered: RP_UNAUTHORIZED (401), RP_FORBIDDEN (403), RP_TOO_LARGE
 * (413) or RP_UNAVAILABLE (503) are counted in st->refused; any other code
 * is not a refusal and is ignored, so a face may pass the code of any
 * early error. Thread-safe. */
void rp_conn_count_refused(rp_net_stats *st, rp_net_face face, rp_err rc);

/* --- deadlines ------------------------------------------------------------------- */

/* The time-outs of a face, computed once from the config. */
typedef struct rp_conn_deadlines {
    struct timeval idle;   /* idle_timeout_ms: nothing read or written */
    struct timeval slow;   /* slow_timeout_ms: a started request must be complete */
    struct timeval linger; /* min(slow, 2 s): waiting for the peer's FIN after an error */
    uint32_t slow_ms;
    uint32_t over_ms;      /* min(slow, 1 s): how long a connection over the cap may stay */
} rp_conn_deadlines;

/* Fill d from cfg. */
void rp_conn_deadlines_init(rp_conn_deadlines *d, const rp_config *cfg);

/* Monotonic milliseconds, for deadlines kept as numbers (HTTP's sweeper). */
int64_t rp_conn_now_ms(void);

/* --- api calls in flight, and the post-back of their replies --------------------- */

/* One face instance's count of api calls whose reply has not come back. */
typedef struct rp_conn_flight {
    rp_loop *loop;  /* where replies are posted */
    atomic_uint n;
} rp_conn_flight;

/* One api call; embed it in the face's call record. */
typedef struct rp_conn_call {
    rp_loop_item item; /* the mailbox link for the post-back */
    pthread_t thread;  /* the loop's thread, set by rp_conn_call_begin */
    bool counted;      /* between rp_conn_call_begin and rp_conn_call_end */
} rp_conn_call;

/* Start counting calls for the face on loop. */
void rp_conn_flight_init(rp_conn_flight *f, rp_loop *loop);

/* A call is handed to the api (loop thread): counted in flight. */
void rp_conn_call_begin(rp_conn_flight *f, rp_conn_call *k);

/* Is the reply callback running on the call's own loop thread, i.e. inline
 * inside rp_api_call, rather than on the writer thread? */
bool rp_conn_call_inline(const rp_conn_call *k);

/* Writer thread: hand the reply back; fn(arg) runs on the owning loop. k
 * must stay valid until fn has run. */
void rp_conn_call_post(rp_conn_flight *f, rp_conn_call *k, void (*fn)(void *), void *arg);

/* The call is answered (loop thread); no-op when it was not counted. */
void rp_conn_call_end(rp_conn_flight *f, rp_conn_call *k);

/* Calls begun and not yet ended. Any thread. */
unsigned rp_conn_in_flight(const rp_conn_flight *f);

#endif
