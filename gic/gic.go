// Package gic drives the Arm Generic Interrupt Controller v3: discovery of
// the distributor and redistributors now; interrupt ownership and the
// virtual CPU interface later. Register access goes through the Bus seam so
// the logic runs on the host under go test.
package gic

import (
	"errors"
	"fmt"
)

// Distributor registers (GICv3/v4 Architecture Specification, IHI 0069,
// 12.9 "The GIC Distributor register descriptions").
const (
	GICD_CTLR  = 0x0000
	GICD_TYPER = 0x0004
	GICD_IIDR  = 0x0008
	GICD_PIDR2 = 0xffe8

	GICD_TYPER_ITLinesNumber = 0x1f // [4:0]
	PIDR2_ArchRev_SHIFT      = 4    // [7:4]
)

// Redistributor registers (IHI 0069, 12.10). Each GICv3 redistributor has
// two 64 KiB frames: RD_base and SGI_base.
const (
	GICR_TYPER       = 0x0008
	GICR_TYPER_Last  = 1 << 4
	GICR_TYPER_VLPIS = 1 << 1
	GICR_FrameSize   = 2 << 16
	GICR_PIDR2       = 0xffe8
)

// Bus reads device registers.
type Bus interface {
	Read32(addr uint64) uint32
	Read64(addr uint64) uint64
}

// Info is what discovery found.
type Info struct {
	ArchRev        uint32   // GICD_PIDR2.ArchRev: 3 for GICv3, 4 for GICv4
	MaxINTID       uint32   // highest SPI INTID the distributor implements
	Redistributors []uint64 // affinity (GICR_TYPER[63:32]) of each redistributor, in frame order
	IIDR           uint32
}

var ErrNoRedistributor = errors.New("gic: redistributor region holds no redistributor (GICR_TYPER.Last never set)")

// Discover reads the distributor at gicd and walks each redistributor
// region until the frame whose GICR_TYPER.Last is set.
func Discover(bus Bus, gicd uint64, gicr []Region) (Info, error) {
	var info Info
	pidr2 := bus.Read32(gicd + GICD_PIDR2)
	info.ArchRev = (pidr2 >> PIDR2_ArchRev_SHIFT) & 0xf
	if info.ArchRev != 3 && info.ArchRev != 4 {
		return info, fmt.Errorf("gic: distributor at %#x reports architecture revision %d, want GICv3 (3) or GICv4 (4)", gicd, info.ArchRev)
	}
	typer := bus.Read32(gicd + GICD_TYPER)
	info.MaxINTID = 32*((typer&GICD_TYPER_ITLinesNumber)+1) - 1
	if info.MaxINTID > 1019 {
		info.MaxINTID = 1019 // 1020-1023 are special INTIDs
	}
	info.IIDR = bus.Read32(gicd + GICD_IIDR)
	for _, r := range gicr {
		for off := uint64(0); off+GICR_FrameSize <= r.Size; {
			t := bus.Read64(r.Addr + off + GICR_TYPER)
			info.Redistributors = append(info.Redistributors, t>>32)
			if t&GICR_TYPER_Last != 0 {
				break
			}
			// GICv4 adds two frames for virtual LPIs (IHI 0069, 9.11).
			if info.ArchRev == 4 && t&GICR_TYPER_VLPIS != 0 {
				off += 2 * GICR_FrameSize
			} else {
				off += GICR_FrameSize
			}
		}
	}
	if len(info.Redistributors) == 0 {
		return info, ErrNoRedistributor
	}
	return info, nil
}

// Region is an MMIO range.
type Region struct{ Addr, Size uint64 }

func (i Info) String() string {
	return fmt.Sprintf("GICv%d, SPIs 32-%d, %d redistributor(s)", i.ArchRev, i.MaxINTID, len(i.Redistributors))
}
