/*
 * weft tasks: green threads with their own stack, run by the workers of a
 * runtime.  Scheduling is cooperative: a task runs until it blocks, yields,
 * sleeps or returns.
 *
 * Checkpoints.  weft_join, weft_yield and weft_sleep* are checkpoints: when
 * the calling task is cancelled (its runtime is being destroyed) they return
 * ECANCELED at entry with no effect, and a blocked call either completes or is
 * cancelled, never both.
 *
 * Thread-locals.  A task may resume on another worker pthread after any
 * checkpoint; never keep the address of a thread-local variable (errno
 * included) across one.  A task that changes the floating-point control words
 * must restore them before its next checkpoint: they are not switched.
 */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Spawns fn(arg) as a new task of the calling task's runtime.  The new task
 * runs next on this worker once the caller blocks (it displaces the previous
 * occupant of the worker's next slot to the stealable queue, where other
 * workers leave it while this worker keeps switching or queueing tasks, up
 * to 1 ms (up to 16 ms for a displaced task that ran before, while such
 * steals do not pay), or for 50-120 us when the caller runs on without
 * either).
 * t: receives the handle (join it or detach it); NULL for a detached task.
 * Returns 0; EINVAL (fn NULL); ENOMEM; EPERM on a plain pthread (use
 * weft_runtime_spawn); ECANCELED when the runtime is being destroyed.
 * Task only; not a checkpoint.
 */
WEFT_API int weft_spawn(weft_task **t, weft_fn fn, void *arg);

/*
 * Waits for task t to return, stores its return value in *status (if
 * non-NULL) and releases the handle.  One join per handle.
 * Returns 0; EINVAL (t NULL, t detached, or another caller is already
 * joining t); EDEADLK (t is the caller); ECANCELED when the caller is
 * cancelled before t returned: then t stays joinable.  On any error the
 * handle stays valid.
 * Tasks and plain pthreads; checkpoint.  Memory: everything t wrote before
 * returning is visible to the caller after a successful join.
 */
WEFT_API int weft_join(weft_task *t, int *status);

/*
 * Releases the handle without waiting: the task's resources are freed when
 * it returns.  t NULL is ignored.  The handle is gone afterwards: using it
 * again (a second detach, a join) is undefined.  Detaching a task that
 * another caller is joining aborts with a message.
 * Any thread; not a checkpoint.
 */
WEFT_API void weft_task_detach(weft_task *t);

/*
 * Lets other runnable tasks of this worker run; the caller goes to the back
 * of the worker's yield queue.  Returns 0, or ECANCELED when the caller is
 * cancelled.  On a plain pthread it calls sched_yield() and returns 0.
 * Checkpoint.
 */
WEFT_API int weft_yield(void);

/* The calling task, or NULL on a plain pthread.  Never a checkpoint. */
WEFT_API weft_task *weft_current(void);

#ifdef __cplusplus
}
#endif
#endif
