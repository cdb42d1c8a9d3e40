package mmu_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/bulkhead-hv/bulkhead/mmu"
)

const (
	kib = uint64(1) << 10
	mib = uint64(1) << 20
	gib = uint64(1) << 30

	page  = 4 * kib
	block = 2 * mib // level 2 block
	huge  = gib     // level 1 block

	fakeBase = uint64(0x8000_0000)
)

// fakeMem is a Memory whose table pages live in a Go map keyed by a fake
// physical address. Allocation hands out increasing 4 KiB-aligned
// addresses from fakeBase up to a fixed number of tables.
type fakeMem struct {
	tables   map[uint64]*[mmu.Entries]uint64
	next     uint64
	capacity int
	allocs   int
}

func newFakeMem(capacity int) *fakeMem {
	return &fakeMem{
		tables:   make(map[uint64]*[mmu.Entries]uint64),
		next:     fakeBase,
		capacity: capacity,
	}
}

func (m *fakeMem) AllocTable() (uint64, bool) {
	if m.allocs >= m.capacity {
		return 0, false
	}
	pa := m.next
	m.next += mmu.PageSize
	m.allocs++
	m.tables[pa] = new([mmu.Entries]uint64)
	return pa, true
}

func (m *fakeMem) Table(pa uint64) *[mmu.Entries]uint64 {
	t, ok := m.tables[pa]
	if !ok {
		panic(fmt.Sprintf("fakeMem: Table(%#x) is not an allocated table", pa))
	}
	return t
}

// newTables returns initialised tables over a fake memory of capacity
// table pages.
func newTables(t testing.TB, inputBits, capacity int) (*mmu.Tables, *fakeMem) {
	t.Helper()
	mem := newFakeMem(capacity)
	var tb mmu.Tables
	require.NoError(t, tb.Init(mem, inputBits))
	require.Equal(t, 1, mem.allocs)
	return &tb, mem
}

// rawEntry walks the tables through the fake memory, independently of
// Translate, and returns the raw entry that ends the walk for va: the first
// invalid entry, the first block or the level 3 entry.
func rawEntry(t testing.TB, tb *mmu.Tables, mem *fakeMem, va uint64) (entry uint64, level int) {
	t.Helper()
	table := mem.Table(tb.Root())
	for level = tb.StartLevel(); ; level++ {
		shift := 12 + 9*(3-level)
		entry = table[(va>>shift)&511]
		if level == 3 || entry&0b11 != 0b11 {
			return entry, level
		}
		table = mem.Table(entry & 0x0000_ffff_ffff_f000)
	}
}

type translation struct {
	pa, attrs uint64
	level     int
	ok        bool
}

func translate(tb *mmu.Tables, va uint64) translation {
	pa, attrs, level, ok := tb.Translate(va)
	return translation{pa, attrs, level, ok}
}

func TestInitStartLevel(t *testing.T) {
	for bits := 25; bits <= 48; bits++ {
		want := 2
		switch {
		case bits >= 40:
			want = 0
		case bits >= 31:
			want = 1
		}
		t.Run(fmt.Sprint(bits), func(t *testing.T) {
			tb, mem := newTables(t, bits, 4)
			assert.Equal(t, want, tb.StartLevel())
			assert.Equal(t, bits, tb.InputBits())
			assert.Equal(t, fakeBase, tb.Root())
			assert.Equal(t, [mmu.Entries]uint64{}, *mem.Table(tb.Root()))
		})
	}
	// The boundaries the brief names explicitly.
	for bits, want := range map[int]int{48: 0, 40: 0, 39: 1, 31: 1, 30: 2, 25: 2} {
		tb, _ := newTables(t, bits, 1)
		assert.Equal(t, want, tb.StartLevel(), "inputBits %d", bits)
	}
}

func TestInitErrors(t *testing.T) {
	for _, bits := range []int{-1, 0, 12, 24, 49, 52, 64} {
		mem := newFakeMem(4)
		var tb mmu.Tables
		assert.ErrorIs(t, tb.Init(mem, bits), mmu.ErrInputBits, "inputBits %d", bits)
		assert.Zero(t, mem.allocs, "inputBits %d allocated", bits)
		assert.Equal(t, mmu.Tables{}, tb, "inputBits %d changed the tables", bits)
	}

	mem := newFakeMem(0)
	var tb mmu.Tables
	assert.ErrorIs(t, tb.Init(mem, 40), mmu.ErrNoTables)
	assert.Zero(t, mem.allocs)
}

