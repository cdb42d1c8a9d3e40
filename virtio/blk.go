package virtio

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/bulkhead-hv/bulkhead/pci"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
	"io"
	"math"
)

// virtio-blk feature bits (5.2.3).
const (
	BlkFSizeMax = 1 << 1 // VIRTIO_BLK_F_SIZE_MAX
	BlkFSegMax  = 1 << 2 // VIRTIO_BLK_F_SEG_MAX
	BlkFRO      = 1 << 5 // VIRTIO_BLK_F_RO
	BlkFBlkSize = 1 << 6 // VIRTIO_BLK_F_BLK_SIZE
	BlkFFlush   = 1 << 9 // VIRTIO_BLK_F_FLUSH
)

// Request types and status values (5.2.6).
const (
	BlkTIn    = 0 // VIRTIO_BLK_T_IN
	BlkTOut   = 1 // VIRTIO_BLK_T_OUT
	BlkTFlush = 4 // VIRTIO_BLK_T_FLUSH
	BlkTGetID = 8 // VIRTIO_BLK_T_GET_ID

	BlkSOK     = 0 // VIRTIO_BLK_S_OK
	BlkSIOErr  = 1 // VIRTIO_BLK_S_IOERR
	BlkSUnsupp = 2 // VIRTIO_BLK_S_UNSUPP
)

// Offsets in struct virtio_blk_config (5.2.4), from mmioreg.Config.
const (
	blkCapacity = 0
	blkSizeMax  = 8
	blkSegMax   = 12
	blkBlkSize  = 20
)

const (
	SectorSize = 512 // the protocol's unit, whatever blk_size says (5.2.5)
	// bounceSize is the DMA buffer data goes through: the most one
	// request carries.
	bounceSize = 64 << 10
	blkIDBytes = 20 // VIRTIO_BLK_ID_BYTES
)

var (
	ErrUnaligned = errors.New("virtio-blk: offset or length not a multiple of 512")
	ErrReadOnly  = errors.New("virtio-blk: the device is read-only")
	ErrRange     = errors.New("virtio-blk: past the end of the device")
	ErrIOErr     = errors.New("virtio-blk: I/O error")           // VIRTIO_BLK_S_IOERR
	ErrUnsupp    = errors.New("virtio-blk: request unsupported") // VIRTIO_BLK_S_UNSUPP
)

// Blk drives a virtio block device (5.2) on one request queue: a request
// at a time, each waited for by polling the used ring.
type Blk struct {
	// Idle is called while the driver waits for the device; nil spins.
	Idle func()

	d       *Device
	q       *Queue
	sectors uint64
	blkSize int
	id      string
	req     []byte // struct virtio_blk_req's header, then its status byte
	reqPA   uint64
	buf     []byte // the bounce buffer
	bufPA   uint64
	seg     int // most bytes in one data segment
	max     int // most data bytes in one request, whole sectors
	segs    []Seg
}

// OpenBlk initializes the virtio-blk device at base, negotiating
// VIRTIO_F_VERSION_1 and whichever of VIRTIO_BLK_F_FLUSH, _RO, _BLK_SIZE,
// _SEG_MAX and _SIZE_MAX it offers, and reads its capacity and ID.
func OpenBlk(bus Bus, mem Memory, base uint64) (*Blk, error) {
	if bus.Read32(base+mmioreg.MagicValue) != mmioreg.Magic || bus.Read32(base+mmioreg.Version) != 2 || bus.Read32(base+mmioreg.DeviceID) != mmioreg.DeviceBlock {
		return nil, fmt.Errorf("%w: no virtio-blk at %#x", ErrNoDevice, base)
	}
	return newBlk(Init(bus, mem, base, blkFeatures))
}

const blkFeatures = BlkFFlush | BlkFRO | BlkFBlkSize | BlkFSegMax | BlkFSizeMax

// OpenBlkPCI is OpenBlk for the virtio-blk PCI function f, whose BARs are
// assigned.
func OpenBlkPCI(f *pci.Function, bus WideBus, mem Memory) (*Blk, error) {
	if t, ok := PCIType(f); !ok || t != mmioreg.DeviceBlock {
		return nil, fmt.Errorf("%w: no virtio-blk at %v", ErrNoDevice, f)
	}
	return newBlk(InitPCI(f, bus, mem, blkFeatures))
}

