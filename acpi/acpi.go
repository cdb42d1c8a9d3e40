// Package acpi reads the ACPI tables a UEFI firmware hands over on an
// Arm server (ACPI 6.5): the RSDP and XSDT that lead to the others, the
// FADT (the PSCI conduit), MADT (CPUs and the GIC), GTDT (the timers'
// interrupts), SPCR (the console), MCFG (PCIe ECAM) and IORT (SMMUs and
// the IDs devices use).
//
// The tables are outside input: every table's length is checked against
// what it must hold and against Limit, its checksum is checked, and every
// offset and count inside it is checked against its length before use.
// A table that fails is refused with an error naming the table and the
// field; nothing reads past a table's end. Physical memory is reached
// only through the Memory seam, so all of it runs under go test.
package acpi

import (
	"encoding/binary"
	"fmt"
)

// Memory reads physical memory: the firmware's tables, wherever the RSDP
// and XSDT say they are. It fails for addresses it does not hold.
type Memory interface {
	Read(pa uint64, b []byte) error
}

// Limit bounds one table's length: QEMU's and servers' largest tables
// (DSDT aside, which is not read) are a few KiB.
const Limit = 1 << 20

// HeaderSize is the system description table header's (5.2.6).
const HeaderSize = 36

// Error is a table refused: which table, which field, why.
type Error struct {
	Table, Field, Why string
}

func (e *Error) Error() string {
	return fmt.Sprintf("acpi: %s: %s: %s", e.Table, e.Field, e.Why)
}

func errf(table, field, format string, args ...any) error {
	return &Error{Table: table, Field: field, Why: fmt.Sprintf(format, args...)}
}

// Header is a table's system description header (5.2.6).
type Header struct {
	Signature  string
	Length     uint32
	Revision   uint8
	OEMID      string
	OEMTableID string
}

// table is one table's bytes, with bounds-checked little-endian reads
// for the parsers: a read past the end records the field and returns 0.
type table struct {
	Header
	b   []byte
	err error
}

// need checks that the table holds n bytes, for field.
func (t *table) need(n int, field string) bool {
	if t.err == nil && n > len(t.b) {
		t.err = errf(t.Signature, field, "the table is %d bytes, too short to hold it (%d)", len(t.b), n)
	}
	return t.err == nil
}

func (t *table) u8(off int, field string) uint8 {
	if !t.need(off+1, field) {
		return 0
	}
	return t.b[off]
}

func (t *table) u16(off int, field string) uint16 {
	if !t.need(off+2, field) {
		return 0
	}
	return binary.LittleEndian.Uint16(t.b[off:])
}

func (t *table) u32(off int, field string) uint32 {
	if !t.need(off+4, field) {
		return 0
	}
	return binary.LittleEndian.Uint32(t.b[off:])
}

func (t *table) u64(off int, field string) uint64 {
	if !t.need(off+8, field) {
		return 0
	}
	return binary.LittleEndian.Uint64(t.b[off:])
}

func sum(b []byte) byte {
	var s byte
	for _, x := range b {
		s += x
	}
	return s
}

// parseTable checks a table's header, length and checksum and returns
// it, for the parsers below; want is the signature it must have, and min
// the length its fixed part takes, through field.
func parseTable(b []byte, want string, min int, field string) (*table, error) {
	if len(b) < HeaderSize {
		return nil, errf(want, "header", "%d bytes, fewer than a header's %d", len(b), HeaderSize)
	}
	h := Header{Signature: string(b[0:4]), Length: binary.LittleEndian.Uint32(b[4:]), Revision: b[8],
		OEMID: string(b[10:16]), OEMTableID: string(b[16:24])}
	if h.Signature != want {
		return nil, errf(want, "Signature", "%q", h.Signature)
	}
	if h.Length < HeaderSize || int64(h.Length) > int64(len(b)) {
		return nil, errf(want, "Length", "%d, but the table has %d bytes (at least %d)", h.Length, len(b), HeaderSize)
	}
	b = b[:h.Length]
	if s := sum(b); s != 0 {
		return nil, errf(want, "Checksum", "the bytes sum to %#x, not 0", s)
	}
	t := &table{Header: h, b: b}
	if !t.need(min, field) {
		return nil, t.err
	}
	return t, nil
}

// readTable reads the table at pa: its header, then as many bytes as its
// Length says, within Limit.
func readTable(mem Memory, pa uint64, name string) ([]byte, error) {
	hdr := make([]byte, HeaderSize)
	if err := mem.Read(pa, hdr); err != nil {
		return nil, errf(name, "address", "%#x: %v", pa, err)
	}
	n := binary.LittleEndian.Uint32(hdr[4:])
	if n < HeaderSize || n > Limit {
		return nil, errf(name, "Length", "%d at %#x: want %d to %d", n, pa, HeaderSize, Limit)
	}
	b := make([]byte, n)
	if err := mem.Read(pa, b); err != nil {
		return nil, errf(name, "address", "%#x+%d: %v", pa, n, err)
	}
	return b, nil
}

