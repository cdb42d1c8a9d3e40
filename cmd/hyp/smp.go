//go:build tamago

package main

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/board/qemuvirt"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/cpumux"
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
}

var secondaries []*secondary

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

// startMux lets Go run on every CPU that came up (package cpumux): each
// parked secondary starts its idle thread, and the runtime's waits, new Ms
// and idle Ms go to the multiplexer. New Ms start on the boot CPU; a
// goroutine that locks its M moves it to another CPU with cpumux.MoveTo.
// It returns the CPUs Go runs on, the boot CPU first; GOMAXPROCS is one
// more, so that a P is left for the boot CPU's other goroutines while
// every CPU's scheduler loop holds one. The boot CPU's redistributor must
// be up (initInterrupts).
func startMux(m *qemuvirt.Machine) ([]uint64, error) {
	self := cpu.ReadMPIDR() & 0xff00ffffff
	mpidrs := []uint64{self}
	var gics []*gic.Physical
	p, err := physicalGIC(m, gic.Affinity(self))
	if err != nil {
		return nil, err
	}
	gics = append(gics, p)
	parked := parkedSecondaries()
	for _, s := range parked {
		p, err := physicalGIC(m, gic.Affinity(s.boot.MPIDR))
		if err != nil {
			return nil, err
		}
		mpidrs = append(mpidrs, s.boot.MPIDR)
		gics = append(gics, p)
	}
	for i, p := range gics {
		// What ends an idle CPU's WFI: a kick from another CPU, and the
		// EL1 physical timer, which the multiplexer arms for deadlines.
		p.EnablePPI(cpu.WakeSGI, gic.HypervisorPriority)
		p.EnablePPI(m.TimerPhys, gic.HypervisorPriority)
		cpumux.AddCPU(i, mpidrs[i], p.RD)
		cpuGIC[i] = p
	}
	cpumux.Start(qemuvirt.TimerFrequency())
	for i, s := range parked {
		sp, pc := cpumux.IdleStart(i + 1)
		if !s.boot.Give(sp, 0, pc) {
			return nil, fmt.Errorf("CPU with MPIDR %#x is not parked", s.boot.MPIDR)
		}
		gic.SendSGI(cpu.WakeSGI, s.boot.MPIDR)
	}
	runtime.GOMAXPROCS(len(mpidrs) + 1)
	return mpidrs, nil
}

// cpuGIC is each CPU's redistributor, by the index startMux gave it.
var cpuGIC [vcpu.MaxCPUs]*gic.Physical

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
