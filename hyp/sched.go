package hyp

import (
	"fmt"
	"sync/atomic"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/hyp/vgic"
	"github.com/bulkhead-hv/bulkhead/hyp/vuart"
	"github.com/bulkhead-hv/bulkhead/mmu"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

// CPU is the physical CPU the scheduler runs on: the world switch, and the
// per-CPU hardware the scheduler manages around it. The hardware
// implementation lives with the board; tests script it.
type CPU interface {
	// Run enters the guest and returns at its next exit.
	Run(c *vcpu.Context)
	// Resume enters c again straight after an exit that changed nothing
	// but c's general registers and PC (the lock-free hypercalls): what
	// Run does first on this CPU (another context's registers, the boot
	// CPU's other threads) was done by the Run before it.
	Resume(c *vcpu.Context)
	// SyncSys makes c.Sys current before Go code reads or changes it.
	SyncSys(c *vcpu.Context)
	// Release makes c wholly in memory and forgets it, as c runs on
	// another CPU next. Only the CPU itself can release what it holds.
	Release(c *vcpu.Context)

	// The virtual CPU interface: list registers and ICH_HCR_EL2.
	vgic.LRs
	WriteICHHCR(hcr uint64)

	// EnterVCPU loads the state switched with a vCPU beside its context:
	// its virtual timer, its VM's CNTVOFF_EL2, ICH_VMCR_EL2,
	// ICH_AP0R0/AP1R0_EL2 and ICH_HCR_EL2. LeaveVCPU saves it (the timer's
	// control without ISTATUS) and leaves the virtual timer off and
	// ICH_HCR_EL2 zero. One call each way: the vCPU switch's path.
	EnterVCPU(ctl, cval, cntvoff, vmcr, ap0r, ap1r, hcr uint64)
	LeaveVCPU() (ctl, cval, vmcr, ap0r, ap1r uint64)

	// The running vCPU's virtual timer and its VM's CNTVOFF_EL2.
	LoadVTimer(ctl, cval, cntvoff uint64)
	SaveVTimer() (ctl, cval uint64)

	// Counter reads CNTPCT_EL0.
	Counter() uint64
	// SetEL2Timer arms the EL2 physical timer (CNTHP) at an absolute
	// counter value; 0 disarms it.
	SetEL2Timer(cval uint64)
	// MaskVTimer disables (or enables again) the virtual timer's physical
	// interrupt at this CPU's redistributor: while the running vCPU's
	// timer line is known to be high, its level-sensitive interrupt would
	// otherwise be taken at EL2 again and again.
	MaskVTimer(masked bool)

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

// deadline is the physical counter value at which the timer's line
// rises, if it is armed (Arm ARM D11.2.4: ENABLE set, IMASK clear).
func (t vtimer) deadline(cntvoff uint64) (uint64, bool) {
	if t.ctl&CNT_CTL_ENABLE == 0 || t.ctl&CNT_CTL_IMASK != 0 {
		return 0, false
	}
	return t.cval + cntvoff, true
}

// pcpu is one physical CPU's share of the scheduler: its run queue and
// the hardware state it keeps across vCPU runs. vCPUs are pinned: each
// runs only on its home CPU.
type pcpu struct {
	id         int
	cpu        CPU      // what its Run loop drives, once it runs
	lrs        vgic.LRs // cpu's list registers, converted once (a conversion per exit costs a lookup)
	runq       []*VCPU
	runqStore  []*VCPU // the largest array runq has lived in (push)
	running    *VCPU   // in the guest right now, if any
	idle       bool    // waiting for an interrupt
	sliceEnd   uint64
	hwEL2Timer uint64
	hwLRs      int
	hwHCR      uint64
	// vtimerMasked: the virtual timer's physical interrupt is disabled
	// here (CPU.MaskVTimer), as the running vCPU's timer line is high.
	vtimerMasked bool
	// exits counts the guest exits this CPU handled, runTicks the
	// counter ticks guests ran here (CPU_STATS): under the lock.
	exits, runTicks uint64
	// fastExits counts the exits it answered without the lock
	// (Hyp.lockFree): written by this CPU alone (bump).
	fastExits atomic.Uint64
	// moving: a vCPU homed here is to move (VCPU_MOVE from another CPU).
	moving bool
	// sleepNext is the earliest deadline of the vCPUs blocked here as the
	// last walk of them found it (^0: none), if sleepKnown. It can only
	// be early, never late, as long as sleepKnown is unset whenever a vCPU
	// blocks here or moves here blocked: a woken vCPU's deadline goes
	// away, and the others' do not come nearer (their timers do not run,
	// CNTVOFF_EL2 only grows). An early one is walked again (armEL2Timer).
	sleepNext  uint64
	sleepKnown bool
}

// pop takes the first vCPU off the run queue, by slicing it off: no copy.
func (p *pcpu) pop() *VCPU {
	v := p.runq[0]
	p.runq[0] = nil
	p.runq = p.runq[1:]
	return v
}

// push queues v last. As pop slices the queue's front off, its capacity
// shrinks: once it is used up, the entries move back to the start of the
// queue's storage, so that a queue that does not grow does not allocate.
func (p *pcpu) push(v *VCPU) {
	if len(p.runq) == cap(p.runq) && len(p.runq) < cap(p.runqStore) {
		p.runq = append(p.runqStore[:0], p.runq...)
	}
	p.runq = append(p.runq, v)
	if cap(p.runq) > cap(p.runqStore) {
		p.runqStore = p.runq[:cap(p.runq)] // a new array: it starts at p.runq
	}
}

// RunAll schedules every vCPU on a single CPU: Run(0, cpu).
func (h *Hyp) RunAll(cpu CPU) { h.Run(0, cpu) }

// Run schedules the vCPUs homed on physical CPU id until every VM has
// stopped: round-robin time slices driven by the EL2 timer, vCPUs in WFI
// blocked until an interrupt or their timer, woken vCPUs run first. Each
// CPU calls it, on itself. The scheduler lock is held throughout except
// while a guest runs or the CPU idles, so the hypervisor's own work is
// serialized and guests run in parallel. The lock spins: a CPU waiting
// for it has nothing else to do.
func (h *Hyp) Run(id int, cpu CPU) {
	h.sched.Lock()
	defer h.sched.Unlock()
	p := h.pcpus[id]
	p.cpu, p.lrs = cpu, cpu
	if p.runqStore == nil {
		// Room for the queue to move along many pops before push moves it back.
		p.runqStore = make([]*VCPU, 0, 64)
		p.runq = append(p.runqStore, p.runq...)
	}
	h.holder = p.id + 1
	defer func() { h.holder = 0 }()
	for _, vm := range h.VMs() {
		for _, v := range vm.VCPUs {
			if v.home == id && v.On && !v.blocked {
				p.push(v)
			}
		}
	}
	// now is the counter as the last vCPU left the CPU, which the next
	// one's slice starts from if nothing took time between (0: read it);
	// a read costs a vCPU switch 15 instructions.
	var polled, now uint64
	for {
		if h.restartPending {
			h.restartControl()
			now = 0
		}
		if p.moving {
			h.rehomeMoving(p)
			now = 0
		}
		if id == 0 && h.cfg.Poll != nil {
			if now == 0 {
				now = cpu.Counter()
			}
			if now-polled >= h.cfg.Slice {
				polled = now
				h.cfg.Poll()
				now = 0
			}
		}
		if len(p.runq) == 0 {
			if !h.idle(cpu, p) {
				break
			}
			now = 0
			continue
		}
		v := p.pop()
		if v.VM.State != Running || !v.On || v.blocked || v.running || v.home != p.id {
			continue // a stale entry: it stopped, or moved, since it was queued
		}
		if now == 0 {
			now = cpu.Counter()
		}
		now = h.runVCPU(cpu, p, v, now)
		if v.moveTo >= 0 {
			h.rehome(v)
			now = 0
		}
	}
	cpu.SetEL2Timer(0)
	p.hwEL2Timer = 0
}

// runGuest enters the guest and returns at its first exit that needs the
// scheduler lock: hypercalls that read and write nothing shared are
// answered here (lockFree), and the guest goes on. An interrupt for the
// vCPU, a kick or the end of its slice make it exit with an IRQ, which
// takes the lock.
func (h *Hyp) runGuest(cpu CPU, p *pcpu, v *VCPU) {
	cpu.Run(&v.Ctx)
	for h.lockFree(v) {
		bump(&p.fastExits)
		cpu.Resume(&v.Ctx)
	}
}

// lockFree answers v's exit if it needs nothing the scheduler lock
// guards, and reports whether it did: a hypercall whose answer is a
// constant of the hypervisor's (SMCCC_VERSION, SMCCC_ARCH_FEATURES,
// VENDOR_HYP_CALL_UID, VENDOR_HYP_REVISION), or a read of the UART's flag
// register (lockFreeUART). The hypercalls' answers are also in
// Hyp.hypercall, which the other paths take (HandleExit, the trace):
// written out here rather than called, as a call costs this path, the
// null hypercall's, 14 instructions of 143. Its
// frame is small, so it skips the stack check (go:nosplit): 3 more.
//
//go:nosplit
func (h *Hyp) lockFree(v *VCPU) bool {
	c := &v.Ctx
	esr := cpu.ESR(c.Exit.ESR)
	if c.Exit.Vector != vcpu.VectorSync64 || h.cfg.Trace {
		return false
	}
	switch esr.EC() {
	case cpu.EC_HVC64:
	case cpu.EC_DABT_LOW:
		return h.lockFreeUART(v, esr)
	default:
		return false
	}
	if esr.ISS() != 0 {
		return false
	}
	switch uint32(c.X[0]) {
	case abi.SMCCC_VERSION:
		c.X[0] = abi.SMCCCVersion1_1
	case abi.SMCCC_ARCH_FEATURES:
		c.X[0] = abi.Word(abi.NOT_SUPPORTED)
	case abi.VENDOR_HYP_CALL_UID:
		u := abi.CallUID
		c.X[0], c.X[1], c.X[2], c.X[3] = uint64(u[0]), uint64(u[1]), uint64(u[2]), uint64(u[3])
	case abi.VENDOR_HYP_REVISION:
		c.X[0], c.X[1] = abi.VersionMajor, abi.VersionMinor
	default:
		return false
	}
	bump(&v.fastHVC)
	return true
}

// lockFreeUART answers a guest's read of UARTFR, which a driver polls
// around every byte it writes, from the flags the PL011 model publishes
// for readers without its lock (vuart.PL011.Flags): a lock taken here
// could make the scheduler lock's holder, the control partition draining
// the console, wait in Go's scheduler. The UART's region is the VM's from
// its creation to its end and overlaps no other (AddMMIO), so this finds
// what emulateMMIO would.
func (h *Hyp) lockFreeUART(v *VCPU, esr cpu.ESR) bool {
	c, u := &v.Ctx, v.VM.uart
	size, reg, ok := esr.Access()
	ipa := faultIPA(c)
	if !ok || esr.Write() || u == nil || ipa != vuart.Base+vuart.UARTFR {
		return false
	}
	complete(c, &pendingMMIO{size: size, reg: reg, value: uint64(u.Flags()),
		sse: esr.ISS()&cpu.ISS_DA_SSE != 0, sf: esr.ISS()&cpu.ISS_DA_SF != 0})
	bump(&v.fastMMIO)
	return true
}

// bump adds one to a counter that only the CPU running this code writes
// (its own, or its running vCPU's) and others read with Load: a load and
// a store, where Add is a read-modify-write loop, 8 instructions of the
// null hypercall's path for each counter.
func bump(n *atomic.Uint64) { n.Store(n.Load() + 1) }

// unlocked runs fn without the scheduler lock: the guest, or an idle wait.
func (h *Hyp) unlocked(p *pcpu, fn func()) {
	h.holder = 0
	h.sched.Unlock()
	fn()
	h.sched.Lock()
	h.holder = p.id + 1
}

// idle waits for an interrupt when nothing can run here. It returns false
// when no vCPU is alive anywhere, and, on a single CPU, stops VMs that
// wait for something nothing can send.
func (h *Hyp) idle(cpu CPU, p *pcpu) bool {
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
			if v.home != p.id {
				continue
			}
			forwarded = forwarded || v.mmio != nil
			if d, ok := h.deadline(v); ok && (!armed || d < next) {
				next, armed = d, true
			}
		}
	}
	if !alive {
		return false
	}
	if !armed && len(h.pcpus) == 1 && !forwarded {
		// Every vCPU waits for an interrupt and no timer is armed: with no
		// devices yet, nothing can ever wake them.
		for _, vm := range h.VMs() {
			if vm.State == Running {
				h.stopf(vm, -1, "every vCPU waits for an interrupt and none can arrive (no timer armed)")
			}
		}
		return true
	}
	if !armed && len(h.pcpus) > 1 {
		// Nothing of this CPU's to wait for but a kick (a VM that stops
		// kicks every CPU): wait no longer than a second anyway, so
		// that a kick lost to a bug costs a second rather than a vCPU.
		// Not a slice: an idle CPU that wakes takes the scheduler lock,
		// which the other CPUs' exits want.
		next, armed = cpu.Counter()+idleCheck*h.cfg.Slice, true
	}
	if armed {
		cpu.SetEL2Timer(next)
		p.hwEL2Timer = next
	}
	if h.cfg.Trace {
		fmt.Fprintf(h.Out, "trace: cpu %d idle until %d (now %d)\n", p.id, next, cpu.Counter())
	}
	// Another CPU that gives this one work kicks it out of the wait.
	p.idle = true
	h.unlocked(p, cpu.WaitForInterrupt)
	p.idle = false
	h.serviceIRQs(cpu, p, nil)
	return true
}

