/* test_codec.c — customer/event/issue MessagePack codecs, patch, helpers,
 * stored-mode corruption and the golden vectors in proto/vectors/.
 *
 * Inputs are written in a tiny JSON-like notation parsed by J() straight
 * into msgpack_objects: strings in 'single quotes' (raw bytes, no escapes),
 * integers, floats (a '.' makes a float64; a leading F makes a float32),
 * nil, true, false, [arrays] and {maps}. Raw bytes such as "\x01" or invalid
 * UTF-8 can be put inside the quotes with C escapes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "core/error.h"
#include "model/codec.h"
#include "model/ident.h"
#include "model/record.h"

/* ---- fixtures ------------------------------------------------------------ */

static msgpack_zone *zone;   /* J() objects and fmt() strings, per test */
static char arena_buf[8192]; /* normalized phones/emails, per test */
static rp_arena arena;

static int setup(void **state) {
    (void)state;
    zone = msgpack_zone_new(8192);
    arena = (rp_arena){arena_buf, sizeof arena_buf, 0};
    return zone ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    msgpack_zone_free(zone);
    zone = NULL;
    return 0;
}

/* printf into zone memory. */
static const char *fmt(const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    assert_true(n >= 0);
    char *s = msgpack_zone_malloc(zone, (size_t)n + 1);
    assert_non_null(s);
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

/* n copies of c, in zone memory. */
static const char *rep(char c, size_t n) {
    char *s = msgpack_zone_malloc(zone, n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* "['p0','p1',...]" with n entries. */
static const char *strlist(unsigned n, const char *prefix) {
    const char *s = "[";
    for (unsigned i = 0; i < n; i++) s = fmt("%s%s'%s%u'", s, i ? "," : "", prefix, i);
    return fmt("%s]", s);
}

/* "{'k0':'v','k1':'v',...}" with n entries. */
static const char *strmap(unsigned n) {
    const char *s = "{";
    for (unsigned i = 0; i < n; i++) s = fmt("%s%s'k%u':'v'", s, i ? "," : "", i);
    return fmt("%s}", s);
}

/* ---- J(): the notation parser ------------------------------------------ */

static void skip_ws(const char **p) {
    while (isspace((unsigned char)**p)) (*p)++;
}

static void parse_value(const char **p, msgpack_object *o);

/* Parse a list of items up to `close`, each a value (or key:value when
 * map); store them zone-allocated. At most 256 items. */
static void parse_items(const char **p, char close, bool map, msgpack_object *o) {
    msgpack_object vals[256];
    msgpack_object_kv kvs[256];
    uint32_t n = 0;
    (*p)++;
    skip_ws(p);
    while (**p != close) {
        if (n > 0) {
            if (**p != ',') fail_msg("J: expected ',' at '%.20s'", *p);
            (*p)++;
        }
        if (n >= 256) fail_msg("J: too many items");
        if (map) {
            parse_value(p, &kvs[n].key);
            skip_ws(p);
            if (**p != ':') fail_msg("J: expected ':' at '%.20s'", *p);
            (*p)++;
            parse_value(p, &kvs[n].val);
        } else {
            parse_value(p, &vals[n]);
        }
        n++;
        skip_ws(p);
    }
    (*p)++;
    if (map) {
        o->type = MSGPACK_OBJECT_MAP;
        o->via.map.size = n;
        o->via.map.ptr = n ? msgpack_zone_malloc(zone, n * sizeof kvs[0]) : NULL;
        if (n) memcpy(o->via.map.ptr, kvs, n * sizeof kvs[0]);
    } else {
        o->type = MSGPACK_OBJECT_ARRAY;
        o->via.array.size = n;
        o->via.array.ptr = n ? msgpack_zone_malloc(zone, n * sizeof vals[0]) : NULL;
        if (n) memcpy(o->via.array.ptr, vals, n * sizeof vals[0]);
    }
}

static void parse_value(const char **p, msgpack_object *o) {
    skip_ws(p);
    memset(o, 0, sizeof *o);
    const char *s = *p;
    if (*s == '{' || *s == '[') {
        parse_items(p, *s == '{' ? '}' : ']', *s == '{', o);
    } else if (*s == '\'') {
        const char *e = strchr(s + 1, '\'');
        if (!e) fail_msg("J: unterminated string");
        o->type = MSGPACK_OBJECT_STR;
        o->via.str.ptr = s + 1;
        o->via.str.size = (uint32_t)(e - s - 1);
        *p = e + 1;
    } else if (strncmp(s, "nil", 3) == 0) {
        o->type = MSGPACK_OBJECT_NIL;
        *p += 3;
    } else if (strncmp(s, "true", 4) == 0 || strncmp(s, "false", 5) == 0) {
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = *s == 't';
        *p += *s == 't' ? 4 : 5;
    } else {
        bool f32 = *s == 'F';
        if (f32) s++;
        size_t len = strspn(s, "+-0123456789.eE");
        if (len == 0) fail_msg("J: bad token at '%.20s'", s);
        if (f32 || memchr(s, '.', len) || memchr(s, 'e', len)) {
            o->type = f32 ? MSGPACK_OBJECT_FLOAT32 : MSGPACK_OBJECT_FLOAT64;
            o->via.f64 = f32 ? (double)strtof(s, NULL) : strtod(s, NULL);
        } else if (*s == '-') {
            o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
            o->via.i64 = strtoll(s, NULL, 10);
        } else {
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.u64 = strtoull(s, NULL, 10);
        }
        *p = s + len;
    }
}

/* The object written in the notation, in zone memory. */
static const msgpack_object *J(const char *spec) {
    msgpack_object *o = msgpack_zone_malloc(zone, sizeof *o);
    assert_non_null(o);
    const char *p = spec;
    parse_value(&p, o);
    skip_ws(&p);
    if (*p) fail_msg("J: trailing text '%.20s'", p);
    return o;
}

/* ---- encode / unpack helpers ------------------------------------------- */

typedef struct packed {
    msgpack_sbuffer sb;
    msgpack_unpacked up;
} packed;

static void packed_init(packed *b, msgpack_packer *pk) {
    msgpack_sbuffer_init(&b->sb);
    msgpack_unpacked_init(&b->up);
    msgpack_packer_init(pk, &b->sb, msgpack_sbuffer_write);
}

/* Unpack b's bytes; the whole buffer must be exactly one object. */
static const msgpack_object *packed_obj(packed *b) {
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&b->up, b->sb.data, b->sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, b->sb.size);
    return &b->up.data;
}

static void packed_free(packed *b) {
    msgpack_unpacked_destroy(&b->up);
    msgpack_sbuffer_destroy(&b->sb);
}

/* true when needle (n bytes) occurs in the packed bytes. */
static bool packed_has(const packed *b, const char *needle, size_t n) {
    for (size_t i = 0; i + n <= b->sb.size; i++)
        if (memcmp(b->sb.data + i, needle, n) == 0) return true;
    return false;
}

/* ---- record comparison --------------------------------------------------- */

static void str_equal(rp_str a, rp_str b, const char *what) {
    if (!rp_str_eq(a, b))
        fail_msg("%s differs: '%.*s' vs '%.*s'", what, (int)a.n, a.p ? a.p : "", (int)b.n,
                 b.p ? b.p : "");
}

static void list_equal(const rp_str *a, uint32_t na, const rp_str *b, uint32_t nb,
                       const char *what) {
    if (na != nb) fail_msg("%s: %u vs %u entries", what, na, nb);
    for (uint32_t i = 0; i < na; i++) str_equal(a[i], b[i], what);
}

static void customer_equal(const rp_customer *a, const rp_customer *b) {
    str_equal(a->id, b->id, "id");
    str_equal(a->name, b->name, "name");
    str_equal(a->preferred_name, b->preferred_name, "preferred_name");
    str_equal(a->language, b->language, "language");
    str_equal(a->timezone, b->timezone, "timezone");
    str_equal(a->tier, b->tier, "tier");
    assert_int_equal(a->customer_since, b->customer_since);
    list_equal(a->flags, a->nflags, b->flags, b->nflags, "flags");
    assert_int_equal(a->nprefs, b->nprefs);
    for (uint32_t i = 0; i < a->nprefs; i++) {
        str_equal(a->prefs[i].key, b->prefs[i].key, "pref key");
        str_equal(a->prefs[i].value, b->prefs[i].value, "pref value");
    }
    list_equal(a->notes, a->nnotes, b->notes, b->nnotes, "rapport_notes");
    list_equal(a->phones, a->nphones, b->phones, b->nphones, "phones");
    list_equal(a->emails, a->nemails, b->emails, b->nemails, "emails");
    list_equal(a->accounts, a->naccounts, b->accounts, b->naccounts, "accounts");
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->updated_at, b->updated_at);
}

static void event_equal(const rp_event *a, const rp_event *b, bool keys) {
    if (keys) {
        str_equal(a->customer_id, b->customer_id, "customer_id");
        assert_int_equal(a->ts, b->ts);
    }
    assert_int_equal(a->channel, b->channel);
    str_equal(a->kind, b->kind, "kind");
    str_equal(a->topic, b->topic, "topic");
    str_equal(a->summary, b->summary, "summary");
    assert_int_equal(a->outcome, b->outcome);
    assert_int_equal(a->has_sentiment, b->has_sentiment);
    if (a->has_sentiment) assert_true(a->sentiment == b->sentiment);
    str_equal(a->agent, b->agent, "agent");
    str_equal(a->issue_id, b->issue_id, "issue_id");
    str_equal(a->event_id, b->event_id, "event_id");
}

static void issue_equal(const rp_issue *a, const rp_issue *b, bool keys) {
    if (keys) {
        str_equal(a->customer_id, b->customer_id, "customer_id");
        str_equal(a->issue_id, b->issue_id, "issue_id");
    }
    str_equal(a->topic, b->topic, "topic");
    str_equal(a->summary, b->summary, "summary");
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->severity, b->severity);
    assert_int_equal(a->opened_at, b->opened_at);
    assert_int_equal(a->updated_at, b->updated_at);
    assert_int_equal(a->follow_up_due, b->follow_up_due);
    assert_int_equal(a->contacts, b->contacts);
}

