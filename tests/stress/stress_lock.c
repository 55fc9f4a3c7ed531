/*
 * Lock, semaphore and limiter contention with random cancels and deadlines
 * (src/sync.c, src/wait.c).
 *
 * `--tasks` tasks and `--threads` plain pthreads loop until `--seconds`
 * have passed.  Each iteration picks one of three primitives and acquires
 * it inside a cancel scope that is either plain, bound to one of NTOK
 * tokens (a canceller pthread keeps cancelling random tokens and putting
 * fresh ones in their place), or given a deadline a few microseconds away.
 *
 * Checks, during the run:
 *  - lock: mutual exclusion (an owner word exchanged in and out of the
 *    critical section must find no one else there; a plain counter is
 *    incremented inside it); re-acquire and try_acquire by the owner give
 *    EDEADLK; a caller whose acquire returned ECANCELED is not the owner
 *    (its release gives EPERM) and really was cancelled.
 *  - semaphore: never more than `--permits` holders at once.
 *  - limiter: never more than `--permits` borrowers; a borrower's second
 *    acquire gives EDEADLK; ECANCELED leaves nothing borrowed (release EPERM).
 * At the end: the counter equals the number of successful lock acquires;
 * the lock is free with no waiters; the semaphore holds all its permits;
 * the limiter has nothing borrowed and no waiters.
 *
 * Usage: stress_lock [--seconds S] [--seed N] [--workers W] [--tasks T]
 *                    [--threads P] [--permits K]
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <weft.h>

#include "stress_common.h"

#define NTOK 16
#define MAX_RETIRED (1u << 20)

static unsigned long long seconds = 5, seed = 1, workers = 2, ntasks = 64, threads = 2,
                          permits = 3;

static weft_lock lk;
static weft_sem sem;
static weft_limiter lim;
static long guarded;                       /* only ever touched holding lk */
static _Atomic(void *) in_cs;              /* who is inside lk's critical section */
static _Atomic long sem_holders, lim_holders;
static _Atomic bool stop;
static stress_tokens toks;

enum { LOCK, SEM, LIM, NPRIM };
static const char *prim_name[NPRIM] = {"lock", "semaphore", "limiter"};
static _Atomic unsigned long long ok[NPRIM], cancelled[NPRIM], by_deadline, by_token;

struct actor {
    uint64_t rng;
    bool task;
};

/* Who the caller is, for the owner word: its task, or its pthread. */
static void *self_id(struct actor *a)
{
    return a->task ? (void *)weft_current() : (void *)a;
}

static void critical_pause(struct actor *a)
{
    if (stress_rand(&a->rng) % 8 == 0) {
        if (a->task)
            weft_yield();
        else
            sched_yield();
    }
}

static int do_lock(struct actor *a)
{
    int rc = weft_lock_acquire(&lk);
    if (rc == ECANCELED) {
        STRESS_CHECK(weft_cancelled());
        STRESS_CHECK(weft_lock_release(&lk) == EPERM); /* it never held the lock */
        return rc;
    }
    STRESS_CHECK(rc == 0);
    void *me = self_id(a);
    STRESS_CHECK(atomic_exchange(&in_cs, me) == NULL); /* mutual exclusion */
    STRESS_CHECK(weft_lock_acquire(&lk) == EDEADLK);
    STRESS_CHECK(weft_lock_try_acquire(&lk) == EDEADLK);
    guarded++;
    critical_pause(a);
    STRESS_CHECK(atomic_exchange(&in_cs, NULL) == me);
    STRESS_CHECK(weft_lock_release(&lk) == 0);
    STRESS_CHECK(weft_lock_release(&lk) == EPERM);
    return 0;
}

static int do_sem(struct actor *a)
{
    int rc = weft_sem_acquire(&sem);
    if (rc == ECANCELED) {
        STRESS_CHECK(weft_cancelled());
        return rc;
    }
    STRESS_CHECK(rc == 0);
    STRESS_CHECK(atomic_fetch_add(&sem_holders, 1) < (long)permits);
    critical_pause(a);
    atomic_fetch_sub(&sem_holders, 1);
    STRESS_CHECK(weft_sem_release(&sem) == 0);
    return 0;
}

static int do_lim(struct actor *a)
{
    int rc = weft_limiter_acquire(&lim);
    if (rc == ECANCELED) {
        STRESS_CHECK(weft_cancelled());
        STRESS_CHECK(weft_limiter_release(&lim) == EPERM);
        return rc;
    }
    STRESS_CHECK(rc == 0);
    STRESS_CHECK(atomic_fetch_add(&lim_holders, 1) < (long)permits);
    STRESS_CHECK(weft_limiter_acquire(&lim) == EDEADLK);
    critical_pause(a);
    atomic_fetch_sub(&lim_holders, 1);
    STRESS_CHECK(weft_limiter_release(&lim) == 0);
    return 0;
}

