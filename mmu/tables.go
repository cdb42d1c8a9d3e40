// Package mmu builds and walks VMSAv8-64 translation tables with the 4 KiB
// granule: the hypervisor's own EL2 stage 1 map now, guests' stage 2 maps
// later. The logic is pure Go over a Memory seam, so the same code runs on
// the host under go test and at EL2 before the Go heap exists: nothing here
// allocates.
package mmu

import "errors"

// Translation granule geometry (Arm ARM D8.2, "Translation table walk").
const (
	PageShift  = 12
	PageSize   = 1 << PageShift
	Entries    = 512
	levelBits  = 9
	finalLevel = 3
)

// Descriptor bits shared by every VMSAv8-64 format (Arm ARM D8.3).
const (
	DescValid = 1 << 0
	// DescTable marks a table descriptor at levels 0-2 and a page
	// descriptor at level 3; clear at levels 1-2 it marks a block.
	DescTable = 1 << 1
	// OutputAddrMask selects output address bits [47:12].
	OutputAddrMask = 0x0000_ffff_ffff_f000
	// AttrMask selects the lower [11:2] and upper [63:50] leaf attributes.
	AttrMask = 0xfffc_0000_0000_0ffc
)

var (
	ErrInputRange = errors.New("mmu: address outside the input address range")
	ErrAlignment  = errors.New("mmu: address or size not page aligned")
	ErrOverlap    = errors.New("mmu: range overlaps an existing mapping")
	ErrNoTables   = errors.New("mmu: out of table pages")
	ErrAttrs      = errors.New("mmu: attributes overlap descriptor type or address bits")
	ErrInputBits  = errors.New("mmu: input address size must be 25 to 48 bits")
)

// Memory is the seam between the table logic and physical memory.
type Memory interface {
	// AllocTable returns the physical address of a zeroed, 4 KiB-aligned
	// table page, or false when none is left.
	AllocTable() (pa uint64, ok bool)
	// Table returns the table page at physical address pa.
	Table(pa uint64) *[Entries]uint64
}

// Tables is one translation regime's tables, from a single root (or, for
// stage 2, up to 16 concatenated root tables).
type Tables struct {
	mem        Memory
	root       uint64
	concat     int // number of concatenated root tables, 1 for stage 1
	startLevel int
	inputBits  int
	tlb        TLB
}

// ConcatAllocator is implemented by a Memory that can hand out n contiguous
// table pages aligned to n pages, as concatenated stage 2 roots need.
type ConcatAllocator interface {
	AllocConcatenated(n int) (pa uint64, ok bool)
}

// Freer is implemented by a Memory that takes table pages back.
type Freer interface {
	FreeTable(pa uint64)
}

// TLB is the seam to TLB maintenance for break-before-make: Invalidate is
// called after the entry mapping the block or page at va (mapped at level)
// was cleared, and must return only once no CPU can still use a cached
// copy of it (TLBI ...IS then DSB ISH).
type TLB interface {
	Invalidate(va uint64, level int)
}

// LevelShift is the number of input address bits below a level's index.
func LevelShift(level int) uint { return uint(PageShift + levelBits*(finalLevel-level)) }

// LevelSize is the size of the region one entry at level maps.
func LevelSize(level int) uint64 { return 1 << LevelShift(level) }

// Init allocates the root table for an input address space of inputBits
// (64 - TnSZ). The walk starts at the lowest level that covers it.
func (t *Tables) Init(mem Memory, inputBits int) error {
	if inputBits < 25 || inputBits > 48 {
		return ErrInputBits
	}
	root, ok := mem.AllocTable()
	if !ok {
		return ErrNoTables
	}
	*t = Tables{mem: mem, root: root, concat: 1, inputBits: inputBits}
	for t.startLevel = finalLevel; t.startLevel > 0; t.startLevel-- {
		if int(LevelShift(t.startLevel))+levelBits >= inputBits {
			break
		}
	}
	return nil
}

// Root is the physical address of the root table (for TTBR0_ELx/VTTBR_EL2).
func (t *Tables) Root() uint64 { return t.root }

// StartLevel is the level of the root table.
func (t *Tables) StartLevel() int { return t.startLevel }

// InputBits is the size of the input address space.
func (t *Tables) InputBits() int { return t.inputBits }

