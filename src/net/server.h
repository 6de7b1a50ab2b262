/* server.h — rapportd's network side: listening sockets, worker threads,
 * and the steps of a graceful shutdown.
 *
 * rp_server_start binds the MessagePack-RPC socket (cfg->listen) and, unless
 * cfg->http is empty, the HTTP socket, once each (SO_REUSEADDR, non-
 * blocking, backlog 1024). It then starts cfg->threads workers, each a
 * thread running its own rp_loop with one rp_rpc and one rp_http accepting
 * on the shared sockets: the kernel hands each new connection to one of
 * them and it stays there. Connections are capped across all workers by
 * cfg->max_connections (counted in the shared rp_net_stats).
 *
 * Shutdown is three steps so that the caller can log between them:
 *   1. rp_server_stop_accepting: every worker stops accepting, then the
 *      listening sockets are closed (new clients get "connection refused");
 *   2. rp_server_drain: requests already received are finished and their
 *      replies written; requests that arrive meanwhile are answered
 *      UNAVAILABLE; connections close once they are owed nothing — bounded
 *      by a time-out;
 *   3. rp_server_stop: waits for writes still queued at the store's writer
 *      (their replies must not land in freed memory), stops and joins the
 *      workers, closes what is left, frees everything.
 * rp_server_stop alone does all three without waiting in step 2.
 *
 * Thread-safety: every function is called from one controlling thread (the
 * main thread of rapportd); the workers are driven through their mailboxes.
 */
#ifndef RP_SERVER_H
#define RP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "api/api.h"
#include "core/config.h"
#include "core/error.h"
#include "net/loop.h"

typedef struct rp_server rp_server;

/* Refuse an exposed server without authentication: RP_FORBIDDEN when
 * cfg->listen, or cfg->http when set, is not a loopback address and no
 * token is configured; RP_BAD_REQUEST when an address cannot be parsed or
 * resolved; RP_OK otherwise. rp_server_start checks it too. */
rp_err rp_server_check_exposure(const rp_config *cfg, rp_errbuf *eb);

/* Bind, start the workers and serve.
 *   cfg: copied; api: shared, must outlive the server.
 * Needs rp_loop_global_init() to have been called.
 * Returns RP_OK; RP_FORBIDDEN (see rp_server_check_exposure);
 * RP_BAD_REQUEST (bad address); RP_CONFLICT (address in use);
 * RP_UNAVAILABLE (out of memory / threads / descriptors) or another
 * errno-mapped code. On failure nothing is left running. */
rp_err rp_server_start(const rp_config *cfg, rp_api *api, rp_server **out, rp_errbuf *eb);

/* The bound ports (the real ones when the config asked for port 0), and
 * the addresses as "HOST:PORT" (owned by the server; "" when HTTP is off).
 * The HTTP port is 0 when HTTP is off. */
int rp_server_rpc_port(const rp_server *s);
int rp_server_http_port(const rp_server *s);
const char *rp_server_rpc_addr(const rp_server *s);
const char *rp_server_http_addr(const rp_server *s);

/* Connection counters shared by both faces (owned by the server). */
rp_net_stats *rp_server_stats(rp_server *s);

/* Shutdown step 1 (see above). Waits (up to 5 s per worker) until every
 * worker stopped accepting. Idempotent. */
void rp_server_stop_accepting(rp_server *s);

/* Shutdown step 2: waits up to timeout_ms for every request received to be
 * answered and every RPC connection to close. Returns true when that
 * happened, false at the time-out (what is left is closed by
 * rp_server_stop). Calls rp_server_stop_accepting first if needed. */
bool rp_server_drain(rp_server *s, uint32_t timeout_ms);

/* Shutdown step 3: see above. Waits for requests still inside the api
 * (store writes queued before the shutdown; they always finish) for up to
 * 60 s — past that, the workers' memory is deliberately left allocated
 * rather than freed under a late reply. NULL is ok. */
void rp_server_stop(rp_server *s);

#endif
