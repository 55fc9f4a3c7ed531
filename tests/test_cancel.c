/* Cancellation (src/cancel.c): tokens and cancel scopes, each rule of
 * SEMANTICS.md section 2, inside tasks (on 1, 2 and 4 workers) and on plain
 * pthreads.  Timing never decides a verdict: deadlines are checked only for
 * "not before" and against a generous bound. */
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "helpers.h"

#define MS 1000000ull
#define FOREVER UINT64_MAX

static const unsigned cancel_workers[] = {1, 2, 4};

/* Runs fn in tasks on 1, 2, 4 workers and on a plain pthread. */
#define BOTH(name, fn, secs)                                                          \
    Test(cancel, name##_in_tasks, .timeout = secs)                                    \
    {                                                                                 \
        for (size_t i = 0; i < 3; i++) cr_assert_eq(run_on(cancel_workers[i], fn, NULL), 0); \
    }                                                                                 \
    Test(cancel, name##_on_pthread, .timeout = secs)                                  \
    {                                                                                 \
        cr_assert_eq(run_on_pthread(fn, NULL), 0);                                    \
    }

/* ---- scopes ------------------------------------------------------------ */

static int uncancelled_scope_passes_rc(void *arg)
{
    (void)arg;
    weft_scope s;
    weft_scope_enter(&s);
    cr_assert_eq(weft_checkpoint(), 0);
    cr_assert_eq(weft_scope_exit(&s, 0), 0);
    cr_assert(!weft_scope_cancelled_caught(&s));
    weft_scope_enter(&s);
    cr_assert_eq(weft_scope_exit(&s, EIO), EIO);
    weft_scope_enter(&s);
    /* ECANCELED that did not come from this scope passes through. */
    cr_assert_eq(weft_scope_exit(&s, ECANCELED), ECANCELED);
    cr_assert(!weft_scope_cancelled_caught(&s));
    return 0;
}
BOTH(uncancelled_scope_passes_rc, uncancelled_scope_passes_rc, 20)

static int cancel_is_level_triggered_and_caught(void *arg)
{
    (void)arg;
    weft_scope s;
    weft_scope_enter(&s);
    weft_scope_cancel(&s);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(weft_checkpoint(), ECANCELED);
        cr_assert_eq(weft_yield(), ECANCELED);
        cr_assert_eq(weft_sleep(1000), ECANCELED);
        cr_assert(weft_cancelled());
    }
    weft_scope_cancel(&s); /* idempotent */
    cr_assert_eq(weft_scope_exit(&s, ECANCELED), 0);
    cr_assert(weft_scope_cancelled_caught(&s));
    cr_assert(!weft_cancelled());
    cr_assert_eq(weft_checkpoint(), 0);
    return 0;
}
BOTH(cancel_is_level_triggered_and_caught, cancel_is_level_triggered_and_caught, 20)

static int other_codes_pass_through_a_cancelled_scope(void *arg)
{
    (void)arg;
    weft_scope s;
    weft_scope_enter(&s);
    weft_scope_cancel(&s);
    cr_assert_eq(weft_scope_exit(&s, EIO), EIO);
    cr_assert(!weft_scope_cancelled_caught(&s));
    weft_scope_enter(&s);
    weft_scope_cancel(&s);
    cr_assert_eq(weft_scope_exit(&s, 0), 0);
    cr_assert(!weft_scope_cancelled_caught(&s));
    return 0;
}
BOTH(other_codes_pass_through_a_cancelled_scope, other_codes_pass_through_a_cancelled_scope, 20)

static int only_outermost_cancelled_scope_catches(void *arg)
{
    (void)arg;
    weft_scope outer, mid, inner;
    weft_scope_enter(&outer);
    weft_scope_enter(&mid);
    weft_scope_enter(&inner);
    weft_scope_cancel(&inner);
    weft_scope_cancel(&outer);
    int rc = weft_checkpoint();
    cr_assert_eq(rc, ECANCELED);
    rc = weft_scope_exit(&inner, rc);
    cr_assert_eq(rc, ECANCELED, "inner must not catch while outer is cancelled");
    cr_assert(!weft_scope_cancelled_caught(&inner));
    cr_assert_eq(weft_checkpoint(), ECANCELED, "mid is inside cancelled outer");
    rc = weft_scope_exit(&mid, rc);
    cr_assert_eq(rc, ECANCELED);
    rc = weft_scope_exit(&outer, rc);
    cr_assert_eq(rc, 0);
    cr_assert(weft_scope_cancelled_caught(&outer));
    return 0;
}
BOTH(only_outermost_cancelled_scope_catches, only_outermost_cancelled_scope_catches, 20)

static int inner_cancel_does_not_reach_outer(void *arg)
{
    (void)arg;
    weft_scope outer, inner;
    weft_scope_enter(&outer);
    weft_scope_enter(&inner);
    weft_scope_cancel(&inner);
    cr_assert_eq(weft_scope_exit(&inner, weft_sleep(FOREVER)), 0);
    cr_assert(weft_scope_cancelled_caught(&inner));
    cr_assert_eq(weft_checkpoint(), 0);
    cr_assert_eq(weft_sleep(1000), 0);
    cr_assert_eq(weft_scope_exit(&outer, 0), 0);
    cr_assert(!weft_scope_cancelled_caught(&outer));
    return 0;
}
BOTH(inner_cancel_does_not_reach_outer, inner_cancel_does_not_reach_outer, 20)

static int move_on_after_deadline(void *arg)
{
    (void)arg;
    weft_scope s;
    uint64_t t0 = weft_now();
    weft_scope_enter_deadline(&s, t0 + 5 * MS);
    int rc = weft_sleep(FOREVER);
    cr_assert_eq(rc, ECANCELED);
    cr_assert_geq(weft_now(), t0 + 5 * MS);
    cr_assert_lt(weft_now(), t0 + 5000 * MS);
    cr_assert_eq(weft_scope_exit(&s, rc), 0);
    cr_assert(weft_scope_cancelled_caught(&s));
    /* A deadline that does not fire leaves the result alone. */
    weft_scope_enter_deadline(&s, weft_now() + 10000 * MS);
    cr_assert_eq(weft_sleep(MS), 0);
    cr_assert_eq(weft_scope_exit(&s, 0), 0);
    cr_assert(!weft_scope_cancelled_caught(&s));
    return 0;
}
BOTH(move_on_after_deadline, move_on_after_deadline, 30)

static int fail_after_gives_etimedout(void *arg)
{
    (void)arg;
    weft_scope s;
    weft_scope_enter_fail_after(&s, weft_now() + 3 * MS);
    cr_assert_eq(weft_scope_exit(&s, weft_sleep(FOREVER)), ETIMEDOUT);
    cr_assert(weft_scope_cancelled_caught(&s));
    /* Cancelled by hand, not by its deadline: 0. */
    weft_scope_enter_fail_after(&s, weft_now() + 10000 * MS);
    weft_scope_cancel(&s);
    cr_assert_eq(weft_scope_exit(&s, weft_sleep(FOREVER)), 0);
    return 0;
}
BOTH(fail_after_gives_etimedout, fail_after_gives_etimedout, 30)

static int deadline_already_past(void *arg)
{
    (void)arg;
    weft_scope s;
    weft_scope_enter_deadline(&s, weft_now() - 1);
    cr_assert(weft_cancelled());
    cr_assert_eq(weft_checkpoint(), ECANCELED);
    cr_assert_eq(weft_scope_exit(&s, ECANCELED), 0);
    weft_scope_enter_fail_after(&s, 0);
    cr_assert_eq(weft_scope_exit(&s, weft_sleep(FOREVER)), ETIMEDOUT);
    return 0;
}
BOTH(deadline_already_past, deadline_already_past, 20)

static int nested_inner_later_than_outer(void *arg)
{
    (void)arg;
    weft_scope outer, inner;
    uint64_t now = weft_now();
    weft_scope_enter_fail_after(&outer, now + 3 * MS);
    weft_scope_enter_fail_after(&inner, now + 60000 * MS);
    int rc = weft_sleep(FOREVER);
    cr_assert_eq(rc, ECANCELED);
    rc = weft_scope_exit(&inner, rc);
    cr_assert_eq(rc, ECANCELED);
    cr_assert(!weft_scope_cancelled_caught(&inner));
    rc = weft_scope_exit(&outer, rc);
    cr_assert_eq(rc, ETIMEDOUT);
    cr_assert(weft_scope_cancelled_caught(&outer));
    return 0;
}
BOTH(nested_inner_later_than_outer, nested_inner_later_than_outer, 30)

static int nested_outer_later_than_inner(void *arg)
{
    (void)arg;
    weft_scope outer, inner;
    uint64_t now = weft_now();
    weft_scope_enter_fail_after(&outer, now + 60000 * MS);
    weft_scope_enter_fail_after(&inner, now + 3 * MS);
    int rc = weft_scope_exit(&inner, weft_sleep(FOREVER));
    cr_assert_eq(rc, ETIMEDOUT);
    cr_assert(weft_scope_cancelled_caught(&inner));
    cr_assert_eq(weft_sleep(MS), 0, "outer is not cancelled");
    cr_assert_eq(weft_scope_exit(&outer, 0), 0);
    cr_assert(!weft_scope_cancelled_caught(&outer));
    return 0;
}
BOTH(nested_outer_later_than_inner, nested_outer_later_than_inner, 30)

static int shield_blocks_outer_cancel_only(void *arg)
{
    (void)arg;
    weft_scope outer, sh;
    weft_scope_enter(&outer);
    weft_scope_enter(&sh);
    weft_scope_shield(&sh, true);
    weft_scope_cancel(&outer);
    cr_assert(!weft_cancelled());
    cr_assert_eq(weft_checkpoint(), 0);
    cr_assert_eq(weft_sleep(MS), 0);
    /* Its own deadline still cancels it, and it catches its own cancel. */
    weft_scope inner;
    weft_scope_enter(&inner);
    cr_assert_eq(weft_scope_exit(&inner, 0), 0);
    cr_assert_eq(weft_scope_exit(&sh, 0), 0);
    weft_scope_enter_deadline(&sh, weft_now() + 3 * MS);
    weft_scope_shield(&sh, true);
    int rc = weft_sleep(FOREVER);
    cr_assert_eq(rc, ECANCELED);
    cr_assert_eq(weft_scope_exit(&sh, rc), 0);
    cr_assert(weft_scope_cancelled_caught(&sh));
    /* Removing the shield lets the pending outer cancel in at once. */
    weft_scope_enter(&sh);
    weft_scope_shield(&sh, true);
    cr_assert_eq(weft_checkpoint(), 0);
    weft_scope_shield(&sh, false);
    cr_assert_eq(weft_checkpoint(), ECANCELED);
    rc = weft_scope_exit(&sh, ECANCELED);
    cr_assert_eq(rc, ECANCELED);
    cr_assert_eq(weft_scope_exit(&outer, rc), 0);
    return 0;
}
BOTH(shield_blocks_outer_cancel_only, shield_blocks_outer_cancel_only, 30)

static int bound_token_cancels_scope(void *arg)
{
    (void)arg;
    weft_token *t;
    cr_assert_eq(weft_token_create(&t, NULL), 0);
    weft_scope s;
    weft_scope_enter(&s);
    cr_assert_eq(weft_scope_bind(&s, t), 0);
    cr_assert_eq(weft_scope_bind(&s, t), EBUSY);
    cr_assert_eq(weft_scope_bind(NULL, t), EINVAL);
    cr_assert_eq(weft_checkpoint(), 0);
    weft_token_cancel(t);
    cr_assert_eq(weft_checkpoint(), ECANCELED);
    cr_assert_eq(weft_scope_exit(&s, ECANCELED), 0);
    cr_assert(weft_scope_cancelled_caught(&s));
    /* Binding an already-cancelled token cancels at once. */
    weft_scope_enter(&s);
    cr_assert_eq(weft_scope_bind(&s, t), 0);
    cr_assert_eq(weft_sleep(FOREVER), ECANCELED);
    cr_assert_eq(weft_scope_exit(&s, ECANCELED), 0);
    weft_token_unref(t);
    return 0;
}
BOTH(bound_token_cancels_scope, bound_token_cancels_scope, 20)

static int just_checkpoint(void *arg)
{
    (void)arg;
    return weft_checkpoint();
}

static int blocked_call_with_pending_cancel_has_no_effect(void *arg)
{
    (void)arg;
    weft_scope s;
    weft_scope_enter(&s);
    weft_scope_cancel(&s);
    if (weft_current()) {
        weft_task *t;
        cr_assert_eq(weft_spawn(&t, just_checkpoint, NULL), 0);
        cr_assert_eq(weft_join(t, NULL), ECANCELED);
        cr_assert_eq(weft_scope_exit(&s, ECANCELED), 0);
        cr_assert_eq(weft_join(t, NULL), 0, "a cancelled join leaves the task joinable");
    } else {
        cr_assert_eq(weft_scope_exit(&s, ECANCELED), 0);
    }
    return 0;
}
BOTH(blocked_call_with_pending_cancel_has_no_effect, blocked_call_with_pending_cancel_has_no_effect, 20)

/* ---- synchronous cancel from a plain pthread --------------------------- */

struct blocked {
    weft_token *tok;
    _Atomic int entered;
    _Atomic int returned;
    int rc[3];
};

static int child_forever(void *arg)
{
    (void)arg;
    return weft_sleep(FOREVER) == ECANCELED ? 7 : -1;
}

struct block_arg {
    struct blocked *b;
    int kind;
};

/* Blocks in join, sleep or group wait under a scope bound to b->tok. */
static int block_in(void *arg)
{
    struct block_arg *a = arg;
    struct blocked *b = a->b;
    int kind = a->kind;
    weft_scope s;
    weft_scope_enter(&s);
    weft_scope_bind(&s, b->tok);
    int rc = -1;
    if (kind == 0) {
        weft_task *t;
        cr_assert_eq(weft_spawn(&t, child_forever, NULL), 0);
        atomic_fetch_add(&b->entered, 1);
        rc = weft_join(t, NULL);
        /* the child is not under the token: cancel it by shutdown later */
        weft_task_detach(t);
    } else if (kind == 1) {
        atomic_fetch_add(&b->entered, 1);
        rc = weft_sleep(FOREVER);
    } else {
        weft_group *g;
        cr_assert_eq(weft_group_create(&g), 0);
        for (int i = 0; i < 3; i++) cr_assert_eq(weft_group_spawn(g, child_forever, NULL), 0);
        atomic_fetch_add(&b->entered, 1);
        rc = weft_group_wait(g);
        weft_group_destroy(g);
    }
    b->rc[kind] = rc;
    atomic_fetch_add(&b->returned, 1);
    return weft_scope_exit(&s, rc);
}

static void *canceller(void *arg)
{
    struct blocked *b = arg;
    while (atomic_load(&b->entered) < 3) usleep(100);
    usleep(2000); /* let them park (either way the result must be ECANCELED) */
    weft_token_cancel(b->tok);
    return NULL;
}

static int cancel_from_pthread_root(void *arg)
{
    struct blocked *b = arg;
    struct block_arg a[3];
    weft_task *t[3];
    for (int k = 0; k < 3; k++) {
        a[k].b = b;
        a[k].kind = k;
        cr_assert_eq(weft_spawn(&t[k], block_in, &a[k]), 0);
    }
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, canceller, b), 0);
    for (int k = 0; k < 3; k++) {
        int st = -1;
        cr_assert_eq(weft_join(t[k], &st), 0);
        cr_assert_eq(st, 0, "kind %d: scope exit caught", k);
        cr_assert_eq(b->rc[k], ECANCELED, "kind %d returned %d", k, b->rc[k]);
    }
    pthread_join(th, NULL);
    return 0;
}

