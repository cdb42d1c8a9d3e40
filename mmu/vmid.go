package mmu

import (
	"sync"
	"sync/atomic"
)

// VMIDs tags stage 2 TLB entries so that VMs need no flush when switched.
// Allocation is generational (like Linux's arm64 ASID allocator): when the
// space runs out, the generation advances, every TLB entry is flushed once,
// and VMs take fresh VMIDs as they next run. VMID 0 is never handed out.
type VMIDs struct {
	mu    sync.Mutex
	bits  uint
	gen   atomic.Uint64 // changed only with mu held; read without it by Refresh's check
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
	a := &VMIDs{bits: bits, next: 1, flush: flush}
	a.gen.Store(1)
	return a
}

// Refresh returns v if it is still current, else a new VMID, rolling the
// generation over (and flushing the TLBs) when none is left. A current v,
// the case of every run but a VM's first after a rollover, is known
// without the lock: the generation only grows.
func (a *VMIDs) Refresh(v VMID) VMID {
	if v.ID != 0 && v.Gen == a.gen.Load() {
		return v // every vCPU switch's case: inlined, with no call
	}
	return a.refresh(v)
}

func (a *VMIDs) refresh(v VMID) VMID {
	a.mu.Lock()
	defer a.mu.Unlock()
	if v.Gen == a.gen.Load() && v.ID != 0 {
		return v
	}
	if a.next >= 1<<a.bits {
		a.gen.Add(1)
		a.next = 1
		if a.flush != nil {
			a.flush()
		}
	}
	v = VMID{ID: uint16(a.next), Gen: a.gen.Load()}
	a.next++
	return v
}

// Generation is the current generation.
func (a *VMIDs) Generation() uint64 {
	return a.gen.Load()
}
