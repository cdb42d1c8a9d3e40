//go:build tamago

package main

import (
	"sync/atomic"
	"unsafe"

	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/cpu"
)

// What dbgSync records of the last debug exception (debug_arm64.s).
var (
	dbgESR, dbgELR, dbgFAR, dbgX3, dbgCount uint64
	dbgOldVBAR                              uint64
	// watched is the watchpoint checks' word; spins and spinStop are the
	// per-vCPU check's.
	watched, spins, spinStop uint64
)

func trapped(fn, arg uint64)
func addrs() (bp, store, plain, trap, hvc, spinner uint64)
func stepAddrs() (plain, trap, hvc uint64)

// Exception classes of debug exceptions taken without a change of EL
// (Arm ARM D19.2, ESR_EL1.EC).
const (
	ecBreakpoint = 0x31
	ecStep       = 0x33
	ecWatchpoint = 0x35
)

// Fields of the breakpoint and watchpoint control registers (Arm ARM
// D19.3, DBGBCR<n>_EL1, DBGWCR<n>_EL1) and MDSCR_EL1.
const (
	bcrE     = 1 << 0
	bcrPMC   = 3 << 1    // EL1 and EL0
	bcrBAS   = 0xf << 5  // the whole A64 instruction
	wcrLSC   = 2 << 3    // stores
	wcrBAS   = 0xff << 5 // the whole doubleword
	mdscrKDE = 1 << 13
	mdscrMDE = 1 << 15
)

// debugReg is the MRS/MSR encoding of debug register op2 (4 DBGBVR, 5
// DBGBCR, 6 DBGWVR, 7 DBGWCR) number n.
func debugReg(n int, op2 uint8) cpu.SysReg { return cpu.SysReg{Op0: 2, CRm: uint8(n), Op2: op2} }

var (
	regMDSCR = cpu.SysReg{Op0: 2, CRm: 2, Op2: 2}
	regOSLAR = cpu.SysReg{Op0: 2, CRn: 1, Op2: 4}
	regOSLSR = cpu.SysReg{Op0: 2, CRn: 1, CRm: 1, Op2: 4}
)

// msr writes a system register, and reports the exception it raised
// (ESR_EL1; 0: none).
func msr(r cpu.SysReg, v uint64) uint64 {
	_, esr := vm.Execute(r.Encode(true, 0), v)
	return esr
}

// mrs reads a system register.
func mrs(r cpu.SysReg) (uint64, uint64) { return vm.Execute(r.Encode(false, 0), 0) }

// run calls fn under dbgVectors and returns what it recorded.
func run(fn, arg uint64) (n, esr, elr, far, x3 uint64) {
	dbgCount, dbgESR, dbgELR, dbgFAR, dbgX3 = 0, 0, 0, 0, ^uint64(0)
	trapped(fn, arg)
	return dbgCount, dbgESR, dbgELR, dbgFAR, dbgX3
}

func ec(esr uint64) uint64 { return esr >> 26 & 0x3f }

