package virtio

import (
	"testing"

	"github.com/bulkhead-hv/bulkhead/pci"
	"github.com/bulkhead-hv/bulkhead/pci/pcitest"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

const (
	testECAM = 0x40_1000_0000
	testWin  = 0x1000_0000
)

// pciDevice plays a virtio-pci function's structures in its BAR 4: the
// common configuration (checking that each field is accessed at its own
// width, as QEMU decodes it), the notify region and a device config.
type pciDevice struct {
	t        *testing.T
	space    *pcitest.Space
	bar      uint64 // BAR 4's address, once assigned
	offered  uint64
	fsel     uint32
	dfsel    uint32
	driver   uint64
	status   uint8
	qsel     uint16
	qsize    [4]uint16
	qaddr    [4][3]uint64
	qenable  [4]bool
	notified []uint16
	config   [64]byte
}

var commonWidth = map[uint64]int{
	pciDeviceFeatureSelect: 4, pciDeviceFeature: 4, pciDriverFeatureSelect: 4, pciDriverFeature: 4,
	pciDeviceStatus: 1, pciConfigGeneration: 1, pciQueueSelect: 2, pciQueueSize: 2,
	pciQueueEnable: 2, pciQueueNotifyOff: 2,
	pciQueueDesc: 4, pciQueueDesc + 4: 4, pciQueueDriver: 4, pciQueueDriver + 4: 4, pciQueueDevice: 4, pciQueueDevice + 4: 4,
}

const (
	commonAt  = 0x0000
	deviceAt  = 0x2000
	notifyAt  = 0x3000
	notifyMul = 4
)

func newPCIDevice(t *testing.T, deviceID uint16) *pciDevice {
	f := pcitest.NewFunc(1, 0, PCIVendor, deviceID)
	f.SetBAR(4, 16<<10, true)
	// struct virtio_pci_cap: len, cfg_type | bar, id, padding | offset | length.
	cap := func(off int, typ, length uint32, where uint32, extra ...uint32) {
		f.Cap(off, pciCapVendor, append([]uint32{uint32(pciCapMinLen+4*len(extra)) | typ<<8, 4, where, length}, extra...)...)
	}
	cap(0x40, pciCapCommon, 0x38, commonAt)
	cap(0x50, pciCapNotify, 0x1000, notifyAt, notifyMul)
	cap(0x64, pciCapDevice, 0x40, deviceAt)
	return &pciDevice{t: t, space: &pcitest.Space{Base: testECAM, Funcs: []*pcitest.Func{f}}, offered: mmioreg.FeatureVersion1 | 1<<5}
}

func (d *pciDevice) reg(addr uint64, width int) (uint64, bool) {
	if d.bar == 0 || addr < d.bar || addr >= d.bar+16<<10 {
		return 0, false
	}
	off := addr - d.bar
	if off < deviceAt {
		if w, ok := commonWidth[off]; !ok || w != width {
			d.t.Errorf("common configuration %#x accessed with %d bytes", off, width)
		}
	}
	return off, true
}

func (d *pciDevice) Read32(addr uint64) uint32 {
	off, ok := d.reg(addr, 4)
	if !ok {
		return d.space.Read32(addr)
	}
	switch {
	case off == pciDeviceFeature:
		return uint32(d.offered >> (32 * d.fsel))
	case off >= deviceAt && off < deviceAt+64:
		return le.Uint32(d.config[off-deviceAt:])
	}
	return 0
}
func (d *pciDevice) Write32(addr uint64, v uint32) {
	off, ok := d.reg(addr, 4)
	if !ok {
		d.space.Write32(addr, v)
		return
	}
	switch off {
	case pciDeviceFeatureSelect:
		d.fsel = v
	case pciDriverFeatureSelect:
		d.dfsel = v
	case pciDriverFeature:
		d.driver = d.driver&^(0xffff_ffff<<(32*d.dfsel)) | uint64(v)<<(32*d.dfsel)
	default:
		if off >= pciQueueDesc && off < pciQueueDevice+8 {
			a := &d.qaddr[d.qsel][(off-pciQueueDesc)/8]
			if off%8 == 0 {
				*a = *a&^0xffff_ffff | uint64(v)
			} else {
				*a = *a&0xffff_ffff | uint64(v)<<32
			}
		}
	}
}
func (d *pciDevice) Read8(addr uint64) uint8 {
	off, _ := d.reg(addr, 1)
	if off == pciDeviceStatus {
		return d.status
	}
	return 0
}
func (d *pciDevice) Write8(addr uint64, v uint8) {
	if off, _ := d.reg(addr, 1); off == pciDeviceStatus {
		d.status = v
		if v&mmioreg.StatusFeaturesOK != 0 && d.driver&^d.offered != 0 {
			d.status &^= mmioreg.StatusFeaturesOK
		}
	}
}
func (d *pciDevice) Read16(addr uint64) uint16 {
	off, _ := d.reg(addr, 2)
	switch off {
	case pciQueueSize:
		if d.qsel < 2 {
			return max(d.qsize[d.qsel], 64)
		}
		return 0
	case pciQueueNotifyOff:
		return d.qsel
	}
	return 0
}
func (d *pciDevice) Write16(addr uint64, v uint16) {
	if addr >= d.bar+notifyAt && addr < d.bar+notifyAt+0x1000 {
		if (addr-d.bar-notifyAt)/notifyMul != uint64(v) {
			d.t.Errorf("queue %d notified at %#x", v, addr-d.bar-notifyAt)
		}
		d.notified = append(d.notified, v)
		return
	}
	off, _ := d.reg(addr, 2)
	switch off {
	case pciQueueSelect:
		d.qsel = v
	case pciQueueSize:
		d.qsize[d.qsel] = v
	case pciQueueEnable:
		d.qenable[d.qsel] = v == 1
	}
}

// A virtio-pci function: found by type, its structures found in its BAR,
// features negotiated, a queue set up and notified at its own address,
// the device configuration read, every common field at its own width.
func TestPCITransport(t *testing.T) {
	dev := newPCIDevice(t, pciModernBase+mmioreg.DeviceBlock)
	fs := pci.Scan(dev, testECAM)
	found := FindPCI(fs, mmioreg.DeviceBlock)
	if len(found) != 1 || len(FindPCI(fs, mmioreg.DeviceNet)) != 0 {
		t.Fatalf("found %v", found)
	}
	f := found[0]
	if err := f.AssignBARs(&pci.Window{Base: testWin, Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	dev.bar = f.BAR[4]
	le.PutUint32(dev.config[:], 0x1234)
	mem := &fakeMem{next: 0x4800_0000, bufs: map[uint64][]byte{}}
	d, err := InitPCI(f, dev, mem, 1<<5|1<<6)
	if err != nil {
		t.Fatal(err)
	}
	if d.features != mmioreg.FeatureVersion1|1<<5 || dev.driver != d.features {
		t.Errorf("features %#x, device has %#x", d.features, dev.driver)
	}
	q, err := d.Queue(1, 16, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !dev.qenable[1] || dev.qsize[1] != 16 || dev.qaddr[1][0] == 0 || dev.qaddr[1][2] == 0 {
		t.Errorf("queue 1: enabled %v, size %d, rings %#x", dev.qenable[1], dev.qsize[1], dev.qaddr[1])
	}
	if _, err := d.Queue(2, 16, 0); err == nil {
		t.Errorf("a queue the device lacks was set up")
	}
	d.Ready()
	if dev.status&mmioreg.StatusDriverOK == 0 {
		t.Errorf("status %#x", dev.status)
	}
	if _, err := q.Post(Seg{Addr: 0x4400_0000, Len: 8}); err != nil {
		t.Fatal(err)
	}
	if len(dev.notified) != 1 || dev.notified[0] != 1 {
		t.Errorf("notifications %v", dev.notified)
	}
	if v := d.t.config32(0); v != 0x1234 {
		t.Errorf("device configuration reads %#x", v)
	}
	if _, err := OpenNetPCI(f, dev, mem); err == nil {
		t.Errorf("a block device opened as a network device")
	}
}

// A function whose structures lie past its BAR, or that has none, is
// refused.
func TestPCITransportRefuses(t *testing.T) {
	dev := newPCIDevice(t, pciTransFirst+1)
	f := pci.Scan(dev, testECAM)[0]
	dev.space.Funcs[0].Regs[pci.SubsystemID/4] = uint32(mmioreg.DeviceBlock) << 16
	if typ, ok := PCIType(f); !ok || typ != mmioreg.DeviceBlock {
		t.Errorf("a transitional device's type: %d, %v", typ, ok)
	}
	if _, err := InitPCI(f, dev, &fakeMem{next: 0x4800_0000, bufs: map[uint64][]byte{}}, 0); err == nil {
		t.Errorf("a function with no BARs assigned was initialized")
	}
}
