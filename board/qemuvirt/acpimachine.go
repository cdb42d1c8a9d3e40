package qemuvirt

import (
	"fmt"
	"strings"

	"github.com/bulkhead-hv/bulkhead/acpi"
	"github.com/bulkhead-hv/bulkhead/board/fdt"
	"github.com/bulkhead-hv/bulkhead/efi"
)

// Sizes the ACPI tables do not give: a GICv3 distributor's register
// frame and one redistributor's two frames (GICv3, 12.1 and 12.10), and a
// UART's page.
const (
	gicdSize   = 64 << 10
	gicrSize   = 128 << 10
	uartSize   = 4 << 10
	qemuOEMID  = "BOCHS" // the OEM ID in QEMU's ACPI tables
	virtioBase = 0x0a000000
	virtioSize = 0x200
	virtioNum  = 32
	fwcfgBase  = 0x09020000
	fwcfgSize  = 0x18
)

// MachineFromACPI describes the machine from its ACPI tables and the RAM
// the UEFI memory map gives, as ParseMachine does from a device tree: the
// rest of the hypervisor does not know which it came from. Bootargs are
// the caller's (the EFI image's load options). Errors name the table and
// field at fault.
func MachineFromACPI(t *acpi.Tables, ram []efi.Range) (*Machine, error) {
	m := &Machine{Model: "ACPI, OEM " + strings.TrimSpace(t.OEMID)}
	for _, r := range ram {
		m.RAM = append(m.RAM, fdt.Range{Addr: r.Start, Size: r.End - r.Start})
	}
	if len(m.RAM) == 0 {
		return nil, fmt.Errorf("UEFI memory map: no RAM free to use")
	}

	cpus := t.MADT.Usable()
	if len(cpus) == 0 {
		return nil, fmt.Errorf("acpi: MADT: no enabled GICC structure: no CPU to run on")
	}
	for _, c := range cpus {
		m.CPUs = append(m.CPUs, c.MPIDR)
	}
	m.GICMaintenance = cpus[0].VGICMaintenance
	for _, c := range cpus {
		if c.VGICMaintenance != m.GICMaintenance {
			return nil, fmt.Errorf("acpi: MADT: GICC VGIC Maintenance Interrupt: CPU %#x says %d, CPU %#x %d", cpus[0].MPIDR, m.GICMaintenance, c.MPIDR, c.VGICMaintenance)
		}
	}
	if m.GICMaintenance < 16 || m.GICMaintenance > 31 {
		return nil, fmt.Errorf("acpi: MADT: GICC VGIC Maintenance Interrupt %d is not a PPI", m.GICMaintenance)
	}

	d := t.MADT.GICD
	switch {
	case !d.Found:
		return nil, fmt.Errorf("acpi: MADT: no GICD structure")
	case d.Version != 0 && d.Version < 3:
		return nil, fmt.Errorf("acpi: MADT: GICD GIC Version %d: Bulkhead needs a GICv3 (under QEMU, gic-version=3)", d.Version)
	}
	m.GICD = fdt.Range{Addr: d.Base, Size: gicdSize}
	for _, r := range t.MADT.GICR {
		m.GICR = append(m.GICR, fdt.Range{Addr: r.Base, Size: r.Length})
	}
	if len(m.GICR) == 0 {
		// No discovery ranges: each GICC names its CPU's redistributor.
		for _, c := range cpus {
			if c.GICRBase == 0 {
				return nil, fmt.Errorf("acpi: MADT: no GICR structure, and CPU %#x's GICC has no GICR Base Address", c.MPIDR)
			}
			m.GICR = append(m.GICR, fdt.Range{Addr: c.GICRBase, Size: gicrSize})
		}
	}

	if m.PSCI = t.FADT.Conduit(); m.PSCI == "" {
		return nil, fmt.Errorf("acpi: FADT: ARM Boot Architecture Flags: PSCI not compliant, so no way to start the CPUs")
	}

	if t.GTDT == nil {
		return nil, fmt.Errorf("acpi: no GTDT: the generic timers' interrupts are unknown")
	}
	m.TimerSecPhys, m.TimerPhys = t.GTDT.SecureEL1.GSIV, t.GTDT.NonSecureEL1.GSIV
	m.TimerVirt, m.TimerHyp = t.GTDT.VirtualEL1.GSIV, t.GTDT.NonSecureEL2.GSIV
	for _, p := range []struct {
		name string
		id   uint32
	}{{"Virtual EL1 Timer GSIV", m.TimerVirt}, {"Non-Secure EL2 Timer GSIV", m.TimerHyp}} {
		if p.id < 16 || p.id > 31 {
			return nil, fmt.Errorf("acpi: GTDT: %s %d is not a PPI", p.name, p.id)
		}
	}

	s := t.SPCR
	switch {
	case s == nil:
		return nil, fmt.Errorf("acpi: no SPCR: no console")
	case s.AddressSpace != 0:
		return nil, fmt.Errorf("acpi: SPCR: Base Address: the console is in I/O space, which Arm has not")
	}
	switch s.Kind() {
	case "PL011", "SBSA generic UART":
		m.UARTKind = UARTPL011
	case "16550":
		if s.AccessSize > 1 && s.AccessSize != 3 {
			return nil, fmt.Errorf("acpi: SPCR: Base Address Access Size %d: a 16550's registers are bytes (1) or 32-bit words (3)", s.AccessSize)
		}
		m.UARTKind, m.UARTAccessSize = UART16550, s.AccessSize
	default:
		return nil, fmt.Errorf("acpi: SPCR: Interface Type %#x: no driver (PL011, SBSA generic UART, 16550)", s.Interface)
	}
	m.UART = fdt.Range{Addr: s.Base, Size: uartSize}

	if t.MCFG != nil {
		for _, e := range t.MCFG.ECAM {
			m.ECAM = append(m.ECAM, fdt.Range{Addr: e.Base + uint64(e.StartBus)<<20, Size: e.Size()})
		}
	}
	if t.IORT != nil {
		for _, n := range t.IORT.Nodes {
			if n.SMMUv3 != nil {
				m.SMMU = append(m.SMMU, fdt.Range{Addr: n.SMMUv3.Base, Size: smmuSize})
			}
		}
	}

	// QEMU virt describes its virtio-mmio transports and fw_cfg in the
	// DSDT only, in AML, which is not read here: on QEMU's tables they are
	// where its memory map puts them (hw/arm/virt.c, VIRT_MMIO and
	// VIRT_FW_CFG).
	if strings.TrimSpace(t.OEMID) == qemuOEMID {
		for i := uint64(0); i < virtioNum; i++ {
			m.Virtio = append(m.Virtio, fdt.Range{Addr: virtioBase + i*virtioSize, Size: virtioSize})
		}
		m.FwCfg = fdt.Range{Addr: fwcfgBase, Size: fwcfgSize}
	}
	return m, nil
}
