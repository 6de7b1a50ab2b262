/* config.c — the settings table: name, type, place, default and why.
 *
 * Adding a setting is one field in rp_config and one row here. The table is
 * scanned linearly (about 50 rows): it is only used at start-up. The `why`
 * of each row is the reason for its default; rp_config_write_example()
 * prints it above the setting, so the installed example config
 * (rapportd.conf, generated at build time) cannot drift from this table.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { T_STR, T_U32, T_U64, T_F64, T_DUR, T_NUMS } cfg_type;

typedef struct {
    const char *name;
    cfg_type type;
    size_t off;
    size_t size; /* for strings: buffer size */
    const char *def;
    double min, max; /* numeric range */
    const char *why; /* the reason for the default: the example config prints it */
} cfg_row;

#define S(f) offsetof(rp_config, f), sizeof(((rp_config *)0)->f)
#define N(f) offsetof(rp_config, f), 0

static const cfg_row cfg_table[] = {
    /* --- store --- */
    {"data", T_STR, S(data_dir), "./rapport-data", 0, 0,
     "The LMDB store's directory. Under the working tree, so the first command "
     "needs no root paths; a service sets its own (e.g. /var/lib/rapport)."},
    {"map_initial", T_U64, N(map_initial), "67108864", 1 << 20, 1e15,
     "Bytes. 64 MiB to start: a demo store fits; the map grows by doubling."},
    {"map_max", T_U64, N(map_max), "68719476736", 1 << 20, 1e15,
     "Bytes. 64 GiB: address space only (LMDB maps lazily); caps a runaway disk."},
    {"durability", T_DUR, N(durability), "sync", 0, 0,
     "sync or async. sync: \"acknowledged\" must mean \"on disk\" unless an "
     "operator says so; async acknowledges once committed and flushes every "
     "async_flush_ms."},
    {"async_flush_ms", T_U32, N(async_flush_ms), "1000", 10, 1000,
     "The design promises async writes reach disk at least every second."},
    {"retention_max_events", T_U32, N(retention_max_events), "1000", 1, 1000000,
     "Events kept per customer. 1,000 events covers years of contacts; older "
     "ones rarely matter."},
    {"retention_max_age_days", T_U32, N(retention_max_age_days), "730", 1, 36500,
     "Two years: long enough for tenure and habit, short enough for privacy."},
    {"writer_queue_max", T_U32, N(writer_queue_max), "10000", 1, 10000000,
     "Bounded queue: past 10,000 waiting writes clients get UNAVAILABLE."},
    {"writer_batch_max", T_U32, N(writer_batch_max), "1000", 1, 1000000,
     "One commit carries at most 1,000 writes, to keep commit latency flat."},
    {"default_country", T_STR, S(default_country), "US", 0, 0,
     "ISO 3166-1 alpha-2, for phone numbers without a country code. Most "
     "deployments start in North America; set per site."},
    {"default_language", T_STR, S(default_language), "en", 0, 0,
     "BCP 47. The language agents speak unless a cue says otherwise."},
    {"issue_numbers", T_NUMS, N(issue_numbers), "servicenow", 0, 0,
     "servicenow, freshdesk or none. A bare issue severity/status number "
     "(\"1\", 4) means opposite things in ServiceNow (1 = critical) and "
     "Freshdesk (4 = urgent). servicenow: lower is more urgent there, as in the "
     "P1..P5 shorthand and ITIL priorities that most sources share, so \"1\" and "
     "\"P1\" agree; a Freshdesk feed sets freshdesk, and none refuses bare "
     "numbers (each needs a word)."},
    {"idempotency_ttl", T_U32, N(idempotency_ttl), "86400", 1, 2592000,
     "Seconds a write's idempotency key answers its first result. 24 h, as "
     "Stripe's keys: a CRM retries within minutes, a replayed log or an "
     "overnight re-run within a day; longer only grows the table."},
    {"idempotency_max_keys", T_U32, N(idempotency_max_keys), "1000000", 1, 100000000,
     "1,000,000 keys (~0.3 KB each: ~300 MB of map at worst) keeps a full day "
     "of keys for ~11 keyed writes/s sustained; busier feeds lose their oldest "
     "keys before the ttl (the oldest is evicted)."},

    /* --- server --- */
    {"listen", T_STR, S(listen), "127.0.0.1:7070", 0, 0,
     "MessagePack-RPC HOST:PORT. Loopback by default: rapport holds personal "
     "data. A non-loopback address needs at least one token."},
    {"http", T_STR, S(http), "127.0.0.1:8080", 0, 0,
     "HTTP/JSON HOST:PORT (empty: off). Loopback by default, as listen: "
     "rapport holds personal data."},
    {"threads", T_U32, N(threads), "2", 1, 256,
     "One event loop per core on the 2-core reference machine."},
    {"max_connections", T_U32, N(max_connections), "4096", 1, 1000000,
     "4,096: far above a contact center's CRM/IVR pool, below fd limits."},
    {"idle_timeout_ms", T_U32, N(idle_timeout_ms), "300000", 100, 86400000,
     "5 minutes: CRM pools keep connections open between calls."},
    {"slow_timeout_ms", T_U32, N(slow_timeout_ms), "10000", 10, 3600000,
     "10 s to finish a started request: slower is a slowloris, not a CRM."},
    {"max_request_bytes", T_U32, N(max_request_bytes), "4194304", 1024, 1 << 30,
     "4 MiB: an import batch fits; a single card request is ~100 bytes."},
    {"max_output_bytes", T_U32, N(max_output_bytes), "16777216", 4096, 1 << 30,
     "16 MiB of unread replies: a client that does not read is dropped."},
    {"max_depth", T_U32, N(max_depth), "16", 2, 32,
     "Our records nest 3 deep; 16 leaves room and stops nesting bombs. At most "
     "32: msgpack-c's unpacker has a fixed 32-level stack."},
    {"max_container", T_U32, N(max_container), "10000", 16, 10000000,
     "10,000 items per array/map: an import batch, never millions."},
    {"max_string", T_U32, N(max_string), "65536", 256, 1 << 30,
     "64 KiB per string: summaries are short; nothing needs more."},
    {"cors_origins", T_STR, S(cors_origins), "", 0, 0,
     "Empty: no browser page may call the HTTP face from another origin (no "
     "CORS headers); \"*\" or \"https://crm.example.com,https://...\" opts in."},
    {"frame_ancestors", T_STR, S(frame_ancestors), "'self'", 0, 0,
     "Who may embed the agent's page GET /card in a frame: its CSP "
     "frame-ancestors sources, space-separated (\"'self' https://crm.example.com\"). "
     "'self' alone, the default, also sends X-Frame-Options: SAMEORIGIN."},
    {"card_link_secret", T_STR, S(card_link_secret), "", 0, 0,
     "Key of card.link's signed page links (any text, hashed). Empty: a random "
     "key per process, so links die on restart and each server of a pool "
     "honours only its own; set the same secret on every server to share them."},
    {"audit_log", T_STR, S(audit_log), "", 0, 0,
     "A file for audit lines. Empty: audit lines go to stderr with the other "
     "logs."},

    /* --- cluster --- */
    {"cluster_urls", T_STR, S(cluster_urls), "", 0, 0,
     "Empty: one node, no log (the embedded default). nats://HOST:PORT,... "
     "(flag --cluster): every write becomes an entry of a replicated NATS "
     "JetStream stream that each node applies in order (proto/CLUSTER.md). "
     "Several URLs of the same NATS cluster, so that losing one is a reconnect."},
    {"cluster_stream", T_STR, S(cluster_stream), "RAPPORT", 0, 0,
     "The stream's name; its subject is the same name in lower case plus "
     "\".log\". One stream per rapport deployment; every node of it names the same."},
    {"cluster_replicas", T_U32, N(cluster_replicas), "3", 1, 5,
     "Copies of each entry (Raft) when rapportd creates the stream: 3 survives "
     "the loss of one NATS server and keeps a majority; JetStream allows 1..5."},
    {"node_id", T_STR, S(node_id), "", 0, 0,
     "Empty: the host name. Names this node in logs and in the ids of the "
     "entries it publishes; unique per node."},
    {"max_lag", T_U32, N(max_lag), "1000", 0, 1000000000,
     "Entries a node may be behind the stream and still answer 200 on /healthz: "
     "1,000 is well under a second of apply at the measured rates, so a "
     "balancer sends reads only to nodes that are nearly current."},
    {"cluster_write_timeout_ms", T_U32, N(cluster_write_timeout_ms), "10000", 100, 600000,
     "A write retries reaching the log (backoff) for this long, then answers "
     "UNAVAILABLE: 10 s rides out a short NATS hiccup; a leader election after "
     "a kill -9 took 4-29 s here, so clients retry with an idempotency key."},
    {"cluster_dedup_s", T_U32, N(cluster_dedup_s), "600", 10, 86400,
     "The stream's duplicates window (Nats-Msg-Id) when rapportd creates it: "
     "10 minutes, far above the longest failover measured (29 s) and a "
     "write's retries; idempotency keys cover longer horizons at apply."},
    {"cluster_max_age_h", T_U32, N(cluster_max_age_h), "168", 1, 87600,
     "The stream keeps entries this long (hours) when rapportd creates it: a "
     "week, so that a node seeded from a daily backup can catch up with days "
     "of margin (proto/CLUSTER.md, retention vs. snapshot cadence)."},
    {"cluster_max_bytes", T_U64, N(cluster_max_bytes), "10737418240", 1 << 20, 1e15,
     "Bytes the stream keeps at most when rapportd creates it (10 GiB), so the "
     "log cannot fill the NATS servers' disks; the oldest entries go first."},

    /* --- context card --- */
    {"card_recent_events", T_U32, N(card_recent_events), "5", 0, 100,
     "The design's default: the last 5 events on the card."},
    {"card_max_events", T_U32, N(card_max_events), "200", 1, 100000,
     "The card reads at most 200 events: bounded cost per screen-pop."},
    {"card_max_reasons", T_U32, N(card_max_reasons), "5", 1, 50,
     "Likely reasons on the card: 5 fit a screen-pop; the tail scores near 0."},
    {"weight_broken_promise", T_F64, N(w_broken_promise), "1.0", 0, 100,
     "Signal weights, strongest first as in the design (proto/CARD.md): a "
     "missed promise is the likeliest reason to call."},
    {"weight_unresolved_contact", T_F64, N(w_unresolved_contact), "0.8", 0, 100,
     "A contact that did not resolve is next: they call back about it."},
    {"weight_issue_changed", T_F64, N(w_issue_changed), "0.6", 0, 100,
     "An open issue updated in the last issue_changed_days: they call about news."},
    {"weight_call_driver", T_F64, N(w_call_driver), "0.5", 0, 100,
     "A non-routine event (an order, a bill, an outage) often drives a call."},
    {"weight_open_issue", T_F64, N(w_open_issue), "0.3", 0, 100,
     "Any other open issue: a likely but weaker reason."},
    {"weight_habitual", T_F64, N(w_habitual), "0.1", 0, 100,
     "Habit is a weak prior: all habits together add at most this much."},
    {"halflife_broken_promise_h", T_F64, N(hl_broken_promise_h), "168", 0.01, 1e6,
     "Half-lives in hours: a promise stays urgent for days (a week), a page "
     "view not."},
    {"halflife_unresolved_contact_h", T_F64, N(hl_unresolved_contact_h), "72", 0.01, 1e6,
     "Three days: an unresolved contact brings a call back within days."},
    {"halflife_issue_changed_h", T_F64, N(hl_issue_changed_h), "48", 0.01, 1e6,
     "Two days: news about an issue prompts a call soon or not at all."},
    {"halflife_call_driver_h", T_F64, N(hl_call_driver_h), "48", 0.01, 1e6,
     "Two days: an event drives a call soon after it happens."},
    {"halflife_open_issue_h", T_F64, N(hl_open_issue_h), "336", 0.01, 1e6,
     "Two weeks: an open issue stays a possible reason for a long time."},
    {"halflife_habitual_h", T_F64, N(hl_habitual_h), "720", 0.01, 1e6,
     "A month: habits change slowly."},
    {"negative_sentiment", T_F64, N(negative_sentiment), "-0.3", -1, 1,
     "Design: the last contact's sentiment <= -0.3 is negative."},
    {"long_tenure_years", T_U32, N(long_tenure_years), "5", 1, 200,
     "Whole years as a customer for the long_tenure cue: 5 marks a loyal "
     "customer without flagging most."},
    {"repeat_contact_min", T_U32, N(repeat_contact_min), "2", 2, 1000,
     "Design: two or more contacts in the last repeat_contact_days is a "
     "repeat contact."},
    {"repeat_contact_days", T_U32, N(repeat_contact_days), "7", 1, 365,
     "Design: a week is the window for a repeat contact."},
    {"issue_changed_days", T_U32, N(issue_changed_days), "3", 1, 365,
     "An issue updated in the last 3 days counts as changed: recent enough to "
     "be why they call."},
    {"routine_kinds", T_STR, S(routine_kinds), "login,page_view,marketing,survey_sent", 0, 0,
     "Comma-separated. Design: these kinds never drive a call; every other "
     "kind may."},
    {"vip_tiers", T_STR, S(vip_tiers), "platinum", 0, 0,
     "Comma-separated tiers treated as VIP (case-insensitive); the design's "
     "top tier."},
};

