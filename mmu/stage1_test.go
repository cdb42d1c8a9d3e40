package mmu_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/bulkhead-hv/bulkhead/mmu"
)

// Stage 1 descriptor bits, written out from the Arm ARM rather than taken
// from the package.
const (
	attrIndxMask = 0b111 << 2
	ap1          = 1 << 6
	ap2          = 1 << 7
	shMask       = 0b11 << 8
	shInner      = 0b11 << 8
	shOuter      = 0b10 << 8
	af           = 1 << 10
	xn           = 1 << 54
)

func TestS1NormalWXorX(t *testing.T) {
	for p := mmu.Perm(0); p < 8; p++ {
		a := mmu.S1Normal(p)
		writable := a&ap2 == 0
		executable := a&xn == 0
		assert.False(t, writable && executable, "%v: %#x is writable and executable", p, a)
		assert.Equal(t, p&mmu.Write != 0, writable, "%v: %#x writable", p, a)
		assert.Equal(t, p&mmu.Exec != 0 && p&mmu.Write == 0, executable, "%v: %#x executable", p, a)

		assert.Equal(t, uint64(mmu.MAIRNormalIndex<<2), a&attrIndxMask, "%v: AttrIndx", p)
		assert.Equal(t, uint64(shInner), a&shMask, "%v: shareability", p)
		assert.NotZero(t, a&af, "%v: AF", p)
		assert.NotZero(t, a&ap1, "%v: AP[1] is RES1 at EL2", p)
		assert.Zero(t, a&^mmu.AttrMask, "%v: bits outside AttrMask", p)
		assert.Zero(t, a&^uint64(attrIndxMask|ap1|ap2|shMask|af|xn), "%v: unexpected bits in %#x", p, a)
	}
}

func TestS1NormalValues(t *testing.T) {
	// Hand-assembled: AP[1] 0x40, SH inner 0x300, AF 0x400, AP[2] 0x80,
	// XN bit 54.
	assert.Equal(t, uint64(0x0040_0000_0000_07c0), mmu.S1Normal(mmu.Read))
	assert.Equal(t, uint64(0x0040_0000_0000_0740), mmu.S1Normal(mmu.Read|mmu.Write))
	assert.Equal(t, uint64(0x0000_0000_0000_07c0), mmu.S1Normal(mmu.Read|mmu.Exec))
	// Write wins over Exec.
	assert.Equal(t, uint64(0x0040_0000_0000_0740), mmu.S1Normal(mmu.Read|mmu.Write|mmu.Exec))
	assert.Equal(t, mmu.S1Normal(mmu.Read|mmu.Write), mmu.S1Normal(mmu.Read|mmu.Write|mmu.Exec))
	assert.NotZero(t, mmu.S1Normal(mmu.Read|mmu.Write|mmu.Exec)&xn)
}

func TestS1PermRoundTrip(t *testing.T) {
	for p := mmu.Perm(0); p < 8; p++ {
		if p&mmu.Write != 0 && p&mmu.Exec != 0 {
			continue
		}
		got, device := mmu.S1Perm(mmu.S1Normal(p))
		// Every EL2 mapping is readable.
		assert.Equal(t, p|mmu.Read, got, "%v", p)
		assert.False(t, device, "%v", p)
	}
	got, device := mmu.S1Perm(mmu.S1Normal(mmu.Read | mmu.Write | mmu.Exec))
	assert.Equal(t, mmu.Read|mmu.Write, got)
	assert.False(t, device)
}

func TestS1Device(t *testing.T) {
	a := mmu.S1Device()
	assert.NotZero(t, a&xn, "execute-never")
	assert.Equal(t, uint64(mmu.MAIRDeviceIndex<<2), a&attrIndxMask, "AttrIndx")
	assert.Equal(t, uint64(1<<2), a&attrIndxMask)
	assert.NotZero(t, a&af, "AF")
	assert.NotZero(t, a&ap1, "AP[1]")
	assert.Zero(t, a&ap2, "writable")
	assert.Equal(t, uint64(shOuter), a&shMask)
	assert.Zero(t, a&^mmu.AttrMask)
	assert.Equal(t, uint64(0x0040_0000_0000_0644), a)

	p, device := mmu.S1Perm(a)
	assert.Equal(t, mmu.Read|mmu.Write, p)
	assert.True(t, device)
}

func TestMAIR(t *testing.T) {
	assert.Equal(t, uint64(0x04ff), uint64(mmu.MAIR))
	assert.Equal(t, uint64(0xff), uint64(mmu.MAIR)>>(8*mmu.MAIRNormalIndex)&0xff)
	assert.Equal(t, uint64(0x04), uint64(mmu.MAIR)>>(8*mmu.MAIRDeviceIndex)&0xff)
}

func TestTCREL2(t *testing.T) {
	// TCR_EL2 without VHE: T0SZ[5:0], IRGN0[9:8]=01, ORGN0[11:10]=01,
	// SH0[13:12]=11, TG0[15:14]=00 (4 KiB), PS[18:16], RES1 bits 23 and 31.
	//   (48, 5): 0x10 | 0x100 | 0x400 | 0x3000 | 0x5_0000 | 0x80_0000 | 0x8000_0000
	//   (40, 2): 0x18 | 0x100 | 0x400 | 0x3000 | 0x2_0000 | 0x80_0000 | 0x8000_0000
	assert.Equal(t, uint64(0x8085_3510), mmu.TCREL2(48, 5))
	assert.Equal(t, uint64(0x8082_3518), mmu.TCREL2(40, 2))

	for _, tc := range []struct {
		bits    int
		parange uint64
	}{{48, 5}, {40, 2}, {39, 0}, {32, 1}, {25, 6}} {
		v := mmu.TCREL2(tc.bits, tc.parange)
		name := fmt.Sprintf("TCREL2(%d, %d) = %#x", tc.bits, tc.parange, v)
		assert.Equal(t, uint64(64-tc.bits), v&0x3f, "%s: T0SZ", name)
		assert.Equal(t, uint64(0b01), v>>8&3, "%s: IRGN0", name)
		assert.Equal(t, uint64(0b01), v>>10&3, "%s: ORGN0", name)
		assert.Equal(t, uint64(0b11), v>>12&3, "%s: SH0", name)
		assert.Equal(t, uint64(0b00), v>>14&3, "%s: TG0", name)
		assert.Equal(t, tc.parange, v>>16&7, "%s: PS", name)
		assert.Equal(t, uint64(1), v>>23&1, "%s: RES1 bit 23", name)
		assert.Equal(t, uint64(1), v>>31&1, "%s: RES1 bit 31", name)
		assert.Zero(t, v&^uint64(0x8087_ff3f), "%s: stray bits", name)
	}
}

func TestPermString(t *testing.T) {
	for p, want := range map[mmu.Perm]string{
		0:                               "---",
		mmu.Read:                        "r--",
		mmu.Write:                       "-w-",
		mmu.Exec:                        "--x",
		mmu.Read | mmu.Write:            "rw-",
		mmu.Read | mmu.Exec:             "r-x",
		mmu.Read | mmu.Write | mmu.Exec: "rwx",
	} {
		assert.Equal(t, want, p.String())
	}
}
