package acpi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mem is physical memory for the tests: byte slices placed at addresses.
type mem map[uint64][]byte

func (m mem) Read(pa uint64, b []byte) error {
	for base, data := range m {
		if pa >= base && pa-base <= uint64(len(data)) && uint64(len(b)) <= uint64(len(data))-(pa-base) {
			copy(b, data[pa-base:])
			return nil
		}
	}
	return fmt.Errorf("nothing at [%#x, +%d)", pa, len(b))
}

func fixture(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", path))
	require.NoError(t, err)
	return b
}

// fix sets a table's Length to its size and its checksum right, after a
// test changed it.
func fix(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)))
	b[9] = 0
	b[9] = -sum(b)
	return b
}

// machine places tables in memory behind an XSDT and an RSDP (at 0x1000),
// as a firmware would, and returns it.
func machine(tables ...[]byte) mem {
	m := mem{}
	xsdt := make([]byte, HeaderSize, HeaderSize+8*len(tables))
	copy(xsdt, "XSDT")
	xsdt[8] = 1
	copy(xsdt[10:], "BULKHD")
	for i, tb := range tables {
		pa := uint64(0x10000 + i*0x1000)
		m[pa] = tb
		xsdt = binary.LittleEndian.AppendUint64(xsdt, pa)
	}
	m[0x2000] = fix(xsdt)
	rsdp := make([]byte, rsdpSize)
	copy(rsdp, "RSD PTR ")
	copy(rsdp[9:], "BULKHD")
	rsdp[15] = 2
	binary.LittleEndian.PutUint32(rsdp[20:], rsdpSize)
	binary.LittleEndian.PutUint64(rsdp[24:], 0x2000)
	rsdp[8] = -sum(rsdp[:20])
	rsdp[32] = -sum(rsdp)
	m[0x1000] = rsdp
	return m
}

func qemuTables(t testing.TB) [][]byte {
	var out [][]byte
	for _, n := range []string{"FACP", "APIC", "GTDT", "SPCR", "MCFG", "IORT"} {
		out = append(out, fixture(t, "qemu-virt/"+n+".dat"))
	}
	return out
}

// The tables QEMU 7.2's virt machine gives AAVMF (-machine
// virt,virtualization=on,gic-version=3,iommu=smmuv3 -cpu neoverse-n1
// -smp 2), captured from a Linux guest's /sys/firmware/acpi/tables, read
// as iasl -d decodes them.
func TestQEMUVirtTables(t *testing.T) {
	tabs, err := Parse(machine(qemuTables(t)...), 0x1000)
	require.NoError(t, err)
	assert.Equal(t, "BULKHD", tabs.OEMID)

	assert.Equal(t, "BOCHS ", tabs.FADT.OEMID)
	assert.True(t, tabs.FADT.HWReduced)
	assert.Equal(t, "smc", tabs.FADT.Conduit(), "PSCI Compliant 1, Must use HVC 0")

	m := tabs.MADT
	assert.Equal(t, GICD{Base: 0x0800_0000, Version: 3, Found: true}, m.GICD)
	require.Len(t, m.GICC, 2)
	for i, c := range m.GICC {
		assert.Equal(t, GICC{CPUInterface: uint32(i), UID: uint32(i), Enabled: true, PerfGSIV: 0x17, VGICMaintenance: 0x19, MPIDR: uint64(i)}, c)
	}
	assert.Equal(t, []GICR{{Base: 0x080A_0000, Length: 0xF6_0000}}, m.GICR)
	assert.Equal(t, []ITS{{ID: 0, Base: 0x0808_0000}}, m.ITS)

	g := tabs.GTDT
	assert.Equal(t, Timer{GSIV: 0x1D}, g.SecureEL1)
	assert.Equal(t, Timer{GSIV: 0x1E, AlwaysOn: true}, g.NonSecureEL1)
	assert.Equal(t, Timer{GSIV: 0x1B}, g.VirtualEL1)
	assert.Equal(t, Timer{GSIV: 0x1A}, g.NonSecureEL2)

	s := tabs.SPCR
	assert.Equal(t, "PL011", s.Kind())
	assert.Equal(t, uint64(0x0900_0000), s.Base)
	assert.Equal(t, uint8(0), s.AddressSpace)
	assert.Equal(t, uint8(1), s.AccessSize, "byte access")
	assert.True(t, s.OnGIC())
	assert.Equal(t, uint32(0x21), s.GSIV)

	assert.Equal(t, []ECAM{{Base: 0x40_1000_0000, Segment: 0, StartBus: 0, EndBus: 0xFF}}, tabs.MCFG.ECAM)
	assert.Equal(t, uint64(256<<20), tabs.MCFG.ECAM[0].Size())

	n := tabs.IORT.Nodes
	require.Len(t, n, 3)
	assert.Equal(t, uint8(IORTITSGroup), n[0].Type)
	assert.Equal(t, []uint32{0}, n[0].ITSIDs)
	assert.Equal(t, uint8(IORTSMMUv3), n[1].Type)
	assert.Equal(t, &SMMUv3{Base: 0x0905_0000, COHACC: true, Event: 0x6A, PRI: 0x6B, GERR: 0x6D, Sync: 0x6C}, n[1].SMMUv3)
	assert.Equal(t, []IDMapping{{InputBase: 0, NumIDs: 0xFFFF, OutputBase: 0, Output: 0}}, n[1].Mappings, "the SMMU's own MSIs go to the ITS")
	assert.Equal(t, uint8(IORTRootComplex), n[2].Type)
	assert.Equal(t, uint32(0), n[2].Segment)
	assert.Equal(t, []IDMapping{{InputBase: 0, NumIDs: 0x100, OutputBase: 0, Output: 1}, {InputBase: 0x100, NumIDs: 0xFEFF, OutputBase: 0x100, Output: 0}},
		n[2].Mappings, "requester IDs 0-0xff behind the SMMU, the rest straight to the ITS")
	assert.Empty(t, tabs.Others)
}

