/*
 * Task-aware lock, semaphore, event, condition and capacity limiter.
 *
 * Each object has a FIFO queue of waiters (wait.h) under a small spin lock
 * and blocks only through the waiter protocol: a waiter is published to its
 * cancel scope before it is linked (weft__waiter_publish), linked only while
 * still pending, and served by a completer that pops it and claims it
 * under the queue lock (the lock a canceller's unlink also takes, so a
 * claim never touches a waiter whose owner already left).  claim() refuses
 * a waiter whose scope is cancelled, so ownership, a permit, a notification
 * or a token always goes to the first live waiter and nothing is consumed
 * by a cancelled one.
 *
 * Lock.  `owner` is one word: 0 (free), the owner's context address
 * (weft__cctx, a task's or a pthread's) with bit WAITERS when the queue may
 * be non-empty, or BROKEN.  Uncontended acquire is one CAS 0 -> me, release
 * one CAS me -> 0; with WAITERS set the CAS fails and release takes the
 * slow path, which hands the lock to the first live waiter by storing the
 * waiter's identity into `owner` before waking it (the new owner is
 * recorded before it runs).  Invariants:
 *  1. Under the queue lock, owner == 0 implies no live waiter is queued
 *     (release hands off whenever one is; a canceller that empties the
 *     queue clears WAITERS).
 *  2. WAITERS is set (under the queue lock) before a waiter is linked, so
 *     an owner's fast release cannot miss a queued waiter.
 *  3. The owner check comes first: EDEADLK is decided from `owner` alone,
 *     before cancellation, queueing or any write.
 *  4. Each context keeps the locks it owns in a list (owner-only links in
 *     the lock); a task that returns with locks breaks them: owner becomes
 *     BROKEN and every waiter is served EOWNERDEAD.
 * Memory order: the acquiring CAS is acquire, the releasing CAS or store is
 * release, so the critical sections are ordered; the hand-off store is
 * release and the new owner's wake-up acquires it (wait.c invariant 4).
 *
 * Contention before queueing (lock_contend).  FIFO hand-off makes a queue,
 * once formed, permanent while its callers keep re-acquiring: each release
 * hands the lock to the head, the releaser's next acquire queues behind
 * the rest, and every operation costs a wake-up and a switch (the convoy
 * of Blasgen et al., "The convoy phenomenon", 1979).  So a caller that
 * finds the lock owned does not queue at once: for a few bounded rounds it
 * spins while the owner may be running elsewhere (an adaptive mutex; Go's
 * sync.Mutex spins likewise) and yields, which lets an owner or a freshly
 * handed-to waiter on its own worker run, and a queue drain.  It takes the
 * lock only by the same CAS 0 -> me as the fast path, and owner == 0 means
 * no one is queued (invariant 1), so no queued waiter is ever passed over:
 * FIFO is among the queued waiters, as SEMANTICS.md section 4 states it
 * (release hands to the first live waiter; try_acquire fails while anyone
 * waits).  A caller still contending is not yet a waiter: one arriving
 * meanwhile may take the free lock first, for at most those rounds.  With
 * 4 tasks on 2 workers this took the contended benchmark from a convoy at
 * 45-75 ns per operation to 11-20 ns (bench_lock, contended_4).
 *
 * Condition.  wait links its waiter on the condition's queue before it
 * releases the lock, so a notifier (who must own the lock) cannot notify
 * before the waiter is queued.  A notified waiter wakes and re-acquires the
 * lock uncancellably (through the lock's own FIFO queue), so wait returns
 * owning the lock on every path but EPERM and EOWNERDEAD.
 */
#include <errno.h>
#include <stdlib.h>

#include "runtime.h"

enum { WAITERS = 1, BROKEN = 2 };
#define OWNER_MASK (~(uintptr_t)3)

/* --- FIFO queues of waiters -------------------------------------------- */

typedef struct wq {
    _Atomic bool lock; /* guards the queue (and the object's other fields) */
    weft__waiter *head, *tail;
    size_t n;
} wq;

static void wq_init(wq *q)
{
    atomic_init(&q->lock, false);
    q->head = q->tail = NULL;
    q->n = 0;
}

static void wq_push(wq *q, weft__waiter *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    w->linked = true;
    q->n++;
}

static void wq_remove(wq *q, weft__waiter *w)
{
    if (!w->linked) return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->linked = false;
    q->n--;
}

