/* cmd_write.c — the writing commands: put, patch, event, issue, forget, merge.
 *
 * put, patch, event and issue take one JSON object, from their argument or
 * from stdin ('-' or no argument), parse it with jansson through
 * net/json.h (the limits are the server's defaults, or the --config
 * file's) and wrap it in the params the api expects:
 *
 *   put CUSTOMER            customer.put   {id: CUSTOMER.id, customer}
 *   patch ID PATCH          customer.patch {id, patch}
 *   event ID EVENT          event.append   {event: EVENT + customer_id: ID}
 *   issue ID ISSUE          issue.put      {issue: ISSUE + customer_id: ID}
 *   forget ID               customer.forget {id}
 *   merge FROM INTO         customer.merge {from, into}
 *
 * put and patch accept --expect-version N (optimistic concurrency: CONFLICT
 * when the stored version differs; 0 means "must not exist yet"). forget
 * asks for confirmation when stdin is a terminal, unless --yes is given.
 * Every value is validated by the api, not here: the CLI only checks that
 * it has an object and an id.
 */
#include "cli/args.h"
#include "cli/conn.h"
#include "cli/render.h"
#include "cli/cmds.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/codec.h"
#include "net/json.h"

/* --- reading the JSON argument ----------------------------------------------------- */

/* Read all of stdin, at most max bytes, into a malloc'd buffer. */
static rp_err read_stdin(size_t max, char **out, size_t *len, rp_errbuf *eb) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory");
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                free(buf);
                return rp_errf(eb, RP_TOO_LARGE, "the JSON on stdin is larger than %zu bytes", max);
            }
            char *b = realloc(buf, cap * 2);
            if (b == NULL) {
                free(buf);
                return rp_errf(eb, RP_UNAVAILABLE, "out of memory");
            }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return rp_errf(eb, RP_UNAVAILABLE, "cannot read stdin");
    }
    *out = buf;
    *len = n;
    return RP_OK;
}

/* The parsed JSON object of a command, as msgpack, unpacked. */
typedef struct json_arg {
    msgpack_sbuffer sb;
    msgpack_zone zone;
    msgpack_object obj;
} json_arg;

static void json_arg_free(json_arg *j) {
    msgpack_sbuffer_destroy(&j->sb);
    msgpack_zone_destroy(&j->zone);
}

/* Parse the JSON text of one object into j (msgpack bytes of j->sb,
 * unpacked into j->obj).
 * Returns RP_OK, or the error (sentence in eb, j left empty). */
static rp_err json_arg_parse(const rp_mpcheck_limits *lim, const char *text, size_t len,
                             json_arg *j, rp_errbuf *eb) {
    msgpack_sbuffer_init(&j->sb);
    if (!msgpack_zone_init(&j->zone, 4096)) {
        msgpack_sbuffer_destroy(&j->sb);
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory");
    }
    rp_err rc = rp_json_to_msgpack(text, len, lim, &j->sb, eb);
    size_t off = 0;
    if (rc == RP_OK &&
        msgpack_unpack(j->sb.data, j->sb.size, &off, &j->zone, &j->obj) != MSGPACK_UNPACK_SUCCESS)
        rc = rp_errf(eb, RP_INTERNAL, "the JSON could not be converted");
    if (rc == RP_OK && j->obj.type != MSGPACK_OBJECT_MAP)
        rc = rp_errf(eb, RP_BAD_REQUEST, "the JSON must be an object ({...}), not another value");
    if (rc != RP_OK) json_arg_free(j);
    return rc;
}

/* Read the command's JSON object from text (NULL or "-": stdin) into j.
 * Returns -1 on success (the caller frees j), else an exit code after
 * printing the error (j holds nothing). */
static int json_arg_read(rp_cli *cli, const rp_cli_cmd *cmd, const char *text, json_arg *j) {
    rp_errbuf eb = {0};
    rp_config cfg;
    rp_err rc = rp_cli_config(cli, &cfg, &eb);
    if (rc != RP_OK) return rp_cli_fail(cli, rc, &eb);
    rp_mpcheck_limits lim = rp_mpcheck_limits_from_config(&cfg);
    char *buf = NULL;
    size_t len = 0;
    if (text == NULL || strcmp(text, "-") == 0) {
        if (isatty(STDIN_FILENO))
            fprintf(cli->err, "%s %s: reading JSON from stdin (end with Ctrl-D)\n", cli->prog,
                    cmd->name);
        if ((rc = read_stdin(lim.max_bytes, &buf, &len, &eb)) != RP_OK)
            return rp_cli_fail(cli, rc, &eb);
        text = buf;
    } else {
        len = strlen(text);
    }
    rc = json_arg_parse(&lim, text, len, j, &eb);
    free(buf);
    if (rc != RP_OK) {
        if (rc == RP_BAD_REQUEST) rp_cli_errorf(cli, "%s: %s", cmd->name, rp_errbuf_msg(&eb));
        else rp_cli_errorf(cli, "%s: %s: %s", cmd->name, rp_err_code(rc), rp_errbuf_msg(&eb));
        return rp_cli_exit_for(rc);
    }
    return -1;
}

