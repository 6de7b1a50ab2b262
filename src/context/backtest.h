/* backtest.h — replay the card engine against the store's own contacts.
 *
 * For every contact event (kind "contact") of every customer, in a time
 * window or a seeded sample, the card is built as of one second before the
 * contact (at = ts - 1, so neither the contact nor anything at its second
 * is seen) and its likely reasons are compared with the contact's topic
 * (ASCII case-insensitive, as the card groups topics). Beside it runs a
 * naive baseline: the customer's most frequent contact topic before the
 * contact (ties: the most recent), and its runners-up for top-3.
 *
 *   - contacts without a topic are skipped and counted;
 *   - first contacts (no earlier event at all) are tallied apart, not in
 *     the overall figures;
 *   - issues are read as stored now (the store keeps no issue history):
 *     an issue opened after `at` is not seen, but a stored issue's status,
 *     update time and promise are today's. Figures about issue signals are
 *     therefore optimistic for issues that changed since; documented in
 *     proto/CLI.md.
 *
 * Threads: customers are split across opts->threads workers (customer i
 * of the id list goes to worker i % threads), each with its own read
 * transaction (the read-only env is MDB_NOTLS). Tallies are sums, merged by
 * name and sorted by count then name, so the result is the same for any
 * thread count. The sample is bottom-k over a seeded 64-bit hash of
 * (customer id, ts, seq): the same seed and store give the same contacts.
 *
 * tune (rp_tune) searches the six weights and six half-lives on a training
 * split of customers (a hash of the id: about 70 %), holding the data in
 * memory (slices into one read transaction kept open for the run), and
 * reports the held-out split (the other 30 %) for the best setting, the
 * current one and the baseline.
 */
#ifndef RP_BACKTEST_H
#define RP_BACKTEST_H

#include <stdbool.h>
#include <stdint.h>

#include "context/card.h"
#include "core/config.h"
#include "core/error.h"
#include "store/store.h"

#define RP_BT_CONFUSIONS_MAX 50 /* confusions a report lists (--json, the api op) */
#define RP_BT_NAME_MAX 64 /* topic names are cut (lower-cased) to this for the tallies */

typedef struct rp_bt_tally {
    uint64_t n;       /* contacts judged */
    uint64_t top1;    /* the actual topic was the first reason */
    uint64_t top3;    /* ... among the first three */
    uint64_t covered; /* the card (or baseline) offered any reason at all */
} rp_bt_tally;

typedef struct rp_bt_group {
    char name[RP_BT_NAME_MAX];
    rp_bt_tally card, base;
} rp_bt_group;

typedef struct rp_bt_confusion {
    char predicted[RP_BT_NAME_MAX], actual[RP_BT_NAME_MAX];
    uint64_t n;
} rp_bt_confusion;

typedef struct rp_bt_result {
    uint64_t customers;        /* customers scanned */
    uint64_t contacts;         /* contacts in the window (before sampling) */
    uint64_t sampled;          /* contacts looked at (= contacts without --sample) */
    uint64_t no_topic;         /* of those, skipped: no topic */
    rp_bt_tally card, base;    /* judged contacts with earlier history */
    rp_bt_tally first_card, first_base; /* first contacts (no earlier event) */
    rp_bt_group *by_topic;     /* the actual topic; count desc, name */
    uint32_t ntopics;
    rp_bt_group by_signal[RP_SIG__COUNT + 1]; /* the first reason's signal; last: "none" */
    rp_bt_confusion *confusions; /* predicted != actual, count desc, then names */
    uint32_t nconfusions;
} rp_bt_result;

typedef struct rp_bt_opts {
    int64_t since, until;  /* contacts with since <= ts <= until */
    uint64_t sample;       /* 0: every contact; else at most this many */
    uint64_t seed;         /* of the sample */
    unsigned threads;      /* 1..16; 0 = 2 */
    /* Called from the calling thread now and then with customers done and
     * the total; may be NULL. */
    void (*progress)(void *arg, uint64_t done, uint64_t total);
    void *progress_arg;
} rp_bt_opts;

void rp_bt_opts_defaults(rp_bt_opts *o);

/* Run the backtest over store s with the weights of cfg (usually the
 * store's own config). *out is filled (free with rp_bt_result_free).
 * Returns RP_OK, RP_UNAVAILABLE (memory, threads, reader slots),
 * RP_INTERNAL (corrupt store). */
rp_err rp_backtest(rp_store *s, const rp_config *cfg, const rp_bt_opts *o, rp_bt_result *out,
                   rp_errbuf *eb);

void rp_bt_result_free(rp_bt_result *r);

/* --- tune ------------------------------------------------------------------- */

/* The twelve tuned settings, in this order: weight_broken_promise,
 * weight_unresolved_contact, weight_issue_changed, weight_call_driver,
 * weight_open_issue, weight_habitual, then halflife_*_h in the same order. */
#define RP_TUNE_NPARAM 12
const char *rp_tune_param_name(unsigned i);
double rp_tune_param_get(const rp_config *cfg, unsigned i);
void rp_tune_param_set(rp_config *cfg, unsigned i, double v);

typedef struct rp_tune_opts {
    uint64_t seed;
    uint32_t trials;      /* random trials before refinement (default 40) */
    uint64_t customers;   /* at most this many customers loaded (seeded; default 5000) */
    unsigned threads;     /* 0 = 2 */
    void (*progress)(void *arg, uint64_t done, uint64_t total); /* evaluations */
    void *progress_arg;
} rp_tune_opts;

void rp_tune_opts_defaults(rp_tune_opts *o);

typedef struct rp_tune_result {
    rp_config best;         /* cfg with the best setting found on the training split */
    bool improves;          /* best beats current on held-out (top-1, then top-3) */
    uint64_t train_customers, test_customers;
    uint32_t evaluations;
    rp_bt_tally train_current, train_best;
    rp_bt_tally test_current, test_best, test_base;
} rp_tune_result;

/* Search cfg's weights and half-lives on store s. Never changes cfg.
 * Returns like rp_backtest. */
rp_err rp_tune(rp_store *s, const rp_config *cfg, const rp_tune_opts *o, rp_tune_result *out,
               rp_errbuf *eb);

#endif
