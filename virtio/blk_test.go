package virtio

import (
	"bytes"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Blk is what a device model stores blocks on (vdev/virtioblk.Disk).
var _ interface {
	io.ReaderAt
	io.WriterAt
	Flush() error
	Size() int64
} = (*Blk)(nil)

// fakeBlk is a virtio-mmio block device over a disk in memory. It checks
// each request's chain as the spec has the driver build it, and records
// what it was asked.
type fakeBlk struct {
	t        *testing.T
	mem      *fakeMem
	regs     map[uint64]uint32
	status   uint32
	features uint64 // offered
	driver   uint64 // accepted
	qmax     uint32
	q        fakeQueue
	disk     []byte
	serial   string
	sizeMax  uint32
	segMax   uint32
	blkSize  uint32

	async bool            // complete requests in serve, called from Idle, not on notify
	fail  map[uint64]byte // a status for requests at these sectors
	noID  bool            // GET_ID unsupported
	evil  bool            // write bogus used entries around each real one

	reqs    []uint32 // the type of each request
	flushes int
	maxSegs int // the most data segments in one request
	maxLen  int // the most data bytes in one request
	serves  int
}

func newFakeBlk(t *testing.T, mem *fakeMem, sectors int) *fakeBlk {
	return &fakeBlk{
		t: t, mem: mem, regs: map[uint64]uint32{}, qmax: 64,
		features: mmioreg.FeatureVersion1 | BlkFFlush | BlkFBlkSize | 1<<10 | 1<<11 | 1<<12 | 1<<28 | 1<<29,
		disk:     make([]byte, sectors*SectorSize), serial: "disk0", blkSize: 4096,
	}
}

func (f *fakeBlk) Read32(addr uint64) uint32 {
	switch off := addr - base; off {
	case mmioreg.MagicValue:
		return mmioreg.Magic
	case mmioreg.Version:
		return 2
	case mmioreg.DeviceID:
		return mmioreg.DeviceBlock
	case mmioreg.DeviceFeatures:
		return uint32(f.features >> (32 * f.regs[mmioreg.DeviceFeaturesSel]))
	case mmioreg.QueueNumMax:
		return f.qmax
	case mmioreg.Status:
		return f.status
	case mmioreg.ConfigGeneration:
		return 7
	case mmioreg.Config + blkCapacity:
		return uint32(len(f.disk) / SectorSize)
	case mmioreg.Config + blkCapacity + 4:
		return uint32(uint64(len(f.disk)/SectorSize) >> 32)
	case mmioreg.Config + blkSizeMax:
		return f.sizeMax
	case mmioreg.Config + blkSegMax:
		return f.segMax
	case mmioreg.Config + blkBlkSize:
		return f.blkSize
	}
	return 0
}

func (f *fakeBlk) Write32(addr uint64, v uint32) {
	off := addr - base
	f.regs[off] = v
	switch off {
	case mmioreg.DriverFeatures:
		f.driver |= uint64(v) << (32 * f.regs[mmioreg.DriverFeaturesSel])
	case mmioreg.Status:
		f.status = v
		if v&mmioreg.StatusFeaturesOK != 0 && f.driver&^f.features != 0 {
			f.status &^= mmioreg.StatusFeaturesOK // features it never offered
		}
	case mmioreg.QueueNum:
		f.q.num = v
	case mmioreg.QueueDescLow:
		f.q.desc = uint64(v)
	case mmioreg.QueueDriverLow:
		f.q.avail = uint64(v)
	case mmioreg.QueueDeviceLow:
		f.q.used = uint64(v)
	case mmioreg.QueueReady:
		f.q.ready = v
	case mmioreg.QueueNotify:
		require.Equal(f.t, uint32(0), v, "notified a queue virtio-blk does not have")
		require.NotZero(f.t, f.status&mmioreg.StatusDriverOK, "notified before DRIVER_OK (3.1.1)")
		if !f.async {
			f.serve()
		}
	}
}

// pushUsed writes a used ring entry.
func pushUsed(mem *fakeMem, q *fakeQueue, id, n uint32) {
	used := mem.at(q.used)
	ui := le.Uint16(used[2:])
	le.PutUint32(used[4+8*(uint32(ui)%q.num):], id)
	le.PutUint32(used[8+8*(uint32(ui)%q.num):], n)
	le.PutUint16(used[2:], ui+1)
}

// serve completes every request the driver has made available.
func (f *fakeBlk) serve() {
	f.serves++
	avail := f.mem.at(f.q.avail)
	for f.q.seen != le.Uint16(avail[2:]) {
		head := le.Uint16(avail[4+2*(uint32(f.q.seen)%f.q.num):])
		f.q.seen++
		var segs []Seg
		var ids []uint16
		for i := head; ; {
			require.Less(f.t, uint32(i), f.q.num)
			require.Less(f.t, len(segs), int(f.q.num), "a loop in the chain")
			d := f.mem.at(f.q.desc + 16*uint64(i))
			flags := le.Uint16(d[12:])
			segs = append(segs, Seg{Addr: le.Uint64(d), Len: le.Uint32(d[8:]), Write: flags&DescWrite != 0})
			ids = append(ids, i)
			if flags&DescNext == 0 {
				break
			}
			i = le.Uint16(d[14:])
		}
		n := f.handle(segs)
		if f.evil {
			pushUsed(f.mem, &f.q, f.q.num+3, 7)       // out of range
			pushUsed(f.mem, &f.q, 0xffffffff, 0)      // far out of range
			pushUsed(f.mem, &f.q, uint32(ids[1]), 99) // in the chain, not its head
			pushUsed(f.mem, &f.q, uint32(head), 0xffffffff)
			pushUsed(f.mem, &f.q, uint32(head), 5) // again
		} else {
			pushUsed(f.mem, &f.q, uint32(head), n)
		}
	}
}

// handle carries out one request and returns the bytes it wrote.
func (f *fakeBlk) handle(segs []Seg) uint32 {
	t := f.t
	require.GreaterOrEqual(t, len(segs), 2, "a request is at least a header and a status")
	for j := 1; j < len(segs); j++ {
		require.False(t, segs[j-1].Write && !segs[j].Write, "device-readable after device-writable (2.7.4.2)")
	}
	hdr, st := segs[0], segs[len(segs)-1]
	require.Equal(t, Seg{Addr: hdr.Addr, Len: 16}, hdr, "the header: 16 device-readable bytes")
	require.Equal(t, Seg{Addr: st.Addr, Len: 1, Write: true}, st, "the status: one device-writable byte")
	h := f.mem.at(hdr.Addr)
	typ, sector := le.Uint32(h), le.Uint64(h[8:])
	assert.Zero(t, le.Uint32(h[4:]), "reserved")
	f.reqs = append(f.reqs, typ)
	data := segs[1 : len(segs)-1]
	var size int
	for _, s := range data {
		require.Equal(t, typ != BlkTOut, s.Write, "data direction of request type %d", typ)
		if f.driver&BlkFSizeMax != 0 {
			require.LessOrEqual(t, s.Len, f.sizeMax, "a segment over size_max")
		}
		size += int(s.Len)
	}
	if f.driver&BlkFSegMax != 0 {
		require.LessOrEqual(t, len(data), int(f.segMax), "more segments than seg_max")
	}
	f.maxSegs, f.maxLen = max(f.maxSegs, len(data)), max(f.maxLen, size)
	status := func(s byte) uint32 { f.mem.at(st.Addr)[0] = s; return 1 }
	if s, ok := f.fail[sector]; ok {
		return status(s)
	}
	// each is the next n bytes of the data segments, in order.
	each := func(fn func(b []byte)) {
		for _, s := range data {
			fn(f.mem.at(s.Addr)[:s.Len])
		}
	}
	switch typ {
	case BlkTIn, BlkTOut:
		require.Zero(t, size%SectorSize, "data not whole sectors")
		require.LessOrEqual(t, int(sector)*SectorSize+size, len(f.disk), "past capacity")
		at := f.disk[sector*SectorSize:]
		if typ == BlkTOut && f.driver&BlkFRO != 0 {
			return status(BlkSIOErr) // 5.2.6.2
		}
		each(func(b []byte) {
			if typ == BlkTIn {
				copy(b, at)
			} else {
				copy(at, b)
			}
			at = at[len(b):]
		})
		if typ == BlkTIn {
			return uint32(size) + status(BlkSOK)
		}
	case BlkTFlush:
		require.Zero(t, sector, "a flush's sector (5.2.6.1)")
		require.Empty(t, data, "data in a flush (5.2.6.1)")
		require.NotZero(t, f.features&BlkFFlush, "a flush the device never offered")
		f.flushes++
	case BlkTGetID:
		require.Equal(t, blkIDBytes, size, "GET_ID data (5.2.6.1)")
		if f.noID {
			return status(BlkSUnsupp)
		}
		id := []byte(f.serial)
		each(func(b []byte) { id = id[copy(b, id):] })
		return 20 + status(BlkSOK)
	default:
		return status(BlkSUnsupp)
	}
	return status(BlkSOK)
}

// sound checks that every descriptor is free exactly once, the device
// holding none between requests.
func sound(t *testing.T, q *Queue) {
	t.Helper()
	seen := map[uint16]bool{}
	for _, i := range q.free {
		require.Less(t, int(i), q.num)
		require.False(t, seen[i], "descriptor %d free twice", i)
		seen[i] = true
	}
	require.Len(t, q.free, q.num, "descriptors lost")
	for i, n := range q.held {
		require.Zero(t, n, "descriptor %d still held", i)
	}
}

// blkTransports open a fakeBlk as a virtio-mmio device and as a
// virtio-pci one (pciFront).
var blkTransports = []struct {
	name string
	open func(t *testing.T, f *fakeBlk, mem *fakeMem) (*Blk, error)
}{
	{"mmio", func(_ *testing.T, f *fakeBlk, mem *fakeMem) (*Blk, error) { return OpenBlk(f, mem, base) }},
	{"pci", func(t *testing.T, f *fakeBlk, mem *fakeMem) (*Blk, error) {
		front := newPCIFront(t, f, pciModernBase+mmioreg.DeviceBlock, 1)
		return OpenBlkPCI(front.open(), front, mem)
	}},
}

func openFake(t *testing.T, setup func(f *fakeBlk)) (*Blk, *fakeBlk) {
	return openFakeOver(t, blkTransports[0].open, setup)
}

func openFakeOver(t *testing.T, open func(*testing.T, *fakeBlk, *fakeMem) (*Blk, error), setup func(f *fakeBlk)) (*Blk, *fakeBlk) {
	mem := &fakeMem{next: 0x4800_0000, bufs: map[uint64][]byte{}}
	f := newFakeBlk(t, mem, 1024)
	if setup != nil {
		setup(f)
	}
	b, err := open(t, f, mem)
	require.NoError(t, err)
	return b, f
}

func TestBlkOpen(t *testing.T) {
	for _, tr := range blkTransports {
		t.Run(tr.name, func(t *testing.T) { testBlkOpen(t, tr.open) })
	}
}

func testBlkOpen(t *testing.T, open func(*testing.T, *fakeBlk, *fakeMem) (*Blk, error)) {
	b, f := openFakeOver(t, open, func(f *fakeBlk) { f.features |= BlkFSegMax | BlkFSizeMax; f.segMax, f.sizeMax = 100, 1<<20 })
	assert.Equal(t, uint64(mmioreg.FeatureVersion1|BlkFFlush|BlkFBlkSize|BlkFSegMax|BlkFSizeMax), f.driver,
		"no topology, CONFIG_WCE, MQ, indirect descriptors or event idx")
	assert.Equal(t, uint32(mmioreg.StatusAcknowledge|mmioreg.StatusDriver|mmioreg.StatusFeaturesOK|mmioreg.StatusDriverOK), f.status)
	assert.Equal(t, int64(1024*512), b.Size())
	assert.Equal(t, "disk0", b.ID())
	assert.False(t, b.ReadOnly())
	assert.Equal(t, 4096, b.BlockSize())
	assert.Equal(t, []uint32{BlkTGetID}, f.reqs)
	sound(t, b.q)

	b, _ = openFakeOver(t, open, func(f *fakeBlk) { f.serial = "01234567890123456789" })
	assert.Equal(t, "01234567890123456789", b.ID(), "20 bytes: no NUL")
	b, _ = openFakeOver(t, open, func(f *fakeBlk) { f.noID = true; f.features &^= BlkFBlkSize })
	assert.Equal(t, "", b.ID(), "GET_ID unsupported: no ID")
	assert.Equal(t, 512, b.BlockSize())
}

func TestBlkOpenErrors(t *testing.T) {
	mem := &fakeMem{next: 0x4800_0000, bufs: map[uint64][]byte{}}
	_, err := OpenBlk(newFake(mem), mem, base)
	assert.ErrorIs(t, err, ErrNoDevice, "a console")
	f := newFakeBlk(t, mem, 8)
	f.features &^= mmioreg.FeatureVersion1
	_, err = OpenBlk(f, mem, base)
	assert.ErrorIs(t, err, ErrFeatures, "legacy only")
	f = newFakeBlk(t, mem, 8)
	f.qmax = 2
	_, err = OpenBlk(f, mem, base)
	assert.Error(t, err, "no room for a data segment")
	assert.Equal(t, uint32(mmioreg.StatusFailed), f.status)
	f = newFakeBlk(t, mem, 8)
	f.fail = map[uint64]byte{0: BlkSIOErr}
	_, err = OpenBlk(f, mem, base)
	assert.ErrorIs(t, err, ErrIOErr, "GET_ID failed")
}

func TestFindAll(t *testing.T) {
	bus := idBus{0x1000: mmioreg.DeviceBlock, 0x1200: mmioreg.DeviceConsole, 0x1400: 0, 0x1600: mmioreg.DeviceBlock}
	bases := []uint64{0x1000, 0x1200, 0x1400, 0x1600, 0x1800}
	assert.Equal(t, []uint64{0x1000, 0x1600}, FindAll(bus, bases, mmioreg.DeviceBlock))
	assert.Empty(t, FindAll(bus, bases, 1))
	found, err := Find(bus, bases, mmioreg.DeviceConsole)
	require.NoError(t, err)
	assert.Equal(t, uint64(0x1200), found)
}

// idBus is virtio-mmio transports with these device IDs (0: none there).
type idBus map[uint64]uint32

func (m idBus) Read32(addr uint64) uint32 {
	id, ok := m[addr&^0x1ff]
	switch {
	case !ok:
		return 0
	case addr&0x1ff == mmioreg.MagicValue:
		return mmioreg.Magic
	case addr&0x1ff == mmioreg.Version:
		return 2
	case addr&0x1ff == mmioreg.DeviceID:
		return id
	}
	return 0
}

func (idBus) Write32(uint64, uint32) {}

func TestBlkReadWrite(t *testing.T) {
	for _, tr := range blkTransports {
		t.Run(tr.name, func(t *testing.T) { testBlkReadWrite(t, tr.open) })
	}
}

func testBlkReadWrite(t *testing.T, open func(*testing.T, *fakeBlk, *fakeMem) (*Blk, error)) {
	for _, tc := range []struct {
		name   string
		setup  func(f *fakeBlk)
		segs   int // data segments in a full request
		perReq int
		async  bool
	}{
		{"one segment", nil, 1, bounceSize, false},
		{"size_max", func(f *fakeBlk) { f.features |= BlkFSizeMax; f.sizeMax = 4096 }, 16, bounceSize, false},
		{"seg_max", func(f *fakeBlk) { f.features |= BlkFSizeMax | BlkFSegMax; f.sizeMax, f.segMax = 4096, 3 }, 3, 3 * 4096, false},
		{"odd size_max", func(f *fakeBlk) { f.features |= BlkFSizeMax | BlkFSegMax; f.sizeMax, f.segMax = 1000, 2 }, 2, 1536, false},
		{"small queue", func(f *fakeBlk) { f.features |= BlkFSizeMax; f.sizeMax, f.qmax = 512, 8 }, 6, 6 * 512, false},
		{"async", nil, 1, bounceSize, true},
		{"evil used ring", func(f *fakeBlk) { f.evil = true; f.features |= BlkFSizeMax; f.sizeMax = 8192 }, 8, bounceSize, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := &fakeMem{next: 0x4800_0000, bufs: map[uint64][]byte{}}
			f := newFakeBlk(t, mem, 1024)
			if tc.setup != nil {
				tc.setup(f)
			}
			b, err := open(t, f, mem)
			require.NoError(t, err)
			f.async = tc.async
			idles := 0
			b.Idle = func() {
				idles++
				if f.async {
					f.serve()
				}
			}
			rng := rand.New(rand.NewPCG(1, 2))
			want := make([]byte, 3*bounceSize+5*512) // splits, and a short last request
			for i := range want {
				want[i] = byte(rng.Uint32())
			}
			n, err := b.WriteAt(want, 7*512)
			require.NoError(t, err)
			assert.Equal(t, len(want), n)
			assert.Equal(t, want, f.disk[7*512:7*512+len(want)])
			sound(t, b.q)
			got := make([]byte, len(want))
			n, err = b.ReadAt(got, 7*512)
			require.NoError(t, err)
			assert.Equal(t, len(want), n)
			assert.Equal(t, want, got)
			sound(t, b.q)
			assert.Equal(t, tc.segs, f.maxSegs)
			assert.Equal(t, tc.perReq, f.maxLen)
			reqs := (len(want) + tc.perReq - 1) / tc.perReq
			assert.Len(t, f.reqs, 1+2*reqs, "GET_ID, then the writes and the reads")
			if f.async {
				assert.Positive(t, idles, "waited in Idle")
			}
		})
	}
}

