/* cmd_backtest.c — `rapport backtest` and `rapport tune`: how good is the
 * card's guess on this store's own contacts, and which weights would do
 * better (context/backtest.h has the method).
 *
 * Both open the data directory read-only in this process (safe beside a
 * running rapportd) and work on two threads. Through a server they would
 * need an operation the RPC does not have, so --server is refused with a
 * sentence saying to use --data. Output: a readable table, or --json (one
 * object). Progress goes to stderr only when it is a terminal.
 */
#include "cli/args.h"
#include "cli/cmds.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "context/backtest.h"
#include "store/store.h"

/* --- shared --------------------------------------------------------------------- */

static int need_local(rp_cli *cli, const rp_cli_cmd *cmd) {
    if (cli->data_dir) return RP_CLI_EXIT_OK;
    return rp_cli_usage_error(cli, cmd,
                              "%s reads the store directly and has no server operation: run it "
                              "with --data DIR on the server's machine (read-only, safe while "
                              "rapportd runs)",
                              cmd->name);
}

static rp_err open_store(rp_cli *cli, rp_config *cfg, rp_store **s, rp_errbuf *eb) {
    rp_err rc = rp_cli_config(cli, cfg, eb);
    if (rc != RP_OK) return rc;
    rc = rp_store_open_readonly(cfg, s, eb);
    if (rc == RP_NOT_FOUND) return rp_errf(eb, RP_UNAVAILABLE, "no rapport store in %s", cli->data_dir);
    return rc;
}

static double pct(uint64_t a, uint64_t n) { return n ? 100.0 * (double)a / (double)n : 0.0; }

typedef struct prog {
    rp_cli *cli;
    const char *what;
} prog;

static void progress(void *arg, uint64_t done, uint64_t total) {
    const prog *p = arg;
    rp_cli *cli = p->cli;
    const char *what = p->what;
    if (done >= total)
        fprintf(cli->err, "\r\033[K");
    else
        fprintf(cli->err, "\r%s %" PRIu64 "/%" PRIu64 "\033[K", what, done, total);
    fflush(cli->err);
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_tally(FILE *f, const rp_bt_tally *t) {
    fprintf(f,
            "{\"n\":%" PRIu64 ",\"top1\":%" PRIu64 ",\"top3\":%" PRIu64 ",\"covered\":%" PRIu64
            ",\"top1_rate\":%.4f,\"top3_rate\":%.4f,\"coverage\":%.4f}",
            t->n, t->top1, t->top3, t->covered, pct(t->top1, t->n) / 100, pct(t->top3, t->n) / 100,
            pct(t->covered, t->n) / 100);
}

static int finish(rp_cli *cli) {
    if (fflush(cli->out) != 0 || ferror(cli->out)) {
        rp_cli_errorf(cli, "cannot write the output");
        return RP_CLI_EXIT_ERROR;
    }
    return RP_CLI_EXIT_OK;
}

static void tally_row(FILE *f, int w, const char *name, const rp_bt_tally *t) {
    fprintf(f, "  %-*s %9" PRIu64 "   %6.1f%%  %6.1f%%  %6.1f%%\n", w, name, t->n, pct(t->top1, t->n),
            pct(t->top3, t->n), pct(t->covered, t->n));
}

/* --- backtest ---------------------------------------------------------------------- */

#define CONFUSIONS_SHOWN 10

static void backtest_json(FILE *f, const rp_bt_opts *o, const rp_bt_result *r) {
    fprintf(f, "{\"customers\":%" PRIu64 ",\"contacts\":%" PRIu64 ",\"sampled\":%" PRIu64
               ",\"skipped_no_topic\":%" PRIu64 ",\"since\":%" PRId64 ",\"until\":",
            r->customers, r->contacts, r->sampled, r->no_topic, o->since);
    if (o->until == INT64_MAX)
        fputs("null", f);
    else
        fprintf(f, "%" PRId64, o->until);
    fputs(",\"card\":", f);
    json_tally(f, &r->card);
    fputs(",\"baseline\":", f);
    json_tally(f, &r->base);
    fputs(",\"first_contacts\":{\"card\":", f);
    json_tally(f, &r->first_card);
    fputs(",\"baseline\":", f);
    json_tally(f, &r->first_base);
    fputs("},\"by_topic\":[", f);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        fputs(i ? ",{\"topic\":" : "{\"topic\":", f);
        json_str(f, r->by_topic[i].name);
        fputs(",\"card\":", f);
        json_tally(f, &r->by_topic[i].card);
        fputs(",\"baseline\":", f);
        json_tally(f, &r->by_topic[i].base);
        fputc('}', f);
    }
    fputs("],\"by_signal\":[", f);
    bool first = true;
    for (unsigned g = 0; g <= RP_SIG__COUNT; g++) {
        if (r->by_signal[g].card.n == 0) continue;
        fputs(first ? "{\"signal\":" : ",{\"signal\":", f);
        first = false;
        json_str(f, r->by_signal[g].name);
        fputs(",\"card\":", f);
        json_tally(f, &r->by_signal[g].card);
        fputc('}', f);
    }
    fputs("],\"confusions\":[", f);
    for (uint32_t i = 0; i < r->nconfusions && i < 50; i++) {
        fputs(i ? ",{\"predicted\":" : "{\"predicted\":", f);
        json_str(f, r->confusions[i].predicted);
        fputs(",\"actual\":", f);
        json_str(f, r->confusions[i].actual);
        fprintf(f, ",\"n\":%" PRIu64 "}", r->confusions[i].n);
    }
    fputs("]}\n", f);
}

