// Package hyp is the EL2 kernel's core: VMs and their stage 2 maps derived
// from the ownership ledger, vCPUs, the handling of every guest exit,
// hypercalls, guest PSCI and the scheduler. It is pure Go over small seams
// (physical memory, TLB maintenance, the world switch), so all of it runs
// on the host under go test.
package hyp

import (
	"github.com/bulkhead-hv/bulkhead/mmu"
)

// Phys is the hypervisor's access to physical memory.
type Phys interface {
	// Table returns the page at pa as a translation table.
	Table(pa uint64) *[mmu.Entries]uint64
	// Zero clears one page.
	Zero(pa uint64) error
	// Write copies b to physical memory at pa.
	Write(pa uint64, b []byte)
	// Read copies physical memory at pa into b.
	Read(pa uint64, b []byte)
}

// TablePool hands out stage 2 table pages from hypervisor-owned memory. It
// implements mmu.Memory, mmu.ConcatAllocator and mmu.Freer.
type TablePool struct {
	phys Phys
	base uint64
	used []bool
	free int
}

// NewTablePool manages npages pages at base, which must be page aligned.
func NewTablePool(phys Phys, base uint64, npages int) *TablePool {
	return &TablePool{phys: phys, base: base, used: make([]bool, npages), free: npages}
}

func (p *TablePool) AllocTable() (uint64, bool) { return p.AllocConcatenated(1) }

// AllocConcatenated finds n free pages aligned to n pages, zeroed.
func (p *TablePool) AllocConcatenated(n int) (uint64, bool) {
	align := uint64(n) * mmu.PageSize
	for i := 0; i+n <= len(p.used); i++ {
		pa := p.base + uint64(i)*mmu.PageSize
		if pa%align != 0 {
			continue
		}
		ok := true
		for j := i; j < i+n; j++ {
			if p.used[j] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		for j := i; j < i+n; j++ {
			p.used[j] = true
			*p.phys.Table(p.base + uint64(j)*mmu.PageSize) = [mmu.Entries]uint64{}
		}
		p.free -= n
		return pa, true
	}
	return 0, false
}

func (p *TablePool) Table(pa uint64) *[mmu.Entries]uint64 { return p.phys.Table(pa) }

// FreeTable returns a page to the pool.
func (p *TablePool) FreeTable(pa uint64) {
	i := int((pa - p.base) / mmu.PageSize)
	if pa < p.base || i >= len(p.used) || !p.used[i] {
		panic("hyp: freeing a table page the pool did not hand out")
	}
	p.used[i] = false
	p.free++
}

// Free is the number of free pages.
func (p *TablePool) Free() int { return p.free }

// Size is the pool's capacity in pages.
func (p *TablePool) Size() int { return len(p.used) }
