package qemuvirt

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"github.com/bulkhead-hv/bulkhead/board/fdt"
	"github.com/bulkhead-hv/bulkhead/cpu"
)

// Machine is what the device tree says about the hardware.
type Machine struct {
	Model string
	RAM   []fdt.Range // sorted by address
	CPUs  []uint64    // MPIDR affinity of each CPU node, in tree order
	UART  fdt.Range   // the console: /chosen/stdout-path's PL011, or the SPCR's UART
	// UARTKind is the console's driver: UARTPL011 (also the SBSA generic
	// UART) or UART16550, whose registers are 32 bits wide and 4 bytes
	// apart when UARTAccessSize is 3 (the SPCR's GAS access size).
	UARTKind       string
	UARTAccessSize uint8
	GICD           fdt.Range   // GICv3 distributor
	GICR           []fdt.Range // GICv3 redistributor regions
	PSCI           string      // PSCI conduit: "smc" or "hvc"
	Bootargs       string
	// Private interrupts, as INTIDs: the generic timer's (secure and
	// non-secure physical, virtual, EL2 physical) and the GIC's
	// maintenance interrupt.
	TimerSecPhys, TimerPhys, TimerVirt, TimerHyp uint32
	GICMaintenance                               uint32
	// Virtio are the virtio-mmio transports ("virtio,mmio"), in tree order.
	Virtio []fdt.Range
	// FwCfg is QEMU's firmware configuration device ("qemu,fw-cfg-mmio"),
	// if the machine has one.
	FwCfg fdt.Range
	// ECAM are the PCIe configuration windows ("pci-host-ecam-generic",
	// or the MCFG's), and SMMU the SMMUv3s ("arm,smmu-v3", or the
	// IORT's).
	ECAM, SMMU []fdt.Range
	// PCIMem is the first host bridge's 32-bit memory window, where its
	// BARs go (from its "ranges"), and PCIBehindSMMU says the bridge's
	// DMA goes through the first SMMU ("iommu-map").
	PCIMem        fdt.Range
	PCIBehindSMMU bool
}

// smmuSize is an SMMUv3's register space: two 64 KiB pages (SMMUv3, 6.1).
const smmuSize = 128 << 10

// Console drivers (Machine.UARTKind).
const (
	UARTPL011 = "PL011"
	UART16550 = "16550"
)

// RAMSize is the total of all memory ranges.
func (m *Machine) RAMSize() uint64 {
	var s uint64
	for _, r := range m.RAM {
		s += r.Size
	}
	return s
}

