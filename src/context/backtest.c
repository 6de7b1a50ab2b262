/* backtest.c — the card engine replayed on the store's contacts (backtest.h).
 *
 * One customer at a time: its whole history (newest first) and issues are
 * read, then walked oldest first, one timestamp group at a time. Every
 * contact of a group is judged with the card built from the events strictly
 * older than the group (the slice after it) as of ts - 1; only then are
 * the group's contacts added to the baseline's per-topic counts. So the
 * card and the baseline see exactly the same past.
 */
#include "context/backtest.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "context/context.h"

/* --- small helpers ---------------------------------------------------------- */

static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t hash_str(uint64_t h, rp_str s) {
    h ^= 0xcbf29ce484222325ull;
    for (size_t i = 0; i < s.n; i++) {
        h ^= (unsigned char)s.p[i];
        h *= 0x100000001b3ull;
    }
    return mix64(h);
}

/* The sample key of one contact. */
static uint64_t contact_key(uint64_t seed, rp_str id, int64_t ts, uint32_t seq) {
    return mix64(hash_str(mix64(seed), id) ^ mix64((uint64_t)ts * 0x100000001ull + seq));
}

/* A topic as tallied: ASCII lower-case, cut to RP_BT_NAME_MAX - 1 bytes. */
static void lname(rp_str s, char out[RP_BT_NAME_MAX]) {
    size_t n = s.n < RP_BT_NAME_MAX - 1 ? s.n : RP_BT_NAME_MAX - 1;
    for (size_t i = 0; i < n; i++) {
        char c = s.p[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    out[n] = '\0';
}

static bool is_contact(const rp_event *e) {
    return e->kind.n == 7 && memcmp(e->kind.p, "contact", 7) == 0;
}

/* --- tallies of one worker --------------------------------------------------- */

typedef struct acc {
    rp_bt_tally card, base, first_card, first_base;
    uint64_t contacts, sampled, no_topic;
    rp_bt_group *topics;
    uint32_t ntopics, captopics;
    rp_bt_group signals[RP_SIG__COUNT + 1];
    rp_bt_confusion *conf;
    uint32_t nconf, capconf;
    bool oom;
} acc;

static rp_bt_group *acc_topic(acc *a, const char *name) {
    for (uint32_t i = 0; i < a->ntopics; i++)
        if (strcmp(a->topics[i].name, name) == 0) return &a->topics[i];
    if (a->ntopics == a->captopics) {
        uint32_t cap = a->captopics ? a->captopics * 2 : 16;
        rp_bt_group *t = realloc(a->topics, cap * sizeof *t);
        if (!t) {
            a->oom = true;
            return NULL;
        }
        a->topics = t;
        a->captopics = cap;
    }
    rp_bt_group *g = &a->topics[a->ntopics++];
    memset(g, 0, sizeof *g);
    memcpy(g->name, name, strlen(name) + 1);
    return g;
}

static rp_bt_confusion *acc_conf(acc *a, const char *pred, const char *actual) {
    for (uint32_t i = 0; i < a->nconf; i++)
        if (strcmp(a->conf[i].predicted, pred) == 0 && strcmp(a->conf[i].actual, actual) == 0)
            return &a->conf[i];
    if (a->nconf == a->capconf) {
        uint32_t cap = a->capconf ? a->capconf * 2 : 16;
        rp_bt_confusion *t = realloc(a->conf, cap * sizeof *t);
        if (!t) {
            a->oom = true;
            return NULL;
        }
        a->conf = t;
        a->capconf = cap;
    }
    rp_bt_confusion *c = &a->conf[a->nconf++];
    memset(c, 0, sizeof *c);
    memcpy(c->predicted, pred, strlen(pred) + 1);
    memcpy(c->actual, actual, strlen(actual) + 1);
    return c;
}

static void tally_add(rp_bt_tally *d, const rp_bt_tally *s) {
    d->n += s->n;
    d->top1 += s->top1;
    d->top3 += s->top3;
    d->covered += s->covered;
}

static void acc_free(acc *a) {
    free(a->topics);
    free(a->conf);
    memset(a, 0, sizeof *a);
}

/* --- judging one customer ---------------------------------------------------- */

#define PAST_MAX 128 /* distinct past topics the baseline counts per customer */

typedef struct past_topic {
    char name[RP_BT_NAME_MAX];
    uint32_t n;
    int64_t last;
} past_topic;

/* What one walk over a customer needs. */
typedef struct judge {
    const rp_config *cfg;
    int64_t since, until;
    uint64_t seed;
    bool sampling;      /* judge only keys <= threshold */
    uint64_t threshold;
    bool collect;       /* pass 1 of a sample: only collect keys */
    uint64_t *keys;
    size_t nkeys, capkeys;
    bool detail;        /* by topic, by signal, confusions */
    rp_card *card;      /* scratch */
    past_topic past[PAST_MAX];
    uint32_t npast;
    acc a;
} judge;

/* The baseline's guesses: the top 3 past topics by count, then recency. */
static uint32_t base_top3(const judge *j, const char *out[3]) {
    uint32_t m = 0;
    for (uint32_t i = 0; i < j->npast; i++) {
        const past_topic *p = &j->past[i];
        uint32_t k = m < 3 ? m++ : 3;
        while (k > 0) {
            const past_topic *q = NULL;
            for (uint32_t x = 0; x < j->npast; x++)
                if (j->past[x].name == out[k - 1]) q = &j->past[x];
            if (q->n > p->n || (q->n == p->n && q->last >= p->last)) break;
            if (k < 3) out[k] = out[k - 1];
            k--;
        }
        if (k < 3) out[k] = p->name;
    }
    return m;
}

static void judge_one(judge *j, const rp_customer *c, const rp_event *ev, uint32_t n,
                      const rp_issue *is, uint32_t nis, int64_t at, const char *actual) {
    rp_card *card = j->card;
    rp_card_build(j->cfg, c, ev, n, is, nis, at, card);
    bool first = n == 0;
    acc *a = &j->a;
    rp_bt_tally *tc = first ? &a->first_card : &a->card;
    rp_bt_tally *tb = first ? &a->first_base : &a->base;
    bool c1 = false, c3 = false, b1 = false, b3 = false;
    char pred[RP_BT_NAME_MAX] = "";
    tc->n++;
    if (card->nreasons > 0) {
        tc->covered++;
        for (uint32_t r = 0; r < card->nreasons && r < 3; r++) {
            char nm[RP_BT_NAME_MAX];
            lname(card->reasons[r].topic, nm);
            if (r == 0) memcpy(pred, nm, sizeof nm);
            if (strcmp(nm, actual) == 0) {
                if (r == 0) c1 = true;
                c3 = true;
            }
        }
    }
    tc->top1 += c1;
    tc->top3 += c3;
    const char *bg[3] = {NULL, NULL, NULL};
    uint32_t nb = base_top3(j, bg);
    tb->n++;
    if (nb > 0) tb->covered++;
    for (uint32_t r = 0; r < nb; r++)
        if (strcmp(bg[r], actual) == 0) {
            if (r == 0) b1 = true;
            b3 = true;
        }
    tb->top1 += b1;
    tb->top3 += b3;
    if (!j->detail || first) return;
    rp_bt_group *g = acc_topic(a, actual);
    rp_bt_group *s = &a->signals[card->nreasons ? (unsigned)card->reasons[0].signal : RP_SIG__COUNT];
    for (int k = 0; k < 2; k++) {
        rp_bt_group *x = k ? s : g;
        if (!x) continue;
        x->card.n++;
        x->card.covered += card->nreasons > 0;
        x->card.top1 += c1;
        x->card.top3 += c3;
        x->base.n++;
        x->base.covered += nb > 0;
        x->base.top1 += b1;
        x->base.top3 += b3;
    }
    if (card->nreasons > 0 && !c1) {
        rp_bt_confusion *cf = acc_conf(a, pred, actual);
        if (cf) cf->n++;
    }
}

static void past_add(judge *j, rp_str topic, int64_t ts) {
    char nm[RP_BT_NAME_MAX];
    lname(topic, nm);
    for (uint32_t i = 0; i < j->npast; i++)
        if (strcmp(j->past[i].name, nm) == 0) {
            j->past[i].n++;
            j->past[i].last = ts;
            return;
        }
    if (j->npast == PAST_MAX) return;
    past_topic *p = &j->past[j->npast++];
    memcpy(p->name, nm, sizeof nm);
    p->n = 1;
    p->last = ts;
}

/* Walk one customer's history (newest first) oldest first. */
static void judge_customer(judge *j, const rp_customer *c, const rp_event *ev, uint32_t nev,
                           const rp_issue *is, uint32_t nis) {
    j->npast = 0;
    int64_t hi = (int64_t)nev - 1;
    while (hi >= 0) {
        int64_t T = ev[hi].ts, lo = hi;
        while (lo > 0 && ev[lo - 1].ts == T) lo--;
        if (T >= j->since && T <= j->until) {
            for (int64_t k = hi; k >= lo; k--) {
                const rp_event *e = &ev[k];
                if (!is_contact(e)) continue;
                j->a.contacts++;
                uint64_t key = (j->collect || j->sampling) ? contact_key(j->seed, c->id, T, e->seq) : 0;
                if (j->collect) {
                    if (j->nkeys == j->capkeys) {
                        size_t cap = j->capkeys ? j->capkeys * 2 : 1024;
                        uint64_t *t = realloc(j->keys, cap * sizeof *t);
                        if (!t) {
                            j->a.oom = true;
                            continue;
                        }
                        j->keys = t;
                        j->capkeys = cap;
                    }
                    j->keys[j->nkeys++] = key;
                    continue;
                }
                if (j->sampling && key > j->threshold) continue;
                j->a.sampled++;
                if (e->topic.n == 0) {
                    j->a.no_topic++;
                    continue;
                }
                char actual[RP_BT_NAME_MAX];
                lname(e->topic, actual);
                judge_one(j, c, ev + hi + 1, (uint32_t)(nev - (uint32_t)hi - 1), is, nis,
                          T > 0 ? T - 1 : 0, actual);
            }
        }
        for (int64_t k = hi; k >= lo; k--)
            if (is_contact(&ev[k]) && ev[k].topic.n > 0) past_add(j, ev[k].topic, T);
        hi = lo - 1;
    }
}

/* --- reading a customer -------------------------------------------------------- */

typedef struct reader {
    rp_event *ev;
    uint32_t nev, cap;
    rp_issue is[RP_CONTEXT_MAX_ISSUES];
    uint32_t nis;
    rp_customer c;
} reader;

/* Read customer id with its history and issues into r. RP_NOT_FOUND: gone. */
static rp_err read_customer(rp_store *s, MDB_txn *txn, rp_str id, reader *r, rp_errbuf *eb) {
    rp_err rc = rp_store_get_customer(s, txn, id, &r->c, eb);
    if (rc != RP_OK) return rc;
    r->nev = 0;
    bool more = true;
    rp_cursor next;
    bool first = true;
    while (more) {
        if (r->cap - r->nev < 256) {
            uint32_t cap = r->cap ? r->cap * 2 : 1024;
            rp_event *t = realloc(r->ev, cap * sizeof *t);
            if (!t) return rp_errf(eb, RP_UNAVAILABLE, "out of memory");
            r->ev = t;
            r->cap = cap;
        }
        uint32_t got = 0;
        rp_cursor at = next;
        rc = rp_store_history(s, txn, r->c.id, RP_STORE_CANONICAL, first ? NULL : &at, 256,
                              r->ev + r->nev, &got, &more, &next, eb);
        if (rc != RP_OK) return rc;
        r->nev += got;
        first = false;
    }
    bool imore;
    return rp_store_issues(s, txn, r->c.id, RP_STORE_CANONICAL, RP_CONTEXT_MAX_ISSUES, r->is,
                           &r->nis, &imore, eb);
}

/* --- customer ids ------------------------------------------------------------- */

typedef struct idlist {
    char **ids;
    size_t n, cap;
    bool oom;
} idlist;

static bool id_collect(const rp_customer *c, void *arg) {
    idlist *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        char **t = realloc(l->ids, cap * sizeof *t);
        if (!t) {
            l->oom = true;
            return false;
        }
        l->ids = t;
        l->cap = cap;
    }
    char *p = malloc(c->id.n + 1);
    if (!p) {
        l->oom = true;
        return false;
    }
    memcpy(p, c->id.p, c->id.n);
    p[c->id.n] = '\0';
    l->ids[l->n++] = p;
    return true;
}

static void idlist_free(idlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->ids[i]);
    free(l->ids);
    memset(l, 0, sizeof *l);
}

