/* Task groups (src/group.c): the rules of SEMANTICS.md section 2 for
 * weft_group_*, on 1, 2 and 4 workers, with cancels from tasks and from
 * plain pthreads. */
#include <errno.h>
#include <unistd.h>

#include "helpers.h"

#define MS 1000000ull
#define FOREVER UINT64_MAX

static const unsigned group_workers[] = {1, 2, 4};
#define EACH(n) for (size_t i_ = 0, n; i_ < 3 && ((n = group_workers[i_]), 1); i_++)

static _Atomic int finished;

static int ok_child(void *arg)
{
    (void)arg;
    weft_yield();
    atomic_fetch_add(&finished, 1);
    return 0;
}

static int sleep_child(void *arg)
{
    (void)arg;
    int rc = weft_sleep(FOREVER);
    atomic_fetch_add(&finished, 1);
    return rc;
}

static int failing_child(void *arg)
{
    weft_sleep(MS);
    atomic_fetch_add(&finished, 1);
    return (int)(intptr_t)arg;
}

static int all_ok(void *arg)
{
    size_t n = (size_t)arg;
    atomic_store(&finished, 0);
    weft_group *g;
    cr_assert_eq(weft_group_create(&g), 0);
    for (size_t i = 0; i < n; i++) cr_assert_eq(weft_group_spawn(g, ok_child, NULL), 0);
    cr_assert_eq(weft_group_wait(g), 0);
    cr_assert_eq(atomic_load(&finished), (int)n);
    cr_assert_eq(weft_group_wait(g), 0, "waiting again on an empty group returns at once");
    weft_group_destroy(g);
    return 0;
}

Test(group, ten_thousand_children, .timeout = 60)
{
    EACH(n) cr_assert_eq(run_on((unsigned)n, all_ok, (void *)10000), 0);
}

Test(group, empty_group, .timeout = 10)
{
    cr_assert_eq(run_on(2, all_ok, (void *)0), 0);
}

static int first_failure_cancels_siblings(void *arg)
{
    (void)arg;
    atomic_store(&finished, 0);
    weft_group *g;
    cr_assert_eq(weft_group_create(&g), 0);
    for (int i = 0; i < 50; i++) cr_assert_eq(weft_group_spawn(g, sleep_child, NULL), 0);
    cr_assert_eq(weft_group_spawn(g, failing_child, (void *)(intptr_t)EIO), 0);
    cr_assert_eq(weft_group_wait(g), EIO);
    cr_assert_eq(atomic_load(&finished), 51, "every child finished before wait returned");
    weft_group_destroy(g);
    /* The waiter itself is not cancelled by its group's failure. */
    cr_assert_eq(weft_checkpoint(), 0);
    return 0;
}

Test(group, failing_child_cancels_siblings_and_is_returned, .timeout = 30)
{
    EACH(n) cr_assert_eq(run_on((unsigned)n, first_failure_cancels_siblings, NULL), 0);
}

static int only_first_failure(void *arg)
{
    (void)arg;
    weft_group *g;
    cr_assert_eq(weft_group_create(&g), 0);
    cr_assert_eq(weft_group_spawn(g, failing_child, (void *)(intptr_t)EIO), 0);
    /* Returns ECANCELED-free codes only after the first: the later child
     * fails after being cancelled (sleep returns ECANCELED, passed on). */
    cr_assert_eq(weft_group_spawn(g, sleep_child, NULL), 0);
    cr_assert_eq(weft_group_wait(g), EIO);
    weft_group_destroy(g);
    return 0;
}

Test(group, cancelled_children_do_not_count_as_failures, .timeout = 30)
{
    EACH(n) cr_assert_eq(run_on((unsigned)n, only_first_failure, NULL), 0);
}

