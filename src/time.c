/*
 * Sleeping.  A task's sleep is a waiter (wait.c) in its worker's timer heap:
 * the worker's timer firing is the completer, a cancel is the canceller, and
 * the heap lock orders insertion against the runtime-wide cancel sweep (a
 * sleep that starts after the sweep sees `cancelled` under the same lock).
 * A plain pthread's sleep is a waiter whose own futex deadline commits it.
 * A sleep until UINT64_MAX is a waiter in no heap at all: only a cancel
 * scope, token or group cancel (or shutdown) ends it.
 */
#include <errno.h>

#include "runtime.h"

uint64_t weft_now(void)
{
    return weft__now();
}

static const weft__waiter_ops timer_ops = {.unlink = weft__timers_unlink};

int weft_sleep_until(uint64_t deadline)
{
    weft__worker *wk = weft__worker_self();
    if (weft__cancelled()) return ECANCELED;
    weft__waiter w;
    if (!wk || !wk->current) {
        weft__waiter_init(&w, NULL, NULL);
        if (weft__waiter_publish(&w)) return ECANCELED;
        int rc = weft__waiter_park(&w, deadline == UINT64_MAX ? 0 : deadline ? deadline : 1);
        return rc == ETIMEDOUT ? 0 : rc;
    }
    if (deadline <= weft__now()) return weft_yield();
    if (deadline == UINT64_MAX) {
        /* Forever: no timer, only a cancel (or shutdown) ends it. */
        weft__waiter_init(&w, NULL, NULL);
        if (weft__waiter_publish(&w)) return ECANCELED;
        return weft__waiter_park(&w, 0);
    }
    weft__timers *h = &wk->timers;
    weft__waiter_init(&w, &timer_ops, h);
    w.deadline = deadline;
    if (weft__waiter_publish(&w)) return ECANCELED;
    weft__timers_lock(h);
    int rc = weft__waiter_pending(&w) ? weft__timers_add_locked(h, &w) : 0;
    weft__timers_unlock(h);
    if (rc) return weft__waiter_withdraw(&w, rc);
    return weft__waiter_park(&w, 0);
}

int weft_sleep(uint64_t ns)
{
    uint64_t now = weft__now();
    return weft_sleep_until(ns > UINT64_MAX - now ? UINT64_MAX : now + ns);
}
