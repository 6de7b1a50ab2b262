/* test_vocab.c — the help-desk vocabularies of issue status and severity.
 *
 * Table-driven: every value of shared/CRM-VOCABULARIES.md (Zendesk,
 * Freshdesk, Salesforce, ServiceNow, Jira, P1..P5) with the level it must
 * map to, each also tried in upper case, lower case and padded with spaces;
 * bare numbers as strings and as integers under each issue_numbers reading;
 * unknown words and numbers, whose errors must name the field and the
 * value; and the record round trip: the level in status/severity, the word
 * as sent in status_raw/severity_raw only when it differs, the golden
 * "high"/"open" bytes unchanged, and an export re-importing as it was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "model/codec.h"
#include "model/record.h"

#define SN RP_ISSUE_NUMBERS_SERVICENOW
#define FD RP_ISSUE_NUMBERS_FRESHDESK
#define NONE RP_ISSUE_NUMBERS_NONE

/* --- the tables ------------------------------------------------------------ */

typedef struct sev_case {
    const char *word;
    rp_severity level;
    const char *source;
} sev_case;

static const sev_case sev_words[] = {
    {"low", RP_SEV_LOW, "rapport"}, {"medium", RP_SEV_MEDIUM, "rapport"},
    {"high", RP_SEV_HIGH, "rapport"}, {"critical", RP_SEV_CRITICAL, "rapport"},
    {"urgent", RP_SEV_CRITICAL, "Zendesk"}, {"normal", RP_SEV_MEDIUM, "Zendesk"},
    {"Urgent", RP_SEV_CRITICAL, "Freshdesk label"}, {"Medium", RP_SEV_MEDIUM, "Freshdesk label"},
    {"High", RP_SEV_HIGH, "Salesforce"}, {"Low", RP_SEV_LOW, "Salesforce"},
    {"Critical", RP_SEV_CRITICAL, "ServiceNow label"}, {"Moderate", RP_SEV_MEDIUM, "ServiceNow label"},
    {"Planning", RP_SEV_LOW, "ServiceNow label"},
    {"1 - Critical", RP_SEV_CRITICAL, "ServiceNow"}, {"2 - High", RP_SEV_HIGH, "ServiceNow"},
    {"3 - Moderate", RP_SEV_MEDIUM, "ServiceNow"}, {"4 - Low", RP_SEV_LOW, "ServiceNow"},
    {"5 - Planning", RP_SEV_LOW, "ServiceNow"}, {"1-Critical", RP_SEV_CRITICAL, "ServiceNow, tight"},
    {"Highest", RP_SEV_CRITICAL, "Jira"}, {"Lowest", RP_SEV_LOW, "Jira"},
    {"P1", RP_SEV_CRITICAL, "shorthand"}, {"P2", RP_SEV_HIGH, "shorthand"},
    {"P3", RP_SEV_MEDIUM, "shorthand"}, {"P4", RP_SEV_LOW, "shorthand"},
    {"P5", RP_SEV_LOW, "shorthand"},
};

typedef struct st_case {
    const char *word;
    rp_status level;
    const char *source;
} st_case;

static const st_case st_words[] = {
    {"open", RP_ST_OPEN, "rapport"}, {"pending", RP_ST_PENDING, "rapport"},
    {"resolved", RP_ST_RESOLVED, "rapport"},
    {"new", RP_ST_OPEN, "Zendesk"}, {"hold", RP_ST_PENDING, "Zendesk"},
    {"solved", RP_ST_RESOLVED, "Zendesk"}, {"closed", RP_ST_RESOLVED, "Zendesk"},
    {"New", RP_ST_OPEN, "Salesforce"}, {"Working", RP_ST_OPEN, "Salesforce"},
    {"Escalated", RP_ST_OPEN, "Salesforce"}, {"Closed", RP_ST_RESOLVED, "Salesforce"},
    {"In Progress", RP_ST_OPEN, "ServiceNow"}, {"On Hold", RP_ST_PENDING, "ServiceNow"},
    {"Resolved", RP_ST_RESOLVED, "ServiceNow"}, {"Canceled", RP_ST_RESOLVED, "ServiceNow"},
    {"Cancelled", RP_ST_RESOLVED, "British spelling"},
    {"To Do", RP_ST_OPEN, "Jira"}, {"Done", RP_ST_RESOLVED, "Jira"},
    {"indeterminate", RP_ST_OPEN, "Jira category key"},
    {"in_progress", RP_ST_OPEN, "snake case"}, {"In   Progress", RP_ST_OPEN, "spaces run"},
};

