/*
 * fib: fib(30) with a task per call and no cutoff: each call spawns fib(n-1),
 * computes fib(n-2) itself, and joins (1.35M spawns, unbalanced).  On 2
 * workers (and 1); reported in ms per run.
 */
#include <weft.h>

#include "bench.h"

static int fib(void *arg)
{
    long n = (long)(intptr_t)arg;
    if (n < 2) return (int)n;
    weft_task *t;
    weft_spawn(&t, fib, (void *)(intptr_t)(n - 1));
    int a = fib((void *)(intptr_t)(n - 2)), b;
    weft_join(t, &b);
    return a + b;
}

static long fib_n;

static int root(void *arg)
{
    const char *params = arg;
    bench_clock c = bench_start();
    int r = fib((void *)(intptr_t)fib_n);
    bench_report(c, "fib", "fib30", "weft", 1, 1e6, "ms", params);
    if (fib_n == 30 && r != 832040) {
        fprintf(stderr, "fib: wrong result %d\n", r);
        exit(1);
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    fib_n = bench_quick ? 20 : 30;
    bench_on_1_and_2_workers(root);
    return 0;
}
