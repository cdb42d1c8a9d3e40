// Package vgic is the virtual GICv3 every guest gets: an emulated
// distributor and redistributors (MMIO, enough for Linux's GICv3 driver
// and for bare-metal guests) and the scheduling of virtual interrupts into
// the list registers of the GIC's virtual CPU interface. The guest talks to
// that interface (ICC_* at EL1, answered by ICV_*) directly; only
// distributor and redistributor accesses, SGI generation and list register
// management go through the hypervisor. Pure Go: the list registers are
// reached through the LRs seam.
package vgic

import (
	"math/bits"
	"sync"
)

// Interrupt ID ranges (GICv3 specification, IHI 0069, 2.2).
const (
	NumPrivate = 32 // SGIs 0-15 and PPIs 16-31, banked per vCPU
	FirstSPI   = 32
	Spurious   = 1023
)

// ICH_LR<n>_EL2 fields (IHI 0069, 12.4.6).
const (
	LR_vINTID_MASK    = 0xffffffff
	LR_pINTID_SHIFT   = 32
	LR_PRIORITY_SHIFT = 48
	LR_EOI            = 1 << 41 // HW clear: maintenance interrupt when deactivated
	LR_GROUP          = 1 << 60
	LR_HW             = 1 << 61
	LR_STATE_SHIFT    = 62
	LR_PENDING        = 1 << 62
	LR_ACTIVE         = 2 << 62
	LR_STATE_MASK     = 3 << 62
)

// ICH_HCR_EL2 fields (IHI 0069, 12.4.1).
const (
	ICH_HCR_En  = 1 << 0
	ICH_HCR_UIE = 1 << 1 // maintenance interrupt when the LRs run (almost) empty
)

type irq struct {
	// hw links the virtual interrupt to the physical one with the same
	// INTID: the guest's deactivation deactivates the physical interrupt
	// (ICH_LR<n>_EL2.HW), so a level-triggered device cannot fire again
	// before the guest has handled it.
	hw      bool
	enabled bool
	pending bool // the pending latch: an edge, an SGI, a GICD_ISPENDR write
	// level is the input line of a level-sensitive interrupt a device
	// model drives (SetLevel): the interrupt is pending while it is high
	// (IHI 0069, 4.1.1), whatever the latch says, and taken again after
	// its deactivation if it is still high.
	level bool
	// resample marks a line the hypervisor samples from hardware (the
	// virtual timer's): when the guest deactivates the interrupt, the
	// line reads low until the hypervisor has looked at it again.
	resample bool
	// byLevel says the list register holds it because its line was high,
	// with LR_EOI: a maintenance interrupt then reports its deactivation,
	// and it leaves the list register if the line drops before it is
	// taken.
	byLevel  bool
	active   bool
	group1   bool
	edge     bool
	priority uint8
	route    uint64 // SPIs: affinity of the target vCPU
	lr       int    // list register holding it, -1 if none
}

// CPU is one vCPU's view: its banked SGIs and PPIs, its redistributor and
// the contents of its list registers.
type CPU struct {
	// dirty says something may be waiting to enter the list registers;
	// Flush is cheap when it is not.
	dirty   bool
	Index   int
	Aff     uint64 // affinity as GICR_TYPER reports it (Aff3.Aff2.Aff1.Aff0)
	private [NumPrivate]irq
	live    uint32 // the private interrupts that may be pending (VGIC.live)
	// asleep is GICR_WAKER.ProcessorSleep. It holds nothing back: it is
	// the PE's request to its power controller (IHI 0069, 11.1), and a
	// vCPU that runs is powered. QEMU's and KVM's GICv3 forward
	// interrupts whatever it says, and guests written for them never
	// clear it.
	asleep bool
	lrs    []uint64
	used   int    // list registers in use after the last Flush or Sync
	HCR    uint64 // ICH_HCR_EL2 to load
	VMCR   uint64 // ICH_VMCR_EL2, saved and restored with the vCPU
	AP0R   uint64 // ICH_AP0R0_EL2
	AP1R   uint64 // ICH_AP1R0_EL2
}