#undef S
#undef N

static const cfg_row *cfg_find(const char *key) {
    for (size_t i = 0; i < sizeof cfg_table / sizeof cfg_table[0]; i++)
        if (strcmp(cfg_table[i].name, key) == 0) return &cfg_table[i];
    return NULL;
}

/* Parse `value` into the field of row r. Checks range; never writes past a
 * string buffer. */
static rp_err cfg_assign(rp_config *cfg, const cfg_row *r, const char *value, rp_errbuf *eb) {
    char *field = (char *)cfg + r->off;
    char *end = NULL;
    switch (r->type) {
    case T_STR:
        if (strlen(value) >= r->size)
            return rp_errf(eb, RP_BAD_REQUEST, "%s: value longer than %zu bytes", r->name, r->size - 1);
        memcpy(field, value, strlen(value) + 1);
        return RP_OK;
    case T_DUR:
        if (strcmp(value, "sync") == 0) *(rp_durability *)field = RP_DURABLE_SYNC;
        else if (strcmp(value, "async") == 0) *(rp_durability *)field = RP_DURABLE_ASYNC;
        else return rp_errf(eb, RP_BAD_REQUEST, "%s: expected sync or async, got '%s'", r->name, value);
        return RP_OK;
    case T_NUMS:
        for (int k = RP_ISSUE_NUMBERS_SERVICENOW; k <= RP_ISSUE_NUMBERS_NONE; k++) {
            if (strcmp(value, rp_issue_numbers_name((rp_issue_numbers)k)) == 0) {
                *(rp_issue_numbers *)field = (rp_issue_numbers)k;
                return RP_OK;
            }
        }
        return rp_errf(eb, RP_BAD_REQUEST, "%s: expected servicenow, freshdesk or none, got '%s'",
                       r->name, value);
    case T_U32:
    case T_U64: {
        errno = 0;
        if (*value == '-' || *value == '\0') goto bad_num;
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || *end != '\0') goto bad_num;
        if ((double)v < r->min || (double)v > r->max)
            return rp_errf(eb, RP_BAD_REQUEST, "%s: %llu is outside %.0f..%.0f", r->name, v, r->min, r->max);
        if (r->type == T_U32) *(uint32_t *)field = (uint32_t)v;
        else *(uint64_t *)field = (uint64_t)v;
        return RP_OK;
    }
    case T_F64: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || *end != '\0' || end == value || !isfinite(v)) goto bad_num;
        if (v < r->min || v > r->max)
            return rp_errf(eb, RP_BAD_REQUEST, "%s: %g is outside %g..%g", r->name, v, r->min, r->max);
        *(double *)field = v;
        return RP_OK;
    }
    }
    return rp_errf(eb, RP_INTERNAL, "%s: unknown setting type", r->name);
