/* ndjson.c — `rapport import` and `rapport export`: NDJSON in and out.
 *
 * Import reads one JSON object per line (`{"type": "customer" | "event" |
 * "issue" | "alias", ...}`; the api applies them in order), has them converted to msgpack with jansson (net/json.h,
 * with the server's limits) on one thread per core (ndparse.c, which hands
 * the records back in file order) and sends them in batches as the api's `import`
 * operation — to rapportd, or to the api over a data directory opened for
 * bulk writes (async durability, one flush when the store closes). Batches
 * are 500 records through the server (a batch is one request and one
 * commit, well under max_request_bytes) and 5,000 into a data directory;
 * a batch is also cut at 1 MiB / 8 MiB of msgpack.
 *
 * Pipelining: without --strict up to four batches are in flight, so the
 * next batch is parsed while the previous ones commit (the server's writer
 * group-commits them). Replies come back in order; each names the records
 * it refused by index, which the batch maps back to line numbers.
 *
 * Errors: a line that is not JSON, not an object, or that the api refuses
 * is reported on stderr as "line N: why" and skipped; the import goes on
 * but exits 3 unless --allow-skips says skipping is intended. With --strict the
 * import is one batch in flight and stops at the first bad line with
 * everything before it imported and nothing after it: the api refuses a
 * strict batch whole and names the record ("records[i]: ..."), so the
 * records before it are resent (again strict, which repeats until a prefix
 * commits) and the import ends with exit 3. A failure of the batch as a
 * whole (server gone, store full) always stops the import with exit 3.
 *
 * Progress: a status line on stderr, rewritten four times a second, only
 * when stderr is a terminal: for a file a bar with percentage, records,
 * records/s and ETA (from the bytes read so far); for a pipe records,
 * records/s and MB read. Off a terminal nothing but the summary line
 * (imported, skipped, seconds, records/s), which is always printed on
 * stderr; with --json it is also printed on stdout as one JSON object.
 *
 * Stalls: when the input has nothing more to read for the moment (a pipe
 * whose writer pauses), what was read is parsed, batched and sent at once,
 * so a slow feed reaches the server as it comes (and a Ctrl-C then finds
 * it written).
 *
 * Ctrl-C (SIGINT): reading stops, the batches already sent are waited for
 * and counted, records read but not sent are dropped, and the summary
 * ("INTERRUPTED: N records imported, M skipped") is printed; exit 130
 * (RP_CLI_EXIT_INTERRUPTED). A second Ctrl-C ends the process at once.
 *
 * Export asks for pages of customers (`export {after, limit}` → `{records,
 * next}`), writes each record as one compact JSON line (json.h's canonical
 * form, so export → import → export gives identical bytes) and follows
 * `next` until it is nil.
 *
 * Limits: a line is read whole (getline), so one enormous line costs its
 * size in memory before the JSON limit refuses it.
 */
#include "cli/args.h"
#include "cli/conn.h"
#include "cli/ndjson.h"
#include "cli/ndparse.h"
#include "cli/cmds.h"

#include <assert.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "model/codec.h"
#include "net/json.h"
#include "net/ndlines.h"

#define BATCH_SERVER 500
#define BATCH_LOCAL 5000
#define BATCH_BYTES_SERVER (1u << 20)
#define BATCH_BYTES_LOCAL (8u << 20)
#define WINDOW 4
#define PROGRESS_EVERY 0.25 /* seconds */
#define PROGRESS_BAR 30     /* characters of the bar */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- batches ------------------------------------------------------------------------ */

/* Records waiting to be sent (or in flight): their msgpack bytes one after
 * another, each record's start offset and line number. */
typedef struct line_msg {
    uint64_t line;
    char *text; /* malloc'd */
} line_msg;

typedef struct batch {
    msgpack_sbuffer recs;
    size_t *offs;    /* offs[i]: start of record i; n entries */
    uint64_t *lines; /* line of record i */
    uint32_t n, cap;
    line_msg *msgs;  /* bad lines of this batch, printed in line order when it is done */
    uint32_t nmsg, msgcap;
} batch;

