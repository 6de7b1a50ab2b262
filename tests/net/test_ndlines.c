/* test_ndlines.c — the NDJSON line splitter shared by HTTP import and the
 * CLI: line ends, CRLF, blank lines, line numbers, a last line without a
 * newline, one-line-at-a-time use (the CLI's getline), a leading BOM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "net/ndlines.h"

/* Next line must be `want` with number no. */
static void next_is(rp_ndlines *r, const char *want, uint64_t no) {
    rp_ndline ln;
    assert_true(rp_ndlines_next(r, &ln));
    assert_int_equal(ln.len, strlen(want));
    assert_memory_equal(ln.p, want, ln.len);
    assert_int_equal(ln.no, no);
}

static void test_lines(void **state) {
    (void)state;
    const char *s = "{\"a\":1}\n{\"b\":2}\r\n\n  \t\r\n\r\r\n{\"c\":3}";
    rp_ndlines r;
    rp_ndlines_init(&r, s, strlen(s), 0);
    next_is(&r, "{\"a\":1}", 1);
    next_is(&r, "{\"b\":2}", 2); /* CRLF: the \r goes with the \n */
    next_is(&r, "{\"c\":3}", 6); /* lines 3-5 blank but counted; no final \n */
    rp_ndline ln;
    assert_false(rp_ndlines_next(&r, &ln));
    assert_false(rp_ndlines_next(&r, &ln));
    assert_int_equal(r.no, 6);
}

static void test_edges(void **state) {
    (void)state;
    rp_ndlines r;
    rp_ndline ln;
    rp_ndlines_init(&r, NULL, 0, 0);
    assert_false(rp_ndlines_next(&r, &ln));
    rp_ndlines_init(&r, "\n\n \n", 4, 0);
    assert_false(rp_ndlines_next(&r, &ln));
    assert_int_equal(r.no, 3);
    /* only one \r is dropped; inner \r and other spaces are kept */
    rp_ndlines_init(&r, " x\r\r\n", 5, 0);
    next_is(&r, " x\r", 1);
    /* a lone \r at the very end (CR without LF) */
    rp_ndlines_init(&r, "x\r", 2, 0);
    next_is(&r, "x", 1);
    /* a NUL byte is part of the line (the JSON parser refuses it) */
    rp_ndlines_init(&r, "a\0b\n", 4, 0);
    rp_ndlines_next(&r, &ln);
    assert_int_equal(ln.len, 3);
    /* vertical tab and form feed are not blank */
    rp_ndlines_init(&r, "\v\n\f", 3, 0);
    next_is(&r, "\v", 1);
    next_is(&r, "\f", 2);
}

static void test_one_line_at_a_time(void **state) {
    (void)state;
    const char *lines[] = {"{}\n", "\r\n", "{\"x\":1}\r\n", "  \n", "{}"};
    uint64_t no = 0, got[5], n = 0;
    for (size_t i = 0; i < 5; i++) {
        rp_ndlines r;
        rp_ndline ln;
        rp_ndlines_init(&r, lines[i], strlen(lines[i]), no);
        if (rp_ndlines_next(&r, &ln)) got[n++] = ln.no;
        no = r.no;
    }
    assert_int_equal(n, 3);
    assert_int_equal(got[0], 1);
    assert_int_equal(got[1], 3);
    assert_int_equal(got[2], 5);
}

static void test_blank(void **state) {
    (void)state;
    assert_true(rp_ndlines_blank("", 0));
    assert_true(rp_ndlines_blank(" \t\r", 3));
    assert_false(rp_ndlines_blank(" x ", 3));
    assert_false(rp_ndlines_blank("\n", 1)); /* a line never holds its \n */
}

/* A UTF-8 BOM opening the input is dropped, for a whole buffer (HTTP) and
 * for a first line fed alone (the CLI); anywhere else it stays. */
static void test_bom(void **state) {
    (void)state;
    rp_ndlines r;
    rp_ndline ln;
    const char *s = "\xEF\xBB\xBF{\"a\":1}\r\n{\"b\":2}\n";
    rp_ndlines_init(&r, s, strlen(s), 0);
    next_is(&r, "{\"a\":1}", 1);
    next_is(&r, "{\"b\":2}", 2);
    assert_false(rp_ndlines_next(&r, &ln));
    /* one line at a time: only the input's first line (first_no 0) */
    rp_ndlines_init(&r, "\xEF\xBB\xBF{}\n", 6, 0);
    next_is(&r, "{}", 1);
    rp_ndlines_init(&r, "\xEF\xBB\xBF{}\n", 6, 1);
    next_is(&r, "\xEF\xBB\xBF{}", 2);
    /* a BOM alone, or before a blank line, leaves nothing */
    rp_ndlines_init(&r, "\xEF\xBB\xBF", 3, 0);
    assert_false(rp_ndlines_next(&r, &ln));
    rp_ndlines_init(&r, "\xEF\xBB\xBF \r\n{}", 8, 0);
    next_is(&r, "{}", 2);
    /* only one BOM, and only a whole one */
    rp_ndlines_init(&r, "\xEF\xBB\xBF\xEF\xBB\xBF{}", 8, 0);
    next_is(&r, "\xEF\xBB\xBF{}", 1);
    rp_ndlines_init(&r, "\xEF\xBB{}", 4, 0);
    next_is(&r, "\xEF\xBB{}", 1);
    /* not in the middle of the input */
    rp_ndlines_init(&r, "{}\n\xEF\xBB\xBF{}", 8, 0);
    next_is(&r, "{}", 1);
    next_is(&r, "\xEF\xBB\xBF{}", 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_one_line_at_a_time),
        cmocka_unit_test(test_blank),
        cmocka_unit_test(test_bom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
