//go:build tamago

package main

import (
	"fmt"

	"github.com/bulkhead-hv/bulkhead/abi"
	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/guestdt"
	"github.com/bulkhead-hv/bulkhead/vdev/virtiommio"
)

// device is a virtio device model a guest's transport is served by.
type device interface {
	Read(off uint64, size int) uint64
	Write(off uint64, size int, v uint64)
	Notify(q uint32)
	Line() bool
}

// virtdev is one of a guest's virtio-mmio transports: its place in the
// guest's tree, the model behind it and the level its line was driven to.
type virtdev struct {
	dev   device
	vm    uint64
	base  uint64
	intid uint32
	line  bool
}

// mapVirtio gives the guest its next virtio-mmio transport, forwarded here
// with its queues mediated by the hypervisor (VM_MMIO_MAP with MapVirtio),
// served by the model make returns.
func (g *guest) mapVirtio(what string, make func(*virtdev) device) (*virtdev, error) {
	base, intid := guestdt.VirtioAddr(len(g.virtio))
	if code, _ := call(abi.VM_MMIO_MAP, g.handle, base, guestdt.VirtioStride, abi.MapVirtio); code != abi.SUCCESS {
		return nil, fmt.Errorf("VM_MMIO_MAP of %s: %s", what, errText(code))
	}
	v := &virtdev{vm: g.handle, base: base, intid: intid}
	v.dev = make(v)
	g.virtio = append(g.virtio, v)
	return v, nil
}

// queue is the transport's queue i, through the hypervisor.
func (v *virtdev) queue(i uint64) mediatedQueue {
	return mediatedQueue{vm: v.vm, base: v.base, index: i}
}

// virtioAt returns the guest's transport that holds ipa (none for a nil
// guest).
func (g *guest) virtioAt(ipa uint64) *virtdev {
	if g == nil {
		return nil
	}
	for _, v := range g.virtio {
		if ipa >= v.base && ipa < v.base+guestdt.VirtioStride {
			return v
		}
	}
	return nil
}

// driveLine makes the transport's interrupt line follow its model's
// output.
func (g *guest) driveLine(v *virtdev) {
	level := v.dev.Line()
	if level == v.line || g.stopped {
		return
	}
	var x uint64
	if level {
		x = 1
	}
	if code, _ := call(abi.VM_IRQ_LINE, g.handle, uint64(v.intid), x); code == abi.SUCCESS {
		v.line = level
	}
}

// serveVirtio answers a forwarded access to one of g's transports, or a
// queue notification (which takes no reply). It reports whether to reply.
func (g *guest) serveVirtio(v *virtdev, w [abi.MMIOWords]uint64) (value uint64, reply bool) {
	off := w[abi.MMIOIPA] - v.base
	switch w[abi.MMIOWrite] {
	case abi.MMIONotify:
		v.dev.Notify(uint32(w[abi.MMIOValue]))
		g.driveLine(v)
		return 0, false
	case 1:
		v.dev.Write(off, int(w[abi.MMIOSize]), w[abi.MMIOValue])
	default:
		value = v.dev.Read(off, int(w[abi.MMIOSize]))
	}
	// Before the reply: an InterruptACK completes with the line low.
	g.driveLine(v)
	return value, true
}

// mediatedQueue is a queue of a guest's virtio-mmio transport, reached
// through the hypervisor (VM_VIRTQ_*): the control partition holds no
// mapping of the guest's memory, only the chains the guest posted.
type mediatedQueue struct{ vm, base, index uint64 }

func (q mediatedQueue) Pop() (uint16, uint32, uint32, bool, error) {
	code, found, head, lens := vm.Hypercall4(abi.VM_VIRTQ_POP, q.vm, q.base, q.index)
	switch {
	case int64(code) == abi.NEEDS_RESET:
		return 0, 0, 0, false, virtiommio.ErrNeedsReset
	case code != abi.SUCCESS:
		return 0, 0, 0, false, fmt.Errorf("VM_VIRTQ_POP: %s", errText(int64(code)))
	case found == 0:
		return 0, 0, 0, false, nil
	}
	return uint16(head), uint32(lens >> 32), uint32(lens), true, nil
}

func (q mediatedQueue) copy(fid uint32, name string, head uint16, off uint32, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), abi.VirtqMaxCopy)
		if code, _ := call(fid, q.vm, q.base, q.index, uint64(head), uint64(off), addr(b), uint64(n)); code != abi.SUCCESS {
			return fmt.Errorf("%s: %s", name, errText(code))
		}
		b, off = b[n:], off+uint32(n)
	}
	return nil
}

func (q mediatedQueue) Read(head uint16, off uint32, b []byte) error {
	return q.copy(abi.VM_VIRTQ_READ, "VM_VIRTQ_READ", head, off, b)
}

func (q mediatedQueue) Write(head uint16, off uint32, b []byte) error {
	return q.copy(abi.VM_VIRTQ_WRITE, "VM_VIRTQ_WRITE", head, off, b)
}

func (q mediatedQueue) Push(head uint16, written uint32) error {
	if code, _ := call(abi.VM_VIRTQ_PUSH, q.vm, q.base, q.index, uint64(head), uint64(written)); code != abi.SUCCESS {
		return fmt.Errorf("VM_VIRTQ_PUSH: %s", errText(code))
	}
	return nil
}