bad_num:
    return rp_errf(eb, RP_BAD_REQUEST, "%s: '%s' is not a valid number", r->name, value);
}

void rp_config_defaults(rp_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < sizeof cfg_table / sizeof cfg_table[0]; i++) {
        rp_err rc = cfg_assign(cfg, &cfg_table[i], cfg_table[i].def, NULL);
        (void)rc;
    }
}

static rp_err cfg_add_token(rp_config *cfg, const char *value, rp_errbuf *eb) {
    const char *colon = strchr(value, ':');
    if (colon == NULL) return rp_errf(eb, RP_BAD_REQUEST, "token: expected ROLE:SECRET");
    char role[16];
    size_t rl = (size_t)(colon - value);
    if (rl >= sizeof role) return rp_errf(eb, RP_BAD_REQUEST, "token: unknown role");
    memcpy(role, value, rl);
    role[rl] = '\0';
    rp_role r = rp_role_parse(role);
    if (r == RP_ROLE_NONE)
        return rp_errf(eb, RP_BAD_REQUEST, "token: unknown role '%s' (route, agent, ingest, admin)", role);
    const char *secret = colon + 1;
    size_t sl = strlen(secret);
    /* 16 bytes minimum: a guessable token is no protection. */
    if (sl < 16 || sl >= sizeof cfg->tokens[0].secret)
        return rp_errf(eb, RP_BAD_REQUEST, "token: secret must be 16..127 bytes");
    if (cfg->ntokens >= RP_MAX_TOKENS)
        return rp_errf(eb, RP_TOO_LARGE, "token: at most %d tokens", RP_MAX_TOKENS);
    cfg->tokens[cfg->ntokens].role = r;
    memcpy(cfg->tokens[cfg->ntokens].secret, secret, sl + 1);
    cfg->ntokens++;
    return RP_OK;
}