/* Bare numbers: n, the reading, the level (or -1: refused). */
typedef struct num_case {
    unsigned n;
    rp_issue_numbers numbers;
    int level;
} num_case;

static const num_case sev_numbers[] = {
    {1, SN, RP_SEV_CRITICAL}, {2, SN, RP_SEV_HIGH}, {3, SN, RP_SEV_MEDIUM}, {4, SN, RP_SEV_LOW},
    {5, SN, RP_SEV_LOW}, {0, SN, -1}, {6, SN, -1},
    {4, FD, RP_SEV_CRITICAL}, {3, FD, RP_SEV_HIGH}, {2, FD, RP_SEV_MEDIUM}, {1, FD, RP_SEV_LOW},
    {5, FD, -1}, {0, FD, -1},
    {1, NONE, -1}, {4, NONE, -1},
};

static const num_case st_numbers[] = {
    {1, SN, RP_ST_OPEN}, {2, SN, RP_ST_OPEN}, {3, SN, RP_ST_PENDING}, {6, SN, RP_ST_RESOLVED},
    {7, SN, RP_ST_RESOLVED}, {8, SN, RP_ST_RESOLVED}, {4, SN, -1}, {5, SN, -1}, {9, SN, -1},
    {2, FD, RP_ST_OPEN}, {3, FD, RP_ST_PENDING}, {4, FD, RP_ST_RESOLVED}, {5, FD, RP_ST_RESOLVED},
    {1, FD, -1}, {6, FD, -1},
    {2, NONE, -1},
};

static const char *const unknown_words[] = {
    "", " ", "bogus", "severe", "P0", "P6", "p 1", "highish", "1 - High", "6 - Planning",
    "urgent!", "crit", "xhigh", "12345678901234567890123456789012345",
};

static const char *const unknown_statuses[] = {
    "", "bogus", "reopened", "in", "progress", "on", "holdx", "to-do", "done done",
};

/* --- helpers ---------------------------------------------------------------- */

static bool str_is(rp_str s, const char *c) { return c ? rp_str_eqc(s, c) : s.n == 0; }

/* The word's variants: as written, upper case, lower case, padded. */
static int variants(const char *w, char out[4][64]) {
    snprintf(out[0], 64, "%s", w);
    snprintf(out[1], 64, "%s", w);
    snprintf(out[2], 64, "%s", w);
    for (char *p = out[1]; *p; p++) *p = (char)toupper((unsigned char)*p);
    for (char *p = out[2]; *p; p++) *p = (char)tolower((unsigned char)*p);
    snprintf(out[3], 64, "  %s\t ", w);
    return 4;
}

/* One issue map with optional status / severity as a string (s) or integer
 * (s == NULL, i >= 0), plus optional raw words; decoded WIRE with numbers.
 * The buffer stays alive until the next call (the record points into it). */
typedef struct val {
    const char *s;
    long long i; /* used when s == NULL and i >= 0; i < 0: absent */
} val;
#define ABSENT ((val){NULL, -1})
#define W(x) ((val){(x), 0})
#define I(x) ((val){NULL, (x)})

static msgpack_sbuffer buf;
static msgpack_unpacked up;

static void pack_val(msgpack_packer *pk, val v) {
    if (v.s) rp_mp_pack_cstr(pk, v.s);
    else msgpack_pack_int64(pk, v.i);
}