static void batch_init(batch *b) {
    memset(b, 0, sizeof *b);
    msgpack_sbuffer_init(&b->recs);
}

static void batch_clear(batch *b) {
    msgpack_sbuffer_clear(&b->recs);
    b->n = 0;
}

static void batch_free(batch *b) {
    msgpack_sbuffer_destroy(&b->recs);
    free(b->offs);
    free(b->lines);
    for (uint32_t i = 0; i < b->nmsg; i++) free(b->msgs[i].text);
    free(b->msgs);
    memset(b, 0, sizeof *b);
}

/* Note that a record starting at off came from line; false when out of
 * memory. */
static bool batch_note(batch *b, size_t off, uint64_t line) {
    if (b->n == b->cap) {
        uint32_t nc = b->cap ? b->cap * 2 : 1024;
        size_t *o = realloc(b->offs, (size_t)nc * sizeof *o);
        if (o == NULL) return false;
        b->offs = o;
        uint64_t *l = realloc(b->lines, (size_t)nc * sizeof *l);
        if (l == NULL) return false;
        b->lines = l;
        b->cap = nc;
    }
    b->offs[b->n] = off;
    b->lines[b->n] = line;
    b->n++;
    return true;
}

/* --- the importer ------------------------------------------------------------------------ */

typedef struct importer {
    rp_cli *cli;
    rp_cli_conn *conn;
    const rp_mpcheck_limits *lim;
    bool strict;
    uint32_t batch_max;
    size_t bytes_max;
    unsigned window;
    batch slots[WINDOW + 1]; /* in flight: a ring; plus the one being filled */
    unsigned first, inflight; /* ring of in-flight slots */
    batch *cur;               /* the slot being filled */
    msgpack_sbuffer params;   /* scratch: one request */
    uint64_t imported, skipped, lines, bytes, total;
    double t0, shown;
    bool progress_on;         /* a progress line is on the screen */
    bool failed;              /* stop: an error ends the import (exit 3) */
} importer;

/* Clear the progress line before printing a message. */
static void clear_progress(importer *im) {
    if (im->progress_on) {
        fputs("\r\033[K", im->cli->err);
        im->progress_on = false;
    }
}

/* Note "line N: why" for batch b; the notes of a batch are printed in line
 * order once its reply is in (flush_msgs), so that refusals by the api and
 * lines that were not JSON come out in file order. Printed at once when
 * out of memory. */