/* ---- expectation helpers ----------------------------------------------- */

static void check(const char *spec, rp_err rc, const rp_errbuf *eb, rp_err want,
                  const char *msgpart) {
    if (rc != want || (want != RP_OK && msgpart && !strstr(eb->msg, msgpart)))
        fail_msg("%.160s\n  got %s '%s'\n  want %s '%s'", spec, rp_err_code(rc), eb->msg,
                 rp_err_code(want), msgpart ? msgpart : "");
}

/* Decode spec as a wire customer; expect code want and msgpart in the message. */
static void cust_expect(const char *spec, rp_err want, const char *msgpart) {
    rp_customer c;
    rp_errbuf eb = {0};
    rp_err rc = rp_customer_decode(J(spec), RP_DEC_WIRE, "US", &arena, &c, &eb);
    check(spec, rc, &eb, want, msgpart);
}

static void event_expect(const char *spec, rp_err want, const char *msgpart) {
    rp_event e;
    rp_errbuf eb = {0};
    check(spec, rp_event_decode(J(spec), RP_DEC_WIRE, &e, &eb), &eb, want, msgpart);
}

static void issue_expect(const char *spec, rp_err want, const char *msgpart) {
    rp_issue is;
    rp_errbuf eb = {0};
    check(spec, rp_issue_decode(J(spec), RP_DEC_WIRE, &is, &eb), &eb, want, msgpart);
}

/* ---- customers ------------------------------------------------------------ */

#define FULL_CUSTOMER                                                                            \
    "{'type':'customer','id':'cust-0001','name':'Mar\xc3\xad" "a Jos\xc3\xa9 N\xc3\xba\xc3\xb1" \
    "ez','preferred_name':'Majo','language':'es-MX','timezone':'America/Mexico_City',"           \
    "'tier':'gold','customer_since':1262304000,'flags':['vip','hearing_impaired','vip'],"       \
    "'preferences':{'channel':'phone','contact_window':'09:00-12:00','tone':nil},"              \
    "'rapport_notes':['follows the local football club','has two dogs'],"                       \
    "'phones':['+44 (0)20 7946 0958','0044 20 7946 0958','415.555.1212','+1 (415) 555-1212'],"  \
    "'emails':[' Majo@Example.COM ','majo@example.com','m.n@work.example.org'],"                \
    "'accounts':['ACME-1','B-2','ACME-1'],'version':3,'updated_at':1717000000}"

static void test_customer_decode_full(void **state) {
    (void)state;
    rp_customer c;
    rp_errbuf eb = {0};
    assert_int_equal(rp_customer_decode(J(FULL_CUSTOMER), RP_DEC_WIRE, "US", &arena, &c, &eb),
                     RP_OK);
    assert_true(rp_str_eqc(c.id, "cust-0001"));
    assert_true(rp_str_eqc(c.preferred_name, "Majo"));
    assert_true(rp_str_eqc(c.language, "es-MX"));
    assert_int_equal(c.customer_since, 1262304000);
    assert_int_equal(c.nflags, 2); /* the repeated "vip" is dropped */
    assert_true(rp_str_eqc(c.flags[1], "hearing_impaired"));
    assert_int_equal(c.nprefs, 2); /* tone: nil is absent */
    assert_true(rp_str_eqc(c.prefs[1].key, "contact_window"));
    assert_true(rp_str_eqc(c.prefs[1].value, "09:00-12:00"));
    assert_int_equal(c.nnotes, 2);
    assert_int_equal(c.nphones, 2); /* four spellings of two numbers */
    assert_true(rp_str_eqc(c.phones[0], "+442079460958"));
    assert_true(rp_str_eqc(c.phones[1], "+14155551212"));
    assert_int_equal(c.nemails, 2);
    assert_true(rp_str_eqc(c.emails[0], "majo@example.com"));
    assert_true(rp_str_eqc(c.emails[1], "m.n@work.example.org"));
    assert_int_equal(c.naccounts, 2);
    assert_int_equal(c.version, 3);
    assert_int_equal(c.updated_at, 1717000000);
    /* Normalized strings live in the arena. */
    assert_true(c.phones[0].p >= arena_buf && c.phones[0].p < arena_buf + sizeof arena_buf);
    assert_true(arena.used > 0);
}

static void test_customer_round_trip(void **state) {
    (void)state;
    rp_customer c, back, stored;
    rp_errbuf eb = {0};
    assert_int_equal(rp_customer_decode(J(FULL_CUSTOMER), RP_DEC_WIRE, "US", &arena, &c, &eb),
                     RP_OK);
    packed b;
    msgpack_packer pk;
    packed_init(&b, &pk);
    rp_customer_encode(&pk, &c, RP_ENC_WIRE);
    const msgpack_object *o = packed_obj(&b);
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o->via.map.size, 15); /* every field is set */
    assert_int_equal(rp_customer_decode(o, RP_DEC_WIRE, "US", &arena, &back, &eb), RP_OK);
    customer_equal(&c, &back);
    assert_int_equal(rp_customer_decode(o, RP_DEC_STORED, NULL, NULL, &stored, &eb), RP_OK);
    customer_equal(&c, &stored);
    /* A stored customer is the wire customer: same bytes. */
    packed s;
    packed_init(&s, &pk);
    rp_customer_encode(&pk, &c, RP_ENC_STORED);
    assert_int_equal(s.sb.size, b.sb.size);
    assert_memory_equal(s.sb.data, b.sb.data, b.sb.size);
    packed_free(&s);
    packed_free(&b);
}

