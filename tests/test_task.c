/* Tasks and the runtime (src/task.c, src/runtime.c, src/sched/worker.c):
 * spawn, join, detach, yield, current, spawning from plain pthreads,
 * shutdown, and bad input. */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "helpers.h"
#include "runtime.h"

static int times3(void *arg)
{
    return (int)(intptr_t)arg * 3;
}

static int spawn_many(void *arg)
{
    int n = (int)(intptr_t)arg;
    weft_task **ts = malloc(sizeof *ts * (size_t)n);
    for (int i = 0; i < n; i++) cr_assert_eq(weft_spawn(&ts[i], times3, (void *)(intptr_t)i), 0);
    for (int i = 0; i < n; i++) {
        int st = -1;
        cr_assert_eq(weft_join(ts[i], &st), 0);
        cr_assert_eq(st, i * 3);
    }
    free(ts);
    return 0;
}

Test(task, spawn_join_returns_each_status_on_1_2_4_8_workers, .timeout = 30)
{
    FOR_EACH_WORKERS(n) cr_assert_eq(run_on(n, spawn_many, (void *)5000), 0);
}

static int fib(void *arg)
{
    intptr_t n = (intptr_t)arg;
    if (n < 2) return (int)n;
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, fib, (void *)(n - 1)), 0);
    int a = fib((void *)(n - 2)), b;
    cr_assert_eq(weft_join(t, &b), 0);
    return a + b;
}

Test(task, nested_spawn_tree_computes_fib_on_1_2_4_8_workers, .timeout = 30)
{
    FOR_EACH_WORKERS(n) cr_assert_eq(run_on(n, fib, (void *)20), 6765);
}

static _Atomic int detached_ran;
static int bump(void *arg)
{
    (void)arg;
    weft_yield();
    atomic_fetch_add(&detached_ran, 1);
    return 0;
}

static int spawn_detached(void *arg)
{
    int n = (int)(intptr_t)arg;
    for (int i = 0; i < n; i++) cr_assert_eq(weft_spawn(NULL, bump, NULL), 0);
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, bump, NULL), 0);
    weft_task_detach(t);
    while (atomic_load(&detached_ran) < n + 1) weft_yield();
    return 0;
}

Test(task, detached_tasks_run_and_are_freed, .timeout = 30)
{
    atomic_store(&detached_ran, 0);
    cr_assert_eq(run_on(2, spawn_detached, (void *)10000), 0);
    cr_assert_eq(atomic_load(&detached_ran), 10001);
}

static int misuse(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_join(weft_current(), NULL), EDEADLK);
    cr_assert_eq(weft_join(NULL, NULL), EINVAL);
    cr_assert_eq(weft_spawn(NULL, NULL, NULL), EINVAL);
    cr_assert_eq(weft_runtime_run(weft_runtime_current(), times3, NULL, NULL), EPERM);
    cr_assert_eq(weft_runtime_destroy(weft_runtime_current()), EPERM);
    cr_assert_not_null(weft_current());
    cr_assert_not_null(weft_runtime_current());
    return 0;
}

Test(task, misuse_gets_clear_errors, .timeout = 10)
{
    cr_assert_eq(run_on(2, misuse, NULL), 0);
}

static atomic_bool release_blocker;
static int blocker(void *arg)
{
    (void)arg;
    while (!atomic_load(&release_blocker)) weft_sleep(1000 * 1000);
    return 9;
}

static int second_joiner(void *arg)
{
    return weft_join(arg, NULL);
}

static int double_join(void *arg)
{
    (void)arg;
    weft_task *t, *j;
    atomic_store(&release_blocker, false);
    cr_assert_eq(weft_spawn(&t, blocker, NULL), 0);
    cr_assert_eq(weft_spawn(&j, second_joiner, t), 0);
    /* Wait until the other joiner is registered on t (not for a time, which
     * a loaded machine can outlast). */
    while (!WEFT__JOIN_IS_WAITER(atomic_load(&t->joiner))) cr_assert_eq(weft_yield(), 0);
    int jst = -1;
    /* We are the second joiner of t: refused, and t stays joinable. */
    cr_assert_eq(weft_join(t, NULL), EINVAL);
    atomic_store(&release_blocker, true);
    cr_assert_eq(weft_join(j, &jst), 0);
    cr_assert_eq(jst, 0);
    return 0;
}

