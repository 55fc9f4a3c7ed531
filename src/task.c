/*
 * Task lifetime: creation, the entry trampoline, exit, join, detach, yield.
 *
 * A task's struct lives at the top of its own stack (stack.c), so a task
 * costs one allocation from the stack pool and, until it goes deep, one page.
 *
 * Reference counts (t->refs): one for the running task, one for the handle
 * (none for a detached task).  The running reference is dropped by the
 * context that runs after the task's final switch (weft__after_switch,
 * WEFT__SW_EXIT): a task cannot free the stack it is running on.  The handle
 * reference is dropped by weft_join or weft_task_detach.  At zero the stack
 * returns to the pool.
 *
 * Join is a waiter-protocol wait (wait.c) whose completer is the exiting
 * task:
 *  1. The exiting task writes status, then exchanges joiner to
 *     WEFT__JOIN_DONE (acq_rel).  If it took a waiter, it claims and
 *     completes it.
 *  2. A joiner that finds JOIN_DONE reads status at once (the acquire pairs
 *     with 1).  Otherwise it CASes its waiter into joiner (NULL -> &w) and
 *     parks; if the CAS finds JOIN_DONE it reads status.
 *  3. A canceller of the join CASes the state to ABORTED and unlinks the
 *     waiter by CAS (&w -> NULL), leaving the task joinable; if the exiting
 *     task already took the waiter its claim fails and the join succeeds.
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
_Static_assert(offsetof(weft__ctx, pc) == WEFT_CTX_PC, "ctx pc offset");
_Static_assert(offsetof(weft__ctx, regs) == 16, "ctx register block offset");
_Static_assert(sizeof(weft__ctx) == WEFT_CTX_SIZE, "ctx size");

void weft__ctx_entry(void); /* switch_<arch>.S */
_Noreturn void weft__task_main(weft_task *t);

int weft__task_new(weft_runtime *rt, weft__worker *w, weft_fn fn, void *arg, bool detached,
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
    atomic_init(&t->refs, detached ? 1 : 2);
    atomic_init(&t->joiner, NULL);
    t->link = NULL;
    /* The first frame starts just below the task struct, 16-byte aligned as
     * weft__ctx_entry expects. */
    uintptr_t sp = ((uintptr_t)t - 16) & ~(uintptr_t)15;
    t->ctx.sp = (void *)sp;
    t->ctx.pc = (void *)(uintptr_t)weft__ctx_entry;
    t->ctx.regs[0] = (uint64_t)(uintptr_t)t; /* rbx / x19: weft__task_main's argument */
#ifdef WEFT_ASAN
    t->asan_fake = NULL;
#endif
#ifdef WEFT_TSAN
    t->tsan_fiber = __tsan_create_fiber(0);
#endif
    *out = t;
    return 0;
}

void weft__task_unref(weft__worker *w, weft_task *t)
{
    /* acq_rel: the last owner sees every write of the others before freeing. */
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
#ifdef WEFT_TSAN
    __tsan_destroy_fiber(t->tsan_fiber);
#endif
    weft_runtime *rt = t->rt;
    weft__stack_put(&rt->stack_pool, w && w->rt == rt ? &w->stacks : NULL, t);
}

/* Counts t as finished on the worker it finished on (owner-only counter).
 * release: pairs with the acquire loads in weft__live_tasks. */
static void task_finished(weft__worker *w)
{
    atomic_store_explicit(&w->finished, atomic_load_explicit(&w->finished, memory_order_relaxed) + 1,
                          memory_order_release);
}

_Noreturn void weft__task_main(weft_task *t)
{
#ifdef WEFT_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    weft__after_switch(weft__worker_self());
    t->status = t->fn(t->arg);
    /* acq_rel: release publishes status to the joiner (step 1). */
    weft__waiter *j = atomic_exchange_explicit(&t->joiner, WEFT__JOIN_DONE, memory_order_acq_rel);
    if (j && weft__waiter_claim(j)) weft__waiter_complete(j, 0);
    weft__worker *w = weft__worker_self();
    task_finished(w);
    weft__task_switch_out(w, t, WEFT__SW_EXIT);
    WEFT_DIE("a finished task was resumed");
}

bool weft__cancelled(void)
{
    weft__worker *w = weft__worker_self();
    return w && atomic_load_explicit(&w->rt->cancelled, memory_order_acquire);
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

int weft_spawn(weft_task **out, weft_fn fn, void *arg)
{
    weft__worker *w = weft__worker_self();
    if (!w || !w->current) return EPERM;
    if (!fn) return EINVAL;
    if (atomic_load_explicit(&w->rt->cancelled, memory_order_acquire)) return ECANCELED;
    weft_task *t;
    int rc = weft__task_new(w->rt, w, fn, arg, out == NULL, &t);
    if (rc) return rc;
    /* release: pairs with the acquire loads in weft__live_tasks.  The
     * spawning task is alive, so destroy cannot finish before this. */
    atomic_store_explicit(&w->spawned, atomic_load_explicit(&w->spawned, memory_order_relaxed) + 1,
                          memory_order_release);
    if (out) *out = t;
    weft__make_runnable(t);
    return 0;
}

static void join_unlink(weft__waiter *w)
{
    weft_task *t = w->obj;
    weft__waiter *exp = w;
    /* acq_rel: pairs with the exiting task's exchange (step 3). */
    atomic_compare_exchange_strong_explicit(&t->joiner, &exp, NULL, memory_order_acq_rel,
                                            memory_order_relaxed);
}

static const weft__waiter_ops join_ops = {.unlink = join_unlink};

int weft_join(weft_task *t, int *status)
{
    if (!t) return EINVAL;
    if (t == weft_current()) return EDEADLK;
    if (weft__cancelled()) return ECANCELED;
    /* acquire: pairs with the exiting task's exchange (step 2). */
    weft__waiter *j = atomic_load_explicit(&t->joiner, memory_order_acquire);
    if (j != WEFT__JOIN_DONE) {
        if (j != NULL) return EINVAL; /* someone else is joining it */
        weft__waiter w;
        weft__waiter_init(&w, &join_ops, t);
        weft__waiter *exp = NULL;
        if (atomic_compare_exchange_strong_explicit(&t->joiner, &exp, &w, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            int rc = weft__waiter_park(&w, 0);
            if (rc) return rc; /* cancelled: still joinable (step 3) */
        } else {
            if (w.task) atomic_store_explicit(&w.task->park, WEFT__P_RUNNING, memory_order_relaxed);
            if (exp != WEFT__JOIN_DONE) return EINVAL;
        }
    }
    if (status) *status = t->status;
    weft__task_unref(weft__worker_self(), t);
    return 0;
}

void weft_task_detach(weft_task *t)
{
    if (t) weft__task_unref(weft__worker_self(), t);
}

int weft_yield(void)
{
    weft__worker *w = weft__worker_self();
    if (!w || !w->current) {
        sched_yield();
        return 0;
    }
    if (atomic_load_explicit(&w->rt->cancelled, memory_order_acquire)) return ECANCELED;
    weft__task_switch_out(w, w->current, WEFT__SW_YIELD);
    return 0;
}
