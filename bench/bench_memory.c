/*
 * memory: resident memory per parked task with 100k and 1M tasks alive (each
 * parked in a long sleep), in KiB per task, measured from /proc/self/statm.
 */
#include <stdatomic.h>
#include <unistd.h>
#include <weft.h>

#include "bench.h"

static long ntasks;
static _Atomic long parked;
static double kib_per_task;

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static int sleeper(void *arg)
{
    (void)arg;
    atomic_fetch_add(&parked, 1);
    weft_sleep(3600ull * 1000000000ull); /* cancelled by destroy */
    return 0;
}

static int root(void *arg)
{
    (void)arg;
    long before = rss_kib();
    for (long i = 0; i < ntasks; i++) weft_spawn(NULL, sleeper, NULL);
    while (atomic_load(&parked) < ntasks) weft_sleep(1000000);
    kib_per_task = (double)(rss_kib() - before) / (double)ntasks;
    return 0;
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    long sizes[2] = {100000, 1000000};
    if (bench_quick) sizes[0] = 1000, sizes[1] = 10000;
    weft_options o;
    weft_options_init(&o);
    o.workers = 2;
    for (int r = 0; r < bench_reps; r++) {
        for (int k = 0; k < 2; k++) {
            ntasks = sizes[k];
            atomic_store(&parked, 0);
            weft_run(&o, root, NULL, NULL);
            bench_value("memory", k == 0 ? "rss_per_task_100k" : "rss_per_task_1m", "weft",
                        kib_per_task, "KiB", "-");
        }
    }
    return 0;
}
