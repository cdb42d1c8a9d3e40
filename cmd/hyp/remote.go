//go:build tamago

package main

import (
	"runtime"
	"sync/atomic"

	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/gic"
	"github.com/bulkhead-hv/bulkhead/hyp"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

// SGIs between the CPUs (cpu.WakeSGI, 8, wakes a parked or waiting one).
const (
	kickSGI  = 9  // the scheduler's kick (hyp.Config.Kick)
	doneSGI  = 10 // a secondary tells the boot CPU its command is done
	crashSGI = 11 // a CPU with no goroutine crashed (cpu.RemoteCrash)
)

// goWaiting says goroutines other than CPU 0's scheduler loop want CPU 0:
// a secondary reported a command done (its loop's goroutine has an exit
// to handle), or the EL2 timer fired. CPU 0's loop gives way (giveWay)
// before it next enters a guest; it checks goWaiting first, inline, as
// that is on the hypercall round trip's path.
var goWaiting atomic.Bool

// giveBy is the counter value by which CPU 0's loop gives way even if no
// one asked (hwCPU.SetEL2Timer), and giveEvery how long after giving way
// that is (a time slice). Not every goroutine that waits for CPU 0 can say so: one that
// a mark assist parked is readied only by the collector's background
// worker, which runs only when this loop yields; and the EL2 timer does
// not fire once a slice when the vCPUs here all yield often (each turn
// starts a new slice). Without this a secondary's loop goroutine parked
// so waited for good: a ticker guest on CPU 1, beside two vCPUs on CPU 0
// that nap in short YIELDs, stopped ticking, with its CPU's command done
// and nothing left to send CPU 0 an interrupt.
var giveBy, giveEvery uint64

// giveWay lets the other goroutines run. Only CPU 0's scheduler loop calls
// it, without the scheduler lock.
func giveWay() {
	goWaiting.Store(false)
	runtime.Gosched()
	giveBy = cpu.ReadCNTPCT() + giveEvery
}

// remoteCPU is a secondary CPU as the scheduler drives it from the boot
// CPU. The scheduler's writes to the CPU's vCPU interface and timers go
// to its Remote, the CPU's loop loads them before a command and saves
// them after, and the world switch and the wait for an interrupt are
// commands (docs/architecture.md, "CPUs"). Its scheduler loop is a
// goroutine on the boot CPU, which waits for each command by yielding.
type remoteCPU struct {
	r     *vcpu.Remote
	mpidr uint64
	gic   *gic.Physical // its redistributor
	// The interrupts the last command ended with, and how many of them
	// Ack has handed out.
	irqs       [len(vcpu.Remote{}.IRQs)]uint32
	nirqs, got int
}

func newRemoteCPU(mpidr uint64, p *gic.Physical, vtcr, mdcr uint64) *remoteCPU {
	self := cpu.ReadMPIDR()
	return &remoteCPU{
		mpidr: mpidr,
		gic:   p,
		r: &vcpu.Remote{
			NumLRs:  uint64(gic.NumLRs()),
			DoneSGI: gic.SGI1R(doneSGI, self),
			SelfSGI: gic.SGI1R(0, mpidr),
			VTCR:    vtcr,
			MDCR:    mdcr,
		},
	}
}

func (c *remoteCPU) Run(ctx *vcpu.Context) { c.do(c.r.Enter(ctx)) }
func (c *remoteCPU) WaitForInterrupt()     { c.do(c.r.Post(vcpu.RemoteWait)) }

// do waits for the posted command, waking the CPU if it sleeps, and takes
// the interrupts it ended with.
func (c *remoteCPU) do(wake bool) {
	if wake {
		gic.SendSGI(cpu.WakeSGI, c.mpidr)
	}
	for !c.r.Done() {
		runtime.Gosched()
	}
	c.nirqs, c.got = int(c.r.NumIRQs), 0
	for i := 0; i < c.nirqs; i++ {
		c.irqs[i] = uint32(c.r.IRQs[i])
	}
}

// SyncSys has nothing to do: a context is wholly in memory once a remote
// Run returns.
func (c *remoteCPU) SyncSys(*vcpu.Context) {}

func (c *remoteCPU) ReadLR(i int) uint64     { return c.r.LR[i] }
func (c *remoteCPU) WriteLR(i int, v uint64) { c.r.LR[i] = v }
func (c *remoteCPU) WriteICHHCR(v uint64)    { c.r.ICH_HCR = v }
func (c *remoteCPU) Counter() uint64         { return cpu.ReadCNTPCT() }
func (c *remoteCPU) SetEL2Timer(cval uint64) { c.r.CNTHP_CVAL = cval }

// MaskVTimer writes the CPU's redistributor from here, between commands.
func (c *remoteCPU) MaskVTimer(masked bool) { c.gic.MaskPPI(vtimerPPI, masked) }

func (c *remoteCPU) LoadICH(vmcr, ap0r, ap1r uint64) {
	c.r.ICH_VMCR, c.r.ICH_AP0R0, c.r.ICH_AP1R0 = vmcr, ap0r, ap1r
}

func (c *remoteCPU) SaveICH() (vmcr, ap0r, ap1r uint64) {
	return c.r.ICH_VMCR, c.r.ICH_AP0R0, c.r.ICH_AP1R0
}

func (c *remoteCPU) LoadVTimer(ctl, cval, cntvoff uint64) {
	c.r.CNTV_CTL, c.r.CNTV_CVAL, c.r.CNTVOFF = ctl, cval, cntvoff
}

func (c *remoteCPU) SaveVTimer() (ctl, cval uint64) {
	return c.r.CNTV_CTL &^ hyp.CNT_CTL_ISTATUS, c.r.CNTV_CVAL
}

// Ack returns the interrupts the last command ended with, in turn. The
// loop has already ended them, so EOI and PriorityDrop have nothing to do.
func (c *remoteCPU) Ack() uint32 {
	if c.got == c.nirqs {
		return 1023
	}
	c.got++
	return c.irqs[c.got-1]
}

func (c *remoteCPU) EOI(uint32)          {}
func (c *remoteCPU) PriorityDrop(uint32) {}
