/*
 * Cancellation: the cancel tree, scopes, tokens, and the canceller's half of
 * the waiter protocol.
 *
 * The tree.  Every cancel source is a node (weft__cnode, wait.h): the root
 * of a task or plain pthread, a cancel scope, a task group, a token.  A
 * scope's parent is the scope it was entered in (or its context's root); a
 * group's parent is the innermost node of the task that created it; the
 * root of a group's child task has the group as parent; a child token has
 * its parent token.  Each node carries EFF, "effectively cancelled":
 *
 *      EFF(n) = OWN(n) or (not SHIELD(n) and EFF(parent(n)))
 *
 * Readers (checkpoints, weft_token_is_cancelled) load EFF once and never
 * walk the tree.  Writers keep the equation true by pushing changes down:
 * node_update(n) recomputes EFF(n) under n's lock and, if it changed,
 * recurses into n's children while still holding it.
 *
 * Invariants.
 *  1. Lock order is parent before child, so a cancel walking down and a
 *     child linking or unlinking itself (which takes its parent's lock) never
 *     deadlock.  A node's children and its EFF bit change only under its
 *     lock; its sibling links only under its parent's lock.
 *  2. A node with children is never unlinked (weft__node_unlink aborts), so
 *     a node reached while its parent's lock is held is alive, and so is the
 *     context it points to.  A group keeps its children in shards (group.c)
 *     instead: there the shard's lock plays the parent lock's part, and the
 *     order is group node, then shard, then child.
 *  3. Cancelling is synchronous.  When EFF becomes true on a node with a
 *     context (a root or scope), the canceller pokes that context while
 *     still holding the node's lock: if the context has a published blocked
 *     waiter whose innermost node is EFF, it aborts it (ECANCELED).  The
 *     blocker publishes its waiter (seq_cst store; or, in the channel, a
 *     release store followed by its cell install's seq_cst RMW, which
 *     fences: wait.h, publish_early) before reading EFF
 *     (seq_cst load); the canceller sets EFF (seq_cst RMW) before reading
 *     the waiter (seq_cst load): in every interleaving one of them sees the
 *     other, and both aborts are the waiter's one CAS (wait.c).  While the
 *     canceller works on a waiter it holds the context's slot as BUSY; the
 *     woken blocker retracts its waiter only once BUSY is released.
 *  4. Tokens: a token's callbacks run once, in registration order, on the
 *     thread that turned its EFF on, after every lock is released (user code
 *     never runs under a weft lock).  Tokens reached by one cancel are
 *     delivered parent first.  DELIVERED is set when a token's list is
 *     empty; weft_token_cancel returns only after DELIVERED, so a second
 *     canceller also returns only once the cancel has fully taken effect.
 *  5. Deadlines are timer entries (weft__waiter with ops->fire).  The timer
 *     claims an entry under its heap's lock and then fires it (cancel, then
 *     DONE); disarming aborts the entry (CAS) or, having lost, waits until
 *     the fire is DONE.  So a scope or token is never freed under a running
 *     fire.
 *
 * Memory order.  EFF changes are seq_cst RMWs (invariant 3).  Plain
 * readers use acquire: they only need to see everything the canceller did
 * before cancelling.  Structure fields are written under the node locks or
 * by the node's owner before it is linked (the link's lock release
 * publishes them).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "runtime.h"

enum { SCOPE_PLAIN, SCOPE_MOVE_ON, SCOPE_FAIL_AFTER };
enum { REG_OFF = 0, REG_LISTED, REG_RUNNING, REG_DONE };

struct weft_token {
    weft__cnode node;
    _Atomic uint32_t refs;           /* atomic */
    weft_token *parent;              /* immutable; holds a reference */
    weft__reg *regs, *regs_tail;     /* guarded by node.lock */
    _Atomic(const void *) deliverer; /* context delivering its callbacks */
    pthread_mutex_t dl_lock;         /* guards armed and the timer entry */
    bool armed;
    weft__waiter timer;
};

