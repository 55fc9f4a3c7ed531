/*
 * Task lifetime: creation, the entry trampoline, exit, join, detach, yield.
 *
 * A task is a struct from the runtime's struct pool and a stack from its
 * stack pool (stack.c).  The stack is reserved at spawn, so a spawn that
 * succeeds can always run; when the task first runs (weft__task_start, on
 * the worker that runs it) it trades that untouched stack for the warm end
 * of the worker's cache, a stack that a task finished on there; and it
 * gives its stack back right after its final switch (step 2), well before
 * the handle frees the struct.  So children that run one after another on
 * a worker share two warm stacks (a child starts before the one before it
 * has left its stack), whoever spawned them.
 *
 * Lifetime.  Two parties end a task: its own exit and its handle (join or
 * detach).  Whichever comes second frees its struct, decided by exchanges
 * on t->joiner:
 *
 *   NULL --exit--> EXITING --final switch--> DONE
 *     \              |
 *      \--join--> &w (a waiter), --detach--> DETACHED
 *
 *  1. When fn returns, the task writes status and, if a join waiter is in
 *     joiner (a plain load: NULL and DETACHED are left to step 2),
 *     exchanges joiner to EXITING.  If it took a join waiter whose owner is
 *     a task of this runtime that is fully PARKED, it claims and completes
 *     it at once: the joiner then lands in this worker's next slot, which no
 *     other worker can take, so it runs only after this task has switched
 *     out (and usually right after it: one switch from child to parent).
 *     Any other waiter is kept in t->exit_waiter, as is every waiter while
 *     a poller is pinned in the next slot (worker.c, Polling): the joiner
 *     would go to the stealable deque instead.
 *  2. After the final switch, weft__after_switch (on the next context's stack)
 *     gives the task's stack back to this worker's cache, then exchanges
 *     joiner to DONE.  Old value DETACHED: it frees the struct.  A waiter
 *     (one that arrived after step 1's look) or the kept exit_waiter: it claims
 *     and completes it, and the joiner frees the struct.  Otherwise the
 *     handle frees it later.  The stack goes back only once the task is off
 *     it, and before DONE, after which the struct it is read from may be
 *     freed.
 *  3. weft_join: DONE: read status, free.  NULL or EXITING: CAS its waiter in
 *     and park; if the CAS finds DONE, read status and free.
 *  4. weft_task_detach exchanges joiner to DETACHED; old value DONE: it frees.
 *  5. A canceller of a join CASes the waiter's state to ABORTED and unlinks
 *     it by CAS (&w -> NULL), leaving the task joinable.  If the exit side
 *     took the waiter out of the word first, its weft__waiter_take fails
 *     and marks the waiter released, and the canceller's unlink waits for
 *     that mark before the joiner may return (its frame holds the waiter);
 *     a later join finds DONE.
 * status is written before the exchanges of steps 1 and 2 and read after
 * observing DONE or being completed: the acq_rel exchanges order it.
 *
 * The context layout of arch/ctx.h is checked against weft__ctx here.
 */

#include <errno.h>
#include <sched.h>

#include "runtime.h"

#ifdef WEFT_ASAN
#include <sanitizer/asan_interface.h>
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
    bool own = w && w->rt == rt;
    weft__pool_cache *structs = own ? &w->structs : NULL;
    weft_task *t = weft__pool_get(&rt->task_pool, structs);
    if (!t) return ENOMEM;
    /* The stack is reserved here, so that running the task never lacks
     * memory; it is traded for a warm one when the task first runs
     * (weft__task_start).  Only its name is read: no stack memory is
     * touched until then. */
    weft__stack *stack = weft__pool_get_cold(&rt->stack_pool, own ? &w->stacks : NULL);
    if (!stack) {
        weft__pool_put(&rt->task_pool, structs, t);
        return ENOMEM;
    }
    if (own && structs->hi != structs->lo) {
        /* The next spawn's struct is probably not in cache: start loading
         * it now, while this one is set up.  The first two lines for
         * writing; the context behind them is only read when clean
         * (weft__cctx_init). */
        const char *next = (const char *)WEFT__POOL_AT(structs, structs->hi - 1);
        _Static_assert(offsetof(weft_task, group) + sizeof(void *) <= 128 &&
                           offsetof(weft_task, group) < offsetof(weft_task, cctx),
                       "the fields spawn always writes lie in the first two lines");
        __builtin_prefetch(next, 1);
        __builtin_prefetch(next + 64, 1);
        for (size_t off = 128; off < sizeof(weft_task); off += 64) __builtin_prefetch(next + off, 0);
    }
    t->stack = stack;
    t->ctx.sp = NULL; /* made when it first runs (weft__task_start) */
    t->rt = rt;
    t->fn = fn;
    t->arg = arg;
    t->status = 0;
    atomic_init(&t->park, WEFT__P_RUNNING);
    atomic_init(&t->joiner, detached ? WEFT__JOIN_DETACHED : NULL);
    t->link = NULL;
    t->group = NULL;
    weft__cctx_init(&t->cctx, t);
