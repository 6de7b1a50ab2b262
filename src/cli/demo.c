/* demo.c — the synthetic data set generator (see demo.h).
 *
 * Each customer draws from its own splitmix64 stream seeded by (seed, i), so
 * customer i does not depend on how many come before it. Times are offsets
 * back from `now`. Events are written oldest first, issues after them.
 * Strings come from small fixed vocabularies; JSON is written with one
 * escaping routine so any vocabulary stays valid JSON.
 */
#include "cli/demo.h"

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#define DAY 86400
#define HOUR 3600

typedef struct demo_rng {
    uint64_t s;
} demo_rng;

/* splitmix64: tiny, fast, good enough for synthetic data. */
static uint64_t demo_next(demo_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). n > 0. Modulo bias is irrelevant here. */
static uint64_t demo_below(demo_rng *r, uint64_t n) { return demo_next(r) % n; }

static demo_rng demo_stream(uint64_t seed, uint64_t i, uint64_t salt) {
    demo_rng r = {seed * 0x2545F4914F6CDD1Dull ^ (i * 0x9E3779B97F4A7C15ull) ^ salt};
    demo_next(&r);
    return r;
}

#define PICK(r, arr) (arr[demo_below((r), sizeof(arr) / sizeof(arr[0]))])

static const char *const first_names[] = {
    "Maria", "James", "Sofia", "Liam", "Aisha", "Noah", "Chen", "Olivia", "Mateo", "Emma",
    "Hiroshi", "Fatima", "Lucas", "Ava", "Diego", "Mia", "Arjun", "Isabella", "Kwame", "Chloe",
    "Pierre", "Anna", "Jonas", "Elena", "Omar", "Grace", "Luca", "Zoe", "Ivan", "Nora"};
static const char *const last_names[] = {
    "Garcia", "Smith", "Rossi", "Nguyen", "Khan", "Johnson", "Wang", "Brown", "Lopez", "Muller",
    "Tanaka", "Ali", "Silva", "Davis", "Martinez", "Wilson", "Patel", "Moreau", "Mensah", "Clark",
    "Dubois", "Kowalski", "Schmidt", "Petrov", "Haddad", "Murphy", "Bianchi", "Cohen", "Novak",
    "Olsen"};
static const char *const area_codes[] = {"415", "212", "312", "617", "206",
                                         "512", "303", "404", "702", "305"};
static const char *const timezones[] = {"America/Los_Angeles", "America/New_York",
                                        "America/Chicago", "America/Denver"};
static const char *const agents[] = {"agent-ana", "agent-ben", "agent-carla", "agent-dev",
                                     "agent-eli", "agent-fay", "agent-gus", "agent-hana"};
static const char *const notes[] = {
    "follows the local football club", "has two young kids", "recently moved house",
    "runs a small bakery", "training for a marathon", "loves gardening",
    "caring for an elderly parent", "just back from a trip to Japan"};
static const char *const habit_topics[] = {"billing", "delivery", "technical", "account",
                                           "orders"};

/* Write s as a JSON string (quotes included), escaping what JSON requires. */
static void demo_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void demo_kv_str(FILE *f, const char *k, const char *v, int comma) {
    fprintf(f, "%s\"%s\":", comma ? "," : "", k);
    demo_json_str(f, v);
}

void rp_demo_defaults(rp_demo_opts *o) {
    o->customers = 1000;
    o->seed = 1;
    o->now = (int64_t)time(NULL);
    o->events_min = 20;
    o->events_max = 200;
}

void rp_demo_customer_id(uint64_t i, char out[16]) { snprintf(out, 16, "c%07" PRIu64, i); }

/* The national number of customer i: unique for i < 80,000,000. */
static void demo_national(uint64_t i, char area[4], unsigned *exch, unsigned *line) {
    memcpy(area, area_codes[(i / 8000000) % 10], 4);
    *exch = 200 + (unsigned)((i / 10000) % 800);
    *line = (unsigned)(i % 10000);
}

/* Customers whose number is i*40 are duplicate profiles of customer i-1:
 * same person, same phone, another id. */
static bool demo_is_dup(uint64_t i) { return i > 1 && i % 40 == 0; }

/* The phone of the person behind profile i, as written (its own format). */
static void demo_phone_of(const rp_demo_opts *o, uint64_t i, char out[40]) {
    char a[4];
    unsigned ex, ln;
    demo_national(i, a, &ex, &ln);
    demo_rng r = demo_stream(o->seed, i, 7);
    switch (demo_below(&r, 6)) {
    case 0: snprintf(out, 40, "+1 (%s) %03u-%04u", a, ex, ln); break;
    case 1: snprintf(out, 40, "%s.%03u.%04u", a, ex, ln); break;
    case 2: snprintf(out, 40, "(%s) %03u-%04u", a, ex, ln); break;
    case 3: snprintf(out, 40, "1-%s-%03u-%04u", a, ex, ln); break;
    case 4: snprintf(out, 40, "tel:+1%s%03u%04u", a, ex, ln); break;
    default: snprintf(out, 40, "+1%s%03u%04u", a, ex, ln); break;
    }
}

