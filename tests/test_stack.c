/* Stacks (src/stack.c): an overflow is always reported and aborts, with a
 * guard page and beyond the guard budget (canary and stack-pointer bound);
 * deep legal use works; stacks are reused. */
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
    ((volatile char *)self->stack.lo)[8] = 1; /* what a frame overrunning the bottom writes */
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