// idleCheck is how many slices a CPU with nothing to wait for waits at
// most.
const idleCheck = 100

// runVCPU runs v for one time slice, or until it yields, blocks or stops,
// from counter value now (a moment ago), and returns the value as v left.
func (h *Hyp) runVCPU(cpu CPU, p *pcpu, v *VCPU, now uint64) (left uint64) {
	vm := v.VM
	if vm.stolenSince != 0 {
		// Time the VM could have run but did not does not pass for it.
		// (Only for a VM on one CPU: a VM whose vCPUs run elsewhere
		// meanwhile must keep one clock for all of them.)
		if h.oneHome(vm) {
			vm.cntvoff += now - vm.stolenSince
		}
		vm.stolenSince = 0
	}
	vm.vmid = h.vmids.Refresh(vm.vmid)
	if t := mmu.VTTBR(&vm.s2, vm.vmid.ID); t != v.Ctx.EL2.VTTBR {
		// A new VMID (or a first run): the world switch loads the EL2
		// configuration only with the rest of the context.
		v.Ctx.EL2.VTTBR = t
		cpu.SyncSys(&v.Ctx)
	}
	cpu.EnterVCPU(v.timer.ctl, v.timer.cval, vm.cntvoff, v.gic.VMCR, v.gic.AP0R, v.gic.AP1R, v.gic.HCR)
	p.hwHCR = v.gic.HCR
	p.sliceEnd = now + h.cfg.Slice
	h.armEL2Timer(cpu, p)
	v.running, p.running = true, v
slice:
	for {
		n := vm.vgic.Flush(v.gic)
		if n > 0 || p.hwLRs > 0 {
			if p.hwLRs > n {
				for i := n; i < p.hwLRs; i++ {
					cpu.WriteLR(i, 0)
				}
			}
			v.gic.LoadLRs(p.lrs, n)
			p.hwLRs = n
		}
		if v.gic.HCR != p.hwHCR {
			cpu.WriteICHHCR(v.gic.HCR)
			p.hwHCR = v.gic.HCR
		}
		if l := v.gic.Level(h.cfg.PPIs.VTimer); l != p.vtimerMasked {
			// Masked while the vCPU's timer line is known high; unmasked
			// once the guest has dealt with it, so the hardware says
			// whether it still is.
			cpu.MaskVTimer(l)
			p.vtimerMasked = l
		}
		// The guest runs without the lock, which on one CPU nobody else
		// wants (this is the hypercall round trip's path).
		if h.smp() {
			h.holder = 0
			h.sched.Unlock()
			h.runGuest(cpu, p, v)
			h.sched.Lock()
			h.holder = p.id + 1
		} else {
			// Held, but not pinned while the guest runs: the collector
			// can stop this goroutine at the guest's exit.
			procUnpin()
			h.runGuest(cpu, p, v)
			procPin()
		}
		p.exits++
		if p.hwLRs > 0 {
			vm.vgic.Sync(v.gic, p.lrs, p.hwLRs)
		}
		var act Action
		if esr, ok := h.hypercallExit(&v.Ctx); ok {
			act = h.hvc(v, esr) // no need for HandleExit's frame
		} else {
			act = h.HandleExit(cpu, v)
		}
		preempt := false
		if v.Ctx.Exit.Vector == vcpu.VectorIRQ64 || v.Ctx.Exit.Vector == vcpu.VectorFIQ64 {
			preempt = h.serviceIRQs(cpu, p, v)
		}
		switch act {
		case Resume:
			if !preempt && vm.State == Running && v.On && v.moveTo < 0 {
				continue
			}
			vm.stolenSince = cpu.Counter()
			p.push(v)
		case Yield:
			nap := v.nap // this YIELD's only: a trapped WFE yields too
			v.nap = 0
			if !v.On || vm.State != Running {
				break slice
			}
			if len(p.runq) == 0 && nap > 0 && (vm.vgic == nil || !vm.vgic.HasPending(v.gic)) {
				// Nobody else wants this CPU and the guest said it may
				// nap: rather than spin through its polling loop, let the
				// CPU idle until it takes an interrupt or the nap ends.
				v.blocked, v.napUntil = true, cpu.Counter()+nap
				p.sleepKnown = false
				break slice
			}
			p.push(v)
		case Block:
			v.blocked = true
			p.sleepKnown = false
		}
		break slice
	}
	// v leaves the CPU.
	v.running, p.running = false, nil
	left = cpu.Counter()
	ran := left - now
	vm.RunTicks += ran
	p.runTicks += ran
	// Off the CPU the vCPU's timer is the scheduler's to watch: the
	// hardware one must not fire for it (LeaveVCPU turns it off).
	v.timer.ctl, v.timer.cval, v.gic.VMCR, v.gic.AP0R, v.gic.AP1R = cpu.LeaveVCPU()
	p.hwHCR = 0
	for i := 0; i < p.hwLRs; i++ {
		cpu.WriteLR(i, 0)
	}
	p.hwLRs = 0
	return left
}