func TestMapPage(t *testing.T) {
	tb, mem := newTables(t, 40, 16)
	const va, pa = 0x12_3456_7000, 0x4000_7000
	attrs := mmu.S1Normal(mmu.Read | mmu.Write)
	require.NoError(t, tb.Map(va, pa, page, attrs))
	// Root, level 1, level 2 and level 3 tables.
	assert.Equal(t, 4, mem.allocs)

	assert.Equal(t, translation{pa, attrs, 3, true}, translate(tb, va))
	assert.Equal(t, translation{pa + 0x123, attrs, 3, true}, translate(tb, va+0x123))
	assert.Equal(t, translation{pa + 0xfff, attrs, 3, true}, translate(tb, va+0xfff))
	for _, other := range []uint64{va - page, va + page, va - 1, 0, va &^ (gib - 1), 1<<40 - page} {
		got := translate(tb, other)
		assert.False(t, got.ok, "va %#x: %+v", other, got)
	}

	e, level := rawEntry(t, tb, mem, va)
	require.Equal(t, 3, level)
	assert.Equal(t, uint64(0b11), e&0b11, "page descriptor type")
	assert.Equal(t, uint64(pa|attrs|0b11), e)
}

func TestMapSeveralPages(t *testing.T) {
	tb, mem := newTables(t, 40, 16)
	const va, pa = 0x20_0000 - 3*page, 0x9_0000_0000 + 5*page
	attrs := mmu.S1Normal(mmu.Read)
	require.NoError(t, tb.Map(va, pa, 8*page, attrs))
	// The range crosses a 2 MiB boundary: two level 3 tables.
	assert.Equal(t, 5, mem.allocs)
	for i := uint64(0); i < 8; i++ {
		assert.Equal(t, translation{pa + i*page + 8, attrs, 3, true}, translate(tb, va+i*page+8), "page %d", i)
	}
	assert.False(t, translate(tb, va-page).ok)
	assert.False(t, translate(tb, va+8*page).ok)
}

func TestTranslateUnmapped(t *testing.T) {
	tb, _ := newTables(t, 40, 16)
	for _, va := range []uint64{0, page, gib, 1<<40 - 1, 1 << 40, 1 << 47, ^uint64(0)} {
		assert.False(t, translate(tb, va).ok, "va %#x", va)
	}
	require.NoError(t, tb.Map(0, 0, page, mmu.S1Device()))
	assert.True(t, translate(tb, 0).ok)
	// Beyond the input address space, even if the index bits alias va 0.
	assert.False(t, translate(tb, 1<<40).ok)
	assert.False(t, translate(tb, 1<<48).ok)
}

func TestTranslateReservedLevel3Encoding(t *testing.T) {
	tb, mem := newTables(t, 40, 16)
	require.NoError(t, tb.Map(0x5000, 0x7000, page, mmu.S1Normal(mmu.Read)))
	require.True(t, translate(tb, 0x5000).ok)
	e, level := rawEntry(t, tb, mem, 0x6000)
	require.Equal(t, 3, level)
	require.Zero(t, e)
	// Poke a "block" encoding into level 3: it is reserved, so no translation.
	l1 := mem.Table(tb.Root())[0] & mmu.OutputAddrMask
	l2 := mem.Table(l1)[0] & mmu.OutputAddrMask
	l3 := mem.Table(l2)[0] & mmu.OutputAddrMask
	mem.Table(l3)[6] = 0x9000 | mmu.S1Normal(mmu.Read) | mmu.DescValid
	assert.False(t, translate(tb, 0x6000).ok)
	assert.True(t, translate(tb, 0x5000).ok)
}

func TestTranslateBlockIgnoresLowOutputBits(t *testing.T) {
	// A block's output address is bits [47:21] (2 MiB) or [47:30] (1 GiB);
	// the bits below are RES0 or other fields (nT at bit 16) and are not
	// part of the address.
	tb, mem := newTables(t, 40, 16)
	attrs := mmu.S1Normal(mmu.Read)
	require.NoError(t, tb.Map(block, 0x4000_0000, block, attrs))
	require.NoError(t, tb.Map(huge, 0x80_0000_0000, huge, attrs))

	l1 := mem.Table(tb.Root())[0] & mmu.OutputAddrMask
	l2 := mem.Table(l1)[0] & mmu.OutputAddrMask
	mem.Table(l2)[1] |= 1<<16 | 1<<13
	mem.Table(l1)[1] |= 1<<29 | 1<<21 | 1<<12

	assert.Equal(t, translation{0x4000_1234, attrs, 2, true}, translate(tb, block+0x1234))
	assert.Equal(t, translation{0x80_1234_5678, attrs, 1, true}, translate(tb, huge+0x1234_5678))
}

