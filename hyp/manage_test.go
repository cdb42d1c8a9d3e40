package hyp

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/gic"
	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
	"github.com/bulkhead-hv/bulkhead/hyp/vgic"
	"github.com/bulkhead-hv/bulkhead/hyp/vuart"
	"github.com/bulkhead-hv/bulkhead/mmu"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

func wantRet(t *testing.T, c *vcpu.Context, code int64, what string) {
	t.Helper()
	assert.Equal(t, abi.Word(code), c.X[0], what)
}

// The control partition builds, starts, waits for and destroys a VM
// through the management calls; every refused call changes nothing.
func TestManagementCalls(t *testing.T) {
	r := newRig(t)
	ctl, err := r.h.CreateControl("control")
	require.NoError(t, err)
	cv := r.h.AddVCPU(ctl, ramBase+hypPages*4096, 0)
	require.NoError(t, r.h.StartDevices(ctl))
	pa := uint64(ramBase + 0x20_0000)
	var handle uint64
	var gv *vcpu.Context
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	s.steps[&cv.Ctx] = []func(*vcpu.Context){
		hvc(abi.VM_CREATE, 0x6f6c6c6568), // "hello"
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "create")
			handle = c.X[1]
			assert.GreaterOrEqual(t, handle, uint64(ledger.FirstGuest))
			hvc(abi.VM_CREATE, 0x6f6c6c6568)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.BUSY, "a live VM has that name")
			hvc(abi.VM_DONATE, handle, ramBase, guestIPA, 4096, abi.PermRead)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.DENIED, "hypervisor pages are not the caller's")
			hvc(abi.VM_DONATE, handle, pa, guestIPA, 1<<20, 8)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "bad permission bits")
			hvc(abi.VM_DONATE, 99, pa, guestIPA, 1<<20, 7)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "unknown VM")
			hvc(abi.VM_START, handle)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.BUSY, "no vCPU yet")
			hvc(abi.VM_DONATE, handle, pa, guestIPA, 1<<20, 7)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "donate")
			hvc(abi.VCPU_CREATE, handle, 0x10, 0, 0, 0)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "entry outside the VM")
			hvc(abi.VCPU_CREATE, handle, guestIPA+0x100, 42, 0, 0)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "vCPU")
			assert.Zero(t, c.X[1])
			vm := r.h.VMs()[1]
			gv = &vm.VCPUs[0].Ctx
			assert.Equal(t, uint64(42), gv.X[0])
			s.steps[gv] = []func(*vcpu.Context){
				hvc(abi.VM_CREATE, 1), // a guest may not manage
				check(func(c *vcpu.Context) {
					wantRet(t, c, abi.DENIED, "guests may not manage")
					hvc(abi.EXIT, 7)(c)
				}),
			}
			hvc(abi.VM_START, handle)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "start")
			hvc(abi.VM_DESTROY, handle)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.BUSY, "destroying a running VM")
			assert.Zero(t, c.X[1], "no pages returned: not the handle left in x1")
			hvc(abi.VM_WAIT)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "wait")
			assert.Equal(t, handle, c.X[1], "woken by its guest's exit")
			hvc(abi.VM_STATUS, handle)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "status")
			assert.Equal(t, uint64(abi.StateStopped), c.X[1])
			assert.Equal(t, uint64(7), c.X[2])
			hvc(abi.VM_DESTROY, handle)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "destroy")
			assert.Equal(t, uint64(256), c.X[1])
			_, _, ok := r.h.Control().Translate(pa)
			assert.True(t, ok, "pages back in the control partition's map")
			hvc(abi.VM_STATUS, handle)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "gone")
			hvc(abi.EXIT, 0)(c)
		}),
	}
	r.h.RunAll(s)
	assert.Equal(t, r.boot, r.h.Ledger.Count(), "ledger back at its boot figures")
	assert.Equal(t, "exited with status 0", ctl.Reason)
}

