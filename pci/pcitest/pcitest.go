// Package pcitest plays PCI functions' configuration space, as an ECAM
// window, for tests of the drivers that use package pci.
package pcitest

// Func is one function's configuration space: Regs as its words read,
// with memory BARs of BARSize bytes (0 for none; Wide marks a 64-bit BAR,
// which takes the next slot too) that answer sizing as hardware does.
type Func struct {
	Dev, Fn int
	Regs    [1024]uint32
	BARSize [6]uint64
	Wide    [6]bool
}

// Space is an ECAM window at Base holding Funcs; everything else reads
// all ones, as an absent function does.
type Space struct {
	Base  uint64
	Funcs []*Func
	// SizedDecoding counts BARs written with all ones while the function
	// decoded memory, which sizing must not do (PCI Local Bus 3.0,
	// 6.2.5.1): the device would answer at the probe's address.
	SizedDecoding int
}

// NewFunc returns a function with the vendor and device IDs, a type 0
// header and the capability list bit and pointer clear.
func NewFunc(dev, fn int, vendor, device uint16) *Func {
	f := &Func{Dev: dev, Fn: fn}
	f.Regs[0] = uint32(device)<<16 | uint32(vendor)
	return f
}

// SetBAR gives BAR i size bytes (a power of two), 64-bit if wide.
func (f *Func) SetBAR(i int, size uint64, wide bool) {
	f.BARSize[i], f.Wide[i] = size, wide
	if wide {
		f.Regs[4+i] = 2 << 1
	}
}

func (s *Space) find(addr uint64) (*Func, int) {
	off := addr - s.Base
	for _, f := range s.Funcs {
		if off>>15 == uint64(f.Dev) && off>>12&7 == uint64(f.Fn) && off < 1<<20 {
			return f, int(off & 0xfff / 4)
		}
	}
	return nil, 0
}

func (s *Space) Read32(addr uint64) uint32 {
	f, w := s.find(addr)
	if f == nil {
		return 0xffff_ffff
	}
	return f.Regs[w]
}

func (s *Space) Write32(addr uint64, v uint32) {
	f, w := s.find(addr)
	if f == nil {
		return
	}
	if w >= 4 && w < 10 {
		i := w - 4
		if v == ^uint32(0) && f.Regs[1]&(1<<1) != 0 {
			s.SizedDecoding++
		}
		switch {
		case f.BARSize[i] != 0:
			// The low bits read back the size's alignment; the type bits
			// stay.
			mask := ^(f.BARSize[i] - 1)
			f.Regs[w] = v&uint32(mask)&^0xf | f.Regs[w]&0xf
			return
		case i > 0 && f.Wide[i-1]:
			mask := ^(f.BARSize[i-1] - 1)
			f.Regs[w] = v & uint32(mask>>32)
			return
		default:
			return // not implemented: reads zero
		}
	}
	if w == 1 {
		// Status bits are cleared by writing 1s; keep them as they are.
		f.Regs[w] = f.Regs[w]&0xffff_0000 | v&0xffff
		return
	}
	f.Regs[w] = v
}

// Cap appends a capability of the given ID and body words at offset off
// in the function's list.
func (f *Func) Cap(off int, id uint8, body ...uint32) {
	f.Regs[1] |= 1 << (16 + 4)
	// Link it at the end of the list.
	p := &f.Regs[0x34/4]
	for next := int(*p & 0xff); next != 0; next = int(f.Regs[next/4] >> 8 & 0xff) {
		p = &f.Regs[next/4]
		if next == off {
			break
		}
	}
	if p == &f.Regs[0x34/4] {
		*p = *p&^0xff | uint32(off)
	} else {
		*p = *p&^0xff00 | uint32(off)<<8
	}
	f.Regs[off/4] = f.Regs[off/4]&0xffff0000 | uint32(id)
	for i, b := range body {
		if i == 0 {
			f.Regs[off/4] |= b << 16 // the bytes after ID and next
			continue
		}
		f.Regs[off/4+i] = b
	}
}
