//go:build tamago

// Command bench measures hypercall round trips from a guest. Under QEMU
// with -icount shift=0 every instruction takes 1 ns of virtual time and the
// 62.5 MHz counter ticks every 16 instructions, so counter ticks over a
// long loop give a deterministic instruction count.
package main

import (
	"fmt"
	"sync/atomic"

	"github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
)

// loops times n iterations of an empty loop and of a loop around
// HVC SMCCC_VERSION, in counter ticks.
func loopEmpty(n uint64) uint64
func loopHVC(n uint64) uint64
func loopSGI(n uint64) uint64
func loopYield(n uint64) uint64
func loopUART(n uint64) uint64

const iterations = 1 << 16

// scaleIterations is the scale benchmark's timed loop: long enough (some
// 150 million instructions) to span many of the emulator's turns, which
// under -icount run the CPUs one at a time; 2^16 fit in one turn of
// vCPU 0, and the others made no round trip inside it.
const scaleIterations = 1 << 20

// hvcForever is what the other busy vCPUs of the scale benchmark run:
// HVC SMCCC_VERSION for good, counting its round trips in counts.
func hvcForever()
func hvcForeverPC() uint64

// counts holds each vCPU's round trips, a cache line (8 words) apart.
var counts [bulkheadvm.MaxIRQCPUs * 8]uint64

func main() {
	freq := bulkheadvm.CounterFrequency()
	// One tick of the counter is this many instructions under icount
	// shift=0 (1 instruction per ns).
	perTick := 1e9 / float64(freq)
	if n := int(bulkheadvm.Arg()); n > 0 {
		scale(n, perTick)
		return
	}
	empty := float64(loopEmpty(iterations)) * perTick / iterations
	hvc := float64(loopHVC(iterations)) * perTick / iterations
	fmt.Printf("bench: counter %d Hz, %d iterations\n", freq, iterations)
	fmt.Printf("bench: empty loop: %.1f instructions per iteration\n", empty)
	fmt.Printf("bench: null hypercall (HVC SMCCC_VERSION round trip): %.0f instructions\n", hvc-empty)
	uart := float64(loopUART(iterations)) * perTick / iterations
	fmt.Printf("bench: UART register read (UARTFR, emulated in EL2): %.0f instructions\n", uart-empty)

	// Virtual interrupt injection: an SGI this vCPU sends itself, from
	// the trapped ICC_SGI1R_EL1 write to the acknowledge and EOI.
	bulkheadvm.GICInit(2)
	bulkheadvm.Enable(0, 5)
	bulkheadvm.Enable(1, 4)
	sgi := float64(loopSGI(iterations/16)) * perTick / (iterations / 16)
	fmt.Printf("bench: virtual interrupt injection (SGI to self, trap to acknowledge and EOI): %.0f instructions\n", sgi-empty)

	// vCPU switch: vCPU 1 is sent into a YIELD loop; each YIELD here then
	// switches to it and back, two switches and two hypercalls.
	bulkheadvm.SendSGI(1, 4)
	yield := float64(loopYield(iterations/16)) * perTick / (iterations / 16)
	fmt.Printf("bench: vCPU switch (YIELD between two vCPUs, per switch): %.0f instructions\n", (yield-empty)/2-(hvc-empty))
}

// scale measures hypercalls with n vCPUs making them at once (the guest's
// argument): vCPUs 1 to n-1 loop in hvcForever, vCPU 0 times its own loop,
// and the figure is the machine's instructions, under icount, per round
// trip made by any of them. With every CPU handling its own exits and
// nothing shared on that path, it stays that of one.
func scale(n int, perTick float64) {
	// Every other vCPU is powered off first: one waiting in the board's
	// SGI loop would exit on each WFE.
	cpus := 1
	for _, ok := bulkheadvm.CPUOn(cpus); ok; _, ok = bulkheadvm.CPUOn(cpus) {
		cpus++
	}
	bulkheadvm.GICInit(cpus)
	for i := 1; i < cpus; i++ {
		bulkheadvm.Enable(i, bulkheadvm.OffSGI)
		bulkheadvm.StopCPU(i)
		for on, _ := bulkheadvm.CPUOn(i); on; on, _ = bulkheadvm.CPUOn(i) {
		}
	}
	for i := 1; i < n; i++ {
		if r := bulkheadvm.StartCPUAt(i, hvcForeverPC()); r != 0 {
			fmt.Printf("bench: scale: CPU_ON of vCPU %d: %d\n", i, r)
			return
		}
		for atomic.LoadUint64(&counts[8*i]) == 0 {
		}
	}
	before := make([]uint64, n)
	for i := 1; i < n; i++ {
		before[i] = atomic.LoadUint64(&counts[8*i])
	}
	ticks := loopHVC(scaleIterations)
	total := uint64(scaleIterations)
	for i := 1; i < n; i++ {
		total += atomic.LoadUint64(&counts[8*i]) - before[i]
	}
	fmt.Printf("bench: scale: %d vCPU(s) busy: %.0f instructions per hypercall (%d round trips)\n",
		n, float64(ticks)*perTick/float64(total), total)
}
