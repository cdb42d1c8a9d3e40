//go:build tamago

// Command ticker is a guest that prints "tick N" every 100 ms, counted on
// its virtual timer, until it is stopped: a console that keeps talking,
// for the tests that watch one VM go on while another stops.
package main

import (
	"fmt"

	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
)

func main() {
	vm.GICInit(1)
	vm.Enable(0, vm.VirtualTimer)
	period := vm.CounterFrequency() / 10
	next := vm.Counter() + period
	vm.SetTimer(next)
	for n := 1; ; {
		id := vm.WaitInterrupt()
		if id == vm.VirtualTimer {
			fmt.Printf("tick %d\n", n)
			n++
			next += period
			vm.SetTimer(next) // re-arming also clears the mask the hypervisor set
		}
		vm.EOI(id)
	}
}