static rp_err decode(val status, val severity, const char *status_raw, const char *severity_raw,
                     rp_issue_numbers numbers, rp_issue *out, rp_errbuf *eb) {
    msgpack_sbuffer_destroy(&buf);
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    bool hs = status.s || status.i >= 0, hv = severity.s || severity.i >= 0;
    msgpack_pack_map(&pk, 2 + hs + hv + (status_raw != NULL) + (severity_raw != NULL));
    rp_mp_pack_cstr(&pk, "customer_id"), rp_mp_pack_cstr(&pk, "c-1");
    rp_mp_pack_cstr(&pk, "issue_id"), rp_mp_pack_cstr(&pk, "T-1");
    if (hs) rp_mp_pack_cstr(&pk, "status"), pack_val(&pk, status);
    if (status_raw) rp_mp_pack_cstr(&pk, "status_raw"), rp_mp_pack_cstr(&pk, status_raw);
    if (hv) rp_mp_pack_cstr(&pk, "severity"), pack_val(&pk, severity);
    if (severity_raw) rp_mp_pack_cstr(&pk, "severity_raw"), rp_mp_pack_cstr(&pk, severity_raw);
    msgpack_unpacked_destroy(&up);
    msgpack_unpacked_init(&up);
    assert_int_equal(msgpack_unpack_next(&up, buf.data, buf.size, NULL), MSGPACK_UNPACK_SUCCESS);
    return rp_issue_decode_as(&up.data, RP_DEC_WIRE, numbers, out, eb);
}

/* Encode is (enc) into b and return the unpacked map. */
static const msgpack_object *encoded(const rp_issue *is, unsigned enc, msgpack_sbuffer *b,
                                     msgpack_unpacked *u) {
    msgpack_sbuffer_init(b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    rp_issue_encode(&pk, is, enc);
    msgpack_unpacked_init(u);
    assert_int_equal(msgpack_unpack_next(u, b->data, b->size, NULL), MSGPACK_UNPACK_SUCCESS);
    return &u->data;
}

static void expect_field(const msgpack_object *o, const char *key, const char *want) {
    rp_str v = {NULL, 0};
    rp_err rc = rp_mp_str(o, key, &v, NULL);
    if (want == NULL) {
        if (rc != RP_NOT_FOUND) fail_msg("'%s' present: '%.*s'", key, (int)v.n, v.p);
        return;
    }
    if (rc != RP_OK || !rp_str_eqc(v, want))
        fail_msg("'%s' is '%.*s', want '%s'", key, (int)v.n, v.p, want);
}

static int group_setup(void **state) {
    (void)state;
    msgpack_sbuffer_init(&buf);
    msgpack_unpacked_init(&up);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    msgpack_sbuffer_destroy(&buf);
    msgpack_unpacked_destroy(&up);
    return 0;
}

/* --- tests ------------------------------------------------------------------ */

/* Every severity word, in every variant, reaches its level; the raw word is
 * the trimmed original, absent only when it is the level's exact name. */
static void test_severity_words(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof sev_words / sizeof sev_words[0]; i++) {
        char v[4][64];
        int n = variants(sev_words[i].word, v);
        for (int k = 0; k < n; k++) {
            rp_severity lv = RP_SEV_NONE;
            rp_str raw = {"x", 1};
            if (!rp_severity_from_word(rp_str_c(v[k]), SN, &lv, &raw))
                fail_msg("%s severity '%s' refused", sev_words[i].source, v[k]);
            if (lv != sev_words[i].level)
                fail_msg("%s severity '%s' -> %s, want %s", sev_words[i].source, v[k],
                         rp_severity_name(lv), rp_severity_name(sev_words[i].level));
            char trimmed[256];
            snprintf(trimmed, sizeof trimmed, "%s", k == 3 ? v[0] : v[k]);
            if (k == 3 && strcmp(trimmed, rp_severity_name(lv)) != 0)
                assert_true(str_is(raw, trimmed));
            else if (strcmp(trimmed, rp_severity_name(lv)) == 0)
                assert_true(str_is(raw, NULL));
            else
                assert_true(str_is(raw, trimmed));
            /* The same through the record decoder, under both readings. */
            rp_issue is;
            rp_errbuf eb = {0};
            assert_int_equal(decode(ABSENT, W(v[k]), NULL, NULL, FD, &is, &eb), RP_OK);
            assert_int_equal(is.severity, sev_words[i].level);
        }
    }
}

