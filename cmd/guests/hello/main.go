//go:build tamago

// Command hello is a TamaGo guest for Bulkhead: it shows that the Go
// runtime works at EL1 under stage 2 (goroutines, channels, maps, timers,
// the heap) and exits with the status the hypervisor passed it in x0.
package main

import (
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/cpu"
)

func main() {
	status := int(bulkheadvm.Arg())
	fmt.Printf("hello from a TamaGo guest at EL%d\n", cpu.Decode(cpu.IDRegs{CurrentEL: cpu.ReadCurrentEL()}).EL)

	// Goroutines and channels: sum squares in parallel workers.
	results := make(chan int)
	for w := 0; w < 4; w++ {
		go func(w int) {
			s := 0
			for i := w; i < 1000; i += 4 {
				s += i * i
			}
			results <- s
		}(w)
	}
	total := 0
	for w := 0; w < 4; w++ {
		total += <-results
	}
	fmt.Printf("sum of squares below 1000: %d\n", total)

	// Maps and the heap.
	words := map[string]int{}
	for _, w := range []string{"stage", "two", "keeps", "guests", "apart", "two", "two"} {
		words[w]++
	}
	keys := make([]string, 0, len(words))
	for k := range words {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Printf("word counts: %d distinct, \"two\" seen %d times\n", len(keys), words["two"])

	// Timers run on the virtual counter; while this guest sleeps it
	// yields, and other guests run.
	start := time.Now()
	for i := 1; i <= 5; i++ {
		time.Sleep(10 * time.Millisecond)
		fmt.Printf("tick %d\n", i)
	}
	if d := time.Since(start); d >= 50*time.Millisecond {
		fmt.Printf("slept at least 50ms\n")
	} else {
		fmt.Printf("sleep returned early after %v\n", d)
		os.Exit(99)
	}

	fmt.Printf("exiting with status %d\n", status)
	os.Exit(status)
}
