/* test_card.c — the context-card and route engine, scenario by scenario.
 *
 * Each scenario is one realistic customer with a history and a reason to
 * be calling now; the test builds the card as of NOW and checks the top
 * reason (topic, issue), the cues present and absent, the attributes and
 * the route answer. Property tests then check the scoring rules (decay,
 * summing, ties, caps, weights), the `at` semantics (future records do not
 * exist; same input, same bytes), the encoded shapes, and the text helpers.
 * The glue tests at the end run the same questions through a real store
 * (context.c): every key kind, unknown and ambiguous keys, errors, `at`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <unistd.h>

#include "context/card.h"
#include "context/context.h"
#include "core/config.h"
#include "model/codec.h"
#include "model/ident.h"

#define H 3600
#define D 86400
/* Saturday 23 November 2024, 09:00 UTC. */
#define NOW ((int64_t)1732352400)
#define NOSENT NAN

static rp_config cfg;

/* --- building scenarios --------------------------------------------------- */

typedef struct scen {
    rp_customer c;
    rp_event ev[64];
    uint32_t nev;
    rp_issue is[16];
    uint32_t nis;
    rp_card card;
    rp_route route;
} scen;

static rp_str S(const char *p) { return p ? rp_str_c(p) : (rp_str){NULL, 0}; }

static scen *scen_new(const char *id, const char *name, const char *lang, const char *tier, int64_t since) {
    scen *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->c.id = S(id);
    s->c.name = S(name);
    s->c.language = S(lang);
    s->c.tier = S(tier);
    s->c.customer_since = since;
    s->c.version = 1;
    return s;
}

static void flag(scen *s, const char *f) { s->c.flags[s->c.nflags++] = S(f); }

static void pref(scen *s, const char *k, const char *v) {
    s->c.prefs[s->c.nprefs].key = S(k);
    s->c.prefs[s->c.nprefs++].value = S(v);
}

/* A contact `ago` seconds before NOW (negative: after NOW). */
static rp_event *contact(scen *s, int64_t ago, rp_channel ch, const char *topic, rp_outcome out,
                         double sentiment, const char *agent, const char *issue_id, const char *summary) {
    assert_true(s->nev < 64);
    rp_event *e = &s->ev[s->nev];
    memset(e, 0, sizeof *e);
    e->customer_id = s->c.id;
    e->ts = NOW - ago;
    e->seq = s->nev++;
    e->channel = ch;
    e->kind = S("contact");
    e->topic = S(topic);
    e->outcome = out;
    e->has_sentiment = !isnan(sentiment);
    e->sentiment = e->has_sentiment ? sentiment : 0.0;
    e->agent = S(agent);
    e->issue_id = S(issue_id);
    e->summary = S(summary);
    return e;
}

/* A non-contact event (system channel). */
static rp_event *event(scen *s, int64_t ago, const char *kind, const char *topic, const char *summary) {
    assert_true(s->nev < 64);
    rp_event *e = &s->ev[s->nev];
    memset(e, 0, sizeof *e);
    e->customer_id = s->c.id;
    e->ts = NOW - ago;
    e->seq = s->nev++;
    e->channel = RP_CH_SYSTEM;
    e->kind = S(kind);
    e->topic = S(topic);
    e->summary = S(summary);
    return e;
}

/* An issue; times are "seconds before NOW"; due is absolute (0: none). */
static rp_issue *issue(scen *s, const char *id, const char *topic, rp_status st, rp_severity sev,
                       int64_t opened_ago, int64_t updated_ago, int64_t due, const char *summary) {
    assert_true(s->nis < 16);
    rp_issue *i = &s->is[s->nis++];
    memset(i, 0, sizeof *i);
    i->customer_id = s->c.id;
    i->issue_id = S(id);
    i->topic = S(topic);
    i->status = st;
    i->severity = sev;
    i->opened_at = NOW - opened_ago;
    i->updated_at = NOW - updated_ago;
    i->follow_up_due = due;
    i->summary = S(summary);
    return i;
}

static int newest_first(const void *a, const void *b) {
    const rp_event *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? 1 : -1;
    return x->seq < y->seq ? 1 : (x->seq > y->seq ? -1 : 0);
}

static void pack_card(const rp_card *card, msgpack_sbuffer *buf);

/* rp_card_fetch.full over a scenario: the full event at e's (ts, seq). */
static const rp_event *scen_full(void *arg, const rp_event *e) {
    const scen *s = arg;
    for (uint32_t i = 0; i < s->nev; i++)
        if (s->ev[i].ts == e->ts && s->ev[i].seq == e->seq) return &s->ev[i];
    return NULL;
}

static const rp_event *no_full(void *arg, const rp_event *e) {
    (void)arg;
    (void)e;
    return NULL;
}

static void expect_same_bytes(const msgpack_sbuffer *a, const msgpack_sbuffer *b) {
    assert_int_equal(a->size, b->size);
    assert_memory_equal(a->data, b->data, a->size);
}

/* Every scenario also checks the other ways of building its card: a
 * route-mode build gives the same route answer, and a build from light
 * events (no summary, no event_id: what the digest holds) with a fetch of
 * the full ones packs to the same bytes; a fetch that fails is reported. */
static void check_modes(scen *s, const rp_config *c, int64_t at) {
    rp_card *alt = calloc(1, sizeof *alt);
    assert_non_null(alt);
    msgpack_sbuffer want, got;
    msgpack_sbuffer_init(&want);
    msgpack_sbuffer_init(&got);
    msgpack_packer pw, pg;
    msgpack_packer_init(&pw, &want, msgpack_sbuffer_write);
    msgpack_packer_init(&pg, &got, msgpack_sbuffer_write);
    rp_route r;
    rp_card_build_ex(c, &s->c, s->ev, s->nev, s->is, s->nis, at, RP_CARD_MODE_ROUTE, NULL, alt);
    rp_route_from_card(c, alt, &r);
    rp_route_encode(&pw, &s->route);
    rp_route_encode(&pg, &r);
    expect_same_bytes(&want, &got);

    rp_event light[64];
    for (uint32_t i = 0; i < s->nev; i++) {
        light[i] = s->ev[i];
        light[i].summary = (rp_str){NULL, 0};
        light[i].event_id = (rp_str){NULL, 0};
    }
    rp_card_fetch fetch = {scen_full, s};
    rp_card_build_ex(c, &s->c, light, s->nev, s->is, s->nis, at, RP_CARD_MODE_CARD, &fetch, alt);
    assert_false(alt->fetch_failed);
    msgpack_sbuffer_destroy(&want);
    msgpack_sbuffer_destroy(&got);
    pack_card(&s->card, &want);
    pack_card(alt, &got);
    expect_same_bytes(&want, &got);

    rp_card_fetch broken = {no_full, NULL};
    rp_card_build_ex(c, &s->c, light, s->nev, s->is, s->nis, at, RP_CARD_MODE_CARD, &broken, alt);
    assert_int_equal(alt->fetch_failed, alt->nrecent > 0);
    msgpack_sbuffer_destroy(&want);
    msgpack_sbuffer_destroy(&got);
    free(alt);
}

/* Sort the history as the store returns it, build the card and route, and
 * check the other modes agree. */
static void run_at(scen *s, const rp_config *c, int64_t at) {
    qsort(s->ev, s->nev, sizeof s->ev[0], newest_first);
    rp_card_build(c, &s->c, s->ev, s->nev, s->is, s->nis, at, &s->card);
    rp_route_from_card(c, &s->card, &s->route);
    check_modes(s, c, at);
}

static void run(scen *s) { run_at(s, &cfg, NOW); }

/* --- checks ----------------------------------------------------------------- */

static bool str_is(rp_str s, const char *c) { return c ? rp_str_eqc(s, c) : s.n == 0; }

static const rp_cue *cue(const rp_card *card, const char *code) {
    for (uint32_t i = 0; i < card->ncues; i++)
        if (strcmp(card->cues[i].code, code) == 0) return &card->cues[i];
    return NULL;
}

static const rp_reason *reason(const rp_card *card, const char *topic) {
    for (uint32_t i = 0; i < card->nreasons; i++)
        if (rp_str_eqc(card->reasons[i].topic, topic)) return &card->reasons[i];
    return NULL;
}

static void expect_top(const scen *s, const char *topic, const char *issue_id) {
    assert_true(s->card.nreasons > 0);
    const rp_reason *r = &s->card.reasons[0];
    if (!str_is(r->topic, topic) || !str_is(r->issue_id, issue_id))
        fail_msg("top reason %.*s/%.*s (%s), expected %s/%s", (int)r->topic.n, r->topic.p,
                 (int)r->issue_id.n, r->issue_id.p, r->evidence, topic, issue_id ? issue_id : "-");
}

static void expect_text(const char *text, const char *needle) {
    if (strstr(text, needle) == NULL) fail_msg("'%s' does not contain '%s'", text, needle);
}

static void expect_cue(const scen *s, const char *code, const char *needle) {
    const rp_cue *c = cue(&s->card, code);
    if (c == NULL) {
        fail_msg("cue %s missing", code);
        return; /* fail_msg does not return; gcc -O3 does not know it */
    }
    if (needle) expect_text(c->text, needle);
}

static void expect_no_cue(const scen *s, const char *code) {
    const rp_cue *c = cue(&s->card, code);
    if (c) fail_msg("unexpected cue %s: %s", code, c->text);
}

/* Invariants every card must keep: scores in 0..1 and non-increasing,
 * evidence non-empty, valid UTF-8 and naming its topic, cue texts set. */
static void check_invariants(const rp_card *card) {
    for (uint32_t i = 0; i < card->nreasons; i++) {
        const rp_reason *r = &card->reasons[i];
        assert_true(r->score >= RP_CARD_MIN_SCORE && r->score <= 1.0);
        if (i) {
            assert_true(card->reasons[i - 1].score >= r->score);
            assert_true(card->reasons[i - 1].sum >= r->sum);
        }
        assert_true(strlen(r->evidence) > 0);
        assert_true(rp_utf8_valid(r->evidence, strlen(r->evidence)));
        char topic[RP_TOKEN_MAX + 1];
        assert_true(r->topic.n <= RP_TOKEN_MAX);
        memcpy(topic, r->topic.p, r->topic.n);
        topic[r->topic.n] = '\0';
        expect_text(r->evidence, topic);
    }
    for (uint32_t i = 0; i < card->ncues; i++) {
        assert_true(strlen(card->cues[i].text) > 0);
        assert_true(rp_utf8_valid(card->cues[i].text, strlen(card->cues[i].text)));
        for (uint32_t j = 0; j < i; j++) assert_string_not_equal(card->cues[i].code, card->cues[j].code);
    }
}

static int setup(void **state) {
    (void)state;
    rp_config_defaults(&cfg);
    return 0;
}

