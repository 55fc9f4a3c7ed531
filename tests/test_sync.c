/* Task-aware synchronisation (src/sync.c): every rule of SEMANTICS.md
 * section 4, inside tasks on 1, 2 and 4 workers and on plain pthreads.
 * Each test has a short timeout: a re-acquire that hangs fails it. */
#include <errno.h>
#include <unistd.h>

#include "helpers.h"

#define FOREVER UINT64_MAX
static const unsigned sync_workers[] = {1, 2, 4};

#define BOTH(name, fn, secs)                                                                  \
    Test(sync, name##_in_tasks, .timeout = secs)                                              \
    {                                                                                         \
        for (size_t i = 0; i < 3; i++) cr_assert_eq(run_on(sync_workers[i], fn, NULL), 0);   \
    }                                                                                         \
    Test(sync, name##_on_pthread, .timeout = secs)                                            \
    {                                                                                         \
        cr_assert_eq(run_on_pthread(fn, NULL), 0);                                            \
    }

/* Waits (sleeping) until stats report n waiters. */
#define WAIT_WAITERS(kind, obj, n)                                                            \
    do {                                                                                      \
        struct weft_##kind##_stats st_;                                                       \
        for (;;) {                                                                            \
            weft_##kind##_stats(obj, &st_);                                                   \
            if (st_.tasks_waiting == (n)) break;                                              \
            weft_sleep(100000);                                                               \
        }                                                                                     \
    } while (0)

/* Runs fn on a new plain pthread (fn may block). */
static pthread_t bg(void *(*fn)(void *), void *arg)
{
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fn, arg), 0);
    return th;
}

/* ---- lock: EDEADLK on every path, state untouched ---------------------- */

static void assert_lock_state(weft_lock *l, bool locked, size_t waiting)
{
    struct weft_lock_stats st;
    cr_assert_eq(weft_lock_stats(l, &st), 0);
    cr_assert_eq(st.locked, locked);
    cr_assert_eq(st.tasks_waiting, waiting);
    if (locked) cr_assert_eq(st.owner, weft_current());
}

static int reacquire_uncontended(void *arg)
{
    (void)arg;
    weft_lock l;
    cr_assert_eq(weft_lock_init(&l), 0);
    cr_assert_eq(weft_lock_acquire(&l), 0);
    cr_assert_eq(weft_lock_acquire(&l), EDEADLK);
    cr_assert_eq(weft_lock_try_acquire(&l), EDEADLK);
    assert_lock_state(&l, true, 0);
    cr_assert_eq(weft_lock_release(&l), 0);
    assert_lock_state(&l, false, 0);
    cr_assert_eq(weft_lock_release(&l), EPERM, "release of an unlocked lock");
    cr_assert_eq(weft_lock_try_acquire(&l), 0);
    cr_assert_eq(weft_lock_release(&l), 0);
    cr_assert_eq(weft_lock_destroy(&l), 0);
    return 0;
}
BOTH(reacquire_uncontended_is_edeadlk, reacquire_uncontended, 5)

static int reacquire_in_cancelled_scope(void *arg)
{
    (void)arg;
    weft_lock l;
    weft_lock_init(&l);
    cr_assert_eq(weft_lock_acquire(&l), 0);
    weft_scope s;
    weft_scope_enter(&s);
    weft_scope_cancel(&s);
    cr_assert_eq(weft_lock_acquire(&l), EDEADLK, "EDEADLK is decided before the cancel");
    cr_assert_eq(weft_scope_exit(&s, ECANCELED), 0);
    assert_lock_state(&l, true, 0);
    cr_assert_eq(weft_lock_release(&l), 0);
    /* A cancelled caller that does not own it gets ECANCELED, no effect. */
    weft_scope_enter(&s);
    weft_scope_cancel(&s);
    cr_assert_eq(weft_lock_acquire(&l), ECANCELED);
    assert_lock_state(&l, false, 0);
    cr_assert_eq(weft_scope_exit(&s, ECANCELED), 0);
    return 0;
}
BOTH(reacquire_in_cancelled_scope_is_edeadlk, reacquire_in_cancelled_scope, 5)

struct queued {
    weft_lock *l;
    int id;
    int *order;
    _Atomic int *n;
    int rc;
};