static rp_err list_ids(rp_store *s, idlist *l, rp_errbuf *eb) {
    MDB_txn *txn;
    rp_err rc = rp_store_rbegin(s, &txn, eb);
    if (rc != RP_OK) return rc;
    rc = rp_store_scan_customers(s, txn, (rp_str){NULL, 0}, id_collect, l, eb);
    rp_store_rend(s, txn);
    if (rc == RP_OK && l->oom) rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory");
    return rc;
}

/* --- workers -------------------------------------------------------------------- */

typedef struct worker {
    pthread_t th;
    rp_store *s;
    const idlist *ids;
    unsigned t, nt;
    judge *j;
    atomic_uint_fast64_t *done;
    const rp_bt_opts *o;
    rp_err rc;
    rp_errbuf eb;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    MDB_txn *txn;
    w->rc = rp_store_rbegin(w->s, &txn, &w->eb);
    if (w->rc != RP_OK) return NULL;
    reader *r = calloc(1, sizeof *r);
    if (!r) {
        w->rc = rp_errf(&w->eb, RP_UNAVAILABLE, "out of memory");
        rp_store_rend(w->s, txn);
        return NULL;
    }
    uint64_t total = w->ids->n;
    for (size_t i = w->t; i < w->ids->n; i += w->nt) {
        rp_str id = rp_str_c(w->ids->ids[i]);
        rp_err rc = read_customer(w->s, txn, id, r, &w->eb);
        if (rc == RP_OK) {
            judge_customer(w->j, &r->c, r->ev, r->nev, r->is, r->nis);
        } else if (rc != RP_NOT_FOUND) {
            w->rc = rc;
            break;
        }
        uint64_t d = atomic_fetch_add(w->done, 1) + 1;
        if (w->t == 0 && w->o->progress && (i / w->nt) % 256 == 255) w->o->progress(w->o->progress_arg, d, total);
    }
    if (w->rc == RP_OK && w->j->a.oom) w->rc = rp_errf(&w->eb, RP_UNAVAILABLE, "out of memory");
    free(r->ev);
    free(r);
    rp_store_rend(w->s, txn);
    return NULL;
}

