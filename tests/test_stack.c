/* Stacks (src/stack.c): an overflow is always reported and aborts, with a
 * guard page and beyond the guard budget (canary and stack-pointer bound);
 * deep legal use works; stacks are reused. */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "runtime.h"

/* Runs body() in a child process; returns its stderr and how it ended. */
static int in_child(void (*body)(void), char *err, size_t errlen)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        body();
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < errlen && (r = read(p[0], err + n, errlen - 1 - n)) > 0) n += (size_t)r;
    err[n] = 0;
    close(p[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return status;
}

static volatile int sink;

static int recurse(void *arg, int depth)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    sink += frame[0];
    if (arg) weft_yield();
    if (sink == -1) return 0; /* never: keeps the compiler from proving it infinite */
    return recurse(arg, depth + 1) + frame[0]; /* not a tail call */
}

/* Not static: the report names the entry function through the dynamic
 * symbol table (the test is linked with ENABLE_EXPORTS). */
int overflowing_task(void *arg);
int scribble_red_zone(void *arg);

int overflowing_task(void *arg)
{
    return recurse(arg, 0);
}

static void overflow_with(size_t guard_stacks, void *arg)
{
    weft_options o;
    weft_options_init(&o);
    o.workers = 1;
    o.guard_stacks = guard_stacks;
    weft_run(&o, overflowing_task, arg, NULL);
}

static void overflow_guarded(void)
{
    overflow_with(WEFT_DEFAULT_GUARD_STACKS, NULL);
}

static void overflow_unguarded(void)
{
    overflow_with(0, (void *)1); /* yields at every level: the sp bound catches it */
}

static void assert_reported(int status, const char *err, const char *how)
{
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "child ended with status %#x: %s",
              status, err);
    cr_assert_not_null(strstr(err, "weft: task stack overflow"), "stderr: %s", err);
    cr_assert_not_null(strstr(err, "overflowing_task"), "stderr: %s", err);
    cr_assert_not_null(strstr(err, how), "stderr: %s", err);
}

Test(stack, overflow_into_the_guard_page_is_reported_and_aborts, .timeout = 30)
{
    char err[1024];
    int status = in_child(overflow_guarded, err, sizeof err);
    assert_reported(status, err, "guard page hit");
}

Test(stack, overflow_of_an_unguarded_stack_is_reported_at_the_next_switch, .timeout = 30)
{
    char err[1024];
    int status = in_child(overflow_unguarded, err, sizeof err);
    assert_reported(status, err, "red zone reached");
}

int scribble_red_zone(void *arg)
{
    (void)arg;
    weft_task *self = weft_current();
    ((volatile char *)self->stack->lo)[8] = 1; /* what a frame overrunning the bottom writes */
    weft_yield();
    return 0;
}

static void canary_body(void)
{
    weft_options o;
    weft_options_init(&o);
    o.workers = 1;
    o.guard_stacks = 0;
    weft_run(&o, scribble_red_zone, NULL, NULL);
}

Test(stack, a_written_canary_is_reported_at_the_next_switch, .timeout = 30)
{
    char err[1024];
    int status = in_child(canary_body, err, sizeof err);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x: %s", status, err);
    cr_assert_not_null(strstr(err, "weft: task stack overflow"), "stderr: %s", err);
    cr_assert_not_null(strstr(err, "scribble_red_zone"), "stderr: %s", err);
}

static int deep(int depth)
{
    volatile char frame[1024];
    frame[0] = (char)depth;
    if (depth == 0) {
        weft_yield();
        return frame[0];
    }
    return deep(depth - 1) + frame[0];
}

static int deep_task(void *arg)
{
    return deep((int)(intptr_t)arg) >= 0 ? 0 : 1;
}

static int many_deep_tasks(void *arg)
{
    (void)arg;
    weft_task *t[200];
    for (int i = 0; i < 200; i++) cr_assert_eq(weft_spawn(&t[i], deep_task, (void *)(intptr_t)(i % 40)), 0);
    for (int i = 0; i < 200; i++) {
        int st;
        cr_assert_eq(weft_join(t[i], &st), 0);
        cr_assert_eq(st, 0);
    }
    return 0;
}

Test(stack, deep_legal_use_works_on_guarded_and_unguarded_stacks, .timeout = 30)
{
    weft_options o;
    weft_options_init(&o);
    o.workers = 2;
    o.guard_stacks = 64; /* the first slab guarded, the rest not */
    int st = -1;
    cr_assert_eq(weft_run(&o, many_deep_tasks, NULL, &st), 0);
    cr_assert_eq(st, 0);
}

static int nop(void *arg)
{
    return (int)(intptr_t)arg;
}

