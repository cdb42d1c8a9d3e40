package uart

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/acpi"
)

// model16550 plays a 16550 whose registers are 1 << shift bytes apart and
// take accesses of one width only: after each byte written to THR the
// transmitter is busy (LSR.THRE clear) for busy polls; received bytes wait
// in rx.
type model16550 struct {
	t        *testing.T
	base     uint64
	shift    uint
	wide     bool
	busy     int
	left     int // polls until THRE sets again
	sent     []byte
	overrun  int // bytes written while THRE was clear
	rx       []byte
	regs     [8]uint8
	dll, dlm uint8 // the divisor latch, the firmware's
	polls    int
	stuck    bool // THRE never sets
}

func (m *model16550) reg(addr uint64, wide bool) uint64 {
	if wide != m.wide {
		m.t.Fatalf("access of the wrong width at %#x (32-bit: %v)", addr, wide)
	}
	off := addr - m.base
	if off%(1<<m.shift) != 0 || off>>m.shift > 7 {
		m.t.Fatalf("access at %#x is no register's", addr)
	}
	return off >> m.shift
}

func (m *model16550) read(reg uint64) uint8 {
	dlab := m.regs[LCR]&LCR_DLAB != 0
	switch {
	case reg == LSR:
		m.polls++
		v := uint8(0)
		if len(m.rx) > 0 {
			v |= LSR_DR
		}
		if !m.stuck && m.left == 0 {
			v |= LSR_THRE
		} else if m.left > 0 {
			m.left--
		}
		return v
	case reg == RBR && !dlab:
		if len(m.rx) == 0 {
			return 0
		}
		c := m.rx[0]
		m.rx = m.rx[1:]
		return c
	}
	return m.regs[reg]
}

func (m *model16550) write(reg uint64, v uint8) {
	dlab := m.regs[LCR]&LCR_DLAB != 0
	switch {
	case reg == THR && dlab:
		m.dll = v
	case reg == IER && dlab:
		m.dlm = v
	case reg == THR:
		if m.stuck || m.left > 0 {
			m.overrun++
		}
		m.sent = append(m.sent, v)
		m.left = m.busy
	default:
		m.regs[reg] = v
	}
}

func (m *model16550) Read8(a uint64) uint8     { return m.read(m.reg(a, false)) }
func (m *model16550) Write8(a uint64, v uint8) { m.write(m.reg(a, false), v) }
func (m *model16550) Read32(a uint64) uint32   { return uint32(m.read(m.reg(a, true))) }
func (m *model16550) Write32(a uint64, v uint32) {
	if v > 0xff {
		m.t.Fatalf("a 32-bit write of %#x to an 8-bit register", v)
	}
	m.write(m.reg(a, true), uint8(v))
}

// A 16550 with 32-bit registers four bytes apart, as a server's SPCR
// describes it: Init leaves the firmware's divisor alone and sets 8N1 with
// FIFOs; every byte goes out only when THRE says there is room, in order;
// received bytes come back in order, then none.
func Test16550(t *testing.T) {
	for _, c := range []struct {
		name   string
		access uint8
		shift  uint
		wide   bool
	}{{"32-bit registers", 3, 2, true}, {"byte registers", 1, 0, false}} {
		t.Run(c.name, func(t *testing.T) {
			m := &model16550{t: t, base: 0x90A0_0000, shift: c.shift, wide: c.wide, busy: 3, dll: 0x1a, rx: []byte("ok")}
			u, err := New16550(m, m.base, c.access)
			require.NoError(t, err)
			u.Init()
			assert.Equal(t, uint8(0x1a), m.dll, "the firmware's divisor is kept")
			assert.Equal(t, uint8(LCR_WLS8), m.regs[LCR], "8N1, divisor latch off")
			assert.Equal(t, uint8(0), m.regs[IER], "polled: no interrupts")
			assert.Equal(t, uint8(FCR_FIFOE|FCR_RFR|FCR_TFR), m.regs[FCR])
			assert.Equal(t, uint8(MCR_DTR|MCR_RTS), m.regs[MCR])
			for _, b := range []byte("hello\r\n") {
				u.Putc(b)
			}
			assert.Equal(t, "hello\r\n", string(m.sent))
			assert.Zero(t, m.overrun, "no byte written while the transmitter was busy")
			for _, want := range []byte("ok") {
				got, ok := u.Getc()
				assert.True(t, ok)
				assert.Equal(t, want, got)
			}
			_, ok := u.Getc()
			assert.False(t, ok, "nothing more")
		})
	}
	_, err := New16550(&model16550{t: t}, 0, 2)
	assert.ErrorContains(t, err, "access size 2")
}

