package qemuvirt

import (
	"errors"
	"fmt"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/mmu"
)

// realImage is where a real build's linker put the sections (text at
// TextBase, -R 0x1000).
var realImage = Image{Text: TextBase, ROData: 0x402b3000, NoPtrData: 0x403a04a0, End: 0x4043b1a0}

const hypTop = RAMBase + HypRAMSize

func TestLayout(t *testing.T) {
	regs, err := Layout(realImage)
	require.NoError(t, err)

	// Contiguous, sorted and page aligned, covering exactly the
	// hypervisor's RAM.
	assert.Equal(t, uint64(RAMBase), regs[0].Start)
	assert.Equal(t, uint64(hypTop), regs[len(regs)-1].End)
	for i, r := range regs {
		assert.LessOrEqual(t, r.Start, r.End, "region %d %s", i, r)
		assert.Zero(t, r.Start%mmu.PageSize, "region %d %s", i, r)
		assert.Zero(t, r.End%mmu.PageSize, "region %d %s", i, r)
		if i > 0 {
			assert.Equal(t, regs[i-1].End, r.Start, "region %d %s does not follow %s", i, r, regs[i-1])
		}
		assert.False(t, r.Perm&mmu.Write != 0 && r.Perm&mmu.Exec != 0, "region %s is writable and executable", r)
		assert.False(t, r.Device, "region %s is device memory", r)
		if r.Unmapped {
			assert.Equal(t, "guard", r.Name)
			assert.Zero(t, r.Perm, "unmapped region %s has permissions", r)
			assert.Equal(t, uint64(GuardSize), r.End-r.Start, "guard %s is not one page", r)
			assert.Equal(t, uint64(mmu.PageSize), r.End-r.Start, "guard %s is not one page", r)
		} else {
			assert.NotZero(t, r.Perm&mmu.Read, "mapped region %s is not readable", r)
		}
	}

	byName := map[string]Region{}
	guards := 0
	for _, r := range regs {
		if r.Unmapped {
			guards++
			continue
		}
		byName[r.Name] = r
	}
	assert.Equal(t, 2, guards)

	want := []struct {
		name       string
		start, end uint64
		perm       mmu.Perm
	}{
		{"boot data (device tree)", RAMBase, TextBase, mmu.Read},
		{"text", TextBase, 0x402b3000, mmu.Read | mmu.Exec},
		{"read-only data", 0x402b3000, 0x403a0000, mmu.Read},
		{"data, bss", 0x403a0000, 0x4043c000, mmu.Read | mmu.Write},
		{"heap", 0x4043c000, hypTop - ExcStackSize - GuardSize - BootStackSize - GuardSize, mmu.Read | mmu.Write},
		{"boot stack", hypTop - StackOffset - BootStackSize, hypTop - StackOffset, mmu.Read | mmu.Write},
		{"exception stack", hypTop - ExcStackSize, hypTop, mmu.Read | mmu.Write},
	}
	for _, w := range want {
		r, ok := byName[w.name]
		if !assert.True(t, ok, "no region %q", w.name) {
			continue
		}
		assert.Equal(t, fmt.Sprintf("%#x-%#x %s", w.start, w.end, w.perm),
			fmt.Sprintf("%#x-%#x %s", r.Start, r.End, r.Perm), w.name)
	}

	// Guards sit right below each stack.
	assert.Equal(t, byName["boot stack"].Start, regs[5].End)
	assert.True(t, regs[5].Unmapped)
	assert.Equal(t, byName["exception stack"].Start, regs[7].End)
	assert.True(t, regs[7].Unmapped)
	// The exception stack is at the very top; StackOffset (the runtime's
	// RamStackOffset) leaves room for it and its guard.
	assert.Equal(t, uint64(ExcStackSize), byName["exception stack"].End-byName["exception stack"].Start)
	assert.Equal(t, uint64(BootStackSize), byName["boot stack"].End-byName["boot stack"].Start)
	assert.Equal(t, uint64(hypTop-StackOffset), byName["boot stack"].End)
}

