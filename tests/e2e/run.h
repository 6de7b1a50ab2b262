/* run.h — files, shell commands and the `rapport` binary, for the e2e suites.
 *
 *     char *text = rp_slurp(path, &len);          // a whole file (malloc'd)
 *     rp_write_file(path, "text");
 *     char *out = rp_sh(&status, "curl -sS %s", url);   // a shell command's stdout
 *     rp_run r = rp_run_in(dir, NULL, NULL, (const char *const[]){"ping", NULL});
 *     ... r.code, r.out, r.err ...
 *     rp_run_free(&r);
 *
 * `rapport` is the build's (RP_BINARY_DIR/rapport); it runs with stdin from
 * a file (or /dev/null), stdout and stderr into files, and RAPPORT_TOKEN and
 * NO_COLOR removed from its environment unless the test gives them.
 *
 * Header-only (static inline), like harness.h. Every helper fails the
 * current cmocka test on a broken expectation: include after <cmocka.h>.
 */
#ifndef RP_E2E_RUN_H
#define RP_E2E_RUN_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "e2e/harness.h"

/* Read a whole file into a NUL-terminated buffer (malloc'd); *len (may be
 * NULL) its size. Fails the test when the file cannot be read. */
static inline char *rp_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    assert_int_equal(ferror(f), 0);
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* Write text to path (created or truncated). */
static inline void rp_write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* Files a and b must hold the same bytes (both shown when they do not).
 * Returns their size. */
static inline size_t rp_expect_same_file(const char *a, const char *b) {
    size_t la, lb;
    char *x = rp_slurp(a, &la), *y = rp_slurp(b, &lb);
    if (la != lb || memcmp(x, y, la) != 0) fprintf(stderr, "-- %s --\n%s-- %s --\n%s", a, x, b, y);
    assert_int_equal(la, lb);
    assert_memory_equal(x, y, la);
    free(x);
    free(y);
    return la;
}

/* needle must occur in hay. */
static inline void rp_expect_has(const char *hay, const char *needle) {
    if (strstr(hay, needle) == NULL) fail_msg("expected\n  %s\nin\n  %s", needle, hay);
}

/* Parse text as one JSON document; fails the test if it is not JSON.
 * The caller json_decref's. */
static inline json_t *rp_json_parse(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (j == NULL) fprintf(stderr, "not JSON (%s): %s\n", e.text, text);
    assert_non_null(j);
    return j;
}

/* Run a shell command (printf-style); returns its stdout (malloc'd) and in
 * *status its exit status (128 when it did not exit). */
static inline char *rp_sh(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline char *rp_sh(int *status, const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_true(len >= 0 && (size_t)len < sizeof cmd);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, n = 0, got;
    char *out = malloc(cap);
    assert_non_null(out);
    while ((got = fread(out + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 == cap) out = realloc(out, cap *= 2), assert_non_null(out);
    }
    out[n] = '\0';
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    return out;
}

/* In a forked child: the environment the test asks for ("K=V" entries,
 * NULL-terminated, or NULL); NO_COLOR and RAPPORT_TOKEN are cleared unless
 * given. */
static inline void rp_run_child_env(const char *const *env) {
    unsetenv("NO_COLOR");
    unsetenv("RAPPORT_TOKEN");
    for (int i = 0; env && env[i]; i++) putenv((char *)env[i]);
}

/* In a forked child: exec rapport with args (NULL-terminated). */
static inline void rp_run_child_exec(const char *const *args) {
    char bin[512];
    snprintf(bin, sizeof bin, "%s/rapport", RP_BINARY_DIR);
    const char *argv[64] = {bin};
    int n = 1;
    for (int i = 0; args[i] && n < 63; i++) argv[n++] = args[i];
    argv[n] = NULL;
    execv(bin, (char *const *)argv);
    _exit(127);
}

/* Run rapport with args (NULL-terminated): stdin from in_path (NULL:
 * /dev/null), stdout into out_path (NULL: /dev/null), stderr into err_path,
 * extra environment env (see rp_run_child_env). Returns the exit status
 * (128 + signal when killed). */
static inline int rp_run_files(const char *in_path, const char *out_path, const char *err_path,
                               const char *const *env, const char *const *args) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
        int out = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0 || err < 0) _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        rp_run_child_env(env);
        rp_run_child_exec(args);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return rp_h_status(st);
}

typedef struct rp_run {
    int code;  /* exit status (128 + signal when killed) */
    char *out; /* stdout, NUL-terminated (malloc'd) */
    size_t out_len;
    char *err; /* stderr, NUL-terminated (malloc'd) */
} rp_run;

static inline void rp_run_free(rp_run *r) {
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

/* Run rapport with args (as rp_run_files), stdout and stderr into dir/stdout
 * and dir/stderr, and both read back. */
static inline rp_run rp_run_in(const char *dir, const char *in_path, const char *const *env,
                               const char *const *args) {
    char outp[400], errp[400];
    snprintf(outp, sizeof outp, "%s/stdout", dir);
    snprintf(errp, sizeof errp, "%s/stderr", dir);
    rp_run r = {.code = rp_run_files(in_path, outp, errp, env, args)};
    r.out = rp_slurp(outp, &r.out_len);
    r.err = rp_slurp(errp, NULL);
    return r;
}

#endif
