/* log.h — one line per notable event, key=value, to stderr.
 *
 * rapportd's operational log is a stream of lines such as
 *
 *   ts=2024-11-23T05:31:00.123Z level=info event=listening rpc=127.0.0.1:7070
 *
 * `ts`, `level` and `event` come first on every line; the caller adds the
 * rest as printf-formatted `key=value` pairs. Values that may hold spaces,
 * quotes or control bytes (error sentences, client input) go through
 * rp_log_quote() so a line stays one parseable line.
 *
 * Thread safety: each line is formatted into a stack buffer and written with
 * a single write(2), so lines from different threads never interleave (for
 * pipes up to PIPE_BUF bytes, and in practice for files and terminals).
 * Lines longer than RP_LOG_LINE_MAX are cut and end with "...". The level
 * and the fd are process-wide settings meant to be set once at start-up.
 */
#ifndef RP_LOG_H
#define RP_LOG_H

#include <stddef.h>

typedef enum rp_log_level {
    RP_LOG_DEBUG = 0,
    RP_LOG_INFO = 1,
    RP_LOG_WARN = 2,
    RP_LOG_ERROR = 3,
} rp_log_level;

/* Longest line written, newline included. */
#define RP_LOG_LINE_MAX 1024

/* Lines below min are dropped (default RP_LOG_INFO). */
void rp_log_set_level(rp_log_level min);

/* Write to fd instead of stderr (default 2). The fd stays the caller's. */
void rp_log_set_fd(int fd);

/* Is a line at this level written? (to skip expensive formatting) */
int rp_log_enabled(rp_log_level level);

/* Write one line: "ts=... level=... event=<event>" then, when fmt is not
 * NULL or empty, a space and the formatted rest. event must be a bare word.
 * Never fails visibly: a failed write(2) is ignored (there is nowhere left
 * to report it). */
void rp_log(rp_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Quote s for a log value: returns s unchanged when it is a non-empty run of
 * printable non-space ASCII without '"' or '=', else writes "..." with \" \\
 * \n and \xNN escapes into buf (cut to fit n bytes) and returns buf.
 *   buf, n: the caller's buffer (n >= 8). s may be NULL (logged as "").
 * The result is valid as long as s and buf are. */
const char *rp_log_quote(char *buf, size_t n, const char *s);

#endif
