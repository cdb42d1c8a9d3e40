// Package vuart is the console a guest sees: a PL011 UART register model
// at QEMU virt's address, and the byte rings that carry its output to the
// control partition and its input back. The hypervisor keeps both so that
// a console byte costs one trap to EL2, not a trip through the control
// partition (docs/architecture.md, "Consoles").
package vuart

// Ring is a bounded FIFO of bytes. A full ring refuses bytes rather than
// dropping old ones: the writer sees back-pressure (a full UART FIFO, a
// short CONSOLE_WRITE) and nothing is lost.
type Ring struct {
	buf        []byte
	head, size int
}

// NewRing makes a ring holding up to n bytes.
func NewRing(n int) *Ring { return &Ring{buf: make([]byte, n)} }

// Len is the number of bytes waiting.
func (r *Ring) Len() int { return r.size }

// Free is the room left.
func (r *Ring) Free() int { return len(r.buf) - r.size }

// Write appends as much of b as fits and returns how much that was.
func (r *Ring) Write(b []byte) int {
	n := 0
	for _, c := range b {
		if r.size == len(r.buf) {
			break
		}
		r.buf[(r.head+r.size)%len(r.buf)] = c
		r.size++
		n++
	}
	return n
}

// Read moves up to len(b) bytes out of the ring into b.
func (r *Ring) Read(b []byte) int {
	n := 0
	for n < len(b) && r.size > 0 {
		b[n] = r.buf[r.head]
		r.head = (r.head + 1) % len(r.buf)
		r.size--
		n++
	}
	return n
}

// Take takes one byte; ok is false when the ring is empty.
func (r *Ring) Take() (c byte, ok bool) {
	var b [1]byte
	if r.Read(b[:]) == 0 {
		return 0, false
	}
	return b[0], true
}