// A guest lends pages to the control partition and takes them back; the
// control partition's map follows the ledger both ways.
func TestShareUnshare(t *testing.T) {
	r := newRig(t)
	ctl, err := r.h.CreateControl("control")
	require.NoError(t, err)
	pa := uint64(ramBase + 0x20_0000)
	vm, v := r.guest(t, "io", pa)
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	s.steps[&v.Ctx] = []func(*vcpu.Context){
		hvc(abi.SHARE, guestIPA+0x3000, 0x2000),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "share")
			assert.Equal(t, pa+0x3000, c.X[1], "the physical address")
			got, perm, ok := ctl.Translate(pa + 0x3000)
			assert.True(t, ok, "the control partition reaches the page")
			assert.Equal(t, pa+0x3000, got)
			assert.Equal(t, mmu.Read|mmu.Write, perm)
			_, _, ok = ctl.Translate(pa + 0x5000)
			assert.False(t, ok, "and only the lent pages")
			hvc(abi.SHARE, guestIPA+0x4000, 0x1000)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.DENIED, "already shared")
			hvc(abi.SHARE, guestIPA+1<<20-0x1000, 0x2000)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "runs past the guest's memory")
			hvc(abi.UNSHARE, guestIPA+0x3000, 0x2000)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "unshare")
			_, _, ok := ctl.Translate(pa + 0x3000)
			assert.False(t, ok, "out of the control partition's reach again")
			hvc(abi.UNSHARE, guestIPA+0x3000, 0x1000)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.DENIED, "not shared")
			hvc(abi.SHARE, guestIPA, 0x1000)(c) // lent when the guest dies
		}),
		hvc(abi.EXIT, 0),
	}
	r.h.RunAll(s)
	_, _, ok := ctl.Translate(pa)
	require.True(t, ok)
	_, err = r.h.DestroyVM(vm)
	require.NoError(t, err)
	assert.Equal(t, r.boot, r.h.Ledger.Count(), "the loan ended with the guest")
	got, _, ok := ctl.Translate(pa)
	assert.True(t, ok, "its pages are back, at their address")
	assert.Equal(t, pa, got)
	require.NoError(t, r.h.Ledger.Check())
}

