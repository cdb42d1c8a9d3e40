package vgic

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/gic"
)

type fakeLRs struct{ r [4]uint64 }

func (f *fakeLRs) ReadLR(i int) uint64     { return f.r[i] }
func (f *fakeLRs) WriteLR(i int, v uint64) { f.r[i] = v }

// boot does what a guest's GIC driver does: wake the redistributors,
// enable both groups, and enable the given interrupts in group 1.
func boot(g *VGIC, intids ...uint32) {
	d, r := g.Distributor(), g.Redistributors()
	for i := range g.CPUs {
		r.Write(uint64(i)*RedistStride+gic.GICR_WAKER, 4, 0)
		r.Write(uint64(i)*RedistStride+gic.GICR_IGROUPR0, 4, 0xffffffff)
	}
	d.Write(gic.GICD_CTLR, 4, CTLR_EnableGrp1|CTLR_EnableGrp0)
	for _, id := range intids {
		if id < FirstSPI {
			for i := range g.CPUs {
				r.Write(uint64(i)*RedistStride+gic.GICR_ISENABLER0, 4, 1<<id)
			}
		} else {
			d.Write(gic.GICD_IGROUPR+uint64(id/32)*4, 4, 0xffffffff)
			d.Write(gic.GICD_ISENABLER+uint64(id/32)*4, 4, 1<<(id%32))
		}
	}
}

func TestDistributorRegisters(t *testing.T) {
	g := New(64, 2, 4)
	d, r := g.Distributor(), g.Redistributors()
	assert.Equal(t, uint64(2|9<<19), d.Read(gic.GICD_TYPER, 4), "96 INTIDs: ITLinesNumber 2")
	assert.Equal(t, uint64(0x3b), d.Read(pidr2Off, 4))
	assert.Equal(t, uint64(CTLR_ARE|CTLR_DS), d.Read(gic.GICD_CTLR, 4))
	d.Write(gic.GICD_CTLR, 4, 0xffffffff)
	assert.Equal(t, uint64(CTLR_ARE|CTLR_DS|CTLR_EnableGrp0|CTLR_EnableGrp1), d.Read(gic.GICD_CTLR, 4))

	d.Write(gic.GICD_ISENABLER+4, 4, 1<<3|1<<31) // INTIDs 35 and 63
	assert.Equal(t, uint64(1<<3|1<<31), d.Read(gic.GICD_ICENABLER+4, 4))
	d.Write(gic.GICD_ICENABLER+4, 4, 1<<3)
	assert.Equal(t, uint64(1<<31), d.Read(gic.GICD_ISENABLER+4, 4))
	assert.Zero(t, d.Read(gic.GICD_ISENABLER, 4), "word 0 belongs to the redistributors")

	d.Write(gic.GICD_IPRIORITYR+40, 4, 0x10203040)
	assert.Equal(t, uint64(0x10203040), d.Read(gic.GICD_IPRIORITYR+40, 4))
	d.Write(gic.GICD_IPRIORITYR+41, 1, 0xff)
	assert.Equal(t, uint64(0xf8), d.Read(gic.GICD_IPRIORITYR+41, 1), "5 priority bits")

	d.Write(gic.GICD_ICFGR+8, 4, 0b10<<2) // INTID 33 edge
	assert.Equal(t, uint64(0b10<<2), d.Read(gic.GICD_ICFGR+8, 4))

	d.Write(gic.GICD_IROUTER+8*40, 8, 1)
	assert.Equal(t, uint64(1), d.Read(gic.GICD_IROUTER+8*40, 8))
	assert.Zero(t, d.Read(0x9000, 4), "unimplemented registers read as zero")
	d.Write(0x9000, 4, 1) // and ignore writes

	assert.Equal(t, uint64(0), r.Read(gic.GICR_TYPER, 8)&gic.GICR_TYPER_Last)
	assert.Equal(t, uint64(1)<<32|1<<8|gic.GICR_TYPER_Last, r.Read(RedistStride+gic.GICR_TYPER, 8))
	assert.Equal(t, uint64(1), r.Read(RedistStride+gic.GICR_TYPER+4, 4))
	assert.Equal(t, uint64(6), r.Read(gic.GICR_WAKER, 4), "asleep until woken")
	r.Write(gic.GICR_WAKER, 4, 0)
	assert.Zero(t, r.Read(gic.GICR_WAKER, 4))
	assert.Zero(t, r.Read(2*RedistStride, 4), "past the last redistributor")
	assert.Equal(t, uint64(0xaaaaaaaa), r.Read(gic.GICR_ICFGR0, 4), "SGIs are edge-triggered")
	r.Write(gic.GICR_IPRIORITYR+27, 1, 0x40)
	assert.Equal(t, uint64(0x40), r.Read(gic.GICR_IPRIORITYR+27, 1))
	assert.Zero(t, r.Read(RedistStride+gic.GICR_IPRIORITYR+27, 1), "PPIs are banked per vCPU")
}

