/* rapportd.c — the rapport server process.
 *
 * Start-up: settings are defaults < config file (--config) < flags, in the
 * order given. Then the exposure check (no tokens and a non-loopback
 * address: refuse, exit 2), the store (rp_store_open), the operation table
 * (rp_api_create) and the network (rp_server_start: worker threads and
 * both faces). The main thread then runs a small libevent loop that only
 * waits for SIGTERM or SIGINT.
 *
 * Shutdown on the first signal: stop accepting, finish what was received
 * (at most RAPPORTD_DRAIN_MS), stop the workers, free the api, close the
 * store — which lets the writer finish its queue and commit — and exit 0.
 * A second signal during that sequence has the default effect (the
 * handlers are removed after the first), for an operator who cannot wait.
 *
 * Exit status: 0 after a clean shutdown, 1 when start-up fails at run time
 * (store, address in use), 2 for a usage or configuration error.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "api/api.h"
#include "cluster/cluster.h"
#include "core/config.h"
#include "core/error.h"
#include "core/version.h"
#include "net/log.h"
#include "net/loop.h"
#include "net/metrics.h"
#include "net/server.h"
#include "store/applied.h"
#include "store/store.h"
#include "rp_version.h" /* generated: RP_GIT_DESCRIBE (cmake/version.cmake) */

#define RAPPORTD_VERSION RP_VERSION
#define RAPPORTD_DRAIN_MS 10000
#define EXIT_USAGE 2

static void usage(FILE *f) {
    fprintf(f,
            "usage: rapportd [options]\n"
            "\n"
            "  --data DIR              store directory (default ./rapport-data)\n"
            "  --listen HOST:PORT      MessagePack-RPC address (default 127.0.0.1:7070)\n"
            "  --http HOST:PORT        HTTP/JSON address; \"\" turns HTTP off (default 127.0.0.1:8080)\n"
            "  --config FILE           read `key = value` settings (before the other flags)\n"
            "  --durability sync|async acknowledged writes are on disk (sync) or committed (async)\n"
            "  --cluster nats://H:P,..  cluster mode: writes go through a NATS JetStream log\n"
            "                          (cluster_urls; see proto/CLUSTER.md)\n"
            "  --set KEY=VALUE         any setting, e.g. --set threads=4 --set token=admin:SECRET\n"
            "  --KEY VALUE             the same, for any setting name\n"
            "  --verbose               log debug lines too\n"
            "  --help                  this text\n"
            "  --version               print the version and the git commit it was built from\n"
            "\n"
            "Settings: defaults < config file < flags. Listening on a non-loopback address\n"
            "requires at least one token (token = ROLE:SECRET, ROLE: route, agent, ingest, admin).\n"
            "Logs go to stderr, one key=value line per event. SIGTERM or SIGINT stops it cleanly;\n"
            "SIGHUP re-reads the settings: tokens and audit_log apply live, others need a restart.\n");
}

/* Read the settings: defaults < config file (--config, wherever it is) <
 * flags, in order. Informational flags (--help, --version, --verbose) are
 * skipped here (info_flag handles them). Used at start-up and by a reload.
 * Returns RP_OK, or RP_BAD_REQUEST / a file error with a sentence in eb. */
static rp_err load_settings(int argc, char **argv, rp_config *cfg, rp_errbuf *eb) {
    rp_config_defaults(cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *file = NULL;
        if (strcmp(a, "--config") == 0 && i + 1 < argc) file = argv[++i];
        else if (strncmp(a, "--config=", 9) == 0) file = a + 9;
        if (file == NULL) continue;
        rp_err rc = rp_config_load_file(cfg, file, eb);
        if (rc != RP_OK) return rc;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "--version") == 0 ||
            strcmp(a, "--verbose") == 0)
            continue;
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return rp_errf(eb, RP_BAD_REQUEST, "unexpected argument '%s' (see --help)", a);
        char key[64];
        const char *name = a + 2, *value = NULL;
        const char *eq = strchr(name, '=');
        size_t kl = eq ? (size_t)(eq - name) : strlen(name);
        if (kl >= sizeof key) return rp_errf(eb, RP_BAD_REQUEST, "unknown option '%s'", a);
        memcpy(key, name, kl);
        key[kl] = '\0';
        if (eq) value = eq + 1;
        else if (i + 1 < argc) value = argv[++i];
        else return rp_errf(eb, RP_BAD_REQUEST, "%s needs a value", a);
        if (strcmp(key, "config") == 0) continue; /* already read */
        if (strcmp(key, "cluster") == 0) memcpy(key, "cluster_urls", sizeof "cluster_urls");
        if (strcmp(key, "set") == 0) {
            const char *veq = strchr(value, '=');
            if (veq == NULL || veq == value || (size_t)(veq - value) >= sizeof key)
                return rp_errf(eb, RP_BAD_REQUEST, "--set takes KEY=VALUE, got '%s'", value);
            memcpy(key, value, (size_t)(veq - value));
            key[veq - value] = '\0';
            value = veq + 1;
        }
        rp_err rc = rp_config_set(cfg, key, value, eb);
        if (rc != RP_OK) return rc;
    }
    return RP_OK;
}