Test(cancel, token_cancel_from_pthread_aborts_join_sleep_group_wait, .timeout = 60)
{
    for (size_t i = 0; i < 3; i++) {
        struct blocked b = {0};
        cr_assert_eq(weft_token_create(&b.tok, NULL), 0);
        /* the joined children are left to shutdown, which cancels them */
        cr_assert_eq(run_on(cancel_workers[i], cancel_from_pthread_root, &b), 0);
        cr_assert_eq(atomic_load(&b.returned), 3);
        weft_token_unref(b.tok);
    }
}

static void *pthread_sleeper(void *arg)
{
    struct blocked *b = arg;
    weft_scope s;
    weft_scope_enter(&s);
    weft_scope_bind(&s, b->tok);
    atomic_fetch_add(&b->entered, 3);
    b->rc[0] = weft_sleep(FOREVER);
    atomic_fetch_add(&b->returned, 1);
    b->rc[1] = weft_scope_exit(&s, b->rc[0]);
    return NULL;
}

Test(cancel, token_cancel_wakes_blocked_pthread, .timeout = 20)
{
    struct blocked b = {0};
    cr_assert_eq(weft_token_create(&b.tok, NULL), 0);
    pthread_t th, c;
    cr_assert_eq(pthread_create(&th, NULL, pthread_sleeper, &b), 0);
    cr_assert_eq(pthread_create(&c, NULL, canceller, &b), 0);
    pthread_join(c, NULL);
    pthread_join(th, NULL);
    cr_assert_eq(b.rc[0], ECANCELED);
    cr_assert_eq(b.rc[1], 0);
    weft_token_unref(b.tok);
}