static int cancelled_waiter_still_waits(void *arg)
{
    (void)arg;
    atomic_store(&finished, 0);
    weft_scope s;
    weft_scope_enter_deadline(&s, weft_now() + 5 * MS);
    weft_group *g;
    cr_assert_eq(weft_group_create(&g), 0);
    for (int i = 0; i < 20; i++) cr_assert_eq(weft_group_spawn(g, sleep_child, NULL), 0);
    int rc = weft_group_wait(g);
    cr_assert_eq(rc, ECANCELED);
    cr_assert_eq(atomic_load(&finished), 20, "a cancelled wait returned before its children");
    weft_group_destroy(g);
    cr_assert_eq(weft_scope_exit(&s, rc), 0);
    return 0;
}

Test(group, cancelled_wait_cancels_and_waits_for_every_child, .timeout = 30)
{
    EACH(n) cr_assert_eq(run_on((unsigned)n, cancelled_waiter_still_waits, NULL), 0);
}

static int wait_in_cancelled_scope(void *arg)
{
    (void)arg;
    atomic_store(&finished, 0);
    weft_group *g;
    weft_scope s;
    weft_scope_enter(&s);
    cr_assert_eq(weft_group_create(&g), 0);
    for (int i = 0; i < 5; i++) cr_assert_eq(weft_group_spawn(g, sleep_child, NULL), 0);
    weft_scope_cancel(&s); /* reaches the children through the group */
    cr_assert_eq(weft_group_wait(g), ECANCELED);
    cr_assert_eq(atomic_load(&finished), 5);
    weft_group_destroy(g);
    cr_assert_eq(weft_scope_exit(&s, ECANCELED), 0);
    return 0;
}

Test(group, creator_scope_cancel_reaches_children, .timeout = 30)
{
    EACH(n) cr_assert_eq(run_on((unsigned)n, wait_in_cancelled_scope, NULL), 0);
}

struct gc {
    weft_group *g;
    _Atomic int ready;
};

static void *pthread_group_cancel(void *arg)
{
    struct gc *c = arg;
    while (!atomic_load(&c->ready)) usleep(100);
    usleep(1000);
    weft_group_cancel(c->g);
    return NULL;
}

static int cancel_group_from_pthread(void *arg)
{
    (void)arg;
    atomic_store(&finished, 0);
    struct gc c = {0};
    cr_assert_eq(weft_group_create(&c.g), 0);
    for (int i = 0; i < 100; i++) cr_assert_eq(weft_group_spawn(c.g, sleep_child, NULL), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, pthread_group_cancel, &c), 0);
    atomic_store(&c.ready, 1);
    /* The group was cancelled, not the waiter: its children's ECANCELED is
     * not a failure, and wait returns 0. */
    cr_assert_eq(weft_group_wait(c.g), 0);
    cr_assert_eq(atomic_load(&finished), 100);
    pthread_join(th, NULL);
    /* A child spawned into a cancelled group starts cancelled. */
    cr_assert_eq(weft_group_spawn(c.g, sleep_child, NULL), 0);
    cr_assert_eq(weft_group_wait(c.g), 0);
    cr_assert_eq(atomic_load(&finished), 101);
    weft_group_destroy(c.g);
    return 0;
}

Test(group, group_cancel_from_pthread, .timeout = 30)
{
    EACH(n) cr_assert_eq(run_on((unsigned)n, cancel_group_from_pthread, NULL), 0);
}

struct pw {
    weft_group *g;
    _Atomic int stage;
    int rc;
};

static void *pthread_waiter(void *arg)
{
    struct pw *p = arg;
    while (atomic_load(&p->stage) < 1) usleep(100);
    p->rc = weft_group_wait(p->g);
    atomic_store(&p->stage, 2);
    return NULL;
}

