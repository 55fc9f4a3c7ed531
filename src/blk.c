/*
 * Per-thread caches of freed 64-byte-aligned blocks, by exact (rounded) size.
 *
 * Why.  Opening a channel allocates the channel, two handles and a first
 * segment, and a busy channel allocates a segment every 32 (or 256) cells.
 * glibc's aligned allocation takes the memalign path (about 700
 * instructions, callgrind) and every free another 100-200: in skynet through
 * channels, which opens a channel per inner task, the allocator was about a
 * quarter of all instructions.  A thread that frees a block keeps it for its
 * next allocation of that size: a pop or a push on a thread-local array.
 *
 * Shape.  BLK_CLASSES size classes per thread, each claimed by the first
 * size freed into it while it is empty, BLK_DEPTH blocks each, blocks of at
 * most BLK_MAX bytes (any channel segment); anything else goes to the
 * allocator.  So a thread holds at most BLK_CLASSES * BLK_DEPTH * BLK_MAX
 * bytes (1 MiB; 64 KiB a class of the commonest segment) it does not use.
 * A block freed on another thread than the one that allocated it simply
 * joins the freeing thread's cache (tasks move between workers; the
 * reclaimer thread, rcu.c, frees retired segments).
 *
 * Depot.  Blocks often die on another thread than the one that wants the
 * next: the reclaimer thread (rcu.c; liburcu's call_rcu thread before it)
 * frees every retired segment, while the workers allocate them.  Alone,
 * the per-thread caches sent the freeing thread's overflow to free() and
 * the workers' misses to aligned_alloc(), into the same glibc arena, whose
 * lock the two then fought over (futex
 * wake-ups were 4% of a rendezvous ping-pong on one worker, malloc another
 * 8%).  So a thread whose class is full moves half of it, BLK_DEPTH / 2
 * blocks chained through their first word, to a global depot under one
 * mutex, and a thread whose class is empty takes such a batch back: one
 * lock per BLK_DEPTH / 2 blocks, the transfer cache of tcmalloc (Ghemawat
 * and Menage, "TCMalloc: Thread-Caching Malloc").  The depot holds at most
 * DEPOT_BYTES of each of DEPOT_CLASSES sizes; beyond that blocks go to
 * free().  Its blocks stay reachable from it until the process ends.
 *
 * Lifetime.  The first block a thread caches registers a thread-specific
 * key whose destructor frees the cache at thread exit (workers, plain
 * pthreads).  The main thread's cache stays reachable through its TLS at
 * process exit.
 *
 * Concurrency.  A cache is touched only by its own thread, and no call here
 * switches tasks, so a task never sees another thread's cache mid-call.  A
 * block is freed only once every use of it has ended (the channel's own
 * reclamation argues that), so handing it to the next allocation on this
 * thread needs no ordering beyond what the free already had.
 *
 * Under AddressSanitizer the caches are off, so a use after free of a
 * channel's memory is still caught.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "blk.h"
#include "internal.h"

#ifdef WEFT_ASAN
void *weft__blk_alloc(size_t size)
{
    return aligned_alloc(64, WEFT__LINES(size));
}

void weft__blk_free(void *p, size_t size)
{
    (void)size;
    free(p);
}

size_t weft__blk_depot_blocks(size_t size)
{
    (void)size;
    return 0;
}
#else

#define BLK_CLASSES 4
#define BLK_DEPTH 16
/* Every channel segment fits: at most 16 KiB of cells (chan.c, open) and
 * its header line.  (At 4096 the commonest one did not: 256 cells of 16
 * bytes and a header are 4160 bytes, so a channel of 8-byte items with a
 * large capacity took every segment from glibc and gave it back there.) */
#define BLK_MAX (16384 + 64)

typedef struct blk_class {
    size_t size; /* 0: unclaimed */
    unsigned n;
    void *slot[BLK_DEPTH];
} blk_class;

static _Thread_local blk_class tls_cache[BLK_CLASSES] __attribute__((tls_model("initial-exec")));
static _Thread_local bool tls_registered __attribute__((tls_model("initial-exec")));
static pthread_key_t blk_key;
static pthread_once_t blk_once = PTHREAD_ONCE_INIT;

static void cache_drain(void *arg)
{
    (void)arg;
    for (unsigned c = 0; c < BLK_CLASSES; c++) {
        blk_class *k = &tls_cache[c];
        while (k->n) free(k->slot[--k->n]);
        k->size = 0;
    }
    tls_registered = false;
}

static void key_make(void)
{
    WEFT_CHECK(pthread_key_create(&blk_key, cache_drain));
}