/* --- building params ---------------------------------------------------------------- */

typedef struct params {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} params;

static void params_init(params *p) {
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

/* Pack map o with "customer_id": id set: an existing customer_id must
 * equal id (a usage error otherwise). Returns -1 or an exit code. */
static int pack_with_customer(rp_cli *cli, const rp_cli_cmd *cmd, msgpack_packer *pk,
                              const msgpack_object *o, const char *id) {
    const msgpack_object *have = rp_mp_get(o, "customer_id");
    size_t idn = strlen(id);
    if (have && have->type != MSGPACK_OBJECT_NIL &&
        (have->type != MSGPACK_OBJECT_STR || have->via.str.size != idn ||
         memcmp(have->via.str.ptr, id, idn) != 0))
        return rp_cli_usage_error(cli, cmd, "the JSON's customer_id differs from ID '%s'", id);
    uint32_t n = o->via.map.size - (have ? 1 : 0);
    msgpack_pack_map(pk, (size_t)n + 1);
    rp_mp_pack_cstr(pk, "customer_id");
    rp_mp_pack_cstr(pk, id);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (&kv->val == have) continue;
        msgpack_pack_object(pk, kv->key);
        msgpack_pack_object(pk, kv->val);
    }
    return -1;
}

/* Show a write's result: JSON, or key: value. */
static int show_write(rp_cli *cli, const msgpack_object *r, void *arg) {
    (void)arg;
    if (cli->json) {
        rp_errbuf eb = {0};
        rp_err rc = rp_cli_print_json(cli->out, r, &eb);
        if (rc != RP_OK) return rp_cli_fail(cli, rc, &eb);
    } else {
        rp_cli_render_kv(cli, r);
    }
    if (fflush(cli->out) != 0) {
        rp_cli_errorf(cli, "cannot write the output");
        return RP_CLI_EXIT_ERROR;
    }
    return RP_CLI_EXIT_OK;
}

static int run_write(rp_cli *cli, const char *method, params *p) {
    int code = rp_cli_run_op(cli, RP_CLI_WRITE, method, p->sb.data, p->sb.size, show_write, NULL);
    msgpack_sbuffer_destroy(&p->sb);
    return code;
}

/* Parse --expect-version. */
static int parse_expect(rp_cli *cli, const rp_cli_cmd *cmd, const char *s, int64_t *v) {
    if (!rp_cli_parse_int(s, 0, INT64_MAX, v))
        return rp_cli_usage_error(cli, cmd, "--expect-version must be a version number (got '%s')", s);
    return -1;
}

/* --- the commands ------------------------------------------------------------------- */

