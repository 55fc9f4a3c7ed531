/*
 * Task stacks: pooled, lazily committed mmap slabs.
 *
 * Layout.  A slab is one anonymous MAP_NORESERVE mapping holding many stacks
 * of `stride` bytes each.  Memory is committed by the kernel page by page as a
 * task touches it, so a task that never goes deep costs one page: the task
 * struct lives at the top of its own stack (weft_task at hi - sizeof), and the
 * first frames share that page.
 *
 * Guard pages versus the mapping budget.  A PROT_NONE guard page per stack
 * splits the slab's mapping in two per stack, and vm.max_map_count defaults
 * to 65530, so one million guarded stacks are impossible.  The first
 * `guard_stacks` stacks (runtime option) live in guarded slabs; later slabs
 * are unguarded.  An unguarded stack is protected by
 *   (a) a red zone of WEFT__STACK_REDZONE bytes at its bottom whose canary
 *       words (four at its top, four at its bottom) must stay zero (never
 *       written, they cost no memory: reading them maps the kernel's shared
 *       zero page), and
 *   (b) the stack pointer bound: a task switched out below lo + red zone
 *       has overflowed.
 * Both are checked at every switch out of a task (weft__stack_check).  A
 * guarded stack is checked by the MMU; the SIGSEGV handler reports it, and
 * also reports a fault within 1 MiB below an unguarded stack (an overrun that
 * left the slab).  An overrun of an unguarded stack that skips the whole red
 * zone with one frame and writes into the neighbouring stack before the next
 * switch may corrupt that neighbour before it is reported: that is the
 * price of the mapping budget, and why guard_stacks is an option.
 *
 * Invariants:
 *  1. A stack is in exactly one place: a running/parked task, a worker's cache,
 *     or the pool's free list.
 *  2. Every byte of a slab stays mapped until the pool is destroyed, so a
 *     late reader (a waker touching a finished task's struct) never faults.
 *  3. The red zone's canary words of a stack on a free list are zero.
 *
 * Rejected: one mmap per stack (caps a process near 32k tasks with guards);
 * growing stacks by copying (C has no movable frames); malloc'd stacks
 * (commit everything, no guard at all).
 */

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime.h"
#include "stack.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define WEFT_HAVE_VALGRIND 1
#endif
#endif
#ifdef WEFT_ASAN
#include <sanitizer/asan_interface.h>
#endif

/* A slab is about this big: 256 stacks of 64 KiB, so one million tasks take
 * about 4k mappings when unguarded. */
#define SLAB_BYTES ((size_t)16 << 20)
/* Cache refills and spills move half a cache, so the pool lock is taken at
 * most once per WEFT__STACK_CACHE_MAX / 2 stacks. */
#define CACHE_BATCH (WEFT__STACK_CACHE_MAX / 2)

static size_t task_offset(void)
{
    return WEFT__LINES(sizeof(weft_task));
}

int weft__stack_pool_init(weft__stack_pool *p, size_t stack_size, size_t guard_budget)
{
    memset(p, 0, sizeof *p);
    p->page = (size_t)sysconf(_SC_PAGESIZE);
    p->stride = (stack_size + p->page - 1) & ~(p->page - 1);
    p->guard_budget = guard_budget;
    return pthread_mutex_init(&p->lock, NULL);
}

void weft__stack_pool_destroy(weft__stack_pool *p)
{
    for (weft__slab *s = p->slabs, *n; s; s = n) {
        n = s->next;
        munmap(s->base, s->len);
        free(s);
    }
    free(p->free);
    pthread_mutex_destroy(&p->lock);
}

/* Maps a new slab; lock held. */
static int slab_new(weft__stack_pool *p)
{
    size_t n = SLAB_BYTES / p->stride;
    if (n == 0) n = 1;
    bool guarded = p->guard_budget >= n;
    size_t len = n * p->stride;
    weft__slab *s = malloc(sizeof *s);
    if (!s) return ENOMEM;
    char *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) {
        free(s);
        return ENOMEM;
    }
    if (guarded) {
        for (size_t i = 0; i < n; i++) {
            if (mprotect(base + i * p->stride, p->page, PROT_NONE) != 0) {
                /* Out of mappings: keep the slab, unguarded from here on. */
                for (size_t j = 0; j < i; j++)
                    mprotect(base + j * p->stride, p->page, PROT_READ | PROT_WRITE);
                guarded = false;
                p->guard_budget = 0;
                break;
            }
        }
        if (guarded) p->guard_budget -= n;
    }
    /* Grow (and touch) the free array now, while carving, so that it can
     * take back every stack ever carved: returning a million stacks at once
     * (a mass exit) then never page-faults on a freshly grown array. */
    if (p->total + n > p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 1024;
        while (cap < p->total + n) cap *= 2;
        weft_task **a = realloc(p->free, cap * sizeof *a);
        if (a) {
            memset(a + p->cap, 0, (cap - p->cap) * sizeof *a);
            p->free = a;
            p->cap = cap;
        }
    }
    p->total += n;
    s->base = base;
    s->len = len;
    s->next = p->slabs;
    p->slabs = s;
    p->carve = base;
    p->carve_end = base + len;
    p->carve_guarded = guarded;
    return 0;
}

