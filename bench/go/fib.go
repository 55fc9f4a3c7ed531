// fib peer: a goroutine per call, no cutoff; the result comes back on a channel.
package main

import (
	"fmt"
	"os"
	"runtime"
)

func fib(n int) int {
	if n < 2 {
		return n
	}
	c := make(chan int, 1)
	go func() { c <- fib(n - 1) }()
	a := fib(n - 2)
	return a + <-c
}

func main() {
	reps, quick := benchFlags()
	n := 30
	if *quick {
		n = 20
	}
	for r := 0; r < *reps; r++ {
		for _, procs := range []int{1, 2} {
			runtime.GOMAXPROCS(procs)
			c := start()
			v := fib(n)
			c.report("fib", "fib30", 1, 1e6, "ms", fmt.Sprintf("workers=%d", procs))
			if n == 30 && v != 832040 {
				fmt.Fprintln(os.Stderr, "fib: wrong result")
				os.Exit(1)
			}
		}
	}
}
