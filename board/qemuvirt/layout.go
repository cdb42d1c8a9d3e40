// Package qemuvirt runs Bulkhead's EL2 kernel on QEMU's "virt" machine
// (virtualization=on, GICv3). It implements TamaGo's runtime hooks
// (runtime/goos), sets up the hypervisor's own EL2 stage 1 map and learns
// the machine from the device tree QEMU passes.
//
// Files without a build tag hold the pure logic (memory layout, page table
// construction, device tree interpretation) and run under go test on the
// host; the tamago-tagged files touch the hardware.
package qemuvirt

import (
	"fmt"

	"github.com/bulkhead-hv/bulkhead/board/fdt"
	"github.com/bulkhead-hv/bulkhead/mmu"
)

// The hypervisor's own RAM: the first HypRAMSize bytes of the machine's RAM,
// which QEMU's virt board always places at 0x40000000. The rest of RAM is
// not the hypervisor's: later it goes to the control partition.
const (
	RAMBase    = 0x40000000
	HypRAMSize = 64 << 20
	// BootDataSize is the window below the image where QEMU puts the
	// device tree for an ELF kernel; the image is linked above it.
	BootDataSize = 2 << 20
	TextBase     = RAMBase + BootDataSize

	// GuardSize is one unmapped page below each stack.
	GuardSize = mmu.PageSize
	// ExcStackSize is the EL2 exception stack (SP_EL2), at the very top.
	ExcStackSize = 64 << 10
	// BootStackSize is the runtime's g0 stack carved by TamaGo's rt0 from
	// the boot stack (sys_tamago_arm64.s: 64 KiB).
	BootStackSize = 64 << 10
	// StackOffset is goos.RamStackOffset: the boot stack starts this far
	// below the end of the hypervisor's RAM, above it sit the exception
	// stack's guard page and the exception stack.
	StackOffset = ExcStackSize + GuardSize
)

// Image is where the linker put the hypervisor's sections: runtime.text,
// runtime.rodata (the page-aligned start of the read-only segment, -R
// 0x1000; the text segment's last page, padding included, stays text),
// runtime.noptrdata and runtime.end.
type Image struct {
	Text, ROData, NoPtrData, End uint64
}

// Region is one range of the hypervisor's address space.
type Region struct {
	Name   string
	Start  uint64
	End    uint64
	Perm   mmu.Perm
	Device bool
	// Unmapped regions are listed to document them (guard pages).
	Unmapped bool
}

func (r Region) String() string {
	kind := "normal"
	switch {
	case r.Unmapped:
		kind = "unmapped"
	case r.Device:
		kind = "device"
	}
	return fmt.Sprintf("0x%012x-0x%012x %-4s %-8s %s", r.Start, r.End, r.Perm, kind, r.Name)
}

func pageUp(v uint64) uint64   { return (v + mmu.PageSize - 1) &^ (mmu.PageSize - 1) }
func pageDown(v uint64) uint64 { return v &^ (mmu.PageSize - 1) }

// LayoutError is a layout that cannot be mapped with W^X.
type LayoutError struct{ What string }

func (e *LayoutError) Error() string { return "qemuvirt: memory layout: " + e.What }

var (
	errTextBase  = &LayoutError{"text does not start at the top of the boot data window"}
	errDataAlign = &LayoutError{"text, read-only data and writable data do not start on separate pages (link with -R 0x1000)"}
	errTooBig    = &LayoutError{"image and stacks do not fit in the hypervisor's RAM"}
)

// Regions is the hypervisor's address space, low to high.
type Regions [9]Region

// Layout lists the hypervisor's own regions. It allocates nothing, so it
// can run before the Go heap exists.
func Layout(img Image) (Regions, error) {
	top := uint64(RAMBase + HypRAMSize)
	excLo := top - ExcStackSize
	bootHi := top - StackOffset
	bootLo := bootHi - BootStackSize
	heapHi := bootLo - GuardSize
	if img.Text != TextBase {
		return Regions{}, errTextBase
	}
	// The data segment starts on a page (the linker's -R 0x1000) with a
	// few small sections before runtime.noptrdata.
	dataLo := pageDown(img.NoPtrData)
	roLo := pageDown(img.ROData)
	if roLo <= img.Text || dataLo < roLo {
		return Regions{}, errDataAlign
	}
	if pageUp(img.End) >= heapHi {
		return Regions{}, errTooBig
	}
	return Regions{
		{Name: "boot data (device tree)", Start: RAMBase, End: TextBase, Perm: mmu.Read},
		{Name: "text", Start: img.Text, End: roLo, Perm: mmu.Read | mmu.Exec},
		{Name: "read-only data", Start: roLo, End: dataLo, Perm: mmu.Read},
		{Name: "data, bss", Start: dataLo, End: pageUp(img.End), Perm: mmu.Read | mmu.Write},
		{Name: "heap", Start: pageUp(img.End), End: heapHi, Perm: mmu.Read | mmu.Write},
		{Name: "guard", Start: heapHi, End: bootLo, Unmapped: true},
		{Name: "boot stack", Start: bootLo, End: bootHi, Perm: mmu.Read | mmu.Write},
		{Name: "guard", Start: bootHi, End: excLo, Unmapped: true},
		{Name: "exception stack", Start: excLo, End: top, Perm: mmu.Read | mmu.Write},
	}, nil
}

// MapHypervisor maps the hypervisor's own RAM into t with W^X permissions.
// Guard pages and everything outside the listed regions (including the
// null page) stay unmapped.
func MapHypervisor(t *mmu.Tables, img Image) error {
	regs, err := Layout(img)
	if err != nil {
		return err
	}
	for i := range regs {
		if err := mapRegion(t, regs[i]); err != nil {
			return err
		}
	}
	return nil
}

func mapRegion(t *mmu.Tables, r Region) error {
	if r.Unmapped || r.End <= r.Start {
		return nil
	}
	attrs := mmu.S1Normal(r.Perm)
	if r.Device {
		attrs = mmu.S1Device()
	}
	return t.Map(r.Start, r.Start, r.End-r.Start, attrs)
}

// MapDevice maps an MMIO range as Device-nGnRE, read/write, execute-never.
func MapDevice(t *mmu.Tables, start, size uint64) error {
	lo, hi := pageDown(start), pageUp(start+size)
	return t.Map(lo, lo, hi-lo, mmu.S1Device())
}

// MapOtherRAM maps the part of RAM range r outside the hypervisor's own
// RAM as normal read/write, execute-never memory.
func MapOtherRAM(t *mmu.Tables, r fdt.Range) error {
	hypLo, hypHi := uint64(RAMBase), uint64(RAMBase+HypRAMSize)
	lo, hi := pageUp(r.Addr), pageDown(r.End())
	attrs := mmu.S1Normal(mmu.Read | mmu.Write)
	if lo < hypLo {
		end := hi
		if end > hypLo {
			end = hypLo
		}
		if err := t.Map(lo, lo, end-lo, attrs); err != nil {
			return err
		}
	}
	if hi > hypHi {
		start := lo
		if start < hypHi {
			start = hypHi
		}
		if err := t.Map(start, start, hi-start, attrs); err != nil {
			return err
		}
	}
	return nil
}
