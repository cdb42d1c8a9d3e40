package mmu_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/bulkhead-hv/bulkhead/mmu"
)

// s2Mem is a table memory that can concatenate roots and take pages back.
type s2Mem struct {
	tables map[uint64]*[mmu.Entries]uint64
	next   uint64
	freed  map[uint64]bool
}

func newS2Mem() *s2Mem {
	return &s2Mem{tables: map[uint64]*[mmu.Entries]uint64{}, next: 0x1_0000_0000, freed: map[uint64]bool{}}
}

func (m *s2Mem) AllocTable() (uint64, bool) { return m.AllocConcatenated(1) }

func (m *s2Mem) AllocConcatenated(n int) (uint64, bool) {
	align := uint64(n) * mmu.PageSize
	m.next = (m.next + align - 1) &^ (align - 1)
	pa := m.next
	for i := 0; i < n; i++ {
		m.tables[pa+uint64(i)*mmu.PageSize] = new([mmu.Entries]uint64)
	}
	m.next += align
	return pa, true
}

func (m *s2Mem) Table(pa uint64) *[mmu.Entries]uint64 {
	t, ok := m.tables[pa]
	if !ok || m.freed[pa] {
		panic("access to a table page that is not allocated")
	}
	return t
}

func (m *s2Mem) FreeTable(pa uint64) {
	if m.freed[pa] {
		panic("table freed twice")
	}
	m.freed[pa] = true
}

// bbmTLB checks break-before-make: when asked to invalidate va, no entry
// may translate it any more.
type bbmTLB struct {
	t      *testing.T
	tables *mmu.Tables
	calls  int
}

func (b *bbmTLB) Invalidate(va uint64, level int) {
	b.calls++
	if _, _, _, ok := b.tables.Translate(va); ok {
		b.t.Errorf("TLB invalidated for %#x while an entry still maps it", va)
	}
	if va%mmu.LevelSize(level) != 0 {
		b.t.Errorf("invalidation at %#x is not the base of its level-%d entry", va, level)
	}
}

func TestStage2Start(t *testing.T) {
	for _, tc := range []struct{ bits, level, concat int }{
		{48, 0, 1}, {44, 0, 1}, {43, 1, 16}, {42, 1, 8}, {40, 1, 2}, {39, 1, 1},
		{36, 1, 1}, {34, 2, 16}, {32, 2, 4}, {30, 2, 1}, {25, 2, 1},
	} {
		level, concat := mmu.Stage2Start(tc.bits)
		assert.Equal(t, tc.level, level, "%d bits", tc.bits)
		assert.Equal(t, tc.concat, concat, "%d bits", tc.bits)
	}
}

func TestStage2ConcatenatedRoot(t *testing.T) {
	m := newS2Mem()
	var s2 mmu.Tables
	require.NoError(t, s2.InitStage2(m, 40))
	assert.Equal(t, 2, s2.Concatenated())
	assert.Zero(t, s2.Root()%(2*mmu.PageSize), "concatenated roots are aligned to their size")
	// An IPA in the upper 512 GiB lands in the second root table.
	ipa := uint64(1)<<39 + 0x4000_0000
	require.NoError(t, s2.Map(ipa, 0x8000_0000, mmu.PageSize, mmu.S2Normal(mmu.Read|mmu.Write)))
	assert.NotZero(t, m.Table(s2.Root() + mmu.PageSize)[1], "second root table, entry 1")
	pa, attrs, _, ok := s2.Translate(ipa + 0x10)
	require.True(t, ok)
	assert.Equal(t, uint64(0x8000_0010), pa)
	assert.Equal(t, mmu.Read|mmu.Write, mmu.S2Perm(attrs))
	// VTCR_EL2: T0SZ 24, SL0 0b01 (level 1), WB, inner shareable, 4K, PS 40 bits, 16-bit VMIDs.
	assert.Equal(t, uint64(0x80000000|24|1<<6|1<<8|1<<10|3<<12|2<<16|1<<19), mmu.VTCREL2(40, 2, true))
	assert.Equal(t, uint64(7)<<48|s2.Root(), mmu.VTTBR(&s2, 7))

	var noConcat mmu.Tables
	assert.ErrorIs(t, noConcat.InitStage2(newFakeMem(10), 40), mmu.ErrNoConcat)
}

