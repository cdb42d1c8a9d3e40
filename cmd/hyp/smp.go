//go:build tamago

package main

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/board/qemuvirt"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/gic"
)

// exceptionStack is each secondary CPU's SP_EL2 stack.
const exceptionStack = 16 << 10

// A secondary CPU's boot record and stack, kept for its lifetime.
type secondary struct {
	boot  cpu.SecondaryBoot
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
	for i, mpidr := range m.CPUs {
		if mpidr == self {
			continue
		}
		if m.PSCI != "smc" {
			fmt.Printf("bulkhead: CPU %d (MPIDR %#x): PSCI over %s is not reachable from EL2; left off\n", i, mpidr, m.PSCI)
			continue
		}
		s := &secondary{}
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
// with its private interrupts off, as the boot CPU's own.
func wakeRedistributor(m *qemuvirt.Machine, mpidr uint64) error {
	var gicr []gic.Region
	for _, r := range m.GICR {
		gicr = append(gicr, gic.Region{Addr: r.Addr, Size: r.Size})
	}
	info, err := gic.Discover(qemuvirt.MMIO{}, m.GICD.Addr, gicr)
	if err != nil {
		return err
	}
	p, err := gic.NewPhysical(qemuvirt.MMIO{}, m.GICD.Addr, gicr, info, gic.Affinity(mpidr))
	if err != nil {
		return err
	}
	return p.InitRedistributor()
}

func uintptrOf[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }
