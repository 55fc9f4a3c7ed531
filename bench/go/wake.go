// wake peer: a goroutine blocked in a channel receive, woken by a send from a
// goroutine locked to its own OS thread (the closest Go has to a plain
// pthread): latency with the receiver's P still spinning (back to back) and
// parked (2 ms gaps); and inject: starting 1M goroutines back to back.
package main

import (
	"runtime"
	"sort"
	"sync/atomic"
	"time"
)

func pcts(metric string, lat []int64) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	value("wake", metric+"_p50", float64(lat[len(lat)/2]), "ns", "-")
	value("wake", metric+"_p99", float64(lat[len(lat)*99/100]), "ns", "-")
}

func latency(n int, gap time.Duration, metric string) {
	ch := make(chan time.Time)
	done := make(chan time.Duration)
	go func() {
		for t0 := range ch {
			done <- time.Since(t0)
		}
	}()
	lat := make([]int64, n)
	runtime.LockOSThread()
	for i := 0; i < n; i++ {
		if gap > 0 {
			time.Sleep(gap)
		}
		ch <- time.Now()
		lat[i] = (<-done).Nanoseconds()
	}
	runtime.UnlockOSThread()
	close(ch)
	pcts(metric, lat)
}

func inject(n int64) {
	var count int64
	c := start()
	for i := int64(0); i < n; i++ {
		go func() { atomic.AddInt64(&count, 1) }()
	}
	for atomic.LoadInt64(&count) < n {
		runtime.Gosched()
	}
	c.report("wake", "inject", float64(n), 1, "ns", "-")
}

func main() {
	reps, quick := benchFlags()
	runtime.GOMAXPROCS(2)
	for r := 0; r < *reps; r++ {
		if *quick {
			latency(200, 0, "latency_spin")
			latency(20, 2*time.Millisecond, "latency_parked")
			inject(10000)
		} else {
			latency(20000, 0, "latency_spin")
			latency(300, 2*time.Millisecond, "latency_parked")
			inject(1000000)
		}
	}
}