func TestListRegisterScheduling(t *testing.T) {
	g := New(32, 1, 4)
	c := g.CPUs[0]
	spis := []uint32{32, 33, 34, 35, 36, 37}
	boot(g, append([]uint32{27}, spis...)...)
	d := g.Distributor()
	// Priorities: 37 highest (0x10), then 36 (0x20), ...
	for i, id := range spis {
		d.Write(gic.GICD_IPRIORITYR+uint64(id), 1, uint64(0x60-0x10*i))
	}
	for _, id := range spis {
		g.Inject(0, id)
	}
	assert.True(t, g.HasPending(c))
	hw := &fakeLRs{}
	n := g.Flush(c)
	c.LoadLRs(hw, n)
	require.Equal(t, 4, n)
	assert.Equal(t, []uint32{37, 36, 35, 34}, []uint32{uint32(hw.r[0]), uint32(hw.r[1]), uint32(hw.r[2]), uint32(hw.r[3])})
	assert.Equal(t, uint64(LR_PENDING|LR_GROUP), hw.r[0]&(LR_STATE_MASK|LR_GROUP))
	assert.Equal(t, uint64(0x10), hw.r[0]>>LR_PRIORITY_SHIFT&0xff)
	assert.NotZero(t, c.HCR&ICH_HCR_UIE, "two more are waiting: ask for an underflow maintenance interrupt")

	// The guest takes 37 (active) and completes 36 and 35.
	hw.r[0] = hw.r[0]&^LR_STATE_MASK | LR_ACTIVE
	hw.r[1], hw.r[2] = 0, 0
	g.Sync(c, hw, n)
	assert.Equal(t, uint64(1<<5), d.Read(gic.GICD_ISACTIVER+4, 4)&(1<<5), "37 is active")
	n = g.Flush(c)
	c.LoadLRs(hw, n)
	assert.Equal(t, []uint32{37, 33, 32, 34}, []uint32{uint32(hw.r[0]), uint32(hw.r[1]), uint32(hw.r[2]), uint32(hw.r[3])})
	assert.Zero(t, c.HCR&ICH_HCR_UIE, "everything fits now")

	// Disabled interrupts wait.
	g2 := New(32, 1, 4)
	g2.Inject(0, 27)
	assert.False(t, g2.HasPending(g2.CPUs[0]), "not enabled")
	boot(g2, 27)
	assert.True(t, g2.HasPending(g2.CPUs[0]))
	g2.Distributor().Write(gic.GICD_CTLR, 4, 0)
	assert.False(t, g2.HasPending(g2.CPUs[0]), "groups disabled at the distributor")
}

// sgi sends an SGI and returns the vCPUs it woke.
func sgi(g *VGIC, from int, v uint64) []*CPU {
	var out []*CPU
	g.SGI(from, v, func(c *CPU) { out = append(out, c) })
	return out
}

func TestSGIRouting(t *testing.T) {
	g := New(32, 4, 4)
	boot(g, 1, 2)
	// To vCPUs 1 and 3 (Aff0 target list), INTID 1.
	got := sgi(g, 0, 1<<24|0b1010)
	require.Len(t, got, 2)
	assert.Equal(t, []int{1, 3}, []int{got[0].Index, got[1].Index})
	assert.True(t, g.HasPending(g.CPUs[1]))
	assert.False(t, g.HasPending(g.CPUs[0]))
	// IRM: everyone but the sender.
	got = sgi(g, 2, 2<<24|1<<40)
	assert.Len(t, got, 3)
	for _, c := range got {
		assert.NotEqual(t, 2, c.Index)
	}
	// A target list for Aff1 = 1 reaches nobody: all vCPUs have Aff1 = 0.
	assert.Empty(t, sgi(g, 0, 1<<24|1<<16|0xffff))
	// Range selector 1 means Aff0 16-31: nobody here either.
	assert.Empty(t, sgi(g, 0, 1<<24|1<<44|0xffff))
	// Aff0 4 and 15 of four vCPUs, and vCPU 2: only vCPU 2.
	got = sgi(g, 1, 1<<24|1<<15|1<<4|1<<2)
	require.Len(t, got, 1)
	assert.Equal(t, 2, got[0].Index)
}