static int wait_from_pthread(void *arg)
{
    (void)arg;
    atomic_store(&finished, 0);
    struct pw p = {0};
    cr_assert_eq(weft_group_create(&p.g), 0);
    for (int i = 0; i < 100; i++) cr_assert_eq(weft_group_spawn(p.g, ok_child, NULL), 0);
    cr_assert_eq(weft_group_spawn(p.g, failing_child, (void *)(intptr_t)ENOSPC), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, pthread_waiter, &p), 0);
    atomic_store(&p.stage, 1);
    while (atomic_load(&p.stage) < 2) weft_sleep(100000);
    pthread_join(th, NULL);
    cr_assert_eq(p.rc, ENOSPC);
    cr_assert_eq(atomic_load(&finished), 101);
    weft_group_destroy(p.g);
    return 0;
}

Test(group, plain_pthread_waits_for_a_group, .timeout = 30)
{
    EACH(n) cr_assert_eq(run_on((unsigned)n, wait_from_pthread, NULL), 0);
}

static int destroy_unwaited(void *arg)
{
    (void)arg;
    atomic_store(&finished, 0);
    weft_group *g;
    cr_assert_eq(weft_group_create(&g), 0);
    for (int i = 0; i < 10; i++) cr_assert_eq(weft_group_spawn(g, sleep_child, NULL), 0);
    weft_yield();
    weft_group_destroy(g);
    cr_assert_eq(atomic_load(&finished), 10, "no child outlives its group");
    return 0;
}

Test(group, destroy_cancels_and_joins_remaining_children, .timeout = 30)
{
    EACH(n) cr_assert_eq(run_on((unsigned)n, destroy_unwaited, NULL), 0);
}

static int second_waiter(void *arg)
{
    return weft_group_wait(arg);
}

static int busy_and_bad_input(void *arg)
{
    (void)arg;
    weft_group *g;
    cr_assert_eq(weft_group_create(NULL), EINVAL);
    cr_assert_eq(weft_group_spawn(NULL, ok_child, NULL), EINVAL);
    cr_assert_eq(weft_group_wait(NULL), EINVAL);
    cr_assert_eq(weft_group_create(&g), 0);
    cr_assert_eq(weft_group_spawn(g, NULL, NULL), EINVAL);
    cr_assert_eq(weft_group_spawn(g, sleep_child, NULL), 0);
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, second_waiter, g), 0);
    weft_sleep(2 * MS);
    cr_assert_eq(weft_group_wait(g), EBUSY, "one waiter at a time");
    weft_group_cancel(g);
    int st;
    cr_assert_eq(weft_join(t, &st), 0);
    cr_assert_eq(st, 0);
    weft_group_destroy(g);
    weft_group_destroy(NULL);
    weft_group_cancel(NULL);
    return 0;
}

Test(group, bad_input, .timeout = 30)
{
    cr_assert_eq(run_on(2, busy_and_bad_input, NULL), 0);
}

static int try_create(void *arg)
{
    (void)arg;
    weft_group *g;
    return weft_group_create(&g);
}

Test(group, create_on_plain_pthread_is_eperm, .timeout = 10)
{
    cr_assert_eq(run_on_pthread(try_create, NULL), EPERM);
}

static int nested_groups_child(void *arg)
{
    int depth = (int)(intptr_t)arg;
    if (depth == 0) return weft_sleep(FOREVER) == ECANCELED ? 0 : -1;
    weft_group *g;
    cr_assert_eq(weft_group_create(&g), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_group_spawn(g, nested_groups_child, (void *)(intptr_t)(depth - 1)), 0);
    int rc = weft_group_wait(g);
    weft_group_destroy(g);
    return rc;
}

static int nested_groups(void *arg)
{
    (void)arg;
    weft_scope s;
    weft_scope_enter_deadline(&s, weft_now() + 5 * MS);
    int rc = nested_groups_child((void *)3);
    cr_assert_eq(rc, ECANCELED);
    cr_assert_eq(weft_scope_exit(&s, rc), 0);
    return 0;
}

Test(group, deadline_reaches_nested_groups, .timeout = 30)
{
    EACH(n) cr_assert_eq(run_on((unsigned)n, nested_groups, NULL), 0);
}