rp_err rp_config_set(rp_config *cfg, const char *key, const char *value, rp_errbuf *eb) {
    if (strcmp(key, "token") == 0) return cfg_add_token(cfg, value, eb);
    const cfg_row *r = cfg_find(key);
    if (r == NULL) return rp_errf(eb, RP_BAD_REQUEST, "unknown setting '%s'", key);
    return cfg_assign(cfg, r, value, eb);
}

static char *cfg_trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

rp_err rp_config_load_file(rp_config *cfg, const char *path, rp_errbuf *eb) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int e = errno;
        return rp_errf(eb, e == ENOENT ? RP_NOT_FOUND : rp_err_from_errno(e), "%s: %s", path, strerror(e));
    }
    char line[2048];
    unsigned lineno = 0;
    rp_err rc = RP_OK;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            rc = rp_errf(eb, RP_BAD_REQUEST, "%s:%u: line too long", path, lineno);
            goto done;
        }
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = cfg_trim(line);
        if (*s == '\0') continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            rc = rp_errf(eb, RP_BAD_REQUEST, "%s:%u: expected key = value", path, lineno);
            goto done;
        }
        *eq = '\0';
        char *key = cfg_trim(s), *val = cfg_trim(eq + 1);
        rp_errbuf sub = {0};
        rc = rp_config_set(cfg, key, val, &sub);
        if (rc != RP_OK) {
            rp_errf(eb, rc, "%s:%u: %s", path, lineno, sub.msg);
            goto done;
        }
    }
    if (ferror(f)) rc = rp_errf(eb, RP_INTERNAL, "%s: read error", path);
