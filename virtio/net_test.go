package virtio

import (
	"bytes"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Net is the switch's uplink (vswitch.Port).
var _ interface{ Send(frame []byte) error } = (*Net)(nil)

// Feature bits a QEMU virtio-net device offers besides VIRTIO_NET_F_MAC
// (5.1.3, 6), none of which the driver takes.
const (
	netFCsum      = 1 << 0
	netFGuestCsum = 1 << 1
	netFGuestTSO4 = 1 << 7
	netFHostTSO4  = 1 << 11
	netFMrgRxbuf  = 1 << 15
	netFStatus    = 1 << 16
	netFCtrlVQ    = 1 << 17
	netFMQ        = 1 << 22
	fIndirectDesc = 1 << 28
	fEventIdx     = 1 << 29
)

// fakeNet is a virtio-mmio network device: what the driver transmits
// lands on wire, header checked and stripped; deliver puts frames in the
// driver's receive buffers. It checks each buffer as the spec has the
// driver make it.
type fakeNet struct {
	t        *testing.T
	mem      *fakeMem
	regs     map[uint64]uint32
	status   uint32
	features uint64 // offered
	driver   uint64 // accepted
	qmax     [2]uint32
	q        [2]fakeQueue
	config   [8]byte // struct virtio_net_config: mac, status (5.1.4)
	gen      uint32
	bumps    int  // reads of mmioreg.ConfigGeneration that change it
	stall    bool // never complete transmits

	wire      [][]byte
	rxNotify  int
	preReady  int // notifications before DRIVER_OK
	configRds int
}

var testMAC = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

func newFakeNet(t *testing.T, mem *fakeMem) *fakeNet {
	f := &fakeNet{
		t: t, mem: mem, regs: map[uint64]uint32{}, qmax: [2]uint32{256, 256},
		features: mmioreg.FeatureVersion1 | NetFMAC | netFCsum | netFGuestCsum | netFGuestTSO4 | netFHostTSO4 |
			netFMrgRxbuf | netFStatus | netFCtrlVQ | netFMQ | fIndirectDesc | fEventIdx,
	}
	copy(f.config[:], testMAC[:])
	f.config[6] = 1 // VIRTIO_NET_S_LINK_UP
	return f
}

func (f *fakeNet) Read32(addr uint64) uint32 {
	switch off := addr - base; {
	case off == mmioreg.MagicValue:
		return mmioreg.Magic
	case off == mmioreg.Version:
		return 2
	case off == mmioreg.DeviceID:
		return mmioreg.DeviceNet
	case off == mmioreg.DeviceFeatures:
		return uint32(f.features >> (32 * f.regs[mmioreg.DeviceFeaturesSel]))
	case off == mmioreg.QueueNumMax:
		return f.qmax[f.regs[mmioreg.QueueSel]%2]
	case off == mmioreg.Status:
		return f.status
	case off == mmioreg.ConfigGeneration:
		g := f.gen
		if f.bumps > 0 {
			f.bumps--
			f.gen++
		}
		return g
	case off >= mmioreg.Config && off < mmioreg.Config+uint64(len(f.config)):
		require.Zero(f.t, off%4, "an unaligned config read")
		f.configRds++
		return le.Uint32(f.config[off-mmioreg.Config:])
	}
	return 0
}

func (f *fakeNet) Write32(addr uint64, v uint32) {
	off := addr - base
	f.regs[off] = v
	q := &f.q[f.regs[mmioreg.QueueSel]%2]
	switch off {
	case mmioreg.DriverFeatures:
		f.driver |= uint64(v) << (32 * f.regs[mmioreg.DriverFeaturesSel])
	case mmioreg.Status:
		f.status = v
		if v&mmioreg.StatusFeaturesOK != 0 && f.driver&^f.features != 0 {
			f.status &^= mmioreg.StatusFeaturesOK // features it never offered
		}
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
		require.Less(f.t, v, uint32(2), "notified a queue the device does not have (no MQ, no control queue)")
		if f.status&mmioreg.StatusDriverOK == 0 {
			f.preReady++ // 3.1.1
		}
		if v == netReceiveq {
			f.rxNotify++
		} else if !f.stall {
			f.transmit()
		}
	}
}

// take takes the next buffer the driver made available on queue i and
// checks it is one descriptor, device-writable on the receive queue and
// readable on the transmit queue.
func (f *fakeNet) take(i int) (id uint16, buf []byte, ok bool) {
	q := &f.q[i]
	avail := f.mem.at(q.avail)
	if q.seen == le.Uint16(avail[2:]) {
		return 0, nil, false
	}
	id = le.Uint16(avail[4+2*(uint32(q.seen)%q.num):])
	q.seen++
	require.Less(f.t, uint32(id), q.num)
	d := f.mem.at(q.desc + 16*uint64(id))
	flags := le.Uint16(d[12:])
	require.Zero(f.t, flags&DescNext, "a buffer of more than one descriptor")
	require.Equal(f.t, i == netReceiveq, flags&DescWrite != 0, "queue %d: buffer direction", i)
	return id, f.mem.at(le.Uint64(d))[:le.Uint32(d[8:])], true
}

// transmit puts every frame the driver made available on the wire.
func (f *fakeNet) transmit() {
	for {
		id, b, ok := f.take(netTransmitq)
		if !ok {
			return
		}
		require.GreaterOrEqual(f.t, len(b), NetHdrSize+NetMinFrame)
		require.LessOrEqual(f.t, len(b), NetHdrSize+NetMaxFrame)
		require.Equal(f.t, make([]byte, NetHdrSize), b[:NetHdrSize], "a virtio_net_hdr of zeros (5.1.6.2)")
		f.wire = append(f.wire, bytes.Clone(b[NetHdrSize:]))
		pushUsed(f.mem, &f.q[netTransmitq], uint32(id), 0)
	}
}

// deliver puts frames in the driver's receive buffers, as many as it has
// made available, and returns how many.
func (f *fakeNet) deliver(frames ...[]byte) int {
	for k, fr := range frames {
		id, b, ok := f.take(netReceiveq)
		if !ok {
			return k
		}
		require.Equal(f.t, NetHdrSize+NetMaxFrame, len(b), "a receive buffer of 1526 bytes (5.1.6.3.1)")
		for j := range b[:NetHdrSize] {
			b[j] = 0xee
		}
		le.PutUint16(b[10:], 1) // num_buffers, with no VIRTIO_NET_F_MRG_RXBUF (5.1.6.4)
		copy(b[NetHdrSize:], fr)
		pushUsed(f.mem, &f.q[netReceiveq], uint32(id), uint32(NetHdrSize+len(fr)))
	}
	return len(frames)
}

// outstanding returns the receive buffers the driver has made available
// and the device not taken yet.
func (f *fakeNet) outstanding() []uint16 {
	q := &f.q[netReceiveq]
	avail := f.mem.at(q.avail)
	var ids []uint16
	for i := q.seen; i != le.Uint16(avail[2:]); i++ {
		ids = append(ids, le.Uint16(avail[4+2*(uint32(i)%q.num):]))
	}
	return ids
}

// rxHeld checks that, as the driver sees it, the device holds every
// receive buffer, once.
func rxHeld(t *testing.T, q *Queue) {
	t.Helper()
	assert.Empty(t, q.free)
	for i, h := range q.held {
		assert.Equal(t, uint16(1), h, "receive buffer %d", i)
	}
}

// rxSound checks rxHeld, and that no buffer is in the available ring
// twice, as one would be if the driver gave it back without the device
// having given it up.
func rxSound(t *testing.T, n *Net, f *fakeNet) {
	t.Helper()
	rxHeld(t, n.rx)
	ids, seen := f.outstanding(), map[uint16]bool{}
	require.LessOrEqual(t, len(ids), n.rx.num, "more buffers available than the ring holds")
	for _, id := range ids {
		require.False(t, seen[id], "receive buffer %d posted twice", id)
		seen[id] = true
	}
}

// txSound checks that each transmit buffer is either free, once, or the
// device's.
func txSound(t *testing.T, q *Queue) {
	t.Helper()
	seen := map[uint16]bool{}
	for _, i := range q.free {
		require.False(t, seen[i], "transmit buffer %d free twice", i)
		require.Zero(t, q.held[i], "transmit buffer %d free and the device's", i)
		seen[i] = true
	}
	held := 0
	for _, h := range q.held {
		require.LessOrEqual(t, h, uint16(1))
		held += int(h)
	}
	require.Equal(t, q.num, len(q.free)+held, "transmit buffers lost")
}

// netTransports open a fakeNet as a virtio-mmio device and as a
// virtio-pci one (pciFront).
var netTransports = []struct {
	name string
	open func(t *testing.T, f *fakeNet, mem *fakeMem) (*Net, error)
}{
	{"mmio", func(_ *testing.T, f *fakeNet, mem *fakeMem) (*Net, error) { return OpenNet(f, mem, base) }},
	{"pci", func(t *testing.T, f *fakeNet, mem *fakeMem) (*Net, error) {
		front := newPCIFront(t, f, pciModernBase+mmioreg.DeviceNet, 2)
		return OpenNetPCI(front.open(), front, mem)
	}},
}

func openFakeNet(t *testing.T, setup func(f *fakeNet)) (*Net, *fakeNet) {
	return openFakeNetOver(t, netTransports[0].open, setup)
}

func openFakeNetOver(t *testing.T, open func(*testing.T, *fakeNet, *fakeMem) (*Net, error), setup func(f *fakeNet)) (*Net, *fakeNet) {
	mem := &fakeMem{next: 0x4800_0000, bufs: map[uint64][]byte{}}
	f := newFakeNet(t, mem)
	if setup != nil {
		setup(f)
	}
	n, err := open(t, f, mem)
	require.NoError(t, err)
	return n, f
}

// frame returns an Ethernet frame of size bytes, its bytes from seed.
func frame(size int, seed byte) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func TestNetOpen(t *testing.T) {
	for _, tr := range netTransports {
		t.Run(tr.name, func(t *testing.T) { testNetOpen(t, tr.open) })
	}
}

func testNetOpen(t *testing.T, open func(*testing.T, *fakeNet, *fakeMem) (*Net, error)) {
	n, f := openFakeNetOver(t, open, nil)
	assert.Equal(t, uint64(mmioreg.FeatureVersion1|NetFMAC), f.driver,
		"no checksum offload, GSO, mergeable buffers, control queue, MQ, indirect descriptors or event idx")
	assert.Equal(t, uint32(mmioreg.StatusAcknowledge|mmioreg.StatusDriver|mmioreg.StatusFeaturesOK|mmioreg.StatusDriverOK), f.status)
	assert.Equal(t, testMAC, n.MAC())
	assert.Equal(t, 2, f.configRds, "the six MAC bytes in two aligned words")
	assert.Zero(t, f.preReady, "no notification before DRIVER_OK (3.1.1)")
	for i := range f.q {
		assert.Equal(t, uint32(netBufs), f.q[i].num, "queue %d: at most 64 buffers", i)
		assert.Equal(t, uint32(1), f.q[i].ready, "queue %d", i)
	}
	assert.Len(t, f.outstanding(), netBufs, "every receive buffer posted")
	rxSound(t, n, f)
	txSound(t, n.tx)
	assert.Len(t, n.tx.free, netBufs)
	for i, b := range n.rx.bufs {
		d := n.rx.desc[16*i:]
		assert.Equal(t, n.rx.bufPA[i], le.Uint64(d))
		assert.Equal(t, uint32(NetHdrSize+NetMaxFrame), le.Uint32(d[8:]))
		assert.Equal(t, uint16(DescWrite), le.Uint16(d[12:]))
		assert.Len(t, b, NetHdrSize+NetMaxFrame)
	}

	// A small queue: as many buffers as it allows.
	n, f = openFakeNetOver(t, open, func(f *fakeNet) { f.qmax = [2]uint32{8, 4} })
	assert.Equal(t, [2]uint32{8, 4}, [2]uint32{f.q[0].num, f.q[1].num})
	assert.Len(t, n.rx.bufs, 8)
	assert.Len(t, n.tx.bufs, 4)
	rxSound(t, n, f)

	// The configuration changes once while it is read: it is read again.
	n, f = openFakeNetOver(t, open, func(f *fakeNet) { f.bumps = 1 })
	assert.Equal(t, testMAC, n.MAC())
	assert.Equal(t, 4, f.configRds)
}

func TestNetOpenErrors(t *testing.T) {
	mem := &fakeMem{next: 0x4800_0000, bufs: map[uint64][]byte{}}
	_, err := OpenNet(newFake(mem), mem, base)
	assert.ErrorIs(t, err, ErrNoDevice, "a console")

	f := newFakeNet(t, mem)
	f.features &^= mmioreg.FeatureVersion1
	_, err = OpenNet(f, mem, base)
	assert.ErrorIs(t, err, ErrFeatures, "legacy only")

	f = newFakeNet(t, mem)
	f.features &^= NetFMAC
	_, err = OpenNet(f, mem, base)
	assert.ErrorIs(t, err, ErrFeatures, "no MAC")
	assert.ErrorContains(t, err, "VIRTIO_NET_F_MAC")
	assert.Equal(t, uint32(mmioreg.StatusFailed), f.status)

	f = newFakeNet(t, mem)
	f.qmax[netTransmitq] = 0
	_, err = OpenNet(f, mem, base)
	assert.ErrorContains(t, err, "queue 1 does not exist")
	assert.Equal(t, uint32(mmioreg.StatusFailed), f.status)

	f = newFakeNet(t, mem)
	f.bumps = 1 << 20
	_, err = OpenNet(f, mem, base)
	assert.ErrorContains(t, err, "keeps changing")
	assert.Equal(t, uint32(mmioreg.StatusFailed), f.status)
}

func TestNetSend(t *testing.T) {
	n, f := openFakeNet(t, nil)
	var want [][]byte
	for i, size := range []int{NetMinFrame, 60, 1000, NetMaxFrame} {
		fr := frame(size, byte(i))
		require.NoError(t, n.Send(fr))
		want = append(want, fr)
	}
	assert.Equal(t, want, f.wire)

	// The device scribbles on every transmit buffer: each header is
	// zeroed again.
	for _, b := range n.tx.bufs {
		for i := range b {
			b[i] = 0xff
		}
	}
	// More frames than buffers: the finished ones are taken back.
	f.wire, want = nil, nil
	for i := range 5 * netBufs {
		fr := frame(NetMinFrame+i, byte(i))
		require.NoError(t, n.Send(fr), "frame %d", i)
		want = append(want, fr)
	}
	assert.Equal(t, want, f.wire)
	n.tx.Reap()
	sound(t, n.tx)
}

func TestNetSendSize(t *testing.T) {
	n, f := openFakeNet(t, nil)
	idx := le.Uint16(n.tx.avail[2:])
	for _, size := range []int{0, 1, NetMinFrame - 1, NetMaxFrame + 1, 9000} {
		err := n.Send(make([]byte, size))
		assert.ErrorIs(t, err, ErrFrameSize, "%d bytes", size)
	}
	assert.Equal(t, idx, le.Uint16(n.tx.avail[2:]), "nothing posted")
	assert.Empty(t, f.wire)
	assert.Len(t, n.tx.free, netBufs)
}

func TestNetTxFull(t *testing.T) {
	for _, qmax := range []uint32{256, 4} {
		n, f := openFakeNet(t, func(f *fakeNet) { f.stall = true; f.qmax[netTransmitq] = qmax })
		bufs := min(int(qmax), netBufs)
		for i := range bufs {
			require.NoError(t, n.Send(frame(100, byte(i))), "frame %d of %d", i, bufs)
		}
		assert.ErrorIs(t, n.Send(frame(100, 0xaa)), ErrTxFull, "every buffer the device's")
		assert.ErrorIs(t, n.Send(frame(100, 0xab)), ErrTxFull, "and still")
		assert.Empty(t, f.wire)
		txSound(t, n.tx)

		// The device catches up: the buffers are taken back on the next
		// Send.
		f.stall = false
		f.transmit()
		require.Len(t, f.wire, bufs)
		assert.Equal(t, frame(100, 0), f.wire[0], "the frames refused were not sent")
		require.NoError(t, n.Send(frame(200, 1)))
		assert.Len(t, f.wire, bufs+1)
		n.tx.Reap()
		sound(t, n.tx)
	}
}

func TestNetReceive(t *testing.T) {
	n, f := openFakeNet(t, nil)
	var got [][]byte
	collect := func(fr []byte) { got = append(got, bytes.Clone(fr)) }
	assert.Zero(t, n.Receive(collect), "nothing delivered")
	assert.Empty(t, got)

	want := [][]byte{frame(60, 1), frame(NetMinFrame, 2), frame(NetMaxFrame, 3)}
	require.Equal(t, 3, f.deliver(want...))
	notifies := f.rxNotify
	assert.Equal(t, 3, n.Receive(collect))
	assert.Equal(t, want, got, "in order, header stripped, cut to the length written")
	assert.Equal(t, notifies+1, f.rxNotify, "the buffers given back, with one notification")

	// A device that says it needs no notification (VIRTQ_USED_F_NO_NOTIFY)
	// gets none; it gets them again once it clears the flag.
	used := f.mem.at(f.q[netReceiveq].used)
	le.PutUint16(used[0:], 1)
	require.Equal(t, 2, f.deliver(frame(60, 4), frame(60, 5)))
	notifies = f.rxNotify
	assert.Equal(t, 2, n.Receive(collect))
	assert.Equal(t, notifies, f.rxNotify, "no notification while the device asks for none")
	le.PutUint16(used[0:], 0)
	require.Equal(t, 1, f.deliver(frame(60, 6)))
	assert.Equal(t, 1, n.Receive(collect))
	assert.Equal(t, notifies+1, f.rxNotify, "notified again once it asks")
	got = got[:3]
	rxSound(t, n, f)
	assert.Len(t, f.outstanding(), netBufs)

	// More frames than buffers, over several calls: the device delivers
	// as many as it has buffers for, then waits for them to be given back.
	got, want = nil, nil
	for i := range 3*netBufs + 17 {
		want = append(want, frame(NetMinFrame+(i*37)%(NetMaxFrame-NetMinFrame+1), byte(i)))
	}
	calls := 0
	for pending := want; len(pending) > 0; calls++ {
		k := f.deliver(pending...)
		require.Positive(t, k, "no receive buffer given back")
		pending = pending[k:]
		assert.Equal(t, k, n.Receive(collect))
		rxSound(t, n, f)
	}
	assert.Equal(t, 4, calls)
	assert.Equal(t, want, got)
	assert.Len(t, f.outstanding(), netBufs)
}

// A device writing used entries for buffers it does not hold, lengths
// past the buffer or shorter than a header, neither panics the driver
// nor makes it post a buffer twice.
func TestNetHostile(t *testing.T) {
	n, f := openFakeNet(t, nil)
	rq := &f.q[netReceiveq]
	var got [][]byte
	collect := func(fr []byte) { got = append(got, bytes.Clone(fr)) }

	a, buf, ok := f.take(netReceiveq)
	require.True(t, ok)
	copy(buf[NetHdrSize:], frame(NetMaxFrame, 9))
	b, _, _ := f.take(netReceiveq)
	c, _, _ := f.take(netReceiveq)
	pushUsed(f.mem, rq, rq.num+3, 60)          // out of range
	pushUsed(f.mem, rq, 0xffffffff, 60)        // far out of range
	pushUsed(f.mem, rq, uint32(a), 0xffffffff) // past the buffer
	pushUsed(f.mem, rq, uint32(a), 60)         // again
	pushUsed(f.mem, rq, uint32(b), NetHdrSize-1)
	pushUsed(f.mem, rq, uint32(c), NetHdrSize) // a header and no frame
	pushUsed(f.mem, rq, uint32(b), 100)        // given back already
	assert.Equal(t, 2, n.Receive(collect))
	assert.Equal(t, [][]byte{frame(NetMaxFrame, 9), {}}, got, "cut to the buffer; b dropped")
	rxSound(t, n, f)
	assert.Len(t, f.outstanding(), netBufs, "a, b and c given back once each")

	// The used index running far ahead: the stale entries naming
	// buffers the device holds are taken (the driver cannot tell them
	// from real ones, and so the device's available ring overflows, its
	// own doing), the others skipped.
	le.PutUint16(f.mem.at(rq.used)[2:], le.Uint16(f.mem.at(rq.used)[2:])+40000)
	assert.NotPanics(t, func() { n.Receive(collect) })
	rxHeld(t, n.rx)
	got = nil
	require.Equal(t, 1, f.deliver(frame(80, 4)))
	n.Receive(collect)
	assert.Contains(t, got, frame(80, 4), "still receiving")
	rxHeld(t, n.rx)

	// Transmit: entries for buffers the device does not hold give
	// nothing back twice.
	f.stall = true
	for i := range 3 {
		require.NoError(t, n.Send(frame(64, byte(i))))
	}
	tq := &f.q[netTransmitq]
	x, _, _ := f.take(netTransmitq)
	pushUsed(f.mem, tq, uint32(x), 0xffffffff)
	pushUsed(f.mem, tq, uint32(x), 0) // again
	pushUsed(f.mem, tq, tq.num+1, 0)
	pushUsed(f.mem, tq, 0xffffffff, 0)
	pushUsed(f.mem, tq, uint32(n.tx.free[0]), 0) // a free buffer
	require.NoError(t, n.Send(frame(64, 3)))
	txSound(t, n.tx)
	held := 0
	for _, h := range n.tx.held {
		held += int(h)
	}
	assert.Equal(t, 3, held, "two never completed, and the new one")
	for i := 0; n.Send(frame(64, byte(i))) == nil; i++ {
		require.Less(t, i, netBufs, "more buffers than the queue has")
	}
	txSound(t, n.tx)
	assert.Empty(t, n.tx.free)
}
