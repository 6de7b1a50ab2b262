/* args.c — the CLI's command table, option parsing, help and exit codes.
 *
 * Options are long only (`--phone X` or `--phone=X`), declared per command
 * in a small table (rp_cli_opt) that serves both the parser and the help
 * text, so the two cannot drift apart. Global options (--server, --token,
 * --data, --json, --config) are accepted before the command and anywhere
 * among its arguments; `--` ends options (for an id that starts with a
 * dash). A repeated option keeps its last value, as most tools do.
 *
 * Output streams: colors only when stdout is a terminal and NO_COLOR is not
 * set to a non-empty value (https://no-color.org); progress lines only when
 * stderr is a terminal; lines are cut to the terminal's width only on a
 * terminal, never in a pipe.
 */
#include "cli/cli.h"
#include "cli/args.h"
#include "cli/cmds.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* --- the command table ------------------------------------------------------- */

const rp_cli_cmd rp_cli_commands[] = {
    {"context", "(--phone NUMBER | --email ADDRESS | --account ID | --id ID) [--at TIME]",
     "show the context card: who is calling and why they most likely call",
     "Prints the screen-pop card: the header (name, tier, language), LIKELY REASONS\n"
     "(score, topic, evidence), CUES, WHO, RECENT EVENTS, OPEN ISSUES and ATTRIBUTES.\n"
     "Phones may be in any format (+1 (415) 555-1212, 415.555.1212, tel:+14155551212).\n"
     "An unknown phone/email/account prints the first-contact card and exits 1;\n"
     "an ambiguous one (a shared household line) lists the candidates.",
     rp_cli_cmd_context},
    {"route", "--phone NUMBER [--at TIME]", "show the IVR routing answer for a caller's phone",
     "Prints found, ambiguous, customer_id, language, tier, priority, intent, issue_id\n"
     "and last_agent. An unknown number is an answer (found: false) and exits 1.",
     rp_cli_cmd_route},
    {"get", "ID", "show a customer's profile", NULL, rp_cli_cmd_get},
    {"history", "ID [--limit N] [--before CURSOR]", "list a customer's events, newest first",
     "Prints one page (default 20, at most 200 events) and, when there are more, the\n"
     "cursor to pass as --before for the next page.",
     rp_cli_cmd_history},
    {"issues", "ID", "list a customer's issues", NULL, rp_cli_cmd_issues},
    {"lookup", "(--phone NUMBER | --email ADDRESS | --account ID)",
     "find the customers a phone, email or account belongs to",
     "Exits 1 when nobody has that key.", rp_cli_cmd_lookup},
    {"put", "[JSON | -]", "create or replace a customer (JSON object with its id)",
     "The customer is read from the argument, or from stdin when it is '-' or absent.\n"
     "Example: rapport put '{\"id\":\"c1\",\"name\":\"Ana Lopez\",\"phones\":[\"415 555 1212\"]}'",
     rp_cli_cmd_put},
    {"patch", "ID [JSON | -]", "change some fields of a customer (JSON merge patch)",
     "Fields present replace the stored ones, null clears a field, preferences merge\n"
     "key by key. Example: rapport patch c1 '{\"tier\":\"gold\"}'",
     rp_cli_cmd_patch},
    {"event", "ID [JSON | -]", "append an event to a customer's history",
     "customer_id is taken from ID. Example:\n"
     "  rapport event c1 '{\"ts\":1732350000,\"channel\":\"phone\",\"kind\":\"contact\",\n"
     "                     \"topic\":\"billing\",\"outcome\":\"resolved\"}'",
     rp_cli_cmd_event},
    {"issue", "ID [JSON | -]", "create or replace an issue of a customer",
     "customer_id is taken from ID. Example:\n"
     "  rapport issue c1 '{\"issue_id\":\"T-1\",\"topic\":\"delivery\",\"status\":\"open\"}'",
     rp_cli_cmd_issue},
    {"forget", "ID", "erase a customer and every trace of them (privacy request)", NULL,
     rp_cli_cmd_forget},
    {"merge", "FROM INTO", "fold duplicate customer FROM into INTO (FROM becomes an alias)",
     NULL, rp_cli_cmd_merge},
    {"import", "FILE | - [--strict] [--allow-skips] [--batch N]", "import NDJSON records (customers, events, issues, aliases)",
     "One JSON object per line with \"type\": \"customer\", \"event\", \"issue\" or\n"
     "\"alias\" (the format export writes; a customer before its other lines).\n"
     "Through the server in batches of 500 records, or with --data straight into\n"
     "the data directory in batches of 5,000.\n"
     "A bad line (invalid JSON, or refused by the server) is reported on stderr with\n"
     "its line number and skipped; the import goes on, then exits 3 if any record\n"
     "was skipped, unless --allow-skips (skipping is intended: exit 0). With\n"
     "--strict the import stops at the first bad line, with the records before it\n"
     "imported and nothing after it (exit 3). A UTF-8 BOM opening the file is ignored.\n"
     "A summary (imported, skipped, seconds, records/s) is printed on stderr.",
     rp_cli_cmd_import},
    {"export", "[FILE | -]", "export every customer with events, issues and aliases as NDJSON",
     "Writes to FILE, or to stdout. export -> import into an empty store -> export\n"
     "gives the same bytes.",
     rp_cli_cmd_export},
    {"backup", "DIR", "copy the live store into DIR (consistent, online; restore with --data DIR)",
     "DIR must not exist yet (it is created 0700) or be an empty directory: a backup never\n"
     "overwrites. The copy is DIR/data.mdb, compacted, written under a temporary name and\n"
     "renamed only when complete and flushed. Through the server (admin role) DIR is an\n"
     "absolute path on the server's machine; with --data D the store is opened read-only\n"
     "(safe while rapportd runs on it) and copied by this process. To restore: stop\n"
     "rapportd and start it with --data DIR.",
     rp_cli_cmd_backup},
    {"stats", "", "show record counts, map size and writer counters", NULL, rp_cli_cmd_stats},
    {"ping", "", "check that the server (or data directory) answers", NULL, rp_cli_cmd_ping},
    {"demo", "[--customers N] [--seed S] [--now TIME] [--events MIN-MAX]",
     "write a realistic synthetic data set as NDJSON to stdout",
     "Deterministic: the same seed and --now give the same bytes. Customer i with\n"
     "i % 8 == 0 has a delayed delivery, repeated contacts and a missed callback.\n"
     "Needs no server. Example: rapport demo --customers 1000 | rapport import -",
     rp_cli_cmd_demo},
    {"backtest", "[--since TIME] [--until TIME] [--sample N] [--seed S] [--threads N]",
     "measure the card's guess on the store's own past contacts (needs --data)",
     "For each contact (kind contact) in the window, or a seeded sample of them, the card\n"
     "is built as of 1 s before it and its likely reasons are compared with the contact's\n"
     "topic: top-1 and top-3 accuracy and coverage, overall, by topic and by the signal\n"
     "that ranked first, the most frequent confusions, and beside them a baseline that\n"
     "guesses the customer's most frequent past topic. Contacts without a topic are\n"
     "skipped and counted; first contacts (no earlier event) are reported apart. Issues\n"
     "are read as stored now (there is no issue history). Opens --data DIR read-only\n"
     "(safe beside rapportd); --server is refused. Uses 2 threads by default; the result\n"
     "does not depend on the thread count.",
     rp_cli_cmd_backtest},
    {"tune", "[--seed S] [--trials N] [--customers N] [--threads N]",
     "search the card's weights and half-lives on past contacts (needs --data)",
     "Random search then coordinate refinement over the six weight_* (0..2) and six\n"
     "halflife_*_h (1..4000 hours) settings, maximizing top-1 (ties: top-3) on a training\n"
     "split of customers (7 in 10, by a hash of the id); reports the held-out split for\n"
     "the current settings, the best found and the baseline, and prints the config lines\n"
     "to use. Deterministic for a seed. Never changes the config; when the best found is\n"
     "not better on the held-out split it says the current settings stay.",
     rp_cli_cmd_tune},
    {NULL, NULL, NULL, NULL, NULL},
};