int rp_cli_cmd_put(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    const char *expect_s = NULL;
    const rp_cli_opt opts[] = {
        {"expect-version", "N", "fail with CONFLICT unless the stored version is N (0: new)", &expect_s},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos, code;
    bool help;
    if (rp_cli_parse(cli, cmd, opts, argc, argv, pos, 1, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    int64_t expect = 0;
    if (expect_s && (code = parse_expect(cli, cmd, expect_s, &expect)) >= 0) return code;
    json_arg j;
    if ((code = json_arg_read(cli, cmd, npos ? pos[0] : NULL, &j)) >= 0) return code;
    const msgpack_object *id = rp_mp_get(&j.obj, "id");
    if (id == NULL || id->type != MSGPACK_OBJECT_STR || id->via.str.size == 0) {
        json_arg_free(&j);
        return rp_cli_usage_error(cli, cmd, "the customer needs an \"id\" (a string)");
    }
    params p;
    params_init(&p);
    msgpack_pack_map(&p.pk, expect_s ? 3 : 2);
    rp_mp_pack_cstr(&p.pk, "id");
    msgpack_pack_object(&p.pk, *id);
    rp_mp_pack_cstr(&p.pk, "customer");
    msgpack_pack_object(&p.pk, j.obj);
    if (expect_s) {
        rp_mp_pack_cstr(&p.pk, "expect_version");
        msgpack_pack_uint64(&p.pk, (uint64_t)expect);
    }
    json_arg_free(&j);
    return run_write(cli, "customer.put", &p);
}

int rp_cli_cmd_patch(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    const char *expect_s = NULL;
    const rp_cli_opt opts[] = {
        {"expect-version", "N", "fail with CONFLICT unless the stored version is N", &expect_s},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[2];
    int npos, code;
    bool help;
    if (rp_cli_parse(cli, cmd, opts, argc, argv, pos, 2, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    if (npos < 1) return rp_cli_usage_error(cli, cmd, "give a customer ID");
    int64_t expect = 0;
    if (expect_s && (code = parse_expect(cli, cmd, expect_s, &expect)) >= 0) return code;
    json_arg j;
    if ((code = json_arg_read(cli, cmd, npos > 1 ? pos[1] : NULL, &j)) >= 0) return code;
    params p;
    params_init(&p);
    msgpack_pack_map(&p.pk, expect_s ? 3 : 2);
    rp_mp_pack_cstr(&p.pk, "id");
    rp_mp_pack_cstr(&p.pk, pos[0]);
    rp_mp_pack_cstr(&p.pk, "patch");
    msgpack_pack_object(&p.pk, j.obj);
    if (expect_s) {
        rp_mp_pack_cstr(&p.pk, "expect_version");
        msgpack_pack_uint64(&p.pk, (uint64_t)expect);
    }
    json_arg_free(&j);
    return run_write(cli, "customer.patch", &p);
}

/* event and issue: ID plus a JSON object that gets customer_id = ID. */
static int record_command(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv,
                          const char *method, const char *key) {
    const char *pos[2];
    int npos, code;
    bool help;
    if (rp_cli_parse(cli, cmd, NULL, argc, argv, pos, 2, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    if (npos < 1) return rp_cli_usage_error(cli, cmd, "give a customer ID");
    json_arg j;
    if ((code = json_arg_read(cli, cmd, npos > 1 ? pos[1] : NULL, &j)) >= 0) return code;
    params p;
    params_init(&p);
    msgpack_pack_map(&p.pk, 1);
    rp_mp_pack_cstr(&p.pk, key);
    code = pack_with_customer(cli, cmd, &p.pk, &j.obj, pos[0]);
    json_arg_free(&j);
    if (code >= 0) {
        msgpack_sbuffer_destroy(&p.sb);
        return code;
    }
    return run_write(cli, method, &p);
}

int rp_cli_cmd_event(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    return record_command(cli, cmd, argc, argv, "event.append", "event");
}

int rp_cli_cmd_issue(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    return record_command(cli, cmd, argc, argv, "issue.put", "issue");
}

/* Ask "question [y/N]" on the terminal; true for y/yes. */
static bool confirm(rp_cli *cli, const char *question) {
    fprintf(cli->err, "%s [y/N] ", question);
    fflush(cli->err);
    char line[16];
    if (fgets(line, sizeof line, stdin) == NULL) return false;
    return line[0] == 'y' || line[0] == 'Y';
}

int rp_cli_cmd_forget(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    const char *yes = NULL;
    const rp_cli_opt opts[] = {
        {"yes", NULL, "do not ask for confirmation", &yes},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos;
    bool help;
    if (rp_cli_parse(cli, cmd, opts, argc, argv, pos, 1, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    if (npos != 1) return rp_cli_usage_error(cli, cmd, "give a customer ID");
    if (yes == NULL && isatty(STDIN_FILENO)) {
        char q[200];
        snprintf(q, sizeof q, "Erase customer %.64s and every trace of them (events, issues, "
                              "identities)?", pos[0]);
        if (!confirm(cli, q)) {
            rp_cli_errorf(cli, "forget: not confirmed; nothing was erased");
            return RP_CLI_EXIT_USAGE;
        }
    }
    params p;
    params_init(&p);
    msgpack_pack_map(&p.pk, 1);
    rp_mp_pack_cstr(&p.pk, "id");
    rp_mp_pack_cstr(&p.pk, pos[0]);
    return run_write(cli, "customer.forget", &p);
}

int rp_cli_cmd_merge(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    const char *pos[2];
    int npos;
    bool help;
    if (rp_cli_parse(cli, cmd, NULL, argc, argv, pos, 2, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    if (npos != 2) return rp_cli_usage_error(cli, cmd, "give FROM and INTO customer ids");
    params p;
    params_init(&p);
    msgpack_pack_map(&p.pk, 2);
    rp_mp_pack_cstr(&p.pk, "from");
    rp_mp_pack_cstr(&p.pk, pos[0]);
    rp_mp_pack_cstr(&p.pk, "into");
    rp_mp_pack_cstr(&p.pk, pos[1]);
    return run_write(cli, "customer.merge", &p);
}
