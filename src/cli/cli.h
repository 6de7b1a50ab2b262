/* cli.h — the `rapport` command-line tool: options, backend, output.
 *
 * `rapport` is a client. Every subcommand that touches data turns its
 * arguments into one operation of the api table (api/api.h) with a msgpack
 * params map, and sends it to one of two backends that answer with the very
 * same msgpack result:
 *
 *   - the server (default): a MessagePack-RPC connection to rapportd
 *     (net/client.h), authenticated with --token / RAPPORT_TOKEN when given;
 *   - a data directory (--data DIR): the store opened in this process and an
 *     rp_api over it, called with role admin. Reading commands open it
 *     read-only (safe while rapportd serves the same directory); writing
 *     commands open it read-write.
 *
 * No operation is written twice: the CLI only builds params and renders
 * results. Rendering is either a readable text form (render.c; ANSI colors
 * only on a terminal and without NO_COLOR) or, with --json, the JSON the
 * HTTP face returns (net/json.h).
 *
 * Exit codes (rp_cli_exit_for): 0 ok; 1 not found (NOT_FOUND, or found:false
 * for context / route / lookup); 2 usage error (bad arguments, or a request
 * the server refused as BAD_REQUEST / TOO_LARGE); 3 server or store error
 * (cannot connect, UNAVAILABLE, INTERNAL, STORE_FULL, UNAUTHORIZED,
 * FORBIDDEN, CONFLICT, an import stopped by --strict, a write error).
 *
 * Modules: conn.c (the backend), render.c (text output), args.c (option
 * parsing and help), cmd_read.c / cmd_write.c (one function per command),
 * ndjson.c (import and export), ndparse.c (NDJSON lines to msgpack on
 * worker threads, in order), cmd_demo.c (the demo data set). The program
 * itself is tools/rapport.c: global flags and dispatch.
 */
#ifndef RP_CLI_H
#define RP_CLI_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "core/error.h"
#include "model/mpcheck.h"

/* --- exit codes ------------------------------------------------------------ */

#define RP_CLI_EXIT_OK 0
#define RP_CLI_EXIT_NOT_FOUND 1
#define RP_CLI_EXIT_USAGE 2
#define RP_CLI_EXIT_ERROR 3

/* The exit code for an error code (RP_OK -> 0; see the table above). */
int rp_cli_exit_for(rp_err rc);

/* The default server address (the server's default `listen`). */
#define RP_CLI_DEFAULT_SERVER "127.0.0.1:7070"

/* --- one run of the program -------------------------------------------------- */

typedef struct rp_cli_conn rp_cli_conn;

/* The state of one run: global options, output streams, the backend. */
typedef struct rp_cli {
    const char *server;      /* --server HOST:PORT (default RP_CLI_DEFAULT_SERVER) */
    const char *token;       /* --token, else $RAPPORT_TOKEN, else NULL */
    const char *data_dir;    /* --data DIR: local mode; NULL: server mode */
    const char *config_path; /* --config FILE: settings for local mode */
    bool json;               /* --json */
    bool color;              /* ANSI colors on out (a TTY and no NO_COLOR) */
    bool progress;           /* progress lines on err (err is a TTY) */
    int width;               /* out's terminal columns; 0 = do not cut lines */
    uint32_t timeout_ms;     /* server mode: connect and reply time-out */
    FILE *out, *err;         /* stdout / stderr (not owned) */
    const char *prog;        /* "rapport", for messages */
} rp_cli;

/* Fill the defaults for a run writing to out and err (colors, progress and
 * width are decided from the streams and the environment). */
void rp_cli_init(rp_cli *cli, FILE *out, FILE *err);

