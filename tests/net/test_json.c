/* test_json.c — JSON <-> MessagePack: canonical round trips, exact bytes,
 * escaping, integer and float edges, parse errors with positions,
 * duplicate keys, limits, rollback, pretty printing, odd msgpack types, and
 * a randomized round-trip property. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "net/json.h"

static const rp_mpcheck_limits LIM = {4194304, 16, 10000, 65536, 0, false};

/* JSON -> msgpack -> JSON; returns the malloc'd result text (NULL on an
 * error, with the code in *code). */
static char *roundtrip(const char *in, unsigned flags, rp_err *code) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rp_errbuf eb = {0};
    char *out = NULL;
    *code = rp_json_to_msgpack(in, strlen(in), &LIM, &sb, &eb);
    if (*code == RP_OK) {
        rp_buf b;
        rp_buf_init(&b, 0);
        size_t used = 0;
        *code = rp_msgpack_bytes_to_json(sb.data, sb.size, &LIM, flags, &b, &used, &eb);
        if (*code == RP_OK) {
            assert_int_equal(used, sb.size);
            out = rp_buf_detach(&b, NULL);
        }
        rp_buf_free(&b);
    }
    msgpack_sbuffer_destroy(&sb);
    return out;
}

static void check_roundtrip(const char *in) {
    rp_err code;
    char *out = roundtrip(in, 0, &code);
    if (out == NULL) fail_msg("%s: %s", in, rp_err_code(code));
    if (strcmp(out, in) != 0) fail_msg("in:  %s\nout: %s", in, out);
    free(out);
}

static void test_canonical_roundtrips(void **state) {
    (void)state;
    static const char *docs[] = {
        "{}", "[]", "0", "-1", "null", "true", "false", "\"\"", "\"x\"",
        "1.5", "0.1", "1.0", "-0.0", "100.0", "1e+300", "-2.5e-10", "123456789.125",
        "0.3333333333333333", "0.30000000000000004", "4.94065645841247e-324", "1.7976931348623157e+308",
        "9223372036854775807", "-9223372036854775808", "4294967296", "-129",
        "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"",
        "\"a\\\"b\\\\c\\nd\\te\\rf\\bg\\fh\\u0001\\u001f\x7f\"",
        "\"\\u2028\\u2029\"",
        "{\"id\":\"c1\",\"name\":\"Zo\xc3\xab\",\"flags\":[\"vip\",\"hearing_impaired\"],"
        "\"preferences\":{\"channel\":\"phone\",\"tone\":\"warm\"},\"version\":3,"
        "\"sentiment\":-0.5,\"nested\":{\"a\":[1,[2,[3,{}]],[]]},\"t\":true,\"n\":null}",
        "{\"z\":1,\"a\":2,\"m\":3}", /* document order, not sorted */
        "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]", /* 16 levels: the limit */
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) check_roundtrip(docs[i]);
}

static void check_bytes(const char *json, const char *want, size_t wantlen) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(rp_json_to_msgpack(json, strlen(json), &LIM, &sb, NULL), RP_OK);
    assert_int_equal(sb.size, wantlen);
    assert_memory_equal(sb.data, want, wantlen);
    msgpack_sbuffer_destroy(&sb);
}