/* ---- tokens ------------------------------------------------------------ */

Test(cancel, token_basics_and_bad_input, .timeout = 10)
{
    weft_token *t;
    cr_assert_eq(weft_token_create(NULL, NULL), EINVAL);
    /* The header's inline check and the exported function (parenthesised
     * name, and through a pointer) must agree before and after a cancel. */
    bool (*fn)(const weft_token *) = (weft_token_is_cancelled);
    cr_assert_eq(weft_token_create(&t, NULL), 0);
    cr_assert(!weft_token_is_cancelled(t));
    cr_assert(!(weft_token_is_cancelled)(t));
    cr_assert(!fn(t));
    weft_token_ref(t);
    weft_token_unref(t);
    cr_assert(!weft_token_is_cancelled(t));
    weft_token_cancel(t);
    weft_token_cancel(t);
    cr_assert(weft_token_is_cancelled(t));
    cr_assert((weft_token_is_cancelled)(t));
    cr_assert(fn(t));
    cr_assert_eq(weft_token_set_deadline(NULL, 0), EINVAL);
    cr_assert_eq(weft_token_on_cancel(NULL, NULL, NULL, NULL), EINVAL);
    weft_token_cancel(NULL);
    weft_token_unref(NULL);
    weft_token_unref(t);
}

