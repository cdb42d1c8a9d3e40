package virtio

import (
	"testing"

	"github.com/bulkhead-hv/bulkhead/pci"
	"github.com/bulkhead-hv/bulkhead/pci/pcitest"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testECAM = 0x40_1000_0000
	testWin  = 0x1000_0000
)

// Where pciFront's structures are in its BAR 4, 16 KiB, as in QEMU's.
const (
	commonAt  = 0x0000
	isrAt     = 0x1000
	deviceAt  = 0x2000
	deviceLen = 0x40
	notifyAt  = 0x3000
	notifyLen = 0x1000
	notifyMul = 4
	frontBAR  = 4
	frontSize = 16 << 10
)

// The common configuration's fields the driver leaves alone (4.1.4.3).
const (
	pciConfigMSIXVector = 0x10
	pciNumQueues        = 0x12
	pciQueueMSIXVector  = 0x1a
)

// commonWidth is each struct virtio_pci_common_cfg field's width
// (4.1.4.3); QEMU decodes an access by offset and width both.
var commonWidth = map[uint64]int{
	pciDeviceFeatureSelect: 4, pciDeviceFeature: 4, pciDriverFeatureSelect: 4, pciDriverFeature: 4,
	pciConfigMSIXVector: 2, pciNumQueues: 2,
	pciDeviceStatus: 1, pciConfigGeneration: 1, pciQueueSelect: 2, pciQueueSize: 2,
	pciQueueMSIXVector: 2, pciQueueEnable: 2, pciQueueNotifyOff: 2,
	pciQueueDesc: 4, pciQueueDesc + 4: 4, pciQueueDriver: 4, pciQueueDriver + 4: 4, pciQueueDevice: 4, pciQueueDevice + 4: 4,
}

// commonToMMIO is the virtio-mmio register each written common field is.
var commonToMMIO = map[uint64]uint64{
	pciDeviceFeatureSelect: mmioreg.DeviceFeaturesSel, pciDriverFeatureSelect: mmioreg.DriverFeaturesSel,
	pciDriverFeature: mmioreg.DriverFeatures, pciDeviceStatus: mmioreg.Status,
	pciQueueSelect: mmioreg.QueueSel, pciQueueSize: mmioreg.QueueNum, pciQueueEnable: mmioreg.QueueReady,
	pciQueueDesc: mmioreg.QueueDescLow, pciQueueDesc + 4: mmioreg.QueueDescHigh,
	pciQueueDriver: mmioreg.QueueDriverLow, pciQueueDriver + 4: mmioreg.QueueDriverHigh,
	pciQueueDevice: mmioreg.QueueDeviceLow, pciQueueDevice + 4: mmioreg.QueueDeviceHigh,
}

// pciFront is a modern virtio-pci function (4.1) in front of one of the
// virtio-mmio fakes at base, so that their checks hold over either
// transport. Its vendor capabilities place the common configuration, ISR,
// device configuration and notify structures in BAR 4. It checks that the
// BAR is reached only while memory decoding is on, that each common field
// is accessed at its own width and each notification is a 16-bit write
// where the queue's queue_notify_off puts it, and passes what the driver
// does on to the fake's registers.
type pciFront struct {
	t      *testing.T
	space  *pcitest.Space
	fn     *pcitest.Func
	dev    Bus    // the virtio-mmio fake
	queues uint16 // queues the device has: queue_size reads 0 from here on
	qsel   uint16

	notified    []uint16
	configReads int
}

func newPCIFront(t *testing.T, dev Bus, deviceID uint16, queues uint16) *pciFront {
	fn := pcitest.NewFunc(1, 0, PCIVendor, deviceID)
	fn.SetBAR(frontBAR, frontSize, true)
	fn.SetBAR(1, 4<<10, false) // as QEMU's MSI-X table: not virtio's
	// struct virtio_pci_cap: cap_len | cfg_type, bar, id, padding,
	// offset, length, then the notify structure's multiplier.
	cap := func(off int, typ uint32, at, length uint32, extra ...uint32) {
		fn.Cap(off, pciCapVendor, append([]uint32{uint32(pciCapMinLen+4*len(extra)) | typ<<8, frontBAR, at, length}, extra...)...)
	}
	cap(0x40, pciCapCommon, commonAt, 0x38)
	cap(0x50, pciCapISR, isrAt, 1)
	cap(0x60, pciCapDevice, deviceAt, deviceLen)
	cap(0x70, pciCapNotify, notifyAt, notifyLen, notifyMul)
	return &pciFront{t: t, space: &pcitest.Space{Base: testECAM, Funcs: []*pcitest.Func{fn}}, fn: fn, dev: dev, queues: queues}
}