func TestMap2MiBBlocks(t *testing.T) {
	tb, mem := newTables(t, 40, 16)
	const va, pa = 0x4020_0000, 0x8_0060_0000
	attrs := mmu.S1Normal(mmu.Read | mmu.Exec)
	require.NoError(t, tb.Map(va, pa, 2*block, attrs))
	// Root, level 1 and level 2 only: no level 3 table.
	assert.Equal(t, 3, mem.allocs)

	for _, off := range []uint64{0, 0x123, page, block - 1, block, block + 0x4567, 2*block - 1} {
		assert.Equal(t, translation{pa + off, attrs, 2, true}, translate(tb, va+off), "offset %#x", off)
	}
	assert.False(t, translate(tb, va-1).ok)
	assert.False(t, translate(tb, va+2*block).ok)

	for _, off := range []uint64{0, block} {
		e, level := rawEntry(t, tb, mem, va+off)
		require.Equal(t, 2, level)
		assert.Equal(t, uint64(0b01), e&0b11, "block descriptor type")
		assert.Equal(t, pa+off|attrs|0b01, e)
	}
}

func TestMap2MiBNeedsBothAligned(t *testing.T) {
	// va 2 MiB-aligned but pa only page-aligned: pages only.
	tb, mem := newTables(t, 40, 16)
	attrs := mmu.S1Normal(mmu.Read)
	require.NoError(t, tb.Map(block, 0x1000_1000, block, attrs))
	assert.Equal(t, 4, mem.allocs)
	assert.Equal(t, translation{0x1000_1000, attrs, 3, true}, translate(tb, block))
	assert.Equal(t, translation{0x1020_0fff, attrs, 3, true}, translate(tb, 2*block-1))

	// pa aligned but va not.
	tb, mem = newTables(t, 40, 16)
	require.NoError(t, tb.Map(0x40_1000, 3*block, block, attrs))
	assert.Equal(t, 5, mem.allocs) // the range straddles two level 3 tables
	assert.Equal(t, 3, translate(tb, 0x40_1000).level)

	// Both aligned but the size is smaller than a block.
	tb, mem = newTables(t, 40, 16)
	require.NoError(t, tb.Map(block, block, block-page, attrs))
	assert.Equal(t, 4, mem.allocs)
	assert.Equal(t, 3, translate(tb, block).level)
}

func TestMap1GiBBlock(t *testing.T) {
	attrs := mmu.S1Normal(mmu.Read | mmu.Write)
	for _, tc := range []struct {
		inputBits, tables int
	}{
		{40, 2}, // root (level 0) and level 1
		{48, 2},
		{39, 1}, // the block sits in the level 1 root
		{32, 1},
	} {
		t.Run(fmt.Sprint(tc.inputBits), func(t *testing.T) {
			tb, mem := newTables(t, tc.inputBits, 16)
			require.NoError(t, tb.Map(huge, 3*huge, huge, attrs))
			assert.Equal(t, tc.tables, mem.allocs)
			for _, off := range []uint64{0, 0x123, block + page, huge - 1} {
				assert.Equal(t, translation{3*huge + off, attrs, 1, true}, translate(tb, huge+off), "offset %#x", off)
			}
			assert.False(t, translate(tb, huge-1).ok)
			assert.False(t, translate(tb, 2*huge).ok)
			e, level := rawEntry(t, tb, mem, huge+0x5000)
			require.Equal(t, 1, level)
			assert.Equal(t, 3*huge|attrs|0b01, e)
		})
	}
}

func TestMapStartLevel2UsesNo1GiBBlocks(t *testing.T) {
	// With a 30-bit input space the root is at level 2, where no 1 GiB
	// block exists: the whole space is 512 2 MiB blocks in the root.
	tb, mem := newTables(t, 30, 16)
	attrs := mmu.S1Normal(mmu.Read | mmu.Write)
	require.NoError(t, tb.Map(0, 2*huge, huge, attrs))
	assert.Equal(t, 1, mem.allocs)
	for _, va := range []uint64{0, block + 7, huge/2 + page, huge - 1} {
		assert.Equal(t, translation{2*huge + va, attrs, 2, true}, translate(tb, va), "va %#x", va)
	}
	root := mem.Table(tb.Root())
	for i, e := range root {
		require.Equal(t, 2*huge+uint64(i)*block|attrs|0b01, e, "root entry %d", i)
	}
}

