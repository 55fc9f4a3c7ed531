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
#include "timer.h"

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
    /* Timer entries only: called by the timer that popped w instead of
     * claiming and completing it (cancel.c's deadline entries). */
    void (*fire)(struct weft__waiter *w);
} weft__waiter_ops;

/*
 * Cancellation side of the protocol (cancel.c has the algorithm).
 *
 * A cancel node is one link of the cancellation tree: a task's or pthread's
 * root, a cancel scope, a task group or a token.  `flags` carries
 * WEFT__N_EFF, "effectively cancelled", which every checkpoint reads with
 * one load; a node's EFF is (OWN) or (not SHIELD and the parent's EFF), kept
 * up to date by pushing changes down the tree under the nodes' locks.
 *
 * A context (weft__cctx) is a task or a plain pthread: its innermost scope,
 * its root node, and the waiter it is blocked on (published so a canceller
 * can abort it).
 */
enum {
    WEFT__N_EFF = 1u,       /* effectively cancelled */
    WEFT__N_OWN = 2u,       /* cancelled itself (directly, deadline or token) */
    WEFT__N_SHIELD = 4u,    /* ignores the parent's cancel */
    WEFT__N_DEADLINE = 8u,  /* its own deadline fired */
    WEFT__N_DELIVERED = 16u /* token: every callback of the cancel has run */
};
enum { WEFT__NK_ROOT, WEFT__NK_SCOPE, WEFT__NK_GROUP, WEFT__NK_TOKEN };

struct weft__cctx;
typedef struct weft__cnode {
    _Atomic uint32_t flags;            /* atomic: WEFT__N_* */
    _Atomic bool lock;                 /* spin lock: flags' EFF changes, children */
    uint8_t kind;                      /* immutable: WEFT__NK_* */
    struct weft__cnode *parent;        /* immutable while linked */
    struct weft__cnode *child;         /* guarded by lock (not used by groups) */
    struct weft__cshard *shards;       /* groups: children spread over shards */
    struct weft__cnode *next, *prev;   /* siblings; guarded by parent->lock */
    struct weft__cnode *dnext;         /* tokens: delivery list of one cancel */
    struct weft__cctx *ctx;            /* root/scope: the context to poke */
} weft__cnode;

typedef struct weft__cctx {
    struct weft__scope *scope;               /* innermost scope; owner only */
    struct weft_task *task;                  /* the task, or NULL for a pthread */
    struct weft__lock *held;                 /* locks it owns (sync.c); owner only */
    _Atomic(struct weft__waiter *) waiter;   /* atomic: blocked waiter, NULL, or BUSY */
    weft__cnode root;                        /* outermost node of the context */
} weft__cctx;

#define WEFT__CCTX_BUSY ((struct weft__waiter *)1)

static inline bool weft__node_eff(const weft__cnode *n)
{
    /* seq_cst: the blocker's half of the Dekker pair with a canceller (the
     * store of the blocked waiter, then this load; cancel.c, invariant 3). */
    return atomic_load_explicit(&n->flags, memory_order_seq_cst) & WEFT__N_EFF;
}

typedef struct weft__waiter {
    _Atomic int state;              /* atomic; the one decision */
    int result;                     /* written by the winner before the wake-up */
    weft_task *task;                /* owner task; NULL for a plain pthread */
    _Atomic uint32_t futex;         /* plain-pthread owner: 0 wait, 2 sleeping, 1 woken */
    const weft__waiter_ops *ops;    /* how a canceller unlinks it */
    void *obj;                      /* what it waits on (for ops) */
    weft__cctx *ctx;                /* owner's context; NULL: not cancellable */
    weft__cnode *cnode;             /* owner's innermost cancel node at init */
    void *slot;                     /* item in or out, for primitives that move one */
    _Atomic bool released;          /* take(): the completer is done with it */
    bool published;                 /* owner only: publish() succeeded */
    bool linked;                    /* in a primitive's queue; guarded by it */
    uint64_t deadline;              /* timers: weft_now() deadline */
    size_t heap_idx;                /* timers: index in the heap; guarded by its lock */
    struct weft__waiter *next, *prev; /* queue links; guarded by the primitive */
} weft__waiter;