Test(cancel, tokens_linked_three_deep, .timeout = 10)
{
    weft_token *a, *b, *c, *d;
    cr_assert_eq(weft_token_create(&a, NULL), 0);
    cr_assert_eq(weft_token_create(&b, a), 0);
    cr_assert_eq(weft_token_create(&c, b), 0);
    cr_assert_eq(weft_token_create(&d, NULL), 0);
    /* cancelling the middle reaches down, not up */
    weft_token_cancel(b);
    cr_assert(!weft_token_is_cancelled(a));
    cr_assert(weft_token_is_cancelled(b));
    cr_assert(weft_token_is_cancelled(c));
    weft_token_unref(c);
    weft_token_unref(b);
    /* three deep from the top; the parent may go before the children */
    cr_assert_eq(weft_token_create(&b, a), 0);
    cr_assert_eq(weft_token_create(&c, b), 0);
    weft_token_unref(b);
    cr_assert(!weft_token_is_cancelled(c));
    weft_token_cancel(a);
    cr_assert(weft_token_is_cancelled(c));
    /* a child of a cancelled parent is born cancelled */
    weft_token *e;
    cr_assert_eq(weft_token_create(&e, c), 0);
    cr_assert(weft_token_is_cancelled(e));
    cr_assert(!weft_token_is_cancelled(d));
    weft_token_unref(e);
    weft_token_unref(c);
    weft_token_unref(a);
    weft_token_unref(d);
}

