//go:build tamago

// Command conform checks the hypervisor against rules of the Arm
// architecture that a guest written from the specifications relies on,
// and that a forgiving guest such as Linux may never exercise: SGIs taken
// as exceptions (to itself, to a target list, to all others), the active
// state while an interrupt is handled, the virtual timer's interrupt as a
// level-sensitive line that follows CNTV_CTL_EL0, the PL031's
// identification and alarm interrupt, and self-hosted debug (debug.go).
// It sets the GIC up as the GICv3 specification's programmer's model has
// it, and as QEMU's own GIC accepts: it never wakes its redistributors
// through GICR_WAKER.
//
// Every vCPU but the first is powered off and started again with PSCI
// CPU_ON to wait for interrupts with PSTATE.I unmasked. Each check prints
// "conform: ok NAME" or "conform: FAIL NAME: why"; the exit status is the
// number of failures.
package main

import (
	"fmt"
	"os"

	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/gic"
)

// GICv3 register offsets the guest uses (IHI 0069, 12.9 and 12.11).
const (
	gicdCTLR       = vm.GICDBase + gic.GICD_CTLR
	gicdTYPER      = vm.GICDBase + gic.GICD_TYPER
	ctlrEnableGrp1 = 1 << 0 // GICD_CTLR, non-secure view: EnableGrp1
	ctlrGrp1A      = 1 << 1 // EnableGrp1A
	ctlrARE_NS     = 1 << 4 // ARE_NS
	typerLPIS      = 1 << 17
	sgi1rIRM       = 1 << 40 // ICC_SGI1R_EL1.IRM: every PE but the sender
)

// The virtual timer's CNTV_CTL_EL0 bits (Arm ARM D11.2.4).
const (
	ctlENABLE  = 1 << 0
	ctlIMASK   = 1 << 1
	ctlISTATUS = 1 << 2
)

// The PL031 (Arm DDI 0224) at QEMU virt's address, on SPI 2.
const (
	rtcBase  = 0x09010000
	rtcDR    = rtcBase + 0x00
	rtcMR    = rtcBase + 0x04
	rtcIMSC  = rtcBase + 0x10
	rtcRIS   = rtcBase + 0x14
	rtcMIS   = rtcBase + 0x18
	rtcICR   = rtcBase + 0x1c
	rtcID    = rtcBase + 0xfe0
	rtcIntID = 34
)

// The PL031's PeriphID0-3 and PCellID0-3 (DDI 0224, 3.3.10 and 3.3.11).
var rtcIDs = [8]uint32{0x31, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1}

var failures int

func check(name string, ok bool, format string, args ...any) {
	if ok {
		fmt.Printf("conform: ok %s\n", name)
		return
	}
	failures++
	fmt.Printf("conform: FAIL %s: %s\n", name, fmt.Sprintf(format, args...))
}

// ms is n milliseconds of the virtual counter.
func ms(n uint64) uint64 { return n * vm.CounterFrequency() / 1000 }

// waitFor polls cond for up to timeout counter ticks.
func waitFor(timeout uint64, cond func() bool) bool {
	end := vm.Counter() + timeout
	for vm.Counter() < end {
		if cond() {
			return true
		}
	}
	return cond()
}

func sgi(v uint64) { vm.SGI1R(v) }

func bit(word uint32, n uint32) bool { return word>>(n%32)&1 == 1 }

func pending0(cpu int) uint32 { return vm.Read32(vm.GICR(cpu) + gic.GICR_ISPENDR0) }

