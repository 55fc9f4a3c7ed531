/*
 * Task stacks and task structs: two pools of slots carved from lazily
 * committed mmap slabs.
 *
 * Layout.  A slab is one anonymous MAP_NORESERVE mapping holding many slots
 * of `stride` bytes each; the kernel commits it page by page as it is
 * touched, and handing out a slot touches nothing.  The runtime keeps two
 * pools:
 *   - stacks, stride = the stack size, each with its descriptor (bounds,
 *     guard) in its top 32 bytes, written when carved: a task that never
 *     goes deep commits that one page;
 *   - task structs, stride = sizeof(weft_task) in whole lines, 4096 to a
 *     slab, so the structs of many tasks sit densely side by side.
 * A task owns one struct for its whole life and one stack from its spawn to
 * its final switch (task.c: a fresh task trades its stack for the worker's
 * most recently freed one when it first runs, and a finished task's stack
 * goes back before its struct does).  Apart, the two do what one stack with
 * the struct at its top could not: a thousand children that run one after
 * another on a worker take turns on two warm stacks, and their structs fill
 * 256 KiB of consecutive lines, where struct-on-stack spread them at one
 * offset of 64 KiB strides (the same L1 sets) and wrote each child's first
 * frames into a stack of its own.  Measured (spawn+join of batches of 1000,
 * alternating runs): 1 worker 100 -> 85 ns a task, 2 workers 108 -> 92;
 * cachegrind counts 6x fewer L1 data misses for skynet, 2.5x for fib; the
 * two pools and the trade cost about 25 instructions a task, and fib and
 * skynet ran as fast as before.
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
 *  1. A slot is in exactly one place: in use (a task's struct, or the stack
 *     of a task between its spawn and its final switch), a worker's cache,
 *     or the pool's free list.
 *  2. Every byte of a slab stays mapped until the pool is destroyed, so a
 *     late reader (a waker touching a finished task's struct) never faults,
 *     and a slot given back always fits the free list (grown when carved).
 *  3. The red zone's canary words of a stack that is not in use are zero.
 *  4. A struct slot never handed out is all zero (fresh mapping); a freed
 *     one holds no published waiter (runtime.c, destroy step 2).
 *
 * Rejected: one mmap per stack (caps a process near 32k tasks with guards);
 * growing stacks by copying (C has no movable frames); malloc'd stacks
 * (commit everything, no guard at all); binding a stack only at a task's
 * first run (a spawn could then succeed and its task find no memory to run
 * on: reserving at spawn and trading at first run keeps ENOMEM at spawn).
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

/* A stack slab is about this big: 256 stacks of 64 KiB, so one million
 * tasks take about 4k mappings when unguarded. */
#define STACK_SLAB_BYTES ((size_t)16 << 20)
/* A struct slab: 4096 structs of 256 bytes. */
#define SLOT_SLAB_BYTES ((size_t)1 << 20)
/* An empty cache takes CACHE_REFILL slots from the pool (few, so that a
 * worker carves little beyond what it uses), a full one gives back half of
 * itself: a worker that keeps spawning and ending tasks takes the pool
 * lock once per CACHE_REFILL spawns or CACHE_SPILL ends at most, and one
 * that fans out under WEFT__POOL_CACHE_MAX tasks and joins them, never. */
#define CACHE_REFILL 256
#define CACHE_SPILL (WEFT__POOL_CACHE_MAX / 2)

static int pool_init(weft__pool *p, size_t stride, size_t slab_bytes, size_t guard_budget,
                     bool stacks)
{
    memset(p, 0, sizeof *p);
    p->page = (size_t)sysconf(_SC_PAGESIZE);
    p->stride = stride;
    p->slab_bytes = slab_bytes;
    p->guard_budget = guard_budget;
    p->stacks = stacks;
    return pthread_mutex_init(&p->lock, NULL);
}

int weft__stack_pool_init(weft__pool *p, size_t stack_size, size_t guard_budget)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return pool_init(p, (stack_size + page - 1) & ~(page - 1), STACK_SLAB_BYTES, guard_budget,
                     true);
}

int weft__slot_pool_init(weft__pool *p, size_t slot_size)
{
    return pool_init(p, WEFT__LINES(slot_size), SLOT_SLAB_BYTES, 0, false);
}

