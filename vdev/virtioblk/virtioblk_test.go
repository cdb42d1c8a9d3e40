package virtioblk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/vdev/virtiommio"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

// memDisk is a disk in memory.
type memDisk struct {
	b       []byte
	flushes int
}

func (m *memDisk) ReadAt(p []byte, off int64) (int, error)  { return copy(p, m.b[off:]), nil }
func (m *memDisk) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }
func (m *memDisk) Flush() error                             { m.flushes++; return nil }
func (m *memDisk) Size() int64                              { return int64(len(m.b)) }

// chain is a request as the guest posted it.
type chain struct {
	r, w   []byte
	pushed int // bytes written, -1 until pushed
}

// fakeQueue plays the hypervisor's mediation: it refuses what the real
// one refuses (bytes outside the chain, a chain not held).
type fakeQueue struct {
	posted []*chain
	held   map[uint16]*chain
	next   uint16
	broken bool
}

func (q *fakeQueue) post(c *chain) { c.pushed = -1; q.posted = append(q.posted, c) }

func (q *fakeQueue) Pop() (uint16, uint32, uint32, bool, error) {
	if q.broken {
		return 0, 0, 0, false, ErrNeedsReset
	}
	if len(q.posted) == 0 {
		return 0, 0, 0, false, nil
	}
	c := q.posted[0]
	q.posted = q.posted[1:]
	if q.held == nil {
		q.held = map[uint16]*chain{}
	}
	q.next++
	q.held[q.next] = c
	return q.next, uint32(len(c.r)), uint32(len(c.w)), true, nil
}

var errDenied = errors.New("DENIED")

func (q *fakeQueue) Read(head uint16, off uint32, b []byte) error {
	c := q.held[head]
	if c == nil || int(off)+len(b) > len(c.r) {
		return errDenied
	}
	copy(b, c.r[off:])
	return nil
}

func (q *fakeQueue) Write(head uint16, off uint32, b []byte) error {
	c := q.held[head]
	if c == nil || int(off)+len(b) > len(c.w) {
		return errDenied
	}
	copy(c.w[off:], b)
	return nil
}

func (q *fakeQueue) Push(head uint16, n uint32) error {
	c := q.held[head]
	if c == nil {
		return errDenied
	}
	delete(q.held, head)
	c.pushed = int(n)
	return nil
}

func header(typ uint32, sector uint64) []byte {
	h := make([]byte, 16)
	binary.LittleEndian.PutUint32(h, typ)
	binary.LittleEndian.PutUint64(h[8:], sector)
	return h
}

// newDevice returns a device the guest has set up as Linux does.
func newDevice(t *testing.T, ro bool) (*Device, *memDisk, *fakeQueue) {
	disk := &memDisk{b: make([]byte, 1<<20)}
	q := &fakeQueue{}
	d := New(disk, ro, "disk0", q)
	require.Equal(t, uint64(mmioreg.Magic), d.Read(mmioreg.MagicValue, 4))
	require.Equal(t, uint64(2), d.Read(mmioreg.Version, 4))
	require.Equal(t, uint64(2), d.Read(mmioreg.DeviceID, 4))
	d.Write(mmioreg.Status, 4, mmioreg.StatusAcknowledge|mmioreg.StatusDriver)
	d.Write(mmioreg.DeviceFeaturesSel, 4, 1)
	require.Equal(t, uint64(1), d.Read(mmioreg.DeviceFeatures, 4), "VIRTIO_F_VERSION_1")
	d.Write(mmioreg.DeviceFeaturesSel, 4, 0)
	f := d.Read(mmioreg.DeviceFeatures, 4)
	assert.Equal(t, ro, f&FeatureRO != 0)
	d.Write(mmioreg.DriverFeaturesSel, 4, 0)
	d.Write(mmioreg.DriverFeatures, 4, f)
	d.Write(mmioreg.DriverFeaturesSel, 4, 1)
	d.Write(mmioreg.DriverFeatures, 4, 1)
	d.Write(mmioreg.Status, 4, mmioreg.StatusAcknowledge|mmioreg.StatusDriver|mmioreg.StatusFeaturesOK)
	require.NotZero(t, d.Read(mmioreg.Status, 4)&mmioreg.StatusFeaturesOK)
	d.Write(mmioreg.QueueSel, 4, 0)
	require.Equal(t, uint64(QueueSize), d.Read(mmioreg.QueueNumMax, 4))
	d.Write(mmioreg.QueueNum, 4, 64)
	d.Write(mmioreg.QueueDescLow, 4, 0x1000)
	assert.Equal(t, uint64(0x1000), d.Read(mmioreg.QueueDescLow, 4))
	d.Write(mmioreg.QueueReady, 4, 1)
	d.Write(mmioreg.Status, 4, mmioreg.StatusAcknowledge|mmioreg.StatusDriver|mmioreg.StatusFeaturesOK|mmioreg.StatusDriverOK)
	return d, disk, q
}

