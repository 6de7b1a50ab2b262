/* test_cli.c — end-to-end: the real `rapport` binary against a real rapportd
 * (tests/e2e/harness.h) and in --data mode.
 *
 * Every test runs build/rapport as a child process (RP_BINARY_DIR) with its
 * stdout and stderr captured in files of the test's private directory (or
 * stdout on a pseudo-terminal, for the color tests), and checks the exit
 * code and the output: the documented exit codes (0 ok, 1 not found, 2
 * usage, 3 server/store error), put/get round trips, export → import →
 * export byte identity on demo data, bad NDJSON lines reported by line
 * number, --strict, colors only on a terminal and never with NO_COLOR, and
 * --json output that jansson parses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "e2e/calls.h"
#include "e2e/run.h"

/* --- running the binary ------------------------------------------------------------ */

static char g_dir[256]; /* scratch directory of the whole suite */

/* Run rapport with args (NULL-terminated); stdin from in_path (NULL:
 * /dev/null); extra environment entries env ("K=V", NULL-terminated, or
 * NULL). stdout and stderr are captured. */
static rp_run run_env(const char *in_path, const char *const *env, const char *const *args) {
    return rp_run_in(g_dir, in_path, env, args);
}

static rp_run run(const char *const *args) { return run_env(NULL, NULL, args); }

/* Run rapport with stdout on a pseudo-terminal (120 columns); stderr is
 * captured in a file. */
static rp_run run_tty(const char *const *env, const char *const *args) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(master >= 0);
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    char slave_name[128];
    assert_int_equal(ptsname_r(master, slave_name, sizeof slave_name), 0);
    char errp[320];
    snprintf(errp, sizeof errp, "%s/stderr", g_dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setsid();
        int slave = open(slave_name, O_RDWR);
        int err = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (slave < 0 || err < 0 || in < 0) _exit(126);
        struct winsize ws = {.ws_row = 40, .ws_col = 120};
        ioctl(slave, TIOCSWINSZ, &ws);
        struct termios t;
        if (tcgetattr(slave, &t) == 0) { /* no "\n" -> "\r\n" translation */
            t.c_oflag &= ~(tcflag_t)OPOST;
            tcsetattr(slave, TCSANOW, &t);
        }
        dup2(in, 0);
        dup2(slave, 1);
        dup2(err, 2);
        close(master);
        rp_run_child_env(env);
        rp_run_child_exec(args);
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        struct pollfd p = {.fd = master, .events = POLLIN};
        int pr = poll(&p, 1, 30000);
        assert_true(pr > 0); /* no hang */
        if (n + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t got = read(master, buf + n, cap - n - 1);
        if (got <= 0) break; /* EIO once the child closed the slave */
        n += (size_t)got;
    }
    close(master);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    buf[n] = '\0';
    rp_run r = {.code = rp_h_status(st), .out = buf, .out_len = n};
    r.err = rp_slurp(errp, NULL);
    return r;
}

#define RUN(...) run((const char *const[]){__VA_ARGS__, NULL})

static void expect_code(const rp_run *r, int want) {
    if (r->code != want)
        fprintf(stderr, "exit %d, wanted %d\n-- stdout --\n%s\n-- stderr --\n%s\n", r->code, want,
                r->out, r->err);
    assert_int_equal(r->code, want);
}

/* A fresh empty path under the suite's directory. */
static void scratch_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", g_dir, name);
}

/* The demo's "now" for every test: recent relative to the wall clock, so
 * retention keeps the data, and fixed for the whole run. */
static char g_now[32];

/* --- suite setup ------------------------------------------------------------------- */

static int suite_setup(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/rp-cli-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(g_dir) == NULL) return -1;
    snprintf(g_now, sizeof g_now, "%lld", (long long)time(NULL) - 3600);
    return 0;
}

static int suite_teardown(void **state) {
    (void)state;
    if (g_dir[0]) nftw(g_dir, rp_h_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* --- tests: server mode ------------------------------------------------------------- */

/* ping answers; --json ping parses and says pong. */
static void test_ping(void **state) {
    (void)state;
    rp_h h;
    assert_int_equal(rp_h_start(&h, NULL), 0);
    rp_run r = RUN("--server", h.addr, "ping");
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "pong"));
    rp_run_free(&r);
    r = RUN("ping", "--server", h.addr, "--json"); /* global flags after the command too */
    expect_code(&r, 0);
    json_t *j = rp_json_parse(r.out);
    assert_true(json_is_true(json_object_get(j, "pong")));
    assert_true(json_is_integer(json_object_get(j, "time")));
    json_decref(j);
    rp_run_free(&r);
    assert_int_equal(rp_h_stop(&h), 0);
    rp_h_cleanup(&h);
}

