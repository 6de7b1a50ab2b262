/* conn.c — the CLI's one backend: a rapportd connection or a local api.
 *
 * Both kinds answer the same calls with the same msgpack results, so every
 * command is written once:
 *
 *   - server: an rp_client (net/client.h). Calls and pipelined send/recv
 *     map one to one onto the client's; results live in the client until
 *     the next call.
 *   - local (--data DIR): the store opened in this process, an rp_api over
 *     it, and rp_api_call with role admin. Reads reply before rp_api_call
 *     returns; writes reply later, on the store's writer thread. Every call
 *     therefore gets a heap slot in a FIFO; the reply callback fills its
 *     slot (copying the result bytes) under a mutex and signals; recv waits
 *     for the oldest slot. A validation error can reply before an older
 *     write has committed, so slots, not arrival order, keep replies in
 *     request order.
 *
 * Local mode and audit: rp_api audits every read of personal data and every
 * forget (proto/METHODS.md, "Audit"). With no audit_log in the --config
 * file the lines would land on the CLI's stderr, among the
 * command's own output; a person with the data directory can read every
 * record anyway, so the CLI sends them to /dev/null unless the config file
 * names an audit log.
 *
 * Limits: a local call copies its result once (the reply callback runs
 * while the api still owns the bytes). Pipelining depth is the caller's:
 * import keeps two to four calls in flight.
 */
#include "cli/conn.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "net/client.h"
#include "store/applied.h"
#include "store/store.h"

/* One local call in flight. */
typedef struct local_call {
    struct local_call *next;
    bool done;
    rp_err rc;
    char msg[RP_ERRMSG_MAX];
    char *data; /* result bytes (malloc'd), NULL on error */
    size_t len;
} local_call;

struct rp_cli_conn {
    bool local;
    rp_mpcheck_limits lim;
    /* server */
    rp_client *client;
    /* local */
    rp_store *store;
    rp_api *api;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    local_call *head, *tail; /* FIFO of calls not yet received */
    unsigned pending;
    char *cur;               /* bytes of the reply handed out last */
    msgpack_zone zone;       /* its unpacked object */
};

/* --- opening and closing ----------------------------------------------------- */

rp_err rp_cli_config(const rp_cli *cli, rp_config *cfg, rp_errbuf *eb) {
    rp_config_defaults(cfg);
    if (cli->config_path) {
        rp_err rc = rp_config_load_file(cfg, cli->config_path, eb);
        if (rc == RP_NOT_FOUND)
            return rp_errf(eb, RP_BAD_REQUEST, "config file %s does not exist", cli->config_path);
        if (rc != RP_OK) return rc;
    }
    if (cli->data_dir) return rp_config_set(cfg, "data", cli->data_dir, eb);
    return RP_OK;
}

/* Open the store and api of a data directory. */
static rp_err conn_open_local(const rp_cli *cli, rp_cli_access access, rp_cli_conn *c,
                              rp_errbuf *eb) {
    rp_config cfg;
    rp_err rc = rp_cli_config(cli, &cfg, eb);
    if (rc != RP_OK) return rc;
    c->lim = rp_mpcheck_limits_from_config(&cfg);
    if (cfg.audit_log[0] == '\0') strcpy(cfg.audit_log, "/dev/null");
    if (access == RP_CLI_BULK) cfg.durability = RP_DURABLE_ASYNC; /* flushed at close */
    if (access == RP_CLI_READ) {
        rc = rp_store_open_readonly(&cfg, &c->store, eb);
        if (rc == RP_NOT_FOUND)
            return rp_errf(eb, RP_UNAVAILABLE, "no rapport store in %s", cli->data_dir);
    } else {
        rc = rp_store_open(&cfg, &c->store, eb);
        /* a cluster node's store is written only through its log */
        if (rc == RP_OK) rc = rp_store_applied_check_local(c->store, eb);
    }
    if (rc != RP_OK) return rc;
    if ((rc = rp_api_create(c->store, &c->api, eb)) != RP_OK) return rc;
    if (pthread_mutex_init(&c->mu, NULL) != 0)
        return rp_errf(eb, RP_UNAVAILABLE, "cannot create a mutex");
    if (pthread_cond_init(&c->cv, NULL) != 0) {
        pthread_mutex_destroy(&c->mu);
        return rp_errf(eb, RP_UNAVAILABLE, "cannot create a condition variable");
    }
    c->local = true; /* from here on close tears the mutex down too */
    if (!msgpack_zone_init(&c->zone, 8192))
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory");
    return RP_OK;
}

