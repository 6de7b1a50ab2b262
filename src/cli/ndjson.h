/* cli/ndjson.h — NDJSON import and export (ndjson.c). */
#ifndef RP_CLI_NDJSON_H
#define RP_CLI_NDJSON_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/cli.h"

typedef struct rp_cli_import_opts {
    const char *path;   /* a file, or "-" for stdin */
    bool strict;        /* stop at the first bad line (exit 3) */
    uint32_t batch;     /* records per import call; 0 = mode default */
    bool allow_skips;   /* skipped records still exit 0 (else exit 3) */
} rp_cli_import_opts;

/* Import NDJSON (see ndjson.c for batching, errors and --strict).
 * Returns the exit code; messages and the summary go to cli->err. */
int rp_cli_import(rp_cli *cli, const rp_cli_import_opts *o);

/* Export every customer with its events and issues as NDJSON to path
 * (NULL or "-": cli->out). Returns the exit code. */
int rp_cli_export(rp_cli *cli, const char *path);

#endif