static int lock_waiter(void *arg)
{
    struct queued *q = arg;
    q->rc = weft_lock_acquire(q->l);
    if (q->rc == 0) {
        q->order[atomic_fetch_add(q->n, 1)] = q->id;
        cr_assert_eq(weft_lock_release(q->l), 0);
    }
    return 0;
}

static void *lock_waiter_thread(void *arg)
{
    lock_waiter(arg);
    return NULL;
}

static int reacquire_with_waiters(void *arg)
{
    (void)arg;
    weft_lock l;
    weft_lock_init(&l);
    int order[3];
    _Atomic int n = 0;
    struct queued q[3];
    cr_assert_eq(weft_lock_acquire(&l), 0);
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        q[i] = (struct queued){&l, i, order, &n, -1};
        th[i] = bg(lock_waiter_thread, &q[i]); /* waiters are plain pthreads */
        WAIT_WAITERS(lock, &l, (size_t)i + 1);
    }
    cr_assert_eq(weft_lock_acquire(&l), EDEADLK);
    cr_assert_eq(weft_lock_try_acquire(&l), EDEADLK);
    assert_lock_state(&l, true, 3);
    cr_assert_eq(weft_lock_destroy(&l), EBUSY);
    cr_assert_eq(weft_lock_release(&l), 0);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    cr_assert_eq(atomic_load(&n), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(q[i].rc, 0);
        cr_assert_eq(order[i], i, "waiters are served FIFO");
    }
    assert_lock_state(&l, false, 0);
    return 0;
}
BOTH(reacquire_with_waiters_queued_is_edeadlk_and_fifo_holds, reacquire_with_waiters, 10)

static int task_waiters_fifo(void *arg)
{
    (void)arg;
    weft_lock l;
    weft_lock_init(&l);
    int order[8];
    _Atomic int n = 0;
    struct queued q[8];
    weft_task *t[8];
    cr_assert_eq(weft_lock_acquire(&l), 0);
    for (int i = 0; i < 8; i++) {
        q[i] = (struct queued){&l, i, order, &n, -1};
        cr_assert_eq(weft_spawn(&t[i], lock_waiter, &q[i]), 0);
        WAIT_WAITERS(lock, &l, (size_t)i + 1);
    }
    cr_assert_eq(weft_lock_acquire(&l), EDEADLK);
    cr_assert_eq(weft_lock_release(&l), 0);
    for (int i = 0; i < 8; i++) cr_assert_eq(weft_join(t[i], NULL), 0);
    for (int i = 0; i < 8; i++) cr_assert_eq(order[i], i);
    return 0;
}

Test(sync, task_waiters_are_served_fifo, .timeout = 10)
{
    for (size_t i = 0; i < 3; i++) cr_assert_eq(run_on(sync_workers[i], task_waiters_fifo, NULL), 0);
}

/* ---- lock: contention before queueing (sync.c, lock_contend) ----------- */

/* On one worker the interleaving is deterministic: a yield runs the other
 * task until it yields back. */
static size_t lock_waiting(weft_lock *l)
{
    struct weft_lock_stats st;
    cr_assert_eq(weft_lock_stats(l, &st), 0);
    return st.tasks_waiting;
}

/* The caller holds a lock and starts up to two waiter tasks on it. */
struct contention {
    weft_lock l;
    int order[2];
    _Atomic int n;
    struct queued q[2];
    weft_task *t[2];
};

static void contention_start(struct contention *x)
{
    weft_lock_init(&x->l);
    atomic_init(&x->n, 0);
    for (int i = 0; i < 2; i++) x->q[i] = (struct queued){&x->l, i, x->order, &x->n, -1};
    cr_assert_eq(weft_lock_acquire(&x->l), 0);
}

static void contention_spawn(struct contention *x, int i)
{
    cr_assert_eq(weft_spawn(&x->t[i], lock_waiter, &x->q[i]), 0);
}

/* Joins waiters 0..k-1: each got the lock, in that order. */
static void contention_finish(struct contention *x, int k)
{
    for (int i = 0; i < k; i++) cr_assert_eq(weft_join(x->t[i], NULL), 0);
    cr_assert_eq(atomic_load(&x->n), k);
    for (int i = 0; i < k; i++) {
        cr_assert_eq(x->q[i].rc, 0);
        cr_assert_eq(x->order[i], i, "waiter %d served in order", i);
    }
    assert_lock_state(&x->l, false, 0);
}

