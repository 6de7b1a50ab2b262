/* test_cursor.c — the "TS.SEQ" text of history cursors (api/cursor.h):
 * parsing, the range limits, formatting and the round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "api/cursor.h"

#define S(x) rp_str_c(x)

static void test_cursor_text(void **state) {
    (void)state;
    rp_errbuf eb = {0};
    rp_cursor c;
    assert_int_equal(rp_cursor_parse(S("1732350000.0"), &c, &eb), RP_OK);
    assert_int_equal(c.ts, 1732350000);
    assert_int_equal(c.seq, 0);
    assert_int_equal(rp_cursor_parse(S("9223372036854775807.4294967295"), &c, &eb), RP_OK);
    assert_int_equal(c.ts, INT64_MAX);
    assert_int_equal(c.seq, UINT32_MAX);
    char out[32];
    rp_cursor_format(&c, out);
    assert_string_equal(out, "9223372036854775807.4294967295");
    const char *bad[] = {"", ".", "1.", ".1", "a.1", "1.a", "1.2.3", "-1.0", "+1.0", "1 .0",
                         "1.0 ", "9223372036854775808.0", "1.4294967296", "99999999999999999999.1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&eb, 0, sizeof eb);
        assert_int_equal(rp_cursor_parse(S(bad[i]), &c, &eb), RP_BAD_REQUEST);
        assert_true(eb.msg[0] != '\0');
    }
}

/* A history page's `next` goes out as text and comes back as `before`
 * (was part of test_store.c test_history_paging). */
static void test_cursor_round_trip(void **state) {
    (void)state;
    rp_errbuf eb = {0};
    const rp_cursor cases[] = {{1732350005, 0}, {1732350003, 3}, {0, 0}, {INT64_MAX, UINT32_MAX}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[RP_CURSOR_TEXT_MAX];
        rp_cursor_format(&cases[i], text);
        rp_cursor back;
        assert_int_equal(rp_cursor_parse(S(text), &back, &eb), RP_OK);
        assert_int_equal(back.ts, cases[i].ts);
        assert_int_equal(back.seq, cases[i].seq);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_text),
        cmocka_unit_test(test_cursor_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
