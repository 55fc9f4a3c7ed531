/* Command line and reporting shared by the stress programs.  Every stress
 * program takes --seed and --seconds (or its own size) so a failure can be
 * replayed, prints what it ran, and exits non-zero on any failure. */
#ifndef WEFT_STRESS_COMMON_H
#define WEFT_STRESS_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
