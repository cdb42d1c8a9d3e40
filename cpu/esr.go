package cpu

import "fmt"

// ESR_ELx fields (Arm ARM D19.2, "ESR_EL2, Exception Syndrome Register (EL2)").
const (
	ESR_EC_SHIFT  = 26
	ESR_EC_MASK   = 0x3f
	ESR_IL        = 1 << 25
	ESR_ISS_MASK  = 0x1ffffff
	ISS_DA_ISV    = 1 << 24 // instruction syndrome valid
	ISS_DA_SAS    = 22      // syndrome access size, 2 bits
	ISS_DA_SSE    = 1 << 21 // syndrome sign extend
	ISS_DA_SRT    = 16      // syndrome register transfer, 5 bits
	ISS_DA_SF     = 1 << 15 // 64-bit register
	ISS_DA_FnV    = 1 << 10 // FAR not valid
	ISS_DA_S1PTW  = 1 << 7  // fault on the stage 2 walk of a stage 1 table
	ISS_DA_WnR    = 1 << 6  // write, not read
	ISS_xFSC_MASK = 0x3f
)

// Exception classes, ESR_ELx.EC (Arm ARM D19.2, Table "ESR_ELx.EC").
const (
	EC_UNKNOWN     = 0x00
	EC_WFx         = 0x01
	EC_CP15_32     = 0x03
	EC_CP15_64     = 0x04
	EC_CP14_MR     = 0x05
	EC_CP14_LS     = 0x06
	EC_FP_ASIMD    = 0x07
	EC_LS64        = 0x0a
	EC_CP14_64     = 0x0c
	EC_BTI         = 0x0d
	EC_ILL         = 0x0e
	EC_SVC32       = 0x11
	EC_HVC32       = 0x12
	EC_SMC32       = 0x13
	EC_SVC64       = 0x15
	EC_HVC64       = 0x16
	EC_SMC64       = 0x17
	EC_SYS64       = 0x18
	EC_SVE         = 0x19
	EC_ERET        = 0x1a
	EC_FPAC        = 0x1c
	EC_SME         = 0x1d
	EC_IABT_LOW    = 0x20
	EC_IABT_CUR    = 0x21
	EC_PC_ALIGN    = 0x22
	EC_DABT_LOW    = 0x24
	EC_DABT_CUR    = 0x25
	EC_SP_ALIGN    = 0x26
	EC_MOPS        = 0x27
	EC_FP_EXC32    = 0x28
	EC_FP_EXC64    = 0x2c
	EC_SERROR      = 0x2f
	EC_BREAKPT_LOW = 0x30
	EC_BREAKPT_CUR = 0x31
	EC_SOFTSTP_LOW = 0x32
	EC_SOFTSTP_CUR = 0x33
	EC_WATCHPT_LOW = 0x34
	EC_WATCHPT_CUR = 0x35
	EC_BKPT32      = 0x38
	EC_VECTOR32    = 0x3a
	EC_BRK64       = 0x3c
)

var ecNames = map[uint8]string{
	EC_UNKNOWN:     "Unknown reason",
	EC_WFx:         "Trapped WFI/WFE",
	EC_CP15_32:     "Trapped AArch32 MCR/MRC (coproc 0b1111)",
	EC_CP15_64:     "Trapped AArch32 MCRR/MRRC (coproc 0b1111)",
	EC_CP14_MR:     "Trapped AArch32 MCR/MRC (coproc 0b1110)",
	EC_CP14_LS:     "Trapped AArch32 LDC/STC",
	EC_FP_ASIMD:    "Trapped SVE/SIMD/FP access",
	EC_LS64:        "Trapped LD64B/ST64B",
	EC_CP14_64:     "Trapped AArch32 MRRC (coproc 0b1110)",
	EC_BTI:         "Branch Target Exception",
	EC_ILL:         "Illegal Execution state",
	EC_SVC32:       "SVC in AArch32",
	EC_HVC32:       "HVC in AArch32",
	EC_SMC32:       "SMC in AArch32",
	EC_SVC64:       "SVC in AArch64",
	EC_HVC64:       "HVC in AArch64",
	EC_SMC64:       "SMC in AArch64",
	EC_SYS64:       "Trapped MSR/MRS/system instruction",
	EC_SVE:         "Trapped SVE access",
	EC_ERET:        "Trapped ERET",
	EC_FPAC:        "Pointer authentication failure",
	EC_SME:         "Trapped SME access",
	EC_IABT_LOW:    "Instruction Abort from a lower Exception level",
	EC_IABT_CUR:    "Instruction Abort taken without a change in Exception level",
	EC_PC_ALIGN:    "PC alignment fault",
	EC_DABT_LOW:    "Data Abort from a lower Exception level",
	EC_DABT_CUR:    "Data Abort taken without a change in Exception level",
	EC_SP_ALIGN:    "SP alignment fault",
	EC_MOPS:        "Memory Operation Exception",
	EC_FP_EXC32:    "Trapped floating-point exception (AArch32)",
	EC_FP_EXC64:    "Trapped floating-point exception (AArch64)",
	EC_SERROR:      "SError interrupt",
	EC_BREAKPT_LOW: "Breakpoint from a lower Exception level",
	EC_BREAKPT_CUR: "Breakpoint taken without a change in Exception level",
	EC_SOFTSTP_LOW: "Software Step from a lower Exception level",
	EC_SOFTSTP_CUR: "Software Step taken without a change in Exception level",
	EC_WATCHPT_LOW: "Watchpoint from a lower Exception level",
	EC_WATCHPT_CUR: "Watchpoint taken without a change in Exception level",
	EC_BKPT32:      "BKPT in AArch32",
	EC_VECTOR32:    "Vector Catch in AArch32",
	EC_BRK64:       "BRK in AArch64",
}

