// Package crash writes the report for an exception that the EL2 kernel
// cannot handle: what was taken, where, the decoded syndrome, every general
// register, the faulting instruction disassembled and the Go function and
// line, then a frame-pointer backtrace. The formatting is pure Go; the
// tamago-only install.go wires it to the vectors.
package crash

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"golang.org/x/arch/arm64/arm64asm"

	"github.com/bulkhead-hv/bulkhead/cpu"
)

// Markers framing a report, for people and for the test harness.
const (
	Begin = "*** BULKHEAD EL2 EXCEPTION ***"
	End   = "*** END OF EXCEPTION REPORT ***"
)

// ExitStatus is the hypervisor's exit status after a crash report
// (EX_SOFTWARE, sysexits.h).
const ExitStatus = 70

// Machine is the seam to what the report needs from the running system.
type Machine interface {
	// Symbol names the Go function and source line containing pc.
	Symbol(pc uint64) (fn, file string, line int, ok bool)
	// Read64 reads mapped, readable memory; ok is false elsewhere.
	Read64(addr uint64) (v uint64, ok bool)
	// CPUIndex is the machine's number for the CPU with affinity mpidr.
	CPUIndex(mpidr uint64) (index int, ok bool)
}

// Write prints the report for frame f.
func Write(w io.Writer, f *cpu.Frame, m Machine) {
	fmt.Fprintf(w, "\n%s\n", Begin)
	fmt.Fprintf(w, "exception: %s\n", cpu.VectorName(f.Vector))
	if i, ok := m.CPUIndex(f.MPIDR); ok {
		fmt.Fprintf(w, "cpu: %d (MPIDR 0x%x)\n", i, f.MPIDR)
	} else {
		fmt.Fprintf(w, "cpu: MPIDR 0x%x\n", f.MPIDR)
	}
	if f.Nested() {
		fmt.Fprintf(w, "note: taken inside the exception handler; SP is SP_EL2 and x18 is not the interrupted value\n")
	}
	esr := cpu.ESR(f.ESR)
	if f.Synchronous() {
		fmt.Fprintf(w, "%s\n", esr)
	} else {
		fmt.Fprintf(w, "ESR  0x%08x (not a synchronous exception: the syndrome is not meaningful)\n", f.ESR)
	}
	far := "valid"
	if !f.Synchronous() || !esr.FARValid() || !(esr.IsAbort() || esr.EC() == cpu.EC_PC_ALIGN || esr.EC() == cpu.EC_WATCHPT_CUR) {
		far = "not valid for this exception"
	}
	fmt.Fprintf(w, "FAR  0x%016x (%s)\n", f.FAR, far)
	fmt.Fprintf(w, "ELR  0x%016x %s\n", f.ELR, where(m, f.ELR))
	fmt.Fprintf(w, "SPSR 0x%016x (%s, DAIF=%04b, NZCV=%04b)\n", f.SPSR, cpu.SPSRMode(f.SPSR), (f.SPSR>>6)&0xf, (f.SPSR>>28)&0xf)
	if f.Vector >= 8 {
		fmt.Fprintf(w, "HPFAR 0x%016x (IPA page %#x)\n", f.HPFAR, (f.HPFAR>>4)<<12)
	}
	fmt.Fprintf(w, "instruction: %s\n", Disassemble(m, f.ELR))
	fmt.Fprintf(w, "registers:\n")
	for i := 0; i < 31; i += 2 {
		if i == 30 {
			fmt.Fprintf(w, "  x30 0x%016x  sp  0x%016x\n", f.X[30], f.SP)
			break
		}
		fmt.Fprintf(w, "  x%-2d 0x%016x  x%-2d 0x%016x\n", i, f.X[i], i+1, f.X[i+1])
	}
	fmt.Fprintf(w, "  lr  %s\n", where(m, f.X[30]-4))
	fmt.Fprintf(w, "backtrace:\n")
	for i, pc := range Backtrace(m, f, 32) {
		// Return addresses point after the call: name the call itself.
		at := pc
		if i > 0 {
			at = pc - 4
		}
		fmt.Fprintf(w, "  #%-2d 0x%016x %s\n", i, pc, where(m, at))
	}
	fmt.Fprintf(w, "%s\n", End)
}

func where(m Machine, pc uint64) string {
	fn, file, line, ok := m.Symbol(pc)
	if !ok {
		return "(no Go symbol)"
	}
	return fmt.Sprintf("%s at %s:%d", fn, file, line)
}

// Disassemble decodes the instruction at pc in GNU and Go syntax, naming
// system registers that the disassembler leaves as S<op0>_<op1>_...
func Disassemble(m Machine, pc uint64) string {
	if pc%4 != 0 {
		return fmt.Sprintf("(pc %#x is not 4-byte aligned)", pc)
	}
	dw, ok := m.Read64(pc &^ 7)
	if !ok {
		return fmt.Sprintf("(pc %#x is not in readable memory)", pc)
	}
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], dw)
	word := buf[pc&7 : pc&7+4]
	insn := binary.LittleEndian.Uint32(word)
	inst, err := arm64asm.Decode(word)
	if err != nil {
		return fmt.Sprintf("%08x  (undecodable: %v)", insn, err)
	}
	gnu := arm64asm.GNUSyntax(inst)
	goSyn := arm64asm.GoSyntax(inst, pc, nil, nil)
	if r, _, _, ok := cpu.DecodeSysRegAccess(insn); ok {
		generic := fmt.Sprintf("S%d_%d_C%d_C%d_%d", r.Op0, r.Op1, r.CRn, r.CRm, r.Op2)
		name := strings.ToLower(r.String())
		gnu = strings.Replace(strings.Replace(gnu, generic, name, 1), strings.ToLower(generic), name, 1)
		goSyn = strings.Replace(goSyn, generic, r.String(), 1)
	}
	return fmt.Sprintf("%08x  %s    (Go: %s)", insn, gnu, goSyn)
}

// Backtrace follows the frame-pointer chain Go keeps on arm64: x29 points
// at the saved caller x29, with the return address above it.
func Backtrace(m Machine, f *cpu.Frame, max int) []uint64 {
	pcs := []uint64{f.ELR}
	if lr := f.X[30]; lr != 0 {
		pcs = append(pcs, lr)
	}
	fp := f.X[29]
	for len(pcs) < max && fp != 0 && fp%8 == 0 {
		next, ok1 := m.Read64(fp)
		ret, ok2 := m.Read64(fp + 8)
		if !ok1 || !ok2 || ret == 0 {
			break
		}
		if _, _, _, ok := m.Symbol(ret); !ok {
			break
		}
		if ret != pcs[len(pcs)-1] {
			pcs = append(pcs, ret)
		}
		if next <= fp { // stacks grow down: callers' frames are higher
			break
		}
		fp = next
	}
	return pcs
}
