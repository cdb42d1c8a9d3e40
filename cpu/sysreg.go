package cpu

import "fmt"

// SysReg identifies a system register by its MRS/MSR encoding
// (Arm ARM C5.3, "A64 System instructions for system register access").
type SysReg struct {
	Op0, Op1, CRn, CRm, Op2 uint8
}

// String returns the architectural name when known, else the generic
// S<op0>_<op1>_C<n>_C<m>_<op2> form that assemblers accept.
func (r SysReg) String() string {
	if n, ok := sysRegNames[r]; ok {
		return n
	}
	if r.Op0 == 2 && r.Op1 == 0 && r.CRn == 0 && r.Op2 >= 4 {
		// The breakpoint and watchpoint registers (Arm ARM D19.3).
		return fmt.Sprintf("DBG%s%d_EL1", [4]string{"BVR", "BCR", "WVR", "WCR"}[r.Op2-4], r.CRm)
	}
	return fmt.Sprintf("S%d_%d_C%d_C%d_%d", r.Op0, r.Op1, r.CRn, r.CRm, r.Op2)
}

// Encode returns the MRS (read) or MSR (write) instruction word for the
// register with Xt as the transfer register.
func (r SysReg) Encode(write bool, xt uint8) uint32 {
	base := uint32(0xd5300000) // MRS
	if write {
		base = 0xd5100000 // MSR (register)
	}
	return base | uint32(r.Op0&1)<<19 | uint32(r.Op1&7)<<16 |
		uint32(r.CRn&15)<<12 | uint32(r.CRm&15)<<8 | uint32(r.Op2&7)<<5 | uint32(xt&31)
}

// DecodeSysRegAccess splits an MRS/MSR (register) instruction word. ok is
// false when the word is neither.
func DecodeSysRegAccess(insn uint32) (r SysReg, write bool, xt uint8, ok bool) {
	switch insn & 0xfff00000 {
	case 0xd5300000:
	case 0xd5100000:
		write = true
	default:
		return SysReg{}, false, 0, false
	}
	r = SysReg{
		Op0: uint8(2 + (insn>>19)&1),
		Op1: uint8((insn >> 16) & 7),
		CRn: uint8((insn >> 12) & 15),
		CRm: uint8((insn >> 8) & 15),
		Op2: uint8((insn >> 5) & 7),
	}
	return r, write, uint8(insn & 31), true
}

