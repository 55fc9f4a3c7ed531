/*
 * Chase-Lev work-stealing deque.
 *
 * Algorithm: D. Chase and Y. Lev, "Dynamic Circular Work-Stealing Deque",
 * SPAA 2005, with the C11 memory orderings proved correct by N. M. Lê,
 * A. Pop, A. Cohen and F. Zappa Nardelli, "Correct and Efficient
 * Work-Stealing for Weak Memory Models", PPoPP 2013 (their Figure 1).
 *
 * The owner pushes and takes at `bottom`; thieves take at `top`.  Entries
 * live in [top, bottom) of a circular array.
 *
 * Invariants:
 *  1. top only grows, and only by a successful CAS (by a thief, or by the
 *     owner taking the last entry).
 *  2. Only the owner writes bottom and array.
 *  3. An entry at index i is written before bottom is published past i
 *     (release fence in push) and read by a thief only after it read a
 *     bottom > i (acquire), so a thief never reads an unwritten slot.
 *  4. When top == bottom - 1 both the owner (take) and thieves may want the
 *     last entry; both CAS top, so exactly one gets it.
 *  5. Arrays replaced by growth are kept (linked through `retired`) until the
 *     deque is destroyed: a thief that loaded the old array pointer may still
 *     read from it, and its entries for [top, bottom) are identical in both.
 *     Growth doubles, so retired arrays cost at most as much as the live one.
 *     (Rejected: reclaiming them with liburcu QSBR.  Deques grow only a few
 *     times in a runtime's life; deferring frees to destroy costs less memory
 *     than a grace-period machinery costs code on the steal path.)
 *  6. top_seen, the owner's own copy of a top it read (in take, or in push
 *     when the array looked full), is never above top (invariant 1), so
 *     bottom - top_seen never underestimates the size: push re-reads top
 *     only when the array looks full by it, and the owner's size and peek
 *     never read top at all.  Lê et al.'s push reads top (acquire) every
 *     time; top_seen came from such a read, so the slot push overwrites
 *     (index b - capacity < top_seen) was stolen before that read, and the
 *     thief's read of it happens before the overwrite, as in their proof.
 *     (With a thief stealing while the owner spawns, the per-push read of
 *     top was a cache miss each time.)
 *  7. take_batch lowers bottom by k at once (b -> nb = b - k), fences, and
 *     reads top t.  With t < nb the k entries [nb, b) are the owner's: a
 *     thief whose fence follows the owner's reads bottom nb and takes an
 *     index below it; one whose fence precedes it read top before that
 *     fence, so its index is at most t < nb.  Otherwise it puts bottom back
 *     and takes nothing (a thief that read nb meanwhile found top >= nb,
 *     nothing to take).  This is take's argument (section 3 of Lê et al.)
 *     for a range instead of one entry, without the last-entry race, which
 *     t < nb rules out.
 *
 * Ordering: take stores bottom then loads top with a seq_cst fence between;
 * steal loads top then bottom with a seq_cst fence between.  This is the
 * store-load (Dekker) pattern that makes the owner and a thief agree about
 * the last entry (Lê et al., section 3).
 */
#include <stdlib.h>
#include <errno.h>

#include "deque.h"

static weft__dq_array *dq_array_new(int64_t cap)
{
    weft__dq_array *a = malloc(sizeof *a + (size_t)cap * sizeof(a->slot[0]));
    if (!a) return NULL;
    a->mask = cap - 1;
    a->retired = NULL;
    return a;
}

int weft__dq_init(weft__deque *q, size_t capacity_log2)
{
    weft__dq_array *a = dq_array_new((int64_t)1 << capacity_log2);
    if (!a) return ENOMEM;
    atomic_init(&q->top, 0);
    atomic_init(&q->bottom, 0);
    atomic_init(&q->array, a);
    q->top_seen = 0;
    return 0;
}

void weft__dq_destroy(weft__deque *q)
{
    weft__dq_array *a = atomic_load_explicit(&q->array, memory_order_relaxed);
    while (a) {
        weft__dq_array *r = a->retired;
        free(a);
        a = r;
    }
}