func TestMapMixedRanges(t *testing.T) {
	tb, mem := newTables(t, 40, 64)
	const delta = 64 * gib // keeps pa congruent to va modulo 1 GiB
	attrs := mmu.S1Normal(mmu.Read | mmu.Write)
	// 3 pages, one 2 MiB block, one 1 GiB block, one 2 MiB block, one page.
	va := huge - block - 3*page
	size := 3*page + block + huge + block + page
	require.NoError(t, tb.Map(va, va+delta, size, attrs))

	// Tables: root, level 1, level 2 and 3 below 1 GiB, level 2 and 3
	// above 2 GiB. Pages everywhere would need over 500 level 3 tables.
	assert.Equal(t, 6, mem.allocs)

	for _, tc := range []struct {
		va    uint64
		level int
	}{
		{va, 3},
		{va + page, 3},
		{va + 2*page + 0xfff, 3},
		{huge - block, 2},
		{huge - 1, 2},
		{huge, 1},
		{huge + huge/2 + 0x123, 1},
		{2*huge - 1, 1},
		{2 * huge, 2},
		{2*huge + block - 1, 2},
		{2*huge + block, 3},
		{2*huge + block + 0xfff, 3},
	} {
		assert.Equal(t, translation{tc.va + delta, attrs, tc.level, true}, translate(tb, tc.va), "va %#x", tc.va)
	}
	assert.False(t, translate(tb, va-1).ok)
	assert.False(t, translate(tb, va+size).ok)
	assert.Equal(t, va+size, 2*huge+block+page)

	// Every page of the range translates, at the level it was mapped with.
	for p := va; p < va+size; p += page {
		got := translate(tb, p)
		if !got.ok || got.pa != p+delta || got.attrs != attrs {
			require.Equal(t, translation{p + delta, attrs, got.level, true}, got, "va %#x", p)
		}
	}

	for _, tc := range []struct {
		va    uint64
		level int
		typ   uint64
	}{
		{va, 3, 0b11},
		{huge - block, 2, 0b01},
		{huge, 1, 0b01},
		{2 * huge, 2, 0b01},
		{2*huge + block, 3, 0b11},
	} {
		e, level := rawEntry(t, tb, mem, tc.va)
		assert.Equal(t, tc.level, level, "va %#x", tc.va)
		assert.Equal(t, tc.typ, e&0b11, "va %#x", tc.va)
		assert.Equal(t, tc.va+delta, e&mmu.OutputAddrMask, "va %#x", tc.va)
	}
}

func TestMapAttrsRoundTrip(t *testing.T) {
	all := []uint64{
		0,
		mmu.S1Device(),
		mmu.AttrMask,
		1 << 2,
		1 << 11,
		1 << 50,
		1 << 63,
		0x8004_0000_0000_0a5c,
	}
	for p := mmu.Perm(0); p < 8; p++ {
		all = append(all, mmu.S1Normal(p))
	}
	tb, mem := newTables(t, 40, 64)
	for i, attrs := range all {
		require.Zero(t, attrs&^mmu.AttrMask)
		va := uint64(i) * gib
		pa := 0x10_0000_0000 + uint64(i)*gib
		// A page, a 2 MiB block and a 1 GiB block.
		require.NoError(t, tb.Map(va+page, pa+page, page, attrs), "attrs %#x", attrs)
		require.NoError(t, tb.Map(va+block, pa+block, block, attrs), "attrs %#x", attrs)
		require.NoError(t, tb.Map(va+64*gib, pa, huge, attrs), "attrs %#x", attrs)
		for _, tc := range []struct {
			va, pa uint64
			level  int
		}{
			{va + page, pa + page, 3},
			{va + block, pa + block, 2},
			{va + 64*gib, pa, 1},
		} {
			got := translate(tb, tc.va+0x10)
			assert.Equal(t, translation{tc.pa + 0x10, attrs, tc.level, true}, got, "attrs %#x", attrs)
			e, _ := rawEntry(t, tb, mem, tc.va)
			assert.Equal(t, attrs, e&mmu.AttrMask, "raw attrs")
		}
	}
}

func TestMapAlignmentErrors(t *testing.T) {
	attrs := mmu.S1Normal(mmu.Read)
	for _, tc := range []struct{ va, pa, size uint64 }{
		{0x1001, 0x2000, page},
		{0x1800, 0x2000, page},
		{0x1000, 0x2001, page},
		{0x1000, 0x2800, page},
		{0x1000, 0x2000, page + 1},
		{0x1000, 0x2000, 0x800},
		{0x1000, 0x2000, 1},
		{block + 8, block, block},
	} {
		tb, mem := newTables(t, 40, 16)
		assert.ErrorIs(t, tb.Map(tc.va, tc.pa, tc.size, attrs), mmu.ErrAlignment, "%+v", tc)
		assert.Equal(t, 1, mem.allocs, "%+v allocated", tc)
		assert.False(t, translate(tb, tc.va&^0xfff).ok, "%+v mapped", tc)
	}
}

