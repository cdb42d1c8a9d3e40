// Package virtio drives virtio devices over the virtio-mmio transport
// (Virtual I/O Device (VIRTIO) mmioreg.Version 1.2, 4.2 "Virtio Over MMIO", modern
// interface, version 2) with split virtqueues (2.7). The control partition
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
	mmioreg.Reset(bus, base)
	d.w(mmioreg.Status, mmioreg.StatusAcknowledge)
	d.w(mmioreg.Status, mmioreg.StatusAcknowledge|mmioreg.StatusDriver)
	d.w(mmioreg.DeviceFeaturesSel, 0)
	offered := uint64(d.r(mmioreg.DeviceFeatures))
	d.w(mmioreg.DeviceFeaturesSel, 1)
	offered |= uint64(d.r(mmioreg.DeviceFeatures)) << 32
	if offered&mmioreg.FeatureVersion1 == 0 {
		return nil, fmt.Errorf("%w: no VIRTIO_F_VERSION_1", ErrFeatures)
	}
	feat := mmioreg.FeatureVersion1 | want&offered
	d.w(mmioreg.DriverFeaturesSel, 0)
	d.w(mmioreg.DriverFeatures, uint32(feat))
	d.w(mmioreg.DriverFeaturesSel, 1)
	d.w(mmioreg.DriverFeatures, uint32(feat>>32))
	d.w(mmioreg.Status, mmioreg.StatusAcknowledge|mmioreg.StatusDriver|mmioreg.StatusFeaturesOK)
	if d.r(mmioreg.Status)&mmioreg.StatusFeaturesOK == 0 {
		d.w(mmioreg.Status, mmioreg.StatusFailed)
		return nil, ErrFeatures
	}
	d.features = feat
	return d, nil
}

// Ready tells the device the driver is set up (DRIVER_OK).
func (d *Device) Ready() {
	d.w(mmioreg.Status, mmioreg.StatusAcknowledge|mmioreg.StatusDriver|mmioreg.StatusFeaturesOK|mmioreg.StatusDriverOK)
}

func (d *Device) r(off uint64) uint32    { return d.bus.Read32(d.base + off) }
func (d *Device) w(off uint64, v uint32) { d.bus.Write32(d.base+off, v) }