static weft__dq_array *dq_grow(weft__deque *q, weft__dq_array *a, int64_t t, int64_t b)
{
    weft__dq_array *n = dq_array_new((a->mask + 1) * 2);
    if (!n) return NULL;
    for (int64_t i = t; i < b; i++) {
        void *x = atomic_load_explicit(&a->slot[i & a->mask], memory_order_relaxed);
        atomic_store_explicit(&n->slot[i & n->mask], x, memory_order_relaxed);
    }
    n->retired = a; /* invariant 5 */
    /* release: publishes the copied entries; pairs with the consume/acquire
     * load of array in steal(). */
    atomic_store_explicit(&q->array, n, memory_order_release);
    return n;
}

int weft__dq_push(weft__deque *q, void *x)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    weft__dq_array *a = atomic_load_explicit(&q->array, memory_order_relaxed);
    /* Invariant 6: a full-looking array by the remembered top is only then
     * checked against the real one. */
    if (WEFT_UNLIKELY(b - q->top_seen > a->mask)) {
        int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
        q->top_seen = t;
        if (b - t > a->mask) {
            a = dq_grow(q, a, t, b);
            if (!a) return ENOMEM;
        }
    }
    atomic_store_explicit(&a->slot[b & a->mask], x, memory_order_relaxed);
    /* release: publishes the entry (and the task it points to) before the new
     * bottom (invariant 3); pairs with the acquire load of bottom in steal().
     * Lê et al. use a release fence and a relaxed store; a release store
     * orders the same and ThreadSanitizer, which ignores fences, sees it. */
    atomic_store_explicit(&q->bottom, b + 1, memory_order_release);
    return 0;
}

void *weft__dq_take(weft__deque *q)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed) - 1;
    weft__dq_array *a = atomic_load_explicit(&q->array, memory_order_relaxed);
    atomic_store_explicit(&q->bottom, b, memory_order_relaxed);
    /* seq_cst: orders the bottom store before the top load; pairs with the
     * fence in steal() (invariant 4). */
    weft__fence_sc();
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    q->top_seen = t;
    void *x = WEFT__DQ_EMPTY;
    if (t <= b) {
        x = atomic_load_explicit(&a->slot[b & a->mask], memory_order_relaxed);
        if (t == b) {
            /* Last entry: race the thieves for it (invariant 4). */
            if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1, memory_order_seq_cst,
                                                         memory_order_relaxed))
                x = WEFT__DQ_EMPTY;
            atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
        }
    } else {
        atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
    }
    return x;
}

size_t weft__dq_take_batch(weft__deque *q, void **out, size_t k)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    int64_t nb = b - (int64_t)k;
    weft__dq_array *a = atomic_load_explicit(&q->array, memory_order_relaxed);
    atomic_store_explicit(&q->bottom, nb, memory_order_relaxed);
    /* seq_cst: as in take (invariant 7). */
    weft__fence_sc();
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    q->top_seen = t;
    if (t >= nb) {
        atomic_store_explicit(&q->bottom, b, memory_order_relaxed);
        return 0;
    }
    for (size_t i = 0; i < k; i++)
        out[i] = atomic_load_explicit(&a->slot[(nb + (int64_t)i) & a->mask], memory_order_relaxed);
    return k;
}

void *weft__dq_take_solo(weft__deque *q)
{
    /* No thief: top never moves, and bottom is ours alone. */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed) - 1;
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    q->top_seen = t;
    if (t > b) return WEFT__DQ_EMPTY;
    weft__dq_array *a = atomic_load_explicit(&q->array, memory_order_relaxed);
    void *x = atomic_load_explicit(&a->slot[b & a->mask], memory_order_relaxed);
    atomic_store_explicit(&q->bottom, b, memory_order_relaxed);
    return x;
}

void *weft__dq_steal_if(weft__deque *q, bool take_marked, int64_t *seen_top, void **seen)
{
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    /* seq_cst: pairs with the fence in take() (invariant 4). */
    weft__fence_sc();
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_acquire);
    if (t >= b) return WEFT__DQ_EMPTY;
    /* acquire (Lê et al. use consume): the array's entries as published by
     * dq_grow's release store. */
    weft__dq_array *a = atomic_load_explicit(&q->array, memory_order_acquire);
    void *x = atomic_load_explicit(&a->slot[t & a->mask], memory_order_relaxed);
    if (((uintptr_t)x & 1) && !take_marked) {
        /* Read like any stolen entry, but not taken: no CAS, so nothing
         * changes for the owner or other thieves. */
        *seen_top = t;
        if (seen) *seen = x;
        return WEFT__DQ_MARKED;
    }
    if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return WEFT__DQ_ABORT;
    return x;
}