func TestMapAttrsErrors(t *testing.T) {
	for _, attrs := range []uint64{
		mmu.DescValid,
		mmu.DescTable,
		mmu.S1Normal(mmu.Read) | mmu.DescValid,
		mmu.S1Normal(mmu.Read) | mmu.DescTable | mmu.DescValid,
		1 << 12, // output address bits
		1 << 30,
		1 << 47,
		1 << 48, // bits [49:48] are not leaf attributes here
		1 << 49,
		^uint64(0),
	} {
		tb, mem := newTables(t, 40, 16)
		assert.ErrorIs(t, tb.Map(0x1000, 0x2000, page, attrs), mmu.ErrAttrs, "attrs %#x", attrs)
		assert.Equal(t, 1, mem.allocs)
		assert.False(t, translate(tb, 0x1000).ok)
	}
}

func TestMapRangeErrors(t *testing.T) {
	attrs := mmu.S1Normal(mmu.Read)
	top := uint64(1) << 40
	for _, tc := range []struct {
		name         string
		va, pa, size uint64
	}{
		{"past end", top - page, 0, 2 * page},
		{"at end", top, 0, page},
		{"far past end", 1 << 47, 0, page},
		{"block past end", top - huge, 0, 2 * huge},
		{"va wraps", 0xffff_ffff_ffff_f000, 0, 2 * page},
		{"va wraps to zero", 0xffff_ffff_ffff_f000, 0, page},
		{"pa wraps", 0, 0xffff_ffff_ffff_f000, 2 * page},
		{"pa wraps to zero", 0, 0xffff_ffff_ffff_f000, page},
		{"pa past 48 bits", 0, 1 << 48, page},
		{"pa ends past 48 bits", 0, 1<<48 - page, 2 * page},
		{"size wraps", page, 0, 0xffff_ffff_ffff_f000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, mem := newTables(t, 40, 16)
			assert.ErrorIs(t, tb.Map(tc.va, tc.pa, tc.size, attrs), mmu.ErrInputRange)
			assert.Equal(t, 1, mem.allocs)
			assert.Equal(t, [mmu.Entries]uint64{}, *mem.Table(tb.Root()))
		})
	}

	// The last page of each space is fine.
	tb, _ := newTables(t, 40, 16)
	require.NoError(t, tb.Map(top-page, 1<<48-page, page, attrs))
	assert.Equal(t, translation{1<<48 - 1, attrs, 3, true}, translate(tb, top-1))

	tb, _ = newTables(t, 25, 16)
	assert.ErrorIs(t, tb.Map(1<<25-page, 0, 2*page, attrs), mmu.ErrInputRange)
	require.NoError(t, tb.Map(1<<25-page, 0, page, attrs))
	assert.Equal(t, translation{0xabc, attrs, 3, true}, translate(tb, 1<<25-page+0xabc))
}

func TestMapSizeZeroIsNoop(t *testing.T) {
	tb, mem := newTables(t, 40, 16)
	attrs := mmu.S1Normal(mmu.Read)
	for _, va := range []uint64{0, page, block, huge, 1<<40 - page, 1 << 40} {
		require.NoError(t, tb.Map(va, 0x1000, 0, attrs), "va %#x", va)
	}
	assert.Equal(t, 1, mem.allocs)
	assert.Equal(t, [mmu.Entries]uint64{}, *mem.Table(tb.Root()))
	// Zero size inside an existing mapping does not overlap it.
	require.NoError(t, tb.Map(block, 0, block, attrs))
	require.NoError(t, tb.Map(block, 0, 0, attrs))
	require.NoError(t, tb.Map(block+page, 0, 0, attrs))
}