// VGIC is one VM's interrupt controller.
type VGIC struct {
	mu   sync.Mutex
	ctlr uint32
	spis []irq
	// live has a bit per SPI set whenever it may be pending (its latch
	// or its line set): candidates scans these words, not every SPI, and
	// clears the bits of the SPIs it finds neither. (CPU.live does the
	// same for each vCPU's SGIs and PPIs.)
	live []uint64
	CPUs []*CPU
	nLRs int
}

// markLive notes that interrupt intid (c's, if it is an SGI or a PPI)
// may be pending.
func (g *VGIC) markLive(c *CPU, intid uint32) {
	if intid < NumPrivate {
		c.live |= 1 << intid
		return
	}
	if i := int(intid) - FirstSPI; i < len(g.spis) {
		g.live[i/64] |= 1 << (i % 64)
	}
}

// New makes a vGIC with nspis SPIs (a multiple of 32), ncpus vCPUs whose
// affinity is their index (Aff0), and nLRs list registers per CPU.
func New(nspis, ncpus, nLRs int) *VGIC {
	g := &VGIC{spis: make([]irq, nspis), live: make([]uint64, (nspis+63)/64), nLRs: nLRs}
	for i := range g.spis {
		g.spis[i] = irq{priority: 0, lr: -1}
	}
	for i := 0; i < ncpus; i++ {
		c := &CPU{Index: i, Aff: uint64(i), asleep: true, lrs: make([]uint64, nLRs), HCR: ICH_HCR_En}
		for j := range c.private {
			c.private[j] = irq{lr: -1, edge: j < 16}
		}
		g.CPUs = append(g.CPUs, c)
	}
	return g
}

func (g *VGIC) irqOf(c *CPU, intid uint32) *irq {
	if intid < NumPrivate {
		return &c.private[intid]
	}
	if i := int(intid) - FirstSPI; i < len(g.spis) {
		return &g.spis[i]
	}
	return nil
}

// target is the vCPU an SPI is routed to.
func (g *VGIC) target(ir *irq) *CPU {
	for _, c := range g.CPUs {
		if c.Aff == ir.route {
			return c
		}
	}
	return g.CPUs[0]
}

// SetLevel drives the line of level-sensitive interrupt intid of vCPU cpu
// (SGIs and PPIs) or, for an SPI, of the VM. It returns the vCPU whose
// interrupts changed, to be notified, or nil if nothing changed.
func (g *VGIC) SetLevel(cpu int, intid uint32, high bool) *CPU {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.CPUs[cpu]
	ir := g.irqOf(c, intid)
	if ir == nil || ir.level == high {
		return nil
	}
	if high {
		g.markLive(c, intid)
	}
	if intid >= FirstSPI {
		c = g.target(ir)
	}
	ir.level = high
	c.dirty = true
	return c
}

// Level reports the line of c's private interrupt intid as last driven.
// Only the CPU that runs c changes it, so it takes no lock: it is read on
// every guest entry.
func (c *CPU) Level(intid uint32) bool { return c.private[intid].level }

// Resample marks private interrupt intid of every vCPU as a line the
// hypervisor samples from hardware (SetLevel's doc, irq.resample).
func (g *VGIC) Resample(intid uint32) {
	for _, c := range g.CPUs {
		c.private[intid].resample = true
	}
}

// Inject makes intid pending for vCPU cpu (SGIs and PPIs) or for the vCPU
// the SPI is routed to. It returns the vCPU that should be woken.
//
// Inject, Sync and flush, on every injection's path, unlock without defer,
// which costs them each a closure call.
func (g *VGIC) Inject(cpu int, intid uint32) *CPU {
	g.mu.Lock()
	c := g.CPUs[cpu]
	ir := g.irqOf(c, intid)
	if ir == nil {
		g.mu.Unlock()
		return nil
	}
	g.markLive(c, intid)
	if intid >= FirstSPI {
		c = g.target(ir)
	}
	ir.pending = true
	c.dirty = true
	g.mu.Unlock()
	return c
}

