/* cli/conn.h — the backend a command's operation goes to: rapportd or a data directory (conn.c). */
#ifndef RP_CLI_CONN_H
#define RP_CLI_CONN_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "cli/cli.h"
#include "core/error.h"
#include "model/mpcheck.h"

/* What a command will do with the data: decides how a data directory is
 * opened (read-only; read-write with sync durability; read-write with
 * async durability and a flush at close, for import). */
typedef enum rp_cli_access { RP_CLI_READ = 0, RP_CLI_WRITE, RP_CLI_BULK } rp_cli_access;

/* One reply: rc and message, or the result object. */
typedef struct rp_cli_reply {
    rp_err rc;                   /* RP_OK or the operation's error code */
    char message[RP_ERRMSG_MAX]; /* rc != RP_OK: the sentence */
    msgpack_object result;       /* rc == RP_OK: valid until the next call on the conn */
} rp_cli_reply;

/* Open the backend the options name: a server connection (with auth when a
 * token is set) or a data directory opened for `access`.
 * Returns RP_OK (*out owned by the caller: rp_cli_conn_close); errors of
 * rp_client_connect / rp_client_auth (RP_UNAVAILABLE when the server is not
 * there), of rp_cli_config, of rp_store_open[_readonly] (RP_NOT_FOUND when
 * a read-only data directory holds no store) or rp_api_create. */
rp_err rp_cli_conn_open(const rp_cli *cli, rp_cli_access access, rp_cli_conn **out, rp_errbuf *eb);

/* Close the backend: for a data directory, wait for queued writes, flush
 * and close the store. NULL is ok. */
void rp_cli_conn_close(rp_cli_conn *c);

/* Call one operation and wait for its reply.
 *   method: an operation name ("context.get").
 *   params, len: msgpack bytes of one map (NULL/0: no params).
 *   r: receives the reply; r->result is valid until the next call, send,
 *      recv or close on c.
 * Returns RP_OK when a reply arrived (r->rc may still be an error: the
 * operation's), or a transport / backend error (message in eb). Only when
 * nothing is pending. */
rp_err rp_cli_call(rp_cli_conn *c, const char *method, const char *params, size_t len,
                   rp_cli_reply *r, rp_errbuf *eb);

/* Pipelining: send a call without waiting (its reply comes from
 * rp_cli_recv, in order); the request is written before this returns. The
 * params bytes are copied. Returns RP_OK or a transport error. */
rp_err rp_cli_send(rp_cli_conn *c, const char *method, const char *params, size_t len,
                   rp_errbuf *eb);

/* Wait for the reply of the oldest queued call. Returns as rp_cli_call;
 * RP_BAD_REQUEST when nothing is pending. */
rp_err rp_cli_recv(rp_cli_conn *c, rp_cli_reply *r, rp_errbuf *eb);

/* Calls sent whose replies were not received yet. */
unsigned rp_cli_pending(const rp_cli_conn *c);

/* Is this a local (data directory) backend? */
bool rp_cli_conn_local(const rp_cli_conn *c);

/* Limits for JSON the CLI parses and for msgpack it builds: the server's
 * defaults (or the --config file's in local mode). */
const rp_mpcheck_limits *rp_cli_conn_limits(const rp_cli_conn *c);

/* Open the backend, call one operation, and on success hand the result to
 * show(cli, result, arg), whose return value is the exit code. Errors are
 * printed (rp_cli_fail) and turned into their exit code. */
int rp_cli_run_op(rp_cli *cli, rp_cli_access access, const char *method, const char *params,
                  size_t len, int (*show)(rp_cli *cli, const msgpack_object *result, void *arg),
                  void *arg);

#endif