static void backtest_text(FILE *f, const rp_bt_opts *o, const rp_bt_result *r) {
    fprintf(f, "Backtest: %" PRIu64 " customers, %" PRIu64 " contacts in the window", r->customers,
            r->contacts);
    if (o->sample) fprintf(f, ", %" PRIu64 " sampled (seed %" PRIu64 ")", r->sampled, o->seed);
    fprintf(f, "; %" PRIu64 " without a topic skipped; %" PRIu64 " first contacts apart.\n",
            r->no_topic, r->first_card.n);
    fprintf(f, "Each card is built as of 1 s before the contact and its reasons are compared with the contact's topic.\n\n");
    fprintf(f, "  %-22s %9s   %7s  %7s  %7s\n", "", "contacts", "top-1", "top-3", "coverage");
    tally_row(f, 22, "card", &r->card);
    tally_row(f, 22, "baseline (habit)", &r->base);
    tally_row(f, 22, "first contacts: card", &r->first_card);
    tally_row(f, 22, "first contacts: base", &r->first_base);
    if (r->ntopics) {
        fprintf(f, "\nBy the contact's topic:\n  %-22s %9s   %7s  %7s  %7s\n", "topic", "contacts",
                "top-1", "top-3", "base-1");
        for (uint32_t i = 0; i < r->ntopics; i++) {
            const rp_bt_group *g = &r->by_topic[i];
            fprintf(f, "  %-22.22s %9" PRIu64 "   %6.1f%%  %6.1f%%  %6.1f%%\n", g->name, g->card.n,
                    pct(g->card.top1, g->card.n), pct(g->card.top3, g->card.n),
                    pct(g->base.top1, g->base.n));
        }
    }
    fprintf(f, "\nBy the signal that ranked first (top-1 is its precision):\n  %-22s %9s   %7s  %7s\n",
            "signal", "contacts", "top-1", "top-3");
    for (unsigned g = 0; g <= RP_SIG__COUNT; g++) {
        const rp_bt_group *x = &r->by_signal[g];
        if (x->card.n == 0) continue;
        fprintf(f, "  %-22s %9" PRIu64 "   %6.1f%%  %6.1f%%\n", x->name, x->card.n,
                pct(x->card.top1, x->card.n), pct(x->card.top3, x->card.n));
    }
    if (r->nconfusions) {
        fprintf(f, "\nMost frequent confusions (predicted -> actual):\n");
        for (uint32_t i = 0; i < r->nconfusions && i < CONFUSIONS_SHOWN; i++)
            fprintf(f, "  %-20s -> %-20s %9" PRIu64 "\n", r->confusions[i].predicted,
                    r->confusions[i].actual, r->confusions[i].n);
    }
}