/* Run judges[0..nt) over ids, worker 0 on the calling thread. */
static rp_err run_workers(rp_store *s, const idlist *ids, judge **judges, unsigned nt,
                          const rp_bt_opts *o, rp_errbuf *eb) {
    worker w[16];
    atomic_uint_fast64_t done = 0;
    unsigned started = 0;
    rp_err rc = RP_OK;
    for (unsigned t = 0; t < nt; t++) {
        memset(&w[t], 0, sizeof w[t]);
        w[t] = (worker){.s = s, .ids = ids, .t = t, .nt = nt, .j = judges[t], .done = &done, .o = o};
    }
    for (unsigned t = 1; t < nt; t++) {
        if (pthread_create(&w[t].th, NULL, work, &w[t]) != 0) {
            rc = rp_errf(eb, RP_UNAVAILABLE, "cannot start a thread");
            break;
        }
        started++;
    }
    if (rc == RP_OK) work(&w[0]);
    for (unsigned t = 1; t <= started; t++) pthread_join(w[t].th, NULL);
    if (rc != RP_OK) return rc;
    for (unsigned t = 0; t < nt; t++)
        if (w[t].rc != RP_OK) {
            *eb = w[t].eb;
            return w[t].rc;
        }
    if (o->progress) o->progress(o->progress_arg, ids->n, ids->n);
    return RP_OK;
}