// GICR_WAKER.ProcessorSleep is the PE's power handshake with its
// redistributor (IHI 0069, 11.1): a vCPU that runs is powered, so an
// interrupt reaches it whether or not its driver cleared the bit.
func TestAsleepRedistributorStillDelivers(t *testing.T) {
	g := New(32, 2, 4)
	r := g.Redistributors()
	r.Write(gic.GICR_IGROUPR0, 4, 0xffffffff)
	r.Write(gic.GICR_ISENABLER0, 4, 1<<3)
	g.Distributor().Write(gic.GICD_CTLR, 4, CTLR_EnableGrp1)
	require.Equal(t, uint64(6), r.Read(gic.GICR_WAKER, 4), "never woken")
	got := sgi(g, 0, 3<<24|1<<40) // IRM: to vCPU 1, which is not enabled for it
	require.Len(t, got, 1)
	assert.False(t, g.HasPending(g.CPUs[1]), "vCPU 1 has SGI 3 disabled")
	sgi(g, 1, 3<<24|1) // to vCPU 0
	assert.True(t, g.HasPending(g.CPUs[0]), "delivered with ProcessorSleep set")
}

// A level-sensitive interrupt is pending while its line is high, not
// latched (IHI 0069, 4.1.1): it is withdrawn if the line drops before the
// PE acknowledges it, and pending again after its deactivation if the line
// is still high.
func TestLevelSensitiveLine(t *testing.T) {
	g := New(32, 1, 4)
	c := g.CPUs[0]
	boot(g, 27, 33)
	r, d := g.Redistributors(), g.Distributor()
	hw := &fakeLRs{}
	run := func() int { n := g.Flush(c); c.LoadLRs(hw, n); return n }

	assert.Nil(t, g.SetLevel(0, 27, false), "already low: nothing changes")
	require.Same(t, c, g.SetLevel(0, 27, true))
	assert.True(t, g.HasPending(c))
	assert.Equal(t, uint64(1<<27), r.Read(gic.GICR_ISPENDR0, 4)&(1<<27))
	n := run()
	require.Equal(t, 1, n)
	assert.Equal(t, uint64(27), hw.r[0]&LR_vINTID_MASK)
	assert.Equal(t, uint64(LR_PENDING|LR_EOI), hw.r[0]&(LR_STATE_MASK|LR_EOI),
		"pending, with a maintenance interrupt at its deactivation")

	// The line drops before the guest acknowledges it.
	g.Sync(c, hw, n)
	g.SetLevel(0, 27, false)
	assert.Zero(t, r.Read(gic.GICR_ISPENDR0, 4)&(1<<27), "no longer pending")
	run()
	assert.Zero(t, c.Used(), "withdrawn from its list register")
	assert.False(t, g.HasPending(c))

	// High again; the guest acknowledges it and the line stays high.
	g.SetLevel(0, 27, true)
	n = run()
	hw.r[0] = hw.r[0]&^LR_STATE_MASK | LR_ACTIVE
	g.Sync(c, hw, n)
	assert.Equal(t, uint64(1<<27), r.Read(gic.GICR_ISACTIVER0, 4)&(1<<27))
	assert.Equal(t, uint64(1<<27), r.Read(gic.GICR_ISPENDR0, 4)&(1<<27), "active and pending: the line is high")
	assert.False(t, g.HasPending(c), "not taken again while active")
	// The guest deactivates it; the line is still high: pending again.
	hw.r[0] &^= LR_STATE_MASK
	g.Sync(c, hw, n)
	assert.True(t, g.HasPending(c))
	run()
	assert.Equal(t, uint64(LR_PENDING), hw.r[0]&LR_STATE_MASK)

	// An SPI's line: pending on the vCPU it is routed to, and a write to
	// GICD_ICPENDR does not lower a line that is high.
	require.Same(t, c, g.SetLevel(0, 33, true))
	d.Write(gic.GICD_ICPENDR+4, 4, 1<<1)
	assert.Equal(t, uint64(1<<1), d.Read(gic.GICD_ISPENDR+4, 4)&(1<<1))
	g.SetLevel(0, 33, false)
	assert.Zero(t, d.Read(gic.GICD_ISPENDR+4, 4)&(1<<1))
}