void rp_demo_phone(const rp_demo_opts *o, uint64_t i, char out[40]) {
    demo_phone_of(o, demo_is_dup(i) ? i - 1 : i, out);
}

/* A customer's profile line. dup: this customer duplicates customer i-1. */
static void demo_customer(FILE *f, const rp_demo_opts *o, uint64_t i, demo_rng *r, int64_t since) {
    char id[16], phone[40], email[128];
    uint64_t who = i;
    bool dup = demo_is_dup(i); /* a duplicate profile of the previous customer */
    if (dup) who = i - 1;
    demo_rng nr = demo_stream(o->seed, who, 11);
    const char *first = PICK(&nr, first_names), *last = PICK(&nr, last_names);
    rp_demo_customer_id(i, id);
    fprintf(f, "{\"type\":\"customer\"");
    demo_kv_str(f, "id", id, 1);
    char name[96];
    snprintf(name, sizeof name, "%s %s", first, last);
    demo_kv_str(f, "name", name, 1);
    if (!dup) demo_kv_str(f, "preferred_name", first, 1);
    uint64_t lr = demo_below(r, 100);
    const char *lang = lr < 70 ? "en" : lr < 85 ? "es" : lr < 90 ? "fr" : lr < 95 ? "de" : "pt";
    demo_kv_str(f, "language", lang, 1);
    demo_kv_str(f, "timezone", PICK(r, timezones), 1);
    uint64_t tr = demo_below(r, 100);
    demo_kv_str(f, "tier", tr < 70 ? "standard" : tr < 90 ? "gold" : "platinum", 1);
    fprintf(f, ",\"customer_since\":%" PRId64, since);
    fprintf(f, ",\"flags\":[");
    int nf = 0;
    if (demo_below(r, 25) == 0) fprintf(f, "%s\"vip\"", nf++ ? "," : "");
    if (demo_below(r, 30) == 0) fprintf(f, "%s\"hearing_impaired\"", nf++ ? "," : "");
    if (demo_below(r, 40) == 0) fprintf(f, "%s\"vulnerable\"", nf++ ? "," : "");
    if (demo_below(r, 50) == 0) fprintf(f, "%s\"do_not_call\"", nf++ ? "," : "");
    fprintf(f, "],\"preferences\":{");
    static const char *const chans[] = {"phone", "email", "chat", "sms"};
    demo_kv_str(f, "channel", PICK(r, chans), 0);
    static const char *const windows[] = {"mornings", "afternoons", "evenings", "weekends"};
    demo_kv_str(f, "contact_window", PICK(r, windows), 1);
    static const char *const tones[] = {"formal", "friendly", "brief"};
    demo_kv_str(f, "tone", PICK(r, tones), 1);
    fprintf(f, "},\"rapport_notes\":[");
    if (demo_below(r, 3) == 0) demo_json_str(f, PICK(r, notes));
    fprintf(f, "],\"phones\":[");
    demo_phone_of(o, who, phone);
    demo_json_str(f, phone);
    if (i > 1 && i % 50 == 0 && !dup) { /* shared household line with the neighbour */
        demo_phone_of(o, i - 1, phone);
        fputc(',', f);
        demo_json_str(f, phone);
    }
    fprintf(f, "],\"emails\":[");
    /* Duplicates carry the same address in another case: still one key. */
    snprintf(email, sizeof email, dup ? "%s.%s%" PRIu64 "@Example.COM" : "%s.%s%" PRIu64 "@example.com",
             first, last, who);
    demo_json_str(f, email);
    fprintf(f, "],\"accounts\":[");
    char acct[32];
    snprintf(acct, sizeof acct, "ACC-%08" PRIu64, i);
    demo_json_str(f, acct);
    fprintf(f, "]}\n");
}

typedef struct demo_ev {
    int64_t ts;
    const char *channel, *kind, *topic, *summary, *outcome, *agent, *issue_id;
    int has_sentiment;
    double sentiment;
} demo_ev;

