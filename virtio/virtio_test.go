package virtio

import (
	"encoding/binary"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeMem hands out buffers at made-up physical addresses.
type fakeMem struct {
	next     uint64
	bufs     map[uint64][]byte
	barriers int
}

func (m *fakeMem) Alloc(n int) ([]byte, uint64) {
	b := make([]byte, n)
	pa := m.next
	m.bufs[pa] = b
	m.next += uint64(n+63) &^ 63
	return b, pa
}

func (m *fakeMem) Barrier() { m.barriers++ }

func (m *fakeMem) at(pa uint64) []byte {
	for base, b := range m.bufs {
		if pa >= base && pa < base+uint64(len(b)) {
			return b[pa-base:]
		}
	}
	panic("DMA to memory the driver never allocated")
}

type fakeQueue struct {
	num               uint32
	desc, avail, used uint64
	ready             uint32
	seen              uint16
}

// fakeConsole is a virtio-mmio console device: what the driver transmits
// lands in out; what is in in goes to the driver's receive buffers.
type fakeConsole struct {
	mem      *fakeMem
	regs     map[uint64]uint32
	status   uint32
	features uint64
	driver   uint64
	queues   [2]fakeQueue
	sel      uint32
	out      []byte
	in       []byte
}

const base = 0x0a003e00

func newFake(mem *fakeMem) *fakeConsole {
	return &fakeConsole{mem: mem, features: mmioreg.FeatureVersion1 | 1<<0}
}

func (f *fakeConsole) Read32(addr uint64) uint32 {
	switch addr - base {
	case mmioreg.MagicValue:
		return mmioreg.Magic
	case mmioreg.Version:
		return 2
	case mmioreg.DeviceID:
		return mmioreg.DeviceConsole
	case mmioreg.DeviceFeatures:
		return uint32(f.features >> (32 * f.regs[mmioreg.DeviceFeaturesSel]))
	case mmioreg.QueueNumMax:
		return 8
	case mmioreg.Status:
		return f.status
	}
	return 0
}

func (f *fakeConsole) Write32(addr uint64, v uint32) {
	if f.regs == nil {
		f.regs = map[uint64]uint32{}
	}
	off := addr - base
	f.regs[off] = v
	q := &f.queues[f.regs[mmioreg.QueueSel]%2]
	switch off {
	case mmioreg.DriverFeatures:
		f.driver |= uint64(v) << (32 * f.regs[mmioreg.DriverFeaturesSel])
	case mmioreg.Status:
		f.status = v
	case mmioreg.QueueNum:
		q.num = v
	case mmioreg.QueueDescLow:
		q.desc = uint64(v)
	case mmioreg.QueueDriverLow:
		q.avail = uint64(v)
	case mmioreg.QueueDeviceLow:
		q.used = uint64(v)
	case mmioreg.QueueReady:
		q.ready = v
	case mmioreg.QueueNotify:
		if v == 1 {
			f.transmit()
		}
	}
}

// consume takes the buffers the driver made available on queue q.
func (f *fakeConsole) consume(q *fakeQueue, fn func(buf []byte, write bool) int) {
	le := binary.LittleEndian
	avail := f.mem.at(q.avail)
	used := f.mem.at(q.used)
	for q.seen != le.Uint16(avail[2:]) {
		id := le.Uint16(avail[4+2*(uint32(q.seen)%q.num):])
		d := f.mem.at(q.desc + 16*uint64(id))
		buf := f.mem.at(le.Uint64(d))[:le.Uint32(d[8:])]
		n := fn(buf, le.Uint16(d[12:])&DescWrite != 0)
		if n < 0 {
			return // nothing to give now; the buffer stays available
		}
		ui := le.Uint16(used[2:])
		le.PutUint32(used[4+8*(uint32(ui)%q.num):], uint32(id))
		le.PutUint32(used[8+8*(uint32(ui)%q.num):], uint32(n))
		le.PutUint16(used[2:], ui+1)
		q.seen++
	}
}

func (f *fakeConsole) transmit() {
	f.consume(&f.queues[1], func(buf []byte, write bool) int {
		if write {
			panic("transmit buffer marked device-writable")
		}
		f.out = append(f.out, buf...)
		return 0
	})
}

func (f *fakeConsole) deliver() {
	f.consume(&f.queues[0], func(buf []byte, write bool) int {
		if !write {
			panic("receive buffer not device-writable")
		}
		if len(f.in) == 0 {
			return -1
		}
		n := copy(buf, f.in)
		f.in = f.in[n:]
		return n
	})
}

func TestConsoleRoundTrip(t *testing.T) {
	mem := &fakeMem{next: 0x4800_0000, bufs: map[uint64][]byte{}}
	dev := newFake(mem)
	bases := []uint64{0x0a000000, base}
	found, err := Find(dev, bases[1:], mmioreg.DeviceConsole)
	require.NoError(t, err)
	d, err := Init(dev, mem, found, 0)
	require.NoError(t, err)
	assert.Equal(t, uint64(mmioreg.FeatureVersion1), dev.driver, "only VERSION_1: no multiport")
	rx, err := d.Queue(0, 16, 64)
	require.NoError(t, err)
	tx, err := d.Queue(1, 16, 64)
	require.NoError(t, err)
	assert.Equal(t, uint32(8), dev.queues[0].num, "capped at mmioreg.QueueNumMax")
	d.Ready()
	assert.Equal(t, uint32(mmioreg.StatusAcknowledge|mmioreg.StatusDriver|mmioreg.StatusFeaturesOK|mmioreg.StatusDriverOK), dev.status)
	rx.Fill()

	// A message longer than one buffer is split across several.
	msg := []byte(`{"event":"ready","padding":"` + string(make([]byte, 100)) + `"}` + "\n")
	idles := 0
	tx.Send(msg, func() { idles++ })
	assert.Equal(t, msg, dev.out)
	assert.Positive(t, mem.barriers)

	// Sending more than the ring holds waits for the device to finish
	// with buffers.
	dev.out = nil
	tx.Send(make([]byte, 64*20), func() { idles++ })
	assert.Len(t, dev.out, 64*20)

	dev.in = []byte("{\"id\":1,\"op\":\"ping\"}\n")
	dev.deliver()
	assert.Equal(t, "{\"id\":1,\"op\":\"ping\"}\n", string(rx.Receive()))
	assert.Empty(t, rx.Receive(), "nothing more")
	dev.in = []byte("again")
	dev.deliver()
	assert.Equal(t, "again", string(rx.Receive()), "buffers were given back")
}

func TestFindAndInitErrors(t *testing.T) {
	mem := &fakeMem{next: 0x4800_0000, bufs: map[uint64][]byte{}}
	dev := newFake(mem)
	_, err := Find(dev, []uint64{base}, 1) // a network device
	assert.ErrorIs(t, err, ErrNoDevice)
	dev.features = 0
	_, err = Init(dev, mem, base, 0)
	assert.ErrorIs(t, err, ErrFeatures, "a legacy-only device")
}
