// memory peer: resident memory per goroutine parked in a channel receive.
// Each measurement runs in a fresh child process: Go keeps the memory of
// exited goroutines, so a second measurement in one process would see none.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
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
	child := flag.Int("child", 0, "internal: measure this many goroutines and print KiB each")
	reps, quick := benchFlags()
	runtime.GOMAXPROCS(2)
	if *child > 0 {
		fmt.Printf("%.4f\n", measure(*child))
		return
	}
	sizes := []int{100000, 1000000}
	names := []string{"rss_per_task_100k", "rss_per_task_1m"}
	if *quick {
		sizes = []int{1000, 10000}
	}
	for r := 0; r < *reps; r++ {
		for i, n := range sizes {
			out, err := exec.Command(os.Args[0], "-child", strconv.Itoa(n)).Output()
			if err != nil {
				fmt.Fprintln(os.Stderr, "memory:", err)
				os.Exit(1)
			}
			v, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
			value("memory", names[i], v, "KiB", "-")
		}
	}
}