static void test_exact_bytes(void **state) {
    (void)state;
    check_bytes("{\"a\":1}", "\x81\xa1" "a\x01", 4);
    check_bytes("-1", "\xff", 1);
    check_bytes("300", "\xcd\x01\x2c", 3);
    check_bytes("-33", "\xd0\xdf", 2);
    check_bytes("1.5", "\xcb\x3f\xf8\0\0\0\0\0\0", 9);
    check_bytes("[true,false,null]", "\x93\xc3\xc2\xc0", 4);
    check_bytes("9223372036854775807", "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9);
    check_bytes("-9223372036854775808", "\xd3\x80\0\0\0\0\0\0\0", 9);
    /* whitespace and escapes disappear */
    check_bytes(" { \"k\" : \"\\u00e9\" } ", "\x81\xa1k\xa2\xc3\xa9", 6);
}

/* Write one msgpack object to JSON; returns the malloc'd text. */
static char *to_json(const msgpack_object *o, unsigned flags) {
    rp_buf b;
    rp_buf_init(&b, 0);
    rp_errbuf eb = {0};
    rp_err e = rp_msgpack_to_json(o, flags, &b, &eb);
    if (e != RP_OK) fail_msg("to_json: %s %s", rp_err_code(e), eb.msg);
    return rp_buf_detach(&b, NULL);
}

static msgpack_object str_obj(const char *p, size_t n) {
    msgpack_object o;
    o.type = MSGPACK_OBJECT_STR;
    o.via.str.ptr = p;
    o.via.str.size = (uint32_t)n;
    return o;
}

static void test_escaping(void **state) {
    (void)state;
    char in[40];
    for (int i = 0; i < 32; i++) in[i] = (char)i;
    memcpy(in + 32, "\"\\/\x7f", 4);
    msgpack_object o = str_obj(in, 36);
    char *s = to_json(&o, 0);
    assert_string_equal(s,
        "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r"
        "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018"
        "\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\\"\\\\/\x7f\"");
    /* jansson reads it back to the same bytes */
    json_error_t je;
    json_t *j = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    assert_non_null(j);
    assert_int_equal(json_string_length(j), 36);
    assert_memory_equal(json_string_value(j), in, 36);
    json_decref(j);
    free(s);
    /* U+2028/2029 escaped, other multibyte passes */
    o = str_obj("a\xe2\x80\xa8" "b\xe2\x80\xa9" "c\xe2\x80\xaa\xc3\xa9", 14);
    s = to_json(&o, 0);
    assert_string_equal(s, "\"a\\u2028b\\u2029c\xe2\x80\xaa\xc3\xa9\"");
    free(s);
    /* invalid UTF-8 (an object that skipped mpcheck) becomes U+FFFD */
    o = str_obj("x\xff" "y\xc3", 4);
    s = to_json(&o, 0);
    assert_string_equal(s, "\"x\xef\xbf\xbdy\xef\xbf\xbd\"");
    free(s);
    o = str_obj("\xed\xa0\x80", 3); /* a surrogate: three bad bytes */
    s = to_json(&o, 0);
    assert_string_equal(s, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    free(s);
    o = str_obj(NULL, 0);
    s = to_json(&o, 0);
    assert_string_equal(s, "\"\"");
    free(s);
}

static void test_integers(void **state) {
    (void)state;
    msgpack_object o;
    o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o.via.u64 = UINT64_MAX;
    char *s = to_json(&o, 0);
    assert_string_equal(s, "18446744073709551615");
    free(s);
    o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    o.via.i64 = INT64_MIN;
    s = to_json(&o, 0);
    assert_string_equal(s, "-9223372036854775808");
    free(s);
    o.via.i64 = -1;
    s = to_json(&o, 0);
    assert_string_equal(s, "-1");
    free(s);
    o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o.via.u64 = 0;
    s = to_json(&o, 0);
    assert_string_equal(s, "0");
    free(s);
    /* uint64 max from the wire */
    rp_buf b;
    rp_buf_init(&b, 0);
    assert_int_equal(rp_msgpack_bytes_to_json("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9, &LIM, 0,
                                              &b, NULL, NULL), RP_OK);
    assert_string_equal(b.p, "18446744073709551615");
    rp_buf_free(&b);
    /* jansson reads integers as int64: larger is a clear BAD_REQUEST */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rp_errbuf eb = {0};
    const char *big = "18446744073709551615";
    assert_int_equal(rp_json_to_msgpack(big, strlen(big), &LIM, &sb, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "line 1"));
    assert_non_null(strstr(eb.msg, "integer"));
    assert_int_equal(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

static char *float_json(double v, bool single) {
    msgpack_object o;
    o.type = single ? MSGPACK_OBJECT_FLOAT32 : MSGPACK_OBJECT_FLOAT64;
    o.via.f64 = single ? (double)(float)v : v;
    return to_json(&o, 0);
}

static void test_floats(void **state) {
    (void)state;
    static const struct { double v; bool single; const char *want; } cases[] = {
        {0.1, false, "0.1"},
        {1.0 / 3.0, false, "0.3333333333333333"},   /* 16 digits suffice */
        {0.1 + 0.2, false, "0.30000000000000004"},
        {100.0, false, "100.0"},
        {-0.0, false, "-0.0"},
        {1e21, false, "1e+21"},
        {-0.3, false, "-0.3"},
        {0.1, true, "0.1"},
        {1.0 / 3.0, true, "0.33333334"},
        {16777216.0, true, "16777216.0"},
        {NAN, false, "null"},
        {INFINITY, false, "null"},
        {-INFINITY, true, "null"},
        {5e-324, false, "4.94065645841247e-324"}, /* %.15g already reads back */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = float_json(cases[i].v, cases[i].single);
        if (strcmp(s, cases[i].want) != 0) fail_msg("case %zu: %s, want %s", i, s, cases[i].want);
        /* and every finite one reads back exactly */
        if (isfinite(cases[i].v)) {
            double back = strtod(s, NULL);
            if (cases[i].single) assert_true((float)back == (float)cases[i].v);
            else assert_true(back == cases[i].v);
        }
        free(s);
    }
    /* decimals like scores and sentiments (the writer's fast path) print
     * exactly as the documented %.15g..%.17g rule says */
    uint64_t y = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 200000; i++) {
        y ^= y << 13; y ^= y >> 7; y ^= y << 17;
        static const double scale[] = {1, 10, 100, 1000, 1e4, 1e5, 1e6, 1e7, 3, 7};
        double v = (double)(int64_t)(y % 2000000001ull - 1000000000ull) /
                   scale[(y >> 40) % 10] / ((y >> 50) % 4 == 0 ? 3.0 : 1.0);
        char want[48];
        int n = 0;
        for (int prec = 15; prec <= 17; prec++) {
            n = snprintf(want, 40, "%.*g", prec, v);
            if (strtod(want, NULL) == v) break;
        }
        if (!strpbrk(want, ".e")) memcpy(want + n, ".0", 3);
        char *s = float_json(v, false);
        if (strcmp(s, want) != 0) fail_msg("%.17g: %s, want %s", v, s, want);
        free(s);
    }
    static const double edges[] = {1e-4, -1e-4, 9.9999e-5, 999999999.999999, 1e9, 0.5, -1.0,
                                   123456.000001, 0.000123};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        char want[48];
        int n = snprintf(want, 40, "%.15g", edges[i]);
        if (!strpbrk(want, ".e")) memcpy(want + n, ".0", 3);
        char *s = float_json(edges[i], false);
        assert_string_equal(s, want);
        free(s);
    }
    /* many random doubles read back exactly */
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof v);
        if (!isfinite(v)) continue;
        char *s = float_json(v, false);
        assert_true(strtod(s, NULL) == v);
        assert_true(strlen(s) <= 26);
        free(s);
    }
}

