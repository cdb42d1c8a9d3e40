package efi

import (
	"encoding/binary"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memoryMap writes descriptors as GetMemoryMap does, descSize bytes apart.
func memoryMap(descSize int, ds ...Descriptor) []byte {
	b := make([]byte, descSize*len(ds))
	for i, d := range ds {
		e := b[i*descSize:]
		binary.LittleEndian.PutUint32(e, d.Type)
		binary.LittleEndian.PutUint64(e[8:], d.PhysicalStart)
		binary.LittleEndian.PutUint64(e[16:], 0xdead0000) // VirtualStart: not read
		binary.LittleEndian.PutUint64(e[24:], d.NumberOfPages)
		binary.LittleEndian.PutUint64(e[32:], d.Attribute)
	}
	return b
}

const wb = MemoryWB | 0x1 | 0x2 | 0x4 // UC, WC, WT, WB: RAM as firmwares describe it

// A map shaped like a server's after the loader ran: RAM in two banks,
// the second above 4 GiB, interleaved with the loader's and boot
// services' memory (free once they exit), runtime services and ACPI
// memory (kept), and MMIO (not RAM). Descriptors come out of order and
// 48 bytes apart, as UEFI allows.
func TestMemoryMap(t *testing.T) {
	ds := []Descriptor{
		{Type: ConventionalMemory, PhysicalStart: 0x4000_0000, NumberOfPages: 0x1000, Attribute: wb},
		{Type: LoaderCode, PhysicalStart: 0x4100_0000, NumberOfPages: 0x200, Attribute: wb},
		{Type: BootServicesData, PhysicalStart: 0x4120_0000, NumberOfPages: 0xe00, Attribute: wb},
		{Type: RuntimeServicesCode, PhysicalStart: 0x4200_0000, NumberOfPages: 0x10, Attribute: wb | 1<<63},
		{Type: ConventionalMemory, PhysicalStart: 0x4201_0000, NumberOfPages: 0x3ff0, Attribute: wb},
		{Type: ACPIReclaimMemory, PhysicalStart: 0x7c43_0000, NumberOfPages: 0x10, Attribute: wb},
		{Type: MemoryMappedIO, PhysicalStart: 0x0900_0000, NumberOfPages: 1, Attribute: 1 | 1<<63},
		{Type: ConventionalMemory, PhysicalStart: 0x1_0000_0000, NumberOfPages: 0x40000, Attribute: wb},
		{Type: ReservedMemoryType, PhysicalStart: 0x7c44_0000, NumberOfPages: 1, Attribute: wb},
		// Write-back-incapable "RAM" is not handed out.
		{Type: ConventionalMemory, PhysicalStart: 0x2000_0000, NumberOfPages: 0x100, Attribute: 1},
	}
	got, err := ParseMemoryMap(memoryMap(48, ds...), 48)
	require.NoError(t, err)
	assert.Equal(t, ds, got)
	assert.Equal(t, []Range{
		{0x4000_0000, 0x4200_0000},     // conventional, loader and boot services, merged
		{0x4201_0000, 0x4600_0000},     // 0x3ff0 pages
		{0x1_0000_0000, 0x1_4000_0000}, // above 4 GiB
	}, RAM(got))
	assert.Equal(t, []Range{{0x4200_0000, 0x4201_0000}, {0x7c43_0000, 0x7c44_0000}}, Kept(got))
}

// A broken map is refused with the descriptor and the reason.
func TestBrokenMemoryMap(t *testing.T) {
	ok := Descriptor{Type: ConventionalMemory, PhysicalStart: 0x4000_0000, NumberOfPages: 16, Attribute: wb}
	for _, c := range []struct {
		name     string
		b        []byte
		descSize uint64
		want     string
	}{
		{"descriptor size below the structure's", memoryMap(40, ok), 32, "descriptor size 32"},
		{"descriptor size not 8-aligned", memoryMap(40, ok), 44, "descriptor size 44"},
		{"a partial descriptor", memoryMap(40, ok)[:39], 40, "not a whole number"},
		{"unaligned", memoryMap(40, Descriptor{Type: 7, PhysicalStart: 0x4000_0800, NumberOfPages: 1}), 40, "not page aligned"},
		{"no pages", memoryMap(40, Descriptor{Type: 7, PhysicalStart: 0x4000_0000}), 40, "empty or wraps"},
		{"past the top", memoryMap(40, Descriptor{Type: 7, PhysicalStart: 0xffff_ffff_ffff_0000, NumberOfPages: 0x20}), 40, "empty or wraps"},
		{"pages that overflow", memoryMap(40, Descriptor{Type: 7, PhysicalStart: 0x1000, NumberOfPages: 1 << 60}), 40, "empty or wraps"},
		{"overlapping", memoryMap(40, ok, Descriptor{Type: RuntimeServicesData, PhysicalStart: 0x4000_f000, NumberOfPages: 2}), 40, "overlap"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseMemoryMap(c.b, c.descSize)
			assert.ErrorContains(t, err, c.want)
		})
	}
}