static weft__waiter *wq_pop(wq *q)
{
    weft__waiter *w = q->head;
    if (w) wq_remove(q, w);
    return w;
}

/* ops->unlink of every object but the lock: w->obj is the queue. */
static void wq_unlink(weft__waiter *w)
{
    wq *q = w->obj;
    weft__spin_lock(&q->lock);
    wq_remove(q, w);
    weft__spin_unlock(&q->lock);
}

static const weft__waiter_ops wq_ops = {.unlink = wq_unlink};

/* destroy of every object but the lock: EBUSY while anyone waits. */
static int wq_destroy(wq *q)
{
    weft__spin_lock(&q->lock);
    int rc = q->n ? EBUSY : 0;
    weft__spin_unlock(&q->lock);
    return rc;
}

/* Pops up to n waiters that can be claimed (lock held) into a chain through
 * ->next, to be completed after the lock is released. */
static weft__waiter *wq_claim(wq *q, size_t n, size_t *got)
{
    weft__waiter *first = NULL, **tail = &first;
    size_t k = 0;
    while (k < n) {
        weft__waiter *w = wq_pop(q);
        if (!w) break;
        if (!weft__waiter_claim(w)) continue;
        *tail = w;
        tail = &w->next;
        w->next = NULL;
        k++;
    }
    if (got) *got = k;
    return first;
}

static void complete_chain(weft__waiter *w, int result)
{
    while (w) {
        weft__waiter *next = w->next; /* read before the owner may go */
        weft__waiter_complete(w, result);
        w = next;
    }
}

/* --- lock ---------------------------------------------------------------- */

typedef struct weft__lock {
    _Atomic uintptr_t owner;
    wq q;
    struct weft__lock *held_next, *held_prev; /* the owner's list */
} weft__lock;

_Static_assert(sizeof(weft__lock) <= sizeof(weft_lock), "weft_lock is too small");

static weft__lock *L(weft_lock *l)
{
    return (weft__lock *)(void *)l;
}

static void held_push(weft__cctx *c, weft__lock *l)
{
    l->held_prev = NULL;
    l->held_next = c->held;
    if (c->held) c->held->held_prev = l;
    c->held = l;
}

static void held_remove(weft__cctx *c, weft__lock *l)
{
    if (l->held_prev)
        l->held_prev->held_next = l->held_next;
    else
        c->held = l->held_next;
    if (l->held_next) l->held_next->held_prev = l->held_prev;
}

static void lock_unlink(weft__waiter *w)
{
    weft__lock *l = w->obj;
    weft__spin_lock(&l->q.lock);
    wq_remove(&l->q, w);
    if (l->q.n == 0) { /* invariant 1 */
        uintptr_t v = atomic_load_explicit(&l->owner, memory_order_relaxed);
        while ((v & WAITERS) &&
               !atomic_compare_exchange_weak_explicit(&l->owner, &v, v & ~(uintptr_t)WAITERS,
                                                      memory_order_relaxed, memory_order_relaxed)) {
        }
    }
    weft__spin_unlock(&l->q.lock);
}

static const weft__waiter_ops lock_ops = {.unlink = lock_unlink};

int weft_lock_init(weft_lock *pl)
{
    if (!pl) return EINVAL;
    weft__lock *l = L(pl);
    atomic_init(&l->owner, 0);
    wq_init(&l->q);
    l->held_next = l->held_prev = NULL;
    return 0;
}

static int lock_slow(weft__lock *l, weft__cctx *c, bool cancellable)
{
    uintptr_t me = (uintptr_t)c;
    weft__waiter w;
    if (cancellable) {
        weft__waiter_init(&w, &lock_ops, l);
        if (weft__waiter_publish(&w)) return ECANCELED;
    } else {
        weft__waiter_init_shielded(&w, &lock_ops, l);
    }
    w.slot = (void *)me;
    weft__spin_lock(&l->q.lock);
    for (;;) {
        uintptr_t v = atomic_load_explicit(&l->owner, memory_order_relaxed);
        if (v & BROKEN) {
            weft__spin_unlock(&l->q.lock);
            weft__waiter_withdraw(&w, 0);
            return EOWNERDEAD;
        }
        if (v == 0) {
            /* acquire: pairs with the previous owner's release. */
            if (atomic_compare_exchange_weak_explicit(&l->owner, &v, me, memory_order_acquire,
                                                      memory_order_relaxed)) {
                weft__spin_unlock(&l->q.lock);
                weft__waiter_withdraw(&w, 0); /* completed: never ECANCELED */
                held_push(c, l);
                return 0;
            }
            continue;
        }
        if ((v & WAITERS) ||
            atomic_compare_exchange_weak_explicit(&l->owner, &v, v | WAITERS, memory_order_relaxed,
                                                  memory_order_relaxed))
            break; /* invariant 2 */
    }
    if (weft__waiter_pending(&w)) wq_push(&l->q, &w);
    weft__spin_unlock(&l->q.lock);
    int rc = weft__waiter_park(&w, 0);
    if (rc == 0) held_push(c, l);
    return rc;
}