static void check_error(const char *json, rp_err want, const char *msg_part) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, "keep", 4); /* earlier contents survive a failure */
    rp_errbuf eb = {0};
    rp_err e = rp_json_to_msgpack(json, strlen(json), &LIM, &sb, &eb);
    if (e != want) fail_msg("%.60s: %s (%s), want %s", json, rp_err_code(e), eb.msg,
                            rp_err_code(want));
    if (msg_part != NULL && strstr(eb.msg, msg_part) == NULL)
        fail_msg("%.60s: message \"%s\" lacks \"%s\"", json, eb.msg, msg_part);
    assert_int_equal(sb.size, 4);
    assert_memory_equal(sb.data, "keep", 4);
    msgpack_sbuffer_destroy(&sb);
}

static void test_bad_json(void **state) {
    (void)state;
    check_error("{\"a\":1,\n \"b\": }", RP_BAD_REQUEST, "line 2, column 7");
    check_error("", RP_BAD_REQUEST, "line 1");
    check_error("{\"a\":1} x", RP_BAD_REQUEST, "end of file expected");
    check_error("[1,2", RP_BAD_REQUEST, "line 1");
    check_error("{a:1}", RP_BAD_REQUEST, NULL);
    check_error("[1,]", RP_BAD_REQUEST, NULL);
    check_error("\"\\ud800\"", RP_BAD_REQUEST, NULL);      /* lone surrogate */
    check_error("\"\xff\"", RP_BAD_REQUEST, NULL);          /* invalid UTF-8 */
    check_error("NaN", RP_BAD_REQUEST, NULL);
    check_error("1e400", RP_BAD_REQUEST, NULL);
    check_error("{\"a\":1,\"a\":2}", RP_BAD_REQUEST, "duplicate");
    check_error("{\"x\":{\"a\":1,\"b\":2,\"a\":3}}", RP_BAD_REQUEST, "duplicate");
    check_error("\"a\\u0000b\"", RP_BAD_REQUEST, NULL);    /* NUL in a string */
    check_error("{\"a\\u0000\":1}", RP_BAD_REQUEST, NULL); /* NUL in a key */
}