// InjectPhysical makes SPI intid pending as the virtual image of the
// physical interrupt with the same INTID, which stays active until the
// guest deactivates its virtual one. It returns the vCPU to wake.
func (g *VGIC) InjectPhysical(intid uint32) *CPU {
	if intid < FirstSPI {
		return nil
	}
	g.mu.Lock()
	ir := g.irqOf(g.CPUs[0], intid)
	if ir != nil {
		ir.hw = true
	}
	g.mu.Unlock()
	if ir == nil {
		return nil
	}
	return g.Inject(0, intid)
}

// SGI delivers the SGI a vCPU generated by writing ICC_SGI1R_EL1 (IHI 0069,
// 12.2.23): to the listed vCPUs with matching Aff3.Aff2.Aff1, or with IRM
// to every vCPU but the sender. It returns the vCPUs that got it.
func (g *VGIC) SGI(from int, sgi1r uint64, wake func(*CPU)) {
	intid := uint32(sgi1r>>24) & 0xf
	irm := sgi1r>>40&1 == 1
	targets := sgi1r & 0xffff
	rs := (sgi1r >> 44) & 0xf
	aff321 := (sgi1r>>48&0xff)<<16 | (sgi1r>>32&0xff)<<8 | sgi1r>>16&0xff
	if irm {
		for _, c := range g.CPUs {
			if c.Index != from {
				g.Inject(c.Index, intid)
				wake(c)
			}
		}
		return
	}
	// A vCPU's affinity is its index (New), so the target list names
	// them: vCPUs rs*16 to rs*16+15 of Aff3.Aff2.Aff1 zero.
	if aff321 != 0 {
		return
	}
	for ; targets != 0; targets &= targets - 1 {
		i := int(rs)*16 + bits.TrailingZeros64(targets)
		if i >= len(g.CPUs) {
			return
		}
		g.Inject(i, intid)
		wake(g.CPUs[i])
	}
}

// candidates appends to out the interrupts ready to be presented to c,
// highest priority (lowest value) first, with first returning as soon as
// it finds one. The hot path: it runs on every entry after an injection,
// so it allocates nothing while out has room, and looks only at the SPIs
// the live bits name.
func (g *VGIC) candidates(c *CPU, out []uint32, first bool) []uint32 {
	grp0, grp1 := g.ctlr&CTLR_EnableGrp0 != 0, g.ctlr&CTLR_EnableGrp1 != 0
	ok := func(ir *irq) bool {
		return (ir.pending || ir.level) && ir.enabled && ir.lr < 0 && !ir.active && (ir.group1 && grp1 || !ir.group1 && grp0)
	}
	for live := c.live; live != 0; {
		b := live & -live
		live &^= b
		i := bits.TrailingZeros32(b)
		ir := &c.private[i]
		if !ir.pending && !ir.level {
			c.live &^= b
			continue
		}
		if ok(ir) {
			out = append(out, uint32(i))
			if first {
				return out
			}
		}
	}
	for w, live := range g.live {
		for live != 0 {
			b := live & -live
			live &^= b
			i := w*64 + bits.TrailingZeros64(b)
			ir := &g.spis[i]
			if !ir.pending && !ir.level {
				g.live[w] &^= b
				continue
			}
			if ok(ir) && g.target(ir) == c {
				out = append(out, uint32(FirstSPI+i))
				if first {
					return out
				}
			}
		}
	}
	// By priority, stably (insertion sort: a handful of entries).
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && g.irqOf(c, out[j]).priority < g.irqOf(c, out[j-1]).priority; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// HasPending reports whether c has an interrupt to take: one waiting, or
// one pending in its list registers. A vCPU in WFI wakes on it.
func (g *VGIC) HasPending(c *CPU) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	c.dirty = true
	for _, lr := range c.lrs {
		if lr&LR_PENDING != 0 {
			return true
		}
	}
	var buf [1]uint32
	return len(g.candidates(c, buf[:0], true)) > 0
}

// LRs is the seam to the list registers of the CPU running the vCPU.
type LRs interface {
	ReadLR(i int) uint64
	WriteLR(i int, v uint64)
}

