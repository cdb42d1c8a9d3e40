//go:build tamago

// Command storm is a hostile guest that raises interrupts as fast as it
// can: SGI 3 to itself, taken and sent again, for ARG milliseconds of its
// own virtual time (x0, default 500). Every SGI traps to the hypervisor.
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
	vm.GICInit(1)
	vm.Enable(0, 3)
	end := vm.Counter() + ms*vm.CounterFrequency()/1000
	n := 0
	for vm.Counter() < end {
		vm.SendSGI(0, 3)
		if id, ok := vm.PollInterrupt(); ok {
			vm.EOI(id)
			n++
		}
	}
	fmt.Printf("storm: took %d self-sent interrupts in %d ms of virtual time\n", n, ms)
}
