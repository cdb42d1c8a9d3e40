//go:build tamago

package qemuvirt

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/acpi"
	"github.com/bulkhead-hv/bulkhead/board/fdt"
	"github.com/bulkhead-hv/bulkhead/efi"
	"github.com/bulkhead-hv/bulkhead/mmu"
)

// source says where the machine description came from, for the banner.
var source = "device tree"

// Source is where the machine description came from: "device tree",
// "device tree from UEFI" or "ACPI tables from UEFI".
func Source() string { return source }

// uefiMachine describes the machine the firmware handed over: from its
// device tree when it gave one, but for the memory nodes (the memory map
// is the firmware's word on which RAM is free), or else from its ACPI
// tables. The memory the firmware keeps (runtime services, ACPI) is in
// neither's RAM, so the ledger never gives it away.
func uefiMachine() (*Machine, error) {
	n := min(efiMapSize, uint64(len(efiMemoryMap)))
	mm, err := efi.ParseMemoryMap(efiMemoryMap[:n], efiDescSize)
	if err != nil {
		return nil, err
	}
	ram := efi.RAM(mm)
	cmdline := string(efiCmdline[:min(efiCmdlineLen, uint64(len(efiCmdline)))])
	if efiDTB != 0 {
		source = "device tree from UEFI"
		blob, err := findDeviceTree()
		if err != nil {
			return nil, err
		}
		m, err := ParseMachine(blob)
		if err != nil {
			return nil, err
		}
		m.RAM = nil
		for _, r := range ram {
			m.RAM = append(m.RAM, fdt.Range{Addr: r.Start, Size: r.End - r.Start})
		}
		if m.Bootargs == "" {
			m.Bootargs = cmdline
		}
		return m, nil
	}
	if efiRSDP == 0 {
		return nil, errors.New("UEFI: the configuration table has neither ACPI 2.0 tables nor a device tree")
	}
	source = "ACPI tables from UEFI"
	kept := efi.Kept(mm)
	for _, r := range kept {
		if err := hypTables.Map(r.Start, r.Start, r.End-r.Start, mmu.S1Normal(mmu.Read)); err != nil {
			return nil, fmt.Errorf("mapping the firmware's memory %#x-%#x: %w", r.Start, r.End, err)
		}
	}
	tabs, err := acpi.Parse(firmwareMemory(kept), efiRSDP)
	if err != nil {
		return nil, err
	}
	m, err := MachineFromACPI(tabs, ram)
	if err != nil {
		return nil, err
	}
	m.Bootargs = cmdline
	return m, nil
}

// firmwareMemory reads the memory the firmware keeps, where its ACPI
// tables are, and nothing else.
type firmwareMemory []efi.Range

func (f firmwareMemory) Read(pa uint64, b []byte) error {
	n := uint64(len(b))
	for _, r := range f {
		if pa >= r.Start && pa < r.End && n <= r.End-pa {
			copy(b, unsafe.Slice((*byte)(unsafe.Pointer(uintptr(pa))), n))
			return nil
		}
	}
	return fmt.Errorf("not in the memory the UEFI memory map says the firmware keeps")
}
