package virtio

import (
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
	"testing"
)

// arena is the driver's DMA memory in FuzzQueues: one byte slice at a
// made-up physical address. Alloc hands out pieces with their capacity
// cut to their length, so a driver that indexed past a buffer would
// panic rather than reach its neighbour.
type arena struct {
	base uint64
	mem  []byte
	next int
}

func (a *arena) Alloc(n int) ([]byte, uint64) {
	off := a.next
	a.next = (off + n + 15) &^ 15
	return a.mem[off : off+n : off+n], a.base + uint64(off)
}

func (a *arena) Barrier() {}

// at returns the n bytes at pa, or nil if they are not all in the arena.
func (a *arena) at(pa uint64, n uint64) []byte {
	if pa < a.base || pa-a.base > uint64(a.next) || n > uint64(a.next)-(pa-a.base) {
		return nil
	}
	off := pa - a.base
	return a.mem[off : off+n]
}

// hostile is a virtio-mmio console that does what its script says: offer
// any queue size, complete buffers it was given, or write whatever it
// likes into the used rings.
type hostile struct {
	t       *testing.T
	mem     *arena
	script  []byte
	max     [2]uint32
	sel     uint32
	status  uint32
	queues  [2]fakeQueue
	bufSize [2]map[uint64]uint64 // the buffers each queue was given: PA to size
}

// next takes n bytes of the script as a little-endian number; an
// exhausted script reads as zeros.
func (h *hostile) next(n int) uint64 {
	var v uint64
	for i := 0; i < n; i++ {
		if len(h.script) > 0 {
			v |= uint64(h.script[0]) << (8 * i)
			h.script = h.script[1:]
		}
	}
	return v
}

func (h *hostile) Read32(addr uint64) uint32 {
	switch addr - base {
	case mmioreg.MagicValue:
		return mmioreg.Magic
	case mmioreg.Version:
		return 2
	case mmioreg.DeviceID:
		return mmioreg.DeviceConsole
	case mmioreg.DeviceFeatures:
		return uint32(mmioreg.FeatureVersion1 >> 32)
	case mmioreg.QueueNumMax:
		return h.max[h.sel%2]
	case mmioreg.Status:
		return h.status
	}
	return 0
}

func (h *hostile) Write32(addr uint64, v uint32) {
	q := &h.queues[h.sel%2]
	switch addr - base {
	case mmioreg.QueueSel:
		h.sel = v
	case mmioreg.Status:
		h.status = v
	case mmioreg.QueueNum:
		q.num = v
	case mmioreg.QueueDescLow:
		q.desc = uint64(v)
	case mmioreg.QueueDriverLow:
		q.avail = uint64(v)
	case mmioreg.QueueDeviceLow:
		q.used = uint64(v)
	}
}

// ring returns queue i's three areas, checking that the driver put them
// in its memory.
func (h *hostile) ring(i int) (q *fakeQueue, desc, avail, used []byte) {
	q = &h.queues[i]
	n := uint64(q.num)
	desc, avail, used = h.mem.at(q.desc, 16*n), h.mem.at(q.avail, 6+2*n), h.mem.at(q.used, 6+8*n)
	if desc == nil || avail == nil || used == nil {
		h.t.Fatalf("queue %d: rings outside the driver's memory", i)
	}
	return q, desc, avail, used
}

// complete takes the next buffer the driver made available on queue i,
// checks that its descriptor names a buffer of the driver's, and returns
// it as used with length n. It reports false if none is available.
func (h *hostile) complete(i int, n uint32) bool {
	q, desc, avail, used := h.ring(i)
	if q.seen == le.Uint16(avail[2:]) {
		return false
	}
	id := le.Uint16(avail[4+2*(uint32(q.seen)%q.num):])
	if uint32(id) >= q.num {
		h.t.Fatalf("queue %d: the driver made descriptor %d of %d available", i, id, q.num)
	}
	d := desc[16*int(id):]
	pa, length, flags := le.Uint64(d), le.Uint32(d[8:]), le.Uint16(d[12:])
	if size, ok := h.bufSize[i][pa]; !ok || uint64(length) > size || h.mem.at(pa, uint64(length)) == nil {
		h.t.Fatalf("queue %d: descriptor %d names [%#x, +%#x), not a buffer of the driver's", i, id, pa, length)
	}
	if flags&DescNext != 0 {
		h.t.Fatalf("queue %d: descriptor %d chains, though every buffer is one descriptor", i, id)
	}
	if i == 0 && flags&DescWrite != 0 {
		buf := h.mem.at(pa, uint64(length))
		for k := range buf[:min(uint32(len(buf)), n)] {
			buf[k] = byte(k)
		}
	}
	ui := le.Uint16(used[2:])
	le.PutUint32(used[4+8*(uint32(ui)%q.num):], uint32(id))
	le.PutUint32(used[8+8*(uint32(ui)%q.num):], n)
	le.PutUint16(used[2:], ui+1)
	q.seen++
	return true
}

