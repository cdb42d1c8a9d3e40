package mmu_test

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/mmu"
)

func TestStaticPool(t *testing.T) {
	mem := make([]byte, 5*mmu.PageSize+123)
	var p mmu.StaticPool
	p.Init(mem)
	assert.LessOrEqual(t, p.Total(), 5)
	assert.GreaterOrEqual(t, p.Total(), 4)
	var tables mmu.Tables
	require.NoError(t, tables.Init(&p, 39))
	require.NoError(t, tables.Map(0x4000_0000, 0x4000_0000, mmu.PageSize, mmu.S1Normal(mmu.Read)))
	assert.Equal(t, 3, p.Used(), "root, level 2 and level 3 tables")
	root := tables.Root()
	assert.Zero(t, root%mmu.PageSize)
	base := uint64(uintptr(unsafe.Pointer(&mem[0])))
	assert.True(t, root >= base && root+mmu.PageSize <= base+uint64(len(mem)), "tables come from mem")
	for p.Used() < p.Total() {
		_, ok := p.AllocTable()
		require.True(t, ok)
	}
	_, ok := p.AllocTable()
	assert.False(t, ok, "exhausted")
}