// ParseMachine interprets a QEMU virt device tree. Errors name the node or
// property at fault.
func ParseMachine(blob []byte) (*Machine, error) {
	t, err := fdt.Parse(blob)
	if err != nil {
		return nil, err
	}
	m := &Machine{}
	m.Model, _ = t.Root.String("model")

	for _, n := range t.Root.Children {
		dt, _ := n.String("device_type")
		if dt != "memory" {
			continue
		}
		regs, err := n.Reg()
		if err != nil {
			return nil, err
		}
		for _, r := range regs {
			if r.Size != 0 {
				m.RAM = append(m.RAM, r)
			}
		}
	}
	if len(m.RAM) == 0 {
		return nil, fmt.Errorf("device tree: no memory node with a non-empty reg")
	}
	sort.Slice(m.RAM, func(i, j int) bool { return m.RAM[i].Addr < m.RAM[j].Addr })

	cpus := t.Find("/cpus")
	if cpus == nil {
		return nil, fmt.Errorf("device tree: no /cpus node")
	}
	for _, c := range cpus.Children {
		if dt, _ := c.String("device_type"); dt != "cpu" {
			continue
		}
		regs, err := c.Reg()
		if err != nil {
			return nil, err
		}
		m.CPUs = append(m.CPUs, regs[0].Addr)
	}
	if len(m.CPUs) == 0 {
		return nil, fmt.Errorf("device tree: /cpus lists no cpu node")
	}

	if m.UART, err = findUART(t); err != nil {
		return nil, err
	}
	m.UARTKind = UARTPL011

	gics := t.FindCompatible("arm,gic-v3")
	if len(gics) == 0 {
		return nil, fmt.Errorf("device tree: no \"arm,gic-v3\" interrupt controller (boot QEMU with gic-version=3)")
	}
	regs, err := gics[0].Reg()
	if err != nil {
		return nil, err
	}
	nr := uint32(1)
	if _, ok := gics[0].Prop("#redistributor-regions"); ok {
		if nr, err = gics[0].U32("#redistributor-regions"); err != nil {
			return nil, err
		}
	}
	if nr == 0 || len(regs) < 1+int(nr) {
		return nil, fmt.Errorf("device tree: %s: reg has %d ranges, want the distributor and %d redistributor region(s)",
			gics[0].Path(), len(regs), nr)
	}
	m.GICD, m.GICR = regs[0], regs[1:1+nr]

	if m.GICMaintenance, err = ppi(gics[0], 0); err != nil {
		return nil, err
	}
	timers := t.FindCompatible("arm,armv8-timer")
	if len(timers) == 0 {
		return nil, fmt.Errorf("device tree: no \"arm,armv8-timer\" node")
	}
	for i, dst := range []*uint32{&m.TimerSecPhys, &m.TimerPhys, &m.TimerVirt, &m.TimerHyp} {
		if *dst, err = ppi(timers[0], i); err != nil {
			return nil, err
		}
	}

	for _, n := range t.FindCompatible("virtio,mmio") {
		regs, err := n.Reg()
		if err != nil {
			return nil, err
		}
		m.Virtio = append(m.Virtio, regs[0])
	}
	var smmuPhandle uint32
	for i, n := range t.FindCompatible("arm,smmu-v3") {
		if regs, err := n.Reg(); err == nil && len(regs) > 0 {
			m.SMMU = append(m.SMMU, regs[0])
			if i == 0 {
				smmuPhandle, _ = n.U32("phandle")
			}
		}
	}
	for i, n := range t.FindCompatible("pci-host-ecam-generic") {
		if regs, err := n.Reg(); err == nil && len(regs) > 0 {
			m.ECAM = append(m.ECAM, regs[0])
		}
		if i == 0 {
			m.PCIMem = pciMem32(n)
			m.PCIBehindSMMU = behindSMMU(n, smmuPhandle)
		}
	}
	if l := t.FindCompatible("qemu,fw-cfg-mmio"); len(l) > 0 {
		regs, err := l[0].Reg()
		if err != nil {
			return nil, err
		}
		m.FwCfg = regs[0]
	}

	psci := t.Find("/psci")
	if psci == nil {
		return nil, fmt.Errorf("device tree: no /psci node: cannot power off or start CPUs")
	}
	if m.PSCI, err = psci.String("method"); err != nil {
		return nil, err
	}
	if m.PSCI != "smc" && m.PSCI != "hvc" {
		return nil, fmt.Errorf("device tree: /psci: unknown method %q (want smc or hvc)", m.PSCI)
	}

	if chosen := t.Find("/chosen"); chosen != nil {
		if _, ok := chosen.Prop("bootargs"); ok {
			if m.Bootargs, err = chosen.String("bootargs"); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// findUART resolves /chosen/stdout-path, falling back to the first PL011.
func findUART(t *fdt.Tree) (fdt.Range, error) {
	var n *fdt.Node
	if chosen := t.Find("/chosen"); chosen != nil {
		if path, err := chosen.String("stdout-path"); err == nil {
			path, _, _ = strings.Cut(path, ":") // drop ":115200n8" options
			if n = t.Find(path); n == nil {
				return fdt.Range{}, fmt.Errorf("device tree: /chosen/stdout-path %q names no node", path)
			}
		}
	}
	if n == nil {
		if l := t.FindCompatible("arm,pl011"); len(l) > 0 {
			n = l[0]
		}
	}
	if n == nil {
		return fdt.Range{}, fmt.Errorf("device tree: no console: neither /chosen/stdout-path nor an \"arm,pl011\" node")
	}
	if !n.Compatible("arm,pl011") {
		return fdt.Range{}, fmt.Errorf("device tree: console %s is not an \"arm,pl011\" UART", n.Path())
	}
	regs, err := n.Reg()
	if err != nil {
		return fdt.Range{}, err
	}
	return regs[0], nil
}

// checkMachine rejects a machine the hypervisor cannot run on.
func checkMachine(m *Machine) error {
	if !m.Contains(RAMBase, RAMBase+HypRAMSize) {
		return &LayoutError{"the machine's RAM does not contain the hypervisor's " + cpu.Hex(RAMBase) + "+" + cpu.Hex(HypRAMSize)}
	}
	devices := append(append([]fdt.Range{m.UART, m.GICD, m.FwCfg}, m.GICR...), m.Virtio...)
	if err := DevicesOutsideRAM(m, devices); err != nil {
		return err
	}
	if m.PSCI != "smc" {
		return &LayoutError{"PSCI conduit is " + m.PSCI + ": at EL2 only smc reaches the firmware"}
	}
	return nil
}

// Contains reports whether [start, end) lies inside one RAM range.
func (m *Machine) Contains(start, end uint64) bool {
	for _, r := range m.RAM {
		if start >= r.Addr && end <= r.End() {
			return true
		}
	}
	return false
}

// DevicesOutsideRAM rejects device ranges that overlap RAM: mapping one
// there would turn a page of RAM (a guard page, say) into device memory.
func DevicesOutsideRAM(m *Machine, devices []fdt.Range) error {
	for _, d := range devices {
		for _, r := range m.RAM {
			if d.Addr < r.End() && r.Addr < d.End() {
				return fmt.Errorf("device tree: device range %s overlaps RAM %s", d, r)
			}
		}
	}
	return nil
}

// ppi decodes the i-th entry of a node's interrupts property, which must
// be a PPI in the GIC binding's three-cell form (type 1 = PPI, number,
// flags), as an INTID.
func ppi(n *fdt.Node, i int) (uint32, error) {
	v, ok := n.Prop("interrupts")
	if !ok {
		return 0, fmt.Errorf("device tree: %s has no interrupts property", n.Path())
	}
	if len(v) < 12*(i+1) {
		return 0, fmt.Errorf("device tree: %s: interrupts has no entry %d", n.Path(), i)
	}
	typ := binary.BigEndian.Uint32(v[12*i:])
	num := binary.BigEndian.Uint32(v[12*i+4:])
	if typ != 1 || num >= 16 {
		return 0, fmt.Errorf("device tree: %s: interrupt %d is not a PPI (type %d, number %d)", n.Path(), i, typ, num)
	}
	return 16 + num, nil
}

// pciMem32 finds a PCI host bridge's 32-bit memory window in its ranges:
// entries of three cells of PCI address (phys.hi's space code [25:24] is
// 0b10 for 32-bit memory), two of CPU address and two of size (IEEE Std
// 1275-1994 PCI binding, 2.2.1.1).
func pciMem32(n *fdt.Node) fdt.Range {
	b, ok := n.Prop("ranges")
	if !ok {
		return fdt.Range{}
	}
	be := func(i int) uint64 { return uint64(binary.BigEndian.Uint32(b[4*i:])) }
	for i := 0; (i+7)*4 <= len(b); i += 7 {
		if be(i)>>24&3 == 2 {
			return fdt.Range{Addr: be(i+3)<<32 | be(i+4), Size: be(i+5)<<32 | be(i+6)}
		}
	}
	return fdt.Range{}
}

// behindSMMU says whether a host bridge's iommu-map sends requester IDs
// from 0 to the SMMU with phandle smmu (Documentation of the PCI IOMMU
// binding: rid-base, iommu phandle, iommu-base, length).
func behindSMMU(n *fdt.Node, smmu uint32) bool {
	b, ok := n.Prop("iommu-map")
	if !ok || smmu == 0 {
		return false
	}
	for i := 0; (i+4)*4 <= len(b); i += 4 {
		rid, ph, base := binary.BigEndian.Uint32(b[4*i:]), binary.BigEndian.Uint32(b[4*i+4:]), binary.BigEndian.Uint32(b[4*i+8:])
		if rid == 0 && ph == smmu && base == 0 {
			return true
		}
	}
	return false
}
