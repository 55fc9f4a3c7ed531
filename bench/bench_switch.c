/*
 * switch: the raw context switch (weft__ctx_switch between two contexts),
 * weft_yield between two tasks on one worker, and, as the pthread peer, a
 * futex ping-pong between two threads (what a "switch" costs the kernel).
 * Reported per switch / per yield.
 */
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <weft.h>

#include "arch/ctx.h"
#include "bench.h"

static weft__ctx main_ctx, bounce_ctx;
static volatile long bounces;

static _Noreturn void bounce(void *arg)
{
    (void)arg;
    for (;;) {
        bounces++;
        weft__ctx_switch(&bounce_ctx, &main_ctx);
    }
}

static void raw_switch(long n)
{
    size_t sz = 64 * 1024;
    char *stk = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    weft__ctx_make(&bounce_ctx, (uintptr_t)(stk + sz), bounce, NULL);
    weft__ctx_switch(&main_ctx, &bounce_ctx); /* warm up */
    bench_clock c = bench_start();
    for (long i = 0; i < n; i++) weft__ctx_switch(&main_ctx, &bounce_ctx);
    bench_report(c, "switch", "raw_switch", "weft", 2.0 * (double)n, 1, "ns", "-");
    munmap(stk, sz);
}

static long yields_each;
static int yielder(void *arg)
{
    (void)arg;
    for (long i = 0; i < yields_each; i++) weft_yield();
    return 0;
}

static int yield_root(void *arg)
{
    (void)arg;
    weft_task *a, *b;
    bench_clock c = bench_start();
    weft_spawn(&a, yielder, NULL);
    weft_spawn(&b, yielder, NULL);
    weft_join(a, NULL);
    weft_join(b, NULL);
    bench_report(c, "switch", "yield_pair", "weft", 2.0 * (double)yields_each, 1, "ns", "workers=1");
    return 0;
}

static _Atomic uint32_t turn;
static long pp_rounds;

static void fwait(uint32_t v)
{
    while (atomic_load(&turn) == v) syscall(SYS_futex, &turn, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

static void *pp_peer(void *arg)
{
    (void)arg;
    for (long i = 0; i < pp_rounds; i++) {
        fwait(0);
        atomic_store(&turn, 0);
        syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    return NULL;
}

static void pthread_pingpong(long n)
{
    pp_rounds = n;
    atomic_store(&turn, 0);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setaffinity_np(&attr, sizeof one, &one); /* both on one CPU, like yield_pair */
    pthread_t th;
    cpu_set_t old;
    pthread_getaffinity_np(pthread_self(), sizeof old, &old);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    pthread_create(&th, &attr, pp_peer, NULL);
    bench_clock c = bench_start();
    for (long i = 0; i < n; i++) {
        atomic_store(&turn, 1);
        syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        fwait(1);
    }
    bench_report(c, "switch", "yield_pair", "pthread", 2.0 * (double)n, 1, "ns", "cpus=1");
    pthread_join(th, NULL);
    pthread_setaffinity_np(pthread_self(), sizeof old, &old);
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    long n = bench_quick ? 100000 : 20000000;
    yields_each = bench_quick ? 100000 : 10000000;
    weft_options o;
    weft_options_init(&o);
    o.workers = 1;
    for (int r = 0; r < bench_reps; r++) {
        raw_switch(n);
        weft_run(&o, yield_root, NULL, NULL);
        pthread_pingpong(bench_quick ? 10000 : 200000);
    }
    return 0;
}
