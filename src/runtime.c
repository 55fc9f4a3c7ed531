/*
 * Runtime lifecycle: options, create (start workers), run, spawn from any
 * thread, destroy (cancel, drain, stop, free).
 *
 * Destroy, in order:
 *  1. cancelled = true.  From here every checkpoint of a task of this runtime
 *     returns ECANCELED and spawns are refused.
 *  2. Sweep every slot of the task struct pool (its slabs stay mapped until
 *     the pool goes; stack.c, invariants 2 and 4) and abort
 *     the waiter each blocked task published in its context with ECANCELED:
 *     sleeps, joins, group waits and every primitive alike.  A task that
 *     blocks later reads `cancelled` after publishing its waiter
 *     (weft__waiter_park): the store/sweep and publish/read pairs are
 *     seq_cst, so one side always sees the other.  Free slots hold NULL
 *     there (a waiter is retracted before its task can end).
 *  3. Wait until no task is alive.  Tasks are counted without a shared
 *     atomic on the spawn/exit path: each worker counts the tasks created
 *     and finished on it in owner-written counters, and spawns from outside
 *     the pool go to one atomic counter.  weft__live_tasks reads every
 *     `finished` first, then every `spawned`: a task counted as finished was
 *     spawned before that read, so it is counted as spawned too, and the
 *     difference is never below the true number of live tasks at the first
 *     read.  Once it reads 0 no task was alive at that moment, and none can
 *     appear: only a live task or an outside spawn (refused once cancelled)
 *     creates one.  Destroy polls (every millisecond): it is not a hot path,
 *     and this keeps two locked instructions off every task's life.
 *  4. stopping = true, wake every parked worker, join the pthreads.  Each
 *     worker finishes the bookkeeping of its last switch before it exits.
 *  5. Free the deques, timer heaps, and the stack slabs (which hold every
 *     task struct, joined or not).
 */

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"

#ifdef WEFT_TSAN
void *__tsan_get_current_fiber(void);
#endif

#define MAX_WORKERS 1024
#define MIN_STACK ((size_t)16 * 1024)
#define MAX_STACK ((size_t)1 << 30)

void weft_options_init(weft_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->workers = 0;
#ifdef WEFT_ASAN
    opt->stack_size = 4 * WEFT_DEFAULT_STACK_SIZE;
#else
    opt->stack_size = WEFT_DEFAULT_STACK_SIZE;
#endif
    opt->guard_stacks = WEFT_DEFAULT_GUARD_STACKS;
    opt->spin_ns = WEFT_DEFAULT_SPIN_NS;
}

unsigned weft_runtime_workers(const weft_runtime *rt)
{
    return rt ? rt->nworkers : 0;
}

static void *worker_main(void *arg)
{
    weft__worker *w = arg;
    w->altstack = weft__stack_altstack_on();
#ifdef WEFT_ASAN
    pthread_attr_t attr;
    void *lo;
    size_t size;
    WEFT_CHECK(pthread_getattr_np(pthread_self(), &attr));
    WEFT_CHECK(pthread_attr_getstack(&attr, &lo, &size));
    pthread_attr_destroy(&attr);
    w->sched_stack_lo = lo;
    w->sched_stack_size = size;
#endif
#ifdef WEFT_TSAN
    w->tsan_fiber = __tsan_get_current_fiber();
#endif
    weft__worker_loop(w);
    weft__stack_altstack_off(w->altstack);
    return NULL;
}

static void wake_all_parked(weft_runtime *rt)
{
    WEFT_CHECK(pthread_mutex_lock(&rt->idle_lock));
    while (rt->idle_list) {
        weft__worker *w = rt->idle_list;
        rt->idle_list = w->idle_next;
        w->idle_next = NULL;
        atomic_fetch_sub_explicit(&rt->nr_idle, 1, memory_order_seq_cst);
        atomic_fetch_add_explicit(&rt->nr_spinning, 1, memory_order_seq_cst); /* invariant 3 */
        atomic_store_explicit(&w->park_word, 1, memory_order_release);
        weft__futex_wake(&w->park_word, 1);
    }
    WEFT_CHECK(pthread_mutex_unlock(&rt->idle_lock));
}

static void stop_workers(weft_runtime *rt, unsigned started)
{
    atomic_store_explicit(&rt->stopping, true, memory_order_seq_cst);
    wake_all_parked(rt);
    for (unsigned i = 0; i < started; i++) WEFT_CHECK(pthread_join(rt->workers[i].thread, NULL));
}

static void free_runtime(weft_runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        weft__worker *w = &rt->workers[i];
        weft__dq_destroy(&w->dq);
        weft__timers_fini(&w->timers);
    }
    weft__pool_destroy(&rt->task_pool);
    weft__pool_destroy(&rt->stack_pool);
    pthread_mutex_destroy(&rt->idle_lock);
    free(rt->workers);
    free(rt);
}

/* Zeroed memory starting on a cache line.  The runtime and worker structs
 * keep their hot fields on lines of their own (_Alignas members), which
 * only holds if the block itself is line-aligned; calloc's 16 bytes put
 * rt->cancelled, read by every lock and channel call, on the line where
 * idle workers count themselves in and out (measured: a third of a
 * contended lock benchmark's samples on that one load). */