const rp_cli_cmd *rp_cli_find_command(const char *name) {
    for (const rp_cli_cmd *c = rp_cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0) return c;
    return NULL;
}

/* --- run state and messages ------------------------------------------------------ */

/* Is NO_COLOR set to something (https://no-color.org: any non-empty value)? */
static bool no_color(void) {
    const char *v = getenv("NO_COLOR");
    return v != NULL && v[0] != '\0';
}

void rp_cli_init(rp_cli *cli, FILE *out, FILE *err) {
    memset(cli, 0, sizeof *cli);
    const char *srv = getenv("RAPPORT_SERVER"); /* a --server flag, parsed later, wins */
    cli->server = (srv && srv[0]) ? srv : RP_CLI_DEFAULT_SERVER;
    const char *tok = getenv("RAPPORT_TOKEN");
    cli->token = (tok && tok[0]) ? tok : NULL;
    cli->out = out;
    cli->err = err;
    cli->prog = "rapport";
    cli->timeout_ms = 60000;
    int ofd = fileno(out), efd = fileno(err);
    bool tty = ofd >= 0 && isatty(ofd);
    cli->color = tty && !no_color();
    cli->progress = efd >= 0 && isatty(efd);
    if (tty) {
        struct winsize ws;
        cli->width = (ioctl(ofd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) ? ws.ws_col : 80;
    }
}

void rp_cli_errorf(const rp_cli *cli, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(cli->err, "%s: ", cli->prog);
    vfprintf(cli->err, fmt, ap);
    fputc('\n', cli->err);
    va_end(ap);
}

int rp_cli_exit_for(rp_err rc) {
    switch (rc) {
    case RP_OK: return RP_CLI_EXIT_OK;
    case RP_NOT_FOUND: return RP_CLI_EXIT_NOT_FOUND;
    case RP_BAD_REQUEST:
    case RP_TOO_LARGE: return RP_CLI_EXIT_USAGE;
    default: return RP_CLI_EXIT_ERROR;
    }
}

int rp_cli_fail(const rp_cli *cli, rp_err rc, const rp_errbuf *eb) {
    rp_cli_errorf(cli, "%s: %s", rp_err_code(rc), eb ? rp_errbuf_msg(eb) : rp_err_text(rc));
    return rp_cli_exit_for(rc);
}

bool rp_cli_parse_int(const char *s, int64_t min, int64_t max, int64_t *out) {
    if (s == NULL || *s == '\0') return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) return false;
    *out = (int64_t)v;
    return true;
}

