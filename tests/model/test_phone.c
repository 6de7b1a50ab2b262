/* test_phone.c — phone normalization: every carrier/CRM format of the design,
 * national numbers per default country, international prefixes, the ITU
 * calling-code table, and every rejection path with its sentence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/ident.h"

/* Normalize the C string s with default country dc; expect success and want. */
static void ok(const char *s, const char *dc, const char *want) {
    char out[RP_PHONE_MAX + 1];
    size_t len = 99;
    rp_errbuf eb = {0};
    rp_err rc = rp_phone_normalize(s, strlen(s), dc, out, &len, &eb);
    if (rc != RP_OK || strcmp(out, want) != 0)
        print_error("input '%s' (default %s): rc=%d out='%s' msg='%s', want '%s'\n", s,
                    dc ? dc : "NULL", rc, out, eb.msg, want);
    assert_int_equal(rc, RP_OK);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
}

/* Normalize s[0..n); expect RP_BAD_REQUEST, an empty out and a message
 * containing needle. */
static void bad_n(const char *s, size_t n, const char *dc, const char *needle) {
    char out[RP_PHONE_MAX + 1];
    memset(out, 'Z', sizeof out);
    size_t len = 99;
    rp_errbuf eb = {0};
    rp_err rc = rp_phone_normalize(s, n, dc, out, &len, &eb);
    if (rc != RP_BAD_REQUEST || strstr(eb.msg, needle) == NULL)
        print_error("input '%.*s' (default %s): rc=%d out='%.16s' msg='%s', want '%s'\n", (int)n,
                    s ? s : "", dc ? dc : "NULL", rc, out, eb.msg, needle);
    assert_int_equal(rc, RP_BAD_REQUEST);
    assert_int_equal(eb.code, RP_BAD_REQUEST);
    assert_true(strlen(eb.msg) > 0);
    assert_non_null(strstr(eb.msg, needle));
    assert_int_equal(out[0], '\0');
    assert_int_equal(len, 0);
}

static void bad(const char *s, const char *dc, const char *needle) {
    bad_n(s, strlen(s), dc, needle);
}

/* The design's formats, all to one E.164 number, default US. */
static void test_design_formats(void **state) {
    (void)state;
    const char *nanp[] = {
        "+1 (415) 555-1212", "415.555.1212",     "(415) 555-1212",
        "1-415-555-1212",    "14155551212",      "4155551212",
        "tel:+14155551212",  "TEL:+1-415-555-1212;ext=123",
        "tel:+1-415-555-1212;phone-context=example.com",
        "  +1 415 555 1212\t", "+1/415/555/1212", "(+1) 415 555 1212",
        "+1\xC2\xA0" "415\xC2\xA0" "555\xC2\xA0" "1212",       /* no-break spaces */
        "415\xE2\x80\x93" "555\xE2\x80\x93" "1212",           /* en dashes */
        "+1\xE2\x80\xAF" "415\xE2\x80\xAF" "555\xE2\x80\x89" "1212", /* thin spaces */
        "011 1 415 555 1212", "001 415 555 1212",
    };
    for (size_t i = 0; i < sizeof nanp / sizeof nanp[0]; i++) ok(nanp[i], "US", "+14155551212");
    const char *uk[] = {
        "0044 20 7946 0958", "011 44 20 7946 0958", "+44 (0)20 7946 0958",
        "+44(0)2079460958",  "+44 20 7946 0958",    "tel:+44-20-7946-0958",
        "+44 020 7946 0958", "011 44 (0)20 7946 0958",
    };
    for (size_t i = 0; i < sizeof uk / sizeof uk[0]; i++) ok(uk[i], "US", "+442079460958");
    /* Canada shares +1 and the same prefixes. */
    ok("(604) 555-0199", "CA", "+16045550199");
    ok("011 44 20 7946 0958", "ca", "+442079460958");
}

