package qemuvirt

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/acpi"
	"github.com/bulkhead-hv/bulkhead/board/fdt"
	"github.com/bulkhead-hv/bulkhead/efi"
)

// qemuACPI reads the tables QEMU's virt machine gives AAVMF (captured in
// acpi/testdata/qemu-virt), as acpi.Parse would have them.
func qemuACPI(t *testing.T) *acpi.Tables {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "acpi", "testdata", "qemu-virt", name+".dat"))
		require.NoError(t, err)
		return b
	}
	var tabs acpi.Tables
	var err error
	tabs.OEMID = "BOCHS "
	tabs.FADT, err = acpi.ParseFADT(read("FACP"))
	require.NoError(t, err)
	tabs.MADT, err = acpi.ParseMADT(read("APIC"))
	require.NoError(t, err)
	tabs.GTDT, err = acpi.ParseGTDT(read("GTDT"))
	require.NoError(t, err)
	tabs.SPCR, err = acpi.ParseSPCR(read("SPCR"))
	require.NoError(t, err)
	tabs.MCFG, err = acpi.ParseMCFG(read("MCFG"))
	require.NoError(t, err)
	tabs.IORT, err = acpi.ParseIORT(read("IORT"))
	require.NoError(t, err)
	return &tabs
}

// From QEMU's tables, the machine the device tree of the same QEMU
// describes (machine_test.go's), but for its RAM, which is the memory map's.
func TestMachineFromQEMUACPI(t *testing.T) {
	ram := []efi.Range{{Start: 0x4000_0000, End: 0x1_3c43_0000}, {Start: 0x1_3c73_0000, End: 0x1_3eaf_4000}}
	m, err := MachineFromACPI(qemuACPI(t), ram)
	require.NoError(t, err)
	assert.Equal(t, "ACPI, OEM BOCHS", m.Model)
	assert.Equal(t, []fdt.Range{{Addr: 0x4000_0000, Size: 0xfc43_0000}, {Addr: 0x1_3c73_0000, Size: 0x23c_4000}}, m.RAM)
	assert.Equal(t, []uint64{0, 1}, m.CPUs)
	assert.Equal(t, fdt.Range{Addr: 0x0900_0000, Size: 0x1000}, m.UART)
	assert.Equal(t, UARTPL011, m.UARTKind)
	assert.Equal(t, fdt.Range{Addr: 0x0800_0000, Size: 0x10000}, m.GICD)
	assert.Equal(t, []fdt.Range{{Addr: 0x080a_0000, Size: 0xf6_0000}}, m.GICR)
	assert.Equal(t, "smc", m.PSCI)
	assert.Equal(t, uint32(29), m.TimerSecPhys)
	assert.Equal(t, uint32(30), m.TimerPhys)
	assert.Equal(t, uint32(27), m.TimerVirt)
	assert.Equal(t, uint32(26), m.TimerHyp)
	assert.Equal(t, uint32(25), m.GICMaintenance)
	require.Len(t, m.Virtio, 32, "QEMU's transports, which only its DSDT describes")
	assert.Equal(t, fdt.Range{Addr: 0x0a00_0000, Size: 0x200}, m.Virtio[0])
	assert.Equal(t, fdt.Range{Addr: 0x0a00_3e00, Size: 0x200}, m.Virtio[31])
	assert.Equal(t, fdt.Range{Addr: 0x0902_0000, Size: 0x18}, m.FwCfg)
	assert.Equal(t, []fdt.Range{{Addr: 0x40_1000_0000, Size: 256 << 20}}, m.ECAM)
	assert.Equal(t, []fdt.Range{{Addr: 0x0905_0000, Size: 128 << 10}}, m.SMMU, "the tables were captured with iommu=smmuv3")
	assert.NoError(t, checkMachine(m), "a machine the hypervisor runs on")
}

func TestMachineFromACPIRefuses(t *testing.T) {
	ram := []efi.Range{{Start: 0x4000_0000, End: 0x8000_0000}}
	for _, tc := range []struct {
		name  string
		edit  func(*acpi.Tables)
		ram   []efi.Range
		error string
	}{
		{"no RAM", func(*acpi.Tables) {}, nil, "no RAM free to use"},
		{"no CPU", func(t *acpi.Tables) { t.MADT.GICC = nil }, ram, "MADT: no enabled GICC"},
		{"GICv2", func(t *acpi.Tables) { t.MADT.GICD.Version = 2 }, ram, "GIC Version 2"},
		{"no PSCI", func(t *acpi.Tables) { t.FADT.PSCICompliant = false }, ram, "FADT: ARM Boot Architecture Flags"},
		{"no GTDT", func(t *acpi.Tables) { t.GTDT = nil }, ram, "no GTDT"},
		{"EL2 timer not a PPI", func(t *acpi.Tables) { t.GTDT.NonSecureEL2.GSIV = 40 }, ram, "Non-Secure EL2 Timer GSIV 40"},
		{"16550 with 16-bit registers", func(t *acpi.Tables) { t.SPCR.Interface, t.SPCR.AccessSize = acpi.SPCR16550, 2 }, ram, "Access Size 2"},
		{"unknown UART", func(t *acpi.Tables) { t.SPCR.Interface = 0x10 }, ram, "Interface Type 0x10: no driver"},
		{"no console", func(t *acpi.Tables) { t.SPCR = nil }, ram, "no SPCR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tabs := qemuACPI(t)
			tc.edit(tabs)
			_, err := MachineFromACPI(tabs, tc.ram)
			assert.ErrorContains(t, err, tc.error)
		})
	}
	// A Graviton-like console: a 16550 with 32-bit registers.
	tabs := qemuACPI(t)
	tabs.SPCR.Interface, tabs.SPCR.AccessSize, tabs.SPCR.Base = acpi.SPCR16550, 3, 0x9000_0000
	m, err := MachineFromACPI(tabs, ram)
	require.NoError(t, err)
	assert.Equal(t, UART16550, m.UARTKind)
	assert.Equal(t, uint8(3), m.UARTAccessSize)

	tabs = qemuACPI(t)
	tabs.OEMID = "AMAZON"
	m, err = MachineFromACPI(tabs, ram)
	require.NoError(t, err)
	assert.Empty(t, m.Virtio, "no QEMU transports on a machine whose tables are not QEMU's")
	assert.Zero(t, m.FwCfg)
}