/* --- scenarios ----------------------------------------------------------------- */

/* Promised a refund callback on Thursday 14:00; nobody called. */
static void test_missed_refund_callback(void **state) {
    (void)state;
    scen *s = scen_new("C-1001", "Dana Whitfield", "en-US", "standard", NOW - 3 * 365 * D);
    issue(s, "I-123", "refund", RP_ST_OPEN, RP_SEV_MEDIUM, 6 * D, 4 * D, NOW - 43 * H,
          "Refund of $42 for a blender that arrived broken");
    contact(s, 4 * D, RP_CH_PHONE, "refund", RP_OUT_UNRESOLVED, -0.2, "maria.k", "I-123",
            "Blender arrived broken; refund callback promised for Thursday");
    contact(s, 40 * D, RP_CH_EMAIL, "billing", RP_OUT_RESOLVED, 0.3, "tom.b", NULL, "Invoice copy sent");
    run(s);
    check_invariants(&s->card);
    expect_top(s, "refund", "I-123");
    expect_text(s->card.reasons[0].evidence, "Follow-up promised for Thu 14:00 UTC was missed");
    expect_text(s->card.reasons[0].evidence, "I-123");
    assert_int_equal(s->card.reasons[0].event_ts, 0); /* rests on the issue */
    expect_cue(s, RP_CUE_BROKEN_PROMISE, "Follow-up promised for Thu 14:00 UTC was missed (issue I-123 about refund)");
    expect_no_cue(s, RP_CUE_REPEAT_CONTACT);
    expect_no_cue(s, RP_CUE_NEGATIVE_SENTIMENT); /* -0.2 is above -0.3 */
    expect_no_cue(s, RP_CUE_LANGUAGE);           /* en-US vs en */
    expect_no_cue(s, RP_CUE_VIP);
    expect_no_cue(s, RP_CUE_FIRST_CONTACT);
    expect_no_cue(s, RP_CUE_LONG_TENURE);
    assert_int_equal(s->card.broken_promises, 1);
    assert_int_equal(s->card.nopen, 1);
    assert_true(s->route.found && !s->route.ambiguous);
    assert_true(str_is(s->route.customer_id, "C-1001"));
    assert_true(str_is(s->route.language, "en-US"));
    assert_true(str_is(s->route.tier, "standard"));
    assert_int_equal(s->route.priority, 4); /* 3 + broken promise */
    assert_true(str_is(s->route.intent, "refund"));
    assert_true(str_is(s->route.issue_id, "I-123"));
    assert_true(str_is(s->route.last_agent, "maria.k"));
    free(s);
}

/* Fourth contact in five days about a parcel stuck at the depot; the mood
 * gets worse every time. */
static void test_repeat_delivery_worsening(void **state) {
    (void)state;
    scen *s = scen_new("C-2002", "Priya Natarajan", "en", "gold", NOW - 3 * 365 * D);
    issue(s, "I-555", "delivery", RP_ST_OPEN, RP_SEV_MEDIUM, 5 * D, 1 * D, 0, "Order #5521 held at depot");
    event(s, 6 * D, "delivery", "delivery", "Parcel held at depot: address label damaged");
    contact(s, 5 * D, RP_CH_CHAT, "delivery", RP_OUT_UNRESOLVED, -0.1, "chatbot", NULL, "Where is my order #5521?");
    contact(s, 3 * D, RP_CH_PHONE, "delivery", RP_OUT_TRANSFERRED, -0.4, "li.w", "I-555",
            "Transferred to logistics, no update");
    contact(s, 1 * D, RP_CH_PHONE, "delivery", RP_OUT_UNRESOLVED, -0.6, "sam.r", "I-555",
            "Still no parcel; wants a refund if it is not here by Monday");
    contact(s, 90 * D, RP_CH_PHONE, "billing", RP_OUT_RESOLVED, 0.4, "ana.p", NULL, NULL);
    run(s);
    check_invariants(&s->card);
    expect_top(s, "delivery", "I-555");
    const rp_reason *r = &s->card.reasons[0];
    assert_int_equal(r->event_ts, NOW - 1 * D); /* strongest: yesterday's unresolved call */
    expect_text(r->evidence, "Called 1 day ago about delivery; not resolved");
    expect_text(r->evidence, "more signals");
    assert_true(r->score > 0.8); /* four fresh signals add up */
    expect_cue(s, RP_CUE_REPEAT_CONTACT, "4th contact about delivery in 5 days (3 before this one)");
    expect_cue(s, RP_CUE_NEGATIVE_SENTIMENT, "Was frustrated on last contact (1 day ago, about delivery)");
    expect_cue(s, RP_CUE_NEGATIVE_SENTIMENT, "mood worsening");
    expect_no_cue(s, RP_CUE_BROKEN_PROMISE);
    expect_no_cue(s, RP_CUE_VIP); /* gold is not a VIP tier by default */
    const rp_card_attrs *a = &s->card.attrs;
    assert_int_equal(a->contacts_7d, 3);
    assert_int_equal(a->contacts_30d, 3);
    assert_int_equal(a->last_channel, RP_CH_PHONE);
    assert_int_equal(a->top_channel_30d, RP_CH_PHONE);
    assert_true(str_is(a->last_agent, "sam.r"));
    assert_true(a->has_avg_sentiment);
    assert_true(fabs(a->avg_sentiment_last5 - (-0.1 - 0.4 - 0.6 + 0.4) / 4) < 0.001);
    assert_true(a->has_days_since_last_contact);
    assert_int_equal(a->days_since_last_contact, 1);
    assert_int_equal(s->card.nrecent, 5);
    assert_int_equal(s->card.recent[0]->ts, NOW - 1 * D);
    assert_int_equal(s->route.priority, 4); /* gold */
    assert_true(str_is(s->route.intent, "delivery"));
    assert_true(str_is(s->route.issue_id, "I-555"));
    free(s);
}

/* The card was declined for yesterday's invoice; the web visits since are
 * routine and change nothing. */
static void test_failed_payment(void **state) {
    (void)state;
    scen *s = scen_new("C-3003", "Marcus Bell", "en", "standard", NOW - 2 * 365 * D);
    rp_event *pay = event(s, 1 * D, "payment", "billing", "Card ending 4242 declined for the November invoice");
    int64_t pay_ts = pay->ts;
    event(s, 2 * H, "login", "account", NULL);
    event(s, 2 * H - 60, "page_view", "billing", "Viewed invoice page");
    contact(s, 60 * D, RP_CH_PHONE, "technical", RP_OUT_RESOLVED, 0.5, "ana.p", NULL, "Router reset");
    run(s);
    check_invariants(&s->card);
    expect_top(s, "billing", NULL);
    assert_int_equal(s->card.reasons[0].event_ts, pay_ts);
    expect_text(s->card.reasons[0].evidence, "declined for the November invoice (payment, 1 day ago, about billing)");
    assert_int_equal(s->card.ncues, 0);
    assert_true(str_is(s->route.intent, "billing"));
    assert_int_equal(s->route.issue_id.n, 0);
    assert_int_equal(s->route.priority, 3);
    assert_true(str_is(s->route.last_agent, "ana.p"));
    assert_int_equal(s->card.attrs.contacts_30d, 0);
    assert_int_equal(s->card.attrs.top_channel_30d, RP_CH_NONE);
    assert_int_equal(s->card.attrs.last_channel, RP_CH_PHONE);
    free(s);
}

/* A fibre outage in their area three hours ago; the event has no topic,
 * so the reason is named after its kind. */
static void test_area_outage(void **state) {
    (void)state;
    scen *s = scen_new("C-4004", "Elena Rossi", "en", "standard", NOW - 365 * D);
    event(s, 3 * H, "outage", NULL, "Fibre outage affecting postcode 94107");
    contact(s, 10 * D, RP_CH_PHONE, "billing", RP_OUT_RESOLVED, 0.1, "jo.t", NULL, NULL);
    contact(s, 25 * D, RP_CH_PHONE, "billing", RP_OUT_RESOLVED, 0.2, "jo.t", NULL, NULL);
    run(s);
    check_invariants(&s->card);
    expect_top(s, "outage", NULL);
    expect_text(s->card.reasons[0].evidence, "Fibre outage affecting postcode 94107 (outage, 3 hours ago");
    assert_int_equal(s->card.nreasons, 2);
    assert_true(str_is(s->card.reasons[1].topic, "billing"));
    expect_text(s->card.reasons[1].evidence, "Habitual topic: billing in 2 of 2 past contacts");
    assert_true(str_is(s->route.intent, "outage"));
    free(s);
}

/* A platinum business customer whose high-severity technical issue was
 * updated an hour ago. */
static void test_platinum_technical(void **state) {
    (void)state;
    scen *s = scen_new("C-5005", "Harold Vance", "en-GB", "platinum", NOW - 12 * 365 * D - 10 * D);
    issue(s, "I-8", "billing", RP_ST_PENDING, RP_SEV_LOW, 20 * D, 15 * D, 0, "Credit note requested");
    issue(s, "I-7", "technical", RP_ST_OPEN, RP_SEV_HIGH, 10 * D, 1 * H, 0,
          "Intermittent packet loss on the business line");
    issue(s, "I-2", "technical", RP_ST_RESOLVED, RP_SEV_LOW, 200 * D, 190 * D, 0, "Old modem swap");
    contact(s, 10 * D, RP_CH_PHONE, "technical", RP_OUT_TRANSFERRED, -0.1, "noor.a", "I-7", NULL);
    run(s);
    check_invariants(&s->card);
    expect_top(s, "technical", "I-7");
    expect_text(s->card.reasons[0].evidence, "Open high-severity issue I-7 about technical was updated 1 hour ago");
    const rp_reason *b = reason(&s->card, "billing");
    assert_non_null(b);
    assert_true(str_is(b->issue_id, "I-8"));
    expect_text(b->evidence, "Pending issue I-8 about billing, opened 20 days ago");
    expect_cue(s, RP_CUE_VIP, "VIP customer (platinum tier)");
    expect_cue(s, RP_CUE_LONG_TENURE, "Customer for 12 years (since 2012)");
    expect_no_cue(s, RP_CUE_LANGUAGE);
    assert_int_equal(s->card.nopen, 2); /* the resolved one is not open */
    assert_true(str_is(s->card.open[0]->issue_id, "I-7")); /* latest update first */
    assert_true(str_is(s->card.open[1]->issue_id, "I-8"));
    assert_int_equal(s->route.priority, 5);
    assert_true(str_is(s->route.tier, "platinum"));
    assert_true(str_is(s->route.language, "en-GB"));
    assert_true(str_is(s->route.intent, "technical"));
    assert_true(str_is(s->route.issue_id, "I-7"));
    free(s);
}

/* A Spanish-speaking customer of nine years who only ever calls about
 * bills, all resolved: the habit is a weak prior, nothing more. */
