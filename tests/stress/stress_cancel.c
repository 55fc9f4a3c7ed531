/*
 * Cancel storm stress (src/cancel.c, src/group.c, src/wait.c).
 *
 * Each round, a group of `--tasks` tasks blocks in mixed operations, each
 * inside a cancel scope bound to one of 64 tokens: sleeping forever,
 * sleeping briefly, joining a child that sleeps forever, waiting for a
 * sub-group, or looping on checkpoints.  Then a canceller task and
 * `--threads` plain pthreads cancel the tokens at once, each in its own
 * random order (cancel is idempotent, so every token is cancelled by
 * several of them concurrently).
 *
 * Checks: every blocked call returned exactly once (per-task counters) and
 * with a code its operation allows (ECANCELED for what can only end by a
 * cancel; 0 or ECANCELED for the rest, and 0 only when it really
 * completed); every scope caught its cancel (exit returned 0); every child
 * of every group finished before its group's wait returned; the group wait
 * of the round returned 0.
 *
 * Usage: stress_cancel [--seconds S] [--seed N] [--workers W] [--tasks T]
 *                      [--threads P]
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include "stress_common.h"

#define NTOK 64
#define NOPS 5
#define FOREVER UINT64_MAX

static unsigned long long seconds = 5, seed = 1, workers = 2, ntasks = 100000, threads = 2;
static const char *op_name[NOPS] = {"sleep-forever", "sleep-short", "join", "group-wait",
                                    "checkpoints"};
static _Atomic unsigned long long count[NOPS][2]; /* [op][0: rc 0, 1: ECANCELED] */
static _Atomic unsigned long long entered, children_done, cancels;
static weft_token *tok[NTOK];

struct job {
    uint32_t token;
    uint32_t op;
    uint64_t rng;
    _Atomic int returned;
    int rc;
};

static int child_forever(void *arg)
{
    weft_token *t = arg;
    weft_scope s;
    weft_scope_enter(&s);
    STRESS_CHECK(weft_scope_bind(&s, t) == 0);
    int rc = weft_sleep(FOREVER);
    STRESS_CHECK(rc == ECANCELED);
    STRESS_CHECK(weft_scope_exit(&s, rc) == 0);
    atomic_fetch_add(&children_done, 1);
    return ECANCELED;
}

static int group_child(void *arg)
{
    (void)arg;
    int rc = weft_sleep(FOREVER); /* cancelled through the group's scope */
    STRESS_CHECK(rc == ECANCELED);
    atomic_fetch_add(&children_done, 1);
    return rc;
}

static int job_main(void *arg)
{
    struct job *j = arg;
    weft_token *t = tok[j->token];
    weft_scope s;
    weft_scope_enter(&s);
    STRESS_CHECK(weft_scope_bind(&s, t) == 0);
    atomic_fetch_add(&entered, 1);
    int rc = -1;
    switch (j->op) {
    case 0:
        rc = weft_sleep(FOREVER);
        STRESS_CHECK(rc == ECANCELED);
        break;
    case 1: {
        uint64_t d = weft_now() + stress_rand(&j->rng) % 3000000;
        rc = weft_sleep_until(d);
        STRESS_CHECK(rc == ECANCELED ? weft_token_is_cancelled(t) : rc == 0 && weft_now() >= d);
        break;
    }
    case 2: {
        weft_task *c;
        STRESS_CHECK(weft_spawn(&c, child_forever, t) == 0);
        int st = 0;
        rc = weft_join(c, &st);
        if (rc == 0) {
            STRESS_CHECK(st == ECANCELED);
        } else {
            STRESS_CHECK(rc == ECANCELED);
            /* cancelled join: still joinable; join it shielded */
            weft_scope sh;
            weft_scope_enter(&sh);
            weft_scope_shield(&sh, true);
            STRESS_CHECK(weft_join(c, &st) == 0 && st == ECANCELED);
            STRESS_CHECK(weft_scope_exit(&sh, 0) == 0);
        }
        break;
    }
    case 3: {
        weft_group *g;
        STRESS_CHECK(weft_group_create(&g) == 0);
        for (int i = 0; i < 2; i++) STRESS_CHECK(weft_group_spawn(g, group_child, NULL) == 0);
        unsigned long long before = atomic_load(&children_done);
        rc = weft_group_wait(g);
        STRESS_CHECK(rc == 0 || rc == ECANCELED);
        STRESS_CHECK(atomic_load(&children_done) >= before); /* (monotone) */
        weft_group_destroy(g);
        break;
    }
    default:
        while ((rc = weft_checkpoint()) == 0) weft_sleep(200000);
        STRESS_CHECK(rc == ECANCELED);
        break;
    }
    j->rc = rc;
    STRESS_CHECK(atomic_fetch_add(&j->returned, 1) == 0);
    atomic_fetch_add(&count[j->op][rc == ECANCELED], 1);
    int ex = weft_scope_exit(&s, rc);
    STRESS_CHECK(ex == 0);
    if (rc == ECANCELED) STRESS_CHECK(weft_scope_cancelled_caught(&s));
    return 0;
}

