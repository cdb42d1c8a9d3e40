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

	// The mailbox through which the parked CPU is handed a Go M (see
	// Give): its g0's stack top, the g0 and where to start (mstart).
	// TaskPC is written last, with release semantics, and the parked
	// loop reads it first, with acquire: once it is non-zero the other
	// two are valid.
	TaskSP, TaskG, TaskPC uint64
	claimed               uint32
}

func saveEL2(b *SecondaryBoot)
func sendEvent()

// WaitForEvent idles until an event: a SEV from another CPU, or the
// generic timer's event stream when EnableEventStream has turned it on.
func WaitForEvent()
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

// Give hands the parked CPU a Go M: it starts running fn (the runtime's
// mstart) on stack sp with g, Go's R28, set to the M's g0, once the caller
// has woken it with an SGI (WakeSGI). It reports false if the CPU already
// has one: an M never exits, so a CPU runs at most one for its lifetime.
// It is called from the runtime's newosproc, possibly without a P, so it
// must not allocate or split its stack.
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
// mailbox.
const WakeSGI = 8

// Running reports whether the CPU has been given an M.
func (b *SecondaryBoot) Running() bool { return atomic.LoadUint64(&b.TaskPC) != 0 }

// Generic timer event stream controls in CNTHCTL_EL2 (E2H = 0): an event
// on each 0 to 1 transition of counter bit EVNTI.
const (
	cnthctlEVNTEN    = 1 << 2
	cnthctlEVNTIMask = 0xf << 4
)

// EventStreamBit picks the counter bit whose 0 to 1 transitions come
// about every period counter ticks: bit n rises every 2^(n+1) ticks.
// EVNTI has four bits, so on a fast counter the stream runs faster than
// asked (1 GHz: every 65 us rather than 100).
func EventStreamBit(period uint64) uint64 {
	n := uint64(0)
	for n < 15 && uint64(2)<<n < period {
		n++
	}
	return n
}

// EnableEventStream turns this CPU's event stream on, so WaitForEvent
// returns at least every period counter ticks without another CPU
// having to send an event. It leaves CNTHCTL_EL2's other bits (the
// guests' access to the EL1 timer and counter) alone and does nothing if
// the stream is already on.
//
//go:nosplit
func EnableEventStream(period uint64) {
	v := ReadCNTHCTL()
	if v&cnthctlEVNTEN != 0 {
		return
	}
	WriteCNTHCTL(v&^cnthctlEVNTIMask | EventStreamBit(period)<<4 | cnthctlEVNTEN)
}