int rp_cli_opt_int(const rp_cli *cli, const rp_cli_cmd *cmd, const char *name, const char *s,
                   int64_t min, int64_t max, const char *want, int64_t *out) {
    if (s == NULL) return RP_CLI_EXIT_OK;
    if (!rp_cli_parse_int(s, min, max, out))
        return rp_cli_usage_error(cli, cmd, "--%s must be %s (got '%s')", name, want, s);
    return RP_CLI_EXIT_OK;
}

/* --- parsing ------------------------------------------------------------------------ */

/* Does arg name option `name` ("--name" or "--name=...")? *val gets the
 * inline value or NULL. */
static bool opt_match(const char *arg, const char *name, const char **val) {
    if (arg[0] != '-' || arg[1] != '-') return false;
    size_t n = strlen(name);
    if (strncmp(arg + 2, name, n) != 0) return false;
    if (arg[2 + n] == '\0') {
        *val = NULL;
        return true;
    }
    if (arg[2 + n] == '=') {
        *val = arg + 3 + n;
        return true;
    }
    return false;
}

/* Take the value of an option: inline, or the next argument. */
static bool opt_value(int argc, char **argv, int *i, const char *inl, const char **out) {
    if (inl) {
        *out = inl;
        return true;
    }
    if (*i + 1 >= argc) return false;
    *out = argv[++*i];
    return true;
}

