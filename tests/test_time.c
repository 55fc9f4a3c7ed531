/* Time (src/time.c, src/timer.c): weft_now, sleeping in tasks and on plain
 * pthreads.  Bounds here cannot flake: a sleep is never early, and a late
 * wake-up is only checked against a generous second. */
#include <errno.h>

#include "helpers.h"

#define MS 1000000ull

Test(time, now_is_monotonic, .timeout = 10)
{
    uint64_t prev = weft_now();
    for (int i = 0; i < 100000; i++) {
        uint64_t t = weft_now();
        cr_assert_geq(t, prev);
        prev = t;
    }
}

static int sleep_never_early(void *arg)
{
    (void)arg;
    static const uint64_t d[] = {0, 1, 1000, 100000, MS, 3 * MS, 10 * MS};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        uint64_t t0 = weft_now();
        cr_assert_eq(weft_sleep(d[i]), 0);
        uint64_t took = weft_now() - t0;
        cr_assert_geq(took, d[i], "slept %llu of %llu ns", (unsigned long long)took,
                      (unsigned long long)d[i]);
        cr_assert_lt(took, d[i] + 1000 * MS);
    }
    uint64_t until = weft_now() + 2 * MS;
    cr_assert_eq(weft_sleep_until(until), 0);
    cr_assert_geq(weft_now(), until);
    return 0;
}

static int many_sleepers(void *arg)
{
    (void)arg;
    weft_task *t[16];
    for (int i = 0; i < 16; i++) cr_assert_eq(weft_spawn(&t[i], sleep_never_early, NULL), 0);
    for (int i = 0; i < 16; i++) cr_assert_eq(weft_join(t[i], NULL), 0);
    return 0;
}

Test(time, task_sleep_is_never_early_on_1_2_4_8_workers, .timeout = 60)
{
    FOR_EACH_WORKERS(n) cr_assert_eq(run_on(n, many_sleepers, NULL), 0);
}

Test(time, pthread_sleep_is_never_early, .timeout = 20)
{
    cr_assert_eq(run_on_pthread(sleep_never_early, NULL), 0);
}

#define SLEEPERS 8
static int order[SLEEPERS];
static _Atomic int norder;

struct sleeper_arg {
    uint64_t deadline;
    int id;
};

static int deadline_sleeper(void *arg)
{
    struct sleeper_arg *a = arg;
    cr_assert_eq(weft_sleep_until(a->deadline), 0);
    cr_assert_geq(weft_now(), a->deadline);
    int k = atomic_fetch_add(&norder, 1);
    if (k < SLEEPERS) order[k] = a->id;
    return 0;
}

static int sleep_order(void *arg)
{
    (void)arg;
    struct sleeper_arg a[SLEEPERS];
    weft_task *t[SLEEPERS];
    uint64_t base = weft_now() + 20 * MS;
    /* Spawned in reverse: the heap, not spawn order, decides. */
    for (int i = SLEEPERS - 1; i >= 0; i--) {
        a[i] = (struct sleeper_arg){base + (uint64_t)i * 20 * MS, i};
        cr_assert_eq(weft_spawn(&t[i], deadline_sleeper, &a[i]), 0);
    }
    for (int i = 0; i < SLEEPERS; i++) cr_assert_eq(weft_join(t[i], NULL), 0);
    return 0;
}

Test(time, sleepers_wake_in_deadline_order_on_one_worker, .timeout = 20)
{
    atomic_store(&norder, 0);
    cr_assert_eq(run_on(1, sleep_order, NULL), 0);
    cr_assert_eq(atomic_load(&norder), SLEEPERS);
    for (int i = 0; i < SLEEPERS; i++) cr_assert_eq(order[i], i);
}

static _Atomic int flag;
static int set_flag(void *arg)
{
    (void)arg;
    atomic_store(&flag, 1);
    return 0;
}

static int sleep_zero_yields(void *arg)
{
    (void)arg;
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, set_flag, NULL), 0);
    cr_assert_eq(weft_sleep(0), 0); /* a checkpoint: lets the child run */
    cr_assert_eq(atomic_load(&flag), 1);
    return weft_join(t, NULL);
}

Test(time, sleep_zero_is_a_checkpoint_that_yields, .timeout = 10)
{
    atomic_store(&flag, 0);
    cr_assert_eq(run_on(1, sleep_zero_yields, NULL), 0);
}

static int ten_thousand_sleepers(void *arg)
{
    (void)arg;
    enum { N = 10000 };
    static weft_task *t[N];
    static struct sleeper_arg a[N];
    uint64_t base = weft_now() + 5 * MS;
    for (int i = 0; i < N; i++) {
        a[i] = (struct sleeper_arg){base + (uint64_t)(i % 97) * 100000, i};
        cr_assert_eq(weft_spawn(&t[i], deadline_sleeper, &a[i]), 0);
    }
    for (int i = 0; i < N; i++) cr_assert_eq(weft_join(t[i], NULL), 0);
    return 0;
}

Test(time, ten_thousand_concurrent_sleepers_all_wake, .timeout = 30)
{
    atomic_store(&norder, 0);
    cr_assert_eq(run_on(2, ten_thousand_sleepers, NULL), 0);
    cr_assert_eq(atomic_load(&norder), 10000);
}
