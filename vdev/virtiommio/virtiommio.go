// Package virtiommio is the device side of a virtio-mmio transport
// (VIRTIO 1.2, 4.2.2, version 2) that the control partition emulates for a
// guest: the registers, feature negotiation, queue set-up as the guest
// writes it, the status and the interrupt status. The device models
// (vdev/virtioblk, vdev/virtionet) embed it and serve their queues, which
// the hypervisor mediates.
package virtiommio

import (
	"errors"

	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

// ErrNeedsReset is what a Queue returns when the guest broke its ring.
var ErrNeedsReset = errors.New("virtio: the guest broke the queue")

// Queue is one of the guest's virtqueues, as the hypervisor mediates it
// (VM_VIRTQ_*): the device reaches the chains the guest posted, and only
// those, while it holds them.
type Queue interface {
	// Pop takes the next chain: its head and the bytes the device may
	// read and write. ok is false when none waits.
	Pop() (head uint16, readable, writable uint32, ok bool, err error)
	// Read and Write copy the chain's readable or writable bytes at off.
	Read(head uint16, off uint32, b []byte) error
	Write(head uint16, off uint32, b []byte) error
	// Push gives the chain back with the bytes the device wrote.
	Push(head uint16, written uint32) error
}

// VendorID is the transport register mmioreg leaves out: only a device
// sets it (4.2.2).
const VendorID = 0x00c

const (
	// Vendor is "BLKH", the vendor ID the transport reports.
	Vendor = 0x484b4c42
	// MaxQueues is the most queues a device has here.
	MaxQueues = 2
	// StatusNeedsReset is DEVICE_NEEDS_RESET (2.1).
	StatusNeedsReset = 64
	// Interrupt status bits (4.2.2): a used buffer, a configuration change.
	IntUsed   = 1
	IntConfig = 2
)

// Transport is one device's register file.
type Transport struct {
	DeviceID  uint32
	Features  uint64 // offered, VIRTIO_F_VERSION_1 among them
	Queues    int    // 1 to MaxQueues
	QueueSize uint32 // QueueNumMax of each
	// Config returns the device's configuration layout; Notify serves a
	// queue the guest notified (a write to QueueNotify reaching the
	// model, rather than the hypervisor's MMIONotify).
	Config func() []byte
	Notify func(q uint32)

	status, intStatus    uint32
	devSel, drvSel, qsel uint32
	driverFeatures       uint64
	queue                [MaxQueues]struct {
		num, ready uint32
		addr       [6]uint32 // QueueDesc/Driver/Device Low/High, as written
	}
}

// Read answers the guest's read of the register at off.
func (t *Transport) Read(off uint64, size int) uint64 {
	if off >= mmioreg.Config {
		c := t.Config()
		o := off - mmioreg.Config
		if o+uint64(size) > uint64(len(c)) {
			return 0
		}
		var v uint64
		for i := size - 1; i >= 0; i-- {
			v = v<<8 | uint64(c[o+uint64(i)])
		}
		return v
	}
	if size != 4 { // 4.2.2.2: the driver uses 32-bit accesses only
		return 0
	}
	q := t.selected()
	switch off {
	case mmioreg.MagicValue:
		return mmioreg.Magic
	case mmioreg.Version:
		return 2
	case mmioreg.DeviceID:
		return uint64(t.DeviceID)
	case VendorID:
		return Vendor
	case mmioreg.DeviceFeatures:
		if t.devSel > 1 {
			return 0
		}
		return uint64(uint32(t.Features >> (32 * t.devSel)))
	case mmioreg.QueueNumMax:
		if q == nil {
			return 0
		}
		return uint64(t.QueueSize)
	case mmioreg.QueueReady:
		if q == nil {
			return 0
		}
		return uint64(q.ready)
	case mmioreg.InterruptStatus:
		return uint64(t.intStatus)
	case mmioreg.Status:
		return uint64(t.status)
	case mmioreg.ConfigGeneration:
		return 0 // the configuration never changes
	}
	if i := addrIndex(off); i >= 0 && q != nil {
		return uint64(q.addr[i])
	}
	return 0
}

func (t *Transport) selected() *struct {
	num, ready uint32
	addr       [6]uint32
} {
	if int(t.qsel) >= t.Queues {
		return nil
	}
	return &t.queue[t.qsel]
}

func addrIndex(off uint64) int {
	switch off {
	case mmioreg.QueueDescLow:
		return 0
	case mmioreg.QueueDescHigh:
		return 1
	case mmioreg.QueueDriverLow:
		return 2
	case mmioreg.QueueDriverHigh:
		return 3
	case mmioreg.QueueDeviceLow:
		return 4
	case mmioreg.QueueDeviceHigh:
		return 5
	}
	return -1
}

// Write takes the guest's write of v to the register at off.
func (t *Transport) Write(off uint64, size int, v uint64) {
	if size != 4 {
		return
	}
	w := uint32(v)
	q := t.selected()
	switch off {
	case mmioreg.DeviceFeaturesSel:
		t.devSel = w
	case mmioreg.DriverFeaturesSel:
		t.drvSel = w
	case mmioreg.DriverFeatures:
		if t.drvSel <= 1 {
			shift := 32 * t.drvSel
			t.driverFeatures = t.driverFeatures&^(0xffffffff<<shift) | uint64(w)<<shift
		}
	case mmioreg.QueueSel:
		t.qsel = w
	case mmioreg.QueueNum:
		if q != nil {
			q.num = w
		}
	case mmioreg.QueueReady:
		if q != nil {
			q.ready = w & 1
		}
	case mmioreg.InterruptACK:
		t.intStatus &^= w
	case mmioreg.Status:
		if w == 0 {
			t.reset()
			return
		}
		if w&mmioreg.StatusFeaturesOK != 0 && t.driverFeatures&^t.Features != 0 {
			w &^= mmioreg.StatusFeaturesOK // features it does not offer (3.1.1)
		}
		t.status = w | t.status&StatusNeedsReset
	case mmioreg.QueueNotify:
		if t.Notify != nil {
			t.Notify(w)
		}
	default:
		if i := addrIndex(off); i >= 0 && q != nil {
			q.addr[i] = w
		}
	}
}

// reset forgets what the driver set (2.1.2, 4.2.2.1).
func (t *Transport) reset() {
	t.status, t.intStatus, t.devSel, t.drvSel, t.qsel, t.driverFeatures = 0, 0, 0, 0, 0, 0
	t.queue = [MaxQueues]struct {
		num, ready uint32
		addr       [6]uint32
	}{}
}

// Live reports whether queue q may be served: the driver is done setting
// up (DRIVER_OK), has enabled the queue, and the device needs no reset.
func (t *Transport) Live(q uint32) bool {
	return int(q) < t.Queues && t.queue[q].ready == 1 &&
		t.status&mmioreg.StatusDriverOK != 0 && t.status&StatusNeedsReset == 0
}

// Used raises the used-buffer interrupt.
func (t *Transport) Used() { t.intStatus |= IntUsed }

// NeedsReset says the guest broke a queue: the device stops until the
// driver resets it, and tells it with a configuration change interrupt
// (2.1.2).
func (t *Transport) NeedsReset() {
	t.status |= StatusNeedsReset
	t.intStatus |= IntConfig
}

// Line is the device's interrupt output: high while an interrupt status
// bit is set.
func (t *Transport) Line() bool { return t.intStatus != 0 }