Test(task, a_second_concurrent_joiner_gets_einval, .timeout = 10)
{
    cr_assert_eq(run_on(2, double_join, NULL), 0);
}

static int plain_thread_checks(void *arg)
{
    (void)arg;
    cr_assert_null(weft_current());
    cr_assert_null(weft_runtime_current());
    cr_assert_eq(weft_spawn(NULL, times3, NULL), EPERM);
    cr_assert_eq(weft_yield(), 0);
    return 0;
}

Test(task, plain_pthread_has_no_current_task_and_cannot_weft_spawn, .timeout = 10)
{
    cr_assert_eq(run_on_pthread(plain_thread_checks, NULL), 0);
}

struct feeder {
    weft_runtime *rt;
    int n;
    int base;
};

static void *feed(void *p)
{
    struct feeder *f = p;
    weft_task **ts = malloc(sizeof *ts * (size_t)f->n);
    for (int i = 0; i < f->n; i++)
        cr_assert_eq(weft_runtime_spawn(f->rt, &ts[i], times3, (void *)(intptr_t)(f->base + i)), 0);
    for (int i = 0; i < f->n; i++) {
        int st;
        cr_assert_eq(weft_join(ts[i], &st), 0); /* join from a plain pthread */
        cr_assert_eq(st, (f->base + i) * 3);
    }
    free(ts);
    return NULL;
}

Test(task, spawns_and_joins_from_several_plain_pthreads_at_once, .timeout = 60)
{
    FOR_EACH_WORKERS(n) {
        weft_options o;
        weft_options_init(&o);
        o.workers = n;
        weft_runtime *rt;
        cr_assert_eq(weft_runtime_create(&rt, &o), 0);
        enum { THREADS = 4, EACH = 5000 };
        pthread_t th[THREADS];
        struct feeder f[THREADS];
        for (int i = 0; i < THREADS; i++) {
            f[i] = (struct feeder){rt, EACH, i * EACH};
            cr_assert_eq(pthread_create(&th[i], NULL, feed, &f[i]), 0);
        }
        for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
        cr_assert_eq(weft_runtime_destroy(rt), 0);
    }
}

#define ROUNDS 50
static int ylog[3 * ROUNDS];
static int ylen, ystarted;

static int yield_logger(void *arg)
{
    /* Log only once all three have run: before that, a task not yet started
     * sits in the deque, and the scheduler's fairness tick (every 61st
     * choice, wherever the count happens to stand) may serve the yield
     * queue ahead of it once.  From then on every runnable task is in the
     * yield queue. */
    ystarted++;
    while (ystarted < 3) cr_assert_eq(weft_yield(), 0);
    for (int r = 0; r < ROUNDS; r++) {
        ylog[ylen++] = (int)(intptr_t)arg; /* one worker: no race */
        cr_assert_eq(weft_yield(), 0);
    }
    return 0;
}

static int three_yielders(void *arg)
{
    (void)arg;
    weft_task *t[3];
    for (int i = 0; i < 3; i++) cr_assert_eq(weft_spawn(&t[i], yield_logger, (void *)(intptr_t)i), 0);
    for (int i = 0; i < 3; i++) cr_assert_eq(weft_join(t[i], NULL), 0);
    return 0;
}

Test(task, yield_takes_turns_round_robin_on_one_worker, .timeout = 10)
{
    ylen = ystarted = 0;
    cr_assert_eq(run_on(1, three_yielders, NULL), 0);
    cr_assert_eq(ylen, 3 * ROUNDS);
    /* Every window of three consecutive turns holds all three tasks. */
    for (int i = 0; i + 3 <= ylen; i++)
        cr_assert(ylog[i] != ylog[i + 1] && ylog[i] != ylog[i + 2] && ylog[i + 1] != ylog[i + 2],
                  "turns %d..%d: %d %d %d", i, i + 2, ylog[i], ylog[i + 1], ylog[i + 2]);
}

