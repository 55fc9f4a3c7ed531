/*
 * Private structures of the runtime, its workers and its tasks.
 */
#ifndef WEFT_RUNTIME_PRIV_H
#define WEFT_RUNTIME_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <urcu/wfcqueue.h>

#include "arch/ctx.h"
#include "cancel.h"
#include "internal.h"
#include "sched/deque.h"
#include "sched/inject.h"
#include "stack.h"
#include "timer.h"
#include "wait.h"

/* Task park states (weft_task.park), see worker.c invariant 4. */
enum { WEFT__P_RUNNING = 0, WEFT__P_PARKING = 1, WEFT__P_PARKED = 2, WEFT__P_WOKEN = 3 };

/* What the context that just switched away asked the next one to finish. */
enum { WEFT__SW_NONE = 0, WEFT__SW_YIELD, WEFT__SW_PARK, WEFT__SW_EXIT, WEFT__SW_POLL };

/* weft_task.joiner when the task has returned and switched out for good. */
#define WEFT__JOIN_DONE ((weft__waiter *)1)
/* weft_task.joiner when the handle was released while the task runs. */
#define WEFT__JOIN_DETACHED ((weft__waiter *)2)
/* weft_task.joiner between the task's return and its final switch. */
#define WEFT__JOIN_EXITING ((weft__waiter *)3)
#define WEFT__JOIN_IS_WAITER(j) ((uintptr_t)(j) > 3)

struct weft_task {
    weft__ctx ctx;               /* saved registers; the task or the worker switching it;
                                  * ctx.sp NULL until it first runs (task.c) */
    weft_runtime *rt;            /* immutable */
    weft_fn fn;                  /* immutable */
    void *arg;                   /* immutable */
    int status;                  /* written once before joiner is set to DONE */
    _Atomic int park;            /* atomic: WEFT__P_* */
    _Atomic(weft__waiter *) joiner; /* atomic: NULL, a join waiter, or WEFT__JOIN_* */
    weft__waiter *exit_waiter;   /* a joiner the exit side completes after the final switch */
    weft__stack *stack;          /* its stack from spawn to final switch (task.c) */
    weft_task *link;             /* yield queue link; owner worker */
    struct weft_group *group;    /* immutable: the group it is a child of, or NULL */
    struct cds_wfcq_node inode;  /* injector link */
    weft__cctx cctx;             /* cancel scopes and the blocked waiter */
#ifdef WEFT_ASAN
    void *asan_fake;             /* ASan fake stack while switched out */
#endif
#ifdef WEFT_TSAN
    void *tsan_fiber;
#endif
};

/* Entries a worker takes from its deque under one fence (worker.c). */
#define WEFT__HELD_MAX 8

typedef struct weft__worker {
    weft_runtime *rt;
    unsigned id;
    pthread_t thread;
    weft__ctx sched_ctx;         /* the worker's scheduler loop, on the pthread's stack */
    weft_task *current;          /* owner only */
    weft_task *next;             /* next slot; owner only */
    bool next_pinned;            /* next holds a poller (weft__task_poll_next); owner only */
    unsigned next_streak;        /* consecutive runs from the next slot */
    unsigned tick;               /* decisions since the last fairness tick (0: this one was) */
    _Atomic unsigned decisions;  /* tasks chosen or queued; owner writes (relaxed), thieves read */
    weft_task *yq_head, *yq_tail; /* yield queue (FIFO); owner only */
    weft_task *prev;             /* context that switched away; owner only */
    int prev_action;             /* WEFT__SW_* for prev */
    bool spinning;               /* owner only; counted in rt->nr_spinning */
    bool solo;                   /* immutable: the runtime's only worker (no thieves) */
    uint64_t rng;
    /* Stealing patience (worker.c): the index of the marked top entry this
     * worker saw last, whose deque, since when, the victim's decision count
     * as last read and when, when to look at that deque next, and whether
     * the last search waited on it; owner only. */
    int64_t pat_top;
    const struct weft__worker *pat_victim;
    uint64_t pat_since, pat_read_at, pat_look_at;
    unsigned pat_decisions;
    bool pat_waiting;            /* the last search waited on a marked entry */
    /* Adaptive patience for busy victims (worker.c, Stealing): the current
     * wait (set when the worker starts), and when the last steal it allowed
     * happened (0: none pending). */
    uint64_t pat_busy_ns, busy_stole_at;
    /* Deque entries taken in one batch (worker.c, deque_next), oldest first;
     * they lie just above bottom index held_at; owner only. */
    void *held[WEFT__HELD_MAX];
    unsigned nheld;
    int64_t held_at;
    weft__deque dq;
    weft__timers timers;
    weft__pool_cache stacks;     /* free stacks; owner only */
    weft__pool_cache structs;    /* free task structs; owner only */
    /* Tasks created on / finished on this worker: written by the owner only
     * (atomic stores of a private count, so destroy may read them). */
    _Atomic uint64_t spawned, finished;
    _Alignas(WEFT_CACHELINE) _Atomic uint32_t park_word; /* futex: 0 parked, 1 woken */
    struct weft__worker *idle_next; /* guarded by rt->idle_lock */
    void *altstack;              /* signal stack for the overflow report */
#ifdef WEFT_ASAN
    const void *sched_stack_lo;
    size_t sched_stack_size;
    void *asan_fake;
#endif
#ifdef WEFT_TSAN
    void *tsan_fiber;
#endif
} weft__worker;

