/* Shared helpers of the Criterion suites. */
#ifndef WEFT_TEST_HELPERS_H
#define WEFT_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <weft.h>

/* Runs fn(arg) as the root task of a fresh runtime with `workers` workers and
 * returns its status; asserts that create, run and destroy succeed. */
static inline int run_on(unsigned workers, weft_fn fn, void *arg)
{
    weft_options o;
    weft_options_init(&o);
    o.workers = workers;
    int status = -1;
    cr_assert_eq(weft_run(&o, fn, arg, &status), 0);
    return status;
}

/* Runs fn(arg) on a plain pthread and returns its status. */
struct on_thread_ {
    weft_fn fn;
    void *arg;
    int status;
};
static inline void *on_thread_main_(void *p)
{
    struct on_thread_ *o = p;
    o->status = o->fn(o->arg);
    return NULL;
}
static inline int run_on_pthread(weft_fn fn, void *arg)
{
    struct on_thread_ o = {fn, arg, -1};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, on_thread_main_, &o), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    return o.status;
}

static const unsigned worker_counts[] = {1, 2, 4, 8};
#define FOR_EACH_WORKERS(n)                                                                   \
    for (size_t i_ = 0; i_ < sizeof worker_counts / sizeof worker_counts[0]; i_++)             \
        for (unsigned n = worker_counts[i_], once_ = 1; once_; once_ = 0)

#endif
