// Package virtio drives virtio devices over the virtio-mmio transport
// (Virtual I/O Device (VIRTIO) Version 1.2, 4.2 "Virtio Over MMIO", modern
// interface, version 2) with split virtqueues (2.7). The control partition
// uses it for its channel to the host, a virtio console, and for the
// machine's disks (virtio-blk, blk.go). The logic runs over the Bus and
// Memory seams, so tests can play the device.
package virtio

import (
	"errors"
	"fmt"
)

// MMIO device registers (VIRTIO 1.2, 4.2.2).
const (
	MagicValue        = 0x000
	Version           = 0x004
	DeviceID          = 0x008
	DeviceFeatures    = 0x010
	DeviceFeaturesSel = 0x014
	DriverFeatures    = 0x020
	DriverFeaturesSel = 0x024
	QueueSel          = 0x030
	QueueNumMax       = 0x034
	QueueNum          = 0x038
	QueueReady        = 0x044
	QueueNotify       = 0x050
	InterruptStatus   = 0x060
	InterruptACK      = 0x064
	Status            = 0x070
	QueueDescLow      = 0x080
	QueueDescHigh     = 0x084
	QueueDriverLow    = 0x090
	QueueDriverHigh   = 0x094
	QueueDeviceLow    = 0x0a0
	QueueDeviceHigh   = 0x0a4
	ConfigGeneration  = 0x0fc
	Config            = 0x100 // device-specific configuration space (4.2.2)

	Magic = 0x74726976 // "virt"

	// Device status bits (2.1).
	StatusAcknowledge = 1
	StatusDriver      = 2
	StatusDriverOK    = 4
	StatusFeaturesOK  = 8
	StatusFailed      = 128

	// VIRTIO_F_VERSION_1 (6): feature bit 32.
	FeatureVersion1 = 1 << 32

	DeviceNet     = 1
	DeviceBlock   = 2
	DeviceConsole = 3
)

// Bus reads and writes the device's 32-bit registers.
type Bus interface {
	Read32(addr uint64) uint32
	Write32(addr uint64, v uint32)
}

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
		if bus.Read32(b+MagicValue) == Magic && bus.Read32(b+Version) == 2 && bus.Read32(b+DeviceID) == id {
			all = append(all, b)
		}
	}
	return all
}

// Reset resets the virtio-mmio device at base, if a device is there:
// writing 0 to its status stops it and makes it forget its queues, and so
// the addresses it would write to (4.2.2.1, 2.1.2); the reset is done when
// the status reads 0 again (4.2.2.2), which the wait bounds.
func Reset(bus Bus, base uint64) {
	if bus.Read32(base+MagicValue) != Magic || bus.Read32(base+DeviceID) == 0 {
		return
	}
	bus.Write32(base+Status, 0)
	for i := 0; i < 1000 && bus.Read32(base+Status) != 0; i++ {
	}
}

// Device is an initialized virtio-mmio device.
type Device struct {
	bus      Bus
	base     uint64
	mem      Memory
	features uint64 // negotiated
}

// Init resets the device and negotiates VIRTIO_F_VERSION_1 and the
// device-specific features in want that the device offers (3.1.1).
func Init(bus Bus, mem Memory, base uint64, want uint64) (*Device, error) {
	d := &Device{bus: bus, base: base, mem: mem}
	Reset(bus, base)
	d.w(Status, StatusAcknowledge)
	d.w(Status, StatusAcknowledge|StatusDriver)
	d.w(DeviceFeaturesSel, 0)
	offered := uint64(d.r(DeviceFeatures))
	d.w(DeviceFeaturesSel, 1)
	offered |= uint64(d.r(DeviceFeatures)) << 32
	if offered&FeatureVersion1 == 0 {
		return nil, fmt.Errorf("%w: no VIRTIO_F_VERSION_1", ErrFeatures)
	}
	feat := FeatureVersion1 | want&offered
	d.w(DriverFeaturesSel, 0)
	d.w(DriverFeatures, uint32(feat))
	d.w(DriverFeaturesSel, 1)
	d.w(DriverFeatures, uint32(feat>>32))
	d.w(Status, StatusAcknowledge|StatusDriver|StatusFeaturesOK)
	if d.r(Status)&StatusFeaturesOK == 0 {
		d.w(Status, StatusFailed)
		return nil, ErrFeatures
	}
	d.features = feat
	return d, nil
}

// Ready tells the device the driver is set up (DRIVER_OK).
func (d *Device) Ready() {
	d.w(Status, StatusAcknowledge|StatusDriver|StatusFeaturesOK|StatusDriverOK)
}

func (d *Device) r(off uint64) uint32    { return d.bus.Read32(d.base + off) }
func (d *Device) w(off uint64, v uint32) { d.bus.Write32(d.base+off, v) }