int rp_cli_cmd_backtest(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    const char *since_s = NULL, *until_s = NULL, *sample_s = NULL, *seed_s = NULL, *thr_s = NULL;
    const rp_cli_opt opts[] = {
        {"since", "TIME", "only contacts at or after this moment (unix seconds)", &since_s},
        {"until", "TIME", "only contacts at or before this moment (unix seconds)", &until_s},
        {"sample", "N", "judge a seeded sample of N contacts (default: all)", &sample_s},
        {"seed", "S", "the sample's seed (default 1)", &seed_s},
        {"threads", "N", "worker threads, 1..16 (default 2; the result does not depend on it)", &thr_s},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos;
    bool help;
    if (rp_cli_parse(cli, cmd, opts, argc, argv, pos, 0, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    rp_bt_opts o;
    rp_bt_opts_defaults(&o);
    o.seed = 1;
    int64_t v;
    if (since_s) {
        if (!rp_cli_parse_int(since_s, 0, INT64_MAX - 1, &v))
            return rp_cli_usage_error(cli, cmd, "--since must be unix seconds (got '%s')", since_s);
        o.since = v;
    }
    if (until_s) {
        if (!rp_cli_parse_int(until_s, 0, INT64_MAX - 1, &v))
            return rp_cli_usage_error(cli, cmd, "--until must be unix seconds (got '%s')", until_s);
        o.until = v;
    }
    if (o.since > o.until)
        return rp_cli_usage_error(cli, cmd, "--since must not be after --until");
    if (sample_s) {
        if (!rp_cli_parse_int(sample_s, 1, INT64_MAX, &v))
            return rp_cli_usage_error(cli, cmd, "--sample must be a count >= 1 (got '%s')", sample_s);
        o.sample = (uint64_t)v;
    }
    if (seed_s) {
        if (!rp_cli_parse_int(seed_s, 0, INT64_MAX, &v))
            return rp_cli_usage_error(cli, cmd, "--seed must be a number >= 0 (got '%s')", seed_s);
        o.seed = (uint64_t)v;
    }
    if (thr_s) {
        if (!rp_cli_parse_int(thr_s, 1, 16, &v))
            return rp_cli_usage_error(cli, cmd, "--threads must be 1..16 (got '%s')", thr_s);
        o.threads = (unsigned)v;
    }
    int ec = need_local(cli, cmd);
    if (ec != RP_CLI_EXIT_OK) return ec;
    rp_errbuf eb = {0};
    rp_config cfg;
    rp_store *s = NULL;
    rp_err rc = open_store(cli, &cfg, &s, &eb);
    if (rc != RP_OK) return rp_cli_fail(cli, rc, &eb);
    prog pg = {cli, "backtest: customers"};
    if (cli->progress) {
        o.progress = progress;
        o.progress_arg = &pg;
    }
    rp_bt_result r;
    rc = rp_backtest(s, rp_store_config(s), &o, &r, &eb);
    rp_store_close(s);
    if (rc != RP_OK) return rp_cli_fail(cli, rc, &eb);
    if (cli->json)
        backtest_json(cli->out, &o, &r);
    else
        backtest_text(cli->out, &o, &r);
    rp_bt_result_free(&r);
    return finish(cli);
}

/* --- tune ----------------------------------------------------------------------------- */

static void tune_json(FILE *f, const rp_config *cur, const rp_tune_opts *o, const rp_tune_result *t) {
    fprintf(f, "{\"seed\":%" PRIu64 ",\"trials\":%u,\"evaluations\":%u,\"train_customers\":%" PRIu64
               ",\"test_customers\":%" PRIu64 ",\"improves\":%s,\"train\":{\"current\":",
            o->seed, o->trials, t->evaluations, t->train_customers, t->test_customers,
            t->improves ? "true" : "false");
    json_tally(f, &t->train_current);
    fputs(",\"best\":", f);
    json_tally(f, &t->train_best);
    fputs("},\"test\":{\"current\":", f);
    json_tally(f, &t->test_current);
    fputs(",\"best\":", f);
    json_tally(f, &t->test_best);
    fputs(",\"baseline\":", f);
    json_tally(f, &t->test_base);
    fputs("},\"current\":{", f);
    for (unsigned i = 0; i < RP_TUNE_NPARAM; i++)
        fprintf(f, "%s\"%s\":%.6g", i ? "," : "", rp_tune_param_name(i), rp_tune_param_get(cur, i));
    fputs("},\"recommended\":", f);
    if (!t->improves) {
        fputs("null}\n", f);
        return;
    }
    fputc('{', f);
    for (unsigned i = 0; i < RP_TUNE_NPARAM; i++)
        fprintf(f, "%s\"%s\":%.6g", i ? "," : "", rp_tune_param_name(i), rp_tune_param_get(&t->best, i));
    fputs("}}\n", f);
}

static void tune_text(FILE *f, const rp_config *cur, const rp_tune_opts *o, const rp_tune_result *t) {
    fprintf(f, "Tune: %" PRIu64 " training and %" PRIu64 " held-out customers (split by a hash of the id), "
               "seed %" PRIu64 ", %u trials, %u evaluations.\n\n",
            t->train_customers, t->test_customers, o->seed, o->trials, t->evaluations);
    fprintf(f, "  %-30s %9s   %7s  %7s  %7s\n", "", "contacts", "top-1", "top-3", "coverage");
    tally_row(f, 30, "training: current settings", &t->train_current);
    tally_row(f, 30, "training: best found", &t->train_best);
    tally_row(f, 30, "held-out: current settings", &t->test_current);
    tally_row(f, 30, "held-out: best found", &t->test_best);
    tally_row(f, 30, "held-out: baseline (habit)", &t->test_base);
    if (!t->improves) {
        fprintf(f, "\nThe best setting found is not better on the held-out customers: the current "
                   "settings stay (nothing to change).\n");
        return;
    }
    fprintf(f, "\nHeld-out top-1 %.1f%% -> %.1f%%. To use it, put these lines in the config file "
               "(rapport never changes it itself):\n\n",
            pct(t->test_current.top1, t->test_current.n), pct(t->test_best.top1, t->test_best.n));
    for (unsigned i = 0; i < RP_TUNE_NPARAM; i++) {
        double a = rp_tune_param_get(cur, i), b = rp_tune_param_get(&t->best, i);
        fprintf(f, "%s = %.4g%s", rp_tune_param_name(i), b, "");
        if (a != b)
            fprintf(f, "    # was %.4g\n", a);
        else
            fputc('\n', f);
    }
}

int rp_cli_cmd_tune(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    const char *seed_s = NULL, *trials_s = NULL, *cust_s = NULL, *thr_s = NULL;
    const rp_cli_opt opts[] = {
        {"seed", "S", "the search's seed; the same seed gives the same result (default 1)", &seed_s},
        {"trials", "N", "random trials before the refinement, 0..10000 (default 40)", &trials_s},
        {"customers", "N", "at most N customers loaded, a seeded choice (default 5000)", &cust_s},
        {"threads", "N", "worker threads, 1..16 (default 2; the result does not depend on it)", &thr_s},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos;
    bool help;
    if (rp_cli_parse(cli, cmd, opts, argc, argv, pos, 0, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    rp_tune_opts o;
    rp_tune_opts_defaults(&o);
    o.seed = 1;
    int64_t v;
    if (seed_s) {
        if (!rp_cli_parse_int(seed_s, 0, INT64_MAX, &v))
            return rp_cli_usage_error(cli, cmd, "--seed must be a number >= 0 (got '%s')", seed_s);
        o.seed = (uint64_t)v;
    }
    if (trials_s) {
        if (!rp_cli_parse_int(trials_s, 0, 10000, &v))
            return rp_cli_usage_error(cli, cmd, "--trials must be 0..10000 (got '%s')", trials_s);
        o.trials = (uint32_t)v;
    }
    if (cust_s) {
        if (!rp_cli_parse_int(cust_s, 1, INT64_MAX, &v))
            return rp_cli_usage_error(cli, cmd, "--customers must be >= 1 (got '%s')", cust_s);
        o.customers = (uint64_t)v;
    }
    if (thr_s) {
        if (!rp_cli_parse_int(thr_s, 1, 16, &v))
            return rp_cli_usage_error(cli, cmd, "--threads must be 1..16 (got '%s')", thr_s);
        o.threads = (unsigned)v;
    }
    int ec = need_local(cli, cmd);
    if (ec != RP_CLI_EXIT_OK) return ec;
    rp_errbuf eb = {0};
    rp_config cfg;
    rp_store *s = NULL;
    rp_err rc = open_store(cli, &cfg, &s, &eb);
    if (rc != RP_OK) return rp_cli_fail(cli, rc, &eb);
    prog pg = {cli, "tune: evaluations"};
    if (cli->progress) {
        o.progress = progress;
        o.progress_arg = &pg;
    }
    rp_tune_result t;
    rp_config cur = *rp_store_config(s);
    rc = rp_tune(s, &cur, &o, &t, &eb);
    rp_store_close(s);
    if (rc != RP_OK) return rp_cli_fail(cli, rc, &eb);
    if (cli->json)
        tune_json(cli->out, &cur, &o, &t);
    else
        tune_text(cli->out, &cur, &o, &t);
    return finish(cli);
}
