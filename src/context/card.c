/* card.c — likely reasons, empathy cues, attributes and the route answer.
 *
 * Scoring. Every signal found in a customer's issues and events adds a
 * contribution to its topic:
 *
 *     contribution = weight × 0.5 ^ (age_hours / half_life_hours)
 *
 * with the weight and half-life of its kind from the config (weight_* and
 * halflife_*_h). The signals, and the moment their age is counted from:
 *
 *   broken promise    an issue not resolved whose follow_up_due < at;
 *                     age since follow_up_due.
 *   issue changed     an open issue (not a broken promise) updated within
 *                     issue_changed_days; age since updated_at.
 *   open issue        any other open issue; age since updated_at (opened_at
 *                     when the update is unknown or after at).
 *   unresolved contact  a contact whose outcome is not resolved/none; age
 *                     since its ts. Each such contact adds up.
 *   call driver       a non-contact event whose kind is not routine; age
 *                     since its ts. Each adds up.
 *   habit             a weak prior: weight × (recency-weighted contacts about
 *                     the topic) / max(1, recency-weighted contacts), with the
 *                     habitual half-life. So habits together add at most
 *                     weight_habitual, and an old habit fades.
 *
 * An issue gives exactly one issue signal (the first that applies in the
 * order above). An unresolved contact or a call driver is superseded — it
 * adds nothing — when a later contact about the same topic was resolved, or
 * when the issue it links is resolved: the customer already got an answer.
 *
 * A topic's score is 1 - exp(-sum): monotone (it keeps the order of sums),
 * 0 for nothing, 0.63 for one fresh full-weight signal, approaching 1 as
 * signals pile up. Reasons are ranked by sum, ties by topic name (ASCII
 * case-insensitive, then bytewise), and those scoring under
 * RP_CARD_MIN_SCORE are dropped. A reason's evidence, event_ts and issue_id
 * come from its strongest signal; when that signal names no issue, issue_id
 * comes from the strongest signal on the topic that does.
 *
 * Topics are compared ASCII case-insensitively ("Billing" = "billing"; the
 * first spelling met is shown). An empty topic is the event's kind for a
 * non-contact event (an outage with no topic is about the outage) and
 * "general" otherwise. Kinds are compared exactly ("contact"). At most
 * RP_CARD_MAX_TOPICS topics are scored; issues and newer events are read
 * first, so if a history ever holds more distinct topics, the topics only
 * older events mention are the ones left out.
 *
 * Issues are evaluated in their stored (current) state: the store keeps no
 * issue history, so `at` can hide an issue opened after it but cannot bring
 * back a status it had before its last update.
 *
 * Times in sentences are UTC with a "UTC" suffix: rendering in the
 * customer's IANA zone would need TZ/setenv/localtime, which is not
 * thread-safe, and the server renders cards on several threads.
 *
 * All text is built with a small bounded builder that cuts only at UTF-8
 * character boundaries, so sentences stay valid UTF-8 when a long summary
 * is excerpted (inputs were validated as UTF-8 when they were stored).
 */
#include "context/card.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "model/codec.h"

#define DAY 86400
#define HOUR 3600

static const rp_str GENERAL = {"general", 7};

/* --- a bounded UTF-8-safe text builder ----------------------------------- */

typedef struct sbuf {
    char *p;
    size_t cap, n; /* cap >= 1: room for the NUL */
} sbuf;

static void sb_init(sbuf *b, char *p, size_t cap) {
    assert(cap > 0);
    b->p = p;
    b->cap = cap;
    b->n = 0;
    p[0] = '\0';
}

/* The longest prefix of s[0..n) not longer than max that does not split a
 * UTF-8 sequence (s is assumed valid UTF-8). */
static size_t utf8_prefix(const char *s, size_t n, size_t max) {
    if (n <= max) return n;
    size_t k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    return k;
}