static void test_status_words(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof st_words / sizeof st_words[0]; i++) {
        char v[4][64];
        int n = variants(st_words[i].word, v);
        for (int k = 0; k < n; k++) {
            rp_status lv = RP_ST__COUNT;
            rp_str raw = {"x", 1};
            if (!rp_status_from_word(rp_str_c(v[k]), SN, &lv, &raw))
                fail_msg("%s status '%s' refused", st_words[i].source, v[k]);
            if (lv != st_words[i].level)
                fail_msg("%s status '%s' -> %s, want %s", st_words[i].source, v[k],
                         rp_status_name(lv), rp_status_name(st_words[i].level));
            const char *want = k == 3 ? v[0] : v[k];
            assert_true(str_is(raw, strcmp(want, rp_status_name(lv)) == 0 ? NULL : want));
            rp_issue is;
            rp_errbuf eb = {0};
            assert_int_equal(decode(W(v[k]), ABSENT, NULL, NULL, SN, &is, &eb), RP_OK);
            assert_int_equal(is.status, st_words[i].level);
        }
    }
}

/* Bare numbers, as integers and as strings (padded too), per reading. */
static void test_numbers(void **state) {
    (void)state;
    for (int pass = 0; pass < 2; pass++) {
        const num_case *t = pass ? st_numbers : sev_numbers;
        size_t nt = pass ? sizeof st_numbers / sizeof st_numbers[0]
                         : sizeof sev_numbers / sizeof sev_numbers[0];
        const char *field = pass ? "status" : "severity";
        for (size_t i = 0; i < nt; i++) {
            char text[3][16];
            snprintf(text[0], 16, "%u", t[i].n);
            snprintf(text[1], 16, " %u ", t[i].n);
            for (int form = 0; form < 3; form++) {
                val v = form == 2 ? I((long long)t[i].n) : W(text[form]);
                rp_issue is;
                rp_errbuf eb = {0};
                rp_err rc = pass ? decode(v, ABSENT, NULL, NULL, t[i].numbers, &is, &eb)
                                 : decode(ABSENT, v, NULL, NULL, t[i].numbers, &is, &eb);
                const char *reading = rp_issue_numbers_name(t[i].numbers);
                if (t[i].level < 0) {
                    if (rc != RP_BAD_REQUEST)
                        fail_msg("%s %u accepted under %s", field, t[i].n, reading);
                    char want[64];
                    snprintf(want, sizeof want, "field '%s'", field);
                    assert_non_null(strstr(eb.msg, want));
                    assert_non_null(strstr(eb.msg, text[0]));
                    if (t[i].numbers != NONE) assert_non_null(strstr(eb.msg, reading));
                    continue;
                }
                if (rc != RP_OK) fail_msg("%s %u under %s: %s", field, t[i].n, reading, eb.msg);
                assert_int_equal(pass ? (int)is.status : (int)is.severity, t[i].level);
                assert_true(str_is(pass ? is.status_raw : is.severity_raw, text[0]));
            }
        }
    }
    /* Out of every table, and the wrong types. */
    rp_issue is;
    rp_errbuf eb = {0};
    assert_int_equal(decode(ABSENT, I(300), NULL, NULL, SN, &is, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "'300'"));
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    rp_mp_pack_cstr(&pk, "customer_id"), rp_mp_pack_cstr(&pk, "c");
    rp_mp_pack_cstr(&pk, "issue_id"), rp_mp_pack_cstr(&pk, "i");
    rp_mp_pack_cstr(&pk, "severity"), msgpack_pack_int64(&pk, -1);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, b.data, b.size, NULL), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(rp_issue_decode_as(&u.data, RP_DEC_WIRE, SN, &is, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "'-1'"));
    msgpack_sbuffer_clear(&b);
    msgpack_pack_map(&pk, 3);
    rp_mp_pack_cstr(&pk, "customer_id"), rp_mp_pack_cstr(&pk, "c");
    rp_mp_pack_cstr(&pk, "issue_id"), rp_mp_pack_cstr(&pk, "i");
    rp_mp_pack_cstr(&pk, "status"), msgpack_pack_double(&pk, 2.0);
    msgpack_unpacked_destroy(&u);
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, b.data, b.size, NULL), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(rp_issue_decode_as(&u.data, RP_DEC_WIRE, SN, &is, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "field 'status' must be a string or an integer (got a float)"));
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&b);
}