static int contender_takes_freed_lock_unqueued(void *arg)
{
    (void)arg;
    struct contention x;
    contention_start(&x);
    contention_spawn(&x, 0);
    cr_assert_eq(weft_yield(), 0); /* it finds the lock owned and yields back */
    cr_assert_eq(atomic_load(&x.n), 0);
    cr_assert_eq(lock_waiting(&x.l), 0, "a contender yields before it queues");
    cr_assert_eq(weft_lock_release(&x.l), 0);
    cr_assert_eq(lock_waiting(&x.l), 0);
    contention_finish(&x, 1);
    return 0;
}

Test(sync, contender_takes_a_lock_freed_before_it_queued, .timeout = 10)
{
    cr_assert_eq(run_on(1, contender_takes_freed_lock_unqueued, NULL), 0);
}

static int contender_queues_after_bounded_rounds(void *arg)
{
    (void)arg;
    struct contention x;
    contention_start(&x);
    contention_spawn(&x, 0);
    int yields = 0;
    while (lock_waiting(&x.l) == 0 && yields < 1000) {
        cr_assert_eq(weft_yield(), 0);
        yields++;
    }
    cr_assert_eq(lock_waiting(&x.l), 1, "a contender queues after a bounded number of rounds");
    cr_assert_eq(weft_lock_release(&x.l), 0);
    contention_finish(&x, 1);
    return 0;
}

Test(sync, contender_queues_after_a_bounded_number_of_rounds, .timeout = 10)
{
    cr_assert_eq(run_on(1, contender_queues_after_bounded_rounds, NULL), 0);
}

/* A waiter queues; a second caller starts contending; the release hands
 * the lock to the queued waiter, and the contender gets it only after. */
static int contender_never_passes_a_queued_waiter(void *arg)
{
    (void)arg;
    struct contention x;
    contention_start(&x);
    contention_spawn(&x, 0);
    while (lock_waiting(&x.l) == 0) cr_assert_eq(weft_yield(), 0);
    contention_spawn(&x, 1);
    cr_assert_eq(weft_yield(), 0); /* it finds the lock owned and yields back */
    cr_assert_eq(lock_waiting(&x.l), 1);
    cr_assert_eq(weft_lock_release(&x.l), 0);
    cr_assert_eq(weft_lock_try_acquire(&x.l), EBUSY, "handed to the queued waiter");
    contention_finish(&x, 2);
    return 0;
}

Test(sync, contender_never_takes_the_lock_before_a_queued_waiter, .timeout = 10)
{
    cr_assert_eq(run_on(1, contender_never_passes_a_queued_waiter, NULL), 0);
}

struct holder {
    weft_lock *l;
    _Atomic int stage;
    int rc;
};

static int hold_until_told(void *arg)
{
    struct holder *h = arg;
    cr_assert_eq(weft_lock_acquire(h->l), 0);
    atomic_store(&h->stage, 1);
    while (atomic_load(&h->stage) < 2) weft_sleep(100000);
    return weft_lock_release(h->l);
}

static int release_by_non_owner(void *arg)
{
    (void)arg;
    weft_lock l;
    weft_lock_init(&l);
    struct holder h = {&l, 0, 0};
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, hold_until_told, &h), 0);
    while (atomic_load(&h.stage) < 1) weft_sleep(100000);
    cr_assert_eq(weft_lock_release(&l), EPERM);
    cr_assert_eq(weft_lock_try_acquire(&l), EBUSY);
    struct weft_lock_stats st;
    weft_lock_stats(&l, &st);
    cr_assert(st.locked);
    cr_assert_eq(st.owner, t, "the owner is unchanged");
    atomic_store(&h.stage, 2);
    int rc;
    cr_assert_eq(weft_join(t, &rc), 0);
    cr_assert_eq(rc, 0);
    return 0;
}

Test(sync, release_by_non_owner_is_eperm, .timeout = 10)
{
    for (size_t i = 0; i < 3; i++) cr_assert_eq(run_on(sync_workers[i], release_by_non_owner, NULL), 0);
}

struct cancel_waiter {
    weft_lock *l;
    weft_token *tok;
    _Atomic int owned;
    int rc;
};

static int cancellable_lock_waiter(void *arg)
{
    struct cancel_waiter *c = arg;
    weft_scope s;
    weft_scope_enter(&s);
    weft_scope_bind(&s, c->tok);
    c->rc = weft_lock_acquire(c->l);
    if (c->rc == 0) {
        atomic_store(&c->owned, 1);
        weft_lock_release(c->l);
    }
    return weft_scope_exit(&s, c->rc);
}

