// switch peer: runtime.Gosched between two goroutines on one P (per Gosched).
package main

import (
	"runtime"
	"sync"
)

func main() {
	reps, quick := benchFlags()
	n := 10000000
	if *quick {
		n = 100000
	}
	runtime.GOMAXPROCS(1)
	for r := 0; r < *reps; r++ {
		c := start()
		var wg sync.WaitGroup
		wg.Add(2)
		for k := 0; k < 2; k++ {
			go func() {
				for i := 0; i < n; i++ {
					runtime.Gosched()
				}
				wg.Done()
			}()
		}
		wg.Wait()
		c.report("switch", "yield_pair", float64(2*n), 1, "ns", "gomaxprocs=1")
	}
}
