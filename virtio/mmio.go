// Package virtio drives virtio devices over the virtio-mmio transport
// (Virtual I/O Device (VIRTIO) Version 1.2, 4.2 "Virtio Over MMIO", modern
// interface, version 2) or over PCI (4.1, modern interface: pci.go) with
// split virtqueues (2.7). The control partition
// uses it for its channel to the host, a virtio console, and for the
// machine's disks (virtio-blk, blk.go). The logic runs over the Bus and
// Memory seams, so tests can play the device.
package virtio

import (
	"errors"
	"fmt"

	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

// Bus reads and writes the device's 32-bit registers.
type Bus = mmioreg.Bus

// Memory gives the driver memory the device can reach by DMA.
type Memory interface {
	// Alloc returns n zeroed bytes and their physical address.
	Alloc(n int) (b []byte, pa uint64)
	// Barrier orders the driver's memory writes before the device sees
	// a notification, and the device's before the driver reads (DMB).
	Barrier()
}

var (
	ErrNoDevice = errors.New("virtio: no such device")
	ErrFeatures = errors.New("virtio: the device refused the driver's features")
)

// Find scans virtio-mmio transports for a device of type id and returns
// the base of the first.
func Find(bus Bus, bases []uint64, id uint32) (uint64, error) {
	if all := FindAll(bus, bases, id); len(all) > 0 {
		return all[0], nil
	}
	return 0, fmt.Errorf("%w: type %d among %d virtio-mmio transports (QEMU: -global virtio-mmio.force-legacy=false)", ErrNoDevice, id, len(bases))
}

// FindAll returns the base of every modern virtio-mmio transport among
// bases with a device of type id, in the order of bases.
func FindAll(bus Bus, bases []uint64, id uint32) []uint64 {
	var all []uint64
	for _, b := range bases {
		if bus.Read32(b+mmioreg.MagicValue) == mmioreg.Magic && bus.Read32(b+mmioreg.Version) == 2 && bus.Read32(b+mmioreg.DeviceID) == id {
			all = append(all, b)
		}
	}
	return all
}

// Device is an initialized virtio device, over either transport.
type Device struct {
	t        transport
	mem      Memory
	features uint64 // negotiated
}

// transport is what the driver needs of a virtio transport: the device
// status, feature bits, queue setup and notification, and the
// device-specific configuration (VIRTIO 1.2, 4.1 and 4.2).
type transport interface {
	reset()
	status() uint32
	setStatus(s uint32)
	deviceFeatures() uint64
	setDriverFeatures(f uint64)
	// queueMax is the largest size queue i may have, 0 if there is none.
	queueMax(i uint32) int
	// setQueue gives queue i its size and rings and enables it.
	setQueue(i uint32, num int, desc, driver, device uint64)
	notify(i uint32)
	// config32 reads the 32 bits at off in the device configuration.
	config32(off uint64) uint32
	generation() uint32
}

// Init resets the virtio-mmio device at base and negotiates
// VIRTIO_F_VERSION_1 and the device-specific features in want that the
// device offers (3.1.1).
func Init(bus Bus, mem Memory, base uint64, want uint64) (*Device, error) {
	return negotiate(mmioTransport{bus, base}, mem, want)
}

func negotiate(t transport, mem Memory, want uint64) (*Device, error) {
	d := &Device{t: t, mem: mem}
	t.reset()
	t.setStatus(mmioreg.StatusAcknowledge)
	t.setStatus(mmioreg.StatusAcknowledge | mmioreg.StatusDriver)
	offered := t.deviceFeatures()
	if offered&mmioreg.FeatureVersion1 == 0 {
		return nil, fmt.Errorf("%w: no VIRTIO_F_VERSION_1", ErrFeatures)
	}
	feat := mmioreg.FeatureVersion1 | want&offered
	t.setDriverFeatures(feat)
	t.setStatus(mmioreg.StatusAcknowledge | mmioreg.StatusDriver | mmioreg.StatusFeaturesOK)
	if t.status()&mmioreg.StatusFeaturesOK == 0 {
		t.setStatus(mmioreg.StatusFailed)
		return nil, ErrFeatures
	}
	d.features = feat
	return d, nil
}

// Ready tells the device the driver is set up (DRIVER_OK).
func (d *Device) Ready() {
	d.t.setStatus(mmioreg.StatusAcknowledge | mmioreg.StatusDriver | mmioreg.StatusFeaturesOK | mmioreg.StatusDriverOK)
}

// fail tells the device the driver gave up on it (2.1.1).
func (d *Device) fail() { d.t.setStatus(mmioreg.StatusFailed) }

// mmioTransport is virtio over MMIO (4.2.2): 32-bit registers at base.
type mmioTransport struct {
	bus  Bus
	base uint64
}

func (m mmioTransport) r(off uint64) uint32    { return m.bus.Read32(m.base + off) }
func (m mmioTransport) w(off uint64, v uint32) { m.bus.Write32(m.base+off, v) }

func (m mmioTransport) reset()             { mmioreg.Reset(m.bus, m.base) }
func (m mmioTransport) status() uint32     { return m.r(mmioreg.Status) }
func (m mmioTransport) setStatus(s uint32) { m.w(mmioreg.Status, s) }
func (m mmioTransport) deviceFeatures() uint64 {
	m.w(mmioreg.DeviceFeaturesSel, 0)
	f := uint64(m.r(mmioreg.DeviceFeatures))
	m.w(mmioreg.DeviceFeaturesSel, 1)
	return f | uint64(m.r(mmioreg.DeviceFeatures))<<32
}
func (m mmioTransport) setDriverFeatures(f uint64) {
	m.w(mmioreg.DriverFeaturesSel, 0)
	m.w(mmioreg.DriverFeatures, uint32(f))
	m.w(mmioreg.DriverFeaturesSel, 1)
	m.w(mmioreg.DriverFeatures, uint32(f>>32))
}
func (m mmioTransport) queueMax(i uint32) int {
	m.w(mmioreg.QueueSel, i)
	return int(m.r(mmioreg.QueueNumMax))
}
func (m mmioTransport) setQueue(i uint32, num int, desc, driver, device uint64) {
	m.w(mmioreg.QueueSel, i)
	m.w(mmioreg.QueueNum, uint32(num))
	m.w(mmioreg.QueueDescLow, uint32(desc))
	m.w(mmioreg.QueueDescHigh, uint32(desc>>32))
	m.w(mmioreg.QueueDriverLow, uint32(driver))
	m.w(mmioreg.QueueDriverHigh, uint32(driver>>32))
	m.w(mmioreg.QueueDeviceLow, uint32(device))
	m.w(mmioreg.QueueDeviceHigh, uint32(device>>32))
	m.w(mmioreg.QueueReady, 1)
}
func (m mmioTransport) notify(i uint32)            { m.w(mmioreg.QueueNotify, i) }
func (m mmioTransport) config32(off uint64) uint32 { return m.r(mmioreg.Config + off) }
func (m mmioTransport) generation() uint32         { return m.r(mmioreg.ConfigGeneration) }