static void test_customer_minimal_shape(void **state) {
    (void)state;
    rp_customer c;
    rp_errbuf eb = {0};
    assert_int_equal(
        rp_customer_decode(J("{'id':'c1','name':nil,'tier':''}"), RP_DEC_WIRE, "US", &arena, &c,
                           &eb),
        RP_OK);
    assert_int_equal(c.name.n, 0);
    assert_int_equal(c.tier.n, 0);
    packed b;
    msgpack_packer pk;
    packed_init(&b, &pk);
    rp_customer_encode(&pk, &c, RP_ENC_WIRE);
    const msgpack_object *o = packed_obj(&b);
    /* id, six collections, version, updated_at; absent strings are left out. */
    assert_int_equal(o->via.map.size, 9);
    assert_null(rp_mp_get(o, "name"));
    assert_null(rp_mp_get(o, "customer_since"));
    const char *colls[] = {"flags", "rapport_notes", "phones", "emails", "accounts"};
    for (size_t i = 0; i < 5; i++) {
        const msgpack_object *v = rp_mp_get(o, colls[i]);
        assert_non_null(v);
        assert_int_equal(v->type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(v->via.array.size, 0);
    }
    const msgpack_object *pr = rp_mp_get(o, "preferences");
    assert_non_null(pr);
    assert_int_equal(pr->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(pr->via.map.size, 0);
    int64_t v = -1;
    assert_int_equal(rp_mp_int(o, "version", &v, &eb), RP_OK);
    assert_int_equal(v, 0);
    packed_free(&b);
}

static void test_customer_limits(void **state) {
    (void)state;
    /* Each string limit: at the limit passes, one byte over is TOO_LARGE. */
    static const struct {
        const char *field;
        size_t max;
    } texts[] = {{"name", RP_NAME_MAX},
                 {"preferred_name", RP_NAME_MAX},
                 {"timezone", RP_NAME_MAX},
                 {"tier", RP_NAME_MAX}};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        cust_expect(fmt("{'id':'c','%s':'%s'}", texts[i].field, rep('x', texts[i].max)), RP_OK,
                    NULL);
        cust_expect(fmt("{'id':'c','%s':'%s'}", texts[i].field, rep('x', texts[i].max + 1)),
                    RP_TOO_LARGE, texts[i].field);
    }
    cust_expect(fmt("{'id':'c','flags':['%s']}", rep('f', RP_TOKEN_MAX)), RP_OK, NULL);
    cust_expect(fmt("{'id':'c','flags':['%s']}", rep('f', RP_TOKEN_MAX + 1)), RP_TOO_LARGE,
                "flags[0]");
    cust_expect(fmt("{'id':'c','rapport_notes':['%s']}", rep('n', RP_NOTE_MAX)), RP_OK, NULL);
    cust_expect(fmt("{'id':'c','rapport_notes':['ok','%s']}", rep('n', RP_NOTE_MAX + 1)),
                RP_TOO_LARGE, "rapport_notes[1]");
    cust_expect(fmt("{'id':'c','preferences':{'%s':'v'}}", rep('k', RP_PREF_KEY_MAX)), RP_OK,
                NULL);
    cust_expect(fmt("{'id':'c','preferences':{'%s':'v'}}", rep('k', RP_PREF_KEY_MAX + 1)),
                RP_TOO_LARGE, "preference key");
    cust_expect(fmt("{'id':'c','preferences':{'k':'%s'}}", rep('v', RP_PREF_VAL_MAX)), RP_OK,
                NULL);
    cust_expect(fmt("{'id':'c','preferences':{'k':'%s'}}", rep('v', RP_PREF_VAL_MAX + 1)),
                RP_TOO_LARGE, "preference value");
    /* Counts. */
    cust_expect(fmt("{'id':'c','flags':%s}", strlist(RP_MAX_FLAGS, "f")), RP_OK, NULL);
    cust_expect(fmt("{'id':'c','flags':%s}", strlist(RP_MAX_FLAGS + 1, "f")), RP_TOO_LARGE,
                "'flags' has 33 entries; the limit is 32");
    cust_expect(fmt("{'id':'c','rapport_notes':%s}", strlist(RP_MAX_NOTES + 1, "n")),
                RP_TOO_LARGE, "rapport_notes");
    cust_expect(fmt("{'id':'c','accounts':%s}", strlist(RP_MAX_ACCOUNTS, "a")), RP_OK, NULL);
    cust_expect(fmt("{'id':'c','accounts':%s}", strlist(RP_MAX_ACCOUNTS + 1, "a")),
                RP_TOO_LARGE, "accounts");
    cust_expect(fmt("{'id':'c','phones':%s}", strlist(RP_MAX_PHONES + 1, "+1415555120")),
                RP_TOO_LARGE, "phones");
    cust_expect(fmt("{'id':'c','emails':%s}", strlist(RP_MAX_EMAILS + 1, "a@b.c")),
                RP_TOO_LARGE, "emails");
    cust_expect(fmt("{'id':'c','preferences':%s}", strmap(RP_MAX_PREFS)), RP_OK, NULL);
    cust_expect(fmt("{'id':'c','preferences':%s}", strmap(RP_MAX_PREFS + 1)), RP_TOO_LARGE,
                "preferences");
    /* Ids. */
    cust_expect(fmt("{'id':'%s'}", rep('i', RP_ID_MAX)), RP_OK, NULL);
    cust_expect(fmt("{'id':'%s'}", rep('i', RP_ID_MAX + 1)), RP_BAD_REQUEST, "id must be");
    cust_expect("{'id':''}", RP_BAD_REQUEST, "id must be 1 to 64 bytes");
    cust_expect("{'id':'a b'}", RP_BAD_REQUEST, "printable");
    cust_expect("{'id':'c','accounts':['ok','has space']}", RP_BAD_REQUEST, "accounts[1]");
    cust_expect(fmt("{'id':'c','accounts':['%s']}", rep('a', RP_ID_MAX + 1)), RP_BAD_REQUEST,
                "accounts[0]");
    /* Text content. */
    cust_expect("{'id':'c','name':'tab\tok'}", RP_OK, NULL);
    cust_expect("{'id':'c','name':'bad\x01'}", RP_BAD_REQUEST, "control");
    cust_expect("{'id':'c','name':'bad\xc3('}", RP_BAD_REQUEST, "UTF-8");
    cust_expect("{'id':'c','flags':['']}", RP_BAD_REQUEST, "flags[0] is empty");
    cust_expect("{'id':'c','rapport_notes':['line\nbreak']}", RP_BAD_REQUEST, "rapport_notes[0]");
    cust_expect("{'id':'c','preferences':{'':'v'}}", RP_BAD_REQUEST, "key is empty");
    cust_expect("{'id':'c','preferences':{'k':'a','k':'b'}}", RP_BAD_REQUEST, "given twice");
    /* Language tags. */
    const char *langs_ok[] = {"en", "es-MX", "zh-Hant-TW", "de-CH-1996", "sgn-BE-FR"};
    for (size_t i = 0; i < 5; i++) cust_expect(fmt("{'id':'c','language':'%s'}", langs_ok[i]), RP_OK, NULL);
    const char *langs_bad[] = {"e", "en_US", "en-", "-en", "en--US", "1en", "english language",
                               "toolongsubtag-en", "en-\xc3\xa9"};
    for (size_t i = 0; i < sizeof langs_bad / sizeof langs_bad[0]; i++)
        cust_expect(fmt("{'id':'c','language':'%s'}", langs_bad[i]), RP_BAD_REQUEST, "language");
    cust_expect("{'id':'c','language':'en-a-b-c-d-e-f-g-h-i-j-k-l-m-n-o-p'}", RP_OK, NULL);
    cust_expect("{'id':'c','language':'e n'}", RP_BAD_REQUEST, "BCP 47 language tag");
    /* Phones and emails are normalized; failures name the element. */
    cust_expect("{'id':'c','phones':['+1 (415) 555-1212','call me maybe']}", RP_BAD_REQUEST,
                "phones[1]: ");
    cust_expect("{'id':'c','emails':['no-at-sign']}", RP_BAD_REQUEST, "emails[0]: ");
    cust_expect("{'id':'c','phones':['']}", RP_BAD_REQUEST, "phones[0] is empty");
}

static void test_customer_language_length(void **state) {
    (void)state;
    /* 35 bytes is the longest tag; 36 is refused. */
    const char *t35 = "ab-cdefgh-ijklmnop-qrstuvwx-yzabcde"; /* 2+1+6+1+8+1+8+1+7 */
    assert_int_equal(strlen(t35), 35);
    cust_expect(fmt("{'id':'c','language':'%s'}", t35), RP_OK, NULL);
    cust_expect(fmt("{'id':'c','language':'%sf'}", t35), RP_BAD_REQUEST, "language");
}

static void test_customer_types_and_fields(void **state) {
    (void)state;
    cust_expect("{'id':'c','name':5}", RP_BAD_REQUEST, "field 'name' must be a string (got an integer)");
    cust_expect("{'id':7}", RP_BAD_REQUEST, "field 'id' must be a string");
    cust_expect("{'id':'c','flags':'vip'}", RP_BAD_REQUEST, "field 'flags' must be an array of strings");
    cust_expect("{'id':'c','flags':['vip',1]}", RP_BAD_REQUEST, "field 'flags[1]' must be a string");
    cust_expect("{'id':'c','phones':[nil]}", RP_BAD_REQUEST, "phones[0]");
    cust_expect("{'id':'c','preferences':['a']}", RP_BAD_REQUEST, "must be a map");
    cust_expect("{'id':'c','preferences':{'k':1}}", RP_BAD_REQUEST, "preference value");
    cust_expect("{'id':'c','preferences':{1:'v'}}", RP_BAD_REQUEST, "preferences key");
    cust_expect("{'id':'c','customer_since':'2010'}", RP_BAD_REQUEST, "must be an integer");
    cust_expect("{'id':'c','customer_since':1.5}", RP_BAD_REQUEST, "(got a float)");
    cust_expect("{'id':'c','customer_since':-1}", RP_BAD_REQUEST, "negative");
    cust_expect("{'id':'c','updated_at':true}", RP_BAD_REQUEST, "updated_at");
    cust_expect("{'id':'c','version':-3}", RP_BAD_REQUEST, "version");
    cust_expect("{'id':'c','version':18446744073709551615}", RP_OK, NULL);
    cust_expect("{'id':'c','updated_at':9223372036854775808}", RP_BAD_REQUEST, "out of range");
    cust_expect("['c']", RP_BAD_REQUEST, "a customer must be a map (got an array)");
    cust_expect("'c'", RP_BAD_REQUEST, "must be a map");
    cust_expect("{}", RP_BAD_REQUEST, "missing required field 'id'");
    cust_expect("{'id':nil}", RP_BAD_REQUEST, "missing required field 'id'");
    cust_expect("{'id':'c','nmae':'x'}", RP_BAD_REQUEST, "unknown field 'nmae'");
    cust_expect("{'id':'c','Name':'x'}", RP_BAD_REQUEST, "unknown field 'Name'");
    cust_expect("{'id':'c','seq\x01':1}", RP_BAD_REQUEST, "unknown field 'seq?'");
    cust_expect("{'id':'c',1:'x'}", RP_BAD_REQUEST, "field names must be strings");
    cust_expect("{'id':'c','name':'a','name':'b'}", RP_BAD_REQUEST, "'name' is given twice");
    cust_expect("{'type':'anything','id':'c'}", RP_OK, NULL);
    /* NULL object and NULL errbuf are tolerated. */
    rp_customer c;
    rp_errbuf eb = {0};
    assert_int_equal(rp_customer_decode(NULL, RP_DEC_WIRE, "US", &arena, &c, &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_customer_decode(J("{'id':1}"), RP_DEC_WIRE, "US", &arena, &c, NULL),
                     RP_BAD_REQUEST);
}

static void test_customer_arena(void **state) {
    (void)state;
    rp_customer c;
    rp_errbuf eb = {0};
    const msgpack_object *o = J("{'id':'c','phones':['+14155551212','+442079460958']}");
    /* 12 bytes hold the first number only. */
    char small[12];
    rp_arena a = {small, sizeof small, 0};
    assert_int_equal(rp_customer_decode(o, RP_DEC_WIRE, "US", &a, &c, &eb), RP_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "phones[1]"));
    /* No arena at all: a customer with identities to normalize is refused... */
    assert_int_equal(rp_customer_decode(o, RP_DEC_WIRE, "US", NULL, &c, &eb), RP_TOO_LARGE);
    /* ...and one without them decodes. */
    assert_int_equal(rp_customer_decode(J("{'id':'c','accounts':['x']}"), RP_DEC_WIRE, "US",
                                        NULL, &c, &eb),
                     RP_OK);
    rp_arena b = {small, sizeof small, 0};
    assert_int_equal(rp_customer_decode(J("{'id':'c','emails':['abcdefgh@ij.kl']}"),
                                        RP_DEC_WIRE, "US", &b, &c, &eb),
                     RP_TOO_LARGE);
}

/* ---- patch ------------------------------------------------------------- */

#define BASE_CUSTOMER                                                                            \
    "{'id':'c1','name':'Ann','preferred_name':'Annie','tier':'gold','customer_since':100,"      \
    "'flags':['vip'],'preferences':{'channel':'phone','window':'am'},"                           \
    "'phones':['+14155551212'],'emails':['ann@example.com'],'version':4,'updated_at':500}"

static void base_customer(rp_customer *c) {
    rp_errbuf eb = {0};
    assert_int_equal(rp_customer_decode(J(BASE_CUSTOMER), RP_DEC_WIRE, "US", &arena, c, &eb),
                     RP_OK);
}

static rp_err patch(rp_customer *c, const char *spec, rp_errbuf *eb) {
    return rp_customer_patch(c, J(spec), "US", &arena, eb);
}

static void test_patch_semantics(void **state) {
    (void)state;
    rp_customer c;
    rp_errbuf eb = {0};
    base_customer(&c);
    assert_int_equal(patch(&c,
                           "{'name':'Anna','preferred_name':nil,'customer_since':nil,"
                           "'preferences':{'tone':'warm','channel':nil,'window':'pm'},"
                           "'flags':['vulnerable','do_not_call'],'phones':['(415) 555-0000'],"
                           "'type':'customer'}",
                           &eb),
                     RP_OK);
    assert_true(rp_str_eqc(c.name, "Anna"));        /* replaced */
    assert_int_equal(c.preferred_name.n, 0);         /* nil clears */
    assert_int_equal(c.customer_since, 0);
    assert_true(rp_str_eqc(c.tier, "gold"));         /* untouched */
    assert_int_equal(c.nprefs, 2);                   /* channel deleted, window replaced */
    assert_true(rp_str_eqc(c.prefs[0].key, "window"));
    assert_true(rp_str_eqc(c.prefs[0].value, "pm"));
    assert_true(rp_str_eqc(c.prefs[1].key, "tone"));
    assert_int_equal(c.nflags, 2);                   /* arrays replace whole */
    assert_true(rp_str_eqc(c.flags[0], "vulnerable"));
    assert_int_equal(c.nphones, 1);
    assert_true(rp_str_eqc(c.phones[0], "+14155550000")); /* normalized */
    assert_int_equal(c.nemails, 1);
    assert_int_equal(c.version, 4);                  /* bookkeeping untouched */
    assert_true(rp_str_eqc(c.id, "c1"));

    /* "" deletes a preference too; nil for the whole map clears it; empty arrays clear. */
    assert_int_equal(patch(&c, "{'preferences':{'window':''},'emails':[]}", &eb), RP_OK);
    assert_int_equal(c.nprefs, 1);
    assert_int_equal(c.nemails, 0);
    assert_int_equal(patch(&c, "{'preferences':nil,'flags':nil}", &eb), RP_OK);
    assert_int_equal(c.nprefs, 0);
    assert_int_equal(c.nflags, 0);
    /* Deleting a key that is not there is a no-op; an empty patch changes nothing. */
    assert_int_equal(patch(&c, "{'preferences':{'nope':nil}}", &eb), RP_OK);
    assert_int_equal(patch(&c, "{}", &eb), RP_OK);
    assert_int_equal(c.nprefs, 0);
}

static void test_patch_refusals(void **state) {
    (void)state;
    rp_customer c, before;
    rp_errbuf eb = {0};
    base_customer(&c);
    before = c;
    const struct {
        const char *spec;
        rp_err code;
        const char *msg;
    } bad[] = {
        {"{'id':'c2'}", RP_BAD_REQUEST, "cannot patch id"},
        {"{'version':9}", RP_BAD_REQUEST, "cannot patch version"},
        {"{'updated_at':9}", RP_BAD_REQUEST, "cannot patch updated_at"},
        {"{'name':'Ok','nmae':'x'}", RP_BAD_REQUEST, "unknown field 'nmae'"},
        {"{'name':'Ok','flags':[1]}", RP_BAD_REQUEST, "flags[0]"},
        {"{'name':'Ok','preferences':'x'}", RP_BAD_REQUEST, "preferences"},
        {"{'name':'Ok','phones':['+442079460958','not a phone']}", RP_BAD_REQUEST, "phones[1]"},
        {"['name']", RP_BAD_REQUEST, "must be a map"},
        {"{'name':'a','name':'b'}", RP_BAD_REQUEST, "given twice"},
        {"{'preferences':{'a':'1','a':nil}}", RP_BAD_REQUEST, "given twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t used = arena.used;
        rp_err rc = patch(&c, bad[i].spec, &eb);
        check(bad[i].spec, rc, &eb, bad[i].code, bad[i].msg);
        customer_equal(&c, &before); /* a failed patch changes nothing */
        assert_int_equal(arena.used, used); /* and gives back its arena bytes */
    }
}

static void test_patch_pref_limit(void **state) {
    (void)state;
    rp_customer c;
    rp_errbuf eb = {0};
    assert_int_equal(rp_customer_decode(J(fmt("{'id':'c','preferences':%s}", strmap(RP_MAX_PREFS))),
                                        RP_DEC_WIRE, "US", &arena, &c, &eb),
                     RP_OK);
    assert_int_equal(c.nprefs, RP_MAX_PREFS);
    assert_int_equal(patch(&c, "{'preferences':{'one_more':'x'}}", &eb), RP_TOO_LARGE);
    assert_int_equal(c.nprefs, RP_MAX_PREFS);
    assert_int_equal(patch(&c, "{'preferences':{'k5':'new'}}", &eb), RP_OK);
    assert_true(rp_str_eqc(c.prefs[5].value, "new"));
    /* A delete frees room for an add in the same patch. */
    assert_int_equal(patch(&c, "{'preferences':{'k0':nil,'one_more':'x'}}", &eb), RP_OK);
    assert_int_equal(c.nprefs, RP_MAX_PREFS);
    assert_true(rp_str_eqc(c.prefs[0].key, "k1")); /* order kept */
    assert_true(rp_str_eqc(c.prefs[RP_MAX_PREFS - 1].key, "one_more"));
    /* A patch map itself is bounded. */
    assert_int_equal(patch(&c, fmt("{'preferences':%s}", strmap(RP_MAX_PREFS + 1)), &eb),
                     RP_TOO_LARGE);
}

/* ---- events ---------------------------------------------------------------- */

#define FULL_EVENT                                                                               \
    "{'type':'event','customer_id':'cust-0001','ts':1717000100,'channel':'phone',"              \
    "'kind':'contact','topic':'delivery','summary':'Parcel late again; asked for a callback',"  \
    "'outcome':'unresolved','sentiment':-0.5,'agent':'agent-17','issue_id':'ISS-42'}"

static void test_event_round_trip(void **state) {
    (void)state;
    rp_event e, back, st;
    rp_errbuf eb = {0};
    assert_int_equal(rp_event_decode(J(FULL_EVENT), RP_DEC_WIRE, &e, &eb), RP_OK);
    assert_true(rp_str_eqc(e.customer_id, "cust-0001"));
    assert_int_equal(e.ts, 1717000100);
    assert_int_equal(e.channel, RP_CH_PHONE);
    assert_int_equal(e.outcome, RP_OUT_UNRESOLVED);
    assert_true(e.has_sentiment);
    assert_true(e.sentiment == -0.5);
    assert_true(rp_str_eqc(e.issue_id, "ISS-42"));
    e.seq = 7; /* store-assigned: never in the map */

    packed b;
    msgpack_packer pk;
    packed_init(&b, &pk);
    rp_event_encode(&pk, &e, RP_ENC_WIRE);
    const msgpack_object *o = packed_obj(&b);
    assert_int_equal(o->via.map.size, 10);
    assert_false(packed_has(&b, "\xa3seq", 4));
    assert_int_equal(rp_event_decode(o, RP_DEC_WIRE, &back, &eb), RP_OK);
    event_equal(&e, &back, true);
    packed_free(&b);

    /* Stored: the key holds customer_id and ts. */
    packed s;
    packed_init(&s, &pk);
    rp_event_encode(&pk, &e, RP_ENC_STORED);
    o = packed_obj(&s);
    assert_int_equal(o->via.map.size, 8);
    assert_false(packed_has(&s, "customer_id", 11));
    assert_null(rp_mp_get(o, "ts"));
    assert_int_equal(rp_event_decode(o, RP_DEC_STORED, &st, &eb), RP_OK);
    assert_int_equal(st.customer_id.n, 0);
    assert_int_equal(st.ts, 0);
    assert_int_equal(st.seq, 0);
    event_equal(&e, &st, false);
    /* A stored value is not a valid wire event: customer_id is missing. */
    assert_int_equal(rp_event_decode(o, RP_DEC_WIRE, &st, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "customer_id"));
    packed_free(&s);
}

/* event_id: an id, written last and only when set (events without one keep
 * their bytes, see the golden vectors); seq: read on the wire (import),
 * written only with RP_ENC_SEQ (export), never stored. */
static void test_event_id_and_seq(void **state) {
    (void)state;
    rp_event e, back, st;
    rp_errbuf eb = {0};
    assert_int_equal(rp_event_decode(J("{'customer_id':'c','ts':5,'seq':3,'channel':'chat',"
                                       "'kind':'contact','event_id':'SF-00T5e000001'}"),
                                     RP_DEC_WIRE, &e, &eb),
                     RP_OK);
    assert_true(rp_str_eqc(e.event_id, "SF-00T5e000001"));
    assert_true(e.has_seq);
    assert_int_equal(e.seq, 3);
    assert_int_equal(rp_event_check(&e, &eb), RP_OK);

    packed w;
    msgpack_packer pk;
    packed_init(&w, &pk);
    rp_event_encode(&pk, &e, RP_ENC_WIRE);
    const msgpack_object *o = packed_obj(&w);
    assert_int_equal(o->via.map.size, 6);
    assert_null(rp_mp_get(o, "seq"));
    const msgpack_object_kv *last = &o->via.map.ptr[5]; /* written last */
    assert_true(rp_str_eqc((rp_str){last->key.via.str.ptr, last->key.via.str.size}, "event_id"));
    assert_true(rp_str_eqc((rp_str){last->val.via.str.ptr, last->val.via.str.size}, "SF-00T5e000001"));
    packed_free(&w);

    packed x;
    packed_init(&x, &pk);
    rp_event_encode(&pk, &e, RP_ENC_WIRE | RP_ENC_SEQ);
    o = packed_obj(&x);
    assert_int_equal(o->via.map.size, 7);
    assert_true(rp_str_eqc((rp_str){o->via.map.ptr[2].key.via.str.ptr, 3}, "seq"));
    assert_int_equal(rp_event_decode(o, RP_DEC_WIRE, &back, &eb), RP_OK);
    event_equal(&e, &back, true);
    assert_true(back.has_seq);
    assert_int_equal(back.seq, 3);
    packed_free(&x);

    packed s;
    packed_init(&s, &pk);
    rp_event_encode(&pk, &e, RP_ENC_STORED | RP_ENC_SEQ);
    o = packed_obj(&s);
    assert_int_equal(o->via.map.size, 4);
    assert_null(rp_mp_get(o, "seq"));
    assert_int_equal(rp_event_decode(o, RP_DEC_STORED, &st, &eb), RP_OK);
    assert_false(st.has_seq);
    event_equal(&e, &st, false);
    packed_free(&s);

    /* Without an event_id the bytes are those of before. */
    e.event_id = (rp_str){NULL, 0};
    packed n;
    packed_init(&n, &pk);
    rp_event_encode(&pk, &e, RP_ENC_STORED);
    assert_false(packed_has(&n, "event_id", 8));
    packed_free(&n);
}

static void test_event_minimal_and_defaults(void **state) {
    (void)state;
    rp_event e;
    rp_errbuf eb = {0};
    assert_int_equal(rp_event_decode(J("{'customer_id':'c','ts':0,'channel':'web','kind':'login',"
                                       "'sentiment':nil,'topic':nil,'issue_id':nil}"),
                                     RP_DEC_WIRE, &e, &eb),
                     RP_OK);
    assert_int_equal(e.ts, 0);
    assert_int_equal(e.outcome, RP_OUT_NONE);
    assert_false(e.has_sentiment);
    assert_int_equal(e.issue_id.n, 0);
    packed b;
    msgpack_packer pk;
    packed_init(&b, &pk);
    rp_event_encode(&pk, &e, RP_ENC_WIRE);
    const msgpack_object *o = packed_obj(&b);
    assert_int_equal(o->via.map.size, 5); /* customer_id, ts, channel, kind, outcome */
    rp_str out = {0};
    assert_int_equal(rp_mp_str(o, "outcome", &out, &eb), RP_OK);
    assert_true(rp_str_eqc(out, "none"));
    assert_null(rp_mp_get(o, "sentiment"));
    packed_free(&b);
}

static void test_event_validation(void **state) {
    (void)state;
#define EV(extra) "{'customer_id':'c','ts':10,'channel':'chat','kind':'contact'" extra "}"
    event_expect(EV(""), RP_OK, NULL);
    event_expect("{'ts':10,'channel':'chat','kind':'contact'}", RP_BAD_REQUEST,
                 "missing required field 'customer_id'");
    event_expect("{'customer_id':'c','channel':'chat','kind':'contact'}", RP_BAD_REQUEST,
                 "missing required field 'ts'");
    event_expect("{'customer_id':'c','ts':nil,'channel':'chat','kind':'contact'}", RP_BAD_REQUEST,
                 "missing required field 'ts'");
    event_expect("{'customer_id':'c','ts':1,'kind':'contact'}", RP_BAD_REQUEST,
                 "missing required field 'channel'");
    event_expect("{'customer_id':'c','ts':1,'channel':'chat'}", RP_BAD_REQUEST,
                 "missing required field 'kind'");
    event_expect("{'customer_id':'c','ts':1,'channel':'chat','kind':''}", RP_BAD_REQUEST,
                 "missing required field 'kind'");
    event_expect("{'customer_id':'c','ts':1,'channel':'fax','kind':'contact'}", RP_BAD_REQUEST,
                 "'channel' must be one of phone, chat, email, web, store, system (got 'fax')");
    event_expect("{'customer_id':'c','ts':1,'channel':'','kind':'contact'}", RP_BAD_REQUEST,
                 "channel");
    event_expect(EV(",'outcome':'maybe'"), RP_BAD_REQUEST,
                 "none, resolved, unresolved, transferred, abandoned");
    event_expect(EV(",'outcome':1"), RP_BAD_REQUEST, "'outcome' must be a string");
    event_expect("{'customer_id':'c','ts':-5,'channel':'chat','kind':'contact'}", RP_BAD_REQUEST,
                 "'ts' must not be negative");
    event_expect("{'customer_id':'c','ts':1.5,'channel':'chat','kind':'contact'}", RP_BAD_REQUEST,
                 "'ts' must be an integer");
    event_expect("{'customer_id':'c','ts':'now','channel':'chat','kind':'contact'}",
                 RP_BAD_REQUEST, "'ts' must be an integer");
    event_expect("{'customer_id':'c c','ts':1,'channel':'chat','kind':'contact'}",
                 RP_BAD_REQUEST, "customer_id");
    /* Sentiment: numbers in -1..1 of any msgpack kind. */
    event_expect(EV(",'sentiment':1"), RP_OK, NULL);
    event_expect(EV(",'sentiment':-1"), RP_OK, NULL);
    event_expect(EV(",'sentiment':0"), RP_OK, NULL);
    event_expect(EV(",'sentiment':F0.25"), RP_OK, NULL);
    event_expect(EV(",'sentiment':1.5"), RP_BAD_REQUEST, "between -1.0 and 1.0");
    event_expect(EV(",'sentiment':-1.01"), RP_BAD_REQUEST, "sentiment");
    event_expect(EV(",'sentiment':2"), RP_BAD_REQUEST, "sentiment");
    event_expect(EV(",'sentiment':-2"), RP_BAD_REQUEST, "sentiment");
    event_expect(EV(",'sentiment':'bad'"), RP_BAD_REQUEST, "'sentiment' must be a number");
    /* Tokens and summary. */
    event_expect(fmt(EV(",'topic':'%s'"), rep('t', RP_TOKEN_MAX)), RP_OK, NULL);
    event_expect(fmt(EV(",'topic':'%s'"), rep('t', RP_TOKEN_MAX + 1)), RP_TOO_LARGE, "topic");
    event_expect(fmt(EV(",'agent':'%s'"), rep('a', RP_TOKEN_MAX + 1)), RP_TOO_LARGE, "agent");
    event_expect(fmt("{'customer_id':'c','ts':1,'channel':'chat','kind':'%s'}",
                     rep('k', RP_TOKEN_MAX + 1)),
                 RP_TOO_LARGE, "kind");
    event_expect(fmt(EV(",'summary':'%s'"), rep('s', RP_SUMMARY_MAX)), RP_OK, NULL);
    event_expect(fmt(EV(",'summary':'%s'"), rep('s', RP_SUMMARY_MAX + 1)), RP_TOO_LARGE,
                 "summary is 1025 bytes; the limit is 1024");
    event_expect(EV(",'summary':'two\nlines'"), RP_BAD_REQUEST, "control");
    event_expect(EV(",'issue_id':''"), RP_BAD_REQUEST, "issue_id");
    event_expect(EV(",'issue_id':5"), RP_BAD_REQUEST, "issue_id");
    /* event_id: an id (1..64 printable ASCII, no space). */
    event_expect(EV(",'event_id':'crm-act-1'"), RP_OK, NULL);
    event_expect(fmt(EV(",'event_id':'%s'"), rep('x', RP_ID_MAX)), RP_OK, NULL);
    event_expect(fmt(EV(",'event_id':'%s'"), rep('x', RP_ID_MAX + 1)), RP_BAD_REQUEST, "event_id");
    event_expect(EV(",'event_id':''"), RP_BAD_REQUEST, "event_id");
    event_expect(EV(",'event_id':'a b'"), RP_BAD_REQUEST, "event_id");
    event_expect(EV(",'event_id':7"), RP_BAD_REQUEST, "'event_id' must be a string");
    event_expect(EV(",'event_id':'a','event_id':'b'"), RP_BAD_REQUEST, "given twice");
    /* seq: an exported event's (import); an unsigned 32-bit integer. */
    event_expect(EV(",'seq':1"), RP_OK, NULL);
    event_expect(EV(",'seq':-1"), RP_BAD_REQUEST, "seq");
    event_expect(EV(",'seq':4294967296"), RP_BAD_REQUEST, "seq");
    event_expect(EV(",'seq':'1'"), RP_BAD_REQUEST, "'seq' must be an integer");
    /* type is NDJSON's. */
    event_expect(EV(",'type':'event'"), RP_OK, NULL);
    event_expect("[1]", RP_BAD_REQUEST, "an event must be a map");
#undef EV
}

/* ---- issues ---------------------------------------------------------------- */

#define FULL_ISSUE                                                                               \
    "{'customer_id':'cust-0001','issue_id':'ISS-42','topic':'delivery','status':'open',"        \
    "'severity':'high','summary':'Parcel 1Z999 delayed twice','opened_at':1716900000,"          \
    "'updated_at':1717000100,'follow_up_due':1717081200,'contacts':2}"

static void test_issue_round_trip(void **state) {
    (void)state;
    rp_issue is, back, st;
    rp_errbuf eb = {0};
    assert_int_equal(rp_issue_decode(J(FULL_ISSUE), RP_DEC_WIRE, &is, &eb), RP_OK);
    assert_int_equal(is.severity, RP_SEV_HIGH);
    assert_int_equal(is.follow_up_due, 1717081200);
    assert_int_equal(is.contacts, 2);
    packed b;
    msgpack_packer pk;
    packed_init(&b, &pk);
    rp_issue_encode(&pk, &is, RP_ENC_WIRE);
    const msgpack_object *o = packed_obj(&b);
    assert_int_equal(o->via.map.size, 10);
    assert_int_equal(rp_issue_decode(o, RP_DEC_WIRE, &back, &eb), RP_OK);
    issue_equal(&is, &back, true);
    packed_free(&b);

    packed s;
    packed_init(&s, &pk);
    rp_issue_encode(&pk, &is, RP_ENC_STORED);
    o = packed_obj(&s);
    assert_int_equal(o->via.map.size, 8);
    assert_false(packed_has(&s, "customer_id", 11));
    assert_false(packed_has(&s, "issue_id", 8));
    assert_int_equal(rp_issue_decode(o, RP_DEC_STORED, &st, &eb), RP_OK);
    assert_int_equal(st.customer_id.n, 0);
    assert_int_equal(st.issue_id.n, 0);
    issue_equal(&is, &st, false);
    packed_free(&s);
}

static void test_issue_defaults_and_validation(void **state) {
    (void)state;
    rp_issue is;
    rp_errbuf eb = {0};
    assert_int_equal(rp_issue_decode(J("{'customer_id':'c','issue_id':'i','severity':nil}"),
                                     RP_DEC_WIRE, &is, &eb),
                     RP_OK);
    assert_int_equal(is.status, RP_ST_OPEN);
    assert_int_equal(is.severity, RP_SEV_NONE);
    assert_int_equal(is.contacts, 0);
    assert_int_equal(is.opened_at, 0);
    packed b;
    msgpack_packer pk;
    packed_init(&b, &pk);
    rp_issue_encode(&pk, &is, RP_ENC_WIRE);
    const msgpack_object *o = packed_obj(&b);
    /* customer_id, issue_id, status, opened_at, updated_at, contacts */
    assert_int_equal(o->via.map.size, 6);
    assert_null(rp_mp_get(o, "severity"));
    assert_null(rp_mp_get(o, "follow_up_due"));
    assert_non_null(rp_mp_get(o, "contacts"));
    packed_free(&b);

#define IS(extra) "{'customer_id':'c','issue_id':'i'" extra "}"
    issue_expect(IS(",'status':'pending','severity':'critical'"), RP_OK, NULL);
    /* Help-desk words are accepted (test_vocab.c has the whole table). */
    issue_expect(IS(",'status':'closed'"), RP_OK, NULL);
    issue_expect(IS(",'severity':'urgent'"), RP_OK, NULL);
    issue_expect(IS(",'status':'shut'"), RP_BAD_REQUEST,
                 "field 'status' must be open, pending or resolved, or a help-desk status");
    issue_expect(IS(",'severity':'dire'"), RP_BAD_REQUEST, "low, medium, high or critical");
    issue_expect(IS(",'severity':''"), RP_BAD_REQUEST, "severity");
    issue_expect(IS(",'contacts':4294967295"), RP_OK, NULL);
    issue_expect(IS(",'contacts':4294967296"), RP_BAD_REQUEST, "'contacts' is out of range");
    issue_expect(IS(",'contacts':-1"), RP_BAD_REQUEST, "contacts");
    issue_expect(IS(",'follow_up_due':'tomorrow'"), RP_BAD_REQUEST, "follow_up_due");
    issue_expect(IS(",'opened_at':-1"), RP_BAD_REQUEST, "opened_at");
    issue_expect(fmt(IS(",'summary':'%s'"), rep('s', RP_SUMMARY_MAX + 1)), RP_TOO_LARGE,
                 "summary");
    issue_expect(fmt(IS(",'topic':'%s'"), rep('t', RP_TOKEN_MAX + 1)), RP_TOO_LARGE, "topic");
    issue_expect(IS(",'contact':1"), RP_BAD_REQUEST, "unknown field 'contact'");
    issue_expect(IS(",'type':'issue'"), RP_OK, NULL);
    issue_expect("{'customer_id':'c'}", RP_BAD_REQUEST, "missing required field 'issue_id'");
    issue_expect("{'issue_id':'i'}", RP_BAD_REQUEST, "missing required field 'customer_id'");
    issue_expect(fmt("{'customer_id':'c','issue_id':'%s'}", rep('i', RP_ID_MAX + 1)),
                 RP_BAD_REQUEST, "issue_id must be 1 to 64 bytes");
#undef IS
}

/* ---- stored mode ---------------------------------------------------------- */

static void stored_expect_corrupt(const msgpack_object *o) {
    rp_customer c;
    rp_event e;
    rp_issue is;
    rp_errbuf eb = {0};
    assert_int_equal(rp_customer_decode(o, RP_DEC_STORED, NULL, NULL, &c, &eb), RP_INTERNAL);
    assert_non_null(strstr(eb.msg, "corrupt stored record"));
    assert_int_equal(rp_event_decode(o, RP_DEC_STORED, &e, &eb), RP_INTERNAL);
    assert_int_equal(rp_issue_decode(o, RP_DEC_STORED, &is, &eb), RP_INTERNAL);
}

static void test_stored_corrupt(void **state) {
    (void)state;
    rp_customer c;
    rp_event e;
    rp_issue is;
    rp_errbuf eb = {0};
    /* Not a map. */
    stored_expect_corrupt(NULL);
    stored_expect_corrupt(J("nil"));
    stored_expect_corrupt(J("true"));
    stored_expect_corrupt(J("[1,2]"));
    stored_expect_corrupt(J("'str'"));
    stored_expect_corrupt(J("-3"));
    /* Maps with wrong types for known fields. */
    const char *bad_customers[] = {
        "{'id':5}",
        "{'id':'c','name':5}",
        "{'id':'c','flags':'x'}",
        "{'id':'c','flags':[nil]}",
        "{'id':'c','preferences':[1]}",
        "{'id':'c','preferences':{'k':5}}",
        "{'id':'c','version':-1}",
        "{'id':'c','updated_at':1.5}",
        "{'id':'c','name':'a','name':'b'}",
        "{1:'c'}",
        "{'version':1}", /* truncated: the id is gone */
    };
    for (size_t i = 0; i < sizeof bad_customers / sizeof bad_customers[0]; i++) {
        rp_err rc = rp_customer_decode(J(bad_customers[i]), RP_DEC_STORED, NULL, NULL, &c, &eb);
        check(bad_customers[i], rc, &eb, RP_INTERNAL, "corrupt stored record: customer");
    }
    /* Counts and lengths beyond the limits are corrupt, not an overflow. */
    rp_err rc = rp_customer_decode(J(fmt("{'id':'c','phones':%s}", strlist(40, "+1"))),
                                   RP_DEC_STORED, NULL, NULL, &c, &eb);
    assert_int_equal(rc, RP_INTERNAL);
    rc = rp_customer_decode(J("{'id':'c','phones':['+123456789012345678']}"), RP_DEC_STORED, NULL,
                            NULL, &c, &eb);
    assert_int_equal(rc, RP_INTERNAL);
    rc = rp_customer_decode(J(fmt("{'id':'%s'}", rep('i', 65))), RP_DEC_STORED, NULL, NULL, &c,
                            &eb);
    assert_int_equal(rc, RP_INTERNAL);
    const char *bad_events[] = {
        "{'channel':'phone'}",
        "{'channel':'pigeon','kind':'contact'}",
        "{'channel':'phone','kind':'contact','sentiment':'x'}",
        "{'channel':'phone','kind':'contact','sentiment':7.0}",
        "{'channel':'phone','kind':5}",
    };
    for (size_t i = 0; i < sizeof bad_events / sizeof bad_events[0]; i++) {
        rc = rp_event_decode(J(bad_events[i]), RP_DEC_STORED, &e, &eb);
        check(bad_events[i], rc, &eb, RP_INTERNAL, "corrupt stored record: event");
    }
    rc = rp_issue_decode(J("{'status':'gone'}"), RP_DEC_STORED, &is, &eb);
    assert_int_equal(rc, RP_INTERNAL);
    rc = rp_issue_decode(J("{'contacts':'two'}"), RP_DEC_STORED, &is, &eb);
    assert_int_equal(rc, RP_INTERNAL);

    /* Unknown keys are skipped (forward compatibility); identities are taken as stored. */
    rc = rp_customer_decode(J("{'id':'c','future':[1,{'a':2}],'phones':['+14155551212']}"),
                            RP_DEC_STORED, NULL, NULL, &c, &eb);
    assert_int_equal(rc, RP_OK);
    assert_true(rp_str_eqc(c.phones[0], "+14155551212"));
    rc = rp_event_decode(J("{'channel':'phone','kind':'contact','seq':3,'x':nil}"), RP_DEC_STORED,
                         &e, &eb);
    assert_int_equal(rc, RP_OK);
    rc = rp_issue_decode(J("{}"), RP_DEC_STORED, &is, &eb);
    assert_int_equal(rc, RP_OK);
}

/* Objects no JSON client can send but msgpack can carry: binary, ext, a
 * non-negative value tagged NEGATIVE_INTEGER. */
static void test_odd_objects(void **state) {
    (void)state;
    rp_event e;
    rp_errbuf eb = {0};
    msgpack_object *o = (msgpack_object *)J("{'customer_id':'c','ts':0,'channel':'chat','kind':'k'}");
    msgpack_object *ts = &o->via.map.ptr[1].val;
    ts->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    ts->via.i64 = 42;
    assert_int_equal(rp_event_decode(o, RP_DEC_WIRE, &e, &eb), RP_OK);
    assert_int_equal(e.ts, 42);
    ts->type = MSGPACK_OBJECT_BIN;
    ts->via.bin.size = 1;
    ts->via.bin.ptr = "x";
    assert_int_equal(rp_event_decode(o, RP_DEC_WIRE, &e, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "(got binary)"));
    ts->type = MSGPACK_OBJECT_EXT;
    assert_int_equal(rp_event_decode(o, RP_DEC_STORED, &e, &eb), RP_INTERNAL);
    msgpack_object *kind = &o->via.map.ptr[3].val;
    ts->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    ts->via.u64 = 1;
    kind->type = MSGPACK_OBJECT_BIN;
    assert_int_equal(rp_event_decode(o, RP_DEC_WIRE, &e, &eb), RP_BAD_REQUEST);
    /* NaN sentiment is refused. */
    rp_event e2;
    msgpack_object *s = (msgpack_object *)J(
        "{'customer_id':'c','ts':0,'channel':'chat','kind':'k','sentiment':0.0}");
    s->via.map.ptr[4].val.via.f64 = NAN;
    assert_int_equal(rp_event_decode(s, RP_DEC_WIRE, &e2, &eb), RP_BAD_REQUEST);
}

/* Pseudo-random generator for the mutation test (deterministic). */
static uint32_t lcg(uint32_t *s) {
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

/* Big-endian unsigned of w bytes at p. */
static uint64_t be(const unsigned char *p, int w) {
    uint64_t v = 0;
    for (int i = 0; i < w; i++) v = v << 8 | p[i];
    return v;
}

/* Walk the msgpack object at b[0..n) without building it and say whether
 * every length it declares fits in the bytes that remain (each element
 * needs at least one byte). msgpack-c allocates a container's slots before
 * reading them, so the network layer does this before unpacking untrusted
 * bytes; the mutation test must do the same or a flipped length byte asks
 * msgpack-c for gigabytes. */
static bool mp_sane(const unsigned char *b, size_t n) {
    size_t i = 0;
    uint64_t pending = 1;
    while (pending > 0) {
        if (i >= n) return false;
        unsigned t = b[i++];
        uint64_t items = 0, skip = 0;
        int w = 0;
        pending--;
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
            /* fixint, nil, bool: the type byte is all */
        } else if (t >= 0x80 && t <= 0x8f) {
            items = 2u * (t & 0x0f);
        } else if (t >= 0x90 && t <= 0x9f) {
            items = t & 0x0f;
        } else if (t >= 0xa0 && t <= 0xbf) {
            skip = t & 0x1f;
        } else {
            switch (t) {
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xca: case 0xce: case 0xd2: skip = 4; break;
            case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break; /* fixext: type + data */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xc4: case 0xd9: w = 1; break;
            case 0xc5: case 0xda: w = 2; break;
            case 0xc6: case 0xdb: w = 4; break;
            case 0xc7: w = 1; skip = 1; break; /* ext: + type byte */
            case 0xc8: w = 2; skip = 1; break;
            case 0xc9: w = 4; skip = 1; break;
            case 0xdc: case 0xde: w = -2; break;
            case 0xdd: case 0xdf: w = -4; break;
            default: return false; /* 0xc1: never used */
            }
        }
        if (w != 0) { /* a length field follows */
            int lw = w < 0 ? -w : w;
            if (n - i < (size_t)lw) return false;
            uint64_t len = be(b + i, lw);
            i += (size_t)lw;
            if (w > 0) skip += len;
            else items = (t == 0xde || t == 0xdf) ? 2 * len : len;
        }
        if (skip > n - i || items > n - i) return false;
        i += (size_t)skip;
        pending += items;
    }
    return true;
}

/* Decode obj in every mode as every record type: the codes must be the
 * documented ones, whatever the bytes were. */
static void decode_all_ways(const msgpack_object *o) {
    rp_customer c;
    rp_event e;
    rp_issue is;
    rp_errbuf eb = {0};
    char abuf[512];
    rp_arena a = {abuf, sizeof abuf, 0};
    rp_err rc = rp_customer_decode(o, RP_DEC_STORED, NULL, NULL, &c, &eb);
    assert_true(rc == RP_OK || rc == RP_INTERNAL);
    if (rc == RP_OK) { /* whatever decoded re-encodes */
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        rp_customer_encode(&pk, &c, RP_ENC_STORED);
        msgpack_sbuffer_destroy(&sb);
    }
    rc = rp_customer_decode(o, RP_DEC_WIRE, "US", &a, &c, &eb);
    assert_true(rc == RP_OK || rc == RP_BAD_REQUEST || rc == RP_TOO_LARGE);
    rc = rp_customer_patch(&c, o, "GB", &a, &eb);
    assert_true(rc == RP_OK || rc == RP_BAD_REQUEST || rc == RP_TOO_LARGE);
    rc = rp_event_decode(o, RP_DEC_STORED, &e, &eb);
    assert_true(rc == RP_OK || rc == RP_INTERNAL);
    rc = rp_event_decode(o, RP_DEC_WIRE, &e, &eb);
    assert_true(rc == RP_OK || rc == RP_BAD_REQUEST || rc == RP_TOO_LARGE);
    rc = rp_issue_decode(o, RP_DEC_STORED, &is, &eb);
    assert_true(rc == RP_OK || rc == RP_INTERNAL);
    rc = rp_issue_decode(o, RP_DEC_WIRE, &is, &eb);
    assert_true(rc == RP_OK || rc == RP_BAD_REQUEST || rc == RP_TOO_LARGE);
}

static void test_truncated_and_mutated(void **state) {
    (void)state;
    rp_customer c;
    rp_event e;
    rp_errbuf eb = {0};
    assert_int_equal(rp_customer_decode(J(FULL_CUSTOMER), RP_DEC_WIRE, "US", &arena, &c, &eb),
                     RP_OK);
    assert_int_equal(rp_event_decode(J(FULL_EVENT), RP_DEC_WIRE, &e, &eb), RP_OK);
    packed b;
    msgpack_packer pk;
    packed_init(&b, &pk);
    rp_customer_encode(&pk, &c, RP_ENC_STORED);
    rp_event_encode(&pk, &e, RP_ENC_STORED);
    size_t n = b.sb.size;
    /* Every strict prefix of the customer's bytes fails to unpack as a whole
     * record, so a truncated value never reaches the decoder as one. */
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&b.up, b.sb.data, n, &off), MSGPACK_UNPACK_SUCCESS);
    size_t cust_len = off;
    for (size_t len = 0; len < cust_len; len++) {
        size_t o2 = 0;
        msgpack_unpack_return r = msgpack_unpack_next(&b.up, b.sb.data, len, &o2);
        assert_true(r != MSGPACK_UNPACK_SUCCESS);
    }
    /* Mutations: flip bytes, decode whatever still unpacks. */
    char *buf = malloc(n);
    assert_non_null(buf);
    uint32_t seed = 12345;
    int decoded = 0;
    for (int round = 0; round < 3000; round++) {
        memcpy(buf, b.sb.data, n);
        int flips = 1 + (int)(lcg(&seed) % 4);
        for (int k = 0; k < flips; k++) buf[lcg(&seed) % n] = (char)lcg(&seed);
        size_t start = (round & 1) ? cust_len : 0;
        size_t o3 = start;
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        if (mp_sane((const unsigned char *)buf + start, n - start) &&
            msgpack_unpack_next(&up, buf, n, &o3) == MSGPACK_UNPACK_SUCCESS) {
            decode_all_ways(&up.data);
            decoded++;
        }
        msgpack_unpacked_destroy(&up);
    }
    assert_true(decoded > 1000); /* most mutants still unpack: the decoders saw them */
    free(buf);
    packed_free(&b);
}