/* Append n bytes, cut at a character boundary when they do not fit. */
static void sb_put(sbuf *b, const char *s, size_t n) {
    size_t room = b->cap - 1 - b->n;
    n = utf8_prefix(s, n, room);
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_str(sbuf *b, rp_str s) { sb_put(b, s.p, s.n); }

/* printf-style append for short ASCII pieces (numbers, dates): 128 bytes
 * at most per call, which every caller stays under. */
static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    sb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* Append at most max bytes of s, with "..." when it had to be cut. */
static void sb_excerpt(sbuf *b, rp_str s, size_t max) {
    size_t k = utf8_prefix(s.p, s.n, max);
    sb_put(b, s.p, k);
    if (k < s.n) sb_puts(b, "...");
}

/* Append a kind for reading: '_' and '-' become spaces, the first ASCII
 * letter is capitalized when cap is set ("recall_notice" -> "Recall notice"). */
static void sb_kind(sbuf *b, rp_str kind, bool cap) {
    for (size_t i = 0; i < kind.n; i++) {
        char c = kind.p[i];
        if (c == '_' || c == '-') c = ' ';
        if (i == 0 && cap && c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
        sb_put(b, &c, 1);
    }
}

/* --- small string helpers ------------------------------------------------ */

static char lc(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static bool str_ieq(rp_str a, rp_str b) {
    if (a.n != b.n) return false;
    if (a.p == b.p) return true; /* light events share one copy of each string */
    for (size_t i = 0; i < a.n; i++)
        if (lc(a.p[i]) != lc(b.p[i])) return false;
    return true;
}

static bool str_ieqc(rp_str a, const char *c) { return str_ieq(a, rp_str_c(c)); }

/* Total order: ASCII case-insensitive, then shorter first, then bytewise,
 * so that two spellings never compare equal unless identical. */
static int str_icmp(rp_str a, rp_str b) {
    size_t m = a.n < b.n ? a.n : b.n;
    for (size_t i = 0; i < m; i++) {
        unsigned char x = (unsigned char)lc(a.p[i]), y = (unsigned char)lc(b.p[i]);
        if (x != y) return x < y ? -1 : 1;
    }
    if (a.n != b.n) return a.n < b.n ? -1 : 1;
    int c = a.n ? memcmp(a.p, b.p, a.n) : 0;
    return c < 0 ? -1 : c > 0;
}

static bool has_flag(const rp_customer *c, const char *flag) {
    for (uint32_t i = 0; i < c->nflags && i < RP_MAX_FLAGS; i++)
        if (str_ieqc(c->flags[i], flag)) return true;
    return false;
}

static const rp_str *find_pref(const rp_customer *c, const char *key) {
    for (uint32_t i = 0; i < c->nprefs && i < RP_MAX_PREFS; i++)
        if (str_ieqc(c->prefs[i].key, key)) return &c->prefs[i].value;
    return NULL;
}

static bool is_contact(const rp_event *e) { return rp_str_eqc(e->kind, "contact"); }

static bool is_unresolved_contact(const rp_event *e) {
    return is_contact(e) && e->outcome != RP_OUT_RESOLVED && e->outcome != RP_OUT_NONE;
}

static bool is_routine(const rp_config *cfg, rp_str kind) {
    return rp_config_list_has(cfg->routine_kinds, kind.p ? kind.p : "", kind.n);
}

/* Is e a call driver (not a contact, kind not routine)? Over one history: light events from a digest share one
 * copy of each kind, so the answer for a kind's bytes is remembered by
 * their address (a full history's kinds each have their own, and just
 * miss). Few kinds per customer: a small table, first come first kept. */
typedef struct driver_memo {
    const char *p[8];
    size_t n[8];
    bool routine[8];
    uint32_t len;
} driver_memo;

static bool is_call_driver_memo(const rp_config *cfg, driver_memo *m, const rp_event *e) {
    if (is_contact(e)) return false;
    for (uint32_t i = 0; i < m->len; i++)
        if (m->p[i] == e->kind.p && m->n[i] == e->kind.n) return !m->routine[i];
    bool routine = is_routine(cfg, e->kind);
    if (m->len < 8 && e->kind.p != NULL) {
        m->p[m->len] = e->kind.p;
        m->n[m->len] = e->kind.n;
        m->routine[m->len++] = routine;
    }
    return !routine;
}

static rp_str event_topic(const rp_event *e) {
    if (e->topic.n) return e->topic;
    if (!is_contact(e) && e->kind.n) return e->kind;
    return GENERAL;
}

static rp_str issue_topic(const rp_issue *i) { return i->topic.n ? i->topic : GENERAL; }

/* Issue states as of at. opened_at == 0 (unknown) counts as long ago. */
static bool issue_exists(const rp_issue *i, int64_t at) { return i->opened_at <= at; }
static bool issue_open(const rp_issue *i, int64_t at) {
    return issue_exists(i, at) && i->status != RP_ST_RESOLVED;
}
static bool issue_broken(const rp_issue *i, int64_t at) {
    return issue_open(i, at) && i->follow_up_due != 0 && i->follow_up_due < at;
}
static bool issue_changed(const rp_config *cfg, const rp_issue *i, int64_t at) {
    return issue_open(i, at) && i->updated_at != 0 && i->updated_at <= at &&
           at - i->updated_at < (int64_t)cfg->issue_changed_days * DAY;
}
/* The moment an open issue last moved, as far as `at` can see. */
static int64_t issue_ref_time(const rp_issue *i, int64_t at) {
    if (i->updated_at != 0 && i->updated_at <= at) return i->updated_at;
    return i->opened_at != 0 ? i->opened_at : at;
}

static const rp_issue *find_issue(const rp_issue *issues, uint32_t n, rp_str id) {
    if (id.n == 0) return NULL;
    for (uint32_t i = 0; i < n; i++)
        if (rp_str_eq(issues[i].issue_id, id)) return &issues[i];
    return NULL;
}

/* 0.5 ^ (age_hours / half_life_hours); a timestamp after `at` has age 0. */
static double decay(int64_t from, int64_t at, double hl_h) {
    double age_h = from >= at ? 0.0 : (double)(at - from) / (double)HOUR;
    return exp2(-age_h / hl_h);
}

/* The events the card may read: the first card_max_events. */
static uint32_t usable_events(const rp_config *cfg, uint32_t nevents) {
    return nevents < cfg->card_max_events ? nevents : cfg->card_max_events;
}

/* --- phrases --------------------------------------------------------------- */

void rp_card_age_phrase(int64_t ts, int64_t at, char *out, size_t cap) {
    sbuf b;
    sb_init(&b, out, cap);
    int64_t d = at - ts;
    if (ts > at || d < 60) sb_puts(&b, "just now");
    else if (d < HOUR) sb_printf(&b, "%lld minute%s ago", (long long)(d / 60), d / 60 == 1 ? "" : "s");
    else if (d < DAY) sb_printf(&b, "%lld hour%s ago", (long long)(d / HOUR), d / HOUR == 1 ? "" : "s");
    else sb_printf(&b, "%lld day%s ago", (long long)(d / DAY), d / DAY == 1 ? "" : "s");
}

static const char *const wday_names[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const mon_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void rp_card_when_phrase(int64_t ts, int64_t at, char *out, size_t cap) {
    sbuf b;
    sb_init(&b, out, cap);
    time_t t = (time_t)ts, ta = (time_t)at;
    struct tm tm, tma;
    if (gmtime_r(&t, &tm) == NULL || gmtime_r(&ta, &tma) == NULL) {
        sb_printf(&b, "unix time %lld", (long long)ts);
        return;
    }
    int64_t d = at > ts ? at - ts : ts - at;
    if (d < 6 * (int64_t)DAY)
        sb_printf(&b, "%s %02d:%02d UTC", wday_names[tm.tm_wday], tm.tm_hour, tm.tm_min);
    else if (tm.tm_year == tma.tm_year)
        sb_printf(&b, "%s %d %s %02d:%02d UTC", wday_names[tm.tm_wday], tm.tm_mday,
                  mon_names[tm.tm_mon], tm.tm_hour, tm.tm_min);
    else
        sb_printf(&b, "%d %s %d %02d:%02d UTC", tm.tm_mday, mon_names[tm.tm_mon],
                  tm.tm_year + 1900, tm.tm_hour, tm.tm_min);
}

static void sb_age(sbuf *b, int64_t ts, int64_t at) {
    char tmp[48];
    rp_card_age_phrase(ts, at, tmp, sizeof tmp);
    sb_puts(b, tmp);
}

static void sb_when(sbuf *b, int64_t ts, int64_t at) {
    char tmp[48];
    rp_card_when_phrase(ts, at, tmp, sizeof tmp);
    sb_puts(b, tmp);
}

static const struct {
    const char *tag, *name;
} lang_table[] = {
    {"am", "Amharic"},   {"ar", "Arabic"},     {"bn", "Bengali"},   {"ca", "Catalan"},
    {"cs", "Czech"},     {"cy", "Welsh"},      {"da", "Danish"},    {"de", "German"},
    {"el", "Greek"},     {"en", "English"},    {"es", "Spanish"},   {"fa", "Persian"},
    {"fi", "Finnish"},   {"fil", "Filipino"},  {"fr", "French"},    {"ga", "Irish"},
    {"gu", "Gujarati"},  {"he", "Hebrew"},     {"hi", "Hindi"},     {"ht", "Haitian Creole"},
    {"hu", "Hungarian"}, {"id", "Indonesian"}, {"it", "Italian"},   {"ja", "Japanese"},
    {"ko", "Korean"},    {"ms", "Malay"},      {"nb", "Norwegian"}, {"nl", "Dutch"},
    {"no", "Norwegian"}, {"pa", "Punjabi"},    {"pl", "Polish"},    {"pt", "Portuguese"},
    {"ro", "Romanian"},  {"ru", "Russian"},    {"so", "Somali"},    {"sv", "Swedish"},
    {"sw", "Swahili"},   {"ta", "Tamil"},      {"th", "Thai"},      {"tl", "Tagalog"},
    {"tr", "Turkish"},   {"uk", "Ukrainian"},  {"ur", "Urdu"},      {"vi", "Vietnamese"},
    {"yue", "Cantonese"}, {"zh", "Chinese"},
};

/* The primary subtag of a BCP 47 tag: everything before the first '-'
 * (or '_', which CRMs write for locales like "es_MX"). */
static rp_str lang_primary(rp_str tag) {
    size_t k = 0;
    while (k < tag.n && tag.p[k] != '-' && tag.p[k] != '_') k++;
    return (rp_str){tag.p, k};
}

const char *rp_card_language_name(rp_str tag) {
    rp_str p = lang_primary(tag);
    for (size_t i = 0; i < sizeof lang_table / sizeof lang_table[0]; i++)
        if (str_ieqc(p, lang_table[i].tag)) return lang_table[i].name;
    return NULL;
}

/* --- scoring ---------------------------------------------------------------- */

typedef enum sig_kind {
    SIG_BROKEN = 0, SIG_CHANGED, SIG_OPEN, SIG_UNRESOLVED, SIG_DRIVER, SIG_HABIT
} sig_kind;

typedef struct topic_acc {
    rp_str topic;
    double sum;
    double best;               /* the strongest contribution so far */
    sig_kind best_sig;
    const rp_event *best_ev;   /* for event signals */
    const rp_issue *best_is;   /* for issue signals */
    double best_id_w;          /* the strongest contribution naming an issue */
    rp_str issue_id;
    double habit_mass;         /* recency-weighted contacts about the topic */
    uint32_t nsig;
} topic_acc;

typedef struct scorer {
    topic_acc t[RP_CARD_MAX_TOPICS];
    uint32_t n;
} scorer;

/* The accumulator of a topic, created on first sight; NULL when the table
 * is full (see the header comment). Linear: a card has few topics. */
static topic_acc *acc_get(scorer *sc, rp_str topic) {
    for (uint32_t i = 0; i < sc->n; i++)
        if (str_ieq(sc->t[i].topic, topic)) return &sc->t[i];
    if (sc->n == RP_CARD_MAX_TOPICS) return NULL;
    topic_acc *a = &sc->t[sc->n++];
    memset(a, 0, sizeof *a);
    a->topic = topic;
    return a;
}

/* Add one contribution w to topic. Ties keep the signal added first, and
 * signals are added strongest kind first, newest first. */
static void acc_add(scorer *sc, rp_str topic, sig_kind sig, double w, const rp_event *ev,
                    const rp_issue *is, rp_str issue_id) {
    if (!(w > 0.0)) return; /* a zero weight disables a signal; decay can underflow */
    topic_acc *a = acc_get(sc, topic);
    if (a == NULL) return;
    a->sum += w;
    a->nsig++;
    if (w > a->best) {
        a->best = w;
        a->best_sig = sig;
        a->best_ev = ev;
        a->best_is = is;
    }
    if (issue_id.n && w > a->best_id_w) {
        a->best_id_w = w;
        a->issue_id = issue_id;
    }
}

/* Issue signals: exactly one per issue that exists and is open at `at`. */
static void score_issues(const rp_config *cfg, const rp_issue *issues, uint32_t nissues, int64_t at,
                         scorer *sc) {
    for (uint32_t i = 0; i < nissues; i++) {
        const rp_issue *is = &issues[i];
        if (!issue_open(is, at)) continue;
        rp_str topic = issue_topic(is);
        if (issue_broken(is, at))
            acc_add(sc, topic, SIG_BROKEN,
                    cfg->w_broken_promise * decay(is->follow_up_due, at, cfg->hl_broken_promise_h),
                    NULL, is, is->issue_id);
        else if (issue_changed(cfg, is, at))
            acc_add(sc, topic, SIG_CHANGED,
                    cfg->w_issue_changed * decay(is->updated_at, at, cfg->hl_issue_changed_h), NULL,
                    is, is->issue_id);
        else
            acc_add(sc, topic, SIG_OPEN,
                    cfg->w_open_issue * decay(issue_ref_time(is, at), at, cfg->hl_open_issue_h),
                    NULL, is, is->issue_id);
    }
}

/* Topics with a resolved contact newer than the event being scanned. */
typedef struct topic_set {
    rp_str t[RP_CARD_MAX_TOPICS];
    uint32_t n;
} topic_set;

static bool set_has(const topic_set *s, rp_str topic) {
    for (uint32_t i = 0; i < s->n; i++)
        if (str_ieq(s->t[i], topic)) return true;
    return false;
}

static void set_add(topic_set *s, rp_str topic) {
    if (!set_has(s, topic) && s->n < RP_CARD_MAX_TOPICS) s->t[s->n++] = topic;
}

/* Event signals, newest first: unresolved contacts and call drivers (each
 * unless superseded), and the habit mass of every contact. Returns the
 * total habit mass. */
static double score_events(const rp_config *cfg, const rp_event *ev, uint32_t n,
                           const rp_issue *issues, uint32_t nissues, int64_t at, scorer *sc) {
    topic_set resolved;
    resolved.n = 0;
    driver_memo memo;
    memo.len = 0;
    double habit_total = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        const rp_event *e = &ev[i];
        if (e->ts > at) continue;
        rp_str topic = event_topic(e);
        const rp_issue *linked = find_issue(issues, nissues, e->issue_id);
        bool superseded = set_has(&resolved, topic) ||
                          (linked != NULL && linked->status == RP_ST_RESOLVED);
        if (is_contact(e)) {
            double m = decay(e->ts, at, cfg->hl_habitual_h);
            habit_total += m;
            topic_acc *a = acc_get(sc, topic);
            if (a) a->habit_mass += m;
            if (e->outcome == RP_OUT_RESOLVED) set_add(&resolved, topic);
            else if (is_unresolved_contact(e) && !superseded)
                acc_add(sc, topic, SIG_UNRESOLVED,
                        cfg->w_unresolved_contact * decay(e->ts, at, cfg->hl_unresolved_contact_h),
                        e, NULL, e->issue_id);
        } else if (!superseded && is_call_driver_memo(cfg, &memo, e)) {
            acc_add(sc, topic, SIG_DRIVER, cfg->w_call_driver * decay(e->ts, at, cfg->hl_call_driver_h),
                    e, NULL, e->issue_id);
        }
    }
    return habit_total;
}

/* Habit: each topic's recency-weighted share of contacts, at most w_habitual
 * in all. Added last, so it never displaces a stronger signal as "best". */
static void score_habits(const rp_config *cfg, double habit_total, scorer *sc) {
    double norm = habit_total > 1.0 ? habit_total : 1.0;
    for (uint32_t i = 0; i < sc->n; i++) {
        topic_acc *a = &sc->t[i];
        if (a->habit_mass > 0.0)
            acc_add(sc, a->topic, SIG_HABIT, cfg->w_habitual * a->habit_mass / norm, NULL, NULL,
                    (rp_str){NULL, 0});
    }
}

/* Ranking order: larger sum first, then topic name. */
static int acc_before(const topic_acc *a, const topic_acc *b) {
    if (a->sum != b->sum) return a->sum > b->sum;
    return str_icmp(a->topic, b->topic) < 0;
}

static double score_of(double sum) {
    double s = 1.0 - exp(-sum);
    return round(s * 10000.0) / 10000.0;
}

/* --- evidence ---------------------------------------------------------------- */

static const char *contact_verb(rp_channel ch) {
    switch (ch) {
    case RP_CH_PHONE: return "Called";
    case RP_CH_CHAT: return "Chatted with us";
    case RP_CH_EMAIL: return "Emailed us";
    case RP_CH_WEB: return "Wrote to us online";
    case RP_CH_STORE: return "Visited a store";
    default: return "Contacted us";
    }
}

static const char *outcome_phrase(rp_outcome o) {
    switch (o) {
    case RP_OUT_TRANSFERRED: return "transferred, not resolved";
    case RP_OUT_ABANDONED: return "abandoned before being helped";
    default: return "not resolved";
    }
}

/* A raw help-desk word worth showing: present and not just the level's
 * name in another case ("High" beside high says nothing new). */
static bool raw_shown(rp_str raw, const char *level) {
    return raw.n > 0 && !str_ieq(raw, rp_str_c(level));
}

/* "Open issue I-7", "Pending high-severity issue I-7"; the words the help
 * desk sent follow in parentheses when they are not the levels' names, so
 * the agent sees the ticket as their own tool shows it: "Pending
 * critical-severity issue Z-1 (hold, urgent)". */
static void sb_issue_head(sbuf *b, const rp_issue *is) {
    sb_puts(b, is->status == RP_ST_PENDING ? "Pending " : "Open ");
    if (is->severity == RP_SEV_HIGH || is->severity == RP_SEV_CRITICAL) {
        sb_puts(b, rp_severity_name(is->severity));
        sb_puts(b, "-severity ");
    }
    sb_puts(b, "issue ");
    sb_str(b, is->issue_id);
    bool st = raw_shown(is->status_raw, rp_status_name(is->status));
    bool sev = is->severity != RP_SEV_NONE && raw_shown(is->severity_raw, rp_severity_name(is->severity));
    if (!st && !sev) return;
    sb_puts(b, " (");
    if (st) sb_str(b, is->status_raw);
    if (st && sev) sb_puts(b, ", ");
    if (sev) sb_str(b, is->severity_raw);
    sb_puts(b, ")");
}

static void evidence_broken(sbuf *b, const rp_issue *is, rp_str topic, int64_t at) {
    sb_puts(b, "Follow-up promised for ");
    sb_when(b, is->follow_up_due, at);
    sb_puts(b, " was missed (issue ");
    sb_str(b, is->issue_id);
    sb_puts(b, " about ");
    sb_str(b, topic);
    if (is->summary.n) {
        sb_puts(b, ": ");
        sb_excerpt(b, is->summary, 120);
    }
    sb_puts(b, ")");
}

static void evidence_issue(sbuf *b, const rp_issue *is, rp_str topic, int64_t at, bool changed) {
    sb_issue_head(b, is);
    sb_puts(b, " about ");
    sb_str(b, topic);
    if (changed && is->updated_at == is->opened_at) changed = false; /* new, not changed */
    sb_puts(b, changed ? " was updated " : ", opened ");
    sb_age(b, changed ? is->updated_at : (is->opened_at ? is->opened_at : issue_ref_time(is, at)), at);
    if (is->summary.n) {
        sb_puts(b, ": ");
        sb_excerpt(b, is->summary, 120);
    }
}

static void evidence_unresolved(sbuf *b, const rp_event *e, rp_str topic, int64_t at) {
    sb_puts(b, contact_verb(e->channel));
    sb_puts(b, " ");
    sb_age(b, e->ts, at);
    sb_puts(b, " about ");
    sb_str(b, topic);
    sb_puts(b, "; ");
    sb_puts(b, outcome_phrase(e->outcome));
    if (e->issue_id.n) {
        sb_puts(b, " (issue ");
        sb_str(b, e->issue_id);
        sb_puts(b, ")");
    }
    if (e->summary.n) {
        sb_puts(b, ": ");
        sb_excerpt(b, e->summary, 120);
    }
}

static void evidence_driver(sbuf *b, const rp_event *e, rp_str topic, int64_t at) {
    if (e->summary.n) {
        sb_excerpt(b, e->summary, 160);
        sb_puts(b, " (");
        sb_kind(b, e->kind, false);
        sb_puts(b, ", ");
        sb_age(b, e->ts, at);
        sb_puts(b, ", about ");
        sb_str(b, topic);
        sb_puts(b, ")");
    } else {
        sb_kind(b, e->kind.n ? e->kind : RP_STR_LIT("event"), true);
        sb_puts(b, " event ");
        sb_age(b, e->ts, at);
        sb_puts(b, " about ");
        sb_str(b, topic);
    }
}

/* "Habitual topic: billing in 4 of 6 past contacts, most recently 20 days ago". */
static void evidence_habit(sbuf *b, rp_str topic, const rp_event *ev, uint32_t n, int64_t at) {
    uint32_t k = 0, total = 0;
    int64_t last = -1;
    for (uint32_t i = 0; i < n; i++) {
        const rp_event *e = &ev[i];
        if (e->ts > at || !is_contact(e)) continue;
        total++;
        if (str_ieq(event_topic(e), topic)) {
            if (k == 0) last = e->ts;
            k++;
        }
    }
    sb_puts(b, "Habitual topic: ");
    sb_str(b, topic);
    sb_printf(b, " in %u of %u past contact%s", k, total, total == 1 ? "" : "s");
    if (last >= 0) {
        sb_puts(b, ", most recently ");
        sb_age(b, last, at);
    }
}

static void render_evidence(const topic_acc *a, const rp_event *ev, uint32_t n, int64_t at,
                            char *out, size_t cap) {
    sbuf b;
    sb_init(&b, out, cap);
    switch (a->best_sig) {
    case SIG_BROKEN: evidence_broken(&b, a->best_is, a->topic, at); break;
    case SIG_CHANGED: evidence_issue(&b, a->best_is, a->topic, at, true); break;
    case SIG_OPEN: evidence_issue(&b, a->best_is, a->topic, at, false); break;
    case SIG_UNRESOLVED: evidence_unresolved(&b, a->best_ev, a->topic, at); break;
    case SIG_DRIVER: evidence_driver(&b, a->best_ev, a->topic, at); break;
    case SIG_HABIT: evidence_habit(&b, a->topic, ev, n, at); break;
    }
    if (a->nsig > 1) sb_printf(&b, " (+%u more signal%s)", a->nsig - 1, a->nsig == 2 ? "" : "s");
}

static rp_signal sig_public(sig_kind k) {
    switch (k) {
    case SIG_BROKEN: return RP_SIG_BROKEN_PROMISE;
    case SIG_CHANGED: return RP_SIG_ISSUE_CHANGED;
    case SIG_OPEN: return RP_SIG_OPEN_ISSUE;
    case SIG_UNRESOLVED: return RP_SIG_UNRESOLVED_CONTACT;
    case SIG_DRIVER: return RP_SIG_CALL_DRIVER;
    case SIG_HABIT: return RP_SIG_HABIT;
    }
    return RP_SIG_HABIT;
}

const char *rp_card_signal_name(rp_signal s) {
    static const char *const names[RP_SIG__COUNT] = {"broken_promise", "issue_changed", "open_issue",
                                                     "unresolved_contact", "call_driver", "habit"};
    return (unsigned)s < RP_SIG__COUNT ? names[s] : "?";
}

/* The full event behind e: e itself without a fetch (the events are full);
 * on a failed fetch e (a light event: no summary) and card->fetch_failed. */
static const rp_event *full_event(const rp_card_fetch *fetch, const rp_event *e, rp_card *card) {
    if (fetch == NULL || e == NULL) return e;
    const rp_event *f = fetch->full(fetch->arg, e);
    if (f == NULL) {
        card->fetch_failed = true;
        return e;
    }
    return f;
}

/* Score every topic, rank, keep the best card_max_reasons; with evidence
 * text unless the mode is route (which reads only the top topic and issue). */
static void build_reasons(const rp_config *cfg, const rp_event *ev, uint32_t n,
                          const rp_issue *issues, uint32_t nissues, int64_t at, rp_card_mode mode,
                          const rp_card_fetch *fetch, rp_card *card) {
    scorer sc;
    sc.n = 0;
    score_issues(cfg, issues, nissues, at, &sc);
    double habit_total = score_events(cfg, ev, n, issues, nissues, at, &sc);
    score_habits(cfg, habit_total, &sc);

    /* Rank by insertion sort over indices: at most RP_CARD_MAX_TOPICS. */
    uint32_t order[RP_CARD_MAX_TOPICS], m = 0;
    for (uint32_t i = 0; i < sc.n; i++) {
        if (score_of(sc.t[i].sum) < RP_CARD_MIN_SCORE) continue;
        uint32_t j = m++;
        while (j > 0 && acc_before(&sc.t[i], &sc.t[order[j - 1]])) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    uint32_t max = cfg->card_max_reasons < RP_CARD_MAX_REASONS ? cfg->card_max_reasons : RP_CARD_MAX_REASONS;
    card->nreasons = 0;
    for (uint32_t r = 0; r < m && r < max; r++) {
        const topic_acc *a = &sc.t[order[r]];
        rp_reason *out = &card->reasons[card->nreasons++];
        out->topic = a->topic;
        out->issue_id = a->issue_id;
        out->event_ts = a->best_ev ? a->best_ev->ts : 0;
        out->sum = a->sum;
        out->score = score_of(a->sum);
        out->signal = sig_public(a->best_sig);
        out->evidence[0] = '\0';
        if (mode == RP_CARD_MODE_ROUTE) continue;
        topic_acc shown = *a;
        shown.best_ev = full_event(fetch, a->best_ev, card);
        render_evidence(&shown, ev, n, at, out->evidence, sizeof out->evidence);
    }
}

/* --- recent events, open issues, attributes ------------------------------------ */

static void build_recent(const rp_config *cfg, const rp_event *ev, uint32_t n, int64_t at,
                         const rp_card_fetch *fetch, rp_card *card) {
    uint32_t max = cfg->card_recent_events < RP_CARD_MAX_RECENT ? cfg->card_recent_events : RP_CARD_MAX_RECENT;
    card->nrecent = 0;
    for (uint32_t i = 0; i < n && card->nrecent < max; i++)
        if (ev[i].ts <= at) card->recent[card->nrecent++] = full_event(fetch, &ev[i], card);
}

/* Open-issue order: overdue promises first, then latest update, then id. */
static bool open_before(const rp_issue *a, const rp_issue *b, int64_t at) {
    bool ba = issue_broken(a, at), bb = issue_broken(b, at);
    if (ba != bb) return ba;
    int64_t ua = issue_ref_time(a, at), ub = issue_ref_time(b, at);
    if (ua != ub) return ua > ub;
    return str_icmp(a->issue_id, b->issue_id) < 0;
}

/* Open issues with an overdue promise as of at (the card's and the
 * route's broken_promises). */
static uint32_t count_broken(const rp_issue *issues, uint32_t nissues, int64_t at) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < nissues; i++)
        if (issue_broken(&issues[i], at)) k++;
    return k;
}

/* The agent of the most recent contact naming one (agent affinity); empty
 * when none does. Events newest first. */
static rp_str last_agent(const rp_event *ev, uint32_t n, int64_t at) {
    for (uint32_t i = 0; i < n; i++)
        if (ev[i].ts <= at && is_contact(&ev[i]) && ev[i].agent.n) return ev[i].agent;
    return (rp_str){NULL, 0};
}

static void build_open(const rp_issue *issues, uint32_t nissues, int64_t at, rp_card *card) {
    card->nopen = card->open_total = 0;
    card->broken_promises = count_broken(issues, nissues, at);
    for (uint32_t i = 0; i < nissues; i++) {
        const rp_issue *is = &issues[i];
        if (!issue_open(is, at)) continue;
        card->open_total++;
        /* Insert in order; past the cap the last (least urgent) falls off. */
        uint32_t j = card->nopen < RP_CARD_MAX_OPEN ? card->nopen++ : RP_CARD_MAX_OPEN;
        while (j > 0 && open_before(is, card->open[j - 1], at)) {
            if (j < RP_CARD_MAX_OPEN) card->open[j] = card->open[j - 1];
            j--;
        }
        if (j < RP_CARD_MAX_OPEN) card->open[j] = is;
    }
}

/* Attributes over contacts; newest first, so "last" is the first met. The
 * most frequent channel breaks ties by the most recently used. */
static void build_attrs(const rp_event *ev, uint32_t n, int64_t at, rp_card_attrs *a) {
    memset(a, 0, sizeof *a);
    a->last_agent = last_agent(ev, n, at);
    uint32_t ch_count[RP_CH__COUNT] = {0}, ch_first[RP_CH__COUNT];
    for (int c = 0; c < RP_CH__COUNT; c++) ch_first[c] = UINT32_MAX;
    uint32_t nsent = 0;
    double sent_sum = 0.0;
    bool seen = false;
    for (uint32_t i = 0; i < n; i++) {
        const rp_event *e = &ev[i];
        if (e->ts > at || !is_contact(e)) continue;
        int64_t age = at - e->ts;
        if (!seen) {
            seen = true;
            a->last_channel = e->channel;
            a->has_days_since_last_contact = true;
            a->days_since_last_contact = age / DAY;
        }
        if (age < 7 * DAY) a->contacts_7d++;
        if (age < 30 * DAY) {
            a->contacts_30d++;
            if ((unsigned)e->channel < RP_CH__COUNT && e->channel != RP_CH_NONE) {
                ch_count[e->channel]++;
                if (ch_first[e->channel] == UINT32_MAX) ch_first[e->channel] = i;
            }
        }
        if (e->has_sentiment && nsent < 5) {
            sent_sum += e->sentiment;
            nsent++;
        }
    }
    for (int c = 1; c < RP_CH__COUNT; c++) {
        rp_channel best = a->top_channel_30d;
        if (ch_count[c] == 0) continue;
        if (best == RP_CH_NONE || ch_count[c] > ch_count[best] ||
            (ch_count[c] == ch_count[best] && ch_first[c] < ch_first[best]))
            a->top_channel_30d = (rp_channel)c;
    }
    if (nsent) {
        a->has_avg_sentiment = true;
        a->avg_sentiment_last5 = round(sent_sum / nsent * 1000.0) / 1000.0;
    }
}

/* --- cues ------------------------------------------------------------------------ */

static rp_cue *cue_add(rp_card *card, const char *code, sbuf *b) {
    assert(card->ncues < RP_CARD_MAX_CUES);
    rp_cue *c = &card->cues[card->ncues++];
    c->code = code;
    sb_init(b, c->text, sizeof c->text);
    return c;
}

static void cue_accessibility(const rp_customer *who, rp_card *card) {
    static const struct {
        const char *flag, *text;
    } needs[] = {
        {"hearing_impaired", "Hard of hearing: speak clearly, offer text relay or chat"},
        {"visually_impaired", "Visually impaired: read details aloud"},
        {"speech_impaired", "Speech impaired: allow extra time, offer chat"},
        {"vulnerable", "Vulnerable customer: take extra care (vulnerable-customer policy)"},
        {"accessibility", "Accessibility needs on record"},
    };
    const rp_str *note = find_pref(who, "accessibility");
    sbuf b = {0}; /* set by cue_add; initialised for gcc -O3's -Wmaybe-uninitialized */
    bool any = false;
    for (size_t i = 0; i < sizeof needs / sizeof needs[0]; i++) {
        if (!has_flag(who, needs[i].flag)) continue;
        if (!any) cue_add(card, RP_CUE_ACCESSIBILITY, &b);
        else sb_puts(&b, "; ");
        any = true;
        sb_puts(&b, needs[i].text);
    }
    if (note && note->n) {
        if (!any) {
            cue_add(card, RP_CUE_ACCESSIBILITY, &b);
            sb_puts(&b, "Accessibility needs on record");
        }
        sb_puts(&b, " (noted: ");
        sb_excerpt(&b, *note, 80);
        sb_puts(&b, ")");
    }
}

static void cue_language(const rp_config *cfg, const rp_customer *who, rp_card *card) {
    if (who->language.n == 0) return;
    rp_str mine = lang_primary(who->language);
    rp_str def = lang_primary(rp_str_c(cfg->default_language));
    if (mine.n == 0 || str_ieq(mine, def)) return;
    sbuf b;
    cue_add(card, RP_CUE_LANGUAGE, &b);
    const char *name = rp_card_language_name(who->language);
    sb_puts(&b, "Prefers ");
    if (name) {
        sb_puts(&b, name);
        if (mine.n < who->language.n) { /* a region or script: show the tag */
            sb_puts(&b, " (");
            sb_excerpt(&b, who->language, 40);
            sb_puts(&b, ")");
        }
    } else {
        sb_puts(&b, "language ");
        sb_excerpt(&b, who->language, 40);
    }
}

/* Names the most recently due missed promise. */
static void cue_broken(const rp_issue *issues, uint32_t nissues, int64_t at, rp_card *card) {
    const rp_issue *latest = NULL;
    uint32_t count = 0;
    for (uint32_t i = 0; i < nissues; i++) {
        const rp_issue *is = &issues[i];
        if (!issue_broken(is, at)) continue;
        count++;
        if (latest == NULL || is->follow_up_due > latest->follow_up_due ||
            (is->follow_up_due == latest->follow_up_due && str_icmp(is->issue_id, latest->issue_id) < 0))
            latest = is;
    }
    if (latest == NULL) return;
    sbuf b;
    cue_add(card, RP_CUE_BROKEN_PROMISE, &b);
    if (count == 1) sb_puts(&b, "Follow-up promised for ");
    else sb_printf(&b, "%u follow-up promises were missed; the latest was for ", count);
    sb_when(&b, latest->follow_up_due, at);
    sb_puts(&b, count == 1 ? " was missed (issue " : " (issue ");
    sb_str(&b, latest->issue_id);
    sb_puts(&b, " about ");
    sb_str(&b, issue_topic(latest));
    sb_puts(&b, ")");
}

static const char *ordinal_suffix(uint32_t n) {
    if (n % 100 >= 11 && n % 100 <= 13) return "th";
    switch (n % 10) {
    case 1: return "st";
    case 2: return "nd";
    case 3: return "rd";
    default: return "th";
    }
}

/* repeat_contact counts the contacts already on record in the window; the
 * sentence numbers the present one after them ("3rd contact ... (2 before
 * this one)"), because the card is read while the customer is getting in
 * touch again. Topics are named most frequent first (ties: most recent). */
static void cue_repeat(const rp_config *cfg, const rp_event *ev, uint32_t n, int64_t at, rp_card *card) {
    enum { MAXT = 8 };
    rp_str topics[MAXT];
    uint32_t counts[MAXT], ntopics = 0, count = 0, general = 0;
    int64_t oldest = at, window = (int64_t)cfg->repeat_contact_days * DAY;
    for (uint32_t i = 0; i < n; i++) {
        const rp_event *e = &ev[i];
        if (e->ts > at || !is_contact(e) || at - e->ts >= window) continue;
        count++;
        oldest = e->ts;
        rp_str t = event_topic(e);
        if (t.p == GENERAL.p) {
            general++;
            continue;
        }
        uint32_t k = 0;
        while (k < ntopics && !str_ieq(topics[k], t)) k++;
        if (k == ntopics) {
            if (ntopics == MAXT) continue;
            topics[ntopics] = t;
            counts[ntopics++] = 0;
        }
        counts[k]++;
    }
    if (count < cfg->repeat_contact_min) return;
    /* Stable sort by count, descending (insertion keeps first-met order). */
    for (uint32_t i = 1; i < ntopics; i++) {
        rp_str t = topics[i];
        uint32_t c = counts[i], j = i;
        while (j > 0 && counts[j - 1] < c) {
            topics[j] = topics[j - 1];
            counts[j] = counts[j - 1];
            j--;
        }
        topics[j] = t;
        counts[j] = c;
    }
    int64_t span = (at - oldest + DAY - 1) / DAY;
    if (span < 1) span = 1;
    sbuf b;
    cue_add(card, RP_CUE_REPEAT_CONTACT, &b);
    sb_printf(&b, "%u%s contact", count + 1, ordinal_suffix(count + 1));
    bool one = ntopics == 1 && general == 0;
    if (one) {
        sb_puts(&b, " about ");
        sb_str(&b, topics[0]);
    }
    sb_printf(&b, " in %lld day%s (%u before this one", (long long)span, span == 1 ? "" : "s", count);
    if (!one && ntopics > 0) {
        sb_puts(&b, ": ");
        for (uint32_t k = 0; k < ntopics && k < 3; k++) {
            if (k) sb_puts(&b, ", ");
            sb_str(&b, topics[k]);
        }
    }
    sb_puts(&b, ")");
}

/* The most recent contact's sentiment decides; a strictly falling mood
 * over the last three contacts is said too. */
static void cue_sentiment(const rp_config *cfg, const rp_event *ev, uint32_t n, int64_t at, rp_card *card) {
    const rp_event *last[3];
    uint32_t k = 0;
    for (uint32_t i = 0; i < n && k < 3; i++)
        if (ev[i].ts <= at && is_contact(&ev[i])) last[k++] = &ev[i];
    if (k == 0 || !last[0]->has_sentiment || last[0]->sentiment > cfg->negative_sentiment) return;
    sbuf b;
    cue_add(card, RP_CUE_NEGATIVE_SENTIMENT, &b);
    sb_puts(&b, last[0]->sentiment <= -0.7 ? "Was very upset on last contact (" : "Was frustrated on last contact (");
    sb_age(&b, last[0]->ts, at);
    rp_str t = event_topic(last[0]);
    if (t.p != GENERAL.p) {
        sb_puts(&b, ", about ");
        sb_str(&b, t);
    }
    sb_puts(&b, ")");
    if (k == 3 && last[1]->has_sentiment && last[2]->has_sentiment &&
        last[0]->sentiment < last[1]->sentiment && last[1]->sentiment < last[2]->sentiment)
        sb_puts(&b, "; mood worsening over the last 3 contacts");
}

/* Is s one of the comma-separated items of list? ASCII case-insensitive,
 * so a CRM writing "Platinum" still meets vip_tiers = platinum. */
static bool list_has_ci(const char *list, rp_str s) {
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n > 0 && str_ieq((rp_str){p, n}, s)) return true;
        if (!comma) return false;
        p = comma + 1;
    }
}

