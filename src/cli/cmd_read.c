/* cmd_read.c — the reading commands: context, route, get, history, issues,
 * lookup, stats, ping.
 *
 * Each command parses its options, packs the params map of one api
 * operation, runs it (rp_cli_run_op, read-only access) and shows the
 * result: --json prints the HTTP face's JSON, otherwise render.c's text.
 * Checks that need no data (exactly one key, integer ranges) are done here
 * so that a mistyped command line is a usage error (exit 2) even when no
 * server is running; everything else is the api's to judge.
 */
#include "cli/args.h"
#include "cli/conn.h"
#include "cli/render.h"
#include "cli/cmds.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "model/codec.h"

/* --- packing params ---------------------------------------------------------------- */

/* A params map under construction. */
typedef struct params {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} params;

static void params_init(params *p) {
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void params_str(params *p, const char *key, const char *val) {
    rp_mp_pack_cstr(&p->pk, key);
    rp_mp_pack_cstr(&p->pk, val);
}

static void params_int(params *p, const char *key, int64_t v) {
    rp_mp_pack_cstr(&p->pk, key);
    msgpack_pack_int64(&p->pk, v);
}

/* --- showing results ------------------------------------------------------------------ */

/* What a show function needs besides the result. */
typedef enum show_kind {
    SHOW_CARD, SHOW_ROUTE, SHOW_CUSTOMER, SHOW_HISTORY, SHOW_ISSUES, SHOW_LOOKUP, SHOW_KV
} show_kind;

/* Exit 1 for an answer that says nobody was found. */
static int found_code(const msgpack_object *r) {
    const msgpack_object *f = rp_mp_get(r, "found");
    if (f && f->type == MSGPACK_OBJECT_BOOLEAN && !f->via.boolean) return RP_CLI_EXIT_NOT_FOUND;
    return RP_CLI_EXIT_OK;
}

/* Print result in the form kind asks for (or JSON) and pick the exit code. */
static int show(rp_cli *cli, const msgpack_object *r, void *arg) {
    show_kind kind = *(const show_kind *)arg;
    if (cli->json) {
        rp_errbuf eb = {0};
        rp_err rc = rp_cli_print_json(cli->out, r, &eb);
        if (rc != RP_OK) return rp_cli_fail(cli, rc, &eb);
    } else {
        switch (kind) {
        case SHOW_CARD: rp_cli_render_card(cli, r); break;
        case SHOW_CUSTOMER: rp_cli_render_customer(cli, r); break;
        case SHOW_HISTORY: rp_cli_render_history(cli, r, (int64_t)time(NULL)); break;
        case SHOW_ISSUES: rp_cli_render_issues(cli, r, (int64_t)time(NULL)); break;
        case SHOW_LOOKUP: rp_cli_render_lookup(cli, r); break;
        case SHOW_ROUTE:
        case SHOW_KV: rp_cli_render_kv(cli, r); break;
        }
    }
    if (fflush(cli->out) != 0 || ferror(cli->out)) {
        rp_cli_errorf(cli, "cannot write the output");
        return RP_CLI_EXIT_ERROR;
    }
    if (kind == SHOW_CARD || kind == SHOW_ROUTE || kind == SHOW_LOOKUP) return found_code(r);
    return RP_CLI_EXIT_OK;
}

/* Run a read op with the params in p (destroyed here) and show it. */
static int run_read(rp_cli *cli, const char *method, params *p, show_kind kind) {
    int code = rp_cli_run_op(cli, RP_CLI_READ, method, p->sb.data, p->sb.size, show, &kind);
    msgpack_sbuffer_destroy(&p->sb);
    return code;
}

/* --- key options shared by context and lookup ------------------------------------------ */

/* Pack the one key option given (phone, email, account[, id]); a usage
 * error when none or several are. */
static int pack_key(rp_cli *cli, const rp_cli_cmd *cmd, params *p, const char *const *names,
                    const char *const *vals, int n, int extra) {
    int found = -1;
    for (int i = 0; i < n; i++) {
        if (vals[i] == NULL) continue;
        if (found >= 0)
            return rp_cli_usage_error(cli, cmd, "give only one of --%s and --%s", names[found],
                                      names[i]);
        found = i;
    }
    if (found < 0) return rp_cli_usage_error(cli, cmd, "give a key: --%s%s", names[0],
                                             n > 3 ? ", --email, --account or --id" : ", --email or --account");
    msgpack_pack_map(&p->pk, (size_t)1 + (size_t)extra);
    params_str(p, names[found], vals[found]);
    return -1;
}

/* Parse --at: unix seconds >= 0. */
static int parse_at(rp_cli *cli, const rp_cli_cmd *cmd, const char *s, int64_t *at) {
    if (!rp_cli_parse_int(s, 0, INT64_MAX / 2, at))
        return rp_cli_usage_error(cli, cmd, "--at must be unix seconds (got '%s')", s);
    return -1;
}

/* --- the commands ---------------------------------------------------------------------- */

int rp_cli_cmd_context(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    const char *vals[4] = {NULL, NULL, NULL, NULL}, *at_s = NULL;
    static const char *const names[4] = {"phone", "email", "account", "id"};
    const rp_cli_opt opts[] = {
        {"phone", "NUMBER", "the caller's phone, any format", &vals[0]},
        {"email", "ADDRESS", "the customer's email", &vals[1]},
        {"account", "ID", "an external account id", &vals[2]},
        {"id", "ID", "a customer id (merged ids answer as the survivor)", &vals[3]},
        {"at", "TIME", "evaluate the card as of this moment (unix seconds)", &at_s},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos, code;
    bool help;
    if (rp_cli_parse(cli, cmd, opts, argc, argv, pos, 0, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    int64_t at = 0;
    if (at_s && (code = parse_at(cli, cmd, at_s, &at)) >= 0) return code;
    params p;
    params_init(&p);
    if ((code = pack_key(cli, cmd, &p, names, vals, 4, at_s ? 1 : 0)) >= 0) {
        msgpack_sbuffer_destroy(&p.sb);
        return code;
    }
    if (at_s) params_int(&p, "at", at);
    return run_read(cli, "context.get", &p, SHOW_CARD);
}

int rp_cli_cmd_route(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    const char *phone = NULL, *at_s = NULL;
    const rp_cli_opt opts[] = {
        {"phone", "NUMBER", "the caller's phone (ANI), any format", &phone},
        {"at", "TIME", "evaluate as of this moment (unix seconds)", &at_s},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos, code;
    bool help;
    if (rp_cli_parse(cli, cmd, opts, argc, argv, pos, 0, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    if (phone == NULL) return rp_cli_usage_error(cli, cmd, "--phone is required");
    int64_t at = 0;
    if (at_s && (code = parse_at(cli, cmd, at_s, &at)) >= 0) return code;
    params p;
    params_init(&p);
    msgpack_pack_map(&p.pk, at_s ? 2 : 1);
    params_str(&p, "phone", phone);
    if (at_s) params_int(&p, "at", at);
    return run_read(cli, "route.get", &p, SHOW_ROUTE);
}

/* Commands whose only argument is a customer id. */
static int id_command(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv, const char *method,
                      show_kind kind) {
    const char *pos[1];
    int npos;
    bool help;
    if (rp_cli_parse(cli, cmd, NULL, argc, argv, pos, 1, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    if (npos != 1) return rp_cli_usage_error(cli, cmd, "give a customer ID");
    params p;
    params_init(&p);
    msgpack_pack_map(&p.pk, 1);
    params_str(&p, "id", pos[0]);
    return run_read(cli, method, &p, kind);
}

int rp_cli_cmd_get(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    return id_command(cli, cmd, argc, argv, "customer.get", SHOW_CUSTOMER);
}

int rp_cli_cmd_issues(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    return id_command(cli, cmd, argc, argv, "issue.list", SHOW_ISSUES);
}

int rp_cli_cmd_history(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    const char *limit_s = NULL, *before = NULL;
    const rp_cli_opt opts[] = {
        {"limit", "N", "events per page, 1..200 (default 20)", &limit_s},
        {"before", "CURSOR", "continue after a page (the cursor it printed)", &before},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos;
    bool help;
    if (rp_cli_parse(cli, cmd, opts, argc, argv, pos, 1, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    if (npos != 1) return rp_cli_usage_error(cli, cmd, "give a customer ID");
    int64_t limit = 0;
    if (limit_s && !rp_cli_parse_int(limit_s, 1, 200, &limit))
        return rp_cli_usage_error(cli, cmd, "--limit must be 1..200 (got '%s')", limit_s);
    params p;
    params_init(&p);
    msgpack_pack_map(&p.pk, 1 + (limit_s ? 1 : 0) + (before ? 1 : 0));
    params_str(&p, "id", pos[0]);
    if (limit_s) params_int(&p, "limit", limit);
    if (before) params_str(&p, "before", before);
    char more[48];
    if (limit_s) { /* the next page the same size */
        snprintf(more, sizeof more, "--limit %d", (int)limit);
        cli->hint_args = more;
    }
    int code = run_read(cli, "history.list", &p, SHOW_HISTORY);
    cli->hint_args = NULL; /* it pointed here */
    return code;
}

int rp_cli_cmd_lookup(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    const char *vals[3] = {NULL, NULL, NULL};
    static const char *const names[3] = {"phone", "email", "account"};
    const rp_cli_opt opts[] = {
        {"phone", "NUMBER", "a phone number, any format", &vals[0]},
        {"email", "ADDRESS", "an email address", &vals[1]},
        {"account", "ID", "an external account id", &vals[2]},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos, code;
    bool help;
    if (rp_cli_parse(cli, cmd, opts, argc, argv, pos, 0, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    params p;
    params_init(&p);
    if ((code = pack_key(cli, cmd, &p, names, vals, 3, 0)) >= 0) {
        msgpack_sbuffer_destroy(&p.sb);
        return code;
    }
    return run_read(cli, "lookup", &p, SHOW_LOOKUP);
}

/* Commands with no arguments and a key: value result. */
static int plain_command(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv,
                         const char *method) {
    const char *pos[1];
    int npos;
    bool help;
    if (rp_cli_parse(cli, cmd, NULL, argc, argv, pos, 0, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    params p;
    params_init(&p);
    msgpack_pack_map(&p.pk, 0);
    return run_read(cli, method, &p, SHOW_KV);
}

int rp_cli_cmd_stats(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    return plain_command(cli, cmd, argc, argv, "stats");
}

/* ping's readable answer: who answered, how fast, and the server's clock. */
typedef struct ping_arg {
    double t0;
} ping_arg;

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int show_ping(rp_cli *cli, const msgpack_object *r, void *arg) {
    const ping_arg *pa = arg;
    if (cli->json) {
        show_kind k = SHOW_KV;
        return show(cli, r, &k);
    }
    int64_t t = 0;
    rp_mp_int(r, "time", &t, NULL);
    char when[32] = "?";
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(cli->out, "pong from %s%s in %.1f ms (its clock: %s UTC)\n",
            cli->data_dir ? "data directory " : "", cli->data_dir ? cli->data_dir : cli->server,
            mono_ms() - pa->t0, when);
    return RP_CLI_EXIT_OK;
}

int rp_cli_cmd_ping(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    const char *pos[1];
    int npos;
    bool help;
    if (rp_cli_parse(cli, cmd, NULL, argc, argv, pos, 0, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    ping_arg pa = {mono_ms()};
    char empty = (char)0x80; /* msgpack: an empty map */
    return rp_cli_run_op(cli, RP_CLI_READ, "ping", &empty, 1, show_ping, &pa);
}