func main() {
	ncpus := 1
	for ncpus < vm.MaxIRQCPUs {
		if _, ok := vm.CPUOn(ncpus); !ok {
			break
		}
		ncpus++
	}
	fmt.Printf("conform: %d vCPUs\n", ncpus)

	// The GIC as the specification sets it up, per redistributor: every
	// SGI and PPI in group 1 at priority 0xa0, the SGIs enabled; then the
	// distributor with affinity routing and group 1.
	for c := 0; c < ncpus; c++ {
		rd := vm.GICR(c)
		vm.Write32(rd+gic.GICR_IGROUPR0, 0xffffffff)
		for i := uint64(0); i < 32; i += 4 {
			vm.Write32(rd+gic.GICR_IPRIORITYR+i, 0xa0a0a0a0)
		}
		vm.Write32(rd+gic.GICR_ISENABLER0, 0xffff)
	}
	vm.Write32(gicdCTLR, ctlrARE_NS|ctlrGrp1A|ctlrEnableGrp1)
	vm.CPUInterfaceOn()

	for c := 1; c < ncpus; c++ {
		vm.StopCPU(c)
		if !waitFor(ms(1000), func() bool { on, _ := vm.CPUOn(c); return !on }) {
			check("psci-cpu-off", false, "vCPU %d still on 1 s after it called CPU_OFF", c)
			os.Exit(failures)
		}
		if r := vm.StartCPU(c); r != 0 {
			check("psci-cpu-on", false, "CPU_ON of vCPU %d: %d", c, r)
			os.Exit(failures)
		}
	}

	sgis(ncpus)
	timer()
	rtc()
	debug(ncpus)
	fp(ncpus)
	absent()
	fmt.Printf("conform: %d failures\n", failures)
	os.Exit(failures)
}

// sgis sends SGIs through ICC_SGI1R_EL1 and sees them taken as exceptions.
func sgis(ncpus int) {
	vm.EnableIRQs()
	defer vm.DisableIRQs()
	before := vm.IRQCount(0, 3)
	sgi(3<<24 | 1) // to itself, by target list (Aff0 0)
	got := waitFor(ms(1000), func() bool { return vm.IRQCount(0, 3) == before+1 })
	check("sgi-self", got, "SGI 3 sent to itself taken %d times, want 1", vm.IRQCount(0, 3)-before)
	during, after := vm.IRQActive(0)
	check("sgi-active-self", got && bit(during, 3) && !bit(after, 3),
		"GICR_ISACTIVER0 %#x while handling SGI 3, %#x after its EOI: want bit 3 set, then clear", during, after)
	if ncpus == 1 {
		return
	}

	counts := func(intid uint32) []uint32 {
		var n []uint32
		for c := 0; c < ncpus; c++ {
			n = append(n, vm.IRQCount(c, intid))
		}
		return n
	}
	for _, tc := range []struct {
		name  string
		intid uint32
		sgi1r uint64
	}{
		{"sgi-target-list", 5, 0},
		{"sgi-all-others", 6, sgi1rIRM},
	} {
		before := counts(tc.intid)
		v := uint64(tc.intid)<<24 | tc.sgi1r
		if tc.sgi1r == 0 {
			for c := 1; c < ncpus; c++ {
				v |= 1 << c
			}
		}
		sgi(v)
		missing := func() (n int) {
			now := counts(tc.intid)
			for c := 1; c < ncpus; c++ {
				if now[c] != before[c]+1 {
					n++
				}
			}
			return n
		}
		waitFor(ms(1000), func() bool { return missing() == 0 })
		now := counts(tc.intid)
		check(tc.name, missing() == 0 && now[0] == before[0],
			"SGI %d to vCPUs 1-%d: taken %v times before, %v after (missing=%d, vCPU 0 must not take it)",
			tc.intid, ncpus-1, before, now, missing())
		during, after := vm.IRQActive(ncpus - 1)
		check(tc.name+"-active", bit(during, tc.intid) && !bit(after, tc.intid),
			"vCPU %d's GICR_ISACTIVER0 %#x while handling SGI %d, %#x after its EOI", ncpus-1, during, tc.intid, after)
	}
}

