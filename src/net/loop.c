/* loop.c — worker event loops and their cross-thread mailbox. */
#include "net/loop.h"

#include <event2/thread.h>
#include <pthread.h>
#include <stdlib.h>

struct rp_loop {
    struct event_base *base;
    struct event *wake;   /* activated by rp_loop_post */
    pthread_mutex_t mu;
    rp_loop_item *head, *tail;
};

rp_err rp_loop_global_init(rp_errbuf *eb) {
    if (evthread_use_pthreads() != 0)
        return rp_errf(eb, RP_INTERNAL, "libevent: evthread_use_pthreads failed");
    return RP_OK;
}

/* Drain the mailbox: take the whole list under the lock, run it outside. */
static void loop_on_wake(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rp_loop *l = arg;
    pthread_mutex_lock(&l->mu);
    rp_loop_item *it = l->head;
    l->head = l->tail = NULL;
    pthread_mutex_unlock(&l->mu);
    while (it) {
        rp_loop_item *next = it->next; /* fn may free the item */
        it->fn(it->arg);
        it = next;
    }
}

rp_err rp_loop_create(rp_loop **out, rp_errbuf *eb) {
    rp_loop *l = calloc(1, sizeof *l);
    if (l == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory");
    pthread_mutex_init(&l->mu, NULL);
    l->base = event_base_new();
    if (l->base == NULL) goto fail;
    l->wake = event_new(l->base, -1, 0, loop_on_wake, l);
    if (l->wake == NULL) goto fail;
    *out = l;
    return RP_OK;
fail:
    rp_loop_free(l);
    return rp_errf(eb, RP_UNAVAILABLE, "libevent: cannot create an event base");
}

struct event_base *rp_loop_base(rp_loop *l) { return l->base; }

void rp_loop_post(rp_loop *l, rp_loop_item *item, void (*fn)(void *), void *arg) {
    item->fn = fn;
    item->arg = arg;
    item->next = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->tail) l->tail->next = item;
    else l->head = item;
    l->tail = item;
    pthread_mutex_unlock(&l->mu);
    event_active(l->wake, 0, 0);
}

void rp_loop_run(rp_loop *l) { event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY); }

void rp_loop_stop(rp_loop *l) { event_base_loopexit(l->base, NULL); }

void rp_loop_free(rp_loop *l) {
    if (l == NULL) return;
    if (l->wake) event_free(l->wake);
    if (l->base) event_base_free(l->base);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