// ESR is a decoded exception syndrome.
type ESR uint64

// EC is the exception class.
func (e ESR) EC() uint8 { return uint8(e>>ESR_EC_SHIFT) & ESR_EC_MASK }

// ISS is the instruction specific syndrome.
func (e ESR) ISS() uint32 { return uint32(e) & ESR_ISS_MASK }

// IL reports a 32-bit trapped instruction (always true for A64).
func (e ESR) IL() bool { return e&ESR_IL != 0 }

// ClassName names the exception class as the Arm ARM does.
func (e ESR) ClassName() string {
	if n, ok := ecNames[e.EC()]; ok {
		return n
	}
	return fmt.Sprintf("Reserved exception class %#x", e.EC())
}

// IsAbort reports an instruction or data abort, whose ISS carries a fault
// status code.
func (e ESR) IsAbort() bool {
	switch e.EC() {
	case EC_IABT_LOW, EC_IABT_CUR, EC_DABT_LOW, EC_DABT_CUR:
		return true
	}
	return false
}

// IsDataAbort reports a data abort.
func (e ESR) IsDataAbort() bool {
	return e.EC() == EC_DABT_LOW || e.EC() == EC_DABT_CUR
}

// FaultStatus decodes the DFSC/IFSC field of an abort
// (Arm ARM D19.2, ESR_ELx ISS encoding for an exception from a Data Abort).
// level is -1 when the code is not tied to a translation level.
func (e ESR) FaultStatus() (name string, level int) {
	fsc := e.ISS() & ISS_xFSC_MASK
	lvl := int(fsc & 3)
	switch fsc >> 2 {
	case 0b0000:
		return "Address size fault", lvl
	case 0b0001:
		return "Translation fault", lvl
	case 0b0010:
		return "Access flag fault", lvl
	case 0b0011:
		return "Permission fault", lvl
	case 0b0101:
		return "Synchronous External abort on translation table walk", lvl
	case 0b0111:
		return "Synchronous parity or ECC error on translation table walk", lvl
	}
	switch fsc {
	case 0b010000:
		return "Synchronous External abort", -1
	case 0b010001:
		return "Synchronous Tag Check Fault", -1
	case 0b011000:
		return "Synchronous parity or ECC error", -1
	case 0b100001:
		return "Alignment fault", -1
	case 0b110000:
		return "TLB conflict abort", -1
	case 0b110001:
		return "Unsupported atomic hardware update fault", -1
	}
	return fmt.Sprintf("Reserved fault status %#x", fsc), -1
}

// Write reports whether a data abort was caused by a write.
func (e ESR) Write() bool { return e.IsDataAbort() && e.ISS()&ISS_DA_WnR != 0 }

// FARValid reports whether FAR_ELx holds the faulting address.
func (e ESR) FARValid() bool { return !e.IsAbort() || e.ISS()&ISS_DA_FnV == 0 }

// Access returns the access size in bytes and the transfer register of a
// data abort with a valid instruction syndrome (ISV=1).
func (e ESR) Access() (size int, reg int, ok bool) {
	if !e.IsDataAbort() || e.ISS()&ISS_DA_ISV == 0 {
		return 0, 0, false
	}
	return 1 << ((e.ISS() >> ISS_DA_SAS) & 3), int((e.ISS() >> ISS_DA_SRT) & 31), true
}

// String is a one-line summary for reports.
func (e ESR) String() string {
	s := fmt.Sprintf("ESR  0x%08x EC 0x%02x (%s)", uint64(e), e.EC(), e.ClassName())
	if e.IsAbort() {
		name, lvl := e.FaultStatus()
		if lvl >= 0 {
			s += fmt.Sprintf(": %s, level %d", name, lvl)
		} else {
			s += ": " + name
		}
		if e.IsDataAbort() {
			if e.Write() {
				s += ", write"
			} else {
				s += ", read"
			}
		}
	}
	return s
}