/* National numbers: the default country's code, trunk prefix removed. */
static void test_national(void **state) {
    (void)state;
    ok("020 7946 0958", "GB", "+442079460958");
    ok("020 7946 0958", "gb", "+442079460958");
    ok("(0)20 7946 0958", "GB", "+442079460958");
    ok("20 7946 0958", "GB", "+442079460958");
    ok("0044 20 7946 0958", "GB", "+442079460958");
    ok("030 1234567", "DE", "+49301234567");
    ok("+49 (0)30 1234567", "US", "+49301234567");
    ok("0049 30 1234567", "FR", "+49301234567");
    ok("01 23 45 67 89", "FR", "+33123456789");
    ok("06 12 34 56 78", "FR", "+33612345678");
    ok("91 123 45 67", "ES", "+34911234567");
    ok("020-123 4567", "NL", "+31201234567");
    ok("01 234 5678", "IE", "+35312345678");
    ok("02 9374 4000", "AU", "+61293744000");
    ok("0412 345 678", "AU", "+61412345678");
    ok("03-1234-5678", "JP", "+81312345678");
    ok("090-1234-5678", "JP", "+819012345678");
    ok("010 1234 5678", "CN", "+861012345678"); /* Beijing: 010 is not an IDD in China */
    ok("02-123-4567", "KR", "+8221234567");
    ok("(11) 91234-5678", "BR", "+5511912345678");
    ok("55 1234 5678", "MX", "+525512345678");
    ok("011 4123-4567", "AR", "+541141234567");
    ok("021 123 4567", "ZA", "+27211234567");
    ok("6123 4567", "SG", "+6561234567");
    ok("2123 4567", "HK", "+85221234567");
    ok("04 123 4567", "AE", "+97141234567");
    ok("03-123-4567", "IL", "+97231234567");
    ok("8 (495) 123-45-67", "RU", "+74951234567");
    ok("(495) 123-45-67", "RU", "+74951234567");
    ok("8 800 123 45 67", "RU", "+78001234567");
    ok("800 123 45 67", "RU", "+78001234567"); /* 8 also begins numbers: strip by length only */
}

/* Italy (and San Marino): the leading 0 is part of the number. */
static void test_italy_keeps_zero(void **state) {
    (void)state;
    ok("06 1234 5678", "IT", "+390612345678");
    ok("+39 06 1234 5678", "US", "+390612345678");
    ok("+39 (0)6 1234 5678", "US", "+390612345678");
    ok("0039 06 1234 5678", "DE", "+390612345678");
    ok("011 39 06 1234 5678", "US", "+390612345678");
    ok("333 123 4567", "IT", "+393331234567");
    ok("+378 0549 123456", "US", "+3780549123456");
}

/* Each default country's own international prefix. */
static void test_international_prefixes(void **state) {
    (void)state;
    ok("0011 44 20 7946 0958", "AU", "+442079460958");
    ok("010 44 20 7946 0958", "JP", "+442079460958");
    ok("001 1 415 555 1212", "KR", "+14155551212");
    ok("00700 1 415 555 1212", "KR", "+14155551212");
    ok("8 10 44 20 7946 0958", "RU", "+442079460958");
    ok("001 44 20 7946 0958", "SG", "+442079460958");
    ok("001 44 20 7946 0958", "HK", "+442079460958");
    ok("014 44 20 7946 0958", "IL", "+442079460958");
    ok("00 33 1 23 45 67 89", "CH", "+33123456789");
    /* "00" is not dialled in Japan, Australia or Brazil: never guessed. */
    bad("0044 20 7946 0958", "AU", "not an international prefix");
    bad("0044 20 7946 0958", "JP", "not an international prefix");
    bad("0044 20 7946 0958", "BR", "not an international prefix");
    bad("0044 20 7946 0958", "RU", "not an international prefix");
    /* Written from the wrong country: a national number that cannot exist. */
    bad("011 44 20 7946 0958", "GB", "too long");
    bad("011 44 20 7946 09", "GB", "7 to 10 digits after the country code");
    bad("011 44 20 7946 0958", "DE", "too long");
    bad("011", "US", "nothing after the international prefix");
}

/* The default country matters only when the number needs it. */
static void test_default_country(void **state) {
    (void)state;
    ok("+44 20 7946 0958", "ZZ", "+442079460958");
    ok("+44 20 7946 0958", NULL, "+442079460958");
    ok("tel:+14155551212", "", "+14155551212");
    bad("020 7946 0958", "ZZ", "unknown default country 'ZZ'");
    bad("020 7946 0958", "GBR", "unknown default country 'GBR'");
    bad("020 7946 0958", NULL, "no default country");
    bad("020 7946 0958", "", "no default country");
    bad("0044 20 7946 0958", "XX", "unknown default country 'XX'");
    bad("020 7946 0958", "\x01\x02", "default country is unknown");
    bad("020 7946 0958", "ABCDEFGHIJKLMNOP", "default country is unknown");
}

