/*
 * Task stacks and task structs: two pools of fixed-size slots carved from
 * lazily committed mmap slabs (see stack.c).
 *
 * Concurrency table:
 *   pool_get/put with a cache    the cache's owner worker only
 *   pool_get/put without one     any thread (the pool's lock)
 *   pool_init, pool_destroy      no concurrent operation
 */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct weft_task;

/* A stack's descriptor, written when the stack is carved into the top bytes
 * of the stack itself (so it shares a line with the first frames, and a
 * stack is named by its descriptor's address). */
typedef struct weft__stack {
    char *lo;        /* lowest usable byte (above the guard page, if any) */
    bool guarded;    /* a PROT_NONE page lies just below lo */
} weft__stack;
/* Bytes the descriptor takes at the top of its stack; frames start below. */
#define WEFT__STACK_DESC 32
_Static_assert(sizeof(weft__stack) <= WEFT__STACK_DESC, "a stack descriptor fits its space");

/* One past the highest byte of s's stack (its descriptor ends there). */
static inline char *weft__stack_hi(const weft__stack *s)
{
    return (char *)s + WEFT__STACK_DESC;
}

typedef struct weft__slab {
    struct weft__slab *next;
    char *base;
    size_t len;
} weft__slab;

/*
 * A pool of slots of `stride` bytes, each named by a pointer: a task struct
 * by its address, a stack by its descriptor's.  Handing slots around never
 * touches their memory.
 */
typedef struct weft__pool {
    pthread_mutex_t lock;
    void **free;             /* guarded by lock: a stack (array) of free slots */
    size_t nfree, cap;       /* guarded by lock */
    size_t total;            /* guarded by lock: slots in all slabs */
    weft__slab *slabs;       /* guarded by lock */
    char *carve, *carve_end; /* guarded by lock: uncarved part of the newest slab */
    bool carve_guarded;      /* guarded by lock */
    size_t guard_budget;     /* guarded by lock: stacks that may still get a guard */
    size_t stride;           /* immutable: bytes per slot (a stack's includes its guard) */
    size_t slab_bytes;       /* immutable */
    size_t page;             /* immutable */
    bool stacks;             /* immutable: slots are stacks (guards, Valgrind) */
} weft__pool;

/* Per-worker cache of free slots: a ring of names, so moving slots in and
 * out never touches the (cold) slots themselves.  Slots are taken and given
 * back at its warm end (hi), where the last one given back is the likeliest
 * to be in this core's cache; a stack cache also has a cold end (lo), where
 * spawns reserve stacks they will not touch and where those come back when
 * a task trades its reservation for a warm stack (task.c).  An empty cache
 * is refilled and a full one spills its cold half (stack.c). */
/* Room for the tasks of a fan-out of 1000 that is spawned, then joined,
 * without a trip to the pool (which cost 40 instructions a task). */
#define WEFT__POOL_CACHE_MAX 2048
typedef struct weft__pool_cache {
    unsigned lo, hi;                      /* owner worker only: slots [lo, hi), mod MAX */
    void *slot[WEFT__POOL_CACHE_MAX];     /* owner worker only */
} weft__pool_cache;
#define WEFT__POOL_AT(c, i) ((c)->slot[(i) & (WEFT__POOL_CACHE_MAX - 1)])

/* Bytes at the bottom of every stack that a task must never reach: an
 * overflow is reported when the stack pointer is found in it at a switch, or
 * when its canary words (at its top and at its bottom) are not zero.  One
 * page: larger than almost any single frame, so a frame that overruns the
 * usable stack lands in it; never touched, so it costs address space only. */
#define WEFT__STACK_REDZONE 4096

/* A pool of stacks of stack_size bytes (rounded up to pages), the first
 * guard_budget of which get a guard page. */
int weft__stack_pool_init(weft__pool *p, size_t stack_size, size_t guard_budget);
/* A pool of zero-filled slots of slot_size bytes (rounded up to lines). */
int weft__slot_pool_init(weft__pool *p, size_t slot_size);
void weft__pool_destroy(weft__pool *p);
void *weft__pool_get_slow(weft__pool *p, weft__pool_cache *c);
void weft__pool_put_slow(weft__pool *p, weft__pool_cache *c, void *slot);

/* A free slot, or NULL when no memory is left.  c: the calling worker's
 * cache, or NULL (any thread).  weft__pool_get takes the warmest slot,
 * weft__pool_get_cold the coldest. */
static inline void *weft__pool_get(weft__pool *p, weft__pool_cache *c)
{
    if (c && c->hi != c->lo) return WEFT__POOL_AT(c, --c->hi);
    return weft__pool_get_slow(p, c);
}
static inline void *weft__pool_get_cold(weft__pool *p, weft__pool_cache *c)
{
    if (c && c->hi != c->lo) return WEFT__POOL_AT(c, c->lo++);
    return weft__pool_get_slow(p, c);
}

/* Gives a slot back at the warm end (never fails: invariant 2 of stack.c). */
static inline void weft__pool_put(weft__pool *p, weft__pool_cache *c, void *slot)
{
    if (c && c->hi - c->lo < WEFT__POOL_CACHE_MAX) {
        WEFT__POOL_AT(c, c->hi++) = slot;
        return;
    }
    weft__pool_put_slow(p, c, slot);
}

/* Swaps slot for the warmest one of a cache that is not empty; slot goes to
 * the cold end. */
static inline void *weft__pool_trade(weft__pool_cache *c, void *slot)
{
    void *warm = WEFT__POOL_AT(c, --c->hi);
    WEFT__POOL_AT(c, --c->lo) = slot;
    return warm;
}

/* Calls fn on every slot carved so far (live or free: the caller tells them
 * apart).  Takes the pool lock. */
void weft__pool_foreach(weft__pool *p, void (*fn)(void *, void *), void *arg);
/* Aborts with "weft: task stack overflow" when t's stack overflowed. */
void weft__stack_check(struct weft_task *t, const void *sp);
/* Installs the SIGSEGV handler that reports guard-page hits (once). */
void weft__stack_install_handler(void);
/* Signal stack for the calling worker pthread; returns the memory to free. */
void *weft__stack_altstack_on(void);
void weft__stack_altstack_off(void *mem);
/* Reports an overflow of t and aborts. */
_Noreturn void weft__stack_overflow(struct weft_task *t);

#endif
