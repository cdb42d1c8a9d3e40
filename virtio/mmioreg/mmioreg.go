// Package mmioreg is the virtio-mmio transport's register layout
// (Virtual I/O Device (VIRTIO) Version 1.2, 4.2.2, modern interface,
// version 2), the device status and the feature and device type numbers
// both sides of a transport use, and the device reset. The hypervisor
// needs this much of virtio (the control partition's restart resets the
// devices passed through to it; mediated queues follow a guest's register
// writes); the drivers are package virtio, the device models vdev/.
package mmioreg

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