/* Invalid inputs: each a BAD_REQUEST with a sentence naming the problem. */
static void test_invalid(void **state) {
    (void)state;
    static const struct {
        const char *in, *needle;
    } cases[] = {
        {"", "empty"},
        {"   ", "no digits"},
        {"tel:", "no digits"},
        {"+", "no digits"},
        {"++1 415 555 1212", "more than one '+'"},
        {"1+415 555 1212", "'+' may only begin"},
        {"1-800-FLOWERS", "letters ('FLOWERS')"},
        {"abc", "letters"},
        {"415-555-1212 x123", "extension text ('x')"},
        {"415-555-1212 ext. 5", "extension text ('ext')"},
        {"415-555-1212 Extension 5", "extension text"},
        {"*67 415 555 1212", "'*'"},
        {"415 555 1212#", "'#'"},
        {"415;555;1212", "unexpected character ';'"},
        {"415,555,1212", "unexpected character ','"},
        {"415_555_1212", "unexpected character '_'"},
        {"415\n555 1212", "unexpected byte 0x0A"},
        {"\xEF\xBC\x94\xEF\xBC\x91\xEF\xBC\x95", "unexpected byte 0xEF"}, /* fullwidth */
        {"415\xC2" "555 1212", "unexpected byte 0xC2"},  /* truncated UTF-8 */
        {"415\xE2\x80" "555 1212", "unexpected byte 0xE2"},
        {"+44 20 79", "too short"},
        {"+4", "too short"},
        {"+44 20 7946 0958 1234 5", "too long"},
        {"+999 123 4567", "unknown country calling code +999"},
        {"+210 123 4567", "unknown country calling code +210"},
        {"+0 415 555 1212", "unknown country calling code"},
        {"+1 (415 555-1212", "unbalanced parentheses"},
        {"+1 415) 555-1212", "unbalanced parentheses"},
        {"+1 ((415)) 555-1212", "nested parentheses"},
        {"+44 (0)20 (0)7946 0958", "more than one '(0)'"},
        {"+44 20 (0)7946 0958", "'(0)' may only follow"},
        {"(0)", "cannot begin with 0"},
        {"+(0)44 20 7946 0958", "'(0)' may only follow"},
        {"0(0)44 20 7946 0958", "'(0)' inside its international prefix"},
        {"020 (0)7946 0958", "does not begin the national number"},
        {"555-1212", "10 digits after the country code"},
        {"+1 415 555 12123", "10 digits after the country code"},
        {"+1 015 555 1212", "cannot begin with 0"},
        {"+1 215 055 1212", "area code and exchange"},
        {"+1 415 155 1212", "area code and exchange"},
        {"1 115 555 1212", "area code and exchange"},
        {"+7 495 123 45 6", "10 digits"},
        {"+33 1 23 45 67 8", "9 digits"},
        {"+44 0 0 20 7946 0958", "cannot begin with 0"},
        {"+34 0 91 123 45 67", "cannot begin with 0"},
        {"0000 1234 5678", "unknown country calling code +001"},
        {"00", "nothing after the international prefix 00"},
        {"+44", "no digits after the country code"},
        {"+44(0)", "no digits after the country code"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        bad(cases[i].in, "US", cases[i].needle);
    /* NULL input with length 0 is empty; GB rules for the redundant 0. */
    bad_n(NULL, 0, "US", "empty");
    bad("020 7946 0958 12", "GB", "7 to 10 digits");
}

/* Length limit of 64 bytes and embedded NUL bytes. */
static void test_limits(void **state) {
    (void)state;
    char buf[80];
    /* Exactly 64 bytes: 52 spaces then a 12-byte number. */
    memset(buf, ' ', sizeof buf);
    memcpy(buf + 52, "+14155551212", 12);
    char out[RP_PHONE_MAX + 1];
    rp_errbuf eb = {0};
    assert_int_equal(rp_phone_normalize(buf, 64, "US", out, NULL, &eb), RP_OK);
    assert_string_equal(out, "+14155551212");
    /* 65 bytes: rejected whatever they hold, as a bad request. */
    memset(buf, ' ', sizeof buf);
    memcpy(buf + 53, "+14155551212", 12);
    bad_n(buf, 65, "US", "too long");
    memset(buf, '1', sizeof buf);
    bad_n(buf, 80, "US", "too long");
    /* NUL anywhere, even inside ignored tel: parameters. */
    bad_n("+1415\0" "5551212", 12, "US", "NUL");
    bad_n("\0", 1, "US", "NUL");
    bad_n("tel:+14155551212;x=\0", 20, "US", "NUL");
    /* Fifteen digits is the E.164 maximum and fits the output exactly. */
    ok("+882 1234 5678 9012", "US", "+882123456789012");
    assert_int_equal(strlen("+882123456789012"), RP_PHONE_MAX);
    /* A NULL errbuf is allowed. */
    assert_int_equal(rp_phone_normalize("abc", 3, "US", out, NULL, NULL), RP_BAD_REQUEST);
    assert_string_equal(out, "");
}

/* The input need not be NUL-terminated and nothing past n is read: an exact
 * heap block lets valgrind/ASan catch an over-read. */
static void test_not_nul_terminated(void **state) {
    (void)state;
    static const char *inputs[] = {"+14155551212", "415.555.1212", "+44 (0)20 7946 0958",
                                   "tel:+1-415-555-1212", "(", "+1 (0", "415\xC2", "415\xE2\x80",
                                   "x", "0011"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        size_t n = strlen(inputs[i]);
        char *p = malloc(n);
        assert_non_null(p);
        memcpy(p, inputs[i], n);
        char out[RP_PHONE_MAX + 1];
        rp_errbuf eb = {0};
        rp_err rc = rp_phone_normalize(p, n, "US", out, NULL, &eb);
        assert_true(rc == RP_OK || rc == RP_BAD_REQUEST);
        free(p);
    }
    /* Bytes after n are not part of the number. */
    const char buf[] = "415555121299999";
    char out[RP_PHONE_MAX + 1];
    size_t len = 0;
    rp_errbuf eb = {0};
    assert_int_equal(rp_phone_normalize(buf, 10, "US", out, &len, &eb), RP_OK);
    assert_string_equal(out, "+14155551212");
    assert_int_equal(len, 12);
    /* "(0)" cut by n is an opening parenthesis and a digit, not "(0)". */
    bad_n("+44 (0)20", 6, "US", "unbalanced parentheses");
    /* a no-break space cut by n is a stray byte */
    bad_n("415\xC2\xA0" "5551212", 4, "US", "unexpected byte 0xC2");
}

static void test_country_code(void **state) {
    (void)state;
    assert_string_equal(rp_phone_country_code("US"), "1");
    assert_string_equal(rp_phone_country_code("CA"), "1");
    assert_string_equal(rp_phone_country_code("GB"), "44");
    assert_string_equal(rp_phone_country_code("gb"), "44");
    assert_string_equal(rp_phone_country_code("IT"), "39");
    assert_string_equal(rp_phone_country_code("DE"), "49");
    assert_string_equal(rp_phone_country_code("RU"), "7");
    assert_string_equal(rp_phone_country_code("HK"), "852");
    assert_string_equal(rp_phone_country_code("IL"), "972");
    assert_null(rp_phone_country_code("XX"));
    assert_null(rp_phone_country_code("USA"));
    assert_null(rp_phone_country_code("U"));
    assert_null(rp_phone_country_code(""));
    assert_null(rp_phone_country_code(NULL));
    /* Every required default country is present, and its code is assigned. */
    static const char *required[] = {"US", "CA", "GB", "IE", "DE", "FR", "ES", "IT", "NL",
                                     "BE", "CH", "AT", "SE", "NO", "DK", "FI", "PL", "PT",
                                     "AU", "NZ", "JP", "KR", "CN", "IN", "BR", "MX", "AR",
                                     "ZA", "RU", "SG", "HK", "AE", "IL"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        const char *cc = rp_phone_country_code(required[i]);
        assert_non_null(cc);
        char num[32];
        snprintf(num, sizeof num, "+%s(0)23456789", cc);
        char out[RP_PHONE_MAX + 1];
        rp_errbuf eb = {0};
        rp_err rc = rp_phone_normalize(num, strlen(num), NULL, out, NULL, &eb);
        if (rc != RP_OK) {
            assert_null(strstr(eb.msg, "unknown country calling code"));
            assert_null(strstr(eb.msg, "(0)"));
        }
    }
}

/* The assigned ITU country calling codes, written out independently. */
static const unsigned assigned[] = {
    1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53,
    54, 55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98,
    211, 212, 213, 216, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232,
    233, 234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250,
    251, 252, 253, 254, 255, 256, 257, 258, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269,
    290, 291, 297, 298, 299, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 370, 371, 372,
    373, 374, 375, 376, 377, 378, 379, 380, 381, 382, 383, 385, 386, 387, 389, 420, 421, 423,
    500, 501, 502, 503, 504, 505, 506, 507, 508, 509, 590, 591, 592, 593, 594, 595, 596, 597,
    598, 599, 670, 672, 673, 674, 675, 676, 677, 678, 679, 680, 681, 682, 683, 685, 686, 687,
    688, 689, 690, 691, 692, 800, 808, 850, 852, 853, 855, 856, 870, 880, 881, 882, 883, 886,
    888, 960, 961, 962, 963, 964, 965, 966, 967, 968, 970, 971, 972, 973, 974, 975, 976, 977,
    979, 992, 993, 994, 995, 996, 997, 998,
};

static bool is_assigned(unsigned v) {
    for (size_t i = 0; i < sizeof assigned / sizeof assigned[0]; i++)
        if (assigned[i] == v) return true;
    return false;
}

/* Every 3-digit start is known iff one of its prefixes is assigned; and each
 * assigned code is matched whole (a "(0)" right after it is accepted), which
 * fails if a shorter code of the table were a prefix of it. */
static void test_calling_code_table(void **state) {
    (void)state;
    /* the expected list itself is prefix-free */
    for (size_t i = 0; i < sizeof assigned / sizeof assigned[0]; i++) {
        unsigned v = assigned[i];
        if (v >= 10) assert_false(is_assigned(v / 10));
        if (v >= 100) assert_false(is_assigned(v / 100));
    }
    for (unsigned v = 100; v <= 999; v++) {
        char num[32];
        snprintf(num, sizeof num, "+%u23456789", v);
        char out[RP_PHONE_MAX + 1];
        rp_errbuf eb = {0};
        rp_err rc = rp_phone_normalize(num, strlen(num), "US", out, NULL, &eb);
        bool known = rc == RP_OK || strstr(eb.msg, "unknown country calling code") == NULL;
        bool want = is_assigned(v / 100) || is_assigned(v / 10) || is_assigned(v);
        if (known != want) print_error("+%u: known=%d want=%d (%s)\n", v, known, want, eb.msg);
        assert_int_equal(known, want);
    }
    for (size_t i = 0; i < sizeof assigned / sizeof assigned[0]; i++) {
        char num[32];
        snprintf(num, sizeof num, "+%u(0)2345678", assigned[i]);
        char out[RP_PHONE_MAX + 1];
        rp_errbuf eb = {0};
        rp_err rc = rp_phone_normalize(num, strlen(num), "US", out, NULL, &eb);
        if (rc != RP_OK) {
            if (strstr(eb.msg, "(0)") != NULL) print_error("+%u: %s\n", assigned[i], eb.msg);
            assert_null(strstr(eb.msg, "(0)"));
            assert_null(strstr(eb.msg, "unknown country calling code"));
        }
    }
    /* a few by name: South Sudan, Kosovo, Uzbekistan, Inmarsat, Taiwan */
    ok("+211 912 345 678", "US", "+211912345678");
    ok("+383 44 123 456", "US", "+38344123456");
    ok("+998 90 123 45 67", "US", "+998901234567");
    ok("+870 7731 23456", "US", "+870773123456");
    ok("+886 2 1234 5678", "US", "+886212345678");
    ok("+1 242 555 1234", "US", "+12425551234"); /* Bahamas is inside +1, not +242 */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_formats),   cmocka_unit_test(test_national),
        cmocka_unit_test(test_italy_keeps_zero), cmocka_unit_test(test_international_prefixes),
        cmocka_unit_test(test_default_country),  cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_limits),           cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_country_code),     cmocka_unit_test(test_calling_code_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