func TestRegionString(t *testing.T) {
	regs, err := Layout(realImage)
	require.NoError(t, err)
	// The boot banner prints these lines and cmd/hyp's boot tests match them.
	assert.Equal(t, "0x000040200000-0x0000402b3000 r-x  normal   text", regs[1].String())
	assert.Equal(t, "0x000043fde000-0x000043fdf000 ---  unmapped guard", regs[5].String())
	assert.Regexp(t, regexp.MustCompile(`^0x[0-9a-f]{12}-0x[0-9a-f]{12} rw-  normal   exception stack$`), regs[8].String())
	assert.Equal(t, "0x000009000000-0x000009001000 rw-  device   uart",
		Region{Name: "uart", Start: 0x9000000, End: 0x9001000, Perm: mmu.Read | mmu.Write, Device: true}.String())
}

func TestLayoutEdges(t *testing.T) {
	heapHi := uint64(hypTop - StackOffset - BootStackSize - GuardSize)

	// Writable data on the page right after text: no read-only data.
	img := realImage
	img.NoPtrData = 0x402b3000
	regs, err := Layout(img)
	require.NoError(t, err)
	assert.Equal(t, regs[2].Start, regs[2].End, "empty read-only data region")
	assert.Equal(t, uint64(0x402b3000), regs[3].Start)

	// The text region runs to the read-only segment, whose start is
	// page aligned.
	img = realImage
	regs, err = Layout(img)
	require.NoError(t, err)
	assert.Equal(t, uint64(0x402b3000), regs[1].End)
	img.ROData = TextBase
	_, err = Layout(img)
	assert.Error(t, err, "no room for text")

	// The largest image still leaves one page of heap.
	img = realImage
	img.End = heapHi - mmu.PageSize
	regs, err = Layout(img)
	require.NoError(t, err)
	assert.Equal(t, uint64(mmu.PageSize), regs[4].End-regs[4].Start)
}

func TestLayoutErrors(t *testing.T) {
	heapHi := uint64(hypTop - StackOffset - BootStackSize - GuardSize)
	tests := []struct {
		name string
		img  Image
		want error
		msg  string
	}{
		{"text above TextBase", Image{TextBase + mmu.PageSize, 0x402b3000, 0x403a04a0, 0x4043b1a0},
			errTextBase, "text does not start at the top of the boot data window"},
		{"text in the boot data", Image{RAMBase, 0x402b3000, 0x403a04a0, 0x4043b1a0},
			errTextBase, "boot data window"},
		{"data shares the last text page", Image{TextBase, 0x402b3000, 0x402b2800, 0x4043b1a0},
			errDataAlign, "do not start on separate pages"},
		{"data inside text", Image{TextBase, 0x402b3000, 0x40201000, 0x4043b1a0},
			errDataAlign, "-R 0x1000"},
		{"image runs into the guard", Image{TextBase, 0x402b3000, 0x403a04a0, heapHi - 1},
			errTooBig, "do not fit in the hypervisor's RAM"},
		{"image ends at the guard", Image{TextBase, 0x402b3000, 0x403a04a0, heapHi},
			errTooBig, "do not fit"},
		{"image near the top", Image{TextBase, 0x402b3000, 0x403a04a0, hypTop - 0x100},
			errTooBig, "do not fit"},
		{"image past the top", Image{TextBase, 0x402b3000, 0x403a04a0, hypTop + 0x100000},
			errTooBig, "do not fit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			regs, err := Layout(tc.img)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tc.want), "got %v, want %v", err, tc.want)
			var le *LayoutError
			require.True(t, errors.As(err, &le))
			assert.Contains(t, err.Error(), "qemuvirt: memory layout: ")
			assert.Contains(t, err.Error(), tc.msg)
			assert.Equal(t, Regions{}, regs)

			// MapHypervisor maps nothing for a bad layout.
			mem := newFakeMemory(64)
			var tables mmu.Tables
			require.NoError(t, tables.Init(mem, 48))
			assert.ErrorIs(t, MapHypervisor(&tables, tc.img), tc.want)
			assert.Equal(t, 1, mem.used(), "only the root table")
		})
	}
}

// fakeMemory backs mmu.Tables with Go arrays at made-up physical addresses.
type fakeMemory struct {
	tables   map[uint64]*[mmu.Entries]uint64
	next     uint64
	capacity int
}

func newFakeMemory(capacity int) *fakeMemory {
	return &fakeMemory{tables: map[uint64]*[mmu.Entries]uint64{}, next: 0x1000_0000, capacity: capacity}
}