static int cancelled_waiter_never_gets_the_lock(void *arg)
{
    (void)arg;
    weft_lock l;
    weft_lock_init(&l);
    struct cancel_waiter a = {&l, NULL, 0, -1}, b = {&l, NULL, 0, -1};
    weft_token_create(&a.tok, NULL);
    weft_token_create(&b.tok, NULL);
    cr_assert_eq(weft_lock_acquire(&l), 0);
    weft_task *ta, *tb;
    cr_assert_eq(weft_spawn(&ta, cancellable_lock_waiter, &a), 0);
    WAIT_WAITERS(lock, &l, 1);
    cr_assert_eq(weft_spawn(&tb, cancellable_lock_waiter, &b), 0);
    WAIT_WAITERS(lock, &l, 2);
    weft_token_cancel(a.tok); /* a is first in line: cancel it, then release */
    cr_assert_eq(weft_lock_release(&l), 0);
    cr_assert_eq(weft_join(ta, NULL), 0);
    cr_assert_eq(weft_join(tb, NULL), 0);
    cr_assert_eq(a.rc, ECANCELED);
    cr_assert_eq(atomic_load(&a.owned), 0);
    cr_assert_eq(b.rc, 0);
    cr_assert_eq(atomic_load(&b.owned), 1);
    assert_lock_state(&l, false, 0);
    weft_token_unref(a.tok);
    weft_token_unref(b.tok);
    return 0;
}

Test(sync, cancelled_waiter_is_skipped_by_release, .timeout = 10)
{
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(run_on(sync_workers[i], cancelled_waiter_never_gets_the_lock, NULL), 0);
}

static int die_holding(void *arg)
{
    return weft_lock_acquire(arg);
}

/* Ends holding l, but only once a waiter is queued on it: a fixed sleep
 * here let a loaded machine deschedule the spawner past the holder's end, so
 * the spawner's wait for `locked` (a broken lock is not locked) never ended. */
static int holder_dies(void *arg)
{
    weft_lock *l = arg;
    cr_assert_eq(weft_lock_acquire(l), 0);
    WAIT_WAITERS(lock, l, 1);
    return 0; /* returns holding it */
}

static int waiter_sees_owner_dead(void *arg)
{
    (void)arg;
    weft_lock l;
    weft_lock_init(&l);
    weft_task *h, *w;
    cr_assert_eq(weft_spawn(&h, holder_dies, &l), 0);
    struct weft_lock_stats st;
    do {
        weft_sleep(100000);
        weft_lock_stats(&l, &st);
    } while (!st.locked);
    int order[1];
    _Atomic int n = 0;
    struct queued q = {&l, 0, order, &n, -1};
    cr_assert_eq(weft_spawn(&w, lock_waiter, &q), 0);
    cr_assert_eq(weft_join(h, NULL), 0);
    cr_assert_eq(weft_join(w, NULL), 0);
    cr_assert_eq(q.rc, EOWNERDEAD);
    return 0;
}

Test(sync, task_ending_holding_a_lock_breaks_it, .timeout = 10)
{
    for (size_t i = 0; i < 3; i++) cr_assert_eq(run_on(sync_workers[i], waiter_sees_owner_dead, NULL), 0);
}

static int owner_dead_simple(void *arg)
{
    (void)arg;
    weft_lock l;
    weft_lock_init(&l);
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, die_holding, &l), 0);
    cr_assert_eq(weft_join(t, NULL), 0);
    cr_assert_eq(weft_lock_acquire(&l), EOWNERDEAD);
    cr_assert_eq(weft_lock_try_acquire(&l), EOWNERDEAD);
    cr_assert_eq(weft_lock_release(&l), EPERM);
    cr_assert_eq(weft_lock_destroy(&l), 0);
    return 0;
}

Test(sync, broken_lock_reports_eownerdead, .timeout = 10)
{
    cr_assert_eq(run_on(2, owner_dead_simple, NULL), 0);
}

/* Mutual exclusion across tasks and plain pthreads at once. */
static weft_lock mx;
static long guarded;
static _Atomic int inside;