static _Atomic int seq;
static int order[8];
static pthread_t ran_on[8];
static void record(void *arg)
{
    int i = (int)(intptr_t)arg;
    order[atomic_fetch_add(&seq, 1)] = i;
    ran_on[i] = pthread_self();
}

Test(cancel, callbacks_run_once_in_order_on_the_cancelling_thread, .timeout = 10)
{
    weft_token *p, *c;
    cr_assert_eq(weft_token_create(&p, NULL), 0);
    cr_assert_eq(weft_token_create(&c, p), 0);
    weft_token_reg r[5];
    atomic_store(&seq, 0);
    cr_assert_eq(weft_token_on_cancel(c, record, (void *)3, &r[3]), 0);
    cr_assert_eq(weft_token_on_cancel(p, record, (void *)0, &r[0]), 0);
    cr_assert_eq(weft_token_on_cancel(p, record, (void *)1, &r[1]), 0);
    cr_assert_eq(weft_token_on_cancel(p, record, (void *)2, &r[2]), 0);
    weft_token_off_cancel(&r[1]);
    weft_token_cancel(p);
    cr_assert_eq(atomic_load(&seq), 3);
    cr_assert_eq(order[0], 0);
    cr_assert_eq(order[1], 2);
    cr_assert_eq(order[2], 3, "parent's callbacks before the child's");
    cr_assert(pthread_equal(ran_on[0], pthread_self()));
    weft_token_cancel(p);
    weft_token_cancel(c);
    cr_assert_eq(atomic_load(&seq), 3, "callbacks run once");
    /* registering on a cancelled token runs inline */
    cr_assert_eq(weft_token_on_cancel(c, record, (void *)4, &r[4]), 0);
    cr_assert_eq(atomic_load(&seq), 4);
    cr_assert_eq(order[3], 4);
    for (int i = 0; i < 5; i++) weft_token_off_cancel(&r[i]);
    weft_token_unref(c);
    weft_token_unref(p);
}