// A transmitter that never drains costs a bounded wait per byte, not the
// machine: the byte is written and lost.
func TestStuckTransmitter(t *testing.T) {
	m := &model16550{t: t, base: 0x1000, shift: 2, wide: true, stuck: true}
	u, _ := New16550(m, m.base, 3)
	u.Putc('x')
	assert.Equal(t, spinLimit, m.polls)
	assert.Equal(t, "x", string(m.sent))
}

// modelPL011 plays a PL011: TXFF for busy polls after each byte; rx waits.
type modelPL011 struct {
	t          *testing.T
	base       uint64
	busy, left int
	sent       []byte
	overrun    int
	rx         []byte
	cr, imsc   uint32
}

func (m *modelPL011) Read8(a uint64) uint8     { m.t.Fatalf("a byte read at %#x", a); return 0 }
func (m *modelPL011) Write8(a uint64, v uint8) { m.t.Fatalf("a byte write at %#x", a) }
func (m *modelPL011) Read32(a uint64) uint32 {
	switch a - m.base {
	case UARTFR:
		var v uint32
		if len(m.rx) == 0 {
			v |= FR_RXFE
		}
		if m.left > 0 {
			m.left--
			v |= FR_TXFF
		}
		return v
	case UARTDR:
		c := m.rx[0]
		m.rx = m.rx[1:]
		return uint32(c)
	case UARTCR:
		return m.cr
	}
	m.t.Fatalf("read of %#x", a)
	return 0
}

func (m *modelPL011) Write32(a uint64, v uint32) {
	switch a - m.base {
	case UARTDR:
		if m.left > 0 {
			m.overrun++
		}
		m.sent = append(m.sent, byte(v))
		m.left = m.busy
	case UARTCR:
		m.cr = v
	case UARTIMSC:
		m.imsc = v
	default:
		m.t.Fatalf("write of %#x", a)
	}
}

func TestPL011(t *testing.T) {
	m := &modelPL011{t: t, base: 0x0900_0000, busy: 2, rx: []byte("y"), imsc: 0x7ff}
	u := &PL011{Bus: m, Base: m.base}
	u.Init()
	assert.Equal(t, uint32(CR_UARTEN|CR_TXE|CR_RXE), m.cr)
	assert.Zero(t, m.imsc, "polled: interrupts masked")
	for _, b := range []byte("ready") {
		u.Putc(b)
	}
	assert.Equal(t, "ready", string(m.sent))
	assert.Zero(t, m.overrun)
	c, ok := u.Getc()
	assert.True(t, ok)
	assert.Equal(t, byte('y'), c)
	_, ok = u.Getc()
	assert.False(t, ok)
}

func spcr(t *testing.T, path string) *acpi.SPCR {
	b, err := os.ReadFile("../acpi/testdata/" + path)
	require.NoError(t, err)
	s, err := acpi.ParseSPCR(b)
	require.NoError(t, err)
	return s
}

// The SPCR picks the driver: QEMU virt's PL011, a server's 16550 with
// 32-bit registers; a console in I/O space, or of a kind with no driver,
// is refused with a reason.
func TestForSPCR(t *testing.T) {
	c, err := ForSPCR(spcr(t, "qemu-virt/SPCR.dat"), &modelPL011{t: t})
	require.NoError(t, err)
	assert.Equal(t, &PL011{Bus: &modelPL011{t: t}, Base: 0x0900_0000}, c)

	m := &model16550{t: t, base: 0x90A0_0000, shift: 2, wide: true}
	c, err = ForSPCR(spcr(t, "iasl/spcr.aml"), m)
	require.NoError(t, err)
	c.Putc('!')
	assert.Equal(t, "!", string(m.sent), "a 32-bit access at the SPCR's base")

	s := spcr(t, "iasl/spcr.aml")
	s.Interface = 0x10 // a BCM2835 mini UART
	_, err = ForSPCR(s, m)
	assert.ErrorContains(t, err, "interface type 0x10")
	s = spcr(t, "iasl/spcr.aml")
	s.AddressSpace = 1
	_, err = ForSPCR(s, m)
	assert.ErrorContains(t, err, "I/O port space")
}
