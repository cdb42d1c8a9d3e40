package virtio

import (
	"errors"
	"fmt"

	"github.com/bulkhead-hv/bulkhead/pci"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

// virtio-net feature bits (5.1.3).
const (
	NetFMAC = 1 << 5 // VIRTIO_NET_F_MAC
)

// Offsets in struct virtio_net_config (5.1.4), from mmioreg.Config.
const (
	netMAC = 0 // u8 mac[6]
)

// Queues: receiveq1 and transmitq1, with no VIRTIO_NET_F_MQ (5.1.2).
const (
	netReceiveq  = 0
	netTransmitq = 1
)

const (
	// NetHdrSize is struct virtio_net_hdr: flags, gso_type, hdr_len,
	// gso_size, csum_start, csum_offset and, VIRTIO_F_VERSION_1 being
	// negotiated, num_buffers (5.1.6).
	NetHdrSize = 12
	// NetMaxFrame is the longest frame carried: Ethernet without a VLAN
	// tag or FCS. With no offloads, no VIRTIO_NET_F_MTU and no mergeable
	// buffers, a receive buffer of NetHdrSize+NetMaxFrame (1526) bytes
	// is what 5.1.6.3.1 asks for.
	NetMaxFrame = 1514
	// NetMinFrame is the shortest frame sent: an Ethernet header.
	NetMinFrame = 14
	// netBufs is the most buffers each queue gets.
	netBufs = 64
)

var (
	// ErrTxFull is Send's error when the device holds every transmit
	// buffer: the frame is not sent, as a full NIC would drop it.
	ErrTxFull    = errors.New("virtio-net: no free transmit buffer")
	ErrFrameSize = errors.New("virtio-net: frame length out of range")
)

// Net drives a virtio network device (5.1) on one receive and one
// transmit queue, moving raw Ethernet frames with no offloads. It polls:
// Receive takes what the device has delivered, Send posts a frame and
// returns without waiting for it to go.
type Net struct {
	d   *Device
	rx  *Queue // receiveq1: every buffer is the device's, bar those being read in Receive
	tx  *Queue // transmitq1
	mac [6]byte
}

// OpenNet initializes the virtio-net device at base, negotiating
// VIRTIO_F_VERSION_1 and VIRTIO_NET_F_MAC only (no checksum offload, GSO,
// mergeable receive buffers, control queue, multiqueue or event idx),
// reads its MAC and gives its receive queue every receive buffer. A
// device that does not offer VIRTIO_NET_F_MAC is refused: without it the
// driver would have to make up an address (5.1.5: it SHOULD be random),
// and QEMU's virtio-net always offers one.
func OpenNet(bus Bus, mem Memory, base uint64) (*Net, error) {
	if bus.Read32(base+mmioreg.MagicValue) != mmioreg.Magic || bus.Read32(base+mmioreg.Version) != 2 || bus.Read32(base+mmioreg.DeviceID) != mmioreg.DeviceNet {
		return nil, fmt.Errorf("%w: no virtio-net at %#x", ErrNoDevice, base)
	}
	return newNet(Init(bus, mem, base, NetFMAC))
}

// OpenNetPCI is OpenNet for the virtio-net PCI function f, whose BARs
// are assigned.
func OpenNetPCI(f *pci.Function, bus WideBus, mem Memory) (*Net, error) {
	if t, ok := PCIType(f); !ok || t != mmioreg.DeviceNet {
		return nil, fmt.Errorf("%w: no virtio-net at %v", ErrNoDevice, f)
	}
	return newNet(InitPCI(f, bus, mem, NetFMAC))
}

func newNet(d *Device, err error) (*Net, error) {
	if err != nil {
		return nil, err
	}
	n := &Net{d: d}
	if err := n.open(); err != nil {
		d.fail()
		return nil, err
	}
	return n, nil
}

func (n *Net) open() error {
	d := n.d
	if d.features&NetFMAC == 0 {
		return fmt.Errorf("%w: no VIRTIO_NET_F_MAC", ErrFeatures)
	}
	// mac is u8 fields, which 4.2.2.2 has read a byte at a time; Bus
	// reads 32 bits, aligned, which QEMU's virtio-mmio serves from config
	// space as it stands (little-endian, 4.2.2).
	var lo, hi uint32
	if err := d.readConfig(func() {
		lo, hi = d.t.config32(netMAC), d.t.config32(netMAC+4)
	}); err != nil {
		return err
	}
	n.mac = [6]byte{byte(lo), byte(lo >> 8), byte(lo >> 16), byte(lo >> 24), byte(hi), byte(hi >> 8)}

	// One buffer per descriptor, each a one-segment chain; the queues
	// have as many as mmioreg.QueueNumMax allows, up to netBufs.
	var err error
	if n.rx, err = d.Queue(netReceiveq, netBufs, NetHdrSize+NetMaxFrame); err != nil {
		return err
	}
	if n.tx, err = d.Queue(netTransmitq, netBufs, NetHdrSize+NetMaxFrame); err != nil {
		return err
	}
	d.Ready()
	n.rx.Fill() // after DRIVER_OK: Fill notifies (3.1.1)
	return nil
}

// MAC returns the device's MAC address, from its configuration (5.1.4).
func (n *Net) MAC() [6]byte { return n.mac }

// Receive calls fn with each frame the device has delivered since the
// last call, in the order it delivered them, without the virtio_net_hdr,
// and gives each buffer back to the device once fn returns. It returns
// how many frames fn was given. The frame is the device's receive
// buffer: fn must not keep it, or any slice of it, after returning.
//
// The used lengths are the device's word and not trusted (queue.go): a
// length past the buffer is cut to it, and a buffer with less than a
// header in it is given back without calling fn.
func (n *Net) Receive(fn func(frame []byte)) int {
	q, frames := n.rx, 0
	q.Batch()
	defer q.Flush()
	for _, u := range q.reap(false) {
		b := q.bufs[u.Head]
		if u.Len >= NetHdrSize {
			// The header's fields say nothing with no offloads and no
			// mergeable buffers negotiated (5.1.6.4): num_buffers is 1.
			fn(b[NetHdrSize:u.Len])
			frames++
		}
		q.post(u.Head, len(b), true)
	}
	return frames
}

// Batch defers the device's notification of frames sent until Flush:
// one trap to the device model for a burst.
func (n *Net) Batch() { n.tx.Batch() }

// Flush notifies the device of the frames sent since Batch.
func (n *Net) Flush() { n.tx.Flush() }

// Send copies frame, 14 to 1514 bytes, after a virtio_net_hdr of zeros
// into a free transmit buffer and posts it (5.1.6.2). It does not wait
// for the device: if the device holds every transmit buffer, it returns
// ErrTxFull and the frame is dropped. Buffers the device has finished
// with are taken back here.
func (n *Net) Send(frame []byte) error {
	if len(frame) < NetMinFrame || len(frame) > NetMaxFrame {
		return fmt.Errorf("%w: %d bytes, not %d to %d", ErrFrameSize, len(frame), NetMinFrame, NetMaxFrame)
	}
	q := n.tx
	q.Reap()
	if len(q.free) == 0 {
		return ErrTxFull
	}
	i := q.free[len(q.free)-1]
	q.free = q.free[:len(q.free)-1]
	b := q.bufs[i]
	// flags 0 (no VIRTIO_NET_F_CSUM), gso_type VIRTIO_NET_HDR_GSO_NONE,
	// num_buffers 0 (5.1.6.2), rewritten each time: the device can reach
	// this memory.
	clear(b[:NetHdrSize])
	copy(b[NetHdrSize:], frame)
	q.post(i, NetHdrSize+len(frame), false)
	return nil
}