static void cancel_all(uint64_t rng)
{
    unsigned order[NTOK];
    for (unsigned i = 0; i < NTOK; i++) order[i] = i;
    for (unsigned i = NTOK - 1; i > 0; i--) {
        unsigned k = (unsigned)(stress_rand(&rng) % (i + 1));
        unsigned x = order[i];
        order[i] = order[k];
        order[k] = x;
    }
    for (unsigned i = 0; i < NTOK; i++) {
        weft_token_cancel(tok[order[i]]);
        STRESS_CHECK(weft_token_is_cancelled(tok[order[i]]));
        atomic_fetch_add(&cancels, 1);
    }
}

/* Waits (bounded) until most tasks are blocked, so the storm hits parked
 * waiters; the outcome must be right either way. */
static void wait_entered(void)
{
    for (int i = 0; i < 2000 && atomic_load(&entered) < ntasks; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void *pthread_canceller(void *arg)
{
    wait_entered();
    cancel_all((uint64_t)(uintptr_t)arg);
    return NULL;
}

static int task_canceller(void *arg)
{
    for (int i = 0; i < 2000 && atomic_load(&entered) < ntasks; i++) weft_sleep(1000000);
    cancel_all((uint64_t)(uintptr_t)arg);
    return 0;
}

static int round_main(void *arg)
{
    uint64_t *rng = arg;
    struct job *jobs = calloc(ntasks, sizeof *jobs);
    STRESS_CHECK(jobs);
    for (int i = 0; i < NTOK; i++) STRESS_CHECK(weft_token_create(&tok[i], NULL) == 0);
    atomic_store(&entered, 0);
    weft_group *g;
    STRESS_CHECK(weft_group_create(&g) == 0);
    for (unsigned long long i = 0; i < ntasks; i++) {
        jobs[i].token = (uint32_t)(stress_rand(rng) % NTOK);
        jobs[i].op = (uint32_t)(stress_rand(rng) % NOPS);
        jobs[i].rng = stress_rand(rng) | 1;
        STRESS_CHECK(weft_group_spawn(g, job_main, &jobs[i]) == 0);
    }
    pthread_t th[16];
    unsigned np = threads > 16 ? 16 : (unsigned)threads;
    for (unsigned i = 0; i < np; i++)
        STRESS_CHECK(pthread_create(&th[i], NULL, pthread_canceller,
                                    (void *)(uintptr_t)(stress_rand(rng) | 1)) == 0);
    weft_task *ct;
    STRESS_CHECK(weft_spawn(&ct, task_canceller, (void *)(uintptr_t)(stress_rand(rng) | 1)) == 0);
    STRESS_CHECK(weft_group_wait(g) == 0);
    weft_group_destroy(g);
    STRESS_CHECK(weft_join(ct, NULL) == 0);
    for (unsigned i = 0; i < np; i++) pthread_join(th[i], NULL);
    for (unsigned long long i = 0; i < ntasks; i++) STRESS_CHECK(atomic_load(&jobs[i].returned) == 1);
    for (int i = 0; i < NTOK; i++) weft_token_unref(tok[i]);
    free(jobs);
    return 0;
}

int main(int argc, char **argv)
{
    struct stress_opt opts[] = {{"--seconds", &seconds}, {"--seed", &seed}, {"--workers", &workers},
                                {"--tasks", &ntasks},     {"--threads", &threads}};
    stress_parse(argc, argv, opts, sizeof opts / sizeof opts[0]);
    printf("stress_cancel: seed %llu, %llu s, %llu workers, %llu tasks per round, %llu "
           "cancelling pthreads + 1 task\n",
           seed, seconds, workers, ntasks, threads);
    fflush(stdout);
    weft_options o;
    weft_options_init(&o);
    o.workers = (unsigned)workers;
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull | 1;
    uint64_t t0 = weft__now(), rounds = 0;
    do {
        int st = -1;
        STRESS_CHECK(weft_run(&o, round_main, &rng, &st) == 0 && st == 0);
        rounds++;
    } while (weft__now() - t0 < seconds * 1000000000ull);
    unsigned long long total = 0;
    for (int op = 0; op < NOPS; op++) {
        printf("  %-14s returned 0: %8llu  ECANCELED: %8llu\n", op_name[op],
               (unsigned long long)atomic_load(&count[op][0]),
               (unsigned long long)atomic_load(&count[op][1]));
        total += atomic_load(&count[op][0]) + atomic_load(&count[op][1]);
    }
    STRESS_CHECK(total == rounds * ntasks);
    printf("stress_cancel: OK: %llu rounds, %llu blocked calls each returned once, %llu children "
           "cancelled, %llu token cancels, %.1f s\n",
           (unsigned long long)rounds, total, (unsigned long long)atomic_load(&children_done),
           (unsigned long long)atomic_load(&cancels), (double)(weft__now() - t0) / 1e9);
    return 0;
}
