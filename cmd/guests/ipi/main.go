//go:build tamago

// Command ipi is a two-vCPU guest: vCPU 0 sends SGI 1 to vCPU 1, which
// answers with SGI 2 (board/bulkheadvm's secondary loop), 100 times. It
// exits 0 when every answer arrived.
package main

import (
	"fmt"
	"os"

	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
)

const rounds = 100

func main() {
	vm.GICInit(2)
	vm.Enable(1, 1) // vCPU 1 takes SGI 1
	vm.Enable(0, 2) // vCPU 0 takes SGI 2
	var total, worst uint64
	for i := 0; i < rounds; i++ {
		t0 := vm.Counter()
		vm.SendSGI(1, 1)
		id := vm.WaitInterrupt()
		vm.EOI(id)
		if id != 2 {
			fmt.Printf("ipi: round %d: got interrupt %d, want SGI 2\n", i, id)
			os.Exit(1)
		}
		d := vm.Counter() - t0
		total += d
		if d > worst {
			worst = d
		}
	}
	us := func(t uint64) uint64 { return t * 1000000 / vm.CounterFrequency() }
	fmt.Printf("ipi: %d round trips vCPU 0 -> 1 -> 0, mean %d us, worst %d us\n", rounds, us(total/rounds), us(worst))
}
