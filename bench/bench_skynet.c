/*
 * skynet: 1,111,111 tasks in a 10-ary tree (1M leaves); each leaf returns
 * its number, each inner task spawns its 10 children and sums them through
 * joins.  On 1 and 2 workers; reported in ms per run.
 */
#include <weft.h>

#include "bench.h"

static long leaves;

/* The sum (499999500000 for 1M leaves) does not fit the int status, so
 * each task adds its leaves into a 64-bit total passed down the tree. */
struct node {
    long num, size;
};

struct acc {
    struct node n;
    long long *sum;
};

static int skynet_sum(void *arg)
{
    struct acc *a = arg;
    if (a->n.size == 1) {
        __atomic_fetch_add(a->sum, a->n.num, __ATOMIC_RELAXED);
        return 0;
    }
    struct acc kids[10];
    long long sums[10] = {0};
    weft_task *t[10];
    long step = a->n.size / 10;
    for (int i = 0; i < 10; i++) {
        kids[i] = (struct acc){{a->n.num + i * step, step}, &sums[i]};
        weft_spawn(&t[i], skynet_sum, &kids[i]);
    }
    long long s = 0;
    for (int i = 0; i < 10; i++) {
        weft_join(t[i], NULL);
        s += sums[i];
    }
    *a->sum += s;
    return 0;
}

static int root(void *arg)
{
    const char *params = arg;
    long long sum = 0;
    struct acc a = {{0, leaves}, &sum};
    bench_clock c = bench_start();
    skynet_sum(&a);
    bench_report(c, "skynet", "skynet_join", "weft", 1, 1e6, "ms", params);
    long long want = (long long)leaves * (leaves - 1) / 2;
    if (sum != want) {
        fprintf(stderr, "skynet: wrong sum %lld, want %lld\n", sum, want);
        exit(1);
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    leaves = bench_quick ? 10000 : 1000000;
    bench_on_1_and_2_workers(root);
    return 0;
}