static int churn(void *arg)
{
    (void)arg;
    for (int round = 0; round < 50; round++) {
        weft_task *t[100];
        for (int i = 0; i < 100; i++) cr_assert_eq(weft_spawn(&t[i], nop, (void *)(intptr_t)i), 0);
        for (int i = 0; i < 100; i++) {
            int st;
            cr_assert_eq(weft_join(t[i], &st), 0);
            cr_assert_eq(st, i);
        }
    }
    return 0;
}

Test(stack, stacks_are_reused_across_many_short_tasks, .timeout = 30)
{
    cr_assert_eq(run_on(2, churn, NULL), 0);
}

/* How many slots a pool has carved from its slabs (pool lock taken). */
static int carved(weft__pool *p)
{
    size_t bytes = 0;
    pthread_mutex_lock(&p->lock);
    for (weft__slab *s = p->slabs; s; s = s->next) bytes += s->len;
    bytes -= (size_t)(p->carve_end - p->carve);
    pthread_mutex_unlock(&p->lock);
    return (int)(bytes / p->stride);
}

/* The more of the stacks and the task structs a runtime has carved: a task
 * that kept either would show there. */
static int carved_slots(weft_runtime *rt)
{
    int s = carved(&rt->stack_pool), t = carved(&rt->task_pool);
    return s > t ? s : t;
}

/* A leak carves a slot per task (10000 and more below); reuse needs at most
 * the workers' caches and a few batches. */
#define LEAK_LIMIT 5000

static _Atomic int finished;
static int note_done(void *arg)
{
    (void)arg;
    atomic_fetch_add(&finished, 1);
    return 0;
}

static int detached_rounds(void *arg)
{
    (void)arg;
    /* 200 rounds of 100 tasks, each round finished before the next: if the
     * detached half failed to return their stacks, over 10000 stacks would be
     * carved; with reuse, a few hundred suffice. */
    for (int round = 0; round < 200; round++) {
        atomic_store(&finished, 0);
        for (int i = 0; i < 100; i++) {
            if (i % 2) {
                cr_assert_eq(weft_spawn(NULL, note_done, NULL), 0);
            } else {
                weft_task *t;
                cr_assert_eq(weft_spawn(&t, note_done, NULL), 0);
                if (i % 4 == 0) weft_task_detach(t); /* detached while running */
                else cr_assert_eq(weft_join(t, NULL), 0);
            }
        }
        while (atomic_load(&finished) < 100) weft_yield();
        weft_sleep(100000); /* let the last exits finish their final switch */
    }
    return carved_slots(weft_runtime_current());
}

Test(stack, finished_tasks_return_their_stacks_joined_detached_or_spawned_detached, .timeout = 30)
{
    FOR_EACH_WORKERS(n) {
        int carved = run_on(n, detached_rounds, NULL);
        cr_assert_lt(carved, LEAK_LIMIT, "%d stacks or structs carved for 20000 tasks on %u workers: leaking",
                     carved, n);
    }
}

static int spawn_outside_rounds(weft_runtime *rt)
{
    for (int i = 0; i < 20000; i++) {
        atomic_store(&finished, 0);
        cr_assert_eq(weft_runtime_spawn(rt, NULL, note_done, NULL), 0);
        while (atomic_load(&finished) == 0) sched_yield();
    }
    return carved_slots(rt);
}

Test(stack, tasks_spawned_from_a_pthread_reuse_stacks, .timeout = 60)
{
    weft_options o;
    weft_options_init(&o);
    o.workers = 2;
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&rt, &o), 0);
    int carved = spawn_outside_rounds(rt);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    cr_assert_lt(carved, LEAK_LIMIT, "%d stacks or structs carved for 20000 tasks: leaking", carved);
}

/* Where each child's first frame lies. */
static uintptr_t child_frame[100];
static int note_frame(void *arg)
{
    volatile char here;
    child_frame[(intptr_t)arg] = (uintptr_t)&here;
    return 0;
}

static int spawn_all_then_join(void *arg)
{
    (void)arg;
    weft_task *t[100];
    for (intptr_t i = 0; i < 100; i++) cr_assert_eq(weft_spawn(&t[i], note_frame, (void *)i), 0);
    for (int i = 0; i < 100; i++) cr_assert_eq(weft_join(t[i], NULL), 0);
    /* How many stacks the children started on. */
    int distinct = 0;
    for (int i = 0; i < 100; i++) {
        int j = 0;
        while (j < i && child_frame[j] != child_frame[i]) j++;
        distinct += j == i;
    }
    return distinct;
}

/* A child starts on a stack that a finished task left on its worker, not
 * on the one reserved for it at spawn.  Two, not one: a child starts before
 * the one before it has switched off its stack, so it takes the stack of
 * the one that finished before that. */
Test(stack, children_that_run_one_after_another_reuse_warm_stacks, .timeout = 30)
{
    int distinct = run_on(1, spawn_all_then_join, NULL);
    cr_assert_leq(distinct, 2, "100 children that ran one after another started on %d stacks",
                  distinct);
}
