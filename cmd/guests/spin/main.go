//go:build tamago

// Command spin is a hostile guest that never yields: with interrupts
// masked it spins for ARG milliseconds of its own virtual time (x0, default
// 500), then exits. Only preemption by the hypervisor lets others run.
package main

import (
	"fmt"

	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
)

func main() {
	ms := vm.Arg()
	if ms == 0 {
		ms = 500
	}
	end := vm.Counter() + ms*vm.CounterFrequency()/1000
	n := 0
	for vm.Counter() < end {
		n++
	}
	fmt.Printf("spin: spun %d ms of virtual time (%d loops) without yielding\n", ms, n)
}
