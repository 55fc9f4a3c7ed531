/*
 * The injector, over liburcu's wfcqueue.
 *
 * Enqueue is wait-free (an xchg on the tail, then a store linking the old
 * tail).  Dequeuers must exclude each other (wfcqueue.h's mutual-exclusion
 * table): a try-lock flag does it, so a worker never waits for another
 * worker's dequeue; it finds work elsewhere.  We use the non-blocking
 * dequeue: when an enqueuer is between its xchg and its link store the queue
 * answers CDS_WFCQ_WOULDBLOCK and we stop (the enqueuer's wake-up call, which
 * follows its push, makes a worker look again).
 *
 * We call liburcu's library functions rather than its inline (_LGPL_SOURCE)
 * versions: ThreadSanitizer does not understand liburcu's own atomics, and
 * the release/acquire annotations below tell it what the queue orders (the
 * task's fields written before push are visible after pop).  This wrapper is
 * the only place that touches liburcu's queue.
 */
#include "inject.h"

#ifdef WEFT_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define TSAN_RELEASE(p) __tsan_release(p)
#define TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define TSAN_RELEASE(p) ((void)0)
#define TSAN_ACQUIRE(p) ((void)0)
#endif

void weft__inject_init(weft__inject *q)
{
    __cds_wfcq_init(&q->head, &q->tail);
    atomic_init(&q->busy, false);
}

void weft__inject_push(weft__inject *q, struct cds_wfcq_node *n)
{
    cds_wfcq_node_init(n);
    TSAN_RELEASE(n);
    cds_wfcq_enqueue(&q->head, &q->tail, n);
}

bool weft__inject_empty(weft__inject *q)
{
    return cds_wfcq_empty(&q->head, &q->tail);
}

size_t weft__inject_pop(weft__inject *q, struct cds_wfcq_node **out, size_t max)
{
    if (weft__inject_empty(q)) return 0;
    /* acquire: pairs with the release below of the previous holder, so its
     * dequeues are visible to ours. */
    if (atomic_exchange_explicit(&q->busy, true, memory_order_acquire)) return 0;
    size_t n = 0;
    while (n < max) {
        struct cds_wfcq_node *node = __cds_wfcq_dequeue_nonblocking(&q->head, &q->tail);
        if (node == NULL || node == CDS_WFCQ_WOULDBLOCK) break;
        TSAN_ACQUIRE(node);
        out[n++] = node;
    }
    atomic_store_explicit(&q->busy, false, memory_order_release);
    return n;
}
