/*
 * The waiter protocol: the one place anything in weft blocks (see wait.c for
 * the algorithm and its invariants).
 *
 * A blocking call fills a weft__waiter on its own stack, links it where its
 * completers will find it (a primitive's queue, a timer heap, a task's joiner
 * slot), and parks.  Exactly one party then decides its fate with one CAS on
 * `state`:
 *
 *   completer: WAITING -> CLAIMED (weft__waiter_claim), moves the item /
 *              permit / ownership, then weft__waiter_complete(w, 0).
 *   canceller: WAITING -> ABORTED (weft__waiter_abort), which unlinks the
 *              waiter through its ops and wakes the owner with the code.
 *
 * Concurrency table:
 *   init, park            the owner only
 *   claim, abort          any thread, concurrently; exactly one CAS succeeds
 *   complete              only the thread whose claim succeeded, once
 *   state reads           any thread (a hint unless you won a CAS)
 */
#ifndef WEFT_WAIT_H
#define WEFT_WAIT_H

#include "internal.h"

enum {
    WEFT__W_WAITING = 0,
    WEFT__W_CLAIMED = 1, /* a completer owns the waiter; DONE follows */
    WEFT__W_DONE = 2,    /* committed; result is 0 or the completer's code */
    WEFT__W_ABORTED = 3, /* cancelled; result is the canceller's code */
};

struct weft__waiter;
typedef struct weft__waiter_ops {
    /* Removes w from wherever the blocker linked it.  Called by the winning
     * canceller after its CAS; must tolerate a waiter a completer already
     * unlinked (it then does nothing). */
    void (*unlink)(struct weft__waiter *w);
} weft__waiter_ops;

typedef struct weft__waiter {
    _Atomic int state;              /* atomic; the one decision */
    int result;                     /* written by the winner before the wake-up */
    weft_task *task;                /* owner task; NULL for a plain pthread */
    _Atomic uint32_t futex;         /* plain-pthread owner: 0 wait, 2 sleeping, 1 woken */
    const weft__waiter_ops *ops;    /* how a canceller unlinks it */
    void *obj;                      /* what it waits on (for ops) */
    void *slot;                     /* item in or out, for primitives that move one */
    uint64_t deadline;              /* timers: weft_now() deadline */
    size_t heap_idx;                /* timers: index in the heap; guarded by its lock */
    struct weft__waiter *next, *prev; /* queue links; guarded by the primitive */
} weft__waiter;

/* Prepares w for the calling task or pthread; the task is marked PARKING. */
void weft__waiter_init(weft__waiter *w, const weft__waiter_ops *ops, void *obj);
/* Blocks until a completer or canceller wakes the owner; returns w->result.
 * For a plain pthread with deadline != 0, a passing deadline commits the
 * waiter itself with ETIMEDOUT (if no one else decided first). */
int weft__waiter_park(weft__waiter *w, uint64_t pthread_deadline);

static inline bool weft__waiter_claim(weft__waiter *w)
{
    int exp = WEFT__W_WAITING;
    /* acq_rel: acquire the blocker's writes to the waiter (its slot); release
     * is irrelevant until complete().  Pairs with abort()'s CAS. */
    return atomic_compare_exchange_strong_explicit(&w->state, &exp, WEFT__W_CLAIMED,
                                                   memory_order_acq_rel, memory_order_acquire);
}

/* After a successful claim: records result, marks DONE and wakes the owner.
 * The caller must not touch w afterwards. */
void weft__waiter_complete(weft__waiter *w, int result);

/* Cancels w with code unless a completer already claimed it.  Returns true if
 * this call won (w is then unlinked and its owner woken). */
bool weft__waiter_abort(weft__waiter *w, int code);

/* Makes the owner of w runnable (task) or wakes its thread (pthread). */
void weft__waiter_wake(weft__waiter *w);

#endif