static char *nest(int depth) {
    char *p = malloc((size_t)depth * 2 + 2);
    assert_non_null(p);
    memset(p, '[', (size_t)depth);
    p[depth] = '1';
    memset(p + depth + 1, ']', (size_t)depth);
    p[2 * depth + 1] = '\0';
    return p;
}

static void test_limits(void **state) {
    (void)state;
    /* depth: 16 is fine (see the round trips), 17 is not, nor 3000 (jansson's own limit) */
    char *p = nest(17);
    check_error(p, RP_TOO_LARGE, "deeper than 16");
    free(p);
    p = nest(3000);
    check_error(p, RP_TOO_LARGE, NULL);
    free(p);
    check_error("[[[[[[[[[[[[[[[[{}]]]]]]]]]]]]]]]]", RP_TOO_LARGE, NULL); /* {} is a level */
    {   /* a limit past the walk's inline stack */
        rp_mpcheck_limits deep = LIM;
        deep.max_depth = 200;
        msgpack_sbuffer d;
        msgpack_sbuffer_init(&d);
        p = nest(200);
        assert_int_equal(rp_json_to_msgpack(p, strlen(p), &deep, &d, NULL), RP_OK);
        assert_int_equal(d.size, 201);
        free(p);
        p = nest(201);
        assert_int_equal(rp_json_to_msgpack(p, strlen(p), &deep, &d, NULL), RP_TOO_LARGE);
        assert_int_equal(d.size, 201);
        free(p);
        msgpack_sbuffer_destroy(&d);
    }

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rp_errbuf eb = {0};
    rp_mpcheck_limits l = LIM;
    l.max_string = 3;
    assert_int_equal(rp_json_to_msgpack("\"abc\"", 5, &l, &sb, &eb), RP_OK);
    assert_int_equal(rp_json_to_msgpack("\"abcd\"", 6, &l, &sb, &eb), RP_TOO_LARGE);
    assert_int_equal(rp_json_to_msgpack("{\"abcd\":1}", 10, &l, &sb, &eb), RP_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "key"));
    l = LIM;
    l.max_container = 2;
    assert_int_equal(rp_json_to_msgpack("[1,2]", 5, &l, &sb, &eb), RP_OK);
    assert_int_equal(rp_json_to_msgpack("[1,2,3]", 7, &l, &sb, &eb), RP_TOO_LARGE);
    assert_int_equal(rp_json_to_msgpack("{\"a\":1,\"b\":2,\"c\":3}", 19, &l, &sb, &eb),
                     RP_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "3 members"));
    /* max_bytes bounds the text ... */
    l = LIM;
    l.max_bytes = 8;
    assert_int_equal(rp_json_to_msgpack("[1,2,3,4]", 9, &l, &sb, &eb), RP_TOO_LARGE);
    /* ... and the MessagePack, which can be larger than the text */
    size_t before = sb.size;
    assert_int_equal(rp_json_to_msgpack("[1.5]", 5, &l, &sb, &eb), RP_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "MessagePack"));
    assert_int_equal(sb.size, before);
    /* ... and max_zone, through the final rp_mpcheck */
    l = LIM;
    l.max_zone = 3 * sizeof(msgpack_object) + RP_MPCHECK_ZONE_PAD; /* [1,2,3] exactly */
    assert_int_equal(rp_json_to_msgpack("[1,2,3]", 7, &l, &sb, &eb), RP_OK);
    assert_int_equal(rp_json_to_msgpack("[1,2,3,4,5]", 11, &l, &sb, &eb), RP_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "memory"));
    msgpack_sbuffer_destroy(&sb);
}

