/* fixture.h — a store on a fresh temporary directory, for the store tests.
 *
 * A test gets an fx from its setup: a mkdtemp directory (dir), the store's
 * data directory in it (data: dir itself, or a subdirectory of it), a small
 * config (cfg: 1 MiB initial map, 64 MiB max, async durability flushed
 * every 50 ms) and the store opened on it (s). The teardown closes the
 * store and removes the whole directory tree, whatever the test left in it.
 *
 *     static int setup(void **state) { return fx_setup(state, "/tmp/rp_x_XXXXXX"); }
 *     ...
 *     cmocka_unit_test_setup_teardown(test_x, setup, fx_teardown),
 *
 * A setup that needs other settings calls fx_new, changes f->cfg, then
 * fx_open_first. Tests that need only a directory use tmpdir_setup and
 * tmpdir_teardown (*state is the directory's path).
 *
 * Header-only (static inline), like tests/e2e/harness.h. Include after
 * <cmocka.h>.
 */
#ifndef RP_TEST_STORE_FIXTURE_H
#define RP_TEST_STORE_FIXTURE_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/error.h"
#include "store/store.h"

#define NOW ((int64_t)1732350000)
#define S(x) rp_str_c(x)

typedef struct fx {
    char dir[64];   /* the mkdtemp directory */
    char data[128]; /* the store's data directory: dir, or a subdirectory of it */
    rp_config cfg;
    rp_store *s;
} fx;

static inline int rp_fx_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

/* Remove dir and everything below it (links are removed, not followed). */
static inline int rm_rf(const char *dir) { return nftw(dir, rp_fx_rm_one, 16, FTW_DEPTH | FTW_PHYS); }

/* A zeroed fx with a fresh directory from tmpl (a mkdtemp template); the
 * store's data directory is dir/sub (sub NULL: dir itself) and cfg the
 * small config above. The store is not opened yet. NULL on failure. */
static inline fx *fx_new(const char *tmpl, const char *sub) {
    fx *f = calloc(1, sizeof *f);
    if (f == NULL) return NULL;
    snprintf(f->dir, sizeof f->dir, "%s", tmpl);
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return NULL;
    }
    if (sub != NULL)
        snprintf(f->data, sizeof f->data, "%s/%s", f->dir, sub);
    else
        snprintf(f->data, sizeof f->data, "%s", f->dir);
    rp_config_defaults(&f->cfg);
    snprintf(f->cfg.data_dir, sizeof f->cfg.data_dir, "%s", f->data);
    f->cfg.map_initial = 1u << 20;
    f->cfg.map_max = 64u << 20;
    f->cfg.durability = RP_DURABLE_ASYNC; /* fast; tests that need sync set it */
    f->cfg.async_flush_ms = 50;
    return f;
}

/* Open the store of a new fx for a cmocka setup: 0 and *state = f, or -1
 * (the reason on stderr; f freed, its directory removed). */
static inline int fx_open_first(fx *f, void **state) {
    rp_errbuf eb = {0};
    if (rp_store_open(&f->cfg, &f->s, &eb) != RP_OK) {
        fprintf(stderr, "open: %s\n", eb.msg);
        rm_rf(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

/* cmocka setup: a new fx from tmpl with its store open. */
static inline int fx_setup(void **state, const char *tmpl) {
    fx *f = fx_new(tmpl, NULL);
    if (f == NULL) return -1;
    return fx_open_first(f, state);
}

/* cmocka teardown: close the store, remove the directory. */
static inline int fx_teardown(void **state) {
    fx *f = *state;
    if (f == NULL) return 0;
    rp_store_close(f->s);
    rm_rf(f->dir);
    free(f);
    return 0;
}

/* Close the store (after which fx_open opens it again). */
static inline void fx_close(fx *f) {
    rp_store_close(f->s);
    f->s = NULL;
}

/* Open the store with f->cfg (after fx_close, or a change to f->cfg);
 * fails the test when it cannot. */
static inline void fx_open(fx *f) {
    rp_errbuf eb = {0};
    rp_err rc = rp_store_open(&f->cfg, &f->s, &eb);
    if (rc != RP_OK) fprintf(stderr, "open: %s\n", eb.msg);
    assert_int_equal(rc, RP_OK);
}

/* Close and open again with f->cfg (after a test changed it). */
static inline void fx_reopen(fx *f) {
    fx_close(f);
    fx_open(f);
}

/* cmocka setup for tests that need only a directory: *state is its path
 * (a mkdtemp from tmpl). */
static inline int tmpdir_setup(void **state, const char *tmpl) {
    char *dir = strdup(tmpl);
    if (dir == NULL || mkdtemp(dir) == NULL) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

/* cmocka teardown of tmpdir_setup: remove the directory, free the path. */
static inline int tmpdir_teardown(void **state) {
    int rc = rm_rf((const char *)*state);
    free(*state);
    return rc == 0 ? 0 : -1;
}

#endif
