package virtio

import (
	"fmt"

	"github.com/bulkhead-hv/bulkhead/pci"
)

// WideBus reaches registers 8, 16 and 32 bits wide: virtio over PCI's
// common configuration is decoded by each field's offset and width, so
// every field is accessed at its own width (VIRTIO 1.2, 4.1.3.1).
type WideBus interface {
	Bus
	Read8(addr uint64) uint8
	Read16(addr uint64) uint16
	Write8(addr uint64, v uint8)
	Write16(addr uint64, v uint16)
}

// PCI identifiers (4.1.2): vendor 0x1af4; device 0x1040 + the virtio
// device type, or a transitional device's 0x1000-0x103f with the type as
// its subsystem ID.
const (
	PCIVendor      = 0x1af4
	pciModernBase  = 0x1040
	pciTransFirst  = 0x1000
	pciTransLast   = 0x103f
	pciCapVendor   = 0x09 // a vendor-specific capability: struct virtio_pci_cap
	pciCapCommon   = 1    // VIRTIO_PCI_CAP_COMMON_CFG
	pciCapNotify   = 2    // VIRTIO_PCI_CAP_NOTIFY_CFG
	pciCapISR      = 3    // VIRTIO_PCI_CAP_ISR_CFG: not used, the drivers poll
	pciCapDevice   = 4    // VIRTIO_PCI_CAP_DEVICE_CFG
	pciCapMinLen   = 16
	pciNotifyExtra = 4 // notify_off_multiplier after the capability
)

// struct virtio_pci_common_cfg (4.1.4.3).
const (
	pciDeviceFeatureSelect = 0x00
	pciDeviceFeature       = 0x04
	pciDriverFeatureSelect = 0x08
	pciDriverFeature       = 0x0c
	pciDeviceStatus        = 0x14
	pciConfigGeneration    = 0x15
	pciQueueSelect         = 0x16
	pciQueueSize           = 0x18
	pciQueueEnable         = 0x1c
	pciQueueNotifyOff      = 0x1e
	pciQueueDesc           = 0x20
	pciQueueDriver         = 0x28
	pciQueueDevice         = 0x30
)

// PCIType is the virtio device type of a PCI function, if it is one.
func PCIType(f *pci.Function) (uint32, bool) {
	if f.Vendor != PCIVendor || f.Bridge {
		return 0, false
	}
	switch d := uint32(f.Device); {
	case d >= pciModernBase && d < pciModernBase+0x40:
		return d - pciModernBase, true
	case d >= pciTransFirst && d <= pciTransLast:
		return uint32(f.Read16(pci.SubsystemID)), true
	}
	return 0, false
}

// FindPCI returns the functions among fs that are virtio devices of type
// id, in order.
func FindPCI(fs []*pci.Function, id uint32) []*pci.Function {
	var out []*pci.Function
	for _, f := range fs {
		if t, ok := PCIType(f); ok && t == id {
			out = append(out, f)
		}
	}
	return out
}

// pciTransport is virtio over PCI: the common configuration, notification
// and device configuration structures the function's vendor capabilities
// place in its BARs (4.1.4).
type pciTransport struct {
	bus            WideBus
	common, device uint64
	deviceLen      uint64
	notifyBase     uint64
	notifyLen      uint64
	notifyMul      uint32
	// notifyOff is each enabled queue's place in the notify region.
	notifyOff map[uint32]uint64
}

// FeatureAccessPlatform (VIRTIO_F_ACCESS_PLATFORM, 6) says the device's
// DMA goes through the platform's translation, here the SMMU. QEMU's
// virtio-pci devices go through its SMMU only when created with
// iommu_platform=on, which offers it.
const FeatureAccessPlatform = 1 << 33

// InitPCI finds the virtio structures of function f, whose BARs must be
// assigned, then resets it and negotiates VIRTIO_F_VERSION_1,
// VIRTIO_F_ACCESS_PLATFORM and the features in want that it offers.
func InitPCI(f *pci.Function, bus WideBus, mem Memory, want uint64) (*Device, error) {
	t, err := findStructures(f, bus)
	if err != nil {
		return nil, err
	}
	return negotiate(t, mem, want|FeatureAccessPlatform)
}