/* --- merging ---------------------------------------------------------------------- */

static int group_cmp(const void *x, const void *y) {
    const rp_bt_group *a = x, *b = y;
    if (a->card.n != b->card.n) return a->card.n > b->card.n ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int conf_cmp(const void *x, const void *y) {
    const rp_bt_confusion *a = x, *b = y;
    if (a->n != b->n) return a->n > b->n ? -1 : 1;
    int c = strcmp(a->predicted, b->predicted);
    return c ? c : strcmp(a->actual, b->actual);
}

static int u64_cmp(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

void rp_bt_opts_defaults(rp_bt_opts *o) {
    memset(o, 0, sizeof *o);
    o->since = 0;
    o->until = INT64_MAX;
    o->threads = 2;
}

void rp_bt_result_free(rp_bt_result *r) {
    if (!r) return;
    free(r->by_topic);
    free(r->confusions);
    memset(r, 0, sizeof *r);
}

static judge *judge_new(const rp_config *cfg) {
    judge *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->card = malloc(sizeof *j->card);
    if (!j->card) {
        free(j);
        return NULL;
    }
    j->cfg = cfg;
    j->since = 0;
    j->until = INT64_MAX;
    return j;
}

static void judge_free(judge *j) {
    if (!j) return;
    acc_free(&j->a);
    free(j->keys);
    free(j->card);
    free(j);
}

static void judge_reset(judge *j) {
    acc_free(&j->a);
    j->nkeys = 0;
}

rp_err rp_backtest(rp_store *s, const rp_config *cfg, const rp_bt_opts *o, rp_bt_result *out,
                   rp_errbuf *eb) {
    memset(out, 0, sizeof *out);
    unsigned nt = o->threads ? o->threads : 2;
    if (nt > 16) nt = 16;
    idlist ids = {0};
    judge *js[16] = {0};
    rp_err rc = list_ids(s, &ids, eb);
    if (rc != RP_OK) goto done;
    for (unsigned t = 0; t < nt; t++) {
        if (!(js[t] = judge_new(cfg))) {
            rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory");
            goto done;
        }
        js[t]->since = o->since;
        js[t]->until = o->until;
        js[t]->seed = o->seed;
        js[t]->detail = true;
    }
    uint64_t window_contacts = 0;
    if (o->sample > 0) {
        /* Pass 1: every contact's key; the sample is the o->sample smallest. */
        for (unsigned t = 0; t < nt; t++) js[t]->collect = true;
        if ((rc = run_workers(s, &ids, js, nt, o, eb)) != RP_OK) goto done;
        size_t total = 0;
        for (unsigned t = 0; t < nt; t++) total += js[t]->nkeys;
        window_contacts = total;
        if (total > o->sample) {
            uint64_t *all = malloc(total * sizeof *all);
            if (!all) {
                rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory");
                goto done;
            }
            size_t k = 0;
            for (unsigned t = 0; t < nt; t++) {
                memcpy(all + k, js[t]->keys, js[t]->nkeys * sizeof *all);
                k += js[t]->nkeys;
            }
            qsort(all, total, sizeof *all, u64_cmp);
            uint64_t thr = all[o->sample - 1];
            free(all);
            for (unsigned t = 0; t < nt; t++) {
                js[t]->sampling = true;
                js[t]->threshold = thr;
            }
        }
        for (unsigned t = 0; t < nt; t++) {
            js[t]->collect = false;
            judge_reset(js[t]);
        }
    }
    if ((rc = run_workers(s, &ids, js, nt, o, eb)) != RP_OK) goto done;

    /* Merge. */
    out->customers = ids.n;
    acc m = {0};
    for (unsigned t = 0; t < nt; t++) {
        acc *a = &js[t]->a;
        tally_add(&out->card, &a->card);
        tally_add(&out->base, &a->base);
        tally_add(&out->first_card, &a->first_card);
        tally_add(&out->first_base, &a->first_base);
        out->contacts += a->contacts;
        out->sampled += a->sampled;
        out->no_topic += a->no_topic;
        for (unsigned g = 0; g <= RP_SIG__COUNT; g++) {
            tally_add(&out->by_signal[g].card, &a->signals[g].card);
            tally_add(&out->by_signal[g].base, &a->signals[g].base);
        }
        for (uint32_t i = 0; i < a->ntopics; i++) {
            rp_bt_group *g = acc_topic(&m, a->topics[i].name);
            if (!g) break;
            tally_add(&g->card, &a->topics[i].card);
            tally_add(&g->base, &a->topics[i].base);
        }
        for (uint32_t i = 0; i < a->nconf; i++) {
            rp_bt_confusion *c = acc_conf(&m, a->conf[i].predicted, a->conf[i].actual);
            if (!c) break;
            c->n += a->conf[i].n;
        }
    }
    if (o->sample > 0) out->contacts = window_contacts;
    for (unsigned g = 0; g <= RP_SIG__COUNT; g++)
        snprintf(out->by_signal[g].name, RP_BT_NAME_MAX, "%s",
                 g < RP_SIG__COUNT ? rp_card_signal_name((rp_signal)g) : "none");
    if (m.oom) {
        acc_free(&m);
        rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory");
        goto done;
    }
    if (m.ntopics) qsort(m.topics, m.ntopics, sizeof *m.topics, group_cmp);
    if (m.nconf) qsort(m.conf, m.nconf, sizeof *m.conf, conf_cmp);
    out->by_topic = m.topics;
    out->ntopics = m.ntopics;
    out->confusions = m.conf;
    out->nconfusions = m.nconf;
done:
    for (unsigned t = 0; t < nt; t++) judge_free(js[t]);
    idlist_free(&ids);
    if (rc != RP_OK) rp_bt_result_free(out);
    return rc;
}

/* --- tune ----------------------------------------------------------------------------- */

static const char *const param_names[RP_TUNE_NPARAM] = {
    "weight_broken_promise", "weight_unresolved_contact", "weight_issue_changed",
    "weight_call_driver", "weight_open_issue", "weight_habitual",
    "halflife_broken_promise_h", "halflife_unresolved_contact_h", "halflife_issue_changed_h",
    "halflife_call_driver_h", "halflife_open_issue_h", "halflife_habitual_h"};

const char *rp_tune_param_name(unsigned i) { return i < RP_TUNE_NPARAM ? param_names[i] : "?"; }

static double *param_ptr(rp_config *c, unsigned i) {
    double *p[RP_TUNE_NPARAM] = {&c->w_broken_promise, &c->w_unresolved_contact, &c->w_issue_changed,
                                 &c->w_call_driver, &c->w_open_issue, &c->w_habitual,
                                 &c->hl_broken_promise_h, &c->hl_unresolved_contact_h,
                                 &c->hl_issue_changed_h, &c->hl_call_driver_h, &c->hl_open_issue_h,
                                 &c->hl_habitual_h};
    return p[i];
}

double rp_tune_param_get(const rp_config *cfg, unsigned i) {
    return i < RP_TUNE_NPARAM ? *param_ptr((rp_config *)cfg, i) : 0.0;
}

/* The search bounds: weights 0..2, half-lives 1 hour .. 4,000 hours. */
#define W_MAX 2.0
#define HL_MIN 1.0
#define HL_MAX 4000.0

static double clamp_param(unsigned i, double v) {
    if (i < 6) return v < 0 ? 0 : v > W_MAX ? W_MAX : v;
    return v < HL_MIN ? HL_MIN : v > HL_MAX ? HL_MAX : v;
}

void rp_tune_param_set(rp_config *cfg, unsigned i, double v) {
    if (i < RP_TUNE_NPARAM) *param_ptr(cfg, i) = clamp_param(i, v);
}

void rp_tune_opts_defaults(rp_tune_opts *o) {
    memset(o, 0, sizeof *o);
    o->trials = 40;
    o->customers = 5000;
    o->threads = 2;
}

/* One customer held in memory (slices into the tune's read transaction). */
typedef struct held {
    rp_customer c;
    rp_event *ev;
    uint32_t nev;
    rp_issue *is;
    uint32_t nis;
    bool test;
} held;

typedef struct eval_job {
    pthread_t th;
    const held *h;
    size_t n;
    unsigned t, nt;
    bool test;
    judge *j;
} eval_job;

static void *eval_work(void *arg) {
    eval_job *e = arg;
    for (size_t i = e->t; i < e->n; i += e->nt) {
        const held *h = &e->h[i];
        if (h->test != e->test) continue;
        judge_customer(e->j, &h->c, h->ev, h->nev, h->is, h->nis);
    }
    return NULL;
}

/* Tally cfg on one split; card and baseline tallies of non-first contacts. */
static rp_err eval_split(const held *h, size_t n, bool test, const rp_config *cfg, judge **js,
                         unsigned nt, rp_bt_tally *card, rp_bt_tally *base, rp_errbuf *eb) {
    eval_job jobs[16];
    unsigned started = 0;
    rp_err rc = RP_OK;
    for (unsigned t = 0; t < nt; t++) {
        judge_reset(js[t]);
        js[t]->cfg = cfg;
        jobs[t] = (eval_job){.h = h, .n = n, .t = t, .nt = nt, .test = test, .j = js[t]};
    }
    for (unsigned t = 1; t < nt; t++) {
        if (pthread_create(&jobs[t].th, NULL, eval_work, &jobs[t]) != 0) {
            rc = rp_errf(eb, RP_UNAVAILABLE, "cannot start a thread");
            break;
        }
        started++;
    }
    if (rc == RP_OK) eval_work(&jobs[0]);
    for (unsigned t = 1; t <= started; t++) pthread_join(jobs[t].th, NULL);
    if (rc != RP_OK) return rc;
    memset(card, 0, sizeof *card);
    if (base) memset(base, 0, sizeof *base);
    for (unsigned t = 0; t < nt; t++) {
        tally_add(card, &js[t]->a.card);
        if (base) tally_add(base, &js[t]->a.base);
    }
    return RP_OK;
}

static bool better(const rp_bt_tally *a, const rp_bt_tally *b) {
    return a->top1 > b->top1 || (a->top1 == b->top1 && a->top3 > b->top3);
}

typedef struct rng {
    uint64_t s;
} rng;

static double rng_unit(rng *r) { return (double)(mix64(r->s++) >> 11) / 9007199254740992.0; }

rp_err rp_tune(rp_store *s, const rp_config *cfg, const rp_tune_opts *o, rp_tune_result *out,
               rp_errbuf *eb) {
    memset(out, 0, sizeof *out);
    out->best = *cfg;
    unsigned nt = o->threads ? o->threads : 2;
    if (nt > 16) nt = 16;
    idlist ids = {0};
    held *h = NULL;
    size_t nh = 0;
    judge *js[16] = {0};
    MDB_txn *txn = NULL;
    reader *r = NULL;
    rp_err rc = list_ids(s, &ids, eb);
    if (rc != RP_OK) goto done;
    /* Which customers: all, or the o->customers with the smallest seeded hash. */
    uint64_t thr = UINT64_MAX;
    if (o->customers && ids.n > o->customers) {
        uint64_t *k = malloc(ids.n * sizeof *k);
        if (!k) {
            rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < ids.n; i++) k[i] = hash_str(mix64(o->seed), rp_str_c(ids.ids[i]));
        qsort(k, ids.n, sizeof *k, u64_cmp);
        thr = k[o->customers - 1];
        free(k);
    }
    if ((h = calloc(ids.n ? ids.n : 1, sizeof *h)) == NULL || (r = calloc(1, sizeof *r)) == NULL) {
        rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory");
        goto done;
    }
    if ((rc = rp_store_rbegin(s, &txn, eb)) != RP_OK) goto done;
    for (size_t i = 0; i < ids.n; i++) {
        rp_str id = rp_str_c(ids.ids[i]);
        if (thr != UINT64_MAX && hash_str(mix64(o->seed), id) > thr) continue;
        rc = read_customer(s, txn, id, r, eb);
        if (rc == RP_NOT_FOUND) continue;
        if (rc != RP_OK) goto done;
        held *x = &h[nh];
        x->c = r->c;
        x->nev = r->nev;
        x->nis = r->nis;
        x->ev = malloc((r->nev ? r->nev : 1) * sizeof *x->ev);
        x->is = malloc((r->nis ? r->nis : 1) * sizeof *x->is);
        if (!x->ev || !x->is) {
            free(x->ev);
            free(x->is);
            rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory");
            goto done;
        }
        memcpy(x->ev, r->ev, r->nev * sizeof *x->ev);
        memcpy(x->is, r->is, r->nis * sizeof *x->is);
        /* The split: a fixed hash of the id (not the seed), 3 in 10 held out. */
        x->test = hash_str(0x5eed, id) % 10 < 3;
        if (x->test)
            out->test_customers++;
        else
            out->train_customers++;
        nh++;
    }
    for (unsigned t = 0; t < nt; t++)
        if (!(js[t] = judge_new(cfg))) {
            rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory");
            goto done;
        }

    uint64_t total_evals = 1 + o->trials + 2 * (RP_TUNE_NPARAM * 2 + 6) + 3, nev = 0;
#define EVAL(split, c, card, base)                                                         \
    do {                                                                                   \
        if ((rc = eval_split(h, nh, split, c, js, nt, card, base, eb)) != RP_OK) goto done; \
        nev++;                                                                             \
        if (o->progress) o->progress(o->progress_arg, nev, total_evals);                   \
    } while (0)

    rp_config best = *cfg, cand;
    rp_bt_tally bt, ct, base;
    EVAL(false, &best, &bt, NULL);
    out->train_current = bt;
    /* Random search: weights uniform in [0, W_MAX], half-lives log-uniform. */
    rng g = {mix64(o->seed ^ 0x74756e65u)};
    for (uint32_t t = 0; t < o->trials; t++) {
        cand = *cfg;
        for (unsigned i = 0; i < RP_TUNE_NPARAM; i++) {
            double u = rng_unit(&g);
            rp_tune_param_set(&cand, i, i < 6 ? u * W_MAX : HL_MIN * exp(u * log(HL_MAX / HL_MIN)));
        }
        EVAL(false, &cand, &ct, NULL);
        if (better(&ct, &bt)) {
            best = cand;
            bt = ct;
        }
    }
    /* Coordinate refinement: halve, double (and for weights zero) one
     * setting at a time, two rounds, keeping every strict improvement. */
    static const double factors[3] = {0.5, 2.0, 0.0};
    for (int round = 0; round < 2; round++)
        for (unsigned i = 0; i < RP_TUNE_NPARAM; i++)
            for (unsigned f = 0; f < (i < 6 ? 3u : 2u); f++) {
                cand = best;
                rp_tune_param_set(&cand, i, rp_tune_param_get(&best, i) * factors[f]);
                if (rp_tune_param_get(&cand, i) == rp_tune_param_get(&best, i)) continue;
                EVAL(false, &cand, &ct, NULL);
                if (better(&ct, &bt)) {
                    best = cand;
                    bt = ct;
                }
            }
    out->train_best = bt;
    EVAL(true, cfg, &out->test_current, &base);
    out->test_base = base;
    EVAL(true, &best, &out->test_best, NULL);
    out->evaluations = (uint32_t)nev;
    out->improves = better(&out->test_best, &out->test_current);
    out->best = out->improves ? best : *cfg;
#undef EVAL
done:
    if (txn) rp_store_rend(s, txn);
    for (unsigned t = 0; t < nt; t++) judge_free(js[t]);
    for (size_t i = 0; i < nh; i++) {
        free(h[i].ev);
        free(h[i].is);
    }
    free(h);
    if (r) {
        free(r->ev);
        free(r);
    }
    idlist_free(&ids);
    return rc;
}
