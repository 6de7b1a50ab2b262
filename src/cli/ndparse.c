/* ndparse.c — NDJSON lines to msgpack records on worker threads, in order.
 *
 * Import spends most of its CPU in jansson (net/json.h builds a tree per
 * line, then walks it into msgpack). This module spreads that work over a
 * few threads while keeping the file's order:
 *
 *   - the reader (the import's thread) copies lines into the current chunk
 *     (up to NDP_CHUNK_LINES lines or NDP_CHUNK_BYTES of text); a full chunk
 *     is queued for the workers and appended to the list of outstanding
 *     chunks, which is in file order;
 *   - each worker takes a queued chunk and converts every line: a record
 *     (its msgpack bytes appended to the chunk's output, with the line
 *     number) or an error (line number, code, sentence); then marks the
 *     chunk done;
 *   - the reader takes chunks back from the head of the outstanding list
 *     only, so records reach the batches in file order whatever thread
 *     finished first.
 *
 * One mutex guards the queue and the done flags; a condition variable wakes
 * workers (work queued, or shutdown) and another the reader (a chunk done).
 * The reader bounds memory by taking chunks back once rp_ndparse_pending
 * reaches its limit (the caller's loop does it).
 *
 * Limits: a line is copied once into its chunk; a single line larger than
 * NDP_CHUNK_BYTES gets a chunk of its own. With one thread the work still
 * leaves the reader's thread, which then only reads and sends.
 */
#include "cli/ndparse.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "net/json.h"

#define NDP_CHUNK_LINES 512
#define NDP_CHUNK_BYTES (256u << 10)

typedef struct ndp_chunk {
    rp_ndparse_chunk pub;    /* results, handed to the reader */
    struct ndp_chunk *next;  /* outstanding list (file order) */
    struct ndp_chunk *qnext; /* work queue */
    bool done;
    char *text;              /* the lines, one after another */
    size_t text_len, text_cap;
    size_t *starts, *lens;   /* of each line in text */
    uint64_t *lineno;
    uint32_t nlines, lines_cap;
} ndp_chunk;

struct rp_ndparse {
    rp_mpcheck_limits lim;
    pthread_mutex_t mu;
    pthread_cond_t work, ready;
    pthread_t *threads;
    unsigned nthreads;
    bool stopping;
    ndp_chunk *qhead, *qtail;   /* queued for the workers */
    ndp_chunk *ohead, *otail;   /* outstanding, in file order */
    unsigned pending;           /* outstanding chunks (queued, working or done) */
    ndp_chunk *cur;             /* being filled by the reader */
    ndp_chunk *spare;           /* a released chunk kept for reuse */
};

/* --- chunks -------------------------------------------------------------------------- */

static void chunk_free(ndp_chunk *c) {
    if (c == NULL) return;
    msgpack_sbuffer_destroy(&c->pub.out);
    free(c->pub.offs);
    free(c->pub.lines);
    free(c->pub.errs);
    free(c->text);
    free(c->starts);
    free(c->lens);
    free(c->lineno);
    free(c);
}

/* A chunk with room for NDP_CHUNK_LINES lines; NULL when out of memory. */
static ndp_chunk *chunk_new(void) {
    ndp_chunk *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    msgpack_sbuffer_init(&c->pub.out);
    c->lines_cap = NDP_CHUNK_LINES;
    c->starts = malloc(NDP_CHUNK_LINES * sizeof *c->starts);
    c->lens = malloc(NDP_CHUNK_LINES * sizeof *c->lens);
    c->lineno = malloc(NDP_CHUNK_LINES * sizeof *c->lineno);
    c->pub.offs = malloc(NDP_CHUNK_LINES * sizeof *c->pub.offs);
    c->pub.lines = malloc(NDP_CHUNK_LINES * sizeof *c->pub.lines);
    c->pub.errs = malloc(NDP_CHUNK_LINES * sizeof *c->pub.errs);
    if (!c->starts || !c->lens || !c->lineno || !c->pub.offs || !c->pub.lines || !c->pub.errs) {
        chunk_free(c);
        return NULL;
    }
    return c;
}

/* Empty a chunk for reuse (keeps its memory). */
static void chunk_reset(ndp_chunk *c) {
    msgpack_sbuffer_clear(&c->pub.out);
    c->pub.nrec = c->pub.nerr = 0;
    c->text_len = 0;
    c->nlines = 0;
    c->done = false;
    c->next = c->qnext = NULL;
}

/* Convert every line of c (worker thread; c is this worker's alone). */
static void chunk_parse(const rp_mpcheck_limits *lim, ndp_chunk *c) {
    rp_ndparse_chunk *p = &c->pub;
    for (uint32_t i = 0; i < c->nlines; i++) {
        const char *line = c->text + c->starts[i];
        size_t off = p->out.size;
        rp_errbuf eb = {0};
        rp_err rc = rp_json_to_msgpack(line, c->lens[i], lim, &p->out, &eb);
        const char *why = NULL;
        if (rc != RP_OK) {
            why = rp_errbuf_msg(&eb);
        } else {
            unsigned char h = (unsigned char)p->out.data[off];
            if (!((h & 0xf0) == 0x80 || h == 0xde || h == 0xdf)) {
                rc = RP_BAD_REQUEST;
                why = "not a JSON object";
                p->out.size = off; /* drop it */
            }
        }
        if (why) {
            rp_ndparse_err *e = &p->errs[p->nerr++];
            e->line = c->lineno[i];
            e->rc = rc;
            snprintf(e->msg, sizeof e->msg, "%s", why);
            continue;
        }
        p->offs[p->nrec] = off;
        p->lines[p->nrec] = c->lineno[i];
        p->nrec++;
    }
}