func (t *Tables) index(va uint64, level int) uint64 {
	return (va >> LevelShift(level)) & (Entries - 1)
}

// rootSlot returns the root-level entry for va, across concatenated tables.
func (t *Tables) rootSlot(va uint64) *uint64 {
	idx := (va >> LevelShift(t.startLevel)) & (uint64(Entries*t.concat) - 1)
	table := t.mem.Table(t.root + (idx/Entries)*PageSize)
	return &table[idx%Entries]
}

// slot returns the entry for va at level: the root slot at the start
// level, else the entry in the table at tablePA.
func (t *Tables) slot(tablePA, va uint64, level int) *uint64 {
	if level == t.startLevel {
		return t.rootSlot(va)
	}
	return &t.mem.Table(tablePA)[t.index(va, level)]
}

// Map maps [va, va+size) to [pa, pa+size) with leaf attributes attrs,
// using the largest blocks that alignment allows (1 GiB at level 1, 2 MiB
// at level 2, else 4 KiB pages). It refuses to replace any existing
// mapping: changing a live mapping needs break-before-make, which is the
// caller's protocol. On error the ranges mapped before it stay mapped.
func (t *Tables) Map(va, pa, size, attrs uint64) error {
	if attrs&^AttrMask != 0 {
		return ErrAttrs
	}
	if va%PageSize != 0 || pa%PageSize != 0 || size%PageSize != 0 {
		return ErrAlignment
	}
	if size == 0 {
		return nil
	}
	if va+size < va || va+size > 1<<t.inputBits || pa+size < pa || pa+size-1 > OutputAddrMask|0xfff {
		return ErrInputRange
	}
	for size > 0 {
		level := finalLevel
		for l := 1; l < finalLevel; l++ {
			if l < t.startLevel {
				continue
			}
			bs := LevelSize(l)
			if va%bs == 0 && pa%bs == 0 && size >= bs {
				level = l
				break
			}
		}
		if err := t.mapOne(va, pa, level, attrs); err != nil {
			return err
		}
		bs := LevelSize(level)
		va, pa, size = va+bs, pa+bs, size-bs
	}
	return nil
}

func (t *Tables) mapOne(va, pa uint64, level int, attrs uint64) error {
	var table uint64
	for l := t.startLevel; l < level; l++ {
		e := t.slot(table, va, l)
		if *e&DescValid == 0 {
			next, ok := t.mem.AllocTable()
			if !ok {
				return ErrNoTables
			}
			*e = next | DescTable | DescValid
		} else if *e&DescTable == 0 {
			return ErrOverlap // a block already covers va
		}
		table = *e & OutputAddrMask
	}
	e := t.slot(table, va, level)
	if *e&DescValid != 0 && *e&DescTable != 0 && level < finalLevel && t.empty(*e&OutputAddrMask, level+1) {
		// Only empty tables (left by Unmap, or by a Map that ran out of
		// table pages) are below: replace the table by the block,
		// break-before-make for the walk caches.
		sub := *e & OutputAddrMask
		t.breakEntry(e, va, level)
		t.freeTree(sub, level+1)
	}
	if *e&DescValid != 0 {
		return ErrOverlap
	}
	desc := pa | attrs | DescValid
	if level == finalLevel {
		desc |= DescTable // page descriptor
	}
	*e = desc
	return nil
}

// Translate walks the tables for va and returns the output address, the
// leaf attributes and the level of the leaf.
func (t *Tables) Translate(va uint64) (pa, attrs uint64, level int, ok bool) {
	if va >= 1<<t.inputBits {
		return 0, 0, 0, false
	}
	var table uint64
	for l := t.startLevel; l <= finalLevel; l++ {
		e := *t.slot(table, va, l)
		if e&DescValid == 0 {
			return 0, 0, l, false
		}
		if l == finalLevel && e&DescTable == 0 {
			return 0, 0, l, false // reserved encoding at level 3
		}
		if l == finalLevel || e&DescTable == 0 {
			off := va & (LevelSize(l) - 1)
			return (e & OutputAddrMask &^ (LevelSize(l) - 1)) + off, e & AttrMask, l, true
		}
		table = e & OutputAddrMask
	}
	return 0, 0, 0, false
}