// The control partition drains a guest's console, feeds it input, reads
// its counters and the machine's, and stops it.
func TestConsoleStatsStop(t *testing.T) {
	r := newRig(t)
	pa := uint64(ramBase + 0x20_0000)
	cv, vm, gv := r.controlAndGuest(t, "chatty", pa)
	h := uint64(vm.ID)
	buf := uint64(ramBase + 0x80_0000) // the control partition's
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	s.steps[&gv.Ctx] = []func(*vcpu.Context){
		hvc(abi.CONSOLE_WRITE, consoleArgs("hi there\n")...),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(9), c.X[0], "all taken")
			hvc(abi.YIELD)(c)
		}),
		hvc(abi.YIELD), hvc(abi.YIELD), hvc(abi.YIELD), hvc(abi.YIELD), hvc(abi.YIELD),
	}
	s.steps[&cv.Ctx] = []func(*vcpu.Context){
		hvc(abi.YIELD),
		hvc(abi.VM_CONSOLE_READ, h, buf, 4),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "read")
			assert.Equal(t, uint64(4), c.X[1], "as much as asked")
			got := make([]byte, 4)
			r.phys.Read(buf, got)
			assert.Equal(t, "hi t", string(got))
			hvc(abi.VM_CONSOLE_READ, h, buf, 4096)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(5), c.X[1], "the rest")
			hvc(abi.VM_CONSOLE_READ, h, buf+1, 4096)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "crosses a page")
			hvc(abi.VM_CONSOLE_READ, h, ramBase, 16)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "the hypervisor's page")
			hvc(abi.VM_CONSOLE_READ, h, pa, 16)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "the guest's page")
			r.phys.Write(buf, []byte("ls\n"))
			hvc(abi.VM_CONSOLE_WRITE, h, buf, 3)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "input")
			assert.Equal(t, uint64(3), c.X[1])
			assert.Equal(t, 3, vm.uart.In.Len())
			hvc(abi.VM_STATS, h, buf)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "stats")
			assert.Equal(t, uint64(abi.StatsWords), c.X[1])
			w := make([]byte, abi.StatsWords*8)
			r.phys.Read(buf, w)
			word := func(i int) uint64 { return binary.LittleEndian.Uint64(w[8*i:]) }
			assert.Equal(t, uint64(abi.StateRunning), word(abi.StatState))
			assert.Equal(t, uint64(256), word(abi.StatPages))
			assert.Equal(t, uint64(1), word(abi.StatVCPUs))
			assert.GreaterOrEqual(t, word(abi.StatExits+int(ExitHVC)), uint64(2))
			hvc(abi.VM_STATS, 0, buf)(c)
		}),
		check(func(c *vcpu.Context) {
			w := make([]byte, abi.StatsWords*8)
			r.phys.Read(buf, w)
			word := func(i int) uint64 { return binary.LittleEndian.Uint64(w[8*i:]) }
			assert.Equal(t, uint64(256), word(abi.MachineGuests))
			assert.Equal(t, uint64(hypPages), word(abi.MachineHypervisor))
			assert.Equal(t, uint64(1), word(abi.MachineVMs))
			assert.Equal(t, word(abi.MachinePages), word(abi.MachineFree)+word(abi.MachineHypervisor)+word(abi.MachineControl)+word(abi.MachineGuests))
			assert.Equal(t, uint64(1), word(abi.MachineCPUs))
			hvc(abi.CPU_STATS, 0, buf)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "CPU stats")
			assert.Equal(t, uint64(abi.NumCPUStats), c.X[1])
			w := make([]byte, abi.StatsWords*8)
			r.phys.Read(buf, w)
			word := func(i int) uint64 { return binary.LittleEndian.Uint64(w[8*i:]) }
			// Every exit so far was on CPU 0: the control partition's
			// calls, at least the ten above, and the guest's.
			assert.GreaterOrEqual(t, word(abi.CPUStatExits), uint64(10))
			assert.Equal(t, uint64(2), word(abi.CPUStatVCPUs), "the control partition's vCPU and the guest's")
			assert.Equal(t, vm.RunTicks+r.h.Control().RunTicks, word(abi.CPUStatRunTicks))
			hvc(abi.CPU_STATS, 1, buf)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "no CPU 1")
			hvc(abi.CPU_STATS, 0, pa)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "CPU stats into the hypervisor's page")
			hvc(abi.VM_STOP, h, abi.StatusStopped)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "stop")
			assert.Equal(t, Stopped, vm.State)
			assert.Equal(t, int64(abi.StatusStopped), vm.Status)
			hvc(abi.VM_STOP, h, 0)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.BUSY, "already stopped")
			hvc(abi.VM_DESTROY, h)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "destroy")
			hvc(abi.EXIT, 0)(c)
		}),
	}
	r.h.RunAll(s)
	assert.Equal(t, r.boot, r.h.Ledger.Count(), "ledger back at its boot figures")
	assert.Less(t, len(s.steps[&gv.Ctx]), 6, "the guest ran until stopped")
}

