/* test_lock.c — the data directory's writer lock (store/lock.h).
 *
 * Other holders are real processes (fork); the parent and the child agree
 * on each step over pipes, never by sleeping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/fixture.h"
#include "store/lock.h"

static int setup_dir(void **state) { return tmpdir_setup(state, "/tmp/rp-test-lock-XXXXXX"); }

/* A child that takes the lock, reports "1" (or "0" on failure) on `up`,
 * then waits until `down` is closed and exits without releasing
 * explicitly (exit releases it). Returns the child's pid. */
static pid_t spawn_holder(const char *dir, int *up_r, int *down_w) {
    int up[2], down[2];
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        int fd = -1;
        char ok = rp_lock_acquire(dir, &fd, NULL) == RP_OK ? '1' : '0';
        if (write(up[1], &ok, 1) != 1) _exit(3);
        char c;
        while (read(down[0], &c, 1) > 0) {
        }
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    char ok = 0;
    assert_int_equal(read(up[0], &ok, 1), 1);
    assert_int_equal(ok, '1');
    *up_r = up[0];
    *down_w = down[1];
    return pid;
}

static void test_second_open_in_process_refused(void **state) {
    const char *dir = *state;
    int a = -1, b = -1;
    rp_errbuf eb = {0};
    assert_int_equal(rp_lock_acquire(dir, &a, &eb), RP_OK);
    assert_true(a >= 0);
    assert_int_equal(rp_lock_acquire(dir, &b, &eb), RP_CONFLICT);
    assert_int_equal(b, -1);
    char want[32];
    snprintf(want, sizeof want, "pid %ld", (long)getpid());
    assert_non_null(strstr(eb.msg, want));
    assert_non_null(strstr(eb.msg, "test_lock"));
    assert_non_null(strstr(eb.msg, dir));
    rp_lock_release(a);
    assert_int_equal(rp_lock_acquire(dir, &b, &eb), RP_OK);
    rp_lock_release(b);
}

static void test_other_process_named_then_released(void **state) {
    const char *dir = *state;
    int up, down, fd = -1;
    pid_t pid = spawn_holder(dir, &up, &down);
    rp_errbuf eb = {0};
    assert_int_equal(rp_lock_acquire(dir, &fd, &eb), RP_CONFLICT);
    char want[32];
    snprintf(want, sizeof want, "pid %ld", (long)pid);
    assert_non_null(strstr(eb.msg, want));
    close(down); /* the child exits */
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(up);
    assert_int_equal(rp_lock_acquire(dir, &fd, &eb), RP_OK);
    rp_lock_release(fd);
}

static void test_killed_holder_releases(void **state) {
    const char *dir = *state;
    int up, down, fd = -1;
    pid_t pid = spawn_holder(dir, &up, &down);
    assert_int_equal(rp_lock_acquire(dir, &fd, NULL), RP_CONFLICT);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    close(up);
    close(down);
    rp_errbuf eb = {0};
    assert_int_equal(rp_lock_acquire(dir, &fd, &eb), RP_OK);
    rp_lock_release(fd);
}

static void test_missing_directory_is_an_error(void **state) {
    char path[256];
    snprintf(path, sizeof path, "%s/no/such/dir", (char *)*state);
    int fd = -1;
    rp_errbuf eb = {0};
    rp_err rc = rp_lock_acquire(path, &fd, &eb);
    assert_int_not_equal(rc, RP_OK);
    assert_int_not_equal(rc, RP_CONFLICT);
    assert_int_equal(fd, -1);
    assert_non_null(strstr(eb.msg, RP_LOCK_FILE));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_second_open_in_process_refused, setup_dir, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_other_process_named_then_released, setup_dir, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_killed_holder_releases, setup_dir, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_missing_directory_is_an_error, setup_dir, tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
