/*
 * weft's timer thread: fires the deadlines that no worker owns (those of
 * tokens, and of scopes entered on plain pthreads).  Started on first use,
 * it lives until the process exits, sleeping on a futex until the earliest
 * deadline.
 *
 * Hand-shake (no lost wake-up): the thread reads `seq`, then looks at the
 * heap, then sleeps on `seq` unless it changed.  An adder that makes a new
 * earliest deadline bumps `seq` after inserting (under the heap lock) and
 * wakes the thread.  Either the thread's look at the heap comes after the
 * insertion and sees it, or the bump comes after the thread read `seq` and
 * the futex wait returns at once.
 */
#include <pthread.h>

#include "runtime.h"

static struct {
    weft__timers heap;
    _Atomic uint32_t seq;
    pthread_once_t once;
} G = {.once = PTHREAD_ONCE_INIT};

static void *gtimer_main(void *arg)
{
    (void)arg;
    for (;;) {
        /* acquire: pairs with the adder's release bump. */
        uint32_t seq = atomic_load_explicit(&G.seq, memory_order_acquire);
        weft__timers_expire(&G.heap, weft__now());
        weft__timers_lock(&G.heap);
        uint64_t next = atomic_load_explicit(&G.heap.next, memory_order_relaxed);
        weft__timers_unlock(&G.heap);
        weft__futex_wait(&G.seq, seq, next == UINT64_MAX ? 0 : next);
    }
    return NULL;
}

static void gtimer_start(void)
{
    weft__timers_init(&G.heap);
    atomic_init(&G.seq, 0);
    pthread_attr_t a;
    pthread_t th;
    WEFT_CHECK(pthread_attr_init(&a));
    WEFT_CHECK(pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED));
    if (pthread_create(&th, &a, gtimer_main, NULL))
        WEFT_DIE("cannot start weft's timer thread");
    pthread_attr_destroy(&a);
}

weft__timers *weft__gtimer_heap(void)
{
    WEFT_CHECK(pthread_once(&G.once, gtimer_start));
    return &G.heap;
}

int weft__gtimer_add(weft__waiter *w)
{
    weft__timers *h = weft__gtimer_heap();
    weft__timers_lock(h);
    int rc = weft__timers_add_locked(h, w);
    bool first = rc == 0 && w->heap_idx == 0;
    weft__timers_unlock(h);
    if (first) {
        /* release: the insertion happens before the thread's next look. */
        atomic_fetch_add_explicit(&G.seq, 1, memory_order_release);
        weft__futex_wake(&G.seq, 1);
    }
    return rc;
}