struct weft_runtime {
    /* First line: read by every checkpoint, written (cancelled, stopping)
     * once each at shutdown.  The block is line-aligned (runtime.c). */
    weft_options opt;
    unsigned nworkers;
    weft__worker *workers;
    _Atomic bool cancelled;                           /* atomic: destroy has begun */
    _Atomic bool stopping;                            /* atomic: workers must exit */
    weft__inject inject;
    weft__pool stack_pool;
    weft__pool task_pool;                             /* task structs */
    _Alignas(WEFT_CACHELINE) _Atomic int nr_spinning; /* atomic: workers looking for work */
    _Atomic int nr_idle;                              /* atomic: workers on the idle list */
    pthread_mutex_t idle_lock;
    weft__worker *idle_list;                          /* guarded by idle_lock */
    _Alignas(WEFT_CACHELINE) _Atomic uint64_t spawned_outside; /* atomic: by non-workers */
};
_Static_assert(offsetof(struct weft_runtime, stopping) < WEFT_CACHELINE,
               "the runtime's read-mostly fields share its first line");

/* Whether context c (a task's or a pthread's) is cancelled: its runtime is
 * shutting down, or its innermost cancel node is effectively cancelled. */
static inline bool weft__cctx_cancelled(weft__cctx *c)
{
    if (c->task && atomic_load_explicit(&c->task->rt->cancelled, memory_order_acquire))
        return true;
    return atomic_load_explicit(&weft__cctx_inner(c)->flags, memory_order_acquire) & WEFT__N_EFF;
}

/* The worker running the caller, or NULL: a thread-local, which a compiler
 * must never cache across a switch, since a task may resume on another
 * worker (ARCHITECTURE.md, known traps).  The out-of-line accessor is safe
 * by construction: no compiler keeps a value a call returned across another
 * call.  On x86-64 the inline one reads the variable with its own volatile
 * asm (initial-exec: the variable's offset from the GOT, then the %fs-based
 * load), so the compiler sees no thread-local access it could combine or
 * move: each call reads %fs afresh, and the "memory" clobber keeps it on its
 * side of the switch, which is itself volatile asm with a memory clobber
 * (arch/ctx.h).  It saves a call and return on every scheduling path (a
 * rendezvous round trip read it 12 times). */
weft__worker *weft__worker_self_slow(void) __attribute__((noinline));
extern _Thread_local weft__worker *weft__tls_worker __attribute__((tls_model("initial-exec")));

static inline weft__worker *weft__worker_self(void)
{
#if defined(__x86_64__)
    weft__worker *w;
    __asm__ volatile("movq weft__tls_worker@gottpoff(%%rip), %0\n\t"
                     "movq %%fs:(%0), %0"
                     : "=r"(w)
                     :
                     : "memory");
    return w;
#else
    return weft__worker_self_slow();
#endif
}

/* The calling task's or pthread's context.  Inline: the lock's fast paths
 * call it once each way. */
