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
#include "core/config.h"
#include "core/error.h"
#include "net/log.h"
#include "net/loop.h"
#include "net/metrics.h"
#include "net/server.h"
#include "store/store.h"

#define RAPPORTD_VERSION "0.1.0"
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
            "  --set KEY=VALUE         any setting, e.g. --set threads=4 --set token=admin:SECRET\n"
            "  --KEY VALUE             the same, for any setting name\n"
            "  --verbose               log debug lines too\n"
            "  --help                  this text\n"
            "  --version               print the version\n"
            "\n"
            "Settings: defaults < config file < flags. Listening on a non-loopback address\n"
            "requires at least one token (token = ROLE:SECRET, ROLE: route, agent, ingest, admin).\n"
            "Logs go to stderr, one key=value line per event. SIGTERM or SIGINT stops it cleanly.\n");
}

/* Apply one setting from a flag; reports and returns false on error. */
static bool set_one(rp_config *cfg, const char *key, const char *value) {
    rp_errbuf eb = {0};
    if (rp_config_set(cfg, key, value, &eb) != RP_OK) {
        fprintf(stderr, "rapportd: %s\n", rp_errbuf_msg(&eb));
        return false;
    }
    return true;
}

/* Parse argv into cfg. Returns -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, rp_config *cfg) {
    /* The config file first, wherever --config appears. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *file = NULL;
        if (strcmp(a, "--config") == 0 && i + 1 < argc) file = argv[++i];
        else if (strncmp(a, "--config=", 9) == 0) file = a + 9;
        if (file == NULL) continue;
        rp_errbuf eb = {0};
        if (rp_config_load_file(cfg, file, &eb) != RP_OK) {
            fprintf(stderr, "rapportd: %s\n", rp_errbuf_msg(&eb));
            return EXIT_USAGE;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("rapportd %s\n", RAPPORTD_VERSION);
            return 0;
        }
        if (strcmp(a, "--verbose") == 0) {
            rp_log_set_level(RP_LOG_DEBUG);
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            fprintf(stderr, "rapportd: unexpected argument '%s' (see --help)\n", a);
            return EXIT_USAGE;
        }
        char key[64];
        const char *name = a + 2, *value = NULL;
        const char *eq = strchr(name, '=');
        size_t kl = eq ? (size_t)(eq - name) : strlen(name);
        if (kl >= sizeof key) {
            fprintf(stderr, "rapportd: unknown option '%s'\n", a);
            return EXIT_USAGE;
        }
        memcpy(key, name, kl);
        key[kl] = '\0';
        if (eq) value = eq + 1;
        else if (i + 1 < argc) value = argv[++i];
        else {
            fprintf(stderr, "rapportd: %s needs a value\n", a);
            return EXIT_USAGE;
        }
        if (strcmp(key, "config") == 0) continue; /* already read */
        if (strcmp(key, "set") == 0) {
            const char *veq = strchr(value, '=');
            if (veq == NULL || veq == value || (size_t)(veq - value) >= sizeof key) {
                fprintf(stderr, "rapportd: --set takes KEY=VALUE, got '%s'\n", value);
                return EXIT_USAGE;
            }
            memcpy(key, value, (size_t)(veq - value));
            key[veq - value] = '\0';
            value = veq + 1;
        }
        if (!set_one(cfg, key, value)) return EXIT_USAGE;
    }
    return -1;
}

/* The first SIGTERM/SIGINT: remember it and leave the main loop. */
static void on_signal(evutil_socket_t sig, short what, void *arg) {
    (void)what;
    int *got = arg;
    *got = (int)sig;
}

int main(int argc, char **argv) {
    static rp_config cfg; /* large (tokens): not on the stack */
    rp_config_defaults(&cfg);
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
    if (ev_term == NULL || ev_int == NULL || event_add(ev_term, NULL) || event_add(ev_int, NULL)) {
        fprintf(stderr, "rapportd: cannot set up signal handling\n");
        return 1;
    }

    char q[RP_PATH_MAX + 8];
    rp_log(RP_LOG_INFO, "start", "version=%s pid=%ld data=%s durability=%s threads=%u tokens=%u",
           RAPPORTD_VERSION, (long)getpid(), rp_log_quote(q, sizeof q, cfg.data_dir),
           cfg.durability == RP_DURABLE_ASYNC ? "async" : "sync", cfg.threads, cfg.ntokens);
    rp_metrics_set_version(RAPPORTD_VERSION); /* rapport_build_info on /metrics */

    int status = 1;
    rp_store *store = NULL;
    rp_api *api = NULL;
    rp_server *srv = NULL;
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
    if (rp_server_start(&cfg, api, &srv, &eb) != RP_OK) {
        rp_log(RP_LOG_ERROR, "listen_failed", "code=%s error=%s", rp_err_code(eb.code),
               rp_log_quote(m, sizeof m, rp_errbuf_msg(&eb)));
        if (eb.code == RP_FORBIDDEN || eb.code == RP_BAD_REQUEST) status = EXIT_USAGE;
        goto out;
    }
    rp_log(RP_LOG_INFO, "listening", "rpc=%s http=%s", rp_server_rpc_addr(srv),
           rp_server_http_addr(srv)[0] ? rp_server_http_addr(srv) : "off");

    while (got_signal == 0) event_base_loop(base, EVLOOP_ONCE); /* one signal callback, or none */
    /* Later signals get their default action. */
    event_free(ev_term);
    event_free(ev_int);
    ev_term = ev_int = NULL;
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
    rp_server_stop(srv);
    rp_api_destroy(api);
    rp_store_close(store);
    if (ev_term) event_free(ev_term);
    if (ev_int) event_free(ev_int);
    if (base) event_base_free(base);
    rp_log(status == 0 ? RP_LOG_INFO : RP_LOG_ERROR, "stopped", "status=%d", status);
    return status;
}
