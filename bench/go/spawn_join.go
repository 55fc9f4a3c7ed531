// spawn_join peer: start an empty goroutine and wait for it, batches of 1000.
package main

import (
	"runtime"
	"sync"
)

func main() {
	reps, quick := benchFlags()
	total := 1000000
	if *quick {
		total = 10000
	}
	for r := 0; r < *reps; r++ {
		for _, procs := range []int{1, 2} {
			runtime.GOMAXPROCS(procs)
			c := start()
			for done := 0; done < total; done += 1000 {
				var wg sync.WaitGroup
				wg.Add(1000)
				for i := 0; i < 1000; i++ {
					go func() { wg.Done() }()
				}
				wg.Wait()
			}
			params := "workers=1"
			if procs == 2 {
				params = "workers=2"
			}
			c.report("spawn_join", "spawn_join", float64(total), 1, "ns", params)
		}
	}
}