// move pins v to CPU to. A vCPU in the guest is kicked out and moves at
// its exit, on its old CPU's loop; any other moves now.
func (h *Hyp) move(v *VCPU, to int) {
	if v.home == to {
		v.moveTo = -1
		return
	}
	v.moveTo = to
	old := h.pcpus[v.home]
	if v.running || (!h.holds(old) && old.cpu != nil) {
		// Its registers may be on its CPU, which alone can save them:
		// that CPU moves it, at its exit or its next turn.
		old.moving = true
		h.kick(old)
		return
	}
	h.rehome(v)
}

// rehomeMoving moves the vCPUs homed on p that are to move and not in the
// guest; p is the calling CPU.
func (h *Hyp) rehomeMoving(p *pcpu) {
	p.moving = false
	for _, vm := range h.VMs() {
		for _, v := range vm.VCPUs {
			if v.home == p.id && v.moveTo >= 0 && !v.running {
				h.rehome(v)
			}
		}
	}
}

// rehome moves v, which is not in the guest, to CPU v.moveTo: its EL1
// registers are released by its old CPU (each CPU keeps a context's
// registers between runs; the caller is that CPU, or the CPU never ran),
// and it goes from the old CPU's run queue to the new one's; its timer and
// virtual interrupt state are in memory already.
func (h *Hyp) rehome(v *VCPU) {
	old := h.pcpus[v.home]
	if old.cpu != nil {
		old.cpu.Release(&v.Ctx)
	}
	queued := false
	for i, q := range old.runq {
		if q == v {
			old.runq = append(old.runq[:i], old.runq[i+1:]...)
			queued = true
			break
		}
	}
	fmt.Fprintf(h.Out, "bulkhead: vm %s: vCPU %d moved from physical CPU %d to %d\n", v.VM.Name, v.Index, v.home, v.moveTo)
	v.home, v.moveTo = v.moveTo, -1
	p := h.pcpus[v.home]
	if queued {
		p.push(v)
	}
	if v.blocked {
		p.sleepKnown = false
	}
	// Its new CPU may wait with a deadline that does not count v's: a kick
	// makes it look again, or, if it is this CPU, its timer is set now.
	if h.holds(p) && p.running != nil {
		h.armEL2Timer(p.cpu, p)
	}
	h.kick(p)
}