/* put -> get round trip, patch, event, issue, context, merge, forget. */
static void test_put_get(void **state) {
    (void)state;
    rp_h h;
    assert_int_equal(rp_h_start(&h, NULL), 0);
    rp_run r = RUN("--server", h.addr, "put",
                    "{\"id\":\"cli-1\",\"name\":\"Ana Lopez\",\"language\":\"es\","
                    "\"phones\":[\"415.555.0101\"],\"emails\":[\"Ana@Example.com\"]}");
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "version"));
    rp_run_free(&r);
    r = RUN("--server", h.addr, "--json", "get", "cli-1");
    expect_code(&r, 0);
    json_t *j = rp_json_parse(r.out);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "Ana Lopez");
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "phones"), 0)),
                        "+14155550101");
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "emails"), 0)),
                        "ana@example.com");
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
    json_decref(j);
    rp_run_free(&r);
    /* readable form: the header line has the name and the language */
    r = RUN("--server", h.addr, "get", "cli-1");
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "Ana Lopez"));
    assert_non_null(strstr(r.out, "Spanish"));
    assert_null(strchr(r.out, '\033')); /* a pipe: no colors */
    rp_run_free(&r);
    r = RUN("--server", h.addr, "patch", "cli-1", "{\"tier\":\"gold\"}");
    expect_code(&r, 0);
    rp_run_free(&r);
    /* event from stdin */
    char evp[320];
    scratch_path(evp, sizeof evp, "event.json");
    char ev[256];
    snprintf(ev, sizeof ev, "{\"ts\":%s,\"channel\":\"phone\",\"kind\":\"contact\",\"topic\":\"billing\","
             "\"outcome\":\"unresolved\",\"summary\":\"Charged twice\"}", g_now);
    rp_write_file(evp, ev);
    r = run_env(evp, NULL, (const char *const[]){"--server", h.addr, "event", "cli-1", NULL});
    expect_code(&r, 0);
    rp_run_free(&r);
    r = RUN("--server", h.addr, "issue", "cli-1",
            "{\"issue_id\":\"T-1\",\"topic\":\"billing\",\"status\":\"open\",\"summary\":\"Double charge\"}");
    expect_code(&r, 0);
    rp_run_free(&r);
    /* the card, found by the phone in another format */
    r = RUN("--server", h.addr, "context", "--phone", "+1 (415) 555-0101");
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "LIKELY REASONS"));
    assert_non_null(strstr(r.out, "billing"));
    assert_non_null(strstr(r.out, "Charged twice"));
    assert_non_null(strstr(r.out, "T-1"));
    assert_non_null(strstr(r.out, "gold"));
    rp_run_free(&r);
    r = RUN("--server", h.addr, "history", "cli-1");
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "Charged twice"));
    rp_run_free(&r);
    r = RUN("--server", h.addr, "issues", "cli-1");
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "Double charge"));
    rp_run_free(&r);
    r = RUN("--server", h.addr, "route", "--phone", "4155550101");
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "cli-1"));
    rp_run_free(&r);
    /* merge a duplicate, then the old id answers as the survivor */
    r = RUN("--server", h.addr, "put", "{\"id\":\"cli-2\",\"name\":\"Ana L.\"}");
    expect_code(&r, 0);
    rp_run_free(&r);
    r = RUN("--server", h.addr, "merge", "cli-2", "cli-1");
    expect_code(&r, 0);
    rp_run_free(&r);
    r = RUN("--server", h.addr, "--json", "get", "cli-2");
    expect_code(&r, 0);
    j = rp_json_parse(r.out);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "cli-1");
    json_decref(j);
    rp_run_free(&r);
    r = RUN("--server", h.addr, "forget", "cli-1");
    expect_code(&r, 0);
    rp_run_free(&r);
    r = RUN("--server", h.addr, "get", "cli-1");
    expect_code(&r, 1);
    rp_run_free(&r);
    assert_int_equal(rp_h_stop(&h), 0);
    rp_h_cleanup(&h);
}

/* Exit codes: not found 1, usage 2, server down 3. */
static void test_exit_codes(void **state) {
    (void)state;
    rp_h h;
    assert_int_equal(rp_h_start(&h, NULL), 0);
    rp_run r = RUN("--server", h.addr, "get", "nobody");
    expect_code(&r, 1);
    assert_non_null(strstr(r.err, "NOT_FOUND"));
    rp_run_free(&r);
    r = RUN("--server", h.addr, "context", "--phone", "+1 212 555 0199");
    expect_code(&r, 1); /* an unknown caller: found false */
    assert_non_null(strstr(r.out, "Unknown caller"));
    assert_non_null(strstr(r.out, "first_contact"));
    rp_run_free(&r);
    r = RUN("--server", h.addr, "--json", "route", "--phone", "+1 212 555 0199");
    expect_code(&r, 1);
    json_t *j = rp_json_parse(r.out);
    assert_true(json_is_false(json_object_get(j, "found")));
    json_decref(j);
    rp_run_free(&r);
    r = RUN("--server", h.addr, "lookup", "--email", "nobody@example.com");
    expect_code(&r, 1);
    rp_run_free(&r);
    r = RUN("--server", h.addr, "context", "--id", "nobody");
    expect_code(&r, 1);
    rp_run_free(&r);
    /* usage errors: caught before any connection */
    const char *const *usage[] = {
        (const char *const[]){NULL},
        (const char *const[]){"frobnicate", NULL},
        (const char *const[]){"--bogus", "ping", NULL},
        (const char *const[]){"context", NULL},
        (const char *const[]){"context", "--phone", "1", "--email", "a@b.co", NULL},
        (const char *const[]){"context", "--id", "x", "--at", "yesterday", NULL},
        (const char *const[]){"history", "x", "--limit", "0", NULL},
        (const char *const[]){"get", NULL},
        (const char *const[]){"get", "a", "b", NULL},
        (const char *const[]){"merge", "a", NULL},
        (const char *const[]){"put", "{\"name\":\"no id\"}", NULL},
        (const char *const[]){"put", "{not json", NULL},
        (const char *const[]){"put", "[1,2]", NULL},
        (const char *const[]){"demo", "--events", "9-3", NULL},
        (const char *const[]){"ping", "--server", NULL},
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        r = run(usage[i]);
        if (r.code != 2) fprintf(stderr, "usage case %zu\n", i);
        expect_code(&r, 2);
        assert_true(r.err[0] != '\0'); /* said why */
        rp_run_free(&r);
    }
    /* a request the server refuses as invalid is a usage error too */
    r = RUN("--server", h.addr, "event", "x", "{\"ts\":1,\"channel\":\"fax\",\"kind\":\"contact\"}");
    expect_code(&r, 2);
    assert_non_null(strstr(r.err, "BAD_REQUEST"));
    rp_run_free(&r);
    /* help: exit 0, documents the exit codes */
    r = RUN("--help");
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "exit codes"));
    assert_non_null(strstr(r.out, "import"));
    rp_run_free(&r);
    r = RUN("context", "--help");
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "--phone"));
    rp_run_free(&r);
    /* server down: exit 3 with a clear message */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", rp_h_free_port());
    r = RUN("--server", addr, "ping");
    expect_code(&r, 3);
    assert_non_null(strstr(r.err, "cannot connect"));
    rp_run_free(&r);
    assert_int_equal(rp_h_stop(&h), 0);
    r = RUN("--server", h.addr, "get", "x");
    expect_code(&r, 3);
    rp_run_free(&r);
    rp_h_cleanup(&h);
}