// The virtual timer's line is sampled from hardware: once the guest
// deactivates its interrupt the line reads low, so the hypervisor looks at
// the timer again before raising it, instead of taking an interrupt the
// guest has just handled by reprogramming the timer.
func TestResampledLineDropsAtDeactivation(t *testing.T) {
	g := New(32, 1, 4)
	c := g.CPUs[0]
	boot(g, 27)
	g.Resample(27)
	hw := &fakeLRs{}
	g.SetLevel(0, 27, true)
	n := g.Flush(c)
	c.LoadLRs(hw, n)
	assert.True(t, c.Level(27))
	hw.r[0] &^= LR_STATE_MASK // taken and deactivated in one run
	g.Sync(c, hw, n)
	assert.False(t, c.Level(27), "to be sampled again")
	assert.False(t, g.HasPending(c))
}

// An interrupt made pending by any of the architecture's ways (an edge, a line
// driven high, a write to GICD_ISPENDR<n>: IHI 0069, 4.1.1 and 12.9.19)
// is presented, also in the last of 224 SPIs, and again when made pending
// after it was taken; stable priority order holds across them.
func TestEveryPendingInterruptIsPresented(t *testing.T) {
	g := New(224, 2, 4)
	c := g.CPUs[0]
	spis := []uint32{40, 100, 200, 255}
	boot(g, spis...)
	d := g.Distributor()
	for _, id := range spis {
		d.Write(gic.GICD_IPRIORITYR+uint64(id), 1, 0x80)
	}
	d.Write(gic.GICD_IPRIORITYR+255, 1, 0x10) // the last SPI first
	hw := &fakeLRs{}
	take := func() []uint32 {
		n := g.Flush(c)
		c.LoadLRs(hw, n)
		var got []uint32
		for i := 0; i < n; i++ {
			if hw.r[i]&LR_STATE_MASK == LR_PENDING {
				got = append(got, uint32(hw.r[i]&LR_vINTID_MASK))
			}
			hw.r[i] = 0 // taken and completed
		}
		g.Sync(c, hw, n)
		return got
	}
	assert.Empty(t, take(), "nothing pending")

	g.Inject(0, 40)                                    // an edge
	g.SetLevel(0, 200, true)                           // a line
	d.Write(gic.GICD_ISPENDR+255/32*4, 4, 1<<(255%32)) // a write to ISPENDR
	d.Write(gic.GICD_ISPENDR+100/32*4, 4, 1<<(100%32))
	assert.True(t, g.HasPending(c))
	assert.Equal(t, []uint32{255, 40, 100, 200}, take(), "by priority, then INTID")
	g.SetLevel(0, 200, false)
	assert.Empty(t, take(), "each taken once; the line dropped")
	assert.False(t, g.HasPending(c))

	g.Inject(0, 40)
	assert.Equal(t, []uint32{40}, take(), "pending again after it was taken")

	// And an SGI or PPI, each vCPU's own: by an SGI, a line, a write to
	// GICR_ISPENDR0.
	boot(g, 3, 7, 27)
	r := g.Redistributors()
	g.Inject(0, 3)
	g.SetLevel(0, 27, true)
	r.Write(gic.GICR_ISPENDR0, 4, 1<<7)
	r.Write(RedistStride+gic.GICR_ISPENDR0, 4, 1<<7) // vCPU 1's, not 0's
	assert.Equal(t, []uint32{3, 7, 27}, take())
	g.SetLevel(0, 27, false)
	assert.Empty(t, take())
	assert.True(t, g.HasPending(g.CPUs[1]), "vCPU 1's SGI 7 waits for it")
}