static void test_output_limit(void **state) {
    (void)state;
    const char *doc = "{\"name\":\"a fairly long customer name\",\"n\":[1,2,3]}";
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(rp_json_to_msgpack(doc, strlen(doc), &LIM, &sb, NULL), RP_OK);
    size_t n = strlen(doc);
    rp_buf b;
    rp_buf_init(&b, n + 3);
    rp_buf_puts(&b, "ok:");
    /* exactly fits */
    assert_int_equal(rp_msgpack_bytes_to_json(sb.data, sb.size, &LIM, 0, &b, NULL, NULL), RP_OK);
    assert_int_equal(b.len, n + 3);
    assert_string_equal(b.p + 3, doc);
    /* one byte short: TOO_LARGE, earlier contents kept, error cleared */
    b.max = n + 2;
    rp_buf_truncate(&b, 3);
    rp_errbuf eb = {0};
    assert_int_equal(rp_msgpack_bytes_to_json(sb.data, sb.size, &LIM, 0, &b, NULL, &eb),
                     RP_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "limit"));
    assert_int_equal(b.len, 3);
    assert_string_equal(b.p, "ok:");
    assert_int_equal(b.err, RP_OK);
    /* a buffer already failed refuses at once */
    b.err = RP_TOO_LARGE;
    assert_int_equal(rp_msgpack_bytes_to_json(sb.data, sb.size, &LIM, 0, &b, NULL, NULL),
                     RP_TOO_LARGE);
    assert_int_equal(b.len, 3);
    rp_buf_free(&b);
    msgpack_sbuffer_destroy(&sb);
}

static void test_pretty(void **state) {
    (void)state;
    rp_err code;
    char *s = roundtrip("{\"a\":1,\"b\":[true,{}],\"c\":{\"d\":[]},\"e\":[[2]]}", RP_JSON_PRETTY,
                        &code);
    assert_non_null(s);
    assert_string_equal(s,
                        "{\n"
                        "  \"a\": 1,\n"
                        "  \"b\": [\n"
                        "    true,\n"
                        "    {}\n"
                        "  ],\n"
                        "  \"c\": {\n"
                        "    \"d\": []\n"
                        "  },\n"
                        "  \"e\": [\n"
                        "    [\n"
                        "      2\n"
                        "    ]\n"
                        "  ]\n"
                        "}");
    free(s);
    s = roundtrip("7", RP_JSON_PRETTY, &code);
    assert_string_equal(s, "7");
    free(s);
}

