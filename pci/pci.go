// Package pci finds and sets up the functions on a PCI Express host
// bridge's root bus through its ECAM window (PCI Express Base 4.0,
// 7.2.2): their configuration headers, memory BARs and capability lists.
// Configuration space is read and written 32 bits at a time through the
// Bus seam, so the logic runs under go test.
package pci

import (
	"errors"
	"fmt"
)

// Configuration header registers (PCI Local Bus 3.0, 6.1).
const (
	VendorID            = 0x00
	DeviceID            = 0x02
	Command             = 0x04
	Status              = 0x06
	ClassRevision       = 0x08
	HeaderType          = 0x0e // the byte; Read32(HeaderType) has it in [23:16]
	BAR0                = 0x10
	BAR1                = 0x14
	BAR2                = 0x18
	BAR3                = 0x1c
	BAR4                = 0x20
	BAR5                = 0x24
	SubsystemVendorID   = 0x2c
	SubsystemID         = 0x2e
	CapabilitiesPointer = 0x34

	CommandMemorySpace = 1 << 1
	CommandBusMaster   = 1 << 2
	// StatusCapabilitiesList says the function has a capability list.
	StatusCapabilitiesList = 1 << 4

	// HeaderType's bit 7 says the device has functions besides 0; bits
	// 6:0 are the header layout, 0 an endpoint's, 1 a bridge's.
	HeaderTypeMultiFunction = 0x80
	headerLayout            = 0x7f

	barIO       = 1 << 0
	barType64   = 2 << 1
	barTypeMask = 3 << 1
	barMemMask  = ^uint32(0xf)
)

// Bus reads and writes 32-bit words of configuration space.
type Bus interface {
	Read32(addr uint64) uint32
	Write32(addr uint64, v uint32)
}

// Function is one function on the root bus.
type Function struct {
	bus Bus
	cfg uint64 // its 4 KiB of configuration space in the ECAM window

	Dev, Fn        int
	Vendor, Device uint16
	// Bridge says the header is type 1 (a bridge): it is listed, not
	// looked behind, as QEMU virt's endpoints sit on the root bus.
	Bridge bool
	// BAR and BARSize are each memory BAR's assigned address and size
	// (AssignBARs); 0 for none, for an I/O BAR and for a 64-bit BAR's
	// upper half.
	BAR, BARSize [6]uint64
}

var (
	ErrWindow = errors.New("pci: the BAR window is full")
	ErrCaps   = errors.New("pci: malformed capability list")
)

// Scan lists the functions on the root bus of the ECAM window at ecam.
// Bridges are listed but the buses behind them are not scanned: QEMU
// virt puts its endpoints on the root bus, and nothing here needs more.
func Scan(bus Bus, ecam uint64) []*Function {
	var out []*Function
	for dev := 0; dev < 32; dev++ {
		for fn := 0; fn < 8; fn++ {
			f := &Function{bus: bus, cfg: ecam + uint64(dev)<<15 | uint64(fn)<<12, Dev: dev, Fn: fn}
			id := f.Read32(VendorID)
			if uint16(id) == 0xffff {
				if fn == 0 {
					break // no device: no functions
				}
				continue
			}
			f.Vendor, f.Device = uint16(id), uint16(id>>16)
			hdr := f.Read8(HeaderType)
			f.Bridge = hdr&headerLayout != 0
			out = append(out, f)
			if fn == 0 && hdr&HeaderTypeMultiFunction == 0 {
				break
			}
		}
	}
	return out
}

// RequesterID is the function's requester ID on bus 0, which is its DMA
// stream ID through an identity iommu-map.
func (f *Function) RequesterID() uint32 { return uint32(f.Dev<<3 | f.Fn) }

func (f *Function) String() string {
	return fmt.Sprintf("00:%02x.%d [%04x:%04x]", f.Dev, f.Fn, f.Vendor, f.Device)
}

// Read32 and Write32 reach the function's configuration space at off.
func (f *Function) Read32(off uint64) uint32     { return f.bus.Read32(f.cfg + off&0xffc) }
func (f *Function) Write32(off uint64, v uint32) { f.bus.Write32(f.cfg+off&0xffc, v) }