done:
    fclose(f);
    return rc;
}

rp_role rp_config_token_role(const rp_config *cfg, const char *secret, size_t len) {
    rp_role found = RP_ROLE_NONE;
    for (uint32_t i = 0; i < cfg->ntokens; i++) {
        const char *t = cfg->tokens[i].secret;
        size_t tl = strlen(t);
        unsigned char diff = (unsigned char)(tl != len);
        for (size_t j = 0; j < tl; j++) diff |= (unsigned char)(t[j] ^ (j < len ? secret[j] : 0));
        if (diff == 0) found = cfg->tokens[i].role;
    }
    return found;
}

static const char *const rp_issue_numbers_names[] = {"servicenow", "freshdesk", "none"};

const char *rp_issue_numbers_name(rp_issue_numbers n) {
    if ((unsigned)n > RP_ISSUE_NUMBERS_NONE) return "servicenow";
    return rp_issue_numbers_names[n];
}

static const char *const rp_role_names[] = {"none", "route", "agent", "ingest", "admin"};

const char *rp_role_name(rp_role r) {
    if ((unsigned)r > RP_ROLE_ADMIN) return "none";
    return rp_role_names[r];
}

rp_role rp_role_parse(const char *s) {
    for (int i = RP_ROLE_ROUTE; i <= RP_ROLE_ADMIN; i++)
        if (strcmp(s, rp_role_names[i]) == 0) return (rp_role)i;
    return RP_ROLE_NONE;
}