func TestMapOverlap(t *testing.T) {
	rw := mmu.S1Normal(mmu.Read | mmu.Write)
	ro := mmu.S1Normal(mmu.Read)
	for _, tc := range []struct {
		name            string
		first, second   [3]uint64 // va, pa, size
		wantStillMapped []uint64  // pages of the second range mapped before the failure
	}{
		{"page over page", [3]uint64{0x5000, 0x1000, page}, [3]uint64{0x5000, 0x9000, page}, nil},
		{"pages over page", [3]uint64{0x5000, 0x1000, page}, [3]uint64{0x3000, 0x9000, 4 * page}, []uint64{0x3000, 0x4000}},
		{"page in 2M block", [3]uint64{block, block, block}, [3]uint64{block + 7*page, 0, page}, nil},
		{"pages into 2M block", [3]uint64{block, block, block}, [3]uint64{block - 2*page, 0, 3 * page}, []uint64{block - 2*page, block - page}},
		{"2M block over 2M block", [3]uint64{block, block, block}, [3]uint64{block, 5 * block, block}, nil},
		{"page in 1G block", [3]uint64{huge, huge, huge}, [3]uint64{huge + 3*block + page, 0, page}, nil},
		{"2M block in 1G block", [3]uint64{huge, huge, huge}, [3]uint64{huge + 3*block, 0, block}, nil},
		{"1G block over 1G block", [3]uint64{huge, huge, huge}, [3]uint64{huge, 2 * huge, huge}, nil},
		{"2M block over table", [3]uint64{block + 5*page, 0, page}, [3]uint64{block, 0, block}, nil},
		{"1G block over table", [3]uint64{huge + block + 5*page, 0, page}, [3]uint64{huge, 0, huge}, nil},
		{"1G block over 2M-block table", [3]uint64{huge + 7*block, 0, block}, [3]uint64{huge, 0, huge}, nil},
		{"block then block over table", [3]uint64{block + page, 0, page}, [3]uint64{0, 0, 2 * block}, []uint64{0, block - 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, mem := newTables(t, 40, 64)
			require.NoError(t, tb.Map(tc.first[0], tc.first[1], tc.first[2], rw))
			before := translate(tb, tc.first[0])
			require.True(t, before.ok)
			allocs := mem.allocs

			err := tb.Map(tc.second[0], tc.second[1], tc.second[2], ro)
			assert.ErrorIs(t, err, mmu.ErrOverlap)
			// The first mapping is untouched.
			assert.Equal(t, before, translate(tb, tc.first[0]))
			assert.Equal(t, rw, translate(tb, tc.first[0]+tc.first[2]-1).attrs)
			// What was mapped before the failure stays mapped.
			for _, va := range tc.wantStillMapped {
				got := translate(tb, va)
				assert.True(t, got.ok, "va %#x", va)
				assert.Equal(t, ro, got.attrs, "va %#x", va)
				assert.Equal(t, tc.second[1]+va-tc.second[0], got.pa, "va %#x", va)
			}
			if tc.wantStillMapped == nil {
				assert.Equal(t, allocs, mem.allocs, "a refused map allocated tables")
			}
		})
	}
}

func TestMapOutOfTables(t *testing.T) {
	attrs := mmu.S1Normal(mmu.Read)

	// Only the root.
	tb, mem := newTables(t, 40, 1)
	assert.ErrorIs(t, tb.Map(0x1000, 0x1000, page, attrs), mmu.ErrNoTables)
	assert.Equal(t, 1, mem.allocs)
	assert.False(t, translate(tb, 0x1000).ok)

	// Enough for a 2 MiB block, not for a page beside it.
	tb, mem = newTables(t, 40, 3)
	require.NoError(t, tb.Map(0, 0, block, attrs))
	assert.ErrorIs(t, tb.Map(block, block, page, attrs), mmu.ErrNoTables)
	assert.Equal(t, 3, mem.allocs)
	assert.True(t, translate(tb, 0).ok)
	assert.False(t, translate(tb, block).ok)
	// A 1 GiB block needs no further table.
	require.NoError(t, tb.Map(huge, 0, huge, attrs))
	assert.Equal(t, 1, translate(tb, huge).level)

	// Running out part way: the first page is mapped, the second is not.
	tb, mem = newTables(t, 40, 4)
	err := tb.Map(block-page, 0x7000, 2*page, attrs)
	assert.ErrorIs(t, err, mmu.ErrNoTables)
	assert.Equal(t, 4, mem.allocs)
	assert.Equal(t, translation{0x7000, attrs, 3, true}, translate(tb, block-page))
	assert.False(t, translate(tb, block).ok)
}

// model is the reference for Map and Translate: a map from virtual page
// number to what that page translates to.
type model struct {
	inputBits  int
	startLevel int
	pages      pageMap
}

type modelPage struct {
	pa, attrs uint64
	level     int // 1 to 3 when mapped
}

// pageMap maps a virtual page number to a modelPage. It is a map of 512-page
// runs rather than a plain Go map so that sweeping 1 GiB stays fast.
type pageMap struct {
	runs map[uint64]*[512]modelPage
	n    int
}