func TestBlkEnd(t *testing.T) {
	b, f := openFake(t, nil)
	copy(f.disk[len(f.disk)-512:], bytes.Repeat([]byte{0xab}, 512))
	p := make([]byte, 1024)
	n, err := b.ReadAt(p, b.Size()-512)
	assert.Equal(t, io.EOF, err, "a read across the end")
	assert.Equal(t, 512, n)
	assert.Equal(t, bytes.Repeat([]byte{0xab}, 512), p[:512])
	n, err = b.ReadAt(p, b.Size())
	assert.Equal(t, io.EOF, err)
	assert.Zero(t, n)
	n, err = b.ReadAt(p, b.Size()+4096)
	assert.Equal(t, io.EOF, err)
	assert.Zero(t, n)

	reqs := len(f.reqs)
	n, err = b.WriteAt(p, b.Size()-512)
	assert.ErrorIs(t, err, ErrRange, "a write across the end")
	assert.Zero(t, n)
	_, err = b.WriteAt(p, b.Size()+4096)
	assert.ErrorIs(t, err, ErrRange)
	assert.Equal(t, reqs, len(f.reqs), "refused without asking the device")
	assert.Equal(t, bytes.Repeat([]byte{0xab}, 512), f.disk[len(f.disk)-512:])
}