// oneHome reports whether all of vm's vCPUs live on one CPU.
func (h *Hyp) oneHome(vm *VM) bool {
	for _, v := range vm.VCPUs {
		if v.home != vm.VCPUs[0].home {
			return false
		}
	}
	return true
}

// armEL2Timer programs CNTHP for the end of the slice or the earliest
// deadline of a blocked vCPU, whichever comes first.
func (h *Hyp) armEL2Timer(cpu CPU, p *pcpu) {
	next := p.sliceEnd
	if !p.sleepKnown || p.sleepNext < next {
		// Walked only when a sleeper may be due within the slice: not at
		// every vCPU switch, where it cost some 50 instructions with two
		// VMs, and more with each VM the machine holds.
		p.sleepNext, p.sleepKnown = ^uint64(0), true
		for _, vm := range h.vms {
			for _, v := range vm.VCPUs {
				if !v.blocked || vm.State != Running || v.home != p.id {
					continue
				}
				if d, ok := h.deadline(v); ok && d < p.sleepNext {
					p.sleepNext = d
				}
			}
		}
	}
	next = min(next, p.sleepNext)
	// A timer already armed a little earlier (by up to an eighth of a
	// slice) is left as it is: if it fires, nothing is due yet, and
	// serviceIRQs arms it again. Rearming it at every vCPU switch, each
	// of which starts a slice, cost the switch some 40 instructions.
	if hw := p.hwEL2Timer; hw == 0 || hw > next || next-hw > h.cfg.Slice/8 {
		cpu.SetEL2Timer(next)
		p.hwEL2Timer = next
	}
}

