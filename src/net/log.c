/* log.c — key=value log lines, one write(2) each (see log.h). */
#include "net/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_min = RP_LOG_INFO;
static atomic_int log_fd = 2;

static const char *const log_names[] = {"debug", "info", "warn", "error"};

void rp_log_set_level(rp_log_level min) { atomic_store(&log_min, (int)min); }

void rp_log_set_fd(int fd) { atomic_store(&log_fd, fd); }

int rp_log_enabled(rp_log_level level) { return (int)level >= atomic_load(&log_min); }

/* Format the UTC wall clock with milliseconds into out (64 bytes leave the
 * compiler no doubt about truncation; 24 are used). */
static void log_timestamp(char *out, size_t n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
             (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
             tm.tm_sec % 100, (int)(ts.tv_nsec / 1000000) % 1000);
}

void rp_log(rp_log_level level, const char *event, const char *fmt, ...) {
    if (!rp_log_enabled(level)) return;
    if ((unsigned)level > RP_LOG_ERROR) level = RP_LOG_ERROR;
    char line[RP_LOG_LINE_MAX];
    char ts[64];
    log_timestamp(ts, sizeof ts);
    int n = snprintf(line, sizeof line, "ts=%s level=%s event=%s", ts, log_names[level], event);
    size_t len = n < 0 ? 0 : (size_t)n;
    if (len < sizeof line - 1 && fmt != NULL && fmt[0] != '\0') {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + len, sizeof line - len, fmt, ap);
        va_end(ap);
        if (m > 0) len += (size_t)m;
    }
    /* Keep room for the newline; mark a cut line so nobody trusts its end. */
    if (len > sizeof line - 2) {
        len = sizeof line - 2;
        memcpy(line + len - 3, "...", 3);
    }
    line[len++] = '\n';
    ssize_t w = write(atomic_load(&log_fd), line, len);
    (void)w;
}

/* Is c safe to log unquoted? */
static int log_plain(unsigned char c) { return c > 0x20 && c < 0x7f && c != '"' && c != '=' && c != '\\'; }

const char *rp_log_quote(char *buf, size_t n, const char *s) {
    if (s == NULL) s = "";
    int plain = s[0] != '\0';
    for (const char *p = s; plain && *p; p++) plain = log_plain((unsigned char)*p);
    if (plain) return s;
    size_t o = 0;
    buf[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[5];
        size_t el;
        if (*p == '"' || *p == '\\') { esc[0] = '\\'; esc[1] = (char)*p; el = 2; }
        else if (*p == '\n') { memcpy(esc, "\\n", 2); el = 2; }
        else if (*p < 0x20 || *p == 0x7f) { snprintf(esc, sizeof esc, "\\x%02x", *p); el = 4; }
        else { esc[0] = (char)*p; el = 1; }
        if (o + el + 2 > n) break; /* room for the closing quote and NUL */
        memcpy(buf + o, esc, el);
        o += el;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