func TestBlkUnaligned(t *testing.T) {
	b, f := openFake(t, nil)
	reqs := len(f.reqs)
	for _, c := range []struct {
		n   int
		off int64
	}{{512, 100}, {100, 0}, {513, 512}} {
		_, err := b.ReadAt(make([]byte, c.n), c.off)
		assert.ErrorIs(t, err, ErrUnaligned, "read %d at %d", c.n, c.off)
		_, err = b.WriteAt(make([]byte, c.n), c.off)
		assert.ErrorIs(t, err, ErrUnaligned, "write %d at %d", c.n, c.off)
	}
	_, err := b.ReadAt(make([]byte, 512), -512)
	assert.ErrorIs(t, err, ErrRange)
	_, err = b.WriteAt(make([]byte, 512), -512)
	assert.ErrorIs(t, err, ErrRange)
	assert.Equal(t, reqs, len(f.reqs), "nothing sent")
}

func TestBlkFlush(t *testing.T) {
	b, f := openFake(t, nil)
	require.NoError(t, b.Flush())
	assert.Equal(t, 1, f.flushes)
	assert.Equal(t, uint32(BlkTFlush), f.reqs[len(f.reqs)-1])

	// No VIRTIO_BLK_F_FLUSH: no flush command to send (5.2.5.1, 5.2.6.2).
	b, f = openFake(t, func(f *fakeBlk) { f.features &^= BlkFFlush })
	reqs := len(f.reqs)
	require.NoError(t, b.Flush())
	assert.Equal(t, reqs, len(f.reqs))
}