static void test_spanish_long_tenure_habit(void **state) {
    (void)state;
    scen *s = scen_new("C-6006", "Lucía Fernández", "es-MX", "standard", NOW - 9 * 365 * D - 30 * D);
    s->c.preferred_name = S("Lucía");
    contact(s, 20 * D, RP_CH_PHONE, "billing", RP_OUT_RESOLVED, 0.2, "jorge.m", NULL, "Explained late fee");
    contact(s, 50 * D, RP_CH_PHONE, "billing", RP_OUT_RESOLVED, 0.1, "jorge.m", NULL, NULL);
    contact(s, 80 * D, RP_CH_PHONE, "billing", RP_OUT_RESOLVED, 0.0, "ines.r", NULL, NULL);
    contact(s, 120 * D, RP_CH_PHONE, "account", RP_OUT_RESOLVED, 0.3, "ines.r", NULL, NULL);
    run(s);
    check_invariants(&s->card);
    expect_top(s, "billing", NULL);
    assert_true(s->card.reasons[0].score < 0.1);
    expect_text(s->card.reasons[0].evidence, "Habitual topic: billing in 3 of 4 past contacts, most recently 20 days ago");
    expect_cue(s, RP_CUE_LANGUAGE, "Prefers Spanish (es-MX)");
    expect_cue(s, RP_CUE_LONG_TENURE, "Customer for 9 years (since 2015)");
    expect_no_cue(s, RP_CUE_REPEAT_CONTACT);
    expect_no_cue(s, RP_CUE_NEGATIVE_SENTIMENT);
    /* Cue order is fixed: language before long_tenure. */
    assert_string_equal(s->card.cues[0].code, RP_CUE_LANGUAGE);
    assert_string_equal(s->card.cues[1].code, RP_CUE_LONG_TENURE);
    assert_true(str_is(s->route.language, "es-MX"));
    assert_true(str_is(s->route.intent, "billing"));
    assert_true(str_is(s->route.last_agent, "jorge.m"));
    free(s);
}

/* A hard-of-hearing customer locked out of their account. */
static void test_hearing_impaired(void **state) {
    (void)state;
    scen *s = scen_new("C-7007", "Tom Okafor", "en", "standard", NOW - 400 * D);
    flag(s, "hearing_impaired");
    flag(s, "do_not_call");
    pref(s, "channel", "chat");
    pref(s, "accessibility", "prefers chat or text relay");
    contact(s, 2 * D, RP_CH_CHAT, "account", RP_OUT_ABANDONED, NOSENT, "chat.ella", NULL,
            "Locked out after password reset");
    run(s);
    check_invariants(&s->card);
    expect_top(s, "account", NULL);
    expect_text(s->card.reasons[0].evidence, "Chatted with us 2 days ago about account; abandoned before being helped");
    assert_string_equal(s->card.cues[0].code, RP_CUE_ACCESSIBILITY); /* how to speak to them: first */
    expect_cue(s, RP_CUE_ACCESSIBILITY, "Hard of hearing");
    expect_cue(s, RP_CUE_ACCESSIBILITY, "(noted: prefers chat or text relay)");
    expect_cue(s, RP_CUE_DO_NOT_CALL, "Do not call");
    expect_no_cue(s, RP_CUE_NEGATIVE_SENTIMENT); /* no sentiment recorded */
    assert_false(s->card.attrs.has_avg_sentiment);
    assert_int_equal(s->route.priority, 3);
    free(s);
}

/* Signed up two days ago, never got in touch. */
static void test_brand_new_customer(void **state) {
    (void)state;
    scen *s = scen_new("C-8008", "Ada Kim", "en", NULL, NOW - 2 * D);
    run(s);
    check_invariants(&s->card);
    assert_true(s->card.found);
    assert_int_equal(s->card.nreasons, 0);
    assert_int_equal(s->card.ncues, 1);
    expect_cue(s, RP_CUE_FIRST_CONTACT, "First contact");
    assert_int_equal(s->card.nrecent, 0);
    assert_int_equal(s->card.attrs.contacts_30d, 0);
    assert_false(s->card.attrs.has_days_since_last_contact);
    assert_int_equal(s->card.attrs.last_channel, RP_CH_NONE);
    assert_int_equal(s->route.intent.n, 0);
    assert_int_equal(s->route.tier.n, 0);
    assert_int_equal(s->route.priority, 3);
    free(s);
}

/* Charged twice, called, called back and got it sorted yesterday: what is
 * left is a weak habit, not an unresolved call. */
static void test_last_contact_resolved(void **state) {
    (void)state;
    scen *s = scen_new("C-9009", "Sam Patel", "en", "standard", NOW - 800 * D);
    contact(s, 2 * D, RP_CH_PHONE, "billing", RP_OUT_UNRESOLVED, -0.5, "kai.l", NULL, "Charged twice");
    event(s, 26 * H, "payment", "billing", "Duplicate charge reversed");
    contact(s, 1 * D, RP_CH_PHONE, "billing", RP_OUT_RESOLVED, 0.6, "kai.l", NULL, "Confirmed the refund");
    run(s);
    check_invariants(&s->card);
    expect_top(s, "billing", NULL);
    for (uint32_t i = 0; i < s->card.nreasons; i++) assert_true(s->card.reasons[i].score < 0.1);
    expect_text(s->card.reasons[0].evidence, "Habitual topic");
    expect_no_cue(s, RP_CUE_NEGATIVE_SENTIMENT); /* the last contact was happy */
    expect_cue(s, RP_CUE_REPEAT_CONTACT, "3rd contact about billing in 2 days (2 before this one)");
    free(s);
}

/* Only routine activity: logins and page views never explain a call. */
static void test_routine_events_only(void **state) {
    (void)state;
    scen *s = scen_new("C-1010", "Noah Berg", "en", "standard", NOW - 100 * D);
    event(s, 1 * H, "login", "account", NULL);
    event(s, 1 * H - 30, "page_view", "billing", "Viewed plan prices");
    event(s, 2 * D, "marketing", "upgrade", "Black Friday offer sent");
    event(s, 3 * D, "survey_sent", "feedback", NULL);
    run(s);
    check_invariants(&s->card);
    assert_int_equal(s->card.nreasons, 0);
    expect_cue(s, RP_CUE_FIRST_CONTACT, NULL);
    assert_int_equal(s->card.nrecent, 4);
    assert_int_equal(s->route.intent.n, 0);
    free(s);
}

/* A kind nobody configured ("recall_notice") still drives calls. */
static void test_unknown_kind_drives_calls(void **state) {
    (void)state;
    scen *s = scen_new("C-1111", "Grace Liu", "en", "standard", NOW - 500 * D);
    event(s, 2 * D, "recall_notice", "product_safety", NULL);
    event(s, 1 * H, "login", "account", NULL);
    contact(s, 30 * D, RP_CH_EMAIL, "delivery", RP_OUT_RESOLVED, NOSENT, "mo.f", NULL, NULL);
    run(s);
    check_invariants(&s->card);
    expect_top(s, "product_safety", NULL);
    expect_text(s->card.reasons[0].evidence, "Recall notice event 2 days ago about product_safety");
    free(s);
}

/* Records after `at` do not exist yet. */
static void test_future_records_ignored(void **state) {
    (void)state;
    scen *s = scen_new("C-1212", "Olivia Grant", "en", "standard", NOW - 900 * D);
    contact(s, 3 * D, RP_CH_PHONE, "billing", RP_OUT_RESOLVED, 0.3, "rita.s", NULL, NULL);
    contact(s, -1 * H, RP_CH_PHONE, "cancellation", RP_OUT_UNRESOLVED, -0.9, "zed.q", NULL, "Wants to cancel");
    issue(s, "I-99", "cancellation", RP_ST_OPEN, RP_SEV_HIGH, -30 * 60, -30 * 60, NOW + D, "Cancellation request");
    run(s);
    check_invariants(&s->card);
    assert_null(reason(&s->card, "cancellation"));
    expect_top(s, "billing", NULL);
    assert_int_equal(s->card.nopen, 0);
    assert_int_equal(s->card.nrecent, 1);
    assert_int_equal(s->card.recent[0]->ts, NOW - 3 * D);
    assert_int_equal(s->card.attrs.contacts_7d, 1);
    assert_true(str_is(s->card.attrs.last_agent, "rita.s"));
    expect_no_cue(s, RP_CUE_NEGATIVE_SENTIMENT);
    /* Two hours later the cancellation call and the issue exist. */
    run_at(s, &cfg, NOW + 2 * H);
    expect_top(s, "cancellation", "I-99");
    assert_int_equal(s->card.nopen, 1);
    expect_cue(s, RP_CUE_NEGATIVE_SENTIMENT, "Was very upset on last contact (1 hour ago, about cancellation)");
    free(s);
}

/* Two missed promises: the cue counts them and names the latest. */
static void test_two_broken_promises(void **state) {
    (void)state;
    scen *s = scen_new("C-1313", "Ivan Petrov", "ru", "gold", NOW - 6 * 365 * D);
    flag(s, "vulnerable");
    issue(s, "I-1", "billing", RP_ST_OPEN, RP_SEV_LOW, 30 * D, 20 * D, NOW - 20 * D, "Overcharge review");
    issue(s, "I-2", "technical", RP_ST_PENDING, RP_SEV_MEDIUM, 5 * D, 3 * D, NOW - 2 * H, "Engineer visit");
    issue(s, "I-3", "account", RP_ST_RESOLVED, RP_SEV_LOW, 9 * D, 8 * D, NOW - 7 * D, "Resolved: no promise due");
    run(s);
    check_invariants(&s->card);
    expect_top(s, "technical", "I-2"); /* the fresher broken promise */
    expect_cue(s, RP_CUE_BROKEN_PROMISE, "2 follow-up promises were missed; the latest was for Sat 07:00 UTC (issue I-2 about technical)");
    expect_cue(s, RP_CUE_LANGUAGE, "Prefers Russian");
    expect_cue(s, RP_CUE_ACCESSIBILITY, "Vulnerable customer");
    expect_no_cue(s, RP_CUE_FIRST_CONTACT); /* no contact logged, but issues say otherwise */
    assert_int_equal(s->card.broken_promises, 2);
    /* Overdue first in the open list; the resolved issue is not there. */
    assert_int_equal(s->card.nopen, 2);
    assert_true(str_is(s->card.open[0]->issue_id, "I-2"));
    /* 3 + gold 1 + broken 1 + vulnerable 1 = 6, capped at 5. */
    assert_int_equal(s->route.priority, 5);
    free(s);
}

/* --- rules -------------------------------------------------------------------- */

