//go:build tamago

package cpu

import (
	"sync/atomic"
	"unsafe"
)

// SecondaryBoot is what a secondary CPU needs to join the hypervisor at
// EL2: the boot CPU's translation regime and controls, its own exception
// stack and per-CPU pointer. secondaryEntry reads it with the MMU off, by
// offset: keep the layout in step with smp_arm64.s.
type SecondaryBoot struct {
	MAIR, TCR, TTBR0, SCTLR uint64 // EL2 stage 1, as on the boot CPU
	VBAR, HCR, CPTR, MDCR   uint64 // vectors and controls, as on the boot CPU
	SP                      uint64 // top of its exception stack (SP_EL2)
	TPIDR                   uint64 // its per-CPU pointer (TPIDR_EL2)
	Up                      uint64 // set to 1 once it runs with the MMU on
	MPIDR                   uint64 // what it read from MPIDR_EL1
}

func saveEL2(b *SecondaryBoot)
func secondaryEntryAddr() uint64
func cleanDCache(addr, size uint64)

// PrepareSecondary fills b for a secondary CPU from this CPU's EL2 state
// and cleans it to the point of coherency, where a CPU whose caches are
// still off reads it.
func PrepareSecondary(b *SecondaryBoot, stackTop, tpidr uint64) {
	saveEL2(b)
	b.SP, b.TPIDR, b.Up, b.MPIDR = stackTop, tpidr, 0, 0
	cleanDCache(uint64(uintptr(unsafe.Pointer(b))), uint64(unsafe.Sizeof(*b)))
}

// SecondaryEntry is the physical address where a secondary CPU starts
// (PSCI CPU_ON's entry point) with x0 = its SecondaryBoot.
func SecondaryEntry() uint64 { return secondaryEntryAddr() }

// IsUp reports whether the secondary has come up.
func (b *SecondaryBoot) IsUp() bool { return atomic.LoadUint64(&b.Up) == 1 }