func (pm *pageMap) get(vpn uint64) (modelPage, bool) {
	run := pm.runs[vpn/512]
	if run == nil || run[vpn%512].level == 0 {
		return modelPage{}, false
	}
	return run[vpn%512], true
}

func (pm *pageMap) set(vpn uint64, p modelPage) {
	run := pm.runs[vpn/512]
	if run == nil {
		run = new([512]modelPage)
		pm.runs[vpn/512] = run
	}
	if run[vpn%512].level == 0 {
		pm.n++
	}
	run[vpn%512] = p
}

func newModel(inputBits int) *model {
	m := &model{inputBits: inputBits, pages: pageMap{runs: make(map[uint64]*[512]modelPage)}}
	switch {
	case inputBits > 39:
		m.startLevel = 0
	case inputBits > 30:
		m.startLevel = 1
	default:
		m.startLevel = 2
	}
	return m
}

// Map mirrors the documented contract: the range is split greedily, in
// increasing address order, into the largest pieces alignment allows (a
// 1 GiB block only below a level 1 or level 0 root). A piece that would
// cover an already mapped page is refused and the pieces before it stay.
// (A block is also refused over an existing table, but with ample table
// pages every table holds some mapping, so that is the same condition.)
func (m *model) Map(va, pa, size, attrs uint64) error {
	if size == 0 {
		return nil
	}
	if va+size > 1<<m.inputBits {
		return mmu.ErrInputRange
	}
	for size > 0 {
		level, bs := 3, page
		switch {
		case m.startLevel <= 1 && va%huge == 0 && pa%huge == 0 && size >= huge:
			level, bs = 1, huge
		case va%block == 0 && pa%block == 0 && size >= block:
			level, bs = 2, block
		}
		for off := uint64(0); off < bs; off += page {
			if _, ok := m.pages.get((va + off) / page); ok {
				return mmu.ErrOverlap
			}
		}
		for off := uint64(0); off < bs; off += page {
			m.pages.set((va+off)/page, modelPage{pa + off, attrs, level})
		}
		va, pa, size = va+bs, pa+bs, size-bs
	}
	return nil
}

// check compares Translate of va against the model, cheaply unless they
// differ.
func (m *model) check(t require.TestingT, tb *mmu.Tables, va uint64) {
	got := translate(tb, va)
	want, mapped := m.pages.get(va / page)
	if !mapped {
		if got.ok {
			require.Failf(t, "unmapped page translates", "va %#x: %+v", va, got)
		}
		return
	}
	if w := (translation{want.pa + va%page, want.attrs, want.level, true}); got != w {
		require.Equal(t, w, got, "va %#x", va)
	}
}

// checkLeaves walks the raw tables and checks that every leaf agrees with
// the model, that the leaves cover exactly the model's pages, that leaf
// descriptors have the right type bits and that every allocated table is
// reachable exactly once.
func (m *model) checkLeaves(t require.TestingT, tb *mmu.Tables, mem *fakeMem) {
	var pages uint64
	tables := map[uint64]bool{}
	var walk func(table uint64, level int, base uint64)
	// Only report through require on failure: it is slow in this loop.
	fail := func(format string, args ...any) { require.Failf(t, "bad tables", format, args...) }
	walk = func(table uint64, level int, base uint64) {
		if tables[table] {
			fail("table %#x reached twice", table)
		}
		tables[table] = true
		shift := 12 + 9*(3-level)
		for i, e := range mem.Table(table) {
			va := base + uint64(i)<<shift
			switch {
			case e&mmu.DescValid == 0:
				if e != 0 {
					fail("invalid entry %#x at va %#x level %d", e, va, level)
				}
				continue
			case va >= 1<<m.inputBits:
				fail("entry %#x at va %#x beyond the input space", e, va)
			case level < 3 && e&mmu.DescTable != 0:
				walk(e&mmu.OutputAddrMask, level+1, va)
				continue
			case level == 0:
				fail("level 0 block %#x at va %#x", e, va)
			case level == 3 && e&0b11 != 0b11:
				fail("level 3 entry %#x at va %#x is not a page", e, va)
			case e&^(mmu.OutputAddrMask|mmu.AttrMask|0b11) != 0:
				fail("stray bits in %#x at va %#x", e, va)
			}
			size := uint64(1) << shift
			if e&mmu.OutputAddrMask&(size-1) != 0 {
				fail("misaligned output %#x at va %#x level %d", e, va, level)
			}
			pages += size / page
			for _, p := range []uint64{va, va + size - page} {
				want, ok := m.pages.get(p / page)
				if got := (modelPage{e&mmu.OutputAddrMask + p - va, e & mmu.AttrMask, level}); !ok || got != want {
					fail("va %#x: tables have %+v, model has %+v (%v)", p, got, want, ok)
				}
			}
		}
	}
	walk(tb.Root(), tb.StartLevel(), 0)
	require.Equal(t, uint64(m.pages.n), pages, "pages mapped by the tables vs the model")
	require.Len(t, tables, mem.allocs, "allocated tables not reachable")
}

