//go:build tamago

package bulkheadvm

import (
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/mmu"
)

// insnPage is where Execute places the instruction it runs: a page of the
// guest's data, made writable to place it and then executable, never both
// (the image's map is W^X).
var insnBuf [2 * mmu.PageSize]byte

func insnPage() uint64 {
	p := uint64(uintptr(unsafe.Pointer(&insnBuf[0])))
	return (p + mmu.PageSize - 1) &^ (mmu.PageSize - 1)
}

func syncCode(page uint64)
func tlbiAll()

// el1TLB invalidates the guest's own stage 1 translations, for edits of
// its live tables (break-before-make).
type el1TLB struct{}

func (el1TLB) Invalidate(va uint64, level int) { tlbiAll() }
func callCode(page, x0 uint64) uint64

// Execute runs one instruction built at run time, with x0 = x0 on entry,
// and returns x0 after it and the exception it caused, if any: ESR_EL1, 0
// when it ran (a faulting instruction is skipped, as a Probe's access is).
// It is for guests that try what the hypervisor does with instructions a
// program cannot name in advance, such as system register accesses of any
// encoding.
func Execute(insn uint32, x0 uint64) (out, esr uint64) {
	page := insnPage()
	tables.SetTLB(el1TLB{})
	if tables.Protect(page, mmu.PageSize, mmu.S1EL1Normal(mmu.Read|mmu.Write)) != nil {
		exit(126)
	}
	syncCode(page)
	code := (*[2]uint32)(unsafe.Pointer(uintptr(page)))
	code[0], code[1] = insn, 0xd65f03c0 // the instruction; ret
	if tables.Protect(page, mmu.PageSize, mmu.S1EL1Normal(mmu.Read|mmu.Exec)) != nil {
		exit(126)
	}
	syncCode(page)
	probeESR = 0
	out = callCode(page, x0)
	esr = probeESR
	probeESR = 0
	return out, esr
}
