package acpi

// MCFG lists the PCIe ECAM regions (PCI Firmware Specification 3.2,
// 4.1.2 "MCFG Table Description").
type MCFG struct {
	Header
	ECAM []ECAM
}

// ECAM is one PCI segment group's configuration space: 1 MiB per bus,
// from StartBus to EndBus, at Base.
type ECAM struct {
	Base             uint64
	Segment          uint16
	StartBus, EndBus uint8
}

const (
	mcfgEntries   = HeaderSize + 8 // after 8 reserved bytes
	mcfgEntrySize = 16
)

// ParseMCFG reads an MCFG.
func ParseMCFG(b []byte) (*MCFG, error) {
	t, err := parseTable(b, "MCFG", mcfgEntries, "Reserved")
	if err != nil {
		return nil, err
	}
	if (len(t.b)-mcfgEntries)%mcfgEntrySize != 0 {
		return nil, errf("MCFG", "Configuration Space Base Address Allocation", "%d bytes of entries, not a whole number of %d", len(t.b)-mcfgEntries, mcfgEntrySize)
	}
	m := &MCFG{Header: t.Header}
	for off := mcfgEntries; off < len(t.b); off += mcfgEntrySize {
		e := ECAM{Base: t.u64(off, "Base Address"), Segment: t.u16(off+8, "PCI Segment Group Number"),
			StartBus: t.u8(off+10, "Start Bus Number"), EndBus: t.u8(off+11, "End Bus Number")}
		if e.EndBus < e.StartBus {
			return nil, errf("MCFG", "End Bus Number", "%d is below the start bus %d", e.EndBus, e.StartBus)
		}
		m.ECAM = append(m.ECAM, e)
	}
	return m, nil
}

// Size is the bytes of configuration space the region spans.
func (e ECAM) Size() uint64 { return (uint64(e.EndBus) - uint64(e.StartBus) + 1) << 20 }