static void demo_event(FILE *f, const char *id, const demo_ev *e) {
    fprintf(f, "{\"type\":\"event\"");
    demo_kv_str(f, "customer_id", id, 1);
    fprintf(f, ",\"ts\":%" PRId64, e->ts);
    demo_kv_str(f, "channel", e->channel, 1);
    demo_kv_str(f, "kind", e->kind, 1);
    demo_kv_str(f, "topic", e->topic, 1);
    demo_kv_str(f, "summary", e->summary, 1);
    demo_kv_str(f, "outcome", e->outcome, 1);
    if (e->has_sentiment) fprintf(f, ",\"sentiment\":%.2f", e->sentiment);
    if (e->agent) demo_kv_str(f, "agent", e->agent, 1);
    if (e->issue_id) demo_kv_str(f, "issue_id", e->issue_id, 1);
    fprintf(f, "}\n");
}

/* One background event: a resolved contact about a habitual topic, or an
 * order/delivery/payment, or a routine web event. */
static void demo_background(demo_rng *r, int64_t ts, const char *habit, demo_ev *e) {
    static const char *const contact_ch[] = {"phone", "phone", "chat", "email"};
    memset(e, 0, sizeof *e);
    e->ts = ts;
    switch (demo_below(r, 10)) {
    case 0: case 1: case 2:
        e->channel = PICK(r, contact_ch); e->kind = "contact"; e->topic = habit;
        e->summary = "Question answered"; e->outcome = "resolved"; e->agent = PICK(r, agents);
        e->has_sentiment = 1; e->sentiment = (double)demo_below(r, 11) / 10.0 - 0.2;
        break;
    case 3: e->channel = "web"; e->kind = "order"; e->topic = "orders";
        e->summary = "Placed an order"; e->outcome = "none"; break;
    case 4: e->channel = "system"; e->kind = "delivery"; e->topic = "delivery";
        e->summary = "Order delivered"; e->outcome = "resolved"; break;
    case 5: e->channel = "system"; e->kind = "payment"; e->topic = "billing";
        e->summary = "Monthly payment received"; e->outcome = "resolved"; break;
    case 6: case 7: e->channel = "web"; e->kind = "login"; e->topic = "account";
        e->summary = "Signed in"; e->outcome = "none"; break;
    case 8: e->channel = "web"; e->kind = "page_view"; e->topic = "billing";
        e->summary = "Viewed the billing page"; e->outcome = "none"; break;
    default: e->channel = "email"; e->kind = "marketing"; e->topic = "orders";
        e->summary = "Received the newsletter"; e->outcome = "none"; break;
    }
}

/* The issue of the customer's current story (at most one open) plus older
 * resolved ones. */
typedef struct demo_issue {
    char id[32];
    const char *topic, *status, *severity, *summary;
    int64_t opened, updated, due;
    unsigned contacts;
} demo_issue;

static void demo_issue_line(FILE *f, const char *cid, const demo_issue *is) {
    fprintf(f, "{\"type\":\"issue\"");
    demo_kv_str(f, "customer_id", cid, 1);
    demo_kv_str(f, "issue_id", is->id, 1);
    demo_kv_str(f, "topic", is->topic, 1);
    demo_kv_str(f, "status", is->status, 1);
    demo_kv_str(f, "severity", is->severity, 1);
    demo_kv_str(f, "summary", is->summary, 1);
    fprintf(f, ",\"opened_at\":%" PRId64 ",\"updated_at\":%" PRId64, is->opened, is->updated);
    if (is->due) fprintf(f, ",\"follow_up_due\":%" PRId64, is->due);
    fprintf(f, ",\"contacts\":%u}\n", is->contacts);
}

/* Write the story events (the reason to call now) into ev[], return count.
 * Fills *open_issue when the story has one. */
