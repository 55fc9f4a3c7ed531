/*
 * Task lifetime: creation, the entry trampoline, exit, join, detach, yield.
 *
 * A task's struct lives at the top of its own stack (stack.c), so a task
 * costs one allocation from the stack pool and, until it goes deep, one page.
 *
 * Lifetime.  Two parties end a task: its own exit and its handle (join or
 * detach).  Whichever comes second frees it (returns its stack to the pool),
 * decided by exchanges on t->joiner:
 *
 *   NULL --exit--> EXITING --final switch--> DONE
 *     \              |
 *      \--join--> &w (a waiter), --detach--> DETACHED
 *
 *  1. When fn returns, the task writes status and exchanges joiner to
 *     EXITING.  If it took a join waiter whose owner is a task of this runtime
 *     that is fully PARKED, it claims and completes it at once: the joiner then
 *     lands in this worker's next slot, which no other worker can take, so it
 *     runs only after this task has switched out (and usually right after it:
 *     one switch from child to parent).  Any other waiter is kept in
 *     t->exit_waiter.
 *  2. After the final switch, weft__after_switch (on the next context's stack)
 *     exchanges joiner to DONE.  Old value DETACHED: it frees the task.  A
 *     waiter (one that arrived during EXITING) or the kept exit_waiter: it
 *     claims and completes it, and the joiner frees the task.  Otherwise the
 *     handle frees it later.  DONE is published only once the task is off its
 *     stack, so no one frees a stack still in use.
 *  3. weft_join: DONE: read status, free.  NULL or EXITING: CAS its waiter in
 *     and park; if the CAS finds DONE, read status and free.
 *  4. weft_task_detach exchanges joiner to DETACHED; old value DONE: it frees.
 *  5. A canceller of a join CASes the waiter's state to ABORTED and unlinks
 *     it by CAS (&w -> NULL), leaving the task joinable.  If the exit side
 *     took the waiter out of the word first, its weft__waiter_take fails
 *     and marks the waiter released, and the canceller's unlink waits for
 *     that mark before the joiner may return (its frame holds the waiter);
 *     a later join finds DONE.
 * status is written before the exchange of step 1 and read after observing
 * DONE or being completed: the acq_rel exchanges order it.
 *
 * The context layout of arch/ctx.h is checked against weft__ctx here.
 */

#include <errno.h>
#include <sched.h>

#include "runtime.h"

#ifdef WEFT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef WEFT_TSAN
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
#endif

_Static_assert(offsetof(weft__ctx, sp) == WEFT_CTX_SP, "ctx sp offset");
_Static_assert(offsetof(weft__ctx, regs) == 8, "ctx register block offset");
_Static_assert(sizeof(weft__ctx) == WEFT_CTX_SIZE, "ctx size");

#if defined(__x86_64__)
_Static_assert(WEFT_CTX_RBP == 8 && WEFT_CTX_PC == 16 && WEFT_CTX_FN == 24 && WEFT_CTX_ARG == 32,
               "x86-64 ctx word order");
#endif

_Noreturn void weft__task_main(void *arg);

/* Creates a task (not yet runnable).  weft__spawn's alone, inlined there. */
static inline int task_new(weft_runtime *rt, weft__worker *w, weft_fn fn, void *arg, bool detached,
                           weft_task **out)
{
    weft__stack_cache *cache = w && w->rt == rt ? &w->stacks : NULL;
    weft_task *t = weft__stack_get(&rt->stack_pool, cache);
    if (!t) return ENOMEM;
    t->rt = rt;
    t->fn = fn;
    t->arg = arg;
    t->status = 0;
    atomic_init(&t->park, WEFT__P_RUNNING);
    atomic_init(&t->joiner, detached ? WEFT__JOIN_DETACHED : NULL);
    t->link = NULL;
    t->group = NULL;
    weft__cctx_init(&t->cctx, t);
    /* The first frame starts just below the task struct, 16-byte aligned;
     * t is weft__task_main's argument. */
    weft__ctx_make(&t->ctx, (uintptr_t)t - 16, weft__task_main, t);
#ifdef WEFT_ASAN
    t->asan_fake = NULL;
#endif
#ifdef WEFT_TSAN
    t->tsan_fiber = __tsan_create_fiber(0);
#endif
    *out = t;
    return 0;
}