func (m *fakeMemory) AllocTable() (uint64, bool) {
	if len(m.tables) >= m.capacity {
		return 0, false
	}
	pa := m.next
	m.next += mmu.PageSize
	m.tables[pa] = new([mmu.Entries]uint64)
	return pa, true
}

func (m *fakeMemory) Table(pa uint64) *[mmu.Entries]uint64 {
	t, ok := m.tables[pa]
	if !ok {
		panic(fmt.Sprintf("fake memory: no table at %#x", pa))
	}
	return t
}

func (m *fakeMemory) used() int { return len(m.tables) }

func mapHyp(t *testing.T, inputBits, capacity int) (*mmu.Tables, *fakeMemory) {
	t.Helper()
	mem := newFakeMemory(capacity)
	tables := new(mmu.Tables)
	require.NoError(t, tables.Init(mem, inputBits))
	require.NoError(t, MapHypervisor(tables, realImage))
	return tables, mem
}

// The whole of the hypervisor's RAM, page by page, is mapped as its layout
// says: identity, W^X, guards unmapped.
func TestMapHypervisor(t *testing.T) {
	regs, err := Layout(realImage)
	require.NoError(t, err)
	// The input sizes hwinit0 picks from ID_AA64MMFR0_EL1.PARange.
	for _, bits := range []int{32, 36, 40, 42, 44, 48} {
		t.Run(fmt.Sprintf("%d-bit", bits), func(t *testing.T) {
			tables, mem := mapHyp(t, bits, 1000)
			// hwinit's pool holds 96 tables, and devices need some too.
			assert.LessOrEqual(t, mem.used(), 32, "tables used")

			i, pages, mapped := 0, 0, 0
			for va := uint64(RAMBase); va < hypTop; va += mmu.PageSize {
				for va >= regs[i].End {
					i++
				}
				r := regs[i]
				pages++
				pa, attrs, _, ok := tables.Translate(va)
				if r.Unmapped || r.End == r.Start {
					if !assert.False(t, ok, "guard page %#x is mapped", va) {
						return
					}
					continue
				}
				if !assert.True(t, ok, "page %#x of %s is not mapped", va, r.Name) {
					return
				}
				mapped++
				perm, device := mmu.S1Perm(attrs)
				ok = assert.Equal(t, va, pa, "page %#x is not identity mapped", va) &&
					assert.Equal(t, r.Perm, perm, "page %#x of %s", va, r.Name) &&
					assert.False(t, device, "page %#x of %s is device memory", va, r.Name) &&
					assert.False(t, perm&mmu.Write != 0 && perm&mmu.Exec != 0, "page %#x is writable and executable", va) &&
					assert.NotZero(t, attrs&mmu.S1_AF, "page %#x has no access flag", va)
				if !ok {
					return
				}
			}
			assert.Equal(t, HypRAMSize/mmu.PageSize, pages)
			assert.Equal(t, HypRAMSize/mmu.PageSize-2, mapped, "all but the two guard pages")

			// Offsets within a page translate too.
			pa, _, _, ok := tables.Translate(TextBase + 0x1234)
			require.True(t, ok)
			assert.Equal(t, uint64(TextBase+0x1234), pa)

			// Nothing outside the hypervisor's RAM is mapped.
			for _, va := range []uint64{0, mmu.PageSize, RAMBase - mmu.PageSize, hypTop, hypTop + mmu.PageSize, 0x9000000, 0x8000000} {
				_, _, _, ok := tables.Translate(va)
				assert.False(t, ok, "%#x is mapped", va)
			}
		})
	}
}

// Mapping the hypervisor twice, or anything over it, is refused.
func TestMapHypervisorOverlap(t *testing.T) {
	tables, _ := mapHyp(t, 40, 1000)
	assert.ErrorIs(t, MapHypervisor(tables, realImage), mmu.ErrOverlap)
	assert.ErrorIs(t, MapDevice(tables, TextBase, mmu.PageSize), mmu.ErrOverlap, "a device over the text")
	assert.ErrorIs(t, MapDevice(tables, hypTop-mmu.PageSize, 2*mmu.PageSize), mmu.ErrOverlap,
		"a device over the exception stack")
	// The guard below the exception stack stays unmapped after the failed
	// attempts.
	_, _, _, ok := tables.Translate(hypTop - StackOffset)
	assert.False(t, ok)
}