/* Print "rapport: <msg>" on cli->err. */
void rp_cli_errorf(const rp_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print an error with its stable code ("rapport: NOT_FOUND: no customer
 * 'x'") and return the exit code for rc. */
int rp_cli_fail(const rp_cli *cli, rp_err rc, const rp_errbuf *eb);

/* Settings for local mode (and JSON parsing limits): defaults, then
 * --config FILE when given, then data_dir = --data. Returns RP_OK or the
 * errors of rp_config_load_file / rp_config_set. */
rp_err rp_cli_config(const rp_cli *cli, rp_config *cfg, rp_errbuf *eb);

/* --- options and help (args.c) ------------------------------------------------ */

/* One option of a command. A switch (arg == NULL) stores "1" in *value. */
typedef struct rp_cli_opt {
    const char *name;  /* without dashes: "phone" for --phone */
    const char *arg;   /* placeholder of the value ("NUMBER"), NULL for a switch */
    const char *help;  /* one line */
    const char **value;/* receives the value; NULL when not given */
} rp_cli_opt;

/* One subcommand. */
typedef struct rp_cli_cmd {
    const char *name;    /* "context" */
    const char *usage;   /* "(--phone P | --email E | --account A | --id ID) [--at T]" */
    const char *summary; /* one line for `rapport --help` */
    const char *details; /* paragraphs for `rapport CMD --help` (may be NULL) */
    int (*run)(rp_cli *cli, const struct rp_cli_cmd *cmd, int argc, char **argv);
} rp_cli_cmd;

/* The table of subcommands, NULL-name terminated. */
extern const rp_cli_cmd rp_cli_commands[];

/* Find a command by name; NULL when unknown. */
const rp_cli_cmd *rp_cli_find_command(const char *name);

/* Try to consume a global option at argv[*i] (--server, --token, --data,
 * --json, --config, in "--opt VALUE" or "--opt=VALUE" form), advancing *i
 * past its value. Returns 1 when consumed, 0 when argv[*i] is not a global
 * option, -1 after printing a usage error (a missing value). */
int rp_cli_global_opt(rp_cli *cli, int argc, char **argv, int *i);

/* Parse a command's arguments (argv[0] is the command name): its options,
 * global options anywhere, `--help` / `-h`, and `--` to end options.
 * Positional arguments are stored in pos[0..*npos) (at most maxpos; more is
 * a usage error).
 * Returns -1 when parsing succeeded and the command should run; otherwise
 * the exit code to return at once (0 after printing --help, 2 after a usage
 * error has been printed). */
int rp_cli_parse(rp_cli *cli, const rp_cli_cmd *cmd, const rp_cli_opt *opts, int argc, char **argv,
                 const char **pos, int maxpos, int *npos);

/* Print a command's help (usage, details, options, global options) to f. */
void rp_cli_command_help(const rp_cli_cmd *cmd, const rp_cli_opt *opts, FILE *f);

/* Print the program's help (commands, global options, exit codes) to f. */
void rp_cli_main_help(FILE *f);

/* Print "rapport CMD: <msg>" and a hint to run --help; returns 2. */
int rp_cli_usage_error(const rp_cli *cli, const rp_cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parse a decimal int64 within [min, max] from s (all of it). */
bool rp_cli_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/* --- the backend (conn.c) --------------------------------------------------- */

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

/* Pipelining: queue a call (its reply comes from rp_cli_recv, in order).
 * The params bytes are copied. Returns RP_OK or a transport error. */
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

/* --- output (render.c) ------------------------------------------------------ */

/* Write o as one line of compact JSON (the HTTP face's JSON) to f.
 * Returns RP_OK, or the errors of rp_msgpack_to_json / RP_INTERNAL for a
 * write error. */
rp_err rp_cli_print_json(FILE *f, const msgpack_object *o, rp_errbuf *eb);

/* The readable forms, one per result shape (all write to cli->out). */
void rp_cli_render_card(const rp_cli *cli, const msgpack_object *card);
void rp_cli_render_customer(const rp_cli *cli, const msgpack_object *c);
void rp_cli_render_history(const rp_cli *cli, const msgpack_object *res, int64_t now);
void rp_cli_render_issues(const rp_cli *cli, const msgpack_object *res, int64_t now);
void rp_cli_render_lookup(const rp_cli *cli, const msgpack_object *res);
/* Any map as aligned "key: value" lines (nested maps indented). */
void rp_cli_render_kv(const rp_cli *cli, const msgpack_object *map);

/* --- import / export (ndjson.c) ------------------------------------------------ */

typedef struct rp_cli_import_opts {
    const char *path;   /* a file, or "-" for stdin */
    bool strict;        /* stop at the first bad line (exit 3) */
    uint32_t batch;     /* records per import call; 0 = mode default */
} rp_cli_import_opts;

/* Import NDJSON (see ndjson.c for batching, errors and --strict).
 * Returns the exit code; messages and the summary go to cli->err. */
int rp_cli_import(rp_cli *cli, const rp_cli_import_opts *o);

/* Export every customer with its events and issues as NDJSON to path
 * (NULL or "-": cli->out). Returns the exit code. */
int rp_cli_export(rp_cli *cli, const char *path);

/* --- parallel NDJSON parsing (ndparse.c) ---------------------------------------- */

typedef struct rp_ndparse rp_ndparse;

/* A line that did not become a record. */
typedef struct rp_ndparse_err {
    uint64_t line;
    rp_err rc;                /* RP_BAD_REQUEST (not JSON, not an object), RP_TOO_LARGE */
    char msg[RP_ERRMSG_MAX];
} rp_ndparse_err;

/* The result of one chunk of lines, in line order: records (msgpack maps,
 * one after another in out; record i starts at offs[i] and ends where the
 * next starts, or at out.size) and errors, each with its line number. */
typedef struct rp_ndparse_chunk {
    msgpack_sbuffer out;
    size_t *offs;
    uint64_t *lines;
    uint32_t nrec;
    rp_ndparse_err *errs;
    uint32_t nerr;
} rp_ndparse_chunk;

/* Start `threads` parsing threads (0 counts as 1) converting lines with
 * rp_json_to_msgpack under lim (copied). Returns RP_OK or RP_UNAVAILABLE. */
rp_err rp_ndparse_start(unsigned threads, const rp_mpcheck_limits *lim, rp_ndparse **out,
                        rp_errbuf *eb);

/* Stop the threads and free everything, chunks not taken included. NULL ok. */
void rp_ndparse_stop(rp_ndparse *p);

/* Add one line (without its newline; copied) with its line number. Full
 * chunks are queued for the threads. Returns RP_OK, RP_UNAVAILABLE (out of
 * memory) or RP_TOO_LARGE (a line that cannot be held). */
rp_err rp_ndparse_put(rp_ndparse *p, const char *line, size_t len, uint64_t lineno, rp_errbuf *eb);

/* Queue the partly filled chunk (at the end of the input). */
void rp_ndparse_flush(rp_ndparse *p);

/* Chunks queued and not taken back yet. */
unsigned rp_ndparse_pending(const rp_ndparse *p);

/* The oldest chunk, once parsed: with wait, block until it is; without,
 * NULL when it is not ready. NULL when nothing is pending. Hand it back
 * with rp_ndparse_release. Chunks come back in the order of their lines. */
const rp_ndparse_chunk *rp_ndparse_take(rp_ndparse *p, bool wait);
void rp_ndparse_release(rp_ndparse *p, const rp_ndparse_chunk *c);

/* --- the commands (cmd_*.c) ------------------------------------------------- */

int rp_cli_cmd_context(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_route(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_get(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_history(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_issues(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_lookup(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_stats(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_ping(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_put(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_patch(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_event(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_issue(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_forget(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_merge(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_import(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_export(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_backup(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv); /* cmd_backup.c */
int rp_cli_cmd_demo(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);

#endif
