package hyp

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/gic"
	"github.com/bulkhead-hv/bulkhead/hyp/vgic"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

// gicBoot is what a guest's GIC driver does, as MMIO through the vGIC.
func gicBoot(vm *VM, intids ...uint32) {
	d, r := vm.vgic.Distributor(), vm.vgic.Redistributors()
	for i := range vm.VCPUs {
		base := uint64(i) * vgic.RedistStride
		r.Write(base+gic.GICR_WAKER, 4, 0)
		r.Write(base+gic.GICR_IGROUPR0, 4, 0xffffffff)
		for _, id := range intids {
			r.Write(base+gic.GICR_ISENABLER0, 4, 1<<id)
		}
	}
	d.Write(gic.GICD_CTLR, 4, vgic.CTLR_EnableGrp1)
}

func wfi(c *vcpu.Context) {
	c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_WFx<<cpu.ESR_EC_SHIFT | cpu.ESR_IL}
}

// A vCPU in WFI sleeps until its virtual timer fires, then finds the
// timer's interrupt in a list register. The timer's interrupt is a
// level-sensitive line (Arm ARM D11.2.4): CNTV_CTL_EL0 stays the guest's,
// the physical interrupt is masked while the line is known high, and
// once the guest has deactivated the interrupt the hardware is asked
// again; the guest arms the timer again by writing CVAL alone.
func TestWFIWaitsForTheVirtualTimer(t *testing.T) {
	r := newRig(t)
	vm, v := r.guest(t, "sleeper", ramBase+0x20_0000)
	gicBoot(vm, 27)
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	s.steps[&v.Ctx] = []func(*vcpu.Context){
		func(c *vcpu.Context) {
			// Arm the timer 5000 ticks ahead in virtual time, then WFI.
			s.vctl, s.vcval = CNT_CTL_ENABLE, s.now-s.cntvoff+5000
			wfi(c)
		},
		check(func(c *vcpu.Context) {
			assert.Equal(t, 1, s.idles, "the CPU idled until the deadline")
			assert.Equal(t, uint64(27), s.lrs[0]&vgic.LR_vINTID_MASK)
			assert.Equal(t, uint64(vgic.LR_PENDING), s.lrs[0]&vgic.LR_STATE_MASK)
			assert.NotZero(t, s.lrs[0]&vgic.LR_EOI, "its deactivation is reported: the line is looked at again then")
			assert.Equal(t, uint64(CNT_CTL_ENABLE), s.vctl, "CNTV_CTL_EL0 is the guest's: nobody sets IMASK")
			assert.True(t, s.vmasked, "the physical interrupt is masked while the line is high")
			assert.GreaterOrEqual(t, s.now-s.cntvoff, s.vcval, "woken no earlier than the deadline")
			// The guest takes it and deactivates it, and arms the timer
			// again by CVAL alone, then waits.
			s.lrs[0] = 0
			s.vcval = s.now - s.cntvoff + 5000
			// (On hardware the deactivation's maintenance interrupt
			// brings the exit; here a hypercall that takes the
			// scheduler lock does: SMCCC_VERSION is answered without.)
			hvc(abi.PSCI_VERSION)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.False(t, s.vmasked, "deactivated: the physical interrupt is unmasked for the hardware to say")
			wfi(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, 2, s.idles, "the CPU idled until the second deadline")
			assert.Equal(t, uint64(27), s.lrs[0]&vgic.LR_vINTID_MASK, "armed by CVAL alone, it fired again")
			assert.GreaterOrEqual(t, s.now-s.cntvoff, s.vcval)
			hvc(abi.EXIT, 0)(c)
		}),
	}
	r.h.RunAll(s)
	assert.Equal(t, "exited with status 0", vm.Reason)
}

// Two spinning vCPUs share the CPU in time slices; a VM kept from running
// does not see its virtual time pass.
func TestTimeSlicesAndStolenTime(t *testing.T) {
	r := newRig(t)
	vmA, a := r.guest(t, "a", ramBase+0x20_0000)
	vmB, b := r.guest(t, "b", ramBase+0x40_0000)
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	var order []string
	spin := func(name string, n int) []func(*vcpu.Context) {
		var steps []func(*vcpu.Context)
		for i := 0; i < n; i++ {
			steps = append(steps, func(c *vcpu.Context) {
				if len(order) == 0 || order[len(order)-1] != name {
					order = append(order, name)
				}
				hvc(abi.SMCCC_VERSION)(c)
			})
		}
		return append(steps, hvc(abi.EXIT, 0))
	}
	s.steps[&a.Ctx] = spin("a", 400)
	s.steps[&b.Ctx] = spin("b", 400)
	r.h.RunAll(s)
	assert.Equal(t, Stopped, vmA.State)
	assert.Equal(t, Stopped, vmB.State)
	// 400 steps of 100 ticks with 10000-tick slices: several turns each.
	assert.GreaterOrEqual(t, len(order), 6, "the vCPUs alternated: %v", order)
	assert.Equal(t, "a", order[0])
	assert.Equal(t, "b", order[1])
	assert.Greater(t, vmA.Exits[ExitIRQ], 1)
	// Each VM was kept waiting while the other ran: its CNTVOFF grew.
	assert.Greater(t, vmB.cntvoff, uint64(5000))
	assert.Greater(t, vmA.cntvoff, uint64(5000))
}