static void batch_msg(importer *im, batch *b, uint64_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void batch_msg(importer *im, batch *b, uint64_t line, const char *fmt, ...) {
    char text[RP_ERRMSG_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (b->nmsg == b->msgcap) {
        uint32_t nc = b->msgcap ? b->msgcap * 2 : 16;
        line_msg *m = realloc(b->msgs, (size_t)nc * sizeof *m);
        if (m != NULL) {
            b->msgs = m;
            b->msgcap = nc;
        }
    }
    char *copy = b->nmsg < b->msgcap ? strdup(text) : NULL;
    if (copy == NULL) {
        clear_progress(im);
        fprintf(im->cli->err, "%s import: line %" PRIu64 ": %s\n", im->cli->prog, line, text);
        return;
    }
    b->msgs[b->nmsg].line = line;
    b->msgs[b->nmsg].text = copy;
    b->nmsg++;
}

static int msg_cmp(const void *a, const void *b) {
    uint64_t x = ((const line_msg *)a)->line, y = ((const line_msg *)b)->line;
    return x < y ? -1 : x > y;
}

/* Print and drop the notes of batch b, in line order. */
static void flush_msgs(importer *im, batch *b) {
    if (b->nmsg == 0) return;
    clear_progress(im);
    qsort(b->msgs, b->nmsg, sizeof *b->msgs, msg_cmp);
    for (uint32_t i = 0; i < b->nmsg; i++) {
        fprintf(im->cli->err, "%s import: line %" PRIu64 ": %s\n", im->cli->prog, b->msgs[i].line,
                b->msgs[i].text);
        free(b->msgs[i].text);
    }
    b->nmsg = 0;
}

/* "1:05" / "1:02:03" for a number of seconds (clamped to 99 hours). */
static void fmt_duration(char *out, size_t n, double secs) {
    unsigned long t = secs < 0 ? 0 : secs > 356400 ? 356400 : (unsigned long)(secs + 0.5);
    if (t >= 3600) snprintf(out, n, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
    else snprintf(out, n, "%lu:%02lu", t / 60, t % 60);
}

/* The status line on a terminal: with a known size (a regular file) a bar,
 * the percentage, records, rate and ETA; from a pipe records, rate, MB. */
static void progress(importer *im, bool force) {
    if (!im->cli->progress) return;
    double t = now_s();
    if (!force && t - im->shown < PROGRESS_EVERY) return;
    im->shown = t;
    double dt = t - im->t0 > 1e-6 ? t - im->t0 : 1e-6;
    double rate = (double)im->imported / dt;
    FILE *e = im->cli->err;
    if (im->total) {
        double frac = (double)im->bytes / (double)im->total;
        if (frac > 1) frac = 1;
        char bar[PROGRESS_BAR + 1], eta[24];
        unsigned full = (unsigned)(frac * PROGRESS_BAR);
        for (unsigned i = 0; i < PROGRESS_BAR; i++) bar[i] = i < full ? '#' : '.';
        bar[PROGRESS_BAR] = '\0';
        double bps = (double)im->bytes / dt;
        if (im->imported > 0 && bps > 0) fmt_duration(eta, sizeof eta, (double)(im->total - im->bytes) / bps);
        else snprintf(eta, sizeof eta, "?");
        fprintf(e, "\r\033[Kimporting [%s] %3.0f%% %" PRIu64 " records, %.0f records/s, ETA %s", bar,
                100.0 * frac, im->imported, rate, eta);
    } else {
        fprintf(e, "\r\033[Kimporting: %" PRIu64 " records, %.0f records/s, %.1f MB read", im->imported, rate,
                (double)im->bytes / 1e6);
    }
    fflush(e);
    im->progress_on = true;
}

/* Pack the params of an import of records [0, n) of b into im->params. */
static void pack_import(importer *im, const batch *b, uint32_t n) {
    msgpack_sbuffer_clear(&im->params);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &im->params, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    rp_mp_pack_cstr(&pk, "records");
    msgpack_pack_array(&pk, n);
    size_t end = n < b->n ? b->offs[n] : b->recs.size;
    if (end) msgpack_sbuffer_write(&im->params, b->recs.data, end);
    rp_mp_pack_cstr(&pk, "strict");
    if (im->strict) msgpack_pack_true(&pk);
    else msgpack_pack_false(&pk);
}

/* Count a successful import reply and report the records it refused. */
static void take_result(importer *im, batch *b, const msgpack_object *res) {
    const msgpack_object *v = rp_mp_get(res, "imported");
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) im->imported += v->via.u64;
    v = rp_mp_get(res, "skipped");
    uint64_t skipped = (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) ? v->via.u64 : 0;
    im->skipped += skipped;
    const msgpack_object *errs = rp_mp_get(res, "errors");
    uint32_t listed = 0;
    if (errs && errs->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < errs->via.array.size; i++) {
            const msgpack_object *e = &errs->via.array.ptr[i];
            const msgpack_object *ix = rp_mp_get(e, "index");
            rp_str code = {"INTERNAL", 8}, msg = {"", 0};
            rp_mp_str(e, "code", &code, NULL);
            rp_mp_str(e, "message", &msg, NULL);
            if (ix == NULL || ix->type != MSGPACK_OBJECT_POSITIVE_INTEGER || ix->via.u64 >= b->n)
                continue;
            batch_msg(im, b, b->lines[ix->via.u64], "%.*s: %.*s", (int)code.n, code.p, (int)msg.n,
                        msg.p);
            listed++;
        }
    }
    if (skipped > listed && b->n > 0) {
        clear_progress(im);
        rp_cli_errorf(im->cli, "import: %" PRIu64 " more records refused in lines %" PRIu64
                      "..%" PRIu64 " (not listed)", skipped - listed, b->lines[0],
                      b->lines[b->n - 1]);
    }
}

/* A batch failed as a whole: report and stop. */
static void batch_failed(importer *im, const batch *b, rp_err rc, const char *msg) {
    clear_progress(im);
    if (b->n)
        rp_cli_errorf(im->cli, "import: the batch of lines %" PRIu64 "..%" PRIu64 " failed: %s: %s",
                      b->lines[0], b->lines[b->n - 1], rp_err_code(rc), msg);
    else
        rp_cli_errorf(im->cli, "import failed: %s: %s", rp_err_code(rc), msg);
    im->failed = true;
}

/* Receive the reply of the oldest batch in flight and free its slot. */
static void receive_one(importer *im) {
    assert(im->inflight > 0);
    batch *b = &im->slots[im->first];
    im->first = (im->first + 1) % (WINDOW + 1);
    im->inflight--;
    rp_cli_reply r;
    rp_errbuf eb = {0};
    rp_err rc = rp_cli_recv(im->conn, &r, &eb);
    if (rc == RP_OK && r.rc == RP_OK) take_result(im, b, &r.result);
    flush_msgs(im, b);
    if (rc != RP_OK) batch_failed(im, b, rc, rp_errbuf_msg(&eb));
    else if (r.rc != RP_OK) batch_failed(im, b, r.rc, r.message);
    batch_clear(b);
}

/* The record index named by a strict refusal ("records[12]: ..."), or -1. */
static long strict_index(const char *msg, const char **rest) {
    const char *p = strstr(msg, "records[");
    if (p == NULL) return -1;
    char *end = NULL;
    errno = 0;
    long i = strtol(p + 8, &end, 10);
    if (errno || end == p + 8 || *end != ']' || i < 0) return -1;
    end++;
    while (*end == ':' || *end == ' ') end++;
    *rest = end;
    return i;
}

/* Strict mode: send b and wait; on a refusal naming record i, report its
 * line and resend records [0, i) until a prefix commits, then stop. */
static void send_strict(importer *im, batch *b) {
    uint32_t n = b->n;
    while (n > 0) {
        pack_import(im, b, n);
        rp_cli_reply r;
        rp_errbuf eb = {0};
        rp_err rc = rp_cli_call(im->conn, "import", im->params.data, im->params.size, &r, &eb);
        if (rc != RP_OK) {
            flush_msgs(im, b);
            batch_failed(im, b, rc, rp_errbuf_msg(&eb));
            return;
        }
        if (r.rc == RP_OK) {
            take_result(im, b, &r.result);
            break;
        }
        const char *rest = r.message;
        long i = strict_index(r.message, &rest);
        if (i < 0 || (uint32_t)i >= n || r.rc == RP_UNAVAILABLE || r.rc == RP_INTERNAL ||
            r.rc == RP_STORE_FULL) {
            flush_msgs(im, b);
            batch_failed(im, b, r.rc, r.message);
            return;
        }
        /* "CODE: why" like the non-strict errors: the api words some
         * refusals with the record's own code first, others not */
        const char *colon = strchr(rest, ':');
        bool coded = colon && (rp_err_parse(rest, (size_t)(colon - rest)) != RP_INTERNAL ||
                               strncmp(rest, "INTERNAL:", 9) == 0);
        if (coded) batch_msg(im, b, b->lines[i], "%s", rest);
        else batch_msg(im, b, b->lines[i], "%s: %s", rp_err_code(r.rc), rest);
        im->skipped++;
        im->failed = true; /* --strict: stop after the good records before it */
        n = (uint32_t)i;
    }
    flush_msgs(im, b);
    batch_clear(b);
}

/* Send the batch being filled (if any) and start a new one. */
static void submit(importer *im) {
    batch *b = im->cur;
    if (b->n == 0 || im->failed) {
        flush_msgs(im, b); /* only bad lines, or nothing more will be sent */
        return;
    }
    if (im->strict) {
        send_strict(im, b);
        return;
    }
    while (im->inflight >= im->window && !im->failed) receive_one(im);
    if (im->failed) return;
    pack_import(im, b, b->n);
    rp_errbuf eb = {0};
    rp_err rc = rp_cli_send(im->conn, "import", im->params.data, im->params.size, &eb);
    if (rc != RP_OK) {
        flush_msgs(im, b);
        batch_failed(im, b, rc, rp_errbuf_msg(&eb));
        return;
    }
    /* b joins the ring; the next free slot becomes the one being filled */
    im->inflight++;
    im->cur = &im->slots[(im->first + im->inflight) % (WINDOW + 1)];
}

/* Move a parsed chunk's records and errors, in line order, into the batch
 * being filled, submitting batches as they fill up. */
static void take_chunk(importer *im, const rp_ndparse_chunk *c) {
    uint32_t r = 0, e = 0;
    while ((r < c->nrec || e < c->nerr) && !im->failed) {
        if (e < c->nerr && (r >= c->nrec || c->errs[e].line < c->lines[r])) {
            const rp_ndparse_err *x = &c->errs[e++];
            batch_msg(im, im->cur, x->line, "%s: %s", rp_err_code(x->rc), x->msg);
            im->skipped++;
            if (im->strict) {
                submit(im);        /* the good records before it */
                im->failed = true; /* and nothing after it */
            }
            continue;
        }
        batch *b = im->cur;
        size_t start = c->offs[r], end = r + 1 < c->nrec ? c->offs[r + 1] : c->out.size;
        size_t off = b->recs.size;
        if (msgpack_sbuffer_write(&b->recs, c->out.data + start, end - start) != 0 ||
            !batch_note(b, off, c->lines[r])) {
            b->recs.size = off;
            batch_failed(im, b, RP_UNAVAILABLE, "out of memory");
            return;
        }
        r++;
        if (b->n >= im->batch_max || b->recs.size >= im->bytes_max) submit(im);
    }
}

/* Ctrl-C during an import: set by the handler, read by the reading loop.
 * The handler is installed without SA_RESTART, so a read blocked in
 * getline returns (EINTR) and the loop sees the flag at once; it is reset
 * to the default action after the first signal (SA_RESETHAND), so a second
 * Ctrl-C ends the process for someone who cannot wait for the replies. */
static volatile sig_atomic_t import_interrupted;
static int import_in_fd = -1, import_null_fd = -1; /* the input, and /dev/null */

/* Also point the input at /dev/null (dup2 is async-signal-safe): a read
 * that starts after the flag was checked sees end of input instead of
 * waiting on a pipe that may never deliver more. */
static void on_import_sigint(int sig) {
    (void)sig;
    import_interrupted = 1;
    if (import_in_fd >= 0 && import_null_fd >= 0) dup2(import_null_fd, import_in_fd);
}

/* Block SIGINT in this thread (and so in the threads it starts), keeping
 * the old mask in *old: the parser and writer threads must never take the
 * signal, or the main thread would stay blocked in its read. */
static void sigint_block(sigset_t *old) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    pthread_sigmask(SIG_BLOCK, &s, old);
}

