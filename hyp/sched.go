package hyp

import (
	"fmt"

	"github.com/bulkhead-hv/bulkhead/hyp/vgic"
	"github.com/bulkhead-hv/bulkhead/mmu"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

// CPU is the physical CPU the scheduler runs on: the world switch, and the
// per-CPU hardware the scheduler manages around it. The hardware
// implementation lives with the board; tests script it.
type CPU interface {
	// Run enters the guest and returns at its next exit.
	Run(c *vcpu.Context)
	// SyncSys makes c.Sys current before Go code reads or changes it.
	SyncSys(c *vcpu.Context)

	// The virtual CPU interface: list registers, ICH_HCR_EL2, and the
	// state switched with the vCPU (ICH_VMCR_EL2, ICH_AP0R0/AP1R0_EL2).
	vgic.LRs
	WriteICHHCR(hcr uint64)
	LoadICH(vmcr, ap0r, ap1r uint64)
	SaveICH() (vmcr, ap0r, ap1r uint64)

	// The running vCPU's virtual timer and its VM's CNTVOFF_EL2.
	LoadVTimer(ctl, cval, cntvoff uint64)
	SaveVTimer() (ctl, cval uint64)

	// Counter reads CNTPCT_EL0.
	Counter() uint64
	// SetEL2Timer arms the EL2 physical timer (CNTHP) at an absolute
	// counter value; 0 disarms it.
	SetEL2Timer(cval uint64)

	// Ack takes the highest priority pending physical interrupt (1023:
	// none); EOI ends it (priority drop and deactivation); PriorityDrop
	// only drops its priority, leaving it active (EOImode 1).
	Ack() uint32
	EOI(intid uint32)
	PriorityDrop(intid uint32)
	// WaitForInterrupt idles the CPU until an interrupt is pending.
	WaitForInterrupt()
}

// Generic Timer control bits (Arm ARM D11.2, CNTV_CTL_EL0).
const (
	CNT_CTL_ENABLE  = 1 << 0
	CNT_CTL_IMASK   = 1 << 1
	CNT_CTL_ISTATUS = 1 << 2
)

// vtimer is a vCPU's saved virtual timer.
type vtimer struct{ ctl, cval uint64 }

// deadline is the physical counter value at which the timer fires, if
// it is armed.
func (t vtimer) deadline(cntvoff uint64) (uint64, bool) {
	if t.ctl&CNT_CTL_ENABLE == 0 || t.ctl&CNT_CTL_IMASK != 0 {
		return 0, false
	}
	return t.cval + cntvoff, true
}

// RunAll schedules every vCPU on this CPU until all VMs have stopped:
// round-robin time slices driven by the EL2 timer, vCPUs in WFI blocked
// until an interrupt or their timer, woken vCPUs run first.
func (h *Hyp) RunAll(cpu CPU) {
	for _, vm := range h.VMs() {
		for _, v := range vm.VCPUs {
			if v.On && !v.blocked {
				h.runq = append(h.runq, v)
			}
		}
	}
	for {
		if len(h.runq) == 0 {
			if !h.idle(cpu) {
				break
			}
			continue
		}
		v := h.runq[0]
		h.runq = h.runq[1:]
		if v.VM.State != Running || !v.On || v.blocked {
			continue
		}
		h.runVCPU(cpu, v)
	}
	cpu.SetEL2Timer(0)
}

// idle waits for an interrupt when nothing can run. It returns false when
// no vCPU is alive, and stops VMs that wait for something nothing can send.
func (h *Hyp) idle(cpu CPU) bool {
	alive, armed, forwarded := false, false, false
	var next uint64
	for _, vm := range h.VMs() {
		if vm.State != Running {
			continue
		}
		for _, v := range vm.VCPUs {
			if !v.On {
				continue
			}
			alive = true
			forwarded = forwarded || v.mmio != nil
			if d, ok := v.timer.deadline(vm.cntvoff); ok && (!armed || d < next) {
				next, armed = d, true
			}
		}
	}
	if !alive {
		return false
	}
	if !armed && forwarded {
		// A vCPU waits on the control partition, which will answer.
		cpu.WaitForInterrupt()
		h.serviceIRQs(cpu, nil)
		return true
	}
	if !armed {
		// Every vCPU waits for an interrupt and no timer is armed: with no
		// devices yet, nothing can ever wake them.
		for _, vm := range h.VMs() {
			if vm.State == Running {
				h.stopf(vm, -1, "every vCPU waits for an interrupt and none can arrive (no timer armed)")
			}
		}
		return true
	}
	cpu.SetEL2Timer(next)
	if h.cfg.Trace {
		fmt.Fprintf(h.Out, "trace: idle until %d (now %d)\n", next, cpu.Counter())
	}
	cpu.WaitForInterrupt()
	h.serviceIRQs(cpu, nil)
	return true
}

// runVCPU runs v for one time slice, or until it yields, blocks or stops.
func (h *Hyp) runVCPU(cpu CPU, v *VCPU) {
	vm := v.VM
	now := cpu.Counter()
	if vm.stolenSince != 0 {
		// Time the VM could have run but did not does not pass for it.
		vm.cntvoff += now - vm.stolenSince
		vm.stolenSince = 0
	}
	vm.vmid = h.vmids.Refresh(vm.vmid)
	if t := mmu.VTTBR(&vm.s2, vm.vmid.ID); t != v.Ctx.EL2.VTTBR {
		// A new VMID (or a first run): the world switch loads the EL2
		// configuration only with the rest of the context.
		v.Ctx.EL2.VTTBR = t
		cpu.SyncSys(&v.Ctx)
	}
	cpu.LoadVTimer(v.timer.ctl, v.timer.cval, vm.cntvoff)
	cpu.LoadICH(v.gic.VMCR, v.gic.AP0R, v.gic.AP1R)
	h.sliceEnd = now + h.cfg.Slice
	h.armEL2Timer(cpu)
	defer func() {
		vm.RunTicks += cpu.Counter() - now
		v.timer.ctl, v.timer.cval = cpu.SaveVTimer()
		// Off the CPU the vCPU's timer is the scheduler's to watch: the
		// hardware one must not fire for it.
		cpu.LoadVTimer(0, 0, vm.cntvoff)
		v.gic.VMCR, v.gic.AP0R, v.gic.AP1R = cpu.SaveICH()
		cpu.WriteICHHCR(0)
		h.hwHCR = 0
		for i := 0; i < h.hwLRs; i++ {
			cpu.WriteLR(i, 0)
		}
		h.hwLRs = 0
	}()
	for {
		n := vm.vgic.Flush(v.gic)
		if n > 0 || h.hwLRs > 0 {
			if h.hwLRs > n {
				for i := n; i < h.hwLRs; i++ {
					cpu.WriteLR(i, 0)
				}
			}
			v.gic.LoadLRs(cpu, n)
			h.hwLRs = n
		}
		if v.gic.HCR != h.hwHCR {
			cpu.WriteICHHCR(v.gic.HCR)
			h.hwHCR = v.gic.HCR
		}
		cpu.Run(&v.Ctx)
		if h.hwLRs > 0 {
			vm.vgic.Sync(v.gic, cpu, h.hwLRs)
		}
		act := h.HandleExit(cpu, v)
		preempt := false
		if v.Ctx.Exit.Vector == vcpu.VectorIRQ64 || v.Ctx.Exit.Vector == vcpu.VectorFIQ64 {
			preempt = h.serviceIRQs(cpu, v)
		}
		switch act {
		case Resume:
			if !preempt {
				continue
			}
			vm.stolenSince = cpu.Counter()
			h.runq = append(h.runq, v)
		case Yield:
			h.runq = append(h.runq, v)
		case Block:
			v.blocked = true
		}
		return
	}
}

// armEL2Timer programs CNTHP for the end of the slice or the earliest
// deadline of a blocked vCPU, whichever comes first.
func (h *Hyp) armEL2Timer(cpu CPU) {
	next := h.sliceEnd
	for _, vm := range h.vms {
		for _, v := range vm.VCPUs {
			if !v.blocked || vm.State != Running {
				continue
			}
			if d, ok := v.timer.deadline(vm.cntvoff); ok && d < next {
				next = d
			}
		}
	}
	if next != h.hwEL2Timer {
		cpu.SetEL2Timer(next)
		h.hwEL2Timer = next
	}
}

// serviceIRQs handles the physical interrupts pending at EL2: the EL2
// timer (slice end, sleepers' deadlines), the running vCPU's virtual timer,
// and the vGIC maintenance interrupt. It reports whether the running vCPU
// should give way.
func (h *Hyp) serviceIRQs(cpu CPU, running *VCPU) (preempt bool) {
	for {
		intid := cpu.Ack()
		if h.cfg.Trace {
			fmt.Fprintf(h.Out, "trace: interrupt %d\n", intid)
		}
		if intid >= vgic.Spurious {
			break
		}
		switch intid {
		case h.cfg.PPIs.HypTimer:
			h.hwEL2Timer = 0
			cpu.SetEL2Timer(0)
		case h.cfg.PPIs.VTimer:
			if running == nil {
				// Stale: no vCPU's timer is loaded. Make sure it is off.
				cpu.LoadVTimer(0, 0, 0)
			} else {
				// Mask the timer so it cannot fire again before the guest
				// reprograms it, and hand the guest its interrupt.
				ctl, cval := cpu.SaveVTimer()
				cpu.LoadVTimer(ctl|CNT_CTL_IMASK, cval, running.VM.cntvoff)
				running.VM.vgic.Inject(running.Index, h.cfg.PPIs.VTimer)
			}
		case h.cfg.PPIs.Maintenance:
			// The list registers drained; the next entry refills them.
		default:
			if vm := h.irqOwner(intid); vm != nil {
				// A device's interrupt, the guest's to handle: drop the
				// running priority only; the guest's deactivation of the
				// linked virtual interrupt deactivates this one.
				if c := vm.vgic.InjectPhysical(intid); c != nil {
					h.wake(vm.VCPUs[c.Index])
					preempt = preempt || running == nil || running.VM != vm
				}
				cpu.PriorityDrop(intid)
				continue
			}
			// Nobody owns it: it was never enabled; end it.
		}
		cpu.EOI(intid)
	}
	now := cpu.Counter()
	for _, vm := range h.vms {
		if vm.State != Running {
			continue
		}
		for _, v := range vm.VCPUs {
			if !v.blocked || !v.On {
				continue
			}
			if d, ok := v.timer.deadline(vm.cntvoff); ok && d <= now {
				v.timer.ctl |= CNT_CTL_IMASK
				vm.vgic.Inject(v.Index, h.cfg.PPIs.VTimer)
				h.wake(v)
				preempt = true
			}
		}
	}
	if running != nil && now >= h.sliceEnd {
		if len(h.runq) > 0 {
			preempt = true
		} else {
			h.sliceEnd = now + h.cfg.Slice // nobody waits: another slice
		}
	}
	if !preempt && running != nil {
		h.armEL2Timer(cpu)
	}
	return preempt
}

// wake makes a blocked vCPU runnable, ahead of the others.
func (h *Hyp) wake(v *VCPU) {
	if !v.blocked || v.mmio != nil {
		return
	}
	v.blocked = false
	h.runq = append([]*VCPU{v}, h.runq...)
}