/*
 * Contention before queueing (see the file-top comment): up to
 * CONTEND_ROUNDS rounds of "spin while the lock is owned and no one is
 * queued, then yield", taking the lock only when it is free, which with
 * no one queued is no one's turn.  The spin (CONTEND_SPIN pauses, ~0.4 us
 * at the 27 ns a PAUSE takes on the EPYC we measure on) is for an owner
 * running on another worker or thread, so it is skipped on a runtime of
 * one worker; the yield lets an owner, or a waiter just handed the lock,
 * run on this worker.  Then the caller queues.
 */
enum { CONTEND_ROUNDS = 4, CONTEND_SPIN = 16 };

static int lock_contend(weft__lock *l, weft__cctx *c)
{
    uintptr_t me = (uintptr_t)c;
    weft__worker *w = weft__worker_self();
    for (unsigned round = 0; round < CONTEND_ROUNDS; round++) {
        uintptr_t v = atomic_load_explicit(&l->owner, memory_order_relaxed);
        if (!w || w->rt->nworkers > 1) {
            for (unsigned i = 0; i < CONTEND_SPIN && v != 0 && !(v & (WAITERS | BROKEN)); i++) {
                weft__cpu_relax();
                v = atomic_load_explicit(&l->owner, memory_order_relaxed);
            }
        }
        if (v & BROKEN) return EOWNERDEAD;
        /* acquire: pairs with the releasing CAS (v == 0: no one queued). */
        if (v == 0 && atomic_compare_exchange_strong_explicit(&l->owner, &v, me, memory_order_acquire,
                                                              memory_order_relaxed)) {
            held_push(c, l);
            return 0;
        }
        if (weft__cctx_cancelled(c)) return ECANCELED;
        weft_task *self = w ? w->current : NULL;
        if (self) {
            weft__task_switch_out(w, self, WEFT__SW_YIELD);
            w = weft__worker_self(); /* perhaps another worker now */
        }
    }
    return lock_slow(l, c, true);
}

int weft_lock_acquire(weft_lock *pl)
{
    weft__lock *l = L(pl);
    weft__cctx *c = weft__cctx_self();
    uintptr_t me = (uintptr_t)c;
    uintptr_t v = atomic_load_explicit(&l->owner, memory_order_relaxed);
    if (WEFT_UNLIKELY((v & OWNER_MASK) == me)) return EDEADLK; /* invariant 3 */
    if (WEFT_UNLIKELY(v & BROKEN)) return EOWNERDEAD;
    if (WEFT_UNLIKELY(weft__cctx_cancelled(c))) return ECANCELED;
    /* acquire: pairs with the releasing CAS or hand-off store. */
    if (v == 0 && atomic_compare_exchange_strong_explicit(&l->owner, &v, me, memory_order_acquire,
                                                          memory_order_relaxed)) {
        held_push(c, l);
        return 0;
    }
    return lock_contend(l, c);
}

int weft_lock_try_acquire(weft_lock *pl)
{
    weft__lock *l = L(pl);
    weft__cctx *c = weft__cctx_self();
    uintptr_t me = (uintptr_t)c, v = 0;
    if (atomic_compare_exchange_strong_explicit(&l->owner, &v, me, memory_order_acquire,
                                                memory_order_relaxed)) {
        held_push(c, l);
        return 0;
    }
    if ((v & OWNER_MASK) == me) return EDEADLK;
    if (v & BROKEN) return EOWNERDEAD;
    return EBUSY; /* owned; with v == 0 impossible here, no one can be waiting */
}

