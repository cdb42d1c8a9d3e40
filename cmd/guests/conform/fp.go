//go:build tamago

package main

import (
	"sync/atomic"

	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
)

func fpYields(n, seed, fpcr uint64) (bad uint64)
func fpSpinnerAddr() uint64

// fpBad and fpSpins are fpSpinner's tallies; fpStop ends it.
var fpBad, fpSpins, fpStop uint64

// fp checks that each vCPU keeps its own FP/SIMD registers (q0-q31 and
// FPCR) across exits: vCPU 0 fills them with its patterns and checks them
// after each of 20,000 YIELDs, while vCPU 1 does the same with others,
// on the same physical CPU (each YIELD then switches between the two) or
// on another.
func fp(ncpus int) {
	const yields = 20000
	if ncpus == 1 {
		bad := fpYields(yields, 0xf00d000000000000, 0x00c00000)
		check("fp-own-registers", bad == 0, "%d registers or lanes changed over %d yields", bad, yields)
		return
	}
	vm.StopCPU(1)
	if !waitFor(ms(1000), func() bool { on, _ := vm.CPUOn(1); return !on }) {
		check("fp-own-registers", false, "vCPU 1 still on 1 s after it was asked to power off")
		return
	}
	atomic.StoreUint64(&fpBad, 0)
	atomic.StoreUint64(&fpSpins, 0)
	atomic.StoreUint64(&fpStop, 0)
	if r := vm.StartCPUAt(1, fpSpinnerAddr()); r != 0 {
		check("fp-own-registers", false, "CPU_ON of vCPU 1: %d", r)
		return
	}
	// Wait until vCPU 1 runs its loop, so that the yields overlap it.
	waitFor(ms(1000), func() bool { return atomic.LoadUint64(&fpSpins) > 0 })
	bad := fpYields(yields, 0xf00d000000000000, 0x00c00000) // FPCR.RMode: towards zero
	atomic.StoreUint64(&fpStop, 1)
	off := waitFor(ms(1000), func() bool { on, _ := vm.CPUOn(1); return !on })
	spins, bad1 := atomic.LoadUint64(&fpSpins), atomic.LoadUint64(&fpBad)
	check("fp-own-registers", bad == 0 && bad1 == 0 && spins > 0 && off,
		"vCPU 0: %d registers or lanes changed over %d yields; vCPU 1: %d over %d rounds (want some), powered off %v",
		bad, yields, bad1, spins, off)
	vm.StartCPU(1)
}