static void test_odd_msgpack(void **state) {
    (void)state;
    /* non-string keys are stringified; bin is hex */
    msgpack_object_kv kv[6];
    kv[0].key.type = MSGPACK_OBJECT_POSITIVE_INTEGER; kv[0].key.via.u64 = 12;
    kv[1].key.type = MSGPACK_OBJECT_NEGATIVE_INTEGER; kv[1].key.via.i64 = -3;
    kv[2].key.type = MSGPACK_OBJECT_BOOLEAN; kv[2].key.via.boolean = true;
    kv[3].key.type = MSGPACK_OBJECT_NIL;
    kv[4].key.type = MSGPACK_OBJECT_FLOAT64; kv[4].key.via.f64 = 2.5;
    kv[5].key.type = MSGPACK_OBJECT_BIN; kv[5].key.via.bin.ptr = "\x01\xab"; kv[5].key.via.bin.size = 2;
    for (int i = 0; i < 6; i++) {
        kv[i].val.type = MSGPACK_OBJECT_BIN;
        kv[i].val.via.bin.ptr = "\x00\xff";
        kv[i].val.via.bin.size = (uint32_t)(i % 3);
    }
    msgpack_object m;
    m.type = MSGPACK_OBJECT_MAP;
    m.via.map.size = 6;
    m.via.map.ptr = kv;
    char *s = to_json(&m, 0);
    assert_string_equal(s, "{\"12\":\"\",\"-3\":\"00\",\"true\":\"00ff\",\"null\":\"\","
                           "\"2.5\":\"00\",\"01ab\":\"00ff\"}");
    free(s);
    /* ext values and container keys are refused, and nothing is left behind */
    rp_buf b;
    rp_buf_init(&b, 0);
    rp_buf_puts(&b, "prefix");
    rp_errbuf eb = {0};
    msgpack_object arr[2];
    arr[0].type = MSGPACK_OBJECT_NIL;
    arr[1].type = MSGPACK_OBJECT_EXT;
    arr[1].via.ext.type = 5;
    arr[1].via.ext.ptr = "x";
    arr[1].via.ext.size = 1;
    msgpack_object a;
    a.type = MSGPACK_OBJECT_ARRAY;
    a.via.array.size = 2;
    a.via.array.ptr = arr;
    assert_int_equal(rp_msgpack_to_json(&a, 0, &b, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "ext"));
    assert_string_equal(b.p, "prefix");
    kv[0].key = a;
    assert_int_equal(rp_msgpack_to_json(&m, 0, &b, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "key"));
    assert_string_equal(b.p, "prefix");
    rp_buf_free(&b);
}

static void test_deep_object(void **state) {
    (void)state;
    /* a hand-built object deeper than the writer's stack */
    size_t n = RP_JSON_DEPTH_MAX + 1;
    msgpack_object *chain = calloc(n + 1, sizeof *chain);
    assert_non_null(chain);
    for (size_t i = 0; i < n; i++) {
        chain[i].type = MSGPACK_OBJECT_ARRAY;
        chain[i].via.array.size = 1;
        chain[i].via.array.ptr = &chain[i + 1];
    }
    chain[n].type = MSGPACK_OBJECT_NIL;
    rp_buf b;
    rp_buf_init(&b, 0);
    rp_errbuf eb = {0};
    assert_int_equal(rp_msgpack_to_json(&chain[0], 0, &b, &eb), RP_TOO_LARGE);
    assert_int_equal(b.len, 0);
    /* exactly the limit is fine */
    assert_int_equal(rp_msgpack_to_json(&chain[1], 0, &b, &eb), RP_OK);
    assert_int_equal(b.len, 2 * (n - 1) + 4);
    rp_buf_free(&b);
    free(chain);
}

