/* test_urldecode.c — percent-decoding of paths and query strings: '+' as a
 * space (form) or a plus (path, and the first byte of a phone value), %2B,
 * mixed-case hex, UTF-8 escapes, and the malformed escapes and %00 that
 * must be refused with a sentence naming the parameter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "net/urldecode.h"

/* Decoding in with flags must give want. */
static void dec_is(const char *in, int flags, const char *want) {
    char *out = NULL;
    size_t len = 99;
    rp_errbuf eb = {0};
    rp_err rc = rp_url_decode(in, strlen(in), flags, "x", &out, &len, &eb);
    if (rc != RP_OK) fail_msg("decode '%s': %s", in, eb.msg);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    free(out);
}

/* Decoding in must fail with RP_BAD_REQUEST and a message holding want. */
static void dec_fails(const char *in, int flags, const char *want) {
    char *out = (char *)1;
    rp_errbuf eb = {0};
    assert_int_equal(rp_url_decode(in, strlen(in), flags, "query parameter 'phone'", &out, NULL, &eb),
                     RP_BAD_REQUEST);
    assert_null(out);
    if (strstr(eb.msg, want) == NULL) fail_msg("'%s': expected '%s' in '%s'", in, want, eb.msg);
    assert_non_null(strstr(eb.msg, "query parameter 'phone'"));
}

static void test_form(void **state) {
    (void)state;
    /* Python urlencode / curl --data-urlencode / URLSearchParams */
    dec_is("%2B44+%280%2920+7946+0958", RP_URL_FORM, "+44 (0)20 7946 0958");
    dec_is("%2B44+%280%2920+7946+0958", RP_URL_FORM | RP_URL_LEAD_PLUS, "+44 (0)20 7946 0958");
    /* encodeURIComponent / urllib.parse.quote: %20 for a space */
    dec_is("%2B44%20(0)20%207946%200958", RP_URL_FORM, "+44 (0)20 7946 0958");
    dec_is("a%2Bb%40x.com", RP_URL_FORM, "a+b@x.com");
    dec_is("ACC+7+X", RP_URL_FORM, "ACC 7 X");
    dec_is("%e2%82%AC%E2%82%ac", RP_URL_FORM, "\xe2\x82\xac\xe2\x82\xac"); /* hex in any case */
    dec_is("", RP_URL_FORM, "");
    dec_is("+", RP_URL_FORM, " ");
    dec_is("a+b", RP_URL_FORM, "a b");
}

static void test_lead_plus(void **state) {
    (void)state;
    /* an IVR's "?phone=" + "+442079460958": the opening '+' is a plus ... */
    dec_is("+442079460958", RP_URL_FORM | RP_URL_LEAD_PLUS, "+442079460958");
    dec_is("+", RP_URL_FORM | RP_URL_LEAD_PLUS, "+");
    /* ... only the first byte */
    dec_is("+44+20+7946+0958", RP_URL_FORM | RP_URL_LEAD_PLUS, "+44 20 7946 0958");
    /* without the flag it is a space like any other */
    dec_is("+442079460958", RP_URL_FORM, " 442079460958");
}

static void test_path(void **state) {
    (void)state;
    dec_is("a+b", RP_URL_PATH, "a+b");
    dec_is("a%2Bb%20c", RP_URL_PATH, "a+b c");
    dec_is("c-1", RP_URL_PATH, "c-1");
}

static void test_malformed(void **state) {
    (void)state;
    dec_fails("%zz", RP_URL_FORM, "bad percent-escape '%zz'");
    dec_fails("12%4", RP_URL_FORM, "bad percent-escape '%4'");
    dec_fails("12%", RP_URL_FORM, "bad percent-escape '%'");
    dec_fails("%4g", RP_URL_PATH, "bad percent-escape '%4g'");
    dec_fails("%G1", RP_URL_FORM, "'%G1'");
    /* bytes other than printable ASCII are shown as '?' (found by fuzz_query) */
    dec_fails("%\xff\x01", RP_URL_FORM, "bad percent-escape '%?" "?'");
    /* a raw NUL byte, like %00 (found by fuzz_query) */
    {
        char *out = (char *)1;
        rp_errbuf eb = {0};
        assert_int_equal(rp_url_decode("a\0b", 3, RP_URL_PATH, "v", &out, NULL, &eb), RP_BAD_REQUEST);
        assert_null(out);
        assert_non_null(strstr(eb.msg, "NUL"));
    }
    dec_fails("a%\t", RP_URL_PATH, "bad percent-escape '%?'");
    dec_fails("a%00b", RP_URL_FORM, "%00");
    dec_fails("%00", RP_URL_PATH, "NUL");
    /* the message shows at most what is inside the value */
    char buf[4] = {'1', '%', '4', 'X'};
    char *out;
    rp_errbuf eb = {0};
    assert_int_equal(rp_url_decode(buf, 3, RP_URL_FORM, "v", &out, NULL, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "'%4'"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form),
        cmocka_unit_test(test_lead_plus),
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