#ifdef WEFT_ASAN
    t->asan_fake = NULL;
#endif
#ifdef WEFT_TSAN
    t->tsan_fiber = __tsan_create_fiber(0);
#endif
    *out = t;
    return 0;
}

void weft__task_start(weft__worker *w, weft_task *t)
{
    /* Trade the stack reserved at spawn, never touched, for the warm end of
     * this worker's cache: the stack the last task to finish here left.  The
     * reserved one goes to the cold end, where spawns reserve, so the warm
     * end keeps only stacks that tasks ran on here. */
    weft__pool_cache *c = &w->stacks;
    if (c->hi != c->lo) t->stack = weft__pool_trade(c, t->stack);
    /* The first frame starts just below the stack's descriptor; t is
     * weft__task_main's argument. */
    weft__ctx_make(&t->ctx, (uintptr_t)t->stack, weft__task_main, t);
}

/* Frees the struct of a task whose stack has gone back already. */
static void task_free(weft__worker *w, weft_task *t)
{
#ifdef WEFT_TSAN
    __tsan_destroy_fiber(t->tsan_fiber);
#endif
    weft_runtime *rt = t->rt;
    weft__pool_put(&rt->task_pool, w && w->rt == rt ? &w->structs : NULL, t);
}

/* Step 1: before the final switch. */
static void task_exiting(weft_task *t)
{
    t->exit_waiter = NULL;
    /* Nobody joining yet (NULL), or detached: step 2's exchange decides,
     * and a locked exchange here would change nothing (join and detach
     * treat NULL and EXITING alike).  In a fan-out most children finish
     * before their join comes.  relaxed: only a waiter found here is
     * read, after the acq_rel exchange below. */
    if (!WEFT__JOIN_IS_WAITER(atomic_load_explicit(&t->joiner, memory_order_relaxed))) return;
    /* acq_rel: acquire the waiter's fields; release publishes status. */
    weft__waiter *j = atomic_exchange_explicit(&t->joiner, WEFT__JOIN_EXITING, memory_order_acq_rel);
    /* A cancelled join may have unlinked its waiter since (NULL): step 2
     * decides.  A waiter cannot be detached (weft_task_detach dies). */
    if (!WEFT__JOIN_IS_WAITER(j) || !weft__waiter_take(j)) return;
    weft_task *jt = j->task;
    /* acquire: PARKED means its worker has finished switching it out. */
    weft__worker *w = weft__worker_self();
    if (jt && jt->rt == t->rt && !w->next_pinned &&
        atomic_load_explicit(&jt->park, memory_order_acquire) == WEFT__P_PARKED)
        weft__waiter_complete(j, 0); /* into our next slot: runs after our switch */
    else
        t->exit_waiter = j;
}

/* Step 2: after the final switch, on the next context's stack. */
void weft__task_exited(weft__worker *w, weft_task *t)
{
    /* Off its stack for good: give it back at once, before anyone may free
     * the struct, so the next task to start here runs on it warm. */
#ifdef WEFT_ASAN
    /* A finished task never unwinds its last frames; forget their poison. */
    __asan_unpoison_memory_region(t->stack->lo, (size_t)(weft__stack_hi(t->stack) - t->stack->lo));
#endif
    weft__pool_put(&t->rt->stack_pool, &w->stacks, t->stack);
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
