/* conn.c — the connection lifecycle both faces share (see conn.h). */
#include "net/conn.h"

#include <time.h>

bool rp_conn_admit(rp_net_stats *st, const rp_config *cfg) {
    if (atomic_fetch_add(&st->conns_open, 1) >= cfg->max_connections) {
        atomic_fetch_add(&st->conns_rejected, 1);
        return false;
    }
    atomic_fetch_add(&st->conns_total, 1);
    return true;
}

void rp_conn_release(rp_net_stats *st) { atomic_fetch_sub(&st->conns_open, 1); }

void rp_conn_count_timeout(rp_net_stats *st) { atomic_fetch_add(&st->conns_timed_out, 1); }

void rp_conn_count_bad_frame(rp_net_stats *st) { atomic_fetch_add(&st->bad_frames, 1); }

void rp_conn_count_refused(rp_net_stats *st, rp_net_face face, rp_err rc) {
    rp_net_refusal r;
    switch (rc) {
    case RP_UNAUTHORIZED: r = RP_REFUSED_401; break;
    case RP_FORBIDDEN: r = RP_REFUSED_403; break;
    case RP_TOO_LARGE: r = RP_REFUSED_413; break;
    case RP_UNAVAILABLE: r = RP_REFUSED_503; break;
    default: return;
    }
    if ((unsigned)face >= RP_FACE__COUNT) return;
    atomic_fetch_add_explicit(&st->refused[face][r], 1, memory_order_relaxed);
}

/* ms as a timeval. */
static struct timeval conn_tv(uint32_t ms) {
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

void rp_conn_deadlines_init(rp_conn_deadlines *d, const rp_config *cfg) {
    uint32_t slow = cfg->slow_timeout_ms;
    d->idle = conn_tv(cfg->idle_timeout_ms);
    d->slow = conn_tv(slow);
    d->linger = conn_tv(slow < 2000 ? slow : 2000);
    d->slow_ms = slow;
    d->over_ms = slow < 1000 ? slow : 1000;
}

int64_t rp_conn_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rp_conn_flight_init(rp_conn_flight *f, rp_loop *loop) {
    f->loop = loop;
    atomic_init(&f->n, 0);
}

void rp_conn_call_begin(rp_conn_flight *f, rp_conn_call *k) {
    k->thread = pthread_self();
    if (!k->counted) atomic_fetch_add(&f->n, 1);
    k->counted = true;
}

bool rp_conn_call_inline(const rp_conn_call *k) { return pthread_equal(pthread_self(), k->thread); }

void rp_conn_call_post(rp_conn_flight *f, rp_conn_call *k, void (*fn)(void *), void *arg) {
    rp_loop_post(f->loop, &k->item, fn, arg);
}

void rp_conn_call_end(rp_conn_flight *f, rp_conn_call *k) {
    if (!k->counted) return;
    k->counted = false;
    atomic_fetch_sub(&f->n, 1);
}

unsigned rp_conn_in_flight(const rp_conn_flight *f) {
    return atomic_load(&((rp_conn_flight *)f)->n);
}
