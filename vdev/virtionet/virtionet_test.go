package virtionet

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/vdev/virtiommio"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

type chain struct {
	r, w   []byte
	pushed int
}

// fakeQueue plays the hypervisor's mediation of one queue.
type fakeQueue struct {
	posted []*chain
	held   map[uint16]*chain
	next   uint16
	broken bool
}

func (q *fakeQueue) post(c *chain) { c.pushed = -1; q.posted = append(q.posted, c) }

func (q *fakeQueue) Pop() (uint16, uint32, uint32, bool, error) {
	if q.broken {
		return 0, 0, 0, false, virtiommio.ErrNeedsReset
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

func (q *fakeQueue) Read(h uint16, off uint32, b []byte) error {
	c := q.held[h]
	if c == nil || int(off)+len(b) > len(c.r) {
		return errDenied
	}
	copy(b, c.r[off:])
	return nil
}

func (q *fakeQueue) Write(h uint16, off uint32, b []byte) error {
	c := q.held[h]
	if c == nil || int(off)+len(b) > len(c.w) {
		return errDenied
	}
	copy(c.w[off:], b)
	return nil
}

func (q *fakeQueue) Push(h uint16, n uint32) error {
	c := q.held[h]
	if c == nil {
		return errDenied
	}
	delete(q.held, h)
	c.pushed = int(n)
	return nil
}

var mac = [6]byte{0x02, 0xb1, 0x4b, 0, 0, 3}

func newDevice(t *testing.T) (*Device, *fakeQueue, *fakeQueue, *[][]byte) {
	rx, tx := &fakeQueue{}, &fakeQueue{}
	var out [][]byte
	d := New(mac, rx, tx, func(f []byte) { out = append(out, bytes.Clone(f)) })
	require.Equal(t, uint64(1), d.Read(mmioreg.DeviceID, 4))
	d.Write(mmioreg.DeviceFeaturesSel, 4, 0)
	f := d.Read(mmioreg.DeviceFeatures, 4)
	assert.Equal(t, uint64(FeatureMAC|FeatureStatus), f)
	d.Write(mmioreg.DriverFeatures, 4, f)
	d.Write(mmioreg.DriverFeaturesSel, 4, 1)
	d.Write(mmioreg.DriverFeatures, 4, 1)
	d.Write(mmioreg.Status, 4, mmioreg.StatusAcknowledge|mmioreg.StatusDriver|mmioreg.StatusFeaturesOK)
	for q := 0; q < 2; q++ {
		d.Write(mmioreg.QueueSel, 4, uint64(q))
		require.Equal(t, uint64(QueueSize), d.Read(mmioreg.QueueNumMax, 4))
		d.Write(mmioreg.QueueReady, 4, 1)
	}
	d.Write(mmioreg.QueueSel, 4, 2)
	assert.Zero(t, d.Read(mmioreg.QueueNumMax, 4), "no third queue")
	d.Write(mmioreg.Status, 4, mmioreg.StatusAcknowledge|mmioreg.StatusDriver|mmioreg.StatusFeaturesOK|mmioreg.StatusDriverOK)
	return d, rx, tx, &out
}

func ethernet(payload string) []byte {
	return append(append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mac[:]...), append([]byte{8, 6}, payload...)...)
}

func TestConfig(t *testing.T) {
	d, _, _, _ := newDevice(t)
	for i, b := range mac {
		assert.Equal(t, uint64(b), d.Read(mmioreg.Config+uint64(i), 1))
	}
	assert.Equal(t, uint64(1), d.Read(mmioreg.Config+6, 2), "VIRTIO_NET_S_LINK_UP")
}

func TestTransmit(t *testing.T) {
	d, _, tx, out := newDevice(t)
	f := ethernet("who has 10.0.2.2?")
	good := &chain{r: append(make([]byte, HeaderSize), f...)}
	runt := &chain{r: make([]byte, HeaderSize+5)}
	huge := &chain{r: make([]byte, HeaderSize+MaxFrame+1)}
	tx.post(good)
	tx.post(runt)
	tx.post(huge)
	d.Notify(TX)
	assert.Equal(t, [][]byte{f}, *out, "the frame, header stripped; the runt and the oversize one not sent")
	assert.Equal(t, []int{0, 0, 0}, []int{good.pushed, runt.pushed, huge.pushed}, "every chain given back")
	assert.Equal(t, Stats{TxFrames: 1, TxBytes: uint64(len(f)), Errors: 2}, d.Stats)
	assert.True(t, d.Line())
}

func TestReceive(t *testing.T) {
	d, rx, _, _ := newDevice(t)
	f1, f2 := ethernet("one"), ethernet("two")
	d.Deliver(f1) // no buffer yet: it waits
	b1 := &chain{w: make([]byte, HeaderSize+MaxFrame)}
	rx.post(b1)
	assert.False(t, d.Line())
	d.Notify(RX)
	require.Equal(t, HeaderSize+len(f1), b1.pushed)
	assert.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}, b1.w[:HeaderSize], "num_buffers 1")
	assert.Equal(t, f1, b1.w[HeaderSize:b1.pushed])
	assert.True(t, d.Line())
	small := &chain{w: make([]byte, HeaderSize+3)}
	b2 := &chain{w: make([]byte, HeaderSize+MaxFrame)}
	rx.post(small)
	rx.post(b2)
	d.Deliver(f2)
	assert.Equal(t, 0, small.pushed, "a buffer too small is given back empty")
	assert.Equal(t, f2, b2.w[HeaderSize:b2.pushed])
	for i := 0; i < backlog+5; i++ {
		d.Deliver(f1)
	}
	assert.Equal(t, uint64(5), d.Stats.RxDropped, "past the backlog, frames drop")
	d.Deliver(make([]byte, MaxFrame+1))
	assert.Equal(t, uint64(6), d.Stats.RxDropped, "an oversize frame drops")
}

func TestBrokenQueue(t *testing.T) {
	d, _, tx, out := newDevice(t)
	tx.broken = true
	d.Notify(TX)
	assert.NotZero(t, d.Read(mmioreg.Status, 4)&virtiommio.StatusNeedsReset)
	tx.broken = false
	tx.post(&chain{r: append(make([]byte, HeaderSize), ethernet("x")...)})
	d.Notify(TX)
	assert.Empty(t, *out, "nothing moves until the guest resets the device")
	d.Write(mmioreg.Status, 4, 0)
	d.Deliver(ethernet("y"))
	assert.Equal(t, uint64(1), d.Stats.RxDropped, "a reset device takes no frames until set up again")
}
