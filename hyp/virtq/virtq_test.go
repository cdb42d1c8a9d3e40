package virtq

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

// guestRAM is a guest's memory at IPA base.
type guestRAM struct {
	base uint64
	b    []byte
}

func (g *guestRAM) Contains(ipa, n uint64) bool {
	return ipa >= g.base && ipa+n >= ipa && ipa+n <= g.base+uint64(len(g.b))
}

func (g *guestRAM) Read(ipa uint64, b []byte) bool {
	if !g.Contains(ipa, uint64(len(b))) {
		return false
	}
	copy(b, g.b[ipa-g.base:])
	return true
}

func (g *guestRAM) Write(ipa uint64, b []byte) bool {
	if !g.Contains(ipa, uint64(len(b))) {
		return false
	}
	copy(g.b[ipa-g.base:], b)
	return true
}

func (g *guestRAM) Barrier() {}

// driver plays a guest's virtio driver: its rings in guestRAM.
type driver struct {
	m                 *guestRAM
	t                 *Transport
	num               uint32
	desc, avail, used uint64
	idx               uint16
}

const ramBase = 0x40000000

func newDriver(t *testing.T, num uint32) *driver {
	t.Helper()
	d := &driver{m: &guestRAM{base: ramBase, b: make([]byte, 1<<20)}, t: &Transport{}, num: num,
		desc: ramBase + 0x1000, avail: ramBase + 0x3000, used: ramBase + 0x4000}
	d.setup(0)
	return d
}

// setup programs queue i as a driver does (4.2.3.2).
func (d *driver) setup(i uint32) {
	for _, w := range []struct {
		off uint64
		v   uint32
	}{{mmioreg.QueueSel, i}, {mmioreg.QueueNum, d.num},
		{mmioreg.QueueDescLow, uint32(d.desc)}, {mmioreg.QueueDescHigh, uint32(d.desc >> 32)},
		{mmioreg.QueueDriverLow, uint32(d.avail)}, {mmioreg.QueueDriverHigh, uint32(d.avail >> 32)},
		{mmioreg.QueueDeviceLow, uint32(d.used)}, {mmioreg.QueueDeviceHigh, uint32(d.used >> 32)},
		{mmioreg.QueueReady, 1}} {
		d.t.Observe(w.off, w.v)
	}
}

// setDesc writes descriptor i.
func (d *driver) setDesc(i uint16, addr uint64, n uint32, flags, next uint16) {
	e := d.m.b[d.desc-ramBase+16*uint64(i):]
	binary.LittleEndian.PutUint64(e, addr)
	binary.LittleEndian.PutUint32(e[8:], n)
	binary.LittleEndian.PutUint16(e[12:], flags)
	binary.LittleEndian.PutUint16(e[14:], next)
}

// post puts head on the available ring.
func (d *driver) post(head uint16) {
	binary.LittleEndian.PutUint16(d.m.b[d.avail-ramBase+4+2*uint64(uint32(d.idx)%d.num):], head)
	d.idx++
	binary.LittleEndian.PutUint16(d.m.b[d.avail-ramBase+2:], d.idx)
}

func (d *driver) usedEntry(i int) (id, n uint32, idx uint16) {
	u := d.m.b[d.used-ramBase:]
	e := u[4+8*(i%int(d.num)):]
	return binary.LittleEndian.Uint32(e), binary.LittleEndian.Uint32(e[4:]), binary.LittleEndian.Uint16(u[2:])
}