static _Atomic int cb_state;
static void slow_cb(void *arg)
{
    (void)arg;
    atomic_store(&cb_state, 1);
    usleep(50000);
    atomic_store(&cb_state, 2);
}

static void *cancel_thread(void *arg)
{
    weft_token_cancel(arg);
    return NULL;
}

Test(cancel, off_cancel_waits_for_a_running_callback, .timeout = 10)
{
    weft_token *t;
    cr_assert_eq(weft_token_create(&t, NULL), 0);
    weft_token_reg r;
    atomic_store(&cb_state, 0);
    cr_assert_eq(weft_token_on_cancel(t, slow_cb, NULL, &r), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, cancel_thread, t), 0);
    while (atomic_load(&cb_state) == 0) usleep(100);
    weft_token_off_cancel(&r);
    cr_assert_eq(atomic_load(&cb_state), 2, "off_cancel returned while the callback ran");
    pthread_join(th, NULL);
    weft_token_unref(t);
}

Test(cancel, second_cancel_returns_after_the_callbacks, .timeout = 10)
{
    weft_token *t;
    cr_assert_eq(weft_token_create(&t, NULL), 0);
    weft_token_reg r;
    atomic_store(&cb_state, 0);
    cr_assert_eq(weft_token_on_cancel(t, slow_cb, NULL, &r), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, cancel_thread, t), 0);
    while (atomic_load(&cb_state) == 0) usleep(100);
    weft_token_cancel(t);
    cr_assert_eq(atomic_load(&cb_state), 2);
    pthread_join(th, NULL);
    weft_token_off_cancel(&r);
    weft_token_unref(t);
}

