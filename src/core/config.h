/* config.h — every setting of rapport and its default, in one place.
 *
 * The settings live in one struct, rp_config. rp_config_defaults() fills it;
 * rp_config_load_file() and rp_config_set() override single keys by name,
 * using the table in config.c, which is also where every default is written
 * down with the reason for it. The config file is plain `key = value` lines
 * ('#' starts a comment); a key may appear in the file or as a flag
 * (`--key value`) and means the same thing in both.
 *
 * Tokens are the one multi-valued setting: each `token = ROLE:SECRET` line
 * adds one bearer token.
 */
#ifndef RP_CONFIG_H
#define RP_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define RP_MAX_TOKENS 64
#define RP_PATH_MAX 1024

typedef enum rp_durability { RP_DURABLE_SYNC = 0, RP_DURABLE_ASYNC = 1 } rp_durability;

/* How a bare number in an issue's `severity` or `status` is read
 * (setting `issue_numbers`; proto/RECORDS.md "Issue vocabularies"). The
 * model layer's decoder takes one of these; it lives here, in core, so that
 * the settings table can hold it without core depending on model. */
typedef enum rp_issue_numbers {
    RP_ISSUE_NUMBERS_SERVICENOW = 0, /* severity 1 = critical .. 5 = planning; state 1,2,3,6,7,8 */
    RP_ISSUE_NUMBERS_FRESHDESK = 1,  /* severity 4 = urgent .. 1 = low; status 2..5 */
    RP_ISSUE_NUMBERS_NONE = 2,       /* a bare number is refused */
} rp_issue_numbers;

typedef enum rp_role {
    RP_ROLE_NONE = 0,
    RP_ROLE_ROUTE = 1,
    RP_ROLE_AGENT = 2,
    RP_ROLE_INGEST = 3,
    RP_ROLE_ADMIN = 4,
} rp_role;

typedef struct rp_token {
    rp_role role;
    char secret[128];
} rp_token;

typedef struct rp_config {
    /* --- store --- */
    char data_dir[RP_PATH_MAX];
    uint64_t map_initial;      /* bytes */
    uint64_t map_max;          /* bytes */
    rp_durability durability;
    uint32_t async_flush_ms;
    uint32_t retention_max_events; /* per customer */
    uint32_t retention_max_age_days;
    uint32_t writer_queue_max;
    uint32_t writer_batch_max;
    char default_country[3];   /* ISO 3166-1 alpha-2, e.g. "US" */
    char default_language[36]; /* BCP 47 */
    rp_issue_numbers issue_numbers; /* how a bare issue severity/status number reads */
    uint32_t idempotency_ttl;      /* seconds a write's idempotency key answers its first result */
    uint32_t idempotency_max_keys; /* keys kept at most; past it the oldest goes (store/idem.h) */

    /* --- server --- */
    char listen[128];          /* MessagePack-RPC HOST:PORT */
    char http[128];            /* HTTP HOST:PORT ("" = off) */
    uint32_t threads;
    uint32_t max_connections;
    uint32_t idle_timeout_ms;
    uint32_t slow_timeout_ms;
    uint32_t max_request_bytes;
    uint32_t max_output_bytes;
    uint32_t max_depth;
    uint32_t max_container;
    uint32_t max_string;
    char audit_log[RP_PATH_MAX]; /* "" = stderr off */
    char cors_origins[512];      /* HTTP CORS: "" none, "*" any, or a comma-separated list */
    char frame_ancestors[512];   /* GET /card: CSP frame-ancestors sources */
    char card_link_secret[256];  /* card.link signing key ("" = random per process) */
    rp_token tokens[RP_MAX_TOKENS];
    uint32_t ntokens;

    /* --- cluster (src/cluster, proto/CLUSTER.md) --- */
    char cluster_urls[1024];     /* "" = single node; else nats://HOST:PORT,... */
    char cluster_stream[64];     /* the JetStream stream of the log */
    uint32_t cluster_replicas;   /* the stream's replicas, when rapportd creates it */
    char node_id[64];            /* "" = the host name */
    uint32_t max_lag;            /* entries behind the stream before /healthz fails */
    uint32_t cluster_write_timeout_ms; /* a write's deadline to reach the log */
    uint32_t cluster_dedup_s;    /* the stream's duplicates window, seconds */
    uint32_t cluster_max_age_h;  /* the stream's retention by age, hours */
    uint64_t cluster_max_bytes;  /* the stream's retention by size, bytes */

    /* --- context card --- */
    uint32_t card_recent_events;
    uint32_t card_max_events;
    double w_broken_promise;
    double w_unresolved_contact;
    double w_issue_changed;
    double w_call_driver;
    double w_open_issue;
    double w_habitual;
    double hl_broken_promise_h;    /* half-lives, hours */
    double hl_unresolved_contact_h;
    double hl_issue_changed_h;
    double hl_call_driver_h;
    double hl_open_issue_h;
    double hl_habitual_h;
    double negative_sentiment;     /* threshold, <= */
    uint32_t long_tenure_years;
    uint32_t repeat_contact_min;   /* contacts in repeat window */
    uint32_t repeat_contact_days;
    uint32_t issue_changed_days;
    uint32_t card_max_reasons;
    char routine_kinds[256];       /* comma-separated event kinds that never drive calls */
    char vip_tiers[128];           /* comma-separated tiers treated as VIP */
} rp_config;