static bool is_vip(const rp_config *cfg, const rp_customer *who) {
    if (has_flag(who, "vip")) return true;
    return who->tier.n && list_has_ci(cfg->vip_tiers, who->tier);
}

static void cue_vip(const rp_config *cfg, const rp_customer *who, rp_card *card) {
    if (!is_vip(cfg, who)) return;
    sbuf b;
    cue_add(card, RP_CUE_VIP, &b);
    sb_puts(&b, "VIP customer");
    if (who->tier.n) {
        sb_puts(&b, " (");
        sb_excerpt(&b, who->tier, 40);
        sb_puts(&b, " tier)");
    }
}

/* Whole calendar years from `since` to `at` (UTC); -1 when unknown. */
static int full_years(int64_t since, int64_t at) {
    time_t a = (time_t)since, b = (time_t)at;
    struct tm ts, ta;
    if (since <= 0 || since > at || gmtime_r(&a, &ts) == NULL || gmtime_r(&b, &ta) == NULL) return -1;
    int y = ta.tm_year - ts.tm_year;
    long ka = ((ta.tm_mon * 32L + ta.tm_mday) * 24 + ta.tm_hour) * 3600L + ta.tm_min * 60 + ta.tm_sec;
    long ks = ((ts.tm_mon * 32L + ts.tm_mday) * 24 + ts.tm_hour) * 3600L + ts.tm_min * 60 + ts.tm_sec;
    if (ka < ks) y--; /* this year's anniversary is still ahead */
    return y;
}

