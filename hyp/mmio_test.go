package hyp

import (
	"testing"

	"github.com/bulkhead-hv/bulkhead/mmu"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/hyp/vuart"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

type regDev struct {
	reads, writes []uint64
	val           uint64
}

func (d *regDev) Read(off uint64, size int) uint64 {
	d.reads = append(d.reads, off)
	return d.val
}

func (d *regDev) Write(off uint64, size int, value uint64) {
	d.writes = append(d.writes, off, uint64(size), value)
}

// access builds the exit of a load or store with a valid syndrome.
func access(ipa uint64, write bool, size, reg int, sf, sse bool) func(c *vcpu.Context) {
	return func(c *vcpu.Context) {
		iss := uint64(cpu.ISS_DA_ISV) | uint64(map[int]int{1: 0, 2: 1, 4: 2, 8: 3}[size])<<cpu.ISS_DA_SAS |
			uint64(reg)<<cpu.ISS_DA_SRT | 0b000111
		if write {
			iss |= cpu.ISS_DA_WnR
		}
		if sf {
			iss |= cpu.ISS_DA_SF
		}
		if sse {
			iss |= cpu.ISS_DA_SSE
		}
		c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_DABT_LOW<<cpu.ESR_EC_SHIFT | cpu.ESR_IL | iss,
			FAR: ipa, HPFAR: (ipa >> 12) << 4}
	}
}

func TestMMIOEmulation(t *testing.T) {
	r := newRig(t)
	vm, v := r.guest(t, "mmio", ramBase+0x20_0000)
	dev := &regDev{val: 0xfedcba9876543280}
	require.NoError(t, r.h.AddMMIO(vm, 0x0a00_0000, 0x1000, dev))
	assert.Error(t, r.h.AddMMIO(vm, 0x0a00_0800, 0x1000, dev), "overlapping devices")
	assert.Error(t, r.h.AddMMIO(vm, guestIPA, 0x1000, dev), "device over RAM")

	pc := v.Ctx.PC
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	s.steps[&v.Ctx] = []func(*vcpu.Context){
		func(c *vcpu.Context) { c.X[5] = 0x1122334455667788; access(0x0a00_0018, true, 4, 5, false, false)(c) },
		check(func(c *vcpu.Context) {
			assert.Equal(t, pc+4, c.PC, "the emulated store is skipped")
			access(0x0a00_0004, false, 4, 7, false, false)(c) // ldr w7
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(0x76543280), c.X[7], "32-bit load, zero-extended")
			access(0x0a00_0004, false, 1, 8, true, true)(c) // ldrsb x8
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(0xffffffffffffff80), c.X[8], "sign-extended byte into an X register")
			access(0x0a00_0010, true, 8, 31, true, false)(c) // str xzr
		}),
		check(func(c *vcpu.Context) {
			// Outside the device: contained as a fault, not emulated.
			c.Sys.VBAR_EL1 = guestIPA
			access(0x0a00_1000, false, 4, 1, false, false)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(guestIPA+0x200), c.PC)
			hvc(0xc6000002, 0)(c)
		}),
	}
	r.h.RunAll(s)
	assert.Equal(t, []uint64{0x18, 4, 0x55667788, 0x10, 8, 0}, dev.writes)
	assert.Equal(t, []uint64{4, 4}, dev.reads)
	assert.Equal(t, 4, vm.Exits[ExitMMIO])
	assert.Equal(t, 1, vm.Faults)
}

// A VM's MMIO regions are bounded: the control partition cannot grow the
// hypervisor's heap, or every exit's search, without end.
func TestMMIORegionsBounded(t *testing.T) {
	r := newRig(t)
	vm, err := r.h.CreateVM("g")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for ipa := uint64(0x0a00_0000); ; ipa += mmu.PageSize {
		if err := r.h.ForwardMMIO(vm, ipa, mmu.PageSize, true); err != nil {
			break
		}
		n++
		if n > MaxMMIORegions {
			break
		}
	}
	if n != MaxMMIORegions {
		t.Errorf("%d regions accepted, want %d", n, MaxMMIORegions)
	}
	vm2, err := r.h.CreateVM("g2")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.h.ForwardMMIO(vm2, 1<<40-mmu.PageSize, mmu.PageSize, false); err != nil {
		t.Errorf("the last page of the IPA space: %v", err)
	}
	if err := r.h.ForwardMMIO(vm2, 1<<40, mmu.PageSize, false); err == nil {
		t.Errorf("a range past the IPA space was accepted")
	}
}

// Reads of the UART's flag register are answered without the scheduler
// lock (Hyp.lockFree) from the flags the PL011 model publishes: they see
// what the rings hold, count as MMIO exits, and leave every other UART
// access, and the trace, to the locked path.
func TestUARTFlagsLockFree(t *testing.T) {
	r := newRig(t)
	vm, v := r.guest(t, "uart", ramBase+0x20_0000)
	fr := uint64(vuart.Base + vuart.UARTFR)
	pc := v.Ctx.PC
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	s.steps[&v.Ctx] = []func(*vcpu.Context){
		access(fr, false, 4, 3, false, false), // ldr w3, [UARTFR]
		check(func(c *vcpu.Context) {
			assert.Equal(t, pc+4, c.PC, "the load is skipped")
			assert.Equal(t, uint64(vuart.FR_RXFE|vuart.FR_TXFE), c.X[3], "nothing to receive, room to send")
			assert.Equal(t, 1, int(v.fastMMIO.Load()), "answered without the lock")
			vm.uart.Input([]byte("k"))
			access(fr, false, 4, 4, false, false)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(vuart.FR_TXFE), c.X[4], "a byte to receive")
			access(vuart.Base+vuart.UARTDR, false, 4, 5, false, false)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64('k'), c.X[5], "UARTDR takes the byte, on the locked path")
			assert.Equal(t, 2, int(v.fastMMIO.Load()))
			access(fr, true, 4, 5, false, false)(c) // a store to UARTFR: locked path, ignored
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, 2, int(v.fastMMIO.Load()))
			access(fr, false, 4, 6, false, false)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(vuart.FR_RXFE|vuart.FR_TXFE), c.X[6], "drained by the guest")
			hvc(abi.EXIT, 0)(c)
		}),
	}
	r.h.RunAll(s)
	assert.Equal(t, 3, int(v.fastMMIO.Load()))
	assert.Equal(t, 5, vm.exits()[ExitMMIO], "locked and lock-free exits both counted")
}