/* Fill every setting with its default. Never fails. */
void rp_config_defaults(rp_config *cfg);

/* Set one setting by name from its text form.
 *   key, value: NUL-terminated; key as in the table (e.g. "map_max").
 * Returns RP_OK, or RP_BAD_REQUEST (unknown key / unparsable value / out of
 * range) with a sentence in eb. */
rp_err rp_config_set(rp_config *cfg, const char *key, const char *value, rp_errbuf *eb);

/* Read a `key = value` file into cfg (over what is there already).
 * Returns RP_OK, RP_NOT_FOUND (no such file), RP_BAD_REQUEST (a bad line:
 * eb names the file and line), or an errno-mapped code. */
rp_err rp_config_load_file(rp_config *cfg, const char *path, rp_errbuf *eb);

/* Find the role of a presented token (constant-time compare per token).
 * Returns RP_ROLE_NONE when no token matches. */
rp_role rp_config_token_role(const rp_config *cfg, const char *secret, size_t len);

/* Name of an issue_numbers value ("servicenow", "freshdesk", "none"). Never NULL. */
const char *rp_issue_numbers_name(rp_issue_numbers n);

/* Role name ("route", "agent", "ingest", "admin") <-> enum. */
const char *rp_role_name(rp_role r);
rp_role rp_role_parse(const char *s);

/* Is `word` one of the comma-separated items of `list`? (case-sensitive) */
int rp_config_list_has(const char *list, const char *word, size_t len);

/* Call changed(name, arg) for each setting whose value differs between a
 * and b, in table order ("token" once when the token lists differ). Used by
 * a reload to say what it applied and what needs a restart. */
void rp_config_diff(const rp_config *a, const rp_config *b, void (*changed)(const char *name, void *arg),
                    void *arg);

/* Write every setting as `key = value` lines (tokens shown as role:***). */
void rp_config_dump(const rp_config *cfg, void (*emit)(const char *line, void *arg), void *arg);

/* Write a config file that lists every setting with its default and the
 * reason for it (from the settings table), one line per emit call, without
 * newlines. A setting whose value in cfg is its default is written
 * commented out (`#key = default`); one that differs is written as a live
 * `key = value` line under a `# (default: ...)` note; cfg's tokens are
 * written with their secrets. Loading the output with rp_config_load_file
 * over the defaults gives cfg back. tools/packaging/gen_config.c writes the
 * installed rapportd.conf with it. */
void rp_config_write_example(const rp_config *cfg, void (*emit)(const char *line, void *arg), void *arg);

#endif
