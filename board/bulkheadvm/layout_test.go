package bulkheadvm

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/mmu"
)

type mem struct {
	tables map[uint64]*[mmu.Entries]uint64
	next   uint64
}

func (m *mem) AllocTable() (uint64, bool) {
	m.next += mmu.PageSize
	m.tables[m.next] = new([mmu.Entries]uint64)
	return m.next, true
}

func (m *mem) Table(pa uint64) *[mmu.Entries]uint64 { return m.tables[pa] }

// The guest's own stage 1 map is W^X for its image and lets every other
// address through to stage 2, as device memory.
func TestMap(t *testing.T) {
	var tb mmu.Tables
	m := &mem{tables: map[uint64]*[mmu.Entries]uint64{}, next: 0x1000_0000}
	require.NoError(t, tb.Init(m, VABits))
	img := Image{Text: TextBase, ROData: TextBase + 0x90000, NoPtrData: TextBase + 0x120480, End: TextBase + 0x200000}
	require.NoError(t, Map(&tb, img))
	perm := func(va uint64) (mmu.Perm, bool) {
		pa, attrs, _, ok := tb.Translate(va)
		require.True(t, ok, "%#x unmapped", va)
		assert.Equal(t, va, pa, "identity")
		p := mmu.Read
		if attrs&mmu.S1_AP2_RO == 0 {
			p |= mmu.Write
		}
		if attrs&mmu.S1_PXN == 0 {
			p |= mmu.Exec
		}
		assert.NotZero(t, attrs&mmu.S1_UXN, "nothing runs at EL0")
		return p, (attrs>>mmu.S1_ATTRINDX_SHIFT)&7 == mmu.MAIRDeviceIndex
	}
	for _, tc := range []struct {
		va     uint64
		p      mmu.Perm
		device bool
	}{
		{TextBase, mmu.Read | mmu.Exec, false},
		{TextBase + 0x90000, mmu.Read, false},
		{TextBase + 0x120000, mmu.Read | mmu.Write, false},
		{RAMBase + RAMSize - mmu.PageSize, mmu.Read | mmu.Write, false},
		{RAMBase, mmu.Read | mmu.Write, false},
		{0, mmu.Read | mmu.Write, true},
		{0x0900_0000, mmu.Read | mmu.Write, true},
		{PoolEnd, mmu.Read | mmu.Write, true},
		{1<<VABits - mmu.PageSize, mmu.Read | mmu.Write, true},
	} {
		p, dev := perm(tc.va)
		assert.Equal(t, tc.p, p, "%#x", tc.va)
		assert.Equal(t, tc.device, dev, "%#x", tc.va)
		assert.False(t, p&mmu.Write != 0 && p&mmu.Exec != 0, "W^X at %#x", tc.va)
	}
}