static void cue_tenure(const rp_config *cfg, const rp_customer *who, int64_t at, rp_card *card) {
    int y = full_years(who->customer_since, at);
    if (y < 0 || (uint32_t)y < cfg->long_tenure_years) return;
    time_t t = (time_t)who->customer_since;
    struct tm tm;
    gmtime_r(&t, &tm);
    sbuf b;
    cue_add(card, RP_CUE_LONG_TENURE, &b);
    sb_printf(&b, "Customer for %d years (since %d)", y, tm.tm_year + 1900);
}

/* No contact and no issue on record: an issue means someone was in touch,
 * even if the contact itself was never logged. */
static void cue_first(const rp_event *ev, uint32_t n, const rp_issue *issues, uint32_t nissues,
                      int64_t at, rp_card *card) {
    for (uint32_t i = 0; i < n; i++)
        if (ev[i].ts <= at && is_contact(&ev[i])) return;
    for (uint32_t i = 0; i < nissues; i++)
        if (issue_exists(&issues[i], at)) return;
    sbuf b;
    cue_add(card, RP_CUE_FIRST_CONTACT, &b);
    sb_puts(&b, "First contact: no earlier calls, chats or emails on record");
}

static void cue_dnc(const rp_customer *who, rp_card *card) {
    if (!has_flag(who, "do_not_call")) return;
    sbuf b;
    cue_add(card, RP_CUE_DO_NOT_CALL, &b);
    sb_puts(&b, "Do not call: promise no callback, offer another channel");
}

