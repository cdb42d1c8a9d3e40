//go:build tamago

package bulkheadvm

import (
	"sync/atomic"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/cpu"
)

// Interrupts taken as exceptions. Guests that poll (WaitInterrupt) keep
// PSTATE.I masked; a guest that unmasks it takes each interrupt through
// the vector table's IRQ entry (irq_arm64.s), which acknowledges it,
// quiets its source, records it and ends it, without entering Go: the
// interrupted code may be any Go code, the runtime's included.

// MaxIRQCPUs and MaxIRQ bound what the handler records: vCPUs by Aff0,
// INTIDs below MaxIRQ (SGIs, PPIs and the first 64 SPIs).
const (
	MaxIRQCPUs = 16
	MaxIRQ     = 96
)

var (
	// irqCount counts, per vCPU, the interrupts of each INTID taken.
	irqCount [MaxIRQCPUs][MaxIRQ]uint32
	// irqActive holds, per vCPU, the GICR_ISACTIVER0 or GICD_ISACTIVER<n>
	// word that covers the last interrupt taken, read while it was
	// handled and again after its EOI.
	irqActive [MaxIRQCPUs][2]uint32
	// irqQuiet is, per INTID, a device register the handler writes to
	// lower a level-sensitive interrupt before ending it (0: none), and
	// the value written there.
	irqQuiet [MaxIRQ][2]uint64
)

func irqOn()
func irqOff()

// EnableIRQs unmasks interrupts (PSTATE.I) on this vCPU.
func EnableIRQs() { irqOn() }

// DisableIRQs masks them again.
func DisableIRQs() { irqOff() }

// IRQCount is how many interrupts intid vCPU cpu has taken.
func IRQCount(cpu int, intid uint32) uint32 {
	return atomic.LoadUint32(&irqCount[cpu][intid])
}

// IRQActive is the active-state word of vCPU cpu's last interrupt, read
// during its handling and after its EOI.
func IRQActive(cpu int) (during, after uint32) {
	return atomic.LoadUint32(&irqActive[cpu][0]), atomic.LoadUint32(&irqActive[cpu][1])
}

// QuietIRQ makes the handler write value to the 32-bit device register at
// addr before it ends interrupt intid: how a level-sensitive device's
// interrupt is cleared. The virtual timer (PPI 27) needs none: the handler
// masks it (CNTV_CTL_EL0.IMASK), as Linux's does.
func QuietIRQ(intid uint32, addr uint64, value uint32) {
	irqQuiet[intid] = [2]uint64{addr, uint64(value)}
}

// bootRecord is what a vCPU started with StartCPU reads, with its MMU
// off, to take the caller's translation regime and vectors, and where its
// stack is.
type bootRecord struct {
	mair, tcr, ttbr0, sctlr, sp uint64
	then                        uint64 // where it goes instead of waiting (0: it waits)
}

var (
	boots  [MaxIRQCPUs]bootRecord
	stacks [MaxIRQCPUs][4096]byte
)

func readMMURegs() (mair, tcr, ttbr0, sctlr uint64)
func irqSecondaryPC() uint64 // the entry StartCPU gives CPU_ON

// StartCPU powers on vCPU n (PSCI CPU_ON, Aff0 = n), which must be
// off, to wait for interrupts with PSTATE.I unmasked, its GIC CPU
// interface on (PMR 0xf0, group 1 enabled), counting what it takes. It
// returns the PSCI status.
func StartCPU(n int) int32 { return StartCPUAt(n, 0) }

// StartCPUAt is StartCPU for a vCPU that, once it has the caller's map,
// the board's vectors and its CPU interface, jumps to pc with interrupts
// unmasked instead of waiting: an assembly routine of the guest's (no Go
// runs there), which must never return.
func StartCPUAt(n int, pc uint64) int32 {
	b := &boots[n]
	b.mair, b.tcr, b.ttbr0, b.sctlr = readMMURegs()
	b.then = pc
	b.sp = uint64(uintptr(unsafe.Pointer(&stacks[n][0]))) + uint64(len(stacks[n]))
	// It reads the record with its MMU, and so its caches, off.
	cpu.CleanDCache(uint64(uintptr(unsafe.Pointer(b))), uint64(unsafe.Sizeof(*b)))
	r0, _ := hvc(abi.PSCI_CPU_ON, uint64(n), irqSecondaryPC(), uint64(uintptr(unsafe.Pointer(b))), 0, 0, 0, 0)
	return int32(r0)
}

// StopCPU asks a vCPU parked in the board's SGI loop, or started with
// StartCPU and taking interrupts, to power itself off (PSCI CPU_OFF), so
// that StartCPU can start it afresh.
func StopCPU(cpu int) { SendSGI(cpu, OffSGI) }

// CPUOn reports PSCI AFFINITY_INFO for vCPU cpu: true if it is on, and
// ok false if there is no such vCPU.
func CPUOn(cpu int) (on, ok bool) {
	r0, _ := hvc(abi.PSCI_AFFINITY_INFO, uint64(cpu), 0, 0, 0, 0, 0, 0)
	return r0 == 0, int64(r0) >= 0
}

// OffSGI, sent to a vCPU in the board's SGI loop or taking interrupts
// (StartCPU), makes it call PSCI CPU_OFF.
const OffSGI = 15

// GICR is the base of vCPU cpu's redistributor (RD_base).
func GICR(cpu int) uint64 { return uint64(GICRBase + cpu*GICRStride) }

// Read32 and Write32 access a device register.
func Read32(addr uint64) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(uintptr(addr))))
}

func Write32(addr uint64, v uint32) { mmioWrite(addr, v) }
