/*
 * One million live tasks under the default vm.max_map_count (src/stack.c).
 *
 * A root task spawns N tasks that each park in a one-hour sleep, waits until
 * all N have parked, checks the process's mapping count and resident memory,
 * then returns; weft_runtime_destroy cancels every sleeper.  Checks: all N
 * were alive at once, every one returned ECANCELED exactly once, the mapping
 * count stayed under vm.max_map_count.
 *
 * Usage: stress_million [--tasks N] [--workers W] [--seed N]
 */
#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>
#include <weft.h>

#include "stress_common.h"

static unsigned long long ntasks = 1000000, workers = 2, seed = 1;
static _Atomic unsigned long long parked, cancelled;

static int sleeper(void *arg)
{
    (void)arg;
    atomic_fetch_add(&parked, 1);
    int rc = weft_sleep(3600ull * 1000000000ull);
    STRESS_CHECK(rc == ECANCELED);
    atomic_fetch_add(&cancelled, 1);
    return 0;
}

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    long n = 0;
    for (int c; (c = fgetc(f)) != EOF;) n += c == '\n';
    fclose(f);
    return n;
}

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

static long rss_before, rss_after, maps;

static int root(void *arg)
{
    (void)arg;
    rss_before = rss_kib();
    for (unsigned long long i = 0; i < ntasks; i++) STRESS_CHECK(weft_spawn(NULL, sleeper, NULL) == 0);
    while (atomic_load(&parked) < ntasks) STRESS_CHECK(weft_sleep(1000000) == 0);
    rss_after = rss_kib();
    maps = count_maps();
    return 0;
}

int main(int argc, char **argv)
{
    struct stress_opt opts[] = {{"--tasks", &ntasks}, {"--workers", &workers}, {"--seed", &seed}};
    stress_parse(argc, argv, opts, sizeof opts / sizeof opts[0]);
    weft_options o;
    weft_options_init(&o);
    o.workers = (unsigned)workers;
    weft_runtime *rt;
    STRESS_CHECK(weft_runtime_create(&rt, &o) == 0);
    uint64_t t0 = weft_now();
    int st = -1;
    STRESS_CHECK(weft_runtime_run(rt, root, NULL, &st) == 0 && st == 0);
    uint64_t t1 = weft_now();
    STRESS_CHECK(weft_runtime_destroy(rt) == 0);
    uint64_t t2 = weft_now();
    STRESS_CHECK(atomic_load(&cancelled) == ntasks);
    long limit = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &limit) != 1) limit = 65530;
        fclose(f);
    }
    STRESS_CHECK(maps > 0 && maps < limit);
    printf("stress_million: %llu tasks alive at once on %llu workers; %ld mappings (limit %ld); "
           "RSS %.2f KiB per parked task; spawn+park %.0f ms, cancel+join %.0f ms\n",
           ntasks, workers, maps, limit, (double)(rss_after - rss_before) / (double)ntasks,
           (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6);
    return 0;
}