// debug checks self-hosted debug (Arm ARM D2) as a guest's own debugger
// uses it: the ID register's counts, the breakpoint and watchpoint
// registers, the OS lock, breakpoint, watchpoint and software step
// exceptions taken at EL1 (a step over an instruction the hypervisor
// emulates counts as one), and each vCPU's comparators its own.
func debug(ncpus int) {
	dfr0 := cpu.ReadAA64IDRegs()[8]
	bps, wps := int(dfr0>>12&0xf)+1, int(dfr0>>20&0xf)+1
	check("debug-id", dfr0&0xf >= 6 && bps >= 2 && wps >= 2,
		"ID_AA64DFR0_EL1 %#x: DebugVer %d, %d breakpoints, %d watchpoints; want Armv8.0 debug (6) with at least 2 of each", dfr0, dfr0&0xf, bps, wps)
	bp, store, plainAt, trappedAt, hvcAt, spinner := addrs()
	stepPlain, stepTrapped, stepHVC := stepAddrs()

	// Every comparator holds what is written, but for RES0 bits; one past
	// the last is UNDEFINED.
	ok, why := true, ""
	for n := 0; n < bps; n++ {
		msr(debugReg(n, 4), bp|3)
		msr(debugReg(n, 5), bcrPMC|bcrBAS|uint64(n)<<16)
		v, _ := mrs(debugReg(n, 4))
		c, _ := mrs(debugReg(n, 5))
		if v != bp || c != bcrPMC|bcrBAS|uint64(n)<<16 {
			ok, why = false, "a breakpoint register does not hold its value"
		}
	}
	for n := 0; n < wps; n++ {
		msr(debugReg(n, 6), uint64(n)<<3|7)
		msr(debugReg(n, 7), wcrLSC|wcrBAS)
		v, _ := mrs(debugReg(n, 6))
		c, _ := mrs(debugReg(n, 7))
		if v != uint64(n)<<3|4 || c != wcrLSC|wcrBAS { // [1:0] RES0; bit 2 an address bit
			ok, why = false, "a watchpoint register does not hold its value"
		}
		msr(debugReg(n, 7), 0)
	}
	if bps < 16 {
		if esr := msr(debugReg(bps, 5), 0); ec(esr) != 0 {
			ok, why = false, "DBGBCR<BRPs+1>_EL1 does not exist, yet its write did not take an Undefined Instruction"
		}
	}
	check("debug-registers", ok, "%s", why)

	// A breakpoint on bpTarget, armed; the OS lock, set at reset, keeps it
	// from firing until it is cleared.
	for n := 1; n < bps; n++ {
		msr(debugReg(n, 5), 0)
	}
	msr(debugReg(0, 4), bp)
	msr(debugReg(0, 5), bcrE|bcrPMC|bcrBAS)
	msr(regMDSCR, mdscrMDE|mdscrKDE)
	oslsr, _ := mrs(regOSLSR)
	n, _, _, _, _ := run(bp, 0)
	msr(regOSLAR, 0)
	unlocked, _ := mrs(regOSLSR)
	check("debug-os-lock", oslsr&2 != 0 && n == 0 && unlocked&2 == 0,
		"OSLSR_EL1 %#x at reset (want OSLK set), breakpoint taken %d times while locked (want 0), OSLSR_EL1 %#x after OSLAR_EL1 = 0", oslsr, n, unlocked)

	n, esr, elr, _, _ := run(bp, 0)
	check("debug-breakpoint", n == 1 && ec(esr) == ecBreakpoint && elr == bp,
		"taken %d times (want 1), ESR_EL1 %#x (want EC %#x), ELR_EL1 %#x (want %#x)", n, esr, ecBreakpoint, elr, bp)

	wa := uint64(uintptr(unsafe.Pointer(&watched)))
	msr(debugReg(0, 6), wa)
	msr(debugReg(0, 7), bcrE|bcrPMC|wcrLSC|wcrBAS)
	n, esr, elr, far, _ := run(store, wa)
	check("debug-watchpoint", n == 1 && ec(esr) == ecWatchpoint && esr&(1<<6) != 0 && far == wa && elr == store,
		"taken %d times (want 1), ESR_EL1 %#x (want EC %#x, WnR), FAR_EL1 %#x (want %#x), ELR_EL1 %#x (want %#x)",
		n, esr, ecWatchpoint, far, wa, elr, store)

	for _, s := range []struct {
		name     string
		fn, at   uint64
		executed uint64 // of the routine's x3 increments, before the step exception
	}{
		{"debug-step", stepPlain, plainAt, 1},
		{"debug-step-trapped", stepTrapped, trappedAt, 0},
		{"debug-step-hvc", stepHVC, hvcAt, 0},
	} {
		n, esr, elr, _, x3 := run(s.fn, 0)
		check(s.name, n == 1 && ec(esr) == ecStep && elr == s.at+4 && x3 == s.executed,
			"taken %d times (want 1), ESR_EL1 %#x (want EC %#x), ELR_EL1 %#x (want %#x: one instruction stepped), x3 %d (want %d)",
			n, esr, ecStep, elr, s.at+4, x3, s.executed)
	}

	if ncpus > 1 {
		perVCPU(bp, store, wa, spinner)
	}
	msr(debugReg(0, 5), 0)
	msr(debugReg(0, 7), 0)
	msr(regMDSCR, 0)
}

// perVCPU runs dbgSpinner on vCPU 1 while vCPU 0's breakpoint and
// watchpoint are armed on what it runs and writes: they must never fire
// there, and must still fire on vCPU 0 after vCPU 1 has run, on the same
// physical CPU or another.
func perVCPU(bp, store, wa, spinner uint64) {
	vm.StopCPU(1)
	if !waitFor(ms(1000), func() bool { on, _ := vm.CPUOn(1); return !on }) {
		check("debug-per-vcpu", false, "vCPU 1 still on 1 s after it was asked to power off")
		return
	}
	atomic.StoreUint64(&spins, 0)
	atomic.StoreUint64(&spinStop, 0)
	if r := vm.StartCPUAt(1, spinner); r != 0 {
		check("debug-per-vcpu", false, "CPU_ON of vCPU 1: %d", r)
		return
	}
	const want = 20000
	spun := waitFor(ms(5000), func() bool { return atomic.LoadUint64(&spins) >= want })
	got := atomic.LoadUint64(&spins)
	atomic.StoreUint64(&spinStop, 1)
	off := waitFor(ms(1000), func() bool { on, _ := vm.CPUOn(1); return !on })
	nb, esrb, _, _, _ := run(bp, 0)
	nw, esrw, _, _, _ := run(store, wa)
	check("debug-per-vcpu", spun && off && nb == 1 && ec(esrb) == ecBreakpoint && nw == 1 && ec(esrw) == ecWatchpoint,
		"vCPU 1 ran bpTarget and stored to the watched word %d times (want %d) with vCPU 0's comparators never firing there, powered off %v; "+
			"then vCPU 0's breakpoint taken %d times (ESR_EL1 %#x), its watchpoint %d times (ESR_EL1 %#x): want 1 each",
		got, want, off, nb, esrb, nw, esrw)
	vm.StartCPU(1)
}
