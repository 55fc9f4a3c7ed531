/*
 * Small per-thread caches of freed blocks, for the channel's fixed-size
 * allocations (the channel, its handles, its segments).  See blk.c.
 */
#ifndef WEFT_BLK_H
#define WEFT_BLK_H

#include <stddef.h>

/* A block of at least size bytes, 64-byte aligned, contents undefined; NULL
 * when out of memory.  Any thread. */
void *weft__blk_alloc(size_t size);
/* Gives back p, from weft__blk_alloc(size) with the same size, on any
 * thread.  p may be NULL. */
void weft__blk_free(void *p, size_t size);

/* Blocks of size bytes the global depot holds (blk.c, Depot); for tests.
 * Always 0 under AddressSanitizer, where the caches are off. */
size_t weft__blk_depot_blocks(size_t size);

#endif
