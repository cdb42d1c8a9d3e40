// Package virtioblk is the virtio block device (VIRTIO 1.2, 5.2) guests
// find on a virtio-mmio transport (4.2.2, version 2), emulated by the
// control partition over forwarded MMIO. The device never sees the
// guest's memory: it reaches the buffers the guest posts through Queue,
// which the hypervisor mediates (VM_VIRTQ_*), and stores blocks on a Disk.
// Its interrupt output is Line, driven into the guest with VM_IRQ_LINE.
package virtioblk

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/bulkhead-hv/bulkhead/vdev/virtiommio"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

// Size is the transport's register frame.
const Size = 0x200

// Feature bits (5.2.3) and the request types and status values (5.2.6).
const (
	FeatureSizeMax = 1 << 1
	FeatureSegMax  = 1 << 2
	FeatureRO      = 1 << 5
	FeatureBlkSize = 1 << 6
	FeatureFlush   = 1 << 9

	TypeIn    = 0
	TypeOut   = 1
	TypeFlush = 4
	TypeGetID = 8

	StatusOK     = 0
	StatusIOErr  = 1
	StatusUnsupp = 2

	SectorSize = 512
	// QueueSize is the largest queue offered; SegMax the most data
	// buffers in one request (the queue less header and status).
	QueueSize = 128
	SegMax    = QueueSize - 2
)

// Queue is the guest's request queue: each chain a request, its header
// and data to write readable, its data read and status byte writable.
type Queue = virtiommio.Queue

// ErrNeedsReset is what a Queue returns when the guest broke its ring.
var ErrNeedsReset = virtiommio.ErrNeedsReset

// Disk stores the blocks: a whole drive or a range of one.
type Disk interface {
	io.ReaderAt
	io.WriterAt
	// Flush returns once every completed write is on stable storage.
	Flush() error
	Size() int64
}

// Stats are the device's counters.
type Stats struct {
	Reads, Writes, Flushes, Errors uint64
	ReadBytes, WrittenBytes        uint64
}

// Device is one guest's block device. Make it with New.
type Device struct {
	virtiommio.Transport
	Disk     Disk
	ReadOnly bool
	ID       string // the serial GET_ID reports, at most 20 bytes
	Queue    Queue
	Stats    Stats
	buf      []byte
}

// chunk is how much of a request moves per copy (abi.VirtqMaxCopy).
const chunk = 64 << 10

// New returns the device for a guest: disk behind queue, read-only if ro.
func New(disk Disk, ro bool, id string, queue Queue) *Device {
	d := &Device{Disk: disk, ReadOnly: ro, ID: id, Queue: queue}
	f := uint64(mmioreg.FeatureVersion1 | FeatureSegMax | FeatureBlkSize | FeatureFlush)
	if ro {
		f |= FeatureRO
	}
	d.Transport = virtiommio.Transport{DeviceID: mmioreg.DeviceBlock, Features: f, Queues: 1, QueueSize: QueueSize,
		Config: d.config, Notify: d.Notify}
	return d
}

// config is the device's configuration layout (5.2.4): capacity in
// sectors, size_max, seg_max, geometry (none), blk_size.
func (d *Device) config() []byte {
	c := make([]byte, 24)
	binary.LittleEndian.PutUint64(c[0:], uint64(d.Disk.Size())/SectorSize)
	binary.LittleEndian.PutUint32(c[8:], chunk)
	binary.LittleEndian.PutUint32(c[12:], SegMax)
	binary.LittleEndian.PutUint32(c[20:], SectorSize)
	return c
}

// Notify serves queue q: every request the guest has posted.
func (d *Device) Notify(q uint32) {
	if q != 0 || !d.Live(0) {
		return
	}
	for {
		head, r, w, ok, err := d.Queue.Pop()
		if err != nil {
			// The guest broke its ring: it must reset the device.
			d.NeedsReset()
			d.Stats.Errors++
			return
		}
		if !ok {
			return
		}
		written := d.serve(head, r, w)
		if d.Queue.Push(head, written) == nil {
			d.Used()
		}
	}
}

