package hyp

import "github.com/bulkhead-hv/bulkhead/cpu"

// What guests see of the CPU's AArch64 ID registers (Arm ARM D19.2),
// which HCR_EL2.TID3 traps. A field is passed through only when the
// feature it announces needs no state the hypervisor does not switch and
// no trap it does not handle; the rest read as absent, so that no guest
// is told of a feature whose registers would leak between VMs (PMU, debug,
// SVE, SME, MTE, pointer authentication, AMU, MPAM, RAS, LORegions, nested
// virtualization) or that the hypervisor does not emulate (EL2, EL3,
// AArch32, WFxT, MOPS).
//
// Indices are (CRm-4)*8 + op2 of the encoding: CRm 4 the PFRs, 5 the DFRs
// and AFRs, 6 the ISARs, 7 the MMFRs.
const (
	idPFR0  = 0
	idPFR1  = 1
	idDFR0  = 8
	idISAR0 = 16
	idISAR1 = 17
	idISAR2 = 18
	idMMFR0 = 24
	idMMFR1 = 25
	idMMFR2 = 26
)

// nibbles makes a mask of the 4-bit fields starting at the given bits.
func nibbles(shifts ...uint) uint64 {
	var m uint64
	for _, s := range shifts {
		m |= 0xf << s
	}
	return m
}

// idPolicy says, per register, which fields pass through (keep) and what
// is ORed in after (set). Registers not listed read as zero.
var idPolicy = map[int]struct{ keep, set uint64 }{
	// FP, AdvSIMD, GIC (the CPU interface is virtualized), DIT, CSV2,
	// CSV3. EL0 and EL1: AArch64 only, since the hypervisor stops a VM
	// that enters AArch32; EL2 and EL3 absent.
	idPFR0: {nibbles(16, 20, 24, 48, 56, 60), 1<<0 | 1<<4},
	// BT and SSBS are EL1 and EL0 state the world switch keeps; CSV2_frac.
	idPFR1: {nibbles(0, 4, 32), 0},
	// Armv8.0 debug with the CPU's breakpoints, watchpoints and
	// context-aware breakpoints (BRPs, WRPs, CTX_CMPs), emulated per vCPU
	// (debug.go); no PMU, trace, SPE or OS double lock (DoubleLock =
	// 0b1111).
	idDFR0: {nibbles(12, 20, 28), 6 | 0xf<<36},
	// Instructions that need nothing from EL2: all of ISAR0.
	idISAR0: {^uint64(0), 0},
	// ISAR1 without pointer authentication (APA, API, GPA, GPI) and LS64.
	idISAR1: {^uint64(0) &^ nibbles(4, 8, 24, 28, 60), 0},
	// ISAR2: RPRES, BC, CLRBHB; not WFxT, MOPS or PAuth.
	idISAR2: {nibbles(4, 20, 28), 0},
	// MMFR0: ASIDBits, BigEnd, SNSMem, BigEndEL0, the stage 1 granules,
	// ExS. PARange is the VM's IPA size, set by GuestIDRegs.
	idMMFR0: {nibbles(4, 8, 12, 16, 20, 24, 28, 44), 0},
	// MMFR1: HAFDBS, HPDS, PAN, SpecSEI, ETS, AFP, nTLBPA, CMOW; not VH,
	// VMIDBits, LO, XNX, TWED, HCX or TIDCP1.
	idMMFR1: {nibbles(0, 12, 20, 24, 36, 44, 48, 56), 0},
	// MMFR2: CnP, UAO, LSM, IESB, VARange, CCIDX, ST, AT, IDS, TTL, BBM,
	// E0PD; not NV, FWB or EVT.
	idMMFR2: {nibbles(0, 4, 8, 12, 16, 20, 28, 32, 36, 48, 52, 60), 0},
}

// parangeCode is ID_AA64MMFR0_EL1.PARange for an address size.
var parangeCode = map[int]uint64{32: 0, 36: 1, 40: 2, 42: 3, 44: 4, 48: 5, 52: 6}

// GuestIDRegs computes the ID registers guests read from the host's. The
// physical address size they see is their IPA size.
func GuestIDRegs(host [32]uint64, ipaBits int) [32]uint64 {
	var g [32]uint64
	for i, p := range idPolicy {
		g[i] = host[i]&p.keep | p.set
	}
	g[idMMFR0] |= parangeCode[ipaBits]
	// The architecture's minimum of two breakpoints and two watchpoints,
	// whatever a host too odd to say so reports.
	g[idDFR0] |= max(g[idDFR0]>>12&0xf, 1)<<12 | max(g[idDFR0]>>20&0xf, 1)<<20
	return g
}

// idReg reports whether reg is in the ID space TID3 traps (op0=3, op1=0,
// CRn=0, CRm=1..7), and its value for guests: the AArch32 registers (CRm
// 1-3) read as zero, as ID_AA64PFR0_EL1 says AArch32 is absent.
func (h *Hyp) idReg(reg cpu.SysReg) (uint64, bool) {
	if reg.Op0 != 3 || reg.Op1 != 0 || reg.CRn != 0 || reg.CRm < 1 || reg.CRm > 7 {
		return 0, false
	}
	if reg.CRm < 4 {
		return 0, true
	}
	return h.cfg.IDRegs[int(reg.CRm-4)*8+int(reg.Op2)], true
}
