package cpu

import "fmt"

// Frame is the register state the EL2 vectors save on the exception stack.
// Its layout is shared with vectors_arm64.s (FRAME_* offsets there).
type Frame struct {
	X      [31]uint64 // x0-x30 at the time of the exception
	SP     uint64     // interrupted stack pointer (see Vector for which)
	ELR    uint64     // ELR_EL2: return address
	SPSR   uint64     // SPSR_EL2: interrupted PSTATE
	ESR    uint64     // ESR_EL2: syndrome
	FAR    uint64     // FAR_EL2: faulting virtual address
	HPFAR  uint64     // HPFAR_EL2: faulting IPA (stage 2 faults)
	Vector uint64     // index of the vector entry taken, 0-15
	MPIDR  uint64     // MPIDR_EL1's affinity fields: the CPU that took it
	_      uint64
}

// FrameSize is the byte size of Frame, a multiple of 16 as SP requires.
const FrameSize = 320

// Vector table groups (Arm ARM D1.10.2, "Exception vectors"): the offset of
// an entry is 0x200*group + 0x80*kind.
var (
	vectorGroups = [4]string{
		"current EL with SP_EL0",
		"current EL with SP_ELx",
		"lower EL using AArch64",
		"lower EL using AArch32",
	}
	vectorKinds = [4]string{"Synchronous", "IRQ", "FIQ", "SError"}
)

// VectorName describes vector entry i, e.g. "Synchronous, current EL with SP_EL0".
func VectorName(i uint64) string {
	if i >= 16 {
		return fmt.Sprintf("vector %d", i)
	}
	return vectorKinds[i%4] + ", " + vectorGroups[i/4]
}

// Nested reports whether the exception was taken while SP_EL2 was selected,
// which in Bulkhead only happens inside the exception handler itself.
func (f *Frame) Nested() bool { return f.Vector/4 == 1 }

// Synchronous reports a synchronous exception, the only kind with a
// meaningful ESR.
func (f *Frame) Synchronous() bool { return f.Vector%4 == 0 }

// SPSR_ELx.M[3:0] names (Arm ARM C5.2, "SPSR_EL2").
func SPSRMode(spsr uint64) string {
	switch spsr & 0x1f {
	case 0b00000:
		return "EL0t"
	case 0b00100:
		return "EL1t"
	case 0b00101:
		return "EL1h"
	case 0b01000:
		return "EL2t"
	case 0b01001:
		return "EL2h"
	}
	return fmt.Sprintf("mode %#x", spsr&0x1f)
}