int rp_cli_global_opt(rp_cli *cli, int argc, char **argv, int *i) {
    static const char *const valued[] = {"server", "token", "data", "config"};
    const char *arg = argv[*i], *inl = NULL;
    const char **dst[] = {&cli->server, &cli->token, &cli->data_dir, &cli->config_path};
    for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) {
        if (!opt_match(arg, valued[k], &inl)) continue;
        if (!opt_value(argc, argv, i, inl, dst[k])) {
            rp_cli_errorf(cli, "--%s needs a value (see rapport --help)", valued[k]);
            return -1;
        }
        return 1;
    }
    if (opt_match(arg, "json", &inl) && inl == NULL) {
        cli->json = true;
        return 1;
    }
    return 0;
}

/* Append s to out (at *o, capacity n) as one shell word: bare when it is
 * made of safe characters only, else in single quotes ('\'' for a quote). */
static void shell_word(char *out, size_t n, size_t *o, const char *s) {
    bool bare = s[0] != '\0';
    for (const char *p = s; *p && bare; p++)
        bare = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
               strchr("_./:@%+=,-", *p) != NULL;
    int w = bare ? snprintf(out + *o, n - *o, "%s", s) : snprintf(out + *o, n - *o, "'");
    if (w > 0) *o += (size_t)w < n - *o ? (size_t)w : n - *o - 1;
    for (const char *p = s; !bare && *p && *o + 5 < n; p++) {
        if (*p == '\'') {
            memcpy(out + *o, "'\\''", 4);
            *o += 4;
        } else {
            out[(*o)++] = *p;
        }
    }
    if (!bare && *o + 1 < n) out[(*o)++] = '\'';
    out[*o] = '\0';
}

void rp_cli_shell_word(char *out, size_t n, const char *s) {
    size_t o = 0;
    out[0] = '\0';
    shell_word(out, n, &o, s);
}

void rp_cli_rerun_flags(const rp_cli *cli, char *out, size_t n) {
    size_t o = 0;
    out[0] = '\0';
    const char *names[] = {"--data", "--config", "--server"};
    const char *vals[] = {cli->data_dir, cli->config_path,
                          cli->data_dir == NULL && strcmp(cli->server, RP_CLI_DEFAULT_SERVER) != 0 ? cli->server
                                                                                                   : NULL};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        if (vals[k] == NULL || o + strlen(names[k]) + 3 >= n) continue;
        o += (size_t)snprintf(out + o, n - o, " %s ", names[k]);
        shell_word(out, n, &o, vals[k]);
    }
}

static void usage_verror(const rp_cli *cli, const rp_cli_cmd *cmd, const char *fmt, va_list ap) {
    fprintf(cli->err, "%s %s: ", cli->prog, cmd->name);
    vfprintf(cli->err, fmt, ap);
    fprintf(cli->err, "\nusage: %s %s %s\n(see '%s %s --help')\n", cli->prog, cmd->name,
            cmd->usage, cli->prog, cmd->name);
}

int rp_cli_usage_error(const rp_cli *cli, const rp_cli_cmd *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    usage_verror(cli, cmd, fmt, ap);
    va_end(ap);
    return RP_CLI_EXIT_USAGE;
}

