/* metrics.h — the net layer's part of GET /metrics (Prometheus text 0.0.4).
 *
 * The api writes its own metrics (rp_api_metrics: requests, latencies,
 * store and writer); this module adds what only the server process knows:
 * the connection and refusal counters of rp_net_stats, the build, and the
 * process_* metrics as Prometheus client libraries define them. Every
 * metric is listed in proto/METRICS.md.
 *
 * The build's version and git commit are set once by the program
 * (rp_metrics_set_build), which has them from core/version.h and the
 * generated rp_version.h; the library itself has no generated header.
 */
#ifndef RP_NET_METRICS_H
#define RP_NET_METRICS_H

#include <msgpack.h>

#include "net/loop.h"

/* The version and commit rapport_build_info reports (static strings, kept,
 * not copied); NULL or never called: "unknown". Call before serving. */
void rp_metrics_set_build(const char *version, const char *commit);

/* Append the connection counters of st (both faces), the refusals by face
 * and code, rapport_build_info and the process_* metrics to sb. A process
 * value that cannot be read (no /proc) is left out with a comment line;
 * nothing else can fail. */
void rp_metrics_net(const rp_net_stats *st, msgpack_sbuffer *sb);

#endif
