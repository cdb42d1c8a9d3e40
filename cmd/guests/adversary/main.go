//go:build tamago

// Command adversary is a hostile Bulkhead guest: one by one it reads and
// writes memory that is not its own (the hypervisor's RAM, another guest's
// RAM at its physical address, the control partition's RAM, devices it was
// not given, unmapped IPAs) and reports what happened to each attempt. Its
// own stage 1 map lets every access through, so whatever stops one is
// stage 2. It exits 0 if every attempt was contained, 1 otherwise.
package main

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/cpu"
)

var scratch uint64

type target struct {
	name string
	ipa  uint64
}

func main() {
	other := bulkheadvm.Arg() // physical address of another guest's RAM
	own := uint64(uintptr(unsafe.Pointer(&scratch)))

	// The control case: its own memory must be readable and writable.
	if _, esr := bulkheadvm.Probe(own, true); esr != 0 {
		fmt.Printf("probe own-ram write %#x: FAILED (ESR %#x)\n", own, esr)
		os.Exit(1)
	}
	if v, esr := bulkheadvm.Probe(own, false); esr != 0 || v != 0x5a5a5a5a5a5a5a5a {
		fmt.Printf("probe own-ram read %#x: FAILED (ESR %#x, value %#x)\n", own, esr, v)
		os.Exit(1)
	}
	fmt.Printf("probe own-ram %#x: allowed\n", own)

	targets := []target{
		{"hypervisor-ram", 0x43ff0000},  // the EL2 exception stack's physical address
		{"hypervisor-heap", 0x41000000}, // past this guest's 16 MiB
		{"other-guest-ram", other},      // another guest's pages, by physical address
		{"control-ram", 0x7f000000},     // RAM nobody donated
		// Devices it was not given. (Its GIC distributor, redistributor
		// and UART are its own: the hypervisor emulates them.)
		{"gic-its", 0x08080000},
		{"rtc", 0x09010000},
		{"virtio-mmio", 0x0a000000},
		{"null", 0x0}, // unmapped IPAs
		{"high-ipa", 0x7f_0000_0000},
	}
	contained := 0
	for _, t := range targets {
		for _, write := range []bool{false, true} {
			op := "read"
			if write {
				op = "write"
			}
			v, esr := bulkheadvm.Probe(t.ipa, write)
			e := cpu.ESR(esr)
			name, _ := e.FaultStatus()
			switch {
			case esr == 0:
				fmt.Printf("probe %s %s %#x: ALLOWED (value %#x)\n", t.name, op, t.ipa, v)
			case e.IsDataAbort() && name == "Synchronous External abort":
				fmt.Printf("probe %s %s %#x: blocked by stage 2 (%s)\n", t.name, op, t.ipa, name)
				contained++
			default:
				fmt.Printf("probe %s %s %#x: faulted, but not at stage 2 (%s)\n", t.name, op, t.ipa, e)
			}
		}
	}
	fmt.Printf("contained %d of %d attempts\n", contained, 2*len(targets))
	if contained != 2*len(targets) {
		os.Exit(1)
	}
}
