package cpu

//go:noescape
func readAA64IDRegs(p *[32]uint64)

// ReadAA64IDRegs returns the AArch64 ID registers, indexed by
// (CRm-4)*8 + op2 of their encoding (op0=3, op1=0, CRn=0).
func ReadAA64IDRegs() (r [32]uint64) {
	readAA64IDRegs(&r)
	return r
}
