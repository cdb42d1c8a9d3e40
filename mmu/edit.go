package mmu

import "errors"

var ErrNoConcat = errors.New("mmu: memory cannot allocate concatenated root tables")

// InitStage2 allocates the root of a stage 2 regime for an IPA space of
// ipaBits. Where up to 16 concatenated root tables cover the space one
// level lower than a single table would, it concatenates them and saves a
// level of walk (Arm ARM D8.2.5, "Concatenated translation tables").
func (t *Tables) InitStage2(mem Memory, ipaBits int) error {
	if ipaBits < 25 || ipaBits > 48 {
		return ErrInputBits
	}
	level, concat := Stage2Start(ipaBits)
	root, ok := uint64(0), false
	if concat == 1 {
		root, ok = mem.AllocTable()
	} else {
		ca, can := mem.(ConcatAllocator)
		if !can {
			return ErrNoConcat
		}
		root, ok = ca.AllocConcatenated(concat)
	}
	if !ok {
		return ErrNoTables
	}
	*t = Tables{mem: mem, root: root, concat: concat, startLevel: level, inputBits: ipaBits}
	return nil
}

// Stage2Start returns the start level and number of concatenated root
// tables for an IPA size with the 4 KiB granule.
func Stage2Start(ipaBits int) (level, concat int) {
	for level = 0; level < finalLevel; level++ {
		// Bits the next level down would leave for the root to cover.
		extra := ipaBits - (int(LevelShift(level+1)) + levelBits)
		if extra > 4 { // more than 16 tables: stay at this level
			break
		}
	}
	if level > 2 {
		level = 2
	}
	extra := ipaBits - (int(LevelShift(level)) + levelBits)
	if extra < 0 {
		extra = 0
	}
	return level, 1 << extra
}

// Concatenated is the number of root tables.
func (t *Tables) Concatenated() int { return t.concat }

// find walks to the entry that decides va: a valid leaf, or the first
// invalid entry. table is the PA of the table holding it.
func (t *Tables) find(va uint64) (e *uint64, level int) {
	var table uint64
	for l := t.startLevel; l <= finalLevel; l++ {
		e = t.slot(table, va, l)
		if *e&DescValid == 0 || l == finalLevel || *e&DescTable == 0 {
			return e, l
		}
		table = *e & OutputAddrMask
	}
	return nil, finalLevel
}

func leafType(level int) uint64 {
	if level == finalLevel {
		return DescTable | DescValid
	}
	return DescValid
}

// split replaces the block at e (level, mapping base) by a table of the
// next level with the same output and attributes, break-before-make.
func (t *Tables) split(e *uint64, level int, base uint64) error {
	next, ok := t.mem.AllocTable()
	if !ok {
		return ErrNoTables
	}
	old := *e
	child := t.mem.Table(next)
	cs := LevelSize(level + 1)
	out := old & OutputAddrMask &^ (LevelSize(level) - 1)
	for i := range child {
		child[i] = (out + uint64(i)*cs) | old&AttrMask | leafType(level+1)
	}
	t.breakEntry(e, base, level)
	*e = next | DescTable | DescValid
	return nil
}

// breakEntry clears a valid entry and invalidates its cached copies: the
// "break" half of break-before-make (Arm ARM D8.16.1).
func (t *Tables) breakEntry(e *uint64, va uint64, level int) {
	*e = 0
	if t.tlb != nil {
		t.tlb.Invalidate(va, level)
	}
}

// SetTLB sets the TLB maintenance used when live entries change. Tables
// that are not live yet (being built before the MMU or VM uses them) need
// none.
func (t *Tables) SetTLB(tlb TLB) { t.tlb = tlb }

// empty reports whether the table at pa (at level) maps nothing.
func (t *Tables) empty(pa uint64, level int) bool {
	for _, e := range t.mem.Table(pa) {
		if e&DescValid == 0 {
			continue
		}
		if level == finalLevel || e&DescTable == 0 || !t.empty(e&OutputAddrMask, level+1) {
			return false
		}
	}
	return true
}

// freeTree returns the table at pa and every table below it.
func (t *Tables) freeTree(pa uint64, level int) int {
	n := 1
	if level < finalLevel {
		for _, e := range t.mem.Table(pa) {
			if e&DescValid != 0 && e&DescTable != 0 {
				n += t.freeTree(e&OutputAddrMask, level+1)
			}
		}
	}
	if f, ok := t.mem.(Freer); ok {
		f.FreeTable(pa)
	}
	return n
}

// edit applies fn to every leaf in [va, va+size), splitting blocks that
// straddle the range's ends. fn gets the cleared entry's old value and
// returns the new one (0 to leave it unmapped).
func (t *Tables) edit(va, size uint64, fn func(old uint64) uint64) error {
	if va%PageSize != 0 || size%PageSize != 0 {
		return ErrAlignment
	}
	end := va + size
	if end < va || end > 1<<t.inputBits {
		return ErrInputRange
	}
	for va < end {
		e, level := t.find(va)
		bs := LevelSize(level)
		base := va &^ (bs - 1)
		if e == nil || *e&DescValid == 0 {
			va = base + bs
			continue
		}
		if base < va || base+bs > end {
			if err := t.split(e, level, base); err != nil {
				return err
			}
			continue
		}
		old := *e
		t.breakEntry(e, base, level)
		if n := fn(old); n != 0 {
			*e = n
		}
		va = base + bs
	}
	return nil
}

// Unmap removes every mapping in [va, va+size), break-before-make; blocks
// that extend past the range are split first so only the range goes.
// Unmapped holes in the range are fine. Emptied tables stay until Destroy.
func (t *Tables) Unmap(va, size uint64) error {
	return t.edit(va, size, func(uint64) uint64 { return 0 })
}

// Protect changes the attributes of every mapping in [va, va+size),
// break-before-make.
func (t *Tables) Protect(va, size, attrs uint64) error {
	if attrs&^AttrMask != 0 {
		return ErrAttrs
	}
	return t.edit(va, size, func(old uint64) uint64 { return old&^AttrMask | attrs })
}

// Destroy returns every table page, the root included, to a Memory that
// implements Freer. The Tables must not be used afterwards.
func (t *Tables) Destroy() int {
	n := 0
	for i := 0; i < t.concat; i++ {
		n += t.freeTree(t.root+uint64(i)*PageSize, t.startLevel)
	}
	*t = Tables{}
	return n
}