/* Fixed order: how to speak to them, what went wrong, who they are. */
static void build_cues(const rp_config *cfg, const rp_customer *who, const rp_event *ev, uint32_t n,
                       const rp_issue *issues, uint32_t nissues, int64_t at, rp_card *card) {
    card->ncues = 0;
    cue_accessibility(who, card);
    cue_language(cfg, who, card);
    cue_broken(issues, nissues, at, card);
    cue_repeat(cfg, ev, n, at, card);
    cue_sentiment(cfg, ev, n, at, card);
    cue_vip(cfg, who, card);
    cue_tenure(cfg, who, at, card);
    cue_first(ev, n, issues, nissues, at, card);
    cue_dnc(who, card);
}

/* --- building ---------------------------------------------------------------------- */

static void card_reset(rp_card *card, int64_t at) {
    card->found = card->ambiguous = false;
    card->at = at;
    card->who = NULL;
    card->nreasons = card->ncues = card->nrecent = card->nopen = 0;
    card->open_total = card->broken_promises = 0;
    memset(&card->attrs, 0, sizeof card->attrs);
    card->ncandidates = 0;
    card->fetch_failed = false;
}


void rp_card_build_ex(const rp_config *cfg, const rp_customer *who, const rp_event *events,
                      uint32_t nevents, const rp_issue *issues, uint32_t nissues, int64_t at,
                      rp_card_mode mode, const rp_card_fetch *fetch, rp_card *out) {
    assert(cfg != NULL && who != NULL && out != NULL);
    assert(nevents == 0 || events != NULL);
    assert(nissues == 0 || issues != NULL);
    assert(fetch == NULL || fetch->full != NULL);
    uint32_t n = usable_events(cfg, nevents);
    card_reset(out, at);
    out->found = true;
    out->who = who;
    build_reasons(cfg, events, n, issues, nissues, at, mode, fetch, out);
    if (mode == RP_CARD_MODE_ROUTE) { /* what rp_route_from_card reads besides the reasons */
        out->broken_promises = count_broken(issues, nissues, at);
        out->attrs.last_agent = last_agent(events, n, at);
        return;
    }
    build_recent(cfg, events, n, at, fetch, out);
    build_open(issues, nissues, at, out);
    build_attrs(events, n, at, &out->attrs);
    build_cues(cfg, who, events, n, issues, nissues, at, out);
}

