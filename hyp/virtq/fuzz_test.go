package virtq

import (
	"encoding/binary"
	"testing"
)

// FuzzQueue gives the hypervisor a guest whose rings and descriptors are
// the fuzzer's bytes, rewritten between operations, and a backend that
// asks for spans and pushes chains at the fuzzer's choice. Nothing may
// panic, every span must lie in the guest's RAM and in a chain that was
// popped and not yet pushed, and no descriptor may be in two chains.
func FuzzQueue(f *testing.F) {
	f.Add([]byte{}, []byte{0, 1, 2, 3})
	seed := make([]byte, 0x40)
	binary.LittleEndian.PutUint64(seed, ramBase+0x8000)
	binary.LittleEndian.PutUint32(seed[8:], 64)
	binary.LittleEndian.PutUint16(seed[12:], descNext)
	binary.LittleEndian.PutUint16(seed[14:], 1)
	binary.LittleEndian.PutUint64(seed[16:], ramBase+0x9000)
	binary.LittleEndian.PutUint32(seed[24:], 64)
	binary.LittleEndian.PutUint16(seed[28:], descWrite)
	f.Add(seed, []byte{0, 0, 1, 0, 0, 2, 0, 3})
	f.Fuzz(func(t *testing.T, descs, ops []byte) {
		d := newDriver(t, 8)
		copy(d.m.b[d.desc-ramBase:d.desc-ramBase+16*8], descs)
		q := d.t.Queue(0)
		var popped []uint16
		var spans []Span
		for i, op := range ops {
			switch op % 5 {
			case 0: // the guest posts the next byte as a head
				if i+1 < len(ops) {
					d.post(uint16(ops[i+1] % 10))
				}
			case 1:
				if h, _, _, ok, err := q.Pop(d.m); ok && err == nil {
					popped = append(popped, h)
				}
			case 2: // the guest rewrites a descriptor
				if i+1 < len(ops) {
					d.m.b[d.desc-ramBase+uint64(ops[i+1])%(16*8)] ^= 0xff
				}
			case 3:
				for _, h := range popped {
					for _, w := range []bool{false, true} {
						var err error
						spans, err = q.Spans(h, w, uint64(op), 100, spans[:0])
						for _, s := range spans {
							if err == nil && !d.m.Contains(s.IPA, uint64(s.Len)) {
								t.Fatalf("span %+v outside the guest's RAM", s)
							}
						}
					}
				}
			case 4:
				if len(popped) > 0 {
					q.Push(d.m, popped[0], uint32(op))
					if _, err := q.Spans(popped[0], true, 0, 0, nil); err == nil {
						t.Fatalf("chain %d reachable after Push", popped[0])
					}
					popped = popped[1:]
				}
			}
			if q.ready && !q.broken {
				// Each held descriptor is in exactly one popped chain.
				seen := map[uint16]bool{}
				for _, h := range popped {
					for j := h; j != end; j = q.link[j] {
						if seen[j] || !q.held[j] {
							t.Fatalf("descriptor %d in two chains or not held", j)
						}
						seen[j] = true
					}
				}
				for j, h := range q.held {
					if h && !seen[uint16(j)] {
						t.Fatalf("descriptor %d held by no chain", j)
					}
				}
			}
		}
	})
}
