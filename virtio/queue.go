package virtio

import (
	"encoding/binary"
	"fmt"
)

// Descriptor flags (2.7.5).
const (
	DescNext  = 1
	DescWrite = 2 // the device writes the buffer
)

// Queue is a split virtqueue (2.7). The driver posts descriptor chains
// on it (Post, Reap); a queue set up with buffers of its own also carries
// a byte stream over them, one buffer per descriptor (Send, Fill,
// Receive), buffer i being descriptor i's.
type Queue struct {
	d        *Device
	index    uint32
	num      int
	desc     []byte // 16 bytes per descriptor
	avail    []byte // flags, idx, ring[num]
	used     []byte // flags, idx, ring[num] of (id, len)
	bufs     [][]byte
	bufPA    []uint64
	free     []uint16 // descriptors in no chain
	lastUsed uint16
	// held says, by head, how many descriptors the chain the device
	// holds there has (0: none): the used ring is the device's to write,
	// and only an entry for one of these is taken. next and wlen are the
	// chain's links and its device-writable bytes, kept here because the
	// descriptor table is in memory the device can write.
	held []uint16
	next []uint16
	wlen []uint32
	// batch defers the notification of chains posted to Flush: one
	// QueueNotify write, a trap to the device model, for many buffers.
	batch, owed bool
}

// usedFNoNotify is the used ring's flag by which the device says it
// needs no notification (VIRTQ_USED_F_NO_NOTIFY, 2.7.10): without
// VIRTIO_F_EVENT_IDX, a driver that sees it should not notify
// (2.7.7.2). QEMU sets it while its device model works through a queue:
// each notification skipped is a trap to it, which takes its big lock.
const usedFNoNotify = 1

// kick notifies the device of new buffers unless it said it needs no
// notification; the avail idx it covers was written before (the
// barrier in chain). The flag is the device's word: set, it only
// starves its own queue.
func (q *Queue) kick() {
	if le.Uint16(q.used[0:])&usedFNoNotify != 0 {
		return
	}
	q.d.t.notify(q.index)
}

// Batch defers notifications until Flush.
func (q *Queue) Batch() { q.batch = true }

// Flush ends a batch, notifying the device if anything was posted.
func (q *Queue) Flush() {
	q.batch = false
	if q.owed {
		q.owed = false
		q.d.mem.Barrier()
		q.kick()
	}
}

// Queue sets up virtqueue index with up to num descriptors and as many
// buffers of size bytes; with size 0 it has no buffers, for chains only.
func (d *Device) Queue(index uint32, num, size int) (*Queue, error) {
	max := d.t.queueMax(index)
	if max == 0 {
		return nil, fmt.Errorf("virtio: queue %d does not exist", index)
	}
	if num > max {
		num = max
	}
	q := &Queue{d: d, index: index, num: num}
	var descPA, availPA, usedPA uint64
	q.desc, descPA = d.mem.Alloc(16 * num)
	q.avail, availPA = d.mem.Alloc(6 + 2*num)
	q.used, usedPA = d.mem.Alloc(6 + 8*num)
	for i := 0; i < num; i++ {
		if size > 0 {
			b, pa := d.mem.Alloc(size)
			q.bufs, q.bufPA = append(q.bufs, b), append(q.bufPA, pa)
		}
		q.free = append(q.free, uint16(i))
	}
	q.held, q.next, q.wlen = make([]uint16, num), make([]uint16, num), make([]uint32, num)
	d.t.setQueue(index, num, descPA, availPA, usedPA)
	return q, nil
}

var le = binary.LittleEndian

// post offers buffer i to the device, as a chain of its one descriptor,
// with n bytes (for the device to read) or its whole size (to write, when
// write is set).
func (q *Queue) post(i uint16, n int, write bool) {
	q.chain([]uint16{i}, []Seg{{Addr: q.bufPA[i], Len: uint32(n), Write: write}})
}

// Send copies b into free buffers and hands them to the device. It waits
// (calling idle) while none is free.
func (q *Queue) Send(b []byte, idle func()) {
	for len(b) > 0 {
		for {
			q.Reap()
			if len(q.free) > 0 {
				break
			}
			idle()
		}
		i := q.free[len(q.free)-1]
		q.free = q.free[:len(q.free)-1]
		n := copy(q.bufs[i], b)
		q.post(i, n, false)
		b = b[n:]
	}
}

// Fill gives every buffer to the device to write into (a receive queue).
func (q *Queue) Fill() {
	for _, i := range q.free {
		q.post(i, len(q.bufs[i]), true)
	}
	q.free = q.free[:0]
}

// Receive returns what the device has written, and gives the buffers
// back, notifying the device once.
func (q *Queue) Receive() []byte {
	var out []byte
	q.Batch()
	for _, u := range q.reap(false) {
		out = append(out, q.bufs[u.Head][:u.Len]...)
		q.post(u.Head, len(q.bufs[u.Head]), true)
	}
	q.Flush()
	return out
}
