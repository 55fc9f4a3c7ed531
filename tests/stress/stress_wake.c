/*
 * Lost-wake-up stress (src/sched/worker.c, "No lost wake-up").
 *
 * Plain pthreads spawn bursts of tasks into the runtime and join them (the
 * join blocks the pthread on a futex), pausing at random between bursts so
 * the workers run out of work, spin, and park; the spin budget is tiny so
 * parking happens constantly.  Tasks themselves spawn children, yield, sleep
 * briefly and make joiners runnable.  A lost wake-up leaves some task
 * runnable with every worker asleep: a join then never returns, and the
 * watchdog reports "no progress" and aborts.
 *
 * Checks: every task spawned ran exactly once (per-task flags), every join
 * returned the task's status, progress never stalls for 10 s.
 *
 * Usage: stress_wake [--seconds S] [--seed N] [--workers W] [--threads T]
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include "stress_common.h"

static unsigned long long seconds = 5, seed = 1, workers = 2, threads = 3;
static weft_runtime *rt;
static _Atomic unsigned long long progress, tasks_run, children_run, sleeps, yields;
static atomic_bool done;

struct job {
    uint64_t rng;
    _Atomic int ran;
    int id;
};

static int child(void *arg)
{
    struct job *j = arg;
    atomic_fetch_add(&children_run, 1);
    return j->id;
}

static int task(void *arg)
{
    struct job *j = arg;
    STRESS_CHECK(atomic_fetch_add(&j->ran, 1) == 0);
    switch (stress_rand(&j->rng) % 4) {
    case 0: {
        weft_task *c;
        STRESS_CHECK(weft_spawn(&c, child, j) == 0);
        int st;
        STRESS_CHECK(weft_join(c, &st) == 0 && st == j->id);
        break;
    }
    case 1:
        STRESS_CHECK(weft_yield() == 0);
        atomic_fetch_add(&yields, 1);
        break;
    case 2:
        STRESS_CHECK(weft_sleep(stress_rand(&j->rng) % 50000) == 0);
        atomic_fetch_add(&sleeps, 1);
        break;
    default:
        break;
    }
    atomic_fetch_add(&tasks_run, 1);
    atomic_fetch_add(&progress, 1);
    return j->id;
}

static void *feeder(void *arg)
{
    uint64_t rng = seed * 7919 + (uint64_t)(uintptr_t)arg;
    enum { BURST = 16 };
    struct job jobs[BURST];
    weft_task *t[BURST];
    while (!atomic_load(&done)) {
        int n = (int)(stress_rand(&rng) % BURST) + 1;
        for (int i = 0; i < n; i++) {
            jobs[i].rng = stress_rand(&rng) | 1;
            atomic_store(&jobs[i].ran, 0);
            jobs[i].id = i;
            STRESS_CHECK(weft_runtime_spawn(rt, &t[i], task, &jobs[i]) == 0);
        }
        for (int i = 0; i < n; i++) {
            int st = -1;
            STRESS_CHECK(weft_join(t[i], &st) == 0);
            STRESS_CHECK(st == i && atomic_load(&jobs[i].ran) == 1);
        }
        /* Pause so the workers go idle and park: 0 to 300 us. */
        uint64_t pause = stress_rand(&rng) % 300000;
        if (pause > 150000) {
            struct timespec ts = {0, (long)pause};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static void *watchdog(void *arg)
{
    (void)arg;
    unsigned long long last = (unsigned long long)-1;
    int still = 0;
    while (!atomic_load(&done)) {
        sleep(1);
        unsigned long long p = atomic_load(&progress);
        still = p == last ? still + 1 : 0;
        last = p;
        if (still >= 10) STRESS_FAIL("no progress for 10 s (seed %llu): a lost wake-up?", seed);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct stress_opt opts[] = {{"--seconds", &seconds}, {"--seed", &seed}, {"--workers", &workers},
                                {"--threads", &threads}};
    stress_parse(argc, argv, opts, sizeof opts / sizeof opts[0]);
    weft_options o;
    weft_options_init(&o);
    o.workers = (unsigned)workers;
    o.spin_ns = 2000; /* park often: that is the edge under test */
    STRESS_CHECK(weft_runtime_create(&rt, &o) == 0);
    pthread_t wd, th[64];
    if (threads > 64) threads = 64;
    STRESS_CHECK(pthread_create(&wd, NULL, watchdog, NULL) == 0);
    for (unsigned long long i = 0; i < threads; i++)
        STRESS_CHECK(pthread_create(&th[i], NULL, feeder, (void *)(uintptr_t)i) == 0);
    sleep((unsigned)seconds);
    atomic_store(&done, true);
    for (unsigned long long i = 0; i < threads; i++) pthread_join(th[i], NULL);
    pthread_join(wd, NULL);
    STRESS_CHECK(weft_runtime_destroy(rt) == 0);
    printf("stress_wake: seed %llu, %llu s, %llu workers, %llu feeder threads: %llu tasks "
           "(%llu children, %llu yields, %llu sleeps), all ran exactly once\n",
           seed, seconds, workers, threads, (unsigned long long)tasks_run,
           (unsigned long long)children_run, (unsigned long long)yields,
           (unsigned long long)sleeps);
    return 0;
}