/* Generate demo data into path (customers n). */
static void demo_file(const char *path, const char *n) {
    char outp[320];
    snprintf(outp, sizeof outp, "%s/stdout", g_dir);
    rp_run r = RUN("demo", "--customers", n, "--seed", "7", "--now", g_now, "--events", "5-60");
    expect_code(&r, 0);
    rp_run_free(&r);
    assert_int_equal(rename(outp, path), 0);
}

static void expect_same_file(const char *a, const char *b) { assert_true(rp_expect_same_file(a, b) > 0); }

/* export -> import into an empty data directory -> export: same bytes; and
 * a read-only --data export while rapportd runs on the directory agrees. */
static void test_export_import_roundtrip(void **state) {
    (void)state;
    rp_h h;
    assert_int_equal(rp_h_start(&h, NULL), 0);
    char demo[320], e1[320], e2[320], e3[320], dir[320];
    scratch_path(demo, sizeof demo, "demo.ndjson");
    scratch_path(e1, sizeof e1, "e1.ndjson");
    scratch_path(e2, sizeof e2, "e2.ndjson");
    scratch_path(e3, sizeof e3, "e3.ndjson");
    scratch_path(dir, sizeof dir, "roundtrip-data");
    demo_file(demo, "200");
    rp_run r = RUN("--server", h.addr, "import", demo);
    expect_code(&r, 0);
    assert_non_null(strstr(r.err, "imported"));
    assert_non_null(strstr(r.err, "0 skipped"));
    assert_null(strstr(r.err, "\r")); /* no progress line in a pipe */
    rp_run_free(&r);
    r = RUN("--server", h.addr, "export", e1);
    expect_code(&r, 0);
    rp_run_free(&r);
    r = RUN("--data", h.data, "export", e3); /* read-only, beside the server */
    expect_code(&r, 0);
    rp_run_free(&r);
    expect_same_file(e1, e3);
    r = RUN("--data", dir, "import", e1);
    expect_code(&r, 0);
    rp_run_free(&r);
    r = RUN("--data", dir, "export"); /* to stdout */
    expect_code(&r, 0);
    FILE *f = fopen(e2, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(r.out, 1, r.out_len, f), r.out_len);
    assert_int_equal(fclose(f), 0);
    rp_run_free(&r);
    expect_same_file(e1, e2);
    /* every line is a JSON object with a type; 200 customers */
    size_t n;
    char *text = rp_slurp(e1, &n);
    int customers = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *j = rp_json_parse(line);
        const char *t = json_string_value(json_object_get(j, "type"));
        assert_non_null(t);
        if (strcmp(t, "customer") == 0) customers++;
        json_decref(j);
    }
    free(text);
    assert_int_equal(customers, 200);
    /* the imported demo answers: customer 8's phone in its demo format */
    r = RUN("demo", "--seed", "7", "--phone-of", "8");
    expect_code(&r, 0);
    char phone[64];
    snprintf(phone, sizeof phone, "%.*s", (int)strcspn(r.out, "\n"), r.out);
    rp_run_free(&r);
    r = RUN("--server", h.addr, "--json", "context", "--phone", phone);
    expect_code(&r, 0);
    json_t *j = rp_json_parse(r.out);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "customer"), "id")),
                        "c0000008");
    json_t *reasons = json_object_get(j, "likely_reasons");
    assert_true(json_array_size(reasons) > 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(reasons, 0), "topic")),
                        "delivery");
    json_decref(j);
    rp_run_free(&r);
    /* a shared household line: customer 50 also lists customer 49's phone */
    r = RUN("demo", "--seed", "7", "--phone-of", "49");
    expect_code(&r, 0);
    snprintf(phone, sizeof phone, "%.*s", (int)strcspn(r.out, "\n"), r.out);
    rp_run_free(&r);
    r = RUN("--server", h.addr, "context", "--phone", phone);
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "Ambiguous caller"));
    assert_non_null(strstr(r.out, "c0000049"));
    assert_non_null(strstr(r.out, "c0000050"));
    rp_run_free(&r);
    assert_int_equal(rp_h_stop(&h), 0);
    rp_h_cleanup(&h);
}

