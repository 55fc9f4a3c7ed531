/*
 * The waiter protocol: every blocking operation in weft parks through here.
 *
 * A blocked call is represented by a weft__waiter on the blocker's stack.
 * Its `state` moves exactly once out of WAITING:
 *
 *      WAITING --claim (completer)--> CLAIMED --complete--> DONE
 *         \
 *          ---abort (canceller)-----> ABORTED
 *
 * Both transitions out of WAITING are CASes on the same word, so exactly one
 * of "the operation committed" and "the operation was cancelled" wins
 * (invariant 1).  This is the same decision Trio's abort_fn, Go's selectDone
 * and the Kotlin channel's interrupted cells make; here it is one CAS that
 * works across OS threads.
 *
 * Invariants:
 *  1. state leaves WAITING once, by a successful CAS of claim or abort.
 *  2. Only the CAS winner writes `result` and wakes the owner, exactly once.
 *  3. The winner reads everything it needs from the waiter before the wake
 *     and touches nothing of it afterwards: the owner may return at once and
 *     its stack frame (which holds the waiter) be reused.
 *  4. The owner reads `result` only after being woken, and the wake is a
 *     release that its resumption acquires (the run-queue hand-off for a task,
 *     the futex word for a pthread), so it sees the winner's writes.
 *  5. A canceller that lost the CAS does nothing: the operation committed and
 *     the blocker returns success (a cancel shows at its next checkpoint).
 *
 * Owners.  A task owner parks by switching out (worker.c's PARKING/PARKED
 * hand-shake makes a wake that arrives before the switch finished safe).  A
 * plain-pthread owner waits on the futex word in the waiter: 0 = waiting,
 * 2 = asleep in the kernel, 1 = woken.  The waker exchanges in 1 and issues
 * FUTEX_WAKE only when it saw 2; the syscall on an address whose frame may
 * already be gone is harmless (at worst a spurious wake-up elsewhere, which
 * every futex waiter tolerates).
 *
 * Cancel scopes.  park() publishes the waiter in the owner's context
 * (weft__cctx.waiter) with a seq_cst store and then reads the EFF flag of
 * the owner's innermost cancel node with a seq_cst load; a canceller sets
 * EFF with a seq_cst RMW and then reads the context's waiter (cancel.c,
 * cctx_poke).  Of two such Dekker pairs at least one side sees the other:
 * either the blocker sees the cancel and aborts its own waiter, or the
 * canceller finds the waiter and aborts it; both aborts are the same CAS,
 * so the waiter is decided once.  While a canceller works on the published
 * waiter it holds the slot as BUSY; the owner, once woken, retracts the
 * waiter by CAS and waits out a BUSY holder, so no canceller touches a
 * waiter whose frame is gone.  A completer additionally refuses (aborts) a
 * waiter whose owner is already effectively cancelled (claim()): between a
 * cancel's EFF store and its abort, nothing is handed to the cancelled.
 *
 * Completers: a task's exit (join), a worker's timer (sleep), group exits;
 * cancellers: scopes, tokens, deadlines, runtime shutdown and a plain
 * pthread's own deadline.
 */
#include "runtime.h"
#include "wait.h"

/* Spins before a plain pthread sleeps in the kernel: a hand-off from a
 * running partner usually lands within a few hundred nanoseconds. */
#define PTHREAD_SPINS 200

void weft__waiter_init_entry(weft__waiter *w, const weft__waiter_ops *ops, void *obj)
{
    weft__waiter_init_common(w, ops, obj);
}

void weft__waiter_init_shielded(weft__waiter *w, const weft__waiter_ops *ops, void *obj)
{
    weft__waiter_init_common(w, ops, obj);
    weft__worker *wk = weft__worker_self();
    w->task = wk ? wk->current : NULL;
    /* relaxed: published to wakers by whatever release links the waiter
     * where completers find it (worker.c invariant 4). */
    if (w->task) atomic_store_explicit(&w->task->park, WEFT__P_PARKING, memory_order_relaxed);
}

void weft__waiter_unused(weft__waiter *w)
{
    if (w->task) atomic_store_explicit(&w->task->park, WEFT__P_RUNNING, memory_order_relaxed);
}

void weft__waiter_wake_slow(weft__waiter *w)
{
    weft_task *t = w->task;
    if (t) {
        /* Still switching out (the inline fast path saw no PARKED).
         * acq_rel: pairs with the exchange in weft__after_switch; exactly
         * one of the two sees the other's value and enqueues the task. */
        if (atomic_exchange_explicit(&t->park, WEFT__P_WOKEN, memory_order_acq_rel) ==
            WEFT__P_PARKED)
            weft__make_runnable(t);
        return;
    }
    /* release: publishes result; pairs with the acquire loads in park(). */
    if (atomic_exchange_explicit(&w->futex, 1, memory_order_release) == 2)
        weft__futex_wake(&w->futex, 1);
}

void weft__waiter_reject(weft__waiter *w)
{
    int exp = WEFT__W_WAITING;
    /* acq_rel: pairs with claim()'s and abort()'s CAS (invariant 1). */
    if (!atomic_compare_exchange_strong_explicit(&w->state, &exp, WEFT__W_ABORTED,
                                                 memory_order_acq_rel, memory_order_acquire))
        return;
    w->result = ECANCELED;
    weft__waiter_wake(w);
}