void rp_card_build(const rp_config *cfg, const rp_customer *who, const rp_event *events,
                   uint32_t nevents, const rp_issue *issues, uint32_t nissues, int64_t at,
                   rp_card *out) {
    rp_card_build_ex(cfg, who, events, nevents, issues, nissues, at, RP_CARD_MODE_CARD, NULL, out);
}

void rp_card_unknown(int64_t at, rp_card *out) {
    card_reset(out, at);
    sbuf b;
    cue_add(out, RP_CUE_FIRST_CONTACT, &b);
    sb_puts(&b, "Not in our records: likely a first contact");
}

void rp_card_ambiguous(int64_t at, rp_card *out) {
    card_reset(out, at);
    out->found = true;
    out->ambiguous = true;
}

bool rp_card_add_candidate(rp_card *card, const rp_customer *c, const rp_issue *issues,
                           uint32_t nissues, bool more) {
    assert(card->ambiguous);
    if (card->ncandidates >= RP_CARD_MAX_CANDIDATES) return false;
    rp_card_candidate *cd = &card->candidates[card->ncandidates++];
    cd->customer_id = c->id;
    cd->name = c->preferred_name.n ? c->preferred_name : c->name;
    cd->language = c->language;
    cd->tier = c->tier;
    uint32_t open = 0;
    for (uint32_t i = 0; i < nissues; i++)
        if (issue_open(&issues[i], card->at)) open++;
    sbuf b;
    sb_init(&b, cd->summary, sizeof cd->summary);
    if (c->tier.n) {
        sb_excerpt(&b, c->tier, 40);
        sb_puts(&b, " ");
    }
    sb_puts(&b, "customer");
    time_t t = (time_t)c->customer_since;
    struct tm tm;
    if (c->customer_since > 0 && c->customer_since <= card->at && gmtime_r(&t, &tm) != NULL)
        sb_printf(&b, " since %d", tm.tm_year + 1900);
    if (open == 0 && !more) sb_puts(&b, ", no open issues");
    else sb_printf(&b, ", %u%s open issue%s", open, more ? "+" : "", open == 1 && !more ? "" : "s");
    return true;
}

