/* metrics.c — connection, refusal, build and process metrics (metrics.h).
 *
 * process_* follow the Prometheus client libraries (client_golang's process
 * collector): CPU time and memory from /proc/self/stat (utime + stime in
 * clock ticks; vsize in bytes; rss in pages), the start time from the
 * process's start in ticks after boot plus btime of /proc/stat, open
 * descriptors by listing /proc/self/fd (the listing's own descriptor left
 * out) and the limit from getrlimit(RLIMIT_NOFILE). Linux only; every
 * scrape reads them afresh (a few small /proc reads).
 */
#include "net/metrics.h"
#include "model/codec.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static _Atomic(const char *) metrics_version = NULL;
static _Atomic(const char *) metrics_commit = NULL;

void rp_metrics_set_build(const char *version, const char *commit) {
    atomic_store(&metrics_version, version);
    atomic_store(&metrics_commit, commit);
}


/* One unlabelled metric with its HELP and TYPE lines. */
static void metric_u64(msgpack_sbuffer *sb, const char *name, const char *type, const char *help,
                       uint64_t v) {
    rp_sbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name, v);
}

static void metric_f64(msgpack_sbuffer *sb, const char *name, const char *type, const char *help,
                       double v) {
    rp_sbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n%s %.3f\n", name, help, name, type, name, v);
}

/* A label value safe to print between quotes: at most n - 1 bytes of v
 * with '"', '\\' and control bytes replaced by '_'. */
static void label_value(char *out, size_t n, const char *v) {
    size_t i = 0;
    for (; v && v[i] && i + 1 < n; i++)
        out[i] = (v[i] == '"' || v[i] == '\\' || (unsigned char)v[i] < 0x20) ? '_' : v[i];
    out[i] = '\0';
}

/* The fields of /proc/self/stat the process metrics use. */
typedef struct proc_stat {
    unsigned long long utime, stime; /* clock ticks */
    unsigned long long starttime;    /* clock ticks after boot */
    unsigned long long vsize;        /* bytes */
    long long rss;                   /* pages */
} proc_stat;

/* Read /proc/self/stat; fields counted from 1 as in proc(5), parsed after
 * the last ')' (the command name may hold spaces and parentheses). */
static bool read_proc_stat(proc_stat *ps) {
    char buf[2048];
    FILE *f = fopen("/proc/self/stat", "re");
    if (f == NULL) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL) return false;
    /* field 3 (state) onwards */
    int got = sscanf(p + 1,
                     " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d"
                     " %llu %llu %lld",
                     &ps->utime, &ps->stime, &ps->starttime, &ps->vsize, &ps->rss);
    return got == 5;
}

/* btime of /proc/stat: boot time, seconds since the epoch. 0 when unknown. */
static unsigned long long boot_time(void) {
    FILE *f = fopen("/proc/stat", "re");
    if (f == NULL) return 0;
    char line[256];
    unsigned long long bt = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %llu", &bt) == 1) break;
    fclose(f);
    return bt;
}

/* Open descriptors: entries of /proc/self/fd but the listing's own. -1
 * when /proc/self/fd cannot be read. */
static long open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) return -1;
    int self = dirfd(d);
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (atoi(e->d_name) == self) continue;
        n++;
    }
    closedir(d);
    return n;
}

/* process_* as the Prometheus client libraries define them. */
static void metrics_process(msgpack_sbuffer *sb) {
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    proc_stat ps;
    if (tck > 0 && page > 0 && read_proc_stat(&ps)) {
        metric_f64(sb, "process_cpu_seconds_total", "counter",
                   "Total user and system CPU time spent in seconds.",
                   (double)(ps.utime + ps.stime) / (double)tck);
        metric_u64(sb, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                   ps.vsize);
        metric_u64(sb, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                   ps.rss > 0 ? (uint64_t)ps.rss * (uint64_t)page : 0);
        unsigned long long bt = boot_time();
        if (bt > 0)
            metric_f64(sb, "process_start_time_seconds", "gauge",
                       "Start time of the process since unix epoch in seconds.",
                       (double)bt + (double)ps.starttime / (double)tck);
        else
            rp_sbuf_printf(sb, "# process_start_time_seconds unavailable: no btime in /proc/stat\n");
    } else {
        rp_sbuf_printf(sb, "# process cpu and memory unavailable: cannot read /proc/self/stat\n");
    }
    long fds = open_fds();
    if (fds >= 0)
        metric_u64(sb, "process_open_fds", "gauge", "Number of open file descriptors.", (uint64_t)fds);
    else
        rp_sbuf_printf(sb, "# process_open_fds unavailable: cannot list /proc/self/fd\n");
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metric_u64(sb, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                   rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur);
}

void rp_metrics_net(const rp_net_stats *st, msgpack_sbuffer *sb) {
    rp_net_stats *s = (rp_net_stats *)st; /* atomic_load wants a non-const pointer in C11 */
    metric_u64(sb, "rapport_connections_open", "gauge", "Client connections open (both faces).",
               atomic_load(&s->conns_open));
    metric_u64(sb, "rapport_connections_total", "counter", "Client connections accepted.",
               atomic_load(&s->conns_total));
    metric_u64(sb, "rapport_connections_rejected_total", "counter",
               "Connections refused over max_connections.", atomic_load(&s->conns_rejected));
    metric_u64(sb, "rapport_connections_timed_out_total", "counter",
               "Connections closed as idle or slow.", atomic_load(&s->conns_timed_out));
    metric_u64(sb, "rapport_bad_frames_total", "counter", "Protocol violations.",
               atomic_load(&s->bad_frames));

    static const char *const faces[RP_FACE__COUNT] = {[RP_FACE_RPC] = "rpc", [RP_FACE_HTTP] = "http"};
    static const char *const codes[RP_REFUSED__COUNT] = {
        [RP_REFUSED_401] = "401", [RP_REFUSED_403] = "403", [RP_REFUSED_413] = "413",
        [RP_REFUSED_503] = "503"};
    rp_sbuf_printf(sb, "# HELP rapport_requests_refused_total Requests refused before their operation ran, "
                "by face and HTTP status.\n# TYPE rapport_requests_refused_total counter\n");
    for (int f = 0; f < RP_FACE__COUNT; f++)
        for (int r = 0; r < RP_REFUSED__COUNT; r++)
            rp_sbuf_printf(sb, "rapport_requests_refused_total{face=\"%s\",code=\"%s\"} %" PRIuFAST64 "\n",
                    faces[f], codes[r], atomic_load_explicit(&s->refused[f][r], memory_order_relaxed));

    char version[64], commit[64];
    const char *v = atomic_load(&metrics_version);
    label_value(version, sizeof version, v ? v : "unknown");
    const char *k = atomic_load(&metrics_commit);
    label_value(commit, sizeof commit, k ? k : "unknown");
    rp_sbuf_printf(sb, "# HELP rapport_build_info The running build: its version and git commit (always 1).\n"
                "# TYPE rapport_build_info gauge\nrapport_build_info{version=\"%s\",commit=\"%s\"} 1\n",
            version, commit);

    metrics_process(sb);
}
