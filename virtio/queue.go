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

// Queue is a split virtqueue whose buffers the driver owns, one per
// descriptor.
type Queue struct {
	d        *Device
	index    uint32
	num      int
	desc     []byte // 16 bytes per descriptor
	avail    []byte // flags, idx, ring[num]
	used     []byte // flags, idx, ring[num] of (id, len)
	bufs     [][]byte
	bufPA    []uint64
	free     []uint16
	lastUsed uint16
	// lent says which buffers the device holds: the used ring is the
	// device's to write, and only an entry for one of these is taken.
	lent []bool
}

// Queue sets up virtqueue index with up to num buffers of size bytes.
func (d *Device) Queue(index uint32, num, size int) (*Queue, error) {
	d.w(QueueSel, index)
	max := int(d.r(QueueNumMax))
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
		b, pa := d.mem.Alloc(size)
		q.bufs, q.bufPA = append(q.bufs, b), append(q.bufPA, pa)
		q.free = append(q.free, uint16(i))
	}
	q.lent = make([]bool, num)
	d.w(QueueNum, uint32(num))
	d.w(QueueDescLow, uint32(descPA))
	d.w(QueueDescHigh, uint32(descPA>>32))
	d.w(QueueDriverLow, uint32(availPA))
	d.w(QueueDriverHigh, uint32(availPA>>32))
	d.w(QueueDeviceLow, uint32(usedPA))
	d.w(QueueDeviceHigh, uint32(usedPA>>32))
	d.w(QueueReady, 1)
	return q, nil
}

var le = binary.LittleEndian

// post offers buffer i to the device with n bytes (for the device to read)
// or its whole size (to write, when write is set).
func (q *Queue) post(i uint16, n int, write bool) {
	flags := uint16(0)
	if write {
		flags = DescWrite
	}
	q.lent[i] = true
	e := q.desc[16*int(i):]
	le.PutUint64(e, q.bufPA[i])
	le.PutUint32(e[8:], uint32(n))
	le.PutUint16(e[12:], flags)
	le.PutUint16(e[14:], 0)
	idx := le.Uint16(q.avail[2:])
	le.PutUint16(q.avail[4+2*(int(idx)%q.num):], i)
	q.d.mem.Barrier()
	le.PutUint16(q.avail[2:], idx+1)
	q.d.mem.Barrier()
	q.d.w(QueueNotify, q.index)
}

// reap returns the buffers the device has finished with, and the length
// it wrote into each. The used ring is the host's to write and is not
// trusted: an entry naming a buffer the device does not hold (out of
// range, or given back already) is skipped, and a length is cut to its
// buffer's size. Taken as they stood, such entries indexed or sliced past
// the buffers (a panic in the control partition) or put one buffer in
// the free list twice, to be handed out twice at once.
func (q *Queue) reap() (ids []uint16, lens []int) {
	q.d.mem.Barrier()
	idx := le.Uint16(q.used[2:])
	for q.lastUsed != idx {
		e := q.used[4+8*(int(q.lastUsed)%q.num):]
		id, n := le.Uint32(e), le.Uint32(e[4:])
		q.lastUsed++
		if id >= uint32(q.num) || !q.lent[id] {
			continue
		}
		q.lent[id] = false
		ids = append(ids, uint16(id))
		lens = append(lens, int(min(n, uint32(len(q.bufs[id])))))
	}
	return ids, lens
}

// Send copies b into free buffers and hands them to the device. It waits
// (calling idle) while none is free.
func (q *Queue) Send(b []byte, idle func()) {
	for len(b) > 0 {
		for {
			ids, _ := q.reap()
			q.free = append(q.free, ids...)
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

// Receive returns what the device has written, and gives the buffers back.
func (q *Queue) Receive() []byte {
	var out []byte
	ids, lens := q.reap()
	for k, i := range ids {
		out = append(out, q.bufs[i][:lens[k]]...)
		q.post(i, len(q.bufs[i]), true)
	}
	return out
}