/* An unknown word is BAD_REQUEST naming the field and the value. */
static void test_unknown_words(void **state) {
    (void)state;
    char want[256];
    for (size_t i = 0; i < sizeof unknown_words / sizeof unknown_words[0]; i++) {
        rp_severity lv;
        assert_false(rp_severity_from_word(rp_str_c(unknown_words[i]), SN, &lv, NULL));
        rp_issue is;
        rp_errbuf eb = {0};
        assert_int_equal(decode(ABSENT, W(unknown_words[i]), NULL, NULL, SN, &is, &eb), RP_BAD_REQUEST);
        assert_non_null(strstr(eb.msg, "field 'severity'"));
        if (strlen(unknown_words[i]) <= 40) {
            snprintf(want, sizeof want, "'%s'", unknown_words[i]);
            assert_non_null(strstr(eb.msg, want));
        }
    }
    for (size_t i = 0; i < sizeof unknown_statuses / sizeof unknown_statuses[0]; i++) {
        rp_status lv;
        assert_false(rp_status_from_word(rp_str_c(unknown_statuses[i]), SN, &lv, NULL));
        rp_issue is;
        rp_errbuf eb = {0};
        assert_int_equal(decode(W(unknown_statuses[i]), ABSENT, NULL, NULL, SN, &is, &eb),
                         RP_BAD_REQUEST);
        snprintf(want, sizeof want, "field 'status' must be open, pending or resolved, or a "
                                    "help-desk status such as new, hold, solved, closed, In "
                                    "Progress or Done (got '%s')", unknown_statuses[i]);
        if (strcmp(eb.msg, want) != 0) fail_msg("got: %s\nwant: %s", eb.msg, want);
    }
    /* Control bytes are masked in the sentence, never echoed. */
    rp_issue is;
    rp_errbuf eb = {0};
    assert_int_equal(decode(ABSENT, W("hi\x01gh"), NULL, NULL, SN, &is, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "'hi?gh'"));
}

/* The record: levels in status/severity; the word as sent beside them only
 * when it differs; the levels' names write exactly today's bytes. */