static double single_driver_score(int64_t age) {
    scen *s = scen_new("C-D", "Decay", "en", NULL, 0);
    event(s, age, "price_change", "billing", "Plan price rises by $5");
    run(s);
    double sc = s->card.nreasons ? s->card.reasons[0].score : 0.0;
    free(s);
    return sc;
}

/* Decode a help-desk issue the way the server does (wire decoder, default
 * issue_numbers) into the scenario. The map is built with the packer so the
 * test reads like the JSON a Zendesk integration posts; pb must outlive the
 * card (the issue's strings point into it). */
static rp_issue *crm_issue(scen *s, msgpack_sbuffer *pb, msgpack_unpacked *up, const char *id,
                           const char *topic, const char *status, const char *severity,
                           int64_t opened_ago, int64_t updated_ago, int64_t due) {
    msgpack_packer pk;
    msgpack_sbuffer_init(pb);
    msgpack_packer_init(&pk, pb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 8 + (due != 0));
    rp_mp_pack_cstr(&pk, "customer_id"), rp_mp_pack_str(&pk, s->c.id);
    rp_mp_pack_cstr(&pk, "issue_id"), rp_mp_pack_cstr(&pk, id);
    rp_mp_pack_cstr(&pk, "topic"), rp_mp_pack_cstr(&pk, topic);
    rp_mp_pack_cstr(&pk, "status"), rp_mp_pack_cstr(&pk, status);
    rp_mp_pack_cstr(&pk, "severity"), rp_mp_pack_cstr(&pk, severity);
    rp_mp_pack_cstr(&pk, "summary"), rp_mp_pack_cstr(&pk, "Double charge on the March invoice");
    rp_mp_pack_cstr(&pk, "opened_at"), msgpack_pack_int64(&pk, NOW - opened_ago);
    rp_mp_pack_cstr(&pk, "updated_at"), msgpack_pack_int64(&pk, NOW - updated_ago);
    if (due) rp_mp_pack_cstr(&pk, "follow_up_due"), msgpack_pack_int64(&pk, due);
    msgpack_unpacked_init(up);
    assert_int_equal(msgpack_unpack_next(up, pb->data, pb->size, NULL), MSGPACK_UNPACK_SUCCESS);
    assert_true(s->nis < 16);
    rp_issue *i = &s->is[s->nis++];
    rp_errbuf eb = {0};
    rp_err rc = rp_issue_decode_as(&up->data, RP_DEC_WIRE, cfg.issue_numbers, i, &eb);
    if (rc != RP_OK) fail_msg("%s: %s", id, eb.msg);
    return i;
}

/* A Zendesk ticket on hold with an urgent priority and a callback promised
 * yesterday: hold is not resolved, so the missed promise is on the card and
 * the issue ranks as critical; the agent sees Zendesk's own words. A solved
 * ticket's old promise and a "closed" one are not promises any more. */
static void test_zendesk_vocabulary(void **state) {
    (void)state;
    msgpack_sbuffer pb[4];
    msgpack_unpacked up[4];
    scen *s = scen_new("Z-77", "Priya Raman", "en", "standard", NOW - 2 * 365 * D);
    const rp_issue *hold = crm_issue(s, &pb[0], &up[0], "ZD-4411", "billing", "hold", "urgent",
                                     5 * D, 2 * D, NOW - 20 * H);
    const rp_issue *fresh = crm_issue(s, &pb[1], &up[1], "ZD-4420", "delivery", " New ", "P2",
                                      3 * H, 1 * H, 0);
    const rp_issue *solved = crm_issue(s, &pb[2], &up[2], "ZD-4100", "refund", "solved", "normal",
                                       30 * D, 20 * D, NOW - 25 * D);
    const rp_issue *closed = crm_issue(s, &pb[3], &up[3], "ZD-4000", "refund", "Closed", "low",
                                       60 * D, 50 * D, NOW - 55 * D);
    assert_int_equal(hold->status, RP_ST_PENDING);
    assert_int_equal(hold->severity, RP_SEV_CRITICAL);
    assert_true(str_is(hold->status_raw, "hold") && str_is(hold->severity_raw, "urgent"));
    assert_int_equal(fresh->status, RP_ST_OPEN);
    assert_int_equal(fresh->severity, RP_SEV_HIGH);
    assert_true(str_is(fresh->status_raw, "New")); /* trimmed, case kept */
    assert_int_equal(solved->status, RP_ST_RESOLVED);
    assert_int_equal(closed->status, RP_ST_RESOLVED);
    assert_true(str_is(closed->severity_raw, NULL)); /* "low" is the level's name */
    run(s);
    check_invariants(&s->card);
    expect_top(s, "billing", "ZD-4411");
    expect_text(s->card.reasons[0].evidence, "was missed (issue ZD-4411 about billing");
    expect_cue(s, RP_CUE_BROKEN_PROMISE, "(issue ZD-4411 about billing)");
    assert_int_equal(s->card.broken_promises, 1); /* solved and closed promises do not count */
    assert_int_equal(s->card.open_total, 2);
    assert_ptr_equal(s->card.open[0], hold); /* the overdue promise first */
    assert_int_equal(s->card.open[0]->severity, RP_SEV_CRITICAL);
    const rp_reason *r = reason(&s->card, "delivery");
    assert_non_null(r);
    expect_text(r->evidence, "Open high-severity issue ZD-4420 (New, P2) about delivery");
    assert_int_equal(s->route.priority, RP_PRIORITY_DEFAULT + 1); /* the broken promise */
    assert_true(str_is(s->route.issue_id, "ZD-4411"));
    /* The card's open issues carry the level and the word as sent. */
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
    rp_issue_encode(&pk, hold, RP_ENC_WIRE);
    msgpack_unpacked o;
    msgpack_unpacked_init(&o);
    assert_int_equal(msgpack_unpack_next(&o, out.data, out.size, NULL), MSGPACK_UNPACK_SUCCESS);
    rp_str v;
    assert_int_equal(rp_mp_str(&o.data, "severity", &v, NULL), RP_OK);
    assert_true(str_is(v, "critical"));
    assert_int_equal(rp_mp_str(&o.data, "severity_raw", &v, NULL), RP_OK);
    assert_true(str_is(v, "urgent"));
    assert_int_equal(rp_mp_str(&o.data, "status", &v, NULL), RP_OK);
    assert_true(str_is(v, "pending"));
    assert_int_equal(rp_mp_str(&o.data, "status_raw", &v, NULL), RP_OK);
    assert_true(str_is(v, "hold"));
    msgpack_unpacked_destroy(&o);
    msgpack_sbuffer_destroy(&out);
    for (int k = 0; k < 4; k++) msgpack_unpacked_destroy(&up[k]), msgpack_sbuffer_destroy(&pb[k]);
    free(s);
}

static void test_decay(void **state) {
    (void)state;
    double fresh = single_driver_score(60), day = single_driver_score(D), week = single_driver_score(7 * D),
           year = single_driver_score(365 * D);
    assert_true(fresh > day);
    assert_true(day > week);
    /* One half-life (48 h) halves the contribution: 0.5 -> 0.25. */
    double two_days = single_driver_score(2 * D);
    assert_true(fabs(two_days - (1.0 - exp(-0.25))) < 0.0005);
    assert_true(fabs(fresh - (1.0 - exp(-0.5))) < 0.001);
    assert_true(year == 0.0); /* decayed below RP_CARD_MIN_SCORE: dropped */
}

/* Two fresh signals on one topic outrank one stronger single signal; a
 * single fresh strong signal outranks two stale ones. */
static void test_summing(void **state) {
    (void)state;
    scen *s = scen_new("C-S", "Sum", "en", NULL, 0);
    issue(s, "I-B", "billing", RP_ST_OPEN, RP_SEV_LOW, 10 * D, 9 * D, NOW - 60, "Callback due");
    contact(s, 60, RP_CH_PHONE, "delivery", RP_OUT_UNRESOLVED, NOSENT, NULL, NULL, NULL);
    event(s, 120, "delivery", "delivery", "Courier missed the slot");
    run(s);
    check_invariants(&s->card);
    expect_top(s, "delivery", NULL); /* 0.8 + 0.5 > 1.0 */
    assert_true(str_is(s->card.reasons[1].topic, "billing"));
    free(s);

    s = scen_new("C-S2", "Sum", "en", NULL, 0);
    issue(s, "I-B", "billing", RP_ST_OPEN, RP_SEV_LOW, 10 * D, 9 * D, NOW - 60, "Callback due");
    contact(s, 6 * D, RP_CH_PHONE, "delivery", RP_OUT_UNRESOLVED, NOSENT, NULL, NULL, NULL);
    event(s, 6 * D, "delivery", "delivery", "Courier missed the slot");
    run(s);
    expect_top(s, "billing", "I-B");
    free(s);
}

/* Equal signals: topic name decides, case-insensitively; spellings merge. */
static void test_ties_and_topic_case(void **state) {
    (void)state;
    scen *s = scen_new("C-T", "Tie", "en", NULL, 0);
    event(s, H, "notice", "zeta", NULL);
    event(s, H, "notice", "Alpha", NULL);
    event(s, H, "notice", "mid", NULL);
    run(s);
    assert_int_equal(s->card.nreasons, 3);
    assert_true(str_is(s->card.reasons[0].topic, "Alpha"));
    assert_true(str_is(s->card.reasons[1].topic, "mid"));
    assert_true(str_is(s->card.reasons[2].topic, "zeta"));
    free(s);

    s = scen_new("C-T2", "Case", "en", NULL, 0);
    event(s, H, "notice", "Billing", NULL);
    event(s, 2 * H, "notice", "billing", NULL);
    event(s, 2 * H, "notice", "delivery", NULL);
    run(s);
    assert_int_equal(s->card.nreasons, 2);
    assert_true(str_is(s->card.reasons[0].topic, "Billing"));
    expect_text(s->card.reasons[0].evidence, "(+1 more signal)");
    free(s);
}

/* A resolved linked issue supersedes the unresolved contact about it. */
static void test_resolved_issue_supersedes(void **state) {
    (void)state;
    scen *s = scen_new("C-R", "Res", "en", NULL, 0);
    issue(s, "I-9", "technical", RP_ST_RESOLVED, RP_SEV_LOW, 3 * D, 1 * D, 0, "Fixed");
    contact(s, 2 * D, RP_CH_PHONE, "technical", RP_OUT_UNRESOLVED, NOSENT, NULL, "I-9", NULL);
    event(s, 5 * H, "delivery", "delivery", "Out for delivery");
    run(s);
    expect_top(s, "delivery", NULL);
    const rp_reason *t = reason(&s->card, "technical");
    assert_non_null(t);
    expect_text(t->evidence, "Habitual topic");
    free(s);
}