func TestConfig(t *testing.T) {
	d, _, _ := newDevice(t, false)
	assert.Equal(t, uint64(2048), d.Read(mmioreg.Config, 8), "capacity in sectors, 8 bytes")
	assert.Equal(t, uint64(2048), d.Read(mmioreg.Config, 4)|d.Read(mmioreg.Config+4, 4)<<32, "capacity as two words")
	assert.Equal(t, uint64(0x08), d.Read(mmioreg.Config+1, 1), "capacity's second byte")
	assert.Equal(t, uint64(SectorSize), d.Read(mmioreg.Config+20, 4), "blk_size")
	assert.Equal(t, uint64(SegMax), d.Read(mmioreg.Config+12, 4), "seg_max")
	assert.Equal(t, uint64(0), d.Read(mmioreg.Config+24, 4), "past the layout")
	assert.Equal(t, uint64(0), d.Read(mmioreg.MagicValue, 2), "not a 32-bit access")
}

func TestFeaturesNotOffered(t *testing.T) {
	d := New(&memDisk{b: make([]byte, 4096)}, false, "", &fakeQueue{})
	d.Write(mmioreg.DriverFeaturesSel, 4, 0)
	d.Write(mmioreg.DriverFeatures, 4, 1<<28) // VIRTIO_F_INDIRECT_DESC
	d.Write(mmioreg.Status, 4, mmioreg.StatusFeaturesOK)
	assert.Zero(t, d.Read(mmioreg.Status, 4)&mmioreg.StatusFeaturesOK, "FEATURES_OK refused")
}

func TestReadWriteFlush(t *testing.T) {
	d, disk, q := newDevice(t, false)
	data := bytes.Repeat([]byte("bulkhead"), 3*chunk/8) // three copies' worth
	w := &chain{r: append(header(TypeOut, 2), data...), w: make([]byte, 1)}
	f := &chain{r: header(TypeFlush, 0), w: make([]byte, 1)}
	rd := &chain{r: header(TypeIn, 2), w: make([]byte, len(data)+1)}
	q.post(w)
	q.post(f)
	q.post(rd)
	d.Notify(0)
	assert.Equal(t, 1, w.pushed)
	assert.Equal(t, []byte{StatusOK}, w.w)
	assert.Equal(t, data, disk.b[1024:1024+len(data)])
	assert.Equal(t, 1, disk.flushes)
	assert.Equal(t, []byte{StatusOK}, f.w)
	assert.Equal(t, len(data)+1, rd.pushed)
	assert.Equal(t, data, rd.w[:len(data)])
	assert.Equal(t, byte(StatusOK), rd.w[len(data)])
	assert.True(t, d.Line(), "used buffers raise the interrupt")
	assert.Equal(t, uint64(virtiommio.IntUsed), d.Read(mmioreg.InterruptStatus, 4))
	d.Write(mmioreg.InterruptACK, 4, virtiommio.IntUsed)
	assert.False(t, d.Line(), "acknowledged")
	assert.Equal(t, Stats{Reads: 1, Writes: 1, Flushes: 1, ReadBytes: uint64(len(data)), WrittenBytes: uint64(len(data))}, d.Stats)
}

func TestBadRequests(t *testing.T) {
	for _, c := range []struct {
		name   string
		ro     bool
		req    *chain
		status byte
	}{
		{"a write to a read-only disk", true, &chain{r: append(header(TypeOut, 0), make([]byte, 512)...), w: make([]byte, 1)}, StatusIOErr},
		{"a read past the end", false, &chain{r: header(TypeIn, 2047), w: make([]byte, 1025)}, StatusIOErr},
		{"a write past the end", false, &chain{r: append(header(TypeOut, 1<<40), make([]byte, 512)...), w: make([]byte, 1)}, StatusIOErr},
		{"a sector that overflows", false, &chain{r: header(TypeIn, 1<<63), w: make([]byte, 513)}, StatusIOErr},
		{"part of a sector", false, &chain{r: header(TypeIn, 0), w: make([]byte, 100)}, StatusIOErr},
		{"an unknown request", false, &chain{r: header(99, 0), w: make([]byte, 1)}, StatusUnsupp},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, disk, q := newDevice(t, c.ro)
			before := bytes.Clone(disk.b)
			q.post(c.req)
			d.Notify(0)
			assert.Equal(t, c.status, c.req.w[len(c.req.w)-1])
			assert.Equal(t, before, disk.b, "the disk is unchanged")
			assert.Equal(t, uint64(1), d.Stats.Errors)
		})
	}
}