// An SGI wakes the blocked vCPU it targets, which runs next.
func TestSGIWakesTheTarget(t *testing.T) {
	r := newRig(t)
	vm, err := r.h.CreateVM("pair")
	require.NoError(t, err)
	require.NoError(t, r.h.Donate(vm, ramBase+0x20_0000, guestIPA, 1<<20, 7))
	v0 := r.h.AddVCPU(vm, guestIPA, 0)
	v1 := r.h.AddVCPU(vm, guestIPA, 0)
	require.NoError(t, r.h.StartDevices(vm))
	gicBoot(vm, 1)
	assert.Equal(t, uint64(1<<31|1), v1.Ctx.EL2.VMPIDR)
	sgi := func(c *vcpu.Context) {
		// msr icc_sgi1r_el1, x3: SGI 1 to Aff0 1.
		c.X[3] = 1<<24 | 1<<1
		c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_SYS64<<cpu.ESR_EC_SHIFT | cpu.ESR_IL |
			3<<20 | 5<<17 | 0<<14 | 12<<10 | 3<<5 | 11<<1}
	}
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	s.steps[&v1.Ctx] = []func(*vcpu.Context){wfi, check(func(c *vcpu.Context) {
		assert.Equal(t, uint64(1), s.lrs[0]&vgic.LR_vINTID_MASK, "SGI 1 delivered")
		smc(abi.PSCI_CPU_OFF)(c)
	})}
	s.steps[&v0.Ctx] = []func(*vcpu.Context){
		func(c *vcpu.Context) { hvc(abi.YIELD)(c) }, // let v1 reach its WFI
		sgi,
		hvc(abi.YIELD),
		smc(abi.PSCI_CPU_OFF),
	}
	r.h.RunAll(s)
	assert.Equal(t, "last vCPU called PSCI CPU_OFF", vm.Reason)
	assert.Equal(t, 1, vm.Exits[ExitSysReg])
}

// A guest whose vCPUs all wait with nothing armed is stopped, not waited on
// forever.
func TestNothingCanWake(t *testing.T) {
	r := newRig(t)
	vm, v := r.guest(t, "stuck", ramBase+0x20_0000)
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){&v.Ctx: {wfi}}}
	r.h.RunAll(s)
	assert.Contains(t, vm.Reason, "none can arrive")
}

// Reads of the physical counter return the VM's virtual count.
func TestCNTPCTIsVirtual(t *testing.T) {
	r := newRig(t)
	vm, v := r.guest(t, "clock", ramBase+0x20_0000)
	vm.cntvoff = 1000
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	s.steps[&v.Ctx] = []func(*vcpu.Context){
		func(c *vcpu.Context) {
			// mrs x4, cntpct_el0
			c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_SYS64<<cpu.ESR_EC_SHIFT | cpu.ESR_IL |
				3<<20 | 1<<17 | 3<<14 | 14<<10 | 4<<5 | 0<<1 | 1}
		},
		check(func(c *vcpu.Context) {
			assert.Equal(t, s.now-100-1000, c.X[4], "read during the previous exit, 100 ticks ago")
			hvc(abi.EXIT, 0)(c)
		}),
	}
	s.now = 5000
	r.h.RunAll(s)
	assert.Equal(t, Stopped, vm.State)
}