static int hammer(void *arg)
{
    long n = (long)arg;
    for (long i = 0; i < n; i++) {
        cr_assert_eq(weft_lock_acquire(&mx), 0);
        cr_assert_eq(atomic_fetch_add(&inside, 1), 0);
        guarded++;
        if (i % 64 == 0) weft_yield();
        atomic_fetch_sub(&inside, 1);
        cr_assert_eq(weft_lock_release(&mx), 0);
    }
    return 0;
}

static void *hammer_thread(void *arg)
{
    hammer(arg);
    return NULL;
}

static int mixed_hammer(void *arg)
{
    (void)arg;
    weft_task *t[4];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) th[i] = bg(hammer_thread, (void *)20000L);
    for (int i = 0; i < 4; i++) cr_assert_eq(weft_spawn(&t[i], hammer, (void *)20000L), 0);
    for (int i = 0; i < 4; i++) cr_assert_eq(weft_join(t[i], NULL), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    return 0;
}

Test(sync, lock_excludes_tasks_and_pthreads, .timeout = 60)
{
    for (size_t i = 0; i < 3; i++) {
        weft_lock_init(&mx);
        guarded = 0;
        cr_assert_eq(run_on(sync_workers[i], mixed_hammer, NULL), 0);
        cr_assert_eq(guarded, 6 * 20000);
        cr_assert_eq(weft_lock_destroy(&mx), 0);
    }
}

/* ---- semaphore -------------------------------------------------------- */

static int sem_rules(void *arg)
{
    (void)arg;
    weft_sem s;
    cr_assert_eq(weft_sem_init(&s, 3, 2), EINVAL);
    cr_assert_eq(weft_sem_init(&s, 1, 2), 0);
    cr_assert_eq(weft_sem_release(&s), 0);
    cr_assert_eq(weft_sem_release(&s), EOVERFLOW);
    struct weft_sem_stats st;
    weft_sem_stats(&s, &st);
    cr_assert_eq(st.value, 2, "EOVERFLOW changed nothing");
    cr_assert_eq(weft_sem_acquire(&s), 0);
    cr_assert_eq(weft_sem_try_acquire(&s), 0);
    cr_assert_eq(weft_sem_try_acquire(&s), EAGAIN);
    weft_scope sc;
    weft_scope_enter(&sc);
    weft_scope_cancel(&sc);
    cr_assert_eq(weft_sem_acquire(&s), ECANCELED);
    cr_assert_eq(weft_scope_exit(&sc, ECANCELED), 0);
    cr_assert_eq(weft_sem_release(&s), 0);
    cr_assert_eq(weft_sem_release(&s), 0);
    cr_assert_eq(weft_sem_destroy(&s), 0);
    return 0;
}
BOTH(semaphore_rules, sem_rules, 5)

struct semw {
    weft_sem *s;
    weft_token *tok;
    int rc;
};

static int sem_waiter(void *arg)
{
    struct semw *w = arg;
    weft_scope sc;
    weft_scope_enter(&sc);
    if (w->tok) weft_scope_bind(&sc, w->tok);
    w->rc = weft_sem_acquire(w->s);
    return weft_scope_exit(&sc, w->rc);
}

static int sem_cancelled_waiter_consumes_nothing(void *arg)
{
    (void)arg;
    weft_sem s;
    weft_sem_init(&s, 0, 0);
    struct semw a = {&s, NULL, -1}, b = {&s, NULL, -1};
    weft_token_create(&a.tok, NULL);
    weft_task *ta, *tb;
    cr_assert_eq(weft_spawn(&ta, sem_waiter, &a), 0);
    WAIT_WAITERS(sem, &s, 1);
    cr_assert_eq(weft_spawn(&tb, sem_waiter, &b), 0);
    WAIT_WAITERS(sem, &s, 2);
    weft_token_cancel(a.tok);
    cr_assert_eq(weft_sem_release(&s), 0);
    cr_assert_eq(weft_join(ta, NULL), 0);
    cr_assert_eq(weft_join(tb, NULL), 0);
    cr_assert_eq(a.rc, ECANCELED);
    cr_assert_eq(b.rc, 0, "the permit passed to the next live waiter");
    struct weft_sem_stats st;
    weft_sem_stats(&s, &st);
    cr_assert_eq(st.value, 0);
    cr_assert_eq(st.tasks_waiting, 0);
    weft_token_unref(a.tok);
    return 0;
}

Test(sync, semaphore_cancelled_waiter_consumes_no_permit, .timeout = 10)
{
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(run_on(sync_workers[i], sem_cancelled_waiter_consumes_nothing, NULL), 0);
}

