/* test_demo.c — the synthetic data set: deterministic, valid, realistic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/demo.h"

/* noinline: inlined, gcc 12 -O3 takes the result for a pointer to the local
 * buf (-Wdangling-pointer) instead of what open_memstream stored in it. */
__attribute__((noinline)) static char *demo_text(const rp_demo_opts *o, size_t *len) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    assert_non_null(f);
    rp_errbuf eb = {0};
    assert_int_equal(rp_demo_write(f, o, &eb), RP_OK);
    fclose(f);
    return buf;
}

static void test_deterministic(void **state) {
    (void)state;
    rp_demo_opts o;
    rp_demo_defaults(&o);
    o.customers = 50;
    o.now = 1790000000;
    size_t la, lb, lc;
    char *a = demo_text(&o, &la), *b = demo_text(&o, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    o.seed = 2;
    char *c = demo_text(&o, &lc);
    assert_true(lc != la || memcmp(a, c, la) != 0);
    /* customer i does not depend on the total: 10 customers are a prefix */
    o.seed = 1;
    o.customers = 10;
    size_t ld;
    char *d = demo_text(&o, &ld);
    assert_true(ld < la);
    assert_memory_equal(a, d, ld);
    free(a), free(b), free(c), free(d);
}

static void test_valid_and_realistic(void **state) {
    (void)state;
    rp_demo_opts o;
    rp_demo_defaults(&o);
    o.customers = 200;
    o.now = 1790000000;
    size_t len;
    char *text = demo_text(&o, &len);
    int customers = 0, events = 0, issues = 0, shared = 0, overdue = 0, dup_emails = 0;
    char prev_email[256] = "";
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t err;
        json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, &err);
        assert_non_null(j);
        const char *type = json_string_value(json_object_get(j, "type"));
        assert_non_null(type);
        if (strcmp(type, "customer") == 0) {
            customers++;
            if (json_array_size(json_object_get(j, "phones")) > 1) shared++;
            const char *email = json_string_value(json_array_get(json_object_get(j, "emails"), 0));
            if (strcasecmp(email, prev_email) == 0) dup_emails++;
            snprintf(prev_email, sizeof prev_email, "%s", email);
        } else if (strcmp(type, "event") == 0) {
            events++;
            assert_true(json_integer_value(json_object_get(j, "ts")) <= o.now);
        } else if (strcmp(type, "issue") == 0) {
            issues++;
            json_t *due = json_object_get(j, "follow_up_due");
            if (due && json_integer_value(due) < o.now) overdue++;
        } else {
            fail_msg("unknown type %s", type);
        }
        json_decref(j);
    }
    assert_int_equal(customers, 200);
    assert_true(events >= 200 * 20 && events <= 200 * 200);
    assert_true(issues > 0);
    assert_true(shared > 0);
    assert_true(overdue > 0);
    assert_true(dup_emails > 0);
    free(text);
}

static void test_bad_options(void **state) {
    (void)state;
    rp_demo_opts o;
    rp_demo_defaults(&o);
    rp_errbuf eb = {0};
    o.customers = 0;
    assert_int_equal(rp_demo_write(stdout, &o, &eb), RP_BAD_REQUEST);
    o.customers = 1;
    o.events_min = 10;
    o.events_max = 5;
    assert_int_equal(rp_demo_write(stdout, &o, &eb), RP_BAD_REQUEST);
}

static void test_sample_phone(void **state) {
    (void)state;
    rp_demo_opts o;
    rp_demo_defaults(&o);
    char a[40], b[40], id[16];
    rp_demo_phone(&o, 1, a);
    rp_demo_phone(&o, 2, b);
    assert_string_not_equal(a, b);
    rp_demo_customer_id(42, id);
    assert_string_equal(id, "c0000042");
    /* profile 40 duplicates profile 39: same person, same phone */
    rp_demo_phone(&o, 39, a);
    rp_demo_phone(&o, 40, b);
    assert_string_equal(a, b);
    char line[64];
    snprintf(line, sizeof line, "\"phones\":[\"%s\"]", b);
    o.customers = 40;
    o.now = 1790000000;
    size_t len;
    char *text = demo_text(&o, &len);
    const char *p40 = strstr(text, "\"id\":\"c0000040\"");
    assert_non_null(p40);
    assert_non_null(strstr(p40, line));
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_valid_and_realistic),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_sample_phone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