// PSCI brings a second vCPU up and down, as Linux does with its CPUs.
func TestPSCICPUOnOff(t *testing.T) {
	r := newRig(t)
	vm, err := r.h.CreateVM("smp")
	require.NoError(t, err)
	require.NoError(t, r.h.Donate(vm, ramBase+0x20_0000, guestIPA, 1<<20, 7))
	v0 := r.h.AddVCPU(vm, guestIPA, 0)
	v1 := r.h.AddVCPU(vm, guestIPA, 0)
	v1.On = false // secondaries wait for CPU_ON
	require.NoError(t, r.h.StartDevices(vm))
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	s.steps[&v0.Ctx] = []func(*vcpu.Context){
		smc(abi.PSCI_AFFINITY_INFO, 1, 0),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(1), c.X[0], "vCPU 1 is off")
			smc(abi.PSCI_CPU_ON, 1, 0x1234, 0)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, abi.Word(abi.PSCI_INVALID_ADDRESS), c.X[0], "entry outside the VM")
			smc(abi.PSCI_CPU_ON, 7, guestIPA+0x800, 0)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, abi.Word(abi.PSCI_INVALID_PARAMETERS), c.X[0], "no vCPU 7")
			smc(abi.PSCI_CPU_ON, 1, guestIPA+0x800, 0xfeed)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Zero(t, c.X[0])
			smc(abi.PSCI_CPU_ON, 1, guestIPA+0x800, 0)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, abi.Word(abi.PSCI_ALREADY_ON), c.X[0])
			hvc(abi.YIELD)(c)
		}),
		check(func(c *vcpu.Context) {
			// vCPU 1 ran and went off again.
			smc(abi.PSCI_AFFINITY_INFO, 1, 0)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(1), c.X[0], "off again")
			smc(abi.PSCI_SYSTEM_OFF)(c)
		}),
	}
	s.steps[&v1.Ctx] = []func(*vcpu.Context){
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(guestIPA+0x800), c.PC, "starts at the entry point")
			assert.Equal(t, uint64(0xfeed), c.X[0], "with the context ID")
			assert.Equal(t, uint64(0x3c5), c.PSTATE)
			smc(abi.PSCI_CPU_OFF)(c)
		}),
	}
	r.h.RunAll(s)
	assert.Equal(t, "PSCI SYSTEM_OFF", vm.Reason)
}

// New vCPUs go to the least loaded CPU: a VM's vCPUs spread, the control
// partition's CPU fills last, and a stopped VM's vCPUs free their CPUs.
func TestPlacement(t *testing.T) {
	r := newRig(t)
	r.h.cfg.CPUs = 4
	r.h.pcpus = nil
	for i := 0; i < 4; i++ {
		r.h.pcpus = append(r.h.pcpus, &pcpu{id: i})
	}
	ctl, err := r.h.CreateControl("control")
	require.NoError(t, err)
	r.h.AddVCPU(ctl, ramBase+hypPages*4096, 0)
	assert.Equal(t, []int{0}, ctl.Homes())

	a, _ := r.guest(t, "a", ramBase+0x20_0000)
	r.h.AddVCPU(a, guestIPA, 0)
	assert.Equal(t, []int{1, 2}, a.Homes(), "off the control partition's CPU")
	b, _ := r.guest(t, "b", ramBase+0x40_0000)
	for i := 0; i < 3; i++ {
		r.h.AddVCPU(b, guestIPA, 0)
	}
	assert.Equal(t, []int{3, 0, 1, 2}, b.Homes(), "disjoint from a while CPUs are free, then round the CPUs")

	a.State = Stopped
	c, _ := r.guest(t, "c", ramBase+0x60_0000)
	r.h.AddVCPU(c, guestIPA, 0)
	assert.Equal(t, []int{1, 2}, c.Homes(), "a's CPUs 1 and 2 count as free once it stopped")
}

// A vCPU that yields with a nap and nothing else to run idles the CPU
// until the nap ends, a slice at most; without a nap it runs again at
// once.
func TestYieldNaps(t *testing.T) {
	r := newRig(t)
	vm, v := r.guest(t, "napper", ramBase+0x20_0000)
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	var yielded uint64
	s.steps[&v.Ctx] = []func(*vcpu.Context){
		func(c *vcpu.Context) {
			yielded = s.now
			hvc(abi.YIELD, 1000)(c) // 1 ms: a tenth of the rig's slice
		},
		check(func(c *vcpu.Context) {
			assert.Equal(t, 1, s.idles, "the CPU idled")
			assert.Equal(t, yielded+r.h.cfg.Slice/10, s.now-100, "until the nap's end")
			yielded = s.now
			hvc(abi.YIELD, 0)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, 1, s.idles, "no nap: it ran again at once")
			yielded = s.now
			hvc(abi.YIELD, 50000)(c) // more than a slice: one slice
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, 2, s.idles)
			assert.Equal(t, yielded+r.h.cfg.Slice, s.now-100, "a nap lasts a slice at most")
			hvc(abi.EXIT, 0)(c)
		}),
	}
	r.h.RunAll(s)
	assert.Equal(t, "exited with status 0", vm.Reason)
}