int rp_config_list_has(const char *list, const char *word, size_t len) {
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == len && memcmp(p, word, len) == 0) return 1;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

/* The text form of row r's value in cfg (what rp_config_set would accept
 * back). Floats use the shortest %g precision that reads back exactly. */
static void cfg_format(const rp_config *cfg, const cfg_row *r, char *out, size_t n) {
    const char *field = (const char *)cfg + r->off;
    switch (r->type) {
    case T_STR: snprintf(out, n, "%s", field); return;
    case T_DUR:
        snprintf(out, n, "%s", *(const rp_durability *)field == RP_DURABLE_ASYNC ? "async" : "sync");
        return;
    case T_NUMS: snprintf(out, n, "%s", rp_issue_numbers_name(*(const rp_issue_numbers *)field)); return;
    case T_U32: snprintf(out, n, "%u", *(const uint32_t *)field); return;
    case T_U64: snprintf(out, n, "%llu", (unsigned long long)*(const uint64_t *)field); return;
    case T_F64: {
        double v = *(const double *)field;
        for (int prec = 6; prec <= 17; prec++) {
            snprintf(out, n, "%.*g", prec, v);
            if (strtod(out, NULL) == v) return;
        }
        return;
    }
    }
    snprintf(out, n, "?");
}

void rp_config_dump(const rp_config *cfg, void (*emit)(const char *line, void *arg), void *arg) {
    char line[RP_PATH_MAX + 64], val[RP_PATH_MAX];
    for (size_t i = 0; i < sizeof cfg_table / sizeof cfg_table[0]; i++) {
        const cfg_row *r = &cfg_table[i];
        if (r->type == T_F64) snprintf(val, sizeof val, "%g", *(const double *)((const char *)cfg + r->off));
        else cfg_format(cfg, r, val, sizeof val);
        snprintf(line, sizeof line, "%s = %s", r->name, val);
        emit(line, arg);
    }
    for (uint32_t i = 0; i < cfg->ntokens; i++) {
        snprintf(line, sizeof line, "token = %s:***", rp_role_name(cfg->tokens[i].role));
        emit(line, arg);
    }
}

/* Emit `text` as '# '-prefixed comment lines of at most 78 columns. */
static void cfg_emit_comment(const char *text, void (*emit)(const char *line, void *arg), void *arg) {
    char line[96];
    const char *p = text;
    while (*p) {
        while (*p == ' ') p++;
        size_t left = strlen(p), take = left;
        if (take > 76) {
            take = 76;
            while (take > 0 && p[take] != ' ') take--;
            if (take == 0) take = 76; /* one long word: cut it */
        }
        snprintf(line, sizeof line, "# %.*s", (int)take, p);
        emit(line, arg);
        p += take;
    }
}

/* Section titles, by the first setting of each section in the table. */
static const struct {
    const char *first, *title;
} cfg_sections[] = {
    {"data", "store"},
    {"listen", "server"},
    {"card_recent_events", "context card (proto/CARD.md)"},
};