/* Bad lines are reported with their number and skipped; --strict stops at
 * the first one with the good records before it kept and nothing after. */
static void test_bad_lines(void **state) {
    (void)state;
    rp_h h;
    assert_int_equal(rp_h_start(&h, NULL), 0);
    char path[320];
    scratch_path(path, sizeof path, "bad.ndjson");
    rp_write_file(path,
               "{\"type\":\"customer\",\"id\":\"bad-1\",\"name\":\"B One\"}\n"           /* 1 */
               "{\"type\":\"event\",\"customer_id\":\"bad-1\",\"ts\":1790000000,"
               "\"channel\":\"phone\",\"kind\":\"contact\"}\n"                             /* 2 */
               "{not json\n"                                                               /* 3 */
               "\n"                                                                        /* 4 */
               "{\"type\":\"event\",\"customer_id\":\"bad-1\",\"ts\":1790000001,"
               "\"channel\":\"fax\",\"kind\":\"contact\"}\n"                               /* 5 */
               "[1,2]\n"                                                                   /* 6 */
               "{\"type\":\"customer\",\"id\":\"bad-2\",\"name\":\"B Two\"}\n");          /* 7 */
    rp_run r = RUN("--server", h.addr, "import", path);
    expect_code(&r, 3); /* records were skipped, and no --allow-skips */
    assert_non_null(strstr(r.err, "3 record(s) skipped (pass --allow-skips"));
    assert_non_null(strstr(r.err, "line 3:"));
    assert_non_null(strstr(r.err, "line 5:"));
    assert_non_null(strstr(r.err, "fax"));
    assert_non_null(strstr(r.err, "line 6:"));
    assert_null(strstr(r.err, "line 4:")); /* a blank line is not an error */
    assert_non_null(strstr(r.err, "3 records imported, 3 skipped"));
    assert_true(strstr(r.err, "line 3:") < strstr(r.err, "line 5:")); /* in file order */
    rp_run_free(&r);
    r = RUN("--server", h.addr, "get", "bad-2");
    expect_code(&r, 0);
    rp_run_free(&r);
    /* --json: the summary for scripts on stdout */
    r = RUN("--server", h.addr, "--json", "import", "--allow-skips", path);
    expect_code(&r, 0); /* skipping on purpose */
    assert_null(strstr(r.err, "--allow-skips"));
    json_t *j = rp_json_parse(r.out);
    assert_int_equal(json_integer_value(json_object_get(j, "imported")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "skipped")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "lines")), 7);
    assert_true(json_is_false(json_object_get(j, "stopped")));
    json_decref(j);
    rp_run_free(&r);

    /* --strict, into a data directory and through the server */
    char dir[320];
    scratch_path(dir, sizeof dir, "strict-data");
    r = RUN("--data", dir, "import", "--strict", path);
    expect_code(&r, 3);
    assert_non_null(strstr(r.err, "line 3:"));
    assert_null(strstr(r.err, "line 5:")); /* stopped before */
    assert_non_null(strstr(r.err, "2 records imported"));
    rp_run_free(&r);
    r = RUN("--data", dir, "get", "bad-1");
    expect_code(&r, 0);
    rp_run_free(&r);
    r = RUN("--data", dir, "get", "bad-2");
    expect_code(&r, 1); /* nothing after the bad line */
    rp_run_free(&r);

    /* a record the server refuses, in the middle of a batch */
    scratch_path(path, sizeof path, "strict.ndjson");
    rp_write_file(path,
               "{\"type\":\"customer\",\"id\":\"st-1\",\"name\":\"S One\"}\n"
               "{\"type\":\"customer\",\"id\":\"st-2\",\"name\":\"S Two\"}\n"
               "{\"type\":\"event\",\"customer_id\":\"nobody\",\"ts\":1790000000,"
               "\"channel\":\"phone\",\"kind\":\"contact\"}\n"
               "{\"type\":\"customer\",\"id\":\"st-3\",\"name\":\"S Three\"}\n");
    r = RUN("--server", h.addr, "import", "--strict", path);
    expect_code(&r, 3);
    assert_non_null(strstr(r.err, "line 3:"));
    assert_non_null(strstr(r.err, "NOT_FOUND"));
    rp_run_free(&r);
    r = RUN("--server", h.addr, "get", "st-2");
    expect_code(&r, 0); /* the good records before it are in */
    rp_run_free(&r);
    r = RUN("--server", h.addr, "get", "st-3");
    expect_code(&r, 1);
    rp_run_free(&r);
    /* from stdin */
    r = run_env(path, NULL, (const char *const[]){"--server", h.addr, "import", "-", NULL});
    expect_code(&r, 3);
    assert_non_null(strstr(r.err, "line 3:"));
    rp_run_free(&r);
    /* the example: nothing but bad lines, on stdin, either mode */
    char junk[320];
    scratch_path(junk, sizeof junk, "junk.ndjson");
    rp_write_file(junk, "a\nb\n");
    r = run_env(junk, NULL, (const char *const[]){"--data", dir, "import", "-", NULL});
    expect_code(&r, 3);
    assert_non_null(strstr(r.err, "0 records imported, 2 skipped"));
    rp_run_free(&r);
    r = run_env(junk, NULL, (const char *const[]){"--data", dir, "import", "--allow-skips", "-", NULL});
    expect_code(&r, 0);
    rp_run_free(&r);
    r = run_env(junk, NULL, (const char *const[]){"--server", h.addr, "import", "-", NULL});
    expect_code(&r, 3);
    rp_run_free(&r);
    /* without skips, --allow-skips changes nothing */
    rp_write_file(junk, "{\"type\":\"customer\",\"id\":\"ok-1\"}\n");
    r = run_env(junk, NULL, (const char *const[]){"--server", h.addr, "import", "--allow-skips", "-", NULL});
    expect_code(&r, 0);
    rp_run_free(&r);
    r = RUN("--server", h.addr, "get", "st-3");
    expect_code(&r, 0);
    rp_run_free(&r);
    /* a missing file is a usage error */
    r = RUN("--server", h.addr, "import", "/nonexistent/file.ndjson");
    expect_code(&r, 2);
    rp_run_free(&r);
    assert_int_equal(rp_h_stop(&h), 0);
    rp_h_cleanup(&h);
}

