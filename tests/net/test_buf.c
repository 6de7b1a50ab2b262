/* test_buf.c — the growable buffer: growth, the size limit, the sticky
 * error, rollback, printf, detach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "net/buf.h"

/* Under AddressSanitizer (RAPPORT_SANITIZE), let a huge malloc return NULL
 * as it does in production instead of aborting: test_out_of_memory needs it. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

static void test_grow(void **state) {
    (void)state;
    rp_buf b;
    rp_buf_init(&b, 0);
    assert_null(b.p);
    assert_int_equal(rp_buf_append(&b, NULL, 0), RP_OK);
    assert_int_equal(b.len, 0);
    for (int i = 0; i < 10000; i++) assert_int_equal(rp_buf_putc(&b, (char)('a' + i % 26)), RP_OK);
    assert_int_equal(b.len, 10000);
    assert_true(b.cap > b.len);
    assert_int_equal(b.p[10000], '\0');
    assert_int_equal(b.p[9999], 'a' + 9999 % 26);
    assert_int_equal(rp_buf_puts(&b, "xyz"), RP_OK);
    assert_string_equal(b.p + 10000, "xyz");
    rp_buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
}

static void test_printf(void **state) {
    (void)state;
    rp_buf b;
    rp_buf_init(&b, 0);
    assert_int_equal(rp_buf_printf(&b, "%d-%s", 42, "x"), RP_OK);
    assert_string_equal(b.p, "42-x");
    char big[1000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(rp_buf_printf(&b, "[%s]", big), RP_OK); /* past the 128-byte fast path */
    assert_int_equal(b.len, 4 + 2 + 999);
    assert_int_equal(b.p[5], 'q');
    assert_int_equal(b.p[b.len - 1], ']');
    assert_int_equal(b.p[b.len], '\0');
    rp_buf_free(&b);
}

static void test_limit_and_sticky(void **state) {
    (void)state;
    rp_buf b;
    rp_buf_init(&b, 10);
    assert_int_equal(rp_buf_append(&b, "0123456789", 10), RP_OK); /* exactly the limit */
    assert_true(b.cap <= 11);
    assert_int_equal(rp_buf_putc(&b, 'x'), RP_TOO_LARGE);
    assert_int_equal(b.len, 10);
    /* sticky: even an empty append now fails, and nothing changes */
    assert_int_equal(rp_buf_append(&b, "", 0), RP_TOO_LARGE);
    assert_int_equal(rp_buf_printf(&b, "%d", 1), RP_TOO_LARGE);
    assert_string_equal(b.p, "0123456789");
    rp_errbuf eb = {0};
    assert_int_equal(rp_buf_error(&b, &eb), RP_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "10 bytes"));
    /* rollback clears it */
    rp_buf_truncate(&b, 4);
    assert_int_equal(b.err, RP_OK);
    assert_string_equal(b.p, "0123");
    assert_int_equal(rp_buf_puts(&b, "abcdef"), RP_OK);
    assert_string_equal(b.p, "0123abcdef");
    /* truncate never grows */
    rp_buf_truncate(&b, 100);
    assert_int_equal(b.len, 10);
    /* a request that would wrap size_t is TOO_LARGE, not a wrap */
    rp_buf_reset(&b);
    assert_int_equal(rp_buf_reserve(&b, SIZE_MAX), RP_TOO_LARGE);
    rp_buf_free(&b);
    rp_buf u;
    rp_buf_init(&u, 0);
    assert_int_equal(rp_buf_reserve(&u, SIZE_MAX), RP_TOO_LARGE);
    assert_int_equal(rp_buf_error(&u, NULL), RP_TOO_LARGE);
    rp_buf_free(&u);
    assert_int_equal(rp_buf_error(&u, &eb), RP_OK);
}

static void test_out_of_memory(void **state) {
    (void)state;
    rp_buf b;
    rp_buf_init(&b, 0);
    /* within the limit but beyond any heap: realloc fails, RP_UNAVAILABLE */
    assert_int_equal(rp_buf_reserve(&b, SIZE_MAX / 4), RP_UNAVAILABLE); /* 4 EiB */
    rp_errbuf eb = {0};
    assert_int_equal(rp_buf_error(&b, &eb), RP_UNAVAILABLE);
    assert_non_null(strstr(eb.msg, "out of memory"));
    rp_buf_free(&b);
}

static void test_detach(void **state) {
    (void)state;
    rp_buf b;
    rp_buf_init(&b, 100);
    size_t n = 99;
    assert_null(rp_buf_detach(&b, &n));
    assert_int_equal(n, 0);
    rp_buf_puts(&b, "hello");
    char *p = rp_buf_detach(&b, &n);
    assert_int_equal(n, 5);
    assert_string_equal(p, "hello");
    free(p);
    assert_null(b.p);
    assert_int_equal(b.max, 100); /* same limit, reusable */
    assert_int_equal(rp_buf_puts(&b, "again"), RP_OK);
    rp_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_limit_and_sticky),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_detach),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
