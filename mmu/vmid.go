package mmu

import "sync"

// VMIDs tags stage 2 TLB entries so that VMs need no flush when switched.
// Allocation is generational (like Linux's arm64 ASID allocator): when the
// space runs out, the generation advances, every TLB entry is flushed once,
// and VMs take fresh VMIDs as they next run. VMID 0 is never handed out.
type VMIDs struct {
	mu    sync.Mutex
	bits  uint
	gen   uint64
	next  uint32
	flush func() // invalidates all stage 1+2 TLB entries of all VMIDs
}

// VMID is a VMID with the generation it was allocated in.
type VMID struct {
	ID  uint16
	Gen uint64
}

// NewVMIDs makes an allocator for 8- or 16-bit VMIDs.
func NewVMIDs(vmid16 bool, flush func()) *VMIDs {
	bits := uint(8)
	if vmid16 {
		bits = 16
	}
	return &VMIDs{bits: bits, gen: 1, next: 1, flush: flush}
}

// Refresh returns v if it is still current, else a new VMID, rolling the
// generation over (and flushing the TLBs) when none is left.
func (a *VMIDs) Refresh(v VMID) VMID {
	a.mu.Lock()
	defer a.mu.Unlock()
	if v.Gen == a.gen && v.ID != 0 {
		return v
	}
	if a.next >= 1<<a.bits {
		a.gen++
		a.next = 1
		if a.flush != nil {
			a.flush()
		}
	}
	v = VMID{ID: uint16(a.next), Gen: a.gen}
	a.next++
	return v
}

// Generation is the current generation.
func (a *VMIDs) Generation() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gen
}