func findStructures(f *pci.Function, bus WideBus) (*pciTransport, error) {
	caps, err := f.Capabilities()
	if err != nil {
		return nil, err
	}
	t := &pciTransport{bus: bus, notifyOff: map[uint32]uint64{}}
	var haveCommon, haveNotify, haveDevice bool
	for _, c := range caps {
		if f.Read8(c) != pciCapVendor || f.Read8(c+2) < pciCapMinLen {
			continue
		}
		typ, bar := f.Read8(c+3), f.Read8(c+4)
		off, n := uint64(f.Read32(c+8)), uint64(f.Read32(c+12))
		if bar > 5 || f.BARSize[bar] == 0 || off+n > f.BARSize[bar] {
			continue // a structure past its BAR, or in one not assigned
		}
		addr := f.BAR[bar] + off
		// The first of each type is the one to use (4.1.4).
		switch {
		case typ == pciCapCommon && !haveCommon && n >= pciQueueDevice+8:
			t.common, haveCommon = addr, true
		case typ == pciCapNotify && !haveNotify && f.Read8(c+2) >= pciCapMinLen+pciNotifyExtra:
			t.notifyBase, t.notifyLen, t.notifyMul, haveNotify = addr, n, f.Read32(c+pciCapMinLen), true
		case typ == pciCapDevice && !haveDevice:
			t.device, t.deviceLen, haveDevice = addr, n, true
		}
	}
	if !haveCommon || !haveNotify {
		return nil, fmt.Errorf("%w: %v has no usable virtio common or notify structure", ErrNoDevice, f)
	}
	return t, nil
}

func (t *pciTransport) reset() {
	t.bus.Write8(t.common+pciDeviceStatus, 0)
	// 4.1.4.3.2: the device is reset once device_status reads 0.
	for i := 0; i < 1_000_000 && t.bus.Read8(t.common+pciDeviceStatus) != 0; i++ {
	}
}
func (t *pciTransport) status() uint32     { return uint32(t.bus.Read8(t.common + pciDeviceStatus)) }
func (t *pciTransport) setStatus(s uint32) { t.bus.Write8(t.common+pciDeviceStatus, uint8(s)) }
func (t *pciTransport) deviceFeatures() uint64 {
	t.bus.Write32(t.common+pciDeviceFeatureSelect, 0)
	f := uint64(t.bus.Read32(t.common + pciDeviceFeature))
	t.bus.Write32(t.common+pciDeviceFeatureSelect, 1)
	return f | uint64(t.bus.Read32(t.common+pciDeviceFeature))<<32
}
func (t *pciTransport) setDriverFeatures(f uint64) {
	t.bus.Write32(t.common+pciDriverFeatureSelect, 0)
	t.bus.Write32(t.common+pciDriverFeature, uint32(f))
	t.bus.Write32(t.common+pciDriverFeatureSelect, 1)
	t.bus.Write32(t.common+pciDriverFeature, uint32(f>>32))
}
func (t *pciTransport) queueMax(i uint32) int {
	t.bus.Write16(t.common+pciQueueSelect, uint16(i))
	return int(t.bus.Read16(t.common + pciQueueSize))
}
func (t *pciTransport) setQueue(i uint32, num int, desc, driver, device uint64) {
	c := t.common
	t.bus.Write16(c+pciQueueSelect, uint16(i))
	t.bus.Write16(c+pciQueueSize, uint16(num))
	for _, r := range []struct{ off, v uint64 }{{pciQueueDesc, desc}, {pciQueueDriver, driver}, {pciQueueDevice, device}} {
		t.bus.Write32(c+r.off, uint32(r.v))
		t.bus.Write32(c+r.off+4, uint32(r.v>>32))
	}
	off := uint64(t.bus.Read16(c+pciQueueNotifyOff)) * uint64(t.notifyMul)
	if off+2 > t.notifyLen {
		// A notification address past the region: the queue stays off,
		// and the driver's first wait for it shows the device broken.
		return
	}
	t.notifyOff[i] = off
	t.bus.Write16(c+pciQueueEnable, 1)
}
func (t *pciTransport) notify(i uint32) {
	if off, ok := t.notifyOff[i]; ok {
		t.bus.Write16(t.notifyBase+off, uint16(i))
	}
}
func (t *pciTransport) config32(off uint64) uint32 {
	if off+4 > t.deviceLen {
		return 0 // past the structure: another one's registers, or none
	}
	return t.bus.Read32(t.device + off)
}
func (t *pciTransport) generation() uint32 {
	return uint32(t.bus.Read8(t.common + pciConfigGeneration))
}
