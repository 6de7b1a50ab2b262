/* cli/cmds.h — the commands, one function each (cmd_*.c, ndjson.c), for the table in args.c. */
#ifndef RP_CLI_CMDS_H
#define RP_CLI_CMDS_H

#include "cli/cli.h"

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
int rp_cli_cmd_demo(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_backup(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_backtest(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);
int rp_cli_cmd_tune(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv);

#endif
