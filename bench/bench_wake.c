/*
 * wake: a task posted to a runtime from a plain pthread.
 *   latency_spin    post the next task as soon as the previous one ran, so a
 *                   worker is still spinning: p50 and p99, in ns
 *   latency_parked  wait 2 ms between posts, longer than the spin window, so
 *                   every worker has parked: p50 and p99, in ns
 *   inject          post 1M detached tasks back to back; ns per task until
 *                   all ran
 * Peer (pthread): a thread blocked on a futex, woken by another (p50, p99).
 */
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <weft.h>

#include "bench.h"

static _Atomic uint64_t ran_at;

static int stamp(void *arg)
{
    (void)arg;
    atomic_store_explicit(&ran_at, weft_now(), memory_order_release);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report_pcts(const char *metric, const char *impl, uint64_t *lat, int n)
{
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    char m[64];
    snprintf(m, sizeof m, "%s_p50", metric);
    bench_value("wake", m, impl, (double)lat[n / 2], "ns", "-");
    snprintf(m, sizeof m, "%s_p99", metric);
    bench_value("wake", m, impl, (double)lat[(n * 99) / 100], "ns", "-");
}

static void pause_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

static void weft_latency(weft_runtime *rt, int n, uint64_t gap, const char *metric)
{
    uint64_t *lat = malloc(sizeof *lat * (size_t)n);
    for (int i = 0; i < n; i++) {
        if (gap) pause_ns(gap);
        atomic_store(&ran_at, 0);
        uint64_t t0 = weft_now();
        weft_runtime_spawn(rt, NULL, stamp, NULL);
        uint64_t t1;
        while ((t1 = atomic_load_explicit(&ran_at, memory_order_acquire)) == 0) {
        }
        lat[i] = t1 - t0;
    }
    report_pcts(metric, "weft", lat, n);
    free(lat);
}

static _Atomic long counter;
static int count(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    return 0;
}

static void weft_inject(weft_runtime *rt, long n)
{
    atomic_store(&counter, 0);
    bench_clock c = bench_start();
    for (long i = 0; i < n; i++) weft_runtime_spawn(rt, NULL, count, NULL);
    while (atomic_load(&counter) < n) {
    }
    bench_report(c, "wake", "inject", "weft", (double)n, 1, "ns", "-");
}

/* pthread peer: a waiter blocked on a futex. */
static _Atomic uint32_t fword;
static _Atomic uint64_t pt_woke;
static atomic_bool pt_stop;

static void *pt_waiter(void *arg)
{
    (void)arg;
    for (;;) {
        while (atomic_load(&fword) == 0)
            syscall(SYS_futex, &fword, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
        if (atomic_load(&pt_stop)) return NULL;
        atomic_store(&fword, 0);
        atomic_store_explicit(&pt_woke, weft_now(), memory_order_release);
    }
}

static void pthread_latency(int n)
{
    pthread_t th;
    atomic_store(&fword, 0);
    atomic_store(&pt_stop, false);
    pthread_create(&th, NULL, pt_waiter, NULL);
    uint64_t *lat = malloc(sizeof *lat * (size_t)n);
    for (int i = 0; i < n; i++) {
        pause_ns(2000000);
        atomic_store(&pt_woke, 0);
        uint64_t t0 = weft_now();
        atomic_store(&fword, 1);
        syscall(SYS_futex, &fword, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        uint64_t t1;
        while ((t1 = atomic_load_explicit(&pt_woke, memory_order_acquire)) == 0) {
        }
        lat[i] = t1 - t0;
    }
    report_pcts("latency_parked", "pthread", lat, n);
    atomic_store(&pt_stop, true);
    atomic_store(&fword, 1);
    syscall(SYS_futex, &fword, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    pthread_join(th, NULL);
    free(lat);
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    weft_options o;
    weft_options_init(&o);
    o.workers = 2;
    for (int r = 0; r < bench_reps; r++) {
        weft_runtime *rt;
        weft_runtime_create(&rt, &o);
        weft_latency(rt, bench_quick ? 200 : 20000, 0, "latency_spin");
        weft_latency(rt, bench_quick ? 20 : 300, 2000000, "latency_parked");
        weft_inject(rt, bench_quick ? 10000 : 1000000);
        weft_runtime_destroy(rt);
        pthread_latency(bench_quick ? 20 : 300);
    }
    return 0;
}
