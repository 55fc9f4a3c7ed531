/* Command line and reporting shared by the stress programs.  Every stress
 * program takes --seed and --seconds (or its own size) so a failure can be
 * replayed, prints what it ran, and exits non-zero on any failure. */
#ifndef WEFT_STRESS_COMMON_H
#define WEFT_STRESS_COMMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <weft.h>

#include "internal.h"

#define STRESS_FAIL(...)                                                                       \
    do {                                                                                       \
        fprintf(stderr, "FAIL: " __VA_ARGS__);                                                 \
        fputc('\n', stderr);                                                                   \
        abort();                                                                               \
    } while (0)
#define STRESS_CHECK(c)                                                                        \
    do {                                                                                       \
        if (!(c)) STRESS_FAIL("%s:%d: %s", __FILE__, __LINE__, #c);                            \
    } while (0)

/* Reads "--name value" pairs into the matching unsigned long long slots. */
struct stress_opt {
    const char *name;
    unsigned long long *value;
};

static inline void stress_parse(int argc, char **argv, struct stress_opt *opts, size_t n)
{
    for (int i = 1; i < argc; i++) {
        size_t k = 0;
        for (; k < n; k++)
            if (strcmp(argv[i], opts[k].name) == 0 && i + 1 < argc) {
                *opts[k].value = strtoull(argv[++i], NULL, 0);
                break;
            }
        if (k == n) {
            fprintf(stderr, "usage: %s", argv[0]);
            for (k = 0; k < n; k++) fprintf(stderr, " [%s N]", opts[k].name);
            fputc('\n', stderr);
            exit(2);
        }
    }
}

/* The library's xorshift64* (src/internal.h): seeded, replayable. */
#define stress_rand weft__rand

/*
 * Tokens for cancel storms: callers bind scopes to a random one of n live
 * tokens; a canceller pthread (the only caller of rotate) cancels a random
 * one and puts a fresh one in its place.  Cancelled tokens are kept (a scope
 * may still be bound to them) until fini, at most max_retired of them.
 */
#define STRESS_TOKENS_MAX 16
typedef struct stress_tokens {
    _Atomic(weft_token *) tok[STRESS_TOKENS_MAX];
    unsigned n;
    weft_token **retired; /* canceller only, then fini */
    size_t n_retired, max_retired;
} stress_tokens;

static inline void stress_tokens_init(stress_tokens *p, unsigned n, size_t max_retired)
{
    STRESS_CHECK(n >= 1 && n <= STRESS_TOKENS_MAX);
    p->n = n;
    p->n_retired = 0;
    p->max_retired = max_retired;
    p->retired = calloc(max_retired, sizeof *p->retired);
    STRESS_CHECK(p->retired);
    for (unsigned i = 0; i < n; i++) {
        weft_token *t;
        STRESS_CHECK(weft_token_create(&t, NULL) == 0);
        atomic_store(&p->tok[i], t);
    }
}

static inline weft_token *stress_tokens_pick(stress_tokens *p, uint64_t *rng)
{
    /* acquire: the token's creation happens before it is bound. */
    return atomic_load_explicit(&p->tok[stress_rand(rng) % p->n], memory_order_acquire);
}

/* Cancels and replaces one token; false (nothing done) once the retired
 * list is full. */
static inline bool stress_tokens_rotate(stress_tokens *p, uint64_t *rng)
{
    if (p->n_retired >= p->max_retired) return false;
    unsigned i = (unsigned)(stress_rand(rng) % p->n);
    weft_token *fresh;
    STRESS_CHECK(weft_token_create(&fresh, NULL) == 0);
    /* release: publishes the new token to binders. */
    weft_token *old = atomic_exchange_explicit(&p->tok[i], fresh, memory_order_acq_rel);
    weft_token_cancel(old);
    p->retired[p->n_retired++] = old;
    return true;
}

/* A canceller thread's loop: until *stop, sleeps up to max_ns, then
 * rotates a token (stops early once the retired list is full). */
static inline void stress_tokens_churn(stress_tokens *p, _Atomic bool *stop, long max_ns,
                                       uint64_t rng)
{
    while (!atomic_load_explicit(stop, memory_order_relaxed)) {
        struct timespec ts = {0, (long)(stress_rand(&rng) % (uint64_t)max_ns)};
        nanosleep(&ts, NULL);
        if (!stress_tokens_rotate(p, &rng)) break;
    }
}

/* Call once no canceller runs and no scope is bound any more. */
static inline void stress_tokens_fini(stress_tokens *p)
{
    for (size_t i = 0; i < p->n_retired; i++) weft_token_unref(p->retired[i]);
    for (unsigned i = 0; i < p->n; i++) weft_token_unref(atomic_load(&p->tok[i]));
    free(p->retired);
}

#endif
