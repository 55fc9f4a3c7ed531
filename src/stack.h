/*
 * Task stacks: pooled, lazily committed mmap slabs (see stack.c).
 *
 * Concurrency table:
 *   stack_get/put with a cache   the cache's owner worker only
 *   stack_get/put without one    any thread (global pool lock)
 *   pool_init, pool_destroy      no concurrent operation
 */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct weft_task;

typedef struct weft__stack {
    char *lo;        /* lowest usable byte (above the guard page, if any) */
    char *hi;        /* one past the highest byte; the task struct sits below it */
    bool guarded;    /* a PROT_NONE page lies just below lo */
    unsigned vg_id;  /* Valgrind stack id */
} weft__stack;

typedef struct weft__slab {
    struct weft__slab *next;
    char *base;
    size_t len;
} weft__slab;

typedef struct weft__stack_pool {
    pthread_mutex_t lock;
    struct weft_task **free; /* guarded by lock: a stack (array) of free stacks */
    size_t nfree, cap;       /* guarded by lock */
    size_t total;            /* guarded by lock: stacks in all slabs */
    weft__slab *slabs;      /* guarded by lock */
    char *carve, *carve_end; /* guarded by lock: uncarved part of the newest slab */
    bool carve_guarded;     /* guarded by lock */
    size_t stride;          /* immutable: bytes per stack including its guard page */
    size_t guard_budget;    /* guarded by lock: stacks that may still get a guard */
    size_t page;            /* immutable */
} weft__stack_pool;

/* Per-worker cache of free stacks: an array, so moving stacks in and out
 * never touches the (cold) task structs themselves. */
#define WEFT__STACK_CACHE_MAX 256
typedef struct weft__stack_cache {
    unsigned n;                                    /* owner worker only */
    struct weft_task *slot[WEFT__STACK_CACHE_MAX]; /* owner worker only; LIFO */
} weft__stack_cache;

/* Bytes at the bottom of every stack that a task must never reach: an
 * overflow is reported when the stack pointer is found in it at a switch, or
 * when its canary words (at its top and at its bottom) are not zero.  One
 * page: larger than almost any single frame, so a frame that overruns the
 * usable stack lands in it; never touched, so it costs address space only. */
#define WEFT__STACK_REDZONE 4096

int weft__stack_pool_init(weft__stack_pool *p, size_t stack_size, size_t guard_budget);
void weft__stack_pool_destroy(weft__stack_pool *p);
/* A fresh task struct at the top of a stack, with .stack filled; NULL on ENOMEM. */
struct weft_task *weft__stack_get(weft__stack_pool *p, weft__stack_cache *c);
void weft__stack_put(weft__stack_pool *p, weft__stack_cache *c, struct weft_task *t);
/* Calls fn on the task struct slot of every stack carved so far (live or
 * free: the caller tells them apart).  Takes the pool lock. */
void weft__stack_pool_foreach(weft__stack_pool *p, void (*fn)(struct weft_task *, void *),
                              void *arg);
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