func TestMapDevice(t *testing.T) {
	tables, _ := mapHyp(t, 40, 1000)

	require.NoError(t, MapDevice(tables, 0x9000000, 0x1000))
	pa, attrs, level, ok := tables.Translate(0x9000000 + 0x18)
	require.True(t, ok)
	assert.Equal(t, uint64(0x9000018), pa)
	assert.Equal(t, 3, level, "one page")
	perm, device := mmu.S1Perm(attrs)
	assert.True(t, device)
	assert.Equal(t, mmu.Read|mmu.Write, perm, "device rw-")
	assert.NotZero(t, attrs&mmu.S1_XN, "device memory is execute-never")
	assert.Equal(t, mmu.S1Device(), attrs)
	for _, va := range []uint64{0x9000000 - mmu.PageSize, 0x9001000} {
		_, _, _, ok := tables.Translate(va)
		assert.False(t, ok, "%#x is mapped", va)
	}

	// Twice is an overlap.
	assert.ErrorIs(t, MapDevice(tables, 0x9000000, 0x1000), mmu.ErrOverlap)
	assert.ErrorIs(t, MapDevice(tables, 0x9000800, 0x10), mmu.ErrOverlap)

	// Unaligned start and size round out to whole pages.
	require.NoError(t, MapDevice(tables, 0x9010010, 0x18))
	_, attrs, _, ok = tables.Translate(0x9010000)
	require.True(t, ok)
	_, device = mmu.S1Perm(attrs)
	assert.True(t, device)
	for _, va := range []uint64{0x900f000, 0x9011000} {
		_, _, _, ok := tables.Translate(va)
		assert.False(t, ok, "%#x is mapped", va)
	}
	// A range straddling a page boundary maps both pages.
	require.NoError(t, MapDevice(tables, 0x9020ff0, 0x20))
	for _, va := range []uint64{0x9020000, 0x9021000} {
		pa, _, _, ok := tables.Translate(va)
		assert.True(t, ok, "%#x is not mapped", va)
		assert.Equal(t, va, pa)
	}
	_, _, _, ok = tables.Translate(0x9022000)
	assert.False(t, ok)

	// A GIC-sized region.
	require.NoError(t, MapDevice(tables, 0x80a0000, 0xf60000))
	for _, va := range []uint64{0x80a0000, 0x8ffffff & ^uint64(mmu.PageSize-1)} {
		_, attrs, _, ok := tables.Translate(va)
		require.True(t, ok, "%#x", va)
		_, device := mmu.S1Perm(attrs)
		assert.True(t, device)
	}
	_, _, _, ok = tables.Translate(0x9000000 + 0x1000)
	assert.False(t, ok)

	// The hypervisor's own mappings are untouched.
	_, attrs, _, ok = tables.Translate(TextBase)
	require.True(t, ok)
	perm, device = mmu.S1Perm(attrs)
	assert.Equal(t, mmu.Read|mmu.Exec, perm)
	assert.False(t, device)
}

// Running out of table pages is reported, at every pool size too small.
func TestMapHypervisorPoolExhaustion(t *testing.T) {
	_, full := mapHyp(t, 48, 1000)
	need := full.used()
	require.Greater(t, need, 2)

	mem := newFakeMemory(2)
	var tables mmu.Tables
	require.NoError(t, tables.Init(mem, 48))
	assert.ErrorIs(t, MapHypervisor(&tables, realImage), mmu.ErrNoTables)

	for capacity := 1; capacity < need; capacity++ {
		mem := newFakeMemory(capacity)
		var tables mmu.Tables
		require.NoError(t, tables.Init(mem, 48))
		assert.ErrorIs(t, MapHypervisor(&tables, realImage), mmu.ErrNoTables, "capacity %d", capacity)
		assert.Equal(t, capacity, mem.used())
	}
	mem = newFakeMemory(need)
	require.NoError(t, tables.Init(mem, 48))
	assert.NoError(t, MapHypervisor(&tables, realImage), "exactly %d tables", need)

	// The device tables come from the same pool.
	assert.ErrorIs(t, MapDevice(&tables, 0x9000000, 0x1000), mmu.ErrNoTables)
}