static int check_identity(void *arg)
{
    weft_task *self = weft_current();
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(weft_current(), self);
        weft_yield();
        if (i % 50 == 0) weft_sleep(100 * 1000);
    }
    return (int)(intptr_t)arg;
}

static int migrate(void *arg)
{
    (void)arg;
    weft_task *t[64];
    for (int i = 0; i < 64; i++) cr_assert_eq(weft_spawn(&t[i], check_identity, (void *)(intptr_t)i), 0);
    for (int i = 0; i < 64; i++) {
        int st;
        cr_assert_eq(weft_join(t[i], &st), 0);
        cr_assert_eq(st, i);
    }
    return 0;
}

Test(task, current_task_is_stable_across_switches_and_migration, .timeout = 30)
{
    cr_assert_eq(run_on(4, migrate, NULL), 0);
}

/* Many integer, double and long double values live across each switch: the
 * switch (inline assembly, arch/ctx.h) must leave every one as it was while
 * other tasks ran the same code with other values in the same registers.
 * The result with yields must equal the result computed without. */
static volatile int no_yield;
static uint64_t mix(uint64_t seed, bool yields)
{
    uint64_t a = seed, b = seed * 3 + 1, c = seed ^ 0x9e3779b97f4a7c15u, d = seed << 7,
             e = ~seed, f = seed * seed, g = seed + 12345, h = seed >> 3;
    double x0 = (double)(seed & 1023), x1 = x0 * 0.5 + 1, x2 = x0 / 3 + 2, x3 = x0 * 1.25 + 3,
           x4 = x0 - 7, x5 = x0 * x0 / 1000, x6 = 1 / (x0 + 1), x7 = x0 + 0.125;
    long double z = (long double)(seed & 4095) / 7.0L;
    for (int r = 0; r < 100; r++) {
        a = a * 6364136223846793005u + 1442695040888963407u;
        b ^= a >> 13;
        c += b * 31;
        d = (d << 5) ^ (d >> 59) ^ c;
        e -= d;
        f ^= e * 3;
        g += f >> 11;
        h ^= g + a;
        x0 = x0 * 0.75 + (double)(a & 255);
        x1 = x1 * 0.5 + x0;
        x2 = x2 * 0.25 + x1;
        x3 = x3 * 0.125 + x2;
        x4 = x4 * 0.5 - x3 / 8;
        x5 = x5 * 0.25 + x4 / 16;
        x6 = x6 * 0.5 + x5;
        x7 = x7 * 0.5 + x6 - x0 / 4;
        z = z * 0.5L + (long double)(h & 1023);
        if (yields && !no_yield) weft_yield();
    }
    return a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ (uint64_t)(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7) ^
           (uint64_t)(z * 1024);
}

static int mixer(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    uint64_t want = mix(seed, false);
    cr_assert_eq(mix(seed, true), want, "task %llu: values changed across a switch",
                 (unsigned long long)seed);
    return 0;
}

static int mixers(void *arg)
{
    (void)arg;
    weft_task *t[8];
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_spawn(&t[i], mixer, (void *)(uintptr_t)(i * 7919 + 1)), 0);
    for (int i = 0; i < 8; i++) cr_assert_eq(weft_join(t[i], NULL), 0);
    return 0;
}

Test(task, values_live_across_switches_survive_on_1_2_4_8_workers, .timeout = 30)
{
    FOR_EACH_WORKERS(n) cr_assert_eq(run_on(n, mixers, NULL), 0);
}

static _Atomic int cancelled_sleepers;
static int long_sleeper(void *arg)
{
    (void)arg;
    if (weft_sleep(3600ull * 1000000000ull) == ECANCELED) atomic_fetch_add(&cancelled_sleepers, 1);
    /* Every later checkpoint reports the cancel too. */
    if (weft_yield() == ECANCELED && weft_sleep(1) == ECANCELED) atomic_fetch_add(&cancelled_sleepers, 1);
    return 0;
}