static weft_sem cs;
static int sem_cycler(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5000; i++) {
        cr_assert_eq(weft_sem_acquire(&cs), 0);
        if (i % 16 == 0) weft_yield();
        cr_assert_eq(weft_sem_release(&cs), 0);
    }
    return 0;
}

static int sem_conserve(void *arg)
{
    (void)arg;
    weft_task *t[8];
    for (int i = 0; i < 8; i++) cr_assert_eq(weft_spawn(&t[i], sem_cycler, NULL), 0);
    for (int i = 0; i < 8; i++) cr_assert_eq(weft_join(t[i], NULL), 0);
    return 0;
}

Test(sync, semaphore_permits_are_conserved, .timeout = 30)
{
    for (size_t i = 0; i < 3; i++) {
        weft_sem_init(&cs, 3, 3);
        cr_assert_eq(run_on(sync_workers[i], sem_conserve, NULL), 0);
        struct weft_sem_stats st;
        weft_sem_stats(&cs, &st);
        cr_assert_eq(st.value, 3);
    }
}

/* ---- event ------------------------------------------------------------ */

struct evw {
    weft_event *e;
    weft_token *tok;
    int rc;
};

static int event_waiter(void *arg)
{
    struct evw *w = arg;
    weft_scope sc;
    weft_scope_enter(&sc);
    if (w->tok) weft_scope_bind(&sc, w->tok);
    w->rc = weft_event_wait(w->e);
    weft_scope_exit(&sc, w->rc);
    return 0;
}

static int event_rules(void *arg)
{
    (void)arg;
    weft_event e;
    weft_event_init(&e);
    cr_assert(!weft_event_is_set(&e));
    struct evw w[4];
    weft_task *t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct evw){&e, NULL, -1};
        if (i == 0) weft_token_create(&w[i].tok, NULL);
        cr_assert_eq(weft_spawn(&t[i], event_waiter, &w[i]), 0);
    }
    WAIT_WAITERS(event, &e, 4);
    weft_token_cancel(w[0].tok);
    WAIT_WAITERS(event, &e, 3);
    weft_event_set(&e);
    weft_event_set(&e); /* idempotent */
    cr_assert(weft_event_is_set(&e));
    for (int i = 0; i < 4; i++) cr_assert_eq(weft_join(t[i], NULL), 0);
    cr_assert_eq(w[0].rc, ECANCELED);
    for (int i = 1; i < 4; i++) cr_assert_eq(w[i].rc, 0);
    cr_assert_eq(weft_event_wait(&e), 0);
    cr_assert_eq(weft_event_destroy(&e), 0);
    weft_token_unref(w[0].tok);
    return 0;
}

Test(sync, event_set_wakes_every_live_waiter, .timeout = 10)
{
    for (size_t i = 0; i < 3; i++) cr_assert_eq(run_on(sync_workers[i], event_rules, NULL), 0);
}

static int event_set_then_cancel(void *arg)
{
    (void)arg;
    weft_event e;
    weft_event_init(&e);
    struct evw w = {&e, NULL, -1};
    weft_token_create(&w.tok, NULL);
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, event_waiter, &w), 0);
    WAIT_WAITERS(event, &e, 1);
    weft_event_set(&e);
    weft_token_cancel(w.tok); /* after the hand-off committed */
    cr_assert_eq(weft_join(t, NULL), 0);
    cr_assert_eq(w.rc, 0);
    weft_token_unref(w.tok);
    return 0;
}

Test(sync, event_waiter_released_then_cancelled_returns_0, .timeout = 10)
{
    for (size_t i = 0; i < 3; i++) cr_assert_eq(run_on(sync_workers[i], event_set_then_cancel, NULL), 0);
}

/* ---- condition -------------------------------------------------------- */

struct cw {
    weft_lock *l;
    weft_cond *c;
    weft_token *tok;
    int rc;
    bool owned_after;
};

static int cond_waiter(void *arg)
{
    struct cw *w = arg;
    weft_scope sc;
    weft_scope_enter(&sc);
    if (w->tok) weft_scope_bind(&sc, w->tok);
    cr_assert_eq(weft_lock_acquire(w->l), 0);
    w->rc = weft_cond_wait(w->c);
    struct weft_lock_stats st;
    weft_lock_stats(w->l, &st);
    w->owned_after = st.locked && weft_lock_try_acquire(w->l) == EDEADLK;
    weft_lock_release(w->l);
    weft_scope_exit(&sc, w->rc);
    return 0;
}

