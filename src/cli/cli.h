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
 * FORBIDDEN, CONFLICT, an import stopped by --strict, a write error); 130
 * an import interrupted by Ctrl-C.
 *
 * Modules: conn.c (the backend, conn.h), render.c (text output,
 * render.h), args.c (option parsing and help, args.h; the command table),
 * cmd_read.c / cmd_write.c (one function per command, cmds.h), ndjson.c
 * (import and export, ndjson.h), ndparse.c (NDJSON lines to msgpack on
 * worker threads, in order, ndparse.h), cmd_demo.c (the demo data set).
 * The program itself is tools/rapport.c: global flags and dispatch.
 *
 * This header is the program's entry: one run (rp_cli), exit codes, the
 * command table and global options. Each module includes the headers of
 * the concerns it uses, and nothing includes all of them.
 */
#ifndef RP_CLI_H
#define RP_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "core/error.h"

/* --- exit codes ------------------------------------------------------------ */

#define RP_CLI_EXIT_OK 0
#define RP_CLI_EXIT_NOT_FOUND 1
#define RP_CLI_EXIT_USAGE 2
#define RP_CLI_EXIT_ERROR 3
#define RP_CLI_EXIT_INTERRUPTED 130 /* Ctrl-C stopped an import (128 + SIGINT, as shells report) */

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
    const char *hint_args;   /* the command's own options to repeat in a "more:" hint, or NULL */
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

/* --- commands and global options (args.c) ------------------------------------- */

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

/* The global flags this run was given that a pasted follow-up command needs
 * (" --data DIR", " --config FILE", " --server HOST:PORT" when not the
 * default), each value shell-quoted, into out (n bytes; "" when none). The
 * token is never repeated: it comes from --token or $RAPPORT_TOKEN again. */
void rp_cli_rerun_flags(const rp_cli *cli, char *out, size_t n);

/* s as one shell word (bare, or single-quoted) into out (n bytes, cut to fit). */
void rp_cli_shell_word(char *out, size_t n, const char *s);

/* Print the program's help (commands, global options, exit codes) to f. */
void rp_cli_main_help(FILE *f);

#endif