bool weft__waiter_take(weft__waiter *w)
{
    int exp = WEFT__W_WAITING;
    if (w->cnode && WEFT_UNLIKELY(weft__node_eff(w->cnode))) {
        if (atomic_compare_exchange_strong_explicit(&w->state, &exp, WEFT__W_ABORTED,
                                                    memory_order_acq_rel, memory_order_acquire)) {
            w->result = ECANCELED;
            weft__waiter_wake(w);
            return false;
        }
    } else if (atomic_compare_exchange_strong_explicit(&w->state, &exp, WEFT__W_CLAIMED,
                                                       memory_order_acq_rel,
                                                       memory_order_acquire)) {
        return true;
    }
    /* release: the canceller's wait_released may let the owner go now. */
    atomic_store_explicit(&w->released, true, memory_order_release);
    return false;
}

void weft__waiter_wait_released(weft__waiter *w)
{
    /* acquire: pairs with take()'s release; afterwards no one reads w. */
    for (unsigned i = 0; !atomic_load_explicit(&w->released, memory_order_acquire);)
        weft__backoff(&i);
}

bool weft__waiter_abort(weft__waiter *w, int code)
{
    int exp = WEFT__W_WAITING;
    /* acq_rel: pairs with claim()'s CAS (invariant 1). */
    if (!atomic_compare_exchange_strong_explicit(&w->state, &exp, WEFT__W_ABORTED,
                                                 memory_order_acq_rel, memory_order_acquire))
        return false;
    if (w->ops && w->ops->unlink) w->ops->unlink(w);
    w->result = code;
    weft__waiter_wake(w);
    return true;
}

static int park_thread(weft__waiter *w, uint64_t deadline)
{
    for (int i = 0; i < PTHREAD_SPINS; i++) {
        /* acquire: pairs with the release exchange in wake (invariant 4). */
        if (atomic_load_explicit(&w->futex, memory_order_acquire) == 1) return w->result;
        weft__cpu_relax();
    }
    uint32_t exp = 0;
    if (atomic_compare_exchange_strong_explicit(&w->futex, &exp, 2, memory_order_acquire,
                                                memory_order_acquire)) {
        for (;;) {
            bool in_time = weft__futex_wait(&w->futex, 2, deadline);
            if (atomic_load_explicit(&w->futex, memory_order_acquire) == 1) break;
            if (!in_time) {
                /* Our own deadline is a canceller like any other: if it
                 * wins, we wake ourselves (futex = 1) and return its code. */
                weft__waiter_abort(w, ETIMEDOUT);
                deadline = 0;
            }
        }
    }
    return w->result;
}

void weft__waiter_retract_slow(weft__cctx *c, weft__waiter *w)
{
    for (;;) {
        weft__waiter *exp = w;
        /* acquire: a canceller's release of BUSY (its abort is done). */
        if (atomic_compare_exchange_weak_explicit(&c->waiter, &exp, NULL, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
        weft__cpu_relax();
    }
}

void weft__waiter_wait_canceller(weft__waiter *w)
{
    if (!w->ctx) return;
    /* acquire: the canceller's release of BUSY (its unlink is done). */
    while (atomic_load_explicit(&w->ctx->waiter, memory_order_acquire) == WEFT__CCTX_BUSY)
        weft__cpu_relax();
}

/* The owner's scope is already cancelled: abort w ourselves.  Returns false
 * when a completer or canceller decided first (then it wakes us). */
static bool abort_self(weft__waiter *w)
{
    int exp = WEFT__W_WAITING;
    if (!atomic_compare_exchange_strong_explicit(&w->state, &exp, WEFT__W_ABORTED,
                                                 memory_order_acq_rel, memory_order_acquire))
        return false;
    if (w->ops && w->ops->unlink) w->ops->unlink(w);
    w->result = ECANCELED;
    if (w->task) atomic_store_explicit(&w->task->park, WEFT__P_RUNNING, memory_order_relaxed);
    return true;
}

int weft__waiter_publish(weft__waiter *w)
{
    weft__cctx *c = w->ctx;
    if (!c) return 0;
    /* seq_cst: Dekker with cancel.c's EFF update then cctx_poke. */
    atomic_store_explicit(&c->waiter, w, memory_order_seq_cst);
    if (WEFT_UNLIKELY(weft__waiter_owner_cancelled(w))) {
        weft__waiter_retract(c, w);
        weft__waiter_unused(w);
        return ECANCELED;
    }
    w->published = true;
    return 0;
}

int weft__waiter_withdraw(weft__waiter *w, int code)
{
    int exp = WEFT__W_WAITING;
    bool lost = w->ctx && !atomic_compare_exchange_strong_explicit(
                              &w->state, &exp, WEFT__W_ABORTED, memory_order_acq_rel,
                              memory_order_acquire);
    /* Once BUSY is released the canceller is done with w (its wake-up
     * included), so there is nothing to park for.  Only then is its
     * `result` written: read it after the retraction (acquire there). */
    if (w->ctx) weft__waiter_retract(w->ctx, w);
    if (lost) code = w->result; /* a canceller aborted it (it was never linked) */
    weft__waiter_unused(w);
    return code;
}

int weft__waiter_park(weft__waiter *w, uint64_t pthread_deadline)
{
    weft__cctx *c = w->ctx;
    if (c && !w->published) {
        /* seq_cst: Dekker with cancel.c's EFF update then cctx_poke. */
        atomic_store_explicit(&c->waiter, w, memory_order_seq_cst);
        if (WEFT_UNLIKELY(weft__waiter_owner_cancelled(w)) && abort_self(w)) {
            weft__waiter_retract(c, w);
            return ECANCELED;
        }
    }
    return weft__waiter_park_published(w, pthread_deadline);
}

int weft__waiter_park_thread(weft__waiter *w, uint64_t pthread_deadline)
{
    int rc = park_thread(w, pthread_deadline);
    if (w->ctx) weft__waiter_retract(w->ctx, w);
    return rc;
}
