package vuart

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestRingIsAFIFOWithBackPressure(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		size := rapid.IntRange(1, 64).Draw(t, "size")
		r := NewRing(size)
		var model []byte
		for i := 0; i < 50; i++ {
			if rapid.Bool().Draw(t, "write") {
				b := rapid.SliceOfN(rapid.Byte(), 0, 80).Draw(t, "b")
				n := r.Write(b)
				want := min(len(b), size-len(model))
				require.Equal(t, want, n, "takes what fits")
				model = append(model, b[:n]...)
			} else {
				b := make([]byte, rapid.IntRange(0, 80).Draw(t, "n"))
				n := r.Read(b)
				want := min(len(b), len(model))
				require.Equal(t, string(model[:want]), string(b[:n]))
				model = model[want:]
			}
			require.Equal(t, len(model), r.Len())
			require.Equal(t, size-len(model), r.Free())
		}
	})
}

func TestPL011Identifies(t *testing.T) {
	u := NewPL011(256, 16, nil)
	var pid, cid uint32
	for i := 0; i < 4; i++ {
		pid |= uint32(u.Read(PeriphID0+uint64(4*i), 4)) << (8 * i)
		cid |= uint32(u.Read(PeriphID0+0x10+uint64(4*i), 4)) << (8 * i)
	}
	assert.Equal(t, uint32(0x011), pid&0xfff, "part number of a PL011")
	assert.Equal(t, uint32(0x41), pid>>12&0xff, "designer Arm")
	assert.Equal(t, uint32(0xb105f00d), cid)
}

func TestPL011Output(t *testing.T) {
	raised := 0
	u := NewPL011(txLowWater+2, 16, func() { raised++ })
	assert.NotZero(t, u.Read(UARTFR, 4)&FR_TXFE, "empty at reset")
	for _, c := range []byte("hi") {
		u.Write(UARTDR, 1, uint64(c))
	}
	out := make([]byte, 8)
	assert.Equal(t, "hi", string(out[:u.Out.Read(out)]))

	// Fill it: TXFF, and the transmit interrupt drops below the low water
	// mark; draining it raises the line again.
	u.Write(UARTIMSC, 4, INT_TX)
	assert.Equal(t, 1, raised, "enabling the interrupt with room raises it")
	for i := 0; i < txLowWater+2; i++ {
		u.Write(UARTDR, 1, 'x')
	}
	assert.NotZero(t, u.Read(UARTFR, 4)&FR_TXFF)
	assert.Zero(t, u.Read(UARTMIS, 4)&INT_TX)
	u.Write(UARTDR, 1, 'y') // dropped: the FIFO is full
	assert.Equal(t, txLowWater+2, u.Out.Len())
	u.Out.Read(make([]byte, txLowWater))
	u.Update()
	assert.Equal(t, 2, raised, "room again: a second rising edge")
	assert.Equal(t, uint64(INT_TX), u.Read(UARTMIS, 4))
}

func TestPL011Input(t *testing.T) {
	raised := 0
	u := NewPL011(256, 4, func() { raised++ })
	u.Write(UARTIMSC, 4, INT_RX|INT_RT)
	assert.Zero(t, raised, "nothing to receive")
	assert.NotZero(t, u.Read(UARTFR, 4)&FR_RXFE)
	assert.Equal(t, 3, u.In.Write([]byte("ls\n")))
	u.Update()
	assert.Equal(t, 1, raised)
	assert.Equal(t, uint64(INT_RX|INT_RT), u.Read(UARTMIS, 4))
	var got []byte
	for u.Read(UARTFR, 4)&FR_RXFE == 0 {
		got = append(got, byte(u.Read(UARTDR, 4)))
	}
	assert.Equal(t, "ls\n", string(got))
	assert.Zero(t, u.Read(UARTMIS, 4), "line low once drained")
	u.In.Write([]byte("abcdef"))
	assert.NotZero(t, u.Read(UARTFR, 4)&FR_RXFF, "input ring full")
	assert.Equal(t, 2, raised)
}

func TestPL011Echo(t *testing.T) {
	var got []byte
	u := NewPL011(1, 1, nil)
	u.Echo = func(b []byte) { got = append(got, b...) }
	for _, c := range []byte("abc") {
		u.Write(UARTDR, 1, uint64(c))
	}
	assert.Equal(t, "abc", string(got), "echoed, never full")
	assert.Zero(t, u.Read(UARTFR, 4)&FR_TXFF)
}

func TestPL011PlainRegisters(t *testing.T) {
	u := NewPL011(16, 16, nil)
	assert.Equal(t, uint64(0x300), u.Read(UARTCR, 4), "TXE|RXE at reset")
	u.Write(UARTIBRD, 4, 13)
	u.Write(UARTLCR_H, 4, 0x70)
	assert.Equal(t, uint64(13), u.Read(UARTIBRD, 4))
	assert.Equal(t, uint64(0x70), u.Read(UARTLCR_H, 4))
	u.Write(0x800, 4, 1) // nothing there
	assert.Zero(t, u.Read(0x800, 4))
}

// Flags, read without the lock, follows every change to the rings: it is
// what a register read of UARTFR says.
func TestPL011FlagsFollowTheRings(t *testing.T) {
	u := NewPL011(2, 2, nil)
	same := func(why string) {
		t.Helper()
		assert.Equal(t, uint64(u.Flags()), u.Read(UARTFR, 4), why)
	}
	same("at reset")
	assert.Equal(t, uint32(FR_RXFE|FR_TXFE), u.Flags())
	u.Input([]byte("ab"))
	same("input ring full")
	assert.NotZero(t, u.Flags()&FR_RXFF)
	u.Read(UARTDR, 4)
	same("a byte taken")
	u.Write(UARTDR, 4, 'x')
	u.Write(UARTDR, 4, 'y')
	same("output ring full")
	assert.NotZero(t, u.Flags()&FR_TXFF)
	var b [2]byte
	u.Drain(b[:])
	same("output drained")
	assert.Zero(t, u.Flags()&FR_TXFF)
}
