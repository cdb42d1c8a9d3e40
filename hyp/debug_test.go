package hyp

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

// sysAccess makes v exit on a trapped MSR (write) or MRS of reg with Xt =
// xt, handles the exit, and returns what an MRS read.
func sysAccess(t *testing.T, r *rig, v *VCPU, reg cpu.SysReg, write bool, xt int, val uint64) uint64 {
	t.Helper()
	iss := uint64(reg.Op0)<<20 | uint64(reg.Op2)<<17 | uint64(reg.Op1)<<14 | uint64(reg.CRn)<<10 |
		uint64(xt)<<5 | uint64(reg.CRm)<<1
	if !write {
		iss |= 1
	}
	c := &v.Ctx
	if write {
		c.X[xt] = val
	}
	c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_SYS64<<cpu.ESR_EC_SHIFT | cpu.ESR_IL | iss}
	require.Equal(t, Resume, r.h.HandleExit(&script{t: t}, v))
	return c.X[xt]
}

func dbgReg(n, op2 uint8) cpu.SysReg { return cpu.SysReg{Op0: 2, CRm: n, Op2: op2} }

var (
	regDBGBVR0 = dbgReg(0, 4)
	regDBGBCR0 = dbgReg(0, 5)
	regDBGWVR1 = dbgReg(1, 6)
	regDBGWCR1 = dbgReg(1, 7)
)

// A host's breakpoints, watchpoints and context-aware breakpoints are the
// guests' (ID_AA64DFR0_EL1.BRPs, WRPs, CTX_CMPs: a Cortex-A57's 6, 4, 2).
func TestGuestsHaveTheCPUsBreakpoints(t *testing.T) {
	g := GuestIDRegs([32]uint64{idDFR0: 0x10305106}, 40)
	assert.Equal(t, uint64(0xf<<36|1<<28|3<<20|5<<12|6), g[idDFR0], "no PMU (PMUVer 1 dropped), debug v8.0")
	r := newRig(t)
	r.h.cfg.IDRegs = g
	bps, wps := r.h.debugCounts()
	assert.Equal(t, 6, bps)
	assert.Equal(t, 4, wps)
}

// The debug registers are each vCPU's own (Arm ARM D2: they are a PE's):
// what one writes, another never reads, and a value reads back with its
// RES0 bits clear.
func TestDebugRegistersArePerVCPU(t *testing.T) {
	r := newRig(t)
	r.h.cfg.IDRegs = GuestIDRegs([32]uint64{idDFR0: 0x10305106}, 40)
	_, a := r.guest(t, "a", ramBase+0x20_0000)
	vmB, b := r.guest(t, "b", ramBase+0x40_0000)
	b2 := r.h.AddVCPU(vmB, guestIPA, 0)

	sysAccess(t, r, a, regDBGBVR0, true, 1, 0x4008_1003)
	sysAccess(t, r, a, regDBGBCR0, true, 2, ^uint64(0))
	sysAccess(t, r, a, regDBGWVR1, true, 3, 0x4009_000f)
	sysAccess(t, r, a, regDBGWCR1, true, 4, 0x1e7)
	assert.Equal(t, uint64(0x4008_1000), sysAccess(t, r, a, regDBGBVR0, false, 5, 0), "an address: DBGBVR<n>_EL1[1:0] are RES0")
	assert.Equal(t, uint64(0x007f_e1e7), sysAccess(t, r, a, regDBGBCR0, false, 6, 0),
		"only DBGBCR<n>_EL1's fields are kept, and no VMID-matching type (BT[3])")
	assert.Equal(t, uint64(0x4009_000c), sysAccess(t, r, a, regDBGWVR1, false, 7, 0),
		"DBGWVR<n>_EL1[1:0] are RES0; bit 2 is a word-aligned watchpoint's")
	// A Context ID breakpoint (BT 0b0010): DBGBVR<n>_EL1[31:0] is the
	// whole Context ID.
	sysAccess(t, r, a, regDBGBCR0, true, 2, 0b0010<<20|0x1e7)
	sysAccess(t, r, a, regDBGBVR0, true, 1, 0x1234_5677)
	assert.Equal(t, uint64(0x1234_5677), sysAccess(t, r, a, regDBGBVR0, false, 5, 0), "a Context ID keeps its low bits")
	assert.Equal(t, uint64(0x1234_5677), a.Ctx.Debug.BP[0][0], "and the CPU compares all of them")
	sysAccess(t, r, a, regDBGBCR0, true, 2, ^uint64(0))
	assert.Equal(t, uint64(0x1e7), sysAccess(t, r, a, regDBGWCR1, false, 8, 0))
	sysAccess(t, r, a, regDBGBVR0, true, 1, 0x4008_1003)
	for _, v := range []*VCPU{b, b2} {
		for _, reg := range []cpu.SysReg{regDBGBVR0, regDBGBCR0, regDBGWVR1, regDBGWCR1} {
			assert.Zero(t, sysAccess(t, r, v, reg, false, 9, 0), "%s of another vCPU", reg)
		}
	}
	sysAccess(t, r, b2, regDBGBCR0, true, 1, 0x1e7)
	assert.Zero(t, sysAccess(t, r, b, regDBGBCR0, false, 9, 0), "nor of another vCPU of the same VM")
}

