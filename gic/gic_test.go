package gic

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type regs map[uint64]uint64

func (r regs) Read32(a uint64) uint32 { return uint32(r[a]) }
func (r regs) Read64(a uint64) uint64 { return r[a] }

func TestDiscoverQEMUVirt(t *testing.T) {
	const d, rd = 0x08000000, 0x080a0000
	bus := regs{
		d + GICD_PIDR2:                   0x3b,
		d + GICD_TYPER:                   0x37a0007, // ITLinesNumber 7: 256 INTIDs
		d + GICD_IIDR:                    0x43b,
		rd + GICR_TYPER:                  0 << 32,
		rd + GICR_FrameSize + GICR_TYPER: 1<<32 | GICR_TYPER_Last,
		// A third frame past Last must not be read as a redistributor.
		rd + 2*GICR_FrameSize + GICR_TYPER: 2 << 32,
	}
	info, err := Discover(bus, d, []Region{{rd, 0xf60000}})
	require.NoError(t, err)
	assert.Equal(t, uint32(3), info.ArchRev)
	assert.Equal(t, uint32(255), info.MaxINTID)
	assert.Equal(t, []uint64{0, 1}, info.Redistributors)
	assert.Equal(t, "GICv3, SPIs 32-255, 2 redistributor(s)", info.String())
}

func TestDiscoverCapsINTIDs(t *testing.T) {
	bus := regs{GICD_PIDR2: 0x3b, GICD_TYPER: 0x1f, 0x100000 + GICR_TYPER: GICR_TYPER_Last}
	info, err := Discover(bus, 0, []Region{{0x100000, GICR_FrameSize}})
	require.NoError(t, err)
	assert.Equal(t, uint32(1019), info.MaxINTID)
}

func TestDiscoverGICv4SkipsVLPIFrames(t *testing.T) {
	const rd = 0x100000
	bus := regs{GICD_PIDR2: 0x4b, rd + GICR_TYPER: GICR_TYPER_VLPIS,
		rd + 2*GICR_FrameSize + GICR_TYPER: 7<<32 | GICR_TYPER_Last | GICR_TYPER_VLPIS}
	info, err := Discover(bus, 0, []Region{{rd, 8 * GICR_FrameSize}})
	require.NoError(t, err)
	assert.Equal(t, []uint64{0, 7}, info.Redistributors)
}

func TestDiscoverErrors(t *testing.T) {
	_, err := Discover(regs{GICD_PIDR2: 0x2b}, 0, nil)
	assert.ErrorContains(t, err, "architecture revision 2")
	_, err = Discover(regs{GICD_PIDR2: 0x3b}, 0, []Region{{0x100000, 0x1000}})
	assert.ErrorIs(t, err, ErrNoRedistributor)
}

func TestSGI1R(t *testing.T) {
	assert.Equal(t, uint64(8<<24|1<<3), SGI1R(8, 0x80000003), "Aff0 3: target bit 3")
	assert.Equal(t, uint64(1<<44|2<<24|1<<1), SGI1R(2, 17), "Aff0 17: range 1, bit 1")
	assert.Equal(t, uint64(4<<48|3<<32|5<<16|15<<24|1), SGI1R(15, 4<<32|3<<16|5<<8), "Aff3.Aff2.Aff1")
}