static void task_free(weft__worker *w, weft_task *t)
{
#ifdef WEFT_TSAN
    __tsan_destroy_fiber(t->tsan_fiber);
#endif
    weft_runtime *rt = t->rt;
    weft__stack_put(&rt->stack_pool, w && w->rt == rt ? &w->stacks : NULL, t);
}

/* Step 1: before the final switch. */
static void task_exiting(weft_task *t)
{
    t->exit_waiter = NULL;
    /* acq_rel: release publishes status (with step 2's exchange). */
    weft__waiter *j = atomic_exchange_explicit(&t->joiner, WEFT__JOIN_EXITING, memory_order_acq_rel);
    if (j == WEFT__JOIN_DETACHED) {
        /* No handle is left, so no one else writes joiner any more: put the
         * mark back for step 2, which frees the task. */
        atomic_store_explicit(&t->joiner, WEFT__JOIN_DETACHED, memory_order_relaxed);
        return;
    }
    if (!WEFT__JOIN_IS_WAITER(j) || !weft__waiter_take(j)) return; /* NULL: step 2 decides */
    weft_task *jt = j->task;
    /* acquire: PARKED means its worker has finished switching it out. */
    if (jt && jt->rt == t->rt &&
        atomic_load_explicit(&jt->park, memory_order_acquire) == WEFT__P_PARKED)
        weft__waiter_complete(j, 0); /* into our next slot: runs after our switch */
    else
        t->exit_waiter = j;
}

/* Step 2: after the final switch, on the next context's stack. */
void weft__task_exited(weft__worker *w, weft_task *t)
{
    weft__waiter *kept = t->exit_waiter;
    /* acq_rel: pairs with the exchanges of join and detach. */
    weft__waiter *j = atomic_exchange_explicit(&t->joiner, WEFT__JOIN_DONE, memory_order_acq_rel);
    if (j == WEFT__JOIN_DETACHED) {
        task_free(w, t);
        return;
    }
    if (kept) weft__waiter_complete(kept, 0);
    if (WEFT__JOIN_IS_WAITER(j) && weft__waiter_take(j)) weft__waiter_complete(j, 0);
}

/* Counts t as finished on the worker it finished on (owner-only counter).
 * release: pairs with the acquire loads in weft__live_tasks. */
static void task_finished(weft__worker *w)
{
    atomic_store_explicit(&w->finished, atomic_load_explicit(&w->finished, memory_order_relaxed) + 1,
                          memory_order_release);
}

_Noreturn void weft__task_main(void *arg)
{
    weft_task *t = arg;
#ifdef WEFT_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    weft__after_switch(weft__worker_self());
    t->status = t->fn(t->arg);
    if (WEFT_UNLIKELY(t->cctx.scope != NULL))
        WEFT_DIE("a task returned inside a cancel scope it did not exit");
    if (WEFT_UNLIKELY(t->cctx.root.child != NULL))
        WEFT_DIE("a task returned while a task group it created is still alive");
    if (WEFT_UNLIKELY(t->cctx.held != NULL)) weft__locks_break(&t->cctx);
    if (t->group) weft__group_child_exit(t->group, &t->cctx.root, t->status);
    task_exiting(t);
    weft__worker *w = weft__worker_self();
    task_finished(w);
    weft__task_switch_out(w, t, WEFT__SW_EXIT);
    WEFT_DIE("a finished task was resumed");
}

/* --- public API --------------------------------------------------------- */

weft_task *weft_current(void)
{
    weft__worker *w = weft__worker_self();
    return w ? w->current : NULL;
}

weft_runtime *weft_runtime_current(void)
{
    weft__worker *w = weft__worker_self();
    return w ? w->rt : NULL;
}

