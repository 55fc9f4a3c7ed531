/*
 * Timer heap: a binary min-heap of waiters ordered by deadline, one per
 * worker, with each waiter's index kept in the waiter so a canceller can
 * remove it in O(log n).
 *
 * Invariants:
 *  1. w->heap_idx == i  iff  heap[i] == w;  WEFT__HEAP_NONE when not in the heap.
 *  2. next == heap[0]->deadline, or UINT64_MAX when empty, whenever the lock
 *     is free.  It is read without the lock as a hint (a stale value makes a
 *     worker look once too often or park until an earlier deadline; the
 *     owner re-reads it before parking).
 *  3. A binary heap is not stable: sleepers with equal deadlines wake in an
 *     unspecified order (distinct deadlines wake in deadline order).
 *
 * The lock is a spin lock: it is held for O(log n) steps and is contended
 * only by a canceller racing the owner.
 */
#include <stdlib.h>
#include <errno.h>

#include "internal.h"
#include "runtime.h" /* weft__waiter_complete (inline) */
#include "timer.h"
#include "wait.h"

void weft__timers_init(weft__timers *h)
{
    atomic_init(&h->lock, false);
    h->heap = NULL;
    h->n = h->cap = 0;
    atomic_init(&h->next, UINT64_MAX);
}

void weft__timers_fini(weft__timers *h)
{
    free(h->heap);
}

void weft__timers_lock(weft__timers *h)
{
    for (;;) {
        /* acquire: pairs with the release in unlock. */
        if (!atomic_exchange_explicit(&h->lock, true, memory_order_acquire)) return;
        while (atomic_load_explicit(&h->lock, memory_order_relaxed)) weft__cpu_relax();
    }
}

void weft__timers_unlock(weft__timers *h)
{
    atomic_store_explicit(&h->lock, false, memory_order_release);
}

static void put(weft__timers *h, size_t i, weft__waiter *w)
{
    h->heap[i] = w;
    w->heap_idx = i;
}

static void sift_up(weft__timers *h, size_t i)
{
    weft__waiter *w = h->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->heap[p]->deadline <= w->deadline) break;
        put(h, i, h->heap[p]);
        i = p;
    }
    put(h, i, w);
}

static void sift_down(weft__timers *h, size_t i)
{
    weft__waiter *w = h->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->heap[c + 1]->deadline < h->heap[c]->deadline) c++;
        if (w->deadline <= h->heap[c]->deadline) break;
        put(h, i, h->heap[c]);
        i = c;
    }
    put(h, i, w);
}

static void publish_next(weft__timers *h)
{
    /* relaxed: a hint (invariant 2). */
    atomic_store_explicit(&h->next, h->n ? h->heap[0]->deadline : UINT64_MAX,
                          memory_order_relaxed);
}

int weft__timers_add_locked(weft__timers *h, weft__waiter *w)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        weft__waiter **a = realloc(h->heap, cap * sizeof *a);
        if (!a) return ENOMEM;
        h->heap = a;
        h->cap = cap;
    }
    h->heap[h->n] = w;
    sift_up(h, h->n++);
    publish_next(h);
    return 0;
}

void weft__timers_remove_locked(weft__timers *h, weft__waiter *w)
{
    size_t i = w->heap_idx;
    if (i == WEFT__HEAP_NONE) return;
    WEFT_ASSERT(i < h->n && h->heap[i] == w);
    w->heap_idx = WEFT__HEAP_NONE;
    weft__waiter *last = h->heap[--h->n];
    if (last != w) {
        put(h, i, last);
        if (i > 0 && h->heap[(i - 1) / 2]->deadline > last->deadline)
            sift_up(h, i);
        else
            sift_down(h, i);
    }
    publish_next(h);
}

weft__waiter *weft__timers_pop_locked(weft__timers *h, uint64_t now)
{
    if (h->n == 0 || h->heap[0]->deadline > now) return NULL;
    weft__waiter *w = h->heap[0];
    weft__timers_remove_locked(h, w);
    return w;
}

void weft__timers_unlink(weft__waiter *w)
{
    weft__timers *h = w->obj;
    weft__timers_lock(h);
    weft__timers_remove_locked(h, w);
    weft__timers_unlock(h);
}

#define EXPIRE_BATCH 64

void weft__timers_expire(weft__timers *h, uint64_t now)
{
    if (atomic_load_explicit(&h->next, memory_order_relaxed) > now) return;
    for (;;) {
        weft__waiter *batch[EXPIRE_BATCH], *w;
        size_t n = 0, popped = 0;
        weft__timers_lock(h);
        while (popped < EXPIRE_BATCH && (w = weft__timers_pop_locked(h, now))) {
            popped++;
            /* The deadline is the sleep's commit: claim it unless a
             * canceller decided first (or the owner is already cancelled:
             * claim rejects it). */
            if (weft__waiter_claim(w)) batch[n++] = w;
        }
        weft__timers_unlock(h);
        /* Latest deadline first: each wake-up displaces the previous one from
         * the next slot to the deque, so the earliest runs first and the rest
         * follow in deadline order (the deque pops LIFO). */
        for (size_t i = n; i-- > 0;) {
            if (batch[i]->ops && batch[i]->ops->fire)
                batch[i]->ops->fire(batch[i]);
            else
                weft__waiter_complete(batch[i], 0);
        }
        if (popped < EXPIRE_BATCH) return;
    }
}
