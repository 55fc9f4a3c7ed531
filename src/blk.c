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
 * most BLK_MAX bytes; anything else goes to the allocator.  So a thread holds
 * at most BLK_CLASSES * BLK_DEPTH * BLK_MAX bytes (256 KiB) it does not use.
 * A block freed on another thread than the one that allocated it simply
 * joins the freeing thread's cache (tasks move between workers; liburcu's
 * call_rcu thread frees retired segments).
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
#else

#define BLK_CLASSES 4
#define BLK_DEPTH 16
#define BLK_MAX 4096

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

void *weft__blk_alloc(size_t size)
{
    size = WEFT__LINES(size);
    for (unsigned c = 0; c < BLK_CLASSES; c++) {
        blk_class *k = &tls_cache[c];
        if (k->size == size && k->n) return k->slot[--k->n];
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
                if (k->n == BLK_DEPTH) goto full;
                k->slot[k->n++] = p;
                return;
            }
            if (!spare && k->n == 0) spare = k;
        }
        if (spare) {
            if (!tls_registered) {
                WEFT_CHECK(pthread_once(&blk_once, key_make));
                /* Any non-NULL value: the destructor runs at thread exit. */
                WEFT_CHECK(pthread_setspecific(blk_key, &blk_key));
                tls_registered = true;
            }
            spare->size = size;
            spare->slot[spare->n++] = p;
            return;
        }
    }
full:
    free(p);
}
#endif
