/* test_config.c — settings table, config file parsing, tokens, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lmdb.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/error.h"

static void test_defaults(void **state) {
    (void)state;
    rp_config c;
    rp_config_defaults(&c);
    assert_string_equal(c.data_dir, "./rapport-data");
    assert_string_equal(c.listen, "127.0.0.1:7070");
    assert_string_equal(c.http, "127.0.0.1:8080");
    assert_int_equal(c.durability, RP_DURABLE_SYNC);
    assert_int_equal(c.card_recent_events, 5);
    assert_true(c.map_max >= c.map_initial);
    assert_true(c.w_broken_promise > c.w_unresolved_contact);
    assert_true(c.w_open_issue > c.w_habitual);
    assert_string_equal(c.default_country, "US");
}

static void test_set_and_errors(void **state) {
    (void)state;
    rp_config c;
    rp_config_defaults(&c);
    rp_errbuf eb = {0};
    assert_int_equal(rp_config_set(&c, "durability", "async", &eb), RP_OK);
    assert_int_equal(c.durability, RP_DURABLE_ASYNC);
    assert_int_equal(rp_config_set(&c, "durability", "maybe", &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "sync or async"));
    assert_int_equal(rp_config_set(&c, "threads", "0", &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_config_set(&c, "threads", "-3", &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_config_set(&c, "threads", "4x", &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_config_set(&c, "threads", "4", &eb), RP_OK);
    assert_int_equal(c.threads, 4);
    assert_int_equal(rp_config_set(&c, "nope", "1", &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "unknown setting"));
    assert_int_equal(rp_config_set(&c, "weight_habitual", "nan", &eb), RP_BAD_REQUEST);
    char big[4096];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(rp_config_set(&c, "data", big, &eb), RP_BAD_REQUEST);
}

static void test_tokens(void **state) {
    (void)state;
    rp_config c;
    rp_config_defaults(&c);
    rp_errbuf eb = {0};
    assert_int_equal(rp_config_set(&c, "token", "agent:0123456789abcdef", &eb), RP_OK);
    assert_int_equal(rp_config_set(&c, "token", "route:routeroute-secret", &eb), RP_OK);
    assert_int_equal(rp_config_set(&c, "token", "boss:0123456789abcdef", &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_config_set(&c, "token", "admin:short", &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_config_token_role(&c, "0123456789abcdef", 16), RP_ROLE_AGENT);
    assert_int_equal(rp_config_token_role(&c, "routeroute-secret", 17), RP_ROLE_ROUTE);
    assert_int_equal(rp_config_token_role(&c, "0123456789abcde", 15), RP_ROLE_NONE);
    assert_int_equal(rp_config_token_role(&c, "0123456789abcdeX", 16), RP_ROLE_NONE);
    assert_int_equal(rp_config_token_role(&c, "", 0), RP_ROLE_NONE);
}

static void test_file(void **state) {
    (void)state;
    char path[] = "/tmp/rp_cfg_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# comment\n  map_max = 1048576000  \n\ndurability=async # trailing\n"
                       "token = admin:aaaaaaaaaaaaaaaaaaaa\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    rp_config c;
    rp_config_defaults(&c);
    rp_errbuf eb = {0};
    assert_int_equal(rp_config_load_file(&c, path, &eb), RP_OK);
    assert_int_equal(c.map_max, 1048576000ull);
    assert_int_equal(c.durability, RP_DURABLE_ASYNC);
    assert_int_equal(c.ntokens, 1);
    FILE *f = fopen(path, "a");
    fputs("bogus line\n", f);
    fclose(f);
    assert_int_equal(rp_config_load_file(&c, path, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, ":6:"));
    unlink(path);
    assert_int_equal(rp_config_load_file(&c, path, &eb), RP_NOT_FOUND);
}

static void test_errors(void **state) {
    (void)state;
    assert_string_equal(rp_err_code(RP_STORE_FULL), "STORE_FULL");
    assert_string_equal(rp_err_code((rp_err)999), "INTERNAL");
    for (int i = 0; i < RP_ERR__COUNT; i++) {
        const char *c = rp_err_code((rp_err)i);
        assert_int_equal(rp_err_parse(c, strlen(c)), i);
    }
    assert_int_equal(rp_err_from_mdb(MDB_MAP_FULL), RP_STORE_FULL);
    assert_int_equal(rp_err_from_mdb(MDB_NOTFOUND), RP_NOT_FOUND);
    assert_int_equal(rp_err_from_mdb(MDB_CORRUPTED), RP_INTERNAL);
    assert_int_equal(rp_err_from_mdb(ENOSPC), RP_STORE_FULL);
    assert_int_equal(rp_err_from_errno(ENOMEM), RP_UNAVAILABLE);
    rp_errbuf eb = {0};
    assert_int_equal(rp_errf(&eb, RP_CONFLICT, "v%d", 3), RP_CONFLICT);
    assert_string_equal(rp_errbuf_msg(&eb), "v3");
    assert_int_equal(rp_config_list_has("login,page_view", "page_view", 9), 1);
    assert_int_equal(rp_config_list_has("login,page_view", "page", 4), 0);
}

/* Lines collected from an emit callback, joined with newlines. */
typedef struct {
    char buf[65536];
    size_t len;
} text_sink;