// serve carries out one request and returns the bytes written into it.
func (d *Device) serve(head uint16, readable, writable uint32) uint32 {
	var h [16]byte
	if readable < 16 || writable < 1 || d.Queue.Read(head, 0, h[:]) != nil {
		d.Stats.Errors++
		return 0 // no header or no status byte: nothing to answer in
	}
	typ := binary.LittleEndian.Uint32(h[0:])
	sector := binary.LittleEndian.Uint64(h[8:])
	off := int64(-1) // past any disk: a sector that overflows a byte offset
	if sector <= uint64(d.Disk.Size())/SectorSize {
		off = int64(sector) * SectorSize
	}
	status, written := byte(StatusOK), uint32(0)
	switch typ {
	case TypeIn:
		written = writable - 1
		if !d.span(off, written) || d.copyOut(head, off, written) != nil {
			status, written = StatusIOErr, 0
		} else {
			d.Stats.Reads++
			d.Stats.ReadBytes += uint64(written)
		}
	case TypeOut:
		n := readable - 16
		if d.ReadOnly || !d.span(off, n) || d.copyIn(head, off, n) != nil {
			status = StatusIOErr
		} else {
			d.Stats.Writes++
			d.Stats.WrittenBytes += uint64(n)
		}
	case TypeFlush:
		d.Stats.Flushes++
		if d.Disk.Flush() != nil {
			status = StatusIOErr
		}
	case TypeGetID:
		id := make([]byte, 20) // NUL padded, no NUL when it is 20 long (5.2.6)
		copy(id, d.ID)
		written = min(writable-1, 20)
		if d.Queue.Write(head, 0, id[:written]) != nil {
			status, written = StatusIOErr, 0
		}
	default:
		status = StatusUnsupp
	}
	if status != StatusOK {
		d.Stats.Errors++
	}
	// The status byte is the chain's last writable byte.
	if d.Queue.Write(head, writable-1, []byte{status}) != nil {
		return 0
	}
	return written + 1
}

// span reports whether n bytes at off are whole sectors on the disk.
func (d *Device) span(off int64, n uint32) bool {
	return off >= 0 && n%SectorSize == 0 && off+int64(n) <= d.Disk.Size()
}

func (d *Device) buffer() []byte {
	if d.buf == nil {
		d.buf = make([]byte, chunk)
	}
	return d.buf
}

// copyOut reads n bytes of the disk at off into the chain.
func (d *Device) copyOut(head uint16, off int64, n uint32) error {
	b := d.buffer()
	for done := uint32(0); done < n; {
		k := min(n-done, chunk)
		if _, err := d.Disk.ReadAt(b[:k], off+int64(done)); err != nil {
			return err
		}
		if err := d.Queue.Write(head, done, b[:k]); err != nil {
			return err
		}
		done += k
	}
	return nil
}

// copyIn writes the chain's n data bytes (after the header) to the disk
// at off.
func (d *Device) copyIn(head uint16, off int64, n uint32) error {
	b := d.buffer()
	for done := uint32(0); done < n; {
		k := min(n-done, chunk)
		if err := d.Queue.Read(head, 16+done, b[:k]); err != nil {
			return err
		}
		if _, err := d.Disk.WriteAt(b[:k], off+int64(done)); err != nil {
			return err
		}
		done += k
	}
	return nil
}

// Slice is the part [Off, Off+Len) of a disk as a disk of its own: a guest
// disk backed by a range of a drive.
type Slice struct {
	Disk     Disk
	Off, Len int64
}

func (s *Slice) check(n int, off int64) error {
	if off < 0 || off+int64(n) > s.Len || off+int64(n) < off {
		return fmt.Errorf("virtioblk: %d bytes at %d lie outside the slice of %d bytes", n, off, s.Len)
	}
	return nil
}

func (s *Slice) ReadAt(p []byte, off int64) (int, error) {
	if err := s.check(len(p), off); err != nil {
		return 0, err
	}
	return s.Disk.ReadAt(p, s.Off+off)
}

func (s *Slice) WriteAt(p []byte, off int64) (int, error) {
	if err := s.check(len(p), off); err != nil {
		return 0, err
	}
	return s.Disk.WriteAt(p, s.Off+off)
}

func (s *Slice) Flush() error { return s.Disk.Flush() }
func (s *Slice) Size() int64  { return s.Len }