func TestGetID(t *testing.T) {
	d, _, q := newDevice(t, false)
	c := &chain{r: header(TypeGetID, 0), w: make([]byte, 21)}
	q.post(c)
	d.Notify(0)
	assert.Equal(t, append([]byte("disk0"), make([]byte, 16)...), c.w)
	assert.Equal(t, 21, c.pushed)
}

// A chain without room for a header or a status byte is given back
// untouched: there is nowhere to say what went wrong.
func TestChainTooShort(t *testing.T) {
	d, _, q := newDevice(t, false)
	c := &chain{r: make([]byte, 8), w: nil}
	q.post(c)
	d.Notify(0)
	assert.Equal(t, 0, c.pushed)
	assert.Equal(t, uint64(1), d.Stats.Errors)
}

func TestBrokenQueueNeedsReset(t *testing.T) {
	d, _, q := newDevice(t, false)
	q.broken = true
	d.Notify(0)
	assert.NotZero(t, d.Read(mmioreg.Status, 4)&virtiommio.StatusNeedsReset, "DEVICE_NEEDS_RESET")
	assert.Equal(t, uint64(virtiommio.IntConfig), d.Read(mmioreg.InterruptStatus, 4), "a configuration change interrupt")
	q.broken = false
	c := &chain{r: header(TypeFlush, 0), w: make([]byte, 1)}
	q.post(c)
	d.Notify(0)
	assert.Equal(t, -1, c.pushed, "no request is served until the guest resets the device")
	d.Write(mmioreg.Status, 4, 0)
	assert.Zero(t, d.Read(mmioreg.Status, 4))
	assert.False(t, d.Line())
	assert.Zero(t, d.Read(mmioreg.QueueReady, 4))
}

// Nothing is served before the driver says DRIVER_OK.
func TestNotReady(t *testing.T) {
	q := &fakeQueue{}
	d := New(&memDisk{b: make([]byte, 4096)}, false, "", q)
	c := &chain{r: header(TypeFlush, 0), w: make([]byte, 1)}
	q.post(c)
	d.Notify(0)
	assert.Equal(t, -1, c.pushed)
}

// A guest disk on a slice of a drive reaches that slice only.
func TestSlice(t *testing.T) {
	disk := &memDisk{b: make([]byte, 8192)}
	s := &Slice{Disk: disk, Off: 4096, Len: 2048}
	q := &fakeQueue{}
	d := New(s, false, "s", q)
	assert.Equal(t, uint64(4), d.Read(mmioreg.Config, 8), "capacity: the slice's sectors")
	d.Write(mmioreg.Status, 4, mmioreg.StatusAcknowledge|mmioreg.StatusDriver|mmioreg.StatusFeaturesOK|mmioreg.StatusDriverOK)
	d.Write(mmioreg.QueueReady, 4, 1)
	w := &chain{r: append(header(TypeOut, 1), bytes.Repeat([]byte{7}, 512)...), w: make([]byte, 1)}
	past := &chain{r: append(header(TypeOut, 4), make([]byte, 512)...), w: make([]byte, 1)}
	q.post(w)
	q.post(past)
	d.Notify(0)
	assert.Equal(t, []byte{StatusOK}, w.w)
	assert.Equal(t, []byte{StatusIOErr}, past.w, "past the slice")
	assert.Equal(t, bytes.Repeat([]byte{7}, 512), disk.b[4096+512:4096+1024], "sector 1 of the slice is at its offset")
	assert.Equal(t, make([]byte, 4096), disk.b[:4096], "nothing before the slice")
	assert.Equal(t, make([]byte, 8192-5120), disk.b[5120:], "nothing after the slice's sector")
	_, err := s.ReadAt(make([]byte, 512), 2048)
	assert.Error(t, err)
}