/* Caps and switches from the config. */
static void test_config_caps_and_weights(void **state) {
    (void)state;
    rp_config c;
    rp_config_defaults(&c);
    rp_errbuf eb = {0};
    assert_int_equal(rp_config_set(&c, "card_max_reasons", "2", &eb), RP_OK);
    assert_int_equal(rp_config_set(&c, "card_recent_events", "3", &eb), RP_OK);
    scen *s = scen_new("C-C", "Caps", "en", NULL, 0);
    for (int i = 0; i < 6; i++) {
        static const char *const topics[] = {"a1", "b2", "c3", "d4", "e5", "f6"};
        event(s, (i + 1) * H, "notice", topics[i], NULL);
    }
    run_at(s, &c, NOW);
    assert_int_equal(s->card.nreasons, 2);
    assert_true(str_is(s->card.reasons[0].topic, "a1"));
    assert_int_equal(s->card.nrecent, 3);

    /* card_max_events: only the newest N events are read. */
    assert_int_equal(rp_config_set(&c, "card_max_events", "2", &eb), RP_OK);
    assert_int_equal(rp_config_set(&c, "card_max_reasons", "10", &eb), RP_OK);
    run_at(s, &c, NOW);
    assert_int_equal(s->card.nreasons, 2);
    assert_null(reason(&s->card, "c3"));

    /* A zero weight switches a signal off; routine_kinds is honoured. */
    rp_config_defaults(&c);
    assert_int_equal(rp_config_set(&c, "weight_call_driver", "0", &eb), RP_OK);
    run_at(s, &c, NOW);
    assert_int_equal(s->card.nreasons, 0);
    rp_config_defaults(&c);
    assert_int_equal(rp_config_set(&c, "routine_kinds", "notice", &eb), RP_OK);
    run_at(s, &c, NOW);
    assert_int_equal(s->card.nreasons, 0);
    free(s);

    /* Thresholds: repeat_contact_min and negative_sentiment. */
    s = scen_new("C-C2", "Thresholds", "en", NULL, 0);
    contact(s, D, RP_CH_PHONE, "billing", RP_OUT_RESOLVED, -0.2, NULL, NULL, NULL);
    contact(s, 2 * D, RP_CH_PHONE, "billing", RP_OUT_RESOLVED, 0.1, NULL, NULL, NULL);
    run(s);
    expect_cue(s, RP_CUE_REPEAT_CONTACT, NULL);
    expect_no_cue(s, RP_CUE_NEGATIVE_SENTIMENT);
    rp_config_defaults(&c);
    assert_int_equal(rp_config_set(&c, "repeat_contact_min", "3", &eb), RP_OK);
    assert_int_equal(rp_config_set(&c, "negative_sentiment", "-0.1", &eb), RP_OK);
    run_at(s, &c, NOW);
    expect_no_cue(s, RP_CUE_REPEAT_CONTACT);
    expect_cue(s, RP_CUE_NEGATIVE_SENTIMENT, "Was frustrated");
    free(s);
}

static void test_priority(void **state) {
    (void)state;
    scen *s = scen_new("C-P", "Prio", "en", "standard", 0);
    assert_int_equal(rp_card_priority(&cfg, NULL, 0), RP_PRIORITY_DEFAULT);
    assert_int_equal(rp_card_priority(&cfg, &s->c, 0), 3);
    assert_int_equal(rp_card_priority(&cfg, &s->c, 2), 4);
    s->c.tier = S("gold");
    assert_int_equal(rp_card_priority(&cfg, &s->c, 0), 4);
    s->c.tier = S("Platinum"); /* tiers compare case-insensitively */
    assert_int_equal(rp_card_priority(&cfg, &s->c, 0), 5);
    s->c.tier = S("standard");
    flag(s, "VIP");
    assert_int_equal(rp_card_priority(&cfg, &s->c, 0), 5);
    s->c.nflags = 0;
    flag(s, "vulnerable");
    assert_int_equal(rp_card_priority(&cfg, &s->c, 0), 4);
    assert_int_equal(rp_card_priority(&cfg, &s->c, 1), 5);
    /* vip_tiers is a setting. */
    rp_config c;
    rp_config_defaults(&c);
    rp_errbuf eb = {0};
    assert_int_equal(rp_config_set(&c, "vip_tiers", "platinum,black", &eb), RP_OK);
    s->c.nflags = 0;
    s->c.tier = S("black");
    assert_int_equal(rp_card_priority(&c, &s->c, 0), 5);
    assert_int_equal(rp_card_priority(&cfg, &s->c, 0), 3);
    run_at(s, &c, NOW);
    expect_cue(s, RP_CUE_VIP, "VIP customer (black tier)");
    free(s);
}

/* --- unknown and ambiguous ------------------------------------------------------ */

static void test_unknown_caller(void **state) {
    (void)state;
    rp_card *card = calloc(1, sizeof *card);
    assert_non_null(card);
    rp_card_unknown(NOW, card);
    assert_false(card->found);
    assert_false(card->ambiguous);
    assert_null(card->who);
    assert_int_equal(card->nreasons, 0);
    assert_int_equal(card->ncues, 1);
    assert_string_equal(card->cues[0].code, RP_CUE_FIRST_CONTACT);
    rp_route r;
    rp_route_from_card(&cfg, card, &r);
    assert_false(r.found);
    assert_true(str_is(r.language, "en"));
    assert_int_equal(r.priority, RP_PRIORITY_DEFAULT);
    assert_int_equal(r.customer_id.n + r.tier.n + r.intent.n + r.issue_id.n + r.last_agent.n, 0);
    free(card);
}

static void test_ambiguous_household(void **state) {
    (void)state;
    scen *a = scen_new("C-A1", "Maria Lopez", "es", "gold", 1546300800 + 100 * D); /* 2019 */
    issue(a, "I-1", "billing", RP_ST_OPEN, RP_SEV_LOW, 3 * D, 3 * D, 0, NULL);
    issue(a, "I-2", "delivery", RP_ST_PENDING, RP_SEV_LOW, 3 * D, 3 * D, 0, NULL);
    issue(a, "I-3", "delivery", RP_ST_RESOLVED, RP_SEV_LOW, 9 * D, 3 * D, 0, NULL);
    issue(a, "I-4", "future", RP_ST_OPEN, RP_SEV_LOW, -D, -D, 0, NULL);
    scen *b = scen_new("C-A2", "Jose Lopez", "es-ES", NULL, 0);
    b->c.preferred_name = S("Pepe");
    rp_card *card = calloc(1, sizeof *card);
    assert_non_null(card);
    rp_card_ambiguous(NOW, card);
    assert_true(rp_card_add_candidate(card, &a->c, a->is, a->nis, false));
    assert_true(rp_card_add_candidate(card, &b->c, NULL, 0, false));
    assert_true(card->found && card->ambiguous);
    assert_int_equal(card->nreasons, 0); /* no guess presented as fact */
    assert_int_equal(card->ncandidates, 2);
    assert_string_equal(card->candidates[0].summary, "gold customer since 2019, 2 open issues");
    assert_string_equal(card->candidates[1].summary, "customer, no open issues");
    assert_true(str_is(card->candidates[1].name, "Pepe"));
    rp_route r;
    rp_route_from_card(&cfg, card, &r);
    assert_true(r.found && r.ambiguous);
    assert_int_equal(r.customer_id.n, 0);
    assert_true(str_is(r.language, "en")); /* "es" and "es-ES" differ: no claim */
    b->c.language = S("ES");
    card->ncandidates = 0;
    rp_card_add_candidate(card, &a->c, a->is, a->nis, true);
    rp_card_add_candidate(card, &b->c, NULL, 0, false);
    assert_string_equal(card->candidates[0].summary, "gold customer since 2019, 2+ open issues");
    rp_route_from_card(&cfg, card, &r);
    assert_true(str_is(r.language, "es")); /* shared by every candidate */
    for (int i = 2; i < RP_CARD_MAX_CANDIDATES; i++) assert_true(rp_card_add_candidate(card, &b->c, NULL, 0, false));
    assert_false(rp_card_add_candidate(card, &b->c, NULL, 0, false));
    free(a);
    free(b);
    free(card);
}

/* --- encoding --------------------------------------------------------------------- */

typedef struct packed {
    msgpack_sbuffer buf;
    msgpack_unpacked up;
} packed;

static void pack_card(const rp_card *card, msgpack_sbuffer *buf) {
    msgpack_sbuffer_init(buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    rp_card_encode(&pk, card);
}

static const msgpack_object *unpack(packed *p) {
    msgpack_unpacked_init(&p->up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&p->up, p->buf.data, p->buf.size, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, p->buf.size); /* exactly one object */
    assert_int_equal(p->up.data.type, MSGPACK_OBJECT_MAP);
    return &p->up.data;
}

static void packed_free(packed *p) {
    msgpack_unpacked_destroy(&p->up);
    msgpack_sbuffer_destroy(&p->buf);
}

/* The map's keys, in order, are exactly `keys` (NULL-terminated). */
static void expect_keys(const msgpack_object *o, const char *const *keys) {
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    uint32_t n = 0;
    while (keys[n]) n++;
    assert_int_equal(o->via.map.size, n);
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        assert_int_equal(k->type, MSGPACK_OBJECT_STR);
        if (k->via.str.size != strlen(keys[i]) || memcmp(k->via.str.ptr, keys[i], k->via.str.size) != 0)
            fail_msg("key %u is %.*s, expected %s", i, (int)k->via.str.size, k->via.str.ptr, keys[i]);
    }
}

