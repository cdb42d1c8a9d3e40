package hyp

import "github.com/bulkhead-hv/bulkhead/cpu"

// Guests' self-hosted debug (Arm ARM D2): breakpoints, watchpoints and
// software step, for a guest's own debugger or a kernel's kgdb. Every
// access to the debug registers traps (MDCR_EL2.TDA, TDOSA, TDRA) and is
// emulated on the vCPU's vcpu.Debug; the world switch loads its
// breakpoints and watchpoints only while the guest has MDSCR_EL1.MDE set,
// so a guest that never debugs costs nothing on its entries.
//
// EL2 is out of reach of a guest's comparators: with MDCR_EL2.TDE and
// HCR_EL2.TGE clear, EL1 is the debug target, and debug exceptions are
// never taken from an EL above the target (Arm ARM D2.2, "Routing debug
// exceptions"; D2.4, "Enabling debug exceptions").

// MDSCR_EL1 fields (Arm ARM D19.3) the guest may set; the rest read as
// zero (HDE and the DCC status flags belong to an external debugger).
const (
	mdscrSS    = 1 << 0
	mdscrTDCC  = 1 << 12
	mdscrKDE   = 1 << 13
	mdscrMDE   = 1 << 15
	mdscrGuest = mdscrSS | mdscrTDCC | mdscrKDE | mdscrMDE
)

// The writable fields of the breakpoint and watchpoint registers (Arm ARM
// D19.3, DBGBCR<n>_EL1 and DBGWCR<n>_EL1: E, PMC/PAC, BAS, HMC, SSC, LBN,
// BT or LSC, WT, MASK). BT[3], the VMID-matching breakpoint types, is
// left out: guests are told there is no EL2, and a VMID match would let a
// guest find its VMID. A watchpoint's address keeps bit 2 (a word-aligned
// watchpoint); a breakpoint's value is kept whole, since what its low bits
// mean depends on its type (an address, or a whole Context ID).
const (
	bcrMask = 0x007fe1e7
	wcrMask = 0x1f1fffff
	wvrMask = ^uint64(3)
	btShift = 20
)

// bvrRead is how DBGBVR<n>_EL1 reads for the breakpoint type in bcr: a
// Context ID in bits [31:0], or an address with bits [1:0] RES0.
func bvrRead(v, bcr uint64) uint64 {
	if bt := bcr >> btShift & 0xf; bt&^1 == 0b0010 {
		return v & 0xffffffff
	}
	return v &^ 3
}

// OSLSR_EL1.OSLM = 0b10: the OS lock is implemented (Arm ARM D19.3).
const oslsrOSLM = 1 << 3

// The debug registers Bulkhead emulates by name (op0 2, op1 0).
var (
	regMDSCR = cpu.SysReg{Op0: 2, CRn: 0, CRm: 2, Op2: 2}
	regOSLAR = cpu.SysReg{Op0: 2, CRn: 1, CRm: 0, Op2: 4}
	regOSLSR = cpu.SysReg{Op0: 2, CRn: 1, CRm: 1, Op2: 4}
)

// debugCounts is how many breakpoints and watchpoints guests have: what
// ID_AA64DFR0_EL1 tells them (BRPs and WRPs, plus one).
func (h *Hyp) debugCounts() (bps, wps int) {
	d := h.cfg.IDRegs[idDFR0]
	return int(d>>12&0xf) + 1, int(d>>20&0xf) + 1
}

// emulateDebug handles a trapped access to a debug register (op0 = 2), on
// val (what an MSR writes, or where an MRS reads to). It reports false for
// an access to a breakpoint or watchpoint the CPU does not have, which is
// UNDEFINED. The registers of what guests are told is absent (trace, the
// debug communications channel, the double lock, claim tags, power-down
// requests, the ROM table) read as zero and ignore writes.
func (h *Hyp) emulateDebug(r CPU, v *VCPU, reg cpu.SysReg, write bool, val *uint64) bool {
	d := &v.Ctx.Debug
	if reg.Op1 == 0 && reg.CRn == 0 && reg.Op2 >= 4 {
		bps, wps := h.debugCounts()
		n := int(reg.CRm)
		var p *uint64
		var mask uint64
		switch reg.Op2 {
		case 4, 5:
			if n >= bps {
				return false
			}
			p, mask = &d.BP[n][reg.Op2-4], ^uint64(0)
			if reg.Op2 == 5 {
				mask = bcrMask
			}
			if reg.Op2 == 4 && !write {
				*val = bvrRead(*p, d.BP[n][1])
				return true
			}
		default:
			if n >= wps {
				return false
			}
			p, mask = &d.WP[n][reg.Op2-6], wvrMask
			if reg.Op2 == 7 {
				mask = wcrMask
			}
		}
		if !write {
			*val = *p
			return true
		}
		*p = *val & mask
		h.loadDebug(r, v)
		return true
	}
	switch {
	case reg == regMDSCR && write:
		d.MDSCR = *val & mdscrGuest
		h.loadDebug(r, v)
	case reg == regMDSCR:
		*val = d.MDSCR
	case reg == regOSLAR && write:
		d.OSLK = *val&1 != 0
		h.loadDebug(r, v)
	case reg == regOSLSR && !write:
		*val = oslsrOSLM
		if d.OSLK {
			*val |= 1 << 1
		}
	case !write:
		*val = 0
	}
	return true
}

// loadDebug makes the vCPU's next entry run with the debug state it now
// has: MDSCR_EL1 as the guest wrote it but with breakpoints, watchpoints
// and step off while its OS lock is set (Arm ARM D2.5, "The effect of the
// OS Lock on debug exceptions"), and its comparators loaded while MDE is
// on. SyncSys first: MDSCR_EL1 may be on the CPU, and it makes the switch
// load the EL1 registers, and so the comparators, on the next entry.
func (h *Hyp) loadDebug(r CPU, v *VCPU) {
	c := &v.Ctx
	r.SyncSys(c)
	m := c.Debug.MDSCR
	if c.Debug.OSLK {
		m &^= mdscrSS | mdscrKDE | mdscrMDE
	}
	c.Sys.MDSCR_EL1 = m
	c.Debug.BPs, c.Debug.WPs = 0, 0
	if m&mdscrMDE != 0 {
		bps, wps := h.debugCounts()
		c.Debug.BPs, c.Debug.WPs = uint64(bps), uint64(wps)
	}
}
