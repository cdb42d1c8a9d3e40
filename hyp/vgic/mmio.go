package vgic

import "github.com/bulkhead-hv/bulkhead/gic"

// GICD_CTLR bits in a single security state (IHI 0069, 12.9.4).
const (
	CTLR_EnableGrp0 = 1 << 0
	CTLR_EnableGrp1 = 1 << 1
	CTLR_ARE        = 1 << 4 // affinity routing: always on here
	CTLR_DS         = 1 << 6 // one security state: always
)

// Guest physical layout, as on QEMU virt.
const (
	DistBase   = 0x08000000
	DistSize   = 0x10000
	RedistBase = 0x080a0000
	// Each GICv3 redistributor is two 64 KiB frames: RD_base and SGI_base.
	RedistStride = 0x20000
)

const (
	iidr     = 0x0000043b // implementer Arm (JEP106 0x43b), revision 0
	pidr2v3  = 0x3b       // ArchRev 3
	pidr2Off = 0xffe8
)

// Distributor is the MMIO device at DistBase.
func (g *VGIC) Distributor() *Distributor { return &Distributor{g} }

// Redistributors is the MMIO device at RedistBase, one frame pair per vCPU.
func (g *VGIC) Redistributors() *Redistributors { return &Redistributors{g} }

// RedistSize is the size of the redistributor region.
func (g *VGIC) RedistSize() uint64 { return uint64(len(g.CPUs)) * RedistStride }

// Distributor emulates GICD_* registers.
type Distributor struct{ g *VGIC }

// Redistributors emulates GICR_* registers of every vCPU.
type Redistributors struct{ g *VGIC }

// bits reads one bit per interrupt of 32 starting at first.
func (g *VGIC) bits(c *CPU, first uint32, get func(*irq) bool) uint64 {
	var v uint64
	for i := uint32(0); i < 32; i++ {
		if ir := g.irqOf(c, first+i); ir != nil && get(ir) {
			v |= 1 << i
		}
	}
	return v
}

// setBits applies fn to every interrupt whose bit is set.
func (g *VGIC) setBits(c *CPU, first uint32, v uint64, fn func(*irq)) {
	for i := uint32(0); i < 32; i++ {
		if v>>i&1 == 1 {
			if ir := g.irqOf(c, first+i); ir != nil {
				fn(ir)
			}
		}
	}
}

// bitRegs handles the one-bit-per-interrupt register banks shared by the
// distributor (for SPIs) and the SGI frame (for SGIs and PPIs). off is the
// offset of the bank register's word 0; ok is false outside the banks.
func (g *VGIC) bitRead(c *CPU, off uint64, first uint32) (uint64, bool) {
	switch {
	case off >= gic.GICD_IGROUPR && off < gic.GICD_ISENABLER:
		return g.bits(c, first, func(ir *irq) bool { return ir.group1 }), true
	case off >= gic.GICD_ISENABLER && off < gic.GICD_ISPENDR:
		return g.bits(c, first, func(ir *irq) bool { return ir.enabled }), true
	case off >= gic.GICD_ISPENDR && off < gic.GICD_ISACTIVER:
		// A level-sensitive interrupt is pending while its line is high,
		// in a list register or not.
		return g.bits(c, first, func(ir *irq) bool { return ir.pending || ir.level || ir.lr >= 0 && !ir.active && !ir.byLevel }), true
	case off >= gic.GICD_ISACTIVER && off < gic.GICD_IPRIORITYR:
		return g.bits(c, first, func(ir *irq) bool { return ir.active }), true
	}
	return 0, false
}

