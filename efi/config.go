package efi

import (
	"encoding/binary"
	"fmt"
)

// GUID is an EFI_GUID in its in-memory layout: Data1-3 little-endian,
// Data4 as bytes.
type GUID [16]byte

// MakeGUID builds the GUID the specification writes as
// {d1-d2-d3-d4[0]d4[1]-d4[2..7]}.
func MakeGUID(d1 uint32, d2, d3 uint16, d4 [8]byte) GUID {
	var g GUID
	binary.LittleEndian.PutUint32(g[0:], d1)
	binary.LittleEndian.PutUint16(g[4:], d2)
	binary.LittleEndian.PutUint16(g[6:], d3)
	copy(g[8:], d4[:])
	return g
}

// Configuration table GUIDs (UEFI 2.10, 4.6): the ACPI 2.0 RSDP, and a
// flattened device tree (the EFI DTB table GUID, which AAVMF installs
// when ACPI is off).
var (
	ACPI20TableGUID = MakeGUID(0x8868e871, 0xe4f1, 0x11d3, [8]byte{0xbc, 0x22, 0x00, 0x80, 0xc7, 0x3c, 0x88, 0x81})
	DTBTableGUID    = MakeGUID(0xb1b621d5, 0xf19c, 0x41a5, [8]byte{0x83, 0x0b, 0xd9, 0x15, 0x2c, 0x69, 0xaa, 0xe0})
)

// configEntrySize is EFI_CONFIGURATION_TABLE's: a GUID and a pointer.
const configEntrySize = 24

// FindTable returns the address the configuration table (n entries, as
// the system table's NumberOfTableEntries says, in b) gives for guid.
func FindTable(b []byte, n uint64, guid GUID) (uint64, error) {
	if n > uint64(len(b))/configEntrySize {
		return 0, fmt.Errorf("efi: configuration table: %d entries do not fit in %d bytes", n, len(b))
	}
	for i := uint64(0); i < n; i++ {
		e := b[i*configEntrySize:]
		if GUID(e[:16]) == guid {
			return binary.LittleEndian.Uint64(e[16:]), nil
		}
	}
	return 0, fmt.Errorf("efi: configuration table: no %x among %d entries", guid, n)
}
