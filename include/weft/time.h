/*
 * weft time: a monotonic clock and sleeping.  A sleeping task costs no CPU: it
 * waits in its worker's timer heap; the worker fires expired timers whenever it
 * schedules and parks no longer than its earliest deadline.
 */
#ifndef WEFT_TIME_H
#define WEFT_TIME_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CLOCK_MONOTONIC in nanoseconds.  Any thread; not a checkpoint. */
WEFT_API uint64_t weft_now(void);

/*
 * Blocks the caller for at least ns nanoseconds (never less).  A task parks;
 * a plain pthread blocks on a futex.
 * Returns 0; ECANCELED when the caller is cancelled before or during the
 * sleep.  Tasks and plain pthreads; checkpoint (also when ns == 0).
 */
WEFT_API int weft_sleep(uint64_t ns);

/* As weft_sleep, until weft_now() >= deadline_ns. */
WEFT_API int weft_sleep_until(uint64_t deadline_ns);

#ifdef __cplusplus
}
#endif
#endif