// step plays one device action from the script; false once it is over.
func (h *hostile) step() bool {
	if len(h.script) == 0 {
		return false
	}
	switch op := h.next(1); op % 4 {
	case 0: // complete a buffer as a device should, but with any length
		h.complete(int(op>>2&1), uint32(h.next(4)))
	case 1: // a used entry of its own making, and any advance of idx
		q, _, _, used := h.ring(int(op >> 2 & 1))
		ui := le.Uint16(used[2:])
		le.PutUint32(used[4+8*(uint32(ui)%q.num):], uint32(h.next(4)))
		le.PutUint32(used[8+8*(uint32(ui)%q.num):], uint32(h.next(4)))
		le.PutUint16(used[2:], ui+uint16(h.next(1)))
	case 2: // idx set to anything
		_, _, _, used := h.ring(int(op >> 2 & 1))
		le.PutUint16(used[2:], uint16(h.next(2)))
	case 3: // nothing this time
	}
	return true
}

// FuzzQueues: the control partition's host channel survives a virtio
// console that lies. Whatever queue size the device offers and whatever
// it writes in the used rings (ids of buffers it was never given, the same
// buffer twice, lengths past a buffer's end, an idx that leaps or goes
// back), the driver never panics, never gives the device a descriptor
// outside the buffers it allocated, returns no more from Receive than its
// buffers hold, and never hands a buffer out twice at once.
func FuzzQueues(f *testing.F) {
	f.Add([]byte{8, 8, 0, 0x40, 0, 1, 0x10, 0, 0, 0, 1, 0x30, 0x12})
	f.Add([]byte{16, 4, 1, 1, 0, 0, 0, 0x40, 0, 0, 0, 5, 0, 1, 2, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 200})
	f.Add([]byte{1, 1, 0, 0x20, 2, 5, 0xff, 0xff, 4, 0x20, 0x10, 0, 0})
	f.Fuzz(func(t *testing.T, script []byte) {
		const size = 64
		mem := &arena{base: 0x4800_0000, mem: make([]byte, 64<<10)}
		h := &hostile{t: t, mem: mem, script: script}
		h.max[0], h.max[1] = uint32(h.next(1)), uint32(h.next(1))
		d, err := Init(h, mem, base, 0)
		if err != nil {
			t.Fatal(err)
		}
		var rings [2]*Queue
		for i := range rings {
			start := mem.next
			q, err := d.Queue(uint32(i), 16, size)
			if h.max[i] == 0 {
				if err == nil {
					t.Fatalf("queue %d set up on a device that has none", i)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if q.num < 1 || q.num > int(h.max[i]) || q.num > 16 {
				t.Fatalf("queue %d: %d buffers, the device takes %d and the driver asked 16", i, q.num, h.max[i])
			}
			if mem.next-start > 64<<10/2 {
				t.Fatalf("queue %d took %d bytes", i, mem.next-start)
			}
			h.bufSize[i] = map[uint64]uint64{}
			for k, pa := range q.bufPA {
				h.bufSize[i][pa] = uint64(len(q.bufs[k]))
			}
			rings[i] = q
		}
		rx, tx := rings[0], rings[1]
		d.Ready()
		rx.Fill()

		// owned checks that no buffer is both free and with the device,
		// or free twice.
		owned := func(q *Queue) {
			seen := map[uint16]bool{}
			for _, i := range q.free {
				if int(i) >= q.num || seen[i] {
					t.Fatalf("buffer %d free twice, or not one of the %d", i, q.num)
				}
				seen[i] = true
			}
		}
		msg := make([]byte, 3*size+5)
		for len(h.script) > 0 {
			switch op := h.next(1); op % 3 {
			case 0:
				// Send waits for a buffer by calling idle; when the
				// script ends the device has kept them all, and the
				// wait would rightly never end.
				tx.Send(msg[:int(op>>2)%len(msg)+1], func() {
					if !h.step() {
						owned(tx)
						t.Skip("the device keeps every buffer: Send waits, as it should")
					}
				})
				owned(tx)
			case 1:
				if out := rx.Receive(); len(out) > rx.num*size {
					t.Fatalf("Receive returned %d bytes from %d buffers of %d", len(out), rx.num, size)
				}
				owned(rx)
			case 2:
				h.step()
			}
		}
	})
}