// deadline is when a blocked vCPU must run again: its virtual timer's
// deadline or the end of its nap, whichever comes first.
func (h *Hyp) deadline(v *VCPU) (uint64, bool) {
	d, ok := h.timerDeadline(v)
	if v.napUntil != 0 && (!ok || v.napUntil < d) {
		return v.napUntil, true
	}
	return d, ok
}

// timerDeadline is when v's virtual timer line rises, if it is armed and
// not high already (a line that is high has nothing more to say until
// the guest deals with it).
func (h *Hyp) timerDeadline(v *VCPU) (uint64, bool) {
	if v.gic != nil && v.gic.Level(h.cfg.PPIs.VTimer) {
		return 0, false
	}
	return v.timer.deadline(v.VM.cntvoff)
}

// sampleVTimer reads the running vCPU v's virtual timer line from the
// hardware into its vGIC: before the guest looks at its interrupts'
// pending state, which for a level-sensitive line is the line's.
func (h *Hyp) sampleVTimer(cpu CPU, v *VCPU) {
	ctl, cval := cpu.SaveVTimer()
	high := ctl&CNT_CTL_ENABLE != 0 && ctl&CNT_CTL_IMASK == 0 && cpu.Counter()-v.VM.cntvoff >= cval
	v.VM.vgic.SetLevel(v.Index, h.cfg.PPIs.VTimer, high)
}