// An access to a range forwarded to the control partition waits for its
// answer: the control partition reads it with VM_MMIO_NEXT and completes
// it with VM_MMIO_REPLY; meanwhile the vCPU does not run.
func TestForwardedMMIO(t *testing.T) {
	r := newRig(t)
	cv, vm, gv := r.controlAndGuest(t, "dev", ramBase+0x20_0000)
	h := uint64(vm.ID)
	buf := uint64(ramBase + 0x80_0000)
	const dev = 0x0901_0000
	words := func() []uint64 {
		b := make([]byte, abi.MMIOWords*8)
		r.phys.Read(buf, b)
		w := make([]uint64, abi.MMIOWords)
		for i := range w {
			w[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
		return w
	}
	pc := gv.Ctx.PC
	guestRan := 0
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	s.steps[&gv.Ctx] = []func(*vcpu.Context){
		access(dev+4, false, 2, 7, false, true), // ldrsh w7, [dev+4]
		check(func(c *vcpu.Context) {
			guestRan++
			assert.Equal(t, pc+4, c.PC, "past the load once answered")
			assert.Equal(t, uint64(0xffff8001), c.X[7], "sign-extended into a W register")
			c.X[3] = 0xabcd
			access(dev+8, true, 4, 3, false, false)(c) // str w3, [dev+8]
		}),
		check(func(c *vcpu.Context) {
			guestRan++
			hvc(abi.EXIT, 0)(c)
		}),
	}
	s.steps[&cv.Ctx] = []func(*vcpu.Context){
		hvc(abi.VM_MMIO_MAP, h, dev, 0x1000),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "map")
			hvc(abi.VM_MMIO_MAP, h, guestIPA, 0x1000)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "over the VM's RAM")
			hvc(abi.VM_MMIO_REPLY, h, 0, 1)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.BUSY, "nothing to answer yet")
			hvc(abi.YIELD)(c)
		}),
		hvc(abi.VM_MMIO_NEXT, buf, 8),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "buffer too short")
			hvc(abi.VM_MMIO_NEXT, buf, 4096)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "next")
			require.Equal(t, uint64(1), c.X[1], "the guest's read waits")
			assert.Equal(t, []uint64{h, 0, dev + 4, 2, 0, 0}, words())
			assert.Zero(t, guestRan, "the guest waits")
			hvc(abi.VM_MMIO_NEXT, buf, 4096)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(0), c.X[1], "handed out once")
			hvc(abi.VM_MMIO_REPLY, h, 0, 0x8001)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "reply")
			hvc(abi.YIELD)(c)
		}),
		hvc(abi.VM_MMIO_NEXT, buf, 4096),
		check(func(c *vcpu.Context) {
			require.Equal(t, uint64(1), c.X[1], "the guest's write waits")
			assert.Equal(t, []uint64{h, 0, dev + 8, 4, 1, 0xabcd}, words())
			hvc(abi.VM_MMIO_REPLY, h, 0, 0)(c)
		}),
		hvc(abi.YIELD), hvc(abi.YIELD),
		hvc(abi.EXIT, 0),
	}
	r.h.RunAll(s)
	assert.Equal(t, 2, guestRan)
	assert.Equal(t, Stopped, vm.State)
	assert.Equal(t, 2, vm.Exits[ExitMMIO])
}

// Giving pages away and getting them back leaves the control partition's
// stage 2 as it was: no table page is lost per guest.
func TestReclaimCostsNoTablePages(t *testing.T) {
	r := newRig(t)
	_, err := r.h.CreateControl("control")
	require.NoError(t, err)
	free := r.h.pool.Free()
	for i := 0; i < 20; i++ {
		vm, err := r.h.CreateVM("churn")
		require.NoError(t, err)
		// Each time elsewhere, as guests come and go.
		pa := uint64(ramBase + 0x60_0000 + (i%4)*0x20_0000)
		require.NoError(t, r.h.Donate(vm, pa, guestIPA, 2<<20, mmu.Read|mmu.Write))
		require.NoError(t, r.h.Donate(vm, ramBase+0x40_0000+0x3000, guestIPA+2<<20, 0x5000, mmu.Read))
		vm.State = Stopped
		_, err = r.h.DestroyVM(vm)
		require.NoError(t, err)
	}
	// A 2 MiB block of the control partition's map may stay split into
	// pages around the unaligned range; nothing more.
	assert.GreaterOrEqual(t, r.h.pool.Free(), free-1, "table pages lost to donations")
	_, _, ok := r.h.Control().Translate(ramBase + 0x40_3000)
	assert.True(t, ok, "the pages are back in the control partition's map")
}

// controlAndGuest makes the control partition, with one vCPU, and a guest
// of 1 MiB at pa, started, whose management the test scripts.
func (r *rig) controlAndGuest(t *testing.T, name string, pa uint64) (cv *VCPU, vm *VM, gv *VCPU) {
	ctl, err := r.h.CreateControl("control")
	require.NoError(t, err)
	cv = r.h.AddVCPU(ctl, ramBase+hypPages*4096, 0)
	ctl.Echo = true
	require.NoError(t, r.h.StartDevices(ctl))
	vm, err = r.h.CreateVM(name)
	require.NoError(t, err)
	require.NoError(t, r.h.Donate(vm, pa, guestIPA, 1<<20, mmu.Read|mmu.Write|mmu.Exec))
	gv = r.h.AddVCPU(vm, guestIPA, 0)
	require.NoError(t, r.h.StartDevices(vm))
	return cv, vm, gv
}

