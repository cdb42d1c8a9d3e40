package virtioblk

import (
	"bytes"
	"encoding/binary"
	"github.com/bulkhead-hv/bulkhead/vdev/virtiommio/vqtest"
	"testing"
)

// FuzzRequests serves requests whose header, data and buffer sizes are
// the fuzzer's, with the register writes around them also the fuzzer's.
// Nothing may panic, every chain is given back with no more bytes than
// it can hold, and a read-only disk never changes.
func FuzzRequests(f *testing.F) {
	f.Add(header(TypeIn, 1), uint16(512), uint16(513), []byte{})
	f.Add(header(TypeOut, 0), uint16(16+512), uint16(1), []byte{0x70, 0})
	f.Add(header(TypeGetID, 0), uint16(16), uint16(5), []byte{0x64, 1})
	f.Fuzz(func(t *testing.T, hdr []byte, readable, writable uint16, regs []byte) {
		for _, ro := range []bool{false, true} {
			d, disk, q := newDevice(t, ro)
			for i := 0; i+1 < len(regs); i += 2 {
				d.Write(uint64(regs[i])&^3, 4, uint64(regs[i+1]))
			}
			before := bytes.Clone(disk.b)
			r := make([]byte, readable)
			copy(r, hdr)
			if len(hdr) >= 16 && len(r) >= 16 {
				// Keep most sectors inside the small disk.
				binary.LittleEndian.PutUint64(r[8:], binary.LittleEndian.Uint64(hdr[8:])%4096)
			}
			c := &vqtest.Chain{R: r, W: make([]byte, writable)}
			q.Post(c)
			d.Notify(0)
			if c.Pushed > len(c.W) {
				t.Fatalf("pushed with %d bytes written into %d", c.Pushed, len(c.W))
			}
			if ro && !bytes.Equal(before, disk.b) {
				t.Fatal("a read-only disk changed")
			}
		}
	})
}