// Tables written with iasl for a server: hardware-reduced with PSCI over
// HVC; four CPUs in two clusters (MPIDRs 0, 1, 0x100, 0x101), the last two
// disabled, each with its own redistributor; a 16550-compatible console
// with 32-bit registers.
func TestServerTables(t *testing.T) {
	facp, apic, spcr := fixture(t, "iasl/facp.aml"), fixture(t, "iasl/apic.aml"), fixture(t, "iasl/spcr.aml")
	q := qemuTables(t)
	tabs, err := Parse(machine(facp, apic, spcr, q[2]), 0x1000)
	require.NoError(t, err)
	assert.Equal(t, "hvc", tabs.FADT.Conduit())
	assert.True(t, tabs.FADT.HWReduced)
	m := tabs.MADT
	require.Len(t, m.GICC, 4)
	for i, want := range []struct {
		mpidr, gicr uint64
		enabled     bool
	}{{0, 0x1010_0000, true}, {1, 0x1012_0000, true}, {0x100, 0x1014_0000, false}, {0x101, 0x1016_0000, false}} {
		assert.Equal(t, want.mpidr, m.GICC[i].MPIDR, "CPU %d", i)
		assert.Equal(t, want.gicr, m.GICC[i].GICRBase, "CPU %d", i)
		assert.Equal(t, want.enabled, m.GICC[i].Enabled, "CPU %d", i)
	}
	require.Len(t, m.Usable(), 2)
	assert.Equal(t, uint64(1), m.Usable()[1].MPIDR)
	assert.Empty(t, m.GICR, "redistributors per CPU, no ranges")
	assert.Equal(t, []ITS{{ID: 7, Base: 0x1008_0000}}, m.ITS)
	s := tabs.SPCR
	assert.Equal(t, "16550", s.Kind())
	assert.Equal(t, uint8(SPCR16550GAS), s.Interface)
	assert.Equal(t, uint64(0x90A0_0000), s.Base)
	assert.Equal(t, uint8(3), s.AccessSize, "32-bit registers")
	assert.Equal(t, uint32(0x55), s.GSIV)
	assert.Equal(t, uint8(7), s.Baud, "115200")
	assert.Nil(t, tabs.MCFG)
	assert.Nil(t, tabs.IORT)

	// ACPI 6.5's Online Capable bit (3): the CPU is not usable at boot.
	b := append([]byte(nil), apic...)
	b[madtEntries+3*80+12] |= giccOnlineCapable
	m2, err := ParseMADT(fix(b))
	require.NoError(t, err)
	assert.True(t, m2.GICC[3].OnlineCapable)
	assert.Len(t, m2.Usable(), 2)
}

