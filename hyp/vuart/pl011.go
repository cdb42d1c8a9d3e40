package vuart

import (
	"sync"
	"sync/atomic"
)

// PL011 register offsets (Arm DDI 0183, PrimeCell UART (PL011) TRM, 3.2
// "Summary of registers").
const (
	UARTDR    = 0x000
	UARTRSR   = 0x004 // receive status / error clear
	UARTFR    = 0x018
	UARTILPR  = 0x020
	UARTIBRD  = 0x024
	UARTFBRD  = 0x028
	UARTLCR_H = 0x02c
	UARTCR    = 0x030
	UARTIFLS  = 0x034
	UARTIMSC  = 0x038
	UARTRIS   = 0x03c
	UARTMIS   = 0x040
	UARTICR   = 0x044
	UARTDMACR = 0x048
	PeriphID0 = 0xfe0 // PeriphID0-3, then PCellID0-3 at 0xff0
)

// UARTFR bits (DDI 0183, 3.3.3).
const (
	FR_BUSY = 1 << 3
	FR_RXFE = 1 << 4
	FR_TXFF = 1 << 5
	FR_RXFF = 1 << 6
	FR_TXFE = 1 << 7
)

// Interrupt bits of UARTIMSC, UARTRIS, UARTMIS and UARTICR (DDI 0183,
// 3.3.12-3.3.15).
const (
	INT_RX = 1 << 4 // receive
	INT_TX = 1 << 5 // transmit
	INT_RT = 1 << 6 // receive timeout
)

// Where the UART sits in a guest, as on QEMU virt: its registers and its
// interrupt (SPI 1).
const (
	Base  = 0x09000000
	Size  = 0x1000
	IntID = 33
)

// Identification registers, which the AMBA bus matches drivers on:
// PeriphID 0x00141011 (part 0x011, designer Arm 0x41, revision 1) and the
// PrimeCell ID 0xb105f00d (DDI 0183, 3.3.16-3.3.17).
var ids = [8]uint8{0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1}

// txLowWater is the room in the output ring below which the transmit
// interrupt is not raised, like a FIFO filled past its trigger level.
const txLowWater = 64

// PL011 is one guest UART. Output goes to Out, input comes from In. Its
// interrupt line is level-sensitive; Raise is called on every rising edge
// of (RIS & IMSC) != 0, and the line is re-evaluated after each register
// access and each time the rings change from outside (Update).
type PL011 struct {
	mu      sync.Mutex
	Out, In *Ring
	Raise   func()
	// Echo, if set, takes output instead of Out (a guest without a
	// control partition to drain its ring).
	Echo func(b []byte)

	regs  [UARTDMACR/4 + 1]uint32 // the plain read-write registers
	tx    [1]byte                 // the byte being written (under mu: no allocation per byte)
	imsc  uint32
	level bool
	// flags is UARTFR as the last update left it, for readers without
	// the lock (Flags): every change to the rings updates it.
	flags atomic.Uint32
}

// NewPL011 makes a UART with rings of the given sizes.
func NewPL011(out, in int, raise func()) *PL011 {
	u := &PL011{Out: NewRing(out), In: NewRing(in), Raise: raise}
	// Reset values: UARTCR has TXE and RXE set, UARTIFLS half-full
	// triggers (DDI 0183, 3.3).
	u.regs[UARTCR/4] = 0x300
	u.regs[UARTIFLS/4] = 0x12
	u.flags.Store(u.fr())
	return u
}

func (u *PL011) ris() uint32 {
	var r uint32
	if u.In.Len() > 0 {
		r |= INT_RX | INT_RT
	}
	if u.Echo != nil || u.Out.Free() >= txLowWater {
		r |= INT_TX
	}
	return r
}

func (u *PL011) fr() uint32 {
	fr := uint32(0)
	if u.In.Len() == 0 {
		fr |= FR_RXFE
	}
	if u.In.Free() == 0 {
		fr |= FR_RXFF
	}
	// The output ring is the wire, not the FIFO: a byte in it has been
	// sent, so the transmitter is idle (TXFE, not BUSY) until the ring is
	// full. Drivers that wait for BUSY to clear after each console write
	// (with interrupts masked) would otherwise wait for the control
	// partition's next turn, and miss their timer ticks meanwhile.
	if u.Echo == nil && u.Out.Free() == 0 {
		fr |= FR_TXFF | FR_BUSY
	} else {
		fr |= FR_TXFE
	}
	return fr
}

