// Package efi reads what a UEFI firmware hands an EFI application that
// Bulkhead's boot needs after ExitBootServices (UEFI 2.10): the memory map,
// to learn which RAM is free to own, and the configuration table, to find
// the ACPI 2.0 RSDP or a device tree. It is pure logic over bytes, so it
// runs under go test; the firmware calls that produce the bytes are the
// boot's.
package efi

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// Memory types (UEFI 2.10, 7.2, EFI_MEMORY_TYPE).
const (
	ReservedMemoryType      = 0
	LoaderCode              = 1
	LoaderData              = 2
	BootServicesCode        = 3
	BootServicesData        = 4
	RuntimeServicesCode     = 5
	RuntimeServicesData     = 6
	ConventionalMemory      = 7
	UnusableMemory          = 8
	ACPIReclaimMemory       = 9
	ACPIMemoryNVS           = 10
	MemoryMappedIO          = 11
	MemoryMappedIOPortSpace = 12
	PalCode                 = 13
	PersistentMemory        = 14
)

// MemoryWB is the attribute of memory that can be mapped write-back
// cacheable (EFI_MEMORY_WB): RAM as the hypervisor and its partitions use
// it.
const MemoryWB = 0x8

// PageSize is the unit of NumberOfPages, whatever the CPU's page size.
const PageSize = 4096

// descriptorSize is EFI_MEMORY_DESCRIPTOR's layout as version 1 defines
// it; the firmware's DescriptorSize may be larger (room to grow), never
// smaller.
const descriptorSize = 40

// Descriptor is one entry of the memory map (EFI_MEMORY_DESCRIPTOR).
type Descriptor struct {
	Type          uint32
	PhysicalStart uint64
	NumberOfPages uint64
	Attribute     uint64
}

// End is the first address past the range.
func (d Descriptor) End() uint64 { return d.PhysicalStart + d.NumberOfPages*PageSize }

// Range is a run of physical memory, [Start, End).
type Range struct {
	Start, End uint64
}

// ParseMemoryMap decodes the map GetMemoryMap wrote (size bytes of
// descriptors, each descSize bytes apart). Descriptors must be page
// aligned and must not wrap past the top of the address space or overlap
// one another.
func ParseMemoryMap(b []byte, descSize uint64) ([]Descriptor, error) {
	if descSize < descriptorSize || descSize%8 != 0 {
		return nil, fmt.Errorf("efi: memory map: descriptor size %d (want a multiple of 8, at least %d)", descSize, descriptorSize)
	}
	if uint64(len(b))%descSize != 0 {
		return nil, fmt.Errorf("efi: memory map: %d bytes is not a whole number of %d-byte descriptors", len(b), descSize)
	}
	var out []Descriptor
	for off := uint64(0); off < uint64(len(b)); off += descSize {
		e := b[off:]
		d := Descriptor{Type: binary.LittleEndian.Uint32(e), PhysicalStart: binary.LittleEndian.Uint64(e[8:]),
			NumberOfPages: binary.LittleEndian.Uint64(e[24:]), Attribute: binary.LittleEndian.Uint64(e[32:])}
		i := off / descSize
		if d.PhysicalStart%PageSize != 0 {
			return nil, fmt.Errorf("efi: memory map: descriptor %d starts at %#x, not page aligned", i, d.PhysicalStart)
		}
		if d.NumberOfPages == 0 || d.NumberOfPages > (^uint64(0)-d.PhysicalStart)/PageSize {
			return nil, fmt.Errorf("efi: memory map: descriptor %d: %d pages at %#x is empty or wraps the address space", i, d.NumberOfPages, d.PhysicalStart)
		}
		out = append(out, d)
	}
	sorted := append([]Descriptor(nil), out...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].PhysicalStart < sorted[j].PhysicalStart })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].PhysicalStart < sorted[i-1].End() {
			return nil, fmt.Errorf("efi: memory map: [%#x, %#x) and [%#x, %#x) overlap",
				sorted[i-1].PhysicalStart, sorted[i-1].End(), sorted[i].PhysicalStart, sorted[i].End())
		}
	}
	return out, nil
}

// Usable reports whether memory of type t is free to own once boot
// services have exited: the loader's and boot services' memory and
// conventional memory. Runtime services' memory stays the firmware's (its
// runtime calls use it), ACPI's holds the tables and the firmware's
// non-volatile state, and the rest is not RAM to give away.
func Usable(t uint32) bool {
	switch t {
	case LoaderCode, LoaderData, BootServicesCode, BootServicesData, ConventionalMemory:
		return true
	}
	return false
}

// RAM is the memory the map says is free to own after ExitBootServices
// and can be mapped write-back, sorted and with adjacent runs merged.
func RAM(m []Descriptor) []Range {
	var out []Range
	for _, d := range m {
		if Usable(d.Type) && d.Attribute&MemoryWB != 0 {
			out = append(out, Range{d.PhysicalStart, d.End()})
		}
	}
	return merge(out)
}

// Kept is the memory the hypervisor must never give a partition: the
// runtime services' code and data and the ACPI memory, which the firmware
// and the tables still use.
func Kept(m []Descriptor) []Range {
	var out []Range
	for _, d := range m {
		switch d.Type {
		case RuntimeServicesCode, RuntimeServicesData, ACPIReclaimMemory, ACPIMemoryNVS:
			out = append(out, Range{d.PhysicalStart, d.End()})
		}
	}
	return merge(out)
}

func merge(rs []Range) []Range {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Start < rs[j].Start })
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].End == r.Start {
			out[n-1].End = r.End
			continue
		}
		out = append(out, r)
	}
	return out
}
