/*
 * Private helpers shared by every source file: fatal errors, futexes, spin
 * hints, sanitizer detection.  Never installed.
 */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <errno.h>
#include <sched.h>

#include "weft.h"

#define WEFT_LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define WEFT_CACHELINE 64
/* n rounded up to whole cache lines (a constant expression when n is). */
#define WEFT__LINES(n) (((size_t)(n) + WEFT_CACHELINE - 1) & ~(size_t)(WEFT_CACHELINE - 1))
#define WEFT_HIDDEN __attribute__((visibility("hidden")))

#if defined(__SANITIZE_ADDRESS__)
#define WEFT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TSAN 1
#endif
#endif

/* Prints "weft: file:line: message" and aborts.  For broken invariants. */
_Noreturn void weft__die(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define WEFT_DIE(...) weft__die(__FILE__, __LINE__, __VA_ARGS__)
#define WEFT_ASSERT(c)                                                           \
    do {                                                                         \
        if (WEFT_UNLIKELY(!(c))) WEFT_DIE("assertion failed: %s", #c);          \
    } while (0)
/* For pthread_* calls that cannot fail unless weft itself is broken. */
#define WEFT_CHECK(call)                                                         \
    do {                                                                         \
        int weft_rc_ = (call);                                                   \
        if (WEFT_UNLIKELY(weft_rc_ != 0)) WEFT_DIE("%s failed: %d", #call, weft_rc_); \
    } while (0)

static inline void weft__cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/*
 * A full (seq_cst) fence: every Dekker-style store-then-load in weft goes
 * through this one.  On x86-64 compilers emit MFENCE for
 * atomic_thread_fence(memory_order_seq_cst), which on the AMD EPYC we
 * measure on costs ~21 ns; a locked read-modify-write is an equally full
 * barrier for ordinary loads and stores (Intel SDM vol. 3A 8.2.2 and AMD APM
 * vol. 2 7.4.2: loads and stores are not reordered with locked instructions)
 * and costs ~2.5 ns there (bench: store; fence; load in a loop).  Linux's
 * smp_mb() on x86-64 made the same choice.  The target is a word below the
 * stack pointer, which no other thread can see; OR with 0 leaves it as it
 * was, so a value the compiler keeps in the red zone survives.  MFENCE also
 * orders non-temporal stores and WC memory, which weft never uses.  Under
 * ThreadSanitizer (which models the C11 fence, not the instruction) and on
 * other architectures it is the C11 fence.
 */
static inline void weft__fence_sc(void)
{
#if defined(__x86_64__) && !defined(WEFT_TSAN)
    __asm__ __volatile__("lock; orl $0, -4(%%rsp)" ::: "memory", "cc");
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/*
 * A full fence right after a seq_cst read-modify-write (on another
 * location): the store-then-load of a Dekker pair whose store came before
 * that RMW is then ordered without a fence of its own.  On x86-64 the RMW
 * is a locked instruction, already a full barrier (see weft__fence_sc), and
 * the compiler moves no earlier store below it (release) and no later load
 * above it (acquire): only a compiler barrier is left.  Linux's
 * smp_mb__after_atomic() is the same thing.  Elsewhere, and under
 * ThreadSanitizer, the C11 fence.
 */
static inline void weft__fence_after_rmw(void)
{
#if defined(__x86_64__) && !defined(WEFT_TSAN)
    __asm__ __volatile__("" ::: "memory");
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* One step of a bounded-spin wait for another thread's short action:
 * pause for the first rounds, then give the CPU away. */
static inline void weft__backoff(unsigned *round)
{
    if ((*round)++ < 100)
        weft__cpu_relax();
    else
        sched_yield();
}

static inline uint64_t weft__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Futex wait on *word while it equals expect, until the CLOCK_MONOTONIC
 * deadline (0 = none).  May return spuriously; callers loop on their own
 * condition.  Returns false only when the deadline passed.
 */
bool weft__futex_wait(_Atomic uint32_t *word, uint32_t expect, uint64_t deadline_ns);
/* Wakes up to n threads waiting on word.  Safe on stale addresses. */
void weft__futex_wake(_Atomic uint32_t *word, int n);

/* Channel segments allocated and not yet freed, over all channels: the
 * tests watch retired segments being reclaimed (chan.c). */
size_t weft__chan_segments_live(void);

/* xorshift64*: per-worker randomness for victim choice. */
static inline uint64_t weft__rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

#endif
