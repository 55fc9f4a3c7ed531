// skynet peer: the canonical Go skynet (goroutines summing through channels).
package main

import (
	"fmt"
	"os"
	"runtime"
)

func skynet(c chan int64, num, size, div int64) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int64)
	var sum int64
	for i := int64(0); i < div; i++ {
		sub := num + i*(size/div)
		go skynet(rc, sub, size/div, div)
	}
	for i := int64(0); i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func main() {
	reps, quick := benchFlags()
	leaves := int64(1000000)
	if *quick {
		leaves = 10000
	}
	for r := 0; r < *reps; r++ {
		for _, procs := range []int{1, 2} {
			runtime.GOMAXPROCS(procs)
			c := start()
			ch := make(chan int64)
			go skynet(ch, 0, leaves, 10)
			sum := <-ch
			params := fmt.Sprintf("workers=%d", procs)
			c.report("skynet", "skynet_join", 1, 1e6, "ms", params)
			if sum != leaves*(leaves-1)/2 {
				fmt.Fprintln(os.Stderr, "skynet: wrong sum")
				os.Exit(1)
			}
		}
	}
}