_Static_assert(sizeof(weft__scope) <= sizeof(weft_scope), "weft_scope is too small");
_Static_assert(_Alignof(weft__scope) <= _Alignof(weft_scope), "weft_scope alignment");
_Static_assert(sizeof(weft__reg) <= sizeof(weft_token_reg), "weft_token_reg is too small");
_Static_assert(_Alignof(weft__reg) <= _Alignof(weft_token_reg), "weft_token_reg alignment");

#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

/* --- contexts ----------------------------------------------------------- */

void weft__node_init(weft__cnode *n, uint8_t kind, weft__cctx *ctx)
{
    atomic_init(&n->flags, 0);
    atomic_init(&n->lock, false);
    n->kind = kind;
    n->parent = n->child = n->next = n->prev = n->dnext = NULL;
    n->shards = NULL;
    n->ctx = ctx;
}

/* Stores v into lv unless it holds v already (the second: an atomic, with
 * relaxed loads and stores). */
#define SET_IF_DIFFERENT(lv, v)                                                 \
    do {                                                                        \
        if ((lv) != (v)) (lv) = (v);                                            \
    } while (0)
#define SET_ATOMIC_IF_DIFFERENT(a, v)                                           \
    do {                                                                        \
        if (atomic_load_explicit(&(a), memory_order_relaxed) != (v))            \
            atomic_store_explicit(&(a), (v), memory_order_relaxed);             \
    } while (0)

void weft__cctx_init(weft__cctx *c, struct weft_task *task)
{
    /* Writes only what differs, with stores (not atomic_init: runtime
     * shutdown may be sweeping a recycled stack's slot; it only ever finds
     * NULL there).  A finished task leaves its context clean (no scope, no
     * held lock, no waiter, no child; flags stay 0 unless it was
     * cancelled), so a spawn on a recycled stack usually writes nothing
     * here and these two lines stay shared with the worker that ran the
     * last task on it; a store would pull them over on every spawn (the
     * 2-worker spawn_join spawns on one worker and runs on the other). */
    SET_IF_DIFFERENT(c->scope, NULL);
    SET_IF_DIFFERENT(c->task, task);
    SET_IF_DIFFERENT(c->held, NULL);
    SET_ATOMIC_IF_DIFFERENT(c->waiter, NULL);
    weft__cnode *n = &c->root;
    SET_ATOMIC_IF_DIFFERENT(n->flags, 0);
    SET_ATOMIC_IF_DIFFERENT(n->lock, false);
    SET_IF_DIFFERENT(n->kind, WEFT__NK_ROOT);
    SET_IF_DIFFERENT(n->parent, NULL);
    SET_IF_DIFFERENT(n->child, NULL);
    SET_IF_DIFFERENT(n->next, NULL);
    SET_IF_DIFFERENT(n->prev, NULL);
    SET_IF_DIFFERENT(n->dnext, NULL);
    SET_IF_DIFFERENT(n->shards, NULL);
    SET_IF_DIFFERENT(n->ctx, c);
}

static _Thread_local weft__cctx tls_ctx;
static _Thread_local bool tls_ready;

weft__cctx *weft__cctx_thread(void)
{
    if (WEFT_UNLIKELY(!tls_ready)) {
        weft__cctx_init(&tls_ctx, NULL);
        tls_ready = true;
    }
    return &tls_ctx;
}

/* Invariant 3: aborts c's blocked waiter if its innermost node is EFF (or
 * whatever it is, when force: runtime shutdown). */
static void cctx_poke_(weft__cctx *c, bool force)
{
    for (;;) {
        /* seq_cst: the canceller's load of the Dekker pair. */
        weft__waiter *w = atomic_load_explicit(&c->waiter, memory_order_seq_cst);
        if (!w) return;
        if (w == WEFT__CCTX_BUSY) { /* another canceller: wait, then re-check */
            weft__cpu_relax();
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&c->waiter, &w, WEFT__CCTX_BUSY,
                                                  memory_order_acquire, memory_order_relaxed)) {
            if (force || weft__node_eff(w->cnode)) weft__waiter_abort(w, ECANCELED);
            /* release: our abort happened before the owner retracts w. */
            atomic_store_explicit(&c->waiter, w, memory_order_release);
            return;
        }
    }
}