/* A UTF-8 BOM opening the file (as Windows tools write it) is not a bad
 * line: through the server, into a data directory and from stdin. */
static void test_import_bom(void **state) {
    (void)state;
    rp_h h;
    assert_int_equal(rp_h_start(&h, NULL), 0);
    char path[320], dir[320];
    scratch_path(path, sizeof path, "bom.ndjson");
    scratch_path(dir, sizeof dir, "bom-data");
    rp_write_file(path, "\xEF\xBB\xBF{\"type\":\"customer\",\"id\":\"bom-1\",\"name\":\"B\"}\r\n"
                     "{\"type\":\"customer\",\"id\":\"bom-2\",\"name\":\"C\"}\r\n");
    rp_run r = RUN("--server", h.addr, "import", path);
    expect_code(&r, 0);
    assert_non_null(strstr(r.err, "2 records imported, 0 skipped"));
    rp_run_free(&r);
    r = RUN("--data", dir, "import", path);
    expect_code(&r, 0);
    assert_non_null(strstr(r.err, "2 records imported, 0 skipped"));
    rp_run_free(&r);
    r = run_env(path, NULL, (const char *const[]){"--data", dir, "import", "-", NULL});
    expect_code(&r, 0);
    rp_run_free(&r);
    r = RUN("--server", h.addr, "get", "bom-1");
    expect_code(&r, 0);
    rp_run_free(&r);
    /* a BOM that does not open the file is part of its line: skipped */
    rp_write_file(path, "{\"type\":\"customer\",\"id\":\"bom-3\"}\n"
                     "\xEF\xBB\xBF{\"type\":\"customer\",\"id\":\"bom-4\"}\n");
    r = RUN("--server", h.addr, "import", path);
    expect_code(&r, 3);
    assert_non_null(strstr(r.err, "line 2:"));
    rp_run_free(&r);
    assert_int_equal(rp_h_stop(&h), 0);
    rp_h_cleanup(&h);
}

/* --- tests: data directory mode -------------------------------------------------------- */

static void test_data_mode(void **state) {
    (void)state;
    char dir[320], missing[320];
    scratch_path(dir, sizeof dir, "local-data");
    scratch_path(missing, sizeof missing, "no-such-store");
    /* reading a directory with no store: a store error, nothing created */
    rp_run r = RUN("--data", missing, "get", "x");
    expect_code(&r, 3);
    rp_run_free(&r);
    struct stat st;
    assert_int_not_equal(stat(missing, &st), 0);
    r = RUN("--data", dir, "put", "{\"id\":\"loc-1\",\"name\":\"Local One\",\"phones\":[\"(212) 555-0142\"]}");
    expect_code(&r, 0);
    rp_run_free(&r);
    r = RUN("--data", dir, "--json", "lookup", "--phone", "tel:+12125550142");
    expect_code(&r, 0);
    json_t *j = rp_json_parse(r.out);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "candidates"), 0), "customer_id")),
        "loc-1");
    json_decref(j);
    rp_run_free(&r);
    r = RUN("--data", dir, "ping");
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "pong"));
    rp_run_free(&r);
    r = RUN("--data", dir, "--json", "stats");
    expect_code(&r, 0);
    j = rp_json_parse(r.out);
    assert_int_equal(json_integer_value(json_object_get(j, "customers")), 1);
    json_decref(j);
    rp_run_free(&r);
    /* the context card in --data mode: no audit line among the output */
    r = RUN("--data", dir, "context", "--id", "loc-1");
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "Local One"));
    assert_null(strstr(r.err, "audit"));
    rp_run_free(&r);
    /* --config: default_country changes how a national number reads */
    char conf[320];
    scratch_path(conf, sizeof conf, "cli.conf");
    rp_write_file(conf, "default_country = GB\n");
    r = RUN("--data", dir, "--config", conf, "put",
            "{\"id\":\"loc-2\",\"name\":\"Local Two\",\"phones\":[\"020 7946 0958\"]}");
    expect_code(&r, 0);
    rp_run_free(&r);
    r = RUN("--data", dir, "--json", "get", "loc-2");
    expect_code(&r, 0);
    j = rp_json_parse(r.out);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "phones"), 0)),
                        "+442079460958");
    json_decref(j);
    rp_run_free(&r);
    r = RUN("--data", dir, "--config", "/nonexistent.conf", "ping");
    expect_code(&r, 2);
    rp_run_free(&r);
}

/* --- tests: one writer per data directory -------------------------------------------- */