static void sink_line(const char *line, void *arg) {
    text_sink *t = arg;
    int n = snprintf(t->buf + t->len, sizeof t->buf - t->len, "%s\n", line);
    assert_true(n > 0 && (size_t)n < sizeof t->buf - t->len);
    t->len += (size_t)n;
}

/* The example config lists every setting of the table with a reason above
 * it, and reads back as the config it was written from. */
static void test_write_example(void **state) {
    (void)state;
    static rp_config c, back;
    static text_sink ex, dump, dump_back;
    rp_config_defaults(&c);
    rp_config_dump(&c, sink_line, &dump);
    rp_config_write_example(&c, sink_line, &ex);
    /* Every setting dump lists appears commented out with its default, after
     * a comment line of its own (the reason), not right after a blank. */
    char *save = NULL;
    for (char *l = strtok_r(dump.buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char want[600];
        char *eq = strstr(l, " = ");
        assert_non_null(eq);
        snprintf(want, sizeof want, "\n#%.*s = ", (int)(eq - l), l);
        char *at = strstr(ex.buf, want);
        if (at == NULL) fail_msg("setting %.*s missing from the example", (int)(eq - l), l);
        assert_true(at > ex.buf + 2 && at[-1] != '\n' && at[-2] != '\n');
        char *line_start = at;
        while (line_start > ex.buf && line_start[-1] != '\n') line_start--;
        assert_true(line_start[0] == '#' && line_start[1] == ' ');
    }
    assert_non_null(strstr(ex.buf, "\n#token = "));

    /* Non-defaults and tokens are live lines; the file reads back as c. */
    rp_errbuf eb = {0};
    assert_int_equal(rp_config_set(&c, "data", "/var/lib/rapport", &eb), RP_OK);
    assert_int_equal(rp_config_set(&c, "weight_habitual", "0.123456789", &eb), RP_OK);
    assert_int_equal(rp_config_set(&c, "token", "agent:0123456789abcdef", &eb), RP_OK);
    memset(&ex, 0, sizeof ex);
    rp_config_write_example(&c, sink_line, &ex);
    assert_non_null(strstr(ex.buf, "\ndata = /var/lib/rapport\n"));
    assert_non_null(strstr(ex.buf, "# (default: ./rapport-data)\ndata ="));
    char path[] = "/tmp/rp_cfg_ex_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, ex.buf, ex.len), (ssize_t)ex.len);
    close(fd);
    rp_config_defaults(&back);
    assert_int_equal(rp_config_load_file(&back, path, &eb), RP_OK);
    unlink(path);
    memset(&dump, 0, sizeof dump);
    rp_config_dump(&c, sink_line, &dump);
    rp_config_dump(&back, sink_line, &dump_back);
    assert_string_equal(dump.buf, dump_back.buf);
    assert_true(back.w_habitual == c.w_habitual);
    assert_int_equal(back.ntokens, 1);
    assert_string_equal(back.tokens[0].secret, "0123456789abcdef");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_set_and_errors),
        cmocka_unit_test(test_tokens),   cmocka_unit_test(test_file),
        cmocka_unit_test(test_errors),   cmocka_unit_test(test_write_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