// Read8 and Read16 read part of a word of configuration space.
func (f *Function) Read8(off uint64) uint8   { return uint8(f.Read32(off) >> (8 * (off & 3))) }
func (f *Function) Read16(off uint64) uint16 { return uint16(f.Read32(off) >> (8 * (off & 2))) }

// Window hands out naturally aligned ranges of a host bridge's memory
// window for BARs.
type Window struct {
	Base, Size uint64
	next       uint64
}

func (w *Window) take(size uint64) (uint64, error) {
	if w.next == 0 {
		w.next = w.Base
	}
	a := (w.next + size - 1) &^ (size - 1)
	if a < w.next || a+size < a || a+size > w.Base+w.Size {
		return 0, fmt.Errorf("%w: %#x bytes do not fit in [%#x, %#x)", ErrWindow, size, w.Base, w.Base+w.Size)
	}
	w.next = a + size
	return a, nil
}

// AssignBARs sizes every memory BAR of an endpoint (6.2.5.1: all ones
// written, the read-back's low zero bits give the size, with memory
// decoding off meanwhile), places it in w and enables memory decoding and
// bus mastering. I/O BARs are left alone: nothing here uses port I/O.
// When w has no room for a BAR, that BAR gets its old value back and the
// function is left with decoding and bus mastering off.
func (f *Function) AssignBARs(w *Window) error {
	if f.Bridge {
		return fmt.Errorf("pci: %v is a bridge", f)
	}
	cmd := uint32(f.Read16(Command))
	// The Status half is written as zeros, which leaves its RW1C bits be.
	f.Write32(Command, cmd&^(CommandMemorySpace|CommandBusMaster))
	for i := 0; i < 6; i++ {
		off := uint64(BAR0 + 4*i)
		orig := f.Read32(off)
		if orig&barIO != 0 {
			continue
		}
		// A 64-bit BAR in the last slot has no upper half: taken as 32-bit.
		wide := orig&barTypeMask == barType64 && i < 5
		var origHi uint32
		f.Write32(off, ^uint32(0))
		mask := uint64(f.Read32(off) & barMemMask)
		if wide {
			origHi = f.Read32(off + 4)
			f.Write32(off+4, ^uint32(0))
			mask |= uint64(f.Read32(off+4)) << 32
		} else if mask != 0 {
			mask |= uint64(0xffff_ffff) << 32
		}
		if mask == 0 {
			f.Write32(off, orig)
			if wide {
				f.Write32(off+4, origHi)
				i++
			}
			continue // not implemented
		}
		// The lowest bit that took the ones is the size, whatever a
		// device answers above it.
		size := mask & -mask
		addr, err := w.take(size)
		if err != nil {
			f.Write32(off, orig)
			if wide {
				f.Write32(off+4, origHi)
			}
			return fmt.Errorf("%v BAR %d: %w", f, i, err)
		}
		f.Write32(off, uint32(addr))
		if wide {
			f.Write32(off+4, uint32(addr>>32))
		}
		f.BAR[i], f.BARSize[i] = addr, size
		if wide {
			i++
		}
	}
	f.Write32(Command, cmd|CommandMemorySpace|CommandBusMaster)
	return nil
}

// Capabilities returns the offsets of the function's capabilities, in
// list order (6.7; a pointer's two low bits are reserved). A pointer into
// the header, or a list longer than the space after it can hold (a loop),
// is ErrCaps.
func (f *Function) Capabilities() ([]uint64, error) {
	if f.Read16(Status)&StatusCapabilitiesList == 0 {
		return nil, nil
	}
	var out []uint64
	p := uint64(f.Read8(CapabilitiesPointer)) &^ 3
	for p != 0 {
		if p < 0x40 || len(out) >= (256-0x40)/4 {
			return nil, fmt.Errorf("%w: %v: pointer %#x after %d", ErrCaps, f, p, len(out))
		}
		out = append(out, p)
		p = uint64(f.Read8(p+1)) &^ 3
	}
	return out, nil
}