/* A second rapportd on a data directory that a running one holds is
 * refused at start, naming the first; `rapport --data` beside it may read
 * but not write; a killed server leaves the directory free. */
static void test_one_writer_per_directory(void **state) {
    (void)state;
    rp_h h;
    assert_int_equal(rp_h_start(&h, NULL), 0);
    rp_run r = RUN("--server", h.addr, "put", "{\"id\":\"lock-1\",\"name\":\"Held Once\"}");
    expect_code(&r, 0);
    rp_run_free(&r);

    rp_h second = h; /* same data, its own ports, config and log */
    snprintf(second.conf, sizeof second.conf, "%s/second.conf", h.dir);
    snprintf(second.log, sizeof second.log, "%s/second.log", h.dir);
    assert_int_equal(rp_h_pick_ports(&second), 0);
    assert_int_equal(rp_h_write_config(&second), 0);
    assert_int_equal(rp_h_spawn(&second), 0);
    int code = rp_h_wait_exit(&second, 30000);
    char want[64];
    snprintf(want, sizeof want, "pid %ld", (long)h.pid);
    if (code != 1 || !rp_h_log_has(&second, want) || !rp_h_log_has(&second, "code=CONFLICT")) {
        rp_h_dump_log(&second);
        fail_msg("second rapportd on the same data: exit %d, expected 1 with a refusal naming %s", code, want);
    }
    assert_true(rp_h_log_has(&second, "rapportd"));

    /* the first goes on serving; reading beside it is fine ... */
    r = RUN("--server", h.addr, "get", "lock-1");
    expect_code(&r, 0);
    rp_run_free(&r);
    r = RUN("--data", h.data, "get", "lock-1");
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "Held Once"));
    rp_run_free(&r);
    /* ... writing beside it is not */
    r = RUN("--data", h.data, "put", "{\"id\":\"lock-2\",\"name\":\"Held Twice\"}");
    expect_code(&r, 3);
    assert_non_null(strstr(r.err, want));
    rp_run_free(&r);

    /* kill -9: the kernel drops the lock with the process */
    rp_h_kill9(&h);
    r = RUN("--data", h.data, "put", "{\"id\":\"lock-2\",\"name\":\"Held Twice\"}");
    expect_code(&r, 0);
    rp_run_free(&r);
    assert_int_equal(rp_h_restart(&h), 0);
    r = RUN("--server", h.addr, "get", "lock-2");
    expect_code(&r, 0);
    rp_run_free(&r);
    assert_int_equal(rp_h_stop(&h), 0);
    rp_h_cleanup(&h);
}

/* --- tests: terminal output ---------------------------------------------------------- */

static void test_colors(void **state) {
    (void)state;
    char dir[320], demo[320];
    scratch_path(dir, sizeof dir, "color-data");
    scratch_path(demo, sizeof demo, "color.ndjson");
    demo_file(demo, "16");
    rp_run r = RUN("--data", dir, "import", demo);
    expect_code(&r, 0);
    rp_run_free(&r);
    /* on a terminal: ANSI colors, and the card's sections */
    r = run_tty(NULL, (const char *const[]){"--data", dir, "context", "--id", "c0000008", NULL});
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "\033["));
    assert_non_null(strstr(r.out, "LIKELY REASONS"));
    assert_non_null(strstr(r.out, "CUES"));
    assert_non_null(strstr(r.out, "RECENT EVENTS"));
    assert_non_null(strstr(r.out, "OPEN ISSUES"));
    assert_non_null(strstr(r.out, "ATTRIBUTES"));
    /* reasons and cues come before WHO */
    assert_true(strstr(r.out, "LIKELY REASONS") < strstr(r.out, "WHO"));
    assert_true(strstr(r.out, "CUES") < strstr(r.out, "WHO"));
    /* lines fit the 120 columns of the terminal (escapes not counted) */
    size_t col = 0, widest = 0;
    for (const char *p = r.out; *p; p++) {
        if (*p == '\033') {
            while (*p && *p != 'm') p++;
            if (!*p) break;
            continue;
        }
        if (*p == '\n') col = 0;
        else if (((unsigned char)*p & 0xC0) != 0x80 && ++col > widest) widest = col;
    }
    assert_true(widest <= 120);
    rp_run_free(&r);
    /* NO_COLOR on a terminal: none */
    r = run_tty((const char *const[]){"NO_COLOR=1", NULL},
                (const char *const[]){"--data", dir, "context", "--id", "c0000008", NULL});
    expect_code(&r, 0);
    assert_null(strchr(r.out, '\033'));
    assert_non_null(strstr(r.out, "LIKELY REASONS"));
    rp_run_free(&r);
    /* a pipe: none */
    r = RUN("--data", dir, "context", "--id", "c0000008");
    expect_code(&r, 0);
    assert_null(strchr(r.out, '\033'));
    assert_non_null(strstr(r.out, "broken_promise"));
    rp_run_free(&r);
    /* --json on a terminal is still plain JSON */
    r = run_tty(NULL, (const char *const[]){"--data", dir, "--json", "context", "--id", "c0000008", NULL});
    expect_code(&r, 0);
    assert_null(strchr(r.out, '\033'));
    json_t *j = rp_json_parse(r.out);
    assert_true(json_is_true(json_object_get(j, "found")));
    assert_true(json_array_size(json_object_get(j, "cues")) > 0);
    assert_true(json_is_object(json_object_get(j, "attributes")));
    json_decref(j);
    rp_run_free(&r);
    /* history and issues render as tables; --json history has the cursor */
    r = RUN("--data", dir, "--json", "history", "c0000008", "--limit", "2");
    expect_code(&r, 0);
    j = rp_json_parse(r.out);
    assert_int_equal(json_array_size(json_object_get(j, "events")), 2);
    const char *next = json_string_value(json_object_get(j, "next"));
    assert_non_null(next);
    char cursor[64];
    snprintf(cursor, sizeof cursor, "%s", next);
    json_decref(j);
    rp_run_free(&r);
    r = RUN("--data", dir, "history", "c0000008", "--limit", "2", "--before", cursor);
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "History of c0000008 - 2 events"));
    rp_run_free(&r);
}

