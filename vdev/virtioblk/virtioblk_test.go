package virtioblk

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/vdev/virtiommio"
	"github.com/bulkhead-hv/bulkhead/vdev/virtiommio/vqtest"
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

func header(typ uint32, sector uint64) []byte {
	h := make([]byte, 16)
	binary.LittleEndian.PutUint32(h, typ)
	binary.LittleEndian.PutUint64(h[8:], sector)
	return h
}

// newDevice returns a device the guest has set up as Linux does.
func newDevice(t *testing.T, ro bool) (*Device, *memDisk, *vqtest.Queue) {
	disk := &memDisk{b: make([]byte, 1<<20)}
	q := &vqtest.Queue{}
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
	d := New(&memDisk{b: make([]byte, 4096)}, false, "", &vqtest.Queue{})
	d.Write(mmioreg.DriverFeaturesSel, 4, 0)
	d.Write(mmioreg.DriverFeatures, 4, 1<<28) // VIRTIO_F_INDIRECT_DESC
	d.Write(mmioreg.Status, 4, mmioreg.StatusFeaturesOK)
	assert.Zero(t, d.Read(mmioreg.Status, 4)&mmioreg.StatusFeaturesOK, "FEATURES_OK refused")
}

func TestReadWriteFlush(t *testing.T) {
	d, disk, q := newDevice(t, false)
	data := bytes.Repeat([]byte("bulkhead"), 3*chunk/8) // three copies' worth
	w := &vqtest.Chain{R: append(header(TypeOut, 2), data...), W: make([]byte, 1)}
	f := &vqtest.Chain{R: header(TypeFlush, 0), W: make([]byte, 1)}
	rd := &vqtest.Chain{R: header(TypeIn, 2), W: make([]byte, len(data)+1)}
	q.Post(w)
	q.Post(f)
	q.Post(rd)
	d.Notify(0)
	assert.Equal(t, 1, w.Pushed)
	assert.Equal(t, []byte{StatusOK}, w.W)
	assert.Equal(t, data, disk.b[1024:1024+len(data)])
	assert.Equal(t, 1, disk.flushes)
	assert.Equal(t, []byte{StatusOK}, f.W)
	assert.Equal(t, len(data)+1, rd.Pushed)
	assert.Equal(t, data, rd.W[:len(data)])
	assert.Equal(t, byte(StatusOK), rd.W[len(data)])
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
		req    *vqtest.Chain
		status byte
	}{
		{"a write to a read-only disk", true, &vqtest.Chain{R: append(header(TypeOut, 0), make([]byte, 512)...), W: make([]byte, 1)}, StatusIOErr},
		{"a read past the end", false, &vqtest.Chain{R: header(TypeIn, 2047), W: make([]byte, 1025)}, StatusIOErr},
		{"a write past the end", false, &vqtest.Chain{R: append(header(TypeOut, 1<<40), make([]byte, 512)...), W: make([]byte, 1)}, StatusIOErr},
		{"a sector that overflows", false, &vqtest.Chain{R: header(TypeIn, 1<<63), W: make([]byte, 513)}, StatusIOErr},
		{"part of a sector", false, &vqtest.Chain{R: header(TypeIn, 0), W: make([]byte, 100)}, StatusIOErr},
		{"an unknown request", false, &vqtest.Chain{R: header(99, 0), W: make([]byte, 1)}, StatusUnsupp},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, disk, q := newDevice(t, c.ro)
			before := bytes.Clone(disk.b)
			q.Post(c.req)
			d.Notify(0)
			assert.Equal(t, c.status, c.req.W[len(c.req.W)-1])
			assert.Equal(t, before, disk.b, "the disk is unchanged")
			assert.Equal(t, uint64(1), d.Stats.Errors)
		})
	}
}

func TestGetID(t *testing.T) {
	d, _, q := newDevice(t, false)
	c := &vqtest.Chain{R: header(TypeGetID, 0), W: make([]byte, 21)}
	q.Post(c)
	d.Notify(0)
	assert.Equal(t, append([]byte("disk0"), make([]byte, 16)...), c.W)
	assert.Equal(t, 21, c.Pushed)
}

// A chain without room for a header or a status byte is given back
// untouched: there is nowhere to say what went wrong.
func TestChainTooShort(t *testing.T) {
	d, _, q := newDevice(t, false)
	c := &vqtest.Chain{R: make([]byte, 8), W: nil}
	q.Post(c)
	d.Notify(0)
	assert.Equal(t, 0, c.Pushed)
	assert.Equal(t, uint64(1), d.Stats.Errors)
}

func TestBrokenQueueNeedsReset(t *testing.T) {
	d, _, q := newDevice(t, false)
	q.Broken = true
	d.Notify(0)
	assert.NotZero(t, d.Read(mmioreg.Status, 4)&virtiommio.StatusNeedsReset, "DEVICE_NEEDS_RESET")
	assert.Equal(t, uint64(virtiommio.IntConfig), d.Read(mmioreg.InterruptStatus, 4), "a configuration change interrupt")
	q.Broken = false
	c := &vqtest.Chain{R: header(TypeFlush, 0), W: make([]byte, 1)}
	q.Post(c)
	d.Notify(0)
	assert.Equal(t, -1, c.Pushed, "no request is served until the guest resets the device")
	d.Write(mmioreg.Status, 4, 0)
	assert.Zero(t, d.Read(mmioreg.Status, 4))
	assert.False(t, d.Line())
	assert.Zero(t, d.Read(mmioreg.QueueReady, 4))
}

// Nothing is served before the driver says DRIVER_OK.
func TestNotReady(t *testing.T) {
	q := &vqtest.Queue{}
	d := New(&memDisk{b: make([]byte, 4096)}, false, "", q)
	c := &vqtest.Chain{R: header(TypeFlush, 0), W: make([]byte, 1)}
	q.Post(c)
	d.Notify(0)
	assert.Equal(t, -1, c.Pushed)
}

// A guest disk on a slice of a drive reaches that slice only.
func TestSlice(t *testing.T) {
	disk := &memDisk{b: make([]byte, 8192)}
	s := &Slice{Disk: disk, Off: 4096, Len: 2048}
	q := &vqtest.Queue{}
	d := New(s, false, "s", q)
	assert.Equal(t, uint64(4), d.Read(mmioreg.Config, 8), "capacity: the slice's sectors")
	d.Write(mmioreg.Status, 4, mmioreg.StatusAcknowledge|mmioreg.StatusDriver|mmioreg.StatusFeaturesOK|mmioreg.StatusDriverOK)
	d.Write(mmioreg.QueueReady, 4, 1)
	w := &vqtest.Chain{R: append(header(TypeOut, 1), bytes.Repeat([]byte{7}, 512)...), W: make([]byte, 1)}
	past := &vqtest.Chain{R: append(header(TypeOut, 4), make([]byte, 512)...), W: make([]byte, 1)}
	q.Post(w)
	q.Post(past)
	d.Notify(0)
	assert.Equal(t, []byte{StatusOK}, w.W)
	assert.Equal(t, []byte{StatusIOErr}, past.W, "past the slice")
	assert.Equal(t, bytes.Repeat([]byte{7}, 512), disk.b[4096+512:4096+1024], "sector 1 of the slice is at its offset")
	assert.Equal(t, make([]byte, 4096), disk.b[:4096], "nothing before the slice")
	assert.Equal(t, make([]byte, 8192-5120), disk.b[5120:], "nothing after the slice's sector")
	_, err := s.ReadAt(make([]byte, 512), 2048)
	assert.Error(t, err)
}