/* The fields every init sets: owner-less, not cancellable, WAITING. */
static inline void weft__waiter_init_common(weft__waiter *w, const weft__waiter_ops *ops, void *obj)
{
    atomic_init(&w->state, WEFT__W_WAITING);
    w->result = 0;
    w->ops = ops;
    w->obj = obj;
    w->slot = NULL;
    w->deadline = 0;
    w->heap_idx = WEFT__HEAP_NONE;
    atomic_init(&w->released, false);
    w->published = false;
    w->linked = false;
    w->next = w->prev = NULL;
    atomic_init(&w->futex, 0);
    w->ctx = NULL;
    w->cnode = NULL;
    w->task = NULL;
}
/* weft__waiter_init(w, ops, obj), defined inline in runtime.h (it needs
 * the worker and its task), as are publish_early and publish_check below:
 * prepares w for the calling task or pthread; the task is marked PARKING.
 * The waiter is cancellable by the caller's effective cancel scope. */
/* Same, but no cancel reaches it (group wait after a cancel, shutdown). */
void weft__waiter_init_shielded(weft__waiter *w, const weft__waiter_ops *ops, void *obj);
/* Prepares a timer entry that no one parks on (deadlines of scopes and
 * tokens): owner-less, not cancellable, fired through ops->fire. */
void weft__waiter_init_entry(weft__waiter *w, const weft__waiter_ops *ops, void *obj);
/* The caller initialised w but decided not to park after all (it was never
 * published): undoes the task's PARKING mark. */
void weft__waiter_unused(weft__waiter *w);
/*
 * Publishes w in the owner's context before it is linked anywhere, so a
 * cancel can find it, and checks cancellation: returns ECANCELED (w unused,
 * nothing to undo) when the owner is already effectively cancelled or its
 * runtime is shutting down, else 0.  Then the caller links w under its queue
 * lock only if weft__waiter_pending(w) (a canceller may have aborted the
 * published waiter already; its unlink found nothing) and parks.  Used by
 * every lock-based primitive: once a cancel returned, a waiter under it can
 * never be claimed (the model in tests/model/waiter.pml checks this).
 */
int weft__waiter_publish(weft__waiter *w);
/*
 * The same publication in two halves, for a blocker whose next step is a
 * seq_cst read-modify-write that makes w findable (the channel's cell
 * install): publish_early stores w in the owner's context (a release
 * store, no fence) and marks it published; the caller makes that RMW, and then
 * publish_check, the load half of the Dekker pair with a canceller, says
 * whether the owner is cancelled (or its runtime shutting down).  The RMW
 * is the pair's fence (weft__fence_after_rmw), so publishing costs no
 * locked instruction of its own.  When the check says cancelled, the
 * caller aborts w itself (weft__waiter_abort: a completer may have claimed
 * it first, and then it has the item).  Between the two halves the caller
 * may withdraw w instead (weft__waiter_withdraw).
 */
/* void weft__waiter_publish_early(weft__waiter *w);  (runtime.h)
 * bool weft__waiter_publish_check(weft__waiter *w);  (runtime.h) */
static inline bool weft__waiter_pending(weft__waiter *w)
{
    return atomic_load_explicit(&w->state, memory_order_acquire) == WEFT__W_WAITING;
}
/* A published waiter the caller decided not to link after all (an error,
 * or nothing to wait for): returns code, or, if a canceller aborted the
 * (unlinked) waiter in the meantime, the canceller's code.  Callers that
 * completed their operation anyway ignore the result: a completed
 * operation never reports ECANCELED. */
int weft__waiter_withdraw(weft__waiter *w, int code);
/* Blocks until a completer or canceller wakes the owner; returns w->result.
 * Call it after linking w where its completers find it.  If w was not
 * published first (lock-free slots, e.g. join), park publishes it here.  It publishes w to
 * the owner's context, so a cancel of the effective scope aborts it; if that
 * scope is already cancelled it aborts w itself (unlinking it through ops)
 * and returns ECANCELED at once.  For a plain pthread with deadline != 0, a
 * passing deadline commits the waiter itself with ETIMEDOUT (if no one else
 * decided first). */
