//go:build tamago

// Command bench measures hypercall round trips from a guest. Under QEMU
// with -icount shift=0 every instruction takes 1 ns of virtual time and the
// 62.5 MHz counter ticks every 16 instructions, so counter ticks over a
// long loop give a deterministic instruction count.
package main

import (
	"fmt"

	"github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
)

// loops times n iterations of an empty loop and of a loop around
// HVC SMCCC_VERSION, in counter ticks.
func loopEmpty(n uint64) uint64
func loopHVC(n uint64) uint64

const iterations = 1 << 16

func main() {
	freq := bulkheadvm.CounterFrequency()
	// One tick of the counter is this many instructions under icount
	// shift=0 (1 instruction per ns).
	perTick := 1e9 / float64(freq)
	empty := float64(loopEmpty(iterations)) * perTick / iterations
	hvc := float64(loopHVC(iterations)) * perTick / iterations
	fmt.Printf("bench: counter %d Hz, %d iterations\n", freq, iterations)
	fmt.Printf("bench: empty loop: %.1f instructions per iteration\n", empty)
	fmt.Printf("bench: null hypercall (HVC SMCCC_VERSION round trip): %.0f instructions\n", hvc-empty)
}