func TestStage2Attrs(t *testing.T) {
	assert.Equal(t, mmu.Read|mmu.Exec, mmu.S2Perm(mmu.S2Normal(mmu.Read|mmu.Exec)))
	assert.Equal(t, mmu.Read|mmu.Write, mmu.S2Perm(mmu.S2Device(mmu.Read|mmu.Write|mmu.Exec)), "devices never executable")
	assert.Equal(t, mmu.Perm(0), mmu.S2Perm(mmu.S2Normal(0)))
	assert.Zero(t, mmu.S2Normal(mmu.Read)&^mmu.AttrMask)
}

func TestUnmapSplitsBlocks(t *testing.T) {
	m := newS2Mem()
	var s2 mmu.Tables
	require.NoError(t, s2.InitStage2(m, 40))
	tlb := &bbmTLB{t: t, tables: &s2}
	s2.SetTLB(tlb)
	attrs := mmu.S2Normal(mmu.Read | mmu.Write)
	require.NoError(t, s2.Map(0x4000_0000, 0x8000_0000, 1<<30, attrs)) // one 1 GiB block
	_, _, level, _ := s2.Translate(0x4000_0000)
	require.Equal(t, 1, level)

	// Unmap one page in the middle: the 1 GiB block becomes 2 MiB blocks
	// and the 2 MiB block around the page becomes pages.
	hole := uint64(0x4020_3000)
	require.NoError(t, s2.Unmap(hole, mmu.PageSize))
	_, _, _, ok := s2.Translate(hole)
	assert.False(t, ok)
	for _, ipa := range []uint64{0x4000_0000, hole - mmu.PageSize, hole + mmu.PageSize, 0x4020_0000, 0x7fff_f000} {
		pa, a, _, ok := s2.Translate(ipa)
		require.True(t, ok, "%#x", ipa)
		assert.Equal(t, ipa+0x4000_0000, pa, "%#x", ipa)
		assert.Equal(t, attrs, a)
	}
	_, _, level, _ = s2.Translate(0x4000_0000)
	assert.Equal(t, 2, level, "far from the hole, 2 MiB blocks remain")
	_, _, level, _ = s2.Translate(hole + mmu.PageSize)
	assert.Equal(t, 3, level)
	assert.Positive(t, tlb.calls)

	// Unmapping a range with holes in it is fine.
	require.NoError(t, s2.Unmap(0x4000_0000, 1<<30))
	_, _, _, ok = s2.Translate(0x5000_0000)
	assert.False(t, ok)
}

func TestProtect(t *testing.T) {
	m := newS2Mem()
	var s2 mmu.Tables
	require.NoError(t, s2.InitStage2(m, 40))
	tlb := &bbmTLB{t: t, tables: &s2}
	s2.SetTLB(tlb)
	require.NoError(t, s2.Map(0x4000_0000, 0x9000_0000, 4<<20, mmu.S2Normal(mmu.Read|mmu.Write)))
	require.NoError(t, s2.Protect(0x4010_0000, 2*mmu.PageSize, mmu.S2Normal(mmu.Read)))
	_, a, _, _ := s2.Translate(0x4010_1000)
	assert.Equal(t, mmu.Read, mmu.S2Perm(a))
	pa, a, _, _ := s2.Translate(0x4010_2000)
	assert.Equal(t, mmu.Read|mmu.Write, mmu.S2Perm(a))
	assert.Equal(t, uint64(0x9010_2000), pa)
	assert.ErrorIs(t, s2.Protect(0x4000_0000, mmu.PageSize, 1), mmu.ErrAttrs)
	assert.ErrorIs(t, s2.Protect(0x4000_0001, mmu.PageSize, 0), mmu.ErrAlignment)
}

func TestDestroyFreesEveryTable(t *testing.T) {
	m := newS2Mem()
	var s2 mmu.Tables
	require.NoError(t, s2.InitStage2(m, 40))
	require.NoError(t, s2.Map(0x4000_0000, 0x8000_0000, 8<<20+3*mmu.PageSize, mmu.S2Normal(mmu.Read)))
	require.NoError(t, s2.Map(1<<39, 0x1000_0000, mmu.PageSize, mmu.S2Normal(mmu.Read)))
	n := s2.Destroy()
	assert.Equal(t, len(m.tables), n)
	assert.Equal(t, len(m.tables), len(m.freed), "every allocated table was freed")
}

