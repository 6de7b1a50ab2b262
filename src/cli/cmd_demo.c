/* cmd_demo.c — `rapport demo`: the synthetic data set (cli/demo.h) as NDJSON.
 *
 * Needs no server and no data directory: it only writes the generator's
 * lines to stdout through a 1 MiB stdio buffer (a million customers are
 * about 80 million lines; the default buffer would cost a write(2) every
 * few lines). The buffer is set before anything is written, as setvbuf
 * requires. `--phone-of N` prints, instead, the phone number of customer
 * N exactly as the data set writes it (its mixed format), so scripts such
 * as tools/run can pick a sample caller without parsing the output.
 */
#include "cli/args.h"
#include "cli/cmds.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/demo.h"

/* Parse "MIN-MAX" (each 0..1000). */
static bool parse_range(const char *s, uint32_t *lo, uint32_t *hi) {
    const char *dash = strchr(s, '-');
    if (dash == NULL || dash == s || (size_t)(dash - s) >= 16) return false;
    char a[16];
    memcpy(a, s, (size_t)(dash - s));
    a[dash - s] = '\0';
    int64_t x, y;
    if (!rp_cli_parse_int(a, 0, 1000, &x) || !rp_cli_parse_int(dash + 1, 0, 1000, &y) || x > y)
        return false;
    *lo = (uint32_t)x;
    *hi = (uint32_t)y;
    return true;
}

int rp_cli_cmd_demo(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    const char *n_s = NULL, *seed_s = NULL, *now_s = NULL, *ev_s = NULL, *phone_s = NULL;
    const rp_cli_opt opts[] = {
        {"customers", "N", "how many customers (default 1000)", &n_s},
        {"seed", "S", "any number; the same seed gives the same data (default 1)", &seed_s},
        {"now", "TIME", "unix seconds recent events are relative to (default: now)", &now_s},
        {"events", "MIN-MAX", "events per customer (default 20-200)", &ev_s},
        {"phone-of", "I", "print customer I's phone as the data set writes it, and exit", &phone_s},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos;
    bool help;
    if (rp_cli_parse(cli, cmd, opts, argc, argv, pos, 0, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    rp_demo_opts o;
    rp_demo_defaults(&o);
    int64_t customers = (int64_t)o.customers, seed = (int64_t)o.seed, now = o.now, phone_of = 0;
    int code;
    if ((code = rp_cli_opt_int(cli, cmd, "customers", n_s, 1, 100000000, "1..100000000", &customers)) ||
        (code = rp_cli_opt_int(cli, cmd, "seed", seed_s, 0, INT64_MAX, "a number >= 0", &seed)) ||
        (code = rp_cli_opt_int(cli, cmd, "now", now_s, 500000000, INT64_MAX / 4,
                               "unix seconds after 1985", &now)) ||
        (code = rp_cli_opt_int(cli, cmd, "phone-of", phone_s, 1, 100000000, "1..100000000", &phone_of)))
        return code;
    o.customers = (uint64_t)customers;
    o.seed = (uint64_t)seed;
    o.now = now;
    if (ev_s && !parse_range(ev_s, &o.events_min, &o.events_max))
        return rp_cli_usage_error(cli, cmd, "--events must be MIN-MAX within 0..1000 (got '%s')",
                                  ev_s);
    if (phone_s) {
        char phone[40];
        rp_demo_phone(&o, (uint64_t)phone_of, phone);
        fprintf(cli->out, "%s\n", phone);
        return fflush(cli->out) == 0 ? RP_CLI_EXIT_OK : RP_CLI_EXIT_ERROR;
    }
    static char obuf[1 << 20];
    setvbuf(cli->out, obuf, _IOFBF, sizeof obuf);
    rp_errbuf eb = {0};
    rp_err rc = rp_demo_write(cli->out, &o, &eb);
    if (rc == RP_OK && fflush(cli->out) != 0) rc = rp_errf(&eb, RP_INTERNAL, "demo: write error");
    if (rc != RP_OK) return rp_cli_fail(cli, rc, &eb);
    return RP_CLI_EXIT_OK;
}