// Breakpoints and watchpoints the CPU does not have are UNDEFINED (Arm ARM
// D19.3, DBGBCR<n>_EL1: "n ... up to the number implemented").
func TestMissingBreakpointsAreUndefined(t *testing.T) {
	r := newRig(t)
	r.h.cfg.IDRegs = GuestIDRegs([32]uint64{idDFR0: 0x10305106}, 40)
	_, v := r.guest(t, "a", ramBase+0x20_0000)
	v.Ctx.Sys.VBAR_EL1 = 0x4000_8000
	for _, reg := range []cpu.SysReg{dbgReg(6, 4), dbgReg(15, 5), dbgReg(4, 6), dbgReg(4, 7)} {
		v.Ctx.PSTATE = vcpu.PSR_MODE_EL1h
		pc := v.Ctx.PC
		sysAccess(t, r, v, reg, true, 1, 1)
		assert.Equal(t, uint8(cpu.EC_UNKNOWN), cpu.ESR(v.Ctx.Sys.ESR_EL1).EC(), "%s", reg)
		assert.Equal(t, pc, v.Ctx.Sys.ELR_EL1, "%s: taken at the access", reg)
		v.Ctx.PC = pc
	}
	pc := v.Ctx.PC
	sysAccess(t, r, v, dbgReg(5, 5), true, 1, 1)
	assert.Equal(t, pc+4, v.Ctx.PC, "DBGBCR5_EL1 exists: the access is emulated and skipped")
}

// The comparators are loaded only while MDSCR_EL1.MDE is set and the OS
// lock clear (Arm ARM D2.5: with the OS lock set, breakpoint, watchpoint
// and software step exceptions are disabled); OSLSR_EL1 reports the lock,
// set at reset.
func TestDebugStateTheSwitchLoads(t *testing.T) {
	r := newRig(t)
	r.h.cfg.IDRegs = GuestIDRegs([32]uint64{idDFR0: 0x10305106}, 40)
	_, v := r.guest(t, "a", ramBase+0x20_0000)
	d := &v.Ctx.Debug
	assert.Equal(t, uint64(oslsrOSLM|1<<1), sysAccess(t, r, v, regOSLSR, false, 1, 0), "locked at reset")

	sysAccess(t, r, v, regMDSCR, true, 2, mdscrMDE|mdscrKDE|mdscrSS|1<<30|1<<14)
	assert.Equal(t, uint64(mdscrMDE|mdscrKDE|mdscrSS), sysAccess(t, r, v, regMDSCR, false, 3, 0),
		"the guest reads what it wrote, but for the external debugger's bits (HDE, RXfull)")
	assert.Zero(t, v.Ctx.Sys.MDSCR_EL1, "the OS lock keeps debug off")
	assert.Zero(t, d.BPs, "and the comparators unloaded")

	sysAccess(t, r, v, regOSLAR, true, 4, 0)
	assert.Equal(t, uint64(oslsrOSLM), sysAccess(t, r, v, regOSLSR, false, 1, 0), "unlocked")
	assert.Equal(t, uint64(mdscrMDE|mdscrKDE|mdscrSS), v.Ctx.Sys.MDSCR_EL1)
	assert.Equal(t, uint64(6), d.BPs)
	assert.Equal(t, uint64(4), d.WPs)

	sysAccess(t, r, v, regMDSCR, true, 2, mdscrKDE|mdscrSS)
	assert.Equal(t, uint64(mdscrKDE|mdscrSS), v.Ctx.Sys.MDSCR_EL1, "software step needs no comparator")
	assert.Zero(t, d.BPs, "MDE clear: no breakpoint or watchpoint can fire, none is loaded")

	// Trace, the DCC, claim tags and the like read as zero.
	for _, reg := range []cpu.SysReg{
		{Op0: 2, CRn: 7, CRm: 8, Op2: 6},  // DBGCLAIMSET_EL1
		{Op0: 2, Op1: 3, CRm: 1},          // MDCCSR_EL0
		{Op0: 2, CRn: 1, CRm: 3, Op2: 4},  // OSDLR_EL1
		{Op0: 2, CRn: 1},                  // MDRAR_EL1
		{Op0: 2, CRn: 7, CRm: 14, Op2: 6}, // DBGAUTHSTATUS_EL1
	} {
		sysAccess(t, r, v, reg, true, 5, 7)
		assert.Zero(t, sysAccess(t, r, v, reg, false, 6, 9), "%s", reg)
	}

	// A reset (PSCI CPU_ON) starts afresh.
	v.Ctx.Reset(guestIPA, 0)
	assert.True(t, d.OSLK)
	assert.Zero(t, d.MDSCR)
	assert.Zero(t, sysAccess(t, r, v, regDBGBCR0, false, 1, 0))
}