static void test_bytes_errors(void **state) {
    (void)state;
    rp_buf b;
    rp_buf_init(&b, 0);
    rp_errbuf eb = {0};
    size_t used = 0;
    assert_int_equal(rp_msgpack_bytes_to_json("\x92\x01", 2, &LIM, 0, &b, &used, &eb),
                     RP_BAD_REQUEST); /* truncated */
    assert_non_null(strstr(eb.msg, "arrived"));
    assert_int_equal(rp_msgpack_bytes_to_json("\xc1", 1, &LIM, 0, &b, NULL, &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_msgpack_bytes_to_json("\xdd\xff\xff\xff\xff", 5, &LIM, 0, &b, NULL, &eb),
                     RP_TOO_LARGE);
    assert_int_equal(b.len, 0);
    /* two objects: the first is converted, obj_len says where the next starts */
    assert_int_equal(rp_msgpack_bytes_to_json("\x92\x01\x02\xc3", 4, &LIM, 0, &b, &used, &eb),
                     RP_OK);
    assert_int_equal(used, 3);
    assert_string_equal(b.p, "[1,2]");
    rp_buf_free(&b);
}

/* xorshift64 with a fixed seed, so a failure reproduces. */
static uint64_t rs = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

/* Append a random JSON value (depth-limited) to b, in canonical form:
 * strings mixing ASCII, controls, quotes, multibyte and U+2028. */
static void gen(rp_buf *b, int depth) {
    static const char *pieces[] = {"a", "Z", " ", "\\\"", "\\\\", "\\n", "\\u0001", "\\u001f",
                                   "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\\u2028",
                                   "/", "\\t"};
    unsigned kind = (unsigned)(rnd() % (depth < 5 ? 8 : 5));
    switch (kind) {
    case 0: rp_buf_puts(b, rnd() % 2 ? "true" : "null"); break;
    case 1: rp_buf_printf(b, "%lld", (long long)(int64_t)rnd() >> (rnd() % 64)); break;
    case 2: {
        char t[40];
        double v = (double)(int64_t)rnd() / (double)(1 + rnd() % 100000);
        msgpack_object o;
        o.type = MSGPACK_OBJECT_FLOAT64;
        o.via.f64 = v;
        rp_buf f;
        rp_buf_init(&f, 0);
        assert_int_equal(rp_msgpack_to_json(&o, 0, &f, NULL), RP_OK);
        snprintf(t, sizeof t, "%s", f.p);
        rp_buf_free(&f);
        rp_buf_puts(b, t);
        break;
    }
    case 3:
    case 4: {
        rp_buf_putc(b, '"');
        int n = (int)(rnd() % 6);
        for (int i = 0; i < n; i++) rp_buf_puts(b, pieces[rnd() % 14]);
        rp_buf_putc(b, '"');
        break;
    }
    case 5:
    case 6: {
        rp_buf_putc(b, '[');
        int n = (int)(rnd() % 4);
        for (int i = 0; i < n; i++) {
            if (i) rp_buf_putc(b, ',');
            gen(b, depth + 1);
        }
        rp_buf_putc(b, ']');
        break;
    }
    default: {
        rp_buf_putc(b, '{');
        int n = (int)(rnd() % 4);
        for (int i = 0; i < n; i++) {
            if (i) rp_buf_putc(b, ',');
            rp_buf_printf(b, "\"k%d%s\":", i, pieces[rnd() % 14]); /* unique keys */
            gen(b, depth + 1);
        }
        rp_buf_putc(b, '}');
    }
    }
}

static void test_random_roundtrips(void **state) {
    (void)state;
    for (int i = 0; i < 3000; i++) {
        rp_buf b;
        rp_buf_init(&b, 0);
        gen(&b, 0);
        assert_int_equal(b.err, RP_OK);
        check_roundtrip(b.p);
        /* pretty output is valid JSON that jansson reads to the same value */
        rp_err code;
        char *pretty = roundtrip(b.p, RP_JSON_PRETTY, &code);
        assert_non_null(pretty);
        json_error_t je;
        json_t *x = json_loads(b.p, JSON_DECODE_ANY, &je), *y = json_loads(pretty, JSON_DECODE_ANY, &je);
        assert_non_null(x);
        assert_non_null(y);
        assert_true(json_equal(x, y));
        json_decref(x);
        json_decref(y);
        free(pretty);
        rp_buf_free(&b);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_roundtrips),
        cmocka_unit_test(test_exact_bytes),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_pretty),
        cmocka_unit_test(test_odd_msgpack),
        cmocka_unit_test(test_deep_object),
        cmocka_unit_test(test_bytes_errors),
        cmocka_unit_test(test_random_roundtrips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