func TestMapMatchesModel(t *testing.T) {
	attrChoices := []uint64{
		mmu.S1Normal(mmu.Read),
		mmu.S1Normal(mmu.Read | mmu.Write),
		mmu.S1Normal(mmu.Read | mmu.Exec),
		mmu.S1Device(),
	}
	// What the generated operations did, to show they cover the cases.
	var stats struct{ ok, overlap, partial, inputRange, huge, block int }
	rapid.Check(t, func(rt *rapid.T) {
		inputBits := rapid.SampledFrom([]int{30, 32, 39, 40}).Draw(rt, "inputBits")
		mem := newFakeMem(1 << 16)
		var tb mmu.Tables
		require.NoError(rt, tb.Init(mem, inputBits))
		m := newModel(inputBits)
		require.Equal(rt, m.startLevel, tb.StartLevel())

		window := min(4*gib, uint64(1)<<inputBits)
		var vas []uint64
		ops := rapid.IntRange(1, 24).Draw(rt, "ops")
		for range ops {
			var va uint64
			align := rapid.SampledFrom([]uint64{page, block, huge}).Draw(rt, "align")
			if len(vas) > 0 && rapid.IntRange(0, 3).Draw(rt, "near") == 0 {
				// Close to an earlier range, to provoke overlaps.
				prev := rapid.SampledFrom(vas).Draw(rt, "prev")
				delta := uint64(rapid.IntRange(-600, 600).Draw(rt, "delta")) * page
				va = (prev + delta) &^ (align - 1) % window
			} else {
				va = rapid.Uint64Range(0, window/align-1).Draw(rt, "va") * align
			}
			paAlign := align
			if rapid.IntRange(0, 3).Draw(rt, "paUnaligned") == 0 {
				paAlign = page
			}
			pa := rapid.Uint64Range(0, (1<<40)/paAlign-1).Draw(rt, "pa") * paAlign
			var size uint64
			switch rapid.IntRange(0, 4).Draw(rt, "sizeKind") {
			case 0:
				size = page
			case 1:
				size = uint64(rapid.IntRange(2, 64).Draw(rt, "pages")) * page
			case 2:
				size = block
			case 3:
				size = block + page
			case 4:
				size = huge
			}
			attrs := rapid.SampledFrom(attrChoices).Draw(rt, "attrs")

			before := m.pages.n
			wantErr := m.Map(va, pa, size, attrs)
			switch {
			case wantErr == nil:
				stats.ok++
			case wantErr == mmu.ErrOverlap:
				stats.overlap++
				if m.pages.n > before {
					stats.partial++
				}
			case wantErr == mmu.ErrInputRange:
				stats.inputRange++
			}
			err := tb.Map(va, pa, size, attrs)
			if wantErr == nil {
				require.NoError(rt, err, "Map(%#x, %#x, %#x)", va, pa, size)
			} else {
				require.ErrorIs(rt, err, wantErr, "Map(%#x, %#x, %#x)", va, pa, size)
			}
			vas = append(vas, va)

			// Every touched page, with a varying offset, and its neighbours.
			end := min(va+size, uint64(1)<<inputBits)
			for p := va; p < end; p += page {
				m.check(rt, &tb, p+(p/page*0x3a5)%page)
			}
			if va >= page {
				m.check(rt, &tb, va-1)
			}
			m.check(rt, &tb, end)
			// And a sample of the rest of the window.
			for range 8 {
				m.check(rt, &tb, rapid.Uint64Range(0, window-1).Draw(rt, "sample"))
			}
		}
		m.checkLeaves(rt, &tb, mem)
		for _, run := range m.pages.runs {
			switch run[0].level {
			case 1:
				stats.huge++
			case 2:
				stats.block++
			}
		}
	})
	t.Logf("%+v", stats)
	assert.NotZero(t, stats.ok)
	assert.NotZero(t, stats.overlap)
	assert.NotZero(t, stats.partial)
	assert.NotZero(t, stats.inputRange)
	assert.NotZero(t, stats.huge)
	assert.NotZero(t, stats.block)
}
