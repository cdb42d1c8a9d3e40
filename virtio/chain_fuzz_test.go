package virtio

import (
	"testing"
)

// FuzzChains: descriptor chains survive a device that lies in the used
// ring (the hostile device of FuzzQueues, on one queue of chains).
// Whatever it writes there, every descriptor stays in exactly one place,
// the free list or the one chain the device holds it in; Reap reports only
// chains the device held, with no more length than they let it write; and
// the descriptors the device walks are those posted, device-readable
// first.
func FuzzChains(f *testing.F) {
	f.Add([]byte{16, 0, 1, 0x10, 0, 5, 0, 2, 0x40, 1})
	f.Add([]byte{4, 20, 2, 1, 2, 3, 4, 5, 6, 7, 8, 0, 2, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 2, 0, 0, 0, 0, 1})
	f.Add([]byte{8, 25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 9, 0, 0, 0, 3, 1, 4, 0x30, 0x12, 1})
	f.Fuzz(func(t *testing.T, script []byte) {
		mem := &arena{base: 0x4800_0000, mem: make([]byte, 4<<10)}
		h := &hostile{t: t, mem: mem, script: script}
		h.max[0] = uint32(h.next(1))
		d, err := Init(h, mem, base, 0)
		if err != nil {
			t.Fatal(err)
		}
		q, err := d.Queue(0, 16, 0)
		if h.max[0] == 0 {
			if err == nil {
				t.Fatal("queue set up on a device that has none")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		d.Ready()
		posted := map[uint16][]Seg{} // the chains the device holds, by head
		for len(h.script) > 0 {
			switch op := h.next(1); op % 5 {
			case 0: // post a chain of up to 6 segments
				segs := make([]Seg, 1+op/5%6)
				reads := int(h.next(1)) % (len(segs) + 1)
				for j := range segs {
					segs[j] = Seg{Addr: h.next(2) << 4, Len: uint32(h.next(1)), Write: j >= reads}
				}
				free := len(q.free)
				head, err := q.Post(segs...)
				if err != nil {
					if len(segs) <= free {
						t.Fatalf("%d segments refused with %d descriptors free: %v", len(segs), free, err)
					}
					continue
				}
				if posted[head] != nil {
					t.Fatalf("head %d posted while the device holds it", head)
				}
				posted[head] = segs
			case 1:
				for _, u := range q.Reap() {
					segs := posted[u.Head]
					if segs == nil {
						t.Fatalf("reaped chain %d, which the device does not hold", u.Head)
					}
					var w uint32
					for _, s := range segs {
						if s.Write {
							w += s.Len
						}
					}
					if u.Len > w {
						t.Fatalf("chain %d: length %d, of %d device-writable bytes", u.Head, u.Len, w)
					}
					delete(posted, u.Head)
				}
			case 2: // complete the next available chain, with any length
				dq, desc, avail, used := h.ring(0)
				if dq.seen == le.Uint16(avail[2:]) {
					continue
				}
				head := le.Uint16(avail[4+2*(uint32(dq.seen)%dq.num):])
				dq.seen++
				if segs := posted[head]; segs != nil { // not one given back on a lie
					i := head
					for j, s := range segs {
						if uint32(i) >= dq.num {
							t.Fatalf("chain %d: descriptor %d of %d", head, i, dq.num)
						}
						e := desc[16*int(i):]
						flags := le.Uint16(e[12:])
						got := Seg{Addr: le.Uint64(e), Len: le.Uint32(e[8:]), Write: flags&DescWrite != 0}
						if got != s || (flags&DescNext != 0) != (j+1 < len(segs)) {
							t.Fatalf("chain %d, segment %d: %+v, flags %#x; posted %+v of %d", head, j, got, flags, s, len(segs))
						}
						i = le.Uint16(e[14:])
					}
				}
				ui := le.Uint16(used[2:])
				le.PutUint32(used[4+8*(uint32(ui)%dq.num):], uint32(head))
				le.PutUint32(used[8+8*(uint32(ui)%dq.num):], uint32(h.next(4)))
				le.PutUint16(used[2:], ui+1)
			case 3: // a used entry of its own making, and any advance of idx
				dq, _, _, used := h.ring(0)
				ui := le.Uint16(used[2:])
				le.PutUint32(used[4+8*(uint32(ui)%dq.num):], uint32(h.next(4)))
				le.PutUint32(used[8+8*(uint32(ui)%dq.num):], uint32(h.next(4)))
				le.PutUint16(used[2:], ui+uint16(h.next(1)))
			case 4: // idx set to anything
				_, _, _, used := h.ring(0)
				le.PutUint16(used[2:], uint16(h.next(2)))
			}

			// Every descriptor free, or in the one chain posted on it.
			where := make([]int, q.num) // 0: nowhere; -1: free; else head+1
			for _, i := range q.free {
				if where[i] != 0 {
					t.Fatalf("descriptor %d free twice", i)
				}
				where[i] = -1
			}
			for head, segs := range posted {
				if int(q.held[head]) != len(segs) {
					t.Fatalf("chain %d of %d descriptors held as %d", head, len(segs), q.held[head])
				}
				for i, k := head, 0; k < len(segs); i, k = q.next[i], k+1 {
					if where[i] != 0 {
						t.Fatalf("descriptor %d in chain %d and in %d", i, head, where[i]-1)
					}
					where[i] = int(head) + 1
				}
			}
			for i, w := range where {
				if w == 0 {
					t.Fatalf("descriptor %d lost", i)
				}
				if q.held[i] != 0 && posted[uint16(i)] == nil {
					t.Fatalf("descriptor %d held as a head, though reaped", i)
				}
			}
		}
	})
}