static bool obj_str_is(const msgpack_object *o, const char *s) {
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static const char *const card_keys[] = {"found", "ambiguous", "at", "customer", "likely_reasons", "cues",
                                        "recent_events", "open_issues", "attributes", "candidates", NULL};
static const char *const route_keys[] = {"found", "ambiguous", "customer_id", "language", "tier",
                                         "priority", "intent", "issue_id", "last_agent", NULL};

static void test_encode_card_shape(void **state) {
    (void)state;
    scen *s = scen_new("C-2002", "Priya Natarajan", "en", "gold", NOW - 3 * 365 * D);
    issue(s, "I-555", "delivery", RP_ST_OPEN, RP_SEV_MEDIUM, 5 * D, 1 * D, 0, "Order #5521 held at depot");
    contact(s, 1 * D, RP_CH_PHONE, "delivery", RP_OUT_UNRESOLVED, -0.6, "sam.r", "I-555", "Still no parcel");
    contact(s, 3 * D, RP_CH_PHONE, "delivery", RP_OUT_TRANSFERRED, -0.4, "li.w", "I-555", NULL);
    run(s);
    packed p;
    pack_card(&s->card, &p.buf);
    const msgpack_object *o = unpack(&p);
    expect_keys(o, card_keys);
    assert_true(rp_mp_get(o, "found")->via.boolean);
    assert_false(rp_mp_get(o, "ambiguous")->via.boolean);
    assert_int_equal(rp_mp_get(o, "at")->via.u64, (uint64_t)NOW);
    assert_true(obj_str_is(rp_mp_get(rp_mp_get(o, "customer"), "id"), "C-2002"));
    const msgpack_object *rs = rp_mp_get(o, "likely_reasons");
    assert_int_equal(rs->type, MSGPACK_OBJECT_ARRAY);
    assert_true(rs->via.array.size >= 1);
    static const char *const reason_keys[] = {"topic", "issue_id", "event_ts", "score", "evidence", NULL};
    expect_keys(&rs->via.array.ptr[0], reason_keys);
    assert_true(obj_str_is(rp_mp_get(&rs->via.array.ptr[0], "topic"), "delivery"));
    assert_true(obj_str_is(rp_mp_get(&rs->via.array.ptr[0], "issue_id"), "I-555"));
    assert_int_equal(rp_mp_get(&rs->via.array.ptr[0], "event_ts")->via.u64, (uint64_t)(NOW - D));
    const msgpack_object *score = rp_mp_get(&rs->via.array.ptr[0], "score");
    assert_true(score->type == MSGPACK_OBJECT_FLOAT64 || score->type == MSGPACK_OBJECT_FLOAT);
    assert_true(score->via.f64 > 0.0 && score->via.f64 <= 1.0);
    const msgpack_object *cues = rp_mp_get(o, "cues");
    static const char *const cue_keys[] = {"code", "text", NULL};
    assert_true(cues->via.array.size >= 1);
    expect_keys(&cues->via.array.ptr[0], cue_keys);
    const msgpack_object *recent = rp_mp_get(o, "recent_events");
    assert_int_equal(recent->via.array.size, 2);
    assert_true(obj_str_is(rp_mp_get(&recent->via.array.ptr[0], "summary"), "Still no parcel"));
    const msgpack_object *open = rp_mp_get(o, "open_issues");
    assert_int_equal(open->via.array.size, 1);
    assert_true(obj_str_is(rp_mp_get(&open->via.array.ptr[0], "issue_id"), "I-555"));
    static const char *const attr_keys[] = {"contacts_7d", "contacts_30d", "last_channel", "top_channel_30d",
                                            "last_agent", "avg_sentiment_last5", "days_since_last_contact", NULL};
    const msgpack_object *attrs = rp_mp_get(o, "attributes");
    expect_keys(attrs, attr_keys);
    assert_int_equal(rp_mp_get(attrs, "contacts_7d")->via.u64, 2);
    assert_true(obj_str_is(rp_mp_get(attrs, "last_channel"), "phone"));
    assert_true(obj_str_is(rp_mp_get(attrs, "last_agent"), "sam.r"));
    assert_true(fabs(rp_mp_get(attrs, "avg_sentiment_last5")->via.f64 - (-0.5)) < 1e-9);
    assert_int_equal(rp_mp_get(o, "candidates")->via.array.size, 0);
    packed_free(&p);

    /* Route: exactly the nine route fields. */
    msgpack_sbuffer_init(&p.buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p.buf, msgpack_sbuffer_write);
    rp_route_encode(&pk, &s->route);
    o = unpack(&p);
    expect_keys(o, route_keys);
    assert_true(obj_str_is(rp_mp_get(o, "customer_id"), "C-2002"));
    assert_int_equal(rp_mp_get(o, "priority")->via.u64, 4);
    assert_true(obj_str_is(rp_mp_get(o, "intent"), "delivery"));
    assert_true(obj_str_is(rp_mp_get(o, "last_agent"), "sam.r"));
    packed_free(&p);
    free(s);
}

static void test_encode_unknown_and_ambiguous(void **state) {
    (void)state;
    rp_card *card = calloc(1, sizeof *card);
    assert_non_null(card);
    rp_card_unknown(NOW, card);
    packed p;
    pack_card(card, &p.buf);
    const msgpack_object *o = unpack(&p);
    expect_keys(o, card_keys);
    assert_false(rp_mp_get(o, "found")->via.boolean);
    assert_int_equal(rp_mp_get(o, "customer")->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(rp_mp_get(o, "attributes")->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(rp_mp_get(o, "likely_reasons")->via.array.size, 0);
    const msgpack_object *cues = rp_mp_get(o, "cues");
    assert_int_equal(cues->via.array.size, 1);
    assert_true(obj_str_is(rp_mp_get(&cues->via.array.ptr[0], "code"), "first_contact"));
    packed_free(&p);

    rp_route r;
    rp_route_from_card(&cfg, card, &r);
    msgpack_sbuffer_init(&p.buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p.buf, msgpack_sbuffer_write);
    rp_route_encode(&pk, &r);
    o = unpack(&p);
    expect_keys(o, route_keys);
    assert_false(rp_mp_get(o, "found")->via.boolean);
    assert_true(obj_str_is(rp_mp_get(o, "language"), "en"));
    assert_int_equal(rp_mp_get(o, "priority")->via.u64, RP_PRIORITY_DEFAULT);
    assert_int_equal(rp_mp_get(o, "customer_id")->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(rp_mp_get(o, "intent")->type, MSGPACK_OBJECT_NIL);
    packed_free(&p);

    scen *a = scen_new("C-H1", "Ann Shaw", "en", "gold", 0);
    rp_card_ambiguous(NOW, card);
    rp_card_add_candidate(card, &a->c, NULL, 0, false);
    rp_card_add_candidate(card, &a->c, NULL, 0, false);
    pack_card(card, &p.buf);
    o = unpack(&p);
    expect_keys(o, card_keys);
    assert_true(rp_mp_get(o, "ambiguous")->via.boolean);
    const msgpack_object *cands = rp_mp_get(o, "candidates");
    assert_int_equal(cands->via.array.size, 2);
    static const char *const cand_keys[] = {"customer_id", "name", "summary", NULL};
    expect_keys(&cands->via.array.ptr[0], cand_keys);
    assert_true(obj_str_is(rp_mp_get(&cands->via.array.ptr[0], "summary"), "gold customer, no open issues"));
    packed_free(&p);
    free(a);
    free(card);
}

/* Same input, same bytes; and records after `at` change nothing. */
static void test_at_reproducible(void **state) {
    (void)state;
    scen *s = scen_new("C-X", "Repro", "fr-CA", "gold", NOW - 7 * 365 * D);
    issue(s, "I-1", "billing", RP_ST_OPEN, RP_SEV_HIGH, 9 * D, 2 * D, NOW - 5 * H, "Disputed charge");
    contact(s, 2 * D, RP_CH_PHONE, "billing", RP_OUT_UNRESOLVED, -0.5, "eve", "I-1", "Disputes roaming charge");
    contact(s, 4 * D, RP_CH_CHAT, "billing", RP_OUT_ABANDONED, -0.2, NULL, NULL, NULL);
    event(s, 3 * D, "invoice", "billing", "Invoice with roaming charges");
    event(s, 5 * H, "outage", "technical", "Mast maintenance");
    run(s);
    msgpack_sbuffer a, b;
    pack_card(&s->card, &a);
    run(s);
    pack_card(&s->card, &b);
    assert_int_equal(a.size, b.size);
    assert_memory_equal(a.data, b.data, a.size);
    msgpack_sbuffer_destroy(&b);

    /* Add a later call and a later issue: as of NOW the card is the same. */
    contact(s, -2 * H, RP_CH_PHONE, "cancellation", RP_OUT_UNRESOLVED, -1.0, "zed", NULL, "Cancel everything");
    issue(s, "I-2", "cancellation", RP_ST_OPEN, RP_SEV_HIGH, -2 * H, -2 * H, 0, "Cancel");
    run(s);
    pack_card(&s->card, &b);
    assert_int_equal(a.size, b.size);
    assert_memory_equal(a.data, b.data, a.size);
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
    free(s);
}

/* --- text ------------------------------------------------------------------------- */

static void test_phrases(void **state) {
    (void)state;
    char buf[64];
    rp_card_age_phrase(NOW - 10, NOW, buf, sizeof buf);
    assert_string_equal(buf, "just now");
    rp_card_age_phrase(NOW + 100, NOW, buf, sizeof buf);
    assert_string_equal(buf, "just now");
    rp_card_age_phrase(NOW - 60, NOW, buf, sizeof buf);
    assert_string_equal(buf, "1 minute ago");
    rp_card_age_phrase(NOW - 59 * 60, NOW, buf, sizeof buf);
    assert_string_equal(buf, "59 minutes ago");
    rp_card_age_phrase(NOW - 5 * H - 59, NOW, buf, sizeof buf);
    assert_string_equal(buf, "5 hours ago");
    rp_card_age_phrase(NOW - D, NOW, buf, sizeof buf);
    assert_string_equal(buf, "1 day ago");
    rp_card_age_phrase(NOW - 400 * D, NOW, buf, sizeof buf);
    assert_string_equal(buf, "400 days ago");
    rp_card_age_phrase(NOW - 400 * D, NOW, buf, 4); /* truncated, still terminated */
    assert_string_equal(buf, "400");

    rp_card_when_phrase(NOW - 43 * H, NOW, buf, sizeof buf);
    assert_string_equal(buf, "Thu 14:00 UTC");
    rp_card_when_phrase(NOW + 2 * D, NOW, buf, sizeof buf); /* a promise still ahead */
    assert_string_equal(buf, "Mon 09:00 UTC");
    rp_card_when_phrase(NOW - 10 * D, NOW, buf, sizeof buf);
    assert_string_equal(buf, "Wed 13 Nov 09:00 UTC");
    rp_card_when_phrase(NOW - 400 * D, NOW, buf, sizeof buf);
    assert_string_equal(buf, "20 Oct 2023 09:00 UTC");

    assert_string_equal(rp_card_language_name(S("es-MX")), "Spanish");
    assert_string_equal(rp_card_language_name(S("PT_br")), "Portuguese");
    assert_string_equal(rp_card_language_name(S("fil")), "Filipino");
    assert_null(rp_card_language_name(S("xx")));
    assert_null(rp_card_language_name(S("")));
}

/* Long UTF-8 summaries are cut at character boundaries. */
static void test_utf8_excerpts(void **state) {
    (void)state;
    static char summary[RP_SUMMARY_MAX + 1];
    size_t n = 0;
    while (n + 2 <= RP_SUMMARY_MAX - 1) {
        summary[n++] = (char)0xC3; /* é */
        summary[n++] = (char)0xA9;
    }
    summary[n++] = 'x';
    summary[n] = '\0';
    scen *s = scen_new("C-U", "Zoë Ångström", "zz", "standard", 0);
    event(s, H, "delivery", "delivery", summary);
    issue(s, "I-U", "technical", RP_ST_OPEN, RP_SEV_LOW, D, D, NOW - H, summary);
    contact(s, 2 * H, RP_CH_STORE, "returns", RP_OUT_UNRESOLVED, NOSENT, NULL, NULL, summary);
    run(s);
    check_invariants(&s->card);
    assert_int_equal(s->card.nreasons, 3);
    for (uint32_t i = 0; i < s->card.nreasons; i++) expect_text(s->card.reasons[i].evidence, "...");
    expect_text(reason(&s->card, "returns")->evidence, "Visited a store 2 hours ago about returns");
    expect_cue(s, RP_CUE_LANGUAGE, "Prefers language zz"); /* not in the name table */
    free(s);
}


/* --- glue: the same questions through a real store ----------------------------- */

typedef struct glue {
    char dir[64];
    rp_config cfg;
    rp_store *s;
} glue;

static void put_scen(rp_store *st, const scen *s) {
    rp_errbuf eb = {0};
    rp_put_opts po = {.now = NOW};
    if (rp_store_put_customer(st, &s->c, &po, NULL, &eb) != RP_OK) fail_msg("put customer: %s", eb.msg);
    for (uint32_t i = 0; i < s->nev; i++)
        if (rp_store_append_event(st, &s->ev[i], NOW, NULL, &eb) != RP_OK) fail_msg("append: %s", eb.msg);
    for (uint32_t i = 0; i < s->nis; i++)
        if (rp_store_put_issue(st, &s->is[i], NOW, &eb) != RP_OK) fail_msg("put issue: %s", eb.msg);
}

/* A store with: Dana (gold; an overdue delivery callback, a call about it
 * yesterday, a call tomorrow that must not show today); a household line
 * shared by Maria and Jose; and C-300, a duplicate of Dana merged into her. */
static int glue_setup(void **state) {
    glue *g = calloc(1, sizeof *g);
    assert_non_null(g);
    rp_config_defaults(&cfg);
    strcpy(g->dir, "/tmp/rp_ctx_XXXXXX");
    assert_non_null(mkdtemp(g->dir));
    rp_config_defaults(&g->cfg);
    snprintf(g->cfg.data_dir, sizeof g->cfg.data_dir, "%s", g->dir);
    g->cfg.durability = RP_DURABLE_ASYNC;
    rp_errbuf eb = {0};
    if (rp_store_open(&g->cfg, &g->s, &eb) != RP_OK) fail_msg("open: %s", eb.msg);

    scen *dana = scen_new("C-100", "Dana Whitfield", "en-US", "gold", NOW - 3 * 365 * D);
    dana->c.phones[dana->c.nphones++] = S("+14155551212");
    dana->c.emails[dana->c.nemails++] = S("dana@example.com");
    dana->c.accounts[dana->c.naccounts++] = S("ACC-1");
    issue(dana, "I-1", "delivery", RP_ST_OPEN, RP_SEV_MEDIUM, 2 * D, 1 * D, NOW - 2 * H, "Parcel lost in transit");
    contact(dana, 1 * D, RP_CH_PHONE, "delivery", RP_OUT_UNRESOLVED, -0.5, "sam.r", "I-1", "Parcel not delivered");
    contact(dana, 30 * D, RP_CH_EMAIL, "billing", RP_OUT_RESOLVED, 0.2, "ana.p", NULL, NULL);
    event(dana, 3 * D, "delivery", "delivery", "Parcel left the depot");
    contact(dana, -1 * H, RP_CH_PHONE, "cancellation", RP_OUT_UNRESOLVED, -0.9, "zed", NULL, "Wants to cancel");
    put_scen(g->s, dana);

    scen *maria = scen_new("C-201", "Maria Lopez", "es", "gold", 1546300800 + 100 * D);
    maria->c.phones[maria->c.nphones++] = S("+14155550000");
    issue(maria, "I-20", "billing", RP_ST_OPEN, RP_SEV_LOW, 3 * D, 3 * D, 0, NULL);
    issue(maria, "I-21", "delivery", RP_ST_PENDING, RP_SEV_LOW, 3 * D, 3 * D, 0, NULL);
    put_scen(g->s, maria);
    scen *jose = scen_new("C-202", "Jose Lopez", "es", NULL, 0);
    jose->c.phones[jose->c.nphones++] = S("+14155550000");
    put_scen(g->s, jose);

    scen *dup = scen_new("C-300", "Dana W.", "en", NULL, 0);
    dup->c.emails[dup->c.nemails++] = S("dana.w@example.org");
    put_scen(g->s, dup);
    if (rp_store_merge(g->s, S("C-300"), S("C-100"), NOW, NULL, &eb) != RP_OK) fail_msg("merge: %s", eb.msg);
    free(dana);
    free(maria);
    free(jose);
    free(dup);
    *state = g;
    return 0;
}

static int glue_teardown(void **state) {
    glue *g = *state;
    rp_store_close(g->s);
    DIR *d = opendir(g->dir);
    if (d) {
        struct dirent *de;
        char path[512];
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            snprintf(path, sizeof path, "%s/%s", g->dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(g->dir);
    free(g);
    return 0;
}

/* Ask for a card (or route) and unpack it on RP_OK; *size gets the packed
 * length either way (0 on errors: nothing may be packed then). */
static rp_err ask(glue *g, bool route, rp_context_key kind, const char *key, int64_t at,
                  rp_context_scratch *sc, packed *p, rp_errbuf *eb) {
    msgpack_sbuffer_init(&p->buf);
    msgpack_unpacked_init(&p->up);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p->buf, msgpack_sbuffer_write);
    rp_str k = S(key);
    rp_err rc = route ? rp_context_route(g->s, kind, k, at, sc, &pk, eb)
                      : rp_context_card(g->s, kind, k, at, sc, &pk, NULL, eb);
    if (rc == RP_OK) {
        msgpack_unpacked_destroy(&p->up);
        unpack(p);
    } else {
        assert_int_equal(p->buf.size, 0);
    }
    return rc;
}

static const msgpack_object *at_index(const msgpack_object *arr, uint32_t i) {
    assert_int_equal(arr->type, MSGPACK_OBJECT_ARRAY);
    assert_true(i < arr->via.array.size);
    return &arr->via.array.ptr[i];
}

static bool has_cue_code(const msgpack_object *card, const char *code) {
    const msgpack_object *cues = rp_mp_get(card, "cues");
    for (uint32_t i = 0; i < cues->via.array.size; i++)
        if (obj_str_is(rp_mp_get(&cues->via.array.ptr[i], "code"), code)) return true;
    return false;
}

/* Every key kind, in every common format, gives Dana's card, byte for byte. */
static void test_glue_card_every_key(void **state) {
    glue *g = *state;
    static const struct {
        rp_context_key kind;
        const char *key;
    } keys[] = {
        {RP_CTX_KEY_ID, "C-100"},           {RP_CTX_KEY_PHONE, "(415) 555-1212"},
        {RP_CTX_KEY_PHONE, "tel:+14155551212"}, {RP_CTX_KEY_PHONE, "+1 415.555.1212"},
        {RP_CTX_KEY_EMAIL, "Dana@Example.com"}, {RP_CTX_KEY_ACCOUNT, "ACC-1"},
        {RP_CTX_KEY_ID, "C-300"},           /* merged away: answers as Dana */
        {RP_CTX_KEY_EMAIL, "dana.w@example.org"}, /* the duplicate's email moved to Dana */
    };
    rp_context_scratch *sc;
    assert_int_equal(rp_context_scratch_new(&sc, NULL), RP_OK);
    packed first;
    rp_errbuf eb = {0};
    assert_int_equal(ask(g, false, RP_CTX_KEY_ID, "C-100", NOW, sc, &first, &eb), RP_OK);
    const msgpack_object *o = &first.up.data;
    expect_keys(o, card_keys);
    assert_true(rp_mp_get(o, "found")->via.boolean);
    assert_true(obj_str_is(rp_mp_get(rp_mp_get(o, "customer"), "id"), "C-100"));
    const msgpack_object *top = at_index(rp_mp_get(o, "likely_reasons"), 0);
    assert_true(obj_str_is(rp_mp_get(top, "topic"), "delivery"));
    assert_true(obj_str_is(rp_mp_get(top, "issue_id"), "I-1"));
    assert_true(has_cue_code(o, "broken_promise"));
    assert_true(has_cue_code(o, "negative_sentiment")); /* -0.5 yesterday */
    const msgpack_object *recent = rp_mp_get(o, "recent_events");
    assert_int_equal(recent->via.array.size, 3); /* tomorrow's call does not exist yet */
    assert_true(obj_str_is(rp_mp_get(at_index(recent, 0), "summary"), "Parcel not delivered"));
    assert_int_equal(rp_mp_get(o, "open_issues")->via.array.size, 1);
    assert_int_equal(rp_mp_get(rp_mp_get(o, "attributes"), "contacts_30d")->via.u64, 1);

    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        packed p;
        rp_err rc = ask(g, false, keys[i].kind, keys[i].key, NOW, i % 2 ? sc : NULL, &p, &eb);
        if (rc != RP_OK) fail_msg("%s %s: %s", rp_context_key_name(keys[i].kind), keys[i].key, eb.msg);
        if (p.buf.size != first.buf.size || memcmp(p.buf.data, first.buf.data, p.buf.size) != 0)
            fail_msg("%s %s gave a different card", rp_context_key_name(keys[i].kind), keys[i].key);
        packed_free(&p);
    }
    packed_free(&first);
    rp_context_scratch_free(sc);
}

static void test_glue_route(void **state) {
    glue *g = *state;
    packed p;
    rp_errbuf eb = {0};
    assert_int_equal(ask(g, true, RP_CTX_KEY_PHONE, "4155551212", NOW, NULL, &p, &eb), RP_OK);
    const msgpack_object *o = &p.up.data;
    expect_keys(o, route_keys);
    assert_true(rp_mp_get(o, "found")->via.boolean);
    assert_false(rp_mp_get(o, "ambiguous")->via.boolean);
    assert_true(obj_str_is(rp_mp_get(o, "customer_id"), "C-100"));
    assert_true(obj_str_is(rp_mp_get(o, "language"), "en-US"));
    assert_true(obj_str_is(rp_mp_get(o, "tier"), "gold"));
    assert_int_equal(rp_mp_get(o, "priority")->via.u64, 5); /* 3 + gold + broken promise */
    assert_true(obj_str_is(rp_mp_get(o, "intent"), "delivery"));
    assert_true(obj_str_is(rp_mp_get(o, "issue_id"), "I-1"));
    assert_true(obj_str_is(rp_mp_get(o, "last_agent"), "sam.r"));
    packed_free(&p);

    /* Withheld and garbage numbers are unknown callers for the IVR. */
    static const char *const unknown[] = {"+1 212 555 0199", "anonymous", "", "RESTRICTED"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_int_equal(ask(g, true, RP_CTX_KEY_PHONE, unknown[i], NOW, NULL, &p, &eb), RP_OK);
        o = &p.up.data;
        expect_keys(o, route_keys);
        assert_false(rp_mp_get(o, "found")->via.boolean);
        assert_true(obj_str_is(rp_mp_get(o, "language"), "en"));
        assert_int_equal(rp_mp_get(o, "priority")->via.u64, RP_PRIORITY_DEFAULT);
        assert_int_equal(rp_mp_get(o, "customer_id")->type, MSGPACK_OBJECT_NIL);
        packed_free(&p);
    }

    /* The household line: ambiguous, with the language they share. */
    assert_int_equal(ask(g, true, RP_CTX_KEY_PHONE, "415-555-0000", NOW, NULL, &p, &eb), RP_OK);
    o = &p.up.data;
    assert_true(rp_mp_get(o, "found")->via.boolean);
    assert_true(rp_mp_get(o, "ambiguous")->via.boolean);
    assert_int_equal(rp_mp_get(o, "customer_id")->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(rp_mp_get(o, "intent")->type, MSGPACK_OBJECT_NIL);
    assert_true(obj_str_is(rp_mp_get(o, "language"), "es"));
    packed_free(&p);
}

static void test_glue_unknown_ambiguous_errors(void **state) {
    glue *g = *state;
    packed p;
    rp_errbuf eb = {0};
    assert_int_equal(ask(g, false, RP_CTX_KEY_PHONE, "+44 20 7946 0958", NOW, NULL, &p, &eb), RP_OK);
    assert_false(rp_mp_get(&p.up.data, "found")->via.boolean);
    assert_true(has_cue_code(&p.up.data, "first_contact"));
    packed_free(&p);
    assert_int_equal(ask(g, false, RP_CTX_KEY_EMAIL, "nobody@example.com", NOW, NULL, &p, &eb), RP_OK);
    assert_false(rp_mp_get(&p.up.data, "found")->via.boolean);
    packed_free(&p);

    assert_int_equal(ask(g, false, RP_CTX_KEY_PHONE, "(415) 555-0000", NOW, NULL, &p, &eb), RP_OK);
    const msgpack_object *o = &p.up.data;
    expect_keys(o, card_keys);
    assert_true(rp_mp_get(o, "ambiguous")->via.boolean);
    assert_int_equal(rp_mp_get(o, "likely_reasons")->via.array.size, 0);
    assert_int_equal(rp_mp_get(o, "customer")->type, MSGPACK_OBJECT_NIL);
    const msgpack_object *cands = rp_mp_get(o, "candidates");
    assert_int_equal(cands->via.array.size, 2);
    for (uint32_t i = 0; i < 2; i++) {
        const msgpack_object *c = at_index(cands, i);
        if (obj_str_is(rp_mp_get(c, "customer_id"), "C-201")) {
            assert_true(obj_str_is(rp_mp_get(c, "name"), "Maria Lopez"));
            assert_true(obj_str_is(rp_mp_get(c, "summary"), "gold customer since 2019, 2 open issues"));
        } else {
            assert_true(obj_str_is(rp_mp_get(c, "customer_id"), "C-202"));
            assert_true(obj_str_is(rp_mp_get(c, "summary"), "customer, no open issues"));
        }
    }
    packed_free(&p);

    /* Errors: nothing is packed. */
    assert_int_equal(ask(g, false, RP_CTX_KEY_ID, "C-404", NOW, NULL, &p, &eb), RP_NOT_FOUND);
    expect_text(eb.msg, "C-404");
    assert_int_equal(ask(g, true, RP_CTX_KEY_ID, "C-404", NOW, NULL, &p, &eb), RP_NOT_FOUND);
    assert_int_equal(ask(g, false, RP_CTX_KEY_PHONE, "anonymous", NOW, NULL, &p, &eb), RP_BAD_REQUEST);
    assert_int_equal(ask(g, false, RP_CTX_KEY_EMAIL, "", NOW, NULL, &p, &eb), RP_BAD_REQUEST);
    assert_int_equal(ask(g, true, RP_CTX_KEY_EMAIL, "not-an-email", NOW, NULL, &p, &eb), RP_BAD_REQUEST);
    assert_int_equal(ask(g, false, RP_CTX_KEY_ID, "C-100", -1, NULL, &p, &eb), RP_BAD_REQUEST);
    assert_int_equal(ask(g, false, RP_CTX_KEY_ID, "C-100", INT64_MAX, NULL, &p, &eb), RP_BAD_REQUEST);
    assert_int_equal(ask(g, false, (rp_context_key)9, "C-100", NOW, NULL, &p, &eb), RP_BAD_REQUEST);
    msgpack_sbuffer_destroy(&p.buf);
    msgpack_unpacked_destroy(&p.up);

    rp_context_key k;
    assert_true(rp_context_key_parse(S("account"), &k));
    assert_int_equal(k, RP_CTX_KEY_ACCOUNT);
    assert_false(rp_context_key_parse(S("fax"), &k));
    assert_string_equal(rp_context_key_name(RP_CTX_KEY_PHONE), "phone");
}

/* `at` through the store: before the issue was opened, and after the call
 * that has not happened yet at NOW. */
static void test_glue_at(void **state) {
    glue *g = *state;
    packed p;
    rp_errbuf eb = {0};
    rp_context_scratch *sc;
    assert_int_equal(rp_context_scratch_new(&sc, NULL), RP_OK);
    assert_int_equal(ask(g, false, RP_CTX_KEY_ID, "C-100", NOW - 2 * D - H, sc, &p, &eb), RP_OK);
    const msgpack_object *o = &p.up.data;
    const msgpack_object *top = at_index(rp_mp_get(o, "likely_reasons"), 0);
    assert_true(obj_str_is(rp_mp_get(top, "topic"), "delivery"));
    assert_int_equal(rp_mp_get(top, "issue_id")->type, MSGPACK_OBJECT_NIL); /* I-1 not opened yet */
    assert_int_equal(rp_mp_get(top, "event_ts")->via.u64, (uint64_t)(NOW - 3 * D));
    assert_false(has_cue_code(o, "broken_promise"));
    assert_int_equal(rp_mp_get(o, "recent_events")->via.array.size, 2);
    assert_int_equal(rp_mp_get(o, "open_issues")->via.array.size, 0);
    packed_free(&p);

    assert_int_equal(ask(g, false, RP_CTX_KEY_ID, "C-100", NOW + 2 * H, sc, &p, &eb), RP_OK);
    o = &p.up.data;
    const msgpack_object *recent = rp_mp_get(o, "recent_events");
    assert_int_equal(recent->via.array.size, 4);
    assert_true(obj_str_is(rp_mp_get(at_index(recent, 0), "summary"), "Wants to cancel"));
    assert_true(has_cue_code(o, "negative_sentiment"));
    assert_true(has_cue_code(o, "repeat_contact"));
    packed_free(&p);

    /* The scratch carries nothing over: an ambiguous card after a full one. */
    assert_int_equal(ask(g, false, RP_CTX_KEY_PHONE, "4155550000", NOW, sc, &p, &eb), RP_OK);
    assert_int_equal(rp_mp_get(&p.up.data, "recent_events")->via.array.size, 0);
    assert_int_equal(rp_mp_get(&p.up.data, "cues")->via.array.size, 0);
    packed_free(&p);
    rp_context_scratch_free(sc);
}

/* card_max_events bounds what the card reads from the store. */
static void test_glue_max_events(void **state) {
    glue *g = *state;
    rp_errbuf eb = {0};
    scen *busy = scen_new("C-500", "Busy Bee", "en", NULL, 0);
    for (int i = 0; i < 40; i++) event(busy, (int64_t)(i + 1) * 60, "notice", i < 20 ? "alerts" : "other", NULL);
    put_scen(g->s, busy);
    free(busy);
    rp_store_close(g->s);
    assert_int_equal(rp_config_set(&g->cfg, "card_max_events", "20", &eb), RP_OK);
    if (rp_store_open(&g->cfg, &g->s, &eb) != RP_OK) fail_msg("reopen: %s", eb.msg);
    packed p;
    assert_int_equal(ask(g, false, RP_CTX_KEY_ID, "C-500", NOW, NULL, &p, &eb), RP_OK);
    const msgpack_object *rs = rp_mp_get(&p.up.data, "likely_reasons");
    assert_int_equal(rs->via.array.size, 1);
    assert_true(obj_str_is(rp_mp_get(at_index(rs, 0), "topic"), "alerts"));
    packed_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_missed_refund_callback, setup),
        cmocka_unit_test_setup(test_repeat_delivery_worsening, setup),
        cmocka_unit_test_setup(test_failed_payment, setup),
        cmocka_unit_test_setup(test_area_outage, setup),
        cmocka_unit_test_setup(test_platinum_technical, setup),
        cmocka_unit_test_setup(test_spanish_long_tenure_habit, setup),
        cmocka_unit_test_setup(test_hearing_impaired, setup),
        cmocka_unit_test_setup(test_brand_new_customer, setup),
        cmocka_unit_test_setup(test_last_contact_resolved, setup),
        cmocka_unit_test_setup(test_routine_events_only, setup),
        cmocka_unit_test_setup(test_unknown_kind_drives_calls, setup),
        cmocka_unit_test_setup(test_future_records_ignored, setup),
        cmocka_unit_test_setup(test_two_broken_promises, setup),
        cmocka_unit_test_setup(test_zendesk_vocabulary, setup),
        cmocka_unit_test_setup(test_decay, setup),
        cmocka_unit_test_setup(test_summing, setup),
        cmocka_unit_test_setup(test_ties_and_topic_case, setup),
        cmocka_unit_test_setup(test_resolved_issue_supersedes, setup),
        cmocka_unit_test_setup(test_config_caps_and_weights, setup),
        cmocka_unit_test_setup(test_priority, setup),
        cmocka_unit_test_setup(test_unknown_caller, setup),
        cmocka_unit_test_setup(test_ambiguous_household, setup),
        cmocka_unit_test_setup(test_encode_card_shape, setup),
        cmocka_unit_test_setup(test_encode_unknown_and_ambiguous, setup),
        cmocka_unit_test_setup(test_at_reproducible, setup),
        cmocka_unit_test_setup(test_phrases, setup),
        cmocka_unit_test_setup(test_utf8_excerpts, setup),
        cmocka_unit_test_setup_teardown(test_glue_card_every_key, glue_setup, glue_teardown),
        cmocka_unit_test_setup_teardown(test_glue_route, glue_setup, glue_teardown),
        cmocka_unit_test_setup_teardown(test_glue_unknown_ambiguous_errors, glue_setup, glue_teardown),
        cmocka_unit_test_setup_teardown(test_glue_at, glue_setup, glue_teardown),
        cmocka_unit_test_setup_teardown(test_glue_max_events, glue_setup, glue_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
