/* cli/args.h — parsing a command's arguments, its help and usage errors (args.c). */
#ifndef RP_CLI_ARGS_H
#define RP_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/cli.h"

/* One option of a command. A switch (arg == NULL) stores "1" in *value. */
typedef struct rp_cli_opt {
    const char *name;  /* without dashes: "phone" for --phone */
    const char *arg;   /* placeholder of the value ("NUMBER"), NULL for a switch */
    const char *help;  /* one line */
    const char **value;/* receives the value; NULL when not given */
} rp_cli_opt;

/* Parse a command's arguments (argv[0] is the command name): its options
 * (opts, NULL-terminated; NULL for none: each found one's *value is set to
 * its argument, or "1"), global options anywhere, `--help` / `-h`, and `--`
 * to end options. Positional arguments are stored in pos[0..*npos) (at most
 * maxpos; more is a usage error); they and the values point into argv.
 * Returns RP_OK when parsing succeeded: the command runs unless *help (the
 * command's help was printed to cli->out; exit RP_CLI_EXIT_OK).
 * RP_BAD_REQUEST: a usage error was printed to cli->err (exit
 * RP_CLI_EXIT_USAGE). */
rp_err rp_cli_parse(rp_cli *cli, const rp_cli_cmd *cmd, const rp_cli_opt *opts, int argc, char **argv,
                    const char **pos, int maxpos, int *npos, bool *help);

/* Print a command's help (usage, details, options, global options) to f. */
void rp_cli_command_help(const rp_cli_cmd *cmd, const rp_cli_opt *opts, FILE *f);


/* Print "rapport CMD: <msg>" and a hint to run --help; returns 2. */
int rp_cli_usage_error(const rp_cli *cli, const rp_cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parse a decimal int64 within [min, max] from s (all of it). */
bool rp_cli_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/* The value s of option --name as an integer within [min, max] into *out.
 * s NULL (the option was not given): RP_CLI_EXIT_OK, *out unchanged. A bad
 * value prints "--NAME must be WANT (got 'S')" (rp_cli_usage_error) and
 * returns its exit code; a good one RP_CLI_EXIT_OK (0), so calls chain
 * with ||. */
int rp_cli_opt_int(const rp_cli *cli, const rp_cli_cmd *cmd, const char *name, const char *s,
                   int64_t min, int64_t max, const char *want, int64_t *out);

#endif