static int demo_story(demo_rng *r, uint64_t i, int64_t now, const char *iid, demo_ev *ev,
                      demo_issue *open_issue) {
    int n = 0;
    const char *ag = PICK(r, agents);
    memset(open_issue, 0, sizeof *open_issue);
    switch (i % 8) {
    case 0: /* a delayed delivery, called twice, callback promised and missed */
        ev[n++] = (demo_ev){now - 6 * DAY, "web", "order", "delivery", "Ordered a sofa", "none", NULL, NULL, 0, 0};
        ev[n++] = (demo_ev){now - 4 * DAY, "system", "delivery_delayed", "delivery", "Delivery pushed back a week", "none", NULL, iid, 0, 0};
        ev[n++] = (demo_ev){now - 3 * DAY, "phone", "contact", "delivery", "Asked where the sofa is", "unresolved", ag, iid, 1, -0.2};
        ev[n++] = (demo_ev){now - 1 * DAY, "phone", "contact", "delivery", "Still no delivery date; upset", "transferred", ag, iid, 1, -0.7};
        *open_issue = (demo_issue){"", "delivery", "open", "high", "Sofa delivery delayed", now - 4 * DAY, now - 1 * DAY, now - 5 * HOUR, 2};
        break;
    case 1: /* a failed payment yesterday */
        ev[n++] = (demo_ev){now - 1 * DAY, "system", "payment_failed", "billing", "Card payment declined", "none", NULL, NULL, 0, 0};
        break;
    case 2: /* an outage in the area this morning */
        ev[n++] = (demo_ev){now - 5 * HOUR, "system", "outage", "technical", "Broadband outage in the area", "none", NULL, NULL, 0, 0};
        break;
    case 3: /* an open technical case, updated an hour ago */
        ev[n++] = (demo_ev){now - 2 * DAY, "chat", "contact", "technical", "Router keeps rebooting", "unresolved", ag, iid, 1, -0.1};
        *open_issue = (demo_issue){"", "technical", "pending", "medium", "Router replacement ordered", now - 2 * DAY, now - 1 * HOUR, 0, 1};
        break;
    case 4: /* nothing special: habit decides */
        break;
    case 5: /* a price change and an unresolved call about cancelling */
        ev[n++] = (demo_ev){now - 2 * DAY, "email", "price_change", "cancellation", "Plan price goes up next month", "none", NULL, NULL, 0, 0};
        ev[n++] = (demo_ev){now - 1 * DAY, "phone", "contact", "cancellation", "Wants to cancel over the price rise", "abandoned", ag, NULL, 1, -0.5};
        break;
    case 6: /* a kind never seen before still drives calls */
        ev[n++] = (demo_ev){now - 3 * HOUR, "system", "password_reset_locked", "account", "Account locked after resets", "none", NULL, NULL, 0, 0};
        break;
    default: /* a recent contact that was resolved */
        ev[n++] = (demo_ev){now - 2 * DAY, "phone", "contact", "billing", "Explained the invoice", "resolved", ag, NULL, 1, 0.6};
        break;
    }
    return n;
}

rp_err rp_demo_write(FILE *f, const rp_demo_opts *o, rp_errbuf *eb) {
    if (o->customers == 0 || o->customers > 100000000)
        return rp_errf(eb, RP_BAD_REQUEST, "customers must be 1..100000000");
    if (o->events_min > o->events_max || o->events_max > 1000)
        return rp_errf(eb, RP_BAD_REQUEST, "events range must satisfy min <= max <= 1000");
    demo_ev ev[1024];
    for (uint64_t i = 1; i <= o->customers; i++) {
        demo_rng r = demo_stream(o->seed, i, 3);
        char id[16], iid[32];
        rp_demo_customer_id(i, id);
        snprintf(iid, sizeof iid, "I-%07" PRIu64 "-1", i);
        int64_t tenure_days = 30 + (int64_t)demo_below(&r, 12 * 365);
        int64_t since = o->now - tenure_days * DAY;
        demo_customer(f, o, i, &r, since);
        demo_issue open;
        int nstory = demo_story(&r, i, o->now, iid, ev, &open);
        /* Background history: spread over the last min(tenure, 700) days,
         * skewed towards fewer events (most customers are quiet). */
        uint32_t span = o->events_max - o->events_min;
        uint32_t extra = span ? (uint32_t)(demo_below(&r, span + 1) * demo_below(&r, span + 1) / span) : 0;
        uint32_t nbg = o->events_min + extra;
        if (nbg < (uint32_t)nstory) nbg = (uint32_t)nstory;
        nbg -= (uint32_t)nstory;
        int64_t window = (tenure_days < 700 ? tenure_days : 700) * DAY;
        const char *habit = PICK(&r, habit_topics);
        /* Oldest first: timestamps strictly before the story window. */
        int64_t start = o->now - window, end = o->now - 7 * DAY;
        if (end <= start) end = start + 1;
        for (uint32_t k = 0; k < nbg; k++) {
            int64_t ts = start + (int64_t)((uint64_t)(end - start) * k / (nbg ? nbg : 1));
            ts += (int64_t)demo_below(&r, HOUR);
            demo_ev e;
            demo_background(&r, ts, habit, &e);
            demo_event(f, id, &e);
        }
        for (int k = 0; k < nstory; k++) demo_event(f, id, &ev[k]);
        /* Older resolved issues, then the open one. */
        unsigned nold = (unsigned)demo_below(&r, 3);
        for (unsigned k = 0; k < nold; k++) {
            demo_issue old = {"", PICK(&r, habit_topics), "resolved", "low", "Resolved on first contact",
                              start + (int64_t)k * DAY, start + (int64_t)k * DAY + HOUR, 0, 1};
            snprintf(old.id, sizeof old.id, "I-%07" PRIu64 "-%u", i, k + 2);
            demo_issue_line(f, id, &old);
        }
        if (open.topic) {
            memcpy(open.id, iid, sizeof open.id);
            demo_issue_line(f, id, &open);
        }
        if (ferror(f)) return rp_errf(eb, RP_INTERNAL, "demo: write error");
    }
    return RP_OK;
}
