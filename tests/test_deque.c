/* Chase-Lev deque (src/sched/deque.c): sequential semantics, growth, and
 * every pushed item taken exactly once under concurrent steals. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "sched/deque.h"

#define ITEM(i) ((void *)(uintptr_t)((i) + 2)) /* 0 and 1 are EMPTY and ABORT */
#define INDEX(x) ((uintptr_t)(x) - 2)

Test(deque, owner_is_lifo_thief_is_fifo, .timeout = 10)
{
    weft__deque q;
    cr_assert_eq(weft__dq_init(&q, 2), 0);
    for (int i = 0; i < 3; i++) cr_assert_eq(weft__dq_push(&q, ITEM(i)), 0);
    cr_assert_eq(weft__dq_steal(&q), ITEM(0));
    cr_assert_eq(weft__dq_take(&q), ITEM(2));
    cr_assert_eq(weft__dq_take(&q), ITEM(1));
    cr_assert_eq(weft__dq_take(&q), WEFT__DQ_EMPTY);
    cr_assert_eq(weft__dq_steal(&q), WEFT__DQ_EMPTY);
    weft__dq_destroy(&q);
}

Test(deque, a_take_without_thieves_is_lifo_and_keeps_size_and_growth_right, .timeout = 10)
{
    weft__deque q;
    cr_assert_eq(weft__dq_init(&q, 2), 0);
    /* Past the initial capacity, emptied, and filled again. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 10; i++) cr_assert_eq(weft__dq_push(&q, ITEM(i)), 0);
        cr_assert_eq(weft__dq_size(&q), 10);
        for (int i = 9; i >= 0; i--) cr_assert_eq(weft__dq_take_solo(&q), ITEM(i));
        cr_assert_eq(weft__dq_take_solo(&q), WEFT__DQ_EMPTY);
        cr_assert_eq(weft__dq_size(&q), 0, "an empty take leaves it empty");
        cr_assert_eq(weft__dq_size_owner(&q), 0);
        cr_assert_null(weft__dq_peek(&q));
    }
    cr_assert_eq(weft__dq_push(&q, ITEM(7)), 0);
    cr_assert_eq(weft__dq_peek(&q), ITEM(7));
    cr_assert_eq(weft__dq_take_solo(&q), ITEM(7));
    weft__dq_destroy(&q);
}

Test(deque, a_marked_top_is_stolen_only_when_asked_and_keeps_its_mark, .timeout = 10)
{
    weft__deque q;
    int64_t seen = -1;
    void *marked = (void *)(uintptr_t)0x1003, *plain = (void *)(uintptr_t)0x2000, *as_read = NULL;
    cr_assert_eq(weft__dq_init(&q, 2), 0);
    cr_assert_eq(weft__dq_push(&q, marked), 0);
    cr_assert_eq(weft__dq_push(&q, plain), 0);
    cr_assert_eq(weft__dq_steal_if(&q, false, &seen, &as_read), WEFT__DQ_MARKED);
    cr_assert_eq(seen, 0, "the refused entry's index is reported");
    cr_assert_eq(as_read, marked, "and the entry, with all its owner's bits");
    cr_assert_eq(weft__dq_size(&q), 2, "a refused steal took nothing");
    cr_assert_eq(weft__dq_steal_if(&q, true, &seen, NULL), marked);
    seen = -1;
    cr_assert_eq(weft__dq_steal_if(&q, false, &seen, NULL), plain, "an unmarked top goes at once");
    cr_assert_eq(seen, -1);
    cr_assert_eq(weft__dq_push(&q, marked), 0);
    cr_assert_eq(weft__dq_take(&q), marked, "the owner takes marked entries as they are");
    weft__dq_destroy(&q);
}

Test(deque, the_same_entry_pushed_again_has_a_new_top_index, .timeout = 10)
{
    /* The patience of a thief (worker.c) counts from the first sight of a
     * top index: a pooled task pushed again at the same place must not
     * look as if it had waited all along. */
    weft__deque q;
    int64_t first = -1, again = -1, behind = -1;
    void *marked = (void *)(uintptr_t)0x1001, *other = (void *)(uintptr_t)0x3001;
    cr_assert_eq(weft__dq_init(&q, 2), 0);
    cr_assert_eq(weft__dq_push(&q, marked), 0);
    cr_assert_eq(weft__dq_steal_if(&q, false, &first, NULL), WEFT__DQ_MARKED);
    cr_assert_eq(weft__dq_take(&q), marked);
    cr_assert_eq(weft__dq_push(&q, marked), 0);
    cr_assert_eq(weft__dq_steal_if(&q, false, &again, NULL), WEFT__DQ_MARKED);
    cr_assert_neq(first, again, "an entry taken and pushed again is a new top");
    /* Entries pushed and taken above the top leave it as it was. */
    cr_assert_eq(weft__dq_push(&q, other), 0);
    cr_assert_eq(weft__dq_take(&q), other);
    cr_assert_eq(weft__dq_steal_if(&q, false, &behind, NULL), WEFT__DQ_MARKED);
    cr_assert_eq(behind, again, "the top entry stayed, so did its index");
    weft__dq_destroy(&q);
}