void rp_config_write_example(const rp_config *cfg, void (*emit)(const char *line, void *arg), void *arg) {
    static rp_config defaults; /* large (tokens): not on the stack */
    rp_config_defaults(&defaults);
    char line[RP_PATH_MAX + 128], val[RP_PATH_MAX], def[RP_PATH_MAX];
    cfg_emit_comment("rapportd.conf - every rapportd setting, its default and why.", emit, arg);
    emit("#", arg);
    cfg_emit_comment("Generated from the settings table in src/core/config.c (the one place "
                     "where settings, defaults and reasons are written down). Syntax: "
                     "`key = value` lines; '#' starts a comment. A setting left commented "
                     "out keeps the default shown. Flags given to rapportd (`--KEY VALUE`) "
                     "win over this file. See rapportd(8).",
                     emit, arg);
    for (size_t i = 0; i < sizeof cfg_table / sizeof cfg_table[0]; i++) {
        const cfg_row *r = &cfg_table[i];
        for (size_t s = 0; s < sizeof cfg_sections / sizeof cfg_sections[0]; s++) {
            if (strcmp(cfg_sections[s].first, r->name) == 0) {
                emit("", arg);
                snprintf(line, sizeof line, "# ---- %s ----", cfg_sections[s].title);
                emit(line, arg);
            }
        }
        emit("", arg);
        cfg_emit_comment(r->why, emit, arg);
        cfg_format(cfg, r, val, sizeof val);
        cfg_format(&defaults, r, def, sizeof def);
        if (strcmp(val, def) == 0) {
            snprintf(line, sizeof line, "#%s = %s", r->name, r->def);
        } else {
            snprintf(line, sizeof line, "# (default: %s)", r->def);
            emit(line, arg);
            snprintf(line, sizeof line, "%s = %s", r->name, val);
        }
        emit(line, arg);
    }
    emit("", arg);
    emit("# ---- tokens ----", arg);
    emit("", arg);
    cfg_emit_comment("Bearer tokens, one `token = ROLE:SECRET` line each; ROLE is route, agent, "
                     "ingest or admin, SECRET 16..127 bytes. None by default: rapportd then "
                     "asks no client for a token and refuses to listen on a non-loopback "
                     "address. Tokens are secrets: rapportd(8) shows how to keep them in a "
                     "root-only file (systemd LoadCredential=).",
                     emit, arg);
    if (cfg->ntokens == 0) emit("#token = admin:CHANGE-ME-to-16-or-more-random-bytes", arg);
    for (uint32_t i = 0; i < cfg->ntokens; i++) {
        snprintf(line, sizeof line, "token = %s:%s", rp_role_name(cfg->tokens[i].role), cfg->tokens[i].secret);
        emit(line, arg);
    }
}

/* Bytes a field of row r occupies. */
static size_t cfg_size(const cfg_row *r) {
    switch (r->type) {
    case T_STR: return r->size;
    case T_DUR: return sizeof(rp_durability);
    case T_NUMS: return sizeof(rp_issue_numbers);
    case T_U32: return sizeof(uint32_t);
    case T_U64: return sizeof(uint64_t);
    case T_F64: return sizeof(double);
    }
    return 0;
}

void rp_config_diff(const rp_config *a, const rp_config *b, void (*changed)(const char *name, void *arg),
                    void *arg) {
    for (size_t i = 0; i < sizeof cfg_table / sizeof cfg_table[0]; i++) {
        const cfg_row *r = &cfg_table[i];
        const char *fa = (const char *)a + r->off, *fb = (const char *)b + r->off;
        bool same = r->type == T_STR ? strcmp(fa, fb) == 0 : memcmp(fa, fb, cfg_size(r)) == 0;
        if (!same) changed(r->name, arg);
    }
    bool same = a->ntokens == b->ntokens;
    for (uint32_t i = 0; same && i < a->ntokens; i++)
        same = a->tokens[i].role == b->tokens[i].role && strcmp(a->tokens[i].secret, b->tokens[i].secret) == 0;
    if (!same) changed("token", arg);
}