void weft__pool_destroy(weft__pool *p)
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
static int slab_new(weft__pool *p)
{
    size_t n = p->slab_bytes / p->stride;
    if (n == 0) n = 1;
    bool guarded = p->stacks && p->guard_budget >= n;
    size_t len = n * p->stride;
    weft__slab *s = malloc(sizeof *s);
    if (!s) return ENOMEM;
    char *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (p->stacks ? MAP_STACK : 0),
                      -1, 0);
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
     * take back every slot ever carved: returning a million at once (a mass
     * exit) then never page-faults on a freshly grown array, and a put never
     * fails (invariant 2). */
    if (p->total + n > p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 1024;
        while (cap < p->total + n) cap *= 2;
        void **a = realloc(p->free, cap * sizeof *a);
        if (!a) {
            munmap(base, len);
            free(s);
            return ENOMEM;
        }
        memset(a + p->cap, 0, (cap - p->cap) * sizeof *a);
        p->free = a;
        p->cap = cap;
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

/* Carves one slot from the newest slab; lock held. */
static void *carve(weft__pool *p)
{
    if (p->carve == p->carve_end && slab_new(p) != 0) return NULL;
    char *base = p->carve;
    p->carve += p->stride;
    if (!p->stacks) return base;
    char *hi = base + p->stride;
    weft__stack *s = (weft__stack *)(void *)(hi - WEFT__STACK_DESC);
    s->lo = p->carve_guarded ? base + p->page : base;
    s->guarded = p->carve_guarded;
#ifdef WEFT_HAVE_VALGRIND
    VALGRIND_STACK_REGISTER(s->lo, hi);
#endif
    return s;
}

void weft__pool_foreach(weft__pool *p, void (*fn)(void *, void *), void *arg)
{
    WEFT_CHECK(pthread_mutex_lock(&p->lock));
    for (weft__slab *s = p->slabs; s; s = s->next) {
        char *end = s->base + s->len;
        if (p->carve >= s->base && p->carve <= end) end = p->carve; /* the newest slab */
        for (char *b = s->base; b + p->stride <= end; b += p->stride)
            fn(p->stacks ? b + p->stride - WEFT__STACK_DESC : b, arg);
    }
    WEFT_CHECK(pthread_mutex_unlock(&p->lock));
}

/* A free slot from the pool's list, or a fresh one; NULL when out of
 * memory.  Lock held. */
static void *pool_take_locked(weft__pool *p)
{
    return p->nfree ? p->free[--p->nfree] : carve(p);
}

/* Returns n slots to the pool; lock held.  The array holds every slot ever
 * carved (invariant 2), so this never grows it. */
static void pool_give_locked(weft__pool *p, void *const *in, unsigned n)
{
    WEFT_ASSERT(p->nfree + n <= p->cap);
    for (unsigned i = 0; i < n; i++) p->free[p->nfree++] = in[i];
}

void *weft__pool_get_slow(weft__pool *p, weft__pool_cache *c)
{
    void *s = NULL;
    WEFT_CHECK(pthread_mutex_lock(&p->lock));
    if (c) {
        /* Empty: refill half of it. */
        for (unsigned i = 0; i < CACHE_REFILL && (s = pool_take_locked(p)); i++)
            WEFT__POOL_AT(c, c->hi++) = s;
        s = c->hi != c->lo ? WEFT__POOL_AT(c, --c->hi) : NULL;
    } else {
        s = pool_take_locked(p);
    }
    WEFT_CHECK(pthread_mutex_unlock(&p->lock));
    return s;
}

void weft__pool_put_slow(weft__pool *p, weft__pool_cache *c, void *slot)
{
    WEFT_CHECK(pthread_mutex_lock(&p->lock));
    if (c) {
        /* Full: spill the cold half. */
        WEFT_ASSERT(p->nfree + CACHE_SPILL <= p->cap);
        for (unsigned i = 0; i < CACHE_SPILL; i++) p->free[p->nfree++] = WEFT__POOL_AT(c, c->lo++);
        WEFT__POOL_AT(c, c->hi++) = slot;
    } else {
        pool_give_locked(p, &slot, 1);
    }
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
                     t ? (void *)t->stack->lo : NULL, t ? (void *)weft__stack_hi(t->stack) : NULL,
                     t && t->stack->guarded ? "guard page hit" : "red zone reached");
    if (n > 0) {
        ssize_t w = write(STDERR_FILENO, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
        (void)w;
    }
    abort();
}

void weft__stack_check(weft_task *t, const void *sp)
{
    const char *lo = t->stack->lo;
    if (WEFT_UNLIKELY((const char *)sp < lo + WEFT__STACK_REDZONE)) weft__stack_overflow(t);
    if (!t->stack->guarded) {
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
        size_t below = t->stack->guarded ? (size_t)sysconf(_SC_PAGESIZE) : (size_t)1 << 20;
        if (a >= t->stack->lo - below && a < t->stack->lo + WEFT__STACK_REDZONE)
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