/* rp_cli_usage_error for rp_cli_parse: prints the same, returns RP_BAD_REQUEST. */
static rp_err parse_error(const rp_cli *cli, const rp_cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static rp_err parse_error(const rp_cli *cli, const rp_cli_cmd *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    usage_verror(cli, cmd, fmt, ap);
    va_end(ap);
    return RP_BAD_REQUEST;
}

rp_err rp_cli_parse(rp_cli *cli, const rp_cli_cmd *cmd, const rp_cli_opt *opts, int argc, char **argv,
                    const char **pos, int maxpos, int *npos, bool *help) {
    *npos = 0;
    *help = false;
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *inl = NULL;
        if (!only_pos && strcmp(arg, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (!only_pos && arg[0] == '-' && arg[1] != '\0') {
            if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
                rp_cli_command_help(cmd, opts, cli->out);
                *help = true;
                return RP_OK;
            }
            int g = rp_cli_global_opt(cli, argc, argv, &i);
            if (g < 0) return RP_BAD_REQUEST;
            if (g > 0) continue;
            const rp_cli_opt *o = opts;
            for (; o && o->name; o++)
                if (opt_match(arg, o->name, &inl)) break;
            if (o == NULL || o->name == NULL)
                return parse_error(cli, cmd, "unknown option '%s'", arg);
            if (o->arg == NULL) {
                if (inl) return parse_error(cli, cmd, "--%s takes no value", o->name);
                *o->value = "1";
            } else if (!opt_value(argc, argv, &i, inl, o->value)) {
                return parse_error(cli, cmd, "--%s needs a value (%s)", o->name, o->arg);
            }
            continue;
        }
        if (*npos >= maxpos)
            return parse_error(cli, cmd, "unexpected argument '%s'", arg);
        pos[(*npos)++] = arg;
    }
    return RP_OK;
}

/* --- help ------------------------------------------------------------------------------ */

static const char global_help[] =
    "global options (before or after the command):\n"
    "  --server HOST:PORT  rapportd's MessagePack-RPC address (default: $RAPPORT_SERVER,\n"
    "                      else 127.0.0.1:7070)\n"
    "  --token TOKEN       bearer token (default: $RAPPORT_TOKEN)\n"
    "  --data DIR          no server: open the data directory directly (reading\n"
    "                      commands open it read-only, safe while rapportd runs)\n"
    "  --config FILE       settings for --data mode (key = value lines, as rapportd's)\n"
    "  --json              print the result as JSON (the HTTP API's JSON)\n";

static const char exit_help[] =
    "exit codes:\n"
    "  0  ok\n"
    "  1  not found (NOT_FOUND, or found: false for context, route and lookup)\n"
    "  2  usage error (bad arguments, or a request refused as BAD_REQUEST/TOO_LARGE)\n"
    "  3  server or store error (cannot connect, UNAVAILABLE, INTERNAL, STORE_FULL,\n"
    "     UNAUTHORIZED, FORBIDDEN, CONFLICT; an import stopped by --strict, or that\n"
    "     skipped records without --allow-skips)\n"
    "  130  an import interrupted by Ctrl-C (the summary says what was written)\n";

void rp_cli_command_help(const rp_cli_cmd *cmd, const rp_cli_opt *opts, FILE *f) {
    fprintf(f, "usage: rapport %s %s\n\n%s.\n", cmd->name, cmd->usage, cmd->summary);
    if (cmd->details) fprintf(f, "\n%s\n", cmd->details);
    if (opts && opts->name) {
        fprintf(f, "\noptions:\n");
        for (const rp_cli_opt *o = opts; o->name; o++) {
            char head[64];
            snprintf(head, sizeof head, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
            fprintf(f, "  %-22s %s\n", head, o->help);
        }
    }
    fprintf(f, "\n%s\n%s", global_help, exit_help);
}

void rp_cli_main_help(FILE *f) {
    fprintf(f, "usage: rapport [global options] COMMAND [options]\n\n"
               "rapport is the command-line tool of rapportd, the customer-memory cache: look\n"
               "at one customer, search, import, export, forget, stats.\n\ncommands:\n");
    for (const rp_cli_cmd *c = rp_cli_commands; c->name; c++)
        fprintf(f, "  %-9s %s\n", c->name, c->summary);
    fprintf(f, "\nRun 'rapport COMMAND --help' for a command's options.\n\n%s\n%s", global_help,
            exit_help);
    fprintf(f, "\nenvironment:\n"
               "  RAPPORT_SERVER server address when --server is not given\n"
               "  RAPPORT_TOKEN  bearer token when --token is not given\n"
               "  (a flag always wins over its environment variable)\n"
               "  NO_COLOR       when set (non-empty), no ANSI colors even on a terminal\n");
}