// serviceIRQs handles the physical interrupts pending at EL2: the EL2
// timer (slice end, sleepers' deadlines), the running vCPU's virtual timer,
// and the vGIC maintenance interrupt. It reports whether the running vCPU
// should give way. Any interrupt ends the naps of this CPU's vCPUs.
func (h *Hyp) serviceIRQs(cpu CPU, p *pcpu, running *VCPU) (preempt bool) {
	took := false
	for {
		intid := cpu.Ack()
		if h.cfg.Trace {
			fmt.Fprintf(h.Out, "trace: interrupt %d\n", intid)
		}
		if intid >= vgic.Spurious {
			break
		}
		took = true
		switch intid {
		case h.cfg.PPIs.HypTimer:
			p.hwEL2Timer = 0
			cpu.SetEL2Timer(0)
		case h.cfg.PPIs.Kick:
			// Another CPU gave this one work, or an interrupt for the
			// running vCPU: the exit alone refreshes its list registers.
			preempt = preempt || running != nil && len(p.runq) > 0
		case h.cfg.PPIs.VTimer:
			if running == nil {
				// Stale: no vCPU's timer is loaded. Make sure it is off.
				cpu.LoadVTimer(0, 0, 0)
			} else {
				// The running vCPU's timer line is high: its vGIC has
				// the level-sensitive interrupt pending, and the physical
				// one stays disabled until the guest has dealt with it.
				running.VM.vgic.SetLevel(running.Index, h.cfg.PPIs.VTimer, true)
				cpu.MaskVTimer(true)
				p.vtimerMasked = true
			}
		case h.cfg.PPIs.Maintenance:
			// The list registers drained, or the guest deactivated an
			// interrupt whose line is looked at again (LR_EOI); the next
			// entry refills them. The maintenance interrupt is a level
			// that the list registers hold until then: ICH_HCR_EL2.En
			// off lowers it, and the entry turns it on again.
			cpu.WriteICHHCR(0)
			p.hwHCR = 0
		default:
			if vm := h.irqOwner(intid); vm != nil {
				// A device's interrupt, the guest's to handle: drop the
				// running priority only; the guest's deactivation of the
				// linked virtual interrupt deactivates this one.
				if c := vm.vgic.InjectPhysical(intid); c != nil {
					h.notify(vm.VCPUs[c.Index])
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
			if !v.blocked || !v.On || v.home != p.id {
				continue
			}
			if v.napUntil != 0 && (took || v.napUntil <= now) {
				// Runnable again, but it yielded: it does not preempt.
				h.wake(v)
				continue
			}
			if d, ok := h.timerDeadline(v); ok && d <= now {
				vm.vgic.SetLevel(v.Index, h.cfg.PPIs.VTimer, true)
				h.wake(v)
				preempt = true
			}
		}
	}
	if running != nil && now >= p.sliceEnd {
		if len(p.runq) > 0 {
			preempt = true
		} else {
			p.sliceEnd = now + h.cfg.Slice // nobody waits: another slice
		}
	}
	if !preempt && running != nil {
		h.armEL2Timer(cpu, p)
	}
	return preempt
}

// wake makes a blocked vCPU runnable, ahead of the others on its CPU.
func (h *Hyp) wake(v *VCPU) {
	if !v.blocked || v.mmio != nil {
		return
	}
	v.blocked, v.napUntil = false, 0
	p := h.pcpus[v.home]
	p.runq = append(p.runq, nil)
	copy(p.runq[1:], p.runq)
	p.runq[0] = v
	h.kick(p)
}

// holds reports whether CPU p holds the scheduler lock.
func (h *Hyp) holds(p *pcpu) bool { return h.holder == p.id+1 }

// enqueue makes a vCPU that was off runnable on its CPU.
func (h *Hyp) enqueue(v *VCPU) {
	p := h.pcpus[v.home]
	p.push(v)
	h.kick(p)
}

// notify tells v an interrupt is pending for it: a blocked vCPU wakes; one
// in the guest on another CPU is made to exit, which loads it.
func (h *Hyp) notify(v *VCPU) {
	if v.running {
		h.kick(h.pcpus[v.home])
		return
	}
	h.wake(v)
}

// kick interrupts CPU p, unless it is the caller (who will look at its
// run queue anyway) or has nothing to be interrupted from.
func (h *Hyp) kick(p *pcpu) {
	if h.holds(p) || h.cfg.Kick == nil || !p.idle && p.running == nil {
		return
	}
	h.cfg.Kick(p.id)
}

// spinLock is the scheduler lock. It spins rather than parks: on the
// hypervisor's CPUs a goroutine pinned to its CPU (for the per-CPU
// hardware it drives) must never wait in Go's scheduler.
//
// Its holder is not preempted (procPin): otherwise the collector could
// park it, lock held, until some other M hands its P back, while every
// other CPU's loop spins for the lock (each CPU's loop is a goroutine
// locked to an M there; docs/architecture.md, "CPUs"). A spinner that
// does not hold it stays preemptible in spinWait. So the holder must not
// block in Go's scheduler either (channels, contended mutexes): what it
// takes under the lock, h.mu, it alone takes.
type spinLock struct {
	held atomic.Uint32
	// wanted is the claim of a waiter that has lost the lock at least once
	// (0: none), and tokens numbers the claims. A free lock goes to the
	// claimant first: a test-and-set lock alone goes to whichever CPU
	// tries first, which under QEMU's one-thread emulation is the CPU
	// that just released it (a spinner's WFE hands the emulator on at
	// once, so it sees the lock only while it is held), and a CPU whose
	// guest exits in a loop (a PSCI AFFINITY_INFO poll) then keeps it
	// from the others for good. The others defer for a bounded time only:
	// a claimant the collector has parked must not stop them.
	wanted, tokens atomic.Uint32
}

// deferLimit bounds how many spin waits a taker lets a claimant have the
// free lock first, counted while it is free and anew for each claim. Each
// is a WFE, which the event stream ends within about 130 us, or, under
// QEMU, one turn of every other CPU. A claim still standing after that is
// taken as stale and dropped.
const deferLimit = 16

func (l *spinLock) Lock() {
	procPin()
	if l.wanted.Load() == 0 && l.held.CompareAndSwap(0, 1) {
		return
	}
	procUnpin()
	l.lockSlow()
}

// lockSlow is Lock's wait, out of line so that the uncontended path
// keeps a small frame: it is on every locked exit's.
func (l *spinLock) lockSlow() {
	var me uint32 // this call's claim, once it has lost the lock
	var seen uint32
	deferred := 0 // spin waits the free lock was left to claim seen
	for {
		if w := l.wanted.Load(); w != 0 && w != me {
			switch {
			case l.held.Load() != 0:
				// Held: only a free lock's wait counts against the claim.
				spinWait()
				continue
			case w != seen:
				seen, deferred = w, 0
				fallthrough
			case deferred < deferLimit:
				deferred++
				spinWait()
				continue
			}
			l.wanted.CompareAndSwap(w, 0)
		}
		procPin()
		if l.held.CompareAndSwap(0, 1) {
			if me != 0 {
				l.wanted.CompareAndSwap(me, 0)
			}
			return
		}
		procUnpin()
		if me == 0 {
			if me = l.tokens.Add(1); me == 0 {
				me = l.tokens.Add(1)
			}
		}
		l.wanted.CompareAndSwap(0, me)
		for l.held.Load() != 0 {
			spinWait()
		}
	}
}

func (l *spinLock) Unlock() {
	l.held.Store(0)
	spinWake()
	procUnpin()
}
