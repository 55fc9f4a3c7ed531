// lock peer: sync.Mutex uncontended and with 4 goroutines (GOMAXPROCS=2),
// and a hand-off between two goroutines through two 1-slot channels used
// as semaphores.
package main

import (
	"runtime"
	"sync"
)

var counter int64

func main() {
	reps, quick := benchFlags()
	unc, con, hand := 50000000, 10000000, 2000000
	if *quick {
		unc, con, hand = 100000, 100000, 10000
	}
	for r := 0; r < *reps; r++ {
		var mu sync.Mutex
		runtime.GOMAXPROCS(1)
		c := start()
		for i := 0; i < unc; i++ {
			mu.Lock()
			counter++
			mu.Unlock()
		}
		c.report("lock", "uncontended", float64(unc), 1, "ns", "-")
		runtime.GOMAXPROCS(2)
		var wg sync.WaitGroup
		c = start()
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				for i := 0; i < con/4; i++ {
					mu.Lock()
					counter++
					mu.Unlock()
				}
				wg.Done()
			}()
		}
		wg.Wait()
		c.report("lock", "contended_4", float64(con), 1, "ns", "workers=2")
		runtime.GOMAXPROCS(1)
		a, b := make(chan struct{}, 1), make(chan struct{}, 1)
		done := make(chan struct{})
		go func() {
			for i := 0; i < hand; i++ {
				<-b
				a <- struct{}{}
			}
			close(done)
		}()
		c = start()
		for i := 0; i < hand; i++ {
			b <- struct{}{}
			<-a
		}
		c.report("lock", "sem_handoff", float64(hand)*2, 1, "ns", "workers=1")
		<-done
	}
}