static inline weft__cctx *weft__cctx_self(void)
{
    weft__worker *w = weft__worker_self();
    if (w && w->current) return &w->current->cctx;
    return weft__cctx_thread();
}

/* wait.h's inline waiter calls, which need the worker and task. */
static inline void weft__waiter_init(weft__waiter *w, const weft__waiter_ops *ops, void *obj)
{
    weft__waiter_init_common(w, ops, obj);
    weft__worker *wk = weft__worker_self();
    weft_task *t = wk ? wk->current : NULL;
    w->task = t;
    weft__cctx *c = t ? &t->cctx : weft__cctx_thread();
    w->ctx = c;
    w->cnode = weft__cctx_inner(c);
    if (t) atomic_store_explicit(&t->park, WEFT__P_PARKING, memory_order_relaxed);
}

/* Whether w's owner is cancelled or its runtime shutting down. */
static inline bool weft__waiter_owner_cancelled(weft__waiter *w)
{
    /* seq_cst (rt->cancelled): Dekker with runtime shutdown, which stores
     * it and then sweeps the published waiters. */
    return weft__node_eff(w->cnode) ||
           (w->task && atomic_load_explicit(&w->task->rt->cancelled, memory_order_seq_cst));
}

static inline void weft__waiter_publish_early(weft__waiter *w)
{
    weft__cctx *c = w->ctx;
    if (!c) return;
    /* release: the waiter's fields before a canceller reads them (its load
     * of the slot acquires).  The store-load order against the check in
     * weft__waiter_publish_check comes from the caller's next seq_cst RMW
     * (weft__fence_after_rmw).  Still a plain store on x86-64. */
    atomic_store_explicit(&c->waiter, w, memory_order_release);
    w->published = true;
}

static inline bool weft__waiter_publish_check(weft__waiter *w)
{
    if (!w->ctx) return false;
    weft__fence_after_rmw();
    return weft__waiter_owner_cancelled(w);
}

/* Makes t runnable: into the caller's next slot when the caller is a worker
 * of t's runtime, else into the injector; wakes an idle worker if needed.
 * Inline: the next slot's fast path (it was empty) is three loads and a
 * store on every hand-off; the rest is weft__sched_displaced (the slot's
 * previous task goes to the deque) or weft__sched_submit (from outside). */
void weft__sched_displaced(weft__worker *w, weft_task *old);
void weft__sched_submit(weft_task *t);
/* The same, for a caller that has just read weft__worker_self() into w. */
static inline void weft__make_runnable_from(weft__worker *w, weft_task *t)
{
    if (WEFT_LIKELY(w && w->rt == t->rt)) {
        weft_task *old = w->next;
        w->next = t;
        if (old) weft__sched_displaced(w, old); /* else it runs when w next chooses */
        return;
    }
    weft__sched_submit(t);
}
static inline void weft__make_runnable(weft_task *t)
{
    weft__make_runnable_from(weft__worker_self(), t);
}
/* Switches the calling task out; action is WEFT__SW_YIELD/PARK/EXIT. */
void weft__task_switch_out(weft__worker *w, weft_task *self, int action);
/* Finishes whatever the context that switched to us asked (see prev_action). */
void weft__after_switch(weft__worker *w);
/*
 * Lets the task in w's next slot run first, if there is one and fairness
 * allows (worker.c, Polling): the caller, a task on w inside a read section
 * (rcu.h) that may be kept across the switch, goes into the next slot,
 * pinned there (no other task displaces it, no thief takes it) and w
 * reports no quiescent state until it runs again, on w.  Returns false at
 * once when it does not switch, else true once the caller runs again.
 */
bool weft__task_poll_next(weft__worker *w, weft_task *self);

/* wait.h's weft__waiter_wake: a task already PARKED (the usual case: it
 * switched out a while ago) needs no locked instruction: after_switch has
 * written park for this park, and no one but us, the waiter's one waker
 * (wait.c invariant 2), writes it until the task runs again, so a plain
 * store does.  acquire: pairs with after_switch's exchange, so the task's
 * switch-out happens before we enqueue it. */