func TestVMIDRollover(t *testing.T) {
	flushes := 0
	a := mmu.NewVMIDs(false, func() { flushes++ })
	seen := map[uint16]bool{}
	var v mmu.VMID
	for i := 0; i < 255; i++ {
		v = a.Refresh(mmu.VMID{})
		assert.NotZero(t, v.ID)
		assert.False(t, seen[v.ID], "VMID %d handed out twice in one generation", v.ID)
		seen[v.ID] = true
	}
	assert.Equal(t, v, a.Refresh(v), "a current VMID is kept")
	assert.Equal(t, 0, flushes)
	w := a.Refresh(mmu.VMID{})
	assert.Equal(t, uint64(2), w.Gen)
	assert.Equal(t, uint16(1), w.ID)
	assert.Equal(t, 1, flushes, "rollover flushes the TLBs once")
	assert.NotEqual(t, v, a.Refresh(v), "old-generation VMIDs are replaced")
	assert.Equal(t, uint64(2), a.Generation())
}

// Random map/unmap/protect sequences against a page-level model.
func TestStage2MatchesModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		m := newS2Mem()
		var s2 mmu.Tables
		if err := s2.InitStage2(m, 40); err != nil {
			rt.Fatal(err)
		}
		tlb := &bbmTLB{t: t, tables: &s2}
		s2.SetTLB(tlb)
		type ent struct{ pa, attrs uint64 }
		model := map[uint64]ent{} // IPA page -> entry
		const window = 8 << 20    // 8 MiB of IPA: 2048 pages, four 2 MiB blocks
		const ipaBase = 0x4000_0000
		perms := []uint64{mmu.S2Normal(mmu.Read), mmu.S2Normal(mmu.Read | mmu.Write), mmu.S2Normal(mmu.Read | mmu.Exec)}
		pageOf := func(lo, hi int) uint64 { return uint64(rapid.IntRange(lo, hi).Draw(rt, "page")) * mmu.PageSize }
		for step := 0; step < 30; step++ {
			op := rapid.IntRange(0, 2).Draw(rt, "op")
			var off, size uint64
			if rapid.Bool().Draw(rt, "block") {
				off = uint64(rapid.IntRange(0, 3).Draw(rt, "blk")) << 21
				size = 2 << 20
			} else {
				off = pageOf(0, 2047)
				size = pageOf(1, 600)
				if off+size > window {
					size = window - off
				}
			}
			ipa := ipaBase + off
			attrs := rapid.SampledFrom(perms).Draw(rt, "attrs")
			switch op {
			case 0:
				pa := 0x8000_0000 + off // keeps 2 MiB alignment when the IPA has it
				free := true
				for p := ipa; p < ipa+size; p += mmu.PageSize {
					if _, ok := model[p]; ok {
						free = false
					}
				}
				err := s2.Map(ipa, pa, size, attrs)
				if free {
					if err != nil {
						rt.Fatalf("map of free range failed: %v", err)
					}
					for p := uint64(0); p < size; p += mmu.PageSize {
						model[ipa+p] = ent{pa + p, attrs}
					}
				} else if err == nil {
					rt.Fatalf("map over a mapped page succeeded")
				} else {
					// Partial success is allowed: resync the model from the tables.
					for p := ipa; p < ipa+size; p += mmu.PageSize {
						if got, a, _, ok := s2.Translate(p); ok {
							if _, had := model[p]; !had {
								model[p] = ent{got, a}
							}
						}
					}
				}
			case 1:
				if err := s2.Unmap(ipa, size); err != nil {
					rt.Fatal(err)
				}
				for p := ipa; p < ipa+size; p += mmu.PageSize {
					delete(model, p)
				}
			case 2:
				if err := s2.Protect(ipa, size, attrs); err != nil {
					rt.Fatal(err)
				}
				for p := ipa; p < ipa+size; p += mmu.PageSize {
					if e, ok := model[p]; ok {
						model[p] = ent{e.pa, attrs}
					}
				}
			}
			for p := uint64(ipaBase); p < ipaBase+window; p += mmu.PageSize {
				pa, a, _, ok := s2.Translate(p)
				e, want := model[p]
				if ok != want || (ok && (pa != e.pa || a != e.attrs)) {
					rt.Fatalf("step %d: IPA %#x: tables (%v %#x %#x), model (%v %#x %#x)", step, p, ok, pa, a, want, e.pa, e.attrs)
				}
			}
		}
	})
}
