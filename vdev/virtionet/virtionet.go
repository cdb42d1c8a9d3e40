// Package virtionet is the virtio network device (VIRTIO 1.2, 5.1)
// guests find on a virtio-mmio transport, emulated by the control
// partition: frames the guest transmits go to Out (the switch), frames
// for the guest come in through Deliver. Like the block device it reaches
// the guest's buffers only through its mediated queues. It offers a MAC
// and the link status, and no offloads: each frame travels whole, with a
// header of zeros.
package virtionet

import (
	"bytes"
	"encoding/binary"

	"github.com/bulkhead-hv/bulkhead/vdev/virtiommio"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

// Feature bits (5.1.3).
const (
	FeatureMAC    = 1 << 5
	FeatureStatus = 1 << 16

	// HeaderSize is struct virtio_net_hdr with num_buffers (5.1.6).
	HeaderSize = 12
	// MaxFrame is the longest frame carried: Ethernet without a VLAN tag.
	MaxFrame  = 1514
	QueueSize = 256
	// backlog is how many frames for the guest wait for it to post
	// receive buffers; more are dropped, as a full NIC would.
	backlog = 64
	// linkUp is VIRTIO_NET_S_LINK_UP in the status field (5.1.4).
	linkUp = 1
)

// Queues: receiveq1 and transmitq1 (5.1.2).
const (
	RX = 0
	TX = 1
)

// Stats are the device's counters.
type Stats struct {
	TxFrames, TxBytes, RxFrames, RxBytes uint64
	// RxDropped counts frames for the guest that found no room; Errors
	// counts chains the device could not use.
	RxDropped, Errors uint64
}

// Device is one guest's network device. Make it with New.
type Device struct {
	virtiommio.Transport
	MAC    [6]byte
	Queues [2]virtiommio.Queue // RX, TX
	// Out takes each frame the guest sends; it must not keep the slice.
	Out   func(frame []byte)
	Stats Stats

	pending [][]byte // frames for the guest waiting for receive buffers
	buf     []byte
}

// New returns a device with the given MAC over the guest's queues.
func New(mac [6]byte, rx, tx virtiommio.Queue, out func([]byte)) *Device {
	d := &Device{MAC: mac, Queues: [2]virtiommio.Queue{rx, tx}, Out: out, buf: make([]byte, HeaderSize+MaxFrame)}
	d.Transport = virtiommio.Transport{DeviceID: mmioreg.DeviceNet,
		Features: mmioreg.FeatureVersion1 | FeatureMAC | FeatureStatus, Queues: 2, QueueSize: QueueSize,
		Config: d.config, Notify: d.Notify}
	return d
}

// config is the layout of 5.1.4: mac, then status.
func (d *Device) config() []byte {
	c := make([]byte, 8)
	copy(c, d.MAC[:])
	binary.LittleEndian.PutUint16(c[6:], linkUp)
	return c
}

// Notify serves queue q: the guest sent frames, or gave receive buffers.
func (d *Device) Notify(q uint32) {
	switch {
	case q == TX && d.Live(TX):
		d.transmit()
	case q == RX && d.Live(RX):
		d.flush()
	}
}

// broken stops the device until the guest resets it.
func (d *Device) broken() {
	d.NeedsReset()
	d.Stats.Errors++
	d.pending = nil
}

func (d *Device) transmit() {
	q := d.Queues[TX]
	sent := false
	for {
		head, r, _, ok, err := q.Pop()
		if err != nil {
			d.broken()
			return
		}
		if !ok {
			break
		}
		n := r - min(r, HeaderSize)
		if r < HeaderSize+14 || n > MaxFrame || q.Read(head, HeaderSize, d.buf[:n]) != nil {
			d.Stats.Errors++ // no frame in it: given back unsent
		} else {
			d.Stats.TxFrames++
			d.Stats.TxBytes += uint64(n)
			if d.Out != nil {
				d.Out(d.buf[:n])
			}
		}
		if q.Push(head, 0) == nil {
			sent = true
		}
	}
	if sent {
		d.Used()
	}
}

// Send is Deliver for the switch: a frame for the guest.
func (d *Device) Send(frame []byte) error {
	d.Deliver(frame)
	return nil
}

// Deliver gives the guest a frame, now if it has a receive buffer posted,
// else once it posts one (up to a backlog).
func (d *Device) Deliver(frame []byte) {
	if len(frame) > MaxFrame || !d.Live(RX) {
		d.Stats.RxDropped++
		return
	}
	if len(d.pending) >= backlog {
		d.Stats.RxDropped++
		return
	}
	d.pending = append(d.pending, bytes.Clone(frame))
	d.flush()
}

// flush moves waiting frames into the guest's receive buffers.
func (d *Device) flush() {
	q := d.Queues[RX]
	got := false
	for len(d.pending) > 0 {
		head, _, w, ok, err := q.Pop()
		if err != nil {
			d.broken()
			return
		}
		if !ok {
			break
		}
		f := d.pending[0]
		if w < HeaderSize+uint32(len(f)) {
			// A buffer too small for the frame (the guest negotiated no
			// mergeable buffers, so each must hold a whole one, 5.1.6.3.1).
			d.Stats.Errors++
			if q.Push(head, 0) == nil {
				got = true
			}
			continue
		}
		var h [HeaderSize]byte
		binary.LittleEndian.PutUint16(h[10:], 1) // num_buffers
		b := append(h[:], f...)
		if q.Write(head, 0, b) != nil {
			d.Stats.Errors++
			b = b[:0]
		} else {
			d.Stats.RxFrames++
			d.Stats.RxBytes += uint64(len(f))
			d.pending = d.pending[1:]
		}
		if q.Push(head, uint32(len(b))) == nil {
			got = true
		}
	}
	if got {
		d.Used()
	}
}