// update re-evaluates the interrupt line and reports a rising edge.
func (u *PL011) update() bool {
	u.flags.Store(u.fr())
	l := u.ris()&u.imsc != 0
	rise := l && !u.level
	u.level = l
	return rise
}

func (u *PL011) raiseIf(rise bool) {
	if rise && u.Raise != nil {
		u.Raise()
	}
}

// Update re-evaluates the interrupt line after the rings changed from the
// control partition's side.
func (u *PL011) Update() { u.change(func() int { return 0 }) }

// Flags reads UARTFR without the UART's lock, which a caller that must
// not wait (the hypervisor's lock-free exits) cannot take: the value the
// last change to the rings left, which is what a locked read would see.
func (u *PL011) Flags() uint32 { return u.flags.Load() }

// Read emulates a register read. Unknown offsets read as zero.
func (u *PL011) Read(off uint64, size int) uint64 {
	u.mu.Lock()
	var v uint32
	switch {
	case off == UARTDR:
		if c, ok := u.In.Take(); ok {
			v = uint32(c)
		}
	case off == UARTFR:
		v = u.fr()
	case off == UARTIMSC:
		v = u.imsc
	case off == UARTRIS:
		v = u.ris()
	case off == UARTMIS:
		v = u.ris() & u.imsc
	case off == UARTRSR || off == UARTICR:
		v = 0 // no receive errors; UARTICR is write-only
	case off >= PeriphID0 && off < PeriphID0+0x20 && off%4 == 0:
		v = uint32(ids[(off-PeriphID0)/4])
	case off < uint64(len(u.regs))*4 && off%4 == 0:
		v = u.regs[off/4]
	}
	rise := u.update()
	u.mu.Unlock()
	u.raiseIf(rise)
	return uint64(v)
}

// Write emulates a register write. Writes to read-only or unknown
// offsets are ignored.
func (u *PL011) Write(off uint64, size int, val uint64) {
	u.mu.Lock()
	switch {
	case off == UARTDR:
		u.tx[0] = byte(val)
		b := u.tx[:]
		if u.Echo != nil {
			u.Echo(b)
		} else {
			// A full FIFO drops the byte, as the hardware does; drivers
			// wait for UARTFR.TXFF to clear first.
			u.Out.Write(b)
		}
	case off == UARTIMSC:
		u.imsc = uint32(val) & 0x7ff
	case off == UARTICR, off == UARTRSR, off == UARTFR, off == UARTRIS, off == UARTMIS:
		// Interrupts here are levels that follow the rings: nothing to
		// clear. UARTRSR writes clear errors there never are.
	case off < uint64(len(u.regs))*4 && off%4 == 0:
		u.regs[off/4] = uint32(val)
	}
	rise := u.update()
	u.mu.Unlock()
	u.raiseIf(rise)
}

// Output queues bytes written by other means than the data register (the
// CONSOLE_WRITE hypercall) and returns how many fit.
func (u *PL011) Output(b []byte) int { return u.change(func() int { return u.Out.Write(b) }) }

// Drain moves waiting output into b for the control partition.
func (u *PL011) Drain(b []byte) int { return u.change(func() int { return u.Out.Read(b) }) }

// Input queues bytes for the guest to receive and returns how many fit.
func (u *PL011) Input(b []byte) int { return u.change(func() int { return u.In.Write(b) }) }

// change moves bytes through the rings from outside the register model,
// then re-evaluates the interrupt line.
func (u *PL011) change(fn func() int) int {
	u.mu.Lock()
	n := fn()
	rise := u.update()
	u.mu.Unlock()
	u.raiseIf(rise)
	return n
}

// Pending is the output waiting to be drained.
func (u *PL011) Pending() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.Out.Len()
}