// The configuration table leads to the RSDP (or a DTB); a count the
// bytes cannot hold is refused before anything is read.
func TestFindTable(t *testing.T) {
	// The GUIDs as the specification spells them, in memory order.
	assert.Equal(t, GUID{0x71, 0xe8, 0x68, 0x88, 0xf1, 0xe4, 0xd3, 0x11, 0xbc, 0x22, 0x00, 0x80, 0xc7, 0x3c, 0x88, 0x81}, ACPI20TableGUID)
	other := MakeGUID(0xeb9d2d31, 0x2d88, 0x11d3, [8]byte{0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d}) // SMBIOS
	var b []byte
	for _, e := range []struct {
		g  GUID
		pa uint64
	}{{other, 0x7f00_0000}, {ACPI20TableGUID, 0x7c43_0018}} {
		b = append(b, e.g[:]...)
		b = binary.LittleEndian.AppendUint64(b, e.pa)
	}
	pa, err := FindTable(b, 2, ACPI20TableGUID)
	require.NoError(t, err)
	assert.Equal(t, uint64(0x7c43_0018), pa)
	_, err = FindTable(b, 2, DTBTableGUID)
	assert.ErrorContains(t, err, "among 2 entries")
	_, err = FindTable(b, 1, ACPI20TableGUID)
	assert.Error(t, err, "only the first entry counts")
	_, err = FindTable(b, 3, ACPI20TableGUID)
	assert.ErrorContains(t, err, "do not fit")
}

// The memory map AAVMF gave Linux under QEMU 7.2 (-machine virt -m 4G),
// as its efi=debug boot log prints it: the test turns the lines back into
// descriptors. The free RAM is the 4 GiB at 0x4000_0000 less what the
// runtime services and ACPI keep; nothing kept or MMIO is in it.
func TestAAVMFMemoryMap(t *testing.T) {
	text, err := os.ReadFile("testdata/aavmf-4g.txt")
	require.NoError(t, err)
	types := map[string]uint32{"Conventional": ConventionalMemory, "Boot Data": BootServicesData, "Boot Code": BootServicesCode,
		"Loader Data": LoaderData, "Loader Code": LoaderCode, "Runtime Data": RuntimeServicesData, "Runtime Code": RuntimeServicesCode,
		"ACPI Reclaim": ACPIReclaimMemory, "ACPI Mem NVS": ACPIMemoryNVS, "MMIO": MemoryMappedIO, "Reserved": ReservedMemoryType}
	line := regexp.MustCompile(`0x([0-9a-f]+)-0x([0-9a-f]+) \[([A-Za-z ]+?) *\|(.*)\]`)
	var ds []Descriptor
	for _, l := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		m := line.FindStringSubmatch(l)
		require.NotNil(t, m, l)
		start, _ := strconv.ParseUint(m[1], 16, 64)
		end, _ := strconv.ParseUint(m[2], 16, 64)
		typ, ok := types[m[3]]
		require.True(t, ok, "type %q", m[3])
		d := Descriptor{Type: typ, PhysicalStart: start, NumberOfPages: (end + 1 - start) / PageSize}
		if strings.Contains(m[4], "WB") {
			d.Attribute |= MemoryWB
		}
		ds = append(ds, d)
	}
	got, err := ParseMemoryMap(memoryMap(48, ds...), 48)
	require.NoError(t, err)
	ram, kept := RAM(got), Kept(got)
	require.NotEmpty(t, ram)
	assert.Equal(t, uint64(0x4000_0000), ram[0].Start, "RAM starts at virt's base")
	var free, held uint64
	for i, r := range ram {
		assert.True(t, r.Start >= 0x4000_0000 && r.End <= 0x1_4000_0000, "%#x-%#x lies in the 4 GiB", r.Start, r.End)
		if i > 0 {
			assert.Greater(t, r.Start, ram[i-1].End, "sorted, merged: a gap between runs")
		}
		free += r.End - r.Start
	}
	for _, k := range kept {
		held += k.End - k.Start
		for _, r := range ram {
			assert.False(t, k.Start < r.End && r.Start < k.End, "kept %#x-%#x is not in free RAM", k.Start, k.End)
		}
	}
	assert.NotZero(t, held, "runtime services and ACPI keep some")
	assert.Equal(t, uint64(4<<30), free+held, "the rest of the 4 GiB is free once boot services exit")
	t.Logf("%d descriptors: %d free runs, %d MiB free, %d KiB kept", len(got), len(ram), free>>20, held>>10)
}
