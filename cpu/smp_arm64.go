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

	// The mailbox through which the parked CPU is handed what it runs
	// from then on (see Give), its idle thread (cpumux): a stack top, a
	// value for g and where to start.
	// TaskPC is written last, with release semantics, and the parked
	// loop reads it first, with acquire: once it is non-zero the other
	// two are valid.
	TaskSP, TaskG, TaskPC uint64
	claimed               uint32
}

func saveEL2(b *SecondaryBoot)
func sendEvent()

func secondaryEntryAddr() uint64

// CleanDCache cleans [addr, addr+size) to the point of coherency, where
// a reader with its caches off (a CPU starting up) sees it.
func CleanDCache(addr, size uint64)

// PrepareSecondary fills b for a secondary CPU from this CPU's EL2 state
// and cleans it to the point of coherency, where a CPU whose caches are
// still off reads it.
func PrepareSecondary(b *SecondaryBoot, stackTop, tpidr uint64) {
	saveEL2(b)
	b.SP, b.TPIDR, b.Up, b.MPIDR = stackTop, tpidr, 0, 0
	CleanDCache(uint64(uintptr(unsafe.Pointer(b))), uint64(unsafe.Sizeof(*b)))
}

// SecondaryEntry is the physical address where a secondary CPU starts
// (PSCI CPU_ON's entry point) with x0 = its SecondaryBoot.
func SecondaryEntry() uint64 { return secondaryEntryAddr() }

// IsUp reports whether the secondary has come up.
func (b *SecondaryBoot) IsUp() bool { return atomic.LoadUint64(&b.Up) == 1 }

// Give hands the parked CPU what it runs for good: it starts running fn
// on stack sp (SP_EL0) with g, Go's R28, set to g, once the caller has
// woken it with an SGI (WakeSGI). It reports false if the CPU was given
// something already.
//
//go:nosplit
func (b *SecondaryBoot) Give(sp, g, fn uint64) bool {
	if !b.IsUp() || !atomic.CompareAndSwapUint32(&b.claimed, 0, 1) {
		return false
	}
	b.TaskSP, b.TaskG = sp, g
	atomic.StoreUint64(&b.TaskPC, fn) // STLR: SP and g are visible first
	sendEvent()
	return true
}

// WakeSGI is the SGI that wakes a parked CPU (from WFI) to look at its
// mailbox, and an idle one (cpumux) to look at its threads.
const WakeSGI = 8

// Running reports whether the CPU has been given what it runs.
func (b *SecondaryBoot) Running() bool { return atomic.LoadUint64(&b.TaskPC) != 0 }