func newBlk(d *Device, err error) (*Blk, error) {
	if err != nil {
		return nil, err
	}
	b := &Blk{d: d}
	if err := b.open(); err != nil {
		d.fail()
		return nil, err
	}
	return b, nil
}

func (b *Blk) open() error {
	d := b.d
	var sizeMax, segMax, blkSize uint32
	if err := d.readConfig(func() {
		b.sectors = uint64(d.t.config32(blkCapacity)) | uint64(d.t.config32(blkCapacity+4))<<32
		sizeMax, segMax, blkSize = d.t.config32(blkSizeMax), d.t.config32(blkSegMax), d.t.config32(blkBlkSize)
	}); err != nil {
		return err
	}
	if b.sectors > math.MaxInt64/SectorSize {
		return fmt.Errorf("virtio-blk: capacity of %d sectors", b.sectors)
	}
	b.blkSize = SectorSize
	if d.features&BlkFBlkSize != 0 && blkSize >= SectorSize && blkSize <= bounceSize && blkSize&(blkSize-1) == 0 {
		b.blkSize = int(blkSize)
	}

	// A request is the header, its data segments and the status byte:
	// as many segments as the queue, seg_max and size_max allow, in one
	// bounce buffer.
	b.seg = bounceSize
	if d.features&BlkFSizeMax != 0 && sizeMax > 0 {
		b.seg = int(min(sizeMax, bounceSize))
	}
	need := 2 + (bounceSize+b.seg-1)/b.seg
	num := 4
	for num < need && num < 1<<15 {
		num <<= 1
	}
	q, err := d.Queue(0, num, 0)
	if err != nil {
		return err
	}
	b.q = q
	segs := max(q.num-2, 0)
	if d.features&BlkFSegMax != 0 && segMax > 0 {
		segs = min(segs, int(segMax))
	}
	if b.max = min(bounceSize, segs*b.seg) &^ (SectorSize - 1); b.max == 0 {
		return fmt.Errorf("virtio-blk: a queue of %d, seg_max %d and size_max %d leave no room for a sector", q.num, segMax, sizeMax)
	}
	b.req, b.reqPA = d.mem.Alloc(17)
	b.buf, b.bufPA = d.mem.Alloc(bounceSize)
	b.segs = make([]Seg, 0, q.num)
	d.Ready()

	// The ID is the serial (QEMU: -device virtio-blk-device,serial=NAME),
	// NUL-padded to 20 bytes (5.2.6); a device may not have one.
	clear(b.buf[:blkIDBytes])
	switch err := b.do(BlkTGetID, 0, blkIDBytes); {
	case errors.Is(err, ErrUnsupp):
	case err != nil:
		return err
	default:
		id := b.buf[:blkIDBytes]
		if i := bytes.IndexByte(id, 0); i >= 0 {
			id = id[:i]
		}
		b.id = string(id)
	}
	return nil
}

// readConfig calls read until the configuration generation is the same
// before and after it, so that the fields read are consistent (2.5.1).
func (d *Device) readConfig(read func()) error {
	for range 100 {
		g := d.t.generation()
		read()
		if d.t.generation() == g {
			return nil
		}
	}
	return errors.New("virtio: the device configuration keeps changing")
}

// Size returns the device's capacity in bytes.
func (b *Blk) Size() int64 { return int64(b.sectors) * SectorSize }

// ReadOnly reports whether the device offered VIRTIO_BLK_F_RO.
func (b *Blk) ReadOnly() bool { return b.d.features&BlkFRO != 0 }

// ID returns the device's ID string (its serial), or "" if it has none.
func (b *Blk) ID() string { return b.id }

// BlockSize returns the device's optimal block size (blk_size, 5.2.5): a
// hint, the unit of ReadAt and WriteAt being 512 bytes regardless.
func (b *Blk) BlockSize() int { return b.blkSize }