static inline void weft__waiter_wake(weft__waiter *w)
{
    weft_task *t = w->task;
    if (t && atomic_load_explicit(&t->park, memory_order_acquire) == WEFT__P_PARKED) {
        atomic_store_explicit(&t->park, WEFT__P_WOKEN, memory_order_relaxed);
        weft__make_runnable(t);
        return;
    }
    weft__waiter_wake_slow(w);
}
/* wait.h's weft__waiter_complete. */
static inline void weft__waiter_complete(weft__waiter *w, int result)
{
    w->result = result;
    /* release: a hint for observers; the owner synchronises through wake. */
    atomic_store_explicit(&w->state, WEFT__W_DONE, memory_order_release);
    weft__waiter_wake(w);
}
/* weft__waiter_park for a waiter already published (or not cancellable):
 * a task switches out until woken, a pthread sleeps (until its deadline,
 * when not 0); then w is retracted and its result returned.  Inline for
 * the channel's blocking path. */
static inline int weft__waiter_park_published(weft__waiter *w, uint64_t pthread_deadline)
{
    if (!w->task) return weft__waiter_park_thread(w, pthread_deadline);
    weft__task_switch_out(weft__worker_self(), w->task, WEFT__SW_PARK);
    int rc = w->result;
    if (w->ctx) weft__waiter_retract(w->ctx, w);
    return rc;
}
/* Whether a worker is idle and none spins, for a caller that has already
 * issued the seq_cst fence ordering its push before these loads. */
static inline bool weft__sched_wake_wanted(weft_runtime *rt)
{
    return atomic_load_explicit(&rt->nr_spinning, memory_order_relaxed) == 0 &&
           atomic_load_explicit(&rt->nr_idle, memory_order_relaxed) != 0;
}
/* Wakes one idle worker if no worker is spinning (Go's wakep). */
static inline bool weft__sched_wake_needed(weft_runtime *rt)
{
    /* seq_cst: orders the caller's push before these loads; pairs with the
     * fence in park() (worker.c, "No lost wake-up"). */
    weft__fence_sc();
    return weft__sched_wake_wanted(rt);
}
void weft__sched_wake_slow(weft_runtime *rt);
/* Inline: every spawn comes here, and almost always returns at once. */
static inline void weft__sched_wake_one(weft_runtime *rt)
{
    if (weft__sched_wake_needed(rt)) weft__sched_wake_slow(rt);
}
/* Before t first runs on w (t->ctx.sp NULL): trades t's reserved stack for
 * w's warmest free one and makes t's context (task.c). */
void weft__task_start(weft__worker *w, weft_task *t);
/* Finishes a task that switched out for the last time (WEFT__SW_EXIT). */
void weft__task_exited(weft__worker *w, weft_task *t);
/* Creates and starts a task of rt from any thread (counted for destroy);
 * out NULL: detached; g: the group it joins.  ECANCELED once destroy began. */
int weft__spawn(weft_runtime *rt, weft_fn fn, void *arg, weft_task **out, struct weft_group *g);
/* The scheduler loop of worker w; returns when the runtime stops. */
void weft__worker_loop(weft__worker *w);
/* Number of tasks of rt not yet finished, or a value > 0 while that cannot
 * be decided (see runtime.c, destroy step 3). */
uint64_t weft__live_tasks(weft_runtime *rt);
/* Whether the task (or thread) running on worker w (w = weft__worker_self(),
 * NULL off the pool) is cancelled.  Inline (every channel and lock call
 * asks): the task's own context is one load away from the worker, and its
 * runtime is the worker's (a task runs only on its runtime's workers), so
 * the shutdown flag is two loads away, beside the chain to the task's
 * innermost node rather than at the end of it. */
static inline bool weft__cancelled_from(weft__worker *w)
{
    weft_task *t = w ? w->current : NULL;
    if (WEFT_UNLIKELY(!t)) return weft__cctx_cancelled(weft__cctx_thread());
    if (atomic_load_explicit(&w->rt->cancelled, memory_order_acquire)) return true;
    return atomic_load_explicit(&weft__cctx_inner(&t->cctx)->flags, memory_order_acquire) & WEFT__N_EFF;
}
/* Whether the calling task (or thread) is cancelled: checkpoints ask this. */
static inline bool weft__cancelled(void)
{
    return weft__cancelled_from(weft__worker_self());
}
/* Fires the expired timers of w (its own heap only). */
void weft__timers_run(weft__worker *w, uint64_t now);

#endif
