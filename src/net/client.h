/* client.h — a small blocking MessagePack-RPC client (CLI, bench, tests).
 *
 * One rp_client is one TCP connection to rapportd. Two ways to use it:
 *
 *   - one call at a time: rp_client_call() sends a request and waits for
 *     its reply;
 *   - pipelined: rp_client_send() queues requests (written by
 *     rp_client_flush(), or by rp_client_recv() before it waits), and
 *     rp_client_recv() returns replies one by one, in request order (the
 *     server keeps that order).
 *
 * Requests are `[0, msgid, method, [params]]` with params the caller's
 * msgpack bytes of one map (NULL: no params). The client trusts those bytes
 * (they come from our own code) but not the server's: every reply passes
 * rp_mpcheck with the client's limits before msgpack-c unpacks it, so a
 * hostile or broken server cannot make the client allocate without bound.
 *
 * Results live in the client: a result object (and the strings in it)
 * stays valid until the next rp_client_call / rp_client_recv /
 * rp_client_close on the same client.
 *
 * Errors: functions return rp_err. A transport failure (connect, reset,
 * time-out, a malformed reply) returns RP_UNAVAILABLE or RP_INTERNAL and
 * leaves the client broken (rp_client_broken): every later call fails at
 * once; close it and connect again. An error answered by the server (for
 * example RP_NOT_FOUND) leaves the client usable.
 *
 * Not thread-safe: one thread per client (the bench opens one per thread).
 */
#ifndef RP_CLIENT_H
#define RP_CLIENT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "model/mpcheck.h"

typedef struct rp_client rp_client;

/* One reply, as rp_client_recv returns it. */
typedef struct rp_client_reply {
    uint32_t msgid;               /* 0: an error the server sent before closing */
    rp_err rc;                    /* RP_OK or the server's error code */
    char message[RP_ERRMSG_MAX];  /* rc != RP_OK: the server's sentence */
    msgpack_object result;        /* rc == RP_OK: the result (nil if none);
                                   * valid until the next call on the client */
} rp_client_reply;

/* Default reply limits: 64 MiB a reply, depth 32, 1,000,000 elements a
 * container, 16 MiB a string. */
rp_mpcheck_limits rp_client_default_limits(void);

/* Connect to "HOST:PORT" ("[v6]:PORT" for IPv6).
 *   timeout_ms: for the connection and for every later wait on the socket
 *               (0 = wait forever).
 * Returns RP_OK (*out owned by the caller, free with rp_client_close),
 * RP_BAD_REQUEST (bad address), RP_UNAVAILABLE (refused, unreachable,
 * timed out, out of memory). */
rp_err rp_client_connect(const char *hostport, uint32_t timeout_ms, rp_client **out, rp_errbuf *eb);

/* Close the connection and free the client. NULL is ok. */
void rp_client_close(rp_client *c);

/* Replace the reply limits (see rp_client_default_limits). */
void rp_client_set_limits(rp_client *c, const rp_mpcheck_limits *lim);

/* The socket (for poll / tests). Still owned by the client. */
int rp_client_fd(const rp_client *c);

/* Has a transport failure broken the client? */
bool rp_client_broken(const rp_client *c);

/* Requests sent (or queued) whose replies have not been received. */
unsigned rp_client_pending(const rp_client *c);

/* Authenticate the connection with a bearer token.
 *   role: receives the role the server granted (may be NULL).
 * Returns RP_OK, RP_UNAUTHORIZED (unknown token), or a transport error. */
rp_err rp_client_auth(rp_client *c, const char *token, rp_role *role, rp_errbuf *eb);

/* Call method with params (msgpack bytes of one map, or NULL/0 for none)
 * and wait for the reply. Only when nothing is pending (else
 * RP_BAD_REQUEST: use rp_client_recv first).
 *   result: on RP_OK receives the result (valid until the next call).
 * Returns RP_OK, the server's error code (message in eb), or a transport
 * error (rp_client_broken tells which). */
rp_err rp_client_call(rp_client *c, const char *method, const char *params, size_t params_len,
                      msgpack_object *result, rp_errbuf *eb);

/* Queue one request (not yet written). *msgid (may be NULL) receives its
 * id. Returns RP_OK, RP_UNAVAILABLE (broken / out of memory). */
rp_err rp_client_send(rp_client *c, const char *method, const char *params, size_t params_len,
                      uint32_t *msgid, rp_errbuf *eb);

/* Write every queued request, reading replies meanwhile so that neither
 * side can block the other. Returns RP_OK or a transport error. */
rp_err rp_client_flush(rp_client *c, rp_errbuf *eb);

/* Flush, then wait for the next reply. The return value is about the
 * transport: RP_OK means *r holds a reply (whose own rc may be an error).
 * Returns RP_BAD_REQUEST when nothing is pending, or a transport error. */
rp_err rp_client_recv(rp_client *c, rp_client_reply *r, rp_errbuf *eb);

#endif