/* Hands l to the first live waiter, or frees it.  Caller owns l. */
static void lock_handoff(weft__lock *l)
{
    weft__spin_lock(&l->q.lock);
    for (;;) {
        weft__waiter *w = wq_pop(&l->q);
        if (!w) {
            atomic_store_explicit(&l->owner, 0, memory_order_release);
            break;
        }
        if (weft__waiter_claim(w)) {
            uintptr_t next = (uintptr_t)w->slot | (l->q.n ? WAITERS : 0);
            /* release: the critical section happens before the new owner's. */
            atomic_store_explicit(&l->owner, next, memory_order_release);
            weft__spin_unlock(&l->q.lock);
            weft__waiter_complete(w, 0);
            return;
        }
    }
    weft__spin_unlock(&l->q.lock);
}

static int lock_release(weft__lock *l, weft__cctx *c)
{
    uintptr_t me = (uintptr_t)c;
    uintptr_t v = atomic_load_explicit(&l->owner, memory_order_relaxed);
    if ((v & OWNER_MASK) != me) return EPERM;
    held_remove(c, l);
    v = me;
    if (atomic_compare_exchange_strong_explicit(&l->owner, &v, 0, memory_order_release,
                                                memory_order_relaxed))
        return 0;
    lock_handoff(l); /* WAITERS set */
    return 0;
}

int weft_lock_release(weft_lock *pl)
{
    return lock_release(L(pl), weft__cctx_self());
}

int weft_lock_destroy(weft_lock *pl)
{
    if (!pl) return EINVAL;
    weft__lock *l = L(pl);
    weft__spin_lock(&l->q.lock);
    uintptr_t v = atomic_load_explicit(&l->owner, memory_order_relaxed);
    int rc = ((v & OWNER_MASK) || l->q.n) ? EBUSY : 0;
    weft__spin_unlock(&l->q.lock);
    return rc;
}

int weft_lock_stats(weft_lock *pl, struct weft_lock_stats *st)
{
    if (!pl || !st) return EINVAL;
    weft__lock *l = L(pl);
    weft__spin_lock(&l->q.lock);
    uintptr_t v = atomic_load_explicit(&l->owner, memory_order_acquire);
    weft__cctx *o = (weft__cctx *)(v & OWNER_MASK);
    st->locked = o != NULL;
    st->broken = (v & BROKEN) != 0;
    st->owner = o ? o->task : NULL;
    st->tasks_waiting = l->q.n;
    weft__spin_unlock(&l->q.lock);
    return 0;
}

void weft__locks_break(weft__cctx *c)
{
    while (c->held) {
        weft__lock *l = c->held;
        held_remove(c, l);
        weft__spin_lock(&l->q.lock);
        atomic_store_explicit(&l->owner, BROKEN, memory_order_release);
        weft__waiter *chain = wq_claim(&l->q, SIZE_MAX, NULL);
        weft__spin_unlock(&l->q.lock);
        complete_chain(chain, EOWNERDEAD);
    }
}

/* --- semaphore ----------------------------------------------------------- */

typedef struct weft__sem {
    size_t value, max; /* guarded by q.lock */
    wq q;
} weft__sem;

_Static_assert(sizeof(weft__sem) <= sizeof(weft_sem), "weft_sem is too small");

static weft__sem *SM(weft_sem *s)
{
    return (weft__sem *)(void *)s;
}

int weft_sem_init(weft_sem *ps, size_t initial, size_t max)
{
    if (!ps || (max && initial > max)) return EINVAL;
    weft__sem *s = SM(ps);
    s->value = initial;
    s->max = max;
    wq_init(&s->q);
    return 0;
}

/* Lock held: takes a permit if one is free and no one is ahead. */
static bool sem_take(weft__sem *s)
{
    if (s->value == 0 || s->q.n) return false;
    s->value--;
    return true;
}

int weft_sem_acquire(weft_sem *ps)
{
    weft__sem *s = SM(ps);
    if (weft__cancelled()) return ECANCELED;
    weft__spin_lock(&s->q.lock);
    bool ok = sem_take(s);
    weft__spin_unlock(&s->q.lock);
    if (ok) return 0;
    weft__waiter w;
    weft__waiter_init(&w, &wq_ops, &s->q);
    if (weft__waiter_publish(&w)) return ECANCELED;
    weft__spin_lock(&s->q.lock);
    if (sem_take(s)) {
        weft__spin_unlock(&s->q.lock);
        weft__waiter_withdraw(&w, 0);
        return 0;
    }
    if (weft__waiter_pending(&w)) wq_push(&s->q, &w);
    weft__spin_unlock(&s->q.lock);
    return weft__waiter_park(&w, 0);
}

