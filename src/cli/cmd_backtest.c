/* cmd_backtest.c — `rapport backtest` and `rapport tune`: how good is the
 * card's guess on this store's own contacts, and which weights would do
 * better (context/backtest.h has the method).
 *
 * With --data DIR both open the data directory read-only in this process
 * (safe beside a running rapportd) and work on two threads. backtest also
 * runs through a server (--server ADDR): the api's `backtest` operation
 * (api/ops_admin.c, admin role) runs the same engine in rapportd and
 * answers the report map; the CLI decodes it back into an rp_bt_result, so
 * both modes print through the same renderer (backtest_json/_text) and
 * give the same output on the same data. tune has no server operation:
 * --server is refused with a sentence saying to use --data. Output: a
 * readable table, or --json (one object). Progress goes to stderr only
 * when it is a terminal (--data mode only).
 */
#include "cli/args.h"
#include "cli/cmds.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/conn.h"
#include "context/backtest.h"
#include "model/codec.h"
#include "store/store.h"

#define RP_CLI_BACKTEST_TIMEOUT_MS (3600u * 1000u) /* a large store takes minutes */

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
    for (uint32_t i = 0; i < r->nconfusions && i < RP_BT_CONFUSIONS_MAX; i++) {
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

/* --- backtest through a server ----------------------------------------------------- */

static bool mp_u64(const msgpack_object *m, const char *key, uint64_t *out) {
    const msgpack_object *v = rp_mp_get(m, key);
    if (v == NULL || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return false;
    *out = v->via.u64;
    return true;
}

static bool mp_name(const msgpack_object *m, const char *key, char out[RP_BT_NAME_MAX]) {
    const msgpack_object *v = rp_mp_get(m, key);
    if (v == NULL || v->type != MSGPACK_OBJECT_STR || v->via.str.size >= RP_BT_NAME_MAX ||
        memchr(v->via.str.ptr, '\0', v->via.str.size) != NULL)
        return false;
    memcpy(out, v->via.str.ptr, v->via.str.size);
    out[v->via.str.size] = '\0';
    return true;
}

static bool mp_tally(const msgpack_object *m, const char *key, rp_bt_tally *t) {
    const msgpack_object *v = rp_mp_get(m, key);
    if (v == NULL || v->type != MSGPACK_OBJECT_MAP) return false;
    return mp_u64(v, "n", &t->n) && mp_u64(v, "top1", &t->top1) && mp_u64(v, "top3", &t->top3) &&
           mp_u64(v, "covered", &t->covered);
}

static const msgpack_object *mp_array(const msgpack_object *m, const char *key) {
    const msgpack_object *v = rp_mp_get(m, key);
    return v != NULL && v->type == MSGPACK_OBJECT_ARRAY ? v : NULL;
}

/* The report map of the `backtest` op (the fields of --json; rates are
 * recomputed from the counts) into *r. false: not such a map. */
static bool backtest_decode(const msgpack_object *m, rp_bt_result *r) {
    memset(r, 0, sizeof *r);
    if (m->type != MSGPACK_OBJECT_MAP) return false;
    const msgpack_object *fc = rp_mp_get(m, "first_contacts");
    const msgpack_object *top = mp_array(m, "by_topic"), *sig = mp_array(m, "by_signal"),
                         *conf = mp_array(m, "confusions");
    if (!mp_u64(m, "customers", &r->customers) || !mp_u64(m, "contacts", &r->contacts) ||
        !mp_u64(m, "sampled", &r->sampled) || !mp_u64(m, "skipped_no_topic", &r->no_topic) ||
        !mp_tally(m, "card", &r->card) || !mp_tally(m, "baseline", &r->base) || fc == NULL ||
        fc->type != MSGPACK_OBJECT_MAP || !mp_tally(fc, "card", &r->first_card) ||
        !mp_tally(fc, "baseline", &r->first_base) || top == NULL || sig == NULL || conf == NULL ||
        sig->via.array.size > RP_SIG__COUNT + 1)
        return false;
    uint32_t nt = top->via.array.size, nc = conf->via.array.size;
    if (nt) {
        r->by_topic = calloc(nt, sizeof *r->by_topic);
        if (r->by_topic == NULL) return false;
    }
    for (uint32_t i = 0; i < nt; i++, r->ntopics++) {
        const msgpack_object *e = &top->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_MAP || !mp_name(e, "topic", r->by_topic[i].name) ||
            !mp_tally(e, "card", &r->by_topic[i].card) || !mp_tally(e, "baseline", &r->by_topic[i].base))
            return false;
    }
    for (uint32_t i = 0; i < sig->via.array.size; i++) {
        const msgpack_object *e = &sig->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_MAP || !mp_name(e, "signal", r->by_signal[i].name) ||
            !mp_tally(e, "card", &r->by_signal[i].card))
            return false;
    }
    if (nc) {
        r->confusions = calloc(nc, sizeof *r->confusions);
        if (r->confusions == NULL) return false;
    }
    for (uint32_t i = 0; i < nc; i++, r->nconfusions++) {
        const msgpack_object *e = &conf->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_MAP || !mp_name(e, "predicted", r->confusions[i].predicted) ||
            !mp_name(e, "actual", r->confusions[i].actual) || !mp_u64(e, "n", &r->confusions[i].n))
            return false;
    }
    return true;
}