func TestBlkReadOnly(t *testing.T) {
	b, f := openFake(t, func(f *fakeBlk) { f.features |= BlkFRO })
	assert.NotZero(t, f.driver&BlkFRO, "RO accepted (5.2.6.1)")
	assert.True(t, b.ReadOnly())
	reqs := len(f.reqs)
	_, err := b.WriteAt(make([]byte, 512), 0)
	assert.ErrorIs(t, err, ErrReadOnly)
	assert.Equal(t, reqs, len(f.reqs), "the device was not asked")
	_, err = b.ReadAt(make([]byte, 512), 0)
	assert.NoError(t, err)
}

func TestBlkErrors(t *testing.T) {
	b, f := openFake(t, nil)
	f.fail = map[uint64]byte{3: BlkSIOErr, 200: BlkSUnsupp, 300: 0x7f}
	p := make([]byte, 4*512)
	n, err := b.ReadAt(p, 3*512)
	assert.ErrorIs(t, err, ErrIOErr)
	assert.ErrorContains(t, err, "read at sector 3")
	assert.Zero(t, n)
	_, err = b.WriteAt(p, 200*512)
	assert.ErrorIs(t, err, ErrUnsupp)
	assert.ErrorContains(t, err, "write at sector 200")
	_, err = b.ReadAt(p, 300*512)
	assert.ErrorIs(t, err, ErrIOErr, "a status the spec does not define")
	assert.ErrorContains(t, err, "status 127")

	// A request split in two that fails in its second half reports the
	// first.
	f.fail = map[uint64]byte{bounceSize / 512: BlkSIOErr}
	n, err = b.ReadAt(make([]byte, 2*bounceSize), 0)
	assert.ErrorIs(t, err, ErrIOErr)
	assert.ErrorContains(t, err, "sector 128")
	assert.Equal(t, bounceSize, n)
	sound(t, b.q)
}

