/* demo_load.h — load the demo data set into an api in-process, and call
 * an op synchronously. Shared by bench_card and the digest differential
 * test (tests/cli/test_digest_diff.c); header-only, static functions.
 *
 * rp_dl_call: run op with params (one msgpack value) as the admin role and
 * wait for its reply. Returns the reply's code; *out_len (may be NULL) gets
 * the reply's length. Exits the process on params that do not unpack (a
 * caller's bug).
 * rp_dl_load: import NDJSON text (modified in place) in batches of 2,000
 * records through `import`. Returns RP_OK or the first failing batch's
 * code, with its message on stderr.
 */
#ifndef RP_DEMO_LOAD_H
#define RP_DEMO_LOAD_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "model/mpcheck.h"
#include "net/json.h"

typedef struct rp_dl_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    rp_err rc;
    size_t len;
    char msg[256];
} rp_dl_wait;

static void rp_dl_on_reply(void *arg, rp_err rc, const char *msg, const char *res, size_t len) {
    (void)res;
    rp_dl_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->len = len;
    snprintf(w->msg, sizeof w->msg, "%s", msg ? msg : "");
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static rp_err rp_dl_call(rp_api *api, const char *op, const char *params, size_t len, size_t *out_len) {
    const rp_api_op *o = rp_api_find(op, strlen(op));
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object obj;
    size_t off = 0;
    if (o == NULL || msgpack_unpack(params, len, &off, &z, &obj) != MSGPACK_UNPACK_SUCCESS) {
        fprintf(stderr, "demo_load: bad op or params for %s\n", op);
        exit(3);
    }
    rp_dl_wait w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    rp_api_call(api, o, RP_ROLE_ADMIN, "demo_load", &obj, rp_dl_on_reply, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    msgpack_zone_destroy(&z);
    if (w.rc != RP_OK) fprintf(stderr, "demo_load: %s: %s %s\n", op, rp_err_code(w.rc), w.msg);
    if (out_len) *out_len = w.len;
    return w.rc;
}

static rp_err rp_dl_load(rp_api *api, const rp_config *cfg, char *text) {
    rp_mpcheck_limits lim = rp_mpcheck_limits_from_config(cfg);
    msgpack_sbuffer batch, one;
    msgpack_sbuffer_init(&batch);
    msgpack_sbuffer_init(&one);
    rp_err rc = RP_OK;
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    while (line && rc == RP_OK) {
        msgpack_sbuffer_clear(&batch);
        msgpack_sbuffer_clear(&one);
        uint32_t n = 0;
        for (; line && n < 2000 && rc == RP_OK; line = strtok_r(NULL, "\n", &save), n++) {
            rp_errbuf eb = {0};
            rc = rp_json_to_msgpack(line, strlen(line), &lim, &one, &eb);
            if (rc != RP_OK) fprintf(stderr, "demo_load: demo line: %s\n", eb.msg);
        }
        if (rc != RP_OK) break;
        msgpack_packer pk;
        msgpack_packer_init(&pk, &batch, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "records", 7);
        msgpack_pack_array(&pk, n);
        msgpack_sbuffer_write(&batch, one.data, one.size);
        rc = rp_dl_call(api, "import", batch.data, batch.size, NULL);
    }
    msgpack_sbuffer_destroy(&batch);
    msgpack_sbuffer_destroy(&one);
    return rc;
}

#endif