// open scans the front's root bus, places its BARs and returns its
// function, for InitPCI and the Open*PCI.
func (p *pciFront) open() *pci.Function {
	fs := pci.Scan(p, testECAM)
	require.Len(p.t, fs, 1)
	require.NoError(p.t, fs[0].AssignBARs(&pci.Window{Base: testWin, Size: 1 << 20}))
	return fs[0]
}

// reg returns off, addr's offset in BAR 4, if addr is in it.
func (p *pciFront) reg(addr uint64, width int) (uint64, bool) {
	if addr >= testECAM && addr < testECAM+1<<20 {
		if width != 4 {
			p.t.Errorf("a %d-byte configuration space access", width)
		}
		return 0, false
	}
	bar := uint64(p.fn.Regs[pci.BAR4/4]&^0xf) | uint64(p.fn.Regs[pci.BAR5/4])<<32
	if p.fn.Regs[pci.Command/4]&pci.CommandMemorySpace == 0 || bar == 0 || addr < bar || addr >= bar+frontSize {
		p.t.Errorf("an access at %#x, not in a decoded BAR", addr)
		return 0, false
	}
	off := addr - bar
	if off < 0x38 {
		if w, ok := commonWidth[off]; !ok || w != width {
			p.t.Errorf("common configuration %#x accessed with %d bytes", off, width)
		}
	}
	return off, true
}

func (p *pciFront) read(addr uint64, width int) uint32 {
	off, ok := p.reg(addr, width)
	switch {
	case !ok:
		return 0
	case off == pciDeviceFeature:
		return p.dev.Read32(base + mmioreg.DeviceFeatures)
	case off == pciDeviceStatus:
		return p.dev.Read32(base + mmioreg.Status)
	case off == pciConfigGeneration:
		return p.dev.Read32(base + mmioreg.ConfigGeneration)
	case off == pciQueueSize:
		if p.qsel >= p.queues {
			return 0
		}
		return p.dev.Read32(base + mmioreg.QueueNumMax)
	case off == pciQueueNotifyOff:
		return uint32(p.qsel) // QEMU's: the queue's index
	case off >= deviceAt && off < deviceAt+deviceLen:
		require.Equal(p.t, 4, width, "device configuration read")
		p.configReads++
		return p.dev.Read32(base + mmioreg.Config + off - deviceAt)
	}
	p.t.Errorf("a read at %#x in BAR 4", off)
	return 0
}

func (p *pciFront) write(addr uint64, width int, v uint32) {
	off, ok := p.reg(addr, width)
	switch r, common := commonToMMIO[off]; {
	case !ok:
	case common:
		if off == pciQueueSelect {
			p.qsel = uint16(v)
		}
		p.dev.Write32(base+r, v)
	case off >= notifyAt && off < notifyAt+notifyLen:
		if width != 2 || off-notifyAt != uint64(v)*notifyMul {
			p.t.Errorf("queue %d notified with %d bytes at %#x", v, width, off-notifyAt)
		}
		p.notified = append(p.notified, uint16(v))
		p.dev.Write32(base+mmioreg.QueueNotify, v)
	default:
		p.t.Errorf("a write at %#x in BAR 4", off)
	}
}

func (p *pciFront) Read32(addr uint64) uint32 {
	if addr >= testECAM && addr < testECAM+1<<20 {
		return p.space.Read32(addr)
	}
	return p.read(addr, 4)
}
func (p *pciFront) Write32(addr uint64, v uint32) {
	if addr >= testECAM && addr < testECAM+1<<20 {
		p.space.Write32(addr, v)
		return
	}
	p.write(addr, 4, v)
}
func (p *pciFront) Read8(addr uint64) uint8       { return uint8(p.read(addr, 1)) }
func (p *pciFront) Read16(addr uint64) uint16     { return uint16(p.read(addr, 2)) }
func (p *pciFront) Write8(addr uint64, v uint8)   { p.write(addr, 1, uint32(v)) }
func (p *pciFront) Write16(addr uint64, v uint16) { p.write(addr, 2, uint32(v)) }