/* Install the Ctrl-C handler and restore the main thread's mask. */
static void sigint_catch(const sigset_t *old) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_import_sigint;
    sa.sa_flags = SA_RESETHAND; /* no SA_RESTART: getline returns */
    sigemptyset(&sa.sa_mask);
    import_interrupted = 0;
    sigaction(SIGINT, &sa, NULL);
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* Would reading f block now? (nothing in its stdio buffer, nothing on the
 * fd). The buffer test reads glibc's FILE, as gnulib's freadahead does;
 * elsewhere only the fd is asked, and a wrong "idle" only cuts a batch
 * short. */
static bool input_idle(FILE *f) {
#ifdef __GLIBC__
    if (f->_IO_read_ptr < f->_IO_read_end) return false;
#endif
    struct pollfd p = {.fd = fileno(f), .events = POLLIN};
    return poll(&p, 1, 0) == 0;
}

/* The input stalls (a pipe whose writer pauses): parse, batch and send
 * what was read so far instead of holding it until more comes. */
static void push_idle(importer *im, rp_ndparse *np) {
    rp_ndparse_flush(np);
    const rp_ndparse_chunk *ch;
    while (!im->failed && (ch = rp_ndparse_take(np, true))) {
        take_chunk(im, ch);
        rp_ndparse_release(np, ch);
    }
    if (!im->failed && im->cur->n > 0) submit(im);
    progress(im, false);
}