/* demo is deterministic and needs no server. */
static void test_demo(void **state) {
    (void)state;
    rp_run a = RUN("demo", "--customers", "3", "--seed", "5", "--now", "1790000000");
    rp_run b = RUN("demo", "--customers", "3", "--seed", "5", "--now", "1790000000");
    expect_code(&a, 0);
    expect_code(&b, 0);
    assert_true(a.out_len > 0);
    assert_int_equal(a.out_len, b.out_len);
    assert_memory_equal(a.out, b.out, a.out_len);
    json_t *j = rp_json_parse(strtok(a.out, "\n"));
    assert_string_equal(json_string_value(json_object_get(j, "type")), "customer");
    json_decref(j);
    rp_run_free(&a);
    rp_run_free(&b);
}

/* --- service habits: RAPPORT_SERVER, pasteable hints, Ctrl-C, progress ------------ */

/* RAPPORT_SERVER names the server; a --server flag wins over it. */
static void test_server_env(void **state) {
    (void)state;
    rp_h h;
    assert_int_equal(rp_h_start(&h, NULL), 0);
    char env_ok[96], env_bad[] = "RAPPORT_SERVER=127.0.0.1:1";
    snprintf(env_ok, sizeof env_ok, "RAPPORT_SERVER=%s", h.addr);
    rp_run r = run_env(NULL, (const char *const[]){env_ok, NULL}, (const char *const[]){"ping", NULL});
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "pong"));
    rp_run_free(&r);
    r = run_env(NULL, (const char *const[]){env_bad, NULL}, (const char *const[]){"ping", NULL});
    expect_code(&r, 3); /* the env was used: nobody on port 1 */
    rp_run_free(&r);
    r = run_env(NULL, (const char *const[]){env_bad, NULL}, (const char *const[]){"--server", h.addr, "ping", NULL});
    expect_code(&r, 0); /* the flag wins */
    rp_run_free(&r);
    r = RUN("--help");
    assert_non_null(strstr(r.out, "RAPPORT_SERVER"));
    rp_run_free(&r);
    assert_int_equal(rp_h_stop(&h), 0);
    rp_h_cleanup(&h);
}

/* history's "more:" line is a command that can be pasted: the same --data
 * (or --server) and --limit, and the cursor; run as printed, it pages on. */
static void test_history_hint(void **state) {
    (void)state;
    char dir[320], demo[320], want[800];
    scratch_path(dir, sizeof dir, "hint data"); /* a space: the hint must quote it */
    scratch_path(demo, sizeof demo, "hint.ndjson");
    demo_file(demo, "16");
    rp_run r = RUN("--data", dir, "import", demo);
    expect_code(&r, 0);
    rp_run_free(&r);
    r = RUN("--data", dir, "history", "c0000008", "--limit", "2");
    expect_code(&r, 0);
    snprintf(want, sizeof want, "more: rapport --data '%s' history c0000008 --limit 2 --before ", dir);
    const char *more = strstr(r.out, want);
    if (more == NULL) fail_msg("no pasteable hint in:\n%s\nwanted: %s", r.out, want);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s/%.*s", RP_BINARY_DIR, (int)strcspn(more + 6, "\n"), more + 6);
    rp_run_free(&r);
    int st;
    char *out = rp_sh(&st, "%s", cmd); /* through a shell, as pasted */
    assert_int_equal(st, 0);
    rp_expect_has(out, "History of c0000008 - 2 events");
    free(out);
    /* through a server: --server is in the hint (never the token) */
    rp_h h;
    assert_int_equal(rp_h_start(&h, "token = admin:hint-admin-0123456789\n"), 0);
    rp_run imp = run_env(demo, NULL, (const char *const[]){"--server", h.addr, "--token",
                                                            "hint-admin-0123456789", "import", "-", NULL});
    expect_code(&imp, 0);
    rp_run_free(&imp);
    r = run_env(NULL, (const char *const[]){"RAPPORT_TOKEN=hint-admin-0123456789", NULL},
                (const char *const[]){"--server", h.addr, "history", "c0000008", "--limit", "2", NULL});
    expect_code(&r, 0);
    snprintf(want, sizeof want, "more: rapport --server %s history c0000008 --limit 2 --before ", h.addr);
    rp_expect_has(r.out, want);
    assert_null(strstr(r.out, "hint-admin"));
    rp_run_free(&r);
    assert_int_equal(rp_h_stop(&h), 0);
    rp_h_cleanup(&h);
}

/* The number of customers the server holds. */
static uint64_t server_customers(const rp_h *h) {
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    msgpack_object res = ok_call(c, "stats", "{}");
    uint64_t n = mp_u64(mp_get(&res, "customers"));
    rp_client_close(c);
    return n;
}

