package smmu

import (
	"fmt"

	"github.com/bulkhead-hv/bulkhead/mmu"
)

// A Domain is what a set of streams may reach: an identity map, readable
// and writable, of the ranges Map added and Unmap did not take back. It
// is a stage 1 translation the driver keeps beside the control
// partition's stage 2, which it mirrors; an SMMU that translates stage 2
// could share those tables instead.
type Domain struct {
	s    *SMMU
	t    mmu.Tables
	asid uint16
	cd   []uint64
	cdPA uint64
	// invalErr is the first invalidation the SMMU did not confirm during
	// the current Unmap.
	invalErr error
}

// blockSize caps the blocks a Domain maps at 2 MiB: a donation smaller
// than a 1 GiB block would split it, and a split is a window in which
// the device's other traffic in that block faults.
const blockSize = 2 << 20

// NewDomain makes an empty domain with table pages from tables, for
// input addresses of inputBits (25 to 48), as address space asid.
func (s *SMMU) NewDomain(tables mmu.Memory, inputBits int, asid uint16) (*Domain, error) {
	d := &Domain{s: s, asid: asid}
	if err := d.t.Init(tables, inputBits); err != nil {
		return nil, fmt.Errorf("smmu: domain tables: %w", err)
	}
	d.t.SetTLB(domainTLB{d})
	d.cd, d.cdPA = s.mem.Alloc(CDSize, CDSize)
	cd := stage1CD(d.t.Root(), inputBits, s.OAS, mmu.MAIR, asid)
	copy(d.cd, cd[:])
	s.mem.Barrier()
	return d, nil
}

// Attach points stream sid at the domain.
func (d *Domain) Attach(sid uint32) error {
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	return d.s.setSTE(sid, stage1STE(d.cdPA))
}

// Map lets the domain's streams read and write [pa, pa+size).
func (d *Domain) Map(pa, size uint64) error {
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	if d.s.Broken() {
		return ErrBroken
	}
	// AP[1] set: a device's transactions are unprivileged unless its
	// stream says otherwise (STE.PRIVCFG), and AP[2:1] = 0b01 lets them
	// read and write.
	attrs := mmu.S1EL1Normal(mmu.Read|mmu.Write) | mmu.S1_AP1
	for end := pa + size; pa < end; {
		next := min((pa+blockSize)&^(blockSize-1), end)
		if err := d.t.Map(pa, pa, next-pa, attrs); err != nil {
			return fmt.Errorf("smmu: domain map [%#x, %#x): %w", pa, next, err)
		}
		pa = next
	}
	d.s.mem.Barrier()
	return nil
}

// Unmap takes [pa, pa+size) away and returns once no stream can reach
// it: every removed entry has been invalidated in the SMMU's TLB.
func (d *Domain) Unmap(pa, size uint64) error {
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	// A retry after a failed invalidation would find the tables empty
	// and invalidate nothing: once the SMMU is distrusted, refuse.
	if d.s.Broken() {
		return ErrBroken
	}
	d.invalErr = nil
	if err := d.t.Unmap(pa, size); err != nil {
		return err
	}
	return d.invalErr
}

// domainTLB invalidates a removed entry in the SMMU (mmu.TLB), under the
// SMMU's lock, which Map and Unmap hold.
type domainTLB struct{ d *Domain }

func (t domainTLB) Invalidate(va uint64, level int) {
	d := t.d
	d.s.mem.Barrier()
	if err := d.s.issue(tlbiVA(d.asid, va)); err != nil && d.invalErr == nil {
		// The entry is gone from the tables but maybe not from the
		// SMMU's TLB: Unmap fails, so the pages are not given away.
		d.invalErr = fmt.Errorf("smmu: invalidating %#x: %w", va, err)
		d.s.broken.Store(true)
	}
}