int weft_sem_try_acquire(weft_sem *ps)
{
    weft__sem *s = SM(ps);
    weft__spin_lock(&s->q.lock);
    bool ok = sem_take(s);
    weft__spin_unlock(&s->q.lock);
    return ok ? 0 : EAGAIN;
}

int weft_sem_release(weft_sem *ps)
{
    weft__sem *s = SM(ps);
    weft__spin_lock(&s->q.lock);
    weft__waiter *w = wq_claim(&s->q, 1, NULL);
    int rc = 0;
    if (!w) {
        if (s->max && s->value >= s->max)
            rc = EOVERFLOW;
        else
            s->value++;
    }
    weft__spin_unlock(&s->q.lock);
    complete_chain(w, 0); /* the permit goes straight to it */
    return rc;
}

int weft_sem_destroy(weft_sem *ps)
{
    return ps ? wq_destroy(&SM(ps)->q) : EINVAL;
}

int weft_sem_stats(weft_sem *ps, struct weft_sem_stats *st)
{
    if (!ps || !st) return EINVAL;
    weft__sem *s = SM(ps);
    weft__spin_lock(&s->q.lock);
    st->value = s->value;
    st->max = s->max;
    st->tasks_waiting = s->q.n;
    weft__spin_unlock(&s->q.lock);
    return 0;
}

/* --- event --------------------------------------------------------------- */

typedef struct weft__event {
    _Atomic bool set;
    wq q;
} weft__event;

_Static_assert(sizeof(weft__event) <= sizeof(weft_event), "weft_event is too small");

static weft__event *EV(weft_event *e)
{
    return (weft__event *)(void *)e;
}

int weft_event_init(weft_event *pe)
{
    if (!pe) return EINVAL;
    weft__event *e = EV(pe);
    atomic_init(&e->set, false);
    wq_init(&e->q);
    return 0;
}

void weft_event_set(weft_event *pe)
{
    weft__event *e = EV(pe);
    weft__spin_lock(&e->q.lock);
    atomic_store_explicit(&e->set, true, memory_order_release);
    weft__waiter *chain = wq_claim(&e->q, SIZE_MAX, NULL);
    weft__spin_unlock(&e->q.lock);
    complete_chain(chain, 0);
}

bool weft_event_is_set(weft_event *pe)
{
    return atomic_load_explicit(&EV(pe)->set, memory_order_acquire);
}

int weft_event_wait(weft_event *pe)
{
    weft__event *e = EV(pe);
    if (weft__cancelled()) return ECANCELED;
    if (atomic_load_explicit(&e->set, memory_order_acquire)) return 0;
    weft__waiter w;
    weft__waiter_init(&w, &wq_ops, &e->q);
    if (weft__waiter_publish(&w)) return ECANCELED;
    weft__spin_lock(&e->q.lock);
    if (atomic_load_explicit(&e->set, memory_order_relaxed)) {
        weft__spin_unlock(&e->q.lock);
        weft__waiter_withdraw(&w, 0);
        return 0;
    }
    if (weft__waiter_pending(&w)) wq_push(&e->q, &w);
    weft__spin_unlock(&e->q.lock);
    return weft__waiter_park(&w, 0);
}

int weft_event_destroy(weft_event *pe)
{
    return pe ? wq_destroy(&EV(pe)->q) : EINVAL;
}

int weft_event_stats(weft_event *pe, struct weft_event_stats *st)
{
    if (!pe || !st) return EINVAL;
    weft__event *e = EV(pe);
    weft__spin_lock(&e->q.lock);
    st->set = atomic_load_explicit(&e->set, memory_order_relaxed);
    st->tasks_waiting = e->q.n;
    weft__spin_unlock(&e->q.lock);
    return 0;
}

/* --- condition ------------------------------------------------------------ */

typedef struct weft__cond {
    weft__lock *lock;
    wq q;
} weft__cond;

_Static_assert(sizeof(weft__cond) <= sizeof(weft_cond), "weft_cond is too small");

static weft__cond *CV(weft_cond *c)
{
    return (weft__cond *)(void *)c;
}