func (g *VGIC) bitWrite(c *CPU, off uint64, first uint32, v uint64) bool {
	var fn func(*irq)
	switch {
	case off >= gic.GICD_IGROUPR && off < gic.GICD_ISENABLER:
		for i := uint32(0); i < 32; i++ {
			if ir := g.irqOf(c, first+i); ir != nil {
				ir.group1 = v>>i&1 == 1
			}
		}
		return true
	case off >= gic.GICD_ISENABLER && off < gic.GICD_ICENABLER:
		fn = func(ir *irq) { ir.enabled = true }
	case off >= gic.GICD_ICENABLER && off < gic.GICD_ISPENDR:
		fn = func(ir *irq) { ir.enabled = false }
	case off >= gic.GICD_ISPENDR && off < gic.GICD_ICPENDR:
		fn = func(ir *irq) { ir.pending = true }
	case off >= gic.GICD_ICPENDR && off < gic.GICD_ISACTIVER:
		fn = func(ir *irq) { ir.pending = false }
	case off >= gic.GICD_ISACTIVER && off < gic.GICD_ICACTIVER:
		fn = func(ir *irq) { ir.active = true }
	case off >= gic.GICD_ICACTIVER && off < gic.GICD_IPRIORITYR:
		fn = func(ir *irq) { ir.active = false }
	default:
		return false
	}
	g.setBits(c, first, v, fn)
	if off >= gic.GICD_ISPENDR && off < gic.GICD_ICPENDR {
		for i := uint32(0); i < 32; i++ {
			if v>>i&1 == 1 {
				g.markLive(c, first+i)
			}
		}
	}
	return true
}

func (g *VGIC) priorityRead(c *CPU, intid uint32, size int) uint64 {
	var v uint64
	for i := 0; i < size; i++ {
		if ir := g.irqOf(c, intid+uint32(i)); ir != nil {
			v |= uint64(ir.priority) << (8 * i)
		}
	}
	return v
}

func (g *VGIC) priorityWrite(c *CPU, intid uint32, size int, v uint64) {
	for i := 0; i < size; i++ {
		if ir := g.irqOf(c, intid+uint32(i)); ir != nil {
			// Five priority bits, as the virtual CPU interface implements.
			ir.priority = uint8(v>>(8*i)) & 0xf8
		}
	}
}

func (g *VGIC) cfgRead(c *CPU, first uint32) uint64 {
	var v uint64
	for i := uint32(0); i < 16; i++ {
		if ir := g.irqOf(c, first+i); ir != nil && ir.edge {
			v |= 2 << (2 * i)
		}
	}
	return v
}

func (g *VGIC) cfgWrite(c *CPU, first uint32, v uint64) {
	for i := uint32(0); i < 16; i++ {
		if first+i < 16 {
			continue // SGIs are always edge-triggered
		}
		if ir := g.irqOf(c, first+i); ir != nil {
			ir.edge = v>>(2*i+1)&1 == 1
		}
	}
}

// Read implements the guest's distributor reads.
func (d *Distributor) Read(off uint64, size int) uint64 {
	g := d.g
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.CPUs[0]
	switch {
	case off == gic.GICD_CTLR:
		return uint64(g.ctlr | CTLR_ARE | CTLR_DS)
	case off == gic.GICD_TYPER:
		// ITLinesNumber, IDbits = 9 (10-bit INTIDs), no LPIs, no security.
		return uint64((len(g.spis)+FirstSPI)/32-1) | 9<<19
	case off == gic.GICD_IIDR:
		return iidr
	case off == pidr2Off:
		return pidr2v3
	case off >= gic.GICD_IGROUPR && off < gic.GICD_IPRIORITYR:
		first := uint32(off%0x80) * 8
		if first < FirstSPI { // word 0 is the redistributors' with ARE
			return 0
		}
		v, _ := g.bitRead(c, off-off%0x80+0, first)
		return v
	case off >= gic.GICD_IPRIORITYR && off < gic.GICD_IPRIORITYR+0x400:
		intid := uint32(off - gic.GICD_IPRIORITYR)
		if intid < FirstSPI {
			return 0
		}
		return g.priorityRead(c, intid, size)
	case off >= gic.GICD_ICFGR && off < gic.GICD_ICFGR+0x100:
		first := uint32(off-gic.GICD_ICFGR) * 4
		if first < FirstSPI {
			return 0
		}
		return g.cfgRead(c, first)
	case off >= gic.GICD_IROUTER+8*FirstSPI && off < gic.GICD_IROUTER+8*1024:
		if ir := g.irqOf(c, uint32(off-gic.GICD_IROUTER)/8); ir != nil {
			return ir.route
		}
	}
	return 0 // reserved and unimplemented registers read as zero
}

