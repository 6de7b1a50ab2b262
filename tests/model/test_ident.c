/* test_ident.c — email normalization, id and text checks, UTF-8 validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "model/ident.h"

/* Normalize s (NUL-terminated) and return the code; the result lands in out. */
static rp_err email(const char *s, char out[RP_EMAIL_MAX + 1], rp_errbuf *eb) {
    size_t len = 12345;
    memset(out, 'X', RP_EMAIL_MAX + 1);
    rp_err rc = rp_email_normalize(s, strlen(s), out, &len, eb);
    if (rc == RP_OK) assert_int_equal(len, strlen(out));
    return rc;
}

static void test_email_ok(void **state) {
    (void)state;
    char out[RP_EMAIL_MAX + 1];
    rp_errbuf eb = {0};
    assert_int_equal(email("Jane.Doe@Example.COM", out, &eb), RP_OK);
    assert_string_equal(out, "jane.doe@example.com");
    assert_int_equal(email("  \tbob+tag@mail.example.org \r\n", out, &eb), RP_OK);
    assert_string_equal(out, "bob+tag@mail.example.org");
    assert_int_equal(email("x@y.z", out, &eb), RP_OK);
    assert_string_equal(out, "x@y.z");
    /* Non-ASCII bytes (internationalized addresses) pass through unchanged. */
    assert_int_equal(email("Jos\xc3\xa9@Exampl\xc3\xa9.FR", out, &eb), RP_OK);
    assert_string_equal(out, "jos\xc3\xa9@exampl\xc3\xa9.fr");
    /* outlen may be NULL; input is a slice, not a C string. */
    assert_int_equal(rp_email_normalize("A@B.CDEFG", 5, out, NULL, &eb), RP_OK);
    assert_string_equal(out, "a@b.c");
    /* Exactly RP_EMAIL_MAX bytes is allowed. */
    char big[RP_EMAIL_MAX + 2];
    memset(big, 'a', sizeof big);
    memcpy(big, "me@", 3);
    memcpy(big + RP_EMAIL_MAX - 4, ".com", 4);
    big[RP_EMAIL_MAX] = '\0';
    assert_int_equal(email(big, out, &eb), RP_OK);
    assert_int_equal(strlen(out), RP_EMAIL_MAX);
}

static void test_email_invalid(void **state) {
    (void)state;
    char out[RP_EMAIL_MAX + 1];
    rp_errbuf eb = {0};
    const char *bad[] = {
        "",         "   ",           "plainaddress",   "@example.com",  "jane@",
        "jane@localhost", "a@b@c.com", "jane doe@x.com", "jane@exa mple.com", "jane@.example.com",
        "jane@example.com.", "jane@example..com", "ja\x01ne@x.com", "jane@x.com\x7f",
        "<jane@x.com>", "jane,doe@x.com", "\"jane\"@x.com", "jane@[1.2.3.4]", "ja\xffne@x.com",
        "ja\xc0\xafne@x.com",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eb.msg[0] = '\0';
        rp_err rc = email(bad[i], out, &eb);
        if (rc != RP_BAD_REQUEST) fail_msg("accepted bad email #%zu '%s'", i, bad[i]);
        assert_true(strlen(eb.msg) > 0);
        assert_int_equal(eb.code, RP_BAD_REQUEST);
    }
    email("jane", out, &eb);
    assert_non_null(strstr(eb.msg, "'@'"));
    /* Too long: 255 bytes. */
    char big[RP_EMAIL_MAX + 2];
    memset(big, 'a', sizeof big);
    memcpy(big, "me@", 3);
    memcpy(big + RP_EMAIL_MAX + 1 - 4, ".com", 4);
    big[RP_EMAIL_MAX + 1] = '\0';
    assert_int_equal(email(big, out, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "limit"));
    /* Local part longer than 64 bytes. */
    char local[100];
    memset(local, 'l', 65);
    strcpy(local + 65, "@x.com");
    assert_int_equal(email(local, out, &eb), RP_BAD_REQUEST);
    /* A NULL errbuf is allowed. */
    assert_int_equal(rp_email_normalize("nope", 4, out, NULL, NULL), RP_BAD_REQUEST);
}