/* Handle --help, --version and --verbose, which need no settings. Returns
 * -1 to go on, or an exit status. A value of another flag (--data --help)
 * is skipped like the settings parser skips it. */
static int info_flags(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("rapportd %s (%s)\n", RAPPORTD_VERSION, RP_GIT_DESCRIBE);
            return 0;
        }
        if (strcmp(a, "--verbose") == 0) rp_log_set_level(RP_LOG_DEBUG);
        else if (strncmp(a, "--", 2) == 0 && strchr(a, '=') == NULL) i++; /* its value */
    }
    return -1;
}

/* Parse argv into cfg. Returns -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, rp_config *cfg) {
    int st = info_flags(argc, argv);
    if (st >= 0) return st;
    rp_errbuf eb = {0};
    if (load_settings(argc, argv, cfg, &eb) != RP_OK) {
        fprintf(stderr, "rapportd: %s\n", rp_errbuf_msg(&eb));
        return EXIT_USAGE;
    }
    return -1;
}

/* --- reload (SIGHUP) ----------------------------------------------------------- */

/* What a reload needs: how the server was started and what it runs with. */
typedef struct hup_ctx {
    int argc;
    char **argv;
    rp_config *cur; /* the settings in force; tokens and audit_log follow reloads */
    rp_api *api;
} hup_ctx;

/* Count of tokens (by role) in a that b lacks, as "admin:1,agent:2" or "0". */
static void hup_token_delta(const rp_config *a, const rp_config *b, char *out, size_t n) {
    unsigned per[RP_ROLE_ADMIN + 1] = {0};
    for (uint32_t i = 0; i < a->ntokens; i++) {
        bool kept = false;
        for (uint32_t j = 0; j < b->ntokens && !kept; j++)
            kept = a->tokens[i].role == b->tokens[j].role && strcmp(a->tokens[i].secret, b->tokens[j].secret) == 0;
        if (!kept) per[a->tokens[i].role]++;
    }
    size_t o = 0;
    out[0] = '\0';
    for (int r = RP_ROLE_ROUTE; r <= RP_ROLE_ADMIN; r++) {
        if (per[r] == 0 || o >= n) continue;
        int w = snprintf(out + o, n - o, "%s%s:%u", o ? "," : "", rp_role_name((rp_role)r), per[r]);
        if (w > 0) o += (size_t)w;
    }
    if (o == 0) snprintf(out, n, "0");
}

/* rp_config_diff callback: settings that changed but apply only at start. */
static void hup_changed(const char *name, void *arg) {
    unsigned *n = arg;
    if (strcmp(name, "token") == 0 || strcmp(name, "audit_log") == 0) return; /* applied live */
    (*n)++;
    rp_log(RP_LOG_WARN, "reload_restart_needed", "setting=%s msg=\"%s changed: restart needed\"", name, name);
}

/* Re-read the settings as at start-up and apply what can change live: the
 * tokens (swapped under running workers) and the audit log (reopened, so
 * logrotate can move it). Anything else that differs is logged by name.
 * A file that does not load, or tokens that would leave a non-loopback
 * address open, change nothing. Runs on the main thread. */
