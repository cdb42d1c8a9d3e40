package gic

import (
	"errors"
	"fmt"
)

// More distributor and redistributor registers (IHI 0069, 12.9, 12.10, 12.11).
const (
	GICD_IGROUPR    = 0x0080
	GICD_ISENABLER  = 0x0100
	GICD_ICENABLER  = 0x0180
	GICD_ISPENDR    = 0x0200
	GICD_ICPENDR    = 0x0280
	GICD_ISACTIVER  = 0x0300
	GICD_ICACTIVER  = 0x0380
	GICD_IPRIORITYR = 0x0400
	GICD_ICFGR      = 0x0c00
	GICD_IROUTER    = 0x6000

	GICD_CTLR_EnableGrp0 = 1 << 0
	GICD_CTLR_EnableGrp1 = 1 << 1
	GICD_CTLR_ARE        = 1 << 4
	GICD_CTLR_DS         = 1 << 6
	GICD_CTLR_RWP        = 1 << 31

	GICR_CTLR  = 0x0000
	GICR_WAKER = 0x0014
	// The SGI_base frame, 64 KiB above RD_base.
	GICR_SGI_BASE   = 0x10000
	GICR_IGROUPR0   = GICR_SGI_BASE + 0x0080
	GICR_ISENABLER0 = GICR_SGI_BASE + 0x0100
	GICR_ICENABLER0 = GICR_SGI_BASE + 0x0180
	GICR_ISPENDR0   = GICR_SGI_BASE + 0x0200
	GICR_ICPENDR0   = GICR_SGI_BASE + 0x0280
	GICR_ISACTIVER0 = GICR_SGI_BASE + 0x0300
	GICR_ICACTIVER0 = GICR_SGI_BASE + 0x0380
	GICR_IPRIORITYR = GICR_SGI_BASE + 0x0400
	GICR_ICFGR0     = GICR_SGI_BASE + 0x0c00

	GICR_WAKER_ProcessorSleep = 1 << 1
	GICR_WAKER_ChildrenAsleep = 1 << 2
)

// CPU interface system register fields (IHI 0069, 12.2).
const (
	ICC_SRE_SRE        = 1 << 0
	ICC_SRE_Enable     = 1 << 3 // EL1 may use ICC_SRE_EL1
	ICC_CTLR_EOImode   = 1 << 1 // EOIR drops priority, DIR deactivates
	ICC_IAR_INTID_MASK = 0xffffff
	INTID_SPURIOUS     = 1023
	DefaultPriority    = 0xa0
	HypervisorPriority = 0x80
	firstPPI, firstSPI = 16, 32
)

// WriteBus writes device registers.
type WriteBus interface {
	Bus
	Write32(addr uint64, v uint32)
	Write64(addr uint64, v uint64)
}

// Physical is the GICv3 as the hypervisor drives it: distributor and this
// CPU's redistributor over MMIO. The CPU interface system registers are
// in cpuif_arm64.go.
type Physical struct {
	bus  WriteBus
	GICD uint64
	RD   uint64 // this CPU's redistributor (RD_base)
	Info Info
}

var ErrTimeout = errors.New("gic: register did not settle")

// spin bounds register polling: the GIC answers within a few accesses on
// real hardware and at once under emulation.
const spin = 1 << 20

// InitDistributor resets the distributor: affinity routing on, every SPI
// disabled, inactive, not pending, group 1 (non-secure), default priority,
// level-sensitive, routed to the CPU with affinity aff.
func (p *Physical) InitDistributor(aff uint64) error {
	p.bus.Write32(p.GICD+GICD_CTLR, 0)
	if err := p.waitRWP(); err != nil {
		return err
	}
	for n := uint32(firstSPI); n <= p.Info.MaxINTID; n += 32 {
		off := uint64(n/32) * 4
		p.bus.Write32(p.GICD+GICD_ICENABLER+off, 0xffffffff)
		p.bus.Write32(p.GICD+GICD_ICPENDR+off, 0xffffffff)
		p.bus.Write32(p.GICD+GICD_ICACTIVER+off, 0xffffffff)
		p.bus.Write32(p.GICD+GICD_IGROUPR+off, 0xffffffff)
	}
	for n := uint32(firstSPI); n <= p.Info.MaxINTID; n += 4 {
		p.bus.Write32(p.GICD+GICD_IPRIORITYR+uint64(n), DefaultPriority*0x01010101)
	}
	for n := uint32(firstSPI); n <= p.Info.MaxINTID; n++ {
		p.bus.Write64(p.GICD+GICD_IROUTER+8*uint64(n), aff)
	}
	p.bus.Write32(p.GICD+GICD_CTLR, GICD_CTLR_ARE|GICD_CTLR_EnableGrp1|GICD_CTLR_EnableGrp0)
	return p.waitRWP()
}

func (p *Physical) waitRWP() error {
	for i := 0; i < spin; i++ {
		if p.bus.Read32(p.GICD+GICD_CTLR)&GICD_CTLR_RWP == 0 {
			return nil
		}
	}
	return fmt.Errorf("%w: GICD_CTLR.RWP", ErrTimeout)
}

