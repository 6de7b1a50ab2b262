/* rapport.c — the `rapport` command-line tool: global flags and dispatch.
 *
 *   rapport [--server HOST:PORT] [--token T] [--data DIR] [--config FILE]
 *           [--json] COMMAND [options]
 *   rapport --version    the version and the git commit it was built from
 *
 * Global flags may come before the command (parsed here) or among its
 * arguments (the command's parser accepts them too). Everything else lives
 * in src/cli/ (cli.h explains the design); this file only finds the command
 * and runs it. Exit codes are documented in `rapport --help` (cli.h).
 *
 * SIGPIPE keeps its default action, as for any Unix filter: `rapport demo |
 * head` ends quietly when head is done. The server connection cannot raise
 * it (the client sends with MSG_NOSIGNAL).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/version.h"
#include "rp_version.h" /* generated: RP_GIT_DESCRIBE */

int main(int argc, char **argv) {
    rp_cli cli;
    rp_cli_init(&cli, stdout, stderr);
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "help") == 0 && i + 1 < argc && rp_cli_find_command(argv[i + 1])) {
            /* `rapport help CMD` is `rapport CMD --help` */
            const rp_cli_cmd *cmd = rp_cli_find_command(argv[i + 1]);
            char *hargv[] = {argv[i + 1], "--help", NULL};
            return cmd->run(&cli, cmd, 2, hargv);
        }
        if (strcmp(a, "--version") == 0) {
            printf("rapport %s (%s)\n", RP_VERSION, RP_GIT_DESCRIBE);
            return RP_CLI_EXIT_OK;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0) {
            rp_cli_main_help(stdout);
            return RP_CLI_EXIT_OK;
        }
        if (a[0] != '-') break;
        int g = rp_cli_global_opt(&cli, argc, argv, &i);
        if (g < 0) return RP_CLI_EXIT_USAGE;
        if (g == 0) {
            rp_cli_errorf(&cli, "unknown option '%s' (see rapport --help)", a);
            return RP_CLI_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        rp_cli_main_help(stderr);
        return RP_CLI_EXIT_USAGE;
    }
    const rp_cli_cmd *cmd = rp_cli_find_command(argv[i]);
    if (cmd == NULL) {
        rp_cli_errorf(&cli, "unknown command '%s' (see rapport --help)", argv[i]);
        return RP_CLI_EXIT_USAGE;
    }
    int code = cmd->run(&cli, cmd, argc - i, argv + i);
    if (fflush(stdout) != 0 && code == RP_CLI_EXIT_OK) {
        rp_cli_errorf(&cli, "cannot write the output");
        code = RP_CLI_EXIT_ERROR;
    }
    return code;
}