/* --- route ------------------------------------------------------------------------- */

static int tier_rank(const rp_config *cfg, const rp_customer *who) {
    if (is_vip(cfg, who) || str_ieqc(who->tier, "platinum") || str_ieqc(who->tier, "diamond")) return 2;
    if (str_ieqc(who->tier, "gold")) return 1;
    return 0;
}

int rp_card_priority(const rp_config *cfg, const rp_customer *who, uint32_t broken_promises) {
    if (who == NULL) return RP_PRIORITY_DEFAULT;
    int p = RP_PRIORITY_DEFAULT + tier_rank(cfg, who);
    if (broken_promises > 0) p++;
    if (has_flag(who, "vulnerable")) p++;
    return p > 5 ? 5 : p;
}

/* The language the candidates of an ambiguous key share, or none. */
static rp_str common_language(const rp_card *card) {
    if (card->ncandidates == 0) return (rp_str){NULL, 0};
    rp_str l = card->candidates[0].language;
    for (uint32_t i = 1; i < card->ncandidates; i++)
        if (!str_ieq(card->candidates[i].language, l)) return (rp_str){NULL, 0};
    return l;
}

void rp_route_from_card(const rp_config *cfg, const rp_card *card, rp_route *out) {
    memset(out, 0, sizeof *out);
    out->found = card->found;
    out->ambiguous = card->ambiguous;
    out->priority = RP_PRIORITY_DEFAULT;
    out->language = rp_str_c(cfg->default_language);
    if (card->ambiguous) {
        rp_str l = common_language(card);
        if (l.n) out->language = l;
        return;
    }
    if (!card->found || card->who == NULL) return;
    const rp_customer *who = card->who;
    out->customer_id = who->id;
    if (who->language.n) out->language = who->language;
    out->tier = who->tier;
    out->priority = rp_card_priority(cfg, who, card->broken_promises);
    if (card->nreasons) {
        out->intent = card->reasons[0].topic;
        out->issue_id = card->reasons[0].issue_id;
    }
    out->last_agent = card->attrs.last_agent;
}

