/* http.h — the HTTP/JSON face (libevent evhttp), one instance per worker loop.
 *
 * Every worker thread runs its own evhttp on its own loop, all accepting on
 * one shared listening socket (the kernel spreads connections). A request is
 * mapped from its route (/v1/...) to an operation of the api table with a
 * msgpack params map built from the path, the query string and the JSON body
 * (JSON -> msgpack through jansson, net/json.h), then answered with the
 * result converted back to JSON. Writes complete on the writer thread and are
 * posted back to this loop (net/loop.h) before evhttp_send_reply.
 *
 * Also serves GET /metrics (Prometheus text) and GET /healthz.
 */
#ifndef RP_HTTP_H
#define RP_HTTP_H

#include <event2/util.h>

#include "api/api.h"
#include "core/config.h"
#include "core/error.h"
#include "net/loop.h"

typedef struct rp_http rp_http;

/* Serve HTTP on loop, accepting on fd (already bound and listening, non-
 * blocking; owned by the caller, shared by all workers).
 *   api, cfg, stats: shared, must outlive the rp_http.
 * Returns RP_OK or RP_UNAVAILABLE / RP_INTERNAL. */
rp_err rp_http_create(rp_loop *loop, evutil_socket_t fd, rp_api *api, const rp_config *cfg,
                      rp_net_stats *stats, rp_http **out, rp_errbuf *eb);

/* Stop accepting new HTTP requests on this worker (graceful shutdown step 1). */
void rp_http_stop_accepting(rp_http *h);

/* Requests still waiting for a write acknowledgement on this worker. */
unsigned rp_http_in_flight(const rp_http *h);

/* Free (on the loop's thread, after it stopped), closing its connections.
 * Call with rp_http_in_flight(h) == 0 or after the store's writer stopped:
 * a write whose reply has not been posted yet is left allocated (the
 * writer still holds it), and the loop must not run again. NULL is ok. */
void rp_http_free(rp_http *h);

#endif