// refused asserts an *Error for table and field.
func refused(t *testing.T, err error, table, field string) {
	t.Helper()
	var e *Error
	require.True(t, errors.As(err, &e), "want an *acpi.Error, got %v", err)
	assert.Equal(t, table, e.Table, "%v", err)
	assert.Equal(t, field, e.Field, "%v", err)
}

// Broken tables are refused, naming the table and the field, and never
// read past their end.
func TestBrokenTables(t *testing.T) {
	q := qemuTables(t)
	facp, apic, iort := q[0], q[1], q[5]
	edit := func(b []byte, f func(b []byte) []byte) []byte { return fix(f(append([]byte(nil), b...))) }
	put32 := func(off int, v uint32) func(b []byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
	}

	for _, c := range []struct {
		name         string
		err          error
		table, field string
	}{
		{"short header", func() error { _, err := ParseMADT(apic[:20]); return err }(), "APIC", "header"},
		{"length past the bytes", func() error { _, err := ParseMADT(apic[:100]); return err }(), "APIC", "Length"},
		{"checksum", func() error {
			b := append([]byte(nil), apic...)
			b[50]++
			_, err := ParseMADT(b)
			return err
		}(), "APIC", "Checksum"},
		{"wrong signature", func() error { _, err := ParseMADT(facp); return err }(), "APIC", "Signature"},
		{"FADT without ARM_BOOT_ARCH", func() error { _, err := ParseFADT(edit(facp, func(b []byte) []byte { return b[:120] })); return err }(), "FACP", "ARM_BOOT_ARCH"},
		{"MADT structure past the end", func() error {
			_, err := ParseMADT(edit(apic, func(b []byte) []byte { b[madtEntries+1] = 0xff; return b }))
			return err
		}(), "APIC", "Interrupt Controller Structure"},
		{"MADT structure of length 0", func() error {
			_, err := ParseMADT(edit(apic, func(b []byte) []byte { b[madtEntries+1] = 0; return b }))
			return err
		}(), "APIC", "Interrupt Controller Structure"},
		{"GICC too short for the MPIDR", func() error {
			// The GICD (24 bytes) comes first, then a GICC of 80: cut it to 40.
			_, err := ParseMADT(edit(apic, func(b []byte) []byte {
				b[madtEntries+24+1] = 40
				return append(b[:madtEntries+24+40], b[madtEntries+24+80:]...)
			}))
			return err
		}(), "APIC", "GICC"},
		{"two CPUs, one MPIDR", func() error {
			_, err := ParseMADT(edit(apic, func(b []byte) []byte { b[madtEntries+24+80+68] = 0; return b }))
			return err
		}(), "APIC", "MPIDR"},
		{"no distributor", func() error {
			_, err := ParseMADT(edit(apic, func(b []byte) []byte { b[madtEntries] = 0x0d; return b }))
			return err
		}(), "APIC", "GICD"},
		{"MCFG entries not whole", func() error {
			_, err := ParseMCFG(edit(q[4], func(b []byte) []byte { return b[:len(b)-3] }))
			return err
		}(), "MCFG", "Configuration Space Base Address Allocation"},
		{"GTDT cut short", func() error {
			_, err := ParseGTDT(edit(q[2], func(b []byte) []byte { return b[:80] }))
			return err
		}(), "GTDT", "Platform Timer Offset"},
		{"GTDT platform timers outside", func() error {
			_, err := ParseGTDT(edit(q[2], func(b []byte) []byte { return put32(88, 1)(put32(92, 4000)(b)) }))
			return err
		}(), "GTDT", "Platform Timer Offset"},
		{"SPCR in a space it cannot be", func() error {
			_, err := ParseSPCR(edit(q[3], func(b []byte) []byte { b[40] = 7; return b }))
			return err
		}(), "SPCR", "Base Address Address Space ID"},
		{"IORT node array outside", func() error { _, err := ParseIORT(edit(iort, put32(40, 9999))); return err }(), "IORT", "Offset to Array of IORT Nodes"},
		{"IORT node count it cannot hold", func() error { _, err := ParseIORT(edit(iort, put32(36, 0xffffffff))); return err }(), "IORT", "Number of IORT Nodes"},
		{"IORT node length past the end", func() error {
			_, err := ParseIORT(edit(iort, func(b []byte) []byte { binary.LittleEndian.PutUint16(b[48+1:], 0xfff0); return b }))
			return err
		}(), "IORT", "node Length"},
		{"IORT mappings past the node", func() error {
			// The SMMUv3 node at 72: its one mapping moved past its end.
			_, err := ParseIORT(edit(iort, put32(72+12, 80)))
			return err
		}(), "IORT", "Reference to ID Array"},
		{"IORT output reference to no node", func() error {
			_, err := ParseIORT(edit(iort, put32(72+68+12, 0x31)))
			return err
		}(), "IORT", "Output reference"},
		{"IORT SMMUv3 node too short", func() error {
			_, err := ParseIORT(edit(iort, func(b []byte) []byte {
				binary.LittleEndian.PutUint16(b[72+1:], 40)
				binary.LittleEndian.PutUint32(b[72+8:], 0)
				return append(b[:72+40], b[72+88:]...)
			}))
			return err
		}(), "IORT", "SMMUv3 node"},
	} {
		t.Run(c.name, func(t *testing.T) { refused(t, c.err, c.table, c.field) })
	}

	// The way in: the RSDP and XSDT.
	good := machine(q...)
	rsdp := func(f func(b []byte)) mem {
		m := mem{}
		for k, v := range good {
			m[k] = v
		}
		b := append([]byte(nil), good[0x1000]...)
		f(b)
		m[0x1000] = b
		return m
	}
	_, err := Parse(rsdp(func(b []byte) { b[0] = 'X' }), 0x1000)
	refused(t, err, "RSDP", "Signature")
	_, err = Parse(rsdp(func(b []byte) { b[9]++ }), 0x1000)
	refused(t, err, "RSDP", "Checksum")
	_, err = Parse(rsdp(func(b []byte) { b[15], b[8] = 0, b[8]+2 }), 0x1000)
	refused(t, err, "RSDP", "Revision")
	_, err = Parse(rsdp(func(b []byte) { b[30]++ }), 0x1000)
	refused(t, err, "RSDP", "Extended Checksum")
	_, err = Parse(rsdp(func(b []byte) { b[24], b[32] = 0x40, b[32]-0x40 }), 0x1000)
	refused(t, err, "XSDT", "address")
	_, err = Parse(good, 0x5000)
	refused(t, err, "RSDP", "address")

	m := machine(q...)
	m[0x2000] = fix(m[0x2000][:len(m[0x2000])-4])
	_, err = Parse(m, 0x1000)
	refused(t, err, "XSDT", "Entry")
	m = machine(q...)
	binary.LittleEndian.PutUint64(m[0x2000][HeaderSize:], 0xdead0000)
	fix(m[0x2000])
	_, err = Parse(m, 0x1000)
	refused(t, err, "XSDT", "Entry 0")
	m = machine(q...)
	m[0x10000] = append([]byte(nil), q[0]...)
	binary.LittleEndian.PutUint32(m[0x10000][4:], Limit+1)
	_, err = Parse(m, 0x1000)
	refused(t, err, "FACP", "Length")
	_, err = Parse(machine(q[1:]...), 0x1000)
	refused(t, err, "XSDT", "FACP")
	_, err = Parse(machine(q[0], q[2]), 0x1000)
	refused(t, err, "XSDT", "APIC")
	_, err = Parse(machine(append(q, q[3])...), 0x1000)
	refused(t, err, "SPCR", "Signature")
	// A table not read is listed.
	dbg2 := make([]byte, HeaderSize)
	copy(dbg2, "DBG2")
	tabs, err := Parse(machine(append(q, fix(dbg2))...), 0x1000)
	require.NoError(t, err)
	assert.Equal(t, []string{"DBG2"}, tabs.Others)
}
