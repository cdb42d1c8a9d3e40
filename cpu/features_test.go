package cpu

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDecodeFeatures(t *testing.T) {
	// Values of the shape QEMU's "max" CPU reports.
	f := Decode(IDRegs{
		CurrentEL: 2 << 2,
		PFR0:      0x1<<32 | 0x1<<24 | 0x1<<20 | 0x1<<16 | 0x1<<8,
		ISAR0:     0x1 << 60,
		MMFR0:     0x0<<28 | 0x6,
		MMFR1:     0x1<<20 | 0x1<<8 | 0x2<<4,
	})
	assert.Equal(t, Features{EL: 2, VHE: true, VMID16: true, PARange: 52, RNG: true, PAN: true,
		GICv3: true, EL2: true, FP: true, SIMD: true, SVE: true, Gran4K: true}, f)
	assert.Equal(t, "VHE+ VMID16+ PA=52 RNG+ PAN+ GICv3-sysreg+ FP+ SVE+", f.String())

	// A Cortex-A53-like CPU: no VHE, 8-bit VMID, 40-bit PA, FP absent.
	g := Decode(IDRegs{CurrentEL: 1 << 2, PFR0: 0xf<<16 | 0xf<<20, MMFR0: 0x2 | 0xf<<28})
	assert.Equal(t, 1, g.EL)
	assert.False(t, g.VHE)
	assert.False(t, g.VMID16)
	assert.Equal(t, 40, g.PARange)
	assert.False(t, g.FP)
	assert.False(t, g.Gran4K)
	assert.Contains(t, g.String(), "VHE- VMID16- PA=40 RNG-")

	assert.Equal(t, 0, Decode(IDRegs{MMFR0: 0x7}).PARange, "reserved PARange")
}

func TestMIDR(t *testing.T) {
	assert.Equal(t, "Arm Neoverse N1 r3p1 (MIDR 0x413fd0c1)", MIDR(0x413fd0c1).String())
	assert.Equal(t, "software (emulator) part 0x051 r0p0 (MIDR 0x000f0510)", MIDR(0x000f0510).String())
	assert.Equal(t, "Apple part 0x022 r1p1 (MIDR 0x611f0221)", MIDR(0x611f0221).String())
	assert.Equal(t, "implementer 0x99 part 0x001 r0p0 (MIDR 0x99000010)", MIDR(0x99000010).String())
}

func TestVectorNames(t *testing.T) {
	assert.Equal(t, "Synchronous, current EL with SP_EL0", VectorName(0))
	assert.Equal(t, "SError, current EL with SP_ELx", VectorName(7))
	assert.Equal(t, "IRQ, lower EL using AArch64", VectorName(9))
	assert.Equal(t, "FIQ, lower EL using AArch32", VectorName(14))
	assert.Equal(t, "vector 16", VectorName(16))
	f := &Frame{Vector: 4}
	assert.True(t, f.Nested())
	assert.True(t, f.Synchronous())
	f.Vector = 9
	assert.False(t, f.Nested())
	assert.False(t, f.Synchronous())
	assert.Equal(t, "EL2t", SPSRMode(0x3c8))
	assert.Equal(t, "EL1h", SPSRMode(0x3c5))
}

func TestHex(t *testing.T) {
	assert.Equal(t, "0x000000004020abcd", Hex(0x4020abcd))
	assert.Equal(t, "0xffffffffffffffff", Hex(^uint64(0)))
}