/* The global depot of batches (see Depot).  A batch is BLK_DEPTH / 2
 * blocks: word 0 of each links the next block, word 1 of the first links
 * the next batch. */
#define BATCH (BLK_DEPTH / 2)
#define DEPOT_CLASSES 8
/* Bytes the depot keeps of each size: retired segments arrive in bursts,
 * a grace period's worth at a time (thousands in a busy ping-pong). */
#define DEPOT_BYTES (2u << 20)
static struct {
    pthread_mutex_t lock;
    struct {
        size_t size; /* 0: unclaimed */
        unsigned n;
        void *first;
    } cls[DEPOT_CLASSES];
} depot = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void register_cache(void)
{
    if (!tls_registered) {
        WEFT_CHECK(pthread_once(&blk_once, key_make));
        /* Any non-NULL value: the destructor runs at thread exit. */
        WEFT_CHECK(pthread_setspecific(blk_key, &blk_key));
        tls_registered = true;
    }
}

/* Takes a batch of size from the depot into k (empty, claimed for size). */
static bool depot_take(blk_class *k, size_t size)
{
    void *b = NULL;
    WEFT_CHECK(pthread_mutex_lock(&depot.lock));
    for (unsigned c = 0; c < DEPOT_CLASSES; c++) {
        if (depot.cls[c].size == size && depot.cls[c].n) {
            b = depot.cls[c].first;
            depot.cls[c].first = ((void **)b)[1];
            depot.cls[c].n--;
            break;
        }
    }
    WEFT_CHECK(pthread_mutex_unlock(&depot.lock));
    if (!b) return false;
    register_cache(); /* the thread's cache now holds blocks to drain at exit */
    for (; b; b = *(void **)b) k->slot[k->n++] = b;
    return true;
}

/* Moves BATCH blocks of k (full) to the depot; false when it has no room. */
static bool depot_give(blk_class *k)
{
    void *b = NULL;
    for (unsigned i = 0; i < BATCH; i++) {
        void *p = k->slot[k->n - 1 - i];
        *(void **)p = b;
        b = p;
    }
    bool done = false;
    WEFT_CHECK(pthread_mutex_lock(&depot.lock));
    for (unsigned c = 0; c < DEPOT_CLASSES && !done; c++) {
        if (depot.cls[c].size == 0) depot.cls[c].size = k->size;
        if (depot.cls[c].size == k->size) {
            if ((size_t)depot.cls[c].n * BATCH * k->size < DEPOT_BYTES) {
                ((void **)b)[1] = depot.cls[c].first;
                depot.cls[c].first = b;
                depot.cls[c].n++;
                done = true;
            }
            break;
        }
    }
    WEFT_CHECK(pthread_mutex_unlock(&depot.lock));
    if (done) k->n -= BATCH;
    return done;
}

size_t weft__blk_depot_blocks(size_t size)
{
    size = WEFT__LINES(size);
    size_t n = 0;
    WEFT_CHECK(pthread_mutex_lock(&depot.lock));
    for (unsigned c = 0; c < DEPOT_CLASSES; c++)
        if (depot.cls[c].size == size) n = (size_t)depot.cls[c].n * BATCH;
    WEFT_CHECK(pthread_mutex_unlock(&depot.lock));
    return n;
}

void *weft__blk_alloc(size_t size)
{
    size = WEFT__LINES(size);
    blk_class *spare = NULL;
    for (unsigned c = 0; c < BLK_CLASSES; c++) {
        blk_class *k = &tls_cache[c];
        if (k->size == size) {
            if (k->n || depot_take(k, size)) return k->slot[--k->n];
            return aligned_alloc(64, size);
        }
        if (!spare && k->n == 0) spare = k;
    }
    if (size <= BLK_MAX && spare) {
        spare->size = size;
        if (depot_take(spare, size)) return spare->slot[--spare->n];
    }
    return aligned_alloc(64, size);
}

void weft__blk_free(void *p, size_t size)
{
    if (!p) return;
    size = WEFT__LINES(size);
    if (size <= BLK_MAX) {
        blk_class *spare = NULL;
        for (unsigned c = 0; c < BLK_CLASSES; c++) {
            blk_class *k = &tls_cache[c];
            if (k->size == size) {
                if (k->n == BLK_DEPTH && !depot_give(k)) goto full;
                k->slot[k->n++] = p;
                return;
            }
            if (!spare && k->n == 0) spare = k;
        }
        if (spare) {
            register_cache();
            spare->size = size;
            spare->slot[spare->n++] = p;
            return;
        }
    }
full:
    free(p);
}
#endif