/* Open the input: a file or stdin; *total gets a regular file's size. */
static FILE *open_input(rp_cli *cli, const char *path, uint64_t *total) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
        rp_cli_errorf(cli, "import: cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    *total = (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) ? (uint64_t)st.st_size : 0;
    return f;
}

int rp_cli_import(rp_cli *cli, const rp_cli_import_opts *o) {
    importer im;
    memset(&im, 0, sizeof im);
    im.cli = cli;
    im.strict = o->strict;
    FILE *in = open_input(cli, o->path, &im.total);
    if (in == NULL) return RP_CLI_EXIT_USAGE;
    rp_errbuf eb = {0};
    sigset_t mask;
    sigint_block(&mask); /* until the threads (store writer, parsers) are started */
    rp_err rc = rp_cli_conn_open(cli, RP_CLI_BULK, &im.conn, &eb);
    if (rc != RP_OK) {
        pthread_sigmask(SIG_SETMASK, &mask, NULL);
        if (in != stdin) fclose(in);
        return rp_cli_fail(cli, rc, &eb);
    }
    bool local = rp_cli_conn_local(im.conn);
    im.lim = rp_cli_conn_limits(im.conn);
    im.batch_max = o->batch ? o->batch : local ? BATCH_LOCAL : BATCH_SERVER;
    im.bytes_max = local ? BATCH_BYTES_LOCAL : BATCH_BYTES_SERVER;
    if (im.bytes_max > im.lim->max_bytes / 2) im.bytes_max = im.lim->max_bytes / 2;
    im.window = im.strict ? 1 : WINDOW;
    for (unsigned i = 0; i <= WINDOW; i++) batch_init(&im.slots[i]);
    im.cur = &im.slots[0];
    msgpack_sbuffer_init(&im.params);
    im.t0 = now_s();
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (unsigned)ncpu;
    unsigned max_pending = 2 * threads + 2;
    rp_ndparse *np = NULL;
    if ((rc = rp_ndparse_start(threads, im.lim, &np, &eb)) != RP_OK) {
        rp_cli_fail(cli, rc, &eb);
        im.failed = true;
    }
    import_in_fd = fileno(in);
    import_null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    sigint_catch(&mask);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    const rp_ndparse_chunk *ch;
    for (;;) {
        if (!im.failed && !import_interrupted && input_idle(in)) push_idle(&im, np);
        if (im.failed || import_interrupted || (n = getline(&line, &cap, in)) < 0) break;
        im.bytes += (uint64_t)n;
        rp_ndlines lr; /* one line from getline: net/ndlines.h says what is blank */
        rp_ndline ln;
        rp_ndlines_init(&lr, line, (size_t)n, im.lines);
        bool got = rp_ndlines_next(&lr, &ln);
        im.lines = lr.no;
        if (!got) continue;
        if ((rc = rp_ndparse_put(np, ln.p, ln.len, ln.no, &eb)) != RP_OK) {
            batch_failed(&im, im.cur, rc, rp_errbuf_msg(&eb));
            break;
        }
        while (!im.failed && (ch = rp_ndparse_take(np, rp_ndparse_pending(np) >= max_pending))) {
            take_chunk(&im, ch);
            rp_ndparse_release(np, ch);
        }
        progress(&im, false);
    }
    /* Ctrl-C: what was sent is received and counted; records read but not
     * yet sent are dropped, and the summary says so (exit 130). */
    bool interrupted = import_interrupted != 0;
    bool read_error = ferror(in) != 0 && !interrupted;
    if (!im.failed && !interrupted) {
        rp_ndparse_flush(np);
        while (!im.failed && (ch = rp_ndparse_take(np, true))) {
            take_chunk(&im, ch);
            rp_ndparse_release(np, ch);
        }
    }
    rp_ndparse_stop(np);
    if (!im.failed && !interrupted) submit(&im);
    while (im.inflight > 0) receive_one(&im);
    signal(SIGINT, SIG_DFL);
    import_in_fd = -1;
    if (import_null_fd >= 0) close(import_null_fd);
    import_null_fd = -1;
    flush_msgs(&im, im.cur);
    free(line);
    if (in != stdin) fclose(in);
    rp_cli_conn_close(im.conn); /* waits for the writer and flushes (local) */
    double dt = now_s() - im.t0;
    clear_progress(&im);
    if (read_error) {
        rp_cli_errorf(cli, "import: error reading %s", o->path);
        im.failed = true;
    }
    double rate = dt > 0 ? (double)im.imported / dt : 0.0;
    fprintf(cli->err, "%s import: %s%" PRIu64 " records imported, %" PRIu64
            " skipped, %.2f s, %.0f records/s\n", cli->prog,
            interrupted ? "INTERRUPTED: " : im.failed ? "STOPPED: " : "", im.imported, im.skipped, dt, rate);
    if (cli->json) /* the same summary for scripts, on stdout */
        fprintf(cli->out, "{\"imported\":%" PRIu64 ",\"skipped\":%" PRIu64 ",\"lines\":%" PRIu64
                ",\"seconds\":%.3f,\"records_per_second\":%.0f,\"stopped\":%s,\"interrupted\":%s}\n",
                im.imported, im.skipped, im.lines, dt, rate, im.failed ? "true" : "false",
                interrupted ? "true" : "false");
    for (unsigned i = 0; i <= WINDOW; i++) batch_free(&im.slots[i]);
    msgpack_sbuffer_destroy(&im.params);
    if (!im.failed && !interrupted && im.skipped > 0 && !o->allow_skips)
        fprintf(cli->err, "%s import: exit %d: %" PRIu64 " record(s) skipped (pass --allow-skips "
                "to exit 0 when skipping is intended)\n", cli->prog, RP_CLI_EXIT_ERROR, im.skipped);
    bool skips_fail = im.skipped > 0 && !o->allow_skips;
    if (interrupted) return RP_CLI_EXIT_INTERRUPTED;
    return im.failed || skips_fail ? RP_CLI_EXIT_ERROR : RP_CLI_EXIT_OK;
}