/* Connect to the server and authenticate when a token is set. */
static rp_err conn_open_server(const rp_cli *cli, rp_cli_conn *c, rp_errbuf *eb) {
    rp_config cfg;
    rp_err rc = rp_cli_config(cli, &cfg, eb);
    if (rc != RP_OK) return rc;
    c->lim = rp_mpcheck_limits_from_config(&cfg);
    rc = rp_client_connect(cli->server, cli->timeout_ms, &c->client, eb);
    if (rc == RP_UNAVAILABLE) {
        char why[RP_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", rp_errbuf_msg(eb));
        return rp_errf(eb, rc, "%s (is rapportd running? or use --data DIR)", why);
    }
    if (rc != RP_OK) return rc;
    if (cli->token && cli->token[0]) {
        rp_role role;
        if ((rc = rp_client_auth(c->client, cli->token, &role, eb)) != RP_OK) return rc;
    }
    return RP_OK;
}

rp_err rp_cli_conn_open(const rp_cli *cli, rp_cli_access access, rp_cli_conn **out, rp_errbuf *eb) {
    assert(cli && out);
    rp_cli_conn *c = calloc(1, sizeof *c);
    if (c == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory");
    rp_err rc = cli->data_dir ? conn_open_local(cli, access, c, eb) : conn_open_server(cli, c, eb);
    if (rc != RP_OK) {
        rp_cli_conn_close(c);
        return rc;
    }
    *out = c;
    return RP_OK;
}

/* Wait for every local call still in flight and free them. */
static void local_drain(rp_cli_conn *c) {
    pthread_mutex_lock(&c->mu);
    for (local_call *k = c->head; k; k = k->next)
        while (!k->done) pthread_cond_wait(&c->cv, &c->mu);
    local_call *k = c->head;
    c->head = c->tail = NULL;
    c->pending = 0;
    pthread_mutex_unlock(&c->mu);
    while (k) {
        local_call *next = k->next;
        free(k->data);
        free(k);
        k = next;
    }
}

void rp_cli_conn_close(rp_cli_conn *c) {
    if (c == NULL) return;
    rp_client_close(c->client);
    if (c->local) {
        local_drain(c);
        free(c->cur);
        msgpack_zone_destroy(&c->zone);
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
    }
    rp_api_destroy(c->api);
    rp_store_close(c->store); /* finishes queued writes and flushes */
    free(c);
}

bool rp_cli_conn_local(const rp_cli_conn *c) { return c->local; }
const rp_mpcheck_limits *rp_cli_conn_limits(const rp_cli_conn *c) { return &c->lim; }

unsigned rp_cli_pending(const rp_cli_conn *c) {
    return c->local ? c->pending : rp_client_pending(c->client);
}

/* --- local calls --------------------------------------------------------------- */

/* The reply callback gets one pointer; it needs the call and the conn. */
typedef struct local_arg {
    rp_cli_conn *c;
    local_call *k;
} local_arg;

/* The api's reply: copy the result into the call's slot and wake the
 * waiter. May run on the writer thread; the bytes are the api's, valid only
 * during this callback. */
static void local_reply(void *arg, rp_err rc, const char *msg, const char *result, size_t len) {
    local_arg *a = arg;
    rp_cli_conn *c = a->c;
    local_call *k = a->k;
    free(a);
    char *copy = NULL;
    if (rc == RP_OK) {
        copy = malloc(len ? len : 1);
        if (copy == NULL) {
            rc = RP_UNAVAILABLE;
            msg = "out of memory copying a reply";
        } else {
            memcpy(copy, result, len);
        }
    }
    pthread_mutex_lock(&c->mu);
    k->rc = rc;
    k->data = copy;
    k->len = copy ? len : 0;
    snprintf(k->msg, sizeof k->msg, "%s", msg ? msg : "");
    k->done = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Queue one local call: unpack our own params, give the call a slot, run
 * it (a read replies before rp_api_call returns). */
static rp_err local_send(rp_cli_conn *c, const char *method, const char *params, size_t len,
                         rp_errbuf *eb) {
    local_call *k = calloc(1, sizeof *k);
    local_arg *a = malloc(sizeof *a);
    msgpack_zone z;
    bool zok = msgpack_zone_init(&z, 4096);
    if (k == NULL || a == NULL || !zok) {
        free(k);
        free(a);
        if (zok) msgpack_zone_destroy(&z);
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory");
    }
    msgpack_object obj = {.type = MSGPACK_OBJECT_NIL};
    if (params && len) {
        size_t off = 0;
        /* Our own bytes, built by the commands: trusted, but checked. */
        if (msgpack_unpack(params, len, &off, &z, &obj) != MSGPACK_UNPACK_SUCCESS || off != len) {
            msgpack_zone_destroy(&z);
            free(k);
            free(a);
            return rp_errf(eb, RP_INTERNAL, "the CLI built malformed params for %s", method);
        }
    }
    a->c = c;
    a->k = k;
    pthread_mutex_lock(&c->mu);
    if (c->tail) c->tail->next = k;
    else c->head = k;
    c->tail = k;
    c->pending++;
    pthread_mutex_unlock(&c->mu);
    const rp_api_op *op = rp_api_find(method, strlen(method));
    /* rp_api_call copies what a write keeps: params may go after it returns. */
    rp_api_call(c->api, op, RP_ROLE_ADMIN, "cli", &obj, local_reply, a);
    msgpack_zone_destroy(&z);
    return RP_OK;
}

static rp_err local_recv(rp_cli_conn *c, rp_cli_reply *r, rp_errbuf *eb) {
    pthread_mutex_lock(&c->mu);
    local_call *k = c->head;
    if (k == NULL) {
        pthread_mutex_unlock(&c->mu);
        return rp_errf(eb, RP_BAD_REQUEST, "no reply is pending");
    }
    while (!k->done) pthread_cond_wait(&c->cv, &c->mu);
    c->head = k->next;
    if (c->head == NULL) c->tail = NULL;
    c->pending--;
    pthread_mutex_unlock(&c->mu);
    free(c->cur);
    c->cur = k->data;
    msgpack_zone_clear(&c->zone);
    r->rc = k->rc;
    snprintf(r->message, sizeof r->message, "%s", k->msg);
    r->result.type = MSGPACK_OBJECT_NIL;
    rp_err rc = RP_OK;
    if (k->rc == RP_OK) {
        size_t off = 0;
        if (msgpack_unpack(k->data, k->len, &off, &c->zone, &r->result) != MSGPACK_UNPACK_SUCCESS)
            rc = rp_errf(eb, RP_INTERNAL, "the api returned a malformed result");
    }
    free(k);
    return rc;
}

/* --- calls ------------------------------------------------------------------------ */

rp_err rp_cli_send(rp_cli_conn *c, const char *method, const char *params, size_t len,
                   rp_errbuf *eb) {
    if (c->local) return local_send(c, method, params, len, eb);
    rp_err rc = rp_client_send(c->client, method, params, len, NULL, eb);
    /* Written now, not at the next receive: an import from a slow pipe must
     * not hold batches it has read back from the server. */
    return rc == RP_OK ? rp_client_flush(c->client, eb) : rc;
}

rp_err rp_cli_recv(rp_cli_conn *c, rp_cli_reply *r, rp_errbuf *eb) {
    if (c->local) return local_recv(c, r, eb);
    rp_client_reply cr;
    rp_err rc = rp_client_recv(c->client, &cr, eb);
    if (rc != RP_OK) return rc;
    r->rc = cr.rc;
    memcpy(r->message, cr.message, sizeof r->message);
    r->result = cr.result;
    return RP_OK;
}

rp_err rp_cli_call(rp_cli_conn *c, const char *method, const char *params, size_t len,
                   rp_cli_reply *r, rp_errbuf *eb) {
    if (rp_cli_pending(c) != 0)
        return rp_errf(eb, RP_INTERNAL, "a call was made with replies pending");
    rp_err rc = rp_cli_send(c, method, params, len, eb);
    if (rc != RP_OK) return rc;
    return rp_cli_recv(c, r, eb);
}

int rp_cli_run_op(rp_cli *cli, rp_cli_access access, const char *method, const char *params,
                  size_t len, int (*show)(rp_cli *cli, const msgpack_object *result, void *arg),
                  void *arg) {
    rp_errbuf eb = {0};
    rp_cli_conn *c = NULL;
    rp_err rc = rp_cli_conn_open(cli, access, &c, &eb);
    if (rc != RP_OK) return rp_cli_fail(cli, rc, &eb);
    rp_cli_reply r;
    int code;
    rc = rp_cli_call(c, method, params, len, &r, &eb);
    if (rc != RP_OK) {
        code = rp_cli_fail(cli, rc, &eb);
    } else if (r.rc != RP_OK) {
        rp_errbuf reb = {0};
        rp_errf(&reb, r.rc, "%s", r.message);
        code = rp_cli_fail(cli, r.rc, &reb);
    } else {
        code = show(cli, &r.result, arg);
    }
    rp_cli_conn_close(c);
    return code;
}