int weft__spawn(weft_runtime *rt, weft_fn fn, void *arg, weft_task **out, struct weft_group *g)
{
    weft__worker *w = weft__worker_self();
    bool inside = w && w->current && w->rt == rt;
    if (inside) {
        /* The spawning task is alive, so destroy cannot finish before the
         * counter below is bumped. */
        if (atomic_load_explicit(&rt->cancelled, memory_order_acquire)) return ECANCELED;
    } else {
        /* seq_cst (both): Dekker pair with destroy's store of cancelled and
         * its read of the counters: either we see cancelled, or destroy
         * counts us and waits for the task. */
        atomic_fetch_add_explicit(&rt->spawned_outside, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&rt->cancelled, memory_order_seq_cst)) {
            atomic_fetch_sub_explicit(&rt->spawned_outside, 1, memory_order_seq_cst);
            return ECANCELED;
        }
    }
    weft_task *t;
    int rc = task_new(rt, w, fn, arg, out == NULL, &t);
    if (rc) {
        if (!inside) atomic_fetch_sub_explicit(&rt->spawned_outside, 1, memory_order_seq_cst);
        return rc;
    }
    if (inside) {
        /* release: pairs with the acquire loads in weft__live_tasks. */
        atomic_store_explicit(&w->spawned,
                              atomic_load_explicit(&w->spawned, memory_order_relaxed) + 1,
                              memory_order_release);
    }
    if (g) weft__group_child_enter(g, t);
    if (out) *out = t;
    weft__make_runnable_from(w, t);
    return 0;
}

int weft_spawn(weft_task **out, weft_fn fn, void *arg)
{
    weft__worker *w = weft__worker_self();
    if (!w || !w->current) return EPERM;
    if (!fn) return EINVAL;
    return weft__spawn(w->rt, fn, arg, out, NULL);
}

static void join_unlink(weft__waiter *w)
{
    weft_task *t = w->obj;
    weft__waiter *exp = w;
    /* acq_rel: pairs with the exiting task's exchange (step 5). */
    if (!atomic_compare_exchange_strong_explicit(&t->joiner, &exp, NULL, memory_order_acq_rel,
                                                 memory_order_relaxed))
        weft__waiter_wait_released(w); /* the exit side took it: step 5 */
}

static const weft__waiter_ops join_ops = {.unlink = join_unlink};

/* weft_join of a task not yet DONE (j: the joiner word seen): waits until
 * it is.  Out of line, so the join of a finished task (the usual one in a
 * fan-out) saves no registers for it. */
static __attribute__((noinline)) int join_wait(weft_task *t, weft__waiter *j)
{
    if (j != NULL && j != WEFT__JOIN_EXITING)
        return EINVAL; /* someone else is joining it, or it was detached */
    weft__waiter w;
    weft__waiter_init(&w, &join_ops, t);
    while (!atomic_compare_exchange_weak_explicit(&t->joiner, &j, &w, memory_order_acq_rel,
                                                  memory_order_acquire)) {
        if (j != NULL && j != WEFT__JOIN_EXITING) break;
    }
    if (j == NULL || j == WEFT__JOIN_EXITING) {
        int rc = weft__waiter_park(&w, 0);
        if (rc) return rc; /* cancelled: still joinable (step 5) */
    } else {
        if (w.task) atomic_store_explicit(&w.task->park, WEFT__P_RUNNING, memory_order_relaxed);
        if (j != WEFT__JOIN_DONE) return EINVAL;
    }
    return 0;
}

int weft_join(weft_task *t, int *status)
{
    if (!t) return EINVAL;
    weft__worker *wk = weft__worker_self();
    weft_task *self = wk ? wk->current : NULL;
    if (t == self) return EDEADLK;
    if (weft__cancelled_from(wk)) return ECANCELED;
    /* acquire: pairs with the exit side's exchanges (step 3). */
    weft__waiter *j = atomic_load_explicit(&t->joiner, memory_order_acquire);
    if (WEFT_UNLIKELY(j != WEFT__JOIN_DONE)) {
        int rc = join_wait(t, j);
        if (rc) return rc;
        wk = weft__worker_self(); /* it may have resumed on another worker */
    }
    if (status) *status = t->status;
    task_free(wk, t);
    return 0;
}

void weft_task_detach(weft_task *t)
{
    if (!t) return;
    /* acq_rel: pairs with the exit side's exchange. */
    weft__waiter *j = atomic_exchange_explicit(&t->joiner, WEFT__JOIN_DETACHED, memory_order_acq_rel);
    if (j == WEFT__JOIN_DONE)
        task_free(weft__worker_self(), t);
    else if (j != NULL && j != WEFT__JOIN_EXITING)
        WEFT_DIE("weft_task_detach: the task is being joined or was already detached");
}

int weft_yield(void)
{
    weft__worker *w = weft__worker_self();
    if (weft__cancelled_from(w)) return ECANCELED;
    weft_task *self = w ? w->current : NULL;
    if (!self) {
        sched_yield();
        return 0;
    }
    weft__task_switch_out(w, self, WEFT__SW_YIELD);
    return 0;
}