// A device that writes no status byte fails the request.
func TestBlkNoStatus(t *testing.T) {
	b, f := openFake(t, nil)
	f.async = true
	b.Idle = func() {
		avail := f.mem.at(f.q.avail)
		for f.q.seen != le.Uint16(avail[2:]) {
			head := le.Uint16(avail[4+2*(uint32(f.q.seen)%f.q.num):])
			f.q.seen++
			pushUsed(f.mem, &f.q, uint32(head), 0)
		}
	}
	_, err := b.ReadAt(make([]byte, 512), 0)
	assert.ErrorIs(t, err, ErrIOErr)
	assert.ErrorContains(t, err, "status 255")
	sound(t, b.q)
}

func TestChains(t *testing.T) {
	mem := &fakeMem{next: 0x4800_0000, bufs: map[uint64][]byte{}}
	dev := newFake(mem)
	d, err := Init(dev, mem, base, 0)
	require.NoError(t, err)
	q, err := d.Queue(0, 8, 0) // the console's receive queue: notifying it does nothing
	require.NoError(t, err)
	assert.Empty(t, q.bufs)
	d.Ready()

	_, err = q.Post()
	assert.ErrorIs(t, err, ErrChain)
	_, err = q.Post(Seg{Addr: 0x1000, Len: 1, Write: true}, Seg{Addr: 0x2000, Len: 1})
	assert.ErrorIs(t, err, ErrChain, "device-writable before device-readable")
	_, err = q.Post(make([]Seg, 9)...)
	assert.ErrorIs(t, err, ErrQueueFull)

	a, err := q.Post(Seg{Addr: 0x1000, Len: 16}, Seg{Addr: 0x2000, Len: 10, Write: true}, Seg{Addr: 0x3000, Len: 1, Write: true})
	require.NoError(t, err)
	c, err := q.Post(Seg{Addr: 0x4000, Len: 3}, Seg{Addr: 0x5000, Len: 4})
	require.NoError(t, err)
	assert.Len(t, q.free, 3)
	_, err = q.Post(make([]Seg, 4)...)
	assert.ErrorIs(t, err, ErrQueueFull)

	// The descriptors as 2.7.5 lays them out.
	var got []Seg
	for i := a; ; {
		e := q.desc[16*int(i):]
		got = append(got, Seg{Addr: le.Uint64(e), Len: le.Uint32(e[8:]), Write: le.Uint16(e[12:])&DescWrite != 0})
		if le.Uint16(e[12:])&DescNext == 0 {
			break
		}
		i = le.Uint16(e[14:])
	}
	assert.Equal(t, []Seg{{0x1000, 16, false}, {0x2000, 10, true}, {0x3000, 1, true}}, got)
	assert.Equal(t, []uint16{a, c}, []uint16{le.Uint16(q.avail[4:]), le.Uint16(q.avail[6:])})

	dq := &fakeQueue{num: uint32(q.num), used: dev.queues[0].used}
	assert.Empty(t, q.Reap())
	pushUsed(mem, dq, uint32(q.next[a]), 1) // not a head
	pushUsed(mem, dq, 99, 1)
	pushUsed(mem, dq, uint32(a), 0xffffffff)
	pushUsed(mem, dq, uint32(a), 2) // given back already
	assert.Equal(t, []Used{{Head: a, Len: 11}}, q.Reap(), "the length cut to the device-writable 11 bytes")
	assert.Len(t, q.free, 6)
	pushUsed(mem, dq, uint32(c), 5)
	assert.Equal(t, []Used{{Head: c, Len: 0}}, q.Reap(), "nothing device-writable")
	sound(t, q)
}