static void backtest_render(rp_cli *cli, const rp_bt_opts *o, const rp_bt_result *r) {
    if (cli->json)
        backtest_json(cli->out, o, r);
    else
        backtest_text(cli->out, o, r);
}

static int show_backtest(rp_cli *cli, const msgpack_object *m, void *arg) {
    const rp_bt_opts *o = arg;
    rp_bt_result r;
    if (!backtest_decode(m, &r)) {
        rp_bt_result_free(&r);
        rp_cli_errorf(cli, "the server's backtest reply is not a backtest report");
        return RP_CLI_EXIT_ERROR;
    }
    backtest_render(cli, o, &r);
    rp_bt_result_free(&r);
    return finish(cli);
}

static int backtest_server(rp_cli *cli, const rp_bt_opts *o) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3 + (o->since != 0) + (o->until != INT64_MAX));
    rp_mp_pack_cstr(&pk, "seed");
    msgpack_pack_uint64(&pk, o->seed);
    rp_mp_pack_cstr(&pk, "threads");
    msgpack_pack_uint64(&pk, o->threads ? o->threads : 2);
    rp_mp_pack_cstr(&pk, "sample");
    if (o->sample)
        msgpack_pack_uint64(&pk, o->sample);
    else
        msgpack_pack_nil(&pk);
    if (o->since != 0) {
        rp_mp_pack_cstr(&pk, "since");
        msgpack_pack_int64(&pk, o->since);
    }
    if (o->until != INT64_MAX) {
        rp_mp_pack_cstr(&pk, "until");
        msgpack_pack_int64(&pk, o->until);
    }
    if (cli->timeout_ms < RP_CLI_BACKTEST_TIMEOUT_MS) cli->timeout_ms = RP_CLI_BACKTEST_TIMEOUT_MS;
    int code = rp_cli_run_op(cli, RP_CLI_READ, "backtest", sb.data, sb.size, show_backtest, (void *)o);
    msgpack_sbuffer_destroy(&sb);
    return code;
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
    int64_t since = o.since, until = o.until, sample = (int64_t)o.sample, seed = (int64_t)o.seed,
            threads = o.threads;
    int code;
    if ((code = rp_cli_opt_int(cli, cmd, "since", since_s, 0, INT64_MAX - 1, "unix seconds", &since)) ||
        (code = rp_cli_opt_int(cli, cmd, "until", until_s, 0, INT64_MAX - 1, "unix seconds", &until)))
        return code;
    if (since > until) return rp_cli_usage_error(cli, cmd, "--since must not be after --until");
    if ((code = rp_cli_opt_int(cli, cmd, "sample", sample_s, 1, INT64_MAX, "a count >= 1", &sample)) ||
        (code = rp_cli_opt_int(cli, cmd, "seed", seed_s, 0, INT64_MAX, "a number >= 0", &seed)) ||
        (code = rp_cli_opt_int(cli, cmd, "threads", thr_s, 1, 16, "1..16", &threads)))
        return code;
    o.since = since;
    o.until = until;
    o.sample = (uint64_t)sample;
    o.seed = (uint64_t)seed;
    o.threads = (unsigned)threads;
    if (cli->data_dir == NULL) return backtest_server(cli, &o);
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
    backtest_render(cli, &o, &r);
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
    int64_t seed = (int64_t)o.seed, trials = o.trials, customers = (int64_t)o.customers, threads = o.threads;
    int code;
    if ((code = rp_cli_opt_int(cli, cmd, "seed", seed_s, 0, INT64_MAX, "a number >= 0", &seed)) ||
        (code = rp_cli_opt_int(cli, cmd, "trials", trials_s, 0, 10000, "0..10000", &trials)) ||
        (code = rp_cli_opt_int(cli, cmd, "customers", cust_s, 1, INT64_MAX, ">= 1", &customers)) ||
        (code = rp_cli_opt_int(cli, cmd, "threads", thr_s, 1, 16, "1..16", &threads)))
        return code;
    o.seed = (uint64_t)seed;
    o.trials = (uint32_t)trials;
    o.customers = (uint64_t)customers;
    o.threads = (unsigned)threads;
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