/* --- export ------------------------------------------------------------------------------ */

#define EXPORT_PAGE 1000 /* customers per export call (the api's maximum) */

int rp_cli_export(rp_cli *cli, const char *path) {
    FILE *out = cli->out;
    bool to_file = path && strcmp(path, "-") != 0;
    if (to_file && (out = fopen(path, "w")) == NULL) {
        rp_cli_errorf(cli, "export: cannot create %s: %s", path, strerror(errno));
        return RP_CLI_EXIT_USAGE;
    }
    static char obuf[1 << 20];
    if (to_file) setvbuf(out, obuf, _IOFBF, sizeof obuf);
    rp_errbuf eb = {0};
    rp_cli_conn *c = NULL;
    rp_err rc = rp_cli_conn_open(cli, RP_CLI_READ, &c, &eb);
    int code = RP_CLI_EXIT_OK;
    if (rc != RP_OK) {
        code = rp_cli_fail(cli, rc, &eb);
        goto done;
    }
    char after[128] = ""; /* ids are at most 64 bytes */
    uint64_t records = 0;
    double t0 = now_s(), shown = 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rp_buf jb;
    rp_buf_init(&jb, 0);
    for (;;) {
        msgpack_sbuffer_clear(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, after[0] ? 2 : 1);
        rp_mp_pack_cstr(&pk, "limit");
        msgpack_pack_int(&pk, EXPORT_PAGE);
        if (after[0]) {
            rp_mp_pack_cstr(&pk, "after");
            rp_mp_pack_cstr(&pk, after);
        }
        rp_cli_reply r;
        rc = rp_cli_call(c, "export", sb.data, sb.size, &r, &eb);
        if (rc == RP_OK && r.rc != RP_OK) rc = rp_errf(&eb, r.rc, "%s", r.message);
        if (rc != RP_OK) break;
        const msgpack_object *recs = rp_mp_get(&r.result, "records");
        if (recs == NULL || recs->type != MSGPACK_OBJECT_ARRAY) {
            rc = rp_errf(&eb, RP_INTERNAL, "export: the reply has no records");
            break;
        }
        for (uint32_t i = 0; i < recs->via.array.size && rc == RP_OK; i++) {
            rp_buf_reset(&jb);
            rc = rp_msgpack_to_json(&recs->via.array.ptr[i], 0, &jb, &eb);
            if (rc == RP_OK && (fwrite(jb.p, 1, jb.len, out) != jb.len || fputc('\n', out) == EOF))
                rc = rp_errf(&eb, RP_INTERNAL, "export: write error: %s", strerror(errno));
            records++;
        }
        if (rc != RP_OK) break;
        const msgpack_object *next = rp_mp_get(&r.result, "next");
        if (next == NULL || next->type != MSGPACK_OBJECT_STR) break;
        if (next->via.str.size == 0 || next->via.str.size >= sizeof after) {
            rc = rp_errf(&eb, RP_INTERNAL, "export: the reply's next id is not valid");
            break;
        }
        memcpy(after, next->via.str.ptr, next->via.str.size);
        after[next->via.str.size] = '\0';
        if (cli->progress && now_s() - shown >= PROGRESS_EVERY) {
            shown = now_s();
            fprintf(cli->err, "\r\033[Kexporting: %" PRIu64 " records", records);
            fflush(cli->err);
        }
    }
    rp_buf_free(&jb);
    msgpack_sbuffer_destroy(&sb);
    if (rc == RP_OK && fflush(out) != 0)
        rc = rp_errf(&eb, RP_INTERNAL, "export: write error: %s", strerror(errno));
    if (cli->progress) fputs("\r\033[K", cli->err);
    if (rc != RP_OK) {
        code = rp_cli_fail(cli, rc, &eb);
    } else {
        double dt = now_s() - t0;
        fprintf(cli->err, "%s export: %" PRIu64 " records, %.2f s, %.0f records/s\n", cli->prog,
                records, dt, dt > 0 ? (double)records / dt : 0.0);
    }
done:
    rp_cli_conn_close(c);
    if (to_file && fclose(out) != 0 && code == RP_CLI_EXIT_OK) {
        rp_cli_errorf(cli, "export: cannot finish %s: %s", path, strerror(errno));
        code = RP_CLI_EXIT_ERROR;
    }
    return code;
}