static void test_id_check(void **state) {
    (void)state;
    rp_errbuf eb = {0};
    assert_int_equal(rp_id_check(RP_STR_LIT("cust-0001"), "id", &eb), RP_OK);
    assert_int_equal(rp_id_check(RP_STR_LIT("!~"), "id", &eb), RP_OK);
    assert_int_equal(rp_id_check((rp_str){NULL, 0}, "id", &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "id must be 1 to 64 bytes"));
    char buf[RP_ID_MAX + 1];
    memset(buf, 'a', sizeof buf);
    assert_int_equal(rp_id_check((rp_str){buf, RP_ID_MAX}, "id", &eb), RP_OK);
    assert_int_equal(rp_id_check((rp_str){buf, RP_ID_MAX + 1}, "issue_id", &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "issue_id"));
    assert_non_null(strstr(eb.msg, "65"));
    assert_int_equal(rp_id_check(RP_STR_LIT("a b"), "id", &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "byte 1"));
    assert_int_equal(rp_id_check(RP_STR_LIT("ab\tc"), "id", &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_id_check(RP_STR_LIT("ab\x01"), "id", &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_id_check(RP_STR_LIT("ab\x7f"), "id", &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_id_check(RP_STR_LIT("caf\xc3\xa9"), "id", &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_id_check((rp_str){"a\0b", 3}, "id", &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_id_check(RP_STR_LIT(" "), "id", NULL), RP_BAD_REQUEST);
}

static void test_utf8(void **state) {
    (void)state;
    static const struct {
        const char *s;
        size_t n;
        bool ok;
    } cases[] = {
        {"", 0, true},
        {"plain ascii", 11, true},
        {"\xc3\xa9", 2, true},                 /* é */
        {"\xe2\x82\xac", 3, true},             /* € */
        {"\xf0\x9f\x98\x80", 4, true},         /* U+1F600, 4 bytes */
        {"\xf4\x8f\xbf\xbf", 4, true},         /* U+10FFFF, the last code point */
        {"\xef\xbf\xbf", 3, true},             /* U+FFFF is a valid scalar */
        {"\xc0\x80", 2, false},                /* overlong NUL */
        {"\xc1\xbf", 2, false},                /* overlong */
        {"\xe0\x80\xaf", 3, false},            /* overlong '/' */
        {"\xe0\x9f\xbf", 3, false},            /* overlong U+07FF */
        {"\xf0\x8f\xbf\xbf", 4, false},        /* overlong U+FFFF */
        {"\xed\xa0\x80", 3, false},            /* U+D800 high surrogate */
        {"\xed\xbf\xbf", 3, false},            /* U+DFFF low surrogate */
        {"\xed\x9f\xbf", 3, true},             /* U+D7FF just below */
        {"\xf4\x90\x80\x80", 4, false},        /* U+110000 */
        {"\xf5\x80\x80\x80", 4, false},        /* lead byte F5 */
        {"\xff", 1, false},
        {"\x80", 1, false},                    /* lone continuation */
        {"\xc3", 1, false},                    /* truncated 2-byte */
        {"\xe2\x82", 2, false},                /* truncated 3-byte */
        {"\xf0\x9f\x98", 3, false},            /* truncated 4-byte */
        {"a\xf0\x9f\x98" "a", 5, false},       /* truncated mid-string */
        {"\xc3\x28", 2, false},                /* bad continuation */
        {"a\0b", 3, true},                     /* NUL is valid UTF-8 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (rp_utf8_valid(cases[i].s, cases[i].n) != cases[i].ok)
            fail_msg("utf8 case %zu: expected %s", i, cases[i].ok ? "valid" : "invalid");
    /* The validator must not read past n: a valid prefix of an invalid string. */
    assert_true(rp_utf8_valid("ab\xff", 2));
    assert_false(rp_utf8_valid("ab\xff", 3));
}

static void test_text_check(void **state) {
    (void)state;
    rp_errbuf eb = {0};
    assert_int_equal(rp_text_check(RP_STR_LIT("Mar\xc3\xad" "a\tJos\xc3\xa9"), 64, "name", &eb), RP_OK);
    assert_int_equal(rp_text_check((rp_str){NULL, 0}, 64, "name", &eb), RP_OK);
    assert_int_equal(rp_text_check(RP_STR_LIT("abcd"), 4, "name", &eb), RP_OK);
    assert_int_equal(rp_text_check(RP_STR_LIT("abcde"), 4, "name", &eb), RP_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "name"));
    assert_non_null(strstr(eb.msg, "limit is 4"));
    assert_int_equal(rp_text_check(RP_STR_LIT("a\nb"), 64, "summary", &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "control"));
    assert_non_null(strstr(eb.msg, "summary"));
    assert_int_equal(rp_text_check(RP_STR_LIT("a\rb"), 64, "x", &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_text_check((rp_str){"a\0b", 3}, 64, "x", &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_text_check(RP_STR_LIT("del\x7f"), 64, "x", &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_text_check(RP_STR_LIT("c1\xc2\x85"), 64, "x", &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_text_check(RP_STR_LIT("nbsp\xc2\xa0"), 64, "x", &eb), RP_OK);
    assert_int_equal(rp_text_check(RP_STR_LIT("bad\xed\xa0\x80"), 64, "x", &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "UTF-8"));
    assert_int_equal(rp_text_check(RP_STR_LIT("\xf0\x9f\x98\x80"), 64, "x", NULL), RP_OK);
    assert_int_equal(rp_text_check(RP_STR_LIT("\xf0\x9f\x98\x80"), 3, "x", NULL), RP_TOO_LARGE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email_ok),   cmocka_unit_test(test_email_invalid),
        cmocka_unit_test(test_id_check),   cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_text_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