// LookupSysReg finds a register by its architectural name (case-insensitive
// for the suffix letters, as assemblers accept both).
func LookupSysReg(name string) (SysReg, bool) {
	for r, n := range sysRegNames {
		if equalFold(n, name) {
			return r, true
		}
	}
	return SysReg{}, false
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// The registers Bulkhead reads or writes, with the Arm ARM section that
// defines each (DDI 0487, chapter D19 "AArch64 System Register Descriptions").
var sysRegNames = map[SysReg]string{
	{3, 0, 0, 0, 0}:   "MIDR_EL1",
	{3, 0, 0, 0, 5}:   "MPIDR_EL1",
	{3, 0, 0, 4, 0}:   "ID_AA64PFR0_EL1",
	{3, 0, 0, 4, 1}:   "ID_AA64PFR1_EL1",
	{3, 0, 0, 4, 4}:   "ID_AA64ZFR0_EL1",
	{3, 0, 0, 4, 5}:   "ID_AA64SMFR0_EL1",
	{3, 0, 0, 5, 0}:   "ID_AA64DFR0_EL1",
	{3, 0, 0, 5, 1}:   "ID_AA64DFR1_EL1",
	{3, 0, 0, 5, 4}:   "ID_AA64AFR0_EL1",
	{3, 0, 0, 5, 5}:   "ID_AA64AFR1_EL1",
	{3, 0, 0, 6, 0}:   "ID_AA64ISAR0_EL1",
	{3, 0, 0, 6, 1}:   "ID_AA64ISAR1_EL1",
	{3, 0, 0, 6, 2}:   "ID_AA64ISAR2_EL1",
	{3, 0, 0, 7, 0}:   "ID_AA64MMFR0_EL1",
	{3, 0, 0, 7, 1}:   "ID_AA64MMFR1_EL1",
	{3, 0, 0, 7, 2}:   "ID_AA64MMFR2_EL1",
	{2, 0, 0, 2, 2}:   "MDSCR_EL1",
	{2, 0, 1, 0, 4}:   "OSLAR_EL1",
	{2, 0, 1, 1, 4}:   "OSLSR_EL1",
	{3, 0, 1, 0, 0}:   "SCTLR_EL1",
	{3, 0, 12, 12, 5}: "ICC_SRE_EL1",
	{3, 0, 4, 0, 1}:   "ELR_EL1",
	{3, 0, 5, 2, 0}:   "ESR_EL1",
	{3, 0, 4, 1, 0}:   "SP_EL0",
	{3, 3, 2, 4, 0}:   "RNDR", // FEAT_RNG
	{3, 3, 14, 0, 0}:  "CNTFRQ_EL0",
	{3, 3, 14, 0, 1}:  "CNTPCT_EL0",
	{3, 3, 14, 0, 2}:  "CNTVCT_EL0",
	{3, 4, 0, 0, 0}:   "VPIDR_EL2",
	{3, 4, 0, 0, 5}:   "VMPIDR_EL2",
	{3, 4, 1, 0, 0}:   "SCTLR_EL2",
	{3, 4, 1, 1, 0}:   "HCR_EL2",
	{3, 4, 1, 1, 1}:   "MDCR_EL2",
	{3, 4, 1, 1, 2}:   "CPTR_EL2",
	{3, 4, 1, 1, 3}:   "HSTR_EL2",
	{3, 4, 2, 0, 0}:   "TTBR0_EL2",
	{3, 4, 2, 0, 2}:   "TCR_EL2",
	{3, 4, 2, 1, 0}:   "VTTBR_EL2",
	{3, 4, 2, 1, 2}:   "VTCR_EL2",
	{3, 4, 4, 0, 0}:   "SPSR_EL2",
	{3, 4, 4, 0, 1}:   "ELR_EL2",
	{3, 4, 4, 1, 0}:   "SP_EL1",
	{3, 4, 5, 2, 0}:   "ESR_EL2",
	{3, 4, 6, 0, 0}:   "FAR_EL2",
	{3, 4, 6, 0, 4}:   "HPFAR_EL2",
	{3, 4, 10, 2, 0}:  "MAIR_EL2",
	{3, 4, 12, 0, 0}:  "VBAR_EL2",
	{3, 4, 13, 0, 2}:  "TPIDR_EL2",
	{3, 4, 14, 0, 3}:  "CNTVOFF_EL2",
	{3, 4, 14, 1, 0}:  "CNTHCTL_EL2",
	// GICv3 CPU interface (GICv3 specification, 12.2 and 12.4) and the
	// Generic Timer (Arm ARM D11).
	{3, 4, 12, 9, 5}:  "ICC_SRE_EL2",
	{3, 0, 4, 6, 0}:   "ICC_PMR_EL1",
	{3, 0, 12, 12, 7}: "ICC_IGRPEN1_EL1",
	{3, 0, 12, 12, 0}: "ICC_IAR1_EL1",
	{3, 0, 12, 12, 1}: "ICC_EOIR1_EL1",
	{3, 0, 12, 11, 1}: "ICC_DIR_EL1",
	{3, 0, 12, 12, 4}: "ICC_CTLR_EL1",
	{3, 0, 12, 11, 5}: "ICC_SGI1R_EL1",
	{3, 4, 12, 11, 0}: "ICH_HCR_EL2",
	{3, 4, 12, 11, 1}: "ICH_VTR_EL2",
	{3, 4, 12, 11, 2}: "ICH_MISR_EL2",
	{3, 4, 12, 11, 5}: "ICH_ELRSR_EL2",
	{3, 4, 12, 11, 7}: "ICH_VMCR_EL2",
	{3, 4, 12, 8, 0}:  "ICH_AP0R0_EL2",
	{3, 4, 12, 9, 0}:  "ICH_AP1R0_EL2",
	{3, 4, 12, 12, 0}: "ICH_LR0_EL2",
	{3, 4, 12, 12, 1}: "ICH_LR1_EL2",
	{3, 4, 12, 12, 2}: "ICH_LR2_EL2",
	{3, 4, 12, 12, 3}: "ICH_LR3_EL2",
	{3, 4, 12, 12, 4}: "ICH_LR4_EL2",
	{3, 4, 12, 12, 5}: "ICH_LR5_EL2",
	{3, 4, 12, 12, 6}: "ICH_LR6_EL2",
	{3, 4, 12, 12, 7}: "ICH_LR7_EL2",
	{3, 4, 12, 13, 0}: "ICH_LR8_EL2",
	{3, 4, 12, 13, 1}: "ICH_LR9_EL2",
	{3, 4, 12, 13, 2}: "ICH_LR10_EL2",
	{3, 4, 12, 13, 3}: "ICH_LR11_EL2",
	{3, 4, 12, 13, 4}: "ICH_LR12_EL2",
	{3, 4, 12, 13, 5}: "ICH_LR13_EL2",
	{3, 4, 12, 13, 6}: "ICH_LR14_EL2",
	{3, 4, 12, 13, 7}: "ICH_LR15_EL2",
	{3, 4, 14, 2, 1}:  "CNTHP_CTL_EL2",
	{3, 4, 14, 2, 2}:  "CNTHP_CVAL_EL2",
	{3, 3, 14, 3, 1}:  "CNTV_CTL_EL0",
	{3, 3, 14, 3, 2}:  "CNTV_CVAL_EL0",
	{3, 4, 14, 0, 3}:  "CNTVOFF_EL2",
	{3, 4, 14, 1, 0}:  "CNTHCTL_EL2",
}