static void test_record_shape(void **state) {
    (void)state;
    rp_issue is;
    rp_errbuf eb = {0};
    msgpack_sbuffer b;
    msgpack_unpacked u;
    /* "high"/"open": no raw fields, the same map as before. */
    assert_int_equal(decode(W("open"), W("high"), NULL, NULL, SN, &is, &eb), RP_OK);
    const msgpack_object *o = encoded(&is, RP_ENC_STORED, &b, &u);
    assert_int_equal(o->via.map.size, 5); /* status, severity, opened_at, updated_at, contacts */
    expect_field(o, "status", "open");
    expect_field(o, "status_raw", NULL);
    expect_field(o, "severity", "high");
    expect_field(o, "severity_raw", NULL);
    msgpack_unpacked_destroy(&u), msgpack_sbuffer_destroy(&b);

    /* Zendesk words: levels plus the words. */
    assert_int_equal(decode(W("hold"), W("Urgent "), NULL, NULL, SN, &is, &eb), RP_OK);
    o = encoded(&is, RP_ENC_WIRE, &b, &u);
    expect_field(o, "status", "pending");
    expect_field(o, "status_raw", "hold");
    expect_field(o, "severity", "critical");
    expect_field(o, "severity_raw", "Urgent");
    /* Field order: each raw word right after its level. */
    assert_true(rp_str_eqc((rp_str){o->via.map.ptr[2].key.via.str.ptr, o->via.map.ptr[2].key.via.str.size}, "status"));
    assert_true(rp_str_eqc((rp_str){o->via.map.ptr[3].key.via.str.ptr, o->via.map.ptr[3].key.via.str.size}, "status_raw"));
    assert_true(rp_str_eqc((rp_str){o->via.map.ptr[5].key.via.str.ptr, o->via.map.ptr[5].key.via.str.size}, "severity_raw"));

    /* An export re-imports as it was, whatever this server's reading. */
    rp_issue again;
    for (int nums = SN; nums <= NONE; nums++) {
        assert_int_equal(rp_issue_decode_as(o, RP_DEC_WIRE, (rp_issue_numbers)nums, &again, &eb), RP_OK);
        assert_int_equal(again.status, RP_ST_PENDING);
        assert_int_equal(again.severity, RP_SEV_CRITICAL);
        assert_true(str_is(again.status_raw, "hold") && str_is(again.severity_raw, "Urgent"));
    }
    msgpack_unpacked_destroy(&u), msgpack_sbuffer_destroy(&b);

    /* Stored and read back. */
    assert_int_equal(decode(W("4"), W("1"), NULL, NULL, FD, &is, &eb), RP_OK);
    assert_int_equal(is.status, RP_ST_RESOLVED);
    assert_int_equal(is.severity, RP_SEV_LOW);
    o = encoded(&is, RP_ENC_STORED, &b, &u);
    assert_int_equal(rp_issue_decode(o, RP_DEC_STORED, &again, &eb), RP_OK);
    assert_int_equal(again.status, RP_ST_RESOLVED);
    assert_int_equal(again.severity, RP_SEV_LOW);
    assert_true(str_is(again.status_raw, "4") && str_is(again.severity_raw, "1"));
    msgpack_unpacked_destroy(&u), msgpack_sbuffer_destroy(&b);

    /* A raw word alone sets the level; beside a level it is the display word. */
    assert_int_equal(decode(ABSENT, ABSENT, "Escalated", "P1", SN, &is, &eb), RP_OK);
    assert_int_equal(is.status, RP_ST_OPEN);
    assert_int_equal(is.severity, RP_SEV_CRITICAL);
    assert_true(str_is(is.status_raw, "Escalated") && str_is(is.severity_raw, "P1"));
    assert_int_equal(decode(W("resolved"), W("high"), "Done", " high ", SN, &is, &eb), RP_OK);
    assert_true(str_is(is.status_raw, "Done"));
    assert_true(str_is(is.severity_raw, NULL)); /* the level's own name */
    assert_int_equal(decode(W("open"), W("high"), NULL, "very bad", SN, &is, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "field 'severity_raw'"));
    assert_non_null(strstr(eb.msg, "'very bad'"));
    assert_int_equal(decode(ABSENT, ABSENT, "nope", NULL, SN, &is, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "field 'status_raw'"));
    /* No severity, no severity word. */
    assert_int_equal(decode(W("new"), (val){NULL, -1}, NULL, NULL, SN, &is, &eb), RP_OK);
    assert_int_equal(is.severity, RP_SEV_NONE);
    assert_true(str_is(is.severity_raw, NULL));
}

/* The setting: names, default, refusal, dump. */
static void dump_line(const char *line, void *arg) {
    if (strncmp(line, "issue_numbers", 13) == 0) snprintf(arg, 64, "%s", line);
}

static void test_setting(void **state) {
    (void)state;
    rp_config cfg;
    rp_config_defaults(&cfg);
    assert_int_equal(cfg.issue_numbers, RP_ISSUE_NUMBERS_SERVICENOW);
    rp_errbuf eb = {0};
    assert_int_equal(rp_config_set(&cfg, "issue_numbers", "freshdesk", &eb), RP_OK);
    assert_int_equal(cfg.issue_numbers, RP_ISSUE_NUMBERS_FRESHDESK);
    char line[64] = "";
    rp_config_dump(&cfg, dump_line, line);
    assert_string_equal(line, "issue_numbers = freshdesk");
    assert_int_equal(rp_config_set(&cfg, "issue_numbers", "none", &eb), RP_OK);
    assert_int_equal(cfg.issue_numbers, RP_ISSUE_NUMBERS_NONE);
    assert_int_equal(rp_config_set(&cfg, "issue_numbers", "zendesk", &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "servicenow, freshdesk or none"));
    assert_int_equal(cfg.issue_numbers, RP_ISSUE_NUMBERS_NONE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_severity_words), cmocka_unit_test(test_status_words),
        cmocka_unit_test(test_numbers),        cmocka_unit_test(test_unknown_words),
        cmocka_unit_test(test_record_shape),   cmocka_unit_test(test_setting),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
