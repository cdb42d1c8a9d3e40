package hyp

import (
	"errors"
	"sync/atomic"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
	"github.com/bulkhead-hv/bulkhead/hyp/virtq"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

// guestMem is a VM's RAM as virtq reaches it, by IPA.
type guestMem struct {
	h  *Hyp
	vm *VM
}

func (g *guestMem) Contains(ipa, n uint64) bool {
	_, ok := g.vm.find(ipa, n)
	return ok
}

func (g *guestMem) Read(ipa uint64, b []byte) bool {
	pa, ok := g.vm.find(ipa, uint64(len(b)))
	if ok {
		g.h.phys.Read(pa, b)
	}
	return ok
}

func (g *guestMem) Write(ipa uint64, b []byte) bool {
	pa, ok := g.vm.find(ipa, uint64(len(b)))
	if ok {
		g.h.phys.Write(pa, b)
	}
	return ok
}

// Barrier orders the hypervisor's ring accesses as a device's would be: an
// atomic read-modify-write is acquire and release at once on arm64
// (LDADDAL), so no access moves across it.
func (g *guestMem) Barrier() { atomic.AddUint32(&barrierWord, 0) }

var barrierWord uint32

// virtq serves the control partition's mediated access to vm's virtqueues
// (VM_VIRTQ_*): x2 names the transport by its IPA, x3 the queue. The
// backend reaches only chains it popped and has not pushed, within their
// bounds; anything else is DENIED and changes nothing.
func (h *Hyp) virtq(vm *VM, fid uint32, c *vcpu.Context) (int64, uint64, uint64, uint64) {
	t := vm.transport(c.X[2])
	if t == nil || t.Queue(c.X[3]) == nil {
		return abi.INVALID_PARAMETER, 0, 0, 0
	}
	if vm.State != Running {
		return abi.BUSY, 0, 0, 0
	}
	q := t.Queue(c.X[3])
	h.gmem = guestMem{h, vm}
	code := func(err error) int64 {
		switch {
		case err == nil:
			return abi.SUCCESS
		case errors.Is(err, virtq.ErrBroken):
			return abi.NEEDS_RESET
		case errors.Is(err, virtq.ErrNotReady):
			return abi.BUSY
		}
		return abi.DENIED
	}
	if fid == abi.VM_VIRTQ_POP {
		head, r, w, ok, err := q.Pop(&h.gmem)
		if err != nil || !ok {
			return code(err), 0, 0, 0
		}
		return abi.SUCCESS, 1, uint64(head), uint64(r)<<32 | uint64(w)
	}
	head := c.X[4]
	if head > 0xffff {
		return abi.DENIED, 0, 0, 0
	}
	if fid == abi.VM_VIRTQ_PUSH {
		if c.X[5] > 1<<32-1 {
			return abi.INVALID_PARAMETER, 0, 0, 0
		}
		return code(q.Push(&h.gmem, uint16(head), uint32(c.X[5]))), 0, 0, 0
	}
	off, pa, n := c.X[5], c.X[6], c.X[7]
	if !h.callerRange(pa, n) {
		return abi.INVALID_PARAMETER, 0, 0, 0
	}
	write := fid == abi.VM_VIRTQ_WRITE
	spans, err := q.Spans(uint16(head), write, off, n, h.spans[:0])
	h.spans = spans[:0]
	if err != nil {
		return code(err), 0, 0, 0
	}
	for _, s := range spans {
		gpa, ok := vm.find(s.IPA, uint64(s.Len))
		if !ok { // Pop checked it, and a running VM's RAM stays
			return abi.DENIED, 0, 0, 0
		}
		for done := uint64(0); done < uint64(s.Len); {
			b := h.scratch[:min(uint64(s.Len)-done, ledger.PageSize)]
			if write {
				h.phys.Read(pa, b)
				h.phys.Write(gpa+done, b)
			} else {
				h.phys.Read(gpa+done, b)
				h.phys.Write(pa, b)
			}
			done += uint64(len(b))
			pa += uint64(len(b))
		}
	}
	return abi.SUCCESS, n, 0, 0
}

// callerRange checks that [pa, pa+n) is a non-empty buffer of at most
// abi.VirtqMaxCopy bytes in pages the control partition owns.
func (h *Hyp) callerRange(pa, n uint64) bool {
	if n == 0 || n > abi.VirtqMaxCopy || pa+n < pa {
		return false
	}
	for p := pa &^ (ledger.PageSize - 1); p < pa+n; p += ledger.PageSize {
		owner, borrower, ok := h.Ledger.Owner(p)
		if !ok || owner != ledger.Control || borrower != ledger.None {
			return false
		}
	}
	return true
}

// wakeControl ends the control partition's nap when a guest gives it
// work: an access it forwards, or a queue notification.
func (h *Hyp) wakeControl() {
	if h.control == nil || len(h.control.VCPUs) == 0 {
		return
	}
	if v := h.control.VCPUs[0]; v.napUntil != 0 {
		h.wake(v)
	}
}