static void *zalloc_lines(size_t size)
{
    size = WEFT__LINES(size);
    void *p = aligned_alloc(WEFT_CACHELINE, size);
    if (p) memset(p, 0, size);
    return p;
}

int weft_runtime_create(weft_runtime **out, const weft_options *opt_in)
{
    if (!out) return EINVAL;
    weft_options opt;
    if (opt_in)
        opt = *opt_in;
    else
        weft_options_init(&opt);
    if (opt.workers > MAX_WORKERS || opt.stack_size < MIN_STACK || opt.stack_size > MAX_STACK)
        return EINVAL;
    unsigned n = opt.workers;
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (unsigned)(c < MAX_WORKERS ? c : MAX_WORKERS) : 1;
    }
    weft_runtime *rt = zalloc_lines(sizeof *rt);
    if (!rt) return ENOMEM;
    rt->workers = zalloc_lines(n * sizeof *rt->workers);
    if (!rt->workers) {
        free(rt);
        return ENOMEM;
    }
    rt->opt = opt;
    rt->nworkers = n;
    weft__inject_init(&rt->inject);
    if (weft__stack_pool_init(&rt->stack_pool, opt.stack_size, opt.guard_stacks) != 0) {
        free(rt->workers);
        free(rt);
        return ENOMEM;
    }
    if (weft__slot_pool_init(&rt->task_pool, sizeof(weft_task)) != 0) {
        weft__pool_destroy(&rt->stack_pool);
        free(rt->workers);
        free(rt);
        return ENOMEM;
    }
    WEFT_CHECK(pthread_mutex_init(&rt->idle_lock, NULL));
    unsigned ready = 0;
    int rc = 0;
    for (; ready < n; ready++) {
        weft__worker *w = &rt->workers[ready];
        w->rt = rt;
        w->id = ready;
        w->rng = 0x9E3779B97F4A7C15ULL * (ready + 1);
        w->solo = n == 1;
        weft__timers_init(&w->timers);
        if (weft__dq_init(&w->dq, 8) != 0) {
            rc = ENOMEM;
            break;
        }
    }
    if (rc) {
        rt->nworkers = ready;
        free_runtime(rt);
        return rc;
    }
    weft__stack_install_handler();
    unsigned started = 0;
    for (; started < n; started++) {
        if (pthread_create(&rt->workers[started].thread, NULL, worker_main, &rt->workers[started])) {
            stop_workers(rt, started);
            free_runtime(rt);
            return EAGAIN;
        }
    }
    *out = rt;
    return 0;
}

int weft_runtime_spawn(weft_runtime *rt, weft_task **out, weft_fn fn, void *arg)
{
    if (!rt || !fn) return EINVAL;
    return weft__spawn(rt, fn, arg, out, NULL);
}

int weft_runtime_run(weft_runtime *rt, weft_fn fn, void *arg, int *status)
{
    if (!rt || !fn) return EINVAL;
    weft__worker *w = weft__worker_self();
    if (w && w->rt == rt) return EPERM;
    weft_task *t;
    int rc = weft_runtime_spawn(rt, &t, fn, arg);
    if (rc) return rc;
    return weft_join(t, status);
}

uint64_t weft__live_tasks(weft_runtime *rt)
{
    uint64_t finished = 0, spawned = 0;
    /* acquire: pairs with the release stores of the counters (task.c). */
    for (unsigned i = 0; i < rt->nworkers; i++)
        finished += atomic_load_explicit(&rt->workers[i].finished, memory_order_acquire);
    for (unsigned i = 0; i < rt->nworkers; i++)
        spawned += atomic_load_explicit(&rt->workers[i].spawned, memory_order_acquire);
    spawned += atomic_load_explicit(&rt->spawned_outside, memory_order_seq_cst);
    WEFT_ASSERT(spawned >= finished);
    return spawned - finished;
}

static void abort_blocked(void *slot, void *arg)
{
    (void)arg;
    weft__cctx_abort_blocked(&((weft_task *)slot)->cctx);
}

int weft_runtime_destroy(weft_runtime *rt)
{
    if (!rt) return EINVAL;
    weft__worker *self = weft__worker_self();
    if (self && self->rt == rt) return EPERM;
    /* seq_cst: the Dekker pair with task_finished (task.c). */
    atomic_store_explicit(&rt->cancelled, true, memory_order_seq_cst);
    /* Every task blocked before the store above has its waiter published
     * in its context: abort them all.  A task that blocks later sees
     * `cancelled` in weft__waiter_park (a Dekker pair: seq_cst both). */
    weft__pool_foreach(&rt->task_pool, abort_blocked, NULL);
    while (weft__live_tasks(rt) != 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    stop_workers(rt, rt->nworkers);
    free_runtime(rt);
    return 0;
}

int weft_run(const weft_options *opt, weft_fn fn, void *arg, int *status)
{
    if (!fn) return EINVAL;
    weft_runtime *rt;
    int rc = weft_runtime_create(&rt, opt);
    if (rc) return rc;
    rc = weft_runtime_run(rt, fn, arg, status);
    int rc2 = weft_runtime_destroy(rt);
    return rc ? rc : rc2;
}