Test(cancel, off_cancel_before_cancel_means_never_called, .timeout = 10)
{
    weft_token *t;
    cr_assert_eq(weft_token_create(&t, NULL), 0);
    weft_token_reg r;
    atomic_store(&seq, 0);
    cr_assert_eq(weft_token_on_cancel(t, record, (void *)0, &r), 0);
    weft_token_off_cancel(&r);
    weft_token_cancel(t);
    cr_assert_eq(atomic_load(&seq), 0);
    weft_token_unref(t);
}

Test(cancel, token_deadline_fires_and_can_be_replaced, .timeout = 20)
{
    weft_token *t;
    cr_assert_eq(weft_token_create(&t, NULL), 0);
    uint64_t t0 = weft_now();
    cr_assert_eq(weft_token_set_deadline(t, t0 + 60000 * MS), 0);
    cr_assert_eq(weft_token_set_deadline(t, t0 + 5 * MS), 0);
    while (!weft_token_is_cancelled(t)) usleep(200);
    cr_assert_geq(weft_now(), t0 + 5 * MS);
    weft_token_unref(t);
    /* past deadline: at once */
    cr_assert_eq(weft_token_create(&t, NULL), 0);
    cr_assert_eq(weft_token_set_deadline(t, 1), 0);
    cr_assert(weft_token_is_cancelled(t));
    weft_token_unref(t);
    /* an armed token freed before its deadline is disarmed (ASan checks) */
    cr_assert_eq(weft_token_create(&t, NULL), 0);
    cr_assert_eq(weft_token_set_deadline(t, weft_now() + 2 * MS), 0);
    weft_token_unref(t);
    usleep(5000);
}

static void cancel_other(void *arg)
{
    weft_token_cancel(arg);
}

Test(cancel, callback_may_cancel_other_tokens_and_itself, .timeout = 10)
{
    weft_token *a, *b;
    cr_assert_eq(weft_token_create(&a, NULL), 0);
    cr_assert_eq(weft_token_create(&b, a), 0);
    weft_token_reg r1, r2;
    cr_assert_eq(weft_token_on_cancel(a, cancel_other, b, &r1), 0);
    cr_assert_eq(weft_token_on_cancel(b, cancel_other, b, &r2), 0);
    weft_token_cancel(a);
    cr_assert(weft_token_is_cancelled(b));
    weft_token_off_cancel(&r1);
    weft_token_off_cancel(&r2);
    weft_token_unref(b);
    weft_token_unref(a);
}

/* ---- misuse aborts with a message -------------------------------------- */

static int exit_out_of_order(void *arg)
{
    (void)arg;
    weft_scope a, b;
    weft_scope_enter(&a);
    weft_scope_enter(&b);
    weft_scope_exit(&a, 0);
    return 0;
}

Test(cancel, scope_exit_out_of_order_aborts, .signal = SIGABRT, .timeout = 10)
{
    run_on_pthread(exit_out_of_order, NULL);
}

Test(cancel, scope_exit_out_of_order_in_task_aborts, .signal = SIGABRT, .timeout = 10)
{
    run_on(1, exit_out_of_order, NULL);
}

static int return_inside_scope(void *arg)
{
    (void)arg;
    static weft_scope s;
    weft_scope_enter(&s);
    return 0;
}

Test(cancel, task_returning_inside_a_scope_aborts, .signal = SIGABRT, .timeout = 10)
{
    run_on(1, return_inside_scope, NULL);
}