// Flush fills c's free list registers with its highest priority waiting
// interrupts and says which LRs to load (in c's LR copy). If more wait
// than fit, ICH_HCR_EL2.UIE asks for a maintenance interrupt when the LRs
// drain, so none is lost.
func (g *VGIC) Flush(c *CPU) (used int) {
	if !c.dirty {
		return c.used // the common case, kept inlinable
	}
	return g.flush(c)
}

func (g *VGIC) flush(c *CPU) (used int) {
	g.mu.Lock()
	c.dirty = false
	// A level-sensitive interrupt whose line dropped before the guest took
	// it is no longer pending: it leaves its list register. What stays
	// counts in used, which filling below only raises. Only the first
	// c.used can hold anything (the common injection finds none).
	for i, v := range c.lrs[:c.used] {
		if v&LR_STATE_MASK == LR_PENDING && v&LR_EOI != 0 {
			if ir := g.irqOf(c, uint32(v&LR_vINTID_MASK)); ir != nil && !ir.level && !ir.pending {
				c.lrs[i], ir.lr, ir.byLevel = 0, -1, false
				continue
			}
		}
		if v&LR_STATE_MASK != 0 {
			used = i + 1
		}
	}
	var buf [16]uint32
	cands := g.candidates(c, buf[:0], false)
	for i := range c.lrs {
		if len(cands) == 0 {
			break
		}
		if c.lrs[i]&LR_STATE_MASK != 0 {
			continue
		}
		intid := cands[0]
		cands = cands[1:]
		ir := g.irqOf(c, intid)
		v := uint64(intid) | uint64(ir.priority)<<LR_PRIORITY_SHIFT | LR_PENDING
		if ir.group1 {
			v |= LR_GROUP
		}
		if ir.hw {
			v |= LR_HW | uint64(intid)<<LR_pINTID_SHIFT
		} else if ir.level {
			v |= LR_EOI
		}
		ir.byLevel = ir.level && !ir.hw
		c.lrs[i] = v
		ir.pending = false
		ir.lr = i
		used = max(used, i+1)
	}
	c.HCR = ICH_HCR_En
	if len(cands) > 0 {
		c.HCR |= ICH_HCR_UIE
	}
	c.used = used
	g.mu.Unlock()
	return used
}

// LoadLRs writes c's list registers to the hardware; n is Flush's result.
func (c *CPU) LoadLRs(hw LRs, n int) {
	for i := 0; i < n; i++ {
		hw.WriteLR(i, c.lrs[i])
	}
}

// Sync reads back the first n list registers after c ran: interrupts the
// guest completed leave them, and their state returns to the distributor.
//
// Only the first n can be in use (Flush returned n), so the last of them
// still in use sets c.used.
func (g *VGIC) Sync(c *CPU, hw LRs, n int) {
	g.mu.Lock()
	used := 0
	for i := 0; i < n; i++ {
		if c.lrs[i]&LR_STATE_MASK == 0 {
			continue // loaded empty: nothing of the guest's there
		}
		// The INTID is the one loaded: the guest changes only the state.
		intid := uint32(c.lrs[i] & LR_vINTID_MASK)
		v := hw.ReadLR(i)
		c.lrs[i] = v
		if ir := g.irqOf(c, intid); ir != nil {
			ir.active = v&LR_ACTIVE != 0
			if v&LR_STATE_MASK == 0 {
				if ir.byLevel && ir.resample {
					ir.level = false // looked at again before the next entry
				}
				ir.lr, ir.byLevel = -1, false
				c.lrs[i] = 0
				c.dirty = true // a list register came free
			}
		}
		if c.lrs[i]&LR_STATE_MASK != 0 {
			used = i + 1
		}
	}
	c.used = used
	g.mu.Unlock()
}

// Used is the number of list registers c's state occupies.
func (c *CPU) Used() int {
	n := 0
	for i, v := range c.lrs {
		if v&LR_STATE_MASK != 0 {
			n = i + 1
		}
	}
	return n
}