static void hup_reload(hup_ctx *x) {
    static rp_config next; /* large (tokens): not on the stack */
    static rp_config chk;
    rp_errbuf eb = {0};
    char m[RP_ERRMSG_MAX + 8];
    rp_err rc = load_settings(x->argc, x->argv, &next, &eb);
    if (rc == RP_OK) {
        chk = next; /* the new tokens on the addresses really listened on */
        memcpy(chk.listen, x->cur->listen, sizeof chk.listen);
        memcpy(chk.http, x->cur->http, sizeof chk.http);
        rc = rp_server_check_exposure(&chk, &eb);
    }
    const char *reopened = "none";
    if (rc == RP_OK && (next.audit_log[0] || x->cur->audit_log[0])) {
        rc = rp_api_reopen_audit(x->api, next.audit_log, &eb);
        reopened = "audit_log";
    }
    if (rc == RP_OK) rc = rp_tokens_swap(rp_api_tokens(x->api), &next, &eb);
    if (rc != RP_OK) {
        rp_log(RP_LOG_ERROR, "reload_failed", "code=%s error=%s action=kept_old_settings", rp_err_code(eb.code),
               rp_log_quote(m, sizeof m, rp_errbuf_msg(&eb)));
        return;
    }
    unsigned restart = 0;
    rp_config_diff(x->cur, &next, hup_changed, &restart);
    char added[64], removed[64];
    hup_token_delta(&next, x->cur, added, sizeof added);
    hup_token_delta(x->cur, &next, removed, sizeof removed);
    memcpy(x->cur->tokens, next.tokens, sizeof next.tokens);
    x->cur->ntokens = next.ntokens;
    memcpy(x->cur->audit_log, next.audit_log, sizeof next.audit_log);
    rp_log(RP_LOG_INFO, "reload", "tokens=%u tokens_added=%s tokens_removed=%s reopened=%s restart_needed=%u",
           next.ntokens, added, removed, reopened, restart);
}

/* The first SIGTERM/SIGINT: remember it and leave the main loop. */
static void on_signal(evutil_socket_t sig, short what, void *arg) {
    (void)what;
    int *got = arg;
    *got = (int)sig;
}

/* SIGHUP: reload (see hup_reload); the server keeps running whatever happens. */
static void on_hup(evutil_socket_t sig, short what, void *arg) {
    (void)sig;
    (void)what;
    hup_ctx *x = arg;
    if (x->api == NULL) return; /* not serving yet: the settings just read are current */
    rp_log(RP_LOG_INFO, "reload_start", "signal=HUP");
    hup_reload(x);
}

