package uart

import "fmt"

// 16550 registers, by index (the register number; its address is
// Base + index << shift) and bits (TI PC16550D data sheet, "Registers").
const (
	RBR = 0 // receiver buffer (read)
	THR = 0 // transmitter holding register (write)
	IER = 1 // interrupt enable
	FCR = 2 // FIFO control (write)
	LCR = 3 // line control
	MCR = 4 // modem control
	LSR = 5 // line status

	LSR_DR    = 1 << 0 // data ready
	LSR_THRE  = 1 << 5 // transmitter holding register empty
	LCR_WLS8  = 3      // 8 data bits, 1 stop bit, no parity
	LCR_DLAB  = 1 << 7 // divisor latch access
	FCR_FIFOE = 1 << 0 // FIFOs on
	FCR_RFR   = 1 << 1 // receive FIFO reset
	FCR_TFR   = 1 << 2 // transmit FIFO reset
	MCR_DTR   = 1 << 0
	MCR_RTS   = 1 << 1
)

// NS16550 is a 16550-compatible UART: byte-wide registers one byte apart,
// or (as on Arm servers, Graviton's among them) 32-bit registers four
// bytes apart.
type NS16550 struct {
	bus   Bus
	base  uint64
	shift uint // log2 of the distance between registers
	wide  bool // 32-bit accesses
}

// New16550 returns the 16550 at base whose registers the SPCR's Generic
// Address Structure access size describes: 1 (byte) or 0 (unspecified)
// for byte registers, 3 (doubleword) for 32-bit registers 4 bytes apart.
func New16550(bus Bus, base uint64, accessSize uint8) (*NS16550, error) {
	switch accessSize {
	case 0, 1:
		return &NS16550{bus: bus, base: base}, nil
	case 3:
		return &NS16550{bus: bus, base: base, shift: 2, wide: true}, nil
	}
	return nil, fmt.Errorf("uart: a 16550 with access size %d (want 1, byte, or 3, 32-bit)", accessSize)
}

//go:nosplit
func (u *NS16550) r(reg uint64) uint8 {
	a := u.base + reg<<u.shift
	if u.wide {
		return uint8(u.bus.Read32(a))
	}
	return u.bus.Read8(a)
}

//go:nosplit
func (u *NS16550) w(reg uint64, v uint8) {
	a := u.base + reg<<u.shift
	if u.wide {
		u.bus.Write32(a, uint32(v))
		return
	}
	u.bus.Write8(a, v)
}

// Init masks the UART's interrupts, sets 8N1 with the divisor latch off
// (the divisor, and so the baud rate, stays the firmware's), resets and
// enables the FIFOs and raises DTR and RTS.
func (u *NS16550) Init() {
	u.w(IER, 0)
	u.w(LCR, LCR_WLS8)
	u.w(FCR, FCR_FIFOE|FCR_RFR|FCR_TFR)
	u.w(MCR, MCR_DTR|MCR_RTS)
}

// Putc is nosplit, as PL011.Putc is.
//
//go:nosplit
func (u *NS16550) Putc(c byte) {
	for i := 0; i < spinLimit && u.r(LSR)&LSR_THRE == 0; i++ {
	}
	u.w(THR, c)
}

func (u *NS16550) Getc() (byte, bool) {
	if u.r(LSR)&LSR_DR == 0 {
		return 0, false
	}
	return u.r(RBR), true
}