// InitRedistributor wakes this CPU's redistributor and resets its SGIs and
// PPIs: disabled, inactive, not pending, group 1, default priority.
func (p *Physical) InitRedistributor() error {
	w := p.bus.Read32(p.RD + GICR_WAKER)
	p.bus.Write32(p.RD+GICR_WAKER, w&^GICR_WAKER_ProcessorSleep)
	settled := false
	for i := 0; i < spin; i++ {
		if p.bus.Read32(p.RD+GICR_WAKER)&GICR_WAKER_ChildrenAsleep == 0 {
			settled = true
			break
		}
	}
	if !settled {
		return fmt.Errorf("%w: GICR_WAKER.ChildrenAsleep", ErrTimeout)
	}
	p.bus.Write32(p.RD+GICR_ICENABLER0, 0xffffffff)
	p.bus.Write32(p.RD+GICR_ICPENDR0, 0xffffffff)
	p.bus.Write32(p.RD+GICR_ICACTIVER0, 0xffffffff)
	p.bus.Write32(p.RD+GICR_IGROUPR0, 0xffffffff)
	for n := uint64(0); n < firstSPI; n += 4 {
		p.bus.Write32(p.RD+GICR_IPRIORITYR+n, DefaultPriority*0x01010101)
	}
	return nil
}

// EnablePPI enables a private interrupt of this CPU at a priority.
func (p *Physical) EnablePPI(intid uint32, prio uint8) {
	word := p.RD + GICR_IPRIORITYR + uint64(intid&^3)
	shift := 8 * (intid & 3)
	v := p.bus.Read32(word)&^(0xff<<shift) | uint32(prio)<<shift
	p.bus.Write32(word, v)
	p.bus.Write32(p.RD+GICR_ISENABLER0, 1<<intid)
}

// DisablePPI disables a private interrupt of this CPU.
func (p *Physical) DisablePPI(intid uint32) {
	p.bus.Write32(p.RD+GICR_ICENABLER0, 1<<intid)
}

// MaskPPI disables (masked) or enables again a private interrupt of the
// CPU, leaving its priority as it is. A disable may take effect a little
// later (GICR_CTLR.RWP): callers tolerate one more interrupt.
func (p *Physical) MaskPPI(intid uint32, masked bool) {
	if masked {
		p.bus.Write32(p.RD+GICR_ICENABLER0, 1<<intid)
		return
	}
	p.bus.Write32(p.RD+GICR_ISENABLER0, 1<<intid)
}

// RedistributorFor finds the RD_base of the redistributor with affinity aff.
func RedistributorFor(bus Bus, gicr []Region, info Info, aff uint64) (uint64, bool) {
	i := 0
	for _, r := range gicr {
		for off := uint64(0); off+GICR_FrameSize <= r.Size; off += GICR_FrameSize {
			if i >= len(info.Redistributors) {
				return 0, false
			}
			if info.Redistributors[i] == aff {
				return r.Addr + off, true
			}
			i++
			if bus.Read64(r.Addr+off+GICR_TYPER)&GICR_TYPER_Last != 0 {
				break
			}
		}
	}
	return 0, false
}

// NewPhysical binds the driver to this CPU's redistributor.
func NewPhysical(bus WriteBus, gicd uint64, gicr []Region, info Info, aff uint64) (*Physical, error) {
	rd, ok := RedistributorFor(bus, gicr, info, aff)
	if !ok {
		return nil, fmt.Errorf("gic: no redistributor for affinity %#x", aff)
	}
	return &Physical{bus: bus, GICD: gicd, RD: rd, Info: info}, nil
}

// Affinity packs MPIDR_EL1's affinity fields as GICR_TYPER[63:32] and
// GICD_IROUTER hold them: Aff3.Aff2.Aff1.Aff0.
func Affinity(mpidr uint64) uint64 {
	return (mpidr>>32&0xff)<<24 | mpidr&0xffffff
}

// Owner is who a physical interrupt belongs to: the hypervisor or a
// compartment (the ledger's owner numbers).
type Owner uint16

// Ownership assigns every physical INTID to one owner. Unassigned
// interrupts stay disabled.
type Ownership struct {
	owners map[uint32]Owner
}

// ErrOwned means the interrupt already has an owner.
var ErrOwned = errors.New("gic: interrupt already assigned")

// Assign gives intid to o.
func (w *Ownership) Assign(intid uint32, o Owner) error {
	if w.owners == nil {
		w.owners = map[uint32]Owner{}
	}
	if _, ok := w.owners[intid]; ok {
		return ErrOwned
	}
	w.owners[intid] = o
	return nil
}

// Release takes intid back from o.
func (w *Ownership) Release(intid uint32, o Owner) bool {
	if cur, ok := w.owners[intid]; ok && cur == o {
		delete(w.owners, intid)
		return true
	}
	return false
}

// Owner reports who owns intid.
func (w *Ownership) Owner(intid uint32) (Owner, bool) {
	o, ok := w.owners[intid]
	return o, ok
}