static int cond_rules(void *arg)
{
    (void)arg;
    weft_lock l;
    weft_cond c;
    weft_lock_init(&l);
    weft_cond_init(&c, &l);
    cr_assert_eq(weft_cond_wait(&c), EPERM);
    cr_assert_eq(weft_cond_notify(&c, 1), EPERM);
    cr_assert_eq(weft_cond_notify_all(&c), EPERM);
    struct cw a = {&l, &c, NULL, -1, false}, b = {&l, &c, NULL, -1, false};
    weft_token_create(&a.tok, NULL);
    weft_task *ta, *tb;
    cr_assert_eq(weft_spawn(&ta, cond_waiter, &a), 0);
    WAIT_WAITERS(cond, &c, 1);
    cr_assert_eq(weft_spawn(&tb, cond_waiter, &b), 0);
    WAIT_WAITERS(cond, &c, 2);
    weft_token_cancel(a.tok); /* a was first: its notification must pass to b */
    cr_assert_eq(weft_lock_acquire(&l), 0);
    cr_assert_eq(weft_cond_notify(&c, 1), 0);
    cr_assert_eq(weft_lock_release(&l), 0);
    cr_assert_eq(weft_join(ta, NULL), 0);
    cr_assert_eq(weft_join(tb, NULL), 0);
    cr_assert_eq(a.rc, ECANCELED);
    cr_assert_eq(b.rc, 0);
    cr_assert(a.owned_after, "a cancelled wait returns owning the lock");
    cr_assert(b.owned_after);
    cr_assert_eq(weft_cond_destroy(&c), 0);
    weft_token_unref(a.tok);
    return 0;
}

Test(sync, condition_notification_passes_over_a_cancelled_waiter, .timeout = 10)
{
    for (size_t i = 0; i < 3; i++) cr_assert_eq(run_on(sync_workers[i], cond_rules, NULL), 0);
}

/* ---- capacity limiter ------------------------------------------------- */

struct lw {
    weft_limiter *l;
    int rc;
};

static int limiter_waiter(void *arg)
{
    struct lw *w = arg;
    w->rc = weft_limiter_acquire(w->l);
    if (w->rc == 0) weft_limiter_release(w->l);
    return 0;
}

static int limiter_rules(void *arg)
{
    (void)arg;
    weft_limiter l;
    cr_assert_eq(weft_limiter_init(&l, 0), EINVAL);
    cr_assert_eq(weft_limiter_init(&l, 1), 0);
    cr_assert_eq(weft_limiter_release(&l), EPERM);
    cr_assert_eq(weft_limiter_acquire(&l), 0);
    cr_assert_eq(weft_limiter_acquire(&l), EDEADLK);
    cr_assert_eq(weft_limiter_try_acquire(&l), EDEADLK);
    int other;
    cr_assert_eq(weft_limiter_try_acquire_for(&l, &other), EBUSY);
    struct lw w = {&l, -1};
    weft_task *t = NULL;
    if (weft_current()) {
        cr_assert_eq(weft_spawn(&t, limiter_waiter, &w), 0);
        WAIT_WAITERS(limiter, &l, 1);
    }
    cr_assert_eq(weft_limiter_release(&l), 0);
    struct weft_limiter_stats st;
    weft_limiter_stats(&l, &st);
    if (t) {
        /* the token is reserved for the woken waiter */
        cr_assert_eq(st.borrowed, 1);
        cr_assert_eq(weft_limiter_try_acquire_for(&l, &other), EBUSY);
        cr_assert_eq(weft_join(t, NULL), 0);
        cr_assert_eq(w.rc, 0);
    }
    cr_assert_eq(weft_limiter_set_total(&l, 2), 0);
    cr_assert_eq(weft_limiter_acquire_for(&l, &other), 0);
    cr_assert_eq(weft_limiter_acquire(&l), 0);
    cr_assert_eq(weft_limiter_destroy(&l), EBUSY);
    cr_assert_eq(weft_limiter_release_for(&l, &other), 0);
    cr_assert_eq(weft_limiter_release(&l), 0);
    cr_assert_eq(weft_limiter_destroy(&l), 0);
    return 0;
}
BOTH(limiter_rules, limiter_rules, 10)
