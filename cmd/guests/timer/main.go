//go:build tamago

// Command timer is a guest that programs its virtual timer to interrupt it
// every 10 ms, 100 times, and checks that the interrupts arrive at that
// rate (within 5%) measured against its virtual counter. It exits 0 when
// they do, 1 otherwise.
package main

import (
	"fmt"
	"os"

	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
)

const (
	ticks = 100
	hz    = 100
)

func main() {
	vm.GICInit(1)
	vm.Enable(0, vm.VirtualTimer)
	period := vm.CounterFrequency() / hz
	start := vm.Counter()
	var maxLate, last uint64
	next := start + period
	vm.SetTimer(next)
	for i := 0; i < ticks; i++ {
		id := vm.WaitInterrupt()
		now := vm.Counter()
		if id != vm.VirtualTimer {
			fmt.Printf("timer: unexpected interrupt %d\n", id)
			os.Exit(1)
		}
		if now < next {
			fmt.Printf("timer: interrupt %d arrived %d ticks early\n", i, next-now)
			os.Exit(1)
		}
		if late := now - next; late > maxLate {
			maxLate = late
		}
		last = now
		next += period
		vm.SetTimer(next) // re-arming also clears the mask the hypervisor set
		vm.EOI(id)
	}
	vm.SetTimer(0)
	// The rate as observed: from the start to the last interrupt's arrival.
	elapsed := last - start
	want := uint64(ticks) * period
	mean := float64(elapsed) / ticks * 1000 / float64(vm.CounterFrequency())
	usLate := maxLate * 1000000 / vm.CounterFrequency()
	dev := float64(int64(elapsed)-int64(want)) / float64(want) * 100
	fmt.Printf("timer: %d interrupts, mean interval %.3f ms (want %.3f ms, %+.2f%%), max lateness %d us\n",
		ticks, mean, 1000.0/hz, dev, usLate)
	if dev > 5 || dev < -5 {
		fmt.Printf("timer: rate off by more than 5%%\n")
		os.Exit(1)
	}
	fmt.Printf("timer: rate ok\n")
}
