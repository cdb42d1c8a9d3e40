package virtio

import (
	"errors"
)

// Seg is one buffer of a descriptor chain, described by one descriptor
// (2.7.5).
type Seg struct {
	Addr  uint64 // physical address
	Len   uint32
	Write bool // the device writes it (VIRTQ_DESC_F_WRITE)
}

// Used is a chain the device has finished with (2.7.8).
type Used struct {
	Head uint16 // the chain's first descriptor, as Post returned it
	// Len is the bytes the device says it wrote, cut to the chain's
	// device-writable bytes.
	Len uint32
}

var (
	ErrQueueFull = errors.New("virtio: too few free descriptors for the chain")
	ErrChain     = errors.New("virtio: a chain needs segments, device-readable ones first")
)

// Post makes a chain of segs available to the device, taking one
// descriptor per segment from the free list, and notifies the device.
// Device-readable segments come before device-writable ones (2.7.4.2).
// It returns the chain's head, which Reap reports once the device is done.
func (q *Queue) Post(segs ...Seg) (uint16, error) {
	if len(segs) == 0 {
		return 0, ErrChain
	}
	for j := 1; j < len(segs); j++ {
		if segs[j-1].Write && !segs[j].Write {
			return 0, ErrChain
		}
	}
	if len(segs) > len(q.free) {
		return 0, ErrQueueFull
	}
	n := len(q.free) - len(segs)
	ids := q.free[n:]
	q.free = q.free[:n]
	q.chain(ids, segs)
	return ids[0], nil
}

// Reap returns the chains the device has finished with, and gives their
// descriptors back to the free list.
func (q *Queue) Reap() []Used {
	return q.reap(true)
}

// chain writes segs into descriptors ids, linked in that order, makes the
// chain available (2.7.13) and notifies the device.
func (q *Queue) chain(ids []uint16, segs []Seg) {
	head := ids[0]
	q.wlen[head] = 0
	for j, s := range segs {
		i, flags, next := ids[j], uint16(0), uint16(0)
		if s.Write {
			flags |= DescWrite
			q.wlen[head] += s.Len
		}
		if j+1 < len(segs) {
			flags |= DescNext
			next = ids[j+1]
		}
		q.next[i] = next
		e := q.desc[16*int(i):]
		le.PutUint64(e, s.Addr)
		le.PutUint32(e[8:], s.Len)
		le.PutUint16(e[12:], flags)
		le.PutUint16(e[14:], next)
	}
	q.held[head] = uint16(len(segs))
	idx := le.Uint16(q.avail[2:])
	le.PutUint16(q.avail[4+2*(int(idx)%q.num):], head)
	q.d.mem.Barrier()
	le.PutUint16(q.avail[2:], idx+1)
	q.d.mem.Barrier()
	if q.batch {
		q.owed = true
		return
	}
	q.kick()
}

// reap takes the chains the device has finished with off the used ring
// (2.7.14) and, if release is set, puts their descriptors back in the
// free list. The used ring is the host's to write and is not trusted: an
// entry naming a chain the device does not hold (out of range, not a
// chain's head, or given back already) is skipped, and a length is cut to
// what the chain let the device write. Taken as they stood, such entries
// indexed or sliced past the buffers (a panic in the control partition)
// or put a descriptor in the free list twice, to be handed out twice at
// once.
func (q *Queue) reap(release bool) []Used {
	idx := le.Uint16(q.used[2:])
	q.d.mem.Barrier() // the entries are read after the idx that covers them
	var out []Used
	for q.lastUsed != idx {
		e := q.used[4+8*(int(q.lastUsed)%q.num):]
		id, n := le.Uint32(e), le.Uint32(e[4:])
		q.lastUsed++
		if id >= uint32(q.num) || q.held[id] == 0 {
			continue
		}
		if release {
			for i, k := uint16(id), q.held[id]; k > 0; i, k = q.next[i], k-1 {
				q.free = append(q.free, i)
			}
		}
		q.held[id] = 0
		out = append(out, Used{Head: uint16(id), Len: min(n, q.wlen[id])})
	}
	return out
}
