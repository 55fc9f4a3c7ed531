/*
 * Shared helpers of the C benchmark programs.
 *
 * Every program prints one line per measurement and repetition:
 *   RESULT <bench> <metric> <impl> <value> <unit> <cpu-per-op> <params>
 * value and cpu-per-op are in <unit> (lower is better); the report program
 * (bench/report) takes medians over repetitions and prints ratios against
 * weft.  Options: --reps N (default 5), --quick (tiny sizes, one rep: CI).
 */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static int bench_reps = 5;
static int bench_quick = 0;

static inline void bench_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            bench_quick = 1;
            bench_reps = 1;
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            bench_reps = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--reps N] [--quick]\n", argv[0]);
            exit(2);
        }
    }
}

static inline uint64_t bench_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Process CPU time (all threads, user + system). */
static inline uint64_t bench_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

typedef struct {
    uint64_t wall, cpu;
} bench_clock;

static inline bench_clock bench_start(void)
{
    bench_clock c = {bench_wall_ns(), bench_cpu_ns()};
    return c;
}

/* Prints a RESULT line: elapsed since c, divided by ops, in unit_ns units. */
static inline void bench_report(bench_clock c, const char *bench, const char *metric,
                                const char *impl, double ops, double unit_ns, const char *unit,
                                const char *params)
{
    uint64_t wall = bench_wall_ns() - c.wall, cpu = bench_cpu_ns() - c.cpu;
    printf("RESULT %s %s %s %.3f %s %.3f %s\n", bench, metric, impl, (double)wall / ops / unit_ns,
           unit, (double)cpu / ops / unit_ns, params);
    fflush(stdout);
}

static inline void bench_value(const char *bench, const char *metric, const char *impl, double v,
                               const char *unit, const char *params)
{
    printf("RESULT %s %s %s %.3f %s 0 %s\n", bench, metric, impl, v, unit, params);
    fflush(stdout);
}

/* Runs root once per repetition on 1 and on 2 workers; root gets its
 * "workers=N" parameter string as its argument. */
#ifdef WEFT_H
static inline void bench_on_1_and_2_workers(weft_fn root)
{
    weft_options o;
    weft_options_init(&o);
    for (int r = 0; r < bench_reps; r++) {
        for (unsigned w = 1; w <= 2; w++) {
            o.workers = w;
            weft_run(&o, root, w == 1 ? "workers=1" : "workers=2", NULL);
        }
    }
}
#endif

#endif