// Write implements the guest's distributor writes.
func (d *Distributor) Write(off uint64, size int, v uint64) {
	g := d.g
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.CPUs {
		c.dirty = true
	}
	c := g.CPUs[0]
	switch {
	case off == gic.GICD_CTLR:
		g.ctlr = uint32(v) & (CTLR_EnableGrp0 | CTLR_EnableGrp1)
	case off >= gic.GICD_IGROUPR && off < gic.GICD_IPRIORITYR:
		first := uint32(off%0x80) * 8
		if first >= FirstSPI {
			g.bitWrite(c, off-off%0x80, first, v)
		}
	case off >= gic.GICD_IPRIORITYR && off < gic.GICD_IPRIORITYR+0x400:
		if intid := uint32(off - gic.GICD_IPRIORITYR); intid >= FirstSPI {
			g.priorityWrite(c, intid, size, v)
		}
	case off >= gic.GICD_ICFGR && off < gic.GICD_ICFGR+0x100:
		if first := uint32(off-gic.GICD_ICFGR) * 4; first >= FirstSPI {
			g.cfgWrite(c, first, v)
		}
	case off >= gic.GICD_IROUTER+8*FirstSPI && off < gic.GICD_IROUTER+8*1024:
		if ir := g.irqOf(c, uint32(off-gic.GICD_IROUTER)/8); ir != nil {
			// Aff3.Aff2.Aff1.Aff0 and IRM; the rest is RES0.
			ir.route = v & 0xff00ffffff
		}
	}
}

// cpuAt finds the vCPU whose redistributor frames contain off.
func (r *Redistributors) cpuAt(off uint64) (*CPU, uint64) {
	i := int(off / RedistStride)
	if i >= len(r.g.CPUs) {
		return nil, 0
	}
	return r.g.CPUs[i], off % RedistStride
}

// Read implements the guest's redistributor reads.
func (r *Redistributors) Read(off uint64, size int) uint64 {
	g := r.g
	g.mu.Lock()
	defer g.mu.Unlock()
	c, off := r.cpuAt(off)
	if c == nil {
		return 0
	}
	switch {
	case off == gic.GICR_CTLR:
		return 0
	case off == 0x4: // GICR_IIDR
		return iidr
	case off == gic.GICR_TYPER:
		v := c.Aff<<32 | uint64(c.Index)<<8
		if c.Index == len(g.CPUs)-1 {
			v |= gic.GICR_TYPER_Last
		}
		if size == 4 {
			v &= 0xffffffff
		}
		return v
	case off == gic.GICR_TYPER+4:
		return c.Aff
	case off == gic.GICR_WAKER:
		if c.asleep {
			return gic.GICR_WAKER_ProcessorSleep | gic.GICR_WAKER_ChildrenAsleep
		}
		return 0
	case off == pidr2Off:
		return pidr2v3
	case off >= gic.GICR_IGROUPR0 && off < gic.GICR_IPRIORITYR:
		if (off-gic.GICR_SGI_BASE)%0x80 != 0 {
			return 0
		}
		v, _ := g.bitRead(c, off-gic.GICR_SGI_BASE, 0)
		return v
	case off >= gic.GICR_IPRIORITYR && off < gic.GICR_IPRIORITYR+NumPrivate:
		return g.priorityRead(c, uint32(off-gic.GICR_IPRIORITYR), size)
	case off == gic.GICR_ICFGR0 || off == gic.GICR_ICFGR0+4:
		return g.cfgRead(c, uint32(off-gic.GICR_ICFGR0)*4)
	}
	return 0
}

// Write implements the guest's redistributor writes.
func (r *Redistributors) Write(off uint64, size int, v uint64) {
	g := r.g
	g.mu.Lock()
	defer g.mu.Unlock()
	c, off := r.cpuAt(off)
	if c == nil {
		return
	}
	c.dirty = true
	switch {
	case off == gic.GICR_WAKER:
		c.asleep = v&gic.GICR_WAKER_ProcessorSleep != 0
	case off >= gic.GICR_IGROUPR0 && off < gic.GICR_IPRIORITYR:
		if (off-gic.GICR_SGI_BASE)%0x80 == 0 {
			g.bitWrite(c, off-gic.GICR_SGI_BASE, 0, v)
		}
	case off >= gic.GICR_IPRIORITYR && off < gic.GICR_IPRIORITYR+NumPrivate:
		g.priorityWrite(c, uint32(off-gic.GICR_IPRIORITYR), size, v)
	case off == gic.GICR_ICFGR0+4:
		g.cfgWrite(c, 16, v)
	}
}