/* ---- request helpers ------------------------------------------------------- */

static void test_mp_helpers(void **state) {
    (void)state;
    rp_errbuf eb = {0};
    const msgpack_object *o = J("{'s':'str','i':-5,'u':7,'big':18446744073709551615,'f':1.5,"
                                "'n':nil,3:'numkey'}");
    assert_non_null(rp_mp_get(o, "s"));
    assert_null(rp_mp_get(o, "missing"));
    assert_null(rp_mp_get(J("['s']"), "s"));
    assert_null(rp_mp_get(NULL, "s"));
    rp_str s = RP_STR_LIT("untouched");
    assert_int_equal(rp_mp_str(o, "s", &s, &eb), RP_OK);
    assert_true(rp_str_eqc(s, "str"));
    s = RP_STR_LIT("untouched");
    assert_int_equal(rp_mp_str(o, "missing", &s, &eb), RP_NOT_FOUND);
    assert_int_equal(rp_mp_str(o, "n", &s, &eb), RP_NOT_FOUND);
    assert_true(rp_str_eqc(s, "untouched"));
    assert_int_equal(rp_mp_str(o, "i", &s, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "'i' must be a string"));
    int64_t v = 99;
    assert_int_equal(rp_mp_int(o, "i", &v, &eb), RP_OK);
    assert_int_equal(v, -5);
    assert_int_equal(rp_mp_int(o, "u", &v, &eb), RP_OK);
    assert_int_equal(v, 7);
    assert_int_equal(rp_mp_int(o, "big", &v, &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_mp_int(o, "f", &v, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "'f' must be an integer"));
    assert_int_equal(rp_mp_int(o, "s", &v, &eb), RP_BAD_REQUEST);
    v = 99;
    assert_int_equal(rp_mp_int(o, "missing", &v, &eb), RP_NOT_FOUND);
    assert_int_equal(v, 99);

    packed b;
    msgpack_packer pk;
    packed_init(&b, &pk);
    rp_mp_pack_str(&pk, RP_STR_LIT("ab"));
    rp_mp_pack_cstr(&pk, "");
    rp_mp_pack_str(&pk, (rp_str){NULL, 0});
    assert_int_equal(b.sb.size, 5);
    assert_memory_equal(b.sb.data, "\xa2" "ab\xa0\xa0", 5);
    packed_free(&b);
}

/* ---- golden vectors ------------------------------------------------------- */

/* Read proto/vectors/<name>: hex digits, whitespace ignored. Returns a
 * malloc'd buffer and its length. */
static unsigned char *read_hex(const char *name, size_t *len) {
    char path[512];
    snprintf(path, sizeof path, "%s/proto/vectors/%s", RP_SOURCE_DIR, name);
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s: %s", path, strerror(errno));
    unsigned char *out = malloc(65536);
    assert_non_null(out);
    size_t n = 0;
    int hi = -1, ch;
    while ((ch = fgetc(f)) != EOF) {
        if (isspace(ch)) continue;
        if (!isxdigit(ch)) fail_msg("%s: not hex: '%c'", path, ch);
        int v = isdigit(ch) ? ch - '0' : tolower(ch) - 'a' + 10;
        if (hi < 0) {
            hi = v;
        } else {
            assert_true(n < 65536);
            out[n++] = (unsigned char)(hi << 4 | v);
            hi = -1;
        }
    }
    fclose(f);
    assert_int_equal(hi, -1);
    *len = n;
    return out;
}

/* The example records of the proto/vectors JSON files, built field by field. */
static void example_customer(rp_customer *c) {
    memset(c, 0, sizeof *c);
    c->id = RP_STR_LIT("cust-0001");
    c->name = RP_STR_LIT("Mar\xc3\xad" "a Jos\xc3\xa9 N\xc3\xba\xc3\xb1" "ez");
    c->preferred_name = RP_STR_LIT("Majo");
    c->language = RP_STR_LIT("es-MX");
    c->timezone = RP_STR_LIT("America/Mexico_City");
    c->tier = RP_STR_LIT("gold");
    c->customer_since = 1262304000;
    c->flags[0] = RP_STR_LIT("vip");
    c->flags[1] = RP_STR_LIT("hearing_impaired");
    c->nflags = 2;
    c->prefs[0] = (rp_pref){RP_STR_LIT("channel"), RP_STR_LIT("phone")};
    c->prefs[1] = (rp_pref){RP_STR_LIT("contact_window"), RP_STR_LIT("09:00-12:00")};
    c->nprefs = 2;
    c->notes[0] = RP_STR_LIT("follows the local football club");
    c->nnotes = 1;
    c->phones[0] = RP_STR_LIT("+442079460958");
    c->phones[1] = RP_STR_LIT("+14155551212");
    c->nphones = 2;
    c->emails[0] = RP_STR_LIT("majo@example.com");
    c->nemails = 1;
    c->accounts[0] = RP_STR_LIT("ACME-778812");
    c->naccounts = 1;
    c->version = 3;
    c->updated_at = 1717000000;
}

static void example_event(rp_event *e) {
    memset(e, 0, sizeof *e);
    e->customer_id = RP_STR_LIT("cust-0001");
    e->ts = 1717000100;
    e->channel = RP_CH_PHONE;
    e->kind = RP_STR_LIT("contact");
    e->topic = RP_STR_LIT("delivery");
    e->summary = RP_STR_LIT("Parcel late again; asked for a callback");
    e->outcome = RP_OUT_UNRESOLVED;
    e->has_sentiment = true;
    e->sentiment = -0.5;
    e->agent = RP_STR_LIT("agent-17");
    e->issue_id = RP_STR_LIT("ISS-42");
}

static void example_issue(rp_issue *is) {
    memset(is, 0, sizeof *is);
    is->customer_id = RP_STR_LIT("cust-0001");
    is->issue_id = RP_STR_LIT("ISS-42");
    is->topic = RP_STR_LIT("delivery");
    is->status = RP_ST_OPEN;
    is->severity = RP_SEV_HIGH;
    is->summary = RP_STR_LIT("Parcel 1Z999 delayed twice");
    is->opened_at = 1716900000;
    is->updated_at = 1717000100;
    is->follow_up_due = 1717081200;
    is->contacts = 2;
}

/* Compare packed bytes with a vector file, byte by byte. */
static void bytes_match(const packed *b, const char *file, unsigned char **want, size_t *n) {
    *want = read_hex(file, n);
    if (*n != b->sb.size) fail_msg("%s: %zu bytes on file, encoder wrote %zu", file, *n, b->sb.size);
    for (size_t i = 0; i < *n; i++)
        if ((unsigned char)b->sb.data[i] != (*want)[i])
            fail_msg("%s: byte %zu is %02x on file, encoder wrote %02x", file, i, (*want)[i],
                     (unsigned char)b->sb.data[i]);
}

/* Unpack the vector bytes into up (which owns the result). */
static const msgpack_object *unpack_vec(msgpack_unpacked *up, const unsigned char *p, size_t n) {
    size_t off = 0;
    msgpack_unpacked_init(up);
    assert_int_equal(msgpack_unpack_next(up, (const char *)p, n, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, n);
    return &up->data;
}

static void test_golden_customer(void **state) {
    (void)state;
    rp_customer c, back;
    rp_errbuf eb = {0};
    example_customer(&c);
    packed b;
    msgpack_packer pk;
    packed_init(&b, &pk);
    rp_customer_encode(&pk, &c, RP_ENC_WIRE);
    unsigned char *want;
    size_t n;
    bytes_match(&b, "customer.hex", &want, &n);
    msgpack_unpacked up;
    const msgpack_object *o = unpack_vec(&up, want, n);
    assert_int_equal(rp_customer_decode(o, RP_DEC_WIRE, "US", &arena, &back, &eb), RP_OK);
    customer_equal(&c, &back);
    assert_int_equal(rp_customer_decode(o, RP_DEC_STORED, NULL, NULL, &back, &eb), RP_OK);
    customer_equal(&c, &back);
    msgpack_unpacked_destroy(&up);
    free(want);
    packed_free(&b);
}

static void test_golden_event(void **state) {
    (void)state;
    rp_event e, back;
    rp_errbuf eb = {0};
    example_event(&e);
    const char *files[2] = {"event.hex", "event.stored.hex"};
    for (unsigned enc = 0; enc < 2; enc++) {
        packed b;
        msgpack_packer pk;
        packed_init(&b, &pk);
        rp_event_encode(&pk, &e, enc ? RP_ENC_STORED : RP_ENC_WIRE);
        unsigned char *want;
        size_t n;
        bytes_match(&b, files[enc], &want, &n);
        msgpack_unpacked up;
        const msgpack_object *o = unpack_vec(&up, want, n);
        assert_int_equal(rp_event_decode(o, enc ? RP_DEC_STORED : RP_DEC_WIRE, &back, &eb), RP_OK);
        event_equal(&e, &back, enc == 0);
        msgpack_unpacked_destroy(&up);
        free(want);
        packed_free(&b);
    }
}

static void test_golden_issue(void **state) {
    (void)state;
    rp_issue is, back;
    rp_errbuf eb = {0};
    example_issue(&is);
    const char *files[2] = {"issue.hex", "issue.stored.hex"};
    for (unsigned enc = 0; enc < 2; enc++) {
        packed b;
        msgpack_packer pk;
        packed_init(&b, &pk);
        rp_issue_encode(&pk, &is, enc ? RP_ENC_STORED : RP_ENC_WIRE);
        unsigned char *want;
        size_t n;
        bytes_match(&b, files[enc], &want, &n);
        msgpack_unpacked up;
        const msgpack_object *o = unpack_vec(&up, want, n);
        assert_int_equal(rp_issue_decode(o, enc ? RP_DEC_STORED : RP_DEC_WIRE, &back, &eb), RP_OK);
        issue_equal(&is, &back, enc == 0);
        msgpack_unpacked_destroy(&up);
        free(want);
        packed_free(&b);
    }
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_customer_decode_full),
        T(test_customer_round_trip),
        T(test_customer_minimal_shape),
        T(test_customer_limits),
        T(test_customer_language_length),
        T(test_customer_types_and_fields),
        T(test_customer_arena),
        T(test_patch_semantics),
        T(test_patch_refusals),
        T(test_patch_pref_limit),
        T(test_event_round_trip),
        T(test_event_id_and_seq),
        T(test_event_minimal_and_defaults),
        T(test_event_validation),
        T(test_issue_round_trip),
        T(test_issue_defaults_and_validation),
        T(test_stored_corrupt),
        T(test_odd_objects),
        T(test_truncated_and_mutated),
        T(test_mp_helpers),
        T(test_golden_customer),
        T(test_golden_event),
        T(test_golden_issue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