static void cctx_poke(weft__cctx *c)
{
    cctx_poke_(c, false);
}

void weft__cctx_abort_blocked(weft__cctx *c)
{
    cctx_poke_(c, true);
}

/* --- the tree ----------------------------------------------------------- */

typedef struct dlist {
    weft__cnode *head, **tail;
} dlist;

static bool token_tryref(weft_token *t)
{
    uint32_t r = atomic_load_explicit(&t->refs, memory_order_relaxed);
    while (r) {
        if (atomic_compare_exchange_weak_explicit(&t->refs, &r, r + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
    return false; /* dying: its registrations are gone by contract */
}

/*
 * A group's cancel visits thousands of parked children, each a few cold cache
 * lines reached through the sibling list, and every visit makes locked
 * read-modify-writes that stall until their line arrives.  Before visiting
 * c, load c->next's successor's node (reading its next pointer) and start
 * loading the node after it, so the misses of later visits overlap this one.
 * Only hints; siblings are stable under the parent's shard lock, which the
 * caller holds.  (Prefetching each child's whole task region as well, nine
 * lines, made a million-child cancel 3-22% slower on 1 worker in four paired
 * runs.  GCC had silently dropped that prefetch until the task prefetch
 * got its volatile asm, worker.c, so the walk was always measured without
 * it.)
 */
static inline void walk_prefetch(const weft__cnode *c)
{
    const weft__cnode *n = c->next;
    if (!n) return;
    const weft__cnode *nn = n->next;
    if (!nn) return;
    __builtin_prefetch(nn->next);
}

/* Recomputes EFF(x); x's parent's lock is held, or x is OWN (invariant 1). */
static void node_update(weft__cnode *x, dlist *dl)
{
    weft__spin_lock(&x->lock);
    uint32_t f = atomic_load_explicit(&x->flags, memory_order_relaxed);
    bool eff = (f & WEFT__N_OWN) ||
               (!(f & WEFT__N_SHIELD) && x->parent &&
                (atomic_load_explicit(&x->parent->flags, memory_order_relaxed) & WEFT__N_EFF));
    if (eff != !!(f & WEFT__N_EFF)) {
        if (eff)
            atomic_fetch_or_explicit(&x->flags, WEFT__N_EFF, memory_order_seq_cst);
        else
            atomic_fetch_and_explicit(&x->flags, ~(uint32_t)WEFT__N_EFF, memory_order_seq_cst);
        if (eff && x->kind == WEFT__NK_TOKEN) {
            weft_token *t = container_of(x, weft_token, node);
            if (token_tryref(t)) { /* parent first: appended before its children */
                atomic_store_explicit(&t->deliverer, weft__cctx_self(), memory_order_relaxed);
                x->dnext = NULL;
                *dl->tail = x;
                dl->tail = &x->dnext;
            } else {
                atomic_fetch_or_explicit(&x->flags, WEFT__N_DELIVERED, memory_order_release);
            }
        }
        if (x->shards) {
            for (unsigned i = 0; i < WEFT__GROUP_SHARDS; i++) {
                weft__cshard *sh = &x->shards[i];
                weft__spin_lock(&sh->lock);
                for (weft__cnode *c = sh->child; c; c = c->next) {
                    walk_prefetch(c);
                    node_update(c, dl);
                }
                weft__spin_unlock(&sh->lock);
            }
        }
        for (weft__cnode *c = x->child; c; c = c->next) node_update(c, dl);
        if (eff && x->ctx) cctx_poke(x->ctx);
    }
    weft__spin_unlock(&x->lock);
}

static void token_deliver(weft_token *t);
void weft_token_unref(weft_token *t);

static void deliver_all(dlist *dl)
{
    weft__cnode *n = dl->head;
    while (n) {
        weft__cnode *next = n->dnext;
        weft_token *t = container_of(n, weft_token, node);
        token_deliver(t);
        weft_token_unref(t);
        n = next;
    }
}

void weft__node_link_locked(weft__cnode **head, weft__cnode *n, weft__cnode *parent)
{
    n->parent = parent;
    n->prev = NULL;
    n->next = *head;
    if (*head) (*head)->prev = n;
    *head = n;
    /* A new node has no blocked owner and no callbacks yet: copying the
     * parent's EFF is all its update needs.  acquire: the parent's EFF was
     * set before the lock we hold was last released by its walker. */
    if (!(atomic_load_explicit(&n->flags, memory_order_relaxed) & WEFT__N_SHIELD) &&
        (atomic_load_explicit(&parent->flags, memory_order_acquire) & WEFT__N_EFF)) {
        uint32_t add = WEFT__N_EFF | (n->kind == WEFT__NK_TOKEN ? WEFT__N_DELIVERED : 0);
        atomic_fetch_or_explicit(&n->flags, add, memory_order_seq_cst);
    }
}

void weft__node_unlink_locked(weft__cnode **head, weft__cnode *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        *head = n->next;
    if (n->next) n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

void weft__node_link(weft__cnode *n, weft__cnode *parent)
{
    WEFT_ASSERT(!parent->shards);
    weft__spin_lock(&parent->lock);
    weft__node_link_locked(&parent->child, n, parent);
    weft__spin_unlock(&parent->lock);
}

void weft__node_unlink(weft__cnode *n, const char *what)
{
    weft__cnode *p = n->parent;
    if (!p) return;
    weft__spin_lock(&n->lock);
    bool busy = n->child != NULL;
    weft__spin_unlock(&n->lock);
    if (busy)
        WEFT_DIE("%s ended while a task group or child token created under it is still alive "
                 "(destroy the group first)", what);
    WEFT_ASSERT(!p->shards);
    weft__spin_lock(&p->lock);
    weft__node_unlink_locked(&p->child, n);
    weft__spin_unlock(&p->lock);
    n->parent = NULL;
}

void weft__node_cancel(weft__cnode *n, uint32_t extra)
{
    atomic_fetch_or_explicit(&n->flags, WEFT__N_OWN | extra, memory_order_seq_cst);
    dlist dl = {NULL, &dl.head};
    node_update(n, &dl);
    deliver_all(&dl);
}

/* --- timer entries ------------------------------------------------------ */

void weft__entry_disarm(weft__waiter *w)
{
    int exp = WEFT__W_WAITING;
    if (atomic_compare_exchange_strong_explicit(&w->state, &exp, WEFT__W_ABORTED,
                                                memory_order_acq_rel, memory_order_acquire)) {
        w->ops->unlink(w);
        return;
    }
    /* acquire: pairs with the fire's release of DONE (invariant 5). */
    for (unsigned i = 0; atomic_load_explicit(&w->state, memory_order_acquire) == WEFT__W_CLAIMED;)
        weft__backoff(&i);
}

static void entry_done(weft__waiter *w)
{
    atomic_store_explicit(&w->state, WEFT__W_DONE, memory_order_release);
}

/* --- scopes ------------------------------------------------------------- */

static weft__scope *S(weft_scope *s)
{
    return (weft__scope *)(void *)s;
}

static void scope_fire(weft__waiter *w)
{
    weft__scope *s = container_of(w, weft__scope, timer);
    weft__node_cancel(&s->node, WEFT__N_DEADLINE);
    entry_done(w);
}

static const weft__waiter_ops scope_timer_ops = {.unlink = weft__timers_unlink, .fire = scope_fire};

static void scope_enter(weft_scope *ps, uint8_t kind, uint64_t deadline)
{
    weft__scope *s = S(ps);
    weft__worker *wk = weft__worker_self();
    weft_task *t = wk ? wk->current : NULL;
    weft__cctx *c = t ? &t->cctx : weft__cctx_thread();
    weft__node_init(&s->node, WEFT__NK_SCOPE, c);
    s->ctx = c;
    s->outer = c->scope;
    s->kind = kind;
    s->caught = false;
    s->armed = false;
    s->token = NULL;
    s->reg.token = NULL;
    atomic_init(&s->reg.state, REG_OFF);
    weft__node_link(&s->node, weft__cctx_inner(c));
    c->scope = s;
    if (kind == SCOPE_PLAIN) return;
    if (deadline <= weft__now()) {
        weft__node_cancel(&s->node, WEFT__N_DEADLINE);
        return;
    }
    int rc;
    if (t) {
        weft__timers *h = &wk->timers;
        weft__waiter_init_entry(&s->timer, &scope_timer_ops, h);
        s->timer.deadline = deadline;
        weft__timers_lock(h);
        rc = weft__timers_add_locked(h, &s->timer);
        weft__timers_unlock(h);
    } else {
        weft__waiter_init_entry(&s->timer, &scope_timer_ops, weft__gtimer_heap());
        s->timer.deadline = deadline;
        rc = weft__gtimer_add(&s->timer);
    }
    if (rc) WEFT_DIE("weft_scope_enter_deadline: out of memory for the timer");
    s->armed = true;
}

void weft_scope_enter(weft_scope *s)
{
    scope_enter(s, SCOPE_PLAIN, 0);
}

void weft_scope_enter_deadline(weft_scope *s, uint64_t deadline_ns)
{
    scope_enter(s, SCOPE_MOVE_ON, deadline_ns);
}

void weft_scope_enter_fail_after(weft_scope *s, uint64_t deadline_ns)
{
    scope_enter(s, SCOPE_FAIL_AFTER, deadline_ns);
}

static void scope_token_fired(void *arg)
{
    weft__node_cancel(&((weft__scope *)arg)->node, 0);
}

int weft_scope_bind(weft_scope *ps, weft_token *t)
{
    if (!ps || !t) return EINVAL;
    weft__scope *s = S(ps);
    if (s->token) return EBUSY;
    weft_token_ref(t);
    s->token = t;
    return weft_token_on_cancel(t, scope_token_fired, s, (weft_token_reg *)(void *)&s->reg);
}

void weft_scope_shield(weft_scope *ps, bool on)
{
    weft__scope *s = S(ps);
    weft__cnode *p = s->node.parent;
    dlist dl = {NULL, &dl.head};
    weft__spin_lock(&p->lock);
    if (on)
        atomic_fetch_or_explicit(&s->node.flags, WEFT__N_SHIELD, memory_order_relaxed);
    else
        atomic_fetch_and_explicit(&s->node.flags, ~(uint32_t)WEFT__N_SHIELD, memory_order_relaxed);
    node_update(&s->node, &dl);
    weft__spin_unlock(&p->lock);
    deliver_all(&dl);
}

void weft_scope_cancel(weft_scope *s)
{
    if (s) weft__node_cancel(&S(s)->node, 0);
}

/* Is s the outermost cancelled scope visible from inside it? */
static bool scope_outermost(weft__scope *s)
{
    if (atomic_load_explicit(&s->node.flags, memory_order_acquire) & WEFT__N_SHIELD) return true;
    for (weft__cnode *p = s->node.parent; p; p = p->parent) {
        uint32_t f = atomic_load_explicit(&p->flags, memory_order_acquire);
        if (f & WEFT__N_OWN) return false;
        if (f & WEFT__N_SHIELD) return true;
    }
    return true;
}

int weft_scope_exit(weft_scope *ps, int rc)
{
    weft__scope *s = S(ps);
    weft__cctx *c = weft__cctx_self();
    if (s->ctx != c || c->scope != s)
        WEFT_DIE("weft_scope_exit: scopes exited out of order (this scope is not the innermost "
                 "scope of the calling %s)", weft_current() ? "task" : "thread");
    if (s->armed) {
        weft__entry_disarm(&s->timer);
        s->armed = false;
    }
    if (s->token) {
        weft_token_off_cancel((weft_token_reg *)(void *)&s->reg);
        weft_token_unref(s->token);
        s->token = NULL;
    }
    uint32_t f = atomic_load_explicit(&s->node.flags, memory_order_acquire);
    if (rc == ECANCELED && (f & WEFT__N_OWN) && scope_outermost(s)) {
        s->caught = true;
        rc = s->kind == SCOPE_FAIL_AFTER && (f & WEFT__N_DEADLINE) ? ETIMEDOUT : 0;
    }
    weft__node_unlink(&s->node, "a cancel scope");
    c->scope = s->outer;
    return rc;
}

bool weft_scope_cancelled_caught(const weft_scope *s)
{
    return ((const weft__scope *)(const void *)s)->caught;
}

bool weft_cancelled(void)
{
    return weft__cancelled();
}

int weft_checkpoint(void)
{
    if (weft__cancelled()) return ECANCELED;
    return weft_yield();
}

/* --- tokens ------------------------------------------------------------- */

static void token_fire(weft__waiter *w)
{
    weft_token *t = container_of(w, weft_token, timer);
    weft__node_cancel(&t->node, WEFT__N_DEADLINE);
    entry_done(w);
}

static const weft__waiter_ops token_timer_ops = {.unlink = weft__timers_unlink, .fire = token_fire};

int weft_token_create(weft_token **out, weft_token *parent)
{
    if (!out) return EINVAL;
    weft_token *t = malloc(sizeof *t);
    if (!t) return ENOMEM;
    weft__node_init(&t->node, WEFT__NK_TOKEN, NULL);
    atomic_init(&t->refs, 1);
    t->parent = parent;
    t->regs = t->regs_tail = NULL;
    atomic_init(&t->deliverer, NULL);
    WEFT_CHECK(pthread_mutex_init(&t->dl_lock, NULL));
    t->armed = false;
    if (parent) {
        weft_token_ref(parent);
        weft__node_link(&t->node, &parent->node);
    }
    *out = t;
    return 0;
}

void weft_token_ref(weft_token *t)
{
    if (t) atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void weft_token_unref(weft_token *t)
{
    if (!t) return;
    /* acq_rel: the last unref sees every other holder's writes. */
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
    if (t->armed) weft__entry_disarm(&t->timer);
    if (t->parent) {
        weft__node_unlink(&t->node, "a token");
        weft_token_unref(t->parent);
    }
    pthread_mutex_destroy(&t->dl_lock);
    free(t);
}

/* The header's inline reader relies on this layout. */
_Static_assert(offsetof(weft_token, node) == 0 && offsetof(weft__cnode, flags) == 0 &&
                   WEFT__N_EFF == 1u && sizeof(_Atomic uint32_t) == sizeof(uint32_t),
               "weft_token_is_cancelled's inline version reads bit 0 of the token's first word");

bool(weft_token_is_cancelled)(const weft_token *t)
{
    return atomic_load_explicit(&t->node.flags, memory_order_acquire) & WEFT__N_EFF;
}

static void token_deliver(weft_token *t)
{
    const void *self = weft__cctx_self();
    for (;;) {
        weft__spin_lock(&t->node.lock);
        weft__reg *r = t->regs;
        if (!r) {
            atomic_fetch_or_explicit(&t->node.flags, WEFT__N_DELIVERED, memory_order_release);
            weft__spin_unlock(&t->node.lock);
            return;
        }
        t->regs = r->next;
        if (t->regs)
            t->regs->prev = NULL;
        else
            t->regs_tail = NULL;
        atomic_store_explicit(&r->runner, self, memory_order_relaxed);
        atomic_store_explicit(&r->state, REG_RUNNING, memory_order_relaxed);
        weft__spin_unlock(&t->node.lock);
        r->cb(r->arg);
        /* release: the callback's effects happen before off_cancel returns. */
        atomic_store_explicit(&r->state, REG_DONE, memory_order_release);
    }
}

void weft_token_cancel(weft_token *t)
{
    if (!t) return;
    if (!(atomic_load_explicit(&t->node.flags, memory_order_acquire) & WEFT__N_OWN))
        weft__node_cancel(&t->node, 0);
    /* Invariant 4: return only once every callback of the cancel has run
     * (unless we are the one running them, from inside a callback). */
    const void *self = weft__cctx_self();
    for (unsigned i = 0;
         !(atomic_load_explicit(&t->node.flags, memory_order_acquire) & WEFT__N_DELIVERED);) {
        if (atomic_load_explicit(&t->deliverer, memory_order_relaxed) == self) return;
        weft__backoff(&i);
    }
}

int weft_token_set_deadline(weft_token *t, uint64_t deadline_ns)
{
    if (!t) return EINVAL;
    if (deadline_ns <= weft__now()) {
        weft_token_cancel(t);
        return 0;
    }
    int rc = 0;
    WEFT_CHECK(pthread_mutex_lock(&t->dl_lock));
    if (t->armed) {
        weft__entry_disarm(&t->timer);
        t->armed = false;
    }
    if (!weft_token_is_cancelled(t)) {
        weft__waiter_init_entry(&t->timer, &token_timer_ops, weft__gtimer_heap());
        t->timer.deadline = deadline_ns;
        rc = weft__gtimer_add(&t->timer);
        t->armed = rc == 0;
    }
    WEFT_CHECK(pthread_mutex_unlock(&t->dl_lock));
    return rc;
}

int weft_token_on_cancel(weft_token *t, void (*cb)(void *), void *arg, weft_token_reg *reg)
{
    if (!t || !cb || !reg) return EINVAL;
    weft__reg *r = (weft__reg *)(void *)reg;
    r->token = t;
    r->cb = cb;
    r->arg = arg;
    atomic_init(&r->runner, NULL);
    weft__spin_lock(&t->node.lock);
    if (atomic_load_explicit(&t->node.flags, memory_order_relaxed) & WEFT__N_EFF) {
        weft__spin_unlock(&t->node.lock);
        atomic_init(&r->state, REG_DONE);
        cb(arg);
        return 0;
    }
    atomic_init(&r->state, REG_LISTED);
    r->next = NULL;
    r->prev = t->regs_tail;
    if (t->regs_tail)
        t->regs_tail->next = r;
    else
        t->regs = r;
    t->regs_tail = r;
    weft__spin_unlock(&t->node.lock);
    return 0;
}

void weft_token_off_cancel(weft_token_reg *reg)
{
    if (!reg) return;
    weft__reg *r = (weft__reg *)(void *)reg;
    weft_token *t = r->token;
    if (!t) return;
    weft__spin_lock(&t->node.lock);
    if (atomic_load_explicit(&r->state, memory_order_relaxed) == REG_LISTED) {
        if (r->prev)
            r->prev->next = r->next;
        else
            t->regs = r->next;
        if (r->next)
            r->next->prev = r->prev;
        else
            t->regs_tail = r->prev;
        atomic_store_explicit(&r->state, REG_OFF, memory_order_relaxed);
        weft__spin_unlock(&t->node.lock);
        return;
    }
    weft__spin_unlock(&t->node.lock);
    if (atomic_load_explicit(&r->runner, memory_order_relaxed) == weft__cctx_self()) return;
    /* acquire: pairs with the release of DONE after the callback. */
    for (unsigned i = 0; atomic_load_explicit(&r->state, memory_order_acquire) == REG_RUNNING;)
        weft__backoff(&i);
}