static void iteration(struct actor *a)
{
    unsigned prim = (unsigned)(stress_rand(&a->rng) % NPRIM);
    unsigned how = (unsigned)(stress_rand(&a->rng) % 3); /* plain, token, deadline */
    weft_scope s;
    if (how == 2)
        weft_scope_enter_deadline(&s, weft_now() + stress_rand(&a->rng) % 20000);
    else
        weft_scope_enter(&s);
    if (how == 1) {
        STRESS_CHECK(weft_scope_bind(&s, stress_tokens_pick(&toks, &a->rng)) == 0);
    }
    int rc = prim == LOCK ? do_lock(a) : prim == SEM ? do_sem(a) : do_lim(a);
    if (rc == 0) {
        atomic_fetch_add(&ok[prim], 1);
    } else {
        STRESS_CHECK(how != 0); /* nothing cancels a plain scope */
        atomic_fetch_add(&cancelled[prim], 1);
        atomic_fetch_add(how == 1 ? &by_token : &by_deadline, 1);
    }
    STRESS_CHECK(weft_scope_exit(&s, rc) == 0);
}

static int task_actor(void *arg)
{
    struct actor *a = arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) iteration(a);
    return 0;
}

static void *thread_actor(void *arg)
{
    struct actor *a = arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) iteration(a);
    return NULL;
}

/* Cancels random tokens and puts fresh ones in their place; the cancelled
 * ones are kept (a scope may still be bound to them) until the end. */
static void *canceller(void *arg)
{
    stress_tokens_churn(&toks, &stop, 50000, (uint64_t)(uintptr_t)arg);
    return NULL;
}

int main(int argc, char **argv)
{
    struct stress_opt opts[] = {{"--seconds", &seconds}, {"--seed", &seed},
                                {"--workers", &workers}, {"--tasks", &ntasks},
                                {"--threads", &threads}, {"--permits", &permits}};
    stress_parse(argc, argv, opts, sizeof opts / sizeof opts[0]);
    printf("stress_lock: seed %llu, %llu s, %llu workers, %llu tasks + %llu pthreads, %llu "
           "permits\n",
           seed, seconds, workers, ntasks, threads, permits);
    fflush(stdout);
    STRESS_CHECK(permits > 0 && threads <= 64);
    STRESS_CHECK(weft_lock_init(&lk) == 0);
    STRESS_CHECK(weft_sem_init(&sem, permits, permits) == 0);
    STRESS_CHECK(weft_limiter_init(&lim, permits) == 0);
    stress_tokens_init(&toks, NTOK, MAX_RETIRED);

    weft_options o;
    weft_options_init(&o);
    o.workers = (unsigned)workers;
    weft_runtime *rt;
    STRESS_CHECK(weft_runtime_create(&rt, &o) == 0);
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull | 1;
    struct actor *actors = calloc(ntasks + threads, sizeof *actors);
    weft_task **tasks = calloc(ntasks + 1, sizeof *tasks);
    pthread_t th[64], cth;
    STRESS_CHECK(actors && tasks);
    uint64_t t0 = weft__now();
    for (unsigned long long i = 0; i < ntasks + threads; i++) {
        actors[i].rng = stress_rand(&rng) | 1;
        actors[i].task = i < ntasks;
        if (i < ntasks)
            STRESS_CHECK(weft_runtime_spawn(rt, &tasks[i], task_actor, &actors[i]) == 0);
        else
            STRESS_CHECK(pthread_create(&th[i - ntasks], NULL, thread_actor, &actors[i]) == 0);
    }
    STRESS_CHECK(pthread_create(&cth, NULL, canceller, (void *)(uintptr_t)(stress_rand(&rng) | 1)) ==
                 0);
    while (weft__now() - t0 < seconds * 1000000000ull) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&stop, true);
    for (unsigned long long i = 0; i < ntasks; i++) STRESS_CHECK(weft_join(tasks[i], NULL) == 0);
    for (unsigned long long i = 0; i < threads; i++) pthread_join(th[i], NULL);
    pthread_join(cth, NULL);

    unsigned long long total = 0;
    for (int p = 0; p < NPRIM; p++) {
        printf("  %-10s acquired: %10llu  ECANCELED: %8llu\n", prim_name[p],
               (unsigned long long)atomic_load(&ok[p]), (unsigned long long)atomic_load(&cancelled[p]));
        total += atomic_load(&ok[p]) + atomic_load(&cancelled[p]);
    }
    STRESS_CHECK(guarded == (long)atomic_load(&ok[LOCK]));
    struct weft_lock_stats ls;
    STRESS_CHECK(weft_lock_stats(&lk, &ls) == 0);
    STRESS_CHECK(!ls.locked && !ls.broken && ls.tasks_waiting == 0);
    struct weft_sem_stats ss;
    STRESS_CHECK(weft_sem_stats(&sem, &ss) == 0);
    STRESS_CHECK(ss.value == permits && ss.tasks_waiting == 0);
    struct weft_limiter_stats ms;
    STRESS_CHECK(weft_limiter_stats(&lim, &ms) == 0);
    STRESS_CHECK(ms.borrowed == 0 && ms.tasks_waiting == 0);
    STRESS_CHECK(weft_lock_destroy(&lk) == 0 && weft_sem_destroy(&sem) == 0 &&
                 weft_limiter_destroy(&lim) == 0);
    STRESS_CHECK(weft_runtime_destroy(rt) == 0);
    size_t token_cancels = toks.n_retired;
    stress_tokens_fini(&toks);
    printf("stress_lock: OK: %llu acquires (%llu cancelled by a token, %llu by a deadline), "
           "%llu token cancels, counter %ld, %.1f s\n",
           total, (unsigned long long)atomic_load(&by_token),
           (unsigned long long)atomic_load(&by_deadline), (unsigned long long)token_cancels,
           guarded, (double)(weft__now() - t0) / 1e9);
    free(actors);
    free(tasks);
    return 0;
}
