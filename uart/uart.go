// Package uart drives the serial consoles a server's firmware may name in
// its SPCR table: Arm's PL011 (and the SBSA generic UART, its subset) and
// the 16550 and its compatibles. It reaches the registers through the
// Bus seam, so the logic runs under go test against register models. The
// hypervisor's console (board/qemuvirt) is one of these, chosen by the
// machine description.
package uart

import (
	"fmt"

	"github.com/bulkhead-hv/bulkhead/acpi"
)

// Bus reads and writes device registers, 8 or 32 bits wide. A console's
// bus must not grow the stack (go:nosplit): it prints panics.
type Bus interface {
	Read8(addr uint64) uint8
	Write8(addr uint64, v uint8)
	Read32(addr uint64) uint32
	Write32(addr uint64, v uint32)
}

// Console is a UART as a console: bytes out, bytes in when there are any.
type Console interface {
	// Init sets the UART up for polled use, keeping the line settings
	// (baud rate) the firmware chose.
	Init()
	// Putc sends a byte once the transmitter has room. It gives up
	// waiting after spinLimit polls: a console that never drains must not
	// hang the machine, it loses output instead.
	Putc(c byte)
	// Getc returns a received byte, if one waits.
	Getc() (byte, bool)
}

// spinLimit bounds the wait for room in the transmitter: far beyond what a
// working UART needs at any baud rate (a byte at 9600 baud is about 1 ms).
const spinLimit = 1 << 20

// ForSPCR returns the console the SPCR describes, on bus.
func ForSPCR(s *acpi.SPCR, bus Bus) (Console, error) {
	if s.AddressSpace != 0 {
		return nil, fmt.Errorf("uart: the SPCR's console is in I/O port space, which Arm has not")
	}
	switch s.Interface {
	case acpi.SPCRPL011, acpi.SPCRSBSA32, acpi.SPCRSBSAGeneric:
		return &PL011{Bus: bus, Base: s.Base}, nil
	case acpi.SPCR16550, acpi.SPCR16550Subset, acpi.SPCR16550GAS:
		return New16550(bus, s.Base, s.AccessSize)
	}
	return nil, fmt.Errorf("uart: the SPCR's console is interface type %#x, which Bulkhead has no driver for (PL011, SBSA generic UART, 16550)", s.Interface)
}