Test(deque, grows_and_keeps_order, .timeout = 10)
{
    weft__deque q;
    cr_assert_eq(weft__dq_init(&q, 1), 0);
    for (int i = 0; i < 1000; i++) cr_assert_eq(weft__dq_push(&q, ITEM(i)), 0);
    cr_assert_eq(weft__dq_size(&q), 1000);
    for (int i = 0; i < 500; i++) cr_assert_eq(weft__dq_steal(&q), ITEM(i));
    for (int i = 999; i >= 500; i--) cr_assert_eq(weft__dq_take(&q), ITEM(i));
    cr_assert_eq(weft__dq_take(&q), WEFT__DQ_EMPTY);
    weft__dq_destroy(&q);
}

#define N_ITEMS 400000
#define N_THIEVES 3
static weft__deque cq;
static _Atomic int seen[N_ITEMS];
static atomic_bool owner_done;

static void record(void *x)
{
    cr_assert(x != WEFT__DQ_EMPTY && x != WEFT__DQ_ABORT);
    uintptr_t i = INDEX(x);
    cr_assert_lt(i, N_ITEMS);
    atomic_fetch_add(&seen[i], 1);
}

static void *thief(void *arg)
{
    (void)arg;
    for (;;) {
        void *x = weft__dq_steal(&cq);
        if (x == WEFT__DQ_ABORT) continue;
        if (x == WEFT__DQ_EMPTY) {
            if (atomic_load(&owner_done) && weft__dq_size(&cq) <= 0) return NULL;
            continue;
        }
        record(x);
    }
}

/* The owner pushes N_ITEMS in random bursts and takes in random runs (with
 * batches: take_batch of 1 to 8 first, a single take when refused) while
 * N_THIEVES steal; every item must be taken exactly once.  Returns how
 * many batches were taken. */
static size_t race(unsigned rng, bool batches)
{
    cr_assert_eq(weft__dq_init(&cq, 3), 0); /* small, so it grows under the thieves */
    pthread_t th[N_THIEVES];
    for (int i = 0; i < N_THIEVES; i++) cr_assert_eq(pthread_create(&th[i], NULL, thief, NULL), 0);
    int next = 0;
    size_t nbatches = 0;
    void *out[8];
    while (next < N_ITEMS) {
        int burst = (int)((rng = rng * 1103515245u + 12345u) >> 16) % 64 + 1;
        for (int k = 0; k < burst && next < N_ITEMS; k++) cr_assert_eq(weft__dq_push(&cq, ITEM(next++)), 0);
        int takes = (int)((rng = rng * 1103515245u + 12345u) >> 16) % 48;
        for (int k = 0; k < takes; k++) {
            if (batches) {
                size_t want = ((rng = rng * 1103515245u + 12345u) >> 16) % 8 + 1;
                size_t got = weft__dq_take_batch(&cq, out, want);
                cr_assert(got == 0 || got == want);
                nbatches += got != 0;
                for (size_t i = 0; i < got; i++) record(out[i]);
                if (got) continue;
            }
            void *x = weft__dq_take(&cq);
            if (x == WEFT__DQ_EMPTY) break;
            record(x);
        }
    }
    for (void *x; (x = weft__dq_take(&cq)) != WEFT__DQ_EMPTY;) record(x);
    atomic_store(&owner_done, true);
    for (int i = 0; i < N_THIEVES; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N_ITEMS; i++) cr_assert_eq(atomic_load(&seen[i]), 1, "item %d seen %d times", i, seen[i]);
    weft__dq_destroy(&cq);
    return nbatches;
}

Test(deque, concurrent_steals_take_each_item_exactly_once, .timeout = 60)
{
    race(12345, false);
}

/* The same race with the owner taking batches as well: a batch never
 * shares an entry with a thief. */
Test(deque, concurrent_steals_and_batch_takes_take_each_item_exactly_once, .timeout = 60)
{
    cr_assert_gt(race(54321, true), 0, "no batch was ever taken: the test did not test them");
}

Test(deque, a_batch_take_is_oldest_first_and_refuses_when_too_few_lie_above_top, .timeout = 10)
{
    weft__deque q;
    void *out[4];
    cr_assert_eq(weft__dq_init(&q, 2), 0);
    for (int i = 0; i < 6; i++) cr_assert_eq(weft__dq_push(&q, ITEM(i)), 0);
    cr_assert_eq(weft__dq_take_batch(&q, out, 4), 4);
    for (int i = 0; i < 4; i++) cr_assert_eq(out[i], ITEM(2 + i));
    cr_assert_eq(weft__dq_size(&q), 2);
    /* Two left: a batch of two (or more) would reach top, so none. */
    cr_assert_eq(weft__dq_take_batch(&q, out, 2), 0);
    cr_assert_eq(weft__dq_size(&q), 2, "a refused batch leaves the deque as it was");
    cr_assert_eq(weft__dq_take_batch(&q, out, 1), 1);
    cr_assert_eq(out[0], ITEM(1));
    cr_assert_eq(weft__dq_steal(&q), ITEM(0));
    cr_assert_eq(weft__dq_take(&q), WEFT__DQ_EMPTY);
    weft__dq_destroy(&q);
}