/* --- workers ---------------------------------------------------------------------------- */

static void *worker(void *arg) {
    rp_ndparse *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->qhead == NULL && !p->stopping) pthread_cond_wait(&p->work, &p->mu);
        if (p->qhead == NULL) break; /* stopping and nothing left */
        ndp_chunk *c = p->qhead;
        p->qhead = c->qnext;
        if (p->qhead == NULL) p->qtail = NULL;
        pthread_mutex_unlock(&p->mu);
        chunk_parse(&p->lim, c);
        pthread_mutex_lock(&p->mu);
        c->done = true;
        pthread_cond_broadcast(&p->ready);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

rp_err rp_ndparse_start(unsigned threads, const rp_mpcheck_limits *lim, rp_ndparse **out,
                        rp_errbuf *eb) {
    if (threads == 0) threads = 1;
    rp_ndparse *p = calloc(1, sizeof *p);
    if (p == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory");
    p->lim = *lim;
    p->threads = calloc(threads, sizeof *p->threads);
    if (p->threads == NULL || pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p->threads);
        free(p);
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory");
    }
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->ready, NULL);
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0) break;
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        rp_ndparse_stop(p);
        return rp_errf(eb, RP_UNAVAILABLE, "cannot start a parsing thread");
    }
    *out = p;
    return RP_OK;
}

void rp_ndparse_stop(rp_ndparse *p) {
    if (p == NULL) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    for (ndp_chunk *c = p->ohead, *n; c; c = n) {
        n = c->next;
        chunk_free(c);
    }
    chunk_free(p->cur);
    chunk_free(p->spare);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->ready);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

/* --- the reader's side ------------------------------------------------------------------ */

/* Queue the chunk being filled (if it has lines). */
void rp_ndparse_flush(rp_ndparse *p) {
    ndp_chunk *c = p->cur;
    if (c == NULL || c->nlines == 0) return;
    p->cur = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->otail) p->otail->next = c;
    else p->ohead = c;
    p->otail = c;
    if (p->qtail) p->qtail->qnext = c;
    else p->qhead = c;
    p->qtail = c;
    p->pending++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
}

rp_err rp_ndparse_put(rp_ndparse *p, const char *line, size_t len, uint64_t lineno, rp_errbuf *eb) {
    ndp_chunk *c = p->cur;
    if (c && (c->nlines == c->lines_cap ||
              (c->text_len > 0 && c->text_len + len > NDP_CHUNK_BYTES))) {
        rp_ndparse_flush(p);
        c = NULL;
    }
    if (c == NULL) {
        if (p->spare) {
            c = p->spare;
            p->spare = NULL;
        } else if ((c = chunk_new()) == NULL) {
            return rp_errf(eb, RP_UNAVAILABLE, "out of memory reading lines");
        }
        p->cur = c;
    }
    if (len > SIZE_MAX - c->text_len - 1)
        return rp_errf(eb, RP_TOO_LARGE, "a line is too long to hold in memory");
    if (c->text_len + len > c->text_cap) {
        size_t nc = c->text_cap ? c->text_cap : NDP_CHUNK_BYTES;
        while (nc < c->text_len + len) {
            if (nc > SIZE_MAX / 2) return rp_errf(eb, RP_TOO_LARGE, "a line is too long");
            nc *= 2;
        }
        char *t = realloc(c->text, nc);
        if (t == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory reading lines");
        c->text = t;
        c->text_cap = nc;
    }
    if (len) memcpy(c->text + c->text_len, line, len);
    c->starts[c->nlines] = c->text_len;
    c->lens[c->nlines] = len;
    c->lineno[c->nlines] = lineno;
    c->nlines++;
    c->text_len += len;
    return RP_OK;
}

unsigned rp_ndparse_pending(const rp_ndparse *p) { return p->pending; }

const rp_ndparse_chunk *rp_ndparse_take(rp_ndparse *p, bool wait) {
    pthread_mutex_lock(&p->mu);
    ndp_chunk *c = p->ohead;
    while (c && !c->done && wait) pthread_cond_wait(&p->ready, &p->mu);
    if (c == NULL || !c->done) {
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    p->ohead = c->next;
    if (p->ohead == NULL) p->otail = NULL;
    p->pending--;
    pthread_mutex_unlock(&p->mu);
    c->next = NULL;
    return &c->pub;
}

void rp_ndparse_release(rp_ndparse *p, const rp_ndparse_chunk *pub) {
    if (pub == NULL) return;
    ndp_chunk *c = (ndp_chunk *)((char *)pub - offsetof(ndp_chunk, pub));
    chunk_reset(c);
    if (p->spare == NULL) p->spare = c;
    else chunk_free(c);
}