Test(runtime, destroy_cancels_sleeping_tasks_and_returns, .timeout = 20)
{
    atomic_store(&cancelled_sleepers, 0);
    weft_options o;
    weft_options_init(&o);
    o.workers = 2;
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&rt, &o), 0);
    for (int i = 0; i < 1000; i++) cr_assert_eq(weft_runtime_spawn(rt, NULL, long_sleeper, NULL), 0);
    weft_task *t;
    cr_assert_eq(weft_runtime_spawn(rt, &t, long_sleeper, NULL), 0); /* never joined */
    weft_sleep(50 * 1000 * 1000);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    cr_assert_eq(atomic_load(&cancelled_sleepers), 2002);
}

Test(runtime, bad_options_and_arguments_get_einval, .timeout = 10)
{
    weft_runtime *rt;
    weft_options o;
    weft_options_init(&o);
    o.workers = 100000;
    cr_assert_eq(weft_runtime_create(&rt, &o), EINVAL);
    weft_options_init(&o);
    o.stack_size = 1024;
    cr_assert_eq(weft_runtime_create(&rt, &o), EINVAL);
    cr_assert_eq(weft_runtime_create(NULL, NULL), EINVAL);
    cr_assert_eq(weft_runtime_spawn(NULL, NULL, times3, NULL), EINVAL);
    cr_assert_eq(weft_run(NULL, NULL, NULL, NULL), EINVAL);
    cr_assert_eq(weft_runtime_destroy(NULL), EINVAL);
}

Test(runtime, default_options_use_every_cpu_and_a_runtime_can_be_reused, .timeout = 20)
{
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&rt, NULL), 0);
    cr_assert_geq(weft_runtime_workers(rt), 1);
    for (int i = 0; i < 3; i++) {
        int st = -1;
        cr_assert_eq(weft_runtime_run(rt, times3, (void *)(intptr_t)i, &st), 0);
        cr_assert_eq(st, i * 3);
    }
    cr_assert_eq(weft_runtime_destroy(rt), 0);
}

/*
 * Tasks resuming on other workers read the current worker afresh.  Eight
 * tasks pass seven tokens round a ring of rendezvous channels on 4 workers:
 * every hand-off parks one side, a wake-up lands in the waker's next slot,
 * the task it displaces goes to the deque and is stolen, so the tasks keep
 * changing workers (the test counts the moves and requires some).  After
 * every resumption each checks that the runtime names it as the current
 * task.  And if the scheduler kept a worker pointer read before a switch
 * (the thread-local is read inline, runtime.h), the resumed side would
 * finish the old worker's hand-over instead of its own and lose tasks: the
 * ring would hang.  A token retires after RING_HOPS hops; whoever retires
 * the last one leaves, and its closed handles unwind the ring.
 */
#define RING 8
#define RING_TOKENS 7
#define RING_HOPS 20000

struct ring_member {
    weft_rx *in;
    weft_tx *out;
    long wrong, moves;
};
static _Atomic int ring_retired;

static int ring_member(void *arg)
{
    struct ring_member *m = arg;
    weft_task *me = weft_current();
    long v;
    for (;;) {
        weft__worker *before = weft__worker_self();
        if (weft_chan_recv(m->in, &v) != 0) break; /* the ring is unwinding */
        if (weft__worker_self() != before) m->moves++;
        if (weft_current() != me) m->wrong++;
        if (++v == RING_HOPS) {
            if (atomic_fetch_add(&ring_retired, 1) + 1 == RING_TOKENS) break;
            continue;
        }
        before = weft__worker_self();
        if (weft_chan_send(m->out, &v) != 0) break;
        if (weft__worker_self() != before) m->moves++;
        if (weft_current() != me) m->wrong++;
    }
    weft_chan_tx_free(m->out);
    weft_chan_rx_free(m->in);
    return 0;
}

