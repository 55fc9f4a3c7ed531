/*
 * weft runtime: a pool of worker pthreads running green tasks.
 *
 * A runtime owns N worker pthreads, each with a work-stealing run queue, a
 * timer heap and a pool of task stacks.  Tasks are spawned from inside other
 * tasks (weft_spawn) or from any pthread (weft_runtime_spawn).
 */
#ifndef WEFT_RUNTIME_H
#define WEFT_RUNTIME_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default stack reservation per task (committed lazily, page by page). */
#define WEFT_DEFAULT_STACK_SIZE ((size_t)64 * 1024)
/* Default number of stacks that get a guard page (two mappings each). */
#define WEFT_DEFAULT_GUARD_STACKS ((size_t)16384)
/* Default time an idle worker spins looking for work before it parks. */
#define WEFT_DEFAULT_SPIN_NS ((uint64_t)50 * 1000)

/*
 * Runtime options.  Always start from weft_options_init(); fields may be
 * added at the end in later versions.
 *
 * workers       number of worker pthreads; 0 means the number of online CPUs.
 *               At most 1024.
 * stack_size    bytes reserved for each task's stack, rounded up to whole
 *               pages; at least 16 KiB.  Memory is committed only as the task
 *               touches it.  Under AddressSanitizer the default is 4x larger.
 * guard_stacks  how many stacks (over the life of the runtime) get a
 *               PROT_NONE guard page below them.  Each guarded stack costs two
 *               kernel mappings and vm.max_map_count is 65530 by default, so
 *               one million tasks cannot all be guarded.  Stacks past this
 *               budget are protected by a canary word at their lowest
 *               address and a stack-pointer bound, both checked at every
 *               switch out of the task.  Either way an overflow is reported
 *               ("weft: task stack overflow") and the process aborts.
 * spin_ns       how long a worker that ran out of work keeps looking (stealing,
 *               polling the injector) before it parks on a futex.  Waking a
 *               parked worker costs tens of microseconds on virtual machines;
 *               a spinning one picks work up in well under a microsecond.
 *               0 parks at once.
 */
typedef struct weft_options {
    unsigned workers;
    size_t stack_size;
    size_t guard_stacks;
    uint64_t spin_ns;
} weft_options;

/* Fills *opt with the defaults above.  Any thread. */
WEFT_API void weft_options_init(weft_options *opt);

/*
 * Creates a runtime and starts its workers.
 * opt: NULL for the defaults.
 * Returns 0; EINVAL (rt NULL, workers > 1024, stack_size too small or too
 * large); ENOMEM; EAGAIN (a worker pthread could not be created).  On
 * failure nothing is left running.  Any thread (not a checkpoint).
 */
WEFT_API int weft_runtime_create(weft_runtime **rt, const weft_options *opt);

/*
 * Runs fn(arg) as a root task of rt and blocks the calling pthread until it
 * returns; *status (if non-NULL) receives its return value.
 * Returns 0; EINVAL; ENOMEM; EPERM when called from a task of rt itself (it
 * would block a worker: spawn and join instead).  Plain pthreads only.
 */
WEFT_API int weft_runtime_run(weft_runtime *rt, weft_fn fn, void *arg, int *status);

/*
 * Spawns fn(arg) as a task of rt from any thread (a plain pthread, a task of
 * this or another runtime).  *t receives a handle to join or detach; pass
 * t == NULL for a detached task.  The task becomes runnable at once through
 * the runtime's injector; at most one idle worker is woken for it.
 * Returns 0; EINVAL; ENOMEM; ECANCELED when rt is being destroyed.  Never
 * blocks; not a checkpoint.
 */
WEFT_API int weft_runtime_spawn(weft_runtime *rt, weft_task **t, weft_fn fn, void *arg);

/*
 * Shuts rt down: every task still alive is cancelled (its blocking calls
 * return ECANCELED, now and at every later checkpoint), the call waits for all
 * of them to return, stops the workers and frees every stack and task.  Task
 * handles of rt that were never joined become invalid.  A task that never
 * reaches a checkpoint delays this call until it returns.
 * Returns 0; EINVAL (rt NULL); EPERM when called from a task of rt.
 * Plain pthreads, or a task of another runtime (which then blocks its worker).
 */
WEFT_API int weft_runtime_destroy(weft_runtime *rt);

/*
 * weft_runtime_create + weft_runtime_run + weft_runtime_destroy.
 * Returns what the first failing step returned, else 0.
 */
WEFT_API int weft_run(const weft_options *opt, weft_fn fn, void *arg, int *status);

/* The runtime of the calling task, or NULL on a plain pthread. */
WEFT_API weft_runtime *weft_runtime_current(void);

/* Number of workers of rt. */
WEFT_API unsigned weft_runtime_workers(const weft_runtime *rt);

#ifdef __cplusplus
}
#endif
#endif
