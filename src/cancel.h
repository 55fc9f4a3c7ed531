/*
 * Private side of cancellation (cancel.c, group.c, gtimer.c).
 */
#ifndef WEFT_CANCEL_PRIV_H
#define WEFT_CANCEL_PRIV_H

#include "internal.h"
#include "timer.h"
#include "wait.h"

static inline void weft__spin_lock(_Atomic bool *l)
{
    for (;;) {
        /* acquire: pairs with the release in weft__spin_unlock. */
        if (!atomic_exchange_explicit(l, true, memory_order_acquire)) return;
        while (atomic_load_explicit(l, memory_order_relaxed)) weft__cpu_relax();
    }
}

static inline void weft__spin_unlock(_Atomic bool *l)
{
    atomic_store_explicit(l, false, memory_order_release);
}

/*
 * A group's children are spread over shards, each with its own lock, so
 * that children exiting on different workers (and a cancel walking them)
 * rarely meet on one lock (group.c).
 */
#define WEFT__GROUP_SHARDS 32
typedef struct weft__cshard {
    _Alignas(WEFT_CACHELINE) _Atomic bool lock;
    struct weft__cnode *child;       /* guarded by lock */
    size_t live;                     /* guarded by lock: children in this shard */
} weft__cshard;

/* By 16 MiB region (a stack slab): a shard's list stays in address order,
 * so walking it (and running what the walk woke) streams through memory;
 * a hash of the address made a 1M-task cancel seven times slower. */
static inline weft__cshard *weft__shard_of(struct weft__cnode *group, const void *child)
{
    return &group->shards[((uintptr_t)child >> 24) % WEFT__GROUP_SHARDS];
}

/* A token callback registration (the storage of weft_token_reg). */
typedef struct weft__reg {
    struct weft_token *token;
    void (*cb)(void *);
    void *arg;
    struct weft__reg *next, *prev;   /* guarded by token->node.lock */
    _Atomic int state;               /* REG_* (cancel.c) */
    _Atomic(const void *) runner;    /* context running cb, while RUNNING */
} weft__reg;

/* A cancel scope (the storage of weft_scope). */
typedef struct weft__scope {
    weft__cnode node;
    weft__cctx *ctx;                 /* owner context */
    struct weft__scope *outer;       /* enclosing scope of ctx, or NULL */
    uint8_t kind;                    /* SCOPE_* (cancel.c) */
    bool caught;
    bool armed;                      /* timer is in a heap */
    struct weft_token *token;        /* bound token, or NULL */
    weft__waiter timer;              /* deadline entry */
    weft__reg reg;                   /* registration on token */
} weft__scope;

/* Makes c a fresh context of task (NULL: a plain pthread's): no scope, no
 * held lock, no waiter, a root node with no parent.  Stores only the fields
 * that differ (a recycled task's context: see cancel.c). */
void weft__cctx_init(weft__cctx *c, struct weft_task *task);
/* The calling plain pthread's context (thread-local, set up on first use). */
weft__cctx *weft__cctx_thread(void);
/* The calling task's or pthread's context: weft__cctx_self (runtime.h). */

/* Aborts the waiter c is blocked on, if any, with ECANCELED (shutdown). */
void weft__cctx_abort_blocked(weft__cctx *c);

static inline weft__cnode *weft__cctx_inner(weft__cctx *c)
{
    return c->scope ? &c->scope->node : &c->root;
}

/* Initialises an unlinked node. */
void weft__node_init(weft__cnode *n, uint8_t kind, weft__cctx *ctx);
/* Links node n (kind, ctx set) under parent and computes its EFF. */
void weft__node_link(weft__cnode *n, weft__cnode *parent);
/* Links n into the list *head guarded by a lock the caller holds (a group
 * shard), under parent, copying parent's EFF. */
void weft__node_link_locked(weft__cnode **head, weft__cnode *n, weft__cnode *parent);
/* Unlinks n from the list *head, lock held. */
void weft__node_unlink_locked(weft__cnode **head, weft__cnode *n);
/* Unlinks n from its parent; aborts if n still has children. */
void weft__node_unlink(weft__cnode *n, const char *what);
/* Cancels n itself (OWN | extra flags) and pushes the change down; runs the
 * callbacks of every token it reaches.  n must stay alive during the call. */
void weft__node_cancel(weft__cnode *n, uint32_t extra);

/* Global timer thread (gtimer.c): a heap of entries fired through
 * ops->fire.  add returns ENOMEM when the heap cannot grow. */
int weft__gtimer_add(weft__waiter *w);
weft__timers *weft__gtimer_heap(void);

/* Disarms a timer entry: unlinks it or waits for a running fire. */
void weft__entry_disarm(weft__waiter *w);

/* Breaks every lock c still owns (a task returned holding them; sync.c). */
void weft__locks_break(weft__cctx *c);

/* Group side of a task's exit (group.c). */
struct weft_group;
struct weft_task;
/* A new child task t (not yet runnable) joins g. */
void weft__group_child_enter(struct weft_group *g, struct weft_task *t);
void weft__group_child_exit(struct weft_group *g, weft__cnode *root, int status);

#endif