// The console, the host channel's device, over virtio-pci: found by its
// type, its structures found in BAR 4, VIRTIO_F_ACCESS_PLATFORM
// negotiated, its queues set up and notified each at its own address,
// and bytes carried both ways.
func TestPCITransport(t *testing.T) {
	mem := &fakeMem{next: 0x4800_0000, bufs: map[uint64][]byte{}}
	dev := newFake(mem)
	dev.features |= FeatureAccessPlatform
	front := newPCIFront(t, dev, pciModernBase+mmioreg.DeviceConsole, 2)
	f := front.open()
	fs := []*pci.Function{f}
	require.Equal(t, fs, FindPCI(fs, mmioreg.DeviceConsole))
	require.Empty(t, FindPCI(fs, mmioreg.DeviceBlock))
	assert.NotZero(t, f.BAR[frontBAR])

	d, err := InitPCI(f, front, mem, 0)
	require.NoError(t, err)
	assert.Equal(t, uint64(mmioreg.FeatureVersion1|FeatureAccessPlatform), dev.driver)
	rx, err := d.Queue(0, 16, 64)
	require.NoError(t, err)
	tx, err := d.Queue(1, 16, 64)
	require.NoError(t, err)
	_, err = d.Queue(2, 16, 0)
	assert.Error(t, err, "a queue the device lacks")
	for i, q := range dev.queues {
		assert.Equal(t, uint32(8), q.num, "queue %d: capped at queue_size", i)
		assert.Equal(t, uint32(1), q.ready, "queue %d enabled", i)
		assert.NotContains(t, []uint64{q.desc, q.avail, q.used}, uint64(0), "queue %d's rings", i)
	}
	assert.Equal(t, dev.queues[1].desc, uint64(dev.regs[mmioreg.QueueDescLow]), "the last queue set up")
	assert.Zero(t, dev.regs[mmioreg.QueueDescHigh], "the high half written")
	d.Ready()
	assert.Equal(t, uint32(mmioreg.StatusAcknowledge|mmioreg.StatusDriver|mmioreg.StatusFeaturesOK|mmioreg.StatusDriverOK), dev.status)

	rx.Fill()
	msg := []byte(`{"event":"ready"}` + "\n")
	tx.Send(msg, func() {})
	assert.Equal(t, msg, dev.out)
	assert.Contains(t, front.notified, uint16(0), "Fill notified the receive queue")
	assert.Equal(t, uint16(1), front.notified[len(front.notified)-1], "Send the transmit queue")
	dev.in = []byte("{\"id\":1,\"op\":\"ping\"}\n")
	dev.deliver()
	assert.Equal(t, "{\"id\":1,\"op\":\"ping\"}\n", string(rx.Receive()))

	// Device configuration reads stop at the structure's end.
	d.t.config32(deviceLen - 4)
	d.t.config32(deviceLen)
	assert.Equal(t, 1, front.configReads)

	_, err = OpenNetPCI(f, front, mem)
	assert.ErrorIs(t, err, ErrNoDevice, "a console opened as a network device")
	_, err = OpenBlkPCI(f, front, mem)
	assert.ErrorIs(t, err, ErrNoDevice, "a console opened as a block device")
}

// A transitional function's type is its subsystem ID; a function whose
// BARs are not placed, or whose structures lie past its BAR, is refused.
func TestPCITransportRefuses(t *testing.T) {
	mem := &fakeMem{next: 0x4800_0000, bufs: map[uint64][]byte{}}
	front := newPCIFront(t, newFakeBlk(t, mem, 8), pciTransFirst+1, 1)
	front.fn.Regs[pci.SubsystemID/4] = uint32(mmioreg.DeviceBlock) << 16
	f := pci.Scan(front, testECAM)[0]
	typ, ok := PCIType(f)
	assert.True(t, ok)
	assert.Equal(t, uint32(mmioreg.DeviceBlock), typ, "a transitional device's type")
	_, err := InitPCI(f, front, mem, 0)
	assert.ErrorIs(t, err, ErrNoDevice, "no BARs placed")

	// The common configuration 0x38 bytes from the BAR's end, one
	// field short.
	front.fn.Regs[0x40/4+2] = frontSize - 0x30
	_, err = InitPCI(front.open(), front, mem, 0)
	assert.ErrorIs(t, err, ErrNoDevice, "the common configuration past the BAR")

	front = newPCIFront(t, newFakeBlk(t, mem, 8), pciModernBase+mmioreg.DeviceBlock, 1)
	front.fn.Regs[0x70/4+3] = frontSize // the notify region's length
	_, err = InitPCI(front.open(), front, mem, 0)
	assert.ErrorIs(t, err, ErrNoDevice, "the notify region past the BAR")

	other := &pcitest.Space{Base: testECAM, Funcs: []*pcitest.Func{pcitest.NewFunc(0, 0, 0x8086, pciModernBase+mmioreg.DeviceBlock)}}
	_, ok = PCIType(pci.Scan(other, testECAM)[0])
	assert.False(t, ok, "another vendor's device")
}
