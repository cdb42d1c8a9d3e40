package acpi

// SPCR is the Serial Port Console Redirection table (Microsoft's SPCR
// specification, revision 2): the console the firmware used.
type SPCR struct {
	Header
	// Interface is the UART's kind (DBG2's Serial Port Subtypes).
	Interface uint8
	// Base is its registers: in memory (AddressSpace 0) or I/O ports (1);
	// AccessSize is the GAS access size: 1 byte, 2 halfword, 3 word, 4
	// doubleword, 0 unspecified.
	Base         uint64
	AddressSpace uint8
	AccessSize   uint8
	// GSIV is its interrupt, when InterruptType says the GIC (bit 3).
	GSIV          uint32
	InterruptType uint8
	Baud          uint8 // the BaudRate code: 3 9600, 4 19200, 6 57600, 7 115200; 0 as is
}

// SPCR interface types (Microsoft DBG2, Table 3 "Serial Port Subtypes").
const (
	SPCR16550       = 0x00 // 16550 fully compatible
	SPCR16550Subset = 0x01 // 16550 subset compatible with DBGP revision 1
	SPCRPL011       = 0x03 // Arm PL011 UART
	SPCRSBSA32      = 0x0d // Arm SBSA 32-bit only (for SBSA 2.x)
	SPCRSBSAGeneric = 0x0e // Arm SBSA Generic UART
	SPCR16550GAS    = 0x12 // 16550 compatible, parameters in the GAS
)

// spcrGIC is InterruptType's bit for an interrupt on the Arm GIC.
const spcrGIC = 1 << 3

const spcrLength = 80

// ParseSPCR reads an SPCR.
func ParseSPCR(b []byte) (*SPCR, error) {
	t, err := parseTable(b, "SPCR", spcrLength, "PCI Segment")
	if err != nil {
		return nil, err
	}
	s := &SPCR{Header: t.Header, Interface: t.u8(36, "Interface Type"), AddressSpace: t.u8(40, "Base Address Address Space ID"),
		AccessSize: t.u8(43, "Base Address Access Size"), Base: t.u64(44, "Base Address"),
		InterruptType: t.u8(52, "Interrupt Type"), GSIV: t.u32(54, "Global System Interrupt"), Baud: t.u8(58, "Baud Rate")}
	if s.AddressSpace > 1 {
		return nil, errf("SPCR", "Base Address Address Space ID", "%d: neither memory (0) nor I/O (1)", s.AddressSpace)
	}
	return s, nil
}

// OnGIC reports whether GSIV names the console's interrupt on the GIC.
func (s *SPCR) OnGIC() bool { return s.InterruptType&spcrGIC != 0 }

// Kind names the UART for the banner, or "" for one Bulkhead has no
// driver for.
func (s *SPCR) Kind() string {
	switch s.Interface {
	case SPCRPL011:
		return "PL011"
	case SPCRSBSA32, SPCRSBSAGeneric:
		return "SBSA generic UART"
	case SPCR16550, SPCR16550Subset, SPCR16550GAS:
		return "16550"
	}
	return ""
}