int main(int argc, char **argv) {
    static rp_config cfg; /* large (tokens): not on the stack */
    int st = parse_args(argc, argv, &cfg);
    if (st >= 0) return st;

    rp_errbuf eb = {0};
    if (rp_server_check_exposure(&cfg, &eb) != RP_OK) {
        rp_log(RP_LOG_ERROR, "refused", "reason=%s", rp_err_code(eb.code));
        fprintf(stderr, "rapportd: %s\n", rp_errbuf_msg(&eb));
        return EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    if (rp_loop_global_init(&eb) != RP_OK) {
        fprintf(stderr, "rapportd: %s\n", rp_errbuf_msg(&eb));
        return 1;
    }

    /* Signals are watched from the start: one arriving while the store
     * opens is handled once the loop runs. */
    struct event_base *base = event_base_new();
    int got_signal = 0;
    struct event *ev_term = base ? evsignal_new(base, SIGTERM, on_signal, &got_signal) : NULL;
    struct event *ev_int = base ? evsignal_new(base, SIGINT, on_signal, &got_signal) : NULL;
    hup_ctx hup = {argc, argv, &cfg, NULL};
    struct event *ev_hup = base ? evsignal_new(base, SIGHUP, on_hup, &hup) : NULL;
    if (ev_term == NULL || ev_int == NULL || ev_hup == NULL || event_add(ev_term, NULL) ||
        event_add(ev_int, NULL) || event_add(ev_hup, NULL)) {
        fprintf(stderr, "rapportd: cannot set up signal handling\n");
        return 1;
    }

    char q[RP_PATH_MAX + 8];
    rp_log(RP_LOG_INFO, "start", "version=%s commit=%s pid=%ld data=%s durability=%s threads=%u tokens=%u",
           RAPPORTD_VERSION, RP_GIT_DESCRIBE, (long)getpid(), rp_log_quote(q, sizeof q, cfg.data_dir),
           cfg.durability == RP_DURABLE_ASYNC ? "async" : "sync", cfg.threads, cfg.ntokens);
    rp_metrics_set_build(RAPPORTD_VERSION, RP_GIT_DESCRIBE); /* rapport_build_info on /metrics */

    int status = 1;
    rp_store *store = NULL;
    rp_api *api = NULL;
    rp_server *srv = NULL;
    rp_cluster *cluster = NULL;
    char m[RP_ERRMSG_MAX + 8];
    if (rp_store_open(&cfg, &store, &eb) != RP_OK) {
        rp_log(RP_LOG_ERROR, "store_open_failed", "code=%s error=%s", rp_err_code(eb.code),
               rp_log_quote(m, sizeof m, rp_errbuf_msg(&eb)));
        goto out;
    }
    if (rp_api_create(store, &api, &eb) != RP_OK) {
        rp_log(RP_LOG_ERROR, "api_failed", "code=%s error=%s", rp_err_code(eb.code),
               rp_log_quote(m, sizeof m, rp_errbuf_msg(&eb)));
        goto out;
    }
    if (cfg.cluster_urls[0] == '\0' && rp_store_applied_check_local(store, &eb) != RP_OK) {
        /* a cluster node's store started without its cluster would diverge */
        rp_log(RP_LOG_ERROR, "store_refused", "code=%s error=%s", rp_err_code(eb.code),
               rp_log_quote(m, sizeof m, rp_errbuf_msg(&eb)));
        fprintf(stderr, "rapportd: %s\n", rp_errbuf_msg(&eb));
        goto out;
    }
    if (cfg.cluster_urls[0] != '\0') {
        /* cluster mode: the log must hold what this store needs next
         * before anything is served (proto/CLUSTER.md "Seeding") */
        if (rp_cluster_open(&cfg, store, &cluster, &eb) != RP_OK ||
            rp_api_cluster_start(api, cluster, &eb) != RP_OK) {
            rp_log(RP_LOG_ERROR, "cluster_refused", "code=%s error=%s", rp_err_code(eb.code),
                   rp_log_quote(m, sizeof m, rp_errbuf_msg(&eb)));
            fprintf(stderr, "rapportd: %s\n", rp_errbuf_msg(&eb));
            goto out;
        }
        rp_log(RP_LOG_INFO, "cluster", "urls=%s stream=%s", cfg.cluster_urls, cfg.cluster_stream);
    }
    if (rp_server_start(&cfg, api, &srv, &eb) != RP_OK) {
        rp_log(RP_LOG_ERROR, "listen_failed", "code=%s error=%s", rp_err_code(eb.code),
               rp_log_quote(m, sizeof m, rp_errbuf_msg(&eb)));
        if (eb.code == RP_FORBIDDEN || eb.code == RP_BAD_REQUEST) status = EXIT_USAGE;
        goto out;
    }
    hup.api = api; /* SIGHUP reloads from here on */
    rp_log(RP_LOG_INFO, "listening", "rpc=%s http=%s", rp_server_rpc_addr(srv),
           rp_server_http_addr(srv)[0] ? rp_server_http_addr(srv) : "off");

    while (got_signal == 0) event_base_loop(base, EVLOOP_ONCE); /* one signal callback, or none */
    /* Later signals get their default action. */
    event_free(ev_term);
    event_free(ev_int);
    event_free(ev_hup);
    ev_term = ev_int = ev_hup = NULL;
    signal(SIGHUP, SIG_IGN); /* a reload during shutdown is moot; never die of it */
    rp_log(RP_LOG_INFO, "shutdown", "signal=%s", got_signal == SIGTERM ? "TERM" : "INT");

    rp_server_stop_accepting(srv);
    rp_net_stats *ns = rp_server_stats(srv);
    bool drained = rp_server_drain(srv, RAPPORTD_DRAIN_MS);
    if (!drained)
        rp_log(RP_LOG_WARN, "drain_timeout", "timeout_ms=%u action=closing_connections", RAPPORTD_DRAIN_MS);
    rp_log(RP_LOG_INFO, "drained", "clean=%s conns_total=%llu conns_rejected=%llu conns_timed_out=%llu "
           "bad_frames=%llu", drained ? "yes" : "no", (unsigned long long)atomic_load(&ns->conns_total),
           (unsigned long long)atomic_load(&ns->conns_rejected),
           (unsigned long long)atomic_load(&ns->conns_timed_out),
           (unsigned long long)atomic_load(&ns->bad_frames));
    status = 0;
out:
    rp_cluster_stop(cluster); /* answers the writes still waiting, before the server goes */
    rp_server_stop(srv);
    rp_api_destroy(api);
    rp_store_close(store);
    if (ev_term) event_free(ev_term);
    if (ev_int) event_free(ev_int);
    if (ev_hup) event_free(ev_hup);
    if (base) event_base_free(base);
    rp_log(status == 0 ? RP_LOG_INFO : RP_LOG_ERROR, "stopped", "status=%d", status);
    return status;
}
