// cancel peer: Go's context package.
//   check      ctx.Err() on a live cancellable context
//   child      context.WithCancel(parent) and its cancel func
//   cancel_1m  1M goroutines parked on <-ctx.Done(): cancel() + wg.Wait()
package main

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	reps, quick := benchFlags()
	checks, children, parked := 200000000, 2000000, 1000000
	if *quick {
		checks, children, parked = 1000000, 10000, 10000
	}
	for r := 0; r < *reps; r++ {
		runtime.GOMAXPROCS(1)
		ctx, cancel := context.WithCancel(context.Background())
		sink := 0
		c := start()
		for i := 0; i < checks; i++ {
			if ctx.Err() != nil {
				sink++
			}
		}
		c.report("cancel", "check", float64(checks), 1, "ns", "-")
		c = start()
		for i := 0; i < children; i++ {
			_, cc := context.WithCancel(ctx)
			cc()
		}
		c.report("cancel", "child", float64(children), 1, "ns", "-")
		cancel()
		if sink != 0 {
			panic("cancelled")
		}
		for _, procs := range []int{1, 2} {
			runtime.GOMAXPROCS(procs)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var entered int64
			wg.Add(parked)
			for i := 0; i < parked; i++ {
				go func() {
					atomic.AddInt64(&entered, 1)
					<-ctx.Done()
					wg.Done()
				}()
			}
			for atomic.LoadInt64(&entered) < int64(parked) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(2 * time.Millisecond)
			c := start()
			cancel()
			wg.Wait()
			params := "workers=1"
			if procs == 2 {
				params = "workers=2"
			}
			c.report("cancel", "cancel_1m", 1, 1e6, "ms", params)
			runtime.GC()
		}
	}
}
