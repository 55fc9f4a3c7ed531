// Shared helpers of the Go peer programs: the same RESULT lines as bench/bench.h.
package main

import (
	"flag"
	"fmt"
	"syscall"
	"time"
)

func benchFlags() (*int, *bool) {
	reps := flag.Int("reps", 5, "repetitions")
	quick := flag.Bool("quick", false, "tiny sizes, one repetition")
	if !flag.Parsed() {
		flag.Parse()
	}
	if *quick {
		*reps = 1
	}
	return reps, quick
}

func cpuNs() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

type clock struct {
	wall time.Time
	cpu  int64
}

func start() clock { return clock{time.Now(), cpuNs()} }

func (c clock) report(bench, metric string, ops, unitNs float64, unit, params string) {
	wall := float64(time.Since(c.wall).Nanoseconds())
	cpu := float64(cpuNs() - c.cpu)
	fmt.Printf("RESULT %s %s go %.3f %s %.3f %s\n", bench, metric, wall/ops/unitNs, unit, cpu/ops/unitNs, params)
}

func value(bench, metric string, v float64, unit, params string) {
	fmt.Printf("RESULT %s %s go %.3f %s 0 %s\n", bench, metric, v, unit, params)
}
