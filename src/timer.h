/*
 * Per-worker timer heap of sleeping waiters (see timer.c).
 *
 * Concurrency table:
 *   add, pop_expired   the owner worker (add also from its tasks)
 *   remove             any thread (a canceller unlinking a waiter)
 *   next               any thread: a relaxed hint of the earliest deadline
 * Every operation but `next` takes the heap's spin lock.
 */
#ifndef WEFT_TIMER_H
#define WEFT_TIMER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct weft__waiter;

typedef struct weft__timers {
    _Atomic bool lock;             /* test-and-test-and-set spin lock */
    struct weft__waiter **heap;    /* guarded by lock: binary min-heap on deadline */
    size_t n, cap;                 /* guarded by lock */
    _Atomic uint64_t next;         /* atomic: heap[0]->deadline or UINT64_MAX */
} weft__timers;

#define WEFT__HEAP_NONE ((size_t)-1)

void weft__timers_init(weft__timers *h);
void weft__timers_fini(weft__timers *h);
void weft__timers_lock(weft__timers *h);
void weft__timers_unlock(weft__timers *h);
/* Lock held.  ENOMEM when the heap cannot grow. */
int weft__timers_add_locked(weft__timers *h, struct weft__waiter *w);
/* Lock held.  Removes w if it is in the heap. */
void weft__timers_remove_locked(weft__timers *h, struct weft__waiter *w);
/* ops->unlink for a waiter whose obj is its heap: takes the lock, removes. */
void weft__timers_unlink(struct weft__waiter *w);
/* Pops the waiters due at `now` and claims each under the lock (so a
 * canceller's unlink, which takes the lock, cannot let the owner free a
 * waiter between pop and claim); then, unlocked, completes each claimed
 * sleeper or fires each claimed entry (ops->fire). */
void weft__timers_expire(weft__timers *h, uint64_t now);
/* Lock held.  Pops the earliest waiter if its deadline <= now, else NULL. */
struct weft__waiter *weft__timers_pop_locked(weft__timers *h, uint64_t now);

#endif
