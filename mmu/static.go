package mmu

import "unsafe"

// StaticPool hands out table pages from a fixed array, such as an image's
// bss (zeroed by the loader), at their addresses: for tables built with
// the MMU off or under an identity map. Pages are never given back. It
// allocates nothing, so it works before the Go heap exists.
type StaticPool struct {
	mem              unsafe.Pointer // &mem[0], which also keeps mem alive
	base             uint64
	first, next, end uint64
}

// Init takes the page-aligned part of mem.
func (p *StaticPool) Init(mem []byte) {
	p.mem = unsafe.Pointer(&mem[0])
	base := uint64(uintptr(p.mem))
	p.base = base
	p.first = (base + PageSize - 1) &^ (PageSize - 1)
	p.next = p.first
	p.end = (base + uint64(len(mem))) &^ (PageSize - 1)
}

func (p *StaticPool) AllocTable() (uint64, bool) {
	if p.next >= p.end {
		return 0, false
	}
	pa := p.next
	p.next += PageSize
	return pa, true
}

func (p *StaticPool) Table(pa uint64) *[Entries]uint64 {
	return (*[Entries]uint64)(unsafe.Add(p.mem, pa-p.base))
}

// Used and Total count pages.
func (p *StaticPool) Used() int  { return int((p.next - p.first) / PageSize) }
func (p *StaticPool) Total() int { return int((p.end - p.first) / PageSize) }