int weft_cond_init(weft_cond *pc, weft_lock *lock)
{
    if (!pc || !lock) return EINVAL;
    weft__cond *c = CV(pc);
    c->lock = L(lock);
    wq_init(&c->q);
    return 0;
}

static bool owns(weft__lock *l, weft__cctx *c)
{
    return (atomic_load_explicit(&l->owner, memory_order_relaxed) & OWNER_MASK) == (uintptr_t)c;
}

int weft_cond_wait(weft_cond *pc)
{
    weft__cond *c = CV(pc);
    weft__cctx *cx = weft__cctx_self();
    if (!owns(c->lock, cx)) return EPERM;
    if (weft__cctx_cancelled(cx)) return ECANCELED;
    weft__waiter w;
    weft__waiter_init(&w, &wq_ops, &c->q);
    if (weft__waiter_publish(&w)) return ECANCELED;
    weft__spin_lock(&c->q.lock);
    if (weft__waiter_pending(&w)) wq_push(&c->q, &w);
    weft__spin_unlock(&c->q.lock);
    lock_release(c->lock, cx); /* after queueing: no notification is missed */
    int rc = weft__waiter_park(&w, 0);
    /* Take the lock back whatever happened, uncancellably. */
    uintptr_t v = 0;
    int lr;
    if (atomic_compare_exchange_strong_explicit(&c->lock->owner, &v, (uintptr_t)cx,
                                                memory_order_acquire, memory_order_relaxed)) {
        held_push(cx, c->lock);
        lr = 0;
    } else {
        lr = (v & BROKEN) ? EOWNERDEAD : lock_slow(c->lock, cx, false);
    }
    return lr ? lr : rc;
}

int weft_cond_notify(weft_cond *pc, size_t n)
{
    weft__cond *c = CV(pc);
    if (!owns(c->lock, weft__cctx_self())) return EPERM;
    weft__spin_lock(&c->q.lock);
    weft__waiter *chain = wq_claim(&c->q, n, NULL); /* skips cancelled waiters */
    weft__spin_unlock(&c->q.lock);
    complete_chain(chain, 0);
    return 0;
}

int weft_cond_notify_all(weft_cond *pc)
{
    return weft_cond_notify(pc, SIZE_MAX);
}

int weft_cond_destroy(weft_cond *pc)
{
    return pc ? wq_destroy(&CV(pc)->q) : EINVAL;
}

int weft_cond_stats(weft_cond *pc, struct weft_cond_stats *st)
{
    if (!pc || !st) return EINVAL;
    weft__cond *c = CV(pc);
    weft__spin_lock(&c->q.lock);
    st->tasks_waiting = c->q.n;
    weft__spin_unlock(&c->q.lock);
    return 0;
}

/* --- capacity limiter ------------------------------------------------------ */

typedef struct weft__limiter {
    size_t total, borrowed, cap; /* guarded by q.lock */
    const void **b;              /* guarded by q.lock: the borrowers (unordered) */
    wq q;
} weft__limiter;

_Static_assert(sizeof(weft__limiter) <= sizeof(weft_limiter), "weft_limiter is too small");

static weft__limiter *LM(weft_limiter *l)
{
    return (weft__limiter *)(void *)l;
}

int weft_limiter_init(weft_limiter *pl, size_t total)
{
    if (!pl || total == 0) return EINVAL;
    weft__limiter *l = LM(pl);
    l->total = total;
    l->borrowed = 0;
    l->cap = 0;
    l->b = NULL;
    wq_init(&l->q);
    return 0;
}

/* Lock held.  The borrower list is a plain array searched linearly: the
 * number of tokens of a limiter is small (it bounds concurrency). */
static bool lim_holds(weft__limiter *l, const void *who)
{
    for (size_t i = 0; i < l->borrowed; i++)
        if (l->b[i] == who) return true;
    return false;
}

static int lim_reserve(weft__limiter *l, size_t n)
{
    if (n <= l->cap) return 0;
    size_t cap = l->cap ? l->cap * 2 : 8;
    while (cap < n) cap *= 2;
    const void **a = realloc(l->b, cap * sizeof *a);
    if (!a) return ENOMEM;
    l->b = a;
    l->cap = cap;
    return 0;
}

