// memory peer: resident memory per goroutine parked in a channel receive.
package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

func rssKiB() float64 {
	b, _ := os.ReadFile("/proc/self/statm")
	f := strings.Fields(string(b))
	res, _ := strconv.ParseFloat(f[1], 64)
	return res * float64(os.Getpagesize()) / 1024
}

func measure(n int) float64 {
	runtime.GC()
	before := rssKiB()
	block := make(chan struct{})
	var started sync.WaitGroup
	started.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-block
		}()
	}
	started.Wait()
	per := (rssKiB() - before) / float64(n)
	close(block)
	return per
}

func main() {
	reps, quick := benchFlags()
	runtime.GOMAXPROCS(2)
	sizes := []int{100000, 1000000}
	if *quick {
		sizes = []int{1000, 10000}
	}
	for r := 0; r < *reps; r++ {
		value("memory", "rss_per_task_100k", measure(sizes[0]), "KiB", "-")
		value("memory", "rss_per_task_1m", measure(sizes[1]), "KiB", "-")
	}
}