/* Carves one stack from the newest slab; lock held. */
static weft_task *carve(weft__stack_pool *p)
{
    if (p->carve == p->carve_end && slab_new(p) != 0) return NULL;
    char *base = p->carve;
    p->carve += p->stride;
    char *hi = base + p->stride;
    weft_task *t = (weft_task *)(void *)(hi - task_offset());
    t->stack.lo = p->carve_guarded ? base + p->page : base;
    t->stack.hi = hi;
    t->stack.guarded = p->carve_guarded;
#ifdef WEFT_HAVE_VALGRIND
    t->stack.vg_id = VALGRIND_STACK_REGISTER(t->stack.lo, hi);
#else
    t->stack.vg_id = 0;
#endif
    return t;
}

void weft__stack_pool_foreach(weft__stack_pool *p, void (*fn)(weft_task *, void *), void *arg)
{
    WEFT_CHECK(pthread_mutex_lock(&p->lock));
    for (weft__slab *s = p->slabs; s; s = s->next) {
        char *end = s->base + s->len;
        if (p->carve >= s->base && p->carve <= end) end = p->carve; /* the newest slab */
        for (char *b = s->base; b + p->stride <= end; b += p->stride)
            fn((weft_task *)(void *)(b + p->stride - task_offset()), arg);
    }
    WEFT_CHECK(pthread_mutex_unlock(&p->lock));
}

/* Moves up to want free stacks into out[]; lock held. */
static unsigned pool_take_locked(weft__stack_pool *p, weft_task **out, unsigned want)
{
    unsigned got = 0;
    while (got < want && p->nfree > 0) out[got++] = p->free[--p->nfree];
    while (got < want) {
        weft_task *t = carve(p);
        if (!t) break;
        out[got++] = t;
    }
    return got;
}

/* Returns n stacks to the pool; lock held.  On ENOMEM growing the array the
 * stacks stay mapped and are simply not reused (invariant 2 holds). */
static void pool_give_locked(weft__stack_pool *p, weft_task *const *in, unsigned n)
{
    if (p->nfree + n > p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 1024;
        while (cap < p->nfree + n) cap *= 2;
        weft_task **a = realloc(p->free, cap * sizeof *a);
        if (!a) return;
        p->free = a;
        p->cap = cap;
    }
    for (unsigned i = 0; i < n; i++) p->free[p->nfree++] = in[i];
}

weft_task *weft__stack_get(weft__stack_pool *p, weft__stack_cache *c)
{
    weft_task *t;
    if (c) {
        if (c->n == 0) {
            WEFT_CHECK(pthread_mutex_lock(&p->lock));
            c->n = pool_take_locked(p, c->slot, CACHE_BATCH);
            WEFT_CHECK(pthread_mutex_unlock(&p->lock));
            if (c->n == 0) return NULL;
        }
        t = c->slot[--c->n];
        /* The next spawn's task struct is probably not in cache: start
         * loading it now, while this one is set up.  Only the struct, which
         * the spawn touches: the frames below it are written by whichever
         * worker runs the task, and with two workers that is usually the
         * thief (88% of spawn_join's tasks).  Pulling those lines here only
         * to have the thief pull them back cost a quarter of the 2-worker
         * spawn phase (spawn_join, alternating runs). */
        if (c->n) {
            /* The first two lines for writing; the context behind them
             * is only read when clean (weft__cctx_init). */
            const char *next = (const char *)c->slot[c->n - 1];
            _Static_assert(offsetof(weft_task, cctx) >= 128, "spawn writes the first two lines");
            __builtin_prefetch(next, 1);
            __builtin_prefetch(next + 64, 1);
            for (size_t off = 128; off < sizeof(weft_task); off += 64) __builtin_prefetch(next + off, 0);
        }
    } else {
        WEFT_CHECK(pthread_mutex_lock(&p->lock));
        unsigned got = pool_take_locked(p, &t, 1);
        WEFT_CHECK(pthread_mutex_unlock(&p->lock));
        if (!got) return NULL;
    }
#ifdef WEFT_ASAN
    /* A finished task never unwinds its last frames; forget their poison. */
    __asan_unpoison_memory_region(t->stack.lo, (size_t)(t->stack.hi - t->stack.lo));
#endif
    return t;
}

