/* loop.h — one worker thread's event loop, and a mailbox into it.
 *
 * rapportd runs one libevent base per worker thread. Connections live on one
 * loop for their whole life, so connection state needs no locks. Work that
 * finishes elsewhere (a write acknowledged on the writer thread) is handed
 * back with rp_loop_post(): the callback is queued under a mutex and the
 * loop is woken through an internal event (event_active is thread-safe once
 * evthread_use_pthreads() was called — rp_loop_global_init does it).
 *
 * Limits: the mailbox is an unbounded intrusive list, but every posted item
 * belongs to a request that a connection is waiting for, and requests per
 * connection and connections are capped, so it is bounded in practice.
 */
#ifndef RP_LOOP_H
#define RP_LOOP_H

#include <event2/event.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/error.h"

typedef struct rp_loop rp_loop;

/* An item posted to a loop: embed it in your own request struct. */
typedef struct rp_loop_item {
    void (*fn)(void *arg);
    void *arg;
    struct rp_loop_item *next;
} rp_loop_item;

/* The faces, and the refusals counted per face (rp_conn_count_refused). */
typedef enum rp_net_face { RP_FACE_RPC, RP_FACE_HTTP, RP_FACE__COUNT } rp_net_face;
typedef enum rp_net_refusal {
    RP_REFUSED_401, /* no or unknown token */
    RP_REFUSED_403, /* the role may not call the operation */
    RP_REFUSED_413, /* the request passes a size limit */
    RP_REFUSED_503, /* over capacity: connections, write queue, memory, draining */
    RP_REFUSED__COUNT
} rp_net_refusal;

/* Counters shared by both faces, for /metrics and stats. */
typedef struct rp_net_stats {
    atomic_uint_fast64_t conns_open;      /* gauge */
    atomic_uint_fast64_t conns_total;     /* counter: accepted */
    atomic_uint_fast64_t conns_rejected;  /* counter: over max_connections */
    atomic_uint_fast64_t conns_timed_out; /* counter: idle/slow */
    atomic_uint_fast64_t bad_frames;      /* counter: protocol violations */
    atomic_uint_fast64_t refused[RP_FACE__COUNT][RP_REFUSED__COUNT]; /* counter: requests refused
                                                                        before their operation ran */
} rp_net_stats;

/* Call once per process before creating loops (enables libevent threading).
 * Returns RP_OK or RP_INTERNAL. */
rp_err rp_loop_global_init(rp_errbuf *eb);

/* Create a loop with its own event_base. Returns RP_OK, RP_UNAVAILABLE. */
rp_err rp_loop_create(rp_loop **out, rp_errbuf *eb);

/* The loop's base: valid until rp_loop_free. */
struct event_base *rp_loop_base(rp_loop *l);

/* Queue item->fn(item->arg) to run on l's thread. Thread-safe; never
 * fails; item must stay valid until fn has run. */
void rp_loop_post(rp_loop *l, rp_loop_item *item, void (*fn)(void *), void *arg);

/* Run the loop until rp_loop_stop (on its own thread). */
void rp_loop_run(rp_loop *l);

/* Ask the loop to exit once it has run what is queued. Thread-safe. */
void rp_loop_stop(rp_loop *l);

/* Free a loop that is no longer running. Posted items not yet run are
 * dropped (their owners are gone at shutdown). */
void rp_loop_free(rp_loop *l);

#endif