/* Lock held: serves waiters while tokens are free; returns them chained. */
static weft__waiter *lim_serve(weft__limiter *l)
{
    weft__waiter *first = NULL, **tail = &first;
    while (l->borrowed < l->total && l->q.n) {
        if (lim_reserve(l, l->borrowed + 1)) break; /* a later release serves */
        weft__waiter *w = wq_pop(&l->q);
        if (!weft__waiter_claim(w)) continue;
        l->b[l->borrowed++] = w->slot; /* reserved for the woken waiter */
        *tail = w;
        tail = &w->next;
        w->next = NULL;
    }
    return first;
}

static int lim_acquire(weft__limiter *l, const void *who, bool wait)
{
    weft__spin_lock(&l->q.lock);
    if (lim_holds(l, who)) {
        weft__spin_unlock(&l->q.lock);
        return EDEADLK;
    }
    weft__spin_unlock(&l->q.lock);
    if (wait && weft__cancelled()) return ECANCELED;
    weft__waiter w;
    if (wait) {
        weft__waiter_init(&w, &wq_ops, &l->q);
        w.slot = (void *)(uintptr_t)who;
        if (weft__waiter_publish(&w)) return ECANCELED;
    }
    weft__spin_lock(&l->q.lock);
    int rc = -1;
    if (lim_holds(l, who)) {
        rc = EDEADLK;
    } else if (l->borrowed < l->total && l->q.n == 0) {
        rc = lim_reserve(l, l->borrowed + 1);
        if (rc == 0) l->b[l->borrowed++] = who;
    } else if (!wait) {
        rc = EBUSY;
    } else if (weft__waiter_pending(&w)) {
        wq_push(&l->q, &w);
    }
    weft__spin_unlock(&l->q.lock);
    if (!wait) return rc;
    if (rc >= 0) {
        weft__waiter_withdraw(&w, rc);
        return rc;
    }
    return weft__waiter_park(&w, 0);
}

int weft_limiter_acquire(weft_limiter *l)
{
    return lim_acquire(LM(l), weft__cctx_self(), true);
}

int weft_limiter_acquire_for(weft_limiter *l, const void *borrower)
{
    if (!borrower) return EINVAL;
    return lim_acquire(LM(l), borrower, true);
}

int weft_limiter_try_acquire(weft_limiter *l)
{
    return lim_acquire(LM(l), weft__cctx_self(), false);
}

int weft_limiter_try_acquire_for(weft_limiter *l, const void *borrower)
{
    if (!borrower) return EINVAL;
    return lim_acquire(LM(l), borrower, false);
}

static int lim_release(weft__limiter *l, const void *who)
{
    weft__spin_lock(&l->q.lock);
    size_t i = 0;
    while (i < l->borrowed && l->b[i] != who) i++;
    if (i == l->borrowed) {
        weft__spin_unlock(&l->q.lock);
        return EPERM;
    }
    l->b[i] = l->b[--l->borrowed];
    weft__waiter *chain = lim_serve(l);
    weft__spin_unlock(&l->q.lock);
    complete_chain(chain, 0);
    return 0;
}

int weft_limiter_release(weft_limiter *l)
{
    return lim_release(LM(l), weft__cctx_self());
}

int weft_limiter_release_for(weft_limiter *l, const void *borrower)
{
    return lim_release(LM(l), borrower);
}

int weft_limiter_set_total(weft_limiter *pl, size_t total)
{
    if (!pl || total == 0) return EINVAL;
    weft__limiter *l = LM(pl);
    weft__spin_lock(&l->q.lock);
    l->total = total;
    weft__waiter *chain = lim_serve(l);
    weft__spin_unlock(&l->q.lock);
    complete_chain(chain, 0);
    return 0;
}

int weft_limiter_destroy(weft_limiter *pl)
{
    if (!pl) return EINVAL;
    weft__limiter *l = LM(pl);
    weft__spin_lock(&l->q.lock);
    int rc = (l->borrowed || l->q.n) ? EBUSY : 0;
    if (rc == 0) {
        free(l->b);
        l->b = NULL;
        l->cap = 0;
    }
    weft__spin_unlock(&l->q.lock);
    return rc;
}

int weft_limiter_stats(weft_limiter *pl, struct weft_limiter_stats *st)
{
    if (!pl || !st) return EINVAL;
    weft__limiter *l = LM(pl);
    weft__spin_lock(&l->q.lock);
    st->total = l->total;
    st->borrowed = l->borrowed;
    st->tasks_waiting = l->q.n;
    weft__spin_unlock(&l->q.lock);
    return 0;
}