void weft__stack_put(weft__stack_pool *p, weft__stack_cache *c, weft_task *t)
{
    if (c) {
        if (c->n == WEFT__STACK_CACHE_MAX) {
            /* Spill the older half (the bottom of the LIFO) to the pool. */
            WEFT_CHECK(pthread_mutex_lock(&p->lock));
            pool_give_locked(p, c->slot, CACHE_BATCH);
            WEFT_CHECK(pthread_mutex_unlock(&p->lock));
            memmove(c->slot, c->slot + CACHE_BATCH, (c->n - CACHE_BATCH) * sizeof c->slot[0]);
            c->n -= CACHE_BATCH;
        }
        c->slot[c->n++] = t;
        return;
    }
    WEFT_CHECK(pthread_mutex_lock(&p->lock));
    pool_give_locked(p, &t, 1);
    WEFT_CHECK(pthread_mutex_unlock(&p->lock));
}

_Noreturn void weft__stack_overflow(weft_task *t)
{
    char buf[256];
    const char *name = "?";
    Dl_info info;
    if (t && dladdr((void *)(uintptr_t)t->fn, &info) && info.dli_sname) name = info.dli_sname;
    int n = snprintf(buf, sizeof buf,
                     "weft: task stack overflow (task %p, entry %s at %p, stack %p-%p, %s)\n",
                     (void *)t, name, t ? (void *)(uintptr_t)t->fn : NULL,
                     t ? (void *)t->stack.lo : NULL, t ? (void *)t->stack.hi : NULL,
                     t && t->stack.guarded ? "guard page hit" : "red zone reached");
    if (n > 0) {
        ssize_t w = write(STDERR_FILENO, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
        (void)w;
    }
    abort();
}

void weft__stack_check(weft_task *t, const void *sp)
{
    const char *lo = t->stack.lo;
    if (WEFT_UNLIKELY((const char *)sp < lo + WEFT__STACK_REDZONE)) weft__stack_overflow(t);
    if (!t->stack.guarded) {
        const volatile uint64_t *bottom = (const volatile uint64_t *)(const void *)lo;
        const volatile uint64_t *top =
            (const volatile uint64_t *)(const void *)(lo + WEFT__STACK_REDZONE) - 4;
        if (WEFT_UNLIKELY((bottom[0] | bottom[1] | bottom[2] | bottom[3] | top[0] | top[1] |
                           top[2] | top[3]) != 0))
            weft__stack_overflow(t);
    }
}

/* --- the SIGSEGV handler for guard-page hits ---------------------------- */

static struct sigaction old_segv;
static pthread_once_t segv_once = PTHREAD_ONCE_INIT;

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
    weft__worker *w = weft__worker_self();
    weft_task *t = w ? w->current : NULL;
    if (t) {
        const char *a = si->si_addr;
        size_t below = t->stack.guarded ? (size_t)sysconf(_SC_PAGESIZE) : (size_t)1 << 20;
        if (a >= t->stack.lo - below && a < t->stack.lo + WEFT__STACK_REDZONE)
            weft__stack_overflow(t);
    }
    /* Not ours: hand it to whoever was installed before us. */
    if (old_segv.sa_flags & SA_SIGINFO) {
        old_segv.sa_sigaction(sig, si, uc);
    } else if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
        old_segv.sa_handler(sig);
    } else {
        signal(SIGSEGV, SIG_DFL); /* returning re-faults into the default action */
    }
}

static void install_once(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
}

void weft__stack_install_handler(void)
{
    pthread_once(&segv_once, install_once);
}

void *weft__stack_altstack_on(void)
{
    size_t sz = 64 * 1024;
    void *mem = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return NULL;
    stack_t ss = {.ss_sp = mem, .ss_size = sz, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, sz);
        return NULL;
    }
    return mem;
}

void weft__stack_altstack_off(void *mem)
{
    if (!mem) return;
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(mem, 64 * 1024);
}