// ReadAt reads len(p) bytes at off, both multiples of 512, as
// io.ReaderAt does: past the end of the device it reads what there is,
// and returns io.EOF.
func (b *Blk) ReadAt(p []byte, off int64) (int, error) {
	if err := check(p, off); err != nil || len(p) == 0 {
		return 0, err
	}
	if off >= b.Size() {
		return 0, io.EOF
	}
	want := len(p)
	p = p[:min(int64(want), b.Size()-off)]
	for n := 0; n < len(p); {
		k := min(b.max, len(p)-n)
		if err := b.do(BlkTIn, uint64(off+int64(n))/SectorSize, k); err != nil {
			return n, err
		}
		n += copy(p[n:], b.buf[:k])
	}
	if len(p) < want {
		return len(p), io.EOF
	}
	return len(p), nil
}

// WriteAt writes p at off, both multiples of 512. A write past the end
// of the device, or to a read-only one, is refused whole.
func (b *Blk) WriteAt(p []byte, off int64) (int, error) {
	if b.ReadOnly() {
		return 0, ErrReadOnly // 5.2.5: any write would fail
	}
	if err := check(p, off); err != nil {
		return 0, err
	}
	if off > b.Size() || int64(len(p)) > b.Size()-off {
		return 0, fmt.Errorf("%w: %d bytes at %d, of %d", ErrRange, len(p), off, b.Size())
	}
	for n := 0; n < len(p); {
		k := copy(b.buf[:min(b.max, len(p)-n)], p[n:])
		if err := b.do(BlkTOut, uint64(off+int64(n))/SectorSize, k); err != nil {
			return n, err
		}
		n += k
	}
	return len(p), nil
}

// Flush returns once every completed write is on stable storage: it
// sends VIRTIO_BLK_T_FLUSH (5.2.6.2, a write is stable once a flush sent
// after it has completed). A device that did not offer VIRTIO_BLK_F_FLUSH
// has no flush command: the driver may take its cache to be writethrough
// (5.2.5.1), though the spec does not require such a device to commit a
// write before completing it (5.2.6.2), so Flush has nothing to send.
func (b *Blk) Flush() error {
	if b.d.features&BlkFFlush == 0 {
		return nil
	}
	return b.do(BlkTFlush, 0, 0)
}

func check(p []byte, off int64) error {
	if off < 0 {
		return fmt.Errorf("%w: offset %d", ErrRange, off)
	}
	if off%SectorSize != 0 || len(p)%SectorSize != 0 {
		return fmt.Errorf("%w: %d bytes at %d", ErrUnaligned, len(p), off)
	}
	return nil
}

// do sends one request (5.2.6) as a chain: its header, n bytes of the
// bounce buffer in segments of at most b.seg, and its status byte. It
// waits for the device to finish it.
func (b *Blk) do(typ uint32, sector uint64, n int) error {
	le.PutUint32(b.req, typ)
	le.PutUint32(b.req[4:], 0)
	le.PutUint64(b.req[8:], sector)
	b.req[16] = 0xff // stays if the device writes no status
	segs := append(b.segs[:0], Seg{Addr: b.reqPA, Len: 16})
	for off := 0; off < n; off += b.seg {
		segs = append(segs, Seg{Addr: b.bufPA + uint64(off), Len: uint32(min(b.seg, n-off)), Write: typ != BlkTOut})
	}
	segs = append(segs, Seg{Addr: b.reqPA + 16, Len: 1, Write: true})
	head, err := b.q.Post(segs...)
	if err != nil {
		return err // not while one request at a time gets them all back
	}
	for !b.reaped(head) {
		if b.Idle != nil {
			b.Idle()
		}
	}
	if s := b.req[16]; s != BlkSOK {
		return blkError(typ, sector, s)
	}
	return nil
}

// blkError names a failed request and its sector.
func blkError(typ uint32, sector uint64, status byte) error {
	op := map[uint32]string{BlkTIn: "read", BlkTOut: "write", BlkTFlush: "flush", BlkTGetID: "get ID"}[typ]
	switch status {
	case BlkSIOErr:
		return fmt.Errorf("%w: %s at sector %d", ErrIOErr, op, sector)
	case BlkSUnsupp:
		return fmt.Errorf("%w: %s at sector %d", ErrUnsupp, op, sector)
	}
	return fmt.Errorf("%w: %s at sector %d: status %d", ErrIOErr, op, sector, status)
}

// reaped reports whether the device has given chain head back. The
// request being the only one posted, no other chain is in the used ring.
func (b *Blk) reaped(head uint16) bool {
	for _, u := range b.q.Reap() {
		if u.Head == head {
			return true
		}
	}
	return false
}