// A virtio-blk read as Linux posts it: a readable header, then a
// writable data buffer and status byte.
func TestChainRoundTrip(t *testing.T) {
	d := newDriver(t, 8)
	d.setDesc(3, ramBase+0x10000, 16, descNext, 5)
	d.setDesc(5, ramBase+0x20000, 4096, descNext|descWrite, 1)
	d.setDesc(1, ramBase+0x30000, 1, descWrite, 0)
	d.post(3)
	q := d.t.Queue(0)
	head, r, w, ok, err := q.Pop(d.m)
	if err != nil || !ok || head != 3 || r != 16 || w != 4097 {
		t.Fatalf("Pop = %d, %d, %d, %v, %v; want 3, 16, 4097, true, nil", head, r, w, ok, err)
	}
	if _, _, _, ok, err := q.Pop(d.m); ok || err != nil {
		t.Fatalf("second Pop = %v, %v; want an empty ring", ok, err)
	}
	spans, err := q.Spans(head, true, 4090, 7, nil)
	want := []Span{{ramBase + 0x20000 + 4090, 6}, {ramBase + 0x30000, 1}}
	if err != nil || len(spans) != 2 || spans[0] != want[0] || spans[1] != want[1] {
		t.Fatalf("Spans = %v, %v; want %v", spans, err, want)
	}
	if _, err := q.Spans(head, false, 0, 17, nil); !errors.Is(err, ErrNotPosted) {
		t.Errorf("a read past the readable bytes: %v, want ErrNotPosted", err)
	}
	if _, err := q.Spans(head, true, 1<<63, 1<<63, nil); !errors.Is(err, ErrNotPosted) {
		t.Errorf("an offset that overflows: %v, want ErrNotPosted", err)
	}
	if _, err := q.Spans(5, true, 0, 1, nil); !errors.Is(err, ErrNotPosted) {
		t.Errorf("a descriptor that is not a head: %v, want ErrNotPosted", err)
	}
	// The driver rewrites the posted descriptor: the backend still
	// reaches only what was posted.
	d.setDesc(5, ramBase+0x80000, 4096, descNext|descWrite, 1)
	if spans, _ := q.Spans(head, true, 0, 1, nil); spans[0].IPA != ramBase+0x20000 {
		t.Errorf("after the driver rewrote a posted descriptor the span is at %#x", spans[0].IPA)
	}
	if err := q.Push(d.m, head, 1<<20); err != nil {
		t.Fatal(err)
	}
	if id, n, idx := d.usedEntry(0); id != 3 || n != 4097 || idx != 1 {
		t.Errorf("used ring: id %d len %d idx %d; want 3, 4097 (cut to the chain), 1", id, n, idx)
	}
	if _, err := q.Spans(head, true, 0, 1, nil); !errors.Is(err, ErrNotPosted) {
		t.Errorf("a chain already returned: %v, want ErrNotPosted", err)
	}
	if err := q.Push(d.m, head, 0); !errors.Is(err, ErrNotPosted) {
		t.Errorf("a chain pushed twice: %v, want ErrNotPosted", err)
	}
	// Its descriptors may be posted again.
	d.post(3)
	if h, _, _, ok, err := q.Pop(d.m); !ok || err != nil || h != 3 {
		t.Errorf("the chain posted again: %d, %v, %v", h, ok, err)
	}
}

func TestBrokenQueues(t *testing.T) {
	for _, c := range []struct {
		name  string
		build func(d *driver)
	}{
		{"a loop", func(d *driver) {
			d.setDesc(0, ramBase+0x10000, 16, descNext, 1)
			d.setDesc(1, ramBase+0x10000, 16, descNext, 0)
			d.post(0)
		}},
		{"a head past the queue", func(d *driver) { d.post(8) }},
		{"a next past the queue", func(d *driver) {
			d.setDesc(0, ramBase+0x10000, 16, descNext, 9)
			d.post(0)
		}},
		{"an indirect descriptor", func(d *driver) {
			d.setDesc(0, ramBase+0x10000, 16, descIndirect, 0)
			d.post(0)
		}},
		{"a buffer outside the guest's RAM", func(d *driver) {
			d.setDesc(0, 0x1000, 16, 0, 0)
			d.post(0)
		}},
		{"a buffer running past the guest's RAM", func(d *driver) {
			d.setDesc(0, ramBase+1<<20-8, 16, 0, 0)
			d.post(0)
		}},
		{"an address that wraps", func(d *driver) {
			d.setDesc(0, ^uint64(0)-4, 16, 0, 0)
			d.post(0)
		}},
		{"readable after writable", func(d *driver) {
			d.setDesc(0, ramBase+0x10000, 16, descNext|descWrite, 1)
			d.setDesc(1, ramBase+0x10000, 16, 0, 0)
			d.post(0)
		}},
		{"a descriptor posted twice", func(d *driver) {
			d.setDesc(0, ramBase+0x10000, 16, 0, 0)
			d.post(0)
			d.post(0)
		}},
		{"an index too far ahead", func(d *driver) {
			d.setDesc(0, ramBase+0x10000, 16, 0, 0)
			binary.LittleEndian.PutUint16(d.m.b[d.avail-ramBase+2:], 9)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newDriver(t, 8)
			c.build(d)
			q := d.t.Queue(0)
			var err error
			for i := 0; i < 3 && err == nil; i++ {
				_, _, _, _, err = q.Pop(d.m)
			}
			if !errors.Is(err, ErrBroken) {
				t.Fatalf("Pop: %v, want ErrBroken", err)
			}
			if _, _, _, _, err := q.Pop(d.m); !errors.Is(err, ErrBroken) {
				t.Errorf("the queue works again without a reset: %v", err)
			}
			d.t.Observe(mmioreg.Status, 0)
			if _, _, _, _, err := q.Pop(d.m); !errors.Is(err, ErrNotReady) {
				t.Errorf("after a reset: %v, want ErrNotReady", err)
			}
		})
	}
}

