/*
 * cancel: the cost of cancellation.
 *   check      weft_token_is_cancelled on a live token (per check)
 *   child      weft_token_create with a parent, then unref (per child)
 *   cancel_1m  1M tasks parked in a group (sleeping until cancelled):
 *              weft_group_cancel + weft_group_wait, in ms, on 1 and 2 workers
 * Peer: Go's context package (bench/go/cancel.go).
 */
#include <errno.h>
#include <stdatomic.h>
#include <weft.h>

#include "bench.h"

static long nparked;
static _Atomic long entered;

static void bench_check(void)
{
    weft_token *t;
    weft_token_create(&t, NULL);
    long n = bench_quick ? 1000000 : 200000000;
    unsigned sink = 0;
    bench_clock c = bench_start();
    for (long i = 0; i < n; i++) sink += weft_token_is_cancelled(t);
    bench_report(c, "cancel", "check", "weft", (double)n, 1, "ns", "-");
    if (sink) abort();
    weft_token_unref(t);
}

static void bench_child(void)
{
    weft_token *p, *k;
    weft_token_create(&p, NULL);
    long n = bench_quick ? 10000 : 2000000;
    bench_clock c = bench_start();
    for (long i = 0; i < n; i++) {
        weft_token_create(&k, p);
        weft_token_unref(k);
    }
    bench_report(c, "cancel", "child", "weft", (double)n, 1, "ns", "-");
    weft_token_unref(p);
}

static int parked(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&entered, 1, memory_order_relaxed);
    return weft_sleep(UINT64_MAX) == ECANCELED ? 0 : 1;
}

static int root(void *arg)
{
    const char *params = arg;
    weft_group *g;
    atomic_store(&entered, 0);
    if (weft_group_create(&g)) abort();
    for (long i = 0; i < nparked; i++)
        if (weft_group_spawn(g, parked, NULL)) abort();
    while (atomic_load(&entered) < nparked) weft_sleep(1000000);
    weft_sleep(2000000); /* the last ones finish parking */
    bench_clock c = bench_start();
    weft_group_cancel(g);
    int rc = weft_group_wait(g);
    bench_report(c, "cancel", "cancel_1m", "weft", 1, 1e6, "ms", params);
    if (rc) abort();
    weft_group_destroy(g);
    return 0;
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    nparked = bench_quick ? 10000 : 1000000;
    for (int r = 0; r < bench_reps; r++) {
        bench_check();
        bench_child();
    }
    bench_on_1_and_2_workers(root);
    return 0;
}