int weft__waiter_park(weft__waiter *w, uint64_t pthread_deadline);

/* A completer found w's owner cancelled: aborts w (if still WAITING) with
 * ECANCELED and wakes it.  The completer has already unlinked w. */
void weft__waiter_reject(weft__waiter *w);

/*
 * Claims w for a completer, which must already have unlinked it from its
 * queue.  Returns false when a canceller decided first, or when the owner's
 * scope is already cancelled: then w is aborted with ECANCELED here (a
 * pending cancel never receives anything) and the completer moves on.
 */
static inline bool weft__waiter_claim(weft__waiter *w)
{
    if (w->cnode && WEFT_UNLIKELY(atomic_load_explicit(&w->cnode->flags, memory_order_acquire) &
                                  WEFT__N_EFF)) {
        weft__waiter_reject(w);
        return false;
    }
    int exp = WEFT__W_WAITING;
    /* acq_rel: acquire the blocker's writes to the waiter (its slot); release
     * is irrelevant until complete().  Pairs with abort()'s CAS. */
    return atomic_compare_exchange_strong_explicit(&w->state, &exp, WEFT__W_CLAIMED,
                                                   memory_order_acq_rel, memory_order_acquire);
}

/*
 * For completers that find waiters in a lock-free slot (a task's joiner
 * word) rather than under a lock the canceller's unlink also takes: after
 * taking w out of the slot (so unlink can no longer find it there), decide
 * it.  Returns true when claimed (complete it later).  Returns false when a
 * canceller decided first (then w is marked released, which that
 * canceller's unlink waits for before it lets the owner go) or when the
 * owner was already cancelled (then w is aborted and woken here).  Either
 * way the caller must not touch w after a false return.
 */
bool weft__waiter_take(weft__waiter *w);
/* ops->unlink side of take(): waits until the completer released w. */
void weft__waiter_wait_released(weft__waiter *w);

/* For an owner that found its published waiter w aborted: returns once the
 * canceller that aborted it (a poke of w's context, which holds the context
 * BUSY from before its abort until after its unlink and wake-up) is done.
 * No-op when w has no context or no canceller holds it. */
void weft__waiter_wait_canceller(weft__waiter *w);

/* weft__waiter_complete(w, result), inline in runtime.h: after a
 * successful claim, records result, marks DONE and wakes the owner.  The
 * caller must not touch w afterwards. */

/* Cancels w with code unless a completer already claimed it.  Returns true if
 * this call won (w is then unlinked and its owner woken). */
bool weft__waiter_abort(weft__waiter *w, int code);

/* weft__waiter_wake(w), inline in runtime.h: makes the owner of w
 * runnable (task) or wakes its thread (pthread).  Its fast path is a task
 * already PARKED; the rest is weft__waiter_wake_slow. */
void weft__waiter_wake_slow(weft__waiter *w);
/* Retracts w from its context c: one CAS, or weft__waiter_retract_slow
 * waits out a canceller holding the context BUSY. */
void weft__waiter_retract_slow(weft__cctx *c, weft__waiter *w);
static inline void weft__waiter_retract(weft__cctx *c, weft__waiter *w)
{
    weft__waiter *exp = w;
    /* acquire: a canceller's release of BUSY (its abort is done). */
    if (WEFT_LIKELY(atomic_compare_exchange_strong_explicit(&c->waiter, &exp, NULL,
                                                            memory_order_acquire,
                                                            memory_order_relaxed)))
        return;
    weft__waiter_retract_slow(c, w);
}
/* The pthread half of weft__waiter_park (w published, or not cancellable):
 * sleeps until woken or the deadline, then retracts w. */
int weft__waiter_park_thread(weft__waiter *w, uint64_t pthread_deadline);

#endif