// A chain that overflows 32 bits of length breaks the queue; a guest
// whose RAM is small cannot post one, so this plays a large RAM.
func TestLengthOverflow(t *testing.T) {
	d := newDriver(t, 8)
	big := &bigRAM{d.m}
	d.setDesc(0, ramBase+0x10000, 0xffffffff, descNext, 1)
	d.setDesc(1, ramBase+0x10000, 2, 0, 0)
	d.post(0)
	if _, _, _, _, err := d.t.Queue(0).Pop(big); !errors.Is(err, ErrBroken) {
		t.Fatalf("Pop: %v, want ErrBroken", err)
	}
}

// bigRAM claims every buffer is RAM.
type bigRAM struct{ *guestRAM }

func (bigRAM) Contains(ipa, n uint64) bool { return ipa+n >= ipa }

func TestLayoutFixedWhileReady(t *testing.T) {
	d := newDriver(t, 8)
	d.t.Observe(mmioreg.QueueDescLow, 0x1230)
	d.t.Observe(mmioreg.QueueNum, 16)
	if q := d.t.Queue(0); q.desc != d.desc || q.num != 8 {
		t.Errorf("a live queue's layout changed: desc %#x num %d", q.desc, q.num)
	}
	for _, n := range []uint32{0, 6, 512} {
		d.t.Observe(mmioreg.QueueReady, 0)
		d.t.Observe(mmioreg.QueueNum, n)
		d.t.Observe(mmioreg.QueueReady, 1)
		if _, _, _, _, err := d.t.Queue(0).Pop(d.m); !errors.Is(err, ErrBroken) {
			t.Errorf("queue size %d: %v, want ErrBroken", n, err)
		}
	}
}

func TestResetDropsPostedChains(t *testing.T) {
	d := newDriver(t, 8)
	d.setDesc(0, ramBase+0x10000, 16, descWrite, 0)
	d.post(0)
	q := d.t.Queue(0)
	head, _, _, _, _ := q.Pop(d.m)
	d.t.Observe(mmioreg.Status, 0)
	if _, err := q.Spans(head, true, 0, 1, nil); !errors.Is(err, ErrNotPosted) {
		t.Errorf("a chain of a reset device: %v, want ErrNotPosted", err)
	}
	if err := q.Push(d.m, head, 1); !errors.Is(err, ErrNotPosted) {
		t.Errorf("Push after reset: %v, want ErrNotPosted", err)
	}
}

func TestNotify(t *testing.T) {
	tr := &Transport{}
	if !tr.Observe(mmioreg.QueueNotify, 1) || tr.Observe(mmioreg.QueueSel, 1) {
		t.Fatal("Observe does not tell notifications from other writes")
	}
	tr.Observe(mmioreg.QueueNotify, 7) // no such queue: nothing to take
	if q, ok := tr.TakeNotified(); !ok || q != 1 {
		t.Fatalf("TakeNotified = %d, %v", q, ok)
	}
	if _, ok := tr.TakeNotified(); ok {
		t.Fatal("a notification taken twice")
	}
}

// A queue broken from its enable (a size that is not a power of two) has
// no chains: completing or reading any head is refused, never an index
// past the snapshot.
func TestBrokenAtEnable(t *testing.T) {
	for _, num := range []uint32{3, 0xffff_ffff} {
		d := newDriver(t, num)
		q := d.t.Queue(0)
		for _, head := range []uint16{0, 2, 0xfffe} {
			if err := q.Push(d.m, head, 0); !errors.Is(err, ErrNotPosted) {
				t.Errorf("size %d: Push(%d): %v, want ErrNotPosted", num, head, err)
			}
			if _, err := q.Spans(head, true, 0, 1, nil); !errors.Is(err, ErrNotPosted) {
				t.Errorf("size %d: Spans(%d): %v, want ErrNotPosted", num, head, err)
			}
		}
	}
}
