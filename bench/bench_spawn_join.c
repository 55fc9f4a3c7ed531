/*
 * spawn_join: create, run and join an empty task, in batches of 1000
 * (1M in all), on 1 and 2 workers; peer: pthread_create + pthread_join.
 * Reported per task.
 */
#include <pthread.h>
#include <weft.h>

#include "bench.h"

#define BATCH 1000
static long total;

static int empty(void *arg)
{
    (void)arg;
    return 0;
}

static int root(void *arg)
{
    const char *params = arg;
    static weft_task *t[BATCH];
    bench_clock c = bench_start();
    for (long done = 0; done < total; done += BATCH) {
        for (int i = 0; i < BATCH; i++) weft_spawn(&t[i], empty, NULL);
        for (int i = 0; i < BATCH; i++) weft_join(t[i], NULL);
    }
    bench_report(c, "spawn_join", "spawn_join", "weft", (double)total, 1, "ns", params);
    return 0;
}

static void *pt_empty(void *arg)
{
    return arg;
}

static void pthreads(long n)
{
    pthread_t th[100];
    bench_clock c = bench_start();
    for (long done = 0; done < n; done += 100) {
        for (int i = 0; i < 100; i++) pthread_create(&th[i], NULL, pt_empty, NULL);
        for (int i = 0; i < 100; i++) pthread_join(th[i], NULL);
    }
    bench_report(c, "spawn_join", "spawn_join", "pthread", (double)n, 1, "ns", "batch=100");
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    total = bench_quick ? 10000 : 1000000;
    bench_on_1_and_2_workers(root);
    for (int r = 0; r < bench_reps; r++) pthreads(bench_quick ? 1000 : 20000);
    return 0;
}