// VM_IRQ_LINE drives the line of an SPI the control partition emulates:
// the guest's distributor shows it pending while the line is high and the
// guest finds it in a list register; lines that are not the caller's are
// refused and change nothing.
func TestIRQLine(t *testing.T) {
	r := newRig(t)
	cv, vm, gv := r.controlAndGuest(t, "dev", ramBase+0x20_0000)
	h := uint64(vm.ID)
	const spi = 34
	d := vm.vgic.Distributor()
	d.Write(gic.GICD_CTLR, 4, vgic.CTLR_EnableGrp1)
	d.Write(gic.GICD_IGROUPR+4, 4, 0xffffffff)
	d.Write(gic.GICD_ISENABLER+4, 4, 1<<(spi-32))
	pending := func() bool { return d.Read(gic.GICD_ISPENDR+4, 4)&(1<<(spi-32)) != 0 }
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	inLR := func() bool {
		for _, v := range s.lrs {
			if v&vgic.LR_vINTID_MASK == spi && v&vgic.LR_STATE_MASK == vgic.LR_PENDING {
				return true
			}
		}
		return false
	}

	done, seen := false, false
	var spin func(c *vcpu.Context)
	spin = func(c *vcpu.Context) {
		seen = seen || inLR()
		if done {
			hvc(abi.EXIT, 0)(c)
			return
		}
		hvc(abi.YIELD)(c)
		s.steps[c] = append(s.steps[c], spin)
	}
	s.steps[&gv.Ctx] = []func(*vcpu.Context){spin}
	s.steps[&cv.Ctx] = []func(*vcpu.Context){
		hvc(abi.VM_IRQ_LINE, h, vuart.IntID, 1),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.DENIED, "the hypervisor's UART")
			hvc(abi.VM_IRQ_LINE, h, 31, 1)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "a PPI")
			hvc(abi.VM_IRQ_LINE, h, vgic.FirstSPI+NumSPIs, 1)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "past the VM's SPIs")
			hvc(abi.VM_IRQ_LINE, h, spi, 2)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "a level that is not 0 or 1")
			hvc(abi.VM_IRQ_LINE, 99, spi, 1)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "no such VM")
			assert.False(t, pending(), "nothing changed")
			hvc(abi.VM_IRQ_LINE, h, spi, 1)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "raise")
			assert.True(t, pending())
			hvc(abi.YIELD)(c)
		}),
		hvc(abi.YIELD),
		check(func(c *vcpu.Context) {
			assert.True(t, seen, "the guest had it in a list register")
			hvc(abi.VM_IRQ_LINE, h, spi, 0)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "lower")
			assert.False(t, pending(), "withdrawn")
			done = true
			hvc(abi.YIELD)(c)
		}),
		hvc(abi.YIELD), hvc(abi.YIELD),
		hvc(abi.VM_IRQ_LINE, h, spi, 1),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.BUSY, "the VM has stopped")
			hvc(abi.EXIT, 0)(c)
		}),
	}
	r.h.RunAll(s)
	assert.Equal(t, Stopped, vm.State)
}

// CheckInvariants finds the states the proofs rule out: a guest page
// missing from its stage 2, and a guest page the control partition maps
// without the guest lending it.
func TestCheckInvariants(t *testing.T) {
	r := newRig(t)
	_, vm, _ := r.controlAndGuest(t, "g", ramBase+0x20_0000)
	require.NoError(t, r.h.CheckInvariants())
	pa := uint64(ramBase + 0x20_0000 + 0x3000)

	require.NoError(t, r.h.Control().s2.Map(pa, pa, mmu.PageSize, mmu.S2Normal(mmu.Read)))
	assert.ErrorContains(t, r.h.CheckInvariants(), "lent to the control partition false, mapped in its stage 2 true")
	require.NoError(t, r.h.Control().s2.Unmap(pa, mmu.PageSize))
	require.NoError(t, r.h.CheckInvariants())

	require.NoError(t, vm.s2.Unmap(guestIPA+0x3000, mmu.PageSize))
	assert.ErrorContains(t, r.h.CheckInvariants(), "is not mapped to its page")
	assert.Equal(t, uint64(4), r.h.checks)
	assert.Equal(t, uint64(2), r.h.violations)
}