// Tables are what the firmware describes, as this package reads it. A
// table the firmware does not provide is nil (the FADT and MADT must be
// there).
type Tables struct {
	OEMID string
	FADT  *FADT
	MADT  *MADT
	GTDT  *GTDT
	SPCR  *SPCR
	MCFG  *MCFG
	IORT  *IORT
	// Others lists the signatures of the XSDT's other tables, which are
	// not read.
	Others []string
}

// RSDP revision 2 and later carry the XSDT (5.2.5.3).
const rsdpSize = 36

// Parse reads the tables from the RSDP at rsdp (the EFI configuration
// table's ACPI 2.0 entry).
func Parse(mem Memory, rsdp uint64) (*Tables, error) {
	r := make([]byte, rsdpSize)
	if err := mem.Read(rsdp, r); err != nil {
		return nil, errf("RSDP", "address", "%#x: %v", rsdp, err)
	}
	if string(r[:8]) != "RSD PTR " {
		return nil, errf("RSDP", "Signature", "%q", r[:8])
	}
	if sum(r[:20]) != 0 {
		return nil, errf("RSDP", "Checksum", "the first 20 bytes sum to %#x, not 0", sum(r[:20]))
	}
	if r[15] < 2 {
		return nil, errf("RSDP", "Revision", "%d: an ACPI 1.0 RSDP has no XSDT", r[15])
	}
	if n := binary.LittleEndian.Uint32(r[20:]); n != rsdpSize {
		return nil, errf("RSDP", "Length", "%d, want %d", n, rsdpSize)
	}
	if sum(r) != 0 {
		return nil, errf("RSDP", "Extended Checksum", "the 36 bytes sum to %#x, not 0", sum(r))
	}
	b, err := readTable(mem, binary.LittleEndian.Uint64(r[24:]), "XSDT")
	if err != nil {
		return nil, err
	}
	x, err := parseTable(b, "XSDT", HeaderSize, "header")
	if err != nil {
		return nil, err
	}
	if (len(x.b)-HeaderSize)%8 != 0 {
		return nil, errf("XSDT", "Entry", "%d bytes of entries, not a whole number of 8-byte addresses", len(x.b)-HeaderSize)
	}
	out := &Tables{OEMID: x.OEMID}
	for off := HeaderSize; off < len(x.b); off += 8 {
		pa := binary.LittleEndian.Uint64(x.b[off:])
		sig := make([]byte, 4)
		if err := mem.Read(pa, sig); err != nil {
			return nil, errf("XSDT", fmt.Sprintf("Entry %d", (off-HeaderSize)/8), "%#x: %v", pa, err)
		}
		name := string(sig)
		if !read(name) {
			out.Others = append(out.Others, name)
			continue
		}
		tb, err := readTable(mem, pa, name)
		if err != nil {
			return nil, err
		}
		if err := out.parse(name, tb); err != nil {
			return nil, err
		}
	}
	if out.FADT == nil {
		return nil, errf("XSDT", "FACP", "no FADT: the PSCI conduit is unknown")
	}
	if out.MADT == nil {
		return nil, errf("XSDT", "APIC", "no MADT: the CPUs and the GIC are unknown")
	}
	return out, nil
}

// read reports whether Tables holds the tables with this signature.
func read(sig string) bool {
	switch sig {
	case "FACP", "APIC", "GTDT", "SPCR", "MCFG", "IORT":
		return true
	}
	return false
}

// parse reads a table Tables holds. A second table of one kind is
// refused: which one to believe is not this package's guess. (A switch,
// not a map: the hypervisor parses its tables before package
// initialization has run.)
func (t *Tables) parse(sig string, b []byte) error {
	switch sig {
	case "FACP":
		return once(&t.FADT, b, ParseFADT)
	case "APIC":
		return once(&t.MADT, b, ParseMADT)
	case "GTDT":
		return once(&t.GTDT, b, ParseGTDT)
	case "SPCR":
		return once(&t.SPCR, b, ParseSPCR)
	case "MCFG":
		return once(&t.MCFG, b, ParseMCFG)
	case "IORT":
		return once(&t.IORT, b, ParseIORT)
	}
	return nil
}

func once[T any](dst **T, b []byte, parse func([]byte) (*T, error)) error {
	v, err := parse(b)
	if err != nil {
		return err
	}
	if *dst != nil {
		return errf(string(b[:4]), "Signature", "a second %s table", b[:4])
	}
	*dst = v
	return nil
}