/* One ring's run; adds how often its tasks changed workers to *arg. */
static int token_ring(void *arg)
{
    long *moved = arg;
    atomic_store(&ring_retired, 0);
    weft_tx *tx[RING];
    weft_rx *rx[RING];
    for (int i = 0; i < RING; i++)
        cr_assert_eq(weft_chan_open(&tx[i], &rx[i], 0, sizeof(long), NULL), 0);
    struct ring_member m[RING];
    weft_task *t[RING];
    for (int i = 0; i < RING; i++) {
        m[i] = (struct ring_member){rx[i], NULL, 0, 0};
        cr_assert_eq(weft_chan_tx_clone(tx[(i + 1) % RING], &m[i].out), 0);
    }
    for (int i = 0; i < RING; i++) cr_assert_eq(weft_spawn(&t[i], ring_member, &m[i]), 0);
    for (int k = 0; k < RING_TOKENS; k++) {
        long v = 0;
        cr_assert_eq(weft_chan_send(tx[k], &v), 0);
    }
    for (int i = 0; i < RING; i++) weft_chan_tx_free(tx[i]);
    long moves = 0;
    for (int i = 0; i < RING; i++) {
        cr_assert_eq(weft_join(t[i], NULL), 0);
        cr_assert_eq(m[i].wrong, 0, "task %d saw another task as current %ld times", i, m[i].wrong);
        moves += m[i].moves;
    }
    cr_assert_eq(atomic_load(&ring_retired), RING_TOKENS);
    *moved += moves;
    return 0;
}

/* Rings until some task has changed workers: the scheduler keeps partners
 * that talk together on one worker, and a thief takes one only after its
 * patience (worker.c, Stealing), so a single short ring may never move a
 * task.  Every ring checks every resumption. */
static void rings_until_a_move(unsigned workers)
{
    long moved = 0;
    for (int round = 0; round < 200 && moved == 0; round++)
        cr_assert_eq(run_on(workers, token_ring, &moved), 0);
    cr_assert_gt(moved, 0, "no task changed workers on %u workers: the test tested nothing",
                 workers);
}

Test(task, a_task_resumed_on_another_worker_is_the_current_task_there, .timeout = 60)
{
    rings_until_a_move(4);
    rings_until_a_move(2);
}

/* A task made runnable by a running task waits in that worker's deque,
 * marked, and a thief leaves it there for a while (worker.c, Stealing).
 * But only for a while: here the task that queued it then spins without
 * ever switching, so only another worker can run it.  It sets the flag the
 * spinner waits for; if marked tasks were never stolen, this hangs. */
struct queued_behind {
    atomic_bool ran;
    weft__worker *spinner_on, *ran_on;
};

static int set_ran(void *arg)
{
    struct queued_behind *q = arg;
    q->ran_on = weft__worker_self();
    atomic_store(&q->ran, true);
    return 0;
}

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

static int spin_behind(void *arg)
{
    struct queued_behind *q = arg;
    weft_task *queued, *in_next;
    atomic_store(&q->ran, false);
    q->spinner_on = weft__worker_self();
    /* The second spawn takes the next slot and pushes the first, marked,
     * to this worker's deque. */
    cr_assert_eq(weft_spawn(&queued, set_ran, q), 0);
    cr_assert_eq(weft_spawn(&in_next, nothing, NULL), 0);
    while (!atomic_load(&q->ran)) sched_yield(); /* the OS's yield: the task never switches */
    cr_assert_eq(weft__worker_self(), q->spinner_on);
    cr_assert_neq(q->ran_on, q->spinner_on);
    cr_assert_eq(weft_join(queued, NULL), 0);
    cr_assert_eq(weft_join(in_next, NULL), 0);
    return 0;
}

Test(task, a_task_queued_behind_a_task_that_never_switches_is_stolen, .timeout = 30)
{
    struct queued_behind q;
    for (int spin = 0; spin < 2; spin++) {
        weft_options o;
        weft_options_init(&o);
        o.workers = 2;
        if (!spin) o.spin_ns = 0; /* the thief parks between looks */
        int status = -1;
        cr_assert_eq(weft_run(&o, spin_behind, &q, &status), 0);
        cr_assert_eq(status, 0);
    }
}
