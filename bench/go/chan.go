// chan peer: Go channels on the same programs as bench/bench_chan.c, with
// GOMAXPROCS=2 (skynet also on 1), items of 8 bytes.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
)

func pingpong(n int) {
	a, b := make(chan int64), make(chan int64)
	go func() {
		for i := 0; i < n; i++ {
			v := <-a
			b <- v
		}
	}()
	c := start()
	for i := 0; i < n; i++ {
		a <- int64(i)
		<-b
	}
	c.report("chan", "chan_pingpong", float64(n), 1, "ns", "workers=2")
}

func runPC(metric string, capacity, np, nc int, n int64) {
	ch := make(chan int64, capacity)
	per := n / int64(np)
	var pw, cw sync.WaitGroup
	sums := make([]int64, nc)
	c := start()
	for i := 0; i < np; i++ {
		pw.Add(1)
		go func() {
			for v := int64(1); v <= per; v++ {
				ch <- v
			}
			pw.Done()
		}()
	}
	for i := 0; i < nc; i++ {
		cw.Add(1)
		go func(i int) {
			var s int64
			for v := range ch {
				s += v
			}
			sums[i] = s
			cw.Done()
		}(i)
	}
	pw.Wait()
	close(ch)
	cw.Wait()
	c.report("chan", metric, float64(per*int64(np)), 1, "ns", "workers=2")
	var sum int64
	for _, s := range sums {
		sum += s
	}
	if sum != int64(np)*per*(per+1)/2 {
		fmt.Fprintln(os.Stderr, "chan: wrong sum")
		os.Exit(1)
	}
}

func skynetChan(c chan int64, num, size int64) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int64)
	var sum int64
	for i := int64(0); i < 10; i++ {
		go skynetChan(rc, num+i*(size/10), size/10)
	}
	for i := 0; i < 10; i++ {
		sum += <-rc
	}
	c <- sum
}

func main() {
	reps, quick := benchFlags()
	nPing, nItems, nMatrix, leaves := 1000000, int64(10000000), int64(2000000), int64(1000000)
	if *quick {
		nPing, nItems, nMatrix, leaves = 10000, 100000, 20000, 10000
	}
	caps := []int{0, 1, 1024, 1 << 30}
	capName := []string{"c0", "c1", "c1024", "cunb"}
	shapes := [][2]int{{1, 1}, {4, 1}, {4, 4}}
	shapeName := []string{"spsc", "mpsc", "mpmc"}
	for r := 0; r < *reps; r++ {
		runtime.GOMAXPROCS(2)
		pingpong(nPing)
		runPC("chan_spsc", 1024, 1, 1, nItems)
		runPC("chan_mpmc", 1024, 4, 4, nItems)
		for k := range caps {
			for s := range shapes {
				capacity := caps[k]
				if capacity == 1<<30 {
					capacity = int(nMatrix) // Go has no unbounded channel: buffer them all
				}
				runPC(fmt.Sprintf("matrix_%s_%s", capName[k], shapeName[s]), capacity, shapes[s][0], shapes[s][1], nMatrix)
			}
		}
		for _, procs := range []int{2, 1} {
			runtime.GOMAXPROCS(procs)
			c := start()
			ch := make(chan int64)
			go skynetChan(ch, 0, leaves)
			sum := <-ch
			c.report("skynet", "skynet_chan", 1, 1e6, "ms", fmt.Sprintf("workers=%d", procs))
			if sum != leaves*(leaves-1)/2 {
				fmt.Fprintln(os.Stderr, "skynet_chan: wrong sum")
				os.Exit(1)
			}
		}
	}
}
