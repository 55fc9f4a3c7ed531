/*
 * Chase-Lev work-stealing deque of task pointers (see deque.c).
 *
 * Concurrency table:
 *   push, take      owner worker only; never concurrent with each other
 *   steal           any thread, concurrent with everything
 *   size            any thread; a racy hint (exact only for the owner)
 *   init, destroy   no concurrent operation
 */
#ifndef WEFT_SCHED_DEQUE_H
#define WEFT_SCHED_DEQUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../internal.h"

typedef struct weft__dq_array {
    int64_t mask;                    /* capacity - 1; capacity is a power of two */
    struct weft__dq_array *retired;  /* older, smaller arrays; owner only */
    _Atomic(void *) slot[];          /* relaxed; published by the fences below */
} weft__dq_array;

typedef struct weft__deque {
    _Alignas(WEFT_CACHELINE) _Atomic int64_t top;    /* thieves CAS it */
    _Alignas(WEFT_CACHELINE) _Atomic int64_t bottom; /* owner writes it */
    _Atomic(weft__dq_array *) array;                 /* owner replaces it */
    int64_t top_seen; /* owner only: a value of top it read (invariant 6) */
} weft__deque;

#define WEFT__DQ_EMPTY ((void *)0)
#define WEFT__DQ_ABORT ((void *)1)

int weft__dq_init(weft__deque *q, size_t capacity_log2);
void weft__dq_destroy(weft__deque *q);
/* Owner: pushes x at the bottom.  Returns ENOMEM only if growing failed. */
int weft__dq_push(weft__deque *q, void *x);
/* Owner: pops the bottom (LIFO); WEFT__DQ_EMPTY when empty. */
void *weft__dq_take(weft__deque *q);
/* Owner: takes the k entries at the bottom with one fence, into out[] from
 * the oldest (out[0]) to the newest (out[k - 1]); returns k, or 0 (nothing
 * taken) unless more than k entries lie above top, so a thief racing for
 * the top never wants one of them (invariant 7). */
size_t weft__dq_take_batch(weft__deque *q, void **out, size_t k);
/* Owner of a deque that no thief ever touches (a runtime of one worker):
 * the same pop, without the fence and the CAS that order a take against
 * thieves.  Never mixed with steals on the same deque. */
void *weft__dq_take_solo(weft__deque *q);
/* The owner may mark an entry by setting its bit 0 (entries are pointers
 * aligned to 2 or more); the deque keeps the mark and returns it.  Other
 * low bits are the owner's too: the deque keeps them and ignores them. */
#define WEFT__DQ_MARKED ((void *)2)
/* Anyone: takes the top (FIFO); WEFT__DQ_EMPTY, or WEFT__DQ_ABORT on a
 * lost race.  A marked top entry is taken only when take_marked; otherwise
 * it stays, *seen_top gets its index, *seen (when not NULL) the entry as
 * read, and the result is WEFT__DQ_MARKED.
 * top only grows (invariant 1), and the entry at index top leaves only
 * when top grows past it, so the same index seen twice is the same entry,
 * there all along: unlike the entry's value, which the owner may push
 * again after taking it (a pooled task gets the same address). */
void *weft__dq_steal_if(weft__deque *q, bool take_marked, int64_t *seen_top, void **seen);
/* steal_if taking any entry, marked or not. */
static inline void *weft__dq_steal(weft__deque *q)
{
    return weft__dq_steal_if(q, true, NULL, NULL);
}

/* Owner: bottom as it left it. */
static inline int64_t weft__dq_bottom_owner(weft__deque *q)
{
    return atomic_load_explicit(&q->bottom, memory_order_relaxed);
}

static inline int64_t weft__dq_size(weft__deque *q)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    return b - t;
}

/* Owner: an upper bound of the size, without reading top (which thieves
 * write: a load of it is a cache miss whenever one has stolen since).
 * Never an underestimate: top only grows (invariant 6). */
static inline int64_t weft__dq_size_owner(weft__deque *q)
{
    return atomic_load_explicit(&q->bottom, memory_order_relaxed) - q->top_seen;
}

/* Owner: the entry the next take would return, or NULL; a guess (a thief
 * may take it first), for prefetching only: never dereference it. */
static inline void *weft__dq_peek(weft__deque *q)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed) - 1;
    if (b < q->top_seen) return NULL;
    weft__dq_array *a = atomic_load_explicit(&q->array, memory_order_relaxed);
    return atomic_load_explicit(&a->slot[b & a->mask], memory_order_relaxed);
}

#endif