/* --- the commands ------------------------------------------------------------------------- */

int rp_cli_cmd_import(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    const char *strict = NULL, *batch_s = NULL, *allow_skips = NULL;
    const rp_cli_opt opts[] = {
        {"strict", NULL, "stop at the first bad line (records before it are kept; exit 3)", &strict},
        {"allow-skips", NULL, "exit 0 even when bad lines were skipped (else exit 3)", &allow_skips},
        {"batch", "N", "records per import call (default 500, or 5000 with --data)", &batch_s},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos;
    bool help;
    if (rp_cli_parse(cli, cmd, opts, argc, argv, pos, 1, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    if (npos != 1) return rp_cli_usage_error(cli, cmd, "give a FILE, or - for stdin");
    rp_cli_import_opts o = {.path = pos[0], .strict = strict != NULL,
                            .allow_skips = allow_skips != NULL};
    int64_t b = 0; /* 0: the mode's default */
    int code = rp_cli_opt_int(cli, cmd, "batch", batch_s, 1, 10000, "1..10000", &b);
    if (code != RP_CLI_EXIT_OK) return code;
    o.batch = (uint32_t)b;
    return rp_cli_import(cli, &o);
}

int rp_cli_cmd_export(rp_cli *cli, const rp_cli_cmd *cmd, int argc, char **argv) {
    const char *pos[1];
    int npos;
    bool help;
    if (rp_cli_parse(cli, cmd, NULL, argc, argv, pos, 1, &npos, &help) != RP_OK) return RP_CLI_EXIT_USAGE;
    if (help) return RP_CLI_EXIT_OK;
    return rp_cli_export(cli, npos ? pos[0] : NULL);
}
