//go:build tamago

package main

import (
	"fmt"
	"runtime"
	"runtime/goos"
	"time"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/board/qemuvirt"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/gic"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

// exceptionStack is each secondary CPU's SP_EL2 stack.
const exceptionStack = 16 << 10

// A secondary CPU's boot record and stack, kept for its lifetime.
type secondary struct {
	boot  cpu.SecondaryBoot
	index int // its place in the device tree's /cpus
	stack [exceptionStack]byte
	// The remote loop's stack (vcpu.Remote): it only calls the world
	// switch.
	loopStack [1024]byte
}

var secondaries []*secondary

// loopTop is where the remote loop's stack starts: 16-byte aligned, 64
// bytes below the top for its calls' arguments.
func (s *secondary) loopTop() uint64 {
	return (uint64(uintptrOf(&s.loopStack[len(s.loopStack)-1]))+1)&^15 - 64
}

// startCPUs brings up every CPU the device tree lists besides this one,
// with PSCI CPU_ON through the firmware's conduit: each joins EL2 with the
// boot CPU's translation regime, its own exception stack and TPIDR_EL2,
// and its GIC redistributor awake, then parks. It returns how many are up.
func startCPUs(m *qemuvirt.Machine) int {
	self := cpu.ReadMPIDR() & 0xff00ffffff
	up := 1
	// The distributor forwards the SGI that wakes a parked CPU: it needs
	// affinity routing and group 1 on, whether or not guests run later.
	if len(m.CPUs) > 1 {
		p, err := physicalGIC(m, gic.Affinity(self))
		if err == nil {
			err = p.InitDistributor(gic.Affinity(self))
		}
		if err != nil {
			fmt.Printf("bulkhead: GIC distributor: %v; other CPUs left off\n", err)
			return 1
		}
	}
	for i, mpidr := range m.CPUs {
		if mpidr == self {
			continue
		}
		if m.PSCI != "smc" {
			fmt.Printf("bulkhead: CPU %d (MPIDR %#x): PSCI over %s is not reachable from EL2; left off\n", i, mpidr, m.PSCI)
			continue
		}
		s := &secondary{index: i}
		secondaries = append(secondaries, s)
		top := (uint64(uintptrOf(&s.stack[exceptionStack-16])) + 16) &^ 15
		cpu.PrepareSecondary(&s.boot, top, uint64(i))
		r0, _, _, _ := cpu.SMC(abi.PSCI_CPU_ON, mpidr, cpu.SecondaryEntry(), uint64(uintptrOf(&s.boot)))
		if r0 != 0 {
			fmt.Printf("bulkhead: CPU %d (MPIDR %#x): PSCI CPU_ON failed: %d\n", i, mpidr, int64(r0))
			continue
		}
		deadline := time.Now().Add(time.Second)
		for !s.boot.IsUp() && time.Now().Before(deadline) {
		}
		if !s.boot.IsUp() {
			fmt.Printf("bulkhead: CPU %d (MPIDR %#x): did not come up within 1 s\n", i, mpidr)
			continue
		}
		if err := wakeRedistributor(m, s.boot.MPIDR); err != nil {
			fmt.Printf("bulkhead: CPU %d (MPIDR %#x): %v\n", i, mpidr, err)
			continue
		}
		fmt.Printf("bulkhead: CPU %d (MPIDR %#x) up at EL2: exception stack at %#x, TPIDR_EL2 %d, redistributor awake; parked\n",
			i, s.boot.MPIDR&0xff00ffffff, top, i)
		up++
	}
	return up
}

// wakeRedistributor brings a secondary CPU's redistributor out of sleep,
// with its private interrupts off but the one that wakes it.
func wakeRedistributor(m *qemuvirt.Machine, mpidr uint64) error {
	p, err := physicalGIC(m, gic.Affinity(mpidr))
	if err != nil {
		return err
	}
	if err := p.InitRedistributor(); err != nil {
		return err
	}
	// The SGI that wakes it from its park (cpu.WakeSGI) must reach it.
	p.EnablePPI(cpu.WakeSGI, gic.HypervisorPriority)
	return nil
}

func uintptrOf[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }

// startMs lets the Go runtime run an M on every secondary CPU that is up
// and parked: the runtime creates Ms lazily, when a P is idle and work is
// waiting, and each new M goes to the next parked CPU through task. It
// returns GOMAXPROCS, the number of CPUs Go may now use.
//
// Ms never exit on GOOS=tamago, and no M is ever put aside for another
// on a CPU, so an M that blocks outside the scheduler holds its CPU. The
// runtime starts a further M when one is locked to a goroutine
// (runtime.LockOSThread) and that goroutine blocks or is preempted with
// work waiting; with every CPU taken that M has nowhere to run, and task
// stops the machine. Locked goroutines must not block.
func startMs() int {
	n := 1
	for _, s := range secondaries {
		if s.boot.IsUp() {
			n++
		}
	}
	if n == 1 {
		return 1
	}
	idleWake = qemuvirt.TimerFrequency() / 10000
	goos.Task = task
	goos.Idle = idle
	runtime.GOMAXPROCS(n)
	return n
}

// task is goos.Task: the runtime's newosproc asks for its new M, mp, to
// run fn (mstart) with g0 gp. The M gets the next parked CPU.
//
// The runtime also passes sp, the top of an 8 MiB block it allocated for
// the thread, but its stack checks on g0 compare against gp's own bounds
// (a 16 KiB stack from the heap, as on Linux): running on the block would
// put SP outside them and every check on that g0 would pass, or fail, by
// where the allocator happened to place the two. So the M runs on g0's
// stack, and the block is never used.
//
// It may run without a P, so it must not allocate: no fmt, no errors.
//
//go:nosplit
func task(sp, mp, gp, fn unsafe.Pointer) {
	// g.stack is the first field of the runtime's g: {lo, hi}.
	hi := *(*uint64)(unsafe.Add(gp, 8))
	for _, s := range secondaries {
		if s.boot.Give(hi, uint64(uintptr(gp)), uint64(uintptr(fn))) {
			gic.SendSGI(cpu.WakeSGI, s.boot.MPIDR)
			return
		}
	}
	print("bulkhead: the Go runtime started more Ms than there are CPUs; stopping\n")
	goos.Exit(70)
}

// idleWake is how often an idle M looks for work without being woken:
// 100 us, in counter ticks.
var idleWake uint64

// idle is goos.Idle: an M with nothing to run waits for an event. Each
// CPU turns its own event stream on the first time it idles, so an idle
// M finds work other CPUs queued within about 100 us, without IPIs.
// (QEMU's TCG treats WFE as a yield, so there it spins.)
func idle(until int64) {
	cpu.EnableEventStream(idleWake)
	cpu.WaitForEvent()
}

// parkedSecondaries lists the secondary CPUs that came up and still wait
// for work, in device tree order.
func parkedSecondaries() []*secondary {
	var out []*secondary
	for _, s := range secondaries {
		if s.boot.IsUp() && !s.boot.Running() {
			out = append(out, s)
		}
	}
	return out
}

// startRemotes gives each of the parked secondary CPUs ss the remote loop,
// in that order: from then on it enters guests for the boot CPU
// (remoteCPU). vtcr and mdcr are the boot CPU's VTCR_EL2 and MDCR_EL2,
// set after the secondaries came up.
func startRemotes(m *qemuvirt.Machine, ss []*secondary, vtcr, mdcr uint64) ([]*remoteCPU, error) {
	var out []*remoteCPU
	for _, s := range ss {
		mpidr := s.boot.MPIDR
		p, err := physicalGIC(m, gic.Affinity(mpidr))
		if err != nil {
			return nil, err
		}
		// The interrupts the scheduler takes on it (it is woken by
		// cpu.WakeSGI already).
		for _, id := range []uint32{m.TimerHyp, m.TimerVirt, m.GICMaintenance, kickSGI} {
			p.EnablePPI(id, gic.HypervisorPriority)
		}
		rc := newRemoteCPU(mpidr, p, vtcr, mdcr)
		if !s.boot.Give(s.loopTop(), uint64(uintptrOf(rc.r)), vcpu.RemoteLoop()) {
			return nil, fmt.Errorf("CPU with MPIDR %#x is not parked", mpidr)
		}
		gic.SendSGI(cpu.WakeSGI, mpidr)
		out = append(out, rc)
	}
	return out, nil
}