/* Write n customer lines, ids from first, to fd. */
static void write_customers(int fd, int first, int n) {
    char line[160];
    for (int i = first; i < first + n; i++) {
        int len = snprintf(line, sizeof line,
                           "{\"type\":\"customer\",\"id\":\"sig%06d\",\"name\":\"Sig %d\"}\n", i, i);
        for (int off = 0; off < len;) {
            ssize_t w = write(fd, line + off, (size_t)(len - off));
            assert_true(w > 0);
            off += (int)w;
        }
    }
}

/* Ctrl-C in the middle of an import from a pipe that stays open: the
 * summary names what was written (it matches the server's count), exit 130. */
static void test_import_sigint(void **state) {
    (void)state;
    rp_h h;
    assert_int_equal(rp_h_start(&h, NULL), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    char errp[320];
    scratch_path(errp, sizeof errp, "sigint.err");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[1]);
        int err = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (err < 0) _exit(126);
        dup2(p[0], 0);
        dup2(err, 2);
        rp_run_child_env(NULL);
        rp_run_child_exec((const char *const[]){"--server", h.addr, "import", "-", NULL});
    }
    close(p[0]);
    write_customers(p[1], 0, 3000); /* several batches of 500 */
    long long end = rp_h_now_ms() + 20000;
    while (server_customers(&h) == 0) { /* some batches are in */
        if (rp_h_now_ms() > end) fail_msg("the import never wrote anything");
        rp_h_sleep_ms(5);
    }
    assert_int_equal(kill(pid, SIGINT), 0); /* the pipe is still open */
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    close(p[1]);
    char *err = rp_slurp(errp, NULL);
    if (rp_h_status(st) != 130) fail_msg("exit %d, wanted 130; stderr:\n%s", rp_h_status(st), err);
    char want[128];
    snprintf(want, sizeof want, "rapport import: INTERRUPTED: %llu records imported, 0 skipped",
             (unsigned long long)server_customers(&h));
    if (strstr(err, want) == NULL) fail_msg("stderr:\n%s\nwanted: %s", err, want);
    free(err);
    assert_int_equal(rp_h_stop(&h), 0);
    rp_h_cleanup(&h);
}

/* Run rapport with stderr on a pseudo-terminal (stdin from in_path, stdout
 * captured); returns what the terminal showed in r.err. */
static rp_run run_tty_err(const char *in_path, const char *const *args) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(master >= 0);
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    char slave_name[128], outp[320];
    assert_int_equal(ptsname_r(master, slave_name, sizeof slave_name), 0);
    snprintf(outp, sizeof outp, "%s/stdout", g_dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setsid();
        int slave = open(slave_name, O_RDWR);
        int out = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int in = open(in_path, O_RDONLY);
        if (slave < 0 || out < 0 || in < 0) _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(slave, 2);
        close(master);
        rp_run_child_env(NULL);
        rp_run_child_exec(args);
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        struct pollfd pf = {.fd = master, .events = POLLIN};
        assert_true(poll(&pf, 1, 30000) > 0); /* no hang */
        if (n + 4096 > cap) buf = realloc(buf, cap *= 2), assert_non_null(buf);
        ssize_t got = read(master, buf + n, cap - n - 1);
        if (got <= 0) break;
        n += (size_t)got;
    }
    close(master);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    buf[n] = '\0';
    rp_run r = {.code = rp_h_status(st), .err = buf};
    r.out = rp_slurp(outp, &r.out_len);
    return r;
}

/* import: a progress bar with rate and ETA on a terminal; off a terminal
 * nothing but the summary line. */
static void test_import_progress(void **state) {
    (void)state;
    char demo[320], d1[320], d2[320];
    scratch_path(demo, sizeof demo, "progress.ndjson");
    scratch_path(d1, sizeof d1, "progress-tty");
    scratch_path(d2, sizeof d2, "progress-file");
    demo_file(demo, "200");
    rp_run r = run_tty_err(demo, (const char *const[]){"--data", d1, "import", demo, NULL});
    expect_code(&r, 0);
    rp_expect_has(r.err, "importing [");
    rp_expect_has(r.err, "records/s, ETA ");
    rp_expect_has(r.err, "\r\033[K"); /* rewritten in place, and cleared */
    const char *sum = strstr(r.err, "rapport import: ");
    assert_non_null(sum);
    char want[64];
    snprintf(want, sizeof want, "%.*s", (int)strcspn(sum, ","), sum); /* "... N records imported" */
    rp_run_free(&r);
    r = RUN("--data", d2, "import", demo);
    expect_code(&r, 0);
    assert_null(strchr(r.err, '\r'));
    assert_null(strstr(r.err, "importing"));
    assert_int_equal(strncmp(r.err, want, strlen(want)), 0); /* the same summary, alone */
    assert_int_equal(strchr(r.err, '\n') - r.err + 1, (long)strlen(r.err)); /* one line */
    rp_run_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_put_get),
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_export_import_roundtrip),
        cmocka_unit_test(test_import_bom),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_data_mode),
        cmocka_unit_test(test_one_writer_per_directory),
        cmocka_unit_test(test_colors),
        cmocka_unit_test(test_demo),
        cmocka_unit_test(test_server_env),
        cmocka_unit_test(test_history_hint),
        cmocka_unit_test(test_import_sigint),
        cmocka_unit_test(test_import_progress),
    };
    return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
