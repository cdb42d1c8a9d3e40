// Package virtq is the hypervisor's side of mediated virtio: it watches
// how a guest sets up the split virtqueues (VIRTIO 1.2, 2.7) of a
// virtio-mmio device the control partition emulates (4.2.2), takes the
// chains the guest posts off its available ring, and lets the backend
// reach exactly those buffers until it puts them on the used ring.
//
// The control partition never maps a guest page. It learns a chain's
// shape (how many bytes it may read, how many it may write), asks the
// hypervisor to copy within those bounds, and hands the chain back. What
// the hypervisor copies follows its own snapshot of the descriptors,
// taken when the chain was popped, so a driver that rewrites a
// descriptor after posting it changes nothing the backend can reach.
// The queue addresses come from the guest's own register writes, which
// the hypervisor sees before it forwards them: the control partition
// cannot point a queue anywhere.
package virtq

import (
	"encoding/binary"
	"errors"

	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

// MaxQueues is how many virtqueues of a device are tracked (virtio-blk
// uses one, virtio-net two); MaxSize is the largest queue accepted.
const (
	MaxQueues = 2
	MaxSize   = 256
)

// Descriptor flags (2.7.5).
const (
	descNext     = 1
	descWrite    = 2
	descIndirect = 4
)

var (
	// ErrNotReady: the guest has not enabled the queue (QueueReady).
	ErrNotReady = errors.New("virtq: queue not ready")
	// ErrBroken: the guest's queue is malformed; the device must be reset.
	ErrBroken = errors.New("virtq: the driver broke the queue")
	// ErrNotPosted: the chain is not in the backend's hands, or the bytes
	// asked for lie outside it.
	ErrNotPosted = errors.New("virtq: no such posted buffer")
)

// Mem reaches the guest's memory by IPA. Read and Write fail for a range
// that is not the guest's RAM; Barrier orders the hypervisor's accesses
// to the rings as the guest's driver expects (a DMB).
type Mem interface {
	Read(ipa uint64, b []byte) bool
	Write(ipa uint64, b []byte) bool
	Contains(ipa, n uint64) bool
	Barrier()
}

// Transport is one virtio-mmio device of a guest, as the guest's writes
// set it up.
type Transport struct {
	sel      uint32
	queues   [MaxQueues]Queue
	notified uint32 // queues notified and not yet taken, a bit each
}

// Observe records the guest's 32-bit write of v to the register at off.
// It reports whether the write was a queue notification, which needs no
// answer from the device (QueueNotify is write-only).
func (t *Transport) Observe(off uint64, v uint32) (notify bool) {
	q := t.selected()
	switch off {
	case mmioreg.QueueSel:
		t.sel = v
	case mmioreg.Status:
		if v == 0 { // reset (4.2.2.1): the device forgets its queues
			t.Reset()
		}
	case mmioreg.QueueNotify:
		if v < MaxQueues {
			t.notified |= 1 << v
		}
		return true
	case mmioreg.QueueReady:
		if q != nil {
			q.setReady(v == 1)
		}
	}
	if q == nil || q.ready {
		return false // the layout of a live queue does not change (4.2.2.2)
	}
	switch off {
	case mmioreg.QueueNum:
		q.num = v
	case mmioreg.QueueDescLow:
		q.desc = q.desc&^0xffffffff | uint64(v)
	case mmioreg.QueueDescHigh:
		q.desc = q.desc&0xffffffff | uint64(v)<<32
	case mmioreg.QueueDriverLow:
		q.avail = q.avail&^0xffffffff | uint64(v)
	case mmioreg.QueueDriverHigh:
		q.avail = q.avail&0xffffffff | uint64(v)<<32
	case mmioreg.QueueDeviceLow:
		q.used = q.used&^0xffffffff | uint64(v)
	case mmioreg.QueueDeviceHigh:
		q.used = q.used&0xffffffff | uint64(v)<<32
	}
	return false
}

func (t *Transport) selected() *Queue {
	if t.sel >= MaxQueues {
		return nil
	}
	return &t.queues[t.sel]
}

// Reset forgets every queue and every chain in the backend's hands.
func (t *Transport) Reset() {
	for i := range t.queues {
		t.queues[i].forget(Queue{})
	}
	t.notified = 0
}

// Queue returns queue i, or nil.
func (t *Transport) Queue(i uint64) *Queue {
	if i >= MaxQueues {
		return nil
	}
	return &t.queues[i]
}

// TakeNotified returns a queue the guest notified since the last call,
// and clears its note.
func (t *Transport) TakeNotified() (uint32, bool) {
	for i := uint32(0); i < MaxQueues; i++ {
		if t.notified&(1<<i) != 0 {
			t.notified &^= 1 << i
			return i, true
		}
	}
	return 0, false
}

// Queue is one split virtqueue of the guest's.
type Queue struct {
	num               uint32
	desc, avail, used uint64
	ready, broken     bool
	nextAvail         uint16 // the next available ring entry to take
	nextUsed          uint16 // the next used ring entry to write
	// For each descriptor in a chain the backend holds: its snapshot and
	// the next descriptor of the chain (end for the last); heads also
	// have their chain's readable and writable byte counts.
	seg    []segment
	link   []uint16
	held   []bool
	isHead []bool
	rlen   []uint32
	wlen   []uint32
}

type segment struct {
	addr  uint64
	len   uint32
	write bool
}

const end = 0xffff

// setReady enables or disables the queue. A layout the hypervisor cannot
// follow (size not a power of two up to MaxSize, rings misaligned, 2.7)
// leaves it broken: every Pop says so until the guest resets it.
func (q *Queue) setReady(on bool) {
	if !on {
		q.forget(Queue{num: q.num, desc: q.desc, avail: q.avail, used: q.used})
		return
	}
	if q.ready {
		return
	}
	q.ready = true
	n := q.num
	if n == 0 || n > MaxSize || n&(n-1) != 0 || q.desc%16 != 0 || q.avail%2 != 0 || q.used%4 != 0 {
		q.broken = true
		return
	}
	if cap(q.seg) < int(n) {
		// Once per queue at most: the exit path that enables a queue
		// again after a reset allocates nothing.
		q.seg = make([]segment, MaxSize)
		q.link = make([]uint16, MaxSize)
		q.held = make([]bool, MaxSize)
		q.isHead = make([]bool, MaxSize)
		q.rlen = make([]uint32, MaxSize)
		q.wlen = make([]uint32, MaxSize)
	}
	q.seg, q.link, q.held = q.seg[:n], q.link[:n], q.held[:n]
	q.isHead, q.rlen, q.wlen = q.isHead[:n], q.rlen[:n], q.wlen[:n]
	clear(q.seg)
	clear(q.link)
	clear(q.held)
	clear(q.isHead)
	clear(q.rlen)
	clear(q.wlen)
}

// holds says whether head is a chain the backend popped and holds. A
// queue broken from its enable has no snapshot arrays (its size may be
// anything the guest wrote), so the bound is theirs, not num.
func (q *Queue) holds(head uint16) bool {
	return q.ready && int(head) < len(q.isHead) && q.isHead[head]
}

// forget replaces the queue's state with next, keeping the snapshot
// arrays' storage for the next enable.
func (q *Queue) forget(next Queue) {
	next.seg, next.link, next.held = q.seg[:0], q.link[:0], q.held[:0]
	next.isHead, next.rlen, next.wlen = q.isHead[:0], q.rlen[:0], q.wlen[:0]
	*q = next
}

var le = binary.LittleEndian

// Pop takes the next chain off the guest's available ring: its head and
// the bytes the device may read and write. ok is false when the ring is
// empty. A malformed ring or chain (an index past the queue, a loop, a
// descriptor already posted, an indirect or out-of-RAM buffer, readable
// after writable, lengths that overflow) breaks the queue: ErrBroken, now
// and until the guest resets it.
func (q *Queue) Pop(m Mem) (head uint16, readable, writable uint32, ok bool, err error) {
	if !q.ready {
		return 0, 0, 0, false, ErrNotReady
	}
	if q.broken {
		return 0, 0, 0, false, ErrBroken
	}
	var b [16]byte
	if !m.Read(q.avail+2, b[:2]) { // avail.idx
		return q.fail()
	}
	idx := le.Uint16(b[:])
	if idx == q.nextAvail {
		return 0, 0, 0, false, nil
	}
	if uint32(idx-q.nextAvail) > q.num {
		return q.fail()
	}
	m.Barrier() // the ring entry was written before the index
	if !m.Read(q.avail+4+2*uint64(uint32(q.nextAvail)%q.num), b[:2]) {
		return q.fail()
	}
	head = le.Uint16(b[:])
	var r, w uint64
	i, prev := head, uint16(end)
	for {
		if uint32(i) >= q.num || q.held[i] {
			// Past the table, a loop within the chain, or a descriptor
			// of a chain the backend holds already.
			return q.abandon(head, prev)
		}
		if !m.Read(q.desc+16*uint64(i), b[:]) {
			return q.abandon(head, prev)
		}
		s := segment{addr: le.Uint64(b[:]), len: le.Uint32(b[8:]), write: le.Uint16(b[12:])&descWrite != 0}
		flags, next := le.Uint16(b[12:]), le.Uint16(b[14:])
		if flags&descIndirect != 0 || !m.Contains(s.addr, uint64(s.len)) || (!s.write && w > 0) {
			return q.abandon(head, prev)
		}
		if s.write {
			w += uint64(s.len)
		} else {
			r += uint64(s.len)
		}
		if r > 1<<32-1 || w > 1<<32-1 {
			return q.abandon(head, prev)
		}
		q.seg[i], q.held[i], q.link[i] = s, true, end
		if prev != end {
			q.link[prev] = i
		}
		prev = i
		if flags&descNext == 0 {
			break
		}
		i = next
	}
	q.isHead[head], q.rlen[head], q.wlen[head] = true, uint32(r), uint32(w)
	q.nextAvail++
	return head, uint32(r), uint32(w), true, nil
}

func (q *Queue) fail() (uint16, uint32, uint32, bool, error) {
	q.broken = true
	return 0, 0, 0, false, ErrBroken
}

// abandon gives back what Pop took of a bad chain (nothing when last is
// end) and breaks the queue.
func (q *Queue) abandon(head, last uint16) (uint16, uint32, uint32, bool, error) {
	if last != end {
		q.release(head)
	}
	return q.fail()
}

// release gives back the descriptors of the chain at head.
func (q *Queue) release(head uint16) {
	for i := head; i != end; i = q.link[i] {
		q.held[i] = false
	}
}

// Span is a piece of guest memory a copy touches.
type Span struct {
	IPA uint64
	Len uint32
}

// Spans returns the guest memory holding bytes [off, off+n) of the
// readable part (write false) or writable part (write true) of the chain
// at head, which the backend must hold.
func (q *Queue) Spans(head uint16, write bool, off, n uint64, out []Span) ([]Span, error) {
	if !q.holds(head) {
		return out, ErrNotPosted
	}
	total := q.rlen[head]
	if write {
		total = q.wlen[head]
	}
	if off+n < off || off+n > uint64(total) {
		return out, ErrNotPosted
	}
	for i := head; i != end && n > 0; i = q.link[i] {
		s := q.seg[i]
		if s.write != write {
			continue
		}
		if off >= uint64(s.len) {
			off -= uint64(s.len)
			continue
		}
		take := min(n, uint64(s.len)-off)
		out = append(out, Span{IPA: s.addr + off, Len: uint32(take)})
		off, n = 0, n-take
	}
	return out, nil
}

// Push puts the chain at head on the used ring with the bytes the device
// wrote into it, and takes it from the backend: nothing of it can be
// reached any more.
func (q *Queue) Push(m Mem, head uint16, written uint32) error {
	if !q.holds(head) {
		return ErrNotPosted
	}
	if written > q.wlen[head] {
		written = q.wlen[head] // what the chain holds, at most
	}
	var e [8]byte
	le.PutUint32(e[:], uint32(head))
	le.PutUint32(e[4:], written)
	q.isHead[head] = false
	q.release(head)
	if !m.Write(q.used+4+8*uint64(uint32(q.nextUsed)%q.num), e[:]) {
		q.broken = true
		return ErrBroken
	}
	q.nextUsed++
	m.Barrier() // the entry is seen before the index that publishes it
	le.PutUint16(e[:], q.nextUsed)
	if !m.Write(q.used+2, e[:2]) {
		q.broken = true
		return ErrBroken
	}
	return nil
}
