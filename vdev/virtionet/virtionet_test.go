package virtionet

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/vdev/virtiommio"
	"github.com/bulkhead-hv/bulkhead/vdev/virtiommio/vqtest"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

var mac = [6]byte{0x02, 0xb1, 0x4b, 0, 0, 3}

func newDevice(t *testing.T) (*Device, *vqtest.Queue, *vqtest.Queue, *[][]byte) {
	rx, tx := &vqtest.Queue{}, &vqtest.Queue{}
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
	good := &vqtest.Chain{R: append(make([]byte, HeaderSize), f...)}
	runt := &vqtest.Chain{R: make([]byte, HeaderSize+5)}
	huge := &vqtest.Chain{R: make([]byte, HeaderSize+MaxFrame+1)}
	tx.Post(good)
	tx.Post(runt)
	tx.Post(huge)
	d.Notify(TX)
	assert.Equal(t, [][]byte{f}, *out, "the frame, header stripped; the runt and the oversize one not sent")
	assert.Equal(t, []int{0, 0, 0}, []int{good.Pushed, runt.Pushed, huge.Pushed}, "every chain given back")
	assert.Equal(t, Stats{TxFrames: 1, TxBytes: uint64(len(f)), Errors: 2}, d.Stats)
	assert.True(t, d.Line())
}

func TestReceive(t *testing.T) {
	d, rx, _, _ := newDevice(t)
	f1, f2 := ethernet("one"), ethernet("two")
	d.Deliver(f1) // no buffer yet: it waits
	b1 := &vqtest.Chain{W: make([]byte, HeaderSize+MaxFrame)}
	rx.Post(b1)
	assert.False(t, d.Line())
	d.Notify(RX)
	require.Equal(t, HeaderSize+len(f1), b1.Pushed)
	assert.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}, b1.W[:HeaderSize], "num_buffers 1")
	assert.Equal(t, f1, b1.W[HeaderSize:b1.Pushed])
	assert.True(t, d.Line())
	small := &vqtest.Chain{W: make([]byte, HeaderSize+3)}
	b2 := &vqtest.Chain{W: make([]byte, HeaderSize+MaxFrame)}
	rx.Post(small)
	rx.Post(b2)
	d.Deliver(f2)
	assert.Equal(t, 0, small.Pushed, "a buffer too small is given back empty")
	assert.Equal(t, f2, b2.W[HeaderSize:b2.Pushed])
	for i := 0; i < backlog+5; i++ {
		d.Deliver(f1)
	}
	assert.Equal(t, uint64(5), d.Stats.RxDropped, "past the backlog, frames drop")
	d.Deliver(make([]byte, MaxFrame+1))
	assert.Equal(t, uint64(6), d.Stats.RxDropped, "an oversize frame drops")
}

func TestBrokenQueue(t *testing.T) {
	d, _, tx, out := newDevice(t)
	tx.Broken = true
	d.Notify(TX)
	assert.NotZero(t, d.Read(mmioreg.Status, 4)&virtiommio.StatusNeedsReset)
	tx.Broken = false
	tx.Post(&vqtest.Chain{R: append(make([]byte, HeaderSize), ethernet("x")...)})
	d.Notify(TX)
	assert.Empty(t, *out, "nothing moves until the guest resets the device")
	d.Write(mmioreg.Status, 4, 0)
	d.Deliver(ethernet("y"))
	assert.Equal(t, uint64(1), d.Stats.RxDropped, "a reset device takes no frames until set up again")
}
