/* cmd_backup.c — `rapport backup DIR`: a consistent online copy of the store.
 *
 * Both backends run the api's `backup` operation (api/ops_admin.c, over
 * store/backup.h), so the rules are the same everywhere: DIR must not exist
 * yet or be empty, the copy is DIR/data.mdb, written under a temporary name
 * and renamed once complete and fsynced.
 *
 *   - server (--server ADDR): rapportd writes the copy, DIR is a path on the
 *     server's machine and must be absolute; needs the admin role. The
 *     time-out is raised to RP_CLI_BACKUP_TIMEOUT_MS (one hour: a large
 *     store takes minutes).
 *   - local (--data D): the store is opened read-only (safe beside a
 *     running rapportd) and copied by this process; a relative DIR is taken
 *     relative to the current directory.
 *
 * Output: "backup: PATH (N bytes, M ms)", or the result map with --json.
 */
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/conn.h"
#include "cli/render.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "model/codec.h"

#define RP_CLI_BACKUP_TIMEOUT_MS (3600u * 1000u) /* connect and reply */

static int show_backup(rp_cli *cli, const msgpack_object *r, void *arg) {
    (void)arg;
    if (cli->json) {
        rp_errbuf eb = {0};
        rp_err rc = rp_cli_print_json(cli->out, r, &eb);
        return rc == RP_OK ? RP_CLI_EXIT_OK : rp_cli_fail(cli, rc, &eb);
    }
    const msgpack_object *path = rp_mp_get(r, "path");
    const msgpack_object *bytes = rp_mp_get(r, "bytes");
    const msgpack_object *ms = rp_mp_get(r, "duration_ms");
    if (path == NULL || path->type != MSGPACK_OBJECT_STR || bytes == NULL ||
        bytes->type != MSGPACK_OBJECT_POSITIVE_INTEGER || ms == NULL ||
        ms->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        rp_cli_render_kv(cli, r);
        return RP_CLI_EXIT_OK;
    }
    fprintf(cli->out, "backup: %.*s (%llu bytes, %llu ms)\n", (int)path->via.str.size,
            path->via.str.ptr, (unsigned long long)bytes->via.u64, (unsigned long long)ms->via.u64);
    return RP_CLI_EXIT_OK;
}

int rp_cli_cmd_backup(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    const char *pos[1];
    int npos = 0;
    bool help;
    if (rp_cli_parse(cli, cmd, NULL, argc, argv, pos, 1, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    if (npos != 1) return rp_cli_usage_error(cli, cmd, "give the backup directory DIR");
    const char *dir = pos[0];
    char abs[RP_PATH_MAX];
    if (dir[0] == '\0') return rp_cli_usage_error(cli, cmd, "DIR is empty");
    if (dir[0] != '/') {
        if (cli->data_dir == NULL)
            return rp_cli_usage_error(cli, cmd,
                                      "DIR must be an absolute path on the server's machine (got '%s')",
                                      dir);
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof cwd) == NULL) {
            rp_cli_errorf(cli, "cannot read the current directory");
            return RP_CLI_EXIT_ERROR;
        }
        int w = snprintf(abs, sizeof abs, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, dir);
        if (w < 0 || (size_t)w >= sizeof abs)
            return rp_cli_usage_error(cli, cmd, "DIR is too long");
        dir = abs;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    rp_mp_pack_cstr(&pk, "dir");
    rp_mp_pack_cstr(&pk, dir);
    if (cli->timeout_ms < RP_CLI_BACKUP_TIMEOUT_MS) cli->timeout_ms = RP_CLI_BACKUP_TIMEOUT_MS;
    int code = rp_cli_run_op(cli, RP_CLI_READ, "backup", sb.data, sb.size, show_backup, NULL);
    msgpack_sbuffer_destroy(&sb);
    return code;
}