// timer checks that the virtual timer's interrupt is a level-sensitive
// line: pending exactly while CNTV_CTL_EL0 has ENABLE and ISTATUS set and
// IMASK clear (Arm ARM D11.2.4; GICv3 4.1.1, level-sensitive interrupts),
// taken when unmasked, and armed again by writing CVAL alone.
func timer() {
	vm.Write32(vm.GICR(0)+gic.GICR_ISENABLER0, 1<<vm.VirtualTimer)
	vm.DisableIRQs()
	vm.SetTimerControl(0)
	deadline := vm.Counter() + ms(20)
	vm.SetTimerCompare(deadline)
	vm.SetTimerControl(ctlENABLE)
	ctl, pend := vm.TimerControl(), bit(pending0(0), vm.VirtualTimer)
	check("timer-not-pending-before", ctl&ctlISTATUS == 0 && !pend,
		"before the deadline: CNTV_CTL_EL0 %#x, pending %v; want ISTATUS clear and not pending", ctl, pend)
	fired := waitFor(ms(1000), func() bool { return vm.TimerControl()&ctlISTATUS != 0 })
	ctl, pend = vm.TimerControl(), bit(pending0(0), vm.VirtualTimer)
	check("timer-pending-while-asserted", fired && pend,
		"past the deadline: CNTV_CTL_EL0 %#x, pending %v; want ISTATUS set and pending", ctl, pend)
	check("timer-control-is-the-guests", ctl == ctlENABLE|ctlISTATUS,
		"CNTV_CTL_EL0 reads %#x after the timer fired, want ENABLE|ISTATUS (%#x): nobody else may set IMASK", ctl, ctlENABLE|ctlISTATUS)
	vm.SetTimerControl(ctlENABLE | ctlIMASK)
	pend = bit(pending0(0), vm.VirtualTimer)
	check("timer-no-longer-pending-masked", !pend, "the guest set IMASK: the line is low, yet the PPI reads pending")
	vm.SetTimerControl(ctlENABLE)
	pend = bit(pending0(0), vm.VirtualTimer)
	check("timer-pending-again-unmasked", pend, "IMASK cleared with the deadline passed: the line is high, yet the PPI reads not pending")
	vm.SetTimerCompare(vm.Counter() + ms(1000))
	pend = bit(pending0(0), vm.VirtualTimer)
	check("timer-not-pending-rearmed", !pend, "CVAL moved past the count: the line is low, yet the PPI reads pending")

	// Taken as an exception; the handler masks it.
	before := vm.IRQCount(0, vm.VirtualTimer)
	deadline = vm.Counter() + ms(5)
	vm.SetTimerCompare(deadline)
	vm.EnableIRQs()
	got := waitFor(ms(1000), func() bool { return vm.IRQCount(0, vm.VirtualTimer) == before+1 })
	at := vm.Counter()
	vm.DisableIRQs()
	check("timer-interrupt-received", got && at >= deadline,
		"PPI 27 taken %d times within 1 s of arming it, want 1", vm.IRQCount(0, vm.VirtualTimer)-before)
	pend = bit(pending0(0), vm.VirtualTimer)
	check("timer-not-pending-after-handler", !pend, "the handler masked the timer, yet the PPI reads pending")

	// Fired with interrupts masked, then armed again by CVAL alone.
	vm.SetTimerControl(ctlENABLE)
	vm.SetTimerCompare(vm.Counter() + ms(1))
	waitFor(ms(1000), func() bool { return vm.TimerControl()&ctlISTATUS != 0 })
	before = vm.IRQCount(0, vm.VirtualTimer)
	deadline = vm.Counter() + ms(10)
	vm.SetTimerCompare(deadline)
	pend = bit(pending0(0), vm.VirtualTimer)
	check("timer-follows-cval", !pend, "CVAL moved past the count after the timer fired: the PPI still reads pending")
	vm.EnableIRQs()
	got = waitFor(ms(2000), func() bool { return vm.IRQCount(0, vm.VirtualTimer) == before+1 })
	at = vm.Counter()
	vm.DisableIRQs()
	check("timer-rearmed-by-cval", got && at >= deadline,
		"armed again by CVAL alone: taken %d times (want 1), %d ticks after its deadline", vm.IRQCount(0, vm.VirtualTimer)-before, int64(at-deadline))
	vm.SetTimerControl(0)
}

