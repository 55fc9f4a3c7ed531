/*
 * The injector: a global MPMC queue of runnable tasks for wake-ups and spawns
 * from outside the pool (plain pthreads, other runtimes).  Built on liburcu's
 * wait-free concurrent queue (cds_wfcq).
 *
 * Concurrency table:
 *   push          any thread, concurrent with everything (wait-free)
 *   pop           any thread; dequeuers exclude each other with a try-lock, so
 *                 a pop that finds the lock taken returns NULL at once (the
 *                 holder is draining the queue)
 *   empty         any thread; a hint
 *   init, fini    no concurrent operation
 */
#ifndef WEFT_SCHED_INJECT_H
#define WEFT_SCHED_INJECT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <urcu/wfcqueue.h>

#include "../internal.h"

typedef struct weft__inject {
    _Alignas(WEFT_CACHELINE) struct __cds_wfcq_head head;
    _Atomic bool busy; /* dequeue try-lock */
    _Alignas(WEFT_CACHELINE) struct cds_wfcq_tail tail;
} weft__inject;

void weft__inject_init(weft__inject *q);
void weft__inject_push(weft__inject *q, struct cds_wfcq_node *n);
/* Up to max nodes into out[]; returns how many. */
size_t weft__inject_pop(weft__inject *q, struct cds_wfcq_node **out, size_t max);
bool weft__inject_empty(weft__inject *q);

#endif