/* --- encoding ------------------------------------------------------------------------ */

/* A string, or nil when empty. */
static void pack_opt(msgpack_packer *pk, rp_str s) {
    if (s.n == 0) msgpack_pack_nil(pk);
    else msgpack_pack_str_with_body(pk, s.p, s.n);
}

static void pack_channel(msgpack_packer *pk, rp_channel c) {
    if (c == RP_CH_NONE || (unsigned)c >= RP_CH__COUNT) msgpack_pack_nil(pk);
    else rp_mp_pack_cstr(pk, rp_channel_name(c));
}

static void pack_reason(msgpack_packer *pk, const rp_reason *r) {
    msgpack_pack_map(pk, 5);
    rp_mp_pack_cstr(pk, "topic");
    pack_opt(pk, r->topic);
    rp_mp_pack_cstr(pk, "issue_id");
    pack_opt(pk, r->issue_id);
    rp_mp_pack_cstr(pk, "event_ts");
    if (r->event_ts) msgpack_pack_int64(pk, r->event_ts);
    else msgpack_pack_nil(pk);
    rp_mp_pack_cstr(pk, "score");
    msgpack_pack_double(pk, r->score);
    rp_mp_pack_cstr(pk, "evidence");
    rp_mp_pack_cstr(pk, r->evidence);
}

static void pack_attrs(msgpack_packer *pk, const rp_card_attrs *a) {
    msgpack_pack_map(pk, 7);
    rp_mp_pack_cstr(pk, "contacts_7d");
    msgpack_pack_uint32(pk, a->contacts_7d);
    rp_mp_pack_cstr(pk, "contacts_30d");
    msgpack_pack_uint32(pk, a->contacts_30d);
    rp_mp_pack_cstr(pk, "last_channel");
    pack_channel(pk, a->last_channel);
    rp_mp_pack_cstr(pk, "top_channel_30d");
    pack_channel(pk, a->top_channel_30d);
    rp_mp_pack_cstr(pk, "last_agent");
    pack_opt(pk, a->last_agent);
    rp_mp_pack_cstr(pk, "avg_sentiment_last5");
    if (a->has_avg_sentiment) msgpack_pack_double(pk, a->avg_sentiment_last5);
    else msgpack_pack_nil(pk);
    rp_mp_pack_cstr(pk, "days_since_last_contact");
    if (a->has_days_since_last_contact) msgpack_pack_int64(pk, a->days_since_last_contact);
    else msgpack_pack_nil(pk);
}

void rp_card_encode(msgpack_packer *pk, const rp_card *card) {
    msgpack_pack_map(pk, 10);
    rp_mp_pack_cstr(pk, "found");
    if (card->found) msgpack_pack_true(pk);
    else msgpack_pack_false(pk);
    rp_mp_pack_cstr(pk, "ambiguous");
    if (card->ambiguous) msgpack_pack_true(pk);
    else msgpack_pack_false(pk);
    rp_mp_pack_cstr(pk, "at");
    msgpack_pack_int64(pk, card->at);
    rp_mp_pack_cstr(pk, "customer");
    if (card->who) rp_customer_encode(pk, card->who, RP_ENC_WIRE);
    else msgpack_pack_nil(pk);
    rp_mp_pack_cstr(pk, "likely_reasons");
    msgpack_pack_array(pk, card->nreasons);
    for (uint32_t i = 0; i < card->nreasons; i++) pack_reason(pk, &card->reasons[i]);
    rp_mp_pack_cstr(pk, "cues");
    msgpack_pack_array(pk, card->ncues);
    for (uint32_t i = 0; i < card->ncues; i++) {
        msgpack_pack_map(pk, 2);
        rp_mp_pack_cstr(pk, "code");
        rp_mp_pack_cstr(pk, card->cues[i].code);
        rp_mp_pack_cstr(pk, "text");
        rp_mp_pack_cstr(pk, card->cues[i].text);
    }
    rp_mp_pack_cstr(pk, "recent_events");
    msgpack_pack_array(pk, card->nrecent);
    for (uint32_t i = 0; i < card->nrecent; i++) rp_event_encode(pk, card->recent[i], RP_ENC_WIRE);
    rp_mp_pack_cstr(pk, "open_issues");
    msgpack_pack_array(pk, card->nopen);
    for (uint32_t i = 0; i < card->nopen; i++) rp_issue_encode(pk, card->open[i], RP_ENC_WIRE);
    rp_mp_pack_cstr(pk, "attributes");
    if (card->who) pack_attrs(pk, &card->attrs);
    else msgpack_pack_nil(pk);
    rp_mp_pack_cstr(pk, "candidates");
    msgpack_pack_array(pk, card->ncandidates);
    for (uint32_t i = 0; i < card->ncandidates; i++) {
        const rp_card_candidate *cd = &card->candidates[i];
        msgpack_pack_map(pk, 3);
        rp_mp_pack_cstr(pk, "customer_id");
        pack_opt(pk, cd->customer_id);
        rp_mp_pack_cstr(pk, "name");
        pack_opt(pk, cd->name);
        rp_mp_pack_cstr(pk, "summary");
        rp_mp_pack_cstr(pk, cd->summary);
    }
}

void rp_route_encode(msgpack_packer *pk, const rp_route *r) {
    msgpack_pack_map(pk, 9);
    rp_mp_pack_cstr(pk, "found");
    if (r->found) msgpack_pack_true(pk);
    else msgpack_pack_false(pk);
    rp_mp_pack_cstr(pk, "ambiguous");
    if (r->ambiguous) msgpack_pack_true(pk);
    else msgpack_pack_false(pk);
    rp_mp_pack_cstr(pk, "customer_id");
    pack_opt(pk, r->customer_id);
    rp_mp_pack_cstr(pk, "language");
    pack_opt(pk, r->language);
    rp_mp_pack_cstr(pk, "tier");
    pack_opt(pk, r->tier);
    rp_mp_pack_cstr(pk, "priority");
    msgpack_pack_int(pk, r->priority);
    rp_mp_pack_cstr(pk, "intent");
    pack_opt(pk, r->intent);
    rp_mp_pack_cstr(pk, "issue_id");
    pack_opt(pk, r->issue_id);
    rp_mp_pack_cstr(pk, "last_agent");
    pack_opt(pk, r->last_agent);
}