// rtc checks the PL031's identification registers and its alarm: the
// raw status set when the count reaches the match register, the SPI
// pending in the distributor while it is unmasked and set, and taken.
func rtc() {
	var ids [8]uint32
	for i := range ids {
		ids[i] = vm.Read32(rtcID + uint64(4*i))
	}
	check("pl031-ids", ids == rtcIDs, "PeriphID0-3, PCellID0-3 read %#x, want %#x", ids, rtcIDs)

	// The SPI routed to vCPU 0, group 1, priority 0xa0, enabled.
	n := uint64(rtcIntID / 32)
	mask := uint32(1) << (rtcIntID % 32)
	vm.Write32(vm.GICDBase+gic.GICD_IGROUPR+4*n, vm.Read32(vm.GICDBase+gic.GICD_IGROUPR+4*n)|mask)
	vm.Write32(vm.GICDBase+gic.GICD_IPRIORITYR+rtcIntID&^3, 0xa0a0a0a0)
	vm.Write32(vm.GICDBase+gic.GICD_IROUTER+8*rtcIntID, 0)
	vm.Write32(vm.GICDBase+gic.GICD_ISENABLER+4*n, mask)
	spiPending := func() bool { return vm.Read32(vm.GICDBase+gic.GICD_ISPENDR+4*n)&mask != 0 }

	vm.Write32(rtcICR, 1)
	vm.Write32(rtcMR, vm.Read32(rtcDR)+1)
	vm.Write32(rtcIMSC, 1)
	raised := waitFor(ms(3000), func() bool { return vm.Read32(rtcRIS)&1 != 0 })
	mis := vm.Read32(rtcMIS)
	check("pl031-alarm-status", raised && mis&1 != 0, "2 s after setting the match register one second ahead: RTCRIS %#x, RTCMIS %#x", vm.Read32(rtcRIS), mis)
	pend := spiPending()
	check("pl031-alarm-pending", raised && pend, "the alarm is raised and unmasked, yet SPI %d does not read pending in the distributor", rtcIntID-32)
	vm.Write32(rtcICR, 1)
	pend = spiPending()
	check("pl031-alarm-cleared", vm.Read32(rtcRIS)&1 == 0 && !pend, "after RTCICR: RTCRIS %#x, pending %v", vm.Read32(rtcRIS), pend)

	vm.QuietIRQ(rtcIntID, rtcICR, 1)
	before := vm.IRQCount(0, rtcIntID)
	vm.Write32(rtcMR, vm.Read32(rtcDR)+1)
	vm.EnableIRQs()
	got := waitFor(ms(3000), func() bool { return vm.IRQCount(0, rtcIntID) != before })
	vm.DisableIRQs()
	check("pl031-alarm-interrupt", got && vm.IRQCount(0, rtcIntID) == before+1,
		"the alarm's interrupt was taken %d times, want 1", vm.IRQCount(0, rtcIntID)-before)
	vm.Write32(rtcIMSC, 0)
}

// absent checks that what Bulkhead leaves out is absent, not half there.
func absent() {
	typer := vm.Read32(gicdTYPER)
	check("gic-no-lpis", typer&typerLPIS == 0, "GICD_TYPER %#x says LPIs are supported, but no ITS or LPI tables exist", typer)

	// The ID registers (Arm ARM D19.2), as the hypervisor answers their
	// trapped reads: features whose state it does not switch read absent.
	id := cpu.ReadAA64IDRegs()
	field := func(reg int, shift uint) uint64 { return id[reg] >> shift & 0xf }
	for _, f := range []struct {
		name       string
		reg        int
		shift      uint
		what, regn string
	}{
		{"id-no-pmu", 8, 8, "PMUVer", "ID_AA64DFR0_EL1"},
		{"id-no-spe", 8, 32, "PMSVer", "ID_AA64DFR0_EL1"},
		{"id-no-trace", 8, 4, "TraceVer", "ID_AA64DFR0_EL1"},
		{"id-no-mte", 1, 8, "MTE", "ID_AA64PFR1_EL1"},
		{"id-no-sme", 1, 24, "SME", "ID_AA64PFR1_EL1"},
		{"id-no-sve", 0, 32, "SVE", "ID_AA64PFR0_EL1"},
		{"id-no-amu", 0, 44, "AMU", "ID_AA64PFR0_EL1"},
	} {
		check(f.name, field(f.reg, f.shift) == 0, "%s.%s is %d, but the hypervisor does not switch its state", f.regn, f.what, field(f.reg, f.shift))
	}
}
